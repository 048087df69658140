/*
 * Unit tests for common/backoff.c. Delays are random, so the tests check
 * bounds on every draw, and spread over many draws with margins wide enough
 * that a correct implementation fails with negligible probability (< 2^-100)
 * while a wrong ceiling or a missing jitter fails every time.
 */
#include "config.h"

#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

/* Every cmocka test takes a state; most of these do not use it. */
#define UNUSED __attribute__((unused))

#include "common/backoff.h"
#include "common/xalloc.h"

#define DRAWS 2000

/* The ceiling of attempt n: min(cap, base * 2^n), by repeated doubling. */
static uint64_t
ceiling(uint64_t base, uint64_t cap, unsigned n)
{
	uint64_t c = base;

	for (unsigned i = 0; i < n && c < cap; i++)
		c = c > UINT64_MAX / 2 ? UINT64_MAX : c * 2;
	return c < cap ? c : cap;
}

struct bounds_case {
	const char *name;
	uint64_t base, cap;
	unsigned attempts;	/* checked from 0 to this */
};

static const struct bounds_case bounds_cases[] = {
	{ "typical: 500 ms up to 60 s", 500, 60000, 20 },
	{ "base 1 ms", 1, 1000, 15 },
	{ "base above cap", 5000, 1000, 5 },
	{ "base equal to cap", 1000, 1000, 5 },
	{ "cap of 2^64-1 ms", 1000, UINT64_MAX, 70 },
	{ "base 2^63", 1ULL << 63, UINT64_MAX, 3 },
};

/* Every draw lies in [1, ceiling] and the attempt counter advances. */
static void
test_bounds(void **state)
{
	const struct bounds_case *c = *state;

	for (unsigned n = 0; n <= c->attempts; n++) {
		uint64_t hi = ceiling(c->base, c->cap, n);
		uint64_t max = 0;

		for (int i = 0; i < DRAWS / 10; i++) {
			struct backoff bo;
			uint64_t d;

			backoff_init(&bo, c->base, c->cap);
			bo.bo_attempt = n;
			d = backoff_next(&bo);
			assert_int_equal(bo.bo_attempt, n + 1);
			assert_true(d >= 1);
			if (d > hi)
				fail_msg("attempt %u: delay %llu above %llu", n,
				    (unsigned long long)d, (unsigned long long)hi);
			if (d > max)
				max = d;
		}
		/* 200 draws all in the lower half: probability 2^-200. */
		if (hi >= 2)
			assert_true(max > hi / 2);
	}
}

/* Successive calls grow the ceiling until the cap, then stay there. */
static void
test_growth_and_cap(void **state UNUSED)
{
	uint64_t max[16] = { 0 };

	for (int i = 0; i < DRAWS / 4; i++) {
		struct backoff bo;

		backoff_init(&bo, 100, 10000);
		for (unsigned n = 0; n < 16; n++) {
			uint64_t d = backoff_next(&bo);
			assert_true(d >= 1 && d <= ceiling(100, 10000, n));
			if (d > max[n])
				max[n] = d;
		}
	}
	/*
	 * 100, 200, ... 6400, then capped at 10000: each attempt reaches near
	 * its own ceiling (500 draws below 4/5 of it: probability 2^-160)
	 * and never past it.
	 */
	for (unsigned n = 0; n < 16; n++) {
		uint64_t hi = ceiling(100, 10000, n);
		assert_true(max[n] > hi * 4 / 5);
		assert_true(max[n] <= hi);
	}
	assert_true(max[15] <= 10000);
}

/* Full jitter: uniform over the range, so the mean is about half of it. */
static void
test_uniform(void **state UNUSED)
{
	uint64_t sum = 0;
	int low = 0;
	int n = DRAWS * 5;

	for (int i = 0; i < n; i++) {
		struct backoff bo;
		uint64_t d;

		backoff_init(&bo, 1000, 1000);
		d = backoff_next(&bo);
		sum += d;
		low += d <= 500;
	}
	/* Mean ~500, sd of the mean ~3: these bounds are 15+ sd away. */
	assert_true(sum / (uint64_t)n > 450 && sum / (uint64_t)n < 550);
	assert_true(low > n * 2 / 5 && low < n * 3 / 5);
}

/* Draws are not one repeated value (a stuck or unseeded generator). */
static void
test_varies(void **state UNUSED)
{
	uint64_t first = 0;
	bool differs = false;

	for (int i = 0; i < 64 && !differs; i++) {
		struct backoff bo;
		uint64_t d;

		backoff_init(&bo, 1ULL << 40, UINT64_MAX);
		d = backoff_next(&bo);
		if (i == 0)
			first = d;
		else if (d != first)
			differs = true;
	}
	assert_true(differs);
}

static void
test_at_least_one(void **state UNUSED)
{
	struct backoff bo;

	backoff_init(&bo, 0, 1000);
	for (int i = 0; i < 100; i++)
		assert_int_equal(backoff_next(&bo), 1);
	backoff_init(&bo, 1000, 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(backoff_next(&bo), 1);
	backoff_init(&bo, 1, 1);
	for (int i = 0; i < 100; i++)
		assert_int_equal(backoff_next(&bo), 1);
}

/* Huge attempt counts neither overflow the shift nor wrap the counter. */
static void
test_large_attempts(void **state UNUSED)
{
	static const unsigned attempts[] = { 62, 63, 64, 65, 1000,
		UINT_MAX - 1, UINT_MAX };
	struct backoff bo;

	for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
		backoff_init(&bo, 3, 5000);
		bo.bo_attempt = attempts[i];
		for (int j = 0; j < 3; j++) {
			uint64_t d = backoff_next(&bo);
			assert_true(d >= 1 && d <= 5000);
		}
		if (attempts[i] >= UINT_MAX - 1)
			assert_int_equal(bo.bo_attempt, UINT_MAX);
	}
	backoff_init(&bo, UINT64_MAX, UINT64_MAX);
	bo.bo_attempt = 64;
	assert_true(backoff_next(&bo) >= 1);
}

static void
test_reset(void **state UNUSED)
{
	struct backoff bo;

	backoff_init(&bo, 10, 100000);
	for (int i = 0; i < 12; i++)
		backoff_next(&bo);
	backoff_reset(&bo);
	assert_int_equal(bo.bo_attempt, 0);
	assert_int_equal(bo.bo_base_ms, 10);
	assert_int_equal(bo.bo_cap_ms, 100000);
	for (int i = 0; i < 200; i++) {
		backoff_reset(&bo);
		assert_true(backoff_next(&bo) <= 10);
	}
}

static void *
thread_draw(void *arg)
{
	uint64_t *out = arg;
	struct backoff bo;

	backoff_init(&bo, 1ULL << 40, UINT64_MAX);
	for (int i = 0; i < 4; i++)
		out[i] = backoff_next(&bo);
	return NULL;
}

/* Other threads get their own, independently seeded, streams. */
static void
test_threads(void **state UNUSED)
{
	uint64_t a[4], b[4];
	pthread_t ta, tb;

	assert_int_equal(pthread_create(&ta, NULL, thread_draw, a), 0);
	assert_int_equal(pthread_create(&tb, NULL, thread_draw, b), 0);
	assert_int_equal(pthread_join(ta, NULL), 0);
	assert_int_equal(pthread_join(tb, NULL), 0);
	for (int i = 0; i < 4; i++)
		assert_true(a[i] >= 1 && b[i] >= 1);
	assert_true(a[0] != b[0] || a[1] != b[1] || a[2] != b[2] ||
	    a[3] != b[3]);
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
	size_t n = sizeof(bounds_cases) / sizeof(bounds_cases[0]);
	char **names = xcalloc(n, sizeof(*names));
	int rc;

	cmocka_set_message_output(CM_OUTPUT_TAP);
	for (size_t i = 0; i < n; i++) {
		names[i] = xasprintf("bounds: %s", bounds_cases[i].name);
		add_test(names[i], test_bounds, &bounds_cases[i]);
	}
	add_test("growth, then capped", test_growth_and_cap, NULL);
	add_test("uniform over the range", test_uniform, NULL);
	add_test("draws vary", test_varies, NULL);
	add_test("at least 1 ms", test_at_least_one, NULL);
	add_test("large attempt counts", test_large_attempts, NULL);
	add_test("reset", test_reset, NULL);
	add_test("threads", test_threads, NULL);

	rc = _cmocka_run_group_tests("backoff", tests, ntests, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(tests);
	return rc;
}
