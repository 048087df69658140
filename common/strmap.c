/* String-keyed hash map: see strmap.h. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"
#include "xalloc.h"

struct strmap_node {
	struct strmap_node *next;
	char *key;
	void *val;
	uint64_t hash;
};

struct strmap {
	struct strmap_node **buckets;
	size_t nbuckets;
	size_t count;
};

static uint64_t
strmap_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

struct strmap *
strmap_new(void)
{
	struct strmap *m = xcalloc(1, sizeof(*m));

	m->nbuckets = 16;
	m->buckets = xcalloc(m->nbuckets, sizeof(*m->buckets));
	return m;
}

void
strmap_free(struct strmap *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct strmap_node *n = m->buckets[i], *next;
		for (; n != NULL; n = next) {
			next = n->next;
			free(n->key);
			free(n);
		}
	}
	free(m->buckets);
	free(m);
}

static void
strmap_grow(struct strmap *m)
{
	size_t nb = m->nbuckets * 2;
	struct strmap_node **b = xcalloc(nb, sizeof(*b));

	for (size_t i = 0; i < m->nbuckets; i++) {
		struct strmap_node *n = m->buckets[i], *next;
		for (; n != NULL; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = nb;
}

static struct strmap_node **
strmap_find(const struct strmap *m, const char *key, uint64_t h)
{
	struct strmap_node **pp = &m->buckets[h & (m->nbuckets - 1)];

	for (; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
			break;
	return pp;
}

void *
strmap_put(struct strmap *m, const char *key, void *val)
{
	uint64_t h = strmap_hash(key);
	struct strmap_node **pp = strmap_find(m, key, h), *n;
	void *old;

	if (*pp != NULL) {
		old = (*pp)->val;
		(*pp)->val = val;
		return old;
	}
	if (m->count >= m->nbuckets) {
		strmap_grow(m);
		pp = strmap_find(m, key, h);
	}
	n = xcalloc(1, sizeof(*n));
	n->key = xstrdup(key);
	n->val = val;
	n->hash = h;
	*pp = n;
	m->count++;
	return NULL;
}

void *
strmap_get(const struct strmap *m, const char *key)
{
	struct strmap_node **pp = strmap_find(m, key, strmap_hash(key));

	return *pp ? (*pp)->val : NULL;
}

void *
strmap_del(struct strmap *m, const char *key)
{
	struct strmap_node **pp = strmap_find(m, key, strmap_hash(key)), *n;
	void *val;

	if (*pp == NULL)
		return NULL;
	n = *pp;
	*pp = n->next;
	val = n->val;
	free(n->key);
	free(n);
	m->count--;
	return val;
}

size_t
strmap_count(const struct strmap *m)
{
	return m->count;
}

struct strmap_iter
strmap_iter(const struct strmap *m)
{
	struct strmap_iter it = { 0, NULL };

	(void)m;
	return it;
}

bool
strmap_next(const struct strmap *m, struct strmap_iter *it, const char **key,
    void **val)
{
	struct strmap_node *n = it->node;

	/* it->node is the node to visit next within bucket it->bucket - 1. */
	while (n == NULL) {
		if (it->bucket >= m->nbuckets)
			return false;
		n = m->buckets[it->bucket++];
	}
	it->node = n->next;
	if (key)
		*key = n->key;
	if (val)
		*val = n->val;
	return true;
}
