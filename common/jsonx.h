/*
 * Strict JSON over json-c. Every decoder in carve (control-plane messages,
 * control-socket requests, journal records) parses through jsonx_parse and
 * reads fields through the typed getters, so malformed input always becomes a
 * CARVE_EINVAL error naming the offending field, never a crash or a guess.
 */
#ifndef CARVE_JSONX_H
#define CARVE_JSONX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "error.h"

#define JSONX_MAX_DEPTH 32

/*
 * Parse exactly one JSON value from buf[0..len): rejects syntax errors,
 * trailing non-whitespace, NUL bytes, nesting deeper than JSONX_MAX_DEPTH and
 * objects with duplicate keys (json-c silently keeps the last one), and what
 * json-c's strict mode still lets through (single quotes, raw control
 * characters, invalid UTF-8, lone surrogates, NaN/Infinity, integers beyond
 * 64 bits). A bare top-level null is refused too, since json-c represents it
 * as NULL. Returns a new reference the caller puts, or NULL with err set
 * (CARVE_EINVAL).
 */
json_object *jsonx_parse(const char *buf, size_t len, struct carve_error *err);

/*
 * Require obj to be an object whose keys are all in allowed (NULL-terminated).
 * what names the object in messages ("vm.create args").
 */
int jsonx_check_object(json_object *obj, const char *what,
    const char *const *allowed, struct carve_error *err);

/*
 * Typed getters. For each: a missing key is an error when required, else
 * leaves *out untouched and returns 0 (1 is returned when the key was
 * present, so callers can tell). JSON null counts as missing. A value of the
 * wrong type or out of range is CARVE_EINVAL with the key named.
 * jsonx_get_string's *out points into obj (valid while obj lives); strings
 * with embedded NUL bytes or longer than maxlen bytes are refused.
 */
int jsonx_get_string(json_object *obj, const char *key, bool required,
    size_t maxlen, const char **out, struct carve_error *err);
int jsonx_get_int(json_object *obj, const char *key, bool required,
    int64_t min, int64_t max, int64_t *out, struct carve_error *err);
int jsonx_get_bool(json_object *obj, const char *key, bool required,
    bool *out, struct carve_error *err);
/*
 * A canonical UUID string, written lower-case into out (37 bytes). Anything
 * else is CARVE_EINVAL ("KEY must be a UUID (...)").
 */
int jsonx_get_uuid(json_object *obj, const char *key, bool required,
    char *out, struct carve_error *err);
/* *out is a borrowed reference to an object value. */
int jsonx_get_object(json_object *obj, const char *key, bool required,
    json_object **out, struct carve_error *err);

/* Serialize compactly into a new string the caller frees. */
char *jsonx_to_string(json_object *obj);

/* Convenience adders (take no ownership of the strings). */
void jsonx_add_string(json_object *obj, const char *key, const char *val);
void jsonx_add_int(json_object *obj, const char *key, int64_t val);
void jsonx_add_bool(json_object *obj, const char *key, bool val);

#endif
