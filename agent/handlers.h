/*
 * The command types carved runs: a dispatch table (tmux's cmd_entry shape)
 * with, per type, its admission check (loop thread), its idempotent effect
 * and its recovery step (worker thread, blocking libvirt calls). Argument
 * decoding lives with the wire format in api/command.c.
 */
#ifndef CARVE_HANDLERS_H
#define CARVE_HANDLERS_H

#include <stdatomic.h>
#include <stdbool.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>

#include "agent/capacity.h"
#include "api/command.h"
#include "api/vm.h"
#include "common/error.h"

struct agent;
struct carved_conf;
struct handler_job;

/* What a handler's worker function gets and gives back. */
struct handler_job {
	/* in (copied on the loop thread; read-only on the worker) */
	virConnectPtr hj_conn;              /* reference owned by the job */
	const struct command *hj_cmd;
	char hj_domain_type[16];
	char *hj_kernel_dir;                /* owned, or NULL */
	char *hj_console_log;               /* owned, or NULL */
	char *hj_image_dir;                 /* owned: the image cache */
	char *hj_disk_dir;                  /* owned: the storage pool's dir */
	char *hj_pool;                      /* owned: the storage pool's name */
	char *hj_seed_dir;                  /* owned: where seeds are built */
	unsigned hj_stop_timeout_s;
	/* Room to grow ([resize] factors) and the host's size, for new
	 * domains' maxima and for raising them. */
	unsigned hj_max_vcpus_factor;
	unsigned hj_max_memory_factor;
	unsigned hj_host_cpus;
	uint64_t hj_host_memory_mib;
	int64_t hj_now_ms;
	int64_t hj_accepted_at_ms;          /* when the command was accepted */
	const atomic_bool *hj_cancel;       /* set when carved shuts down */
	const struct carved_conf *hj_conf;  /* immutable while carved runs */
	char hj_node_name[IDS_NAME_MAX + 1];
	/* vm.migrate: set (from the loop) when a vm.migrate.cancel came */
	const atomic_bool *hj_abort;
	/* vm.migrate.cancel: it found this VM's vm.migrate not yet done */
	bool hj_abort_pending;
	/*
	 * Report how far the command is (any thread, never blocks; latest
	 * wins): shown by carvectl status and, for a control-plane command,
	 * posted to the control plane.
	 */
	void (*hj_progress)(struct handler_job *j, int percent,
	    const char *message);
	/*
	 * Fault injection for the crash tests (CARVED_TEST_DELAY_MID_MS): a
	 * handler with a multi-step effect sleeps this long at its most
	 * delicate point (vm.rebuild: the VM stopped, the old root disk not
	 * yet replaced). 0 in production.
	 */
	unsigned hj_test_delay_mid_ms;
	/* out */
	struct vm_info hj_vm;               /* valid when hj_has_vm */
	bool hj_has_vm;
	bool hj_vm_gone;                    /* the VM no longer exists */
	json_object *hj_data;               /* result details, owned */
	struct carve_error hj_err;
};

/* A prepare step is over (loop thread); err is NULL on success. */
typedef void (*handler_prepared_cb)(const struct carve_error *err, void *arg);

struct handler {
	enum command_type h_type;
	/* Commands that make the VM they target (its id must be new). */
	bool h_creates_vm;
	/* Commands whose end state holds for a VM that does not exist
	 * (destroy): admitted without the VM, and succeed as a no-op. */
	bool h_absent_ok;
	/*
	 * Commands that do not wait behind the VM's other commands
	 * (vm.migrate.cancel must reach the vm.migrate it cancels); they are
	 * ordered among themselves only.
	 */
	bool h_unordered;
	/*
	 * Commands not counted against [agent] max_concurrent_ops: they have
	 * limits of their own ([migration] max_outgoing) or are short and must
	 * not wait behind long ones (cancel).
	 */
	bool h_own_limit;
	/* vm.migrate: the VM is leaving; only h_unordered commands pass. */
	bool h_migrates_out;
	/* What the command claims of the host's capacity (creates), or NULL. */
	void (*h_claim)(const struct command *cmd, struct cap_request *claim);
	/*
	 * Commands that change an existing VM's size (vm.resize), or NULL:
	 * the size the VM has once the command is done, 0 in a class it
	 * leaves alone. The growth over the VM's size in the view is
	 * admitted against capacity and claimed while the command is in
	 * flight (capacity_growth); a shrink claims nothing.
	 */
	void (*h_resize)(const struct command *cmd, struct cap_request *target);
	/*
	 * Loop thread, before the command is journaled: type-specific checks
	 * against the view (the engine checks existence and capacity).
	 */
	int (*h_admit)(struct agent *a, const struct command *cmd,
	    struct carve_error *err);
	/*
	 * Loop thread, after admission and before the command is journaled:
	 * get what the effect needs without blocking (vm.create: the base
	 * image into the cache). cb runs once, maybe before h_prepare
	 * returns. A CARVE_EUNAVAIL failure is not journaled (a re-delivery
	 * tries again); any other is the command's result. Every image
	 * images_ensure fetches from here (called before h_prepare returns)
	 * is pinned against garbage collection until the command ends.
	 */
	void (*h_prepare)(struct agent *a, const struct command *cmd,
	    handler_prepared_cb cb, void *arg);
	/* Worker thread: make the effect happen (idempotently). */
	void (*h_run)(struct handler_job *job);
	/*
	 * Worker thread: finish a command that was accepted but has no result
	 * (the agent died mid-way), from libvirt's real state.
	 */
	void (*h_recover)(struct handler_job *job);
	/*
	 * Loop thread, once the effect ran (not after a lost connection),
	 * before the result is journaled: apply what the result means to the
	 * agent beyond the view (migration reservations). err is NULL on
	 * success.
	 */
	void (*h_done)(struct agent *a, const struct command *cmd,
	    const struct handler_job *job, const struct carve_error *err);
};

const struct handler *handler_for(enum command_type type);

#endif
