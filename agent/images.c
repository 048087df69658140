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
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

struct img_waiter {
	struct img_waiter *next;
	images_cb cb;
	void *arg;
};

struct fetch {
	struct images *f_im;
	char f_key[80];                /* <sha256>.<format> */
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
	uv_work_t f_work;
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
};

static void fetch_finish_start(struct fetch *f);
static void images_check_closed(struct images *im);

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
	else if (f->f_need_download || f->f_copied)
		log_kv(LOG_LVL_INFO, "images", "image cached",
		    "sha256", f->f_img.vi_sha256, "path", f->f_final,
		    (char *)NULL);
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

	if (!error_isset(err) && f->f_len > 0) {
		EVP_DigestUpdate(f->f_md, f->f_buf, f->f_len);
		(void)images_write_all(f->f_fd, f->f_buf, f->f_len, err);
	}
	if (!error_isset(err) && (fsync(f->f_fd) < 0 ||
	    fchmod(f->f_fd, 0644) < 0))
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
		(void)images_inspect(f->f_final, f->f_img.vi_format, &vsize, err);
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
	*out = im;
	return 0;
}

void
images_ensure(struct images *im, const struct vm_image *img, images_cb cb,
    void *arg)
{
	struct img_waiter *w;
	struct fetch *f;
	char key[80];

	if (im->im_closing) {
		struct carve_error e = { 0 };

		error_set(&e, CARVE_EUNAVAIL, "carved is shutting down");
		cb(&e, arg);
		return;
	}
	snprintf(key, sizeof(key), "%s.%s", img->vi_sha256,
	    vm_image_format_name(img->vi_format));
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
	im->im_jobs++;
	f->f_work.data = f;
	uv_queue_work(im->im_loop, &f->f_work, fetch_probe_work,
	    fetch_probe_done);
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

	strmap_free(im->im_fetches);
	free(im->im_dir);
	free(im->im_ca_file);
	free(im);
	if (cb != NULL)
		cb(cbarg);
}

static void
images_check_closed(struct images *im)
{
	if (!im->im_closing || im->im_http_closing || im->im_jobs > 0 ||
	    strmap_count(im->im_fetches) > 0)
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
	struct fetch **busy;
	size_t n = 0;

	if (im->im_closing)
		return;
	im->im_closing = true;
	atomic_store(&im->im_cancel, true);
	im->im_close_cb = cb;
	im->im_close_arg = arg;
	error_set(&e, CARVE_EUNAVAIL, "carved is shutting down");
	/* Cancelling may complete fetches (and change the map): collect
	 * first. */
	busy = xcalloc(strmap_count(im->im_fetches) + 1, sizeof(*busy));
	it = strmap_iter(im->im_fetches);
	while (strmap_next(im->im_fetches, &it, NULL, &v)) {
		struct fetch *f = v;

		fetch_fail(f, &e);
		if (f->f_req != NULL)
			busy[n++] = f;
	}
	for (size_t i = 0; i < n; i++)
		if (busy[i]->f_req != NULL)
			http_cancel(busy[i]->f_req);
	free(busy);
	images_check_closed(im);
}
