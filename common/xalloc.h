/*
 * Allocation wrappers. Running out of memory is fatal: a daemon that cannot
 * allocate cannot do anything useful, and NULL checks that can never be
 * exercised only hide bugs (tmux's xmalloc.c takes the same stance).
 */
#ifndef CARVE_XALLOC_H
#define CARVE_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Overwrite then free memory that held a secret. */
void xfree_secret(char *s);

#endif
