#!/bin/sh
# What carved adds to a snapshot, measured in one run on qemu:///system:
# snapshot create and revert of a 128 MiB TCG guest through carved
# (carvectl -> control socket -> engine -> journal -> virt_snap -> libvirt)
# vs. the same libvirt calls made directly with virsh (snapshot-create-as,
# snapshot-revert) on an identical domain (carved's domain XML, its own
# overlay on the same base image), rounds interleaved so both see the same
# machine. Also the disk kind's revert (revert paused, power off, boot)
# against virsh doing those three calls. Medians in ms, and the ratios.
#   tests/bench/snapshot.sh [BUILDDIR] [ROUNDS]
# Needs root, libvirtd (started if absent), qemu, jq and what
# tests/guest/mk-image.sh needs. Domains are named carve-snap-bench-*.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$src}" && pwd)
rounds=${2:-5}
top_srcdir=$src top_builddir=$build
export top_srcdir top_builddir
. "$src/tests/lib/libvirtd.sh"
make -C "$build" carved carvectl >/dev/null

tmp=$(mktemp -d /tmp/carve-snapbench.XXXXXX)
chmod 0711 "$tmp"
V="virsh -q -c qemu:///system"
pool=ct-snapbench-$$
cleanup() {
	for d in carve-snap-bench-c carve-snap-bench-d; do
		$V destroy $d >/dev/null 2>&1 || true
		$V undefine $d --snapshots-metadata >/dev/null 2>&1 || true
	done
	[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	$V pool-destroy $pool >/dev/null 2>&1 || true
	$V pool-undefine $pool >/dev/null 2>&1 || true
	libvirtd_stop_if_started
	rm -rf "$tmp"
}
trap cleanup EXIT
libvirtd_ensure

img=$tmp/img
mkdir -p "$img"
guest=$build/tests/guest/out
[ -f "$guest/vmlinuz" ] && cp -p "$guest/vmlinuz" "$guest/initrd.gz" "$img/"
sha=$("$src/tests/guest/mk-image.sh" "$img" carve-snap-bench 2>/dev/null | tail -1)

mkdir -p "$tmp/state"
chmod 0711 "$tmp/state"
cat > "$tmp/carved.conf" <<EOC
[agent]
node_name = snapbench
state_dir = $tmp/state
socket = $tmp/carved.sock
log_level = warn
[libvirt]
uri = qemu:///system
domain_type = ${CARVE_VIRT_TYPE:-qemu}
storage_pool = $pool
EOC
"$build/carved" -f -c "$tmp/carved.conf" 2>"$tmp/carved.log" &
pid=$!
ctl() { "$build/carvectl" -s "$tmp/carved.sock" --json "$@"; }
i=0; until ctl capacity >/dev/null 2>&1 || [ $i -gt 300 ]; do sleep 0.1; i=$((i+1)); done

r=$(ctl vm create carve-snap-bench-c --vcpus 1 --memory 128 --disk-gib 1 \
    --image-url "file://$img/base.qcow2" --image-sha256 "$sha" --image-format qcow2)
id=$(printf '%s' "$r" | jq -r .vm_id)
[ "$(printf '%s' "$r" | jq -r .status)" = succeeded ] || { echo "create failed: $r" >&2; exit 1; }

# The identical domain: carved's definition, without carve's metadata, with
# its own name, overlay, seed and console log.
$V dumpxml carve-snap-bench-c > "$tmp/c.xml"
root=$($V domblklist carve-snap-bench-c --details | awk '$3 == "vda" { print $4 }')
seed=$($V domblklist carve-snap-bench-c --details | awk '$3 == "hdc" { print $4 }')
clog=$(sed -n "s/.*<log file='\([^']*\)'.*/\1/p" "$tmp/c.xml" | head -1)
qemu-img create -q -f qcow2 -b "$img/base.qcow2" -F qcow2 "$tmp/d-root.qcow2" 1G
cp "$seed" "$tmp/d-seed.iso"
chmod 0644 "$tmp/d-root.qcow2" "$tmp/d-seed.iso"
awk '/<metadata>/ { skip = 1 } !skip && !/<uuid>/ { print } /<\/metadata>/ { skip = 0 }' "$tmp/c.xml" |
    sed -e "s|<name>carve-snap-bench-c</name>|<name>carve-snap-bench-d</name>|" \
	-e "s|$root|$tmp/d-root.qcow2|" -e "s|$seed|$tmp/d-seed.iso|" \
	-e "s|$clog|$tmp/d.console.log|" > "$tmp/d.xml"
$V define "$tmp/d.xml" >/dev/null
$V start carve-snap-bench-d >/dev/null

wait_ready() {
	i=0
	until grep -q READY "$1" 2>/dev/null || [ $i -gt 600 ]; do sleep 0.1; i=$((i+1)); done
}
wait_ready "$clog"
wait_ready "$tmp/d.console.log"
sleep 2

now() { date +%s%N; }
# ms CMD...: run it, print its wall time in ms; fail loudly if it fails.
ms() {
	t=$(now)
	if ! out=$("$@" 2>&1); then
		echo "failed: $* -> $out" >&2
		exit 1
	fi
	case "$out" in *'"failed"'*) echo "failed: $* -> $out" >&2; exit 1 ;; esac
	echo $((($(now) - t) / 1000000))
}
: > "$tmp/times"
# Both guests run under TCG on shared CPUs: let a revert's (re)started
# guest settle before the next measurement, and take turns going first.
settle() { sleep "${SNAPBENCH_SETTLE_S:-2}"; }
# pair ROUND OP CARVED_CMD DIRECT_CMD (commands as strings for eval)
pair() {
	if [ $(($1 % 2)) = 1 ]; then
		echo "carved_$2 $(eval ms "$3")" >> "$tmp/times"; settle
		echo "direct_$2 $(eval ms "$4")" >> "$tmp/times"; settle
	else
		echo "direct_$2 $(eval ms "$4")" >> "$tmp/times"; settle
		echo "carved_$2 $(eval ms "$3")" >> "$tmp/times"; settle
	fi
}
C=carve-snap-bench-c D=carve-snap-bench-d
for k in $(seq 1 "$rounds"); do
	pair $k create "ctl vm snapshot create $C s$k --kind full" \
	    "$V snapshot-create-as $D s$k"
	pair $k revert "ctl vm snapshot revert $C s$k" "$V snapshot-revert $D s$k"
	pair $k create_disk "ctl vm snapshot create $C d$k --kind disk" \
	    "$V snapshot-create-as $D d$k"
	pair $k revert_disk "ctl vm snapshot revert $C d$k" \
	    "sh -c '$V snapshot-revert $D d$k --paused && $V destroy $D && $V start $D'"
	pair $k delete "ctl vm snapshot delete $C s$k" "$V snapshot-delete $D s$k"
	ctl vm snapshot delete $C d$k >/dev/null
	$V snapshot-delete $D d$k >/dev/null
done

median() {
	awk -v k="$1" '$1 == k { print $2 }' "$tmp/times" | sort -n |
	    awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
[ -n "${SNAPBENCH_RAW:-}" ] && sort "$tmp/times" >&2
echo "guest_memory_mib=128 rounds=$rounds"
for op in create revert create_disk revert_disk delete; do
	c=$(median carved_$op) d=$(median direct_$op)
	echo "carved_${op}_ms=$c direct_${op}_ms=$d $(awk -v a="$c" -v b="$d" 'BEGIN { printf "ratio=%.2f", a / b }')"
done
