/* Coded errors: see error.h. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

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

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t
utf8_seq_len(const unsigned char *s)
{
	size_t n;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/*
 * Messages travel in JSON (results, the journal), whose decoders refuse
 * invalid UTF-8: a message that libvirt filled with a stray byte, or that
 * vsnprintf cut in the middle of a character, must not make a result
 * unreadable. Replace every invalid byte with '?'.
 */
static void
error_sanitize(char *msg)
{
	unsigned char *p = (unsigned char *)msg;
	size_t n;

	while (*p) {
		n = utf8_seq_len(p);
		if (n == 0) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

static void
error_vfill(struct carve_error *err, enum carve_errcode code, const char *fmt,
    va_list ap)
{
	err->code = code;
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	error_sanitize(err->message);
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
