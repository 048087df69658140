/*
 * Fuzz the control-socket codec (agent/ctl_proto.c) with the bytes of one
 * line: as a request, which carved decodes from any local user, and as a
 * response, which carvectl decodes from whatever listens on the socket.
 *
 * Besides "no crash, no leak", it checks that the encoders and decoders
 * agree: whatever decodes re-encodes to one line that decodes to the same
 * thing (same verb and an equal args object; same result; same error).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "agent/ctl_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_fail(const char *what, const char *line)
{
	fprintf(stderr, "fuzz_ctl_request: %s\nline: %s", what, line);
	abort();
}

/* An encoder's output: exactly one '\n', at the end. Returns its length. */
static size_t
fuzz_line_len(const char *line)
{
	size_t len = strlen(line);

	if (len == 0 || line[len - 1] != '\n' ||
	    memchr(line, '\n', len - 1) != NULL)
		fuzz_fail("encoder did not produce exactly one line", line);
	return len - 1;
}

static void
fuzz_request(const char *buf, size_t size)
{
	struct ctl_request req, again;
	struct carve_error err = { 0 };
	char *line;

	if (ctl_request_decode(buf, size, &req, &err) != 0)
		return;
	if (req.args == NULL || !json_object_is_type(req.args, json_type_object))
		fuzz_fail("decoded args is not an object", "");
	line = ctl_request_encode(req.verb, req.args);
	if (ctl_request_decode(line, fuzz_line_len(line), &again, &err) != 0)
		fuzz_fail(err.message, line);
	if (strcmp(req.verb, again.verb) != 0)
		fuzz_fail("verb changed on re-encoding", line);
	if (!json_object_equal(req.args, again.args))
		fuzz_fail("args changed on re-encoding", line);
	ctl_request_clear(&again);
	ctl_request_clear(&req);
	free(line);
}

static void
fuzz_response(const char *buf, size_t size)
{
	struct carve_error err = { 0 }, remote = { 0 }, remote2 = { 0 };
	json_object *result = NULL, *result2 = NULL;
	char *line;
	int rc;

	rc = ctl_response_decode(buf, size, &result, &remote, &err);
	if (rc == 0) {
		line = ctl_response_ok(result);
		if (ctl_response_decode(line, fuzz_line_len(line), &result2,
		    &remote2, &err) != 0)
			fuzz_fail("ok response did not decode again", line);
		if (!json_object_equal(result, result2))
			fuzz_fail("result changed on re-encoding", line);
		free(line);
	} else if (rc == 1) {
		if (!error_isset(&remote))
			fuzz_fail("error response without an error", "");
		line = ctl_response_error(&remote);
		if (ctl_response_decode(line, fuzz_line_len(line), &result2,
		    &remote2, &err) != 1)
			fuzz_fail("error response did not decode again", line);
		if (remote.code != remote2.code ||
		    strcmp(remote.message, remote2.message) != 0)
			fuzz_fail("error changed on re-encoding", line);
		free(line);
	} else if (result != NULL || !error_isset(&err)) {
		fuzz_fail("failed decode without an error or with a result", "");
	}
	json_object_put(result);
	json_object_put(result2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_request((const char *)data, size);
	fuzz_response((const char *)data, size);
	return 0;
}
