/*
 * carve-cp's HTTPS front: libevent's evhttp over OpenSSL bufferevents on the
 * loop, TLS >= 1.2 with client certificates requested and checked against
 * the CA, a route table that says per endpoint which credential it takes
 * (bootstrap token, admin token, node certificate), bodies capped at
 * PROTO_REQUEST_MAX, and the reply helpers every handler uses.
 */
#ifndef CARVE_CP_HTTP_H
#define CARVE_CP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "api/cp/cp.h"
#include "common/error.h"
#include "common/ids.h"

struct evhttp_request;

#define CP_HTTP_MAX_ARGS	2
/* A path wildcard holds a node name or a UUID. */
#define CP_HTTP_ARG_MAX		IDS_NAME_MAX

/* One request as a handler sees it; lives for the handler call only. */
struct cp_req {
	struct cp		*rq_cp;
	struct evhttp_request	*rq_req;
	const char		*rq_method;
	const char		*rq_path;
	const char		*rq_query;	/* after '?', or NULL */
	/* The path's wildcard segments, in order. */
	char			 rq_arg[CP_HTTP_MAX_ARGS][CP_HTTP_ARG_MAX + 1];
	/* The client certificate's node name; "" when none was checked. */
	char			 rq_node[IDS_NAME_MAX + 1];
	const char		*rq_body;	/* not NUL-terminated */
	size_t			 rq_body_len;
	int64_t			 rq_started_ms;	/* monotonic */
	bool			 rq_quiet;	/* log success at debug level */
};

/*
 * A handler answers with cp_http_reply (or parks the request and answers it
 * later with cp_http_send) and returns 0, or returns -1 with err set and the
 * dispatcher answers with the error body and its status.
 */
typedef int (*cp_handler_fn)(struct cp_req *r, struct carve_error *err);

/*
 * Set up TLS from the directory's server.crt, server.key and ca.crt, and
 * listen on cp->cp_conf.cf_listen (port 0 picks one; the log line says
 * which). Sets cp->cp_http.
 */
int cp_http_start(struct cp *cp, struct carve_error *err);
/* Stop listening and close every connection. NULL is a no-op. */
void cp_http_free(struct cp_http *h);

/*
 * The path's wildcard i as a UUID, lower-cased into out; CARVE_EINVAL when
 * it is not one.
 */
int cp_req_uuid(const struct cp_req *r, int i, char out[IDS_UUID_LEN + 1],
    struct carve_error *err);

/* Answer r with status and body (consumed: the reference is put). */
void cp_http_reply(struct cp_req *r, int status, json_object *body);
/*
 * Answer a request outside its handler (a parked long poll): who and
 * started_ms only feed the access log line.
 */
void cp_http_send(struct evhttp_request *req, const char *who,
    int64_t started_ms, int status, json_object *body);

#endif
