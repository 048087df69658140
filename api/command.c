/*
 * The command model: see command.h. Each command type is one entry of
 * command_table, which says how its arguments are decoded, encoded, copied
 * and released; command_decode and friends only dispatch through it, so a
 * new type is one table entry plus its functions.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/command.h"
#include "common/jsonx.h"
#include "common/text.h"
#include "common/xalloc.h"

/* How much of a rejected string a message quotes. */
#define COMMAND_QUOTE_MAX 64

struct command_entry {
	const char *ce_name;
	bool ce_needs_vm;
	/* vm.create cannot be given without its arguments. */
	bool ce_args_required;
	/* args is NULL when the command had none. */
	int (*ce_decode)(json_object *args, struct command *cmd,
	    struct carve_error *err);
	/* Returns the args object of cmd. */
	json_object *(*ce_encode)(const struct command *cmd);
	/* Deep-copy the args of src into dst (already a shallow copy). */
	void (*ce_copy)(struct command *dst, const struct command *src);
	void (*ce_clear)(struct command *cmd);
};

static int command_create_decode(json_object *, struct command *,
    struct carve_error *);
static json_object *command_create_encode(const struct command *);
static void command_create_copy(struct command *, const struct command *);
static void command_create_clear(struct command *);
static int command_stop_decode(json_object *, struct command *,
    struct carve_error *);
static json_object *command_stop_encode(const struct command *);
static int command_noargs_decode(json_object *, struct command *,
    struct carve_error *);
static json_object *command_noargs_encode(const struct command *);

static const struct command_entry command_table[CMD_TYPE_MAX] = {
	[CMD_VM_CREATE] = {
		.ce_name = "vm.create",
		.ce_needs_vm = false,
		.ce_args_required = true,
		.ce_decode = command_create_decode,
		.ce_encode = command_create_encode,
		.ce_copy = command_create_copy,
		.ce_clear = command_create_clear,
	},
	[CMD_VM_START] = {
		.ce_name = "vm.start",
		.ce_needs_vm = true,
		.ce_decode = command_noargs_decode,
		.ce_encode = command_noargs_encode,
	},
	[CMD_VM_STOP] = {
		.ce_name = "vm.stop",
		.ce_needs_vm = true,
		.ce_decode = command_stop_decode,
		.ce_encode = command_stop_encode,
	},
	[CMD_VM_REBOOT] = {
		.ce_name = "vm.reboot",
		.ce_needs_vm = true,
		.ce_decode = command_noargs_decode,
		.ce_encode = command_noargs_encode,
	},
	[CMD_VM_DESTROY] = {
		.ce_name = "vm.destroy",
		.ce_needs_vm = true,
		.ce_decode = command_noargs_decode,
		.ce_encode = command_noargs_encode,
	},
};

static const char *const command_status_names[] = {
	[CMD_STATUS_ACCEPTED] = "accepted",
	[CMD_STATUS_SUCCEEDED] = "succeeded",
	[CMD_STATUS_FAILED] = "failed",
};
#define COMMAND_STATUS_COUNT \
	(sizeof(command_status_names) / sizeof(command_status_names[0]))

/* json-c allocation failures are as fatal as xmalloc's. */
static json_object *
command_new_object(void)
{
	json_object *o = json_object_new_object();

	if (o == NULL) {
		fprintf(stderr,
		    "level=fatal comp=command msg=\"out of memory\"\n");
		abort();
	}
	return o;
}

/* ------------------------------------------------------------ names */

const char *
command_type_name(enum command_type type)
{
	if ((int)type < 0 || type >= CMD_TYPE_MAX)
		return "unknown";
	return command_table[type].ce_name;
}

int
command_type_parse(const char *name, enum command_type *out)
{
	for (int i = 0; i < CMD_TYPE_MAX; i++)
		if (strcmp(command_table[i].ce_name, name) == 0) {
			*out = (enum command_type)i;
			return 0;
		}
	return -1;
}

const char *
command_status_name(enum command_status st)
{
	if ((int)st < 0 || (size_t)st >= COMMAND_STATUS_COUNT)
		return "unknown";
	return command_status_names[st];
}

int
command_status_parse(const char *name, enum command_status *out)
{
	for (size_t i = 0; i < COMMAND_STATUS_COUNT; i++)
		if (strcmp(command_status_names[i], name) == 0) {
			*out = (enum command_status)i;
			return 0;
		}
	return -1;
}

bool
command_type_needs_vm(enum command_type type)
{
	if ((int)type < 0 || type >= CMD_TYPE_MAX)
		return false;
	return command_table[type].ce_needs_vm;
}

/* ------------------------------------------------------------ fields */

/* A required canonical UUID, stored lower-case. */
static int
command_get_uuid(json_object *obj, const char *key,
    char out[IDS_UUID_LEN + 1], struct carve_error *err)
{
	const char *s;

	/* A longer string gets the UUID message, not a length message. */
	if (jsonx_get_string(obj, key, true, SIZE_MAX, &s, err) == -1)
		return -1;
	if (!ids_uuid_valid(s))
		return error_set(err, CARVE_EINVAL,
		    "%s must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
		    key);
	ids_uuid_normalize(s, out);
	return 0;
}

static int
command_get_type(json_object *obj, const char *key, enum command_type *out,
    struct carve_error *err)
{
	char q[COMMAND_QUOTE_MAX + 8];
	const char *s;

	if (jsonx_get_string(obj, key, true, SIZE_MAX, &s, err) == -1)
		return -1;
	if (command_type_parse(s, out) == -1) {
		text_quote(s, COMMAND_QUOTE_MAX, q, sizeof(q));
		return error_set(err, CARVE_EINVAL,
		    "unknown command type \"%s\"", q);
	}
	return 0;
}

/*
 * An integer size with its unit in the message ("memory_mib must be at least
 * 64 MiB"), which says more than the bare range jsonx_get_int reports.
 */
static int
command_get_size(json_object *obj, const char *key, bool required,
    int64_t min, int64_t max, const char *unit, int64_t *out,
    struct carve_error *err)
{
	json_object *v;
	int64_t i;

	if (json_object_object_get_ex(obj, key, &v) &&
	    json_object_is_type(v, json_type_int)) {
		/* Values above INT64_MAX read as INT64_MAX: still too large. */
		i = json_object_get_int64(v);
		if (i < min)
			return error_set(err, CARVE_EINVAL,
			    "%s must be at least %" PRId64 " %s", key, min, unit);
		if (i > max)
			return error_set(err, CARVE_EINVAL,
			    "%s must be at most %" PRId64 " %s", key, max, unit);
	}
	return jsonx_get_int(obj, key, required, min, max, out, err);
}

/*
 * A file name inside the configured kernel directory. The alphabet has no
 * '/', and a leading '.' is refused, so neither "../x" nor ".." nor a hidden
 * file can be named.
 */
static int
command_get_filename(json_object *obj, const char *key, char **out,
    struct carve_error *err)
{
	const char *s;
	int rc;

	if ((rc = jsonx_get_string(obj, key, false, VM_FILENAME_MAX, &s,
	    err)) != 1)
		return rc;
	if (*s == '\0')
		return error_set(err, CARVE_EINVAL, "%s must not be empty", key);
	if (*s == '.')
		return error_set(err, CARVE_EINVAL,
		    "%s must not start with '.'", key);
	for (size_t i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '+' || c == '-'))
			return error_set(err, CARVE_EINVAL,
			    "%s must be a plain file name of letters, digits, "
			    "'.', '_', '+' and '-' (found byte 0x%02x at offset "
			    "%zu)", key, c, i);
	}
	*out = xstrdup(s);
	return 1;
}

static int
command_get_cmdline(json_object *obj, const char *key, char **out,
    struct carve_error *err)
{
	const char *s;
	int rc;

	if ((rc = jsonx_get_string(obj, key, false, VM_CMDLINE_MAX, &s,
	    err)) != 1)
		return rc;
	if (*s == '\0')
		return error_set(err, CARVE_EINVAL, "%s must not be empty", key);
	for (size_t i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c > 0x7e)
			return error_set(err, CARVE_EINVAL,
			    "%s may only contain printable ASCII (found byte "
			    "0x%02x at offset %zu)", key, c, i);
	}
	*out = xstrdup(s);
	return 1;
}

/* ------------------------------------------------------------ vm spec */

static const char *const vm_spec_keys[] = {
	"name", "vcpus", "memory_mib", "disk_gib", "kernel", "initrd",
	"cmdline", NULL
};

int
vm_spec_decode(json_object *args, struct vm_spec *out,
    struct carve_error *err)
{
	struct vm_spec spec;
	const char *name;
	int64_t vcpus, mem, disk = 0;

	memset(&spec, 0, sizeof(spec));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(args, "vm.create args", vm_spec_keys, err) == -1)
		return -1;
	if (jsonx_get_string(args, "name", true, IDS_NAME_MAX, &name, err) == -1 ||
	    ids_name_check(name, "name", err) == -1)
		return -1;
	if (jsonx_get_int(args, "vcpus", true, 1, VM_VCPUS_MAX, &vcpus,
	    err) == -1)
		return -1;
	if (command_get_size(args, "memory_mib", true, VM_MEMORY_MIB_MIN,
	    (int64_t)VM_MEMORY_MIB_MAX, "MiB", &mem, err) == -1)
		return -1;
	if (command_get_size(args, "disk_gib", false, 0,
	    (int64_t)VM_DISK_GIB_MAX, "GiB", &disk, err) == -1)
		return -1;
	if (command_get_filename(args, "kernel", &spec.vs_kernel, err) == -1 ||
	    command_get_filename(args, "initrd", &spec.vs_initrd, err) == -1 ||
	    command_get_cmdline(args, "cmdline", &spec.vs_cmdline, err) == -1)
		goto fail;
	/* Both only mean something for direct kernel boot. */
	if (spec.vs_kernel == NULL && spec.vs_initrd != NULL) {
		error_set(err, CARVE_EINVAL, "initrd requires kernel");
		goto fail;
	}
	if (spec.vs_kernel == NULL && spec.vs_cmdline != NULL) {
		error_set(err, CARVE_EINVAL, "cmdline requires kernel");
		goto fail;
	}
	snprintf(spec.vs_name, sizeof(spec.vs_name), "%s", name);
	spec.vs_vcpus = (unsigned)vcpus;
	spec.vs_memory_mib = (uint64_t)mem;
	spec.vs_disk_gib = (uint64_t)disk;
	*out = spec;
	return 0;
fail:
	vm_spec_clear(&spec);
	return -1;
}

json_object *
vm_spec_encode(const struct vm_spec *spec)
{
	json_object *o = command_new_object();

	jsonx_add_string(o, "name", spec->vs_name);
	jsonx_add_int(o, "vcpus", spec->vs_vcpus);
	jsonx_add_int(o, "memory_mib", (int64_t)spec->vs_memory_mib);
	jsonx_add_int(o, "disk_gib", (int64_t)spec->vs_disk_gib);
	if (spec->vs_kernel != NULL)
		jsonx_add_string(o, "kernel", spec->vs_kernel);
	if (spec->vs_initrd != NULL)
		jsonx_add_string(o, "initrd", spec->vs_initrd);
	if (spec->vs_cmdline != NULL)
		jsonx_add_string(o, "cmdline", spec->vs_cmdline);
	return o;
}

void
vm_spec_clear(struct vm_spec *spec)
{
	if (spec == NULL)
		return;
	free(spec->vs_kernel);
	free(spec->vs_initrd);
	free(spec->vs_cmdline);
	memset(spec, 0, sizeof(*spec));
}

static char *
command_strdup_null(const char *s)
{
	return s == NULL ? NULL : xstrdup(s);
}

void
vm_spec_copy(struct vm_spec *dst, const struct vm_spec *src)
{
	*dst = *src;
	dst->vs_kernel = command_strdup_null(src->vs_kernel);
	dst->vs_initrd = command_strdup_null(src->vs_initrd);
	dst->vs_cmdline = command_strdup_null(src->vs_cmdline);
}

/* ------------------------------------------------------------ per type */

static int
command_create_decode(json_object *args, struct command *cmd,
    struct carve_error *err)
{
	return vm_spec_decode(args, &cmd->cmd_args.create, err);
}

static json_object *
command_create_encode(const struct command *cmd)
{
	return vm_spec_encode(&cmd->cmd_args.create);
}

static void
command_create_copy(struct command *dst, const struct command *src)
{
	vm_spec_copy(&dst->cmd_args.create, &src->cmd_args.create);
}

static void
command_create_clear(struct command *cmd)
{
	vm_spec_clear(&cmd->cmd_args.create);
}

static const char *const command_stop_keys[] = { "force", "timeout_s", NULL };

static int
command_stop_decode(json_object *args, struct command *cmd,
    struct carve_error *err)
{
	struct command_stop_args *st = &cmd->cmd_args.stop;
	int64_t timeout = VM_STOP_TIMEOUT_DEFAULT;

	st->force = false;
	st->timeout_s = VM_STOP_TIMEOUT_DEFAULT;
	if (args == NULL)
		return 0;
	if (jsonx_check_object(args, "vm.stop args", command_stop_keys,
	    err) == -1 ||
	    jsonx_get_bool(args, "force", false, &st->force, err) == -1 ||
	    command_get_size(args, "timeout_s", false, 1, VM_STOP_TIMEOUT_MAX,
	    "seconds", &timeout, err) == -1)
		return -1;
	st->timeout_s = (unsigned)timeout;
	return 0;
}

static json_object *
command_stop_encode(const struct command *cmd)
{
	json_object *o = command_new_object();

	jsonx_add_bool(o, "force", cmd->cmd_args.stop.force);
	jsonx_add_int(o, "timeout_s", cmd->cmd_args.stop.timeout_s);
	return o;
}

static int
command_noargs_decode(json_object *args, struct command *cmd,
    struct carve_error *err)
{
	static const char *const none[] = { NULL };
	char what[64];

	if (args == NULL)
		return 0;
	snprintf(what, sizeof(what), "%s args", command_type_name(cmd->cmd_type));
	return jsonx_check_object(args, what, none, err);
}

static json_object *
command_noargs_encode(const struct command *cmd)
{
	(void)cmd;
	return command_new_object();
}

/* ------------------------------------------------------------ commands */

static const char *const command_keys[] = {
	"id", "type", "vm_id", "args", NULL
};

int
command_decode(json_object *obj, struct command *out, struct carve_error *err)
{
	const struct command_entry *ce;
	json_object *args = NULL;
	struct command cmd;

	memset(&cmd, 0, sizeof(cmd));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "command", command_keys, err) == -1 ||
	    command_get_uuid(obj, "id", cmd.cmd_id, err) == -1 ||
	    command_get_type(obj, "type", &cmd.cmd_type, err) == -1 ||
	    command_get_uuid(obj, "vm_id", cmd.cmd_vm_id, err) == -1 ||
	    jsonx_get_object(obj, "args", false, &args, err) == -1)
		return -1;
	ce = &command_table[cmd.cmd_type];
	if (args == NULL && ce->ce_args_required)
		return error_set(err, CARVE_EINVAL, "args is required for %s",
		    ce->ce_name);
	/* Decoders leave nothing allocated when they fail. */
	if (ce->ce_decode(args, &cmd, err) == -1)
		return -1;
	*out = cmd;
	return 0;
}

int
command_decode_buf(const char *buf, size_t len, struct command *out,
    struct carve_error *err)
{
	json_object *obj;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > COMMAND_MAX_BYTES)
		return error_set(err, CARVE_EINVAL,
		    "command is %zu bytes long; at most %d are allowed", len,
		    COMMAND_MAX_BYTES);
	if ((obj = jsonx_parse(buf, len, err)) == NULL)
		return -1;
	rc = command_decode(obj, out, err);
	json_object_put(obj);
	return rc;
}

json_object *
command_encode(const struct command *cmd)
{
	json_object *o = command_new_object();

	jsonx_add_string(o, "id", cmd->cmd_id);
	jsonx_add_string(o, "type", command_type_name(cmd->cmd_type));
	jsonx_add_string(o, "vm_id", cmd->cmd_vm_id);
	if ((int)cmd->cmd_type >= 0 && cmd->cmd_type < CMD_TYPE_MAX)
		json_object_object_add(o, "args",
		    command_table[cmd->cmd_type].ce_encode(cmd));
	return o;
}

void
command_clear(struct command *cmd)
{
	if (cmd == NULL)
		return;
	if ((int)cmd->cmd_type >= 0 && cmd->cmd_type < CMD_TYPE_MAX &&
	    command_table[cmd->cmd_type].ce_clear != NULL)
		command_table[cmd->cmd_type].ce_clear(cmd);
	memset(cmd, 0, sizeof(*cmd));
}

void
command_copy(struct command *dst, const struct command *src)
{
	*dst = *src;
	if ((int)src->cmd_type >= 0 && src->cmd_type < CMD_TYPE_MAX &&
	    command_table[src->cmd_type].ce_copy != NULL)
		command_table[src->cmd_type].ce_copy(dst, src);
}

/* ------------------------------------------------------------ results */

static const char *const result_keys[] = {
	"command_id", "type", "vm_id", "status", "error", "result",
	"accepted_at", "finished_at", NULL
};
static const char *const result_error_keys[] = { "code", "message", NULL };

json_object *
command_result_encode(const struct command_result *res)
{
	json_object *o = command_new_object(), *e;

	jsonx_add_string(o, "command_id", res->res_command_id);
	jsonx_add_string(o, "type", command_type_name(res->res_type));
	jsonx_add_string(o, "vm_id", res->res_vm_id);
	jsonx_add_string(o, "status", command_status_name(res->res_status));
	if (res->res_status == CMD_STATUS_FAILED) {
		e = command_new_object();
		jsonx_add_string(e, "code", error_code_name(res->res_error.code));
		jsonx_add_string(e, "message", res->res_error.message);
		json_object_object_add(o, "error", e);
	}
	if (res->res_data != NULL)
		json_object_object_add(o, "result", json_object_get(res->res_data));
	jsonx_add_int(o, "accepted_at", res->res_accepted_at_ms);
	jsonx_add_int(o, "finished_at", res->res_finished_at_ms);
	return o;
}

/* The "error" member of a failed result: {"code","message"}. */
static int
command_result_error_decode(json_object *e, struct carve_error *out,
    struct carve_error *err)
{
	char q[COMMAND_QUOTE_MAX + 8];
	const char *code, *msg;
	enum carve_errcode ec;

	if (jsonx_check_object(e, "error", result_error_keys, err) == -1 ||
	    jsonx_get_string(e, "code", true, 64, &code, err) == -1 ||
	    jsonx_get_string(e, "message", true, CARVE_ERRMSG_MAX - 1, &msg,
	    err) == -1)
		return -1;
	/* error_code_parse maps unknown names to internal_error; be exact. */
	ec = error_code_parse(code);
	if (ec == CARVE_OK || strcmp(error_code_name(ec), code) != 0) {
		text_quote(code, COMMAND_QUOTE_MAX, q, sizeof(q));
		return error_set(err, CARVE_EINVAL,
		    "error.code \"%s\" is not a known error code", q);
	}
	out->code = ec;
	snprintf(out->message, sizeof(out->message), "%s", msg);
	return 0;
}

int
command_result_decode(json_object *obj, struct command_result *out,
    struct carve_error *err)
{
	struct command_result res;
	json_object *e = NULL, *data = NULL;
	const char *status;
	int64_t t;

	memset(&res, 0, sizeof(res));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "command result", result_keys, err) == -1 ||
	    command_get_uuid(obj, "command_id", res.res_command_id, err) == -1 ||
	    command_get_type(obj, "type", &res.res_type, err) == -1 ||
	    command_get_uuid(obj, "vm_id", res.res_vm_id, err) == -1 ||
	    jsonx_get_string(obj, "status", true, 32, &status, err) == -1)
		return -1;
	/* "accepted" is a journal state, never a result on the wire. */
	if (strcmp(status, "succeeded") == 0)
		res.res_status = CMD_STATUS_SUCCEEDED;
	else if (strcmp(status, "failed") == 0)
		res.res_status = CMD_STATUS_FAILED;
	else
		return error_set(err, CARVE_EINVAL,
		    "status must be \"succeeded\" or \"failed\"");
	if (jsonx_get_object(obj, "error", false, &e, err) == -1)
		return -1;
	if (res.res_status == CMD_STATUS_FAILED && e == NULL)
		return error_set(err, CARVE_EINVAL,
		    "error is required when status is \"failed\"");
	if (res.res_status != CMD_STATUS_FAILED && e != NULL)
		return error_set(err, CARVE_EINVAL,
		    "error must be absent when status is \"%s\"", status);
	if (e != NULL &&
	    command_result_error_decode(e, &res.res_error, err) == -1)
		return -1;
	if (jsonx_get_object(obj, "result", false, &data, err) == -1)
		return -1;
	if (jsonx_get_int(obj, "accepted_at", true, 0, INT64_MAX, &t, err) == -1)
		return -1;
	res.res_accepted_at_ms = t;
	if (jsonx_get_int(obj, "finished_at", true, 0, INT64_MAX, &t, err) == -1)
		return -1;
	res.res_finished_at_ms = t;
	res.res_data = data != NULL ? json_object_get(data) : NULL;
	*out = res;
	return 0;
}

void
command_result_clear(struct command_result *res)
{
	if (res == NULL)
		return;
	json_object_put(res->res_data);
	memset(res, 0, sizeof(*res));
}
