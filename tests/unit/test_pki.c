/*
 * The node's identity files: the key carved makes is EC P-256 and written
 * 0600 whatever the umask, the CSR names the node, certificate dates read
 * back exactly, a key readable by others is refused, an install replaces
 * key and certificate together (and refuses a certificate that is not
 * ours), a crash in the middle of an install is finished or undone, and the
 * renewal point lies between 70% and 80% of the lifetime. Each test owns a
 * mkdtemp directory.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "tests/unit/tls_fixture.h"

#include "agent/pki.h"
#include "common/xalloc.h"

struct fix {
	char dir[PATH_MAX];
	char key[PATH_MAX + 16];
	char cert[PATH_MAX + 16];
};

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/test_pki.XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->key, sizeof(f->key), "%s/client.key", f->dir);
	snprintf(f->cert, sizeof(f->cert), "%s/client.crt", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;
	DIR *d = opendir(f->dir);
	struct dirent *de;
	char p[PATH_MAX + 256];

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, de->d_name);
		if (unlink(p) != 0)
			assert_int_equal(rmdir(p), 0);
	}
	closedir(d);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

/* Files in the directory (temporary leftovers show up here). */
static int
count_files(const struct fix *f)
{
	DIR *d = opendir(f->dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static mode_t
file_mode(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

/* A certificate for the key in key_pem, signed by ca. */
static X509 *
cert_for(const char *key_pem, const char *cn, X509 *ca, EVP_PKEY *ca_key,
    time_t nb, time_t na)
{
	BIO *b = BIO_new_mem_buf(key_pem, -1);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	X509 *x;

	assert_non_null(k);
	x = tt_cert(k, cn, NULL, ca, ca_key, false, nb, na);
	EVP_PKEY_free(k);
	BIO_free(b);
	return x;
}

/* ---------------------------------------------------------------- tests */

static void
test_key_and_csr(void **state)
{
	char *key = NULL, *csr = NULL;
	struct carve_error err = { 0 };
	EVP_PKEY *k, *pub;
	X509_REQ *req;
	BIO *b;
	char group[64], cn[80];
	size_t glen;

	(void)state;
	assert_int_equal(pki_make_key_csr("host-1.example", &key, &csr, &err), 0);
	assert_non_null(strstr(key, "-----BEGIN PRIVATE KEY-----"));
	assert_non_null(strstr(csr, "-----BEGIN CERTIFICATE REQUEST-----"));

	b = BIO_new_mem_buf(key, -1);
	k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(k);
	assert_int_equal(EVP_PKEY_get_group_name(k, group, sizeof(group),
	    &glen), 1);
	assert_string_equal(group, "prime256v1");

	b = BIO_new_mem_buf(csr, -1);
	req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(req);
	assert_true(X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req),
	    NID_commonName, cn, sizeof(cn)) > 0);
	assert_string_equal(cn, "host-1.example");
	/* Signed by the key it carries, which is the key we keep. */
	pub = X509_REQ_get0_pubkey(req);
	assert_int_equal(X509_REQ_verify(req, pub), 1);
	assert_int_equal(EVP_PKEY_eq(pub, k), 1);

	X509_REQ_free(req);
	EVP_PKEY_free(k);
	xfree_secret(key);
	free(csr);
}

static void
test_write_file(void **state)
{
	struct fix *f = *state;
	struct carve_error err = { 0 };
	char buf[64];
	mode_t old;
	FILE *fp;

	old = umask(0);
	assert_int_equal(pki_write_file(f->key, "secret\n", 7, 0600, &err), 0);
	umask(old);
	assert_int_equal(file_mode(f->key), 0600);
	assert_int_equal(pki_write_file(f->key, "second", 6, 0600, &err), 0);
	fp = fopen(f->key, "r");
	assert_non_null(fp);
	assert_non_null(fgets(buf, sizeof(buf), fp));
	fclose(fp);
	assert_string_equal(buf, "second");
	assert_int_equal(count_files(f), 1);    /* no temporary left behind */

	/* A directory that does not exist: an error naming the path. */
	assert_int_equal(pki_write_file("/nonexistent/dir/x.key", "k", 1, 0600,
	    &err), -1);
	assert_non_null(strstr(err.message, "/nonexistent/dir/x.key"));
}

static void
make_mode(const char *path, mode_t mode)
{
	tt_write(path, "key", mode);
}

static void
test_key_file_check(void **state)
{
	struct fix *f = *state;
	static const struct {
		mode_t mode;
		int rc;
	} cases[] = {
		{ 0600, 0 }, { 0400, 0 }, { 0640, -1 }, { 0604, -1 },
		{ 0660, -1 }, { 0644, -1 }, { 0610, -1 },
	};
	struct carve_error err = { 0 };
	char link[PATH_MAX + 16];

	assert_int_equal(pki_check_key_file(f->key, &err), 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		error_clear(&err);
		make_mode(f->key, cases[i].mode);
		if (pki_check_key_file(f->key, &err) != cases[i].rc)
			fail_msg("mode %04o: want %d (%s)", cases[i].mode,
			    cases[i].rc, err.message);
		if (cases[i].rc < 0) {
			assert_int_equal(err.code, CARVE_EPERM);
			assert_non_null(strstr(err.message, "chmod 600"));
		}
		unlink(f->key);
	}
	/* A symbolic link (to a fine file) is refused too. */
	make_mode(f->cert, 0600);
	snprintf(link, sizeof(link), "%s/link.key", f->dir);
	assert_int_equal(symlink(f->cert, link), 0);
	error_clear(&err);
	assert_int_equal(pki_check_key_file(link, &err), -1);
	assert_non_null(strstr(err.message, "symbolic link"));
	/* And a directory. */
	assert_int_equal(mkdir(f->key, 0700), 0);
	error_clear(&err);
	assert_int_equal(pki_check_key_file(f->key, &err), -1);
}

static void
test_cert_info(void **state)
{
	struct fix *f = *state;
	struct carve_error err = { 0 };
	struct pki_cert_info info;
	EVP_PKEY *k = tt_key();
	/* 2026-01-01T00:00:00Z .. 2027-01-01T00:00:00Z */
	X509 *x = tt_cert(k, "node-7", NULL, NULL, k, false, 1767225600,
	    1798761600);
	char *pem = tt_cert_pem(x);

	assert_int_equal(pki_cert_info_pem(pem, &info, &err), 0);
	assert_int_equal(info.ci_not_before_ms, 1767225600000LL);
	assert_int_equal(info.ci_not_after_ms, 1798761600000LL);
	assert_string_equal(info.ci_cn, "node-7");

	tt_write_cert(f->cert, x);
	memset(&info, 0, sizeof(info));
	assert_int_equal(pki_cert_info_file(f->cert, &info, &err), 0);
	assert_int_equal(info.ci_not_after_ms, 1798761600000LL);

	assert_int_equal(pki_cert_info_pem("not a certificate", &info, &err),
	    -1);
	assert_int_equal(err.code, CARVE_EINVAL);
	error_clear(&err);
	unlink(f->cert);
	assert_int_equal(pki_cert_info_file(f->cert, &info, &err), -1);
	assert_int_equal(err.code, CARVE_ENOTFOUND);

	free(pem);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void
test_install_and_check(void **state)
{
	struct fix *f = *state;
	struct carve_error err = { 0 };
	struct pki_cert_info info;
	EVP_PKEY *ca_key = tt_key(), *other = tt_key();
	X509 *ca = tt_ca(ca_key, "test CA"), *x, *wrong;
	char *key = NULL, *csr = NULL, *pem, *ca_pem = tt_cert_pem(ca);
	char *other_pem = tt_key_pem(other);
	time_t now = time(NULL);
	int64_t now_ms = (int64_t)now * 1000;
	FILE *fp;
	char line[128];
	int nblocks = 0;
	mode_t old;

	assert_int_equal(pki_make_key_csr("node-1", &key, &csr, &err), 0);
	x = cert_for(key, "node-1", ca, ca_key, now - 60, now + 86400);
	pem = tt_cert_pem(x);

	/* Nothing there yet. */
	assert_int_equal(pki_check_pair(f->key, f->cert, "node-1", now_ms,
	    &info, &err), -1);
	assert_int_equal(err.code, CARVE_ENOTFOUND);

	/* A certificate for another key, or another node, is refused and
	 * leaves nothing behind. */
	error_clear(&err);
	assert_int_equal(pki_install(f->key, other_pem, f->cert, pem, ca_pem,
	    "node-1", &err), -1);
	if (strstr(err.message, "does not belong") == NULL)
		fail_msg("%s", err.message);
	error_clear(&err);
	assert_int_equal(pki_install(f->key, key, f->cert, pem, ca_pem,
	    "node-2", &err), -1);
	assert_non_null(strstr(err.message, "node-2"));
	assert_int_equal(count_files(f), 0);

	old = umask(0);
	error_clear(&err);
	assert_int_equal(pki_install(f->key, key, f->cert, pem, ca_pem,
	    "node-1", &err), 0);
	umask(old);
	assert_int_equal(file_mode(f->key), 0600);
	assert_int_equal(file_mode(f->cert), 0644);
	assert_int_equal(count_files(f), 2);
	/* The self-signed root of the chain is not copied into the file. */
	fp = fopen(f->cert, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strstr(line, "BEGIN CERTIFICATE") != NULL)
			nblocks++;
	fclose(fp);
	assert_int_equal(nblocks, 1);

	assert_int_equal(pki_check_pair(f->key, f->cert, "node-1", now_ms,
	    &info, &err), 0);
	assert_string_equal(info.ci_cn, "node-1");
	assert_int_equal(info.ci_not_after_ms, (int64_t)(now + 86400) * 1000);
	/* The same files for another node name, or after expiry: no. */
	assert_int_equal(pki_check_pair(f->key, f->cert, "node-2", now_ms,
	    &info, &err), -1);
	error_clear(&err);
	assert_int_equal(pki_check_pair(f->key, f->cert, "node-1",
	    now_ms + 2LL * 86400 * 1000, &info, &err), -1);
	assert_non_null(strstr(err.message, "expired"));
	/* A key that became readable by others is refused. */
	assert_int_equal(chmod(f->key, 0644), 0);
	error_clear(&err);
	assert_int_equal(pki_check_pair(f->key, f->cert, "node-1", now_ms,
	    &info, &err), -1);
	assert_int_equal(err.code, CARVE_EPERM);
	assert_int_equal(chmod(f->key, 0600), 0);
	/* A certificate that does not match the key on disk. */
	wrong = tt_cert(other, "node-1", NULL, ca, ca_key, false, now - 60,
	    now + 86400);
	tt_write_cert(f->cert, wrong);
	error_clear(&err);
	assert_int_equal(pki_check_pair(f->key, f->cert, "node-1", now_ms,
	    &info, &err), -1);
	assert_non_null(strstr(err.message, "does not belong"));

	X509_free(wrong);
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other);
	xfree_secret(key);
	free(csr);
	free(pem);
	free(ca_pem);
	free(other_pem);
}

/* An install interrupted at each point is finished or undone at start. */
static void
test_recover(void **state)
{
	struct fix *f = *state;
	struct carve_error err = { 0 };
	char key_new[PATH_MAX + 32], cert_new[PATH_MAX + 32], buf[32];
	FILE *fp;

	snprintf(key_new, sizeof(key_new), "%s.new", f->key);
	snprintf(cert_new, sizeof(cert_new), "%s.new", f->cert);

	/* Nothing to do. */
	assert_int_equal(pki_recover(f->key, f->cert, &err), 0);
	assert_int_equal(count_files(f), 0);

	/* Died after writing the new key, before its certificate: undone. */
	tt_write(f->key, "old-key", 0600);
	tt_write(f->cert, "old-cert", 0644);
	tt_write(key_new, "new-key", 0600);
	assert_int_equal(pki_recover(f->key, f->cert, &err), 0);
	assert_int_equal(count_files(f), 2);
	fp = fopen(f->key, "r");
	assert_non_null(fgets(buf, sizeof(buf), fp));
	fclose(fp);
	assert_string_equal(buf, "old-key");

	/* Died with both written, before the renames: finished. */
	tt_write(key_new, "new-key", 0600);
	tt_write(cert_new, "new-cert", 0644);
	assert_int_equal(pki_recover(f->key, f->cert, &err), 0);
	assert_int_equal(count_files(f), 2);
	fp = fopen(f->key, "r");
	assert_non_null(fgets(buf, sizeof(buf), fp));
	fclose(fp);
	assert_string_equal(buf, "new-key");
	fp = fopen(f->cert, "r");
	assert_non_null(fgets(buf, sizeof(buf), fp));
	fclose(fp);
	assert_string_equal(buf, "new-cert");

	/* Died between the two renames: finished. */
	tt_write(cert_new, "newer-cert", 0644);
	assert_int_equal(pki_recover(f->key, f->cert, &err), 0);
	assert_int_equal(count_files(f), 2);
	fp = fopen(f->cert, "r");
	assert_non_null(fgets(buf, sizeof(buf), fp));
	fclose(fp);
	assert_string_equal(buf, "newer-cert");
}

static void
test_renew_at(void **state)
{
	static const struct {
		int64_t nb, na;
		double u;
		int64_t want;
	} cases[] = {
		{ 0, 1000, 0.0, 700 },
		{ 0, 1000, 1.0, 800 },
		{ 0, 1000, 0.5, 750 },
		{ 0, 1000, -3.0, 700 },      /* clamped */
		{ 0, 1000, 7.0, 800 },
		{ 1000, 1000, 0.5, 1000 },   /* no lifetime */
		/* A year's certificate: between day 255.5 and day 292. */
		{ 1767225600000LL, 1798761600000LL, 0.0,
		    1767225600000LL + 22075200000LL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (pki_renew_at(cases[i].nb, cases[i].na, cases[i].u) !=
		    cases[i].want)
			fail_msg("case %zu: got %lld, want %lld", i,
			    (long long)pki_renew_at(cases[i].nb, cases[i].na,
			    cases[i].u), (long long)cases[i].want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_and_csr),
		cmocka_unit_test_setup_teardown(test_write_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_key_file_check, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cert_info, setup, teardown),
		cmocka_unit_test_setup_teardown(test_install_and_check, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
		cmocka_unit_test(test_renew_at),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
