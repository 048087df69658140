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
 */
#ifndef CARVE_IMAGES_H
#define CARVE_IMAGES_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "api/command.h"
#include "common/error.h"

/* How long qemu-img info may take. */
#define IMAGES_INSPECT_TIMEOUT_MS 10000

struct images;

struct images_opts {
	const char *io_dir;            /* the cache directory (absolute) */
	uint64_t io_max_bytes;         /* largest image accepted */
	unsigned io_timeout_s;         /* whole download */
	const char *io_ca_file;        /* pinned CAs for https, or NULL for
	                                * the system store */
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
