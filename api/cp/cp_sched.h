/*
 * carve-cp's scheduler: which node gets a new VM. A pure function over node
 * records (what each node last reported, plus the claims of creates the
 * report cannot contain yet), so it is tested without a database or a clock.
 */
#ifndef CARVE_CP_SCHED_H
#define CARVE_CP_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/proto.h"
#include "common/error.h"

struct cp_sched_node {
	const char	*sn_name;
	int64_t		 sn_last_heartbeat_ms;	/* 0: never */
	bool		 sn_schedulable;
	/* Reported allocatable - allocated, per class. */
	int64_t		 sn_free[PROTO_CAP_NCLASSES];
	/* Creates sent to the node that its report does not count yet. */
	int64_t		 sn_claimed[PROTO_CAP_NCLASSES];
};

/* Whether a node that last heartbeated at last_ms is up at now_ms. */
bool cp_sched_node_up(int64_t last_ms, int64_t now_ms, int64_t ttl_ms);

/* Whether need fits in the node's free capacity after its claims. */
bool cp_sched_fits(const struct cp_sched_node *node,
    const int64_t need[PROTO_CAP_NCLASSES]);

/*
 * Choose a node for a VM needing need. With name (not NULL, not ""), only
 * that node: unknown is CARVE_ENOTFOUND, down or not schedulable
 * CARVE_ECONFLICT, too small CARVE_ECAPACITY. Without, the node that is up,
 * schedulable and fits with the most free memory after claims, ties broken
 * by name; none is CARVE_ECAPACITY. Returns the index into nodes, or -1
 * with err set.
 */
int cp_sched_pick(const struct cp_sched_node *nodes, size_t n,
    const char *name, const int64_t need[PROTO_CAP_NCLASSES], int64_t now_ms,
    int64_t ttl_ms, struct carve_error *err);

#endif
