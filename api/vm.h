/*
 * What the agent reports about a VM it manages: identity, size, state. The
 * same record is read from libvirt (domain + carve metadata), kept in the
 * agent's view, shown by carvectl and sent to the control plane.
 */
#ifndef CARVE_API_VM_H
#define CARVE_API_VM_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "api/command.h"
#include "common/error.h"
#include "common/ids.h"

enum vm_state {
	VM_STATE_UNKNOWN = 0,
	VM_STATE_RUNNING,
	VM_STATE_BLOCKED,
	VM_STATE_PAUSED,
	VM_STATE_SHUTTING_DOWN,
	VM_STATE_SHUTOFF,
	VM_STATE_CRASHED,
	VM_STATE_SUSPENDED,
	VM_STATE_MAX
};


/*
 * The most snapshots a VM may have: each full one holds a copy of the VM's
 * memory, and qcow2 internal snapshots slow the image down as they pile up.
 */
#define VM_SNAPSHOTS_MAX 16

struct vm_snapshot {
	char snap_name[IDS_NAME_MAX + 1];
	enum vm_snapshot_kind snap_kind;
	int64_t snap_created_at_ms;
};

struct vm_info {
	char vm_id[IDS_UUID_LEN + 1];
	char vm_name[IDS_NAME_MAX + 1];
	unsigned vm_vcpus;
	uint64_t vm_memory_mib;
	uint64_t vm_disk_gib;
	char vm_command_id[IDS_UUID_LEN + 1];  /* the command that created it */
	enum vm_state vm_state;
	int64_t vm_created_at_ms;
	/*
	 * The root disk's base image: what a vm.rebuild without an image
	 * reuses. vm_image_url is "" when the VM has none (then the other two
	 * are zero). Fixed-size, so a vm_info stays a plain value to copy.
	 */
	char vm_image_url[VM_IMAGE_URL_MAX + 1];
	char vm_image_sha256[65];
	enum vm_image_format vm_image_format;
	/* Its data disks (vdb, vdc, ...), which count in DISK_GIB too. */
	struct vm_data_disk vm_data_disks[VM_DATA_DISKS_MAX];
	unsigned vm_ndata_disks;
	/*
	 * The VM's snapshots, oldest first. A record read without them (most
	 * operations do not look) has vm_snapshots_known false: it says
	 * nothing about them, and is encoded without the key.
	 */
	bool vm_snapshots_known;
	unsigned vm_nsnapshots;
	struct vm_snapshot vm_snapshots[VM_SNAPSHOTS_MAX];
};

/* "full", "disk"; never NULL. */
const char *vm_snapshot_kind_name(enum vm_snapshot_kind k);
int vm_snapshot_kind_parse(const char *name, enum vm_snapshot_kind *out);
/* The snapshot of vm named name, or NULL. */
const struct vm_snapshot *vm_snapshot_find(const struct vm_info *vm,
    const char *name);
/* {"name","kind","created_at"} */
json_object *vm_snapshot_encode(const struct vm_snapshot *s);
int vm_snapshot_decode(json_object *obj, struct vm_snapshot *out,
    struct carve_error *err);

/* "running", "paused", "shutoff", ... ; never NULL. */
const char *vm_state_name(enum vm_state st);
int vm_state_parse(const char *name, enum vm_state *out);
/* Maps a virDomainState value to ours. */
enum vm_state vm_state_from_libvirt(int virstate);

/* The DISK_GIB the VM takes: its root disk and its data disks. */
uint64_t vm_info_disk_gib_total(const struct vm_info *vm);

/*
 * {"id","name","state","vcpus","memory_mib","disk_gib","command_id"?,
 *  "created_at","image"?:{"url","sha256","format"},
 *  "data_disks"?:[{"size_gib"}],
 *  "snapshots"?:[{"name","kind","created_at"}...]}   (disk_gib: the root disk)
 * "snapshots" is optional (older agents do not send it): absent decodes as
 * vm_snapshots_known false. At most VM_SNAPSHOTS_MAX, names unique.
 */
json_object *vm_info_encode(const struct vm_info *vm);
int vm_info_decode(json_object *obj, struct vm_info *out, struct carve_error *err);

#endif
