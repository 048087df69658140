/*
 * The control-plane client: carved's side of protocol v1 (see
 * /work/notes/protocol.md and api/openapi.yaml), a state machine on the loop.
 *
 *   enrolling    no usable certificate: POST /v1/enroll with the bootstrap
 *                token and a CSR for a key made here
 *   registering  PUT /v1/nodes/{node} with the host inventory and capacity
 *                (once libvirt's view is known)
 *   connected    the long poll (GET .../commands), the heartbeat timer and
 *                the result outbox run side by side
 *   backoff      a request failed (the control plane is unreachable or
 *                refused): wait a jittered, growing delay, then register
 *                again
 *
 * Commands from the long poll go to the same engine as carvectl's (decoder,
 * admission, journal, idempotency), marked as coming from the control
 * plane. Their results are durable in the journal before they are posted,
 * and stay in the outbox (and "unreported" in the journal) until the
 * control plane acknowledged them, across outages and restarts.
 */
#ifndef CARVE_POLLER_H
#define CARVE_POLLER_H

#include <json-c/json.h>

#include "common/error.h"

struct agent;
struct poller;

/*
 * Check the identity files (a key readable by others is refused), finish an
 * interrupted certificate install, and load the outbox from the engine
 * (call after engine_load). Blocking, start-up only; no request is made yet.
 */
int poller_new(struct agent *a, struct poller **out, struct carve_error *err);
/* Start talking to the control plane. */
void poller_start(struct poller *p);
/* libvirt's view was (re)built: the inventory may have changed. */
void poller_view_ready(struct poller *p);
/*
 * Cancel every request and close the handles; cb runs on the loop when all
 * are closed. Results that arrive afterwards stay unreported in the journal
 * (they are posted after the next start). p stays valid until poller_free.
 */
void poller_close(struct poller *p, void (*cb)(void *arg), void *arg);
/* After the loop ended. NULL does nothing. */
void poller_free(struct poller *p);

/*
 * Tell the control plane how far a running command of its own is:
 * POST /v1/commands/{id}/progress {"percent","message"?}. Best effort and
 * latest wins: while one post is in flight only the newest next one waits;
 * nothing is sent while disconnected, nor once the command's result is
 * queued; failures are dropped. Never blocks.
 */
void poller_progress(struct poller *p, const char *command_id, int percent,
    const char *message);

/*
 * {"url","state":"enrolling"|"registering"|"connected"|"backoff"|"stopped",
 *  "last_success","last_error","backoff_ms","cert_expires_at","outbox",
 *  "cursor","requests","failures"}
 */
json_object *poller_status_encode(struct poller *p);

#endif
