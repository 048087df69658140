/*
 * The error type every layer above the syscalls fills once, where the error
 * happens, and every caller only propagates (libvirt's virReportError model).
 * Codes are stable: they reach the control plane and the operator as strings.
 */
#ifndef CARVE_ERROR_H
#define CARVE_ERROR_H

#include <stdbool.h>

enum carve_errcode {
	CARVE_OK = 0,
	CARVE_EINVAL,      /* invalid_argument */
	CARVE_ENOTFOUND,   /* not_found */
	CARVE_ECONFLICT,   /* conflict */
	CARVE_ECAPACITY,   /* insufficient_capacity */
	CARVE_EHYPERVISOR, /* hypervisor_error */
	CARVE_EUNAVAIL,    /* unavailable: try again later (e.g. libvirt down) */
	CARVE_EPERM,       /* permission_denied */
	CARVE_EINTERNAL,   /* internal_error */
	CARVE_EUNAUTH,     /* unauthenticated: no or bad credentials */
	CARVE_ETOOBIG,     /* payload_too_large */
	CARVE_ECODE_MAX
};

#define CARVE_ERRMSG_MAX 512

struct carve_error {
	enum carve_errcode code;
	char message[CARVE_ERRMSG_MAX];
};

/*
 * Fill err (which may be NULL) with code and a formatted message. Returns -1
 * so callers can write "return error_set(err, ...);". An error already set is
 * kept: the first (innermost) report wins.
 */
int error_set(struct carve_error *err, enum carve_errcode code,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Like error_set but overwrites an error already present. */
int error_reset(struct carve_error *err, enum carve_errcode code,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void error_clear(struct carve_error *err);
bool error_isset(const struct carve_error *err);

/* "invalid_argument" etc.; never NULL. */
const char *error_code_name(enum carve_errcode code);
/* Returns the code for a name, or CARVE_EINTERNAL for an unknown one. */
enum carve_errcode error_code_parse(const char *name);

#endif
