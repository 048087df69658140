/*
 * The agent: one struct that owns everything carved knows, passed down to
 * every module (no globals). Owned by the loop thread; worker threads only
 * see copies handed to them in a job.
 */
#ifndef CARVE_AGENT_H
#define CARVE_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "agent/capacity.h"
#include "agent/conf.h"
#include "agent/virt_ops.h"
#include "api/vm.h"
#include "common/strmap.h"

struct virt;
struct journal;
struct engine;
struct control;
struct metrics;
struct poller;
struct images;

struct agent {
	uv_loop_t *a_loop;
	const struct carved_conf *a_conf;
	int64_t a_started_at_ms;
	struct virt *a_virt;
	struct journal *a_journal;
	struct engine *a_engine;
	struct control *a_control;
	struct metrics *a_metrics;       /* NULL when [metrics] listen is unset */
	struct poller *a_poller;         /* NULL when standalone */
	struct images *a_images;         /* the base image cache */
	char *a_image_dir;               /* [images] cache_dir, resolved */
	char *a_disk_dir;                /* the storage pool: state_dir/disks */

	/* The view: vm_id -> struct vm_info *, rebuilt from libvirt on every
	 * (re)connect and kept current by events and command results. */
	struct strmap *a_vms;
	bool a_view_ready;
	unsigned a_view_refreshing;   /* list operations in flight */
	unsigned a_undefines;         /* UNDEFINED events seen (see vm_job) */
	unsigned a_lifecycle_events;  /* all domain events seen (see refresh) */
	unsigned a_rerefreshes;       /* consecutive re-reads (see refresh) */

	/*
	 * VM changes the control plane has not acknowledged yet (heartbeats
	 * carry them): vm_id -> the change number (a uintptr_t, never 0) of
	 * its latest change, in a_dirty for VMs added or changed, in a_removed
	 * for VMs gone. NULL when standalone.
	 */
	struct strmap *a_dirty;
	struct strmap *a_removed;
	uint64_t a_change_seq;

	struct host_inventory a_inv;
	bool a_have_inv;

	/* carvectl drain: the control plane should place nothing here and
	 * move the VMs away. Kept in state_dir/drained across restarts. */
	bool a_drained;

	uv_signal_t a_sigterm, a_sigint, a_sighup;
	bool a_stopping;
	int a_exit_code;
};

/* Set everything up (journal loaded, socket listening, libvirt connecting). */
int agent_init(struct agent *a, uv_loop_t *loop, const struct carved_conf *conf,
    struct carve_error *err);
/* Begin an orderly stop: drain running commands, close everything. */
void agent_stop(struct agent *a);
/* Free what agent_init made; call after the loop has stopped. */
void agent_fini(struct agent *a);

/* A VM in the view by id (UUID) or name, or NULL. */
struct vm_info *agent_vm_find(struct agent *a, const char *id_or_name);
/* Replace or insert a view entry (copied). */
void agent_vm_put(struct agent *a, const struct vm_info *vm);
void agent_vm_remove(struct agent *a, const char *vm_id);

/* The newest change number: a heartbeat built now covers changes up to it. */
uint64_t agent_changes_mark(struct agent *a);
/* The control plane has every change up to mark: forget them (later ones
 * stay for the next heartbeat). */
void agent_changes_ack(struct agent *a, uint64_t mark);

/*
 * Current capacity: host totals (inventory) with the configured reserve and
 * ratios; allocated = managed VMs + in-flight claims. Returns false when the
 * inventory is not known yet (libvirt never connected).
 */
bool agent_capacity(struct agent *a, struct capacity *out);

/* The status object carvectl status shows. */
json_object *agent_status_encode(struct agent *a);

/*
 * Drain (drained = true) or undrain this node: the flag is written to
 * state_dir/drained (durably, off the loop) before a_drained changes and
 * the control plane is told (next heartbeat and registration). cb runs on
 * the loop with err NULL on success.
 */
void agent_set_drained(struct agent *a, bool drained,
    void (*cb)(const struct carve_error *err, void *arg), void *arg);

#endif
