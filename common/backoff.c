/*
 * Exponential backoff with full jitter: see backoff.h.
 *
 * The random source is a per-thread splitmix64 generator seeded once from
 * getrandom(2). Jitter needs spread, not secrecy, so a syscall or a CSPRNG
 * per draw would buy nothing; keeping the state per thread makes
 * backoff_next safe to call from any thread without a lock, and leaves
 * struct backoff a plain value.
 */
#include "config.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"

static _Thread_local uint64_t backoff_rng_state;
static _Thread_local bool backoff_rng_seeded;

static void
backoff_rng_seed(void)
{
	uint64_t seed;
	struct timespec ts;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
		/*
		 * Only before the kernel pool is initialised (early boot) or on
		 * a kernel without getrandom: fall back to values that still
		 * differ between hosts and threads, which is all jitter needs.
		 */
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = ((uint64_t)ts.tv_sec * 1000000007ULL) ^
		    (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^
		    (uint64_t)(uintptr_t)&seed;
	}
	backoff_rng_state = seed;
	backoff_rng_seeded = true;
}

/* splitmix64 (Steele, Lea, Flood 2014): every seed, even 0, is fine. */
static uint64_t
backoff_rng_next(void)
{
	uint64_t z;

	if (!backoff_rng_seeded)
		backoff_rng_seed();
	z = (backoff_rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, hi], without the bias of a plain modulo. */
static uint64_t
backoff_uniform(uint64_t hi)
{
	uint64_t range, threshold, r;

	if (hi == UINT64_MAX)
		return backoff_rng_next();
	range = hi + 1;
	/* 2^64 mod range: the draws below it would favour small values. */
	threshold = -range % range;
	do {
		r = backoff_rng_next();
	} while (r < threshold);
	return r % range;
}

/* min(cap, base * 2^attempt), computed without overflowing. */
static uint64_t
backoff_ceiling(const struct backoff *bo)
{
	if (bo->bo_base_ms == 0)
		return 0;
	if (bo->bo_attempt >= 64 ||
	    bo->bo_base_ms > (bo->bo_cap_ms >> bo->bo_attempt))
		return bo->bo_cap_ms;
	return bo->bo_base_ms << bo->bo_attempt;
}

void
backoff_init(struct backoff *bo, uint64_t base_ms, uint64_t cap_ms)
{
	bo->bo_base_ms = base_ms;
	bo->bo_cap_ms = cap_ms;
	bo->bo_attempt = 0;
}

uint64_t
backoff_next(struct backoff *bo)
{
	uint64_t delay = backoff_uniform(backoff_ceiling(bo));

	/* Saturate: an agent retrying forever must not wrap back to 0. */
	if (bo->bo_attempt < UINT_MAX)
		bo->bo_attempt++;
	/* A 0 ms timer would spin the loop; 1 ms is the smallest real wait. */
	return delay < 1 ? 1 : delay;
}

void
backoff_reset(struct backoff *bo)
{
	bo->bo_attempt = 0;
}
