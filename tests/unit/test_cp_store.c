/*
 * Unit tests for api/cp/cp_store.c against a real SQLite file in a private
 * temporary directory: what a restart keeps, a command's life from queued
 * to finished (and re-delivery until then), VM name uniqueness, heartbeat
 * sequencing and the claims the scheduler subtracts, migrations and
 * evacuations, and the upgrade of a version 1 database.
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

#include "api/command.h"
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
	hb.hb_schedulable = true;
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
	if (cp_store_node_heartbeat(f->st, node, &hb, now, &resync, NULL,
	    &err) < 0)
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
	    &resync, NULL, &err), -1);
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

/* Queue a vm.resize of vm_id on node; its command id goes to cmd_id. */
static void
resize_vm(struct fixture *f, const char *node, const char *vm_id,
    unsigned vcpus, uint64_t mem, char cmd_id[IDS_UUID_LEN + 1], int64_t now)
{
	struct carve_error err = { 0 };
	struct cp_cmd_rec cmd;
	struct command c;
	json_object *o;
	int64_t seq = 0;

	memset(&c, 0, sizeof(c));
	ids_uuid_new(c.cmd_id);
	memcpy(c.cmd_vm_id, vm_id, sizeof(c.cmd_vm_id));
	c.cmd_type = CMD_VM_RESIZE;
	c.cmd_args.resize.vcpus = vcpus;
	c.cmd_args.resize.memory_mib = mem;
	memset(&cmd, 0, sizeof(cmd));
	memcpy(cmd.cr_id, c.cmd_id, sizeof(cmd.cr_id));
	memcpy(cmd_id, c.cmd_id, IDS_UUID_LEN + 1);
	snprintf(cmd.cr_node, sizeof(cmd.cr_node), "%s", node);
	memcpy(cmd.cr_vm_id, vm_id, sizeof(cmd.cr_vm_id));
	cmd.cr_type = CMD_VM_RESIZE;
	o = command_encode(&c);
	cmd.cr_command = jsonx_to_string(o);
	json_object_put(o);
	if (cp_store_cmd_insert(f->st, &cmd, now, &seq, &err) < 0)
		fail_msg("insert: %s", err.message);
	free(cmd.cr_command);
}

static void
assert_claimed(struct fixture *f, const char *node, int64_t vcpus,
    int64_t mem)
{
	struct carve_error err = { 0 };
	struct cp_node_rec rec;

	assert_int_equal(cp_store_node_get(f->st, node, &rec, &err), 0);
	if (rec.nr_claimed[PROTO_CAP_VCPU] != vcpus ||
	    rec.nr_claimed[PROTO_CAP_MEMORY_MIB] != mem)
		fail_msg("%s claims %lld vCPUs %lld MiB, want %lld %lld", node,
		    (long long)rec.nr_claimed[PROTO_CAP_VCPU],
		    (long long)rec.nr_claimed[PROTO_CAP_MEMORY_MIB],
		    (long long)vcpus, (long long)mem);
	cp_node_rec_clear(&rec);
}

/*
 * Resizes without a result claim their growth over the VM's size on
 * record: peak per VM, nothing for a shrink; the result's size replaces
 * the record's and the claim goes.
 */
static void
test_resize_claims(void **state)
{
	struct fixture *f = *state;
	char vm1[IDS_UUID_LEN + 1], vm2[IDS_UUID_LEN + 1];
	char c1[IDS_UUID_LEN + 1], c2[IDS_UUID_LEN + 1];
	char r1[IDS_UUID_LEN + 1], r2[IDS_UUID_LEN + 1], r3[IDS_UUID_LEN + 1];
	struct carve_error err = { 0 };
	struct cp_vm_rec vm;

	register_node(f, "a", T0);
	register_node(f, "b", T0);
	assert_true(create_vm(f, "a", "web1", vm1, c1, T0) > 0);
	assert_true(create_vm(f, "b", "web2", vm2, c2, T0) > 0);
	/* The creates are reported by a later heartbeat: no claims left. */
	assert_int_equal(cp_store_cmd_finish(f->st, c1, CMD_STATUS_SUCCEEDED,
	    "{}", T0 + 1, &err), 1);
	assert_int_equal(cp_store_cmd_finish(f->st, c2, CMD_STATUS_SUCCEEDED,
	    "{}", T0 + 1, &err), 1);
	heartbeat(f, "a", 1, true, NULL, NULL, NULL, T0 + 2, false);
	heartbeat(f, "b", 1, true, NULL, NULL, NULL, T0 + 2, false);
	assert_claimed(f, "a", 0, 0);

	/* web1 (2 vCPUs, 1024 MiB): +2 vCPUs, then to 6 (peak, not sum). */
	resize_vm(f, "a", vm1, 4, 0, r1, T0 + 3);
	assert_claimed(f, "a", 2, 0);
	resize_vm(f, "a", vm1, 6, 512, r2, T0 + 3);
	assert_claimed(f, "a", 4, 0);
	/* web2 on b: a shrink of vCPUs, growth of memory. */
	resize_vm(f, "b", vm2, 1, 3072, r3, T0 + 3);
	assert_claimed(f, "b", 0, 2048);
	assert_claimed(f, "a", 4, 0);

	/* r1 done: the record has its size, r2 still claims over it. */
	assert_int_equal(cp_store_cmd_finish(f->st, r1, CMD_STATUS_SUCCEEDED,
	    "{}", T0 + 4, &err), 1);
	assert_int_equal(cp_store_vm_set_size(f->st, vm1, 4, 1024, T0 + 4,
	    &err), 0);
	assert_claimed(f, "a", 2, 0);
	assert_int_equal(cp_store_cmd_finish(f->st, r2, CMD_STATUS_FAILED,
	    "{}", T0 + 5, &err), 1);
	assert_claimed(f, "a", 0, 0);
	assert_int_equal(cp_store_vm_get(f->st, vm1, &vm, &err), 0);
	assert_int_equal(vm.vr_vcpus, 4);
	assert_int_equal(vm.vr_memory_mib, 1024);
	assert_int_equal(vm.vr_disk_gib, 10);
	assert_int_equal(vm.vr_updated_at_ms, T0 + 4);
	cp_vm_rec_clear(&vm);
	assert_int_equal(cp_store_vm_set_size(f->st, r3, 1, 64, T0, &err), -1);
	assert_int_equal(err.code, CARVE_ENOTFOUND);
}

/* ------------------------------------------------------------ migrations */

/* A command row of type for vm on node; its id into id. */
static void
insert_cmd(struct fixture *f, const char *node, const char *vm_id,
    enum command_type type, char id[IDS_UUID_LEN + 1], int64_t now)
{
	struct carve_error err = { 0 };
	struct cp_cmd_rec cmd;
	int64_t seq;

	memset(&cmd, 0, sizeof(cmd));
	ids_uuid_new(id);
	memcpy(cmd.cr_id, id, sizeof(cmd.cr_id));
	snprintf(cmd.cr_node, sizeof(cmd.cr_node), "%s", node);
	memcpy(cmd.cr_vm_id, vm_id, sizeof(cmd.cr_vm_id));
	cmd.cr_type = type;
	cmd.cr_command = (char *)"{\"x\":2}";
	if (cp_store_cmd_insert(f->st, &cmd, now, &seq, &err) < 0)
		fail_msg("insert command: %s", err.message);
}

/* A migration of vm from src to dst with its prepare command. */
static void
start_mig(struct fixture *f, const char *vm_id, const char *src,
    const char *dst, bool evacuation, struct cp_mig_rec *m, int64_t now)
{
	struct carve_error err = { 0 };

	memset(m, 0, sizeof(*m));
	ids_uuid_new(m->mr_id);
	memcpy(m->mr_vm_id, vm_id, sizeof(m->mr_vm_id));
	snprintf(m->mr_source, sizeof(m->mr_source), "%s", src);
	snprintf(m->mr_target, sizeof(m->mr_target), "%s", dst);
	m->mr_state = CP_MIG_PREPARING;
	m->mr_evacuation = evacuation;
	m->mr_max_downtime_ms = 300;
	m->mr_bandwidth_mibps = 0;
	m->mr_timeout_s = -1;
	insert_cmd(f, dst, vm_id, CMD_VM_MIGRATE_PREPARE, m->mr_prepare_cmd,
	    now);
	if (cp_store_mig_insert(f->st, m, now, &err) < 0)
		fail_msg("insert migration: %s", err.message);
}

static void
end_mig(struct fixture *f, struct cp_mig_rec *m, enum cp_mig_state st,
    int64_t now)
{
	struct carve_error err = { 0 };

	m->mr_state = st;
	if (cp_store_mig_update(f->st, m, now, &err) < 0)
		fail_msg("update migration: %s", err.message);
}

static void
test_migrations(void **state)
{
	struct fixture *f = *state;
	char vm_id[IDS_UUID_LEN + 1], cmd_id[IDS_UUID_LEN + 1];
	struct carve_error err = { 0 };
	struct cp_mig_rec m, got, again, *list;
	struct cp_node_rec rec;
	struct cp_vm_rec *vms;
	size_t n;

	register_node(f, "a", T0);
	register_node(f, "b", T0);
	assert_true(create_vm(f, "a", "web1", vm_id, cmd_id, T0) > 0);
	assert_int_equal(cp_store_cmd_finish(f->st, cmd_id,
	    CMD_STATUS_SUCCEEDED, "{}", T0, &err), 1);
	heartbeat(f, "b", 1, true, NULL, NULL, NULL, T0 + 1, false);
	start_mig(f, vm_id, "a", "b", false, &m, T0 + 2);

	/* Read back as written; limits not given are -1. */
	assert_int_equal(cp_store_mig_get(f->st, m.mr_id, &got, &err), 0);
	assert_string_equal(got.mr_vm_id, vm_id);
	assert_string_equal(got.mr_source, "a");
	assert_string_equal(got.mr_target, "b");
	assert_int_equal(got.mr_state, CP_MIG_PREPARING);
	assert_int_equal(got.mr_max_downtime_ms, 300);
	assert_int_equal(got.mr_bandwidth_mibps, 0);
	assert_int_equal(got.mr_timeout_s, -1);
	assert_string_equal(got.mr_prepare_cmd, m.mr_prepare_cmd);
	assert_string_equal(got.mr_migrate_cmd, "");
	assert_null(got.mr_progress);
	assert_int_equal(got.mr_created_at_ms, T0 + 2);
	assert_int_equal(got.mr_finished_at_ms, 0);
	cp_mig_rec_clear(&got);

	/* One at a time per VM. */
	memcpy(&again, &m, sizeof(again));
	ids_uuid_new(again.mr_id);
	assert_int_equal(cp_store_mig_insert(f->st, &again, T0 + 3, &err), -1);
	assert_int_equal(err.code, CARVE_ECONFLICT);
	error_clear(&err);

	/* The target's prepare claims the VM's size until it reports it. */
	assert_int_equal(cp_store_node_get(f->st, "b", &rec, &err), 0);
	assert_int_equal(rec.nr_claimed[PROTO_CAP_VCPU], 2);
	assert_int_equal(rec.nr_claimed[PROTO_CAP_MEMORY_MIB], 1024);
	assert_int_equal(rec.nr_claimed[PROTO_CAP_DISK_GIB], 10);
	cp_node_rec_clear(&rec);

	/* Found by any of its commands. */
	assert_int_equal(cp_store_mig_by_command(f->st, m.mr_prepare_cmd, &got,
	    &err), 0);
	assert_string_equal(got.mr_id, m.mr_id);
	cp_mig_rec_clear(&got);
	assert_int_equal(cp_store_mig_by_command(f->st, cmd_id, &got, &err),
	    -1);
	assert_int_equal(err.code, CARVE_ENOTFOUND);
	error_clear(&err);

	/* Migrating: the source's progress shows through. */
	assert_int_equal(cp_store_cmd_finish(f->st, m.mr_prepare_cmd,
	    CMD_STATUS_SUCCEEDED, "{}", T0 + 4, &err), 1);
	insert_cmd(f, "a", vm_id, CMD_VM_MIGRATE, m.mr_migrate_cmd, T0 + 4);
	m.mr_state = CP_MIG_MIGRATING;
	m.mr_prepare_result = (char *)"{\"libvirt_uri\":\"qemu:///system\"}";
	assert_int_equal(cp_store_mig_update(f->st, &m, T0 + 4, &err), 0);
	m.mr_prepare_result = NULL;
	assert_int_equal(cp_store_cmd_set_progress(f->st, m.mr_migrate_cmd,
	    "{\"percent\":40,\"message\":\"iteration 2\"}", &err), 0);
	assert_int_equal(cp_store_mig_by_command(f->st, m.mr_migrate_cmd, &got,
	    &err), 0);
	assert_int_equal(got.mr_state, CP_MIG_MIGRATING);
	assert_non_null(got.mr_progress);
	assert_non_null(strstr(got.mr_progress, "iteration 2"));
	assert_non_null(strstr(got.mr_prepare_result, "qemu:///system"));
	assert_int_equal(got.mr_finished_at_ms, 0);
	cp_mig_rec_clear(&got);

	/* Unknown ids. */
	memcpy(&again, &m, sizeof(again));
	ids_uuid_new(again.mr_id);
	assert_int_equal(cp_store_mig_update(f->st, &again, T0 + 5, &err), -1);
	assert_int_equal(err.code, CARVE_ENOTFOUND);
	error_clear(&err);

	/* A restart keeps it, unfinished. */
	reopen(f);
	assert_int_equal(cp_store_mig_list(f->st, true, 0, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].mr_id, m.mr_id);
	cp_mig_list_free(list, n);

	/* Done: the VM moves, the migration is history. */
	m.mr_migrated = true;
	m.mr_error = (char *)"{\"code\":\"conflict\",\"message\":\"x\"}";
	end_mig(f, &m, CP_MIG_DONE, T0 + 6);
	m.mr_error = NULL;
	assert_int_equal(cp_store_vm_set_node(f->st, vm_id, "b", T0 + 6, &err),
	    0);
	assert_int_equal(cp_store_mig_get(f->st, m.mr_id, &got, &err), 0);
	assert_int_equal(got.mr_state, CP_MIG_DONE);
	assert_true(got.mr_migrated);
	assert_int_equal(got.mr_finished_at_ms, T0 + 6);
	assert_non_null(strstr(got.mr_error, "conflict"));
	cp_mig_rec_clear(&got);
	assert_int_equal(cp_store_mig_active_for_vm(f->st, vm_id, &got, &err),
	    -1);
	assert_int_equal(err.code, CARVE_ENOTFOUND);
	error_clear(&err);
	assert_int_equal(cp_store_vm_list_node(f->st, "a", &vms, &n, &err), 0);
	assert_int_equal(n, 0);
	cp_vm_list_free(vms, n);
	assert_int_equal(cp_store_vm_list_node(f->st, "b", &vms, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(vms[0].vr_id, vm_id);
	cp_vm_list_free(vms, n);

	/* The next migration of the VM is allowed; newest listed first. */
	start_mig(f, vm_id, "b", "a", false, &again, T0 + 7);
	assert_int_equal(cp_store_mig_active_for_vm(f->st, vm_id, &got, &err),
	    0);
	assert_string_equal(got.mr_id, again.mr_id);
	cp_mig_rec_clear(&got);
	assert_int_equal(cp_store_mig_list(f->st, false, 0, &list, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].mr_id, again.mr_id);
	assert_string_equal(list[1].mr_id, m.mr_id);
	cp_mig_list_free(list, n);
	assert_int_equal(cp_store_mig_list(f->st, false, 1, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	cp_mig_list_free(list, n);
}

/* A VM's reported state is left alone while it migrates. */
static void
test_migrating_state_kept(void **state)
{
	struct fixture *f = *state;
	char vm_id[IDS_UUID_LEN + 1], cmd_id[IDS_UUID_LEN + 1];
	struct cp_mig_rec m;

	register_node(f, "a", T0);
	register_node(f, "b", T0);
	assert_true(create_vm(f, "a", "web1", vm_id, cmd_id, T0) > 0);
	heartbeat(f, "a", 1, true, vm_id, "running", NULL, T0 + 1, false);
	assert_vm_state(f, vm_id, "running");
	start_mig(f, vm_id, "a", "b", false, &m, T0 + 2);
	/* The source already dropped it (the migration completed). */
	heartbeat(f, "a", 2, true, NULL, NULL, NULL, T0 + 3, false);
	assert_vm_state(f, vm_id, "running");
	end_mig(f, &m, CP_MIG_FAILED, T0 + 4);
	heartbeat(f, "a", 3, true, NULL, NULL, NULL, T0 + 5, false);
	assert_vm_state(f, vm_id, "");
}

static void
test_evacuation(void **state)
{
	struct fixture *f = *state;
	char vm[3][IDS_UUID_LEN + 1], cmd_id[IDS_UUID_LEN + 1];
	struct carve_error err = { 0 };
	struct cp_evac_counts c;
	struct cp_mig_rec m[3];
	struct cp_node_rec rec;
	bool failed;

	register_node(f, "a", T0);
	register_node(f, "b", T0);
	assert_int_equal(cp_store_node_get(f->st, "a", &rec, &err), 0);
	assert_int_equal(rec.nr_evac_reason, CP_EVAC_NONE);
	cp_node_rec_clear(&rec);

	assert_int_equal(cp_store_node_evac_start(f->st, "a", CP_EVAC_DRAIN,
	    T0 + 1, &err), 1);
	/* A second start keeps the first. */
	assert_int_equal(cp_store_node_evac_start(f->st, "a", CP_EVAC_ADMIN,
	    T0 + 2, &err), 0);
	assert_int_equal(cp_store_node_evac_start(f->st, "ghost",
	    CP_EVAC_ADMIN, T0 + 2, &err), -1);
	assert_int_equal(err.code, CARVE_ENOTFOUND);
	error_clear(&err);
	{
		char (*names)[IDS_NAME_MAX + 1];
		size_t nn;

		assert_int_equal(cp_store_node_list_evacuating(f->st, &names,
		    &nn, &err), 0);
		assert_int_equal(nn, 1);
		assert_string_equal(names[0], "a");
		free(names);
	}
	assert_int_equal(cp_store_node_evac_note(f->st, "a", "no room", &err),
	    1);
	assert_int_equal(cp_store_node_evac_note(f->st, "a", "no room", &err),
	    0);
	assert_int_equal(cp_store_node_get(f->st, "a", &rec, &err), 0);
	assert_int_equal(rec.nr_evac_reason, CP_EVAC_DRAIN);
	assert_string_equal(cp_evac_reason_name(rec.nr_evac_reason), "drain");
	assert_int_equal(rec.nr_evac_started_at_ms, T0 + 1);
	assert_int_equal(rec.nr_evac_finished_at_ms, 0);
	assert_string_equal(rec.nr_evac_note, "no room");
	cp_node_rec_clear(&rec);

	/* Its migrations, by outcome; each VM tried once. */
	for (int i = 0; i < 3; i++) {
		char name[8];

		snprintf(name, sizeof(name), "vm%d", i);
		assert_true(create_vm(f, "a", name, vm[i], cmd_id, T0) > 0);
		start_mig(f, vm[i], "a", "b", true, &m[i], T0 + 3 + i);
	}
	end_mig(f, &m[0], CP_MIG_DONE, T0 + 10);
	end_mig(f, &m[1], CP_MIG_FAILED, T0 + 10);
	assert_int_equal(cp_store_mig_evac_counts(f->st, "a", T0 + 1, &c, &err),
	    0);
	assert_int_equal(c.ec_done, 1);
	assert_int_equal(c.ec_failed, 1);
	assert_int_equal(c.ec_active, 1);
	/* Migrations before the evacuation began do not count. */
	assert_int_equal(cp_store_mig_evac_counts(f->st, "a", T0 + 5, &c, &err),
	    0);
	assert_int_equal(c.ec_done + c.ec_failed + c.ec_active, 1);
	assert_int_equal(cp_store_mig_evac_failed(f->st, "a", vm[1], T0 + 1,
	    &failed, &err), 0);
	assert_true(failed);
	assert_int_equal(cp_store_mig_evac_failed(f->st, "a", vm[0], T0 + 1,
	    &failed, &err), 0);
	assert_false(failed);
	assert_int_equal(cp_store_mig_evac_failed(f->st, "a", vm[1], T0 + 20,
	    &failed, &err), 0);
	assert_false(failed);

	/* Over; a new one starts afresh. */
	assert_int_equal(cp_store_node_evac_end(f->st, "a", T0 + 11, &err), 0);
	{
		char (*names)[IDS_NAME_MAX + 1];
		size_t nn;

		assert_int_equal(cp_store_node_list_evacuating(f->st, &names,
		    &nn, &err), 0);
		assert_int_equal(nn, 0);
		free(names);
	}
	assert_int_equal(cp_store_node_get(f->st, "a", &rec, &err), 0);
	assert_int_equal(rec.nr_evac_finished_at_ms, T0 + 11);
	assert_null(rec.nr_evac_note);
	cp_node_rec_clear(&rec);
	assert_int_equal(cp_store_node_evac_start(f->st, "a", CP_EVAC_ADMIN,
	    T0 + 12, &err), 1);
	reopen(f);
	assert_int_equal(cp_store_node_get(f->st, "a", &rec, &err), 0);
	assert_int_equal(rec.nr_evac_reason, CP_EVAC_ADMIN);
	assert_int_equal(rec.nr_evac_started_at_ms, T0 + 12);
	assert_int_equal(rec.nr_evac_finished_at_ms, 0);
	cp_node_rec_clear(&rec);
}

static void
test_heartbeat_schedulable(void **state)
{
	struct fixture *f = *state;
	struct proto_heartbeat_req hb;
	struct carve_error err = { 0 };
	struct cp_node_rec rec;
	bool resync, was;

	register_node(f, "a", T0);
	memset(&hb, 0, sizeof(hb));
	hb.hb_seq = 1;
	hb.hb_full = true;
	hb.hb_schedulable = false;
	hb.hb_capacity = json_tokener_parse(cap_json);
	assert_int_equal(cp_store_node_heartbeat(f->st, "a", &hb, T0 + 1,
	    &resync, &was, &err), 0);
	assert_true(was);
	assert_int_equal(cp_store_node_get(f->st, "a", &rec, &err), 0);
	assert_false(rec.nr_schedulable);
	cp_node_rec_clear(&rec);
	hb.hb_seq = 2;
	hb.hb_schedulable = true;
	assert_int_equal(cp_store_node_heartbeat(f->st, "a", &hb, T0 + 2,
	    &resync, &was, &err), 0);
	assert_false(was);
	assert_int_equal(cp_store_node_get(f->st, "a", &rec, &err), 0);
	assert_true(rec.nr_schedulable);
	cp_node_rec_clear(&rec);
	proto_heartbeat_req_clear(&hb);
}

/* A version 1 database (before migrations) is upgraded in place. */
static void
test_upgrade_v1(void **state)
{
	struct fixture *f = *state;
	char vm_id[IDS_UUID_LEN + 1], cmd_id[IDS_UUID_LEN + 1];
	struct carve_error err = { 0 };
	struct cp_node_rec rec;
	struct cp_mig_rec m;
	sqlite3 *db;

	register_node(f, "a", T0);
	register_node(f, "b", T0);
	assert_true(create_vm(f, "a", "web1", vm_id, cmd_id, T0) > 0);
	cp_store_close(f->st);
	f->st = NULL;
	/* Undo version 2 behind the store's back. */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE migrations;"
	    "ALTER TABLE nodes DROP COLUMN evac_reason;"
	    "ALTER TABLE nodes DROP COLUMN evac_started_at;"
	    "ALTER TABLE nodes DROP COLUMN evac_finished_at;"
	    "ALTER TABLE nodes DROP COLUMN evac_note;"
	    "PRAGMA user_version = 1;", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	reopen(f);
	assert_int_equal(cp_store_node_get(f->st, "a", &rec, &err), 0);
	assert_int_equal(rec.nr_evac_reason, CP_EVAC_NONE);
	cp_node_rec_clear(&rec);
	start_mig(f, vm_id, "a", "b", false, &m, T0 + 1);
	assert_int_equal(cp_store_node_evac_start(f->st, "a", CP_EVAC_DRAIN,
	    T0 + 2, &err), 1);
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
	set_user_version(f->path, 2);
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
		cmocka_unit_test_setup_teardown(test_resize_claims, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refuse_newer_schema, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_migrations, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_migrating_state_kept, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_evacuation, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_schedulable,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_v1, setup,
		    teardown),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests_name("cp_store", tests, NULL, NULL);
}
