#!/bin/sh
# Images and disks through a real libvirtd (qemu:///system), no guest boot
# needed: a VM made from a file:// and an http:// qcow2 base gets a qcow2
# overlay volume "<vm_id>-root.qcow2" in the "carve" pool whose backing file
# is the cached image (which stays unchanged and is shared by the VMs made
# from it), and a seed volume; a wrong sha256, a base with a backing file or
# an external data file, and a too small disk are refused without leaving a
# partial file or a volume; a network failure is "unavailable" and not
# journaled, so the same command id succeeds once the server is up; destroy
# deletes every volume of the VM.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/libvirtd.sh"
command -v jq >/dev/null || tap_skip_all "jq not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "needs root (libvirtd, qemu:///system)"
command -v qemu-system-x86_64 >/dev/null || tap_skip_all "qemu-system-x86 not installed"
command -v qemu-img >/dev/null || tap_skip_all "qemu-utils not installed"
command -v qemu-io >/dev/null || tap_skip_all "qemu-io not installed"
command -v genisoimage >/dev/null || tap_skip_all "genisoimage not installed"
command -v python3 >/dev/null || tap_skip_all "python3 not installed (HTTP server)"

tmpdir_setup
libvirtd_ensure || tap_bail "libvirtd not available"
tap_at_exit libvirtd_stop_if_started
V="virsh -q -c qemu:///system"

# qemu runs as libvirt-qemu: it must reach the cached base through the
# state directory.
chmod 0711 "$TEST_TMPDIR"
carved_setup img qemu:///system "[libvirt]\ndomain_type = qemu"
awk '/^\[libvirt\]/{ if (seen) next; seen=1 } { print }' "$CARVED_DIR/carved.conf" > "$CARVED_DIR/c.tmp" && mv "$CARVED_DIR/c.tmp" "$CARVED_DIR/carved.conf"
chmod 0711 "$CARVED_DIR" "$CARVED_DIR/state"
cache=$CARVED_DIR/state/images
disks=$CARVED_DIR/state/disks

cleanup_pool() {
	for d in $($V list --all --name | grep '^carve-img'); do
		$V destroy "$d" >/dev/null 2>&1
		$V undefine "$d" >/dev/null 2>&1
	done
	for v in $($V vol-list "$CARVED_POOL" 2>/dev/null | awk '{print $1}'); do
		$V vol-delete --pool "$CARVED_POOL" "$v" >/dev/null 2>&1
	done
	$V pool-destroy "$CARVED_POOL" >/dev/null 2>&1
	$V pool-undefine "$CARVED_POOL" >/dev/null 2>&1
}
# What an interrupted earlier run left (its domains would clash by name).
cleanup_pool
tap_at_exit cleanup_pool
tap_at_exit carved_stop
carved_start || tap_bail "carved did not start"

tap_like "$($V pool-info "$CARVED_POOL")" "*State:*running*Autostart:*yes*" \
    "the carve pool is defined, running and autostarted at start-up"
tap_is "$($V pool-dumpxml "$CARVED_POOL" | sed -n 's:.*<path>\(.*\)</path>.*:\1:p')" "$disks" \
    "the pool lives in state_dir/disks"
tap_is "$(stat -c %a "$disks")" 751 "the disks directory is 0751"
cap=$(ctl_json capacity | jq -r .DISK_GIB.total)
pool_gib=$($V pool-info "$CARVED_POOL" --bytes | awk '/Capacity/ {print int($2 / 1073741824)}')
tap_is "$cap" "$pool_gib" "DISK_GIB total is the pool's capacity"

# -- a base image with a marker -------------------------------------------
w=$TEST_TMPDIR/w
mkdir -p "$w"
qemu-img create -q -f qcow2 "$w/base.qcow2" 64M
qemu-io -c "write -P 0x41 0 4k" "$w/base.qcow2" >/dev/null
S=$(sha256sum "$w/base.qcow2" | cut -d' ' -f1)

vol_of() { # VM_ID -> its volumes in the pool, one a line
	$V vol-list "$CARVED_POOL" | awk -v p="$1-" 'index($1, p) == 1 {print $1}'
}
partials() { ls -A "$cache/.partial" | wc -l; }

r=$(ctl_json vm create carve-img1 --vcpus 1 --memory 128 \
    --image-url "file://$w/base.qcow2" --image-sha256 "$S" --image-format qcow2 \
    --ssh-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItest test@carve")
tap_is "$(printf '%s' "$r" | jq -r '"\(.status) \(.result.state) \(.result.disk_gib)"')" \
    "succeeded running 1" "create from a file:// qcow2 (disk_gib 0 -> the image's size, rounded up)" || tap_diag "$r"
id1=$(printf '%s' "$r" | jq -r .vm_id)
tap_is "$(vol_of "$id1" | sort | tr '\n' ' ')" "$id1-root.qcow2 $id1-seed.iso " \
    "virsh vol-list "$CARVED_POOL": the VM's root and seed volumes"
root1=$($V vol-path --pool "$CARVED_POOL" "$id1-root.qcow2")
info=$(qemu-img info -U --output=json "$root1")
tap_is "$(printf '%s' "$info" | jq -r '"\(.format) \(.["backing-filename"]) \(.["backing-filename-format"])"')" \
    "qcow2 $cache/$S.qcow2 qcow2" "the root disk is a qcow2 overlay on the cached image"
tap_is "$(printf '%s' "$info" | jq -r '.["virtual-size"]')" 1073741824 "the overlay is 1 GiB"
tap_ok "the marker written in the base reads back through the overlay" \
    qemu-io -r -U -f qcow2 -c "read -P 0x41 0 4k" "$root1"
tap_is "$(sha256sum "$cache/$S.qcow2" | cut -d' ' -f1)" "$S" "the cached base is unchanged (sha256)"
tap_is "$(stat -c %a "$cache/$S.qcow2")" 644 "the cached base is 0644"
dx=$($V dumpxml carve-img1)
tap_like "$dx" "*<source file='$root1'*<target dev='vda' bus='virtio'/>*" "the domain's vda is the root volume"
tap_like "$dx" "*device='cdrom'*$id1-seed.iso*<readonly/>*" "the seed is a read-only cdrom"
seed1=$($V vol-path --pool "$CARVED_POOL" "$id1-seed.iso")
if command -v isoinfo >/dev/null; then
	tap_like "$(isoinfo -d -i "$seed1")" "*Volume id: cidata*" "the seed volume holds the cidata ISO (uploaded through libvirt)"
else
	tap_skip "isoinfo not installed"
fi

r=$(ctl_json vm create carve-img2 --vcpus 1 --memory 128 --disk-gib 2 \
    --image-url "file://$w/base.qcow2" --image-sha256 "$S" --image-format qcow2)
tap_is "$(printf '%s' "$r" | jq -r .status)" succeeded "a second VM on the same image" || tap_diag "$r"
id2=$(printf '%s' "$r" | jq -r .vm_id)
tap_is "$(ls "$cache" | wc -l)" 1 "both VMs share one cached copy"
tap_is "$(qemu-img info -U --output=json "$($V vol-path --pool "$CARVED_POOL" "$id2-root.qcow2")" | jq -r '.["backing-filename"]')" \
    "$cache/$S.qcow2" "the second overlay has the same backing file"

# -- refusals leave nothing behind ---------------------------------------
refused() { # NAME EXPECTED_CODE MESSAGE_PATTERN DESCRIPTION ARGS...
	_n=$1 _c=$2 _m=$3 _d=$4
	shift 4
	_r=$(ctl_json vm create "$_n" --vcpus 1 --memory 128 "$@")
	_id=$(printf '%s' "$_r" | jq -r .vm_id)
	tap_like "$(printf '%s' "$_r" | jq -r '"\(.status) \(.error.code) \(.error.message)"')" \
	    "failed $_c *$_m*" "$_d" || tap_diag "$_r"
	tap_is "$(partials) $(vol_of "$_id" | wc -l)" "0 0" "$_d: no partial file, no volume"
	tap_is "$($V list --all --name | grep -c "^$_n\$")" 0 "$_d: no domain"
}
Z=0000000000000000000000000000000000000000000000000000000000000000
refused carve-img-bad invalid_argument "sha256 mismatch: expected $Z got $S" "a wrong sha256" \
    --image-url "file://$w/base.qcow2" --image-sha256 "$Z" --image-format qcow2
tap_is "$(ls "$cache" | wc -l)" 1 "the wrong sha256 left no file in the cache"

qemu-img create -q -f qcow2 -b "$w/base.qcow2" -F qcow2 "$w/child.qcow2"
C=$(sha256sum "$w/child.qcow2" | cut -d' ' -f1)
refused carve-img-bf invalid_argument "backing file" "an image with a backing file" \
    --image-url "file://$w/child.qcow2" --image-sha256 "$C" --image-format qcow2
tap_ok "the image with a backing file is not cached" test ! -e "$cache/$C.qcow2"

qemu-img create -q -f qcow2 -o data_file="$w/ext.raw" "$w/df.qcow2" 64M
D=$(sha256sum "$w/df.qcow2" | cut -d' ' -f1)
refused carve-img-df invalid_argument "data file" "an image with an external data file" \
    --image-url "file://$w/df.qcow2" --image-sha256 "$D" --image-format qcow2

qemu-img create -q -f qcow2 "$w/big.qcow2" 3G
B=$(sha256sum "$w/big.qcow2" | cut -d' ' -f1)
refused carve-img-small invalid_argument "disk_gib 2 is smaller than the image's virtual size" \
    "disk_gib below the image's virtual size" --disk-gib 2 \
    --image-url "file://$w/big.qcow2" --image-sha256 "$B" --image-format qcow2
# (a sha256 not cached yet: a cached one is used whatever the URL says)
refused carve-img-nofile invalid_argument "No such file" "a file:// image that does not exist" \
    --image-url "file://$w/nope.qcow2" --image-sha256 "$C" --image-format qcow2

# -- http: streamed download, 404, a server that is not there -------------
port=$(free_port)
mkdir -p "$w/www"
qemu-img create -q -f raw "$w/www/base.raw" 8M
qemu-io -f raw -c "write -P 0x42 0 4k" "$w/www/base.raw" >/dev/null
R=$(sha256sum "$w/www/base.raw" | cut -d' ' -f1)
cid=$(cat /proc/sys/kernel/random/uuid)
r=$(ctl_json vm create carve-img3 --vcpus 1 --memory 128 --command-id "$cid" \
    --image-url "http://127.0.0.1:$port/base.raw" --image-sha256 "$R" --image-format raw)
tap_is "$(printf '%s' "$r" | jq -r '"\(.status) \(.error.code)"')" "failed unavailable" \
    "no HTTP server: unavailable" || tap_diag "$r"
tap_is "$(partials)" 0 "the failed download left no partial file"
(cd "$w/www" && exec python3 -m http.server --bind 127.0.0.1 "$port") >"$w/http.log" 2>&1 &
hpid=$!
tap_at_exit "kill $hpid 2>/dev/null"
_i=0
until curl -sf -o /dev/null "http://127.0.0.1:$port/" || [ $_i -ge 50 ]; do sleep 0.1; _i=$((_i + 1)); done
r=$(ctl_json vm create carve-img3 --vcpus 1 --memory 128 --command-id "$cid" \
    --image-url "http://127.0.0.1:$port/base.raw" --image-sha256 "$R" --image-format raw)
tap_is "$(printf '%s' "$r" | jq -r .status)" succeeded \
    "the same command id, once the server is up: unavailable was not journaled, so it runs" || tap_diag "$r"
id3=$(printf '%s' "$r" | jq -r .vm_id)
tap_is "$(sha256sum "$cache/$R.raw" | cut -d' ' -f1)" "$R" "the downloaded image is cached under its sha256"
root3=$($V vol-path --pool "$CARVED_POOL" "$id3-root.qcow2")
tap_is "$(qemu-img info -U --output=json "$root3" | jq -r '"\(.["backing-filename"]) \(.["backing-filename-format"])"')" \
    "$cache/$R.raw raw" "the overlay on a raw base says so"
tap_ok "the raw base's marker reads back through the overlay" \
    qemu-io -r -U -f qcow2 -c "read -P 0x42 0 4k" "$root3"
refused carve-img-404 invalid_argument "image not found" "HTTP 404" \
    --image-url "http://127.0.0.1:$port/missing.raw" --image-sha256 "$Z" --image-format raw

# -- destroy ---------------------------------------------------------------
for n in carve-img1 carve-img2 carve-img3; do
	r=$(ctl_json vm destroy "$n")
	tap_is "$(printf '%s' "$r" | jq -r '"\(.status) \(.result.volumes_deleted)"')" "succeeded 2" "destroy $n deletes its 2 volumes" || tap_diag "$r"
done
tap_is "$(vol_of "$id1" | wc -l) $(vol_of "$id2" | wc -l)" "0 0" "virsh vol-list "$CARVED_POOL": no volume of the destroyed VMs"
tap_is "$(ls -A "$disks" | grep -c -e "$id1" -e "$id2" -e "$id3")" 0 "the disks directory has no file of them"
# base.qcow2, base.raw, and big.qcow2 (a fine image; only the disk was small)
tap_is "$(ls "$cache" | wc -l)" 3 "the cached images stay (no GC yet)"
carved_stop
tap_is "$?" 0 "carved stops cleanly"
tap_ok "no sanitizer report in the log" sh -c "! grep -q -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' -e 'runtime error' '$CARVED_DIR/carved.log'"
tap_done
