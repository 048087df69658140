/*
 * Fuzz target: arbitrary bytes through virt_xml_parse_metadata and
 * virt_xml_parse_caps. Beyond "no crash, no leak", a metadata record that is
 * accepted must hold only valid values and survive a round trip through
 * virt_xml_metadata unchanged.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/virt_xml.h"
#include "common/ids.h"
#include "common/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_record(const struct vm_info *vm)
{
	struct vm_spec spec;
	struct virt_xml_opts opts = { .domain_type = "kvm" };
	struct carve_error err = { 0 };
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

	memset(&spec, 0, sizeof(spec));
	memcpy(spec.vs_name, vm->vm_name, sizeof(spec.vs_name));
	spec.vs_vcpus = vm->vm_vcpus;
	spec.vs_memory_mib = vm->vm_memory_mib;
	spec.vs_disk_gib = vm->vm_disk_gib;
	opts.vm_id = vm->vm_id;
	opts.command_id = vm->vm_command_id;
	opts.created_at_ms = vm->vm_created_at_ms;
	md = virt_xml_metadata(&spec, &opts);
	if (md == NULL)
		abort();
	memset(&again, 0, sizeof(again));
	again.vm_state = vm->vm_state;
	if (virt_xml_parse_metadata(md, &again, &err) < 0 ||
	    strcmp(again.vm_id, vm->vm_id) != 0 ||
	    strcmp(again.vm_name, vm->vm_name) != 0 ||
	    again.vm_vcpus != vm->vm_vcpus ||
	    again.vm_memory_mib != vm->vm_memory_mib ||
	    again.vm_disk_gib != vm->vm_disk_gib ||
	    strcmp(again.vm_command_id, vm->vm_command_id) != 0 ||
	    again.vm_created_at_ms != vm->vm_created_at_ms ||
	    again.vm_state != vm->vm_state)
		abort();
	free(md);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct carve_error err = { 0 };
	struct vm_info vm;
	struct host_cpu cpu;
	char *s;

	/* Both parsers take a C string, as libvirt hands them over. */
	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';

	memset(&vm, 0, sizeof(vm));
	if (virt_xml_parse_metadata(s, &vm, &err) == 0)
		check_record(&vm);
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
