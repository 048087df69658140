/*
 * Text helpers for everything that builds JSON or error messages from bytes
 * of unknown origin: UTF-8 well-formedness (JSON decoders refuse anything
 * else, so encoders must never emit it) and quoting of hostile values.
 */
#ifndef CARVE_TEXT_H
#define CARVE_TEXT_H

#include <stddef.h>

/*
 * Length (1..4) of the well-formed UTF-8 sequence at p (at most n bytes), or
 * 0 if there is none (RFC 3629: no overlong forms, surrogates or code
 * points above U+10FFFF).
 */
size_t text_utf8_seq(const unsigned char *p, size_t n);

/*
 * Make s valid UTF-8 in place: each byte that starts no well-formed sequence
 * becomes '?'. Error messages carry bytes from anywhere (a libvirt message
 * quoting a file name, a message cut in the middle of a character).
 */
void text_utf8_fix(char *s);

/*
 * Copy s into out for an error message: printable ASCII only (anything else,
 * and quotes and backslashes, become '?'), cut after max bytes with "...",
 * so a hostile value can neither forge log fields nor flood a message.
 * outsz should be at least max + 4.
 */
void text_quote(const char *s, size_t max, char *out, size_t outsz);

#endif
