/* carve-cp's scheduler: see cp_sched.h. */
#include "config.h"

#include <string.h>

#include "api/cp/cp_sched.h"

static const char *const sched_units[PROTO_CAP_NCLASSES] = {
	[PROTO_CAP_VCPU] = "vCPUs",
	[PROTO_CAP_MEMORY_MIB] = "MiB of memory",
	[PROTO_CAP_DISK_GIB] = "GiB of disk",
};

bool
cp_sched_node_up(int64_t last_ms, int64_t now_ms, int64_t ttl_ms)
{
	return last_ms > 0 && now_ms - last_ms <= ttl_ms;
}

static int64_t
sched_avail(const struct cp_sched_node *node, int c)
{
	return node->sn_free[c] - node->sn_claimed[c];
}

bool
cp_sched_fits(const struct cp_sched_node *node,
    const int64_t need[PROTO_CAP_NCLASSES])
{
	for (int c = 0; c < PROTO_CAP_NCLASSES; c++)
		if (need[c] > 0 && need[c] > sched_avail(node, c))
			return false;
	return true;
}

/* The first class that does not fit, for the message. */
static int
sched_short_class(const struct cp_sched_node *node,
    const int64_t need[PROTO_CAP_NCLASSES])
{
	for (int c = 0; c < PROTO_CAP_NCLASSES; c++)
		if (need[c] > 0 && need[c] > sched_avail(node, c))
			return c;
	return 0;
}

static int
sched_named(const struct cp_sched_node *nodes, size_t n, const char *name,
    const int64_t need[PROTO_CAP_NCLASSES], int64_t now_ms, int64_t ttl_ms,
    struct carve_error *err)
{
	for (size_t i = 0; i < n; i++) {
		const struct cp_sched_node *node = &nodes[i];
		int c;

		if (strcmp(node->sn_name, name) != 0)
			continue;
		if (!cp_sched_node_up(node->sn_last_heartbeat_ms, now_ms, ttl_ms))
			return error_set(err, CARVE_ECONFLICT, "node \"%s\" is "
			    "down (no heartbeat for %lld s)", name,
			    (long long)(ttl_ms / 1000));
		if (!node->sn_schedulable)
			return error_set(err, CARVE_ECONFLICT, "node \"%s\" is "
			    "not schedulable", name);
		if (!cp_sched_fits(node, need)) {
			c = sched_short_class(node, need);
			return error_set(err, CARVE_ECAPACITY, "node \"%s\" has "
			    "%lld %s free; %lld are needed", name,
			    (long long)sched_avail(node, c), sched_units[c],
			    (long long)need[c]);
		}
		return (int)i;
	}
	return error_set(err, CARVE_ENOTFOUND, "node \"%s\" is not registered",
	    name);
}

int
cp_sched_pick(const struct cp_sched_node *nodes, size_t n, const char *name,
    const int64_t need[PROTO_CAP_NCLASSES], int64_t now_ms, int64_t ttl_ms,
    struct carve_error *err)
{
	size_t up = 0, schedulable = 0;
	int best = -1;

	if (name != NULL && name[0] != '\0')
		return sched_named(nodes, n, name, need, now_ms, ttl_ms, err);
	for (size_t i = 0; i < n; i++) {
		const struct cp_sched_node *node = &nodes[i];
		const struct cp_sched_node *b;
		int64_t mem, bmem;

		if (!cp_sched_node_up(node->sn_last_heartbeat_ms, now_ms, ttl_ms))
			continue;
		up++;
		if (!node->sn_schedulable)
			continue;
		schedulable++;
		if (!cp_sched_fits(node, need))
			continue;
		if (best < 0) {
			best = (int)i;
			continue;
		}
		b = &nodes[best];
		mem = sched_avail(node, PROTO_CAP_MEMORY_MIB);
		bmem = sched_avail(b, PROTO_CAP_MEMORY_MIB);
		if (mem > bmem || (mem == bmem &&
		    strcmp(node->sn_name, b->sn_name) < 0))
			best = (int)i;
	}
	if (best >= 0)
		return best;
	return error_set(err, CARVE_ECAPACITY, "no node can take %lld vCPUs, "
	    "%lld MiB of memory and %lld GiB of disk (%zu nodes, %zu up, %zu "
	    "of them schedulable)", (long long)need[PROTO_CAP_VCPU],
	    (long long)need[PROTO_CAP_MEMORY_MIB],
	    (long long)need[PROTO_CAP_DISK_GIB], n, up, schedulable);
}
