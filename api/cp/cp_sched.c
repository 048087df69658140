/* carve-cp's scheduler: see cp_sched.h. */
#include "config.h"

#include <stdio.h>
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

/* ------------------------------------------------------------ migration */

static bool
sched_known(const char *s)
{
	return s != NULL && s[0] != '\0';
}

static bool
sched_has_feature(const struct cp_sched_cpu *cpu, const char *f)
{
	for (size_t i = 0; i < cpu->sc_nfeatures; i++)
		if (strcmp(cpu->sc_features[i], f) == 0)
			return true;
	return false;
}

bool
cp_sched_cpu_compatible(const struct cp_sched_cpu *src,
    const struct cp_sched_cpu *dst, enum cp_sched_cpu_mode mode,
    struct carve_error *err)
{
	if (!sched_known(src->sc_arch) || !sched_known(dst->sc_arch)) {
		error_set(err, CARVE_ECONFLICT, "the CPU architecture of %s "
		    "host is not known", sched_known(src->sc_arch) ?
		    "the target" : "the source");
		return false;
	}
	if (strcmp(src->sc_arch, dst->sc_arch) != 0) {
		error_set(err, CARVE_ECONFLICT, "CPU architecture %s cannot run "
		    "a guest of %s", dst->sc_arch, src->sc_arch);
		return false;
	}
	if (mode == CP_CPU_DEFAULT)
		return true;
	if (!sched_known(src->sc_model) || !sched_known(dst->sc_model) ||
	    strcmp(src->sc_model, dst->sc_model) != 0 ||
	    (sched_known(src->sc_vendor) != sched_known(dst->sc_vendor)) ||
	    (sched_known(src->sc_vendor) &&
	    strcmp(src->sc_vendor, dst->sc_vendor) != 0)) {
		error_set(err, CARVE_ECONFLICT, "CPU model %s %s differs from "
		    "the source's %s %s",
		    sched_known(dst->sc_vendor) ? dst->sc_vendor : "(unknown)",
		    sched_known(dst->sc_model) ? dst->sc_model : "(unknown)",
		    sched_known(src->sc_vendor) ? src->sc_vendor : "(unknown)",
		    sched_known(src->sc_model) ? src->sc_model : "(unknown)");
		return false;
	}
	for (size_t i = 0; i < src->sc_nfeatures; i++)
		if (!sched_has_feature(dst, src->sc_features[i])) {
			error_set(err, CARVE_ECONFLICT, "the CPU lacks feature "
			    "%s of the source's", src->sc_features[i]);
			return false;
		}
	if (mode == CP_CPU_PASSTHROUGH)
		for (size_t i = 0; i < dst->sc_nfeatures; i++)
			if (!sched_has_feature(src, dst->sc_features[i])) {
				error_set(err, CARVE_ECONFLICT, "the CPU has "
				    "feature %s the source lacks (a passed-"
				    "through CPU must be the same)",
				    dst->sc_features[i]);
				return false;
			}
	return true;
}

/* Why a node is not a target; 0 when it is one. */
enum sched_skip {
	SKIP_NONE = 0,
	SKIP_SOURCE,
	SKIP_DOWN,
	SKIP_UNSCHEDULABLE,
	SKIP_BUSY,
	SKIP_CPU,
	SKIP_ROOM,
	SKIP_N
};

static enum sched_skip
sched_target_check(const struct cp_sched_node *nodes, size_t i, size_t source,
    const int64_t need[PROTO_CAP_NCLASSES], enum cp_sched_cpu_mode mode,
    int max_incoming, int64_t now_ms, int64_t ttl_ms, struct carve_error *err)
{
	const struct cp_sched_node *node = &nodes[i];
	int c;

	if (i == source) {
		error_set(err, CARVE_ECONFLICT, "the VM already runs on node "
		    "\"%s\"", node->sn_name);
		return SKIP_SOURCE;
	}
	if (!cp_sched_node_up(node->sn_last_heartbeat_ms, now_ms, ttl_ms)) {
		error_set(err, CARVE_ECONFLICT, "node \"%s\" is down (no "
		    "heartbeat for %lld s)", node->sn_name,
		    (long long)(ttl_ms / 1000));
		return SKIP_DOWN;
	}
	if (!node->sn_schedulable) {
		error_set(err, CARVE_ECONFLICT, "node \"%s\" is not "
		    "schedulable (drained or being evacuated)", node->sn_name);
		return SKIP_UNSCHEDULABLE;
	}
	if (node->sn_incoming >= max_incoming) {
		error_set(err, CARVE_ECONFLICT, "node \"%s\" already receives "
		    "%d migration%s (the limit is %d)", node->sn_name,
		    node->sn_incoming, node->sn_incoming == 1 ? "" : "s",
		    max_incoming);
		return SKIP_BUSY;
	}
	if (!cp_sched_cpu_compatible(&nodes[source].sn_cpu, &node->sn_cpu,
	    mode, err)) {
		char why[CARVE_ERRMSG_MAX];

		snprintf(why, sizeof(why), "%s", err->message);
		error_reset(err, CARVE_ECONFLICT, "node \"%s\" cannot run the "
		    "VM's CPU: %s", node->sn_name, why);
		return SKIP_CPU;
	}
	if (!cp_sched_fits(node, need)) {
		c = sched_short_class(node, need);
		error_set(err, CARVE_ECAPACITY, "node \"%s\" has %lld %s free; "
		    "%lld are needed", node->sn_name,
		    (long long)sched_avail(node, c), sched_units[c],
		    (long long)need[c]);
		return SKIP_ROOM;
	}
	return SKIP_NONE;
}

int
cp_sched_pick_target(const struct cp_sched_node *nodes, size_t n,
    size_t source, const char *name, const int64_t need[PROTO_CAP_NCLASSES],
    enum cp_sched_cpu_mode mode, int max_incoming, int64_t now_ms,
    int64_t ttl_ms, struct carve_error *err)
{
	size_t skipped[SKIP_N] = { 0 };
	int best = -1;

	if (source >= n)
		return error_set(err, CARVE_EINVAL, "the source node is not in "
		    "the list");
	for (size_t i = 0; i < n; i++) {
		struct carve_error why = { 0 };
		enum sched_skip k;
		int64_t mem, bmem;

		if (name != NULL && name[0] != '\0' &&
		    strcmp(nodes[i].sn_name, name) != 0)
			continue;
		k = sched_target_check(nodes, i, source, need, mode,
		    max_incoming, now_ms, ttl_ms, &why);
		if (name != NULL && name[0] != '\0') {
			if (k != SKIP_NONE) {
				*err = why;
				return -1;
			}
			return (int)i;
		}
		skipped[k]++;
		if (k != SKIP_NONE)
			continue;
		if (best >= 0) {
			mem = sched_avail(&nodes[i], PROTO_CAP_MEMORY_MIB);
			bmem = sched_avail(&nodes[best], PROTO_CAP_MEMORY_MIB);
			if (mem < bmem || (mem == bmem && strcmp(nodes[i].sn_name,
			    nodes[best].sn_name) > 0))
				continue;
		}
		best = (int)i;
	}
	if (name != NULL && name[0] != '\0')
		return error_set(err, CARVE_ENOTFOUND, "node \"%s\" is not "
		    "registered", name);
	if (best >= 0)
		return best;
	return error_set(err, CARVE_ECAPACITY, "no node can take the VM "
	    "(%lld vCPUs, %lld MiB of memory, %lld GiB of disk): of %zu other "
	    "nodes, %zu are down, %zu not schedulable, %zu busy with another "
	    "incoming migration, %zu have an incompatible CPU and %zu lack "
	    "room", (long long)need[PROTO_CAP_VCPU],
	    (long long)need[PROTO_CAP_MEMORY_MIB],
	    (long long)need[PROTO_CAP_DISK_GIB], n - 1, skipped[SKIP_DOWN],
	    skipped[SKIP_UNSCHEDULABLE], skipped[SKIP_BUSY], skipped[SKIP_CPU],
	    skipped[SKIP_ROOM]);
}
