/*
 * Live migration in carve-cp: the state machine that drives one migration
 * through its three commands, the evacuation of nodes, and the admin
 * endpoints for both.
 *
 *   preparing   vm.migrate.prepare sent to the target (with the VM's
 *               stored spec): the target makes the VM's volumes and holds
 *               its size, and answers where the source must send.
 *   migrating   vm.migrate sent to the source (with the prepare result's
 *               URIs, disk paths and console log, and the limits); the
 *               source posts progress while it runs.
 *   finishing   vm.migrate.finish sent to the target, whatever happened
 *               before: the target decides from libvirt whether the VM
 *               arrived (it keeps it) or not (it deletes what prepare made).
 *   done        the VM runs on the target: its node is the target now.
 *   failed      the VM stays where it was (on the source).
 *
 * The finish's outcome is the truth about where the VM is: a vm.migrate
 * that reports a failure although libvirt completed the migration (a
 * timeout racing the last iteration) still ends done. Every step is taken
 * in the transaction that stores the result causing it, so a restart finds
 * each migration in a state whose command is stored and will be delivered;
 * a pass at start-up and every few seconds (cp_mig_tick) re-applies results
 * a crashed step left unapplied and moves evacuations on.
 *
 * Limits, like nova's defaults: one outgoing and one incoming migration per
 * node at a time (the agents enforce their own [migration] limits too).
 */
#ifndef CARVE_CP_MIG_H
#define CARVE_CP_MIG_H

#include <stdbool.h>
#include <stdint.h>

#include "api/command.h"
#include "api/cp/cp.h"
#include "api/cp/cp_http.h"
#include "api/cp/cp_store.h"
#include "common/error.h"

#define CP_MIG_MAX_OUTGOING	1
#define CP_MIG_MAX_INCOMING	1
/* Finish commands sent before a migration is settled without one. */
#define CP_MIG_FINISH_TRIES	3
/* How often unfinished migrations and evacuations are looked at. */
#define CP_MIG_TICK_MS		2000
/* GET /v1/migrations lists at most this many (newest first). */
#define CP_MIG_LIST_MAX		500

/* ---- the state machine, as a pure function ---- */

enum cp_mig_event {
	CP_MIG_EV_PREPARED = 0,		/* vm.migrate.prepare succeeded */
	CP_MIG_EV_PREPARE_FAILED,
	CP_MIG_EV_MIGRATED,		/* vm.migrate succeeded */
	CP_MIG_EV_MIGRATE_FAILED,
	CP_MIG_EV_ARRIVED,		/* finish: the VM is on the target */
	CP_MIG_EV_RELEASED,		/* finish: it is not; target cleaned */
	CP_MIG_EV_FINISH_FAILED,	/* finish itself failed */
	CP_MIG_EV_CANCEL,		/* the operator asked to cancel */
	CP_MIG_NEVENTS
};

enum cp_mig_action {
	CP_MIG_ACT_NONE = 0,
	CP_MIG_ACT_MIGRATE,	/* send vm.migrate to the source */
	CP_MIG_ACT_FINISH,	/* send vm.migrate.finish to the target */
	CP_MIG_ACT_CANCEL,	/* send vm.migrate.cancel to the source */
};

/* The part of a migration the state machine reads and changes. */
struct cp_mig_sm {
	enum cp_mig_state	sm_state;
	bool			sm_migrate_sent;
	bool			sm_migrated;
	bool			sm_cancel_requested;
	int			sm_finish_tries;
	/* Out: the VM's node becomes the target (set on the step to done). */
	bool			sm_move;
};

/*
 * Apply event ev to sm; returns what to send. An event that does not apply
 * in the state (a late result of a command the machine has moved past) is
 * ignored: CP_MIG_ACT_NONE and sm unchanged. A cancel that comes too late
 * (finishing or final) is -1 with err CARVE_ECONFLICT; a second cancel is
 * CP_MIG_ACT_NONE. On a step to failed, *why (not NULL) names the reason
 * when the machine itself knows one better than the commands' errors
 * (e.g. a finish that found a VM that was never sent), else NULL.
 */
int cp_mig_advance(struct cp_mig_sm *sm, enum cp_mig_event ev,
    const char **why, struct carve_error *err);

/* ---- driving (all on the loop, each in its own transaction) ---- */

/* The limits an operator may give a migration; -1: not given. */
struct cp_mig_limits {
	int64_t	ml_max_downtime_ms;
	int64_t	ml_bandwidth_mibps;
	int64_t	ml_timeout_s;
};

/*
 * Start a migration of VM vm_id to target (NULL or "": the scheduler's
 * choice). Refused before any command is stored when the VM is not running
 * or has a command or migration under way (CARVE_ECONFLICT), when its node
 * already sends CP_MIG_MAX_OUTGOING migrations (CARVE_ECONFLICT), or when
 * no target fits (cp_sched_pick_target's errors). On success out (not
 * NULL) holds the stored migration (cp_mig_rec_clear it) and the target
 * is woken.
 */
int cp_mig_start(struct cp *cp, const char *vm_id, const char *target,
    const struct cp_mig_limits *limits, bool evacuation,
    struct cp_mig_rec *out, struct carve_error *err);

/*
 * The effect of a migration command's result (any of the four types),
 * called inside the transaction that records it: advance the migration
 * that sent it. Nodes to wake are queued with cp_agent_wake_later.
 */
int cp_mig_on_result(struct cp *cp, const struct cp_cmd_rec *cmd,
    const struct command_result *res, int64_t now_ms,
    struct carve_error *err);

/* The VM's unfinished migration blocks other actions: CARVE_ECONFLICT. */
int cp_mig_vm_check_idle(struct cp *cp, const char *vm_id,
    struct carve_error *err);

/*
 * The node's schedulable flag changed (heartbeat or registration): turning
 * unschedulable starts an evacuation (reason drain); turning schedulable
 * again ends a drain's evacuation (the migration under way completes).
 */
void cp_mig_node_schedulable(struct cp *cp, const char *node, bool was,
    bool now_schedulable);

/*
 * Re-apply results a crash left unapplied, and move every running
 * evacuation on by one migration where its node has none under way.
 * Run at start-up, every CP_MIG_TICK_MS, and soon after cp_mig_kick.
 */
void cp_mig_tick(struct cp *cp);
/* Ask for a tick as soon as the loop is free. */
void cp_mig_kick(struct cp *cp);

/*
 * The node's evacuation for GET /v1/nodes/{name}: a new object, or NULL
 * when the node was never evacuated.
 */
json_object *cp_mig_evac_encode(struct cp *cp, const struct cp_node_rec *node,
    struct carve_error *err);
/* {"id","state"} of the VM's unfinished migration, or NULL. */
json_object *cp_mig_vm_ref(struct cp *cp, const char *vm_id);

/* ---- admin endpoints ---- */

/* POST /v1/vms/{id}/actions {"action":"migrate",...} (body decoded there) */
int cp_mig_admin_migrate(struct cp_req *r, const char *vm_id,
    struct carve_error *err);
int cp_mig_admin_list(struct cp_req *r, struct carve_error *err);
int cp_mig_admin_get(struct cp_req *r, struct carve_error *err);
int cp_mig_admin_cancel(struct cp_req *r, struct carve_error *err);
int cp_mig_admin_evacuate(struct cp_req *r, struct carve_error *err);

#endif
