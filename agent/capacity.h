/*
 * Capacity arithmetic in the shape of nova's placement inventories: per
 * resource class total, reserved, allocation ratio and allocated, with
 * allocatable = floor((total - reserved) * ratio). Pure functions over plain
 * structs, so they are unit-tested exhaustively.
 */
#ifndef CARVE_CAPACITY_H
#define CARVE_CAPACITY_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/error.h"

enum cap_class {
	CAP_VCPU = 0,
	CAP_MEMORY_MIB,
	CAP_DISK_GIB,
	CAP_NCLASSES
};

struct cap_inventory {
	uint64_t total;
	uint64_t reserved;
	double ratio;
	uint64_t allocated;   /* managed VMs + in-flight claims */
};

struct capacity {
	struct cap_inventory cap[CAP_NCLASSES];
};

struct cap_request {
	uint64_t amount[CAP_NCLASSES];
};

/* "VCPU", "MEMORY_MIB", "DISK_GIB" */
const char *capacity_class_name(enum cap_class c);
uint64_t capacity_allocatable(const struct cap_inventory *inv);
/* allocatable - allocated, 0 when over-committed already. */
uint64_t capacity_free(const struct cap_inventory *inv);

/*
 * Can req be placed? CARVE_EINVAL when a single request exceeds what the host
 * could ever give it (more vCPUs than host CPUs, more memory than the host
 * has), CARVE_ECAPACITY when it does not fit next to what is allocated now.
 * The message says which class and by how much.
 */
int capacity_admit(const struct capacity *cap, const struct cap_request *req,
    struct carve_error *err);
void capacity_add(struct capacity *cap, const struct cap_request *req);

/*
 * Resizes. A VM of size cur with resizes in flight to targets[0..n) (a
 * class at 0 is one that resize leaves alone) holds a claim of, per class,
 * how far the largest target exceeds cur, 0 when none does: a shrink
 * claims nothing, and resizes queued one behind the other claim their
 * peak, not their sum. out = that claim.
 */
void capacity_growth(const struct cap_request *cur,
    const struct cap_request *targets, size_t n, struct cap_request *out);
/*
 * Can a VM grow to target when that adds need to the claims (cap counts
 * everything else, this VM's other resizes included)? CARVE_EINVAL when
 * target exceeds what the host could ever give one VM, CARVE_ECAPACITY
 * when need does not fit in what is free; the message says which class
 * and by how much.
 */
int capacity_admit_growth(const struct capacity *cap,
    const struct cap_request *target, const struct cap_request *need,
    struct carve_error *err);
void capacity_sub(struct capacity *cap, const struct cap_request *req);

/*
 * {"VCPU":{"total","reserved","allocation_ratio","allocated","allocatable",
 *  "free"}, "MEMORY_MIB":{...}, "DISK_GIB":{...}}
 */
json_object *capacity_encode(const struct capacity *cap);

#endif
