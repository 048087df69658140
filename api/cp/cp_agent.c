/*
 * The agent endpoints of carve-cp: see cp_agent.h.
 *
 * Parking a long poll. evhttp stops reading a connection once it has a
 * whole request, so on its own it would notice a client that hung up only
 * when the answer is written, up to poll_timeout later. While a poll is
 * parked we therefore put our own callbacks on its bufferevent (saving
 * evhttp's with bufferevent_getcb) and read: end of file or an error means
 * the client is gone, and we hand the event back to evhttp's callback,
 * which tears the connection down and calls our close callback, where the
 * poll is dropped. Before answering, evhttp's callbacks are restored. A
 * client that sends more bytes while waiting (HTTP pipelining, which
 * carved does not do) only makes us stop watching: the bytes stay in the
 * buffer for evhttp to read after the answer.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "api/command.h"
#include "api/cp/cp_agent.h"
#include "api/cp/cp_mig.h"
#include "api/cp/cp_store.h"
#include "api/proto.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

/* A poll answer stays well under carved's 4 MiB response cap. */
#define AGENT_POLL_MAX_BYTES	(2 * 1024 * 1024)

struct cp_waiter {
	TAILQ_ENTRY(cp_waiter)	 w_link;
	struct cp		*w_cp;
	struct evhttp_request	*w_req;
	struct evhttp_connection *w_conn;
	struct bufferevent	*w_bev;
	struct event		*w_timer;
	char			 w_node[IDS_NAME_MAX + 1];
	int64_t			 w_cursor;
	int64_t			 w_started_ms;
	/* evhttp's callbacks, put back before the answer. */
	bufferevent_data_cb	 w_readcb;
	bufferevent_data_cb	 w_writecb;
	bufferevent_event_cb	 w_eventcb;
	void			*w_cbarg;
};

TAILQ_HEAD(cp_waitq, cp_waiter);

struct cp_polls {
	struct cp_waitq	p_waiters;
	size_t		p_count;
};

/* ------------------------------------------------------------ certificates */

static int
agent_issue(struct cp_req *r, const char *node, const char *csr,
    const char *what, struct carve_error *err)
{
	struct cp *cp = r->rq_cp;
	struct proto_cert_resp resp = { 0 };
	char exp[32];

	resp.ct_certificate = cp_ca_sign_csr(cp->cp_ca, csr, node,
	    cp->cp_conf.cf_cert_lifetime_s, &resp.ct_expires_at_ms, err);
	if (resp.ct_certificate == NULL)
		return -1;
	resp.ct_ca = xstrdup(cp_ca_pem(cp->cp_ca));
	time_format_ms(resp.ct_expires_at_ms, exp, sizeof(exp));
	log_kv(LOG_LVL_INFO, CP_COMP, what, "node", node, "expires", exp, NULL);
	cp_http_reply(r, 200, proto_cert_resp_encode(&resp));
	proto_cert_resp_clear(&resp);
	return 0;
}

int
cp_agent_enroll(struct cp_req *r, struct carve_error *err)
{
	struct proto_enroll_req req;
	int rc;

	struct cp_node_rec rec;
	struct carve_error lerr = { 0 };

	if (proto_enroll_req_decode_buf(r->rq_body, r->rq_body_len, &req,
	    err) < 0)
		return -1;
	/*
	 * Every host holds the bootstrap token: it must not mint a second
	 * certificate for a node that exists (one host impersonating another).
	 * A node that lost its key is reset by an administrator first
	 * (DELETE /v1/nodes/{name}); a live one renews with its certificate.
	 */
	if (cp_store_node_get(r->rq_cp->cp_store, req.en_node, &rec, &lerr) == 0) {
		cp_node_rec_clear(&rec);
		error_set(err, CARVE_ECONFLICT, "node \"%s\" is already enrolled; "
		    "an administrator must reset it (DELETE /v1/nodes/%s) before "
		    "it can enrol again", req.en_node, req.en_node);
		proto_enroll_req_clear(&req);
		return -1;
	}
	if (lerr.code != CARVE_ENOTFOUND) {
		*err = lerr;
		proto_enroll_req_clear(&req);
		return -1;
	}
	rc = agent_issue(r, req.en_node, req.en_csr, "node enrolled", err);
	proto_enroll_req_clear(&req);
	return rc;
}

int
cp_agent_renew(struct cp_req *r, struct carve_error *err)
{
	struct proto_renew_req req;
	int rc;

	if (proto_renew_req_decode_buf(r->rq_body, r->rq_body_len, &req,
	    err) < 0)
		return -1;
	rc = agent_issue(r, r->rq_node, req.rn_csr, "certificate renewed", err);
	proto_renew_req_clear(&req);
	return rc;
}

/* ------------------------------------------------------------ register */

int
cp_agent_register(struct cp_req *r, struct carve_error *err)
{
	struct cp *cp = r->rq_cp;
	struct proto_register_req req;
	struct proto_register_resp resp = {
		.rr_heartbeat_interval_s = cp->cp_conf.cf_heartbeat_interval_s,
		.rr_poll_timeout_s = cp->cp_conf.cf_poll_timeout_s,
		.rr_node_ttl_s = cp->cp_conf.cf_node_ttl_s,
	};
	int rc;

	struct cp_node_rec old;
	struct carve_error gerr = { 0 };
	bool known;

	if (proto_register_req_decode_buf(r->rq_body, r->rq_body_len, &req,
	    err) < 0)
		return -1;
	/* A node that comes back drained starts its evacuation here. */
	known = cp_store_node_get(cp->cp_store, r->rq_node, &old, &gerr) == 0;
	rc = cp_store_node_register(cp->cp_store, r->rq_node, &req,
	    time_now_ms(), err);
	if (rc == 0 && known)
		cp_mig_node_schedulable(cp, r->rq_node, old.nr_schedulable,
		    req.rg_schedulable);
	if (known)
		cp_node_rec_clear(&old);
	if (rc == 0) {
		log_kv(LOG_LVL_INFO, CP_COMP, "node registered", "node",
		    r->rq_node, "agent_version", req.rg_agent_version,
		    "schedulable", req.rg_schedulable ? "true" : "false", NULL);
		cp_http_reply(r, 200, proto_register_resp_encode(&resp));
	}
	proto_register_req_clear(&req);
	return rc;
}

/* ------------------------------------------------------------ heartbeat */

int
cp_agent_heartbeat(struct cp_req *r, struct carve_error *err)
{
	struct cp *cp = r->rq_cp;
	struct proto_heartbeat_req req;
	struct proto_heartbeat_resp resp = {
		.ha_heartbeat_interval_s = cp->cp_conf.cf_heartbeat_interval_s,
	};
	bool resync = false, was = true;
	int rc;

	if (proto_heartbeat_req_decode_buf(r->rq_body, r->rq_body_len, &req,
	    err) < 0)
		return -1;
	rc = cp_store_node_heartbeat(cp->cp_store, r->rq_node, &req,
	    time_now_ms(), &resync, &was, err);
	if (rc == 0)
		cp_mig_node_schedulable(cp, r->rq_node, was, req.hb_schedulable);
	if (rc == 0) {
		resp.ha_ack = req.hb_seq;
		resp.ha_resync = resync;
		if (resync)
			log_kv(LOG_LVL_INFO, CP_COMP, "heartbeat out of "
			    "sequence; asking for a full one", "node",
			    r->rq_node, NULL);
		cp_http_reply(r, 200, proto_heartbeat_resp_encode(&resp));
	}
	proto_heartbeat_req_clear(&req);
	return rc;
}

/* ------------------------------------------------------------ long poll */

struct cp_polls *
cp_polls_new(void)
{
	struct cp_polls *p = xcalloc(1, sizeof(*p));

	TAILQ_INIT(&p->p_waiters);
	return p;
}

size_t
cp_polls_count(const struct cp_polls *p)
{
	return p->p_count;
}

/*
 * Finish, as failed, a stored command that no agent could run: its type is
 * none this carve-cp knows (a row written by hand) or its text is not a
 * JSON object. No result wire form can name an unknown type, so only the
 * control plane can answer it; and it must be answered, or it would stay
 * at the head of the node's queue for ever.
 */
static void
agent_refuse(struct cp *cp, const struct cp_cmd_rec *rec, const char *why)
{
	json_object *o = json_object_new_object();
	json_object *e = json_object_new_object();
	struct carve_error err = { 0 };
	int64_t now = time_now_ms();
	char *text;

	jsonx_add_string(o, "command_id", rec->cr_id);
	jsonx_add_string(o, "type", command_type_name(rec->cr_type));
	jsonx_add_string(o, "vm_id", rec->cr_vm_id);
	jsonx_add_string(o, "status", command_status_name(CMD_STATUS_FAILED));
	jsonx_add_string(e, "code", error_code_name(CARVE_EINVAL));
	jsonx_add_string(e, "message", why);
	json_object_object_add(o, "error", e);
	jsonx_add_int(o, "accepted_at", now);
	jsonx_add_int(o, "finished_at", now);
	text = jsonx_to_string(o);
	json_object_put(o);
	if (cp_store_cmd_finish(cp->cp_store, rec->cr_id, CMD_STATUS_FAILED,
	    text, now, &err) < 0)
		log_kv(LOG_LVL_ERROR, CP_COMP, "cannot refuse a bad command",
		    "id", rec->cr_id, "error", err.message, NULL);
	else
		log_kv(LOG_LVL_WARN, CP_COMP, "refused a stored command no "
		    "agent can run", "id", rec->cr_id, "node", rec->cr_node,
		    "reason", why, NULL);
	free(text);
}

/*
 * The node's undelivered commands after cursor as a poll answer (marking
 * them delivered); *n says how many.
 */
static json_object *
agent_poll_answer(struct cp *cp, const char *node, int64_t cursor, size_t *n,
    struct carve_error *err)
{
	struct proto_poll_resp resp = { 0 };
	struct cp_cmd_rec *recs = NULL;
	json_object *out;
	size_t count = 0;

	if (cp_store_cmd_poll(cp->cp_store, node, cursor,
	    PROTO_POLL_MAX_COMMANDS, AGENT_POLL_MAX_BYTES, time_now_ms(), &recs,
	    &count, err) < 0)
		return NULL;
	resp.pr_items = xcalloc(count > 0 ? count : 1, sizeof(*resp.pr_items));
	resp.pr_cursor = cursor;
	for (size_t i = 0; i < count; i++) {
		struct carve_error perr = { 0 };
		json_object *c;
		char why[CARVE_ERRMSG_MAX + 64];

		if (recs[i].cr_type == CMD_TYPE_MAX) {
			agent_refuse(cp, &recs[i], "unknown command type");
			continue;
		}
		c = cp_store_json(recs[i].cr_command, &perr);
		if (c == NULL || !json_object_is_type(c, json_type_object)) {
			snprintf(why, sizeof(why), "the stored command is not "
			    "a JSON object: %s", c == NULL ? perr.message :
			    "another JSON type");
			json_object_put(c);
			agent_refuse(cp, &recs[i], why);
			continue;
		}
		resp.pr_items[resp.pr_nitems].pi_seq = recs[i].cr_seq;
		resp.pr_items[resp.pr_nitems].pi_command = c;
		resp.pr_nitems++;
		resp.pr_cursor = recs[i].cr_seq;
	}
	out = proto_poll_resp_encode(&resp);
	*n = resp.pr_nitems;
	proto_poll_resp_clear(&resp);
	cp_cmd_list_free(recs, count);
	return out;
}

/* Take the waiter off the list and give the connection back to evhttp. */
static void
agent_unpark(struct cp_waiter *w)
{
	struct cp_polls *p = w->w_cp->cp_polls;

	TAILQ_REMOVE(&p->p_waiters, w, w_link);
	p->p_count--;
	event_free(w->w_timer);
	w->w_timer = NULL;
	if (w->w_conn != NULL) {
		evhttp_connection_set_closecb(w->w_conn, NULL, NULL);
		bufferevent_disable(w->w_bev, EV_READ);
		bufferevent_setcb(w->w_bev, w->w_readcb, w->w_writecb,
		    w->w_eventcb, w->w_cbarg);
	}
}

/* Answer a parked poll and forget it. */
static void
agent_answer(struct cp_waiter *w, int status, json_object *body)
{
	agent_unpark(w);
	cp_http_send(w->w_req, w->w_node, w->w_started_ms, status, body);
	free(w);
}

static void
agent_poll_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct cp_waiter *w = arg;
	struct proto_poll_resp empty = { .pr_cursor = w->w_cursor };

	(void)fd;
	(void)what;
	agent_answer(w, 200, proto_poll_resp_encode(&empty));
}

/*
 * The client went away (end of file, reset, read timeout) while its poll
 * was parked. evhttp has already detached the request from the connection
 * it is freeing, so the request is ours to free.
 */
static void
agent_poll_closed(struct evhttp_connection *conn, void *arg)
{
	struct cp_waiter *w = arg;

	(void)conn;
	log_kv(LOG_LVL_DEBUG, CP_COMP, "long poll dropped: client went away",
	    "node", w->w_node, NULL);
	w->w_conn = NULL;
	agent_unpark(w);
	if (evhttp_request_get_connection(w->w_req) == NULL)
		evhttp_request_free(w->w_req);
	free(w);
}

static void
agent_park_read(struct bufferevent *bev, void *arg)
{
	/* Pipelined bytes: leave them for evhttp, stop watching. */
	(void)arg;
	bufferevent_disable(bev, EV_READ);
}

static void
agent_park_event(struct bufferevent *bev, short what, void *arg)
{
	struct cp_waiter *w = arg;

	if ((what & BEV_EVENT_TIMEOUT) != 0 &&
	    (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) == 0) {
		/* The connection's read timeout is not the poll's wait. */
		bufferevent_enable(bev, EV_READ);
		return;
	}
	/* Gone: evhttp's own handling frees the connection (agent_poll_closed). */
	bufferevent_setcb(bev, w->w_readcb, w->w_writecb, w->w_eventcb,
	    w->w_cbarg);
	if (w->w_eventcb != NULL)
		w->w_eventcb(bev, what, w->w_cbarg);
}

static void
agent_park(struct cp_req *r, int64_t cursor, int wait_s)
{
	struct cp *cp = r->rq_cp;
	struct cp_waiter *w = xcalloc(1, sizeof(*w));
	struct timeval tv = { .tv_sec = wait_s, .tv_usec = 0 };

	w->w_cp = cp;
	w->w_req = r->rq_req;
	w->w_conn = evhttp_request_get_connection(r->rq_req);
	w->w_bev = evhttp_connection_get_bufferevent(w->w_conn);
	w->w_cursor = cursor;
	w->w_started_ms = r->rq_started_ms;
	memcpy(w->w_node, r->rq_node, sizeof(w->w_node));
	w->w_timer = evtimer_new(cp->cp_base, agent_poll_timeout, w);
	if (w->w_timer == NULL) {
		fprintf(stderr, "level=fatal comp=cp msg=\"out of memory\"\n");
		abort();
	}
	evtimer_add(w->w_timer, &tv);
	bufferevent_getcb(w->w_bev, &w->w_readcb, &w->w_writecb, &w->w_eventcb,
	    &w->w_cbarg);
	bufferevent_setcb(w->w_bev, agent_park_read, NULL, agent_park_event, w);
	bufferevent_enable(w->w_bev, EV_READ);
	evhttp_connection_set_closecb(w->w_conn, agent_poll_closed, w);
	TAILQ_INSERT_TAIL(&cp->cp_polls->p_waiters, w, w_link);
	cp->cp_polls->p_count++;
}

int
cp_agent_poll(struct cp_req *r, struct carve_error *err)
{
	struct cp *cp = r->rq_cp;
	struct proto_poll_query q;
	json_object *answer;
	size_t n = 0;
	int wait_s;

	if (proto_poll_query_parse(r->rq_query, &q, err) < 0)
		return -1;
	wait_s = q.pq_wait_s < cp->cp_conf.cf_poll_timeout_s ? q.pq_wait_s :
	    cp->cp_conf.cf_poll_timeout_s;
	if ((answer = agent_poll_answer(cp, r->rq_node, q.pq_cursor, &n,
	    err)) == NULL)
		return -1;
	if (n > 0 || wait_s <= 0) {
		cp_http_reply(r, 200, answer);
		return 0;
	}
	json_object_put(answer);
	agent_park(r, q.pq_cursor, wait_s);
	return 0;
}

void
cp_agent_wake(struct cp *cp, const char *node)
{
	struct cp_waiter *w, *next;

	for (w = TAILQ_FIRST(&cp->cp_polls->p_waiters); w != NULL; w = next) {
		struct carve_error err = { 0 };
		json_object *answer;
		size_t n = 0;

		next = TAILQ_NEXT(w, w_link);
		if (strcmp(w->w_node, node) != 0)
			continue;
		answer = agent_poll_answer(cp, node, w->w_cursor, &n, &err);
		if (answer == NULL) {
			log_kv(LOG_LVL_ERROR, CP_COMP, "long poll failed",
			    "node", node, "error", err.message, NULL);
			agent_answer(w, proto_http_status(err.code),
			    proto_error_encode(&err));
		} else if (n > 0) {
			agent_answer(w, 200, answer);
		} else {
			json_object_put(answer);
		}
	}
}

void
cp_agent_wake_later(struct cp *cp, const char *node)
{
	for (size_t i = 0; i < cp->cp_nwake && i < CP_WAKE_MAX; i++)
		if (strcmp(cp->cp_wake[i], node) == 0)
			return;
	if (cp->cp_nwake >= CP_WAKE_MAX) {
		cp->cp_nwake = CP_WAKE_MAX + 1;		/* everyone */
		return;
	}
	snprintf(cp->cp_wake[cp->cp_nwake++], sizeof(cp->cp_wake[0]), "%s",
	    node);
}

void
cp_agent_wake_flush(struct cp *cp)
{
	char node[IDS_NAME_MAX + 1];
	struct cp_waiter *w;
	size_t n = cp->cp_nwake;
	bool again;

	cp->cp_nwake = 0;
	if (n <= CP_WAKE_MAX) {
		for (size_t i = 0; i < n; i++)
			cp_agent_wake(cp, cp->cp_wake[i]);
		return;
	}
	/*
	 * Every parked poll: each wake may answer (and free) waiters, so
	 * start over from the head after each, until a pass finds a waiter
	 * with nothing to deliver only.
	 */
	do {
		again = false;
		TAILQ_FOREACH(w, &cp->cp_polls->p_waiters, w_link) {
			size_t before = cp->cp_polls->p_count;

			snprintf(node, sizeof(node), "%s", w->w_node);
			cp_agent_wake(cp, node);
			if (cp->cp_polls->p_count != before) {
				again = true;
				break;
			}
		}
	} while (again);
}

void
cp_agent_wake_drop(struct cp *cp)
{
	cp->cp_nwake = 0;
}

void
cp_polls_free(struct cp_polls *p)
{
	struct cp_waiter *w;

	if (p == NULL)
		return;
	/* The requests stay with their connections, which evhttp_free closes. */
	while ((w = TAILQ_FIRST(&p->p_waiters)) != NULL) {
		agent_unpark(w);
		free(w);
	}
	free(p);
}

/* ------------------------------------------------------------ results */

/* What a result changes about its VM. */
typedef int (*agent_effect_fn)(struct cp *cp, const struct cp_cmd_rec *cmd,
    const struct command_result *res, int64_t now_ms, struct carve_error *err);

/* The VM state the result reports, when it has one. */
static int
agent_effect_state(struct cp *cp, const struct cp_cmd_rec *cmd,
    const struct command_result *res, int64_t now_ms, struct carve_error *err)
{
	json_object *v;
	enum vm_state st;

	if (res->res_data == NULL ||
	    !json_object_object_get_ex(res->res_data, "state", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    vm_state_parse(json_object_get_string(v), &st) < 0)
		return 0;
	return cp_store_vm_set_state(cp->cp_store, cmd->cr_vm_id,
	    vm_state_name(st), now_ms, err);
}

/* The VM no longer exists (destroyed, or its create failed). */
static int
agent_effect_gone(struct cp *cp, const struct cp_cmd_rec *cmd,
    const struct command_result *res, int64_t now_ms, struct carve_error *err)
{
	(void)res;
	return cp_store_vm_mark_deleted(cp->cp_store, cmd->cr_vm_id, now_ms,
	    err);
}

/* A resize: the size it reports (what the VM has from now on), and state. */
static int
agent_effect_resized(struct cp *cp, const struct cp_cmd_rec *cmd,
    const struct command_result *res, int64_t now_ms, struct carve_error *err)
{
	struct carve_error verr = { 0 };
	int64_t vcpus, mem;

	if (agent_effect_state(cp, cmd, res, now_ms, err) < 0)
		return -1;
	/* A result without a readable size changes nothing more. */
	if (res->res_data == NULL ||
	    jsonx_get_int(res->res_data, "vcpus", true, 1, VM_VCPUS_MAX, &vcpus,
	    &verr) < 0 ||
	    jsonx_get_int(res->res_data, "memory_mib", true, VM_MEMORY_MIB_MIN,
	    (int64_t)VM_MEMORY_MIB_MAX, &mem, &verr) < 0)
		return 0;
	return cp_store_vm_set_size(cp->cp_store, cmd->cr_vm_id,
	    (unsigned)vcpus, (uint64_t)mem, now_ms, err);
}

static const struct {
	agent_effect_fn	succeeded;
	agent_effect_fn	failed;
} agent_effects[CMD_TYPE_MAX] = {
	[CMD_VM_CREATE] = { agent_effect_state, agent_effect_gone },
	[CMD_VM_START] = { agent_effect_state, NULL },
	[CMD_VM_STOP] = { agent_effect_state, NULL },
	[CMD_VM_REBOOT] = { agent_effect_state, NULL },
	[CMD_VM_DESTROY] = { agent_effect_gone, NULL },
	[CMD_VM_RESIZE] = { agent_effect_resized, NULL },
	[CMD_VM_MIGRATE_PREPARE] = { cp_mig_on_result, cp_mig_on_result },
	[CMD_VM_MIGRATE] = { cp_mig_on_result, cp_mig_on_result },
	[CMD_VM_MIGRATE_CANCEL] = { cp_mig_on_result, cp_mig_on_result },
	[CMD_VM_MIGRATE_FINISH] = { cp_mig_on_result, cp_mig_on_result },
	/* A revert may start or stop the VM (its result says the state). */
	[CMD_VM_SNAPSHOT_REVERT] = { agent_effect_state, NULL },
};

/* Store the result and its effect on the VM in one transaction. */
static int
agent_record_result(struct cp *cp, const struct cp_cmd_rec *cmd,
    const struct command_result *res, struct carve_error *err)
{
	json_object *o = command_result_encode(res);
	char *text = jsonx_to_string(o);
	int64_t now = time_now_ms();
	struct carve_error eff_err = { 0 };
	agent_effect_fn fn;
	int rc;

	json_object_put(o);
	if (cp_store_begin(cp->cp_store, err) < 0) {
		free(text);
		return -1;
	}
	rc = cp_store_cmd_finish(cp->cp_store, cmd->cr_id, res->res_status,
	    text, now, err);
	free(text);
	if (rc == 1 && cmd->cr_type < CMD_TYPE_MAX) {
		fn = res->res_status == CMD_STATUS_SUCCEEDED ?
		    agent_effects[cmd->cr_type].succeeded :
		    agent_effects[cmd->cr_type].failed;
		/* A VM deleted in the meantime has nothing left to change. */
		if (fn != NULL && fn(cp, cmd, res, now, &eff_err) < 0 &&
		    eff_err.code != CARVE_ENOTFOUND) {
			error_set(err, eff_err.code, "%s", eff_err.message);
			rc = -1;
		}
	}
	if (rc < 0) {
		cp_store_rollback(cp->cp_store);
		cp_agent_wake_drop(cp);
		return -1;
	}
	if (cp_store_commit(cp->cp_store, err) < 0) {
		cp_store_rollback(cp->cp_store);
		cp_agent_wake_drop(cp);
		return -1;
	}
	cp_agent_wake_flush(cp);
	if (rc == 1)
		log_kv(LOG_LVL_INFO, CP_COMP, "command finished", "id",
		    cmd->cr_id, "type", command_type_name(cmd->cr_type),
		    "vm", cmd->cr_vm_id, "node", cmd->cr_node, "status",
		    command_status_name(res->res_status), "error",
		    res->res_status == CMD_STATUS_FAILED ?
		    res->res_error.message : "", NULL);
	return 0;
}

/* The command named in the path, which must be the caller's own. */
static int
agent_own_command(struct cp_req *r, char id[IDS_UUID_LEN + 1],
    struct cp_cmd_rec *cmd, struct carve_error *err)
{
	if (cp_req_uuid(r, 0, id, err) < 0 ||
	    cp_store_cmd_get(r->rq_cp->cp_store, id, cmd, err) < 0)
		return -1;
	if (strcmp(cmd->cr_node, r->rq_node) != 0) {
		cp_cmd_rec_clear(cmd);
		return error_set(err, CARVE_EPERM, "command %s belongs to "
		    "another node", id);
	}
	return 0;
}

int
cp_agent_result(struct cp_req *r, struct carve_error *err)
{
	char id[IDS_UUID_LEN + 1];
	struct command_result res;
	struct cp_cmd_rec cmd;
	json_object *o;
	int rc = -1;

	if ((o = proto_parse(r->rq_body, r->rq_body_len, PROTO_REQUEST_MAX,
	    err)) == NULL)
		return -1;
	if (command_result_decode(o, &res, err) < 0) {
		json_object_put(o);
		return -1;
	}
	json_object_put(o);
	if (agent_own_command(r, id, &cmd, err) < 0) {
		command_result_clear(&res);
		return -1;
	}
	if (strcmp(res.res_command_id, id) != 0)
		error_set(err, CARVE_EINVAL, "command_id %s does not match the "
		    "path's %s", res.res_command_id, id);
	else if (cmd.cr_type < CMD_TYPE_MAX && (res.res_type != cmd.cr_type ||
	    strcmp(res.res_vm_id, cmd.cr_vm_id) != 0))
		error_set(err, CARVE_EINVAL, "the result's type or vm_id is "
		    "not the command's (%s on %s)",
		    command_type_name(cmd.cr_type), cmd.cr_vm_id);
	else if (cmd.cr_type == CMD_TYPE_MAX &&
	    res.res_status != CMD_STATUS_FAILED)
		error_set(err, CARVE_EINVAL, "command %s has a type no agent "
		    "can run: its result can only be a failure", id);
	else if (res.res_status != CMD_STATUS_SUCCEEDED &&
	    res.res_status != CMD_STATUS_FAILED)
		error_set(err, CARVE_EINVAL, "a result's status is succeeded "
		    "or failed");
	else if ((rc = agent_record_result(r->rq_cp, &cmd, &res, err)) == 0)
		cp_http_reply(r, 200, proto_empty_encode());
	cp_cmd_rec_clear(&cmd);
	command_result_clear(&res);
	return rc;
}

int
cp_agent_progress(struct cp_req *r, struct carve_error *err)
{
	char id[IDS_UUID_LEN + 1];
	struct proto_progress pg;
	struct cp_cmd_rec cmd;
	json_object *o;
	char *text;
	int rc;

	if (proto_progress_decode_buf(r->rq_body, r->rq_body_len, &pg,
	    err) < 0)
		return -1;
	if (agent_own_command(r, id, &cmd, err) < 0) {
		proto_progress_clear(&pg);
		return -1;
	}
	o = proto_progress_encode(&pg);
	text = jsonx_to_string(o);
	json_object_put(o);
	rc = cp_store_cmd_set_progress(r->rq_cp->cp_store, id, text, err);
	if (rc == 0)
		cp_http_reply(r, 200, proto_empty_encode());
	free(text);
	cp_cmd_rec_clear(&cmd);
	proto_progress_clear(&pg);
	return rc;
}
