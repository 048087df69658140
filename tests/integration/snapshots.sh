#!/bin/sh
# Snapshots of a real TCG guest through carved (qemu:///system). The guest
# boots from a base image (tests/guest/mk-image.sh), writes a marker to its
# disk and then a tick a second ("#disktick: on" in its user-data: "tick N"
# appended to WRITES.TXT, "DISKTICK N UP <uptime>" on the console):
#   - full snapshot, ticks go on, revert: the guest resumes from the
#     snapshot (tick counter and uptime go on from there, no boot) and its
#     disk holds what it held then (no tick of the lost timeline survives);
#   - disk snapshot while the guest keeps ticking on its console, revert:
#     the guest boots afresh from the snapshot's disk;
#   - delete frees them (qemu-img snapshot -l and virsh snapshot-list
#     empty); (DISK_GIB accounting is checked in snapshots_test.sh: other
#     tests' VMs on this shared libvirtd are in this carved's view too);
#   - errors: duplicate name (conflict), unknown (not_found), bad name and
#     a VM without an image and quiesce without a guest agent
#     (invalid_argument); idempotency by command id;
#   - kill -9 of carved after a revert's effect: recovery reports it without
#     reverting again.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/libvirtd.sh"
command -v jq >/dev/null || tap_skip_all "jq not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "needs root (libvirtd, qemu:///system)"
command -v qemu-system-x86_64 >/dev/null || tap_skip_all "qemu-system-x86 not installed"
command -v syslinux >/dev/null || tap_skip_all "syslinux not installed"
command -v genisoimage >/dev/null || tap_skip_all "genisoimage not installed"
command -v mtype >/dev/null || tap_skip_all "mtools not installed"

tmpdir_setup
chmod 0711 "$TEST_TMPDIR"
img=$TEST_TMPDIR/img
mkdir -p "$img"
guest=${CARVE_GUEST_DIR:-$top_builddir/tests/guest/out}
if [ -f "$guest/vmlinuz" ]; then
	cp -p "$guest/vmlinuz" "$guest/initrd.gz" "$img/" 2>/dev/null
fi
sha=$("$top_srcdir/tests/guest/mk-image.sh" "$img" carve-snap-base 2>/dev/null | tail -1)
[ -f "$img/base.qcow2" ] || tap_bail "cannot build the base image"
libvirtd_ensure || tap_bail "libvirtd not available"
tap_at_exit libvirtd_stop_if_started
V="virsh -q -c qemu:///system"
vtype=${CARVE_VIRT_TYPE:-qemu}

carved_setup snap qemu:///system "[libvirt]\ndomain_type = $vtype"
awk '/^\[libvirt\]/{ if (seen) next; seen=1 } { print }' "$CARVED_DIR/carved.conf" > "$CARVED_DIR/c.tmp" && mv "$CARVED_DIR/c.tmp" "$CARVED_DIR/carved.conf"
chmod 0711 "$CARVED_DIR" "$CARVED_DIR/state"
drop_test_pool() {
	for d in $($V list --all --name | grep '^carve-snap-'); do
		$V destroy "$d" >/dev/null 2>&1
		$V undefine "$d" --snapshots-metadata >/dev/null 2>&1
	done
	case "$($V pool-dumpxml "$CARVED_POOL" 2>/dev/null | sed -n 's:.*<path>\(.*\)</path>.*:\1:p')" in
	"$TEST_TMPDIR"/*) $V pool-destroy "$CARVED_POOL" >/dev/null 2>&1; $V pool-undefine "$CARVED_POOL" >/dev/null 2>&1 ;;
	esac
}
drop_test_pool
tap_at_exit drop_test_pool
tap_at_exit carved_kill9
carved_start || tap_bail "carved did not start"

console() { echo "/var/log/libvirt/qemu/carve-$1.console.log"; }
# The console from line $2 on (the log outlives qemu: append='on').
console_from() { tail -n "+$2" "$(console "$1")" | tr -d '\r'; }
lines() { wc -l < "$(console "$1")" | tr -d ' '; }
# The last DISKTICK number printed from line $2 on (0: none).
last_tick() {
	console_from "$1" "${2:-1}" | awk '$1 == "DISKTICK" && $2 ~ /^[0-9]+$/ { n = $2 } END { print n + 0 }'
}
# Wait until the tick counter (from line $2 on) reaches $3.
wait_tick() {
	wait_for "DISKTICK $3" "${4:-60}" sh -c "[ \$(tail -n '+$2' '$(console "$1")' | tr -d '\r' | awk '\$1 == \"DISKTICK\" && \$2 ~ /^[0-9]+\$/ { n = \$2 } END { print n + 0 }') -ge $3 ]"
}
snaps() { ctl_json vm snapshots "$1" | jq -r '[.snapshots[] | .name + ":" + .kind] | join(",")'; }
overlay() { $V vol-path --pool "$CARVED_POOL" "$1-root.qcow2" 2>/dev/null; }

printf '#cloud-config\n#writemark: m1\n#disktick: on\n' > "$TEST_TMPDIR/user-data"
r=$(ctl_json vm create carve-snap-g1 --vcpus 1 --memory 128 --disk-gib 1 \
    --image-url "file://$img/base.qcow2" --image-sha256 "$sha" --image-format qcow2 \
    --user-data-file "$TEST_TMPDIR/user-data")
tap_is "$(printf '%s' "$r" | jq -r .status)" succeeded "create a 128 MiB guest from a base image" || tap_diag "$r"
id=$(printf '%s' "$r" | jq -r .vm_id)
tap_ok "the guest writes its marker to its disk" wait_for "WROTE m1" 120 grep -q "WROTE m1" "$(console "$id")"
tap_ok "and then ticks on its disk" wait_tick "$id" 1 3 60 ||
    { tap_diag "console:"; tail -20 "$(console "$id")" | sed 's/^/#   /'; }
ov=$(overlay "$id")
tap_like "$ov" "$TEST_TMPDIR/*" "its overlay is in the test's pool"

# -- full snapshot, more writes, revert ---------------------------------------
CF=5eaf0000-0000-4000-8000-000000000001
nb=$(last_tick "$id" 1)
r=$(ctl_json vm snapshot create carve-snap-g1 s-full --kind full --command-id $CF)
na=$(last_tick "$id" 1)
tap_is "$(printf '%s' "$r" | jq -r '.status + " " + .result.kind + " " + (.result.created|tostring)')" \
    "succeeded full true" "full snapshot taken (between ticks $nb and $na)" || tap_diag "$r"
created=$(printf '%s' "$r" | jq -r .result.created_at)
tap_is "$(snaps carve-snap-g1)" "s-full:full" "vm snapshots lists it"
tap_like "$(qemu-img snapshot -l -U "$ov")" "*s-full*MiB*" "qemu-img sees an internal snapshot with the VM state"
tap_is "$($V snapshot-list carve-snap-g1 --name)" "s-full" "virsh snapshot-list sees it"
r=$(ctl_json vm snapshot create carve-snap-g1 s-full --kind full --command-id $CF)
tap_is "$(printf '%s' "$r" | jq -r '.status + " " + (.result.created_at|tostring)')" "succeeded $created" \
    "the same command id again: the first result"
r=$(ctl_json vm snapshot create carve-snap-g1 s-full --kind disk)
tap_is "$(printf '%s' "$r" | jq -r '.status + " " + .error.code')" "failed conflict" "a second s-full: conflict"
tap_is "$(snaps carve-snap-g1)" "s-full:full" "still one snapshot"

tap_ok "the guest writes on after the snapshot" wait_tick "$id" 1 $((na + 3)) 30
L=$(lines "$id")
before=$(last_tick "$id" 1)
up_before=$(console_from "$id" 1 | awk '$1 == "DISKTICK" && $2 ~ /^[0-9]+$/ { u = $4 } END { print u }')
r=$(ctl_json vm snapshot revert carve-snap-g1 s-full)
tap_is "$(printf '%s' "$r" | jq -r '.status + " " + .result.state')" "succeeded running" "revert to s-full" || tap_diag "$r"
tap_ok "ticks again after the revert" wait_tick "$id" $((L + 1)) 1 30
first=$(console_from "$id" $((L + 1)) | awk '$1 == "DISKTICK" && $2 ~ /^[0-9]+$/ { print $2, $4; exit }')
ft=${first% *} fu=${first#* }
if [ "$ft" -ge $((nb + 1)) ] && [ "$ft" -le $((na + 1)) ]; then
	tap_pass "the tick counter goes on from the snapshot ($ft after $before; snapshot between $nb and $na)"
else
	tap_fail "the tick counter goes on from the snapshot" "first tick after revert $ft, snapshot between $nb and $na, $before before the revert"
fi
tap_is "$(console_from "$id" $((L + 1)) | grep -c 'GUEST UP')" 0 "the guest resumed: it did not boot"
tap_ok "its uptime went back to the snapshot's ($fu < $up_before)" awk "BEGIN { exit !($fu < $up_before) }"
wait_tick "$id" $((L + 1)) $((ft + 2)) 30
tap_is "$(ctl_json vm stop carve-snap-g1 --force | jq -r .status)" succeeded "power the guest off to read its disk"
qemu-img convert -O raw "$ov" "$TEST_TMPDIR/disk.raw"
mtype -i "$TEST_TMPDIR/disk.raw" ::WRITES.TXT | tr -d '\r' > "$TEST_TMPDIR/writes"
rm -f "$TEST_TMPDIR/disk.raw"
tap_is "$(head -1 "$TEST_TMPDIR/writes")" m1 "the disk holds the marker"
seq=$(awk '$1 == "tick" { if ($2 != n + 1) bad = bad " " $2 " after " n; n = $2 } END { print (bad == "" ? "ok " n : "bad" bad) }' "$TEST_TMPDIR/writes")
tap_like "$seq" "ok *" "the disk holds each tick once, in order: the ticks written after the snapshot were rolled back" ||
    tap_diag "$(tr '\n' ' ' < "$TEST_TMPDIR/writes")"

# -- disk snapshot while the guest ticks ---------------------------------------
L=$(lines "$id")
tap_is "$(ctl_json vm start carve-snap-g1 | jq -r .status)" succeeded "start the guest again"
tap_ok "it boots and ticks (from 1 again)" wait_tick "$id" $((L + 1)) 3 90
nb=$(last_tick "$id" $((L + 1)))
r=$(ctl_json vm snapshot create carve-snap-g1 s-disk --kind disk)
na=$(last_tick "$id" $((L + 1)))
tap_is "$(printf '%s' "$r" | jq -r '.status + " " + .result.kind')" "succeeded disk" \
    "disk snapshot taken (between ticks $nb and $na)" || tap_diag "$r"
L2=$(lines "$id")
tap_ok "the guest keeps ticking on its console" wait_tick "$id" $((L + 1)) $((na + 3)) 30
tap_is "$(console_from "$id" "$L2" | grep -c 'GUEST UP')" 0 "without a reboot"
tap_is "$(snaps carve-snap-g1)" "s-full:full,s-disk:disk" "vm snapshots lists both, oldest first"
L3=$(lines "$id")
r=$(ctl_json vm snapshot revert carve-snap-g1 s-disk)
tap_is "$(printf '%s' "$r" | jq -r '.status + " " + .result.state + " " + (.result.booted|tostring)')" \
    "succeeded running true" "revert to s-disk boots the guest" || tap_diag "$r"
tap_ok "the guest boots afresh" wait_for "GUEST UP" 90 sh -c "tail -n +$((L3 + 1)) '$(console "$id")' | grep -q 'GUEST UP'"
wait_for "WRITES" 60 sh -c "tail -n +$((L3 + 1)) '$(console "$id")' | grep -q '^WRITES'"
w=$(console_from "$id" $((L3 + 1)) | grep '^WRITES' | head -1)
lastw=${w##* }
case "$lastw" in
tick*) n=${lastw#tick} ;;
*) n=-1 ;;
esac
if [ "$n" -ge "$nb" ] && [ "$n" -le $((na + 1)) ]; then
	tap_pass "its disk is the snapshot's: the last tick on it is $n (snapshot between $nb and $na)"
else
	tap_fail "its disk is the snapshot's" "WRITES line: $w" "snapshot between ticks $nb and $na"
fi

# -- kill -9 after a revert's effect: recovered, not done twice ---------------
CR=5eaf0000-0000-4000-8000-0000000000e1
wait_tick "$id" $((L3 + 1)) 2 60
carved_stop
carved_start CARVED_TEST_DELAY_AFTER_MS=8000 || tap_bail "carved did not restart"
L4=$(lines "$id")
ctl_json vm snapshot revert carve-snap-g1 s-disk --command-id $CR >/dev/null 2>&1 &
tap_ok "a disk revert boots the guest" wait_for "GUEST UP" 90 sh -c "tail -n +$((L4 + 1)) '$(console "$id")' | grep -q 'GUEST UP'"
carved_kill9
wait_tick "$id" $((L4 + 1)) 3 60
L5=$(lines "$id")
carved_start || tap_bail "carved did not restart"
r=$(ctl_json vm snapshot revert carve-snap-g1 s-disk --command-id $CR)
tap_is "$(printf '%s' "$r" | jq -r .status)" succeeded "the interrupted revert was recovered: succeeded"
tap_like "$(cat "$CARVED_DIR/carved.log")" "*$CR*accepted but never finished*" "the log names the recovery"
tap_is "$(snaps carve-snap-g1)" "s-full:full,s-disk:disk" "the restarted carved read the snapshots back from libvirt"
sleep 3
tap_is "$(console_from "$id" $((L5 + 1)) | grep -c 'GUEST UP')" 0 "and the guest was not reverted (booted) again"

# -- errors ------------------------------------------------------------------
r=$(ctl_json vm snapshot revert carve-snap-g1 nope)
tap_is "$(printf '%s' "$r" | jq -r '.status + " " + .error.code')" "failed not_found" "revert of an unknown snapshot: not_found"
r=$(ctl_json vm snapshot create carve-snap-g1 'bad/name')
tap_is "$(printf '%s' "$r" | jq -r .error.code)" invalid_argument "a bad name: invalid_argument"
r=$(ctl_json vm snapshot create carve-snap-g1 q1 --kind disk --quiesce)
tap_is "$(printf '%s' "$r" | jq -r '.status + " " + .error.code')" "failed invalid_argument" \
    "quiesce without a guest agent channel: invalid_argument"
r=$(ctl_json vm create carve-snap-noimg --vcpus 1 --memory 64)
tap_is "$(printf '%s' "$r" | jq -r .status)" succeeded "a VM without an image"
r=$(ctl_json vm snapshot create carve-snap-noimg s1)
tap_is "$(printf '%s' "$r" | jq -r '.status + " " + .error.code')" "failed invalid_argument" \
    "cannot be snapshotted: invalid_argument"
tap_like "$(printf '%s' "$r" | jq -r .error.message)" "*qcow2 root disk*" "the message says why"
ctl_json vm destroy carve-snap-noimg >/dev/null

# -- delete frees them ----------------------------------------------------------
for s in s-full s-disk; do
	r=$(ctl_json vm snapshot delete carve-snap-g1 $s)
	tap_is "$(printf '%s' "$r" | jq -r '.status + " " + (.result.deleted|tostring)')" "succeeded true" "delete $s"
done
r=$(ctl_json vm snapshot delete carve-snap-g1 s-full)
tap_is "$(printf '%s' "$r" | jq -r '.status + " " + .error.code')" "failed not_found" "delete it again: not_found"
tap_is "$(snaps carve-snap-g1)" "" "vm snapshots is empty"
tap_is "$(qemu-img snapshot -l -U "$ov")" "" "qemu-img snapshot -l is empty: the space is freed"
tap_is "$($V snapshot-list carve-snap-g1 --name)" "" "virsh snapshot-list is empty"
tap_is "$(ctl_json vm show carve-snap-g1 | jq -r .state)" running "the guest still runs"

ctl_json vm destroy carve-snap-g1 >/dev/null
tap_is "$($V list --all --name | grep -c '^carve-snap-g1$')" 0 "destroy removes the VM with its snapshots"
tap_done
