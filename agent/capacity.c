/*
 * Capacity arithmetic: see capacity.h. Everything saturates instead of
 * wrapping, and the one floating-point step (the allocation ratio) is
 * converted back to an integer without undefined behaviour for any input.
 */
#include "config.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>

#include "capacity.h"

static const char *const class_names[CAP_NCLASSES] = {
	[CAP_VCPU] = "VCPU",
	[CAP_MEMORY_MIB] = "MEMORY_MIB",
	[CAP_DISK_GIB] = "DISK_GIB",
};

/* 2^64 exactly: the first double that no longer fits in a uint64_t. */
#define TWO_POW_64 18446744073709551616.0

const char *
capacity_class_name(enum cap_class c)
{
	if ((unsigned)c >= CAP_NCLASSES)
		return "UNKNOWN";
	return class_names[c];
}

uint64_t
capacity_allocatable(const struct cap_inventory *inv)
{
	uint64_t base;
	double p, up, slack;

	if (inv->reserved >= inv->total)
		return 0;
	base = inv->total - inv->reserved;
	/* Exact for any size, where the double product would round. */
	if (inv->ratio == 1.0)
		return base;
	/* NaN, zero and negative ratios allocate nothing. */
	if (!(inv->ratio > 0.0))
		return 0;

	p = (double)base * inv->ratio;
	if (p >= TWO_POW_64)
		return UINT64_MAX;
	/*
	 * Ratios are written in decimal and few are exact in binary: 100 CPUs
	 * at 0.29 give 28.999999999999996 and a plain floor would lose a CPU
	 * the operator configured. A product within rounding error below an
	 * integer counts as that integer; the slack is a few ulps and never
	 * more than 1e-6, far less than any real fractional part.
	 */
	up = ceil(p);
	slack = fmin(p * 4 * DBL_EPSILON, 1e-6);
	if (up - p <= slack && up < TWO_POW_64)
		p = up;
	return (uint64_t)floor(p);
}

uint64_t
capacity_free(const struct cap_inventory *inv)
{
	uint64_t a = capacity_allocatable(inv);

	return a > inv->allocated ? a - inv->allocated : 0;
}

int
capacity_admit(const struct capacity *cap, const struct cap_request *req,
    struct carve_error *err)
{
	/* "Can never fit" is the more useful answer, so it is checked first. */
	for (int c = 0; c < CAP_NCLASSES; c++) {
		uint64_t want = req->amount[c];
		uint64_t most = capacity_allocatable(&cap->cap[c]);

		if (want > most)
			return error_set(err, CARVE_EINVAL,
			    "%s %" PRIu64 " exceeds what this host can ever "
			    "allocate (%" PRIu64 ")", class_names[c], want, most);
	}
	for (int c = 0; c < CAP_NCLASSES; c++) {
		uint64_t want = req->amount[c];
		uint64_t avail = capacity_free(&cap->cap[c]);

		if (want > avail)
			return error_set(err, CARVE_ECAPACITY,
			    "insufficient %s: requested %" PRIu64 ", free %" PRIu64
			    " of %" PRIu64, class_names[c], want, avail,
			    capacity_allocatable(&cap->cap[c]));
	}
	return 0;
}

void
capacity_add(struct capacity *cap, const struct cap_request *req)
{
	for (int c = 0; c < CAP_NCLASSES; c++) {
		uint64_t *a = &cap->cap[c].allocated;

		*a = req->amount[c] > UINT64_MAX - *a ? UINT64_MAX :
		    *a + req->amount[c];
	}
}

void
capacity_growth(const struct cap_request *cur,
    const struct cap_request *targets, size_t n, struct cap_request *out)
{
	for (int c = 0; c < CAP_NCLASSES; c++) {
		uint64_t peak = cur->amount[c];

		for (size_t i = 0; i < n; i++)
			if (targets[i].amount[c] > peak)
				peak = targets[i].amount[c];
		out->amount[c] = peak - cur->amount[c];
	}
}

int
capacity_admit_growth(const struct capacity *cap,
    const struct cap_request *target, const struct cap_request *need,
    struct carve_error *err)
{
	for (int c = 0; c < CAP_NCLASSES; c++) {
		uint64_t most = capacity_allocatable(&cap->cap[c]);

		if (target->amount[c] > most)
			return error_set(err, CARVE_EINVAL,
			    "%s %" PRIu64 " exceeds what this host can ever "
			    "allocate (%" PRIu64 ")", class_names[c],
			    target->amount[c], most);
	}
	for (int c = 0; c < CAP_NCLASSES; c++) {
		uint64_t avail = capacity_free(&cap->cap[c]);

		if (need->amount[c] > avail)
			return error_set(err, CARVE_ECAPACITY,
			    "insufficient %s to grow the VM to %" PRIu64 ": it "
			    "needs %" PRIu64 " more, free %" PRIu64 " of %" PRIu64,
			    class_names[c], target->amount[c], need->amount[c],
			    avail, capacity_allocatable(&cap->cap[c]));
	}
	return 0;
}

void
capacity_sub(struct capacity *cap, const struct cap_request *req)
{
	for (int c = 0; c < CAP_NCLASSES; c++) {
		uint64_t *a = &cap->cap[c].allocated;

		*a = req->amount[c] > *a ? 0 : *a - req->amount[c];
	}
}

json_object *
capacity_encode(const struct capacity *cap)
{
	json_object *obj = json_object_new_object();

	for (int c = 0; c < CAP_NCLASSES; c++) {
		const struct cap_inventory *inv = &cap->cap[c];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "total",
		    json_object_new_uint64(inv->total));
		json_object_object_add(o, "reserved",
		    json_object_new_uint64(inv->reserved));
		/* JSON has no NaN or infinity. */
		json_object_object_add(o, "allocation_ratio",
		    json_object_new_double(isfinite(inv->ratio) ? inv->ratio : 0));
		json_object_object_add(o, "allocated",
		    json_object_new_uint64(inv->allocated));
		json_object_object_add(o, "allocatable",
		    json_object_new_uint64(capacity_allocatable(inv)));
		json_object_object_add(o, "free",
		    json_object_new_uint64(capacity_free(inv)));
		json_object_object_add(obj, class_names[c], o);
	}
	return obj;
}
