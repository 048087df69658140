/*
 * Unit tests for api/proto: which protocol v1 messages every decoder
 * accepts and refuses (invalid_argument with a message naming the field),
 * that encode/decode round-trip byte for byte, the size caps of the _buf
 * variants, the long-poll query parser and the HTTP status mapping.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/proto.h"
#include "common/jsonx.h"
#include "common/xalloc.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------ fixtures */

#define U1 "0b9c6a3e-5d1f-4c2b-9a8e-7f6d5c4b3a21"
#define U2 "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
#define U1_UPPER "0B9C6A3E-5D1F-4C2B-9A8E-7F6D5C4B3A21"
#define ASUM "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define ASUM_UPPER "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
#define CSR "\"-----BEGIN CERTIFICATE REQUEST-----\\nMIIBszCCAVgCAQAw\\n" \
	"Zm9vYmFy+/==\\n-----END CERTIFICATE REQUEST-----\\n\""
#define PEM_CERT "-----BEGIN CERTIFICATE-----\\nMIIBkTCB+wIJAK\\n" \
	"-----END CERTIFICATE-----\\n"
#define CERT "\"" PEM_CERT "\""
#define CHAIN "\"" PEM_CERT "\\r\\n" PEM_CERT "\""
#define INV(t, r, ratio, a, able, f) "{\"total\":" t ",\"reserved\":" r \
	",\"allocation_ratio\":" ratio ",\"allocated\":" a ",\"allocatable\":" \
	able ",\"free\":" f "}"
#define CAP "{\"VCPU\":" INV("8", "0", "4.0", "2", "32", "30") \
	",\"MEMORY_MIB\":" INV("16384", "512", "1.0", "1024", "15872", "14848") \
	",\"DISK_GIB\":" INV("100", "0", "1.5", "10", "150", "140") "}"
#define HOST "{\"hostname\":\"h1\",\"cpus\":8,\"cpu_features\":[\"vmx\"]}"
#define VMI "{\"id\":\"" U2 "\",\"name\":\"web-1\",\"state\":\"running\"," \
	"\"vcpus\":2,\"memory_mib\":1024,\"disk_gib\":10,\"command_id\":\"" U1 \
	"\",\"created_at\":1700000000000}"
#define SNAPS "[{\"name\":\"pre\",\"kind\":\"full\",\"created_at\":1}," \
	"{\"name\":\"nightly.2\",\"kind\":\"disk\",\"created_at\":2}]"
#define VMI_SNAPS "{\"id\":\"" U2 "\",\"name\":\"web-1\",\"state\":" \
	"\"running\",\"vcpus\":2,\"memory_mib\":1024,\"disk_gib\":10," \
	"\"created_at\":1700000000000,\"snapshots\":" SNAPS "}"
#define CMD "{\"id\":\"" U1 "\",\"type\":\"vm.start\",\"vm_id\":\"" U2 \
	"\",\"args\":{}}"
#define VMREC "{\"id\":\"" U2 "\",\"name\":\"web-1\",\"node\":\"host-1\"," \
	"\"vcpus\":2,\"memory_mib\":1024,\"disk_gib\":10,\"desired_state\":" \
	"\"running\",\"state\":\"pending\",\"last_command_id\":\"" U1 "\"," \
	"\"updated_at\":1700000000000}"
#define NODEREC "{\"name\":\"host-1\",\"up\":true,\"schedulable\":true," \
	"\"last_heartbeat\":1700000000000,\"registered_at\":1690000000000," \
	"\"agent_version\":\"0.1.0\",\"host\":" HOST ",\"capacity\":" CAP \
	",\"vms\":3}"
#define CI_HEAD "{\"id\":\"" U1 "\",\"type\":\"vm.create\",\"vm_id\":\"" U2 \
	"\",\"node\":\"host-1\","
#define MIG_HEAD "{\"id\":\"" U1 "\",\"vm_id\":\"" U2 "\",\"source\":" \
	"\"host-1\",\"target\":\"host-2\","
#define MIG_CMDS(m, f, c) "\"commands\":{\"prepare\":\"" U1 "\",\"migrate\":" \
	m ",\"finish\":" f ",\"cancel\":" c "}"
#define MIGREC MIG_HEAD "\"state\":\"done\",\"reason\":\"admin\"," \
	"\"max_downtime_ms\":300,\"bandwidth_mibps\":0,\"timeout_s\":600," \
	MIG_CMDS("\"" U2 "\"", "\"" U1 "\"", "null") ",\"cancel_requested\":false," \
	"\"progress\":{\"percent\":100,\"message\":\"iteration 3\"}," \
	"\"result\":{\"downtime_ms\":41},\"error\":null,\"started_at\":1," \
	"\"updated_at\":2,\"finished_at\":3}"
#define MIG_NULLS "\"max_downtime_ms\":null,\"bandwidth_mibps\":null," \
	"\"timeout_s\":null,"

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
all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

/* Encode obj (consumed) to text the caller frees. */
static char *
text(json_object *obj)
{
	char *s = jsonx_to_string(obj);

	json_object_put(obj);
	return s;
}

/* ------------------------------------------------------------ codecs */

/*
 * One entry per message: decode in, encode it to *out. A refusal must leave
 * the message all zeroes ("nothing to free").
 */
struct codec {
	const char *c_name;
	int (*c_rt)(json_object *in, char **out, struct carve_error *err);
};

#define RT(X, TYPE, CLEAR)						\
static int								\
rt_##X(json_object *in, char **out, struct carve_error *err)		\
{									\
	TYPE m;								\
									\
	memset(&m, 0xa5, sizeof(m));					\
	if (proto_##X##_decode(in, &m, err) == -1) {			\
		assert_true(all_zero(&m, sizeof(m)));			\
		return -1;						\
	}								\
	*out = text(proto_##X##_encode(&m));				\
	CLEAR(&m);							\
	return 0;							\
}

static void noclear(const void *p) { (void)p; }

RT(error, struct carve_error, noclear)
RT(capacity, struct proto_capacity, noclear)
RT(enroll_req, struct proto_enroll_req, proto_enroll_req_clear)
RT(renew_req, struct proto_renew_req, proto_renew_req_clear)
RT(cert_resp, struct proto_cert_resp, proto_cert_resp_clear)
RT(register_req, struct proto_register_req, proto_register_req_clear)
RT(register_resp, struct proto_register_resp, noclear)
RT(poll_resp, struct proto_poll_resp, proto_poll_resp_clear)
RT(progress, struct proto_progress, proto_progress_clear)
RT(heartbeat_req, struct proto_heartbeat_req, proto_heartbeat_req_clear)
RT(heartbeat_resp, struct proto_heartbeat_resp, noclear)
RT(vm_create_req, struct proto_vm_create_req, proto_vm_create_req_clear)
RT(vm_created, struct proto_vm_created, noclear)
RT(command_ref, struct proto_command_ref, noclear)
RT(vm_action_req, struct proto_vm_action_req, proto_vm_action_req_clear)
RT(vm, struct proto_vm, noclear)
RT(node, struct proto_node, proto_node_clear)
RT(command_info, struct proto_command_info, proto_command_info_clear)
RT(vm_migrate_req, struct proto_vm_migrate_req, noclear)
RT(migration_ref, struct proto_migration_ref, noclear)
RT(migration, struct proto_migration, proto_migration_clear)

static int
rt_migration_list(json_object *in, char **out, struct carve_error *err)
{
	struct proto_migration *ms = (void *)1;
	size_t n = 7;

	if (proto_migration_list_decode(in, &ms, &n, err) == -1) {
		assert_null(ms);
		assert_int_equal(n, 0);
		return -1;
	}
	*out = text(proto_migration_list_encode(ms, n));
	proto_migration_list_free(ms, n);
	return 0;
}
RT(snapshot_create_req, struct command_snapshot_args, noclear)
RT(snapshot_list, struct proto_snapshot_list, noclear)

static int
rt_empty(json_object *in, char **out, struct carve_error *err)
{
	if (proto_empty_decode(in, err) == -1)
		return -1;
	*out = text(proto_empty_encode());
	return 0;
}

static int
rt_vm_list(json_object *in, char **out, struct carve_error *err)
{
	struct proto_vm *vms = (void *)1;
	size_t n = 7;

	if (proto_vm_list_decode(in, &vms, &n, err) == -1) {
		assert_null(vms);
		assert_int_equal(n, 0);
		return -1;
	}
	*out = text(proto_vm_list_encode(vms, n));
	free(vms);
	return 0;
}

static int
rt_node_list(json_object *in, char **out, struct carve_error *err)
{
	struct proto_node *nodes = (void *)1;
	size_t n = 7;

	if (proto_node_list_decode(in, &nodes, &n, err) == -1) {
		assert_null(nodes);
		assert_int_equal(n, 0);
		return -1;
	}
	*out = text(proto_node_list_encode(nodes, n));
	proto_node_list_free(nodes, n);
	return 0;
}

enum kind {
	K_ERROR, K_EMPTY, K_CAPACITY, K_ENROLL, K_RENEW, K_CERT, K_REGISTER,
	K_REGISTER_RESP, K_POLL, K_PROGRESS, K_HEARTBEAT, K_HEARTBEAT_RESP,
	K_VM_CREATE, K_VM_CREATED, K_COMMAND_REF, K_VM_ACTION, K_VM, K_VM_LIST,
	K_NODE, K_NODE_LIST, K_COMMAND_INFO, K_VM_MIGRATE, K_MIGRATION_REF,
	K_MIGRATION, K_MIGRATION_LIST, K_SNAP_CREATE, K_SNAP_LIST, K_MAX
};

static const struct codec codecs[K_MAX] = {
	[K_ERROR] = { "error body", rt_error },
	[K_EMPTY] = { "empty", rt_empty },
	[K_CAPACITY] = { "capacity", rt_capacity },
	[K_ENROLL] = { "enroll request", rt_enroll_req },
	[K_RENEW] = { "renew request", rt_renew_req },
	[K_CERT] = { "certificate response", rt_cert_resp },
	[K_REGISTER] = { "register request", rt_register_req },
	[K_REGISTER_RESP] = { "register response", rt_register_resp },
	[K_POLL] = { "poll response", rt_poll_resp },
	[K_PROGRESS] = { "progress", rt_progress },
	[K_HEARTBEAT] = { "heartbeat", rt_heartbeat_req },
	[K_HEARTBEAT_RESP] = { "heartbeat response", rt_heartbeat_resp },
	[K_VM_CREATE] = { "VM create request", rt_vm_create_req },
	[K_VM_CREATED] = { "VM create response", rt_vm_created },
	[K_COMMAND_REF] = { "command reference", rt_command_ref },
	[K_VM_ACTION] = { "VM action", rt_vm_action_req },
	[K_VM] = { "VM record", rt_vm },
	[K_VM_LIST] = { "VM list", rt_vm_list },
	[K_NODE] = { "node record", rt_node },
	[K_NODE_LIST] = { "node list", rt_node_list },
	[K_COMMAND_INFO] = { "command record", rt_command_info },
	[K_VM_MIGRATE] = { "migrate request", rt_vm_migrate_req },
	[K_MIGRATION_REF] = { "migration reference", rt_migration_ref },
	[K_MIGRATION] = { "migration record", rt_migration },
	[K_MIGRATION_LIST] = { "migration list", rt_migration_list },
	[K_SNAP_CREATE] = { "snapshot request", rt_snapshot_create_req },
	[K_SNAP_LIST] = { "snapshot list", rt_snapshot_list },
};

/* ------------------------------------------------------------ accepted */

/*
 * Valid messages. want is the expected encoding, NULL when it is the input
 * itself (the input is already in the encoder's key order and form).
 */
struct valid_case {
	enum kind kind;
	const char *json;
	const char *want;
};

static const struct valid_case valid_cases[] = {
	{ K_ERROR, "{\"error\":{\"code\":\"not_found\",\"message\":"
	    "\"no VM 'x'\"}}", NULL },
	{ K_ERROR, "{\"error\":{\"code\":\"unauthenticated\",\"message\":\"\"}}",
	    NULL },
	{ K_ERROR, "{\"error\":{\"message\":\"m\",\"code\":\"payload_too_large\"}}",
	    "{\"error\":{\"code\":\"payload_too_large\",\"message\":\"m\"}}" },
	{ K_EMPTY, "{}", NULL },
	{ K_EMPTY, " { } ", "{}" },
	{ K_CAPACITY, CAP, NULL },
	{ K_CAPACITY, "{\"DISK_GIB\":" INV("1", "0", "1", "0", "1", "1")
	    ",\"VCPU\":" INV("1", "0", "16", "0", "16", "16")
	    ",\"MEMORY_MIB\":" INV("64", "0", "0.5", "0", "32", "32") "}",
	    "{\"VCPU\":" INV("1", "0", "16.0", "0", "16", "16")
	    ",\"MEMORY_MIB\":" INV("64", "0", "0.5", "0", "32", "32")
	    ",\"DISK_GIB\":" INV("1", "0", "1.0", "0", "1", "1") "}" },
	{ K_ENROLL, "{\"node\":\"host-1\",\"csr\":" CSR "}", NULL },
	{ K_ENROLL, "{\"csr\":" CSR ",\"node\":\"A.b_c-9\"}",
	    "{\"node\":\"A.b_c-9\",\"csr\":" CSR "}" },
	/* No final newline, CRLF line ends. */
	{ K_ENROLL, "{\"node\":\"n\",\"csr\":\"-----BEGIN CERTIFICATE REQUEST-----"
	    "\\r\\nQUJD\\r\\n-----END CERTIFICATE REQUEST-----\"}", NULL },
	{ K_RENEW, "{\"csr\":" CSR "}", NULL },
	{ K_CERT, "{\"certificate\":" CERT ",\"ca\":" CERT
	    ",\"expires_at\":1700000000000}", NULL },
	{ K_CERT, "{\"certificate\":" CERT ",\"ca\":" CHAIN
	    ",\"expires_at\":0}", NULL },
	{ K_REGISTER, "{\"agent_version\":\"0.1.0\",\"schedulable\":true,"
	    "\"host\":" HOST ",\"capacity\":" CAP "}", NULL },
	{ K_REGISTER, "{\"agent_version\":\"1.2.3~rc1+deb12_x-y\","
	    "\"schedulable\":false,\"host\":{},\"capacity\":" CAP "}", NULL },
	{ K_REGISTER_RESP, "{\"heartbeat_interval_s\":10,\"poll_timeout_s\":30,"
	    "\"node_ttl_s\":30}", NULL },
	{ K_REGISTER_RESP, "{\"heartbeat_interval_s\":1,\"poll_timeout_s\":3600,"
	    "\"node_ttl_s\":1}", NULL },
	{ K_POLL, "{\"commands\":[{\"seq\":7,\"command\":" CMD "}],"
	    "\"cursor\":7}", NULL },
	{ K_POLL, "{\"commands\":[],\"cursor\":0}", NULL },
	/* A command that will not decode does not fail the batch. */
	{ K_POLL, "{\"commands\":[{\"seq\":1,\"command\":{\"id\":\"x\"}},"
	    "{\"seq\":2,\"command\":" CMD "}],\"cursor\":2}", NULL },
	{ K_PROGRESS, "{\"percent\":50,\"message\":\"copying disk\"}", NULL },
	{ K_PROGRESS, "{\"percent\":0}", NULL },
	{ K_PROGRESS, "{\"percent\":100,\"message\":null}", "{\"percent\":100}" },
	{ K_HEARTBEAT, "{\"seq\":12,\"full\":false,\"vms\":[" VMI "],"
	    "\"removed\":[\"" U1 "\"],\"capacity\":" CAP "}", NULL },
	{ K_HEARTBEAT, "{\"seq\":1,\"full\":true,\"vms\":[],\"removed\":[],"
	    "\"capacity\":" CAP "}", NULL },
	{ K_HEARTBEAT, "{\"seq\":2,\"full\":false,\"vms\":[],\"removed\":[\""
	    U1_UPPER "\",\"" U2 "\"],\"capacity\":" CAP "}",
	    "{\"seq\":2,\"full\":false,\"vms\":[],\"removed\":[\"" U1 "\",\""
	    U2 "\"],\"capacity\":" CAP "}" },
	{ K_HEARTBEAT, "{\"seq\":3,\"full\":true,\"vms\":[],\"removed\":[],"
	    "\"capacity\":" CAP ",\"schedulable\":false}", NULL },
	{ K_HEARTBEAT, "{\"seq\":3,\"full\":true,\"vms\":[],\"removed\":[],"
	    "\"capacity\":" CAP ",\"schedulable\":true}",
	    "{\"seq\":3,\"full\":true,\"vms\":[],\"removed\":[],"
	    "\"capacity\":" CAP "}" },
	/* A report with snapshots, and one from an agent without them. */
	{ K_HEARTBEAT, "{\"seq\":3,\"full\":true,\"vms\":[" VMI_SNAPS ","
	    VMI "],\"removed\":[],\"capacity\":" CAP "}", NULL },
	{ K_HEARTBEAT_RESP, "{\"ack\":12,\"resync\":false,"
	    "\"heartbeat_interval_s\":10}", NULL },
	{ K_HEARTBEAT_RESP, "{\"ack\":0,\"resync\":true,"
	    "\"heartbeat_interval_s\":3600}", NULL },
	{ K_VM_CREATE, "{\"name\":\"web-1\",\"vcpus\":2,\"memory_mib\":1024,"
	    "\"disk_gib\":10,\"node\":\"host-1\"}", NULL },
	{ K_VM_CREATE, "{\"name\":\"web-1\",\"vcpus\":2,\"memory_mib\":1024}",
	    "{\"name\":\"web-1\",\"vcpus\":2,\"memory_mib\":1024,\"disk_gib\":0}" },
	{ K_VM_CREATE, "{\"name\":\"k\",\"vcpus\":1,\"memory_mib\":64,"
	    "\"disk_gib\":0,\"kernel\":\"vmlinuz\",\"initrd\":\"initrd.img\","
	    "\"cmdline\":\"console=ttyS0\",\"node\":\"n1\"}", NULL },
	/* the admin API takes a VM's NICs (carve-cp passes them on) */
	{ K_VM_CREATE, "{\"name\":\"n\",\"vcpus\":1,\"memory_mib\":64,"
	    "\"networks\":[{\"network\":\"default\"},{\"bridge\":\"br0\","
	    "\"mac\":\"52:54:00:AA:BB:CC\"}],\"node\":\"n1\"}",
	    "{\"name\":\"n\",\"vcpus\":1,\"memory_mib\":64,\"disk_gib\":0,"
	    "\"networks\":[{\"network\":\"default\"},{\"bridge\":\"br0\","
	    "\"mac\":\"52:54:00:aa:bb:cc\"}],\"node\":\"n1\"}" },
	/* and its data disks */
	{ K_VM_CREATE, "{\"name\":\"d\",\"vcpus\":1,\"memory_mib\":64,"
	    "\"disk_gib\":0,\"data_disks\":[{\"size_gib\":20},{\"size_gib\":1}]}",
	    NULL },
	{ K_VM_CREATED, "{\"id\":\"" U2 "\",\"node\":\"host-1\",\"command_id\":\""
	    U1 "\"}", NULL },
	{ K_COMMAND_REF, "{\"command_id\":\"" U1_UPPER "\"}",
	    "{\"command_id\":\"" U1 "\"}" },
	{ K_VM_ACTION, "{\"action\":\"stop\",\"force\":true}", NULL },
	{ K_VM_ACTION, "{\"action\":\"stop\"}",
	    "{\"action\":\"stop\",\"force\":false}" },
	{ K_VM_ACTION, "{\"action\":\"start\"}", NULL },
	{ K_VM_ACTION, "{\"action\":\"reboot\"}", NULL },
	{ K_VM_ACTION, "{\"action\":\"rebuild\"}", NULL },
	{ K_VM_ACTION, "{\"action\":\"rebuild\",\"image\":null}",
	    "{\"action\":\"rebuild\"}" },
	{ K_VM_ACTION, "{\"action\":\"stop\",\"image\":null}",
	    "{\"action\":\"stop\",\"force\":false}" },
	{ K_VM_ACTION, "{\"action\":\"rebuild\",\"image\":{\"url\":"
	    "\"https://img.example/d13.qcow2\",\"sha256\":\"" ASUM "\","
	    "\"format\":\"qcow2\"}}", NULL },
	{ K_VM_ACTION, "{\"action\":\"rebuild\",\"image\":{\"url\":"
	    "\"file:///i/b.raw\",\"sha256\":\"" ASUM_UPPER "\","
	    "\"format\":\"raw\"}}", "{\"action\":\"rebuild\",\"image\":"
	    "{\"url\":\"file:///i/b.raw\",\"sha256\":\"" ASUM "\","
	    "\"format\":\"raw\"}}" },
	{ K_VM_ACTION, "{\"action\":\"resize\",\"vcpus\":4,\"memory_mib\":2048}",
	    NULL },
	{ K_VM_ACTION, "{\"action\":\"resize\",\"memory_mib\":64}", NULL },
	{ K_VM_ACTION, "{\"vcpus\":1024,\"action\":\"resize\"}",
	    "{\"action\":\"resize\",\"vcpus\":1024}" },
	{ K_VM_ACTION, "{\"action\":\"start\",\"vcpus\":null}",
	    "{\"action\":\"start\"}" },
	{ K_VM, VMREC, NULL },
	/* disk_gib of a record is root + data disks: up to 9 x 65536 */
	{ K_VM, "{\"id\":\"" U2 "\",\"name\":\"web-1\",\"node\":\"host-1\","
	    "\"vcpus\":2,\"memory_mib\":1024,\"disk_gib\":589824,"
	    "\"desired_state\":\"running\",\"state\":\"running\","
	    "\"last_command_id\":\"" U1 "\",\"updated_at\":1}", NULL },
	{ K_SNAP_CREATE, "{\"name\":\"pre\",\"kind\":\"full\"}",
	    "{\"name\":\"pre\",\"kind\":\"full\",\"quiesce\":false}" },
	{ K_SNAP_CREATE, "{\"name\":\"d1\",\"kind\":\"disk\",\"quiesce\":true}",
	    NULL },
	{ K_SNAP_LIST, "{\"vm_id\":\"" U2 "\",\"snapshots\":[]}", NULL },
	{ K_SNAP_LIST, "{\"vm_id\":\"" U2 "\",\"snapshots\":" SNAPS "}", NULL },
	{ K_VM_LIST, "[]", NULL },
	{ K_VM_LIST, "[" VMREC "," VMREC "]", NULL },
	{ K_NODE, NODEREC, NULL },
	{ K_NODE, "{\"name\":\"n\",\"up\":false,\"schedulable\":false,"
	    "\"last_heartbeat\":null,\"registered_at\":1,\"agent_version\":\"0\","
	    "\"host\":{},\"capacity\":" CAP ",\"vms\":0}", NULL },
	{ K_NODE_LIST, "[" NODEREC "]", NULL },
	{ K_NODE_LIST, "[]", NULL },
	{ K_COMMAND_INFO, CI_HEAD "\"status\":\"pending\",\"created_at\":1,"
	    "\"delivered_at\":null,\"finished_at\":null,\"result\":null,"
	    "\"error\":null,\"progress\":null}", NULL },
	{ K_COMMAND_INFO, CI_HEAD "\"status\":\"succeeded\",\"created_at\":1,"
	    "\"delivered_at\":2,\"finished_at\":3,\"result\":{\"x\":[1]},"
	    "\"error\":null,\"progress\":{\"percent\":100,\"message\":\"done\"}}",
	    NULL },
	{ K_COMMAND_INFO, CI_HEAD "\"status\":\"failed\",\"created_at\":1,"
	    "\"delivered_at\":2,\"finished_at\":3,\"result\":null,"
	    "\"error\":{\"code\":\"insufficient_capacity\",\"message\":\"no\"},"
	    "\"progress\":null}", NULL },
	{ K_VM_MIGRATE, "{\"action\":\"migrate\"}", NULL },
	{ K_VM_MIGRATE, "{\"action\":\"migrate\",\"target_node\":\"host-2\","
	    "\"max_downtime_ms\":1,\"bandwidth_mibps\":0,\"timeout_s\":10}", NULL },
	{ K_VM_MIGRATE, "{\"action\":\"migrate\",\"target_node\":null,"
	    "\"max_downtime_ms\":60000,\"bandwidth_mibps\":1000000,"
	    "\"timeout_s\":86400}", "{\"action\":\"migrate\","
	    "\"max_downtime_ms\":60000,\"bandwidth_mibps\":1000000,"
	    "\"timeout_s\":86400}" },
	{ K_MIGRATION_REF, "{\"command_id\":\"" U1_UPPER "\",\"migration_id\":\""
	    U2 "\"}", "{\"command_id\":\"" U1 "\",\"migration_id\":\"" U2 "\"}" },
	{ K_MIGRATION, MIGREC, NULL },
	{ K_MIGRATION, MIG_HEAD "\"state\":\"preparing\",\"reason\":"
	    "\"evacuation\"," MIG_NULLS MIG_CMDS("null", "null", "null")
	    ",\"cancel_requested\":true,\"progress\":null,\"result\":null,"
	    "\"error\":{\"code\":\"conflict\",\"message\":\"x\"},"
	    "\"started_at\":1,\"updated_at\":1,\"finished_at\":null}", NULL },
	{ K_MIGRATION_LIST, "[]", NULL },
	{ K_MIGRATION_LIST, "[" MIGREC "," MIGREC "]", NULL },
	{ K_VM, "{\"id\":\"" U2 "\",\"name\":\"web-1\",\"node\":\"host-1\","
	    "\"vcpus\":2,\"memory_mib\":1024,\"disk_gib\":10,\"desired_state\":"
	    "\"running\",\"state\":\"running\",\"last_command_id\":\"" U1 "\","
	    "\"updated_at\":1700000000000,\"migration\":{\"id\":\"" U1 "\","
	    "\"state\":\"migrating\",\"target\":\"host-2\"}}", NULL },
	{ K_NODE, "{\"name\":\"n\",\"up\":true,\"schedulable\":false,"
	    "\"last_heartbeat\":null,\"registered_at\":1,\"agent_version\":\"0\","
	    "\"host\":{},\"capacity\":" CAP ",\"vms\":2,\"evacuation\":"
	    "{\"reason\":\"drain\",\"state\":\"running\",\"vms_left\":2}}", NULL },
};

/*
 * Every valid case decodes, encodes to the expected text, and the encoding
 * decodes again to the same text; the _buf path agrees.
 */
static void
test_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(valid_cases); i++) {
		const struct valid_case *vc = &valid_cases[i];
		const struct codec *c = &codecs[vc->kind];
		struct carve_error err = { 0 };
		json_object *in = parse(vc->json), *again;
		char *t1 = NULL, *t2 = NULL;

		if (c->c_rt(in, &t1, &err) != 0)
			fail_msg("%s case %zu refused: %s", c->c_name, i,
			    err.message);
		json_object_put(in);
		if (strcmp(t1, vc->want != NULL ? vc->want : vc->json) != 0)
			fail_msg("%s case %zu encodes as\n%s\nnot\n%s", c->c_name,
			    i, t1, vc->want != NULL ? vc->want : vc->json);
		again = parse(t1);
		assert_int_equal(c->c_rt(again, &t2, &err), 0);
		assert_string_equal(t1, t2);
		json_object_put(again);
		free(t1);
		free(t2);
	}
}

/* ------------------------------------------------------------ refused */

struct invalid_case {
	enum kind kind;
	const char *json;
	const char *msg;        /* substring of the message */
};

static const struct invalid_case invalid_cases[] = {
	/* error body */
	{ K_ERROR, "{\"error\":{\"code\":\"bogus\",\"message\":\"m\"}}",
	    "error.code \"bogus\" is not a known error code" },
	{ K_ERROR, "{\"error\":{\"code\":\"ok\",\"message\":\"m\"}}",
	    "error.code \"ok\"" },
	{ K_ERROR, "{\"error\":{\"code\":\"not_found\"}}", "message is required" },
	{ K_ERROR, "{\"error\":{\"code\":\"not_found\",\"message\":\"m\","
	    "\"detail\":1}}", "error: unknown key \"detail\"" },
	{ K_ERROR, "{\"error\":\"not found\"}", "error must be a JSON object" },
	{ K_ERROR, "{\"error\":{\"code\":\"not_found\",\"message\":\"m\"},"
	    "\"x\":1}", "error body: unknown key \"x\"" },
	{ K_ERROR, "{}", "error is required" },
	{ K_ERROR, "[]", "error body must be a JSON object" },
	/* empty */
	{ K_EMPTY, "{\"ok\":true}", "unknown key \"ok\"" },
	{ K_EMPTY, "[]", "must be a JSON object" },
	/* capacity */
	{ K_CAPACITY, "{\"VCPU\":" INV("8", "0", "4.0", "2", "32", "30")
	    ",\"MEMORY_MIB\":" INV("1", "0", "1.0", "0", "1", "1") "}",
	    "capacity.DISK_GIB is required" },
	{ K_CAPACITY, "{\"VCPU\":" INV("8", "0", "\"4\"", "2", "32", "30")
	    ",\"MEMORY_MIB\":" INV("1", "0", "1.0", "0", "1", "1")
	    ",\"DISK_GIB\":" INV("1", "0", "1.0", "0", "1", "1") "}",
	    "capacity.VCPU: allocation_ratio must be a number" },
	{ K_CAPACITY, "{\"VCPU\":" INV("8", "0", "-1.0", "2", "32", "30")
	    ",\"MEMORY_MIB\":" INV("1", "0", "1.0", "0", "1", "1")
	    ",\"DISK_GIB\":" INV("1", "0", "1.0", "0", "1", "1") "}",
	    "capacity.VCPU: allocation_ratio must be a finite number >= 0" },
	{ K_CAPACITY, "{\"VCPU\":" INV("8", "0", "4.0", "2", "32", "30")
	    ",\"MEMORY_MIB\":" INV("-1", "0", "1.0", "0", "1", "1")
	    ",\"DISK_GIB\":" INV("1", "0", "1.0", "0", "1", "1") "}",
	    "capacity.MEMORY_MIB: total must be between 0 and" },
	{ K_CAPACITY, "{\"VCPU\":" INV("8", "0", "4.0", "2", "32", "30")
	    ",\"MEMORY_MIB\":" INV("1", "0", "1.0", "0", "1", "1")
	    ",\"DISK_GIB\":" INV("1", "0", "1.0", "0", "1.5", "1") "}",
	    "capacity.DISK_GIB: allocatable must be an integer" },
	{ K_CAPACITY, "{\"VCPU\":{\"total\":1,\"reserved\":0,"
	    "\"allocation_ratio\":1,\"allocated\":0,\"allocatable\":1}}",
	    "capacity.VCPU: free is required" },
	{ K_CAPACITY, "{\"VCPU\":{\"total\":1,\"reserved\":0,\"used\":0,"
	    "\"allocation_ratio\":1,\"allocated\":0,\"allocatable\":1,"
	    "\"free\":1}}", "capacity.VCPU: inventory: unknown key \"used\"" },
	{ K_CAPACITY, "{\"GPU\":{}}", "capacity: unknown key \"GPU\"" },
	{ K_CAPACITY, "{\"VCPU\":[]}", "capacity.VCPU: inventory must be a JSON "
	    "object" },
	/* enroll */
	{ K_ENROLL, "{\"node\":\"host 1\",\"csr\":" CSR "}",
	    "node may only contain letters" },
	{ K_ENROLL, "{\"node\":\"\",\"csr\":" CSR "}", "node must not be empty" },
	{ K_ENROLL, "{\"node\":\"-x\",\"csr\":" CSR "}",
	    "node must start with a letter or digit" },
	{ K_ENROLL, "{\"node\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaa\",\"csr\":" CSR "}", "node is 65 bytes long" },
	{ K_ENROLL, "{\"node\":7,\"csr\":" CSR "}", "node must be a string" },
	{ K_ENROLL, "{\"csr\":" CSR "}", "node is required" },
	{ K_ENROLL, "{\"node\":\"h\"}", "csr is required" },
	{ K_ENROLL, "{\"node\":\"h\",\"csr\":" CSR ",\"token\":\"t\"}",
	    "enroll request: unknown key \"token\"" },
	{ K_ENROLL, "{\"node\":\"h\",\"csr\":\"hello\"}",
	    "csr must be one PEM CERTIFICATE REQUEST" },
	{ K_ENROLL, "{\"node\":\"h\",\"csr\":" CERT "}",
	    "csr must be one PEM CERTIFICATE REQUEST" },
	{ K_ENROLL, "{\"node\":\"h\",\"csr\":\"-----BEGIN CERTIFICATE REQUEST-----"
	    "\\n-----END CERTIFICATE REQUEST-----\\n\"}",
	    "csr must be one PEM" },
	{ K_ENROLL, "{\"node\":\"h\",\"csr\":\"-----BEGIN CERTIFICATE REQUEST-----"
	    "\\nQU JD\\n-----END CERTIFICATE REQUEST-----\\n\"}",
	    "csr must be one PEM" },
	{ K_ENROLL, "{\"node\":\"h\",\"csr\":\"-----BEGIN CERTIFICATE REQUEST-----"
	    "\\nQUJD\\n\"}", "csr must be one PEM" },
	{ K_ENROLL, "{\"node\":\"h\",\"csr\":\"x\\n-----BEGIN CERTIFICATE "
	    "REQUEST-----\\nQUJD\\n-----END CERTIFICATE REQUEST-----\\n\"}",
	    "csr must be one PEM" },
	{ K_ENROLL, "{\"node\":\"h\",\"csr\":\"-----BEGIN CERTIFICATE REQUEST-----"
	    "\\nQUJD\\n-----END CERTIFICATE REQUEST-----\\n-----BEGIN CERTIFICATE "
	    "REQUEST-----\\nQUJD\\n-----END CERTIFICATE REQUEST-----\\n\"}",
	    "csr must be one PEM" },
	{ K_ENROLL, "{\"node\":\"h\",\"csr\":\"\\n-----BEGIN CERTIFICATE "
	    "REQUEST-----\\nQUJD\\n-----END CERTIFICATE REQUEST-----\\n\"}",
	    "csr must be one PEM" },
	{ K_ENROLL, "{\"node\":\"h\",\"csr\":\"\"}", "csr must be one PEM" },
	{ K_ENROLL, "{\"node\":\"h\",\"csr\":null}", "csr is required" },
	{ K_ENROLL, "{\"node\":\"h\",\"csr\":[]}", "csr must be a string" },
	/* renew */
	{ K_RENEW, "{\"node\":\"h\",\"csr\":" CSR "}",
	    "renew request: unknown key \"node\"" },
	{ K_RENEW, "{\"csr\":\"-----BEGIN PRIVATE KEY-----\\nQUJD\\n"
	    "-----END PRIVATE KEY-----\\n\"}", "csr must be one PEM" },
	{ K_RENEW, "{}", "csr is required" },
	/* certificate response */
	{ K_CERT, "{\"certificate\":" CHAIN ",\"ca\":" CERT
	    ",\"expires_at\":1}", "certificate must be one PEM CERTIFICATE" },
	{ K_CERT, "{\"certificate\":" CERT ",\"ca\":\"\",\"expires_at\":1}",
	    "ca must be one or more PEM CERTIFICATE" },
	{ K_CERT, "{\"certificate\":" CERT ",\"ca\":" CERT
	    ",\"expires_at\":-1}", "expires_at must be between 0 and" },
	{ K_CERT, "{\"certificate\":" CERT ",\"ca\":" CERT
	    ",\"expires_at\":\"soon\"}", "expires_at must be an integer" },
	{ K_CERT, "{\"certificate\":" CERT ",\"ca\":" CERT "}",
	    "expires_at is required" },
	/* register */
	{ K_REGISTER, "{\"agent_version\":\"0.1 beta\",\"schedulable\":true,"
	    "\"host\":{},\"capacity\":" CAP "}",
	    "agent_version may only contain" },
	{ K_REGISTER, "{\"agent_version\":\"\",\"schedulable\":true,"
	    "\"host\":{},\"capacity\":" CAP "}", "agent_version must not be empty" },
	{ K_REGISTER, "{\"agent_version\":\"0123456789012345678901234567890123\","
	    "\"schedulable\":true,\"host\":{},\"capacity\":" CAP "}",
	    "agent_version is 34 bytes long" },
	{ K_REGISTER, "{\"agent_version\":\"0.1.0\",\"schedulable\":\"yes\","
	    "\"host\":{},\"capacity\":" CAP "}", "schedulable must be a boolean" },
	{ K_REGISTER, "{\"agent_version\":\"0.1.0\",\"schedulable\":true,"
	    "\"host\":[],\"capacity\":" CAP "}", "host must be a JSON object" },
	{ K_REGISTER, "{\"agent_version\":\"0.1.0\",\"schedulable\":true,"
	    "\"capacity\":" CAP "}", "host is required" },
	{ K_REGISTER, "{\"agent_version\":\"0.1.0\",\"schedulable\":true,"
	    "\"host\":{}}", "capacity is required" },
	{ K_REGISTER, "{\"agent_version\":\"0.1.0\",\"schedulable\":true,"
	    "\"host\":{},\"capacity\":{}}", "capacity.VCPU is required" },
	{ K_REGISTER, "{\"agent_version\":\"0.1.0\",\"schedulable\":true,"
	    "\"host\":{},\"capacity\":" CAP ",\"vms\":[]}",
	    "register request: unknown key \"vms\"" },
	/* register response */
	{ K_REGISTER_RESP, "{\"heartbeat_interval_s\":0,\"poll_timeout_s\":30,"
	    "\"node_ttl_s\":30}",
	    "heartbeat_interval_s must be between 1 and 3600" },
	{ K_REGISTER_RESP, "{\"heartbeat_interval_s\":10,\"poll_timeout_s\":3601,"
	    "\"node_ttl_s\":30}", "poll_timeout_s must be between 1 and 3600" },
	{ K_REGISTER_RESP, "{\"heartbeat_interval_s\":10,\"poll_timeout_s\":30}",
	    "node_ttl_s is required" },
	{ K_REGISTER_RESP, "{\"heartbeat_interval_s\":10.5,\"poll_timeout_s\":30,"
	    "\"node_ttl_s\":30}", "heartbeat_interval_s must be an integer" },
	/* poll response */
	{ K_POLL, "{\"commands\":[{\"seq\":-1,\"command\":" CMD "}],"
	    "\"cursor\":7}", "commands[0]: seq must be between 1 and" },
	{ K_POLL, "{\"commands\":[{\"seq\":1,\"command\":" CMD "},{\"seq\":0,"
	    "\"command\":" CMD "}],\"cursor\":7}",
	    "commands[1]: seq must be between 1 and" },
	{ K_POLL, "{\"commands\":[{\"seq\":1,\"command\":\"vm.start\"}],"
	    "\"cursor\":1}", "commands[0]: command must be a JSON object" },
	{ K_POLL, "{\"commands\":[{\"seq\":1}],\"cursor\":1}",
	    "commands[0]: command is required" },
	{ K_POLL, "{\"commands\":[{\"seq\":1,\"command\":" CMD ",\"at\":1}],"
	    "\"cursor\":1}", "commands[0]: element: unknown key \"at\"" },
	{ K_POLL, "{\"commands\":[7],\"cursor\":1}",
	    "commands[0]: element must be a JSON object" },
	{ K_POLL, "{\"commands\":{},\"cursor\":0}",
	    "commands must be a JSON array" },
	{ K_POLL, "{\"cursor\":0}", "commands is required" },
	{ K_POLL, "{\"commands\":[],\"cursor\":-1}",
	    "cursor must be between 0 and" },
	{ K_POLL, "{\"commands\":[]}", "cursor is required" },
	/* progress */
	{ K_PROGRESS, "{\"percent\":101}", "percent must be between 0 and 100" },
	{ K_PROGRESS, "{\"percent\":-1}", "percent must be between 0 and 100" },
	{ K_PROGRESS, "{\"percent\":\"50\"}", "percent must be an integer" },
	{ K_PROGRESS, "{\"percent\":50,\"message\":5}",
	    "message must be a string" },
	{ K_PROGRESS, "{\"message\":\"x\"}", "percent is required" },
	{ K_PROGRESS, "{\"percent\":5,\"eta_s\":5}",
	    "progress: unknown key \"eta_s\"" },
	/* heartbeat */
	{ K_HEARTBEAT, "{\"seq\":1,\"full\":true,\"vms\":{},\"removed\":[],"
	    "\"capacity\":" CAP "}", "vms must be a JSON array" },
	{ K_HEARTBEAT, "{\"seq\":1,\"full\":true,\"vms\":null,\"removed\":[],"
	    "\"capacity\":" CAP "}", "vms is required" },
	{ K_HEARTBEAT, "{\"seq\":-1,\"full\":true,\"vms\":[],\"removed\":[],"
	    "\"capacity\":" CAP "}", "seq must be between 1 and" },
	{ K_HEARTBEAT, "{\"seq\":0,\"full\":true,\"vms\":[],\"removed\":[],"
	    "\"capacity\":" CAP "}", "seq must be between 1 and" },
	{ K_HEARTBEAT, "{\"seq\":1,\"full\":1,\"vms\":[],\"removed\":[],"
	    "\"capacity\":" CAP "}", "full must be a boolean" },
	{ K_HEARTBEAT, "{\"seq\":1,\"vms\":[],\"removed\":[],"
	    "\"capacity\":" CAP "}", "full is required" },
	{ K_HEARTBEAT, "{\"seq\":1,\"full\":true,\"vms\":[],"
	    "\"capacity\":" CAP "}", "removed is required" },
	{ K_HEARTBEAT, "{\"seq\":1,\"full\":true,\"vms\":[],\"removed\":[]}",
	    "capacity is required" },
	{ K_HEARTBEAT, "{\"seq\":1,\"full\":true,\"vms\":[],\"removed\":[\"" U1
	    "\",\"vm-1\"],\"capacity\":" CAP "}", "removed[1] must be a UUID" },
	{ K_HEARTBEAT, "{\"seq\":1,\"full\":true,\"vms\":[],\"removed\":[7],"
	    "\"capacity\":" CAP "}", "removed[0] must be a UUID" },
	{ K_HEARTBEAT, "{\"seq\":1,\"full\":true,\"vms\":[" VMI ",{\"id\":\"" U1
	    "\",\"name\":\"a b\",\"state\":\"running\",\"vcpus\":1,"
	    "\"memory_mib\":64,\"disk_gib\":0,\"created_at\":1}],\"removed\":[],"
	    "\"capacity\":" CAP "}", "vms[1]: name may only contain" },
	{ K_HEARTBEAT, "{\"seq\":1,\"full\":true,\"vms\":[" VMI "],\"removed\":[],"
	    "\"capacity\":{\"VCPU\":1}}", "capacity.VCPU: inventory must be" },
	{ K_HEARTBEAT, "{\"seq\":1,\"full\":true,\"vms\":[],\"removed\":[],"
	    "\"capacity\":" CAP ",\"changed\":[]}",
	    "heartbeat: unknown key \"changed\"" },
	{ K_HEARTBEAT, "{\"seq\":1,\"full\":true,\"vms\":[],\"removed\":[],"
	    "\"capacity\":" CAP ",\"schedulable\":0}",
	    "schedulable must be a boolean" },
	/* heartbeat response */
	{ K_HEARTBEAT_RESP, "{\"ack\":-1,\"resync\":false,"
	    "\"heartbeat_interval_s\":10}", "ack must be between 0 and" },
	{ K_HEARTBEAT_RESP, "{\"ack\":1,\"heartbeat_interval_s\":10}",
	    "resync is required" },
	{ K_HEARTBEAT_RESP, "{\"ack\":1,\"resync\":false,"
	    "\"heartbeat_interval_s\":0}",
	    "heartbeat_interval_s must be between 1 and 3600" },
	/* admin: VM create */
	{ K_VM_CREATE, "{\"name\":\"web-1\",\"vcpus\":2,\"memory_mib\":1024,"
	    "\"node\":\"no/de\"}", "node may only contain" },
	{ K_VM_CREATE, "{\"name\":\"web 1\",\"vcpus\":2,\"memory_mib\":1024}",
	    "name may only contain" },
	{ K_VM_CREATE, "{\"name\":\"w\",\"vcpus\":2,\"memory_mib\":10}",
	    "memory_mib must be at least 64 MiB" },
	{ K_VM_CREATE, "{\"name\":\"w\",\"vcpus\":0,\"memory_mib\":64}",
	    "vcpus must be between 1 and 1024" },
	{ K_VM_CREATE, "{\"name\":\"w\",\"vcpus\":1,\"memory_mib\":64,"
	    "\"zone\":\"a\"}", "VM create request: unknown key \"zone\"" },
	{ K_VM_CREATE, "{\"name\":\"w\",\"vcpus\":1,\"memory_mib\":64,"
	    "\"initrd\":\"i\"}", "initrd requires kernel" },
	{ K_VM_CREATE, "{\"name\":\"w\",\"vcpus\":1,\"memory_mib\":64,"
	    "\"networks\":[{\"network\":\"a\",\"mac\":\"01:00:00:00:00:01\"}]}",
	    "networks[0]: mac \"01:00:00:00:00:01\" is a multicast address" },
	{ K_VM_CREATE, "{\"vcpus\":1,\"memory_mib\":64,\"node\":\"n\"}",
	    "name is required" },
	/* admin: responses */
	{ K_VM_CREATED, "{\"id\":\"web-1\",\"node\":\"host-1\",\"command_id\":\""
	    U1 "\"}", "id must be a UUID" },
	{ K_VM_CREATED, "{\"id\":\"" U2 "\",\"node\":\"host-1\"}",
	    "command_id is required" },
	{ K_COMMAND_REF, "{\"command_id\":\"" U1 "x\"}",
	    "command_id must be a UUID" },
	{ K_COMMAND_REF, "{\"command_id\":\"" U1 "\",\"id\":\"" U1 "\"}",
	    "command reference: unknown key \"id\"" },
	/* admin: actions */
	{ K_VM_ACTION, "{\"action\":\"pause\"}",
	    "action \"pause\" is unknown (expected start, stop, reboot, "
	    "resize or rebuild)" },
	{ K_VM_ACTION, "{\"action\":\"rebuild\",\"force\":true}",
	    "force applies to the stop action only" },
	{ K_VM_ACTION, "{\"action\":\"rebuild\",\"vcpus\":2}",
	    "vcpus and memory_mib apply to the resize action only" },
	{ K_VM_ACTION, "{\"action\":\"start\",\"image\":{\"url\":"
	    "\"https://a/x\",\"sha256\":\"" ASUM "\",\"format\":\"raw\"}}",
	    "image applies to the rebuild action only" },
	{ K_VM_ACTION, "{\"action\":\"resize\",\"vcpus\":2,\"image\":{}}",
	    "image applies to the rebuild action only" },
	{ K_VM_ACTION, "{\"action\":\"rebuild\",\"image\":{\"url\":"
	    "\"ftp://a/x\",\"sha256\":\"" ASUM "\",\"format\":\"raw\"}}",
	    "must start with https://, http:// or file://" },
	{ K_VM_ACTION, "{\"action\":\"rebuild\",\"image\":{\"url\":"
	    "\"https://a/x\",\"format\":\"raw\"}}", "sha256 is required" },
	{ K_VM_ACTION, "{\"action\":\"rebuild\",\"image\":\"https://a/x\"}",
	    "image must be a JSON object" },
	{ K_VM_ACTION, "{\"action\":\"resize\"}",
	    "vm.resize needs vcpus, memory_mib or both" },
	{ K_VM_ACTION, "{\"action\":\"resize\",\"vcpus\":0}",
	    "vcpus must be between 1 and 1024" },
	{ K_VM_ACTION, "{\"action\":\"resize\",\"vcpus\":\"4\"}",
	    "vcpus must be an integer" },
	{ K_VM_ACTION, "{\"action\":\"resize\",\"memory_mib\":32}",
	    "memory_mib must be at least 64 MiB" },
	{ K_VM_ACTION, "{\"action\":\"resize\",\"memory_mib\":16777217}",
	    "memory_mib must be at most 16777216 MiB" },
	{ K_VM_ACTION, "{\"action\":\"resize\",\"vcpus\":2,\"force\":true}",
	    "force applies to the stop action only" },
	{ K_VM_ACTION, "{\"action\":\"stop\",\"vcpus\":2}",
	    "vcpus and memory_mib apply to the resize action only" },
	{ K_VM_ACTION, "{\"action\":\"reboot\",\"memory_mib\":512}",
	    "vcpus and memory_mib apply to the resize action only" },
	{ K_VM_ACTION, "{\"action\":\"resize\",\"disk_gib\":5}",
	    "VM action request: unknown key \"disk_gib\"" },
	{ K_VM_ACTION, "{\"action\":\"start\",\"force\":true}",
	    "force applies to the stop action only" },
	{ K_VM_ACTION, "{\"action\":\"stop\",\"force\":\"yes\"}",
	    "force must be a boolean" },
	{ K_VM_ACTION, "{\"force\":true}", "action is required" },
	{ K_VM_ACTION, "{\"action\":\"stop\",\"timeout_s\":5}",
	    "VM action request: unknown key \"timeout_s\"" },
	/* admin: snapshots */
	{ K_SNAP_CREATE, "{\"name\":\"pre\"}", "kind is required" },
	{ K_SNAP_CREATE, "{\"kind\":\"disk\"}", "name is required" },
	{ K_SNAP_CREATE, "{\"name\":\"a b\",\"kind\":\"disk\"}",
	    "name may only contain" },
	{ K_SNAP_CREATE, "{\"name\":\"a\",\"kind\":\"memory\"}",
	    "must be \"full\" or \"disk\"" },
	{ K_SNAP_CREATE, "{\"name\":\"a\",\"kind\":\"full\",\"quiesce\":true}",
	    "quiesce applies to disk snapshots only" },
	{ K_SNAP_CREATE, "{\"name\":\"a\",\"kind\":\"disk\",\"node\":\"n\"}",
	    "unknown key \"node\"" },
	{ K_SNAP_LIST, "{\"snapshots\":[]}", "vm_id is required" },
	{ K_SNAP_LIST, "{\"vm_id\":\"" U2 "\"}", "snapshots must be an array" },
	{ K_SNAP_LIST, "{\"vm_id\":\"" U2 "\",\"snapshots\":[{\"name\":\"a\"}]}",
	    "kind is required" },
	{ K_SNAP_LIST, "{\"vm_id\":\"" U2 "\",\"snapshots\":[{\"name\":\"a\","
	    "\"kind\":\"full\",\"created_at\":1},{\"name\":\"a\",\"kind\":"
	    "\"disk\",\"created_at\":2}]}", "snapshot \"a\" is listed twice" },
	{ K_SNAP_LIST, "{\"vm_id\":\"" U2 "\",\"snapshots\":[],\"n\":0}",
	    "snapshot list: unknown key \"n\"" },
	{ K_HEARTBEAT, "{\"seq\":3,\"full\":true,\"vms\":[{\"id\":\"" U2 "\","
	    "\"name\":\"w\",\"state\":\"running\",\"vcpus\":1,\"memory_mib\":64,"
	    "\"disk_gib\":0,\"created_at\":0,\"snapshots\":[{\"name\":\"a\","
	    "\"kind\":\"warm\",\"created_at\":1}]}],\"removed\":[],"
	    "\"capacity\":" CAP "}", "snapshot kind must be" },
	/* admin: VM record */
	{ K_VM, "{\"id\":\"" U2 "\",\"name\":\"web-1\",\"node\":\"host-1\","
	    "\"vcpus\":2,\"memory_mib\":1024,\"disk_gib\":589825,"
	    "\"desired_state\":\"running\",\"state\":\"running\","
	    "\"last_command_id\":\"" U1 "\",\"updated_at\":1}",
	    "disk_gib must be between 0 and 589824" },
	{ K_VM_CREATE, "{\"name\":\"d\",\"vcpus\":1,\"memory_mib\":64,"
	    "\"data_disks\":[{\"size_gib\":0}]}",
	    "data_disks[0].size_gib must be at least 1 GiB" },
	{ K_VM, "{\"id\":\"" U2 "\",\"name\":\"web-1\",\"node\":\"host-1\","
	    "\"vcpus\":2,\"memory_mib\":1024,\"disk_gib\":10,\"desired_state\":"
	    "\"running\",\"state\":\"bogus\",\"last_command_id\":\"" U1 "\","
	    "\"updated_at\":1}", "state must be pending or one of" },
	{ K_VM, "{\"id\":\"" U2 "\",\"name\":\"web-1\",\"node\":\"host-1\","
	    "\"vcpus\":2,\"memory_mib\":1024,\"disk_gib\":10,\"desired_state\":"
	    "\"gone\",\"state\":\"running\",\"last_command_id\":\"" U1 "\","
	    "\"updated_at\":1}", "desired_state must be" },
	{ K_VM, "{\"id\":\"" U2 "\",\"name\":\"web-1\",\"node\":\"host-1\","
	    "\"vcpus\":2,\"memory_mib\":1024,\"disk_gib\":10,\"desired_state\":"
	    "\"running\",\"state\":\"running\",\"last_command_id\":\"" U1 "\"}",
	    "updated_at is required" },
	{ K_VM, "{\"id\":\"" U2 "\",\"name\":\"web-1\",\"node\":\"host-1\","
	    "\"vcpus\":2,\"memory_mib\":1024,\"disk_gib\":10,\"desired_state\":"
	    "\"running\",\"state\":\"running\",\"last_command_id\":null,"
	    "\"updated_at\":1}", "last_command_id is required" },
	/* admin: lists */
	{ K_VM_LIST, "{}", "VM list must be a JSON array" },
	{ K_VM_LIST, "[" VMREC ",{}]", "[1]: id is required" },
	{ K_NODE_LIST, "[{}]", "[0]: " },
	{ K_NODE_LIST, "{\"nodes\":[]}", "node list must be a JSON array" },
	/* admin: node record */
	{ K_NODE, "{\"name\":\"n\",\"up\":false,\"schedulable\":false,"
	    "\"registered_at\":1,\"agent_version\":\"0\","
	    "\"host\":{},\"capacity\":" CAP ",\"vms\":0}",
	    "last_heartbeat is required (it may be null)" },
	{ K_NODE, "{\"name\":\"n\",\"up\":false,\"schedulable\":false,"
	    "\"last_heartbeat\":0,\"registered_at\":1,\"agent_version\":\"0\","
	    "\"host\":{},\"capacity\":" CAP ",\"vms\":0}",
	    "last_heartbeat must be between 1 and" },
	{ K_NODE, "{\"name\":\"n\",\"up\":\"true\",\"schedulable\":false,"
	    "\"last_heartbeat\":null,\"registered_at\":1,\"agent_version\":\"0\","
	    "\"host\":{},\"capacity\":" CAP ",\"vms\":0}",
	    "up must be a boolean" },
	{ K_NODE, "{\"name\":\"n\",\"up\":false,\"schedulable\":false,"
	    "\"last_heartbeat\":null,\"registered_at\":1,\"agent_version\":\"0\","
	    "\"host\":{},\"capacity\":" CAP ",\"vms\":-1}",
	    "vms must be between 0 and" },
	/* admin: command record */
	{ K_COMMAND_INFO, CI_HEAD "\"status\":\"failed\",\"created_at\":1,"
	    "\"delivered_at\":2,\"finished_at\":3,\"result\":null,"
	    "\"error\":null,\"progress\":null}",
	    "error is required when status is \"failed\"" },
	{ K_COMMAND_INFO, CI_HEAD "\"status\":\"pending\",\"created_at\":1,"
	    "\"delivered_at\":null,\"finished_at\":null,\"result\":null,"
	    "\"error\":{\"code\":\"conflict\",\"message\":\"m\"},"
	    "\"progress\":null}", "error must be null unless status is" },
	{ K_COMMAND_INFO, CI_HEAD "\"status\":\"failed\",\"created_at\":1,"
	    "\"delivered_at\":2,\"finished_at\":3,\"result\":null,"
	    "\"error\":{\"code\":\"nope\",\"message\":\"m\"},\"progress\":null}",
	    "error.code \"nope\" is not a known error code" },
	{ K_COMMAND_INFO, CI_HEAD "\"status\":\"done\",\"created_at\":1,"
	    "\"delivered_at\":null,\"finished_at\":null,\"result\":null,"
	    "\"error\":null,\"progress\":null}", "status must be \"pending\"" },
	{ K_COMMAND_INFO, "{\"id\":\"" U1 "\",\"type\":\"vm.teleport\","
	    "\"vm_id\":\"" U2 "\",\"node\":\"host-1\",\"status\":\"pending\","
	    "\"created_at\":1,\"delivered_at\":null,\"finished_at\":null,"
	    "\"result\":null,\"error\":null,\"progress\":null}",
	    "unknown command type \"vm.teleport\"" },
	{ K_COMMAND_INFO, CI_HEAD "\"status\":\"pending\",\"created_at\":1,"
	    "\"delivered_at\":null,\"finished_at\":null,"
	    "\"error\":null,\"progress\":null}",
	    "result is required (it may be null)" },
	{ K_COMMAND_INFO, CI_HEAD "\"status\":\"pending\",\"created_at\":1,"
	    "\"finished_at\":null,\"result\":null,"
	    "\"error\":null,\"progress\":null}",
	    "delivered_at is required (it may be null)" },
	{ K_COMMAND_INFO, CI_HEAD "\"status\":\"delivered\",\"created_at\":1,"
	    "\"delivered_at\":2,\"finished_at\":null,\"result\":null,"
	    "\"error\":null,\"progress\":{\"percent\":101}}",
	    "progress: percent must be between 0 and 100" },
	{ K_COMMAND_INFO, CI_HEAD "\"status\":\"succeeded\",\"created_at\":1,"
	    "\"delivered_at\":2,\"finished_at\":3,\"result\":[],"
	    "\"error\":null,\"progress\":null}", "result must be a JSON object" },
	/* migrations */
	{ K_VM_MIGRATE, "{\"action\":\"stop\"}", "action must be \"migrate\"" },
	{ K_VM_MIGRATE, "{\"action\":\"migrate\",\"force\":true}",
	    "unknown key \"force\"" },
	{ K_VM_MIGRATE, "{\"action\":\"migrate\",\"max_downtime_ms\":0}",
	    "max_downtime_ms must be between 1 and 60000" },
	{ K_VM_MIGRATE, "{\"action\":\"migrate\",\"bandwidth_mibps\":-1}",
	    "bandwidth_mibps must be between 0 and 1000000" },
	{ K_VM_MIGRATE, "{\"action\":\"migrate\",\"timeout_s\":9}",
	    "timeout_s must be between 10 and 86400" },
	{ K_VM_MIGRATE, "{\"action\":\"migrate\",\"target_node\":\"a b\"}",
	    "target_node may only contain" },
	{ K_MIGRATION_REF, "{\"command_id\":\"" U1 "\"}",
	    "migration_id is required" },
	{ K_MIGRATION, MIG_HEAD "\"state\":\"moving\",\"reason\":\"admin\","
	    MIG_NULLS MIG_CMDS("null", "null", "null") ",\"cancel_requested\":"
	    "false,\"progress\":null,\"result\":null,\"error\":null,"
	    "\"started_at\":1,\"updated_at\":1,\"finished_at\":null}",
	    "state must be preparing" },
	{ K_MIGRATION, MIG_HEAD "\"state\":\"done\",\"reason\":\"whim\","
	    MIG_NULLS MIG_CMDS("null", "null", "null") ",\"cancel_requested\":"
	    "false,\"progress\":null,\"result\":null,\"error\":null,"
	    "\"started_at\":1,\"updated_at\":1,\"finished_at\":null}",
	    "reason must be" },
	{ K_MIGRATION, MIG_HEAD "\"state\":\"done\",\"reason\":\"admin\","
	    "\"bandwidth_mibps\":null,\"timeout_s\":null,"
	    MIG_CMDS("null", "null", "null") ",\"cancel_requested\":"
	    "false,\"progress\":null,\"result\":null,\"error\":null,"
	    "\"started_at\":1,\"updated_at\":1,\"finished_at\":null}",
	    "max_downtime_ms is required (it may be null)" },
	{ K_MIGRATION, MIG_HEAD "\"state\":\"done\",\"reason\":\"admin\","
	    MIG_NULLS "\"commands\":{\"prepare\":\"" U1 "\",\"migrate\":\"x\","
	    "\"finish\":null,\"cancel\":null},\"cancel_requested\":"
	    "false,\"progress\":null,\"result\":null,\"error\":null,"
	    "\"started_at\":1,\"updated_at\":1,\"finished_at\":null}",
	    "commands: migrate must be a UUID" },
	{ K_MIGRATION, MIG_HEAD "\"state\":\"done\",\"reason\":\"admin\","
	    MIG_NULLS MIG_CMDS("null", "null", "null") ",\"cancel_requested\":"
	    "false,\"progress\":{\"percent\":101},\"result\":null,"
	    "\"error\":null,\"started_at\":1,\"updated_at\":1,"
	    "\"finished_at\":null}",
	    "progress: percent must be between 0 and 100" },
	{ K_MIGRATION_LIST, "{}", "migration list must be a JSON array" },
	{ K_VM, "{\"id\":\"" U2 "\",\"name\":\"web-1\",\"node\":\"host-1\","
	    "\"vcpus\":2,\"memory_mib\":1024,\"disk_gib\":10,\"desired_state\":"
	    "\"running\",\"state\":\"running\",\"last_command_id\":\"" U1 "\","
	    "\"updated_at\":1,\"migration\":{\"id\":\"" U1 "\","
	    "\"state\":\"gone\",\"target\":\"host-2\"}}",
	    "migration.state must be" },
	{ K_VM, "{\"id\":\"" U2 "\",\"name\":\"web-1\",\"node\":\"host-1\","
	    "\"vcpus\":2,\"memory_mib\":1024,\"disk_gib\":10,\"desired_state\":"
	    "\"running\",\"state\":\"running\",\"last_command_id\":\"" U1 "\","
	    "\"updated_at\":1,\"migration\":{\"id\":\"" U1 "\","
	    "\"state\":\"done\"}}", "migration: target is required" },
	{ K_NODE, "{\"name\":\"n\",\"up\":true,\"schedulable\":false,"
	    "\"last_heartbeat\":null,\"registered_at\":1,\"agent_version\":\"0\","
	    "\"host\":{},\"capacity\":" CAP ",\"vms\":2,\"evacuation\":[]}",
	    "evacuation must be a JSON object" },
};

static void
test_invalid(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(invalid_cases); i++) {
		const struct invalid_case *ic = &invalid_cases[i];
		const struct codec *c = &codecs[ic->kind];
		struct carve_error err = { 0 };
		json_object *in = parse(ic->json);
		char *out = NULL;

		if (c->c_rt(in, &out, &err) != -1)
			fail_msg("%s case %zu accepted: %s\n-> %s", c->c_name, i,
			    ic->json, out);
		json_object_put(in);
		assert_null(out);
		assert_int_equal(err.code, CARVE_EINVAL);
		if (strstr(err.message, ic->msg) == NULL)
			fail_msg("%s case %zu: message \"%s\" lacks \"%s\"",
			    c->c_name, i, err.message, ic->msg);
	}
}

/* A decoder given NULL for err must still refuse (and not crash). */
static void
test_invalid_null_err(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(invalid_cases); i++) {
		json_object *in = parse(invalid_cases[i].json);
		char *out = NULL;

		assert_int_equal(codecs[invalid_cases[i].kind].c_rt(in, &out,
		    NULL), -1);
		json_object_put(in);
	}
}

/* ------------------------------------------------------------ bytes */

static void
test_decode_buf(void **state)
{
	static const char enroll[] = "{\"node\":\"h\",\"csr\":" CSR "}";
	static const char poll[] = "{\"commands\":[{\"seq\":3,\"command\":" CMD
	    "}],\"cursor\":3}";
	static const char dup[] = "{\"error\":{\"code\":\"conflict\","
	    "\"message\":\"a\",\"code\":\"not_found\"}}";
	struct carve_error err = { 0 };
	struct proto_enroll_req er;
	struct proto_poll_resp pr;
	struct proto_heartbeat_resp ha;
	struct carve_error body;
	struct command cmd;
	char *big, *t;

	(void)state;
	assert_int_equal(proto_enroll_req_decode_buf(enroll, strlen(enroll), &er,
	    &err), 0);
	assert_string_equal(er.en_node, "h");
	assert_non_null(strstr(er.en_csr, "END CERTIFICATE REQUEST"));
	proto_enroll_req_clear(&er);
	assert_null(er.en_csr);

	/* The command reference outlives the parsed tree. */
	assert_int_equal(proto_poll_resp_decode_buf(poll, strlen(poll), &pr,
	    &err), 0);
	assert_int_equal(pr.pr_nitems, 1);
	assert_int_equal(pr.pr_items[0].pi_seq, 3);
	assert_int_equal(pr.pr_cursor, 3);
	assert_int_equal(command_decode(pr.pr_items[0].pi_command, &cmd, &err),
	    0);
	assert_int_equal(cmd.cmd_type, CMD_VM_START);
	assert_string_equal(cmd.cmd_id, U1);
	command_clear(&cmd);
	t = text(proto_poll_resp_encode(&pr));
	assert_string_equal(t, poll);
	free(t);
	proto_poll_resp_clear(&pr);

	/* Not JSON at all, trailing data, duplicate keys. */
	assert_int_equal(proto_heartbeat_resp_decode_buf("<html>", 6, &ha,
	    &err), -1);
	assert_int_equal(err.code, CARVE_EINVAL);
	assert_non_null(strstr(err.message, "invalid JSON"));
	error_clear(&err);
	assert_int_equal(proto_error_decode_buf(dup, strlen(dup), &body, &err),
	    -1);
	assert_non_null(strstr(err.message, "duplicate key"));
	error_clear(&err);

	/* Requests above 1 MiB, responses above 4 MiB: payload_too_large. */
	big = xmalloc(PROTO_RESPONSE_MAX + 1);
	memset(big, ' ', PROTO_RESPONSE_MAX + 1);
	memcpy(big, "{}", 2);
	assert_int_equal(proto_enroll_req_decode_buf(big, PROTO_REQUEST_MAX + 1,
	    &er, &err), -1);
	assert_int_equal(err.code, CARVE_ETOOBIG);
	assert_non_null(strstr(err.message, "at most 1048576"));
	error_clear(&err);
	assert_int_equal(proto_empty_decode_buf(big, PROTO_REQUEST_MAX + 1,
	    &err), 0);
	assert_int_equal(proto_empty_decode_buf(big, PROTO_RESPONSE_MAX + 1,
	    &err), -1);
	assert_int_equal(err.code, CARVE_ETOOBIG);
	error_clear(&err);
	assert_int_equal(proto_error_decode_buf(big, PROTO_RESPONSE_MAX + 1,
	    &body, &err), -1);
	assert_int_equal(err.code, CARVE_ETOOBIG);
	free(big);
}

/* More than PROTO_POLL_MAX_COMMANDS elements: the server must page. */
static void
test_poll_limit(void **state)
{
	struct carve_error err = { 0 };
	struct proto_poll_resp pr;
	json_object *o, *arr;

	(void)state;
	o = json_object_new_object();
	arr = json_object_new_array();
	for (int i = 1; i <= PROTO_POLL_MAX_COMMANDS + 1; i++) {
		json_object *e = json_object_new_object();
		jsonx_add_int(e, "seq", i);
		json_object_object_add(e, "command", json_object_new_object());
		json_object_array_add(arr, e);
		if (i == PROTO_POLL_MAX_COMMANDS) {
			jsonx_add_int(o, "cursor", i);
			json_object_object_add(o, "commands", json_object_get(arr));
			assert_int_equal(proto_poll_resp_decode(o, &pr, &err), 0);
			assert_int_equal(pr.pr_nitems, PROTO_POLL_MAX_COMMANDS);
			proto_poll_resp_clear(&pr);
		}
	}
	assert_int_equal(proto_poll_resp_decode(o, &pr, &err), -1);
	assert_non_null(strstr(err.message, "commands has 257 elements"));
	json_object_put(arr);
	json_object_put(o);
}

/* ------------------------------------------------------------ encoders */

/* Messages built in C (as carved and carve-cp do) encode as documented. */
static void
test_encode_built(void **state)
{
	struct carve_error e = { .code = CARVE_ECAPACITY }, err = { 0 };
	struct proto_heartbeat_req hb = { 0 }, back;
	struct proto_command_info ci = { 0 };
	struct proto_capacity cap = { 0 };
	char *t;

	(void)state;
	snprintf(e.message, sizeof(e.message), "no node has 4 vCPUs free");
	t = text(proto_error_encode(&e));
	assert_string_equal(t, "{\"error\":{\"code\":\"insufficient_capacity\","
	    "\"message\":\"no node has 4 vCPUs free\"}}");
	free(t);

	for (int c = 0; c < PROTO_CAP_NCLASSES; c++) {
		cap.pc_class[c].ci_total = 10;
		cap.pc_class[c].ci_ratio = 1;
		cap.pc_class[c].ci_allocatable = 10;
		cap.pc_class[c].ci_free = 10;
	}
	cap.pc_class[PROTO_CAP_VCPU].ci_ratio = NAN;

	hb.hb_seq = 5;
	hb.hb_nvms = 1;
	hb.hb_vms = xcalloc(1, sizeof(*hb.hb_vms));
	snprintf(hb.hb_vms[0].vm_id, sizeof(hb.hb_vms[0].vm_id), U2);
	snprintf(hb.hb_vms[0].vm_name, sizeof(hb.hb_vms[0].vm_name), "a");
	hb.hb_vms[0].vm_state = VM_STATE_SHUTOFF;
	hb.hb_nremoved = 1;
	hb.hb_removed = xcalloc(1, sizeof(*hb.hb_removed));
	snprintf(hb.hb_removed[0], sizeof(hb.hb_removed[0]), U1);
	hb.hb_capacity = proto_capacity_encode(&cap);
	t = text(proto_heartbeat_req_encode(&hb));
	assert_string_equal(t, "{\"seq\":5,\"full\":false,\"vms\":[{\"id\":\"" U2
	    "\",\"name\":\"a\",\"state\":\"shutoff\",\"vcpus\":0,\"memory_mib\":0,"
	    "\"disk_gib\":0,\"created_at\":0}],\"removed\":[\"" U1 "\"],"
	    "\"capacity\":{\"VCPU\":" INV("10", "0", "0.0", "0", "10", "10")
	    ",\"MEMORY_MIB\":" INV("10", "0", "1.0", "0", "10", "10")
	    ",\"DISK_GIB\":" INV("10", "0", "1.0", "0", "10", "10") "},"
	    "\"schedulable\":false}");
	assert_int_equal(proto_heartbeat_req_decode_buf(t, strlen(t), &back,
	    &err), 0);
	assert_int_equal(back.hb_nvms, 1);
	assert_string_equal(back.hb_vms[0].vm_name, "a");
	assert_string_equal(back.hb_removed[0], U1);
	proto_heartbeat_req_clear(&back);
	free(t);
	proto_heartbeat_req_clear(&hb);
	assert_null(hb.hb_vms);

	snprintf(ci.ci_id, sizeof(ci.ci_id), U1);
	snprintf(ci.ci_vm_id, sizeof(ci.ci_vm_id), U2);
	snprintf(ci.ci_node, sizeof(ci.ci_node), "n");
	ci.ci_type = CMD_VM_DESTROY;
	ci.ci_status = PROTO_CMD_DELIVERED;
	ci.ci_created_at_ms = 10;
	ci.ci_delivered_at_ms = 11;
	ci.ci_has_progress = true;
	ci.ci_progress.pg_percent = 40;
	ci.ci_progress.pg_message = xstrdup("half way");
	t = text(proto_command_info_encode(&ci));
	assert_string_equal(t, "{\"id\":\"" U1 "\",\"type\":\"vm.destroy\","
	    "\"vm_id\":\"" U2 "\",\"node\":\"n\",\"status\":\"delivered\","
	    "\"created_at\":10,\"delivered_at\":11,\"finished_at\":null,"
	    "\"result\":null,\"error\":null,\"progress\":{\"percent\":40,"
	    "\"message\":\"half way\"}}");
	free(t);
	proto_command_info_clear(&ci);
}

/* proto_capacity_decode reads the numbers carve-cp schedules with. */
static void
test_capacity_numbers(void **state)
{
	struct carve_error err = { 0 };
	struct proto_capacity cap;
	json_object *o = parse(CAP);

	(void)state;
	assert_int_equal(proto_capacity_decode(o, &cap, &err), 0);
	assert_int_equal(cap.pc_class[PROTO_CAP_VCPU].ci_total, 8);
	assert_true(cap.pc_class[PROTO_CAP_VCPU].ci_ratio == 4.0);
	assert_int_equal(cap.pc_class[PROTO_CAP_MEMORY_MIB].ci_reserved, 512);
	assert_int_equal(cap.pc_class[PROTO_CAP_MEMORY_MIB].ci_free, 14848);
	assert_int_equal(cap.pc_class[PROTO_CAP_DISK_GIB].ci_allocated, 10);
	assert_int_equal(cap.pc_class[PROTO_CAP_DISK_GIB].ci_allocatable, 150);
	assert_true(cap.pc_class[PROTO_CAP_DISK_GIB].ci_ratio == 1.5);
	assert_string_equal(proto_cap_class_name(PROTO_CAP_MEMORY_MIB),
	    "MEMORY_MIB");
	assert_string_equal(proto_cap_class_name(PROTO_CAP_NCLASSES), "unknown");
	json_object_put(o);
}

/* ------------------------------------------------------------ poll query */

static void
test_poll_query(void **state)
{
	static const struct {
		const char *q;
		int rc;
		int64_t cursor;
		int wait_s;
		const char *msg;
	} cases[] = {
		{ NULL, 0, 0, 0, NULL },
		{ "", 0, 0, 0, NULL },
		{ "cursor=7&wait_s=30", 0, 7, 30, NULL },
		{ "wait_s=3600&cursor=0", 0, 0, 3600, NULL },
		{ "cursor=9223372036854775807", 0, INT64_MAX, 0, NULL },
		{ "wait_s=1", 0, 0, 1, NULL },
		{ "cursor=9223372036854775808", -1, 0, 0,
		    "cursor must be an integer between 0 and" },
		{ "cursor=99999999999999999999999", -1, 0, 0, "cursor must be" },
		{ "cursor=-1", -1, 0, 0, "cursor must be" },
		{ "cursor=+1", -1, 0, 0, "cursor must be" },
		{ "cursor=01", -1, 0, 0, "cursor must be" },
		{ "cursor= 1", -1, 0, 0, "cursor must be" },
		{ "cursor=", -1, 0, 0, "cursor must be" },
		{ "cursor=1x", -1, 0, 0, "cursor must be" },
		{ "wait_s=3601", -1, 0, 0,
		    "wait_s must be an integer between 0 and 3600" },
		{ "cursor=1&cursor=2", -1, 0, 0,
		    "\"cursor\" is unknown or repeated" },
		{ "cursor=1&limit=2", -1, 0, 0, "\"limit\" is unknown" },
		{ "cursor", -1, 0, 0, "\"cursor\" has no value" },
		{ "cursor=1&", -1, 0, 0, "\"\" has no value" },
		{ "&cursor=1", -1, 0, 0, "\"\" has no value" },
		{ "cursor%3D1", -1, 0, 0, "has no value" },
	};
	struct proto_poll_query q, back;
	char *s;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct carve_error err = { 0 };
		int rc = proto_poll_query_parse(cases[i].q, &q, &err);

		if (rc != cases[i].rc)
			fail_msg("query %zu <%s>: rc %d (%s)", i,
			    cases[i].q ? cases[i].q : "(null)", rc, err.message);
		if (rc == 0) {
			assert_int_equal(q.pq_cursor, cases[i].cursor);
			assert_int_equal(q.pq_wait_s, cases[i].wait_s);
			s = proto_poll_query_format(&q);
			assert_int_equal(proto_poll_query_parse(s, &back, &err), 0);
			assert_int_equal(back.pq_cursor, q.pq_cursor);
			assert_int_equal(back.pq_wait_s, q.pq_wait_s);
			free(s);
		} else {
			assert_int_equal(err.code, CARVE_EINVAL);
			if (strstr(err.message, cases[i].msg) == NULL)
				fail_msg("query %zu: \"%s\" lacks \"%s\"", i,
				    err.message, cases[i].msg);
		}
	}
	q.pq_cursor = 12;
	q.pq_wait_s = 25;
	s = proto_poll_query_format(&q);
	assert_string_equal(s, "cursor=12&wait_s=25");
	free(s);
}

/* ------------------------------------------------------------ statuses */

static void
test_http_status(void **state)
{
	static const struct {
		enum carve_errcode code;
		int status;
	} map[] = {
		{ CARVE_OK, 200 },
		{ CARVE_EINVAL, 400 },
		{ CARVE_EUNAUTH, 401 },
		{ CARVE_EPERM, 403 },
		{ CARVE_ENOTFOUND, 404 },
		{ CARVE_ECONFLICT, 409 },
		{ CARVE_ECAPACITY, 409 },
		{ CARVE_ETOOBIG, 413 },
		{ CARVE_EINTERNAL, 500 },
		{ CARVE_EHYPERVISOR, 500 },
		{ CARVE_EUNAVAIL, 503 },
	};
	static const struct {
		int status;
		enum carve_errcode code;
	} back[] = {
		{ 400, CARVE_EINVAL }, { 401, CARVE_EUNAUTH }, { 403, CARVE_EPERM },
		{ 404, CARVE_ENOTFOUND }, { 409, CARVE_ECONFLICT },
		{ 413, CARVE_ETOOBIG }, { 429, CARVE_EUNAVAIL },
		{ 502, CARVE_EUNAVAIL }, { 503, CARVE_EUNAVAIL },
		{ 504, CARVE_EUNAVAIL }, { 500, CARVE_EINTERNAL },
		{ 418, CARVE_EINTERNAL }, { 0, CARVE_EINTERNAL },
	};

	(void)state;
	assert_int_equal(NELEM(map), CARVE_ECODE_MAX);
	for (size_t i = 0; i < NELEM(map); i++)
		assert_int_equal(proto_http_status(map[i].code), map[i].status);
	assert_int_equal(proto_http_status(CARVE_ECODE_MAX), 500);
	assert_int_equal(proto_http_status((enum carve_errcode)-1), 500);
	for (size_t i = 0; i < NELEM(back); i++)
		assert_int_equal(proto_errcode_from_http(back[i].status),
		    back[i].code);
	/* Every code but ok travels in an error body and comes back. */
	for (int c = CARVE_EINVAL; c < CARVE_ECODE_MAX; c++) {
		struct carve_error e = { .code = (enum carve_errcode)c }, out, err;
		char *t;

		snprintf(e.message, sizeof(e.message), "m%d", c);
		t = text(proto_error_encode(&e));
		memset(&err, 0, sizeof(err));
		assert_int_equal(proto_error_decode_buf(t, strlen(t), &out, &err),
		    0);
		assert_int_equal(out.code, c);
		assert_string_equal(out.message, e.message);
		free(t);
	}
}

static void
test_names(void **state)
{
	enum proto_desired_state ds;
	enum proto_cmd_status cs;

	(void)state;
	assert_string_equal(proto_vm_action_name(PROTO_VM_STOP), "stop");
	assert_string_equal(proto_vm_action_name(PROTO_VM_ACTION_MAX), "unknown");
	assert_int_equal(proto_vm_action_command(PROTO_VM_START), CMD_VM_START);
	assert_int_equal(proto_vm_action_command(PROTO_VM_STOP), CMD_VM_STOP);
	assert_int_equal(proto_vm_action_command(PROTO_VM_REBOOT),
	    CMD_VM_REBOOT);
	assert_int_equal(proto_vm_action_command(PROTO_VM_RESIZE),
	    CMD_VM_RESIZE);
	assert_string_equal(proto_vm_action_name(PROTO_VM_RESIZE), "resize");
	assert_int_equal(proto_vm_action_command(PROTO_VM_REBUILD),
	    CMD_VM_REBUILD);
	assert_string_equal(proto_vm_action_name(PROTO_VM_REBUILD), "rebuild");
	assert_int_equal(proto_vm_action_command(PROTO_VM_ACTION_MAX),
	    CMD_TYPE_MAX);
	for (int i = 0; i < PROTO_DESIRED_MAX; i++) {
		assert_int_equal(proto_desired_state_parse(
		    proto_desired_state_name((enum proto_desired_state)i), &ds), 0);
		assert_int_equal(ds, i);
	}
	assert_int_equal(proto_desired_state_parse("Running", &ds), -1);
	for (int i = 0; i < PROTO_CMD_STATUS_MAX; i++) {
		assert_int_equal(proto_cmd_status_parse(
		    proto_cmd_status_name((enum proto_cmd_status)i), &cs), 0);
		assert_int_equal(cs, i);
	}
	assert_string_equal(proto_cmd_status_name(PROTO_CMD_DELIVERED),
	    "delivered");
	assert_int_equal(proto_cmd_status_parse("accepted", &cs), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_invalid_null_err),
		cmocka_unit_test(test_decode_buf),
		cmocka_unit_test(test_poll_limit),
		cmocka_unit_test(test_encode_built),
		cmocka_unit_test(test_capacity_numbers),
		cmocka_unit_test(test_poll_query),
		cmocka_unit_test(test_http_status),
		cmocka_unit_test(test_names),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
