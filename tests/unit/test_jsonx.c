/*
 * Unit tests for common/jsonx: what strict parsing accepts and refuses (and
 * that the refusal says where and why), the typed getters' contract, and
 * that what jsonx writes it can read back.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/jsonx.h"
#include "common/xalloc.h"

/* ------------------------------------------------------------ parse */

struct parse_case {
	const char *in;
	size_t len;		/* 0: strlen(in) */
	bool ok;
	const char *msg;	/* substring the error message must contain */
};

static const struct parse_case parse_cases[] = {
	/* accepted */
	{ "{}", 0, true, NULL },
	{ "[]", 0, true, NULL },
	{ "0", 0, true, NULL },
	{ "-0", 0, true, NULL },
	{ "42", 0, true, NULL },
	{ "1.5", 0, true, NULL },
	{ "-1.5e-3", 0, true, NULL },
	{ "1E+2", 0, true, NULL },
	{ "true", 0, true, NULL },
	{ "[null]", 0, true, NULL },
	/* json-c returns NULL for it, which would read as failure */
	{ "null", 0, false, "bare null" },
	{ " null ", 0, false, "bare null" },
	{ " \t\r\n{\"a\" : [1, 2, {\"b\": null}]} \n", 0, true, NULL },
	{ "\"\\u00e9\\n\\/\\\"\"", 0, true, NULL },
	{ "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", 0, true, NULL },
	{ "\"\\ud83d\\ude00\"", 0, true, NULL },
	{ "18446744073709551615", 0, true, NULL },
	{ "-9223372036854775808", 0, true, NULL },
	/* the same key in different objects is fine */
	{ "{\"a\":{\"a\":1}}", 0, true, NULL },
	{ "{\"x\":{\"b\":1},\"y\":{\"b\":1}}", 0, true, NULL },
	{ "[{\"k\":1},{\"k\":2}]", 0, true, NULL },
	/* keys differing only by case are different keys */
	{ "{\"a\":1,\"A\":2}", 0, true, NULL },

	/* syntax */
	{ "", 0, false, "offset 0: unexpected end of input" },
	{ "   ", 0, false, "offset 3" },
	{ "{", 0, false, "invalid JSON at offset 1" },
	{ "[1,]", 0, false, "offset 3" },
	{ "{\"a\":1,}", 0, false, "offset 7" },
	{ "{\"a\" 1}", 0, false, "':' expected" },
	{ "[1 2]", 0, false, "',' or ']' expected" },
	{ "{1:2}", 0, false, "object key (a string) expected" },
	{ "tru", 0, false, "invalid JSON at offset 0" },
	{ "True", 0, false, "invalid JSON at offset 0" },
	{ "\"abc", 0, false, "unterminated string" },
	/* trailing data */
	{ "{\"a\":1}x", 0, false, "offset 7: unexpected data after the value" },
	{ "{\"a\":1} {}", 0, false, "offset 8: unexpected data" },
	{ "[1] ]", 0, false, "offset 4" },
	{ "1 2", 0, false, "offset 2" },
	/* what json-c's strict mode lets through */
	{ "{'a':1}", 0, false, "offset 1" },
	{ "'a'", 0, false, "offset 0" },
	{ "\"a\tb\"", 0, false, "control character in string" },
	{ "\"a\nb\"", 0, false, "control character in string" },
	{ "NaN", 0, false, "offset 0" },
	{ "[NaN]", 0, false, "offset 1" },
	{ "Infinity", 0, false, "offset 0" },
	{ "-Infinity", 0, false, "offset 1" },
	{ "1.", 0, false, "digit expected after '.'" },
	{ "1.e5", 0, false, "digit expected after '.'" },
	{ ".5", 0, false, "offset 0" },
	{ "+1", 0, false, "offset 0" },
	{ "1e", 0, false, "digit expected in exponent" },
	{ "-01", 0, false, "leading zero" },
	{ "[01]", 0, false, "leading zero" },
	{ "0x10", 0, false, "offset 1" },
	{ "1.5e400", 0, false, "number is too large" },
	{ "99999999999999999999", 0, false, "integer does not fit in 64 bits" },
	{ "18446744073709551616", 0, false, "integer does not fit in 64 bits" },
	{ "-9223372036854775809", 0, false, "integer does not fit in 64 bits" },
	{ "\f1", 0, false, "offset 0" },
	{ "[1,\v2]", 0, false, "offset 3" },
	{ "/*c*/1", 0, false, "offset 0" },
	{ "1//c", 0, false, "offset 1" },
	{ "\"\\x41\"", 0, false, "invalid escape" },
	{ "\"\\'\"", 0, false, "invalid escape" },
	{ "\"\\u12\"", 0, false, "4 hex digits" },
	{ "\"\\ud800\"", 0, false, "unpaired UTF-16 surrogate" },
	{ "\"\\udc00\"", 0, false, "unpaired UTF-16 surrogate" },
	{ "\"\\ud800\\u0041\"", 0, false, "unpaired UTF-16 surrogate" },
	{ "\"\xff\"", 0, false, "invalid UTF-8" },
	{ "\"\xc3\"", 0, false, "invalid UTF-8" },
	{ "\"\xc0\x80\"", 0, false, "invalid UTF-8" },		/* overlong */
	{ "\"\xed\xa0\x80\"", 0, false, "invalid UTF-8" },	/* surrogate */
	{ "\"\xf4\x90\x80\x80\"", 0, false, "invalid UTF-8" },	/* > U+10FFFF */
	/* NUL bytes */
	{ "{\"a\":1}\0", 8, false, "offset 7: NUL byte" },
	{ "\"a\0b\"", 5, false, "offset 2: NUL byte" },
	{ "{\"a\\u0000b\":1,\"a\":2}", 0, false, "\\u0000" },
	/* duplicate keys */
	{ "{\"name\":\"a\",\"name\":\"b\"}", 0, false,
	    "offset 12: duplicate key \"name\"" },
	{ "{\"a\":1,\"\\u0061\":2}", 0, false, "duplicate key \"a\"" },
	{ "{\"\\u0061\":1,\"a\":2}", 0, false, "duplicate key \"a\"" },
	{ "{\"\\u00e9\":1,\"\xc3\xa9\":2}", 0, false, "duplicate key" },
	{ "{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", 0, false,
	    "duplicate key" },
	{ "{\"a/b\":1,\"a\\/b\":2}", 0, false, "duplicate key \"a/b\"" },
	{ "{\"q\\\"\\n\":1,\"q\\\"\\u000a\":2}", 0, false,
	    "duplicate key \"q\\\"\\x0a\"" },
	{ "{\"\":1,\"\":2}", 0, false, "duplicate key \"\"" },
	{ "{\"a\":1,\"b\":2,\"a\":3}", 0, false, "duplicate key \"a\"" },
	{ "{\"x\":{\"b\":1,\"b\":2}}", 0, false, "offset 12: duplicate key \"b\"" },
	{ "[{\"k\":1,\"k\":1}]", 0, false, "duplicate key \"k\"" },
	{ "{\"a\":[[{\"z\":{},\"z\":[]}]]}", 0, false, "duplicate key \"z\"" },
};

static void
test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct carve_error err = { 0 };
		size_t len = c->len ? c->len : strlen(c->in);
		json_object *o = jsonx_parse(c->in, len, &err);

		if (c->ok && o == NULL)
			fail_msg("case %zu <%s>: refused: %s", i, c->in, err.message);
		if (!c->ok && o != NULL)
			fail_msg("case %zu <%s>: accepted", i, c->in);
		if (!c->ok && err.code != CARVE_EINVAL)
			fail_msg("case %zu <%s>: code %d", i, c->in, err.code);
		if (c->msg != NULL && strstr(err.message, c->msg) == NULL)
			fail_msg("case %zu <%s>: message \"%s\" lacks \"%s\"", i,
			    c->in, err.message, c->msg);
		json_object_put(o);
	}
}

/* The buffer is not NUL-terminated: parsing must stop at len. */
static void
test_parse_respects_len(void **state)
{
	struct carve_error err = { 0 };
	const char buf[] = { '4', '2', '7' };
	json_object *o;

	(void)state;
	o = jsonx_parse(buf, 2, &err);
	assert_non_null(o);
	assert_int_equal(json_object_get_int64(o), 42);
	json_object_put(o);
	o = jsonx_parse("{\"a\":1}garbage", 7, &err);
	assert_non_null(o);
	json_object_put(o);
}

static char *
nested(int levels, const char *leaf)
{
	size_t n = strlen(leaf);
	char *s = xmalloc((size_t)levels * 2 + n + 1);

	memset(s, '[', (size_t)levels);
	memcpy(s + levels, leaf, n);
	memset(s + levels + n, ']', (size_t)levels);
	s[levels * 2 + n] = '\0';
	return s;
}

static void
test_parse_depth(void **state)
{
	struct carve_error err = { 0 };
	json_object *o;
	char *s;

	(void)state;
	/* JSONX_MAX_DEPTH levels of values: 31 arrays around a number. */
	s = nested(JSONX_MAX_DEPTH - 1, "1");
	o = jsonx_parse(s, strlen(s), &err);
	assert_non_null(o);
	json_object_put(o);
	free(s);

	s = nested(JSONX_MAX_DEPTH, "1");
	assert_null(jsonx_parse(s, strlen(s), &err));
	assert_int_equal(err.code, CARVE_EINVAL);
	assert_non_null(strstr(err.message, "nested deeper than 32 levels"));
	free(s);

	/* Far deeper input must not recurse without bound. */
	error_clear(&err);
	s = nested(100000, "");
	assert_null(jsonx_parse(s, strlen(s), &err));
	assert_non_null(strstr(err.message, "nested deeper"));
	free(s);

	error_clear(&err);
	s = xstrdup("{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
	    "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
	    "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
	    "{\"a\":{\"a\":{\"a\":{}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}");
	assert_null(jsonx_parse(s, strlen(s), &err));
	assert_non_null(strstr(err.message, "nested deeper"));
	free(s);
}

/* A NULL err must be allowed (error_set accepts it). */
static void
test_parse_null_err(void **state)
{
	(void)state;
	assert_null(jsonx_parse("{\"a\":1,\"a\":1}", 13, NULL));
	assert_null(jsonx_parse("[", 1, NULL));
}

/* ------------------------------------------------------------ getters */

enum getter { G_STR, G_INT, G_BOOL, G_OBJ };

struct get_case {
	const char *doc;
	enum getter kind;
	const char *key;
	bool required;
	int64_t min, max;	/* G_INT */
	size_t maxlen;		/* G_STR */
	int rc;
	const char *want;	/* G_STR value or G_INT value as text */
	const char *msg;
};

static const struct get_case get_cases[] = {
	/* integers */
	{ "{\"n\":5}", G_INT, "n", true, 1, 10, 0, 1, "5", NULL },
	{ "{\"n\":-3}", G_INT, "n", true, -5, 10, 0, 1, "-3", NULL },
	{ "{\"n\":1}", G_INT, "n", true, 1, 10, 0, 1, "1", NULL },
	{ "{\"n\":10}", G_INT, "n", true, 1, 10, 0, 1, "10", NULL },
	{ "{\"n\":9223372036854775807}", G_INT, "n", true, 0, INT64_MAX, 0, 1,
	    "9223372036854775807", NULL },
	{ "{}", G_INT, "n", false, 1, 10, 0, 0, NULL, NULL },
	{ "{\"n\":null}", G_INT, "n", false, 1, 10, 0, 0, NULL, NULL },
	{ "{}", G_INT, "vcpus", true, 1, 10, 0, -1, NULL, "vcpus is required" },
	{ "{\"vcpus\":null}", G_INT, "vcpus", true, 1, 10, 0, -1, NULL,
	    "vcpus is required" },
	{ "{\"vcpus\":2.5}", G_INT, "vcpus", true, 1, 10, 0, -1, NULL,
	    "vcpus must be an integer" },
	{ "{\"vcpus\":2.0}", G_INT, "vcpus", true, 1, 10, 0, -1, NULL,
	    "vcpus must be an integer" },
	{ "{\"vcpus\":2e0}", G_INT, "vcpus", true, 1, 10, 0, -1, NULL,
	    "vcpus must be an integer" },
	{ "{\"vcpus\":\"2\"}", G_INT, "vcpus", true, 1, 10, 0, -1, NULL,
	    "vcpus must be an integer" },
	{ "{\"vcpus\":true}", G_INT, "vcpus", true, 1, 10, 0, -1, NULL,
	    "vcpus must be an integer" },
	{ "{\"vcpus\":[2]}", G_INT, "vcpus", true, 1, 10, 0, -1, NULL,
	    "vcpus must be an integer" },
	{ "{\"vcpus\":11}", G_INT, "vcpus", true, 1, 10, 0, -1, NULL,
	    "vcpus must be between 1 and 10" },
	{ "{\"vcpus\":0}", G_INT, "vcpus", true, 1, 10, 0, -1, NULL,
	    "vcpus must be between 1 and 10" },
	{ "{\"vcpus\":-1}", G_INT, "vcpus", false, 1, 10, 0, -1, NULL,
	    "vcpus must be between 1 and 10" },
	/* json-c would clamp this to INT64_MAX */
	{ "{\"n\":18446744073709551615}", G_INT, "n", true, 0, INT64_MAX, 0, -1,
	    NULL, "n must be between 0 and 9223372036854775807" },
	{ "{\"n\":9223372036854775808}", G_INT, "n", true, 0, INT64_MAX, 0, -1,
	    NULL, "n must be between" },
	/* strings */
	{ "{\"s\":\"abc\"}", G_STR, "s", true, 0, 0, 3, 1, "abc", NULL },
	{ "{\"s\":\"\"}", G_STR, "s", true, 0, 0, 3, 1, "", NULL },
	{ "{\"s\":\"\\u00e9\"}", G_STR, "s", true, 0, 0, 2, 1, "\xc3\xa9", NULL },
	{ "{}", G_STR, "s", false, 0, 0, 3, 0, NULL, NULL },
	{ "{\"s\":null}", G_STR, "s", false, 0, 0, 3, 0, NULL, NULL },
	{ "{}", G_STR, "name", true, 0, 0, 3, -1, NULL, "name is required" },
	{ "{\"name\":5}", G_STR, "name", true, 0, 0, 3, -1, NULL,
	    "name must be a string" },
	{ "{\"name\":{}}", G_STR, "name", true, 0, 0, 3, -1, NULL,
	    "name must be a string" },
	{ "{\"name\":\"abcd\"}", G_STR, "name", true, 0, 0, 3, -1, NULL,
	    "name is 4 bytes long; at most 3 are allowed" },
	/* maxlen counts bytes, not characters */
	{ "{\"name\":\"\\u00e9\"}", G_STR, "name", true, 0, 0, 1, -1, NULL,
	    "name is 2 bytes long" },
	{ "{\"name\":\"a\\u0000b\"}", G_STR, "name", true, 0, 0, 10, -1, NULL,
	    "name must not contain NUL" },
	/* booleans */
	{ "{\"force\":true}", G_BOOL, "force", true, 0, 0, 0, 1, "true", NULL },
	{ "{\"force\":false}", G_BOOL, "force", true, 0, 0, 0, 1, "false", NULL },
	{ "{}", G_BOOL, "force", false, 0, 0, 0, 0, NULL, NULL },
	{ "{}", G_BOOL, "force", true, 0, 0, 0, -1, NULL, "force is required" },
	{ "{\"force\":\"true\"}", G_BOOL, "force", true, 0, 0, 0, -1, NULL,
	    "force must be a boolean" },
	{ "{\"force\":1}", G_BOOL, "force", true, 0, 0, 0, -1, NULL,
	    "force must be a boolean" },
	/* objects */
	{ "{\"args\":{}}", G_OBJ, "args", true, 0, 0, 0, 1, NULL, NULL },
	{ "{\"args\":null}", G_OBJ, "args", false, 0, 0, 0, 0, NULL, NULL },
	{ "{\"args\":[]}", G_OBJ, "args", true, 0, 0, 0, -1, NULL,
	    "args must be a JSON object" },
	{ "{\"args\":\"{}\"}", G_OBJ, "args", true, 0, 0, 0, -1, NULL,
	    "args must be a JSON object" },
	/* the container itself is not an object */
	{ "[1]", G_INT, "n", true, 0, 10, 0, -1, NULL, "n" },
	{ "\"s\"", G_STR, "s", false, 0, 0, 10, -1, NULL, "s" },
};

static void
test_getters_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(get_cases) / sizeof(get_cases[0]); i++) {
		const struct get_case *c = &get_cases[i];
		struct carve_error err = { 0 };
		json_object *doc = jsonx_parse(c->doc, strlen(c->doc), &err);
		const char *s = "untouched";
		int64_t n = 777;
		bool b = false, bset = false;
		json_object *sub = NULL;
		char got[64] = "";
		int rc = -2;

		if (doc == NULL)
			fail_msg("case %zu: bad fixture: %s", i, err.message);
		switch (c->kind) {
		case G_STR:
			rc = jsonx_get_string(doc, c->key, c->required, c->maxlen,
			    &s, &err);
			if (rc == 1)
				snprintf(got, sizeof(got), "%s", s);
			else if (strcmp(s, "untouched") != 0)
				fail_msg("case %zu: out written on rc %d", i, rc);
			break;
		case G_INT:
			rc = jsonx_get_int(doc, c->key, c->required, c->min, c->max,
			    &n, &err);
			if (rc == 1)
				snprintf(got, sizeof(got), "%lld", (long long)n);
			else if (n != 777)
				fail_msg("case %zu: out written on rc %d", i, rc);
			break;
		case G_BOOL:
			/* true first, so a "false" result shows it was written */
			b = true;
			rc = jsonx_get_bool(doc, c->key, c->required, &b, &err);
			bset = true;
			if (rc == 1)
				snprintf(got, sizeof(got), "%s", b ? "true" : "false");
			else if (!b)
				fail_msg("case %zu: out written on rc %d", i, rc);
			break;
		case G_OBJ:
			rc = jsonx_get_object(doc, c->key, c->required, &sub, &err);
			if (rc == 1 && !json_object_is_type(sub, json_type_object))
				fail_msg("case %zu: not an object", i);
			if (rc != 1 && sub != NULL)
				fail_msg("case %zu: out written on rc %d", i, rc);
			break;
		}
		(void)bset;
		if (rc != c->rc)
			fail_msg("case %zu <%s>: rc %d, want %d (%s)", i, c->doc, rc,
			    c->rc, err.message);
		if (c->want != NULL && strcmp(got, c->want) != 0)
			fail_msg("case %zu <%s>: got \"%s\", want \"%s\"", i, c->doc,
			    got, c->want);
		if (rc == -1 && err.code != CARVE_EINVAL)
			fail_msg("case %zu: code %d", i, err.code);
		if (rc != -1 && error_isset(&err))
			fail_msg("case %zu: error set on success: %s", i,
			    err.message);
		if (c->msg != NULL && strstr(err.message, c->msg) == NULL)
			fail_msg("case %zu <%s>: message \"%s\" lacks \"%s\"", i,
			    c->doc, err.message, c->msg);
		json_object_put(doc);
	}
}

/* Objects built in code never went through the parser's UTF-8 check. */
static void
test_get_string_invalid_utf8(void **state)
{
	struct carve_error err = { 0 };
	json_object *o = json_object_new_object();
	const char *s = NULL;

	(void)state;
	json_object_object_add(o, "cmdline",
	    json_object_new_string_len("a\xff" "b", 3));
	assert_int_equal(jsonx_get_string(o, "cmdline", true, 100, &s, &err), -1);
	assert_int_equal(err.code, CARVE_EINVAL);
	assert_non_null(strstr(err.message, "cmdline is not valid UTF-8"));
	assert_null(s);
	json_object_put(o);
}

/* ------------------------------------------------------------ check_object */

struct check_case {
	const char *doc;
	int rc;
	const char *msg;
};

static const struct check_case check_cases[] = {
	{ "{}", 0, NULL },
	{ "{\"a\":1}", 0, NULL },
	{ "{\"a\":1,\"b\":null}", 0, NULL },
	{ "{\"a\":1,\"c\":2}", -1, "vm.stop args: unknown key \"c\"" },
	{ "{\"A\":1}", -1, "unknown key \"A\"" },
	{ "{\"c\\\"d\":1}", -1, "unknown key \"c\\\"d\"" },
	{ "{\"\\u001b[31m\":1}", -1, "unknown key \"\\x1b[31m\"" },
	{ "[]", -1, "vm.stop args must be a JSON object" },
	{ "null", -1, "vm.stop args must be a JSON object" },
	{ "\"a\"", -1, "vm.stop args must be a JSON object" },
};

static void
test_check_object_table(void **state)
{
	static const char *const allowed[] = { "a", "b", NULL };

	(void)state;
	for (size_t i = 0; i < sizeof(check_cases) / sizeof(check_cases[0]); i++) {
		const struct check_case *c = &check_cases[i];
		struct carve_error err = { 0 };
		json_object *doc = jsonx_parse(c->doc, strlen(c->doc), &err);
		int rc;

		if (doc == NULL && strcmp(c->doc, "null") != 0)
			fail_msg("case %zu: bad fixture: %s", i, err.message);
		error_clear(&err);
		rc = jsonx_check_object(doc, "vm.stop args", allowed, &err);
		if (rc != c->rc)
			fail_msg("case %zu <%s>: rc %d want %d", i, c->doc, rc, c->rc);
		if (rc == -1 && err.code != CARVE_EINVAL)
			fail_msg("case %zu: code %d", i, err.code);
		if (c->msg != NULL && strstr(err.message, c->msg) == NULL)
			fail_msg("case %zu <%s>: message \"%s\" lacks \"%s\"", i,
			    c->doc, err.message, c->msg);
		json_object_put(doc);
	}
}

/* ------------------------------------------------------------ output */

static void
test_to_string_and_adders(void **state)
{
	struct carve_error err = { 0 };
	json_object *o = json_object_new_object(), *back;
	const char *s;
	char *text, *again;
	int64_t n;
	bool b;

	(void)state;
	jsonx_add_string(o, "path", "a/b");
	jsonx_add_string(o, "msg", "say \"hi\"\n\t\xc3\xa9");
	jsonx_add_int(o, "big", INT64_MIN);
	jsonx_add_bool(o, "force", true);
	text = jsonx_to_string(o);
	assert_string_equal(text, "{\"path\":\"a/b\",\"msg\":\"say \\\"hi\\\"\\n\\t"
	    "\xc3\xa9\",\"big\":-9223372036854775808,\"force\":true}");

	/* What jsonx writes, jsonx reads back unchanged. */
	back = jsonx_parse(text, strlen(text), &err);
	assert_non_null(back);
	assert_int_equal(jsonx_get_string(back, "msg", true, 100, &s, &err), 1);
	assert_string_equal(s, "say \"hi\"\n\t\xc3\xa9");
	assert_int_equal(jsonx_get_int(back, "big", true, INT64_MIN, 0, &n, &err), 1);
	assert_true(n == INT64_MIN);
	assert_int_equal(jsonx_get_bool(back, "force", true, &b, &err), 1);
	assert_true(b);
	again = jsonx_to_string(back);
	assert_string_equal(text, again);

	/* Adding a key again replaces it rather than duplicating it. */
	jsonx_add_int(o, "big", 1);
	free(text);
	text = jsonx_to_string(o);
	assert_non_null(strstr(text, "\"big\":1,"));
	assert_null(strstr(text, "-9223372036854775808"));

	free(text);
	free(again);
	json_object_put(back);
	json_object_put(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_respects_len),
		cmocka_unit_test(test_parse_depth),
		cmocka_unit_test(test_parse_null_err),
		cmocka_unit_test(test_getters_table),
		cmocka_unit_test(test_get_string_invalid_utf8),
		cmocka_unit_test(test_check_object_table),
		cmocka_unit_test(test_to_string_and_adders),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
