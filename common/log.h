/*
 * logfmt lines on stderr (journald keeps them):
 *   ts=2026-11-25T13:00:00.123Z level=info comp=virt msg="connected" uri=test:///default
 * Safe to call from any thread: each line is written with a single write(2).
 * The level can be changed at run time (carvectl log-level).
 */
#ifndef CARVE_LOG_H
#define CARVE_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LVL_DEBUG = 0,
	LOG_LVL_INFO,
	LOG_LVL_WARN,
	LOG_LVL_ERROR,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Returns 0 and sets *out for "debug", "info", "warn", "error"; -1 otherwise. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

/*
 * Log one line. fmt formats the human message (quoted as msg="..."). Extra
 * logfmt fields may follow as NULL-terminated key/value string pairs passed
 * to log_kv; values are quoted and escaped as needed.
 */
void log_msg(enum log_level level, const char *comp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, const char *comp, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* log_kv(LOG_LVL_INFO, "cmd", "command done", "id", id, "status", st, NULL) */
void log_kv(enum log_level level, const char *comp, const char *msg, ...)
    __attribute__((sentinel));

#define log_debug(comp, ...) log_msg(LOG_LVL_DEBUG, comp, __VA_ARGS__)
#define log_info(comp, ...)  log_msg(LOG_LVL_INFO, comp, __VA_ARGS__)
#define log_warn(comp, ...)  log_msg(LOG_LVL_WARN, comp, __VA_ARGS__)
#define log_error(comp, ...) log_msg(LOG_LVL_ERROR, comp, __VA_ARGS__)

#endif
