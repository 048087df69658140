/*
 * carve's storage pool and volumes through libvirt: see virt_storage.h.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "agent/virt_ops.h"
#include "agent/virt_storage.h"
#include "agent/virt_xml.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/xalloc.h"


static virStoragePoolPtr
vs_pool(virConnectPtr c, const char *pool, struct carve_error *err)
{
	virStoragePoolPtr p = virStoragePoolLookupByName(c, pool);

	if (p == NULL) {
		if (virt_ops_errcode_is(VIR_ERR_NO_STORAGE_POOL))
			error_set(err, CARVE_ENOTFOUND, "storage pool %s is not "
			    "defined", pool);
		else
			virt_ops_fail(c, err, "looking up the storage pool");
	}
	return p;
}

/*
 * A pool named "carve" somewhere else than dir (state_dir moved, or a test
 * left it behind): taken over when it holds nothing, else refused. Returns
 * 1 when p was undefined (and freed), 0 when it is at dir.
 */
static int
vs_pool_check_path(virConnectPtr c, virStoragePoolPtr p, const char *pool,
    const char *dir,
    struct carve_error *err)
{
	char *xml = virStoragePoolGetXMLDesc(p, 0), *path = NULL;
	int nvols;

	if (xml == NULL)
		return virt_ops_fail(c, err, "reading the storage pool");
	if (virt_xml_parse_pool_path(xml, &path, err) < 0) {
		free(xml);
		return -1;
	}
	free(xml);
	if (strcmp(path, dir) == 0) {
		free(path);
		return 0;
	}
	nvols = virStoragePoolIsActive(p) == 1 ?
	    virStoragePoolNumOfVolumes(p) : 0;
	if (nvols != 0) {
		error_set(err, CARVE_ECONFLICT, "storage pool %s is at %s, not "
		    "%s, and holds volumes: not touching it", pool,
		    path, dir);
		free(path);
		return -1;
	}
	log_warn("virt", "storage pool %s was at %s and empty: moving it to %s",
	    pool, path, dir);
	free(path);
	if (virStoragePoolIsActive(p) == 1 && virStoragePoolDestroy(p) < 0)
		return virt_ops_fail(c, err, "stopping the old storage pool");
	if (virStoragePoolUndefine(p) < 0)
		return virt_ops_fail(c, err, "undefining the old storage pool");
	virStoragePoolFree(p);
	return 1;
}

int
virt_storage_pool_ensure(virConnectPtr c, const char *pool, const char *dir,
    struct carve_error *err)
{
	struct carve_error lerr = { 0 };
	virStoragePoolPtr p;
	char *xml;
	int autostart = 0, rc = -1, moved;

	if ((p = vs_pool(c, pool, &lerr)) != NULL) {
		if ((moved = vs_pool_check_path(c, p, pool, dir, err)) < 0) {
			virStoragePoolFree(p);
			return -1;
		}
		if (moved == 1) {
			p = NULL;
			lerr.code = CARVE_ENOTFOUND;
		}
	}
	if (p == NULL) {
		if (lerr.code != CARVE_ENOTFOUND) {
			*err = lerr;
			return -1;
		}
		if ((xml = virt_xml_pool(pool, dir, err)) == NULL)
			return -1;
		p = virStoragePoolDefineXML(c, xml, 0);
		free(xml);
		if (p == NULL)
			return virt_ops_fail(c, err, "defining the storage pool");
		log_info("virt", "storage pool %s defined at %s", pool,
		    dir);
	}
	if (virStoragePoolIsActive(p) != 1) {
		/* Makes the directory (mode from the pool XML); an existing
		 * one is fine, and start says so if it is not. */
		if (virStoragePoolBuild(p, 0) < 0)
			log_debug("virt", "building pool %s: %s", pool,
			    virGetLastErrorMessage());
		if (virStoragePoolCreate(p, 0) < 0 &&
		    virStoragePoolIsActive(p) != 1) {
			virt_ops_fail(c, err, "starting the storage pool");
			goto out;
		}
	}
	if (virStoragePoolGetAutostart(p, &autostart) == 0 && !autostart &&
	    virStoragePoolSetAutostart(p, 1) < 0)
		log_warn("virt", "cannot set pool %s to autostart: %s",
		    pool, virGetLastErrorMessage());
	rc = 0;
out:
	virStoragePoolFree(p);
	return rc;
}

int
virt_storage_pool_capacity(virConnectPtr c, const char *pool,
    uint64_t *bytes, struct carve_error *err)
{
	virStoragePoolPtr p = vs_pool(c, pool, err);
	virStoragePoolInfo info;
	int rc = 0;

	if (p == NULL)
		return -1;
	if (virStoragePoolGetInfo(p, &info) < 0)
		rc = virt_ops_fail(c, err, "reading the storage pool's size");
	else
		*bytes = info.capacity;
	virStoragePoolFree(p);
	return rc;
}

static char *
vs_vol_name(const char *vm_id, const char *suffix, struct carve_error *err)
{
	char norm[IDS_UUID_LEN + 1];

	if (!ids_uuid_valid(vm_id)) {
		error_set(err, CARVE_EINVAL, "vm_id is not a valid UUID");
		return NULL;
	}
	ids_uuid_normalize(vm_id, norm);
	return xasprintf("%s-%s", norm, suffix);
}

static char *
vs_vol_path(virConnectPtr c, virStorageVolPtr v, struct carve_error *err)
{
	char *path = virStorageVolGetPath(v);

	if (path == NULL)
		virt_ops_fail(c, err, "reading a volume's path");
	return path;
}

/* v's backing file (*backing, a new string or NULL) and capacity. */
static int
vs_vol_info(virConnectPtr c, virStorageVolPtr v, const char *what,
    char **backing, uint64_t *cap, struct carve_error *err)
{
	char *xml = virStorageVolGetXMLDesc(v, 0);
	int rc;

	if (xml == NULL)
		return virt_ops_fail(c, err, what);
	rc = virt_xml_parse_volume(xml, backing, cap, err);
	free(xml);
	return rc;
}

int
virt_storage_root(virConnectPtr c, const char *pool, const char *vm_id,
    uint64_t capacity, const char *base, enum vm_image_format base_fmt,
    char **path, struct carve_error *err)
{
	virStoragePoolPtr p;
	virStorageVolPtr v;
	char *name, *xml, *backing = NULL;
	uint64_t cap;
	int rc = -1;

	*path = NULL;
	if ((name = vs_vol_name(vm_id, "root.qcow2", err)) == NULL)
		return -1;
	if ((p = vs_pool(c, pool, err)) == NULL) {
		free(name);
		return -1;
	}
	v = virStorageVolLookupByName(p, name);
	if (v != NULL) {
		/* Made by an earlier run of this create: keep it if it is
		 * what this run would make. */
		if (vs_vol_info(c, v, "reading the root volume", &backing, &cap, err) < 0)
			goto out;
		if (backing == NULL || strcmp(backing, base) != 0) {
			error_set(err, CARVE_ECONFLICT, "volume %s exists on "
			    "another base image", name);
			goto out;
		}
		log_info("virt", "reusing volume %s", name);
	} else {
		if (!virt_ops_errcode_is(VIR_ERR_NO_STORAGE_VOL)) {
			virt_ops_fail(c, err, "looking up the root volume");
			goto out;
		}
		xml = virt_xml_volume(name, capacity, "qcow2", base,
		    vm_image_format_name(base_fmt), err);
		if (xml == NULL)
			goto out;
		v = virStorageVolCreateXML(p, xml, 0);
		free(xml);
		if (v == NULL) {
			virt_ops_fail(c, err, "creating the root disk");
			goto out;
		}
	}
	if ((*path = vs_vol_path(c, v, err)) != NULL)
		rc = 0;
out:
	free(backing);
	free(name);
	if (v != NULL)
		virStorageVolFree(v);
	virStoragePoolFree(p);
	return rc;
}

int
virt_storage_root_replace(virConnectPtr c, const char *pool, const char *vm_id,
    uint64_t capacity, const char *base, enum vm_image_format base_fmt,
    char **path, struct carve_error *err)
{
	virStoragePoolPtr p;
	virStorageVolPtr v;
	char *name;
	int rc = 0;

	*path = NULL;
	if ((name = vs_vol_name(vm_id, "root.qcow2", err)) == NULL)
		return -1;
	if ((p = vs_pool(c, pool, err)) == NULL) {
		free(name);
		return -1;
	}
	if ((v = virStorageVolLookupByName(p, name)) != NULL) {
		if (virStorageVolDelete(v, 0) < 0 &&
		    !virt_ops_errcode_is(VIR_ERR_NO_STORAGE_VOL))
			rc = virt_ops_fail(c, err, "deleting the old root disk");
		else
			log_info("virt", "volume %s deleted for a rebuild", name);
		virStorageVolFree(v);
	} else if (!virt_ops_errcode_is(VIR_ERR_NO_STORAGE_VOL)) {
		rc = virt_ops_fail(c, err, "looking up the root volume");
	}
	free(name);
	virStoragePoolFree(p);
	if (rc < 0)
		return -1;
	return virt_storage_root(c, pool, vm_id, capacity, base, base_fmt, path,
	    err);
}

int
virt_storage_data(virConnectPtr c, const char *pool, const char *vm_id,
    unsigned index, uint64_t capacity, char **path, struct carve_error *err)
{
	virStoragePoolPtr p;
	virStorageVolPtr v;
	char *name, *xml, *backing = NULL, suffix[32];
	uint64_t cap;
	int rc = -1;

	*path = NULL;
	if (index >= VM_DATA_DISKS_MAX)
		return error_set(err, CARVE_EINVAL, "data disk %u: at most %d "
		    "data disks", index, VM_DATA_DISKS_MAX);
	snprintf(suffix, sizeof(suffix), "data%u.qcow2", index);
	if ((name = vs_vol_name(vm_id, suffix, err)) == NULL)
		return -1;
	if ((p = vs_pool(c, pool, err)) == NULL) {
		free(name);
		return -1;
	}
	v = virStorageVolLookupByName(p, name);
	if (v != NULL) {
		/* Made by an earlier run of this create (or kept by a
		 * rebuild): keep it, with its data, if it is what we want. */
		if (vs_vol_info(c, v, "reading a data volume", &backing, &cap, err) < 0)
			goto out;
		if (backing != NULL || cap != capacity) {
			error_set(err, CARVE_ECONFLICT, "volume %s exists with "
			    "another size or a backing file", name);
			goto out;
		}
		log_info("virt", "reusing volume %s", name);
	} else {
		if (!virt_ops_errcode_is(VIR_ERR_NO_STORAGE_VOL)) {
			virt_ops_fail(c, err, "looking up a data volume");
			goto out;
		}
		xml = virt_xml_volume(name, capacity, "qcow2", NULL, NULL, err);
		if (xml == NULL)
			goto out;
		v = virStorageVolCreateXML(p, xml, 0);
		free(xml);
		if (v == NULL) {
			virt_ops_fail(c, err, "creating a data disk");
			goto out;
		}
	}
	if ((*path = vs_vol_path(c, v, err)) != NULL)
		rc = 0;
out:
	free(backing);
	free(name);
	if (v != NULL)
		virStorageVolFree(v);
	virStoragePoolFree(p);
	return rc;
}

static int
vs_send(virStreamPtr st, char *data, size_t nbytes, void *opaque)
{
	int fd = *(int *)opaque;
	ssize_t n;

	(void)st;
	do
		n = read(fd, data, nbytes);
	while (n < 0 && errno == EINTR);
	return (int)n;
}

/* Upload the file at fd into v; false with err on failure. Drivers
 * without uploads keep the volume as it is (metadata only). */
static int
vs_upload(virConnectPtr c, virStorageVolPtr v, int fd, uint64_t size,
    struct carve_error *err)
{
	virStreamPtr st = virStreamNew(c, 0);
	int rc = -1;

	if (st == NULL)
		return virt_ops_fail(c, err, "opening an upload stream");
	if (virStorageVolUpload(v, st, 0, size, 0) < 0) {
		if (virt_ops_errcode_is(VIR_ERR_NO_SUPPORT)) {
			virStreamFree(st);
			return 0;
		}
		virt_ops_fail(c, err, "uploading the seed");
		goto out;
	}
	if (virStreamSendAll(st, vs_send, &fd) < 0) {
		virt_ops_fail(c, err, "uploading the seed");
		(void)virStreamAbort(st);
		goto out;
	}
	if (virStreamFinish(st) < 0) {
		virt_ops_fail(c, err, "finishing the seed upload");
		goto out;
	}
	rc = 0;
out:
	virStreamFree(st);
	return rc;
}

int
virt_storage_seed(virConnectPtr c, const char *pool, const char *vm_id,
    const char *iso, char **path, struct carve_error *err)
{
	virStoragePoolPtr p;
	virStorageVolPtr v;
	struct stat sb;
	char *name, *xml;
	int fd = -1, rc = -1;

	*path = NULL;
	if ((name = vs_vol_name(vm_id, "seed.iso", err)) == NULL)
		return -1;
	if ((p = vs_pool(c, pool, err)) == NULL) {
		free(name);
		return -1;
	}
	if ((fd = open(iso, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &sb) < 0) {
		error_set(err, CARVE_EINTERNAL, "reading the seed %s: %s", iso,
		    strerror(errno));
		v = NULL;
		goto out;
	}
	v = virStorageVolLookupByName(p, name);
	if (v != NULL) {
		if (virStorageVolDelete(v, 0) < 0) {
			virt_ops_fail(c, err, "replacing the seed volume");
			goto out;
		}
		virStorageVolFree(v);
	} else if (!virt_ops_errcode_is(VIR_ERR_NO_STORAGE_VOL)) {
		virt_ops_fail(c, err, "looking up the seed volume");
		goto out;
	}
	if ((xml = virt_xml_volume(name, (uint64_t)sb.st_size, "raw", NULL,
	    NULL, err)) == NULL) {
		v = NULL;
		goto out;
	}
	v = virStorageVolCreateXML(p, xml, 0);
	free(xml);
	if (v == NULL) {
		virt_ops_fail(c, err, "creating the seed volume");
		goto out;
	}
	if (vs_upload(c, v, fd, (uint64_t)sb.st_size, err) < 0) {
		(void)virStorageVolDelete(v, 0);
		goto out;
	}
	if ((*path = vs_vol_path(c, v, err)) != NULL)
		rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(name);
	if (v != NULL)
		virStorageVolFree(v);
	virStoragePoolFree(p);
	return rc;
}

int
virt_storage_delete_vm(virConnectPtr c, const char *pool, const char *vm_id,
    unsigned *deleted, struct carve_error *err)
{
	struct carve_error lerr = { 0 };
	virStoragePoolPtr p;
	virStorageVolPtr *vols = NULL;
	char norm[IDS_UUID_LEN + 1], prefix[IDS_UUID_LEN + 2];
	int n, rc = 0;

	if (deleted != NULL)
		*deleted = 0;
	if (!ids_uuid_valid(vm_id))
		return error_set(err, CARVE_EINVAL, "vm_id is not a valid UUID");
	ids_uuid_normalize(vm_id, norm);
	snprintf(prefix, sizeof(prefix), "%s-", norm);
	if ((p = vs_pool(c, pool, &lerr)) == NULL) {
		if (lerr.code == CARVE_ENOTFOUND)
			return 0;
		*err = lerr;
		return -1;
	}
	if ((n = virStoragePoolListAllVolumes(p, &vols, 0)) < 0) {
		rc = virt_ops_fail(c, err, "listing the pool's volumes");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		const char *name = virStorageVolGetName(vols[i]);

		if (rc == 0 && name != NULL &&
		    strncmp(name, prefix, strlen(prefix)) == 0) {
			if (virStorageVolDelete(vols[i], 0) < 0 &&
			    !virt_ops_errcode_is(VIR_ERR_NO_STORAGE_VOL))
				rc = virt_ops_fail(c, err, "deleting a volume");
			else if (deleted != NULL)
				(*deleted)++;
		}
		virStorageVolFree(vols[i]);
	}
	free(vols);
out:
	virStoragePoolFree(p);
	return rc;
}

int
virt_storage_volumes(virConnectPtr c, const char *pool,
    struct virt_storage_vol **out, size_t *nout, struct carve_error *err)
{
	virStoragePoolPtr p;
	virStorageVolPtr *vols = NULL;
	struct virt_storage_vol *res = NULL;
	size_t n = 0;
	int nv, rc = 0;

	*out = NULL;
	*nout = 0;
	if ((p = vs_pool(c, pool, err)) == NULL)
		return -1;
	if ((nv = virStoragePoolListAllVolumes(p, &vols, 0)) < 0) {
		rc = virt_ops_fail(c, err, "listing the pool's volumes");
		goto out;
	}
	res = xcalloc((size_t)nv + 1, sizeof(*res));
	for (int i = 0; i < nv; i++) {
		const char *name = virStorageVolGetName(vols[i]);
		char *xml, *backing = NULL;
		uint64_t cap;

		if (rc < 0 || name == NULL)
			goto next;
		if ((xml = virStorageVolGetXMLDesc(vols[i], 0)) == NULL) {
			/* Deleted since the listing: not in use any more. */
			if (!virt_ops_errcode_is(VIR_ERR_NO_STORAGE_VOL))
				rc = virt_ops_fail(c, err, "reading a volume");
			goto next;
		}
		if (virt_xml_parse_volume(xml, &backing, &cap, err) < 0)
			rc = -1;
		else {
			res[n].vsv_name = xstrdup(name);
			res[n].vsv_backing = backing;
			n++;
		}
		free(xml);
next:
		virStorageVolFree(vols[i]);
	}
	free(vols);
out:
	virStoragePoolFree(p);
	if (rc < 0) {
		virt_storage_vols_free(res, n);
		return -1;
	}
	*out = res;
	*nout = n;
	return 0;
}

void
virt_storage_vols_free(struct virt_storage_vol *vols, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(vols[i].vsv_name);
		free(vols[i].vsv_backing);
	}
	free(vols);
}
