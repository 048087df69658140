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
 * What a snapshot holds (see agent/virt_snap.h for how each is taken):
 * "full" = disk and memory state, a revert resumes the guest where it was;
 * "disk" = disk only, crash-consistent, a revert boots the guest afresh.
 */
enum vm_snapshot_kind {
	VM_SNAPSHOT_FULL = 0,
	VM_SNAPSHOT_DISK,
	VM_SNAPSHOT_KIND_MAX
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

/*
 * {"id","name","state","vcpus","memory_mib","disk_gib","command_id",
 *  "created_at","snapshots"?:[{"name","kind","created_at"}...]}
 * "snapshots" is optional (older agents do not send it): absent decodes as
 * vm_snapshots_known false. At most VM_SNAPSHOTS_MAX, names unique.
 */
json_object *vm_info_encode(const struct vm_info *vm);
int vm_info_decode(json_object *obj, struct vm_info *out, struct carve_error *err);

#endif
