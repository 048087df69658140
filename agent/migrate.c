/*
 * Live migration, the agent's side: see migrate.h for the flow and the
 * rules every outcome is decided by.
 *
 * virDomainMigrateToURI3 blocks until the migration is over, so vm.migrate
 * runs it on a thread of its own and watches it from the worker: job
 * statistics every second (progress), the timeout, a cancel and carved's
 * own shutdown. On shutdown the migration is left to libvirtd (peer to
 * peer, it needs no client) and the command is recovered at the next start.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "agent/agent.h"
#include "agent/conf.h"
#include "agent/engine.h"
#include "agent/images.h"
#include "agent/migrate.h"
#include "agent/pki.h"
#include "agent/seed.h"
#include "agent/virt_ops.h"
#include "agent/virt_storage.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

#define GIB (1ULL << 30)
#define MIB (1ULL << 20)
/* Job statistics and progress: once a second, as the contract says. */
#define MIGRATE_TICK_MS       1000
/* Domain XML is small; anything near this is not a domain of ours. */
#define MIGRATE_XML_MAX       (4 * 1024 * 1024)
#define MIGRATE_RES_MAX       4096
#define MIGRATE_DIR           "migrations"
#define MIGRATE_DRAINED       "drained"

/* ================================================================ files */

/* Write data to dir/name atomically (pki_write_file: temporary file,
 * fsync, rename, fsync of the directory). */
static int
migrate_file_write(const char *dir, const char *name, const char *data,
    struct carve_error *err)
{
	char *path = xasprintf("%s/%s", dir, name);
	int rc;

	rc = pki_write_file(path, data, strlen(data), 0600, err);
	free(path);
	return rc;
}

static int
migrate_file_delete(const char *dir, const char *name, struct carve_error *err)
{
	char *path = xasprintf("%s/%s", dir, name);
	int dfd;

	if (unlink(path) < 0 && errno != ENOENT) {
		error_set(err, CARVE_EINTERNAL, "cannot remove %s: %s", path,
		    strerror(errno));
		free(path);
		return -1;
	}
	free(path);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* ---- reservations ---- */

void
migrate_reservation_of(const struct command *cmd, int64_t now_ms,
    struct migrate_reservation *out)
{
	const struct command_migrate_prepare_args *mp =
	    &cmd->cmd_args.migrate_prepare;

	memset(out, 0, sizeof(*out));
	snprintf(out->mr_vm_id, sizeof(out->mr_vm_id), "%s", cmd->cmd_vm_id);
	snprintf(out->mr_vm_name, sizeof(out->mr_vm_name), "%s",
	    mp->mp_spec.vs_name);
	snprintf(out->mr_command_id, sizeof(out->mr_command_id), "%s",
	    cmd->cmd_id);
	snprintf(out->mr_source_node, sizeof(out->mr_source_node), "%s",
	    mp->mp_source_node);
	migrate_prepare_claim(cmd, &out->mr_claim);
	out->mr_created_at_ms = now_ms;
}

char *
migrate_reservation_encode(const struct migrate_reservation *r)
{
	json_object *o = json_object_new_object();
	char *s;

	jsonx_add_string(o, "vm_id", r->mr_vm_id);
	jsonx_add_string(o, "name", r->mr_vm_name);
	jsonx_add_string(o, "command_id", r->mr_command_id);
	jsonx_add_string(o, "source_node", r->mr_source_node);
	jsonx_add_int(o, "vcpus", (int64_t)r->mr_claim.amount[CAP_VCPU]);
	jsonx_add_int(o, "memory_mib",
	    (int64_t)r->mr_claim.amount[CAP_MEMORY_MIB]);
	jsonx_add_int(o, "disk_gib", (int64_t)r->mr_claim.amount[CAP_DISK_GIB]);
	jsonx_add_int(o, "created_at", r->mr_created_at_ms);
	s = jsonx_to_string(o);
	json_object_put(o);
	return s;
}

int
migrate_reservation_decode(const char *buf, size_t len,
    struct migrate_reservation *out, struct carve_error *err)
{
	static const char *const keys[] = { "vm_id", "name", "command_id",
	    "source_node", "vcpus", "memory_mib", "disk_gib", "created_at",
	    NULL };
	struct migrate_reservation r;
	json_object *o;
	const char *name, *src;
	int64_t vcpus, mem, disk, at;
	int rc = -1;

	memset(&r, 0, sizeof(r));
	if ((o = jsonx_parse(buf, len, err)) == NULL)
		return -1;
	if (jsonx_check_object(o, "reservation", keys, err) == -1 ||
	    jsonx_get_uuid(o, "vm_id", true, r.mr_vm_id, err) == -1 ||
	    jsonx_get_string(o, "name", true, IDS_NAME_MAX, &name, err) == -1 ||
	    ids_name_check(name, "name", err) == -1 ||
	    jsonx_get_uuid(o, "command_id", true, r.mr_command_id, err) == -1 ||
	    jsonx_get_string(o, "source_node", true, IDS_NAME_MAX, &src,
	    err) == -1 ||
	    ids_name_check(src, "source_node", err) == -1 ||
	    jsonx_get_int(o, "vcpus", true, 1, VM_VCPUS_MAX, &vcpus, err) == -1 ||
	    jsonx_get_int(o, "memory_mib", true, VM_MEMORY_MIB_MIN,
	    (int64_t)VM_MEMORY_MIB_MAX, &mem, err) == -1 ||
	    jsonx_get_int(o, "disk_gib", true, 0, (int64_t)VM_DISK_GIB_MAX,
	    &disk, err) == -1 ||
	    jsonx_get_int(o, "created_at", true, 0, INT64_MAX, &at, err) == -1)
		goto out;
	snprintf(r.mr_vm_name, sizeof(r.mr_vm_name), "%s", name);
	snprintf(r.mr_source_node, sizeof(r.mr_source_node), "%s", src);
	r.mr_claim.amount[CAP_VCPU] = (uint64_t)vcpus;
	r.mr_claim.amount[CAP_MEMORY_MIB] = (uint64_t)mem;
	r.mr_claim.amount[CAP_DISK_GIB] = (uint64_t)disk;
	r.mr_created_at_ms = at;
	*out = r;
	rc = 0;
out:
	json_object_put(o);
	return rc;
}

static char *
migrate_dir(const char *state_dir)
{
	return xasprintf("%s/%s", state_dir, MIGRATE_DIR);
}

int
migrate_reservation_write(const char *state_dir,
    const struct migrate_reservation *r, struct carve_error *err)
{
	char *dir = migrate_dir(state_dir), *name, *js;
	int rc = -1;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		error_set(err, CARVE_EINTERNAL, "cannot create %s: %s", dir,
		    strerror(errno));
		free(dir);
		return -1;
	}
	name = xasprintf("%s.json", r->mr_vm_id);
	js = migrate_reservation_encode(r);
	rc = migrate_file_write(dir, name, js, err);
	free(js);
	free(name);
	free(dir);
	return rc;
}

int
migrate_reservation_delete(const char *state_dir, const char *vm_id,
    struct carve_error *err)
{
	char *dir = migrate_dir(state_dir), *name = xasprintf("%s.json", vm_id);
	int rc;

	rc = migrate_file_delete(dir, name, err);
	free(name);
	free(dir);
	return rc;
}

int
migrate_reservations_load(const char *state_dir,
    void (*cb)(const struct migrate_reservation *r, void *arg), void *arg,
    struct carve_error *err)
{
	char *dir = migrate_dir(state_dir);
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		free(dir);
		if (errno == ENOENT)
			return 0;
		return error_set(err, CARVE_EINTERNAL, "cannot read %s/%s: %s",
		    state_dir, MIGRATE_DIR, strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		struct carve_error lerr = { 0 };
		struct migrate_reservation r;
		char buf[MIGRATE_RES_MAX + 1];
		size_t n = strlen(de->d_name);
		ssize_t got;
		char *path;
		int fd;

		if (de->d_name[0] == '.' || n < 6 ||
		    strcmp(de->d_name + n - 5, ".json") != 0)
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		got = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (got < 0 || (size_t)got >= sizeof(buf) - 1) {
			log_error("migrate", "cannot read reservation %s: %s",
			    path, got < 0 ? strerror(errno) : "too large");
		} else if (migrate_reservation_decode(buf, (size_t)got, &r,
		    &lerr) < 0) {
			log_error("migrate", "ignoring reservation %s: %s", path,
			    lerr.message);
		} else if (strncmp(de->d_name, r.mr_vm_id, IDS_UUID_LEN) != 0) {
			log_error("migrate", "ignoring reservation %s: it is "
			    "about VM %s", path, r.mr_vm_id);
		} else {
			cb(&r, arg);
		}
		free(path);
	}
	closedir(d);
	free(dir);
	return 0;
}

/* ---- drain ---- */

bool
migrate_drained_load(const char *state_dir)
{
	char *path = xasprintf("%s/%s", state_dir, MIGRATE_DRAINED);
	bool there = access(path, F_OK) == 0;

	free(path);
	return there;
}

int
migrate_drained_store(const char *state_dir, bool drained,
    struct carve_error *err)
{
	char *when;
	int rc;

	if (!drained)
		return migrate_file_delete(state_dir, MIGRATE_DRAINED, err);
	/* The content is for the operator; the file's presence is the flag. */
	when = xasprintf("drained at %" PRId64 " (ms since the epoch)\n",
	    time_now_ms());
	rc = migrate_file_write(state_dir, MIGRATE_DRAINED, when, err);
	free(when);
	return rc;
}

/* ================================================================ XML */

static xmlDocPtr
migrate_xml_parse(const char *xml, struct carve_error *err)
{
	xmlDocPtr doc;
	size_t len = strnlen(xml, MIGRATE_XML_MAX + 1);

	if (len > MIGRATE_XML_MAX) {
		error_set(err, CARVE_EINVAL, "domain XML is larger than %d bytes",
		    MIGRATE_XML_MAX);
		return NULL;
	}
	xmlInitParser();
	doc = xmlReadMemory(xml, (int)len, NULL, NULL,
	    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc == NULL || doc->intSubset != NULL || doc->extSubset != NULL ||
	    xmlDocGetRootElement(doc) == NULL ||
	    !xmlStrEqual(xmlDocGetRootElement(doc)->name, BAD_CAST "domain")) {
		error_set(err, CARVE_EINVAL,
		    "the domain XML is not a plain <domain> document");
		xmlFreeDoc(doc);
		return NULL;
	}
	return doc;
}

static bool
migrate_elem_is(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE &&
	    xmlStrEqual(n->name, BAD_CAST name);
}

static xmlNode *
migrate_child(const xmlNode *parent, const char *name)
{
	for (xmlNode *c = parent->children; c != NULL; c = c->next)
		if (migrate_elem_is(c, name))
			return c;
	return NULL;
}

/* The source attribute that holds a disk's path, by the disk's type. */
static const char *
migrate_disk_attr(const xmlNode *disk)
{
	xmlChar *type = xmlGetProp(disk, BAD_CAST "type");
	const char *attr = NULL;

	if (type == NULL || xmlStrEqual(type, BAD_CAST "file"))
		attr = "file";
	else if (xmlStrEqual(type, BAD_CAST "block"))
		attr = "dev";
	else if (xmlStrEqual(type, BAD_CAST "dir"))
		attr = "dir";
	xmlFree(type);
	return attr;
}

int
migrate_dest_xml(const char *xml, const struct vm_disk_path *disks,
    size_t ndisks, const char *console_log, char **out,
    struct carve_error *err)
{
	bool used[VM_MIGRATE_DISKS_MAX] = { false };
	xmlDocPtr doc;
	xmlNode *devs;
	xmlChar *mem = NULL;
	int size = 0, rc = -1;

	*out = NULL;
	if (ndisks > VM_MIGRATE_DISKS_MAX)
		return error_set(err, CARVE_EINVAL, "too many disks");
	if ((doc = migrate_xml_parse(xml, err)) == NULL)
		return -1;
	devs = migrate_child(xmlDocGetRootElement(doc), "devices");
	for (xmlNode *d = devs != NULL ? devs->children : NULL; d != NULL;
	    d = d->next) {
		if (migrate_elem_is(d, "disk")) {
			xmlNode *src = migrate_child(d, "source");
			xmlNode *tgt = migrate_child(d, "target");
			const char *attr = migrate_disk_attr(d);
			xmlChar *dev = tgt != NULL ?
			    xmlGetProp(tgt, BAD_CAST "dev") : NULL;
			size_t i;

			if (dev == NULL) {
				error_set(err, CARVE_EINVAL,
				    "a disk of the domain has no target");
				goto out;
			}
			for (i = 0; i < ndisks; i++)
				if (xmlStrEqual(dev,
				    BAD_CAST disks[i].dp_target))
					break;
			/* An empty cdrom has no source: nothing to place. */
			if (src == NULL || attr == NULL ||
			    !xmlHasProp(src, BAD_CAST attr)) {
				if (i < ndisks)
					used[i] = true;
				xmlFree(dev);
				continue;
			}
			if (i == ndisks) {
				bool ro = migrate_child(d, "readonly") != NULL ||
				    migrate_child(d, "shareable") != NULL;

				error_set(err, CARVE_EINVAL, "disk %s%s has no "
				    "path on the destination (disks lists "
				    "none for it)", (const char *)dev, ro ?
				    " (read-only)" : "");
				xmlFree(dev);
				goto out;
			}
			used[i] = true;
			xmlFree(dev);
			if (xmlSetProp(src, BAD_CAST attr,
			    BAD_CAST disks[i].dp_path) == NULL) {
				error_set(err, CARVE_EINTERNAL,
				    "out of memory rewriting the domain XML");
				goto out;
			}
		} else if (console_log != NULL &&
		    (migrate_elem_is(d, "serial") ||
		    migrate_elem_is(d, "console"))) {
			/* pty with <log file=...> (carve's domains), or a
			 * file-backed one with <source path=...>. */
			xmlNode *log = migrate_child(d, "log");
			xmlNode *src = migrate_child(d, "source");
			xmlChar *type = xmlGetProp(d, BAD_CAST "type");
			bool file = type != NULL &&
			    xmlStrEqual(type, BAD_CAST "file");

			xmlFree(type);
			if ((log != NULL && xmlHasProp(log, BAD_CAST "file") &&
			    xmlSetProp(log, BAD_CAST "file",
			    BAD_CAST console_log) == NULL) ||
			    (file && src != NULL && xmlSetProp(src,
			    BAD_CAST "path", BAD_CAST console_log) == NULL)) {
				error_set(err, CARVE_EINTERNAL,
				    "out of memory rewriting the domain XML");
				goto out;
			}
		}
	}
	for (size_t i = 0; i < ndisks; i++)
		if (!used[i]) {
			error_set(err, CARVE_EINVAL, "disks names %s, which the "
			    "VM does not have", disks[i].dp_target);
			goto out;
		}
	xmlDocDumpMemoryEnc(doc, &mem, &size, "UTF-8");
	if (mem == NULL) {
		error_set(err, CARVE_EINTERNAL, "cannot serialize the domain XML");
		goto out;
	}
	*out = xstrndup((const char *)mem, (size_t)size);
	xmlFree(mem);
	rc = 0;
out:
	xmlFreeDoc(doc);
	return rc;
}

/* ================================================================ admission */

/*
 * The vm.create this prepare stands for, sharing its spec (shallow: not to
 * be cleared), so admission and claims follow a create's rules exactly.
 */
static void
migrate_as_create(const struct command *cmd, struct command *create)
{
	memset(create, 0, sizeof(*create));
	snprintf(create->cmd_id, sizeof(create->cmd_id), "%s", cmd->cmd_id);
	snprintf(create->cmd_vm_id, sizeof(create->cmd_vm_id), "%s",
	    cmd->cmd_vm_id);
	create->cmd_type = CMD_VM_CREATE;
	create->cmd_args.create = cmd->cmd_args.migrate_prepare.mp_spec;
}

void
migrate_prepare_claim(const struct command *cmd, struct cap_request *claim)
{
	struct command create;

	migrate_as_create(cmd, &create);
	handler_for(CMD_VM_CREATE)->h_claim(&create, claim);
}

int
migrate_prepare_admit(struct agent *a, const struct command *cmd,
    struct carve_error *err)
{
	const struct carved_conf *conf = a->a_conf;
	const struct command_migrate_prepare_args *mp =
	    &cmd->cmd_args.migrate_prepare;
	unsigned in = engine_incoming(a->a_engine);
	struct command create;

	if (conf->mig_libvirt_uri == NULL)
		return error_set(err, CARVE_EINVAL, "this host takes no incoming "
		    "migrations ([migration] libvirt_uri is not set)");
	if (strcmp(mp->mp_source_node, conf->node_name) == 0)
		return error_set(err, CARVE_EINVAL, "source_node is this host "
		    "(%s): a VM cannot migrate to the host it is on",
		    conf->node_name);
	if (a->a_drained)
		return error_set(err, CARVE_ECONFLICT, "this host is drained "
		    "(carvectl undrain): it takes no incoming migration");
	if (in >= conf->mig_max_incoming)
		return error_set(err, CARVE_ECAPACITY, "too many incoming "
		    "migrations: %u in progress, [migration] max_incoming is "
		    "%u", in, conf->mig_max_incoming);
	/* A create's checks: the name is free, direct kernel boot and the
	 * NICs' networks and bridges are allowed here. */
	migrate_as_create(cmd, &create);
	return handler_for(CMD_VM_CREATE)->h_admit(a, &create, err);
}

void
migrate_prepare_prepare(struct agent *a, const struct command *cmd,
    handler_prepared_cb cb, void *arg)
{
	const struct vm_spec *s = &cmd->cmd_args.migrate_prepare.mp_spec;

	if (s->vs_image.vi_url == NULL) {
		cb(NULL, arg);
		return;
	}
	images_ensure(a->a_images, &s->vs_image, cb, arg);
}

int
migrate_admit(struct agent *a, const struct command *cmd,
    struct carve_error *err)
{
	const struct carved_conf *conf = a->a_conf;
	const struct command_migrate_args *mg = &cmd->cmd_args.migrate;
	const struct vm_info *vm = agent_vm_find(a, cmd->cmd_vm_id);
	unsigned out = engine_outgoing(a->a_engine);

	if (strcmp(mg->mg_dest_node, conf->node_name) == 0)
		return error_set(err, CARVE_EINVAL, "dest_node is this host "
		    "(%s): a VM cannot migrate to the host it is on",
		    conf->node_name);
	if (vm != NULL && vm->vm_state != VM_STATE_RUNNING &&
	    vm->vm_state != VM_STATE_PAUSED)
		return error_set(err, CARVE_EINVAL, "live migration needs a "
		    "running VM; %s is %s", cmd->cmd_vm_id,
		    vm_state_name(vm->vm_state));
	if (out >= conf->mig_max_outgoing)
		return error_set(err, CARVE_ECONFLICT, "too many outgoing "
		    "migrations: %u in progress, [migration] max_outgoing is "
		    "%u", out, conf->mig_max_outgoing);
	return 0;
}

/* ================================================================ prepare */

static char *
migrate_data_uri(const char *address)
{
	/* An IPv6 address needs brackets in a URI. */
	if (strchr(address, ':') != NULL)
		return xasprintf("tcp://[%s]", address);
	return xasprintf("tcp://%s", address);
}

/*
 * The VM's volumes on this host, as vm.create makes them (with the same
 * targets as its domain XML): the root overlay vda on the cached base (the
 * same capacity as on the source: the spec's disk_gib, or the image's size
 * rounded up when it is 0), empty data disks vdb, vdc, ... of their sizes
 * (the migration fills them), and the seed hdc.
 */
static int
migrate_prepare_disks(struct handler_job *j, json_object *disks,
    struct carve_error *err)
{
	const struct command *cmd = j->hj_cmd;
	const struct vm_spec *s = &cmd->cmd_args.migrate_prepare.mp_spec;
	char *base = NULL, *iso = NULL, *root = NULL, *seed = NULL;
	uint64_t vsize, gib = s->vs_disk_gib;
	int rc = -1;

	if (virt_storage_pool_ensure(j->hj_conn, j->hj_pool, j->hj_disk_dir,
	    err) < 0)
		goto out;
	for (size_t i = 0; i < s->vs_ndata_disks; i++) {
		char *path = NULL, target[8];

		if (virt_storage_data(j->hj_conn, j->hj_pool, cmd->cmd_vm_id,
		    (unsigned)i, s->vs_data_disks[i].dd_size_gib * GIB, &path,
		    err) < 0)
			goto out;
		snprintf(target, sizeof(target), "vd%c", (char)('b' + i));
		jsonx_add_string(disks, target, path);
		free(path);
	}
	if (s->vs_image.vi_url == NULL) {
		rc = 0;
		goto out;
	}
	base = images_path(j->hj_image_dir, &s->vs_image);
	if (images_inspect(base, s->vs_image.vi_format, &vsize, err) < 0)
		goto out;
	if (gib == 0)
		gib = (vsize + GIB - 1) / GIB;
	if (gib * GIB < vsize) {
		error_set(err, CARVE_EINVAL, "disk_gib %" PRIu64 " is smaller "
		    "than the image's virtual size", gib);
		goto out;
	}
	if (virt_storage_root(j->hj_conn, j->hj_pool, cmd->cmd_vm_id, gib * GIB,
	    base, s->vs_image.vi_format, &root, err) < 0)
		goto out;
	jsonx_add_string(disks, "vda", root);
	if (mkdir(j->hj_seed_dir, 0700) < 0 && errno != EEXIST) {
		error_set(err, CARVE_EINTERNAL, "cannot create %s: %s",
		    j->hj_seed_dir, strerror(errno));
		goto out;
	}
	/* The same seed as the source's: built from the same spec. */
	iso = xasprintf("%s/%s.iso", j->hj_seed_dir, cmd->cmd_vm_id);
	if (seed_build(iso, cmd->cmd_vm_id, s->vs_name,
	    (const char *const *)s->vs_ssh_keys, s->vs_nssh_keys,
	    s->vs_user_data, err) < 0 ||
	    virt_storage_seed(j->hj_conn, j->hj_pool, cmd->cmd_vm_id, iso, &seed,
	    err) < 0)
		goto out;
	jsonx_add_string(disks, "hdc", seed);
	rc = 0;
out:
	if (iso != NULL && unlink(iso) < 0 && errno != ENOENT)
		log_warn("migrate", "cannot remove %s: %s", iso,
		    strerror(errno));
	free(iso);
	free(root);
	free(seed);
	free(base);
	return rc;
}

void
migrate_prepare_run(struct handler_job *j)
{
	const struct command *cmd = j->hj_cmd;
	const struct carved_conf *conf = j->hj_conf;
	const struct vm_spec *s = &cmd->cmd_args.migrate_prepare.mp_spec;
	struct migrate_reservation r;
	struct vm_info cur;
	struct carve_error lerr = { 0 };
	json_object *disks = json_object_new_object();
	bool made = false;

	/* A domain with this UUID here already: not ours to overwrite. */
	if (virt_op_get(j->hj_conn, cmd->cmd_vm_id, &cur, &lerr) == 0) {
		error_set(&j->hj_err, CARVE_ECONFLICT, "VM %s is on this host "
		    "already", cmd->cmd_vm_id);
		goto out;
	}
	if (lerr.code == CARVE_EUNAVAIL) {
		j->hj_err = lerr;
		goto out;
	}
	if (s->vs_image.vi_url != NULL || s->vs_ndata_disks > 0) {
		made = true;
		if (migrate_prepare_disks(j, disks, &j->hj_err) < 0)
			goto out;
	}
	migrate_reservation_of(cmd, j->hj_now_ms, &r);
	if (migrate_reservation_write(conf->state_dir, &r, &j->hj_err) < 0)
		goto out;
	j->hj_data = json_object_new_object();
	jsonx_add_string(j->hj_data, "libvirt_uri", conf->mig_libvirt_uri);
	if (conf->mig_address != NULL) {
		char *u = migrate_data_uri(conf->mig_address);

		jsonx_add_string(j->hj_data, "migrate_uri", u);
		free(u);
	}
	json_object_object_add(j->hj_data, "disks", disks);
	disks = NULL;
	if (j->hj_console_log != NULL)
		jsonx_add_string(j->hj_data, "console_log", j->hj_console_log);
out:
	json_object_put(disks);
	/*
	 * Nothing half-made stays (as for a create; not after a lost
	 * connection, which is retried, nor a conflict): neither volumes nor
	 * a reservation an earlier run of this prepare (before a crash) left.
	 */
	if (error_isset(&j->hj_err) && j->hj_err.code != CARVE_EUNAVAIL &&
	    j->hj_err.code != CARVE_ECONFLICT) {
		struct carve_error rerr = { 0 };

		if (made && virt_storage_delete_vm(j->hj_conn, j->hj_pool,
		    cmd->cmd_vm_id, NULL, &rerr) < 0)
			log_error("migrate", "rollback of VM %s: %s",
			    cmd->cmd_vm_id, rerr.message);
		error_clear(&rerr);
		if (migrate_reservation_delete(conf->state_dir, cmd->cmd_vm_id,
		    &rerr) < 0)
			log_error("migrate", "rollback of VM %s: %s",
			    cmd->cmd_vm_id, rerr.message);
	}
}

void
migrate_prepare_done(struct agent *a, const struct command *cmd,
    const struct handler_job *j, const struct carve_error *err)
{
	struct migrate_reservation r;

	if (err != NULL) {
		/* Its rollback removed any reservation a run before a crash
		 * made (not after a conflict: that one may be another's). */
		if (err->code != CARVE_ECONFLICT)
			engine_unreserve(a->a_engine, cmd->cmd_vm_id);
		return;
	}
	migrate_reservation_of(cmd, j->hj_now_ms, &r);
	engine_reserve(a->a_engine, &r);
	log_kv(LOG_LVL_INFO, "migrate", "incoming migration prepared",
	    "vm_id", cmd->cmd_vm_id, "source_node", r.mr_source_node,
	    (char *)NULL);
}

/* ================================================================ finish */

/* Is a migration job (in or out) running on d? */
static int
migrate_job_active(virConnectPtr c, virDomainPtr d, int *operation,
    struct carve_error *err)
{
	virTypedParameterPtr params = NULL;
	int nparams = 0, type = VIR_DOMAIN_JOB_NONE, op = 0;

	*operation = 0;
	if (virDomainGetJobStats(d, &type, &params, &nparams, 0) < 0) {
		if (virt_ops_errcode_is(VIR_ERR_NO_DOMAIN) ||
		    virt_ops_errcode_is(VIR_ERR_OPERATION_INVALID))
			return 0;
		return virt_ops_fail(c, err, "reading the job of the domain");
	}
	(void)virTypedParamsGetInt(params, nparams, VIR_DOMAIN_JOB_OPERATION,
	    &op);
	virTypedParamsFree(params, nparams);
	*operation = op;
	return type != VIR_DOMAIN_JOB_NONE;
}

void
migrate_finish_run(struct handler_job *j)
{
	const struct command *cmd = j->hj_cmd;
	struct carve_error lerr = { 0 };
	virDomainPtr d;
	unsigned n = 0;
	int op, active;

	d = virDomainLookupByUUIDString(j->hj_conn, cmd->cmd_vm_id);
	if (d == NULL && !virt_ops_errcode_is(VIR_ERR_NO_DOMAIN)) {
		virt_ops_fail(j->hj_conn, &j->hj_err, "domain lookup");
		return;
	}
	if (d != NULL) {
		active = migrate_job_active(j->hj_conn, d, &op, &j->hj_err);
		virDomainFree(d);
		if (active < 0)
			return;
		if (active && op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN) {
			error_set(&j->hj_err, CARVE_ECONFLICT, "the migration "
			    "of VM %s into this host is still running: finish "
			    "it once the source's vm.migrate has its result",
			    cmd->cmd_vm_id);
			return;
		}
		/* Here, with carve's metadata (it travels in the XML). */
		if (virt_op_get(j->hj_conn, cmd->cmd_vm_id, &j->hj_vm,
		    &lerr) == 0) {
			if (migrate_reservation_delete(j->hj_conf->state_dir,
			    cmd->cmd_vm_id, &j->hj_err) < 0)
				return;
			j->hj_has_vm = true;
			j->hj_data = json_object_new_object();
			jsonx_add_string(j->hj_data, "vm_id", cmd->cmd_vm_id);
			jsonx_add_string(j->hj_data, "outcome", "arrived");
			jsonx_add_string(j->hj_data, "state",
			    vm_state_name(j->hj_vm.vm_state));
			return;
		}
		if (lerr.code != CARVE_ENOTFOUND) {
			j->hj_err = lerr;
			return;
		}
		/* Undefined since the lookup: it did not stay. */
	}
	if (virt_storage_delete_vm(j->hj_conn, j->hj_pool, cmd->cmd_vm_id, &n,
	    &j->hj_err) < 0 ||
	    migrate_reservation_delete(j->hj_conf->state_dir, cmd->cmd_vm_id,
	    &j->hj_err) < 0)
		return;
	j->hj_data = json_object_new_object();
	jsonx_add_string(j->hj_data, "vm_id", cmd->cmd_vm_id);
	jsonx_add_string(j->hj_data, "outcome", "released");
	jsonx_add_int(j->hj_data, "volumes_deleted", n);
}

void
migrate_finish_done(struct agent *a, const struct command *cmd,
    const struct handler_job *j, const struct carve_error *err)
{
	(void)j;
	if (err != NULL)
		return;
	if (engine_reserved(a->a_engine, cmd->cmd_vm_id))
		log_kv(LOG_LVL_INFO, "migrate", "incoming migration finished",
		    "vm_id", cmd->cmd_vm_id, (char *)NULL);
	engine_unreserve(a->a_engine, cmd->cmd_vm_id);
}

/* ================================================================ cancel */

void
migrate_cancel_run(struct handler_job *j)
{
	const struct command *cmd = j->hj_cmd;
	bool cancelled = j->hj_abort_pending;
	virDomainPtr d;
	int op, active;

	d = virDomainLookupByUUIDString(j->hj_conn, cmd->cmd_vm_id);
	if (d == NULL && !virt_ops_errcode_is(VIR_ERR_NO_DOMAIN)) {
		virt_ops_fail(j->hj_conn, &j->hj_err, "domain lookup");
		return;
	}
	if (d != NULL) {
		active = migrate_job_active(j->hj_conn, d, &op, &j->hj_err);
		if (active > 0 && op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT) {
			if (virDomainAbortJob(d) == 0)
				cancelled = true;
			else
				log_info("migrate", "VM %s: the migration could "
				    "not be aborted: %s", cmd->cmd_vm_id,
				    virGetLastErrorMessage());
		}
		virDomainFree(d);
		if (active < 0)
			return;
	}
	j->hj_data = json_object_new_object();
	jsonx_add_string(j->hj_data, "vm_id", cmd->cmd_vm_id);
	jsonx_add_bool(j->hj_data, "cancelled", cancelled);
}

/* ================================================================ migrate */

/* What the job statistics said, last time we looked. */
struct mig_stats {
	bool ms_have;
	uint64_t ms_elapsed_ms;
	uint64_t ms_downtime_ms;
	bool ms_have_downtime;
	uint64_t ms_data_total, ms_data_processed, ms_data_remaining;
	uint64_t ms_mem_remaining, ms_mem_total, ms_mem_bps;
	uint64_t ms_disk_total, ms_disk_processed, ms_disk_remaining;
	uint64_t ms_iteration;
};

static void
mig_ull(virTypedParameterPtr p, int n, const char *name, uint64_t *out)
{
	unsigned long long v;

	if (virTypedParamsGetULLong(p, n, name, &v) == 1)
		*out = v;
}

/* flags: 0 for the running job, VIR_DOMAIN_JOB_STATS_COMPLETED after. */
static bool
mig_stats_read(virDomainPtr d, unsigned flags, struct mig_stats *st)
{
	virTypedParameterPtr p = NULL;
	int n = 0, type = VIR_DOMAIN_JOB_NONE;
	unsigned long long v;

	if (virDomainGetJobStats(d, &type, &p, &n, flags) < 0)
		return false;
	if (type == VIR_DOMAIN_JOB_NONE) {
		virTypedParamsFree(p, n);
		return false;
	}
	st->ms_have = true;
	mig_ull(p, n, VIR_DOMAIN_JOB_TIME_ELAPSED, &st->ms_elapsed_ms);
	if (virTypedParamsGetULLong(p, n, VIR_DOMAIN_JOB_DOWNTIME, &v) == 1) {
		st->ms_downtime_ms = v;
		st->ms_have_downtime = true;
	}
	mig_ull(p, n, VIR_DOMAIN_JOB_DATA_TOTAL, &st->ms_data_total);
	mig_ull(p, n, VIR_DOMAIN_JOB_DATA_PROCESSED, &st->ms_data_processed);
	mig_ull(p, n, VIR_DOMAIN_JOB_DATA_REMAINING, &st->ms_data_remaining);
	mig_ull(p, n, VIR_DOMAIN_JOB_MEMORY_TOTAL, &st->ms_mem_total);
	mig_ull(p, n, VIR_DOMAIN_JOB_MEMORY_REMAINING, &st->ms_mem_remaining);
	mig_ull(p, n, VIR_DOMAIN_JOB_MEMORY_BPS, &st->ms_mem_bps);
	mig_ull(p, n, VIR_DOMAIN_JOB_DISK_TOTAL, &st->ms_disk_total);
	mig_ull(p, n, VIR_DOMAIN_JOB_DISK_PROCESSED, &st->ms_disk_processed);
	mig_ull(p, n, VIR_DOMAIN_JOB_DISK_REMAINING, &st->ms_disk_remaining);
	mig_ull(p, n, VIR_DOMAIN_JOB_MEMORY_ITERATION, &st->ms_iteration);
	virTypedParamsFree(p, n);
	return true;
}

static void
mig_progress(struct handler_job *j, const struct mig_stats *st)
{
	uint64_t done = st->ms_data_processed, left = st->ms_data_remaining;
	char msg[256];
	int pct;

	/* Memory is sent again as it is dirtied: what is left shrinks
	 * towards the end, so percent is done / (done + left). Never 100
	 * before the result. */
	pct = done + left > 0 ? (int)(done * 100 / (done + left)) : 0;
	if (pct > 99)
		pct = 99;
	snprintf(msg, sizeof(msg), "iteration %" PRIu64 ": %.1f MiB of memory "
	    "and %.1f MiB of disk left, %.1f MiB sent, %.1f MiB/s",
	    st->ms_iteration, (double)st->ms_mem_remaining / MIB,
	    (double)st->ms_disk_remaining / MIB, (double)done / MIB,
	    (double)st->ms_mem_bps / MIB);
	j->hj_progress(j, pct, msg);
}

/* Shared by the worker and the thread running virDomainMigrateToURI3. */
struct mig_run {
	pthread_mutex_t mr_mu;
	pthread_cond_t mr_cv;
	unsigned mr_refs;
	bool mr_done;
	int mr_rc;
	bool mr_aborted;              /* libvirt said the job was aborted */
	struct carve_error mr_err;
	virConnectPtr mr_conn;        /* own references */
	virDomainPtr mr_dom;
	char *mr_uri;
	virTypedParameterPtr mr_params;
	int mr_nparams;
	unsigned mr_flags;
};

static void
mig_run_unref(struct mig_run *r)
{
	bool last;

	pthread_mutex_lock(&r->mr_mu);
	last = --r->mr_refs == 0;
	pthread_mutex_unlock(&r->mr_mu);
	if (!last)
		return;
	virTypedParamsFree(r->mr_params, r->mr_nparams);
	virDomainFree(r->mr_dom);
	virConnectClose(r->mr_conn);
	free(r->mr_uri);
	pthread_cond_destroy(&r->mr_cv);
	pthread_mutex_destroy(&r->mr_mu);
	free(r);
}

static void *
mig_thread(void *arg)
{
	struct mig_run *r = arg;
	struct carve_error err = { 0 };
	bool aborted = false;
	int rc;

	rc = virDomainMigrateToURI3(r->mr_dom, r->mr_uri, r->mr_params,
	    (unsigned)r->mr_nparams, r->mr_flags);
	if (rc < 0) {
		aborted = virt_ops_errcode_is(VIR_ERR_OPERATION_ABORTED);
		virt_ops_fail(r->mr_conn, &err, "migration");
	}
	pthread_mutex_lock(&r->mr_mu);
	r->mr_rc = rc;
	r->mr_err = err;
	r->mr_aborted = aborted;
	r->mr_done = true;
	pthread_cond_broadcast(&r->mr_cv);
	pthread_mutex_unlock(&r->mr_mu);
	mig_run_unref(r);
	return NULL;
}

/* Wait up to ms for the migration thread; true once it is done. */
static bool
mig_wait(struct mig_run *r, unsigned ms)
{
	struct timespec ts;
	bool done;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->mr_mu);
	while (!r->mr_done &&
	    pthread_cond_timedwait(&r->mr_cv, &r->mr_mu, &ts) == 0)
		;
	done = r->mr_done;
	pthread_mutex_unlock(&r->mr_mu);
	return done;
}

enum mig_stop {
	MIG_GOING = 0,
	MIG_CANCELLED,                /* vm.migrate.cancel */
	MIG_TIMED_OUT,
};

/*
 * One tick of watching a migration: progress, and an abort when it is
 * cancelled or over its time. *stop says why it was aborted (once).
 */
static void
mig_watch(struct handler_job *j, virDomainPtr d, int64_t deadline_mono,
    enum mig_stop *stop, struct mig_stats *st)
{
	enum mig_stop why = MIG_GOING;

	if (mig_stats_read(d, 0, st))
		mig_progress(j, st);
	if (*stop != MIG_GOING)
		return;
	if (atomic_load(j->hj_abort))
		why = MIG_CANCELLED;
	else if (time_mono_ms() >= deadline_mono)
		why = MIG_TIMED_OUT;
	if (why == MIG_GOING)
		return;
	*stop = why;
	log_kv(LOG_LVL_WARN, "migrate", why == MIG_CANCELLED ?
	    "cancelling the migration" : "the migration timed out; aborting",
	    "vm_id", j->hj_cmd->cmd_vm_id, (char *)NULL);
	if (virDomainAbortJob(d) < 0)
		log_warn("migrate", "VM %s: cannot abort the migration: %s",
		    j->hj_cmd->cmd_vm_id, virGetLastErrorMessage());
}

/*
 * After the migration (or a crash in it): what libvirt shows decides.
 * Returns 1 when the VM went (it is undefined here now and its volumes
 * are deleted), 0 when it stayed (j->hj_vm is its state), 2 when a
 * migration job is still running, -1 on error.
 */
static int
mig_settle(struct handler_job *j, struct mig_stats *done_stats)
{
	const char *vm_id = j->hj_cmd->cmd_vm_id;
	struct carve_error lerr = { 0 };
	virDomainPtr d;
	int state = 0, reason = 0, op = 0, active;
	unsigned n = 0;

	d = virDomainLookupByUUIDString(j->hj_conn, vm_id);
	if (d == NULL && !virt_ops_errcode_is(VIR_ERR_NO_DOMAIN))
		return virt_ops_fail(j->hj_conn, &j->hj_err, "domain lookup");
	if (d != NULL) {
		active = migrate_job_active(j->hj_conn, d, &op, &j->hj_err);
		if (active < 0) {
			virDomainFree(d);
			return -1;
		}
		if (active && op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT) {
			virDomainFree(d);
			return 2;
		}
		if (virDomainGetState(d, &state, &reason, 0) < 0) {
			if (!virt_ops_errcode_is(VIR_ERR_NO_DOMAIN)) {
				virDomainFree(d);
				return virt_ops_fail(j->hj_conn, &j->hj_err,
				    "reading the domain state");
			}
			state = VIR_DOMAIN_NOSTATE;
			reason = -1;
		}
		if (state != VIR_DOMAIN_SHUTOFF ||
		    reason != VIR_DOMAIN_SHUTOFF_MIGRATED) {
			virDomainFree(d);
			if (reason == -1)
				goto gone;
			/* Still here: the migration did not happen. */
			if (virt_op_get(j->hj_conn, vm_id, &j->hj_vm,
			    &lerr) == 0) {
				j->hj_has_vm = true;
				return 0;
			}
			if (lerr.code != CARVE_ENOTFOUND) {
				j->hj_err = lerr;
				return -1;
			}
			goto gone;
		}
		/* Migrated: read what it took, then undefine it ourselves. */
		if (done_stats != NULL && !done_stats->ms_have_downtime)
			(void)mig_stats_read(d, VIR_DOMAIN_JOB_STATS_COMPLETED,
			    done_stats);
		if (virDomainUndefine(d) < 0 &&
		    !virt_ops_errcode_is(VIR_ERR_NO_DOMAIN)) {
			virt_ops_fail(j->hj_conn, &j->hj_err, "undefining the "
			    "migrated domain");
			virDomainFree(d);
			return -1;
		}
		virDomainFree(d);
	}
gone:
	if (virt_storage_delete_vm(j->hj_conn, j->hj_pool, vm_id, &n,
	    &j->hj_err) < 0)
		return -1;
	log_kv(LOG_LVL_INFO, "migrate", "the VM left this host",
	    "vm_id", vm_id, (char *)NULL);
	j->hj_vm_gone = true;
	return 1;
}

static void
mig_result(struct handler_job *j, const struct mig_stats *st,
    int64_t started_mono, bool recovered)
{
	j->hj_data = json_object_new_object();
	jsonx_add_string(j->hj_data, "vm_id", j->hj_cmd->cmd_vm_id);
	jsonx_add_string(j->hj_data, "dest_node",
	    j->hj_cmd->cmd_args.migrate.mg_dest_node);
	jsonx_add_int(j->hj_data, "elapsed_ms", st->ms_have ?
	    (int64_t)st->ms_elapsed_ms : time_mono_ms() - started_mono);
	if (st->ms_have_downtime)
		jsonx_add_int(j->hj_data, "downtime_ms",
		    (int64_t)st->ms_downtime_ms);
	if (st->ms_have) {
		jsonx_add_int(j->hj_data, "data_transferred_bytes",
		    (int64_t)st->ms_data_processed);
		jsonx_add_int(j->hj_data, "disk_transferred_bytes",
		    (int64_t)st->ms_disk_processed);
		jsonx_add_int(j->hj_data, "iterations",
		    (int64_t)st->ms_iteration);
	}
	if (recovered)
		jsonx_add_bool(j->hj_data, "recovered", true);
}

/* The migration ended and the VM stayed: say why. */
static void
mig_failed(struct handler_job *j, enum mig_stop stop,
    const struct carve_error *lverr)
{
	const struct command_migrate_args *mg = &j->hj_cmd->cmd_args.migrate;
	const char *node = j->hj_node_name;

	if (stop == MIG_CANCELLED)
		error_set(&j->hj_err, CARVE_ECONFLICT, "migration to %s "
		    "cancelled by vm.migrate.cancel; the VM keeps running on %s",
		    mg->mg_dest_node, node);
	else if (stop == MIG_TIMED_OUT)
		error_set(&j->hj_err, CARVE_EHYPERVISOR, "migration to %s did "
		    "not complete within %u s and was aborted; the VM keeps "
		    "running on %s", mg->mg_dest_node, mg->mg_timeout_s, node);
	else if (lverr != NULL && error_isset(lverr))
		error_set(&j->hj_err, lverr->code == CARVE_EUNAVAIL ?
		    CARVE_EHYPERVISOR : lverr->code, "%s; the VM stays on %s",
		    lverr->message, node);
	else
		error_set(&j->hj_err, CARVE_EHYPERVISOR, "migration to %s did "
		    "not complete; the VM stays on %s", mg->mg_dest_node, node);
}

/*
 * DEST_XML is the running definition on the destination; PERSIST_DEST
 * takes the persistent one from PERSIST_XML (else from the source's own,
 * with the source's paths): both get the destination's paths.
 */
static int
mig_params(struct handler_job *j, const char *xml, const char *persist,
    struct mig_run *r)
{
	const struct command_migrate_args *mg = &j->hj_cmd->cmd_args.migrate;
	int max = 0;

	if (virTypedParamsAddString(&r->mr_params, &r->mr_nparams, &max,
	    VIR_MIGRATE_PARAM_DEST_XML, xml) < 0 ||
	    virTypedParamsAddString(&r->mr_params, &r->mr_nparams, &max,
	    VIR_MIGRATE_PARAM_PERSIST_XML, persist) < 0 ||
	    (mg->mg_dest_migrate_uri != NULL &&
	    virTypedParamsAddString(&r->mr_params, &r->mr_nparams, &max,
	    VIR_MIGRATE_PARAM_URI, mg->mg_dest_migrate_uri) < 0) ||
	    (mg->mg_bandwidth_mibps > 0 &&
	    virTypedParamsAddULLong(&r->mr_params, &r->mr_nparams, &max,
	    VIR_MIGRATE_PARAM_BANDWIDTH, mg->mg_bandwidth_mibps) < 0))
		return error_set(&j->hj_err, CARVE_EINTERNAL,
		    "cannot build the migration parameters");
	r->mr_flags = VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_LIVE |
	    VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_NON_SHARED_INC |
	    VIR_MIGRATE_AUTO_CONVERGE;
	if (j->hj_conf->mig_tls)
		r->mr_flags |= VIR_MIGRATE_TLS;
	return 0;
}

/* Wait for a migration job libvirtd runs without us (after a restart). */
static void
mig_follow(struct handler_job *j, virDomainPtr d, int64_t deadline,
    enum mig_stop *stop, struct mig_stats *st)
{
	int op = 0;

	while (!atomic_load(j->hj_cancel)) {
		struct carve_error lerr = { 0 };

		mig_watch(j, d, deadline, stop, st);
		if (migrate_job_active(j->hj_conn, d, &op, &lerr) <= 0 ||
		    op != VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT)
			return;
		time_sleep_ms(MIGRATE_TICK_MS);
	}
}

/*
 * mig_settle, following a migration job that is still running (d, or the
 * domain looked up again) until it ends. -1 with CARVE_EUNAVAIL when
 * carved stops meanwhile.
 */
static int
mig_settle_follow(struct handler_job *j, virDomainPtr d, int64_t deadline,
    enum mig_stop *stop, struct mig_stats *st, struct mig_stats *done)
{
	int rc;

	while ((rc = mig_settle(j, done)) == 2) {
		virDomainPtr dd = d != NULL ? d :
		    virDomainLookupByUUIDString(j->hj_conn, j->hj_cmd->cmd_vm_id);

		if (dd == NULL)
			continue;   /* gone meanwhile: settle again */
		mig_follow(j, dd, deadline, stop, st);
		if (dd != d)
			virDomainFree(dd);
		if (atomic_load(j->hj_cancel))
			return error_set(&j->hj_err, CARVE_EUNAVAIL, "carved is "
			    "stopping; the migration goes on");
	}
	return rc;
}

void
migrate_run(struct handler_job *j)
{
	const struct command *cmd = j->hj_cmd;
	const struct command_migrate_args *mg = &cmd->cmd_args.migrate;
	struct mig_stats st = { 0 }, done = { 0 };
	struct carve_error lverr = { 0 };
	enum mig_stop stop = MIG_GOING;
	struct vm_info cur;
	struct mig_run *r = NULL;
	virDomainPtr d = NULL;
	char *xml = NULL, *dest = NULL, *pxml = NULL, *pdest = NULL;
	int64_t started = time_mono_ms();
	int64_t deadline = started + (int64_t)mg->mg_timeout_s * 1000;
	pthread_t tid;
	pthread_attr_t attr;
	bool finished;
	int rc;

	if (atomic_load(j->hj_abort)) {
		mig_failed(j, MIG_CANCELLED, NULL);
		(void)virt_op_get(j->hj_conn, cmd->cmd_vm_id, &j->hj_vm,
		    &lverr);
		j->hj_has_vm = !error_isset(&lverr);
		return;
	}
	/* Managed and running (a stopped VM has nothing to migrate live). */
	if (virt_op_get(j->hj_conn, cmd->cmd_vm_id, &cur, &j->hj_err) < 0) {
		if (j->hj_err.code == CARVE_ENOTFOUND)
			j->hj_vm_gone = true;
		return;
	}
	if (cur.vm_state != VM_STATE_RUNNING && cur.vm_state != VM_STATE_PAUSED) {
		j->hj_vm = cur;
		j->hj_has_vm = true;
		error_set(&j->hj_err, CARVE_EINVAL, "live migration needs a "
		    "running VM; %s is %s", cmd->cmd_vm_id,
		    vm_state_name(cur.vm_state));
		return;
	}
	d = virDomainLookupByUUIDString(j->hj_conn, cmd->cmd_vm_id);
	if (d == NULL) {
		virt_ops_fail(j->hj_conn, &j->hj_err, "domain lookup");
		return;
	}
	/* libvirt refuses it anyway (qemuMigrationSrcIsAllowed): say so
	 * before anything is sent, in carve's words. */
	if ((rc = virDomainSnapshotNum(d, 0)) > 0) {
		j->hj_vm = cur;
		j->hj_has_vm = true;
		error_set(&j->hj_err, CARVE_EINVAL, "VM %s has %d snapshot%s; "
		    "libvirt cannot live-migrate a domain with snapshots "
		    "(delete them first)", cmd->cmd_vm_id, rc, rc == 1 ? "" :
		    "s");
		goto out;
	}
	xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_MIGRATABLE);
	if (xml == NULL) {
		virt_ops_fail(j->hj_conn, &j->hj_err, "reading the domain XML");
		goto out;
	}
	if (migrate_dest_xml(xml, mg->mg_disks, mg->mg_ndisks,
	    mg->mg_console_log, &dest, &j->hj_err) < 0)
		goto out;
	pxml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_MIGRATABLE |
	    VIR_DOMAIN_XML_INACTIVE);
	if (pxml == NULL) {
		virt_ops_fail(j->hj_conn, &j->hj_err, "reading the domain's "
		    "persistent XML");
		goto out;
	}
	if (migrate_dest_xml(pxml, mg->mg_disks, mg->mg_ndisks,
	    mg->mg_console_log, &pdest, &j->hj_err) < 0)
		goto out;
	if (mg->mg_max_downtime_ms > 0 &&
	    virDomainMigrateSetMaxDowntime(d, mg->mg_max_downtime_ms, 0) < 0) {
		virt_ops_fail(j->hj_conn, &j->hj_err, "setting the maximum "
		    "downtime");
		goto out;
	}

	r = xcalloc(1, sizeof(*r));
	pthread_mutex_init(&r->mr_mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&r->mr_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	r->mr_refs = 2;
	r->mr_conn = j->hj_conn;
	virConnectRef(r->mr_conn);
	r->mr_dom = d;
	virDomainRef(d);
	r->mr_uri = xstrdup(mg->mg_dest_libvirt_uri);
	if (mig_params(j, dest, pdest, r) < 0) {
		r->mr_refs = 1;
		goto out;
	}
	log_kv(LOG_LVL_INFO, "migrate", "migrating", "vm_id", cmd->cmd_vm_id,
	    "dest_node", mg->mg_dest_node, "dest_uri", mg->mg_dest_libvirt_uri,
	    (char *)NULL);
	j->hj_progress(j, 0, "starting");
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&tid, &attr, mig_thread, r);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		r->mr_refs = 1;
		error_set(&j->hj_err, CARVE_EINTERNAL, "cannot start a thread: "
		    "%s", strerror(rc));
		goto out;
	}
	for (;;) {
		finished = mig_wait(r, MIGRATE_TICK_MS);
		if (finished)
			break;
		if (atomic_load(j->hj_cancel)) {
			/* carved is stopping: libvirtd carries on without us
			 * and the next start recovers the command. */
			error_set(&j->hj_err, CARVE_EUNAVAIL, "carved is "
			    "stopping; the migration goes on and is settled at "
			    "the next start");
			goto out;
		}
		mig_watch(j, d, deadline, &stop, &st);
	}
	rc = r->mr_rc;
	lverr = r->mr_err;
	/* A cancel's own abort may have ended it before we looked. */
	if (stop == MIG_GOING && rc != 0 && atomic_load(j->hj_abort))
		stop = MIG_CANCELLED;
	if (rc == 0) {
		/* The completed job's numbers, while the domain still
		 * exists here (shut off, migrated). */
		(void)mig_stats_read(d, VIR_DOMAIN_JOB_STATS_COMPLETED, &done);
	} else if (lverr.code == CARVE_EUNAVAIL) {
		/* Our connection died: libvirtd may still be migrating.
		 * Recovery, after reconnecting, settles it. */
		j->hj_err = lverr;
		goto out;
	}
	switch (mig_settle_follow(j, d, deadline, &stop, &st, &done)) {
	case 1:
		mig_result(j, done.ms_have ? &done : &st, started, false);
		if (rc != 0)
			log_warn("migrate", "VM %s: libvirt reported a failure "
			    "(%s) but the VM is on %s", cmd->cmd_vm_id,
			    lverr.message, mg->mg_dest_node);
		break;
	case 0:
		mig_failed(j, stop, rc != 0 ? &lverr : NULL);
		break;
	default:
		break;
	}
out:
	if (r != NULL)
		mig_run_unref(r);
	if (d != NULL)
		virDomainFree(d);
	free(xml);
	free(dest);
	free(pxml);
	free(pdest);
}

/*
 * carved died (or lost libvirt) during vm.migrate: follow a job that still
 * runs, then settle from what libvirt shows.
 */
void
migrate_recover(struct handler_job *j)
{
	const struct command *cmd = j->hj_cmd;
	const struct command_migrate_args *mg = &cmd->cmd_args.migrate;
	struct mig_stats st = { 0 }, done = { 0 };
	enum mig_stop stop = MIG_GOING;
	int64_t started = time_mono_ms(), deadline;
	int rc;

	/* The timeout runs from acceptance, as if carved had not died. */
	deadline = started + (j->hj_accepted_at_ms +
	    (int64_t)mg->mg_timeout_s * 1000 - time_now_ms());
	log_kv(LOG_LVL_INFO, "migrate", "settling a migration from what "
	    "libvirt shows", "vm_id", cmd->cmd_vm_id, (char *)NULL);
	rc = mig_settle_follow(j, NULL, deadline, &stop, &st, &done);
	if (rc == 1)
		mig_result(j, done.ms_have ? &done : &st, started, true);
	else if (rc == 0)
		mig_failed(j, stop, NULL);
}
