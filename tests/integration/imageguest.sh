#!/bin/sh
# "Create server" end to end with a real guest: a bootable qcow2 base image
# (made by tests/guest/mk-image.sh, holding a marker), a VM created from it
# through carved with an SSH key and user-data: the guest boots from its
# overlay, prints the base's marker, finds its cloud-init seed (instance-id
# = VM id), writes to its disk; the write survives a restart of that VM, a
# second VM on the same base does not see it, the cached base is unchanged
# and shared, and destroy leaves no disk behind.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/libvirtd.sh"
command -v jq >/dev/null || tap_skip_all "jq not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "needs root (libvirtd, qemu:///system)"
command -v qemu-system-x86_64 >/dev/null || tap_skip_all "qemu-system-x86 not installed"
command -v syslinux >/dev/null || tap_skip_all "syslinux not installed"
command -v genisoimage >/dev/null || tap_skip_all "genisoimage not installed"

tmpdir_setup
chmod 0711 "$TEST_TMPDIR"
img=$TEST_TMPDIR/img
mkdir -p "$img"
guest=${CARVE_GUEST_DIR:-$top_builddir/tests/guest/out}
if [ -f "$guest/vmlinuz" ]; then
	# -p: mk-guest.sh rebuilds what is older than itself
	cp -p "$guest/vmlinuz" "$guest/initrd.gz" "$img/" 2>/dev/null
fi
sha=$("$top_srcdir/tests/guest/mk-image.sh" "$img" carve-marker-42 2>/dev/null | tail -1)
[ -f "$img/base.qcow2" ] || tap_bail "cannot build the base image"
libvirtd_ensure || tap_bail "libvirtd not available"
tap_at_exit libvirtd_stop_if_started
V="virsh -q -c qemu:///system"
vtype=${CARVE_VIRT_TYPE:-qemu}

carved_setup imgguest qemu:///system "[libvirt]\ndomain_type = $vtype"
awk '/^\[libvirt\]/{ if (seen) next; seen=1 } { print }' "$CARVED_DIR/carved.conf" > "$CARVED_DIR/c.tmp" && mv "$CARVED_DIR/c.tmp" "$CARVED_DIR/carved.conf"
chmod 0711 "$CARVED_DIR" "$CARVED_DIR/state"
drop_test_pool() {
	for d in $($V list --all --name | grep '^carve-ig'); do
		$V destroy "$d" >/dev/null 2>&1; $V undefine "$d" >/dev/null 2>&1
	done
	case "$($V pool-dumpxml "$CARVED_POOL" 2>/dev/null | sed -n 's:.*<path>\(.*\)</path>.*:\1:p')" in
	"$TEST_TMPDIR"/*) $V pool-destroy "$CARVED_POOL" >/dev/null 2>&1; $V pool-undefine "$CARVED_POOL" >/dev/null 2>&1 ;;
	esac
}
drop_test_pool
tap_at_exit drop_test_pool
tap_at_exit carved_stop
carved_start || tap_bail "carved did not start"

console() { echo "/var/log/libvirt/qemu/carve-$1.console.log"; }
wait_console() { # VMID PATTERN SECONDS
	wait_for "$2" "$3" grep -q "$2" "$(console "$1")"
}

printf '#cloud-config\n#writemark: w1\n' > "$TEST_TMPDIR/user-data"
r=$(ctl_json vm create carve-ig1 --vcpus 1 --memory 192 --disk-gib 1 \
    --image-url "file://$img/base.qcow2" --image-sha256 "$sha" --image-format qcow2 \
    --ssh-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIcarvetest test@carve" \
    --user-data-file "$TEST_TMPDIR/user-data")
tap_is "$(printf '%s' "$r" | jq -r .status)" succeeded "create from a base image" || tap_diag "$r"
id1=$(printf '%s' "$r" | jq -r .vm_id)
tap_ok "the guest boots from its overlay and reads the base's marker" wait_console "$id1" "MARKER carve-marker-42" 90 ||
    { tap_diag "console:"; grep -av '^\[' "$(console "$id1")" | head -20 | sed 's/^/#   /'; }
tap_ok "the guest finds its cloud-init seed (instance-id = VM id)" wait_console "$id1" "CIDATA \"*$id1" 60
tap_ok "the guest writes to its disk (asked by its user-data)" wait_console "$id1" "WROTE w1" 60
tap_is "$(sha256sum "$CARVED_DIR/state/images/$sha.qcow2" | cut -d' ' -f1)" "$sha" "the cached base is unchanged"

tap_is "$(ctl_json vm stop carve-ig1 --force | jq -r .status)" succeeded "stop the first VM"
: > "$(console "$id1")" 2>/dev/null
tap_is "$(ctl_json vm start carve-ig1 | jq -r .status)" succeeded "start it again"
tap_ok "its write survived in its overlay" wait_console "$id1" "WRITES.*w1" 90

r=$(ctl_json vm create carve-ig2 --vcpus 1 --memory 192 --disk-gib 1 \
    --image-url "file://$img/base.qcow2" --image-sha256 "$sha" --image-format qcow2)
id2=$(printf '%s' "$r" | jq -r .vm_id)
tap_ok "a second VM on the same base boots" wait_console "$id2" "MARKER carve-marker-42" 90
wait_console "$id2" "READY" 30
tap_is "$(grep -c 'WRITES.*w1' "$(console "$id2")" | tr -d ' ')" 0 "and does not see the first VM's write"
tap_is "$(ls "$CARVED_DIR/state/images" | grep -c '\.qcow2$')" 1 "both share one cached copy"

ctl_json vm destroy carve-ig1 >/dev/null
ctl_json vm destroy carve-ig2 >/dev/null
tap_is "$(ls "$CARVED_DIR/state/disks" | grep -c -e "$id1" -e "$id2")" 0 "destroy left no disk or seed file"
tap_is "$($V vol-list "$CARVED_POOL" | grep -c -e "$id1" -e "$id2")" 0 "and no volume"
tap_done
