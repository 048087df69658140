/*
 * Prometheus text metrics over plain HTTP on [metrics] listen (host:port;
 * keep it on loopback or a management network: it has no authentication).
 * GET /metrics answers; anything else is 404. One request per connection.
 */
#ifndef CARVE_METRICS_H
#define CARVE_METRICS_H

#include "common/error.h"

struct agent;
struct metrics;

/* Start listening on "host:port" ("127.0.0.1:9464", "[::1]:9464"). */
int metrics_open(struct agent *a, const char *listen, struct metrics **out,
    struct carve_error *err);
void metrics_close(struct metrics *m, void (*cb)(void *arg), void *arg);

/* The exposition text (a new string): also used by tests. */
char *metrics_render(struct agent *a);

#endif
