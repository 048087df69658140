#!/bin/sh
# "Rebuild server" end to end with a real TCG guest: a VM made from a base
# image (tests/guest/mk-image.sh) with one data disk writes a word to its
# root disk and one to its data disk (asked by its user-data); vm.rebuild
# gives it a fresh root disk (the word is gone) while the data disk keeps
# its word and the VM keeps its id, name and size; a rebuild onto a second
# image boots that image's marker; a rebuild from an image larger than the
# root disk is refused with the VM untouched; destroy leaves no volume.
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
guest=${CARVE_GUEST_DIR:-$top_builddir/tests/guest/out}
# mk-image.sh OUTDIR MARKER: one bootable base per directory.
mkimg() {
	mkdir -p "$1"
	if [ -f "$guest/vmlinuz" ]; then
		# -p: mk-guest.sh rebuilds what is older than itself
		cp -p "$guest/vmlinuz" "$guest/initrd.gz" "$1/" 2>/dev/null
	fi
	"$top_srcdir/tests/guest/mk-image.sh" "$1" "$2" 2>/dev/null | tail -1
}
img1=$TEST_TMPDIR/img1 img2=$TEST_TMPDIR/img2
sha1=$(mkimg "$img1" carve-rb-one)
sha2=$(mkimg "$img2" carve-rb-two)
[ -f "$img1/base.qcow2" ] && [ -f "$img2/base.qcow2" ] || tap_bail "cannot build the base images"
# A valid image whose virtual size (2 GiB) is above the VM's 1 GiB root disk.
qemu-img create -q -f qcow2 "$TEST_TMPDIR/big.qcow2" 2G
chmod 0644 "$TEST_TMPDIR/big.qcow2"
shabig=$(sha256sum "$TEST_TMPDIR/big.qcow2" | cut -d' ' -f1)
libvirtd_ensure || tap_bail "libvirtd not available"
tap_at_exit libvirtd_stop_if_started
V="virsh -q -c qemu:///system"
vtype=${CARVE_VIRT_TYPE:-qemu}

carved_setup rbguest qemu:///system "[libvirt]\ndomain_type = $vtype"
awk '/^\[libvirt\]/{ if (seen) next; seen=1 } { print }' "$CARVED_DIR/carved.conf" > "$CARVED_DIR/c.tmp" && mv "$CARVED_DIR/c.tmp" "$CARVED_DIR/carved.conf"
chmod 0711 "$CARVED_DIR" "$CARVED_DIR/state"
drop_test_pool() {
	for d in $($V list --all --name | grep '^carve-rb'); do
		# Only ours: the domains whose disks are in this test's pool.
		$V domblklist "$d" 2>/dev/null | grep -q "$TEST_TMPDIR/" || continue
		$V destroy "$d" >/dev/null 2>&1; $V undefine "$d" >/dev/null 2>&1
	done
	case "$($V pool-dumpxml "$CARVED_POOL" 2>/dev/null | sed -n 's:.*<path>\(.*\)</path>.*:\1:p')" in
	"$TEST_TMPDIR"/*) $V pool-destroy "$CARVED_POOL" >/dev/null 2>&1; $V pool-undefine "$CARVED_POOL" >/dev/null 2>&1 ;;
	esac
}
tap_at_exit drop_test_pool
tap_at_exit carved_stop
carved_start || tap_bail "carved did not start"

console() { echo "/var/log/libvirt/qemu/carve-$1.console.log"; }
wait_console() { # VMID PATTERN SECONDS
	wait_for "$2" "$3" grep -q "$2" "$(console "$1")"
}
show_console() {
	tap_diag "console:"
	grep -av '^\[' "$(console "$1")" | head -30 | sed 's/^/#   /'
}
# The guest's lines, without the kernel's.
lines() { grep -a -e '^MARKER' -e '^WRITES' -e '^DATA' -e '^WROTE' "$(console "$1")" | tr -d '\r'; }
root_vol() { echo "$CARVED_DIR/state/disks/$1-root.qcow2"; }

printf '#cloud-config\n#writemark: w1\n#datamark: d1\n' > "$TEST_TMPDIR/user-data"
r=$(ctl_json vm create carve-rb1 --vcpus 1 --memory 192 --disk-gib 1 --data-disk 1 \
    --image-url "file://$img1/base.qcow2" --image-sha256 "$sha1" --image-format qcow2 \
    --user-data-file "$TEST_TMPDIR/user-data")
tap_is "$(printf '%s' "$r" | jq -r .status)" succeeded "create from a base image with a data disk" || tap_diag "$r"
id=$(printf '%s' "$r" | jq -r .vm_id)
tap_ok "the guest boots its base's marker" wait_console "$id" "MARKER carve-rb-one" 120 || show_console "$id"
tap_ok "it finds its blank data disk by its serial" wait_console "$id" "^DATA" 30
tap_ok "it writes to its root disk" wait_console "$id" "WROTE w1" 60
tap_ok "and to its data disk" wait_console "$id" "DATA-WROTE d1" 60 || show_console "$id"
before=$(ctl_json vm show carve-rb1 | jq -c '{id, name, vcpus, memory_mib, disk_gib, data_disks}')

# -- rebuild from the same image ---------------------------------------------
: > "$(console "$id")"
r=$(ctl_json vm rebuild carve-rb1)
tap_is "$(printf '%s' "$r" | jq -r '"\(.status) \(.vm_id) \(.result.state)"')" "succeeded $id running" "rebuild: same VM, running again" || tap_diag "$r"
tap_ok "the rebuilt VM boots" wait_console "$id" "MARKER carve-rb-one" 120 || show_console "$id"
wait_console "$id" "READY" 30
tap_is "$(lines "$id" | grep -c '^WRITES')" 0 "its root disk is fresh: no earlier write" || show_console "$id"
tap_is "$(lines "$id" | grep '^DATA ')" "DATA d1" "its data disk kept its word"
tap_is "$(ctl_json vm show carve-rb1 | jq -c '{id, name, vcpus, memory_mib, disk_gib, data_disks}')" "$before" "id, name, size and data disks unchanged"
tap_ok "the guest writes again (its seed is kept too)" wait_console "$id" "DATA-WROTE d1" 60

# -- rebuild onto another image ------------------------------------------------
: > "$(console "$id")"
r=$(ctl_json vm rebuild carve-rb1 --image-url "file://$img2/base.qcow2" --image-sha256 "$sha2" --image-format qcow2)
tap_is "$(printf '%s' "$r" | jq -r '"\(.status) \(.result.image.sha256)"')" "succeeded $sha2" "rebuild onto a second image" || tap_diag "$r"
tap_ok "the guest boots the second image's marker" wait_console "$id" "MARKER carve-rb-two" 120 || show_console "$id"
wait_console "$id" "READY" 30
tap_is "$(lines "$id" | grep '^DATA ')" "DATA d1 d1" "the data disk has both boots' words"
tap_like "$(qemu-img info -U --output=json "$(root_vol "$id")" | jq -r '.["backing-filename"]')" "*/$sha2.qcow2" "the root overlay is on the second base"
tap_is "$(sha256sum "$CARVED_DIR/state/images/$sha1.qcow2" | cut -d' ' -f1)" "$sha1" "the first base is unchanged"
wait_console "$id" "DATA-WROTE d1" 60

# -- an image larger than the root disk ----------------------------------------
ino=$(stat -c %i "$(root_vol "$id")")
r=$(ctl_json vm rebuild carve-rb1 --image-url "file://$TEST_TMPDIR/big.qcow2" --image-sha256 "$shabig" --image-format qcow2)
tap_is "$(printf '%s' "$r" | jq -r .error.code)" invalid_argument "an image larger than the root disk is refused" || tap_diag "$r"
tap_like "$(printf '%s' "$r" | jq -r .error.message)" "*does not fit the root disk*" "the message says why"
tap_is "$($V domstate "carve-rb1")" running "the VM still runs"
tap_is "$(stat -c %i "$(root_vol "$id")")" "$ino" "on the same root disk"
tap_is "$(ctl_json vm show carve-rb1 | jq -r .image.sha256)" "$sha2" "and the same image"

# -- destroy -----------------------------------------------------------------------
tap_is "$(ctl_json vm destroy carve-rb1 | jq -r .status)" succeeded "destroy"
tap_is "$(ls "$CARVED_DIR/state/disks" | grep -c "$id")" 0 "no disk, data disk or seed file left"
tap_is "$($V vol-list "$CARVED_POOL" | grep -c "$id")" 0 "and no volume"
tap_done
