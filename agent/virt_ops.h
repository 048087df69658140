/*
 * Blocking libvirt operations on carve-managed domains. Each runs on a
 * worker thread with a connection reference from virt_conn() and touches no
 * agent state: inputs in, results out. All are idempotent against libvirt's
 * real state, so re-running one after a crash finishes the job:
 *   create  = define if absent, start if not running
 *   start   = start unless running        stop = shut down unless shut off
 *   destroy = stop if running, undefine if defined
 * A domain without carve's metadata element is never touched.
 *
 * Errors: CARVE_ENOTFOUND, CARVE_ECONFLICT, CARVE_EHYPERVISOR with libvirt's
 * message, or CARVE_EUNAVAIL when the connection died under the call (the
 * caller retries after reconnecting).
 */
#ifndef CARVE_VIRT_OPS_H
#define CARVE_VIRT_OPS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>

#include "agent/virt_xml.h"
#include "api/vm.h"
#include "common/error.h"

/*
 * Fill err from the calling thread's last libvirt error about what:
 * CARVE_EUNAVAIL when the connection is dead, else CARVE_EHYPERVISOR.
 * Returns -1.
 */
int virt_ops_fail(virConnectPtr c, struct carve_error *err, const char *what);
/* True when the thread's last libvirt error has this virErrorNumber. */
bool virt_ops_errcode_is(int code);
/*
 * The managed domain vm_id (for modules with operations of their own, such
 * as virt_resize): NULL with err CARVE_ENOTFOUND when absent or not carve's;
 * *meta filled from its metadata when not NULL. The caller frees it.
 */
virDomainPtr virt_ops_lookup(virConnectPtr c, const char *vm_id,
    struct vm_info *meta, struct carve_error *err);
/* Fill vm->vm_state from libvirt. */
int virt_ops_state(virConnectPtr c, virDomainPtr d, struct vm_info *vm,
    struct carve_error *err);

/*
 * The managed domain vm_id (virDomainFree it), with its record and state in
 * *out (no snapshots read); NULL with CARVE_ENOTFOUND when absent or not
 * carve's.
 */
virDomainPtr virt_ops_domain(virConnectPtr c, const char *vm_id,
    struct vm_info *out, struct carve_error *err);

/* Define (if absent) and start the domain described by xml. */
int virt_op_create(virConnectPtr c, const char *xml, const char *vm_id,
    const char *command_id, struct vm_info *out, struct carve_error *err);
int virt_op_start(virConnectPtr c, const char *vm_id, struct vm_info *out,
    struct carve_error *err);
/*
 * Graceful (ACPI) shutdown, waiting up to timeout_s, then forced off; with
 * force, off at once. *forced tells whether it came to that. When *cancel
 * becomes true (carved shutting down) the wait ends with CARVE_EUNAVAIL and
 * the VM untouched, so the command is recovered at the next start.
 */
int virt_op_stop(virConnectPtr c, const char *vm_id, bool force,
    unsigned timeout_s, const atomic_bool *cancel, bool *forced,
    struct vm_info *out, struct carve_error *err);
int virt_op_reboot(virConnectPtr c, const char *vm_id, struct vm_info *out,
    struct carve_error *err);
/* Succeeds when the domain is already gone. */
int virt_op_destroy(virConnectPtr c, const char *vm_id, struct carve_error *err);
/* One managed domain: CARVE_ENOTFOUND when absent or not managed. */
int virt_op_get(virConnectPtr c, const char *vm_id, struct vm_info *out,
    struct carve_error *err);
/* virt_op_get, and the record's rebuild bookkeeping into *rb. */
int virt_op_get_rebuild(virConnectPtr c, const char *vm_id,
    struct vm_info *out, struct virt_xml_rebuild *rb, struct carve_error *err);
/*
 * Replace the carve metadata element of the managed domain vm_id with xml
 * (from virt_xml_metadata_vm): in its persistent definition and, while it
 * runs, in the live one too, so that either reads back the same.
 */
int virt_op_set_metadata(virConnectPtr c, const char *vm_id, const char *xml,
    struct carve_error *err);
/* All managed domains; *out is an array the caller frees. */
int virt_op_list(virConnectPtr c, struct vm_info **out, size_t *n,
    struct carve_error *err);

struct host_inventory {
	char hostname[256];
	char driver[32];              /* "QEMU", "TEST" */
	char domain_type[16];         /* resolved: "kvm", "qemu" or "test" */
	unsigned long hv_version;     /* major*1000000 + minor*1000 + micro */
	unsigned long lib_version;
	unsigned cpus;
	uint64_t memory_mib;
	uint64_t disk_gib;            /* size of the state dir's file system */
	unsigned numa_nodes;
	struct host_cpu cpu;          /* owned: host_cpu_clear */
};

/*
 * Read the host inventory. want_type is the configured domain type
 * ("auto", "kvm", "qemu"); auto resolves to kvm when libvirt's domain
 * capabilities offer it, else qemu (the test driver is always "test").
 */
int virt_op_inventory(virConnectPtr c, const char *want_type,
    const char *state_dir, struct host_inventory *out,
    struct carve_error *err);
void host_inventory_clear(struct host_inventory *inv);
json_object *host_inventory_encode(const struct host_inventory *inv);

#endif
