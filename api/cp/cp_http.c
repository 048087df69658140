/*
 * carve-cp's HTTPS front: see cp_http.h.
 *
 * TLS: the server asks every client for a certificate (SSL_VERIFY_PEER)
 * but does not insist (no FAIL_IF_NO_PEER_CERT), because enroll and the
 * admin API come without one. A certificate that is offered must chain to
 * the CA, be in its validity period and allow client authentication, or
 * the handshake fails. Which endpoints need one is the route table's
 * business, checked per request: the certificate is verified again there,
 * including its expiry (a kept-alive connection can outlive it), and its
 * CN is the node the request speaks for. Sessions are never resumed, so
 * every connection proves its certificate afresh.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/tcp.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "api/cp/cp_admin.h"
#include "api/cp/cp_agent.h"
#include "api/cp/cp_http.h"
#include "api/cp/cp_mig.h"
#include "api/proto.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

#define HTTP_MAX_HEADERS	(16 * 1024)
#define HTTP_MAX_PATH		512
/* Read/write timeout of a connection (not of a parked long poll). */
#define HTTP_IO_TIMEOUT_S	30
#define HTTP_SESSION_CTX	"carve-cp"

struct cp_http {
	struct cp		*h_cp;
	SSL_CTX			*h_ssl;
	struct evhttp		*h_http;
};

/* Which credential a route takes. */
enum http_auth {
	HTTP_AUTH_BOOTSTRAP,	/* Bearer bootstrap token */
	HTTP_AUTH_ADMIN,	/* Bearer admin token */
	HTTP_AUTH_CERT,		/* a node's client certificate */
	HTTP_AUTH_NODE,		/* ... whose CN is the path's first wildcard */
};

/* Route flag: log successful answers at debug level (frequent, routine). */
#define HTTP_QUIET	0x1

struct http_route {
	enum evhttp_cmd_type	 method;
	const char		*pattern;	/* "*" matches one segment */
	enum http_auth		 auth;
	int			 flags;
	cp_handler_fn		 fn;
};

static const struct http_route http_routes[] = {
	/* agent endpoints */
	{ EVHTTP_REQ_POST, "/v1/enroll", HTTP_AUTH_BOOTSTRAP, 0,
	    cp_agent_enroll },
	{ EVHTTP_REQ_POST, "/v1/nodes/*/renew", HTTP_AUTH_NODE, 0,
	    cp_agent_renew },
	{ EVHTTP_REQ_PUT, "/v1/nodes/*", HTTP_AUTH_NODE, 0,
	    cp_agent_register },
	{ EVHTTP_REQ_GET, "/v1/nodes/*/commands", HTTP_AUTH_NODE, HTTP_QUIET,
	    cp_agent_poll },
	{ EVHTTP_REQ_POST, "/v1/nodes/*/heartbeat", HTTP_AUTH_NODE, HTTP_QUIET,
	    cp_agent_heartbeat },
	{ EVHTTP_REQ_POST, "/v1/commands/*/result", HTTP_AUTH_CERT, 0,
	    cp_agent_result },
	{ EVHTTP_REQ_POST, "/v1/commands/*/progress", HTTP_AUTH_CERT, 0,
	    cp_agent_progress },
	/* admin endpoints */
	{ EVHTTP_REQ_POST, "/v1/vms", HTTP_AUTH_ADMIN, 0, cp_admin_vm_create },
	{ EVHTTP_REQ_GET, "/v1/vms", HTTP_AUTH_ADMIN, 0, cp_admin_vm_list },
	{ EVHTTP_REQ_GET, "/v1/vms/*", HTTP_AUTH_ADMIN, 0, cp_admin_vm_get },
	{ EVHTTP_REQ_DELETE, "/v1/vms/*", HTTP_AUTH_ADMIN, 0,
	    cp_admin_vm_delete },
	{ EVHTTP_REQ_POST, "/v1/vms/*/actions", HTTP_AUTH_ADMIN, 0,
	    cp_admin_vm_action },
	/* Two wildcards: the VM's id, then the snapshot's name (at most
	 * CP_HTTP_ARG_MAX = IDS_NAME_MAX bytes, like every valid name). */
	{ EVHTTP_REQ_POST, "/v1/vms/*/snapshots", HTTP_AUTH_ADMIN, 0,
	    cp_admin_snapshot_create },
	{ EVHTTP_REQ_GET, "/v1/vms/*/snapshots", HTTP_AUTH_ADMIN, 0,
	    cp_admin_snapshot_list },
	{ EVHTTP_REQ_POST, "/v1/vms/*/snapshots/*/revert", HTTP_AUTH_ADMIN, 0,
	    cp_admin_snapshot_revert },
	{ EVHTTP_REQ_DELETE, "/v1/vms/*/snapshots/*", HTTP_AUTH_ADMIN, 0,
	    cp_admin_snapshot_delete },
	{ EVHTTP_REQ_GET, "/v1/nodes", HTTP_AUTH_ADMIN, 0, cp_admin_node_list },
	{ EVHTTP_REQ_GET, "/v1/nodes/*", HTTP_AUTH_ADMIN, 0, cp_admin_node_get },
	{ EVHTTP_REQ_DELETE, "/v1/nodes/*", HTTP_AUTH_ADMIN, 0,
	    cp_admin_node_delete },
	{ EVHTTP_REQ_GET, "/v1/commands/*", HTTP_AUTH_ADMIN, 0,
	    cp_admin_command_get },
	{ EVHTTP_REQ_POST, "/v1/nodes/*/evacuate", HTTP_AUTH_ADMIN, 0,
	    cp_mig_admin_evacuate },
	{ EVHTTP_REQ_GET, "/v1/migrations", HTTP_AUTH_ADMIN, 0,
	    cp_mig_admin_list },
	{ EVHTTP_REQ_GET, "/v1/migrations/*", HTTP_AUTH_ADMIN, 0,
	    cp_mig_admin_get },
	{ EVHTTP_REQ_POST, "/v1/migrations/*/cancel", HTTP_AUTH_ADMIN, 0,
	    cp_mig_admin_cancel },
};

#define HTTP_NROUTES (sizeof(http_routes) / sizeof(http_routes[0]))

static const char *
http_method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET:	return "GET";
	case EVHTTP_REQ_POST:	return "POST";
	case EVHTTP_REQ_PUT:	return "PUT";
	case EVHTTP_REQ_DELETE:	return "DELETE";
	case EVHTTP_REQ_HEAD:	return "HEAD";
	default:		return "OTHER";
	}
}

/* ------------------------------------------------------------ replies */

static void
http_send(struct evhttp_request *req, const char *who, int64_t started_ms,
    bool quiet, int status, json_object *body)
{
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = evbuffer_new();
	char *text = body != NULL ? jsonx_to_string(body) : xstrdup("{}");
	char st[8], ms[24];

	if (buf == NULL) {
		fprintf(stderr, "level=fatal comp=cp msg=\"out of memory\"\n");
		abort();
	}
	json_object_put(body);
	evbuffer_add(buf, text, strlen(text));
	evbuffer_add(buf, "\n", 1);
	evhttp_add_header(hdr, "Content-Type", "application/json");
	evhttp_add_header(hdr, "Cache-Control", "no-store");
	snprintf(st, sizeof(st), "%d", status);
	snprintf(ms, sizeof(ms), "%lld",
	    (long long)(time_mono_ms() - started_ms));
	log_kv(quiet && status < 300 ? LOG_LVL_DEBUG : LOG_LVL_INFO, CP_COMP,
	    "request", "method",
	    http_method_name(evhttp_request_get_command(req)),
	    "uri", evhttp_request_get_uri(req), "status", st, "ms", ms,
	    "who", who != NULL && who[0] != '\0' ? who : "-", NULL);
	evhttp_send_reply(req, status, NULL, buf);
	evbuffer_free(buf);
	free(text);
}

void
cp_http_send(struct evhttp_request *req, const char *who, int64_t started_ms,
    int status, json_object *body)
{
	http_send(req, who, started_ms, true, status, body);
}

void
cp_http_reply(struct cp_req *r, int status, json_object *body)
{
	http_send(r->rq_req, r->rq_node, r->rq_started_ms, r->rq_quiet, status,
	    body);
}

static void
http_reply_error(struct cp_req *r, int status, const struct carve_error *err)
{
	if (err->code == CARVE_EUNAUTH)
		evhttp_add_header(evhttp_request_get_output_headers(r->rq_req),
		    "WWW-Authenticate", "Bearer");
	http_send(r->rq_req, r->rq_node, r->rq_started_ms, false, status,
	    proto_error_encode(err));
}

int
cp_req_uuid(const struct cp_req *r, int i, char out[IDS_UUID_LEN + 1],
    struct carve_error *err)
{
	if (!ids_uuid_valid(r->rq_arg[i]))
		return error_set(err, CARVE_EINVAL, "\"%s\" in the path is not "
		    "a UUID", r->rq_arg[i]);
	ids_uuid_normalize(r->rq_arg[i], out);
	return 0;
}

/* ------------------------------------------------------------ routing */

/*
 * Match path against pattern segment by segment; wildcards are copied into
 * r->rq_arg. A wildcard segment longer than CP_HTTP_ARG_MAX matches
 * nothing (no node name or UUID is that long).
 */
static bool
http_match(const char *pattern, const char *path, struct cp_req *r)
{
	const char *p = pattern, *s = path;
	int arg = 0;

	while (*p != '\0' && *s != '\0') {
		size_t plen = strcspn(p + 1, "/") + 1;
		size_t slen = strcspn(s + 1, "/") + 1;

		/* Both point at a '/'. */
		if (*p != '/' || *s != '/')
			return false;
		if (plen == 2 && p[1] == '*') {
			if (slen < 2 || slen - 1 > CP_HTTP_ARG_MAX ||
			    arg >= CP_HTTP_MAX_ARGS)
				return false;
			memcpy(r->rq_arg[arg], s + 1, slen - 1);
			r->rq_arg[arg][slen - 1] = '\0';
			arg++;
		} else if (plen != slen || memcmp(p, s, plen) != 0) {
			return false;
		}
		p += plen;
		s += slen;
	}
	return *p == '\0' && *s == '\0';
}

/* ------------------------------------------------------------ auth */

static const char *
http_bearer(struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return h;
}

static int
http_check_token(struct evhttp_request *req, const char *token,
    const char *what, struct carve_error *err)
{
	const char *given = http_bearer(req);

	if (given == NULL)
		return error_set(err, CARVE_EUNAUTH, "this endpoint needs "
		    "\"Authorization: Bearer <%s token>\"", what);
	if (!cp_pki_token_equal(given, token))
		return error_set(err, CARVE_EUNAUTH, "wrong %s token", what);
	return 0;
}

static SSL *
http_ssl(struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct bufferevent *bev;

	if (conn == NULL ||
	    (bev = evhttp_connection_get_bufferevent(conn)) == NULL)
		return NULL;
	return bufferevent_openssl_get_ssl(bev);
}

/* The node name of the request's verified, unexpired client certificate. */
static int
http_check_cert(struct cp_req *r, struct carve_error *err)
{
	SSL *ssl = http_ssl(r->rq_req);
	struct carve_error cn_err = { 0 };
	X509 *peer;
	long v;

	if (ssl == NULL)
		return error_set(err, CARVE_EINTERNAL, "connection without TLS");
	peer = SSL_get0_peer_certificate(ssl);
	if (peer == NULL)
		return error_set(err, CARVE_EUNAUTH, "this endpoint needs the "
		    "node's client certificate (enroll first)");
	if ((v = SSL_get_verify_result(ssl)) != X509_V_OK)
		return error_set(err, CARVE_EUNAUTH, "client certificate "
		    "refused: %s", X509_verify_cert_error_string(v));
	if (X509_cmp_current_time(X509_get0_notAfter(peer)) <= 0)
		return error_set(err, CARVE_EUNAUTH, "client certificate has "
		    "expired; enroll again");
	if (cp_pki_cert_cn(peer, "the client certificate", r->rq_node,
	    &cn_err) < 0) {
		r->rq_node[0] = '\0';
		return error_set(err, CARVE_EPERM, "%s", cn_err.message);
	}
	return 0;
}

static int
http_auth(struct cp_req *r, enum http_auth auth, struct carve_error *err)
{
	struct cp *cp = r->rq_cp;

	switch (auth) {
	case HTTP_AUTH_BOOTSTRAP:
		return http_check_token(r->rq_req, cp->cp_bootstrap_token,
		    "bootstrap", err);
	case HTTP_AUTH_ADMIN:
		return http_check_token(r->rq_req, cp->cp_admin_token, "admin",
		    err);
	case HTTP_AUTH_CERT:
		return http_check_cert(r, err);
	case HTTP_AUTH_NODE:
		if (http_check_cert(r, err) < 0)
			return -1;
		if (strcmp(r->rq_node, r->rq_arg[0]) != 0)
			return error_set(err, CARVE_EPERM, "the certificate of "
			    "node \"%s\" cannot act for node \"%s\"",
			    r->rq_node, r->rq_arg[0]);
		return 0;
	}
	return error_set(err, CARVE_EINTERNAL, "unknown route credential");
}

/* ------------------------------------------------------------ dispatch */

static void
http_dispatch(struct evhttp_request *req, void *arg)
{
	struct cp_http *h = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const struct http_route *route = NULL;
	struct carve_error err = { 0 };
	struct cp_req r;
	struct evbuffer *in;
	bool path_known = false;
	int status;

	memset(&r, 0, sizeof(r));
	r.rq_cp = h->h_cp;
	r.rq_req = req;
	r.rq_method = http_method_name(method);
	r.rq_started_ms = time_mono_ms();
	r.rq_path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	r.rq_query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;

	if (r.rq_path == NULL || strlen(r.rq_path) > HTTP_MAX_PATH) {
		error_set(&err, CARVE_ENOTFOUND, "no such endpoint");
		goto fail;
	}
	for (size_t i = 0; i < HTTP_NROUTES; i++) {
		struct cp_req probe = r;

		if (!http_match(http_routes[i].pattern, r.rq_path, &probe))
			continue;
		path_known = true;
		if (http_routes[i].method == method) {
			route = &http_routes[i];
			r = probe;
			break;
		}
	}
	if (route == NULL) {
		if (path_known) {
			error_set(&err, CARVE_EINVAL, "method %s is not allowed "
			    "on %s", r.rq_method, r.rq_path);
			http_reply_error(&r, 405, &err);
			return;
		}
		error_set(&err, CARVE_ENOTFOUND, "no such endpoint: %s %s",
		    r.rq_method, r.rq_path);
		goto fail;
	}
	if (http_auth(&r, route->auth, &err) < 0)
		goto fail;

	in = evhttp_request_get_input_buffer(req);
	r.rq_body_len = evbuffer_get_length(in);
	if (r.rq_body_len > PROTO_REQUEST_MAX) {
		error_set(&err, CARVE_ETOOBIG, "request body of %zu bytes; at "
		    "most %d are accepted", r.rq_body_len, PROTO_REQUEST_MAX);
		goto fail;
	}
	r.rq_body = r.rq_body_len > 0 ?
	    (const char *)evbuffer_pullup(in, -1) : "";
	r.rq_quiet = (route->flags & HTTP_QUIET) != 0;
	if (route->fn(&r, &err) == 0)
		return;
fail:
	if (!error_isset(&err))
		error_set(&err, CARVE_EINTERNAL, "request failed");
	status = proto_http_status(err.code);
	if (status >= 500)
		log_kv(LOG_LVL_ERROR, CP_COMP, "request failed", "uri",
		    evhttp_request_get_uri(req), "error", err.message, NULL);
	http_reply_error(&r, status, &err);
}

/* ------------------------------------------------------------ TLS */

static int
http_verify_cb(int ok, X509_STORE_CTX *ctx)
{
	if (!ok) {
		X509 *c = X509_STORE_CTX_get_current_cert(ctx);
		char subj[256] = "-";

		if (c != NULL)
			X509_NAME_oneline(X509_get_subject_name(c), subj,
			    sizeof(subj));
		log_kv(LOG_LVL_WARN, CP_COMP, "client certificate refused",
		    "reason", X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(ctx)), "subject", subj, NULL);
	}
	return ok;
}

static int
http_sslerr(struct carve_error *err, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "unknown error";

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return error_set(err, CARVE_EINVAL, "%s: %s", what, buf);
}

static SSL_CTX *
http_tls_ctx(const char *dir, struct carve_error *err)
{
	char *crt = xasprintf("%s/%s", dir, CP_PKI_SERVER_CRT);
	char *key = xasprintf("%s/%s", dir, CP_PKI_SERVER_KEY);
	char *ca = xasprintf("%s/%s", dir, CP_PKI_CA_CRT);
	STACK_OF(X509_NAME) *names;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		http_sslerr(err, "SSL_CTX_new");
		goto fail;
	}
	if (cp_pki_check_secret(key, err) < 0)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, crt) != 1) {
		http_sslerr(err, crt);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		http_sslerr(err, key);
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
	    (names = SSL_load_client_CA_file(ca)) == NULL) {
		http_sslerr(err, ca);
		goto fail;
	}
	SSL_CTX_set_client_CA_list(ctx, names);
	/* Ask, do not insist: enroll and admin calls come without one. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, http_verify_cb);
	/* Node certificates are issued by the CA itself. */
	SSL_CTX_set_verify_depth(ctx, 1);
	/* Offered certificates must be fit for TLS client authentication. */
	if (SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1 ||
	    SSL_CTX_set_session_id_context(ctx,
	    (const unsigned char *)HTTP_SESSION_CTX,
	    sizeof(HTTP_SESSION_CTX) - 1) != 1) {
		http_sslerr(err, "TLS setup");
		goto fail;
	}
	free(crt);
	free(key);
	free(ca);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	free(crt);
	free(key);
	free(ca);
	return NULL;
}

/* Every accepted connection speaks TLS: evhttp gets its bufferevent here. */
static struct bufferevent *
http_bevcb(struct event_base *base, void *arg)
{
	struct cp_http *h = arg;
	struct bufferevent *bev;
	SSL *ssl = SSL_new(h->h_ssl);

	/*
	 * Returning NULL would make evhttp fall back to a plain socket, i.e.
	 * serve HTTP without TLS. Out of memory is fatal instead.
	 */
	if (ssl == NULL)
		goto fatal;
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		goto fatal;
	/* Clients that just close the socket are common and harmless. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
fatal:
	fprintf(stderr, "level=fatal comp=cp msg=\"cannot set up a TLS "
	    "connection (out of memory)\"\n");
	abort();
}

/* ------------------------------------------------------------ listen */

/* "ADDR:PORT" or "[V6ADDR]:PORT" into addr (a new string) and port. */
static int
http_parse_listen(const char *s, char **addr, unsigned *port,
    struct carve_error *err)
{
	const char *colon, *a = s;
	size_t alen;
	char *end;
	long p;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':')
			goto bad;
		a = s + 1;
		alen = (size_t)(rb - a);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			goto bad;
		alen = (size_t)(colon - s);
	}
	if (alen == 0)
		goto bad;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || p < 0 ||
	    p > 65535)
		goto bad;
	*addr = xstrndup(a, alen);
	*port = (unsigned)p;
	return 0;
bad:
	return error_set(err, CARVE_EINVAL, "--listen \"%s\": expected "
	    "ADDR:PORT (e.g. 127.0.0.1:8443 or [::1]:8443)", s);
}

int
cp_http_start(struct cp *cp, struct carve_error *err)
{
	struct cp_http *h = xcalloc(1, sizeof(*h));
	struct evhttp_bound_socket *bound;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?", portstr[8];
	unsigned port = 0;
	char *addr = NULL;

	h->h_cp = cp;
	if (http_parse_listen(cp->cp_conf.cf_listen, &addr, &port, err) < 0)
		goto fail;
	if ((h->h_ssl = http_tls_ctx(cp->cp_conf.cf_dir, err)) == NULL)
		goto fail;
	if ((h->h_http = evhttp_new(cp->cp_base)) == NULL) {
		error_set(err, CARVE_EINTERNAL, "evhttp_new failed");
		goto fail;
	}
	evhttp_set_bevcb(h->h_http, http_bevcb, h);
	evhttp_set_gencb(h->h_http, http_dispatch, h);
	evhttp_set_allowed_methods(h->h_http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	evhttp_set_max_body_size(h->h_http, PROTO_REQUEST_MAX);
	evhttp_set_max_headers_size(h->h_http, HTTP_MAX_HEADERS);
	evhttp_set_timeout(h->h_http, HTTP_IO_TIMEOUT_S);
	bound = evhttp_bind_socket_with_handle(h->h_http, addr, (ev_uint16_t)port);
	if (bound == NULL) {
		error_set(err, CARVE_EUNAVAIL, "cannot listen on %s: %s",
		    cp->cp_conf.cf_listen, strerror(errno));
		goto fail;
	}
	/*
	 * A long-poll answer is one small write; with Nagle on it waits for
	 * the client's delayed ACK (~40 ms). Accepted sockets inherit this.
	 */
	{
		int one = 1;
		(void)setsockopt(evhttp_bound_socket_get_fd(bound), IPPROTO_TCP,
		    TCP_NODELAY, &one, sizeof(one));
	}
	if (getsockname(evhttp_bound_socket_get_fd(bound),
	    (struct sockaddr *)&ss, &sslen) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
			port = ntohs(sin->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
			port = ntohs(sin6->sin6_port);
		}
	}
	snprintf(portstr, sizeof(portstr), "%u", port);
	log_kv(LOG_LVL_INFO, CP_COMP, "listening", "addr", host, "port",
	    portstr, NULL);
	free(addr);
	cp->cp_http = h;
	return 0;
fail:
	free(addr);
	cp_http_free(h);
	return -1;
}

void
cp_http_free(struct cp_http *h)
{
	if (h == NULL)
		return;
	if (h->h_http != NULL)
		evhttp_free(h->h_http);
	SSL_CTX_free(h->h_ssl);
	free(h);
}
