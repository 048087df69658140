/*
 * Unit tests for agent/virt_snap.c: carve's record in a snapshot's
 * description, the snapshot and domain XML it reads, the copy of the records
 * in the domain's metadata (and how listing reconciles it with libvirt's
 * list), and the three commands against libvirt's test driver in process
 * (metadata-only snapshots): idempotency by command id, conflicts, absent
 * snapshots, the limit, and the revert's recovery paths.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "agent/virt_ops.h"
#include "agent/virt_snap.h"
#include "agent/virt_xml.h"
#include "common/jsonx.h"
#include "common/xalloc.h"

#define VM_ID  "6f1d2a4e-3b5c-4d7e-8f90-a1b2c3d4e5f6"
#define CMD1   "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
#define CMD2   "1a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
#define CMD3   "2a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
#define CMD4   "3a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
#define CMD5   "4a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------ pure parts */

static void
test_estimate(void **state)
{
	(void)state;
	assert_int_equal(virt_snap_estimate_gib(64), 1);
	assert_int_equal(virt_snap_estimate_gib(128), 1);
	assert_int_equal(virt_snap_estimate_gib(1024), 1);
	assert_int_equal(virt_snap_estimate_gib(1025), 2);
	assert_int_equal(virt_snap_estimate_gib(16384), 16);
}

static void
test_description(void **state)
{
	static const struct {
		const char *text;
		int rc;
		enum vm_snapshot_kind kind;
		long long at;
	} cases[] = {
		{ "carve:1 kind=full command_id=" CMD1 " created_at=1700000000123",
		    0, VM_SNAPSHOT_FULL, 1700000000123LL },
		{ "  carve:1 created_at=5 kind=disk command_id="
		    "0A9B8C7D-6E5F-4A3B-9C2D-1E0F9A8B7C6D\n", 0, VM_SNAPSHOT_DISK,
		    5 },
		{ "", -1, 0, 0 },
		{ "carve:1", -1, 0, 0 },
		{ "carve:1 ", -1, 0, 0 },
		{ "before the upgrade", -1, 0, 0 },
		{ "carve:2 kind=full command_id=" CMD1 " created_at=1", -1, 0, 0 },
		{ "carve:1 kind=full command_id=" CMD1, -1, 0, 0 },
		{ "carve:1 kind=full created_at=1", -1, 0, 0 },
		{ "carve:1 command_id=" CMD1 " created_at=1", -1, 0, 0 },
		{ "carve:1 kind=ram command_id=" CMD1 " created_at=1", -1, 0, 0 },
		{ "carve:1 kind=full command_id=x created_at=1", -1, 0, 0 },
		{ "carve:1 kind=full command_id=" CMD1 " created_at=-1", -1, 0, 0 },
		{ "carve:1 kind=full command_id=" CMD1 " created_at=1x", -1, 0, 0 },
		{ "carve:1 kind=full command_id=" CMD1 " created_at=1 extra=2", -1,
		    0, 0 },
		{ "carve:1 kind=full kind=disk command_id=" CMD1 " created_at=1",
		    -1, 0, 0 },
		{ "carve:1  kind=full command_id=" CMD1 " created_at=1", -1, 0, 0 },
		{ "carve:1 kind=full command_id=" CMD1 " created_at="
		    "1234567890123456789", -1, 0, 0 },
	};
	struct virt_snap_rec rec, back;
	char *d;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		memset(&rec, 0, sizeof(rec));
		if (virt_snap_parse_description(cases[i].text, &rec) !=
		    cases[i].rc)
			fail_msg("case %zu <%s>", i, cases[i].text);
		if (cases[i].rc != 0)
			continue;
		assert_int_equal(rec.sr_snap.snap_kind, cases[i].kind);
		assert_true(rec.sr_snap.snap_created_at_ms == cases[i].at);
		assert_string_equal(rec.sr_command_id, CMD1);
	}

	memset(&rec, 0, sizeof(rec));
	snprintf(rec.sr_snap.snap_name, sizeof(rec.sr_snap.snap_name), "x");
	rec.sr_snap.snap_kind = VM_SNAPSHOT_DISK;
	rec.sr_snap.snap_created_at_ms = 42;
	snprintf(rec.sr_command_id, sizeof(rec.sr_command_id), "%s", CMD2);
	d = virt_snap_description(&rec);
	assert_string_equal(d, "carve:1 kind=disk command_id=" CMD2
	    " created_at=42");
	memset(&back, 0, sizeof(back));
	assert_int_equal(virt_snap_parse_description(d, &back), 0);
	assert_int_equal(back.sr_snap.snap_kind, VM_SNAPSHOT_DISK);
	assert_string_equal(back.sr_command_id, CMD2);
	free(d);
}

#define SNAPXML(inner) "<domainsnapshot>" inner "</domainsnapshot>"

static void
test_parse_xml(void **state)
{
	static const struct {
		const char *xml;
		int rc;
		const char *name;
		bool carve, memory, external;
		enum vm_snapshot_kind kind;
		long long at;
		const char *msg;
	} cases[] = {
		{ SNAPXML("<name>s1</name><description>carve:1 kind=disk "
		    "command_id=" CMD1 " created_at=7</description><state>running"
		    "</state><creationTime>1700000000</creationTime><memory "
		    "snapshot='internal'/><disks><disk name='vda' snapshot="
		    "'internal'/><disk name='hdc' snapshot='no'/></disks><domain "
		    "type='qemu'><name>x</name></domain>"), 0, "s1", true, true,
		    false, VM_SNAPSHOT_DISK, 7, NULL },
		/* made outside carve: kind from the memory, time from libvirt */
		{ SNAPXML("<name>manual</name><description>before upgrade"
		    "</description><state>running</state><creationTime>1700000000"
		    "</creationTime><memory snapshot='internal'/>"), 0, "manual",
		    false, true, false, VM_SNAPSHOT_FULL, 1700000000000LL, NULL },
		{ SNAPXML("<name>off</name><state>shutoff</state><creationTime>3"
		    "</creationTime><memory snapshot='no'/>"), 0, "off", false,
		    false, false, VM_SNAPSHOT_DISK, 3000, NULL },
		{ SNAPXML("<name>ext</name><state>disk-snapshot</state><memory "
		    "snapshot='no'/><disks><disk name='vda' snapshot='external'>"
		    "<source file='/x'/></disk></disks>"), 0, "ext", false, false,
		    true, VM_SNAPSHOT_DISK, 0, NULL },
		{ SNAPXML("<state>running</state>"), -1, NULL, false, false, false,
		    0, 0, "no usable <name>" },
		{ SNAPXML("<name>a b</name>"), -1, NULL, false, false, false, 0, 0,
		    "snapshot name may only contain" },
		{ SNAPXML("<name>a</name><creationTime>-5</creationTime>"), -1,
		    NULL, false, false, false, 0, 0, "bad creationTime" },
		{ "<snapshot><name>a</name></snapshot>", -1, NULL, false, false,
		    false, 0, 0, "no <domainsnapshot> root" },
		{ "<!DOCTYPE d [<!ENTITY e \"x\">]>" SNAPXML("<name>&e;</name>"),
		    -1, NULL, false, false, false, 0, 0, "document type" },
		{ SNAPXML("<name>a</name"), -1, NULL, false, false, false, 0, 0,
		    "not well-formed" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct carve_error err = { 0 };
		struct virt_snap_info si;
		int rc = virt_snap_parse_xml(cases[i].xml, &si, &err);

		if (rc != cases[i].rc)
			fail_msg("case %zu: rc %d (%s)", i, rc, err.message);
		if (rc != 0) {
			assert_int_equal(err.code, CARVE_EINVAL);
			if (strstr(err.message, cases[i].msg) == NULL)
				fail_msg("case %zu: \"%s\" lacks \"%s\"", i,
				    err.message, cases[i].msg);
			continue;
		}
		assert_string_equal(si.si_rec.sr_snap.snap_name, cases[i].name);
		assert_int_equal(si.si_carve, cases[i].carve);
		assert_int_equal(si.si_memory, cases[i].memory);
		assert_int_equal(si.si_external, cases[i].external);
		assert_int_equal(si.si_rec.sr_snap.snap_kind, cases[i].kind);
		assert_true(si.si_rec.sr_snap.snap_created_at_ms == cases[i].at);
		if (!cases[i].carve)
			assert_string_equal(si.si_rec.sr_command_id, "");
	}
}

/* What carve asks libvirt to create reads back as the same record. */
static void
test_create_xml(void **state)
{
	struct carve_error err = { 0 };
	struct virt_snap_rec rec;
	struct virt_snap_info si;
	char *xml;

	(void)state;
	memset(&rec, 0, sizeof(rec));
	snprintf(rec.sr_snap.snap_name, sizeof(rec.sr_snap.snap_name),
	    "pre-upgrade.1");
	rec.sr_snap.snap_kind = VM_SNAPSHOT_FULL;
	rec.sr_snap.snap_created_at_ms = 1764075600123LL;
	snprintf(rec.sr_command_id, sizeof(rec.sr_command_id), "%s", CMD3);
	xml = virt_snap_create_xml(&rec, &err);
	assert_non_null(xml);
	assert_int_equal(virt_snap_parse_xml(xml, &si, &err), 0);
	assert_true(si.si_carve);
	assert_string_equal(si.si_rec.sr_snap.snap_name, "pre-upgrade.1");
	assert_string_equal(si.si_rec.sr_command_id, CMD3);
	assert_true(si.si_rec.sr_snap.snap_created_at_ms == 1764075600123LL);
	free(xml);
}

static void
cache_add(struct virt_snap_cache *c, const char *name,
    enum vm_snapshot_kind kind, int64_t at, const char *cmd)
{
	struct virt_snap_rec *r = &c->sc_recs[c->sc_n++];

	memset(r, 0, sizeof(*r));
	snprintf(r->sr_snap.snap_name, sizeof(r->sr_snap.snap_name), "%s", name);
	r->sr_snap.snap_kind = kind;
	r->sr_snap.snap_created_at_ms = at;
	snprintf(r->sr_command_id, sizeof(r->sr_command_id), "%s", cmd);
}

static void
test_cache_round_trip(void **state)
{
	static const enum virt_snap_phase phases[] = {
		VIRT_SNAP_PHASE_NONE, VIRT_SNAP_PHASE_BEFORE,
		VIRT_SNAP_PHASE_AFTER, VIRT_SNAP_PHASE_DONE,
	};
	struct virt_snap_cache c, back;
	struct carve_error err = { 0 };
	char *xml;

	(void)state;
	for (size_t p = 0; p < NELEM(phases); p++) {
		memset(&c, 0, sizeof(c));
		cache_add(&c, "a", VM_SNAPSHOT_FULL, 1, CMD1);
		cache_add(&c, "b.2", VM_SNAPSHOT_DISK, 1764075600123LL, "");
		c.sc_phase = phases[p];
		if (c.sc_phase != VIRT_SNAP_PHASE_NONE) {
			snprintf(c.sc_revert_cmd, sizeof(c.sc_revert_cmd), "%s",
			    CMD2);
			c.sc_was_running = p % 2 == 1;
		}
		xml = virt_snap_cache_xml(&c, &err);
		assert_non_null(xml);
		memset(&back, 0x5a, sizeof(back));
		if (virt_snap_parse_cache(xml, &back, &err) != 0)
			fail_msg("<%s> refused: %s", xml, err.message);
		assert_int_equal(back.sc_n, 2);
		assert_string_equal(back.sc_recs[0].sr_snap.snap_name, "a");
		assert_string_equal(back.sc_recs[0].sr_command_id, CMD1);
		assert_string_equal(back.sc_recs[1].sr_snap.snap_name, "b.2");
		assert_int_equal(back.sc_recs[1].sr_snap.snap_kind,
		    VM_SNAPSHOT_DISK);
		assert_true(back.sc_recs[1].sr_snap.snap_created_at_ms ==
		    1764075600123LL);
		assert_string_equal(back.sc_recs[1].sr_command_id, "");
		assert_int_equal(back.sc_phase, c.sc_phase);
		if (c.sc_phase != VIRT_SNAP_PHASE_NONE) {
			assert_string_equal(back.sc_revert_cmd, CMD2);
			assert_int_equal(back.sc_was_running, c.sc_was_running);
		}
		free(xml);
	}
	/* As libvirt hands it back: in the namespace, or bare. */
	assert_int_equal(virt_snap_parse_cache("<carvesnap:snapshots xmlns:"
	    "carvesnap=\"" VIRT_SNAP_NS "\"><carvesnap:snapshot name=\"a\" "
	    "kind=\"full\" created_at=\"1\"/></carvesnap:snapshots>", &back,
	    &err), 0);
	assert_int_equal(back.sc_n, 1);
	assert_int_equal(virt_snap_parse_cache("<snapshots/>", &back, &err), 0);
	assert_int_equal(back.sc_n, 0);
	assert_int_equal(back.sc_phase, VIRT_SNAP_PHASE_NONE);
}

static void
test_cache_rejects(void **state)
{
#define E1 "<snapshot name=\"a\" kind=\"full\" created_at=\"1\"/>"
	static const struct {
		const char *xml;
		const char *msg;
	} cases[] = {
		{ "<records/>", "expected a bare <snapshots>" },
		{ "<snapshots v=\"1\"/>", "expected a bare <snapshots>" },
		{ "<x:snapshots xmlns:x=\"urn:other\"/>",
		    "expected a bare <snapshots>" },
		{ "<snapshots><other/></snapshots>", "unexpected content" },
		{ "<snapshots>text</snapshots>", "unexpected content" },
		{ "<snapshots>" E1 E1 "</snapshots>", "a name appears twice" },
		{ "<snapshots><snapshot kind=\"full\" created_at=\"1\"/>"
		    "</snapshots>", "bad name" },
		{ "<snapshots><snapshot name=\"a/b\" kind=\"full\" "
		    "created_at=\"1\"/></snapshots>", "may only contain" },
		{ "<snapshots><snapshot name=\"a\" kind=\"ram\" created_at=\"1\"/>"
		    "</snapshots>", "bad <snapshot> of \"a\"" },
		{ "<snapshots><snapshot name=\"a\" kind=\"full\"/></snapshots>",
		    "bad <snapshot>" },
		{ "<snapshots><snapshot name=\"a\" kind=\"full\" created_at=\"x\"/>"
		    "</snapshots>", "bad <snapshot>" },
		{ "<snapshots><snapshot name=\"a\" kind=\"full\" created_at=\"1\" "
		    "command_id=\"nope\"/></snapshots>", "bad <snapshot>" },
		{ "<snapshots><snapshot name=\"a\" kind=\"full\" created_at=\"1\" "
		    "size=\"9\"/></snapshots>", "unknown attribute" },
		{ "<snapshots><snapshot name=\"a\" kind=\"full\" created_at=\"1\">"
		    "<x/></snapshot></snapshots>", "must be empty" },
		{ "<snapshots><revert command_id=\"" CMD1 "\" was_running=\"yes\" "
		    "phase=\"later\"/></snapshots>", "bad revert phase" },
		{ "<snapshots><revert command_id=\"" CMD1 "\" was_running=\"1\" "
		    "phase=\"before\"/></snapshots>", "bad <revert>" },
		{ "<snapshots><revert was_running=\"no\" phase=\"before\"/>"
		    "</snapshots>", "bad <revert>" },
		{ "<snapshots><revert command_id=\"" CMD1 "\" was_running=\"no\" "
		    "phase=\"done\"/><revert command_id=\"" CMD1 "\" "
		    "was_running=\"no\" phase=\"done\"/></snapshots>",
		    "unexpected content" },
		{ "<snapshots>", "not well-formed" },
	};
	struct virt_snap_cache *c = xmalloc(sizeof(*c));
	char *many = xstrdup("<snapshots>"), *t;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct carve_error err = { 0 };

		if (virt_snap_parse_cache(cases[i].xml, c, &err) != -1 ||
		    err.code != CARVE_EINVAL)
			fail_msg("case %zu <%s> accepted", i, cases[i].xml);
		if (strstr(err.message, cases[i].msg) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.message,
			    cases[i].msg);
	}
	for (int i = 0; i <= VM_SNAPSHOTS_MAX; i++) {
		t = xasprintf("%s<snapshot name=\"s%d\" kind=\"full\" "
		    "created_at=\"1\"/>", many, i);
		free(many);
		many = t;
	}
	t = xasprintf("%s</snapshots>", many);
	{
		struct carve_error err = { 0 };

		assert_int_equal(virt_snap_parse_cache(t, c, &err), -1);
		assert_non_null(strstr(err.message, "more than 16"));
	}
	free(t);
	free(many);
	free(c);
}

static void
test_parse_domain(void **state)
{
	static const struct {
		const char *xml;
		bool test, agent;
		unsigned disks;
		const char *bad, *fmt;
	} cases[] = {
		/* what carve makes from an image: qcow2 root, raw seed cdrom */
		{ "<domain type='qemu'><devices><disk type='file' device='disk'>"
		    "<driver name='qemu' type='qcow2'/><source file='/r'/><target "
		    "dev='vda' bus='virtio'/></disk><disk type='file' "
		    "device='cdrom'><driver name='qemu' type='raw'/><target "
		    "dev='hdc'/><readonly/></disk><serial type='pty'/></devices>"
		    "</domain>", false, false, 1, "", "" },
		/* no disk at all: a kernel booted without one */
		{ "<domain type='qemu'><os><kernel>/k</kernel></os><devices>"
		    "<serial type='pty'/></devices></domain>", false, false, 0, "",
		    "" },
		{ "<domain type='kvm'><devices><disk type='file'><driver "
		    "type='qcow2'/><target dev='vda'/></disk><disk type='file' "
		    "device='disk'><driver type='raw'/><target dev='vdb'/></disk>"
		    "</devices></domain>", false, false, 2, "vdb", "raw" },
		{ "<domain type='kvm'><devices><disk type='block'><target "
		    "dev='vdc'/></disk></devices></domain>", false, false, 1, "vdc",
		    "undeclared" },
		/* a read-only raw disk is left out of snapshots */
		{ "<domain type='kvm'><devices><disk type='file'><driver "
		    "type='qcow2'/><target dev='vda'/></disk><disk type='file'>"
		    "<driver type='raw'/><target dev='vdb'/><readonly/></disk>"
		    "</devices></domain>", false, false, 1, "", "" },
		{ "<domain type='test'><devices/></domain>", true, false, 0, "",
		    "" },
		{ "<domain type='kvm'><devices><channel type='unix'><target "
		    "type='virtio' name='org.qemu.guest_agent.0'/></channel>"
		    "</devices></domain>", false, true, 0, "", "" },
		{ "<domain type='kvm'><devices><channel type='spicevmc'><target "
		    "type='virtio' name='com.redhat.spice.0'/></channel>"
		    "</devices></domain>", false, false, 0, "", "" },
	};
	struct carve_error err = { 0 };
	struct virt_snap_dom d;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		if (virt_snap_parse_domain(cases[i].xml, &d, &err) != 0)
			fail_msg("case %zu refused: %s", i, err.message);
		assert_int_equal(d.sd_test, cases[i].test);
		assert_int_equal(d.sd_agent, cases[i].agent);
		assert_int_equal(d.sd_disks, cases[i].disks);
		assert_string_equal(d.sd_bad_disk, cases[i].bad);
		assert_string_equal(d.sd_bad_format, cases[i].fmt);
	}
	assert_int_equal(virt_snap_parse_domain("<pool/>", &d, &err), -1);
	assert_non_null(strstr(err.message, "no <domain> root"));
}

/* ------------------------------------------------------------ test driver */

struct drv {
	virConnectPtr c;
	virDomainPtr d;
};

static void
quiet_libvirt(void *arg, virErrorPtr e)
{
	(void)arg;
	(void)e;
}

/* A carve-managed, running domain on a fresh test:///default. */
static int
drv_setup(void **state)
{
	struct carve_error err = { 0 };
	struct virt_xml_opts o = {
		.domain_type = "test", .vm_id = VM_ID, .command_id = CMD1,
		.created_at_ms = 1,
	};
	struct drv *t = xcalloc(1, sizeof(*t));
	struct vm_spec spec;
	struct vm_info vm;
	char *xml;

	virSetErrorFunc(NULL, quiet_libvirt);
	memset(&spec, 0, sizeof(spec));
	snprintf(spec.vs_name, sizeof(spec.vs_name), "carve-snap-unit");
	spec.vs_vcpus = 1;
	spec.vs_memory_mib = 128;
	t->c = virConnectOpen("test:///default");
	assert_non_null(t->c);
	xml = virt_xml_domain(&spec, &o, &err);
	assert_non_null(xml);
	if (virt_op_create(t->c, xml, VM_ID, CMD1, &vm, &err) != 0)
		fail_msg("create: %s", err.message);
	free(xml);
	assert_true(vm.vm_snapshots_known);
	assert_int_equal(vm.vm_nsnapshots, 0);
	t->d = virDomainLookupByUUIDString(t->c, VM_ID);
	assert_non_null(t->d);
	*state = t;
	return 0;
}

static int
drv_teardown(void **state)
{
	struct drv *t = *state;

	virDomainFree(t->d);
	virConnectClose(t->c);
	free(t);
	return 0;
}

static struct command_snapshot_args
snap_args(const char *name, enum vm_snapshot_kind kind)
{
	struct command_snapshot_args a;

	memset(&a, 0, sizeof(a));
	snprintf(a.name, sizeof(a.name), "%s", name);
	a.kind = kind;
	return a;
}

/* Run one command; returns rc, with *code the error's (CARVE_OK if none). */
enum op { OP_CREATE, OP_REVERT, OP_DELETE };

static int
run(struct drv *t, enum op op, const char *cmd, const char *name,
    enum vm_snapshot_kind kind, int64_t now, bool recovering,
    struct vm_info *vm, json_object **data, enum carve_errcode *code)
{
	struct command_snapshot_args a = snap_args(name, kind);
	struct carve_error err = { 0 };
	struct vm_info tmp;
	json_object *tmpd = NULL;
	int rc;

	if (vm == NULL)
		vm = &tmp;
	if (data == NULL)
		data = &tmpd;
	*data = NULL;
	switch (op) {
	case OP_CREATE:
		rc = virt_snap_create(t->c, VM_ID, cmd, &a, now, recovering, vm,
		    data, &err);
		break;
	case OP_REVERT:
		rc = virt_snap_revert(t->c, VM_ID, cmd, name, recovering, vm,
		    data, &err);
		break;
	default:
		rc = virt_snap_delete(t->c, VM_ID, cmd, name, recovering, vm,
		    data, &err);
		break;
	}
	*code = err.code;
	if (rc == 0 && error_isset(&err))
		fail_msg("error set on success: %s", err.message);
	if (tmpd != NULL)
		json_object_put(tmpd);
	return rc;
}

static const char *
names(const struct vm_info *vm, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < vm->vm_nsnapshots; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s:%s", i ? "," : "",
		    vm->vm_snapshots[i].snap_name,
		    vm_snapshot_kind_name(vm->vm_snapshots[i].snap_kind));
	return buf;
}

static const char *
listed(struct drv *t, char *buf, size_t len)
{
	struct carve_error err = { 0 };
	struct vm_info vm;

	if (virt_op_get(t->c, VM_ID, &vm, &err) != 0)
		fail_msg("get: %s", err.message);
	assert_true(vm.vm_snapshots_known);
	return names(&vm, buf, len);
}

static int64_t
json_int(json_object *o, const char *key)
{
	json_object *v;

	assert_true(json_object_object_get_ex(o, key, &v));
	return json_object_get_int64(v);
}

static void
test_drv_create(void **state)
{
	struct drv *t = *state;
	enum carve_errcode code;
	struct vm_info vm;
	json_object *data;
	char buf[512];

	assert_int_equal(run(t, OP_CREATE, CMD1, "s1", VM_SNAPSHOT_FULL, 1000,
	    false, &vm, &data, &code), 0);
	assert_string_equal(names(&vm, buf, sizeof(buf)), "s1:full");
	assert_true(json_int(data, "created_at") == 1000);
	assert_true(json_int(data, "created"));
	json_object_put(data);
	/* The same command again (a re-run, a recovery): nothing new. */
	assert_int_equal(run(t, OP_CREATE, CMD1, "s1", VM_SNAPSHOT_FULL, 2000,
	    true, &vm, &data, &code), 0);
	assert_true(json_int(data, "created_at") == 1000);
	assert_false(json_int(data, "created"));
	json_object_put(data);
	/* The name from another command: conflict. */
	assert_int_equal(run(t, OP_CREATE, CMD2, "s1", VM_SNAPSHOT_DISK, 3000,
	    false, NULL, NULL, &code), -1);
	assert_int_equal(code, CARVE_ECONFLICT);
	assert_int_equal(run(t, OP_CREATE, CMD2, "s2", VM_SNAPSHOT_DISK, 3000,
	    false, &vm, NULL, &code), 0);
	assert_string_equal(names(&vm, buf, sizeof(buf)), "s1:full,s2:disk");
	assert_int_equal(virDomainSnapshotNum(t->d, 0), 2);
	/* Quiesce needs a guest agent channel, which a test domain lacks. */
	{
		struct command_snapshot_args a = snap_args("q", VM_SNAPSHOT_DISK);
		struct carve_error err = { 0 };

		a.quiesce = true;
		data = NULL;
		assert_int_equal(virt_snap_create(t->c, VM_ID, CMD3, &a, 1, false,
		    &vm, &data, &err), -1);
		assert_int_equal(err.code, CARVE_EINVAL);
		assert_non_null(strstr(err.message, "guest agent"));
	}
	/* An absent VM. */
	{
		struct command_snapshot_args a = snap_args("x", VM_SNAPSHOT_FULL);
		struct carve_error err = { 0 };

		assert_int_equal(virt_snap_create(t->c,
		    "00000000-0000-4000-8000-000000000000", CMD3, &a, 1, false,
		    &vm, &data, &err), -1);
		assert_int_equal(err.code, CARVE_ENOTFOUND);
	}
}

static void
test_drv_limit(void **state)
{
	struct drv *t = *state;
	enum carve_errcode code;
	char name[16];

	for (int i = 0; i < VM_SNAPSHOTS_MAX; i++) {
		snprintf(name, sizeof(name), "n%02d", i);
		assert_int_equal(run(t, OP_CREATE, CMD1, name, VM_SNAPSHOT_FULL,
		    i, false, NULL, NULL, &code), 0);
	}
	assert_int_equal(run(t, OP_CREATE, CMD1, "one-more", VM_SNAPSHOT_FULL,
	    99, false, NULL, NULL, &code), -1);
	assert_int_equal(code, CARVE_ECONFLICT);
}

static void
test_drv_delete(void **state)
{
	struct drv *t = *state;
	enum carve_errcode code;
	json_object *data;
	char buf[512];

	assert_int_equal(run(t, OP_CREATE, CMD1, "s1", VM_SNAPSHOT_FULL, 1,
	    false, NULL, NULL, &code), 0);
	assert_int_equal(run(t, OP_DELETE, CMD2, "s1", 0, 0, false, NULL, &data,
	    &code), 0);
	assert_true(json_int(data, "deleted"));
	json_object_put(data);
	assert_string_equal(listed(t, buf, sizeof(buf)), "");
	assert_int_equal(virDomainSnapshotNum(t->d, 0), 0);
	/* Absent: not_found, but done when the command is being recovered. */
	assert_int_equal(run(t, OP_DELETE, CMD3, "s1", 0, 0, false, NULL, NULL,
	    &code), -1);
	assert_int_equal(code, CARVE_ENOTFOUND);
	assert_int_equal(run(t, OP_DELETE, CMD2, "s1", 0, 0, true, NULL, &data,
	    &code), 0);
	assert_true(json_int(data, "recovered"));
	json_object_put(data);
}

/* Listing reconciles the copy with libvirt's list. */
static void
test_drv_reconcile(void **state)
{
	struct drv *t = *state;
	enum carve_errcode code;
	virDomainSnapshotPtr s;
	char buf[512];

	assert_int_equal(run(t, OP_CREATE, CMD1, "a", VM_SNAPSHOT_DISK, 10,
	    false, NULL, NULL, &code), 0);
	assert_int_equal(run(t, OP_CREATE, CMD2, "b", VM_SNAPSHOT_FULL, 20,
	    false, NULL, NULL, &code), 0);
	/* No copy at all: every record from its snapshot's description. */
	assert_int_equal(virDomainSetMetadata(t->d, VIR_DOMAIN_METADATA_ELEMENT,
	    NULL, NULL, VIRT_SNAP_NS, VIR_DOMAIN_AFFECT_LIVE |
	    VIR_DOMAIN_AFFECT_CONFIG), 0);
	assert_string_equal(listed(t, buf, sizeof(buf)), "a:disk,b:full");
	/* A copy that lies: a ghost dropped, a wrong kind kept (a record
	 * never changes, so the copy is trusted for names it has). */
	assert_int_equal(virDomainSetMetadata(t->d, VIR_DOMAIN_METADATA_ELEMENT,
	    "<snapshots><snapshot name=\"ghost\" kind=\"full\" created_at=\"1\"/>"
	    "<snapshot name=\"b\" kind=\"full\" created_at=\"20\"/></snapshots>",
	    VIRT_SNAP_PREFIX, VIRT_SNAP_NS, VIR_DOMAIN_AFFECT_LIVE |
	    VIR_DOMAIN_AFFECT_CONFIG), 0);
	assert_string_equal(listed(t, buf, sizeof(buf)), "a:disk,b:full");
	/* A copy that does not read is ignored. */
	assert_int_equal(virDomainSetMetadata(t->d, VIR_DOMAIN_METADATA_ELEMENT,
	    "<snapshots><junk/></snapshots>", VIRT_SNAP_PREFIX, VIRT_SNAP_NS,
	    VIR_DOMAIN_AFFECT_LIVE | VIR_DOMAIN_AFFECT_CONFIG), 0);
	assert_string_equal(listed(t, buf, sizeof(buf)), "a:disk,b:full");
	/* Made outside carve: listed, and its name taken. */
	s = virDomainSnapshotCreateXML(t->d, "<domainsnapshot><name>manual"
	    "</name></domainsnapshot>", 0);
	assert_non_null(s);
	virDomainSnapshotFree(s);
	assert_string_equal(listed(t, buf, sizeof(buf)),
	    "a:disk,b:full,manual:full");
	assert_int_equal(run(t, OP_CREATE, CMD3, "manual", VM_SNAPSHOT_FULL, 30,
	    false, NULL, NULL, &code), -1);
	assert_int_equal(code, CARVE_ECONFLICT);
	/* One carve cannot name is left out. */
	s = virDomainSnapshotCreateXML(t->d, "<domainsnapshot><name>a b"
	    "</name></domainsnapshot>", 0);
	assert_non_null(s);
	virDomainSnapshotFree(s);
	assert_int_equal(virDomainSnapshotNum(t->d, 0), 4);
	assert_string_equal(listed(t, buf, sizeof(buf)),
	    "a:disk,b:full,manual:full");
}

static int
state_reason(virDomainPtr d, int *reason)
{
	int st;

	assert_int_equal(virDomainGetState(d, &st, reason, 0), 0);
	return st;
}

static const char *
current(virDomainPtr d, char *buf, size_t len)
{
	virDomainSnapshotPtr s = virDomainSnapshotCurrent(d, 0);

	snprintf(buf, len, "%s", s != NULL ? virDomainSnapshotGetName(s) : "");
	if (s != NULL)
		virDomainSnapshotFree(s);
	return buf;
}

static void
revert_to(struct drv *t, const char *name, unsigned flags)
{
	virDomainSnapshotPtr s = virDomainSnapshotLookupByName(t->d, name, 0);

	assert_non_null(s);
	assert_int_equal(virDomainRevertToSnapshot(s, flags), 0);
	virDomainSnapshotFree(s);
}

#define PROBE_NS "urn:carve:test:probe"

static void
set_probe(struct drv *t)
{
	assert_int_equal(virDomainSetMetadata(t->d, VIR_DOMAIN_METADATA_ELEMENT,
	    "<probe/>", "probe", PROBE_NS, VIR_DOMAIN_AFFECT_LIVE |
	    VIR_DOMAIN_AFFECT_CONFIG), 0);
}

static bool
has_probe(struct drv *t)
{
	char *x = virDomainGetMetadata(t->d, VIR_DOMAIN_METADATA_ELEMENT,
	    PROBE_NS, VIR_DOMAIN_AFFECT_LIVE);
	bool have = x != NULL;

	free(x);
	return have;
}

static void
write_marker(struct drv *t, const char *phase, const char *cmd)
{
	char *xml = xasprintf("<snapshots><snapshot name=\"full\" kind=\"full\" "
	    "created_at=\"1\" command_id=\"" CMD1 "\"/><snapshot name=\"disk\" "
	    "kind=\"disk\" created_at=\"2\" command_id=\"" CMD1 "\"/><revert "
	    "command_id=\"%s\" was_running=\"yes\" phase=\"%s\"/></snapshots>",
	    cmd, phase);

	assert_int_equal(virDomainSetMetadata(t->d, VIR_DOMAIN_METADATA_ELEMENT,
	    xml, VIRT_SNAP_PREFIX, VIRT_SNAP_NS, VIR_DOMAIN_AFFECT_CONFIG |
	    (virDomainIsActive(t->d) == 1 ? VIR_DOMAIN_AFFECT_LIVE : 0)), 0);
	free(xml);
}

static void
test_drv_revert(void **state)
{
	struct drv *t = *state;
	enum carve_errcode code;
	struct vm_info vm;
	json_object *data;
	char buf[64];
	int reason;

	assert_int_equal(run(t, OP_CREATE, CMD1, "full", VM_SNAPSHOT_FULL, 1,
	    false, NULL, NULL, &code), 0);
	assert_int_equal(run(t, OP_CREATE, CMD1, "disk", VM_SNAPSHOT_DISK, 2,
	    false, NULL, NULL, &code), 0);
	assert_int_equal(run(t, OP_REVERT, CMD2, "nope", 0, 0, false, NULL,
	    NULL, &code), -1);
	assert_int_equal(code, CARVE_ENOTFOUND);

	/* full: the state it was taken in, "from snapshot". */
	assert_int_equal(virDomainDestroy(t->d), 0);
	assert_int_equal(run(t, OP_REVERT, CMD2, "full", 0, 0, false, &vm,
	    &data, &code), 0);
	assert_int_equal(vm.vm_state, VM_STATE_RUNNING);
	assert_int_equal(state_reason(t->d, &reason), VIR_DOMAIN_RUNNING);
	assert_int_equal(reason, VIR_DOMAIN_RUNNING_FROM_SNAPSHOT);
	assert_string_equal(current(t->d, buf, sizeof(buf)), "full");
	json_object_put(data);
	/* Both snapshots are still listed after the definition came back
	 * from the snapshot (whose copy knew neither). */
	assert_string_equal(listed(t, buf, sizeof(buf)), "full:full,disk:disk");

	/* disk, VM running: booted afresh. */
	assert_int_equal(run(t, OP_REVERT, CMD3, "disk", 0, 0, false, &vm, &data,
	    &code), 0);
	assert_true(json_int(data, "booted"));
	json_object_put(data);
	assert_int_equal(state_reason(t->d, &reason), VIR_DOMAIN_RUNNING);
	assert_int_equal(reason, VIR_DOMAIN_RUNNING_BOOTED);
	/* disk, VM shut off: stays off. */
	assert_int_equal(virDomainDestroy(t->d), 0);
	assert_int_equal(run(t, OP_REVERT, CMD4, "disk", 0, 0, false, &vm, &data,
	    &code), 0);
	assert_false(json_int(data, "booted"));
	json_object_put(data);
	assert_int_equal(vm.vm_state, VM_STATE_SHUTOFF);
	assert_string_equal(listed(t, buf, sizeof(buf)), "full:full,disk:disk");
}

/* Recovery reads the marker: done is reported, before is redone. */
static void
test_drv_revert_recovery(void **state)
{
	struct drv *t = *state;
	enum carve_errcode code;
	struct vm_info vm;
	char buf[64];
	int reason;

	assert_int_equal(run(t, OP_CREATE, CMD1, "full", VM_SNAPSHOT_FULL, 1,
	    false, NULL, NULL, &code), 0);
	assert_int_equal(run(t, OP_CREATE, CMD1, "disk", VM_SNAPSHOT_DISK, 2,
	    false, NULL, NULL, &code), 0);

	/* "done" of this command: reported, nothing reverted again. */
	assert_int_equal(virDomainDestroy(t->d), 0);
	write_marker(t, "done", CMD2);
	assert_int_equal(run(t, OP_REVERT, CMD2, "full", 0, 0, true, &vm, NULL,
	    &code), 0);
	assert_int_equal(vm.vm_state, VM_STATE_SHUTOFF);
	/* "before" of this command: it never happened, so it is done now. */
	write_marker(t, "before", CMD2);
	assert_int_equal(run(t, OP_REVERT, CMD2, "full", 0, 0, true, &vm, NULL,
	    &code), 0);
	assert_int_equal(vm.vm_state, VM_STATE_RUNNING);
	assert_int_equal(state_reason(t->d, &reason), VIR_DOMAIN_RUNNING);
	assert_int_equal(reason, VIR_DOMAIN_RUNNING_FROM_SNAPSHOT);
	/* "after" of a disk revert: the power cycle is finished. */
	revert_to(t, "disk", VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED);
	write_marker(t, "after", CMD3);
	assert_int_equal(run(t, OP_REVERT, CMD3, "disk", 0, 0, true, &vm, NULL,
	    &code), 0);
	assert_int_equal(state_reason(t->d, &reason), VIR_DOMAIN_RUNNING);
	assert_int_equal(reason, VIR_DOMAIN_RUNNING_BOOTED);

	/*
	 * No marker of this command, but libvirt is there already ("from
	 * snapshot", current): finished, not reverted again. A probe in the
	 * definition tells: a revert would bring back the snapshot's, which
	 * lacks it.
	 */
	revert_to(t, "full", 0);
	write_marker(t, "done", CMD1);
	set_probe(t);
	assert_int_equal(run(t, OP_REVERT, CMD4, "full", 0, 0, true, &vm, NULL,
	    &code), 0);
	assert_true(has_probe(t));
	/* Its own "done" marker now answers a second recovery. */
	assert_int_equal(virDomainSuspend(t->d), 0);
	assert_int_equal(virDomainResume(t->d), 0);
	assert_int_equal(run(t, OP_REVERT, CMD4, "full", 0, 0, true, &vm, NULL,
	    &code), 0);
	assert_true(has_probe(t));
	/* Another command whose revert never reached libvirt (the state says
	 * something happened since): reverted. */
	assert_int_equal(run(t, OP_REVERT, CMD5, "full", 0, 0, true, &vm, NULL,
	    &code), 0);
	assert_false(has_probe(t));
	assert_int_equal(state_reason(t->d, &reason), VIR_DOMAIN_RUNNING);
	assert_int_equal(reason, VIR_DOMAIN_RUNNING_FROM_SNAPSHOT);
	assert_string_equal(current(t->d, buf, sizeof(buf)), "full");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_estimate),
		cmocka_unit_test(test_description),
		cmocka_unit_test(test_parse_xml),
		cmocka_unit_test(test_create_xml),
		cmocka_unit_test(test_cache_round_trip),
		cmocka_unit_test(test_cache_rejects),
		cmocka_unit_test(test_parse_domain),
		cmocka_unit_test_setup_teardown(test_drv_create, drv_setup,
		    drv_teardown),
		cmocka_unit_test_setup_teardown(test_drv_limit, drv_setup,
		    drv_teardown),
		cmocka_unit_test_setup_teardown(test_drv_delete, drv_setup,
		    drv_teardown),
		cmocka_unit_test_setup_teardown(test_drv_reconcile, drv_setup,
		    drv_teardown),
		cmocka_unit_test_setup_teardown(test_drv_revert, drv_setup,
		    drv_teardown),
		cmocka_unit_test_setup_teardown(test_drv_revert_recovery,
		    drv_setup, drv_teardown),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
