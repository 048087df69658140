/*
 * Blocking libvirt operations on managed domains, run on worker threads.
 * See virt_ops.h for the idempotency rules each one keeps.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "agent/virt_ops.h"
#include "agent/virt_snap.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

#define STOP_POLL_MS 100

/*
 * Turn the calling thread's last libvirt error into a carve error. A dead
 * connection becomes CARVE_EUNAVAIL so the engine retries after reconnecting
 * instead of failing the command.
 */
int
virt_ops_fail(virConnectPtr c, struct carve_error *err, const char *what)
{
	virErrorPtr e = virGetLastError();
	char msg[CARVE_ERRMSG_MAX];

	/* Copy first: virConnectIsAlive resets (and frees) the last error. */
	snprintf(msg, sizeof(msg), "%s", e && e->message ? e->message :
	    "unknown libvirt error");
	if (virConnectIsAlive(c) != 1)
		return error_set(err, CARVE_EUNAVAIL,
		    "%s: lost the connection to libvirt: %s", what, msg);
	return error_set(err, CARVE_EHYPERVISOR, "%s: %s", what, msg);
}

bool
virt_ops_errcode_is(int code)
{
	virErrorPtr e = virGetLastError();

	return e != NULL && e->code == code;
}

/* Read and parse carve's metadata element of d into *meta (and *rb). */
static int
virt_ops_read_meta_rebuild(virConnectPtr c, virDomainPtr d, const char *vm_id,
    struct vm_info *meta, struct virt_xml_rebuild *rb,
    struct carve_error *err)
{
	char *xml;
	int rc;

	xml = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, VIRT_XML_NS,
	    VIR_DOMAIN_AFFECT_CURRENT);
	if (xml == NULL) {
		if (virt_ops_errcode_is(VIR_ERR_NO_DOMAIN_METADATA))
			return error_set(err, CARVE_ENOTFOUND,
			    "domain %s is not managed by carve", vm_id);
		if (virt_ops_errcode_is(VIR_ERR_NO_DOMAIN))
			return error_set(err, CARVE_ENOTFOUND,
			    "no VM with id %s", vm_id);
		return virt_ops_fail(c, err, "reading domain metadata");
	}
	memset(meta, 0, sizeof(*meta));
	rc = virt_xml_parse_metadata_rebuild(xml, meta, rb, err);
	free(xml);
	return rc;
}

static int
virt_ops_read_meta(virConnectPtr c, virDomainPtr d, const char *vm_id,
    struct vm_info *meta, struct carve_error *err)
{
	return virt_ops_read_meta_rebuild(c, d, vm_id, meta, NULL, err);
}

/*
 * Look the domain up by UUID and check it is one of ours. Returns NULL with
 * err CARVE_ENOTFOUND when absent or unmanaged; *meta filled when non-NULL.
 */
virDomainPtr
virt_ops_lookup(virConnectPtr c, const char *vm_id, struct vm_info *meta,
    struct carve_error *err)
{
	virDomainPtr d;
	struct vm_info tmp;

	d = virDomainLookupByUUIDString(c, vm_id);
	if (d == NULL) {
		if (virt_ops_errcode_is(VIR_ERR_NO_DOMAIN))
			error_set(err, CARVE_ENOTFOUND, "no VM with id %s", vm_id);
		else
			virt_ops_fail(c, err, "domain lookup");
		return NULL;
	}
	if (virt_ops_read_meta(c, d, vm_id, &tmp, err) < 0) {
		virDomainFree(d);
		return NULL;
	}
	if (meta)
		*meta = tmp;
	return d;
}

int
virt_ops_state(virConnectPtr c, virDomainPtr d, struct vm_info *vm,
    struct carve_error *err)
{
	int state, reason;

	if (virDomainGetState(d, &state, &reason, 0) < 0) {
		if (virt_ops_errcode_is(VIR_ERR_NO_DOMAIN))
			return error_set(err, CARVE_ENOTFOUND,
			    "VM %s disappeared", vm->vm_id);
		return virt_ops_fail(c, err, "reading domain state");
	}
	vm->vm_state = vm_state_from_libvirt(state);
	return 0;
}

virDomainPtr
virt_ops_domain(virConnectPtr c, const char *vm_id, struct vm_info *out,
    struct carve_error *err)
{
	virDomainPtr d = virt_ops_lookup(c, vm_id, out, err);

	if (d != NULL && virt_ops_state(c, d, out, err) < 0) {
		virDomainFree(d);
		return NULL;
	}
	return d;
}

static bool
virt_ops_active(virDomainPtr d)
{
	return virDomainIsActive(d) == 1;
}

int
virt_op_create(virConnectPtr c, const char *xml, const char *vm_id,
    const char *command_id, struct vm_info *out, struct carve_error *err)
{
	virDomainPtr d;
	struct carve_error lerr = { 0 };
	struct vm_info meta;
	int rc = -1;

	d = virt_ops_lookup(c, vm_id, &meta, &lerr);
	if (d != NULL) {
		if (strcmp(meta.vm_command_id, command_id) != 0) {
			virDomainFree(d);
			return error_set(err, CARVE_ECONFLICT,
			    "VM %s already exists (created by command %s)",
			    vm_id, meta.vm_command_id);
		}
	} else if (lerr.code != CARVE_ENOTFOUND) {
		*err = lerr;
		return -1;
	} else {
		d = virDomainLookupByUUIDString(c, vm_id);
		if (d != NULL) {
			/* Same UUID, no carve metadata: not ours to touch. */
			virDomainFree(d);
			return error_set(err, CARVE_ECONFLICT,
			    "an unmanaged domain with UUID %s exists", vm_id);
		}
		d = virDomainDefineXML(c, xml);
		if (d == NULL) {
			if (virt_ops_errcode_is(VIR_ERR_OPERATION_FAILED) ||
			    virt_ops_errcode_is(VIR_ERR_DOM_EXIST))
				return error_set(err, CARVE_ECONFLICT,
				    "cannot define VM: %s",
				    virGetLastErrorMessage());
			return virt_ops_fail(c, err, "defining the domain");
		}
		if (virt_ops_read_meta(c, d, vm_id, &meta, err) < 0)
			goto rollback;
	}
	if (!virt_ops_active(d) && virDomainCreate(d) < 0) {
		virt_ops_fail(c, err, "starting the domain");
		goto rollback;
	}
	*out = meta;
	if (virt_ops_state(c, d, out, err) < 0 ||
	    virt_snap_read(c, d, out, err) < 0)
		goto cleanup;
	rc = 0;
	goto cleanup;

rollback:
	/* Leave nothing half-made behind: a domain we defined but could not start. */
	/*
	 * The domain carries this command's id whether this run or an earlier
	 * one (before a crash or a lost connection) defined it.
	 */
	if (error_isset(err) && err->code != CARVE_EUNAVAIL) {
		if (virt_ops_active(d))
			(void)virDomainDestroy(d);
		if (virDomainUndefine(d) < 0)
			log_error("virt", "rollback: cannot undefine %s: %s",
			    vm_id, virGetLastErrorMessage());
	}
cleanup:
	virDomainFree(d);
	return rc;
}

int
virt_op_start(virConnectPtr c, const char *vm_id, struct vm_info *out,
    struct carve_error *err)
{
	virDomainPtr d = virt_ops_lookup(c, vm_id, out, err);
	int rc = -1;

	if (d == NULL)
		return -1;
	if (!virt_ops_active(d) && virDomainCreate(d) < 0) {
		struct carve_error ferr = { 0 };

		/* Read libvirt's error now: the next call resets it. */
		virt_ops_fail(c, &ferr, "starting the VM");
		/* Lost a race with another start: still success. */
		if (!virt_ops_active(d)) {
			*err = ferr;
			goto out;
		}
	}
	rc = virt_ops_state(c, d, out, err);
out:
	virDomainFree(d);
	return rc;
}

int
virt_op_stop(virConnectPtr c, const char *vm_id, bool force,
    unsigned timeout_s, const atomic_bool *cancel, bool *forced,
    struct vm_info *out, struct carve_error *err)
{
	virDomainPtr d = virt_ops_lookup(c, vm_id, out, err);
	int64_t deadline;
	int rc = -1;

	*forced = false;
	if (d == NULL)
		return -1;
	if (!virt_ops_active(d))
		goto done;
	if (!force) {
		if (virDomainShutdown(d) < 0 && virt_ops_active(d)) {
			log_warn("virt", "graceful shutdown of %s refused (%s); "
			    "forcing it off", vm_id, virGetLastErrorMessage());
		} else {
			deadline = time_mono_ms() + (int64_t)timeout_s * 1000;
			while (virt_ops_active(d) && time_mono_ms() < deadline) {
				if (cancel != NULL && atomic_load(cancel)) {
					error_set(err, CARVE_EUNAVAIL, "stop of %s "
					    "interrupted: carved is shutting down",
					    vm_id);
					goto out;
				}
				time_sleep_ms(STOP_POLL_MS);
			}
		}
	}
	if (virt_ops_active(d)) {
		if (!force)
			log_info("virt", "VM %s did not shut down within %u s; "
			    "forcing it off", vm_id, timeout_s);
		if (virDomainDestroy(d) < 0 && virt_ops_active(d)) {
			virt_ops_fail(c, err, "forcing the VM off");
			goto out;
		}
		*forced = true;
	}
done:
	rc = virt_ops_state(c, d, out, err);
out:
	virDomainFree(d);
	return rc;
}

int
virt_op_reboot(virConnectPtr c, const char *vm_id, struct vm_info *out,
    struct carve_error *err)
{
	virDomainPtr d = virt_ops_lookup(c, vm_id, out, err);
	int rc = -1;

	if (d == NULL)
		return -1;
	if (!virt_ops_active(d)) {
		error_set(err, CARVE_ECONFLICT, "VM %s is not running", vm_id);
		goto out;
	}
	if (virDomainReboot(d, 0) < 0 && virDomainReset(d, 0) < 0) {
		virt_ops_fail(c, err, "rebooting the VM");
		goto out;
	}
	rc = virt_ops_state(c, d, out, err);
out:
	virDomainFree(d);
	return rc;
}

int
virt_op_destroy(virConnectPtr c, const char *vm_id, struct carve_error *err)
{
	struct carve_error lerr = { 0 };
	virDomainPtr d = virt_ops_lookup(c, vm_id, NULL, &lerr);
	unsigned flags = VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
	    VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
	    VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | VIR_DOMAIN_UNDEFINE_NVRAM;
	int rc = -1;

	if (d == NULL) {
		if (lerr.code == CARVE_ENOTFOUND)
			return 0;     /* already gone: the effect holds */
		*err = lerr;
		return -1;
	}
	if (virt_ops_active(d) && virDomainDestroy(d) < 0 && virt_ops_active(d)) {
		virt_ops_fail(c, err, "stopping the VM");
		goto out;
	}
	if (virDomainUndefineFlags(d, flags) < 0) {
		/*
		 * Drivers without some of those flags (the test driver) take
		 * fewer: the snapshots' metadata must still go, or a VM with
		 * snapshots cannot be undefined.
		 */
		if (virt_ops_errcode_is(VIR_ERR_NO_DOMAIN)) {
			rc = 0;
			goto out;
		}
		if (virDomainUndefineFlags(d,
		    VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA) < 0 &&
		    virDomainUndefine(d) < 0 &&
		    !virt_ops_errcode_is(VIR_ERR_NO_DOMAIN)) {
			virt_ops_fail(c, err, "undefining the VM");
			goto out;
		}
	}
	rc = 0;
out:
	virDomainFree(d);
	return rc;
}

int
virt_op_get(virConnectPtr c, const char *vm_id, struct vm_info *out,
    struct carve_error *err)
{
	virDomainPtr d = virt_ops_lookup(c, vm_id, out, err);
	int rc;

	if (d == NULL)
		return -1;
	rc = virt_ops_state(c, d, out, err);
	if (rc == 0)
		rc = virt_snap_read(c, d, out, err);
	virDomainFree(d);
	return rc;
}

int
virt_op_get_rebuild(virConnectPtr c, const char *vm_id, struct vm_info *out,
    struct virt_xml_rebuild *rb, struct carve_error *err)
{
	virDomainPtr d = virt_ops_lookup(c, vm_id, NULL, err);
	int rc = -1;

	if (d == NULL)
		return -1;
	if (virt_ops_read_meta_rebuild(c, d, vm_id, out, rb, err) == 0)
		rc = virt_ops_state(c, d, out, err);
	virDomainFree(d);
	return rc;
}

int
virt_op_set_metadata(virConnectPtr c, const char *vm_id, const char *xml,
    struct carve_error *err)
{
	virDomainPtr d = virt_ops_lookup(c, vm_id, NULL, err);
	unsigned flags = VIR_DOMAIN_AFFECT_CONFIG;
	int rc = 0;

	if (d == NULL)
		return -1;
	if (virt_ops_active(d))
		flags |= VIR_DOMAIN_AFFECT_LIVE;
	if (virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, xml,
	    VIRT_XML_PREFIX, VIRT_XML_NS, flags) < 0)
		rc = virt_ops_fail(c, err, "updating the VM's metadata");
	virDomainFree(d);
	return rc;
}

int
virt_op_list(virConnectPtr c, struct vm_info **out, size_t *n,
    struct carve_error *err)
{
	virDomainPtr *doms = NULL;
	struct vm_info *vms;
	size_t count = 0;
	int nd;

	nd = virConnectListAllDomains(c, &doms, 0);
	if (nd < 0)
		return virt_ops_fail(c, err, "listing domains");
	vms = xcalloc((size_t)nd + 1, sizeof(*vms));
	for (int i = 0; i < nd; i++) {
		struct carve_error lerr = { 0 };
		char *xml;

		xml = virDomainGetMetadata(doms[i], VIR_DOMAIN_METADATA_ELEMENT,
		    VIRT_XML_NS, VIR_DOMAIN_AFFECT_CURRENT);
		if (xml == NULL) {
			/* Unmanaged, or undefined since the listing: skip. Any
			 * other failure means the listing is incomplete. */
			if (!virt_ops_errcode_is(VIR_ERR_NO_DOMAIN_METADATA) &&
			    !virt_ops_errcode_is(VIR_ERR_NO_DOMAIN)) {
				virt_ops_fail(c, err, "reading domain metadata");
				goto fail;
			}
			virDomainFree(doms[i]);
			doms[i] = NULL;
			continue;
		}
		if (virt_xml_parse_metadata(xml, &vms[count], &lerr) < 0) {
			char name[128];
			snprintf(name, sizeof(name), "%s",
			    virDomainGetName(doms[i]) ? virDomainGetName(doms[i]) : "?");
			log_warn("virt", "domain %s has unreadable carve metadata, "
			    "ignoring it: %s", name, lerr.message);
		} else if (virt_ops_state(c, doms[i], &vms[count],
		    &lerr) == 0 &&
		    virt_snap_read(c, doms[i], &vms[count], &lerr) == 0) {
			count++;
		} else if (lerr.code != CARVE_ENOTFOUND) {
			*err = lerr;
			free(xml);
			goto fail;
		}
		free(xml);
		virDomainFree(doms[i]);
		doms[i] = NULL;
	}
	free(doms);
	*out = vms;
	*n = count;
	return 0;

fail:
	for (int k = 0; k < nd; k++)
		if (doms[k] != NULL)
			virDomainFree(doms[k]);
	free(doms);
	free(vms);
	return -1;
}

/* ---- host inventory ---- */

static const char *
virt_ops_resolve_type(virConnectPtr c, const char *driver, const char *want)
{
	char *caps;

	if (strcasecmp(driver, "TEST") == 0)
		return "test";
	if (strcmp(want, "kvm") == 0 || strcmp(want, "qemu") == 0)
		return want;
	caps = virConnectGetDomainCapabilities(c, NULL, NULL, NULL, "kvm", 0);
	if (caps != NULL) {
		free(caps);
		return "kvm";
	}
	return "qemu";
}

int
virt_op_inventory(virConnectPtr c, const char *want_type,
    const char *state_dir, struct host_inventory *out,
    struct carve_error *err)
{
	virNodeInfo ni;
	const char *type;
	char *caps;
	struct statvfs sv;

	memset(out, 0, sizeof(*out));
	if (virNodeGetInfo(c, &ni) < 0)
		return virt_ops_fail(c, err, "reading node info");
	out->cpus = ni.cpus;
	out->memory_mib = ni.memory / 1024;
	out->numa_nodes = ni.nodes;
	type = virConnectGetType(c);
	snprintf(out->driver, sizeof(out->driver), "%s", type ? type : "unknown");
	snprintf(out->domain_type, sizeof(out->domain_type), "%s",
	    virt_ops_resolve_type(c, out->driver, want_type));
	(void)virConnectGetVersion(c, &out->hv_version);
	(void)virConnectGetLibVersion(c, &out->lib_version);
	if (gethostname(out->hostname, sizeof(out->hostname) - 1) < 0)
		snprintf(out->hostname, sizeof(out->hostname), "unknown");
	if (statvfs(state_dir, &sv) == 0)
		out->disk_gib = (uint64_t)sv.f_blocks * sv.f_frsize >> 30;
	caps = virConnectGetCapabilities(c);
	if (caps == NULL)
		return virt_ops_fail(c, err, "reading host capabilities");
	if (virt_xml_parse_caps(caps, &out->cpu, err) < 0) {
		free(caps);
		return -1;
	}
	free(caps);
	return 0;
}

void
host_inventory_clear(struct host_inventory *inv)
{
	host_cpu_clear(&inv->cpu);
}

static char *
virt_ops_version(unsigned long v)
{
	return xasprintf("%lu.%lu.%lu", v / 1000000, (v / 1000) % 1000, v % 1000);
}

json_object *
host_inventory_encode(const struct host_inventory *inv)
{
	json_object *o = json_object_new_object(), *feat, *cpu;
	char *s;

	json_object_object_add(o, "hostname", json_object_new_string(inv->hostname));
	json_object_object_add(o, "hypervisor", json_object_new_string(inv->driver));
	json_object_object_add(o, "domain_type",
	    json_object_new_string(inv->domain_type));
	s = virt_ops_version(inv->hv_version);
	json_object_object_add(o, "hypervisor_version", json_object_new_string(s));
	free(s);
	s = virt_ops_version(inv->lib_version);
	json_object_object_add(o, "libvirt_version", json_object_new_string(s));
	free(s);
	json_object_object_add(o, "cpus", json_object_new_int64(inv->cpus));
	json_object_object_add(o, "memory_mib",
	    json_object_new_int64((int64_t)inv->memory_mib));
	json_object_object_add(o, "disk_gib",
	    json_object_new_int64((int64_t)inv->disk_gib));
	json_object_object_add(o, "numa_nodes",
	    json_object_new_int64(inv->cpu.numa_cells ? inv->cpu.numa_cells :
	    inv->numa_nodes));
	json_object_object_add(o, "cpu_arch", json_object_new_string(inv->cpu.arch));
	json_object_object_add(o, "cpu_model", json_object_new_string(inv->cpu.model));
	json_object_object_add(o, "cpu_vendor",
	    json_object_new_string(inv->cpu.vendor));
	feat = json_object_new_array();
	for (unsigned i = 0; i < inv->cpu.nfeatures; i++)
		json_object_array_add(feat,
		    json_object_new_string(inv->cpu.features[i]));
	json_object_object_add(o, "cpu_features", feat);
	/*
	 * The same as one object, the form the control plane's migration
	 * scheduler compares (can a VM from here run there?).
	 */
	cpu = json_object_new_object();
	json_object_object_add(cpu, "arch", json_object_new_string(inv->cpu.arch));
	json_object_object_add(cpu, "model",
	    json_object_new_string(inv->cpu.model));
	json_object_object_add(cpu, "vendor",
	    json_object_new_string(inv->cpu.vendor));
	json_object_object_add(cpu, "features", json_object_get(feat));
	json_object_object_add(o, "cpu", cpu);
	return o;
}
