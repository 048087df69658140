#!/bin/sh
# kvm-probe.sh VMLINUZ INITRD: print "kvm" if the test guest (mk-guest.sh)
# really boots under KVM, else "qemu" (the libvirt domain type to use).
#
# A present, writable /dev/kvm is not enough: on some nested hosts libvirt
# even advertises <domain type='kvm'/> but the guest hangs after "Booting
# from ROM".  So boot the guest with -accel kvm and "kvmprobe" on its
# command line (its init prints "GUEST UP" and powers off at once) and look
# for that line, giving up after 15 s.
#
# That costs up to 15 s on a host where KVM hangs, so the answer is cached
# per boot of this host next to INITRD (kvm-probe.cache).  CARVE_VIRT_TYPE
# (kvm or qemu) overrides the probe.
set -u

if [ $# -ne 2 ]; then
	echo "usage: $0 VMLINUZ INITRD" >&2
	exit 2
fi
vmlinuz=$1
initrd=$2

case "${CARVE_VIRT_TYPE:-}" in
kvm|qemu)
	echo "$CARVE_VIRT_TYPE"
	exit 0
	;;
esac

if [ ! -c /dev/kvm ] || [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo qemu
	exit 0
fi

cache=$(dirname "$initrd")/kvm-probe.cache
boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
# -nt: not POSIX, but dash, bash and busybox sh all have it.
# shellcheck disable=SC3013
if [ -f "$cache" ] && [ "$cache" -nt "$initrd" ]; then
	read -r cached_boot cached_result <"$cache" || cached_boot=
	if [ "$cached_boot" = "$boot_id" ]; then
		case "$cached_result" in
		kvm|qemu)
			echo "$cached_result"
			exit 0
			;;
		esac
	fi
fi

result=qemu
# stdin from /dev/null: qemu's stdio serial would otherwise grab a terminal
# (and CI has none).  -no-reboot turns a guest panic into a qemu exit.
if timeout 15 qemu-system-x86_64 -accel kvm -m 256 -nodefaults \
    -kernel "$vmlinuz" -initrd "$initrd" \
    -append "console=ttyS0 kvmprobe panic=-1" \
    -nographic -serial stdio -monitor none -no-reboot </dev/null 2>/dev/null |
    grep -q "GUEST UP"; then
	result=kvm
fi
# Cache only when the directory is ours to write.
echo "$boot_id $result" >"$cache" 2>/dev/null || :
echo "$result"
