/*
 * The Prometheus endpoint: a deliberately tiny HTTP/1.0 responder on the
 * loop (metrics.h). Values are read from the agent's own state at scrape
 * time, so nothing is counted twice and a scrape costs one pass over the VMs.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/engine.h"
#include "agent/images.h"
#include "agent/journal.h"
#include "agent/metrics.h"
#include "agent/poller.h"
#include "agent/virt.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

#define METRICS_MAX_REQUEST 8192

struct metrics {
	struct agent *a;
	uv_tcp_t server;
	struct mconn *conns;          /* open scrapes */
	bool closing;
	unsigned pending_closes;
	void (*close_cb)(void *);
	void *close_arg;
};

struct mconn {
	struct metrics *m;
	struct mconn *next;
	bool closed;
	uv_tcp_t tcp;
	char buf[METRICS_MAX_REQUEST];
	size_t len;
	bool answered;
	uv_write_t wr;
	char *resp;
};

/* ---- rendering ---- */

struct mbuf {
	char *s;
	size_t len, cap;
};

static void __attribute__((format(printf, 2, 3)))
mb_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
		b->s = xrealloc(b->s, b->cap);
	}
}

char *
metrics_render(struct agent *a)
{
	struct mbuf b = { xmalloc(4096), 0, 4096 };
	unsigned by_state[VM_STATE_MAX] = { 0 };
	struct capacity cap;
	struct strmap_iter it;
	void *v;

	b.s[0] = '\0';
	mb_printf(&b, "# HELP carve_up carved is running.\n# TYPE carve_up gauge\n"
	    "carve_up 1\n");
	mb_printf(&b, "# HELP carve_uptime_seconds Seconds since carved started.\n"
	    "# TYPE carve_uptime_seconds gauge\ncarve_uptime_seconds %lld\n",
	    (long long)((time_now_ms() - a->a_started_at_ms) / 1000));
	mb_printf(&b, "# HELP carve_libvirt_up The libvirt connection is up.\n"
	    "# TYPE carve_libvirt_up gauge\ncarve_libvirt_up %d\n",
	    virt_connected(a->a_virt) ? 1 : 0);
	mb_printf(&b, "# HELP carve_libvirt_connections_total Successful "
	    "connections to libvirt.\n# TYPE carve_libvirt_connections_total "
	    "counter\ncarve_libvirt_connections_total %u\n",
	    virt_generation(a->a_virt));

	it = strmap_iter(a->a_vms);
	while (strmap_next(a->a_vms, &it, NULL, &v))
		by_state[((struct vm_info *)v)->vm_state]++;
	mb_printf(&b, "# HELP carve_vms Managed VMs by state.\n"
	    "# TYPE carve_vms gauge\n");
	for (int i = 0; i < VM_STATE_MAX; i++)
		mb_printf(&b, "carve_vms{state=\"%s\"} %u\n", vm_state_name(i),
		    by_state[i]);

	if (agent_capacity(a, &cap)) {
		static const char *const what[] = { "total", "reserved",
		    "allocatable", "allocated" };
		for (int w = 0; w < 4; w++) {
			mb_printf(&b, "# HELP carve_capacity_%s Host capacity "
			    "(%s) per resource class.\n# TYPE carve_capacity_%s "
			    "gauge\n", what[w], what[w], what[w]);
			for (int c = 0; c < CAP_NCLASSES; c++) {
				const struct cap_inventory *inv = &cap.cap[c];
				uint64_t val = w == 0 ? inv->total :
				    w == 1 ? inv->reserved :
				    w == 2 ? capacity_allocatable(inv) :
				    inv->allocated;
				mb_printf(&b, "carve_capacity_%s{class=\"%s\"} "
				    "%llu\n", what[w], capacity_class_name(c),
				    (unsigned long long)val);
			}
		}
	}

	mb_printf(&b, "# HELP carve_commands_total Commands finished, by type "
	    "and result.\n# TYPE carve_commands_total counter\n");
	for (int t = 0; t < CMD_TYPE_MAX; t++) {
		const struct engine_type_stats *st = engine_stats(a->a_engine, t);
		mb_printf(&b, "carve_commands_total{type=\"%s\",status=\"succeeded\"}"
		    " %llu\n", command_type_name(t),
		    (unsigned long long)st->succeeded);
		mb_printf(&b, "carve_commands_total{type=\"%s\",status=\"failed\"}"
		    " %llu\n", command_type_name(t),
		    (unsigned long long)st->failed);
	}
	mb_printf(&b, "# HELP carve_command_duration_seconds_sum Time from "
	    "acceptance to durable result, summed per type.\n# TYPE "
	    "carve_command_duration_seconds_sum counter\n");
	for (int t = 0; t < CMD_TYPE_MAX; t++) {
		const struct engine_type_stats *st = engine_stats(a->a_engine, t);
		mb_printf(&b, "carve_command_duration_seconds_sum{type=\"%s\"} "
		    "%.3f\n", command_type_name(t),
		    (double)st->duration_ms_sum / 1000.0);
	}
	mb_printf(&b, "# HELP carve_commands_inflight Commands running or "
	    "queued.\n# TYPE carve_commands_inflight gauge\n"
	    "carve_commands_inflight{state=\"running\"} %u\n"
	    "carve_commands_inflight{state=\"queued\"} %u\n",
	    engine_running(a->a_engine), engine_queued(a->a_engine));
	if (a->a_poller != NULL) {
		/* One source of truth: the same object carvectl status shows. */
		json_object *st = poller_status_encode(a->a_poller), *v2;
		const char *state = "";
		int64_t req = 0, fail = 0, outbox = 0;

		if (json_object_object_get_ex(st, "state", &v2))
			state = json_object_get_string(v2);
		if (json_object_object_get_ex(st, "requests", &v2))
			req = json_object_get_int64(v2);
		if (json_object_object_get_ex(st, "failures", &v2))
			fail = json_object_get_int64(v2);
		if (json_object_object_get_ex(st, "outbox", &v2))
			outbox = json_object_get_int64(v2);
		mb_printf(&b, "# HELP carve_control_plane_up The control-plane "
		    "conversation is established.\n# TYPE carve_control_plane_up "
		    "gauge\ncarve_control_plane_up %d\n",
		    strcmp(state, "connected") == 0 ? 1 : 0);
		mb_printf(&b, "# HELP carve_control_plane_requests_total Requests "
		    "made to the control plane.\n# TYPE "
		    "carve_control_plane_requests_total counter\n"
		    "carve_control_plane_requests_total %lld\n# HELP "
		    "carve_control_plane_failures_total Requests that failed.\n"
		    "# TYPE carve_control_plane_failures_total counter\n"
		    "carve_control_plane_failures_total %lld\n# HELP "
		    "carve_control_plane_outbox Results waiting to be delivered.\n"
		    "# TYPE carve_control_plane_outbox gauge\n"
		    "carve_control_plane_outbox %lld\n", (long long)req,
		    (long long)fail, (long long)outbox);
		json_object_put(st);
	}
	if (a->a_images != NULL) {
		struct images_stats is;

		images_get_stats(a->a_images, &is);
		mb_printf(&b, "# HELP carve_image_cache_bytes Disk space of the "
		    "base image cache.\n# TYPE carve_image_cache_bytes gauge\n"
		    "carve_image_cache_bytes %llu\n# HELP carve_image_cache_images "
		    "Base images in the cache.\n# TYPE carve_image_cache_images "
		    "gauge\ncarve_image_cache_images %u\n# HELP "
		    "carve_image_gc_deleted_total Images deleted by garbage "
		    "collection.\n# TYPE carve_image_gc_deleted_total counter\n"
		    "carve_image_gc_deleted_total %llu\n# HELP "
		    "carve_image_gc_freed_bytes_total Bytes freed by garbage "
		    "collection.\n# TYPE carve_image_gc_freed_bytes_total "
		    "counter\ncarve_image_gc_freed_bytes_total %llu\n",
		    (unsigned long long)is.is_bytes, is.is_images,
		    (unsigned long long)is.is_gc_deleted,
		    (unsigned long long)is.is_gc_freed_bytes);
	}
	if (a->a_journal != NULL) {
		struct journal_stats js;
		journal_get_stats(a->a_journal, &js);
		mb_printf(&b, "# HELP carve_journal_commits_total Journal "
		    "transactions (each one fsync).\n# TYPE "
		    "carve_journal_commits_total counter\n"
		    "carve_journal_commits_total %llu\n# HELP "
		    "carve_journal_records_total Journal records written.\n"
		    "# TYPE carve_journal_records_total counter\n"
		    "carve_journal_records_total %llu\n",
		    (unsigned long long)js.commits,
		    (unsigned long long)js.records);
	}
	return b.s;
}

/* ---- HTTP ---- */

static void metrics_maybe_done(struct metrics *m);

static void
mconn_closed(uv_handle_t *h)
{
	struct mconn *c = h->data;
	struct metrics *m = c->m;
	struct mconn **pp;

	for (pp = &m->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	free(c->resp);
	free(c);
	if (m->closing) {
		m->pending_closes--;
		metrics_maybe_done(m);
	}
}

static void
mconn_close(struct mconn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	uv_close((uv_handle_t *)&c->tcp, mconn_closed);
}

static void
mconn_written(uv_write_t *w, int status)
{
	struct mconn *c = w->data;

	(void)status;
	mconn_close(c);
}

static void
mconn_respond(struct mconn *c, const char *status, const char *ctype,
    const char *body)
{
	uv_buf_t b;

	c->answered = true;
	uv_read_stop((uv_stream_t *)&c->tcp);
	c->resp = xasprintf("HTTP/1.0 %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", status, ctype,
	    strlen(body), body);
	b = uv_buf_init(c->resp, (unsigned)strlen(c->resp));
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, mconn_written) != 0)
		mconn_close(c);
}

static void
mconn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct mconn *c = h->data;

	(void)suggested;
	*buf = uv_buf_init(c->buf + c->len,
	    (unsigned)(sizeof(c->buf) - 1 - c->len));
}

static void
mconn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct mconn *c = s->data;
	char *body;

	(void)buf;
	if (c->answered)
		return;
	if (nread < 0) {
		mconn_close(c);
		return;
	}
	c->len += (size_t)nread;
	c->buf[c->len] = '\0';
	if (strstr(c->buf, "\r\n\r\n") == NULL && strstr(c->buf, "\n\n") == NULL) {
		if (c->len >= sizeof(c->buf) - 1)
			mconn_respond(c, "431 Request Header Fields Too Large",
			    "text/plain", "request too large\n");
		return;
	}
	if (strncmp(c->buf, "GET /metrics ", 13) == 0 ||
	    strncmp(c->buf, "GET /metrics?", 13) == 0) {
		body = metrics_render(c->m->a);
		mconn_respond(c, "200 OK", "text/plain; version=0.0.4", body);
		free(body);
	} else {
		mconn_respond(c, "404 Not Found", "text/plain",
		    "only GET /metrics is served here\n");
	}
}

static void
metrics_on_connection(uv_stream_t *server, int status)
{
	struct metrics *m = server->data;
	struct mconn *c;

	if (status < 0 || m->closing)
		return;
	c = xcalloc(1, sizeof(*c));
	c->m = m;
	c->next = m->conns;
	m->conns = c;
	uv_tcp_init(m->a->a_loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		mconn_close(c);
		return;
	}
	uv_read_start((uv_stream_t *)&c->tcp, mconn_alloc, mconn_read);
}

/* "127.0.0.1:9464" or "[::1]:9464" -> sockaddr. */
static int
metrics_parse_listen(const char *listen, struct sockaddr_storage *ss,
    struct carve_error *err)
{
	char host[64];
	const char *colon = strrchr(listen, ':');
	char *end;
	unsigned long port;
	size_t hl;

	if (colon == NULL)
		return error_set(err, CARVE_EINVAL, "[metrics] listen: want "
		    "host:port, got \"%s\"", listen);
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || colon[1] == '\0' || port == 0 ||
	    port > 65535)
		return error_set(err, CARVE_EINVAL, "[metrics] listen: bad port "
		    "in \"%s\"", listen);
	hl = (size_t)(colon - listen);
	if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']') {
		listen++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return error_set(err, CARVE_EINVAL, "[metrics] listen: bad host "
		    "in \"%s\"", listen);
	memcpy(host, listen, hl);
	host[hl] = '\0';
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) != 0 &&
	    uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) != 0)
		return error_set(err, CARVE_EINVAL, "[metrics] listen: \"%s\" is "
		    "not an IP address", host);
	return 0;
}

int
metrics_open(struct agent *a, const char *listen, struct metrics **out,
    struct carve_error *err)
{
	struct sockaddr_storage ss;
	struct metrics *m;
	int rc;

	memset(&ss, 0, sizeof(ss));
	if (metrics_parse_listen(listen, &ss, err) < 0)
		return -1;
	m = xcalloc(1, sizeof(*m));
	m->a = a;
	uv_tcp_init(a->a_loop, &m->server);
	m->server.data = m;
	rc = uv_tcp_bind(&m->server, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&m->server, 16,
		    metrics_on_connection);
	if (rc != 0) {
		error_set(err, CARVE_EINVAL, "[metrics] cannot listen on %s: %s",
		    listen, uv_strerror(rc));
		uv_close((uv_handle_t *)&m->server, NULL);
		return -1;   /* the process exits; m is not reused */
	}
	log_info("metrics", "serving Prometheus metrics on http://%s/metrics",
	    listen);
	*out = m;
	return 0;
}

/* The listener and every scrape are closed: free m, tell the owner. */
static void
metrics_maybe_done(struct metrics *m)
{
	void (*cb)(void *) = m->close_cb;
	void *arg = m->close_arg;

	if (m->pending_closes > 0)
		return;
	free(m);
	if (cb)
		cb(arg);
}

static void
metrics_closed(uv_handle_t *h)
{
	struct metrics *m = h->data;

	m->pending_closes--;
	metrics_maybe_done(m);
}

void
metrics_close(struct metrics *m, void (*cb)(void *arg), void *arg)
{
	struct mconn *c;

	m->closing = true;
	m->close_cb = cb;
	m->close_arg = arg;
	m->pending_closes = 1;
	/* Every listed connection has a close callback still due. */
	for (c = m->conns; c != NULL; c = c->next)
		m->pending_closes++;
	for (c = m->conns; c != NULL; c = c->next)
		mconn_close(c);
	uv_close((uv_handle_t *)&m->server, metrics_closed);
}
