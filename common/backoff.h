/*
 * Exponential backoff with full jitter (AWS architecture blog, "Exponential
 * Backoff And Jitter"): the n-th delay is uniform in [0, min(cap, base*2^n)],
 * so a fleet of agents reconnecting after an outage spreads out instead of
 * stampeding.
 */
#ifndef CARVE_BACKOFF_H
#define CARVE_BACKOFF_H

#include <stdint.h>

struct backoff {
	uint64_t bo_base_ms;
	uint64_t bo_cap_ms;
	unsigned bo_attempt;
};

void backoff_init(struct backoff *bo, uint64_t base_ms, uint64_t cap_ms);
/* Returns the next delay in milliseconds (at least 1) and advances. */
uint64_t backoff_next(struct backoff *bo);
void backoff_reset(struct backoff *bo);

#endif
