/*
 * Unit tests for agent/images: which images `qemu-img info` checks accept
 * (small files made with qemu-img here), and the cache on a real loop with
 * file:// images: a fetch lands under its sha256, a wrong sha256 leaves no
 * file, concurrent requests share one fetch.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "agent/images.h"
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_inspect, setup, teardown),
		cmocka_unit_test(test_run),
		cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
