/*
 * A strict INI reader: "[section]", "key = value", '#' or ';' comments, blank
 * lines. Errors carry "file:line". Duplicate keys within a section and keys
 * outside any section are errors; values are trimmed, and may be wrapped in
 * double quotes to keep leading/trailing spaces. Written by hand rather than
 * with libinih because carve needs file:line on every semantic error (raised
 * from the callback) and duplicate detection, which inih's stock build
 * does not give.
 */
#ifndef CARVE_INI_H
#define CARVE_INI_H

#include <stddef.h>

#include "error.h"

#define INI_MAX_BYTES (1024 * 1024)

/*
 * Called once per key. Return 0 to continue; -1 with err set (message without
 * the location: ini adds "file:line: ") to stop.
 */
typedef int (*ini_key_cb)(const char *section, const char *key,
    const char *value, unsigned line, struct carve_error *err, void *arg);

int ini_parse_buf(const char *buf, size_t len, const char *filename,
    ini_key_cb cb, struct carve_error *err, void *arg);
/* Reads at most INI_MAX_BYTES from path. */
int ini_parse_file(const char *path, ini_key_cb cb, struct carve_error *err,
    void *arg);

#endif
