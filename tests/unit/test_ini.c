/*
 * Unit tests for common/ini.c: what a well-formed file delivers to the
 * callback, and the exact "file:line: message" an operator sees for each
 * kind of broken file. One TAP test per table row.
 */
#include "config.h"

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

#include "common/ini.h"
#include "common/xalloc.h"

/* Records every callback as "section|key|value|line\n". */
struct record {
	char *r_buf;
	size_t r_len;
	int r_calls;
	const char *r_fail_key;	/* the callback fails on this key */
	bool r_fail_silently;	/* ... without setting err */
};

static int
record_cb(const char *section, const char *key, const char *value,
    unsigned line, struct carve_error *err, void *arg)
{
	struct record *r = arg;
	char *s;

	r->r_calls++;
	if (r->r_fail_key != NULL && strcmp(key, r->r_fail_key) == 0) {
		if (r->r_fail_silently)
			return -1;
		return error_set(err, CARVE_ECONFLICT, "value \"%s\" refused",
		    value);
	}
	s = xasprintf("%s|%s|%s|%u\n", section, key, value, line);
	r->r_buf = xrealloc(r->r_buf, r->r_len + strlen(s) + 1);
	memcpy(r->r_buf + r->r_len, s, strlen(s) + 1);
	r->r_len += strlen(s);
	free(s);
	return 0;
}

static const char *
record_text(const struct record *r)
{
	return r->r_buf != NULL ? r->r_buf : "";
}

/* ------------------------------------------------------------ good input */

struct good_case {
	const char *name;
	const char *input;
	size_t len;		/* 0: strlen(input) */
	const char *expect;
};

static const struct good_case good_cases[] = {
	{ "one key", "[a]\nk = v\n", 0, "a|k|v|2\n" },
	{ "empty input", "", 0, "" },
	{ "only comments and blanks",
	    "# hash\n; semicolon\n\n   \t\n  # indented\n", 0, "" },
	{ "comments between keys", "[a]\n# c\nk = v\n; c\nj = w\n", 0,
	    "a|k|v|3\na|j|w|5\n" },
	{ "value keeps '#' and ';'", "[a]\nk = a#b ; c\n", 0, "a|k|a#b ; c|2\n" },
	{ "value keeps '='", "[a]\nk = x=y\n", 0, "a|k|x=y|2\n" },
	{ "CRLF line endings", "[a]\r\nk = v\r\nj = w\r\n", 0,
	    "a|k|v|2\na|j|w|3\n" },
	{ "blanks trimmed around key and value", "[a]\n \tk\t=\t  v v  \t\n", 0,
	    "a|k|v v|2\n" },
	{ "no spaces around '='", "[a]\nk=v\n", 0, "a|k|v|2\n" },
	{ "indented section header", "  [a]\nk = v\n", 0, "a|k|v|2\n" },
	{ "empty value", "[a]\nk =\nj =   \n", 0, "a|k||2\na|j||3\n" },
	{ "quoted value keeps spaces", "[a]\nk = \"  sp ace  \"\n", 0,
	    "a|k|  sp ace  |2\n" },
	{ "quoted empty value", "[a]\nk = \"\"\n", 0, "a|k||2\n" },
	{ "quoted value escapes", "[a]\nk = \"q\\\"b\\\\s#;\"\n", 0,
	    "a|k|q\"b\\s#;|2\n" },
	{ "quote not at start is literal", "[a]\nk = say \"hi\"\n", 0,
	    "a|k|say \"hi\"|2\n" },
	{ "last line without newline", "[a]\nk = v", 0, "a|k|v|2\n" },
	{ "section name alphabet", "[Ab.c-d_9]\nk = v\n", 0,
	    "Ab.c-d_9|k|v|2\n" },
	{ "key alphabet", "[a]\nK.e-y_9 = v\n", 0, "a|K.e-y_9|v|2\n" },
	{ "same section twice, different keys", "[a]\nk = 1\n[b]\nk = 2\n"
	    "[a]\nj = 3\n", 0, "a|k|1|2\nb|k|2|4\na|j|3|6\n" },
	{ "UTF-8 in values", "[a]\nk = caf\xc3\xa9\n", 0,
	    "a|k|caf\xc3\xa9|2\n" },
};

static void
test_good(void **state)
{
	const struct good_case *c = *state;
	struct record r = { 0 };
	struct carve_error err = { 0 };
	size_t len = c->len ? c->len : strlen(c->input);

	assert_int_equal(ini_parse_buf(c->input, len, "t.conf", record_cb, &err,
	    &r), 0);
	assert_false(error_isset(&err));
	assert_string_equal(record_text(&r), c->expect);
	free(r.r_buf);
}

/* ------------------------------------------------------------- bad input */

struct bad_case {
	const char *name;
	const char *input;
	size_t len;		/* 0: strlen(input) */
	const char *expect;	/* the whole message */
	int calls;		/* callbacks made before the error */
	enum carve_errcode code;
};

/* A literal with embedded NULs, and its length. */
#define BIN(s) s, sizeof(s) - 1

static const struct bad_case bad_cases[] = {
	{ "key outside any section", "# c\nk = v\n", 0,
	    "t.conf:2: key \"k\" outside any section", 0, CARVE_EINVAL },
	{ "malformed line", "[a]\nk = v\njunk\n", 0,
	    "t.conf:3: malformed line (expected \"key = value\", \"[section]\" "
	    "or a comment)", 1, CARVE_EINVAL },
	{ "trailing comment after section",
	    "[a] # c\n", 0,
	    "t.conf:1: malformed section header (expected \"[name]\" with a "
	    "name of letters, digits, '_', '.' or '-')", 0, CARVE_EINVAL },
	{ "unterminated section header", "[a\n", 0,
	    "t.conf:1: malformed section header (expected \"[name]\" with a "
	    "name of letters, digits, '_', '.' or '-')", 0, CARVE_EINVAL },
	{ "empty section name", "[]\n", 0,
	    "t.conf:1: malformed section header (expected \"[name]\" with a "
	    "name of letters, digits, '_', '.' or '-')", 0, CARVE_EINVAL },
	{ "space in section name", "[a b]\n", 0,
	    "t.conf:1: malformed section header (expected \"[name]\" with a "
	    "name of letters, digits, '_', '.' or '-')", 0, CARVE_EINVAL },
	{ "space in key", "[a]\nk k = v\n", 0,
	    "t.conf:2: malformed key \"k k\" (expected letters, digits, '_', "
	    "'.' or '-')", 0, CARVE_EINVAL },
	{ "empty key", "[a]\n = v\n", 0,
	    "t.conf:2: malformed key \"\" (expected letters, digits, '_', "
	    "'.' or '-')", 0, CARVE_EINVAL },
	{ "duplicate key", "[a]\nk = 1\n[b]\nk = 2\n[a]\nk = 3\n", 0,
	    "t.conf:6: duplicate key \"k\" in section [a] (first set on "
	    "line 2)", 2, CARVE_EINVAL },
	{ "duplicate key, same value", "[a]\nk = 1\nk = 1\n", 0,
	    "t.conf:3: duplicate key \"k\" in section [a] (first set on "
	    "line 2)", 1, CARVE_EINVAL },
	{ "NUL byte", BIN("[a]\nk = v\0w\n"), "t.conf:2: NUL byte in line", 0, CARVE_EINVAL },
	{ "NUL byte in a comment", BIN("[a]\n#\0\n"),
	    "t.conf:2: NUL byte in line", 0, CARVE_EINVAL },
	{ "control character", "[a]\nk = \x1b[31m\n", 0,
	    "t.conf:2: control character 0x1b in line", 0, CARVE_EINVAL },
	{ "bare CR inside a line", "[a]\nk = v\rw\n", 0,
	    "t.conf:2: control character 0x0d in line", 0, CARVE_EINVAL },
	{ "unterminated quoted value", "[a]\nk = \"abc\n", 0,
	    "t.conf:2: unterminated quoted value", 0, CARVE_EINVAL },
	{ "escaped closing quote only", "[a]\nk = \"abc\\\"\n", 0,
	    "t.conf:2: unterminated quoted value", 0, CARVE_EINVAL },
	{ "text after closing quote", "[a]\nk = \"a\" b\n", 0,
	    "t.conf:2: text after the closing quote", 0, CARVE_EINVAL },
	{ "unknown escape", "[a]\nk = \"a\\n\"\n", 0,
	    "t.conf:2: unknown escape in quoted value (only \\\" and \\\\ are "
	    "allowed)", 0, CARVE_EINVAL },
	{ "callback error gets file:line", "[a]\nk = 1\nbad = 2\nz = 3\n", 0,
	    "t.conf:3: value \"2\" refused", 2, CARVE_ECONFLICT },
};

static void
test_bad(void **state)
{
	const struct bad_case *c = *state;
	struct record r = { .r_fail_key = "bad" };
	struct carve_error err = { 0 };
	size_t len = c->len ? c->len : strlen(c->input);

	assert_int_equal(ini_parse_buf(c->input, len, "t.conf", record_cb, &err,
	    &r), -1);
	assert_string_equal(err.message, c->expect);
	/* The callback's own code survives; everything else is EINVAL. */
	assert_int_equal(err.code, c->code);
	/* Parsing stopped at the error: nothing after it was delivered. */
	assert_int_equal(r.r_calls, c->calls);
	free(r.r_buf);
}

/* ----------------------------------------------------- single scenarios */

/* A buffer of "[a]\n", then '#' comment lines, len bytes in all. */
static char *
make_big(size_t len)
{
	char *b = xmalloc(len);

	memset(b, '#', len);
	memcpy(b, "[a]\n", 4);
	for (size_t i = 4 + 99; i < len; i += 100)
		b[i] = '\n';
	return b;
}

static void
test_size_limit(void **state UNUSED)
{
	struct record r = { 0 };
	struct carve_error err = { 0 };
	char *b = make_big(INI_MAX_BYTES + 1);

	assert_int_equal(ini_parse_buf(b, INI_MAX_BYTES, "t.conf", record_cb,
	    &err, &r), 0);
	assert_int_equal(ini_parse_buf(b, INI_MAX_BYTES + 1, "t.conf",
	    record_cb, &err, &r), -1);
	assert_int_equal(err.code, CARVE_EINVAL);
	assert_string_equal(err.message,
	    "t.conf: file is larger than 1048576 bytes");
	free(b);
}

static void
test_line_limit(void **state UNUSED)
{
	struct record r = { 0 };
	struct carve_error err = { 0 };
	/* "[a]\n" + "k = " + value, the key line 4096 or 4097 bytes long */
	size_t ok_len = 4 + 4096;
	char *b = xmalloc(ok_len + 3);
	char *expect;

	memcpy(b, "[a]\nk = ", 8);
	memset(b + 8, 'x', ok_len - 8);
	/* Exactly 4096 bytes, with CRLF: the ending does not count. */
	memcpy(b + ok_len, "\r\n", 2);
	assert_int_equal(ini_parse_buf(b, ok_len + 2, "t.conf", record_cb,
	    &err, &r), 0);
	assert_int_equal(r.r_calls, 1);
	expect = xasprintf("a|k|%.*s|2\n", 4096 - 4, b + 8);
	assert_string_equal(record_text(&r), expect);
	free(expect);

	b[ok_len] = 'x';
	b[ok_len + 1] = '\n';
	assert_int_equal(ini_parse_buf(b, ok_len + 2, "t.conf", record_cb,
	    &err, &r), -1);
	assert_string_equal(err.message,
	    "t.conf:2: line is longer than 4096 bytes");
	free(b);
	free(r.r_buf);
}

static void
test_callback_silent_failure(void **state UNUSED)
{
	struct record r = { .r_fail_key = "bad", .r_fail_silently = true };
	struct carve_error err = { 0 };
	const char *in = "[a]\nbad = 1\n";

	assert_int_equal(ini_parse_buf(in, strlen(in), "t.conf", record_cb,
	    &err, &r), -1);
	assert_int_equal(err.code, CARVE_EINTERNAL);
	assert_string_equal(err.message,
	    "t.conf:2: key \"bad\" rejected without a reason");
}

static void
test_null_err_and_name(void **state UNUSED)
{
	struct record r = { 0 };
	struct carve_error err = { 0 };
	const char *in = "k = v\n";

	/* err may be NULL: the failure is still reported by the return. */
	assert_int_equal(ini_parse_buf(in, strlen(in), "t.conf", record_cb,
	    NULL, &r), -1);
	assert_int_equal(ini_parse_buf(in, strlen(in), NULL, record_cb, &err,
	    &r), -1);
	assert_string_equal(err.message,
	    "<config>:1: key \"k\" outside any section");
}

static char *
write_temp(const char *data, size_t len)
{
	char *path = xstrdup("/tmp/test_ini.XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void
test_file(void **state UNUSED)
{
	struct record r = { 0 };
	struct carve_error err = { 0 };
	const char *in = "[a]\nk = v\n\nj\n";
	char *path = write_temp(in, strlen(in));
	char *expect = xasprintf("%s:4: malformed line (expected \"key = "
	    "value\", \"[section]\" or a comment)", path);

	assert_int_equal(ini_parse_file(path, record_cb, &err, &r), -1);
	assert_string_equal(err.message, expect);
	assert_string_equal(record_text(&r), "a|k|v|2\n");
	unlink(path);
	free(expect);
	free(path);
	free(r.r_buf);
}

static void
test_file_too_big(void **state UNUSED)
{
	struct record r = { 0 };
	struct carve_error err = { 0 };
	char *b = make_big(INI_MAX_BYTES + 1);
	char *path = write_temp(b, INI_MAX_BYTES + 1);
	char *expect = xasprintf("%s: file is larger than 1048576 bytes", path);

	assert_int_equal(ini_parse_file(path, record_cb, &err, &r), -1);
	assert_string_equal(err.message, expect);
	free(expect);
	/* One byte less is fine: the limit is inclusive. */
	assert_int_equal(truncate(path, INI_MAX_BYTES), 0);
	error_clear(&err);
	assert_int_equal(ini_parse_file(path, record_cb, &err, &r), 0);
	unlink(path);
	free(path);
	free(b);
}

static void
test_file_unreadable(void **state UNUSED)
{
	struct record r = { 0 };
	struct carve_error err = { 0 };

	assert_int_equal(ini_parse_file("/nonexistent/carved.conf", record_cb,
	    &err, &r), -1);
	assert_int_equal(err.code, CARVE_EINVAL);
	assert_string_equal(err.message, "cannot read /nonexistent/carved.conf: "
	    "No such file or directory");
	error_clear(&err);
	assert_int_equal(ini_parse_file("/", record_cb, &err, &r), -1);
	assert_string_equal(err.message, "cannot read /: Is a directory");
	assert_int_equal(r.r_calls, 0);
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
	char *names[sizeof(good_cases) / sizeof(good_cases[0]) +
	    sizeof(bad_cases) / sizeof(bad_cases[0])];
	size_t nnames = 0;
	int rc;

	cmocka_set_message_output(CM_OUTPUT_TAP);
	for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
		names[nnames] = xasprintf("parses: %s", good_cases[i].name);
		add_test(names[nnames++], test_good, &good_cases[i]);
	}
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		names[nnames] = xasprintf("rejects: %s", bad_cases[i].name);
		add_test(names[nnames++], test_bad, &bad_cases[i]);
	}
	add_test("buffer size limit", test_size_limit, NULL);
	add_test("line length limit", test_line_limit, NULL);
	add_test("callback failing without a message", test_callback_silent_failure,
	    NULL);
	add_test("NULL err and file name", test_null_err_and_name, NULL);
	add_test("file: error names path:line", test_file, NULL);
	add_test("file: size limit", test_file_too_big, NULL);
	add_test("file: cannot read", test_file_unreadable, NULL);

	rc = _cmocka_run_group_tests("ini", tests, ntests, NULL, NULL);
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(tests);
	return rc;
}
