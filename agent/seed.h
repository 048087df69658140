/*
 * The cloud-init NoCloud seed: a small ISO9660 volume labelled "cidata"
 * holding meta-data and user-data, attached to a VM as a read-only cdrom.
 * cloud-init in the guest finds it by its label and configures the
 * instance id, hostname and SSH keys from it.
 */
#ifndef CARVE_SEED_H
#define CARVE_SEED_H

#include <stddef.h>

#include "common/error.h"

/* How long genisoimage may run before it is killed (a seed is a few KiB). */
#define SEED_TIMEOUT_MS 10000

/*
 * Write the seed ISO for a VM to path. Blocking (it runs genisoimage and
 * waits for it, at most SEED_TIMEOUT_MS): call it from a worker thread.
 *
 * meta-data:  instance-id: "<vm_id>"
 *             local-hostname: "<hostname>"
 *             public-keys:            (only when nkeys > 0)
 *               - "<key>" ...
 * user-data:  user_data verbatim when it is not NULL (an empty string is
 *             an empty user-data); otherwise
 *             #cloud-config
 *             hostname: "<hostname>"
 *             ssh_authorized_keys:    (only when nkeys > 0)
 *               - "<key>" ...
 * Every value carve writes is a YAML double-quoted scalar, so no input can
 * add keys or change a value's type. vm_id and hostname must not be NULL;
 * ssh_keys may be NULL when nkeys is 0.
 *
 * path is replaced atomically (a hidden temporary file ".<name>.XXXXXX" in
 * the same directory, fsync, rename, directory fsync), mode 0600: user-data
 * may carry secrets, and libvirt gives QEMU access to the disks of a domain
 * it starts (its DAC driver chowns them to the qemu user; checked with
 * qemu:///system and a read-only IDE cdrom). The inputs are written to a
 * private mkdtemp directory under $TMPDIR (default /tmp). On any failure no
 * temporary is left behind, path is untouched (unless only the final
 * directory fsync failed), and err says why: CARVE_EINVAL for missing
 * arguments, CARVE_EINTERNAL otherwise, with genisoimage's own error text
 * (its last lines) when it failed or timed out.
 */
int seed_build(const char *path, const char *vm_id, const char *hostname,
    const char *const *ssh_keys, size_t nkeys, const char *user_data,
    struct carve_error *err);

#endif
