/*
 * Live migration and evacuation in carve-cp: see cp_mig.h.
 *
 * Each step writes the migration row, the command it sends and (on the
 * step to done) the VM's node in the transaction of its cause: the
 * operator's request, or the result that finished the previous command.
 * The nodes to wake are queued (cp_agent_wake_later) and woken after the
 * commit, so an agent is never handed a command the database might lose.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "api/cp/cp_agent.h"
#include "api/cp/cp_mig.h"
#include "api/cp/cp_sched.h"
#include "api/proto.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

/* ------------------------------------------------------------ state machine */

int
cp_mig_advance(struct cp_mig_sm *sm, enum cp_mig_event ev, const char **why,
    struct carve_error *err)
{
	if (why != NULL)
		*why = NULL;
	sm->sm_move = false;
	if (ev == CP_MIG_EV_CANCEL) {
		switch (sm->sm_state) {
		case CP_MIG_PREPARING:
			/*
			 * Nothing moves yet: skip vm.migrate. The target runs
			 * commands of one VM in order, so the finish comes
			 * after the prepare and releases what it made.
			 */
			sm->sm_cancel_requested = true;
			sm->sm_state = CP_MIG_FINISHING;
			sm->sm_finish_tries++;
			return CP_MIG_ACT_FINISH;
		case CP_MIG_MIGRATING:
			if (sm->sm_cancel_requested)
				return CP_MIG_ACT_NONE;
			sm->sm_cancel_requested = true;
			return CP_MIG_ACT_CANCEL;
		case CP_MIG_FINISHING:
			return error_set(err, CARVE_ECONFLICT, "the migration "
			    "is finishing: too late to cancel");
		default:
			return error_set(err, CARVE_ECONFLICT, "the migration "
			    "is over (%s)", cp_mig_state_name(sm->sm_state));
		}
	}
	switch (sm->sm_state) {
	case CP_MIG_PREPARING:
		if (ev == CP_MIG_EV_PREPARED) {
			sm->sm_state = CP_MIG_MIGRATING;
			sm->sm_migrate_sent = true;
			return CP_MIG_ACT_MIGRATE;
		}
		if (ev == CP_MIG_EV_PREPARE_FAILED) {
			/* What a failed prepare left is released too. */
			sm->sm_state = CP_MIG_FINISHING;
			sm->sm_finish_tries++;
			return CP_MIG_ACT_FINISH;
		}
		return CP_MIG_ACT_NONE;
	case CP_MIG_MIGRATING:
		if (ev == CP_MIG_EV_MIGRATED || ev == CP_MIG_EV_MIGRATE_FAILED) {
			sm->sm_migrated = ev == CP_MIG_EV_MIGRATED;
			sm->sm_state = CP_MIG_FINISHING;
			sm->sm_finish_tries++;
			return CP_MIG_ACT_FINISH;
		}
		return CP_MIG_ACT_NONE;
	case CP_MIG_FINISHING:
		switch (ev) {
		case CP_MIG_EV_ARRIVED:
			if (!sm->sm_migrate_sent) {
				/*
				 * The VM was never sent, yet a domain of its
				 * id runs there: not this migration's doing,
				 * and the source still has the VM.
				 */
				sm->sm_state = CP_MIG_FAILED;
				if (why != NULL)
					*why = "the target reports the VM "
					    "running although it was never "
					    "sent there";
				return CP_MIG_ACT_NONE;
			}
			/* libvirt's word over vm.migrate's result. */
			sm->sm_state = CP_MIG_DONE;
			sm->sm_move = true;
			return CP_MIG_ACT_NONE;
		case CP_MIG_EV_RELEASED:
			sm->sm_state = CP_MIG_FAILED;
			if (sm->sm_migrated && why != NULL)
				*why = "the source reported the migration "
				    "done, but the VM is not running on the "
				    "target";
			return CP_MIG_ACT_NONE;
		case CP_MIG_EV_FINISH_FAILED:
			if (sm->sm_finish_tries < CP_MIG_FINISH_TRIES) {
				sm->sm_finish_tries++;
				return CP_MIG_ACT_FINISH;
			}
			/*
			 * The target cannot say. A source that completed the
			 * migration has undefined its copy, so the VM is on
			 * the target; otherwise it never left the source.
			 */
			sm->sm_state = sm->sm_migrated ? CP_MIG_DONE :
			    CP_MIG_FAILED;
			sm->sm_move = sm->sm_migrated;
			if (why != NULL)
				*why = "the target could not finish the "
				    "migration";
			return CP_MIG_ACT_NONE;
		default:
			return CP_MIG_ACT_NONE;
		}
	default:
		return CP_MIG_ACT_NONE;
	}
}

static void
mig_sm_load(const struct cp_mig_rec *m, struct cp_mig_sm *sm)
{
	memset(sm, 0, sizeof(*sm));
	sm->sm_state = m->mr_state;
	sm->sm_migrate_sent = m->mr_migrate_cmd[0] != '\0';
	sm->sm_migrated = m->mr_migrated;
	sm->sm_cancel_requested = m->mr_cancel_requested;
	sm->sm_finish_tries = m->mr_finish_tries;
}

static void
mig_sm_store(const struct cp_mig_sm *sm, struct cp_mig_rec *m)
{
	m->mr_state = sm->sm_state;
	m->mr_migrated = sm->sm_migrated;
	m->mr_cancel_requested = sm->sm_cancel_requested;
	m->mr_finish_tries = sm->sm_finish_tries;
}

/* ------------------------------------------------------------ helpers */

static int64_t
mig_ttl_ms(const struct cp *cp)
{
	return (int64_t)cp->cp_conf.cf_node_ttl_s * 1000;
}

static bool
mig_evac_running(const struct cp_node_rec *n)
{
	return n->nr_evac_reason != CP_EVAC_NONE &&
	    n->nr_evac_finished_at_ms == 0;
}

/* Record err as the migration's error unless it has one already. */
static void
mig_set_error(struct cp_mig_rec *m, enum carve_errcode code, const char *msg)
{
	struct carve_error e = { 0 };
	json_object *o;

	if (m->mr_error != NULL)
		return;
	error_set(&e, code == CARVE_OK ? CARVE_EINTERNAL : code, "%s", msg);
	o = proto_error_encode(&e);
	/* The record keeps the inner {"code","message"}. */
	m->mr_error = jsonx_to_string(json_object_object_get(o, "error"));
	json_object_put(o);
}

/*
 * Store a command of type for node (about the migration's VM) in the
 * current transaction and queue node's wake; id gets its id.
 */
static int
mig_store_command(struct cp *cp, struct command *cmd, const char *node,
    int64_t now_ms, char id[IDS_UUID_LEN + 1], struct carve_error *err)
{
	struct cp_cmd_rec rec;
	json_object *o;
	int64_t seq;
	int rc;

	ids_uuid_new(cmd->cmd_id);
	memset(&rec, 0, sizeof(rec));
	memcpy(rec.cr_id, cmd->cmd_id, sizeof(rec.cr_id));
	snprintf(rec.cr_node, sizeof(rec.cr_node), "%s", node);
	memcpy(rec.cr_vm_id, cmd->cmd_vm_id, sizeof(rec.cr_vm_id));
	rec.cr_type = cmd->cmd_type;
	o = command_encode(cmd);
	rec.cr_command = jsonx_to_string(o);
	json_object_put(o);
	rc = cp_store_cmd_insert(cp->cp_store, &rec, now_ms, &seq, err);
	free(rec.cr_command);
	if (rc < 0)
		return -1;
	memcpy(id, cmd->cmd_id, IDS_UUID_LEN + 1);
	cp_agent_wake_later(cp, node);
	log_kv(LOG_LVL_INFO, CP_COMP, "command queued", "id", cmd->cmd_id,
	    "type", command_type_name(cmd->cmd_type), "vm", cmd->cmd_vm_id,
	    "node", node, NULL);
	return 0;
}

static int
mig_send_simple(struct cp *cp, struct cp_mig_rec *m, enum command_type type,
    const char *node, int64_t now_ms, char id[IDS_UUID_LEN + 1],
    struct carve_error *err)
{
	struct command cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.cmd_type = type;
	memcpy(cmd.cmd_vm_id, m->mr_vm_id, sizeof(cmd.cmd_vm_id));
	return mig_store_command(cp, &cmd, node, now_ms, id, err);
}

/*
 * The vm.migrate command from the prepare result (the target's libvirt
 * URI, migration address, disk paths and console log) and the limits.
 * A result that does not make a valid command is the prepare's failure.
 */
static int
mig_build_migrate(const struct cp_mig_rec *m, json_object *prep,
    struct command *cmd, struct carve_error *err)
{
	struct command_migrate_args *a = &cmd->cmd_args.migrate;
	const char *uri = NULL, *muri = NULL, *log = NULL;
	struct carve_error sub = { 0 };
	struct command back;
	json_object *disks = NULL, *o;
	size_t n = 0;
	int rc;

	memset(cmd, 0, sizeof(*cmd));
	cmd->cmd_type = CMD_VM_MIGRATE;
	memcpy(cmd->cmd_vm_id, m->mr_vm_id, sizeof(cmd->cmd_vm_id));
	if (prep == NULL || !json_object_is_type(prep, json_type_object) ||
	    jsonx_get_string(prep, "libvirt_uri", true, VM_MIGRATE_URI_MAX,
	    &uri, &sub) == -1 ||
	    jsonx_get_string(prep, "migrate_uri", false, VM_MIGRATE_URI_MAX,
	    &muri, &sub) == -1 ||
	    jsonx_get_string(prep, "console_log", false, VM_MIGRATE_PATH_MAX,
	    &log, &sub) == -1 ||
	    jsonx_get_object(prep, "disks", false, &disks, &sub) == -1)
		return error_set(err, CARVE_EINVAL, "the target's prepare "
		    "result is unusable: %s", sub.message[0] != '\0' ?
		    sub.message : "not an object");
	snprintf(a->mg_dest_node, sizeof(a->mg_dest_node), "%s", m->mr_target);
	a->mg_dest_libvirt_uri = xstrdup(uri);
	a->mg_dest_migrate_uri = muri != NULL ? xstrdup(muri) : NULL;
	a->mg_console_log = log != NULL ? xstrdup(log) : NULL;
	if (disks != NULL && json_object_object_length(disks) > 0) {
		a->mg_disks = xcalloc((size_t)json_object_object_length(disks),
		    sizeof(*a->mg_disks));
		json_object_object_foreach(disks, k, v) {
			if (!json_object_is_type(v, json_type_string) ||
			    strlen(k) > VM_DISK_TARGET_MAX) {
				a->mg_ndisks = n;
				command_clear(cmd);
				return error_set(err, CARVE_EINVAL, "the "
				    "target's prepare result is unusable: "
				    "disks.%.16s is not a path", k);
			}
			snprintf(a->mg_disks[n].dp_target,
			    sizeof(a->mg_disks[n].dp_target), "%s", k);
			a->mg_disks[n].dp_path =
			    xstrdup(json_object_get_string(v));
			n++;
		}
		a->mg_ndisks = n;
	}
	a->mg_max_downtime_ms = m->mr_max_downtime_ms > 0 ?
	    (unsigned)m->mr_max_downtime_ms : 0;
	a->mg_bandwidth_mibps = m->mr_bandwidth_mibps > 0 ?
	    (uint64_t)m->mr_bandwidth_mibps : 0;
	a->mg_timeout_s = m->mr_timeout_s > 0 ? (unsigned)m->mr_timeout_s :
	    VM_MIGRATE_TIMEOUT_DEFAULT_S;
	/*
	 * What the source will decode, checked here where a bad value can
	 * still end the migration cleanly (the id is given when it is sent).
	 */
	ids_uuid_new(cmd->cmd_id);
	o = command_encode(cmd);
	memset(cmd->cmd_id, 0, sizeof(cmd->cmd_id));
	if ((rc = command_decode(o, &back, &sub)) == 0)
		command_clear(&back);
	json_object_put(o);
	if (rc < 0) {
		command_clear(cmd);
		return error_set(err, CARVE_EINVAL, "the target's prepare "
		    "result is unusable: %s", sub.message);
	}
	return 0;
}

/* ------------------------------------------------------------ results */

/* The event a result is, or -1 when it does not drive the migration. */
static int
mig_event(const struct cp_mig_rec *m, const struct cp_cmd_rec *cmd,
    const struct command_result *res)
{
	bool ok = res->res_status == CMD_STATUS_SUCCEEDED;
	const char *outcome = NULL;

	switch (cmd->cr_type) {
	case CMD_VM_MIGRATE_PREPARE:
		if (strcmp(cmd->cr_id, m->mr_prepare_cmd) != 0)
			return -1;
		return ok ? CP_MIG_EV_PREPARED : CP_MIG_EV_PREPARE_FAILED;
	case CMD_VM_MIGRATE:
		if (strcmp(cmd->cr_id, m->mr_migrate_cmd) != 0)
			return -1;
		return ok ? CP_MIG_EV_MIGRATED : CP_MIG_EV_MIGRATE_FAILED;
	case CMD_VM_MIGRATE_FINISH:
		if (strcmp(cmd->cr_id, m->mr_finish_cmd) != 0)
			return -1;
		if (!ok)
			return CP_MIG_EV_FINISH_FAILED;
		if (res->res_data != NULL)
			(void)jsonx_get_string(res->res_data, "outcome", false,
			    32, &outcome, NULL);
		if (outcome != NULL && strcmp(outcome, "arrived") == 0)
			return CP_MIG_EV_ARRIVED;
		if (outcome != NULL && strcmp(outcome, "released") == 0)
			return CP_MIG_EV_RELEASED;
		return CP_MIG_EV_FINISH_FAILED;
	default:
		return -1;
	}
}

static void
mig_log_end(const struct cp_mig_rec *m)
{
	char *msg = NULL;
	json_object *e = NULL, *v;

	if (m->mr_error != NULL &&
	    (e = cp_store_json(m->mr_error, NULL)) != NULL &&
	    json_object_object_get_ex(e, "message", &v))
		msg = xstrdup(json_object_get_string(v));
	json_object_put(e);
	log_kv(m->mr_state == CP_MIG_DONE ? LOG_LVL_INFO : LOG_LVL_WARN,
	    CP_COMP, m->mr_state == CP_MIG_DONE ? "migration done" :
	    "migration failed", "id", m->mr_id, "vm", m->mr_vm_id, "source",
	    m->mr_source, "target", m->mr_target, "error",
	    msg != NULL ? msg : "", NULL);
	free(msg);
}

/* Carry out action for m (in the caller's transaction). */
static int
mig_act(struct cp *cp, struct cp_mig_rec *m, enum cp_mig_action act,
    struct command *migrate, int64_t now_ms, struct carve_error *err)
{
	switch (act) {
	case CP_MIG_ACT_MIGRATE:
		return mig_store_command(cp, migrate, m->mr_source, now_ms,
		    m->mr_migrate_cmd, err);
	case CP_MIG_ACT_FINISH:
		return mig_send_simple(cp, m, CMD_VM_MIGRATE_FINISH,
		    m->mr_target, now_ms, m->mr_finish_cmd, err);
	case CP_MIG_ACT_CANCEL:
		return mig_send_simple(cp, m, CMD_VM_MIGRATE_CANCEL,
		    m->mr_source, now_ms, m->mr_cancel_cmd, err);
	default:
		return 0;
	}
}

/*
 * Advance m by the result res of its command cmd and store the outcome:
 * the next command, the row, the VM's node on arrival.
 */
static int
mig_apply(struct cp *cp, struct cp_mig_rec *m, const struct cp_cmd_rec *cmd,
    const struct command_result *res, int64_t now_ms, struct carve_error *err)
{
	struct command migrate;
	struct carve_error berr = { 0 };
	struct cp_mig_sm sm;
	const char *why;
	int ev, act, rc;

	if ((ev = mig_event(m, cmd, res)) < 0) {
		log_kv(LOG_LVL_DEBUG, CP_COMP, "migration: result of a command "
		    "it has moved past", "id", m->mr_id, "command", cmd->cr_id,
		    NULL);
		return 0;
	}
	memset(&migrate, 0, sizeof(migrate));
	if (ev == CP_MIG_EV_PREPARED) {
		free(m->mr_prepare_result);
		m->mr_prepare_result = res->res_data != NULL ?
		    jsonx_to_string(res->res_data) : NULL;
		if (m->mr_state == CP_MIG_PREPARING &&
		    mig_build_migrate(m, res->res_data, &migrate, &berr) < 0) {
			mig_set_error(m, berr.code, berr.message);
			ev = CP_MIG_EV_PREPARE_FAILED;
		}
	} else if (ev == CP_MIG_EV_MIGRATED) {
		free(m->mr_migrate_result);
		m->mr_migrate_result = res->res_data != NULL ?
		    jsonx_to_string(res->res_data) : NULL;
	} else if (res->res_status == CMD_STATUS_FAILED &&
	    ev != CP_MIG_EV_FINISH_FAILED) {
		mig_set_error(m, res->res_error.code, res->res_error.message);
	}
	mig_sm_load(m, &sm);
	act = cp_mig_advance(&sm, (enum cp_mig_event)ev, &why, err);
	if (act < 0) {
		command_clear(&migrate);
		return -1;
	}
	mig_sm_store(&sm, m);
	/* A finish that failed for good says why; a retried one does not. */
	if (ev == CP_MIG_EV_FINISH_FAILED && cp_mig_state_final(sm.sm_state) &&
	    res->res_status == CMD_STATUS_FAILED)
		mig_set_error(m, res->res_error.code, res->res_error.message);
	if (why != NULL)
		mig_set_error(m, CARVE_EINTERNAL, why);
	rc = mig_act(cp, m, (enum cp_mig_action)act, &migrate, now_ms, err);
	command_clear(&migrate);
	if (rc < 0)
		return -1;
	if (sm.sm_move && cp_store_vm_set_node(cp->cp_store, m->mr_vm_id,
	    m->mr_target, now_ms, err) < 0)
		return -1;
	if (cp_store_mig_update(cp->cp_store, m, now_ms, err) < 0)
		return -1;
	if (cp_mig_state_final(m->mr_state)) {
		mig_log_end(m);
		cp_mig_kick(cp);
	} else {
		log_kv(LOG_LVL_INFO, CP_COMP, "migration step", "id", m->mr_id,
		    "vm", m->mr_vm_id, "state", cp_mig_state_name(m->mr_state),
		    NULL);
	}
	return 0;
}

int
cp_mig_on_result(struct cp *cp, const struct cp_cmd_rec *cmd,
    const struct command_result *res, int64_t now_ms, struct carve_error *err)
{
	struct carve_error lerr = { 0 };
	struct cp_mig_rec m;
	int rc;

	if (cp_store_mig_by_command(cp->cp_store, cmd->cr_id, &m, &lerr) < 0) {
		if (lerr.code != CARVE_ENOTFOUND) {
			*err = lerr;
			return -1;
		}
		log_kv(LOG_LVL_WARN, CP_COMP, "result of a migration command "
		    "no migration sent", "command", cmd->cr_id, "type",
		    command_type_name(cmd->cr_type), NULL);
		return 0;
	}
	if (cmd->cr_type == CMD_VM_MIGRATE_CANCEL) {
		/* vm.migrate's own result says how it ended. */
		log_kv(LOG_LVL_INFO, CP_COMP, "migration cancel answered", "id",
		    m.mr_id, "status", command_status_name(res->res_status),
		    NULL);
		cp_mig_rec_clear(&m);
		return 0;
	}
	rc = mig_apply(cp, &m, cmd, res, now_ms, err);
	cp_mig_rec_clear(&m);
	return rc;
}

/* ------------------------------------------------------------ start */

/*
 * The CPU of a node from its stored inventory: the "cpu" object
 * {arch, model, vendor, features}, or the flat cpu_* keys of agents that
 * predate it. Strings borrow from host.
 */
static void
mig_node_cpu(json_object *host, struct cp_sched_cpu *cpu,
    const char ***features)
{
	static const char *const flat[] = { "cpu_arch", "cpu_vendor",
	    "cpu_model", "cpu_features" };
	static const char *const nested[] = { "arch", "vendor", "model",
	    "features" };
	const char *const *keys = flat;
	json_object *f, *c;
	const char *s;
	size_t n;

	memset(cpu, 0, sizeof(*cpu));
	*features = NULL;
	if (host == NULL)
		return;
	if (json_object_object_get_ex(host, "cpu", &c) &&
	    json_object_is_type(c, json_type_object)) {
		host = c;
		keys = nested;
	}
	if (jsonx_get_string(host, keys[0], false, 64, &s, NULL) == 1)
		cpu->sc_arch = s;
	if (jsonx_get_string(host, keys[1], false, 64, &s, NULL) == 1)
		cpu->sc_vendor = s;
	if (jsonx_get_string(host, keys[2], false, 64, &s, NULL) == 1)
		cpu->sc_model = s;
	if (json_object_object_get_ex(host, keys[3], &f) &&
	    json_object_is_type(f, json_type_array) &&
	    (n = json_object_array_length(f)) > 0) {
		*features = xcalloc(n, sizeof(**features));
		for (size_t i = 0; i < n; i++) {
			json_object *v = json_object_array_get_idx(f, i);

			if (json_object_is_type(v, json_type_string))
				(*features)[cpu->sc_nfeatures++] =
				    json_object_get_string(v);
		}
		cpu->sc_features = *features;
	}
}

/* The scheduler's view of every node, for a migration. */
struct mig_fleet {
	struct cp_node_rec	*mf_recs;
	size_t			 mf_n;
	struct cp_sched_node	*mf_sn;
	json_object		**mf_hosts;
	const char		***mf_features;
	int			*mf_outgoing;
};

static void
mig_fleet_free(struct mig_fleet *f)
{
	for (size_t i = 0; i < f->mf_n; i++) {
		json_object_put(f->mf_hosts[i]);
		free(f->mf_features[i]);
	}
	free(f->mf_hosts);
	free(f->mf_features);
	free(f->mf_sn);
	free(f->mf_outgoing);
	cp_node_list_free(f->mf_recs, f->mf_n);
	memset(f, 0, sizeof(*f));
}

static int
mig_fleet_load(struct cp *cp, struct mig_fleet *f, struct carve_error *err)
{
	struct cp_mig_rec *act = NULL;
	size_t nact = 0;

	memset(f, 0, sizeof(*f));
	if (cp_store_node_list(cp->cp_store, &f->mf_recs, &f->mf_n, err) < 0)
		return -1;
	if (cp_store_mig_list(cp->cp_store, true, 0, &act, &nact, err) < 0) {
		cp_node_list_free(f->mf_recs, f->mf_n);
		memset(f, 0, sizeof(*f));
		return -1;
	}
	f->mf_sn = xcalloc(f->mf_n + 1, sizeof(*f->mf_sn));
	f->mf_hosts = xcalloc(f->mf_n + 1, sizeof(*f->mf_hosts));
	f->mf_features = xcalloc(f->mf_n + 1, sizeof(*f->mf_features));
	f->mf_outgoing = xcalloc(f->mf_n + 1, sizeof(*f->mf_outgoing));
	for (size_t i = 0; i < f->mf_n; i++) {
		const struct cp_node_rec *r = &f->mf_recs[i];
		struct cp_sched_node *sn = &f->mf_sn[i];
		struct proto_capacity cap;
		struct carve_error perr = { 0 };
		json_object *o = cp_store_json(r->nr_capacity, &perr);

		sn->sn_name = r->nr_name;
		sn->sn_last_heartbeat_ms = r->nr_last_heartbeat_ms;
		sn->sn_schedulable = r->nr_schedulable && !mig_evac_running(r);
		memcpy(sn->sn_claimed, r->nr_claimed, sizeof(sn->sn_claimed));
		/* A report that does not read back leaves the node no room. */
		if (o != NULL && proto_capacity_decode(o, &cap, &perr) == 0)
			for (int c = 0; c < PROTO_CAP_NCLASSES; c++)
				sn->sn_free[c] = cap.pc_class[c].ci_allocatable -
				    cap.pc_class[c].ci_allocated;
		json_object_put(o);
		f->mf_hosts[i] = cp_store_json(r->nr_host, &perr);
		mig_node_cpu(f->mf_hosts[i], &sn->sn_cpu, &f->mf_features[i]);
		for (size_t j = 0; j < nact; j++) {
			if (strcmp(act[j].mr_target, r->nr_name) == 0)
				sn->sn_incoming++;
			if (strcmp(act[j].mr_source, r->nr_name) == 0)
				f->mf_outgoing[i]++;
		}
	}
	cp_mig_list_free(act, nact);
	return 0;
}

/* Whether the VM's last command (not a migration's) is still under way. */
static int
mig_vm_busy(struct cp *cp, const struct cp_vm_rec *vm, struct carve_error *err)
{
	struct carve_error lerr = { 0 };
	struct cp_cmd_rec cmd;
	int busy;

	if (cp_store_cmd_get(cp->cp_store, vm->vr_last_command_id, &cmd,
	    &lerr) < 0)
		return 0;
	busy = cmd.cr_finished_at_ms == 0;
	if (busy)
		error_set(err, CARVE_ECONFLICT, "VM %s has a command under way "
		    "(%s %s); try again when it is done", vm->vr_id,
		    command_type_name(cmd.cr_type), cmd.cr_id);
	cp_cmd_rec_clear(&cmd);
	return busy;
}

/* A migration of vm off fleet node src to fleet node dst, stored. */
static int
mig_store_new(struct cp *cp, const struct cp_vm_rec *vm, const char *target,
    const struct cp_mig_limits *limits, bool evacuation, int64_t now_ms,
    struct cp_mig_rec *m, struct carve_error *err)
{
	struct carve_error perr = { 0 };
	struct command cmd;
	json_object *spec;
	int rc;

	memset(&cmd, 0, sizeof(cmd));
	cmd.cmd_type = CMD_VM_MIGRATE_PREPARE;
	memcpy(cmd.cmd_vm_id, vm->vr_id, sizeof(cmd.cmd_vm_id));
	if ((spec = cp_store_json(vm->vr_spec, err)) == NULL)
		return -1;
	rc = vm_spec_decode(spec, &cmd.cmd_args.migrate_prepare.mp_spec, &perr);
	json_object_put(spec);
	if (rc < 0)
		return error_set(err, CARVE_EINTERNAL, "VM %s: its stored spec "
		    "does not decode: %s", vm->vr_id, perr.message);
	snprintf(cmd.cmd_args.migrate_prepare.mp_source_node,
	    sizeof(cmd.cmd_args.migrate_prepare.mp_source_node), "%s",
	    vm->vr_node);

	memset(m, 0, sizeof(*m));
	ids_uuid_new(m->mr_id);
	memcpy(m->mr_vm_id, vm->vr_id, sizeof(m->mr_vm_id));
	snprintf(m->mr_source, sizeof(m->mr_source), "%s", vm->vr_node);
	snprintf(m->mr_target, sizeof(m->mr_target), "%s", target);
	m->mr_state = CP_MIG_PREPARING;
	m->mr_evacuation = evacuation;
	m->mr_max_downtime_ms = limits->ml_max_downtime_ms;
	m->mr_bandwidth_mibps = limits->ml_bandwidth_mibps;
	m->mr_timeout_s = limits->ml_timeout_s;
	m->mr_created_at_ms = m->mr_updated_at_ms = now_ms;

	rc = -1;
	if (cp_store_begin(cp->cp_store, err) < 0)
		goto done;
	if (mig_store_command(cp, &cmd, target, now_ms, m->mr_prepare_cmd,
	    err) < 0 || cp_store_mig_insert(cp->cp_store, m, now_ms, err) < 0 ||
	    cp_store_commit(cp->cp_store, err) < 0) {
		cp_store_rollback(cp->cp_store);
		cp_agent_wake_drop(cp);
		goto done;
	}
	cp_agent_wake_flush(cp);
	log_kv(LOG_LVL_INFO, CP_COMP, "migration started", "id", m->mr_id,
	    "vm", m->mr_vm_id, "source", m->mr_source, "target", m->mr_target,
	    "reason", evacuation ? "evacuation" : "admin", NULL);
	rc = 0;
done:
	command_clear(&cmd);
	return rc;
}

int
cp_mig_start(struct cp *cp, const char *vm_id, const char *target,
    const struct cp_mig_limits *limits, bool evacuation,
    struct cp_mig_rec *out, struct carve_error *err)
{
	struct carve_error lerr = { 0 };
	struct cp_mig_rec cur, m;
	struct mig_fleet f;
	struct cp_vm_rec vm;
	int64_t need[PROTO_CAP_NCLASSES], now = time_now_ms();
	size_t src;
	int idx, rc = -1;

	if (cp_store_vm_get(cp->cp_store, vm_id, &vm, err) < 0)
		return -1;
	if (vm.vr_desired == PROTO_DESIRED_DELETED) {
		error_set(err, CARVE_ECONFLICT, "VM %s is being deleted", vm_id);
		goto out_vm;
	}
	if (cp_store_mig_active_for_vm(cp->cp_store, vm_id, &cur, &lerr) == 0) {
		error_set(err, CARVE_ECONFLICT, "VM %s is already being "
		    "migrated (migration %s, %s)", vm_id, cur.mr_id,
		    cp_mig_state_name(cur.mr_state));
		cp_mig_rec_clear(&cur);
		goto out_vm;
	}
	if (lerr.code != CARVE_ENOTFOUND) {
		*err = lerr;
		goto out_vm;
	}
	if (strcmp(vm.vr_state, "running") != 0) {
		error_set(err, CARVE_ECONFLICT, "VM %s is %s; only a running VM "
		    "can be live-migrated", vm_id, vm.vr_state[0] != '\0' ?
		    vm.vr_state : "pending");
		goto out_vm;
	}
	if (mig_vm_busy(cp, &vm, err))
		goto out_vm;
	if (mig_fleet_load(cp, &f, err) < 0)
		goto out_vm;
	for (src = 0; src < f.mf_n; src++)
		if (strcmp(f.mf_recs[src].nr_name, vm.vr_node) == 0)
			break;
	if (src == f.mf_n) {
		error_set(err, CARVE_ECONFLICT, "VM %s is on node \"%s\", which "
		    "is not registered", vm_id, vm.vr_node);
		goto out_fleet;
	}
	if (!cp_sched_node_up(f.mf_recs[src].nr_last_heartbeat_ms, now,
	    mig_ttl_ms(cp))) {
		error_set(err, CARVE_ECONFLICT, "the VM's node \"%s\" is down",
		    vm.vr_node);
		goto out_fleet;
	}
	if (f.mf_outgoing[src] >= CP_MIG_MAX_OUTGOING) {
		error_set(err, CARVE_ECONFLICT, "node \"%s\" already sends %d "
		    "migration%s (the limit is %d)", vm.vr_node,
		    f.mf_outgoing[src], f.mf_outgoing[src] == 1 ? "" : "s",
		    CP_MIG_MAX_OUTGOING);
		goto out_fleet;
	}
	need[PROTO_CAP_VCPU] = vm.vr_vcpus;
	need[PROTO_CAP_MEMORY_MIB] = (int64_t)vm.vr_memory_mib;
	need[PROTO_CAP_DISK_GIB] = (int64_t)vm.vr_disk_gib;
	/* carve's domains have no <cpu> element: QEMU's baseline model. */
	idx = cp_sched_pick_target(f.mf_sn, f.mf_n, src, target, need,
	    CP_CPU_DEFAULT, CP_MIG_MAX_INCOMING, now, mig_ttl_ms(cp), err);
	if (idx < 0)
		goto out_fleet;
	if (mig_store_new(cp, &vm, f.mf_recs[idx].nr_name, limits, evacuation,
	    now, &m, err) < 0)
		goto out_fleet;
	if (out != NULL)
		*out = m;
	else
		cp_mig_rec_clear(&m);
	rc = 0;
out_fleet:
	mig_fleet_free(&f);
out_vm:
	cp_vm_rec_clear(&vm);
	return rc;
}

/* ------------------------------------------------------------ cancel */

static int
mig_cancel(struct cp *cp, const char *id, struct cp_mig_rec *m,
    const char **command_id, struct carve_error *err)
{
	struct cp_mig_sm sm;
	int64_t now = time_now_ms();
	int act;

	if (cp_store_mig_get(cp->cp_store, id, m, err) < 0)
		return -1;
	mig_sm_load(m, &sm);
	if ((act = cp_mig_advance(&sm, CP_MIG_EV_CANCEL, NULL, err)) < 0)
		goto fail;
	if (act == CP_MIG_ACT_NONE) {
		/* Asked before: the same answer. */
		*command_id = m->mr_cancel_cmd[0] != '\0' ? m->mr_cancel_cmd :
		    m->mr_finish_cmd;
		return 0;
	}
	mig_sm_store(&sm, m);
	if (act == CP_MIG_ACT_FINISH)
		mig_set_error(m, CARVE_ECONFLICT, "cancelled before the VM "
		    "was sent");
	if (cp_store_begin(cp->cp_store, err) < 0)
		goto fail;
	if (mig_act(cp, m, (enum cp_mig_action)act, NULL, now, err) < 0 ||
	    cp_store_mig_update(cp->cp_store, m, now, err) < 0 ||
	    cp_store_commit(cp->cp_store, err) < 0) {
		cp_store_rollback(cp->cp_store);
		cp_agent_wake_drop(cp);
		goto fail;
	}
	cp_agent_wake_flush(cp);
	log_kv(LOG_LVL_INFO, CP_COMP, "migration cancel requested", "id",
	    m->mr_id, "vm", m->mr_vm_id, "state",
	    cp_mig_state_name(m->mr_state), NULL);
	*command_id = act == CP_MIG_ACT_CANCEL ? m->mr_cancel_cmd :
	    m->mr_finish_cmd;
	return 0;
fail:
	cp_mig_rec_clear(m);
	return -1;
}

/* ------------------------------------------------------------ VM checks */

int
cp_mig_vm_check_idle(struct cp *cp, const char *vm_id, struct carve_error *err)
{
	struct carve_error lerr = { 0 };
	struct cp_mig_rec m;

	if (cp_store_mig_active_for_vm(cp->cp_store, vm_id, &m, &lerr) < 0) {
		if (lerr.code == CARVE_ENOTFOUND)
			return 0;
		*err = lerr;
		return -1;
	}
	error_set(err, CARVE_ECONFLICT, "VM %s is being migrated to \"%s\" "
	    "(migration %s, %s); only a cancel "
	    "(POST /v1/migrations/%s/cancel) is possible until it ends",
	    vm_id, m.mr_target, m.mr_id, cp_mig_state_name(m.mr_state),
	    m.mr_id);
	cp_mig_rec_clear(&m);
	return -1;
}

json_object *
cp_mig_vm_ref(struct cp *cp, const char *vm_id)
{
	struct carve_error err = { 0 };
	struct cp_mig_rec m;
	json_object *o;

	if (cp_store_mig_active_for_vm(cp->cp_store, vm_id, &m, &err) < 0)
		return NULL;
	o = json_object_new_object();
	jsonx_add_string(o, "id", m.mr_id);
	jsonx_add_string(o, "state", cp_mig_state_name(m.mr_state));
	jsonx_add_string(o, "target", m.mr_target);
	cp_mig_rec_clear(&m);
	return o;
}

/* ------------------------------------------------------------ evacuation */

void
cp_mig_node_schedulable(struct cp *cp, const char *node, bool was,
    bool now_schedulable)
{
	struct carve_error err = { 0 };
	struct cp_node_rec rec;
	int rc;

	if (was == now_schedulable)
		return;
	if (!now_schedulable) {
		rc = cp_store_node_evac_start(cp->cp_store, node, CP_EVAC_DRAIN,
		    time_now_ms(), &err);
		if (rc < 0)
			log_kv(LOG_LVL_ERROR, CP_COMP, "cannot start the "
			    "evacuation of a drained node", "node", node,
			    "error", err.message, NULL);
		else
			log_kv(LOG_LVL_INFO, CP_COMP, rc == 1 ? "node drained: "
			    "evacuating it" : "node drained (already being "
			    "evacuated)", "node", node, NULL);
		cp_mig_kick(cp);
		return;
	}
	/* Undrained: a drain's evacuation stops; an operator's goes on. */
	if (cp_store_node_get(cp->cp_store, node, &rec, &err) < 0)
		return;
	if (mig_evac_running(&rec) && rec.nr_evac_reason == CP_EVAC_DRAIN) {
		if (cp_store_node_evac_end(cp->cp_store, node, time_now_ms(),
		    &err) < 0)
			log_kv(LOG_LVL_ERROR, CP_COMP, "cannot stop an "
			    "evacuation", "node", node, "error", err.message,
			    NULL);
		else
			log_kv(LOG_LVL_INFO, CP_COMP, "node undrained: "
			    "evacuation stopped", "node", node, NULL);
	}
	cp_node_rec_clear(&rec);
}

/* What a node's evacuation still has to do. */
struct mig_evac_view {
	int64_t	ev_left;	/* VMs on the node */
	int64_t	ev_skipped;	/* of those, not live-migratable now */
	const struct cp_vm_rec *ev_next;	/* the next to move, or NULL */
};

static int
mig_evac_view(struct cp *cp, const struct cp_node_rec *node,
    struct cp_vm_rec *vms, size_t n, struct mig_evac_view *v,
    struct carve_error *err)
{
	memset(v, 0, sizeof(*v));
	v->ev_left = (int64_t)n;
	for (size_t i = 0; i < n; i++) {
		bool failed = false;

		if (cp_store_mig_evac_failed(cp->cp_store, node->nr_name,
		    vms[i].vr_id, node->nr_evac_started_at_ms, &failed,
		    err) < 0)
			return -1;
		if (failed || vms[i].vr_desired == PROTO_DESIRED_DELETED ||
		    strcmp(vms[i].vr_state, "running") != 0) {
			v->ev_skipped++;
			continue;
		}
		if (v->ev_next == NULL)
			v->ev_next = &vms[i];
	}
	return 0;
}

static void
mig_evac_note(struct cp *cp, const char *node, const char *note)
{
	struct carve_error err = { 0 };

	if (cp_store_node_evac_note(cp->cp_store, node, note, &err) == 1 &&
	    note != NULL)
		log_kv(LOG_LVL_WARN, CP_COMP, "evacuation waits", "node", node,
		    "reason", note, NULL);
}

/* Move node's evacuation on by one step. */
static void
mig_evac_step(struct cp *cp, const struct cp_node_rec *node)
{
	struct cp_mig_limits lim = { -1, -1, -1 };
	struct carve_error err = { 0 };
	struct cp_evac_counts counts;
	struct mig_evac_view v;
	struct cp_vm_rec *vms = NULL;
	size_t n = 0;

	if (cp_store_mig_evac_counts(cp->cp_store, node->nr_name,
	    node->nr_evac_started_at_ms, &counts, &err) < 0 ||
	    cp_store_vm_list_node(cp->cp_store, node->nr_name, &vms, &n,
	    &err) < 0)
		goto fail;
	if (mig_evac_view(cp, node, vms, n, &v, &err) < 0)
		goto fail;
	/* One at a time: the next when this one is over. */
	if (counts.ec_active > 0)
		goto done;
	if (v.ev_next == NULL) {
		/* Nothing left to try. */
		if (cp_store_node_evac_end(cp->cp_store, node->nr_name,
		    time_now_ms(), &err) < 0)
			goto fail;
		log_kv(v.ev_left == 0 ? LOG_LVL_INFO : LOG_LVL_WARN, CP_COMP,
		    v.ev_left == 0 ? "evacuation done" : "evacuation over; "
		    "VMs remain that cannot be moved live", "node",
		    node->nr_name, NULL);
		goto done;
	}
	if (cp_mig_start(cp, v.ev_next->vr_id, NULL, &lim, true, NULL,
	    &err) < 0) {
		/* Busy, no room, a command under way: the next tick retries. */
		mig_evac_note(cp, node->nr_name, err.message);
		goto done;
	}
	mig_evac_note(cp, node->nr_name, NULL);
	goto done;
fail:
	log_kv(LOG_LVL_ERROR, CP_COMP, "evacuation step failed", "node",
	    node->nr_name, "error", err.message, NULL);
done:
	cp_vm_list_free(vms, n);
}

json_object *
cp_mig_evac_encode(struct cp *cp, const struct cp_node_rec *node,
    struct carve_error *err)
{
	struct cp_evac_counts counts;
	struct mig_evac_view v;
	struct cp_vm_rec *vms = NULL;
	struct cp_mig_rec *act = NULL;
	size_t n = 0, nact = 0;
	const char *state;
	json_object *o = NULL;

	if (node->nr_evac_reason == CP_EVAC_NONE)
		return NULL;
	if (cp_store_mig_evac_counts(cp->cp_store, node->nr_name,
	    node->nr_evac_started_at_ms, &counts, err) < 0 ||
	    cp_store_vm_list_node(cp->cp_store, node->nr_name, &vms, &n,
	    err) < 0)
		return NULL;
	if (mig_evac_view(cp, node, vms, n, &v, err) < 0 ||
	    cp_store_mig_list(cp->cp_store, true, 0, &act, &nact, err) < 0)
		goto done;
	if (mig_evac_running(node))
		state = "running";
	else
		state = v.ev_left == 0 ? "done" : "incomplete";
	o = json_object_new_object();
	jsonx_add_string(o, "reason", cp_evac_reason_name(node->nr_evac_reason));
	jsonx_add_string(o, "state", state);
	jsonx_add_int(o, "started_at", node->nr_evac_started_at_ms);
	if (node->nr_evac_finished_at_ms != 0)
		jsonx_add_int(o, "finished_at", node->nr_evac_finished_at_ms);
	else
		json_object_object_add(o, "finished_at", NULL);
	jsonx_add_int(o, "vms_left", v.ev_left);
	jsonx_add_int(o, "vms_not_movable", v.ev_skipped);
	jsonx_add_int(o, "migrated", counts.ec_done);
	jsonx_add_int(o, "failed", counts.ec_failed);
	json_object_object_add(o, "migration", NULL);
	for (size_t i = 0; i < nact; i++)
		if (strcmp(act[i].mr_source, node->nr_name) == 0) {
			jsonx_add_string(o, "migration", act[i].mr_id);
			break;
		}
	if (node->nr_evac_note != NULL && mig_evac_running(node))
		jsonx_add_string(o, "waiting", node->nr_evac_note);
	else
		json_object_object_add(o, "waiting", NULL);
done:
	cp_mig_list_free(act, nact);
	cp_vm_list_free(vms, n);
	return o;
}

/* ------------------------------------------------------------ tick */

/*
 * A result recorded without its step (only a crash of an older carve-cp
 * between the two could leave that): apply it now.
 */
static void
mig_resume(struct cp *cp, struct cp_mig_rec *m)
{
	struct carve_error err = { 0 };
	struct command_result res;
	struct cp_cmd_rec cmd;
	const char *id;
	json_object *o;
	int rc;

	switch (m->mr_state) {
	case CP_MIG_PREPARING:
		id = m->mr_prepare_cmd;
		break;
	case CP_MIG_MIGRATING:
		id = m->mr_migrate_cmd;
		break;
	case CP_MIG_FINISHING:
		id = m->mr_finish_cmd;
		break;
	default:
		return;
	}
	if (id[0] == '\0' || cp_store_cmd_get(cp->cp_store, id, &cmd, &err) < 0)
		return;
	if (cmd.cr_finished_at_ms == 0 || cmd.cr_result == NULL) {
		cp_cmd_rec_clear(&cmd);
		return;
	}
	o = cp_store_json(cmd.cr_result, &err);
	if (o == NULL || command_result_decode(o, &res, &err) < 0) {
		json_object_put(o);
		log_kv(LOG_LVL_ERROR, CP_COMP, "migration: a stored result does "
		    "not decode", "id", m->mr_id, "command", id, "error",
		    err.message, NULL);
		cp_cmd_rec_clear(&cmd);
		return;
	}
	json_object_put(o);
	log_kv(LOG_LVL_INFO, CP_COMP, "migration: applying a stored result",
	    "id", m->mr_id, "command", id, NULL);
	rc = cp_store_begin(cp->cp_store, &err);
	if (rc == 0 && (mig_apply(cp, m, &cmd, &res, time_now_ms(), &err) < 0 ||
	    cp_store_commit(cp->cp_store, &err) < 0)) {
		cp_store_rollback(cp->cp_store);
		cp_agent_wake_drop(cp);
		rc = -1;
	}
	if (rc == 0)
		cp_agent_wake_flush(cp);
	else
		log_kv(LOG_LVL_ERROR, CP_COMP, "migration: cannot apply a "
		    "stored result", "id", m->mr_id, "error", err.message, NULL);
	command_result_clear(&res);
	cp_cmd_rec_clear(&cmd);
}

void
cp_mig_tick(struct cp *cp)
{
	struct carve_error err = { 0 };
	struct cp_mig_rec *act = NULL;
	char (*names)[IDS_NAME_MAX + 1] = NULL;
	size_t nact = 0, n = 0;

	if (cp_store_mig_list(cp->cp_store, true, 0, &act, &nact, &err) == 0) {
		for (size_t i = 0; i < nact; i++)
			mig_resume(cp, &act[i]);
		cp_mig_list_free(act, nact);
	} else {
		log_kv(LOG_LVL_ERROR, CP_COMP, "migration tick", "error",
		    err.message, NULL);
	}
	error_clear(&err);
	if (cp_store_node_list_evacuating(cp->cp_store, &names, &n, &err) < 0) {
		log_kv(LOG_LVL_ERROR, CP_COMP, "evacuation tick", "error",
		    err.message, NULL);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct cp_node_rec node;

		if (cp_store_node_get(cp->cp_store, names[i], &node, &err) < 0)
			continue;
		/* A drain whose node came back without us seeing it flip. */
		if (node.nr_evac_reason == CP_EVAC_DRAIN && node.nr_schedulable)
			(void)cp_store_node_evac_end(cp->cp_store, node.nr_name,
			    time_now_ms(), &err);
		else if (mig_evac_running(&node))
			mig_evac_step(cp, &node);
		cp_node_rec_clear(&node);
	}
	free(names);
}

void
cp_mig_kick(struct cp *cp)
{
	if (cp->cp_mig_timer != NULL)
		event_active(cp->cp_mig_timer, EV_TIMEOUT, 0);
}

/* ------------------------------------------------------------ admin */

static void
mig_to_proto(const struct cp_mig_rec *m, struct proto_migration *out)
{
	struct carve_error err = { 0 };
	json_object *o;

	memset(out, 0, sizeof(*out));
	memcpy(out->pm_id, m->mr_id, sizeof(out->pm_id));
	memcpy(out->pm_vm_id, m->mr_vm_id, sizeof(out->pm_vm_id));
	memcpy(out->pm_source, m->mr_source, sizeof(out->pm_source));
	memcpy(out->pm_target, m->mr_target, sizeof(out->pm_target));
	snprintf(out->pm_state, sizeof(out->pm_state), "%s",
	    cp_mig_state_name(m->mr_state));
	out->pm_evacuation = m->mr_evacuation;
	out->pm_max_downtime_ms = m->mr_max_downtime_ms;
	out->pm_bandwidth_mibps = m->mr_bandwidth_mibps;
	out->pm_timeout_s = m->mr_timeout_s;
	memcpy(out->pm_prepare_cmd, m->mr_prepare_cmd,
	    sizeof(out->pm_prepare_cmd));
	memcpy(out->pm_migrate_cmd, m->mr_migrate_cmd,
	    sizeof(out->pm_migrate_cmd));
	memcpy(out->pm_finish_cmd, m->mr_finish_cmd, sizeof(out->pm_finish_cmd));
	memcpy(out->pm_cancel_cmd, m->mr_cancel_cmd, sizeof(out->pm_cancel_cmd));
	out->pm_cancel_requested = m->mr_cancel_requested;
	if (m->mr_progress != NULL &&
	    (o = cp_store_json(m->mr_progress, &err)) != NULL) {
		if (proto_progress_decode(o, &out->pm_progress, &err) == 0)
			out->pm_has_progress = true;
		json_object_put(o);
	}
	if (m->mr_migrate_result != NULL)
		out->pm_result = cp_store_json(m->mr_migrate_result, &err);
	if (m->mr_error != NULL &&
	    (o = cp_store_json(m->mr_error, &err)) != NULL) {
		const char *code = NULL, *msg = NULL;
		enum carve_errcode c;

		(void)jsonx_get_string(o, "code", false, 64, &code, NULL);
		(void)jsonx_get_string(o, "message", false, CARVE_ERRMSG_MAX - 1,
		    &msg, NULL);
		c = code != NULL ? error_code_parse(code) : CARVE_EINTERNAL;
		error_set(&out->pm_error, c == CARVE_OK ? CARVE_EINTERNAL : c,
		    "%s", msg != NULL ? msg : "the migration failed");
		json_object_put(o);
	}
	out->pm_started_at_ms = m->mr_created_at_ms;
	out->pm_updated_at_ms = m->mr_updated_at_ms;
	out->pm_finished_at_ms = m->mr_finished_at_ms;
}

static void
mig_reply_ref(struct cp_req *r, const char *command_id,
    const char *migration_id)
{
	struct proto_migration_ref ref;

	memcpy(ref.mf_command_id, command_id, sizeof(ref.mf_command_id));
	memcpy(ref.mf_migration_id, migration_id, sizeof(ref.mf_migration_id));
	cp_http_reply(r, 202, proto_migration_ref_encode(&ref));
}

int
cp_mig_admin_migrate(struct cp_req *r, const char *vm_id,
    struct carve_error *err)
{
	struct proto_vm_migrate_req req;
	struct cp_mig_limits lim;
	struct cp_mig_rec m;

	if (proto_vm_migrate_req_decode_buf(r->rq_body, r->rq_body_len, &req,
	    err) < 0)
		return -1;
	lim.ml_max_downtime_ms = req.mq_max_downtime_ms;
	lim.ml_bandwidth_mibps = req.mq_bandwidth_mibps;
	lim.ml_timeout_s = req.mq_timeout_s;
	if (cp_mig_start(r->rq_cp, vm_id, req.mq_target, &lim, false, &m,
	    err) < 0)
		return -1;
	mig_reply_ref(r, m.mr_prepare_cmd, m.mr_id);
	cp_mig_rec_clear(&m);
	return 0;
}

int
cp_mig_admin_list(struct cp_req *r, struct carve_error *err)
{
	struct cp_mig_rec *recs;
	struct proto_migration *ms;
	size_t n;

	if (cp_store_mig_list(r->rq_cp->cp_store, false, CP_MIG_LIST_MAX, &recs,
	    &n, err) < 0)
		return -1;
	ms = xcalloc(n > 0 ? n : 1, sizeof(*ms));
	for (size_t i = 0; i < n; i++)
		mig_to_proto(&recs[i], &ms[i]);
	cp_http_reply(r, 200, proto_migration_list_encode(ms, n));
	proto_migration_list_free(ms, n);
	cp_mig_list_free(recs, n);
	return 0;
}

/* The path's migration id; anything but a UUID names nothing (404). */
static int
mig_path_id(const struct cp_req *r, char out[IDS_UUID_LEN + 1],
    struct carve_error *err)
{
	if (!ids_uuid_valid(r->rq_arg[0]))
		return error_set(err, CARVE_ENOTFOUND, "no migration with id "
		    "\"%s\"", r->rq_arg[0]);
	ids_uuid_normalize(r->rq_arg[0], out);
	return 0;
}

int
cp_mig_admin_get(struct cp_req *r, struct carve_error *err)
{
	char id[IDS_UUID_LEN + 1];
	struct proto_migration pm;
	struct cp_mig_rec m;

	if (mig_path_id(r, id, err) < 0 ||
	    cp_store_mig_get(r->rq_cp->cp_store, id, &m, err) < 0)
		return -1;
	mig_to_proto(&m, &pm);
	cp_http_reply(r, 200, proto_migration_encode(&pm));
	proto_migration_clear(&pm);
	cp_mig_rec_clear(&m);
	return 0;
}

int
cp_mig_admin_cancel(struct cp_req *r, struct carve_error *err)
{
	char id[IDS_UUID_LEN + 1], cmd[IDS_UUID_LEN + 1];
	struct cp_mig_rec m;
	const char *command_id;

	if (mig_path_id(r, id, err) < 0 ||
	    mig_cancel(r->rq_cp, id, &m, &command_id, err) < 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "%s", command_id);
	mig_reply_ref(r, cmd, m.mr_id);
	cp_mig_rec_clear(&m);
	return 0;
}

int
cp_mig_admin_evacuate(struct cp_req *r, struct carve_error *err)
{
	struct cp *cp = r->rq_cp;
	struct cp_node_rec rec;
	json_object *o;
	int rc;

	if (ids_name_check(r->rq_arg[0], "node name", NULL) < 0)
		return error_set(err, CARVE_ENOTFOUND, "node \"%s\" is not "
		    "registered", r->rq_arg[0]);
	if ((rc = cp_store_node_evac_start(cp->cp_store, r->rq_arg[0],
	    CP_EVAC_ADMIN, time_now_ms(), err)) < 0)
		return -1;
	if (rc == 1)
		log_kv(LOG_LVL_INFO, CP_COMP, "evacuation requested", "node",
		    r->rq_arg[0], NULL);
	if (cp_store_node_get(cp->cp_store, r->rq_arg[0], &rec, err) < 0)
		return -1;
	o = cp_mig_evac_encode(cp, &rec, err);
	cp_node_rec_clear(&rec);
	if (o == NULL)
		return error_set(err, CARVE_EINTERNAL, "the evacuation of node "
		    "\"%s\" cannot be read back", r->rq_arg[0]);
	cp_mig_kick(cp);
	cp_http_reply(r, 202, o);
	return 0;
}
