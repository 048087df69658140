/*
 * HTTPS on the loop, against a small TLS server on a thread of the test
 * (OpenSSL, certificates made per test): requests carry what they should
 * (method, body, bearer token, client certificate), every callback runs
 * exactly once (answer, error, timeout, oversized body, cancel, close), and
 * TLS is refused with the wrong CA or the wrong server name. The loop must
 * close cleanly afterwards: no handle left behind.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "tests/unit/tls_fixture.h"

#include "agent/http.h"
#include "common/timeutil.h"

enum srv_mode {
	SRV_REPLY,        /* answer reply_code with reply_body */
	SRV_BIG_LEN,      /* a 5 MiB body announced by Content-Length */
	SRV_BIG_STREAM,   /* an endless body without a length */
	SRV_SILENT,       /* accept, handshake, never answer */
};

struct srv {
	SSL_CTX *ctx;
	int lfd;
	int port;
	pthread_t th;
	enum srv_mode mode;
	int reply_code;
	const char *reply_body;
	atomic_int stop;
	atomic_int nreq;           /* requests read */
	char req[16384];           /* the last request, as received */
	char peer_cn[80];          /* the client certificate's CN, if any */
};

struct fix {
	char dir[PATH_MAX];
	char ca[PATH_MAX + 16], other_ca[PATH_MAX + 16];
	char client_crt[PATH_MAX + 16], client_key[PATH_MAX + 16];
	char srv_crt[PATH_MAX + 16], srv_key[PATH_MAX + 16];
	char url[128];
	uv_loop_t loop;
	struct srv srv;
};

/* What a request's callback saw. */
struct done {
	int calls;
	int status;
	long code;
	char body[256];
	size_t len;
	struct carve_error err;
	int64_t at_ms;
};

/* ---------------------------------------------------------------- server */

static bool
srv_read_request(SSL *ssl, struct srv *s)
{
	size_t n = 0, want = 0;
	char *end, *cl;
	int r;

	for (;;) {
		if (n >= sizeof(s->req) - 1)
			return false;
		r = SSL_read(ssl, s->req + n, (int)(sizeof(s->req) - 1 - n));
		if (r <= 0)
			return false;
		n += (size_t)r;
		s->req[n] = '\0';
		if ((end = strstr(s->req, "\r\n\r\n")) == NULL)
			continue;
		if (want == 0) {
			want = (size_t)(end - s->req) + 4;
			cl = strcasestr(s->req, "\r\ncontent-length:");
			if (cl != NULL && cl < end)
				want += strtoul(cl + 17, NULL, 10);
		}
		if (n >= want)
			return true;
	}
}

static void
srv_write(SSL *ssl, const char *s, size_t len)
{
	(void)SSL_write(ssl, s, (int)len);
}

static void
srv_serve(struct srv *s, int fd)
{
	SSL *ssl = SSL_new(s->ctx);
	X509 *peer;
	char buf[512];
	static char chunk[65536];
	struct pollfd pfd;

	SSL_set_fd(ssl, fd);
	if (SSL_accept(ssl) != 1)
		goto out;
	if ((peer = SSL_get1_peer_certificate(ssl)) != NULL) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer),
		    NID_commonName, s->peer_cn, sizeof(s->peer_cn));
		X509_free(peer);
	}
	if (!srv_read_request(ssl, s))
		goto out;
	atomic_fetch_add(&s->nreq, 1);
	switch (s->mode) {
	case SRV_REPLY:
		snprintf(buf, sizeof(buf), "HTTP/1.1 %d X\r\nContent-Type: "
		    "application/json\r\nContent-Length: %zu\r\nConnection: "
		    "close\r\n\r\n", s->reply_code, strlen(s->reply_body));
		srv_write(ssl, buf, strlen(buf));
		srv_write(ssl, s->reply_body, strlen(s->reply_body));
		break;
	case SRV_BIG_LEN:
		snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nContent-Length: "
		    "%d\r\n\r\n", 5 * 1024 * 1024);
		srv_write(ssl, buf, strlen(buf));
		memset(chunk, 'x', sizeof(chunk));
		for (int i = 0; i < 80 && !atomic_load(&s->stop); i++)
			if (SSL_write(ssl, chunk, sizeof(chunk)) <= 0)
				break;
		break;
	case SRV_BIG_STREAM:
		snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nConnection: "
		    "close\r\n\r\n");
		srv_write(ssl, buf, strlen(buf));
		memset(chunk, 'y', sizeof(chunk));
		while (!atomic_load(&s->stop))
			if (SSL_write(ssl, chunk, sizeof(chunk)) <= 0)
				break;
		break;
	case SRV_SILENT:
		/* Until the client gives up or the test ends. */
		pfd.fd = fd;
		pfd.events = POLLIN;
		while (!atomic_load(&s->stop)) {
			if (poll(&pfd, 1, 50) > 0 &&
			    SSL_read(ssl, buf, sizeof(buf)) <= 0)
				break;
		}
		break;
	}
	SSL_shutdown(ssl);
out:
	SSL_free(ssl);
	ERR_clear_error();
	close(fd);
}

static void *
srv_main(void *arg)
{
	struct srv *s = arg;
	struct pollfd pfd = { .fd = s->lfd, .events = POLLIN };
	int fd;

	while (!atomic_load(&s->stop)) {
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		if ((fd = accept(s->lfd, NULL, NULL)) < 0)
			continue;
		srv_serve(s, fd);
	}
	return NULL;
}

/* Listen on 127.0.0.1 with cert/key; client certificates (optional) must
 * chain to ca. */
static void
srv_start(struct fix *f, const char *cert, const char *key, enum srv_mode mode)
{
	struct srv *s = &f->srv;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int one = 1;

	memset(s, 0, sizeof(*s));
	s->mode = mode;
	s->reply_code = 200;
	s->reply_body = "{\"ok\":true}";
	s->ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(s->ctx);
	assert_int_equal(SSL_CTX_use_certificate_file(s->ctx, cert,
	    SSL_FILETYPE_PEM), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(s->ctx, key,
	    SSL_FILETYPE_PEM), 1);
	assert_int_equal(SSL_CTX_load_verify_file(s->ctx, f->ca), 1);
	SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER, NULL);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->lfd, 16), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sa, &len), 0);
	s->port = ntohs(sa.sin_port);
	snprintf(f->url, sizeof(f->url), "https://127.0.0.1:%d", s->port);
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void
srv_stop(struct fix *f)
{
	struct srv *s = &f->srv;

	if (s->ctx == NULL)
		return;
	atomic_store(&s->stop, 1);
	assert_int_equal(pthread_join(s->th, NULL), 0);
	close(s->lfd);
	SSL_CTX_free(s->ctx);
	s->ctx = NULL;
}

/* ---------------------------------------------------------------- fixture */

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	EVP_PKEY *ca_key = tt_key(), *other_key = tt_key(), *ck = tt_key(),
	    *sk = tt_key();
	X509 *ca = tt_ca(ca_key, "carve test CA"),
	    *other = tt_ca(other_key, "another CA");
	time_t now = time(NULL);
	X509 *client = tt_cert(ck, "node-1", NULL, ca, ca_key, false,
	    now - 60, now + 86400);
	X509 *server = tt_cert(sk, "carve-cp", "IP:127.0.0.1,DNS:localhost",
	    ca, ca_key, false, now - 60, now + 86400);

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/test_http.XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->ca, sizeof(f->ca), "%s/ca.crt", f->dir);
	snprintf(f->other_ca, sizeof(f->other_ca), "%s/other.crt", f->dir);
	snprintf(f->client_crt, sizeof(f->client_crt), "%s/client.crt", f->dir);
	snprintf(f->client_key, sizeof(f->client_key), "%s/client.key", f->dir);
	snprintf(f->srv_crt, sizeof(f->srv_crt), "%s/server.crt", f->dir);
	snprintf(f->srv_key, sizeof(f->srv_key), "%s/server.key", f->dir);
	tt_write_cert(f->ca, ca);
	tt_write_cert(f->other_ca, other);
	tt_write_cert(f->client_crt, client);
	tt_write_key(f->client_key, ck);
	tt_write_cert(f->srv_crt, server);
	tt_write_key(f->srv_key, sk);
	X509_free(ca);
	X509_free(other);
	X509_free(client);
	X509_free(server);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);
	EVP_PKEY_free(ck);
	EVP_PKEY_free(sk);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;
	const char *const files[] = { f->ca, f->other_ca, f->client_crt,
	    f->client_key, f->srv_crt, f->srv_key };

	srv_stop(f);
	/* Every handle is closed: nothing is left on the loop. */
	assert_int_equal(uv_loop_close(&f->loop), 0);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(files[i]);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

static void
on_done(int status, long code, const char *body, size_t len,
    const struct carve_error *err, void *arg)
{
	struct done *d = arg;

	d->calls++;
	d->status = status;
	d->code = code;
	d->len = len;
	d->err = *err;
	d->at_ms = time_mono_ms();
	if (status == 0) {
		assert_non_null(body);
		assert_int_equal(strlen(body), len);   /* NUL-terminated */
		snprintf(d->body, sizeof(d->body), "%s", body);
	} else {
		assert_null(body);
		assert_true(error_isset(err));
	}
}

static void
on_closed(void *arg)
{
	(*(int *)arg)++;
}

/* Close h and run the loop until everything is closed. */
static void
close_http(struct fix *f, struct http *h)
{
	int closed = 0;

	http_close(h, on_closed, &closed);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(closed, 1);
}

static struct http_req_opts
opts(struct fix *f, const char *method, const char *path)
{
	static char url[256];
	struct http_req_opts o;

	snprintf(url, sizeof(url), "%s%s", f->url, path);
	memset(&o, 0, sizeof(o));
	o.ho_method = method;
	o.ho_url = url;
	o.ho_ca_file = f->ca;
	return o;
}

/* One request, run to its end. */
static void
run_one(struct fix *f, const struct http_req_opts *o, struct done *d)
{
	struct carve_error err = { 0 };
	struct http *h = http_new(&f->loop);

	memset(d, 0, sizeof(*d));
	if (http_request(h, o, on_done, d, NULL, &err) != 0)
		fail_msg("http_request: %s", err.message);
	assert_int_equal(http_active(h), 1);
	while (d->calls == 0)
		uv_run(&f->loop, UV_RUN_ONCE);
	assert_int_equal(http_active(h), 0);
	close_http(f, h);
	assert_int_equal(d->calls, 1);
}

/* ---------------------------------------------------------------- tests */

static void
test_get(void **state)
{
	struct fix *f = *state;
	struct http_req_opts o;
	struct done d;

	srv_start(f, f->srv_crt, f->srv_key, SRV_REPLY);
	o = opts(f, "GET", "/v1/nodes/n1/commands?cursor=3&wait_s=30");
	run_one(f, &o, &d);
	assert_int_equal(d.status, 0);
	assert_int_equal(d.code, 200);
	assert_string_equal(d.body, "{\"ok\":true}");
	assert_non_null(strstr(f->srv.req,
	    "GET /v1/nodes/n1/commands?cursor=3&wait_s=30 HTTP/1.1\r\n"));
	assert_non_null(strcasestr(f->srv.req, "\r\nAccept: application/json"));
	assert_null(strcasestr(f->srv.req, "Authorization"));
	assert_string_equal(f->srv.peer_cn, "");   /* no client certificate */
}

static void
test_body_and_bearer(void **state)
{
	struct fix *f = *state;
	struct http_req_opts o;
	struct done d;

	srv_start(f, f->srv_crt, f->srv_key, SRV_REPLY);
	o = opts(f, "POST", "/v1/enroll");
	o.ho_body = "{\"node\":\"n1\"}";
	o.ho_bearer = "s3cret-token";
	run_one(f, &o, &d);
	assert_int_equal(d.code, 200);
	assert_non_null(strstr(f->srv.req, "POST /v1/enroll HTTP/1.1\r\n"));
	assert_non_null(strcasestr(f->srv.req,
	    "\r\nAuthorization: Bearer s3cret-token\r\n"));
	assert_non_null(strcasestr(f->srv.req,
	    "\r\nContent-Type: application/json\r\n"));
	assert_non_null(strstr(f->srv.req, "\r\n\r\n{\"node\":\"n1\"}"));
	assert_null(strcasestr(f->srv.req, "Expect:"));

	o = opts(f, "PUT", "/v1/nodes/n1");
	o.ho_body = "{\"x\":1}";
	run_one(f, &o, &d);
	assert_int_equal(d.code, 200);
	assert_non_null(strstr(f->srv.req, "PUT /v1/nodes/n1 HTTP/1.1\r\n"));
	assert_non_null(strstr(f->srv.req, "\r\n\r\n{\"x\":1}"));
}

/* An error status is an answer like any other: status 0, the code, the body. */
static void
test_http_error_status(void **state)
{
	struct fix *f = *state;
	struct http_req_opts o;
	struct done d;

	srv_start(f, f->srv_crt, f->srv_key, SRV_REPLY);
	f->srv.reply_code = 404;
	f->srv.reply_body = "{\"error\":{\"code\":\"not_found\",\"message\":"
	    "\"no\"}}";
	o = opts(f, "GET", "/v1/x");
	run_one(f, &o, &d);
	assert_int_equal(d.status, 0);
	assert_int_equal(d.code, 404);
	assert_non_null(strstr(d.body, "not_found"));
}

static void
test_client_certificate(void **state)
{
	struct fix *f = *state;
	struct http_req_opts o;
	struct done d;

	srv_start(f, f->srv_crt, f->srv_key, SRV_REPLY);
	o = opts(f, "GET", "/v1/x");
	o.ho_cert_file = f->client_crt;
	o.ho_key_file = f->client_key;
	run_one(f, &o, &d);
	assert_int_equal(d.code, 200);
	assert_string_equal(f->srv.peer_cn, "node-1");
}

static void
test_body_cap(void **state)
{
	struct fix *f = *state;
	struct http_req_opts o;
	struct done d;

	/* Announced too big: refused from the headers. */
	srv_start(f, f->srv_crt, f->srv_key, SRV_BIG_LEN);
	o = opts(f, "GET", "/big");
	run_one(f, &o, &d);
	assert_int_equal(d.status, -EFBIG);
	assert_int_equal(d.err.code, CARVE_ETOOBIG);
	assert_non_null(strstr(d.err.message, "larger than 4194304 bytes"));
	srv_stop(f);

	/* No length, more than the cap: cut off while reading. */
	srv_start(f, f->srv_crt, f->srv_key, SRV_BIG_STREAM);
	o = opts(f, "GET", "/stream");
	o.ho_body_max = 100000;
	run_one(f, &o, &d);
	assert_int_equal(d.status, -EFBIG);
	assert_int_equal(d.err.code, CARVE_ETOOBIG);
	assert_non_null(strstr(d.err.message, "larger than 100000 bytes"));
}

/* TLS is never optional: another CA, or a certificate for another name,
 * and nothing is sent. */
static void
test_tls_refused(void **state)
{
	struct fix *f = *state;
	struct carve_error err = { 0 };
	struct http_req_opts o;
	struct done d;
	struct http *h;
	EVP_PKEY *ca_key, *k;
	X509 *ca, *x;
	char crt[PATH_MAX + 32], key[PATH_MAX + 32];
	time_t now = time(NULL);

	srv_start(f, f->srv_crt, f->srv_key, SRV_REPLY);
	o = opts(f, "GET", "/v1/x");
	o.ho_ca_file = f->other_ca;
	run_one(f, &o, &d);
	assert_true(d.status < 0);
	assert_int_equal(d.err.code, CARVE_EUNAVAIL);
	assert_non_null(strcasestr(d.err.message, "certificate"));
	srv_stop(f);

	/* Signed by our CA, but for another name. */
	snprintf(crt, sizeof(crt), "%s/wrong.crt", f->dir);
	snprintf(key, sizeof(key), "%s/wrong.key", f->dir);
	/* A fresh CA, written over ca.crt, that the client trusts. */
	ca_key = tt_key();
	ca = tt_ca(ca_key, "carve test CA 2");
	k = tt_key();
	x = tt_cert(k, "elsewhere", "DNS:other.example", ca, ca_key, false,
	    now - 60, now + 86400);
	tt_write_cert(f->ca, ca);
	tt_write_cert(crt, x);
	tt_write_key(key, k);
	srv_start(f, crt, key, SRV_REPLY);
	o = opts(f, "GET", "/v1/x");
	run_one(f, &o, &d);
	assert_true(d.status < 0);
	assert_int_equal(d.err.code, CARVE_EUNAVAIL);
	assert_non_null(strstr(d.err.message, "127.0.0.1"));
	assert_int_equal(atomic_load(&f->srv.nreq), 0);

	/* Plain HTTP is refused before anything happens. */
	h = http_new(&f->loop);
	o.ho_url = "http://127.0.0.1:1/v1/x";
	memset(&d, 0, sizeof(d));
	assert_int_equal(http_request(h, &o, on_done, &d, NULL, &err), -1);
	assert_int_equal(err.code, CARVE_EINVAL);
	o.ho_url = f->url;
	o.ho_ca_file = NULL;
	error_clear(&err);
	assert_int_equal(http_request(h, &o, on_done, &d, NULL, &err), -1);
	close_http(f, h);
	assert_int_equal(d.calls, 0);

	unlink(crt);
	unlink(key);
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(k);
	EVP_PKEY_free(ca_key);
}

static void
test_timeout_and_refused(void **state)
{
	struct fix *f = *state;
	struct http_req_opts o;
	struct done d;
	int64_t t0;
	char url[64];

	srv_start(f, f->srv_crt, f->srv_key, SRV_SILENT);
	o = opts(f, "GET", "/v1/slow");
	o.ho_timeout_ms = 300;
	t0 = time_mono_ms();
	run_one(f, &o, &d);
	assert_int_equal(d.status, -ETIMEDOUT);
	assert_int_equal(d.err.code, CARVE_EUNAVAIL);
	assert_true(d.at_ms - t0 >= 290);
	assert_true(d.at_ms - t0 < 3000);
	srv_stop(f);

	/* Nobody listening there any more. */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/v1/x", f->srv.port);
	o.ho_url = url;
	o.ho_timeout_ms = 0;
	run_one(f, &o, &d);
	assert_int_equal(d.status, -ECONNREFUSED);
	assert_int_equal(d.err.code, CARVE_EUNAVAIL);
}

struct cancel_ctx {
	struct http *h;
	struct http_request *r;
	uv_timer_t t;
	int closed;
};

static void
cancel_later(uv_timer_t *t)
{
	struct cancel_ctx *c = t->data;

	http_cancel(c->r);
	http_close(c->h, on_closed, &c->closed);
	uv_close((uv_handle_t *)t, NULL);
}

/* Cancel one in-flight request, then close with another still in flight:
 * each callback runs once, with -ECANCELED, and every handle closes. */
static void
test_cancel_and_close(void **state)
{
	struct fix *f = *state;
	struct carve_error err = { 0 };
	struct cancel_ctx c;
	struct http_req_opts o;
	struct done d1 = { 0 }, d2 = { 0 };

	srv_start(f, f->srv_crt, f->srv_key, SRV_SILENT);
	memset(&c, 0, sizeof(c));
	c.h = http_new(&f->loop);
	o = opts(f, "GET", "/v1/a");
	assert_int_equal(http_request(c.h, &o, on_done, &d1, &c.r, &err), 0);
	o = opts(f, "POST", "/v1/b");
	o.ho_body = "{}";
	assert_int_equal(http_request(c.h, &o, on_done, &d2, NULL, &err), 0);
	uv_timer_init(&f->loop, &c.t);
	c.t.data = &c;
	uv_timer_start(&c.t, cancel_later, 200, 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(c.closed, 1);
	assert_int_equal(d1.calls, 1);
	assert_int_equal(d1.status, -ECANCELED);
	assert_int_equal(d2.calls, 1);
	assert_int_equal(d2.status, -ECANCELED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_body_and_bearer, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_http_error_status, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_client_certificate, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_body_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout_and_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancel_and_close, setup,
		    teardown),
	};
	int rc;

	cmocka_set_message_output(CM_OUTPUT_TAP);
	/* The test server writes to clients that hang up. */
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
