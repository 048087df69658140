/*
 * carve-cp's small certificate authority: `carve-cp init` makes the CA, the
 * server certificate and the two bearer tokens in a directory; `serve` loads
 * the CA and signs the CSRs nodes send to enroll and renew. Only the public
 * key and the node name of a CSR are used: the subject, the extensions and
 * the lifetime of every certificate are decided here.
 */
#ifndef CARVE_CP_PKI_H
#define CARVE_CP_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "common/error.h"
#include "common/ids.h"

/* File names inside the directory. */
#define CP_PKI_CA_CRT		"ca.crt"
#define CP_PKI_CA_KEY		"ca.key"
#define CP_PKI_SERVER_CRT	"server.crt"
#define CP_PKI_SERVER_KEY	"server.key"
#define CP_PKI_ADMIN_TOKEN	"admin.token"
#define CP_PKI_BOOTSTRAP_TOKEN	"bootstrap.token"

#define CP_PKI_TOKEN_BYTES	32
#define CP_PKI_TOKEN_HEX	(2 * CP_PKI_TOKEN_BYTES)
#define CP_PKI_CA_DAYS		3650
#define CP_PKI_SERVER_DAYS	365
#define CP_PKI_MAX_NAMES	32

/*
 * Make dir (0700 when it does not exist) and write into it a new EC P-256
 * CA, a server certificate for names (DNS names or IP addresses; none means
 * "localhost" and "127.0.0.1") and two random tokens. Keys and tokens are
 * 0600. Refuses when any of the six files exists, unless force.
 */
int cp_pki_init(const char *dir, const char *const *names, size_t nnames,
    bool force, struct carve_error *err);

struct cp_ca;

/*
 * Load ca.crt and ca.key from dir, refusing a key that group or others can
 * read. Free with cp_ca_free.
 */
struct cp_ca *cp_ca_load(const char *dir, struct carve_error *err);
void cp_ca_free(struct cp_ca *ca);
/* The CA certificate in PEM, owned by ca. */
const char *cp_ca_pem(const struct cp_ca *ca);
/* The CA certificate, owned by ca. */
X509 *cp_ca_cert(const struct cp_ca *ca);

/*
 * Sign a PEM CSR for node: the CSR's self-signature must verify, its key
 * must be EC P-256/P-384 or RSA of at least 2048 bits, and its subject must
 * hold exactly one CN, equal to node. The certificate has subject CN=node,
 * extendedKeyUsage clientAuth, a random 128-bit serial and lives lifetime_s
 * seconds. Returns its PEM (the caller frees) and its notAfter in
 * *expires_at_ms; NULL with err (CARVE_EINVAL for a bad CSR).
 */
char *cp_ca_sign_csr(const struct cp_ca *ca, const char *csr_pem,
    const char *node, int64_t lifetime_s, int64_t *expires_at_ms,
    struct carve_error *err);

/*
 * The single subject CN of cert, checked as a node name (ids_name_check).
 * what names the certificate in the message.
 */
int cp_pki_cert_cn(X509 *cert, const char *what, char out[IDS_NAME_MAX + 1],
    struct carve_error *err);

/* Refuse a key file (such as server.key) that group or others may read. */
int cp_pki_check_secret(const char *path, struct carve_error *err);

/*
 * Read a token file (CP_PKI_TOKEN_HEX hex digits and an optional newline)
 * into out, refusing a file that group or others can read.
 */
int cp_pki_token_load(const char *path, char out[CP_PKI_TOKEN_HEX + 1],
    struct carve_error *err);
/*
 * Whether given (any length, may be NULL) equals token, in time that does
 * not depend on where they differ: both are hashed and the digests compared
 * with CRYPTO_memcmp, so not even the length leaks.
 */
bool cp_pki_token_equal(const char *given, const char *token);

#endif
