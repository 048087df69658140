/*
 * HTTPS requests on the loop: libcurl's multi interface driven by libuv
 * (curl's docs/examples/multi-uv.c, with the state in struct http instead
 * of globals). curl tells which sockets to watch (CURLMOPT_SOCKETFUNCTION:
 * one uv_poll_t each) and when to time out (CURLMOPT_TIMERFUNCTION: one
 * uv_timer_t); libuv calls curl_multi_socket_action back. Nothing blocks
 * the loop: connecting, TLS and name resolution all progress through those
 * callbacks.
 *
 * TLS is always verified (peer and host name) against a pinned CA file,
 * never the system store; TLS 1.2 is the minimum; only https:// URLs are
 * spoken and redirects are not followed. Response bodies are capped.
 *
 * The streaming mode (ho_sink set) is for downloads whose integrity is
 * checked by their receiver (images, against a sha256): the body goes to
 * the sink chunk by chunk instead of a buffer, http:// is allowed too,
 * without ho_ca_file the system's CA store verifies https, up to
 * HTTP_STREAM_REDIRECTS redirects (http/https only) are followed, and an
 * HTTP error status (>= 400) ends the transfer as a failure.
 *
 * curl_global_init must have been called (carved's main does) before
 * http_new.
 */
#ifndef CARVE_HTTP_H
#define CARVE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/error.h"

#define HTTP_BODY_MAX_DEFAULT (4 * 1024 * 1024)
#define HTTP_STREAM_REDIRECTS 5

/*
 * A sink takes len bytes of body (on the loop thread, from inside curl):
 * returns len when it took them, HTTP_SINK_PAUSE to have the same bytes
 * offered again after http_resume (it keeps nothing of them), or anything
 * else to abort the transfer (the callback then reports -ECONNABORTED; the
 * sink knows why).
 */
#define HTTP_SINK_PAUSE ((size_t)-1)
typedef size_t (*http_sink_cb)(const char *buf, size_t len, void *arg);

struct http;
struct http_request;

/*
 * Called exactly once per request, on the loop thread:
 *  - status 0: an HTTP response arrived; code is its status (any, 200 or
 *    not), body its body (NUL-terminated, len bytes; borrowed for the call);
 *    err is clear.
 *  - status < 0 (a negative errno): no response. err says why in words a
 *    person can act on: CARVE_EUNAVAIL for connection, TLS and timeout
 *    failures, CARVE_ETOOBIG for a body above the cap, -ECANCELED for
 *    http_cancel and http_close. code is 0, body NULL. In streaming mode
 *    an HTTP error status is status -EPROTO with code set; a transfer the
 *    sink aborted is -ECONNABORTED.
 * The request is gone when the callback runs; do not cancel it from there.
 */
typedef void (*http_done_cb)(int status, long code, const char *body,
    size_t len, const struct carve_error *err, void *arg);

struct http_req_opts {
	const char *ho_method;        /* "GET", "POST", "PUT" */
	const char *ho_url;           /* https:// only */
	const char *ho_body;          /* JSON, copied; NULL for none */
	const char *ho_bearer;        /* Authorization: Bearer (copied, wiped
	                               * after the transfer); NULL for none */
	const char *ho_ca_file;       /* required: the pinned CA bundle */
	const char *ho_cert_file;     /* client certificate (PEM), or NULL */
	const char *ho_key_file;      /* its key (PEM), with ho_cert_file */
	/*
	 * Connections opened before this time (time_mono_ms) are not reused:
	 * after a new client certificate is installed, connections made with
	 * the old one would still present it. 0: any connection may be
	 * reused.
	 */
	int64_t ho_fresh_since_ms;
	unsigned ho_connect_timeout_ms;   /* 0: 10 s */
	unsigned ho_timeout_ms;           /* whole transfer; 0: 30 s */
	size_t ho_body_max;               /* 0: HTTP_BODY_MAX_DEFAULT */
	/* Streaming mode (see above): body to the sink, no body_max cap
	 * but ho_stream_max bytes (0: no cap); the done callback gets no
	 * body. */
	http_sink_cb ho_sink;
	void *ho_sink_arg;
	uint64_t ho_stream_max;
};

struct http *http_new(uv_loop_t *loop);

/*
 * Start a request. On success *out (may be NULL) is a handle valid until
 * the callback runs. On failure (bad options) returns -1 with err set and
 * cb is never called.
 */
int http_request(struct http *h, const struct http_req_opts *o,
    http_done_cb cb, void *arg, struct http_request **out,
    struct carve_error *err);

/* A paused streaming request (its sink returned HTTP_SINK_PAUSE) goes on;
 * the sink may be called from inside this call. */
void http_resume(struct http_request *r);

/* The body's announced length (Content-Length), or -1 when unknown. */
int64_t http_content_length(struct http_request *r);

/* Abort a request: its callback runs now, with -ECANCELED. */
void http_cancel(struct http_request *r);

/* Requests in flight. */
unsigned http_active(const struct http *h);

/*
 * Cancel every request (callbacks run with -ECANCELED before this returns),
 * release curl and close the libuv handles; cb (may be NULL) runs on the
 * loop when the last handle is closed, after which h is freed. No other
 * call may follow.
 */
void http_close(struct http *h, void (*cb)(void *arg), void *arg);

#endif
