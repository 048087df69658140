/*
 * The command types carved runs, as a table: admission (loop thread), effect
 * and recovery (worker thread). See handlers.h.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/engine.h"
#include "agent/handlers.h"
#include "agent/images.h"
#include "agent/seed.h"
#include "agent/virt_ops.h"
#include "agent/virt_snap.h"
#include "agent/virt_storage.h"
#include "agent/virt_xml.h"
#include "common/log.h"
#include "common/jsonx.h"
#include "common/xalloc.h"

/* ---- helpers ---- */

static json_object *
handler_vm_data(const struct vm_info *vm)
{
	json_object *o = json_object_new_object();

	jsonx_add_string(o, "vm_id", vm->vm_id);
	jsonx_add_string(o, "name", vm->vm_name);
	jsonx_add_string(o, "state", vm_state_name(vm->vm_state));
	return o;
}

/*
 * Resolve name inside dir to a real path, refusing anything that ends up
 * outside dir (a symlink pointing elsewhere) or is not a regular file.
 */
static char *
handler_resolve_boot_file(const char *dir, const char *name, const char *what,
    struct carve_error *err)
{
	char rdir[PATH_MAX], rfile[PATH_MAX];
	char *path;
	struct stat st;
	size_t n;

	if (dir == NULL) {
		error_set(err, CARVE_EINVAL, "direct kernel boot is disabled on "
		    "this host ([libvirt] kernel_dir is not set)");
		return NULL;
	}
	if (realpath(dir, rdir) == NULL) {
		error_set(err, CARVE_EINVAL, "kernel_dir %s is not usable: %s",
		    dir, strerror(errno));
		return NULL;
	}
	path = xasprintf("%s/%s", rdir, name);
	if (realpath(path, rfile) == NULL) {
		error_set(err, CARVE_EINVAL, "%s \"%s\" not found in %s", what,
		    name, dir);
		free(path);
		return NULL;
	}
	free(path);
	n = strlen(rdir);
	if (strncmp(rfile, rdir, n) != 0 || rfile[n] != '/') {
		error_set(err, CARVE_EINVAL, "%s \"%s\" resolves outside %s",
		    what, name, dir);
		return NULL;
	}
	if (stat(rfile, &st) < 0 || !S_ISREG(st.st_mode)) {
		error_set(err, CARVE_EINVAL, "%s \"%s\" is not a regular file",
		    what, name);
		return NULL;
	}
	return xstrdup(rfile);
}

/* ---- vm.create ---- */

static void
create_claim(const struct command *cmd, struct cap_request *claim)
{
	const struct vm_spec *s = &cmd->cmd_args.create;

	claim->amount[CAP_VCPU] = s->vs_vcpus;
	claim->amount[CAP_MEMORY_MIB] = s->vs_memory_mib;
	claim->amount[CAP_DISK_GIB] = s->vs_disk_gib;
}

static int
create_admit(struct agent *a, const struct command *cmd,
    struct carve_error *err)
{
	const struct vm_spec *s = &cmd->cmd_args.create;

	if (agent_vm_find(a, s->vs_name) != NULL ||
	    engine_name_pending(a->a_engine, s->vs_name))
		return error_set(err, CARVE_ECONFLICT,
		    "a VM named \"%s\" already exists on this host", s->vs_name);
	if (s->vs_kernel != NULL && a->a_conf->kernel_dir == NULL)
		return error_set(err, CARVE_EINVAL, "direct kernel boot is "
		    "disabled on this host ([libvirt] kernel_dir is not set)");
	return 0;
}

static void
create_prepare(struct agent *a, const struct command *cmd,
    handler_prepared_cb cb, void *arg)
{
	const struct vm_spec *s = &cmd->cmd_args.create;

	if (s->vs_image.vi_url == NULL) {
		cb(NULL, arg);
		return;
	}
	images_ensure(a->a_images, &s->vs_image, cb, arg);
}

#define GIB (1ULL << 30)

/*
 * The disks of a VM with an image (worker): the root overlay on the cached
 * base, sized disk_gib (0: the image's virtual size, rounded up to GiB,
 * written back to *disk_gib), and the seed.
 */
static int
create_disks(struct handler_job *j, uint64_t *disk_gib, char **root,
    char **seed, struct carve_error *err)
{
	const struct command *cmd = j->hj_cmd;
	const struct vm_spec *s = &cmd->cmd_args.create;
	char *base, *iso = NULL;
	uint64_t vsize;
	int rc = -1;

	*root = *seed = NULL;
	base = images_path(j->hj_image_dir, &s->vs_image);
	/* The prepare step put it there (recovery finds it there too). */
	if (images_inspect(base, s->vs_image.vi_format, &vsize, err) < 0)
		goto out;
	if (*disk_gib == 0)
		*disk_gib = (vsize + GIB - 1) / GIB;
	else if (*disk_gib * GIB < vsize) {
		error_set(err, CARVE_EINVAL, "disk_gib %llu is smaller than the "
		    "image's virtual size (%llu bytes, %llu GiB rounded up)",
		    (unsigned long long)*disk_gib, (unsigned long long)vsize,
		    (unsigned long long)((vsize + GIB - 1) / GIB));
		goto out;
	}
	if (*disk_gib > VM_DISK_GIB_MAX) {
		error_set(err, CARVE_EINVAL, "the image's virtual size is above "
		    "the largest disk_gib");
		goto out;
	}
	if (virt_storage_pool_ensure(j->hj_conn, j->hj_pool, j->hj_disk_dir,
	    err) < 0 ||
	    virt_storage_root(j->hj_conn, j->hj_pool, cmd->cmd_vm_id,
	    *disk_gib * GIB, base, s->vs_image.vi_format, root, err) < 0)
		goto out;
	if (mkdir(j->hj_seed_dir, 0700) < 0 && errno != EEXIST) {
		error_set(err, CARVE_EINTERNAL, "cannot create %s: %s",
		    j->hj_seed_dir, strerror(errno));
		goto out;
	}
	iso = xasprintf("%s/%s.iso", j->hj_seed_dir, cmd->cmd_vm_id);
	if (seed_build(iso, cmd->cmd_vm_id, s->vs_name,
	    (const char *const *)s->vs_ssh_keys, s->vs_nssh_keys,
	    s->vs_user_data, err) < 0)
		goto out;
	if (virt_storage_seed(j->hj_conn, j->hj_pool, cmd->cmd_vm_id, iso, seed,
	    err) < 0)
		goto out;
	rc = 0;
out:
	if (iso != NULL && unlink(iso) < 0 && errno != ENOENT)
		log_warn("handlers", "cannot remove %s: %s", iso,
		    strerror(errno));
	free(iso);
	free(base);
	return rc;
}

static void
create_run(struct handler_job *j)
{
	const struct command *cmd = j->hj_cmd;
	const struct vm_spec *s = &cmd->cmd_args.create;
	struct virt_xml_opts opts;
	struct vm_spec eff;
	struct vm_info cur;
	struct carve_error lerr = { 0 };
	char *kernel = NULL, *initrd = NULL, *xml = NULL;
	char *root = NULL, *seed = NULL;
	bool made_disks = false;

	/* Shallow: only the disk size differs from the command's. */
	eff = *s;
	if (s->vs_image.vi_url != NULL) {
		/*
		 * A domain already made by this command (a recovery): its
		 * disks are in use and stay as they are; virt_op_create
		 * starts it if needed.
		 */
		if (virt_op_get(j->hj_conn, cmd->cmd_vm_id, &cur, &lerr) == 0 &&
		    strcmp(cur.vm_command_id, cmd->cmd_id) == 0) {
			if (virt_op_create(j->hj_conn, "", cmd->cmd_vm_id,
			    cmd->cmd_id, &j->hj_vm, &j->hj_err) == 0) {
				j->hj_has_vm = true;
				j->hj_data = handler_vm_data(&j->hj_vm);
			}
			return;
		}
		if (lerr.code == CARVE_EUNAVAIL) {
			j->hj_err = lerr;
			return;
		}
		made_disks = true;
		if (create_disks(j, &eff.vs_disk_gib, &root, &seed,
		    &j->hj_err) < 0)
			goto out;
	}

	if (s->vs_kernel != NULL) {
		kernel = handler_resolve_boot_file(j->hj_kernel_dir, s->vs_kernel,
		    "kernel", &j->hj_err);
		if (kernel == NULL)
			goto out;
	}
	if (s->vs_initrd != NULL) {
		initrd = handler_resolve_boot_file(j->hj_kernel_dir, s->vs_initrd,
		    "initrd", &j->hj_err);
		if (initrd == NULL)
			goto out;
	}
	memset(&opts, 0, sizeof(opts));
	opts.domain_type = j->hj_domain_type;
	opts.vm_id = cmd->cmd_vm_id;
	opts.command_id = cmd->cmd_id;
	opts.created_at_ms = j->hj_now_ms;
	opts.kernel_path = kernel;
	opts.initrd_path = initrd;
	opts.console_log = j->hj_console_log;
	opts.root_disk = root;
	opts.seed_iso = seed;
	xml = virt_xml_domain(&eff, &opts, &j->hj_err);
	if (xml == NULL)
		goto out;
	if (virt_op_create(j->hj_conn, xml, cmd->cmd_vm_id, cmd->cmd_id,
	    &j->hj_vm, &j->hj_err) < 0)
		goto out;
	j->hj_has_vm = true;
	j->hj_data = handler_vm_data(&j->hj_vm);
	if (s->vs_image.vi_url != NULL)
		jsonx_add_int(j->hj_data, "disk_gib", (int64_t)eff.vs_disk_gib);
out:
	/*
	 * Leave nothing half-made: the volumes this create made go (the
	 * domain was already undefined by virt_op_create). Not after a lost
	 * connection (the command is retried and reuses them) nor a conflict
	 * (the volumes may be another VM's).
	 */
	if (made_disks && error_isset(&j->hj_err) &&
	    j->hj_err.code != CARVE_EUNAVAIL &&
	    j->hj_err.code != CARVE_ECONFLICT) {
		struct carve_error rerr = { 0 };
		unsigned n = 0;

		if (virt_storage_delete_vm(j->hj_conn, j->hj_pool, cmd->cmd_vm_id, &n,
		    &rerr) < 0)
			log_error("handlers", "rollback of VM %s: %s",
			    cmd->cmd_vm_id, rerr.message);
		else if (n > 0)
			log_info("handlers", "rollback of VM %s: %u volumes "
			    "deleted", cmd->cmd_vm_id, n);
	}
	free(root);
	free(seed);
	free(kernel);
	free(initrd);
	free(xml);
}

/* ---- vm.start / vm.stop / vm.reboot ---- */

static void
handler_note_gone(struct handler_job *j)
{
	if (j->hj_err.code == CARVE_ENOTFOUND)
		j->hj_vm_gone = true;
}

/*
 * The common end of an operation on an existing VM: on failure note whether
 * the VM is gone, else report it. Returns whether the operation succeeded.
 */
static bool
handler_vm_done(struct handler_job *j, int rc)
{
	if (rc < 0) {
		handler_note_gone(j);
		return false;
	}
	j->hj_has_vm = true;
	j->hj_data = handler_vm_data(&j->hj_vm);
	return true;
}

static void
start_run(struct handler_job *j)
{
	(void)handler_vm_done(j, virt_op_start(j->hj_conn, j->hj_cmd->cmd_vm_id,
	    &j->hj_vm, &j->hj_err));
}

static void
stop_run(struct handler_job *j)
{
	const struct command_stop_args *sa = &j->hj_cmd->cmd_args.stop;
	bool forced = false;

	if (handler_vm_done(j, virt_op_stop(j->hj_conn, j->hj_cmd->cmd_vm_id,
	    sa->force, sa->timeout_s, j->hj_cancel, &forced, &j->hj_vm,
	    &j->hj_err)))
		jsonx_add_bool(j->hj_data, "forced", forced);
}

static void
reboot_run(struct handler_job *j)
{
	(void)handler_vm_done(j, virt_op_reboot(j->hj_conn,
	    j->hj_cmd->cmd_vm_id, &j->hj_vm, &j->hj_err));
}

/*
 * A reboot interrupted by the agent's death may or may not have happened;
 * doing it again could reboot the guest twice. Report what libvirt shows.
 */
static void
reboot_recover(struct handler_job *j)
{
	if (handler_vm_done(j, virt_op_get(j->hj_conn, j->hj_cmd->cmd_vm_id,
	    &j->hj_vm, &j->hj_err)))
		jsonx_add_bool(j->hj_data, "recovered", true);
}

/* ---- vm.destroy ---- */

static void
destroy_run(struct handler_job *j)
{
	unsigned n = 0;

	if (virt_op_destroy(j->hj_conn, j->hj_cmd->cmd_vm_id, &j->hj_err) < 0)
		return;
	/* The domain is gone: its disks go with it. */
	if (virt_storage_delete_vm(j->hj_conn, j->hj_pool,
	    j->hj_cmd->cmd_vm_id, &n,
	    &j->hj_err) < 0)
		return;
	j->hj_vm_gone = true;
	j->hj_data = json_object_new_object();
	jsonx_add_string(j->hj_data, "vm_id", j->hj_cmd->cmd_vm_id);
	jsonx_add_bool(j->hj_data, "destroyed", true);
	jsonx_add_int(j->hj_data, "volumes_deleted", n);
}

/* ---- vm.snapshot.create / .revert / .delete ---- */

/*
 * The space a new snapshot takes counts against DISK_GIB (see
 * virt_snap_estimate_gib); the view counts it once the snapshot exists.
 */
static int
snap_create_admit(struct agent *a, const struct command *cmd,
    struct carve_error *err)
{
	const struct vm_info *vm = agent_vm_find(a, cmd->cmd_vm_id);
	struct cap_request req;
	struct capacity cap;

	/* Still being created: the snapshot waits behind the create. */
	if (vm == NULL)
		return 0;
	memset(&req, 0, sizeof(req));
	req.amount[CAP_DISK_GIB] = virt_snap_estimate_gib(vm->vm_memory_mib);
	if (!agent_capacity(a, &cap))
		return error_set(err, CARVE_EUNAVAIL,
		    "host capacity is not known yet; try again");
	return capacity_admit(&cap, &req, err);
}

/*
 * The end of a snapshot command: the VM with its snapshots, or the error.
 * not_found here is mostly about a snapshot, not the VM: the view learns
 * of a VM that is gone from libvirt's UNDEFINED event.
 */
static void
snap_done(struct handler_job *j, int rc, json_object *data)
{
	if (rc < 0)
		return;
	j->hj_has_vm = true;
	j->hj_data = data;
}

static void
snap_create(struct handler_job *j, bool recovering)
{
	const struct command *cmd = j->hj_cmd;
	json_object *data = NULL;
	int rc;

	rc = virt_snap_create(j->hj_conn, cmd->cmd_vm_id, cmd->cmd_id,
	    &cmd->cmd_args.snapshot, j->hj_now_ms, recovering, &j->hj_vm,
	    &data, &j->hj_err);
	snap_done(j, rc, data);
}

static void
snap_create_run(struct handler_job *j)
{
	snap_create(j, false);
}

static void
snap_create_recover(struct handler_job *j)
{
	snap_create(j, true);
}

static void
snap_revert(struct handler_job *j, bool recovering)
{
	const struct command *cmd = j->hj_cmd;
	json_object *data = NULL;
	int rc;

	rc = virt_snap_revert(j->hj_conn, cmd->cmd_vm_id, cmd->cmd_id,
	    cmd->cmd_args.snapshot.name, recovering, &j->hj_vm, &data,
	    &j->hj_err);
	snap_done(j, rc, data);
}

static void
snap_revert_run(struct handler_job *j)
{
	snap_revert(j, false);
}

static void
snap_revert_recover(struct handler_job *j)
{
	snap_revert(j, true);
}

static void
snap_delete(struct handler_job *j, bool recovering)
{
	const struct command *cmd = j->hj_cmd;
	json_object *data = NULL;
	int rc;

	rc = virt_snap_delete(j->hj_conn, cmd->cmd_vm_id, cmd->cmd_id,
	    cmd->cmd_args.snapshot.name, recovering, &j->hj_vm, &data,
	    &j->hj_err);
	snap_done(j, rc, data);
}

static void
snap_delete_run(struct handler_job *j)
{
	snap_delete(j, false);
}

static void
snap_delete_recover(struct handler_job *j)
{
	snap_delete(j, true);
}

/*
 * The table. Recovery of idempotent effects is running them again: create
 * defines what is missing and starts what is stopped, stop/start/destroy
 * converge on their end state.
 */
static const struct handler handlers[CMD_TYPE_MAX] = {
	[CMD_VM_CREATE] = {
		.h_type = CMD_VM_CREATE, .h_creates_vm = true,
		.h_claim = create_claim, .h_admit = create_admit,
		.h_prepare = create_prepare, .h_run = create_run, .h_recover = create_run,
	},
	[CMD_VM_START] = {
		.h_type = CMD_VM_START,
		.h_run = start_run, .h_recover = start_run,
	},
	[CMD_VM_STOP] = {
		.h_type = CMD_VM_STOP,
		.h_run = stop_run, .h_recover = stop_run,
	},
	[CMD_VM_REBOOT] = {
		.h_type = CMD_VM_REBOOT,
		.h_run = reboot_run, .h_recover = reboot_recover,
	},
	[CMD_VM_DESTROY] = {
		.h_type = CMD_VM_DESTROY, .h_absent_ok = true,
		.h_run = destroy_run, .h_recover = destroy_run,
	},
	/* Name rules are the decoder's; disks, the guest agent, name
	 * conflicts and absent snapshots are libvirt's facts (virt_snap). */
	[CMD_VM_SNAPSHOT_CREATE] = {
		.h_type = CMD_VM_SNAPSHOT_CREATE, .h_admit = snap_create_admit,
		.h_run = snap_create_run, .h_recover = snap_create_recover,
	},
	[CMD_VM_SNAPSHOT_REVERT] = {
		.h_type = CMD_VM_SNAPSHOT_REVERT,
		.h_run = snap_revert_run, .h_recover = snap_revert_recover,
	},
	[CMD_VM_SNAPSHOT_DELETE] = {
		.h_type = CMD_VM_SNAPSHOT_DELETE,
		.h_run = snap_delete_run, .h_recover = snap_delete_recover,
	},
};

const struct handler *
handler_for(enum command_type type)
{
	if ((int)type < 0 || type >= CMD_TYPE_MAX)
		return NULL;
	return &handlers[type];
}
