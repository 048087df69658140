#!/bin/sh
# Image garbage collection through a real libvirtd (qemu:///system), with
# small qcow2 bases made here (no guest needs to boot):
#   - an image a VM's overlay is on stays, however old; an unused one goes
#     once older than gc_unused_age_s (and not before); the VM destroyed,
#     its image goes too; a deleted image is fetched again by the next
#     create; `carvectl images` shows who uses what; /metrics counts;
#   - max_cache_gib deletes the least recently used unused images until the
#     cache fits, across a restart (last use is the file's mtime);
#   - creates racing passes (every second, plus `images gc` in a loop) on
#     an image that keeps being collected between bursts never fail.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/libvirtd.sh"
command -v jq >/dev/null || tap_skip_all "jq not installed"
command -v curl >/dev/null || tap_skip_all "curl not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "needs root (libvirtd, qemu:///system)"
command -v qemu-system-x86_64 >/dev/null || tap_skip_all "qemu-system-x86 not installed"
command -v qemu-img >/dev/null || tap_skip_all "qemu-utils not installed"
command -v qemu-io >/dev/null || tap_skip_all "qemu-io not installed"
command -v genisoimage >/dev/null || tap_skip_all "genisoimage not installed"

tmpdir_setup
libvirtd_ensure || tap_bail "libvirtd not available"
tap_at_exit libvirtd_stop_if_started
V="virsh -q -c qemu:///system"

# qemu runs as libvirt-qemu: it must reach the cached bases.
chmod 0711 "$TEST_TMPDIR"
mport=$(free_port)
carved_setup gc qemu:///system
sed -i '/^\[libvirt\]/a domain_type = qemu' "$CARVED_DIR/carved.conf"
chmod 0711 "$CARVED_DIR" "$CARVED_DIR/state"
cache=$CARVED_DIR/state/images

# set_images "key = value" ...: replace the [images] (and [metrics])
# sections of the config; takes effect at the next start.
set_images() {
	sed -i '/^\[images\]/,$d' "$CARVED_DIR/carved.conf"
	printf '[images]\n' >> "$CARVED_DIR/carved.conf"
	for kv in "$@"; do
		printf '%s\n' "$kv" >> "$CARVED_DIR/carved.conf"
	done
	printf '[metrics]\nlisten = 127.0.0.1:%s\n' "$mport" >> "$CARVED_DIR/carved.conf"
	# Other tests' guests on this libvirtd count against the host too.
	printf '[capacity]\nreserved_memory_mib = 0\ncpu_allocation_ratio = 100\nram_allocation_ratio = 10\n' \
	    >> "$CARVED_DIR/carved.conf"
}

cleanup() {
	for d in $($V list --all --name | grep '^carve-gct-'); do
		$V destroy "$d" >/dev/null 2>&1
		$V undefine "$d" >/dev/null 2>&1
	done
	for v in $($V vol-list "$CARVED_POOL" 2>/dev/null | awk '{print $1}'); do
		$V vol-delete --pool "$CARVED_POOL" "$v" >/dev/null 2>&1
	done
	$V pool-destroy "$CARVED_POOL" >/dev/null 2>&1
	$V pool-undefine "$CARVED_POOL" >/dev/null 2>&1
}
cleanup
tap_at_exit cleanup
tap_at_exit carved_stop

# -- small bases: 64 MiB qcow2s holding 1 MiB of a pattern each ---------
w=$TEST_TMPDIR/w
mkdir -p "$w"
mkbase() { # NAME BYTE -> prints the sha256
	qemu-img create -q -f qcow2 "$w/$1.qcow2" 64M
	qemu-io -c "write -P $2 0 1M" "$w/$1.qcow2" >/dev/null
	sha256sum "$w/$1.qcow2" | cut -d' ' -f1
}
A=$(mkbase a 0x41); B=$(mkbase b 0x42); C=$(mkbase c 0x43)
D=$(mkbase d 0x44); E=$(mkbase e 0x45); F=$(mkbase f 0x46)

create() { # NAME IMAGE-NAME SHA -> the result JSON
	ctl_json vm create "$1" --vcpus 1 --memory 64 \
	    --image-url "file://$w/$2.qcow2" --image-sha256 "$3" --image-format qcow2
}
status_of() { printf '%s' "$1" | jq -r .status; }
cached() { [ -e "$cache/$1.qcow2" ]; }
deleted_of() { # GC-JSON -> "sha:reason ..." sorted
	printf '%s' "$1" | jq -r '[.deleted[] | "\(.sha256):\(.reason)"] | sort | join(" ")'
}
metric() { curl -sf "http://127.0.0.1:$mport/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

# -- age: in use stays, unused goes after gc_unused_age_s ----------------
# 6 s: what happens before the first pass below must take less.
set_images "gc_interval_s = 0" "gc_unused_age_s = 6"
carved_start || tap_bail "carved did not start"

r=$(create carve-gct-a a "$A")
tap_is "$(status_of "$r")" succeeded "a VM on image A" || tap_diag "$r"
ida=$(printf '%s' "$r" | jq -r .vm_id)
r=$(create carve-gct-b b "$B")
tap_is "$(status_of "$r")" succeeded "a VM on image B" || tap_diag "$r"
tap_is "$(ctl_json vm destroy carve-gct-b | jq -r .status)" succeeded "that VM destroyed: B is unused"

l=$(ctl_json images)
tap_is "$(printf '%s' "$l" | jq -r --arg a "$A" '.[] | select(.sha256 == $a) | "\(.in_use) \(.vms[0].id) \(.vms[0].name) \(.format)"')" \
    "true $ida carve-gct-a qcow2" "carvectl images: A is in use by carve-gct-a" || tap_diag "$l"
tap_is "$(printf '%s' "$l" | jq -r --arg b "$B" '.[] | select(.sha256 == $b) | "\(.in_use) \(.vms | length) \(.bytes > 1048576)"')" \
    "false 0 true" "carvectl images: B is used by no VM (and takes its 1 MiB)" || tap_diag "$l"
tap_like "$(ctl images)" "*SHA256*FORMAT*SIZE*LAST USED*VMS*$A*qcow2*carve-gct-a*" "the human listing"

g=$(ctl_json images gc)
tap_is "$(deleted_of "$g")" "" "a pass right away deletes nothing (B was used under 6 s ago)" || tap_diag "$g"
sleep 6.5
g=$(ctl_json images gc)
tap_is "$(deleted_of "$g")" "$B:unused_age" "6.5 s later: B goes for its age" || tap_diag "$g"
tap_ok "B's file is gone" sh -c "! test -e '$cache/$B.qcow2'"
tap_ok "A (older than 6 s, but in use) stays" cached "$A"
tap_ok "the deletion is logged with its reason" \
    grep -q "msg=\"image deleted\" sha256=$B format=qcow2 bytes=[0-9]* unused_s=[0-9]* reason=unused_age" "$CARVED_DIR/carved.log"
tap_is "$(metric carve_image_cache_images) $(metric carve_image_gc_deleted_total)" "1 1" \
    "/metrics: 1 image cached, 1 deleted"
tap_like "$(ctl images gc)" "*0 deleted*" "carvectl images gc, human form"

tap_is "$(ctl_json vm destroy carve-gct-a | jq -r .status)" succeeded "the VM on A destroyed"
sleep 6.5
g=$(ctl_json images gc)
tap_is "$(deleted_of "$g")" "$A:unused_age" "then A goes too" || tap_diag "$g"
tap_is "$(ls -A "$cache" | grep -cv '^\.partial$')" 0 "the cache is empty"

r=$(create carve-gct-b2 b "$B")
tap_is "$(status_of "$r")" succeeded "a create on the collected image B fetches it again" || tap_diag "$r"
tap_ok "B is cached again" cached "$B"
ctl_json vm destroy carve-gct-b2 >/dev/null

# -- the cap: least recently used first, last use kept across a restart ---
for x in c:$C d:$D; do
	r=$(create "carve-gct-${x%%:*}" "${x%%:*}" "${x#*:}")
	tap_is "$(status_of "$r")" succeeded "a VM on image ${x%%:*}" || tap_diag "$r"
	ctl_json vm destroy "carve-gct-${x%%:*}" >/dev/null
	sleep 0.2
done
r=$(create carve-gct-e e "$E")
tap_is "$(status_of "$r")" succeeded "a VM on image E (stays)" || tap_diag "$r"
l=$(ctl_json images)
used_at() { printf '%s' "$1" | jq -r --arg s "$2" '.[] | select(.sha256 == $s) | .last_used_at'; }
bytes_of() { printf '%s' "$1" | jq -r --arg s "$2" '.[] | select(.sha256 == $s) | .bytes'; }
before="$(used_at "$l" "$B") $(used_at "$l" "$C") $(used_at "$l" "$D")"
# Room for D and E only: B and C (used before D) must go, in that order.
cap=$(awk -v d="$(bytes_of "$l" "$D")" -v e="$(bytes_of "$l" "$E")" \
    'BEGIN { printf "%.12f", (d + e + 65536) / 1073741824 }')
carved_stop
set_images "gc_interval_s = 0" "gc_unused_age_s = 0" "max_cache_gib = $cap"
carved_start || tap_bail "carved did not restart"
l=$(ctl_json images)
tap_is "$(used_at "$l" "$B") $(used_at "$l" "$C") $(used_at "$l" "$D")" "$before" \
    "last use survives a restart (the files' mtimes)"
g=$(ctl_json images gc)
tap_is "$(deleted_of "$g")" "$(printf '%s\n' "$B:cache_size" "$C:cache_size" | sort | tr '\n' ' ' | sed 's/ $//')" \
    "max_cache_gib = $cap: the least recently used unused images (B, C) go" || tap_diag "$g"
tap_ok "D (used last) stays" cached "$D"
tap_ok "E (in use) stays" cached "$E"
tap_ok "logged with reason cache_size" \
    grep -q "msg=\"image deleted\" sha256=$C .*reason=cache_size" "$CARVED_DIR/carved.log"
tap_is "$(printf '%s' "$g" | jq '.bytes_after <= .bytes_before and .freed_bytes > 0')" true \
    "the pass reports the bytes it freed"
ctl_json vm destroy carve-gct-e >/dev/null

# -- creates racing passes never fail -------------------------------------
carved_stop
set_images "gc_interval_s = 1" "gc_unused_age_s = 1"
carved_start || tap_bail "carved did not restart"
(
	# More passes than the timer makes, each right after the last.
	while [ -e "$TEST_TMPDIR/hammer" ]; do
		ctl images gc >/dev/null 2>&1
	done
) &
touch "$TEST_TMPDIR/hammer"
hammer=$!
tap_at_exit "rm -f '$TEST_TMPDIR/hammer'; wait $hammer"
fails=0 total=0 refetched=0
for round in 1 2 3 4; do
	if [ $((round % 2)) = 1 ] && [ "$round" -gt 1 ]; then
		# Odd rounds: on an image the periodic pass has just collected.
		wait_for "F collected" 15 sh -c "! test -e '$cache/$F.qcow2'" || fails=$((fails + 1))
	else
		# Even rounds: while it is (about to be) collected.
		sleep 1
	fi
	pids=
	for i in 1 2 3 4 5 6; do
		create "carve-gct-r$round-$i" f "$F" > "$TEST_TMPDIR/r$round-$i" &
		pids="$pids $!"
	done
	for p in $pids; do wait "$p"; done
	for i in 1 2 3 4 5 6; do
		total=$((total + 1))
		if [ "$(jq -r .status "$TEST_TMPDIR/r$round-$i")" != succeeded ]; then
			fails=$((fails + 1))
			tap_diag "round $round create $i: $(cat "$TEST_TMPDIR/r$round-$i")"
		fi
	done
	pids=
	for i in 1 2 3 4 5 6; do
		ctl_json vm destroy "carve-gct-r$round-$i" >/dev/null &
		pids="$pids $!"
	done
	for p in $pids; do wait "$p"; done
done
rm -f "$TEST_TMPDIR/hammer"
wait "$hammer" 2>/dev/null
tap_is "$fails/$total" "0/$total" "$total creates in bursts racing GC passes: none failed"
refetched=$(grep -c "msg=\"image cached\" sha256=$F" "$CARVED_DIR/carved.log")
tap_ok "F was collected and fetched again between bursts ($refetched fetches)" test "$refetched" -ge 2
tap_diag "ensures that waited for a deletion: $(grep -c 'being garbage-collected' "$CARVED_DIR/carved.log")"

# -- a create asking for an image while a pass deletes it -----------------
# (CARVED_TEST_GC_DELAY_MS holds the deletion open for 2 s.)
carved_stop
set_images "gc_interval_s = 0" "gc_unused_age_s = 1"
logstart=$(wc -l < "$CARVED_DIR/carved.log")
carved_start CARVED_TEST_GC_DELAY_MS=2000 || tap_bail "carved did not restart"
r=$(create carve-gct-w1 f "$F")
ctl_json vm destroy carve-gct-w1 >/dev/null
sleep 1.2
ctl_json images gc > "$TEST_TMPDIR/gc-w" &
gcpid=$!
wait_for "the pass to choose F" 5 sh -c "tail -n +$((logstart + 1)) '$CARVED_DIR/carved.log' | grep -q 'image GC pass: deleting 1 of 1 images'"
r=$(create carve-gct-w2 f "$F")
wait "$gcpid"
tap_is "$(deleted_of "$(cat "$TEST_TMPDIR/gc-w")")" "$F:unused_age" "a pass deletes F (slowly)" ||
    tap_diag "$(cat "$TEST_TMPDIR/gc-w")"
tap_is "$(status_of "$r")" succeeded "a create asking for F meanwhile succeeds" || tap_diag "$r"
tap_ok "it waited for the deletion and fetched F again" sh -c \
    "tail -n +$((logstart + 1)) '$CARVED_DIR/carved.log' | grep -q 'image $F.qcow2 is being garbage-collected: fetching it again after the deletion'"
tap_ok "F is cached (and in use)" cached "$F"
tap_is "$(ctl_json images | jq -r --arg f "$F" '.[] | select(.sha256 == $f) | .vms[0].name')" carve-gct-w2 \
    "the listing shows the VM on the new copy"
ctl_json vm destroy carve-gct-w2 >/dev/null

tap_is "$($V list --all --name | grep -c '^carve-gct-')" 0 "no domain left"
tap_is "$($V vol-list "$CARVED_POOL" | wc -l)" 0 "no volume left"
tap_done
