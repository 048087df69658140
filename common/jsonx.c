/*
 * Strict JSON over json-c: see jsonx.h.
 *
 * json-c's JSON_TOKENER_STRICT mode is not RFC 8259: in 0.16 it still takes
 * single-quoted strings, raw control characters inside strings, NaN and
 * Infinity, "1." and "-01", lone UTF-16 surrogates, integers that silently
 * saturate, and, worst for a protocol, objects with duplicate keys (the last
 * one wins, so two readers of the same bytes can disagree). jsonx_parse
 * therefore first runs a small validating scanner over the raw text that
 * enforces the RFC grammar plus those rules, and only then lets json-c build
 * the tree (still in strict mode and with the depth limit, as a second line).
 */
#include "config.h"

#include <limits.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "jsonx.h"
#include "strmap.h"
#include "text.h"
#include "xalloc.h"

/* How much of an offending key a message quotes. */
#define JSONX_QUOTE_MAX 64

/* ------------------------------------------------------------ UTF-8 */

static bool
jsonx_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < n) {
		if ((k = text_utf8_seq(p + i, n - i)) == 0)
			return false;
		i += k;
	}
	return true;
}

/*
 * Render s (n bytes) for an error message: printable ASCII as is, '"' and
 * '\\' escaped, anything else as \xNN, cut at JSONX_QUOTE_MAX bytes.
 */
static void
jsonx_quote(const char *s, size_t n, char *out, size_t outsz)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[8];
		size_t tl;

		if (i == JSONX_QUOTE_MAX) {
			snprintf(tmp, sizeof(tmp), "...");
		} else if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			tmp[2] = '\0';
		} else if (c >= 0x20 && c < 0x7f) {
			tmp[0] = (char)c;
			tmp[1] = '\0';
		} else
			snprintf(tmp, sizeof(tmp), "\\x%02x", c);
		tl = strlen(tmp);
		if (o + tl >= outsz)
			break;
		memcpy(out + o, tmp, tl);
		o += tl;
		if (i == JSONX_QUOTE_MAX)
			break;
	}
	out[o] = '\0';
}

/* ------------------------------------------------------------ scanner */

struct jsonx_buf {
	char *b_data;
	size_t b_len;
	size_t b_cap;
};

struct jsonx_scan {
	const char *sc_p;
	size_t sc_len;
	size_t sc_off;
	struct jsonx_buf sc_key;	/* the key being read, unescaped */
	struct carve_error *sc_err;
};

static void
jsonx_buf_putc(struct jsonx_buf *b, char c)
{
	if (b->b_len + 1 >= b->b_cap) {
		b->b_cap = b->b_cap ? b->b_cap * 2 : 64;
		b->b_data = xrealloc(b->b_data, b->b_cap);
	}
	b->b_data[b->b_len++] = c;
	b->b_data[b->b_len] = '\0';
}

/* Empty the buffer, leaving a valid empty C string. */
static void
jsonx_buf_reset(struct jsonx_buf *b)
{
	jsonx_buf_putc(b, '\0');
	b->b_len = 0;
}

static void
jsonx_buf_putcp(struct jsonx_buf *b, uint32_t cp)
{
	if (cp < 0x80)
		jsonx_buf_putc(b, (char)cp);
	else if (cp < 0x800) {
		jsonx_buf_putc(b, (char)(0xc0 | (cp >> 6)));
		jsonx_buf_putc(b, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		jsonx_buf_putc(b, (char)(0xe0 | (cp >> 12)));
		jsonx_buf_putc(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
		jsonx_buf_putc(b, (char)(0x80 | (cp & 0x3f)));
	} else {
		jsonx_buf_putc(b, (char)(0xf0 | (cp >> 18)));
		jsonx_buf_putc(b, (char)(0x80 | ((cp >> 12) & 0x3f)));
		jsonx_buf_putc(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
		jsonx_buf_putc(b, (char)(0x80 | (cp & 0x3f)));
	}
}

static int
jsonx_scan_fail(struct jsonx_scan *sc, const char *what)
{
	return error_set(sc->sc_err, CARVE_EINVAL,
	    "invalid JSON at offset %zu: %s", sc->sc_off, what);
}

static int
jsonx_scan_peek(const struct jsonx_scan *sc)
{
	if (sc->sc_off >= sc->sc_len)
		return -1;
	return (unsigned char)sc->sc_p[sc->sc_off];
}

static void
jsonx_scan_ws(struct jsonx_scan *sc)
{
	int c;

	/* RFC 8259 whitespace only: json-c's isspace() also takes \f and \v. */
	while ((c = jsonx_scan_peek(sc)) == ' ' || c == '\t' || c == '\n' ||
	    c == '\r')
		sc->sc_off++;
}

static int
jsonx_scan_hex4(struct jsonx_scan *sc, uint32_t *out)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++) {
		int c = jsonx_scan_peek(sc);
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return jsonx_scan_fail(sc, "\\u must be followed by 4 hex digits");
		sc->sc_off++;
	}
	*out = v;
	return 0;
}

/*
 * A string starting at the opening quote. With key set, its unescaped bytes
 * are collected into sc_key so duplicate keys are found however they were
 * spelled ("a" and "\u0061" are the same key).
 */
static int
jsonx_scan_string(struct jsonx_scan *sc, bool key)
{
	const unsigned char *p = (const unsigned char *)sc->sc_p;
	uint32_t cp, lo;
	size_t k;
	int c;

	if (key)
		jsonx_buf_reset(&sc->sc_key);
	sc->sc_off++;
	for (;;) {
		if ((c = jsonx_scan_peek(sc)) == -1)
			return jsonx_scan_fail(sc, "unterminated string");
		if (c == '"') {
			sc->sc_off++;
			return 0;
		}
		if (c < 0x20)
			return jsonx_scan_fail(sc,
			    "control character in string (must be escaped)");
		if (c >= 0x80) {
			k = text_utf8_seq(p + sc->sc_off, sc->sc_len - sc->sc_off);
			if (k == 0)
				return jsonx_scan_fail(sc, "invalid UTF-8 in string");
			for (size_t i = 0; key && i < k; i++)
				jsonx_buf_putc(&sc->sc_key, (char)p[sc->sc_off + i]);
			sc->sc_off += k;
			continue;
		}
		if (c != '\\') {
			if (key)
				jsonx_buf_putc(&sc->sc_key, (char)c);
			sc->sc_off++;
			continue;
		}
		sc->sc_off++;
		c = jsonx_scan_peek(sc);
		switch (c) {
		case '"': case '\\': case '/':
			cp = (uint32_t)c;
			break;
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u':
			sc->sc_off++;
			if (jsonx_scan_hex4(sc, &cp) == -1)
				return -1;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return jsonx_scan_fail(sc, "unpaired UTF-16 surrogate");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (sc->sc_off + 1 >= sc->sc_len ||
				    sc->sc_p[sc->sc_off] != '\\' ||
				    sc->sc_p[sc->sc_off + 1] != 'u')
					return jsonx_scan_fail(sc,
					    "unpaired UTF-16 surrogate");
				sc->sc_off += 2;
				if (jsonx_scan_hex4(sc, &lo) == -1)
					return -1;
				if (lo < 0xdc00 || lo > 0xdfff)
					return jsonx_scan_fail(sc,
					    "unpaired UTF-16 surrogate");
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			/*
			 * json-c keeps keys as C strings, so "a\u0000b" would
			 * silently become "a" and could shadow another key.
			 */
			if (cp == 0 && key)
				return jsonx_scan_fail(sc,
				    "object key contains \\u0000");
			if (key)
				jsonx_buf_putcp(&sc->sc_key, cp);
			continue;
		default:
			return jsonx_scan_fail(sc, "invalid escape in string");
		}
		if (key)
			jsonx_buf_putc(&sc->sc_key, (char)cp);
		sc->sc_off++;
	}
}

static bool
jsonx_isdigit(int c)
{
	return c >= '0' && c <= '9';
}

/*
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?  Integers must fit in 64
 * bits (json-c would saturate them) and other numbers must be finite.
 */
static int
jsonx_scan_number(struct jsonx_scan *sc)
{
	size_t start = sc->sc_off;
	bool neg = false, isint = true;
	uint64_t mag = 0;
	bool overflow = false;

	if (jsonx_scan_peek(sc) == '-') {
		neg = true;
		sc->sc_off++;
	}
	if (jsonx_scan_peek(sc) == '0') {
		sc->sc_off++;
		if (jsonx_isdigit(jsonx_scan_peek(sc)))
			return jsonx_scan_fail(sc, "leading zero in number");
	} else if (jsonx_isdigit(jsonx_scan_peek(sc))) {
		while (jsonx_isdigit(jsonx_scan_peek(sc))) {
			unsigned d = (unsigned)(jsonx_scan_peek(sc) - '0');
			if (mag > (UINT64_MAX - d) / 10)
				overflow = true;
			else
				mag = mag * 10 + d;
			sc->sc_off++;
		}
	} else
		return jsonx_scan_fail(sc, "invalid number");
	if (jsonx_scan_peek(sc) == '.') {
		isint = false;
		sc->sc_off++;
		if (!jsonx_isdigit(jsonx_scan_peek(sc)))
			return jsonx_scan_fail(sc, "digit expected after '.'");
		while (jsonx_isdigit(jsonx_scan_peek(sc)))
			sc->sc_off++;
	}
	if (jsonx_scan_peek(sc) == 'e' || jsonx_scan_peek(sc) == 'E') {
		isint = false;
		sc->sc_off++;
		if (jsonx_scan_peek(sc) == '+' || jsonx_scan_peek(sc) == '-')
			sc->sc_off++;
		if (!jsonx_isdigit(jsonx_scan_peek(sc)))
			return jsonx_scan_fail(sc, "digit expected in exponent");
		while (jsonx_isdigit(jsonx_scan_peek(sc)))
			sc->sc_off++;
	}
	if (isint) {
		if (overflow || (neg && mag > (uint64_t)INT64_MAX + 1)) {
			sc->sc_off = start;
			return jsonx_scan_fail(sc,
			    "integer does not fit in 64 bits");
		}
	} else {
		char *tmp = xstrndup(sc->sc_p + start, sc->sc_off - start);
		double d = strtod(tmp, NULL);

		free(tmp);
		if (!isfinite(d)) {
			sc->sc_off = start;
			return jsonx_scan_fail(sc, "number is too large");
		}
	}
	return 0;
}

static int
jsonx_scan_literal(struct jsonx_scan *sc)
{
	static const char *const lits[] = { "true", "false", "null" };

	for (size_t i = 0; i < sizeof(lits) / sizeof(lits[0]); i++) {
		size_t n = strlen(lits[i]);
		if (sc->sc_len - sc->sc_off >= n &&
		    memcmp(sc->sc_p + sc->sc_off, lits[i], n) == 0) {
			sc->sc_off += n;
			return 0;
		}
	}
	return jsonx_scan_fail(sc, "a value was expected");
}

static int jsonx_scan_value(struct jsonx_scan *, int);

static int
jsonx_scan_object(struct jsonx_scan *sc, int depth)
{
	struct strmap *keys = strmap_new();
	char q[JSONX_QUOTE_MAX * 4 + 8];
	size_t keyoff;
	int rc = -1;

	sc->sc_off++;
	jsonx_scan_ws(sc);
	if (jsonx_scan_peek(sc) == '}') {
		sc->sc_off++;
		rc = 0;
		goto cleanup;
	}
	for (;;) {
		jsonx_scan_ws(sc);
		if (jsonx_scan_peek(sc) != '"') {
			jsonx_scan_fail(sc, "object key (a string) expected");
			goto cleanup;
		}
		keyoff = sc->sc_off;
		if (jsonx_scan_string(sc, true) == -1)
			goto cleanup;
		if (strmap_get(keys, sc->sc_key.b_data) != NULL) {
			jsonx_quote(sc->sc_key.b_data, sc->sc_key.b_len, q,
			    sizeof(q));
			error_set(sc->sc_err, CARVE_EINVAL,
			    "invalid JSON at offset %zu: duplicate key \"%s\"",
			    keyoff, q);
			goto cleanup;
		}
		strmap_put(keys, sc->sc_key.b_data, keys);
		jsonx_scan_ws(sc);
		if (jsonx_scan_peek(sc) != ':') {
			jsonx_scan_fail(sc, "':' expected after object key");
			goto cleanup;
		}
		sc->sc_off++;
		if (jsonx_scan_value(sc, depth + 1) == -1)
			goto cleanup;
		jsonx_scan_ws(sc);
		if (jsonx_scan_peek(sc) == '}') {
			sc->sc_off++;
			rc = 0;
			goto cleanup;
		}
		if (jsonx_scan_peek(sc) != ',') {
			jsonx_scan_fail(sc, "',' or '}' expected in object");
			goto cleanup;
		}
		sc->sc_off++;
	}
cleanup:
	strmap_free(keys);
	return rc;
}

static int
jsonx_scan_array(struct jsonx_scan *sc, int depth)
{
	sc->sc_off++;
	jsonx_scan_ws(sc);
	if (jsonx_scan_peek(sc) == ']') {
		sc->sc_off++;
		return 0;
	}
	for (;;) {
		if (jsonx_scan_value(sc, depth + 1) == -1)
			return -1;
		jsonx_scan_ws(sc);
		if (jsonx_scan_peek(sc) == ']') {
			sc->sc_off++;
			return 0;
		}
		if (jsonx_scan_peek(sc) != ',')
			return jsonx_scan_fail(sc, "',' or ']' expected in array");
		sc->sc_off++;
	}
}

/*
 * depth counts the levels the value sits at, the top-level value being at 1.
 * As in json-c, a container is refused at JSONX_MAX_DEPTH, where even its
 * innermost value would be one level too deep.
 */
static int
jsonx_scan_value(struct jsonx_scan *sc, int depth)
{
	int c;

	jsonx_scan_ws(sc);
	c = jsonx_scan_peek(sc);
	switch (c) {
	case -1:
		return jsonx_scan_fail(sc, "unexpected end of input");
	case '{':
	case '[':
		if (depth >= JSONX_MAX_DEPTH) {
			char msg[64];
			snprintf(msg, sizeof(msg), "nested deeper than %d levels",
			    JSONX_MAX_DEPTH);
			return jsonx_scan_fail(sc, msg);
		}
		return c == '{' ? jsonx_scan_object(sc, depth) :
		    jsonx_scan_array(sc, depth);
	case '"':
		return jsonx_scan_string(sc, false);
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		return jsonx_scan_number(sc);
	default:
		return jsonx_scan_literal(sc);
	}
}

static int
jsonx_scan(const char *buf, size_t len, struct carve_error *err)
{
	struct jsonx_scan sc = { .sc_p = buf, .sc_len = len, .sc_err = err };
	int rc;

	rc = jsonx_scan_value(&sc, 1);
	if (rc == 0) {
		jsonx_scan_ws(&sc);
		if (sc.sc_off != len)
			rc = jsonx_scan_fail(&sc, "unexpected data after the value");
	}
	free(sc.sc_key.b_data);
	return rc;
}

/* ------------------------------------------------------------ parse */

json_object *
jsonx_parse(const char *buf, size_t len, struct carve_error *err)
{
	struct json_tokener *tok;
	enum json_tokener_error jerr;
	json_object *obj;
	const char *nul;

	if ((nul = memchr(buf, '\0', len)) != NULL) {
		error_set(err, CARVE_EINVAL,
		    "invalid JSON at offset %zu: NUL byte", (size_t)(nul - buf));
		return NULL;
	}
	/* json-c takes an int length; nothing carve reads comes near this. */
	if (len > INT_MAX - 1) {
		error_set(err, CARVE_EINVAL, "JSON input of %zu bytes is too large",
		    len);
		return NULL;
	}
	if (jsonx_scan(buf, len, err) == -1)
		return NULL;

	if ((tok = json_tokener_new_ex(JSONX_MAX_DEPTH)) == NULL) {
		error_set(err, CARVE_EINTERNAL, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	/*
	 * A number at the very end ("42") leaves json-c waiting for more
	 * digits; a terminating NUL tells it the input is complete.
	 */
	if (obj == NULL && jerr == json_tokener_continue) {
		obj = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
	}
	if (jerr == json_tokener_success && obj == NULL) {
		/*
		 * json-c represents null as NULL, which callers could not tell
		 * from failure; no carve document is a bare null.
		 */
		error_set(err, CARVE_EINVAL,
		    "invalid JSON at offset 0: a bare null is not a document");
	} else if (obj == NULL || jerr != json_tokener_success) {
		/* The scanner is stricter than json-c; this is a second line. */
		error_set(err, CARVE_EINVAL, "invalid JSON at offset %zu: %s",
		    json_tokener_get_parse_end(tok), json_tokener_error_desc(jerr));
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

/* ------------------------------------------------------------ getters */

/*
 * Look key up in obj. Returns 1 with *out set when present and not null, 0
 * when missing (an error if required), -1 on error.
 */
static int
jsonx_lookup(json_object *obj, const char *key, bool required,
    json_object **out, struct carve_error *err)
{
	json_object *v = NULL;

	if (!json_object_is_type(obj, json_type_object))
		return error_set(err, CARVE_EINVAL,
		    "cannot read %s: not inside a JSON object", key);
	if (!json_object_object_get_ex(obj, key, &v) || v == NULL) {
		if (required)
			return error_set(err, CARVE_EINVAL, "%s is required", key);
		return 0;
	}
	*out = v;
	return 1;
}

int
jsonx_check_object(json_object *obj, const char *what,
    const char *const *allowed, struct carve_error *err)
{
	char q[JSONX_QUOTE_MAX * 4 + 8];

	if (!json_object_is_type(obj, json_type_object))
		return error_set(err, CARVE_EINVAL, "%s must be a JSON object",
		    what);
	json_object_object_foreach(obj, key, val) {
		size_t i;

		(void)val;
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(allowed[i], key) == 0)
				break;
		if (allowed[i] == NULL) {
			jsonx_quote(key, strlen(key), q, sizeof(q));
			return error_set(err, CARVE_EINVAL,
			    "%s: unknown key \"%s\"", what, q);
		}
	}
	return 0;
}

int
jsonx_get_string(json_object *obj, const char *key, bool required,
    size_t maxlen, const char **out, struct carve_error *err)
{
	json_object *v;
	const char *s;
	size_t len;
	int rc;

	if ((rc = jsonx_lookup(obj, key, required, &v, err)) != 1)
		return rc;
	if (!json_object_is_type(v, json_type_string))
		return error_set(err, CARVE_EINVAL, "%s must be a string", key);
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (strlen(s) != len)
		return error_set(err, CARVE_EINVAL,
		    "%s must not contain NUL characters", key);
	if (len > maxlen)
		return error_set(err, CARVE_EINVAL,
		    "%s is %zu bytes long; at most %zu are allowed", key, len,
		    maxlen);
	if (!jsonx_utf8_valid(s, len))
		return error_set(err, CARVE_EINVAL, "%s is not valid UTF-8", key);
	*out = s;
	return 1;
}

int
jsonx_get_int(json_object *obj, const char *key, bool required,
    int64_t min, int64_t max, int64_t *out, struct carve_error *err)
{
	json_object *v;
	int64_t i;
	int rc;

	if ((rc = jsonx_lookup(obj, key, required, &v, err)) != 1)
		return rc;
	/* Only integer literals: 2.5, 2.0, 2e0 and "2" are all refused. */
	if (!json_object_is_type(v, json_type_int))
		return error_set(err, CARVE_EINVAL, "%s must be an integer", key);
	i = json_object_get_int64(v);
	/* json-c keeps values above INT64_MAX as uint64 and clamps get_int64. */
	if ((i == INT64_MAX && json_object_get_uint64(v) != (uint64_t)INT64_MAX) ||
	    i < min || i > max)
		return error_set(err, CARVE_EINVAL,
		    "%s must be between %" PRId64 " and %" PRId64, key, min, max);
	*out = i;
	return 1;
}

int
jsonx_get_bool(json_object *obj, const char *key, bool required, bool *out,
    struct carve_error *err)
{
	json_object *v;
	int rc;

	if ((rc = jsonx_lookup(obj, key, required, &v, err)) != 1)
		return rc;
	if (!json_object_is_type(v, json_type_boolean))
		return error_set(err, CARVE_EINVAL,
		    "%s must be a boolean (true or false)", key);
	*out = json_object_get_boolean(v) != 0;
	return 1;
}

int
jsonx_get_object(json_object *obj, const char *key, bool required,
    json_object **out, struct carve_error *err)
{
	json_object *v;
	int rc;

	if ((rc = jsonx_lookup(obj, key, required, &v, err)) != 1)
		return rc;
	if (!json_object_is_type(v, json_type_object))
		return error_set(err, CARVE_EINVAL, "%s must be a JSON object",
		    key);
	*out = v;
	return 1;
}

/* ------------------------------------------------------------ output */

/* json-c allocation failures are as fatal as xmalloc's. */
static json_object *
jsonx_must(json_object *o)
{
	if (o == NULL) {
		fprintf(stderr,
		    "level=fatal comp=jsonx msg=\"out of memory\"\n");
		abort();
	}
	return o;
}

char *
jsonx_to_string(json_object *obj)
{
	const char *s;

	s = json_object_to_json_string_ext(obj,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (s == NULL) {
		fprintf(stderr,
		    "level=fatal comp=jsonx msg=\"out of memory\"\n");
		abort();
	}
	return xstrdup(s);
}

void
jsonx_add_string(json_object *obj, const char *key, const char *val)
{
	json_object_object_add(obj, key,
	    val == NULL ? NULL : jsonx_must(json_object_new_string(val)));
}

void
jsonx_add_int(json_object *obj, const char *key, int64_t val)
{
	json_object_object_add(obj, key, jsonx_must(json_object_new_int64(val)));
}

void
jsonx_add_bool(json_object *obj, const char *key, bool val)
{
	json_object_object_add(obj, key, jsonx_must(json_object_new_boolean(val)));
}

int
jsonx_get_uuid(json_object *obj, const char *key, bool required, char *out,
    struct carve_error *err)
{
	const char *s;
	int rc;

	/* A longer string gets the UUID message, not a length message. */
	if ((rc = jsonx_get_string(obj, key, required, SIZE_MAX, &s, err)) != 1)
		return rc;
	if (!ids_uuid_valid(s))
		return error_set(err, CARVE_EINVAL,
		    "%s must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
		    key);
	ids_uuid_normalize(s, out);
	return 1;
}
