/*
 * The base image cache: content addressed, DIR/<sha256>.<format>, each file
 * 0644 and never changed once in place.
 *
 * images_ensure makes sure an image is in the cache, on the loop thread and
 * without blocking it: a worker looks for the file; if it is missing,
 * file:// images are copied on a worker, http(s) images are downloaded by
 * http.c's streaming mode on the loop. Downloaded chunks are gathered in a
 * buffer on the loop and written (and hashed) by one worker job at a time;
 * while one is being written the transfer is paused, so memory stays
 * bounded and the loop never waits on the disk. Everything lands in
 * DIR/.partial/<sha256>.<format>; a worker then fsyncs it, checks the
 * sha256, inspects it with `qemu-img info -f FORMAT` (the format is given,
 * never probed) and renames it into place. Any failure removes the partial
 * file. Creates that need the same image while it is being fetched share
 * the fetch and its outcome.
 *
 * Errors: CARVE_EINVAL for what a retry cannot fix (sha256 mismatch, a
 * backing or external data file, too large, HTTP 404), CARVE_EUNAVAIL for
 * the network, a shutdown, or anything else worth retrying; CARVE_EINTERNAL
 * for local I/O failures.
 *
 * Garbage collection. An image's last use is its file's mtime: set when it
 * is fetched, touched by every images_ensure that finds it cached and by
 * every GC pass that finds it in use, so it survives a restart. An image is
 * in use while a volume of carve's storage pool has it as its backing file
 * (read through libvirt on a worker) or while a command pins it (below).
 * A pass (images_gc) deletes, among the images not in use and not being
 * fetched, those unused for gc_unused_age_s, then the least recently used
 * ones while the cache is above max_cache_bytes (images_gc_choose).
 * Ordering, so that a create racing a pass never finds its image gone:
 *   1. loop:   the pass starts; every key pinned now, or pinned or ensured
 *              while the pass runs, is remembered as "touched";
 *   2. worker: the cache directory and the pool's volumes are read;
 *   3. loop:   the policy runs on what is not in use, not touched, not
 *              pinned and not being fetched; the chosen keys are marked
 *              "deleting": an images_ensure of one of them from here on
 *              waits for the deletion and then fetches it afresh;
 *   4. worker: the chosen files are unlinked (and in-use ones touched);
 *   5. loop:   waiting fetches start; the report goes out.
 * A volume made after step 2 belongs to a command that pinned its image
 * before step 3 (its prepare step ran images_ensure), so it is touched.
 * One pass runs at a time; requests during a pass get the next one.
 */
#ifndef CARVE_IMAGES_H
#define CARVE_IMAGES_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <uv.h>

#include "api/command.h"
#include "common/error.h"

/* How long qemu-img info may take. */
#define IMAGES_INSPECT_TIMEOUT_MS 10000

struct images;

/*
 * Loop thread: a new reference to the libvirt connection for a GC pass
 * (gc true) or a listing, or NULL with err set (CARVE_EUNAVAIL) when it
 * cannot run now: not connected, or (gc) commands from before a restart
 * are still being recovered (they hold no pins: their prepare step ran in
 * the previous life).
 */
typedef virConnectPtr (*images_conn_fn)(void *arg, bool gc,
    struct carve_error *err);

struct images_opts {
	const char *io_dir;            /* the cache directory (absolute) */
	uint64_t io_max_bytes;         /* largest image accepted */
	unsigned io_timeout_s;         /* whole download */
	const char *io_ca_file;        /* pinned CAs for https, or NULL for
	                                * the system store */
	/* garbage collection (all zero: none) */
	unsigned io_gc_interval_s;     /* a pass every so often; 0: only on
	                                * request (images_gc) */
	unsigned io_gc_unused_age_s;   /* unused this long: deleted; 0: never
	                                * for its age */
	uint64_t io_gc_max_bytes;      /* cache cap; 0: none */
	const char *io_pool;           /* carve's storage pool */
	images_conn_fn io_conn;        /* NULL: no pass or listing can run */
	void *io_conn_arg;
};

/* Called once per images_ensure, on the loop thread (err clear: cached). */
typedef void (*images_cb)(const struct carve_error *err, void *arg);

/*
 * Create the cache (blocking: at start-up), making DIR and DIR/.partial and
 * removing partial files a previous run left behind.
 */
int images_new(uv_loop_t *loop, const struct images_opts *o,
    struct images **out, struct carve_error *err);

/* Make sure img is cached; cb may run before this returns (shutdown). */
void images_ensure(struct images *im, const struct vm_image *img,
    images_cb cb, void *arg);

/* Fetches in progress. */
unsigned images_active(const struct images *im);

/*
 * Fail every fetch (CARVE_EUNAVAIL: carved is shutting down), wait for
 * worker jobs to end, then free im and call cb (may be NULL).
 */
void images_close(struct images *im, void (*cb)(void *arg), void *arg);

/*
 * Pins. Between images_pin_scope(im, owner) and images_pin_scope(im, NULL)
 * every images_ensure pins its image for owner (copied): the engine opens
 * the scope around each command's prepare step, so a command that ensures
 * an image there holds it until the engine calls images_unpin(im, owner)
 * when the command ends, whatever its type. images_pin pins one image
 * explicitly.
 */
void images_pin_scope(struct images *im, const char *owner);
void images_pin(struct images *im, const struct vm_image *img,
    const char *owner);
void images_unpin(struct images *im, const char *owner);
/* Pins held on img (any owner). */
unsigned images_pins(const struct images *im, const struct vm_image *img);

/* ------------------------------------------------------------ GC */

enum images_gc_why {
	IMAGES_GC_KEEP = 0,
	IMAGES_GC_AGE,                 /* unused for gc_unused_age_s */
	IMAGES_GC_CAP,                 /* least recently used, cache too big */
};

/* One image for the policy. */
struct images_gc_item {
	const char *gi_key;            /* ties are broken on it */
	uint64_t gi_bytes;
	int64_t gi_last_used_ms;
	bool gi_in_use;
	enum images_gc_why gi_why;     /* out */
};

/*
 * The policy, a pure function: sets gi_why of each item. Never chooses an
 * image in use. First those unused for unused_age_s or longer (0: none for
 * age); then, while the bytes of what is left exceed max_bytes (0: no
 * cap), the least recently used (oldest gi_last_used_ms; then the larger;
 * then by key). Returns how many were chosen.
 */
size_t images_gc_choose(struct images_gc_item *items, size_t n,
    int64_t now_ms, unsigned unused_age_s, uint64_t max_bytes);
const char *images_gc_why_name(enum images_gc_why why);

/* One cached image as a listing or a pass found it. */
struct images_entry {
	char ie_sha256[65];
	enum vm_image_format ie_format;
	uint64_t ie_bytes;             /* disk space it takes */
	int64_t ie_last_used_ms;       /* its mtime */
	char **ie_vms;                 /* VM ids of the volumes on it */
	size_t ie_nvms;
	unsigned ie_pins;
	bool ie_fetching;
	bool ie_in_use;                /* volumes, pins, a fetch, or touched
	                                * during the pass */
	enum images_gc_why ie_why;     /* deleted by this pass, and why */
	char *ie_error;                /* the deletion failed: why */
};

struct images_report {
	bool ir_gc;                    /* a pass (else a listing) */
	struct images_entry *ir_images;
	size_t ir_nimages;
	uint64_t ir_bytes;             /* the cache before the pass */
	uint64_t ir_freed;             /* bytes deleted */
	unsigned ir_deleted;
	int64_t ir_at_ms;
};

/* Called once, on the loop thread; r is NULL when err is set. */
typedef void (*images_report_cb)(const struct carve_error *err,
    const struct images_report *r, void *arg);

/* What is in the cache now and who uses it (reads only). */
void images_list(struct images *im, images_report_cb cb, void *arg);
/* A GC pass now, or right after the one running. cb may be NULL. */
void images_gc(struct images *im, images_report_cb cb, void *arg);

/*
 * JSON of a report: a listing is [{sha256, format, bytes, last_used_at,
 * vms:[{id, name?}], pins, fetching, in_use}] sorted by sha256; a pass is
 * {deleted:[{sha256, format, bytes, last_used_at, reason, error?}],
 * kept, bytes_before, bytes_after, freed_bytes}. name_of (may be NULL)
 * names a VM id, or returns NULL.
 */
json_object *images_report_encode(const struct images_report *r,
    const char *(*name_of)(void *arg, const char *vm_id), void *arg);

struct images_stats {
	uint64_t is_bytes;             /* the cache, as last seen */
	unsigned is_images;
	uint64_t is_gc_passes;
	uint64_t is_gc_deleted;
	uint64_t is_gc_freed_bytes;
};
void images_get_stats(const struct images *im, struct images_stats *st);

/* DIR/<sha256>.<format>, a new string. */
char *images_path(const char *dir, const struct vm_image *img);

/*
 * Worker thread: `qemu-img info -f FORMAT --output=json path` and the
 * checks on it: no backing file, no external data file (qcow2); the
 * virtual size goes to *vsize. CARVE_EINVAL when the image is refused.
 */
int images_inspect(const char *path, enum vm_image_format fmt,
    uint64_t *vsize, struct carve_error *err);

/*
 * Worker thread: run argv (argv[0] looked up in PATH) with stdin from
 * /dev/null, collecting at most outmax bytes of its stdout into *out (a
 * new NUL-terminated string) and the start of its stderr into errbuf;
 * killed after timeout_ms. Returns the exit status (0..255), or -1 with
 * err set when it could not run, was killed or timed out.
 */
int images_run(const char *const *argv, size_t outmax, unsigned timeout_ms,
    char **out, char *errbuf, size_t errsize, struct carve_error *err);

#endif
