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

#include <openssl/evp.h>

#include "api/command.h"
#include "api/vm.h"
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
static int command_resize_decode(json_object *, struct command *,
    struct carve_error *);
static json_object *command_resize_encode(const struct command *);
static int command_rebuild_decode(json_object *, struct command *,
    struct carve_error *);
static json_object *command_rebuild_encode(const struct command *);
static void command_rebuild_copy(struct command *, const struct command *);
static void command_rebuild_clear(struct command *);
static int command_noargs_decode(json_object *, struct command *,
    struct carve_error *);
static int command_snap_create_decode(json_object *, struct command *,
    struct carve_error *);
static json_object *command_snap_create_encode(const struct command *);
static int command_snap_name_decode(json_object *, struct command *,
    struct carve_error *);
static json_object *command_snap_name_encode(const struct command *);
static json_object *command_noargs_encode(const struct command *);
static int command_prepare_decode(json_object *, struct command *,
    struct carve_error *);
static json_object *command_prepare_encode(const struct command *);
static void command_prepare_copy(struct command *, const struct command *);
static void command_prepare_clear(struct command *);
static int command_migrate_decode(json_object *, struct command *,
    struct carve_error *);
static json_object *command_migrate_encode(const struct command *);
static void command_migrate_copy(struct command *, const struct command *);
static void command_migrate_clear(struct command *);

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
	[CMD_VM_RESIZE] = {
		.ce_name = "vm.resize",
		.ce_needs_vm = true,
		.ce_args_required = true,
		.ce_decode = command_resize_decode,
		.ce_encode = command_resize_encode,
	},
	[CMD_VM_MIGRATE_PREPARE] = {
		.ce_name = "vm.migrate.prepare",
		.ce_needs_vm = false,
		.ce_args_required = true,
		.ce_decode = command_prepare_decode,
		.ce_encode = command_prepare_encode,
		.ce_copy = command_prepare_copy,
		.ce_clear = command_prepare_clear,
	},
	[CMD_VM_MIGRATE] = {
		.ce_name = "vm.migrate",
		.ce_needs_vm = true,
		.ce_args_required = true,
		.ce_decode = command_migrate_decode,
		.ce_encode = command_migrate_encode,
		.ce_copy = command_migrate_copy,
		.ce_clear = command_migrate_clear,
	},
	[CMD_VM_MIGRATE_CANCEL] = {
		.ce_name = "vm.migrate.cancel",
		.ce_needs_vm = true,
		.ce_decode = command_noargs_decode,
		.ce_encode = command_noargs_encode,
	},
	[CMD_VM_MIGRATE_FINISH] = {
		.ce_name = "vm.migrate.finish",
		.ce_needs_vm = true,
		.ce_decode = command_noargs_decode,
		.ce_encode = command_noargs_encode,
	},
	[CMD_VM_REBUILD] = {
		.ce_name = "vm.rebuild",
		.ce_needs_vm = true,
		.ce_decode = command_rebuild_decode,
		.ce_encode = command_rebuild_encode,
		.ce_copy = command_rebuild_copy,
		.ce_clear = command_rebuild_clear,
	},
	[CMD_VM_SNAPSHOT_CREATE] = {
		.ce_name = "vm.snapshot.create",
		.ce_needs_vm = true,
		.ce_args_required = true,
		.ce_decode = command_snap_create_decode,
		.ce_encode = command_snap_create_encode,
	},
	[CMD_VM_SNAPSHOT_REVERT] = {
		.ce_name = "vm.snapshot.revert",
		.ce_needs_vm = true,
		.ce_args_required = true,
		.ce_decode = command_snap_name_decode,
		.ce_encode = command_snap_name_encode,
	},
	[CMD_VM_SNAPSHOT_DELETE] = {
		.ce_name = "vm.snapshot.delete",
		.ce_needs_vm = true,
		.ce_args_required = true,
		.ce_decode = command_snap_name_decode,
		.ce_encode = command_snap_name_encode,
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

const struct vm_spec *
command_spec(const struct command *cmd)
{
	switch (cmd->cmd_type) {
	case CMD_VM_CREATE:
		return &cmd->cmd_args.create;
	case CMD_VM_MIGRATE_PREPARE:
		return &cmd->cmd_args.migrate_prepare.mp_spec;
	default:
		return NULL;
	}
}

/* ------------------------------------------------------------ fields */

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

/* ------------------------------------------------------------ image */

static const char *const vm_image_format_names[] = {
	[VM_IMAGE_NONE] = "none",
	[VM_IMAGE_QCOW2] = "qcow2",
	[VM_IMAGE_RAW] = "raw",
};

const char *
vm_image_format_name(enum vm_image_format f)
{
	if ((int)f < 0 || f > VM_IMAGE_RAW)
		return "unknown";
	return vm_image_format_names[f];
}

int
vm_image_format_parse(const char *name, enum vm_image_format *out)
{
	for (int i = VM_IMAGE_QCOW2; i <= VM_IMAGE_RAW; i++)
		if (strcmp(vm_image_format_names[i], name) == 0) {
			*out = (enum vm_image_format)i;
			return 0;
		}
	return -1;
}

/*
 * file:///abs/path. The path is used as it is written (no percent
 * decoding, so '%' is refused) and must not climb or wander: no "." or ".."
 * segment and no "//".
 */
static int
command_check_file_url(const char *path, struct carve_error *err)
{
	const char *seg;

	if (path[0] != '/' || path[1] == '\0')
		return error_set(err, CARVE_EINVAL, "image.url: a file:// URL "
		    "must name an absolute path (file:///path/to/image)");
	if (strchr(path, '%') != NULL || strchr(path, '?') != NULL ||
	    strchr(path, '#') != NULL)
		return error_set(err, CARVE_EINVAL, "image.url: a file:// path "
		    "must not contain '%%', '?' or '#'");
	for (seg = path; seg != NULL && *seg != '\0'; ) {
		const char *next = strchr(seg + 1, '/');
		size_t n = (next != NULL ? (size_t)(next - seg) :
		    strlen(seg)) - 1;

		if (n == 0 && next != NULL)
			return error_set(err, CARVE_EINVAL, "image.url: a "
			    "file:// path must not contain \"//\"");
		if ((n == 1 && seg[1] == '.') ||
		    (n == 2 && seg[1] == '.' && seg[2] == '.'))
			return error_set(err, CARVE_EINVAL, "image.url: a "
			    "file:// path must not contain \".\" or \"..\" "
			    "segments");
		seg = next;
	}
	if (path[strlen(path) - 1] == '/')
		return error_set(err, CARVE_EINVAL, "image.url: a file:// URL "
		    "must name a file, not a directory");
	return 0;
}

static int
command_check_url(const char *url, struct carve_error *err)
{
	char q[COMMAND_QUOTE_MAX + 8];
	const char *rest;

	for (size_t i = 0; url[i] != '\0'; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' ||
		    c == '<' || c == '>')
			return error_set(err, CARVE_EINVAL, "image.url may only "
			    "contain printable ASCII without blanks, quotes, "
			    "backslashes or angle brackets (found byte 0x%02x "
			    "at offset %zu)", c, i);
	}
	if (strncmp(url, "file://", 7) == 0)
		return command_check_file_url(url + 7, err);
	if (strncmp(url, "https://", 8) == 0)
		rest = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		rest = url + 7;
	else {
		text_quote(url, COMMAND_QUOTE_MAX, q, sizeof(q));
		return error_set(err, CARVE_EINVAL, "image.url \"%s\" must "
		    "start with https://, http:// or file://", q);
	}
	if (*rest == '\0' || *rest == '/' || *rest == '?' || *rest == '#')
		return error_set(err, CARVE_EINVAL,
		    "image.url must name a host");
	return 0;
}

int
vm_image_parse(const char *url, const char *sum, const char *fmt,
    struct vm_image *out, struct carve_error *err)
{
	char q[COMMAND_QUOTE_MAX + 8];
	char hex[65];

	memset(out, 0, sizeof(*out));
	if (strlen(url) > VM_IMAGE_URL_MAX)
		return error_set(err, CARVE_EINVAL, "image.url is longer than "
		    "%d bytes", VM_IMAGE_URL_MAX);
	if (command_check_url(url, err) == -1)
		return -1;
	if (strlen(sum) != 64)
		return error_set(err, CARVE_EINVAL,
		    "image.sha256 must be 64 hexadecimal digits");
	for (size_t i = 0; i < 64; i++) {
		char c = sum[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		    (c >= 'A' && c <= 'F')))
			return error_set(err, CARVE_EINVAL,
			    "image.sha256 must be 64 hexadecimal digits");
		hex[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
	}
	hex[64] = '\0';
	if (vm_image_format_parse(fmt, &out->vi_format) == -1) {
		text_quote(fmt, COMMAND_QUOTE_MAX, q, sizeof(q));
		return error_set(err, CARVE_EINVAL, "image.format \"%s\" must "
		    "be \"qcow2\" or \"raw\"", q);
	}
	memcpy(out->vi_sha256, hex, sizeof(out->vi_sha256));
	out->vi_url = xstrdup(url);
	return 0;
}

void
vm_image_clear(struct vm_image *img)
{
	if (img == NULL)
		return;
	free(img->vi_url);
	memset(img, 0, sizeof(*img));
}

void
vm_image_copy(struct vm_image *dst, const struct vm_image *src)
{
	*dst = *src;
	if (src->vi_url != NULL)
		dst->vi_url = xstrdup(src->vi_url);
}

static const char *const vm_image_keys[] = { "url", "sha256", "format", NULL };

int
vm_image_get(json_object *args, struct vm_image *out,
    struct carve_error *err)
{
	json_object *img = NULL;
	const char *url, *sum, *fmt;
	int rc;

	if ((rc = jsonx_get_object(args, "image", false, &img, err)) != 1)
		return rc;
	if (jsonx_check_object(img, "image", vm_image_keys, err) == -1 ||
	    jsonx_get_string(img, "url", true, VM_IMAGE_URL_MAX, &url,
	    err) == -1 ||
	    jsonx_get_string(img, "sha256", true, SIZE_MAX, &sum, err) == -1 ||
	    jsonx_get_string(img, "format", true, SIZE_MAX, &fmt, err) == -1)
		return -1;
	if (vm_image_parse(url, sum, fmt, out, err) == -1)
		return -1;
	return 1;
}

json_object *
vm_image_encode(const struct vm_image *img)
{
	json_object *o = command_new_object();

	jsonx_add_string(o, "url", img->vi_url);
	jsonx_add_string(o, "sha256", img->vi_sha256);
	jsonx_add_string(o, "format", vm_image_format_name(img->vi_format));
	return o;
}

/* ------------------------------------------------------------ data disks */

static const char *const vm_data_disk_keys[] = { "size_gib", NULL };

/*
 * "data_disks": [{"size_gib": N}, ...]. The messages name the entry
 * ("data_disks[1].size_gib ..."), which jsonx's getters could not.
 */
int
vm_data_disks_get(json_object *args, struct vm_data_disk *out, size_t *nout,
    struct carve_error *err)
{
	json_object *arr, *d, *v;
	char what[48];
	size_t n;
	int64_t size;

	*nout = 0;
	if (!json_object_object_get_ex(args, "data_disks", &arr) || arr == NULL)
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return error_set(err, CARVE_EINVAL,
		    "data_disks must be an array of objects");
	n = json_object_array_length(arr);
	if (n > VM_DATA_DISKS_MAX)
		return error_set(err, CARVE_EINVAL, "data_disks has %zu entries; "
		    "at most %d are allowed", n, VM_DATA_DISKS_MAX);
	for (size_t i = 0; i < n; i++) {
		d = json_object_array_get_idx(arr, i);
		snprintf(what, sizeof(what), "data_disks[%zu]", i);
		if (!json_object_is_type(d, json_type_object))
			return error_set(err, CARVE_EINVAL,
			    "%s must be an object", what);
		if (jsonx_check_object(d, what, vm_data_disk_keys, err) == -1)
			return -1;
		if (!json_object_object_get_ex(d, "size_gib", &v) || v == NULL)
			return error_set(err, CARVE_EINVAL,
			    "%s.size_gib is required", what);
		if (!json_object_is_type(v, json_type_int))
			return error_set(err, CARVE_EINVAL,
			    "%s.size_gib must be an integer", what);
		/* Values above INT64_MAX read as INT64_MAX: still too large. */
		size = json_object_get_int64(v);
		if (size < 1)
			return error_set(err, CARVE_EINVAL,
			    "%s.size_gib must be at least 1 GiB", what);
		if (size > (int64_t)VM_DISK_GIB_MAX)
			return error_set(err, CARVE_EINVAL,
			    "%s.size_gib must be at most %llu GiB", what,
			    (unsigned long long)VM_DISK_GIB_MAX);
		out[i].dd_size_gib = (uint64_t)size;
	}
	*nout = n;
	return n > 0 ? 1 : 0;
}

json_object *
vm_data_disks_encode(const struct vm_data_disk *disks, size_t n)
{
	json_object *arr = json_object_new_array();

	if (arr == NULL) {
		fprintf(stderr, "level=fatal comp=command msg=\"out of memory\"\n");
		abort();
	}
	for (size_t i = 0; i < n && i < VM_DATA_DISKS_MAX; i++) {
		json_object *d = command_new_object();

		jsonx_add_int(d, "size_gib", (int64_t)disks[i].dd_size_gib);
		json_object_array_add(arr, d);
	}
	return arr;
}

uint64_t
vm_spec_disk_gib_total(const struct vm_spec *spec)
{
	uint64_t sum = spec->vs_disk_gib;

	/* At most 9 x VM_DISK_GIB_MAX: no overflow. */
	for (size_t i = 0; i < spec->vs_ndata_disks && i < VM_DATA_DISKS_MAX;
	    i++)
		sum += spec->vs_data_disks[i].dd_size_gib;
	return sum;
}

/* ------------------------------------------------------------ cloud-init */

static int
command_check_ssh_key(const char *k, size_t i, struct carve_error *err)
{
	size_t len = strlen(k);

	if (len > VM_SSH_KEY_MAX)
		return error_set(err, CARVE_EINVAL, "ssh_authorized_keys[%zu] is "
		    "%zu bytes long; at most %d are allowed", i, len,
		    VM_SSH_KEY_MAX);
	for (size_t j = 0; j < len; j++) {
		unsigned char c = (unsigned char)k[j];
		/* A key is one line of YAML and authorized_keys: nothing
		 * that could end or escape a scalar. */
		if (c < 0x20 || c > 0x7e || c == '"' || c == '\'' ||
		    c == '\\')
			return error_set(err, CARVE_EINVAL,
			    "ssh_authorized_keys[%zu] must be one line of "
			    "printable ASCII without quotes or backslashes "
			    "(found byte 0x%02x at offset %zu)", i, c, j);
	}
	if (strncmp(k, "ssh-", 4) != 0 && strncmp(k, "ecdsa-", 6) != 0 &&
	    strncmp(k, "sk-", 3) != 0)
		return error_set(err, CARVE_EINVAL, "ssh_authorized_keys[%zu] "
		    "must be a public key starting with ssh-, ecdsa- or sk-", i);
	if (strchr(k, ' ') == NULL || k[len - 1] == ' ')
		return error_set(err, CARVE_EINVAL, "ssh_authorized_keys[%zu] "
		    "must be \"TYPE KEY [COMMENT]\"", i);
	return 0;
}

static void
command_free_keys(char **keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

static int
command_get_ssh_keys(json_object *args, char ***out, size_t *nout,
    struct carve_error *err)
{
	json_object *arr;
	char **keys;
	size_t n;

	if (!json_object_object_get_ex(args, "ssh_authorized_keys", &arr) ||
	    arr == NULL)
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return error_set(err, CARVE_EINVAL,
		    "ssh_authorized_keys must be an array of strings");
	n = json_object_array_length(arr);
	if (n > VM_SSH_KEYS_MAX)
		return error_set(err, CARVE_EINVAL, "ssh_authorized_keys has %zu "
		    "keys; at most %d are allowed", n, VM_SSH_KEYS_MAX);
	if (n == 0)
		return 0;
	keys = xcalloc(n, sizeof(*keys));
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		const char *k;

		if (!json_object_is_type(v, json_type_string)) {
			command_free_keys(keys, i);
			return error_set(err, CARVE_EINVAL,
			    "ssh_authorized_keys[%zu] must be a string", i);
		}
		k = json_object_get_string(v);
		if ((size_t)json_object_get_string_len(v) != strlen(k)) {
			command_free_keys(keys, i);
			return error_set(err, CARVE_EINVAL,
			    "ssh_authorized_keys[%zu] contains a NUL byte", i);
		}
		if (command_check_ssh_key(k, i, err) == -1) {
			command_free_keys(keys, i);
			return -1;
		}
		keys[i] = xstrdup(k);
	}
	*out = keys;
	*nout = n;
	return 1;
}

/*
 * cloud-config is YAML, which admits no control characters but tab, LF and
 * CR; refusing the rest here keeps them out of the seed image.
 */
static int
command_get_user_data(json_object *args, char **out, struct carve_error *err)
{
	const unsigned char *p;
	const char *s;
	size_t left, n;
	int rc;

	if ((rc = jsonx_get_string(args, "user_data", false, VM_USER_DATA_MAX,
	    &s, err)) != 1)
		return rc;
	if (*s == '\0')
		return error_set(err, CARVE_EINVAL, "user_data must not be empty");
	p = (const unsigned char *)s;
	left = strlen(s);
	while (left > 0) {
		if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
			return error_set(err, CARVE_EINVAL, "user_data may not "
			    "contain control characters (found byte 0x%02x at "
			    "offset %zu)", *p, (size_t)(p -
			    (const unsigned char *)s));
		if ((n = text_utf8_seq(p, left)) == 0)
			return error_set(err, CARVE_EINVAL, "user_data is not "
			    "valid UTF-8 (at byte %zu)", (size_t)(p -
			    (const unsigned char *)s));
		p += n;
		left -= n;
	}
	*out = xstrdup(s);
	return 1;
}

/* ------------------------------------------------------------ networks */

static const char *const vm_nic_kind_names[] = {
	[VM_NIC_NETWORK] = "network",
	[VM_NIC_BRIDGE] = "bridge",
};

const char *
vm_nic_kind_name(enum vm_nic_kind kind)
{
	if ((int)kind < 0 || kind > VM_NIC_BRIDGE)
		return "unknown";
	return vm_nic_kind_names[kind];
}

static int
command_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
vm_mac_parse(const char *s, const char *what, char out[VM_MAC_LEN + 1],
    struct carve_error *err)
{
	char q[COMMAND_QUOTE_MAX + 8], mac[VM_MAC_LEN + 1];
	unsigned char oct[6];

	text_quote(s, COMMAND_QUOTE_MAX, q, sizeof(q));
	if (strlen(s) != VM_MAC_LEN)
		goto syntax;
	for (size_t i = 0; i < 6; i++) {
		const char *p = s + i * 3;
		int hi = command_hex(p[0]), lo = command_hex(p[1]);

		if (hi < 0 || lo < 0 || (i < 5 && p[2] != ':'))
			goto syntax;
		oct[i] = (unsigned char)(hi << 4 | lo);
	}
	/* Guests drop frames to a group address as their own source. */
	if (oct[0] & 0x01)
		return error_set(err, CARVE_EINVAL, "%s \"%s\" is a multicast "
		    "address (the first octet must be even)", what, q);
	if ((oct[0] | oct[1] | oct[2] | oct[3] | oct[4] | oct[5]) == 0)
		return error_set(err, CARVE_EINVAL, "%s must not be all zero",
		    what);
	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", oct[0],
	    oct[1], oct[2], oct[3], oct[4], oct[5]);
	memcpy(out, mac, sizeof(mac));
	return 0;
syntax:
	return error_set(err, CARVE_EINVAL, "%s \"%s\" must be six pairs of "
	    "hexadecimal digits separated by ':' (e.g. 52:54:00:12:34:56)",
	    what, q);
}

void
vm_mac_derive(const char *vm_id, size_t index, char out[VM_MAC_LEN + 1])
{
	char in[IDS_UUID_LEN + 32], id[IDS_UUID_LEN + 1];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int n;

	/* The caller's id is valid; the same id in either case is one VM. */
	if (ids_uuid_valid(vm_id))
		ids_uuid_normalize(vm_id, id);
	else
		snprintf(id, sizeof(id), "%s", vm_id);
	n = snprintf(in, sizeof(in), "%s/%zu", id, index);
	if (n < 0 || (size_t)n >= sizeof(in) ||
	    EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen < 3) {
		fprintf(stderr, "level=fatal comp=command msg=\"SHA-256 "
		    "failed\"\n");
		abort();
	}
	snprintf(out, VM_MAC_LEN + 1, "52:54:00:%02x:%02x:%02x", md[0], md[1],
	    md[2]);
}

void
vm_spec_derive_macs(struct vm_spec *spec, const char *vm_id)
{
	for (size_t i = 0; i < spec->vs_nnics; i++)
		if (spec->vs_nics[i].vn_mac[0] == '\0')
			vm_mac_derive(vm_id, i, spec->vs_nics[i].vn_mac);
}

static const char *const vm_nic_keys[] = { "network", "bridge", "mac", NULL };

/*
 * One entry of "networks": exactly one of network/bridge, maybe a mac.
 * Messages name the entry: "networks[1]: bridge is 16 bytes long; ...".
 */
static int
command_get_nic(json_object *o, size_t i, struct vm_nic *out,
    struct carve_error *err)
{
	struct carve_error lerr = { 0 };
	const char *key, *name = NULL, *mac = NULL;
	char what[32];
	int has_net, has_br;

	snprintf(what, sizeof(what), "networks[%zu]", i);
	if (jsonx_check_object(o, what, vm_nic_keys, err) == -1)
		return -1;
	has_net = json_object_object_get_ex(o, "network", NULL);
	has_br = json_object_object_get_ex(o, "bridge", NULL);
	if (has_net == has_br)
		return error_set(err, CARVE_EINVAL, "%s must have exactly one "
		    "of \"network\" and \"bridge\"", what);
	out->vn_kind = has_net ? VM_NIC_NETWORK : VM_NIC_BRIDGE;
	key = vm_nic_kind_name(out->vn_kind);
	if (jsonx_get_string(o, key, true, IDS_NAME_MAX, &name, &lerr) == -1 ||
	    ids_name_check(name, key, &lerr) == -1)
		goto fail;
	/* The kernel's limit on interface names (IFNAMSIZ with its NUL). */
	if (out->vn_kind == VM_NIC_BRIDGE &&
	    strlen(name) > VM_BRIDGE_NAME_MAX) {
		error_set(&lerr, CARVE_EINVAL, "bridge is %zu bytes long; a "
		    "bridge name has at most %d", strlen(name),
		    VM_BRIDGE_NAME_MAX);
		goto fail;
	}
	snprintf(out->vn_name, sizeof(out->vn_name), "%s", name);
	out->vn_mac[0] = '\0';
	if (jsonx_get_string(o, "mac", false, SIZE_MAX, &mac, &lerr) == -1 ||
	    (mac != NULL && vm_mac_parse(mac, "mac", out->vn_mac, &lerr) == -1))
		goto fail;
	return 0;
fail:
	return error_set(err, lerr.code, "%s: %s", what, lerr.message);
}

/* Writes into nics (VM_NICS_MAX entries) only what the caller keeps. */
static int
command_get_nics(json_object *args, struct vm_nic *nics, size_t *nout,
    struct carve_error *err)
{
	struct vm_nic tmp[VM_NICS_MAX];
	json_object *arr;
	size_t n;

	if (!json_object_object_get_ex(args, "networks", &arr) || arr == NULL)
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return error_set(err, CARVE_EINVAL,
		    "networks must be an array of objects");
	n = json_object_array_length(arr);
	if (n > VM_NICS_MAX)
		return error_set(err, CARVE_EINVAL, "networks has %zu entries; "
		    "at most %d are allowed", n, VM_NICS_MAX);
	memset(tmp, 0, sizeof(tmp));
	for (size_t i = 0; i < n; i++) {
		if (command_get_nic(json_object_array_get_idx(arr, i), i,
		    &tmp[i], err) == -1)
			return -1;
		/* Two NICs with one MAC confuse every switch they reach. */
		for (size_t j = 0; j < i && tmp[i].vn_mac[0] != '\0'; j++)
			if (strcmp(tmp[i].vn_mac, tmp[j].vn_mac) == 0)
				return error_set(err, CARVE_EINVAL,
				    "networks[%zu]: mac %s is also the mac of "
				    "networks[%zu]", i, tmp[i].vn_mac, j);
	}
	memcpy(nics, tmp, sizeof(tmp));
	*nout = n;
	return n > 0 ? 1 : 0;
}

static json_object *
command_new_array(void)
{
	json_object *a = json_object_new_array();

	if (a == NULL) {
		fprintf(stderr,
		    "level=fatal comp=command msg=\"out of memory\"\n");
		abort();
	}
	return a;
}

json_object *
vm_nics_encode(const struct vm_nic *nics, size_t n)
{
	json_object *arr = command_new_array();

	for (size_t i = 0; i < n; i++) {
		json_object *o = command_new_object();

		jsonx_add_string(o, vm_nic_kind_name(nics[i].vn_kind),
		    nics[i].vn_name);
		if (nics[i].vn_mac[0] != '\0')
			jsonx_add_string(o, "mac", nics[i].vn_mac);
		json_object_array_add(arr, o);
	}
	return arr;
}

/* ------------------------------------------------------------ vm spec */

static const char *const vm_spec_keys[] = {
	"name", "vcpus", "memory_mib", "disk_gib", "kernel", "initrd",
	"cmdline", "image", "ssh_authorized_keys", "user_data", "networks",
	"data_disks",
	NULL
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
	    command_get_cmdline(args, "cmdline", &spec.vs_cmdline, err) == -1 ||
	    vm_image_get(args, &spec.vs_image, err) == -1 ||
	    command_get_ssh_keys(args, &spec.vs_ssh_keys, &spec.vs_nssh_keys,
	    err) == -1 ||
	    command_get_user_data(args, &spec.vs_user_data, err) == -1 ||
	    command_get_nics(args, spec.vs_nics, &spec.vs_nnics, err) == -1 ||
	    vm_data_disks_get(args, spec.vs_data_disks, &spec.vs_ndata_disks,
	    err) == -1)
		goto fail;
	/* cloud-init reads them from the seed that comes with an image. */
	if (spec.vs_image.vi_url == NULL && spec.vs_nssh_keys > 0) {
		error_set(err, CARVE_EINVAL, "ssh_authorized_keys requires image");
		goto fail;
	}
	if (spec.vs_image.vi_url == NULL && spec.vs_user_data != NULL) {
		error_set(err, CARVE_EINVAL, "user_data requires image");
		goto fail;
	}
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
	if (spec->vs_image.vi_url != NULL)
		json_object_object_add(o, "image",
		    vm_image_encode(&spec->vs_image));
	if (spec->vs_nssh_keys > 0) {
		json_object *arr = json_object_new_array();

		if (arr == NULL) {
			fprintf(stderr,
			    "level=fatal comp=command msg=\"out of memory\"\n");
			abort();
		}
		for (size_t i = 0; i < spec->vs_nssh_keys; i++)
			json_object_array_add(arr,
			    json_object_new_string(spec->vs_ssh_keys[i]));
		json_object_object_add(o, "ssh_authorized_keys", arr);
	}
	if (spec->vs_user_data != NULL)
		jsonx_add_string(o, "user_data", spec->vs_user_data);
	if (spec->vs_nnics > 0)
		json_object_object_add(o, "networks",
		    vm_nics_encode(spec->vs_nics, spec->vs_nnics));
	if (spec->vs_ndata_disks > 0)
		json_object_object_add(o, "data_disks",
		    vm_data_disks_encode(spec->vs_data_disks,
		    spec->vs_ndata_disks));
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
	vm_image_clear(&spec->vs_image);
	command_free_keys(spec->vs_ssh_keys, spec->vs_nssh_keys);
	free(spec->vs_user_data);
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
	vm_image_copy(&dst->vs_image, &src->vs_image);
	dst->vs_ssh_keys = NULL;
	if (src->vs_nssh_keys > 0) {
		dst->vs_ssh_keys = xcalloc(src->vs_nssh_keys, sizeof(char *));
		for (size_t i = 0; i < src->vs_nssh_keys; i++)
			dst->vs_ssh_keys[i] = xstrdup(src->vs_ssh_keys[i]);
	}
	dst->vs_user_data = command_strdup_null(src->vs_user_data);
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

static const char *const command_resize_keys[] = { "vcpus", "memory_mib",
	NULL };

static int
command_resize_decode(json_object *args, struct command *cmd,
    struct carve_error *err)
{
	struct command_resize_args *ra = &cmd->cmd_args.resize;
	int64_t vcpus = 0, mem = 0;
	int rv, rm;

	memset(ra, 0, sizeof(*ra));
	if (jsonx_check_object(args, "vm.resize args", command_resize_keys,
	    err) == -1 ||
	    (rv = jsonx_get_int(args, "vcpus", false, 1, VM_VCPUS_MAX, &vcpus,
	    err)) == -1 ||
	    (rm = command_get_size(args, "memory_mib", false, VM_MEMORY_MIB_MIN,
	    (int64_t)VM_MEMORY_MIB_MAX, "MiB", &mem, err)) == -1)
		return -1;
	/* A resize that names nothing to change is a mistake, not a no-op. */
	if (rv == 0 && rm == 0)
		return error_set(err, CARVE_EINVAL,
		    "vm.resize needs vcpus, memory_mib or both");
	ra->vcpus = (unsigned)vcpus;
	ra->memory_mib = (uint64_t)mem;
	return 0;
}

static json_object *
command_resize_encode(const struct command *cmd)
{
	const struct command_resize_args *ra = &cmd->cmd_args.resize;
	json_object *o = command_new_object();

	if (ra->vcpus != 0)
		jsonx_add_int(o, "vcpus", ra->vcpus);
	if (ra->memory_mib != 0)
		jsonx_add_int(o, "memory_mib", (int64_t)ra->memory_mib);
	return o;
}

static const char *const command_rebuild_keys[] = { "image", NULL };

static int
command_rebuild_decode(json_object *args, struct command *cmd,
    struct carve_error *err)
{
	struct vm_image *img = &cmd->cmd_args.rebuild.image;

	memset(img, 0, sizeof(*img));
	if (args == NULL)
		return 0;
	if (jsonx_check_object(args, "vm.rebuild args", command_rebuild_keys,
	    err) == -1 ||
	    vm_image_get(args, img, err) == -1)
		return -1;
	return 0;
}

static json_object *
command_rebuild_encode(const struct command *cmd)
{
	const struct vm_image *img = &cmd->cmd_args.rebuild.image;
	json_object *o = command_new_object();

	if (img->vi_url != NULL)
		json_object_object_add(o, "image", vm_image_encode(img));
	return o;
}

static void
command_rebuild_copy(struct command *dst, const struct command *src)
{
	vm_image_copy(&dst->cmd_args.rebuild.image,
	    &src->cmd_args.rebuild.image);
}

static void
command_rebuild_clear(struct command *cmd)
{
	vm_image_clear(&cmd->cmd_args.rebuild.image);
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

/* ------------------------------------------------------------ migration */

static int
command_prepare_decode(json_object *args, struct command *cmd,
    struct carve_error *err)
{
	static const char *const keys[] = { "spec", "source_node", NULL };
	struct command_migrate_prepare_args *mp = &cmd->cmd_args.migrate_prepare;
	struct carve_error serr = { 0 };
	json_object *spec;
	const char *src;

	if (jsonx_check_object(args, "vm.migrate.prepare args", keys,
	    err) == -1 ||
	    jsonx_get_string(args, "source_node", true, IDS_NAME_MAX, &src,
	    err) == -1 ||
	    ids_name_check(src, "source_node", err) == -1 ||
	    jsonx_get_object(args, "spec", true, &spec, err) == -1)
		return -1;
	if (vm_spec_decode(spec, &mp->mp_spec, &serr) == -1)
		return error_set(err, serr.code, "spec: %s", serr.message);
	snprintf(mp->mp_source_node, sizeof(mp->mp_source_node), "%s", src);
	return 0;
}

static json_object *
command_prepare_encode(const struct command *cmd)
{
	const struct command_migrate_prepare_args *mp =
	    &cmd->cmd_args.migrate_prepare;
	json_object *o = command_new_object();

	json_object_object_add(o, "spec", vm_spec_encode(&mp->mp_spec));
	jsonx_add_string(o, "source_node", mp->mp_source_node);
	return o;
}

static void
command_prepare_copy(struct command *dst, const struct command *src)
{
	vm_spec_copy(&dst->cmd_args.migrate_prepare.mp_spec,
	    &src->cmd_args.migrate_prepare.mp_spec);
}

static void
command_prepare_clear(struct command *cmd)
{
	vm_spec_clear(&cmd->cmd_args.migrate_prepare.mp_spec);
}

/*
 * An absolute path handed to the hypervisor on another host: printable
 * ASCII (it goes into domain XML and logs), no "." or ".." segment, no
 * "//", not a directory.
 */
static int
command_check_path(const char *key, const char *path, struct carve_error *err)
{
	const char *seg;

	if (path[0] != '/' || path[1] == '\0')
		return error_set(err, CARVE_EINVAL,
		    "%s must be an absolute path to a file", key);
	for (size_t i = 0; path[i] != '\0'; i++) {
		unsigned char c = (unsigned char)path[i];
		if (c < 0x20 || c > 0x7e)
			return error_set(err, CARVE_EINVAL, "%s may only contain "
			    "printable ASCII (found byte 0x%02x at offset %zu)",
			    key, c, i);
	}
	for (seg = path; seg != NULL && *seg != '\0'; ) {
		const char *next = strchr(seg + 1, '/');
		size_t n = (next != NULL ? (size_t)(next - seg) :
		    strlen(seg)) - 1;

		if (n == 0 && next != NULL)
			return error_set(err, CARVE_EINVAL,
			    "%s must not contain \"//\"", key);
		if ((n == 1 && seg[1] == '.') ||
		    (n == 2 && seg[1] == '.' && seg[2] == '.'))
			return error_set(err, CARVE_EINVAL, "%s must not "
			    "contain \".\" or \"..\" segments", key);
		seg = next;
	}
	if (path[strlen(path) - 1] == '/')
		return error_set(err, CARVE_EINVAL,
		    "%s must name a file, not a directory", key);
	return 0;
}

/* The characters a URI may use here: printable, no blank or quoting. */
static int
command_check_uri_chars(const char *key, const char *uri,
    struct carve_error *err)
{
	for (size_t i = 0; uri[i] != '\0'; i++) {
		unsigned char c = (unsigned char)uri[i];
		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\'' ||
		    c == '\\' || c == '<' || c == '>' || c == '`')
			return error_set(err, CARVE_EINVAL, "%s may only contain "
			    "printable ASCII without blanks, quotes, backslashes "
			    "or angle brackets (found byte 0x%02x at offset %zu)",
			    key, c, i);
	}
	return 0;
}

/*
 * The destination's libvirt URI, which the source's libvirtd connects to
 * (peer to peer). Only qemu transports that open a connection are taken,
 * and only query parameters that say where and with which credentials:
 * libvirt's "command" and "netcat" (ssh, ext) run programs, "no_verify"
 * turns certificate checks off.
 */
static int
command_check_libvirt_uri(const char *key, const char *uri,
    struct carve_error *err)
{
	static const char *const schemes[] = { "qemu", "qemu+tls", "qemu+tcp",
	    "qemu+ssh", "qemu+libssh", "qemu+libssh2", "qemu+unix", NULL };
	static const char *const params[] = { "socket", "pkipath", "keyfile",
	    "known_hosts", "sshauth", "no_tty", NULL };
	const char *sep, *query, *p;
	size_t n;
	bool ok = false;

	if (command_check_uri_chars(key, uri, err) == -1)
		return -1;
	if ((sep = strstr(uri, "://")) == NULL)
		return error_set(err, CARVE_EINVAL, "%s must be a libvirt URI "
		    "(qemu+tls://HOST/system)", key);
	n = (size_t)(sep - uri);
	for (const char *const *s = schemes; *s != NULL; s++)
		if (strlen(*s) == n && strncmp(uri, *s, n) == 0)
			ok = true;
	if (!ok)
		return error_set(err, CARVE_EINVAL, "%s: transport \"%.*s\" is "
		    "not allowed (qemu, qemu+tls, qemu+tcp, qemu+ssh, "
		    "qemu+libssh, qemu+libssh2 or qemu+unix)", key,
		    (int)(n < COMMAND_QUOTE_MAX ? n : COMMAND_QUOTE_MAX), uri);
	if (strchr(uri, '#') != NULL)
		return error_set(err, CARVE_EINVAL,
		    "%s must not have a fragment", key);
	if (strstr(sep + 3, "/system") == NULL)
		return error_set(err, CARVE_EINVAL, "%s must name the system "
		    "instance (.../system)", key);
	if ((query = strchr(uri, '?')) == NULL)
		return 0;
	for (p = query + 1; *p != '\0'; ) {
		const char *amp = strchr(p, '&'), *eq;
		size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);

		eq = memchr(p, '=', len);
		n = eq != NULL ? (size_t)(eq - p) : len;
		ok = false;
		for (const char *const *k = params; *k != NULL; k++)
			if (strlen(*k) == n && strncmp(p, *k, n) == 0)
				ok = true;
		/* Printable already (command_check_uri_chars). */
		if (!ok)
			return error_set(err, CARVE_EINVAL, "%s: parameter "
			    "\"%.*s\" is not allowed (socket, pkipath, keyfile, "
			    "known_hosts, sshauth, no_tty)", key,
			    (int)(n < 32 ? n : 32), p);
		if (amp == NULL)
			break;
		p = amp + 1;
	}
	return 0;
}

/* tcp://HOST[:PORT] with HOST a name, an IPv4 address or [IPv6]. */
static int
command_check_migrate_uri(const char *key, const char *uri,
    struct carve_error *err)
{
	const char *h, *end, *port = NULL;

	if (command_check_uri_chars(key, uri, err) == -1)
		return -1;
	if (strncmp(uri, "tcp://", 6) != 0)
		return error_set(err, CARVE_EINVAL,
		    "%s must be tcp://HOST[:PORT]", key);
	h = uri + 6;
	if (*h == '[') {
		if ((end = strchr(h, ']')) == NULL || end == h + 1)
			return error_set(err, CARVE_EINVAL,
			    "%s: an IPv6 address must be in brackets", key);
		for (const char *c = h + 1; c < end; c++)
			if (!((*c >= '0' && *c <= '9') || (*c >= 'a' &&
			    *c <= 'f') || (*c >= 'A' && *c <= 'F') ||
			    *c == ':' || *c == '.'))
				return error_set(err, CARVE_EINVAL,
				    "%s: bad IPv6 address", key);
		end++;
	} else {
		for (end = h; (*end >= 'a' && *end <= 'z') || (*end >= 'A' &&
		    *end <= 'Z') || (*end >= '0' && *end <= '9') ||
		    *end == '.' || *end == '-'; end++)
			;
		if (end == h)
			return error_set(err, CARVE_EINVAL,
			    "%s must name a host", key);
	}
	if (*end == ':') {
		unsigned long pn = 0;

		port = end + 1;
		for (end = port; *end >= '0' && *end <= '9' && pn <= 65535;
		    end++)
			pn = pn * 10 + (unsigned long)(*end - '0');
		if (end == port || pn < 1 || pn > 65535)
			return error_set(err, CARVE_EINVAL,
			    "%s: the port must be 1..65535", key);
	}
	if (*end != '\0')
		return error_set(err, CARVE_EINVAL,
		    "%s must be tcp://HOST[:PORT] and nothing more", key);
	return 0;
}

/* vda, sdb, hdc, xvdaa: the names libvirt gives disk targets. */
static bool
command_disk_target_valid(const char *t)
{
	size_t n;

	if (strncmp(t, "xvd", 3) == 0)
		t += 3;
	else if (strncmp(t, "vd", 2) == 0 || strncmp(t, "sd", 2) == 0 ||
	    strncmp(t, "hd", 2) == 0)
		t += 2;
	else
		return false;
	n = strlen(t);
	if (n < 1 || n > 2)
		return false;
	for (size_t i = 0; i < n; i++)
		if (t[i] < 'a' || t[i] > 'z')
			return false;
	return true;
}

static void
command_free_disks(struct vm_disk_path *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(d[i].dp_path);
	free(d);
}

static int
command_disk_cmp(const void *x, const void *y)
{
	const struct vm_disk_path *a = x, *b = y;

	return strcmp(a->dp_target, b->dp_target);
}

static int
command_get_disks(json_object *args, struct vm_disk_path **out, size_t *nout,
    struct carve_error *err)
{
	struct vm_disk_path *d;
	json_object *obj;
	size_t n = 0, cap;
	char key[VM_DISK_TARGET_MAX + 16];
	char q[COMMAND_QUOTE_MAX + 8];

	if (jsonx_get_object(args, "disks", true, &obj, err) == -1)
		return -1;
	cap = (size_t)json_object_object_length(obj);
	if (cap > VM_MIGRATE_DISKS_MAX)
		return error_set(err, CARVE_EINVAL, "disks has %zu entries; at "
		    "most %d are allowed", cap, VM_MIGRATE_DISKS_MAX);
	d = xcalloc(cap + 1, sizeof(*d));
	json_object_object_foreach(obj, k, v) {
		const char *path;

		if (strlen(k) > VM_DISK_TARGET_MAX ||
		    !command_disk_target_valid(k)) {
			text_quote(k, COMMAND_QUOTE_MAX, q, sizeof(q));
			command_free_disks(d, n);
			return error_set(err, CARVE_EINVAL, "disks: \"%s\" is "
			    "not a disk target (vda, sdb, hdc, ...)", q);
		}
		snprintf(key, sizeof(key), "disks.%s", k);
		if (!json_object_is_type(v, json_type_string)) {
			command_free_disks(d, n);
			return error_set(err, CARVE_EINVAL,
			    "%s must be a string", key);
		}
		path = json_object_get_string(v);
		if ((size_t)json_object_get_string_len(v) != strlen(path) ||
		    strlen(path) > VM_MIGRATE_PATH_MAX) {
			command_free_disks(d, n);
			return error_set(err, CARVE_EINVAL, "%s must be a path "
			    "of at most %d bytes without NUL", key,
			    VM_MIGRATE_PATH_MAX);
		}
		if (command_check_path(key, path, err) == -1) {
			command_free_disks(d, n);
			return -1;
		}
		snprintf(d[n].dp_target, sizeof(d[n].dp_target), "%s", k);
		d[n].dp_path = xstrdup(path);
		n++;
	}
	qsort(d, n, sizeof(*d), command_disk_cmp);
	if (n == 0) {
		free(d);
		d = NULL;
	}
	*out = d;
	*nout = n;
	return 0;
}

static int
command_get_path(json_object *args, const char *key, char **out,
    struct carve_error *err)
{
	const char *s;
	int rc;

	if ((rc = jsonx_get_string(args, key, false, VM_MIGRATE_PATH_MAX, &s,
	    err)) != 1)
		return rc;
	if (command_check_path(key, s, err) == -1)
		return -1;
	*out = xstrdup(s);
	return 1;
}

static const char *const command_migrate_keys[] = {
	"dest_node", "dest_libvirt_uri", "dest_migrate_uri", "disks",
	"console_log", "max_downtime_ms", "bandwidth_mibps", "timeout_s", NULL
};

static void
command_migrate_clear(struct command *cmd)
{
	struct command_migrate_args *mg = &cmd->cmd_args.migrate;

	free(mg->mg_dest_libvirt_uri);
	free(mg->mg_dest_migrate_uri);
	command_free_disks(mg->mg_disks, mg->mg_ndisks);
	free(mg->mg_console_log);
	memset(mg, 0, sizeof(*mg));
}

static int
command_migrate_decode(json_object *args, struct command *cmd,
    struct carve_error *err)
{
	struct command_migrate_args *mg = &cmd->cmd_args.migrate;
	const char *node, *uri, *muri = NULL;
	int64_t downtime = 0, bw = 0, timeout = VM_MIGRATE_TIMEOUT_DEFAULT_S;

	memset(mg, 0, sizeof(*mg));
	if (jsonx_check_object(args, "vm.migrate args", command_migrate_keys,
	    err) == -1 ||
	    jsonx_get_string(args, "dest_node", true, IDS_NAME_MAX, &node,
	    err) == -1 ||
	    ids_name_check(node, "dest_node", err) == -1 ||
	    jsonx_get_string(args, "dest_libvirt_uri", true, VM_MIGRATE_URI_MAX,
	    &uri, err) == -1 ||
	    command_check_libvirt_uri("dest_libvirt_uri", uri, err) == -1 ||
	    jsonx_get_string(args, "dest_migrate_uri", false, VM_MIGRATE_URI_MAX,
	    &muri, err) == -1 ||
	    (muri != NULL && command_check_migrate_uri("dest_migrate_uri", muri,
	    err) == -1) ||
	    command_get_size(args, "max_downtime_ms", false, 1,
	    VM_MIGRATE_DOWNTIME_MAX_MS, "ms", &downtime, err) == -1 ||
	    command_get_size(args, "bandwidth_mibps", false, 0,
	    VM_MIGRATE_BANDWIDTH_MAX, "MiB/s", &bw, err) == -1 ||
	    command_get_size(args, "timeout_s", false, VM_MIGRATE_TIMEOUT_MIN_S,
	    VM_MIGRATE_TIMEOUT_MAX_S, "seconds", &timeout, err) == -1)
		return -1;
	if (command_get_disks(args, &mg->mg_disks, &mg->mg_ndisks, err) == -1 ||
	    command_get_path(args, "console_log", &mg->mg_console_log,
	    err) == -1) {
		command_migrate_clear(cmd);
		return -1;
	}
	snprintf(mg->mg_dest_node, sizeof(mg->mg_dest_node), "%s", node);
	mg->mg_dest_libvirt_uri = xstrdup(uri);
	mg->mg_dest_migrate_uri = muri != NULL ? xstrdup(muri) : NULL;
	mg->mg_max_downtime_ms = (unsigned)downtime;
	mg->mg_bandwidth_mibps = (uint64_t)bw;
	mg->mg_timeout_s = (unsigned)timeout;
	return 0;
}

/* ------------------------------------------------------------ snapshots */

static int
command_get_snap_name(json_object *args, char out[IDS_NAME_MAX + 1],
    struct carve_error *err)
{
	const char *name;

	if (jsonx_get_string(args, "name", true, IDS_NAME_MAX, &name,
	    err) == -1 ||
	    ids_name_check(name, "name", err) == -1)
		return -1;
	snprintf(out, IDS_NAME_MAX + 1, "%s", name);
	return 0;
}

static const char *const command_snap_create_keys[] = {
	"name", "kind", "quiesce", NULL
};

int
command_snapshot_create_decode(json_object *args,
    struct command_snapshot_args *out, struct carve_error *err)
{
	struct command_snapshot_args a;
	char q[COMMAND_QUOTE_MAX + 8];
	const char *kind;

	memset(&a, 0, sizeof(a));
	if (jsonx_check_object(args, "vm.snapshot.create args",
	    command_snap_create_keys, err) == -1 ||
	    command_get_snap_name(args, a.name, err) == -1 ||
	    jsonx_get_string(args, "kind", true, SIZE_MAX, &kind, err) == -1)
		return -1;
	if (vm_snapshot_kind_parse(kind, &a.kind) == -1) {
		text_quote(kind, COMMAND_QUOTE_MAX, q, sizeof(q));
		return error_set(err, CARVE_EINVAL, "kind \"%s\" must be "
		    "\"full\" or \"disk\"", q);
	}
	if (jsonx_get_bool(args, "quiesce", false, &a.quiesce, err) == -1)
		return -1;
	if (a.quiesce && a.kind == VM_SNAPSHOT_FULL)
		return error_set(err, CARVE_EINVAL, "quiesce applies to disk "
		    "snapshots only: a full snapshot keeps the guest's memory, "
		    "and a guest reverted to it would resume with its file "
		    "systems frozen");
	*out = a;
	return 0;
}

json_object *
command_snapshot_create_encode(const struct command_snapshot_args *a)
{
	json_object *o = command_new_object();

	jsonx_add_string(o, "name", a->name);
	jsonx_add_string(o, "kind", vm_snapshot_kind_name(a->kind));
	jsonx_add_bool(o, "quiesce", a->quiesce);
	return o;
}

static int
command_snap_create_decode(json_object *args, struct command *cmd,
    struct carve_error *err)
{
	return command_snapshot_create_decode(args, &cmd->cmd_args.snapshot,
	    err);
}

static json_object *
command_snap_create_encode(const struct command *cmd)
{
	return command_snapshot_create_encode(&cmd->cmd_args.snapshot);
}

static const char *const command_snap_name_keys[] = { "name", NULL };

/* vm.snapshot.revert and vm.snapshot.delete: {"name"}. */
static int
command_snap_name_decode(json_object *args, struct command *cmd,
    struct carve_error *err)
{
	struct command_snapshot_args *a = &cmd->cmd_args.snapshot;
	char what[64];

	memset(a, 0, sizeof(*a));
	snprintf(what, sizeof(what), "%s args", command_type_name(cmd->cmd_type));
	if (jsonx_check_object(args, what, command_snap_name_keys, err) == -1 ||
	    command_get_snap_name(args, a->name, err) == -1) {
		memset(a, 0, sizeof(*a));
		return -1;
	}
	return 0;
}

static json_object *
command_migrate_encode(const struct command *cmd)
{
	const struct command_migrate_args *mg = &cmd->cmd_args.migrate;
	json_object *o = command_new_object(), *disks = command_new_object();

	jsonx_add_string(o, "dest_node", mg->mg_dest_node);
	jsonx_add_string(o, "dest_libvirt_uri", mg->mg_dest_libvirt_uri);
	if (mg->mg_dest_migrate_uri != NULL)
		jsonx_add_string(o, "dest_migrate_uri", mg->mg_dest_migrate_uri);
	for (size_t i = 0; i < mg->mg_ndisks; i++)
		jsonx_add_string(disks, mg->mg_disks[i].dp_target,
		    mg->mg_disks[i].dp_path);
	json_object_object_add(o, "disks", disks);
	if (mg->mg_console_log != NULL)
		jsonx_add_string(o, "console_log", mg->mg_console_log);
	if (mg->mg_max_downtime_ms > 0)
		jsonx_add_int(o, "max_downtime_ms", mg->mg_max_downtime_ms);
	jsonx_add_int(o, "bandwidth_mibps", (int64_t)mg->mg_bandwidth_mibps);
	jsonx_add_int(o, "timeout_s", mg->mg_timeout_s);
	return o;
}

static void
command_migrate_copy(struct command *dst, const struct command *src)
{
	const struct command_migrate_args *s = &src->cmd_args.migrate;
	struct command_migrate_args *d = &dst->cmd_args.migrate;

	d->mg_dest_libvirt_uri = command_strdup_null(s->mg_dest_libvirt_uri);
	d->mg_dest_migrate_uri = command_strdup_null(s->mg_dest_migrate_uri);
	d->mg_console_log = command_strdup_null(s->mg_console_log);
	d->mg_disks = NULL;
	if (s->mg_ndisks > 0) {
		d->mg_disks = xcalloc(s->mg_ndisks, sizeof(*d->mg_disks));
		for (size_t i = 0; i < s->mg_ndisks; i++) {
			d->mg_disks[i] = s->mg_disks[i];
			d->mg_disks[i].dp_path = xstrdup(s->mg_disks[i].dp_path);
		}
	}
}

static json_object *
command_snap_name_encode(const struct command *cmd)
{
	json_object *o = command_new_object();

	jsonx_add_string(o, "name", cmd->cmd_args.snapshot.name);
	return o;
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
	    jsonx_get_uuid(obj, "id", true, cmd.cmd_id, err) == -1 ||
	    command_get_type(obj, "type", &cmd.cmd_type, err) == -1 ||
	    jsonx_get_uuid(obj, "vm_id", true, cmd.cmd_vm_id, err) == -1 ||
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
	    jsonx_get_uuid(obj, "command_id", true, res.res_command_id, err) == -1 ||
	    command_get_type(obj, "type", &res.res_type, err) == -1 ||
	    jsonx_get_uuid(obj, "vm_id", true, res.res_vm_id, err) == -1 ||
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
