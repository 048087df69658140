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
 *               "user_data"?}
 *   vm.start   {}            vm.reboot {}            vm.destroy {}
 *   vm.stop    {"force"?: bool, "timeout_s"?: 1..3600 (default 60)}
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

#include "api/vm.h"
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
/*
 * Room for the largest valid vm.create: 32 keys of 8 KiB plus 64 KiB of
 * user data whose every byte is escaped (2 bytes in JSON), with margin; still
 * below the 1 MiB request bodies carve-cp and the control socket take.
 */
#define COMMAND_MAX_BYTES   (512 * 1024)

enum command_type {
	CMD_VM_CREATE = 0,
	CMD_VM_START,
	CMD_VM_STOP,
	CMD_VM_REBOOT,
	CMD_VM_DESTROY,
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
};

const char *vm_image_format_name(enum vm_image_format f);
int vm_image_format_parse(const char *name, enum vm_image_format *out);

struct command_stop_args {
	bool force;
	unsigned timeout_s;
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
