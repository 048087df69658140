/*
 * The agent: wiring of libvirt, journal, engine and control socket on one
 * loop, and the view of managed VMs that libvirt's state, events and command
 * results keep current.
 */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/control.h"
#include "agent/engine.h"
#include "agent/images.h"
#include "agent/journal.h"
#include "agent/metrics.h"
#include "agent/migrate.h"
#include "agent/poller.h"
#include "agent/virt.h"
#include "agent/virt_snap.h"
#include "agent/virt_storage.h"
#include "common/ids.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

/* ---- the view ---- */

struct vm_info *
agent_vm_find(struct agent *a, const char *id_or_name)
{
	char id[IDS_UUID_LEN + 1];
	struct strmap_iter it;
	void *v;

	if (ids_uuid_valid(id_or_name)) {
		ids_uuid_normalize(id_or_name, id);
		return strmap_get(a->a_vms, id);
	}
	it = strmap_iter(a->a_vms);
	while (strmap_next(a->a_vms, &it, NULL, &v))
		if (strcmp(((struct vm_info *)v)->vm_name, id_or_name) == 0)
			return v;
	return NULL;
}

/* Note a change of vm_id for the next heartbeat (with a control plane). */
static void
agent_vm_changed(struct agent *a, const char *vm_id, bool gone)
{
	void *seq;

	if (a->a_dirty == NULL)
		return;
	seq = (void *)(uintptr_t)++a->a_change_seq;
	if (gone) {
		strmap_del(a->a_dirty, vm_id);
		strmap_put(a->a_removed, vm_id, seq);
	} else {
		strmap_del(a->a_removed, vm_id);
		strmap_put(a->a_dirty, vm_id, seq);
	}
}

static bool
agent_snapshots_same(const struct vm_info *x, const struct vm_info *y)
{
	if (x->vm_snapshots_known != y->vm_snapshots_known ||
	    x->vm_nsnapshots != y->vm_nsnapshots)
		return false;
	for (unsigned i = 0; i < x->vm_nsnapshots && i < VM_SNAPSHOTS_MAX;
	    i++) {
		const struct vm_snapshot *a = &x->vm_snapshots[i];
		const struct vm_snapshot *b = &y->vm_snapshots[i];

		if (strcmp(a->snap_name, b->snap_name) != 0 ||
		    a->snap_kind != b->snap_kind ||
		    a->snap_created_at_ms != b->snap_created_at_ms)
			return false;
	}
	return true;
}

/* Whether two records say the same (what a heartbeat would carry). */
static bool
agent_vm_same(const struct vm_info *x, const struct vm_info *y)
{
	return strcmp(x->vm_id, y->vm_id) == 0 &&
	    strcmp(x->vm_name, y->vm_name) == 0 &&
	    x->vm_vcpus == y->vm_vcpus &&
	    x->vm_memory_mib == y->vm_memory_mib &&
	    x->vm_disk_gib == y->vm_disk_gib &&
	    strcmp(x->vm_command_id, y->vm_command_id) == 0 &&
	    x->vm_state == y->vm_state &&
	    x->vm_created_at_ms == y->vm_created_at_ms &&
	    strcmp(x->vm_image_url, y->vm_image_url) == 0 &&
	    strcmp(x->vm_image_sha256, y->vm_image_sha256) == 0 &&
	    x->vm_image_format == y->vm_image_format &&
	    x->vm_ndata_disks == y->vm_ndata_disks &&
	    memcmp(x->vm_data_disks, y->vm_data_disks,
	    sizeof(x->vm_data_disks)) == 0 &&
	    agent_snapshots_same(x, y);
}

/* Put without noting a change; returns the entry. */
static struct vm_info *
agent_view_put(struct agent *a, const struct vm_info *vm)
{
	struct vm_info *cur = strmap_get(a->a_vms, vm->vm_id);

	if (cur == NULL) {
		cur = xmalloc(sizeof(*cur));
		strmap_put(a->a_vms, vm->vm_id, cur);
	}
	*cur = *vm;
	return cur;
}

void
agent_vm_put(struct agent *a, const struct vm_info *vm)
{
	struct vm_info *cur = strmap_get(a->a_vms, vm->vm_id);
	struct vm_info merged;

	/*
	 * Most operations do not read the snapshots: their record keeps
	 * what the view knows of them.
	 */
	if (cur != NULL && !vm->vm_snapshots_known && cur->vm_snapshots_known) {
		merged = *vm;
		merged.vm_snapshots_known = true;
		merged.vm_nsnapshots = cur->vm_nsnapshots;
		memcpy(merged.vm_snapshots, cur->vm_snapshots,
		    sizeof(merged.vm_snapshots));
		vm = &merged;
	}
	if (cur != NULL && agent_vm_same(cur, vm))
		return;   /* nothing new to report */
	agent_view_put(a, vm);
	agent_vm_changed(a, vm->vm_id, false);
}

void
agent_vm_remove(struct agent *a, const char *vm_id)
{
	void *v = strmap_del(a->a_vms, vm_id);

	if (v != NULL) {
		free(v);
		agent_vm_changed(a, vm_id, true);
	}
}

uint64_t
agent_changes_mark(struct agent *a)
{
	return a->a_change_seq;
}

static void
agent_changes_ack_map(struct strmap *m, uint64_t mark)
{
	struct strmap_iter it = strmap_iter(m);
	const char *id;
	void *v;

	while (strmap_next(m, &it, &id, &v))
		if ((uint64_t)(uintptr_t)v <= mark)
			strmap_del(m, id);
}

void
agent_changes_ack(struct agent *a, uint64_t mark)
{
	if (a->a_dirty == NULL)
		return;
	agent_changes_ack_map(a->a_dirty, mark);
	agent_changes_ack_map(a->a_removed, mark);
}

static void
agent_view_clear(struct strmap *vms)
{
	struct strmap_iter it = strmap_iter(vms);
	void *v;

	while (strmap_next(vms, &it, NULL, &v))
		free(v);
	strmap_free(vms);
}

bool
agent_capacity(struct agent *a, struct capacity *out)
{
	const struct carved_conf *conf = a->a_conf;
	struct cap_request claims;
	struct strmap_iter it;
	void *v;

	if (!a->a_have_inv)
		return false;
	memset(out, 0, sizeof(*out));
	out->cap[CAP_VCPU].total = a->a_inv.cpus;
	out->cap[CAP_VCPU].reserved = conf->reserved_vcpus;
	out->cap[CAP_VCPU].ratio = conf->cpu_allocation_ratio;
	out->cap[CAP_MEMORY_MIB].total = a->a_inv.memory_mib;
	out->cap[CAP_MEMORY_MIB].reserved = conf->reserved_memory_mib;
	out->cap[CAP_MEMORY_MIB].ratio = conf->ram_allocation_ratio;
	out->cap[CAP_DISK_GIB].total = a->a_inv.disk_gib;
	out->cap[CAP_DISK_GIB].reserved = conf->reserved_disk_gib;
	out->cap[CAP_DISK_GIB].ratio = conf->disk_allocation_ratio;
	it = strmap_iter(a->a_vms);
	while (strmap_next(a->a_vms, &it, NULL, &v)) {
		const struct vm_info *vm = v;
		out->cap[CAP_VCPU].allocated += vm->vm_vcpus;
		out->cap[CAP_MEMORY_MIB].allocated += vm->vm_memory_mib;
		/* A snapshot's space is an estimate: see virt_snap.h. */
		out->cap[CAP_DISK_GIB].allocated += vm_info_disk_gib_total(vm) +
		    vm->vm_nsnapshots *
		    virt_snap_estimate_gib(vm->vm_memory_mib);
	}
	engine_claims(a->a_engine, &claims);
	for (int i = 0; i < CAP_NCLASSES; i++)
		out->cap[i].allocated += claims.amount[i];
	return true;
}

/* ---- rebuilding the view from libvirt ---- */

/* A busy host never goes quiet: give up re-reading after a few rounds. */
#define AGENT_MAX_REREFRESH 3

static void agent_refresh(struct agent *a);

struct refresh_job {
	uv_work_t work;
	struct agent *a;
	virConnectPtr conn;
	unsigned generation;
	unsigned events;              /* a_lifecycle_events when queued */
	char want_type[16];
	char *state_dir;
	char *disk_dir;
	char *pool;
	/* out */
	struct host_inventory inv;
	struct vm_info *vms;
	size_t nvms;
	struct carve_error err;
};

static void
refresh_work(uv_work_t *w)
{
	struct refresh_job *j = w->data;

	struct carve_error perr = { 0 };
	uint64_t bytes;

	if (virt_op_inventory(j->conn, j->want_type, j->state_dir, &j->inv,
	    &j->err) == 0)
		(void)virt_op_list(j->conn, &j->vms, &j->nvms, &j->err);
	/*
	 * The storage pool, on every (re)connect: libvirtd may have lost it.
	 * Without it only VMs with images fail, so a failure is logged, not
	 * fatal. Its size is the disk capacity, except on the test driver,
	 * whose pools are make-believe.
	 */
	if (!error_isset(&j->err)) {
		if (virt_storage_pool_ensure(j->conn, j->pool, j->disk_dir,
		    &perr) < 0)
			log_warn("agent", "storage pool %s at %s is not usable: "
			    "%s", j->pool, j->disk_dir, perr.message);
		else if (strcmp(j->inv.domain_type, "test") != 0 &&
		    virt_storage_pool_capacity(j->conn, j->pool, &bytes,
		    &perr) == 0)
			j->inv.disk_gib = bytes >> 30;
		if (perr.code == CARVE_EUNAVAIL)
			j->err = perr;
	}
	virConnectClose(j->conn);
}

static void
refresh_done(uv_work_t *w, int status)
{
	struct refresh_job *j = w->data;
	struct agent *a = j->a;
	struct strmap *old = a->a_vms, *fresh;
	struct strmap_iter it;
	const char *id;
	void *v;
	unsigned appeared = 0, vanished = 0, events_during;

	(void)status;
	a->a_view_refreshing--;
	if (error_isset(&j->err) || a->a_stopping ||
	    j->generation != virt_generation(a->a_virt)) {
		if (error_isset(&j->err) && !a->a_stopping) {
			log_error("agent", "cannot read libvirt's state: %s; "
			    "reconnecting", j->err.message);
			/* Without a complete view nothing may run: start over
			 * with a fresh connection (which rebuilds the view). */
			virt_report_dead(a->a_virt, j->generation);
		}
		host_inventory_clear(&j->inv);
		free(j->vms);
		free(j->state_dir);
		free(j->disk_dir);
		free(j->pool);
		free(j);
		return;
	}
	fresh = strmap_new();
	a->a_vms = fresh;
	for (size_t i = 0; i < j->nvms; i++) {
		struct vm_info *was = strmap_get(old, j->vms[i].vm_id);

		/* Arriving by migration: in the view once it is finished. */
		if (was == NULL &&
		    engine_reserved(a->a_engine, j->vms[i].vm_id))
			continue;

		agent_view_put(a, &j->vms[i]);
		if (was == NULL || !agent_vm_same(was, &j->vms[i]))
			agent_vm_changed(a, j->vms[i].vm_id, false);
		if (a->a_view_ready || strmap_count(old) > 0) {
			if (strmap_get(old, j->vms[i].vm_id) == NULL) {
				appeared++;
				log_warn("agent", "VM %s (%s) appeared in libvirt "
				    "while carve was not looking", j->vms[i].vm_id,
				    j->vms[i].vm_name);
			}
		}
	}
	it = strmap_iter(old);
	while (strmap_next(old, &it, &id, &v)) {
		/* Leaving by migration: its vm.migrate result removes it. */
		if (strmap_get(fresh, id) == NULL &&
		    engine_migrating(a->a_engine, id)) {
			agent_view_put(a, v);
			continue;
		}
		if (strmap_get(fresh, id) == NULL) {
			vanished++;
			agent_vm_changed(a, id, true);
			log_warn("agent", "VM %s (%s) vanished from libvirt while "
			    "carve was not looking", id,
			    ((struct vm_info *)v)->vm_name);
		}
	}
	agent_view_clear(old);
	host_inventory_clear(&a->a_inv);
	a->a_inv = j->inv;
	a->a_have_inv = true;
	a->a_view_ready = true;
	log_info("agent", "view rebuilt from libvirt: %zu managed VMs "
	    "(%u appeared, %u vanished); host %s: %u CPUs, %llu MiB, domain "
	    "type %s", strmap_count(a->a_vms), appeared, vanished,
	    a->a_inv.hostname, a->a_inv.cpus,
	    (unsigned long long)a->a_inv.memory_mib, a->a_inv.domain_type);
	events_during = a->a_lifecycle_events - j->events;
	free(j->vms);
	free(j->state_dir);
	free(j->disk_dir);
	free(j->pool);
	free(j);
	/*
	 * Events that arrived while the listing ran were applied to the old
	 * view, which the listing (possibly older than them) just replaced:
	 * list again so the view, and the heartbeat's changes, end up current.
	 */
	if (events_during != 0 && a->a_rerefreshes < AGENT_MAX_REREFRESH) {
		a->a_rerefreshes++;
		log_debug("agent", "%u domain events during the view rebuild: "
		    "reading libvirt's state again", events_during);
		agent_refresh(a);
	} else {
		a->a_rerefreshes = 0;
	}
	engine_set_ready(a->a_engine, true);
	if (a->a_poller != NULL)
		poller_view_ready(a->a_poller);
}

static void
agent_refresh(struct agent *a)
{
	struct refresh_job *j;
	virConnectPtr conn = virt_conn(a->a_virt);

	if (conn == NULL)
		return;
	j = xcalloc(1, sizeof(*j));
	j->a = a;
	j->conn = conn;
	j->generation = virt_generation(a->a_virt);
	j->events = a->a_lifecycle_events;
	snprintf(j->want_type, sizeof(j->want_type), "%s",
	    a->a_conf->domain_type);
	j->state_dir = xstrdup(a->a_conf->state_dir);
	j->disk_dir = xstrdup(a->a_disk_dir);
	j->pool = xstrdup(a->a_conf->storage_pool);
	j->work.data = j;
	a->a_view_refreshing++;
	uv_queue_work(a->a_loop, &j->work, refresh_work, refresh_done);
}

/* One VM, after an event about a domain carve did not know. */
struct vm_job {
	uv_work_t work;
	struct agent *a;
	virConnectPtr conn;
	char vm_id[IDS_UUID_LEN + 1];
	unsigned undefines;           /* a_undefines when queued */
	struct vm_info vm;
	struct carve_error err;
};

static void agent_lookup_vm(struct agent *a, const char *uuid);

static void
vm_job_work(uv_work_t *w)
{
	struct vm_job *j = w->data;

	(void)virt_op_get(j->conn, j->vm_id, &j->vm, &j->err);
	virConnectClose(j->conn);
}

static void
vm_job_done(uv_work_t *w, int status)
{
	struct vm_job *j = w->data;
	struct agent *a = j->a;

	(void)status;
	if (!a->a_stopping && !error_isset(&j->err) &&
	    j->undefines != a->a_undefines) {
		/* A domain was undefined while we looked: maybe this one, and
		 * its UNDEFINED event found nothing to remove. Look again. */
		agent_lookup_vm(a, j->vm_id);
	} else if (!a->a_stopping && !error_isset(&j->err) &&
	    strmap_get(a->a_vms, j->vm_id) == NULL &&
	    !engine_creating(a->a_engine, j->vm_id) &&
	    !engine_reserved(a->a_engine, j->vm_id)) {
		log_warn("agent", "VM %s (%s) was defined outside carve; now in "
		    "the view", j->vm_id, j->vm.vm_name);
		agent_vm_put(a, &j->vm);
	}
	free(j);
}

static void
agent_lookup_vm(struct agent *a, const char *uuid)
{
	struct vm_job *j;
	virConnectPtr conn = virt_conn(a->a_virt);

	if (conn == NULL)
		return;
	j = xcalloc(1, sizeof(*j));
	j->a = a;
	j->conn = conn;
	j->undefines = a->a_undefines;
	snprintf(j->vm_id, sizeof(j->vm_id), "%s", uuid);
	j->work.data = j;
	uv_queue_work(a->a_loop, &j->work, vm_job_work, vm_job_done);
}

/* ---- libvirt callbacks ---- */

static void
agent_on_connected(struct virt *v, void *arg)
{
	struct agent *a = arg;

	(void)v;
	agent_refresh(a);
}

static void
agent_on_disconnected(struct virt *v, const char *reason, void *arg)
{
	struct agent *a = arg;

	(void)v;
	(void)reason;
	/* VMs keep running without us; hold commands until we see again. */
	a->a_view_ready = false;
	engine_set_ready(a->a_engine, false);
}

static void
agent_on_lifecycle(struct virt *v, const char *uuid, int event, int detail,
    void *arg)
{
	struct agent *a = arg;
	struct vm_info *vm = strmap_get(a->a_vms, uuid);
	enum vm_state st = VM_STATE_UNKNOWN;

	(void)v;
	a->a_lifecycle_events++;
	/*
	 * A VM leaving by migration stops and is undefined here: that is its
	 * vm.migrate's outcome, which the command's result applies, not a VM
	 * lost. One arriving enters the view with its vm.migrate.finish.
	 */
	if (engine_migrating(a->a_engine, uuid) &&
	    (event == VIR_DOMAIN_EVENT_UNDEFINED ||
	    (event == VIR_DOMAIN_EVENT_STOPPED &&
	    detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED))) {
		if (event == VIR_DOMAIN_EVENT_UNDEFINED)
			a->a_undefines++;
		log_debug("agent", "VM %s is migrating away: event %d/%d left "
		    "to its vm.migrate", uuid, event, detail);
		return;
	}
	if (vm == NULL && engine_reserved(a->a_engine, uuid))
		return;
	switch (event) {
	case VIR_DOMAIN_EVENT_DEFINED:
		if (vm == NULL && a->a_view_ready &&
		    !engine_creating(a->a_engine, uuid))
			agent_lookup_vm(a, uuid);
		return;
	case VIR_DOMAIN_EVENT_UNDEFINED:
		a->a_undefines++;
		if (vm != NULL) {
			log_info("agent", "VM %s (%s) undefined", uuid,
			    vm->vm_name);
			agent_vm_remove(a, uuid);
		}
		return;
	case VIR_DOMAIN_EVENT_STARTED:
	case VIR_DOMAIN_EVENT_RESUMED:
		st = VM_STATE_RUNNING;
		break;
	case VIR_DOMAIN_EVENT_SUSPENDED:
		st = VM_STATE_PAUSED;
		break;
	case VIR_DOMAIN_EVENT_STOPPED:
		st = VM_STATE_SHUTOFF;
		break;
	case VIR_DOMAIN_EVENT_PMSUSPENDED:
		st = VM_STATE_SUSPENDED;
		break;
	case VIR_DOMAIN_EVENT_CRASHED:
		st = VM_STATE_CRASHED;
		break;
	default:
		return;  /* SHUTDOWN: the guest is on its way; STOPPED follows */
	}
	if (vm != NULL && vm->vm_state != st) {
		log_debug("agent", "VM %s: %s -> %s", uuid,
		    vm_state_name(vm->vm_state), vm_state_name(st));
		vm->vm_state = st;
		agent_vm_changed(a, uuid, false);
	}
}

static const struct virt_events agent_virt_events = {
	.ve_connected = agent_on_connected,
	.ve_disconnected = agent_on_disconnected,
	.ve_lifecycle = agent_on_lifecycle,
};

/* ---- status ---- */

json_object *
agent_status_encode(struct agent *a)
{
	const struct carved_conf *conf = a->a_conf;
	json_object *o = json_object_new_object(), *lv, *vms, *cmds;
	struct capacity cap;
	unsigned by_state[VM_STATE_MAX] = { 0 };
	struct strmap_iter it;
	void *v;
	char *s;

	jsonx_add_string(o, "version", PACKAGE_VERSION);
	jsonx_add_string(o, "node_name", conf->node_name);
	jsonx_add_int(o, "pid", (int64_t)getpid());
	jsonx_add_int(o, "uptime_s", (time_now_ms() - a->a_started_at_ms) / 1000);
	jsonx_add_string(o, "mode", conf->cp_url ? "control_plane" :
	    "standalone");
	jsonx_add_bool(o, "schedulable", !a->a_drained);
	if (a->a_poller != NULL)
		json_object_object_add(o, "control_plane",
		    poller_status_encode(a->a_poller));

	lv = json_object_new_object();
	jsonx_add_string(lv, "uri", virt_uri(a->a_virt));
	jsonx_add_bool(lv, "connected", virt_connected(a->a_virt));
	jsonx_add_int(lv, "connections", virt_generation(a->a_virt));
	jsonx_add_string(lv, "last_error", virt_last_error(a->a_virt));
	if (a->a_have_inv) {
		jsonx_add_string(lv, "domain_type", a->a_inv.domain_type);
		jsonx_add_string(lv, "driver", a->a_inv.driver);
		s = xasprintf("%lu.%lu.%lu", a->a_inv.lib_version / 1000000,
		    (a->a_inv.lib_version / 1000) % 1000,
		    a->a_inv.lib_version % 1000);
		jsonx_add_string(lv, "libvirt_version", s);
		free(s);
	}
	json_object_object_add(o, "libvirt", lv);

	vms = json_object_new_object();
	it = strmap_iter(a->a_vms);
	while (strmap_next(a->a_vms, &it, NULL, &v))
		by_state[((struct vm_info *)v)->vm_state]++;
	jsonx_add_int(vms, "total", (int64_t)strmap_count(a->a_vms));
	for (int i = 0; i < VM_STATE_MAX; i++)
		if (by_state[i])
			jsonx_add_int(vms, vm_state_name(i), by_state[i]);
	json_object_object_add(o, "vms", vms);

	cmds = json_object_new_object();
	jsonx_add_int(cmds, "running", engine_running(a->a_engine));
	jsonx_add_int(cmds, "queued", engine_queued(a->a_engine));
	jsonx_add_int(cmds, "max_concurrent", conf->max_concurrent_ops);
	json_object_object_add(o, "commands", cmds);
	json_object_object_add(o, "inflight",
	    engine_inflight_encode(a->a_engine));
	json_object_object_add(o, "migrations",
	    engine_migrations_encode(a->a_engine));

	if (agent_capacity(a, &cap))
		json_object_object_add(o, "capacity", capacity_encode(&cap));
	return o;
}

/* ---- the image cache's libvirt connection ---- */

/* images_conn_fn: see images.h. */
static virConnectPtr
agent_images_conn(void *arg, bool gc, struct carve_error *err)
{
	struct agent *a = arg;
	virConnectPtr c;

	if (a->a_virt == NULL || !a->a_view_ready) {
		error_set(err, CARVE_EUNAVAIL, "not connected to libvirt yet; "
		    "try again");
		return NULL;
	}
	if (gc && engine_recovering(a->a_engine)) {
		error_set(err, CARVE_EUNAVAIL, "commands from before the restart "
		    "are being recovered (they may need their images); try "
		    "again");
		return NULL;
	}
	if ((c = virt_conn(a->a_virt)) == NULL)
		error_set(err, CARVE_EUNAVAIL, "not connected to libvirt; try "
		    "again");
	return c;
}

/* ---- drain ---- */

struct drain_job {
	uv_work_t work;
	struct agent *a;
	bool drained;
	char *state_dir;
	void (*cb)(const struct carve_error *err, void *arg);
	void *arg;
	struct carve_error err;
};

static void
drain_work(uv_work_t *w)
{
	struct drain_job *j = w->data;

	(void)migrate_drained_store(j->state_dir, j->drained, &j->err);
}

static void
drain_done(uv_work_t *w, int status)
{
	struct drain_job *j = w->data;
	struct agent *a = j->a;

	(void)status;
	if (!error_isset(&j->err) && a->a_drained != j->drained) {
		a->a_drained = j->drained;
		log_kv(LOG_LVL_INFO, "agent", j->drained ? "node drained: "
		    "not schedulable" : "node undrained: schedulable",
		    (char *)NULL);
		/* The control plane hears it at the next heartbeat and
		 * registration; the inventory is sent again now. */
		if (a->a_poller != NULL)
			poller_view_ready(a->a_poller);
	}
	j->cb(error_isset(&j->err) ? &j->err : NULL, j->arg);
	free(j->state_dir);
	free(j);
}

void
agent_set_drained(struct agent *a, bool drained,
    void (*cb)(const struct carve_error *err, void *arg), void *arg)
{
	struct drain_job *j = xcalloc(1, sizeof(*j));

	j->a = a;
	j->drained = drained;
	j->state_dir = xstrdup(a->a_conf->state_dir);
	j->cb = cb;
	j->arg = arg;
	j->work.data = j;
	uv_queue_work(a->a_loop, &j->work, drain_work, drain_done);
}

/* ---- life cycle ---- */

static void
agent_on_signal(uv_signal_t *s, int signum)
{
	struct agent *a = s->data;

	if (signum == SIGHUP) {
		log_info("agent", "SIGHUP: configuration is read at start-up; "
		    "restart carved to apply changes");
		return;
	}
	log_info("agent", "%s received: stopping", strsignal(signum));
	agent_stop(a);
}

int
agent_init(struct agent *a, uv_loop_t *loop, const struct carved_conf *conf,
    struct carve_error *err)
{
	char *path;

	memset(a, 0, sizeof(*a));
	a->a_loop = loop;
	a->a_conf = conf;
	a->a_started_at_ms = time_now_ms();
	a->a_vms = strmap_new();
	a->a_engine = engine_new(a, conf->max_concurrent_ops);
	a->a_drained = migrate_drained_load(conf->state_dir);
	if (a->a_drained)
		log_warn("agent", "this node is drained (carvectl undrain "
		    "makes it schedulable again)");

	path = xasprintf("%s/journal.db", conf->state_dir);
	if (journal_open(loop, path, &a->a_journal, err) < 0) {
		free(path);
		return -1;
	}
	free(path);
	if (engine_load(a->a_engine, err) < 0)
		return -1;
	a->a_image_dir = conf->image_cache_dir != NULL ?
	    xstrdup(conf->image_cache_dir) :
	    xasprintf("%s/images", conf->state_dir);
	a->a_disk_dir = xasprintf("%s/disks", conf->state_dir);
	{
		struct images_opts io = {
			.io_dir = a->a_image_dir,
			.io_max_bytes = conf->max_image_gib << 30,
			.io_timeout_s = conf->download_timeout_s,
			.io_ca_file = conf->image_ca_file,
			.io_gc_interval_s = conf->gc_interval_s,
			.io_gc_unused_age_s = conf->gc_unused_age_s,
			.io_gc_max_bytes = (uint64_t)(conf->max_cache_gib *
			    (double)(1ULL << 30)),
			.io_pool = conf->storage_pool,
			.io_conn = agent_images_conn,
			.io_conn_arg = a,
		};

		if (images_new(loop, &io, &a->a_images, err) < 0)
			return -1;
	}
	if (conf->cp_url != NULL) {
		a->a_dirty = strmap_new();
		a->a_removed = strmap_new();
		if (poller_new(a, &a->a_poller, err) < 0)
			return -1;
	}
	if (control_open(a, &a->a_control, err) < 0)
		return -1;
	if (conf->metrics_listen != NULL && conf->metrics_listen[0] != '\0' &&
	    metrics_open(a, conf->metrics_listen, &a->a_metrics, err) < 0)
		return -1;

	a->a_virt = virt_new(loop, conf->uri, &agent_virt_events, a);
	virt_start(a->a_virt);

	uv_signal_init(loop, &a->a_sigterm);
	uv_signal_init(loop, &a->a_sigint);
	uv_signal_init(loop, &a->a_sighup);
	a->a_sigterm.data = a->a_sigint.data = a->a_sighup.data = a;
	uv_signal_start(&a->a_sigterm, agent_on_signal, SIGTERM);
	uv_signal_start(&a->a_sigint, agent_on_signal, SIGINT);
	uv_signal_start(&a->a_sighup, agent_on_signal, SIGHUP);
	if (a->a_poller != NULL)
		poller_start(a->a_poller);
	return 0;
}

/*
 * Shutdown chain: control plane client closed (no new commands; results
 * from here on wait in the journal) -> control socket closed -> metrics ->
 * engine drained -> journal -> virt.
 */

static void
agent_virt_closed(void *arg)
{
	struct agent *a = arg;

	a->a_virt = NULL;
	uv_close((uv_handle_t *)&a->a_sigterm, NULL);
	uv_close((uv_handle_t *)&a->a_sigint, NULL);
	uv_close((uv_handle_t *)&a->a_sighup, NULL);
	log_info("agent", "stopped");
}

static void
agent_journal_closed(void *arg)
{
	struct agent *a = arg;

	a->a_journal = NULL;
	virt_close(a->a_virt, agent_virt_closed, a);
}

static void
agent_drained(void *arg)
{
	struct agent *a = arg;

	journal_close(a->a_journal, agent_journal_closed, a);
}

static void
agent_images_closed(void *arg)
{
	struct agent *a = arg;

	a->a_images = NULL;
	engine_drain(a->a_engine, agent_drained, a);
}

static void
agent_metrics_closed(void *arg)
{
	struct agent *a = arg;

	a->a_metrics = NULL;
	/* Fetches fail first (not journaled: the sender retries), so the
	 * creates waiting on them are answered before the drain. */
	if (a->a_images != NULL)
		images_close(a->a_images, agent_images_closed, a);
	else
		agent_images_closed(a);
}

static void
agent_control_closed(void *arg)
{
	struct agent *a = arg;

	a->a_control = NULL;
	if (a->a_metrics)
		metrics_close(a->a_metrics, agent_metrics_closed, a);
	else
		agent_metrics_closed(a);
}

static void
agent_poller_closed(void *arg)
{
	struct agent *a = arg;

	if (a->a_control)
		control_close(a->a_control, agent_control_closed, a);
	else
		agent_control_closed(a);
}

void
agent_stop(struct agent *a)
{
	if (a->a_stopping)
		return;
	a->a_stopping = true;
	uv_signal_stop(&a->a_sighup);
	/* The poller stays allocated until agent_fini: the engine may still
	 * call it back while draining. */
	if (a->a_poller)
		poller_close(a->a_poller, agent_poller_closed, a);
	else
		agent_poller_closed(a);
}

void
agent_fini(struct agent *a)
{
	engine_free(a->a_engine);
	poller_free(a->a_poller);
	agent_view_clear(a->a_vms);
	strmap_free(a->a_dirty);
	strmap_free(a->a_removed);
	host_inventory_clear(&a->a_inv);
	free(a->a_image_dir);
	free(a->a_disk_dir);
}
