/*
 * The control-plane client: see poller.h for the states.
 *
 * Everything runs on the loop. Requests go through http.c; each kind has at
 * most one in flight (enrol-or-register, poll, heartbeat, renew) plus up to
 * POLLER_MAX_POSTS result posts. Failures come in two kinds:
 *  - the connection's (no answer, TLS refused, 401, 429, 502-504, or the
 *    node unknown to the control plane): the connection goes down, the
 *    other requests are cancelled and, after a full-jitter backoff, carved
 *    registers again and starts over. The backoff is reset only by an
 *    answered long poll, so a control plane that takes registrations and
 *    heartbeats but fails every poll still sees carved slow down;
 *  - one request's (an error answer about that request, a body that does
 *    not decode): that request alone is retried after its own backoff.
 * Commands already accepted keep running meanwhile; their results wait in
 * the outbox, their VM changes in the agent's dirty set.
 *
 * Cancellation: every cancel goes through poller_disconnect, which clears
 * the request pointer (and counters) before cancelling, so callbacks
 * called with -ECANCELED have nothing left to do.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/engine.h"
#include "agent/http.h"
#include "agent/pki.h"
#include "agent/poller.h"
#include "api/proto.h"
#include "common/backoff.h"
#include "common/ids.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/strmap.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

#define POLLER_COMP              "poller"
#define POLLER_BACKOFF_BASE_MS   500
#define POLLER_BACKOFF_CAP_MS    60000
#define POLLER_CMD_BACKOFF_MS    1000     /* transient command rejections */
#define POLLER_CMD_BACKOFF_CAP   30000
#define POLLER_RENEW_BACKOFF_MS  10000    /* a refused renewal */
#define POLLER_RENEW_BACKOFF_CAP (15 * 60 * 1000)
/* A long poll may take wait_s; give the answer this much longer. */
#define POLLER_POLL_MARGIN_MS    15000
#define POLLER_TIMEOUT_MS        30000    /* every other request */
#define POLLER_MAX_POSTS         8
/* A control plane that answers an empty poll at once (instead of holding
 * it) must not make carved spin: wait this long before the next one. */
#define POLLER_FAST_EMPTY_MS     500
#define POLLER_EMPTY_DELAY_MS    1000
#define POLLER_DEFAULT_HB_S      10
#define POLLER_DEFAULT_POLL_S    30
#define POLLER_TOKEN_MAX         4096
/* The all-zero UUID stands for the VM of a command too broken to name one. */
#define POLLER_NIL_UUID          "00000000-0000-0000-0000-000000000000"

enum poller_state {
	PS_ENROLLING = 0,
	PS_REGISTERING,
	PS_CONNECTED,
	PS_BACKOFF,
	PS_STOPPED,
	PS_MAX
};

static const char *const poller_state_names[PS_MAX] = {
	[PS_ENROLLING] = "enrolling",
	[PS_REGISTERING] = "registering",
	[PS_CONNECTED] = "connected",
	[PS_BACKOFF] = "backoff",
	[PS_STOPPED] = "stopped",
};

/* A result waiting for the control plane's acknowledgement. */
struct obx {
	struct poller *ob_p;
	char ob_id[IDS_UUID_LEN + 1];
	char *ob_body;
	bool ob_durable;              /* in the journal: mark it reported */
	int64_t ob_not_before;        /* time_mono_ms; after a 5xx answer */
	struct http_request *ob_req;  /* the post in flight, or NULL */
	TAILQ_ENTRY(obx) ob_link;
};

struct poller {
	struct agent *p_a;
	const struct carved_conf *p_conf;
	struct http *p_http;
	char *p_base;                 /* url without trailing '/' */
	char *p_key_file;
	char *p_cert_file;
	enum poller_state p_state;

	/* Identity. */
	bool p_enrolled;              /* a usable key + certificate on disk */
	bool p_cert_rejected;         /* the control plane said 401: enrol */
	struct pki_cert_info p_cert;
	int64_t p_renew_at_ms;
	bool p_renew_due;
	int64_t p_cert_changed;       /* time_mono_ms of the last install */
	char *p_enroll_key;           /* secret: key of the enrolment in flight */
	char *p_renew_key;            /* secret: key of the renewal in flight */

	/* Connection. */
	bool p_registered;
	bool p_reregister;            /* inventory changed during a register */
	struct http_request *p_rq_main;   /* enrol or register */
	struct http_request *p_rq_poll;
	struct http_request *p_rq_hb;
	struct http_request *p_rq_renew;
	uv_timer_t p_t_retry, p_t_poll, p_t_hb, p_t_renew, p_t_post;
	struct backoff p_bo;          /* the connection */
	struct backoff p_poll_bo;     /* polls answered with an error */
	struct backoff p_hb_bo;       /* heartbeats answered with an error */
	struct backoff p_post_bo;     /* result posts answered with 5xx */
	struct backoff p_cmd_bo;      /* transient command rejections */
	struct backoff p_renew_bo;
	uint64_t p_backoff_ms;        /* the delay being waited, 0 when none */
	unsigned p_hb_interval_s;
	unsigned p_poll_timeout_s;

	/* Long poll. */
	int64_t p_cursor;
	bool p_rewind;                /* poll from 0: a command must come back */
	int64_t p_poll_started;       /* monotonic ms */

	/* Heartbeat (protocol.md: seq = last acked + 1). */
	int64_t p_hb_acked;
	bool p_hb_full_next;
	int64_t p_hb_sent_seq;
	bool p_hb_sent_full;
	uint64_t p_hb_sent_mark;      /* agent change number it covers */

	/* Outbox. */
	struct strmap *p_outbox_ids;  /* id -> obx */
	TAILQ_HEAD(, obx) p_outbox;
	unsigned p_outbox_n;
	unsigned p_posting;

	/* Progress of running commands: id -> struct prog. */
	struct strmap *p_progress;

	/* Status. */
	int64_t p_last_success_ms;
	char p_last_error[CARVE_ERRMSG_MAX];
	uint64_t p_requests;
	uint64_t p_failures;

	bool p_closed;
	unsigned p_pending_closes;
	void (*p_close_cb)(void *);
	void *p_close_arg;
};

static void poller_advance(struct poller *p);
static void poller_fail(struct poller *p, const struct carve_error *err);
static void poller_poll(struct poller *p);
static void poller_heartbeat(struct poller *p);
static void poller_outbox_flush(struct poller *p);
static void poller_renew(struct poller *p);
static void poller_register(struct poller *p);

/* ---- helpers ---- */

static void
poller_set_state(struct poller *p, enum poller_state st)
{
	if (p->p_state == st)
		return;
	log_kv(LOG_LVL_DEBUG, POLLER_COMP, "state",
	    "from", poller_state_names[p->p_state],
	    "to", poller_state_names[st], (char *)NULL);
	p->p_state = st;
}

/* "prefix<err's message>suffix" (copied first: it is also the target). */
static int
poller_wrap(struct carve_error *err, enum carve_errcode code,
    const char *prefix, const char *suffix)
{
	char msg[CARVE_ERRMSG_MAX];

	snprintf(msg, sizeof(msg), "%s", err->message);
	return error_reset(err, code, "%s%s%s", prefix, msg, suffix);
}

static double
poller_uniform(void)
{
	uint32_t r;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint32_t)time_mono_ms() * 2654435761u;
	return (double)r / 4294967295.0;
}

static char *
poller_url(struct poller *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static char *
poller_url(struct poller *p, const char *fmt, ...)
{
	va_list ap;
	char *path, *url;

	va_start(ap, fmt);
	path = xvasprintf(fmt, ap);
	va_end(ap);
	url = xasprintf("%s%s", p->p_base, path);
	free(path);
	return url;
}

/*
 * Start a request with body (JSON text, copied; NULL for none). mtls:
 * present the node's certificate. Returns -1 with err set when it could not
 * even start (closing).
 */
static int
poller_send_text(struct poller *p, const char *method, const char *url,
    const char *body, bool mtls, const char *bearer, unsigned timeout_ms,
    http_done_cb cb, void *arg, struct http_request **out,
    struct carve_error *err)
{
	struct http_req_opts o;
	int rc;

	memset(&o, 0, sizeof(o));
	o.ho_method = method;
	o.ho_url = url;
	o.ho_body = body;
	o.ho_bearer = bearer;
	o.ho_ca_file = p->p_conf->cp_ca_file;
	if (mtls) {
		o.ho_cert_file = p->p_cert_file;
		o.ho_key_file = p->p_key_file;
		o.ho_fresh_since_ms = p->p_cert_changed;
	}
	o.ho_timeout_ms = timeout_ms;
	o.ho_body_max = PROTO_RESPONSE_MAX;
	rc = http_request(p->p_http, &o, cb, arg, out, err);
	if (rc == 0) {
		p->p_requests++;
		log_kv(LOG_LVL_DEBUG, POLLER_COMP, "request", "method", method,
		    "url", url, (char *)NULL);
	}
	return rc;
}

/* The same with a JSON object (borrowed) for a body. */
static int
poller_send(struct poller *p, const char *method, const char *url,
    json_object *body, bool mtls, const char *bearer, unsigned timeout_ms,
    http_done_cb cb, void *arg, struct http_request **out,
    struct carve_error *err)
{
	char *js = body != NULL ? jsonx_to_string(body) : NULL;
	int rc;

	rc = poller_send_text(p, method, url, js, mtls, bearer, timeout_ms, cb,
	    arg, out, err);
	free(js);
	return rc;
}

/*
 * 0 for a 2xx answer; else -1 with err saying what went wrong: the
 * transport's error, or the control plane's error body (code and message),
 * or the code its HTTP status stands for.
 */
static int
poller_response(const char *what, int status, long code, const char *body,
    size_t len, const struct carve_error *terr, struct carve_error *err)
{
	struct carve_error be = { 0 }, perr = { 0 };

	if (status < 0) {
		error_set(err, terr->code, "%s", terr->message);
		return -1;
	}
	if (code >= 200 && code <= 299)
		return 0;
	if (len > 0 && proto_error_decode_buf(body, len, &be, &perr) == 0)
		error_set(err, be.code, "%s: HTTP %ld %s: %s", what, code,
		    error_code_name(be.code), be.message);
	else
		error_set(err, proto_errcode_from_http((int)code),
		    "%s: HTTP %ld", what, code);
	return -1;
}

/* An answer: the control plane is there. */
static void
poller_success(struct poller *p)
{
	p->p_last_success_ms = time_now_ms();
}

/*
 * Whether a failed request says the connection as a whole is unusable
 * (rather than this one request). node_scoped: a 404 means the control
 * plane does not know this node (any more): register again.
 */
static bool
poller_conn_failure(int status, long code, bool node_scoped)
{
	return status < 0 || code == 401 || code == 429 || code >= 502 ||
	    (node_scoped && code == 404);
}

/* One request failed on its own: say so, the caller retries it later. */
static void
poller_request_failed(struct poller *p, const struct carve_error *err,
    uint64_t retry_ms)
{
	char ms[24];

	p->p_failures++;
	snprintf(p->p_last_error, sizeof(p->p_last_error), "%s", err->message);
	snprintf(ms, sizeof(ms), "%" PRIu64, retry_ms);
	log_kv(LOG_LVL_WARN, POLLER_COMP, "control plane request failed; "
	    "retrying it", "error", err->message, "retry_in_ms", ms,
	    (char *)NULL);
}

/* ---- identity ---- */

/* Look at the key and certificate on disk. */
static void
poller_load_cert(struct poller *p)
{
	struct carve_error err = { 0 };
	char when[40];

	p->p_enrolled = false;
	if (pki_check_pair(p->p_key_file, p->p_cert_file, p->p_conf->node_name,
	    time_now_ms(), &p->p_cert, &err) < 0) {
		memset(&p->p_cert, 0, sizeof(p->p_cert));
		if (err.code == CARVE_ENOTFOUND)
			log_info(POLLER_COMP, "not enrolled yet (%s)", err.message);
		else
			log_warn(POLLER_COMP, "cannot use the node certificate, "
			    "enrolling again: %s", err.message);
		return;
	}
	p->p_enrolled = true;
	p->p_renew_at_ms = pki_renew_at(p->p_cert.ci_not_before_ms,
	    p->p_cert.ci_not_after_ms, poller_uniform());
	p->p_renew_due = time_now_ms() >= p->p_renew_at_ms;
	time_format_ms(p->p_cert.ci_not_after_ms, when, sizeof(when));
	log_kv(LOG_LVL_INFO, POLLER_COMP, "node certificate loaded",
	    "cn", p->p_cert.ci_cn, "expires", when, (char *)NULL);
	uv_timer_stop(&p->p_t_renew);
}

static void
poller_on_renew_timer(uv_timer_t *t)
{
	struct poller *p = t->data;

	p->p_renew_due = true;
	poller_renew(p);
}

/* Arm the renewal for p_renew_at_ms (or later, after a refusal). */
static void
poller_arm_renew(struct poller *p, uint64_t delay_ms)
{
	int64_t now = time_now_ms();

	if (delay_ms == 0 && p->p_renew_at_ms > now)
		delay_ms = (uint64_t)(p->p_renew_at_ms - now);
	if (!p->p_renew_due || delay_ms > 0)
		uv_timer_start(&p->p_t_renew, poller_on_renew_timer,
		    delay_ms, 0);
}

/* The bootstrap token: a secret, never logged; caller xfree_secret()s. */
static int
poller_read_token(struct poller *p, char **out, struct carve_error *err)
{
	const char *path = p->p_conf->cp_bootstrap_token_file;
	char buf[POLLER_TOKEN_MAX + 2];
	struct stat st;
	size_t n = 0;
	ssize_t r;
	int fd, rc;

	*out = NULL;
	if (path == NULL)
		return error_set(err, CARVE_EUNAUTH, "not enrolled, and "
		    "[control_plane] bootstrap_token_file is not set");
	/* The same rule as for the key: a secret only we can read. */
	rc = pki_check_key_file(path, err);
	if (rc == 1)
		return error_set(err, CARVE_EUNAUTH, "not enrolled, and the "
		    "bootstrap token file %s does not exist", path);
	if (rc < 0)
		return poller_wrap(err, err->code, "bootstrap token: ", "");
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1 ||
	    fstat(fd, &st) == -1) {
		error_set(err, CARVE_EPERM, "cannot read the bootstrap token "
		    "file %s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	while (n < sizeof(buf) - 1 &&
	    (r = read(fd, buf + n, sizeof(buf) - 1 - n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
	    buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	rc = 0;
	if (n == 0 || n > POLLER_TOKEN_MAX)
		rc = error_set(err, CARVE_EINVAL, "the bootstrap token file %s "
		    "must hold one token of 1 to %d bytes", path,
		    POLLER_TOKEN_MAX);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (buf[i] <= ' ' || buf[i] > '~')
			rc = error_set(err, CARVE_EINVAL, "the bootstrap token "
			    "in %s holds characters other than printable "
			    "ASCII", path);
	if (rc == 0)
		*out = xstrdup(buf);
#ifdef HAVE_EXPLICIT_BZERO
	explicit_bzero(buf, sizeof(buf));
#else
	for (volatile char *vp = buf; vp < buf + sizeof(buf); vp++)
		*vp = 0;
#endif
	return rc;
}

/* An enrolment or renewal answered: install the certificate. */
static int
poller_install_cert(struct poller *p, const char *what, const char *key_pem,
    const char *body, size_t len, struct carve_error *err)
{
	struct proto_cert_resp cr;
	char when[40];

	if (proto_cert_resp_decode_buf(body, len, &cr, err) < 0)
		return poller_wrap(err, CARVE_EINVAL, "bad answer to the "
		    "certificate request: ", "");
	if (pki_install(p->p_key_file, key_pem, p->p_cert_file,
	    cr.ct_certificate, cr.ct_ca, p->p_conf->node_name, err) < 0) {
		proto_cert_resp_clear(&cr);
		return poller_wrap(err, err->code, "installing the certificate: ",
		    "");
	}
	proto_cert_resp_clear(&cr);
	p->p_cert_changed = time_mono_ms();
	poller_load_cert(p);
	if (!p->p_enrolled)
		return error_set(err, CARVE_EINTERNAL, "%s: the installed "
		    "certificate cannot be used (see above)", what);
	time_format_ms(p->p_cert.ci_not_after_ms, when, sizeof(when));
	log_kv(LOG_LVL_INFO, POLLER_COMP, what, "cert", p->p_cert_file,
	    "expires", when, (char *)NULL);
	return 0;
}

static void
poller_enroll_done(int status, long code, const char *body, size_t len,
    const struct carve_error *terr, void *arg)
{
	struct poller *p = arg;
	struct carve_error err = { 0 };
	char *key;

	if (status == -ECANCELED)
		return;
	p->p_rq_main = NULL;
	key = p->p_enroll_key;
	p->p_enroll_key = NULL;
	if (poller_response("enrol", status, code, body, len, terr, &err) < 0 ||
	    poller_install_cert(p, "enrolled", key, body, len, &err) < 0) {
		xfree_secret(key);
		if (err.code == CARVE_EUNAUTH)
			poller_wrap(&err, CARVE_EUNAUTH, "", " (the control "
			    "plane refused the bootstrap token)");
		/* Perhaps the certificate on disk still works after all. */
		if (p->p_cert_rejected) {
			p->p_cert_rejected = false;
			poller_load_cert(p);
		}
		poller_fail(p, &err);
		return;
	}
	xfree_secret(key);
	/* Not poller_success: the backoff goes on until carved is connected,
	 * or a control plane refusing the new certificate makes a loop. */
	p->p_last_success_ms = time_now_ms();
	p->p_cert_rejected = false;
	poller_advance(p);
}

static void
poller_enroll(struct poller *p)
{
	struct carve_error err = { 0 };
	struct proto_enroll_req req;
	char *token = NULL, *key = NULL, *csr = NULL, *url;
	json_object *o;
	int rc;

	poller_set_state(p, PS_ENROLLING);
	if (poller_read_token(p, &token, &err) < 0 ||
	    pki_make_key_csr(p->p_conf->node_name, &key, &csr, &err) < 0) {
		xfree_secret(token);
		poller_fail(p, &err);
		return;
	}
	memset(&req, 0, sizeof(req));
	snprintf(req.en_node, sizeof(req.en_node), "%s", p->p_conf->node_name);
	req.en_csr = csr;
	o = proto_enroll_req_encode(&req);
	url = poller_url(p, "/v1/enroll");
	log_kv(LOG_LVL_INFO, POLLER_COMP, "enrolling", "url", url,
	    "node", p->p_conf->node_name, (char *)NULL);
	rc = poller_send(p, "POST", url, o, false, token, POLLER_TIMEOUT_MS,
	    poller_enroll_done, p, &p->p_rq_main, &err);
	json_object_put(o);
	free(url);
	free(csr);
	xfree_secret(token);
	if (rc < 0) {
		xfree_secret(key);
		poller_fail(p, &err);
		return;
	}
	p->p_enroll_key = key;
}

static void
poller_renew_done(int status, long code, const char *body, size_t len,
    const struct carve_error *terr, void *arg)
{
	struct poller *p = arg;
	struct carve_error err = { 0 };
	char *key;

	if (status == -ECANCELED)
		return;
	p->p_rq_renew = NULL;
	key = p->p_renew_key;
	p->p_renew_key = NULL;
	if (poller_response("renew", status, code, body, len, terr, &err) < 0) {
		xfree_secret(key);
		if (poller_conn_failure(status, code, true)) {
			poller_fail(p, &err);
			return;
		}
		/* Refused (4xx): the certificate still works; ask again later. */
		log_kv(LOG_LVL_WARN, POLLER_COMP, "certificate renewal refused",
		    "error", err.message, (char *)NULL);
		poller_arm_renew(p, backoff_next(&p->p_renew_bo));
		return;
	}
	if (poller_install_cert(p, "certificate renewed", key, body, len,
	    &err) < 0) {
		xfree_secret(key);
		log_kv(LOG_LVL_ERROR, POLLER_COMP, "cannot install the renewed "
		    "certificate", "error", err.message, (char *)NULL);
		if (!p->p_enrolled) {
			poller_fail(p, &err);
			return;
		}
		poller_arm_renew(p, backoff_next(&p->p_renew_bo));
		return;
	}
	xfree_secret(key);
	poller_success(p);
	backoff_reset(&p->p_renew_bo);
	poller_arm_renew(p, 0);
}

static void
poller_renew(struct poller *p)
{
	struct carve_error err = { 0 };
	struct proto_renew_req req;
	char *key = NULL, *csr = NULL, *url;
	json_object *o;
	int rc;

	if (p->p_closed || p->p_state != PS_CONNECTED || p->p_rq_renew != NULL ||
	    !p->p_renew_due)
		return;
	if (pki_make_key_csr(p->p_conf->node_name, &key, &csr, &err) < 0) {
		log_kv(LOG_LVL_ERROR, POLLER_COMP, "cannot make a key for the "
		    "renewal", "error", err.message, (char *)NULL);
		poller_arm_renew(p, backoff_next(&p->p_renew_bo));
		return;
	}
	req.rn_csr = csr;
	o = proto_renew_req_encode(&req);
	url = poller_url(p, "/v1/nodes/%s/renew", p->p_conf->node_name);
	log_kv(LOG_LVL_INFO, POLLER_COMP, "renewing the node certificate",
	    "url", url, (char *)NULL);
	rc = poller_send(p, "POST", url, o, true, NULL, POLLER_TIMEOUT_MS,
	    poller_renew_done, p, &p->p_rq_renew, &err);
	json_object_put(o);
	free(url);
	free(csr);
	if (rc < 0) {
		xfree_secret(key);
		poller_fail(p, &err);
		return;
	}
	p->p_renew_key = key;
}

/* ---- progress ---- */

/* One command's progress: the post in flight and the newest one after it. */
struct prog {
	struct poller *pg_p;
	char pg_id[IDS_UUID_LEN + 1];
	struct http_request *pg_req;
	char *pg_next;                /* body waiting for pg_req, or NULL */
};

static void
prog_free(struct prog *pg)
{
	free(pg->pg_next);
	free(pg);
}

static void poller_progress_send(struct poller *p, struct prog *pg,
    char *body);

static void
poller_progress_done(int status, long code, const char *body, size_t len,
    const struct carve_error *terr, void *arg)
{
	struct prog *pg = arg;
	struct poller *p;
	struct carve_error err = { 0 };
	char *next;

	/* Cancelled by poller_disconnect, which already freed pg. */
	if (status == -ECANCELED)
		return;
	p = pg->pg_p;
	pg->pg_req = NULL;
	if (poller_response("progress", status, code, body, len, terr,
	    &err) < 0)
		log_kv(LOG_LVL_DEBUG, POLLER_COMP, "progress not taken",
		    "command_id", pg->pg_id, "error", err.message, (char *)NULL);
	next = pg->pg_next;
	pg->pg_next = NULL;
	if (next != NULL && !p->p_closed && p->p_state == PS_CONNECTED) {
		poller_progress_send(p, pg, next);
		return;
	}
	free(next);
	strmap_del(p->p_progress, pg->pg_id);
	prog_free(pg);
}

/* Takes ownership of body; on failure pg is forgotten. */
static void
poller_progress_send(struct poller *p, struct prog *pg, char *body)
{
	struct carve_error err = { 0 };
	char *url = poller_url(p, "/v1/commands/%s/progress", pg->pg_id);
	int rc;

	rc = poller_send_text(p, "POST", url, body, true, NULL,
	    POLLER_TIMEOUT_MS, poller_progress_done, pg, &pg->pg_req, &err);
	free(url);
	free(body);
	if (rc < 0) {
		log_kv(LOG_LVL_DEBUG, POLLER_COMP, "cannot post progress",
		    "command_id", pg->pg_id, "error", err.message, (char *)NULL);
		strmap_del(p->p_progress, pg->pg_id);
		prog_free(pg);
	}
}

void
poller_progress(struct poller *p, const char *command_id, int percent,
    const char *message)
{
	struct proto_progress msg;
	struct prog *pg;
	json_object *o;
	char *body;

	if (p == NULL || p->p_closed || p->p_state != PS_CONNECTED ||
	    strmap_get(p->p_outbox_ids, command_id) != NULL)
		return;
	msg.pg_percent = percent < 0 ? 0 : percent > 100 ? 100 : percent;
	msg.pg_message = (char *)message;
	o = proto_progress_encode(&msg);
	body = jsonx_to_string(o);
	json_object_put(o);
	if ((pg = strmap_get(p->p_progress, command_id)) != NULL) {
		/* One in flight: this replaces whatever was waiting. */
		free(pg->pg_next);
		pg->pg_next = body;
		return;
	}
	pg = xcalloc(1, sizeof(*pg));
	pg->pg_p = p;
	snprintf(pg->pg_id, sizeof(pg->pg_id), "%s", command_id);
	strmap_put(p->p_progress, pg->pg_id, pg);
	poller_progress_send(p, pg, body);
}

/* Forget every progress post (cancelling those in flight). */
static void
poller_progress_drop(struct poller *p)
{
	struct strmap_iter it = strmap_iter(p->p_progress);
	const char *id;
	void *v;

	while (strmap_next(p->p_progress, &it, &id, &v)) {
		struct prog *pg = v;
		struct http_request *r = pg->pg_req;

		strmap_del(p->p_progress, id);
		prog_free(pg);
		if (r != NULL)
			http_cancel(r);
	}
}

/* ---- outbox ---- */

static void
obx_free(struct obx *ob)
{
	free(ob->ob_body);
	free(ob);
}

static void
poller_outbox_remove(struct poller *p, struct obx *ob)
{
	TAILQ_REMOVE(&p->p_outbox, ob, ob_link);
	strmap_del(p->p_outbox_ids, ob->ob_id);
	p->p_outbox_n--;
	obx_free(ob);
}

/* Queue res for posting (once: an id already waiting is not added again). */
static void
poller_outbox_add(struct poller *p, const struct command_result *res,
    bool durable)
{
	struct obx *ob;
	json_object *o;
	void *v;

	if (p->p_closed || strmap_get(p->p_outbox_ids, res->res_command_id))
		return;
	/* The result says it all: no progress after it. */
	if ((v = strmap_get(p->p_progress, res->res_command_id)) != NULL) {
		struct prog *pg = v;

		free(pg->pg_next);
		pg->pg_next = NULL;
	}
	ob = xcalloc(1, sizeof(*ob));
	ob->ob_p = p;
	snprintf(ob->ob_id, sizeof(ob->ob_id), "%s", res->res_command_id);
	o = command_result_encode(res);
	ob->ob_body = jsonx_to_string(o);
	json_object_put(o);
	ob->ob_durable = durable;
	TAILQ_INSERT_TAIL(&p->p_outbox, ob, ob_link);
	strmap_put(p->p_outbox_ids, ob->ob_id, ob);
	p->p_outbox_n++;
	poller_outbox_flush(p);
}

static void
poller_post_done(int status, long code, const char *body, size_t len,
    const struct carve_error *terr, void *arg)
{
	struct obx *ob = arg;
	struct poller *p = ob->ob_p;
	struct carve_error err = { 0 };

	if (status == -ECANCELED)
		return;
	ob->ob_req = NULL;
	p->p_posting--;
	if (poller_response("result", status, code, body, len, terr,
	    &err) == 0) {
		log_kv(LOG_LVL_DEBUG, POLLER_COMP, "result reported",
		    "command_id", ob->ob_id, (char *)NULL);
		poller_success(p);
		backoff_reset(&p->p_post_bo);
	} else if (poller_conn_failure(status, code, false)) {
		/* Not the result's fault: it stays and goes again later. */
		poller_fail(p, &err);
		return;
	} else if (code >= 500) {
		/* The control plane failed on this one: again, later. */
		uint64_t delay = backoff_next(&p->p_post_bo);

		poller_request_failed(p, &err, delay);
		ob->ob_not_before = time_mono_ms() + (int64_t)delay;
		poller_outbox_flush(p);
		return;
	} else {
		/* 400, 403, 404, 409, 413: this result will never be taken;
		 * posting it again would loop forever. */
		log_kv(LOG_LVL_WARN, POLLER_COMP, "the control plane refused a "
		    "result; dropping it", "command_id", ob->ob_id,
		    "error", err.message, (char *)NULL);
	}
	if (ob->ob_durable)
		engine_mark_reported(p->p_a->a_engine, ob->ob_id);
	poller_outbox_remove(p, ob);
	poller_outbox_flush(p);
}

static void
poller_on_post_timer(uv_timer_t *t)
{
	poller_outbox_flush(t->data);
}

static void
poller_outbox_flush(struct poller *p)
{
	struct carve_error err = { 0 };
	struct obx *ob;
	int64_t now = time_mono_ms(), wake = 0;
	char *url;
	int rc;

	if (p->p_closed || p->p_state != PS_CONNECTED)
		return;
	TAILQ_FOREACH(ob, &p->p_outbox, ob_link) {
		if (p->p_posting >= POLLER_MAX_POSTS)
			break;
		if (ob->ob_req != NULL)
			continue;
		if (ob->ob_not_before > now) {
			if (wake == 0 || ob->ob_not_before < wake)
				wake = ob->ob_not_before;
			continue;
		}
		url = poller_url(p, "/v1/commands/%s/result", ob->ob_id);
		rc = poller_send_text(p, "POST", url, ob->ob_body, true, NULL,
		    POLLER_TIMEOUT_MS, poller_post_done, ob, &ob->ob_req, &err);
		free(url);
		if (rc < 0) {
			poller_fail(p, &err);
			return;
		}
		p->p_posting++;
	}
	if (wake > 0)
		uv_timer_start(&p->p_t_post, poller_on_post_timer,
		    (uint64_t)(wake - now), 0);
}

/* ---- commands ---- */

/* The engine's answer to a command from the long poll. */
static void
poller_cmd_done(const struct command_result *res, void *arg)
{
	struct poller *p = arg;
	struct engine *e = p->p_a->a_engine;

	if (p->p_closed)
		return;
	if (engine_result_durable(e, res->res_command_id)) {
		/* Usually already queued by the report hook; a command
		 * re-delivered after it was done is answered again. */
		poller_outbox_add(p, res, true);
		return;
	}
	if (engine_known(e, res->res_command_id))
		return;   /* recorded, its result not durable: recovered later */
	if (res->res_status == CMD_STATUS_FAILED &&
	    (res->res_error.code == CARVE_EUNAVAIL ||
	    res->res_error.code == CARVE_EINTERNAL)) {
		/* Not recorded and not final (libvirt not there yet, the
		 * journal failing): have the control plane deliver it again. */
		log_kv(LOG_LVL_INFO, POLLER_COMP, "command not taken for now; "
		    "it will be delivered again", "command_id",
		    res->res_command_id, "reason", res->res_error.message,
		    (char *)NULL);
		p->p_rewind = true;
		return;
	}
	/* A final rejection never journaled (e.g. an id reused for another
	 * command): the same answer every time it is delivered. */
	poller_outbox_add(p, res, false);
}

/* The engine's hook: a control-plane command's result is durable. */
static void
poller_on_result(const struct command_result *res, void *arg)
{
	poller_outbox_add(arg, res, true);
}

/* A command that does not decode: answer it if it can be named. */
static void
poller_bad_command(struct poller *p, int64_t seq, json_object *o,
    const struct carve_error *why)
{
	struct command_result res;
	json_object *v;
	const char *id = NULL, *type = NULL, *vm_id = NULL;
	char seqs[24];

	if (json_object_is_type(o, json_type_object)) {
		if (json_object_object_get_ex(o, "id", &v) &&
		    json_object_is_type(v, json_type_string))
			id = json_object_get_string(v);
		if (json_object_object_get_ex(o, "type", &v) &&
		    json_object_is_type(v, json_type_string))
			type = json_object_get_string(v);
		if (json_object_object_get_ex(o, "vm_id", &v) &&
		    json_object_is_type(v, json_type_string))
			vm_id = json_object_get_string(v);
	}
	snprintf(seqs, sizeof(seqs), "%" PRId64, seq);
	memset(&res, 0, sizeof(res));
	if (id == NULL || !ids_uuid_valid(id) || type == NULL ||
	    command_type_parse(type, &res.res_type) < 0) {
		/* A result must name the command and its type. */
		log_kv(LOG_LVL_WARN, POLLER_COMP, "skipping a command that "
		    "cannot be decoded or answered", "seq", seqs,
		    "error", why->message, (char *)NULL);
		return;
	}
	ids_uuid_normalize(id, res.res_command_id);
	ids_uuid_normalize(vm_id != NULL && ids_uuid_valid(vm_id) ? vm_id :
	    POLLER_NIL_UUID, res.res_vm_id);
	res.res_status = CMD_STATUS_FAILED;
	error_set(&res.res_error, CARVE_EINVAL, "%s", why->message);
	res.res_accepted_at_ms = res.res_finished_at_ms = time_now_ms();
	log_kv(LOG_LVL_WARN, POLLER_COMP, "refusing a malformed command",
	    "seq", seqs, "command_id", res.res_command_id,
	    "error", why->message, (char *)NULL);
	poller_outbox_add(p, &res, false);
}

static void
poller_take_command(struct poller *p, const struct proto_poll_item *it)
{
	struct carve_error err = { 0 };
	struct command cmd;
	char seqs[24];

	if (command_decode(it->pi_command, &cmd, &err) < 0) {
		poller_bad_command(p, it->pi_seq, it->pi_command, &err);
		return;
	}
	snprintf(seqs, sizeof(seqs), "%" PRId64, it->pi_seq);
	log_kv(LOG_LVL_INFO, POLLER_COMP, "command from the control plane",
	    "seq", seqs, "command_id", cmd.cmd_id,
	    "type", command_type_name(cmd.cmd_type), "vm_id", cmd.cmd_vm_id,
	    (char *)NULL);
	engine_submit_from(p->p_a->a_engine, &cmd, JOURNAL_ORIGIN_CP,
	    poller_cmd_done, p);
}

/* ---- long poll ---- */

static void
poller_on_poll_timer(uv_timer_t *t)
{
	poller_poll(t->data);
}

static void
poller_poll_done(int status, long code, const char *body, size_t len,
    const struct carve_error *terr, void *arg)
{
	struct poller *p = arg;
	struct carve_error err = { 0 };
	struct proto_poll_resp resp;
	uint64_t delay = 0;
	int rc;

	if (status == -ECANCELED)
		return;
	p->p_rq_poll = NULL;
	rc = poller_response("poll", status, code, body, len, terr, &err);
	if (rc < 0 && poller_conn_failure(status, code, true)) {
		poller_fail(p, &err);
		return;
	}
	if (rc == 0 && proto_poll_resp_decode_buf(body, len, &resp, &err) < 0) {
		poller_wrap(&err, CARVE_EINVAL, "poll: bad answer: ", "");
		rc = -1;
	}
	if (rc < 0) {
		/* This poll's answer is unusable: ask again, more slowly. */
		delay = backoff_next(&p->p_poll_bo);
		poller_request_failed(p, &err, delay);
		uv_timer_start(&p->p_t_poll, poller_on_poll_timer, delay, 0);
		return;
	}
	poller_success(p);
	/* The long poll is the connection's main channel: an answer to it
	 * ends an outage. */
	backoff_reset(&p->p_bo);
	backoff_reset(&p->p_poll_bo);
	p->p_backoff_ms = 0;
	for (size_t i = 0; i < resp.pr_nitems && !p->p_closed; i++)
		poller_take_command(p, &resp.pr_items[i]);
	if (!p->p_rewind)
		p->p_cursor = resp.pr_cursor;
	if (p->p_rewind)
		delay = backoff_next(&p->p_cmd_bo);
	else if (resp.pr_nitems > 0)
		backoff_reset(&p->p_cmd_bo);
	else if (time_mono_ms() - p->p_poll_started < POLLER_FAST_EMPTY_MS)
		delay = POLLER_EMPTY_DELAY_MS;
	proto_poll_resp_clear(&resp);
	if (p->p_closed || p->p_state != PS_CONNECTED)
		return;
	if (delay > 0)
		uv_timer_start(&p->p_t_poll, poller_on_poll_timer, delay, 0);
	else
		poller_poll(p);
}

static void
poller_poll(struct poller *p)
{
	struct carve_error err = { 0 };
	struct proto_poll_query q;
	char *query, *url;

	if (p->p_closed || p->p_state != PS_CONNECTED || p->p_rq_poll != NULL)
		return;
	uv_timer_stop(&p->p_t_poll);
	if (p->p_rewind)
		p->p_cursor = 0;
	p->p_rewind = false;
	q.pq_cursor = p->p_cursor;
	q.pq_wait_s = (int)p->p_poll_timeout_s;
	query = proto_poll_query_format(&q);
	url = poller_url(p, "/v1/nodes/%s/commands?%s", p->p_conf->node_name,
	    query);
	p->p_poll_started = time_mono_ms();
	if (poller_send(p, "GET", url, NULL, true, NULL,
	    p->p_poll_timeout_s * 1000 + POLLER_POLL_MARGIN_MS,
	    poller_poll_done, p, &p->p_rq_poll, &err) < 0)
		poller_fail(p, &err);
	free(query);
	free(url);
}

/* ---- heartbeat ---- */

static void
poller_on_hb_timer(uv_timer_t *t)
{
	poller_heartbeat(t->data);
}

static void
poller_hb_done(int status, long code, const char *body, size_t len,
    const struct carve_error *terr, void *arg)
{
	struct poller *p = arg;
	struct carve_error err = { 0 };
	struct proto_heartbeat_resp resp;
	uint64_t next_ms;
	char acks[24], seqs[24];
	int rc;

	if (status == -ECANCELED)
		return;
	p->p_rq_hb = NULL;
	rc = poller_response("heartbeat", status, code, body, len, terr, &err);
	if (rc < 0 && poller_conn_failure(status, code, true)) {
		poller_fail(p, &err);
		return;
	}
	if (rc == 0 &&
	    proto_heartbeat_resp_decode_buf(body, len, &resp, &err) < 0) {
		poller_wrap(&err, CARVE_EINVAL, "heartbeat: bad answer: ", "");
		rc = -1;
	}
	if (rc < 0) {
		/* Not taken: the changes stay for the next one, which comes
		 * after the interval or a growing backoff, whichever is
		 * longer. */
		next_ms = backoff_next(&p->p_hb_bo);
		if (next_ms < (uint64_t)p->p_hb_interval_s * 1000)
			next_ms = (uint64_t)p->p_hb_interval_s * 1000;
		poller_request_failed(p, &err, next_ms);
		uv_timer_start(&p->p_t_hb, poller_on_hb_timer, next_ms, 0);
		return;
	}
	poller_success(p);
	backoff_reset(&p->p_hb_bo);
	p->p_hb_interval_s = (unsigned)resp.ha_heartbeat_interval_s;
	next_ms = (uint64_t)p->p_hb_interval_s * 1000;
	if (!resp.ha_resync && resp.ha_ack == p->p_hb_sent_seq) {
		p->p_hb_acked = resp.ha_ack;
		agent_changes_ack(p->p_a, p->p_hb_sent_mark);
		if (p->p_hb_sent_full)
			p->p_hb_full_next = false;
	} else {
		snprintf(acks, sizeof(acks), "%" PRId64, resp.ha_ack);
		snprintf(seqs, sizeof(seqs), "%" PRId64, p->p_hb_sent_seq);
		log_kv(LOG_LVL_INFO, POLLER_COMP, "the control plane asks for "
		    "a full heartbeat", "seq", seqs, "ack", acks, (char *)NULL);
		/* Continue from what it has; resend at once unless what it
		 * refused was already a full one (no ping-pong). */
		p->p_hb_acked = resp.ha_ack;
		p->p_hb_full_next = true;
		if (!p->p_hb_sent_full)
			next_ms = 0;
	}
	if (!p->p_closed && p->p_state == PS_CONNECTED)
		uv_timer_start(&p->p_t_hb, poller_on_hb_timer, next_ms, 0);
}

static void
poller_heartbeat(struct poller *p)
{
	struct agent *a = p->p_a;
	struct carve_error err = { 0 };
	struct proto_heartbeat_req hb;
	struct capacity cap;
	struct strmap_iter it;
	const char *id;
	void *v;
	json_object *o;
	char *url;
	size_t n;

	if (p->p_closed || p->p_state != PS_CONNECTED || p->p_rq_hb != NULL)
		return;
	uv_timer_stop(&p->p_t_hb);
	if (!agent_capacity(a, &cap)) {
		/* Registered only once it is known; try again later anyway. */
		uv_timer_start(&p->p_t_hb, poller_on_hb_timer,
		    (uint64_t)p->p_hb_interval_s * 1000, 0);
		return;
	}
	memset(&hb, 0, sizeof(hb));
	hb.hb_seq = p->p_hb_acked + 1;
	hb.hb_full = p->p_hb_full_next;
	if (hb.hb_full) {
		hb.hb_vms = xcalloc(strmap_count(a->a_vms) + 1,
		    sizeof(*hb.hb_vms));
		it = strmap_iter(a->a_vms);
		while (strmap_next(a->a_vms, &it, NULL, &v))
			hb.hb_vms[hb.hb_nvms++] = *(struct vm_info *)v;
	} else {
		hb.hb_vms = xcalloc(strmap_count(a->a_dirty) + 1,
		    sizeof(*hb.hb_vms));
		it = strmap_iter(a->a_dirty);
		while (strmap_next(a->a_dirty, &it, &id, NULL))
			if ((v = strmap_get(a->a_vms, id)) != NULL)
				hb.hb_vms[hb.hb_nvms++] = *(struct vm_info *)v;
		n = strmap_count(a->a_removed);
		hb.hb_removed = xcalloc(n + 1, sizeof(*hb.hb_removed));
		it = strmap_iter(a->a_removed);
		while (strmap_next(a->a_removed, &it, &id, NULL))
			snprintf(hb.hb_removed[hb.hb_nremoved++],
			    sizeof(hb.hb_removed[0]), "%s", id);
	}
	hb.hb_capacity = capacity_encode(&cap);
	hb.hb_schedulable = !a->a_drained;
	o = proto_heartbeat_req_encode(&hb);
	p->p_hb_sent_seq = hb.hb_seq;
	p->p_hb_sent_full = hb.hb_full;
	p->p_hb_sent_mark = agent_changes_mark(a);
	if (log_get_level() <= LOG_LVL_DEBUG) {
		char seqs[24], nv[16], nr[16], nb[24];
		char *body = jsonx_to_string(o);

		/* The size is what the benchmarks compare (delta vs full). */
		snprintf(seqs, sizeof(seqs), "%" PRId64, hb.hb_seq);
		snprintf(nv, sizeof(nv), "%zu", hb.hb_nvms);
		snprintf(nr, sizeof(nr), "%zu", hb.hb_nremoved);
		snprintf(nb, sizeof(nb), "%zu", strlen(body));
		free(body);
		log_kv(LOG_LVL_DEBUG, POLLER_COMP, "heartbeat", "seq", seqs,
		    "full", hb.hb_full ? "true" : "false", "vms", nv,
		    "removed", nr, "bytes", nb, (char *)NULL);
	}
	proto_heartbeat_req_clear(&hb);
	url = poller_url(p, "/v1/nodes/%s/heartbeat", p->p_conf->node_name);
	if (poller_send(p, "POST", url, o, true, NULL, POLLER_TIMEOUT_MS,
	    poller_hb_done, p, &p->p_rq_hb, &err) < 0)
		poller_fail(p, &err);
	json_object_put(o);
	free(url);
}

/* ---- register ---- */

/* Registered: everything that runs while connected starts (again). */
static void
poller_connected(struct poller *p)
{
	if (p->p_state != PS_CONNECTED) {
		poller_set_state(p, PS_CONNECTED);
		log_kv(LOG_LVL_INFO, POLLER_COMP, "connected to the control "
		    "plane", "url", p->p_base, (char *)NULL);
	}
	poller_poll(p);
	poller_heartbeat(p);
	poller_outbox_flush(p);
	if (p->p_renew_due)
		poller_renew(p);
	else
		poller_arm_renew(p, 0);
}

static void
poller_register_done(int status, long code, const char *body, size_t len,
    const struct carve_error *terr, void *arg)
{
	struct poller *p = arg;
	struct carve_error err = { 0 };
	struct proto_register_resp resp;

	if (status == -ECANCELED)
		return;
	p->p_rq_main = NULL;
	if (poller_response("register", status, code, body, len, terr,
	    &err) < 0) {
		poller_fail(p, &err);
		return;
	}
	if (proto_register_resp_decode_buf(body, len, &resp, &err) < 0) {
		poller_wrap(&err, CARVE_EINVAL, "register: bad answer: ", "");
		poller_fail(p, &err);
		return;
	}
	p->p_last_success_ms = time_now_ms();
	p->p_hb_interval_s = (unsigned)resp.rr_heartbeat_interval_s;
	p->p_poll_timeout_s = (unsigned)resp.rr_poll_timeout_s;
	p->p_registered = true;
	if (p->p_reregister) {
		p->p_reregister = false;
		poller_register(p);
	}
	poller_connected(p);
}

static void
poller_register(struct poller *p)
{
	struct agent *a = p->p_a;
	struct carve_error err = { 0 };
	struct proto_register_req req;
	struct capacity cap;
	json_object *o;
	char *url;

	if (p->p_closed || p->p_rq_main != NULL)
		return;
	if (!p->p_registered)
		poller_set_state(p, PS_REGISTERING);
	/* The inventory comes from libvirt: wait for poller_view_ready. */
	if (!a->a_have_inv || !agent_capacity(a, &cap))
		return;
	memset(&req, 0, sizeof(req));
	snprintf(req.rg_agent_version, sizeof(req.rg_agent_version), "%s",
	    PACKAGE_VERSION);
	req.rg_schedulable = !a->a_drained;
	req.rg_host = host_inventory_encode(&a->a_inv);
	req.rg_capacity = capacity_encode(&cap);
	o = proto_register_req_encode(&req);
	proto_register_req_clear(&req);
	url = poller_url(p, "/v1/nodes/%s", p->p_conf->node_name);
	/* Said once per connection; retries during an outage stay quiet. */
	log_kv(p->p_registered || p->p_failures > 0 ? LOG_LVL_DEBUG :
	    LOG_LVL_INFO, POLLER_COMP, "registering", "url", url, (char *)NULL);
	if (poller_send(p, "PUT", url, o, true, NULL, POLLER_TIMEOUT_MS,
	    poller_register_done, p, &p->p_rq_main, &err) < 0)
		poller_fail(p, &err);
	json_object_put(o);
	free(url);
}

/* ---- the connection ---- */

static void
poller_cancel(struct http_request **rp)
{
	struct http_request *r = *rp;

	if (r != NULL) {
		*rp = NULL;
		http_cancel(r);
	}
}

/* Cancel everything in flight; what was not acknowledged is sent again. */
static void
poller_disconnect(struct poller *p)
{
	struct obx *ob;

	p->p_registered = false;
	p->p_reregister = false;
	uv_timer_stop(&p->p_t_poll);
	uv_timer_stop(&p->p_t_hb);
	uv_timer_stop(&p->p_t_post);
	poller_cancel(&p->p_rq_main);
	poller_cancel(&p->p_rq_poll);
	poller_cancel(&p->p_rq_hb);
	poller_cancel(&p->p_rq_renew);
	TAILQ_FOREACH(ob, &p->p_outbox, ob_link) {
		if (ob->ob_req != NULL) {
			p->p_posting--;
			poller_cancel(&ob->ob_req);
		}
	}
	poller_progress_drop(p);
	xfree_secret(p->p_enroll_key);
	xfree_secret(p->p_renew_key);
	p->p_enroll_key = p->p_renew_key = NULL;
}

static void
poller_on_retry(uv_timer_t *t)
{
	struct poller *p = t->data;

	p->p_backoff_ms = 0;
	poller_advance(p);
}

static void
poller_fail(struct poller *p, const struct carve_error *err)
{
	char ms[24];

	if (p->p_closed)
		return;
	p->p_failures++;
	snprintf(p->p_last_error, sizeof(p->p_last_error), "%s", err->message);
	/* 401 on a mutual-TLS request: the control plane does not take our
	 * certificate (any more); enrol again. */
	if (err->code == CARVE_EUNAUTH && p->p_state != PS_ENROLLING &&
	    p->p_enrolled)
		p->p_cert_rejected = true;
	poller_disconnect(p);
	p->p_backoff_ms = backoff_next(&p->p_bo);
	poller_set_state(p, PS_BACKOFF);
	snprintf(ms, sizeof(ms), "%" PRIu64, p->p_backoff_ms);
	log_kv(LOG_LVL_WARN, POLLER_COMP, "control plane unreachable or "
	    "refusing; retrying", "error", err->message, "retry_in_ms", ms,
	    (char *)NULL);
	uv_timer_start(&p->p_t_retry, poller_on_retry, p->p_backoff_ms, 0);
}

/* The next step towards being connected. */
static void
poller_advance(struct poller *p)
{
	if (p->p_closed || p->p_rq_main != NULL)
		return;
	if (p->p_enrolled && time_now_ms() >= p->p_cert.ci_not_after_ms) {
		log_warn(POLLER_COMP, "the node certificate expired; enrolling "
		    "again");
		p->p_enrolled = false;
	}
	if (!p->p_enrolled || p->p_cert_rejected) {
		poller_enroll(p);
		return;
	}
	if (!p->p_registered) {
		poller_register(p);
		return;
	}
	poller_connected(p);
}

/* ---- life cycle ---- */

static void
poller_load_unreported(const struct command_result *res, void *arg)
{
	poller_outbox_add(arg, res, true);
}

int
poller_new(struct agent *a, struct poller **out, struct carve_error *err)
{
	const struct carved_conf *conf = a->a_conf;
	struct poller *p;
	size_t n;
	int rc;

	*out = NULL;
	if (conf->cp_ca_file == NULL)
		return error_set(err, CARVE_EINVAL, "[control_plane] ca_file is "
		    "required with url: the control plane's CA is pinned, "
		    "never taken from the system store");
	p = xcalloc(1, sizeof(*p));
	p->p_a = a;
	p->p_conf = conf;
	p->p_base = xstrdup(conf->cp_url);
	n = strlen(p->p_base);
	while (n > 0 && p->p_base[n - 1] == '/')
		p->p_base[--n] = '\0';
	p->p_key_file = conf->cp_key_file ? xstrdup(conf->cp_key_file) :
	    xasprintf("%s/client.key", conf->state_dir);
	p->p_cert_file = conf->cp_cert_file ? xstrdup(conf->cp_cert_file) :
	    xasprintf("%s/client.crt", conf->state_dir);
	p->p_outbox_ids = strmap_new();
	p->p_progress = strmap_new();
	TAILQ_INIT(&p->p_outbox);
	p->p_hb_interval_s = POLLER_DEFAULT_HB_S;
	p->p_poll_timeout_s = POLLER_DEFAULT_POLL_S;
	p->p_hb_full_next = true;
	p->p_state = PS_REGISTERING;
	backoff_init(&p->p_bo, POLLER_BACKOFF_BASE_MS, POLLER_BACKOFF_CAP_MS);
	backoff_init(&p->p_poll_bo, POLLER_BACKOFF_BASE_MS,
	    POLLER_BACKOFF_CAP_MS);
	backoff_init(&p->p_hb_bo, POLLER_BACKOFF_BASE_MS, POLLER_BACKOFF_CAP_MS);
	backoff_init(&p->p_post_bo, POLLER_BACKOFF_BASE_MS,
	    POLLER_BACKOFF_CAP_MS);
	backoff_init(&p->p_cmd_bo, POLLER_CMD_BACKOFF_MS, POLLER_CMD_BACKOFF_CAP);
	backoff_init(&p->p_renew_bo, POLLER_RENEW_BACKOFF_MS,
	    POLLER_RENEW_BACKOFF_CAP);

	/* Refuse to start with a key others can read (design: "private
	 * keys 0600 and checked at start"). */
	if (pki_recover(p->p_key_file, p->p_cert_file, err) < 0 ||
	    (rc = pki_check_key_file(p->p_key_file, err)) < 0) {
		poller_free(p);
		return -1;
	}
	(void)rc;
	uv_timer_init(a->a_loop, &p->p_t_retry);
	uv_timer_init(a->a_loop, &p->p_t_poll);
	uv_timer_init(a->a_loop, &p->p_t_hb);
	uv_timer_init(a->a_loop, &p->p_t_renew);
	uv_timer_init(a->a_loop, &p->p_t_post);
	p->p_t_retry.data = p->p_t_poll.data = p->p_t_hb.data =
	    p->p_t_renew.data = p->p_t_post.data = p;
	p->p_http = http_new(a->a_loop);
	poller_load_cert(p);
	engine_foreach_unreported(a->a_engine, poller_load_unreported, p);
	engine_set_report_hook(a->a_engine, poller_on_result, p);
	if (p->p_outbox_n > 0)
		log_info(POLLER_COMP, "%u results wait to be reported to the "
		    "control plane", p->p_outbox_n);
	*out = p;
	return 0;
}

void
poller_start(struct poller *p)
{
	log_kv(LOG_LVL_INFO, POLLER_COMP, "control plane client starting",
	    "url", p->p_base, "node", p->p_conf->node_name, (char *)NULL);
	poller_advance(p);
}

void
poller_view_ready(struct poller *p)
{
	if (p->p_closed)
		return;
	if (p->p_state == PS_CONNECTED) {
		/* The inventory may have changed (libvirt reconnected). */
		if (p->p_rq_main != NULL)
			p->p_reregister = true;
		else
			poller_register(p);
	} else if (p->p_state == PS_REGISTERING) {
		poller_advance(p);
	}
}

static void
poller_handle_closed(uv_handle_t *h)
{
	struct poller *p = h->data;

	if (--p->p_pending_closes == 0 && p->p_close_cb != NULL)
		p->p_close_cb(p->p_close_arg);
}

static void
poller_http_closed(void *arg)
{
	struct poller *p = arg;

	p->p_http = NULL;
	if (--p->p_pending_closes == 0 && p->p_close_cb != NULL)
		p->p_close_cb(p->p_close_arg);
}

void
poller_close(struct poller *p, void (*cb)(void *arg), void *arg)
{
	if (p->p_closed)
		return;
	poller_disconnect(p);
	p->p_closed = true;
	poller_set_state(p, PS_STOPPED);
	p->p_close_cb = cb;
	p->p_close_arg = arg;
	p->p_pending_closes = 6;
	uv_close((uv_handle_t *)&p->p_t_post, poller_handle_closed);
	uv_close((uv_handle_t *)&p->p_t_retry, poller_handle_closed);
	uv_close((uv_handle_t *)&p->p_t_poll, poller_handle_closed);
	uv_close((uv_handle_t *)&p->p_t_hb, poller_handle_closed);
	uv_close((uv_handle_t *)&p->p_t_renew, poller_handle_closed);
	http_close(p->p_http, poller_http_closed, p);
	if (p->p_outbox_n > 0)
		log_info(POLLER_COMP, "%u results not reported yet: they are "
		    "kept in the journal and sent after the next start",
		    p->p_outbox_n);
}

void
poller_free(struct poller *p)
{
	struct obx *ob;

	if (p == NULL)
		return;
	while ((ob = TAILQ_FIRST(&p->p_outbox)) != NULL)
		poller_outbox_remove(p, ob);
	strmap_free(p->p_outbox_ids);
	if (p->p_progress != NULL)
		poller_progress_drop(p);
	strmap_free(p->p_progress);
	xfree_secret(p->p_enroll_key);
	xfree_secret(p->p_renew_key);
	free(p->p_base);
	free(p->p_key_file);
	free(p->p_cert_file);
	free(p);
}

json_object *
poller_status_encode(struct poller *p)
{
	json_object *o = json_object_new_object();

	jsonx_add_string(o, "url", p->p_base);
	jsonx_add_string(o, "state", poller_state_names[p->p_state]);
	if (p->p_last_success_ms > 0)
		jsonx_add_int(o, "last_success_at", p->p_last_success_ms);
	else
		json_object_object_add(o, "last_success_at", NULL);
	jsonx_add_string(o, "last_error", p->p_last_error);
	jsonx_add_int(o, "backoff_ms", (int64_t)p->p_backoff_ms);
	if (p->p_enrolled)
		jsonx_add_int(o, "cert_expires_at", p->p_cert.ci_not_after_ms);
	else
		json_object_object_add(o, "cert_expires_at", NULL);
	if (p->p_enrolled)
		jsonx_add_int(o, "cert_renew_at", p->p_renew_at_ms);
	jsonx_add_int(o, "outbox", p->p_outbox_n);
	jsonx_add_int(o, "cursor", p->p_cursor);
	jsonx_add_int(o, "heartbeat_interval_s", p->p_hb_interval_s);
	jsonx_add_int(o, "poll_timeout_s", p->p_poll_timeout_s);
	jsonx_add_int(o, "requests", (int64_t)p->p_requests);
	jsonx_add_int(o, "failures", (int64_t)p->p_failures);
	return o;
}
