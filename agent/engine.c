/*
 * The command engine: see engine.h for the contract.
 *
 * Record life: ADMITTING -> (journal accept) -> QUEUED -> RUNNING ->
 * FINISHING (journal finish) -> DONE. Every record stays in e->cmds (by id)
 * and e->all (acceptance order) so a re-delivered id is answered without
 * running again; records loaded from the journal enter as DONE, or as
 * QUEUED+recovering when the agent died before their result.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "agent/agent.h"
#include "agent/engine.h"
#include "agent/handlers.h"
#include "agent/images.h"
#include "agent/journal.h"
#include "agent/migrate.h"
#include "agent/poller.h"
#include "agent/virt.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/strmap.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

/* Results are kept (journal and memory) for a week: longer than any
 * control plane keeps re-delivering a command. */
#define ENGINE_RETAIN_MS (7LL * 24 * 3600 * 1000)
#define ENGINE_PRUNE_MS  (3600 * 1000)
#define ENGINE_RETRY_MS  1000
/* A progress message as shown and posted (proto: PROTO_PROGRESS_MSG_MAX). */
#define ENGINE_PROGRESS_MSG 256
/* The queue of a VM's unordered commands (cancel): "<vm_id>/u". */
#define ENGINE_QKEY_MAX (IDS_UUID_LEN + 8)

enum ecmd_state {
	EC_ADMITTING,
	EC_QUEUED,
	EC_RUNNING,
	EC_FINISHING,
	EC_DONE,
};

struct waiter {
	struct waiter *next;
	engine_result_cb cb;
	void *arg;
};

struct vmq;

struct ecmd {
	struct engine *e;
	enum ecmd_state state;
	enum journal_origin origin;
	bool durable;                 /* DONE and the result is journaled */
	bool reported;                /* the control plane has the result */
	struct command cmd;           /* cleared once DONE */
	const struct handler *h;
	bool recovering;
	bool preparing;               /* h_prepare running (ADMITTING) */
	struct cap_request claim;     /* a resize's: its target size */
	bool claimed;
	bool growing;                 /* a resize on e->growing */
	unsigned virt_gen;            /* libvirt connection it ran on */
	unsigned finish_tries;        /* journal_finish failures so far */
	struct carve_error reject;    /* set when admission refused it */
	struct command_result res;    /* valid once FINISHING */
	struct waiter *waiters;
	struct vmq *q;
	char *cmd_json;
	int64_t started_mono;
	struct handler_job job;
	uv_work_t work;
	/* vm.migrate: a vm.migrate.cancel asked to stop it (read by the
	 * worker); vm.migrate.cancel: it found a vm.migrate to stop. */
	atomic_bool abort;
	bool abort_pending;
	/* Progress (see hj_progress): written by the worker under
	 * e->prog_mu, picked up on the loop. */
	bool prog_new;
	int prog_percent;
	char prog_msg[ENGINE_PROGRESS_MSG];
	/* The loop's copy, for carvectl status. */
	bool prog_shown;
	int prog_shown_percent;
	char prog_shown_msg[ENGINE_PROGRESS_MSG];
	TAILQ_ENTRY(ecmd) run_link;   /* e->running_q while RUNNING */
	TAILQ_ENTRY(ecmd) q_link;
	TAILQ_ENTRY(ecmd) all_link;
	TAILQ_ENTRY(ecmd) retry_link;  /* waiting to retry journal_finish */
	TAILQ_ENTRY(ecmd) grow_link;   /* on e->growing */
};

/* The commands of one VM, run strictly in order. */
struct vmq {
	char vm_id[ENGINE_QKEY_MAX + 1];  /* the queue's key */
	TAILQ_HEAD(, ecmd) cmds;
	bool busy;                    /* head is running or finishing */
	bool on_ready;
	TAILQ_ENTRY(vmq) ready_link;
};

struct engine {
	struct agent *a;
	/* Fault injection for the crash tests (CARVED_TEST_DELAY_{BEFORE,
	 * AFTER,MID}_MS): widen the windows in which kill -9 must be
	 * survived (MID: inside a handler, see handler_job). */
	unsigned delay_before_ms, delay_after_ms, delay_mid_ms;
	unsigned max;
	unsigned running;
	unsigned limited;             /* running ones counted against max */
	unsigned queued;
	unsigned finishing;
	unsigned preparing;
	bool ready;
	bool draining;
	void (*drain_cb)(void *);
	void *drain_arg;
	struct strmap *cmds;          /* id -> ecmd */
	struct strmap *queues;        /* vm_id -> vmq */
	struct strmap *creating;      /* vm_id -> ecmd (create not finished) */
	/* Incoming migrations: vm_id -> struct migrate_reservation, from the
	 * prepare's success until the finish (durable: migrate.h). */
	struct strmap *reserved;
	/* Outgoing: vm_id -> ecmd of its vm.migrate, until its result. */
	struct strmap *migrating;
	TAILQ_HEAD(, ecmd) running_q;
	pthread_mutex_t prog_mu;
	uv_async_t prog_async;
	TAILQ_HEAD(, vmq) ready_q;
	TAILQ_HEAD(ecmd_all, ecmd) all;
	TAILQ_HEAD(, ecmd) retry;
	/* Resizes admitted and not finished: their growth is claimed. */
	TAILQ_HEAD(ecmd_growing, ecmd) growing;
	struct engine_type_stats stats[CMD_TYPE_MAX];
	/* Set on drain: long waits (graceful stop) give up, the command
	 * stays accepted and is recovered at the next start. */
	atomic_bool cancel;
	uv_timer_t timer;             /* journal retries, pruning */
	bool timer_armed;
	/* Told of every durable result of a control-plane command. */
	engine_result_cb report_cb;
	void *report_arg;
};

static void engine_kick(struct engine *e);
static void engine_on_progress(uv_async_t *h);

static void ecmd_write_result(struct engine *e, struct ecmd *c);
static void ecmd_free(struct ecmd *c);

/* Drop results older than the retention from memory (the journal prunes
 * its copy at start-up); records are in acceptance order. */
static void
engine_prune(struct engine *e)
{
	int64_t cutoff = time_now_ms() - ENGINE_RETAIN_MS;
	struct ecmd *c, *next;

	for (c = TAILQ_FIRST(&e->all); c != NULL; c = next) {
		next = TAILQ_NEXT(c, all_link);
		if (c->res.res_accepted_at_ms >= cutoff)
			break;
		if (c->state != EC_DONE || c->res.res_finished_at_ms >= cutoff)
			continue;
		/* Like the journal: a result the control plane has not got
		 * yet is kept, however old. */
		if (c->origin == JOURNAL_ORIGIN_CP && !c->reported)
			continue;
		TAILQ_REMOVE(&e->all, c, all_link);
		strmap_del(e->cmds, c->res.res_command_id);
		ecmd_free(c);
	}
}

static void
engine_on_timer(uv_timer_t *t)
{
	struct engine *e = t->data;
	struct ecmd *c;
	TAILQ_HEAD(, ecmd) batch = TAILQ_HEAD_INITIALIZER(batch);

	TAILQ_CONCAT(&batch, &e->retry, retry_link);
	while ((c = TAILQ_FIRST(&batch)) != NULL) {
		TAILQ_REMOVE(&batch, c, retry_link);
		ecmd_write_result(e, c);
	}
	if (e->timer_armed) {
		/* Back to the slow housekeeping period. */
		e->timer_armed = false;
		uv_timer_start(&e->timer, engine_on_timer, ENGINE_PRUNE_MS,
		    ENGINE_PRUNE_MS);
	}
	engine_prune(e);
}

static void
engine_arm_timer(struct engine *e)
{
	if (e->timer_armed)
		return;
	e->timer_armed = true;
	uv_timer_start(&e->timer, engine_on_timer, ENGINE_RETRY_MS,
	    ENGINE_RETRY_MS);
}

static unsigned
engine_env_ms(const char *name)
{
	const char *s = getenv(name);
	char *end;
	unsigned long v;

	if (s == NULL || *s == '\0')
		return 0;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > 600000) {
		log_warn("engine", "ignoring %s=%s (want 0..600000)", name, s);
		return 0;
	}
	log_warn("engine", "fault injection: %s=%lu", name, v);
	return (unsigned)v;
}

struct engine *
engine_new(struct agent *a, unsigned max_concurrent)
{
	struct engine *e = xcalloc(1, sizeof(*e));

	e->a = a;
	e->max = max_concurrent ? max_concurrent : 1;
	e->delay_before_ms = engine_env_ms("CARVED_TEST_DELAY_BEFORE_MS");
	e->delay_after_ms = engine_env_ms("CARVED_TEST_DELAY_AFTER_MS");
	e->delay_mid_ms = engine_env_ms("CARVED_TEST_DELAY_MID_MS");
	e->cmds = strmap_new();
	e->queues = strmap_new();
	e->creating = strmap_new();
	e->reserved = strmap_new();
	e->migrating = strmap_new();
	TAILQ_INIT(&e->running_q);
	pthread_mutex_init(&e->prog_mu, NULL);
	uv_async_init(a->a_loop, &e->prog_async, engine_on_progress);
	e->prog_async.data = e;
	uv_unref((uv_handle_t *)&e->prog_async);
	TAILQ_INIT(&e->ready_q);
	TAILQ_INIT(&e->all);
	TAILQ_INIT(&e->retry);
	TAILQ_INIT(&e->growing);
	uv_timer_init(a->a_loop, &e->timer);
	e->timer.data = e;
	/* The housekeeping timer alone must not keep the loop alive. */
	uv_unref((uv_handle_t *)&e->timer);
	uv_timer_start(&e->timer, engine_on_timer, ENGINE_PRUNE_MS,
	    ENGINE_PRUNE_MS);
	return e;
}

static void
ecmd_free(struct ecmd *c)
{
	struct waiter *w, *next;

	for (w = c->waiters; w != NULL; w = next) {
		next = w->next;
		free(w);
	}
	command_clear(&c->cmd);
	command_result_clear(&c->res);
	free(c->cmd_json);
	free(c);
}

void
engine_free(struct engine *e)
{
	struct ecmd *c, *next;
	struct strmap_iter it;
	void *v;

	if (e == NULL)
		return;
	for (c = TAILQ_FIRST(&e->all); c != NULL; c = next) {
		next = TAILQ_NEXT(c, all_link);
		ecmd_free(c);
	}
	it = strmap_iter(e->queues);
	while (strmap_next(e->queues, &it, NULL, &v))
		free(v);
	strmap_free(e->queues);
	strmap_free(e->cmds);
	strmap_free(e->creating);
	it = strmap_iter(e->reserved);
	while (strmap_next(e->reserved, &it, NULL, &v))
		free(v);
	strmap_free(e->reserved);
	strmap_free(e->migrating);
	pthread_mutex_destroy(&e->prog_mu);
	free(e);
}

/* ---- per-VM queues ---- */

static struct vmq *
vmq_get(struct engine *e, const char *vm_id)
{
	struct vmq *q = strmap_get(e->queues, vm_id);

	if (q == NULL) {
		q = xcalloc(1, sizeof(*q));
		snprintf(q->vm_id, sizeof(q->vm_id), "%s", vm_id);
		TAILQ_INIT(&q->cmds);
		strmap_put(e->queues, vm_id, q);
	}
	return q;
}

static void
vmq_mark_ready(struct engine *e, struct vmq *q, bool front)
{
	if (q->on_ready || q->busy || TAILQ_EMPTY(&q->cmds))
		return;
	if (front)
		TAILQ_INSERT_HEAD(&e->ready_q, q, ready_link);
	else
		TAILQ_INSERT_TAIL(&e->ready_q, q, ready_link);
	q->on_ready = true;
}

static void
ecmd_enqueue(struct engine *e, struct ecmd *c)
{
	char key[ENGINE_QKEY_MAX + 1];
	struct vmq *q;

	/* Unordered commands have a queue of their own per VM. */
	snprintf(key, sizeof(key), "%s%s", c->cmd.cmd_vm_id,
	    c->h != NULL && c->h->h_unordered ? "/u" : "");
	q = vmq_get(e, key);

	c->q = q;
	c->state = EC_QUEUED;
	e->queued++;
	TAILQ_INSERT_TAIL(&q->cmds, c, q_link);
	vmq_mark_ready(e, q, false);
}

/* ---- results ---- */

static void
ecmd_reply(struct ecmd *c)
{
	struct waiter *w = c->waiters, *next;

	c->waiters = NULL;
	for (; w != NULL; w = next) {
		next = w->next;
		w->cb(&c->res, w->arg);
		free(w);
	}
}

static void
engine_check_drained(struct engine *e)
{
	void (*cb)(void *);

	if (!e->draining || e->running > 0 || e->finishing > 0 ||
	    e->preparing > 0 || !e->drain_cb)
		return;
	cb = e->drain_cb;
	e->drain_cb = NULL;
	uv_timer_stop(&e->timer);
	uv_close((uv_handle_t *)&e->timer, NULL);
	uv_close((uv_handle_t *)&e->prog_async, NULL);
	cb(e->drain_arg);
}

static void
ecmd_release_claim(struct engine *e, struct ecmd *c)
{
	if (c->h != NULL && c->h->h_creates_vm &&
	    strmap_get(e->creating, c->cmd.cmd_vm_id) == c)
		strmap_del(e->creating, c->cmd.cmd_vm_id);
	/* The view already shows the size it left (engine_apply_view). */
	if (c->growing) {
		TAILQ_REMOVE(&e->growing, c, grow_link);
		c->growing = false;
	}
	if (c->h != NULL && c->h->h_migrates_out &&
	    strmap_get(e->migrating, c->cmd.cmd_vm_id) == c)
		strmap_del(e->migrating, c->cmd.cmd_vm_id);
	c->claimed = false;
}

/*
 * The size a VM counts at now: the view's, or while its create is in
 * flight, what the create claims. False when neither knows it.
 */
static bool
engine_vm_size(struct engine *e, const char *vm_id, struct cap_request *out)
{
	const struct vm_info *vm = strmap_get(e->a->a_vms, vm_id);
	const struct ecmd *cr;

	memset(out, 0, sizeof(*out));
	if (vm != NULL) {
		out->amount[CAP_VCPU] = vm->vm_vcpus;
		out->amount[CAP_MEMORY_MIB] = vm->vm_memory_mib;
		out->amount[CAP_DISK_GIB] = vm_info_disk_gib_total(vm);
		return true;
	}
	if ((cr = strmap_get(e->creating, vm_id)) != NULL && cr->claimed) {
		*out = cr->claim;
		return true;
	}
	return false;
}

/*
 * The growth the resizes in flight on vm_id claim, with extra (a resize
 * being admitted, or NULL) counted among them.
 */
static void
engine_vm_growth(struct engine *e, const char *vm_id,
    const struct cap_request *extra, struct cap_request *out)
{
	struct cap_request cur, *targets;
	struct ecmd *c;
	size_t n = 0, max = 1;

	memset(out, 0, sizeof(*out));
	if (!engine_vm_size(e, vm_id, &cur))
		return;
	TAILQ_FOREACH(c, &e->growing, grow_link)
		max++;
	targets = xcalloc(max, sizeof(*targets));
	TAILQ_FOREACH(c, &e->growing, grow_link)
		if (strcmp(c->cmd.cmd_vm_id, vm_id) == 0)
			targets[n++] = c->claim;
	if (extra != NULL)
		targets[n++] = *extra;
	capacity_growth(&cur, targets, n, out);
	free(targets);
}

static void
engine_add_growing(struct engine *e, struct ecmd *c)
{
	c->h->h_resize(&c->cmd, &c->claim);
	TAILQ_INSERT_TAIL(&e->growing, c, grow_link);
	c->growing = true;
	c->claimed = true;
}

/*
 * The command is over: the images its prepare step ensured may be
 * collected again (a volume made on one keeps it in use). The cache is
 * gone during the shutdown drain, and its pins with it.
 */
static void
ecmd_unpin(struct engine *e, struct ecmd *c)
{
	if (e->a->a_images != NULL)
		images_unpin(e->a->a_images, c->cmd.cmd_id);
}

static void
ecmd_finished_durable(struct journal *j, int status, void *arg)
{
	struct ecmd *c = arg;
	struct engine *e = c->e;
	struct vmq *q = c->q;

	(void)j;
	if (status == -ENOENT) {
		/* No accepted record to finish: a bug, and retrying cannot
		 * help. Answer rather than hang (the effect, if any, is done). */
		log_error("engine", "journal has no record of command %s to "
		    "finish", c->res.res_command_id);
		status = 0;
	}
	if (status < 0) {
		/* Nobody is told a result that is not durable: keep the VM's
		 * queue blocked and try again. */
		c->finish_tries++;
		log_error("engine", "cannot journal the result of command %s "
		    "(%s); retrying (attempt %u)", c->res.res_command_id,
		    strerror(-status), c->finish_tries);
		TAILQ_INSERT_TAIL(&e->retry, c, retry_link);
		engine_arm_timer(e);
		return;
	}
	e->finishing--;
	c->state = EC_DONE;
	c->durable = true;
	if ((int)c->res.res_type >= 0 && c->res.res_type < CMD_TYPE_MAX) {
		struct engine_type_stats *st = &e->stats[c->res.res_type];
		if (c->res.res_status == CMD_STATUS_SUCCEEDED)
			st->succeeded++;
		else
			st->failed++;
		st->duration_ms_sum += (uint64_t)(time_now_ms() -
		    c->res.res_accepted_at_ms);
	}
	if (q != NULL) {
		TAILQ_REMOVE(&q->cmds, c, q_link);
		c->q = NULL;
		q->busy = false;
		if (TAILQ_EMPTY(&q->cmds)) {
			strmap_del(e->queues, q->vm_id);
			free(q);
		} else {
			vmq_mark_ready(e, q, false);
		}
	}
	/* Keep only what a re-delivery needs to be answered (c->res). */
	free(c->cmd_json);
	c->cmd_json = NULL;
	command_clear(&c->cmd);
	/* Before the waiters: the reporter sees the result first, so it can
	 * tell a re-delivery's answer from news. */
	if (c->durable && c->origin == JOURNAL_ORIGIN_CP && e->report_cb != NULL)
		e->report_cb(&c->res, e->report_arg);
	ecmd_reply(c);
	engine_check_drained(e);
	engine_kick(e);
}

static void
ecmd_write_result(struct engine *e, struct ecmd *c)
{
	json_object *o = command_result_encode(&c->res);
	char *js = jsonx_to_string(o);

	json_object_put(o);
	journal_finish(e->a->a_journal, c->res.res_command_id,
	    c->res.res_status, js, c->res.res_finished_at_ms,
	    ecmd_finished_durable, c);
	free(js);
}

/* Fill the result from err/data and make it durable; then reply. */
static void
ecmd_finish(struct engine *e, struct ecmd *c, const struct carve_error *err,
    json_object *data)
{
	ecmd_release_claim(e, c);
	ecmd_unpin(e, c);
	snprintf(c->res.res_command_id, sizeof(c->res.res_command_id), "%s",
	    c->cmd.cmd_id);
	snprintf(c->res.res_vm_id, sizeof(c->res.res_vm_id), "%s",
	    c->cmd.cmd_vm_id);
	c->res.res_type = c->cmd.cmd_type;
	if (error_isset(err)) {
		c->res.res_status = CMD_STATUS_FAILED;
		c->res.res_error = *err;
		if (data)
			json_object_put(data);
	} else {
		c->res.res_status = CMD_STATUS_SUCCEEDED;
		c->res.res_data = data;
	}
	c->res.res_finished_at_ms = time_now_ms();
	c->state = EC_FINISHING;
	e->finishing++;
	log_kv(c->res.res_status == CMD_STATUS_SUCCEEDED ? LOG_LVL_INFO :
	    LOG_LVL_WARN, "engine", "command finished",
	    "command_id", c->res.res_command_id,
	    "type", command_type_name(c->res.res_type),
	    "vm_id", c->res.res_vm_id,
	    "status", command_status_name(c->res.res_status),
	    "error", error_isset(err) ? error_code_name(err->code) : "",
	    "detail", error_isset(err) ? err->message : "", (char *)NULL);
	ecmd_write_result(e, c);
}

/* ---- running ---- */

static void
engine_work(uv_work_t *w)
{
	struct ecmd *c = w->data;

	if (c->e->delay_before_ms)
		time_sleep_ms(c->e->delay_before_ms);
	if (c->recovering && c->h->h_recover != NULL)
		c->h->h_recover(&c->job);
	else
		c->h->h_run(&c->job);
	if (c->e->delay_after_ms)
		time_sleep_ms(c->e->delay_after_ms);
	virConnectClose(c->job.hj_conn);
	c->job.hj_conn = NULL;
}

static void
engine_apply_view(struct engine *e, struct ecmd *c)
{
	struct handler_job *j = &c->job;

	if (j->hj_vm_gone)
		agent_vm_remove(e->a, c->cmd.cmd_vm_id);
	else if (j->hj_has_vm)
		agent_vm_put(e->a, &j->hj_vm);
}

static void
engine_work_done(uv_work_t *w, int status)
{
	struct ecmd *c = w->data;
	struct engine *e = c->e;
	struct handler_job *j = &c->job;

	(void)status;
	e->running--;
	if (!c->h->h_own_limit)
		e->limited--;
	TAILQ_REMOVE(&e->running_q, c, run_link);
	pthread_mutex_lock(&e->prog_mu);
	c->prog_new = false;
	pthread_mutex_unlock(&e->prog_mu);
	c->prog_shown = false;
	free(j->hj_kernel_dir);
	free(j->hj_console_log);
	free(j->hj_image_dir);
	free(j->hj_disk_dir);
	free(j->hj_pool);
	free(j->hj_seed_dir);
	j->hj_kernel_dir = j->hj_console_log = NULL;
	j->hj_image_dir = j->hj_disk_dir = j->hj_seed_dir = j->hj_pool = NULL;
	if (j->hj_err.code == CARVE_EUNAVAIL) {
		/* libvirt went away under the command: run it again once back. */
		log_warn("engine", "command %s interrupted: %s; will retry after "
		    "reconnecting", c->cmd.cmd_id, j->hj_err.message);
		if (j->hj_data)
			json_object_put(j->hj_data);
		j->hj_data = NULL;
		c->state = EC_QUEUED;
		/* The effect may have happened: finish through the recovery
		 * step (a reboot must not happen twice). */
		c->recovering = true;
		e->queued++;
		c->q->busy = false;
		vmq_mark_ready(e, c->q, true);
		if (!e->draining)
			virt_report_dead(e->a->a_virt, c->virt_gen);
		engine_check_drained(e);
		return;
	}
	engine_apply_view(e, c);
	if (c->h->h_done != NULL)
		c->h->h_done(e->a, &c->cmd, j, error_isset(&j->hj_err) ?
		    &j->hj_err : NULL);
	log_debug("engine", "command %s ran in %lld ms", c->cmd.cmd_id,
	    (long long)(time_mono_ms() - c->started_mono));
	ecmd_finish(e, c, &j->hj_err, j->hj_data);
	j->hj_data = NULL;
}

static char *
engine_console_log(struct engine *e, const char *vm_id)
{
	const struct carved_conf *conf = e->a->a_conf;

	if (strcmp(e->a->a_inv.domain_type, "test") == 0 ||
	    conf->console_log_dir == NULL || conf->console_log_dir[0] == '\0')
		return NULL;
	return xasprintf("%s/carve-%s.console.log", conf->console_log_dir, vm_id);
}

/* ---- progress ---- */

/* Any thread: keep the newest progress and wake the loop. */
static void
engine_job_progress(struct handler_job *j, int percent, const char *message)
{
	struct ecmd *c = (struct ecmd *)(void *)((char *)j -
	    offsetof(struct ecmd, job));
	struct engine *e = c->e;

	pthread_mutex_lock(&e->prog_mu);
	c->prog_new = true;
	c->prog_percent = percent < 0 ? 0 : percent > 100 ? 100 : percent;
	snprintf(c->prog_msg, sizeof(c->prog_msg), "%s",
	    message != NULL ? message : "");
	pthread_mutex_unlock(&e->prog_mu);
	uv_async_send(&e->prog_async);
}

/* Loop: show and post what the running commands reported. */
static void
engine_on_progress(uv_async_t *h)
{
	struct engine *e = h->data;
	struct ecmd *c;

	TAILQ_FOREACH(c, &e->running_q, run_link) {
		pthread_mutex_lock(&e->prog_mu);
		if (!c->prog_new) {
			pthread_mutex_unlock(&e->prog_mu);
			continue;
		}
		c->prog_new = false;
		c->prog_shown = true;
		c->prog_shown_percent = c->prog_percent;
		memcpy(c->prog_shown_msg, c->prog_msg, sizeof(c->prog_msg));
		pthread_mutex_unlock(&e->prog_mu);
		log_kv(LOG_LVL_DEBUG, "engine", "progress", "command_id",
		    c->cmd.cmd_id, "message", c->prog_shown_msg, (char *)NULL);
		if (c->origin == JOURNAL_ORIGIN_CP && e->a->a_poller != NULL)
			poller_progress(e->a->a_poller, c->cmd.cmd_id,
			    c->prog_shown_percent, c->prog_shown_msg);
	}
}

/* Start c on the pool; false when libvirt is not available right now. */
static bool
engine_start(struct engine *e, struct ecmd *c)
{
	struct handler_job *j = &c->job;
	const struct carved_conf *conf = e->a->a_conf;
	virConnectPtr conn = virt_conn(e->a->a_virt);

	if (conn == NULL)
		return false;
	memset(j, 0, sizeof(*j));
	j->hj_conn = conn;
	j->hj_cmd = &c->cmd;
	snprintf(j->hj_domain_type, sizeof(j->hj_domain_type), "%s",
	    e->a->a_inv.domain_type);
	j->hj_kernel_dir = conf->kernel_dir ? xstrdup(conf->kernel_dir) : NULL;
	j->hj_console_log = engine_console_log(e, c->cmd.cmd_vm_id);
	j->hj_image_dir = xstrdup(e->a->a_image_dir);
	j->hj_disk_dir = xstrdup(e->a->a_disk_dir);
	j->hj_pool = xstrdup(conf->storage_pool);
	j->hj_seed_dir = xasprintf("%s/seeds", conf->state_dir);
	j->hj_stop_timeout_s = conf->stop_timeout_s;
	j->hj_max_vcpus_factor = conf->max_vcpus_factor;
	j->hj_max_memory_factor = conf->max_memory_factor;
	j->hj_host_cpus = e->a->a_inv.cpus;
	j->hj_host_memory_mib = e->a->a_inv.memory_mib;
	j->hj_now_ms = time_now_ms();
	j->hj_accepted_at_ms = c->res.res_accepted_at_ms;
	j->hj_cancel = &e->cancel;
	j->hj_conf = conf;
	snprintf(j->hj_node_name, sizeof(j->hj_node_name), "%s",
	    conf->node_name);
	j->hj_abort = &c->abort;
	j->hj_progress = engine_job_progress;
	if (c->h->h_unordered) {
		/* A cancel: stop the VM's migration where it is (queued,
		 * starting or running; the worker checks the flag). */
		struct ecmd *m = strmap_get(e->migrating, c->cmd.cmd_vm_id);

		if (m != NULL) {
			atomic_store(&m->abort, true);
			c->abort_pending = true;
		}
	}
	j->hj_abort_pending = c->abort_pending;
	j->hj_test_delay_mid_ms = e->delay_mid_ms;
	c->virt_gen = virt_generation(e->a->a_virt);
	c->state = EC_RUNNING;
	c->started_mono = time_mono_ms();
	e->queued--;
	e->running++;
	if (!c->h->h_own_limit)
		e->limited++;
	TAILQ_INSERT_TAIL(&e->running_q, c, run_link);
	c->work.data = c;
	log_kv(LOG_LVL_INFO, "engine", c->recovering ? "recovering command" :
	    "running command", "command_id", c->cmd.cmd_id,
	    "type", command_type_name(c->cmd.cmd_type),
	    "vm_id", c->cmd.cmd_vm_id, (char *)NULL);
	uv_queue_work(e->a->a_loop, &c->work, engine_work, engine_work_done);
	return true;
}

static void
engine_kick(struct engine *e)
{
	struct vmq *q, *next;
	struct ecmd *c;

	/*
	 * In order, but a command with a limit of its own (a migration, a
	 * cancel) passes the ones waiting for a max_concurrent_ops slot.
	 */
	for (q = TAILQ_FIRST(&e->ready_q); q != NULL && e->ready &&
	    !e->draining; q = next) {
		next = TAILQ_NEXT(q, ready_link);
		c = TAILQ_FIRST(&q->cmds);
		if (!c->h->h_own_limit && e->limited >= e->max)
			continue;
		TAILQ_REMOVE(&e->ready_q, q, ready_link);
		q->on_ready = false;
		q->busy = true;
		if (!engine_start(e, c)) {
			q->busy = false;
			vmq_mark_ready(e, q, true);
			return;
		}
	}
}

void
engine_set_ready(struct engine *e, bool ready)
{
	e->ready = ready;
	engine_kick(e);
}

/* ---- submission ---- */

static void
engine_reply_now(const struct command_result *res, engine_result_cb cb,
    void *arg)
{
	cb(res, arg);
}

/* Reject without recording: the command never got an id slot. */
static void
engine_reject(const struct command *cmd, const struct carve_error *err,
    engine_result_cb cb, void *arg)
{
	struct command_result res;

	memset(&res, 0, sizeof(res));
	snprintf(res.res_command_id, sizeof(res.res_command_id), "%s", cmd->cmd_id);
	snprintf(res.res_vm_id, sizeof(res.res_vm_id), "%s", cmd->cmd_vm_id);
	res.res_type = cmd->cmd_type;
	res.res_status = CMD_STATUS_FAILED;
	res.res_error = *err;
	res.res_accepted_at_ms = res.res_finished_at_ms = time_now_ms();
	engine_reply_now(&res, cb, arg);
}

static void
ecmd_add_waiter(struct ecmd *c, engine_result_cb cb, void *arg)
{
	struct waiter *w = xcalloc(1, sizeof(*w));

	w->cb = cb;
	w->arg = arg;
	w->next = c->waiters;
	c->waiters = w;
}

/*
 * A VM that is leaving (its vm.migrate not done) takes only cancels; one
 * that is arriving (a reservation here) only its finish.
 */
static int
engine_migration_admit(struct engine *e, struct ecmd *c,
    struct carve_error *err)
{
	const struct command *cmd = &c->cmd;
	const struct migrate_reservation *r;
	const struct ecmd *m;

	if ((m = strmap_get(e->migrating, cmd->cmd_vm_id)) != NULL &&
	    !c->h->h_unordered)
		return error_set(err, CARVE_ECONFLICT, "VM %s is being migrated "
		    "(command %s); only vm.migrate.cancel is taken until that "
		    "ends", cmd->cmd_vm_id, m->cmd.cmd_id);
	if ((r = strmap_get(e->reserved, cmd->cmd_vm_id)) != NULL &&
	    cmd->cmd_type != CMD_VM_MIGRATE_FINISH &&
	    cmd->cmd_type != CMD_VM_MIGRATE_CANCEL)
		return error_set(err, CARVE_ECONFLICT, "VM %s is arriving by "
		    "migration from %s (prepared by command %s); only "
		    "vm.migrate.finish is taken until then", cmd->cmd_vm_id,
		    r->mr_source_node, r->mr_command_id);
	return 0;
}

/* Generic admission; the handler adds its own checks. */
static int
engine_admit(struct engine *e, struct ecmd *c, struct carve_error *err)
{
	const struct command *cmd = &c->cmd;
	struct agent *a = e->a;

	if (!a->a_have_inv || !a->a_view_ready)
		return error_set(err, CARVE_EUNAVAIL,
		    "not connected to libvirt yet (%s); try again",
		    virt_last_error(a->a_virt)[0] ? virt_last_error(a->a_virt) :
		    "connecting");
	if (engine_migration_admit(e, c, err) < 0)
		return -1;
	if (c->h->h_creates_vm) {
		if (strmap_get(a->a_vms, cmd->cmd_vm_id) != NULL ||
		    engine_creating(e, cmd->cmd_vm_id))
			return error_set(err, CARVE_ECONFLICT,
			    "a VM with id %s already exists", cmd->cmd_vm_id);
	} else if (strmap_get(a->a_vms, cmd->cmd_vm_id) == NULL &&
	    !engine_creating(e, cmd->cmd_vm_id) && !c->h->h_absent_ok) {
		return error_set(err, CARVE_ENOTFOUND, "no VM with id %s",
		    cmd->cmd_vm_id);
	}
	if (c->h->h_admit && c->h->h_admit(a, cmd, err) < 0)
		return -1;
	memset(&c->claim, 0, sizeof(c->claim));
	if (c->h->h_resize) {
		struct cap_request target, before, after, need;
		struct capacity cap;

		/* Only what this resize adds to the VM's claim must fit. */
		c->h->h_resize(cmd, &target);
		engine_vm_growth(e, cmd->cmd_vm_id, NULL, &before);
		engine_vm_growth(e, cmd->cmd_vm_id, &target, &after);
		for (int i = 0; i < CAP_NCLASSES; i++)
			need.amount[i] = after.amount[i] - before.amount[i];
		if (!agent_capacity(a, &cap))
			return error_set(err, CARVE_EUNAVAIL,
			    "host capacity is not known yet; try again");
		if (capacity_admit_growth(&cap, &target, &need, err) < 0)
			return -1;
		engine_add_growing(e, c);
	}
	if (c->h->h_claim) {
		struct capacity cap;

		c->h->h_claim(cmd, &c->claim);
		if (!agent_capacity(a, &cap))
			return error_set(err, CARVE_EUNAVAIL,
			    "host capacity is not known yet; try again");
		if (capacity_admit(&cap, &c->claim, err) < 0)
			return -1;
	}
	if (c->h->h_creates_vm) {
		strmap_put(e->creating, cmd->cmd_vm_id, c);
		c->claimed = true;
	}
	if (c->h->h_migrates_out)
		strmap_put(e->migrating, cmd->cmd_vm_id, c);
	return 0;
}

/*
 * Forget a command that was never recorded (so a retry can succeed),
 * answering its waiters with err.
 */
static void
ecmd_drop(struct engine *e, struct ecmd *c, const struct carve_error *err)
{
	ecmd_release_claim(e, c);
	ecmd_unpin(e, c);
	strmap_del(e->cmds, c->cmd.cmd_id);
	TAILQ_REMOVE(&e->all, c, all_link);
	c->res.res_accepted_at_ms = time_now_ms();
	snprintf(c->res.res_command_id, sizeof(c->res.res_command_id),
	    "%s", c->cmd.cmd_id);
	snprintf(c->res.res_vm_id, sizeof(c->res.res_vm_id), "%s",
	    c->cmd.cmd_vm_id);
	c->res.res_type = c->cmd.cmd_type;
	c->res.res_status = CMD_STATUS_FAILED;
	c->res.res_error = *err;
	c->res.res_finished_at_ms = time_now_ms();
	ecmd_reply(c);
	ecmd_free(c);
}

static void
ecmd_accept_durable(struct journal *j, int status, void *arg)
{
	struct ecmd *c = arg;
	struct engine *e = c->e;
	struct carve_error err = { 0 };

	(void)j;
	if (status < 0) {
		/* Not recorded, so not run: forget it so a retry can succeed.
		 * A rejection still says why (it did not depend on the disk). */
		if (error_isset(&c->reject))
			err = c->reject;
		else
			error_set(&err, CARVE_EINTERNAL,
			    "cannot record the command in the journal: %s",
			    strerror(-status));
		ecmd_drop(e, c, &err);
		return;
	}
	if (error_isset(&c->reject)) {
		ecmd_finish(e, c, &c->reject, NULL);
		return;
	}
	ecmd_enqueue(e, c);
	engine_kick(e);
}

static bool
engine_same_command(const struct ecmd *c, const struct command *cmd)
{
	if (c->res.res_command_id[0] != '\0' && c->state == EC_DONE)
		return c->res.res_type == cmd->cmd_type &&
		    strcmp(c->res.res_vm_id, cmd->cmd_vm_id) == 0;
	return c->cmd.cmd_type == cmd->cmd_type &&
	    strcmp(c->cmd.cmd_vm_id, cmd->cmd_vm_id) == 0;
}

void
engine_submit(struct engine *e, struct command *cmd, engine_result_cb cb,
    void *arg)
{
	engine_submit_from(e, cmd, JOURNAL_ORIGIN_LOCAL, cb, arg);
}

static void engine_accept(struct engine *e, struct ecmd *c,
    const struct carve_error *err);

static void
engine_prepared(const struct carve_error *perr, void *arg)
{
	struct ecmd *c = arg;
	struct engine *e = c->e;
	struct carve_error err = { 0 };

	c->preparing = false;
	e->preparing--;
	if (perr != NULL)
		err = *perr;
	/* Draining: the journal is about to close; the sender retries. */
	if (e->draining && !error_isset(&err))
		error_set(&err, CARVE_EUNAVAIL, "carved is shutting down");
	if (err.code == CARVE_EUNAVAIL) {
		log_kv(LOG_LVL_WARN, "engine", "command not accepted",
		    "command_id", c->cmd.cmd_id,
		    "type", command_type_name(c->cmd.cmd_type),
		    "vm_id", c->cmd.cmd_vm_id, "error", err.message,
		    (char *)NULL);
		ecmd_drop(e, c, &err);
	} else {
		engine_accept(e, c, &err);
	}
	engine_check_drained(e);
}

void
engine_submit_from(struct engine *e, struct command *cmd,
    enum journal_origin origin, engine_result_cb cb, void *arg)
{
	struct ecmd *c = strmap_get(e->cmds, cmd->cmd_id);
	struct carve_error err = { 0 };

	if (c != NULL) {
		if (!engine_same_command(c, cmd)) {
			error_set(&err, CARVE_ECONFLICT,
			    "command id %s was already used for a different "
			    "command", cmd->cmd_id);
			engine_reject(cmd, &err, cb, arg);
		} else if (c->state == EC_DONE) {
			log_debug("engine", "command %s seen again: answering "
			    "from the journal", cmd->cmd_id);
			engine_reply_now(&c->res, cb, arg);
		} else {
			ecmd_add_waiter(c, cb, arg);
		}
		command_clear(cmd);
		return;
	}
	if (e->draining) {
		error_set(&err, CARVE_EUNAVAIL, "carved is shutting down");
		engine_reject(cmd, &err, cb, arg);
		command_clear(cmd);
		return;
	}

	c = xcalloc(1, sizeof(*c));
	c->e = e;
	c->state = EC_ADMITTING;
	c->origin = origin;
	c->cmd = *cmd;
	memset(cmd, 0, sizeof(*cmd));
	c->h = handler_for(c->cmd.cmd_type);
	c->res.res_accepted_at_ms = time_now_ms();
	if (engine_admit(e, c, &err) < 0 && err.code == CARVE_EUNAVAIL) {
		/* Transient: not recorded, so a re-delivery is judged afresh. */
		engine_reject(&c->cmd, &err, cb, arg);
		ecmd_free(c);
		return;
	}
	ecmd_add_waiter(c, cb, arg);
	strmap_put(e->cmds, c->cmd.cmd_id, c);
	TAILQ_INSERT_TAIL(&e->all, c, all_link);
	if (!error_isset(&err) && c->h->h_prepare != NULL) {
		/* Re-deliveries meanwhile wait with the first submitter. */
		c->preparing = true;
		e->preparing++;
		/*
		 * Every image the prepare step ensures is pinned for this
		 * command until it ends (ecmd_unpin), so garbage
		 * collection cannot take it between the fetch and the effect.
		 * The id is copied: c may be gone when h_prepare returns.
		 */
		if (e->a->a_images != NULL)
			images_pin_scope(e->a->a_images, c->cmd.cmd_id);
		c->h->h_prepare(e->a, &c->cmd, engine_prepared, c);
		if (e->a->a_images != NULL)
			images_pin_scope(e->a->a_images, NULL);
		return;
	}
	engine_accept(e, c, &err);
}

/* Journal an admitted command (or its rejection, err set). */
static void
engine_accept(struct engine *e, struct ecmd *c, const struct carve_error *perr)
{
	struct carve_error err = *perr;
	json_object *o;

	o = command_encode(&c->cmd);
	c->cmd_json = jsonx_to_string(o);
	json_object_put(o);
	/* A permanent rejection is a result like any other: journaled, its
	 * result written once the acceptance is durable. */
	c->reject = err;
	journal_accept(e->a->a_journal, c->cmd.cmd_id,
	    command_type_name(c->cmd.cmd_type), c->cmd.cmd_vm_id, c->cmd_json,
	    c->origin, c->res.res_accepted_at_ms, ecmd_accept_durable, c);
}

/* ---- journal replay ---- */

static void
engine_load_entry(const struct journal_entry *je, void *arg)
{
	struct engine *e = arg;
	struct ecmd *c;
	struct carve_error err = { 0 };
	json_object *o;

	if (strmap_get(e->cmds, je->je_id) != NULL)
		return;
	c = xcalloc(1, sizeof(*c));
	c->e = e;
	c->origin = je->je_origin;
	c->reported = je->je_reported;
	if (je->je_status != CMD_STATUS_ACCEPTED && je->je_result_json != NULL) {
		o = jsonx_parse(je->je_result_json, strlen(je->je_result_json), &err);
		if (o == NULL ||
		    command_result_decode(o, &c->res, &err) < 0) {
			log_error("engine", "journal entry %s has an unreadable "
			    "result, ignoring it: %s", je->je_id, err.message);
			if (o)
				json_object_put(o);
			free(c);
			return;
		}
		json_object_put(o);
		c->state = EC_DONE;
		c->durable = true;
		snprintf(c->cmd.cmd_id, sizeof(c->cmd.cmd_id), "%s", je->je_id);
		strmap_put(e->cmds, je->je_id, c);
		TAILQ_INSERT_TAIL(&e->all, c, all_link);
		return;
	}
	if (command_decode_buf(je->je_command_json, strlen(je->je_command_json),
	    &c->cmd, &err) < 0) {
		log_error("engine", "journal entry %s has an unreadable command, "
		    "ignoring it: %s", je->je_id, err.message);
		free(c);
		return;
	}
	c->h = handler_for(c->cmd.cmd_type);
	c->recovering = true;
	c->res.res_accepted_at_ms = je->je_accepted_at_ms;
	c->cmd_json = xstrdup(je->je_command_json);
	strmap_put(e->cmds, c->cmd.cmd_id, c);
	TAILQ_INSERT_TAIL(&e->all, c, all_link);
	if (c->h->h_creates_vm) {
		/* Its resources stay claimed until recovery settles it. */
		if (c->h->h_claim)
			c->h->h_claim(&c->cmd, &c->claim);
		strmap_put(e->creating, c->cmd.cmd_vm_id, c);
		c->claimed = true;
	}
	/* A resize's growth stays claimed until recovery settles it too. */
	if (c->h->h_resize)
		engine_add_growing(e, c);
	if (c->h->h_migrates_out)
		strmap_put(e->migrating, c->cmd.cmd_vm_id, c);
	ecmd_enqueue(e, c);
	log_warn("engine", "command %s (%s) was accepted but never finished: "
	    "it will be recovered", c->cmd.cmd_id,
	    command_type_name(c->cmd.cmd_type));
}

static void
engine_load_reservation(const struct migrate_reservation *r, void *arg)
{
	struct engine *e = arg;

	log_info("engine", "VM %s: incoming migration from %s still reserved "
	    "(prepared by command %s)", r->mr_vm_id, r->mr_source_node,
	    r->mr_command_id);
	engine_reserve(e, r);
}

int
engine_load(struct engine *e, struct carve_error *err)
{
	if (migrate_reservations_load(e->a->a_conf->state_dir,
	    engine_load_reservation, e, err) < 0)
		return -1;
	return journal_load(e->a->a_journal, time_now_ms(), ENGINE_RETAIN_MS,
	    engine_load_entry, e, err);
}

/* ---- queries ---- */

void
engine_claims(struct engine *e, struct cap_request *sum)
{
	struct strmap_iter it = strmap_iter(e->creating);
	const char *vm_id;
	struct ecmd *c;
	void *v;

	memset(sum, 0, sizeof(*sum));
	while (strmap_next(e->creating, &it, &vm_id, &v)) {
		c = v;
		/* A recovering prepare whose reservation is there already
		 * is counted once, below. */
		if (!c->claimed || strmap_get(e->a->a_vms, vm_id) != NULL ||
		    strmap_get(e->reserved, vm_id) != NULL)
			continue;
		for (int i = 0; i < CAP_NCLASSES; i++)
			sum->amount[i] += c->claim.amount[i];
	}
	it = strmap_iter(e->reserved);
	while (strmap_next(e->reserved, &it, &vm_id, &v)) {
		const struct migrate_reservation *r = v;
		if (strmap_get(e->a->a_vms, vm_id) != NULL)
			continue;
		for (int i = 0; i < CAP_NCLASSES; i++)
			sum->amount[i] += r->mr_claim.amount[i];
	}
	/* Resizes: each VM's growth once, at its first resize in flight. */
	TAILQ_FOREACH(c, &e->growing, grow_link) {
		struct cap_request g;
		struct ecmd *p;

		for (p = TAILQ_PREV(c, ecmd_growing, grow_link); p != NULL;
		    p = TAILQ_PREV(p, ecmd_growing, grow_link))
			if (strcmp(p->cmd.cmd_vm_id, c->cmd.cmd_vm_id) == 0)
				break;
		if (p != NULL)
			continue;
		engine_vm_growth(e, c->cmd.cmd_vm_id, NULL, &g);
		for (int i = 0; i < CAP_NCLASSES; i++)
			sum->amount[i] += g.amount[i];
	}
}

bool
engine_recovering(struct engine *e)
{
	struct ecmd *c;

	TAILQ_FOREACH(c, &e->all, all_link)
		if (c->state != EC_DONE && c->recovering)
			return true;
	return false;
}

bool
engine_creating(struct engine *e, const char *vm_id)
{
	return strmap_get(e->creating, vm_id) != NULL;
}

bool
engine_name_pending(struct engine *e, const char *name)
{
	struct strmap_iter it = strmap_iter(e->creating);
	void *v;

	while (strmap_next(e->creating, &it, NULL, &v)) {
		const struct vm_spec *spec = command_spec(&((struct ecmd *)v)->cmd);
		if (spec != NULL && strcmp(spec->vs_name, name) == 0)
			return true;
	}
	it = strmap_iter(e->reserved);
	while (strmap_next(e->reserved, &it, NULL, &v))
		if (strcmp(((struct migrate_reservation *)v)->mr_vm_name,
		    name) == 0)
			return true;
	return false;
}

/* ---- migrations ---- */

void
engine_reserve(struct engine *e, const struct migrate_reservation *r)
{
	struct migrate_reservation *copy = xmalloc(sizeof(*copy));

	*copy = *r;
	free(strmap_put(e->reserved, copy->mr_vm_id, copy));
}

void
engine_unreserve(struct engine *e, const char *vm_id)
{
	free(strmap_del(e->reserved, vm_id));
}

bool
engine_reserved(struct engine *e, const char *vm_id)
{
	return strmap_get(e->reserved, vm_id) != NULL;
}

bool
engine_migrating(struct engine *e, const char *vm_id)
{
	return strmap_get(e->migrating, vm_id) != NULL;
}

unsigned
engine_incoming(struct engine *e)
{
	struct strmap_iter it = strmap_iter(e->creating);
	unsigned n = (unsigned)strmap_count(e->reserved);
	const char *vm_id;
	void *v;

	while (strmap_next(e->creating, &it, &vm_id, &v))
		if (((struct ecmd *)v)->cmd.cmd_type == CMD_VM_MIGRATE_PREPARE &&
		    strmap_get(e->reserved, vm_id) == NULL)
			n++;
	return n;
}

unsigned
engine_outgoing(struct engine *e)
{
	return (unsigned)strmap_count(e->migrating);
}

json_object *
engine_migrations_encode(struct engine *e)
{
	json_object *o = json_object_new_object(), *in, *out;
	struct strmap_iter it;
	const char *vm_id;
	void *v;

	in = json_object_new_array();
	it = strmap_iter(e->reserved);
	while (strmap_next(e->reserved, &it, &vm_id, &v)) {
		const struct migrate_reservation *r = v;
		json_object *x = json_object_new_object();

		jsonx_add_string(x, "vm_id", r->mr_vm_id);
		jsonx_add_string(x, "name", r->mr_vm_name);
		jsonx_add_string(x, "source_node", r->mr_source_node);
		jsonx_add_string(x, "command_id", r->mr_command_id);
		jsonx_add_int(x, "reserved_at", r->mr_created_at_ms);
		json_object_array_add(in, x);
	}
	out = json_object_new_array();
	it = strmap_iter(e->migrating);
	while (strmap_next(e->migrating, &it, &vm_id, &v)) {
		const struct ecmd *c = v;
		json_object *x = json_object_new_object();

		jsonx_add_string(x, "vm_id", vm_id);
		jsonx_add_string(x, "dest_node",
		    c->cmd.cmd_args.migrate.mg_dest_node);
		jsonx_add_string(x, "command_id", c->cmd.cmd_id);
		jsonx_add_string(x, "state", c->state == EC_RUNNING ?
		    "running" : "queued");
		json_object_array_add(out, x);
	}
	json_object_object_add(o, "incoming", in);
	json_object_object_add(o, "outgoing", out);
	jsonx_add_int(o, "max_incoming", e->a->a_conf->mig_max_incoming);
	jsonx_add_int(o, "max_outgoing", e->a->a_conf->mig_max_outgoing);
	return o;
}

const struct engine_type_stats *
engine_stats(const struct engine *e, enum command_type type)
{
	return &e->stats[type];
}

unsigned
engine_running(const struct engine *e)
{
	return e->running;
}

unsigned
engine_queued(const struct engine *e)
{
	return e->queued;
}

json_object *
engine_inflight_encode(struct engine *e)
{
	json_object *arr = json_object_new_array();
	struct ecmd *c;

	TAILQ_FOREACH(c, &e->all, all_link) {
		json_object *o;
		const char *st;

		if (c->state == EC_DONE)
			continue;
		st = c->state == EC_RUNNING ? "running" :
		    c->state == EC_FINISHING ? "finishing" :
		    c->preparing ? "preparing" :
		    c->state == EC_ADMITTING ? "accepting" : "queued";
		o = json_object_new_object();
		jsonx_add_string(o, "command_id", c->cmd.cmd_id);
		jsonx_add_string(o, "type", command_type_name(c->cmd.cmd_type));
		jsonx_add_string(o, "vm_id", c->cmd.cmd_vm_id);
		jsonx_add_string(o, "state", st);
		jsonx_add_bool(o, "recovering", c->recovering);
		jsonx_add_int(o, "accepted_at", c->res.res_accepted_at_ms);
		if (c->state == EC_RUNNING && c->prog_shown) {
			json_object *pg = json_object_new_object();

			jsonx_add_int(pg, "percent", c->prog_shown_percent);
			jsonx_add_string(pg, "message", c->prog_shown_msg);
			json_object_object_add(o, "progress", pg);
		}
		json_object_array_add(arr, o);
	}
	return arr;
}

json_object *
engine_recent_encode(struct engine *e, unsigned limit)
{
	json_object *arr = json_object_new_array();
	struct ecmd *c;
	unsigned n = 0;

	TAILQ_FOREACH_REVERSE(c, &e->all, ecmd_all, all_link) {
		if (n >= limit)
			break;
		if (c->state != EC_DONE)
			continue;
		json_object_array_add(arr, command_result_encode(&c->res));
		n++;
	}
	return arr;
}

/* ---- reporting to the control plane ---- */

void
engine_set_report_hook(struct engine *e, engine_result_cb cb, void *arg)
{
	e->report_cb = cb;
	e->report_arg = arg;
}

bool
engine_known(struct engine *e, const char *id)
{
	return strmap_get(e->cmds, id) != NULL;
}

bool
engine_result_durable(struct engine *e, const char *id)
{
	struct ecmd *c = strmap_get(e->cmds, id);

	return c != NULL && c->state == EC_DONE && c->durable;
}

void
engine_foreach_unreported(struct engine *e, engine_result_cb cb, void *arg)
{
	struct ecmd *c;

	TAILQ_FOREACH(c, &e->all, all_link)
		if (c->state == EC_DONE && c->durable && !c->reported &&
		    c->origin == JOURNAL_ORIGIN_CP)
			cb(&c->res, arg);
}

static void
engine_reported_durable(struct journal *j, int status, void *arg)
{
	char *id = arg;

	(void)j;
	/* -ENOENT: a rejection that was never journaled; nothing to mark. */
	if (status < 0 && status != -ENOENT)
		log_error("engine", "cannot record that the result of command "
		    "%s was reported (%s): it will be reported again after a "
		    "restart", id, strerror(-status));
	free(id);
}

void
engine_mark_reported(struct engine *e, const char *id)
{
	struct ecmd *c = strmap_get(e->cmds, id);

	if (c != NULL && c->state == EC_DONE && c->durable) {
		if (c->reported)
			return;
		c->reported = true;
	}
	journal_mark_reported(e->a->a_journal, id, engine_reported_durable,
	    xstrdup(id));
}

void
engine_drain(struct engine *e, void (*cb)(void *arg), void *arg)
{
	atomic_store(&e->cancel, true);
	e->draining = true;
	e->drain_cb = cb;
	e->drain_arg = arg;
	engine_check_drained(e);
}
