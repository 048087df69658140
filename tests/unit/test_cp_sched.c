/*
 * Unit tests for api/cp/cp_sched.c: which node a new VM goes to, which
 * CPUs can take a running guest, and which node a migrating VM goes to.
 * Each case is a small fleet, a request and the node (or error code and
 * reason) an operator would expect.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/cp/cp_sched.h"

#define NOW	1800000000000LL
#define TTL	30000LL
#define FRESH	(NOW - 1000)
#define STALE	(NOW - TTL - 1)

/* vcpus, memory, disk free; claims likewise. */
#define NODE(name, hb, sched, v, m, d, cv, cm, cd) \
	{ .sn_name = name, .sn_last_heartbeat_ms = hb, \
	  .sn_schedulable = sched, .sn_free = { v, m, d }, \
	  .sn_claimed = { cv, cm, cd } }

struct sched_case {
	const char		*desc;
	struct cp_sched_node	 nodes[4];
	size_t			 n;
	const char		*named;
	int64_t			 need[PROTO_CAP_NCLASSES];
	const char		*want;		/* node name, or NULL */
	enum carve_errcode	 want_err;
};

static const struct sched_case cases[] = {
	{ "one node that fits",
	    { NODE("a", FRESH, true, 8, 4096, 100, 0, 0, 0) }, 1,
	    NULL, { 2, 1024, 10 }, "a", CARVE_OK },
	{ "no nodes at all",
	    { { 0 } }, 0, NULL, { 1, 64, 0 }, NULL, CARVE_ECAPACITY },
	{ "none fits: memory",
	    { NODE("a", FRESH, true, 8, 512, 100, 0, 0, 0),
	      NODE("b", FRESH, true, 8, 1000, 100, 0, 0, 0) }, 2,
	    NULL, { 1, 1024, 0 }, NULL, CARVE_ECAPACITY },
	{ "none fits: vcpus",
	    { NODE("a", FRESH, true, 1, 8192, 100, 0, 0, 0) }, 1,
	    NULL, { 2, 64, 0 }, NULL, CARVE_ECAPACITY },
	{ "none fits: disk",
	    { NODE("a", FRESH, true, 8, 8192, 5, 0, 0, 0) }, 1,
	    NULL, { 1, 64, 10 }, NULL, CARVE_ECAPACITY },
	{ "exact fit is a fit",
	    { NODE("a", FRESH, true, 2, 1024, 10, 0, 0, 0) }, 1,
	    NULL, { 2, 1024, 10 }, "a", CARVE_OK },
	{ "no disk needed fits a node without free disk",
	    { NODE("a", FRESH, true, 2, 1024, 0, 0, 0, 0) }, 1,
	    NULL, { 1, 512, 0 }, "a", CARVE_OK },
	{ "most free memory first",
	    { NODE("a", FRESH, true, 8, 2048, 100, 0, 0, 0),
	      NODE("b", FRESH, true, 8, 8192, 100, 0, 0, 0),
	      NODE("c", FRESH, true, 8, 4096, 100, 0, 0, 0) }, 3,
	    NULL, { 1, 512, 0 }, "b", CARVE_OK },
	{ "down node skipped although it has the most memory",
	    { NODE("a", STALE, true, 8, 65536, 100, 0, 0, 0),
	      NODE("b", FRESH, true, 8, 2048, 100, 0, 0, 0) }, 2,
	    NULL, { 1, 512, 0 }, "b", CARVE_OK },
	{ "node that never heartbeated is down",
	    { NODE("a", 0, true, 8, 65536, 100, 0, 0, 0) }, 1,
	    NULL, { 1, 512, 0 }, NULL, CARVE_ECAPACITY },
	{ "all nodes down",
	    { NODE("a", STALE, true, 8, 8192, 100, 0, 0, 0),
	      NODE("b", STALE, true, 8, 8192, 100, 0, 0, 0) }, 2,
	    NULL, { 1, 64, 0 }, NULL, CARVE_ECAPACITY },
	{ "unschedulable node skipped",
	    { NODE("a", FRESH, false, 8, 65536, 100, 0, 0, 0),
	      NODE("b", FRESH, true, 8, 2048, 100, 0, 0, 0) }, 2,
	    NULL, { 1, 512, 0 }, "b", CARVE_OK },
	{ "claims of pending creates make a node too small",
	    { NODE("a", FRESH, true, 8, 8192, 100, 4, 7680, 0),
	      NODE("b", FRESH, true, 8, 2048, 100, 0, 0, 0) }, 2,
	    NULL, { 1, 1024, 0 }, "b", CARVE_OK },
	{ "claims count in the memory ordering",
	    { NODE("a", FRESH, true, 8, 8192, 100, 0, 6144, 0),
	      NODE("b", FRESH, true, 8, 4096, 100, 0, 0, 0) }, 2,
	    NULL, { 1, 512, 0 }, "b", CARVE_OK },
	{ "claims on vcpus",
	    { NODE("a", FRESH, true, 4, 8192, 100, 3, 0, 0) }, 1,
	    NULL, { 2, 512, 0 }, NULL, CARVE_ECAPACITY },
	{ "tie on free memory broken by name",
	    { NODE("zeta", FRESH, true, 8, 4096, 100, 0, 0, 0),
	      NODE("alpha", FRESH, true, 8, 4096, 100, 0, 0, 0),
	      NODE("mid", FRESH, true, 8, 4096, 100, 0, 0, 0) }, 3,
	    NULL, { 1, 512, 0 }, "alpha", CARVE_OK },
	{ "tie after claims broken by name",
	    { NODE("b", FRESH, true, 8, 6144, 100, 0, 2048, 0),
	      NODE("a", FRESH, true, 8, 4096, 100, 0, 0, 0) }, 2,
	    NULL, { 1, 512, 0 }, "a", CARVE_OK },
	{ "named node is taken even when another has more room",
	    { NODE("a", FRESH, true, 8, 65536, 100, 0, 0, 0),
	      NODE("b", FRESH, true, 8, 2048, 100, 0, 0, 0) }, 2,
	    "b", { 1, 512, 0 }, "b", CARVE_OK },
	{ "named node unknown",
	    { NODE("a", FRESH, true, 8, 8192, 100, 0, 0, 0) }, 1,
	    "nosuch", { 1, 512, 0 }, NULL, CARVE_ENOTFOUND },
	{ "named node down",
	    { NODE("a", STALE, true, 8, 8192, 100, 0, 0, 0) }, 1,
	    "a", { 1, 512, 0 }, NULL, CARVE_ECONFLICT },
	{ "named node not schedulable",
	    { NODE("a", FRESH, false, 8, 8192, 100, 0, 0, 0) }, 1,
	    "a", { 1, 512, 0 }, NULL, CARVE_ECONFLICT },
	{ "named node too small after claims",
	    { NODE("a", FRESH, true, 8, 8192, 100, 0, 8000, 0) }, 1,
	    "a", { 1, 512, 0 }, NULL, CARVE_ECAPACITY },
	{ "empty name means any node",
	    { NODE("a", FRESH, true, 8, 8192, 100, 0, 0, 0) }, 1,
	    "", { 1, 512, 0 }, "a", CARVE_OK },
};

static void
test_case(void **state)
{
	const struct sched_case *c = *state;
	struct carve_error err = { 0 };
	int idx;

	idx = cp_sched_pick(c->nodes, c->n, c->named, c->need, NOW, TTL, &err);
	if (c->want != NULL) {
		if (idx < 0)
			fail_msg("%s: refused: %s", c->desc, err.message);
		assert_string_equal(c->nodes[idx].sn_name, c->want);
		assert_false(error_isset(&err));
	} else {
		assert_int_equal(idx, -1);
		assert_int_equal(err.code, c->want_err);
		assert_true(strlen(err.message) > 0);
	}
}

static void
test_node_up(void **state)
{
	(void)state;
	assert_true(cp_sched_node_up(NOW, NOW, TTL));
	assert_true(cp_sched_node_up(NOW - TTL, NOW, TTL));
	assert_false(cp_sched_node_up(NOW - TTL - 1, NOW, TTL));
	assert_false(cp_sched_node_up(0, NOW, TTL));
}

static void
test_message_names_node(void **state)
{
	struct cp_sched_node n[] = {
		NODE("host-7", FRESH, true, 8, 1000, 100, 0, 0, 0),
	};
	int64_t need[] = { 1, 2048, 0 };
	struct carve_error err = { 0 };

	(void)state;
	assert_int_equal(cp_sched_pick(n, 1, "host-7", need, NOW, TTL, &err),
	    -1);
	assert_non_null(strstr(err.message, "host-7"));
	assert_non_null(strstr(err.message, "1000"));
}

/* ------------------------------------------------------------ CPUs */

static const char *const f_base[] = { "vmx", "avx2", "aes" };
static const char *const f_more[] = { "aes", "avx2", "vmx", "avx512f" };
static const char *const f_less[] = { "vmx", "aes" };

#define CPU(arch, vendor, model, feats, n) \
	{ arch, vendor, model, feats, n }

struct cpu_case {
	const char		*desc;
	struct cp_sched_cpu	 src, dst;
	enum cp_sched_cpu_mode	 mode;
	bool			 want;
	const char		*why;		/* part of the refusal */
};

static const struct cpu_case cpu_cases[] = {
	{ "default mode: same arch is enough, whatever the models",
	    CPU("x86_64", "Intel", "Skylake-Client", f_base, 3),
	    CPU("x86_64", "AMD", "EPYC", f_less, 2),
	    CP_CPU_DEFAULT, true, NULL },
	{ "default mode: another architecture cannot run it",
	    CPU("x86_64", "Intel", "Skylake-Client", f_base, 3),
	    CPU("aarch64", "ARM", "cortex-a72", NULL, 0),
	    CP_CPU_DEFAULT, false, "aarch64" },
	{ "unknown source architecture is refused",
	    CPU("", "", "", NULL, 0), CPU("x86_64", "Intel", "m", NULL, 0),
	    CP_CPU_DEFAULT, false, "source" },
	{ "unknown target architecture is refused",
	    CPU("x86_64", "Intel", "m", NULL, 0), CPU(NULL, NULL, NULL, NULL, 0),
	    CP_CPU_DEFAULT, false, "target" },
	{ "host-model: same model, same features",
	    CPU("x86_64", "Intel", "Skylake-Client", f_base, 3),
	    CPU("x86_64", "Intel", "Skylake-Client", f_base, 3),
	    CP_CPU_HOST_MODEL, true, NULL },
	{ "host-model: same model, target has more features",
	    CPU("x86_64", "Intel", "Skylake-Client", f_base, 3),
	    CPU("x86_64", "Intel", "Skylake-Client", f_more, 4),
	    CP_CPU_HOST_MODEL, true, NULL },
	{ "host-model: target lacks a feature",
	    CPU("x86_64", "Intel", "Skylake-Client", f_base, 3),
	    CPU("x86_64", "Intel", "Skylake-Client", f_less, 2),
	    CP_CPU_HOST_MODEL, false, "avx2" },
	{ "host-model: another model",
	    CPU("x86_64", "Intel", "Icelake-Server", f_base, 3),
	    CPU("x86_64", "Intel", "Skylake-Client", f_more, 4),
	    CP_CPU_HOST_MODEL, false, "Icelake-Server" },
	{ "host-model: another vendor",
	    CPU("x86_64", "Intel", "qemu64", f_base, 3),
	    CPU("x86_64", "AMD", "qemu64", f_base, 3),
	    CP_CPU_HOST_MODEL, false, "AMD" },
	{ "passthrough: identical feature sets in another order",
	    CPU("x86_64", "Intel", "Skylake-Client", f_base, 3),
	    CPU("x86_64", "Intel", "Skylake-Client", f_more, 3),
	    CP_CPU_PASSTHROUGH, true, NULL },
	{ "passthrough: a target with more is a different CPU",
	    CPU("x86_64", "Intel", "Skylake-Client", f_base, 3),
	    CPU("x86_64", "Intel", "Skylake-Client", f_more, 4),
	    CP_CPU_PASSTHROUGH, false, "avx512f" },
};

static void
test_cpu(void **state)
{
	const struct cpu_case *c = *state;
	struct carve_error err = { 0 };
	bool ok;

	ok = cp_sched_cpu_compatible(&c->src, &c->dst, c->mode, &err);
	if (ok != c->want)
		fail_msg("%s: %s (%s)", c->desc, ok ? "compatible" :
		    "refused", err.message);
	if (!ok) {
		assert_int_equal(err.code, CARVE_ECONFLICT);
		if (strstr(err.message, c->why) == NULL)
			fail_msg("%s: \"%s\" does not name %s", c->desc,
			    err.message, c->why);
	} else {
		assert_false(error_isset(&err));
	}
}

/* ------------------------------------------------------------ targets */

/* Like NODE, with an x86_64 CPU and incoming migrations. */
#define MNODE(name, hb, sched, v, m, d, arch, incoming) \
	{ .sn_name = name, .sn_last_heartbeat_ms = hb, \
	  .sn_schedulable = sched, .sn_free = { v, m, d }, \
	  .sn_cpu = { arch, "Intel", "Skylake-Client", f_base, 3 }, \
	  .sn_incoming = incoming }

struct target_case {
	const char		*desc;
	struct cp_sched_node	 nodes[4];
	size_t			 n;
	size_t			 source;
	const char		*named;
	const char		*want;		/* node name, or NULL */
	enum carve_errcode	 want_err;
	const char		*why;		/* part of the refusal */
};

static const struct target_case target_cases[] = {
	{ "the other node",
	    { MNODE("a", FRESH, true, 8, 8192, 100, "x86_64", 0),
	      MNODE("b", FRESH, true, 8, 8192, 100, "x86_64", 0) }, 2, 0,
	    NULL, "b", CARVE_OK, NULL },
	{ "never the source, although it has the most room",
	    { MNODE("a", FRESH, true, 64, 65536, 100, "x86_64", 0),
	      MNODE("b", FRESH, true, 8, 2048, 100, "x86_64", 0) }, 2, 0,
	    NULL, "b", CARVE_OK, NULL },
	{ "most free memory among the candidates",
	    { MNODE("a", FRESH, true, 8, 8192, 100, "x86_64", 0),
	      MNODE("b", FRESH, true, 8, 4096, 100, "x86_64", 0),
	      MNODE("c", FRESH, true, 8, 6144, 100, "x86_64", 0) }, 3, 0,
	    NULL, "c", CARVE_OK, NULL },
	{ "a node receiving a migration is skipped",
	    { MNODE("a", FRESH, true, 8, 8192, 100, "x86_64", 0),
	      MNODE("b", FRESH, true, 8, 8192, 100, "x86_64", 1),
	      MNODE("c", FRESH, true, 8, 2048, 100, "x86_64", 0) }, 3, 0,
	    NULL, "c", CARVE_OK, NULL },
	{ "an incompatible CPU is skipped",
	    { MNODE("a", FRESH, true, 8, 8192, 100, "x86_64", 0),
	      MNODE("b", FRESH, true, 8, 8192, 100, "aarch64", 0),
	      MNODE("c", FRESH, true, 8, 2048, 100, "x86_64", 0) }, 3, 0,
	    NULL, "c", CARVE_OK, NULL },
	{ "down and unschedulable nodes are skipped",
	    { MNODE("a", FRESH, true, 8, 8192, 100, "x86_64", 0),
	      MNODE("b", STALE, true, 8, 8192, 100, "x86_64", 0),
	      MNODE("c", FRESH, false, 8, 8192, 100, "x86_64", 0),
	      MNODE("d", FRESH, true, 8, 4096, 100, "x86_64", 0) }, 4, 0,
	    NULL, "d", CARVE_OK, NULL },
	{ "nowhere with room: insufficient capacity, with the count",
	    { MNODE("a", FRESH, true, 8, 8192, 100, "x86_64", 0),
	      MNODE("b", FRESH, true, 8, 512, 100, "x86_64", 0),
	      MNODE("c", FRESH, true, 8, 8192, 100, "aarch64", 0) }, 3, 0,
	    NULL, NULL, CARVE_ECAPACITY, "1 lack room" },
	{ "alone: insufficient capacity",
	    { MNODE("a", FRESH, true, 8, 8192, 100, "x86_64", 0) }, 1, 0,
	    NULL, NULL, CARVE_ECAPACITY, "of 0 other nodes" },
	{ "named target",
	    { MNODE("a", FRESH, true, 8, 8192, 100, "x86_64", 0),
	      MNODE("b", FRESH, true, 8, 8192, 100, "x86_64", 0),
	      MNODE("c", FRESH, true, 8, 2048, 100, "x86_64", 0) }, 3, 0,
	    "c", "c", CARVE_OK, NULL },
	{ "named target is the source",
	    { MNODE("a", FRESH, true, 8, 8192, 100, "x86_64", 0),
	      MNODE("b", FRESH, true, 8, 8192, 100, "x86_64", 0) }, 2, 0,
	    "a", NULL, CARVE_ECONFLICT, "already runs on" },
	{ "named target unknown",
	    { MNODE("a", FRESH, true, 8, 8192, 100, "x86_64", 0) }, 1, 0,
	    "zz", NULL, CARVE_ENOTFOUND, "zz" },
	{ "named target down",
	    { MNODE("a", FRESH, true, 8, 8192, 100, "x86_64", 0),
	      MNODE("b", STALE, true, 8, 8192, 100, "x86_64", 0) }, 2, 0,
	    "b", NULL, CARVE_ECONFLICT, "down" },
	{ "named target drained",
	    { MNODE("a", FRESH, true, 8, 8192, 100, "x86_64", 0),
	      MNODE("b", FRESH, false, 8, 8192, 100, "x86_64", 0) }, 2, 0,
	    "b", NULL, CARVE_ECONFLICT, "not schedulable" },
	{ "named target busy",
	    { MNODE("a", FRESH, true, 8, 8192, 100, "x86_64", 0),
	      MNODE("b", FRESH, true, 8, 8192, 100, "x86_64", 1) }, 2, 0,
	    "b", NULL, CARVE_ECONFLICT, "limit is 1" },
	{ "named target with another CPU",
	    { MNODE("a", FRESH, true, 8, 8192, 100, "x86_64", 0),
	      MNODE("b", FRESH, true, 8, 8192, 100, "ppc64le", 0) }, 2, 0,
	    "b", NULL, CARVE_ECONFLICT, "ppc64le" },
	{ "named target without room",
	    { MNODE("a", FRESH, true, 8, 8192, 100, "x86_64", 0),
	      MNODE("b", FRESH, true, 8, 1000, 100, "x86_64", 0) }, 2, 0,
	    "b", NULL, CARVE_ECAPACITY, "1000 MiB of memory free" },
};

static void
test_target(void **state)
{
	const struct target_case *c = *state;
	int64_t need[PROTO_CAP_NCLASSES] = { 2, 2000, 10 };
	struct carve_error err = { 0 };
	int idx;

	idx = cp_sched_pick_target(c->nodes, c->n, c->source, c->named, need,
	    CP_CPU_DEFAULT, 1, NOW, TTL, &err);
	if (c->want != NULL) {
		if (idx < 0)
			fail_msg("%s: refused: %s", c->desc, err.message);
		assert_string_equal(c->nodes[idx].sn_name, c->want);
		assert_false(error_isset(&err));
		return;
	}
	assert_int_equal(idx, -1);
	if (err.code != c->want_err || strstr(err.message, c->why) == NULL)
		fail_msg("%s: %s: %s", c->desc, error_code_name(err.code),
		    err.message);
}

#define NCASES		(sizeof(cases) / sizeof(cases[0]))
#define NCPU		(sizeof(cpu_cases) / sizeof(cpu_cases[0]))
#define NTARGET		(sizeof(target_cases) / sizeof(target_cases[0]))

int
main(void)
{
	struct CMUnitTest tests[NCASES + NCPU + NTARGET + 2];
	size_t n = 0;

	cmocka_set_message_output(CM_OUTPUT_TAP);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct CMUnitTest t = { cases[i].desc, test_case, NULL, NULL,
		    (void *)&cases[i] };
		tests[n++] = t;
	}
	for (size_t i = 0; i < NCPU; i++) {
		struct CMUnitTest t = { cpu_cases[i].desc, test_cpu, NULL, NULL,
		    (void *)&cpu_cases[i] };
		tests[n++] = t;
	}
	for (size_t i = 0; i < NTARGET; i++) {
		struct CMUnitTest t = { target_cases[i].desc, test_target, NULL,
		    NULL, (void *)&target_cases[i] };
		tests[n++] = t;
	}
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_node_up);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_message_names_node);
	return _cmocka_run_group_tests("cp_sched", tests, n, NULL, NULL);
}
