/*
 * The node's key, CSR and certificate: see pki.h.
 *
 * OpenSSL keeps a per-thread error queue that libcurl also reads after its
 * own TLS calls on this (the loop) thread; every function here leaves the
 * queue empty so a stale error of ours never shows up in a curl message.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/pki.h"
#include "common/xalloc.h"

/* Far above any key or certificate chain carved writes. */
#define PKI_FILE_MAX (256 * 1024)

/* err from OpenSSL's queue (which is then empty). */
static int
pki_sslerr(struct carve_error *err, enum carve_errcode code, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "unknown error");
	ERR_clear_error();
	return error_set(err, code, "%s: %s", what, buf);
}

/* Say where: "prefix: <err's message>" (the message is copied first, since
 * it is also the destination). */
static int
pki_wrap(struct carve_error *err, enum carve_errcode code, const char *prefix)
{
	char msg[CARVE_ERRMSG_MAX];

	snprintf(msg, sizeof(msg), "%s", err->message);
	return error_reset(err, code, "%s: %s", prefix, msg);
}

/* The contents of a memory BIO as a new string; NULL when empty. */
static char *
pki_bio_string(BIO *b)
{
	char *data, *s;
	long n = BIO_get_mem_data(b, &data);

	if (n <= 0)
		return NULL;
	s = xmalloc((size_t)n + 1);
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	return s;
}

int
pki_make_key_csr(const char *cn, char **key_pem, char **csr_pem,
    struct carve_error *err)
{
	EVP_PKEY *pkey = NULL;
	X509_REQ *req = NULL;
	X509_NAME *name;
	BIO *kb = NULL, *cb = NULL;
	int ret = -1;

	*key_pem = *csr_pem = NULL;
	ERR_clear_error();
	if ((pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL) {
		pki_sslerr(err, CARVE_EINTERNAL, "generating an EC P-256 key");
		goto cleanup;
	}
	if ((req = X509_REQ_new()) == NULL ||
	    X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    (name = X509_REQ_get_subject_name(req)) == NULL ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_REQ_set_pubkey(req, pkey) != 1 ||
	    X509_REQ_sign(req, pkey, EVP_sha256()) <= 0) {
		pki_sslerr(err, CARVE_EINTERNAL, "making the CSR");
		goto cleanup;
	}
	/* Secure memory: cleared when freed, since it holds the key. */
	if ((kb = BIO_new(BIO_s_secmem())) == NULL ||
	    (cb = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_X509_REQ(cb, req) != 1) {
		pki_sslerr(err, CARVE_EINTERNAL, "encoding the key and CSR");
		goto cleanup;
	}
	*key_pem = pki_bio_string(kb);
	*csr_pem = pki_bio_string(cb);
	if (*key_pem == NULL || *csr_pem == NULL) {
		xfree_secret(*key_pem);
		free(*csr_pem);
		*key_pem = *csr_pem = NULL;
		error_set(err, CARVE_EINTERNAL, "encoding the key and CSR: "
		    "empty output");
		goto cleanup;
	}
	ret = 0;
cleanup:
	BIO_free(kb);
	BIO_free(cb);
	X509_REQ_free(req);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return ret;
}

/* ---- files ---- */

static int
pki_fsync_dir(const char *path)
{
	char *copy = xstrdup(path);
	int fd, rc = 0;

	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || fsync(fd) == -1)
		rc = -1;
	if (fd != -1)
		close(fd);
	free(copy);
	return rc;
}

int
pki_write_file(const char *path, const char *data, size_t len, mode_t mode,
    struct carve_error *err)
{
	char *tmp = xasprintf("%s.tmp.XXXXXX", path);
	size_t off = 0;
	ssize_t n;
	int fd;

	/* mkostemp creates it 0600: a key is never readable, not even for a
	 * moment. */
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		error_set(err, CARVE_EINTERNAL, "cannot create a file next to "
		    "%s: %s", path, strerror(errno));
		free(tmp);
		return -1;
	}
	if (fchmod(fd, mode) == -1)
		goto fail;
	while (off < len) {
		n = write(fd, data + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		off += (size_t)n;
	}
	if (fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto fail;
	if (pki_fsync_dir(path) == -1)
		goto fail_renamed;
	free(tmp);
	return 0;
fail:
	error_set(err, CARVE_EINTERNAL, "cannot write %s: %s", path,
	    strerror(errno));
	if (fd != -1)
		close(fd);
	(void)unlink(tmp);
	free(tmp);
	return -1;
fail_renamed:
	error_set(err, CARVE_EINTERNAL, "cannot sync the directory of %s: %s",
	    path, strerror(errno));
	free(tmp);
	return -1;
}

/* Read a whole (small) file; 1 when it does not exist. */
static int
pki_read_file(const char *path, char **out, struct carve_error *err)
{
	struct stat st;
	char *buf;
	size_t off = 0;
	ssize_t n;
	int fd;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return 1;
		return error_set(err, errno == EACCES ? CARVE_EPERM :
		    CARVE_EINTERNAL, "cannot open %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > PKI_FILE_MAX) {
		error_set(err, CARVE_EINVAL, "%s: not a regular file of at most "
		    "%d bytes", path, PKI_FILE_MAX);
		close(fd);
		return -1;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	*out = buf;
	return 0;
}

int
pki_check_key_file(const char *path, struct carve_error *err)
{
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		if (errno == ENOENT)
			return 1;
		if (errno == ELOOP)
			return error_set(err, CARVE_EPERM, "key file %s is a "
			    "symbolic link; refusing it", path);
		return error_set(err, errno == EACCES ? CARVE_EPERM :
		    CARVE_EINTERNAL, "key file %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) == -1) {
		error_set(err, CARVE_EINTERNAL, "key file %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if (!S_ISREG(st.st_mode))
		return error_set(err, CARVE_EINVAL, "key file %s: not a regular "
		    "file", path);
	if (st.st_uid != geteuid())
		return error_set(err, CARVE_EPERM, "key file %s: owned by uid %u, "
		    "not by this process (uid %u)", path, (unsigned)st.st_uid,
		    (unsigned)geteuid());
	if ((st.st_mode & 077) != 0)
		return error_set(err, CARVE_EPERM, "key file %s: accessible by "
		    "group or others (mode %04o); chmod 600 it", path,
		    (unsigned)(st.st_mode & 07777));
	return 0;
}

/* ---- parsing ---- */

static X509 *
pki_x509_from_pem(const char *pem, struct carve_error *err)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	if (x == NULL)
		pki_sslerr(err, CARVE_EINVAL, "not a PEM certificate");
	BIO_free(b);
	ERR_clear_error();
	return x;
}

static EVP_PKEY *
pki_key_from_pem(const char *pem, struct carve_error *err)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;

	if (k == NULL)
		pki_sslerr(err, CARVE_EINVAL, "not a PEM private key");
	BIO_free(b);
	ERR_clear_error();
	return k;
}

static int
pki_time_ms(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;
	time_t s;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return -1;
	if ((s = timegm(&tm)) == (time_t)-1)
		return -1;
	*out = (int64_t)s * 1000;
	return 0;
}

static int
pki_x509_info(X509 *x, struct pki_cert_info *out, struct carve_error *err)
{
	X509_NAME *name = X509_get_subject_name(x);
	unsigned char *utf8 = NULL;
	int idx, n;

	memset(out, 0, sizeof(*out));
	if (pki_time_ms(X509_get0_notBefore(x), &out->ci_not_before_ms) < 0 ||
	    pki_time_ms(X509_get0_notAfter(x), &out->ci_not_after_ms) < 0) {
		ERR_clear_error();
		return error_set(err, CARVE_EINVAL, "certificate has unreadable "
		    "validity dates");
	}
	idx = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
	if (idx >= 0) {
		n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(
		    X509_NAME_get_entry(name, idx)));
		if (n > 0 && (size_t)n < sizeof(out->ci_cn) &&
		    memchr(utf8, '\0', (size_t)n) == NULL)
			memcpy(out->ci_cn, utf8, (size_t)n);
		OPENSSL_free(utf8);
	}
	ERR_clear_error();
	return 0;
}

int
pki_cert_info_pem(const char *pem, struct pki_cert_info *out,
    struct carve_error *err)
{
	X509 *x = pki_x509_from_pem(pem, err);
	int rc;

	if (x == NULL)
		return -1;
	rc = pki_x509_info(x, out, err);
	X509_free(x);
	return rc;
}

int
pki_cert_info_file(const char *path, struct pki_cert_info *out,
    struct carve_error *err)
{
	char *pem;
	int rc = pki_read_file(path, &pem, err);

	if (rc == 1)
		return error_set(err, CARVE_ENOTFOUND, "%s does not exist", path);
	if (rc < 0)
		return -1;
	if (pki_cert_info_pem(pem, out, err) < 0) {
		pki_wrap(err, CARVE_EINVAL, path);
		free(pem);
		return -1;
	}
	free(pem);
	return 0;
}

/* x and k belong together and x is for cn. */
static int
pki_check_x509(X509 *x, EVP_PKEY *k, const char *cn,
    struct pki_cert_info *info, struct carve_error *err)
{
	if (X509_check_private_key(x, k) != 1) {
		ERR_clear_error();
		return error_set(err, CARVE_EINVAL, "the certificate does not "
		    "belong to the private key");
	}
	if (pki_x509_info(x, info, err) < 0)
		return -1;
	if (strcmp(info->ci_cn, cn) != 0)
		return error_set(err, CARVE_EINVAL, "the certificate is for "
		    "\"%s\", not for this node (\"%s\")", info->ci_cn, cn);
	return 0;
}

int
pki_check_pair(const char *key_path, const char *cert_path, const char *cn,
    int64_t now_ms, struct pki_cert_info *out, struct carve_error *err)
{
	char *key_pem = NULL, *cert_pem = NULL;
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	int rc, ret = -1;

	rc = pki_check_key_file(key_path, err);
	if (rc == 1)
		return error_set(err, CARVE_ENOTFOUND, "no key at %s", key_path);
	if (rc < 0)
		return -1;
	rc = pki_read_file(cert_path, &cert_pem, err);
	if (rc == 1)
		return error_set(err, CARVE_ENOTFOUND, "no certificate at %s",
		    cert_path);
	if (rc < 0)
		return -1;
	if (pki_read_file(key_path, &key_pem, err) != 0) {
		if (!error_isset(err))
			error_set(err, CARVE_ENOTFOUND, "no key at %s", key_path);
		goto cleanup;
	}
	if ((k = pki_key_from_pem(key_pem, err)) == NULL ||
	    (x = pki_x509_from_pem(cert_pem, err)) == NULL) {
		pki_wrap(err, CARVE_EINVAL, cert_path);
		goto cleanup;
	}
	if (pki_check_x509(x, k, cn, out, err) < 0) {
		pki_wrap(err, CARVE_EINVAL, cert_path);
		goto cleanup;
	}
	if (now_ms >= out->ci_not_after_ms) {
		error_set(err, CARVE_EINVAL, "%s expired", cert_path);
		goto cleanup;
	}
	ret = 0;
cleanup:
	X509_free(x);
	EVP_PKEY_free(k);
	xfree_secret(key_pem);
	free(cert_pem);
	ERR_clear_error();
	return ret;
}

/* ---- installing ---- */

/* PEM of x appended to b. */
static int
pki_append_pem(BIO *b, X509 *x)
{
	return PEM_write_bio_X509(b, x) == 1 ? 0 : -1;
}

/* The node's certificate, then the chain's intermediates (not roots). */
static char *
pki_cert_file_text(X509 *x, const char *chain_pem, struct carve_error *err)
{
	BIO *out = BIO_new(BIO_s_mem()), *in = NULL;
	X509 *c;
	char *s = NULL;

	if (out == NULL || pki_append_pem(out, x) < 0)
		goto fail;
	if (chain_pem != NULL && (in = BIO_new_mem_buf(chain_pem, -1)) != NULL) {
		while ((c = PEM_read_bio_X509(in, NULL, NULL, NULL)) != NULL) {
			int self = X509_check_issued(c, c) == X509_V_OK;

			if (!self && pki_append_pem(out, c) < 0) {
				X509_free(c);
				goto fail;
			}
			X509_free(c);
		}
		ERR_clear_error();    /* the end of the chain reads as an error */
	}
	s = pki_bio_string(out);
	BIO_free(in);
	BIO_free(out);
	return s;
fail:
	pki_sslerr(err, CARVE_EINTERNAL, "encoding the certificate");
	BIO_free(in);
	BIO_free(out);
	return NULL;
}

int
pki_install(const char *key_path, const char *key_pem, const char *cert_path,
    const char *cert_pem, const char *chain_pem, const char *cn,
    struct carve_error *err)
{
	struct pki_cert_info info;
	char *key_new = xasprintf("%s.new", key_path);
	char *cert_new = xasprintf("%s.new", cert_path);
	char *text = NULL;
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	int ret = -1;

	if ((k = pki_key_from_pem(key_pem, err)) == NULL ||
	    (x = pki_x509_from_pem(cert_pem, err)) == NULL ||
	    pki_check_x509(x, k, cn, &info, err) < 0 ||
	    (text = pki_cert_file_text(x, chain_pem, err)) == NULL)
		goto cleanup;
	/* Both new files durable before either replaces the old one; a crash
	 * in between is finished by pki_recover. */
	if (pki_write_file(key_new, key_pem, strlen(key_pem), 0600, err) < 0 ||
	    pki_write_file(cert_new, text, strlen(text), 0644, err) < 0)
		goto cleanup;
	if (rename(key_new, key_path) == -1 ||
	    rename(cert_new, cert_path) == -1 ||
	    pki_fsync_dir(key_path) == -1 || pki_fsync_dir(cert_path) == -1) {
		error_set(err, CARVE_EINTERNAL, "cannot install %s and %s: %s",
		    key_path, cert_path, strerror(errno));
		goto cleanup;
	}
	ret = 0;
cleanup:
	if (ret < 0) {
		(void)unlink(key_new);
		(void)unlink(cert_new);
	}
	free(text);
	free(key_new);
	free(cert_new);
	X509_free(x);
	EVP_PKEY_free(k);
	ERR_clear_error();
	return ret;
}

static bool
pki_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

int
pki_recover(const char *key_path, const char *cert_path,
    struct carve_error *err)
{
	char *key_new = xasprintf("%s.new", key_path);
	char *cert_new = xasprintf("%s.new", cert_path);
	bool have_key = pki_exists(key_new), have_cert = pki_exists(cert_new);
	int ret = 0;

	/* Each .new file is complete (written atomically); what matters is
	 * how far the renames got. Key without certificate: the install never
	 * finished writing, drop it. Certificate present: every rename before
	 * it is safe to finish. */
	if (have_key && !have_cert) {
		(void)unlink(key_new);
	} else if (have_cert) {
		if ((have_key && rename(key_new, key_path) == -1) ||
		    rename(cert_new, cert_path) == -1 ||
		    pki_fsync_dir(key_path) == -1 ||
		    pki_fsync_dir(cert_path) == -1)
			ret = error_set(err, CARVE_EINTERNAL, "cannot finish "
			    "installing %s and %s: %s", key_path, cert_path,
			    strerror(errno));
	}
	free(key_new);
	free(cert_new);
	return ret;
}

int64_t
pki_renew_at(int64_t nb_ms, int64_t na_ms, double u)
{
	int64_t life = na_ms - nb_ms, tenth;

	if (u < 0)
		u = 0;
	if (u > 1)
		u = 1;
	if (life <= 0)
		return nb_ms;
	/* Integers where it matters: 70% + u * 10%, exact at both ends. */
	tenth = life / 10;
	return nb_ms + tenth * 7 + (life % 10) * 7 / 10 +
	    (int64_t)((double)tenth * u + 0.5);
}
