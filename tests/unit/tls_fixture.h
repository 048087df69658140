/*
 * Test certificates made on the fly with OpenSSL: a CA, certificates it
 * signs (with a chosen CN, subjectAltName and validity), and PEM files.
 * Static functions in a header: included by test_pki.c and test_http.c
 * only, each of which uses most of them.
 */
#ifndef CARVE_TESTS_TLS_FIXTURE_H
#define CARVE_TESTS_TLS_FIXTURE_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Not every includer uses every helper. */
#define TT_FN static __attribute__((unused))

TT_FN EVP_PKEY *
tt_key(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	assert_non_null(k);
	return k;
}

TT_FN void
tt_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/*
 * A certificate for pub with subject CN=cn, signed by issuer/issuer_key (or
 * self-signed when issuer is NULL), valid from nb to na (seconds since the
 * epoch). san: a subjectAltName value ("IP:127.0.0.1") or NULL. ca: a CA.
 */
TT_FN X509 *
tt_cert(EVP_PKEY *pub, const char *cn, const char *san, X509 *issuer,
    EVP_PKEY *issuer_key, bool ca, time_t nb, time_t na)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++),
	    1);
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), nb));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), na));
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : name), 1);
	assert_int_equal(X509_set_pubkey(x, pub), 1);
	if (ca) {
		tt_ext(x, issuer ? issuer : x, NID_basic_constraints,
		    "critical,CA:TRUE");
		tt_ext(x, issuer ? issuer : x, NID_key_usage,
		    "critical,keyCertSign,cRLSign");
	} else {
		tt_ext(x, issuer ? issuer : x, NID_basic_constraints, "CA:FALSE");
	}
	tt_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
	if (san != NULL)
		tt_ext(x, issuer ? issuer : x, NID_subject_alt_name, san);
	assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : pub,
	    EVP_sha256()) > 0);
	return x;
}

/* A CA valid from an hour ago for ten years. */
TT_FN X509 *
tt_ca(EVP_PKEY *key, const char *cn)
{
	time_t now = time(NULL);

	return tt_cert(key, cn, NULL, NULL, key, true, now - 3600,
	    now + 10L * 365 * 86400);
}

TT_FN char *
tt_bio_string(BIO *b)
{
	char *data, *s;
	long n = BIO_get_mem_data(b, &data);

	assert_true(n > 0);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	BIO_free(b);
	return s;
}

TT_FN char *
tt_cert_pem(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());

	assert_int_equal(PEM_write_bio_X509(b, x), 1);
	return tt_bio_string(b);
}

TT_FN char *
tt_key_pem(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());

	assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL,
	    NULL), 1);
	return tt_bio_string(b);
}

TT_FN void
tt_write(const char *path, const char *s, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd != -1);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

TT_FN void
tt_write_cert(const char *path, X509 *x)
{
	char *pem = tt_cert_pem(x);

	tt_write(path, pem, 0644);
	free(pem);
}

TT_FN void
tt_write_key(const char *path, EVP_PKEY *k)
{
	char *pem = tt_key_pem(k);

	tt_write(path, pem, 0600);
	free(pem);
}

#endif
