/*
 * vm.resize against libvirt (worker thread, blocking): change a managed
 * domain's vCPUs and memory, live where the running guest allows it and
 * always in the persistent definition, and record the new size in carve's
 * metadata (live and persistent), which is what capacity counts.
 *
 * Live, within the maxima the domain was started with: vCPUs are
 * hot-plugged (never hot-unplugged: that needs the guest's cooperation and
 * libvirt gives up after 5 s with the outcome unknown, so a vCPU shrink
 * waits for the next boot), memory is moved by the balloon either way.
 * Growth beyond a maximum raises the maximum of the persistent definition
 * (virt_xml_max_*) and takes effect at the next boot.
 *
 * Idempotent: running it again converges on the same definition and
 * reports the same outcome, so recovery after a crash is running it again.
 */
#ifndef CARVE_VIRT_RESIZE_H
#define CARVE_VIRT_RESIZE_H

#include <stdbool.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "api/vm.h"
#include "common/error.h"

struct virt_resize_req {
	unsigned vcpus;               /* the new size; 0: as it is */
	uint64_t memory_mib;          /* the new size; 0: as it is */
	/* How a maximum that must grow is raised (virt_xml_max_*). */
	unsigned max_vcpus_factor;
	unsigned max_memory_factor;
	unsigned host_cpus;
	uint64_t host_memory_mib;
};

struct virt_resize_result {
	struct vm_info vm;            /* afterwards: the new size, the state */
	/* The running guest has what this resize changed now (false when it
	 * is not running: the size is for its next boot). */
	bool live;
	unsigned max_vcpus;           /* of the persistent definition */
	uint64_t max_memory_mib;
	char warning[CARVE_ERRMSG_MAX];   /* "" when there is nothing to say */
};

/*
 * Resize vm_id to req. Errors: CARVE_ENOTFOUND, CARVE_EHYPERVISOR (the
 * persistent definition is put back as it was when a change to it fails),
 * CARVE_EUNAVAIL when the connection died (run it again once back).
 */
int virt_resize(virConnectPtr c, const char *vm_id,
    const struct virt_resize_req *req, struct virt_resize_result *out,
    struct carve_error *err);

/*
 * What the guest uses (KiB) from n balloon statistics (virDomainMemoryStats):
 * available - usable (memory it cannot give back without swapping), or
 * available - unused from guests that report no "usable". 0 when the
 * statistics do not say (no balloon driver, or no stats period).
 */
uint64_t virt_resize_guest_used_kib(const virDomainMemoryStatStruct *st,
    int n);

#endif
