/*
 * Unit tests for api/cp/cp_sched.c: which node a new VM goes to. Each case
 * is a small fleet, a request and the node (or error code) an operator
 * would expect.
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
	{ name, hb, sched, { v, m, d }, { cv, cm, cd } }

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

int
main(void)
{
	struct CMUnitTest tests[sizeof(cases) / sizeof(cases[0]) + 2];
	size_t n = 0;

	cmocka_set_message_output(CM_OUTPUT_TAP);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct CMUnitTest t = { cases[i].desc, test_case, NULL, NULL,
		    (void *)&cases[i] };
		tests[n++] = t;
	}
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_node_up);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_message_names_node);
	return _cmocka_run_group_tests("cp_sched", tests, n, NULL, NULL);
}
