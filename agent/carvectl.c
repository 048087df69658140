/*
 * carvectl: the operator's window into carved. Each invocation sends one
 * request over carved's Unix socket (ctl_proto.h), reads one response and
 * prints it, as tables for a person or as the server's JSON with --json.
 *
 * Verbs live in one table (like vmctl's ctl_commands[]): the words the
 * operator types, the protocol verb, usage/help, the positional arguments and
 * options with the JSON keys they fill, and a printer for the result. Values
 * are only checked for shape here (a number is a number); whether 100000
 * vCPUs is too many is the server's call, so the CLI never disagrees with it.
 *
 * Exit status: 0 success, 1 the server refused or the command failed,
 * 2 usage error or no usable answer from carved.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agent/conf.h"
#include "agent/ctl_proto.h"
#include "api/command.h"
#include "common/error.h"
#include "common/jsonx.h"
#include "common/xalloc.h"

#define CTL_DEFAULT_SOCKET  "/run/carve/carved.sock"
#define CTL_SOCKET_ENV      "CARVE_SOCKET"
/* Long enough for a create that downloads an image or a slow guest stop. */
#define CTL_RECV_TIMEOUT_S  600
/* Slack on top of a stop timeout for the force-off that may follow it. */
#define CTL_STOP_SLACK_S    60

#define CTL_EXIT_OK      0
#define CTL_EXIT_FAILED  1
#define CTL_EXIT_USAGE   2

enum ctl_opt_type {
	CTL_OPT_FLAG,     /* --force         -> "force": true */
	CTL_OPT_UINT,     /* --vcpus 2       -> "vcpus": 2 */
	CTL_OPT_STRING,   /* --kernel vmlinuz -> "kernel": "vmlinuz" */
	CTL_OPT_LIST,     /* --ssh-key K (repeatable) -> "key": ["K", ...] */
	CTL_OPT_FILE,     /* --user-data-file F -> "key": "<contents of F>" */
	CTL_OPT_NIC,      /* --network N[,mac=M] (repeatable) ->
	                     "networks": [..., {"key": "N", "mac": "M"}] */
	CTL_OPT_DISK,     /* --data-disk 10 (repeatable) ->
	                     "key": [{"size_gib": 10}, ...] */
};

/* The largest file --user-data-file reads (the server allows 64 KiB). */
#define CTL_FILE_MAX (1024 * 1024)

struct ctl_opt {
	const char *o_name;      /* without the leading "--" */
	const char *o_key;       /* key in the request args */
	enum ctl_opt_type o_type;
	const char *o_meta;      /* placeholder shown in messages */
	bool o_required;
};

struct ctl_pos {
	const char *p_key;
	const char *p_meta;
};

struct ctl_verb {
	const char *v_name;      /* the words typed, one space apart */
	const char *v_proto;     /* protocol verb */
	const char *v_usage;     /* arguments, after the name */
	const char *v_help;      /* one line */
	const char *v_details;   /* more, for "help VERB"; may be NULL */
	const struct ctl_pos *v_pos;
	int v_min_args;
	int v_max_args;
	const struct ctl_opt *v_opts;
	/* Prints a result in human form; returns the exit status. */
	int (*v_print)(json_object *result);
};

/* ------------------------------------------------------------ output */

/*
 * A copy of s safe for a terminal: control bytes (which could move the
 * cursor or retitle the window) become \xNN. Everything printed from the
 * server's answer goes through here.
 */
static char *
ctl_sanitize(const char *s)
{
	size_t len = strlen(s), n = 0;
	char *out = xmalloc(len * 4 + 1);

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			snprintf(out + n, 5, "\\x%02x", *p);
			n += 4;
		} else {
			out[n++] = (char)*p;
		}
	}
	out[n] = '\0';
	return out;
}

/* Columns a string takes: UTF-8 continuation bytes take none. */
static size_t
ctl_width(const char *s)
{
	size_t w = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p & 0xc0) != 0x80)
			w++;
	return w;
}

static bool
ctl_key_is_time(const char *key)
{
	size_t len = strlen(key);

	return len > 3 && strcmp(key + len - 3, "_at") == 0;
}

/* "2026-11-25T13:00:00.123Z" for a time in ms since the epoch, or NULL. */
static char *
ctl_format_ms(int64_t ms)
{
	struct tm tm;
	time_t t;
	char buf[64];

	if (ms <= 0)
		return NULL;
	t = (time_t)(ms / 1000);
	if (gmtime_r(&t, &tm) == NULL)
		return NULL;
	if (strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		return NULL;
	return xasprintf("%s.%03dZ", buf, (int)(ms % 1000));
}

/*
 * The text shown for a JSON value: "-" when missing or null, strings as they
 * are, numbers as the server wrote them, anything else as compact JSON.
 * Integer fields named *_at are times in ms and are shown as UTC.
 */
static char *
ctl_value(const char *key, json_object *v)
{
	const char *s;
	char *t;

	switch (json_object_get_type(v)) {
	case json_type_null:
		return xstrdup("-");
	case json_type_string:
		s = json_object_get_string(v);
		return ctl_sanitize(*s ? s : "-");
	case json_type_int:
		if (key != NULL && ctl_key_is_time(key) &&
		    (t = ctl_format_ms(json_object_get_int64(v))) != NULL)
			return t;
		/* FALLTHROUGH */
	default:
		return ctl_sanitize(json_object_to_json_string_ext(v,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	}
}

/* The field key of obj (NULL if obj is not an object or lacks it). */
static json_object *
ctl_field(json_object *obj, const char *key)
{
	json_object *v = NULL;

	if (json_object_is_type(obj, json_type_object))
		json_object_object_get_ex(obj, key, &v);
	return v;
}

static char *
ctl_field_text(json_object *obj, const char *key)
{
	return ctl_value(key, ctl_field(obj, key));
}

static bool
ctl_field_int(json_object *obj, const char *key, int64_t *out)
{
	json_object *v = ctl_field(obj, key);

	if (!json_object_is_type(v, json_type_int))
		return false;
	*out = json_object_get_int64(v);
	return true;
}

/* A table: row 0 holds the headers; cells are owned. */
struct table {
	size_t t_ncols;
	size_t t_ncells;
	size_t t_cap;
	char **t_cells;
	const char *t_align;   /* per column 'l' or 'r' */
};

static struct table *
table_new(size_t ncols, const char *align, const char *const *headers)
{
	struct table *t = xcalloc(1, sizeof(*t));

	t->t_ncols = ncols;
	t->t_align = align;
	for (size_t i = 0; i < ncols; i++) {
		if (t->t_ncells == t->t_cap) {
			t->t_cap = t->t_cap ? t->t_cap * 2 : 16;
			t->t_cells = xreallocarray(t->t_cells, t->t_cap,
			    sizeof(*t->t_cells));
		}
		t->t_cells[t->t_ncells++] = xstrdup(headers[i]);
	}
	return t;
}

/* Append the next cell in row order; takes ownership of cell. */
static void
table_add(struct table *t, char *cell)
{
	if (t->t_ncells == t->t_cap) {
		t->t_cap = t->t_cap ? t->t_cap * 2 : 16;
		t->t_cells = xreallocarray(t->t_cells, t->t_cap,
		    sizeof(*t->t_cells));
	}
	t->t_cells[t->t_ncells++] = cell;
}

static void
table_print(const struct table *t, int indent)
{
	size_t *w = xcalloc(t->t_ncols, sizeof(*w));
	size_t c, cw;

	for (size_t i = 0; i < t->t_ncells; i++) {
		cw = ctl_width(t->t_cells[i]);
		if (cw > w[i % t->t_ncols])
			w[i % t->t_ncols] = cw;
	}
	for (size_t i = 0; i < t->t_ncells; i++) {
		c = i % t->t_ncols;
		cw = ctl_width(t->t_cells[i]);
		if (c == 0)
			printf("%*s", indent, "");
		else
			fputs("  ", stdout);
		if (t->t_align != NULL && t->t_align[c] == 'r')
			printf("%*s%s", (int)(w[c] - cw), "", t->t_cells[i]);
		else if (c + 1 < t->t_ncols)
			printf("%s%*s", t->t_cells[i], (int)(w[c] - cw), "");
		else
			fputs(t->t_cells[i], stdout);
		if (c + 1 == t->t_ncols)
			putchar('\n');
	}
	free(w);
}

static void
table_free(struct table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->t_ncells; i++)
		free(t->t_cells[i]);
	free(t->t_cells);
	free(t);
}

/* "key: value" lines, keys padded so the values line up. */
struct kvlist {
	size_t kv_n;
	size_t kv_cap;
	char **kv_keys;
	char **kv_vals;
};

/* Takes ownership of key and val. */
static void
kv_add(struct kvlist *kv, char *key, char *val)
{
	if (kv->kv_n == kv->kv_cap) {
		kv->kv_cap = kv->kv_cap ? kv->kv_cap * 2 : 16;
		kv->kv_keys = xreallocarray(kv->kv_keys, kv->kv_cap,
		    sizeof(*kv->kv_keys));
		kv->kv_vals = xreallocarray(kv->kv_vals, kv->kv_cap,
		    sizeof(*kv->kv_vals));
	}
	kv->kv_keys[kv->kv_n] = key;
	kv->kv_vals[kv->kv_n] = val;
	kv->kv_n++;
}

static void
kv_print(const struct kvlist *kv)
{
	size_t w = 0, kw;

	for (size_t i = 0; i < kv->kv_n; i++)
		if ((kw = ctl_width(kv->kv_keys[i])) > w)
			w = kw;
	for (size_t i = 0; i < kv->kv_n; i++) {
		kw = ctl_width(kv->kv_keys[i]);
		printf("%s:%*s %s\n", kv->kv_keys[i], (int)(w - kw), "",
		    kv->kv_vals[i]);
	}
}

static void
kv_clear(struct kvlist *kv)
{
	for (size_t i = 0; i < kv->kv_n; i++) {
		free(kv->kv_keys[i]);
		free(kv->kv_vals[i]);
	}
	free(kv->kv_keys);
	free(kv->kv_vals);
	memset(kv, 0, sizeof(*kv));
}

static char *
kv_key(const char *prefix, const char *key)
{
	char *raw, *k;

	raw = prefix ? xasprintf("%s.%s", prefix, key) : xstrdup(key);
	k = ctl_sanitize(raw);
	free(raw);
	return k;
}

static bool
ctl_is_scalar(json_object *v)
{
	return !json_object_is_type(v, json_type_object) &&
	    !json_object_is_type(v, json_type_array);
}

static void kv_flatten(struct kvlist *kv, const char *prefix, json_object *obj);

/*
 * One value under key: nested objects become a.b lines, arrays of scalars
 * one comma-separated line, arrays holding objects a[0].b lines.
 */
static void
kv_flatten_value(struct kvlist *kv, char *key, const char *name,
    json_object *v)
{
	size_t n;
	bool scalars = true;
	char *sub, *joined, *tmp, *item;

	if (json_object_is_type(v, json_type_object) &&
	    json_object_object_length(v) > 0) {
		kv_flatten(kv, key, v);
		free(key);
		return;
	}
	if (!json_object_is_type(v, json_type_array) ||
	    (n = json_object_array_length(v)) == 0) {
		kv_add(kv, key, ctl_value(name, v));
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (!ctl_is_scalar(json_object_array_get_idx(v, i)))
			scalars = false;
	if (scalars) {
		joined = NULL;
		for (size_t i = 0; i < n; i++) {
			item = ctl_value(NULL, json_object_array_get_idx(v, i));
			tmp = joined ? xasprintf("%s, %s", joined, item) :
			    xstrdup(item);
			free(item);
			free(joined);
			joined = tmp;
		}
		kv_add(kv, key, joined);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		sub = xasprintf("%s[%zu]", key, i);
		kv_flatten_value(kv, sub, name, json_object_array_get_idx(v, i));
	}
	free(key);
}

static void
kv_flatten(struct kvlist *kv, const char *prefix, json_object *obj)
{
	json_object_object_foreach(obj, k, v)
		kv_flatten_value(kv, kv_key(prefix, k), k, v);
}

/* The fallback for a result of a shape this carvectl does not know. */
static int
print_raw(json_object *result)
{
	puts(json_object_to_json_string_ext(result, JSON_C_TO_STRING_PRETTY |
	    JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
	return CTL_EXIT_OK;
}

/* --------------------------------------------------------- printers */

static int
print_status(json_object *result)
{
	struct kvlist kv = { 0 };
	struct table *t = NULL;
	json_object *inflight = NULL;
	size_t n, ncols = 0;
	const char **cols = NULL;
	char **heads;

	if (!json_object_is_type(result, json_type_object))
		return print_raw(result);
	json_object_object_foreach(result, k, v) {
		if (strcmp(k, "inflight") == 0 &&
		    json_object_is_type(v, json_type_array)) {
			inflight = v;
			continue;
		}
		kv_flatten_value(&kv, kv_key(NULL, k), k, v);
	}
	if (inflight != NULL) {
		n = json_object_array_length(inflight);
		kv_add(&kv, xstrdup("inflight"),
		    n ? xasprintf("%zu", n) : xstrdup("none"));
	}
	kv_print(&kv);
	kv_clear(&kv);
	if (inflight == NULL || json_object_array_length(inflight) == 0)
		return CTL_EXIT_OK;

	/* Columns: every key any in-flight entry has, in first-seen order. */
	n = json_object_array_length(inflight);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(inflight, i);
		if (!json_object_is_type(e, json_type_object))
			continue;
		json_object_object_foreach(e, ek, ev) {
			size_t j;
			(void)ev;
			for (j = 0; j < ncols; j++)
				if (strcmp(cols[j], ek) == 0)
					break;
			if (j == ncols) {
				cols = xreallocarray(cols, ncols + 1,
				    sizeof(*cols));
				cols[ncols++] = ek;
			}
		}
	}
	if (ncols == 0) {
		free(cols);
		return CTL_EXIT_OK;
	}
	heads = xcalloc(ncols, sizeof(*heads));
	for (size_t j = 0; j < ncols; j++) {
		heads[j] = ctl_sanitize(cols[j]);
		for (char *p = heads[j]; *p; p++)
			*p = (char)toupper((unsigned char)*p);
	}
	t = table_new(ncols, NULL, (const char *const *)heads);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(inflight, i);
		if (!json_object_is_type(e, json_type_object))
			continue;
		for (size_t j = 0; j < ncols; j++)
			table_add(t, ctl_field_text(e, cols[j]));
	}
	table_print(t, 2);
	table_free(t);
	for (size_t j = 0; j < ncols; j++)
		free(heads[j]);
	free(heads);
	free(cols);
	return CTL_EXIT_OK;
}

static const char *const cap_classes[] = { "VCPU", "MEMORY_MIB", "DISK_GIB" };
static const char *const cap_fields[] = { "total", "reserved",
    "allocation_ratio", "allocated", "allocatable", "free" };

static bool
ctl_is_cap_class(const char *name)
{
	for (size_t i = 0; i < sizeof(cap_classes) / sizeof(cap_classes[0]); i++)
		if (strcmp(name, cap_classes[i]) == 0)
			return true;
	return false;
}

static void
cap_row(struct table *t, const char *name, json_object *inv)
{
	table_add(t, ctl_sanitize(name));
	for (size_t i = 0; i < sizeof(cap_fields) / sizeof(cap_fields[0]); i++)
		table_add(t, ctl_field_text(inv, cap_fields[i]));
}

static int
print_capacity(json_object *result)
{
	static const char *const heads[] = { "CLASS", "TOTAL", "RESERVED",
	    "RATIO", "ALLOCATED", "ALLOCATABLE", "FREE" };
	struct kvlist kv = { 0 };
	struct table *t;
	json_object *cap, *host, *inv;
	bool flat;

	if (!json_object_is_type(result, json_type_object))
		return print_raw(result);
	/* {"capacity":{VCPU..},"host":{..}}, or the classes at the top. */
	cap = ctl_field(result, "capacity");
	flat = !json_object_is_type(cap, json_type_object);
	if (flat)
		cap = result;
	if (flat && ctl_field(result, "host") == NULL &&
	    ctl_field(result, "VCPU") == NULL)
		return print_raw(result);

	t = table_new(7, "lrrrrrr", heads);
	for (size_t i = 0; i < sizeof(cap_classes) / sizeof(cap_classes[0]); i++)
		if ((inv = ctl_field(cap, cap_classes[i])) != NULL)
			cap_row(t, cap_classes[i], inv);
	/* Classes a newer carved may add. */
	json_object_object_foreach(cap, ck, cv) {
		if (ctl_is_cap_class(ck) || strcmp(ck, "host") == 0 ||
		    !json_object_is_type(cv, json_type_object))
			continue;
		cap_row(t, ck, cv);
	}
	table_print(t, 0);
	table_free(t);

	host = ctl_field(result, "host");
	if (json_object_is_type(host, json_type_object))
		kv_flatten(&kv, NULL, host);
	json_object_object_foreach(result, k, v) {
		/* Flat: every object at the top went into the table. */
		if (strcmp(k, "host") == 0 ||
		    (!flat && strcmp(k, "capacity") == 0) ||
		    (flat && json_object_is_type(v, json_type_object)))
			continue;
		kv_flatten_value(&kv, kv_key(NULL, k), k, v);
	}
	if (kv.kv_n > 0) {
		putchar('\n');
		kv_print(&kv);
	}
	kv_clear(&kv);
	return CTL_EXIT_OK;
}

static int
print_vm_list(json_object *result)
{
	static const char *const heads[] = { "ID", "NAME", "STATE", "VCPUS",
	    "MEMORY(MiB)", "DISK(GiB)" };
	static const char *const keys[] = { "id", "name", "state", "vcpus",
	    "memory_mib", "disk_gib" };
	struct table *t;
	size_t n;

	if (!json_object_is_type(result, json_type_array))
		return print_raw(result);
	t = table_new(6, "lllrrr", heads);
	n = json_object_array_length(result);
	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(result, i);
		if (!json_object_is_type(vm, json_type_object))
			continue;
		for (size_t j = 0; j < 6; j++)
			table_add(t, ctl_field_text(vm, keys[j]));
	}
	table_print(t, 0);
	table_free(t);
	return CTL_EXIT_OK;
}

static int
print_vm_show(json_object *result)
{
	static const char *const order[] = { "id", "name", "state", "vcpus",
	    "memory_mib", "disk_gib", "command_id", "created_at" };
	const size_t norder = sizeof(order) / sizeof(order[0]);
	struct kvlist kv = { 0 };
	size_t i;

	if (!json_object_is_type(result, json_type_object))
		return print_raw(result);
	for (i = 0; i < norder; i++)
		kv_flatten_value(&kv, xstrdup(order[i]), order[i],
		    ctl_field(result, order[i]));
	json_object_object_foreach(result, k, v) {
		for (i = 0; i < norder; i++)
			if (strcmp(k, order[i]) == 0)
				break;
		if (i == norder)
			kv_flatten_value(&kv, kv_key(NULL, k), k, v);
	}
	kv_print(&kv);
	kv_clear(&kv);
	return CTL_EXIT_OK;
}

/* {"vm_id","name","snapshots":[{"name","kind","created_at"}...]} */
static int
print_snapshots(json_object *result)
{
	static const char *const heads[] = { "NAME", "KIND", "CREATED" };
	static const char *const keys[] = { "name", "kind", "created_at" };
	json_object *arr = ctl_field(result, "snapshots");
	struct table *t;
	size_t n;

	if (!json_object_is_type(arr, json_type_array))
		return print_raw(result);
	n = json_object_array_length(arr);
	if (n == 0) {
		puts("no snapshots");
		return CTL_EXIT_OK;
	}
	t = table_new(3, "lll", heads);
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(s, json_type_object))
			continue;
		for (size_t j = 0; j < 3; j++)
			table_add(t, ctl_field_text(s, keys[j]));
	}
	table_print(t, 0);
	table_free(t);
	return CTL_EXIT_OK;
}

static bool
ctl_command_failed(json_object *res)
{
	json_object *st = ctl_field(res, "status");

	return json_object_is_type(st, json_type_string) &&
	    strcmp(json_object_get_string(st), "failed") == 0;
}

/* "code: message" of a command result's error, or "-". */
static char *
ctl_command_error(json_object *res)
{
	json_object *e = ctl_field(res, "error");
	char *code, *msg, *s;

	if (!json_object_is_type(e, json_type_object))
		return xstrdup("-");
	code = ctl_field_text(e, "code");
	msg = ctl_field_text(e, "message");
	s = xasprintf("%s: %s", code, msg);
	free(code);
	free(msg);
	return s;
}

/* A create's NICs, one line each: "  nic 0: network default 52:54:00:..". */
static void
print_interfaces(json_object *ifs)
{
	size_t n;

	if (!json_object_is_type(ifs, json_type_array))
		return;
	n = json_object_array_length(ifs);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(ifs, i);
		const char *kind = ctl_field(e, "bridge") != NULL ? "bridge" :
		    "network";
		char *name, *mac;

		if (!json_object_is_type(e, json_type_object))
			continue;
		name = ctl_field_text(e, kind);
		mac = ctl_field_text(e, "mac");
		printf("  nic %zu: %s %s, mac %s\n", i, kind, name, mac);
		free(name);
		free(mac);
	}
}

static int
print_command_result(json_object *result)
{
	char *id, *vm, *status, *error;

	if (ctl_field(result, "command_id") == NULL &&
	    ctl_field(result, "status") == NULL)
		return print_raw(result);
	id = ctl_field_text(result, "command_id");
	vm = ctl_field_text(result, "vm_id");
	status = ctl_field_text(result, "status");
	if (ctl_command_failed(result)) {
		error = ctl_command_error(result);
		printf("command %s failed: %s\n", id, error);
		free(error);
	} else {
		printf("command %s %s (vm %s)\n", id, status, vm);
		print_interfaces(ctl_field(ctl_field(result, "result"),
		    "interfaces"));
	}
	free(id);
	free(vm);
	free(status);
	return ctl_command_failed(result) ? CTL_EXIT_FAILED : CTL_EXIT_OK;
}

/* A resize says what the VM has now and when the guest gets it. */
static int
print_resize_result(json_object *result)
{
	json_object *r = ctl_field(result, "result");
	char *name, *vcpus, *mem, *applied, *warning;

	if (ctl_command_failed(result) || !json_object_is_type(r,
	    json_type_object) || ctl_field(r, "applied") == NULL)
		return print_command_result(result);
	name = ctl_field_text(r, "name");
	vcpus = ctl_field_text(r, "vcpus");
	mem = ctl_field_text(r, "memory_mib");
	applied = ctl_field_text(r, "applied");
	printf("vm %s resized to %s vCPUs, %s MiB: %s\n", name, vcpus, mem,
	    strcmp(applied, "live") == 0 ? "applied live" :
	    "applies at the next boot");
	if (ctl_field(r, "warning") != NULL) {
		warning = ctl_field_text(r, "warning");
		printf("warning: %s\n", warning);
		free(warning);
	}
	free(name);
	free(vcpus);
	free(mem);
	free(applied);
	return CTL_EXIT_OK;
}

static int
print_commands(json_object *result)
{
	static const char *const heads[] = { "COMMAND", "TYPE", "VM", "STATUS",
	    "DURATION(ms)", "ERROR" };
	struct table *t;
	int64_t acc, fin;
	size_t n;

	if (!json_object_is_type(result, json_type_array))
		return print_raw(result);
	t = table_new(6, "llllrl", heads);
	n = json_object_array_length(result);
	for (size_t i = 0; i < n; i++) {
		json_object *r = json_object_array_get_idx(result, i);
		if (!json_object_is_type(r, json_type_object))
			continue;
		table_add(t, ctl_field_text(r, "command_id"));
		table_add(t, ctl_field_text(r, "type"));
		table_add(t, ctl_field_text(r, "vm_id"));
		table_add(t, ctl_field_text(r, "status"));
		if (ctl_field_int(r, "accepted_at", &acc) &&
		    ctl_field_int(r, "finished_at", &fin) && acc > 0 &&
		    fin >= acc)
			table_add(t, xasprintf("%" PRId64, fin - acc));
		else
			table_add(t, xstrdup("-"));
		table_add(t, ctl_command_error(r));
	}
	table_print(t, 0);
	table_free(t);
	return CTL_EXIT_OK;
}

static int
print_log_level(json_object *result)
{
	char *level;

	if (ctl_field(result, "level") == NULL)
		return print_raw(result);
	level = ctl_field_text(result, "level");
	printf("log level: %s\n", level);
	free(level);
	return CTL_EXIT_OK;
}

/* 1536 -> "1.5 KiB": sizes for a person (--json has the bytes). */
static char *
ctl_bytes(json_object *obj, const char *key)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int64_t n;
	double v;
	int u = 0;

	if (!ctl_field_int(obj, key, &n) || n < 0)
		return xstrdup("-");
	v = (double)n;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	return u == 0 ? xasprintf("%" PRId64 " B", n) :
	    xasprintf("%.1f %s", v, units[u]);
}

static int
print_images(json_object *result)
{
	static const char *const heads[] = { "SHA256", "FORMAT", "SIZE",
	    "LAST USED", "VMS" };
	struct table *t;
	size_t n;

	if (!json_object_is_type(result, json_type_array))
		return print_raw(result);
	t = table_new(5, "llrll", heads);
	n = json_object_array_length(result);
	for (size_t i = 0; i < n; i++) {
		json_object *im = json_object_array_get_idx(result, i);
		json_object *vms = ctl_field(im, "vms");
		size_t nv = json_object_is_type(vms, json_type_array) ?
		    json_object_array_length(vms) : 0;
		char *cell = xstrdup(""), *s;
		int64_t pins = 0;

		if (!json_object_is_type(im, json_type_object))
			continue;
		table_add(t, ctl_field_text(im, "sha256"));
		table_add(t, ctl_field_text(im, "format"));
		table_add(t, ctl_bytes(im, "bytes"));
		table_add(t, ctl_field_text(im, "last_used_at"));
		for (size_t j = 0; j < nv; j++) {
			json_object *vm = json_object_array_get_idx(vms, j);
			char *who = ctl_field(vm, "name") != NULL ?
			    ctl_field_text(vm, "name") : ctl_field_text(vm, "id");

			s = xasprintf("%s%s%s", cell, j ? "," : "", who);
			free(who);
			free(cell);
			cell = s;
		}
		/* Held by commands still running (creates on their way). */
		if (ctl_field_int(im, "pins", &pins) && pins > 0) {
			s = xasprintf("%s%s(%" PRId64 " command%s)", cell,
			    *cell ? " " : "", pins, pins == 1 ? "" : "s");
			free(cell);
			cell = s;
		}
		if (*cell == '\0') {
			free(cell);
			cell = xstrdup("-");
		}
		table_add(t, cell);
	}
	table_print(t, 0);
	table_free(t);
	return CTL_EXIT_OK;
}

static int
print_images_gc(json_object *result)
{
	json_object *del = ctl_field(result, "deleted");
	char *freed, *after;
	size_t n, gone = 0;

	if (!json_object_is_type(del, json_type_array))
		return print_raw(result);
	n = json_object_array_length(del);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(del, i);
		char *sha = ctl_field_text(e, "sha256");
		char *fmt = ctl_field_text(e, "format");
		char *size = ctl_bytes(e, "bytes");
		char *why = ctl_field_text(e, "reason");

		if (ctl_field(e, "error") != NULL) {
			char *msg = ctl_field_text(e, "error");
			printf("not deleted %s.%s (%s): %s\n", sha, fmt, why, msg);
			free(msg);
		} else {
			printf("deleted %s.%s  %s  (%s)\n", sha, fmt, size, why);
			gone++;
		}
		free(sha);
		free(fmt);
		free(size);
		free(why);
	}
	freed = ctl_bytes(result, "freed_bytes");
	after = ctl_bytes(result, "bytes_after");
	printf("%zu deleted, %s freed; cache now %s\n", gone, freed, after);
	free(freed);
	free(after);
	return gone == n ? CTL_EXIT_OK : CTL_EXIT_FAILED;
}

static int
print_schedulable(json_object *result)
{
	json_object *v = ctl_field(result, "schedulable");

	if (v == NULL || !json_object_is_type(v, json_type_boolean))
		return print_raw(result);
	printf("%s\n", json_object_get_boolean(v) ? "schedulable: the control "
	    "plane may place VMs here" : "drained: not schedulable; the "
	    "control plane moves the VMs away");
	return CTL_EXIT_OK;
}

/* ------------------------------------------------------------ verbs */

static const struct ctl_pos pos_id[] = { { "id", "ID" } };
static const struct ctl_pos pos_name[] = { { "name", "NAME" } };
static const struct ctl_pos pos_level[] = { { "level", "LEVEL" } };
static const struct ctl_pos pos_file[] = { { "file", "FILE" } };
static const struct ctl_pos pos_id_snap[] = { { "id", "ID" },
    { "name", "NAME" } };

static const struct ctl_opt opts_none[] = { { NULL, NULL, 0, NULL, false } };

static const struct ctl_opt opts_create[] = {
	{ "vcpus", "vcpus", CTL_OPT_UINT, "N", true },
	{ "memory", "memory_mib", CTL_OPT_UINT, "MIB", true },
	{ "disk-gib", "disk_gib", CTL_OPT_UINT, "N", false },
	{ "kernel", "kernel", CTL_OPT_STRING, "NAME", false },
	{ "initrd", "initrd", CTL_OPT_STRING, "NAME", false },
	{ "cmdline", "cmdline", CTL_OPT_STRING, "STR", false },
	/* image.*: nested by ctl_nest_image */
	{ "image-url", "image.url", CTL_OPT_STRING, "URL", false },
	{ "image-sha256", "image.sha256", CTL_OPT_STRING, "HEX", false },
	{ "image-format", "image.format", CTL_OPT_STRING, "qcow2|raw", false },
	{ "ssh-key", "ssh_authorized_keys", CTL_OPT_LIST, "KEY", false },
	{ "user-data-file", "user_data", CTL_OPT_FILE, "FILE", false },
	{ "network", "network", CTL_OPT_NIC, "NAME[,mac=MAC]", false },
	{ "bridge", "bridge", CTL_OPT_NIC, "NAME[,mac=MAC]", false },
	{ "data-disk", "data_disks", CTL_OPT_DISK, "GIB", false },
	{ "id", "vm_id", CTL_OPT_STRING, "UUID", false },
	{ "command-id", "command_id", CTL_OPT_STRING, "UUID", false },
	{ NULL, NULL, 0, NULL, false }
};

static const struct ctl_opt opts_vm_op[] = {
	{ "command-id", "command_id", CTL_OPT_STRING, "UUID", false },
	{ NULL, NULL, 0, NULL, false }
};

static const struct ctl_opt opts_rebuild[] = {
	/* image.*: nested by ctl_nest_image */
	{ "image-url", "image.url", CTL_OPT_STRING, "URL", false },
	{ "image-sha256", "image.sha256", CTL_OPT_STRING, "HEX", false },
	{ "image-format", "image.format", CTL_OPT_STRING, "qcow2|raw", false },
	{ "command-id", "command_id", CTL_OPT_STRING, "UUID", false },
	{ NULL, NULL, 0, NULL, false }
};

static const struct ctl_opt opts_stop[] = {
	{ "force", "force", CTL_OPT_FLAG, NULL, false },
	{ "timeout", "timeout_s", CTL_OPT_UINT, "S", false },
	{ "command-id", "command_id", CTL_OPT_STRING, "UUID", false },
	{ NULL, NULL, 0, NULL, false }
};

static const struct ctl_opt opts_resize[] = {
	{ "vcpus", "vcpus", CTL_OPT_UINT, "N", false },
	{ "memory", "memory_mib", CTL_OPT_UINT, "MIB", false },
	{ "command-id", "command_id", CTL_OPT_STRING, "UUID", false },
	{ NULL, NULL, 0, NULL, false }
};

static const struct ctl_opt opts_snapshot[] = {
	{ "kind", "kind", CTL_OPT_STRING, "full|disk", false },
	{ "quiesce", "quiesce", CTL_OPT_FLAG, NULL, false },
	{ "command-id", "command_id", CTL_OPT_STRING, "UUID", false },
	{ NULL, NULL, 0, NULL, false }
};

static const struct ctl_opt opts_commands[] = {
	{ "limit", "limit", CTL_OPT_UINT, "N", false },
	{ NULL, NULL, 0, NULL, false }
};

#define CTL_COMMAND_ID_HELP \
	"  --command-id UUID  make the call idempotent: repeating it with the\n" \
	"                     same UUID returns the first result (default: new)\n"

static const struct ctl_verb ctl_verbs[] = {
	{ "status", "status", "",
	  "show the agent at a glance (connections, VMs, commands in flight)",
	  NULL, NULL, 0, 0, opts_none, print_status },
	{ "capacity", "capacity", "",
	  "show capacity per resource class and the host inventory",
	  NULL, NULL, 0, 0, opts_none, print_capacity },
	{ "vm list", "vm.list", "",
	  "list the VMs carved manages",
	  NULL, NULL, 0, 0, opts_none, print_vm_list },
	{ "vm show", "vm.show", "ID",
	  "show one VM (ID is its UUID or name)",
	  NULL, pos_id, 1, 1, opts_none, print_vm_show },
	{ "vm create", "vm.create",
	  "NAME --vcpus N --memory MIB [--disk-gib N]\n"
	  "    [--kernel NAME --initrd NAME --cmdline STR]\n"
	  "    [--image-url URL --image-sha256 HEX --image-format qcow2|raw\n"
	  "     [--ssh-key KEY]... [--user-data-file FILE]]\n"
	  "    [--network NAME[,mac=MAC]]... [--bridge NAME[,mac=MAC]]...\n"
	  "    [--data-disk GIB]... [--id UUID] [--command-id UUID]",
	  "define and start a VM",
	  "  --vcpus N          virtual CPUs\n"
	  "  --memory MIB       memory in MiB\n"
	  "  --disk-gib N       root disk size in GiB (with an image: at least\n"
	  "                     its virtual size; default: that size)\n"
	  "  --kernel NAME      boot this kernel from [libvirt] kernel_dir\n"
	  "  --initrd NAME      with this initramfs from kernel_dir\n"
	  "  --cmdline STR      and this kernel command line\n"
	  "  --image-url URL    root disk on this base image (https://, http://\n"
	  "                     or file:///path), cached by its sha256\n"
	  "  --image-sha256 HEX the image's sha256 (checked before use)\n"
	  "  --image-format F   qcow2 or raw (never guessed)\n"
	  "  --ssh-key KEY      an authorized SSH public key (repeatable)\n"
	  "  --user-data-file F cloud-config user data for cloud-init\n"
	  "  --network NAME[,mac=MAC]\n"
	  "                     a NIC on this libvirt network (repeatable; NICs\n"
	  "                     are in the order given); MAC default: derived\n"
	  "                     from the VM id (52:54:00:...)\n"
	  "  --bridge NAME[,mac=MAC]\n"
	  "                     a NIC on this host bridge (repeatable)\n"
	  "  --data-disk GIB    an extra empty disk of GIB GiB (repeatable, at\n"
	  "                     most 8; vdb, vdc, ...; survives vm rebuild)\n"
	  "  --id UUID          the VM's id (default: a new one)\n"
	  CTL_COMMAND_ID_HELP,
	  pos_name, 1, 1, opts_create, print_command_result },
	{ "vm start", "vm.start", "ID [--command-id UUID]",
	  "start a stopped VM",
	  CTL_COMMAND_ID_HELP,
	  pos_id, 1, 1, opts_vm_op, print_command_result },
	{ "vm stop", "vm.stop",
	  "ID [--force] [--timeout S] [--command-id UUID]",
	  "shut a VM down (ACPI), forcing it off after the timeout",
	  "  --force            power off at once, without asking the guest\n"
	  "  --timeout S        seconds to wait for the guest (server default 60)\n"
	  CTL_COMMAND_ID_HELP,
	  pos_id, 1, 1, opts_stop, print_command_result },
	{ "vm reboot", "vm.reboot", "ID [--command-id UUID]",
	  "reboot a running VM",
	  CTL_COMMAND_ID_HELP,
	  pos_id, 1, 1, opts_vm_op, print_command_result },
	{ "vm rebuild", "vm.rebuild",
	  "ID [--image-url URL --image-sha256 HEX --image-format qcow2|raw]\n"
	  "    [--command-id UUID]",
	  "give a VM a fresh root disk from its image (or another one)",
	  "  --image-url URL    rebuild from this image instead of the VM's own\n"
	  "  --image-sha256 HEX its sha256 (checked before use)\n"
	  "  --image-format F   qcow2 or raw (never guessed)\n"
	  "The VM keeps its id, name, size, data disks and cloud-init seed; a\n"
	  "running VM is forced off and started again on the new disk.\n"
	  CTL_COMMAND_ID_HELP,
	  pos_id, 1, 1, opts_rebuild, print_command_result },
	{ "vm destroy", "vm.destroy", "ID [--command-id UUID]",
	  "stop a VM, undefine it and delete its disks",
	  CTL_COMMAND_ID_HELP,
	  pos_id, 1, 1, opts_vm_op, print_command_result },
	{ "vm resize", "vm.resize",
	  "ID [--vcpus N] [--memory MIB] [--command-id UUID]",
	  "change a VM's vCPUs and memory (live where the guest allows it)",
	  "  --vcpus N          the new number of vCPUs\n"
	  "  --memory MIB       the new memory size in MiB\n"
	  "  (at least one of them; growth must fit the host's capacity)\n"
	  "  A running guest gets it at once when it stays within the\n"
	  "  maximum the VM was started with (vCPU hot-plug, memory balloon);\n"
	  "  fewer vCPUs, or more than that maximum, apply at the next boot.\n"
	  CTL_COMMAND_ID_HELP,
	  pos_id, 1, 1, opts_resize, print_resize_result },
	{ "vm snapshots", "vm.snapshots", "ID",
	  "list a VM's snapshots, oldest first",
	  NULL, pos_id, 1, 1, opts_none, print_snapshots },
	{ "vm snapshot create", "vm.snapshot.create",
	  "ID NAME [--kind full|disk] [--quiesce] [--command-id UUID]",
	  "take a snapshot of a VM",
	  "  --kind full        disk and memory: a revert resumes the guest\n"
	  "                     where it was (default)\n"
	  "  --kind disk        disk only, crash-consistent: a revert boots\n"
	  "                     the guest afresh from the snapshot's disk\n"
	  "  --quiesce          freeze the guest's file systems around a disk\n"
	  "                     snapshot (needs the QEMU guest agent)\n"
	  CTL_COMMAND_ID_HELP,
	  pos_id_snap, 2, 2, opts_snapshot, print_command_result },
	{ "vm snapshot revert", "vm.snapshot.revert",
	  "ID NAME [--command-id UUID]",
	  "return a VM to one of its snapshots",
	  CTL_COMMAND_ID_HELP,
	  pos_id_snap, 2, 2, opts_vm_op, print_command_result },
	{ "vm snapshot delete", "vm.snapshot.delete",
	  "ID NAME [--command-id UUID]",
	  "delete one of a VM's snapshots (and free its space)",
	  CTL_COMMAND_ID_HELP,
	  pos_id_snap, 2, 2, opts_vm_op, print_command_result },
	{ "commands", "commands", "[--limit N]",
	  "list recent command results, newest first",
	  "  --limit N          at most N results\n",
	  NULL, 0, 0, opts_commands, print_commands },
	/* Before "images": the first match wins. */
	{ "images gc", "images.gc", "",
	  "garbage-collect the image cache now and say what went",
	  "  Deletes the cached base images no VM disk and no running command\n"
	  "  uses that [images] gc_unused_age_s and max_cache_gib select.\n",
	  NULL, 0, 0, opts_none, print_images_gc },
	{ "images", "images", "",
	  "list the cached base images and the VMs using them",
	  NULL, NULL, 0, 0, opts_none, print_images },
	{ "log-level", "log.level", "LEVEL",
	  "set carved's log level (debug, info, warn, error)",
	  NULL, pos_level, 1, 1, opts_none, print_log_level },
	{ "drain", "node.drain", "",
	  "mark this node unschedulable: the control plane moves its VMs away",
	  NULL, NULL, 0, 0, opts_none, print_schedulable },
	{ "undrain", "node.undrain", "",
	  "make this node schedulable again",
	  NULL, NULL, 0, 0, opts_none, print_schedulable },
	{ "submit", "command.submit", "FILE|-",
	  "run a raw command (wire form, as the control plane sends it)",
	  "  FILE               the command's JSON ('-': standard input), e.g.\n"
	  "                     {\"id\":UUID,\"type\":\"vm.migrate.cancel\",\n"
	  "                      \"vm_id\":UUID,\"args\":{}}\n"
	  "                     root only, and only without a control plane\n",
	  pos_file, 1, 1, opts_none, print_command_result },
};

#define CTL_NVERBS (sizeof(ctl_verbs) / sizeof(ctl_verbs[0]))

/*
 * How many of argv's words name verb v (its name split at spaces), or 0 when
 * they do not.
 */
static int
ctl_verb_match(const struct ctl_verb *v, int argc, char **argv)
{
	const char *name = v->v_name, *sp;
	size_t len;
	int n = 0;

	for (;;) {
		sp = strchr(name, ' ');
		len = sp ? (size_t)(sp - name) : strlen(name);
		if (n >= argc || strlen(argv[n]) != len ||
		    strncmp(argv[n], name, len) != 0)
			return 0;
		n++;
		if (sp == NULL)
			return n;
		name = sp + 1;
	}
}

static const struct ctl_verb *
ctl_verb_find(int argc, char **argv, int *nwords)
{
	for (size_t i = 0; i < CTL_NVERBS; i++)
		if ((*nwords = ctl_verb_match(&ctl_verbs[i], argc, argv)) > 0)
			return &ctl_verbs[i];
	return NULL;
}

/* True when word is the first word of some multi-word verb ("vm"). */
static bool
ctl_verb_group(const char *word)
{
	size_t len = strlen(word);

	for (size_t i = 0; i < CTL_NVERBS; i++)
		if (strncmp(ctl_verbs[i].v_name, word, len) == 0 &&
		    ctl_verbs[i].v_name[len] == ' ')
			return true;
	return false;
}

static void
ctl_usage_line(FILE *fp, const struct ctl_verb *v)
{
	fprintf(fp, "usage: carvectl %s%s%s\n", v->v_name,
	    *v->v_usage ? " " : "", v->v_usage);
}

/* The verb list; group limits it to verbs starting with "group ". */
static void
ctl_list_verbs(FILE *fp, const char *group)
{
	size_t glen = group ? strlen(group) : 0;

	for (size_t i = 0; i < CTL_NVERBS; i++) {
		const struct ctl_verb *v = &ctl_verbs[i];
		if (group && (strncmp(v->v_name, group, glen) != 0 ||
		    v->v_name[glen] != ' '))
			continue;
		fprintf(fp, "  %-18s %s\n", v->v_name, v->v_help);
	}
}

static void
ctl_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: carvectl [-s SOCKET] [-c CONFIG] [--json] COMMAND [ARGS]\n"
	    "\n"
	    "commands:\n");
	ctl_list_verbs(fp, NULL);
	fprintf(fp,
	    "\n"
	    "options:\n"
	    "  -s, --socket PATH  carved's control socket (default: $" CTL_SOCKET_ENV ",\n"
	    "                     else [agent] socket of the config file, else\n"
	    "                     " CTL_DEFAULT_SOCKET ")\n"
	    "  -c, --config PATH  read the socket from this config file, even when\n"
	    "                     $" CTL_SOCKET_ENV " is set (default: " CONF_DEFAULT_PATH ",\n"
	    "                     if it exists)\n"
	    "  -j, --json         print the server's JSON instead of tables\n"
	    "  -h, --help         show this help\n"
	    "\n"
	    "'carvectl help COMMAND' shows a command's usage and options.\n");
}

static int
ctl_help(int argc, char **argv)
{
	const struct ctl_verb *v;
	int nwords;

	if (argc == 0) {
		ctl_usage(stdout);
		return CTL_EXIT_OK;
	}
	if ((v = ctl_verb_find(argc, argv, &nwords)) != NULL &&
	    nwords == argc) {
		ctl_usage_line(stdout, v);
		printf("\n%s\n", v->v_help);
		if (v->v_details != NULL)
			printf("\noptions:\n%s", v->v_details);
		return CTL_EXIT_OK;
	}
	if (argc == 1 && ctl_verb_group(argv[0])) {
		printf("%s commands:\n", argv[0]);
		ctl_list_verbs(stdout, argv[0]);
		return CTL_EXIT_OK;
	}
	fprintf(stderr, "carvectl: help: unknown command '%s'\n", argv[0]);
	return CTL_EXIT_USAGE;
}

/* ------------------------------------------------------- arguments */

/*
 * A whole non-negative decimal: no sign, no blanks, no suffix, no overflow.
 * Returns 0, or -1 for not a number, -2 for too large.
 */
static int
ctl_parse_uint(const char *s, int64_t *out)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0')
		return -1;
	if (errno == ERANGE || v > INT64_MAX)
		return -2;
	*out = (int64_t)v;
	return 0;
}

static const struct ctl_opt *
ctl_opt_find(const struct ctl_opt *opts, const char *name, size_t len)
{
	for (const struct ctl_opt *o = opts; o->o_name != NULL; o++)
		if (strlen(o->o_name) == len && strncmp(o->o_name, name, len) == 0)
			return o;
	return NULL;
}

/*
 * --network NAME[,mac=MAC] / --bridge NAME[,mac=MAC]: one more entry of
 * "networks", in the order typed across both options. Only the syntax is
 * checked here; names and MACs are the server's to judge.
 */
static int
ctl_opt_nic(const struct ctl_verb *v, const struct ctl_opt *o,
    const char *val, json_object *args, struct carve_error *err)
{
	json_object *arr, *nic;
	const char *comma = strchr(val, ',');
	char *name;

	if (comma != NULL && (strncmp(comma + 1, "mac=", 4) != 0 ||
	    strchr(comma + 1, ',') != NULL))
		return error_set(err, CARVE_EINVAL, "%s: --%s: expected %s, "
		    "got '%s'", v->v_name, o->o_name, o->o_meta, val);
	if (!json_object_object_get_ex(args, "networks", &arr)) {
		arr = json_object_new_array();
		json_object_object_add(args, "networks", arr);
	}
	name = comma != NULL ? xstrndup(val, (size_t)(comma - val)) :
	    xstrdup(val);
	nic = json_object_new_object();
	jsonx_add_string(nic, o->o_key, name);
	if (comma != NULL)
		jsonx_add_string(nic, "mac", comma + 5);
	json_object_array_add(arr, nic);
	free(name);
	return 0;
}

static int
ctl_opt_value(const struct ctl_verb *v, const struct ctl_opt *o,
    const char *val, json_object *args, struct carve_error *err)
{
	int64_t n;
	int rc;

	switch (o->o_type) {
	case CTL_OPT_FLAG:
		jsonx_add_bool(args, o->o_key, true);
		break;
	case CTL_OPT_UINT:
		if ((rc = ctl_parse_uint(val, &n)) == -2)
			return error_set(err, CARVE_EINVAL,
			    "%s: --%s: %s is too large", v->v_name, o->o_name,
			    val);
		if (rc < 0)
			return error_set(err, CARVE_EINVAL,
			    "%s: --%s: expected a whole number, got '%s'",
			    v->v_name, o->o_name, val);
		jsonx_add_int(args, o->o_key, n);
		break;
	case CTL_OPT_STRING:
		jsonx_add_string(args, o->o_key, val);
		break;
	case CTL_OPT_DISK: {
		json_object *arr, *d;

		if ((rc = ctl_parse_uint(val, &n)) == -2)
			return error_set(err, CARVE_EINVAL,
			    "%s: --%s: %s is too large", v->v_name, o->o_name,
			    val);
		if (rc < 0)
			return error_set(err, CARVE_EINVAL,
			    "%s: --%s: expected a size in GiB, got '%s'",
			    v->v_name, o->o_name, val);
		if (!json_object_object_get_ex(args, o->o_key, &arr)) {
			arr = json_object_new_array();
			json_object_object_add(args, o->o_key, arr);
		}
		d = json_object_new_object();
		jsonx_add_int(d, "size_gib", n);
		json_object_array_add(arr, d);
		break;
	}
	case CTL_OPT_LIST: {
		json_object *arr;

		if (!json_object_object_get_ex(args, o->o_key, &arr)) {
			arr = json_object_new_array();
			json_object_object_add(args, o->o_key, arr);
		}
		json_object_array_add(arr, json_object_new_string(val));
		break;
	}
	case CTL_OPT_NIC:
		return ctl_opt_nic(v, o, val, args, err);
	case CTL_OPT_FILE: {
		char *buf;
		size_t len = 0;
		FILE *f = fopen(val, "r");

		if (f == NULL)
			return error_set(err, CARVE_EINVAL, "%s: --%s: %s: %s",
			    v->v_name, o->o_name, val, strerror(errno));
		buf = xmalloc(CTL_FILE_MAX + 1);
		len = fread(buf, 1, CTL_FILE_MAX + 1, f);
		fclose(f);
		if (len > CTL_FILE_MAX) {
			free(buf);
			return error_set(err, CARVE_EINVAL, "%s: --%s: %s is "
			    "larger than %d bytes", v->v_name, o->o_name, val,
			    CTL_FILE_MAX);
		}
		/* NUL bytes and bad UTF-8 are the server's to refuse. */
		json_object_object_add(args, o->o_key,
		    json_object_new_string_len(buf, (int)len));
		free(buf);
		break;
	}
	}
	return 0;
}

/*
 * "image.url", "image.sha256", "image.format" (one option each) become the
 * "image" object the server takes.
 */
static void
ctl_nest_image(json_object *args)
{
	static const char *const keys[] = { "url", "sha256", "format" };
	json_object *img = NULL, *v;
	char flat[32];

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(flat, sizeof(flat), "image.%s", keys[i]);
		if (!json_object_object_get_ex(args, flat, &v))
			continue;
		if (img == NULL)
			img = json_object_new_object();
		json_object_object_add(img, keys[i], json_object_get(v));
		json_object_object_del(args, flat);
	}
	if (img != NULL)
		json_object_object_add(args, "image", img);
}

/* submit: args.file ('-' for stdin) becomes args.command, parsed. */
static int
ctl_load_command(const struct ctl_verb *v, json_object *args,
    struct carve_error *err)
{
	json_object *f, *cmd;
	const char *path;
	FILE *fp;
	char *buf;
	size_t len;

	if (!json_object_object_get_ex(args, "file", &f))
		return error_set(err, CARVE_EINVAL, "%s: missing FILE",
		    v->v_name);
	path = json_object_get_string(f);
	fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (fp == NULL)
		return error_set(err, CARVE_EINVAL, "%s: %s: %s", v->v_name,
		    path, strerror(errno));
	buf = xmalloc(COMMAND_MAX_BYTES + 1);
	len = fread(buf, 1, COMMAND_MAX_BYTES + 1, fp);
	if (fp != stdin)
		fclose(fp);
	if (len > COMMAND_MAX_BYTES) {
		free(buf);
		return error_set(err, CARVE_EINVAL, "%s: %s is larger than %d "
		    "bytes", v->v_name, path, COMMAND_MAX_BYTES);
	}
	cmd = jsonx_parse(buf, len, err);
	free(buf);
	if (cmd == NULL)
		return -1;
	json_object_object_del(args, "file");
	json_object_object_add(args, "command", cmd);
	return 0;
}

/*
 * Turn the words after the verb into the request's args: positional
 * arguments and --options, in any order, "--" ending the options. --json is
 * accepted here too, since people type it at the end.
 */
static int
ctl_parse_args(const struct ctl_verb *v, int argc, char **argv, bool *json,
    json_object *args, struct carve_error *err)
{
	const struct ctl_opt *o;
	const char *name, *eq, *val;
	bool options = true;
	int npos = 0;
	size_t nlen;

	for (int i = 0; i < argc; i++) {
		if (options && strcmp(argv[i], "--") == 0) {
			options = false;
			continue;
		}
		if (options && argv[i][0] == '-' && argv[i][1] != '\0') {
			if (strncmp(argv[i], "--", 2) != 0)
				return error_set(err, CARVE_EINVAL,
				    "%s: unknown option '%s'", v->v_name,
				    argv[i]);
			name = argv[i] + 2;
			eq = strchr(name, '=');
			nlen = eq ? (size_t)(eq - name) : strlen(name);
			if (eq == NULL && strcmp(name, "json") == 0) {
				*json = true;
				continue;
			}
			if ((o = ctl_opt_find(v->v_opts, name, nlen)) == NULL)
				return error_set(err, CARVE_EINVAL,
				    "%s: unknown option '--%.*s'", v->v_name,
				    (int)nlen, name);
			if (o->o_type != CTL_OPT_LIST &&
			    o->o_type != CTL_OPT_NIC &&
			    o->o_type != CTL_OPT_DISK &&
			    json_object_object_get_ex(args, o->o_key, NULL))
				return error_set(err, CARVE_EINVAL,
				    "%s: --%s given twice", v->v_name,
				    o->o_name);
			if (o->o_type == CTL_OPT_FLAG) {
				if (eq != NULL)
					return error_set(err, CARVE_EINVAL,
					    "%s: --%s takes no value",
					    v->v_name, o->o_name);
				val = NULL;
			} else if (eq != NULL) {
				val = eq + 1;
			} else if (i + 1 < argc) {
				val = argv[++i];
			} else {
				return error_set(err, CARVE_EINVAL,
				    "%s: --%s needs a value (%s)", v->v_name,
				    o->o_name, o->o_meta);
			}
			if (ctl_opt_value(v, o, val, args, err) < 0)
				return -1;
			continue;
		}
		if (npos >= v->v_max_args)
			return error_set(err, CARVE_EINVAL,
			    "%s: unexpected argument '%s'", v->v_name,
			    argv[i]);
		jsonx_add_string(args, v->v_pos[npos].p_key, argv[i]);
		npos++;
	}
	if (npos < v->v_min_args)
		return error_set(err, CARVE_EINVAL, "%s: missing %s",
		    v->v_name, v->v_pos[npos].p_meta);
	for (o = v->v_opts; o->o_name != NULL; o++)
		if (o->o_required &&
		    !json_object_object_get_ex(args, o->o_key, NULL))
			return error_set(err, CARVE_EINVAL,
			    "%s: --%s %s is required", v->v_name, o->o_name,
			    o->o_meta);
	ctl_nest_image(args);
	if (strcmp(v->v_proto, "command.submit") == 0)
		return ctl_load_command(v, args, err);
	return 0;
}

/* ---------------------------------------------------------- socket */

/*
 * Which socket to talk to: -s; else [agent] socket of the config file named
 * with -c; else $CARVE_SOCKET; else that of the default config file when it
 * exists; else the built-in default. What is typed on the command line beats
 * the environment, which beats what is found on disk. Returns a new string,
 * or NULL with err set.
 */
static char *
ctl_socket_path(const char *opt_socket, const char *opt_config,
    struct carve_error *err)
{
	struct carved_conf conf;
	const char *env, *path;
	char *sock;

	if (opt_socket != NULL)
		return xstrdup(opt_socket);
	if (opt_config == NULL && (env = getenv(CTL_SOCKET_ENV)) != NULL &&
	    *env != '\0')
		return xstrdup(env);
	path = opt_config ? opt_config : CONF_DEFAULT_PATH;
	if (opt_config == NULL && access(path, F_OK) != 0)
		return xstrdup(CTL_DEFAULT_SOCKET);
	if (access(path, R_OK) != 0) {
		if (opt_config != NULL) {
			error_set(err, CARVE_EINVAL, "cannot read %s: %s",
			    path, strerror(errno));
			return NULL;
		}
		/* Not everyone may read carved's config; carry on. */
		fprintf(stderr, "carvectl: warning: cannot read %s (%s), "
		    "using %s\n", path, strerror(errno), CTL_DEFAULT_SOCKET);
		return xstrdup(CTL_DEFAULT_SOCKET);
	}
	conf_defaults(&conf);
	if (conf_load(path, &conf, err) < 0) {
		conf_free(&conf);
		return NULL;
	}
	sock = xstrdup(conf.socket && *conf.socket ? conf.socket :
	    CTL_DEFAULT_SOCKET);
	conf_free(&conf);
	return sock;
}

static int
ctl_connect(const char *path, unsigned timeout_s, struct carve_error *err)
{
	struct sockaddr_un sun;
	struct timeval tv = { .tv_sec = (time_t)timeout_s };
	int fd, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return error_set(err, CARVE_EINVAL,
		    "cannot connect to carved at %s: socket path too long",
		    path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return error_set(err, CARVE_EINTERNAL, "socket: %s",
		    strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		saved = errno;
		close(fd);
		return error_set(err, CARVE_EUNAVAIL,
		    "cannot connect to carved at %s: %s (%s)", path,
		    strerror(saved), saved == EACCES || saved == EPERM ?
		    "are you root or in carved's socket group?" :
		    "is carved running?");
	}
	/* Blocking I/O is fine here, but never wait forever. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		saved = errno;
		close(fd);
		return error_set(err, CARVE_EINTERNAL, "setsockopt: %s",
		    strerror(saved));
	}
	return fd;
}

static int
ctl_send(int fd, const char *line, struct carve_error *err)
{
	size_t len = strlen(line), off = 0;
	ssize_t n;

	while (off < len) {
		n = send(fd, line + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set(err, CARVE_EUNAVAIL,
			    "cannot send to carved: %s",
			    errno == EAGAIN ? "timed out" : strerror(errno));
		off += (size_t)n;
	}
	return 0;
}

/*
 * Read one response line (at most CTL_MAX_LINE bytes before its '\n').
 * Returns a new NUL-terminated buffer without the '\n' and its length.
 */
static char *
ctl_recv_line(int fd, unsigned timeout_s, size_t *lenp, struct carve_error *err)
{
	size_t len = 0, cap = 4096;
	char *buf = xmalloc(cap), *nl;
	ssize_t n;

	for (;;) {
		if (len == cap) {
			cap *= 2;
			if (cap > CTL_MAX_LINE + 1)
				cap = CTL_MAX_LINE + 1;
			buf = xrealloc(buf, cap);
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				error_set(err, CARVE_EUNAVAIL,
				    "no answer from carved within %u s",
				    timeout_s);
			else
				error_set(err, CARVE_EUNAVAIL,
				    "cannot read from carved: %s",
				    strerror(errno));
			break;
		}
		if (n == 0) {
			error_set(err, CARVE_EUNAVAIL,
			    "carved closed the connection without answering");
			break;
		}
		if ((nl = memchr(buf + len, '\n', (size_t)n)) != NULL) {
			*nl = '\0';
			*lenp = (size_t)(nl - buf);
			return buf;
		}
		len += (size_t)n;
		if (len > CTL_MAX_LINE) {
			error_set(err, CARVE_EUNAVAIL,
			    "response from carved longer than %d bytes",
			    CTL_MAX_LINE);
			break;
		}
	}
	free(buf);
	return NULL;
}

/* One request, one response. Returns the line, or NULL with err set. */
static char *
ctl_roundtrip(const char *path, const char *request, unsigned timeout_s,
    size_t *lenp, struct carve_error *err)
{
	char *line = NULL;
	int fd;

	if ((fd = ctl_connect(path, timeout_s, err)) < 0)
		return NULL;
	if (ctl_send(fd, request, err) == 0)
		line = ctl_recv_line(fd, timeout_s, lenp, err);
	close(fd);
	return line;
}

/* ------------------------------------------------------------ main */

static void
ctl_print_json(json_object *obj)
{
	puts(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY |
	    JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int
ctl_run(const struct ctl_verb *v, const char *sockpath, json_object *args,
    bool json)
{
	struct carve_error err = { 0 }, remote = { 0 };
	json_object *result = NULL, *eobj, *eo, *targs, *args_t = args;
	char *request, *line;
	unsigned timeout_s = CTL_RECV_TIMEOUT_S;
	int64_t stop_s;
	size_t len = 0;
	int rc;

	/* Let a long graceful stop (or a submitted migration) finish before
	 * we give up on the answer. */
	if (json_object_object_get_ex(args, "command", &targs) &&
	    json_object_object_get_ex(targs, "args", &targs) &&
	    json_object_is_type(targs, json_type_object))
		args_t = targs;
	if (ctl_field_int(args_t, "timeout_s", &stop_s) &&
	    stop_s > CTL_RECV_TIMEOUT_S - CTL_STOP_SLACK_S &&
	    stop_s < 24 * 3600)
		timeout_s = (unsigned)stop_s + CTL_STOP_SLACK_S;

	request = ctl_request_encode(v->v_proto,
	    json_object_object_length(args) ? args : NULL);
	line = ctl_roundtrip(sockpath, request, timeout_s, &len, &err);
	free(request);
	if (line == NULL) {
		fprintf(stderr, "carvectl: %s\n", err.message);
		return CTL_EXIT_USAGE;
	}
	rc = ctl_response_decode(line, len, &result, &remote, &err);
	free(line);
	if (rc < 0) {
		fprintf(stderr, "carvectl: malformed response from carved: %s\n",
		    err.message);
		return CTL_EXIT_USAGE;
	}
	if (rc == 1) {
		fprintf(stderr, "carvectl: %s: %s\n",
		    error_code_name(remote.code), remote.message);
		if (json) {
			eobj = json_object_new_object();
			eo = json_object_new_object();
			jsonx_add_string(eo, "code",
			    error_code_name(remote.code));
			jsonx_add_string(eo, "message", remote.message);
			json_object_object_add(eobj, "error", eo);
			ctl_print_json(eobj);
			json_object_put(eobj);
		}
		return CTL_EXIT_FAILED;
	}
	if (json) {
		ctl_print_json(result);
		rc = v->v_print == print_command_result &&
		    ctl_command_failed(result) ? CTL_EXIT_FAILED : CTL_EXIT_OK;
	} else {
		rc = v->v_print(result);
	}
	json_object_put(result);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct carve_error err = { 0 };
	const struct ctl_verb *v;
	const char *opt_socket = NULL, *opt_config = NULL;
	json_object *args;
	char *sockpath;
	bool json = false;
	int ch, nwords, rc;

	/*
	 * "+": stop at the verb, whose own options are parsed below; ":": let
	 * us word the errors like every other carvectl message.
	 */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:s:c:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			opt_socket = optarg;
			break;
		case 'c':
			opt_config = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			ctl_usage(stdout);
			return CTL_EXIT_OK;
		case ':':
			fprintf(stderr, "carvectl: %s needs a value "
			    "(try 'carvectl help')\n", argv[optind - 1]);
			return CTL_EXIT_USAGE;
		default:
			if (optopt != 0)
				fprintf(stderr, "carvectl: unknown option "
				    "'-%c' (try 'carvectl help')\n", optopt);
			else
				fprintf(stderr, "carvectl: unknown option "
				    "'%s' (try 'carvectl help')\n",
				    argv[optind - 1]);
			return CTL_EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		ctl_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(argv[0], "help") == 0)
		return ctl_help(argc - 1, argv + 1);

	if ((v = ctl_verb_find(argc, argv, &nwords)) == NULL) {
		if (ctl_verb_group(argv[0])) {
			fprintf(stderr, "carvectl: %s: expected one of:\n",
			    argv[0]);
			ctl_list_verbs(stderr, argv[0]);
		} else {
			fprintf(stderr, "carvectl: unknown command '%s' "
			    "(try 'carvectl help')\n", argv[0]);
		}
		return CTL_EXIT_USAGE;
	}

	args = json_object_new_object();
	if (ctl_parse_args(v, argc - nwords, argv + nwords, &json, args,
	    &err) < 0) {
		fprintf(stderr, "carvectl: %s\n", err.message);
		ctl_usage_line(stderr, v);
		json_object_put(args);
		return CTL_EXIT_USAGE;
	}
	if ((sockpath = ctl_socket_path(opt_socket, opt_config, &err)) == NULL) {
		fprintf(stderr, "carvectl: %s\n", err.message);
		json_object_put(args);
		return CTL_EXIT_USAGE;
	}
	rc = ctl_run(v, sockpath, args, json);
	free(sockpath);
	json_object_put(args);
	return rc;
}
