/*
 * carve-cp's certificate authority: see cp_pki.h.
 *
 * Every certificate is built here from typed values (a node name that passed
 * ids_name_check, addresses that parsed with inet_pton): nothing a client
 * sent is pasted into an OpenSSL configuration string, and nothing of a CSR
 * but its public key and its CN is used.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "api/cp/cp_pki.h"
#include "common/xalloc.h"

#define PKI_CURVE		"P-256"
#define PKI_CA_CN		"carve-cp CA"
#define PKI_SERVER_CN		"carve-cp"
#define PKI_FILE_MAX		(256 * 1024)
#define PKI_CSR_MAX		(64 * 1024)
#define PKI_RSA_MIN_BITS	2048
/* Issued certificates start a little in the past (see pki_backdate). */
#define PKI_BACKDATE_MAX_S	60

static const char *const pki_files[] = {
	CP_PKI_CA_CRT, CP_PKI_CA_KEY, CP_PKI_SERVER_CRT, CP_PKI_SERVER_KEY,
	CP_PKI_ADMIN_TOKEN, CP_PKI_BOOTSTRAP_TOKEN,
};

struct cp_ca {
	X509		*ca_cert;
	EVP_PKEY	*ca_key;
	char		*ca_pem;
};

/* One X.509v3 extension given in OpenSSL's own value syntax (constants). */
struct pki_ext {
	int		 nid;
	const char	*value;
};

static const struct pki_ext pki_ca_exts[] = {
	{ NID_basic_constraints, "critical,CA:TRUE,pathlen:0" },
	{ NID_key_usage, "critical,keyCertSign,cRLSign" },
	{ NID_subject_key_identifier, "hash" },
	{ NID_authority_key_identifier, "keyid:always" },
};

static const struct pki_ext pki_server_exts[] = {
	{ NID_basic_constraints, "critical,CA:FALSE" },
	{ NID_key_usage, "critical,digitalSignature" },
	{ NID_ext_key_usage, "serverAuth" },
	{ NID_subject_key_identifier, "hash" },
	{ NID_authority_key_identifier, "keyid:always" },
};

static const struct pki_ext pki_client_exts[] = {
	{ NID_basic_constraints, "critical,CA:FALSE" },
	{ NID_key_usage, "critical,digitalSignature" },
	{ NID_ext_key_usage, "clientAuth" },
	{ NID_subject_key_identifier, "hash" },
	{ NID_authority_key_identifier, "keyid:always" },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Fill err with what OpenSSL's error queue says (and empty the queue). */
static int
pki_sslerr(struct carve_error *err, enum carve_errcode code, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e == 0)
		snprintf(buf, sizeof(buf), "unknown error");
	else
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return error_set(err, code, "%s: %s", what, buf);
}

/* ------------------------------------------------------------ files */

static int
pki_write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Write data to dir/name with exactly mode: a temporary file fsync'd and
 * renamed over, so a crash leaves the old file or the new one.
 */
static int
pki_write_file(const char *dir, const char *name, const char *data,
    size_t len, mode_t mode, struct carve_error *err)
{
	char *path = xasprintf("%s/%s", dir, name);
	char *tmp = xasprintf("%s/.%s.tmp", dir, name);
	int fd, rc = -1;

	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    mode);
	if (fd < 0) {
		error_set(err, CARVE_EINTERNAL, "cannot create %s: %s", tmp,
		    strerror(errno));
		goto cleanup;
	}
	if (fchmod(fd, mode) < 0 || pki_write_all(fd, data, len) < 0 ||
	    fsync(fd) < 0) {
		error_set(err, CARVE_EINTERNAL, "cannot write %s: %s", tmp,
		    strerror(errno));
		goto cleanup;
	}
	if (close(fd) < 0) {
		fd = -1;
		error_set(err, CARVE_EINTERNAL, "cannot write %s: %s", tmp,
		    strerror(errno));
		goto cleanup;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		error_set(err, CARVE_EINTERNAL, "cannot rename %s to %s: %s",
		    tmp, path, strerror(errno));
		goto cleanup;
	}
	rc = 0;
cleanup:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		(void)unlink(tmp);
	free(tmp);
	free(path);
	return rc;
}

/*
 * Read a whole file of at most max bytes into a NUL-terminated string.
 * secret: refuse a file that group or others may read.
 */
static char *
pki_read_file(const char *path, size_t max, bool secret, size_t *lenp,
    struct carve_error *err)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		error_set(err, errno == ENOENT ? CARVE_ENOTFOUND :
		    CARVE_EINTERNAL, "cannot open %s: %s", path,
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		error_set(err, CARVE_EINTERNAL, "cannot stat %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		error_set(err, CARVE_EINVAL, "%s is not a regular file", path);
		goto fail;
	}
	if (secret && (st.st_mode & 077) != 0) {
		error_set(err, CARVE_EPERM, "%s is accessible by group or "
		    "others (mode %04o); chmod 600 it", path,
		    (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	if ((uint64_t)st.st_size > max) {
		error_set(err, CARVE_EINVAL, "%s is larger than %zu bytes",
		    path, max);
		goto fail;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			error_set(err, CARVE_EINTERNAL, "cannot read %s: %s",
			    path, n < 0 ? strerror(errno) : "short read");
			goto fail;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	if (lenp != NULL)
		*lenp = len;
	return buf;
fail:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
	close(fd);
	return NULL;
}

/* PEM text of cert or of a private key, as a new string. */
static char *
pki_pem(X509 *cert, EVP_PKEY *key, size_t *lenp)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	if (b == NULL)
		return NULL;
	if ((cert != NULL && PEM_write_bio_X509(b, cert) != 1) ||
	    (key != NULL && PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0,
	    NULL, NULL) != 1)) {
		BIO_free(b);
		return NULL;
	}
	n = BIO_get_mem_data(b, &data);
	out = xstrndup(data, (size_t)n);
	/* The BIO held a private key: do not leave it in freed memory. */
	OPENSSL_cleanse(data, (size_t)n);
	BIO_free(b);
	if (lenp != NULL)
		*lenp = (size_t)n;
	return out;
}

/* ------------------------------------------------------------ building */

static void
pki_backdate(time_t now, int64_t lifetime_s, time_t *nb)
{
	/*
	 * A small step back covers a verifier whose clock is a little behind
	 * ours, without eating much of a short-lived test certificate (the
	 * agent renews at 70-80% of notAfter - notBefore).
	 */
	int64_t back = lifetime_s / 10;

	if (back > PKI_BACKDATE_MAX_S)
		back = PKI_BACKDATE_MAX_S;
	*nb = now - (time_t)back;
}

static int
pki_random_serial(X509 *x, struct carve_error *err)
{
	unsigned char b[16];
	BIGNUM *bn;
	int rc = -1;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return pki_sslerr(err, CARVE_EINTERNAL, "RAND_bytes");
	/* Positive (DER INTEGER) and never zero. */
	b[0] = (unsigned char)((b[0] & 0x7f) | 0x01);
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) !=
	    NULL)
		rc = 0;
	else
		pki_sslerr(err, CARVE_EINTERNAL, "setting the serial number");
	BN_free(bn);
	return rc;
}

static int
pki_add_exts(X509 *x, X509 *issuer, const struct pki_ext *exts, size_t n,
    struct carve_error *err)
{
	X509V3_CTX ctx;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	for (size_t i = 0; i < n; i++) {
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx,
		    exts[i].nid, exts[i].value);
		if (ext == NULL || X509_add_ext(x, ext, -1) != 1) {
			X509_EXTENSION_free(ext);
			return pki_sslerr(err, CARVE_EINTERNAL,
			    "adding a certificate extension");
		}
		X509_EXTENSION_free(ext);
	}
	return 0;
}

/* subjectAltName from names: IP addresses as iPAddress, the rest as dNSName. */
static int
pki_add_san(X509 *x, const char *const *names, size_t n,
    struct carve_error *err)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	int rc = -1;

	if (gens == NULL)
		return pki_sslerr(err, CARVE_EINTERNAL, "subjectAltName");
	for (size_t i = 0; i < n; i++) {
		unsigned char ip[16];
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_STRING *s = NULL;
		int type, iplen = 0;

		if (inet_pton(AF_INET, names[i], ip) == 1)
			iplen = 4;
		else if (inet_pton(AF_INET6, names[i], ip) == 1)
			iplen = 16;
		if (iplen > 0) {
			type = GEN_IPADD;
			s = ASN1_OCTET_STRING_new();
			if (s != NULL && ASN1_OCTET_STRING_set(s, ip, iplen) != 1) {
				ASN1_OCTET_STRING_free(s);
				s = NULL;
			}
		} else {
			type = GEN_DNS;
			s = ASN1_IA5STRING_new();
			if (s != NULL && ASN1_STRING_set(s, names[i], -1) != 1) {
				ASN1_IA5STRING_free(s);
				s = NULL;
			}
		}
		if (g == NULL || s == NULL) {
			GENERAL_NAME_free(g);
			ASN1_STRING_free(s);
			pki_sslerr(err, CARVE_EINTERNAL, "subjectAltName");
			goto cleanup;
		}
		GENERAL_NAME_set0_value(g, type, s);
		if (sk_GENERAL_NAME_push(gens, g) <= 0) {
			GENERAL_NAME_free(g);
			pki_sslerr(err, CARVE_EINTERNAL, "subjectAltName");
			goto cleanup;
		}
	}
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
	    X509V3_ADD_DEFAULT) != 1) {
		pki_sslerr(err, CARVE_EINTERNAL, "subjectAltName");
		goto cleanup;
	}
	rc = 0;
cleanup:
	GENERAL_NAMES_free(gens);
	return rc;
}

/*
 * A certificate for pub with subject CN=cn, signed by sign_key as issuer
 * (NULL issuer: self-signed), valid [nb, na], with the extensions exts and
 * a subjectAltName of the nsan names when there are any.
 */
static X509 *
pki_make_cert(EVP_PKEY *pub, const char *cn, X509 *issuer, EVP_PKEY *sign_key,
    time_t nb, time_t na, const struct pki_ext *exts, size_t nexts,
    const char *const *san, size_t nsan, struct carve_error *err)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();

	if (x == NULL || name == NULL) {
		pki_sslerr(err, CARVE_EINTERNAL, "X509_new");
		goto fail;
	}
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    pki_random_serial(x, err) < 0 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : name) != 1 ||
	    ASN1_TIME_set(X509_getm_notBefore(x), nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), na) == NULL ||
	    X509_set_pubkey(x, pub) != 1) {
		pki_sslerr(err, CARVE_EINTERNAL, "building a certificate");
		goto fail;
	}
	if (pki_add_exts(x, issuer, exts, nexts, err) < 0 ||
	    (nsan > 0 && pki_add_san(x, san, nsan, err) < 0))
		goto fail;
	if (X509_sign(x, sign_key, EVP_sha256()) <= 0) {
		pki_sslerr(err, CARVE_EINTERNAL, "signing a certificate");
		goto fail;
	}
	X509_NAME_free(name);
	return x;
fail:
	X509_NAME_free(name);
	X509_free(x);
	return NULL;
}

/*
 * A server name is an IP address or a DNS name of letters, digits, '-' and
 * '.' (labels of 1..63 bytes, 253 bytes in all).
 */
static int
pki_check_server_name(const char *s, struct carve_error *err)
{
	unsigned char ip[16];
	size_t len = strlen(s), label = 0;

	if (inet_pton(AF_INET, s, ip) == 1 || inet_pton(AF_INET6, s, ip) == 1)
		return 0;
	if (len == 0 || len > 253)
		return error_set(err, CARVE_EINVAL, "--name \"%s\": a DNS name "
		    "has 1..253 bytes", s);
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63)
				return error_set(err, CARVE_EINVAL, "--name "
				    "\"%s\": empty or over-long DNS label", s);
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-') {
			label++;
		} else {
			return error_set(err, CARVE_EINVAL, "--name \"%s\" is "
			    "neither an IP address nor a DNS name", s);
		}
	}
	return 0;
}

static char *
pki_token_new(void)
{
	unsigned char b[CP_PKI_TOKEN_BYTES];
	char *s = xmalloc(CP_PKI_TOKEN_HEX + 2);

	if (RAND_bytes(b, sizeof(b)) != 1) {
		fprintf(stderr, "level=fatal comp=cp msg=\"RAND_bytes failed\"\n");
		abort();
	}
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(s + 2 * i, 3, "%02x", b[i]);
	s[CP_PKI_TOKEN_HEX] = '\n';
	s[CP_PKI_TOKEN_HEX + 1] = '\0';
	OPENSSL_cleanse(b, sizeof(b));
	return s;
}

int
cp_pki_init(const char *dir, const char *const *names, size_t nnames,
    bool force, struct carve_error *err)
{
	static const char *const default_names[] = { "localhost", "127.0.0.1" };
	EVP_PKEY *ca_key = NULL, *srv_key = NULL;
	X509 *ca = NULL, *srv = NULL;
	char *pem[4] = { NULL, NULL, NULL, NULL };
	char *tok[2] = { NULL, NULL };
	size_t len[4];
	time_t now = time(NULL);
	struct stat st;
	int rc = -1;

	if (nnames == 0) {
		names = default_names;
		nnames = NELEM(default_names);
	}
	if (nnames > CP_PKI_MAX_NAMES)
		return error_set(err, CARVE_EINVAL, "at most %d --name options",
		    CP_PKI_MAX_NAMES);
	for (size_t i = 0; i < nnames; i++)
		if (pki_check_server_name(names[i], err) < 0)
			return -1;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return error_set(err, CARVE_EINTERNAL, "cannot create %s: %s",
		    dir, strerror(errno));
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return error_set(err, CARVE_EINVAL, "%s is not a directory", dir);
	if (!force) {
		for (size_t i = 0; i < NELEM(pki_files); i++) {
			char *p = xasprintf("%s/%s", dir, pki_files[i]);
			int exists = lstat(p, &st) == 0;

			free(p);
			if (exists)
				return error_set(err, CARVE_ECONFLICT,
				    "%s/%s exists; refusing to overwrite it "
				    "without --force", dir, pki_files[i]);
		}
	}

	ca_key = EVP_EC_gen(PKI_CURVE);
	srv_key = EVP_EC_gen(PKI_CURVE);
	if (ca_key == NULL || srv_key == NULL) {
		pki_sslerr(err, CARVE_EINTERNAL, "generating an EC key");
		goto cleanup;
	}
	ca = pki_make_cert(ca_key, PKI_CA_CN, NULL, ca_key, now - 60,
	    now + (time_t)CP_PKI_CA_DAYS * 86400, pki_ca_exts, NELEM(pki_ca_exts),
	    NULL, 0, err);
	if (ca == NULL)
		goto cleanup;
	srv = pki_make_cert(srv_key, PKI_SERVER_CN, ca, ca_key, now - 60,
	    now + (time_t)CP_PKI_SERVER_DAYS * 86400, pki_server_exts,
	    NELEM(pki_server_exts), names, nnames, err);
	if (srv == NULL)
		goto cleanup;
	pem[0] = pki_pem(ca, NULL, &len[0]);
	pem[1] = pki_pem(NULL, ca_key, &len[1]);
	pem[2] = pki_pem(srv, NULL, &len[2]);
	pem[3] = pki_pem(NULL, srv_key, &len[3]);
	if (pem[0] == NULL || pem[1] == NULL || pem[2] == NULL ||
	    pem[3] == NULL) {
		pki_sslerr(err, CARVE_EINTERNAL, "writing PEM");
		goto cleanup;
	}
	tok[0] = pki_token_new();
	tok[1] = pki_token_new();
	/* Keys before certificates: a certificate never exists without its key. */
	if (pki_write_file(dir, CP_PKI_CA_KEY, pem[1], len[1], 0600, err) < 0 ||
	    pki_write_file(dir, CP_PKI_CA_CRT, pem[0], len[0], 0644, err) < 0 ||
	    pki_write_file(dir, CP_PKI_SERVER_KEY, pem[3], len[3], 0600, err) < 0 ||
	    pki_write_file(dir, CP_PKI_SERVER_CRT, pem[2], len[2], 0644, err) < 0 ||
	    pki_write_file(dir, CP_PKI_ADMIN_TOKEN, tok[0], strlen(tok[0]), 0600,
	    err) < 0 ||
	    pki_write_file(dir, CP_PKI_BOOTSTRAP_TOKEN, tok[1], strlen(tok[1]),
	    0600, err) < 0)
		goto cleanup;
	{
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			(void)fsync(dfd);
			close(dfd);
		}
	}
	rc = 0;
cleanup:
	X509_free(ca);
	X509_free(srv);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(srv_key);
	free(pem[0]);
	xfree_secret(pem[1]);
	free(pem[2]);
	xfree_secret(pem[3]);
	xfree_secret(tok[0]);
	xfree_secret(tok[1]);
	return rc;
}

/* ------------------------------------------------------------ the CA */

struct cp_ca *
cp_ca_load(const char *dir, struct carve_error *err)
{
	char *crt_path = xasprintf("%s/%s", dir, CP_PKI_CA_CRT);
	char *key_path = xasprintf("%s/%s", dir, CP_PKI_CA_KEY);
	char *crt = NULL, *key = NULL;
	size_t crt_len = 0, key_len = 0;
	struct cp_ca *ca = xcalloc(1, sizeof(*ca));
	BIO *b;

	if ((crt = pki_read_file(crt_path, PKI_FILE_MAX, false, &crt_len,
	    err)) == NULL ||
	    (key = pki_read_file(key_path, PKI_FILE_MAX, true, &key_len,
	    err)) == NULL)
		goto fail;
	if ((b = BIO_new_mem_buf(crt, (int)crt_len)) != NULL) {
		ca->ca_cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	if (ca->ca_cert == NULL) {
		pki_sslerr(err, CARVE_EINVAL, crt_path);
		goto fail;
	}
	if ((b = BIO_new_mem_buf(key, (int)key_len)) != NULL) {
		ca->ca_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	if (ca->ca_key == NULL) {
		pki_sslerr(err, CARVE_EINVAL, key_path);
		goto fail;
	}
	if (X509_check_private_key(ca->ca_cert, ca->ca_key) != 1) {
		ERR_clear_error();
		error_set(err, CARVE_EINVAL, "%s does not belong to %s",
		    key_path, crt_path);
		goto fail;
	}
	ca->ca_pem = pki_pem(ca->ca_cert, NULL, NULL);
	if (ca->ca_pem == NULL) {
		pki_sslerr(err, CARVE_EINTERNAL, crt_path);
		goto fail;
	}
	free(crt);
	xfree_secret(key);
	free(crt_path);
	free(key_path);
	return ca;
fail:
	free(crt);
	if (key != NULL)
		xfree_secret(key);
	free(crt_path);
	free(key_path);
	cp_ca_free(ca);
	return NULL;
}

void
cp_ca_free(struct cp_ca *ca)
{
	if (ca == NULL)
		return;
	X509_free(ca->ca_cert);
	EVP_PKEY_free(ca->ca_key);
	free(ca->ca_pem);
	free(ca);
}

const char *
cp_ca_pem(const struct cp_ca *ca)
{
	return ca->ca_pem;
}

X509 *
cp_ca_cert(const struct cp_ca *ca)
{
	return ca->ca_cert;
}

static int
pki_name_cn(const X509_NAME *name, const char *what,
    char out[IDS_NAME_MAX + 1], struct carve_error *err)
{
	const ASN1_STRING *s;
	unsigned char *utf8 = NULL;
	int i, n;

	i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (i < 0)
		return error_set(err, CARVE_EINVAL, "%s has no subject CN", what);
	if (X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
		return error_set(err, CARVE_EINVAL, "%s has more than one "
		    "subject CN", what);
	s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
	n = ASN1_STRING_to_UTF8(&utf8, s);
	if (n < 0) {
		ERR_clear_error();
		return error_set(err, CARVE_EINVAL, "%s: the subject CN is "
		    "not a valid string", what);
	}
	if (n > IDS_NAME_MAX || memchr(utf8, '\0', (size_t)n) != NULL) {
		OPENSSL_free(utf8);
		return error_set(err, CARVE_EINVAL, "%s: the subject CN is "
		    "not a node name (1..%d bytes of [A-Za-z0-9._-])", what,
		    IDS_NAME_MAX);
	}
	memcpy(out, utf8, (size_t)n);
	out[n] = '\0';
	OPENSSL_free(utf8);
	return ids_name_check(out, "the subject CN", err);
}

int
cp_pki_cert_cn(X509 *cert, const char *what, char out[IDS_NAME_MAX + 1],
    struct carve_error *err)
{
	return pki_name_cn(X509_get_subject_name(cert), what, out, err);
}

/* The kinds of key a node may certify. */
static int
pki_check_key(EVP_PKEY *pkey, struct carve_error *err)
{
	char group[64];

	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_group_name(pkey, group, sizeof(group),
		    NULL) == 1 && (strcmp(group, "prime256v1") == 0 ||
		    strcmp(group, "secp384r1") == 0))
			return 0;
		ERR_clear_error();
		return error_set(err, CARVE_EINVAL, "the CSR's EC key must be "
		    "on curve P-256 or P-384");
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(pkey) >= PKI_RSA_MIN_BITS)
			return 0;
		return error_set(err, CARVE_EINVAL, "the CSR's RSA key has %d "
		    "bits; at least %d are required", EVP_PKEY_get_bits(pkey),
		    PKI_RSA_MIN_BITS);
	default:
		return error_set(err, CARVE_EINVAL, "the CSR's key must be EC "
		    "(P-256 or P-384) or RSA");
	}
}

char *
cp_ca_sign_csr(const struct cp_ca *ca, const char *csr_pem, const char *node,
    int64_t lifetime_s, int64_t *expires_at_ms, struct carve_error *err)
{
	char cn[IDS_NAME_MAX + 1];
	X509_REQ *req = NULL;
	X509 *cert = NULL;
	EVP_PKEY *pub;
	char *pem = NULL;
	size_t len = strlen(csr_pem);
	time_t now = time(NULL), nb;
	BIO *b;

	if (ids_name_check(node, "node", err) < 0)
		return NULL;
	if (lifetime_s < 1 || lifetime_s > (int64_t)CP_PKI_CA_DAYS * 86400) {
		error_set(err, CARVE_EINVAL, "certificate lifetime %lld s is "
		    "out of range", (long long)lifetime_s);
		return NULL;
	}
	if (len > PKI_CSR_MAX) {
		error_set(err, CARVE_EINVAL, "the CSR is larger than %d bytes",
		    PKI_CSR_MAX);
		return NULL;
	}
	if ((b = BIO_new_mem_buf(csr_pem, (int)len)) != NULL) {
		req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	if (req == NULL) {
		ERR_clear_error();
		error_set(err, CARVE_EINVAL, "csr is not a PEM certificate "
		    "request");
		return NULL;
	}
	if ((pub = X509_REQ_get0_pubkey(req)) == NULL) {
		ERR_clear_error();
		error_set(err, CARVE_EINVAL, "the CSR has no usable public key");
		goto cleanup;
	}
	if (X509_REQ_verify(req, pub) != 1) {
		ERR_clear_error();
		error_set(err, CARVE_EINVAL, "the CSR's signature does not "
		    "verify with its own key");
		goto cleanup;
	}
	if (pki_check_key(pub, err) < 0 ||
	    pki_name_cn(X509_REQ_get_subject_name(req), "the CSR", cn, err) < 0)
		goto cleanup;
	if (strcmp(cn, node) != 0) {
		error_set(err, CARVE_EINVAL, "the CSR's subject CN \"%s\" is "
		    "not the node name \"%s\"", cn, node);
		goto cleanup;
	}
	pki_backdate(now, lifetime_s, &nb);
	cert = pki_make_cert(pub, node, ca->ca_cert, ca->ca_key, nb,
	    now + (time_t)lifetime_s, pki_client_exts, NELEM(pki_client_exts),
	    NULL, 0, err);
	if (cert == NULL)
		goto cleanup;
	if ((pem = pki_pem(cert, NULL, NULL)) == NULL) {
		pki_sslerr(err, CARVE_EINTERNAL, "writing PEM");
		goto cleanup;
	}
	*expires_at_ms = ((int64_t)now + lifetime_s) * 1000;
cleanup:
	X509_free(cert);
	X509_REQ_free(req);
	return pem;
}

/* ------------------------------------------------------------ tokens */

int
cp_pki_check_secret(const char *path, struct carve_error *err)
{
	size_t len;
	char *s = pki_read_file(path, PKI_FILE_MAX, true, &len, err);

	if (s == NULL)
		return -1;
	OPENSSL_cleanse(s, len);
	free(s);
	return 0;
}

int
cp_pki_token_load(const char *path, char out[CP_PKI_TOKEN_HEX + 1],
    struct carve_error *err)
{
	size_t len;
	char *s = pki_read_file(path, 4096, true, &len, err);
	int rc = -1;

	if (s == NULL)
		return -1;
	if (len > 0 && s[len - 1] == '\n')
		s[--len] = '\0';
	if (len != CP_PKI_TOKEN_HEX || strspn(s, "0123456789abcdefABCDEF") !=
	    len) {
		error_set(err, CARVE_EINVAL, "%s must hold %d hex digits",
		    path, CP_PKI_TOKEN_HEX);
		goto cleanup;
	}
	memcpy(out, s, len + 1);
	rc = 0;
cleanup:
	xfree_secret(s);
	return rc;
}

bool
cp_pki_token_equal(const char *given, const char *token)
{
	unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];

	if (given == NULL)
		given = "";
	SHA256((const unsigned char *)given, strlen(given), a);
	SHA256((const unsigned char *)token, strlen(token), b);
	return CRYPTO_memcmp(a, b, sizeof(a)) == 0 && token[0] != '\0';
}
