/*
 * A string-keyed hash map (separate chaining, FNV-1a, grows at load 1).
 * Keys are copied; values are borrowed pointers whose lifetime the caller
 * manages. Not thread-safe: owned by whoever owns the data (the loop).
 */
#ifndef CARVE_STRMAP_H
#define CARVE_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

struct strmap;

struct strmap *strmap_new(void);
/* Frees the map and its keys; values are untouched. NULL is a no-op. */
void strmap_free(struct strmap *m);
/* Insert or replace; returns the previous value or NULL. */
void *strmap_put(struct strmap *m, const char *key, void *val);
void *strmap_get(const struct strmap *m, const char *key);
/* Remove key; returns its value or NULL. */
void *strmap_del(struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);

/* Iterate: for (it = strmap_iter(m); strmap_next(m, &it, &k, &v); ) ... */
struct strmap_iter {
	size_t bucket;
	void *node;
};
struct strmap_iter strmap_iter(const struct strmap *m);
/* Deleting the current key while iterating is allowed; other edits are not. */
bool strmap_next(const struct strmap *m, struct strmap_iter *it,
    const char **key, void **val);

#endif
