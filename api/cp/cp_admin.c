/*
 * carve-cp's admin API: see cp_admin.h.
 *
 * A command and the VM change that caused it are stored in one transaction
 * before the 202 goes out, and the node's long poll is woken after the
 * commit: what an operator was told was accepted survives a crash, and an
 * agent is never handed a command the database does not hold.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "api/command.h"
#include "api/cp/cp_admin.h"
#include "api/cp/cp_agent.h"
#include "api/cp/cp_mig.h"
#include "api/cp/cp_sched.h"
#include "api/cp/cp_store.h"
#include "api/proto.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

/*
 * Store cmd for node (with vm inserted first when not NULL, else the VM's
 * desired state set) and wake the node.
 */
static int
admin_store_command(struct cp *cp, const struct command *cmd, const char *node,
    const struct cp_vm_rec *vm, enum proto_desired_state desired,
    struct carve_error *err)
{
	struct cp_cmd_rec rec;
	json_object *o = command_encode(cmd);
	int64_t now = time_now_ms(), seq = 0;
	char seqstr[24];
	int rc = -1;

	memset(&rec, 0, sizeof(rec));
	memcpy(rec.cr_id, cmd->cmd_id, sizeof(rec.cr_id));
	snprintf(rec.cr_node, sizeof(rec.cr_node), "%s", node);
	memcpy(rec.cr_vm_id, cmd->cmd_vm_id, sizeof(rec.cr_vm_id));
	rec.cr_type = cmd->cmd_type;
	rec.cr_command = jsonx_to_string(o);
	json_object_put(o);

	if (cp_store_begin(cp->cp_store, err) < 0)
		goto cleanup;
	if ((vm != NULL ? cp_store_vm_insert(cp->cp_store, vm, err) :
	    cp_store_vm_set_desired(cp->cp_store, cmd->cmd_vm_id, desired,
	    cmd->cmd_id, now, err)) < 0 ||
	    cp_store_cmd_insert(cp->cp_store, &rec, now, &seq, err) < 0 ||
	    cp_store_commit(cp->cp_store, err) < 0) {
		cp_store_rollback(cp->cp_store);
		goto cleanup;
	}
	snprintf(seqstr, sizeof(seqstr), "%lld", (long long)seq);
	log_kv(LOG_LVL_INFO, CP_COMP, "command queued", "id", cmd->cmd_id,
	    "type", command_type_name(cmd->cmd_type), "vm", cmd->cmd_vm_id,
	    "node", node, "seq", seqstr, NULL);
	cp_agent_wake(cp, node);
	rc = 0;
cleanup:
	free(rec.cr_command);
	return rc;
}

/*
 * The path's id as a UUID. Anything else names nothing that exists: 404,
 * as the contract lists for these endpoints.
 */
static int
admin_path_id(const struct cp_req *r, const char *what,
    char out[IDS_UUID_LEN + 1], struct carve_error *err)
{
	if (!ids_uuid_valid(r->rq_arg[0]))
		return error_set(err, CARVE_ENOTFOUND, "no %s with id \"%s\"",
		    what, r->rq_arg[0]);
	ids_uuid_normalize(r->rq_arg[0], out);
	return 0;
}

/* The VM's migration under way, if any, into its record. */
static void
admin_vm_migration(const struct cp_mig_rec *m, struct proto_vm *out)
{
	memcpy(out->pv_migration_id, m->mr_id, sizeof(out->pv_migration_id));
	snprintf(out->pv_migration_state, sizeof(out->pv_migration_state), "%s",
	    cp_mig_state_name(m->mr_state));
	memcpy(out->pv_migration_target, m->mr_target,
	    sizeof(out->pv_migration_target));
}

static void
admin_vm_to_proto(const struct cp_vm_rec *v, struct proto_vm *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->pv_id, v->vr_id, sizeof(out->pv_id));
	memcpy(out->pv_name, v->vr_name, sizeof(out->pv_name));
	memcpy(out->pv_node, v->vr_node, sizeof(out->pv_node));
	out->pv_vcpus = v->vr_vcpus;
	out->pv_memory_mib = v->vr_memory_mib;
	out->pv_disk_gib = v->vr_disk_gib;
	out->pv_desired = v->vr_desired;
	snprintf(out->pv_state, sizeof(out->pv_state), "%s",
	    v->vr_state[0] != '\0' ? v->vr_state : "pending");
	memcpy(out->pv_last_command_id, v->vr_last_command_id,
	    sizeof(out->pv_last_command_id));
	out->pv_updated_at_ms = v->vr_updated_at_ms;
}

/* ------------------------------------------------------------ VMs */

/* Scheduler records for the stored nodes (names borrowed from recs). */
static struct cp_sched_node *
admin_sched_nodes(const struct cp_node_rec *recs, size_t n)
{
	struct cp_sched_node *sn = xcalloc(n > 0 ? n : 1, sizeof(*sn));

	for (size_t i = 0; i < n; i++) {
		struct proto_capacity cap;
		struct carve_error err = { 0 };
		json_object *o = cp_store_json(recs[i].nr_capacity, &err);

		sn[i].sn_name = recs[i].nr_name;
		sn[i].sn_last_heartbeat_ms = recs[i].nr_last_heartbeat_ms;
		/* A node being emptied takes nothing new. */
		sn[i].sn_schedulable = recs[i].nr_schedulable &&
		    (recs[i].nr_evac_reason == CP_EVAC_NONE ||
		    recs[i].nr_evac_finished_at_ms != 0);
		memcpy(sn[i].sn_claimed, recs[i].nr_claimed,
		    sizeof(sn[i].sn_claimed));
		/* A report that does not read back leaves the node no room. */
		if (o != NULL && proto_capacity_decode(o, &cap, &err) == 0)
			for (int c = 0; c < PROTO_CAP_NCLASSES; c++)
				sn[i].sn_free[c] =
				    cap.pc_class[c].ci_allocatable -
				    cap.pc_class[c].ci_allocated;
		json_object_put(o);
	}
	return sn;
}

int
cp_admin_vm_create(struct cp_req *r, struct carve_error *err)
{
	struct cp *cp = r->rq_cp;
	struct proto_vm_create_req req;
	struct proto_vm_created created;
	struct cp_node_rec *nodes = NULL;
	struct cp_sched_node *sn = NULL;
	struct command cmd;
	struct cp_vm_rec vm;
	size_t n = 0;
	int64_t need[PROTO_CAP_NCLASSES], now = time_now_ms();
	json_object *spec;
	int idx, rc = -1;

	if (proto_vm_create_req_decode_buf(r->rq_body, r->rq_body_len, &req,
	    err) < 0)
		return -1;
	if (cp_store_node_list(cp->cp_store, &nodes, &n, err) < 0)
		goto cleanup;
	sn = admin_sched_nodes(nodes, n);
	need[PROTO_CAP_VCPU] = req.vc_spec.vs_vcpus;
	need[PROTO_CAP_MEMORY_MIB] = (int64_t)req.vc_spec.vs_memory_mib;
	need[PROTO_CAP_DISK_GIB] = (int64_t)vm_spec_disk_gib_total(&req.vc_spec);
	idx = cp_sched_pick(sn, n, req.vc_node, need, now,
	    (int64_t)cp->cp_conf.cf_node_ttl_s * 1000, err);
	if (idx < 0)
		goto cleanup;

	memset(&cmd, 0, sizeof(cmd));
	ids_uuid_new(cmd.cmd_id);
	ids_uuid_new(cmd.cmd_vm_id);
	cmd.cmd_type = CMD_VM_CREATE;
	/* Borrowed: cmd is only encoded, never cleared. */
	cmd.cmd_args.create = req.vc_spec;

	memset(&vm, 0, sizeof(vm));
	memcpy(vm.vr_id, cmd.cmd_vm_id, sizeof(vm.vr_id));
	memcpy(vm.vr_name, req.vc_spec.vs_name, sizeof(vm.vr_name));
	memcpy(vm.vr_node, nodes[idx].nr_name, sizeof(vm.vr_node));
	vm.vr_vcpus = req.vc_spec.vs_vcpus;
	vm.vr_memory_mib = req.vc_spec.vs_memory_mib;
	/* What the VM takes of DISK_GIB: root and data disks. */
	vm.vr_disk_gib = vm_spec_disk_gib_total(&req.vc_spec);
	spec = vm_spec_encode(&req.vc_spec);
	vm.vr_spec = jsonx_to_string(spec);
	json_object_put(spec);
	vm.vr_desired = PROTO_DESIRED_RUNNING;
	memcpy(vm.vr_last_command_id, cmd.cmd_id, sizeof(vm.vr_last_command_id));
	vm.vr_created_at_ms = vm.vr_updated_at_ms = now;

	rc = admin_store_command(cp, &cmd, vm.vr_node, &vm,
	    PROTO_DESIRED_RUNNING, err);
	if (rc == 0) {
		memcpy(created.vd_id, vm.vr_id, sizeof(created.vd_id));
		memcpy(created.vd_node, vm.vr_node, sizeof(created.vd_node));
		memcpy(created.vd_command_id, cmd.cmd_id,
		    sizeof(created.vd_command_id));
		cp_http_reply(r, 202, proto_vm_created_encode(&created));
	}
	free(vm.vr_spec);
cleanup:
	free(sn);
	cp_node_list_free(nodes, n);
	proto_vm_create_req_clear(&req);
	return rc;
}

int
cp_admin_vm_list(struct cp_req *r, struct carve_error *err)
{
	struct cp_mig_rec *migs;
	struct cp_vm_rec *recs;
	struct proto_vm *vms;
	size_t n, nmig;

	if (cp_store_vm_list(r->rq_cp->cp_store, &recs, &n, err) < 0)
		return -1;
	if (cp_store_mig_list(r->rq_cp->cp_store, true, 0, &migs, &nmig,
	    err) < 0) {
		cp_vm_list_free(recs, n);
		return -1;
	}
	vms = xcalloc(n > 0 ? n : 1, sizeof(*vms));
	for (size_t i = 0; i < n; i++) {
		admin_vm_to_proto(&recs[i], &vms[i]);
		for (size_t j = 0; j < nmig; j++)
			if (strcmp(migs[j].mr_vm_id, recs[i].vr_id) == 0)
				admin_vm_migration(&migs[j], &vms[i]);
	}
	cp_http_reply(r, 200, proto_vm_list_encode(vms, n));
	free(vms);
	cp_mig_list_free(migs, nmig);
	cp_vm_list_free(recs, n);
	return 0;
}

int
cp_admin_vm_get(struct cp_req *r, struct carve_error *err)
{
	char id[IDS_UUID_LEN + 1];
	struct carve_error merr = { 0 };
	struct cp_vm_rec rec;
	struct cp_mig_rec mig;
	struct proto_vm vm;

	if (admin_path_id(r, "VM", id, err) < 0 ||
	    cp_store_vm_get(r->rq_cp->cp_store, id, &rec, err) < 0)
		return -1;
	admin_vm_to_proto(&rec, &vm);
	if (cp_store_mig_active_for_vm(r->rq_cp->cp_store, id, &mig,
	    &merr) == 0) {
		admin_vm_migration(&mig, &vm);
		cp_mig_rec_clear(&mig);
	}
	cp_http_reply(r, 200, proto_vm_encode(&vm));
	cp_vm_rec_clear(&rec);
	return 0;
}

static void
admin_reply_command(struct cp_req *r, const char *command_id)
{
	struct proto_command_ref ref;

	memcpy(ref.ref_command_id, command_id, sizeof(ref.ref_command_id));
	cp_http_reply(r, 202, proto_command_ref_encode(&ref));
}

/* A destroy of the VM that is still under way, to answer a repeated DELETE. */
static bool
admin_destroy_pending(struct cp *cp, const struct cp_vm_rec *vm)
{
	struct carve_error err = { 0 };
	struct cp_cmd_rec cmd;
	bool pending;

	if (vm->vr_desired != PROTO_DESIRED_DELETED ||
	    cp_store_cmd_get(cp->cp_store, vm->vr_last_command_id, &cmd,
	    &err) < 0)
		return false;
	pending = cmd.cr_type == CMD_VM_DESTROY && cmd.cr_finished_at_ms == 0;
	cp_cmd_rec_clear(&cmd);
	return pending;
}

int
cp_admin_vm_delete(struct cp_req *r, struct carve_error *err)
{
	struct cp *cp = r->rq_cp;
	char id[IDS_UUID_LEN + 1];
	struct cp_vm_rec vm;
	struct command cmd;
	int rc = 0;

	if (admin_path_id(r, "VM", id, err) < 0 ||
	    cp_store_vm_get(cp->cp_store, id, &vm, err) < 0)
		return -1;
	if (admin_destroy_pending(cp, &vm)) {
		admin_reply_command(r, vm.vr_last_command_id);
		goto cleanup;
	}
	if ((rc = cp_mig_vm_check_idle(cp, vm.vr_id, err)) < 0)
		goto cleanup;
	memset(&cmd, 0, sizeof(cmd));
	ids_uuid_new(cmd.cmd_id);
	memcpy(cmd.cmd_vm_id, vm.vr_id, sizeof(cmd.cmd_vm_id));
	cmd.cmd_type = CMD_VM_DESTROY;
	rc = admin_store_command(cp, &cmd, vm.vr_node, NULL,
	    PROTO_DESIRED_DELETED, err);
	if (rc == 0)
		admin_reply_command(r, cmd.cmd_id);
cleanup:
	cp_vm_rec_clear(&vm);
	return rc;
}

/*
 * The growth of a resize must fit the VM's node as the scheduler sees it
 * (its last report, less the claims of commands in flight, this VM's other
 * resizes included); a shrink always fits. The node's agent checks again.
 */
static int
admin_resize_fits(struct cp *cp, const struct cp_vm_rec *vm,
    const struct command_resize_args *ra, struct carve_error *err)
{
	struct cp_node_rec node;
	struct cp_sched_node *sn;
	int64_t need[PROTO_CAP_NCLASSES] = { 0 };
	int rc = 0;

	if (ra->vcpus > vm->vr_vcpus)
		need[PROTO_CAP_VCPU] = (int64_t)ra->vcpus - vm->vr_vcpus;
	if (ra->memory_mib > vm->vr_memory_mib)
		need[PROTO_CAP_MEMORY_MIB] = (int64_t)(ra->memory_mib -
		    vm->vr_memory_mib);
	if (need[PROTO_CAP_VCPU] == 0 && need[PROTO_CAP_MEMORY_MIB] == 0)
		return 0;
	if (cp_store_node_get(cp->cp_store, vm->vr_node, &node, err) < 0)
		return -1;
	sn = admin_sched_nodes(&node, 1);
	if (!cp_sched_fits(sn, need))
		rc = error_set(err, CARVE_ECAPACITY, "node %s has no room to "
		    "grow VM %s by %lld vCPUs and %lld MiB", vm->vr_node,
		    vm->vr_id, (long long)need[PROTO_CAP_VCPU],
		    (long long)need[PROTO_CAP_MEMORY_MIB]);
	free(sn);
	cp_node_rec_clear(&node);
	return rc;
}

int
cp_admin_vm_action(struct cp_req *r, struct carve_error *err)
{
	struct cp *cp = r->rq_cp;
	struct proto_vm_action_req act;
	char id[IDS_UUID_LEN + 1];
	struct cp_vm_rec vm;
	struct command cmd;
	json_object *body;
	bool migrate;
	int rc = -1;

	if (admin_path_id(r, "VM", id, err) < 0)
		return -1;
	/* A migration has arguments of its own, and its own machinery. */
	if ((body = proto_parse(r->rq_body, r->rq_body_len, PROTO_REQUEST_MAX,
	    err)) == NULL)
		return -1;
	migrate = proto_vm_action_is_migrate(body);
	json_object_put(body);
	if (migrate)
		return cp_mig_admin_migrate(r, id, err);
	if (proto_vm_action_req_decode_buf(r->rq_body, r->rq_body_len, &act,
	    err) < 0)
		return -1;
	if (cp_store_vm_get(cp->cp_store, id, &vm, err) < 0) {
		proto_vm_action_req_clear(&act);
		return -1;
	}
	memset(&cmd, 0, sizeof(cmd));
	if (vm.vr_desired == PROTO_DESIRED_DELETED) {
		error_set(err, CARVE_ECONFLICT, "VM %s is being deleted", id);
		goto cleanup;
	}
	if (cp_mig_vm_check_idle(cp, vm.vr_id, err) < 0)
		goto cleanup;
	ids_uuid_new(cmd.cmd_id);
	memcpy(cmd.cmd_vm_id, vm.vr_id, sizeof(cmd.cmd_vm_id));
	cmd.cmd_type = proto_vm_action_command(act.va_action);
	if (cmd.cmd_type == CMD_VM_STOP) {
		cmd.cmd_args.stop.force = act.va_force;
		cmd.cmd_args.stop.timeout_s = VM_STOP_TIMEOUT_DEFAULT;
	}
	if (cmd.cmd_type == CMD_VM_RESIZE) {
		cmd.cmd_args.resize = act.va_resize;
		if (admin_resize_fits(cp, &vm, &act.va_resize, err) < 0)
			goto cleanup;
	}
	if (cmd.cmd_type == CMD_VM_REBUILD) {
		/* Moved, not copied: act is cleared below either way. */
		cmd.cmd_args.rebuild.image = act.va_image;
		memset(&act.va_image, 0, sizeof(act.va_image));
	}
	/* A resize or a rebuild leaves the desired state as it is. */
	rc = admin_store_command(cp, &cmd, vm.vr_node, NULL,
	    act.va_action == PROTO_VM_STOP ? PROTO_DESIRED_STOPPED :
	    act.va_action == PROTO_VM_RESIZE ||
	    act.va_action == PROTO_VM_REBUILD ? vm.vr_desired :
	    PROTO_DESIRED_RUNNING, err);
	if (rc == 0)
		admin_reply_command(r, cmd.cmd_id);
cleanup:
	command_clear(&cmd);
	proto_vm_action_req_clear(&act);
	cp_vm_rec_clear(&vm);
	return rc;
}

/* ------------------------------------------------------------ snapshots */

/* The VM of the path, which must not be on its way out. */
static int
admin_snapshot_vm(struct cp_req *r, struct cp_vm_rec *vm,
    struct carve_error *err)
{
	char id[IDS_UUID_LEN + 1];

	if (admin_path_id(r, "VM", id, err) < 0 ||
	    cp_store_vm_get(r->rq_cp->cp_store, id, vm, err) < 0)
		return -1;
	if (vm->vr_desired == PROTO_DESIRED_DELETED) {
		cp_vm_rec_clear(vm);
		return error_set(err, CARVE_ECONFLICT, "VM %s is being deleted",
		    id);
	}
	return 0;
}

/* A command about one of vm's snapshots; its desired state stays. */
static int
admin_snapshot_command(struct cp_req *r, const struct cp_vm_rec *vm,
    enum command_type type, const struct command_snapshot_args *a,
    struct carve_error *err)
{
	struct command cmd;

	memset(&cmd, 0, sizeof(cmd));
	ids_uuid_new(cmd.cmd_id);
	memcpy(cmd.cmd_vm_id, vm->vr_id, sizeof(cmd.cmd_vm_id));
	cmd.cmd_type = type;
	cmd.cmd_args.snapshot = *a;
	if (admin_store_command(r->rq_cp, &cmd, vm->vr_node, NULL,
	    vm->vr_desired, err) < 0)
		return -1;
	admin_reply_command(r, cmd.cmd_id);
	return 0;
}

int
cp_admin_snapshot_create(struct cp_req *r, struct carve_error *err)
{
	struct command_snapshot_args a;
	struct cp_vm_rec vm;
	int rc;

	if (proto_snapshot_create_req_decode_buf(r->rq_body, r->rq_body_len,
	    &a, err) < 0 || admin_snapshot_vm(r, &vm, err) < 0)
		return -1;
	rc = admin_snapshot_command(r, &vm, CMD_VM_SNAPSHOT_CREATE, &a, err);
	cp_vm_rec_clear(&vm);
	return rc;
}

/* The path's snapshot name (the second wildcard): a malformed one is 400. */
static int
admin_snapshot_name(const struct cp_req *r, struct command_snapshot_args *a,
    struct carve_error *err)
{
	memset(a, 0, sizeof(*a));
	if (ids_name_check(r->rq_arg[1], "snapshot name", err) < 0)
		return -1;
	snprintf(a->name, sizeof(a->name), "%s", r->rq_arg[1]);
	return 0;
}

int
cp_admin_snapshot_revert(struct cp_req *r, struct carve_error *err)
{
	struct command_snapshot_args a;
	struct cp_vm_rec vm;
	int rc;

	if (admin_snapshot_name(r, &a, err) < 0 ||
	    proto_empty_decode_buf(r->rq_body_len > 0 ? r->rq_body : "{}",
	    r->rq_body_len > 0 ? r->rq_body_len : 2, err) < 0 ||
	    admin_snapshot_vm(r, &vm, err) < 0)
		return -1;
	rc = admin_snapshot_command(r, &vm, CMD_VM_SNAPSHOT_REVERT, &a, err);
	cp_vm_rec_clear(&vm);
	return rc;
}

int
cp_admin_snapshot_delete(struct cp_req *r, struct carve_error *err)
{
	struct command_snapshot_args a;
	struct cp_vm_rec vm;
	int rc;

	if (admin_snapshot_name(r, &a, err) < 0 ||
	    admin_snapshot_vm(r, &vm, err) < 0)
		return -1;
	rc = admin_snapshot_command(r, &vm, CMD_VM_SNAPSHOT_DELETE, &a, err);
	cp_vm_rec_clear(&vm);
	return rc;
}

int
cp_admin_snapshot_list(struct cp_req *r, struct carve_error *err)
{
	struct proto_snapshot_list *list = xcalloc(1, sizeof(*list));
	struct vm_info *info = xcalloc(1, sizeof(*info));
	struct carve_error rerr = { 0 };
	struct cp_vm_rec vm;
	json_object *o;
	char *text = NULL;
	int rc = -1;

	if (admin_path_id(r, "VM", list->sl_vm_id, err) < 0 ||
	    cp_store_vm_get(r->rq_cp->cp_store, list->sl_vm_id, &vm, err) < 0)
		goto out;
	if (cp_store_vm_report(r->rq_cp->cp_store, vm.vr_node, vm.vr_id, &text,
	    err) < 0)
		goto clear;
	/* What carve-cp stored itself reads back; if not, say nothing. */
	if (text != NULL && (o = cp_store_json(text, &rerr)) != NULL) {
		if (vm_info_decode(o, info, &rerr) == 0) {
			list->sl_n = info->vm_nsnapshots;
			memcpy(list->sl_snaps, info->vm_snapshots,
			    sizeof(list->sl_snaps));
		} else {
			log_kv(LOG_LVL_WARN, CP_COMP,
			    "stored VM report does not read back", "vm",
			    vm.vr_id, "error", rerr.message, NULL);
		}
		json_object_put(o);
	}
	cp_http_reply(r, 200, proto_snapshot_list_encode(list));
	rc = 0;
clear:
	cp_vm_rec_clear(&vm);
out:
	free(text);
	free(info);
	free(list);
	return rc;
}

/* ------------------------------------------------------------ nodes */

static int
admin_node_to_proto(struct cp *cp, const struct cp_node_rec *rec,
    int64_t now_ms, struct proto_node *out, struct carve_error *err)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->nd_name, rec->nr_name, sizeof(out->nd_name));
	out->nd_up = cp_sched_node_up(rec->nr_last_heartbeat_ms, now_ms,
	    (int64_t)cp->cp_conf.cf_node_ttl_s * 1000);
	out->nd_schedulable = rec->nr_schedulable;
	out->nd_last_heartbeat_ms = rec->nr_last_heartbeat_ms;
	out->nd_registered_at_ms = rec->nr_registered_at_ms;
	memcpy(out->nd_agent_version, rec->nr_agent_version,
	    sizeof(out->nd_agent_version));
	out->nd_vms = rec->nr_vms;
	if ((out->nd_host = cp_store_json(rec->nr_host, err)) == NULL ||
	    (out->nd_capacity = cp_store_json(rec->nr_capacity, err)) == NULL) {
		proto_node_clear(out);
		return -1;
	}
	if (rec->nr_evac_reason != CP_EVAC_NONE &&
	    (out->nd_evacuation = cp_mig_evac_encode(cp, rec, err)) == NULL) {
		proto_node_clear(out);
		return -1;
	}
	return 0;
}

int
cp_admin_node_list(struct cp_req *r, struct carve_error *err)
{
	struct cp *cp = r->rq_cp;
	struct cp_node_rec *recs;
	struct proto_node *nodes;
	int64_t now = time_now_ms();
	size_t n, done = 0;
	int rc = 0;

	if (cp_store_node_list(cp->cp_store, &recs, &n, err) < 0)
		return -1;
	nodes = xcalloc(n > 0 ? n : 1, sizeof(*nodes));
	for (; done < n; done++)
		if ((rc = admin_node_to_proto(cp, &recs[done], now,
		    &nodes[done], err)) < 0)
			break;
	if (rc == 0)
		cp_http_reply(r, 200, proto_node_list_encode(nodes, n));
	proto_node_list_free(nodes, done);
	cp_node_list_free(recs, n);
	return rc;
}

int
cp_admin_node_get(struct cp_req *r, struct carve_error *err)
{
	struct cp *cp = r->rq_cp;
	struct cp_node_rec rec;
	struct proto_node node;

	if (ids_name_check(r->rq_arg[0], "node name", NULL) < 0)
		return error_set(err, CARVE_ENOTFOUND, "node \"%s\" is not "
		    "registered", r->rq_arg[0]);
	if (cp_store_node_get(cp->cp_store, r->rq_arg[0], &rec, err) < 0)
		return -1;
	if (admin_node_to_proto(cp, &rec, time_now_ms(), &node, err) < 0) {
		cp_node_rec_clear(&rec);
		return -1;
	}
	cp_http_reply(r, 200, proto_node_encode(&node));
	proto_node_clear(&node);
	cp_node_rec_clear(&rec);
	return 0;
}

int
cp_admin_node_delete(struct cp_req *r, struct carve_error *err)
{
	struct cp *cp = r->rq_cp;

	if (ids_name_check(r->rq_arg[0], "node name", NULL) < 0)
		return error_set(err, CARVE_ENOTFOUND, "node \"%s\" is not "
		    "registered", r->rq_arg[0]);
	if (cp_store_node_delete(cp->cp_store, r->rq_arg[0], err) < 0)
		return -1;
	log_kv(LOG_LVL_INFO, CP_COMP, "node reset by the administrator",
	    "node", r->rq_arg[0], NULL);
	cp_http_reply(r, 200, json_object_new_object());
	return 0;
}

/* ------------------------------------------------------------ commands */

/*
 * The stored result's data and error into the command record. Read with
 * plain getters rather than the strict decoder: a result carve-cp wrote
 * itself for a command of unknown type names no valid type.
 */
static int
admin_command_result(const struct cp_cmd_rec *rec, struct proto_command_info *ci,
    struct carve_error *err)
{
	const char *code = NULL, *msg = NULL;
	enum carve_errcode c = CARVE_EINTERNAL;
	json_object *o, *v;

	if (rec->cr_result == NULL)
		return 0;
	if ((o = cp_store_json(rec->cr_result, err)) == NULL)
		return -1;
	if (json_object_object_get_ex(o, "result", &v) &&
	    json_object_is_type(v, json_type_object))
		ci->ci_result = json_object_get(v);
	if (rec->cr_status == PROTO_CMD_FAILED) {
		if (json_object_object_get_ex(o, "error", &v) &&
		    json_object_is_type(v, json_type_object)) {
			(void)jsonx_get_string(v, "code", false, 64, &code, NULL);
			(void)jsonx_get_string(v, "message", false,
			    CARVE_ERRMSG_MAX - 1, &msg, NULL);
		}
		if (code != NULL && (c = error_code_parse(code)) == CARVE_OK)
			c = CARVE_EINTERNAL;
		error_set(&ci->ci_error, c, "%s", msg != NULL ? msg :
		    "the command failed");
	}
	json_object_put(o);
	return 0;
}

int
cp_admin_command_get(struct cp_req *r, struct carve_error *err)
{
	struct proto_command_info ci;
	char id[IDS_UUID_LEN + 1];
	struct cp_cmd_rec rec;
	json_object *o;
	int rc = -1;

	if (admin_path_id(r, "command", id, err) < 0 ||
	    cp_store_cmd_get(r->rq_cp->cp_store, id, &rec, err) < 0)
		return -1;
	memset(&ci, 0, sizeof(ci));
	memcpy(ci.ci_id, rec.cr_id, sizeof(ci.ci_id));
	ci.ci_type = rec.cr_type;
	memcpy(ci.ci_vm_id, rec.cr_vm_id, sizeof(ci.ci_vm_id));
	memcpy(ci.ci_node, rec.cr_node, sizeof(ci.ci_node));
	ci.ci_status = rec.cr_status;
	ci.ci_created_at_ms = rec.cr_created_at_ms;
	ci.ci_delivered_at_ms = rec.cr_delivered_at_ms;
	ci.ci_finished_at_ms = rec.cr_finished_at_ms;
	if (admin_command_result(&rec, &ci, err) < 0)
		goto cleanup;
	if (rec.cr_progress != NULL) {
		if ((o = cp_store_json(rec.cr_progress, err)) == NULL)
			goto cleanup;
		if (proto_progress_decode(o, &ci.ci_progress, err) < 0) {
			json_object_put(o);
			err->code = CARVE_EINTERNAL;
			goto cleanup;
		}
		json_object_put(o);
		ci.ci_has_progress = true;
	}
	cp_http_reply(r, 200, proto_command_info_encode(&ci));
	rc = 0;
cleanup:
	proto_command_info_clear(&ci);
	cp_cmd_rec_clear(&rec);
	return rc;
}
