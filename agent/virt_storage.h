/*
 * carve's disks through libvirt's storage API, on worker threads: one dir
 * pool (named by [libvirt] storage_pool, default "carve", at
 * STATE_DIR/disks) holding, per VM, "<vm_id>-root.qcow2" (a qcow2 overlay
 * on a cached base image), "<vm_id>-data<i>.qcow2" (its data disks, plain
 * qcow2) and "<vm_id>-seed.iso" (the cloud-init seed). Volume names come from the validated vm_id only.
 * Every call is idempotent, like virt_ops: re-running one after a crash
 * finishes the job. Errors as in virt_ops.h (CARVE_EUNAVAIL when the
 * connection died under the call).
 */
#ifndef CARVE_VIRT_STORAGE_H
#define CARVE_VIRT_STORAGE_H

#include <stdbool.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#include "api/command.h"
#include "common/error.h"

/* The default of [libvirt] storage_pool. */
#define VIRT_POOL_NAME "carve"

/* Define, build, start and autostart the pool at dir unless it is so. */
int virt_storage_pool_ensure(virConnectPtr c, const char *pool, const char *dir,
    struct carve_error *err);

/* The pool's capacity in bytes; CARVE_ENOTFOUND when there is no pool. */
int virt_storage_pool_capacity(virConnectPtr c, const char *pool,
    uint64_t *bytes, struct carve_error *err);

/*
 * The root disk of vm_id: a qcow2 volume of capacity_bytes on base (a
 * cached image in base_fmt). An existing volume on the same base is
 * reused; one on another base is CARVE_ECONFLICT. *path: the volume's path
 * (a new string).
 */
int virt_storage_root(virConnectPtr c, const char *pool, const char *vm_id,
    uint64_t capacity_bytes, const char *base, enum vm_image_format base_fmt,
    char **path, struct carve_error *err);

/*
 * vm.rebuild: a fresh root disk for vm_id, whatever was there before: the
 * root volume (if any) is deleted and a new one made on base, as in
 * virt_storage_root. Run again after a crash, it makes a fresh one again
 * (callers only run it while the VM is shut off).
 */
int virt_storage_root_replace(virConnectPtr c, const char *pool,
    const char *vm_id, uint64_t capacity_bytes, const char *base,
    enum vm_image_format base_fmt, char **path, struct carve_error *err);

/*
 * Data disk index (0..VM_DATA_DISKS_MAX-1) of vm_id: an empty qcow2 volume
 * of capacity_bytes. An existing one of that size without a backing file
 * is reused (its data kept); one of another size is CARVE_ECONFLICT.
 * *path: the volume's path (a new string).
 */
int virt_storage_data(virConnectPtr c, const char *pool, const char *vm_id,
    unsigned index, uint64_t capacity_bytes, char **path,
    struct carve_error *err);

/*
 * The seed volume of vm_id with the contents of the file iso (replacing
 * any seed volume there was: a half-uploaded one is never trusted).
 * Drivers that cannot upload (the test driver) get the volume only.
 */
int virt_storage_seed(virConnectPtr c, const char *pool, const char *vm_id,
    const char *iso, char **path, struct carve_error *err);

/*
 * Delete every volume of vm_id (names starting "<vm_id>-"); nothing to
 * delete (or no pool) is success. *deleted counts them (may be NULL).
 */
int virt_storage_delete_vm(virConnectPtr c, const char *pool, const char *vm_id,
    unsigned *deleted, struct carve_error *err);

/* A volume of the pool and the path of its backing file (NULL: none). */
struct virt_storage_vol {
	char *vsv_name;
	char *vsv_backing;
};

/*
 * Every volume of the pool with its backing file, as libvirt knows them (a
 * volume deleted meanwhile is skipped). CARVE_ENOTFOUND when there is no
 * pool. Free with virt_storage_vols_free.
 */
int virt_storage_volumes(virConnectPtr c, const char *pool,
    struct virt_storage_vol **vols, size_t *n, struct carve_error *err);
void virt_storage_vols_free(struct virt_storage_vol *vols, size_t n);

#endif
