/*
 * Fuzz target: arbitrary bytes through virt_xml_parse_metadata(_rebuild)
 * and virt_xml_parse_caps. Beyond "no crash, no leak", a metadata record
 * that is accepted must hold only valid values (image, data disks and
 * rebuild bookkeeping included) and survive a round trip through
 * virt_xml_metadata_vm unchanged.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/virt_xml.h"
#include "common/ids.h"
#include "common/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
lower_hex64(const char *s)
{
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[64] == '\0';
}

static void
check_record(const struct vm_info *vm, const struct virt_xml_rebuild *rb)
{
	struct carve_error err = { 0 };
	struct virt_xml_rebuild rb2;
	struct vm_info again;
	char *md;

	if (!ids_uuid_valid(vm->vm_id) || !ids_uuid_valid(vm->vm_command_id) ||
	    ids_name_check(vm->vm_name, "name", &err) < 0 ||
	    vm->vm_vcpus < 1 || vm->vm_vcpus > VM_VCPUS_MAX ||
	    vm->vm_memory_mib < VM_MEMORY_MIB_MIN ||
	    vm->vm_memory_mib > VM_MEMORY_MIB_MAX ||
	    vm->vm_disk_gib > VM_DISK_GIB_MAX || vm->vm_created_at_ms < 0)
		abort();
	for (const char *p = vm->vm_id; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'F')
			abort();
	if (vm->vm_image_url[0] != '\0' && (!lower_hex64(vm->vm_image_sha256) ||
	    (vm->vm_image_format != VM_IMAGE_QCOW2 &&
	    vm->vm_image_format != VM_IMAGE_RAW)))
		abort();
	if (vm->vm_image_url[0] == '\0' && (vm->vm_image_sha256[0] != '\0' ||
	    vm->vm_image_format != VM_IMAGE_NONE))
		abort();
	if (vm->vm_ndata_disks > VM_DATA_DISKS_MAX)
		abort();
	for (unsigned i = 0; i < vm->vm_ndata_disks; i++)
		if (vm->vm_data_disks[i].dd_size_gib < 1 ||
		    vm->vm_data_disks[i].dd_size_gib > VM_DISK_GIB_MAX)
			abort();
	if ((rb->rb_rebuilding[0] != '\0' || rb->rb_rebuilt_by[0] != '\0') !=
	    (rb->rb_was_running != VIRT_XML_RUN_UNRECORDED))
		abort();

	md = virt_xml_metadata_vm(vm, rb, &err);
	if (md == NULL)
		abort();
	memset(&again, 0, sizeof(again));
	again.vm_state = vm->vm_state;
	if (virt_xml_parse_metadata_rebuild(md, &again, &rb2, &err) < 0 ||
	    memcmp(&again, vm, sizeof(again)) != 0 ||
	    memcmp(&rb2, rb, sizeof(rb2)) != 0)
		abort();
	free(md);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct carve_error err = { 0 };
	struct virt_xml_rebuild rb;
	struct vm_info vm;
	struct host_cpu cpu;
	char *s;

	/* Both parsers take a C string, as libvirt hands them over. */
	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';

	memset(&vm, 0, sizeof(vm));
	memset(&rb, 0, sizeof(rb));
	if (virt_xml_parse_metadata_rebuild(s, &vm, &rb, &err) == 0)
		check_record(&vm, &rb);
	else if (err.code != CARVE_EINVAL)
		abort();

	error_clear(&err);
	if (virt_xml_parse_caps(s, &cpu, &err) == 0) {
		if (cpu.nfeatures > VIRT_CPU_FEATURES_MAX)
			abort();
		for (unsigned i = 0; i < cpu.nfeatures; i++)
			if (cpu.features[i] == NULL || cpu.features[i][0] == '\0')
				abort();
		host_cpu_clear(&cpu);
	} else if (err.code != CARVE_EINVAL || cpu.nfeatures != 0) {
		abort();
	}

	free(s);
	return 0;
}
