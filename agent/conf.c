/*
 * carved.conf: see conf.h. One table (conf_keys) says, for every key, where
 * it lives in struct carved_conf, its type, bounds, default and meaning. The
 * parser, the defaults, conf_free and the Markdown reference all walk that
 * table, so adding a key is one line and the documentation follows it.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/command.h"
#include "common/ids.h"
#include "common/ini.h"
#include "common/xalloc.h"
#include "conf.h"

enum conf_type {
	CONF_STRING,	/* non-empty text */
	CONF_PATH,	/* absolute path */
	CONF_UINT,	/* unsigned, in [min, max] */
	CONF_ULLONG,	/* unsigned long long, in [min, max] */
	CONF_RATIO,	/* double, in (min, max] */
	CONF_NUMBER,	/* double, in [min, max] */
	CONF_LOGLEVEL,	/* enum log_level */
	CONF_DOMTYPE,	/* auto|kvm|qemu, kept as a string */
	CONF_URL,	/* https://... */
	CONF_NAMES,	/* "a, b": names of at most max bytes (conf_check) */
	CONF_BOOL,	/* true|false */
	CONF_TYPE_MAX
};

/* An empty value means "none": the field becomes NULL. */
#define CK_OPTIONAL	0x1
/* The default is computed (gethostname) rather than written in the table. */
#define CK_HOSTNAME	0x2

struct conf_key {
	const char *ck_section;
	const char *ck_key;
	enum conf_type ck_type;
	size_t ck_offset;
	unsigned long long ck_min;
	unsigned long long ck_max;
	int ck_flags;
	const char *ck_default;	/* parsed like a value from the file */
	const char *ck_help;
};

#define CONF_AT(m) offsetof(struct carved_conf, m)
/* Type handlers share one signature; not all of them need the key. */
#define UNUSED __attribute__((unused))

static const struct conf_key conf_keys[] = {
	{ "agent", "node_name", CONF_STRING, CONF_AT(node_name), 0, 0,
	    CK_HOSTNAME, NULL,
	    "Name this node is known by; 1 to 64 letters, digits, '.', '_' or "
	    "'-', starting with a letter or digit." },
	{ "agent", "state_dir", CONF_PATH, CONF_AT(state_dir), 0, 0, 0,
	    "/var/lib/carve",
	    "Journal, node identity, image cache and VM disks." },
	{ "agent", "socket", CONF_PATH, CONF_AT(socket), 0, 0, 0,
	    "/run/carve/carved.sock",
	    "Control socket that carvectl connects to." },
	{ "agent", "socket_group", CONF_STRING, CONF_AT(socket_group), 0, 0, 0,
	    "carve",
	    "Group owning the control socket; besides root, only its members "
	    "may run commands that change anything." },
	{ "agent", "log_level", CONF_LOGLEVEL, CONF_AT(log_level), 0, 0, 0,
	    "info",
	    "Least severe level logged; `carvectl log-level` changes it at run "
	    "time." },
	{ "agent", "max_concurrent_ops", CONF_UINT, CONF_AT(max_concurrent_ops),
	    1, 64, 0, "4",
	    "Hypervisor operations (create, migrate, ...) run at the same time; "
	    "the rest wait their turn." },
	{ "agent", "stop_timeout_s", CONF_UINT, CONF_AT(stop_timeout_s),
	    0, 3600, 0, "60",
	    "Seconds a guest gets to shut down gracefully before it is forced "
	    "off." },

	{ "libvirt", "uri", CONF_STRING, CONF_AT(uri), 0, 0, 0,
	    "qemu:///system",
	    "libvirt connection URI." },
	{ "libvirt", "domain_type", CONF_DOMTYPE, CONF_AT(domain_type), 0, 0, 0,
	    "auto",
	    "Domain type of new guests: `kvm` (hardware virtualisation), `qemu` "
	    "(emulation), or `auto` to probe the host." },
	{ "libvirt", "kernel_dir", CONF_PATH, CONF_AT(kernel_dir), 0, 0,
	    CK_OPTIONAL, NULL,
	    "Directory of kernels and initrds for direct kernel boot; unset "
	    "turns direct kernel boot off." },
	{ "libvirt", "console_log_dir", CONF_PATH, CONF_AT(console_log_dir),
	    0, 0, 0, "/var/log/libvirt/qemu",
	    "Where guests' serial console output is logged." },
	{ "libvirt", "storage_pool", CONF_STRING, CONF_AT(storage_pool), 0, 0,
	    0, "carve",
	    "Name of the libvirt storage pool (a directory pool at "
	    "`state_dir/disks`) that holds carve's VM disks." },

	{ "capacity", "reserved_vcpus", CONF_UINT, CONF_AT(reserved_vcpus),
	    0, 4096, 0, "0",
	    "Host CPUs kept back from guests." },
	{ "capacity", "reserved_memory_mib", CONF_ULLONG,
	    CONF_AT(reserved_memory_mib), 0, 16ULL * 1024 * 1024, 0, "512",
	    "Host memory (MiB) kept back from guests." },
	{ "capacity", "reserved_disk_gib", CONF_ULLONG,
	    CONF_AT(reserved_disk_gib), 0, 1024ULL * 1024, 0, "0",
	    "Disk space (GiB) under state_dir kept back from guest disks." },
	{ "capacity", "cpu_allocation_ratio", CONF_RATIO,
	    CONF_AT(cpu_allocation_ratio), 0, 1000, 0, "4.0",
	    "Guest vCPUs allowed per host CPU." },
	{ "capacity", "ram_allocation_ratio", CONF_RATIO,
	    CONF_AT(ram_allocation_ratio), 0, 1000, 0, "1.0",
	    "Guest memory allowed per byte of host memory." },
	{ "capacity", "disk_allocation_ratio", CONF_RATIO,
	    CONF_AT(disk_allocation_ratio), 0, 1000, 0, "1.0",
	    "Guest disk allowed per byte of disk under state_dir." },

	{ "control_plane", "url", CONF_URL, CONF_AT(cp_url), 0, 0,
	    CK_OPTIONAL, NULL,
	    "Control plane base URL; unset runs carved standalone, driven by "
	    "carvectl only." },
	{ "control_plane", "ca_file", CONF_PATH, CONF_AT(cp_ca_file), 0, 0,
	    CK_OPTIONAL, NULL,
	    "CA certificates the control plane's certificate must chain to "
	    "(pinned instead of the system store); required with url." },
	{ "control_plane", "cert_file", CONF_PATH, CONF_AT(cp_cert_file), 0, 0,
	    CK_OPTIONAL, NULL,
	    "Client certificate presented to the control plane, written at "
	    "enrolment and renewal; unset means `state_dir/client.crt`." },
	{ "control_plane", "key_file", CONF_PATH, CONF_AT(cp_key_file), 0, 0,
	    CK_OPTIONAL, NULL,
	    "Private key of cert_file, made on this host at enrolment; "
	    "carved refuses to start if group or others can read it; unset "
	    "means `state_dir/client.key`." },
	{ "control_plane", "bootstrap_token_file", CONF_PATH,
	    CONF_AT(cp_bootstrap_token_file), 0, 0, CK_OPTIONAL, NULL,
	    "File holding the token this node enrols with when it has no "
	    "usable certificate (mode 0600; never logged)." },

	{ "images", "cache_dir", CONF_PATH, CONF_AT(image_cache_dir), 0, 0,
	    CK_OPTIONAL, NULL,
	    "Base image cache (one file per sha256, shared by the VMs made "
	    "from it); unset means `state_dir/images`." },
	{ "images", "max_image_gib", CONF_ULLONG, CONF_AT(max_image_gib),
	    1, 64ULL * 1024, 0, "50",
	    "Largest base image (GiB, as downloaded) carved accepts." },
	{ "images", "download_timeout_s", CONF_UINT,
	    CONF_AT(download_timeout_s), 10, 86400, 0, "3600",
	    "Seconds one image download may take before it fails (and the "
	    "create can be retried)." },
	{ "images", "ca_file", CONF_PATH, CONF_AT(image_ca_file), 0, 0,
	    CK_OPTIONAL, NULL,
	    "CA certificates https image URLs must chain to; unset uses the "
	    "system's CA store. Images are verified by sha256 either way." },
	{ "images", "gc_interval_s", CONF_UINT, CONF_AT(gc_interval_s),
	    0, 30 * 86400, 0, "3600",
	    "Seconds between garbage-collection passes over the image cache; "
	    "0 turns the periodic pass off (`carvectl images gc` still runs "
	    "one)." },
	{ "images", "gc_unused_age_s", CONF_UINT, CONF_AT(gc_unused_age_s),
	    0, 3650 * 86400, 0, "604800",
	    "An image no VM disk and no command has used for this many seconds "
	    "is deleted; 0: never for its age alone. Images in use are never "
	    "deleted." },
	{ "images", "max_cache_gib", CONF_NUMBER, CONF_AT(max_cache_gib),
	    0, 1024 * 1024, 0, "0",
	    "Disk space (GiB, fractions allowed) the cache may take: above it, "
	    "a pass deletes the least recently used images not in use; 0: no "
	    "cap." },

	{ "resize", "max_vcpus_factor", CONF_UINT, CONF_AT(max_vcpus_factor),
	    1, 16, 0, "2",
	    "New domains are defined with room to grow: at most this many times "
	    "their vCPUs (capped by the host's CPUs), so `vm.resize` can add "
	    "vCPUs to a running guest up to it; 1 leaves no room (growth then "
	    "waits for the next boot)." },
	{ "resize", "max_memory_factor", CONF_UINT, CONF_AT(max_memory_factor),
	    1, 16, 0, "2",
	    "Likewise for memory: the domain's maximum memory is this many "
	    "times its size and the balloon holds it at the size, so memory "
	    "can grow live up to the maximum. The guest kernel sees the "
	    "maximum at boot (its page tables cost about 1.5% of it) and can "
	    "use it until its balloon driver starts." },

	{ "metrics", "listen", CONF_STRING, CONF_AT(metrics_listen), 0, 0,
	    CK_OPTIONAL, NULL,
	    "host:port of the Prometheus metrics endpoint; unset turns it "
	    "off." },

	{ "network", "networks", CONF_NAMES, CONF_AT(networks), 0,
	    IDS_NAME_MAX, 0, NULL,
	    "libvirt networks a VM's NICs may join (`{\"network\": NAME}` in "
	    "vm.create's `networks`); a create naming any other is refused. "
	    "Unset: none." },
	{ "network", "bridges", CONF_NAMES, CONF_AT(bridges), 0,
	    VM_BRIDGE_NAME_MAX, 0, NULL,
	    "Host bridges a VM's NICs may join (`{\"bridge\": NAME}` in "
	    "vm.create's `networks`); a create naming any other is refused. "
	    "Unset: none." },
	{ "migration", "libvirt_uri", CONF_STRING, CONF_AT(mig_libvirt_uri),
	    0, 0, CK_OPTIONAL, NULL,
	    "libvirt URI of this host as sources of live migrations reach it "
	    "(e.g. `qemu+tls://host.example/system`); unset refuses incoming "
	    "migrations." },
	{ "migration", "address", CONF_STRING, CONF_AT(mig_address), 0, 0,
	    CK_OPTIONAL, NULL,
	    "Host name or address sources send migration data to "
	    "(`tcp://address`); unset lets libvirt use the host name." },
	{ "migration", "tls", CONF_BOOL, CONF_AT(mig_tls), 0, 0, 0, "false",
	    "Encrypt outgoing migration data with TLS (libvirt's "
	    "`VIR_MIGRATE_TLS`; both hosts need libvirt's TLS certificates)." },
	{ "migration", "max_incoming", CONF_UINT, CONF_AT(mig_max_incoming),
	    1, 64, 0, "1",
	    "Incoming migrations (prepared, not yet finished) at the same "
	    "time; more are refused with `insufficient_capacity`." },
	{ "migration", "max_outgoing", CONF_UINT, CONF_AT(mig_max_outgoing),
	    1, 64, 0, "1",
	    "Outgoing migrations at the same time; more are refused with "
	    "`conflict`." },
};

#define CONF_NKEYS (sizeof(conf_keys) / sizeof(conf_keys[0]))

/*
 * Per type: how a value is parsed into the field, what it must look like
 * (shared by the error message and the reference, so they agree), and
 * whether the field is an owned string.
 */
struct conf_type_ops {
	int (*ct_parse)(const struct conf_key *, const char *, void *);
	void (*ct_expect)(const struct conf_key *, char *, size_t);
	bool ct_owned;
	/* Fields that own more than one string: release, deep-copy in place. */
	void (*ct_free)(void *);
	void (*ct_dup)(void *);
};

static const char *const conf_domain_types[] = { "auto", "kvm", "qemu" };

/* Replace an owned string field. */
static void
conf_store(void *field, const char *value)
{
	char **p = field;

	free(*p);
	*p = xstrdup(value);
}

static int
conf_parse_string(const struct conf_key *k UNUSED, const char *v, void *field)
{
	if (*v == '\0')
		return -1;
	conf_store(field, v);
	return 0;
}

static int
conf_parse_path(const struct conf_key *k UNUSED, const char *v, void *field)
{
	/* carved chdirs nowhere, but systemd's cwd is not the operator's. */
	if (v[0] != '/')
		return -1;
	conf_store(field, v);
	return 0;
}

/* Strictly decimal: strtoull alone would take " 1", "+1" and wrap "-1". */
static int
conf_parse_ull(const struct conf_key *k, const char *v, unsigned long long *out)
{
	unsigned long long n;
	char *end;

	if (v[0] < '0' || v[0] > '9')
		return -1;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < k->ck_min || n > k->ck_max)
		return -1;
	*out = n;
	return 0;
}

static int
conf_parse_uint(const struct conf_key *k, const char *v, void *field)
{
	unsigned long long n;

	if (conf_parse_ull(k, v, &n) == -1)
		return -1;
	/* The table's bounds keep n within unsigned. */
	*(unsigned *)field = (unsigned)n;
	return 0;
}

static int
conf_parse_ullong(const struct conf_key *k, const char *v, void *field)
{
	return conf_parse_ull(k, v, field);
}

static int
conf_parse_ratio(const struct conf_key *k, const char *v, void *field)
{
	double d;
	char *end;

	/* Plain decimal only: no "nan", "inf", hex floats or a sign. */
	if (!((v[0] >= '0' && v[0] <= '9') || v[0] == '.') ||
	    v[strspn(v, "0123456789.eE+-")] != '\0')
		return -1;
	errno = 0;
	d = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' ||
	    !(d > (double)k->ck_min && d <= (double)k->ck_max))
		return -1;
	*(double *)field = d;
	return 0;
}

static int
conf_parse_number(const struct conf_key *k, const char *v, void *field)
{
	double d;
	char *end;

	/* As conf_parse_ratio, with both bounds allowed. */
	if (!((v[0] >= '0' && v[0] <= '9') || v[0] == '.') ||
	    v[strspn(v, "0123456789.eE+-")] != '\0')
		return -1;
	errno = 0;
	d = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' ||
	    !(d >= (double)k->ck_min && d <= (double)k->ck_max))
		return -1;
	*(double *)field = d;
	return 0;
}

static int
conf_parse_loglevel(const struct conf_key *k UNUSED, const char *v, void *field)
{
	return log_level_parse(v, field);
}

static int
conf_parse_domtype(const struct conf_key *k UNUSED, const char *v, void *field)
{
	for (size_t i = 0; i < sizeof(conf_domain_types) /
	    sizeof(conf_domain_types[0]); i++) {
		if (strcmp(v, conf_domain_types[i]) == 0) {
			conf_store(field, v);
			return 0;
		}
	}
	return -1;
}

static int
conf_parse_url(const struct conf_key *k UNUSED, const char *v, void *field)
{
	static const char scheme[] = "https://";

	/* TLS is never optional towards the control plane. */
	if (strncmp(v, scheme, sizeof(scheme) - 1) != 0 ||
	    v[sizeof(scheme) - 1] == '\0' || v[sizeof(scheme) - 1] == '/' ||
	    strpbrk(v, " \t") != NULL)
		return -1;
	conf_store(field, v);
	return 0;
}

static int
conf_parse_bool(const struct conf_key *k UNUSED, const char *v, void *field)
{
	if (strcmp(v, "true") == 0)
		*(bool *)field = true;
	else if (strcmp(v, "false") == 0)
		*(bool *)field = false;
	else
		return -1;
	return 0;
}

static void
conf_expect_bool(const struct conf_key *k UNUSED, char *buf, size_t size)
{
	snprintf(buf, size, "true or false");
}

static void
conf_names_free(void *field)
{
	struct conf_names *l = field;

	for (size_t i = 0; i < l->cn_count; i++)
		free(l->cn_names[i]);
	free(l->cn_names);
	l->cn_names = NULL;
	l->cn_count = 0;
}

static void
conf_names_dup(void *field)
{
	struct conf_names *l = field;
	char **names;

	if (l->cn_count == 0)
		return;
	names = xcalloc(l->cn_count, sizeof(*names));
	for (size_t i = 0; i < l->cn_count; i++)
		names[i] = xstrdup(l->cn_names[i]);
	l->cn_names = names;
}

/*
 * Split at commas, trimming blanks; an empty value is an empty list, an
 * empty entry ("a,,b", "a,") an error. The names themselves are checked by
 * conf_check, which can say which one is wrong and why.
 */
static int
conf_parse_names(const struct conf_key *k UNUSED, const char *v, void *field)
{
	struct conf_names l = { NULL, 0 };
	const char *p = v, *end;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0') {
		conf_names_free(field);
		return 0;
	}
	for (;;) {
		size_t n;

		end = strchr(p, ',');
		n = end != NULL ? (size_t)(end - p) : strlen(p);
		while (n > 0 && (p[0] == ' ' || p[0] == '\t')) {
			p++;
			n--;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 0) {
			conf_names_free(&l);
			return -1;
		}
		l.cn_names = xreallocarray(l.cn_names, l.cn_count + 1,
		    sizeof(*l.cn_names));
		l.cn_names[l.cn_count++] = xstrndup(p, n);
		if (end == NULL)
			break;
		p = end + 1;
	}
	conf_names_free(field);
	*(struct conf_names *)field = l;
	return 0;
}

bool
conf_names_has(const struct conf_names *list, const char *name)
{
	for (size_t i = 0; i < list->cn_count; i++)
		if (strcmp(list->cn_names[i], name) == 0)
			return true;
	return false;
}

static void
conf_expect_string(const struct conf_key *k UNUSED, char *buf, size_t size)
{
	snprintf(buf, size, "non-empty text");
}

static void
conf_expect_path(const struct conf_key *k UNUSED, char *buf, size_t size)
{
	snprintf(buf, size, "an absolute path");
}

static void
conf_expect_integer(const struct conf_key *k, char *buf, size_t size)
{
	snprintf(buf, size, "an integer between %llu and %llu", k->ck_min,
	    k->ck_max);
}

static void
conf_expect_ratio(const struct conf_key *k, char *buf, size_t size)
{
	snprintf(buf, size, "a number greater than %llu and at most %llu",
	    k->ck_min, k->ck_max);
}

static void
conf_expect_number(const struct conf_key *k, char *buf, size_t size)
{
	snprintf(buf, size, "a number between %llu and %llu", k->ck_min,
	    k->ck_max);
}

static void
conf_expect_loglevel(const struct conf_key *k UNUSED, char *buf, size_t size)
{
	snprintf(buf, size, "one of debug, info, warn, error");
}

static void
conf_expect_domtype(const struct conf_key *k UNUSED, char *buf, size_t size)
{
	snprintf(buf, size, "one of auto, kvm, qemu");
}

static void
conf_expect_url(const struct conf_key *k UNUSED, char *buf, size_t size)
{
	snprintf(buf, size, "an https:// URL");
}

static void
conf_expect_names(const struct conf_key *k, char *buf, size_t size)
{
	snprintf(buf, size, "names of at most %llu bytes, comma-separated, "
	    "or empty for none", k->ck_max);
}

static const struct conf_type_ops conf_types[CONF_TYPE_MAX] = {
	[CONF_STRING] = { conf_parse_string, conf_expect_string, true },
	[CONF_PATH] = { conf_parse_path, conf_expect_path, true },
	[CONF_UINT] = { conf_parse_uint, conf_expect_integer, false },
	[CONF_ULLONG] = { conf_parse_ullong, conf_expect_integer, false },
	[CONF_RATIO] = { conf_parse_ratio, conf_expect_ratio, false },
	[CONF_NUMBER] = { conf_parse_number, conf_expect_number, false },
	[CONF_LOGLEVEL] = { conf_parse_loglevel, conf_expect_loglevel, false },
	[CONF_DOMTYPE] = { conf_parse_domtype, conf_expect_domtype, true },
	[CONF_URL] = { conf_parse_url, conf_expect_url, true },
	[CONF_NAMES] = { conf_parse_names, conf_expect_names, false,
	    conf_names_free, conf_names_dup },
	[CONF_BOOL] = { conf_parse_bool, conf_expect_bool, false },
};

static void *
conf_field(struct carved_conf *conf, const struct conf_key *k)
{
	return (char *)conf + k->ck_offset;
}

static void
conf_expect(const struct conf_key *k, char *buf, size_t size)
{
	size_t n;

	conf_types[k->ck_type].ct_expect(k, buf, size);
	n = strlen(buf);
	if (k->ck_flags & CK_OPTIONAL)
		snprintf(buf + n, size - n, ", or empty for none");
}

/* Parse value into k's field; on error, err says what was expected. */
static int
conf_set(struct carved_conf *conf, const struct conf_key *k,
    const char *value, struct carve_error *err)
{
	char expect[160];
	char **owned;

	if ((k->ck_flags & CK_OPTIONAL) && *value == '\0') {
		owned = conf_field(conf, k);
		free(*owned);
		*owned = NULL;
		return 0;
	}
	if (conf_types[k->ck_type].ct_parse(k, value, conf_field(conf, k)) == 0)
		return 0;
	conf_expect(k, expect, sizeof(expect));
	return error_set(err, CARVE_EINVAL, "[%s] %s: must be %s, got \"%s\"",
	    k->ck_section, k->ck_key, expect, value);
}

static const struct conf_key *
conf_lookup(const char *section, const char *key)
{
	for (size_t i = 0; i < CONF_NKEYS; i++)
		if (strcmp(conf_keys[i].ck_section, section) == 0 &&
		    strcmp(conf_keys[i].ck_key, key) == 0)
			return &conf_keys[i];
	return NULL;
}

static const struct conf_key *
conf_key_of(size_t offset)
{
	for (size_t i = 0; i < CONF_NKEYS; i++)
		if (conf_keys[i].ck_offset == offset)
			return &conf_keys[i];
	return NULL;
}

void
conf_defaults(struct carved_conf *conf)
{
	char host[HOST_NAME_MAX + 1];

	memset(conf, 0, sizeof(*conf));
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];

		if (k->ck_default != NULL && conf_set(conf, k, k->ck_default,
		    NULL) == -1) {
			/* The table contradicts itself: a bug, caught by tests. */
			fprintf(stderr, "level=fatal comp=conf msg=\"bad default "
			    "for [%s] %s\"\n", k->ck_section, k->ck_key);
			abort();
		}
		/* An unusable host name is reported when the config is loaded. */
		if ((k->ck_flags & CK_HOSTNAME) &&
		    gethostname(host, sizeof(host)) == 0) {
			host[sizeof(host) - 1] = '\0';
			conf_store(conf_field(conf, k), host);
		}
	}
}

void
conf_free(struct carved_conf *conf)
{
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		const struct conf_type_ops *t = &conf_types[conf_keys[i].ck_type];
		char **p;

		if (t->ct_free != NULL)
			t->ct_free(conf_field(conf, &conf_keys[i]));
		if (!t->ct_owned)
			continue;
		p = conf_field(conf, &conf_keys[i]);
		free(*p);
		*p = NULL;
	}
}

/* A deep copy, so a failed load can leave the caller's struct untouched. */
static void
conf_copy(struct carved_conf *dst, const struct carved_conf *src)
{
	*dst = *src;
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		const struct conf_type_ops *t = &conf_types[conf_keys[i].ck_type];
		char **p;

		if (t->ct_dup != NULL)
			t->ct_dup(conf_field(dst, &conf_keys[i]));
		if (!t->ct_owned)
			continue;
		p = conf_field(dst, &conf_keys[i]);
		if (*p != NULL)
			*p = xstrdup(*p);
	}
}

struct conf_parse {
	struct carved_conf *cp_conf;
	const char *cp_name;
	unsigned cp_line[CONF_NKEYS];	/* where each key was set; 0 = not */
};

static int
conf_key_cb(const char *section, const char *key, const char *value,
    unsigned line, struct carve_error *err, void *arg)
{
	struct conf_parse *cp = arg;
	const struct conf_key *k;

	if ((k = conf_lookup(section, key)) == NULL)
		return error_set(err, CARVE_EINVAL, "unknown key \"%s\" in "
		    "section [%s]", key, section);
	cp->cp_line[k - conf_keys] = line;
	return conf_set(cp->cp_conf, k, value, err);
}

/* "name:line: " for a key set in the file, "name: " for one that was not. */
static int
conf_error_at(const struct conf_parse *cp, const struct conf_key *k,
    struct carve_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
conf_error_at(const struct conf_parse *cp, const struct conf_key *k,
    struct carve_error *err, const char *fmt, ...)
{
	char msg[CARVE_ERRMSG_MAX];
	unsigned line = cp->cp_line[k - conf_keys];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line == 0)
		return error_set(err, CARVE_EINVAL, "%s: %s", cp->cp_name, msg);
	return error_set(err, CARVE_EINVAL, "%s:%u: %s", cp->cp_name, line, msg);
}

/* Each name of a list: a valid name, short enough, listed once. */
static int
conf_check_names(const struct conf_parse *cp, const struct conf_key *k,
    struct carve_error *err)
{
	const struct conf_names *l = conf_field(cp->cp_conf, k);
	struct carve_error nerr = { 0 };
	char what[IDS_NAME_MAX * 2 + 64];

	for (size_t i = 0; i < l->cn_count; i++) {
		const char *name = l->cn_names[i];

		/* Quoted as written: the whole entry is the operator's. */
		snprintf(what, sizeof(what), "[%s] %s: \"%.*s\"",
		    k->ck_section, k->ck_key, IDS_NAME_MAX + 1, name);
		if (ids_name_check(name, what, &nerr) == -1)
			return conf_error_at(cp, k, err, "%s", nerr.message);
		if (strlen(name) > k->ck_max)
			return conf_error_at(cp, k, err, "%s is %zu bytes long; "
			    "at most %llu are allowed", what, strlen(name),
			    k->ck_max);
		for (size_t j = 0; j < i; j++)
			if (strcmp(l->cn_names[j], name) == 0)
				return conf_error_at(cp, k, err, "%s is listed "
				    "twice", what);
	}
	return 0;
}

/* Rules that span keys, checked once the whole file is read. */
static int
conf_check(const struct conf_parse *cp, struct carve_error *err)
{
	static const size_t needs_url[] = {
		CONF_AT(cp_ca_file), CONF_AT(cp_cert_file), CONF_AT(cp_key_file),
		CONF_AT(cp_bootstrap_token_file),
	};
	struct carved_conf *conf = cp->cp_conf;
	const struct conf_key *k;
	struct carve_error nerr = { 0 };

	for (size_t i = 0; i < sizeof(needs_url) / sizeof(needs_url[0]); i++) {
		k = conf_key_of(needs_url[i]);
		if (conf->cp_url == NULL &&
		    *(char **)conf_field(conf, k) != NULL)
			return conf_error_at(cp, k, err, "[control_plane] %s is "
			    "set but url is not (without url, carved runs "
			    "standalone)", k->ck_key);
	}

	for (size_t i = 0; i < CONF_NKEYS; i++)
		if (conf_keys[i].ck_type == CONF_NAMES &&
		    conf_check_names(cp, &conf_keys[i], err) == -1)
			return -1;
	/* It becomes part of a URI handed to libvirt. */
	k = conf_key_of(CONF_AT(mig_address));
	if (conf->mig_address != NULL &&
	    strspn(conf->mig_address, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:") !=
	    strlen(conf->mig_address))
		return conf_error_at(cp, k, err, "[migration] address must be a "
		    "host name or an IP address");
	k = conf_key_of(CONF_AT(mig_libvirt_uri));
	if (conf->mig_libvirt_uri != NULL &&
	    (strstr(conf->mig_libvirt_uri, "://") == NULL ||
	    strpbrk(conf->mig_libvirt_uri, " \t\"'<>\\") != NULL))
		return conf_error_at(cp, k, err, "[migration] libvirt_uri must "
		    "be a libvirt URI such as qemu+tls://HOST/system");

	k = conf_key_of(CONF_AT(node_name));
	if (cp->cp_line[k - conf_keys] != 0) {
		if (ids_name_check(conf->node_name, "[agent] node_name",
		    &nerr) == -1)
			return conf_error_at(cp, k, err, "%s", nerr.message);
	} else if (ids_name_check(conf->node_name, "the host name", &nerr) == -1) {
		return conf_error_at(cp, k, err, "%s; set node_name in [agent]",
		    nerr.message);
	}
	return 0;
}

/*
 * Parse path (or buf when path is NULL) into a copy of conf, and swap the
 * copy in only if everything checked out.
 */
static int
conf_load_from(const char *path, const char *buf, size_t len,
    const char *name, struct carved_conf *conf, struct carve_error *err)
{
	struct carved_conf tmp;
	struct conf_parse cp = { 0 };
	int rc;

	conf_copy(&tmp, conf);
	cp.cp_conf = &tmp;
	cp.cp_name = name != NULL ? name : "<config>";
	if (path != NULL)
		rc = ini_parse_file(path, conf_key_cb, err, &cp);
	else
		rc = ini_parse_buf(buf, len, cp.cp_name, conf_key_cb, err, &cp);
	if (rc == -1 || conf_check(&cp, err) == -1) {
		conf_free(&tmp);
		return -1;
	}
	conf_free(conf);
	*conf = tmp;
	return 0;
}

int
conf_load(const char *path, struct carved_conf *conf, struct carve_error *err)
{
	return conf_load_from(path, NULL, 0, path, conf, err);
}

int
conf_load_buf(const char *buf, size_t len, const char *name,
    struct carved_conf *conf, struct carve_error *err)
{
	return conf_load_from(NULL, buf, len, name, conf, err);
}

void
conf_print_reference(FILE *out)
{
	const char *section = NULL;
	char expect[160];

	for (size_t i = 0; i < CONF_NKEYS; i++) {
		const struct conf_key *k = &conf_keys[i];

		if (section == NULL || strcmp(section, k->ck_section) != 0) {
			section = k->ck_section;
			fprintf(out, "%s### [%s]\n\n"
			    "| Key | Default | Allowed | Meaning |\n"
			    "|-----|---------|---------|---------|\n",
			    i == 0 ? "" : "\n", section);
		}
		conf_expect(k, expect, sizeof(expect));
		fprintf(out, "| `%s` | ", k->ck_key);
		if (k->ck_flags & CK_HOSTNAME)
			fprintf(out, "the host name");
		else if (k->ck_default == NULL)
			fprintf(out, "none");
		else
			fprintf(out, "`%s`", k->ck_default);
		fprintf(out, " | %s | %s |\n", expect, k->ck_help);
	}
}
