/*
 * Unit tests for api/command and api/vm: which commands, results and VM
 * reports the decoders accept, that every refusal is invalid_argument with a
 * message naming the field, and that encode/decode round-trip.
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

#include "api/command.h"
#include "api/vm.h"
#include "common/jsonx.h"
#include "common/xalloc.h"

#define ID1 "0b9c6a3e-5d1f-4c2b-9a8e-7f6d5c4b3a21"
#define VM1 "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
#define HEAD "\"id\":\"" ID1 "\",\"vm_id\":\"" VM1 "\","

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------ helpers */

static json_object *
parse(const char *s)
{
	struct carve_error err = { 0 };
	json_object *o = jsonx_parse(s, strlen(s), &err);

	if (o == NULL)
		fail_msg("bad fixture <%s>: %s", s, err.message);
	return o;
}

static bool
streq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool
spec_cloud_equal(const struct vm_spec *x, const struct vm_spec *y)
{
	if (!streq_null(x->vs_image.vi_url, y->vs_image.vi_url) ||
	    strcmp(x->vs_image.vi_sha256, y->vs_image.vi_sha256) != 0 ||
	    x->vs_image.vi_format != y->vs_image.vi_format ||
	    x->vs_nssh_keys != y->vs_nssh_keys ||
	    !streq_null(x->vs_user_data, y->vs_user_data))
		return false;
	for (size_t i = 0; i < x->vs_nssh_keys; i++)
		if (strcmp(x->vs_ssh_keys[i], y->vs_ssh_keys[i]) != 0)
			return false;
	return true;
}

static bool
spec_nics_equal(const struct vm_spec *x, const struct vm_spec *y)
{
	if (x->vs_nnics != y->vs_nnics)
		return false;
	for (size_t i = 0; i < x->vs_nnics; i++)
		if (x->vs_nics[i].vn_kind != y->vs_nics[i].vn_kind ||
		    strcmp(x->vs_nics[i].vn_name, y->vs_nics[i].vn_name) != 0 ||
		    strcmp(x->vs_nics[i].vn_mac, y->vs_nics[i].vn_mac) != 0)
			return false;
	return true;
}

static bool
command_equal(const struct command *a, const struct command *b)
{
	const struct vm_spec *x = &a->cmd_args.create, *y = &b->cmd_args.create;

	if (strcmp(a->cmd_id, b->cmd_id) != 0 || a->cmd_type != b->cmd_type ||
	    strcmp(a->cmd_vm_id, b->cmd_vm_id) != 0)
		return false;
	switch (a->cmd_type) {
	case CMD_VM_CREATE:
		return strcmp(x->vs_name, y->vs_name) == 0 &&
		    x->vs_vcpus == y->vs_vcpus &&
		    x->vs_memory_mib == y->vs_memory_mib &&
		    x->vs_disk_gib == y->vs_disk_gib &&
		    streq_null(x->vs_kernel, y->vs_kernel) &&
		    streq_null(x->vs_initrd, y->vs_initrd) &&
		    streq_null(x->vs_cmdline, y->vs_cmdline) &&
		    spec_cloud_equal(x, y) && spec_nics_equal(x, y) &&
		    x->vs_ndata_disks == y->vs_ndata_disks &&
		    memcmp(x->vs_data_disks, y->vs_data_disks,
		    sizeof(x->vs_data_disks)) == 0;
	case CMD_VM_STOP:
		return a->cmd_args.stop.force == b->cmd_args.stop.force &&
		    a->cmd_args.stop.timeout_s == b->cmd_args.stop.timeout_s;
	case CMD_VM_RESIZE:
		return a->cmd_args.resize.vcpus == b->cmd_args.resize.vcpus &&
		    a->cmd_args.resize.memory_mib ==
		    b->cmd_args.resize.memory_mib;
	case CMD_VM_REBUILD:
		return streq_null(a->cmd_args.rebuild.image.vi_url,
		    b->cmd_args.rebuild.image.vi_url) &&
		    strcmp(a->cmd_args.rebuild.image.vi_sha256,
		    b->cmd_args.rebuild.image.vi_sha256) == 0 &&
		    a->cmd_args.rebuild.image.vi_format ==
		    b->cmd_args.rebuild.image.vi_format;
	case CMD_VM_SNAPSHOT_CREATE:
		return strcmp(a->cmd_args.snapshot.name,
		    b->cmd_args.snapshot.name) == 0 &&
		    a->cmd_args.snapshot.kind == b->cmd_args.snapshot.kind &&
		    a->cmd_args.snapshot.quiesce == b->cmd_args.snapshot.quiesce;
	case CMD_VM_SNAPSHOT_REVERT:
	case CMD_VM_SNAPSHOT_DELETE:
		return strcmp(a->cmd_args.snapshot.name,
		    b->cmd_args.snapshot.name) == 0;
	default:
		return true;
	}
}

static char *
repeat(char c, size_t n)
{
	char *s = xmalloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ------------------------------------------------------------ names */

static void
test_names(void **state)
{
	static const struct {
		enum command_type type;
		const char *name;
		bool needs_vm;
	} types[] = {
		{ CMD_VM_CREATE, "vm.create", false },
		{ CMD_VM_START, "vm.start", true },
		{ CMD_VM_STOP, "vm.stop", true },
		{ CMD_VM_REBOOT, "vm.reboot", true },
		{ CMD_VM_DESTROY, "vm.destroy", true },
		{ CMD_VM_RESIZE, "vm.resize", true },
		{ CMD_VM_MIGRATE_PREPARE, "vm.migrate.prepare", false },
		{ CMD_VM_MIGRATE, "vm.migrate", true },
		{ CMD_VM_MIGRATE_CANCEL, "vm.migrate.cancel", true },
		{ CMD_VM_MIGRATE_FINISH, "vm.migrate.finish", true },
		{ CMD_VM_REBUILD, "vm.rebuild", true },
		{ CMD_VM_SNAPSHOT_CREATE, "vm.snapshot.create", true },
		{ CMD_VM_SNAPSHOT_REVERT, "vm.snapshot.revert", true },
		{ CMD_VM_SNAPSHOT_DELETE, "vm.snapshot.delete", true },
	};
	static const struct {
		enum command_status st;
		const char *name;
	} statuses[] = {
		{ CMD_STATUS_ACCEPTED, "accepted" },
		{ CMD_STATUS_SUCCEEDED, "succeeded" },
		{ CMD_STATUS_FAILED, "failed" },
	};
	enum command_type t;
	enum command_status st;

	(void)state;
	assert_int_equal(NELEM(types), CMD_TYPE_MAX);
	for (size_t i = 0; i < NELEM(types); i++) {
		assert_string_equal(command_type_name(types[i].type), types[i].name);
		assert_int_equal(command_type_parse(types[i].name, &t), 0);
		assert_int_equal(t, types[i].type);
		assert_int_equal(command_type_needs_vm(types[i].type),
		    types[i].needs_vm);
	}
	for (size_t i = 0; i < NELEM(statuses); i++) {
		assert_string_equal(command_status_name(statuses[i].st),
		    statuses[i].name);
		assert_int_equal(command_status_parse(statuses[i].name, &st), 0);
		assert_int_equal(st, statuses[i].st);
	}
	assert_int_equal(command_type_parse("vm.teleport", &t), -1);
	assert_int_equal(command_type_parse("VM.CREATE", &t), -1);
	assert_int_equal(command_type_parse("", &t), -1);
	assert_int_equal(command_status_parse("done", &st), -1);
	assert_non_null(command_type_name(CMD_TYPE_MAX));
	assert_non_null(command_status_name((enum command_status)99));
}

/* ------------------------------------------------------------ decode */

struct decode_case {
	const char *json;
	int rc;
	const char *msg;	/* substring of the message */
};

static const struct decode_case decode_cases[] = {
	/* accepted */
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"web-1\","
	    "\"vcpus\":2,\"memory_mib\":2048}}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\","
	    "\"vcpus\":1024,\"memory_mib\":64,\"disk_gib\":65536,"
	    "\"kernel\":\"vmlinuz-6.1.0+deb12_amd64\",\"initrd\":\"initrd.img\","
	    "\"cmdline\":\"console=ttyS0 root=/dev/vda ro quiet='x' a=\\\"b\\\"\"}}",
	    0, NULL },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"0.a_b-c\","
	    "\"vcpus\":1,\"memory_mib\":16777216,\"disk_gib\":0,"
	    "\"kernel\":\"k\"}}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.start\"}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.start\",\"args\":{}}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.start\",\"args\":null}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.reboot\"}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.destroy\",\"args\":{}}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.stop\"}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.stop\",\"args\":{\"force\":true,"
	    "\"timeout_s\":3600}}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.stop\",\"args\":{\"timeout_s\":1}}", 0, NULL },
	{ "{\"type\":\"vm.start\",\"vm_id\":\"6F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9\","
	    "\"id\":\"0B9C6A3E-5D1F-4C2B-9A8E-7F6D5C4B3A21\"}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"n\","
	    "\"vcpus\":1,\"memory_mib\":64,\"networks\":[{\"network\":"
	    "\"default\"},{\"bridge\":\"br0\",\"mac\":\"52:54:00:AB:cd:01\"}]}}",
	    0, NULL },

	/* top level */
	{ "[]", -1, "command must be a JSON object" },
	{ "{" HEAD "\"type\":\"vm.start\",\"extra\":1}", -1,
	    "command: unknown key \"extra\"" },
	{ "{" HEAD "\"type\":\"vm.start\",\"ID\":1}", -1, "unknown key \"ID\"" },
	{ "{\"vm_id\":\"" VM1 "\",\"type\":\"vm.start\"}", -1, "id is required" },
	{ "{\"id\":\"" ID1 "\",\"type\":\"vm.start\"}", -1,
	    "vm_id is required" },
	{ "{" HEAD "\"args\":{}}", -1, "type is required" },
	{ "{\"id\":null,\"vm_id\":\"" VM1 "\",\"type\":\"vm.start\"}", -1,
	    "id is required" },
	{ "{\"id\":\"1234\",\"vm_id\":\"" VM1 "\",\"type\":\"vm.start\"}", -1,
	    "id must be a UUID" },
	{ "{\"id\":\"{" ID1 "}\",\"vm_id\":\"" VM1 "\",\"type\":\"vm.start\"}", -1,
	    "id must be a UUID" },
	{ "{\"id\":\"0b9c6a3e5d1f4c2b9a8e7f6d5c4b3a21\",\"vm_id\":\"" VM1
	    "\",\"type\":\"vm.start\"}", -1, "id must be a UUID" },
	{ "{\"id\":\"zb9c6a3e-5d1f-4c2b-9a8e-7f6d5c4b3a21\",\"vm_id\":\"" VM1
	    "\",\"type\":\"vm.start\"}", -1, "id must be a UUID" },
	{ "{\"id\":\"" ID1 " \",\"vm_id\":\"" VM1 "\",\"type\":\"vm.start\"}", -1,
	    "id must be a UUID" },
	{ "{\"id\":7,\"vm_id\":\"" VM1 "\",\"type\":\"vm.start\"}", -1,
	    "id must be a string" },
	{ "{\"id\":\"" ID1 "\",\"vm_id\":\"../../etc\",\"type\":\"vm.start\"}", -1,
	    "vm_id must be a UUID" },
	{ "{" HEAD "\"type\":\"vm.teleport\"}", -1,
	    "unknown command type \"vm.teleport\"" },
	{ "{" HEAD "\"type\":\"VM.START\"}", -1, "unknown command type \"VM.START\"" },
	{ "{" HEAD "\"type\":\"\"}", -1, "unknown command type \"\"" },
	{ "{" HEAD "\"type\":\"a\\nb\\\"c\"}", -1, "unknown command type \"a?b?c\"" },
	{ "{" HEAD "\"type\":5}", -1, "type must be a string" },
	{ "{" HEAD "\"type\":\"vm.create\"}", -1, "args is required for vm.create" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":null}", -1,
	    "args is required for vm.create" },
	{ "{" HEAD "\"type\":\"vm.start\",\"args\":[]}", -1,
	    "args must be a JSON object" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":\"x\"}", -1,
	    "args must be a JSON object" },

	/* vm.create args */
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"vcpu\":2}}", -1,
	    "vm.create args: unknown key \"vcpu\"" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"vcpus\":1,"
	    "\"memory_mib\":64}}", -1, "name is required" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\","
	    "\"memory_mib\":64}}", -1, "vcpus is required" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\","
	    "\"vcpus\":1}}", -1, "memory_mib is required" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":2.5,"
	    "\"memory_mib\":64}}", -1, "vcpus must be an integer" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":\"2\","
	    "\"memory_mib\":64}}", -1, "vcpus must be an integer" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":0,"
	    "\"memory_mib\":64}}", -1, "vcpus must be between 1 and 1024" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1025,"
	    "\"memory_mib\":64}}", -1, "vcpus must be between 1 and 1024" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":63}}", -1, "memory_mib must be at least 64 MiB" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":-4096}}", -1, "memory_mib must be at least 64 MiB" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":16777217}}", -1,
	    "memory_mib must be at most 16777216 MiB" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":18446744073709551615}}", -1,
	    "memory_mib must be at most" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":2048.0}}", -1, "memory_mib must be an integer" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":\"2048\"}}", -1, "memory_mib must be an integer" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"disk_gib\":-1}}", -1,
	    "disk_gib must be at least 0 GiB" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"disk_gib\":65537}}", -1,
	    "disk_gib must be at most 65536 GiB" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"disk_gib\":true}}", -1,
	    "disk_gib must be an integer" },
	/* names */
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"\",\"vcpus\":1,"
	    "\"memory_mib\":64}}", -1, "name must not be empty" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"-a\",\"vcpus\":1,"
	    "\"memory_mib\":64}}", -1, "name must start with a letter or digit" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\".a\",\"vcpus\":1,"
	    "\"memory_mib\":64}}", -1, "name must start with a letter or digit" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":5,\"vcpus\":1,"
	    "\"memory_mib\":64}}", -1, "name must be a string" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"caf\\u00e9\","
	    "\"vcpus\":1,\"memory_mib\":64}}", -1, "name may only contain" },
	/* kernel, initrd, cmdline */
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"kernel\":\"../x\"}}", -1,
	    "kernel must not start with '.'" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"kernel\":\"..\"}}", -1,
	    "kernel must not start with '.'" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"kernel\":\".hidden\"}}", -1,
	    "kernel must not start with '.'" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"kernel\":\"/boot/vmlinuz\"}}", -1,
	    "kernel must be a plain file name" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"kernel\":\"a/../../b\"}}", -1,
	    "kernel must be a plain file name" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"kernel\":\"a b\"}}", -1,
	    "kernel must be a plain file name" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"kernel\":\"\"}}", -1, "kernel must not be empty" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"kernel\":1}}", -1, "kernel must be a string" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"kernel\":\"k\",\"initrd\":\"../../etc/shadow\"}}",
	    -1, "initrd must not start with '.'" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"kernel\":\"k\",\"initrd\":\"x\\\\y\"}}",
	    -1, "initrd must be a plain file name" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"initrd\":\"initrd.img\"}}", -1,
	    "initrd requires kernel" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"cmdline\":\"console=ttyS0\"}}", -1,
	    "cmdline requires kernel" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"kernel\":\"k\",\"cmdline\":\"a\\nb\"}}", -1,
	    "cmdline may only contain printable ASCII" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"kernel\":\"k\",\"cmdline\":\"caf\\u00e9\"}}", -1,
	    "cmdline may only contain printable ASCII" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"kernel\":\"k\",\"cmdline\":\"\"}}", -1,
	    "cmdline must not be empty" },
	{ "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"kernel\":\"k\",\"cmdline\":\"a\\u0000b\"}}", -1,
	    "cmdline must not contain NUL" },

	/* args of the other types */
	{ "{" HEAD "\"type\":\"vm.start\",\"args\":{\"force\":true}}", -1,
	    "vm.start args: unknown key \"force\"" },
	{ "{" HEAD "\"type\":\"vm.destroy\",\"args\":{\"name\":\"a\"}}", -1,
	    "vm.destroy args: unknown key \"name\"" },
	{ "{" HEAD "\"type\":\"vm.reboot\",\"args\":{\"x\":null}}", -1,
	    "vm.reboot args: unknown key \"x\"" },
	{ "{" HEAD "\"type\":\"vm.stop\",\"args\":{\"forced\":true}}", -1,
	    "vm.stop args: unknown key \"forced\"" },
	{ "{" HEAD "\"type\":\"vm.stop\",\"args\":{\"force\":\"yes\"}}", -1,
	    "force must be a boolean" },
	{ "{" HEAD "\"type\":\"vm.stop\",\"args\":{\"force\":1}}", -1,
	    "force must be a boolean" },
	{ "{" HEAD "\"type\":\"vm.stop\",\"args\":{\"timeout_s\":0}}", -1,
	    "timeout_s must be at least 1" },
	{ "{" HEAD "\"type\":\"vm.stop\",\"args\":{\"timeout_s\":3601}}", -1,
	    "timeout_s must be at most 3600" },
	{ "{" HEAD "\"type\":\"vm.stop\",\"args\":{\"timeout_s\":1.5}}", -1,
	    "timeout_s must be an integer" },

	/* vm.resize: either size or both, strictly typed and bounded */
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"vcpus\":4}}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"memory_mib\":64}}", 0,
	    NULL },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"vcpus\":1024,"
	    "\"memory_mib\":16777216}}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"vcpus\":1,"
	    "\"memory_mib\":null}}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.resize\"}", -1,
	    "args is required for vm.resize" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":null}", -1,
	    "args is required for vm.resize" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":[4]}", -1,
	    "args must be a JSON object" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{}}", -1,
	    "vm.resize needs vcpus, memory_mib or both" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"vcpus\":null,"
	    "\"memory_mib\":null}}", -1,
	    "vm.resize needs vcpus, memory_mib or both" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"vcpus\":2,"
	    "\"disk_gib\":10}}", -1, "vm.resize args: unknown key \"disk_gib\"" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"memory\":512}}", -1,
	    "vm.resize args: unknown key \"memory\"" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"vcpus\":0}}", -1,
	    "vcpus must be between 1 and 1024" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"vcpus\":1025}}", -1,
	    "vcpus must be between 1 and 1024" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"vcpus\":-2}}", -1,
	    "vcpus must be between 1 and 1024" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"vcpus\":2.0}}", -1,
	    "vcpus must be an integer" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"vcpus\":\"2\"}}", -1,
	    "vcpus must be an integer" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"vcpus\":true}}", -1,
	    "vcpus must be an integer" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"memory_mib\":63}}", -1,
	    "memory_mib must be at least 64 MiB" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"memory_mib\":0}}", -1,
	    "memory_mib must be at least 64 MiB" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{"
	    "\"memory_mib\":16777217}}", -1,
	    "memory_mib must be at most 16777216 MiB" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{"
	    "\"memory_mib\":18446744073709551615}}", -1,
	    "memory_mib must be at most" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"memory_mib\":512.5}}",
	    -1, "memory_mib must be an integer" },
	{ "{" HEAD "\"type\":\"vm.resize\",\"args\":{\"vcpus\":2,"
	    "\"memory_mib\":\"1024\"}}", -1, "memory_mib must be an integer" },
	/* snapshots: accepted */
#define SNAP(t, a) "{" HEAD "\"type\":\"vm.snapshot." t "\",\"args\":" a "}"
	{ SNAP("create", "{\"name\":\"before-upgrade\",\"kind\":\"full\"}"), 0,
	    NULL },
	{ SNAP("create", "{\"name\":\"s.1_a-b\",\"kind\":\"disk\","
	    "\"quiesce\":true}"), 0, NULL },
	{ SNAP("create", "{\"name\":\"9\",\"kind\":\"full\",\"quiesce\":false}"),
	    0, NULL },
	{ SNAP("create", "{\"name\":\"d\",\"kind\":\"disk\",\"quiesce\":null}"),
	    0, NULL },
	{ SNAP("revert", "{\"name\":\"before-upgrade\"}"), 0, NULL },
	{ SNAP("delete", "{\"name\":\"X\"}"), 0, NULL },
	/* snapshots: refused */
	{ "{" HEAD "\"type\":\"vm.snapshot.create\"}", -1,
	    "args is required for vm.snapshot.create" },
	{ "{" HEAD "\"type\":\"vm.snapshot.revert\",\"args\":null}", -1,
	    "args is required for vm.snapshot.revert" },
	{ "{" HEAD "\"type\":\"vm.snapshot.delete\"}", -1,
	    "args is required for vm.snapshot.delete" },
	{ SNAP("create", "[]"), -1, "args must be a JSON object" },
	{ SNAP("create", "{\"name\":\"a\",\"kind\":\"full\",\"memory\":true}"),
	    -1, "vm.snapshot.create args: unknown key \"memory\"" },
	{ SNAP("create", "{\"kind\":\"full\"}"), -1, "name is required" },
	{ SNAP("create", "{\"name\":null,\"kind\":\"full\"}"), -1,
	    "name is required" },
	{ SNAP("create", "{\"name\":7,\"kind\":\"full\"}"), -1,
	    "name must be a string" },
	{ SNAP("create", "{\"name\":\"\",\"kind\":\"full\"}"), -1,
	    "name must not be empty" },
	{ SNAP("create", "{\"name\":\"-a\",\"kind\":\"full\"}"), -1,
	    "name must start with a letter or digit" },
	{ SNAP("create", "{\"name\":\"a/b\",\"kind\":\"full\"}"), -1,
	    "name may only contain" },
	{ SNAP("create", "{\"name\":\"a\"}"), -1, "kind is required" },
	{ SNAP("create", "{\"name\":\"a\",\"kind\":1}"), -1,
	    "kind must be a string" },
	{ SNAP("create", "{\"name\":\"a\",\"kind\":\"memory\"}"), -1,
	    "kind \"memory\" must be \"full\" or \"disk\"" },
	{ SNAP("create", "{\"name\":\"a\",\"kind\":\"Full\"}"), -1,
	    "kind \"Full\" must be" },
	{ SNAP("create", "{\"name\":\"a\",\"kind\":\"disk\",\"quiesce\":1}"),
	    -1, "quiesce must be a boolean" },
	{ SNAP("create", "{\"name\":\"a\",\"kind\":\"full\",\"quiesce\":true}"),
	    -1, "quiesce applies to disk snapshots only" },
	{ SNAP("revert", "{}"), -1, "name is required" },
	{ SNAP("revert", "{\"name\":\"a\",\"kind\":\"full\"}"), -1,
	    "vm.snapshot.revert args: unknown key \"kind\"" },
	{ SNAP("revert", "{\"name\":\"a b\"}"), -1, "name may only contain" },
	{ SNAP("delete", "{\"name\":\"a\",\"force\":true}"), -1,
	    "vm.snapshot.delete args: unknown key \"force\"" },
	{ SNAP("delete", "{\"name\":\".hidden\"}"), -1,
	    "name must start with a letter or digit" },
	{ SNAP("delete", "\"a\""), -1, "args must be a JSON object" },
};

static void
check_decode(size_t i, const char *json, int want_rc, const char *want_msg)
{
	struct carve_error err = { 0 };
	struct command cmd;
	int rc;

	memset(&cmd, 0xa5, sizeof(cmd));
	rc = command_decode_buf(json, strlen(json), &cmd, &err);
	if (rc != want_rc)
		fail_msg("case %zu <%s>: rc %d want %d (%s)", i, json, rc, want_rc,
		    err.message);
	if (rc == 0 && error_isset(&err))
		fail_msg("case %zu: error set on success", i);
	if (rc == -1) {
		if (err.code != CARVE_EINVAL)
			fail_msg("case %zu: code %d", i, err.code);
		/* "out holds nothing to free" */
		if (cmd.cmd_args.create.vs_kernel != NULL ||
		    cmd.cmd_args.create.vs_initrd != NULL ||
		    cmd.cmd_args.create.vs_cmdline != NULL)
			fail_msg("case %zu: out not cleared on failure", i);
	}
	if (want_msg != NULL && strstr(err.message, want_msg) == NULL)
		fail_msg("case %zu <%s>: message \"%s\" lacks \"%s\"", i, json,
		    err.message, want_msg);
	command_clear(&cmd);
}

static void
test_decode_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(decode_cases); i++)
		check_decode(i, decode_cases[i].json, decode_cases[i].rc,
		    decode_cases[i].msg);
}

/* ------------------------------------------------------------ migration */

#define MIG "{" HEAD "\"type\":\"vm.migrate\",\"args\":{"
#define MIG_URI "\"dest_libvirt_uri\":\"qemu+tls://b.example/system\","
#define MIG_MIN "\"dest_node\":\"b\"," MIG_URI "\"disks\":{}"
#define PREP "{" HEAD "\"type\":\"vm.migrate.prepare\",\"args\":{"
#define SPEC "\"spec\":{\"name\":\"web-1\",\"vcpus\":2,\"memory_mib\":256}"

static const struct decode_case migrate_cases[] = {
	/* accepted */
	{ PREP SPEC ",\"source_node\":\"host-a\"}}", 0, NULL },
	{ PREP "\"spec\":{\"name\":\"w\",\"vcpus\":1,\"memory_mib\":64,"
	    "\"disk_gib\":2,\"image\":{\"url\":\"file:///i/b.qcow2\",\"sha256\":"
	    "\"ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\","
	    "\"format\":\"qcow2\"},\"ssh_authorized_keys\":[\"ssh-ed25519 K c\"],"
	    "\"user_data\":\"#cloud-config\\n\"},\"source_node\":\"a\"}}", 0,
	    NULL },
	{ MIG MIG_MIN "}}", 0, NULL },
	{ MIG "\"dest_node\":\"host-b.dc1\",\"dest_libvirt_uri\":"
	    "\"qemu+unix:///system?socket=/run/b/libvirt-sock\","
	    "\"dest_migrate_uri\":\"tcp://10.0.0.2:49152\",\"disks\":{"
	    "\"vdb\":\"/var/lib/carve/disks/x-data0.qcow2\","
	    "\"vda\":\"/var/lib/carve/disks/x-root.qcow2\","
	    "\"hdc\":\"/var/lib/carve/disks/x-seed.iso\"},"
	    "\"console_log\":\"/var/log/libvirt/qemu/carve-x.console.log\","
	    "\"max_downtime_ms\":60000,\"bandwidth_mibps\":0,"
	    "\"timeout_s\":86400}}", 0, NULL },
	{ MIG "\"dest_node\":\"b\",\"dest_libvirt_uri\":"
	    "\"qemu+ssh://root@b/system?keyfile=/k&known_hosts=/h&no_tty=1\","
	    "\"dest_migrate_uri\":\"tcp://[fe80::1]\",\"disks\":{\"sda\":\"/a\","
	    "\"xvdab\":\"/b\"},\"max_downtime_ms\":1,"
	    "\"bandwidth_mibps\":1000000,\"timeout_s\":10}}", 0, NULL },
	{ MIG "\"dest_node\":\"b\",\"dest_libvirt_uri\":\"qemu:///system\","
	    "\"disks\":{},\"dest_migrate_uri\":\"tcp://b\"}}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.migrate.cancel\"}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.migrate.cancel\",\"args\":{}}", 0, NULL },
	{ "{" HEAD "\"type\":\"vm.migrate.finish\"}", 0, NULL },

	/* vm.migrate.prepare */
	{ "{" HEAD "\"type\":\"vm.migrate.prepare\"}", -1,
	    "args is required for vm.migrate.prepare" },
	{ PREP SPEC "}}", -1, "source_node is required" },
	{ PREP "\"source_node\":\"a\"}}", -1, "spec is required" },
	{ PREP SPEC ",\"source_node\":\"a\",\"dest\":1}}", -1,
	    "vm.migrate.prepare args: unknown key \"dest\"" },
	{ PREP SPEC ",\"source_node\":\"-a\"}}", -1,
	    "source_node must start with a letter or digit" },
	{ PREP SPEC ",\"source_node\":\"a/b\"}}", -1,
	    "source_node may only contain" },
	{ PREP SPEC ",\"source_node\":7}}", -1, "source_node must be a string" },
	{ PREP "\"spec\":[],\"source_node\":\"a\"}}", -1,
	    "spec must be a JSON object" },
	{ PREP "\"spec\":{\"name\":\"w\",\"vcpus\":0,\"memory_mib\":64},"
	    "\"source_node\":\"a\"}}", -1,
	    "spec: vcpus must be between 1 and 1024" },
	{ PREP "\"spec\":{\"name\":\"w\",\"vcpus\":1,\"memory_mib\":64,"
	    "\"x\":1},\"source_node\":\"a\"}}", -1,
	    "spec: vm.create args: unknown key \"x\"" },

	/* vm.migrate: required keys and types */
	{ "{" HEAD "\"type\":\"vm.migrate\"}", -1,
	    "args is required for vm.migrate" },
	{ MIG MIG_URI "\"disks\":{}}}", -1, "dest_node is required" },
	{ MIG "\"dest_node\":\"b\",\"disks\":{}}}", -1,
	    "dest_libvirt_uri is required" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"x\":1}}", -1,
	    "vm.migrate args: unknown key \"x\"" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"console_log\":\"/c\"}}", -1,
	    "disks is required" },
	{ MIG "\"dest_node\":\"b c\"," MIG_URI "\"disks\":{}}}", -1,
	    "dest_node may only contain" },
	{ MIG "\"dest_node\":\"b\",\"dest_libvirt_uri\":5,\"disks\":{}}}", -1,
	    "dest_libvirt_uri must be a string" },
	/* the destination's libvirt URI */
	{ MIG "\"dest_node\":\"b\",\"dest_libvirt_uri\":\"b.example\","
	    "\"disks\":{}}}", -1, "dest_libvirt_uri must be a libvirt URI" },
	{ MIG "\"dest_node\":\"b\",\"dest_libvirt_uri\":"
	    "\"qemu+ext:///system?command=/bin/sh\",\"disks\":{}}}", -1,
	    "transport \"qemu+ext\" is not allowed" },
	{ MIG "\"dest_node\":\"b\",\"dest_libvirt_uri\":"
	    "\"xen+tls://b/system\",\"disks\":{}}}", -1,
	    "transport \"xen+tls\" is not allowed" },
	{ MIG "\"dest_node\":\"b\",\"dest_libvirt_uri\":"
	    "\"qemu+ssh://b/system?netcat=/tmp/x\",\"disks\":{}}}", -1,
	    "parameter \"netcat\" is not allowed" },
	{ MIG "\"dest_node\":\"b\",\"dest_libvirt_uri\":"
	    "\"qemu+tls://b/system?pkipath=/p&no_verify=1\",\"disks\":{}}}", -1,
	    "parameter \"no_verify\" is not allowed" },
	{ MIG "\"dest_node\":\"b\",\"dest_libvirt_uri\":"
	    "\"qemu+tls://b/session\",\"disks\":{}}}", -1,
	    "must name the system instance" },
	{ MIG "\"dest_node\":\"b\",\"dest_libvirt_uri\":"
	    "\"qemu+tls://b/system#x\",\"disks\":{}}}", -1,
	    "must not have a fragment" },
	{ MIG "\"dest_node\":\"b\",\"dest_libvirt_uri\":"
	    "\"qemu+tls://b /system\",\"disks\":{}}}", -1,
	    "dest_libvirt_uri may only contain printable ASCII without blanks" },
	{ MIG "\"dest_node\":\"b\",\"dest_libvirt_uri\":"
	    "\"qemu+tls://b/system'\",\"disks\":{}}}", -1,
	    "dest_libvirt_uri may only contain" },
	/* the migration data URI */
	{ MIG MIG_MIN ",\"dest_migrate_uri\":\"rdma://b\"}}", -1,
	    "dest_migrate_uri must be tcp://HOST[:PORT]" },
	{ MIG MIG_MIN ",\"dest_migrate_uri\":\"tcp://\"}}", -1,
	    "dest_migrate_uri must name a host" },
	{ MIG MIG_MIN ",\"dest_migrate_uri\":\"tcp://b:0\"}}", -1,
	    "the port must be 1..65535" },
	{ MIG MIG_MIN ",\"dest_migrate_uri\":\"tcp://b:65536\"}}", -1,
	    "the port must be 1..65535" },
	{ MIG MIG_MIN ",\"dest_migrate_uri\":\"tcp://b:\"}}", -1,
	    "the port must be 1..65535" },
	{ MIG MIG_MIN ",\"dest_migrate_uri\":\"tcp://b/x\"}}", -1,
	    "must be tcp://HOST[:PORT] and nothing more" },
	{ MIG MIG_MIN ",\"dest_migrate_uri\":\"tcp://b_c\"}}", -1,
	    "and nothing more" },
	{ MIG MIG_MIN ",\"dest_migrate_uri\":\"tcp://[fe80::1\"}}", -1,
	    "an IPv6 address must be in brackets" },
	{ MIG MIG_MIN ",\"dest_migrate_uri\":\"tcp://[zz::1]\"}}", -1,
	    "bad IPv6 address" },
	/* disks */
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":[]}}", -1,
	    "disks must be a JSON object" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":{\"vda\":1}}}", -1,
	    "disks.vda must be a string" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":{\"nvme0\":\"/a\"}}}",
	    -1, "disks: \"nvme0\" is not a disk target" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":{\"vd\":\"/a\"}}}",
	    -1, "is not a disk target" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":{\"vdabc\":\"/a\"}}}",
	    -1, "is not a disk target" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":{\"vdA\":\"/a\"}}}",
	    -1, "is not a disk target" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":{\"vda\":\"a\"}}}",
	    -1, "disks.vda must be an absolute path to a file" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":{\"vda\":\"/\"}}}",
	    -1, "disks.vda must be an absolute path to a file" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":{\"vda\":"
	    "\"/a/../etc/shadow\"}}}", -1, "must not contain \".\" or \"..\"" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":{\"vda\":\"/a/./b\"}}}",
	    -1, "must not contain \".\" or \"..\"" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":{\"vda\":\"/a//b\"}}}",
	    -1, "must not contain \"//\"" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":{\"vda\":\"/a/\"}}}",
	    -1, "must name a file, not a directory" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":{\"vda\":"
	    "\"/a\\nb\"}}}", -1, "disks.vda may only contain printable ASCII" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":{\"vda\":"
	    "\"/caf\\u00e9\"}}}", -1, "may only contain printable ASCII" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":{\"vda\":"
	    "\"/a\\u0000b\"}}}", -1, "without NUL" },
	{ MIG "\"dest_node\":\"b\"," MIG_URI "\"disks\":{\"vda\":\"/1\","
	    "\"vdb\":\"/2\",\"vdc\":\"/3\",\"vdd\":\"/4\",\"vde\":\"/5\","
	    "\"vdf\":\"/6\",\"vdg\":\"/7\",\"vdh\":\"/8\",\"vdi\":\"/9\","
	    "\"vdj\":\"/10\",\"vdk\":\"/11\",\"vdl\":\"/12\",\"vdm\":\"/13\","
	    "\"vdn\":\"/14\",\"vdo\":\"/15\",\"vdp\":\"/16\","
	    "\"vdq\":\"/17\"}}}", -1, "disks has 17 entries; at most 16" },
	/* console log, limits */
	{ MIG MIG_MIN ",\"console_log\":\"log\"}}", -1,
	    "console_log must be an absolute path" },
	{ MIG MIG_MIN ",\"console_log\":\"/var/log/../x\"}}", -1,
	    "console_log must not contain" },
	{ MIG MIG_MIN ",\"max_downtime_ms\":0}}", -1,
	    "max_downtime_ms must be at least 1 ms" },
	{ MIG MIG_MIN ",\"max_downtime_ms\":60001}}", -1,
	    "max_downtime_ms must be at most 60000 ms" },
	{ MIG MIG_MIN ",\"bandwidth_mibps\":-1}}", -1,
	    "bandwidth_mibps must be at least 0 MiB/s" },
	{ MIG MIG_MIN ",\"bandwidth_mibps\":1000001}}", -1,
	    "bandwidth_mibps must be at most 1000000 MiB/s" },
	{ MIG MIG_MIN ",\"timeout_s\":9}}", -1,
	    "timeout_s must be at least 10 seconds" },
	{ MIG MIG_MIN ",\"timeout_s\":86401}}", -1,
	    "timeout_s must be at most 86400 seconds" },
	{ MIG MIG_MIN ",\"timeout_s\":\"60\"}}", -1,
	    "timeout_s must be an integer" },

	/* cancel, finish */
	{ "{" HEAD "\"type\":\"vm.migrate.cancel\",\"args\":{\"force\":1}}", -1,
	    "vm.migrate.cancel args: unknown key \"force\"" },
	{ "{" HEAD "\"type\":\"vm.migrate.finish\",\"args\":{\"x\":1}}", -1,
	    "vm.migrate.finish args: unknown key \"x\"" },
};

static void
test_decode_migrate(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(migrate_cases); i++)
		check_decode(i, migrate_cases[i].json, migrate_cases[i].rc,
		    migrate_cases[i].msg);
}

/* What the decoders keep: defaults, sorted disks, lower-case sha256. */
static void
test_decode_migrate_values(void **state)
{
	struct carve_error err = { 0 };
	const struct command_migrate_args *mg;
	const struct vm_spec *spec;
	struct command cmd;

	(void)state;
	assert_int_equal(command_decode_buf(migrate_cases[2].json,
	    strlen(migrate_cases[2].json), &cmd, &err), 0);
	mg = &cmd.cmd_args.migrate;
	assert_string_equal(mg->mg_dest_node, "b");
	assert_string_equal(mg->mg_dest_libvirt_uri,
	    "qemu+tls://b.example/system");
	assert_null(mg->mg_dest_migrate_uri);
	assert_null(mg->mg_console_log);
	assert_int_equal(mg->mg_ndisks, 0);
	assert_int_equal(mg->mg_max_downtime_ms, 0);
	assert_int_equal(mg->mg_bandwidth_mibps, 0);
	assert_int_equal(mg->mg_timeout_s, VM_MIGRATE_TIMEOUT_DEFAULT_S);
	assert_null(command_spec(&cmd));
	command_clear(&cmd);

	assert_int_equal(command_decode_buf(migrate_cases[3].json,
	    strlen(migrate_cases[3].json), &cmd, &err), 0);
	mg = &cmd.cmd_args.migrate;
	assert_int_equal(mg->mg_ndisks, 3);
	assert_string_equal(mg->mg_disks[0].dp_target, "hdc");
	assert_string_equal(mg->mg_disks[1].dp_target, "vda");
	assert_string_equal(mg->mg_disks[1].dp_path,
	    "/var/lib/carve/disks/x-root.qcow2");
	assert_string_equal(mg->mg_disks[2].dp_target, "vdb");
	assert_string_equal(mg->mg_dest_migrate_uri, "tcp://10.0.0.2:49152");
	assert_int_equal(mg->mg_max_downtime_ms, 60000);
	assert_int_equal(mg->mg_timeout_s, 86400);
	command_clear(&cmd);

	assert_int_equal(command_decode_buf(migrate_cases[1].json,
	    strlen(migrate_cases[1].json), &cmd, &err), 0);
	spec = command_spec(&cmd);
	assert_non_null(spec);
	assert_ptr_equal(spec, &cmd.cmd_args.migrate_prepare.mp_spec);
	assert_string_equal(spec->vs_name, "w");
	assert_int_equal(spec->vs_disk_gib, 2);
	assert_string_equal(spec->vs_image.vi_sha256,
	    "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
	assert_string_equal(cmd.cmd_args.migrate_prepare.mp_source_node, "a");
	command_clear(&cmd);
}

/* Accepted migration commands survive encode -> decode -> copy unchanged. */
static void
test_migrate_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(migrate_cases); i++) {
		struct carve_error err = { 0 };
		struct command a, b, c;
		json_object *enc;
		char *text, *text2, *text3;

		if (migrate_cases[i].rc != 0)
			continue;
		assert_int_equal(command_decode_buf(migrate_cases[i].json,
		    strlen(migrate_cases[i].json), &a, &err), 0);
		enc = command_encode(&a);
		text = jsonx_to_string(enc);
		json_object_put(enc);
		if (command_decode_buf(text, strlen(text), &b, &err) != 0)
			fail_msg("case %zu: encoded form <%s> refused: %s", i, text,
			    err.message);
		enc = command_encode(&b);
		text2 = jsonx_to_string(enc);
		json_object_put(enc);
		assert_string_equal(text, text2);
		command_copy(&c, &b);
		command_clear(&b);
		command_clear(&a);
		enc = command_encode(&c);
		text3 = jsonx_to_string(enc);
		json_object_put(enc);
		assert_string_equal(text, text3);
		command_clear(&c);
		free(text);
		free(text2);
		free(text3);
	}
}

/* Names with each character no XML, shell or path may see. */
static void
test_decode_bad_names(void **state)
{
	static const char *const names[] = {
		"a<b", "a>b", "a&b", "a'b", "a\\\"b", "a/b", "a;b", "a b",
		"a\\\\b", "a$b", "a`b", "a|b", "a\\tb", "a:b", "a%b",
	};
	char json[512];

	(void)state;
	for (size_t i = 0; i < NELEM(names); i++) {
		snprintf(json, sizeof(json), "{" HEAD "\"type\":\"vm.create\","
		    "\"args\":{\"name\":\"%s\",\"vcpus\":1,\"memory_mib\":64}}",
		    names[i]);
		check_decode(i, json, -1, "name may only contain");
	}
}

/* Length limits, in bytes, on either side of each bound. */
static void
test_decode_lengths(void **state)
{
	static const struct {
		const char *key;
		size_t len;
		int rc;
		const char *msg;
	} cases[] = {
		{ "name", IDS_NAME_MAX, 0, NULL },
		{ "name", IDS_NAME_MAX + 1, -1, "name is 65 bytes long" },
		{ "kernel", VM_FILENAME_MAX, 0, NULL },
		{ "kernel", VM_FILENAME_MAX + 1, -1, "kernel is 256 bytes long" },
		{ "initrd", VM_FILENAME_MAX, 0, NULL },
		{ "initrd", VM_FILENAME_MAX + 1, -1, "initrd is 256 bytes long" },
		{ "cmdline", VM_CMDLINE_MAX, 0, NULL },
		{ "cmdline", VM_CMDLINE_MAX + 1, -1, "cmdline is 1025 bytes long" },
		{ "snapshot", IDS_NAME_MAX, 0, NULL },
		{ "snapshot", IDS_NAME_MAX + 1, -1, "name is 65 bytes long" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		char *v = repeat('x', cases[i].len);
		char *json;

		if (strcmp(cases[i].key, "name") == 0)
			json = xasprintf("{" HEAD "\"type\":\"vm.create\",\"args\":"
			    "{\"name\":\"%s\",\"vcpus\":1,\"memory_mib\":64}}", v);
		else if (strcmp(cases[i].key, "snapshot") == 0)
			json = xasprintf("{" HEAD "\"type\":\"vm.snapshot.create\","
			    "\"args\":{\"name\":\"%s\",\"kind\":\"disk\"}}", v);
		else if (strcmp(cases[i].key, "kernel") == 0)
			json = xasprintf("{" HEAD "\"type\":\"vm.create\",\"args\":"
			    "{\"name\":\"a\",\"vcpus\":1,\"memory_mib\":64,"
			    "\"kernel\":\"%s\"}}", v);
		else
			json = xasprintf("{" HEAD "\"type\":\"vm.create\",\"args\":"
			    "{\"name\":\"a\",\"vcpus\":1,\"memory_mib\":64,"
			    "\"kernel\":\"k\",\"%s\":\"%s\"}}", cases[i].key, v);
		check_decode(i, json, cases[i].rc, cases[i].msg);
		free(json);
		free(v);
	}
}

/* command_decode_buf: size limit and the JSON layer underneath. */
static void
test_decode_buf(void **state)
{
	static const char base[] = "{" HEAD "\"type\":\"vm.start\"}";
	char *buf = xmalloc(COMMAND_MAX_BYTES + 2);

	(void)state;
	/* Exactly at the limit (padded with whitespace) is accepted. */
	memset(buf, ' ', COMMAND_MAX_BYTES + 1);
	memcpy(buf, base, strlen(base));
	buf[COMMAND_MAX_BYTES] = '\0';
	check_decode(0, buf, 0, NULL);
	/* One byte more is refused before parsing. */
	buf[COMMAND_MAX_BYTES] = ' ';
	buf[COMMAND_MAX_BYTES + 1] = '\0';
	check_decode(1, buf, -1, "at most 524288 are allowed");
	free(buf);

	check_decode(2, "{" HEAD "\"type\":\"vm.start\"} x", -1,
	    "unexpected data after the value");
	check_decode(3, "{" HEAD "\"type\":\"vm.start\",\"type\":\"vm.destroy\"}",
	    -1, "duplicate key \"type\"");
	check_decode(4, "{" HEAD "\"type\":\"vm.create\",\"args\":{\"name\":\"a\","
	    "\"vcpus\":1,\"memory_mib\":64,\"vcpus\":64}}", -1,
	    "duplicate key \"vcpus\"");
	check_decode(5, "{" HEAD "\"type\":\"vm.stop\",\"args\":{\"force\":false,"
	    "\"\\u0066orce\":true}}", -1, "duplicate key \"force\"");
	check_decode(6, "", -1, "invalid JSON at offset 0");
	check_decode(7, "null", -1, "bare null");
}

static void
test_decode_values(void **state)
{
	struct carve_error err = { 0 };
	struct command cmd;
	const char *full = decode_cases[1].json;
	const struct vm_spec *s = &cmd.cmd_args.create;

	(void)state;
	assert_int_equal(command_decode_buf(decode_cases[0].json,
	    strlen(decode_cases[0].json), &cmd, &err), 0);
	assert_string_equal(cmd.cmd_id, ID1);
	assert_string_equal(cmd.cmd_vm_id, VM1);
	assert_int_equal(cmd.cmd_type, CMD_VM_CREATE);
	assert_string_equal(s->vs_name, "web-1");
	assert_int_equal(s->vs_vcpus, 2);
	assert_int_equal(s->vs_memory_mib, 2048);
	assert_int_equal(s->vs_disk_gib, 0);	/* default */
	assert_null(s->vs_kernel);
	assert_null(s->vs_initrd);
	assert_null(s->vs_cmdline);
	command_clear(&cmd);

	assert_int_equal(command_decode_buf(full, strlen(full), &cmd, &err), 0);
	assert_int_equal(s->vs_vcpus, 1024);
	assert_int_equal(s->vs_memory_mib, 64);
	assert_int_equal(s->vs_disk_gib, 65536);
	assert_string_equal(s->vs_kernel, "vmlinuz-6.1.0+deb12_amd64");
	assert_string_equal(s->vs_initrd, "initrd.img");
	assert_string_equal(s->vs_cmdline,
	    "console=ttyS0 root=/dev/vda ro quiet='x' a=\"b\"");
	command_clear(&cmd);

	/* vm.stop defaults, then explicit values */
	assert_int_equal(command_decode_buf(decode_cases[8].json,
	    strlen(decode_cases[8].json), &cmd, &err), 0);
	assert_int_equal(cmd.cmd_type, CMD_VM_STOP);
	assert_false(cmd.cmd_args.stop.force);
	assert_int_equal(cmd.cmd_args.stop.timeout_s, VM_STOP_TIMEOUT_DEFAULT);
	command_clear(&cmd);
	assert_int_equal(command_decode_buf(decode_cases[9].json,
	    strlen(decode_cases[9].json), &cmd, &err), 0);
	assert_true(cmd.cmd_args.stop.force);
	assert_int_equal(cmd.cmd_args.stop.timeout_s, 3600);
	command_clear(&cmd);

	/* upper-case UUIDs come out lower-case */
	assert_int_equal(command_decode_buf(decode_cases[11].json,
	    strlen(decode_cases[11].json), &cmd, &err), 0);
	assert_string_equal(cmd.cmd_id, ID1);
	assert_string_equal(cmd.cmd_vm_id, VM1);
	command_clear(&cmd);
	assert_false(error_isset(&err));
}

/* ------------------------------------------------------------ image */

#define SUM "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define KEY "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB+x/y user@host"
#define IMG(url, sum, fmt) "\"image\":{\"url\":\"" url "\",\"sha256\":\"" \
	sum "\",\"format\":\"" fmt "\"}"
#define CREATE(extra) "{\"name\":\"a\",\"vcpus\":1,\"memory_mib\":64," \
	extra "}"

static const struct decode_case image_cases[] = {
	/* accepted */
	{ CREATE(IMG("https://img.example/d12.qcow2", SUM, "qcow2")), 0, NULL },
	{ CREATE(IMG("http://10.0.0.1:8080/a?b=c", SUM, "raw")), 0, NULL },
	{ CREATE(IMG("file:///var/lib/images/base.qcow2", SUM, "qcow2")
	    ",\"ssh_authorized_keys\":[\"" KEY "\",\"ecdsa-sha2-nistp256 "
	    "AAAA x\",\"sk-ssh-ed25519@openssh.com AAAA\"],"
	    "\"user_data\":\"#cloud-config\\npackages: [\\\"nginx\\\"]\\n"
	    "\\tx: \\u00e9\\r\\n\",\"disk_gib\":10"), 0, NULL },
	{ CREATE(IMG("file:///b", SUM, "qcow2") ",\"ssh_authorized_keys\":[]"),
	    0, NULL },
	{ CREATE("\"image\":null"), 0, NULL },
	/* the image */
	{ CREATE(IMG("ftp://img.example/d.qcow2", SUM, "qcow2")), -1,
	    "must start with https://, http:// or file://" },
	{ CREATE(IMG("HTTPS://img.example/d.qcow2", SUM, "qcow2")), -1,
	    "must start with https://" },
	{ CREATE(IMG("img.example/d.qcow2", SUM, "qcow2")), -1,
	    "must start with https://" },
	{ CREATE(IMG("https:///d.qcow2", SUM, "qcow2")), -1,
	    "image.url must name a host" },
	{ CREATE(IMG("https://", SUM, "qcow2")), -1,
	    "image.url must name a host" },
	{ CREATE(IMG("file://relative/base.qcow2", SUM, "qcow2")), -1,
	    "must name an absolute path" },
	{ CREATE(IMG("file://", SUM, "qcow2")), -1,
	    "must name an absolute path" },
	{ CREATE(IMG("file:///", SUM, "qcow2")), -1,
	    "must name an absolute path" },
	{ CREATE(IMG("file:///var/../etc/shadow", SUM, "raw")), -1,
	    "segments" },
	{ CREATE(IMG("file:///var/./x", SUM, "raw")), -1, "segments" },
	{ CREATE(IMG("file:///var/..", SUM, "raw")), -1, "segments" },
	{ CREATE(IMG("file:///var//x", SUM, "raw")), -1, "\"//\"" },
	{ CREATE(IMG("file:///var/x/", SUM, "raw")), -1, "not a directory" },
	{ CREATE(IMG("file:///var/a%2e", SUM, "raw")), -1, "'%'" },
	{ CREATE(IMG("https://a.example/x y", SUM, "raw")), -1,
	    "found byte 0x20 at offset 19" },
	{ CREATE(IMG("https://a.example/\\u00e9", SUM, "raw")), -1,
	    "found byte 0xc3" },
	{ CREATE(IMG("https://a.example/\\n", SUM, "raw")), -1,
	    "found byte 0x0a" },
	{ CREATE(IMG("https://a/x", "9f86d081", "qcow2")), -1,
	    "image.sha256 must be 64 hexadecimal digits" },
	{ CREATE(IMG("https://a/x", SUM "0", "qcow2")), -1,
	    "image.sha256 must be 64 hexadecimal digits" },
	{ CREATE(IMG("https://a/x",
	    "g86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	    "qcow2")), -1, "image.sha256 must be 64 hexadecimal digits" },
	{ CREATE(IMG("https://a/x", SUM, "vmdk")), -1,
	    "image.format \"vmdk\" must be \"qcow2\" or \"raw\"" },
	{ CREATE(IMG("https://a/x", SUM, "QCOW2")), -1, "image.format" },
	{ CREATE("\"image\":{\"url\":\"https://a/x\",\"sha256\":\"" SUM "\"}"),
	    -1, "format is required" },
	{ CREATE("\"image\":{\"url\":\"https://a/x\",\"format\":\"raw\"}"),
	    -1, "sha256 is required" },
	{ CREATE("\"image\":{\"sha256\":\"" SUM "\",\"format\":\"raw\"}"),
	    -1, "url is required" },
	{ CREATE(IMG("https://a/x", SUM, "raw") ",\"image2\":1"), -1,
	    "image2" },
	{ CREATE("\"image\":{\"url\":\"https://a/x\",\"sha256\":\"" SUM
	    "\",\"format\":\"raw\",\"size\":1}"), -1, "size" },
	{ CREATE("\"image\":\"https://a/x\""), -1, "image must be" },
	/* ssh keys */
	{ CREATE(IMG("https://a/x", SUM, "raw") ",\"ssh_authorized_keys\":"
	    "[\"" KEY "\\n" KEY "\"]"), -1,
	    "ssh_authorized_keys[0] must be one line" },
	{ CREATE(IMG("https://a/x", SUM, "raw") ",\"ssh_authorized_keys\":"
	    "[\"" KEY "\",\"ssh-rsa AAAA a\\\"b\"]"), -1,
	    "ssh_authorized_keys[1] must be one line" },
	{ CREATE(IMG("https://a/x", SUM, "raw") ",\"ssh_authorized_keys\":"
	    "[\"rsa AAAA\"]"), -1, "starting with ssh-, ecdsa- or sk-" },
	{ CREATE(IMG("https://a/x", SUM, "raw") ",\"ssh_authorized_keys\":"
	    "[\"ssh-rsa\"]"), -1, "TYPE KEY [COMMENT]" },
	{ CREATE(IMG("https://a/x", SUM, "raw") ",\"ssh_authorized_keys\":"
	    "[1]"), -1, "ssh_authorized_keys[0] must be a string" },
	{ CREATE(IMG("https://a/x", SUM, "raw") ",\"ssh_authorized_keys\":"
	    "\"" KEY "\""), -1, "must be an array of strings" },
	{ CREATE("\"ssh_authorized_keys\":[\"" KEY "\"]"), -1,
	    "ssh_authorized_keys requires image" },
	/* user data */
	{ CREATE(IMG("https://a/x", SUM, "raw") ",\"user_data\":\"\""), -1,
	    "user_data must not be empty" },
	{ CREATE(IMG("https://a/x", SUM, "raw") ",\"user_data\":\"a\\u0001\""),
	    -1, "control characters (found byte 0x01 at offset 1)" },
	{ CREATE(IMG("https://a/x", SUM, "raw") ",\"user_data\":\"a\\u0000\""),
	    -1, "user_data" },
	{ CREATE(IMG("https://a/x", SUM, "raw") ",\"user_data\":7"), -1,
	    "user_data must be a string" },
	{ CREATE("\"user_data\":\"#cloud-config\""), -1,
	    "user_data requires image" },
};

static void
test_decode_image(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(image_cases); i++) {
		struct carve_error err = { 0 };
		struct vm_spec spec, again;
		json_object *o = parse(image_cases[i].json), *enc;
		int rc;

		memset(&spec, 0xa5, sizeof(spec));
		rc = vm_spec_decode(o, &spec, &err);
		json_object_put(o);
		if (rc != image_cases[i].rc)
			fail_msg("case %zu <%s>: rc %d want %d (%s)", i,
			    image_cases[i].json, rc, image_cases[i].rc,
			    err.message);
		if (rc == -1) {
			if (err.code != CARVE_EINVAL)
				fail_msg("case %zu: code %d", i, err.code);
			if (spec.vs_image.vi_url != NULL ||
			    spec.vs_ssh_keys != NULL || spec.vs_user_data != NULL)
				fail_msg("case %zu: out not cleared", i);
			if (strstr(err.message, image_cases[i].msg) == NULL)
				fail_msg("case %zu <%s>: message \"%s\" lacks "
				    "\"%s\"", i, image_cases[i].json, err.message,
				    image_cases[i].msg);
			continue;
		}
		/* encode -> decode gives the same spec */
		enc = vm_spec_encode(&spec);
		if (vm_spec_decode(enc, &again, &err) != 0)
			fail_msg("case %zu: encoded form refused: %s", i,
			    err.message);
		json_object_put(enc);
		assert_true(spec_cloud_equal(&spec, &again));
		vm_spec_clear(&again);
		vm_spec_clear(&spec);
	}
}

static void
test_decode_image_values(void **state)
{
	struct carve_error err = { 0 };
	struct vm_spec spec, copy;
	json_object *o;
	char *big, *js;

	(void)state;
	o = parse(image_cases[2].json);
	assert_int_equal(vm_spec_decode(o, &spec, &err), 0);
	json_object_put(o);
	assert_string_equal(spec.vs_image.vi_url,
	    "file:///var/lib/images/base.qcow2");
	assert_string_equal(spec.vs_image.vi_sha256, SUM);
	assert_int_equal(spec.vs_image.vi_format, VM_IMAGE_QCOW2);
	assert_int_equal(spec.vs_nssh_keys, 3);
	assert_string_equal(spec.vs_ssh_keys[0], KEY);
	assert_string_equal(spec.vs_user_data,
	    "#cloud-config\npackages: [\"nginx\"]\n\tx: \xc3\xa9\r\n");
	assert_int_equal(spec.vs_disk_gib, 10);
	vm_spec_copy(&copy, &spec);
	vm_spec_clear(&spec);
	assert_string_equal(copy.vs_ssh_keys[2], "sk-ssh-ed25519@openssh.com AAAA");
	vm_spec_clear(&copy);

	/* upper-case sha256 is kept lower-case (it names the cache file) */
	o = parse(CREATE(IMG("https://a/x",
	    "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
	    "raw")));
	assert_int_equal(vm_spec_decode(o, &spec, &err), 0);
	json_object_put(o);
	assert_string_equal(spec.vs_image.vi_sha256, SUM);
	assert_int_equal(spec.vs_image.vi_format, VM_IMAGE_RAW);
	vm_spec_clear(&spec);

	/* 32 keys are fine, 33 are not */
	for (int n = 32; n <= 33; n++) {
		char *keys = xstrdup("");

		for (int i = 0; i < n; i++) {
			char *k = xasprintf("%s%s\"" KEY "\"", keys,
			    i ? "," : "");
			free(keys);
			keys = k;
		}
		js = xasprintf(CREATE(IMG("https://a/x", SUM, "raw")
		    ",\"ssh_authorized_keys\":[%s]"), keys);
		o = parse(js);
		error_clear(&err);
		if (n == 32) {
			assert_int_equal(vm_spec_decode(o, &spec, &err), 0);
			assert_int_equal(spec.vs_nssh_keys, 32);
			vm_spec_clear(&spec);
		} else {
			assert_int_equal(vm_spec_decode(o, &spec, &err), -1);
			assert_non_null(strstr(err.message,
			    "has 33 keys; at most 32 are allowed"));
		}
		json_object_put(o);
		free(js);
		free(keys);
	}

	/* a key of 8 KiB is fine, one byte more is not */
	for (size_t len = VM_SSH_KEY_MAX; len <= VM_SSH_KEY_MAX + 1; len++) {
		char *k = repeat('A', len);

		memcpy(k, "ssh-rsa ", 8);
		js = xasprintf(CREATE(IMG("https://a/x", SUM, "raw")
		    ",\"ssh_authorized_keys\":[\"%s\"]"), k);
		o = parse(js);
		error_clear(&err);
		assert_int_equal(vm_spec_decode(o, &spec, &err),
		    len == VM_SSH_KEY_MAX ? 0 : -1);
		if (len > VM_SSH_KEY_MAX)
			assert_non_null(strstr(err.message,
			    "ssh_authorized_keys[0] is 8193 bytes long"));
		vm_spec_clear(&spec);
		json_object_put(o);
		free(js);
		free(k);
	}

	/* user_data: 64 KiB is fine, one byte more is not */
	for (size_t len = VM_USER_DATA_MAX; len <= VM_USER_DATA_MAX + 1; len++) {
		big = repeat('y', len);
		js = xasprintf(CREATE(IMG("https://a/x", SUM, "raw")
		    ",\"user_data\":\"%s\""), big);
		o = parse(js);
		error_clear(&err);
		assert_int_equal(vm_spec_decode(o, &spec, &err),
		    len == VM_USER_DATA_MAX ? 0 : -1);
		if (len > VM_USER_DATA_MAX)
			assert_non_null(strstr(err.message,
			    "user_data is 65537 bytes long"));
		vm_spec_clear(&spec);
		json_object_put(o);
		free(js);
		free(big);
	}
	/* invalid UTF-8 reaching the decoder without jsonx_parse */
	o = parse(CREATE(IMG("https://a/x", SUM, "raw")));
	json_object_object_add(o, "user_data",
	    json_object_new_string("ok \xc3\x28"));
	error_clear(&err);
	assert_int_equal(vm_spec_decode(o, &spec, &err), -1);
	assert_non_null(strstr(err.message, "user_data is not valid UTF-8"));
	json_object_put(o);
}

/* The largest valid vm.create still fits the command limit. */
static void
test_decode_image_max(void **state)
{
	struct carve_error err = { 0 };
	struct command cmd;
	json_object *o, *enc;
	char *k = repeat('A', VM_SSH_KEY_MAX), *ud = repeat('"',
	    VM_USER_DATA_MAX), *keys = xstrdup(""), *js, *text;

	(void)state;
	memcpy(k, "ssh-rsa ", 8);
	for (int i = 0; i < VM_SSH_KEYS_MAX; i++) {
		char *n = xasprintf("%s%s\"%s\"", keys, i ? "," : "", k);
		free(keys);
		keys = n;
	}
	free(ud);
	ud = repeat('x', VM_USER_DATA_MAX);
	js = xasprintf("{" HEAD "\"type\":\"vm.create\",\"args\":"
	    CREATE(IMG("https://a/x", SUM, "raw") ",\"ssh_authorized_keys\":"
	    "[%s],\"user_data\":\"%s\"") "}", keys, ud);
	assert_int_equal(command_decode_buf(js, strlen(js), &cmd, &err), 0);
	enc = command_encode(&cmd);
	text = jsonx_to_string(enc);
	assert_true(strlen(text) < COMMAND_MAX_BYTES);
	json_object_put(enc);
	command_clear(&cmd);
	free(text);
	free(js);
	free(keys);
	free(k);
	free(ud);
	(void)o;
}

/* vm.resize: what was given is set, what was not stays 0 and is not sent. */
static void
test_decode_resize(void **state)
{
	static const struct {
		const char *args;
		unsigned vcpus;
		uint64_t memory_mib;
		const char *encoded;
	} cases[] = {
		{ "{\"vcpus\":3}", 3, 0, "{\"vcpus\":3}" },
		{ "{\"memory_mib\":1536}", 0, 1536, "{\"memory_mib\":1536}" },
		{ "{\"memory_mib\":128,\"vcpus\":2}", 2, 128,
		    "{\"vcpus\":2,\"memory_mib\":128}" },
		{ "{\"vcpus\":8,\"memory_mib\":null}", 8, 0, "{\"vcpus\":8}" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct carve_error err = { 0 };
		struct command cmd;
		json_object *enc, *args;
		char *js = xasprintf("{" HEAD "\"type\":\"vm.resize\",\"args\":%s}",
		    cases[i].args);

		assert_int_equal(command_decode_buf(js, strlen(js), &cmd, &err),
		    0);
		assert_int_equal(cmd.cmd_type, CMD_VM_RESIZE);
		assert_int_equal(cmd.cmd_args.resize.vcpus, cases[i].vcpus);
		assert_int_equal(cmd.cmd_args.resize.memory_mib,
		    cases[i].memory_mib);
		enc = command_encode(&cmd);
		assert_true(json_object_object_get_ex(enc, "args", &args));
		assert_string_equal(json_object_to_json_string_ext(args,
		    JSON_C_TO_STRING_PLAIN), cases[i].encoded);
		json_object_put(enc);
		command_clear(&cmd);
		free(js);
	}
}

/* vm_spec_decode on its own (the admin API uses it directly). */
static void
test_vm_spec(void **state)
{
	struct carve_error err = { 0 };
	struct vm_spec spec, copy;
	json_object *o, *enc;

	(void)state;
	o = parse("{\"name\":\"db\",\"vcpus\":4,\"memory_mib\":8192,"
	    "\"disk_gib\":100,\"kernel\":\"vmlinuz\",\"cmdline\":\"quiet\"}");
	assert_int_equal(vm_spec_decode(o, &spec, &err), 0);
	json_object_put(o);

	vm_spec_copy(&copy, &spec);
	vm_spec_clear(&spec);
	assert_null(spec.vs_kernel);
	assert_string_equal(copy.vs_name, "db");
	assert_string_equal(copy.vs_kernel, "vmlinuz");
	assert_null(copy.vs_initrd);
	assert_string_equal(copy.vs_cmdline, "quiet");

	enc = vm_spec_encode(&copy);
	assert_int_equal(vm_spec_decode(enc, &spec, &err), 0);
	assert_string_equal(spec.vs_name, copy.vs_name);
	assert_int_equal(spec.vs_vcpus, 4);
	assert_int_equal(spec.vs_memory_mib, 8192);
	assert_int_equal(spec.vs_disk_gib, 100);
	assert_string_equal(spec.vs_cmdline, "quiet");
	json_object_put(enc);
	vm_spec_clear(&spec);
	vm_spec_clear(&copy);
	vm_spec_clear(NULL);

	assert_int_equal(vm_spec_decode(NULL, &spec, &err), -1);
	assert_int_equal(err.code, CARVE_EINVAL);
	assert_non_null(strstr(err.message, "vm.create args must be a JSON object"));
}

/* Every accepted case survives encode -> text -> decode unchanged. */
static void
test_command_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(decode_cases); i++) {
		struct carve_error err = { 0 };
		struct command a, b, c;
		json_object *enc;
		char *text, *text2;

		if (decode_cases[i].rc != 0)
			continue;
		assert_int_equal(command_decode_buf(decode_cases[i].json,
		    strlen(decode_cases[i].json), &a, &err), 0);
		enc = command_encode(&a);
		text = jsonx_to_string(enc);
		json_object_put(enc);
		if (command_decode_buf(text, strlen(text), &b, &err) != 0)
			fail_msg("case %zu: encoded form <%s> refused: %s", i, text,
			    err.message);
		if (!command_equal(&a, &b))
			fail_msg("case %zu: round trip differs: <%s>", i, text);
		/* A deep copy outlives its source. */
		command_copy(&c, &b);
		command_clear(&b);
		enc = command_encode(&c);
		text2 = jsonx_to_string(enc);
		assert_string_equal(text, text2);
		json_object_put(enc);
		command_clear(&a);
		command_clear(&c);
		free(text);
		free(text2);
	}
	command_clear(NULL);
}

static void
test_command_encode_form(void **state)
{
	struct carve_error err = { 0 };
	struct command cmd;
	json_object *enc;
	const char *js;
	char *text;

	(void)state;
	assert_int_equal(command_decode_buf(decode_cases[10].json,
	    strlen(decode_cases[10].json), &cmd, &err), 0);
	enc = command_encode(&cmd);
	text = jsonx_to_string(enc);
	assert_string_equal(text, "{\"id\":\"" ID1 "\",\"type\":\"vm.stop\","
	    "\"vm_id\":\"" VM1 "\",\"args\":{\"force\":false,\"timeout_s\":1}}");
	free(text);
	json_object_put(enc);
	command_clear(&cmd);

	/* Snapshot args: the kind always, quiesce always for create. */
	js = SNAP("create", "{\"kind\":\"disk\",\"name\":\"s1\"}");
	assert_int_equal(command_decode_buf(js, strlen(js), &cmd, &err), 0);
	enc = command_encode(&cmd);
	text = jsonx_to_string(enc);
	assert_string_equal(text, "{\"id\":\"" ID1 "\",\"type\":"
	    "\"vm.snapshot.create\",\"vm_id\":\"" VM1 "\",\"args\":{\"name\":"
	    "\"s1\",\"kind\":\"disk\",\"quiesce\":false}}");
	free(text);
	json_object_put(enc);
	command_clear(&cmd);
	js = SNAP("delete", "{\"name\":\"s1\"}");
	assert_int_equal(command_decode_buf(js, strlen(js), &cmd, &err), 0);
	enc = command_encode(&cmd);
	text = jsonx_to_string(enc);
	assert_string_equal(text, "{\"id\":\"" ID1 "\",\"type\":"
	    "\"vm.snapshot.delete\",\"vm_id\":\"" VM1 "\",\"args\":{\"name\":"
	    "\"s1\"}}");
	free(text);
	json_object_put(enc);
	command_clear(&cmd);
}

/* command_snapshot_create_decode alone (the admin API's body). */
static void
test_snapshot_args(void **state)
{
	struct carve_error err = { 0 };
	struct command_snapshot_args a;
	json_object *o, *enc;

	(void)state;
	o = parse("{\"name\":\"pre\",\"kind\":\"disk\",\"quiesce\":true}");
	assert_int_equal(command_snapshot_create_decode(o, &a, &err), 0);
	json_object_put(o);
	assert_string_equal(a.name, "pre");
	assert_int_equal(a.kind, VM_SNAPSHOT_DISK);
	assert_true(a.quiesce);
	enc = command_snapshot_create_encode(&a);
	memset(&a, 0, sizeof(a));
	assert_int_equal(command_snapshot_create_decode(enc, &a, &err), 0);
	json_object_put(enc);
	assert_string_equal(a.name, "pre");
	assert_true(a.quiesce);

	memset(&a, 0x5a, sizeof(a));
	assert_int_equal(command_snapshot_create_decode(NULL, &a, &err), -1);
	assert_int_equal(err.code, CARVE_EINVAL);
	assert_non_null(strstr(err.message,
	    "vm.snapshot.create args must be a JSON object"));
}

/* ------------------------------------------------------------ networks */

#define NETS(v) CREATE("\"networks\":" v)
#define N64 "n123456789012345678901234567890123456789012345678901234567890123"
#define MACSYN(i, m) "networks[" i "]: mac \"" m "\" must be six pairs of " \
	"hexadecimal digits separated by ':' (e.g. 52:54:00:12:34:56)"
#define ONEOF(i) "networks[" i "] must have exactly one of \"network\" and " \
	"\"bridge\""

struct nic_case {
	const char *json;	/* vm.create args */
	int rc;
	/* rc 0: the encoded "networks" (NULL: absent); -1: the message */
	const char *want;
};

static const struct nic_case nic_cases[] = {
	/* accepted, and how they encode */
	{ NETS("[{\"network\":\"default\"}]"), 0, "[{\"network\":\"default\"}]" },
	{ NETS("[{\"bridge\":\"br0\",\"mac\":\"52:54:00:AB:CD:EF\"}]"), 0,
	    "[{\"bridge\":\"br0\",\"mac\":\"52:54:00:ab:cd:ef\"}]" },
	{ NETS("[{\"mac\":\"02:00:00:00:00:01\",\"network\":\"n\"}]"), 0,
	    "[{\"network\":\"n\",\"mac\":\"02:00:00:00:00:01\"}]" },
	{ NETS("[{\"network\":\"n\",\"mac\":\"fe:ff:ff:ff:ff:ff\"}]"), 0,
	    "[{\"network\":\"n\",\"mac\":\"fe:ff:ff:ff:ff:ff\"}]" },
	{ NETS("[{\"network\":\"a\"},{\"bridge\":\"b\"},{\"network\":\"c\"}]"),
	    0, "[{\"network\":\"a\"},{\"bridge\":\"b\"},{\"network\":\"c\"}]" },
	/* two NICs on one network: fine, as long as their MACs differ */
	{ NETS("[{\"network\":\"a\"},{\"network\":\"a\"}]"), 0,
	    "[{\"network\":\"a\"},{\"network\":\"a\"}]" },
	{ NETS("[{\"network\":\"" N64 "\"},{\"bridge\":\"b23456789012345\"}]"),
	    0, "[{\"network\":\"" N64 "\"},{\"bridge\":\"b23456789012345\"}]" },
	{ NETS("[{\"network\":\"a\"},{\"network\":\"b\"},{\"network\":\"c\"},"
	    "{\"network\":\"d\"},{\"network\":\"e\"},{\"network\":\"f\"},"
	    "{\"network\":\"g\"},{\"network\":\"h\"}]"), 0,
	    "[{\"network\":\"a\"},{\"network\":\"b\"},{\"network\":\"c\"},"
	    "{\"network\":\"d\"},{\"network\":\"e\"},{\"network\":\"f\"},"
	    "{\"network\":\"g\"},{\"network\":\"h\"}]" },
	{ NETS("[]"), 0, NULL },
	{ NETS("null"), 0, NULL },
	{ CREATE("\"disk_gib\":1"), 0, NULL },

	/* the list */
	{ NETS("{\"network\":\"a\"}"), -1, "networks must be an array of objects" },
	{ NETS("\"default\""), -1, "networks must be an array of objects" },
	{ NETS("[{\"network\":\"a\"},{\"network\":\"b\"},{\"network\":\"c\"},"
	    "{\"network\":\"d\"},{\"network\":\"e\"},{\"network\":\"f\"},"
	    "{\"network\":\"g\"},{\"network\":\"h\"},{\"network\":\"i\"}]"), -1,
	    "networks has 9 entries; at most 8 are allowed" },
	/* an entry's shape */
	{ NETS("[1]"), -1, "networks[0] must be a JSON object" },
	{ NETS("[{\"network\":\"a\"},null]"), -1,
	    "networks[1] must be a JSON object" },
	{ NETS("[{}]"), -1, ONEOF("0") },
	{ NETS("[{\"network\":\"a\",\"bridge\":\"b\"}]"), -1, ONEOF("0") },
	{ NETS("[{\"mac\":\"52:54:00:00:00:01\"}]"), -1, ONEOF("0") },
	{ NETS("[{\"network\":\"a\",\"vlan\":5}]"), -1,
	    "networks[0]: unknown key \"vlan\"" },
	{ NETS("[{\"network\":\"a\",\"Mac\":\"52:54:00:00:00:01\"}]"), -1,
	    "networks[0]: unknown key \"Mac\"" },
	/* names */
	{ NETS("[{\"network\":5}]"), -1, "networks[0]: network must be a string" },
	{ NETS("[{\"network\":null}]"), -1, "networks[0]: network is required" },
	{ NETS("[{\"network\":\"\"}]"), -1,
	    "networks[0]: network must not be empty" },
	{ NETS("[{\"network\":\"a b\"}]"), -1, "networks[0]: network may only "
	    "contain letters, digits, '.', '_' and '-' (found byte 0x20 at "
	    "offset 1)" },
	{ NETS("[{\"network\":\"-a\"}]"), -1,
	    "networks[0]: network must start with a letter or digit" },
	{ NETS("[{\"network\":\"" N64 "x\"}]"), -1,
	    "networks[0]: network is 65 bytes long; at most 64 are allowed" },
	{ NETS("[{\"network\":\"a\"},{\"bridge\":\"\"}]"), -1,
	    "networks[1]: bridge must not be empty" },
	{ NETS("[{\"bridge\":\"br0;reboot\"}]"), -1, "networks[0]: bridge may "
	    "only contain letters, digits, '.', '_' and '-' (found byte 0x3b at "
	    "offset 3)" },
	{ NETS("[{\"bridge\":\"<br/>\"}]"), -1,
	    "networks[0]: bridge must start with a letter or digit" },
	{ NETS("[{\"bridge\":\"b234567890123456\"}]"), -1,
	    "networks[0]: bridge is 16 bytes long; a bridge name has at most 15" },
	{ NETS("[{\"bridge\":\"a\\u0000b\"}]"), -1,
	    "networks[0]: bridge must not contain NUL characters" },
	/* MACs */
	{ NETS("[{\"network\":\"a\",\"mac\":5}]"), -1,
	    "networks[0]: mac must be a string" },
	{ NETS("[{\"network\":\"a\",\"mac\":\"\"}]"), -1, MACSYN("0", "") },
	{ NETS("[{\"network\":\"a\",\"mac\":\"52:54:00:00:00\"}]"), -1,
	    MACSYN("0", "52:54:00:00:00") },
	{ NETS("[{\"network\":\"a\",\"mac\":\"52:54:00:00:00:001\"}]"), -1,
	    MACSYN("0", "52:54:00:00:00:001") },
	{ NETS("[{\"network\":\"a\",\"mac\":\"52-54-00-00-00-01\"}]"), -1,
	    MACSYN("0", "52-54-00-00-00-01") },
	{ NETS("[{\"network\":\"a\",\"mac\":\"52:54:00:00:00:0g\"}]"), -1,
	    MACSYN("0", "52:54:00:00:00:0g") },
	{ NETS("[{\"network\":\"a\",\"mac\":\"525:4:00:00:00:01\"}]"), -1,
	    MACSYN("0", "525:4:00:00:00:01") },
	{ NETS("[{\"network\":\"a\",\"mac\":\" 52:54:00:00:00:1\"}]"), -1,
	    MACSYN("0", " 52:54:00:00:00:1") },
	{ NETS("[{\"network\":\"a\",\"mac\":\"+2:54:00:00:00:01\"}]"), -1,
	    MACSYN("0", "+2:54:00:00:00:01") },
	{ NETS("[{\"network\":\"a\",\"mac\":\"52:54:00:00:0\\\"\\n\"}]"), -1,
	    MACSYN("0", "52:54:00:00:0??") },
	{ NETS("[{\"network\":\"a\",\"mac\":\"01:00:5e:00:00:01\"}]"), -1,
	    "networks[0]: mac \"01:00:5e:00:00:01\" is a multicast address (the "
	    "first octet must be even)" },
	{ NETS("[{\"network\":\"a\",\"mac\":\"FF:FF:FF:FF:FF:FF\"}]"), -1,
	    "networks[0]: mac \"FF:FF:FF:FF:FF:FF\" is a multicast address (the "
	    "first octet must be even)" },
	{ NETS("[{\"network\":\"a\",\"mac\":\"00:00:00:00:00:00\"}]"), -1,
	    "networks[0]: mac must not be all zero" },
	{ NETS("[{\"network\":\"a\",\"mac\":\"52:54:00:aa:00:01\"},"
	    "{\"network\":\"b\"},{\"bridge\":\"c\",\"mac\":\"52:54:00:AA:00:01\"}]"),
	    -1, "networks[2]: mac 52:54:00:aa:00:01 is also the mac of "
	    "networks[0]" },
};

static void
test_decode_networks(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(nic_cases); i++) {
		const struct nic_case *c = &nic_cases[i];
		struct carve_error err = { 0 };
		struct vm_spec spec, again, copy;
		json_object *o = parse(c->json), *enc, *nets;
		int rc;

		memset(&spec, 0xa5, sizeof(spec));
		rc = vm_spec_decode(o, &spec, &err);
		json_object_put(o);
		if (rc != c->rc)
			fail_msg("case %zu <%s>: rc %d want %d (%s)", i, c->json,
			    rc, c->rc, err.message);
		if (rc == -1) {
			assert_int_equal(err.code, CARVE_EINVAL);
			if (spec.vs_nnics != 0)
				fail_msg("case %zu: out not cleared", i);
			if (strcmp(err.message, c->want) != 0)
				fail_msg("case %zu <%s>:\n got  \"%s\"\n want \"%s\"",
				    i, c->json, err.message, c->want);
			continue;
		}
		enc = vm_spec_encode(&spec);
		if (!json_object_object_get_ex(enc, "networks", &nets))
			nets = NULL;
		if (c->want == NULL && nets != NULL)
			fail_msg("case %zu: networks encoded: %s", i,
			    json_object_to_json_string(nets));
		if (c->want != NULL) {
			if (nets == NULL)
				fail_msg("case %zu: networks not encoded", i);
			assert_string_equal(json_object_to_json_string_ext(nets,
			    JSON_C_TO_STRING_PLAIN), c->want);
		}
		/* encode -> decode -> the same NICs; a copy too */
		if (vm_spec_decode(enc, &again, &err) != 0)
			fail_msg("case %zu: encoded form refused: %s", i,
			    err.message);
		json_object_put(enc);
		assert_true(spec_nics_equal(&spec, &again));
		vm_spec_copy(&copy, &again);
		vm_spec_clear(&again);
		assert_true(spec_nics_equal(&spec, &copy));
		vm_spec_clear(&copy);
		vm_spec_clear(&spec);
	}
}

/*
 * The derived MAC is part of the contract (a control plane may compute it
 * ahead): pinned values for a fixed VM id, the same for the id in upper
 * case, different per index and per VM, always a valid unicast address.
 */
static void
test_mac_derive(void **state)
{
	static const char *const want[] = {
		"52:54:00:ac:73:65", "52:54:00:95:d1:a1", "52:54:00:9f:d0:ab",
	};
	char mac[VM_NICS_MAX][VM_MAC_LEN + 1], again[VM_MAC_LEN + 1];
	char norm[VM_MAC_LEN + 1];
	struct carve_error err = { 0 };

	(void)state;
	for (size_t i = 0; i < NELEM(want); i++) {
		vm_mac_derive(VM1, i, mac[i]);
		assert_string_equal(mac[i], want[i]);
		vm_mac_derive("6F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9", i, again);
		assert_string_equal(again, want[i]);
	}
	for (size_t i = 0; i < VM_NICS_MAX; i++) {
		vm_mac_derive(VM1, i, mac[i]);
		assert_int_equal(strlen(mac[i]), VM_MAC_LEN);
		assert_int_equal(strncmp(mac[i], "52:54:00:", 9), 0);
		assert_int_equal(vm_mac_parse(mac[i], "mac", norm, &err), 0);
		assert_string_equal(norm, mac[i]);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(mac[i], mac[j]);
		vm_mac_derive(ID1, i, again);
		assert_string_not_equal(again, mac[i]);
	}
}

/* Derived MACs fill the gaps only; the result lists every NIC's. */
static void
test_derive_macs_and_interfaces(void **state)
{
	struct carve_error err = { 0 };
	struct vm_spec spec;
	json_object *o, *ifs;
	char m0[VM_MAC_LEN + 1], m2[VM_MAC_LEN + 1], *want;

	(void)state;
	o = parse(NETS("[{\"network\":\"default\"},{\"bridge\":\"br0\","
	    "\"mac\":\"52:54:00:0A:0B:0C\"},{\"network\":\"other\"}]"));
	assert_int_equal(vm_spec_decode(o, &spec, &err), 0);
	json_object_put(o);
	assert_int_equal(spec.vs_nnics, 3);
	assert_string_equal(spec.vs_nics[0].vn_mac, "");
	vm_spec_derive_macs(&spec, VM1);
	vm_mac_derive(VM1, 0, m0);
	vm_mac_derive(VM1, 2, m2);
	assert_string_equal(spec.vs_nics[0].vn_mac, m0);
	assert_string_equal(spec.vs_nics[1].vn_mac, "52:54:00:0a:0b:0c");
	assert_string_equal(spec.vs_nics[2].vn_mac, m2);
	ifs = vm_nics_encode(spec.vs_nics, spec.vs_nnics);
	want = xasprintf("[{\"network\":\"default\",\"mac\":\"%s\"},"
	    "{\"bridge\":\"br0\",\"mac\":\"52:54:00:0a:0b:0c\"},"
	    "{\"network\":\"other\",\"mac\":\"%s\"}]", m0, m2);
	assert_string_equal(json_object_to_json_string_ext(ifs,
	    JSON_C_TO_STRING_PLAIN), want);
	free(want);
	json_object_put(ifs);
	ifs = vm_nics_encode(NULL, 0);
	assert_string_equal(json_object_to_json_string_ext(ifs,
	    JSON_C_TO_STRING_PLAIN), "[]");
	json_object_put(ifs);
	assert_string_equal(vm_nic_kind_name(VM_NIC_NETWORK), "network");
	assert_string_equal(vm_nic_kind_name(VM_NIC_BRIDGE), "bridge");
	assert_string_equal(vm_nic_kind_name((enum vm_nic_kind)7), "unknown");
	vm_spec_clear(&spec);
}

/* ------------------------------------------------------------ data disks */

#define DISKS(list) CREATE("\"data_disks\":" list)

static const struct decode_case data_disk_cases[] = {
	/* accepted */
	{ DISKS("[{\"size_gib\":1}]"), 0, NULL },
	{ DISKS("[{\"size_gib\":10},{\"size_gib\":65536}]"), 0, NULL },
	{ DISKS("[]"), 0, NULL },
	{ DISKS("null"), 0, NULL },
	{ CREATE(IMG("file:///b", SUM, "qcow2") ",\"disk_gib\":5,"
	    "\"data_disks\":[{\"size_gib\":2},{\"size_gib\":3}]"), 0, NULL },
	{ DISKS("[{\"size_gib\":1},{\"size_gib\":1},{\"size_gib\":1},"
	    "{\"size_gib\":1},{\"size_gib\":1},{\"size_gib\":1},"
	    "{\"size_gib\":1},{\"size_gib\":8}]"), 0, NULL },
	/* refused */
	{ DISKS("[{\"size_gib\":1},{\"size_gib\":1},{\"size_gib\":1},"
	    "{\"size_gib\":1},{\"size_gib\":1},{\"size_gib\":1},"
	    "{\"size_gib\":1},{\"size_gib\":1},{\"size_gib\":1}]"), -1,
	    "data_disks has 9 entries; at most 8 are allowed" },
	{ DISKS("{\"size_gib\":1}"), -1,
	    "data_disks must be an array of objects" },
	{ DISKS("10"), -1, "data_disks must be an array of objects" },
	{ DISKS("[10]"), -1, "data_disks[0] must be an object" },
	{ DISKS("[{\"size_gib\":1},null]"), -1,
	    "data_disks[1] must be an object" },
	{ DISKS("[{}]"), -1, "data_disks[0].size_gib is required" },
	{ DISKS("[{\"size_gib\":null}]"), -1,
	    "data_disks[0].size_gib is required" },
	{ DISKS("[{\"size_gib\":1},{\"size_gib\":0}]"), -1,
	    "data_disks[1].size_gib must be at least 1 GiB" },
	{ DISKS("[{\"size_gib\":-5}]"), -1,
	    "data_disks[0].size_gib must be at least 1 GiB" },
	{ DISKS("[{\"size_gib\":65537}]"), -1,
	    "data_disks[0].size_gib must be at most 65536 GiB" },
	{ DISKS("[{\"size_gib\":18446744073709551615}]"), -1,
	    "data_disks[0].size_gib must be at most 65536 GiB" },
	{ DISKS("[{\"size_gib\":1.5}]"), -1,
	    "data_disks[0].size_gib must be an integer" },
	{ DISKS("[{\"size_gib\":\"1\"}]"), -1,
	    "data_disks[0].size_gib must be an integer" },
	{ DISKS("[{\"size_gib\":1,\"bus\":\"scsi\"}]"), -1,
	    "data_disks[0]: unknown key \"bus\"" },
	{ DISKS("[{\"size\":1}]"), -1, "data_disks[0]: unknown key \"size\"" },
};

static void
test_decode_data_disks(void **state)
{
	static const uint64_t totals[] = { 1, 65546, 0, 0, 10, 15 };

	(void)state;
	for (size_t i = 0; i < NELEM(data_disk_cases); i++) {
		const struct decode_case *c = &data_disk_cases[i];
		struct carve_error err = { 0 };
		struct vm_spec spec, again, copy;
		json_object *o = parse(c->json), *enc;
		int rc;

		memset(&spec, 0xa5, sizeof(spec));
		rc = vm_spec_decode(o, &spec, &err);
		json_object_put(o);
		if (rc != c->rc)
			fail_msg("case %zu <%s>: rc %d want %d (%s)", i, c->json,
			    rc, c->rc, err.message);
		if (rc == -1) {
			if (err.code != CARVE_EINVAL)
				fail_msg("case %zu: code %d", i, err.code);
			if (strstr(err.message, c->msg) == NULL)
				fail_msg("case %zu <%s>: message \"%s\" lacks "
				    "\"%s\"", i, c->json, err.message, c->msg);
			if (spec.vs_ndata_disks != 0 || spec.vs_image.vi_url != NULL)
				fail_msg("case %zu: out not cleared", i);
			continue;
		}
		if (i < NELEM(totals) &&
		    vm_spec_disk_gib_total(&spec) != totals[i])
			fail_msg("case %zu: total %llu want %llu", i,
			    (unsigned long long)vm_spec_disk_gib_total(&spec),
			    (unsigned long long)totals[i]);
		enc = vm_spec_encode(&spec);
		/* No data disks: no key on the wire (older decoders). */
		assert_int_equal(json_object_object_get_ex(enc, "data_disks",
		    NULL), spec.vs_ndata_disks > 0);
		if (vm_spec_decode(enc, &again, &err) != 0)
			fail_msg("case %zu: encoded form refused: %s", i,
			    err.message);
		json_object_put(enc);
		assert_int_equal(again.vs_ndata_disks, spec.vs_ndata_disks);
		for (size_t k = 0; k < spec.vs_ndata_disks; k++)
			assert_int_equal(again.vs_data_disks[k].dd_size_gib,
			    spec.vs_data_disks[k].dd_size_gib);
		vm_spec_copy(&copy, &again);
		vm_spec_clear(&again);
		assert_int_equal(copy.vs_ndata_disks, spec.vs_ndata_disks);
		assert_int_equal(vm_spec_disk_gib_total(&copy),
		    vm_spec_disk_gib_total(&spec));
		vm_spec_clear(&copy);
		vm_spec_clear(&spec);
	}
}

static void
test_decode_data_disk_values(void **state)
{
	struct carve_error err = { 0 };
	struct vm_spec spec;
	json_object *o = parse(data_disk_cases[4].json);

	(void)state;
	assert_int_equal(vm_spec_decode(o, &spec, &err), 0);
	json_object_put(o);
	assert_int_equal(spec.vs_disk_gib, 5);
	assert_int_equal(spec.vs_ndata_disks, 2);
	assert_int_equal(spec.vs_data_disks[0].dd_size_gib, 2);
	assert_int_equal(spec.vs_data_disks[1].dd_size_gib, 3);
	assert_int_equal(vm_spec_disk_gib_total(&spec), 10);
	vm_spec_clear(&spec);
}

/* ------------------------------------------------------------ rebuild */

#define REBUILD(args) "{" HEAD "\"type\":\"vm.rebuild\"" args "}"

static const struct decode_case rebuild_cases[] = {
	/* accepted */
	{ REBUILD(""), 0, NULL },
	{ REBUILD(",\"args\":null"), 0, NULL },
	{ REBUILD(",\"args\":{}"), 0, NULL },
	{ REBUILD(",\"args\":{\"image\":null}"), 0, NULL },
	{ REBUILD(",\"args\":{" IMG("https://img.example/d13.qcow2", SUM,
	    "qcow2") "}"), 0, NULL },
	{ REBUILD(",\"args\":{" IMG("file:///srv/img/base.raw",
	    "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
	    "raw") "}"), 0, NULL },
	/* refused */
	{ REBUILD(",\"args\":[]"), -1, "args must be a JSON object" },
	{ REBUILD(",\"args\":{\"name\":\"a\"}"), -1,
	    "vm.rebuild args: unknown key \"name\"" },
	{ REBUILD(",\"args\":{" IMG("https://a/x", SUM, "qcow2")
	    ",\"disk_gib\":10}"), -1,
	    "vm.rebuild args: unknown key \"disk_gib\"" },
	{ REBUILD(",\"args\":{\"image\":\"https://a/x\"}"), -1,
	    "image must be a JSON object" },
	{ REBUILD(",\"args\":{\"image\":{}}"), -1, "url is required" },
	{ REBUILD(",\"args\":{\"image\":{\"url\":\"https://a/x\",\"sha256\":\""
	    SUM "\"}}"), -1, "format is required" },
	{ REBUILD(",\"args\":{\"image\":{\"url\":\"https://a/x\","
	    "\"format\":\"raw\"}}"), -1, "sha256 is required" },
	{ REBUILD(",\"args\":{\"image\":{\"url\":\"https://a/x\",\"sha256\":\""
	    SUM "\",\"format\":\"raw\",\"size\":1}}"), -1,
	    "image: unknown key \"size\"" },
	{ REBUILD(",\"args\":{" IMG("gopher://a/x", SUM, "qcow2") "}"), -1,
	    "must start with https://, http:// or file://" },
	{ REBUILD(",\"args\":{" IMG("file:///a/../etc/shadow", SUM, "raw")
	    "}"), -1, "segments" },
	{ REBUILD(",\"args\":{" IMG("https://a/x", "abc", "raw") "}"), -1,
	    "image.sha256 must be 64 hexadecimal digits" },
	{ REBUILD(",\"args\":{" IMG("https://a/x", SUM, "vdi") "}"), -1,
	    "image.format \"vdi\" must be \"qcow2\" or \"raw\"" },
	{ "{\"id\":\"" ID1 "\",\"type\":\"vm.rebuild\"}", -1,
	    "vm_id is required" },
};

static void
test_decode_rebuild(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(rebuild_cases); i++) {
		const struct decode_case *c = &rebuild_cases[i];
		struct carve_error err = { 0 };
		struct command a, b, copy;
		json_object *enc;
		char *text;
		int rc;

		memset(&a, 0xa5, sizeof(a));
		rc = command_decode_buf(c->json, strlen(c->json), &a, &err);
		if (rc != c->rc)
			fail_msg("case %zu <%s>: rc %d want %d (%s)", i, c->json,
			    rc, c->rc, err.message);
		if (rc == -1) {
			if (err.code != CARVE_EINVAL ||
			    strstr(err.message, c->msg) == NULL)
				fail_msg("case %zu <%s>: code %d message \"%s\" "
				    "lacks \"%s\"", i, c->json, err.code,
				    err.message, c->msg);
			if (a.cmd_args.rebuild.image.vi_url != NULL)
				fail_msg("case %zu: out not cleared", i);
			continue;
		}
		assert_int_equal(a.cmd_type, CMD_VM_REBUILD);
		enc = command_encode(&a);
		text = jsonx_to_string(enc);
		json_object_put(enc);
		if (command_decode_buf(text, strlen(text), &b, &err) != 0)
			fail_msg("case %zu: encoded form <%s> refused: %s", i,
			    text, err.message);
		if (!command_equal(&a, &b))
			fail_msg("case %zu: round trip differs: <%s>", i, text);
		command_copy(&copy, &b);
		command_clear(&b);
		command_clear(&a);
		assert_true(command_equal(&copy, &copy));
		command_clear(&copy);
		free(text);
	}
}

static void
test_decode_rebuild_values(void **state)
{
	struct carve_error err = { 0 };
	struct command cmd, copy;
	const struct vm_image *img = &cmd.cmd_args.rebuild.image;
	json_object *enc;
	char *text;

	(void)state;
	/* No args: the VM's own image; encoded as empty args. */
	assert_int_equal(command_decode_buf(rebuild_cases[0].json,
	    strlen(rebuild_cases[0].json), &cmd, &err), 0);
	assert_null(img->vi_url);
	enc = command_encode(&cmd);
	text = jsonx_to_string(enc);
	assert_string_equal(text, "{\"id\":\"" ID1 "\",\"type\":\"vm.rebuild\","
	    "\"vm_id\":\"" VM1 "\",\"args\":{}}");
	free(text);
	json_object_put(enc);
	command_clear(&cmd);

	/* With an image: upper-case sha256 kept lower-case; the copy is deep. */
	assert_int_equal(command_decode_buf(rebuild_cases[5].json,
	    strlen(rebuild_cases[5].json), &cmd, &err), 0);
	assert_string_equal(img->vi_url, "file:///srv/img/base.raw");
	assert_string_equal(img->vi_sha256, SUM);
	assert_int_equal(img->vi_format, VM_IMAGE_RAW);
	command_copy(&copy, &cmd);
	command_clear(&cmd);
	assert_string_equal(copy.cmd_args.rebuild.image.vi_url,
	    "file:///srv/img/base.raw");
	assert_int_equal(copy.cmd_args.rebuild.image.vi_format, VM_IMAGE_RAW);
	command_clear(&copy);
	assert_false(error_isset(&err));
}

/* vm_image_parse: the rules of the decoder, on plain strings. */
static void
test_vm_image_parse(void **state)
{
	static const struct {
		const char *url, *sum, *fmt;
		int rc;
		const char *msg;
	} cases[] = {
		{ "https://a/x", SUM, "qcow2", 0, NULL },
		{ "file:///x", SUM, "raw", 0, NULL },
		{ "ftp://a/x", SUM, "qcow2", -1, "must start with https://" },
		{ "file:///a//b", SUM, "qcow2", -1, "\"//\"" },
		{ "https://a/x", SUM "00", "qcow2", -1,
		    "image.sha256 must be 64 hexadecimal digits" },
		{ "https://a/x", SUM, "", -1, "image.format \"\" must be" },
		{ "https://a/x", SUM, "none", -1, "image.format \"none\"" },
	};
	struct carve_error err = { 0 };
	struct vm_image img, copy;
	char *longurl;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		error_clear(&err);
		memset(&img, 0xa5, sizeof(img));
		assert_int_equal(vm_image_parse(cases[i].url, cases[i].sum,
		    cases[i].fmt, &img, &err), cases[i].rc);
		if (cases[i].rc == 0) {
			assert_string_equal(img.vi_url, cases[i].url);
			vm_image_copy(&copy, &img);
			vm_image_clear(&img);
			assert_null(img.vi_url);
			assert_string_equal(copy.vi_url, cases[i].url);
			vm_image_clear(&copy);
			continue;
		}
		assert_int_equal(err.code, CARVE_EINVAL);
		assert_null(img.vi_url);
		if (strstr(err.message, cases[i].msg) == NULL)
			fail_msg("case %zu: message \"%s\" lacks \"%s\"", i,
			    err.message, cases[i].msg);
	}
	/* The URL length bound holds here too (metadata is parsed with it). */
	longurl = repeat('a', VM_IMAGE_URL_MAX + 1);
	memcpy(longurl, "https://", 8);
	error_clear(&err);
	assert_int_equal(vm_image_parse(longurl, SUM, "raw", &img, &err), -1);
	assert_non_null(strstr(err.message, "longer than 2048 bytes"));
	longurl[VM_IMAGE_URL_MAX] = '\0';
	assert_int_equal(vm_image_parse(longurl, SUM, "raw", &img, &err), 0);
	vm_image_clear(&img);
	vm_image_clear(NULL);
	free(longurl);
}

/* ------------------------------------------------------------ results */

struct result_case {
	const char *json;
	int rc;
	const char *msg;
};

#define RHEAD "\"command_id\":\"" ID1 "\",\"type\":\"vm.create\",\"vm_id\":\"" \
	VM1 "\","
#define RTIMES "\"accepted_at\":1700000000000,\"finished_at\":1700000000500"

static const struct result_case result_cases[] = {
	{ "{" RHEAD "\"status\":\"succeeded\"," RTIMES "}", 0, NULL },
	{ "{" RHEAD "\"status\":\"succeeded\",\"result\":{\"uuid\":\"x\","
	    "\"n\":[1,2.5,{\"k\":null}]}," RTIMES "}", 0, NULL },
	{ "{" RHEAD "\"status\":\"failed\",\"error\":{\"code\":"
	    "\"insufficient_capacity\",\"message\":\"needs 4096 MiB, 1024 free\"},"
	    RTIMES "}", 0, NULL },
	{ "{" RHEAD "\"status\":\"failed\",\"error\":{\"code\":\"not_found\","
	    "\"message\":\"\"},\"result\":{}," RTIMES "}", 0, NULL },
	{ "{" RHEAD "\"status\":\"succeeded\",\"result\":null," RTIMES "}", 0,
	    NULL },

	{ "[]", -1, "command result must be a JSON object" },
	{ "{" RHEAD "\"status\":\"succeeded\",\"extra\":1," RTIMES "}", -1,
	    "command result: unknown key \"extra\"" },
	{ "{" RHEAD "\"status\":\"accepted\"," RTIMES "}", -1,
	    "status must be \"succeeded\" or \"failed\"" },
	{ "{" RHEAD "\"status\":\"ok\"," RTIMES "}", -1, "status must be" },
	{ "{" RHEAD RTIMES "}", -1, "status is required" },
	{ "{" RHEAD "\"status\":\"failed\"," RTIMES "}", -1,
	    "error is required when status is \"failed\"" },
	{ "{" RHEAD "\"status\":\"succeeded\",\"error\":{\"code\":\"not_found\","
	    "\"message\":\"x\"}," RTIMES "}", -1,
	    "error must be absent when status is \"succeeded\"" },
	{ "{" RHEAD "\"status\":\"failed\",\"error\":{\"code\":\"nope\","
	    "\"message\":\"x\"}," RTIMES "}", -1,
	    "error.code \"nope\" is not a known error code" },
	{ "{" RHEAD "\"status\":\"failed\",\"error\":{\"code\":\"ok\","
	    "\"message\":\"x\"}," RTIMES "}", -1, "error.code \"ok\"" },
	{ "{" RHEAD "\"status\":\"failed\",\"error\":{\"code\":\"not_found\"},"
	    RTIMES "}", -1, "message is required" },
	{ "{" RHEAD "\"status\":\"failed\",\"error\":{\"code\":\"not_found\","
	    "\"message\":\"x\",\"detail\":1}," RTIMES "}", -1,
	    "error: unknown key \"detail\"" },
	{ "{" RHEAD "\"status\":\"failed\",\"error\":\"boom\"," RTIMES "}", -1,
	    "error must be a JSON object" },
	{ "{" RHEAD "\"status\":\"succeeded\",\"result\":[1]," RTIMES "}", -1,
	    "result must be a JSON object" },
	{ "{" RHEAD "\"status\":\"succeeded\",\"accepted_at\":1.5,"
	    "\"finished_at\":2}", -1, "accepted_at must be an integer" },
	{ "{" RHEAD "\"status\":\"succeeded\",\"accepted_at\":\"1\","
	    "\"finished_at\":2}", -1, "accepted_at must be an integer" },
	{ "{" RHEAD "\"status\":\"succeeded\",\"accepted_at\":1}", -1,
	    "finished_at is required" },
	{ "{" RHEAD "\"status\":\"succeeded\",\"accepted_at\":-1,"
	    "\"finished_at\":2}", -1, "accepted_at must be between 0 and" },
	{ "{\"command_id\":\"x\",\"type\":\"vm.create\",\"vm_id\":\"" VM1 "\","
	    "\"status\":\"succeeded\"," RTIMES "}", -1,
	    "command_id must be a UUID" },
	{ "{\"command_id\":\"" ID1 "\",\"type\":\"vm.create\",\"vm_id\":\"x\","
	    "\"status\":\"succeeded\"," RTIMES "}", -1, "vm_id must be a UUID" },
	{ "{\"command_id\":\"" ID1 "\",\"type\":\"vm.nope\",\"vm_id\":\"" VM1
	    "\",\"status\":\"succeeded\"," RTIMES "}", -1,
	    "unknown command type \"vm.nope\"" },
};

static void
test_result_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(result_cases); i++) {
		const struct result_case *c = &result_cases[i];
		struct carve_error err = { 0 };
		struct command_result res;
		json_object *o = parse(c->json);
		int rc;

		rc = command_result_decode(o, &res, &err);
		json_object_put(o);
		if (rc != c->rc)
			fail_msg("case %zu <%s>: rc %d want %d (%s)", i, c->json, rc,
			    c->rc, err.message);
		if (rc == -1 && (err.code != CARVE_EINVAL || res.res_data != NULL))
			fail_msg("case %zu: code %d / data left", i, err.code);
		if (c->msg != NULL && strstr(err.message, c->msg) == NULL)
			fail_msg("case %zu <%s>: message \"%s\" lacks \"%s\"", i,
			    c->json, err.message, c->msg);
		command_result_clear(&res);
	}
}

static void
test_result_round_trip(void **state)
{
	struct carve_error err = { 0 };
	struct command_result res, back;
	json_object *enc, *o;
	char *text;

	(void)state;
	/* A failed result with data, built in code. */
	memset(&res, 0, sizeof(res));
	snprintf(res.res_command_id, sizeof(res.res_command_id), "%s", ID1);
	snprintf(res.res_vm_id, sizeof(res.res_vm_id), "%s", VM1);
	res.res_type = CMD_VM_STOP;
	res.res_status = CMD_STATUS_FAILED;
	error_set(&res.res_error, CARVE_EHYPERVISOR,
	    "libvirt: domain \"a\" is not running");
	res.res_data = parse("{\"attempts\":3,\"why\":[\"x\",null]}");
	res.res_accepted_at_ms = 1;
	res.res_finished_at_ms = INT64_MAX;

	enc = command_result_encode(&res);
	text = jsonx_to_string(enc);
	json_object_put(enc);
	o = parse(text);
	assert_int_equal(command_result_decode(o, &back, &err), 0);
	json_object_put(o);
	assert_string_equal(back.res_command_id, ID1);
	assert_string_equal(back.res_vm_id, VM1);
	assert_int_equal(back.res_type, CMD_VM_STOP);
	assert_int_equal(back.res_status, CMD_STATUS_FAILED);
	assert_int_equal(back.res_error.code, CARVE_EHYPERVISOR);
	assert_string_equal(back.res_error.message,
	    "libvirt: domain \"a\" is not running");
	assert_true(json_object_equal(back.res_data, res.res_data));
	assert_true(back.res_accepted_at_ms == 1);
	assert_true(back.res_finished_at_ms == INT64_MAX);
	command_result_clear(&back);
	free(text);

	/* Succeeded without data: no "error", no "result" on the wire. */
	json_object_put(res.res_data);
	res.res_data = NULL;
	res.res_status = CMD_STATUS_SUCCEEDED;
	error_clear(&res.res_error);
	enc = command_result_encode(&res);
	text = jsonx_to_string(enc);
	json_object_put(enc);
	assert_null(strstr(text, "\"error\""));
	assert_null(strstr(text, "\"result\""));
	o = parse(text);
	assert_int_equal(command_result_decode(o, &back, &err), 0);
	json_object_put(o);
	assert_int_equal(back.res_status, CMD_STATUS_SUCCEEDED);
	assert_null(back.res_data);
	assert_false(error_isset(&back.res_error));
	command_result_clear(&back);
	command_result_clear(NULL);
	free(text);

	/* Every accepted table case re-encodes to an equal object. */
	for (size_t i = 0; i < NELEM(result_cases); i++) {
		json_object *in, *out;

		if (result_cases[i].rc != 0)
			continue;
		in = parse(result_cases[i].json);
		assert_int_equal(command_result_decode(in, &back, &err), 0);
		out = command_result_encode(&back);
		/* "result":null decodes as absent and is not written back */
		json_object_object_del(in, "result");
		json_object_object_del(out, "result");
		if (!json_object_equal(in, out))
			fail_msg("case %zu: re-encoded differs", i);
		json_object_put(in);
		json_object_put(out);
		command_result_clear(&back);
	}
}

/* ------------------------------------------------------------ vm info */

static void
test_vm_state(void **state)
{
	static const struct {
		int vir;
		enum vm_state st;
		const char *name;
	} map[] = {
		{ VIR_DOMAIN_NOSTATE, VM_STATE_UNKNOWN, "unknown" },
		{ VIR_DOMAIN_RUNNING, VM_STATE_RUNNING, "running" },
		{ VIR_DOMAIN_BLOCKED, VM_STATE_BLOCKED, "blocked" },
		{ VIR_DOMAIN_PAUSED, VM_STATE_PAUSED, "paused" },
		{ VIR_DOMAIN_SHUTDOWN, VM_STATE_SHUTTING_DOWN, "shutting_down" },
		{ VIR_DOMAIN_SHUTOFF, VM_STATE_SHUTOFF, "shutoff" },
		{ VIR_DOMAIN_CRASHED, VM_STATE_CRASHED, "crashed" },
		{ VIR_DOMAIN_PMSUSPENDED, VM_STATE_SUSPENDED, "suspended" },
		{ -1, VM_STATE_UNKNOWN, "unknown" },
		{ 99, VM_STATE_UNKNOWN, "unknown" },
	};
	enum vm_state st;

	(void)state;
	for (size_t i = 0; i < NELEM(map); i++) {
		assert_int_equal(vm_state_from_libvirt(map[i].vir), map[i].st);
		assert_string_equal(vm_state_name(map[i].st), map[i].name);
		assert_int_equal(vm_state_parse(map[i].name, &st), 0);
		assert_int_equal(st, map[i].st);
	}
	assert_string_equal(vm_state_name(VM_STATE_MAX), "unknown");
	assert_int_equal(vm_state_parse("on", &st), -1);
	assert_int_equal(vm_state_parse("Running", &st), -1);
}

static void
test_vm_info_round_trip(void **state)
{
	struct carve_error err = { 0 };
	struct vm_info vm, back;
	json_object *enc, *o;
	char *text;

	(void)state;
	for (int st = 0; st < VM_STATE_MAX; st++) {
		memset(&vm, 0, sizeof(vm));
		snprintf(vm.vm_id, sizeof(vm.vm_id), "%s", VM1);
		snprintf(vm.vm_name, sizeof(vm.vm_name), "web-%d", st);
		vm.vm_vcpus = 2;
		vm.vm_memory_mib = 2048;
		vm.vm_disk_gib = 20;
		/* every other one without the creating command */
		if (st % 2 == 0)
			snprintf(vm.vm_command_id, sizeof(vm.vm_command_id), "%s",
			    ID1);
		vm.vm_state = (enum vm_state)st;
		vm.vm_created_at_ms = 1700000000123;

		enc = vm_info_encode(&vm);
		text = jsonx_to_string(enc);
		json_object_put(enc);
		o = parse(text);
		if (vm_info_decode(o, &back, &err) != 0)
			fail_msg("<%s> refused: %s", text, err.message);
		json_object_put(o);
		assert_string_equal(back.vm_id, vm.vm_id);
		assert_string_equal(back.vm_name, vm.vm_name);
		assert_int_equal(back.vm_state, vm.vm_state);
		assert_int_equal(back.vm_vcpus, vm.vm_vcpus);
		assert_int_equal(back.vm_memory_mib, vm.vm_memory_mib);
		assert_int_equal(back.vm_disk_gib, vm.vm_disk_gib);
		assert_string_equal(back.vm_command_id, vm.vm_command_id);
		assert_true(back.vm_created_at_ms == vm.vm_created_at_ms);
		free(text);
	}

	/* With an image and data disks. */
	memset(&vm, 0, sizeof(vm));
	snprintf(vm.vm_id, sizeof(vm.vm_id), "%s", VM1);
	snprintf(vm.vm_name, sizeof(vm.vm_name), "db");
	vm.vm_vcpus = 1;
	vm.vm_memory_mib = 64;
	vm.vm_disk_gib = 4;
	snprintf(vm.vm_image_url, sizeof(vm.vm_image_url), "file:///i/b.qcow2");
	snprintf(vm.vm_image_sha256, sizeof(vm.vm_image_sha256), "%s", SUM);
	vm.vm_image_format = VM_IMAGE_QCOW2;
	vm.vm_ndata_disks = 2;
	vm.vm_data_disks[0].dd_size_gib = 10;
	vm.vm_data_disks[1].dd_size_gib = 65536;
	assert_int_equal(vm_info_disk_gib_total(&vm), 65550);
	enc = vm_info_encode(&vm);
	text = jsonx_to_string(enc);
	json_object_put(enc);
	assert_non_null(strstr(text, "\"image\":{\"url\":\"file:///i/b.qcow2\","
	    "\"sha256\":\"" SUM "\",\"format\":\"qcow2\"}"));
	assert_non_null(strstr(text, "\"data_disks\":[{\"size_gib\":10},"
	    "{\"size_gib\":65536}]"));
	o = parse(text);
	assert_int_equal(vm_info_decode(o, &back, &err), 0);
	json_object_put(o);
	free(text);
	assert_string_equal(back.vm_image_url, "file:///i/b.qcow2");
	assert_string_equal(back.vm_image_sha256, SUM);
	assert_int_equal(back.vm_image_format, VM_IMAGE_QCOW2);
	assert_int_equal(back.vm_ndata_disks, 2);
	assert_int_equal(back.vm_data_disks[1].dd_size_gib, 65536);
	assert_int_equal(vm_info_disk_gib_total(&back), 65550);

	o = parse("{\"id\":\"6F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9\",\"name\":\"a\","
	    "\"state\":\"running\",\"vcpus\":1,\"memory_mib\":64,\"disk_gib\":0,"
	    "\"command_id\":\"" ID1 "\",\"created_at\":0}");
	assert_int_equal(vm_info_decode(o, &back, &err), 0);
	assert_string_equal(back.vm_id, VM1);
	assert_int_equal(back.vm_state, VM_STATE_RUNNING);
	/* An older agent's report: no image, no data disks. */
	assert_string_equal(back.vm_image_url, "");
	assert_int_equal(back.vm_ndata_disks, 0);
	assert_int_equal(vm_info_disk_gib_total(&back), 0);
	/* An older agent's report says nothing about snapshots. */
	assert_false(back.vm_snapshots_known);
	json_object_put(o);
}

/* vm_info's snapshots: absent, empty, full; the limit. */
static void
test_vm_info_snapshots(void **state)
{
	struct carve_error err = { 0 };
	struct vm_info vm, back;
	json_object *enc, *o, *arr;
	char *text;

	(void)state;
	memset(&vm, 0, sizeof(vm));
	snprintf(vm.vm_id, sizeof(vm.vm_id), "%s", VM1);
	snprintf(vm.vm_name, sizeof(vm.vm_name), "db");
	vm.vm_vcpus = 1;
	vm.vm_memory_mib = 128;

	/* Not known: no key at all. */
	enc = vm_info_encode(&vm);
	assert_false(json_object_object_get_ex(enc, "snapshots", NULL));
	json_object_put(enc);

	/* Known and none: an empty array, which reads back as known. */
	vm.vm_snapshots_known = true;
	enc = vm_info_encode(&vm);
	assert_true(json_object_object_get_ex(enc, "snapshots", &arr));
	assert_int_equal(json_object_array_length(arr), 0);
	assert_int_equal(vm_info_decode(enc, &back, &err), 0);
	assert_true(back.vm_snapshots_known);
	assert_int_equal(back.vm_nsnapshots, 0);
	json_object_put(enc);

	/* As many as a VM may have, in order. */
	for (unsigned i = 0; i < VM_SNAPSHOTS_MAX; i++) {
		snprintf(vm.vm_snapshots[i].snap_name,
		    sizeof(vm.vm_snapshots[i].snap_name), "s%u", i);
		vm.vm_snapshots[i].snap_kind = i % 2 ? VM_SNAPSHOT_DISK :
		    VM_SNAPSHOT_FULL;
		vm.vm_snapshots[i].snap_created_at_ms = 1700000000000 + i;
	}
	vm.vm_nsnapshots = VM_SNAPSHOTS_MAX;
	enc = vm_info_encode(&vm);
	text = jsonx_to_string(enc);
	json_object_put(enc);
	o = parse(text);
	assert_int_equal(vm_info_decode(o, &back, &err), 0);
	json_object_put(o);
	assert_int_equal(back.vm_nsnapshots, VM_SNAPSHOTS_MAX);
	for (unsigned i = 0; i < VM_SNAPSHOTS_MAX; i++) {
		assert_string_equal(back.vm_snapshots[i].snap_name,
		    vm.vm_snapshots[i].snap_name);
		assert_int_equal(back.vm_snapshots[i].snap_kind,
		    vm.vm_snapshots[i].snap_kind);
		assert_true(back.vm_snapshots[i].snap_created_at_ms ==
		    vm.vm_snapshots[i].snap_created_at_ms);
	}
	assert_non_null(vm_snapshot_find(&back, "s3"));
	assert_int_equal(vm_snapshot_find(&back, "s3")->snap_kind,
	    VM_SNAPSHOT_DISK);
	assert_null(vm_snapshot_find(&back, "s99"));
	assert_non_null(strstr(text, "{\"name\":\"s0\",\"kind\":\"full\","
	    "\"created_at\":1700000000000}"));
	free(text);

	/* One more is refused. */
	o = vm_info_encode(&vm);
	json_object_object_get_ex(o, "snapshots", &arr);
	json_object_array_add(arr, parse("{\"name\":\"x\",\"kind\":\"full\","
	    "\"created_at\":1}"));
	memset(&err, 0, sizeof(err));
	assert_int_equal(vm_info_decode(o, &back, &err), -1);
	assert_non_null(strstr(err.message, "snapshots has 17 entries"));
	json_object_put(o);

	assert_string_equal(vm_snapshot_kind_name(VM_SNAPSHOT_KIND_MAX),
	    "unknown");
}

static void
test_vm_info_rejects(void **state)
{
#define VHEAD "\"id\":\"" VM1 "\",\"name\":\"a\","
#define VSIZE "\"vcpus\":1,\"memory_mib\":64,\"disk_gib\":0,"
	static const struct result_case cases[] = {
		{ "{" VHEAD "\"state\":\"on\"," VSIZE "\"created_at\":0}", -1,
		    "state must be one of" },
		{ "{" VHEAD "\"state\":1," VSIZE "\"created_at\":0}", -1,
		    "state must be a string" },
		{ "{" VHEAD "\"state\":\"running\"," VSIZE "\"created_at\":0,"
		    "\"host\":\"x\"}", -1, "vm: unknown key \"host\"" },
		{ "{\"id\":\"" VM1 "\",\"name\":\"a b\",\"state\":\"running\","
		    VSIZE "\"created_at\":0}", -1, "name may only contain" },
		{ "{\"id\":\"nope\",\"name\":\"a\",\"state\":\"running\","
		    VSIZE "\"created_at\":0}", -1, "id must be a UUID" },
		{ "{" VHEAD "\"state\":\"running\",\"vcpus\":\"1\","
		    "\"memory_mib\":64,\"disk_gib\":0,\"created_at\":0}", -1,
		    "vcpus must be an integer" },
		{ "{" VHEAD "\"state\":\"running\",\"vcpus\":1,"
		    "\"memory_mib\":64.5,\"disk_gib\":0,\"created_at\":0}", -1,
		    "memory_mib must be an integer" },
		{ "{" VHEAD "\"state\":\"running\"," VSIZE "\"command_id\":\"x\","
		    "\"created_at\":0}", -1, "command_id must be a UUID" },
		{ "{" VHEAD "\"state\":\"running\",\"vcpus\":1,\"memory_mib\":64,"
		    "\"disk_gib\":0}", -1,
		    "created_at is required" },
		{ "{" VHEAD "\"state\":\"running\",\"vcpus\":1,\"memory_mib\":64,"
		    "\"created_at\":0}", -1, "disk_gib is required" },
		{ "{" VHEAD "\"state\":\"running\"," VSIZE "\"created_at\":0,"
		    "\"image\":{\"url\":\"ftp://a/x\",\"sha256\":\"" SUM "\","
		    "\"format\":\"raw\"}}", -1, "must start with https://" },
		{ "{" VHEAD "\"state\":\"running\"," VSIZE "\"created_at\":0,"
		    "\"image\":{\"url\":\"https://a/x\"}}", -1,
		    "sha256 is required" },
		{ "{" VHEAD "\"state\":\"running\"," VSIZE "\"created_at\":0,"
		    "\"data_disks\":[{\"size_gib\":0}]}", -1,
		    "data_disks[0].size_gib must be at least 1 GiB" },
		{ "{" VHEAD "\"state\":\"running\"," VSIZE "\"created_at\":0,"
		    "\"data_disks\":[1]}", -1, "data_disks[0] must be an object" },
		/* snapshots */
#define VSNAP(x) "{" VHEAD "\"state\":\"running\"," VSIZE \
		    "\"created_at\":0,\"snapshots\":" x "}"
		{ VSNAP("{}"), -1, "snapshots must be an array" },
		{ VSNAP("[1]"), -1, "snapshot must be a JSON object" },
		{ VSNAP("[{\"name\":\"a\",\"kind\":\"full\"}]"), -1,
		    "created_at is required" },
		{ VSNAP("[{\"name\":\"a\",\"created_at\":1}]"), -1,
		    "kind is required" },
		{ VSNAP("[{\"name\":\"a\",\"kind\":\"ram\",\"created_at\":1}]"),
		    -1, "snapshot kind must be \"full\" or \"disk\"" },
		{ VSNAP("[{\"name\":\"a<b\",\"kind\":\"full\",\"created_at\":1}]"),
		    -1, "snapshot name may only contain" },
		{ VSNAP("[{\"kind\":\"full\",\"created_at\":1}]"), -1,
		    "name is required" },
		{ VSNAP("[{\"name\":\"a\",\"kind\":\"full\",\"created_at\":-1}]"),
		    -1, "created_at must be between 0 and" },
		{ VSNAP("[{\"name\":\"a\",\"kind\":\"full\",\"created_at\":1,"
		    "\"size\":3}]"), -1, "snapshot: unknown key \"size\"" },
		{ VSNAP("[{\"name\":\"a\",\"kind\":\"full\",\"created_at\":1},"
		    "{\"name\":\"a\",\"kind\":\"disk\",\"created_at\":2}]"), -1,
		    "snapshot \"a\" is listed twice" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct carve_error err = { 0 };
		struct vm_info vm;
		json_object *o = parse(cases[i].json);
		int rc = vm_info_decode(o, &vm, &err);

		json_object_put(o);
		if (rc != cases[i].rc || err.code != CARVE_EINVAL)
			fail_msg("case %zu <%s>: rc %d code %d", i, cases[i].json,
			    rc, err.code);
		if (strstr(err.message, cases[i].msg) == NULL)
			fail_msg("case %zu: message \"%s\" lacks \"%s\"", i,
			    err.message, cases[i].msg);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_decode_table),
		cmocka_unit_test(test_decode_bad_names),
		cmocka_unit_test(test_decode_migrate),
		cmocka_unit_test(test_decode_migrate_values),
		cmocka_unit_test(test_migrate_round_trip),
		cmocka_unit_test(test_decode_lengths),
		cmocka_unit_test(test_decode_buf),
		cmocka_unit_test(test_decode_values),
		cmocka_unit_test(test_decode_resize),
		cmocka_unit_test(test_vm_spec),
		cmocka_unit_test(test_decode_image),
		cmocka_unit_test(test_decode_image_values),
		cmocka_unit_test(test_decode_image_max),
		cmocka_unit_test(test_decode_data_disks),
		cmocka_unit_test(test_decode_data_disk_values),
		cmocka_unit_test(test_decode_rebuild),
		cmocka_unit_test(test_decode_rebuild_values),
		cmocka_unit_test(test_vm_image_parse),
		cmocka_unit_test(test_command_round_trip),
		cmocka_unit_test(test_command_encode_form),
		cmocka_unit_test(test_decode_networks),
		cmocka_unit_test(test_mac_derive),
		cmocka_unit_test(test_derive_macs_and_interfaces),
		cmocka_unit_test(test_snapshot_args),
		cmocka_unit_test(test_result_table),
		cmocka_unit_test(test_result_round_trip),
		cmocka_unit_test(test_vm_state),
		cmocka_unit_test(test_vm_info_round_trip),
		cmocka_unit_test(test_vm_info_rejects),
		cmocka_unit_test(test_vm_info_snapshots),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
