/*
 * Unit tests for agent/conf.c: defaults, every key parsed, boundary values,
 * and the exact message an operator gets for each mistake. One TAP test per
 * table row.
 */
#include "config.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* Every cmocka test takes a state; most of these do not use it. */
#define UNUSED __attribute__((unused))

#include "agent/conf.h"
#include "common/xalloc.h"

static const char full_conf[] =
    "# every key, none at its default\n"
    "[agent]\n"
    "node_name = node-01.example\n"
    "state_dir = /srv/carve\n"
    "socket = /run/carve/test.sock\n"
    "socket_group = wheel\n"
    "log_level = debug\n"
    "max_concurrent_ops = 8\n"
    "stop_timeout_s = 120\n"
    "\n"
    "[libvirt]\n"
    "uri = test:///default\n"
    "domain_type = qemu\n"
    "kernel_dir = /var/lib/carve/kernels\n"
    "console_log_dir = \"/var/log/carve/console logs\"\n"
    "\n"
    "[capacity]\n"
    "reserved_vcpus = 2\n"
    "reserved_memory_mib = 2048\n"
    "reserved_disk_gib = 50\n"
    "cpu_allocation_ratio = 8\n"
    "ram_allocation_ratio = 1.5\n"
    "disk_allocation_ratio = 0.9\n"
    "\n"
    "[control_plane]\n"
    "url = https://cp.example:8443/\n"
    "ca_file = /etc/carve/ca.pem\n"
    "cert_file = /etc/carve/node.pem\n"
    "key_file = /etc/carve/node.key\n"
    "bootstrap_token_file = /etc/carve/token\n"
    "\n"
    "[metrics]\n"
    "listen = 127.0.0.1:9464\n"
    "\n"
    "[network]\n"
    "networks = default, tenant-1\n"
    "bridges = br0\n";

static char *
host_name(void)
{
	char host[HOST_NAME_MAX + 1];

	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	return xstrdup(host);
}

static void
assert_defaults(const struct carved_conf *c)
{
	char *host = host_name();

	assert_string_equal(c->node_name, host);
	assert_string_equal(c->state_dir, "/var/lib/carve");
	assert_string_equal(c->socket, "/run/carve/carved.sock");
	assert_string_equal(c->socket_group, "carve");
	assert_int_equal(c->log_level, LOG_LVL_INFO);
	assert_int_equal(c->max_concurrent_ops, 4);
	assert_int_equal(c->stop_timeout_s, 60);
	assert_string_equal(c->uri, "qemu:///system");
	assert_string_equal(c->domain_type, "auto");
	assert_null(c->kernel_dir);
	assert_string_equal(c->console_log_dir, "/var/log/libvirt/qemu");
	assert_int_equal(c->reserved_vcpus, 0);
	assert_int_equal(c->reserved_memory_mib, 512);
	assert_int_equal(c->reserved_disk_gib, 0);
	assert_true(c->cpu_allocation_ratio == 4.0);
	assert_true(c->ram_allocation_ratio == 1.0);
	assert_true(c->disk_allocation_ratio == 1.0);
	assert_null(c->cp_url);
	assert_null(c->cp_ca_file);
	assert_null(c->cp_cert_file);
	assert_null(c->cp_key_file);
	assert_null(c->cp_bootstrap_token_file);
	assert_null(c->metrics_listen);
	assert_int_equal(c->max_vcpus_factor, 2);
	assert_int_equal(c->max_memory_factor, 2);
	assert_int_equal(c->networks.cn_count, 0);
	assert_null(c->networks.cn_names);
	assert_int_equal(c->bridges.cn_count, 0);
	assert_null(c->bridges.cn_names);
	assert_int_equal(c->gc_interval_s, 3600);
	assert_int_equal(c->gc_unused_age_s, 7 * 86400);
	assert_true(c->max_cache_gib == 0.0);
	assert_null(c->mig_libvirt_uri);
	assert_null(c->mig_address);
	assert_false(c->mig_tls);
	assert_int_equal(c->mig_max_incoming, 1);
	assert_int_equal(c->mig_max_outgoing, 1);
	free(host);
}

static void
test_defaults(void **state UNUSED)
{
	struct carved_conf c;

	conf_defaults(&c);
	assert_defaults(&c);
	conf_free(&c);
}

static void
test_empty_file(void **state UNUSED)
{
	struct carved_conf c;
	struct carve_error err = { 0 };

	conf_defaults(&c);
	assert_int_equal(conf_load_buf("", 0, "t.conf", &c, &err), 0);
	assert_defaults(&c);
	conf_free(&c);
}

static void
test_full(void **state UNUSED)
{
	struct carved_conf c;
	struct carve_error err = { 0 };

	conf_defaults(&c);
	assert_int_equal(conf_load_buf(full_conf, strlen(full_conf), "t.conf",
	    &c, &err), 0);
	assert_string_equal(c.node_name, "node-01.example");
	assert_string_equal(c.state_dir, "/srv/carve");
	assert_string_equal(c.socket, "/run/carve/test.sock");
	assert_string_equal(c.socket_group, "wheel");
	assert_int_equal(c.log_level, LOG_LVL_DEBUG);
	assert_int_equal(c.max_concurrent_ops, 8);
	assert_int_equal(c.stop_timeout_s, 120);
	assert_string_equal(c.uri, "test:///default");
	assert_string_equal(c.domain_type, "qemu");
	assert_string_equal(c.kernel_dir, "/var/lib/carve/kernels");
	assert_string_equal(c.console_log_dir, "/var/log/carve/console logs");
	assert_int_equal(c.reserved_vcpus, 2);
	assert_int_equal(c.reserved_memory_mib, 2048);
	assert_int_equal(c.reserved_disk_gib, 50);
	assert_true(c.cpu_allocation_ratio == 8.0);
	assert_true(c.ram_allocation_ratio == 1.5);
	assert_true(c.disk_allocation_ratio == 0.9);
	assert_string_equal(c.cp_url, "https://cp.example:8443/");
	assert_string_equal(c.cp_ca_file, "/etc/carve/ca.pem");
	assert_string_equal(c.cp_cert_file, "/etc/carve/node.pem");
	assert_string_equal(c.cp_key_file, "/etc/carve/node.key");
	assert_string_equal(c.cp_bootstrap_token_file, "/etc/carve/token");
	assert_string_equal(c.metrics_listen, "127.0.0.1:9464");
	assert_int_equal(c.networks.cn_count, 2);
	assert_string_equal(c.networks.cn_names[0], "default");
	assert_string_equal(c.networks.cn_names[1], "tenant-1");
	assert_true(conf_names_has(&c.networks, "tenant-1"));
	assert_false(conf_names_has(&c.networks, "tenant"));
	assert_false(conf_names_has(&c.networks, "br0"));
	assert_int_equal(c.bridges.cn_count, 1);
	assert_string_equal(c.bridges.cn_names[0], "br0");
	assert_true(conf_names_has(&c.bridges, "br0"));
	conf_free(&c);
	assert_null(c.node_name);
	assert_null(c.cp_url);
	assert_null(c.networks.cn_names);
	assert_int_equal(c.networks.cn_count, 0);
}

/* A load that fails part-way leaves the struct exactly as it was. */
static void
test_failed_load_keeps_defaults(void **state UNUSED)
{
	static const char text[] =
	    "[agent]\nstate_dir = /srv\nmax_concurrent_ops = 9\n"
	    "[libvirt]\nkernel_dir = /k\n[control_plane]\nurl = http://cp\n";
	struct carved_conf c;
	struct carve_error err = { 0 };

	conf_defaults(&c);
	assert_int_equal(conf_load_buf(text, strlen(text), "t.conf", &c, &err),
	    -1);
	assert_int_equal(err.code, CARVE_EINVAL);
	assert_string_equal(err.message, "t.conf:7: [control_plane] url: must "
	    "be an https:// URL, or empty for none, got \"http://cp\"");
	assert_defaults(&c);
	conf_free(&c);
}

/* Loading over a loaded config changes only the keys the file sets. */
static void
test_load_over(void **state UNUSED)
{
	static const char more[] =
	    "[agent]\nmax_concurrent_ops = 2\n[libvirt]\nkernel_dir =\n";
	struct carved_conf c;
	struct carve_error err = { 0 };

	conf_defaults(&c);
	assert_int_equal(conf_load_buf(full_conf, strlen(full_conf), "a.conf",
	    &c, &err), 0);
	assert_int_equal(conf_load_buf(more, strlen(more), "b.conf", &c, &err),
	    0);
	assert_int_equal(c.max_concurrent_ops, 2);
	assert_null(c.kernel_dir);
	assert_string_equal(c.state_dir, "/srv/carve");
	assert_string_equal(c.cp_url, "https://cp.example:8443/");
	conf_free(&c);
}

/*
 * Lists are deep-copied into the attempt and swapped in only on success:
 * a failed load keeps them, a later one replaces or empties them.
 */
static void
test_load_over_lists(void **state UNUSED)
{
	static const char bad[] = "[network]\nnetworks = x\nbridges = a b\n";
	static const char other[] = "[network]\nnetworks = n2\nbridges =\n";
	struct carved_conf c;
	struct carve_error err = { 0 };

	conf_defaults(&c);
	assert_int_equal(conf_load_buf(full_conf, strlen(full_conf), "a.conf",
	    &c, &err), 0);
	assert_int_equal(conf_load_buf(bad, strlen(bad), "b.conf", &c, &err),
	    -1);
	assert_string_equal(err.message, "b.conf:3: [network] bridges: \"a b\" "
	    "may only contain letters, digits, '.', '_' and '-' (found byte "
	    "0x20 at offset 1)");
	assert_int_equal(c.networks.cn_count, 2);
	assert_string_equal(c.networks.cn_names[1], "tenant-1");
	assert_int_equal(c.bridges.cn_count, 1);
	assert_int_equal(conf_load_buf(other, strlen(other), "c.conf", &c,
	    &err), 0);
	assert_int_equal(c.networks.cn_count, 1);
	assert_string_equal(c.networks.cn_names[0], "n2");
	assert_int_equal(c.bridges.cn_count, 0);
	assert_false(conf_names_has(&c.bridges, "br0"));
	conf_free(&c);
}

static void
test_conf_free(void **state UNUSED)
{
	struct carved_conf c;

	/* Twice, and on a struct that never held anything. */
	conf_defaults(&c);
	conf_free(&c);
	conf_free(&c);
	memset(&c, 0, sizeof(c));
	conf_free(&c);
}

static char *
write_temp(const char *data)
{
	char *path = xstrdup("/tmp/test_conf.XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
	return path;
}

static void
test_file(void **state UNUSED)
{
	struct carved_conf c;
	struct carve_error err = { 0 };
	char *path = write_temp(full_conf);
	char *bad = write_temp("[agent]\nsocket = carved.sock\n");
	char *expect = xasprintf("%s:2: [agent] socket: must be an absolute "
	    "path, got \"carved.sock\"", bad);

	conf_defaults(&c);
	assert_int_equal(conf_load(path, &c, &err), 0);
	assert_string_equal(c.node_name, "node-01.example");
	assert_int_equal(conf_load(bad, &c, &err), -1);
	assert_string_equal(err.message, expect);
	assert_string_equal(c.socket, "/run/carve/test.sock");
	error_clear(&err);
	assert_int_equal(conf_load("/nonexistent/carved.conf", &c, &err), -1);
	assert_int_equal(err.code, CARVE_EINVAL);
	assert_string_equal(err.message, "cannot read /nonexistent/carved.conf: "
	    "No such file or directory");
	conf_free(&c);
	unlink(path);
	unlink(bad);
	free(path);
	free(bad);
	free(expect);
}

/* The reference is generated from the parser's table: it lists every key. */
static void
test_reference(void **state UNUSED)
{
	static const char *const want[] = {
		"### [agent]\n", "### [libvirt]\n", "### [capacity]\n",
		"### [control_plane]\n", "### [resize]\n", "### [metrics]\n",
		"| `max_vcpus_factor` | `2` | an integer between 1 and 16 |",
		"| `max_memory_factor` | `2` | an integer between 1 and 16 |",
		"| `node_name` | the host name |",
		"| `state_dir` | `/var/lib/carve` | an absolute path |",
		"| `socket` | `/run/carve/carved.sock` |",
		"| `socket_group` | `carve` |", "| `log_level` | `info` |",
		"| `max_concurrent_ops` | `4` | an integer between 1 and 64 |",
		"| `stop_timeout_s` | `60` |", "| `uri` | `qemu:///system` |",
		"| `domain_type` | `auto` | one of auto, kvm, qemu |",
		"| `kernel_dir` | none | an absolute path, or empty for none |",
		"| `console_log_dir` |", "| `reserved_vcpus` | `0` |",
		"| `reserved_memory_mib` | `512` |", "| `reserved_disk_gib` |",
		("| `cpu_allocation_ratio` | `4.0` | a number greater than 0 "
		    "and at most 1000 |"),
		"| `ram_allocation_ratio` | `1.0` |",
		"| `disk_allocation_ratio` | `1.0` |",
		"| `url` | none | an https:// URL, or empty for none |",
		"| `ca_file` |", "| `cert_file` |", "| `key_file` |",
		"| `bootstrap_token_file` |", "| `listen` | none |",
		"### [network]\n",
		("| `networks` | none | names of at most 64 bytes, "
		    "comma-separated, or empty for none |"),
		("| `bridges` | none | names of at most 15 bytes, "
		    "comma-separated, or empty for none |"),
		"| `gc_interval_s` | `3600` |", "| `gc_unused_age_s` | `604800` |",
		"| `max_cache_gib` | `0` | a number between 0 and 1048576 |",
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	conf_print_reference(f);
	assert_int_equal(fclose(f), 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		if (strstr(buf, want[i]) == NULL)
			fail_msg("reference lacks \"%s\":\n%s", want[i], buf);
	}
	/* Every row has the four cells of its header. */
	for (char *l = buf; (l = strstr(l, "\n| `")) != NULL; l++) {
		int bars = 0;
		for (char *p = l + 1; *p != '\n' && *p != '\0'; p++)
			bars += *p == '|';
		assert_int_equal(bars, 5);
	}
	free(buf);
}

/* ------------------------------------------------------- value table */

enum value_kind { V_ERR, V_UINT, V_ULL, V_DOUBLE, V_STR, V_NULL, V_LEVEL,
	V_NAMES, V_BOOL };

struct value_case {
	const char *name;
	const char *text;	/* the whole file */
	enum value_kind kind;
	const char *err;	/* V_ERR: the whole message */
	size_t off;		/* other kinds: the field checked */
	unsigned long long u;
	double d;
	const char *s;
};

#define AT(m) offsetof(struct carved_conf, m)
#define BAD(n, t, e) { .name = n, .text = t, .kind = V_ERR, .err = e }
#define OKU(n, t, m, v) { .name = n, .text = t, .kind = V_UINT, .off = AT(m), .u = v }
#define OKULL(n, t, m, v) { .name = n, .text = t, .kind = V_ULL, .off = AT(m), .u = v }
#define OKD(n, t, m, v) { .name = n, .text = t, .kind = V_DOUBLE, .off = AT(m), .d = v }
#define OKS(n, t, m, v) { .name = n, .text = t, .kind = V_STR, .off = AT(m), .s = v }
#define OKNULL(n, t, m) { .name = n, .text = t, .kind = V_NULL, .off = AT(m) }
#define OKLVL(n, t, v) { .name = n, .text = t, .kind = V_LEVEL, .off = AT(log_level), .u = v }
/* v: the names joined by '|', "" for none */
#define OKNAMES(n, t, m, v) { .name = n, .text = t, .kind = V_NAMES, .off = AT(m), .s = v }
#define OKB(n, t, m, v) { .name = n, .text = t, .kind = V_BOOL, .off = AT(m), .u = v }

#define MCO "[agent]\nmax_concurrent_ops = "
#define MCO_ERR(v) "t.conf:2: [agent] max_concurrent_ops: must be an integer " \
	"between 1 and 64, got \"" v "\""
#define RATIO "[capacity]\ncpu_allocation_ratio = "
#define RATIO_ERR(v) "t.conf:2: [capacity] cpu_allocation_ratio: must be a " \
	"number greater than 0 and at most 1000, got \"" v "\""
#define URL_ERR(v) "t.conf:2: [control_plane] url: must be an https:// URL, " \
	"or empty for none, got \"" v "\""
#define NAME64 "a123456789012345678901234567890123456789012345678901234567890123"
#define NETS "[network]\nnetworks = "
#define BRS "[network]\nbridges = "
#define NAMES_ERR(k, max, v) "t.conf:2: [network] " k ": must be names of " \
	"at most " max " bytes, comma-separated, or empty for none, got \"" v "\""
#define STANDALONE(k) "t.conf:2: [control_plane] " k " is set but url is " \
	"not (without url, carved runs standalone)"

static const struct value_case value_cases[] = {
	/* unknown names */
	BAD("unknown key", "[agent]\nnode_name = a\nfoo = 1\n",
	    "t.conf:3: unknown key \"foo\" in section [agent]"),
	BAD("unknown section", "[nope]\nx = 1\n",
	    "t.conf:2: unknown key \"x\" in section [nope]"),
	BAD("key from another section", "[agent]\nuri = test:///default\n",
	    "t.conf:2: unknown key \"uri\" in section [agent]"),
	BAD("section names are case-sensitive", "[Agent]\nsocket = /s\n",
	    "t.conf:2: unknown key \"socket\" in section [Agent]"),
	/* ini errors come through unchanged */
	BAD("duplicate key", "[agent]\nsocket = /a\n\nsocket = /b\n",
	    "t.conf:4: duplicate key \"socket\" in section [agent] (first set "
	    "on line 2)"),
	BAD("key outside section", "socket = /a\n",
	    "t.conf:1: key \"socket\" outside any section"),

	/* [agent] */
	OKS("node_name", "[agent]\nnode_name = n1\n", node_name, "n1"),
	OKS("node_name of 64 bytes", "[agent]\nnode_name = " NAME64 "\n",
	    node_name, NAME64),
	BAD("node_name of 65 bytes", "[agent]\nnode_name = " NAME64 "x\n",
	    "t.conf:2: [agent] node_name is 65 bytes long; at most 64 are "
	    "allowed"),
	BAD("node_name starting with '-'", "[agent]\nnode_name = -n\n",
	    "t.conf:2: [agent] node_name must start with a letter or digit"),
	BAD("node_name with a shell metacharacter", "[agent]\nnode_name = a;b\n",
	    "t.conf:2: [agent] node_name may only contain letters, digits, '.', "
	    "'_' and '-' (found byte 0x3b at offset 1)"),
	BAD("empty node_name", "[agent]\nnode_name =\n",
	    "t.conf:2: [agent] node_name: must be non-empty text, got \"\""),
	OKS("state_dir", "[agent]\nstate_dir = /srv/c\n", state_dir, "/srv/c"),
	BAD("relative state_dir", "[agent]\nstate_dir = var/lib/carve\n",
	    "t.conf:2: [agent] state_dir: must be an absolute path, got "
	    "\"var/lib/carve\""),
	BAD("dot-relative state_dir", "[agent]\nstate_dir = ./carve\n",
	    "t.conf:2: [agent] state_dir: must be an absolute path, got "
	    "\"./carve\""),
	BAD("empty state_dir", "[agent]\nstate_dir =\n",
	    "t.conf:2: [agent] state_dir: must be an absolute path, got \"\""),
	OKS("socket", "[agent]\nsocket = /tmp/c.sock\n", socket, "/tmp/c.sock"),
	BAD("relative socket", "[agent]\nsocket = c.sock\n",
	    "t.conf:2: [agent] socket: must be an absolute path, got \"c.sock\""),
	OKS("socket_group", "[agent]\nsocket_group = adm\n", socket_group, "adm"),
	BAD("empty socket_group", "[agent]\nsocket_group = \"\"\n",
	    "t.conf:2: [agent] socket_group: must be non-empty text, got \"\""),
	OKLVL("log_level debug", "[agent]\nlog_level = debug\n", LOG_LVL_DEBUG),
	OKLVL("log_level info", "[agent]\nlog_level = info\n", LOG_LVL_INFO),
	OKLVL("log_level warn", "[agent]\nlog_level = warn\n", LOG_LVL_WARN),
	OKLVL("log_level error", "[agent]\nlog_level = error\n", LOG_LVL_ERROR),
	BAD("log_level unknown", "[agent]\nlog_level = verbose\n",
	    "t.conf:2: [agent] log_level: must be one of debug, info, warn, "
	    "error, got \"verbose\""),
	BAD("log_level is case-sensitive", "[agent]\nlog_level = INFO\n",
	    "t.conf:2: [agent] log_level: must be one of debug, info, warn, "
	    "error, got \"INFO\""),
	BAD("max_concurrent_ops 0", MCO "0\n", MCO_ERR("0")),
	OKU("max_concurrent_ops 1", MCO "1\n", max_concurrent_ops, 1),
	OKU("max_concurrent_ops 64", MCO "64\n", max_concurrent_ops, 64),
	OKU("max_concurrent_ops with leading zeros", MCO "007\n",
	    max_concurrent_ops, 7),
	BAD("max_concurrent_ops 65", MCO "65\n", MCO_ERR("65")),
	BAD("max_concurrent_ops not a number", MCO "x\n", MCO_ERR("x")),
	BAD("max_concurrent_ops negative", MCO "-1\n", MCO_ERR("-1")),
	BAD("max_concurrent_ops with '+'", MCO "+4\n", MCO_ERR("+4")),
	BAD("max_concurrent_ops fractional", MCO "4.0\n", MCO_ERR("4.0")),
	BAD("max_concurrent_ops trailing text", MCO "4 ops\n", MCO_ERR("4 ops")),
	BAD("max_concurrent_ops quoted blank", MCO "\" 4\"\n", MCO_ERR(" 4")),
	BAD("max_concurrent_ops empty", MCO "\n", MCO_ERR("")),
	BAD("max_concurrent_ops 2^64-1", MCO "18446744073709551615\n",
	    MCO_ERR("18446744073709551615")),
	BAD("max_concurrent_ops overflowing", MCO "18446744073709551616\n",
	    MCO_ERR("18446744073709551616")),
	OKU("stop_timeout_s 0", "[agent]\nstop_timeout_s = 0\n",
	    stop_timeout_s, 0),
	OKU("stop_timeout_s 3600", "[agent]\nstop_timeout_s = 3600\n",
	    stop_timeout_s, 3600),
	BAD("stop_timeout_s 3601", "[agent]\nstop_timeout_s = 3601\n",
	    "t.conf:2: [agent] stop_timeout_s: must be an integer between 0 "
	    "and 3600, got \"3601\""),

	/* [libvirt] */
	OKS("uri", "[libvirt]\nuri = qemu+ssh://h/system\n", uri,
	    "qemu+ssh://h/system"),
	OKS("domain_type kvm", "[libvirt]\ndomain_type = kvm\n", domain_type,
	    "kvm"),
	OKS("domain_type qemu", "[libvirt]\ndomain_type = qemu\n", domain_type,
	    "qemu"),
	OKS("domain_type auto", "[libvirt]\ndomain_type = auto\n", domain_type,
	    "auto"),
	BAD("domain_type unknown", "[libvirt]\ndomain_type = xen\n",
	    "t.conf:2: [libvirt] domain_type: must be one of auto, kvm, qemu, "
	    "got \"xen\""),
	OKS("kernel_dir", "[libvirt]\nkernel_dir = /k\n", kernel_dir, "/k"),
	OKNULL("kernel_dir empty means none", "[libvirt]\nkernel_dir =\n",
	    kernel_dir),
	BAD("relative kernel_dir", "[libvirt]\nkernel_dir = k\n",
	    "t.conf:2: [libvirt] kernel_dir: must be an absolute path, or empty "
	    "for none, got \"k\""),
	OKS("console_log_dir", "[libvirt]\nconsole_log_dir = /c\n",
	    console_log_dir, "/c"),
	BAD("relative console_log_dir", "[libvirt]\nconsole_log_dir = c/d\n",
	    "t.conf:2: [libvirt] console_log_dir: must be an absolute path, got "
	    "\"c/d\""),

	/* [capacity] */
	OKU("reserved_vcpus 4096", "[capacity]\nreserved_vcpus = 4096\n",
	    reserved_vcpus, 4096),
	BAD("reserved_vcpus 4097", "[capacity]\nreserved_vcpus = 4097\n",
	    "t.conf:2: [capacity] reserved_vcpus: must be an integer between 0 "
	    "and 4096, got \"4097\""),
	OKULL("reserved_memory_mib 0", "[capacity]\nreserved_memory_mib = 0\n",
	    reserved_memory_mib, 0),
	OKULL("reserved_memory_mib 16 TiB",
	    "[capacity]\nreserved_memory_mib = 16777216\n",
	    reserved_memory_mib, 16777216),
	BAD("reserved_memory_mib too large",
	    "[capacity]\nreserved_memory_mib = 16777217\n",
	    "t.conf:2: [capacity] reserved_memory_mib: must be an integer "
	    "between 0 and 16777216, got \"16777217\""),
	OKULL("reserved_disk_gib 1 PiB",
	    "[capacity]\nreserved_disk_gib = 1048576\n", reserved_disk_gib,
	    1048576),
	BAD("reserved_disk_gib too large",
	    "[capacity]\nreserved_disk_gib = 1048577\n",
	    "t.conf:2: [capacity] reserved_disk_gib: must be an integer "
	    "between 0 and 1048576, got \"1048577\""),
	OKD("ratio 1000", RATIO "1000\n", cpu_allocation_ratio, 1000.0),
	OKD("ratio 0.001", RATIO "0.001\n", cpu_allocation_ratio, 0.001),
	OKD("ratio .5", RATIO ".5\n", cpu_allocation_ratio, 0.5),
	OKD("ratio 1e3", RATIO "1e3\n", cpu_allocation_ratio, 1000.0),
	OKD("ram_allocation_ratio", "[capacity]\nram_allocation_ratio = 1.25\n",
	    ram_allocation_ratio, 1.25),
	OKD("disk_allocation_ratio", "[capacity]\ndisk_allocation_ratio = 3\n",
	    disk_allocation_ratio, 3.0),
	BAD("ratio 0", RATIO "0\n", RATIO_ERR("0")),
	BAD("ratio 0.0", RATIO "0.0\n", RATIO_ERR("0.0")),
	BAD("ratio 1000.5", RATIO "1000.5\n", RATIO_ERR("1000.5")),
	BAD("ratio negative", RATIO "-1\n", RATIO_ERR("-1")),
	BAD("ratio nan", RATIO "nan\n", RATIO_ERR("nan")),
	BAD("ratio inf", RATIO "inf\n", RATIO_ERR("inf")),
	BAD("ratio hex", RATIO "0x10\n", RATIO_ERR("0x10")),
	BAD("ratio underflow", RATIO "1e-400\n", RATIO_ERR("1e-400")),
	BAD("ratio overflow", RATIO "1e400\n", RATIO_ERR("1e400")),
	BAD("ratio trailing text", RATIO "1.5x\n", RATIO_ERR("1.5x")),
	BAD("ratio empty", RATIO "\n", RATIO_ERR("")),
	BAD("ram ratio too large", "[capacity]\nram_allocation_ratio = 1001\n",
	    "t.conf:2: [capacity] ram_allocation_ratio: must be a number "
	    "greater than 0 and at most 1000, got \"1001\""),

	/* [control_plane] */
	OKS("url", "[control_plane]\nurl = https://cp:8443/v1\n", cp_url,
	    "https://cp:8443/v1"),
	OKNULL("url empty means standalone", "[control_plane]\nurl =\n", cp_url),
	BAD("url http", "[control_plane]\nurl = http://cp.example\n",
	    URL_ERR("http://cp.example")),
	BAD("url scheme only", "[control_plane]\nurl = https://\n",
	    URL_ERR("https://")),
	BAD("url without host", "[control_plane]\nurl = https:///x\n",
	    URL_ERR("https:///x")),
	BAD("url other scheme", "[control_plane]\nurl = ftp://cp\n",
	    URL_ERR("ftp://cp")),
	BAD("url upper-case scheme", "[control_plane]\nurl = HTTPS://cp\n",
	    URL_ERR("HTTPS://cp")),
	BAD("url with a space", "[control_plane]\nurl = https://cp x\n",
	    URL_ERR("https://cp x")),
	OKS("ca_file with url", "[control_plane]\nurl = https://cp\n"
	    "ca_file = /ca.pem\n", cp_ca_file, "/ca.pem"),
	OKS("cert_file with url", "[control_plane]\nurl = https://cp\n"
	    "cert_file = /c.pem\n", cp_cert_file, "/c.pem"),
	OKS("key_file with url", "[control_plane]\nurl = https://cp\n"
	    "key_file = /k.pem\n", cp_key_file, "/k.pem"),
	OKS("bootstrap_token_file with url", "[control_plane]\nurl = https://cp\n"
	    "bootstrap_token_file = /t\n", cp_bootstrap_token_file, "/t"),
	BAD("ca_file without url", "[control_plane]\nca_file = /ca.pem\n",
	    STANDALONE("ca_file")),
	BAD("cert_file without url", "[control_plane]\ncert_file = /c.pem\n",
	    STANDALONE("cert_file")),
	BAD("key_file without url", "[control_plane]\nkey_file = /k.pem\n",
	    STANDALONE("key_file")),
	BAD("bootstrap_token_file without url",
	    "[control_plane]\nbootstrap_token_file = /t\n",
	    STANDALONE("bootstrap_token_file")),
	BAD("ca_file with empty url", "[control_plane]\nca_file = /ca.pem\n"
	    "url =\n", STANDALONE("ca_file")),
	BAD("relative ca_file", "[control_plane]\nurl = https://cp\n"
	    "ca_file = ca.pem\n",
	    "t.conf:3: [control_plane] ca_file: must be an absolute path, or "
	    "empty for none, got \"ca.pem\""),

	/* [resize] */
	OKU("max_vcpus_factor 1", "[resize]\nmax_vcpus_factor = 1\n",
	    max_vcpus_factor, 1),
	OKU("max_memory_factor 16", "[resize]\nmax_memory_factor = 16\n",
	    max_memory_factor, 16),
	BAD("max_vcpus_factor 0", "[resize]\nmax_vcpus_factor = 0\n",
	    "t.conf:2: [resize] max_vcpus_factor: must be an integer between 1 "
	    "and 16, got \"0\""),
	BAD("max_memory_factor 17", "[resize]\nmax_memory_factor = 17\n",
	    "t.conf:2: [resize] max_memory_factor: must be an integer between 1 "
	    "and 16, got \"17\""),
	BAD("max_memory_factor 1.5", "[resize]\nmax_memory_factor = 1.5\n",
	    "t.conf:2: [resize] max_memory_factor: must be an integer between 1 "
	    "and 16, got \"1.5\""),
	/* [images] garbage collection */
	OKU("gc_interval_s 0 turns it off", "[images]\ngc_interval_s = 0\n",
	    gc_interval_s, 0),
	OKU("gc_interval_s", "[images]\ngc_interval_s = 60\n", gc_interval_s,
	    60),
	BAD("gc_interval_s above 30 days", "[images]\ngc_interval_s = 2592001\n",
	    "t.conf:2: [images] gc_interval_s: must be an integer between 0 "
	    "and 2592000, got \"2592001\""),
	OKU("gc_unused_age_s", "[images]\ngc_unused_age_s = 1\n",
	    gc_unused_age_s, 1),
	BAD("gc_unused_age_s negative", "[images]\ngc_unused_age_s = -1\n",
	    "t.conf:2: [images] gc_unused_age_s: must be an integer between 0 "
	    "and 315360000, got \"-1\""),
	OKD("max_cache_gib 0 is no cap", "[images]\nmax_cache_gib = 0\n",
	    max_cache_gib, 0.0),
	OKD("max_cache_gib fraction", "[images]\nmax_cache_gib = 0.25\n",
	    max_cache_gib, 0.25),
	OKD("max_cache_gib at the bound", "[images]\nmax_cache_gib = 1048576\n",
	    max_cache_gib, 1048576.0),
	BAD("max_cache_gib above the bound",
	    "[images]\nmax_cache_gib = 1048576.5\n",
	    "t.conf:2: [images] max_cache_gib: must be a number between 0 and "
	    "1048576, got \"1048576.5\""),
	BAD("max_cache_gib negative", "[images]\nmax_cache_gib = -0.5\n",
	    "t.conf:2: [images] max_cache_gib: must be a number between 0 and "
	    "1048576, got \"-0.5\""),
	BAD("max_cache_gib nan", "[images]\nmax_cache_gib = nan\n",
	    "t.conf:2: [images] max_cache_gib: must be a number between 0 and "
	    "1048576, got \"nan\""),

	/* [metrics] */
	OKS("metrics listen", "[metrics]\nlisten = [::1]:9464\n", metrics_listen,
	    "[::1]:9464"),
	OKNULL("metrics listen empty means off", "[metrics]\nlisten =\n",
	    metrics_listen),

	/* [network] */
	OKNAMES("networks, one", NETS "default\n", networks, "default"),
	OKNAMES("networks, trimmed", NETS "a ,b,\tc.1_x-y \n", networks,
	    "a|b|c.1_x-y"),
	OKNAMES("networks, quoted", NETS "\" a, b \"\n", networks, "a|b"),
	OKNAMES("networks empty means none", NETS "\n", networks, ""),
	OKNAMES("networks blank means none", NETS "\"  \"\n", networks, ""),
	OKNAMES("networks, a 64-byte name", NETS NAME64 "\n", networks, NAME64),
	OKNAMES("bridges", BRS "br0, virbr1\n", bridges, "br0|virbr1"),
	OKNAMES("bridges, a 15-byte name", BRS "b23456789012345\n", bridges,
	    "b23456789012345"),
	OKNAMES("bridges do not touch networks", BRS "br0\n", networks, ""),
	BAD("networks, empty entry", NETS "a,,b\n", NAMES_ERR("networks", "64",
	    "a,,b")),
	BAD("networks, trailing comma", NETS "a,\n", NAMES_ERR("networks", "64",
	    "a,")),
	BAD("networks, leading comma", NETS ",a\n", NAMES_ERR("networks", "64",
	    ",a")),
	BAD("networks, a lone comma", NETS " , \n", NAMES_ERR("networks", "64",
	    ",")),
	BAD("bridges, empty entry", BRS "br0, ,br1\n", NAMES_ERR("bridges",
	    "15", "br0, ,br1")),
	BAD("networks, a name with a blank", NETS "a b\n",
	    "t.conf:2: [network] networks: \"a b\" may only contain letters, "
	    "digits, '.', '_' and '-' (found byte 0x20 at offset 1)"),
	BAD("networks, a name with a slash", NETS "ok, a/b\n",
	    "t.conf:2: [network] networks: \"a/b\" may only contain letters, "
	    "digits, '.', '_' and '-' (found byte 0x2f at offset 1)"),
	BAD("networks, a name starting with '-'", NETS "-a\n",
	    "t.conf:2: [network] networks: \"-a\" must start with a letter or "
	    "digit"),
	BAD("networks, a 65-byte name", NETS NAME64 "x\n",
	    "t.conf:2: [network] networks: \"" NAME64 "x\" is 65 bytes long; "
	    "at most 64 are allowed"),
	BAD("networks, a name twice", NETS "a, b, a\n",
	    "t.conf:2: [network] networks: \"a\" is listed twice"),
	BAD("bridges, a 16-byte name", "[network]\nnetworks = a\nbridges = "
	    "br0, b234567890123456\n",
	    "t.conf:3: [network] bridges: \"b234567890123456\" is 16 bytes "
	    "long; at most 15 are allowed"),
	BAD("bridges, a shell metacharacter", BRS "br0;reboot\n",
	    "t.conf:2: [network] bridges: \"br0;reboot\" may only contain "
	    "letters, digits, '.', '_' and '-' (found byte 0x3b at offset 3)"),
	BAD("bridges, a name twice", BRS "br0,br0\n",
	    "t.conf:2: [network] bridges: \"br0\" is listed twice"),
	/* [migration] */
	OKS("migration libvirt_uri", "[migration]\nlibvirt_uri = "
	    "qemu+tls://b.example/system\n", mig_libvirt_uri,
	    "qemu+tls://b.example/system"),
	OKS("migration libvirt_uri with a socket", "[migration]\nlibvirt_uri = "
	    "qemu+unix:///system?socket=/run/b/libvirt-sock\n", mig_libvirt_uri,
	    "qemu+unix:///system?socket=/run/b/libvirt-sock"),
	BAD("rejects: migration libvirt_uri not a URI", "[migration]\n"
	    "libvirt_uri = b.example\n", "t.conf:2: [migration] libvirt_uri "
	    "must be a libvirt URI such as qemu+tls://HOST/system"),
	OKS("migration address", "[migration]\naddress = 10.0.0.2\n",
	    mig_address, "10.0.0.2"),
	OKS("migration address IPv6", "[migration]\naddress = fd00::2\n",
	    mig_address, "fd00::2"),
	BAD("rejects: migration address with a path", "[migration]\n"
	    "address = b/x\n", "t.conf:2: [migration] address must be a host "
	    "name or an IP address"),
	OKB("migration tls true", "[migration]\ntls = true\n", mig_tls, 1),
	OKB("migration tls false", "[migration]\ntls = false\n", mig_tls, 0),
	BAD("rejects: migration tls yes", "[migration]\ntls = yes\n",
	    "t.conf:2: [migration] tls: must be true or false, got \"yes\""),
	OKU("migration max_incoming 64", "[migration]\nmax_incoming = 64\n",
	    mig_max_incoming, 64),
	BAD("rejects: migration max_incoming 0", "[migration]\n"
	    "max_incoming = 0\n", "t.conf:2: [migration] max_incoming: must be "
	    "an integer between 1 and 64, got \"0\""),
	OKU("migration max_outgoing 2", "[migration]\nmax_outgoing = 2\n",
	    mig_max_outgoing, 2),
	BAD("rejects: migration max_outgoing 65", "[migration]\n"
	    "max_outgoing = 65\n", "t.conf:2: [migration] max_outgoing: must be "
	    "an integer between 1 and 64, got \"65\""),
};

static void
test_value(void **state)
{
	const struct value_case *v = *state;
	struct carved_conf c;
	struct carve_error err = { 0 };
	const void *field;
	int rc;

	conf_defaults(&c);
	field = (const char *)&c + v->off;
	rc = conf_load_buf(v->text, strlen(v->text), "t.conf", &c, &err);
	if (v->kind == V_ERR) {
		assert_int_equal(rc, -1);
		assert_int_equal(err.code, CARVE_EINVAL);
		assert_string_equal(err.message, v->err);
		assert_defaults(&c);
		conf_free(&c);
		return;
	}
	if (rc != 0)
		fail_msg("rejected: %s", err.message);
	switch (v->kind) {
	case V_UINT:
		assert_int_equal(*(const unsigned *)field, v->u);
		break;
	case V_ULL:
		assert_int_equal(*(const unsigned long long *)field, v->u);
		break;
	case V_DOUBLE:
		assert_true(*(const double *)field == v->d);
		break;
	case V_STR:
		assert_non_null(*(char *const *)field);
		assert_string_equal(*(char *const *)field, v->s);
		break;
	case V_NULL:
		assert_null(*(char *const *)field);
		break;
	case V_LEVEL:
		assert_int_equal(*(const enum log_level *)field, v->u);
		break;
	case V_NAMES: {
		const struct conf_names *l = field;
		char *joined = xstrdup("");

		for (size_t i = 0; i < l->cn_count; i++) {
			char *next = xasprintf("%s%s%s", joined, i ? "|" : "",
			    l->cn_names[i]);

			free(joined);
			joined = next;
		}
		assert_string_equal(joined, v->s);
		free(joined);
		break;
	}
	case V_BOOL:
		assert_int_equal(*(const bool *)field, v->u);
		break;
	case V_ERR:
		break;
	}
	conf_free(&c);
}

/* ------------------------------------------------------------------ main */

static struct CMUnitTest *tests;
static size_t ntests;

static void
add_test(const char *name, CMUnitTestFunction fn, const void *state)
{
	tests = xreallocarray(tests, ntests + 1, sizeof(*tests));
	tests[ntests++] = (struct CMUnitTest){ .name = name, .test_func = fn,
	    .initial_state = (void *)(uintptr_t)state };
}

int
main(void)
{
	size_t n = sizeof(value_cases) / sizeof(value_cases[0]);
	char **names = xcalloc(n, sizeof(*names));
	int rc;

	cmocka_set_message_output(CM_OUTPUT_TAP);
	add_test("defaults", test_defaults, NULL);
	add_test("empty file keeps defaults", test_empty_file, NULL);
	add_test("every key parsed", test_full, NULL);
	add_test("failed load keeps defaults", test_failed_load_keeps_defaults,
	    NULL);
	add_test("load over a loaded config", test_load_over, NULL);
	add_test("lists survive a failed load, are replaced by a good one",
	    test_load_over_lists, NULL);
	add_test("conf_free", test_conf_free, NULL);
	add_test("conf_load from a file", test_file, NULL);
	add_test("reference lists every key", test_reference, NULL);
	for (size_t i = 0; i < n; i++) {
		names[i] = xasprintf("%s: %s", value_cases[i].kind == V_ERR ?
		    "rejects" : "accepts", value_cases[i].name);
		add_test(names[i], test_value, &value_cases[i]);
	}

	rc = _cmocka_run_group_tests("conf", tests, ntests, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(tests);
	return rc;
}
