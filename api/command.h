/*
 * The command model of the agent <-> control plane contract: command types,
 * their typed arguments, the VM spec, VM state reports and command results,
 * with strict decoders and encoders shared by carved, carvectl and carve-cp.
 * api/openapi.yaml is the normative description of the wire form.
 *
 * Wire form of a command:
 *   {"id":"<uuid>","type":"vm.create","vm_id":"<uuid>","args":{...}}
 * args per type:
 *   vm.create  {"name","vcpus","memory_mib","disk_gib"?,"kernel"?,"initrd"?,"cmdline"?,
 *               "image"?:{"url","sha256","format"},"ssh_authorized_keys"?:[..],
 *               "user_data"?,"networks"?:[{"network"|"bridge":NAME,"mac"?:MAC}],
 *               "data_disks"?:[{"size_gib"},..]}
 *   vm.rebuild {"image"?:{"url","sha256","format"}}   (default: the VM's own)
 *   vm.start   {}            vm.reboot {}            vm.destroy {}
 *   vm.stop    {"force"?: bool, "timeout_s"?: 1..3600 (default 60)}
 *   vm.resize  {"vcpus"?: 1..VM_VCPUS_MAX, "memory_mib"?: 64..} (at least one)
 *   vm.migrate.prepare (destination)
 *              {"spec": <vm.create args>, "source_node": NAME}
 *   vm.migrate (source)
 *              {"dest_node": NAME, "dest_libvirt_uri": URI,
 *               "dest_migrate_uri"?: "tcp://HOST[:PORT]",
 *               "disks": {TARGET: PATH, ...}, "console_log"?: PATH,
 *               "max_downtime_ms"?: 1..60000, "bandwidth_mibps"?: 0..1000000
 *               (0 = unlimited), "timeout_s"?: 10..86400 (default 600)}
 *   vm.migrate.cancel {}     vm.migrate.finish {}
 *   vm.snapshot.create {"name","kind":"full"|"disk","quiesce"?: bool}
 *   vm.snapshot.revert {"name"}         vm.snapshot.delete {"name"}
 * ("args" may be omitted where no field is required.)
 */
#ifndef CARVE_API_COMMAND_H
#define CARVE_API_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/error.h"
#include "common/ids.h"

#define VM_VCPUS_MAX        1024
#define VM_MEMORY_MIB_MIN   64
#define VM_MEMORY_MIB_MAX   (16ULL * 1024 * 1024)   /* 16 TiB */
#define VM_DISK_GIB_MAX     (64ULL * 1024)          /* 64 TiB */
#define VM_FILENAME_MAX     255
#define VM_CMDLINE_MAX      1024
#define VM_STOP_TIMEOUT_DEFAULT 60
#define VM_STOP_TIMEOUT_MAX 3600
#define VM_IMAGE_URL_MAX    2048
#define VM_SSH_KEYS_MAX     32
#define VM_SSH_KEY_MAX      (8 * 1024)
#define VM_USER_DATA_MAX    (64 * 1024)
#define VM_NICS_MAX         8
#define VM_BRIDGE_NAME_MAX  15      /* IFNAMSIZ - 1 */
#define VM_MAC_LEN          17      /* "xx:xx:xx:xx:xx:xx" */
#define VM_DATA_DISKS_MAX   8
/* The most DISK_GIB one VM can take: its root and every data disk. */
#define VM_DISK_GIB_TOTAL_MAX (VM_DISK_GIB_MAX * (1 + VM_DATA_DISKS_MAX))
/*
 * Room for the largest valid vm.create: 32 keys of 8 KiB plus 64 KiB of
 * user data whose every byte is escaped (2 bytes in JSON), with margin; still
 * below the 1 MiB request bodies carve-cp and the control socket take.
 */
#define COMMAND_MAX_BYTES   (512 * 1024)

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

enum command_type {
	CMD_VM_CREATE = 0,
	CMD_VM_START,
	CMD_VM_STOP,
	CMD_VM_REBOOT,
	CMD_VM_DESTROY,
	CMD_VM_RESIZE,
	CMD_VM_MIGRATE_PREPARE,
	CMD_VM_MIGRATE,
	CMD_VM_MIGRATE_CANCEL,
	CMD_VM_MIGRATE_FINISH,
	CMD_VM_REBUILD,
	CMD_VM_SNAPSHOT_CREATE,
	CMD_VM_SNAPSHOT_REVERT,
	CMD_VM_SNAPSHOT_DELETE,
	CMD_TYPE_MAX
};

enum vm_image_format {
	VM_IMAGE_NONE = 0,
	VM_IMAGE_QCOW2,
	VM_IMAGE_RAW,
};

/*
 * The base image of the root disk. vi_url is NULL when the VM has no image
 * (then the rest is zero). Decoded strictly: the URL is https://, http:// or
 * file:///absolute/path (printable ASCII, no "." or ".." segments in a file
 * path); the sha256 is 64 hex digits, kept lower-case (the cache file name
 * is derived from it); the format is pinned, never probed.
 */
struct vm_image {
	char *vi_url;
	char vi_sha256[65];
	enum vm_image_format vi_format;
};

/* An extra disk: an empty qcow2 volume that survives vm.rebuild. */
struct vm_data_disk {
	uint64_t dd_size_gib;   /* 1..VM_DISK_GIB_MAX */
};

enum vm_nic_kind {
	VM_NIC_NETWORK = 0,     /* a libvirt network */
	VM_NIC_BRIDGE,          /* a host bridge */
};

/*
 * A network interface: attached to the libvirt network or host bridge
 * vn_name (1..64 bytes of [A-Za-z0-9._-] starting with a letter or digit; a
 * bridge at most VM_BRIDGE_NAME_MAX bytes), with the MAC vn_mac (lower-case,
 * unicast, not all zero), or "" when none was given and carve derives one
 * (vm_mac_derive). Whether the host allows the name is the agent's check.
 */
struct vm_nic {
	enum vm_nic_kind vn_kind;
	char vn_name[IDS_NAME_MAX + 1];
	char vn_mac[VM_MAC_LEN + 1];
};

/* What a VM is made of. Strings are owned by the spec (vm_spec_clear). */
struct vm_spec {
	char vs_name[IDS_NAME_MAX + 1];
	unsigned vs_vcpus;
	uint64_t vs_memory_mib;
	uint64_t vs_disk_gib;
	char *vs_kernel;   /* file name inside [libvirt] kernel_dir, or NULL */
	char *vs_initrd;   /* file name inside kernel_dir, or NULL (needs kernel) */
	char *vs_cmdline;  /* kernel command line, or NULL (needs kernel) */
	struct vm_image vs_image;
	/*
	 * cloud-init data (both need an image): up to VM_SSH_KEYS_MAX one-line
	 * public keys of printable ASCII without quotes or backslashes, and
	 * cloud-config text (valid UTF-8, no control characters but tab, LF
	 * and CR, at most VM_USER_DATA_MAX bytes), or NULL.
	 */
	char **vs_ssh_keys;
	size_t vs_nssh_keys;
	char *vs_user_data;
	/* NICs in guest order (no MAC appears twice); none: no NIC at all. */
	struct vm_nic vs_nics[VM_NICS_MAX];
	size_t vs_nnics;
	/* Attached as vdb, vdc, ... in this order. */
	struct vm_data_disk vs_data_disks[VM_DATA_DISKS_MAX];
	size_t vs_ndata_disks;
};

/*
 * The DISK_GIB a VM of this spec takes: its root disk (disk_gib) and its
 * data disks.
 */
uint64_t vm_spec_disk_gib_total(const struct vm_spec *spec);

const char *vm_image_format_name(enum vm_image_format f);
int vm_image_format_parse(const char *name, enum vm_image_format *out);
/*
 * Check an image given as its three members (as in the "image" object; also
 * what carve's domain metadata records) with the decoder's rules; on
 * success out->vi_url is a new string (vm_image_clear).
 */
int vm_image_parse(const char *url, const char *sha256, const char *format,
    struct vm_image *out, struct carve_error *err);
void vm_image_clear(struct vm_image *img);
void vm_image_copy(struct vm_image *dst, const struct vm_image *src);
/*
 * The "image" member of obj: 1 and *out filled (vm_image_clear) when
 * present, 0 when absent or null, -1 with err (CARVE_EINVAL) when bad.
 */
int vm_image_get(json_object *obj, struct vm_image *out,
    struct carve_error *err);
/* {"url","sha256","format"} */
json_object *vm_image_encode(const struct vm_image *img);
/*
 * The "data_disks" member of obj, [{"size_gib": 1..VM_DISK_GIB_MAX}] with
 * at most VM_DATA_DISKS_MAX entries, into out[] and *n (0 when absent).
 */
int vm_data_disks_get(json_object *obj, struct vm_data_disk *out, size_t *n,
    struct carve_error *err);
json_object *vm_data_disks_encode(const struct vm_data_disk *disks, size_t n);

/* "network" or "bridge": the key an entry of "networks" names it by. */
const char *vm_nic_kind_name(enum vm_nic_kind kind);
/*
 * Check a MAC address ("xx:xx:xx:xx:xx:xx", hex digits of either case):
 * unicast (bit 0 of the first octet clear) and not all zero. On success it
 * is written lower-case to out; on failure err (CARVE_EINVAL) names what.
 */
int vm_mac_parse(const char *s, const char *what, char out[VM_MAC_LEN + 1],
    struct carve_error *err);
/*
 * The MAC carve gives NIC index (0-based) of VM vm_id when the spec names
 * none: 52:54:00 (QEMU's prefix, unicast and locally administered) followed
 * by the first 3 bytes of SHA-256("<vm_id>/<index>"), vm_id lower-case and
 * index in decimal. The same VM always gets the same MACs.
 */
void vm_mac_derive(const char *vm_id, size_t index, char out[VM_MAC_LEN + 1]);
/* Fill every NIC of spec that has no MAC with its derived one. */
void vm_spec_derive_macs(struct vm_spec *spec, const char *vm_id);
/*
 * [{"network"|"bridge": NAME, "mac"?: MAC}, ...] for n NICs (a new array;
 * "mac" only where one is set): the spec's "networks" and, once the MACs
 * are filled in, a create result's "interfaces".
 */
json_object *vm_nics_encode(const struct vm_nic *nics, size_t n);

struct command_stop_args {
	bool force;
	unsigned timeout_s;
};

/* The new size; 0 leaves that dimension as it is (at least one is set). */
struct command_resize_args {
	unsigned vcpus;
	uint64_t memory_mib;
};

/* Live migration (see api/openapi.yaml and agent/migrate.h). */
#define VM_MIGRATE_URI_MAX          1024
#define VM_MIGRATE_PATH_MAX         4096
#define VM_MIGRATE_DISKS_MAX        16
#define VM_DISK_TARGET_MAX          8       /* "vdaa" and the like */
#define VM_MIGRATE_DOWNTIME_MAX_MS  60000
#define VM_MIGRATE_BANDWIDTH_MAX    1000000 /* MiB/s */
#define VM_MIGRATE_TIMEOUT_MIN_S    10
#define VM_MIGRATE_TIMEOUT_MAX_S    86400
#define VM_MIGRATE_TIMEOUT_DEFAULT_S 600

/* One disk of a VM on the destination: its target ("vda") and path. */
struct vm_disk_path {
	char dp_target[VM_DISK_TARGET_MAX + 1];
	char *dp_path;                      /* owned, absolute */
};

struct command_migrate_prepare_args {
	struct vm_spec mp_spec;             /* the VM as created */
	char mp_source_node[IDS_NAME_MAX + 1];
};

/*
 * URIs and paths are decoded strictly: dest_libvirt_uri is a qemu URI
 * (qemu, qemu+tls, qemu+tcp, qemu+ssh, qemu+libssh, qemu+libssh2 or
 * qemu+unix) whose query, if any, only sets socket, pkipath, keyfile,
 * known_hosts, sshauth or no_tty (never a command to run or a disabled
 * certificate check); dest_migrate_uri is tcp://HOST[:PORT]; disk targets
 * are vd, sd, hd or xvd and one or two letters; paths are absolute, printable
 * ASCII without "." or ".." segments. Disks are kept sorted by target.
 */
struct command_migrate_args {
	char mg_dest_node[IDS_NAME_MAX + 1];
	char *mg_dest_libvirt_uri;          /* owned */
	char *mg_dest_migrate_uri;          /* owned, or NULL */
	struct vm_disk_path *mg_disks;      /* owned array, or NULL */
	size_t mg_ndisks;
	char *mg_console_log;               /* owned, or NULL */
	unsigned mg_max_downtime_ms;        /* 0: libvirt's default */
	uint64_t mg_bandwidth_mibps;        /* 0: unlimited */
	unsigned mg_timeout_s;
};

/* vm.rebuild: the image of the new root disk (vi_url NULL: the VM's own). */
struct command_rebuild_args {
	struct vm_image image;
};

/*
 * The snapshot commands' arguments: the snapshot's name (ids_name_check's
 * rules) for all three; kind and quiesce for vm.snapshot.create only (the
 * others decode and encode the name alone). quiesce (freeze the guest's
 * file systems through its agent around the snapshot) applies to "disk"
 * snapshots only: a "full" one keeps the guest's memory, and a guest
 * reverted to it would resume with its file systems frozen.
 */
struct command_snapshot_args {
	char name[IDS_NAME_MAX + 1];
	enum vm_snapshot_kind kind;
	bool quiesce;
};

struct command {
	char cmd_id[IDS_UUID_LEN + 1];      /* lower-case */
	enum command_type cmd_type;
	char cmd_vm_id[IDS_UUID_LEN + 1];   /* lower-case */
	union {
		struct vm_spec create;
		struct command_stop_args stop;
		struct command_resize_args resize;
		struct command_migrate_prepare_args migrate_prepare;
		struct command_migrate_args migrate;
		struct command_rebuild_args rebuild;
		struct command_snapshot_args snapshot;
	} cmd_args;
};

enum command_status {
	CMD_STATUS_ACCEPTED = 0,   /* journaled, effect not yet known */
	CMD_STATUS_SUCCEEDED,
	CMD_STATUS_FAILED,
};

/*
 * Wire form of a result:
 *   {"command_id","type","vm_id","status":"succeeded"|"failed",
 *    "error"?:{"code","message"},"result"?:{...},
 *    "accepted_at","finished_at"}        (times: ms since the epoch)
 */
struct command_result {
	char res_command_id[IDS_UUID_LEN + 1];
	enum command_type res_type;
	char res_vm_id[IDS_UUID_LEN + 1];
	enum command_status res_status;
	struct carve_error res_error;       /* set when FAILED */
	json_object *res_data;              /* owned; may be NULL */
	int64_t res_accepted_at_ms;
	int64_t res_finished_at_ms;
};

const char *command_type_name(enum command_type type);
int command_type_parse(const char *name, enum command_type *out);
const char *command_status_name(enum command_status st);
int command_status_parse(const char *name, enum command_status *out);
/* True for types that act on an existing VM (all but vm.create). */
bool command_type_needs_vm(enum command_type type);
/*
 * The VM spec a command carries (vm.create and vm.migrate.prepare, whose VM
 * is made on this host), or NULL.
 */
const struct vm_spec *command_spec(const struct command *cmd);

/*
 * Decode a command from its wire form. Every field is checked (types, ranges,
 * unknown keys, names, UUIDs); on failure err is CARVE_EINVAL with a message
 * naming the field, and out holds nothing to free. On success the caller
 * releases out with command_clear.
 */
int command_decode(json_object *obj, struct command *out, struct carve_error *err);
/* Same from bytes (at most COMMAND_MAX_BYTES), via jsonx_parse. */
int command_decode_buf(const char *buf, size_t len, struct command *out,
    struct carve_error *err);
/* A new object in wire form. */
json_object *command_encode(const struct command *cmd);
void command_clear(struct command *cmd);
/* Deep copy. */
void command_copy(struct command *dst, const struct command *src);

/* Decode just the vm.create args object (also used for the admin API). */
int vm_spec_decode(json_object *args, struct vm_spec *out, struct carve_error *err);
json_object *vm_spec_encode(const struct vm_spec *spec);
void vm_spec_clear(struct vm_spec *spec);
void vm_spec_copy(struct vm_spec *dst, const struct vm_spec *src);

/*
 * Decode vm.snapshot.create's args object (also the body of carve-cp's
 * POST /v1/vms/{id}/snapshots) and encode it back.
 */
int command_snapshot_create_decode(json_object *args,
    struct command_snapshot_args *out, struct carve_error *err);
json_object *command_snapshot_create_encode(
    const struct command_snapshot_args *a);

json_object *command_result_encode(const struct command_result *res);
int command_result_decode(json_object *obj, struct command_result *out,
    struct carve_error *err);
void command_result_clear(struct command_result *res);

#endif
