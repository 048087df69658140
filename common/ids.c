/* Identifiers: see ids.h. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "ids.h"

static void ids_uuid_format(unsigned char b[16], char out[IDS_UUID_LEN + 1]);

bool
ids_uuid_valid(const char *s)
{
	static const int dash[] = { 8, 13, 18, 23 };
	size_t d = 0;

	if (s == NULL || strlen(s) != IDS_UUID_LEN)
		return false;
	for (int i = 0; i < IDS_UUID_LEN; i++) {
		if (d < 4 && i == dash[d]) {
			if (s[i] != '-')
				return false;
			d++;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

void
ids_uuid_new(char out[IDS_UUID_LEN + 1])
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof(b)) != 1) {
		/* The CSPRNG failing is unrecoverable for a security-relevant daemon. */
		fprintf(stderr, "level=fatal comp=ids msg=\"RAND_bytes failed\"\n");
		abort();
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	ids_uuid_format(b, out);
}

static void
ids_uuid_format(unsigned char b[16], char out[IDS_UUID_LEN + 1])
{
	snprintf(out, IDS_UUID_LEN + 1,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
	    b[11], b[12], b[13], b[14], b[15]);
}

void
ids_uuid_derive(const char *space, const char *name,
    char out[IDS_UUID_LEN + 1])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 0;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, space, strlen(space) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, name, strlen(name)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &len) != 1) {
		fprintf(stderr, "level=fatal comp=ids msg=\"SHA-256 failed\"\n");
		abort();
	}
	EVP_MD_CTX_free(ctx);
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
	ids_uuid_format(md, out);
}

void
ids_uuid_normalize(const char *s, char out[IDS_UUID_LEN + 1])
{
	for (int i = 0; i < IDS_UUID_LEN; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[IDS_UUID_LEN] = '\0';
}

int
ids_name_check(const char *s, const char *what, struct carve_error *err)
{
	size_t len;

	if (s == NULL || *s == '\0')
		return error_set(err, CARVE_EINVAL, "%s must not be empty", what);
	len = strlen(s);
	if (len > IDS_NAME_MAX)
		return error_set(err, CARVE_EINVAL,
		    "%s is %zu bytes long; at most %d are allowed", what, len,
		    IDS_NAME_MAX);
	if (!isalnum((unsigned char)s[0]))
		return error_set(err, CARVE_EINVAL,
		    "%s must start with a letter or digit", what);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(isalnum(c) || c == '.' || c == '_' || c == '-'))
			return error_set(err, CARVE_EINVAL,
			    "%s may only contain letters, digits, '.', '_' and '-' "
			    "(found byte 0x%02x at offset %zu)", what, c, i);
	}
	return 0;
}
