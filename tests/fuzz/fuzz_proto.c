/*
 * Fuzz target for the protocol v1 codecs (api/proto). Every input is parsed
 * once and offered to every decoder, since a body reaches carve-cp or carved
 * without saying what it claims to be. Beyond "no crash", it checks that
 * whatever a decoder accepts, its encoder writes as strict JSON that the
 * decoder accepts again and that encodes to the same bytes; that refusals
 * are invalid_argument with a message; and that the long-poll query parser
 * reads its own output back. A violation abort()s so the fuzzer records the
 * input.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/proto.h"
#include "common/jsonx.h"
#include "common/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_proto: %s: %s\n", what, detail);
	abort();
}

static char *
fuzz_text(json_object *obj)
{
	char *s = jsonx_to_string(obj);

	json_object_put(obj);
	return s;
}

static void
fuzz_check_refusal(const char *name, const struct carve_error *err)
{
	if (err->code != CARVE_EINVAL || err->message[0] == '\0')
		fuzz_fail(name, "refused without invalid_argument and a message");
}

/*
 * Decode in and encode it to *out; -1 when refused. The poll response also
 * runs each element through command_decode, as carved does.
 */
struct fuzz_codec {
	const char *fc_name;
	int (*fc_rt)(json_object *in, char **out, struct carve_error *err);
};

#define FUZZ_RT(X, TYPE, CLEAR)						\
static int								\
fuzz_rt_##X(json_object *in, char **out, struct carve_error *err)	\
{									\
	TYPE m;								\
									\
	if (proto_##X##_decode(in, &m, err) == -1)			\
		return -1;						\
	*out = fuzz_text(proto_##X##_encode(&m));			\
	CLEAR(&m);							\
	return 0;							\
}

static void fuzz_noclear(const void *p) { (void)p; }

FUZZ_RT(error, struct carve_error, fuzz_noclear)
FUZZ_RT(capacity, struct proto_capacity, fuzz_noclear)
FUZZ_RT(enroll_req, struct proto_enroll_req, proto_enroll_req_clear)
FUZZ_RT(renew_req, struct proto_renew_req, proto_renew_req_clear)
FUZZ_RT(cert_resp, struct proto_cert_resp, proto_cert_resp_clear)
FUZZ_RT(register_req, struct proto_register_req, proto_register_req_clear)
FUZZ_RT(register_resp, struct proto_register_resp, fuzz_noclear)
FUZZ_RT(progress, struct proto_progress, proto_progress_clear)
FUZZ_RT(heartbeat_req, struct proto_heartbeat_req, proto_heartbeat_req_clear)
FUZZ_RT(heartbeat_resp, struct proto_heartbeat_resp, fuzz_noclear)
FUZZ_RT(vm_create_req, struct proto_vm_create_req, proto_vm_create_req_clear)
FUZZ_RT(vm_created, struct proto_vm_created, fuzz_noclear)
FUZZ_RT(command_ref, struct proto_command_ref, fuzz_noclear)
FUZZ_RT(vm_action_req, struct proto_vm_action_req, proto_vm_action_req_clear)
FUZZ_RT(vm, struct proto_vm, fuzz_noclear)
FUZZ_RT(node, struct proto_node, proto_node_clear)
FUZZ_RT(command_info, struct proto_command_info, proto_command_info_clear)
FUZZ_RT(vm_migrate_req, struct proto_vm_migrate_req, fuzz_noclear)
FUZZ_RT(migration_ref, struct proto_migration_ref, fuzz_noclear)
FUZZ_RT(migration, struct proto_migration, proto_migration_clear)
FUZZ_RT(snapshot_create_req, struct command_snapshot_args, fuzz_noclear)
FUZZ_RT(snapshot_list, struct proto_snapshot_list, fuzz_noclear)

static int
fuzz_rt_poll_resp(json_object *in, char **out, struct carve_error *err)
{
	struct proto_poll_resp m;

	if (proto_poll_resp_decode(in, &m, err) == -1)
		return -1;
	for (size_t i = 0; i < m.pr_nitems; i++) {
		struct carve_error cerr = { 0 };
		struct command cmd;

		if (command_decode(m.pr_items[i].pi_command, &cmd, &cerr) == 0)
			command_clear(&cmd);
		else
			fuzz_check_refusal("poll element command", &cerr);
	}
	*out = fuzz_text(proto_poll_resp_encode(&m));
	proto_poll_resp_clear(&m);
	return 0;
}

static int
fuzz_rt_empty(json_object *in, char **out, struct carve_error *err)
{
	if (proto_empty_decode(in, err) == -1)
		return -1;
	*out = fuzz_text(proto_empty_encode());
	return 0;
}

static int
fuzz_rt_vm_list(json_object *in, char **out, struct carve_error *err)
{
	struct proto_vm *vms;
	size_t n;

	if (proto_vm_list_decode(in, &vms, &n, err) == -1)
		return -1;
	*out = fuzz_text(proto_vm_list_encode(vms, n));
	free(vms);
	return 0;
}

static int
fuzz_rt_node_list(json_object *in, char **out, struct carve_error *err)
{
	struct proto_node *nodes;
	size_t n;

	if (proto_node_list_decode(in, &nodes, &n, err) == -1)
		return -1;
	*out = fuzz_text(proto_node_list_encode(nodes, n));
	proto_node_list_free(nodes, n);
	return 0;
}

static int
fuzz_rt_migration_list(json_object *in, char **out, struct carve_error *err)
{
	struct proto_migration *ms;
	size_t n;

	if (proto_migration_list_decode(in, &ms, &n, err) == -1)
		return -1;
	*out = fuzz_text(proto_migration_list_encode(ms, n));
	proto_migration_list_free(ms, n);
	return 0;
}

static const struct fuzz_codec fuzz_codecs[] = {
	{ "error body", fuzz_rt_error },
	{ "empty", fuzz_rt_empty },
	{ "capacity", fuzz_rt_capacity },
	{ "enroll request", fuzz_rt_enroll_req },
	{ "renew request", fuzz_rt_renew_req },
	{ "certificate response", fuzz_rt_cert_resp },
	{ "register request", fuzz_rt_register_req },
	{ "register response", fuzz_rt_register_resp },
	{ "poll response", fuzz_rt_poll_resp },
	{ "progress", fuzz_rt_progress },
	{ "heartbeat", fuzz_rt_heartbeat_req },
	{ "heartbeat response", fuzz_rt_heartbeat_resp },
	{ "VM create request", fuzz_rt_vm_create_req },
	{ "VM create response", fuzz_rt_vm_created },
	{ "command reference", fuzz_rt_command_ref },
	{ "VM action", fuzz_rt_vm_action_req },
	{ "VM record", fuzz_rt_vm },
	{ "VM list", fuzz_rt_vm_list },
	{ "node record", fuzz_rt_node },
	{ "node list", fuzz_rt_node_list },
	{ "command record", fuzz_rt_command_info },
	{ "VM migrate request", fuzz_rt_vm_migrate_req },
	{ "migration reference", fuzz_rt_migration_ref },
	{ "migration record", fuzz_rt_migration },
	{ "migration list", fuzz_rt_migration_list },
	{ "snapshot request", fuzz_rt_snapshot_create_req },
	{ "snapshot list", fuzz_rt_snapshot_list },
};

static void
fuzz_codec_round_trip(const struct fuzz_codec *fc, json_object *obj)
{
	struct carve_error err = { 0 };
	json_object *again;
	char *t1, *t2;

	if (fc->fc_rt(obj, &t1, &err) == -1) {
		fuzz_check_refusal(fc->fc_name, &err);
		return;
	}
	if ((again = jsonx_parse(t1, strlen(t1), &err)) == NULL)
		fuzz_fail(fc->fc_name, "encoding is not strict JSON");
	if (fc->fc_rt(again, &t2, &err) == -1)
		fuzz_fail(fc->fc_name, "encoding refused by its own decoder");
	if (strcmp(t1, t2) != 0)
		fuzz_fail(fc->fc_name, "second round trip differs");
	json_object_put(again);
	free(t1);
	free(t2);
}

static void
fuzz_query(const uint8_t *data, size_t size)
{
	struct carve_error err = { 0 };
	struct proto_poll_query q, back;
	char *s = xstrndup((const char *)data, size), *f;

	if (proto_poll_query_parse(s, &q, &err) == 0) {
		f = proto_poll_query_format(&q);
		if (proto_poll_query_parse(f, &back, &err) != 0 ||
		    back.pq_cursor != q.pq_cursor ||
		    back.pq_wait_s != q.pq_wait_s)
			fuzz_fail("poll query", f);
		free(f);
	} else
		fuzz_check_refusal("poll query", &err);
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct carve_error err = { 0 };
	json_object *obj;

	fuzz_query(data, size);
	obj = proto_parse((const char *)data, size, PROTO_RESPONSE_MAX, &err);
	if (obj == NULL) {
		if (err.code != CARVE_EINVAL && err.code != CARVE_ETOOBIG)
			fuzz_fail("parse", err.message);
		return 0;
	}
	for (size_t i = 0; i < sizeof(fuzz_codecs) / sizeof(fuzz_codecs[0]); i++)
		fuzz_codec_round_trip(&fuzz_codecs[i], obj);
	json_object_put(obj);
	return 0;
}
