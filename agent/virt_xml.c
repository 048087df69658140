/*
 * libvirt XML: see virt_xml.h. Output goes through libxml2's xmlTextWriter,
 * which escapes every text and attribute value, so nothing that came from a
 * user (names, paths, kernel command lines) is ever pasted into markup.
 * Input (carve metadata read back from libvirt, host capabilities) is parsed
 * with libxml2 without network access, DTD loading or entity substitution,
 * and documents carrying a DTD are refused outright.
 */
#include "config.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/chvalid.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlstring.h>
#include <libxml/xmlwriter.h>

#include "common/ids.h"
#include "common/xalloc.h"
#include "virt_xml.h"

/* libvirt never hands back metadata anywhere near this large. */
#define VIRT_XML_METADATA_MAX   (64 * 1024)
/* Capabilities grow with CPUs, NUMA cells and machine types; stay generous. */
#define VIRT_XML_CAPS_MAX       (8 * 1024 * 1024)

/*
 * The metadata fields, in the order they are written. The first seven
 * must appear exactly once when parsed back; the rest are optional (the
 * image's three go together), data_disk_gib once per data disk.
 */
enum md_kind {
	MD_UUID,
	MD_NAME,
	MD_UINT,
	MD_TEXT,        /* checked with the others it goes with */
	MD_BOOL,        /* "true" or "false" */
};

enum md_field {
	MD_ID = 0,
	MD_VM_NAME,
	MD_VCPUS,
	MD_MEMORY_MIB,
	MD_DISK_GIB,
	MD_COMMAND_ID,
	MD_CREATED_AT,
	MD_IMAGE_URL,
	MD_IMAGE_SHA256,
	MD_IMAGE_FORMAT,
	MD_DATA_DISK_GIB,
	MD_REBUILDING,
	MD_REBUILT_BY,
	MD_WAS_RUNNING,
	MD_NFIELDS
};

static const struct md_desc {
	const char *name;
	enum md_kind kind;
	uint64_t min, max;      /* MD_UINT: range; MD_TEXT: max length */
	unsigned count;         /* how often it may appear */
	bool required;
} md_fields[MD_NFIELDS] = {
	[MD_ID] =         { "id",         MD_UUID, 0, 0, 1, true },
	[MD_VM_NAME] =    { "name",       MD_NAME, 0, 0, 1, true },
	[MD_VCPUS] =      { "vcpus",      MD_UINT, 1, VM_VCPUS_MAX, 1, true },
	[MD_MEMORY_MIB] = { "memory_mib", MD_UINT, VM_MEMORY_MIB_MIN,
	    VM_MEMORY_MIB_MAX, 1, true },
	[MD_DISK_GIB] =   { "disk_gib",   MD_UINT, 0, VM_DISK_GIB_MAX, 1, true },
	[MD_COMMAND_ID] = { "command_id", MD_UUID, 0, 0, 1, true },
	[MD_CREATED_AT] = { "created_at", MD_UINT, 0, INT64_MAX, 1, true },
	[MD_IMAGE_URL] =  { "image_url",  MD_TEXT, 0, VM_IMAGE_URL_MAX, 1,
	    false },
	[MD_IMAGE_SHA256] = { "image_sha256", MD_TEXT, 0, 64, 1, false },
	[MD_IMAGE_FORMAT] = { "image_format", MD_TEXT, 0, 16, 1, false },
	[MD_DATA_DISK_GIB] = { "data_disk_gib", MD_UINT, 1, VM_DISK_GIB_MAX,
	    VM_DATA_DISKS_MAX, false },
	[MD_REBUILDING] = { "rebuilding", MD_UUID, 0, 0, 1, false },
	[MD_REBUILT_BY] = { "rebuilt_by", MD_UUID, 0, 0, 1, false },
	[MD_WAS_RUNNING] = { "was_running", MD_BOOL, 0, 0, 1, false },
};

/* ------------------------------------------------------------ writing */

/*
 * A thin layer over xmlTextWriter: its calls only fail on allocation or
 * misuse, so the first failure is remembered and checked once at the end.
 */
struct xw {
	xmlBufferPtr buf;
	xmlTextWriterPtr w;
	bool failed;
	/* carve's metadata without a namespace (for virDomainSetMetadata). */
	bool plain;
};

static void
xw_init(struct xw *x)
{
	x->failed = false;
	x->plain = false;
	x->buf = xmlBufferCreate();
	if (x->buf == NULL) {
		x->w = NULL;
		x->failed = true;
		return;
	}
	x->w = xmlNewTextWriterMemory(x->buf, 0);
	if (x->w == NULL) {
		x->failed = true;
		return;
	}
	if (xmlTextWriterSetIndent(x->w, 1) < 0 ||
	    xmlTextWriterSetIndentString(x->w, BAD_CAST "  ") < 0)
		x->failed = true;
}

/* Frees the writer; returns the document as a new string, or NULL. */
static char *
xw_finish(struct xw *x)
{
	char *out = NULL;

	if (x->w != NULL) {
		if (xmlTextWriterFlush(x->w) < 0)
			x->failed = true;
		xmlFreeTextWriter(x->w);
	}
	if (!x->failed)
		out = xstrdup((const char *)xmlBufferContent(x->buf));
	if (x->buf != NULL)
		xmlBufferFree(x->buf);
	return out;
}

static void
xw_check(struct xw *x, int rc)
{
	if (rc < 0)
		x->failed = true;
}

static void
xw_start(struct xw *x, const char *name)
{
	if (!x->failed)
		xw_check(x, xmlTextWriterStartElement(x->w, BAD_CAST name));
}

static void
xw_end(struct xw *x)
{
	if (!x->failed)
		xw_check(x, xmlTextWriterEndElement(x->w));
}

static void
xw_attr(struct xw *x, const char *name, const char *value)
{
	if (!x->failed)
		xw_check(x, xmlTextWriterWriteAttribute(x->w, BAD_CAST name,
		    BAD_CAST value));
}

static void
xw_text(struct xw *x, const char *name, const char *text)
{
	if (!x->failed)
		xw_check(x, xmlTextWriterWriteElement(x->w, BAD_CAST name,
		    BAD_CAST text));
}

static void
xw_empty(struct xw *x, const char *name)
{
	xw_start(x, name);
	xw_end(x);
}

/* <carve:name>text</carve:name>, the prefix bound by the enclosing vm. */
static void
xw_carve_text(struct xw *x, const char *name, const char *text)
{
	if (x->plain)
		xw_text(x, name, text);
	else if (!x->failed)
		xw_check(x, xmlTextWriterWriteElementNS(x->w,
		    BAD_CAST VIRT_XML_PREFIX, BAD_CAST name, NULL, BAD_CAST text));
}

static void
xw_carve_uint(struct xw *x, const char *name, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRIu64, v);
	xw_carve_text(x, name, num);
}

/* UUIDs are compared as strings elsewhere: always write them lower-case. */
static void
xw_carve_uuid(struct xw *x, const char *name, const char *uuid)
{
	char norm[IDS_UUID_LEN + 1];

	if (ids_uuid_valid(uuid)) {
		ids_uuid_normalize(uuid, norm);
		xw_carve_text(x, name, norm);
	} else {
		xw_carve_text(x, name, uuid != NULL ? uuid : "");
	}
}

static void
metadata_write(struct xw *x, const struct vm_spec *spec,
    const struct virt_xml_opts *opts)
{
	const struct virt_xml_rebuild *rb = opts->rebuild;

	if (x->plain)
		xw_start(x, "vm");
	else if (!x->failed)
		xw_check(x, xmlTextWriterStartElementNS(x->w,
		    BAD_CAST VIRT_XML_PREFIX, BAD_CAST "vm", BAD_CAST VIRT_XML_NS));
	xw_carve_uuid(x, md_fields[MD_ID].name, opts->vm_id);
	xw_carve_text(x, md_fields[MD_VM_NAME].name, spec->vs_name);
	xw_carve_uint(x, md_fields[MD_VCPUS].name, spec->vs_vcpus);
	xw_carve_uint(x, md_fields[MD_MEMORY_MIB].name, spec->vs_memory_mib);
	xw_carve_uint(x, md_fields[MD_DISK_GIB].name, spec->vs_disk_gib);
	xw_carve_uuid(x, md_fields[MD_COMMAND_ID].name, opts->command_id);
	xw_carve_uint(x, md_fields[MD_CREATED_AT].name,
	    opts->created_at_ms > 0 ? (uint64_t)opts->created_at_ms : 0);
	if (spec->vs_image.vi_url != NULL) {
		xw_carve_text(x, md_fields[MD_IMAGE_URL].name,
		    spec->vs_image.vi_url);
		xw_carve_text(x, md_fields[MD_IMAGE_SHA256].name,
		    spec->vs_image.vi_sha256);
		xw_carve_text(x, md_fields[MD_IMAGE_FORMAT].name,
		    vm_image_format_name(spec->vs_image.vi_format));
	}
	for (size_t i = 0; i < spec->vs_ndata_disks && i < VM_DATA_DISKS_MAX;
	    i++)
		xw_carve_uint(x, md_fields[MD_DATA_DISK_GIB].name,
		    spec->vs_data_disks[i].dd_size_gib);
	if (rb != NULL) {
		if (rb->rb_rebuilding[0] != '\0')
			xw_carve_uuid(x, md_fields[MD_REBUILDING].name,
			    rb->rb_rebuilding);
		if (rb->rb_rebuilt_by[0] != '\0')
			xw_carve_uuid(x, md_fields[MD_REBUILT_BY].name,
			    rb->rb_rebuilt_by);
		if (rb->rb_was_running != VIRT_XML_RUN_UNRECORDED)
			xw_carve_text(x, md_fields[MD_WAS_RUNNING].name,
			    rb->rb_was_running == VIRT_XML_RUN_YES ? "true" :
			    "false");
	}
	xw_end(x);
}

char *
virt_xml_metadata(const struct vm_spec *spec, const struct virt_xml_opts *opts)
{
	struct xw x;

	xw_init(&x);
	metadata_write(&x, spec, opts);
	return xw_finish(&x);
}

unsigned
virt_xml_max_vcpus(unsigned vcpus, unsigned factor, unsigned host_cpus)
{
	uint64_t m = (uint64_t)vcpus * (factor > 0 ? factor : 1);

	if (host_cpus != 0 && m > host_cpus)
		m = host_cpus;
	if (m > VM_VCPUS_MAX)
		m = VM_VCPUS_MAX;
	/* A host overcommitted on purpose still gets the size it asked. */
	return m < vcpus ? vcpus : (unsigned)m;
}

uint64_t
virt_xml_max_memory_mib(uint64_t memory_mib, unsigned factor,
    uint64_t host_memory_mib)
{
	uint64_t f = factor > 0 ? factor : 1;
	uint64_t m = memory_mib > VM_MEMORY_MIB_MAX / f ? VM_MEMORY_MIB_MAX :
	    memory_mib * f;

	/* More than the host has could only ever be used by ballooning the
	 * host into swap. */
	if (host_memory_mib != 0 && m > host_memory_mib)
		m = host_memory_mib;
	if (m > VM_MEMORY_MIB_MAX)
		m = VM_MEMORY_MIB_MAX;
	return m < memory_mib ? memory_mib : m;
}

char *
virt_xml_metadata_vm(const struct vm_info *vm,
    const struct virt_xml_rebuild *rb, struct carve_error *err)
{
	struct virt_xml_opts opts;
	struct virt_xml_rebuild rb_back;
	struct vm_spec spec;
	struct vm_info back;
	struct xw x;
	char *xml;

	memset(&spec, 0, sizeof(spec));
	memset(&opts, 0, sizeof(opts));
	snprintf(spec.vs_name, sizeof(spec.vs_name), "%s", vm->vm_name);
	spec.vs_vcpus = vm->vm_vcpus;
	spec.vs_memory_mib = vm->vm_memory_mib;
	spec.vs_disk_gib = vm->vm_disk_gib;
	if (vm->vm_image_url[0] != '\0') {
		/* Borrowed: spec is never cleared. */
		spec.vs_image.vi_url = (char *)vm->vm_image_url;
		memcpy(spec.vs_image.vi_sha256, vm->vm_image_sha256,
		    sizeof(spec.vs_image.vi_sha256));
		spec.vs_image.vi_format = vm->vm_image_format;
	}
	if (vm->vm_ndata_disks > VM_DATA_DISKS_MAX) {
		error_set(err, CARVE_EINVAL, "more than %d data disks",
		    VM_DATA_DISKS_MAX);
		return NULL;
	}
	spec.vs_ndata_disks = vm->vm_ndata_disks;
	memcpy(spec.vs_data_disks, vm->vm_data_disks,
	    sizeof(spec.vs_data_disks));
	opts.vm_id = vm->vm_id;
	opts.command_id = vm->vm_command_id;
	opts.created_at_ms = vm->vm_created_at_ms;
	opts.rebuild = rb;
	xw_init(&x);
	x.plain = true;
	metadata_write(&x, &spec, &opts);
	if ((xml = xw_finish(&x)) == NULL) {
		error_set(err, CARVE_EINTERNAL, "could not build the metadata");
		return NULL;
	}
	/* The parser is the one judge of what a record may hold: never
	 * write what would be refused when read back. */
	if (virt_xml_parse_metadata_rebuild(xml, &back, &rb_back, err) < 0) {
		free(xml);
		return NULL;
	}
	return xml;
}

/*
 * Refuse what the writer would escape but XML cannot carry at all: invalid
 * UTF-8 and control characters (XML 1.0 has no representation for most of
 * them, and none belongs in a path, name or kernel command line).
 */
static int
check_xml_string(const char *s, const char *what, struct carve_error *err)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s);

	while (left > 0) {
		int len = left > 4 ? 4 : (int)left;
		int c = xmlGetUTF8Char(p, &len);

		if (c < 0)
			return error_set(err, CARVE_EINVAL,
			    "%s is not valid UTF-8 (at byte %zu)", what,
			    (size_t)(p - (const unsigned char *)s));
		if (c < 0x20 || c == 0x7f || !xmlIsCharQ(c))
			return error_set(err, CARVE_EINVAL,
			    "%s contains disallowed character U+%04X", what,
			    (unsigned)c);
		p += len;
		left -= (size_t)len;
	}
	return 0;
}

static int
check_path(const char *path, const char *what, struct carve_error *err)
{
	if (path == NULL)
		return 0;
	if (path[0] != '/')
		return error_set(err, CARVE_EINVAL,
		    "%s must be an absolute path", what);
	return check_xml_string(path, what, err);
}

/*
 * The NICs as the decoder left them, and each with its MAC: without one,
 * libvirt would make up a random MAC and the VM's would change on every
 * define.
 */
static int
nics_check(const struct vm_spec *spec, struct carve_error *err)
{
	char what[48], mac[VM_MAC_LEN + 1];

	if (spec->vs_nnics > VM_NICS_MAX)
		return error_set(err, CARVE_EINVAL,
		    "at most %d network interfaces are allowed", VM_NICS_MAX);
	for (size_t i = 0; i < spec->vs_nnics; i++) {
		const struct vm_nic *nic = &spec->vs_nics[i];

		snprintf(what, sizeof(what), "networks[%zu]", i);
		if (nic->vn_kind != VM_NIC_NETWORK &&
		    nic->vn_kind != VM_NIC_BRIDGE)
			return error_set(err, CARVE_EINVAL,
			    "%s is neither a network nor a bridge", what);
		if (ids_name_check(nic->vn_name, what, err) < 0)
			return -1;
		if (nic->vn_kind == VM_NIC_BRIDGE &&
		    strlen(nic->vn_name) > VM_BRIDGE_NAME_MAX)
			return error_set(err, CARVE_EINVAL, "%s: a bridge name "
			    "has at most %d bytes", what, VM_BRIDGE_NAME_MAX);
		if (nic->vn_mac[0] == '\0')
			return error_set(err, CARVE_EINVAL, "%s has no MAC "
			    "address", what);
		snprintf(what, sizeof(what), "networks[%zu].mac", i);
		if (vm_mac_parse(nic->vn_mac, what, mac, err) < 0)
			return -1;
	}
	return 0;
}

static int
domain_check(const struct vm_spec *spec, const struct virt_xml_opts *opts,
    bool *full, struct carve_error *err)
{
	const char *t = opts->domain_type;

	if (t != NULL && strcmp(t, "test") == 0)
		*full = false;
	else if (t != NULL && (strcmp(t, "kvm") == 0 || strcmp(t, "qemu") == 0))
		*full = true;
	else
		return error_set(err, CARVE_EINVAL,
		    "domain type must be kvm, qemu or test");

	if (!ids_uuid_valid(opts->vm_id))
		return error_set(err, CARVE_EINVAL, "vm_id is not a valid UUID");
	if (!ids_uuid_valid(opts->command_id))
		return error_set(err, CARVE_EINVAL,
		    "command_id is not a valid UUID");
	if (ids_name_check(spec->vs_name, "name", err) < 0)
		return -1;
	if (spec->vs_vcpus < 1 || spec->vs_vcpus > VM_VCPUS_MAX)
		return error_set(err, CARVE_EINVAL,
		    "vcpus must be between 1 and %d", VM_VCPUS_MAX);
	if (spec->vs_memory_mib < VM_MEMORY_MIB_MIN ||
	    spec->vs_memory_mib > VM_MEMORY_MIB_MAX)
		return error_set(err, CARVE_EINVAL,
		    "memory_mib must be between %d and %llu", VM_MEMORY_MIB_MIN,
		    (unsigned long long)VM_MEMORY_MIB_MAX);
	if (spec->vs_disk_gib > VM_DISK_GIB_MAX)
		return error_set(err, CARVE_EINVAL,
		    "disk_gib must be at most %llu",
		    (unsigned long long)VM_DISK_GIB_MAX);
	if (opts->created_at_ms < 0)
		return error_set(err, CARVE_EINVAL,
		    "created_at must not be negative");
	if (opts->max_vcpus != 0 && (opts->max_vcpus < spec->vs_vcpus ||
	    opts->max_vcpus > VM_VCPUS_MAX))
		return error_set(err, CARVE_EINVAL, "the maximum vCPUs must be "
		    "between the vCPUs (%u) and %d", spec->vs_vcpus,
		    VM_VCPUS_MAX);
	if (opts->max_memory_mib != 0 &&
	    (opts->max_memory_mib < spec->vs_memory_mib ||
	    opts->max_memory_mib > VM_MEMORY_MIB_MAX))
		return error_set(err, CARVE_EINVAL, "the maximum memory must be "
		    "between the memory (%llu MiB) and %llu MiB",
		    (unsigned long long)spec->vs_memory_mib,
		    (unsigned long long)VM_MEMORY_MIB_MAX);

	if (opts->ndata_disks != spec->vs_ndata_disks ||
	    opts->ndata_disks > VM_DATA_DISKS_MAX)
		return error_set(err, CARVE_EINVAL, "%zu data disk volumes for "
		    "%zu data disks", opts->ndata_disks, spec->vs_ndata_disks);
	for (size_t i = 0; i < opts->ndata_disks; i++) {
		if (opts->data_disks == NULL || opts->data_disks[i] == NULL)
			return error_set(err, CARVE_EINVAL,
			    "data disk %zu has no volume", i);
		if (check_path(opts->data_disks[i], "data disk path", err) < 0)
			return -1;
	}
	if (check_path(opts->root_disk, "root disk path", err) < 0 ||
	    check_path(opts->seed_iso, "seed path", err) < 0 ||
	    check_path(opts->kernel_path, "kernel path", err) < 0 ||
	    check_path(opts->initrd_path, "initrd path", err) < 0 ||
	    check_path(opts->console_log, "console log path", err) < 0)
		return -1;
	if (spec->vs_cmdline != NULL &&
	    check_xml_string(spec->vs_cmdline, "cmdline", err) < 0)
		return -1;
	if (opts->kernel_path == NULL &&
	    (opts->initrd_path != NULL || spec->vs_cmdline != NULL))
		return error_set(err, CARVE_EINVAL,
		    "an initrd or kernel command line needs a kernel");
	return nics_check(spec, err);
}

static void
disk_write(struct xw *x, const char *path, const char *device,
    const char *type, const char *dev, const char *bus, const char *serial,
    bool readonly)
{
	xw_start(x, "disk");
	xw_attr(x, "type", "file");
	xw_attr(x, "device", device);
	xw_start(x, "driver");
	xw_attr(x, "name", "qemu");
	xw_attr(x, "type", type);
	xw_end(x);
	xw_start(x, "source");
	xw_attr(x, "file", path);
	xw_end(x);
	xw_start(x, "target");
	xw_attr(x, "dev", dev);
	xw_attr(x, "bus", bus);
	xw_end(x);
	if (serial != NULL)
		xw_text(x, "serial", serial);
	if (readonly)
		xw_empty(x, "readonly");
	xw_end(x);
}

static void
disks_write(struct xw *x, const struct virt_xml_opts *opts)
{
	/* The backing chain (base image format) is in the overlay's own
	 * header, pinned when the volume was made. */
	if (opts->root_disk != NULL)
		disk_write(x, opts->root_disk, "disk", "qcow2", "vda", "virtio",
		    NULL, false);
	/*
	 * vdb, vdc, ... whether or not there is a root disk: target names
	 * are only hints to the guest; the serial is what identifies a disk.
	 */
	for (size_t i = 0; i < opts->ndata_disks; i++) {
		char dev[8], serial[32];

		snprintf(dev, sizeof(dev), "vd%c", (char)('b' + i));
		snprintf(serial, sizeof(serial), "carve-data%zu", i);
		disk_write(x, opts->data_disks[i], "disk", "qcow2", dev,
		    "virtio", serial, false);
	}
	if (opts->seed_iso != NULL)
		disk_write(x, opts->seed_iso, "cdrom", "raw", "hdc", "ide", NULL,
		    true);
}

/*
 * <interface type='network|bridge'><mac/><source network|bridge=/>
 * <model type='virtio'/></interface>, in the order the spec lists them
 * (the guest names them eth0, eth1, ... by PCI slot, which follows it).
 */
static void
nics_write(struct xw *x, const struct vm_spec *spec)
{
	char mac[VM_MAC_LEN + 1];

	for (size_t i = 0; i < spec->vs_nnics; i++) {
		const struct vm_nic *nic = &spec->vs_nics[i];
		const char *kind = vm_nic_kind_name(nic->vn_kind);

		/* Checked by nics_check: written lower-case, as libvirt does. */
		if (vm_mac_parse(nic->vn_mac, "mac", mac, NULL) < 0) {
			x->failed = true;
			return;
		}
		xw_start(x, "interface");
		xw_attr(x, "type", kind);
		xw_start(x, "mac");
		xw_attr(x, "address", mac);
		xw_end(x);
		xw_start(x, "source");
		xw_attr(x, kind, nic->vn_name);
		xw_end(x);
		xw_start(x, "model");
		xw_attr(x, "type", "virtio");
		xw_end(x);
		xw_end(x);
	}
}

/* ------------------------------------------------------------ storage */

static int
check_vol_name(const char *name, struct carve_error *err)
{
	if (name == NULL || name[0] == '\0' || name[0] == '.' ||
	    strlen(name) > 255)
		return error_set(err, CARVE_EINVAL, "bad volume name");
	for (const char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		    *p == '_'))
			return error_set(err, CARVE_EINVAL,
			    "volume name may only contain letters, digits, "
			    "'-', '.' and '_'");
	return 0;
}

char *
virt_xml_pool(const char *name, const char *path, struct carve_error *err)
{
	struct xw x;
	char *out;

	if (check_vol_name(name, err) < 0 ||
	    check_path(path, "pool path", err) < 0)
		return NULL;
	if (path == NULL) {
		error_set(err, CARVE_EINVAL, "pool path is missing");
		return NULL;
	}
	xw_init(&x);
	xw_start(&x, "pool");
	xw_attr(&x, "type", "dir");
	xw_text(&x, "name", name);
	xw_start(&x, "target");
	xw_text(&x, "path", path);
	xw_start(&x, "permissions");
	xw_text(&x, "mode", "0751");
	xw_end(&x);
	xw_end(&x);
	xw_end(&x);
	if ((out = xw_finish(&x)) == NULL)
		error_set(err, CARVE_EINTERNAL, "could not build the pool XML");
	return out;
}

static bool
format_ok(const char *f)
{
	return f != NULL && (strcmp(f, "qcow2") == 0 || strcmp(f, "raw") == 0);
}

char *
virt_xml_volume(const char *name, uint64_t capacity_bytes, const char *format,
    const char *backing, const char *backing_format, struct carve_error *err)
{
	struct xw x;
	char num[24], *out;

	if (check_vol_name(name, err) < 0 ||
	    check_path(backing, "backing path", err) < 0)
		return NULL;
	if (!format_ok(format) || (backing != NULL && !format_ok(backing_format))) {
		error_set(err, CARVE_EINVAL, "volume format must be qcow2 or raw");
		return NULL;
	}
	if (capacity_bytes == 0) {
		error_set(err, CARVE_EINVAL, "volume capacity must not be 0");
		return NULL;
	}
	xw_init(&x);
	xw_start(&x, "volume");
	xw_text(&x, "name", name);
	snprintf(num, sizeof(num), "%" PRIu64, capacity_bytes);
	xw_start(&x, "capacity");
	xw_attr(&x, "unit", "bytes");
	if (!x.failed)
		xw_check(&x, xmlTextWriterWriteString(x.w, BAD_CAST num));
	xw_end(&x);
	xw_start(&x, "target");
	xw_start(&x, "format");
	xw_attr(&x, "type", format);
	xw_end(&x);
	xw_start(&x, "permissions");
	xw_text(&x, "mode", "0600");
	xw_end(&x);
	xw_end(&x);
	if (backing != NULL) {
		xw_start(&x, "backingStore");
		xw_text(&x, "path", backing);
		xw_start(&x, "format");
		xw_attr(&x, "type", backing_format);
		xw_end(&x);
		xw_end(&x);
	}
	xw_end(&x);
	if ((out = xw_finish(&x)) == NULL)
		error_set(err, CARVE_EINTERNAL, "could not build the volume XML");
	return out;
}

char *
virt_xml_domain(const struct vm_spec *spec, const struct virt_xml_opts *opts,
    struct carve_error *err)
{
	struct xw x;
	char num[24], norm[IDS_UUID_LEN + 1];
	bool full = false, devices;
	uint64_t mem_max;
	unsigned vcpus_max;
	char *out;

	if (domain_check(spec, opts, &full, err) < 0)
		return NULL;

	xw_init(&x);
	xw_start(&x, "domain");
	xw_attr(&x, "type", opts->domain_type);
	xw_text(&x, "name", spec->vs_name);
	ids_uuid_normalize(opts->vm_id, norm);
	xw_text(&x, "uuid", norm);

	xw_start(&x, "metadata");
	metadata_write(&x, spec, opts);
	xw_end(&x);

	/*
	 * Room to grow: the maximum is what the guest could be given live
	 * (<memory>, <vcpu>), the size is what it gets (<currentMemory>, kept
	 * there by the balloon, and <vcpu current=...>).
	 */
	mem_max = opts->max_memory_mib != 0 ? opts->max_memory_mib :
	    spec->vs_memory_mib;
	vcpus_max = opts->max_vcpus != 0 ? opts->max_vcpus : spec->vs_vcpus;
	snprintf(num, sizeof(num), "%" PRIu64, mem_max);
	xw_start(&x, "memory");
	xw_attr(&x, "unit", "MiB");
	if (!x.failed)
		xw_check(&x, xmlTextWriterWriteString(x.w, BAD_CAST num));
	xw_end(&x);
	snprintf(num, sizeof(num), "%" PRIu64, spec->vs_memory_mib);
	xw_start(&x, "currentMemory");
	xw_attr(&x, "unit", "MiB");
	if (!x.failed)
		xw_check(&x, xmlTextWriterWriteString(x.w, BAD_CAST num));
	xw_end(&x);

	xw_start(&x, "vcpu");
	xw_attr(&x, "placement", "static");
	if (vcpus_max > spec->vs_vcpus) {
		snprintf(num, sizeof(num), "%u", spec->vs_vcpus);
		xw_attr(&x, "current", num);
	}
	snprintf(num, sizeof(num), "%u", vcpus_max);
	if (!x.failed)
		xw_check(&x, xmlTextWriterWriteString(x.w, BAD_CAST num));
	xw_end(&x);

	xw_start(&x, "os");
	xw_text(&x, "type", "hvm");
	if (opts->kernel_path != NULL) {
		xw_text(&x, "kernel", opts->kernel_path);
		if (opts->initrd_path != NULL)
			xw_text(&x, "initrd", opts->initrd_path);
		if (spec->vs_cmdline != NULL)
			xw_text(&x, "cmdline", spec->vs_cmdline);
	} else {
		xw_start(&x, "boot");
		xw_attr(&x, "dev", "hd");
		xw_end(&x);
	}
	xw_end(&x);

	if (full) {
		/* ACPI is what lets vm.stop ask the guest to power off. */
		xw_start(&x, "features");
		xw_empty(&x, "acpi");
		xw_empty(&x, "apic");
		xw_end(&x);
	}

	/*
	 * A guest that powers off or crashes stays off: restarting it is the
	 * control plane's decision, not the hypervisor's.
	 */
	xw_text(&x, "on_poweroff", "destroy");
	xw_text(&x, "on_reboot", "restart");
	xw_text(&x, "on_crash", "destroy");

	devices = full || opts->root_disk != NULL || opts->seed_iso != NULL ||
	    opts->ndata_disks > 0 || spec->vs_nnics > 0;
	if (devices) {
		xw_start(&x, "devices");
		disks_write(&x, opts);
		nics_write(&x, spec);
	}
	if (full) {
		if (opts->console_log != NULL) {
			/*
			 * append='on': libvirt restarts qemu on snapshot revert
			 * and would otherwise truncate the log.
			 */
			xw_start(&x, "serial");
			xw_attr(&x, "type", "pty");
			xw_start(&x, "log");
			xw_attr(&x, "file", opts->console_log);
			xw_attr(&x, "append", "on");
			xw_end(&x);
			xw_end(&x);
			xw_start(&x, "console");
			xw_attr(&x, "type", "pty");
			xw_end(&x);
		}
		/*
		 * The balloon holds the guest at its size below the maximum;
		 * its statistics tell vm.resize what the guest uses.
		 */
		xw_start(&x, "memballoon");
		xw_attr(&x, "model", "virtio");
		xw_start(&x, "stats");
		snprintf(num, sizeof(num), "%d", VIRT_XML_BALLOON_STATS_S);
		xw_attr(&x, "period", num);
		xw_end(&x);
		xw_end(&x);
	}
	if (devices)
		xw_end(&x);     /* devices */
	xw_end(&x);

	out = xw_finish(&x);
	if (out == NULL)
		error_set(err, CARVE_EINTERNAL, "could not build the domain XML");
	return out;
}

/* ------------------------------------------------------------ parsing */

/*
 * Parse buf safely: no network, no DTD loading, no entity substitution, no
 * messages on stderr. A document with a DTD is refused: carve's inputs never
 * have one, and refusing it keeps entity tricks out entirely.
 */
static xmlDocPtr
xml_parse(const char *buf, size_t maxlen, const char *what,
    struct carve_error *err)
{
	xmlParserCtxtPtr ctxt;
	xmlDocPtr doc;
	size_t len;

	if (buf == NULL) {
		error_set(err, CARVE_EINVAL, "%s is missing", what);
		return NULL;
	}
	len = strnlen(buf, maxlen + 1);
	if (len > maxlen) {
		error_set(err, CARVE_EINVAL, "%s is larger than %zu bytes", what,
		    maxlen);
		return NULL;
	}

	xmlInitParser();
	ctxt = xmlNewParserCtxt();
	if (ctxt == NULL) {
		error_set(err, CARVE_EINTERNAL, "out of memory parsing %s", what);
		return NULL;
	}
	doc = xmlCtxtReadMemory(ctxt, buf, (int)len, NULL, NULL,
	    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc == NULL || !ctxt->wellFormed) {
		const xmlError *e = xmlCtxtGetLastError(ctxt);
		char msg[128] = "";

		if (e != NULL && e->message != NULL) {
			size_t n;

			/* It may quote the input: keep it printable ASCII. */
			snprintf(msg, sizeof(msg), "%s", e->message);
			n = strlen(msg);
			while (n > 0 && msg[n - 1] == '\n')
				msg[--n] = '\0';
			for (size_t i = 0; i < n; i++)
				if ((unsigned char)msg[i] < 0x20 ||
				    (unsigned char)msg[i] >= 0x7f)
					msg[i] = '?';
		}
		error_set(err, CARVE_EINVAL, "%s is not well-formed XML%s%s "
		    "(line %d)", what, msg[0] ? ": " : "", msg,
		    e != NULL ? e->line : 0);
		xmlFreeDoc(doc);
		xmlFreeParserCtxt(ctxt);
		return NULL;
	}
	xmlFreeParserCtxt(ctxt);

	if (doc->intSubset != NULL || doc->extSubset != NULL) {
		error_set(err, CARVE_EINVAL,
		    "%s must not contain a document type declaration", what);
		xmlFreeDoc(doc);
		return NULL;
	}
	if (xmlDocGetRootElement(doc) == NULL) {
		error_set(err, CARVE_EINVAL, "%s has no root element", what);
		xmlFreeDoc(doc);
		return NULL;
	}
	return doc;
}

/*
 * An element name fit for an error message (which may end up in JSON):
 * printable ASCII only, cut short.
 */
static const char *
show_name(const xmlNode *n, char out[48])
{
	size_t i = 0;

	for (const xmlChar *p = n->name; p != NULL && *p != '\0' && i < 40; p++)
		out[i++] = (*p > 0x20 && *p < 0x7f) ? (char)*p : '?';
	out[i] = '\0';
	return out;
}

static bool
name_is(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE &&
	    xmlStrcmp(n->name, BAD_CAST name) == 0;
}

static bool
is_blank_text(const xmlNode *n)
{
	return n->type == XML_TEXT_NODE && xmlIsBlankNode((xmlNodePtr)n);
}

static bool
ns_is(const xmlNode *n, const xmlNs *want)
{
	if (n->ns == NULL || want == NULL)
		return n->ns == want;
	return xmlStrcmp(n->ns->href, want->href) == 0;
}

/*
 * The text of a leaf element, a new string (xmlFree), or NULL when the
 * element holds anything but character data.
 */
static xmlChar *
leaf_text(xmlNode *n)
{
	for (xmlNode *c = n->children; c != NULL; c = c->next)
		if (c->type != XML_TEXT_NODE)
			return NULL;
	if (n->properties != NULL)
		return NULL;
	if (n->children == NULL)
		return xmlStrdup(BAD_CAST "");
	return xmlNodeGetContent(n);
}

/* Decimal digits only: no sign, no blanks, no hex, no overflow. */
static int
parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0' || strlen(s) > 20)
		return -1;
	for (; *s != '\0'; s++) {
		unsigned d;

		if (*s < '0' || *s > '9')
			return -1;
		d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* What a metadata record parses into before it is accepted whole. */
struct md_parsed {
	struct vm_info vm;
	struct virt_xml_rebuild rb;
	/* The image's members, checked together once all are seen. */
	char *image_url, *image_sha256, *image_format;
};

static int
md_value(const struct md_desc *f, const char *text, struct md_parsed *p,
    enum md_field which, struct carve_error *err)
{
	struct vm_info *vm = &p->vm;
	uint64_t v = 0;
	char *uuid_out;

	switch (f->kind) {
	case MD_UUID:
		if (!ids_uuid_valid(text))
			return error_set(err, CARVE_EINVAL,
			    "metadata %s is not a valid UUID", f->name);
		uuid_out = which == MD_ID ? vm->vm_id :
		    which == MD_COMMAND_ID ? vm->vm_command_id :
		    which == MD_REBUILDING ? p->rb.rb_rebuilding :
		    p->rb.rb_rebuilt_by;
		ids_uuid_normalize(text, uuid_out);
		return 0;
	case MD_NAME: {
		char what[32];

		snprintf(what, sizeof(what), "metadata %s", f->name);
		if (ids_name_check(text, what, err) < 0)
			return -1;
		snprintf(vm->vm_name, sizeof(vm->vm_name), "%s", text);
		return 0;
	}
	case MD_TEXT: {
		char **slot = which == MD_IMAGE_URL ? &p->image_url :
		    which == MD_IMAGE_SHA256 ? &p->image_sha256 :
		    &p->image_format;

		if (strlen(text) > f->max)
			return error_set(err, CARVE_EINVAL,
			    "metadata %s is longer than %" PRIu64 " bytes",
			    f->name, f->max);
		*slot = xstrdup(text);
		return 0;
	}
	case MD_BOOL:
		if (strcmp(text, "true") == 0)
			p->rb.rb_was_running = VIRT_XML_RUN_YES;
		else if (strcmp(text, "false") == 0)
			p->rb.rb_was_running = VIRT_XML_RUN_NO;
		else
			return error_set(err, CARVE_EINVAL,
			    "metadata %s must be true or false", f->name);
		return 0;
	case MD_UINT:
		if (parse_uint(text, f->min, f->max, &v) < 0)
			return error_set(err, CARVE_EINVAL,
			    "metadata %s must be an integer between %" PRIu64
			    " and %" PRIu64, f->name, f->min, f->max);
		break;
	}

	switch (which) {
	case MD_VCPUS:
		vm->vm_vcpus = (unsigned)v;
		break;
	case MD_MEMORY_MIB:
		vm->vm_memory_mib = v;
		break;
	case MD_DISK_GIB:
		vm->vm_disk_gib = v;
		break;
	case MD_CREATED_AT:
		vm->vm_created_at_ms = (int64_t)v;
		break;
	case MD_DATA_DISK_GIB:
		/* md_parse_root keeps the count within VM_DATA_DISKS_MAX. */
		vm->vm_data_disks[vm->vm_ndata_disks++].dd_size_gib = v;
		break;
	default:
		break;
	}
	return 0;
}

/* After every element: the fields that only make sense together. */
static int
md_check_whole(struct md_parsed *p, const unsigned seen[MD_NFIELDS],
    struct carve_error *err)
{
	struct carve_error lerr = { 0 };
	struct vm_image img;
	unsigned nimage = seen[MD_IMAGE_URL] + seen[MD_IMAGE_SHA256] +
	    seen[MD_IMAGE_FORMAT];

	for (int i = 0; i < MD_NFIELDS; i++)
		if (md_fields[i].required && seen[i] == 0)
			return error_set(err, CARVE_EINVAL,
			    "metadata %s is missing", md_fields[i].name);
	if (nimage != 0 && nimage != 3)
		return error_set(err, CARVE_EINVAL, "metadata image_url, "
		    "image_sha256 and image_format go together");
	if (nimage == 3) {
		if (vm_image_parse(p->image_url, p->image_sha256,
		    p->image_format, &img, &lerr) < 0)
			return error_set(err, CARVE_EINVAL, "metadata %s",
			    lerr.message);
		snprintf(p->vm.vm_image_url, sizeof(p->vm.vm_image_url), "%s",
		    img.vi_url);
		memcpy(p->vm.vm_image_sha256, img.vi_sha256,
		    sizeof(p->vm.vm_image_sha256));
		p->vm.vm_image_format = img.vi_format;
		vm_image_clear(&img);
	}
	if ((seen[MD_REBUILDING] || seen[MD_REBUILT_BY]) &&
	    !seen[MD_WAS_RUNNING])
		return error_set(err, CARVE_EINVAL,
		    "metadata was_running is missing");
	if (seen[MD_WAS_RUNNING] && !seen[MD_REBUILDING] &&
	    !seen[MD_REBUILT_BY])
		return error_set(err, CARVE_EINVAL, "metadata was_running "
		    "needs rebuilding or rebuilt_by");
	return 0;
}

static int
md_parse_root(xmlNode *root, struct md_parsed *p, struct carve_error *err)
{
	unsigned seen[MD_NFIELDS] = { 0 };
	char shown[48];

	/*
	 * virDomainGetMetadata selects the element by namespace and hands it
	 * back with the namespace stripped, so an element without one is ours
	 * as well; one in any other namespace is not.
	 */
	if (!name_is(root, "vm"))
		return error_set(err, CARVE_EINVAL,
		    "metadata root element must be <vm>, not <%s>",
		    show_name(root, shown));
	if (root->ns != NULL &&
	    xmlStrcmp(root->ns->href, BAD_CAST VIRT_XML_NS) != 0)
		return error_set(err, CARVE_EINVAL,
		    "metadata is in the wrong namespace");
	if (root->properties != NULL)
		return error_set(err, CARVE_EINVAL,
		    "metadata <vm> must not have attributes");

	for (xmlNode *n = root->children; n != NULL; n = n->next) {
		const struct md_desc *f = NULL;
		enum md_field which = MD_NFIELDS;
		xmlChar *text;
		int rc;

		if (is_blank_text(n) || n->type == XML_COMMENT_NODE)
			continue;
		if (n->type != XML_ELEMENT_NODE)
			return error_set(err, CARVE_EINVAL,
			    "metadata <vm> may only contain elements");
		if (!ns_is(n, root->ns))
			return error_set(err, CARVE_EINVAL,
			    "metadata element <%s> is in the wrong namespace",
			    show_name(n, shown));
		for (int i = 0; i < MD_NFIELDS; i++) {
			if (name_is(n, md_fields[i].name)) {
				which = (enum md_field)i;
				f = &md_fields[i];
				break;
			}
		}
		if (f == NULL)
			return error_set(err, CARVE_EINVAL,
			    "unknown metadata element <%s>",
			    show_name(n, shown));
		if (seen[which] >= f->count)
			return f->count == 1 ? error_set(err, CARVE_EINVAL,
			    "metadata %s appears more than once", f->name) :
			    error_set(err, CARVE_EINVAL, "metadata %s appears "
			    "more than %u times", f->name, f->count);
		seen[which]++;

		text = leaf_text(n);
		if (text == NULL)
			return error_set(err, CARVE_EINVAL,
			    "metadata %s must hold plain text only", f->name);
		rc = md_value(f, (const char *)text, p, which, err);
		xmlFree(text);
		if (rc < 0)
			return -1;
	}
	return md_check_whole(p, seen, err);
}

int
virt_xml_parse_metadata_rebuild(const char *xml, struct vm_info *vm,
    struct virt_xml_rebuild *rb, struct carve_error *err)
{
	struct md_parsed p;
	xmlDocPtr doc;
	int rc;

	doc = xml_parse(xml, VIRT_XML_METADATA_MAX, "metadata", err);
	if (doc == NULL)
		return -1;
	memset(&p, 0, sizeof(p));
	rc = md_parse_root(xmlDocGetRootElement(doc), &p, err);
	xmlFreeDoc(doc);
	free(p.image_url);
	free(p.image_sha256);
	free(p.image_format);
	if (rc < 0)
		return -1;

	/* Only a fully valid record touches vm; its state is not ours. */
	memcpy(vm->vm_id, p.vm.vm_id, sizeof(vm->vm_id));
	memcpy(vm->vm_name, p.vm.vm_name, sizeof(vm->vm_name));
	vm->vm_vcpus = p.vm.vm_vcpus;
	vm->vm_memory_mib = p.vm.vm_memory_mib;
	vm->vm_disk_gib = p.vm.vm_disk_gib;
	memcpy(vm->vm_command_id, p.vm.vm_command_id,
	    sizeof(vm->vm_command_id));
	vm->vm_created_at_ms = p.vm.vm_created_at_ms;
	memcpy(vm->vm_image_url, p.vm.vm_image_url, sizeof(vm->vm_image_url));
	memcpy(vm->vm_image_sha256, p.vm.vm_image_sha256,
	    sizeof(vm->vm_image_sha256));
	vm->vm_image_format = p.vm.vm_image_format;
	memcpy(vm->vm_data_disks, p.vm.vm_data_disks,
	    sizeof(vm->vm_data_disks));
	vm->vm_ndata_disks = p.vm.vm_ndata_disks;
	if (rb != NULL)
		*rb = p.rb;
	return 0;
}

int
virt_xml_parse_metadata(const char *xml, struct vm_info *vm,
    struct carve_error *err)
{
	return virt_xml_parse_metadata_rebuild(xml, vm, NULL, err);
}

/* ------------------------------------------------------------ volumes */

#define VIRT_XML_VOLUME_MAX (256 * 1024)

static xmlNode *child_elem(const xmlNode *parent, const char *name);

int
virt_xml_parse_volume(const char *xml, char **backing, uint64_t *capacity,
    struct carve_error *err)
{
	xmlDocPtr doc;
	xmlNode *root, *n;
	xmlChar *text;
	int rc = 0;

	*backing = NULL;
	*capacity = 0;
	doc = xml_parse(xml, VIRT_XML_VOLUME_MAX, "volume XML", err);
	if (doc == NULL)
		return -1;
	root = xmlDocGetRootElement(doc);
	if (!name_is(root, "volume")) {
		xmlFreeDoc(doc);
		return error_set(err, CARVE_EINVAL,
		    "volume XML has no <volume> root");
	}
	for (n = root->children; n != NULL; n = n->next) {
		if (name_is(n, "capacity") &&
		    (text = xmlNodeGetContent(n)) != NULL) {
			if (parse_uint((const char *)text, 0, UINT64_MAX,
			    capacity) < 0)
				rc = error_set(err, CARVE_EINVAL,
				    "volume capacity is not a number");
			xmlFree(text);
		} else if (name_is(n, "backingStore")) {
			xmlNode *p = child_elem(n, "path");

			if (p != NULL && (text = xmlNodeGetContent(p)) != NULL) {
				free(*backing);
				*backing = xstrdup((const char *)text);
				xmlFree(text);
			}
		}
	}
	xmlFreeDoc(doc);
	if (rc < 0) {
		free(*backing);
		*backing = NULL;
	}
	return rc;
}

int
virt_xml_parse_pool_path(const char *xml, char **path, struct carve_error *err)
{
	xmlDocPtr doc;
	xmlNode *root, *p;
	xmlChar *text;

	*path = NULL;
	doc = xml_parse(xml, VIRT_XML_VOLUME_MAX, "pool XML", err);
	if (doc == NULL)
		return -1;
	root = xmlDocGetRootElement(doc);
	p = name_is(root, "pool") ? child_elem(child_elem(root, "target"),
	    "path") : NULL;
	if (p == NULL || (text = xmlNodeGetContent(p)) == NULL) {
		xmlFreeDoc(doc);
		return error_set(err, CARVE_EINVAL, "pool XML has no target "
		    "path");
	}
	*path = xstrdup((const char *)text);
	xmlFree(text);
	xmlFreeDoc(doc);
	return 0;
}

/* ------------------------------------------------------------ resize */

/* Domain definitions grow with devices; none of carve's comes near this. */
#define VIRT_XML_DOMAIN_MAX (4 * 1024 * 1024)

int
virt_xml_metadata_set_size(const char *xml, unsigned vcpus,
    uint64_t memory_mib, char **out, struct carve_error *err)
{
	struct md_parsed tmp;
	xmlDocPtr doc;
	xmlNode *root;
	xmlBufferPtr buf = NULL;
	char num[24];
	int rc = -1;

	*out = NULL;
	if (vcpus < md_fields[MD_VCPUS].min || vcpus > md_fields[MD_VCPUS].max)
		return error_set(err, CARVE_EINVAL,
		    "vcpus must be between 1 and %d", VM_VCPUS_MAX);
	if (memory_mib < md_fields[MD_MEMORY_MIB].min ||
	    memory_mib > md_fields[MD_MEMORY_MIB].max)
		return error_set(err, CARVE_EINVAL,
		    "memory_mib must be between %d and %llu", VM_MEMORY_MIB_MIN,
		    (unsigned long long)VM_MEMORY_MIB_MAX);
	doc = xml_parse(xml, VIRT_XML_METADATA_MAX, "metadata", err);
	if (doc == NULL)
		return -1;
	root = xmlDocGetRootElement(doc);
	/*
	 * Only a record carve would read back is rewritten; the other fields
	 * (image, data disks, rebuild bookkeeping) stay as they are.
	 */
	memset(&tmp, 0, sizeof(tmp));
	rc = md_parse_root(root, &tmp, err);
	free(tmp.image_url);
	free(tmp.image_sha256);
	free(tmp.image_format);
	if (rc < 0)
		goto out;
	rc = -1;
	for (xmlNode *n = root->children; n != NULL; n = n->next) {
		if (name_is(n, md_fields[MD_VCPUS].name))
			snprintf(num, sizeof(num), "%u", vcpus);
		else if (name_is(n, md_fields[MD_MEMORY_MIB].name))
			snprintf(num, sizeof(num), "%" PRIu64, memory_mib);
		else
			continue;
		xmlNodeSetContent(n, BAD_CAST num);
	}
	if ((buf = xmlBufferCreate()) == NULL ||
	    xmlNodeDump(buf, doc, root, 0, 0) < 0) {
		error_set(err, CARVE_EINTERNAL, "could not write the metadata");
		goto out;
	}
	*out = xstrdup((const char *)xmlBufferContent(buf));
	rc = 0;
out:
	if (buf != NULL)
		xmlBufferFree(buf);
	xmlFreeDoc(doc);
	return rc;
}

/*
 * A libvirt scaled integer (<memory unit='KiB'>...) in KiB. libvirt writes
 * KiB; the other units its schema allows are read too, so a definition made
 * by hand reads right. Fractions of a KiB round down.
 */
static int
sizes_kib(xmlNode *n, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t bytes;
	} units[] = {
		{ "b", 1 }, { "bytes", 1 },
		{ "KB", 1000ULL }, { "k", 1024ULL }, { "KiB", 1024ULL },
		{ "MB", 1000000ULL }, { "M", 1ULL << 20 }, { "MiB", 1ULL << 20 },
		{ "GB", 1000000000ULL }, { "G", 1ULL << 30 }, { "GiB", 1ULL << 30 },
		{ "TB", 1000000000000ULL }, { "T", 1ULL << 40 },
		{ "TiB", 1ULL << 40 },
	};
	xmlChar *unit, *text;
	uint64_t v, mult = 1024;
	int rc;

	unit = xmlGetNoNsProp(n, BAD_CAST "unit");
	if (unit != NULL) {
		size_t i;

		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (xmlStrcmp(unit, BAD_CAST units[i].unit) == 0)
				break;
		if (i == sizeof(units) / sizeof(units[0])) {
			xmlFree(unit);
			return -1;
		}
		mult = units[i].bytes;
		xmlFree(unit);
	}
	if ((text = xmlNodeGetContent(n)) == NULL)
		return -1;
	rc = parse_uint((const char *)text, 0, UINT64_MAX, &v);
	xmlFree(text);
	if (rc < 0 || (mult > 1 && v > UINT64_MAX / mult))
		return -1;
	*out = v * mult / 1024;
	return 0;
}

int
virt_xml_parse_sizes(const char *xml, struct virt_xml_sizes *out,
    struct carve_error *err)
{
	struct virt_xml_sizes sz;
	xmlDocPtr doc;
	xmlNode *root, *n;
	xmlChar *text;
	uint64_t v;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	memset(&sz, 0, sizeof(sz));
	doc = xml_parse(xml, VIRT_XML_DOMAIN_MAX, "domain XML", err);
	if (doc == NULL)
		return -1;
	root = xmlDocGetRootElement(doc);
	if (!name_is(root, "domain")) {
		error_set(err, CARVE_EINVAL, "domain XML has no <domain> root");
		goto out;
	}
	n = child_elem(root, "vcpu");
	text = n != NULL ? xmlNodeGetContent(n) : NULL;
	if (text == NULL || parse_uint((const char *)text, 1, UINT32_MAX,
	    &v) < 0) {
		xmlFree(text);
		error_set(err, CARVE_EINVAL, "domain XML has no valid <vcpu>");
		goto out;
	}
	xmlFree(text);
	sz.vcpus_max = sz.vcpus = (unsigned)v;
	if ((text = xmlGetNoNsProp(n, BAD_CAST "current")) != NULL) {
		rc = parse_uint((const char *)text, 1, sz.vcpus_max, &v);
		xmlFree(text);
		if (rc < 0) {
			error_set(err, CARVE_EINVAL, "domain XML has an invalid "
			    "<vcpu current=...>");
			goto out;
		}
		rc = -1;
		sz.vcpus = (unsigned)v;
	}
	n = child_elem(root, "memory");
	if (n == NULL || sizes_kib(n, &sz.memory_max_kib) < 0) {
		error_set(err, CARVE_EINVAL, "domain XML has no valid <memory>");
		goto out;
	}
	sz.memory_kib = sz.memory_max_kib;
	n = child_elem(root, "currentMemory");
	if (n != NULL && sizes_kib(n, &sz.memory_kib) < 0) {
		error_set(err, CARVE_EINVAL,
		    "domain XML has an invalid <currentMemory>");
		goto out;
	}
	*out = sz;
	rc = 0;
out:
	xmlFreeDoc(doc);
	return rc;
}

/* ------------------------------------------------------- capabilities */

static xmlNode *
child_elem(const xmlNode *parent, const char *name)
{
	if (parent == NULL)
		return NULL;
	for (xmlNode *n = parent->children; n != NULL; n = n->next)
		if (name_is(n, name))
			return n;
	return NULL;
}

/* Copy an element's text into out; absent element leaves out empty. */
static int
caps_text(const xmlNode *parent, const char *name, char *out, size_t size,
    struct carve_error *err)
{
	xmlNode *n = child_elem(parent, name);
	xmlChar *text;
	size_t len;

	out[0] = '\0';
	if (n == NULL)
		return 0;
	text = xmlNodeGetContent(n);
	if (text == NULL)
		return 0;
	len = strlen((const char *)text);
	if (len >= size) {
		xmlFree(text);
		return error_set(err, CARVE_EINVAL,
		    "host cpu %s in capabilities is longer than %zu bytes", name,
		    size - 1);
	}
	memcpy(out, text, len + 1);
	xmlFree(text);
	return 0;
}

static int
caps_uint_attr(const xmlNode *n, const char *name, unsigned *out,
    struct carve_error *err)
{
	xmlChar *val;
	uint64_t v;
	int rc;

	*out = 0;
	if (n == NULL || (val = xmlGetNoNsProp(n, BAD_CAST name)) == NULL)
		return 0;
	rc = parse_uint((const char *)val, 0, UINT32_MAX, &v);
	xmlFree(val);
	if (rc < 0)
		return error_set(err, CARVE_EINVAL,
		    "host cpu topology %s in capabilities is not a number", name);
	*out = (unsigned)v;
	return 0;
}

static void
caps_add_feature(struct host_cpu *cpu, const xmlChar *name)
{
	if (name == NULL || name[0] == '\0' ||
	    cpu->nfeatures >= VIRT_CPU_FEATURES_MAX)
		return;
	cpu->features[cpu->nfeatures++] = xstrdup((const char *)name);
}

/*
 * Features come as <feature name='x'/> (QEMU) or, in the test driver and
 * older hosts, as empty elements under <features> (<pae/>).
 */
static void
caps_features(const xmlNode *cpunode, struct host_cpu *cpu)
{
	for (xmlNode *n = cpunode->children; n != NULL; n = n->next) {
		if (name_is(n, "feature")) {
			xmlChar *name = xmlGetNoNsProp(n, BAD_CAST "name");

			caps_add_feature(cpu, name);
			xmlFree(name);
		} else if (name_is(n, "features")) {
			for (xmlNode *f = n->children; f != NULL; f = f->next)
				if (f->type == XML_ELEMENT_NODE)
					caps_add_feature(cpu, f->name);
		}
	}
}

static int
caps_parse_root(const xmlNode *root, struct host_cpu *out,
    struct carve_error *err)
{
	xmlNode *host, *cpunode, *topo, *cells;
	char shown[48];

	if (!name_is(root, "capabilities"))
		return error_set(err, CARVE_EINVAL,
		    "capabilities root element must be <capabilities>, not "
		    "<%s>", show_name(root, shown));
	host = child_elem(root, "host");
	cpunode = child_elem(host, "cpu");
	if (cpunode != NULL) {
		topo = child_elem(cpunode, "topology");
		if (caps_text(cpunode, "arch", out->arch, sizeof(out->arch),
		    err) < 0 ||
		    caps_text(cpunode, "model", out->model, sizeof(out->model),
		    err) < 0 ||
		    caps_text(cpunode, "vendor", out->vendor,
		    sizeof(out->vendor), err) < 0 ||
		    caps_uint_attr(topo, "sockets", &out->sockets, err) < 0 ||
		    caps_uint_attr(topo, "cores", &out->cores, err) < 0 ||
		    caps_uint_attr(topo, "threads", &out->threads, err) < 0)
			return -1;
		caps_features(cpunode, out);
	}
	cells = child_elem(child_elem(host, "topology"), "cells");
	if (cells != NULL)
		for (xmlNode *n = cells->children; n != NULL; n = n->next)
			if (name_is(n, "cell"))
				out->numa_cells++;
	return 0;
}

int
virt_xml_parse_caps(const char *xml, struct host_cpu *out,
    struct carve_error *err)
{
	xmlDocPtr doc;
	int rc;

	memset(out, 0, sizeof(*out));
	doc = xml_parse(xml, VIRT_XML_CAPS_MAX, "capabilities", err);
	if (doc == NULL)
		return -1;
	rc = caps_parse_root(xmlDocGetRootElement(doc), out, err);
	xmlFreeDoc(doc);
	if (rc < 0) {
		host_cpu_clear(out);
		return -1;
	}
	return 0;
}

void
host_cpu_clear(struct host_cpu *cpu)
{
	if (cpu == NULL)
		return;
	for (unsigned i = 0; i < cpu->nfeatures && i < VIRT_CPU_FEATURES_MAX; i++)
		free(cpu->features[i]);
	memset(cpu, 0, sizeof(*cpu));
}

xmlDocPtr
virt_xml_read(const char *buf, size_t maxlen, const char *what,
    struct carve_error *err)
{
	return xml_parse(buf, maxlen, what, err);
}
