/*
 * carve-cp's state in SQLite (WAL, synchronous=FULL): nodes, VMs, commands,
 * each node's reported VM list and live migrations. Every call runs on the event loop thread
 * and commits before it returns, so an answer that says "accepted" is on
 * disk, and a restart finds every command still without a result, ready to
 * be delivered again.
 *
 * JSON columns hold text this process wrote; records hand it out as owned
 * strings. Record types have a _clear function; lists are freed with the
 * matching _list_free.
 */
#ifndef CARVE_CP_STORE_H
#define CARVE_CP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/command.h"
#include "api/proto.h"
#include "common/error.h"
#include "common/ids.h"

struct cp_store;

/* Why a node is being emptied. */
enum cp_evac_reason {
	CP_EVAC_NONE = 0,	/* never evacuated */
	CP_EVAC_DRAIN,		/* the agent reported schedulable=false */
	CP_EVAC_ADMIN,		/* POST /v1/nodes/{name}/evacuate */
	CP_EVAC_NREASONS
};

struct cp_node_rec {
	char		 nr_name[IDS_NAME_MAX + 1];
	int64_t		 nr_registered_at_ms;
	int64_t		 nr_last_heartbeat_ms;	/* 0: never */
	char		 nr_agent_version[PROTO_VERSION_MAX + 1];
	bool		 nr_schedulable;
	char		*nr_host;		/* JSON object text */
	char		*nr_capacity;		/* JSON object text */
	int64_t		 nr_capacity_at_ms;	/* when capacity arrived */
	int64_t		 nr_vms;		/* VMs in the node's last report */
	/*
	 * Resources of vm.create and vm.migrate.prepare commands the capacity
	 * report misses, and the growth of vm.resize commands without a result.
	 */
	int64_t		 nr_claimed[PROTO_CAP_NCLASSES];
	/* The last evacuation: running while started and not finished. */
	enum cp_evac_reason nr_evac_reason;
	int64_t		 nr_evac_started_at_ms;	/* 0: never */
	int64_t		 nr_evac_finished_at_ms;	/* 0: running or never */
	char		*nr_evac_note;		/* why it waits, or NULL */
};

struct cp_vm_rec {
	char		 vr_id[IDS_UUID_LEN + 1];
	char		 vr_name[IDS_NAME_MAX + 1];
	char		 vr_node[IDS_NAME_MAX + 1];
	unsigned	 vr_vcpus;
	uint64_t	 vr_memory_mib;
	uint64_t	 vr_disk_gib;
	char		*vr_spec;		/* vm_spec_encode() text */
	enum proto_desired_state vr_desired;
	char		 vr_state[PROTO_STATE_NAME_MAX + 1]; /* "": none yet */
	char		 vr_last_command_id[IDS_UUID_LEN + 1];
	int64_t		 vr_created_at_ms;
	int64_t		 vr_updated_at_ms;
	int64_t		 vr_deleted_at_ms;	/* 0: not deleted */
};

struct cp_cmd_rec {
	int64_t		 cr_seq;
	char		 cr_id[IDS_UUID_LEN + 1];
	char		 cr_node[IDS_NAME_MAX + 1];
	char		 cr_vm_id[IDS_UUID_LEN + 1];
	enum command_type cr_type;		/* CMD_TYPE_MAX: unknown */
	char		*cr_command;		/* command_encode() text */
	enum proto_cmd_status cr_status;
	char		*cr_result;		/* command_result_encode() text */
	char		*cr_progress;		/* proto_progress_encode() text */
	int64_t		 cr_created_at_ms;
	int64_t		 cr_delivered_at_ms;	/* 0: never */
	int64_t		 cr_finished_at_ms;	/* 0: no result yet */
};

/*
 * Open (creating if needed, 0600) the database at path. Refuses a database
 * from a newer carve-cp.
 */
struct cp_store *cp_store_open(const char *path, struct carve_error *err);
void cp_store_close(struct cp_store *st);

/*
 * Group several calls in one transaction (one fsync). Nestable: every call
 * below that writes more than one row uses the same savepoints itself.
 */
int cp_store_begin(struct cp_store *st, struct carve_error *err);
int cp_store_commit(struct cp_store *st, struct carve_error *err);
void cp_store_rollback(struct cp_store *st);

/*
 * Parse JSON text a record handed out (a new reference), or NULL with an
 * internal error: the database holds only what this process wrote.
 */
json_object *cp_store_json(const char *text, struct carve_error *err);

/* ---- nodes ---- */

/*
 * Create or update a node from its registration; registered_at is kept
 * from the first one, last_heartbeat and the capacity time become now.
 */
int cp_store_node_register(struct cp_store *st, const char *name,
    const struct proto_register_req *reg, int64_t now_ms,
    struct carve_error *err);
/* 0 and *out filled, or -1 (CARVE_ENOTFOUND for an unknown node). */
int cp_store_node_get(struct cp_store *st, const char *name,
    struct cp_node_rec *out, struct carve_error *err);
/*
 * Forget a node (an administrator's reset: it may then enrol afresh).
 * CARVE_ENOTFOUND when unknown, CARVE_ECONFLICT while VMs live on it.
 */
int cp_store_node_delete(struct cp_store *st, const char *name,
    struct carve_error *err);
/* Every node, by name. */
int cp_store_node_list(struct cp_store *st, struct cp_node_rec **out,
    size_t *n, struct carve_error *err);
void cp_node_rec_clear(struct cp_node_rec *rec);
void cp_node_list_free(struct cp_node_rec *recs, size_t n);

/*
 * Apply a heartbeat: last_heartbeat and capacity always; the VM report when
 * it is full, or when its seq follows the last one applied. Otherwise
 * *resync is set, the delta is dropped and the node's sequence forgotten,
 * so only a full heartbeat is applied next. CARVE_ENOTFOUND for a node
 * that never registered. The node's schedulable flag becomes the
 * heartbeat's; *was_schedulable (when not NULL) gets the one before.
 */
int cp_store_node_heartbeat(struct cp_store *st, const char *name,
    const struct proto_heartbeat_req *hb, int64_t now_ms, bool *resync,
    bool *was_schedulable, struct carve_error *err);
/*
 * Start an evacuation of the node (reason CP_EVAC_DRAIN or CP_EVAC_ADMIN).
 * One already running is kept as it is: returns 0 then, 1 when started.
 */
int cp_store_node_evac_start(struct cp_store *st, const char *name,
    enum cp_evac_reason reason, int64_t now_ms, struct carve_error *err);
/* The names of the nodes whose evacuation runs (*out freed by the caller). */
int cp_store_node_list_evacuating(struct cp_store *st,
    char (**out)[IDS_NAME_MAX + 1], size_t *n, struct carve_error *err);
/* The node's running evacuation is over (nothing when none runs). */
int cp_store_node_evac_end(struct cp_store *st, const char *name,
    int64_t now_ms, struct carve_error *err);
/*
 * Why the node's evacuation waits (NULL: it does not). Returns 1 when that
 * changed the note, 0 when it was already so.
 */
int cp_store_node_evac_note(struct cp_store *st, const char *name,
    const char *note, struct carve_error *err);
/* "drain", "admin" ("none" for CP_EVAC_NONE) */
const char *cp_evac_reason_name(enum cp_evac_reason r);

/* ---- VMs ---- */

/*
 * Insert a VM (vr_deleted_at_ms ignored). CARVE_ECONFLICT when a VM that is
 * not deleted already has the name.
 */
int cp_store_vm_insert(struct cp_store *st, const struct cp_vm_rec *vm,
    struct carve_error *err);
/* Deleted VMs are not found (CARVE_ENOTFOUND). */
int cp_store_vm_get(struct cp_store *st, const char *id, struct cp_vm_rec *out,
    struct carve_error *err);
/* Every VM not deleted, by creation time. */
int cp_store_vm_list(struct cp_store *st, struct cp_vm_rec **out, size_t *n,
    struct carve_error *err);
/* A new command was sent for the VM: desired state and last command. */
int cp_store_vm_set_desired(struct cp_store *st, const char *id,
    enum proto_desired_state desired, const char *command_id, int64_t now_ms,
    struct carve_error *err);
/* The state a command result reported (a vm_state name). */
int cp_store_vm_set_state(struct cp_store *st, const char *id,
    const char *state, int64_t now_ms, struct carve_error *err);
/* The size a vm.resize result reported. */
int cp_store_vm_set_size(struct cp_store *st, const char *id, unsigned vcpus,
    uint64_t memory_mib, int64_t now_ms, struct carve_error *err);
/*
 * What node last reported about VM id (vm_info_encode text, a new string
 * in *info), or *info NULL when its reports do not hold the VM.
 */
int cp_store_vm_report(struct cp_store *st, const char *node, const char *id,
    char **info, struct carve_error *err);
/* The VM is gone: its name is free again and it is no longer listed. */
int cp_store_vm_mark_deleted(struct cp_store *st, const char *id,
    int64_t now_ms, struct carve_error *err);
void cp_vm_rec_clear(struct cp_vm_rec *rec);
void cp_vm_list_free(struct cp_vm_rec *recs, size_t n);

/* ---- commands ---- */

/*
 * Insert a command (status pending, cr_seq and times ignored) for
 * cmd->cr_node; *seq gets its sequence number.
 */
int cp_store_cmd_insert(struct cp_store *st, const struct cp_cmd_rec *cmd,
    int64_t now_ms, int64_t *seq, struct carve_error *err);
int cp_store_cmd_get(struct cp_store *st, const char *id,
    struct cp_cmd_rec *out, struct carve_error *err);
/*
 * The node's commands without a result and seq > cursor, oldest first, at
 * most max of them and about max_bytes of command text (at least one);
 * marks them delivered.
 */
int cp_store_cmd_poll(struct cp_store *st, const char *node, int64_t cursor,
    size_t max, size_t max_bytes, int64_t now_ms, struct cp_cmd_rec **out,
    size_t *n, struct carve_error *err);
/*
 * Record a command's result. Returns 1 when recorded, 0 when it already had
 * one (which is kept: the first result is the answer).
 */
int cp_store_cmd_finish(struct cp_store *st, const char *id,
    enum command_status status, const char *result_json, int64_t now_ms,
    struct carve_error *err);
/* The latest progress of a command without a result (else ignored). */
int cp_store_cmd_set_progress(struct cp_store *st, const char *id,
    const char *progress_json, struct carve_error *err);
void cp_cmd_rec_clear(struct cp_cmd_rec *rec);
void cp_cmd_list_free(struct cp_cmd_rec *recs, size_t n);

/* ---- migrations ---- */

/*
 * A live migration of one VM from source to target, driven by carve-cp
 * through three commands (see cp_mig.h for the states). At most one
 * unfinished migration per VM.
 */
enum cp_mig_state {
	CP_MIG_PREPARING = 0,	/* vm.migrate.prepare sent to the target */
	CP_MIG_MIGRATING,	/* vm.migrate sent to the source */
	CP_MIG_FINISHING,	/* vm.migrate.finish sent to the target */
	CP_MIG_DONE,		/* the VM runs on the target */
	CP_MIG_FAILED,		/* the VM stays on the source */
	CP_MIG_NSTATES
};

struct cp_mig_rec {
	char		 mr_id[IDS_UUID_LEN + 1];
	char		 mr_vm_id[IDS_UUID_LEN + 1];
	char		 mr_source[IDS_NAME_MAX + 1];
	char		 mr_target[IDS_NAME_MAX + 1];
	enum cp_mig_state mr_state;
	bool		 mr_evacuation;		/* started by an evacuation */
	/* The operator's limits; -1: not given (the agent's default). */
	int64_t		 mr_max_downtime_ms;
	int64_t		 mr_bandwidth_mibps;
	int64_t		 mr_timeout_s;
	/* Command ids; "" for a command not sent (yet). */
	char		 mr_prepare_cmd[IDS_UUID_LEN + 1];
	char		 mr_migrate_cmd[IDS_UUID_LEN + 1];
	char		 mr_finish_cmd[IDS_UUID_LEN + 1];
	char		 mr_cancel_cmd[IDS_UUID_LEN + 1];
	char		*mr_prepare_result;	/* JSON text, or NULL */
	char		*mr_migrate_result;	/* JSON text, or NULL */
	char		*mr_error;		/* {"code","message"}, or NULL */
	bool		 mr_migrated;		/* vm.migrate succeeded */
	bool		 mr_cancel_requested;
	int		 mr_finish_tries;	/* finish commands sent */
	int64_t		 mr_created_at_ms;
	int64_t		 mr_updated_at_ms;
	int64_t		 mr_finished_at_ms;	/* 0: not finished */
	/* Read only: the vm.migrate command's last progress (JSON), or NULL. */
	char		*mr_progress;
};

/* "preparing", "migrating", "finishing", "done", "failed" */
const char *cp_mig_state_name(enum cp_mig_state s);
int cp_mig_state_parse(const char *name, enum cp_mig_state *out);
/* done or failed */
bool cp_mig_state_final(enum cp_mig_state s);

/*
 * Insert a migration (times from now_ms). CARVE_ECONFLICT when the VM has
 * an unfinished one.
 */
int cp_store_mig_insert(struct cp_store *st, const struct cp_mig_rec *m,
    int64_t now_ms, struct carve_error *err);
/*
 * Write every changeable field of m (state, commands, results, error,
 * flags); updated_at becomes now_ms, finished_at too when the state is
 * final. CARVE_ENOTFOUND for an unknown id.
 */
int cp_store_mig_update(struct cp_store *st, const struct cp_mig_rec *m,
    int64_t now_ms, struct carve_error *err);
int cp_store_mig_get(struct cp_store *st, const char *id,
    struct cp_mig_rec *out, struct carve_error *err);
/* The VM's unfinished migration; CARVE_ENOTFOUND when none. */
int cp_store_mig_active_for_vm(struct cp_store *st, const char *vm_id,
    struct cp_mig_rec *out, struct carve_error *err);
/* The migration that sent command cmd_id; CARVE_ENOTFOUND when none. */
int cp_store_mig_by_command(struct cp_store *st, const char *cmd_id,
    struct cp_mig_rec *out, struct carve_error *err);
/*
 * Migrations, newest first: every one (active_only false, at most limit;
 * 0 for no limit) or the unfinished ones.
 */
int cp_store_mig_list(struct cp_store *st, bool active_only, size_t limit,
    struct cp_mig_rec **out, size_t *n, struct carve_error *err);
/*
 * The node's evacuation so far: migrations it started since since_ms (by
 * outcome) and whether one is under way.
 */
struct cp_evac_counts {
	int64_t		 ec_done;
	int64_t		 ec_failed;
	int64_t		 ec_active;
};
int cp_store_mig_evac_counts(struct cp_store *st, const char *node,
    int64_t since_ms, struct cp_evac_counts *out, struct carve_error *err);
/*
 * Whether the VM's evacuation migration from node failed since since_ms
 * (an evacuation tries each VM once).
 */
int cp_store_mig_evac_failed(struct cp_store *st, const char *node,
    const char *vm_id, int64_t since_ms, bool *out, struct carve_error *err);
void cp_mig_rec_clear(struct cp_mig_rec *rec);
void cp_mig_list_free(struct cp_mig_rec *recs, size_t n);

/* ---- VMs, continued ---- */

/* The VM now lives on node (a migration arrived). */
int cp_store_vm_set_node(struct cp_store *st, const char *id,
    const char *node, int64_t now_ms, struct carve_error *err);
/* Every VM not deleted on node, by creation time. */
int cp_store_vm_list_node(struct cp_store *st, const char *node,
    struct cp_vm_rec **out, size_t *n, struct carve_error *err);

#endif
