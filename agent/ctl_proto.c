/*
 * The control-socket codec shared by carved (control.c) and carvectl: strict
 * decoding of request and response lines, and encoders that always produce
 * one line. See ctl_proto.h for the protocol.
 *
 * Decoding goes through jsonx_parse, so duplicate keys, trailing garbage, NUL
 * bytes and absurd nesting are refused before any field is looked at; a line
 * is never "mostly" accepted.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ctl_proto.h"
#include "common/jsonx.h"
#include "common/text.h"
#include "common/xalloc.h"

/* Error codes are short identifiers; anything longer is not one of ours. */
#define CTL_CODE_MAX 64

static const char *const request_keys[] = { "verb", "args", NULL };
static const char *const response_keys[] = { "ok", "result", "error", NULL };
static const char *const error_keys[] = { "code", "message", NULL };

static bool
ctl_verb_valid(const char *verb)
{
	size_t len = strlen(verb);

	if (len == 0 || len > CTL_VERB_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((verb[i] >= 'a' && verb[i] <= 'z') || verb[i] == '.'))
			return false;
	return true;
}

int
ctl_request_decode(const char *buf, size_t len, struct ctl_request *out,
    struct carve_error *err)
{
	json_object *obj, *args = NULL;
	const char *verb;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (len > CTL_MAX_LINE)
		return error_set(err, CARVE_EINVAL,
		    "request longer than %d bytes", CTL_MAX_LINE);
	if ((obj = jsonx_parse(buf, len, err)) == NULL)
		return -1;
	if (jsonx_check_object(obj, "request", request_keys, err) < 0)
		goto cleanup;
	if (jsonx_get_string(obj, "verb", true, CTL_VERB_MAX, &verb, err) < 0)
		goto cleanup;
	if (!ctl_verb_valid(verb)) {
		error_set(err, CARVE_EINVAL,
		    "verb: must be 1..%d characters of [a-z.]", CTL_VERB_MAX);
		goto cleanup;
	}
	if (jsonx_get_object(obj, "args", false, &args, err) < 0)
		goto cleanup;

	/* verb is valid, so it fits and is NUL-free. */
	memcpy(out->verb, verb, strlen(verb) + 1);
	out->args = args ? json_object_get(args) : json_object_new_object();
	rc = 0;
cleanup:
	json_object_put(obj);
	return rc;
}

void
ctl_request_clear(struct ctl_request *req)
{
	if (req == NULL)
		return;
	json_object_put(req->args);
	req->args = NULL;
	req->verb[0] = '\0';
}

/*
 * Serialize obj as one line. The plain form never contains a raw newline
 * (json-c escapes control characters inside strings), so the '\n' we append
 * is the only one. Takes ownership of obj.
 */
static char *
ctl_line(json_object *obj)
{
	const char *s;
	size_t len;
	char *line;

	s = json_object_to_json_string_length(obj,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	line = xmalloc(len + 2);
	memcpy(line, s, len);
	line[len] = '\n';
	line[len + 1] = '\0';
	json_object_put(obj);
	return line;
}

char *
ctl_request_encode(const char *verb, json_object *args)
{
	json_object *obj = json_object_new_object();

	jsonx_add_string(obj, "verb", verb);
	if (args != NULL)
		json_object_object_add(obj, "args", json_object_get(args));
	return ctl_line(obj);
}

char *
ctl_response_ok(json_object *result)
{
	json_object *obj = json_object_new_object();

	jsonx_add_bool(obj, "ok", true);
	json_object_object_add(obj, "result", json_object_get(result));
	return ctl_line(obj);
}

char *
ctl_response_error(const struct carve_error *e)
{
	json_object *obj = json_object_new_object();
	json_object *eo = json_object_new_object();
	/* An unset error still has to say something; never send "ok" as a code. */
	enum carve_errcode code = e->code == CARVE_OK ? CARVE_EINTERNAL : e->code;
	char message[CARVE_ERRMSG_MAX];

	snprintf(message, sizeof(message), "%s",
	    e->message[0] ? e->message : error_code_name(code));
	text_utf8_fix(message);
	jsonx_add_string(eo, "code", error_code_name(code));
	jsonx_add_string(eo, "message", message);
	jsonx_add_bool(obj, "ok", false);
	json_object_object_add(obj, "error", eo);
	return ctl_line(obj);
}

/* Fill remote from the {"code","message"} object of an error response. */
static int
ctl_error_decode(json_object *eo, struct carve_error *remote,
    struct carve_error *err)
{
	const char *code, *message;
	enum carve_errcode c;

	if (jsonx_check_object(eo, "error", error_keys, err) < 0 ||
	    jsonx_get_string(eo, "code", true, CTL_CODE_MAX, &code, err) < 0 ||
	    jsonx_get_string(eo, "message", true, CTL_MAX_LINE, &message,
	    err) < 0)
		return -1;
	/* Same rule as ctl_response_error: an error always says something. */
	if (*message == '\0')
		message = code;
	c = error_code_parse(code);
	/*
	 * A code this build does not know (a newer carved) becomes
	 * internal_error, but keeps its name in the message so the operator
	 * still sees what the server said.
	 */
	if (c == CARVE_OK ||
	    (c == CARVE_EINTERNAL && strcmp(code, "internal_error") != 0))
		error_reset(remote, CARVE_EINTERNAL, "%s: %s", code, message);
	else
		error_reset(remote, c, "%s", message);
	/* The copy may have cut a character in two at CARVE_ERRMSG_MAX. */
	text_utf8_fix(remote->message);
	return 0;
}

int
ctl_response_decode(const char *buf, size_t len, json_object **result,
    struct carve_error *remote, struct carve_error *err)
{
	json_object *obj, *res = NULL, *eo = NULL;
	bool ok;
	int rc = -1;

	*result = NULL;
	if (len > CTL_MAX_LINE)
		return error_set(err, CARVE_EINVAL,
		    "response longer than %d bytes", CTL_MAX_LINE);
	if ((obj = jsonx_parse(buf, len, err)) == NULL)
		return -1;
	if (jsonx_check_object(obj, "response", response_keys, err) < 0 ||
	    jsonx_get_bool(obj, "ok", true, &ok, err) < 0)
		goto cleanup;
	json_object_object_get_ex(obj, "result", &res);
	json_object_object_get_ex(obj, "error", &eo);
	if (ok) {
		if (eo != NULL) {
			error_set(err, CARVE_EINVAL,
			    "response: \"error\" in a successful response");
			goto cleanup;
		}
		*result = json_object_get(res);
		rc = 0;
	} else {
		if (res != NULL) {
			error_set(err, CARVE_EINVAL,
			    "response: \"result\" in an error response");
			goto cleanup;
		}
		if (eo == NULL) {
			error_set(err, CARVE_EINVAL,
			    "response: \"error\" is required when ok is false");
			goto cleanup;
		}
		if (ctl_error_decode(eo, remote, err) < 0)
			goto cleanup;
		rc = 1;
	}
cleanup:
	json_object_put(obj);
	return rc;
}
