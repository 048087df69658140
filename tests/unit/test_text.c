/* Unit tests for common/text.c: UTF-8 repair and quoting of hostile text. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"
#include "common/text.h"

static const struct {
	const char *in;
	const char *want;
} fix_cases[] = {
	{ "plain ascii", "plain ascii" },
	{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
	{ "cut \xe2\x82", "cut ??" },                 /* truncated character */
	{ "lone \x80 continuation", "lone ? continuation" },
	{ "overlong \xc0\xaf", "overlong ??" },
	{ "surrogate \xed\xa0\x80", "surrogate ???" },
	{ "too big \xf4\x90\x80\x80", "too big ????" },
	{ "\xff\xfe", "??" },
	{ "", "" },
};

static void
test_utf8_fix(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(fix_cases) / sizeof(fix_cases[0]); i++) {
		char buf[64];

		snprintf(buf, sizeof(buf), "%s", fix_cases[i].in);
		text_utf8_fix(buf);
		assert_string_equal(buf, fix_cases[i].want);
	}
}

static void
test_utf8_seq(void **state)
{
	(void)state;
	assert_int_equal(text_utf8_seq((const unsigned char *)"a", 1), 1);
	assert_int_equal(text_utf8_seq((const unsigned char *)"\xc3\xa9", 2), 2);
	assert_int_equal(text_utf8_seq((const unsigned char *)"\xc3\xa9", 1), 0);
	assert_int_equal(text_utf8_seq((const unsigned char *)"\xe2\x82\xac", 3), 3);
	assert_int_equal(text_utf8_seq((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
	assert_int_equal(text_utf8_seq((const unsigned char *)"\xe0\x80\x80", 3), 0);
}

static void
test_quote(void **state)
{
	char out[80];
	char longer[200];

	(void)state;
	text_quote("web-1", 64, out, sizeof(out));
	assert_string_equal(out, "web-1");
	text_quote("a\"b\\c\nd\x1b[31m\xc3\xa9", 64, out, sizeof(out));
	assert_string_equal(out, "a?b?c?d?[31m??");
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	text_quote(longer, 64, out, sizeof(out));
	assert_int_equal(strlen(out), 67);
	assert_string_equal(out + 64, "...");
	text_quote(longer, 64, out, 10);      /* the buffer bounds it too */
	assert_int_equal(strlen(out), 6);
}

/* Error messages are always valid UTF-8, however they were cut. */
static void
test_error_messages_stay_utf8(void **state)
{
	struct carve_error err = { 0 };
	char name[CARVE_ERRMSG_MAX * 2];
	size_t n = 0;

	(void)state;
	while (n + 2 < sizeof(name)) {
		name[n++] = '\xc3';
		name[n++] = '\xa9';
	}
	name[n] = '\0';
	error_set(&err, CARVE_EHYPERVISOR, "x%s", name);   /* cut mid-character */
	for (size_t i = 0; err.message[i] != '\0';) {
		size_t k = text_utf8_seq((const unsigned char *)err.message + i,
		    strlen(err.message + i));
		assert_true(k > 0);
		i += k;
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_fix),
		cmocka_unit_test(test_utf8_seq),
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_error_messages_stay_utf8),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
