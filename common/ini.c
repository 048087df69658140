/*
 * The strict INI reader: see ini.h. The whole input is checked line by line
 * before anything reaches the callback for that line, and every error names
 * file:line, because the operator reading it has only the file to go on.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ini.h"
#include "strmap.h"
#include "xalloc.h"

#define INI_LINE_MAX 4096	/* bytes, not counting the line ending */

struct ini_parser {
	const char *ip_file;
	unsigned ip_line;
	char ip_section[INI_LINE_MAX + 1];
	bool ip_in_section;
	/* "section key" -> line number where it was first set */
	struct strmap *ip_seen;
	ini_key_cb ip_cb;
	void *ip_arg;
};

static int
ini_error(struct ini_parser *p, struct carve_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
ini_error(struct ini_parser *p, struct carve_error *err, const char *fmt, ...)
{
	char msg[CARVE_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return error_set(err, CARVE_EINVAL, "%s:%u: %s", p->ip_file, p->ip_line,
	    msg);
}

static bool
ini_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Section names and keys share one alphabet; nothing in it needs quoting. */
static bool
ini_is_name(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

/* Trim blanks in place; returns the start, shortens *len. */
static char *
ini_trim(char *s, size_t *len)
{
	while (*len > 0 && ini_is_blank(s[0])) {
		s++;
		(*len)--;
	}
	while (*len > 0 && ini_is_blank(s[*len - 1]))
		(*len)--;
	s[*len] = '\0';
	return s;
}

/*
 * Unquote a "..." value in place. Only \" and \\ are escapes: a config file
 * is not a programming language, and anything richer invites surprises.
 */
static int
ini_unquote(struct ini_parser *p, char *v, size_t len, struct carve_error *err)
{
	size_t o = 0;
	size_t i;

	for (i = 1; i < len; i++) {
		if (v[i] == '"')
			break;
		if (v[i] == '\\') {
			if (i + 1 >= len || (v[i + 1] != '"' && v[i + 1] != '\\'))
				return ini_error(p, err, "unknown escape in quoted "
				    "value (only \\\" and \\\\ are allowed)");
			i++;
		}
		v[o++] = v[i];
	}
	if (i >= len)
		return ini_error(p, err, "unterminated quoted value");
	if (i != len - 1)
		return ini_error(p, err, "text after the closing quote");
	v[o] = '\0';
	return 0;
}

static int
ini_section(struct ini_parser *p, char *s, size_t len, struct carve_error *err)
{
	if (len < 2 || s[len - 1] != ']' || !ini_is_name(s + 1, len - 2))
		return ini_error(p, err, "malformed section header (expected "
		    "\"[name]\" with a name of letters, digits, '_', '.' or '-')");
	memcpy(p->ip_section, s + 1, len - 2);
	p->ip_section[len - 2] = '\0';
	p->ip_in_section = true;
	return 0;
}

static int
ini_key(struct ini_parser *p, char *s, size_t len, struct carve_error *err)
{
	struct carve_error cberr = { 0 };
	char *eq, *key, *val, *id;
	size_t klen, vlen;
	void *first;

	if ((eq = memchr(s, '=', len)) == NULL)
		return ini_error(p, err, "malformed line (expected \"key = "
		    "value\", \"[section]\" or a comment)");
	klen = (size_t)(eq - s);
	key = ini_trim(s, &klen);
	vlen = len - (size_t)(eq + 1 - s);
	val = ini_trim(eq + 1, &vlen);
	if (!ini_is_name(key, klen))
		return ini_error(p, err, "malformed key \"%s\" (expected "
		    "letters, digits, '_', '.' or '-')", key);
	if (!p->ip_in_section)
		return ini_error(p, err, "key \"%s\" outside any section", key);
	if (vlen > 0 && val[0] == '"' && ini_unquote(p, val, vlen, err) == -1)
		return -1;

	id = xasprintf("%s %s", p->ip_section, key);
	first = strmap_get(p->ip_seen, id);
	if (first != NULL) {
		free(id);
		return ini_error(p, err, "duplicate key \"%s\" in section [%s] "
		    "(first set on line %u)", key, p->ip_section,
		    (unsigned)(uintptr_t)first);
	}
	strmap_put(p->ip_seen, id, (void *)(uintptr_t)p->ip_line);
	free(id);

	if (p->ip_cb(p->ip_section, key, val, p->ip_line, &cberr, p->ip_arg) != 0) {
		if (!error_isset(&cberr))
			error_set(&cberr, CARVE_EINTERNAL, "key \"%s\" rejected "
			    "without a reason", key);
		return error_set(err, cberr.code, "%s:%u: %s", p->ip_file,
		    p->ip_line, cberr.message);
	}
	return 0;
}

/* line is NUL-terminated at len and holds no line ending. */
static int
ini_line(struct ini_parser *p, char *line, size_t len, struct carve_error *err)
{
	char *s;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c == '\0')
			return ini_error(p, err, "NUL byte in line");
		/* A stray control character is a corrupt or binary file. */
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return ini_error(p, err, "control character 0x%02x in "
			    "line", c);
	}
	s = ini_trim(line, &len);
	if (len == 0 || s[0] == '#' || s[0] == ';')
		return 0;
	if (s[0] == '[')
		return ini_section(p, s, len, err);
	return ini_key(p, s, len, err);
}

int
ini_parse_buf(const char *buf, size_t len, const char *filename,
    ini_key_cb cb, struct carve_error *err, void *arg)
{
	struct ini_parser p = { 0 };
	char line[INI_LINE_MAX + 2];
	size_t pos = 0;
	int rc = 0;

	p.ip_file = filename != NULL ? filename : "<config>";
	p.ip_cb = cb;
	p.ip_arg = arg;
	if (len > INI_MAX_BYTES)
		return error_set(err, CARVE_EINVAL, "%s: file is larger than %d "
		    "bytes", p.ip_file, INI_MAX_BYTES);

	p.ip_seen = strmap_new();
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - buf) : len;
		size_t llen = end - pos;

		p.ip_line++;
		if (llen > 0 && buf[end - 1] == '\r')
			llen--;
		if (llen > INI_LINE_MAX) {
			rc = ini_error(&p, err, "line is longer than %d bytes",
			    INI_LINE_MAX);
			break;
		}
		memcpy(line, buf + pos, llen);
		line[llen] = '\0';
		if ((rc = ini_line(&p, line, llen, err)) != 0)
			break;
		pos = end + 1;
	}
	strmap_free(p.ip_seen);
	return rc;
}

int
ini_parse_file(const char *path, ini_key_cb cb, struct carve_error *err,
    void *arg)
{
	size_t cap = 16384, len = 0;
	char *buf;
	ssize_t n;
	int fd, rc;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return error_set(err, CARVE_EINVAL, "cannot read %s: %s", path,
		    strerror(errno));
	buf = xmalloc(cap);
	/* Read one byte past the limit so an oversized file is noticed. */
	for (;;) {
		if (len == cap) {
			if (cap > INI_MAX_BYTES)
				break;
			cap *= 2;
			if (cap > INI_MAX_BYTES + 1)
				cap = INI_MAX_BYTES + 1;
			buf = xrealloc(buf, cap);
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			rc = error_set(err, CARVE_EINVAL, "cannot read %s: %s",
			    path, strerror(errno));
			goto cleanup;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	rc = ini_parse_buf(buf, len, path, cb, err, arg);
cleanup:
	close(fd);
	free(buf);
	return rc;
}
