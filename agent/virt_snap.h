/*
 * VM snapshots through libvirt: the effects of vm.snapshot.create, .revert
 * and .delete, and the snapshot list of a VM's report. Worker threads only
 * (blocking libvirt calls), like virt_ops.
 *
 * The scheme (libvirt 9.0, QEMU 7.2). libvirt 9.0 cannot revert to an
 * external snapshot ("revert to external snapshot not supported yet",
 * lifted in 9.9), and an external snapshot on a disk that has internal ones
 * breaks their reverts. So every carve snapshot, of either kind, is an
 * internal qcow2 snapshot taken by virDomainSnapshotCreateXML without
 * DISK_ONLY: libvirt can revert each one, always. That needs qcow2 disks
 * (a VM made from an image has them; one that boots a kernel without a
 * disk has nothing to snapshot), except on the test driver, whose snapshots
 * are metadata only.
 *
 * The kinds. libvirt's qemu driver refuses an internal snapshot of a running
 * domain without its memory ("internal snapshot of a running VM must
 * include the memory state"): QEMU's savevm writes the VM state into the
 * qcow2 next to the disks' snapshot, pausing the guest meanwhile (0.2 s for
 * a 128 MiB guest here). So both kinds are taken the same way, and differ in
 * what a revert does:
 *   full  the VM as it was: disk, memory and run state. A guest that was
 *         running resumes where it was (its uptime goes on from there); a
 *         snapshot of a shut-off VM leaves it shut off.
 *   disk  the disk only, crash-consistent, as if the power had been cut at
 *         that moment: libvirt reverts with REVERT_PAUSED (the saved memory
 *         never runs), carve powers the domain off and boots it afresh if
 *         it was running before the revert; a shut-off VM stays off. The VM
 *         state a disk snapshot of a running VM carries is never used (it
 *         only costs its space, see virt_snap_estimate_gib).
 * Either kind of a shut-off VM is a plain disk snapshot (qemu-img snapshot).
 * quiesce (disk only): libvirt ties QUIESCE to DISK_ONLY, i.e. to external
 * snapshots, so carve freezes the guest's file systems itself through the
 * guest agent (virDomainFSFreeze), takes the snapshot and thaws them
 * (always; again in recovery). A VM without a guest agent channel cannot be
 * quiesced (invalid_argument).
 *
 * carve's record. A snapshot's kind, the command that made it and its
 * creation time are written into the snapshot's own <description>
 * ("carve:1 kind=disk command_id=<uuid> created_at=<ms>"), so they exist
 * exactly when the snapshot does. Reading every snapshot's XML (about 6 KiB
 * each, the whole domain inside) at every view refresh would cost an RPC
 * per snapshot, so a copy of the records lives in the domain's metadata in
 * a namespace of its own (VIRT_SNAP_NS), written by the snapshot commands
 * only. Listing reconciles it with libvirt's list of names: a name the copy
 * lacks is read from its description (made before a crash, or outside
 * carve: then reported with a kind from its state and no command), a name
 * only the copy has is dropped. A revert restores the domain definition
 * saved with the snapshot, and with it an older copy: the revert writes the
 * copy again.
 *
 * Idempotency, by command id (recovery runs the same code):
 *   create  a snapshot of that name made by this command: success, nothing
 *           done; made by anything else: conflict.
 *   delete  absent: not_found, but success when recovering (the interrupted
 *           run may have deleted it).
 *   revert  before reverting, a marker {command, was_running, "before"} is
 *           written into the copy; the revert replaces the definition and so
 *           the marker, which is written again right after ("after"), and
 *           "done" at the end. Recovery: "before" of this command: it never
 *           happened, redo it; "after": finish it (a disk snapshot's power
 *           cycle); "done": report; no marker of this command: finished if
 *           the domain is in a "from snapshot" state with this snapshot
 *           current (a disk revert caught between libvirt's revert and the
 *           marker boots the VM), else redo.
 *
 * Errors: CARVE_EINVAL (no qcow2 disk, no guest agent), CARVE_ENOTFOUND (VM
 * or snapshot), CARVE_ECONFLICT (name taken, too many snapshots),
 * CARVE_EHYPERVISOR with libvirt's message, CARVE_EUNAVAIL when the
 * connection died (the engine retries through recovery).
 */
#ifndef CARVE_VIRT_SNAP_H
#define CARVE_VIRT_SNAP_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>

#include "api/command.h"
#include "api/vm.h"
#include "common/error.h"

/* Namespace of the domain metadata element holding the copy. */
#define VIRT_SNAP_NS     "https://carve.dev/xmlns/snapshots/1"
#define VIRT_SNAP_PREFIX "carvesnap"

/*
 * DISK_GIB a snapshot of a VM of memory_mib counts for: its memory rounded
 * up to GiB, the VM state QEMU stores with a snapshot of a running VM (of
 * either kind, see above). The disk blocks a snapshot pins as the guest
 * overwrites them are not known when it is taken and are not counted (at
 * worst the disk's size per snapshot).
 */
uint64_t virt_snap_estimate_gib(uint64_t memory_mib);

/* carve's record of one snapshot. */
struct virt_snap_rec {
	struct vm_snapshot sr_snap;
	char sr_command_id[IDS_UUID_LEN + 1];   /* "" when not carve's */
};

/* The description carve writes ("carve:1 kind=... command_id=... ..."). */
char *virt_snap_description(const struct virt_snap_rec *rec);
/* 0 and *rec filled (but its name) when text is one; -1 when not. */
int virt_snap_parse_description(const char *text, struct virt_snap_rec *rec);

/* <domainsnapshot> to create rec's snapshot with; a new string. */
char *virt_snap_create_xml(const struct virt_snap_rec *rec,
    struct carve_error *err);

/* What carve reads from a snapshot's XML (virDomainSnapshotGetXMLDesc). */
struct virt_snap_info {
	struct virt_snap_rec si_rec;   /* from the description, else derived */
	bool si_carve;                 /* the description is carve's */
	bool si_memory;                /* holds the VM state (memory) */
	bool si_external;              /* some disk snapshot is external */
	char si_state[16];             /* "running", "shutoff", ... */
};

/*
 * Parse a snapshot's XML. A snapshot without carve's description gets kind
 * full when it holds memory, else disk, and created_at from libvirt's
 * creationTime. CARVE_EINVAL on anything malformed, or a name carve could
 * not have given (ids_name_check).
 */
int virt_snap_parse_xml(const char *xml, struct virt_snap_info *out,
    struct carve_error *err);

enum virt_snap_phase {
	VIRT_SNAP_PHASE_NONE = 0,
	VIRT_SNAP_PHASE_BEFORE,
	VIRT_SNAP_PHASE_AFTER,
	VIRT_SNAP_PHASE_DONE,
};

/* The copy in the domain's metadata (see above). */
struct virt_snap_cache {
	unsigned sc_n;
	struct virt_snap_rec sc_recs[VM_SNAPSHOTS_MAX];
	enum virt_snap_phase sc_phase;          /* a revert under way */
	char sc_revert_cmd[IDS_UUID_LEN + 1];
	bool sc_was_running;
};

/*
 * The metadata element (<snapshots><snapshot name kind created_at
 * command_id/>... <revert command_id was_running phase/>?</snapshots>), and
 * back. Parsing is strict (CARVE_EINVAL): a copy that does not read is
 * ignored, every snapshot's XML read instead.
 */
char *virt_snap_cache_xml(const struct virt_snap_cache *c,
    struct carve_error *err);
int virt_snap_parse_cache(const char *xml, struct virt_snap_cache *out,
    struct carve_error *err);

/* What a snapshot needs of the domain, from its XML. */
struct virt_snap_dom {
	bool sd_test;            /* <domain type='test'>: metadata only */
	unsigned sd_disks;       /* writable disks (no cdrom, not read-only) */
	char sd_bad_disk[32];    /* target of the first one not qcow2, or "" */
	char sd_bad_format[16];  /* its format, "undeclared" when none */
	bool sd_agent;           /* an org.qemu.guest_agent.0 channel */
};

int virt_snap_parse_domain(const char *xml, struct virt_snap_dom *out,
    struct carve_error *err);

/*
 * The snapshots of d into vm (oldest first, at most VM_SNAPSHOTS_MAX;
 * vm_snapshots_known set). Reads, never writes: the copy is only written
 * by the commands, which run one at a time per VM.
 */
int virt_snap_read(virConnectPtr c, virDomainPtr d, struct vm_info *vm,
    struct carve_error *err);

/*
 * The three effects. Each fills *out with the VM (state and snapshots) and
 * *data with the result object on success. recovering: the command was
 * interrupted (see above). now_ms becomes a new snapshot's created_at.
 */
int virt_snap_create(virConnectPtr c, const char *vm_id,
    const char *command_id, const struct command_snapshot_args *a,
    int64_t now_ms, bool recovering, struct vm_info *out, json_object **data,
    struct carve_error *err);
int virt_snap_revert(virConnectPtr c, const char *vm_id,
    const char *command_id, const char *name, bool recovering,
    struct vm_info *out, json_object **data, struct carve_error *err);
int virt_snap_delete(virConnectPtr c, const char *vm_id,
    const char *command_id, const char *name, bool recovering,
    struct vm_info *out, json_object **data, struct carve_error *err);

#endif
