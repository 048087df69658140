/*
 * HTTPS on the loop: see http.h.
 *
 * The shape is curl's multi-uv.c: curl asks for sockets to be watched
 * (http_on_socket -> one struct http_sock with a uv_poll_t per socket) and
 * for a timeout (http_on_timer -> the one uv_timer_t); libuv's callbacks
 * call curl_multi_socket_action, and finished transfers are collected with
 * curl_multi_info_read. User callbacks are only ever called from there (or
 * from http_cancel/http_close), never from inside a curl callback, so they
 * may start and cancel requests freely.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <curl/curl.h>

#include "agent/http.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

#define HTTP_CONNECT_TIMEOUT_MS 10000
#define HTTP_TIMEOUT_MS         30000

struct http_sock {
	uv_poll_t hs_poll;
	curl_socket_t hs_fd;
	struct http *hs_http;
	LIST_ENTRY(http_sock) hs_link;
};

struct http_request {
	struct http *r_http;
	CURL *r_easy;
	struct curl_slist *r_headers;
	char *r_body;                 /* request body (curl reads it in place) */
	char *r_buf;                  /* response body */
	size_t r_len, r_cap, r_max;
	bool r_too_big;
	bool r_aborted;               /* the sink refused a chunk */
	http_sink_cb r_sink;
	void *r_sink_arg;
	char r_method[8];
	char *r_url;
	char r_errbuf[CURL_ERROR_SIZE];
	http_done_cb r_cb;
	void *r_arg;
	TAILQ_ENTRY(http_request) r_link;
};

struct http {
	uv_loop_t *h_loop;
	CURLM *h_multi;
	uv_timer_t h_timer;
	LIST_HEAD(, http_sock) h_socks;
	TAILQ_HEAD(, http_request) h_reqs;
	unsigned h_nreqs;
	bool h_closing;
	unsigned h_pending_closes;
	void (*h_close_cb)(void *);
	void *h_close_arg;
};

static void http_check_done(struct http *h);

/* ---- sockets and the timer (curl -> libuv) ---- */

/* A handle finished closing: the last one after http_close frees h. */
static void
http_handle_gone(struct http *h)
{
	void (*cb)(void *);
	void *arg;

	if (--h->h_pending_closes > 0 || !h->h_closing)
		return;
	cb = h->h_close_cb;
	arg = h->h_close_arg;
	free(h);
	if (cb != NULL)
		cb(arg);
}

static void
http_sock_closed(uv_handle_t *hd)
{
	struct http_sock *hs = hd->data;
	struct http *h = hs->hs_http;

	free(hs);
	http_handle_gone(h);
}

static void
http_sock_close(struct http_sock *hs)
{
	struct http *h = hs->hs_http;

	LIST_REMOVE(hs, hs_link);
	h->h_pending_closes++;
	uv_close((uv_handle_t *)&hs->hs_poll, http_sock_closed);
}

static void
http_on_poll(uv_poll_t *p, int status, int events)
{
	struct http_sock *hs = p->data;
	struct http *h = hs->hs_http;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	else {
		if (events & UV_READABLE)
			flags |= CURL_CSELECT_IN;
		if (events & UV_WRITABLE)
			flags |= CURL_CSELECT_OUT;
	}
	curl_multi_socket_action(h->h_multi, hs->hs_fd, flags, &running);
	http_check_done(h);
}

static int
http_on_socket(CURL *easy, curl_socket_t s, int what, void *userp,
    void *socketp)
{
	struct http *h = userp;
	struct http_sock *hs = socketp;
	int events = 0, rc;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (hs != NULL) {
			curl_multi_assign(h->h_multi, s, NULL);
			http_sock_close(hs);
		}
		return 0;
	}
	if (hs == NULL) {
		hs = xcalloc(1, sizeof(*hs));
		hs->hs_fd = s;
		hs->hs_http = h;
		hs->hs_poll.data = hs;
		if ((rc = uv_poll_init_socket(h->h_loop, &hs->hs_poll, s)) != 0) {
			log_error("http", "cannot watch socket %d: %s", (int)s,
			    uv_strerror(rc));
			free(hs);
			return -1;    /* curl fails the transfers on it */
		}
		LIST_INSERT_HEAD(&h->h_socks, hs, hs_link);
		curl_multi_assign(h->h_multi, s, hs);
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= UV_READABLE;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= UV_WRITABLE;
	uv_poll_start(&hs->hs_poll, events, http_on_poll);
	return 0;
}

static void
http_on_timeout(uv_timer_t *t)
{
	struct http *h = t->data;
	int running;

	curl_multi_socket_action(h->h_multi, CURL_SOCKET_TIMEOUT, 0, &running);
	http_check_done(h);
}

static int
http_on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct http *h = userp;

	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&h->h_timer);
	else    /* 0 = as soon as possible: the next loop iteration */
		uv_timer_start(&h->h_timer, http_on_timeout,
		    (uint64_t)timeout_ms, 0);
	return 0;
}

/* ---- requests ---- */

static size_t
http_on_write(char *ptr, size_t size, size_t n, void *arg)
{
	struct http_request *r = arg;
	size_t len = size * n, took;

	if (r->r_sink != NULL) {
		took = r->r_sink(ptr, len, r->r_sink_arg);
		if (took == HTTP_SINK_PAUSE)
			return CURL_WRITEFUNC_PAUSE;
		if (took != len) {
			r->r_aborted = true;
			return 0;
		}
		return len;
	}

	if (len > r->r_max - r->r_len) {
		/* Returning less than len makes curl abort the transfer. */
		r->r_too_big = true;
		return 0;
	}
	if (r->r_len + len + 1 > r->r_cap) {
		while (r->r_len + len + 1 > r->r_cap)
			r->r_cap = r->r_cap ? r->r_cap * 2 : 4096;
		r->r_buf = xrealloc(r->r_buf, r->r_cap);
	}
	memcpy(r->r_buf + r->r_len, ptr, len);
	r->r_len += len;
	r->r_buf[r->r_len] = '\0';
	return len;
}

static void
http_wipe(char *s)
{
#ifdef HAVE_EXPLICIT_BZERO
	explicit_bzero(s, strlen(s));
#else
	volatile char *v = s;
	while (*v)
		*v++ = 0;
#endif
}

static void
http_request_free(struct http_request *r)
{
	struct curl_slist *sl;

	if (r->r_easy != NULL)
		curl_easy_cleanup(r->r_easy);
	/* The Authorization header is a secret: gone from memory, not just
	 * freed. */
	for (sl = r->r_headers; sl != NULL; sl = sl->next)
		http_wipe(sl->data);
	curl_slist_free_all(r->r_headers);
	free(r->r_body);
	free(r->r_buf);
	free(r->r_url);
	free(r);
}

/* Take r out of the multi and the list; the caller answers and frees it. */
static void
http_detach(struct http_request *r)
{
	struct http *h = r->r_http;

	curl_multi_remove_handle(h->h_multi, r->r_easy);
	TAILQ_REMOVE(&h->h_reqs, r, r_link);
	h->h_nreqs--;
}

static int
http_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		return -EPROTO;
	default:
		return -EIO;
	}
}

/* The transfer is over: answer (exactly once) and free. */
static void
http_finish(struct http_request *r, CURLcode rc)
{
	struct carve_error err = { 0 };
	long code = 0;
	int status = 0;

	http_detach(r);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(r->r_easy, CURLINFO_RESPONSE_CODE, &code);
	} else if (r->r_aborted) {
		status = -ECONNABORTED;
		error_set(&err, CARVE_EINTERNAL, "%s %s: the receiver stopped the "
		    "transfer", r->r_method, r->r_url);
	} else if (r->r_sink != NULL && rc == CURLE_HTTP_RETURNED_ERROR) {
		curl_easy_getinfo(r->r_easy, CURLINFO_RESPONSE_CODE, &code);
		status = -EPROTO;
		error_set(&err, code == 404 || code == 410 ? CARVE_EINVAL :
		    CARVE_EUNAVAIL, "%s %s: HTTP status %ld", r->r_method,
		    r->r_url, code);
	} else if (r->r_sink != NULL && rc == CURLE_FILESIZE_EXCEEDED) {
		status = -EFBIG;
		error_set(&err, CARVE_ETOOBIG, "%s %s: larger than %llu bytes; "
		    "refused", r->r_method, r->r_url,
		    (unsigned long long)r->r_max);
	} else if (r->r_too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		status = -EFBIG;
		error_set(&err, CARVE_ETOOBIG, "%s %s: response body larger "
		    "than %zu bytes; refused", r->r_method, r->r_url, r->r_max);
	} else {
		status = http_errno(rc);
		/* curl's own words for this transfer, else the generic ones. */
		error_set(&err, CARVE_EUNAVAIL, "%s %s: %s", r->r_method,
		    r->r_url, r->r_errbuf[0] ? r->r_errbuf :
		    curl_easy_strerror(rc));
	}
	r->r_cb(status, code, status == 0 ? (r->r_buf ? r->r_buf : "") : NULL,
	    status == 0 ? r->r_len : 0, &err, r->r_arg);
	http_request_free(r);
}

static void
http_check_done(struct http *h)
{
	struct http_request *r;
	CURLMsg *msg;
	int pending;

	while (!h->h_closing &&
	    (msg = curl_multi_info_read(h->h_multi, &pending)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		r = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		http_finish(r, msg->data.result);
	}
}

#define HTTP_SETOPT(easy, opt, val) do { \
	if (curl_easy_setopt((easy), (opt), (val)) != CURLE_OK) { \
		error_set(err, CARVE_EINTERNAL, "curl: cannot set %s", #opt); \
		goto fail; \
	} \
} while (0)

int
http_request(struct http *h, const struct http_req_opts *o, http_done_cb cb,
    void *arg, struct http_request **out, struct carve_error *err)
{
	struct http_request *r;
	CURL *e;
	char *auth;
	struct curl_slist *sl;

	if (out != NULL)
		*out = NULL;
	if (h->h_closing)
		return error_set(err, CARVE_EUNAVAIL, "HTTP client is closing");
	if (o->ho_sink != NULL && o->ho_url != NULL &&
	    (strncmp(o->ho_url, "https://", 8) == 0 ||
	    strncmp(o->ho_url, "http://", 7) == 0))
		;   /* streaming: http or https */
	else if (o->ho_url == NULL || strncmp(o->ho_url, "https://", 8) != 0)
		return error_set(err, CARVE_EINVAL, "only https:// URLs are "
		    "allowed, got \"%s\"", o->ho_url ? o->ho_url : "(null)");
	if (o->ho_ca_file == NULL && o->ho_sink == NULL)
		return error_set(err, CARVE_EINVAL, "a CA file is required to "
		    "verify %s", o->ho_url);
	if ((o->ho_cert_file == NULL) != (o->ho_key_file == NULL))
		return error_set(err, CARVE_EINVAL, "a client certificate "
		    "needs its key and the other way round");
	if (o->ho_method == NULL || strlen(o->ho_method) >= 8)
		return error_set(err, CARVE_EINVAL, "bad HTTP method");

	r = xcalloc(1, sizeof(*r));
	r->r_http = h;
	r->r_cb = cb;
	r->r_arg = arg;
	r->r_max = o->ho_body_max ? o->ho_body_max : HTTP_BODY_MAX_DEFAULT;
	r->r_sink = o->ho_sink;
	r->r_sink_arg = o->ho_sink_arg;
	if (r->r_sink != NULL)
		r->r_max = o->ho_stream_max ? (size_t)o->ho_stream_max : 0;
	snprintf(r->r_method, sizeof(r->r_method), "%s", o->ho_method);
	r->r_url = xstrdup(o->ho_url);
	if ((r->r_easy = e = curl_easy_init()) == NULL) {
		error_set(err, CARVE_EINTERNAL, "curl_easy_init failed");
		goto fail;
	}
	HTTP_SETOPT(e, CURLOPT_PRIVATE, (char *)r);
	HTTP_SETOPT(e, CURLOPT_URL, r->r_url);
	if (r->r_sink != NULL) {
		HTTP_SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
		HTTP_SETOPT(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
		HTTP_SETOPT(e, CURLOPT_FOLLOWLOCATION, 1L);
		HTTP_SETOPT(e, CURLOPT_MAXREDIRS, (long)HTTP_STREAM_REDIRECTS);
		HTTP_SETOPT(e, CURLOPT_FAILONERROR, 1L);
	} else {
		HTTP_SETOPT(e, CURLOPT_PROTOCOLS_STR, "https");
		HTTP_SETOPT(e, CURLOPT_FOLLOWLOCATION, 0L);
	}
	HTTP_SETOPT(e, CURLOPT_NOSIGNAL, 1L);
	HTTP_SETOPT(e, CURLOPT_ERRORBUFFER, r->r_errbuf);
	HTTP_SETOPT(e, CURLOPT_WRITEFUNCTION, http_on_write);
	HTTP_SETOPT(e, CURLOPT_WRITEDATA, r);
	if (r->r_max > 0)
		HTTP_SETOPT(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->r_max);
	HTTP_SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(o->ho_connect_timeout_ms ?
	    o->ho_connect_timeout_ms : HTTP_CONNECT_TIMEOUT_MS));
	HTTP_SETOPT(e, CURLOPT_TIMEOUT_MS, (long)(o->ho_timeout_ms ?
	    o->ho_timeout_ms : HTTP_TIMEOUT_MS));
	HTTP_SETOPT(e, CURLOPT_USERAGENT, "carved/" PACKAGE_VERSION);
	/* Verification is never optional, and only the pinned CA counts:
	 * CAPATH is cleared because distributions compile in the system
	 * store's directory. */
	HTTP_SETOPT(e, CURLOPT_SSL_VERIFYPEER, 1L);
	HTTP_SETOPT(e, CURLOPT_SSL_VERIFYHOST, 2L);
	HTTP_SETOPT(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (o->ho_ca_file != NULL) {
		HTTP_SETOPT(e, CURLOPT_CAINFO, o->ho_ca_file);
		HTTP_SETOPT(e, CURLOPT_CAPATH, (char *)NULL);
	}
	if (o->ho_cert_file != NULL) {
		HTTP_SETOPT(e, CURLOPT_SSLCERT, o->ho_cert_file);
		HTTP_SETOPT(e, CURLOPT_SSLCERTTYPE, "PEM");
		HTTP_SETOPT(e, CURLOPT_SSLKEY, o->ho_key_file);
		HTTP_SETOPT(e, CURLOPT_SSLKEYTYPE, "PEM");
		/* A resumed TLS session keeps the identity it was made with,
		 * which may be a certificate replaced since. */
		HTTP_SETOPT(e, CURLOPT_SSL_SESSIONID_CACHE, 0L);
	}
	if (o->ho_fresh_since_ms > 0) {
		int64_t age = time_mono_ms() - o->ho_fresh_since_ms;

		/*
		 * curl compares a connection's age in whole seconds with ">":
		 * one second less than the time since the change keeps every
		 * older connection out. Within two seconds of the change that
		 * would be 0 (no limit): then this request opens its own.
		 */
		if (age < 2000)
			HTTP_SETOPT(e, CURLOPT_FRESH_CONNECT, 1L);
		else
			HTTP_SETOPT(e, CURLOPT_MAXLIFETIME_CONN,
			    (long)(age / 1000 - 1));
	}

	sl = curl_slist_append(NULL, r->r_sink != NULL ? "Accept: */*" :
	    "Accept: application/json");
	/* No "Expect: 100-continue" round trip before a body. */
	if (sl != NULL)
		sl = curl_slist_append(r->r_headers = sl, "Expect:");
	if (sl != NULL && o->ho_body != NULL)
		sl = curl_slist_append(r->r_headers = sl,
		    "Content-Type: application/json");
	if (sl != NULL && o->ho_bearer != NULL) {
		auth = xasprintf("Authorization: Bearer %s", o->ho_bearer);
		sl = curl_slist_append(r->r_headers = sl, auth);
		xfree_secret(auth);
	}
	if (sl == NULL) {
		error_set(err, CARVE_EINTERNAL, "curl: out of memory");
		goto fail;
	}
	r->r_headers = sl;
	HTTP_SETOPT(e, CURLOPT_HTTPHEADER, r->r_headers);

	if (strcmp(o->ho_method, "GET") == 0) {
		HTTP_SETOPT(e, CURLOPT_HTTPGET, 1L);
	} else {
		r->r_body = xstrdup(o->ho_body != NULL ? o->ho_body : "");
		HTTP_SETOPT(e, CURLOPT_POSTFIELDS, r->r_body);
		HTTP_SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)strlen(r->r_body));
		if (strcmp(o->ho_method, "POST") != 0)
			HTTP_SETOPT(e, CURLOPT_CUSTOMREQUEST, r->r_method);
	}

	if (curl_multi_add_handle(h->h_multi, e) != CURLM_OK) {
		error_set(err, CARVE_EINTERNAL, "curl: cannot add the transfer");
		goto fail;
	}
	TAILQ_INSERT_TAIL(&h->h_reqs, r, r_link);
	h->h_nreqs++;
	if (out != NULL)
		*out = r;
	return 0;
fail:
	http_request_free(r);
	return -1;
}

void
http_resume(struct http_request *r)
{
	curl_easy_pause(r->r_easy, CURLPAUSE_CONT);
}

int64_t
http_content_length(struct http_request *r)
{
	curl_off_t len = -1;

	if (curl_easy_getinfo(r->r_easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
	    &len) != CURLE_OK)
		return -1;
	return (int64_t)len;
}

void
http_cancel(struct http_request *r)
{
	struct carve_error err = { 0 };

	http_detach(r);
	error_set(&err, CARVE_EUNAVAIL, "%s %s: cancelled", r->r_method,
	    r->r_url);
	r->r_cb(-ECANCELED, 0, NULL, 0, &err, r->r_arg);
	http_request_free(r);
}

unsigned
http_active(const struct http *h)
{
	return h->h_nreqs;
}

/* ---- life cycle ---- */

struct http *
http_new(uv_loop_t *loop)
{
	struct http *h = xcalloc(1, sizeof(*h));

	h->h_loop = loop;
	LIST_INIT(&h->h_socks);
	TAILQ_INIT(&h->h_reqs);
	uv_timer_init(loop, &h->h_timer);
	h->h_timer.data = h;
	if ((h->h_multi = curl_multi_init()) == NULL) {
		log_error("http", "curl_multi_init failed: out of memory");
		abort();
	}
	curl_multi_setopt(h->h_multi, CURLMOPT_SOCKETFUNCTION, http_on_socket);
	curl_multi_setopt(h->h_multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->h_multi, CURLMOPT_TIMERFUNCTION, http_on_timer);
	curl_multi_setopt(h->h_multi, CURLMOPT_TIMERDATA, h);
	return h;
}

static void
http_timer_closed(uv_handle_t *hd)
{
	http_handle_gone(hd->data);
}

void
http_close(struct http *h, void (*cb)(void *arg), void *arg)
{
	struct http_request *r;
	struct http_sock *hs;

	if (h->h_closing)
		return;
	/* Set first: the callbacks of the cancelled requests may try to start
	 * new ones, which are refused, so this loop ends. */
	h->h_closing = true;
	h->h_close_cb = cb;
	h->h_close_arg = arg;
	while ((r = TAILQ_FIRST(&h->h_reqs)) != NULL)
		http_cancel(r);
	h->h_pending_closes++;      /* the timer */
	/* Stop watching before curl closes its cached connections' sockets. */
	LIST_FOREACH(hs, &h->h_socks, hs_link)
		uv_poll_stop(&hs->hs_poll);
	curl_multi_cleanup(h->h_multi);
	h->h_multi = NULL;
	while ((hs = LIST_FIRST(&h->h_socks)) != NULL)
		http_sock_close(hs);
	uv_close((uv_handle_t *)&h->h_timer, http_timer_closed);
}
