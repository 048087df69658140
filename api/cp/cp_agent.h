/*
 * The agent side of protocol v1 in carve-cp: enrollment and renewal,
 * registration, the long poll for commands, results, progress and
 * heartbeats (see /work/notes/protocol.md, api/openapi.yaml).
 *
 * A long poll with nothing to deliver is parked: the request waits in a
 * list, without a thread, until a command for its node is stored
 * (cp_agent_wake), its wait runs out (an empty answer), or its client goes
 * away (the request is dropped).
 */
#ifndef CARVE_CP_AGENT_H
#define CARVE_CP_AGENT_H

#include "api/cp/cp.h"
#include "api/cp/cp_http.h"
#include "common/error.h"

int cp_agent_enroll(struct cp_req *r, struct carve_error *err);
int cp_agent_renew(struct cp_req *r, struct carve_error *err);
int cp_agent_register(struct cp_req *r, struct carve_error *err);
int cp_agent_poll(struct cp_req *r, struct carve_error *err);
int cp_agent_heartbeat(struct cp_req *r, struct carve_error *err);
int cp_agent_result(struct cp_req *r, struct carve_error *err);
int cp_agent_progress(struct cp_req *r, struct carve_error *err);

/* The parked long polls; cp_polls_free drops them without an answer. */
struct cp_polls *cp_polls_new(void);
void cp_polls_free(struct cp_polls *p);
/* How many polls are parked (for tests and the log). */
size_t cp_polls_count(const struct cp_polls *p);

/*
 * A command for node was stored: answer the node's parked polls that now
 * have something to deliver.
 */
void cp_agent_wake(struct cp *cp, const char *node);
/*
 * The same once the transaction storing the command commits: queue node
 * (cp_agent_wake_flush wakes the queue, cp_agent_wake_drop forgets it
 * after a rollback). A full queue wakes every parked poll at the flush.
 */
void cp_agent_wake_later(struct cp *cp, const char *node);
void cp_agent_wake_flush(struct cp *cp);
void cp_agent_wake_drop(struct cp *cp);

#endif
