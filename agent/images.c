/*
 * The base image cache: see images.h.
 *
 * A fetch (one per <sha256>.<format> being made) goes through worker jobs
 * and at most one HTTP transfer, one step at a time, so its fields are only
 * touched by one thread at a time: the loop between jobs, the job's worker
 * while it runs.
 *   probe   (worker): cached already? file:// copy + finish; else open the
 *                     partial file for the download
 *   write   (worker): one buffer of the download appended and hashed
 *   finish  (worker): last buffer, fsync, sha256, qemu-img info, rename;
 *                     on any failure the partial file is removed
 * A fetch of an image a GC pass is deleting is "blocked": it exists (so
 * requests join it) but its probe starts only once the deletion is over.
 *
 * A GC pass or listing (struct gc_pass) is owned by the loop, except while
 * its scan or delete job runs on a worker; see images.h for the order.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "agent/http.h"
#include "agent/images.h"
#include "agent/virt_storage.h"
#include "common/ids.h"
#include "common/jsonx.h"
#include "common/log.h"
#include "common/strmap.h"
#include "common/text.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

extern char **environ;

/* A download buffer is handed to a worker once it holds this much. */
#define IMAGES_CHUNK        (1024 * 1024)
#define IMAGES_COPY_BUF     (1024 * 1024)
#define IMAGES_INFO_MAX     (1024 * 1024)
#define IMAGES_PARTIAL      ".partial"
/* <sha256>.<format> */
#define IMAGES_KEY_MAX      80

struct img_waiter {
	struct img_waiter *next;
	images_cb cb;
	void *arg;
};

struct fetch {
	struct images *f_im;
	char f_key[IMAGES_KEY_MAX];    /* <sha256>.<format> */
	char *f_url;
	struct vm_image f_img;         /* f_img.vi_url borrowed from f_url */
	char *f_final;
	char *f_partial;
	struct img_waiter *f_waiters;
	struct carve_error f_err;      /* the first failure */
	/* download */
	bool f_need_download;
	bool f_copied;                 /* file:// copied by the probe */
	struct http_request *f_req;
	bool f_http_done;
	bool f_paused;
	bool f_writing;
	int f_fd;
	EVP_MD_CTX *f_md;
	char *f_buf;                   /* filling, on the loop */
	size_t f_len, f_cap;
	char *f_wbuf;                  /* being written by a worker */
	size_t f_wlen;
	struct carve_error f_werr;     /* set by workers, merged on the loop */
	uint64_t f_total;
	int64_t f_expect;
	int f_last_pct;
	uint64_t f_last_log;
	uint64_t f_bytes;              /* disk space of the cached file */
	bool f_blocked;                /* waits for a GC deletion */
	uv_work_t f_work;
};

/* An image held by a command (owner) until it ends. */
struct img_pin {
	struct img_pin *next;
	char key[IMAGES_KEY_MAX];
	char owner[IMAGES_KEY_MAX];
};

/* Someone waiting for a pass or a listing. */
struct gc_req {
	struct gc_req *next;
	images_report_cb cb;           /* NULL: the periodic pass */
	void *arg;
};

struct gc_pass {
	struct images *gp_im;
	bool gp_gc;                    /* a pass, else a listing */
	virConnectPtr gp_conn;         /* the scan closes it */
	char *gp_dir;
	char *gp_pool;
	struct gc_req *gp_reqs;
	struct strmap *gp_touched;     /* pass: keys pinned or ensured since
	                                * it started: kept */
	struct images_report gp_rep;   /* built by the scan, then decided */
	size_t gp_cap;
	struct carve_error gp_err;
	uv_work_t gp_work;
};

struct images {
	uv_loop_t *im_loop;
	struct http *im_http;
	char *im_dir;
	char *im_ca_file;
	uint64_t im_max_bytes;
	unsigned im_timeout_s;
	struct strmap *im_fetches;
	unsigned im_jobs;              /* worker jobs in flight */
	bool im_closing;
	atomic_bool im_cancel;         /* im_closing, for workers */
	bool im_http_closing;
	void (*im_close_cb)(void *);
	void *im_close_arg;
	/* pins */
	struct img_pin *im_pins;
	bool im_scope_open;
	char im_scope[IMAGES_KEY_MAX];
	/* garbage collection */
	unsigned im_gc_interval_s;
	unsigned im_gc_age_s;
	uint64_t im_gc_max_bytes;
	char *im_pool;
	images_conn_fn im_conn;
	void *im_conn_arg;
	struct gc_pass *im_gc;         /* the pass running */
	struct gc_req *im_gc_next;     /* waiting for the next pass */
	struct strmap *im_deleting;    /* keys a pass is deleting */
	uv_timer_t im_timer;
	bool im_timer_on;
	struct images_stats im_stats;
	/* Fault injection for the tests (CARVED_TEST_GC_DELAY_MS): a pass
	 * waits that long before deleting, widening the window in which a
	 * create asks for an image being deleted. */
	unsigned im_test_delay_ms;
};

static void fetch_finish_start(struct fetch *f);
static void fetch_probe_start(struct fetch *f);
static void images_check_closed(struct images *im);
static int gc_read_dir(const char *dir, struct images_report *r, size_t *cap,
    struct carve_error *err);
static void gc_report_clear(struct images_report *r);
static void gc_reqs_reply(struct gc_req *reqs, const struct carve_error *err,
    const struct images_report *r);
static void gc_on_timer(uv_timer_t *t);

char *
images_path(const char *dir, const struct vm_image *img)
{
	return xasprintf("%s/%s.%s", dir, img->vi_sha256,
	    vm_image_format_name(img->vi_format));
}

/* ------------------------------------------------------------ processes */

static int
images_set_cloexec_pipe(int fds[2])
{
	return pipe2(fds, O_CLOEXEC);
}

int
images_run(const char *const *argv, size_t outmax, unsigned timeout_ms,
    char **out, char *errbuf, size_t errsize, struct carve_error *err)
{
	posix_spawn_file_actions_t fa;
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, rc, status;
	char *buf = xmalloc(outmax + 1);
	size_t len = 0, elen = 0;
	int64_t deadline = time_mono_ms() + timeout_ms;
	bool timed_out = false;
	pid_t pid;

	*out = NULL;
	if (errsize > 0)
		errbuf[0] = '\0';
	if (images_set_cloexec_pipe(outp) < 0 ||
	    images_set_cloexec_pipe(errp) < 0) {
		error_set(err, CARVE_EINTERNAL, "pipe: %s", strerror(errno));
		goto fail;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv,
	    environ);
	posix_spawn_file_actions_destroy(&fa);
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;
	if (rc != 0) {
		error_set(err, CARVE_EINTERNAL, "cannot run %s: %s", argv[0],
		    strerror(rc));
		goto fail;
	}
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = outp[0], .events = POLLIN },
			{ .fd = errp[0], .events = POLLIN },
		};
		int64_t left = deadline - time_mono_ms();
		char tmp[4096];
		ssize_t n;

		if (outp[0] < 0 && errp[0] < 0)
			break;
		if (left <= 0) {
			timed_out = true;
			break;
		}
		if (poll(pfd, 2, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			int *fd = i == 0 ? &outp[0] : &errp[0];

			if (*fd < 0 || pfd[i].revents == 0)
				continue;
			n = read(*fd, tmp, sizeof(tmp));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(*fd);
				*fd = -1;
				continue;
			}
			if (i == 0) {
				size_t take = (size_t)n > outmax - len ?
				    outmax - len : (size_t)n;
				memcpy(buf + len, tmp, take);
				len += take;
			} else if (errsize > 1 && elen < errsize - 1) {
				size_t take = (size_t)n > errsize - 1 - elen ?
				    errsize - 1 - elen : (size_t)n;
				memcpy(errbuf + elen, tmp, take);
				elen += take;
				errbuf[elen] = '\0';
			}
		}
	}
	if (timed_out)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (outp[0] >= 0)
		close(outp[0]);
	if (errp[0] >= 0)
		close(errp[0]);
	if (errsize > 0) {
		/* Only the first line, printable, for a message. */
		errbuf[strcspn(errbuf, "\n")] = '\0';
		text_utf8_fix(errbuf);
	}
	if (timed_out) {
		free(buf);
		return error_set(err, CARVE_EUNAVAIL, "%s did not finish within "
		    "%u ms", argv[0], timeout_ms);
	}
	if (!WIFEXITED(status)) {
		free(buf);
		return error_set(err, CARVE_EINTERNAL, "%s was killed by signal "
		    "%d", argv[0], WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	}
	buf[len] = '\0';
	*out = buf;
	return WEXITSTATUS(status);
fail:
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	free(buf);
	return -1;
}

int
images_inspect(const char *path, enum vm_image_format fmt, uint64_t *vsize,
    struct carve_error *err)
{
	const char *argv[] = { "qemu-img", "info", "-f",
	    vm_image_format_name(fmt), "--output=json", path, NULL };
	char ebuf[256], *out = NULL;
	json_object *o = NULL, *v, *fs, *data;
	struct carve_error perr = { 0 };
	int rc, ret = -1;
	int64_t size;

	rc = images_run(argv, IMAGES_INFO_MAX, IMAGES_INSPECT_TIMEOUT_MS, &out,
	    ebuf, sizeof(ebuf), err);
	if (rc < 0)
		return -1;
	if (rc != 0) {
		/* The file is what it claims not to be, or refers to
		 * something that cannot be opened (a data file): refused. */
		error_set(err, CARVE_EINVAL, "image is not a usable %s file: "
		    "qemu-img info: %s", vm_image_format_name(fmt),
		    ebuf[0] ? ebuf : "failed");
		goto out;
	}
	if ((o = jsonx_parse(out, strlen(out), &perr)) == NULL ||
	    !json_object_is_type(o, json_type_object)) {
		error_set(err, CARVE_EINTERNAL, "cannot read qemu-img info's "
		    "output: %s", perr.message[0] ? perr.message : "not an object");
		goto out;
	}
	if (json_object_object_get_ex(o, "backing-filename", NULL) ||
	    json_object_object_get_ex(o, "full-backing-filename", NULL) ||
	    json_object_object_get_ex(o, "backing-filename-format", NULL)) {
		error_set(err, CARVE_EINVAL, "image refused: it has a backing "
		    "file (base images must be self-contained)");
		goto out;
	}
	if (json_object_object_get_ex(o, "format-specific", &fs) &&
	    json_object_object_get_ex(fs, "data", &data) &&
	    json_object_object_get_ex(data, "data-file", NULL)) {
		error_set(err, CARVE_EINVAL, "image refused: it has an external "
		    "data file");
		goto out;
	}
	if (!json_object_object_get_ex(o, "virtual-size", &v) ||
	    !json_object_is_type(v, json_type_int) ||
	    (size = json_object_get_int64(v)) <= 0) {
		error_set(err, CARVE_EINVAL, "image refused: qemu-img reports no "
		    "virtual size");
		goto out;
	}
	*vsize = (uint64_t)size;
	ret = 0;
out:
	json_object_put(o);
	free(out);
	return ret;
}

/* ------------------------------------------------------------ files */

static int
images_write_all(int fd, const char *buf, size_t len, struct carve_error *err)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return error_set(err, CARVE_EINTERNAL, "writing the "
			    "image: %s", strerror(errno));
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
images_fsync_dir(const char *dir, struct carve_error *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) < 0) {
		error_set(err, CARVE_EINTERNAL, "syncing %s: %s", dir,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void
images_hex(const unsigned char *md, unsigned n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (unsigned i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[2 * n] = '\0';
}

/* ------------------------------------------------------------ fetches */

static void
fetch_fail(struct fetch *f, const struct carve_error *e)
{
	if (!error_isset(&f->f_err))
		f->f_err = *e;
}

static void
fetch_free(struct fetch *f)
{
	struct img_waiter *w, *next;

	for (w = f->f_waiters; w != NULL; w = next) {
		next = w->next;
		free(w);
	}
	if (f->f_md != NULL)
		EVP_MD_CTX_free(f->f_md);
	free(f->f_buf);
	free(f->f_wbuf);
	free(f->f_url);
	free(f->f_final);
	free(f->f_partial);
	free(f);
}

/* The fetch is over: tell every waiter (loop thread). */
static void
fetch_complete(struct fetch *f)
{
	struct images *im = f->f_im;
	struct img_waiter *w;

	strmap_del(im->im_fetches, f->f_key);
	if (error_isset(&f->f_err))
		log_kv(LOG_LVL_WARN, "images", "image fetch failed",
		    "sha256", f->f_img.vi_sha256, "url", f->f_url,
		    "error", f->f_err.message, (char *)NULL);
	else if (f->f_need_download || f->f_copied) {
		log_kv(LOG_LVL_INFO, "images", "image cached",
		    "sha256", f->f_img.vi_sha256, "path", f->f_final,
		    (char *)NULL);
		im->im_stats.is_bytes += f->f_bytes;
		im->im_stats.is_images++;
	}
	while ((w = f->f_waiters) != NULL) {
		f->f_waiters = w->next;
		w->cb(error_isset(&f->f_err) ? &f->f_err : NULL, w->arg);
		free(w);
	}
	fetch_free(f);
	images_check_closed(im);
}

/* Copy a file:// image into the partial file, hashing it (worker). */
static int
fetch_copy_file(struct fetch *f, struct carve_error *err)
{
	const char *src = f->f_url + 7;
	char *buf;
	struct stat st;
	uint64_t total = 0;
	int in, rc = -1;

	if ((in = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return error_set(err, errno == ENOENT || errno == EACCES ?
		    CARVE_EINVAL : CARVE_EINTERNAL, "image %s: %s", f->f_url,
		    strerror(errno));
	if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(in);
		return error_set(err, CARVE_EINVAL, "image %s is not a regular "
		    "file", f->f_url);
	}
	if ((uint64_t)st.st_size > f->f_im->im_max_bytes) {
		close(in);
		return error_set(err, CARVE_EINVAL, "image %s is larger than "
		    "max_image_gib", f->f_url);
	}
	buf = xmalloc(IMAGES_COPY_BUF);
	for (;;) {
		ssize_t n = read(in, buf, IMAGES_COPY_BUF);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			error_set(err, CARVE_EINTERNAL, "reading %s: %s",
			    f->f_url, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (atomic_load(&f->f_im->im_cancel)) {
			error_set(err, CARVE_EUNAVAIL, "carved is shutting down");
			goto out;
		}
		total += (uint64_t)n;
		if (total > f->f_im->im_max_bytes) {
			error_set(err, CARVE_EINVAL, "image %s is larger than "
			    "max_image_gib", f->f_url);
			goto out;
		}
		EVP_DigestUpdate(f->f_md, buf, (size_t)n);
		if (images_write_all(f->f_fd, buf, (size_t)n, err) < 0)
			goto out;
	}
	f->f_total = total;
	rc = 0;
out:
	free(buf);
	close(in);
	return rc;
}

static int
fetch_open_partial(struct fetch *f, struct carve_error *err)
{
	f->f_fd = open(f->f_partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (f->f_fd < 0)
		return error_set(err, CARVE_EINTERNAL, "creating %s: %s",
		    f->f_partial, strerror(errno));
	return 0;
}

/*
 * The end of a fetch, on a worker: what is left of the buffer, fsync,
 * sha256, inspection, rename; or, after a failure, removal of the partial
 * file.
 */
static void
fetch_finish_file(struct fetch *f, struct carve_error *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char got[2 * EVP_MAX_MD_SIZE + 1];
	unsigned mdlen = 0;
	uint64_t vsize;
	struct stat st;

	if (!error_isset(err) && f->f_len > 0) {
		EVP_DigestUpdate(f->f_md, f->f_buf, f->f_len);
		(void)images_write_all(f->f_fd, f->f_buf, f->f_len, err);
	}
	if (!error_isset(err) && (fsync(f->f_fd) < 0 ||
	    fchmod(f->f_fd, 0644) < 0 || fstat(f->f_fd, &st) < 0))
		error_set(err, CARVE_EINTERNAL, "syncing %s: %s", f->f_partial,
		    strerror(errno));
	if (f->f_fd >= 0 && close(f->f_fd) < 0 && !error_isset(err))
		error_set(err, CARVE_EINTERNAL, "closing %s: %s", f->f_partial,
		    strerror(errno));
	f->f_fd = -1;
	if (!error_isset(err)) {
		EVP_DigestFinal_ex(f->f_md, md, &mdlen);
		images_hex(md, mdlen, got);
		if (strcmp(got, f->f_img.vi_sha256) != 0)
			error_set(err, CARVE_EINVAL, "sha256 mismatch: expected "
			    "%s got %s", f->f_img.vi_sha256, got);
	}
	if (!error_isset(err))
		(void)images_inspect(f->f_partial, f->f_img.vi_format, &vsize,
		    err);
	if (!error_isset(err) && rename(f->f_partial, f->f_final) < 0)
		error_set(err, CARVE_EINTERNAL, "renaming %s: %s", f->f_partial,
		    strerror(errno));
	if (!error_isset(err)) {
		f->f_bytes = (uint64_t)st.st_blocks * 512;
		(void)images_fsync_dir(f->f_im->im_dir, err);
		return;
	}
	if (unlink(f->f_partial) < 0 && errno != ENOENT)
		log_error("images", "cannot remove %s: %s", f->f_partial,
		    strerror(errno));
}

static void
fetch_probe_work(uv_work_t *w)
{
	struct fetch *f = w->data;
	struct carve_error *err = &f->f_werr;
	struct stat st;
	uint64_t vsize;

	if (stat(f->f_final, &st) == 0 && S_ISREG(st.st_mode)) {
		/* Cached. Inspected again: cheap, and a file changed behind
		 * carve's back is not used blindly. */
		if (images_inspect(f->f_final, f->f_img.vi_format, &vsize,
		    err) == 0 && utimensat(AT_FDCWD, f->f_final, NULL, 0) < 0)
			/* Only its last use looks older than it is. */
			log_warn("images", "cannot set the last use of %s: %s",
			    f->f_final, strerror(errno));
		return;
	}
	if (fetch_open_partial(f, err) < 0)
		return;
	if (strncmp(f->f_url, "file://", 7) == 0) {
		f->f_copied = true;
		(void)fetch_copy_file(f, err);
		fetch_finish_file(f, err);
		return;
	}
	f->f_need_download = true;
}

static void
fetch_job_done(struct fetch *f)
{
	f->f_im->im_jobs--;
	if (error_isset(&f->f_werr)) {
		fetch_fail(f, &f->f_werr);
		error_clear(&f->f_werr);
	}
}

static void
fetch_finish_work(uv_work_t *w)
{
	struct fetch *f = w->data;

	f->f_werr = f->f_err;
	fetch_finish_file(f, &f->f_werr);
}

static void
fetch_finish_done(uv_work_t *w, int status)
{
	struct fetch *f = w->data;

	(void)status;
	f->f_im->im_jobs--;
	/* f_werr started as f_err: it holds the whole outcome. */
	f->f_err = f->f_werr;
	fetch_complete(f);
}

static void
fetch_finish_start(struct fetch *f)
{
	f->f_im->im_jobs++;
	f->f_work.data = f;
	uv_queue_work(f->f_im->im_loop, &f->f_work, fetch_finish_work,
	    fetch_finish_done);
}

static void
fetch_write_work(uv_work_t *w)
{
	struct fetch *f = w->data;

	EVP_DigestUpdate(f->f_md, f->f_wbuf, f->f_wlen);
	(void)images_write_all(f->f_fd, f->f_wbuf, f->f_wlen, &f->f_werr);
}

static void
fetch_write_done(uv_work_t *w, int status)
{
	struct fetch *f = w->data;

	(void)status;
	fetch_job_done(f);
	f->f_writing = false;
	free(f->f_wbuf);
	f->f_wbuf = NULL;
	f->f_wlen = 0;
	if (f->f_http_done) {
		fetch_finish_start(f);
		return;
	}
	if (error_isset(&f->f_err)) {
		/* The transfer's callback starts the finish step. */
		http_cancel(f->f_req);
		return;
	}
	if (f->f_paused) {
		f->f_paused = false;
		http_resume(f->f_req);
	}
}

static void
fetch_write_start(struct fetch *f)
{
	f->f_wbuf = f->f_buf;
	f->f_wlen = f->f_len;
	f->f_buf = NULL;
	f->f_len = f->f_cap = 0;
	f->f_writing = true;
	f->f_im->im_jobs++;
	f->f_work.data = f;
	uv_queue_work(f->f_im->im_loop, &f->f_work, fetch_write_work,
	    fetch_write_done);
}

static void
fetch_progress(struct fetch *f)
{
	int pct;

	if (f->f_expect < 0 && f->f_req != NULL)
		f->f_expect = http_content_length(f->f_req);
	if (f->f_expect > 0) {
		pct = (int)(f->f_total * 100 / (uint64_t)f->f_expect);
		if (pct / 10 > f->f_last_pct / 10) {
			f->f_last_pct = pct;
			log_info("images", "downloading %s: %d%% of %lld bytes",
			    f->f_img.vi_sha256, pct, (long long)f->f_expect);
		}
	} else if (f->f_total - f->f_last_log >= 256ULL << 20) {
		f->f_last_log = f->f_total;
		log_info("images", "downloading %s: %llu MiB", f->f_img.vi_sha256,
		    (unsigned long long)(f->f_total >> 20));
	}
}

static size_t
fetch_sink(const char *buf, size_t len, void *arg)
{
	struct fetch *f = arg;
	struct carve_error e = { 0 };

	if (error_isset(&f->f_err))
		return 0;
	if (f->f_total + len > f->f_im->im_max_bytes) {
		error_set(&e, CARVE_EINVAL, "image %s is larger than "
		    "max_image_gib (%llu bytes)", f->f_url,
		    (unsigned long long)f->f_im->im_max_bytes);
		fetch_fail(f, &e);
		return 0;
	}
	if (f->f_len >= IMAGES_CHUNK) {
		if (f->f_writing) {
			/* The disk is behind: let the network wait. */
			f->f_paused = true;
			return HTTP_SINK_PAUSE;
		}
		fetch_write_start(f);
	}
	if (f->f_len + len > f->f_cap) {
		f->f_cap = f->f_len + len > IMAGES_CHUNK ? f->f_len + len :
		    IMAGES_CHUNK;
		f->f_buf = xrealloc(f->f_buf, f->f_cap);
	}
	memcpy(f->f_buf + f->f_len, buf, len);
	f->f_len += len;
	f->f_total += len;
	fetch_progress(f);
	return len;
}

static void
fetch_download_done(int status, long code, const char *body, size_t len,
    const struct carve_error *err, void *arg)
{
	struct fetch *f = arg;
	struct carve_error e = { 0 };

	(void)code;
	(void)body;
	(void)len;
	f->f_req = NULL;
	f->f_http_done = true;
	if (status != 0 && !error_isset(&f->f_err)) {
		if (err->code == CARVE_ETOOBIG)
			error_set(&e, CARVE_EINVAL, "%s", err->message);
		else if (err->code == CARVE_EINVAL)
			error_set(&e, CARVE_EINVAL, "image not found: %s",
			    err->message);
		else
			error_set(&e, CARVE_EUNAVAIL, "downloading the image "
			    "failed: %s", err->message);
		fetch_fail(f, &e);
	}
	if (!f->f_writing)
		fetch_finish_start(f);
}

static void
fetch_download_start(struct fetch *f)
{
	struct images *im = f->f_im;
	struct http_req_opts o;
	struct carve_error e = { 0 };

	memset(&o, 0, sizeof(o));
	o.ho_method = "GET";
	o.ho_url = f->f_url;
	o.ho_ca_file = im->im_ca_file;
	o.ho_timeout_ms = im->im_timeout_s * 1000;
	o.ho_sink = fetch_sink;
	o.ho_sink_arg = f;
	o.ho_stream_max = im->im_max_bytes;
	f->f_expect = -1;
	f->f_last_pct = 0;
	log_kv(LOG_LVL_INFO, "images", "downloading image",
	    "sha256", f->f_img.vi_sha256, "url", f->f_url, (char *)NULL);
	if (http_request(im->im_http, &o, fetch_download_done, f, &f->f_req,
	    &e) < 0) {
		fetch_fail(f, &e);
		f->f_http_done = true;
		fetch_finish_start(f);
	}
}

static void
fetch_probe_done(uv_work_t *w, int status)
{
	struct fetch *f = w->data;
	struct carve_error e = { 0 };

	(void)status;
	fetch_job_done(f);
	if (!f->f_need_download || error_isset(&f->f_err)) {
		if (f->f_need_download) {
			f->f_http_done = true;
			fetch_finish_start(f);
			return;
		}
		fetch_complete(f);
		return;
	}
	if (f->f_im->im_closing) {
		error_set(&e, CARVE_EUNAVAIL, "carved is shutting down");
		fetch_fail(f, &e);
		f->f_http_done = true;
		fetch_finish_start(f);
		return;
	}
	fetch_download_start(f);
}

/* ------------------------------------------------------------ the cache */

static int
images_mkdir(const char *path, mode_t mode, struct carve_error *err)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return error_set(err, CARVE_EINTERNAL, "cannot create %s: %s",
		    path, strerror(errno));
	return 0;
}

int
images_new(uv_loop_t *loop, const struct images_opts *o, struct images **out,
    struct carve_error *err)
{
	struct images *im;
	char *partial;
	const char *env;
	DIR *d;
	struct dirent *de;

	*out = NULL;
	/* Readable by the hypervisor's user: the files back guest disks. */
	if (images_mkdir(o->io_dir, 0755, err) < 0)
		return -1;
	partial = xasprintf("%s/%s", o->io_dir, IMAGES_PARTIAL);
	if (images_mkdir(partial, 0700, err) < 0) {
		free(partial);
		return -1;
	}
	/* What an interrupted fetch left: never trusted, never resumed. */
	if ((d = opendir(partial)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			if (unlinkat(dirfd(d), de->d_name, 0) == 0)
				log_info("images", "removed the partial file %s "
				    "of an interrupted fetch", de->d_name);
		}
		closedir(d);
	}
	free(partial);
	im = xcalloc(1, sizeof(*im));
	im->im_loop = loop;
	im->im_http = http_new(loop);
	im->im_dir = xstrdup(o->io_dir);
	im->im_ca_file = o->io_ca_file != NULL ? xstrdup(o->io_ca_file) : NULL;
	im->im_max_bytes = o->io_max_bytes;
	im->im_timeout_s = o->io_timeout_s;
	im->im_fetches = strmap_new();
	im->im_deleting = strmap_new();
	im->im_gc_interval_s = o->io_gc_interval_s;
	im->im_gc_age_s = o->io_gc_unused_age_s;
	im->im_gc_max_bytes = o->io_gc_max_bytes;
	im->im_pool = xstrdup(o->io_pool != NULL ? o->io_pool : "");
	im->im_conn = o->io_conn;
	im->im_conn_arg = o->io_conn_arg;
	if ((env = getenv("CARVED_TEST_GC_DELAY_MS")) != NULL && *env != '\0') {
		unsigned long v;
		char *end;

		errno = 0;
		v = strtoul(env, &end, 10);
		if (errno == 0 && *end == '\0' && v <= 60000) {
			im->im_test_delay_ms = (unsigned)v;
			log_warn("images", "fault injection: "
			    "CARVED_TEST_GC_DELAY_MS=%lu", v);
		} else {
			log_warn("images", "ignoring CARVED_TEST_GC_DELAY_MS=%s "
			    "(want 0..60000)", env);
		}
	}
	{
		/* The gauges start from what is there. */
		struct images_report r = { 0 };
		struct carve_error serr = { 0 };
		size_t cap = 0;

		if (gc_read_dir(o->io_dir, &r, &cap, &serr) == 0) {
			im->im_stats.is_bytes = r.ir_bytes;
			im->im_stats.is_images = (unsigned)r.ir_nimages;
		}
		gc_report_clear(&r);
	}
	if (im->im_gc_interval_s > 0 && im->im_conn != NULL) {
		uint64_t ms = (uint64_t)im->im_gc_interval_s * 1000;

		uv_timer_init(loop, &im->im_timer);
		im->im_timer.data = im;
		/* It alone must not keep the loop alive. */
		uv_unref((uv_handle_t *)&im->im_timer);
		uv_timer_start(&im->im_timer, gc_on_timer, ms, ms);
		im->im_timer_on = true;
		log_info("images", "image GC every %u s: unused for %u s%s, "
		    "cache cap %llu bytes%s", im->im_gc_interval_s,
		    im->im_gc_age_s, im->im_gc_age_s ? "" : " (off)",
		    (unsigned long long)im->im_gc_max_bytes,
		    im->im_gc_max_bytes ? "" : " (none)");
	}
	*out = im;
	return 0;
}

static void
images_key(const struct vm_image *img, char key[IMAGES_KEY_MAX])
{
	snprintf(key, IMAGES_KEY_MAX, "%s.%s", img->vi_sha256,
	    vm_image_format_name(img->vi_format));
}

/* A pass running now must keep key (it was just asked for). */
static void
images_touch_key(struct images *im, const char *key)
{
	if (im->im_gc != NULL && im->im_gc->gp_touched != NULL)
		strmap_put(im->im_gc->gp_touched, key, im);
}

static void
images_pin_key(struct images *im, const char *key, const char *owner)
{
	struct img_pin *p;

	for (p = im->im_pins; p != NULL; p = p->next)
		if (strcmp(p->key, key) == 0 && strcmp(p->owner, owner) == 0)
			return;
	p = xcalloc(1, sizeof(*p));
	snprintf(p->key, sizeof(p->key), "%s", key);
	snprintf(p->owner, sizeof(p->owner), "%s", owner);
	p->next = im->im_pins;
	im->im_pins = p;
	images_touch_key(im, key);
}

static unsigned
images_pins_key(const struct images *im, const char *key)
{
	const struct img_pin *p;
	unsigned n = 0;

	for (p = im->im_pins; p != NULL; p = p->next)
		if (strcmp(p->key, key) == 0)
			n++;
	return n;
}

void
images_pin_scope(struct images *im, const char *owner)
{
	im->im_scope_open = owner != NULL;
	snprintf(im->im_scope, sizeof(im->im_scope), "%s",
	    owner != NULL ? owner : "");
}

void
images_pin(struct images *im, const struct vm_image *img, const char *owner)
{
	char key[IMAGES_KEY_MAX];

	images_key(img, key);
	images_pin_key(im, key, owner);
}

void
images_unpin(struct images *im, const char *owner)
{
	struct img_pin **pp = &im->im_pins, *p;

	while ((p = *pp) != NULL) {
		if (strcmp(p->owner, owner) == 0) {
			*pp = p->next;
			free(p);
		} else {
			pp = &p->next;
		}
	}
}

unsigned
images_pins(const struct images *im, const struct vm_image *img)
{
	char key[IMAGES_KEY_MAX];

	images_key(img, key);
	return images_pins_key(im, key);
}

static void
fetch_probe_start(struct fetch *f)
{
	struct images *im = f->f_im;

	f->f_blocked = false;
	im->im_jobs++;
	f->f_work.data = f;
	uv_queue_work(im->im_loop, &f->f_work, fetch_probe_work,
	    fetch_probe_done);
}

void
images_ensure(struct images *im, const struct vm_image *img, images_cb cb,
    void *arg)
{
	struct img_waiter *w;
	struct fetch *f;
	char key[IMAGES_KEY_MAX];

	if (im->im_closing) {
		struct carve_error e = { 0 };

		error_set(&e, CARVE_EUNAVAIL, "carved is shutting down");
		cb(&e, arg);
		return;
	}
	images_key(img, key);
	/* Before anything can find the file: a pass deciding later keeps it. */
	if (im->im_scope_open)
		images_pin_key(im, key, im->im_scope);
	images_touch_key(im, key);
	w = xcalloc(1, sizeof(*w));
	w->cb = cb;
	w->arg = arg;
	if ((f = strmap_get(im->im_fetches, key)) != NULL) {
		log_debug("images", "image %s: joining the fetch in progress",
		    key);
		w->next = f->f_waiters;
		f->f_waiters = w;
		return;
	}
	f = xcalloc(1, sizeof(*f));
	f->f_im = im;
	snprintf(f->f_key, sizeof(f->f_key), "%s", key);
	f->f_url = xstrdup(img->vi_url);
	f->f_img = *img;
	f->f_img.vi_url = f->f_url;
	f->f_final = images_path(im->im_dir, img);
	f->f_partial = xasprintf("%s/%s/%s", im->im_dir, IMAGES_PARTIAL, key);
	f->f_fd = -1;
	f->f_waiters = w;
	if ((f->f_md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(f->f_md, EVP_sha256(), NULL) != 1) {
		log_error("images", "OpenSSL cannot hash sha256");
		abort();
	}
	strmap_put(im->im_fetches, f->f_key, f);
	if (strmap_get(im->im_deleting, key) != NULL) {
		/* A pass is deleting it: fetch it again once it is gone. */
		log_info("images", "image %s is being garbage-collected: "
		    "fetching it again after the deletion", key);
		f->f_blocked = true;
		return;
	}
	fetch_probe_start(f);
}

unsigned
images_active(const struct images *im)
{
	return (unsigned)strmap_count(im->im_fetches);
}

static void
images_http_closed(void *arg)
{
	struct images *im = arg;
	void (*cb)(void *) = im->im_close_cb;
	void *cbarg = im->im_close_arg;

	struct img_pin *p;

	while ((p = im->im_pins) != NULL) {
		im->im_pins = p->next;
		free(p);
	}
	strmap_free(im->im_fetches);
	strmap_free(im->im_deleting);
	free(im->im_dir);
	free(im->im_ca_file);
	free(im->im_pool);
	free(im);
	if (cb != NULL)
		cb(cbarg);
}

static void
gc_timer_closed(uv_handle_t *h)
{
	struct images *im = h->data;

	im->im_jobs--;
	images_check_closed(im);
}

static void
images_check_closed(struct images *im)
{
	if (!im->im_closing || im->im_http_closing || im->im_jobs > 0 ||
	    strmap_count(im->im_fetches) > 0 || im->im_gc != NULL)
		return;
	im->im_http_closing = true;
	http_close(im->im_http, images_http_closed, im);
}

void
images_close(struct images *im, void (*cb)(void *arg), void *arg)
{
	struct strmap_iter it;
	struct carve_error e = { 0 };
	void *v;
	struct fetch **busy, **blocked;
	struct gc_req *next;
	size_t n = 0, nb = 0;

	if (im->im_closing)
		return;
	im->im_closing = true;
	atomic_store(&im->im_cancel, true);
	im->im_close_cb = cb;
	im->im_close_arg = arg;
	error_set(&e, CARVE_EUNAVAIL, "carved is shutting down");
	if (im->im_timer_on) {
		im->im_timer_on = false;
		im->im_jobs++;
		uv_close((uv_handle_t *)&im->im_timer, gc_timer_closed);
	}
	next = im->im_gc_next;
	im->im_gc_next = NULL;
	gc_reqs_reply(next, &e, NULL);
	/* Cancelling may complete fetches (and change the map): collect
	 * first. */
	busy = xcalloc(strmap_count(im->im_fetches) + 1, sizeof(*busy));
	blocked = xcalloc(strmap_count(im->im_fetches) + 1, sizeof(*blocked));
	it = strmap_iter(im->im_fetches);
	while (strmap_next(im->im_fetches, &it, NULL, &v)) {
		struct fetch *f = v;

		fetch_fail(f, &e);
		if (f->f_req != NULL)
			busy[n++] = f;
		else if (f->f_blocked)
			blocked[nb++] = f;
	}
	for (size_t i = 0; i < n; i++)
		if (busy[i]->f_req != NULL)
			http_cancel(busy[i]->f_req);
	/* Waiting for a deletion, with no job of their own: over now. */
	for (size_t i = 0; i < nb; i++)
		fetch_complete(blocked[i]);
	free(busy);
	free(blocked);
	images_check_closed(im);
}

/* ------------------------------------------------------------ GC policy */

const char *
images_gc_why_name(enum images_gc_why why)
{
	switch (why) {
	case IMAGES_GC_AGE:
		return "unused_age";
	case IMAGES_GC_CAP:
		return "cache_size";
	case IMAGES_GC_KEEP:
		break;
	}
	return "keep";
}

/* Whether x should go before y when the cache is too big. */
static bool
gc_older(const struct images_gc_item *x, const struct images_gc_item *y)
{
	if (x->gi_last_used_ms != y->gi_last_used_ms)
		return x->gi_last_used_ms < y->gi_last_used_ms;
	if (x->gi_bytes != y->gi_bytes)
		return x->gi_bytes > y->gi_bytes;
	return strcmp(x->gi_key, y->gi_key) < 0;
}

size_t
images_gc_choose(struct images_gc_item *it, size_t n, int64_t now_ms,
    unsigned unused_age_s, uint64_t max_bytes)
{
	uint64_t total = 0;
	size_t chosen = 0;

	for (size_t i = 0; i < n; i++) {
		it[i].gi_why = IMAGES_GC_KEEP;
		total += it[i].gi_bytes;
	}
	for (size_t i = 0; unused_age_s > 0 && i < n; i++) {
		if (it[i].gi_in_use ||
		    now_ms - it[i].gi_last_used_ms < (int64_t)unused_age_s * 1000)
			continue;
		it[i].gi_why = IMAGES_GC_AGE;
		total -= it[i].gi_bytes;
		chosen++;
	}
	while (max_bytes > 0 && total > max_bytes) {
		struct images_gc_item *best = NULL;

		for (size_t i = 0; i < n; i++)
			if (!it[i].gi_in_use && it[i].gi_why == IMAGES_GC_KEEP &&
			    (best == NULL || gc_older(&it[i], best)))
				best = &it[i];
		/* What is left is in use: the cap cannot be met. */
		if (best == NULL)
			break;
		best->gi_why = IMAGES_GC_CAP;
		total -= best->gi_bytes;
		chosen++;
	}
	return chosen;
}

/* ------------------------------------------------------------ GC passes */

/* "<64 hex>.qcow2|raw": the files carve put in the cache. */
static bool
gc_parse_name(const char *name, struct images_entry *e)
{
	const char *dot = strchr(name, '.');

	if (dot == NULL || dot - name != 64 ||
	    strspn(name, "0123456789abcdef") != 64)
		return false;
	if (strcmp(dot + 1, "qcow2") == 0)
		e->ie_format = VM_IMAGE_QCOW2;
	else if (strcmp(dot + 1, "raw") == 0)
		e->ie_format = VM_IMAGE_RAW;
	else
		return false;
	memcpy(e->ie_sha256, name, 64);
	e->ie_sha256[64] = '\0';
	return true;
}

static void
gc_entry_key(const struct images_entry *e, char key[IMAGES_KEY_MAX])
{
	snprintf(key, IMAGES_KEY_MAX, "%s.%s", e->ie_sha256,
	    vm_image_format_name(e->ie_format));
}

/* Disk space and last use of a cache file. */
static void
gc_entry_stat(const struct stat *st, struct images_entry *e)
{
	e->ie_bytes = (uint64_t)st->st_blocks * 512;
	e->ie_last_used_ms = (int64_t)st->st_mtim.tv_sec * 1000 +
	    st->st_mtim.tv_nsec / 1000000;
}

/* Read the cache directory (worker, and images_new at start-up). */
static int
gc_read_dir(const char *dir, struct images_report *r, size_t *cap,
    struct carve_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct stat st;

	if (d == NULL)
		return error_set(err, CARVE_EINTERNAL, "cannot read %s: %s", dir,
		    strerror(errno));
	while ((de = readdir(d)) != NULL) {
		struct images_entry e;

		memset(&e, 0, sizeof(e));
		if (!gc_parse_name(de->d_name, &e) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		gc_entry_stat(&st, &e);
		if (r->ir_nimages == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			r->ir_images = xreallocarray(r->ir_images, *cap,
			    sizeof(*r->ir_images));
		}
		r->ir_images[r->ir_nimages++] = e;
		r->ir_bytes += e.ie_bytes;
	}
	closedir(d);
	return 0;
}

/* The cache file a backing path names, or NULL. */
static struct images_entry *
gc_backing_entry(struct images_report *r, const char *dir, const char *rdir,
    const char *backing)
{
	char real[PATH_MAX], key[IMAGES_KEY_MAX];
	const char *name = NULL;
	size_t n = strlen(dir), rn = strlen(rdir);

	if (strncmp(backing, dir, n) == 0 && backing[n] == '/')
		name = backing + n + 1;
	else if (rdir[0] != '\0' && realpath(backing, real) != NULL &&
	    strncmp(real, rdir, rn) == 0 && real[rn] == '/')
		/* The cache reached another way (a symlinked state_dir). */
		name = real + rn + 1;
	if (name == NULL || strchr(name, '/') != NULL)
		return NULL;
	for (size_t i = 0; i < r->ir_nimages; i++) {
		gc_entry_key(&r->ir_images[i], key);
		if (strcmp(key, name) == 0)
			return &r->ir_images[i];
	}
	return NULL;
}

/* The VM a volume belongs to: "<vm_id>-..." names it; else the name. */
static void
gc_entry_add_vm(struct images_entry *e, const char *vol)
{
	char id[IDS_UUID_LEN + 1];

	if (strlen(vol) > IDS_UUID_LEN && vol[IDS_UUID_LEN] == '-') {
		memcpy(id, vol, IDS_UUID_LEN);
		id[IDS_UUID_LEN] = '\0';
		if (ids_uuid_valid(id))
			vol = id;
	}
	for (size_t i = 0; i < e->ie_nvms; i++)
		if (strcmp(e->ie_vms[i], vol) == 0)
			return;
	e->ie_vms = xreallocarray(e->ie_vms, e->ie_nvms + 1,
	    sizeof(*e->ie_vms));
	e->ie_vms[e->ie_nvms++] = xstrdup(vol);
}

static void
gc_scan_work(uv_work_t *w)
{
	struct gc_pass *p = w->data;
	struct images_report *r = &p->gp_rep;
	struct virt_storage_vol *vols = NULL;
	size_t nvols = 0;
	char rdir[PATH_MAX];

	/*
	 * Volumes first: a file cached after the directory is read is not
	 * considered at all; a volume made after the listing belongs to a
	 * command whose pin the decision sees.
	 */
	if (virt_storage_volumes(p->gp_conn, p->gp_pool, &vols, &nvols,
	    &p->gp_err) < 0) {
		/* No pool: nothing tells which images VMs use; keep all. */
		if (p->gp_err.code == CARVE_ENOTFOUND)
			error_reset(&p->gp_err, CARVE_EUNAVAIL, "storage pool %s "
			    "is not defined: cannot tell which images are in "
			    "use", p->gp_pool);
		goto out;
	}
	if (gc_read_dir(p->gp_dir, r, &p->gp_cap, &p->gp_err) < 0)
		goto out;
	if (realpath(p->gp_dir, rdir) == NULL)
		rdir[0] = '\0';
	for (size_t i = 0; i < nvols; i++) {
		struct images_entry *e;

		if (vols[i].vsv_backing == NULL)
			continue;
		e = gc_backing_entry(r, p->gp_dir, rdir, vols[i].vsv_backing);
		if (e != NULL)
			gc_entry_add_vm(e, vols[i].vsv_name);
	}
out:
	virt_storage_vols_free(vols, nvols);
	virConnectClose(p->gp_conn);
	p->gp_conn = NULL;
}

static void
gc_delete_work(uv_work_t *w)
{
	struct gc_pass *p = w->data;
	struct images_report *r = &p->gp_rep;

	if (p->gp_im->im_test_delay_ms > 0)
		time_sleep_ms(p->gp_im->im_test_delay_ms);

	for (size_t i = 0; i < r->ir_nimages; i++) {
		struct images_entry *e = &r->ir_images[i];
		char key[IMAGES_KEY_MAX], *path;

		gc_entry_key(e, key);
		path = xasprintf("%s/%s", p->gp_dir, key);
		if (e->ie_why != IMAGES_GC_KEEP) {
			if (unlink(path) < 0 && errno != ENOENT)
				e->ie_error = xasprintf("cannot delete %s: %s",
				    path, strerror(errno));
		} else if (e->ie_nvms > 0 &&
		    utimensat(AT_FDCWD, path, NULL, 0) < 0) {
			log_warn("images", "cannot set the last use of %s: %s",
			    path, strerror(errno));
		}
		free(path);
	}
}

static void
gc_report_clear(struct images_report *r)
{
	for (size_t i = 0; i < r->ir_nimages; i++) {
		struct images_entry *e = &r->ir_images[i];

		for (size_t j = 0; j < e->ie_nvms; j++)
			free(e->ie_vms[j]);
		free(e->ie_vms);
		free(e->ie_error);
	}
	free(r->ir_images);
	memset(r, 0, sizeof(*r));
}

static void
gc_reqs_reply(struct gc_req *reqs, const struct carve_error *err,
    const struct images_report *r)
{
	struct gc_req *q;

	while ((q = reqs) != NULL) {
		reqs = q->next;
		if (q->cb != NULL)
			q->cb(err, err != NULL ? NULL : r, q->arg);
		else if (err != NULL)
			log_info("images", "image GC pass skipped: %s",
			    err->message);
		free(q);
	}
}

static void gc_start(struct images *im, bool gc, struct gc_req *reqs);

/* The pass or listing is over: answer, free, start the next pass. */
static void
gc_finish(struct gc_pass *p)
{
	struct images *im = p->gp_im;
	struct images_report *r = &p->gp_rep;
	struct gc_req *next;

	if (p->gp_gc && !error_isset(&p->gp_err))
		log_msg(r->ir_deleted > 0 ? LOG_LVL_INFO : LOG_LVL_DEBUG,
		    "images", "image GC pass: %zu images, %u deleted, %llu "
		    "bytes freed", r->ir_nimages, r->ir_deleted,
		    (unsigned long long)r->ir_freed);
	else if (p->gp_gc)
		log_warn("images", "image GC pass failed, nothing deleted: %s",
		    p->gp_err.message);
	gc_reqs_reply(p->gp_reqs, error_isset(&p->gp_err) ? &p->gp_err : NULL,
	    r);
	if (im->im_gc == p)
		im->im_gc = NULL;
	gc_report_clear(r);
	if (p->gp_touched != NULL)
		strmap_free(p->gp_touched);
	free(p->gp_dir);
	free(p->gp_pool);
	free(p);
	if (im->im_gc == NULL && (next = im->im_gc_next) != NULL) {
		im->im_gc_next = NULL;
		gc_start(im, true, next);
	}
	images_check_closed(im);
}

static void
gc_delete_done(uv_work_t *w, int status)
{
	struct gc_pass *p = w->data;
	struct images *im = p->gp_im;
	struct images_report *r = &p->gp_rep;
	int64_t now = time_now_ms();

	(void)status;
	im->im_jobs--;
	im->im_stats.is_gc_passes++;
	for (size_t i = 0; i < r->ir_nimages; i++) {
		struct images_entry *e = &r->ir_images[i];
		char key[IMAGES_KEY_MAX], bytes[24], idle[24];
		struct fetch *f;

		if (e->ie_why == IMAGES_GC_KEEP)
			continue;
		gc_entry_key(e, key);
		strmap_del(im->im_deleting, key);
		snprintf(bytes, sizeof(bytes), "%llu",
		    (unsigned long long)e->ie_bytes);
		snprintf(idle, sizeof(idle), "%lld",
		    (long long)((now - e->ie_last_used_ms) / 1000));
		if (e->ie_error != NULL) {
			log_kv(LOG_LVL_ERROR, "images", "image not deleted",
			    "sha256", e->ie_sha256, "format",
			    vm_image_format_name(e->ie_format), "reason",
			    images_gc_why_name(e->ie_why), "error", e->ie_error,
			    (char *)NULL);
		} else {
			log_kv(LOG_LVL_INFO, "images", "image deleted",
			    "sha256", e->ie_sha256, "format",
			    vm_image_format_name(e->ie_format), "bytes", bytes,
			    "unused_s", idle, "reason",
			    images_gc_why_name(e->ie_why), (char *)NULL);
			r->ir_deleted++;
			r->ir_freed += e->ie_bytes;
			im->im_stats.is_gc_deleted++;
			im->im_stats.is_gc_freed_bytes += e->ie_bytes;
			if (im->im_stats.is_images > 0)
				im->im_stats.is_images--;
			im->im_stats.is_bytes -= e->ie_bytes <
			    im->im_stats.is_bytes ? e->ie_bytes :
			    im->im_stats.is_bytes;
		}
		/* Asked for while it was being deleted: fetch it now. */
		if ((f = strmap_get(im->im_fetches, key)) != NULL &&
		    f->f_blocked && !im->im_closing)
			fetch_probe_start(f);
	}
	gc_finish(p);
}

static int
gc_entry_cmp(const void *x, const void *y)
{
	const struct images_entry *a = x, *b = y;
	int c = strcmp(a->ie_sha256, b->ie_sha256);

	return c != 0 ? c : (int)a->ie_format - (int)b->ie_format;
}

/* Whether a fetch of sha256 (any format) is in progress. */
static bool
gc_fetching(struct images *im, const char *sha256)
{
	struct strmap_iter it = strmap_iter(im->im_fetches);
	const char *key;

	while (strmap_next(im->im_fetches, &it, &key, NULL))
		if (strncmp(key, sha256, 64) == 0)
			return true;
	return false;
}

static void
gc_scan_done(uv_work_t *w, int status)
{
	struct gc_pass *p = w->data;
	struct images *im = p->gp_im;
	struct images_report *r = &p->gp_rep;
	struct images_gc_item *items;

	(void)status;
	im->im_jobs--;
	if (error_isset(&p->gp_err)) {
		gc_finish(p);
		return;
	}
	if (r->ir_nimages > 0)
		qsort(r->ir_images, r->ir_nimages, sizeof(*r->ir_images),
		    gc_entry_cmp);
	r->ir_at_ms = time_now_ms();
	im->im_stats.is_bytes = r->ir_bytes;
	im->im_stats.is_images = (unsigned)r->ir_nimages;
	items = xcalloc(r->ir_nimages + 1, sizeof(*items));
	for (size_t i = 0; i < r->ir_nimages; i++) {
		struct images_entry *e = &r->ir_images[i];
		char key[IMAGES_KEY_MAX];

		gc_entry_key(e, key);
		e->ie_pins = images_pins_key(im, key);
		e->ie_fetching = gc_fetching(im, e->ie_sha256);
		e->ie_in_use = e->ie_nvms > 0 || e->ie_pins > 0 ||
		    e->ie_fetching || (p->gp_touched != NULL &&
		    strmap_get(p->gp_touched, key) != NULL);
		items[i].gi_key = e->ie_sha256;
		items[i].gi_bytes = e->ie_bytes;
		items[i].gi_last_used_ms = e->ie_last_used_ms;
		items[i].gi_in_use = e->ie_in_use;
	}
	if (!p->gp_gc || im->im_closing) {
		free(items);
		gc_finish(p);
		return;
	}
	log_debug("images", "image GC pass: deleting %zu of %zu images",
	    images_gc_choose(items, r->ir_nimages, r->ir_at_ms,
	    im->im_gc_age_s, im->im_gc_max_bytes), r->ir_nimages);
	for (size_t i = 0; i < r->ir_nimages; i++) {
		struct images_entry *e = &r->ir_images[i];
		char key[IMAGES_KEY_MAX];

		e->ie_why = items[i].gi_why;
		if (e->ie_why == IMAGES_GC_KEEP)
			continue;
		/* From here on an ensure of it waits for the deletion. */
		gc_entry_key(e, key);
		strmap_put(im->im_deleting, key, p);
	}
	free(items);
	im->im_jobs++;
	uv_queue_work(im->im_loop, &p->gp_work, gc_delete_work,
	    gc_delete_done);
}

static void
gc_start(struct images *im, bool gc, struct gc_req *reqs)
{
	struct carve_error err = { 0 };
	virConnectPtr conn = NULL;
	struct gc_pass *p;
	struct img_pin *pin;
	struct strmap_iter it;
	const char *key;

	if (im->im_closing)
		error_set(&err, CARVE_EUNAVAIL, "carved is shutting down");
	else if (im->im_conn == NULL)
		error_set(&err, CARVE_EUNAVAIL, "image garbage collection is "
		    "not set up");
	else
		conn = im->im_conn(im->im_conn_arg, gc, &err);
	if (conn == NULL) {
		if (!error_isset(&err))
			error_set(&err, CARVE_EUNAVAIL, "no libvirt connection");
		gc_reqs_reply(reqs, &err, NULL);
		return;
	}
	p = xcalloc(1, sizeof(*p));
	p->gp_im = im;
	p->gp_gc = gc;
	p->gp_conn = conn;
	p->gp_dir = xstrdup(im->im_dir);
	p->gp_pool = xstrdup(im->im_pool);
	p->gp_reqs = reqs;
	p->gp_rep.ir_gc = gc;
	if (gc) {
		/* What is held now is kept, even if released meanwhile. */
		p->gp_touched = strmap_new();
		for (pin = im->im_pins; pin != NULL; pin = pin->next)
			strmap_put(p->gp_touched, pin->key, im);
		it = strmap_iter(im->im_fetches);
		while (strmap_next(im->im_fetches, &it, &key, NULL))
			strmap_put(p->gp_touched, key, im);
		im->im_gc = p;
	}
	im->im_jobs++;
	p->gp_work.data = p;
	uv_queue_work(im->im_loop, &p->gp_work, gc_scan_work, gc_scan_done);
}

static struct gc_req *
gc_req_new(images_report_cb cb, void *arg)
{
	struct gc_req *q = xcalloc(1, sizeof(*q));

	q->cb = cb;
	q->arg = arg;
	return q;
}

void
images_list(struct images *im, images_report_cb cb, void *arg)
{
	gc_start(im, false, gc_req_new(cb, arg));
}

void
images_gc(struct images *im, images_report_cb cb, void *arg)
{
	struct gc_req *q = gc_req_new(cb, arg), **pp;

	if (im->im_gc == NULL) {
		gc_start(im, true, q);
		return;
	}
	/* The pass running may have read the pool before what the caller
	 * just did: it gets the next one. */
	for (pp = &im->im_gc_next; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = q;
}

static void
gc_on_timer(uv_timer_t *t)
{
	struct images *im = t->data;

	/* A pass still running (or asked for) is as good as a new one. */
	if (im->im_gc == NULL && im->im_gc_next == NULL)
		images_gc(im, NULL, NULL);
}

static json_object *
gc_entry_encode(const struct images_entry *e, bool gc)
{
	json_object *o = json_object_new_object();

	jsonx_add_string(o, "sha256", e->ie_sha256);
	jsonx_add_string(o, "format", vm_image_format_name(e->ie_format));
	jsonx_add_int(o, "bytes", (int64_t)e->ie_bytes);
	jsonx_add_int(o, "last_used_at", e->ie_last_used_ms);
	if (gc) {
		jsonx_add_string(o, "reason", images_gc_why_name(e->ie_why));
		if (e->ie_error != NULL)
			jsonx_add_string(o, "error", e->ie_error);
	}
	return o;
}

json_object *
images_report_encode(const struct images_report *r,
    const char *(*name_of)(void *arg, const char *vm_id), void *arg)
{
	json_object *arr = json_object_new_array(), *o;

	for (size_t i = 0; i < r->ir_nimages; i++) {
		const struct images_entry *e = &r->ir_images[i];
		json_object *vms;

		if (r->ir_gc) {
			if (e->ie_why != IMAGES_GC_KEEP)
				json_object_array_add(arr, gc_entry_encode(e,
				    true));
			continue;
		}
		o = gc_entry_encode(e, false);
		vms = json_object_new_array();
		for (size_t j = 0; j < e->ie_nvms; j++) {
			json_object *v = json_object_new_object();
			const char *name = name_of != NULL ?
			    name_of(arg, e->ie_vms[j]) : NULL;

			jsonx_add_string(v, "id", e->ie_vms[j]);
			if (name != NULL)
				jsonx_add_string(v, "name", name);
			json_object_array_add(vms, v);
		}
		json_object_object_add(o, "vms", vms);
		jsonx_add_int(o, "pins", e->ie_pins);
		jsonx_add_bool(o, "fetching", e->ie_fetching);
		jsonx_add_bool(o, "in_use", e->ie_in_use);
		json_object_array_add(arr, o);
	}
	if (!r->ir_gc)
		return arr;
	o = json_object_new_object();
	json_object_object_add(o, "deleted", arr);
	jsonx_add_int(o, "kept", (int64_t)(r->ir_nimages - r->ir_deleted));
	jsonx_add_int(o, "bytes_before", (int64_t)r->ir_bytes);
	jsonx_add_int(o, "bytes_after", (int64_t)(r->ir_bytes - r->ir_freed));
	jsonx_add_int(o, "freed_bytes", (int64_t)r->ir_freed);
	return o;
}

void
images_get_stats(const struct images *im, struct images_stats *st)
{
	*st = im->im_stats;
}
