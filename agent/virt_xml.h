/*
 * libvirt XML for carve: the domain definition built from a validated
 * vm_spec (every value typed and escaped, never pasted), carve's metadata
 * element that marks a domain as managed, and the bits of host capabilities
 * the inventory reports. Parsing uses libxml2 (already a libvirt dependency).
 */
#ifndef CARVE_VIRT_XML_H
#define CARVE_VIRT_XML_H

#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>

#include "api/command.h"
#include "api/vm.h"
#include "common/error.h"

/* Namespace of carve's <metadata> child element. */
#define VIRT_XML_NS      "https://carve.dev/xmlns/vm/1"
#define VIRT_XML_PREFIX  "carve"

struct virt_xml_opts {
	const char *domain_type;   /* "kvm", "qemu" or "test" */
	const char *vm_id;         /* validated UUID: becomes the domain UUID */
	const char *command_id;    /* validated UUID of the creating command */
	int64_t created_at_ms;
	/* Absolute, already resolved paths (or NULL): */
	const char *kernel_path;
	const char *initrd_path;
	const char *console_log;   /* serial console log file, or NULL for none */
	/*
	 * Disks (absolute paths of storage volumes, or NULL): the root disk,
	 * a qcow2 overlay, as virtio vda; the cloud-init seed as a read-only
	 * IDE cdrom (hdc: i440fx has IDE, and every guest reads it).
	 */
	const char *root_disk;
	const char *seed_iso;
};

/*
 * The full <domain> XML for spec; a new string the caller frees, or NULL with
 * err set. The metadata element (see virt_xml_metadata) is embedded.
 * For "kvm"/"qemu": ACPI (graceful shutdown), a virtio balloon, a serial
 * console logged to console_log, on_poweroff=destroy, on_crash=destroy;
 * direct kernel boot when kernel_path is set.
 */
char *virt_xml_domain(const struct vm_spec *spec,
    const struct virt_xml_opts *opts, struct carve_error *err);

/*
 * The metadata element alone:
 * <carve:vm xmlns:carve="..."><carve:id>..</carve:id><carve:name>..
 *  <carve:vcpus>..<carve:memory_mib>..<carve:disk_gib>..<carve:command_id>..
 *  <carve:created_at>..</carve:vm>
 */
char *virt_xml_metadata(const struct vm_spec *spec,
    const struct virt_xml_opts *opts);

/*
 * Storage XML for carve's dir pool and its volumes (values escaped like
 * the domain's). virt_xml_pool: <pool type='dir'> named name at path with
 * mode 0751. virt_xml_volume: a volume of capacity_bytes in format
 * ("qcow2" or "raw"), mode 0600, on backing (absolute path) in
 * backing_format when backing is not NULL. NULL with err on bad input.
 */
char *virt_xml_pool(const char *name, const char *path,
    struct carve_error *err);
char *virt_xml_volume(const char *name, uint64_t capacity_bytes,
    const char *format, const char *backing, const char *backing_format,
    struct carve_error *err);
/*
 * From a volume's XML (virStorageVolGetXMLDesc): the backing store's path
 * (*backing, a new string, NULL when there is none) and the capacity.
 */
int virt_xml_parse_volume(const char *xml, char **backing,
    uint64_t *capacity_bytes, struct carve_error *err);

/* From a pool's XML: its target path (a new string). */
int virt_xml_parse_pool_path(const char *xml, char **path,
    struct carve_error *err);

/*
 * Parse a metadata element as returned by virDomainGetMetadata into vm
 * (id, name, vcpus, memory_mib, disk_gib, command_id, created_at; state is
 * left alone). Strictly validated: CARVE_EINVAL on anything off, and vm is
 * untouched then. The element may be in VIRT_XML_NS or, as libvirt returns
 * it, in no namespace; any other namespace is refused, as is any DTD.
 * UUIDs come back lower-case.
 */
int virt_xml_parse_metadata(const char *xml, struct vm_info *vm,
    struct carve_error *err);

#define VIRT_CPU_FEATURES_MAX 256

struct host_cpu {
	char arch[32];
	char model[64];
	char vendor[64];
	unsigned sockets, cores, threads;
	unsigned nfeatures;
	char *features[VIRT_CPU_FEATURES_MAX];   /* owned */
	unsigned numa_cells;
};

/*
 * Parse virConnectGetCapabilities output (host/cpu: arch, model, vendor,
 * topology, features; host/topology/cells: the number of cells). Parts the
 * document lacks stay zero or empty; features beyond VIRT_CPU_FEATURES_MAX
 * are dropped. out needs no initialization; on success the caller releases
 * it with host_cpu_clear, on failure (CARVE_EINVAL) it holds nothing.
 */
int virt_xml_parse_caps(const char *xml, struct host_cpu *out,
    struct carve_error *err);
void host_cpu_clear(struct host_cpu *cpu);

/*
 * Parse buf (at most maxlen bytes; what names it in messages) the way every
 * document from libvirt is parsed here: no network, no DTD (refused), no
 * entity substitution. A new document (xmlFreeDoc) with a root element, or
 * NULL with err CARVE_EINVAL.
 */
xmlDocPtr virt_xml_read(const char *buf, size_t maxlen, const char *what,
    struct carve_error *err);

#endif
