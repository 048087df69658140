/*
 * Unit tests for agent/images: which images `qemu-img info` checks accept
 * (small files made with qemu-img here), and the cache on a real loop with
 * file:// images: a fetch lands under its sha256, a wrong sha256 leaves no
 * file, concurrent requests share one fetch. Garbage collection: the policy
 * (table-driven), and passes on a loop against libvirt's test driver (a
 * pool whose volume has a cached image as its backing file): what a VM
 * uses, what a command pins and what is asked for during a pass stay; the
 * rest goes by age; an ensure after a deletion fetches the image again;
 * closing answers a pass running and one asked for.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "agent/images.h"
#include "common/jsonx.h"
#include "common/timeutil.h"
#include "common/xalloc.h"

struct fix {
	char dir[64];
};

static int
sh(const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	int rc;

	va_start(ap, fmt);
	cmd = xvasprintf(fmt, ap);
	va_end(ap);
	rc = system(cmd);
	free(cmd);
	return rc;
}

static int
setup(void **state)
{
	struct fix *f = xcalloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_images.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	sh("rm -rf '%s'", f->dir);
	free(f);
	return 0;
}

static bool
have_qemu_img(void)
{
	return sh("qemu-img --version >/dev/null 2>&1") == 0 &&
	    sh("qemu-io --version >/dev/null 2>&1") == 0;
}

/* ------------------------------------------------------------ inspect */

static void
test_inspect(void **state)
{
	struct fix *f = *state;
	static const struct {
		const char *make;           /* shell, %1$s = the directory */
		const char *file;
		enum vm_image_format fmt;
		int rc;
		uint64_t vsize;
		const char *msg;
	} cases[] = {
		{ "qemu-img create -q -f qcow2 %1$s/plain.qcow2 64M",
		  "plain.qcow2", VM_IMAGE_QCOW2, 0, 64ULL << 20, NULL },
		{ "qemu-img create -q -f qcow2 -b %1$s/plain.qcow2 -F qcow2 "
		  "%1$s/child.qcow2", "child.qcow2", VM_IMAGE_QCOW2, -1, 0,
		  "backing file" },
		{ "qemu-img create -q -f qcow2 -o data_file=%1$s/ext.raw "
		  "%1$s/df.qcow2 32M", "df.qcow2", VM_IMAGE_QCOW2, -1, 0,
		  "external data file" },
		{ "qemu-img create -q -f raw %1$s/base.raw 16M", "base.raw",
		  VM_IMAGE_RAW, 0, 16ULL << 20, NULL },
		/* A raw file claimed to be qcow2: not probed, refused. */
		{ "true", "base.raw", VM_IMAGE_QCOW2, -1, 0,
		  "not a usable qcow2 file" },
		/* A qcow2 file claimed raw is raw bytes to the guest: its
		 * backing file is never opened. */
		{ "true", "child.qcow2", VM_IMAGE_RAW, 0, 0, NULL },
		{ "true", "missing.qcow2", VM_IMAGE_QCOW2, -1, 0,
		  "not a usable qcow2 file" },
	};

	if (!have_qemu_img())
		skip();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct carve_error err = { 0 };
		uint64_t vsize = 0;
		char *path = xasprintf("%s/%s", f->dir, cases[i].file);
		int rc;

		assert_int_equal(sh(cases[i].make, f->dir), 0);
		rc = images_inspect(path, cases[i].fmt, &vsize, &err);
		if (rc != cases[i].rc)
			fail_msg("case %zu (%s): rc %d want %d: %s", i,
			    cases[i].file, rc, cases[i].rc, err.message);
		if (rc == 0 && cases[i].vsize != 0)
			assert_int_equal(vsize, cases[i].vsize);
		if (rc == -1) {
			assert_int_equal(err.code, CARVE_EINVAL);
			if (strstr(err.message, cases[i].msg) == NULL)
				fail_msg("case %zu: \"%s\" lacks \"%s\"", i,
				    err.message, cases[i].msg);
		}
		free(path);
	}
}

static void
test_run(void **state)
{
	struct carve_error err = { 0 };
	const char *ok[] = { "sh", "-c", "echo out; echo err >&2; exit 3",
	    NULL };
	const char *slow[] = { "sleep", "5", NULL };
	const char *none[] = { "/nonexistent/carve-x", NULL };
	char ebuf[64], *out = NULL;

	(void)state;
	assert_int_equal(images_run(ok, 100, 5000, &out, ebuf, sizeof(ebuf),
	    &err), 3);
	assert_string_equal(out, "out\n");
	assert_string_equal(ebuf, "err");
	free(out);
	assert_int_equal(images_run(slow, 100, 200, &out, ebuf, sizeof(ebuf),
	    &err), -1);
	assert_non_null(strstr(err.message, "did not finish within 200 ms"));
	assert_null(out);
	error_clear(&err);
	/* posix_spawnp reports a missing program as exit 127 or an error. */
	assert_true(images_run(none, 100, 1000, &out, ebuf, sizeof(ebuf),
	    &err) != 0);
	free(out);
}

/* ------------------------------------------------------------ the cache */

struct outcome {
	int calls;
	struct carve_error err;
};

static void
on_done(const struct carve_error *err, void *arg)
{
	struct outcome *o = arg;

	o->calls++;
	if (err != NULL)
		o->err = *err;
}

static void
on_closed(void *arg)
{
	*(bool *)arg = true;
}

static char *
sha_of(const char *path)
{
	char *cmd = xasprintf("sha256sum '%s'", path), buf[128] = "";
	FILE *p = popen(cmd, "r");

	free(cmd);
	assert_non_null(p);
	assert_non_null(fgets(buf, sizeof(buf), p));
	pclose(p);
	buf[64] = '\0';
	return xstrdup(buf);
}

static int
count_files(const char *dir)
{
	char *cmd = xasprintf("ls -A '%s' | wc -l", dir), buf[32] = "0";
	FILE *p = popen(cmd, "r");

	free(cmd);
	assert_non_null(fgets(buf, sizeof(buf), p));
	pclose(p);
	return atoi(buf);
}

static void
test_cache(void **state)
{
	struct fix *f = *state;
	struct images_opts io;
	struct images *im;
	struct carve_error err = { 0 };
	struct outcome a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	struct vm_image img;
	char *cache = xasprintf("%s/cache", f->dir);
	char *partial = xasprintf("%s/.partial", cache);
	char *src = xasprintf("%s/base.qcow2", f->dir), *url, *sum, *cached;
	uv_loop_t loop;
	bool closed = false;

	if (!have_qemu_img())
		skip();
	assert_int_equal(sh("qemu-img create -q -f qcow2 %s 8M && qemu-io -c "
	    "'write -P 0x41 0 4k' %s >/dev/null", src, src), 0);
	sum = sha_of(src);
	url = xasprintf("file://%s", src);
	/* A partial file of an earlier run is removed at start. */
	assert_int_equal(sh("mkdir -p %s && touch %s/stale.qcow2", partial,
	    partial), 0);

	uv_loop_init(&loop);
	memset(&io, 0, sizeof(io));
	io.io_dir = cache;
	io.io_max_bytes = 1ULL << 30;
	io.io_timeout_s = 60;
	assert_int_equal(images_new(&loop, &io, &im, &err), 0);
	assert_int_equal(count_files(partial), 0);

	/* Two at once share one fetch; both succeed. */
	memset(&img, 0, sizeof(img));
	img.vi_url = url;
	snprintf(img.vi_sha256, sizeof(img.vi_sha256), "%s", sum);
	img.vi_format = VM_IMAGE_QCOW2;
	images_ensure(im, &img, on_done, &a);
	images_ensure(im, &img, on_done, &b);
	assert_int_equal(images_active(im), 1);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_false(error_isset(&a.err));
	assert_false(error_isset(&b.err));
	cached = images_path(cache, &img);
	{
		char *s = sha_of(cached);
		struct stat st;

		assert_string_equal(s, sum);
		assert_int_equal(stat(cached, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0644);
		free(s);
	}
	/* Cached now: the source may go. */
	assert_int_equal(unlink(src), 0);
	images_ensure(im, &img, on_done, &c);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(c.calls, 1);
	assert_false(error_isset(&c.err));

	/* A wrong sha256 (of a source that exists): refused, nothing left. */
	assert_int_equal(sh("qemu-img create -q -f qcow2 %s 8M", src), 0);
	memset(img.vi_sha256, '0', 64);
	images_ensure(im, &img, on_done, &d);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.err.code, CARVE_EINVAL);
	assert_non_null(strstr(d.err.message, "sha256 mismatch: expected 0000"));
	assert_int_equal(count_files(partial), 0);
	assert_int_equal(count_files(cache), 2);    /* .partial + the image */

	images_close(im, on_closed, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_true(closed);
	assert_int_equal(uv_loop_close(&loop), 0);
	free(cached);
	free(sum);
	free(url);
	free(src);
	free(partial);
	free(cache);
}

/* ------------------------------------------------------------ GC policy */

#define GC_MAX_ITEMS 6
#define NOW (1000LL * 1000 * 1000 * 1000)
#define S(x) ((int64_t)(x) * 1000)

struct gc_case {
	const char *name;
	unsigned age_s;
	uint64_t max_bytes;
	size_t n;
	struct {
		uint64_t bytes;
		int64_t unused_ms;         /* now - last use */
		bool in_use;
		enum images_gc_why want;
	} it[GC_MAX_ITEMS];
	size_t want_chosen;
};

#define K IMAGES_GC_KEEP
#define A IMAGES_GC_AGE
#define C IMAGES_GC_CAP

static const struct gc_case gc_cases[] = {
	{ "nothing cached", 3600, 0, 0, { { 0 } }, 0 },
	{ "no policy: keep everything", 0, 0, 2,
	    { { 10, S(99999), false, K }, { 10, S(1), false, K } }, 0 },
	{ "old unused goes, young unused stays", 3600, 0, 2,
	    { { 10, S(3600), false, A }, { 10, S(3599), false, K } }, 1 },
	{ "old but in use stays", 60, 0, 2,
	    { { 10, S(999), true, K }, { 10, S(999), false, A } }, 1 },
	{ "last use in the future (clock step) stays", 60, 0, 1,
	    { { 10, -S(999), false, K } }, 0 },
	{ "under the cap: nothing", 0, 100, 2,
	    { { 50, S(9), false, K }, { 50, S(8), false, K } }, 0 },
	{ "over the cap: least recently used first, until under", 0, 100, 4,
	    { { 40, S(10), false, C }, { 40, S(30), false, C },
	      { 40, S(5), false, K }, { 40, S(1), false, K } }, 2 },
	{ "over the cap: the image in use is skipped", 0, 50, 3,
	    { { 40, S(99), true, K }, { 40, S(10), false, C },
	      { 10, S(1), false, K } }, 1 },
	{ "cap cannot be met: only in-use images left", 0, 10, 2,
	    { { 40, S(99), true, K }, { 40, S(10), false, C } }, 1 },
	{ "age first, then the cap counts what is left", 100, 60, 4,
	    { { 50, S(500), false, A }, { 30, S(50), false, C },
	      { 30, S(40), false, K }, { 20, S(1), true, K } }, 2 },
	{ "same last use: the larger goes first", 0, 60, 2,
	    { { 30, S(5), false, K }, { 50, S(5), false, C } }, 1 },
	{ "exactly at the cap: nothing", 0, 80, 2,
	    { { 40, S(5), false, K }, { 40, S(6), false, K } }, 0 },
	{ "zero-byte images do not count against the cap", 0, 1, 2,
	    { { 0, S(100), false, K }, { 1, S(1), false, K } }, 0 },
};

static void
test_gc_choose(void **state)
{
	const struct gc_case *c = *state;
	struct images_gc_item items[GC_MAX_ITEMS];
	char keys[GC_MAX_ITEMS][24];
	size_t chosen;

	memset(items, 0, sizeof(items));
	for (size_t i = 0; i < c->n; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
		items[i].gi_key = keys[i];
		items[i].gi_bytes = c->it[i].bytes;
		items[i].gi_last_used_ms = NOW - c->it[i].unused_ms;
		items[i].gi_in_use = c->it[i].in_use;
		/* Whatever it held before is overwritten. */
		items[i].gi_why = IMAGES_GC_CAP;
	}
	chosen = images_gc_choose(items, c->n, NOW, c->age_s, c->max_bytes);
	for (size_t i = 0; i < c->n; i++)
		if (items[i].gi_why != c->it[i].want)
			fail_msg("%s: item %zu: %s, want %s", c->name, i,
			    images_gc_why_name(items[i].gi_why),
			    images_gc_why_name(c->it[i].want));
	assert_int_equal(chosen, c->want_chosen);
}

/* ------------------------------------------------------------ GC passes */

struct gcfix {
	struct fix f;
	virConnectPtr conn;
	char *cache;
	char *pool;
	bool offline;              /* the provider refuses */
};

static virConnectPtr
gc_conn(void *arg, bool gc, struct carve_error *err)
{
	struct gcfix *g = arg;

	(void)gc;
	if (g->offline) {
		error_set(err, CARVE_EUNAVAIL, "offline for the test");
		return NULL;
	}
	virConnectRef(g->conn);
	return g->conn;
}

struct report {
	int calls;
	struct carve_error err;
	json_object *json;
};

static void
on_report(const struct carve_error *err, const struct images_report *r,
    void *arg)
{
	struct report *o = arg;

	o->calls++;
	if (err != NULL) {
		o->err = *err;
		assert_null(r);
		return;
	}
	json_object_put(o->json);
	o->json = images_report_encode(r, NULL, NULL);
}

/* Put a real qcow2 in the cache under its sha256, last used age_s ago. */
static char *
gc_cached(struct gcfix *g, const char *name, const char *size, int age_s)
{
	char *src = xasprintf("%s/%s.qcow2", g->f.dir, name), *sum, *dst;
	struct timespec ts[2];

	assert_int_equal(sh("qemu-img create -q -f qcow2 %s %s", src, size), 0);
	sum = sha_of(src);
	dst = xasprintf("%s/%s.qcow2", g->cache, sum);
	assert_int_equal(sh("cp %s %s && chmod 0644 %s", src, dst, dst), 0);
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= age_s;
	ts[1] = ts[0];
	assert_int_equal(utimensat(AT_FDCWD, dst, ts, 0), 0);
	free(dst);
	free(src);
	return sum;
}

static void
gc_image(struct vm_image *img, struct gcfix *g, const char *name,
    const char *sum, char **url)
{
	memset(img, 0, sizeof(*img));
	*url = xasprintf("file://%s/%s.qcow2", g->f.dir, name);
	img->vi_url = *url;
	snprintf(img->vi_sha256, sizeof(img->vi_sha256), "%s", sum);
	img->vi_format = VM_IMAGE_QCOW2;
}

static bool
gc_exists(struct gcfix *g, const char *sum)
{
	char *p = xasprintf("%s/%s.qcow2", g->cache, sum);
	bool ok = access(p, F_OK) == 0;

	free(p);
	return ok;
}

/* The sha256s of the "deleted" list of a pass's JSON, joined by ' '. */
static char *
gc_deleted(json_object *o)
{
	json_object *del, *e, *v;
	char *out = xstrdup("");

	assert_true(json_object_object_get_ex(o, "deleted", &del));
	for (size_t i = 0; i < json_object_array_length(del); i++) {
		char *s;

		e = json_object_array_get_idx(del, i);
		assert_true(json_object_object_get_ex(e, "sha256", &v));
		s = xasprintf("%s%s%s", out, *out ? " " : "",
		    json_object_get_string(v));
		free(out);
		out = s;
	}
	return out;
}

static void
gc_run_pass(uv_loop_t *loop, struct images *im, struct report *r)
{
	memset(r, 0, sizeof(*r));
	images_gc(im, on_report, r);
	uv_run(loop, UV_RUN_DEFAULT);
	assert_int_equal(r->calls, 1);
	if (error_isset(&r->err))
		fail_msg("pass failed: %s", r->err.message);
}

static void
test_gc_pass(void **state)
{
	struct fix *f = *state;
	struct gcfix g;
	struct images_opts io;
	struct images *im;
	struct carve_error err = { 0 };
	struct report r = { 0 }, r2 = { 0 };
	struct outcome o = { 0 };
	struct vm_image img;
	struct images_stats st;
	char *used, *pinned, *idle, *asked, *raced, *linked, *url, *want, *got;
	char *xml;
	json_object *arr, *e, *v;
	virStoragePoolPtr pool;
	virStorageVolPtr vol, vol2;
	uv_loop_t loop;
	bool closed = false;

	if (!have_qemu_img())
		skip();
	memset(&g, 0, sizeof(g));
	g.f = *f;
	g.cache = xasprintf("%s/cache", f->dir);
	assert_int_equal(mkdir(g.cache, 0755), 0);
	assert_non_null(g.conn = virConnectOpen("test:///default"));
	g.pool = xasprintf("carve-gc-unit-%d", (int)getpid());

	used = gc_cached(&g, "used", "1M", 3600);
	pinned = gc_cached(&g, "pinned", "2M", 3600);
	idle = gc_cached(&g, "idle", "3M", 3600);
	asked = gc_cached(&g, "asked", "4M", 3600);
	raced = gc_cached(&g, "raced", "5M", 3600);
	linked = gc_cached(&g, "linked", "6M", 3600);
	/* Not carve's: never touched. */
	assert_int_equal(sh("touch %s/README && touch -d '2001-01-01' "
	    "%s/README", g.cache, g.cache), 0);

	/* A VM's root volume on "used" (test driver: metadata only). */
	xml = xasprintf("<pool type='dir'><name>%s</name><target><path>%s/disks"
	    "</path></target></pool>", g.pool, f->dir);
	assert_non_null(pool = virStoragePoolCreateXML(g.conn, xml, 0));
	free(xml);
	xml = xasprintf("<volume><name>0b6f2d1c-5a0e-4d7b-9c1f-3e2a1b0c9d8e-"
	    "root.qcow2</name><capacity>1073741824</capacity><target><format "
	    "type='qcow2'/></target><backingStore><path>%s/%s.qcow2</path>"
	    "<format type='qcow2'/></backingStore></volume>", g.cache, used);
	assert_non_null(vol = virStorageVolCreateXML(pool, xml, 0));
	free(xml);
	/* Another VM's, on "linked" through a symlink to the cache. */
	assert_int_equal(sh("ln -s %s %s/link", g.cache, f->dir), 0);
	xml = xasprintf("<volume><name>7c0e4b1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b-"
	    "root.qcow2</name><capacity>1073741824</capacity><target><format "
	    "type='qcow2'/></target><backingStore><path>%s/link/%s.qcow2</path>"
	    "<format type='qcow2'/></backingStore></volume>", f->dir, linked);
	assert_non_null(vol2 = virStorageVolCreateXML(pool, xml, 0));
	free(xml);

	uv_loop_init(&loop);
	memset(&io, 0, sizeof(io));
	io.io_dir = g.cache;
	io.io_max_bytes = 1ULL << 30;
	io.io_timeout_s = 60;
	io.io_gc_unused_age_s = 600;
	io.io_pool = g.pool;
	io.io_conn = gc_conn;
	io.io_conn_arg = &g;
	assert_int_equal(images_new(&loop, &io, &im, &err), 0);
	images_get_stats(im, &st);
	assert_int_equal(st.is_images, 6);

	/* A command's prepare step ensured "pinned" (a scope, as the
	 * engine opens it). */
	gc_image(&img, &g, "pinned", pinned, &url);
	images_pin_scope(im, "cmd-1");
	images_ensure(im, &img, on_done, &o);
	images_pin_scope(im, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(o.calls, 1);
	assert_false(error_isset(&o.err));
	assert_int_equal(images_pins(im, &img), 1);
	free(url);

	/* The listing: who uses what; nothing deleted. */
	images_list(im, on_report, &r);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(r.calls, 1);
	assert_non_null(arr = r.json);
	assert_int_equal(json_object_array_length(arr), 6);
	for (size_t i = 0; i < 6; i++) {
		const char *sha;

		e = json_object_array_get_idx(arr, i);
		assert_true(json_object_object_get_ex(e, "sha256", &v));
		sha = json_object_get_string(v);
		assert_true(json_object_object_get_ex(e, "in_use", &v));
		assert_int_equal(json_object_get_boolean(v),
		    strcmp(sha, used) == 0 || strcmp(sha, pinned) == 0 ||
		    strcmp(sha, linked) == 0);
		assert_true(json_object_object_get_ex(e, "vms", &v));
		assert_int_equal(json_object_array_length(v),
		    strcmp(sha, used) == 0 || strcmp(sha, linked) == 0);
		if (strcmp(sha, used) == 0) {
			json_object *id;

			assert_true(json_object_object_get_ex(
			    json_object_array_get_idx(v, 0), "id", &id));
			assert_string_equal(json_object_get_string(id),
			    "0b6f2d1c-5a0e-4d7b-9c1f-3e2a1b0c9d8e");
		}
	}
	assert_true(gc_exists(&g, idle));
	json_object_put(r.json);

	/*
	 * A pass, during which "asked" is ensured and "raced" is pinned and
	 * released again (a create that made its volume after the pass read
	 * the pool and ended before it decided): both stay, as do the used
	 * and the pinned ones; "idle" goes.
	 */
	memset(&r, 0, sizeof(r));
	images_gc(im, on_report, &r);
	gc_image(&img, &g, "raced", raced, &url);
	images_pin(im, &img, "cmd-2");
	images_unpin(im, "cmd-2");
	free(url);
	/* Asked for meanwhile: runs after this pass. */
	images_gc(im, on_report, &r2);
	gc_image(&img, &g, "asked", asked, &url);
	memset(&o, 0, sizeof(o));
	images_ensure(im, &img, on_done, &o);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(o.calls, 1);
	assert_false(error_isset(&o.err));
	assert_int_equal(r.calls, 1);
	assert_int_equal(r2.calls, 1);
	free(url);
	got = gc_deleted(r.json);
	assert_string_equal(got, idle);
	free(got);
	assert_true(gc_exists(&g, used));
	assert_true(gc_exists(&g, pinned));
	assert_true(gc_exists(&g, asked));
	assert_false(gc_exists(&g, idle));
	assert_int_equal(sh("test -f %s/README", g.cache), 0);
	/* The second pass (asked for during the first): "asked" was just
	 * used (its mtime): it stays; nothing holds "raced" any more. */
	got = gc_deleted(r2.json);
	assert_string_equal(got, raced);
	free(got);
	json_object_put(r.json);
	json_object_put(r2.json);

	/* The command ends; its image is collectable once it is old. */
	images_unpin(im, "cmd-1");
	gc_image(&img, &g, "pinned", pinned, &url);
	assert_int_equal(images_pins(im, &img), 0);
	free(url);
	{
		char *p = xasprintf("%s/%s.qcow2", g.cache, pinned);
		struct timespec ts[2];

		clock_gettime(CLOCK_REALTIME, &ts[0]);
		ts[0].tv_sec -= 3600;
		ts[1] = ts[0];
		assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
		free(p);
	}
	gc_run_pass(&loop, im, &r);
	got = gc_deleted(r.json);
	assert_string_equal(got, pinned);
	free(got);
	json_object_put(r.json);

	/* An ensure of a deleted image fetches it again. */
	gc_image(&img, &g, "idle", idle, &url);
	memset(&o, 0, sizeof(o));
	images_ensure(im, &img, on_done, &o);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_false(error_isset(&o.err));
	assert_true(gc_exists(&g, idle));
	free(url);

	/* The VM is destroyed: its image goes once old enough. */
	assert_int_equal(virStorageVolDelete(vol, 0), 0);
	{
		char *p = xasprintf("%s/%s.qcow2", g.cache, used);
		struct timespec ts[2];

		clock_gettime(CLOCK_REALTIME, &ts[0]);
		ts[0].tv_sec -= 3600;
		ts[1] = ts[0];
		assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
		free(p);
	}
	gc_run_pass(&loop, im, &r);
	got = gc_deleted(r.json);
	assert_string_equal(got, used);
	free(got);
	json_object_put(r.json);
	images_get_stats(im, &st);
	assert_int_equal(st.is_gc_deleted, 4);
	/* idle (fetched again), asked, linked */
	assert_int_equal(st.is_images, 3);
	assert_true(gc_exists(&g, linked));

	/* No libvirt: nothing can be judged, nothing is deleted. */
	g.offline = true;
	memset(&r, 0, sizeof(r));
	images_gc(im, on_report, &r);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err.code, CARVE_EUNAVAIL);
	g.offline = false;

	/* No pool: likewise (which images VMs use is unknown). */
	assert_int_equal(virStoragePoolDestroy(pool), 0);
	memset(&r, 0, sizeof(r));
	images_gc(im, on_report, &r);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err.code, CARVE_EUNAVAIL);
	want = xasprintf("storage pool %s is not defined", g.pool);
	assert_non_null(strstr(r.err.message, want));
	free(want);
	assert_true(gc_exists(&g, asked));

	images_close(im, on_closed, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_true(closed);
	assert_int_equal(uv_loop_close(&loop), 0);
	virStorageVolFree(vol);
	virStorageVolFree(vol2);
	virStoragePoolFree(pool);
	virConnectClose(g.conn);
	free(linked);
	free(used);
	free(pinned);
	free(idle);
	free(asked);
	free(raced);
	free(g.pool);
	free(g.cache);
}

struct watch {
	uv_timer_t t;
	struct gcfix *g;
	const char *sha;
	int64_t deadline;
};

/* Keeps the loop up (the GC timer does not) until the image is gone. */
static void
watch_tick(uv_timer_t *t)
{
	struct watch *w = t->data;

	if (!gc_exists(w->g, w->sha) || time_mono_ms() > w->deadline)
		uv_close((uv_handle_t *)t, NULL);
}

/* A periodic pass runs by itself; the timer does not keep the loop up. */
static void
test_gc_timer(void **state)
{
	struct fix *f = *state;
	struct gcfix g;
	struct images_opts io;
	struct images *im;
	struct carve_error err = { 0 };
	struct images_stats st;
	char *idle, *xml;
	virStoragePoolPtr pool;
	uv_loop_t loop;
	bool closed = false;
	struct watch w;

	if (!have_qemu_img())
		skip();
	memset(&g, 0, sizeof(g));
	g.f = *f;
	g.cache = xasprintf("%s/cache", f->dir);
	assert_int_equal(mkdir(g.cache, 0755), 0);
	assert_non_null(g.conn = virConnectOpen("test:///default"));
	g.pool = xasprintf("carve-gc-timer-%d", (int)getpid());
	xml = xasprintf("<pool type='dir'><name>%s</name><target><path>%s/disks"
	    "</path></target></pool>", g.pool, f->dir);
	assert_non_null(pool = virStoragePoolCreateXML(g.conn, xml, 0));
	free(xml);
	idle = gc_cached(&g, "idle", "1M", 30);

	uv_loop_init(&loop);
	memset(&io, 0, sizeof(io));
	io.io_dir = g.cache;
	io.io_max_bytes = 1ULL << 30;
	io.io_timeout_s = 60;
	io.io_gc_interval_s = 1;
	io.io_gc_max_bytes = 1;       /* the cap alone takes it */
	io.io_pool = g.pool;
	io.io_conn = gc_conn;
	io.io_conn_arg = &g;
	assert_int_equal(images_new(&loop, &io, &im, &err), 0);
	/* Only the unref'd timer: the loop would not wait for it. */
	assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
	w.g = &g;
	w.sha = idle;
	w.deadline = time_mono_ms() + 10000;
	uv_timer_init(&loop, &w.t);
	w.t.data = &w;
	uv_timer_start(&w.t, watch_tick, 100, 100);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_false(gc_exists(&g, idle));
	images_get_stats(im, &st);
	assert_int_equal(st.is_gc_deleted, 1);
	assert_int_equal(st.is_images, 0);
	assert_int_equal(st.is_bytes, 0);
	/* A pass over an empty cache. */
	{
		struct report r;
		char *got;

		gc_run_pass(&loop, im, &r);
		got = gc_deleted(r.json);
		assert_string_equal(got, "");
		free(got);
		json_object_put(r.json);
	}

	/* Closing with a pass running and another asked for: both are
	 * answered, then the cache closes. */
	{
		struct report r1 = { 0 }, r2 = { 0 };

		images_gc(im, on_report, &r1);
		images_gc(im, on_report, &r2);
		images_close(im, on_closed, &closed);
		assert_int_equal(r2.calls, 1);
		assert_int_equal(r2.err.code, CARVE_EUNAVAIL);
		uv_run(&loop, UV_RUN_DEFAULT);
		assert_int_equal(r1.calls, 1);
		json_object_put(r1.json);
	}
	assert_true(closed);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(virStoragePoolDestroy(pool), 0);
	virStoragePoolFree(pool);
	virConnectClose(g.conn);
	free(idle);
	free(g.pool);
	free(g.cache);
}

int
main(void)
{
	struct CMUnitTest tests[3 + sizeof(gc_cases) / sizeof(gc_cases[0]) + 2];
	size_t n = 0;

	tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
	    test_inspect, setup, teardown);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_run);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
	    test_cache, setup, teardown);
	for (size_t i = 0; i < sizeof(gc_cases) / sizeof(gc_cases[0]); i++) {
		tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(
		    test_gc_choose, (void *)&gc_cases[i]);
		tests[n++].name = gc_cases[i].name;
	}
	tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
	    test_gc_pass, setup, teardown);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
	    test_gc_timer, setup, teardown);

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return _cmocka_run_group_tests("images", tests, n, NULL, NULL);
}
