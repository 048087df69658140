/*
 * The cloud-init seed ISO, read back the way a guest would see it: isoinfo
 * (same package as genisoimage) shows the volume label and extracts the
 * Joliet files. Checked: the exact meta-data and user-data for keys only,
 * user_data only, both, neither, a hostile user_data (passed through byte
 * for byte, never reaching a shell) and values that need YAML quoting; an
 * existing seed is replaced, mode 0600; failures (a path that cannot be
 * written, genisoimage failing, genisoimage hanging past the timeout) give
 * an error naming the cause, leave the old file alone and leave no
 * temporary file or directory behind. Each test owns a mkdtemp directory
 * and points TMPDIR into it so seed_build's private directory is counted.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/seed.h"
#include "common/xalloc.h"

struct fix {
	char dir[PATH_MAX];
	char tmp[PATH_MAX + 8];      /* TMPDIR for seed_build */
	char iso[PATH_MAX + 16];
	char *old_tmpdir;
	char *old_path;
};

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR"), *path = getenv("PATH");

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/test_seed.XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->tmp, sizeof(f->tmp), "%s/tmp", f->dir);
	assert_int_equal(mkdir(f->tmp, 0700), 0);
	snprintf(f->iso, sizeof(f->iso), "%s/vm-seed.iso", f->dir);
	f->old_tmpdir = tmp != NULL ? xstrdup(tmp) : NULL;
	f->old_path = path != NULL ? xstrdup(path) : NULL;
	assert_int_equal(setenv("TMPDIR", f->tmp, 1), 0);
	*state = f;
	return 0;
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	if (f->old_tmpdir != NULL)
		setenv("TMPDIR", f->old_tmpdir, 1);
	else
		unsetenv("TMPDIR");
	if (f->old_path != NULL)
		setenv("PATH", f->old_path, 1);
	assert_int_equal(nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
	free(f->old_tmpdir);
	free(f->old_path);
	free(f);
	return 0;
}

/* Entries in a directory, dot files included (leftovers are hidden). */
static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* The whole stdout of a command (test inputs only: paths we made). */
static char *
run(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	char *buf = NULL;
	size_t len = 0, n;
	char chunk[4096];

	assert_non_null(p);
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0) {
		buf = xrealloc(buf, len + n + 1);
		memcpy(buf + len, chunk, n);
		len += n;
	}
	buf = xrealloc(buf, len + 1);
	buf[len] = '\0';
	assert_int_equal(pclose(p), 0);
	return buf;
}

static char *
iso_file(const char *iso, const char *name)
{
	char *cmd = xasprintf("isoinfo -i '%s' -J -x /%s", iso, name);
	char *out = run(cmd);

	free(cmd);
	return out;
}

/* Label "cidata", both files as expected, mode 0600. */
static void
check_iso(const char *iso, const char *want_meta, const char *want_user)
{
	char *cmd = xasprintf("isoinfo -d -i '%s'", iso);
	char *info = run(cmd), *got;
	struct stat st;

	if (strstr(info, "Volume id: cidata\n") == NULL)
		fail_msg("no cidata label in:\n%s", info);
	got = iso_file(iso, "meta-data");
	assert_string_equal(got, want_meta);
	free(got);
	got = iso_file(iso, "user-data");
	assert_string_equal(got, want_user);
	free(got);
	assert_int_equal(stat(iso, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	free(info);
	free(cmd);
}

static const char *const keys[] = {
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBz0Zs+ alice@example.org",
	"ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY= bob",
};

static void
test_contents(void **state)
{
	struct fix *f = *state;
	static const struct {
		const char *name;
		size_t nkeys;
		const char *user_data;
		const char *meta;
		const char *user;
	} cases[] = {
		{ "keys only", 2, NULL,
		    "instance-id: \"vm-0123\"\n"
		    "local-hostname: \"web-1\"\n"
		    "public-keys:\n"
		    "  - \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBz0Zs+ "
		    "alice@example.org\"\n"
		    "  - \"ecdsa-sha2-nistp256 "
		    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY= bob\"\n",
		    "#cloud-config\n"
		    "hostname: \"web-1\"\n"
		    "ssh_authorized_keys:\n"
		    "  - \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBz0Zs+ "
		    "alice@example.org\"\n"
		    "  - \"ecdsa-sha2-nistp256 "
		    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY= bob\"\n" },
		{ "user_data only", 0, "#cloud-config\npackages: [nginx]\n",
		    "instance-id: \"vm-0123\"\n"
		    "local-hostname: \"web-1\"\n",
		    "#cloud-config\npackages: [nginx]\n" },
		{ "both", 1, "#cloud-config\nruncmd:\n  - [touch, /x]\n",
		    "instance-id: \"vm-0123\"\n"
		    "local-hostname: \"web-1\"\n"
		    "public-keys:\n"
		    "  - \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBz0Zs+ "
		    "alice@example.org\"\n",
		    "#cloud-config\nruncmd:\n  - [touch, /x]\n" },
		{ "neither", 0, NULL,
		    "instance-id: \"vm-0123\"\n"
		    "local-hostname: \"web-1\"\n",
		    "#cloud-config\nhostname: \"web-1\"\n" },
		{ "empty user_data", 0, "",
		    "instance-id: \"vm-0123\"\n"
		    "local-hostname: \"web-1\"\n",
		    "" },
	};
	struct carve_error err = { 0 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("# %s\n", cases[i].name);
		if (seed_build(f->iso, "vm-0123", "web-1",
		    cases[i].nkeys > 0 ? keys : NULL, cases[i].nkeys,
		    cases[i].user_data, &err) != 0)
			fail_msg("%s: %s", cases[i].name, err.message);
		check_iso(f->iso, cases[i].meta, cases[i].user);
		/* Only the seed itself: no temporary left, here or in TMPDIR. */
		assert_int_equal(count_entries(f->dir), 2);
		assert_int_equal(count_entries(f->tmp), 0);
	}
}

/*
 * A user_data that would do damage if it ever went through a shell or a
 * format string arrives byte for byte; the command substitution in it is
 * never run.
 */
static void
test_hostile_user_data(void **state)
{
	struct fix *f = *state;
	struct carve_error err = { 0 };
	char *ud, *got, canary[PATH_MAX + 16];

	snprintf(canary, sizeof(canary), "%s/pwned", f->dir);
	ud = xasprintf("#!/bin/sh\necho \"$(touch %s)\" `touch %s`; "
	    "rm -rf '/nonexistent' && echo %%s%%n \\ \\\" |& > <\n"
	    "--output /etc/passwd -volid x\n\t\x01\xc3\xa9\n", canary, canary);
	assert_int_equal(seed_build(f->iso, "vm-0123", "web-1", NULL, 0, ud,
	    &err), 0);
	got = iso_file(f->iso, "user-data");
	assert_string_equal(got, ud);
	assert_int_equal(access(canary, F_OK), -1);
	free(got);
	free(ud);
}

/* Values YAML would misread unquoted stay strings, escaped. */
static void
test_yaml_quoting(void **state)
{
	struct fix *f = *state;
	struct carve_error err = { 0 };
	const char *const odd[] = { "a\"b\\c: #d\x01" };
	char *got;

	assert_int_equal(seed_build(f->iso, "123", "yes", odd, 1, NULL, &err),
	    0);
	got = iso_file(f->iso, "meta-data");
	assert_string_equal(got,
	    "instance-id: \"123\"\n"
	    "local-hostname: \"yes\"\n"
	    "public-keys:\n"
	    "  - \"a\\\"b\\\\c: #d\\x01\"\n");
	free(got);
}

static void
write_text(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static char *
read_text(const char *path)
{
	FILE *fp = fopen(path, "r");
	char buf[256];
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return xstrdup(buf);
}

static void
test_replaces(void **state)
{
	struct fix *f = *state;
	struct carve_error err = { 0 };

	write_text(f->iso, "old seed\n", 0644);
	assert_int_equal(seed_build(f->iso, "vm-0123", "web-1", NULL, 0, NULL,
	    &err), 0);
	check_iso(f->iso, "instance-id: \"vm-0123\"\n"
	    "local-hostname: \"web-1\"\n",
	    "#cloud-config\nhostname: \"web-1\"\n");
	assert_int_equal(count_entries(f->dir), 2);
}

static void
test_unwritable(void **state)
{
	struct fix *f = *state;
	struct carve_error err = { 0 };
	char path[PATH_MAX + 32];

	/* A directory that is not there. */
	snprintf(path, sizeof(path), "%s/nodir/seed.iso", f->dir);
	assert_int_equal(seed_build(path, "vm-0123", "web-1", NULL, 0, NULL,
	    &err), -1);
	assert_int_equal(err.code, CARVE_EINTERNAL);
	assert_non_null(strstr(err.message, path));
	assert_non_null(strstr(err.message, "No such file or directory"));

	/* A path that is a directory: everything works up to the rename. */
	error_clear(&err);
	snprintf(path, sizeof(path), "%s/isdir", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(seed_build(path, "vm-0123", "web-1", keys, 1, NULL,
	    &err), -1);
	assert_int_equal(err.code, CARVE_EINTERNAL);
	assert_non_null(strstr(err.message, "cannot rename"));
	assert_int_equal(count_entries(f->dir), 2);   /* tmp/ and isdir/ */
	assert_int_equal(count_entries(path), 0);
	assert_int_equal(count_entries(f->tmp), 0);

	/* No private directory can be made: nothing is left either. */
	error_clear(&err);
	snprintf(path, sizeof(path), "%s/nodir", f->dir);
	assert_int_equal(setenv("TMPDIR", path, 1), 0);
	assert_int_equal(seed_build(f->iso, "vm-0123", "web-1", NULL, 0, NULL,
	    &err), -1);
	assert_non_null(strstr(err.message, "temporary directory"));
	assert_int_equal(count_entries(f->dir), 2);

	/* Missing arguments. */
	error_clear(&err);
	assert_int_equal(seed_build(f->iso, "vm-0123", NULL, NULL, 0, NULL,
	    &err), -1);
	assert_int_equal(err.code, CARVE_EINVAL);
}

/* A fake genisoimage first in PATH. */
static void
fake_tool(struct fix *f, const char *script)
{
	char bin[PATH_MAX + 8], tool[PATH_MAX + 32], *path;

	snprintf(bin, sizeof(bin), "%s/bin", f->dir);
	assert_int_equal(mkdir(bin, 0700), 0);
	snprintf(tool, sizeof(tool), "%s/genisoimage", bin);
	write_text(tool, script, 0700);
	path = xasprintf("%s:%s", bin, f->old_path != NULL ? f->old_path :
	    "/usr/bin:/bin");
	assert_int_equal(setenv("PATH", path, 1), 0);
	free(path);
}

static void
test_tool_fails(void **state)
{
	struct fix *f = *state;
	struct carve_error err = { 0 };
	char *got;

	write_text(f->iso, "old seed\n", 0644);
	fake_tool(f, "#!/bin/sh\necho 'I: some progress'\n"
	    "echo 'genisoimage: Invalid node - x' >&2\nexit 3\n");
	assert_int_equal(seed_build(f->iso, "vm-0123", "web-1", NULL, 0, NULL,
	    &err), -1);
	assert_int_equal(err.code, CARVE_EINTERNAL);
	assert_non_null(strstr(err.message,
	    "genisoimage failed (exit status 3): I: some progress; "
	    "genisoimage: Invalid node - x"));
	got = read_text(f->iso);
	assert_string_equal(got, "old seed\n");
	free(got);
	assert_int_equal(count_entries(f->dir), 3);   /* tmp/ bin/ iso */
	assert_int_equal(count_entries(f->tmp), 0);
}

static void
test_tool_missing(void **state)
{
	struct fix *f = *state;
	struct carve_error err = { 0 };

	assert_int_equal(setenv("PATH", f->tmp, 1), 0);
	assert_int_equal(seed_build(f->iso, "vm-0123", "web-1", NULL, 0, NULL,
	    &err), -1);
	assert_non_null(strstr(err.message, "cannot run genisoimage"));
	assert_int_equal(count_entries(f->dir), 1);
	assert_int_equal(count_entries(f->tmp), 0);
}

/* A tool that hangs is killed at the timeout; nothing is left behind. */
static void
test_tool_hangs(void **state)
{
	struct fix *f = *state;
	struct carve_error err = { 0 };
	struct timespec t0, t1;
	double took;

	fake_tool(f, "#!/bin/sh\necho working\nexec sleep 60\n");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(seed_build(f->iso, "vm-0123", "web-1", NULL, 0, NULL,
	    &err), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	took = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_non_null(strstr(err.message,
	    "genisoimage did not finish within 10 s (killed): working"));
	assert_true(took >= SEED_TIMEOUT_MS / 1000.0 - 0.1);
	assert_true(took < SEED_TIMEOUT_MS / 1000.0 + 3.0);
	assert_int_equal(count_entries(f->dir), 2);   /* tmp/ bin/ */
	assert_int_equal(count_entries(f->tmp), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_contents, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_user_data, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_yaml_quoting, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_replaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unwritable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tool_fails, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tool_missing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tool_hangs, setup,
		    teardown),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
