/* logfmt logging to stderr: see log.h. */
#include "config.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static _Atomic int log_threshold = LOG_LVL_INFO;

static const char *const log_names[] = { "debug", "info", "warn", "error" };

void
log_set_level(enum log_level level)
{
	atomic_store(&log_threshold, (int)level);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load(&log_threshold);
}

int
log_level_parse(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strcmp(name, log_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	if ((int)level < 0 || level > LOG_LVL_ERROR)
		return "unknown";
	return log_names[level];
}

/* A growable line buffer on the stack; lines longer than it are truncated. */
struct log_line {
	char buf[4096];
	size_t len;
};

static void
line_putc(struct log_line *l, char c)
{
	if (l->len + 2 < sizeof(l->buf))
		l->buf[l->len++] = c;
}

static void
line_puts(struct log_line *l, const char *s)
{
	while (*s)
		line_putc(l, *s++);
}

/* Append a logfmt value, quoted when it holds spaces, quotes, '=' or controls. */
static void
line_value(struct log_line *l, const char *v)
{
	bool quote = (*v == '\0');

	for (const char *p = v; *p; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' ||
		    (unsigned char)*p < 0x20 || *p == 0x7f)
			quote = true;
	if (!quote) {
		line_puts(l, v);
		return;
	}
	line_putc(l, '"');
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		switch (*p) {
		case '"': line_puts(l, "\\\""); break;
		case '\\': line_puts(l, "\\\\"); break;
		case '\n': line_puts(l, "\\n"); break;
		case '\r': line_puts(l, "\\r"); break;
		case '\t': line_puts(l, "\\t"); break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				char hex[8];
				snprintf(hex, sizeof(hex), "\\x%02x", *p);
				line_puts(l, hex);
			} else {
				line_putc(l, (char)*p);
			}
		}
	}
	line_putc(l, '"');
}

static void
line_begin(struct log_line *l, enum log_level level, const char *comp)
{
	struct timeval tv;
	struct tm tm;
	char ts[64];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000));
	l->len = 0;
	line_puts(l, "ts=");
	line_puts(l, ts);
	line_puts(l, " level=");
	line_puts(l, log_level_name(level));
	line_puts(l, " comp=");
	line_value(l, comp);
}

static void
line_end(struct log_line *l)
{
	ssize_t n;
	size_t off = 0;

	l->buf[l->len++] = '\n';
	while (off < l->len) {
		n = write(STDERR_FILENO, l->buf + off, l->len - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
}

void
log_vmsg(enum log_level level, const char *comp, const char *fmt, va_list ap)
{
	struct log_line l;
	char msg[2048];

	if ((int)level < atomic_load(&log_threshold))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	line_begin(&l, level, comp);
	line_puts(&l, " msg=");
	line_value(&l, msg);
	line_end(&l);
}

void
log_msg(enum log_level level, const char *comp, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, comp, fmt, ap);
	va_end(ap);
}

void
log_kv(enum log_level level, const char *comp, const char *msg, ...)
{
	struct log_line l;
	va_list ap;
	const char *k, *v;

	if ((int)level < atomic_load(&log_threshold))
		return;
	line_begin(&l, level, comp);
	line_puts(&l, " msg=");
	line_value(&l, msg);
	va_start(ap, msg);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		line_putc(&l, ' ');
		line_puts(&l, k);
		line_putc(&l, '=');
		line_value(&l, v ? v : "");
	}
	va_end(ap);
	line_end(&l);
}
