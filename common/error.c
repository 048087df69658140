/* Coded errors: see error.h. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "text.h"

static const char *const error_names[CARVE_ECODE_MAX] = {
	[CARVE_OK] = "ok",
	[CARVE_EINVAL] = "invalid_argument",
	[CARVE_ENOTFOUND] = "not_found",
	[CARVE_ECONFLICT] = "conflict",
	[CARVE_ECAPACITY] = "insufficient_capacity",
	[CARVE_EHYPERVISOR] = "hypervisor_error",
	[CARVE_EUNAVAIL] = "unavailable",
	[CARVE_EPERM] = "permission_denied",
	[CARVE_EINTERNAL] = "internal_error",
	[CARVE_EUNAUTH] = "unauthenticated",
	[CARVE_ETOOBIG] = "payload_too_large",
};

static void
error_vfill(struct carve_error *err, enum carve_errcode code, const char *fmt,
    va_list ap)
{
	err->code = code;
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	/* Messages travel in JSON, whose decoders refuse invalid UTF-8. */
	text_utf8_fix(err->message);
}

int
error_set(struct carve_error *err, enum carve_errcode code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err->code != CARVE_OK)
		return -1;
	va_start(ap, fmt);
	error_vfill(err, code, fmt, ap);
	va_end(ap);
	return -1;
}

int
error_reset(struct carve_error *err, enum carve_errcode code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	error_vfill(err, code, fmt, ap);
	va_end(ap);
	return -1;
}

void
error_clear(struct carve_error *err)
{
	if (err == NULL)
		return;
	err->code = CARVE_OK;
	err->message[0] = '\0';
}

bool
error_isset(const struct carve_error *err)
{
	return err != NULL && err->code != CARVE_OK;
}

const char *
error_code_name(enum carve_errcode code)
{
	if ((int)code < 0 || code >= CARVE_ECODE_MAX)
		return "internal_error";
	return error_names[code];
}

enum carve_errcode
error_code_parse(const char *name)
{
	for (int i = 0; i < CARVE_ECODE_MAX; i++)
		if (strcmp(error_names[i], name) == 0)
			return (enum carve_errcode)i;
	return CARVE_EINTERNAL;
}
