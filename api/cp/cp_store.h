/*
 * carve-cp's state in SQLite (WAL, synchronous=FULL): nodes, VMs, commands
 * and each node's reported VM list. Every call runs on the event loop thread
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
	/* Resources of vm.create commands the capacity report misses. */
	int64_t		 nr_claimed[PROTO_CAP_NCLASSES];
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
 * that never registered.
 */
int cp_store_node_heartbeat(struct cp_store *st, const char *name,
    const struct proto_heartbeat_req *hb, int64_t now_ms, bool *resync,
    struct carve_error *err);

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

#endif
