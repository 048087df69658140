/*
 * The command engine: exactly-once effect over at-least-once delivery.
 *
 * A command (already decoded) is looked up by id: a known id is answered
 * from memory/the journal and never run again. A new one is admitted
 * (existence, conflicts, capacity claim), journaled as accepted (durable
 * before anything happens), queued behind earlier commands for the same VM,
 * run on the thread pool when its VM's queue and the concurrency limit
 * allow, and its result journaled (durable) before anyone is told. Commands
 * found accepted-but-unfinished in the journal at start-up are recovered
 * through their handler's recovery step once libvirt's state is known.
 */
#ifndef CARVE_ENGINE_H
#define CARVE_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "agent/capacity.h"
#include "agent/journal.h"
#include "api/command.h"
#include "common/error.h"

struct agent;
struct engine;

/* Called exactly once per submit, on the loop thread; res is borrowed. */
typedef void (*engine_result_cb)(const struct command_result *res, void *arg);

struct engine *engine_new(struct agent *a, unsigned max_concurrent);
void engine_free(struct engine *e);

/* Load retained records from the journal (start-up, blocking). */
int engine_load(struct engine *e, struct carve_error *err);

/*
 * Submit a command; takes ownership of cmd's contents (cmd is left cleared).
 * cb may run before engine_submit returns (a known id, or a rejection).
 * engine_submit is for the operator's commands (origin local).
 */
void engine_submit(struct engine *e, struct command *cmd, engine_result_cb cb,
    void *arg);
void engine_submit_from(struct engine *e, struct command *cmd,
    enum journal_origin origin, engine_result_cb cb, void *arg);

/*
 * Reporting results to the control plane. The hook is called once for every
 * result of a control-plane command as soon as it is durable (including
 * commands recovered after a restart, which have no waiter), before the
 * submitter's callback. A rejection that never reached the journal (a
 * transient one: unavailable, or the journal failing) is not durable and
 * does not call the hook.
 */
void engine_set_report_hook(struct engine *e, engine_result_cb cb, void *arg);
/* True when id has a record (queued, running or done). */
bool engine_known(struct engine *e, const char *id);
/* True when id is done and its result is in the journal. */
bool engine_result_durable(struct engine *e, const char *id);
/* cb for every durable result of a control-plane command not reported yet,
 * oldest first (the outbox after a restart). */
void engine_foreach_unreported(struct engine *e, engine_result_cb cb,
    void *arg);
/* The control plane has the result of id: remember it (journal, group
 * committed); it is not offered again after a restart. */
void engine_mark_reported(struct engine *e, const char *id);

/* The agent's view of libvirt is (re)built: run what is queued. */
void engine_set_ready(struct engine *e, bool ready);

/*
 * Sum of claims: creates not yet in the view, and the growth of resizes in
 * flight over the size the view shows (capacity_growth, per VM).
 */
void engine_claims(struct engine *e, struct cap_request *sum);
/* True while a create for vm_id is queued or running. */
bool engine_creating(struct engine *e, const char *vm_id);
/* True while a command found unfinished in the journal at start-up (or
 * interrupted by a lost libvirt connection) is not finished yet. */
bool engine_recovering(struct engine *e);
/* True while a create for a VM named name is queued or running. */
bool engine_name_pending(struct engine *e, const char *name);

/*
 * Migrations. An incoming one holds a reservation from its prepare's
 * success to its finish (loaded from state_dir at start: migrate.h): its
 * size counts as allocated (unless the VM is in the view) and the VM takes
 * no command but vm.migrate.finish. An outgoing one (a vm.migrate not done)
 * lets only vm.migrate.cancel through.
 */
struct migrate_reservation;
void engine_reserve(struct engine *e, const struct migrate_reservation *r);
void engine_unreserve(struct engine *e, const char *vm_id);
bool engine_reserved(struct engine *e, const char *vm_id);
bool engine_migrating(struct engine *e, const char *vm_id);
/* Reservations plus prepares not done yet. */
unsigned engine_incoming(struct engine *e);
unsigned engine_outgoing(struct engine *e);
/* {"incoming":[{vm_id,name,source_node,command_id,reserved_at}],
 *  "outgoing":[{vm_id,dest_node,command_id,state}],"max_incoming",
 *  "max_outgoing"} */
json_object *engine_migrations_encode(struct engine *e);

/* Counters since start, for metrics. */
struct engine_type_stats {
	uint64_t succeeded;
	uint64_t failed;
	uint64_t duration_ms_sum;    /* accepted -> result durable */
};
const struct engine_type_stats *engine_stats(const struct engine *e,
    enum command_type type);

unsigned engine_running(const struct engine *e);
unsigned engine_queued(const struct engine *e);
/* [{command_id,type,vm_id,state:"queued"|"running",accepted_at}] */
json_object *engine_inflight_encode(struct engine *e);
/* The newest limit results, newest first (wire form). */
json_object *engine_recent_encode(struct engine *e, unsigned limit);

/*
 * Stop starting commands; cb runs once nothing is running and every result
 * is durable. Queued commands stay accepted in the journal and are recovered
 * at the next start.
 */
void engine_drain(struct engine *e, void (*cb)(void *arg), void *arg);

#endif
