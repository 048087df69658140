/*
 * Fuzz target for the command model and the strict JSON layer beneath it.
 * Beyond "no crash", it checks properties: whatever a decoder accepts, its
 * encoder writes in a form the decoder accepts again, and the second trip
 * changes nothing. The same holds for jsonx itself, command results and VM
 * reports. A violation abort()s so the fuzzer records the input.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/command.h"
#include "api/vm.h"
#include "common/jsonx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_command: %s: %s\n", what, detail);
	abort();
}

/* Serialize obj (consumed) into text the caller frees. */
static char *
fuzz_text(json_object *obj)
{
	char *s = jsonx_to_string(obj);

	json_object_put(obj);
	return s;
}

static void
fuzz_command_round_trip(const char *buf, size_t len)
{
	struct carve_error err = { 0 };
	struct command a, b, c;
	char *t1, *t2, *t3;

	if (command_decode_buf(buf, len, &a, &err) != 0) {
		if (err.code != CARVE_EINVAL || err.message[0] == '\0')
			fuzz_fail("command refused without a proper error",
			    err.message);
		return;
	}
	t1 = fuzz_text(command_encode(&a));
	if (command_decode_buf(t1, strlen(t1), &b, &err) != 0)
		fuzz_fail("encoded command refused", err.message);
	t2 = fuzz_text(command_encode(&b));
	if (strcmp(t1, t2) != 0)
		fuzz_fail("command round trip differs", t2);
	command_copy(&c, &b);
	command_clear(&b);
	t3 = fuzz_text(command_encode(&c));
	if (strcmp(t1, t3) != 0)
		fuzz_fail("command copy differs", t3);
	command_clear(&a);
	command_clear(&c);
	free(t1);
	free(t2);
	free(t3);
}

static void
fuzz_result_round_trip(json_object *obj)
{
	struct carve_error err = { 0 };
	struct command_result a, b;
	json_object *o;
	char *t1, *t2;

	if (command_result_decode(obj, &a, &err) != 0)
		return;
	t1 = fuzz_text(command_result_encode(&a));
	if ((o = jsonx_parse(t1, strlen(t1), &err)) == NULL)
		fuzz_fail("encoded result is not strict JSON", err.message);
	if (command_result_decode(o, &b, &err) != 0)
		fuzz_fail("encoded result refused", err.message);
	json_object_put(o);
	t2 = fuzz_text(command_result_encode(&b));
	if (strcmp(t1, t2) != 0)
		fuzz_fail("result round trip differs", t2);
	command_result_clear(&a);
	command_result_clear(&b);
	free(t1);
	free(t2);
}

static void
fuzz_vm_info_round_trip(json_object *obj)
{
	struct carve_error err = { 0 };
	struct vm_info a, b;
	json_object *o;
	char *t1, *t2;

	if (vm_info_decode(obj, &a, &err) != 0)
		return;
	t1 = fuzz_text(vm_info_encode(&a));
	if ((o = jsonx_parse(t1, strlen(t1), &err)) == NULL)
		fuzz_fail("encoded vm is not strict JSON", err.message);
	if (vm_info_decode(o, &b, &err) != 0)
		fuzz_fail("encoded vm refused", err.message);
	json_object_put(o);
	t2 = fuzz_text(vm_info_encode(&b));
	if (strcmp(t1, t2) != 0)
		fuzz_fail("vm round trip differs", t2);
	free(t1);
	free(t2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct carve_error err = { 0 };
	const char *buf = (const char *)data;
	json_object *obj, *again;
	char *t1, *t2;

	fuzz_command_round_trip(buf, size);

	if ((obj = jsonx_parse(buf, size, &err)) == NULL) {
		if (err.code != CARVE_EINVAL)
			fuzz_fail("parse refused without EINVAL", err.message);
		return 0;
	}
	/* What jsonx accepts and writes out, it reads back the same. */
	t1 = jsonx_to_string(obj);
	if ((again = jsonx_parse(t1, strlen(t1), &err)) == NULL)
		fuzz_fail("serialized JSON refused", err.message);
	t2 = jsonx_to_string(again);
	if (strcmp(t1, t2) != 0)
		fuzz_fail("JSON round trip differs", t2);
	json_object_put(again);
	free(t1);
	free(t2);

	fuzz_result_round_trip(obj);
	fuzz_vm_info_round_trip(obj);
	json_object_put(obj);
	return 0;
}
