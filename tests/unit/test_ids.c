/*
 * Unit tests for common/ids.c: UUID syntax, new UUIDs, and the VM name rule
 * that keeps XML, shell and path metacharacters out of names.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Every cmocka test takes a state; most of these do not use it. */
#define UNUSED __attribute__((unused))

#include "common/ids.h"
#include "common/xalloc.h"

/* ----------------------------------------------------------------- UUIDs */

struct uuid_case {
	const char *s;
	bool valid;
};

static const struct uuid_case uuid_cases[] = {
	{ "123e4567-e89b-42d3-a456-426614174000", true },
	{ "00000000-0000-0000-0000-000000000000", true },
	{ "ffffffff-ffff-ffff-ffff-ffffffffffff", true },
	{ "ABCDEF01-2345-6789-ABCD-EF0123456789", true },
	{ "AbCdEf01-2345-6789-aBcD-eF0123456789", true },
	{ "", false },
	{ "123e4567e89b42d3a456426614174000", false },		/* no dashes */
	{ "123e4567-e89b-42d3-a456-42661417400", false },	/* 35 bytes */
	{ "123e4567-e89b-42d3-a456-4266141740000", false },	/* 37 bytes */
	{ "123e4567-e89b-42d3-a456-42661417400g", false },	/* non-hex */
	{ "123e4567-e89b-42d3-a456_426614174000", false },	/* '_' for '-' */
	{ "123e4567-e89b-42d3a-456-426614174000", false },	/* dash moved */
	{ "123e4567-e89b-42d3-a456-426614174000 ", false },
	{ " 123e4567-e89b-42d3-a456-42661417400", false },
	{ "{23e4567-e89b-42d3-a456-42661417400}", false },
	{ "123e4567-e89b-42d3-a456-4266141740\n0", false },
	{ "------------------------------------", false },
	{ "../../../../../../../../../etc/passw", false },
};

static void
test_uuid_valid(void **state UNUSED)
{
	for (size_t i = 0; i < sizeof(uuid_cases) / sizeof(uuid_cases[0]); i++) {
		if (ids_uuid_valid(uuid_cases[i].s) != uuid_cases[i].valid)
			fail_msg("ids_uuid_valid(\"%s\") should be %s",
			    uuid_cases[i].s, uuid_cases[i].valid ? "true" :
			    "false");
	}
	assert_false(ids_uuid_valid(NULL));
}

static void
test_uuid_new(void **state UNUSED)
{
	char a[IDS_UUID_LEN + 1], b[IDS_UUID_LEN + 1];

	for (int i = 0; i < 100; i++) {
		ids_uuid_new(a);
		assert_int_equal(strlen(a), IDS_UUID_LEN);
		assert_true(ids_uuid_valid(a));
		/* lower-case, version 4, RFC 4122 variant */
		for (int j = 0; j < IDS_UUID_LEN; j++)
			assert_false(a[j] >= 'A' && a[j] <= 'F');
		assert_int_equal(a[14], '4');
		assert_non_null(strchr("89ab", a[19]));
	}
	ids_uuid_new(b);
	assert_string_not_equal(a, b);
}

static void
test_uuid_normalize(void **state UNUSED)
{
	char out[IDS_UUID_LEN + 1];

	ids_uuid_normalize("ABCDEF01-2345-6789-ABCD-EF0123456789", out);
	assert_string_equal(out, "abcdef01-2345-6789-abcd-ef0123456789");
	ids_uuid_normalize("123e4567-e89b-42d3-a456-426614174000", out);
	assert_string_equal(out, "123e4567-e89b-42d3-a456-426614174000");
}

/* ----------------------------------------------------------------- names */

#define N64 "a123456789012345678901234567890123456789012345678901234567890123"

struct name_case {
	const char *name;	/* test name */
	const char *s;
	const char *err;	/* NULL: valid */
};

static const struct name_case name_cases[] = {
	{ "single letter", "a", NULL },
	{ "single digit", "7", NULL },
	{ "all allowed characters", "Web-01.prod_eu", NULL },
	{ "64 bytes", N64, NULL },
	{ "ends in '-' or '.'", "a-.", NULL },
	{ "65 bytes", N64 "b", "name is 65 bytes long; at most 64 are allowed" },
	{ "empty", "", "name must not be empty" },
	{ "leading '-'", "-rf", "name must start with a letter or digit" },
	{ "leading '.'", ".hidden", "name must start with a letter or digit" },
	{ "leading '_'", "_x", "name must start with a letter or digit" },
	{ "'..'", "..", "name must start with a letter or digit" },
	{ "slash", "a/b", "name may only contain letters, digits, '.', '_' and "
	    "'-' (found byte 0x2f at offset 1)" },
	{ "space", "a b", "name may only contain letters, digits, '.', '_' and "
	    "'-' (found byte 0x20 at offset 1)" },
	{ "non-ASCII", "caf\xc3\xa9", "name may only contain letters, digits, "
	    "'.', '_' and '-' (found byte 0xc3 at offset 3)" },
};

/* Each of these, anywhere after the first byte, is refused. */
static const char metachars[] = "<>&'\"`$;|\\/*?[](){}!#%^=+~, \t\n\r:@";

static void
test_name(void **state)
{
	const struct name_case *c = *state;
	struct carve_error err = { 0 };
	int rc = ids_name_check(c->s, "name", &err);

	if (c->err == NULL) {
		assert_int_equal(rc, 0);
		assert_false(error_isset(&err));
		return;
	}
	assert_int_equal(rc, -1);
	assert_int_equal(err.code, CARVE_EINVAL);
	assert_string_equal(err.message, c->err);
}

static void
test_name_metachars(void **state UNUSED)
{
	for (const char *m = metachars; *m != '\0'; m++) {
		char s[4] = { 'v', *m, 'm', '\0' };
		struct carve_error err = { 0 };
		char *want = xasprintf("vm name may only contain letters, digits, "
		    "'.', '_' and '-' (found byte 0x%02x at offset 1)",
		    (unsigned char)*m);

		if (ids_name_check(s, "vm name", &err) != -1)
			fail_msg("\"%s\" accepted", s);
		assert_string_equal(err.message, want);
		free(want);
	}
	/* A control byte and DEL, too. */
	assert_int_equal(ids_name_check("a\x01", "n", NULL), -1);
	assert_int_equal(ids_name_check("a\x7f", "n", NULL), -1);
}

static void
test_name_edge(void **state UNUSED)
{
	struct carve_error err = { 0 };

	assert_int_equal(ids_name_check(NULL, "vm name", &err), -1);
	assert_string_equal(err.message, "vm name must not be empty");
	/* The first error is kept: a second check does not overwrite it. */
	assert_int_equal(ids_name_check("-x", "other", &err), -1);
	assert_string_equal(err.message, "vm name must not be empty");
	/* err may be NULL. */
	assert_int_equal(ids_name_check("ok", "n", NULL), 0);
	assert_int_equal(ids_name_check("", "n", NULL), -1);
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
	size_t n = sizeof(name_cases) / sizeof(name_cases[0]);
	char **names = xcalloc(n, sizeof(*names));
	int rc;

	cmocka_set_message_output(CM_OUTPUT_TAP);
	add_test("uuid: valid and invalid strings", test_uuid_valid, NULL);
	add_test("uuid: new ones are valid v4, lower-case, distinct",
	    test_uuid_new, NULL);
	add_test("uuid: normalize lower-cases", test_uuid_normalize, NULL);
	for (size_t i = 0; i < n; i++) {
		names[i] = xasprintf("name %s: %s", name_cases[i].err == NULL ?
		    "accepts" : "rejects", name_cases[i].name);
		add_test(names[i], test_name, &name_cases[i]);
	}
	add_test("name rejects metacharacters", test_name_metachars, NULL);
	add_test("name: NULL, first error kept, NULL err", test_name_edge, NULL);

	rc = _cmocka_run_group_tests("ids", tests, ntests, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(tests);
	return rc;
}
