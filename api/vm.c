/* VM state reports: see vm.h. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>

#include "api/command.h"
#include "api/vm.h"
#include "common/jsonx.h"

static const char *const vm_state_names[VM_STATE_MAX] = {
	[VM_STATE_UNKNOWN] = "unknown",
	[VM_STATE_RUNNING] = "running",
	[VM_STATE_BLOCKED] = "blocked",
	[VM_STATE_PAUSED] = "paused",
	[VM_STATE_SHUTTING_DOWN] = "shutting_down",
	[VM_STATE_SHUTOFF] = "shutoff",
	[VM_STATE_CRASHED] = "crashed",
	[VM_STATE_SUSPENDED] = "suspended",
};

/* Indexed by virDomainState; anything newer libvirt adds is "unknown". */
static const enum vm_state vm_state_libvirt[] = {
	[VIR_DOMAIN_NOSTATE] = VM_STATE_UNKNOWN,
	[VIR_DOMAIN_RUNNING] = VM_STATE_RUNNING,
	[VIR_DOMAIN_BLOCKED] = VM_STATE_BLOCKED,
	[VIR_DOMAIN_PAUSED] = VM_STATE_PAUSED,
	[VIR_DOMAIN_SHUTDOWN] = VM_STATE_SHUTTING_DOWN,
	[VIR_DOMAIN_SHUTOFF] = VM_STATE_SHUTOFF,
	[VIR_DOMAIN_CRASHED] = VM_STATE_CRASHED,
	[VIR_DOMAIN_PMSUSPENDED] = VM_STATE_SUSPENDED,
};

const char *
vm_state_name(enum vm_state st)
{
	if ((int)st < 0 || st >= VM_STATE_MAX)
		return vm_state_names[VM_STATE_UNKNOWN];
	return vm_state_names[st];
}

int
vm_state_parse(const char *name, enum vm_state *out)
{
	for (int i = 0; i < VM_STATE_MAX; i++)
		if (strcmp(vm_state_names[i], name) == 0) {
			*out = (enum vm_state)i;
			return 0;
		}
	return -1;
}

enum vm_state
vm_state_from_libvirt(int virstate)
{
	if (virstate < 0 || (size_t)virstate >=
	    sizeof(vm_state_libvirt) / sizeof(vm_state_libvirt[0]))
		return VM_STATE_UNKNOWN;
	return vm_state_libvirt[virstate];
}

static const char *const vm_snapshot_kind_names[VM_SNAPSHOT_KIND_MAX] = {
	[VM_SNAPSHOT_FULL] = "full",
	[VM_SNAPSHOT_DISK] = "disk",
};

const char *
vm_snapshot_kind_name(enum vm_snapshot_kind k)
{
	if ((int)k < 0 || k >= VM_SNAPSHOT_KIND_MAX)
		return "unknown";
	return vm_snapshot_kind_names[k];
}

int
vm_snapshot_kind_parse(const char *name, enum vm_snapshot_kind *out)
{
	for (int i = 0; i < VM_SNAPSHOT_KIND_MAX; i++)
		if (strcmp(vm_snapshot_kind_names[i], name) == 0) {
			*out = (enum vm_snapshot_kind)i;
			return 0;
		}
	return -1;
}

const struct vm_snapshot *
vm_snapshot_find(const struct vm_info *vm, const char *name)
{
	for (unsigned i = 0; i < vm->vm_nsnapshots && i < VM_SNAPSHOTS_MAX; i++)
		if (strcmp(vm->vm_snapshots[i].snap_name, name) == 0)
			return &vm->vm_snapshots[i];
	return NULL;
}

static json_object *
vm_new_object(void)
{
	json_object *o = json_object_new_object();

	if (o == NULL) {
		fprintf(stderr, "level=fatal comp=vm msg=\"out of memory\"\n");
		abort();
	}
	return o;
}

json_object *
vm_snapshot_encode(const struct vm_snapshot *s)
{
	json_object *o = vm_new_object();

	jsonx_add_string(o, "name", s->snap_name);
	jsonx_add_string(o, "kind", vm_snapshot_kind_name(s->snap_kind));
	jsonx_add_int(o, "created_at", s->snap_created_at_ms);
	return o;
}

static const char *const vm_snapshot_keys[] = {
	"name", "kind", "created_at", NULL
};

int
vm_snapshot_decode(json_object *obj, struct vm_snapshot *out,
    struct carve_error *err)
{
	struct vm_snapshot s;
	const char *name, *kind;
	int64_t v;

	memset(&s, 0, sizeof(s));
	if (jsonx_check_object(obj, "snapshot", vm_snapshot_keys, err) == -1 ||
	    jsonx_get_string(obj, "name", true, IDS_NAME_MAX, &name,
	    err) == -1 ||
	    ids_name_check(name, "snapshot name", err) == -1 ||
	    jsonx_get_string(obj, "kind", true, 16, &kind, err) == -1)
		return -1;
	if (vm_snapshot_kind_parse(kind, &s.snap_kind) == -1)
		return error_set(err, CARVE_EINVAL,
		    "snapshot kind must be \"full\" or \"disk\"");
	if (jsonx_get_int(obj, "created_at", true, 0, INT64_MAX, &v, err) == -1)
		return -1;
	snprintf(s.snap_name, sizeof(s.snap_name), "%s", name);
	s.snap_created_at_ms = v;
	*out = s;
	return 0;
}

/* The optional "snapshots" array of a report into vm. */
static int
vm_snapshots_decode(json_object *obj, struct vm_info *vm,
    struct carve_error *err)
{
	json_object *arr;
	size_t n;

	if (!json_object_object_get_ex(obj, "snapshots", &arr) || arr == NULL)
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return error_set(err, CARVE_EINVAL,
		    "snapshots must be an array");
	n = json_object_array_length(arr);
	if (n > VM_SNAPSHOTS_MAX)
		return error_set(err, CARVE_EINVAL, "snapshots has %zu "
		    "entries; a VM has at most %d", n, VM_SNAPSHOTS_MAX);
	for (size_t i = 0; i < n; i++) {
		struct vm_snapshot *s = &vm->vm_snapshots[i];

		if (vm_snapshot_decode(json_object_array_get_idx(arr, i), s,
		    err) == -1)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(vm->vm_snapshots[j].snap_name,
			    s->snap_name) == 0)
				return error_set(err, CARVE_EINVAL,
				    "snapshot \"%s\" is listed twice",
				    s->snap_name);
	}
	vm->vm_nsnapshots = (unsigned)n;
	vm->vm_snapshots_known = true;
	return 0;
}

json_object *
vm_info_encode(const struct vm_info *vm)
{
	json_object *o = vm_new_object();

	jsonx_add_string(o, "id", vm->vm_id);
	jsonx_add_string(o, "name", vm->vm_name);
	jsonx_add_string(o, "state", vm_state_name(vm->vm_state));
	jsonx_add_int(o, "vcpus", vm->vm_vcpus);
	jsonx_add_int(o, "memory_mib", (int64_t)vm->vm_memory_mib);
	jsonx_add_int(o, "disk_gib", (int64_t)vm->vm_disk_gib);
	/* A domain whose metadata lost it is still reported, without it. */
	if (vm->vm_command_id[0] != '\0')
		jsonx_add_string(o, "command_id", vm->vm_command_id);
	jsonx_add_int(o, "created_at", vm->vm_created_at_ms);
	if (vm->vm_image_url[0] != '\0') {
		struct vm_image img = {
			.vi_url = (char *)vm->vm_image_url,
			.vi_format = vm->vm_image_format,
		};

		memcpy(img.vi_sha256, vm->vm_image_sha256,
		    sizeof(img.vi_sha256));
		json_object_object_add(o, "image", vm_image_encode(&img));
	}
	if (vm->vm_ndata_disks > 0)
		json_object_object_add(o, "data_disks",
		    vm_data_disks_encode(vm->vm_data_disks, vm->vm_ndata_disks));
	if (vm->vm_snapshots_known) {
		json_object *arr = json_object_new_array();

		if (arr == NULL) {
			fprintf(stderr,
			    "level=fatal comp=vm msg=\"out of memory\"\n");
			abort();
		}
		for (unsigned i = 0; i < vm->vm_nsnapshots &&
		    i < VM_SNAPSHOTS_MAX; i++)
			json_object_array_add(arr,
			    vm_snapshot_encode(&vm->vm_snapshots[i]));
		json_object_object_add(o, "snapshots", arr);
	}
	return o;
}

uint64_t
vm_info_disk_gib_total(const struct vm_info *vm)
{
	uint64_t sum = vm->vm_disk_gib;

	for (unsigned i = 0; i < vm->vm_ndata_disks && i < VM_DATA_DISKS_MAX;
	    i++)
		sum += vm->vm_data_disks[i].dd_size_gib;
	return sum;
}

static const char *const vm_info_keys[] = {
	"id", "name", "state", "vcpus", "memory_mib", "disk_gib",
	"command_id", "created_at", "image", "data_disks", "snapshots", NULL
};

int
vm_info_decode(json_object *obj, struct vm_info *out, struct carve_error *err)
{
	struct vm_info vm;
	struct vm_image img;
	const char *name, *state;
	size_t ndisks;
	int64_t v;
	int rc;

	memset(&vm, 0, sizeof(vm));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "vm", vm_info_keys, err) == -1 ||
	    jsonx_get_uuid(obj, "id", true, vm.vm_id, err) == -1 ||
	    jsonx_get_string(obj, "name", true, IDS_NAME_MAX, &name, err) == -1 ||
	    ids_name_check(name, "name", err) == -1 ||
	    jsonx_get_string(obj, "state", true, 32, &state, err) == -1)
		return -1;
	snprintf(vm.vm_name, sizeof(vm.vm_name), "%s", name);
	if (vm_state_parse(state, &vm.vm_state) == -1)
		return error_set(err, CARVE_EINVAL,
		    "state must be one of unknown, running, blocked, paused, "
		    "shutting_down, shutoff, crashed, suspended");
	/*
	 * A report states a fact, so only upper bounds apply: 0 stands for
	 * "not known" where libvirt could not tell.
	 */
	if (jsonx_get_int(obj, "vcpus", true, 0, VM_VCPUS_MAX, &v, err) == -1)
		return -1;
	vm.vm_vcpus = (unsigned)v;
	if (jsonx_get_int(obj, "memory_mib", true, 0,
	    (int64_t)VM_MEMORY_MIB_MAX, &v, err) == -1)
		return -1;
	vm.vm_memory_mib = (uint64_t)v;
	if (jsonx_get_int(obj, "disk_gib", true, 0, (int64_t)VM_DISK_GIB_MAX,
	    &v, err) == -1)
		return -1;
	vm.vm_disk_gib = (uint64_t)v;
	if (jsonx_get_uuid(obj, "command_id", false, vm.vm_command_id,
	    err) == -1)
		return -1;
	if (jsonx_get_int(obj, "created_at", true, 0, INT64_MAX, &v, err) == -1)
		return -1;
	vm.vm_created_at_ms = v;
	/* Both optional: agents before data disks and rebuild sent neither. */
	if ((rc = vm_image_get(obj, &img, err)) == -1)
		return -1;
	if (rc == 1) {
		snprintf(vm.vm_image_url, sizeof(vm.vm_image_url), "%s",
		    img.vi_url);
		memcpy(vm.vm_image_sha256, img.vi_sha256,
		    sizeof(vm.vm_image_sha256));
		vm.vm_image_format = img.vi_format;
		vm_image_clear(&img);
	}
	if (vm_data_disks_get(obj, vm.vm_data_disks, &ndisks, err) == -1)
		return -1;
	vm.vm_ndata_disks = (unsigned)ndisks;
	if (vm_snapshots_decode(obj, &vm, err) == -1)
		return -1;
	*out = vm;
	return 0;
}
