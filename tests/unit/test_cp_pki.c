/*
 * Unit tests for api/cp/cp_pki.c: the directory `carve-cp init` makes (a CA
 * that verifies the server certificate, file modes, no silent overwrite),
 * CSR signing (what is refused and what an issued certificate allows) and
 * the bearer tokens. Each test owns a mkdtemp directory.
 */
#include "config.h"

#include <arpa/inet.h>
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
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "api/cp/cp_pki.h"
#include "common/xalloc.h"

static const char *const dir_files[] = {
	CP_PKI_CA_CRT, CP_PKI_CA_KEY, CP_PKI_SERVER_CRT, CP_PKI_SERVER_KEY,
	CP_PKI_ADMIN_TOKEN, CP_PKI_BOOTSTRAP_TOKEN,
};

struct fixture {
	char dir[PATH_MAX];
};

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	snprintf(f->dir, sizeof(f->dir), "%s/cp-pki.XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(dir_files) / sizeof(dir_files[0]); i++) {
		char *p = xasprintf("%s/%s", f->dir, dir_files[i]);

		(void)unlink(p);
		free(p);
	}
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

static char *
path_of(struct fixture *f, const char *name)
{
	return xasprintf("%s/%s", f->dir, name);
}

static X509 *
read_cert_file(const char *path)
{
	FILE *fp = fopen(path, "r");
	X509 *x;

	assert_non_null(fp);
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	return x;
}

static X509 *
read_cert_pem(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

	BIO_free(b);
	assert_non_null(x);
	return x;
}

/* Verify cert against ca for purpose (X509_PURPOSE_SSL_*). */
static int
verify(X509 *ca, X509 *cert, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok;

	assert_int_equal(X509_STORE_add_cert(store, ca), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, cert, NULL), 1);
	X509_STORE_CTX_set_purpose(ctx, purpose);
	ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return ok;
}

static void
init_ok(struct fixture *f, const char *const *names, size_t n)
{
	struct carve_error err = { 0 };

	if (cp_pki_init(f->dir, names, n, false, &err) < 0)
		fail_msg("init: %s", err.message);
}

/* A PEM CSR with subject CN=cn (NULL: none) for key. */
static char *
make_csr(EVP_PKEY *key, const char *cn)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	if (cn != NULL)
		assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN",
		    MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0), 1);
	assert_int_equal(X509_REQ_set_subject_name(req, name), 1);
	assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
	assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
	assert_int_equal(PEM_write_bio_X509_REQ(b, req), 1);
	n = BIO_get_mem_data(b, &data);
	out = xstrndup(data, (size_t)n);
	BIO_free(b);
	X509_NAME_free(name);
	X509_REQ_free(req);
	return out;
}

/* ------------------------------------------------------------ init */

static void
test_init_files(void **state)
{
	struct fixture *f = *state;

	init_ok(f, NULL, 0);
	for (size_t i = 0; i < sizeof(dir_files) / sizeof(dir_files[0]); i++) {
		char *p = path_of(f, dir_files[i]);
		struct stat st;
		bool secret = strstr(dir_files[i], ".key") != NULL ||
		    strstr(dir_files[i], ".token") != NULL;

		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 0777, secret ? 0600 : 0644);
		free(p);
	}
}

static void
test_init_ca_verifies_server(void **state)
{
	struct fixture *f = *state;
	char *cap = path_of(f, CP_PKI_CA_CRT), *srvp = path_of(f,
	    CP_PKI_SERVER_CRT);
	X509 *ca, *srv;
	EVP_PKEY *pub;
	char group[32];

	init_ok(f, NULL, 0);
	ca = read_cert_file(cap);
	srv = read_cert_file(srvp);
	assert_int_equal(verify(ca, srv, X509_PURPOSE_SSL_SERVER), 1);
	/* A server certificate is no client certificate. */
	assert_int_equal(verify(ca, srv, X509_PURPOSE_SSL_CLIENT), 0);
	/* The CA: CA:TRUE, may sign certificates, ten years. */
	assert_int_equal(X509_check_ca(ca), 1);
	assert_true((X509_get_key_usage(ca) & KU_KEY_CERT_SIGN) != 0);
	{
		int days, secs;

		assert_int_equal(ASN1_TIME_diff(&days, &secs,
		    X509_get0_notBefore(ca), X509_get0_notAfter(ca)), 1);
		assert_true(days >= 3649 && days <= 3651);
	}
	/* EC P-256 keys. */
	pub = X509_get0_pubkey(srv);
	assert_int_equal(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_group_name(pub, group, sizeof(group),
	    NULL), 1);
	assert_string_equal(group, "prime256v1");
	/* Default names and serverAuth. */
	assert_int_equal(X509_check_host(srv, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(srv, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_host(srv, "example.com", 0, 0, NULL), 0);
	assert_true((X509_get_extended_key_usage(srv) & XKU_SSL_SERVER) != 0);
	X509_free(ca);
	X509_free(srv);
	free(cap);
	free(srvp);
}

static void
test_init_names(void **state)
{
	static const char *const names[] = { "cp.example.org", "10.1.2.3",
	    "::1" };
	struct fixture *f = *state;
	char *p = path_of(f, CP_PKI_SERVER_CRT);
	X509 *srv;

	init_ok(f, names, 3);
	srv = read_cert_file(p);
	assert_int_equal(X509_check_host(srv, "cp.example.org", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(srv, "10.1.2.3", 0), 1);
	assert_int_equal(X509_check_ip_asc(srv, "::1", 0), 1);
	assert_int_equal(X509_check_host(srv, "localhost", 0, 0, NULL), 0);
	X509_free(srv);
	free(p);
}

static void
test_init_bad_names(void **state)
{
	static const char *const bad[] = { "", "a,b", "DNS:x", "a b", "x/y",
	    "-..", "a..b", "é.example" };
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct carve_error err = { 0 };

		assert_int_equal(cp_pki_init(f->dir, &bad[i], 1, false, &err),
		    -1);
		assert_int_equal(err.code, CARVE_EINVAL);
	}
}

static void
test_init_no_overwrite(void **state)
{
	struct fixture *f = *state;
	struct carve_error err = { 0 };
	char tok1[CP_PKI_TOKEN_HEX + 1], tok2[CP_PKI_TOKEN_HEX + 1];
	char *p = path_of(f, CP_PKI_ADMIN_TOKEN);

	init_ok(f, NULL, 0);
	assert_int_equal(cp_pki_token_load(p, tok1, &err), 0);
	assert_int_equal(cp_pki_init(f->dir, NULL, 0, false, &err), -1);
	assert_int_equal(err.code, CARVE_ECONFLICT);
	assert_non_null(strstr(err.message, "--force"));
	assert_int_equal(cp_pki_token_load(p, tok2, &err), 0);
	assert_string_equal(tok1, tok2);
	/* --force makes everything anew. */
	error_clear(&err);
	assert_int_equal(cp_pki_init(f->dir, NULL, 0, true, &err), 0);
	assert_int_equal(cp_pki_token_load(p, tok2, &err), 0);
	assert_string_not_equal(tok1, tok2);
	free(p);
}

/* ------------------------------------------------------------ signing */

static struct cp_ca *
load_ca(struct fixture *f)
{
	struct carve_error err = { 0 };
	struct cp_ca *ca;

	init_ok(f, NULL, 0);
	ca = cp_ca_load(f->dir, &err);
	if (ca == NULL)
		fail_msg("load: %s", err.message);
	return ca;
}

static void
test_sign_ok(void **state)
{
	struct fixture *f = *state;
	struct cp_ca *ca = load_ca(f);
	struct carve_error err = { 0 };
	EVP_PKEY *key = EVP_EC_gen("P-256");
	char *csr = make_csr(key, "host-1.rack_2");
	char cn[IDS_NAME_MAX + 1];
	int64_t exp = 0;
	time_t before = time(NULL);
	char *pem;
	X509 *cert, *other;

	pem = cp_ca_sign_csr(ca, csr, "host-1.rack_2", 3600, &exp, &err);
	if (pem == NULL)
		fail_msg("sign: %s", err.message);
	cert = read_cert_pem(pem);
	assert_int_equal(verify(cp_ca_cert(ca), cert, X509_PURPOSE_SSL_CLIENT),
	    1);
	assert_true((X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT) != 0);
	assert_true((X509_get_extended_key_usage(cert) & XKU_SSL_SERVER) == 0);
	assert_int_equal(X509_check_ca(cert), 0);
	assert_int_equal(cp_pki_cert_cn(cert, "cert", cn, &err), 0);
	assert_string_equal(cn, "host-1.rack_2");
	/* The node's key, not one of ours. */
	assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(cert), key), 1);
	/* Lifetime and expires_at agree with notAfter. */
	assert_true(exp >= (int64_t)(before + 3600) * 1000 &&
	    exp <= (int64_t)(time(NULL) + 3600) * 1000);
	{
		struct tm tm;

		assert_int_equal(ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm),
		    1);
		assert_int_equal((int64_t)timegm(&tm) * 1000, exp);
	}
	/* 128-bit random serials: two certificates never share one. */
	free(pem);
	pem = cp_ca_sign_csr(ca, csr, "host-1.rack_2", 3600, &exp, &err);
	assert_non_null(pem);
	other = read_cert_pem(pem);
	assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(cert),
	    X509_get0_serialNumber(other)), 0);
	{
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert),
		    NULL);

		assert_true(BN_num_bits(bn) > 120 && BN_num_bits(bn) <= 127);
		BN_free(bn);
	}
	X509_free(other);
	X509_free(cert);
	free(pem);
	free(csr);
	EVP_PKEY_free(key);
	cp_ca_free(ca);
}

static void
test_sign_expired_cert_fails(void **state)
{
	struct fixture *f = *state;
	struct cp_ca *ca = load_ca(f);
	struct carve_error err = { 0 };
	EVP_PKEY *key = EVP_EC_gen("P-256");
	char *csr = make_csr(key, "n1");
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int64_t exp;
	char *pem = cp_ca_sign_csr(ca, csr, "n1", 1, &exp, &err);
	X509 *cert;

	assert_non_null(pem);
	cert = read_cert_pem(pem);
	/* Verified two seconds on, the one-second certificate has expired. */
	X509_STORE_add_cert(store, cp_ca_cert(ca));
	X509_STORE_CTX_init(ctx, store, cert, NULL);
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx),
	    time(NULL) + 2);
	assert_int_equal(X509_verify_cert(ctx), 0);
	assert_int_equal(X509_STORE_CTX_get_error(ctx),
	    X509_V_ERR_CERT_HAS_EXPIRED);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(cert);
	free(pem);
	free(csr);
	EVP_PKEY_free(key);
	cp_ca_free(ca);
}

struct refuse_case {
	const char *desc;
	const char *cn;		/* subject CN of the CSR (NULL: none) */
	const char *node;	/* the node asked for */
	int key;		/* 0 EC P-256, 1 RSA 1024, 2 EC P-521 */
};

static const struct refuse_case refuse_cases[] = {
	{ "CN is another node", "node2", "node1", 0 },
	{ "CN missing", NULL, "node1", 0 },
	{ "CN is not a node name", "node 1", "node 1", 0 },
	{ "CN with a slash", "a/b", "a/b", 0 },
	{ "CN differs in case", "Node1", "node1", 0 },
	{ "RSA key below 2048 bits", "node1", "node1", 1 },
	{ "EC key on P-521", "node1", "node1", 2 },
};

static void
test_sign_refused(void **state)
{
	struct fixture *f = *state;
	struct cp_ca *ca = load_ca(f);

	for (size_t i = 0; i < sizeof(refuse_cases) / sizeof(refuse_cases[0]);
	    i++) {
		const struct refuse_case *c = &refuse_cases[i];
		struct carve_error err = { 0 };
		EVP_PKEY *key = c->key == 1 ? EVP_RSA_gen(1024) :
		    EVP_EC_gen(c->key == 2 ? "P-521" : "P-256");
		char *csr = make_csr(key, c->cn);
		int64_t exp;
		char *pem = cp_ca_sign_csr(ca, csr, c->node, 3600, &exp, &err);

		if (pem != NULL)
			fail_msg("%s: signed", c->desc);
		assert_int_equal(err.code, CARVE_EINVAL);
		free(csr);
		EVP_PKEY_free(key);
	}
	cp_ca_free(ca);
}

static void
test_sign_bad_signature(void **state)
{
	struct fixture *f = *state;
	struct cp_ca *ca = load_ca(f);
	struct carve_error err = { 0 };
	EVP_PKEY *k1 = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *csr;
	int64_t exp;
	long n;

	/* Signed with one key, then claims another: the proof fails. */
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)"node1", -1, -1, 0);
	X509_REQ_set_subject_name(req, name);
	X509_REQ_set_pubkey(req, k1);
	assert_true(X509_REQ_sign(req, k1, EVP_sha256()) > 0);
	X509_REQ_set_pubkey(req, k2);
	PEM_write_bio_X509_REQ(b, req);
	n = BIO_get_mem_data(b, &data);
	csr = xstrndup(data, (size_t)n);
	assert_null(cp_ca_sign_csr(ca, csr, "node1", 3600, &exp, &err));
	assert_int_equal(err.code, CARVE_EINVAL);
	assert_non_null(strstr(err.message, "signature"));
	error_clear(&err);
	assert_null(cp_ca_sign_csr(ca, "-----BEGIN CERTIFICATE REQUEST-----\n"
	    "AAAA\n-----END CERTIFICATE REQUEST-----\n", "node1", 3600, &exp,
	    &err));
	assert_int_equal(err.code, CARVE_EINVAL);
	free(csr);
	BIO_free(b);
	X509_NAME_free(name);
	X509_REQ_free(req);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	cp_ca_free(ca);
}

static void
test_ca_key_mode_checked(void **state)
{
	struct fixture *f = *state;
	struct carve_error err = { 0 };
	char *p = path_of(f, CP_PKI_CA_KEY);

	init_ok(f, NULL, 0);
	assert_int_equal(chmod(p, 0640), 0);
	assert_null(cp_ca_load(f->dir, &err));
	assert_int_equal(err.code, CARVE_EPERM);
	assert_non_null(strstr(err.message, "chmod 600"));
	free(p);
}

/* ------------------------------------------------------------ tokens */

static void
test_tokens(void **state)
{
	struct fixture *f = *state;
	struct carve_error err = { 0 };
	char adm[CP_PKI_TOKEN_HEX + 1], boot[CP_PKI_TOKEN_HEX + 1];
	char *pa = path_of(f, CP_PKI_ADMIN_TOKEN);
	char *pb = path_of(f, CP_PKI_BOOTSTRAP_TOKEN);
	char shorter[CP_PKI_TOKEN_HEX];

	init_ok(f, NULL, 0);
	assert_int_equal(cp_pki_token_load(pa, adm, &err), 0);
	assert_int_equal(cp_pki_token_load(pb, boot, &err), 0);
	assert_int_equal(strlen(adm), CP_PKI_TOKEN_HEX);
	assert_int_equal(strspn(adm, "0123456789abcdef"), CP_PKI_TOKEN_HEX);
	assert_string_not_equal(adm, boot);

	assert_true(cp_pki_token_equal(adm, adm));
	assert_false(cp_pki_token_equal(boot, adm));
	assert_false(cp_pki_token_equal(NULL, adm));
	assert_false(cp_pki_token_equal("", adm));
	memcpy(shorter, adm, sizeof(shorter) - 1);
	shorter[sizeof(shorter) - 1] = '\0';
	assert_false(cp_pki_token_equal(shorter, adm));
	assert_false(cp_pki_token_equal("", ""));

	assert_int_equal(chmod(pa, 0644), 0);
	assert_int_equal(cp_pki_token_load(pa, adm, &err), -1);
	assert_int_equal(err.code, CARVE_EPERM);
	free(pa);
	free(pb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_ca_verifies_server,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_bad_names, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_init_no_overwrite, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sign_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sign_expired_cert_fails,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_sign_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sign_bad_signature, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_ca_key_mode_checked, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests_name("cp_pki", tests, NULL, NULL);
}
