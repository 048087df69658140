/*
 * Unit tests for agent/migrate.c's pure parts: the destination's domain XML
 * made from a migratable XML that libvirt 9.0 dumped for a carve VM (disks
 * and console log moved to the destination's paths, everything else kept,
 * every mismatch refused), and the durable records (reservations of
 * incoming migrations, the drain flag) written, read back and refused when
 * damaged.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "agent/migrate.h"
#include "common/xalloc.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define VM_ID  "d9bb146e-5414-4571-8db0-66a7c2388458"
#define CMD_ID "9ef45ad0-5709-4c91-979b-0ffee3c500b6"
#define SRC    "/var/lib/carve-a/disks/" VM_ID
#define LOG_A  "/var/log/a/carve-" VM_ID ".console.log"

/*
 * `virsh dumpxml --migratable` of a running carve VM on a base image
 * (libvirt 9.0, QEMU 7.2, TCG), paths shortened.
 */
static const char real_xml[] =
"<domain type='qemu'>\n"
"  <name>carve-mig2</name>\n"
"  <uuid>" VM_ID "</uuid>\n"
"  <metadata>\n"
"    <carve:vm xmlns:carve=\"https://carve.dev/xmlns/vm/1\">\n"
"      <carve:id>" VM_ID "</carve:id>\n"
"      <carve:name>carve-mig2</carve:name>\n"
"      <carve:vcpus>1</carve:vcpus>\n"
"      <carve:memory_mib>192</carve:memory_mib>\n"
"      <carve:disk_gib>1</carve:disk_gib>\n"
"      <carve:command_id>" CMD_ID "</carve:command_id>\n"
"      <carve:created_at>1795620915765</carve:created_at>\n"
"    </carve:vm>\n"
"  </metadata>\n"
"  <memory unit='KiB'>196608</memory>\n"
"  <currentMemory unit='KiB'>196608</currentMemory>\n"
"  <vcpu placement='static'>1</vcpu>\n"
"  <os>\n"
"    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>\n"
"    <boot dev='hd'/>\n"
"  </os>\n"
"  <features>\n"
"    <acpi/>\n"
"    <apic/>\n"
"  </features>\n"
"  <cpu mode='custom' match='exact' check='none'>\n"
"    <model fallback='forbid'>qemu64</model>\n"
"  </cpu>\n"
"  <clock offset='utc'/>\n"
"  <on_poweroff>destroy</on_poweroff>\n"
"  <on_reboot>restart</on_reboot>\n"
"  <on_crash>destroy</on_crash>\n"
"  <devices>\n"
"    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
"    <disk type='file' device='disk'>\n"
"      <driver name='qemu' type='qcow2'/>\n"
"      <source file='" SRC "-root.qcow2'/>\n"
"      <target dev='vda' bus='virtio'/>\n"
"      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' "
"function='0x0'/>\n"
"    </disk>\n"
"    <disk type='file' device='cdrom'>\n"
"      <driver name='qemu' type='raw'/>\n"
"      <source file='" SRC "-seed.iso'/>\n"
"      <backingStore/>\n"
"      <target dev='hdc' bus='ide'/>\n"
"      <readonly/>\n"
"      <address type='drive' controller='0' bus='1' target='0' unit='0'/>\n"
"    </disk>\n"
"    <controller type='ide' index='0'>\n"
"      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' "
"function='0x1'/>\n"
"    </controller>\n"
"    <serial type='pty'>\n"
"      <log file='" LOG_A "' append='on'/>\n"
"      <target type='isa-serial' port='0'>\n"
"        <model name='isa-serial'/>\n"
"      </target>\n"
"    </serial>\n"
"    <console type='pty'>\n"
"      <log file='" LOG_A "' append='on'/>\n"
"      <target type='serial' port='0'/>\n"
"    </console>\n"
"    <input type='mouse' bus='ps2'/>\n"
"    <memballoon model='virtio'>\n"
"      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' "
"function='0x0'/>\n"
"    </memballoon>\n"
"  </devices>\n"
"</domain>\n";

#define DST_ROOT "/srv/b/disks/" VM_ID "-root.qcow2"
#define DST_SEED "/srv/b/disks/" VM_ID "-seed.iso"
#define LOG_B    "/srv/b/console/carve-" VM_ID ".console.log"

static const struct vm_disk_path both[] = {
	{ "hdc", (char *)DST_SEED },
	{ "vda", (char *)DST_ROOT },
};

/* ------------------------------------------------------------ helpers */

/* The string value of an XPath expression over xml ("" when none). */
static char *
xpath(const char *xml, const char *expr)
{
	xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), NULL, NULL,
	    XML_PARSE_NONET);
	xmlXPathContextPtr ctx;
	xmlXPathObjectPtr res;
	char *out;

	assert_non_null(doc);
	ctx = xmlXPathNewContext(doc);
	xmlXPathRegisterNs(ctx, BAD_CAST "c",
	    BAD_CAST "https://carve.dev/xmlns/vm/1");
	res = xmlXPathEvalExpression(BAD_CAST expr, ctx);
	assert_non_null(res);
	out = xstrdup(res->stringval != NULL ? (const char *)res->stringval :
	    "");
	xmlXPathFreeObject(res);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	return out;
}

static void
assert_xpath(const char *xml, const char *expr, const char *want)
{
	char *got = xpath(xml, expr);

	if (strcmp(got, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", expr, got, want);
	free(got);
}

/* ------------------------------------------------------------ dest XML */

static void
test_dest_xml_real(void **state)
{
	struct carve_error err = { 0 };
	char *out = NULL;

	(void)state;
	assert_int_equal(migrate_dest_xml(real_xml, both, NELEM(both), LOG_B,
	    &out, &err), 0);
	assert_false(error_isset(&err));
	assert_xpath(out, "string(/domain/devices/disk[target/@dev='vda']"
	    "/source/@file)", DST_ROOT);
	assert_xpath(out, "string(/domain/devices/disk[target/@dev='hdc']"
	    "/source/@file)", DST_SEED);
	assert_xpath(out, "string(/domain/devices/serial/log/@file)", LOG_B);
	assert_xpath(out, "string(/domain/devices/console/log/@file)", LOG_B);
	assert_xpath(out, "string(/domain/devices/serial/log/@append)", "on");
	/* What is not a path stays as it was, carve's metadata included. */
	assert_xpath(out, "string(/domain/uuid)", VM_ID);
	assert_xpath(out, "string(/domain/metadata/c:vm/c:command_id)", CMD_ID);
	assert_xpath(out, "string(/domain/metadata/c:vm/c:memory_mib)", "192");
	assert_xpath(out, "string(/domain/devices/disk[target/@dev='hdc']"
	    "/target/@bus)", "ide");
	assert_xpath(out, "string(count(/domain/devices/disk[target/@dev='hdc']"
	    "/readonly))", "1");
	assert_xpath(out, "string(/domain/os/type/@machine)", "pc-i440fx-7.2");
	assert_xpath(out, "string(count(/domain/devices/disk))", "2");
	assert_null(strstr(out, "/var/lib/carve-a/"));
	assert_null(strstr(out, LOG_A));
	free(out);
}

/* Without a console path the log stays; the disks still move. */
static void
test_dest_xml_no_console(void **state)
{
	struct carve_error err = { 0 };
	char *out = NULL;

	(void)state;
	assert_int_equal(migrate_dest_xml(real_xml, both, NELEM(both), NULL,
	    &out, &err), 0);
	assert_xpath(out, "string(/domain/devices/serial/log/@file)", LOG_A);
	assert_xpath(out, "string(/domain/devices/disk[target/@dev='vda']"
	    "/source/@file)", DST_ROOT);
	free(out);
}

static const char no_disk_xml[] =
    "<domain type='qemu'><name>k</name><os><kernel>/k/vmlinuz</kernel></os>"
    "<devices><serial type='file'><source path='/a/log'/></serial>"
    "<disk type='file' device='cdrom'><target dev='hdd' bus='ide'/>"
    "<readonly/></disk>"
    "<disk type='block' device='disk'><source dev='/dev/a/x'/>"
    "<target dev='vdb' bus='virtio'/></disk></devices></domain>";

/* A file-backed serial, an empty cdrom, a block disk. */
static void
test_dest_xml_shapes(void **state)
{
	static const struct vm_disk_path blk[] = {
		{ "vdb", (char *)"/dev/b/x" },
	};
	static const struct vm_disk_path blk_cd[] = {
		{ "hdd", (char *)"/b/cd.iso" },
		{ "vdb", (char *)"/dev/b/x" },
	};
	struct carve_error err = { 0 };
	char *out = NULL;

	(void)state;
	assert_int_equal(migrate_dest_xml(no_disk_xml, blk, NELEM(blk),
	    "/b/log", &out, &err), 0);
	assert_xpath(out, "string(/domain/devices/serial/source/@path)",
	    "/b/log");
	assert_xpath(out, "string(/domain/devices/disk[target/@dev='vdb']"
	    "/source/@dev)", "/dev/b/x");
	assert_xpath(out, "string(count(/domain/devices/disk[target/@dev='hdd']"
	    "/source))", "0");
	assert_xpath(out, "string(/domain/os/kernel)", "/k/vmlinuz");
	free(out);
	/* A path for the empty cdrom is taken (and not invented). */
	assert_int_equal(migrate_dest_xml(no_disk_xml, blk_cd, NELEM(blk_cd),
	    NULL, &out, &err), 0);
	assert_null(strstr(out, "/b/cd.iso"));
	free(out);
}

/* A VM without disks (direct kernel boot): nothing to say about disks. */
static void
test_dest_xml_diskless(void **state)
{
	static const char xml[] = "<domain type='qemu'><name>k</name>"
	    "<devices><serial type='pty'><log file='/a/l' append='on'/>"
	    "</serial><console type='pty'><log file='/a/l'/></console>"
	    "</devices></domain>";
	struct carve_error err = { 0 };
	char *out = NULL;

	(void)state;
	assert_int_equal(migrate_dest_xml(xml, NULL, 0, "/b/l", &out, &err), 0);
	assert_xpath(out, "string(/domain/devices/console/log/@file)", "/b/l");
	free(out);
}

static void
test_dest_xml_refusals(void **state)
{
	static const struct vm_disk_path only_root[] = {
		{ "vda", (char *)DST_ROOT },
	};
	static const struct vm_disk_path extra[] = {
		{ "hdc", (char *)DST_SEED },
		{ "vda", (char *)DST_ROOT },
		{ "vdb", (char *)"/srv/b/data0" },
	};
	static const struct {
		const char *xml;
		const struct vm_disk_path *disks;
		size_t n;
		const char *msg;
	} cases[] = {
		{ real_xml, only_root, NELEM(only_root),
		    "disk hdc (read-only) has no path on the destination" },
		{ real_xml, NULL, 0, "disk vda has no path on the destination" },
		{ real_xml, extra, NELEM(extra),
		    "disks names vdb, which the VM does not have" },
		{ "<domain><devices>", both, NELEM(both),
		    "not a plain <domain> document" },
		{ "<pool type='dir'/>", both, NELEM(both),
		    "not a plain <domain> document" },
		{ "<!DOCTYPE domain [<!ENTITY x 'y'>]><domain>&x;</domain>", NULL,
		    0, "not a plain <domain> document" },
		{ "", NULL, 0, "not a plain <domain> document" },
		{ "<domain><devices><disk><source file='/a'/></disk></devices>"
		    "</domain>", both, NELEM(both), "a disk of the domain has no "
		    "target" },
	};
	char *out;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct carve_error err = { 0 };

		out = (char *)"untouched";
		if (migrate_dest_xml(cases[i].xml, cases[i].disks, cases[i].n,
		    LOG_B, &out, &err) != -1)
			fail_msg("case %zu accepted", i);
		assert_null(out);
		if (err.code != CARVE_EINVAL ||
		    strstr(err.message, cases[i].msg) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.message,
			    cases[i].msg);
	}
}

/* ------------------------------------------------------------ records */

static void
res_init(struct migrate_reservation *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->mr_vm_id, sizeof(r->mr_vm_id), "%s", VM_ID);
	snprintf(r->mr_vm_name, sizeof(r->mr_vm_name), "carve-mig2");
	snprintf(r->mr_command_id, sizeof(r->mr_command_id), "%s", CMD_ID);
	snprintf(r->mr_source_node, sizeof(r->mr_source_node), "host-a");
	r->mr_claim.amount[CAP_VCPU] = 2;
	r->mr_claim.amount[CAP_MEMORY_MIB] = 4096;
	r->mr_claim.amount[CAP_DISK_GIB] = 20;
	r->mr_created_at_ms = 1795620915765LL;
}

static void
test_reservation_round_trip(void **state)
{
	struct migrate_reservation r, back;
	struct carve_error err = { 0 };
	char *js;

	(void)state;
	res_init(&r);
	js = migrate_reservation_encode(&r);
	assert_string_equal(js, "{\"vm_id\":\"" VM_ID "\",\"name\":"
	    "\"carve-mig2\",\"command_id\":\"" CMD_ID "\",\"source_node\":"
	    "\"host-a\",\"vcpus\":2,\"memory_mib\":4096,\"disk_gib\":20,"
	    "\"created_at\":1795620915765}");
	assert_int_equal(migrate_reservation_decode(js, strlen(js), &back,
	    &err), 0);
	assert_memory_equal(&r, &back, sizeof(r));
	free(js);
}

/* A prepare command's reservation is its spec's size. */
static void
test_reservation_of(void **state)
{
	static const char cmd_json[] = "{\"id\":\"" CMD_ID "\",\"vm_id\":\""
	    VM_ID "\",\"type\":\"vm.migrate.prepare\",\"args\":{\"spec\":{"
	    "\"name\":\"w\",\"vcpus\":3,\"memory_mib\":512,\"disk_gib\":7},"
	    "\"source_node\":\"a\"}}";
	struct migrate_reservation r;
	struct carve_error err = { 0 };
	struct command cmd;

	(void)state;
	assert_int_equal(command_decode_buf(cmd_json, strlen(cmd_json), &cmd,
	    &err), 0);
	migrate_reservation_of(&cmd, 42, &r);
	assert_string_equal(r.mr_vm_id, VM_ID);
	assert_string_equal(r.mr_vm_name, "w");
	assert_string_equal(r.mr_command_id, CMD_ID);
	assert_string_equal(r.mr_source_node, "a");
	assert_int_equal(r.mr_claim.amount[CAP_VCPU], 3);
	assert_int_equal(r.mr_claim.amount[CAP_MEMORY_MIB], 512);
	assert_int_equal(r.mr_claim.amount[CAP_DISK_GIB], 7);
	assert_int_equal(r.mr_created_at_ms, 42);
	command_clear(&cmd);
}

#define RES_HEAD "{\"vm_id\":\"" VM_ID "\",\"name\":\"w\",\"command_id\":\"" \
	CMD_ID "\",\"source_node\":\"a\","

static void
test_reservation_refusals(void **state)
{
	static const struct {
		const char *json;
		const char *msg;
	} cases[] = {
		{ "[]", "reservation must be a JSON object" },
		{ RES_HEAD "\"vcpus\":1,\"memory_mib\":64,\"disk_gib\":0,"
		    "\"created_at\":1,\"x\":1}", "unknown key \"x\"" },
		{ RES_HEAD "\"vcpus\":1,\"memory_mib\":64,\"disk_gib\":0}",
		    "created_at is required" },
		{ RES_HEAD "\"vcpus\":0,\"memory_mib\":64,\"disk_gib\":0,"
		    "\"created_at\":1}", "vcpus must be between 1" },
		{ RES_HEAD "\"vcpus\":1,\"memory_mib\":63,\"disk_gib\":0,"
		    "\"created_at\":1}", "memory_mib must be between 64" },
		{ RES_HEAD "\"vcpus\":1,\"memory_mib\":64,\"disk_gib\":-1,"
		    "\"created_at\":1}", "disk_gib must be between 0" },
		{ "{\"vm_id\":\"x\",\"name\":\"w\",\"command_id\":\"" CMD_ID
		    "\",\"source_node\":\"a\",\"vcpus\":1,\"memory_mib\":64,"
		    "\"disk_gib\":0,\"created_at\":1}", "vm_id must be a UUID" },
		{ "{\"vm_id\":\"" VM_ID "\",\"name\":\"a b\",\"command_id\":\""
		    CMD_ID "\",\"source_node\":\"a\",\"vcpus\":1,"
		    "\"memory_mib\":64,\"disk_gib\":0,\"created_at\":1}",
		    "name may only contain" },
		{ "{\"vm_id\":\"" VM_ID "\",\"name\":\"w\",\"command_id\":\""
		    CMD_ID "\",\"source_node\":\"../a\",\"vcpus\":1,"
		    "\"memory_mib\":64,\"disk_gib\":0,\"created_at\":1}",
		    "source_node must start with a letter or digit" },
		{ "{\"vm_id\":\"" VM_ID "\"", "" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct carve_error err = { 0 };
		struct migrate_reservation r;

		if (migrate_reservation_decode(cases[i].json,
		    strlen(cases[i].json), &r, &err) != -1)
			fail_msg("case %zu accepted", i);
		if (err.code != CARVE_EINVAL ||
		    strstr(err.message, cases[i].msg) == NULL)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.message,
			    cases[i].msg);
	}
}

struct loaded {
	struct migrate_reservation r[4];
	size_t n;
};

static void
collect(const struct migrate_reservation *r, void *arg)
{
	struct loaded *l = arg;

	assert_true(l->n < NELEM(l->r));
	l->r[l->n++] = *r;
}

static char *
tmp_dir(void)
{
	const char *tmp = getenv("TMPDIR");
	char *dir = xasprintf("%s/carve-migrate-XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");

	assert_non_null(mkdtemp(dir));
	return dir;
}

static void
write_file(const char *path, const char *data)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(data, f);
	fclose(f);
}

/* Written, read back at start-up, deleted; damaged files are skipped. */
static void
test_reservation_files(void **state)
{
	struct migrate_reservation r, other;
	struct carve_error err = { 0 };
	struct loaded l = { .n = 0 };
	char *dir = tmp_dir(), *p;
	struct stat st;

	(void)state;
	/* No directory yet: nothing reserved. */
	assert_int_equal(migrate_reservations_load(dir, collect, &l, &err), 0);
	assert_int_equal(l.n, 0);

	res_init(&r);
	assert_int_equal(migrate_reservation_write(dir, &r, &err), 0);
	p = xasprintf("%s/migrations/%s.json", dir, VM_ID);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(p);
	/* Writing again (a recovered prepare) replaces it. */
	r.mr_claim.amount[CAP_VCPU] = 4;
	assert_int_equal(migrate_reservation_write(dir, &r, &err), 0);

	/* Damaged, misnamed or foreign files are not reservations. */
	p = xasprintf("%s/migrations/11111111-2222-4333-8444-555555555555.json",
	    dir);
	write_file(p, "{\"vm_id\":");
	free(p);
	other = r;
	snprintf(other.mr_vm_id, sizeof(other.mr_vm_id),
	    "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
	p = migrate_reservation_encode(&other);
	{
		char *q = xasprintf("%s/migrations/"
		    "bbbbbbbb-bbbb-4ccc-8ddd-eeeeeeeeeeee.json", dir);
		write_file(q, p);
		free(q);
	}
	free(p);
	p = xasprintf("%s/migrations/notes.txt", dir);
	write_file(p, "hello");
	free(p);

	l.n = 0;
	assert_int_equal(migrate_reservations_load(dir, collect, &l, &err), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.r[0].mr_vm_id, VM_ID);
	assert_int_equal(l.r[0].mr_claim.amount[CAP_VCPU], 4);

	assert_int_equal(migrate_reservation_delete(dir, VM_ID, &err), 0);
	/* Deleting what is not there is fine (a finish seen again). */
	assert_int_equal(migrate_reservation_delete(dir, VM_ID, &err), 0);
	l.n = 0;
	assert_int_equal(migrate_reservations_load(dir, collect, &l, &err), 0);
	assert_int_equal(l.n, 0);

	/* Clean up what the test made. */
	p = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(p), 0);
	free(p);
	free(dir);
}

static void
test_drained(void **state)
{
	struct carve_error err = { 0 };
	char *dir = tmp_dir(), *p;

	(void)state;
	assert_false(migrate_drained_load(dir));
	assert_int_equal(migrate_drained_store(dir, true, &err), 0);
	assert_true(migrate_drained_load(dir));
	assert_int_equal(migrate_drained_store(dir, true, &err), 0);
	assert_true(migrate_drained_load(dir));
	assert_int_equal(migrate_drained_store(dir, false, &err), 0);
	assert_false(migrate_drained_load(dir));
	assert_int_equal(migrate_drained_store(dir, false, &err), 0);
	/* A state dir that cannot be written: the error says where. */
	p = xasprintf("%s/missing", dir);
	assert_int_equal(migrate_drained_store(p, true, &err), -1);
	assert_int_equal(err.code, CARVE_EINTERNAL);
	assert_non_null(strstr(err.message, p));
	free(p);
	assert_int_equal(rmdir(dir), 0);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dest_xml_real),
		cmocka_unit_test(test_dest_xml_no_console),
		cmocka_unit_test(test_dest_xml_shapes),
		cmocka_unit_test(test_dest_xml_diskless),
		cmocka_unit_test(test_dest_xml_refusals),
		cmocka_unit_test(test_reservation_round_trip),
		cmocka_unit_test(test_reservation_of),
		cmocka_unit_test(test_reservation_refusals),
		cmocka_unit_test(test_reservation_files),
		cmocka_unit_test(test_drained),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
