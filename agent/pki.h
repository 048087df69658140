/*
 * The node's identity towards the control plane: an EC P-256 private key
 * that never leaves the host, a certificate signing request with the node
 * name as subject CN, and the certificate the control plane signs, kept as
 * two files (key 0600, certificate 0644) written atomically (temp file,
 * fsync, rename, directory fsync). Blocking file and crypto work: start-up
 * and the rare enrolment/renewal only (a few milliseconds), OpenSSL 3.
 */
#ifndef CARVE_PKI_H
#define CARVE_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

/*
 * A new EC P-256 key and a CSR (PEM) signed by it with subject CN = cn.
 * *key_pem is a secret: release it with xfree_secret. Both are new strings.
 */
int pki_make_key_csr(const char *cn, char **key_pem, char **csr_pem,
    struct carve_error *err);

/*
 * Write data to path atomically with the given mode: a temporary file in
 * the same directory, fsync, rename over path, fsync the directory. A crash
 * leaves the old file or the new one, never a mix.
 */
int pki_write_file(const char *path, const char *data, size_t len,
    mode_t mode, struct carve_error *err);

/*
 * Install a key and its certificate as one change: both are checked to
 * belong together (and the certificate to be a certificate for cn), written
 * as key_path.new and cert_path.new, then renamed into place, key first.
 * pki_recover finishes or discards an install a crash interrupted.
 * cert_pem may hold the chain after the node's certificate: CA certificates
 * that are not self-signed (intermediates) are kept after it, so the TLS
 * handshake can present them; self-signed roots are left out.
 */
int pki_install(const char *key_path, const char *key_pem,
    const char *cert_path, const char *cert_pem, const char *chain_pem,
    const char *cn, struct carve_error *err);
int pki_recover(const char *key_path, const char *cert_path,
    struct carve_error *err);

/*
 * The key file must be a regular file owned by us and not readable or
 * writable by group or others (mode 0600 or stricter). 0 when fine, 1 when
 * it does not exist, -1 with err set when it must not be used.
 */
int pki_check_key_file(const char *path, struct carve_error *err);

/* What carved needs to know about its certificate. */
struct pki_cert_info {
	int64_t ci_not_before_ms;
	int64_t ci_not_after_ms;
	char ci_cn[65];            /* subject CN, "" when there is none */
};

/* Read the first certificate of a PEM string or file. */
int pki_cert_info_pem(const char *pem, struct pki_cert_info *out,
    struct carve_error *err);
int pki_cert_info_file(const char *path, struct pki_cert_info *out,
    struct carve_error *err);

/*
 * Is the pair at key_path/cert_path usable for cn at now_ms: both readable,
 * the key matching the certificate, CN == cn, not expired? 0 with *out
 * filled when yes; -1 with err saying why not (CARVE_ENOTFOUND when a file
 * is missing).
 */
int pki_check_pair(const char *key_path, const char *cert_path,
    const char *cn, int64_t now_ms, struct pki_cert_info *out,
    struct carve_error *err);

/*
 * When to renew a certificate valid from nb to na: a point drawn uniformly
 * between 70% and 80% of its lifetime (jitter spreads a fleet enrolled at
 * the same time). u in [0, 1] picks the point.
 */
int64_t pki_renew_at(int64_t nb_ms, int64_t na_ms, double u);

#endif
