/*
 * vm.resize against libvirt: see virt_resize.h.
 *
 * Order: the persistent definition first (maxima, then sizes), then the
 * running guest, then the metadata (live and persistent). A failure in the
 * definition puts it back as it was, so a failed resize leaves nothing that
 * the next boot would pick up; the live steps are best effort (what the
 * guest could not take waits for its next boot, and the result says so);
 * the metadata goes last, so capacity counts the new size only once the
 * definition has it. Every step compares before it changes, which is what
 * makes running it again converge.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "agent/virt_ops.h"
#include "agent/virt_resize.h"
#include "agent/virt_xml.h"
#include "common/log.h"

#define KIB_PER_MIB UINT64_C(1024)

uint64_t
virt_resize_guest_used_kib(const virDomainMemoryStatStruct *st, int n)
{
	uint64_t avail = 0, usable = 0, unused = 0;
	bool have_avail = false, have_usable = false, have_unused = false;

	for (int i = 0; i < n; i++) {
		switch (st[i].tag) {
		case VIR_DOMAIN_MEMORY_STAT_AVAILABLE:
			avail = st[i].val;
			have_avail = true;
			break;
		case VIR_DOMAIN_MEMORY_STAT_USABLE:
			usable = st[i].val;
			have_usable = true;
			break;
		case VIR_DOMAIN_MEMORY_STAT_UNUSED:
			unused = st[i].val;
			have_unused = true;
			break;
		default:
			break;
		}
	}
	if (!have_avail)
		return 0;
	/* "usable" counts caches the guest can drop; "unused" does not. */
	if (have_usable)
		return usable < avail ? avail - usable : 0;
	if (have_unused)
		return unused < avail ? avail - unused : 0;
	return 0;
}

/* The sizes of d's live (flags 0) or persistent (INACTIVE) definition. */
static int
resize_sizes(virConnectPtr c, virDomainPtr d, unsigned flags,
    struct virt_xml_sizes *sz, struct carve_error *err)
{
	char *xml = virDomainGetXMLDesc(d, flags);
	int rc;

	if (xml == NULL)
		return virt_ops_fail(c, err, "reading the domain definition");
	rc = virt_xml_parse_sizes(xml, sz, err);
	free(xml);
	return rc;
}

/*
 * The persistent definition's sizes made want (a raised maximum included).
 * On failure the steps already taken are undone from was, best effort.
 */
static int
resize_config(virConnectPtr c, virDomainPtr d, const struct virt_xml_sizes *was,
    const struct virt_xml_sizes *want, struct carve_error *err)
{
	const unsigned cfg = VIR_DOMAIN_AFFECT_CONFIG;
	bool vmax = false, vcur = false, mmax = false, mcur = false;

	/* Maxima first: a size is only valid within its maximum. */
	if (want->memory_max_kib != was->memory_max_kib) {
		if (virDomainSetMemoryFlags(d, want->memory_max_kib,
		    cfg | VIR_DOMAIN_MEM_MAXIMUM) < 0)
			goto fail;
		mmax = true;
	}
	if (want->vcpus_max != was->vcpus_max) {
		if (virDomainSetVcpusFlags(d, want->vcpus_max,
		    cfg | VIR_DOMAIN_VCPU_MAXIMUM) < 0)
			goto fail;
		vmax = true;
	}
	if (want->memory_kib != was->memory_kib) {
		if (virDomainSetMemoryFlags(d, want->memory_kib, cfg) < 0)
			goto fail;
		mcur = true;
	}
	if (want->vcpus != was->vcpus) {
		if (virDomainSetVcpusFlags(d, want->vcpus, cfg) < 0)
			goto fail;
		vcur = true;
	}
	return 0;

fail:
	virt_ops_fail(c, err, "changing the persistent definition");
	if (err->code == CARVE_EUNAVAIL)
		return -1;
	/* Sizes before maxima: the old size fits under the old maximum. */
	if ((vcur && virDomainSetVcpusFlags(d, was->vcpus, cfg) < 0) ||
	    (mcur && virDomainSetMemoryFlags(d, was->memory_kib, cfg) < 0) ||
	    (vmax && virDomainSetVcpusFlags(d, was->vcpus_max,
	    cfg | VIR_DOMAIN_VCPU_MAXIMUM) < 0) ||
	    (mmax && virDomainSetMemoryFlags(d, was->memory_max_kib,
	    cfg | VIR_DOMAIN_MEM_MAXIMUM) < 0))
		log_error("virt", "resize: cannot put the definition of %s back "
		    "as it was: %s", virDomainGetName(d),
		    virGetLastErrorMessage());
	return -1;
}

/* A warning, appended to what is there. */
static void
resize_warn(struct virt_resize_result *out, const char *msg)
{
	size_t n = strlen(out->warning);

	snprintf(out->warning + n, sizeof(out->warning) - n, "%s%s",
	    n > 0 ? "; " : "", msg);
}

/*
 * The running guest (vcpus or mem_kib 0: left alone). Returns -1 only when
 * the connection died; what the guest cannot take is left for its next
 * boot (*live false, a warning).
 */
static int
resize_live(virConnectPtr c, virDomainPtr d, const struct virt_xml_sizes *cur,
    unsigned vcpus, uint64_t mem_kib, struct virt_resize_result *out,
    bool *live, struct carve_error *err)
{
	const unsigned lv = VIR_DOMAIN_AFFECT_LIVE;
	char msg[CARVE_ERRMSG_MAX];

	*live = true;
	if (vcpus == 0) {
		/* Left alone by this resize. */
	} else if (vcpus > cur->vcpus_max) {
		*live = false;
	} else if (vcpus < cur->vcpus) {
		*live = false;
		snprintf(msg, sizeof(msg), "vCPUs are not hot-unplugged: the "
		    "running guest keeps %u until it restarts", cur->vcpus);
		resize_warn(out, msg);
	} else if (vcpus > cur->vcpus &&
	    virDomainSetVcpusFlags(d, vcpus, lv) < 0) {
		virt_ops_fail(c, err, "adding vCPUs");
		if (err->code == CARVE_EUNAVAIL)
			return -1;
		*live = false;
		snprintf(msg, sizeof(msg), "vCPU hot-plug failed (%.300s); the new "
		    "count applies at the next boot", err->message);
		resize_warn(out, msg);
		memset(err, 0, sizeof(*err));
	}
	if (mem_kib == 0)
		return 0;
	if (mem_kib > cur->memory_max_kib) {
		*live = false;
		return 0;
	}
	/* Always: the balloon's target may differ from what it reached. */
	if (virDomainSetMemoryFlags(d, mem_kib, lv) < 0) {
		virt_ops_fail(c, err, "setting the balloon");
		if (err->code == CARVE_EUNAVAIL)
			return -1;
		*live = false;
		snprintf(msg, sizeof(msg), "the balloon could not be moved (%.300s); "
		    "the new memory size applies at the next boot",
		    err->message);
		resize_warn(out, msg);
		memset(err, 0, sizeof(*err));
	}
	return 0;
}

/* A shrink below what the guest uses is the user's call: say it. */
static void
resize_check_used(virDomainPtr d, uint64_t mem_kib,
    struct virt_resize_result *out)
{
	virDomainMemoryStatStruct st[VIR_DOMAIN_MEMORY_STAT_NR];
	char msg[CARVE_ERRMSG_MAX];
	uint64_t used;
	int n;

	n = virDomainMemoryStats(d, st, VIR_DOMAIN_MEMORY_STAT_NR, 0);
	if (n <= 0)
		return;
	used = virt_resize_guest_used_kib(st, n);
	if (used == 0 || mem_kib >= used)
		return;
	snprintf(msg, sizeof(msg), "the guest uses about %" PRIu64 " MiB, more "
	    "than the %" PRIu64 " MiB it is resized to: it may swap or run out "
	    "of memory", (used + KIB_PER_MIB - 1) / KIB_PER_MIB,
	    mem_kib / KIB_PER_MIB);
	resize_warn(out, msg);
}

/* carve's metadata in the live or persistent definition (flags). */
static int
resize_metadata(virConnectPtr c, virDomainPtr d, unsigned flags,
    unsigned vcpus, uint64_t memory_mib, struct carve_error *err)
{
	char *md, *nmd = NULL;
	int rc = -1;

	md = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, VIRT_XML_NS,
	    flags);
	if (md == NULL)
		return virt_ops_fail(c, err, "reading the metadata");
	if (virt_xml_metadata_set_size(md, vcpus, memory_mib, &nmd, err) < 0)
		goto out;
	if (virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, nmd,
	    VIRT_XML_PREFIX, VIRT_XML_NS, flags) < 0) {
		virt_ops_fail(c, err, "recording the new size");
		goto out;
	}
	rc = 0;
out:
	free(md);
	free(nmd);
	return rc;
}

int
virt_resize(virConnectPtr c, const char *vm_id,
    const struct virt_resize_req *req, struct virt_resize_result *out,
    struct carve_error *err)
{
	struct virt_xml_sizes cfg, want, cur;
	struct vm_info meta;
	virDomainPtr d, d2;
	unsigned vcpus;
	uint64_t mem;
	bool live = false;
	int active, persistent, rc = -1;

	memset(out, 0, sizeof(*out));
	memset(&cfg, 0, sizeof(cfg));
	memset(&cur, 0, sizeof(cur));
	if ((d = virt_ops_lookup(c, vm_id, &meta, err)) == NULL)
		return -1;
	vcpus = req->vcpus != 0 ? req->vcpus : meta.vm_vcpus;
	mem = req->memory_mib != 0 ? req->memory_mib : meta.vm_memory_mib;
	if ((active = virDomainIsActive(d)) < 0 ||
	    (persistent = virDomainIsPersistent(d)) < 0) {
		virt_ops_fail(c, err, "reading the domain state");
		goto out;
	}

	if (persistent) {
		if (resize_sizes(c, d, VIR_DOMAIN_XML_INACTIVE, &cfg, err) < 0)
			goto out;
		want.vcpus = vcpus;
		want.memory_kib = mem * KIB_PER_MIB;
		want.vcpus_max = vcpus <= cfg.vcpus_max ? cfg.vcpus_max :
		    virt_xml_max_vcpus(vcpus, req->max_vcpus_factor,
		    req->host_cpus);
		want.memory_max_kib = want.memory_kib <= cfg.memory_max_kib ?
		    cfg.memory_max_kib : virt_xml_max_memory_mib(mem,
		    req->max_memory_factor, req->host_memory_mib) * KIB_PER_MIB;
		if (resize_config(c, d, &cfg, &want, err) < 0)
			goto out;
	}
	if (active) {
		if (resize_sizes(c, d, 0, &cur, err) < 0)
			goto out;
		if (req->memory_mib != 0)
			resize_check_used(d, mem * KIB_PER_MIB, out);
		/* Only what this resize changes decides whether it is live. */
		if (resize_live(c, d, &cur, req->vcpus, req->memory_mib *
		    KIB_PER_MIB, out, &live, err) < 0)
			goto out;
		if (resize_metadata(c, d, VIR_DOMAIN_AFFECT_LIVE, vcpus, mem,
		    err) < 0)
			goto out;
	}
	if (persistent && resize_metadata(c, d, VIR_DOMAIN_AFFECT_CONFIG, vcpus,
	    mem, err) < 0)
		goto out;

	/* Report what libvirt shows now. */
	if ((d2 = virt_ops_lookup(c, vm_id, &out->vm, err)) == NULL)
		goto out;
	virDomainFree(d2);
	if (persistent && resize_sizes(c, d, VIR_DOMAIN_XML_INACTIVE, &cfg,
	    err) < 0)
		goto out;
	if (virt_ops_state(c, d, &out->vm, err) < 0)
		goto out;
	out->live = active && live;
	out->max_vcpus = persistent ? cfg.vcpus_max : cur.vcpus_max;
	out->max_memory_mib = (persistent ? cfg.memory_max_kib :
	    cur.memory_max_kib) / KIB_PER_MIB;
	rc = 0;
out:
	virDomainFree(d);
	return rc;
}
