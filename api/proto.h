/*
 * Protocol v1 between carved and carve-cp, and carve-cp's admin API: the
 * message types and their strict JSON codecs, shared by both sides so the
 * wire form is written down once. /work/notes/protocol.md explains the
 * conversation; api/openapi.yaml is the normative description of every
 * endpoint and body.
 *
 * Conventions for every message X below:
 *   int proto_X_decode(json_object *obj, struct proto_X *out, err)
 *     Strict: unknown keys, wrong types, out-of-range numbers, bad names and
 *     bad UUIDs are CARVE_EINVAL with a message naming the field. On failure
 *     out holds nothing to free; on success release it with proto_X_clear
 *     (where the type owns anything). JSON null counts as absent.
 *   int proto_X_decode_buf(const char *buf, size_t len, struct proto_X *out,
 *       err)
 *     The same from bytes, through jsonx_parse, refusing bodies above the
 *     direction's cap (PROTO_REQUEST_MAX or PROTO_RESPONSE_MAX) with
 *     CARVE_ETOOBIG.
 *   json_object *proto_X_encode(const struct proto_X *msg)
 *     A new object (the caller puts it) in wire form; decoding it gives the
 *     same message back, and encoding that gives the same bytes.
 *
 * Pass-through sub-objects ("host", "capacity", a poll element's "command",
 * a command's "result") are kept as json_object references owned by the
 * struct (one json_object_get each; the clear function puts them). Encoders
 * take their own reference, so a struct may be encoded more than once.
 * Times are int64 milliseconds since the Unix epoch unless named _s.
 */
#ifndef CARVE_API_PROTO_H
#define CARVE_API_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "api/command.h"
#include "api/vm.h"
#include "common/error.h"
#include "common/ids.h"

#define PROTO_REQUEST_MAX       (1024 * 1024)        /* bodies carve-cp reads */
#define PROTO_RESPONSE_MAX      (4 * 1024 * 1024)    /* bodies carved reads */
#define PROTO_CSR_MAX           (16 * 1024)          /* one PEM CSR */
#define PROTO_CERT_MAX          (16 * 1024)          /* one PEM certificate */
#define PROTO_CA_MAX            (64 * 1024)          /* PEM chain */
#define PROTO_VERSION_MAX       32                   /* agent_version bytes */
#define PROTO_PROGRESS_MSG_MAX  1024
#define PROTO_INTERVAL_MIN_S    1                    /* server-directed */
#define PROTO_INTERVAL_MAX_S    3600                 /* intervals */
#define PROTO_WAIT_MAX_S        3600                 /* poll wait_s */
#define PROTO_POLL_MAX_COMMANDS 256                  /* per poll response */
#define PROTO_STATE_NAME_MAX    16                   /* "shutting_down" */

/* ------------------------------------------------------------ errors */

/*
 * The HTTP status for an error code: invalid_argument 400, unauthenticated
 * 401, permission_denied 403, not_found 404, conflict and
 * insufficient_capacity 409, payload_too_large 413, unavailable 503,
 * everything else (internal_error, hypervisor_error) 500. CARVE_OK is 200.
 */
int proto_http_status(enum carve_errcode code);
/*
 * The code to assume for an error status whose body is not an error body
 * (a proxy's 502 page, a truncated answer): 400 invalid_argument, 401
 * unauthenticated, 403 permission_denied, 404 not_found, 409 conflict, 413
 * payload_too_large, 502/503/504 and 429 unavailable, else internal_error.
 */
enum carve_errcode proto_errcode_from_http(int status);

/*
 * Every error response: {"error":{"code":"<stable code>","message":"..."}}.
 * The code must be one of common/error.h's names (not "ok"); the message at
 * most CARVE_ERRMSG_MAX - 1 bytes. Decodes into out (code and message).
 */
json_object *proto_error_encode(const struct carve_error *e);
int proto_error_decode(json_object *obj, struct carve_error *out,
    struct carve_error *err);
int proto_error_decode_buf(const char *buf, size_t len,
    struct carve_error *out, struct carve_error *err);

/* The empty body {} (result and progress acknowledgements). */
json_object *proto_empty_encode(void);
int proto_empty_decode(json_object *obj, struct carve_error *err);
int proto_empty_decode_buf(const char *buf, size_t len,
    struct carve_error *err);

/*
 * Parse a body of at most max bytes with jsonx_parse (CARVE_ETOOBIG above
 * it). Returns a new reference or NULL with err set. For messages without a
 * _buf variant, e.g. a command result (command_result_decode).
 */
json_object *proto_parse(const char *buf, size_t len, size_t max,
    struct carve_error *err);

/* ------------------------------------------------------------ capacity */

/*
 * The capacity report (capacity_encode's form):
 *   {"VCPU":{"total","reserved","allocation_ratio","allocated",
 *    "allocatable","free"}, "MEMORY_MIB":{...}, "DISK_GIB":{...}}
 * exactly these three classes and six keys; integers >= 0, the ratio a
 * finite number >= 0. Register and heartbeat keep it as a pass-through
 * object, checked with this decoder; carve-cp reads the numbers with it.
 */
enum proto_cap_class {
	PROTO_CAP_VCPU = 0,
	PROTO_CAP_MEMORY_MIB,
	PROTO_CAP_DISK_GIB,
	PROTO_CAP_NCLASSES
};

struct proto_cap_inv {
	int64_t ci_total;
	int64_t ci_reserved;
	double ci_ratio;
	int64_t ci_allocated;
	int64_t ci_allocatable;
	int64_t ci_free;
};

struct proto_capacity {
	struct proto_cap_inv pc_class[PROTO_CAP_NCLASSES];
};

/* "VCPU", "MEMORY_MIB", "DISK_GIB" */
const char *proto_cap_class_name(enum proto_cap_class c);
int proto_capacity_decode(json_object *obj, struct proto_capacity *out,
    struct carve_error *err);
json_object *proto_capacity_encode(const struct proto_capacity *cap);

/* ------------------------------------------------------------ enroll */

/*
 * POST /v1/enroll  {"node":"host-1","csr":"-----BEGIN CERTIFICATE
 * REQUEST-----\n..."}. The CSR must look like one PEM certificate request
 * (BEGIN/END lines, printable ASCII and line breaks only); carve-cp checks
 * its content (subject CN == node) with OpenSSL.
 */
struct proto_enroll_req {
	char en_node[IDS_NAME_MAX + 1];
	char *en_csr;                       /* owned */
};

int proto_enroll_req_decode(json_object *obj, struct proto_enroll_req *out,
    struct carve_error *err);
int proto_enroll_req_decode_buf(const char *buf, size_t len,
    struct proto_enroll_req *out, struct carve_error *err);
json_object *proto_enroll_req_encode(const struct proto_enroll_req *msg);
void proto_enroll_req_clear(struct proto_enroll_req *msg);

/* POST /v1/nodes/{node}/renew  {"csr":"<PEM>"} */
struct proto_renew_req {
	char *rn_csr;                       /* owned */
};

int proto_renew_req_decode(json_object *obj, struct proto_renew_req *out,
    struct carve_error *err);
int proto_renew_req_decode_buf(const char *buf, size_t len,
    struct proto_renew_req *out, struct carve_error *err);
json_object *proto_renew_req_encode(const struct proto_renew_req *msg);
void proto_renew_req_clear(struct proto_renew_req *msg);

/*
 * Response to enroll and renew:
 *   {"certificate":"<PEM>","ca":"<PEM chain>","expires_at":<ms>}
 * certificate is one PEM CERTIFICATE block, ca one or more.
 */
struct proto_cert_resp {
	char *ct_certificate;               /* owned */
	char *ct_ca;                        /* owned */
	int64_t ct_expires_at_ms;
};

int proto_cert_resp_decode(json_object *obj, struct proto_cert_resp *out,
    struct carve_error *err);
int proto_cert_resp_decode_buf(const char *buf, size_t len,
    struct proto_cert_resp *out, struct carve_error *err);
json_object *proto_cert_resp_encode(const struct proto_cert_resp *msg);
void proto_cert_resp_clear(struct proto_cert_resp *msg);

/* ------------------------------------------------------------ register */

/*
 * PUT /v1/nodes/{node}
 *   {"agent_version":"0.1.0","schedulable":true,"host":{...},
 *    "capacity":{...}}
 * agent_version: 1..PROTO_VERSION_MAX bytes of [A-Za-z0-9.+~_-]. host is
 * host_inventory_encode()'s object, passed through (only checked to be an
 * object); capacity is checked with proto_capacity_decode.
 */
struct proto_register_req {
	char rg_agent_version[PROTO_VERSION_MAX + 1];
	bool rg_schedulable;
	json_object *rg_host;               /* owned reference */
	json_object *rg_capacity;           /* owned reference */
};

int proto_register_req_decode(json_object *obj, struct proto_register_req *out,
    struct carve_error *err);
int proto_register_req_decode_buf(const char *buf, size_t len,
    struct proto_register_req *out, struct carve_error *err);
json_object *proto_register_req_encode(const struct proto_register_req *msg);
void proto_register_req_clear(struct proto_register_req *msg);

/*
 * Response 200 {"heartbeat_interval_s":10,"poll_timeout_s":30,
 * "node_ttl_s":30}, each PROTO_INTERVAL_MIN_S..PROTO_INTERVAL_MAX_S.
 */
struct proto_register_resp {
	int rr_heartbeat_interval_s;
	int rr_poll_timeout_s;
	int rr_node_ttl_s;
};

int proto_register_resp_decode(json_object *obj,
    struct proto_register_resp *out, struct carve_error *err);
int proto_register_resp_decode_buf(const char *buf, size_t len,
    struct proto_register_resp *out, struct carve_error *err);
json_object *proto_register_resp_encode(const struct proto_register_resp *msg);

/* ------------------------------------------------------------ long poll */

/*
 * GET /v1/nodes/{node}/commands?cursor=N&wait_s=W. Both parameters are
 * optional (cursor 0, wait_s 0: answer at once), plain decimal, cursor
 * 0..INT64_MAX, wait_s 0..PROTO_WAIT_MAX_S; unknown or repeated parameters
 * are refused. query is the part after '?' (NULL or "" for none).
 */
struct proto_poll_query {
	int64_t pq_cursor;
	int pq_wait_s;
};

int proto_poll_query_parse(const char *query, struct proto_poll_query *out,
    struct carve_error *err);
/* "cursor=N&wait_s=W", a new string the caller frees. */
char *proto_poll_query_format(const struct proto_poll_query *q);

/*
 * Response 200 {"commands":[{"seq":7,"command":{...}}],"cursor":7}.
 * seq >= 1, cursor >= 0, at most PROTO_POLL_MAX_COMMANDS elements. Each
 * element's "command" is only checked to be an object: the caller decodes
 * it with command_decode one by one, so one bad command does not fail the
 * batch (a bad one with a valid "id" is answered with a failed
 * invalid_argument result; see protocol.md).
 */
struct proto_poll_item {
	int64_t pi_seq;
	json_object *pi_command;            /* owned reference */
};

struct proto_poll_resp {
	struct proto_poll_item *pr_items;   /* owned array */
	size_t pr_nitems;
	int64_t pr_cursor;
};

int proto_poll_resp_decode(json_object *obj, struct proto_poll_resp *out,
    struct carve_error *err);
int proto_poll_resp_decode_buf(const char *buf, size_t len,
    struct proto_poll_resp *out, struct carve_error *err);
json_object *proto_poll_resp_encode(const struct proto_poll_resp *msg);
void proto_poll_resp_clear(struct proto_poll_resp *msg);

/* ------------------------------------------------------------ progress */

/*
 * POST /v1/commands/{id}/progress  {"percent":0..100,"message"?:"..."}
 * (message: at most PROTO_PROGRESS_MSG_MAX bytes of UTF-8). Answered {}.
 * Also the "progress" member of the admin command record.
 * (POST /v1/commands/{id}/result takes command_result_encode's form and is
 * answered {}: see command.h.)
 */
struct proto_progress {
	int pg_percent;
	char *pg_message;                   /* owned; NULL when absent */
};

int proto_progress_decode(json_object *obj, struct proto_progress *out,
    struct carve_error *err);
int proto_progress_decode_buf(const char *buf, size_t len,
    struct proto_progress *out, struct carve_error *err);
json_object *proto_progress_encode(const struct proto_progress *msg);
void proto_progress_clear(struct proto_progress *msg);

/* ------------------------------------------------------------ heartbeat */

/*
 * POST /v1/nodes/{node}/heartbeat
 *   {"seq":12,"full":false,"vms":[vm_info...],"removed":["<uuid>"...],
 *    "capacity":{...},"schedulable"?:bool}
 * The first five keys are required (the arrays may be empty); seq >= 1;
 * each vm decodes with vm_info_decode; removed ids are UUIDs (stored
 * lower-case). schedulable (false while the host is drained) defaults to
 * true; the encoder writes it only when false.
 */
struct proto_heartbeat_req {
	int64_t hb_seq;
	bool hb_full;
	struct vm_info *hb_vms;             /* owned array */
	size_t hb_nvms;
	char (*hb_removed)[IDS_UUID_LEN + 1];   /* owned array */
	size_t hb_nremoved;
	json_object *hb_capacity;           /* owned reference */
	bool hb_schedulable;
};

int proto_heartbeat_req_decode(json_object *obj,
    struct proto_heartbeat_req *out, struct carve_error *err);
int proto_heartbeat_req_decode_buf(const char *buf, size_t len,
    struct proto_heartbeat_req *out, struct carve_error *err);
json_object *proto_heartbeat_req_encode(const struct proto_heartbeat_req *msg);
void proto_heartbeat_req_clear(struct proto_heartbeat_req *msg);

/*
 * Response 200 {"ack":12,"resync":false,"heartbeat_interval_s":10}
 * ack >= 0; heartbeat_interval_s PROTO_INTERVAL_MIN_S..MAX_S.
 */
struct proto_heartbeat_resp {
	int64_t ha_ack;
	bool ha_resync;
	int ha_heartbeat_interval_s;
};

int proto_heartbeat_resp_decode(json_object *obj,
    struct proto_heartbeat_resp *out, struct carve_error *err);
int proto_heartbeat_resp_decode_buf(const char *buf, size_t len,
    struct proto_heartbeat_resp *out, struct carve_error *err);
json_object *proto_heartbeat_resp_encode(
    const struct proto_heartbeat_resp *msg);

/* ------------------------------------------------------------ admin: VMs */

/*
 * POST /v1/vms  {"name","vcpus","memory_mib","disk_gib"?,"node"?,"kernel"?,
 * "initrd"?,"cmdline"?,"image"?,"ssh_authorized_keys"?,"user_data"?,
 * "networks"?,"data_disks"?}: vm_spec_decode's form plus an optional node
 * name.
 * vc_node is "" when absent (the scheduler picks).
 */
struct proto_vm_create_req {
	struct vm_spec vc_spec;             /* owns its strings */
	char vc_node[IDS_NAME_MAX + 1];
};

int proto_vm_create_req_decode(json_object *obj,
    struct proto_vm_create_req *out, struct carve_error *err);
int proto_vm_create_req_decode_buf(const char *buf, size_t len,
    struct proto_vm_create_req *out, struct carve_error *err);
json_object *proto_vm_create_req_encode(const struct proto_vm_create_req *msg);
void proto_vm_create_req_clear(struct proto_vm_create_req *msg);

/* Response 202 {"id":"<vm uuid>","node":"host-1","command_id":"<uuid>"} */
struct proto_vm_created {
	char vd_id[IDS_UUID_LEN + 1];
	char vd_node[IDS_NAME_MAX + 1];
	char vd_command_id[IDS_UUID_LEN + 1];
};

int proto_vm_created_decode(json_object *obj, struct proto_vm_created *out,
    struct carve_error *err);
int proto_vm_created_decode_buf(const char *buf, size_t len,
    struct proto_vm_created *out, struct carve_error *err);
json_object *proto_vm_created_encode(const struct proto_vm_created *msg);

/* Response 202 {"command_id":"<uuid>"} to DELETE /v1/vms/{id} and actions. */
struct proto_command_ref {
	char ref_command_id[IDS_UUID_LEN + 1];
};

int proto_command_ref_decode(json_object *obj, struct proto_command_ref *out,
    struct carve_error *err);
int proto_command_ref_decode_buf(const char *buf, size_t len,
    struct proto_command_ref *out, struct carve_error *err);
json_object *proto_command_ref_encode(const struct proto_command_ref *msg);

/*
 * POST /v1/vms/{id}/actions  {"action":"start"|"stop"|"reboot"|"resize"|
 *                             "rebuild", "force"?:bool, "vcpus"?,
 *                             "memory_mib"?, "image"?:{"url","sha256",
 *                             "format"}}
 * force applies to stop only, vcpus and memory_mib (same bounds as
 * vm.resize, at least one of them) to resize only, image to rebuild only:
 * given with another action they are refused. The encoder writes each for
 * its action only.
 */
enum proto_vm_action {
	PROTO_VM_START = 0,
	PROTO_VM_STOP,
	PROTO_VM_REBOOT,
	PROTO_VM_RESIZE,
	PROTO_VM_REBUILD,
	PROTO_VM_ACTION_MAX
};

struct proto_vm_action_req {
	enum proto_vm_action va_action;
	bool va_force;
	struct command_resize_args va_resize;   /* resize: 0 = unchanged */
	/* rebuild: the new image (vi_url NULL: the VM's own); owned. */
	struct vm_image va_image;
};

/* "start", "stop", "reboot", "resize", "rebuild" */
const char *proto_vm_action_name(enum proto_vm_action a);
/* CMD_VM_START, CMD_VM_STOP, CMD_VM_REBOOT, CMD_VM_RESIZE, CMD_VM_REBUILD */
enum command_type proto_vm_action_command(enum proto_vm_action a);
int proto_vm_action_req_decode(json_object *obj,
    struct proto_vm_action_req *out, struct carve_error *err);
int proto_vm_action_req_decode_buf(const char *buf, size_t len,
    struct proto_vm_action_req *out, struct carve_error *err);
json_object *proto_vm_action_req_encode(const struct proto_vm_action_req *msg);
void proto_vm_action_req_clear(struct proto_vm_action_req *msg);

/*
 * POST /v1/vms/{id}/snapshots  {"name","kind":"full"|"disk","quiesce"?:bool}
 * is vm.snapshot.create's args (command_snapshot_create_decode: name rules,
 * quiesce with "disk" only). POST /v1/vms/{id}/snapshots/{name}/revert and
 * DELETE /v1/vms/{id}/snapshots/{name} take no body. All three answer 202
 * {"command_id"}.
 */
int proto_snapshot_create_req_decode(json_object *obj,
    struct command_snapshot_args *out, struct carve_error *err);
int proto_snapshot_create_req_decode_buf(const char *buf, size_t len,
    struct command_snapshot_args *out, struct carve_error *err);
json_object *proto_snapshot_create_req_encode(
    const struct command_snapshot_args *msg);

/*
 * GET /v1/vms/{id}/snapshots  200
 *   {"vm_id","snapshots":[{"name","kind","created_at"}...]}
 * from the VM's last report (empty before the first one, or from an agent
 * that does not report snapshots); at most VM_SNAPSHOTS_MAX, names unique.
 */
struct proto_snapshot_list {
	char sl_vm_id[IDS_UUID_LEN + 1];
	unsigned sl_n;
	struct vm_snapshot sl_snaps[VM_SNAPSHOTS_MAX];
};

int proto_snapshot_list_decode(json_object *obj,
    struct proto_snapshot_list *out, struct carve_error *err);
int proto_snapshot_list_decode_buf(const char *buf, size_t len,
    struct proto_snapshot_list *out, struct carve_error *err);
json_object *proto_snapshot_list_encode(const struct proto_snapshot_list *msg);

/*
 * The VM record of GET /v1/vms and GET /v1/vms/{id} (disk_gib: what the VM
 * takes of DISK_GIB, its root and data disks):
 *   {"id","name","node","vcpus","memory_mib","disk_gib",
 *    "desired_state":"running"|"stopped"|"deleted",
 *    "state":"<vm_state name>"|"pending","last_command_id","updated_at",
 *    "migration"?:{"id","state","target"}}
 * All keys but migration required. pv_state is a vm_state_name() or
 * "pending" (nothing reported yet). migration is there while the VM is
 * being migrated (state: a proto_mig_state_names entry that is not final).
 */
enum proto_desired_state {
	PROTO_DESIRED_RUNNING = 0,
	PROTO_DESIRED_STOPPED,
	PROTO_DESIRED_DELETED,
	PROTO_DESIRED_MAX
};

struct proto_vm {
	char pv_id[IDS_UUID_LEN + 1];
	char pv_name[IDS_NAME_MAX + 1];
	char pv_node[IDS_NAME_MAX + 1];
	unsigned pv_vcpus;
	uint64_t pv_memory_mib;
	uint64_t pv_disk_gib;
	enum proto_desired_state pv_desired;
	char pv_state[PROTO_STATE_NAME_MAX + 1];
	char pv_last_command_id[IDS_UUID_LEN + 1];
	int64_t pv_updated_at_ms;
	char pv_migration_id[IDS_UUID_LEN + 1];     /* "": no migration */
	char pv_migration_state[PROTO_STATE_NAME_MAX + 1];
	char pv_migration_target[IDS_NAME_MAX + 1];
};

const char *proto_desired_state_name(enum proto_desired_state s);
int proto_desired_state_parse(const char *name, enum proto_desired_state *out);
int proto_vm_decode(json_object *obj, struct proto_vm *out,
    struct carve_error *err);
int proto_vm_decode_buf(const char *buf, size_t len, struct proto_vm *out,
    struct carve_error *err);
json_object *proto_vm_encode(const struct proto_vm *vm);
/* A JSON array of VM records; *out is a new array the caller frees. */
int proto_vm_list_decode(json_object *arr, struct proto_vm **out, size_t *n,
    struct carve_error *err);
json_object *proto_vm_list_encode(const struct proto_vm *vms, size_t n);

/* ------------------------------------------------------------ admin: nodes */

/*
 * The node record of GET /v1/nodes and GET /v1/nodes/{name}:
 *   {"name","up":bool,"schedulable":bool,"last_heartbeat":ms|null,
 *    "registered_at":ms,"agent_version","host":{...},"capacity":{...},
 *    "vms":N,"evacuation"?:{...}}
 * nd_last_heartbeat_ms is 0 for null (never heartbeated); on the wire a
 * present time is >= 1. host and capacity as in register. evacuation (the
 * node's last evacuation, when it had one; see openapi.yaml) is passed
 * through, only checked to be an object.
 */
struct proto_node {
	char nd_name[IDS_NAME_MAX + 1];
	bool nd_up;
	bool nd_schedulable;
	int64_t nd_last_heartbeat_ms;
	int64_t nd_registered_at_ms;
	char nd_agent_version[PROTO_VERSION_MAX + 1];
	json_object *nd_host;               /* owned reference */
	json_object *nd_capacity;           /* owned reference */
	int64_t nd_vms;
	json_object *nd_evacuation;         /* owned reference; NULL: none */
};

int proto_node_decode(json_object *obj, struct proto_node *out,
    struct carve_error *err);
int proto_node_decode_buf(const char *buf, size_t len, struct proto_node *out,
    struct carve_error *err);
json_object *proto_node_encode(const struct proto_node *node);
void proto_node_clear(struct proto_node *node);
int proto_node_list_decode(json_object *arr, struct proto_node **out,
    size_t *n, struct carve_error *err);
json_object *proto_node_list_encode(const struct proto_node *nodes, size_t n);
/* Clears each node and frees the array; (NULL, 0) does nothing. */
void proto_node_list_free(struct proto_node *nodes, size_t n);

/* ------------------------------------------------------------ admin: commands */

/*
 * GET /v1/commands/{id}:
 *   {"id","type","vm_id","node",
 *    "status":"pending"|"delivered"|"succeeded"|"failed",
 *    "created_at":ms,"delivered_at":ms|null,"finished_at":ms|null,
 *    "result":{...}|null,"error":{"code","message"}|null,
 *    "progress":{"percent","message"?}|null}
 * Every key is present (null where there is nothing); times 0 stand for
 * null, present times are >= 1. error is non-null exactly when status is
 * failed.
 */
enum proto_cmd_status {
	PROTO_CMD_PENDING = 0,      /* posted, not yet given to the node */
	PROTO_CMD_DELIVERED,        /* handed out in a poll response */
	PROTO_CMD_SUCCEEDED,
	PROTO_CMD_FAILED,
	PROTO_CMD_STATUS_MAX
};

struct proto_command_info {
	char ci_id[IDS_UUID_LEN + 1];
	enum command_type ci_type;
	char ci_vm_id[IDS_UUID_LEN + 1];
	char ci_node[IDS_NAME_MAX + 1];
	enum proto_cmd_status ci_status;
	int64_t ci_created_at_ms;
	int64_t ci_delivered_at_ms;         /* 0: null */
	int64_t ci_finished_at_ms;          /* 0: null */
	json_object *ci_result;             /* owned reference; NULL: null */
	struct carve_error ci_error;        /* code CARVE_OK: null */
	bool ci_has_progress;
	struct proto_progress ci_progress;  /* owned when ci_has_progress */
};

const char *proto_cmd_status_name(enum proto_cmd_status s);
int proto_cmd_status_parse(const char *name, enum proto_cmd_status *out);
int proto_command_info_decode(json_object *obj,
    struct proto_command_info *out, struct carve_error *err);
int proto_command_info_decode_buf(const char *buf, size_t len,
    struct proto_command_info *out, struct carve_error *err);
json_object *proto_command_info_encode(const struct proto_command_info *ci);
void proto_command_info_clear(struct proto_command_info *ci);

/* ------------------------------------------------------------ admin: migrations */

#define PROTO_MIG_DOWNTIME_MAX_MS   60000
#define PROTO_MIG_BANDWIDTH_MAX     1000000     /* MiB/s; 0 is unlimited */
#define PROTO_MIG_TIMEOUT_MIN_S     10
#define PROTO_MIG_TIMEOUT_MAX_S     86400

/*
 * POST /v1/vms/{id}/actions  {"action":"migrate","target_node"?:NAME,
 *   "max_downtime_ms"?:1..60000,"bandwidth_mibps"?:0..1000000,
 *   "timeout_s"?:10..86400}
 * The action request of a migration (proto_vm_action_req is the others').
 * mq_target is "" when absent (the scheduler picks); limits are -1 when
 * absent (the agent's defaults). proto_vm_action_is_migrate tells which
 * decoder a body needs.
 */
struct proto_vm_migrate_req {
	char mq_target[IDS_NAME_MAX + 1];
	int64_t mq_max_downtime_ms;
	int64_t mq_bandwidth_mibps;
	int64_t mq_timeout_s;
};

/* True when obj is an object whose "action" is the string "migrate". */
bool proto_vm_action_is_migrate(json_object *obj);
int proto_vm_migrate_req_decode(json_object *obj,
    struct proto_vm_migrate_req *out, struct carve_error *err);
int proto_vm_migrate_req_decode_buf(const char *buf, size_t len,
    struct proto_vm_migrate_req *out, struct carve_error *err);
json_object *proto_vm_migrate_req_encode(const struct proto_vm_migrate_req *msg);

/* Response 202 {"command_id":"<the prepare command>","migration_id"} */
struct proto_migration_ref {
	char mf_command_id[IDS_UUID_LEN + 1];
	char mf_migration_id[IDS_UUID_LEN + 1];
};

int proto_migration_ref_decode(json_object *obj,
    struct proto_migration_ref *out, struct carve_error *err);
int proto_migration_ref_decode_buf(const char *buf, size_t len,
    struct proto_migration_ref *out, struct carve_error *err);
json_object *proto_migration_ref_encode(const struct proto_migration_ref *msg);

/*
 * GET /v1/migrations/{id} (and the elements of GET /v1/migrations):
 *   {"id","vm_id","source","target",
 *    "state":"preparing"|"migrating"|"finishing"|"done"|"failed",
 *    "reason":"admin"|"evacuation",
 *    "max_downtime_ms":N|null,"bandwidth_mibps":N|null,"timeout_s":N|null,
 *    "commands":{"prepare":ID,"migrate":ID|null,"finish":ID|null,
 *                "cancel":ID|null},
 *    "cancel_requested":bool,
 *    "progress":{"percent","message"?}|null,
 *    "result":{...}|null,
 *    "error":{"code","message"}|null,
 *    "started_at":ms,"updated_at":ms,"finished_at":ms|null}
 * Every key present (null where nothing). progress is the source's last
 * report for vm.migrate; result is vm.migrate's result (elapsed_ms,
 * downtime_ms, ...), passed through.
 */
struct proto_migration {
	char pm_id[IDS_UUID_LEN + 1];
	char pm_vm_id[IDS_UUID_LEN + 1];
	char pm_source[IDS_NAME_MAX + 1];
	char pm_target[IDS_NAME_MAX + 1];
	char pm_state[PROTO_STATE_NAME_MAX + 1];
	bool pm_evacuation;
	int64_t pm_max_downtime_ms;         /* -1: null */
	int64_t pm_bandwidth_mibps;         /* -1: null */
	int64_t pm_timeout_s;               /* -1: null */
	char pm_prepare_cmd[IDS_UUID_LEN + 1];
	char pm_migrate_cmd[IDS_UUID_LEN + 1];  /* "": null */
	char pm_finish_cmd[IDS_UUID_LEN + 1];   /* "": null */
	char pm_cancel_cmd[IDS_UUID_LEN + 1];   /* "": null */
	bool pm_cancel_requested;
	bool pm_has_progress;
	struct proto_progress pm_progress;  /* owned when pm_has_progress */
	json_object *pm_result;             /* owned reference; NULL: null */
	struct carve_error pm_error;        /* code CARVE_OK: null */
	int64_t pm_started_at_ms;
	int64_t pm_updated_at_ms;
	int64_t pm_finished_at_ms;          /* 0: null */
};

/* True for the five state names above. */
bool proto_mig_state_valid(const char *name);
int proto_migration_decode(json_object *obj, struct proto_migration *out,
    struct carve_error *err);
int proto_migration_decode_buf(const char *buf, size_t len,
    struct proto_migration *out, struct carve_error *err);
json_object *proto_migration_encode(const struct proto_migration *m);
void proto_migration_clear(struct proto_migration *m);
/* A JSON array of migration records; free with proto_migration_list_free. */
int proto_migration_list_decode(json_object *arr, struct proto_migration **out,
    size_t *n, struct carve_error *err);
json_object *proto_migration_list_encode(const struct proto_migration *ms,
    size_t n);
void proto_migration_list_free(struct proto_migration *ms, size_t n);

#endif
