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

/* How often the balloon driver refreshes the guest's memory statistics. */
#define VIRT_XML_BALLOON_STATS_S 5

/* Namespace of carve's <metadata> child element. */
#define VIRT_XML_NS      "https://carve.dev/xmlns/vm/1"
#define VIRT_XML_PREFIX  "carve"

/* Whether a VM ran before a rebuild stopped it, as the metadata records it. */
enum virt_xml_run {
	VIRT_XML_RUN_UNRECORDED = 0,
	VIRT_XML_RUN_NO,
	VIRT_XML_RUN_YES,
};

/*
 * carve's vm.rebuild bookkeeping in the metadata, so that a rebuild cut
 * short by carved's death is finished from libvirt's state:
 *   rebuilding   the rebuild under way (set before the VM is stopped);
 *   rebuilt_by   the rebuild whose new root disk is in place;
 *   was_running  whether the VM ran before that rebuild stopped it (with
 *                either of the two, never alone).
 */
struct virt_xml_rebuild {
	char rb_rebuilding[IDS_UUID_LEN + 1];   /* "" when none */
	char rb_rebuilt_by[IDS_UUID_LEN + 1];   /* "" when never rebuilt */
	enum virt_xml_run rb_was_running;
};

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
	/*
	 * Room to grow (vm.resize): the domain's maximum vCPUs and memory,
	 * at least the spec's size; 0 means the size itself. The spec's size
	 * is what the guest gets (<vcpu current=...>, <currentMemory>, held
	 * there by the balloon) and what the metadata records.
	 */
	unsigned max_vcpus;
	uint64_t max_memory_mib;
	/*
	 * The data disk volumes (absolute paths), one per spec data disk,
	 * attached as virtio vdb, vdc, ... with serial "carve-data<i>" (what
	 * a guest finds them by: /dev/disk/by-id/virtio-carve-data<i>).
	 */
	const char *const *data_disks;
	size_t ndata_disks;
	/* Rebuild bookkeeping for the metadata, or NULL for none. */
	const struct virt_xml_rebuild *rebuild;
};

/*
 * The maximum a domain of this size is defined with: factor x the size,
 * vCPUs capped by host_cpus (when not 0) and VM_VCPUS_MAX, memory by
 * host_memory_mib (when not 0) and VM_MEMORY_MIB_MAX; never below the size.
 */
unsigned virt_xml_max_vcpus(unsigned vcpus, unsigned factor,
    unsigned host_cpus);
uint64_t virt_xml_max_memory_mib(uint64_t memory_mib, unsigned factor,
    uint64_t host_memory_mib);

/*
 * The full <domain> XML for spec; a new string the caller frees, or NULL with
 * err set. The metadata element (see virt_xml_metadata) is embedded.
 * For "kvm"/"qemu": ACPI (graceful shutdown), a virtio balloon (with guest
 * memory statistics every VIRT_XML_BALLOON_STATS_S seconds), a serial
 * console logged to console_log, on_poweroff=destroy, on_crash=destroy;
 * direct kernel boot when kernel_path is set. Every NIC of the spec (for
 * every domain type) becomes <interface type='network'|'bridge'> with its
 * source, MAC and a virtio model; each must have its MAC by now
 * (vm_spec_derive_macs), else CARVE_EINVAL.
 */
char *virt_xml_domain(const struct vm_spec *spec,
    const struct virt_xml_opts *opts, struct carve_error *err);

/*
 * The metadata element alone:
 * <carve:vm xmlns:carve="..."><carve:id>..</carve:id><carve:name>..
 *  <carve:vcpus>..<carve:memory_mib>..<carve:disk_gib>..<carve:command_id>..
 *  <carve:created_at>..
 *  [<carve:image_url>..<carve:image_sha256>..<carve:image_format>..]
 *  [<carve:data_disk_gib>..]... (one per data disk, in order)
 *  [<carve:rebuilding>..] [<carve:rebuilt_by>..] [<carve:was_running>..]
 * </carve:vm>
 * disk_gib is the root disk's size; the image is the root disk's base.
 */
char *virt_xml_metadata(const struct vm_spec *spec,
    const struct virt_xml_opts *opts);

/*
 * The metadata element of an existing VM from its record as read back (vm;
 * its state is not part of it) and rb (NULL: no rebuild bookkeeping): how
 * a command that changes a managed VM's record rewrites it without losing
 * a field. Written without a namespace (<vm><id>..), the form
 * virDomainSetMetadata takes (it puts the element in VIRT_XML_NS itself).
 * NULL with err on a record that does not validate.
 */
char *virt_xml_metadata_vm(const struct vm_info *vm,
    const struct virt_xml_rebuild *rb, struct carve_error *err);

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
 * (id, name, vcpus, memory_mib, disk_gib, command_id, created_at, image,
 * data disks; state is left alone). Strictly validated: CARVE_EINVAL on anything off, and vm is
 * untouched then. The element may be in VIRT_XML_NS or, as libvirt returns
 * it, in no namespace; any other namespace is refused, as is any DTD.
 * UUIDs come back lower-case.
 */
int virt_xml_parse_metadata(const char *xml, struct vm_info *vm,
    struct carve_error *err);
/* The same, and the rebuild bookkeeping into *rb (zeroed when absent). */
int virt_xml_parse_metadata_rebuild(const char *xml, struct vm_info *vm,
    struct virt_xml_rebuild *rb, struct carve_error *err);

/*
 * A metadata element (as virDomainGetMetadata returns it) with its vcpus
 * and memory_mib replaced, everything else kept as it was: *out is a new
 * string to hand to virDomainSetMetadata. The input must be valid carve
 * metadata (virt_xml_parse_metadata) and the sizes in range; else
 * CARVE_EINVAL and *out is NULL.
 */
int virt_xml_metadata_set_size(const char *xml, unsigned vcpus,
    uint64_t memory_mib, char **out, struct carve_error *err);

/* The sizes a domain definition (virDomainGetXMLDesc) declares. */
struct virt_xml_sizes {
	unsigned vcpus_max;           /* <vcpu>MAX</vcpu> */
	unsigned vcpus;               /* its current='' attribute, else MAX */
	uint64_t memory_max_kib;      /* <memory>: what the balloon may reach */
	uint64_t memory_kib;          /* <currentMemory>, else <memory> */
};

/* Read them (any unit libvirt writes); CARVE_EINVAL when missing or odd. */
int virt_xml_parse_sizes(const char *xml, struct virt_xml_sizes *out,
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
