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

/*
 * A host's CPU as its inventory reports it (host.cpu_arch, cpu_vendor,
 * cpu_model, cpu_features: libvirt's host capabilities, where the features
 * are those the host has beyond its model's own). Strings borrowed.
 */
struct cp_sched_cpu {
	const char		*sc_arch;	/* "" or NULL: unknown */
	const char		*sc_vendor;
	const char		*sc_model;
	const char *const	*sc_features;
	size_t			 sc_nfeatures;
};

/*
 * What the guest's CPU asks of its host. carve defines its domains without
 * a <cpu> element, so every carve VM is CP_CPU_DEFAULT today; the others
 * are the rule for the day a spec can ask for them.
 */
enum cp_sched_cpu_mode {
	CP_CPU_DEFAULT = 0,	/* QEMU's baseline model for the arch */
	CP_CPU_HOST_MODEL,	/* the source host's model and features */
	CP_CPU_PASSTHROUGH,	/* the source host's CPU as it is */
};

struct cp_sched_node {
	const char	*sn_name;
	int64_t		 sn_last_heartbeat_ms;	/* 0: never */
	bool		 sn_schedulable;
	/* Reported allocatable - allocated, per class. */
	int64_t		 sn_free[PROTO_CAP_NCLASSES];
	/*
	 * Creates and migration prepares sent to the node that its report
	 * does not count yet.
	 */
	int64_t		 sn_claimed[PROTO_CAP_NCLASSES];
	/* For migrations: */
	struct cp_sched_cpu sn_cpu;
	int		 sn_incoming;		/* unfinished, to this node */
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

/*
 * Whether a guest in CPU mode mode, running on a host with CPU src, can run
 * on a host with CPU dst (err, CARVE_ECONFLICT, says why not):
 *   - always: the same architecture, known on both;
 *   - CP_CPU_DEFAULT: nothing more. The baseline model (qemu64 on x86_64)
 *     is what every host of the architecture offers, and it is what the
 *     guest saw when it booted, whatever the source host had.
 *   - CP_CPU_HOST_MODEL: the same vendor and model, and dst has every
 *     feature src has (a feature list is relative to its model, so lists
 *     of two different models cannot be compared: different models are
 *     refused);
 *   - CP_CPU_PASSTHROUGH: as host-model, and the same feature set exactly
 *     (the guest may use anything the source had, and a target with more
 *     is still a different CPU to it).
 */
bool cp_sched_cpu_compatible(const struct cp_sched_cpu *src,
    const struct cp_sched_cpu *dst, enum cp_sched_cpu_mode mode,
    struct carve_error *err);

/*
 * Choose the target of a live migration of a VM needing need (in CPU mode
 * mode) off nodes[source]. A target is up, schedulable, not the source,
 * receiving fewer than max_incoming migrations, CPU-compatible and has
 * room. With name (not NULL, not ""), only that node: unknown is
 * CARVE_ENOTFOUND, the source itself, down, not schedulable, busy or
 * CPU-incompatible CARVE_ECONFLICT, too small CARVE_ECAPACITY, each with a
 * message saying why. Without, the candidate with the most free memory
 * after claims (ties by name); none is CARVE_ECAPACITY with a count of
 * why each node was passed over. Returns the index into nodes or -1.
 */
int cp_sched_pick_target(const struct cp_sched_node *nodes, size_t n,
    size_t source, const char *name, const int64_t need[PROTO_CAP_NCLASSES],
    enum cp_sched_cpu_mode mode, int max_incoming, int64_t now_ms,
    int64_t ttl_ms, struct carve_error *err);

#endif
