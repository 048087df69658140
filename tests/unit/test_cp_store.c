/*
 * Unit tests for api/cp/cp_store.c against a real SQLite file in a private
 * temporary directory: what a restart keeps, a command's life from queued
 * to finished (and re-delivery until then), VM name uniqueness, heartbeat
 * sequencing and the claims the scheduler subtracts.
 */
#include "config.h"

#include <limits.h>
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
#include <sqlite3.h>

#include "api/cp/cp_store.h"
#include "api/proto.h"
#include "common/jsonx.h"
#include "common/xalloc.h"

#define T0 1800000000000LL

struct fixture {
	char		 dir[PATH_MAX];
	char		*path;
	struct cp_store	*st;
};

static const char cap_json[] =
	"{\"VCPU\":{\"total\":8,\"reserved\":0,\"allocation_ratio\":1.0,"
	"\"allocated\":0,\"allocatable\":8,\"free\":8},"
	"\"MEMORY_MIB\":{\"total\":8192,\"reserved\":0,\"allocation_ratio\":1.0,"
	"\"allocated\":0,\"allocatable\":8192,\"free\":8192},"
	"\"DISK_GIB\":{\"total\":100,\"reserved\":0,\"allocation_ratio\":1.0,"
	"\"allocated\":0,\"allocatable\":100,\"free\":100}}";

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	struct carve_error err = { 0 };
	const char *tmp = getenv("TMPDIR");

	snprintf(f->dir, sizeof(f->dir), "%s/cp-store.XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	f->path = xasprintf("%s/carve-cp.db", f->dir);
	f->st = cp_store_open(f->path, &err);
	if (f->st == NULL)
		fail_msg("open: %s", err.message);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	struct fixture *f = *state;

	cp_store_close(f->st);
	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s%s", f->path, suffixes[i]);

		(void)unlink(p);
		free(p);
	}
	assert_int_equal(rmdir(f->dir), 0);
	free(f->path);
	free(f);
	return 0;
}

static void
reopen(struct fixture *f)
{
	struct carve_error err = { 0 };

	cp_store_close(f->st);
	f->st = cp_store_open(f->path, &err);
	if (f->st == NULL)
		fail_msg("reopen: %s", err.message);
}

static void
register_node(struct fixture *f, const char *name, int64_t now)
{
	struct proto_register_req reg = { 0 };
	struct carve_error err = { 0 };

	snprintf(reg.rg_agent_version, sizeof(reg.rg_agent_version), "0.1.0");
	reg.rg_schedulable = true;
	reg.rg_host = json_tokener_parse("{\"hostname\":\"h\"}");
	reg.rg_capacity = json_tokener_parse(cap_json);
	if (cp_store_node_register(f->st, name, &reg, now, &err) < 0)
		fail_msg("register: %s", err.message);
	proto_register_req_clear(&reg);
}

/* Insert a VM named name on node with its create command; returns seq. */
static int64_t
create_vm(struct fixture *f, const char *node, const char *name,
    char vm_id[IDS_UUID_LEN + 1], char cmd_id[IDS_UUID_LEN + 1], int64_t now)
{
	struct carve_error err = { 0 };
	struct cp_vm_rec vm;
	struct cp_cmd_rec cmd;
	int64_t seq = 0;

	memset(&vm, 0, sizeof(vm));
	memset(&cmd, 0, sizeof(cmd));
	ids_uuid_new(vm_id);
	ids_uuid_new(cmd_id);
	memcpy(vm.vr_id, vm_id, sizeof(vm.vr_id));
	snprintf(vm.vr_name, sizeof(vm.vr_name), "%s", name);
	snprintf(vm.vr_node, sizeof(vm.vr_node), "%s", node);
	vm.vr_vcpus = 2;
	vm.vr_memory_mib = 1024;
	vm.vr_disk_gib = 10;
	vm.vr_spec = (char *)"{}";
	vm.vr_desired = PROTO_DESIRED_RUNNING;
	memcpy(vm.vr_last_command_id, cmd_id, sizeof(vm.vr_last_command_id));
	vm.vr_created_at_ms = vm.vr_updated_at_ms = now;
	memcpy(cmd.cr_id, cmd_id, sizeof(cmd.cr_id));
	snprintf(cmd.cr_node, sizeof(cmd.cr_node), "%s", node);
	memcpy(cmd.cr_vm_id, vm_id, sizeof(cmd.cr_vm_id));
	cmd.cr_type = CMD_VM_CREATE;
	cmd.cr_command = (char *)"{\"x\":1}";
	assert_int_equal(cp_store_begin(f->st, &err), 0);
	if (cp_store_vm_insert(f->st, &vm, &err) < 0 ||
	    cp_store_cmd_insert(f->st, &cmd, now, &seq, &err) < 0) {
		cp_store_rollback(f->st);
		return -1;
	}
	assert_int_equal(cp_store_commit(f->st, &err), 0);
	return seq;
}

static size_t
poll_count(struct fixture *f, const char *node, int64_t cursor,
    int64_t *last_seq)
{
	struct carve_error err = { 0 };
	struct cp_cmd_rec *recs;
	size_t n;

	if (cp_store_cmd_poll(f->st, node, cursor, 256, 1 << 20, T0, &recs,
	    &n, &err) < 0)
		fail_msg("poll: %s", err.message);
	if (n > 0 && last_seq != NULL)
		*last_seq = recs[n - 1].cr_seq;
	cp_cmd_list_free(recs, n);
	return n;
}

/* ------------------------------------------------------------ tests */

static void
test_file_mode(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void
test_persistence(void **state)
{
	struct fixture *f = *state;
	char vm_id[IDS_UUID_LEN + 1], cmd_id[IDS_UUID_LEN + 1];
	struct carve_error err = { 0 };
	struct cp_node_rec node;
	struct cp_vm_rec vm;
	struct cp_cmd_rec cmd;
	int64_t seq;

	register_node(f, "node1", T0);
	seq = create_vm(f, "node1", "web1", vm_id, cmd_id, T0);
	assert_true(seq >= 1);
	reopen(f);

	assert_int_equal(cp_store_node_get(f->st, "node1", &node, &err), 0);
	assert_string_equal(node.nr_agent_version, "0.1.0");
	assert_int_equal(node.nr_registered_at_ms, T0);
	assert_int_equal(node.nr_last_heartbeat_ms, T0);
	assert_true(node.nr_schedulable);
	assert_non_null(strstr(node.nr_capacity, "MEMORY_MIB"));
	cp_node_rec_clear(&node);

	assert_int_equal(cp_store_vm_get(f->st, vm_id, &vm, &err), 0);
	assert_string_equal(vm.vr_name, "web1");
	assert_string_equal(vm.vr_node, "node1");
	assert_int_equal(vm.vr_memory_mib, 1024);
	assert_int_equal(vm.vr_desired, PROTO_DESIRED_RUNNING);
	assert_string_equal(vm.vr_state, "");
	assert_string_equal(vm.vr_last_command_id, cmd_id);
	cp_vm_rec_clear(&vm);

	assert_int_equal(cp_store_cmd_get(f->st, cmd_id, &cmd, &err), 0);
	assert_int_equal(cmd.cr_seq, seq);
	assert_int_equal(cmd.cr_type, CMD_VM_CREATE);
	assert_int_equal(cmd.cr_status, PROTO_CMD_PENDING);
	assert_string_equal(cmd.cr_command, "{\"x\":1}");
	cp_cmd_rec_clear(&cmd);

	/* The pending command is there for the node after the restart. */
	assert_int_equal(poll_count(f, "node1", 0, NULL), 1);
	assert_int_equal(poll_count(f, "node2", 0, NULL), 0);
}

static void
test_command_lifecycle(void **state)
{
	struct fixture *f = *state;
	char vm_id[IDS_UUID_LEN + 1], cmd_id[IDS_UUID_LEN + 1];
	char vm2[IDS_UUID_LEN + 1], cmd2[IDS_UUID_LEN + 1];
	struct carve_error err = { 0 };
	struct cp_cmd_rec cmd;
	int64_t seq, seq2, last = 0;

	register_node(f, "node1", T0);
	seq = create_vm(f, "node1", "web1", vm_id, cmd_id, T0);
	seq2 = create_vm(f, "node1", "web2", vm2, cmd2, T0);
	assert_true(seq2 > seq);

	/* Delivered in order; delivery does not end re-delivery. */
	assert_int_equal(poll_count(f, "node1", 0, &last), 2);
	assert_int_equal(last, seq2);
	assert_int_equal(cp_store_cmd_get(f->st, cmd_id, &cmd, &err), 0);
	assert_int_equal(cmd.cr_status, PROTO_CMD_DELIVERED);
	assert_int_equal(cmd.cr_delivered_at_ms, T0);
	cp_cmd_rec_clear(&cmd);
	assert_int_equal(poll_count(f, "node1", seq, &last), 1);
	assert_int_equal(last, seq2);
	assert_int_equal(poll_count(f, "node1", seq2, NULL), 0);
	assert_int_equal(poll_count(f, "node1", 0, NULL), 2);

	/* A result ends it; the first result stays the answer. */
	assert_int_equal(cp_store_cmd_finish(f->st, cmd_id,
	    CMD_STATUS_SUCCEEDED, "{\"first\":true}", T0 + 5, &err), 1);
	assert_int_equal(cp_store_cmd_finish(f->st, cmd_id, CMD_STATUS_FAILED,
	    "{\"second\":true}", T0 + 6, &err), 0);
	assert_int_equal(cp_store_cmd_get(f->st, cmd_id, &cmd, &err), 0);
	assert_int_equal(cmd.cr_status, PROTO_CMD_SUCCEEDED);
	assert_string_equal(cmd.cr_result, "{\"first\":true}");
	assert_int_equal(cmd.cr_finished_at_ms, T0 + 5);
	cp_cmd_rec_clear(&cmd);
	assert_int_equal(poll_count(f, "node1", 0, &last), 1);
	assert_int_equal(last, seq2);

	/* Progress only for commands still running. */
	assert_int_equal(cp_store_cmd_set_progress(f->st, cmd2,
	    "{\"percent\":10}", &err), 0);
	assert_int_equal(cp_store_cmd_set_progress(f->st, cmd_id,
	    "{\"percent\":99}", &err), 0);
	assert_int_equal(cp_store_cmd_get(f->st, cmd2, &cmd, &err), 0);
	assert_string_equal(cmd.cr_progress, "{\"percent\":10}");
	cp_cmd_rec_clear(&cmd);
	assert_int_equal(cp_store_cmd_get(f->st, cmd_id, &cmd, &err), 0);
	assert_null(cmd.cr_progress);
	cp_cmd_rec_clear(&cmd);

	assert_int_equal(cp_store_cmd_get(f->st,
	    "0b0e0a4c-95c4-4a57-a5d4-1d1a5d0c1f00", &cmd, &err), -1);
	assert_int_equal(err.code, CARVE_ENOTFOUND);
}

static void
test_unknown_type_delivered(void **state)
{
	struct fixture *f = *state;
	char vm_id[IDS_UUID_LEN + 1], cmd_id[IDS_UUID_LEN + 1];
	struct carve_error err = { 0 };
	struct cp_cmd_rec *recs;
	sqlite3 *db;
	size_t n;

	register_node(f, "node1", T0);
	assert_true(create_vm(f, "node1", "web1", vm_id, cmd_id, T0) > 0);
	/* A row written by hand with a type this carve-cp does not know. */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO commands (id, node, "
	    "vm_id, type, command, status, created_at) VALUES ("
	    "'0b0b0b0b-0000-4000-8000-000000000001', 'node1', "
	    "'0b0b0b0b-0000-4000-8000-000000000002', 'vm.explode', '{', "
	    "'pending', 1)", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	/* It does not stop the queue: both come out, the odd one marked. */
	assert_int_equal(cp_store_cmd_poll(f->st, "node1", 0, 256, 1 << 20, T0,
	    &recs, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(recs[0].cr_type, CMD_VM_CREATE);
	assert_int_equal(recs[1].cr_type, CMD_TYPE_MAX);
	assert_string_equal(recs[1].cr_command, "{");
	cp_cmd_list_free(recs, n);
}

static void
test_poll_limits(void **state)
{
	struct fixture *f = *state;
	char vm_id[IDS_UUID_LEN + 1], cmd_id[IDS_UUID_LEN + 1];
	struct carve_error err = { 0 };
	struct cp_cmd_rec *recs;
	char name[16];
	size_t n;

	register_node(f, "node1", T0);
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "vm%d", i);
		assert_true(create_vm(f, "node1", name, vm_id, cmd_id, T0) > 0);
	}
	assert_int_equal(cp_store_cmd_poll(f->st, "node1", 0, 3, 1 << 20, T0,
	    &recs, &n, &err), 0);
	assert_int_equal(n, 3);
	cp_cmd_list_free(recs, n);
	/* A byte budget smaller than one command still delivers one. */
	assert_int_equal(cp_store_cmd_poll(f->st, "node1", 0, 256, 1, T0,
	    &recs, &n, &err), 0);
	assert_int_equal(n, 1);
	cp_cmd_list_free(recs, n);
	assert_int_equal(cp_store_cmd_poll(f->st, "node1", 0, 256,
	    2 * strlen("{\"x\":1}"), T0, &recs, &n, &err), 0);
	assert_int_equal(n, 2);
	cp_cmd_list_free(recs, n);
}

static void
test_vm_name_unique(void **state)
{
	struct fixture *f = *state;
	char vm_id[IDS_UUID_LEN + 1], cmd_id[IDS_UUID_LEN + 1];
	char vm2[IDS_UUID_LEN + 1], cmd2[IDS_UUID_LEN + 1];
	struct carve_error err = { 0 };
	struct cp_vm_rec *list, vm;
	size_t n;

	register_node(f, "node1", T0);
	assert_true(create_vm(f, "node1", "web1", vm_id, cmd_id, T0) > 0);

	/* Same name again: refused, and nothing of it is left behind. */
	assert_int_equal(cp_store_begin(f->st, &err), 0);
	{
		struct cp_vm_rec dup;

		memset(&dup, 0, sizeof(dup));
		ids_uuid_new(dup.vr_id);
		snprintf(dup.vr_name, sizeof(dup.vr_name), "web1");
		snprintf(dup.vr_node, sizeof(dup.vr_node), "node1");
		dup.vr_spec = (char *)"{}";
		ids_uuid_new(dup.vr_last_command_id);
		assert_int_equal(cp_store_vm_insert(f->st, &dup, &err), -1);
		assert_int_equal(err.code, CARVE_ECONFLICT);
		assert_non_null(strstr(err.message, "web1"));
	}
	cp_store_rollback(f->st);
	assert_int_equal(cp_store_vm_list(f->st, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	cp_vm_list_free(list, n);

	/* Once deleted, the name is free and the VM is gone from view. */
	error_clear(&err);
	assert_int_equal(cp_store_vm_mark_deleted(f->st, vm_id, T0 + 1, &err),
	    0);
	assert_int_equal(cp_store_vm_get(f->st, vm_id, &vm, &err), -1);
	assert_int_equal(err.code, CARVE_ENOTFOUND);
	error_clear(&err);
	assert_true(create_vm(f, "node1", "web1", vm2, cmd2, T0 + 2) > 0);
	assert_int_equal(cp_store_vm_list(f->st, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].vr_id, vm2);
	cp_vm_list_free(list, n);
	assert_int_equal(cp_store_vm_mark_deleted(f->st, vm_id, T0 + 3, &err),
	    -1);
}

static void
test_vm_desired_and_state(void **state)
{
	struct fixture *f = *state;
	char vm_id[IDS_UUID_LEN + 1], cmd_id[IDS_UUID_LEN + 1];
	char other[IDS_UUID_LEN + 1];
	struct carve_error err = { 0 };
	struct cp_vm_rec vm;

	register_node(f, "node1", T0);
	assert_true(create_vm(f, "node1", "web1", vm_id, cmd_id, T0) > 0);
	ids_uuid_new(other);
	assert_int_equal(cp_store_vm_set_desired(f->st, vm_id,
	    PROTO_DESIRED_STOPPED, other, T0 + 1, &err), 0);
	assert_int_equal(cp_store_vm_set_state(f->st, vm_id, "shutoff", T0 + 2,
	    &err), 0);
	assert_int_equal(cp_store_vm_get(f->st, vm_id, &vm, &err), 0);
	assert_int_equal(vm.vr_desired, PROTO_DESIRED_STOPPED);
	assert_string_equal(vm.vr_last_command_id, other);
	assert_string_equal(vm.vr_state, "shutoff");
	assert_int_equal(vm.vr_updated_at_ms, T0 + 2);
	cp_vm_rec_clear(&vm);
	assert_int_equal(cp_store_vm_set_state(f->st, other, "running", T0,
	    &err), -1);
	assert_int_equal(err.code, CARVE_ENOTFOUND);
}

static void
heartbeat(struct fixture *f, const char *node, int64_t seq, bool full,
    const char *vm_id, const char *state, const char *removed, int64_t now,
    bool want_resync)
{
	struct proto_heartbeat_req hb;
	struct carve_error err = { 0 };
	bool resync = !want_resync;

	memset(&hb, 0, sizeof(hb));
	hb.hb_seq = seq;
	hb.hb_full = full;
	hb.hb_capacity = json_tokener_parse(cap_json);
	if (vm_id != NULL) {
		hb.hb_vms = xcalloc(1, sizeof(*hb.hb_vms));
		hb.hb_nvms = 1;
		memcpy(hb.hb_vms[0].vm_id, vm_id, IDS_UUID_LEN + 1);
		snprintf(hb.hb_vms[0].vm_name, sizeof(hb.hb_vms[0].vm_name),
		    "web1");
		hb.hb_vms[0].vm_vcpus = 2;
		hb.hb_vms[0].vm_memory_mib = 1024;
		assert_int_equal(vm_state_parse(state, &hb.hb_vms[0].vm_state),
		    0);
	}
	if (removed != NULL) {
		hb.hb_removed = xcalloc(1, sizeof(*hb.hb_removed));
		hb.hb_nremoved = 1;
		memcpy(hb.hb_removed[0], removed, IDS_UUID_LEN + 1);
	}
	if (cp_store_node_heartbeat(f->st, node, &hb, now, &resync, &err) < 0)
		fail_msg("heartbeat: %s", err.message);
	assert_int_equal(resync, want_resync);
	proto_heartbeat_req_clear(&hb);
}

static void
assert_vm_state(struct fixture *f, const char *vm_id, const char *want)
{
	struct carve_error err = { 0 };
	struct cp_vm_rec vm;

	assert_int_equal(cp_store_vm_get(f->st, vm_id, &vm, &err), 0);
	assert_string_equal(vm.vr_state, want);
	cp_vm_rec_clear(&vm);
}

static int64_t
node_vms(struct fixture *f, const char *node)
{
	struct carve_error err = { 0 };
	struct cp_node_rec rec;
	int64_t n;

	assert_int_equal(cp_store_node_get(f->st, node, &rec, &err), 0);
	n = rec.nr_vms;
	cp_node_rec_clear(&rec);
	return n;
}

static void
test_heartbeat_sequence(void **state)
{
	struct fixture *f = *state;
	char vm_id[IDS_UUID_LEN + 1], cmd_id[IDS_UUID_LEN + 1];
	struct proto_heartbeat_req hb;
	struct carve_error err = { 0 };
	bool resync;

	/* Unknown node. */
	memset(&hb, 0, sizeof(hb));
	hb.hb_seq = 1;
	hb.hb_full = true;
	hb.hb_capacity = json_tokener_parse(cap_json);
	assert_int_equal(cp_store_node_heartbeat(f->st, "ghost", &hb, T0,
	    &resync, &err), -1);
	assert_int_equal(err.code, CARVE_ENOTFOUND);
	proto_heartbeat_req_clear(&hb);

	register_node(f, "node1", T0);
	assert_true(create_vm(f, "node1", "web1", vm_id, cmd_id, T0) > 0);

	/* No state yet: a delta is refused, a full one accepted. */
	heartbeat(f, "node1", 7, false, vm_id, "running", NULL, T0 + 1, true);
	assert_vm_state(f, vm_id, "");
	heartbeat(f, "node1", 7, true, vm_id, "running", NULL, T0 + 2, false);
	assert_vm_state(f, vm_id, "running");
	assert_int_equal(node_vms(f, "node1"), 1);
	/* The next in sequence applies. */
	heartbeat(f, "node1", 8, false, vm_id, "paused", NULL, T0 + 3, false);
	assert_vm_state(f, vm_id, "paused");
	/* A repeat or a gap asks for a full one, and every delta until it. */
	heartbeat(f, "node1", 8, false, vm_id, "shutoff", NULL, T0 + 4, true);
	heartbeat(f, "node1", 9, false, vm_id, "shutoff", NULL, T0 + 5, true);
	assert_vm_state(f, vm_id, "paused");
	/* Full without the VM: it is no longer reported. */
	heartbeat(f, "node1", 10, true, NULL, NULL, NULL, T0 + 6, false);
	assert_vm_state(f, vm_id, "");
	assert_int_equal(node_vms(f, "node1"), 0);
	heartbeat(f, "node1", 11, false, vm_id, "running", NULL, T0 + 7, false);
	assert_vm_state(f, vm_id, "running");
	heartbeat(f, "node1", 12, false, NULL, NULL, vm_id, T0 + 8, false);
	assert_vm_state(f, vm_id, "");
	assert_int_equal(node_vms(f, "node1"), 0);

	/* The sequence survives a restart. */
	reopen(f);
	heartbeat(f, "node1", 13, false, vm_id, "running", NULL, T0 + 9, false);
	assert_vm_state(f, vm_id, "running");
	{
		struct cp_node_rec rec;

		assert_int_equal(cp_store_node_get(f->st, "node1", &rec, &err),
		    0);
		assert_int_equal(rec.nr_last_heartbeat_ms, T0 + 9);
		assert_int_equal(rec.nr_capacity_at_ms, T0 + 9);
		cp_node_rec_clear(&rec);
	}
}

/* What a node last reported about a VM (the snapshot list's source). */
static void
test_vm_report(void **state)
{
	struct fixture *f = *state;
	char vm_id[IDS_UUID_LEN + 1], cmd_id[IDS_UUID_LEN + 1];
	struct carve_error err = { 0 };
	char *info = (char *)1;

	register_node(f, "node1", T0);
	assert_true(create_vm(f, "node1", "web1", vm_id, cmd_id, T0) > 0);
	assert_int_equal(cp_store_vm_report(f->st, "node1", vm_id, &info,
	    &err), 0);
	assert_null(info);
	heartbeat(f, "node1", 1, true, vm_id, "paused", NULL, T0 + 1, false);
	assert_int_equal(cp_store_vm_report(f->st, "node1", vm_id, &info,
	    &err), 0);
	assert_non_null(info);
	assert_non_null(strstr(info, "\"state\":\"paused\""));
	free(info);
	/* Another node's report says nothing about it. */
	assert_int_equal(cp_store_vm_report(f->st, "node2", vm_id, &info,
	    &err), 0);
	assert_null(info);
	heartbeat(f, "node1", 2, true, NULL, NULL, NULL, T0 + 2, false);
	assert_int_equal(cp_store_vm_report(f->st, "node1", vm_id, &info,
	    &err), 0);
	assert_null(info);
}

static void
test_claims(void **state)
{
	struct fixture *f = *state;
	char vm_id[IDS_UUID_LEN + 1], cmd_id[IDS_UUID_LEN + 1];
	char vm2[IDS_UUID_LEN + 1], cmd2[IDS_UUID_LEN + 1];
	struct carve_error err = { 0 };
	struct cp_node_rec *recs;
	size_t n;

	register_node(f, "a", T0);
	register_node(f, "b", T0);
	assert_true(create_vm(f, "a", "web1", vm_id, cmd_id, T0 + 1) > 0);
	assert_true(create_vm(f, "a", "web2", vm2, cmd2, T0 + 1) > 0);

	/* Two creates without a result. */
	assert_int_equal(cp_store_node_list(f->st, &recs, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(recs[0].nr_name, "a");
	assert_int_equal(recs[0].nr_claimed[PROTO_CAP_VCPU], 4);
	assert_int_equal(recs[0].nr_claimed[PROTO_CAP_MEMORY_MIB], 2048);
	assert_int_equal(recs[0].nr_claimed[PROTO_CAP_DISK_GIB], 20);
	assert_int_equal(recs[1].nr_claimed[PROTO_CAP_MEMORY_MIB], 0);
	cp_node_list_free(recs, n);

	/*
	 * One failed (no claim), one succeeded after the last capacity
	 * report (still claimed: the report does not count it yet).
	 */
	assert_int_equal(cp_store_cmd_finish(f->st, cmd_id, CMD_STATUS_FAILED,
	    "{}", T0 + 2, &err), 1);
	assert_int_equal(cp_store_cmd_finish(f->st, cmd2, CMD_STATUS_SUCCEEDED,
	    "{}", T0 + 2, &err), 1);
	assert_int_equal(cp_store_node_list(f->st, &recs, &n, &err), 0);
	assert_int_equal(recs[0].nr_claimed[PROTO_CAP_MEMORY_MIB], 1024);
	cp_node_list_free(recs, n);

	/* A capacity report after the result counts the VM itself. */
	heartbeat(f, "a", 1, true, NULL, NULL, NULL, T0 + 3, false);
	assert_int_equal(cp_store_node_list(f->st, &recs, &n, &err), 0);
	assert_int_equal(recs[0].nr_claimed[PROTO_CAP_MEMORY_MIB], 0);
	cp_node_list_free(recs, n);
}

/* Set the schema version behind the store's back. */
static void
set_user_version(const char *path, int v)
{
	sqlite3 *db;
	char *sql = xasprintf("PRAGMA user_version = %d", v);

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	free(sql);
}

static void
test_refuse_newer_schema(void **state)
{
	struct fixture *f = *state;
	struct carve_error err = { 0 };

	cp_store_close(f->st);
	f->st = NULL;
	set_user_version(f->path, 99);
	assert_null(cp_store_open(f->path, &err));
	assert_int_equal(err.code, CARVE_EINVAL);
	assert_non_null(strstr(err.message, "99"));
	set_user_version(f->path, 1);
	reopen(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_command_lifecycle, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_poll_limits, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unknown_type_delivered,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_vm_name_unique, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_vm_desired_and_state,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_sequence, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_vm_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claims, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_newer_schema, setup,
		    teardown),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests_name("cp_store", tests, NULL, NULL);
}
