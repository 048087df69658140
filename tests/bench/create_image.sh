#!/bin/sh
# Issue #4's measurement, on the real libvirtd (qemu:///system) with the TCG
# test guest booted from a base image (tests/guest/mk-image.sh), in one run:
#
#  1. Time to create a VM from an already cached image, command received ->
#     domain running: through carved (the result's finished_at - accepted_at,
#     and the wall time of `carvectl vm create`) vs. a bare `virsh create` of
#     the same domain XML (carved's, dumped, renamed, without its uuid and
#     carve metadata, on a qcow2 overlay made with qemu-img and a copy of the
#     seed), N runs each, interleaved; medians and ratios.
#  2. Disk space of NDISK VMs on one base: `du` of the pool directory and
#     of the image cache, vs. NDISK full copies of the base.
#
#   tests/bench/create_image.sh [BUILDDIR] [N] [NDISK]     (root; defaults . 5 10)
#
# Use a build without sanitizers for meaningful numbers. Domains are named
# carve-gcb-*; the carved runs on a pool of its own.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$src}" && pwd)
n=${2:-5}
ndisk=${3:-10}
[ "$(id -u)" = 0 ] || { echo "create_image.sh: needs root (qemu:///system)" >&2; exit 2; }
for t in jq qemu-img virsh genisoimage syslinux; do
	command -v "$t" >/dev/null || { echo "create_image.sh: $t not found" >&2; exit 2; }
done
make -C "$build" carved carvectl >/dev/null
. "$src/tests/lib/libvirtd.sh"
libvirtd_ensure

V="virsh -q -c qemu:///system"
tmp=$(mktemp -d /tmp/carve-bench.XXXXXX)
chmod 0711 "$tmp"
pool=carve-gcb-$$
pid=
cleanup() {
	for d in $($V list --all --name | grep '^carve-gcb-'); do
		$V destroy "$d" >/dev/null 2>&1 || :
		$V undefine "$d" >/dev/null 2>&1 || :
	done
	[ -n "$pid" ] && { kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || :; }
	for v in $($V vol-list "$pool" 2>/dev/null | awk '{print $1}'); do
		$V vol-delete --pool "$pool" "$v" >/dev/null 2>&1 || :
	done
	$V pool-destroy "$pool" >/dev/null 2>&1 || :
	$V pool-undefine "$pool" >/dev/null 2>&1 || :
	rm -f /var/log/libvirt/qemu/carve-gcb-*.console.log
	for id in $(cat "$tmp/ids" 2>/dev/null); do
		rm -f "/var/log/libvirt/qemu/carve-$id.console.log"
	done
	rm -rf "$tmp"
	libvirtd_stop_if_started
}
trap cleanup EXIT INT TERM

# The base image: the TCG guest on a bootable FAT volume.
img=$tmp/img
mkdir -p "$img"
guest=${CARVE_GUEST_DIR:-$build/tests/guest/out}
[ -f "$guest/vmlinuz" ] && cp -p "$guest/vmlinuz" "$guest/initrd.gz" "$img/"
sha=$("$src/tests/guest/mk-image.sh" "$img" carve-bench 2>/dev/null | tail -1)
[ -f "$img/base.qcow2" ] || { echo "create_image.sh: cannot build the base image" >&2; exit 1; }

mkdir -p "$tmp/state"
chmod 0711 "$tmp/state"
cat > "$tmp/carved.conf" <<EOC
[agent]
node_name = bench
state_dir = $tmp/state
socket = $tmp/carved.sock
log_level = warn
max_concurrent_ops = 4
[libvirt]
uri = qemu:///system
domain_type = qemu
storage_pool = $pool
[capacity]
reserved_memory_mib = 0
cpu_allocation_ratio = 100
ram_allocation_ratio = 10
[images]
gc_interval_s = 0
EOC
"$build/carved" -f -c "$tmp/carved.conf" 2>"$tmp/carved.log" &
pid=$!
ctl() { "$build/carvectl" -s "$tmp/carved.sock" "$@"; }
i=0
until ctl --json capacity >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 300 ] || { echo "create_image.sh: carved did not start" >&2; cat "$tmp/carved.log" >&2; exit 1; }
	sleep 0.1
done

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
create() { # NAME -> result JSON
	_r=$(ctl --json vm create "$1" --vcpus 1 --memory 128 --disk-gib 1 \
	    --image-url "file://$img/base.qcow2" --image-sha256 "$sha" \
	    --image-format qcow2 || :)
	printf '%s\n' "$_r" | jq -r '.vm_id // empty' >> "$tmp/ids"
	printf '%s\n' "$_r"
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Warm-up: the image goes into the cache; its XML is the template.
r=$(create carve-gcb-w)
[ "$(printf '%s' "$r" | jq -r .status)" = succeeded ] || { echo "warm-up create failed: $r" >&2; exit 1; }
wid=$(printf '%s' "$r" | jq -r .vm_id)
cached=$tmp/state/images/$sha.qcow2
seed=$($V vol-path --pool "$pool" "$wid-seed.iso")
cp "$seed" "$tmp/seed.iso"
chmod 0644 "$tmp/seed.iso"
root=$($V vol-path --pool "$pool" "$wid-root.qcow2")
$V dumpxml --inactive carve-gcb-w > "$tmp/template.xml"
ctl --json vm destroy carve-gcb-w >/dev/null

: > "$tmp/carved_internal"; : > "$tmp/carved_wall"; : > "$tmp/virsh_wall"; : > "$tmp/bare_wall"
for i in $(seq 1 "$n"); do
	# carved: socket -> engine -> journal -> cached image -> overlay
	# volume + seed (genisoimage, upload) -> define + start.
	t0=$(now_ms)
	r=$(create "carve-gcb-c$i")
	t1=$(now_ms)
	[ "$(printf '%s' "$r" | jq -r .status)" = succeeded ] || { echo "create failed: $r" >&2; exit 1; }
	printf '%s' "$r" | jq '.finished_at - .accepted_at' >> "$tmp/carved_internal"
	echo $((t1 - t0)) >> "$tmp/carved_wall"

	# Bare: the same XML on an overlay made with qemu-img.
	ov=$tmp/bare$i.qcow2
	sed -e "s|<name>carve-gcb-w</name>|<name>carve-gcb-v$i</name>|" \
	    -e '/<uuid>/d' -e '/<metadata>/,/<\/metadata>/d' \
	    -e "s|$root|$ov|" -e "s|$seed|$tmp/seed.iso|" \
	    -e "s|carve-$wid.console.log|carve-gcb-v$i.console.log|" \
	    "$tmp/template.xml" > "$tmp/v$i.xml"
	t0=$(now_ms)
	qemu-img create -q -f qcow2 -b "$cached" -F qcow2 "$ov" 1G
	t1=$(now_ms)
	$V create "$tmp/v$i.xml" >/dev/null
	t2=$(now_ms)
	echo $((t2 - t1)) >> "$tmp/virsh_wall"
	echo $((t2 - t0)) >> "$tmp/bare_wall"
	[ "$($V domstate "carve-gcb-v$i")" = running ] || { echo "bare domain not running" >&2; exit 1; }

	ctl --json vm destroy "carve-gcb-c$i" >/dev/null
	$V destroy "carve-gcb-v$i" >/dev/null
done
ci=$(median < "$tmp/carved_internal"); cw=$(median < "$tmp/carved_wall")
vw=$(median < "$tmp/virsh_wall"); bw=$(median < "$tmp/bare_wall")

# Disk: NDISK VMs on the one cached base.
ids=
for i in $(seq 1 "$ndisk"); do
	r=$(create "carve-gcb-d$i")
	[ "$(printf '%s' "$r" | jq -r .status)" = succeeded ] || { echo "create failed: $r" >&2; exit 1; }
	ids="$ids $(printf '%s' "$r" | jq -r .vm_id)"
done
disk_now() { # -> "pool_bytes overlay_bytes cache_bytes"
	p=$(du -sB1 "$tmp/state/disks" | cut -f1)
	o=0
	for id in $ids; do
		o=$((o + $(du -B1 "$tmp/state/disks/$id-root.qcow2" | cut -f1)))
	done
	c=$(du -sB1 "$tmp/state/images" | cut -f1)
	echo "$p $o $c"
}
set -- $(disk_now)
pool0=$1 ov0=$2 cache0=$3
# Let the guests boot (and write what they write at boot).
sleep "${CARVE_BENCH_SETTLE_S:-30}"
set -- $(disk_now)
pool1=$1 ov1=$2 cache1=$3
base=$(du -B1 "$cached" | cut -f1)
vsize=$(qemu-img info --output=json "$cached" | jq '.["virtual-size"]')
booted=0
for id in $ids; do
	if grep -q "MARKER carve-bench" "/var/log/libvirt/qemu/carve-$id.console.log" 2>/dev/null; then
		booted=$((booted + 1))
	fi
done
for id in $ids; do ctl --json vm destroy "$id" >/dev/null; done

echo "create from a cached image, median of $n (ms):"
printf '  %-52s %8s\n' "carved: command received -> domain running" "$ci"
printf '  %-52s %8s\n' "carved: carvectl vm create, wall" "$cw"
printf '  %-52s %8s\n' "bare: virsh create of the same XML, wall" "$vw"
printf '  %-52s %8s\n' "bare: qemu-img create overlay + virsh create, wall" "$bw"
awk -v a="$ci" -v b="$vw" -v c="$cw" -v d="$bw" 'BEGIN {
	printf "  %-52s %8.2f\n", "ratio carved (received->running) / virsh create", a / b
	printf "  %-52s %8.2f\n", "ratio carvectl wall / (qemu-img + virsh create)", c / d
}'
echo "disk space of $ndisk VMs on one base (bytes; $booted of $ndisk guests booted):"
printf '  %-52s %12s\n' "base image (cache file, allocated)" "$base"
printf '  %-52s %12s\n' "base image virtual size" "$vsize"
printf '  %-52s %12s\n' "pool dir (overlays + seeds), just created" "$pool0"
printf '  %-52s %12s\n' "  of which overlays" "$ov0"
printf '  %-52s %12s\n' "pool dir after ${CARVE_BENCH_SETTLE_S:-30} s running" "$pool1"
printf '  %-52s %12s\n' "  of which overlays" "$ov1"
printf '  %-52s %12s\n' "image cache" "$cache1"
printf '  %-52s %12s\n' "$ndisk full copies of the base ($ndisk x base)" "$((ndisk * base))"
awk -v p="$pool1" -v c="$cache1" -v f="$((ndisk * base))" 'BEGIN {
	printf "  %-52s %12.3f\n", "ratio (pool + cache) / full copies", (p + c) / f
}'
