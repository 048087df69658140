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
 * curl_global_init must have been called (carved's main does) before
 * http_new.
 */
#ifndef CARVE_HTTP_H
#define CARVE_HTTP_H

#include <stddef.h>

#include <uv.h>

#include "common/error.h"

#define HTTP_BODY_MAX_DEFAULT (4 * 1024 * 1024)

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
 *    http_cancel and http_close. code is 0, body NULL.
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
