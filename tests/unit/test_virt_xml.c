/*
 * Unit tests for agent/virt_xml.c: the generated domain XML is well-formed,
 * escapes hostile values and is accepted by libvirt's test driver (in
 * process, no daemon); carve's metadata survives a round trip through
 * libvirt and every malformed variant is refused; capabilities parse both
 * from a captured QEMU host and from the test driver.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "agent/virt_xml.h"
#include "common/xalloc.h"

#define VM_ID   "6f1d2a4e-3b5c-4d7e-8f90-a1b2c3d4e5f6"
#define CMD_ID  "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
#define RB_ID   "3c2b1a09-8f7e-4d6c-9b5a-493827160504"
#define SUM0 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

/* ------------------------------------------------------------ helpers */

static void
spec_init(struct vm_spec *spec, const char *name, unsigned vcpus,
    uint64_t mem, uint64_t disk)
{
	memset(spec, 0, sizeof(*spec));
	snprintf(spec->vs_name, sizeof(spec->vs_name), "%s", name);
	spec->vs_vcpus = vcpus;
	spec->vs_memory_mib = mem;
	spec->vs_disk_gib = disk;
}

static struct virt_xml_opts
opts_init(const char *type)
{
	struct virt_xml_opts o = {
		.domain_type = type,
		.vm_id = VM_ID,
		.command_id = CMD_ID,
		.created_at_ms = 1764075600123LL,
	};
	return o;
}

static xmlDocPtr
parse_doc(const char *xml)
{
	xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), NULL, NULL,
	    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);

	if (doc == NULL)
		fail_msg("not well-formed XML:\n%s", xml);
	return doc;
}

/* Evaluates an XPath expression (carve: prefix bound) to a new string. */
static char *
xp_string(xmlDocPtr doc, const char *expr)
{
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
	xmlXPathObjectPtr obj;
	char *wrapped = xasprintf("string(%s)", expr);
	char *out;

	assert_non_null(ctx);
	xmlXPathRegisterNs(ctx, BAD_CAST "carve", BAD_CAST VIRT_XML_NS);
	obj = xmlXPathEvalExpression(BAD_CAST wrapped, ctx);
	assert_non_null(obj);
	out = xstrdup((const char *)obj->stringval);
	xmlXPathFreeObject(obj);
	xmlXPathFreeContext(ctx);
	free(wrapped);
	return out;
}

static int
xp_count(xmlDocPtr doc, const char *expr)
{
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
	xmlXPathObjectPtr obj;
	char *wrapped = xasprintf("count(%s)", expr);
	int n;

	assert_non_null(ctx);
	xmlXPathRegisterNs(ctx, BAD_CAST "carve", BAD_CAST VIRT_XML_NS);
	obj = xmlXPathEvalExpression(BAD_CAST wrapped, ctx);
	assert_non_null(obj);
	n = (int)obj->floatval;
	xmlXPathFreeObject(obj);
	xmlXPathFreeContext(ctx);
	free(wrapped);
	return n;
}

static void
assert_xp(xmlDocPtr doc, const char *expr, const char *want)
{
	char *got = xp_string(doc, expr);

	if (strcmp(got, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", expr, got, want);
	free(got);
}

static void
assert_xp_count(xmlDocPtr doc, const char *expr, int want)
{
	int got = xp_count(doc, expr);

	if (got != want)
		fail_msg("count(%s): got %d, want %d", expr, got, want);
}

static void
silence_libvirt(void *opaque, virErrorPtr e)
{
	(void)opaque;
	(void)e;
}

static virConnectPtr
test_conn(void)
{
	virConnectPtr conn;

	virSetErrorFunc(NULL, silence_libvirt);
	conn = virConnectOpen("test:///default");
	assert_non_null(conn);
	return conn;
}

static void
assert_vm_matches(const struct vm_info *vm, const struct vm_spec *spec,
    const struct virt_xml_opts *o)
{
	assert_string_equal(vm->vm_id, o->vm_id);
	assert_string_equal(vm->vm_name, spec->vs_name);
	assert_int_equal(vm->vm_vcpus, spec->vs_vcpus);
	assert_int_equal(vm->vm_memory_mib, spec->vs_memory_mib);
	assert_int_equal(vm->vm_disk_gib, spec->vs_disk_gib);
	assert_string_equal(vm->vm_command_id, o->command_id);
	assert_int_equal(vm->vm_created_at_ms, o->created_at_ms);
}

/* ------------------------------------------------------ domain XML */

#define HOSTILE_CMDLINE "console=ttyS0 a<b>c&d'e\"f &amp; ]]> <!-- x"
#define HOSTILE_KERNEL  "/var/lib/carve/kernels/vm&linuz<1>"
#define HOSTILE_INITRD  "/var/lib/carve/kernels/init'rd\".gz"
#define HOSTILE_LOG     "/var/log/carve/console&'\"<>.log"

static void
test_domain_escaping(void **state)
{
	struct vm_spec spec;
	struct virt_xml_opts o = opts_init("kvm");
	struct carve_error err = { 0 };
	char *xml;
	xmlDocPtr doc;

	(void)state;
	spec_init(&spec, "web-1", 2, 512, 10);
	spec.vs_cmdline = (char *)HOSTILE_CMDLINE;
	o.kernel_path = HOSTILE_KERNEL;
	o.initrd_path = HOSTILE_INITRD;
	o.console_log = HOSTILE_LOG;
	xml = virt_xml_domain(&spec, &o, &err);
	assert_non_null(xml);
	assert_int_equal(err.code, CARVE_OK);
	/* The raw values never appear unescaped. */
	assert_null(strstr(xml, "a<b>"));
	assert_null(strstr(xml, "vm&linuz"));

	doc = parse_doc(xml);
	assert_xp(doc, "/domain/os/cmdline", HOSTILE_CMDLINE);
	assert_xp(doc, "/domain/os/kernel", HOSTILE_KERNEL);
	assert_xp(doc, "/domain/os/initrd", HOSTILE_INITRD);
	assert_xp(doc, "/domain/devices/serial/log/@file", HOSTILE_LOG);
	assert_xp_count(doc, "/domain/os/boot", 0);
	/* Exactly one of each: nothing was injected. */
	assert_xp_count(doc, "//cmdline", 1);
	assert_xp_count(doc, "//kernel", 1);
	assert_xp_count(doc, "/domain/devices/*", 3);
	xmlFreeDoc(doc);
	free(xml);
}

static void
test_domain_qemu_shape(void **state)
{
	struct vm_spec spec;
	struct virt_xml_opts o = opts_init("qemu");
	struct carve_error err = { 0 };
	char *xml;
	xmlDocPtr doc;

	(void)state;
	spec_init(&spec, "db.primary_2", 4, 4096, 40);
	o.vm_id = "6F1D2A4E-3B5C-4D7E-8F90-A1B2C3D4E5F6";
	o.console_log = "/var/log/carve/db.log";
	xml = virt_xml_domain(&spec, &o, &err);
	assert_non_null(xml);
	doc = parse_doc(xml);

	assert_xp(doc, "/domain/@type", "qemu");
	assert_xp(doc, "/domain/name", "db.primary_2");
	assert_xp(doc, "/domain/uuid", VM_ID);   /* lower-cased */
	assert_xp(doc, "/domain/memory", "4096");
	assert_xp(doc, "/domain/memory/@unit", "MiB");
	assert_xp(doc, "/domain/currentMemory", "4096");
	assert_xp(doc, "/domain/currentMemory/@unit", "MiB");
	assert_xp(doc, "/domain/vcpu", "4");
	assert_xp(doc, "/domain/vcpu/@placement", "static");
	assert_xp(doc, "/domain/os/type", "hvm");
	assert_xp(doc, "/domain/os/boot/@dev", "hd");
	assert_xp_count(doc, "/domain/os/kernel", 0);
	assert_xp_count(doc, "/domain/os/cmdline", 0);
	assert_xp_count(doc, "/domain/features/acpi", 1);
	assert_xp_count(doc, "/domain/features/apic", 1);
	assert_xp(doc, "/domain/on_poweroff", "destroy");
	assert_xp(doc, "/domain/on_reboot", "restart");
	assert_xp(doc, "/domain/on_crash", "destroy");
	assert_xp(doc, "/domain/devices/serial/@type", "pty");
	assert_xp(doc, "/domain/devices/serial/log/@file",
	    "/var/log/carve/db.log");
	assert_xp(doc, "/domain/devices/serial/log/@append", "on");
	assert_xp(doc, "/domain/devices/console/@type", "pty");
	assert_xp(doc, "/domain/devices/memballoon/@model", "virtio");
	assert_xp_count(doc, "/domain/devices/disk", 0);
	assert_xp_count(doc, "/domain/devices/interface", 0);

	assert_xp_count(doc, "/domain/metadata/carve:vm", 1);
	assert_xp_count(doc, "/domain/metadata/carve:vm/*", 7);
	assert_xp(doc, "/domain/metadata/carve:vm/carve:id", VM_ID);
	assert_xp(doc, "/domain/metadata/carve:vm/carve:name", "db.primary_2");
	assert_xp(doc, "/domain/metadata/carve:vm/carve:vcpus", "4");
	assert_xp(doc, "/domain/metadata/carve:vm/carve:memory_mib", "4096");
	assert_xp(doc, "/domain/metadata/carve:vm/carve:disk_gib", "40");
	assert_xp(doc, "/domain/metadata/carve:vm/carve:command_id", CMD_ID);
	assert_xp(doc, "/domain/metadata/carve:vm/carve:created_at",
	    "1764075600123");
	xmlFreeDoc(doc);
	free(xml);

	/* Without a console log: no serial, still the balloon. */
	o.console_log = NULL;
	xml = virt_xml_domain(&spec, &o, &err);
	assert_non_null(xml);
	doc = parse_doc(xml);
	assert_xp_count(doc, "/domain/devices/serial", 0);
	assert_xp_count(doc, "/domain/devices/console", 0);
	assert_xp_count(doc, "/domain/devices/memballoon", 1);
	xmlFreeDoc(doc);
	free(xml);
}

static void
test_domain_test_type_minimal(void **state)
{
	struct vm_spec spec;
	struct virt_xml_opts o = opts_init("test");
	struct carve_error err = { 0 };
	char *xml;
	xmlDocPtr doc;

	(void)state;
	spec_init(&spec, "t1", 1, 64, 0);
	o.console_log = "/var/log/carve/t1.log";
	xml = virt_xml_domain(&spec, &o, &err);
	assert_non_null(xml);
	doc = parse_doc(xml);
	assert_xp(doc, "/domain/@type", "test");
	assert_xp_count(doc, "/domain/features", 0);
	assert_xp_count(doc, "/domain/devices", 0);
	assert_xp_count(doc, "/domain/metadata/carve:vm", 1);
	xmlFreeDoc(doc);
	free(xml);
}

static const struct {
	const char *what;
	const char *type, *vm_id, *command_id, *name;
	unsigned vcpus;
	uint64_t mem, disk;
	int64_t created;
	const char *kernel, *initrd, *cmdline, *log;
} bad_domains[] = {
	{ "unknown type", "xen", VM_ID, CMD_ID, "a", 1, 64, 0, 0,
	    NULL, NULL, NULL, NULL },
	{ "no type", NULL, VM_ID, CMD_ID, "a", 1, 64, 0, 0,
	    NULL, NULL, NULL, NULL },
	{ "bad vm_id", "kvm", "nope", CMD_ID, "a", 1, 64, 0, 0,
	    NULL, NULL, NULL, NULL },
	{ "bad command_id", "kvm", VM_ID, NULL, "a", 1, 64, 0, 0,
	    NULL, NULL, NULL, NULL },
	{ "name with slash", "kvm", VM_ID, CMD_ID, "a/b", 1, 64, 0, 0,
	    NULL, NULL, NULL, NULL },
	{ "name with markup", "kvm", VM_ID, CMD_ID, "a<b", 1, 64, 0, 0,
	    NULL, NULL, NULL, NULL },
	{ "zero vcpus", "kvm", VM_ID, CMD_ID, "a", 0, 64, 0, 0,
	    NULL, NULL, NULL, NULL },
	{ "too many vcpus", "kvm", VM_ID, CMD_ID, "a", VM_VCPUS_MAX + 1, 64, 0,
	    0, NULL, NULL, NULL, NULL },
	{ "too little memory", "kvm", VM_ID, CMD_ID, "a", 1, 63, 0, 0,
	    NULL, NULL, NULL, NULL },
	{ "too much memory", "kvm", VM_ID, CMD_ID, "a", 1,
	    VM_MEMORY_MIB_MAX + 1, 0, 0, NULL, NULL, NULL, NULL },
	{ "too much disk", "kvm", VM_ID, CMD_ID, "a", 1, 64,
	    VM_DISK_GIB_MAX + 1, 0, NULL, NULL, NULL, NULL },
	{ "negative created_at", "kvm", VM_ID, CMD_ID, "a", 1, 64, 0, -1,
	    NULL, NULL, NULL, NULL },
	{ "relative kernel", "kvm", VM_ID, CMD_ID, "a", 1, 64, 0, 0,
	    "vmlinuz", NULL, NULL, NULL },
	{ "relative log", "kvm", VM_ID, CMD_ID, "a", 1, 64, 0, 0,
	    NULL, NULL, NULL, "x.log" },
	{ "initrd without kernel", "kvm", VM_ID, CMD_ID, "a", 1, 64, 0, 0,
	    NULL, "/k/initrd", NULL, NULL },
	{ "cmdline without kernel", "kvm", VM_ID, CMD_ID, "a", 1, 64, 0, 0,
	    NULL, NULL, "console=ttyS0", NULL },
	{ "control char in cmdline", "kvm", VM_ID, CMD_ID, "a", 1, 64, 0, 0,
	    "/k/vmlinuz", NULL, "a\nb", NULL },
	{ "escape char in cmdline", "kvm", VM_ID, CMD_ID, "a", 1, 64, 0, 0,
	    "/k/vmlinuz", NULL, "a\033[2Jb", NULL },
	{ "invalid UTF-8 in kernel", "kvm", VM_ID, CMD_ID, "a", 1, 64, 0, 0,
	    "/k/\xff\xfe", NULL, NULL, NULL },
	{ "UTF-16 surrogate in log", "kvm", VM_ID, CMD_ID, "a", 1, 64, 0, 0,
	    NULL, NULL, NULL, "/log/\xed\xa0\x80" },
};

static void
test_domain_rejects(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_domains) / sizeof(bad_domains[0]);
	    i++) {
		struct vm_spec spec;
		struct virt_xml_opts o = {
			.domain_type = bad_domains[i].type,
			.vm_id = bad_domains[i].vm_id,
			.command_id = bad_domains[i].command_id,
			.created_at_ms = bad_domains[i].created,
			.kernel_path = bad_domains[i].kernel,
			.initrd_path = bad_domains[i].initrd,
			.console_log = bad_domains[i].log,
		};
		struct carve_error err = { 0 };
		char *xml;

		spec_init(&spec, bad_domains[i].name, bad_domains[i].vcpus,
		    bad_domains[i].mem, bad_domains[i].disk);
		spec.vs_cmdline = (char *)bad_domains[i].cmdline;
		xml = virt_xml_domain(&spec, &o, &err);
		if (xml != NULL || err.code != CARVE_EINVAL)
			fail_msg("%s: accepted (code %d)", bad_domains[i].what,
			    err.code);
	}
}

/* UTF-8 beyond ASCII is fine in a command line and survives intact. */
static void
test_domain_utf8(void **state)
{
	struct vm_spec spec;
	struct virt_xml_opts o = opts_init("qemu");
	struct carve_error err = { 0 };
	const char *cmd = "console=ttyS0 greeting=h\xc3\xa9llo \xe2\x9c\x93";
	char *xml;
	xmlDocPtr doc;

	(void)state;
	spec_init(&spec, "u", 1, 64, 0);
	spec.vs_cmdline = (char *)cmd;
	o.kernel_path = "/k/vmlinuz";
	xml = virt_xml_domain(&spec, &o, &err);
	assert_non_null(xml);
	doc = parse_doc(xml);
	assert_xp(doc, "/domain/os/cmdline", cmd);
	xmlFreeDoc(doc);
	free(xml);
}

/* ------------------------------------------- libvirt's test driver */

static void
define_and_check(virConnectPtr conn, const struct vm_spec *spec,
    const struct virt_xml_opts *o)
{
	struct carve_error err = { 0 };
	char *xml, *md, *desc, uuid[VIR_UUID_STRING_BUFLEN];
	virDomainPtr dom;
	virDomainInfo info;
	struct vm_info vm;
	xmlDocPtr doc;

	xml = virt_xml_domain(spec, o, &err);
	assert_non_null(xml);
	dom = virDomainDefineXML(conn, xml);
	if (dom == NULL)
		fail_msg("test driver refused the XML: %s\n%s",
		    virGetLastErrorMessage(), xml);
	free(xml);

	assert_int_equal(virDomainGetInfo(dom, &info), 0);
	assert_int_equal(info.nrVirtCpu, spec->vs_vcpus);
	assert_int_equal(info.maxMem, spec->vs_memory_mib * 1024);
	assert_int_equal(info.memory, spec->vs_memory_mib * 1024);
	assert_int_equal(virDomainGetUUIDString(dom, uuid), 0);
	assert_string_equal(uuid, o->vm_id);
	assert_string_equal(virDomainGetName(dom), spec->vs_name);

	md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, VIRT_XML_NS,
	    0);
	assert_non_null(md);
	memset(&vm, 0, sizeof(vm));
	vm.vm_state = VM_STATE_SHUTOFF;
	if (virt_xml_parse_metadata(md, &vm, &err) < 0)
		fail_msg("metadata from libvirt refused: %s\n%s", err.message,
		    md);
	assert_vm_matches(&vm, spec, o);
	assert_int_equal(vm.vm_state, VM_STATE_SHUTOFF);
	free(md);

	/* What libvirt stored reads back exactly, escaping included. */
	desc = virDomainGetXMLDesc(dom, 0);
	assert_non_null(desc);
	doc = parse_doc(desc);
	assert_xp(doc, "/domain/@type", o->domain_type);
	if (o->kernel_path != NULL)
		assert_xp(doc, "/domain/os/kernel", o->kernel_path);
	if (spec->vs_cmdline != NULL)
		assert_xp(doc, "/domain/os/cmdline", spec->vs_cmdline);
	if (o->console_log != NULL)
		assert_xp(doc, "/domain/devices/serial/log/@file",
		    o->console_log);
	xmlFreeDoc(doc);
	free(desc);

	assert_int_equal(virDomainUndefine(dom), 0);
	virDomainFree(dom);
}

static void
test_libvirt_test_driver(void **state)
{
	virConnectPtr conn = test_conn();
	struct vm_spec spec;
	struct virt_xml_opts o = opts_init("test");

	(void)state;
	spec_init(&spec, "carve-t1", 3, 1536, 20);
	define_and_check(conn, &spec, &o);

	/* Direct kernel boot with hostile strings survives libvirt too. */
	spec_init(&spec, "carve-t2", 1, 64, 0);
	spec.vs_cmdline = (char *)HOSTILE_CMDLINE;
	o.kernel_path = HOSTILE_KERNEL;
	o.initrd_path = HOSTILE_INITRD;
	o.created_at_ms = 0;
	define_and_check(conn, &spec, &o);
	virConnectClose(conn);
}

/* The test driver accepts <domain type='qemu'>, so the full form is checked too. */
static void
test_libvirt_qemu_xml(void **state)
{
	virConnectPtr conn = test_conn();
	struct vm_spec spec;
	struct virt_xml_opts o = opts_init("qemu");

	(void)state;
	spec_init(&spec, "carve-q1", 2, 2048, 0);
	spec.vs_cmdline = (char *)"console=ttyS0 panic=-1";
	o.kernel_path = "/var/lib/carve/kernels/vmlinuz";
	o.initrd_path = "/var/lib/carve/kernels/initrd.gz";
	o.console_log = HOSTILE_LOG;
	define_and_check(conn, &spec, &o);
	virConnectClose(conn);
}

/* ------------------------------------------------------- room to grow */

/* The maximum a VM is defined with: factor x size, capped, never below it. */
static void
test_max_sizes(void **state)
{
	static const struct {
		unsigned vcpus, factor, host, want;
	} vc[] = {
		{ 2, 2, 16, 4 },
		{ 2, 1, 16, 2 },
		{ 1, 16, 8, 8 },          /* capped by the host's CPUs */
		{ 4, 2, 6, 6 },
		{ 8, 2, 4, 8 },           /* overcommitted host: never below */
		{ 3, 2, 0, 6 },           /* host unknown: no cap */
		{ 600, 2, 0, VM_VCPUS_MAX },
		{ VM_VCPUS_MAX, 16, 4096, VM_VCPUS_MAX },
		{ 2, 0, 16, 2 },          /* a factor of 0 counts as 1 */
	};
	static const struct {
		uint64_t mem;
		unsigned factor;
		uint64_t host, want;
	} mc[] = {
		{ 512, 2, 16384, 1024 },
		{ 512, 1, 16384, 512 },
		{ 4096, 16, 16384, 16384 },   /* capped by the host's memory */
		{ 20000, 2, 16384, 20000 },   /* never below the size */
		{ 1024, 3, 0, 3072 },
		{ VM_MEMORY_MIB_MAX / 2 + 1, 2, 0, VM_MEMORY_MIB_MAX },
		{ VM_MEMORY_MIB_MAX, 16, 0, VM_MEMORY_MIB_MAX },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(vc) / sizeof(vc[0]); i++)
		if (virt_xml_max_vcpus(vc[i].vcpus, vc[i].factor, vc[i].host) !=
		    vc[i].want)
			fail_msg("vcpus case %zu: got %u want %u", i,
			    virt_xml_max_vcpus(vc[i].vcpus, vc[i].factor,
			    vc[i].host), vc[i].want);
	for (size_t i = 0; i < sizeof(mc) / sizeof(mc[0]); i++)
		if (virt_xml_max_memory_mib(mc[i].mem, mc[i].factor,
		    mc[i].host) != mc[i].want)
			fail_msg("memory case %zu: got %llu want %llu", i,
			    (unsigned long long)virt_xml_max_memory_mib(
			    mc[i].mem, mc[i].factor, mc[i].host),
			    (unsigned long long)mc[i].want);
}

/* <vcpu current='N'>MAX</vcpu>, <memory>MAX</memory><currentMemory>N. */
static void
test_domain_room_to_grow(void **state)
{
	struct vm_spec spec;
	struct virt_xml_opts o = opts_init("qemu");
	struct carve_error err = { 0 };
	char *xml;
	xmlDocPtr doc;

	(void)state;
	spec_init(&spec, "grow", 2, 1024, 0);
	o.max_vcpus = 8;
	o.max_memory_mib = 2048;
	xml = virt_xml_domain(&spec, &o, &err);
	assert_non_null(xml);
	doc = parse_doc(xml);
	assert_xp(doc, "/domain/vcpu", "8");
	assert_xp(doc, "/domain/vcpu/@current", "2");
	assert_xp(doc, "/domain/memory", "2048");
	assert_xp(doc, "/domain/currentMemory", "1024");
	assert_xp(doc, "/domain/devices/memballoon/stats/@period", "5");
	/* The metadata keeps the size, not the maximum. */
	assert_xp(doc, "/domain/metadata/carve:vm/carve:vcpus", "2");
	assert_xp(doc, "/domain/metadata/carve:vm/carve:memory_mib", "1024");
	xmlFreeDoc(doc);
	free(xml);

	/* Maxima equal to the size: the plain form, no current=. */
	o.max_vcpus = 2;
	o.max_memory_mib = 1024;
	xml = virt_xml_domain(&spec, &o, &err);
	assert_non_null(xml);
	doc = parse_doc(xml);
	assert_xp(doc, "/domain/vcpu", "2");
	assert_xp_count(doc, "/domain/vcpu/@current", 0);
	assert_xp(doc, "/domain/memory", "1024");
	xmlFreeDoc(doc);
	free(xml);

	/* A maximum below the size or beyond the limits is a bug. */
	o.max_vcpus = 1;
	assert_null(virt_xml_domain(&spec, &o, &err));
	assert_int_equal(err.code, CARVE_EINVAL);
	o.max_vcpus = VM_VCPUS_MAX + 1;
	assert_null(virt_xml_domain(&spec, &o, &err));
	o.max_vcpus = 0;
	o.max_memory_mib = 1023;
	assert_null(virt_xml_domain(&spec, &o, &err));
	o.max_memory_mib = VM_MEMORY_MIB_MAX + 1;
	assert_null(virt_xml_domain(&spec, &o, &err));
}

/* libvirt takes the definition: size current, maxima as the ceiling. */
static void
test_libvirt_room_to_grow(void **state)
{
	static const char *const types[] = { "test", "qemu" };
	virConnectPtr conn = test_conn();

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct vm_spec spec;
		struct virt_xml_opts o = opts_init(types[i]);
		struct carve_error err = { 0 };
		struct virt_xml_sizes sz;
		virDomainInfo info;
		virDomainPtr dom;
		char *xml;

		spec_init(&spec, "carve-grow", 3, 768, 0);
		o.max_vcpus = 6;
		o.max_memory_mib = 1536;
		xml = virt_xml_domain(&spec, &o, &err);
		assert_non_null(xml);
		dom = virDomainDefineXML(conn, xml);
		if (dom == NULL)
			fail_msg("%s: refused: %s\n%s", types[i],
			    virGetLastErrorMessage(), xml);
		free(xml);
		assert_int_equal(virDomainGetInfo(dom, &info), 0);
		assert_int_equal(info.nrVirtCpu, 3);
		assert_int_equal(info.maxMem, 1536 * 1024);
		assert_int_equal(info.memory, 768 * 1024);
		assert_int_equal(virDomainGetVcpusFlags(dom,
		    VIR_DOMAIN_AFFECT_CONFIG | VIR_DOMAIN_VCPU_MAXIMUM), 6);
		xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
		assert_non_null(xml);
		assert_int_equal(virt_xml_parse_sizes(xml, &sz, &err), 0);
		assert_int_equal(sz.vcpus, 3);
		assert_int_equal(sz.vcpus_max, 6);
		assert_int_equal(sz.memory_kib, 768 * 1024);
		assert_int_equal(sz.memory_max_kib, 1536 * 1024);
		free(xml);
		assert_int_equal(virDomainUndefine(dom), 0);
		virDomainFree(dom);
	}
	virConnectClose(conn);
}

static void
test_parse_sizes(void **state)
{
	static const struct {
		const char *xml;
		int rc;
		unsigned vcpus, vcpus_max;
		uint64_t mem, mem_max;
	} cases[] = {
		{ "<domain><vcpu>4</vcpu><memory unit='KiB'>1048576</memory>"
		    "</domain>", 0, 4, 4, 1048576, 1048576 },
		{ "<domain><vcpu placement='static' current='1'>2</vcpu>"
		    "<memory unit='MiB'>256</memory><currentMemory unit='MiB'>"
		    "128</currentMemory></domain>", 0, 1, 2, 131072, 262144 },
		{ "<domain><memory>1024</memory><vcpu current='2'>2</vcpu>"
		    "</domain>", 0, 2, 2, 1024, 1024 },   /* default unit KiB */
		{ "<domain><vcpu>1</vcpu><memory unit='G'>1</memory>"
		    "<currentMemory unit='b'>536870912</currentMemory></domain>",
		    0, 1, 1, 524288, 1048576 },
		{ "<domain><vcpu>1</vcpu><memory unit='MB'>1</memory></domain>",
		    0, 1, 1, 976, 976 },
		{ "<domain><memory>1</memory></domain>", -1, 0, 0, 0, 0 },
		{ "<domain><vcpu>0</vcpu><memory>1</memory></domain>", -1,
		    0, 0, 0, 0 },
		{ "<domain><vcpu>x</vcpu><memory>1</memory></domain>", -1,
		    0, 0, 0, 0 },
		{ "<domain><vcpu current='3'>2</vcpu><memory>1</memory>"
		    "</domain>", -1, 0, 0, 0, 0 },
		{ "<domain><vcpu current='-1'>2</vcpu><memory>1</memory>"
		    "</domain>", -1, 0, 0, 0, 0 },
		{ "<domain><vcpu>2</vcpu></domain>", -1, 0, 0, 0, 0 },
		{ "<domain><vcpu>2</vcpu><memory unit='parsec'>1</memory>"
		    "</domain>", -1, 0, 0, 0, 0 },
		{ "<domain><vcpu>2</vcpu><memory unit='TiB'>"
		    "99999999999</memory></domain>", -1, 0, 0, 0, 0 },
		{ "<domain><vcpu>2</vcpu><memory>1</memory><currentMemory>"
		    "-5</currentMemory></domain>", -1, 0, 0, 0, 0 },
		{ "<pool><vcpu>2</vcpu><memory>1</memory></pool>", -1,
		    0, 0, 0, 0 },
		{ "<domain>", -1, 0, 0, 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct carve_error err = { 0 };
		struct virt_xml_sizes sz;
		int rc = virt_xml_parse_sizes(cases[i].xml, &sz, &err);

		if (rc != cases[i].rc)
			fail_msg("case %zu: rc %d (%s)", i, rc, err.message);
		if (rc < 0) {
			assert_int_equal(err.code, CARVE_EINVAL);
			continue;
		}
		if (sz.vcpus != cases[i].vcpus ||
		    sz.vcpus_max != cases[i].vcpus_max ||
		    sz.memory_kib != cases[i].mem ||
		    sz.memory_max_kib != cases[i].mem_max)
			fail_msg("case %zu: %u/%u %llu/%llu", i, sz.vcpus,
			    sz.vcpus_max, (unsigned long long)sz.memory_kib,
			    (unsigned long long)sz.memory_max_kib);
	}
}

/* ------------------------------------------------------- disks */

#define ROOT "/var/lib/carve/disks/" VM_ID "-root.qcow2"
#define SEED "/var/lib/carve/disks/" VM_ID "-seed.iso"

static void
test_domain_disks(void **state)
{
	static const char *const types[] = { "qemu", "test" };
	struct carve_error err = { 0 };
	struct vm_spec spec;
	xmlDocPtr doc;
	char *xml;

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct virt_xml_opts o = opts_init(types[i]);

		spec_init(&spec, "web", 1, 512, 10);
		o.root_disk = ROOT;
		o.seed_iso = SEED;
		xml = virt_xml_domain(&spec, &o, &err);
		assert_non_null(xml);
		doc = parse_doc(xml);
		assert_xp_count(doc, "/domain/devices/disk", 2);
		assert_xp(doc, "/domain/devices/disk[1]/@device", "disk");
		assert_xp(doc, "/domain/devices/disk[1]/@type", "file");
		assert_xp(doc, "/domain/devices/disk[1]/driver/@type", "qcow2");
		assert_xp(doc, "/domain/devices/disk[1]/source/@file", ROOT);
		assert_xp(doc, "/domain/devices/disk[1]/target/@dev", "vda");
		assert_xp(doc, "/domain/devices/disk[1]/target/@bus", "virtio");
		assert_xp_count(doc, "/domain/devices/disk[1]/readonly", 0);
		assert_xp(doc, "/domain/devices/disk[2]/@device", "cdrom");
		assert_xp(doc, "/domain/devices/disk[2]/driver/@type", "raw");
		assert_xp(doc, "/domain/devices/disk[2]/source/@file", SEED);
		assert_xp(doc, "/domain/devices/disk[2]/target/@dev", "hdc");
		assert_xp(doc, "/domain/devices/disk[2]/target/@bus", "ide");
		assert_xp_count(doc, "/domain/devices/disk[2]/readonly", 1);
		assert_xp(doc, "/domain/os/boot/@dev", "hd");
		xmlFreeDoc(doc);
		free(xml);
	}

	/* No disks: the test type keeps its minimal form (no devices). */
	{
		struct virt_xml_opts o = opts_init("test");

		xml = virt_xml_domain(&spec, &o, &err);
		doc = parse_doc(xml);
		assert_xp_count(doc, "/domain/devices", 0);
		xmlFreeDoc(doc);
		free(xml);
	}

	/* Paths are escaped, and a relative one is refused. */
	{
		struct virt_xml_opts o = opts_init("qemu");

		o.root_disk = "/d/a'b\"<c>&.qcow2";
		xml = virt_xml_domain(&spec, &o, &err);
		assert_non_null(xml);
		doc = parse_doc(xml);
		assert_xp(doc, "/domain/devices/disk[1]/source/@file",
		    "/d/a'b\"<c>&.qcow2");
		xmlFreeDoc(doc);
		free(xml);
		o.root_disk = "disks/x.qcow2";
		assert_null(virt_xml_domain(&spec, &o, &err));
		assert_int_equal(err.code, CARVE_EINVAL);
		assert_non_null(strstr(err.message, "root disk path must be an "
		    "absolute path"));
		error_clear(&err);
		o.root_disk = NULL;
		o.seed_iso = "/d/\x01.iso";
		assert_null(virt_xml_domain(&spec, &o, &err));
		assert_non_null(strstr(err.message, "seed path contains"));
		error_clear(&err);
	}
}

/* The test driver defines a domain with both disks. */
static void
test_libvirt_disks(void **state)
{
	virConnectPtr conn = test_conn();
	struct vm_spec spec;
	struct virt_xml_opts o = opts_init("qemu");

	(void)state;
	spec_init(&spec, "carve-d1", 1, 256, 8);
	o.root_disk = ROOT;
	o.seed_iso = SEED;
	define_and_check(conn, &spec, &o);
	virConnectClose(conn);
}

/* ------------------------------------------------------- NICs */

static void
nic_set(struct vm_spec *spec, enum vm_nic_kind kind, const char *name,
    const char *mac)
{
	struct vm_nic *n = &spec->vs_nics[spec->vs_nnics++];

	n->vn_kind = kind;
	snprintf(n->vn_name, sizeof(n->vn_name), "%s", name);
	snprintf(n->vn_mac, sizeof(n->vn_mac), "%s", mac);
}

/* Three NICs, in the spec's order, each fully described. */
static void
assert_nics(xmlDocPtr doc)
{
	assert_xp_count(doc, "/domain/devices/interface", 3);
	assert_xp(doc, "/domain/devices/interface[1]/@type", "network");
	assert_xp(doc, "/domain/devices/interface[1]/mac/@address",
	    "52:54:00:12:34:56");
	assert_xp(doc, "/domain/devices/interface[1]/source/@network",
	    "default");
	assert_xp_count(doc, "/domain/devices/interface[1]/source/@bridge", 0);
	assert_xp(doc, "/domain/devices/interface[1]/model/@type", "virtio");
	assert_xp(doc, "/domain/devices/interface[2]/@type", "bridge");
	assert_xp(doc, "/domain/devices/interface[2]/mac/@address",
	    "02:00:00:00:00:01");
	assert_xp(doc, "/domain/devices/interface[2]/source/@bridge",
	    "br-ex.100");
	assert_xp_count(doc, "/domain/devices/interface[2]/source/@network", 0);
	assert_xp(doc, "/domain/devices/interface[2]/model/@type", "virtio");
	assert_xp(doc, "/domain/devices/interface[3]/@type", "network");
	/* Written lower-case whatever the spec held. */
	assert_xp(doc, "/domain/devices/interface[3]/mac/@address",
	    "52:54:00:ab:cd:ef");
	assert_xp(doc, "/domain/devices/interface[3]/source/@network",
	    "tenant_1");
}

static void
nics_spec(struct vm_spec *spec, const char *name)
{
	spec_init(spec, name, 1, 256, 0);
	nic_set(spec, VM_NIC_NETWORK, "default", "52:54:00:12:34:56");
	nic_set(spec, VM_NIC_BRIDGE, "br-ex.100", "02:00:00:00:00:01");
	nic_set(spec, VM_NIC_NETWORK, "tenant_1", "52:54:00:AB:CD:EF");
}

static void
test_domain_nics(void **state)
{
	static const char *const types[] = { "qemu", "kvm", "test" };
	struct carve_error err = { 0 };
	struct vm_spec spec;
	xmlDocPtr doc;
	char *xml;

	(void)state;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct virt_xml_opts o = opts_init(types[i]);

		nics_spec(&spec, "web");
		o.root_disk = ROOT;
		xml = virt_xml_domain(&spec, &o, &err);
		if (xml == NULL)
			fail_msg("%s: %s", types[i], err.message);
		doc = parse_doc(xml);
		assert_nics(doc);
		/* After the disks: the disks keep their PCI slots. */
		assert_xp_count(doc, "/domain/devices/disk/following-sibling::"
		    "interface", 3);
		xmlFreeDoc(doc);
		free(xml);
	}

	/* The test type gets <devices> for NICs alone. */
	{
		struct virt_xml_opts o = opts_init("test");

		nics_spec(&spec, "web");
		xml = virt_xml_domain(&spec, &o, &err);
		assert_non_null(xml);
		doc = parse_doc(xml);
		assert_xp_count(doc, "/domain/devices/*", 3);
		assert_nics(doc);
		xmlFreeDoc(doc);
		free(xml);
	}

	/* No NICs, no interface. */
	{
		struct virt_xml_opts o = opts_init("qemu");

		spec_init(&spec, "web", 1, 256, 0);
		xml = virt_xml_domain(&spec, &o, &err);
		assert_non_null(xml);
		doc = parse_doc(xml);
		assert_xp_count(doc, "//interface", 0);
		xmlFreeDoc(doc);
		free(xml);
	}
}

static const struct {
	const char *what;
	int kind;
	const char *name, *mac;
	const char *msg;
} bad_nics[] = {
	{ "no MAC", VM_NIC_NETWORK, "default", "",
	    "networks[1] has no MAC address" },
	{ "multicast MAC", VM_NIC_NETWORK, "default", "01:00:5e:00:00:01",
	    "networks[1].mac \"01:00:5e:00:00:01\" is a multicast address" },
	{ "zero MAC", VM_NIC_BRIDGE, "br0", "00:00:00:00:00:00",
	    "networks[1].mac must not be all zero" },
	{ "MAC with markup", VM_NIC_NETWORK, "default", "52:54:00:00:00'/",
	    "networks[1].mac \"52:54:00:00:00'/\" must be six pairs" },
	{ "name with markup", VM_NIC_NETWORK, "a'/><x", "52:54:00:00:00:02",
	    "networks[1] may only contain letters" },
	{ "empty name", VM_NIC_BRIDGE, "", "52:54:00:00:00:02",
	    "networks[1] must not be empty" },
	{ "long bridge", VM_NIC_BRIDGE, "b234567890123456", "52:54:00:00:00:02",
	    "networks[1]: a bridge name has at most 15 bytes" },
	{ "unknown kind", 7, "x", "52:54:00:00:00:02",
	    "networks[1] is neither a network nor a bridge" },
};

static void
test_domain_nic_rejects(void **state)
{
	struct carve_error err = { 0 };
	struct virt_xml_opts o = opts_init("qemu");
	struct vm_spec spec;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_nics) / sizeof(bad_nics[0]); i++) {
		spec_init(&spec, "web", 1, 256, 0);
		nic_set(&spec, VM_NIC_NETWORK, "ok", "52:54:00:00:00:01");
		nic_set(&spec, VM_NIC_NETWORK, bad_nics[i].name, bad_nics[i].mac);
		spec.vs_nics[1].vn_kind = (enum vm_nic_kind)bad_nics[i].kind;
		error_clear(&err);
		if (virt_xml_domain(&spec, &o, &err) != NULL)
			fail_msg("%s: accepted", bad_nics[i].what);
		assert_int_equal(err.code, CARVE_EINVAL);
		if (strstr(err.message, bad_nics[i].msg) == NULL)
			fail_msg("%s: \"%s\" lacks \"%s\"", bad_nics[i].what,
			    err.message, bad_nics[i].msg);
	}
	spec_init(&spec, "web", 1, 256, 0);
	for (int i = 0; i < VM_NICS_MAX; i++)
		nic_set(&spec, VM_NIC_NETWORK, "n", "52:54:00:00:00:01");
	spec.vs_nnics = VM_NICS_MAX + 1;
	error_clear(&err);
	assert_null(virt_xml_domain(&spec, &o, &err));
	assert_non_null(strstr(err.message, "at most 8 network interfaces"));
}

/* libvirt (test driver, both domain types) keeps every NIC as written. */
static void
test_libvirt_nics(void **state)
{
	static const char *const types[] = { "qemu", "test" };
	virConnectPtr conn = test_conn();
	struct carve_error err = { 0 };
	struct vm_spec spec;
	virDomainPtr dom;
	xmlDocPtr doc;
	char *xml, *desc;

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct virt_xml_opts o = opts_init(types[i]);

		nics_spec(&spec, "carve-n1");
		xml = virt_xml_domain(&spec, &o, &err);
		assert_non_null(xml);
		dom = virDomainDefineXML(conn, xml);
		if (dom == NULL)
			fail_msg("test driver refused the XML: %s\n%s",
			    virGetLastErrorMessage(), xml);
		free(xml);
		desc = virDomainGetXMLDesc(dom, 0);
		assert_non_null(desc);
		doc = parse_doc(desc);
		assert_nics(doc);
		xmlFreeDoc(doc);
		free(desc);
		assert_int_equal(virDomainUndefine(dom), 0);
		virDomainFree(dom);
	}
	virConnectClose(conn);
}

#define DATA0 "/var/lib/carve/disks/" VM_ID "-data0.qcow2"
#define DATA1 "/var/lib/carve/disks/" VM_ID "-data1.qcow2"

/* Data disks: virtio vdb, vdc, ... with serial carve-data<i>, before the seed. */
static void
test_domain_data_disks(void **state)
{
	static const char *const types[] = { "qemu", "test" };
	static const char *const two[] = { DATA0, DATA1 };
	struct carve_error err = { 0 };
	struct vm_spec spec;
	xmlDocPtr doc;
	char *xml;

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct virt_xml_opts o = opts_init(types[i]);

		spec_init(&spec, "web", 1, 512, 10);
		spec.vs_ndata_disks = 2;
		spec.vs_data_disks[0].dd_size_gib = 5;
		spec.vs_data_disks[1].dd_size_gib = 7;
		o.root_disk = ROOT;
		o.seed_iso = SEED;
		o.data_disks = two;
		o.ndata_disks = 2;
		xml = virt_xml_domain(&spec, &o, &err);
		if (xml == NULL)
			fail_msg("%s: %s", types[i], err.message);
		doc = parse_doc(xml);
		assert_xp_count(doc, "/domain/devices/disk", 4);
		assert_xp(doc, "/domain/devices/disk[1]/target/@dev", "vda");
		assert_xp_count(doc, "/domain/devices/disk[1]/serial", 0);
		assert_xp(doc, "/domain/devices/disk[2]/@device", "disk");
		assert_xp(doc, "/domain/devices/disk[2]/driver/@type", "qcow2");
		assert_xp(doc, "/domain/devices/disk[2]/source/@file", DATA0);
		assert_xp(doc, "/domain/devices/disk[2]/target/@dev", "vdb");
		assert_xp(doc, "/domain/devices/disk[2]/target/@bus", "virtio");
		assert_xp(doc, "/domain/devices/disk[2]/serial", "carve-data0");
		assert_xp_count(doc, "/domain/devices/disk[2]/readonly", 0);
		assert_xp(doc, "/domain/devices/disk[3]/source/@file", DATA1);
		assert_xp(doc, "/domain/devices/disk[3]/target/@dev", "vdc");
		assert_xp(doc, "/domain/devices/disk[3]/serial", "carve-data1");
		assert_xp(doc, "/domain/devices/disk[4]/@device", "cdrom");
		/* The sizes are in the metadata; the count of them too. */
		assert_xp_count(doc, "/domain/metadata/carve:vm/carve:data_disk_gib",
		    2);
		assert_xp(doc, "/domain/metadata/carve:vm/carve:data_disk_gib[2]",
		    "7");
		xmlFreeDoc(doc);
		free(xml);
	}

	/* Without a root disk, a data disk is still vdb (the serial names it). */
	{
		struct virt_xml_opts o = opts_init("test");

		spec_init(&spec, "data-only", 1, 512, 0);
		spec.vs_ndata_disks = 1;
		spec.vs_data_disks[0].dd_size_gib = 1;
		o.data_disks = two;
		o.ndata_disks = 1;
		xml = virt_xml_domain(&spec, &o, &err);
		assert_non_null(xml);
		doc = parse_doc(xml);
		assert_xp_count(doc, "/domain/devices/disk", 1);
		assert_xp(doc, "/domain/devices/disk[1]/target/@dev", "vdb");
		assert_xp(doc, "/domain/devices/disk[1]/serial", "carve-data0");
		xmlFreeDoc(doc);
		free(xml);
	}

	/* Eight of them: vdb .. vdi. */
	{
		static const char *const eight[] = { "/d/0", "/d/1", "/d/2",
		    "/d/3", "/d/4", "/d/5", "/d/6", "/d/7" };
		struct virt_xml_opts o = opts_init("qemu");

		spec_init(&spec, "many", 1, 512, 0);
		spec.vs_ndata_disks = VM_DATA_DISKS_MAX;
		for (size_t k = 0; k < VM_DATA_DISKS_MAX; k++)
			spec.vs_data_disks[k].dd_size_gib = k + 1;
		o.data_disks = eight;
		o.ndata_disks = VM_DATA_DISKS_MAX;
		xml = virt_xml_domain(&spec, &o, &err);
		assert_non_null(xml);
		doc = parse_doc(xml);
		assert_xp(doc, "/domain/devices/disk[8]/target/@dev", "vdi");
		assert_xp(doc, "/domain/devices/disk[8]/serial", "carve-data7");
		xmlFreeDoc(doc);
		free(xml);
	}

	/* Refused: volumes that do not match the spec, or bad paths. */
	{
		static const char *const bad[] = { "disks/rel.qcow2" };
		static const char *const nul[] = { NULL };
		struct virt_xml_opts o = opts_init("qemu");

		spec_init(&spec, "web", 1, 512, 0);
		spec.vs_ndata_disks = 1;
		spec.vs_data_disks[0].dd_size_gib = 1;
		assert_null(virt_xml_domain(&spec, &o, &err));
		assert_non_null(strstr(err.message,
		    "0 data disk volumes for 1 data disks"));
		error_clear(&err);
		o.data_disks = bad;
		o.ndata_disks = 1;
		assert_null(virt_xml_domain(&spec, &o, &err));
		assert_non_null(strstr(err.message,
		    "data disk path must be an absolute path"));
		error_clear(&err);
		o.data_disks = nul;
		assert_null(virt_xml_domain(&spec, &o, &err));
		assert_non_null(strstr(err.message, "data disk 0 has no volume"));
		error_clear(&err);
		spec.vs_ndata_disks = 0;
		assert_null(virt_xml_domain(&spec, &o, &err));
		assert_int_equal(err.code, CARVE_EINVAL);
		error_clear(&err);
	}
}

/* libvirt keeps the serials and carve's metadata of data disks and image. */
static void
test_libvirt_data_disks(void **state)
{
	static const char *const two[] = { DATA0, DATA1 };
	virConnectPtr conn = test_conn();
	struct carve_error err = { 0 };
	struct vm_spec spec;
	struct virt_xml_opts o = opts_init("qemu");
	struct vm_info vm;
	virDomainPtr dom;
	xmlDocPtr doc;
	char *xml, *md, *desc;

	(void)state;
	spec_init(&spec, "carve-dd1", 1, 256, 8);
	spec.vs_image.vi_url = (char *)"file:///srv/images/base.qcow2";
	snprintf(spec.vs_image.vi_sha256, sizeof(spec.vs_image.vi_sha256),
	    "%064d", 0);
	spec.vs_image.vi_format = VM_IMAGE_QCOW2;
	spec.vs_ndata_disks = 2;
	spec.vs_data_disks[0].dd_size_gib = 3;
	spec.vs_data_disks[1].dd_size_gib = 65536;
	o.root_disk = ROOT;
	o.seed_iso = SEED;
	o.data_disks = two;
	o.ndata_disks = 2;
	xml = virt_xml_domain(&spec, &o, &err);
	assert_non_null(xml);
	dom = virDomainDefineXML(conn, xml);
	if (dom == NULL)
		fail_msg("test driver refused the XML: %s\n%s",
		    virGetLastErrorMessage(), xml);
	free(xml);
	desc = virDomainGetXMLDesc(dom, 0);
	doc = parse_doc(desc);
	assert_xp(doc, "/domain/devices/disk[target/@dev='vdb']/serial",
	    "carve-data0");
	assert_xp(doc, "/domain/devices/disk[target/@dev='vdc']/source/@file",
	    DATA1);
	xmlFreeDoc(doc);
	free(desc);
	md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, VIRT_XML_NS,
	    0);
	assert_non_null(md);
	memset(&vm, 0, sizeof(vm));
	if (virt_xml_parse_metadata(md, &vm, &err) < 0)
		fail_msg("metadata refused: %s\n%s", err.message, md);
	assert_vm_matches(&vm, &spec, &o);
	assert_string_equal(vm.vm_image_url, "file:///srv/images/base.qcow2");
	assert_string_equal(vm.vm_image_sha256, spec.vs_image.vi_sha256);
	assert_int_equal(vm.vm_image_format, VM_IMAGE_QCOW2);
	assert_int_equal(vm.vm_ndata_disks, 2);
	assert_int_equal(vm.vm_data_disks[0].dd_size_gib, 3);
	assert_int_equal(vm.vm_data_disks[1].dd_size_gib, 65536);
	assert_int_equal(vm_info_disk_gib_total(&vm), 8 + 3 + 65536);
	free(md);

	/* A rebuild's rewrite goes through virDomainSetMetadata and reads
	 * back whole (libvirt puts it in carve's namespace). */
	{
		struct virt_xml_rebuild rb = { "", RB_ID, VIRT_XML_RUN_YES }, rb2;
		struct vm_info vm2;
		char *plain;

		snprintf(vm.vm_image_url, sizeof(vm.vm_image_url),
		    "https://img.example/other.raw");
		vm.vm_image_format = VM_IMAGE_RAW;
		plain = virt_xml_metadata_vm(&vm, &rb, &err);
		assert_non_null(plain);
		if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, plain,
		    VIRT_XML_PREFIX, VIRT_XML_NS, VIR_DOMAIN_AFFECT_CONFIG) < 0)
			fail_msg("SetMetadata refused: %s\n%s",
			    virGetLastErrorMessage(), plain);
		free(plain);
		md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
		    VIRT_XML_NS, 0);
		assert_non_null(md);
		memset(&vm2, 0, sizeof(vm2));
		assert_int_equal(virt_xml_parse_metadata_rebuild(md, &vm2, &rb2,
		    &err), 0);
		assert_string_equal(vm2.vm_image_url,
		    "https://img.example/other.raw");
		assert_int_equal(vm2.vm_ndata_disks, 2);
		assert_string_equal(rb2.rb_rebuilt_by, RB_ID);
		assert_int_equal(rb2.rb_was_running, VIRT_XML_RUN_YES);
		free(md);
		desc = virDomainGetXMLDesc(dom, 0);
		assert_non_null(strstr(desc, "<carve:rebuilt_by>" RB_ID));
		free(desc);
	}
	assert_int_equal(virDomainUndefine(dom), 0);
	virDomainFree(dom);
	virConnectClose(conn);
}

static void
test_storage_xml(void **state)
{
	struct carve_error err = { 0 };
	xmlDocPtr doc;
	char *xml, *backing;
	uint64_t cap;

	(void)state;
	xml = virt_xml_pool("carve", "/var/lib/carve/disks", &err);
	assert_non_null(xml);
	doc = parse_doc(xml);
	assert_xp(doc, "/pool/@type", "dir");
	assert_xp(doc, "/pool/name", "carve");
	assert_xp(doc, "/pool/target/path", "/var/lib/carve/disks");
	assert_xp(doc, "/pool/target/permissions/mode", "0751");
	xmlFreeDoc(doc);
	assert_int_equal(virt_xml_parse_pool_path(xml, &backing, &err), 0);
	assert_string_equal(backing, "/var/lib/carve/disks");
	free(backing);
	free(xml);

	xml = virt_xml_volume(VM_ID "-root.qcow2", 10ULL << 30, "qcow2",
	    "/var/lib/carve/images/ab.raw", "raw", &err);
	assert_non_null(xml);
	doc = parse_doc(xml);
	assert_xp(doc, "/volume/name", VM_ID "-root.qcow2");
	assert_xp(doc, "/volume/capacity", "10737418240");
	assert_xp(doc, "/volume/capacity/@unit", "bytes");
	assert_xp(doc, "/volume/target/format/@type", "qcow2");
	assert_xp(doc, "/volume/target/permissions/mode", "0600");
	assert_xp(doc, "/volume/backingStore/path",
	    "/var/lib/carve/images/ab.raw");
	assert_xp(doc, "/volume/backingStore/format/@type", "raw");
	xmlFreeDoc(doc);
	assert_int_equal(virt_xml_parse_volume(xml, &backing, &cap, &err), 0);
	assert_string_equal(backing, "/var/lib/carve/images/ab.raw");
	assert_int_equal(cap, 10ULL << 30);
	free(backing);
	free(xml);

	xml = virt_xml_volume("s.iso", 4096, "raw", NULL, NULL, &err);
	doc = parse_doc(xml);
	assert_xp_count(doc, "/volume/backingStore", 0);
	xmlFreeDoc(doc);
	assert_int_equal(virt_xml_parse_volume(xml, &backing, &cap, &err), 0);
	assert_null(backing);
	free(xml);

	/* Refused: names that could be paths, formats, relative paths. */
	assert_null(virt_xml_volume("../x", 1, "raw", NULL, NULL, &err));
	error_clear(&err);
	assert_null(virt_xml_volume("a/b", 1, "raw", NULL, NULL, &err));
	error_clear(&err);
	assert_null(virt_xml_volume("a", 1, "vmdk", NULL, NULL, &err));
	error_clear(&err);
	assert_null(virt_xml_volume("a", 1, "qcow2", "rel/base", "raw", &err));
	error_clear(&err);
	assert_null(virt_xml_volume("a", 0, "raw", NULL, NULL, &err));
	error_clear(&err);
	assert_null(virt_xml_pool("carve", "relative", &err));
	error_clear(&err);
	assert_int_equal(virt_xml_parse_volume("<pool/>", &backing, &cap,
	    &err), -1);
}

/* ------------------------------------------------------- metadata */

static void
test_metadata_roundtrip(void **state)
{
	struct vm_spec spec;
	struct virt_xml_opts o = opts_init("kvm");
	struct carve_error err = { 0 };
	struct vm_info vm;
	char *md;

	(void)state;
	spec_init(&spec, "Z9_x-y.z", VM_VCPUS_MAX, VM_MEMORY_MIB_MAX,
	    VM_DISK_GIB_MAX);
	o.created_at_ms = INT64_MAX;
	md = virt_xml_metadata(&spec, &o);
	assert_non_null(md);
	memset(&vm, 0, sizeof(vm));
	vm.vm_state = VM_STATE_RUNNING;
	assert_int_equal(virt_xml_parse_metadata(md, &vm, &err), 0);
	assert_vm_matches(&vm, &spec, &o);
	assert_int_equal(vm.vm_state, VM_STATE_RUNNING);
	free(md);
}


/* Image, data disks and rebuild bookkeeping survive the round trip. */
static void
test_metadata_rebuild_roundtrip(void **state)
{
	static const struct virt_xml_rebuild rbs[] = {
		{ "", "", VIRT_XML_RUN_UNRECORDED },
		{ RB_ID, "", VIRT_XML_RUN_YES },
		{ "", RB_ID, VIRT_XML_RUN_NO },
		{ RB_ID, CMD_ID, VIRT_XML_RUN_YES },
	};
	struct vm_spec spec;
	struct virt_xml_opts o = opts_init("kvm");
	struct carve_error err = { 0 };
	struct virt_xml_rebuild rb, rb2;
	struct vm_info vm, vm2;
	char *md, *md2;

	(void)state;
	for (size_t i = 0; i < sizeof(rbs) / sizeof(rbs[0]); i++) {
		spec_init(&spec, "rb-1", 2, 512, 4);
		spec.vs_image.vi_url = (char *)"https://img.example/a?b=c&d=e";
		memcpy(spec.vs_image.vi_sha256, SUM0, sizeof(SUM0));
		spec.vs_image.vi_format = VM_IMAGE_RAW;
		spec.vs_ndata_disks = VM_DATA_DISKS_MAX;
		for (size_t k = 0; k < VM_DATA_DISKS_MAX; k++)
			spec.vs_data_disks[k].dd_size_gib = 10 * (k + 1);
		o.rebuild = &rbs[i];
		md = virt_xml_metadata(&spec, &o);
		assert_non_null(md);
		memset(&vm, 0, sizeof(vm));
		memset(&rb, 0xa5, sizeof(rb));
		if (virt_xml_parse_metadata_rebuild(md, &vm, &rb, &err) < 0)
			fail_msg("case %zu refused: %s\n%s", i, err.message, md);
		assert_vm_matches(&vm, &spec, &o);
		assert_string_equal(vm.vm_image_url,
		    "https://img.example/a?b=c&d=e");
		assert_string_equal(vm.vm_image_sha256, SUM0);
		assert_int_equal(vm.vm_image_format, VM_IMAGE_RAW);
		assert_int_equal(vm.vm_ndata_disks, VM_DATA_DISKS_MAX);
		assert_int_equal(vm.vm_data_disks[7].dd_size_gib, 80);
		assert_string_equal(rb.rb_rebuilding, rbs[i].rb_rebuilding);
		assert_string_equal(rb.rb_rebuilt_by, rbs[i].rb_rebuilt_by);
		assert_int_equal(rb.rb_was_running, rbs[i].rb_was_running);

		/* Rewritten from what was read: the same record, without a
		 * namespace (as virDomainSetMetadata wants it). */
		md2 = virt_xml_metadata_vm(&vm, &rb, &err);
		assert_non_null(md2);
		assert_true(strncmp(md2, "<vm>", 4) == 0);
		assert_null(strstr(md2, "xmlns"));
		memset(&vm2, 0, sizeof(vm2));
		assert_int_equal(virt_xml_parse_metadata_rebuild(md2, &vm2, &rb2,
		    &err), 0);
		assert_int_equal(memcmp(&vm, &vm2, sizeof(vm)), 0);
		assert_int_equal(memcmp(&rb, &rb2, sizeof(rb)), 0);
		free(md2);
		free(md);
	}

	/* A VM without an image writes no image fields. */
	spec_init(&spec, "plain", 1, 64, 0);
	o.rebuild = NULL;
	md = virt_xml_metadata(&spec, &o);
	assert_null(strstr(md, "image"));
	assert_null(strstr(md, "data_disk"));
	assert_null(strstr(md, "was_running"));
	memset(&rb, 0xa5, sizeof(rb));
	assert_int_equal(virt_xml_parse_metadata_rebuild(md, &vm, &rb, &err), 0);
	assert_string_equal(vm.vm_image_url, "");
	assert_int_equal(vm.vm_ndata_disks, 0);
	assert_string_equal(rb.rb_rebuilt_by, "");
	assert_int_equal(rb.rb_was_running, VIRT_XML_RUN_UNRECORDED);
	free(md);

	/* virt_xml_metadata_vm refuses what the parser would refuse. */
	memset(&vm, 0, sizeof(vm));
	snprintf(vm.vm_id, sizeof(vm.vm_id), VM_ID);
	snprintf(vm.vm_command_id, sizeof(vm.vm_command_id), CMD_ID);
	snprintf(vm.vm_name, sizeof(vm.vm_name), "ok");
	vm.vm_vcpus = 1;
	vm.vm_memory_mib = 64;
	md = virt_xml_metadata_vm(&vm, NULL, &err);
	assert_non_null(md);
	free(md);
	vm.vm_ndata_disks = VM_DATA_DISKS_MAX + 1;
	assert_null(virt_xml_metadata_vm(&vm, NULL, &err));
	assert_int_equal(err.code, CARVE_EINVAL);
	error_clear(&err);
	vm.vm_ndata_disks = 1;    /* a data disk of 0 GiB */
	assert_null(virt_xml_metadata_vm(&vm, NULL, &err));
	assert_non_null(strstr(err.message, "data_disk_gib"));
	error_clear(&err);
	vm.vm_ndata_disks = 0;
	snprintf(vm.vm_image_url, sizeof(vm.vm_image_url), "ftp://x/y");
	memcpy(vm.vm_image_sha256, SUM0, sizeof(SUM0));
	vm.vm_image_format = VM_IMAGE_QCOW2;
	assert_null(virt_xml_metadata_vm(&vm, NULL, &err));
	assert_non_null(strstr(err.message, "metadata image.url"));
	error_clear(&err);
	vm.vm_image_url[0] = '\0';
	rb = rbs[1];
	rb.rb_was_running = VIRT_XML_RUN_UNRECORDED;
	assert_null(virt_xml_metadata_vm(&vm, &rb, &err));
	assert_non_null(strstr(err.message, "was_running is missing"));
}

#define NS_DECL "xmlns:carve=\"" VIRT_XML_NS "\""
#define F_ID    "<carve:id>" VM_ID "</carve:id>"
#define F_NAME  "<carve:name>web-1</carve:name>"
#define F_VCPUS "<carve:vcpus>2</carve:vcpus>"
#define F_MEM   "<carve:memory_mib>512</carve:memory_mib>"
#define F_DISK  "<carve:disk_gib>10</carve:disk_gib>"
#define F_CMD   "<carve:command_id>" CMD_ID "</carve:command_id>"
#define F_AT    "<carve:created_at>1764075600123</carve:created_at>"
#define ALL     F_ID F_NAME F_VCPUS F_MEM F_DISK F_CMD F_AT
#define F_IURL  "<carve:image_url>file:///srv/i/b.qcow2</carve:image_url>"
#define F_ISUM  "<carve:image_sha256>" SUM0 "</carve:image_sha256>"
#define F_IFMT  "<carve:image_format>qcow2</carve:image_format>"
#define F_DD    "<carve:data_disk_gib>1</carve:data_disk_gib>"
#define F_RBY   "<carve:rebuilt_by>" RB_ID "</carve:rebuilt_by>"
#define F_RING  "<carve:rebuilding>" RB_ID "</carve:rebuilding>"
#define F_WASRUN "<carve:was_running>true</carve:was_running>"
#define MD(body) "<carve:vm " NS_DECL ">" body "</carve:vm>"
#define MDX(id, name, vcpus, mem, disk, cmd, at) MD( \
	"<carve:id>" id "</carve:id><carve:name>" name "</carve:name>" \
	"<carve:vcpus>" vcpus "</carve:vcpus><carve:memory_mib>" mem \
	"</carve:memory_mib><carve:disk_gib>" disk "</carve:disk_gib>" \
	"<carve:command_id>" cmd "</carve:command_id><carve:created_at>" at \
	"</carve:created_at>")

static const struct {
	const char *what;
	const char *xml;
} good_md[] = {
	{ "prefixed", MD(ALL) },
	/* What virDomainGetMetadata returns: the namespace stripped. */
	{ "no namespace", "<vm><id>" VM_ID "</id><name>web-1</name>"
	    "<vcpus>2</vcpus><memory_mib>512</memory_mib><disk_gib>10</disk_gib>"
	    "<command_id>" CMD_ID "</command_id>"
	    "<created_at>1764075600123</created_at></vm>" },
	{ "default namespace", "<vm xmlns=\"" VIRT_XML_NS "\"><id>" VM_ID
	    "</id><name>web-1</name><vcpus>2</vcpus><memory_mib>512</memory_mib>"
	    "<disk_gib>10</disk_gib><command_id>" CMD_ID "</command_id>"
	    "<created_at>1764075600123</created_at></vm>" },
	{ "other prefix", "<c:vm xmlns:c=\"" VIRT_XML_NS "\"><c:id>" VM_ID
	    "</c:id><c:name>web-1</c:name><c:vcpus>2</c:vcpus>"
	    "<c:memory_mib>512</c:memory_mib><c:disk_gib>10</c:disk_gib>"
	    "<c:command_id>" CMD_ID "</c:command_id>"
	    "<c:created_at>1764075600123</c:created_at></c:vm>" },
	{ "xml declaration, blanks, comments, any order",
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    MD("\n  " F_AT "\n  <!-- hi -->\n  " F_CMD F_DISK F_MEM F_VCPUS
	    F_NAME F_ID "\n") "\n" },
	{ "upper-case UUIDs", MDX("6F1D2A4E-3B5C-4D7E-8F90-A1B2C3D4E5F6",
	    "web-1", "2", "512", "10", "0A9B8C7D-6E5F-4A3B-9C2D-1E0F9A8B7C6D",
	    "1764075600123") },
	{ "escaped digits", MDX(VM_ID, "web-1", "&#50;", "512", "10", CMD_ID,
	    "1764075600123") },
	{ "image, data disks, rebuild, any order", MD(F_RBY F_IFMT ALL F_DD
	    F_WASRUN F_ISUM F_DD F_IURL) },
	{ "upper-case image sha256 and rebuilding", MD(ALL F_IURL
	    "<carve:image_sha256>9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822C"
	    "D15D6C15B0F00A08</carve:image_sha256>" F_IFMT F_RING
	    "<carve:was_running>false</carve:was_running>") },
	{ "eight data disks", MD(ALL F_DD F_DD F_DD F_DD F_DD F_DD F_DD F_DD) },
};

static void
test_metadata_accepts(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good_md) / sizeof(good_md[0]); i++) {
		struct carve_error err = { 0 };
		struct vm_info vm;

		memset(&vm, 0, sizeof(vm));
		if (virt_xml_parse_metadata(good_md[i].xml, &vm, &err) < 0)
			fail_msg("%s: refused: %s", good_md[i].what, err.message);
		assert_string_equal(vm.vm_id, VM_ID);
		assert_string_equal(vm.vm_name, "web-1");
		assert_int_equal(vm.vm_vcpus, 2);
		assert_int_equal(vm.vm_memory_mib, 512);
		assert_int_equal(vm.vm_disk_gib, 10);
		assert_string_equal(vm.vm_command_id, CMD_ID);
		assert_int_equal(vm.vm_created_at_ms, 1764075600123LL);
	}

	/* The optional fields, wherever they stand. */
	{
		size_t n = sizeof(good_md) / sizeof(good_md[0]);
		struct carve_error err = { 0 };
		struct virt_xml_rebuild rb;
		struct vm_info vm;

		assert_int_equal(virt_xml_parse_metadata_rebuild(good_md[n - 3].xml,
		    &vm, &rb, &err), 0);
		assert_string_equal(vm.vm_image_url, "file:///srv/i/b.qcow2");
		assert_string_equal(vm.vm_image_sha256, SUM0);
		assert_int_equal(vm.vm_image_format, VM_IMAGE_QCOW2);
		assert_int_equal(vm.vm_ndata_disks, 2);
		assert_int_equal(vm_info_disk_gib_total(&vm), 12);
		assert_string_equal(rb.rb_rebuilt_by, RB_ID);
		assert_string_equal(rb.rb_rebuilding, "");
		assert_int_equal(rb.rb_was_running, VIRT_XML_RUN_YES);
		assert_int_equal(virt_xml_parse_metadata_rebuild(good_md[n - 2].xml,
		    &vm, &rb, &err), 0);
		assert_string_equal(vm.vm_image_sha256, SUM0);
		assert_string_equal(rb.rb_rebuilding, RB_ID);
		assert_string_equal(rb.rb_rebuilt_by, "");
		assert_int_equal(rb.rb_was_running, VIRT_XML_RUN_NO);
		assert_int_equal(virt_xml_parse_metadata(good_md[n - 1].xml, &vm,
		    &err), 0);
		assert_int_equal(vm.vm_ndata_disks, VM_DATA_DISKS_MAX);
	}
}

#define LOL "<!DOCTYPE lolz [<!ENTITY lol \"lol\">" \
	"<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">" \
	"<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">" \
	"<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">" \
	"<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">" \
	"<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">" \
	"<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">" \
	"<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">" \
	"<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">" \
	"<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">]>"

static const struct {
	const char *what;
	const char *xml;
} bad_md[] = {
	{ "empty", "" },
	{ "not XML", "hello" },
	{ "truncated", "<carve:vm " NS_DECL ">" F_ID F_NAME },
	{ "two roots", MD(ALL) MD(ALL) },
	{ "wrong namespace", "<carve:vm xmlns:carve=\"https://evil.example/1\">"
	    ALL "</carve:vm>" },
	{ "old namespace version", "<carve:vm "
	    "xmlns:carve=\"https://carve.dev/xmlns/vm/2\">" ALL "</carve:vm>" },
	{ "undeclared prefix", "<carve:vm>" ALL "</carve:vm>" },
	{ "wrong root name", "<carve:vmx " NS_DECL ">" ALL "</carve:vmx>" },
	{ "root attribute", "<carve:vm " NS_DECL " a=\"1\">" ALL "</carve:vm>" },
	{ "field in another namespace", MD(F_ID F_NAME F_VCPUS F_MEM F_DISK
	    F_CMD "<x:created_at xmlns:x=\"urn:x\">1</x:created_at>") },
	{ "unprefixed field under prefixed root", MD(F_ID F_NAME F_VCPUS F_MEM
	    F_DISK F_CMD "<created_at>1</created_at>") },
	{ "missing disk_gib", MD(F_ID F_NAME F_VCPUS F_MEM F_CMD F_AT) },
	{ "missing id", MD(F_NAME F_VCPUS F_MEM F_DISK F_CMD F_AT) },
	{ "no fields", MD("") },
	{ "duplicate name", MD(ALL F_NAME) },
	{ "duplicate id", MD(F_ID ALL) },
	{ "unknown field", MD(ALL "<carve:owner>x</carve:owner>") },
	{ "text in root", MD(ALL "junk") },
	{ "cdata in root", MD(ALL "<![CDATA[x]]>") },
	{ "element inside field", MD(F_ID "<carve:name><b>web</b></carve:name>"
	    F_VCPUS F_MEM F_DISK F_CMD F_AT) },
	{ "attribute on field", MD(F_ID "<carve:name x=\"1\">web-1</carve:name>"
	    F_VCPUS F_MEM F_DISK F_CMD F_AT) },
	{ "comment inside field", MDX(VM_ID, "web<!--x-->1", "2", "512", "10",
	    CMD_ID, "1") },
	{ "bad UUID", MDX("not-a-uuid", "web-1", "2", "512", "10", CMD_ID,
	    "1") },
	{ "UUID with blank", MDX(" " VM_ID, "web-1", "2", "512", "10", CMD_ID,
	    "1") },
	{ "UUID without dashes", MDX("6f1d2a4e3b5c4d7e8f90a1b2c3d4e5f6", "web-1",
	    "2", "512", "10", CMD_ID, "1") },
	{ "bad command UUID", MDX(VM_ID, "web-1", "2", "512", "10",
	    "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6g", "1") },
	{ "name with slash", MDX(VM_ID, "web/1", "2", "512", "10", CMD_ID,
	    "1") },
	{ "name with escaped markup", MDX(VM_ID, "web&lt;1", "2", "512", "10",
	    CMD_ID, "1") },
	{ "empty name", MDX(VM_ID, "", "2", "512", "10", CMD_ID, "1") },
	{ "name too long", MDX(VM_ID, "a123456789012345678901234567890123456789"
	    "0123456789012345678901234", "2", "512", "10", CMD_ID, "1") },
	{ "name with blank", MDX(VM_ID, "web-1 ", "2", "512", "10", CMD_ID,
	    "1") },
	{ "negative vcpus", MDX(VM_ID, "web-1", "-1", "512", "10", CMD_ID,
	    "1") },
	{ "zero vcpus", MDX(VM_ID, "web-1", "0", "512", "10", CMD_ID, "1") },
	{ "vcpus above max", MDX(VM_ID, "web-1", "1025", "512", "10", CMD_ID,
	    "1") },
	{ "vcpus with plus", MDX(VM_ID, "web-1", "+2", "512", "10", CMD_ID,
	    "1") },
	{ "vcpus with blank", MDX(VM_ID, "web-1", " 2", "512", "10", CMD_ID,
	    "1") },
	{ "vcpus hex", MDX(VM_ID, "web-1", "0x2", "512", "10", CMD_ID, "1") },
	{ "vcpus empty", MDX(VM_ID, "web-1", "", "512", "10", CMD_ID, "1") },
	{ "vcpus fraction", MDX(VM_ID, "web-1", "2.0", "512", "10", CMD_ID,
	    "1") },
	{ "vcpus wrap to 2", MDX(VM_ID, "web-1", "4294967298", "512", "10",
	    CMD_ID, "1") },
	{ "memory below min", MDX(VM_ID, "web-1", "2", "63", "10", CMD_ID,
	    "1") },
	{ "memory above max", MDX(VM_ID, "web-1", "2", "16777217", "10", CMD_ID,
	    "1") },
	{ "memory 2^64", MDX(VM_ID, "web-1", "2", "18446744073709551616", "10",
	    CMD_ID, "1") },
	{ "memory 2^64+512", MDX(VM_ID, "web-1", "2", "18446744073709552128",
	    "10", CMD_ID, "1") },
	{ "memory huge", MDX(VM_ID, "web-1", "2",
	    "99999999999999999999999999999999", "10", CMD_ID, "1") },
	{ "disk above max", MDX(VM_ID, "web-1", "2", "512", "65537", CMD_ID,
	    "1") },
	{ "negative disk", MDX(VM_ID, "web-1", "2", "512", "-10", CMD_ID,
	    "1") },
	{ "negative created_at", MDX(VM_ID, "web-1", "2", "512", "10", CMD_ID,
	    "-5") },
	{ "created_at above int64", MDX(VM_ID, "web-1", "2", "512", "10", CMD_ID,
	    "9223372036854775808") },
	{ "billion laughs", LOL "<carve:vm " NS_DECL "><carve:name>&lol9;"
	    "</carve:name></carve:vm>" },
	{ "declared but unused entity", "<!DOCTYPE vm [<!ENTITY e \"web-1\">]>"
	    MD(ALL) },
	{ "entity in a field", "<!DOCTYPE vm [<!ENTITY e \"web-1\">]>"
	    MDX(VM_ID, "&e;", "2", "512", "10", CMD_ID, "1") },
	{ "external entity", "<!DOCTYPE vm [<!ENTITY e SYSTEM "
	    "\"file:///etc/hostname\">]>" MDX(VM_ID, "&e;", "2", "512", "10",
	    CMD_ID, "1") },
	{ "external DTD", "<!DOCTYPE vm SYSTEM \"http://127.0.0.1:9/x.dtd\">"
	    MD(ALL) },
	{ "undeclared entity", MDX(VM_ID, "&e;", "2", "512", "10", CMD_ID,
	    "1") },
	{ "NUL character reference", MDX(VM_ID, "web&#0;", "2", "512", "10",
	    CMD_ID, "1") },
	/* image, data disks, rebuild bookkeeping */
	{ "image_url alone", MD(ALL F_IURL) },
	{ "image without format", MD(ALL F_IURL F_ISUM) },
	{ "image without url", MD(ALL F_ISUM F_IFMT) },
	{ "image url twice", MD(ALL F_IURL F_IURL F_ISUM F_IFMT) },
	{ "image url scheme", MD(ALL "<carve:image_url>ftp://a/b</carve:image_url>"
	    F_ISUM F_IFMT) },
	{ "image url relative file", MD(ALL "<carve:image_url>file://a/b"
	    "</carve:image_url>" F_ISUM F_IFMT) },
	{ "image url empty", MD(ALL "<carve:image_url></carve:image_url>"
	    F_ISUM F_IFMT) },
	{ "image sha256 short", MD(ALL F_IURL "<carve:image_sha256>abc"
	    "</carve:image_sha256>" F_IFMT) },
	{ "image sha256 long", MD(ALL F_IURL "<carve:image_sha256>" SUM0 "0"
	    "</carve:image_sha256>" F_IFMT) },
	{ "image format vmdk", MD(ALL F_IURL F_ISUM
	    "<carve:image_format>vmdk</carve:image_format>") },
	{ "image format none", MD(ALL F_IURL F_ISUM
	    "<carve:image_format>none</carve:image_format>") },
	{ "image url with markup", MD(ALL "<carve:image_url><b>x</b>"
	    "</carve:image_url>" F_ISUM F_IFMT) },
	{ "data disk of 0 GiB", MD(ALL "<carve:data_disk_gib>0"
	    "</carve:data_disk_gib>") },
	{ "data disk above max", MD(ALL "<carve:data_disk_gib>65537"
	    "</carve:data_disk_gib>") },
	{ "data disk not a number", MD(ALL "<carve:data_disk_gib>1G"
	    "</carve:data_disk_gib>") },
	{ "nine data disks", MD(ALL F_DD F_DD F_DD F_DD F_DD F_DD F_DD F_DD
	    F_DD) },
	{ "was_running alone", MD(ALL F_WASRUN) },
	{ "rebuilt_by without was_running", MD(ALL F_RBY) },
	{ "rebuilding without was_running", MD(ALL F_RING) },
	{ "was_running yes", MD(ALL F_RBY "<carve:was_running>yes"
	    "</carve:was_running>") },
	{ "was_running 1", MD(ALL F_RBY "<carve:was_running>1"
	    "</carve:was_running>") },
	{ "was_running twice", MD(ALL F_RBY F_WASRUN F_WASRUN) },
	{ "rebuilt_by twice", MD(ALL F_RBY F_RBY F_WASRUN) },
	{ "rebuilt_by not a UUID", MD(ALL "<carve:rebuilt_by>x</carve:rebuilt_by>"
	    F_WASRUN) },
	{ "rebuilding not a UUID", MD(ALL "<carve:rebuilding>" VM_ID "0"
	    "</carve:rebuilding>" F_WASRUN) },
};

static void
test_metadata_rejects(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_md) / sizeof(bad_md[0]); i++) {
		struct carve_error err = { 0 };
		struct vm_info vm, before;
		struct timespec t0, t1;
		double secs;

		memset(&vm, 0xa5, sizeof(vm));
		before = vm;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (virt_xml_parse_metadata(bad_md[i].xml, &vm, &err) == 0)
			fail_msg("%s: accepted", bad_md[i].what);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (err.code != CARVE_EINVAL)
			fail_msg("%s: code %d, want EINVAL", bad_md[i].what,
			    err.code);
		assert_true(err.message[0] != '\0');
		/* A refused record leaves the caller's copy alone. */
		if (memcmp(&vm, &before, sizeof(vm)) != 0)
			fail_msg("%s: vm modified on failure", bad_md[i].what);
		secs = (double)(t1.tv_sec - t0.tv_sec) +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		if (secs > 1.0)
			fail_msg("%s: took %.2f s", bad_md[i].what, secs);
	}
}

static void
test_metadata_size_cap(void **state)
{
	struct carve_error err = { 0 };
	struct vm_info vm;
	size_t pad = 64 * 1024;
	char *big, *p;
	const char *head = "<carve:vm " NS_DECL ">" ALL;
	const char *tail = "</carve:vm>";

	(void)state;
	big = xmalloc(strlen(head) + pad + strlen(tail) + 1);
	p = big;
	memcpy(p, head, strlen(head));
	p += strlen(head);
	memset(p, ' ', pad);
	p += pad;
	memcpy(p, tail, strlen(tail) + 1);
	memset(&vm, 0, sizeof(vm));
	assert_int_equal(virt_xml_parse_metadata(big, &vm, &err), -1);
	assert_int_equal(err.code, CARVE_EINVAL);
	assert_non_null(strstr(err.message, "larger than"));

	/* The same padding under the cap is fine. */
	memset(big + strlen(head) + 60 * 1024, 0, 1);
	memcpy(big + strlen(head) + 60 * 1024, tail, strlen(tail) + 1);
	error_clear(&err);
	assert_int_equal(virt_xml_parse_metadata(big, &vm, &err), 0);
	free(big);

	error_clear(&err);
	assert_int_equal(virt_xml_parse_metadata(NULL, &vm, &err), -1);
	assert_int_equal(err.code, CARVE_EINVAL);
}

/*
 * Rewriting the size in metadata read back from libvirt: the new size
 * reads back, every other field is as it was, and libvirt stores it.
 */
static void
test_metadata_set_size(void **state)
{
	virConnectPtr conn = test_conn();
	struct vm_spec spec;
	struct virt_xml_opts o = opts_init("test");
	struct carve_error err = { 0 };
	struct vm_info vm;
	virDomainPtr dom;
	char *xml, *md, *md2;

	(void)state;
	spec_init(&spec, "carve-md", 2, 512, 7);
	xml = virt_xml_domain(&spec, &o, &err);
	assert_non_null(xml);
	dom = virDomainDefineXML(conn, xml);
	assert_non_null(dom);
	free(xml);
	md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
	    VIRT_XML_NS, 0);
	assert_non_null(md);
	assert_int_equal(virt_xml_metadata_set_size(md, 5, 1536, &md2, &err),
	    0);
	assert_int_equal(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
	    md2, VIRT_XML_PREFIX, VIRT_XML_NS, VIR_DOMAIN_AFFECT_CONFIG), 0);
	free(md);
	free(md2);
	md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
	    VIRT_XML_NS, 0);
	assert_non_null(md);
	memset(&vm, 0, sizeof(vm));
	assert_int_equal(virt_xml_parse_metadata(md, &vm, &err), 0);
	spec.vs_vcpus = 5;
	spec.vs_memory_mib = 1536;
	assert_vm_matches(&vm, &spec, &o);
	free(md);
	assert_int_equal(virDomainUndefine(dom), 0);
	virDomainFree(dom);
	virConnectClose(conn);

	/* The prefixed form is rewritten in place too. */
	assert_int_equal(virt_xml_metadata_set_size(MD(ALL), 1, 64, &md,
	    &err), 0);
	memset(&vm, 0, sizeof(vm));
	assert_int_equal(virt_xml_parse_metadata(md, &vm, &err), 0);
	assert_int_equal(vm.vm_vcpus, 1);
	assert_int_equal(vm.vm_memory_mib, 64);
	assert_int_equal(vm.vm_disk_gib, 10);
	assert_string_equal(vm.vm_name, "web-1");
	free(md);

	/* A resize keeps the image, data disks and rebuild bookkeeping. */
	{
		struct virt_xml_rebuild rb;

		assert_int_equal(virt_xml_metadata_set_size(MD(ALL F_IURL F_ISUM
		    F_IFMT F_DD F_DD F_RBY F_WASRUN), 3, 256, &md, &err), 0);
		memset(&vm, 0, sizeof(vm));
		assert_int_equal(virt_xml_parse_metadata_rebuild(md, &vm, &rb,
		    &err), 0);
		assert_int_equal(vm.vm_vcpus, 3);
		assert_int_equal(vm.vm_memory_mib, 256);
		assert_string_equal(vm.vm_image_url, "file:///srv/i/b.qcow2");
		assert_int_equal(vm.vm_ndata_disks, 2);
		assert_string_equal(rb.rb_rebuilt_by, RB_ID);
		assert_int_equal(rb.rb_was_running, VIRT_XML_RUN_YES);
		free(md);
	}

	/* Only valid metadata and sizes. */
	md = (char *)"x";
	assert_int_equal(virt_xml_metadata_set_size(MD(F_ID F_NAME), 1, 64,
	    &md, &err), -1);
	assert_null(md);
	assert_int_equal(err.code, CARVE_EINVAL);
	assert_int_equal(virt_xml_metadata_set_size(MD(ALL), 0, 64, &md, &err),
	    -1);
	assert_int_equal(virt_xml_metadata_set_size(MD(ALL), VM_VCPUS_MAX + 1,
	    64, &md, &err), -1);
	assert_int_equal(virt_xml_metadata_set_size(MD(ALL), 1, 63, &md, &err),
	    -1);
	assert_int_equal(virt_xml_metadata_set_size(MD(ALL), 1,
	    VM_MEMORY_MIB_MAX + 1, &md, &err), -1);
	assert_int_equal(virt_xml_metadata_set_size("<vm>", 1, 64, &md, &err),
	    -1);
	assert_null(md);
}

/* --------------------------------------------------- capabilities */

/* Abridged from a 2-socket Intel host under libvirt 9 (virsh capabilities). */
static const char caps_sample[] =
"<capabilities>\n"
"\n"
"  <host>\n"
"    <uuid>30343536-3138-5a43-3334-343630314c37</uuid>\n"
"    <cpu>\n"
"      <arch>x86_64</arch>\n"
"      <model>Cascadelake-Server-noTSX</model>\n"
"      <vendor>Intel</vendor>\n"
"      <microcode version='83898371'/>\n"
"      <signature family='6' model='85' stepping='7'/>\n"
"      <counter name='tsc' frequency='2294609000' scaling='no'/>\n"
"      <topology sockets='1' dies='1' cores='20' threads='2'/>\n"
"      <maxphysaddr mode='emulate' bits='46'/>\n"
"      <feature name='ds'/>\n"
"      <feature name='acpi'/>\n"
"      <feature name='ss'/>\n"
"      <feature name='ht'/>\n"
"      <feature name='vmx'/>\n"
"      <feature name='pdcm'/>\n"
"      <feature name='pku'/>\n"
"      <feature name='md-clear'/>\n"
"      <feature name='invtsc'/>\n"
"      <pages unit='KiB' size='4'/>\n"
"      <pages unit='KiB' size='2048'/>\n"
"      <pages unit='KiB' size='1048576'/>\n"
"    </cpu>\n"
"    <power_management>\n"
"      <suspend_mem/>\n"
"    </power_management>\n"
"    <iommu support='yes'/>\n"
"    <migration_features>\n"
"      <live/>\n"
"      <uri_transports>\n"
"        <uri_transport>tcp</uri_transport>\n"
"        <uri_transport>rdma</uri_transport>\n"
"      </uri_transports>\n"
"    </migration_features>\n"
"    <topology>\n"
"      <cells num='2'>\n"
"        <cell id='0'>\n"
"          <memory unit='KiB'>196498528</memory>\n"
"          <pages unit='KiB' size='4'>49124632</pages>\n"
"          <pages unit='KiB' size='2048'>0</pages>\n"
"          <distances>\n"
"            <sibling id='0' value='10'/>\n"
"            <sibling id='1' value='21'/>\n"
"          </distances>\n"
"          <cpus num='2'>\n"
"            <cpu id='0' socket_id='0' die_id='0' core_id='0' siblings='0,40'/>\n"
"            <cpu id='40' socket_id='0' die_id='0' core_id='0' siblings='0,40'/>\n"
"          </cpus>\n"
"        </cell>\n"
"        <cell id='1'>\n"
"          <memory unit='KiB'>198155060</memory>\n"
"          <pages unit='KiB' size='4'>49538765</pages>\n"
"          <pages unit='KiB' size='2048'>0</pages>\n"
"          <distances>\n"
"            <sibling id='0' value='21'/>\n"
"            <sibling id='1' value='10'/>\n"
"          </distances>\n"
"          <cpus num='2'>\n"
"            <cpu id='20' socket_id='1' die_id='0' core_id='0' siblings='20,60'/>\n"
"            <cpu id='60' socket_id='1' die_id='0' core_id='0' siblings='20,60'/>\n"
"          </cpus>\n"
"        </cell>\n"
"      </cells>\n"
"    </topology>\n"
"    <secmodel>\n"
"      <model>apparmor</model>\n"
"      <doi>0</doi>\n"
"    </secmodel>\n"
"    <secmodel>\n"
"      <model>dac</model>\n"
"      <doi>0</doi>\n"
"      <baselabel type='kvm'>+64055:+64055</baselabel>\n"
"      <baselabel type='qemu'>+64055:+64055</baselabel>\n"
"    </secmodel>\n"
"  </host>\n"
"\n"
"  <guest>\n"
"    <os_type>hvm</os_type>\n"
"    <arch name='x86_64'>\n"
"      <wordsize>64</wordsize>\n"
"      <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
"      <machine maxCpus='288'>pc-q35-7.2</machine>\n"
"      <machine canonical='pc-q35-7.2' maxCpus='288'>q35</machine>\n"
"      <domain type='qemu'/>\n"
"      <domain type='kvm'/>\n"
"    </arch>\n"
"    <features>\n"
"      <acpi default='on' toggle='yes'/>\n"
"      <apic default='on' toggle='no'/>\n"
"      <cpuselection/>\n"
"      <deviceboot/>\n"
"      <disksnapshot default='on' toggle='no'/>\n"
"    </features>\n"
"  </guest>\n"
"\n"
"</capabilities>\n";

static void
test_caps_sample(void **state)
{
	static const char *const want[] = { "ds", "acpi", "ss", "ht", "vmx",
	    "pdcm", "pku", "md-clear", "invtsc" };
	struct carve_error err = { 0 };
	struct host_cpu cpu;

	(void)state;
	memset(&cpu, 0xff, sizeof(cpu));   /* out needs no initialization */
	assert_int_equal(virt_xml_parse_caps(caps_sample, &cpu, &err), 0);
	assert_string_equal(cpu.arch, "x86_64");
	assert_string_equal(cpu.model, "Cascadelake-Server-noTSX");
	assert_string_equal(cpu.vendor, "Intel");
	assert_int_equal(cpu.sockets, 1);
	assert_int_equal(cpu.cores, 20);
	assert_int_equal(cpu.threads, 2);
	assert_int_equal(cpu.numa_cells, 2);
	/* Guest features (acpi/apic under <guest>) are not host CPU flags. */
	assert_int_equal(cpu.nfeatures, sizeof(want) / sizeof(want[0]));
	for (unsigned i = 0; i < cpu.nfeatures; i++)
		assert_string_equal(cpu.features[i], want[i]);
	host_cpu_clear(&cpu);
	assert_int_equal(cpu.nfeatures, 0);
	host_cpu_clear(&cpu);
	host_cpu_clear(NULL);
}

static void
test_caps_test_driver(void **state)
{
	virConnectPtr conn = test_conn();
	struct carve_error err = { 0 };
	struct host_cpu cpu;
	char *caps;

	(void)state;
	caps = virConnectGetCapabilities(conn);
	assert_non_null(caps);
	if (virt_xml_parse_caps(caps, &cpu, &err) < 0)
		fail_msg("test driver capabilities refused: %s", err.message);
	/* The test driver reports an i686 host without model or topology. */
	assert_string_equal(cpu.arch, "i686");
	assert_string_equal(cpu.model, "");
	assert_string_equal(cpu.vendor, "");
	assert_int_equal(cpu.sockets, 0);
	assert_int_equal(cpu.numa_cells, 2);
	assert_int_equal(cpu.nfeatures, 2);
	assert_string_equal(cpu.features[0], "pae");
	assert_string_equal(cpu.features[1], "nonpae");
	host_cpu_clear(&cpu);
	free(caps);
	virConnectClose(conn);
}

static void
test_caps_edges(void **state)
{
	struct carve_error err = { 0 };
	struct host_cpu cpu;
	size_t cap = 64 * 1024;
	char *many, *p;

	(void)state;
	/* Nothing but the root: all empty. */
	assert_int_equal(virt_xml_parse_caps("<capabilities/>", &cpu, &err), 0);
	assert_string_equal(cpu.arch, "");
	assert_int_equal(cpu.nfeatures, 0);
	assert_int_equal(cpu.numa_cells, 0);
	host_cpu_clear(&cpu);

	/* More features than fit: the first VIRT_CPU_FEATURES_MAX are kept. */
	many = xmalloc(cap);
	p = many;
	p += snprintf(p, 64, "<capabilities><host><cpu>");
	for (int i = 0; i < VIRT_CPU_FEATURES_MAX + 10; i++)
		p += snprintf(p, 64, "<feature name='f%d'/>", i);
	snprintf(p, 64, "</cpu></host></capabilities>");
	assert_int_equal(virt_xml_parse_caps(many, &cpu, &err), 0);
	assert_int_equal(cpu.nfeatures, VIRT_CPU_FEATURES_MAX);
	assert_string_equal(cpu.features[VIRT_CPU_FEATURES_MAX - 1], "f255");
	host_cpu_clear(&cpu);
	free(many);

	static const char *const bad[] = {
		"",
		"<capabilities>",
		"<domain/>",
		"<capabilities><host><cpu><topology sockets='x'/></cpu></host>"
		    "</capabilities>",
		"<capabilities><host><cpu><topology cores='-1'/></cpu></host>"
		    "</capabilities>",
		"<capabilities><host><cpu><topology threads='4294967296'/>"
		    "</cpu></host></capabilities>",
		"<capabilities><host><cpu><arch>"
		    "x234567890123456789012345678901234567890</arch></cpu></host>"
		    "</capabilities>",
		"<!DOCTYPE c [<!ENTITY a 'x86_64'>]><capabilities><host><cpu>"
		    "<arch>&a;</arch></cpu></host></capabilities>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error_clear(&err);
		if (virt_xml_parse_caps(bad[i], &cpu, &err) == 0)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(err.code, CARVE_EINVAL);
		/* Nothing to free after a failure. */
		assert_int_equal(cpu.nfeatures, 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_domain_escaping),
		cmocka_unit_test(test_domain_qemu_shape),
		cmocka_unit_test(test_domain_test_type_minimal),
		cmocka_unit_test(test_domain_rejects),
		cmocka_unit_test(test_domain_utf8),
		cmocka_unit_test(test_libvirt_test_driver),
		cmocka_unit_test(test_libvirt_qemu_xml),
		cmocka_unit_test(test_max_sizes),
		cmocka_unit_test(test_domain_room_to_grow),
		cmocka_unit_test(test_libvirt_room_to_grow),
		cmocka_unit_test(test_parse_sizes),
		cmocka_unit_test(test_domain_disks),
		cmocka_unit_test(test_libvirt_disks),
		cmocka_unit_test(test_domain_data_disks),
		cmocka_unit_test(test_libvirt_data_disks),
		cmocka_unit_test(test_domain_nics),
		cmocka_unit_test(test_domain_nic_rejects),
		cmocka_unit_test(test_libvirt_nics),
		cmocka_unit_test(test_storage_xml),
		cmocka_unit_test(test_metadata_roundtrip),
		cmocka_unit_test(test_metadata_rebuild_roundtrip),
		cmocka_unit_test(test_metadata_accepts),
		cmocka_unit_test(test_metadata_rejects),
		cmocka_unit_test(test_metadata_size_cap),
		cmocka_unit_test(test_metadata_set_size),
		cmocka_unit_test(test_caps_sample),
		cmocka_unit_test(test_caps_test_driver),
		cmocka_unit_test(test_caps_edges),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
