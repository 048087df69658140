/* Small text helpers shared by every encoder and error path: see text.h. */
#include "config.h"

#include <string.h>

#include "text.h"

/*
 * Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0 if
 * there is none: no overlong forms, no surrogates, nothing above U+10FFFF
 * (RFC 3629 table 3-7).
 */
size_t
text_utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

void
text_utf8_fix(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t n = strlen(s), i = 0, k;

	while (i < n) {
		if ((k = text_utf8_seq(p + i, n - i)) == 0) {
			p[i++] = '?';
			continue;
		}
		i += k;
	}
}

void
text_quote(const char *s, size_t max, char *out, size_t outsz)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 4 < outsz; i++) {
		unsigned char c = (unsigned char)s[i];
		if (i == max) {
			memcpy(out + i, "...", 3);
			i += 3;
			break;
		}
		out[i] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ?
		    (char)c : '?';
	}
	out[i] = '\0';
}
