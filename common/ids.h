/* Identifiers: UUIDs for commands and VMs, and validated VM names. */
#ifndef CARVE_IDS_H
#define CARVE_IDS_H

#include <stdbool.h>

#include "error.h"

#define IDS_UUID_LEN 36      /* canonical 8-4-4-4-12, lower-case hex */
#define IDS_NAME_MAX 64      /* bytes */

/* True for a canonical UUID string (hex digits of either case). */
bool ids_uuid_valid(const char *s);
/* Writes a new random (v4) UUID, lower-case, into out (37 bytes). */
void ids_uuid_new(char out[IDS_UUID_LEN + 1]);
/*
 * A UUID derived from (space, name) by SHA-256 (RFC 9562 version 8 layout):
 * the same inputs always give the same id, so a retried request that names
 * only a command id maps to the same VM id.
 */
void ids_uuid_derive(const char *space, const char *name,
    char out[IDS_UUID_LEN + 1]);
/* Copies s into out lower-cased; s must be valid. */
void ids_uuid_normalize(const char *s, char out[IDS_UUID_LEN + 1]);

/*
 * A VM or snapshot name: 1..64 bytes of [A-Za-z0-9._-], starting with a
 * letter or digit. No XML, shell or path metacharacters can pass. what names
 * the field in the error message.
 */
int ids_name_check(const char *s, const char *what, struct carve_error *err);

#endif
