/*
 * The agent's connection to libvirt, owned by the loop thread.
 *
 * libvirt calls block (each is an RPC to libvirtd), so the connection is
 * opened on the libuv thread pool and operations run there too (virt_ops.h),
 * each holding its own reference from virt_conn(). libvirt's events are
 * dispatched by libvirt's default event implementation on a thread of its
 * own; the callbacks only queue what happened and uv_async_send() the loop,
 * which then calls the virt_events callbacks. The libvirt event thread keeps
 * turning whatever the loop does, so libvirt's keepalive never starves.
 *
 * When the connection closes (libvirtd restarted, keepalive timeout), the
 * loop is told (ve_disconnected) and a reconnect is tried with jittered
 * exponential backoff until it succeeds (ve_connected again).
 */
#ifndef CARVE_VIRT_H
#define CARVE_VIRT_H

#include <stdbool.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <uv.h>

struct virt;

struct virt_events {
	/* A (re)connection is up: rebuild the view from libvirt. */
	void (*ve_connected)(struct virt *v, void *arg);
	/* The connection is gone; reconnecting has been scheduled. */
	void (*ve_disconnected)(struct virt *v, const char *reason, void *arg);
	/* A domain lifecycle event (VIR_DOMAIN_EVENT_*), uuid lower-case. */
	void (*ve_lifecycle)(struct virt *v, const char *uuid, int event,
	    int detail, void *arg);
};

/*
 * Must be called once per process before any libvirt connection is opened:
 * installs libvirt's default event loop on its own thread and silences
 * libvirt's default printing of errors to stderr (carve reports them).
 */
int virt_global_init(void);

struct virt *virt_new(uv_loop_t *loop, const char *uri,
    const struct virt_events *ev, void *arg);
/* Start connecting (asynchronously). */
void virt_start(struct virt *v);
bool virt_connected(const struct virt *v);
const char *virt_uri(const struct virt *v);
/* Number of successful connections so far (1 after the first). */
unsigned virt_generation(const struct virt *v);
/* Last connection error, or "" */
const char *virt_last_error(const struct virt *v);

/*
 * A new reference to the live connection for one operation on a worker
 * thread, or NULL when disconnected. The caller drops it with
 * virConnectClose() (on any thread).
 */
virConnectPtr virt_conn(struct virt *v);

/*
 * Tell virt that an operation found connection number generation (see
 * virt_generation, taken when the operation started) dead before libvirt's
 * close callback arrived: treat it as closed now. A report about an older
 * connection than the current one is ignored, so a late failure never tears
 * down a healthy reconnection.
 */
void virt_report_dead(struct virt *v, unsigned generation);

/* Close and free; cb runs on the loop when all handles are closed. */
void virt_close(struct virt *v, void (*cb)(void *arg), void *arg);

#endif
