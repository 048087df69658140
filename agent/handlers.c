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
#include "agent/migrate.h"
#include "agent/seed.h"
#include "agent/virt_ops.h"
#include "agent/virt_resize.h"
#include "agent/virt_snap.h"
#include "agent/virt_storage.h"
#include "agent/virt_xml.h"
#include "common/log.h"
#include "common/jsonx.h"
#include "common/timeutil.h"
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

/*
 * What a domain's maximum vCPUs may reach: the host's CPUs, and for QEMU
 * the 255 its i440fx "pc" machine can address (more needs x2APIC and an
 * IOMMU, which carve's domains do not have).
 */
#define HANDLER_QEMU_PC_VCPUS_MAX 255

static unsigned
handler_vcpus_cap(const struct handler_job *j)
{
	if (strcmp(j->hj_domain_type, "test") != 0 &&
	    (j->hj_host_cpus == 0 || j->hj_host_cpus > HANDLER_QEMU_PC_VCPUS_MAX))
		return HANDLER_QEMU_PC_VCPUS_MAX;
	return j->hj_host_cpus;
}

/* ---- vm.create ---- */

static void
create_claim(const struct command *cmd, struct cap_request *claim)
{
	const struct vm_spec *s = &cmd->cmd_args.create;

	claim->amount[CAP_VCPU] = s->vs_vcpus;
	claim->amount[CAP_MEMORY_MIB] = s->vs_memory_mib;
	claim->amount[CAP_DISK_GIB] = vm_spec_disk_gib_total(s);
}

/*
 * Every NIC's network or bridge must be on the host's allow-list: a VM on
 * a network the operator did not offer could reach what it must not. The
 * message lists what is allowed so the caller can pick again.
 */
static int
create_admit_nics(const struct carved_conf *conf, const struct vm_spec *s,
    struct carve_error *err)
{
	char allowed[256];

	for (size_t i = 0; i < s->vs_nnics; i++) {
		const struct vm_nic *nic = &s->vs_nics[i];
		bool net = nic->vn_kind == VM_NIC_NETWORK;
		const struct conf_names *l = net ? &conf->networks :
		    &conf->bridges;
		size_t len = 0;

		if (conf_names_has(l, nic->vn_name))
			continue;
		allowed[0] = '\0';
		for (size_t j = 0; j < l->cn_count && len < sizeof(allowed);
		    j++) {
			int n = snprintf(allowed + len, sizeof(allowed) - len,
			    "%s%s", j > 0 ? ", " : "", l->cn_names[j]);

			len = n < 0 ? sizeof(allowed) : len + (size_t)n;
		}
		if (len >= sizeof(allowed))
			memcpy(allowed + sizeof(allowed) - 4, "...", 4);
		if (l->cn_count == 0)
			return error_set(err, CARVE_EINVAL, "networks[%zu]: %s "
			    "\"%s\" is not allowed on this host, which allows "
			    "no %s ([network] %s is empty)", i,
			    vm_nic_kind_name(nic->vn_kind), nic->vn_name,
			    net ? "networks" : "bridges",
			    net ? "networks" : "bridges");
		return error_set(err, CARVE_EINVAL, "networks[%zu]: %s \"%s\" "
		    "is not allowed on this host; allowed %s: %s", i,
		    vm_nic_kind_name(nic->vn_kind), nic->vn_name,
		    net ? "networks" : "bridges", allowed);
	}
	return 0;
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
	return create_admit_nics(a->a_conf, s, err);
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

/* The disks a create makes (owned paths, NULL where there is none). */
struct create_vols {
	char *cv_root;
	char *cv_seed;
	char *cv_data[VM_DATA_DISKS_MAX];
};

static void
create_vols_free(struct create_vols *v)
{
	free(v->cv_root);
	free(v->cv_seed);
	for (size_t i = 0; i < VM_DATA_DISKS_MAX; i++)
		free(v->cv_data[i]);
	memset(v, 0, sizeof(*v));
}

/*
 * The disks of a VM (worker): with an image, the root overlay on the cached
 * base, sized disk_gib (0: the image's virtual size, rounded up to GiB,
 * written back to *disk_gib), and the seed; then its data disks. The
 * image's checks come first, so a refusal makes nothing.
 */
static int
create_disks(struct handler_job *j, uint64_t *disk_gib,
    struct create_vols *vols, struct carve_error *err)
{
	const struct command *cmd = j->hj_cmd;
	const struct vm_spec *s = &cmd->cmd_args.create;
	char *base = NULL, *iso = NULL;
	uint64_t vsize;
	int rc = -1;

	memset(vols, 0, sizeof(*vols));
	if (s->vs_image.vi_url != NULL) {
		base = images_path(j->hj_image_dir, &s->vs_image);
		/* The prepare step put it there (recovery finds it there
		 * too). */
		if (images_inspect(base, s->vs_image.vi_format, &vsize,
		    err) < 0)
			goto out;
		if (*disk_gib == 0)
			*disk_gib = (vsize + GIB - 1) / GIB;
		else if (*disk_gib * GIB < vsize) {
			error_set(err, CARVE_EINVAL, "disk_gib %llu is smaller "
			    "than the image's virtual size (%llu bytes, %llu "
			    "GiB rounded up)", (unsigned long long)*disk_gib,
			    (unsigned long long)vsize,
			    (unsigned long long)((vsize + GIB - 1) / GIB));
			goto out;
		}
		if (*disk_gib > VM_DISK_GIB_MAX) {
			error_set(err, CARVE_EINVAL, "the image's virtual size "
			    "is above the largest disk_gib");
			goto out;
		}
	}
	if (virt_storage_pool_ensure(j->hj_conn, j->hj_pool, j->hj_disk_dir,
	    err) < 0)
		goto out;
	if (base != NULL && virt_storage_root(j->hj_conn, j->hj_pool,
	    cmd->cmd_vm_id, *disk_gib * GIB, base, s->vs_image.vi_format,
	    &vols->cv_root, err) < 0)
		goto out;
	for (size_t i = 0; i < s->vs_ndata_disks; i++)
		if (virt_storage_data(j->hj_conn, j->hj_pool, cmd->cmd_vm_id,
		    (unsigned)i, s->vs_data_disks[i].dd_size_gib * GIB,
		    &vols->cv_data[i], err) < 0)
			goto out;
	if (base == NULL) {
		rc = 0;
		goto out;
	}
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
	if (virt_storage_seed(j->hj_conn, j->hj_pool, cmd->cmd_vm_id, iso,
	    &vols->cv_seed, err) < 0)
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

/* The result's "interfaces": every NIC with the MAC it really has. */
static void
create_add_interfaces(json_object *data, const struct vm_spec *eff)
{
	if (eff->vs_nnics > 0)
		json_object_object_add(data, "interfaces",
		    vm_nics_encode(eff->vs_nics, eff->vs_nnics));
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
	struct create_vols vols;
	char *kernel = NULL, *initrd = NULL, *xml = NULL;
	bool made_disks = false;

	memset(&vols, 0, sizeof(vols));
	/*
	 * Shallow: only the disk size and the MACs carve derives differ from
	 * the command's (the NICs are held by value).
	 */
	eff = *s;
	vm_spec_derive_macs(&eff, cmd->cmd_vm_id);
	if (s->vs_image.vi_url != NULL || s->vs_ndata_disks > 0) {
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
				create_add_interfaces(j->hj_data, &eff);
			}
			return;
		}
		if (lerr.code == CARVE_EUNAVAIL) {
			j->hj_err = lerr;
			return;
		}
		made_disks = true;
		if (create_disks(j, &eff.vs_disk_gib, &vols, &j->hj_err) < 0)
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
	/* Room to grow live: vm.resize up to these without a reboot. */
	opts.max_vcpus = virt_xml_max_vcpus(s->vs_vcpus,
	    j->hj_max_vcpus_factor, handler_vcpus_cap(j));
	opts.max_memory_mib = virt_xml_max_memory_mib(s->vs_memory_mib,
	    j->hj_max_memory_factor, j->hj_host_memory_mib);
	opts.vm_id = cmd->cmd_vm_id;
	opts.command_id = cmd->cmd_id;
	opts.created_at_ms = j->hj_now_ms;
	opts.kernel_path = kernel;
	opts.initrd_path = initrd;
	opts.console_log = j->hj_console_log;
	opts.root_disk = vols.cv_root;
	opts.seed_iso = vols.cv_seed;
	opts.data_disks = (const char *const *)vols.cv_data;
	opts.ndata_disks = s->vs_ndata_disks;
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
	create_add_interfaces(j->hj_data, &eff);
	if (s->vs_ndata_disks > 0)
		json_object_object_add(j->hj_data, "data_disks",
		    vm_data_disks_encode(s->vs_data_disks, s->vs_ndata_disks));
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
	create_vols_free(&vols);
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

/* ---- vm.resize ---- */

static void
resize_target(const struct command *cmd, struct cap_request *target)
{
	const struct command_resize_args *ra = &cmd->cmd_args.resize;

	memset(target, 0, sizeof(*target));
	target->amount[CAP_VCPU] = ra->vcpus;
	target->amount[CAP_MEMORY_MIB] = ra->memory_mib;
}

/*
 * Also the recovery step: virt_resize converges, and what it reports is
 * what libvirt shows afterwards.
 */
static void
resize_run(struct handler_job *j)
{
	const struct command_resize_args *ra = &j->hj_cmd->cmd_args.resize;
	struct virt_resize_req req;
	struct virt_resize_result out;

	memset(&req, 0, sizeof(req));
	req.vcpus = ra->vcpus;
	req.memory_mib = ra->memory_mib;
	req.max_vcpus_factor = j->hj_max_vcpus_factor;
	req.max_memory_factor = j->hj_max_memory_factor;
	req.host_cpus = handler_vcpus_cap(j);
	req.host_memory_mib = j->hj_host_memory_mib;
	if (virt_resize(j->hj_conn, j->hj_cmd->cmd_vm_id, &req, &out,
	    &j->hj_err) < 0) {
		handler_note_gone(j);
		return;
	}
	j->hj_vm = out.vm;
	j->hj_has_vm = true;
	j->hj_data = handler_vm_data(&j->hj_vm);
	jsonx_add_int(j->hj_data, "vcpus", out.vm.vm_vcpus);
	jsonx_add_int(j->hj_data, "memory_mib", (int64_t)out.vm.vm_memory_mib);
	jsonx_add_string(j->hj_data, "applied", out.live ? "live" :
	    "next_boot");
	jsonx_add_int(j->hj_data, "max_vcpus", out.max_vcpus);
	jsonx_add_int(j->hj_data, "max_memory_mib",
	    (int64_t)out.max_memory_mib);
	if (out.warning[0] != '\0')
		jsonx_add_string(j->hj_data, "warning", out.warning);
}

/* ---- vm.rebuild ---- */

/*
 * The image a rebuild puts under the root disk: the command's, else the
 * one the VM was made (or last rebuilt) from. The returned image borrows
 * vm's buffers; vi_url NULL when there is none.
 */
static struct vm_image
rebuild_image(const struct command *cmd, const struct vm_info *vm)
{
	struct vm_image img;

	if (cmd->cmd_args.rebuild.image.vi_url != NULL)
		return cmd->cmd_args.rebuild.image;
	memset(&img, 0, sizeof(img));
	if (vm != NULL && vm->vm_image_url[0] != '\0') {
		img.vi_url = (char *)vm->vm_image_url;
		memcpy(img.vi_sha256, vm->vm_image_sha256, sizeof(img.vi_sha256));
		img.vi_format = vm->vm_image_format;
	}
	return img;
}

static int
rebuild_check_vm(const struct vm_info *vm, struct carve_error *err)
{
	/* Without a root disk from an image there is nothing to replace. */
	if (vm->vm_image_url[0] == '\0')
		return error_set(err, CARVE_EINVAL, "VM %s has no root disk "
		    "made from an image: there is nothing to rebuild",
		    vm->vm_name);
	/*
	 * The snapshots live inside the root overlay a rebuild throws away:
	 * dropping them silently would lose what the user kept.
	 */
	if (vm->vm_snapshots_known && vm->vm_nsnapshots > 0)
		return error_set(err, CARVE_ECONFLICT, "VM %s has %u "
		    "snapshot%s, kept in the root disk a rebuild replaces: "
		    "delete them first", vm->vm_name, vm->vm_nsnapshots,
		    vm->vm_nsnapshots == 1 ? "" : "s");
	return 0;
}

static int
rebuild_admit(struct agent *a, const struct command *cmd,
    struct carve_error *err)
{
	const struct vm_info *vm = agent_vm_find(a, cmd->cmd_vm_id);

	/* A VM still being created is checked by the worker instead. */
	return vm != NULL ? rebuild_check_vm(vm, err) : 0;
}

static void
rebuild_prepare(struct agent *a, const struct command *cmd,
    handler_prepared_cb cb, void *arg)
{
	struct vm_image img = rebuild_image(cmd, agent_vm_find(a,
	    cmd->cmd_vm_id));

	if (img.vi_url == NULL) {
		cb(NULL, arg);
		return;
	}
	/* images_ensure copies what it keeps of img. */
	images_ensure(a->a_images, &img, cb, arg);
}

static int
rebuild_write_meta(struct handler_job *j, const struct vm_info *vm,
    const struct virt_xml_rebuild *rb)
{
	char *xml = virt_xml_metadata_vm(vm, rb, &j->hj_err);
	int rc;

	if (xml == NULL)
		return -1;
	rc = virt_op_set_metadata(j->hj_conn, j->hj_cmd->cmd_vm_id, xml,
	    &j->hj_err);
	free(xml);
	return rc;
}

static bool
rebuild_vm_active(const struct vm_info *vm)
{
	return vm->vm_state != VM_STATE_SHUTOFF &&
	    vm->vm_state != VM_STATE_CRASHED;
}

/*
 * Replace the root disk (worker). Each step leaves a mark in the domain's
 * metadata first, so that running this again after a crash (recovery, or a
 * retry after libvirt came back) picks up where it stopped:
 *   1. the new image must fit the root disk (else invalid_argument, with
 *      nothing touched);
 *   2. rebuilding = this command, was_running = whether the VM runs (kept
 *      from an unfinished rebuild that already stopped it);
 *   3. forced off; 4. the root volume deleted and made anew on the (new)
 *      base with the root disk's size; data disks and seed untouched;
 *   5. image = the new one, rebuilt_by = this command, rebuilding cleared;
 *   6. started again if it was running.
 * Metadata saying rebuilt_by = this command means 1-5 are done: only 6 is
 * ensured.
 */
static void
rebuild_effect(struct handler_job *j, bool recovering)
{
	const struct command *cmd = j->hj_cmd;
	struct virt_xml_rebuild rb;
	struct vm_info vm, cur;
	struct vm_image img, borrowed;
	char *base = NULL, *root = NULL;
	uint64_t vsize;
	bool forced, done;
	int rc;

	if (virt_op_get_rebuild(j->hj_conn, cmd->cmd_vm_id, &vm, &rb,
	    &j->hj_err) < 0) {
		handler_note_gone(j);
		return;
	}
	done = strcmp(rb.rb_rebuilt_by, cmd->cmd_id) == 0;
	/* A copy: vm's own image is overwritten below. */
	borrowed = rebuild_image(cmd, &vm);
	vm_image_copy(&img, &borrowed);
	if (!done) {
		if (rebuild_check_vm(&vm, &j->hj_err) < 0)
			goto out;
		base = images_path(j->hj_image_dir, &img);
		if (images_inspect(base, img.vi_format, &vsize, &j->hj_err) < 0)
			goto out;
		if (vsize > vm.vm_disk_gib * GIB) {
			error_set(&j->hj_err, CARVE_EINVAL, "the image's virtual "
			    "size (%llu bytes, %llu GiB rounded up) does not fit "
			    "the root disk of %llu GiB",
			    (unsigned long long)vsize,
			    (unsigned long long)((vsize + GIB - 1) / GIB),
			    (unsigned long long)vm.vm_disk_gib);
			goto out;
		}
		if (rb.rb_rebuilding[0] == '\0')
			rb.rb_was_running = rebuild_vm_active(&vm) ?
			    VIRT_XML_RUN_YES : VIRT_XML_RUN_NO;
		else
			log_info("handlers", "VM %s: taking over the unfinished "
			    "rebuild %s", cmd->cmd_vm_id, rb.rb_rebuilding);
		snprintf(rb.rb_rebuilding, sizeof(rb.rb_rebuilding), "%s",
		    cmd->cmd_id);
		if (rebuild_write_meta(j, &vm, &rb) < 0 ||
		    virt_op_stop(j->hj_conn, cmd->cmd_vm_id, true, 0,
		    j->hj_cancel, &forced, &cur, &j->hj_err) < 0)
			goto out;
		if (j->hj_test_delay_mid_ms > 0) {
			log_warn("handlers", "fault injection: rebuild of %s "
			    "pausing %u ms with the VM stopped", cmd->cmd_vm_id,
			    j->hj_test_delay_mid_ms);
			time_sleep_ms(j->hj_test_delay_mid_ms);
		}
		if (virt_storage_pool_ensure(j->hj_conn, j->hj_pool,
		    j->hj_disk_dir, &j->hj_err) < 0 ||
		    virt_storage_root_replace(j->hj_conn, j->hj_pool,
		    cmd->cmd_vm_id, vm.vm_disk_gib * GIB, base, img.vi_format,
		    &root, &j->hj_err) < 0)
			goto out;
		snprintf(vm.vm_image_url, sizeof(vm.vm_image_url), "%s",
		    img.vi_url);
		memcpy(vm.vm_image_sha256, img.vi_sha256,
		    sizeof(vm.vm_image_sha256));
		vm.vm_image_format = img.vi_format;
		snprintf(rb.rb_rebuilt_by, sizeof(rb.rb_rebuilt_by), "%s",
		    cmd->cmd_id);
		rb.rb_rebuilding[0] = '\0';
		if (rebuild_write_meta(j, &vm, &rb) < 0)
			goto out;
		log_info("handlers", "VM %s rebuilt on image %s", cmd->cmd_vm_id,
		    vm.vm_image_sha256);
	}
	if (rb.rb_was_running == VIRT_XML_RUN_YES)
		rc = virt_op_start(j->hj_conn, cmd->cmd_vm_id, &j->hj_vm,
		    &j->hj_err);
	else
		rc = virt_op_get(j->hj_conn, cmd->cmd_vm_id, &j->hj_vm,
		    &j->hj_err);
	if (!handler_vm_done(j, rc))
		goto out;
	borrowed = rebuild_image(cmd, &j->hj_vm);
	json_object_object_add(j->hj_data, "image", vm_image_encode(&borrowed));
	jsonx_add_int(j->hj_data, "disk_gib", (int64_t)j->hj_vm.vm_disk_gib);
	if (recovering)
		jsonx_add_bool(j->hj_data, "recovered", true);
out:
	vm_image_clear(&img);
	free(root);
	free(base);
}

static void
rebuild_run(struct handler_job *j)
{
	rebuild_effect(j, false);
}

static void
rebuild_recover(struct handler_job *j)
{
	rebuild_effect(j, true);
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
	[CMD_VM_RESIZE] = {
		.h_type = CMD_VM_RESIZE, .h_resize = resize_target,
		.h_run = resize_run, .h_recover = resize_run,
	},
	/* Live migration: agent/migrate.c. */
	[CMD_VM_MIGRATE_PREPARE] = {
		.h_type = CMD_VM_MIGRATE_PREPARE, .h_creates_vm = true,
		.h_claim = migrate_prepare_claim,
		.h_admit = migrate_prepare_admit,
		.h_prepare = migrate_prepare_prepare,
		.h_run = migrate_prepare_run, .h_recover = migrate_prepare_run,
		.h_done = migrate_prepare_done,
	},
	[CMD_VM_MIGRATE] = {
		.h_type = CMD_VM_MIGRATE, .h_own_limit = true,
		.h_migrates_out = true, .h_admit = migrate_admit,
		.h_run = migrate_run, .h_recover = migrate_recover,
	},
	[CMD_VM_MIGRATE_CANCEL] = {
		.h_type = CMD_VM_MIGRATE_CANCEL, .h_absent_ok = true,
		.h_unordered = true, .h_own_limit = true,
		.h_run = migrate_cancel_run, .h_recover = migrate_cancel_run,
	},
	[CMD_VM_MIGRATE_FINISH] = {
		.h_type = CMD_VM_MIGRATE_FINISH, .h_absent_ok = true,
		.h_run = migrate_finish_run, .h_recover = migrate_finish_run,
		.h_done = migrate_finish_done,
	},
	[CMD_VM_REBUILD] = {
		.h_type = CMD_VM_REBUILD,
		.h_admit = rebuild_admit, .h_prepare = rebuild_prepare,
		.h_run = rebuild_run, .h_recover = rebuild_recover,
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
