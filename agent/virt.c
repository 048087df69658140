/*
 * The libvirt connection: opening and reopening it off the loop, and
 * forwarding libvirt's events to the loop thread. See virt.h.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "agent/virt.h"
#include "common/backoff.h"
#include "common/error.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/xalloc.h"

#define VIRT_KEEPALIVE_INTERVAL_S 5
#define VIRT_KEEPALIVE_COUNT      3
#define VIRT_RETRY_BASE_MS        250
#define VIRT_RETRY_CAP_MS         15000

enum virt_qkind { VQ_LIFECYCLE, VQ_CLOSED };

/* What the libvirt event thread hands to the loop. */
struct virt_qitem {
	struct virt_qitem *next;
	enum virt_qkind kind;
	virConnectPtr conn;          /* VQ_CLOSED: which connection closed */
	int reason;
	char uuid[VIR_UUID_STRING_BUFLEN];
	int event, detail;
};

struct virt {
	uv_loop_t *loop;
	char *uri;
	const struct virt_events *ev;
	void *arg;

	virConnectPtr conn;          /* loop-owned; NULL while disconnected */
	int event_cb_id;
	unsigned generation;
	bool connecting;
	bool closing;
	char last_error[CARVE_ERRMSG_MAX];
	struct backoff bo;

	uv_async_t async;
	uv_timer_t retry;
	int open_handles;
	void (*close_cb)(void *);
	void *close_arg;

	pthread_mutex_t qlock;       /* guards the queue below */
	struct virt_qitem *qhead, **qtail;
};

/* A connect or disconnect running on the thread pool. */
struct virt_job {
	uv_work_t work;
	struct virt *v;
	virConnectPtr conn;          /* connect: the new one; close: the old one */
	int event_cb_id;
	char error[CARVE_ERRMSG_MAX];
	bool closing_job;
};

static void virt_schedule_retry(struct virt *v);
static void virt_drop_conn(struct virt *v, bool closing_job);
static void virt_connect(struct virt *v);

static void
virt_silent_error(void *arg, virErrorPtr e)
{
	/* libvirt prints every error to stderr by default; carve reports them. */
	(void)arg;
	(void)e;
}

static void *
virt_event_thread(void *arg)
{
	(void)arg;
	for (;;) {
		if (virEventRunDefaultImpl() < 0)
			log_error("virt", "libvirt event loop iteration failed: %s",
			    virGetLastErrorMessage());
	}
	return NULL;
}

int
virt_global_init(void)
{
	static bool done;
	pthread_t t;

	if (done)
		return 0;
	virSetErrorFunc(NULL, virt_silent_error);
	if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
		log_error("virt", "cannot initialise libvirt: %s",
		    virGetLastErrorMessage());
		return -1;
	}
	if (pthread_create(&t, NULL, virt_event_thread, NULL) != 0) {
		log_error("virt", "cannot start the libvirt event thread");
		return -1;
	}
	pthread_detach(t);
	done = true;
	return 0;
}

/* Runs on libvirt's event thread: queue and wake the loop. */
static void
virt_enqueue(struct virt *v, struct virt_qitem *it)
{
	pthread_mutex_lock(&v->qlock);
	it->next = NULL;
	*v->qtail = it;
	v->qtail = &it->next;
	pthread_mutex_unlock(&v->qlock);
	uv_async_send(&v->async);
}

static int
virt_on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
    void *opaque)
{
	struct virt_qitem *it = xcalloc(1, sizeof(*it));

	(void)conn;
	it->kind = VQ_LIFECYCLE;
	if (virDomainGetUUIDString(dom, it->uuid) < 0) {
		free(it);
		return 0;
	}
	ids_uuid_normalize(it->uuid, it->uuid);
	it->event = event;
	it->detail = detail;
	virt_enqueue(opaque, it);
	return 0;
}

static void
virt_on_close(virConnectPtr conn, int reason, void *opaque)
{
	struct virt_qitem *it = xcalloc(1, sizeof(*it));

	it->kind = VQ_CLOSED;
	it->conn = conn;
	it->reason = reason;
	virt_enqueue(opaque, it);
}

static const char *
virt_close_reason(int reason)
{
	switch (reason) {
	case VIR_CONNECT_CLOSE_REASON_ERROR: return "connection error";
	case VIR_CONNECT_CLOSE_REASON_EOF: return "libvirtd closed the connection";
	case VIR_CONNECT_CLOSE_REASON_KEEPALIVE: return "keepalive timeout";
	case VIR_CONNECT_CLOSE_REASON_CLIENT: return "closed by client";
	default: return "unknown reason";
	}
}

/* ---- connect / disconnect on the thread pool ---- */

static void
virt_connect_work(uv_work_t *w)
{
	struct virt_job *job = w->data;
	struct virt *v = job->v;
	virConnectPtr c;

	c = virConnectOpen(v->uri);
	if (c == NULL) {
		snprintf(job->error, sizeof(job->error), "%s",
		    virGetLastErrorMessage());
		return;
	}
	/* Remote drivers only; local ones answer "unsupported" (fine). */
	(void)virConnectSetKeepAlive(c, VIRT_KEEPALIVE_INTERVAL_S,
	    VIRT_KEEPALIVE_COUNT);
	(void)virConnectRegisterCloseCallback(c, virt_on_close, v, NULL);
	job->event_cb_id = virConnectDomainEventRegisterAny(c, NULL,
	    VIR_DOMAIN_EVENT_ID_LIFECYCLE,
	    VIR_DOMAIN_EVENT_CALLBACK(virt_on_lifecycle), v, NULL);
	if (job->event_cb_id < 0) {
		snprintf(job->error, sizeof(job->error),
		    "cannot register for domain events: %s",
		    virGetLastErrorMessage());
		virConnectClose(c);
		return;
	}
	job->conn = c;
}

static void
virt_connect_done(uv_work_t *w, int status)
{
	struct virt_job *job = w->data;
	struct virt *v = job->v;

	(void)status;
	v->connecting = false;
	if (v->closing) {
		/* virt_close waited for us: finish the close now. */
		if (job->conn != NULL) {
			v->conn = job->conn;
			v->event_cb_id = job->event_cb_id;
		}
		free(job);
		virt_drop_conn(v, true);
		return;
	}
	if (job->conn == NULL) {
		snprintf(v->last_error, sizeof(v->last_error), "%s", job->error);
		log_warn("virt", "cannot connect to %s: %s", v->uri, job->error);
		free(job);
		if (!v->closing)
			virt_schedule_retry(v);
		return;
	}
	v->conn = job->conn;
	v->event_cb_id = job->event_cb_id;
	v->generation++;
	v->last_error[0] = '\0';
	backoff_reset(&v->bo);
	free(job);
	log_info("virt", "connected to %s (connection %u)", v->uri,
	    v->generation);
	if (v->ev->ve_connected)
		v->ev->ve_connected(v, v->arg);
}

static void
virt_disconnect_work(uv_work_t *w)
{
	struct virt_job *job = w->data;

	if (job->event_cb_id >= 0)
		(void)virConnectDomainEventDeregisterAny(job->conn,
		    job->event_cb_id);
	(void)virConnectUnregisterCloseCallback(job->conn, virt_on_close);
	virConnectClose(job->conn);
}

static void virt_handle_closed(uv_handle_t *h);

static void
virt_disconnect_done(uv_work_t *w, int status)
{
	struct virt_job *job = w->data;
	struct virt *v = job->v;
	bool closing_job = job->closing_job;

	(void)status;
	free(job);
	if (closing_job) {
		uv_close((uv_handle_t *)&v->async, virt_handle_closed);
		uv_close((uv_handle_t *)&v->retry, virt_handle_closed);
	}
}

/* Drop the loop's reference off the loop (closing a remote connection is an RPC). */
static void
virt_drop_conn(struct virt *v, bool closing_job)
{
	struct virt_job *job;

	if (v->conn == NULL) {
		if (closing_job) {
			uv_close((uv_handle_t *)&v->async, virt_handle_closed);
			uv_close((uv_handle_t *)&v->retry, virt_handle_closed);
		}
		return;
	}
	job = xcalloc(1, sizeof(*job));
	job->v = v;
	job->conn = v->conn;
	job->event_cb_id = v->event_cb_id;
	job->closing_job = closing_job;
	job->work.data = job;
	v->conn = NULL;
	v->event_cb_id = -1;
	uv_queue_work(v->loop, &job->work, virt_disconnect_work,
	    virt_disconnect_done);
}

static void
virt_lost(struct virt *v, const char *reason)
{
	if (v->conn == NULL)
		return;
	snprintf(v->last_error, sizeof(v->last_error), "%s", reason);
	log_warn("virt", "connection to %s lost: %s; reconnecting", v->uri,
	    reason);
	virt_drop_conn(v, false);
	if (v->ev->ve_disconnected)
		v->ev->ve_disconnected(v, reason, v->arg);
	virt_schedule_retry(v);
}

static void
virt_connect(struct virt *v)
{
	struct virt_job *job;

	if (v->connecting || v->conn != NULL || v->closing)
		return;
	job = xcalloc(1, sizeof(*job));
	job->v = v;
	job->event_cb_id = -1;
	job->work.data = job;
	v->connecting = true;
	uv_queue_work(v->loop, &job->work, virt_connect_work, virt_connect_done);
}

static void
virt_on_retry(uv_timer_t *t)
{
	virt_connect(t->data);
}

static void
virt_schedule_retry(struct virt *v)
{
	uint64_t delay = backoff_next(&v->bo);

	if (v->closing)
		return;
	log_debug("virt", "next connection attempt in %llu ms",
	    (unsigned long long)delay);
	uv_timer_start(&v->retry, virt_on_retry, delay, 0);
}

static void
virt_on_async(uv_async_t *a)
{
	struct virt *v = a->data;
	struct virt_qitem *it, *next;

	pthread_mutex_lock(&v->qlock);
	it = v->qhead;
	v->qhead = NULL;
	v->qtail = &v->qhead;
	pthread_mutex_unlock(&v->qlock);

	for (; it != NULL; it = next) {
		next = it->next;
		if (v->closing) {
			/* drop */
		} else if (it->kind == VQ_CLOSED) {
			if (it->conn == v->conn)
				virt_lost(v, virt_close_reason(it->reason));
		} else if (v->conn != NULL && v->ev->ve_lifecycle) {
			v->ev->ve_lifecycle(v, it->uuid, it->event, it->detail,
			    v->arg);
		}
		free(it);
	}
}

/* ---- public ---- */

struct virt *
virt_new(uv_loop_t *loop, const char *uri, const struct virt_events *ev,
    void *arg)
{
	struct virt *v = xcalloc(1, sizeof(*v));

	v->loop = loop;
	v->uri = xstrdup(uri);
	v->ev = ev;
	v->arg = arg;
	v->event_cb_id = -1;
	backoff_init(&v->bo, VIRT_RETRY_BASE_MS, VIRT_RETRY_CAP_MS);
	pthread_mutex_init(&v->qlock, NULL);
	v->qtail = &v->qhead;
	uv_async_init(loop, &v->async, virt_on_async);
	v->async.data = v;
	uv_timer_init(loop, &v->retry);
	v->retry.data = v;
	v->open_handles = 2;
	return v;
}

void
virt_start(struct virt *v)
{
	virt_connect(v);
}

bool
virt_connected(const struct virt *v)
{
	return v->conn != NULL;
}

const char *
virt_uri(const struct virt *v)
{
	return v->uri;
}

unsigned
virt_generation(const struct virt *v)
{
	return v->generation;
}

const char *
virt_last_error(const struct virt *v)
{
	return v->last_error;
}

virConnectPtr
virt_conn(struct virt *v)
{
	if (v->conn == NULL)
		return NULL;
	virConnectRef(v->conn);
	return v->conn;
}

void
virt_report_dead(struct virt *v, unsigned generation)
{
	if (generation != v->generation)
		return;
	virt_lost(v, "connection found dead by an operation");
}

static void
virt_handle_closed(uv_handle_t *h)
{
	struct virt *v = h->data;
	struct virt_qitem *it, *next;

	if (--v->open_handles > 0)
		return;
	for (it = v->qhead; it != NULL; it = next) {
		next = it->next;
		free(it);
	}
	pthread_mutex_destroy(&v->qlock);
	if (v->close_cb)
		v->close_cb(v->close_arg);
	free(v->uri);
	free(v);
}

void
virt_close(struct virt *v, void (*cb)(void *arg), void *arg)
{
	v->closing = true;
	v->close_cb = cb;
	v->close_arg = arg;
	uv_timer_stop(&v->retry);
	/* A connect still running on the pool finishes the close when done. */
	if (v->connecting)
		return;
	virt_drop_conn(v, true);
}
