/* Unit tests for agent/capacity.c: the placement-style arithmetic. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/capacity.h"

static void
test_class_names(void **state)
{
	(void)state;
	assert_string_equal(capacity_class_name(CAP_VCPU), "VCPU");
	assert_string_equal(capacity_class_name(CAP_MEMORY_MIB), "MEMORY_MIB");
	assert_string_equal(capacity_class_name(CAP_DISK_GIB), "DISK_GIB");
	assert_string_equal(capacity_class_name(CAP_NCLASSES), "UNKNOWN");
}

static const struct {
	const char *what;
	uint64_t total, reserved;
	double ratio;
	uint64_t want;
} alloc_cases[] = {
	{ "overcommit 4x", 32, 2, 4.0, 120 },
	{ "ratio 1", 32, 0, 1.0, 32 },
	{ "memory minus reserve", 8192, 512, 1.0, 7680 },
	{ "reserved above total", 2, 4, 16.0, 0 },
	{ "reserved equals total", 8, 8, 2.0, 0 },
	{ "empty host", 0, 0, 4.0, 0 },
	{ "1.5 exact", 10, 0, 1.5, 15 },
	{ "1.5 floors 10.5", 7, 0, 1.5, 10 },
	{ "0.5 floors 1.5", 3, 0, 0.5, 1 },
	{ "0.9 floors 14745.6", 16384, 0, 0.9, 14745 },
	{ "0.7 of 30 is 21", 30, 0, 0.7, 21 },
	/* 100 * 0.29 is 28.999999999999996 in binary floating point. */
	{ "0.29 of 100 is 29", 100, 0, 0.29, 29 },
	{ "1.1 of 10 is 11", 10, 0, 1.1, 11 },
	{ "16.0 with reserve", 64, 4, 16.0, 960 },
	{ "tiny ratio", 10, 0, 1e-300, 0 },
	{ "zero ratio", 32, 0, 0.0, 0 },
	{ "negative ratio", 32, 0, -1.0, 0 },
	{ "NaN ratio", 32, 0, NAN, 0 },
	{ "infinite ratio", 32, 0, INFINITY, UINT64_MAX },
	{ "max, ratio 1", UINT64_MAX, 0, 1.0, UINT64_MAX },
	{ "max minus 1, ratio 1", UINT64_MAX, 1, 1.0, UINT64_MAX - 1 },
	{ "max, ratio 2 saturates", UINT64_MAX, 0, 2.0, UINT64_MAX },
	{ "huge ratio saturates", 1, 0, 1e300, UINT64_MAX },
	{ "2^62 * 3 fits", 1ULL << 62, 0, 3.0, 3ULL << 62 },
	{ "2^62 * 4 is 2^64", 1ULL << 62, 0, 4.0, UINT64_MAX },
	{ "2^53 * 1.5", 1ULL << 53, 0, 1.5, 3ULL << 52 },
};

static void
test_allocatable(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(alloc_cases) / sizeof(alloc_cases[0]);
	    i++) {
		struct cap_inventory inv = {
			.total = alloc_cases[i].total,
			.reserved = alloc_cases[i].reserved,
			.ratio = alloc_cases[i].ratio,
		};
		uint64_t got = capacity_allocatable(&inv);

		if (got != alloc_cases[i].want)
			fail_msg("%s: allocatable %llu, want %llu",
			    alloc_cases[i].what, (unsigned long long)got,
			    (unsigned long long)alloc_cases[i].want);
	}
}

static void
test_free_amount(void **state)
{
	struct cap_inventory inv = { .total = 32, .reserved = 2, .ratio = 4.0 };

	(void)state;
	assert_int_equal(capacity_free(&inv), 120);
	inv.allocated = 100;
	assert_int_equal(capacity_free(&inv), 20);
	inv.allocated = 120;
	assert_int_equal(capacity_free(&inv), 0);
	/* Over-committed after the ratio was lowered: nothing free, no wrap. */
	inv.allocated = 200;
	assert_int_equal(capacity_free(&inv), 0);
	inv.ratio = 1.0;
	inv.allocated = UINT64_MAX;
	assert_int_equal(capacity_free(&inv), 0);
}

/* 32 CPUs - 2 reserved at 4.0 = 120; 8192 MiB at 1.0; 100 GiB, 10 reserved. */
static void
host(struct capacity *cap, uint64_t vcpu, uint64_t mem, uint64_t disk)
{
	memset(cap, 0, sizeof(*cap));
	cap->cap[CAP_VCPU] = (struct cap_inventory){ 32, 2, 4.0, vcpu };
	cap->cap[CAP_MEMORY_MIB] = (struct cap_inventory){ 8192, 0, 1.0, mem };
	cap->cap[CAP_DISK_GIB] = (struct cap_inventory){ 100, 10, 1.0, disk };
}

static const struct {
	const char *what;
	uint64_t alloc[CAP_NCLASSES];
	uint64_t req[CAP_NCLASSES];
	enum carve_errcode code;
	const char *msg;
} admit_cases[] = {
	{ "empty host, small vm", { 0, 0, 0 }, { 2, 512, 10 }, CARVE_OK, NULL },
	{ "whole host", { 0, 0, 0 }, { 120, 8192, 90 }, CARVE_OK, NULL },
	{ "vcpu exactly fits", { 100, 0, 0 }, { 20, 64, 0 }, CARVE_OK, NULL },
	{ "vcpu one over", { 100, 0, 0 }, { 21, 64, 0 }, CARVE_ECAPACITY,
	    "insufficient VCPU: requested 21, free 20 of 120" },
	{ "memory exactly fits", { 0, 6144, 0 }, { 1, 2048, 0 }, CARVE_OK,
	    NULL },
	{ "memory short", { 0, 6144, 0 }, { 1, 4096, 0 }, CARVE_ECAPACITY,
	    "insufficient MEMORY_MIB: requested 4096, free 2048 of 8192" },
	{ "disk one over", { 0, 0, 80 }, { 1, 64, 11 }, CARVE_ECAPACITY,
	    "insufficient DISK_GIB: requested 11, free 10 of 90" },
	{ "vcpu never fits", { 0, 0, 0 }, { 121, 64, 0 }, CARVE_EINVAL,
	    "VCPU 121 exceeds what this host can ever allocate (120)" },
	{ "vcpu max fits on empty host", { 0, 0, 0 }, { 120, 64, 0 }, CARVE_OK,
	    NULL },
	{ "memory never fits", { 0, 0, 0 }, { 1, 8193, 0 }, CARVE_EINVAL,
	    "MEMORY_MIB 8193 exceeds what this host can ever allocate (8192)" },
	/* Never-fits wins over does-not-fit-now, whatever the class order. */
	{ "einval before ecapacity", { 120, 0, 0 }, { 1, 9000, 0 },
	    CARVE_EINVAL,
	    "MEMORY_MIB 9000 exceeds what this host can ever allocate (8192)" },
	{ "zero request on full host", { 120, 8192, 90 }, { 0, 0, 0 },
	    CARVE_OK, NULL },
	{ "zero vcpus on full vcpus", { 120, 0, 0 }, { 0, 1024, 0 }, CARVE_OK,
	    NULL },
	{ "over-committed host", { 150, 0, 0 }, { 1, 64, 0 }, CARVE_ECAPACITY,
	    "insufficient VCPU: requested 1, free 0 of 120" },
	{ "huge request", { 0, 0, 0 }, { UINT64_MAX, 64, 0 }, CARVE_EINVAL,
	    "VCPU 18446744073709551615 exceeds what this host can ever "
	    "allocate (120)" },
};

static void
test_admit(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(admit_cases) / sizeof(admit_cases[0]);
	    i++) {
		struct capacity cap;
		struct cap_request req;
		struct carve_error err = { 0 };
		int rc;

		host(&cap, admit_cases[i].alloc[0], admit_cases[i].alloc[1],
		    admit_cases[i].alloc[2]);
		memcpy(req.amount, admit_cases[i].req, sizeof(req.amount));
		rc = capacity_admit(&cap, &req, &err);
		if (err.code != admit_cases[i].code)
			fail_msg("%s: code %d (%s), want %d", admit_cases[i].what,
			    err.code, err.message, admit_cases[i].code);
		assert_int_equal(rc, admit_cases[i].code == CARVE_OK ? 0 : -1);
		if (admit_cases[i].msg != NULL &&
		    strcmp(err.message, admit_cases[i].msg) != 0)
			fail_msg("%s: message \"%s\", want \"%s\"",
			    admit_cases[i].what, err.message, admit_cases[i].msg);
	}
}

/* A class reserved away entirely: zero still fits, any other ask never does. */
static void
test_admit_no_disk(void **state)
{
	struct capacity cap;
	struct cap_request req = { { 1, 64, 0 } };
	struct carve_error err = { 0 };

	(void)state;
	host(&cap, 0, 0, 0);
	cap.cap[CAP_DISK_GIB].reserved = 200;
	assert_int_equal(capacity_admit(&cap, &req, &err), 0);
	req.amount[CAP_DISK_GIB] = 1;
	assert_int_equal(capacity_admit(&cap, &req, &err), -1);
	assert_int_equal(err.code, CARVE_EINVAL);
	assert_string_equal(err.message,
	    "DISK_GIB 1 exceeds what this host can ever allocate (0)");
}

/*
 * What resizes in flight on one VM claim: the peak of their targets over the
 * current size, per class; shrinks claim nothing; a class a resize leaves
 * alone (0) claims nothing.
 */
static const struct {
	const char *what;
	uint64_t cur[CAP_NCLASSES];
	size_t n;
	uint64_t targets[3][CAP_NCLASSES];
	uint64_t want[CAP_NCLASSES];
} growth_cases[] = {
	{ "none in flight", { 2, 1024, 10 }, 0, { { 0 } }, { 0, 0, 0 } },
	{ "grow vcpus", { 2, 1024, 10 }, 1, { { 4, 0, 0 } }, { 2, 0, 0 } },
	{ "grow memory", { 2, 1024, 10 }, 1, { { 0, 1536, 0 } }, { 0, 512, 0 } },
	{ "grow both", { 2, 1024, 10 }, 1, { { 8, 4096, 0 } },
	    { 6, 3072, 0 } },
	{ "shrink claims nothing", { 4, 2048, 10 }, 1, { { 2, 512, 0 } },
	    { 0, 0, 0 } },
	{ "same size claims nothing", { 4, 2048, 10 }, 1, { { 4, 2048, 0 } },
	    { 0, 0, 0 } },
	{ "shrink one, grow the other", { 4, 2048, 10 }, 1,
	    { { 2, 4096, 0 } }, { 0, 2048, 0 } },
	{ "queued grows claim their peak, not their sum", { 2, 1024, 10 }, 2,
	    { { 4, 0, 0 }, { 8, 0, 0 } }, { 6, 0, 0 } },
	{ "grow then shrink still claims the grow", { 2, 1024, 10 }, 2,
	    { { 8, 2048, 0 }, { 1, 512, 0 } }, { 6, 1024, 0 } },
	{ "shrink then grow back claims the difference", { 4, 1024, 10 }, 2,
	    { { 2, 0, 0 }, { 4, 0, 0 } }, { 0, 0, 0 } },
	{ "peak per class from different resizes", { 2, 1024, 10 }, 3,
	    { { 6, 0, 0 }, { 0, 3072, 0 }, { 3, 2048, 0 } },
	    { 4, 2048, 0 } },
	{ "huge target", { 1, 64, 0 }, 1, { { UINT64_MAX, 0, 0 } },
	    { UINT64_MAX - 1, 0, 0 } },
};

static void
test_growth(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(growth_cases) / sizeof(growth_cases[0]);
	    i++) {
		struct cap_request cur, targets[3], out;

		memcpy(cur.amount, growth_cases[i].cur, sizeof(cur.amount));
		memcpy(targets, growth_cases[i].targets, sizeof(targets));
		memset(&out, 0xa5, sizeof(out));
		capacity_growth(&cur, targets, growth_cases[i].n, &out);
		for (int c = 0; c < CAP_NCLASSES; c++)
			if (out.amount[c] != growth_cases[i].want[c])
				fail_msg("%s: class %d: %llu, want %llu",
				    growth_cases[i].what, c,
				    (unsigned long long)out.amount[c],
				    (unsigned long long)
				    growth_cases[i].want[c]);
	}
}

/* The host of test_admit: 120 vCPUs, 8192 MiB, 90 GiB allocatable. */
static const struct {
	const char *what;
	uint64_t alloc[CAP_NCLASSES];
	uint64_t target[CAP_NCLASSES];
	uint64_t need[CAP_NCLASSES];
	enum carve_errcode code;
	const char *msg;
} growth_admit_cases[] = {
	{ "growth fits", { 100, 4096, 0 }, { 8, 0, 0 }, { 6, 0, 0 }, CARVE_OK,
	    NULL },
	{ "growth exactly fits", { 114, 4096, 0 }, { 8, 0, 0 }, { 6, 0, 0 },
	    CARVE_OK, NULL },
	{ "growth one over", { 115, 4096, 0 }, { 8, 0, 0 }, { 6, 0, 0 },
	    CARVE_ECAPACITY, "insufficient VCPU to grow the VM to 8: it needs 6 "
	    "more, free 5 of 120" },
	{ "memory growth short", { 0, 7168, 0 }, { 0, 3072, 0 },
	    { 0, 2048, 0 }, CARVE_ECAPACITY, "insufficient MEMORY_MIB to grow "
	    "the VM to 3072: it needs 2048 more, free 1024 of 8192" },
	/* A shrink on a full (even over-committed) host always fits. */
	{ "shrink on a full host", { 150, 8192, 90 }, { 1, 64, 0 },
	    { 0, 0, 0 }, CARVE_OK, NULL },
	{ "target beyond the host", { 0, 0, 0 }, { 121, 0, 0 }, { 100, 0, 0 },
	    CARVE_EINVAL, "VCPU 121 exceeds what this host can ever allocate "
	    "(120)" },
	{ "memory target beyond the host, even as a shrink", { 0, 0, 0 },
	    { 0, 9000, 0 }, { 0, 0, 0 }, CARVE_EINVAL,
	    "MEMORY_MIB 9000 exceeds what this host can ever allocate (8192)" },
};

static void
test_admit_growth(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(growth_admit_cases) /
	    sizeof(growth_admit_cases[0]); i++) {
		struct capacity cap;
		struct cap_request target, need;
		struct carve_error err = { 0 };
		int rc;

		host(&cap, growth_admit_cases[i].alloc[0],
		    growth_admit_cases[i].alloc[1],
		    growth_admit_cases[i].alloc[2]);
		memcpy(target.amount, growth_admit_cases[i].target,
		    sizeof(target.amount));
		memcpy(need.amount, growth_admit_cases[i].need,
		    sizeof(need.amount));
		rc = capacity_admit_growth(&cap, &target, &need, &err);
		if (err.code != growth_admit_cases[i].code)
			fail_msg("%s: code %d (%s)", growth_admit_cases[i].what,
			    err.code, err.message);
		assert_int_equal(rc, err.code == CARVE_OK ? 0 : -1);
		if (growth_admit_cases[i].msg != NULL &&
		    strcmp(err.message, growth_admit_cases[i].msg) != 0)
			fail_msg("%s: message \"%s\"",
			    growth_admit_cases[i].what, err.message);
	}
}

static void
test_add_sub(void **state)
{
	struct capacity cap;
	struct cap_request a = { { 4, 2048, 20 } };
	struct cap_request big = { { UINT64_MAX, 1, UINT64_MAX } };
	struct carve_error err = { 0 };

	(void)state;
	host(&cap, 0, 0, 0);
	capacity_add(&cap, &a);
	capacity_add(&cap, &a);
	assert_int_equal(cap.cap[CAP_VCPU].allocated, 8);
	assert_int_equal(cap.cap[CAP_MEMORY_MIB].allocated, 4096);
	assert_int_equal(cap.cap[CAP_DISK_GIB].allocated, 40);
	assert_int_equal(capacity_free(&cap.cap[CAP_VCPU]), 112);

	/* Admitting and adding until full, then one more is refused. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(capacity_admit(&cap, &a, &err), 0);
		capacity_add(&cap, &a);
	}
	assert_int_equal(cap.cap[CAP_MEMORY_MIB].allocated, 8192);
	assert_int_equal(capacity_admit(&cap, &a, &err), -1);
	assert_int_equal(err.code, CARVE_ECAPACITY);

	capacity_sub(&cap, &a);
	assert_int_equal(cap.cap[CAP_VCPU].allocated, 12);
	assert_int_equal(cap.cap[CAP_MEMORY_MIB].allocated, 6144);
	assert_int_equal(cap.cap[CAP_DISK_GIB].allocated, 60);

	/* Saturation, never wrap-around. */
	capacity_add(&cap, &big);
	assert_true(cap.cap[CAP_VCPU].allocated == UINT64_MAX);
	assert_int_equal(cap.cap[CAP_MEMORY_MIB].allocated, 6145);
	assert_true(cap.cap[CAP_DISK_GIB].allocated == UINT64_MAX);
	capacity_sub(&cap, &big);
	capacity_sub(&cap, &big);
	assert_int_equal(cap.cap[CAP_VCPU].allocated, 0);
	assert_int_equal(cap.cap[CAP_MEMORY_MIB].allocated, 6143);
	assert_int_equal(cap.cap[CAP_DISK_GIB].allocated, 0);
}

static uint64_t
get_u64(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("key %s missing", key);
	assert_int_equal(json_object_get_type(v), json_type_int);
	return json_object_get_uint64(v);
}

static double
get_double(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("key %s missing", key);
	assert_int_equal(json_object_get_type(v), json_type_double);
	return json_object_get_double(v);
}

static void
test_encode(void **state)
{
	struct capacity cap;
	json_object *obj, *v, *m, *d, *back;
	const char *s;

	(void)state;
	host(&cap, 30, 1024, 95);
	cap.cap[CAP_MEMORY_MIB].ratio = 1.5;
	obj = capacity_encode(&cap);
	assert_int_equal(json_object_object_length(obj), 3);
	assert_true(json_object_object_get_ex(obj, "VCPU", &v));
	assert_true(json_object_object_get_ex(obj, "MEMORY_MIB", &m));
	assert_true(json_object_object_get_ex(obj, "DISK_GIB", &d));

	assert_int_equal(json_object_object_length(v), 6);
	assert_int_equal(get_u64(v, "total"), 32);
	assert_int_equal(get_u64(v, "reserved"), 2);
	assert_true(get_double(v, "allocation_ratio") == 4.0);
	assert_int_equal(get_u64(v, "allocated"), 30);
	assert_int_equal(get_u64(v, "allocatable"), 120);
	assert_int_equal(get_u64(v, "free"), 90);

	assert_true(get_double(m, "allocation_ratio") == 1.5);
	assert_int_equal(get_u64(m, "allocatable"), 12288);
	assert_int_equal(get_u64(m, "free"), 11264);

	/* Over-committed disk: free is 0, not a wrapped huge number. */
	assert_int_equal(get_u64(d, "allocatable"), 90);
	assert_int_equal(get_u64(d, "allocated"), 95);
	assert_int_equal(get_u64(d, "free"), 0);

	/* The serialized form parses back to the same numbers. */
	s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
	back = json_tokener_parse(s);
	assert_non_null(back);
	assert_true(json_object_object_get_ex(back, "VCPU", &v));
	assert_int_equal(get_u64(v, "allocatable"), 120);
	json_object_put(back);
	json_object_put(obj);
}

static void
test_encode_huge_and_nan(void **state)
{
	struct capacity cap;
	json_object *obj, *v, *m, *back;

	(void)state;
	host(&cap, 0, 0, 0);
	cap.cap[CAP_VCPU] = (struct cap_inventory){ UINT64_MAX, 0, 1.0, 1 };
	cap.cap[CAP_MEMORY_MIB].ratio = NAN;
	obj = capacity_encode(&cap);
	assert_true(json_object_object_get_ex(obj, "VCPU", &v));
	assert_true(get_u64(v, "total") == UINT64_MAX);
	assert_true(get_u64(v, "free") == UINT64_MAX - 1);
	assert_true(json_object_object_get_ex(obj, "MEMORY_MIB", &m));
	assert_true(get_double(m, "allocation_ratio") == 0.0);
	assert_int_equal(get_u64(m, "allocatable"), 0);

	/* Still valid JSON (no NaN token) with the full uint64 range. */
	back = json_tokener_parse(json_object_to_json_string_ext(obj,
	    JSON_C_TO_STRING_PLAIN));
	assert_non_null(back);
	assert_true(json_object_object_get_ex(back, "VCPU", &v));
	assert_true(get_u64(v, "total") == UINT64_MAX);
	json_object_put(back);
	json_object_put(obj);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_class_names),
		cmocka_unit_test(test_allocatable),
		cmocka_unit_test(test_free_amount),
		cmocka_unit_test(test_admit),
		cmocka_unit_test(test_admit_no_disk),
		cmocka_unit_test(test_growth),
		cmocka_unit_test(test_admit_growth),
		cmocka_unit_test(test_add_sub),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_encode_huge_and_nan),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
