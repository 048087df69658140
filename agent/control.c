/*
 * The control socket server: newline-delimited JSON requests from carvectl,
 * dispatched through a verb table with per-verb permission (OpenSSH's
 * mon_table shape). Mutating verbs become commands submitted to the same
 * engine, journal and idempotency as commands from the control plane.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/control.h"
#include "agent/ctl_proto.h"
#include "agent/engine.h"
#include "agent/images.h"
#include "api/command.h"
#include "common/ids.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

#define CTL_MAX_GROUPS 256
#define CTL_COMMANDS_DEFAULT 20
#define CTL_COMMANDS_MAX 1000

struct control {
	struct agent *a;
	uv_pipe_t server;
	char *path;
	gid_t group;
	bool have_group;
	struct ctl_client *clients;
	unsigned nclients;
	bool closing;
	int pending_closes;
	void (*close_cb)(void *);
	void *close_arg;
};

struct ctl_client {
	struct control *ctl;
	struct ctl_client *next;
	uv_pipe_t pipe;
	char *buf;
	size_t len, cap;
	bool may_mutate;
	uid_t uid;
	pid_t pid;
	bool busy;            /* a request is being answered */
	bool closed;          /* handle closed (or closing) */
	unsigned refs;        /* pipe + outstanding command callbacks */
};

struct ctl_verb {
	const char *name;
	bool mutating;
	void (*fn)(struct ctl_client *cl, json_object *args);
};

static void client_resume(struct ctl_client *cl);
static void control_maybe_done(struct control *ctl);

/* ---- replies ---- */

struct ctl_write {
	uv_write_t req;
	struct ctl_client *cl;
	char *line;
};

static void
client_unref(struct ctl_client *cl)
{
	if (--cl->refs > 0)
		return;
	free(cl->buf);
	free(cl);
}

static void
client_write_done(uv_write_t *req, int status)
{
	struct ctl_write *w = req->data;
	struct ctl_client *cl = w->cl;

	(void)status;
	free(w->line);
	free(w);
	cl->busy = false;
	if (!cl->closed)
		client_resume(cl);
	client_unref(cl);
}

/* Takes ownership of line. */
static void
client_send(struct ctl_client *cl, char *line)
{
	struct ctl_write *w;
	uv_buf_t b;

	if (cl->closed) {
		free(line);
		cl->busy = false;
		return;
	}
	w = xcalloc(1, sizeof(*w));
	w->cl = cl;
	w->line = line;
	w->req.data = w;
	b = uv_buf_init(line, (unsigned)strlen(line));
	cl->refs++;
	if (uv_write(&w->req, (uv_stream_t *)&cl->pipe, &b, 1,
	    client_write_done) != 0) {
		free(line);
		free(w);
		cl->busy = false;
		cl->refs--;
	}
}

static void
client_ok(struct ctl_client *cl, json_object *result)
{
	client_send(cl, ctl_response_ok(result));
	if (result)
		json_object_put(result);
}

static void
client_err(struct ctl_client *cl, const struct carve_error *err)
{
	client_send(cl, ctl_response_error(err));
}

/* ---- verbs ---- */

static void
verb_status(struct ctl_client *cl, json_object *args)
{
	struct carve_error err = { 0 };
	static const char *const allowed[] = { NULL };

	if (jsonx_check_object(args, "status arguments", allowed, &err) < 0)
		return client_err(cl, &err);
	client_ok(cl, agent_status_encode(cl->ctl->a));
}

static void
verb_capacity(struct ctl_client *cl, json_object *args)
{
	struct agent *a = cl->ctl->a;
	struct carve_error err = { 0 };
	struct capacity cap;
	static const char *const allowed[] = { NULL };
	json_object *o;

	if (jsonx_check_object(args, "capacity arguments", allowed, &err) < 0)
		return client_err(cl, &err);
	if (!agent_capacity(a, &cap)) {
		error_set(&err, CARVE_EUNAVAIL, "host inventory not known yet: "
		    "carved has not connected to libvirt");
		return client_err(cl, &err);
	}
	o = capacity_encode(&cap);
	json_object_object_add(o, "host", host_inventory_encode(&a->a_inv));
	client_ok(cl, o);
}

static int
vm_cmp_name(const void *x, const void *y)
{
	const struct vm_info *const *a = x, *const *b = y;

	return strcmp((*a)->vm_name, (*b)->vm_name);
}

static void
verb_vm_list(struct ctl_client *cl, json_object *args)
{
	struct agent *a = cl->ctl->a;
	struct carve_error err = { 0 };
	static const char *const allowed[] = { NULL };
	struct strmap_iter it;
	struct vm_info **vms;
	size_t n = 0;
	void *v;
	json_object *arr;

	if (jsonx_check_object(args, "vm.list arguments", allowed, &err) < 0)
		return client_err(cl, &err);
	vms = xcalloc(strmap_count(a->a_vms) + 1, sizeof(*vms));
	it = strmap_iter(a->a_vms);
	while (strmap_next(a->a_vms, &it, NULL, &v))
		vms[n++] = v;
	qsort(vms, n, sizeof(*vms), vm_cmp_name);
	arr = json_object_new_array_ext((int)n);
	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, vm_info_encode(vms[i]));
	free(vms);
	client_ok(cl, arr);
}

/* Resolve args.id (UUID or name) to a VM id; false with err set. */
static bool
resolve_vm(struct ctl_client *cl, json_object *args, char out[IDS_UUID_LEN + 1],
    struct carve_error *err)
{
	struct agent *a = cl->ctl->a;
	const char *id = NULL;
	struct vm_info *vm;

	if (jsonx_get_string(args, "id", true, 256, &id, err) < 0)
		return false;
	/* A UUID goes to the engine as is: a re-delivered command about a VM
	 * that is gone by now must still be answered from the journal. */
	if (ids_uuid_valid(id)) {
		ids_uuid_normalize(id, out);
		return true;
	}
	vm = agent_vm_find(a, id);
	if (vm != NULL) {
		snprintf(out, IDS_UUID_LEN + 1, "%s", vm->vm_id);
		return true;
	}
	error_set(err, CARVE_ENOTFOUND, "no VM with id or name \"%s\"", id);
	return false;
}

static void
verb_vm_show(struct ctl_client *cl, json_object *args)
{
	struct carve_error err = { 0 };
	static const char *const allowed[] = { "id", NULL };
	char vm_id[IDS_UUID_LEN + 1];

	struct vm_info *vm;

	if (jsonx_check_object(args, "vm.show arguments", allowed, &err) < 0 ||
	    !resolve_vm(cl, args, vm_id, &err))
		return client_err(cl, &err);
	vm = agent_vm_find(cl->ctl->a, vm_id);
	if (vm == NULL) {
		error_set(&err, CARVE_ENOTFOUND, "no VM with id %s", vm_id);
		return client_err(cl, &err);
	}
	client_ok(cl, vm_info_encode(vm));
}

static void
command_done(const struct command_result *res, void *arg)
{
	struct ctl_client *cl = arg;

	client_ok(cl, command_result_encode(res));
	client_unref(cl);
}

/* Fill cmd's id (given or new) and submit; consumes cmd. */
static void
submit(struct ctl_client *cl, json_object *args, struct command *cmd)
{
	struct carve_error err = { 0 };
	const char *cid = NULL;

	if (jsonx_get_string(args, "command_id", false, IDS_UUID_LEN, &cid,
	    &err) < 0) {
		command_clear(cmd);
		return client_err(cl, &err);
	}
	if (cid != NULL) {
		if (!ids_uuid_valid(cid)) {
			command_clear(cmd);
			error_set(&err, CARVE_EINVAL,
			    "command_id must be a UUID, got \"%s\"", cid);
			return client_err(cl, &err);
		}
		ids_uuid_normalize(cid, cmd->cmd_id);
	} else {
		ids_uuid_new(cmd->cmd_id);
	}
	log_kv(LOG_LVL_INFO, "control", "command submitted by operator",
	    "command_id", cmd->cmd_id, "type", command_type_name(cmd->cmd_type),
	    "vm_id", cmd->cmd_vm_id, (char *)NULL);
	cl->refs++;
	engine_submit(cl->ctl->a->a_engine, cmd, command_done, cl);
}

static void
verb_vm_create(struct ctl_client *cl, json_object *args)
{
	struct carve_error err = { 0 };
	static const char *const allowed[] = { "name", "vcpus", "memory_mib",
	    "disk_gib", "kernel", "initrd", "cmdline", "image",
	    "ssh_authorized_keys", "user_data", "networks", "data_disks",
	    "command_id", "vm_id", NULL };
	static const char *const spec_keys[] = { "name", "vcpus", "memory_mib",
	    "disk_gib", "kernel", "initrd", "cmdline", "image",
	    "ssh_authorized_keys", "user_data", "networks", "data_disks", NULL };
	struct command cmd;
	json_object *spec, *v;
	const char *vm_id = NULL;
	int rc;

	if (jsonx_check_object(args, "vm.create arguments", allowed, &err) < 0 ||
	    jsonx_get_string(args, "vm_id", false, IDS_UUID_LEN, &vm_id, &err) < 0)
		return client_err(cl, &err);
	if (vm_id != NULL && !ids_uuid_valid(vm_id)) {
		error_set(&err, CARVE_EINVAL, "vm_id must be a UUID, got \"%s\"",
		    vm_id);
		return client_err(cl, &err);
	}
	spec = json_object_new_object();
	for (const char *const *k = spec_keys; *k; k++)
		if (json_object_object_get_ex(args, *k, &v))
			json_object_object_add(spec, *k, json_object_get(v));
	memset(&cmd, 0, sizeof(cmd));
	cmd.cmd_type = CMD_VM_CREATE;
	rc = vm_spec_decode(spec, &cmd.cmd_args.create, &err);
	json_object_put(spec);
	if (rc < 0)
		return client_err(cl, &err);
	if (vm_id != NULL) {
		ids_uuid_normalize(vm_id, cmd.cmd_vm_id);
	} else {
		const char *cid = NULL;
		char ncid[IDS_UUID_LEN + 1];

		/* A retry naming only its command id must target the same VM,
		 * or it would be a different command (conflict). */
		(void)jsonx_get_string(args, "command_id", false, IDS_UUID_LEN,
		    &cid, NULL);
		if (cid != NULL && ids_uuid_valid(cid)) {
			ids_uuid_normalize(cid, ncid);
			ids_uuid_derive("carve vm id", ncid, cmd.cmd_vm_id);
		} else {
			ids_uuid_new(cmd.cmd_vm_id);
		}
	}
	submit(cl, args, &cmd);
}

static void
verb_vm_simple(struct ctl_client *cl, json_object *args, enum command_type t)
{
	struct carve_error err = { 0 };
	static const char *const allowed[] = { "id", "command_id", NULL };
	struct command cmd;

	memset(&cmd, 0, sizeof(cmd));
	if (jsonx_check_object(args, "arguments", allowed, &err) < 0 ||
	    !resolve_vm(cl, args, cmd.cmd_vm_id, &err))
		return client_err(cl, &err);
	cmd.cmd_type = t;
	submit(cl, args, &cmd);
}

static void
verb_vm_start(struct ctl_client *cl, json_object *args)
{
	verb_vm_simple(cl, args, CMD_VM_START);
}

static void
verb_vm_reboot(struct ctl_client *cl, json_object *args)
{
	verb_vm_simple(cl, args, CMD_VM_REBOOT);
}

static void
verb_vm_destroy(struct ctl_client *cl, json_object *args)
{
	verb_vm_simple(cl, args, CMD_VM_DESTROY);
}

static void
verb_vm_rebuild(struct ctl_client *cl, json_object *args)
{
	struct carve_error err = { 0 };
	static const char *const allowed[] = { "id", "image", "command_id",
	    NULL };
	struct command cmd;

	memset(&cmd, 0, sizeof(cmd));
	if (jsonx_check_object(args, "vm.rebuild arguments", allowed,
	    &err) < 0 ||
	    !resolve_vm(cl, args, cmd.cmd_vm_id, &err))
		return client_err(cl, &err);
	cmd.cmd_type = CMD_VM_REBUILD;
	if (vm_image_get(args, &cmd.cmd_args.rebuild.image, &err) < 0)
		return client_err(cl, &err);
	submit(cl, args, &cmd);
}

static void
verb_vm_stop(struct ctl_client *cl, json_object *args)
{
	struct carve_error err = { 0 };
	static const char *const allowed[] = { "id", "command_id", "force",
	    "timeout_s", NULL };
	struct command cmd;
	bool force = false;
	int64_t timeout = cl->ctl->a->a_conf->stop_timeout_s;

	memset(&cmd, 0, sizeof(cmd));
	if (jsonx_check_object(args, "vm.stop arguments", allowed, &err) < 0 ||
	    jsonx_get_bool(args, "force", false, &force, &err) < 0 ||
	    jsonx_get_int(args, "timeout_s", false, 1, VM_STOP_TIMEOUT_MAX,
	    &timeout, &err) < 0 ||
	    !resolve_vm(cl, args, cmd.cmd_vm_id, &err))
		return client_err(cl, &err);
	cmd.cmd_type = CMD_VM_STOP;
	cmd.cmd_args.stop.force = force;
	cmd.cmd_args.stop.timeout_s = (unsigned)timeout;
	submit(cl, args, &cmd);
}

static void
verb_vm_resize(struct ctl_client *cl, json_object *args)
{
	struct carve_error err = { 0 };
	static const char *const allowed[] = { "id", "command_id", "vcpus",
	    "memory_mib", NULL };
	static const char *const size_keys[] = { "vcpus", "memory_mib", NULL };
	char vm_id[IDS_UUID_LEN + 1];
	struct command cmd;
	json_object *o, *sizes, *v;
	int rc;

	if (jsonx_check_object(args, "vm.resize arguments", allowed, &err) < 0 ||
	    !resolve_vm(cl, args, vm_id, &err))
		return client_err(cl, &err);
	/*
	 * Through the command decoder, so the operator meets the same rules
	 * and messages as the control plane; submit() sets the real id.
	 */
	o = json_object_new_object();
	sizes = json_object_new_object();
	for (const char *const *k = size_keys; *k; k++)
		if (json_object_object_get_ex(args, *k, &v))
			json_object_object_add(sizes, *k, json_object_get(v));
	jsonx_add_string(o, "id", vm_id);
	jsonx_add_string(o, "type", command_type_name(CMD_VM_RESIZE));
	jsonx_add_string(o, "vm_id", vm_id);
	json_object_object_add(o, "args", sizes);
	rc = command_decode(o, &cmd, &err);
	json_object_put(o);
	if (rc < 0)
		return client_err(cl, &err);
	submit(cl, args, &cmd);
}

static void
verb_vm_snapshots(struct ctl_client *cl, json_object *args)
{
	struct carve_error err = { 0 };
	static const char *const allowed[] = { "id", NULL };
	char vm_id[IDS_UUID_LEN + 1];
	struct vm_info *vm;
	json_object *o, *arr;

	if (jsonx_check_object(args, "vm.snapshots arguments", allowed,
	    &err) < 0 || !resolve_vm(cl, args, vm_id, &err))
		return client_err(cl, &err);
	if ((vm = agent_vm_find(cl->ctl->a, vm_id)) == NULL) {
		error_set(&err, CARVE_ENOTFOUND, "no VM with id %s", vm_id);
		return client_err(cl, &err);
	}
	if (!vm->vm_snapshots_known) {
		error_set(&err, CARVE_EUNAVAIL, "the snapshots of VM %s are "
		    "not known: libvirt could not list them (see carved's "
		    "log)", vm_id);
		return client_err(cl, &err);
	}
	o = json_object_new_object();
	jsonx_add_string(o, "vm_id", vm->vm_id);
	jsonx_add_string(o, "name", vm->vm_name);
	arr = json_object_new_array();
	for (unsigned i = 0; i < vm->vm_nsnapshots; i++)
		json_object_array_add(arr,
		    vm_snapshot_encode(&vm->vm_snapshots[i]));
	json_object_object_add(o, "snapshots", arr);
	client_ok(cl, o);
}

static void
verb_vm_snapshot_create(struct ctl_client *cl, json_object *args)
{
	struct carve_error err = { 0 };
	static const char *const allowed[] = { "id", "command_id", "name",
	    "kind", "quiesce", NULL };
	static const char *const snap_keys[] = { "name", "kind", "quiesce",
	    NULL };
	struct command cmd;
	json_object *spec, *v;
	int rc;

	memset(&cmd, 0, sizeof(cmd));
	if (jsonx_check_object(args, "vm.snapshot.create arguments", allowed,
	    &err) < 0 || !resolve_vm(cl, args, cmd.cmd_vm_id, &err))
		return client_err(cl, &err);
	spec = json_object_new_object();
	for (const char *const *k = snap_keys; *k; k++)
		if (json_object_object_get_ex(args, *k, &v))
			json_object_object_add(spec, *k, json_object_get(v));
	/* The operator's default; the wire form always names the kind. */
	if (!json_object_object_get_ex(spec, "kind", NULL))
		jsonx_add_string(spec, "kind", "full");
	cmd.cmd_type = CMD_VM_SNAPSHOT_CREATE;
	rc = command_snapshot_create_decode(spec, &cmd.cmd_args.snapshot, &err);
	json_object_put(spec);
	if (rc < 0)
		return client_err(cl, &err);
	submit(cl, args, &cmd);
}

/* vm.snapshot.revert and vm.snapshot.delete: {"id","name","command_id"?}. */
static void
verb_vm_snapshot_named(struct ctl_client *cl, json_object *args,
    enum command_type t)
{
	struct carve_error err = { 0 };
	static const char *const allowed[] = { "id", "command_id", "name",
	    NULL };
	struct command cmd;
	const char *name = NULL;

	memset(&cmd, 0, sizeof(cmd));
	if (jsonx_check_object(args, "arguments", allowed, &err) < 0 ||
	    jsonx_get_string(args, "name", true, IDS_NAME_MAX, &name,
	    &err) < 0 || ids_name_check(name, "name", &err) < 0 ||
	    !resolve_vm(cl, args, cmd.cmd_vm_id, &err))
		return client_err(cl, &err);
	cmd.cmd_type = t;
	snprintf(cmd.cmd_args.snapshot.name, sizeof(cmd.cmd_args.snapshot.name),
	    "%s", name);
	submit(cl, args, &cmd);
}

static void
verb_vm_snapshot_revert(struct ctl_client *cl, json_object *args)
{
	verb_vm_snapshot_named(cl, args, CMD_VM_SNAPSHOT_REVERT);
}

static void
verb_vm_snapshot_delete(struct ctl_client *cl, json_object *args)
{
	verb_vm_snapshot_named(cl, args, CMD_VM_SNAPSHOT_DELETE);
}

static void
verb_commands(struct ctl_client *cl, json_object *args)
{
	struct carve_error err = { 0 };
	static const char *const allowed[] = { "limit", NULL };
	int64_t limit = CTL_COMMANDS_DEFAULT;

	if (jsonx_check_object(args, "commands arguments", allowed, &err) < 0 ||
	    jsonx_get_int(args, "limit", false, 1, CTL_COMMANDS_MAX, &limit,
	    &err) < 0)
		return client_err(cl, &err);
	client_ok(cl, engine_recent_encode(cl->ctl->a->a_engine,
	    (unsigned)limit));
}

static void
verb_log_level(struct ctl_client *cl, json_object *args)
{
	struct carve_error err = { 0 };
	static const char *const allowed[] = { "level", NULL };
	const char *name = NULL;
	enum log_level lvl;
	json_object *o;

	if (jsonx_check_object(args, "log.level arguments", allowed, &err) < 0 ||
	    jsonx_get_string(args, "level", true, 16, &name, &err) < 0)
		return client_err(cl, &err);
	if (log_level_parse(name, &lvl) < 0) {
		error_set(&err, CARVE_EINVAL, "level must be one of debug, info, "
		    "warn, error; got \"%s\"", name);
		return client_err(cl, &err);
	}
	log_set_level(lvl);
	log_info("control", "log level set to %s by uid %u", name,
	    (unsigned)cl->uid);
	o = json_object_new_object();
	jsonx_add_string(o, "level", log_level_name(lvl));
	client_ok(cl, o);
}

/* The name of a VM in the view, for the image listing. */
static const char *
images_vm_name(void *arg, const char *vm_id)
{
	struct vm_info *vm = strmap_get(((struct agent *)arg)->a_vms, vm_id);

	return vm != NULL ? vm->vm_name : NULL;
}

static void
images_done(const struct carve_error *err, const struct images_report *r,
    void *arg)
{
	struct ctl_client *cl = arg;

	/* The control server may be gone (shutdown): only cl is ours. */
	if (cl->closed)
		cl->busy = false;
	else if (err != NULL)
		client_err(cl, err);
	else
		client_ok(cl, images_report_encode(r, images_vm_name,
		    cl->ctl->a));
	client_unref(cl);
}

static void
drain_done(const struct carve_error *err, void *arg)
{
	struct ctl_client *cl = arg;
	json_object *o;

	if (err != NULL) {
		client_err(cl, err);
	} else {
		o = json_object_new_object();
		jsonx_add_bool(o, "schedulable", !cl->ctl->a->a_drained);
		client_ok(cl, o);
	}
	client_unref(cl);
}

static void
verb_images(struct ctl_client *cl, json_object *args, bool gc)
{
	struct agent *a = cl->ctl->a;
	struct carve_error err = { 0 };
	static const char *const allowed[] = { NULL };

	if (jsonx_check_object(args, "images arguments", allowed, &err) < 0)
		return client_err(cl, &err);
	if (a->a_images == NULL) {
		error_set(&err, CARVE_EUNAVAIL, "carved is shutting down");
		return client_err(cl, &err);
	}
	if (gc)
		log_info("control", "image GC pass asked for by uid %u",
		    (unsigned)cl->uid);
	cl->refs++;
	if (gc)
		images_gc(a->a_images, images_done, cl);
	else
		images_list(a->a_images, images_done, cl);
}

static void
verb_images_list(struct ctl_client *cl, json_object *args)
{
	verb_images(cl, args, false);
}

static void
verb_images_gc(struct ctl_client *cl, json_object *args)
{
	verb_images(cl, args, true);
}

static void
verb_drain_set(struct ctl_client *cl, json_object *args, bool drained)
{
	struct carve_error err = { 0 };
	static const char *const allowed[] = { NULL };

	if (jsonx_check_object(args, "arguments", allowed, &err) < 0)
		return client_err(cl, &err);
	log_info("control", "%s requested by uid %u", drained ? "drain" :
	    "undrain", (unsigned)cl->uid);
	cl->refs++;
	agent_set_drained(cl->ctl->a, drained, drain_done, cl);
}

static void
verb_node_drain(struct ctl_client *cl, json_object *args)
{
	verb_drain_set(cl, args, true);
}

static void
verb_node_undrain(struct ctl_client *cl, json_object *args)
{
	verb_drain_set(cl, args, false);
}

/*
 * A raw command in wire form (api/command.h), decoded like one from the
 * control plane and run by the engine as the operator's: for debugging
 * and for tests of command types carvectl has no verb for.
 */
static void
verb_command_submit(struct ctl_client *cl, json_object *args)
{
	struct carve_error err = { 0 };
	static const char *const allowed[] = { "command", NULL };
	json_object *o = NULL;
	struct command cmd;

	if (jsonx_check_object(args, "command.submit arguments", allowed,
	    &err) < 0 ||
	    jsonx_get_object(args, "command", true, &o, &err) < 0 ||
	    command_decode(o, &cmd, &err) < 0)
		return client_err(cl, &err);
	log_kv(LOG_LVL_INFO, "control", "raw command submitted by operator",
	    "command_id", cmd.cmd_id, "type", command_type_name(cmd.cmd_type),
	    "vm_id", cmd.cmd_vm_id, (char *)NULL);
	cl->refs++;
	engine_submit(cl->ctl->a->a_engine, &cmd, command_done, cl);
}

static const struct ctl_verb verbs[] = {
	{ "status",     false, verb_status },
	{ "capacity",   false, verb_capacity },
	{ "vm.list",    false, verb_vm_list },
	{ "vm.show",    false, verb_vm_show },
	{ "commands",   false, verb_commands },
	{ "vm.create",  true,  verb_vm_create },
	{ "vm.start",   true,  verb_vm_start },
	{ "vm.stop",    true,  verb_vm_stop },
	{ "vm.reboot",  true,  verb_vm_reboot },
	{ "vm.destroy", true,  verb_vm_destroy },
	{ "vm.resize",  true,  verb_vm_resize },
	{ "vm.rebuild", true,  verb_vm_rebuild },
	{ "vm.snapshots", false, verb_vm_snapshots },
	{ "vm.snapshot.create", true, verb_vm_snapshot_create },
	{ "vm.snapshot.revert", true, verb_vm_snapshot_revert },
	{ "vm.snapshot.delete", true, verb_vm_snapshot_delete },
	{ "log.level",  true,  verb_log_level },
	{ "images",     false, verb_images_list },
	{ "images.gc",  true,  verb_images_gc },
	{ "node.drain", true,  verb_node_drain },
	{ "node.undrain", true, verb_node_undrain },
	{ "command.submit", true, verb_command_submit },
};

/* Raw commands bypass carvectl's checks: root only, not even the group. */
static bool
verb_is_root_only(const struct ctl_verb *v)
{
	return v->fn == verb_command_submit;
}

static bool
verb_is_vm_mutation(const struct ctl_verb *v)
{
	return v->mutating && strncmp(v->name, "vm.", 3) == 0;
}

static void
client_dispatch(struct ctl_client *cl, const char *line, size_t len)
{
	const struct carved_conf *conf = cl->ctl->a->a_conf;
	struct carve_error err = { 0 };
	struct ctl_request req;
	const struct ctl_verb *v = NULL;

	cl->busy = true;
	if (ctl_request_decode(line, len, &req, &err) < 0)
		return client_err(cl, &err);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(verbs[i].name, req.verb) == 0)
			v = &verbs[i];
	if (v == NULL)
		error_set(&err, CARVE_EINVAL, "unknown verb \"%s\"", req.verb);
	else if (v->mutating && !cl->may_mutate)
		error_set(&err, CARVE_EPERM, "%s needs root or membership of "
		    "group %s", req.verb, conf->socket_group);
	else if (verb_is_root_only(v) && cl->uid != 0)
		error_set(&err, CARVE_EPERM, "%s needs root", req.verb);
	else if (verb_is_root_only(v) && conf->cp_url != NULL)
		error_set(&err, CARVE_EPERM, "this host is managed by the "
		    "control plane at %s: submit commands through it",
		    conf->cp_url);
	else if (verb_is_vm_mutation(v) && conf->cp_url != NULL)
		error_set(&err, CARVE_EPERM, "this host is managed by the "
		    "control plane at %s: change VMs through it", conf->cp_url);
	if (error_isset(&err))
		client_err(cl, &err);
	else
		v->fn(cl, req.args);
	ctl_request_clear(&req);
}

/* ---- connections ---- */

static void
client_closed(uv_handle_t *h)
{
	struct ctl_client *cl = h->data;
	struct control *ctl = cl->ctl;
	struct ctl_client **pp;

	for (pp = &ctl->clients; *pp != NULL; pp = &(*pp)->next)
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	ctl->nclients--;
	client_unref(cl);
	if (ctl->closing) {
		ctl->pending_closes--;
		control_maybe_done(ctl);
	}
}

static void
client_close(struct ctl_client *cl)
{
	if (cl->closed)
		return;
	cl->closed = true;
	uv_close((uv_handle_t *)&cl->pipe, client_closed);
}

static void
client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct ctl_client *cl = h->data;

	(void)suggested;
	if (cl->cap - cl->len < 4096) {
		cl->cap = cl->cap ? cl->cap * 2 : 8192;
		cl->buf = xrealloc(cl->buf, cl->cap);
	}
	*buf = uv_buf_init(cl->buf + cl->len, (unsigned)(cl->cap - cl->len));
}

/* Handle the first complete line, if any; true when one was taken. */
static bool
client_take_line(struct ctl_client *cl)
{
	char *nl = memchr(cl->buf, '\n', cl->len);
	size_t n;
	char *line;

	if (nl == NULL)
		return false;
	n = (size_t)(nl - cl->buf);
	line = xstrndup(cl->buf, n);
	memmove(cl->buf, nl + 1, cl->len - n - 1);
	cl->len -= n + 1;
	/* One request at a time: answers go out in order. */
	uv_read_stop((uv_stream_t *)&cl->pipe);
	client_dispatch(cl, line, n);
	free(line);
	return true;
}

static void
client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct ctl_client *cl = s->data;
	struct carve_error err = { 0 };

	(void)buf;
	if (nread < 0) {
		client_close(cl);
		return;
	}
	cl->len += (size_t)nread;
	if (client_take_line(cl))
		return;
	if (cl->len > CTL_MAX_LINE) {
		error_set(&err, CARVE_EINVAL, "request line longer than %d bytes",
		    CTL_MAX_LINE);
		uv_read_stop(s);
		client_err(cl, &err);
		client_close(cl);
	}
}

static void
client_resume(struct ctl_client *cl)
{
	if (cl->busy || cl->closed)
		return;
	if (client_take_line(cl))
		return;
	uv_read_start((uv_stream_t *)&cl->pipe, client_alloc, client_read);
}

static bool
peer_may_mutate(struct control *ctl, int fd, struct ctl_client *cl)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t groups[CTL_MAX_GROUPS];
	socklen_t glen = sizeof(groups);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	cl->uid = cred.uid;
	cl->pid = cred.pid;
	if (cred.uid == 0)
		return true;
	if (!ctl->have_group)
		return false;
	if (cred.gid == ctl->group)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) < 0)
		return false;
	for (size_t i = 0; i < glen / sizeof(gid_t); i++)
		if (groups[i] == ctl->group)
			return true;
	return false;
}

static void
control_on_connection(uv_stream_t *server, int status)
{
	struct control *ctl = server->data;
	struct ctl_client *cl;
	uv_os_fd_t fd;

	if (status < 0 || ctl->closing)
		return;
	cl = xcalloc(1, sizeof(*cl));
	cl->ctl = ctl;
	cl->refs = 1;
	uv_pipe_init(ctl->a->a_loop, &cl->pipe, 0);
	cl->pipe.data = cl;
	if (uv_accept(server, (uv_stream_t *)&cl->pipe) != 0 ||
	    uv_fileno((uv_handle_t *)&cl->pipe, &fd) != 0) {
		cl->closed = true;
		cl->next = ctl->clients;
		ctl->clients = cl;
		ctl->nclients++;
		uv_close((uv_handle_t *)&cl->pipe, client_closed);
		return;
	}
	cl->may_mutate = peer_may_mutate(ctl, fd, cl);
	cl->next = ctl->clients;
	ctl->clients = cl;
	ctl->nclients++;
	uv_read_start((uv_stream_t *)&cl->pipe, client_alloc, client_read);
}

static int
control_prepare_dir(struct control *ctl, struct carve_error *err)
{
	char *dir = xstrdup(ctl->path), *slash = strrchr(dir, '/');
	struct stat st;

	if (slash == NULL || slash == dir) {
		free(dir);
		return 0;
	}
	*slash = '\0';
	if (stat(dir, &st) < 0) {
		if (mkdir(dir, ctl->have_group ? 0750 : 0755) < 0 &&
		    errno != EEXIST) {
			error_set(err, CARVE_EINVAL, "cannot create %s: %s", dir,
			    strerror(errno));
			free(dir);
			return -1;
		}
		if (ctl->have_group && chown(dir, 0, ctl->group) < 0)
			log_warn("control", "cannot give %s to group %u: %s", dir,
			    (unsigned)ctl->group, strerror(errno));
	}
	free(dir);
	return 0;
}

int
control_open(struct agent *a, struct control **out, struct carve_error *err)
{
	const struct carved_conf *conf = a->a_conf;
	struct control *ctl = xcalloc(1, sizeof(*ctl));
	struct group gr, *res = NULL;
	char grbuf[4096];
	int rc;

	ctl->a = a;
	ctl->path = xstrdup(conf->socket);
	if (conf->socket_group && conf->socket_group[0] &&
	    getgrnam_r(conf->socket_group, &gr, grbuf, sizeof(grbuf), &res) == 0 &&
	    res != NULL) {
		ctl->group = gr.gr_gid;
		ctl->have_group = true;
	} else {
		log_warn("control", "group \"%s\" does not exist: only root may "
		    "change VMs through %s", conf->socket_group, conf->socket);
	}
	if (strlen(ctl->path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		error_set(err, CARVE_EINVAL, "socket path %s is too long",
		    ctl->path);
		goto fail;
	}
	if (control_prepare_dir(ctl, err) < 0)
		goto fail;
	/* A stale socket from a previous run (carved holds a lock on its
	 * state dir, so a live one cannot be here). */
	(void)unlink(ctl->path);
	uv_pipe_init(a->a_loop, &ctl->server, 0);
	ctl->server.data = ctl;
	rc = uv_pipe_bind(&ctl->server, ctl->path);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&ctl->server, 64,
		    control_on_connection);
	if (rc != 0) {
		error_set(err, CARVE_EINVAL, "cannot listen on %s: %s",
		    ctl->path, uv_strerror(rc));
		uv_close((uv_handle_t *)&ctl->server, NULL);
		/* ctl is freed below only after the handle closes: leak-free
		 * because the caller exits the process on this error. */
		return -1;
	}
	if (chmod(ctl->path, 0660) < 0 ||
	    (ctl->have_group && chown(ctl->path, 0, ctl->group) < 0 &&
	    geteuid() == 0)) {
		error_set(err, CARVE_EINVAL, "cannot set the mode of %s: %s",
		    ctl->path, strerror(errno));
		return -1;
	}
	log_info("control", "listening on %s", ctl->path);
	*out = ctl;
	return 0;
fail:
	free(ctl->path);
	free(ctl);
	return -1;
}

/* Every handle is closed: free ctl and tell the owner. */
static void
control_maybe_done(struct control *ctl)
{
	void (*cb)(void *) = ctl->close_cb;
	void *arg = ctl->close_arg;

	if (!ctl->closing || ctl->pending_closes > 0)
		return;
	free(ctl->path);
	free(ctl);
	if (cb)
		cb(arg);
}

static void
control_server_closed(uv_handle_t *h)
{
	struct control *ctl = h->data;

	ctl->pending_closes--;
	control_maybe_done(ctl);
}

void
control_close(struct control *ctl, void (*cb)(void *arg), void *arg)
{
	struct ctl_client *cl;

	ctl->closing = true;
	ctl->close_cb = cb;
	ctl->close_arg = arg;
	ctl->pending_closes = 1 + ctl->nclients;
	(void)unlink(ctl->path);
	for (cl = ctl->clients; cl != NULL; cl = cl->next)
		client_close(cl);
	uv_close((uv_handle_t *)&ctl->server, control_server_closed);
}
