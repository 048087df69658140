/*
 * Protocol v1 codecs: see proto.h. Every decoder follows the same steps:
 * refuse unknown keys (jsonx_check_object), read each field through a typed
 * getter that names it, build the message in a local and copy it out only
 * when everything passed, so a failed decode leaves nothing to free.
 * Errors inside arrays and nested objects are re-reported with their path
 * ("vms[3]: name must ...", "capacity.VCPU: total ..."), so an operator can
 * find the offending value in a large body.
 */
#include "config.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/proto.h"
#include "common/jsonx.h"
#include "common/text.h"
#include "common/xalloc.h"

/* How much of a rejected string a message quotes. */
#define PROTO_QUOTE_MAX 64

/* ------------------------------------------------------------ helpers */

/* json-c allocation failures are as fatal as xmalloc's. */
static json_object *
proto_must(json_object *o)
{
	if (o == NULL) {
		fprintf(stderr, "level=fatal comp=proto msg=\"out of memory\"\n");
		abort();
	}
	return o;
}

static json_object *
proto_new_object(void)
{
	return proto_must(json_object_new_object());
}

static json_object *
proto_new_array(void)
{
	return proto_must(json_object_new_array());
}

/*
 * Report the error of a nested decode (in sub) in err, prefixed with where
 * it happened. Returns -1.
 */
static int
proto_nested(struct carve_error *err, const struct carve_error *sub,
    const char *where)
{
	return error_set(err, sub->code == CARVE_OK ? CARVE_EINVAL : sub->code,
	    "%s: %s", where, sub->message);
}

/*
 * Presence of key in obj, JSON null included: for records whose every key
 * is always written, with null standing for "nothing". jsonx's getters
 * treat null as missing, so they cannot tell.
 */
static int
proto_require_key(json_object *obj, const char *key, struct carve_error *err)
{
	if (!json_object_object_get_ex(obj, key, NULL))
		return error_set(err, CARVE_EINVAL, "%s is required (it may be "
		    "null)", key);
	return 0;
}

/* A node or VM name (ids_name_check). Returns 1 when present. */
static int
proto_get_name(json_object *obj, const char *key, bool required,
    char out[IDS_NAME_MAX + 1], struct carve_error *err)
{
	const char *s;
	int rc;

	if ((rc = jsonx_get_string(obj, key, required, IDS_NAME_MAX, &s,
	    err)) != 1)
		return rc;
	if (ids_name_check(s, key, err) == -1)
		return -1;
	snprintf(out, IDS_NAME_MAX + 1, "%s", s);
	return 1;
}

/* A duration in seconds for a server-directed interval. */
static int
proto_get_interval(json_object *obj, const char *key, int *out,
    struct carve_error *err)
{
	int64_t v;

	if (jsonx_get_int(obj, key, true, PROTO_INTERVAL_MIN_S,
	    PROTO_INTERVAL_MAX_S, &v, err) == -1)
		return -1;
	*out = (int)v;
	return 0;
}

/*
 * A time in ms. A nullable one must be present, may be null (stored as 0)
 * and is >= 1 otherwise, so 0 never means two things.
 */
static int
proto_get_time(json_object *obj, const char *key, bool nullable,
    int64_t *out, struct carve_error *err)
{
	if (nullable) {
		*out = 0;
		if (proto_require_key(obj, key, err) == -1)
			return -1;
		return jsonx_get_int(obj, key, false, 1, INT64_MAX, out, err);
	}
	return jsonx_get_int(obj, key, true, 0, INT64_MAX, out, err);
}

static void
proto_add_time_or_null(json_object *o, const char *key, int64_t ms)
{
	if (ms == 0)
		json_object_object_add(o, key, NULL);
	else
		jsonx_add_int(o, key, ms);
}

/* An array member. *out is borrowed. */
static int
proto_get_array(json_object *obj, const char *key, bool required,
    json_object **out, struct carve_error *err)
{
	json_object *v;

	if (!json_object_is_type(obj, json_type_object))
		return error_set(err, CARVE_EINVAL,
		    "cannot read %s: not inside a JSON object", key);
	if (!json_object_object_get_ex(obj, key, &v) || v == NULL) {
		if (required)
			return error_set(err, CARVE_EINVAL, "%s is required", key);
		return 0;
	}
	if (!json_object_is_type(v, json_type_array))
		return error_set(err, CARVE_EINVAL, "%s must be a JSON array",
		    key);
	*out = v;
	return 1;
}

/* agent_version: 1..PROTO_VERSION_MAX bytes of [A-Za-z0-9.+~_-]. */
static int
proto_get_version(json_object *obj, const char *key,
    char out[PROTO_VERSION_MAX + 1], struct carve_error *err)
{
	const char *s;

	if (jsonx_get_string(obj, key, true, PROTO_VERSION_MAX, &s, err) == -1)
		return -1;
	if (*s == '\0')
		return error_set(err, CARVE_EINVAL, "%s must not be empty", key);
	for (size_t i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '+' ||
		    c == '~' || c == '_' || c == '-'))
			return error_set(err, CARVE_EINVAL,
			    "%s may only contain letters, digits, '.', '+', '~', "
			    "'_' and '-' (found byte 0x%02x at offset %zu)", key,
			    c, i);
	}
	snprintf(out, PROTO_VERSION_MAX + 1, "%s", s);
	return 0;
}

/* ------------------------------------------------------------ PEM */

static bool
proto_b64_line(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '='))
			return false;
	}
	return true;
}

static bool
proto_line_is(const char *p, size_t n, const char *what, const char *label)
{
	char want[64];
	int k;

	k = snprintf(want, sizeof(want), "-----%s %s-----", what, label);
	return k > 0 && (size_t)k == n && memcmp(p, want, n) == 0;
}

/*
 * Does s look like PEM blocks of label (exactly one unless multi)? Only the
 * shape is checked: it starts with a BEGIN line, BEGIN and END lines
 * surround base64 lines, blank lines only between or after blocks, '\n' or
 * "\r\n" line ends. The content is OpenSSL's job;
 * this keeps junk and oversized text out before it gets there.
 */
static bool
proto_pem_ok(const char *s, const char *label, bool multi)
{
	bool inside = false, body = false;
	unsigned blocks = 0;
	const char *p = s, *nl;
	size_t n;

	while (*p != '\0') {
		nl = strchr(p, '\n');
		n = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (!inside) {
			if (proto_line_is(p, n, "BEGIN", label)) {
				if (blocks > 0 && !multi)
					return false;
				inside = true;
				body = false;
			} else if (n != 0 || blocks == 0)
				return false;
		} else if (proto_line_is(p, n, "END", label)) {
			if (!body)
				return false;
			inside = false;
			blocks++;
		} else if (proto_b64_line(p, n))
			body = true;
		else
			return false;
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return !inside && blocks > 0;
}

static int
proto_get_pem(json_object *obj, const char *key, const char *label,
    bool multi, size_t max, char **out, struct carve_error *err)
{
	const char *s;

	if (jsonx_get_string(obj, key, true, max, &s, err) == -1)
		return -1;
	if (!proto_pem_ok(s, label, multi))
		return error_set(err, CARVE_EINVAL,
		    "%s must be %s PEM %s (-----BEGIN %s----- ... -----END "
		    "%s-----)", key, multi ? "one or more" : "one",
		    label, label, label);
	*out = xstrdup(s);
	return 0;
}

/* ------------------------------------------------------------ bodies */

json_object *
proto_parse(const char *buf, size_t len, size_t max, struct carve_error *err)
{
	if (len > max) {
		error_set(err, CARVE_ETOOBIG,
		    "body is %zu bytes long; at most %zu are allowed", len, max);
		return NULL;
	}
	return jsonx_parse(buf, len, err);
}

/*
 * X_decode_buf for a decoder X_decode(obj, TYPE *out, err): parse (capped at
 * MAX bytes), decode, drop the tree.
 */
#define PROTO_DECODE_BUF(X, TYPE, MAX)					\
int									\
X##_decode_buf(const char *buf, size_t len, TYPE *out,			\
    struct carve_error *err)						\
{									\
	json_object *obj;						\
	int rc;								\
									\
	memset(out, 0, sizeof(*out));					\
	if ((obj = proto_parse(buf, len, (MAX), err)) == NULL)		\
		return -1;						\
	rc = X##_decode(obj, out, err);					\
	json_object_put(obj);						\
	return rc;							\
}

/* ------------------------------------------------------------ errors */

static const int proto_status_table[CARVE_ECODE_MAX] = {
	[CARVE_OK] = 200,
	[CARVE_EINVAL] = 400,
	[CARVE_ENOTFOUND] = 404,
	[CARVE_ECONFLICT] = 409,
	[CARVE_ECAPACITY] = 409,
	[CARVE_EHYPERVISOR] = 500,
	[CARVE_EUNAVAIL] = 503,
	[CARVE_EPERM] = 403,
	[CARVE_EINTERNAL] = 500,
	[CARVE_EUNAUTH] = 401,
	[CARVE_ETOOBIG] = 413,
};

int
proto_http_status(enum carve_errcode code)
{
	if ((int)code < 0 || code >= CARVE_ECODE_MAX)
		return 500;
	return proto_status_table[code];
}

enum carve_errcode
proto_errcode_from_http(int status)
{
	switch (status) {
	case 400:
		return CARVE_EINVAL;
	case 401:
		return CARVE_EUNAUTH;
	case 403:
		return CARVE_EPERM;
	case 404:
		return CARVE_ENOTFOUND;
	case 409:
		return CARVE_ECONFLICT;
	case 413:
		return CARVE_ETOOBIG;
	/* Worth retrying: the server or a proxy in front of it is busy. */
	case 429:
	case 502:
	case 503:
	case 504:
		return CARVE_EUNAVAIL;
	default:
		return CARVE_EINTERNAL;
	}
}

static const char *const proto_error_keys[] = { "code", "message", NULL };

/* {"code","message"} as in command results and error bodies. */
static int
proto_errobj_decode(json_object *e, const char *what, struct carve_error *out,
    struct carve_error *err)
{
	char q[PROTO_QUOTE_MAX + 8];
	const char *code, *msg;
	enum carve_errcode ec;

	if (jsonx_check_object(e, what, proto_error_keys, err) == -1 ||
	    jsonx_get_string(e, "code", true, 64, &code, err) == -1 ||
	    jsonx_get_string(e, "message", true, CARVE_ERRMSG_MAX - 1, &msg,
	    err) == -1)
		return -1;
	/* error_code_parse maps unknown names to internal_error; be exact. */
	ec = error_code_parse(code);
	if (ec == CARVE_OK || strcmp(error_code_name(ec), code) != 0) {
		text_quote(code, PROTO_QUOTE_MAX, q, sizeof(q));
		return error_set(err, CARVE_EINVAL,
		    "%s.code \"%s\" is not a known error code", what, q);
	}
	out->code = ec;
	snprintf(out->message, sizeof(out->message), "%s", msg);
	return 0;
}

static json_object *
proto_errobj_encode(const struct carve_error *e)
{
	json_object *o = proto_new_object();

	jsonx_add_string(o, "code", error_code_name(e->code));
	jsonx_add_string(o, "message", e->message);
	return o;
}

static const char *const proto_error_body_keys[] = { "error", NULL };

json_object *
proto_error_encode(const struct carve_error *e)
{
	json_object *o = proto_new_object();

	json_object_object_add(o, "error", proto_errobj_encode(e));
	return o;
}

int
proto_error_decode(json_object *obj, struct carve_error *out,
    struct carve_error *err)
{
	struct carve_error e = { 0 };
	json_object *inner;

	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "error body", proto_error_body_keys,
	    err) == -1 ||
	    jsonx_get_object(obj, "error", true, &inner, err) == -1 ||
	    proto_errobj_decode(inner, "error", &e, err) == -1)
		return -1;
	*out = e;
	return 0;
}

PROTO_DECODE_BUF(proto_error, struct carve_error, PROTO_RESPONSE_MAX)

json_object *
proto_empty_encode(void)
{
	return proto_new_object();
}

int
proto_empty_decode(json_object *obj, struct carve_error *err)
{
	static const char *const none[] = { NULL };

	return jsonx_check_object(obj, "acknowledgement", none, err);
}

int
proto_empty_decode_buf(const char *buf, size_t len, struct carve_error *err)
{
	json_object *obj;
	int rc;

	if ((obj = proto_parse(buf, len, PROTO_RESPONSE_MAX, err)) == NULL)
		return -1;
	rc = proto_empty_decode(obj, err);
	json_object_put(obj);
	return rc;
}

/* ------------------------------------------------------------ capacity */

static const char *const proto_cap_names[PROTO_CAP_NCLASSES] = {
	[PROTO_CAP_VCPU] = "VCPU",
	[PROTO_CAP_MEMORY_MIB] = "MEMORY_MIB",
	[PROTO_CAP_DISK_GIB] = "DISK_GIB",
};

static const char *const proto_cap_keys[] = {
	"VCPU", "MEMORY_MIB", "DISK_GIB", NULL
};

static const char *const proto_cap_inv_keys[] = {
	"total", "reserved", "allocation_ratio", "allocated", "allocatable",
	"free", NULL
};

const char *
proto_cap_class_name(enum proto_cap_class c)
{
	if ((int)c < 0 || c >= PROTO_CAP_NCLASSES)
		return "unknown";
	return proto_cap_names[c];
}

static int
proto_cap_inv_decode(json_object *o, struct proto_cap_inv *out,
    struct carve_error *err)
{
	json_object *r = NULL;
	double ratio;

	if (jsonx_check_object(o, "inventory", proto_cap_inv_keys, err) == -1 ||
	    jsonx_get_int(o, "total", true, 0, INT64_MAX, &out->ci_total,
	    err) == -1 ||
	    jsonx_get_int(o, "reserved", true, 0, INT64_MAX, &out->ci_reserved,
	    err) == -1 ||
	    jsonx_get_int(o, "allocated", true, 0, INT64_MAX,
	    &out->ci_allocated, err) == -1 ||
	    jsonx_get_int(o, "allocatable", true, 0, INT64_MAX,
	    &out->ci_allocatable, err) == -1 ||
	    jsonx_get_int(o, "free", true, 0, INT64_MAX, &out->ci_free,
	    err) == -1)
		return -1;
	if (!json_object_object_get_ex(o, "allocation_ratio", &r) || r == NULL)
		return error_set(err, CARVE_EINVAL,
		    "allocation_ratio is required");
	if (!json_object_is_type(r, json_type_double) &&
	    !json_object_is_type(r, json_type_int))
		return error_set(err, CARVE_EINVAL,
		    "allocation_ratio must be a number");
	ratio = json_object_get_double(r);
	if (!isfinite(ratio) || ratio < 0)
		return error_set(err, CARVE_EINVAL,
		    "allocation_ratio must be a finite number >= 0");
	out->ci_ratio = ratio;
	return 0;
}

int
proto_capacity_decode(json_object *obj, struct proto_capacity *out,
    struct carve_error *err)
{
	struct proto_capacity cap;
	struct carve_error sub = { 0 };
	char where[64];
	json_object *o;

	memset(&cap, 0, sizeof(cap));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "capacity", proto_cap_keys, err) == -1)
		return -1;
	for (int c = 0; c < PROTO_CAP_NCLASSES; c++) {
		snprintf(where, sizeof(where), "capacity.%s", proto_cap_names[c]);
		if (!json_object_object_get_ex(obj, proto_cap_names[c], &o) ||
		    o == NULL)
			return error_set(err, CARVE_EINVAL, "%s is required",
			    where);
		if (proto_cap_inv_decode(o, &cap.pc_class[c], &sub) == -1)
			return proto_nested(err, &sub, where);
	}
	*out = cap;
	return 0;
}

json_object *
proto_capacity_encode(const struct proto_capacity *cap)
{
	json_object *obj = proto_new_object();

	for (int c = 0; c < PROTO_CAP_NCLASSES; c++) {
		const struct proto_cap_inv *inv = &cap->pc_class[c];
		json_object *o = proto_new_object();

		jsonx_add_int(o, "total", inv->ci_total);
		jsonx_add_int(o, "reserved", inv->ci_reserved);
		/* JSON has no NaN or infinity. */
		json_object_object_add(o, "allocation_ratio",
		    proto_must(json_object_new_double(isfinite(inv->ci_ratio) ?
		    inv->ci_ratio : 0)));
		jsonx_add_int(o, "allocated", inv->ci_allocated);
		jsonx_add_int(o, "allocatable", inv->ci_allocatable);
		jsonx_add_int(o, "free", inv->ci_free);
		json_object_object_add(obj, proto_cap_names[c], o);
	}
	return obj;
}

/* A required capacity member, checked, returned as a new reference. */
static int
proto_get_capacity(json_object *obj, const char *key, json_object **out,
    struct carve_error *err)
{
	struct proto_capacity cap;
	json_object *o;

	if (jsonx_get_object(obj, key, true, &o, err) == -1 ||
	    proto_capacity_decode(o, &cap, err) == -1)
		return -1;
	*out = json_object_get(o);
	return 0;
}

/* ------------------------------------------------------------ enroll */

static const char *const proto_enroll_keys[] = { "node", "csr", NULL };

int
proto_enroll_req_decode(json_object *obj, struct proto_enroll_req *out,
    struct carve_error *err)
{
	struct proto_enroll_req m;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "enroll request", proto_enroll_keys,
	    err) == -1 ||
	    proto_get_name(obj, "node", true, m.en_node, err) == -1 ||
	    proto_get_pem(obj, "csr", "CERTIFICATE REQUEST", false,
	    PROTO_CSR_MAX, &m.en_csr, err) == -1)
		return -1;
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_enroll_req, struct proto_enroll_req, PROTO_REQUEST_MAX)

json_object *
proto_enroll_req_encode(const struct proto_enroll_req *msg)
{
	json_object *o = proto_new_object();

	jsonx_add_string(o, "node", msg->en_node);
	jsonx_add_string(o, "csr", msg->en_csr);
	return o;
}

void
proto_enroll_req_clear(struct proto_enroll_req *msg)
{
	if (msg == NULL)
		return;
	free(msg->en_csr);
	memset(msg, 0, sizeof(*msg));
}

static const char *const proto_renew_keys[] = { "csr", NULL };

int
proto_renew_req_decode(json_object *obj, struct proto_renew_req *out,
    struct carve_error *err)
{
	struct proto_renew_req m;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "renew request", proto_renew_keys,
	    err) == -1 ||
	    proto_get_pem(obj, "csr", "CERTIFICATE REQUEST", false,
	    PROTO_CSR_MAX, &m.rn_csr, err) == -1)
		return -1;
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_renew_req, struct proto_renew_req, PROTO_REQUEST_MAX)

json_object *
proto_renew_req_encode(const struct proto_renew_req *msg)
{
	json_object *o = proto_new_object();

	jsonx_add_string(o, "csr", msg->rn_csr);
	return o;
}

void
proto_renew_req_clear(struct proto_renew_req *msg)
{
	if (msg == NULL)
		return;
	free(msg->rn_csr);
	memset(msg, 0, sizeof(*msg));
}

static const char *const proto_cert_keys[] = {
	"certificate", "ca", "expires_at", NULL
};

int
proto_cert_resp_decode(json_object *obj, struct proto_cert_resp *out,
    struct carve_error *err)
{
	struct proto_cert_resp m;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "certificate response", proto_cert_keys,
	    err) == -1 ||
	    proto_get_pem(obj, "certificate", "CERTIFICATE", false,
	    PROTO_CERT_MAX, &m.ct_certificate, err) == -1)
		return -1;
	if (proto_get_pem(obj, "ca", "CERTIFICATE", true, PROTO_CA_MAX,
	    &m.ct_ca, err) == -1 ||
	    jsonx_get_int(obj, "expires_at", true, 0, INT64_MAX,
	    &m.ct_expires_at_ms, err) == -1) {
		proto_cert_resp_clear(&m);
		return -1;
	}
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_cert_resp, struct proto_cert_resp, PROTO_RESPONSE_MAX)

json_object *
proto_cert_resp_encode(const struct proto_cert_resp *msg)
{
	json_object *o = proto_new_object();

	jsonx_add_string(o, "certificate", msg->ct_certificate);
	jsonx_add_string(o, "ca", msg->ct_ca);
	jsonx_add_int(o, "expires_at", msg->ct_expires_at_ms);
	return o;
}

void
proto_cert_resp_clear(struct proto_cert_resp *msg)
{
	if (msg == NULL)
		return;
	free(msg->ct_certificate);
	free(msg->ct_ca);
	memset(msg, 0, sizeof(*msg));
}

/* ------------------------------------------------------------ register */

static const char *const proto_register_keys[] = {
	"agent_version", "schedulable", "host", "capacity", NULL
};

int
proto_register_req_decode(json_object *obj, struct proto_register_req *out,
    struct carve_error *err)
{
	struct proto_register_req m;
	json_object *host;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "register request", proto_register_keys,
	    err) == -1 ||
	    proto_get_version(obj, "agent_version", m.rg_agent_version,
	    err) == -1 ||
	    jsonx_get_bool(obj, "schedulable", true, &m.rg_schedulable,
	    err) == -1 ||
	    jsonx_get_object(obj, "host", true, &host, err) == -1 ||
	    proto_get_capacity(obj, "capacity", &m.rg_capacity, err) == -1)
		return -1;
	m.rg_host = json_object_get(host);
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_register_req, struct proto_register_req,
    PROTO_REQUEST_MAX)

json_object *
proto_register_req_encode(const struct proto_register_req *msg)
{
	json_object *o = proto_new_object();

	jsonx_add_string(o, "agent_version", msg->rg_agent_version);
	jsonx_add_bool(o, "schedulable", msg->rg_schedulable);
	json_object_object_add(o, "host", json_object_get(msg->rg_host));
	json_object_object_add(o, "capacity", json_object_get(msg->rg_capacity));
	return o;
}

void
proto_register_req_clear(struct proto_register_req *msg)
{
	if (msg == NULL)
		return;
	json_object_put(msg->rg_host);
	json_object_put(msg->rg_capacity);
	memset(msg, 0, sizeof(*msg));
}

static const char *const proto_register_resp_keys[] = {
	"heartbeat_interval_s", "poll_timeout_s", "node_ttl_s", NULL
};

int
proto_register_resp_decode(json_object *obj, struct proto_register_resp *out,
    struct carve_error *err)
{
	struct proto_register_resp m;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "register response",
	    proto_register_resp_keys, err) == -1 ||
	    proto_get_interval(obj, "heartbeat_interval_s",
	    &m.rr_heartbeat_interval_s, err) == -1 ||
	    proto_get_interval(obj, "poll_timeout_s", &m.rr_poll_timeout_s,
	    err) == -1 ||
	    proto_get_interval(obj, "node_ttl_s", &m.rr_node_ttl_s, err) == -1)
		return -1;
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_register_resp, struct proto_register_resp,
    PROTO_RESPONSE_MAX)

json_object *
proto_register_resp_encode(const struct proto_register_resp *msg)
{
	json_object *o = proto_new_object();

	jsonx_add_int(o, "heartbeat_interval_s", msg->rr_heartbeat_interval_s);
	jsonx_add_int(o, "poll_timeout_s", msg->rr_poll_timeout_s);
	jsonx_add_int(o, "node_ttl_s", msg->rr_node_ttl_s);
	return o;
}

/* ------------------------------------------------------------ long poll */

/* A plain decimal in [0, max]: no sign, no spaces, no leading zeros. */
static int
proto_query_number(const char *key, const char *p, size_t n, int64_t max,
    int64_t *out, struct carve_error *err)
{
	uint64_t v = 0;

	if (n == 0 || (n > 1 && p[0] == '0'))
		goto bad;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			goto bad;
		v = v * 10 + (uint64_t)(p[i] - '0');
		/* max < 2^63, so v cannot wrap before this catches it. */
		if (v > (uint64_t)max)
			goto bad;
	}
	*out = (int64_t)v;
	return 0;
bad:
	return error_set(err, CARVE_EINVAL,
	    "query parameter %s must be an integer between 0 and %" PRId64,
	    key, max);
}

int
proto_poll_query_parse(const char *query, struct proto_poll_query *out,
    struct carve_error *err)
{
	struct proto_poll_query q = { 0, 0 };
	bool seen_cursor = false, seen_wait = false;
	char quoted[PROTO_QUOTE_MAX + 8], *key;
	const char *p = query, *amp, *eq;
	size_t n;
	int64_t v;

	memset(out, 0, sizeof(*out));
	if (p == NULL || *p == '\0') {
		*out = q;
		return 0;
	}
	for (;;) {
		amp = strchr(p, '&');
		n = amp != NULL ? (size_t)(amp - p) : strlen(p);
		eq = memchr(p, '=', n);
		key = xstrndup(p, eq != NULL ? (size_t)(eq - p) : n);
		if (eq == NULL) {
			text_quote(key, PROTO_QUOTE_MAX, quoted, sizeof(quoted));
			free(key);
			return error_set(err, CARVE_EINVAL,
			    "query parameter \"%s\" has no value", quoted);
		}
		if (strcmp(key, "cursor") == 0 && !seen_cursor) {
			seen_cursor = true;
			if (proto_query_number("cursor", eq + 1,
			    n - (size_t)(eq + 1 - p), INT64_MAX, &q.pq_cursor,
			    err) == -1)
				goto fail;
		} else if (strcmp(key, "wait_s") == 0 && !seen_wait) {
			seen_wait = true;
			if (proto_query_number("wait_s", eq + 1,
			    n - (size_t)(eq + 1 - p), PROTO_WAIT_MAX_S, &v,
			    err) == -1)
				goto fail;
			q.pq_wait_s = (int)v;
		} else {
			text_quote(key, PROTO_QUOTE_MAX, quoted, sizeof(quoted));
			error_set(err, CARVE_EINVAL,
			    "query parameter \"%s\" is unknown or repeated "
			    "(expected cursor and wait_s)", quoted);
			goto fail;
		}
		free(key);
		if (amp == NULL)
			break;
		p = amp + 1;
	}
	*out = q;
	return 0;
fail:
	free(key);
	return -1;
}

char *
proto_poll_query_format(const struct proto_poll_query *q)
{
	return xasprintf("cursor=%" PRId64 "&wait_s=%d", q->pq_cursor,
	    q->pq_wait_s);
}

static const char *const proto_poll_keys[] = { "commands", "cursor", NULL };
static const char *const proto_poll_item_keys[] = { "seq", "command", NULL };

static int
proto_poll_item_decode(json_object *o, struct proto_poll_item *out,
    struct carve_error *err)
{
	json_object *cmd;

	if (jsonx_check_object(o, "element", proto_poll_item_keys, err) == -1 ||
	    jsonx_get_int(o, "seq", true, 1, INT64_MAX, &out->pi_seq,
	    err) == -1 ||
	    jsonx_get_object(o, "command", true, &cmd, err) == -1)
		return -1;
	out->pi_command = json_object_get(cmd);
	return 0;
}

int
proto_poll_resp_decode(json_object *obj, struct proto_poll_resp *out,
    struct carve_error *err)
{
	struct proto_poll_resp m;
	struct carve_error sub = { 0 };
	json_object *arr;
	char where[48];
	size_t n;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "poll response", proto_poll_keys,
	    err) == -1 ||
	    proto_get_array(obj, "commands", true, &arr, err) == -1 ||
	    jsonx_get_int(obj, "cursor", true, 0, INT64_MAX, &m.pr_cursor,
	    err) == -1)
		return -1;
	n = json_object_array_length(arr);
	if (n > PROTO_POLL_MAX_COMMANDS)
		return error_set(err, CARVE_EINVAL,
		    "commands has %zu elements; at most %d are allowed", n,
		    PROTO_POLL_MAX_COMMANDS);
	if (n > 0)
		m.pr_items = xcalloc(n, sizeof(*m.pr_items));
	for (size_t i = 0; i < n; i++) {
		if (proto_poll_item_decode(json_object_array_get_idx(arr, i),
		    &m.pr_items[i], &sub) == -1) {
			snprintf(where, sizeof(where), "commands[%zu]", i);
			proto_poll_resp_clear(&m);
			return proto_nested(err, &sub, where);
		}
		m.pr_nitems++;
	}
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_poll_resp, struct proto_poll_resp, PROTO_RESPONSE_MAX)

json_object *
proto_poll_resp_encode(const struct proto_poll_resp *msg)
{
	json_object *o = proto_new_object(), *arr = proto_new_array(), *e;

	for (size_t i = 0; i < msg->pr_nitems; i++) {
		e = proto_new_object();
		jsonx_add_int(e, "seq", msg->pr_items[i].pi_seq);
		json_object_object_add(e, "command",
		    json_object_get(msg->pr_items[i].pi_command));
		json_object_array_add(arr, e);
	}
	json_object_object_add(o, "commands", arr);
	jsonx_add_int(o, "cursor", msg->pr_cursor);
	return o;
}

void
proto_poll_resp_clear(struct proto_poll_resp *msg)
{
	if (msg == NULL)
		return;
	for (size_t i = 0; i < msg->pr_nitems; i++)
		json_object_put(msg->pr_items[i].pi_command);
	free(msg->pr_items);
	memset(msg, 0, sizeof(*msg));
}

/* ------------------------------------------------------------ progress */

static const char *const proto_progress_keys[] = {
	"percent", "message", NULL
};

int
proto_progress_decode(json_object *obj, struct proto_progress *out,
    struct carve_error *err)
{
	struct proto_progress m;
	const char *msg = NULL;
	int64_t pct;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "progress", proto_progress_keys,
	    err) == -1 ||
	    jsonx_get_int(obj, "percent", true, 0, 100, &pct, err) == -1 ||
	    jsonx_get_string(obj, "message", false, PROTO_PROGRESS_MSG_MAX,
	    &msg, err) == -1)
		return -1;
	m.pg_percent = (int)pct;
	m.pg_message = msg != NULL ? xstrdup(msg) : NULL;
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_progress, struct proto_progress, PROTO_REQUEST_MAX)

json_object *
proto_progress_encode(const struct proto_progress *msg)
{
	json_object *o = proto_new_object();

	jsonx_add_int(o, "percent", msg->pg_percent);
	if (msg->pg_message != NULL)
		jsonx_add_string(o, "message", msg->pg_message);
	return o;
}

void
proto_progress_clear(struct proto_progress *msg)
{
	if (msg == NULL)
		return;
	free(msg->pg_message);
	memset(msg, 0, sizeof(*msg));
}

/* ------------------------------------------------------------ heartbeat */

static const char *const proto_heartbeat_keys[] = {
	"seq", "full", "vms", "removed", "capacity", "schedulable", NULL
};

static int
proto_heartbeat_vms(json_object *arr, struct proto_heartbeat_req *m,
    struct carve_error *err)
{
	struct carve_error sub = { 0 };
	size_t n = json_object_array_length(arr);
	char where[32];

	if (n > 0)
		m->hb_vms = xcalloc(n, sizeof(*m->hb_vms));
	for (size_t i = 0; i < n; i++) {
		if (vm_info_decode(json_object_array_get_idx(arr, i),
		    &m->hb_vms[i], &sub) == -1) {
			snprintf(where, sizeof(where), "vms[%zu]", i);
			return proto_nested(err, &sub, where);
		}
		m->hb_nvms++;
	}
	return 0;
}

static int
proto_heartbeat_removed(json_object *arr, struct proto_heartbeat_req *m,
    struct carve_error *err)
{
	size_t n = json_object_array_length(arr);
	json_object *v;
	const char *s;

	if (n > 0)
		m->hb_removed = xcalloc(n, sizeof(*m->hb_removed));
	for (size_t i = 0; i < n; i++) {
		v = json_object_array_get_idx(arr, i);
		if (!json_object_is_type(v, json_type_string) ||
		    !ids_uuid_valid(s = json_object_get_string(v)) ||
		    strlen(s) != (size_t)json_object_get_string_len(v))
			return error_set(err, CARVE_EINVAL,
			    "removed[%zu] must be a UUID "
			    "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", i);
		ids_uuid_normalize(s, m->hb_removed[i]);
		m->hb_nremoved++;
	}
	return 0;
}

int
proto_heartbeat_req_decode(json_object *obj, struct proto_heartbeat_req *out,
    struct carve_error *err)
{
	struct proto_heartbeat_req m;
	json_object *vms, *removed;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "heartbeat", proto_heartbeat_keys,
	    err) == -1 ||
	    jsonx_get_int(obj, "seq", true, 1, INT64_MAX, &m.hb_seq, err) == -1 ||
	    jsonx_get_bool(obj, "full", true, &m.hb_full, err) == -1 ||
	    proto_get_array(obj, "vms", true, &vms, err) == -1 ||
	    proto_get_array(obj, "removed", true, &removed, err) == -1)
		return -1;
	m.hb_schedulable = true;
	if (jsonx_get_bool(obj, "schedulable", false, &m.hb_schedulable,
	    err) == -1)
		return -1;
	if (proto_heartbeat_vms(vms, &m, err) == -1 ||
	    proto_heartbeat_removed(removed, &m, err) == -1 ||
	    proto_get_capacity(obj, "capacity", &m.hb_capacity, err) == -1) {
		proto_heartbeat_req_clear(&m);
		return -1;
	}
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_heartbeat_req, struct proto_heartbeat_req,
    PROTO_REQUEST_MAX)

json_object *
proto_heartbeat_req_encode(const struct proto_heartbeat_req *msg)
{
	json_object *o = proto_new_object(), *vms, *rm;

	jsonx_add_int(o, "seq", msg->hb_seq);
	jsonx_add_bool(o, "full", msg->hb_full);
	vms = proto_new_array();
	for (size_t i = 0; i < msg->hb_nvms; i++)
		json_object_array_add(vms, vm_info_encode(&msg->hb_vms[i]));
	json_object_object_add(o, "vms", vms);
	rm = proto_new_array();
	for (size_t i = 0; i < msg->hb_nremoved; i++)
		json_object_array_add(rm,
		    proto_must(json_object_new_string(msg->hb_removed[i])));
	json_object_object_add(o, "removed", rm);
	json_object_object_add(o, "capacity", json_object_get(msg->hb_capacity));
	/* Omitted when true: a control plane without drains takes it. */
	if (!msg->hb_schedulable)
		jsonx_add_bool(o, "schedulable", false);
	return o;
}

void
proto_heartbeat_req_clear(struct proto_heartbeat_req *msg)
{
	if (msg == NULL)
		return;
	free(msg->hb_vms);
	free(msg->hb_removed);
	json_object_put(msg->hb_capacity);
	memset(msg, 0, sizeof(*msg));
}

static const char *const proto_heartbeat_resp_keys[] = {
	"ack", "resync", "heartbeat_interval_s", NULL
};

int
proto_heartbeat_resp_decode(json_object *obj,
    struct proto_heartbeat_resp *out, struct carve_error *err)
{
	struct proto_heartbeat_resp m;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "heartbeat response",
	    proto_heartbeat_resp_keys, err) == -1 ||
	    jsonx_get_int(obj, "ack", true, 0, INT64_MAX, &m.ha_ack, err) == -1 ||
	    jsonx_get_bool(obj, "resync", true, &m.ha_resync, err) == -1 ||
	    proto_get_interval(obj, "heartbeat_interval_s",
	    &m.ha_heartbeat_interval_s, err) == -1)
		return -1;
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_heartbeat_resp, struct proto_heartbeat_resp,
    PROTO_RESPONSE_MAX)

json_object *
proto_heartbeat_resp_encode(const struct proto_heartbeat_resp *msg)
{
	json_object *o = proto_new_object();

	jsonx_add_int(o, "ack", msg->ha_ack);
	jsonx_add_bool(o, "resync", msg->ha_resync);
	jsonx_add_int(o, "heartbeat_interval_s", msg->ha_heartbeat_interval_s);
	return o;
}

/* ------------------------------------------------------------ admin: VMs */

/* The VmSpec keys (vm_spec_decode checks their values) plus "node". */
static const char *const proto_vm_create_keys[] = {
	"name", "vcpus", "memory_mib", "disk_gib", "node", "kernel", "initrd",
	"cmdline", "image", "ssh_authorized_keys", "user_data", "networks",
	"data_disks", NULL
};

int
proto_vm_create_req_decode(json_object *obj, struct proto_vm_create_req *out,
    struct carve_error *err)
{
	struct proto_vm_create_req m;
	json_object *spec;
	int rc;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "VM create request", proto_vm_create_keys,
	    err) == -1 ||
	    proto_get_name(obj, "node", false, m.vc_node, err) == -1)
		return -1;
	/* vm_spec_decode is strict too: hand it the object without "node". */
	spec = proto_new_object();
	json_object_object_foreach(obj, key, val) {
		if (strcmp(key, "node") != 0)
			json_object_object_add(spec, key, json_object_get(val));
	}
	rc = vm_spec_decode(spec, &m.vc_spec, err);
	json_object_put(spec);
	if (rc == -1)
		return -1;
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_vm_create_req, struct proto_vm_create_req,
    PROTO_REQUEST_MAX)

json_object *
proto_vm_create_req_encode(const struct proto_vm_create_req *msg)
{
	json_object *o = vm_spec_encode(&msg->vc_spec);

	if (msg->vc_node[0] != '\0')
		jsonx_add_string(o, "node", msg->vc_node);
	return o;
}

void
proto_vm_create_req_clear(struct proto_vm_create_req *msg)
{
	if (msg == NULL)
		return;
	vm_spec_clear(&msg->vc_spec);
	memset(msg, 0, sizeof(*msg));
}

static const char *const proto_vm_created_keys[] = {
	"id", "node", "command_id", NULL
};

int
proto_vm_created_decode(json_object *obj, struct proto_vm_created *out,
    struct carve_error *err)
{
	struct proto_vm_created m;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "VM create response", proto_vm_created_keys,
	    err) == -1 ||
	    jsonx_get_uuid(obj, "id", true, m.vd_id, err) == -1 ||
	    proto_get_name(obj, "node", true, m.vd_node, err) == -1 ||
	    jsonx_get_uuid(obj, "command_id", true, m.vd_command_id, err) == -1)
		return -1;
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_vm_created, struct proto_vm_created,
    PROTO_RESPONSE_MAX)

json_object *
proto_vm_created_encode(const struct proto_vm_created *msg)
{
	json_object *o = proto_new_object();

	jsonx_add_string(o, "id", msg->vd_id);
	jsonx_add_string(o, "node", msg->vd_node);
	jsonx_add_string(o, "command_id", msg->vd_command_id);
	return o;
}

static const char *const proto_command_ref_keys[] = { "command_id", NULL };

int
proto_command_ref_decode(json_object *obj, struct proto_command_ref *out,
    struct carve_error *err)
{
	struct proto_command_ref m;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "command reference", proto_command_ref_keys,
	    err) == -1 ||
	    jsonx_get_uuid(obj, "command_id", true, m.ref_command_id,
	    err) == -1)
		return -1;
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_command_ref, struct proto_command_ref,
    PROTO_RESPONSE_MAX)

json_object *
proto_command_ref_encode(const struct proto_command_ref *msg)
{
	json_object *o = proto_new_object();

	jsonx_add_string(o, "command_id", msg->ref_command_id);
	return o;
}

struct proto_action_entry {
	const char *pa_name;
	enum command_type pa_command;
	bool pa_force;          /* takes "force" */
	bool pa_sizes;          /* takes "vcpus" and "memory_mib" */
	bool pa_image;          /* takes "image" */
};

static const struct proto_action_entry proto_actions[PROTO_VM_ACTION_MAX] = {
	[PROTO_VM_START] = { "start", CMD_VM_START, false, false, false },
	[PROTO_VM_STOP] = { "stop", CMD_VM_STOP, true, false, false },
	[PROTO_VM_REBOOT] = { "reboot", CMD_VM_REBOOT, false, false, false },
	[PROTO_VM_RESIZE] = { "resize", CMD_VM_RESIZE, false, true, false },
	[PROTO_VM_REBUILD] = { "rebuild", CMD_VM_REBUILD, false, false, true },
};

const char *
proto_vm_action_name(enum proto_vm_action a)
{
	if ((int)a < 0 || a >= PROTO_VM_ACTION_MAX)
		return "unknown";
	return proto_actions[a].pa_name;
}

enum command_type
proto_vm_action_command(enum proto_vm_action a)
{
	if ((int)a < 0 || a >= PROTO_VM_ACTION_MAX)
		return CMD_TYPE_MAX;
	return proto_actions[a].pa_command;
}

static const char *const proto_action_keys[] = { "action", "force", "vcpus",
	"memory_mib", "image", NULL };

/*
 * vcpus and memory_mib of a resize, checked by the command's own decoder
 * (the same bounds and messages as vm.resize from any other source).
 */
static int
proto_action_sizes(json_object *obj, struct command_resize_args *out,
    struct carve_error *err)
{
	static const char *const keys[] = { "vcpus", "memory_mib", NULL };
	struct command cmd;
	json_object *o, *args, *v;
	int rc;

	o = proto_new_object();
	args = proto_new_object();
	for (const char *const *k = keys; *k != NULL; k++)
		if (json_object_object_get_ex(obj, *k, &v))
			json_object_object_add(args, *k, json_object_get(v));
	/* Placeholder ids: only the arguments are being checked. */
	jsonx_add_string(o, "id", "00000000-0000-4000-8000-000000000000");
	jsonx_add_string(o, "type", command_type_name(CMD_VM_RESIZE));
	jsonx_add_string(o, "vm_id", "00000000-0000-4000-8000-000000000000");
	json_object_object_add(o, "args", args);
	rc = command_decode(o, &cmd, err);
	json_object_put(o);
	if (rc == 0) {
		*out = cmd.cmd_args.resize;
		command_clear(&cmd);
	}
	return rc;
}

int
proto_vm_action_req_decode(json_object *obj, struct proto_vm_action_req *out,
    struct carve_error *err)
{
	struct proto_vm_action_req m;
	char q[PROTO_QUOTE_MAX + 8];
	const char *name;
	int a, rc;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "VM action request", proto_action_keys,
	    err) == -1 ||
	    jsonx_get_string(obj, "action", true, SIZE_MAX, &name, err) == -1)
		return -1;
	for (a = 0; a < PROTO_VM_ACTION_MAX; a++)
		if (strcmp(proto_actions[a].pa_name, name) == 0)
			break;
	if (a == PROTO_VM_ACTION_MAX) {
		text_quote(name, PROTO_QUOTE_MAX, q, sizeof(q));
		return error_set(err, CARVE_EINVAL,
		    "action \"%s\" is unknown (expected start, stop, reboot, "
		    "resize or rebuild)", q);
	}
	m.va_action = (enum proto_vm_action)a;
	if ((rc = jsonx_get_bool(obj, "force", false, &m.va_force, err)) == -1)
		return -1;
	if (rc == 1 && !proto_actions[a].pa_force)
		return error_set(err, CARVE_EINVAL,
		    "force applies to the stop action only");
	/* A JSON null counts as absent, as everywhere. */
	if (proto_actions[a].pa_sizes) {
		if (proto_action_sizes(obj, &m.va_resize, err) == -1)
			return -1;
	} else if (json_object_object_get(obj, "vcpus") != NULL ||
	    json_object_object_get(obj, "memory_mib") != NULL) {
		return error_set(err, CARVE_EINVAL,
		    "vcpus and memory_mib apply to the resize action only");
	}
	if (proto_actions[a].pa_image) {
		if (vm_image_get(obj, &m.va_image, err) == -1)
			return -1;
	} else if (json_object_object_get(obj, "image") != NULL) {
		return error_set(err, CARVE_EINVAL,
		    "image applies to the rebuild action only");
	}
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_vm_action_req, struct proto_vm_action_req,
    PROTO_REQUEST_MAX)

json_object *
proto_vm_action_req_encode(const struct proto_vm_action_req *msg)
{
	json_object *o = proto_new_object();
	const struct proto_action_entry *pa = NULL;

	jsonx_add_string(o, "action", proto_vm_action_name(msg->va_action));
	if ((int)msg->va_action >= 0 && msg->va_action < PROTO_VM_ACTION_MAX)
		pa = &proto_actions[msg->va_action];
	if (pa != NULL && pa->pa_force)
		jsonx_add_bool(o, "force", msg->va_force);
	if (pa != NULL && pa->pa_sizes) {
		if (msg->va_resize.vcpus != 0)
			jsonx_add_int(o, "vcpus", msg->va_resize.vcpus);
		if (msg->va_resize.memory_mib != 0)
			jsonx_add_int(o, "memory_mib",
			    (int64_t)msg->va_resize.memory_mib);
	}
	if (pa != NULL && pa->pa_image && msg->va_image.vi_url != NULL)
		json_object_object_add(o, "image",
		    vm_image_encode(&msg->va_image));
	return o;
}

void
proto_vm_action_req_clear(struct proto_vm_action_req *msg)
{
	if (msg == NULL)
		return;
	vm_image_clear(&msg->va_image);
	memset(msg, 0, sizeof(*msg));
}

/* ------------------------------------------------------------ snapshots */

int
proto_snapshot_create_req_decode(json_object *obj,
    struct command_snapshot_args *out, struct carve_error *err)
{
	memset(out, 0, sizeof(*out));
	return command_snapshot_create_decode(obj, out, err);
}

PROTO_DECODE_BUF(proto_snapshot_create_req, struct command_snapshot_args,
    PROTO_REQUEST_MAX)

json_object *
proto_snapshot_create_req_encode(const struct command_snapshot_args *msg)
{
	return command_snapshot_create_encode(msg);
}

static const char *const proto_snapshot_list_keys[] = {
	"vm_id", "snapshots", NULL
};

int
proto_snapshot_list_decode(json_object *obj, struct proto_snapshot_list *out,
    struct carve_error *err)
{
	struct proto_snapshot_list *m = xcalloc(1, sizeof(*m));
	json_object *arr;
	size_t n;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "snapshot list", proto_snapshot_list_keys,
	    err) == -1 ||
	    jsonx_get_uuid(obj, "vm_id", true, m->sl_vm_id, err) == -1)
		goto out;
	if (!json_object_object_get_ex(obj, "snapshots", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		error_set(err, CARVE_EINVAL, "snapshots must be an array");
		goto out;
	}
	if ((n = json_object_array_length(arr)) > VM_SNAPSHOTS_MAX) {
		error_set(err, CARVE_EINVAL, "snapshots has %zu entries; a VM "
		    "has at most %d", n, VM_SNAPSHOTS_MAX);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (vm_snapshot_decode(json_object_array_get_idx(arr, i),
		    &m->sl_snaps[i], err) == -1)
			goto out;
		for (size_t j = 0; j < i; j++)
			if (strcmp(m->sl_snaps[j].snap_name,
			    m->sl_snaps[i].snap_name) == 0) {
				error_set(err, CARVE_EINVAL, "snapshot "
				    "\"%s\" is listed twice",
				    m->sl_snaps[i].snap_name);
				goto out;
			}
	}
	m->sl_n = (unsigned)n;
	*out = *m;
	rc = 0;
out:
	free(m);
	return rc;
}

PROTO_DECODE_BUF(proto_snapshot_list, struct proto_snapshot_list,
    PROTO_RESPONSE_MAX)

json_object *
proto_snapshot_list_encode(const struct proto_snapshot_list *msg)
{
	json_object *o = proto_new_object(), *arr = json_object_new_array();

	if (arr == NULL) {
		fprintf(stderr,
		    "level=fatal comp=proto msg=\"out of memory\"\n");
		abort();
	}
	jsonx_add_string(o, "vm_id", msg->sl_vm_id);
	for (unsigned i = 0; i < msg->sl_n && i < VM_SNAPSHOTS_MAX; i++)
		json_object_array_add(arr,
		    vm_snapshot_encode(&msg->sl_snaps[i]));
	json_object_object_add(o, "snapshots", arr);
	return o;
}

static const char *const proto_desired_names[PROTO_DESIRED_MAX] = {
	[PROTO_DESIRED_RUNNING] = "running",
	[PROTO_DESIRED_STOPPED] = "stopped",
	[PROTO_DESIRED_DELETED] = "deleted",
};

const char *
proto_desired_state_name(enum proto_desired_state s)
{
	if ((int)s < 0 || s >= PROTO_DESIRED_MAX)
		return "unknown";
	return proto_desired_names[s];
}

int
proto_desired_state_parse(const char *name, enum proto_desired_state *out)
{
	for (int i = 0; i < PROTO_DESIRED_MAX; i++)
		if (strcmp(proto_desired_names[i], name) == 0) {
			*out = (enum proto_desired_state)i;
			return 0;
		}
	return -1;
}

static const char *const proto_vm_keys[] = {
	"id", "name", "node", "vcpus", "memory_mib", "disk_gib",
	"desired_state", "state", "last_command_id", "updated_at", "migration",
	NULL
};

static const char *const proto_vm_mig_keys[] = {
	"id", "state", "target", NULL
};

/* A VM record's optional "migration": {"id","state","target"}. */
static int
proto_vm_migration(json_object *obj, struct proto_vm *m,
    struct carve_error *err)
{
	struct carve_error sub = { 0 };
	json_object *mo;
	const char *state;
	int rc;

	if ((rc = jsonx_get_object(obj, "migration", false, &mo, err)) != 1)
		return rc;
	if (jsonx_check_object(mo, "migration", proto_vm_mig_keys,
	    &sub) == -1 ||
	    jsonx_get_uuid(mo, "id", true, m->pv_migration_id, &sub) == -1 ||
	    jsonx_get_string(mo, "state", true, PROTO_STATE_NAME_MAX, &state,
	    &sub) == -1 ||
	    proto_get_name(mo, "target", true, m->pv_migration_target,
	    &sub) == -1)
		return proto_nested(err, &sub, "migration");
	if (!proto_mig_state_valid(state))
		return error_set(err, CARVE_EINVAL, "migration.state must be "
		    "preparing, migrating, finishing, done or failed");
	snprintf(m->pv_migration_state, sizeof(m->pv_migration_state), "%s",
	    state);
	return 0;
}

int
proto_vm_decode(json_object *obj, struct proto_vm *out,
    struct carve_error *err)
{
	struct proto_vm m;
	enum vm_state vst;
	const char *desired, *state;
	int64_t v;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "vm", proto_vm_keys, err) == -1 ||
	    jsonx_get_uuid(obj, "id", true, m.pv_id, err) == -1 ||
	    proto_get_name(obj, "name", true, m.pv_name, err) == -1 ||
	    proto_get_name(obj, "node", true, m.pv_node, err) == -1)
		return -1;
	if (jsonx_get_int(obj, "vcpus", true, 1, VM_VCPUS_MAX, &v, err) == -1)
		return -1;
	m.pv_vcpus = (unsigned)v;
	if (jsonx_get_int(obj, "memory_mib", true, VM_MEMORY_MIB_MIN,
	    (int64_t)VM_MEMORY_MIB_MAX, &v, err) == -1)
		return -1;
	m.pv_memory_mib = (uint64_t)v;
	/* carve-cp's record counts the data disks in (what the VM takes). */
	if (jsonx_get_int(obj, "disk_gib", true, 0,
	    (int64_t)VM_DISK_GIB_TOTAL_MAX, &v, err) == -1)
		return -1;
	m.pv_disk_gib = (uint64_t)v;
	if (jsonx_get_string(obj, "desired_state", true, 16, &desired,
	    err) == -1)
		return -1;
	if (proto_desired_state_parse(desired, &m.pv_desired) == -1)
		return error_set(err, CARVE_EINVAL, "desired_state must be "
		    "\"running\", \"stopped\" or \"deleted\"");
	if (jsonx_get_string(obj, "state", true, PROTO_STATE_NAME_MAX, &state,
	    err) == -1)
		return -1;
	if (strcmp(state, "pending") != 0 && vm_state_parse(state, &vst) == -1)
		return error_set(err, CARVE_EINVAL,
		    "state must be pending or one of unknown, running, blocked, "
		    "paused, shutting_down, shutoff, crashed, suspended");
	snprintf(m.pv_state, sizeof(m.pv_state), "%s", state);
	if (jsonx_get_uuid(obj, "last_command_id", true, m.pv_last_command_id,
	    err) == -1 ||
	    proto_get_time(obj, "updated_at", false, &m.pv_updated_at_ms,
	    err) == -1 ||
	    proto_vm_migration(obj, &m, err) == -1)
		return -1;
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_vm, struct proto_vm, PROTO_RESPONSE_MAX)

json_object *
proto_vm_encode(const struct proto_vm *vm)
{
	json_object *o = proto_new_object();

	jsonx_add_string(o, "id", vm->pv_id);
	jsonx_add_string(o, "name", vm->pv_name);
	jsonx_add_string(o, "node", vm->pv_node);
	jsonx_add_int(o, "vcpus", vm->pv_vcpus);
	jsonx_add_int(o, "memory_mib", (int64_t)vm->pv_memory_mib);
	jsonx_add_int(o, "disk_gib", (int64_t)vm->pv_disk_gib);
	jsonx_add_string(o, "desired_state",
	    proto_desired_state_name(vm->pv_desired));
	jsonx_add_string(o, "state", vm->pv_state);
	jsonx_add_string(o, "last_command_id", vm->pv_last_command_id);
	jsonx_add_int(o, "updated_at", vm->pv_updated_at_ms);
	if (vm->pv_migration_id[0] != '\0') {
		json_object *mo = proto_new_object();

		jsonx_add_string(mo, "id", vm->pv_migration_id);
		jsonx_add_string(mo, "state", vm->pv_migration_state);
		jsonx_add_string(mo, "target", vm->pv_migration_target);
		json_object_object_add(o, "migration", mo);
	}
	return o;
}

int
proto_vm_list_decode(json_object *arr, struct proto_vm **out, size_t *n,
    struct carve_error *err)
{
	struct carve_error sub = { 0 };
	struct proto_vm *vms = NULL;
	char where[32];
	size_t len;

	*out = NULL;
	*n = 0;
	if (!json_object_is_type(arr, json_type_array))
		return error_set(err, CARVE_EINVAL,
		    "VM list must be a JSON array");
	len = json_object_array_length(arr);
	if (len > 0)
		vms = xcalloc(len, sizeof(*vms));
	for (size_t i = 0; i < len; i++)
		if (proto_vm_decode(json_object_array_get_idx(arr, i), &vms[i],
		    &sub) == -1) {
			free(vms);
			snprintf(where, sizeof(where), "[%zu]", i);
			return proto_nested(err, &sub, where);
		}
	*out = vms;
	*n = len;
	return 0;
}

json_object *
proto_vm_list_encode(const struct proto_vm *vms, size_t n)
{
	json_object *arr = proto_new_array();

	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, proto_vm_encode(&vms[i]));
	return arr;
}

/* ------------------------------------------------------------ admin: nodes */

static const char *const proto_node_keys[] = {
	"name", "up", "schedulable", "last_heartbeat", "registered_at",
	"agent_version", "host", "capacity", "vms", "evacuation", NULL
};

int
proto_node_decode(json_object *obj, struct proto_node *out,
    struct carve_error *err)
{
	struct proto_node m;
	json_object *host, *evac = NULL;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "node", proto_node_keys, err) == -1 ||
	    proto_get_name(obj, "name", true, m.nd_name, err) == -1 ||
	    jsonx_get_bool(obj, "up", true, &m.nd_up, err) == -1 ||
	    jsonx_get_bool(obj, "schedulable", true, &m.nd_schedulable,
	    err) == -1 ||
	    proto_get_time(obj, "last_heartbeat", true,
	    &m.nd_last_heartbeat_ms, err) == -1 ||
	    proto_get_time(obj, "registered_at", false, &m.nd_registered_at_ms,
	    err) == -1 ||
	    proto_get_version(obj, "agent_version", m.nd_agent_version,
	    err) == -1 ||
	    jsonx_get_object(obj, "host", true, &host, err) == -1 ||
	    jsonx_get_int(obj, "vms", true, 0, INT64_MAX, &m.nd_vms, err) == -1 ||
	    jsonx_get_object(obj, "evacuation", false, &evac, err) == -1 ||
	    proto_get_capacity(obj, "capacity", &m.nd_capacity, err) == -1)
		return -1;
	m.nd_host = json_object_get(host);
	m.nd_evacuation = json_object_get(evac);
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_node, struct proto_node, PROTO_RESPONSE_MAX)

json_object *
proto_node_encode(const struct proto_node *node)
{
	json_object *o = proto_new_object();

	jsonx_add_string(o, "name", node->nd_name);
	jsonx_add_bool(o, "up", node->nd_up);
	jsonx_add_bool(o, "schedulable", node->nd_schedulable);
	proto_add_time_or_null(o, "last_heartbeat", node->nd_last_heartbeat_ms);
	jsonx_add_int(o, "registered_at", node->nd_registered_at_ms);
	jsonx_add_string(o, "agent_version", node->nd_agent_version);
	json_object_object_add(o, "host", json_object_get(node->nd_host));
	json_object_object_add(o, "capacity",
	    json_object_get(node->nd_capacity));
	jsonx_add_int(o, "vms", node->nd_vms);
	if (node->nd_evacuation != NULL)
		json_object_object_add(o, "evacuation",
		    json_object_get(node->nd_evacuation));
	return o;
}

void
proto_node_clear(struct proto_node *node)
{
	if (node == NULL)
		return;
	json_object_put(node->nd_host);
	json_object_put(node->nd_capacity);
	json_object_put(node->nd_evacuation);
	memset(node, 0, sizeof(*node));
}

int
proto_node_list_decode(json_object *arr, struct proto_node **out, size_t *n,
    struct carve_error *err)
{
	struct carve_error sub = { 0 };
	struct proto_node *nodes = NULL;
	char where[32];
	size_t len;

	*out = NULL;
	*n = 0;
	if (!json_object_is_type(arr, json_type_array))
		return error_set(err, CARVE_EINVAL,
		    "node list must be a JSON array");
	len = json_object_array_length(arr);
	if (len > 0)
		nodes = xcalloc(len, sizeof(*nodes));
	for (size_t i = 0; i < len; i++)
		if (proto_node_decode(json_object_array_get_idx(arr, i),
		    &nodes[i], &sub) == -1) {
			proto_node_list_free(nodes, i);
			snprintf(where, sizeof(where), "[%zu]", i);
			return proto_nested(err, &sub, where);
		}
	*out = nodes;
	*n = len;
	return 0;
}

json_object *
proto_node_list_encode(const struct proto_node *nodes, size_t n)
{
	json_object *arr = proto_new_array();

	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, proto_node_encode(&nodes[i]));
	return arr;
}

void
proto_node_list_free(struct proto_node *nodes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		proto_node_clear(&nodes[i]);
	free(nodes);
}

/* ------------------------------------------------------------ admin: commands */

static const char *const proto_cmd_status_names[PROTO_CMD_STATUS_MAX] = {
	[PROTO_CMD_PENDING] = "pending",
	[PROTO_CMD_DELIVERED] = "delivered",
	[PROTO_CMD_SUCCEEDED] = "succeeded",
	[PROTO_CMD_FAILED] = "failed",
};

const char *
proto_cmd_status_name(enum proto_cmd_status s)
{
	if ((int)s < 0 || s >= PROTO_CMD_STATUS_MAX)
		return "unknown";
	return proto_cmd_status_names[s];
}

int
proto_cmd_status_parse(const char *name, enum proto_cmd_status *out)
{
	for (int i = 0; i < PROTO_CMD_STATUS_MAX; i++)
		if (strcmp(proto_cmd_status_names[i], name) == 0) {
			*out = (enum proto_cmd_status)i;
			return 0;
		}
	return -1;
}

static const char *const proto_command_info_keys[] = {
	"id", "type", "vm_id", "node", "status", "created_at", "delivered_at",
	"finished_at", "result", "error", "progress", NULL
};

/* The nullable members: result, error, progress. */
static int
proto_command_info_tail(json_object *obj, struct proto_command_info *m,
    struct carve_error *err)
{
	struct carve_error sub = { 0 };
	json_object *res = NULL, *e = NULL, *pg = NULL;

	if (proto_require_key(obj, "result", err) == -1 ||
	    proto_require_key(obj, "error", err) == -1 ||
	    proto_require_key(obj, "progress", err) == -1 ||
	    jsonx_get_object(obj, "result", false, &res, err) == -1 ||
	    jsonx_get_object(obj, "error", false, &e, err) == -1 ||
	    jsonx_get_object(obj, "progress", false, &pg, err) == -1)
		return -1;
	if ((m->ci_status == PROTO_CMD_FAILED) != (e != NULL))
		return error_set(err, CARVE_EINVAL, m->ci_status ==
		    PROTO_CMD_FAILED ? "error is required when status is "
		    "\"failed\"" : "error must be null unless status is "
		    "\"failed\"");
	if (e != NULL && proto_errobj_decode(e, "error", &m->ci_error,
	    err) == -1)
		return -1;
	if (pg != NULL) {
		if (proto_progress_decode(pg, &m->ci_progress, &sub) == -1)
			return proto_nested(err, &sub, "progress");
		m->ci_has_progress = true;
	}
	m->ci_result = json_object_get(res);
	return 0;
}

int
proto_command_info_decode(json_object *obj, struct proto_command_info *out,
    struct carve_error *err)
{
	struct proto_command_info m;
	char q[PROTO_QUOTE_MAX + 8];
	const char *type, *status;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "command", proto_command_info_keys,
	    err) == -1 ||
	    jsonx_get_uuid(obj, "id", true, m.ci_id, err) == -1 ||
	    jsonx_get_string(obj, "type", true, SIZE_MAX, &type, err) == -1)
		return -1;
	if (command_type_parse(type, &m.ci_type) == -1) {
		text_quote(type, PROTO_QUOTE_MAX, q, sizeof(q));
		return error_set(err, CARVE_EINVAL,
		    "unknown command type \"%s\"", q);
	}
	if (jsonx_get_uuid(obj, "vm_id", true, m.ci_vm_id, err) == -1 ||
	    proto_get_name(obj, "node", true, m.ci_node, err) == -1 ||
	    jsonx_get_string(obj, "status", true, SIZE_MAX, &status, err) == -1)
		return -1;
	if (proto_cmd_status_parse(status, &m.ci_status) == -1)
		return error_set(err, CARVE_EINVAL, "status must be \"pending\", "
		    "\"delivered\", \"succeeded\" or \"failed\"");
	if (proto_get_time(obj, "created_at", false, &m.ci_created_at_ms,
	    err) == -1 ||
	    proto_get_time(obj, "delivered_at", true, &m.ci_delivered_at_ms,
	    err) == -1 ||
	    proto_get_time(obj, "finished_at", true, &m.ci_finished_at_ms,
	    err) == -1 ||
	    proto_command_info_tail(obj, &m, err) == -1) {
		proto_command_info_clear(&m);
		return -1;
	}
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_command_info, struct proto_command_info,
    PROTO_RESPONSE_MAX)

json_object *
proto_command_info_encode(const struct proto_command_info *ci)
{
	json_object *o = proto_new_object();

	jsonx_add_string(o, "id", ci->ci_id);
	jsonx_add_string(o, "type", command_type_name(ci->ci_type));
	jsonx_add_string(o, "vm_id", ci->ci_vm_id);
	jsonx_add_string(o, "node", ci->ci_node);
	jsonx_add_string(o, "status", proto_cmd_status_name(ci->ci_status));
	jsonx_add_int(o, "created_at", ci->ci_created_at_ms);
	proto_add_time_or_null(o, "delivered_at", ci->ci_delivered_at_ms);
	proto_add_time_or_null(o, "finished_at", ci->ci_finished_at_ms);
	json_object_object_add(o, "result", json_object_get(ci->ci_result));
	json_object_object_add(o, "error", ci->ci_error.code != CARVE_OK ?
	    proto_errobj_encode(&ci->ci_error) : NULL);
	json_object_object_add(o, "progress", ci->ci_has_progress ?
	    proto_progress_encode(&ci->ci_progress) : NULL);
	return o;
}

void
proto_command_info_clear(struct proto_command_info *ci)
{
	if (ci == NULL)
		return;
	json_object_put(ci->ci_result);
	proto_progress_clear(&ci->ci_progress);
	memset(ci, 0, sizeof(*ci));
}

/* ------------------------------------------------------------ admin: migrations */

static const char *const proto_mig_state_names[] = {
	"preparing", "migrating", "finishing", "done", "failed", NULL
};

bool
proto_mig_state_valid(const char *name)
{
	for (size_t i = 0; proto_mig_state_names[i] != NULL; i++)
		if (strcmp(proto_mig_state_names[i], name) == 0)
			return true;
	return false;
}

/* An optional limit: -1 when absent or null. */
static int
proto_get_limit(json_object *obj, const char *key, int64_t min, int64_t max,
    int64_t *out, struct carve_error *err)
{
	int rc;

	*out = -1;
	if ((rc = jsonx_get_int(obj, key, false, min, max, out, err)) == 0)
		*out = -1;
	return rc;
}

static void
proto_add_limit(json_object *o, const char *key, int64_t v, bool nullable)
{
	if (v >= 0)
		jsonx_add_int(o, key, v);
	else if (nullable)
		json_object_object_add(o, key, NULL);
}

static const char *const proto_migrate_keys[] = {
	"action", "target_node", "max_downtime_ms", "bandwidth_mibps",
	"timeout_s", NULL
};

bool
proto_vm_action_is_migrate(json_object *obj)
{
	json_object *v;

	return json_object_is_type(obj, json_type_object) &&
	    json_object_object_get_ex(obj, "action", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    strcmp(json_object_get_string(v), "migrate") == 0;
}

/* The limits shared by the migrate request and the migration record. */
static int
proto_mig_limits(json_object *obj, int64_t *downtime, int64_t *bandwidth,
    int64_t *timeout, struct carve_error *err)
{
	if (proto_get_limit(obj, "max_downtime_ms", 1,
	    PROTO_MIG_DOWNTIME_MAX_MS, downtime, err) == -1 ||
	    proto_get_limit(obj, "bandwidth_mibps", 0, PROTO_MIG_BANDWIDTH_MAX,
	    bandwidth, err) == -1 ||
	    proto_get_limit(obj, "timeout_s", PROTO_MIG_TIMEOUT_MIN_S,
	    PROTO_MIG_TIMEOUT_MAX_S, timeout, err) == -1)
		return -1;
	return 0;
}

int
proto_vm_migrate_req_decode(json_object *obj, struct proto_vm_migrate_req *out,
    struct carve_error *err)
{
	struct proto_vm_migrate_req m;
	const char *action;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "migrate request", proto_migrate_keys,
	    err) == -1 ||
	    jsonx_get_string(obj, "action", true, SIZE_MAX, &action, err) == -1)
		return -1;
	if (strcmp(action, "migrate") != 0)
		return error_set(err, CARVE_EINVAL, "action must be \"migrate\"");
	if (proto_get_name(obj, "target_node", false, m.mq_target, err) == -1 ||
	    proto_mig_limits(obj, &m.mq_max_downtime_ms, &m.mq_bandwidth_mibps,
	    &m.mq_timeout_s, err) == -1)
		return -1;
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_vm_migrate_req, struct proto_vm_migrate_req,
    PROTO_REQUEST_MAX)

json_object *
proto_vm_migrate_req_encode(const struct proto_vm_migrate_req *msg)
{
	json_object *o = proto_new_object();

	jsonx_add_string(o, "action", "migrate");
	if (msg->mq_target[0] != '\0')
		jsonx_add_string(o, "target_node", msg->mq_target);
	proto_add_limit(o, "max_downtime_ms", msg->mq_max_downtime_ms, false);
	proto_add_limit(o, "bandwidth_mibps", msg->mq_bandwidth_mibps, false);
	proto_add_limit(o, "timeout_s", msg->mq_timeout_s, false);
	return o;
}

static const char *const proto_migration_ref_keys[] = {
	"command_id", "migration_id", NULL
};

int
proto_migration_ref_decode(json_object *obj, struct proto_migration_ref *out,
    struct carve_error *err)
{
	struct proto_migration_ref m;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "migration reference",
	    proto_migration_ref_keys, err) == -1 ||
	    jsonx_get_uuid(obj, "command_id", true, m.mf_command_id,
	    err) == -1 ||
	    jsonx_get_uuid(obj, "migration_id", true, m.mf_migration_id,
	    err) == -1)
		return -1;
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_migration_ref, struct proto_migration_ref,
    PROTO_RESPONSE_MAX)

json_object *
proto_migration_ref_encode(const struct proto_migration_ref *msg)
{
	json_object *o = proto_new_object();

	jsonx_add_string(o, "command_id", msg->mf_command_id);
	jsonx_add_string(o, "migration_id", msg->mf_migration_id);
	return o;
}

static const char *const proto_migration_keys[] = {
	"id", "vm_id", "source", "target", "state", "reason",
	"max_downtime_ms", "bandwidth_mibps", "timeout_s", "commands",
	"cancel_requested", "progress", "result", "error", "started_at",
	"updated_at", "finished_at", NULL
};

static const char *const proto_mig_command_keys[] = {
	"prepare", "migrate", "finish", "cancel", NULL
};

/* A nullable UUID: present, null ("") or a UUID. */
static int
proto_get_uuid_or_null(json_object *obj, const char *key,
    char out[IDS_UUID_LEN + 1], struct carve_error *err)
{
	out[0] = '\0';
	if (proto_require_key(obj, key, err) == -1)
		return -1;
	return jsonx_get_uuid(obj, key, false, out, err);
}

static int
proto_mig_commands(json_object *obj, struct proto_migration *m,
    struct carve_error *err)
{
	struct carve_error sub = { 0 };
	json_object *c;

	if (jsonx_get_object(obj, "commands", true, &c, err) == -1)
		return -1;
	if (jsonx_check_object(c, "commands", proto_mig_command_keys,
	    &sub) == -1 ||
	    jsonx_get_uuid(c, "prepare", true, m->pm_prepare_cmd, &sub) == -1 ||
	    proto_get_uuid_or_null(c, "migrate", m->pm_migrate_cmd,
	    &sub) == -1 ||
	    proto_get_uuid_or_null(c, "finish", m->pm_finish_cmd, &sub) == -1 ||
	    proto_get_uuid_or_null(c, "cancel", m->pm_cancel_cmd, &sub) == -1)
		return proto_nested(err, &sub, "commands");
	return 0;
}

/* The nullable limits: present, null or in range. */
static int
proto_mig_record_limits(json_object *obj, struct proto_migration *m,
    struct carve_error *err)
{
	if (proto_require_key(obj, "max_downtime_ms", err) == -1 ||
	    proto_require_key(obj, "bandwidth_mibps", err) == -1 ||
	    proto_require_key(obj, "timeout_s", err) == -1)
		return -1;
	return proto_mig_limits(obj, &m->pm_max_downtime_ms,
	    &m->pm_bandwidth_mibps, &m->pm_timeout_s, err);
}

/* The nullable members: progress, result, error. */
static int
proto_mig_tail(json_object *obj, struct proto_migration *m,
    struct carve_error *err)
{
	struct carve_error sub = { 0 };
	json_object *res = NULL, *e = NULL, *pg = NULL;

	if (proto_require_key(obj, "progress", err) == -1 ||
	    proto_require_key(obj, "result", err) == -1 ||
	    proto_require_key(obj, "error", err) == -1 ||
	    jsonx_get_object(obj, "progress", false, &pg, err) == -1 ||
	    jsonx_get_object(obj, "result", false, &res, err) == -1 ||
	    jsonx_get_object(obj, "error", false, &e, err) == -1)
		return -1;
	if (e != NULL && proto_errobj_decode(e, "error", &m->pm_error,
	    err) == -1)
		return -1;
	if (pg != NULL) {
		if (proto_progress_decode(pg, &m->pm_progress, &sub) == -1)
			return proto_nested(err, &sub, "progress");
		m->pm_has_progress = true;
	}
	m->pm_result = json_object_get(res);
	return 0;
}

int
proto_migration_decode(json_object *obj, struct proto_migration *out,
    struct carve_error *err)
{
	struct proto_migration m;
	const char *state, *reason;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	if (jsonx_check_object(obj, "migration", proto_migration_keys,
	    err) == -1 ||
	    jsonx_get_uuid(obj, "id", true, m.pm_id, err) == -1 ||
	    jsonx_get_uuid(obj, "vm_id", true, m.pm_vm_id, err) == -1 ||
	    proto_get_name(obj, "source", true, m.pm_source, err) == -1 ||
	    proto_get_name(obj, "target", true, m.pm_target, err) == -1 ||
	    jsonx_get_string(obj, "state", true, PROTO_STATE_NAME_MAX, &state,
	    err) == -1)
		return -1;
	if (!proto_mig_state_valid(state))
		return error_set(err, CARVE_EINVAL, "state must be preparing, "
		    "migrating, finishing, done or failed");
	snprintf(m.pm_state, sizeof(m.pm_state), "%s", state);
	if (jsonx_get_string(obj, "reason", true, 16, &reason, err) == -1)
		return -1;
	if (strcmp(reason, "admin") != 0 && strcmp(reason, "evacuation") != 0)
		return error_set(err, CARVE_EINVAL, "reason must be \"admin\" "
		    "or \"evacuation\"");
	m.pm_evacuation = strcmp(reason, "evacuation") == 0;
	if (proto_mig_record_limits(obj, &m, err) == -1 ||
	    proto_mig_commands(obj, &m, err) == -1 ||
	    jsonx_get_bool(obj, "cancel_requested", true, &m.pm_cancel_requested,
	    err) == -1 ||
	    proto_get_time(obj, "started_at", false, &m.pm_started_at_ms,
	    err) == -1 ||
	    proto_get_time(obj, "updated_at", false, &m.pm_updated_at_ms,
	    err) == -1 ||
	    proto_get_time(obj, "finished_at", true, &m.pm_finished_at_ms,
	    err) == -1)
		return -1;
	if (proto_mig_tail(obj, &m, err) == -1) {
		proto_migration_clear(&m);
		return -1;
	}
	*out = m;
	return 0;
}

PROTO_DECODE_BUF(proto_migration, struct proto_migration, PROTO_RESPONSE_MAX)

static void
proto_add_id_or_null(json_object *o, const char *key, const char *id)
{
	if (id[0] == '\0')
		json_object_object_add(o, key, NULL);
	else
		jsonx_add_string(o, key, id);
}

json_object *
proto_migration_encode(const struct proto_migration *m)
{
	json_object *o = proto_new_object(), *c = proto_new_object();

	jsonx_add_string(o, "id", m->pm_id);
	jsonx_add_string(o, "vm_id", m->pm_vm_id);
	jsonx_add_string(o, "source", m->pm_source);
	jsonx_add_string(o, "target", m->pm_target);
	jsonx_add_string(o, "state", m->pm_state);
	jsonx_add_string(o, "reason", m->pm_evacuation ? "evacuation" :
	    "admin");
	proto_add_limit(o, "max_downtime_ms", m->pm_max_downtime_ms, true);
	proto_add_limit(o, "bandwidth_mibps", m->pm_bandwidth_mibps, true);
	proto_add_limit(o, "timeout_s", m->pm_timeout_s, true);
	jsonx_add_string(c, "prepare", m->pm_prepare_cmd);
	proto_add_id_or_null(c, "migrate", m->pm_migrate_cmd);
	proto_add_id_or_null(c, "finish", m->pm_finish_cmd);
	proto_add_id_or_null(c, "cancel", m->pm_cancel_cmd);
	json_object_object_add(o, "commands", c);
	jsonx_add_bool(o, "cancel_requested", m->pm_cancel_requested);
	json_object_object_add(o, "progress", m->pm_has_progress ?
	    proto_progress_encode(&m->pm_progress) : NULL);
	json_object_object_add(o, "result", json_object_get(m->pm_result));
	json_object_object_add(o, "error", m->pm_error.code != CARVE_OK ?
	    proto_errobj_encode(&m->pm_error) : NULL);
	jsonx_add_int(o, "started_at", m->pm_started_at_ms);
	jsonx_add_int(o, "updated_at", m->pm_updated_at_ms);
	proto_add_time_or_null(o, "finished_at", m->pm_finished_at_ms);
	return o;
}

void
proto_migration_clear(struct proto_migration *m)
{
	if (m == NULL)
		return;
	json_object_put(m->pm_result);
	proto_progress_clear(&m->pm_progress);
	memset(m, 0, sizeof(*m));
}

int
proto_migration_list_decode(json_object *arr, struct proto_migration **out,
    size_t *n, struct carve_error *err)
{
	struct carve_error sub = { 0 };
	struct proto_migration *ms = NULL;
	char where[32];
	size_t len;

	*out = NULL;
	*n = 0;
	if (!json_object_is_type(arr, json_type_array))
		return error_set(err, CARVE_EINVAL,
		    "migration list must be a JSON array");
	len = json_object_array_length(arr);
	if (len > 0)
		ms = xcalloc(len, sizeof(*ms));
	for (size_t i = 0; i < len; i++)
		if (proto_migration_decode(json_object_array_get_idx(arr, i),
		    &ms[i], &sub) == -1) {
			proto_migration_list_free(ms, i);
			snprintf(where, sizeof(where), "[%zu]", i);
			return proto_nested(err, &sub, where);
		}
	*out = ms;
	*n = len;
	return 0;
}

json_object *
proto_migration_list_encode(const struct proto_migration *ms, size_t n)
{
	json_object *arr = proto_new_array();

	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, proto_migration_encode(&ms[i]));
	return arr;
}

void
proto_migration_list_free(struct proto_migration *ms, size_t n)
{
	for (size_t i = 0; i < n; i++)
		proto_migration_clear(&ms[i]);
	free(ms);
}
