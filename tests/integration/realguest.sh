#!/bin/sh
# A real guest through libvirtd and QEMU (TCG unless KVM really boots it):
# carvectl vm create -> virsh dominfo shows the size asked for, the guest
# prints its boot line on the serial log; graceful stop works and falls back
# to force after the timeout; libvirtd restarted under a running agent ->
# carved reconnects and its view stays right.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/libvirtd.sh"
command -v jq >/dev/null || tap_skip_all "jq not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "needs root (libvirtd, qemu:///system)"
command -v qemu-system-x86_64 >/dev/null || tap_skip_all "qemu-system-x86 not installed"

tmpdir_setup
guest=${CARVE_GUEST_DIR:-$top_builddir/tests/guest/out}
if [ ! -f "$guest/vmlinuz" ] || [ ! -f "$guest/initrd.gz" ]; then
	"$top_srcdir/tests/guest/mk-guest.sh" "$guest" >&2 || tap_bail "cannot build the test guest"
fi
libvirtd_ensure || tap_bail "libvirtd not available"
tap_at_exit libvirtd_stop_if_started

# qemu runs as libvirt-qemu: give it a world-searchable copy of the guest.
kdir=$(mktemp -d /var/tmp/carve-kernels.XXXXXX)
chmod 0755 "$kdir"
cp "$guest/vmlinuz" "$guest/initrd.gz" "$kdir/"
chmod 0644 "$kdir"/*
tap_at_exit "rm -rf '$kdir'"

# Probe once whether KVM really boots Linux here (it does not on every host).
vtype=${CARVE_VIRT_TYPE:-}
if [ -z "$vtype" ]; then
	vtype=$("$top_srcdir/tests/guest/kvm-probe.sh" "$kdir/vmlinuz" "$kdir/initrd.gz" 2>/dev/null || echo qemu)
fi
tap_diag "domain type: $vtype"

carved_setup real qemu:///system "[libvirt]\ndomain_type = $vtype\nkernel_dir = $kdir"
# carved_setup wrote [libvirt] already: fold the two sections' keys into one.
awk '/^\[libvirt\]/{ if (seen) next; seen=1 } { print }' "$CARVED_DIR/carved.conf" > "$CARVED_DIR/c.tmp" && mv "$CARVED_DIR/c.tmp" "$CARVED_DIR/carved.conf"
# carved defines its storage pool under this test's state dir: undefine it
# afterwards (only ours: a pool elsewhere is left alone).
drop_test_pool() {
	case "$(virsh -c qemu:///system pool-dumpxml "$CARVED_POOL" 2>/dev/null | sed -n 's:.*<path>\(.*\)</path>.*:\1:p')" in
	"$TEST_TMPDIR"/*)
		virsh -c qemu:///system pool-destroy "$CARVED_POOL" >/dev/null 2>&1
		virsh -c qemu:///system pool-undefine "$CARVED_POOL" >/dev/null 2>&1 ;;
	esac
}
tap_at_exit drop_test_pool
tap_at_exit carved_stop     # runs first: exit actions go newest first
carved_start || tap_bail "carved did not start"

cleanup_doms() {
	for d in carve-rg1 carve-rg2; do
		virsh -c qemu:///system destroy $d >/dev/null 2>&1
		virsh -c qemu:///system undefine $d >/dev/null 2>&1
	done
}
cleanup_doms
tap_at_exit cleanup_doms

console_of() { echo "/var/log/libvirt/qemu/carve-$1.console.log"; }
wait_console() { # FILE PATTERN SECONDS
	_i=0
	while [ $_i -lt $(($3 * 10)) ]; do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1; _i=$((_i + 1))
	done
	return 1
}

# -- create: the size asked for, and a guest that boots ----------------------
r=$(ctl_json vm create carve-rg1 --vcpus 2 --memory 192 --kernel vmlinuz --initrd initrd.gz --cmdline "console=ttyS0 panic=-1")
tap_is "$(printf '%s' "$r" | jq -r .status)" succeeded "vm create with direct kernel boot" || tap_diag "$r"
id1=$(printf '%s' "$r" | jq -r .vm_id)
info=$(virsh -c qemu:///system dominfo carve-rg1)
tap_like "$info" "*CPU(s):*2*" "virsh dominfo: 2 vCPUs"
# Defined with room to grow ([resize] max_memory_factor 2): 192 MiB held
# by the balloon below a 384 MiB maximum.
tap_like "$info" "*Max memory:*393216 KiB*" "virsh dominfo: a maximum of 2 x 192 MiB"
tap_like "$info" "*State:*running*" "virsh dominfo: running"
tap_is "$(virsh -c qemu:///system domuuid carve-rg1)" "$id1" "the domain UUID is the VM id"
log1=$(console_of "$id1")
tap_ok "the guest prints GUEST UP on its serial log" wait_console "$log1" "GUEST UP" 60
tap_ok "the guest is READY (acpid up)" wait_console "$log1" "READY" 60
used192() { virsh -c qemu:///system dominfo carve-rg1 | grep -q "^Used memory: *196608 KiB"; }
tap_ok "virsh dominfo: the balloon holds it at 192 MiB" wait_for "balloon" 60 used192

# -- graceful stop -------------------------------------------------------------
r=$(ctl_json vm stop carve-rg1 --timeout 60)
tap_is "$(printf '%s' "$r" | jq -r '"\(.status) \(.result.state) \(.result.forced)"')" "succeeded shutoff false" "graceful stop: the guest powered itself off"
tap_like "$(virsh -c qemu:///system domstate carve-rg1)" "shut off*" "libvirt agrees it is shut off"

# -- a guest that ignores ACPI: forced after the timeout -----------------------
r=$(ctl_json vm create carve-rg2 --vcpus 1 --memory 128 --kernel vmlinuz --initrd initrd.gz --cmdline "console=ttyS0 panic=-1 noacpid")
id2=$(printf '%s' "$r" | jq -r .vm_id)
tap_ok "second guest boots" wait_console "$(console_of "$id2")" "READY" 60
r=$(ctl_json vm stop carve-rg2 --timeout 3)
tap_is "$(printf '%s' "$r" | jq -r '"\(.status) \(.result.state) \(.result.forced)"')" "succeeded shutoff true" "stop falls back to force after 3 s"

# -- libvirtd restarted under a running agent ----------------------------------
tap_is "$(ctl_json vm start carve-rg1 | jq -r .result.state)" running "restart the first guest"
conns=$(ctl_json status | jq -r .libvirt.connections)
libvirtd_restart || tap_bail "cannot restart libvirtd"
_i=0
while [ $_i -lt 300 ]; do
	s=$(ctl_json status 2>/dev/null | jq -r '"\(.libvirt.connected) \(.libvirt.connections)"')
	[ "$s" = "true $((conns + 1))" ] && break
	sleep 0.1; _i=$((_i + 1))
done
tap_is "$s" "true $((conns + 1))" "carved reconnected to the new libvirtd"
sleep 0.5
tap_is "$(ctl_json vm list | jq -r '[.[] | "\(.name)=\(.state)"] | join(" ")')" \
    "carve-rg1=running carve-rg2=shutoff" "the view is still right after the reconnect"
tap_is "$(ctl_json vm stop carve-rg1 --force | jq -r .status)" succeeded "commands work after the reconnect"

# -- destroy leaves nothing in libvirt -----------------------------------------
ctl_json vm destroy carve-rg1 >/dev/null
ctl_json vm destroy carve-rg2 >/dev/null
tap_is "$(virsh -c qemu:///system list --all --name | grep -c '^carve-rg')" 0 "destroy removed both domains"
carved_stop
tap_is "$?" 0 "carved stops cleanly"
tap_done
