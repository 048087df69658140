/*
 * Capacity arithmetic in the shape of nova's placement inventories: per
 * resource class total, reserved, allocation ratio and allocated, with
 * allocatable = floor((total - reserved) * ratio). Pure functions over plain
 * structs, so they are unit-tested exhaustively.
 */
#ifndef CARVE_CAPACITY_H
#define CARVE_CAPACITY_H

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
void capacity_sub(struct capacity *cap, const struct cap_request *req);

/*
 * {"VCPU":{"total","reserved","allocation_ratio","allocated","allocatable",
 *  "free"}, "MEMORY_MIB":{...}, "DISK_GIB":{...}}
 */
json_object *capacity_encode(const struct capacity *cap);

#endif
