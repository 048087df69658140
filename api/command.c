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
static int command_snap_create_decode(json_object *, struct command *,
    struct carve_error *);
static json_object *command_snap_create_encode(const struct command *);
static int command_snap_name_decode(json_object *, struct command *,
    struct carve_error *);
static json_object *command_snap_name_encode(const struct command *);
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

static const char *const vm_image_keys[] = { "url", "sha256", "format", NULL };

static int
command_get_image(json_object *args, struct vm_image *out,
    struct carve_error *err)
{
	json_object *img = NULL;
	const char *url, *sum, *fmt;
	char q[COMMAND_QUOTE_MAX + 8];
	int rc;

	if ((rc = jsonx_get_object(args, "image", false, &img, err)) != 1)
		return rc;
	if (jsonx_check_object(img, "image", vm_image_keys, err) == -1 ||
	    jsonx_get_string(img, "url", true, VM_IMAGE_URL_MAX, &url,
	    err) == -1 ||
	    jsonx_get_string(img, "sha256", true, SIZE_MAX, &sum, err) == -1 ||
	    jsonx_get_string(img, "format", true, SIZE_MAX, &fmt, err) == -1)
		return -1;
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
		out->vi_sha256[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' +
		    'a') : c;
	}
	out->vi_sha256[64] = '\0';
	if (vm_image_format_parse(fmt, &out->vi_format) == -1) {
		text_quote(fmt, COMMAND_QUOTE_MAX, q, sizeof(q));
		return error_set(err, CARVE_EINVAL, "image.format \"%s\" must "
		    "be \"qcow2\" or \"raw\"", q);
	}
	out->vi_url = xstrdup(url);
	return 1;
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

/* ------------------------------------------------------------ vm spec */

static const char *const vm_spec_keys[] = {
	"name", "vcpus", "memory_mib", "disk_gib", "kernel", "initrd",
	"cmdline", "image", "ssh_authorized_keys", "user_data", NULL
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
	    command_get_image(args, &spec.vs_image, err) == -1 ||
	    command_get_ssh_keys(args, &spec.vs_ssh_keys, &spec.vs_nssh_keys,
	    err) == -1 ||
	    command_get_user_data(args, &spec.vs_user_data, err) == -1)
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
	if (spec->vs_image.vi_url != NULL) {
		json_object *img = command_new_object();

		jsonx_add_string(img, "url", spec->vs_image.vi_url);
		jsonx_add_string(img, "sha256", spec->vs_image.vi_sha256);
		jsonx_add_string(img, "format",
		    vm_image_format_name(spec->vs_image.vi_format));
		json_object_object_add(o, "image", img);
	}
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
	free(spec->vs_image.vi_url);
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
	dst->vs_image.vi_url = command_strdup_null(src->vs_image.vi_url);
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
