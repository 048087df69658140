#!/bin/sh
# Live migration between two hosts on one machine (tests/lib/mignodes.sh:
# network + mount namespaces, a private libvirtd each, a carved each), the
# agent's side driven command by command through `carvectl submit`, the
# way carve-cp drives it:
#   - a TCG guest printing a tick a second goes A -> B -> A: its ticks go on
#     in the destination's serial log, `virsh list` shows it on exactly one
#     host, the source forgets it and the destination's view has it;
#   - a guest on a base image, with a data disk, goes A -> B: only its
#     overlay and data travel (the job's disk bytes are far below the base's
#     size), and after a restart on B it still reads what it wrote on A to
#     both disks;
#   - prepares are refused when B has no room, already one incoming, or
#     is drained (carvectl drain, kept across a restart);
#   - a reservation survives a kill -9 of the destination's carved;
#   - a bandwidth-limited migration refuses other commands (and a second
#     outgoing one), is cancelled mid-way: the VM keeps running on A and
#     finish on B releases;
#   - kill -9 of the source's carved before it asked libvirt: after the
#     restart it finds the VM running here without a job: failed, it stays;
#   - kill -9 of both carveds mid-migration: libvirtd carries on, and
#     after the restarts both carveds agree where the VM is.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/mignodes.sh"
why=$(mignodes_check) || tap_skip_all "$why"

tmpdir_setup
guest=${CARVE_GUEST_DIR:-$top_builddir/tests/guest/out}
# A no-op when the guest is current (it must know data disks).
"$top_srcdir/tests/guest/mk-guest.sh" "$guest" >&2 ||
    tap_bail "cannot build the test guest"
CARVE_GUEST_DIR=$guest
t0=$(date +%s)
mignodes_up A B || tap_bail "cannot set up the two hosts"
mignode_carved_setup A
mignode_carved_setup B
mignode_carved_start A || tap_bail "carved A did not start"
mignode_carved_start B || tap_bail "carved B did not start"
tap_diag "two hosts up in $(($(date +%s) - t0)) s"

uuid() { cat /proc/sys/kernel/random/uuid; }
NOARGS='{}'

# submit NODE TYPE VM_ID [ARGS_JSON [COMMAND_ID]]: the result's JSON
submit() {
	carved_use "$1"
	printf '{"id":"%s","type":"%s","vm_id":"%s","args":%s}' \
	    "${5:-$(uuid)}" "$2" "$3" "${4:-$NOARGS}" | ctl_json submit -
}
field() { printf '%s' "$1" | jq -r "$2"; }
on_host() { # NODE NAME: 1 when virsh on NODE lists the domain
	mignode_virsh "$1" list --all --name | grep -c "^$2\$"
}
running_on() { [ "$(mignode_virsh "$1" domstate "$2" 2>/dev/null)" = running ]; }
in_view() { # NODE VM_ID
	carved_use "$1"
	ctl_json vm list | jq -r '.[].id' | grep -c "^$2\$"
}
last_tick() { # NODE VM_ID
	grep -ao 'tick [0-9]*' "$(mignode_console "$1" "$2")" 2>/dev/null |
	    tail -1 | cut -d' ' -f2
}
tick_after() { # NODE VM_ID N: a tick above N in NODE's log
	_t=$(last_tick "$1" "$2")
	[ -n "$_t" ] && [ "$_t" -gt "$3" ]
}
# prepare_args SPEC SOURCE / migrate_args PREPARE_RESULT DEST [EXTRA]
prepare_args() { printf '{"spec":%s,"source_node":"%s"}' "$1" "$2"; }
migrate_args() {
	field "$1" ".result | {dest_node:\"$2\", dest_libvirt_uri:.libvirt_uri,
	    dest_migrate_uri:.migrate_uri, disks:.disks,
	    console_log:.console_log} + (${3:-$NOARGS})"
}
# move VM SPEC FROM TO [EXTRA]: prepare, migrate, finish; sets MOVE_*
move() {
	MOVE_PREP=$(submit "$4" vm.migrate.prepare "$1" "$(prepare_args "$2" "$3")")
	MOVE_MIG=$(submit "$3" vm.migrate "$1" "$(migrate_args "$MOVE_PREP" "$4" "${5:-}")")
	MOVE_FIN=$(submit "$4" vm.migrate.finish "$1")
}
inflight_progress() { # NODE: percent of the running vm.migrate, if any
	carved_use "$1"
	ctl_json status | jq -e '.inflight[] | select(.type == "vm.migrate"
	    and .state == "running") | .progress.percent' >/dev/null 2>&1
}
result_of() { # NODE COMMAND_ID: its result once there is one
	carved_use "$1"
	ctl_json commands --limit 1000 | jq -ce ".[] | select(.command_id == \"$2\")"
}
show_logs() {
	tap_diag "carved A:"; tail -n 15 "$TEST_TMPDIR/A/carved.log" | sed 's/^/#   /'
	tap_diag "carved B:"; tail -n 15 "$TEST_TMPDIR/B/carved.log" | sed 's/^/#   /'
}

# -- a ticking guest, A -> B -> A ----------------------------------------------
SPEC1='{"name":"carve-mig1","vcpus":1,"memory_mib":128,"kernel":"vmlinuz",'
SPEC1=$SPEC1'"initrd":"initrd.gz","cmdline":"console=ttyS0 panic=-1 tick"}'
carved_use A
r=$(ctl_json vm create carve-mig1 --vcpus 1 --memory 128 --kernel vmlinuz \
    --initrd initrd.gz --cmdline "console=ttyS0 panic=-1 tick")
tap_is "$(field "$r" .status)" succeeded "a ticking guest is created on A" ||
    tap_diag "$r"
V1=$(field "$r" .vm_id)
tap_ok "it ticks on A" wait_for "ticks on A" 60 tick_after A "$V1" 2

P=$(submit B vm.migrate.prepare "$V1" "$(prepare_args "$SPEC1" A)")
tap_is "$(field "$P" .status)" succeeded "prepare on B" || tap_diag "$P"
tap_like "$(field "$P" .result.libvirt_uri)" "qemu+unix:///system?socket=*/lv/B/run/libvirt-sock" \
    "prepare answers B's libvirt URI"
tap_is "$(field "$P" .result.migrate_uri)" "tcp://$(mignode_addr B)" \
    "and where the data goes"
carved_use B
tap_is "$(ctl_json status | jq -r '.migrations.incoming[0].vm_id')" "$V1" \
    "B holds a reservation for it"
tap_is "$(ctl_json capacity | jq -r .MEMORY_MIB.allocated)" 128 \
    "the reservation counts as allocated on B"
r=$(submit B vm.stop "$V1")
tap_like "$(field "$r" .error.message)" "*arriving by migration*" \
    "B refuses other commands for the arriving VM"

# Kill -9 the destination's carved: the reservation is durable.
carved_kill9
mignode_carved_start B || tap_bail "carved B did not restart"
tap_is "$(ctl_json status | jq -r '.migrations.incoming[0].vm_id')" "$V1" \
    "the reservation survives a kill -9 of B's carved"
tap_is "$(ctl_json capacity | jq -r .MEMORY_MIB.allocated)" 128 \
    "and is still counted"

before=$(last_tick A "$V1")
M=$(submit A vm.migrate "$V1" "$(migrate_args "$P" B '{max_downtime_ms:500}')")
tap_is "$(field "$M" .status)" succeeded "vm.migrate A -> B" || { tap_diag "$M"; show_logs; }
tap_diag "A -> B: $(field "$M" '.result | "elapsed \(.elapsed_ms) ms, downtime \(.downtime_ms) ms, \(.data_transferred_bytes) bytes, \(.iterations) iterations"'), command $(($(field "$M" .finished_at) - $(field "$M" .accepted_at))) ms"
tap_like "$(field "$M" .result.downtime_ms)" "[0-9]*" "the result has the downtime"
F=$(submit B vm.migrate.finish "$V1")
tap_is "$(field "$F" .result.outcome)" arrived "finish on B: arrived"
tap_ok "ticks go on in B's serial log" wait_for "ticks on B" 30 tick_after B "$V1" "$before"
tap_is "$(on_host A carve-mig1)$(on_host B carve-mig1)" 01 "virsh: on B only"
tap_is "$(in_view A "$V1")$(in_view B "$V1")" 01 "A forgot it, B's view has it"
tap_is "$(mignode_virsh B dumpxml --inactive carve-mig1 | grep -c "$TEST_TMPDIR/A/")" 0 \
    "B's persistent definition has none of A's paths"
carved_use B
tap_is "$(ctl_json status | jq -r '.migrations.incoming | length')" 0 \
    "B's reservation is gone"
tap_is "$(ctl_json capacity | jq -r .MEMORY_MIB.allocated)" 128 \
    "and the VM is counted once"

before=$(last_tick B "$V1")
move "$V1" "$SPEC1" B A
tap_is "$(field "$MOVE_MIG" .status) $(field "$MOVE_FIN" .result.outcome)" \
    "succeeded arrived" "and back B -> A" || { tap_diag "$MOVE_PREP" "$MOVE_MIG"; show_logs; }
tap_diag "B -> A: $(field "$MOVE_MIG" '.result | "elapsed \(.elapsed_ms) ms, downtime \(.downtime_ms) ms"')"
tap_ok "ticks go on in A's serial log" wait_for "ticks on A" 30 tick_after A "$V1" "$before"
tap_is "$(on_host A carve-mig1)$(on_host B carve-mig1)" 10 "virsh: on A only"
tap_is "$(in_view A "$V1")$(in_view B "$V1")" 10 "A's view has it again, B's not"

# -- a guest on a base image: only the overlay travels --------------------------
if command -v syslinux >/dev/null && command -v genisoimage >/dev/null &&
    command -v mcopy >/dev/null; then
	img=$TEST_TMPDIR/img
	mkdir -p "$img"
	cp -p "$guest/vmlinuz" "$guest/initrd.gz" "$img/"
	sha=$("$top_srcdir/tests/guest/mk-image.sh" "$img" carve-mig-marker 2>/dev/null | tail -1)
	base_bytes=$(stat -c %s "$img/base.qcow2")
	IMG="{\"url\":\"file://$img/base.qcow2\",\"sha256\":\"$sha\",\"format\":\"qcow2\"}"
	SPEC2="{\"name\":\"carve-mig2\",\"vcpus\":1,\"memory_mib\":192,\"disk_gib\":1,\"image\":$IMG,\"data_disks\":[{\"size_gib\":1}],\"user_data\":\"#cloud-config\\n#writemark: w1\\n#datamark: d1\\n\"}"
	V2=$(uuid)
	r=$(printf '{"id":"%s","type":"vm.create","vm_id":"%s","args":%s}' \
	    "$(uuid)" "$V2" "$SPEC2" | { carved_use A; ctl_json submit -; })
	tap_is "$(field "$r" .status)" succeeded "an image-based guest on A" || tap_diag "$r"
	tap_ok "it writes to its overlay on A" wait_for "WROTE" 90 \
	    grep -q "WROTE w1" "$(mignode_console A "$V2")"
	tap_ok "and to its data disk" wait_for "DATA-WROTE" 60 \
	    grep -q "DATA-WROTE d1" "$(mignode_console A "$V2")"
	# libvirt cannot migrate a domain with snapshots: refused up front.
	if mignode_virsh A snapshot-create-as carve-mig2 s1 >/dev/null 2>&1; then
		r=$(submit A vm.migrate "$V2" '{"dest_node":"B","dest_libvirt_uri":"qemu:///system","disks":{}}')
		tap_like "$(field "$r" '"\(.error.code): \(.error.message)"')" \
		    "invalid_argument: *has 1 snapshot; libvirt cannot live-migrate*" \
		    "a VM with a snapshot is refused before anything is sent"
		mignode_virsh A snapshot-delete carve-mig2 s1 >/dev/null
	else
		tap_skip "a VM with a snapshot is refused" "cannot snapshot it"
	fi
	move "$V2" "$SPEC2" A B
	tap_is "$(field "$MOVE_MIG" .status) $(field "$MOVE_FIN" .result.outcome)" \
	    "succeeded arrived" "A -> B with its disks" || { tap_diag "$MOVE_PREP" "$MOVE_MIG"; show_logs; }
	disk=$(field "$MOVE_MIG" .result.disk_transferred_bytes)
	tap_diag "disk bytes sent: $disk; the base image: $base_bytes bytes"
	tap_ok "only the overlay travelled (disk bytes < half the base)" \
	    test "$disk" -lt $((base_bytes / 2))
	tap_like "$(field "$MOVE_PREP" '.result.disks | "\(.vda) \(.vdb) \(.hdc)"')" \
	    "$TEST_TMPDIR/B/state/disks/$V2-root.qcow2 $TEST_TMPDIR/B/state/disks/$V2-data0.qcow2 $TEST_TMPDIR/B/state/disks/$V2-seed.iso" \
	    "B made its root overlay, data disk and seed in B's pool"
	tap_like "$(qemu-img info -U --output=json "$TEST_TMPDIR/B/state/disks/$V2-root.qcow2" | jq -r '."backing-filename"')" \
	    "$TEST_TMPDIR/B/state/images/*" "on B's own copy of the base"
	tap_is "$(mignode_virsh A vol-list "ct-A-$$" 2>/dev/null | grep -c "$V2")" 0 \
	    "A's volumes for it are gone"
	carved_use B
	ctl_json vm stop "$V2" --force >/dev/null
	tap_is "$(ctl_json vm start "$V2" | jq -r .result.state)" running \
	    "restarted on B"
	tap_ok "it reads on B what it wrote on A" wait_for "WRITES w1" 90 \
	    grep -q "WRITES.*w1" "$(mignode_console B "$V2")"
	tap_ok "and its data disk came along" wait_for "DATA d1" 60 \
	    grep -q "^DATA .*d1" "$(mignode_console B "$V2")"
	ctl_json vm destroy "$V2" >/dev/null
else
	tap_skip "an image-based guest migrates with its overlay" \
	    "syslinux, mtools or genisoimage not installed"
fi

# -- refusals at prepare ---------------------------------------------------------
carved_use B
free=$(ctl_json capacity | jq -r .MEMORY_MIB.allocatable)
V3=$(uuid)
ctl_json vm create carve-mig-held --vcpus 1 --memory 64 --kernel vmlinuz \
    --initrd initrd.gz --cmdline "console=ttyS0 panic=-1" >/dev/null
r=$(submit B vm.migrate.prepare "$V3" "$(prepare_args \
    "{\"name\":\"carve-mig3\",\"vcpus\":1,\"memory_mib\":$free}" A)")
tap_is "$(field "$r" .error.code)" insufficient_capacity \
    "a prepare for more than B has free is refused" || tap_diag "$r"
tap_is "$(ctl_json status | jq -r '.migrations.incoming | length')" 0 \
    "and reserves nothing"
ctl_json vm destroy carve-mig-held >/dev/null
tap_is "$(ctl_json drain | jq -r .schedulable)" false "carvectl drain"
carved_stop
mignode_carved_start B || tap_bail "carved B did not restart"
tap_is "$(ctl_json status | jq -r .schedulable)" false "still drained after a restart"
r=$(submit B vm.migrate.prepare "$V3" "$(prepare_args \
    '{"name":"carve-mig3","vcpus":1,"memory_mib":64}' A)")
tap_like "$(field "$r" '"\(.error.code): \(.error.message)"')" "conflict: this host is drained*" \
    "a drained host takes no incoming migration"
tap_is "$(ctl_json undrain | jq -r .schedulable)" true "carvectl undrain"
P=$(submit B vm.migrate.prepare "$V1" "$(prepare_args "$SPEC1" A)")
r=$(submit B vm.migrate.prepare "$V3" "$(prepare_args \
    '{"name":"carve-mig3","vcpus":1,"memory_mib":64}' A)")
tap_like "$(field "$r" '"\(.error.code): \(.error.message)"')" \
    "insufficient_capacity: too many incoming migrations*max_incoming*" \
    "a second incoming migration is refused ([migration] max_incoming)"

# -- cancel mid-way ---------------------------------------------------------------
carved_use A
V4=$(ctl_json vm create carve-mig-out2 --vcpus 1 --memory 64 --kernel vmlinuz \
    --initrd initrd.gz --cmdline "console=ttyS0 panic=-1" | jq -r .vm_id)
MID=$(uuid)
submit A vm.migrate "$V1" "$(migrate_args "$P" B '{bandwidth_mibps:1}')" "$MID" \
    > "$TEST_TMPDIR/mig-cancel.json" &
mpid=$!
tap_ok "a 1 MiB/s migration reports progress" wait_for progress 30 inflight_progress A
r=$(submit A vm.stop "$V1")
tap_like "$(field "$r" .error.message)" "*is being migrated*only vm.migrate.cancel*" \
    "a migrating VM refuses other commands"
r=$(submit A vm.migrate "$V4" "$(migrate_args "$P" B)")
tap_like "$(field "$r" '"\(.error.code): \(.error.message)"')" \
    "conflict: too many outgoing migrations*max_outgoing*" \
    "a second outgoing migration is refused ([migration] max_outgoing)"
r=$(submit A vm.migrate.cancel "$V1")
tap_is "$(field "$r" .result.cancelled)" true "vm.migrate.cancel: cancelled"
wait "$mpid"
r=$(cat "$TEST_TMPDIR/mig-cancel.json")
tap_like "$(field "$r" '"\(.status) \(.error.message)"')" "failed *cancelled*" \
    "the migration failed as cancelled"
before=$(last_tick A "$V1")
tap_ok "the VM runs on A, ticking" wait_for "ticks on A" 30 tick_after A "$V1" "$before"
tap_is "$(on_host A carve-mig1)$(on_host B carve-mig1)" 10 "virsh: on A only"
F=$(submit B vm.migrate.finish "$V1")
tap_is "$(field "$F" .result.outcome)" released "finish on B: released"
carved_use A
ctl_json vm destroy "$V4" >/dev/null
carved_use B
tap_is "$(ctl_json capacity | jq -r .MEMORY_MIB.allocated)" 0 \
    "B released the reservation"

# -- kill -9 of the source's carved before the migration started ----------------
P=$(submit B vm.migrate.prepare "$V1" "$(prepare_args "$SPEC1" A)")
carved_use A
carved_stop
mignode_carved_start A CARVED_TEST_DELAY_BEFORE_MS=4000 || tap_bail "carved A did not restart"
MID=$(uuid)
submit A vm.migrate "$V1" "$(migrate_args "$P" B)" "$MID" >/dev/null 2>&1 &
mpid=$!
running_cmd() { carved_use A; ctl_json status | jq -e ".inflight[] |
    select(.command_id == \"$MID\" and .state == \"running\")" >/dev/null; }
wait_for "vm.migrate running" 30 running_cmd
carved_use A
carved_kill9
wait "$mpid" 2>/dev/null
mignode_carved_start A || tap_bail "carved A did not restart"
tap_ok "killed before libvirt was asked: A settles it" wait_for "result" 60 result_of A "$MID"
r=$(result_of A "$MID")
tap_like "$(field "$r" '"\(.status) \(.error.message)"')" "failed *did not complete; the VM stays on A" \
    "from libvirt: it did not happen, the VM stays" || tap_diag "$r"
F=$(submit B vm.migrate.finish "$V1")
tap_is "$(field "$F" .result.outcome)" released "finish on B: released"
tap_is "$(on_host A carve-mig1)$(on_host B carve-mig1)" 10 "virsh: on A only"

# -- kill -9 the source's carved mid-migration ----------------------------------
P=$(submit B vm.migrate.prepare "$V1" "$(prepare_args "$SPEC1" A)")
MID=$(uuid)
submit A vm.migrate "$V1" "$(migrate_args "$P" B '{bandwidth_mibps:16}')" "$MID" \
    > /dev/null 2>&1 &
mpid=$!
tap_ok "a 16 MiB/s migration is under way" wait_for progress 30 inflight_progress A
carved_use A
carved_kill9
carved_use B
carved_kill9
wait "$mpid" 2>/dev/null
tap_like "$(mignode_virsh A domjobinfo carve-mig1 2>&1)" "*Outgoing migration*" \
    "libvirtd carries on without either carved"
mignode_carved_start B || tap_bail "carved B did not restart"
mignode_carved_start A || tap_bail "carved A did not restart"
tap_ok "after the restart, A settles the migration" wait_for "result" 60 result_of A "$MID"
r=$(result_of A "$MID")
tap_is "$(field "$r" '"\(.status) \(.result.recovered)"')" "succeeded true" \
    "from libvirt: it happened" || { tap_diag "$r"; show_logs; }
F=$(submit B vm.migrate.finish "$V1")
tap_is "$(field "$F" .result.outcome)" arrived "B: arrived"
tap_is "$(on_host A carve-mig1)$(on_host B carve-mig1)" 01 "virsh: on B only"
tap_is "$(in_view A "$V1")$(in_view B "$V1")" 01 "both carveds agree: on B"
before=$(last_tick B "$V1")
tap_ok "it ticks on B" wait_for "ticks on B" 30 tick_after B "$V1" "$before"

carved_use B
ctl_json vm destroy "$V1" >/dev/null

# -- the same guest migrated by bare virsh, for comparison (issue 6) ------------
cat > "$TEST_TMPDIR/bare.xml" <<EOF
<domain type='$MIGNODES_VIRT'><name>carve-mig-bare</name>
<memory unit='MiB'>128</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type><kernel>$MIGNODES_KERNEL_DIR/vmlinuz</kernel>
<initrd>$MIGNODES_KERNEL_DIR/initrd.gz</initrd>
<cmdline>console=ttyS0 panic=-1 tick</cmdline></os>
<features><acpi/></features><on_poweroff>destroy</on_poweroff>
<devices><serial type='pty'><log file='$TEST_TMPDIR/bare.log' append='on'/></serial>
<console type='pty'/><memballoon model='virtio'/></devices></domain>
EOF
mignode_virsh A define "$TEST_TMPDIR/bare.xml" >/dev/null
mignode_virsh A start carve-mig-bare >/dev/null
wait_for "bare ticks" 60 grep -q "tick 2" "$TEST_TMPDIR/bare.log"
ms0=$(date +%s%3N)
mignode_virsh A migrate --live --p2p --persistent --auto-converge \
    --copy-storage-inc carve-mig-bare "$(mignode_uri B)" \
    --migrateuri "tcp://$(mignode_addr B)" >/dev/null 2>&1
rc=$?
ms1=$(date +%s%3N)
tap_is "$rc" 0 "a bare virsh migrate of the same guest, for comparison"
bare=$(mignode_virsh A domjobinfo --completed carve-mig-bare 2>/dev/null)
tap_diag "bare virsh migrate: wall $((ms1 - ms0)) ms, elapsed $(printf '%s\n' "$bare" |
    awk '/^Time elapsed:/ {print $3}') ms, downtime $(printf '%s\n' "$bare" |
    awk '/^Total downtime:/ {print $3}') ms"
mignode_virsh B destroy carve-mig-bare >/dev/null 2>&1

carved_use A; carved_stop; rca=$?
carved_use B; carved_stop; rcb=$?
tap_is "$rca $rcb" "0 0" "both carveds stop cleanly"
tap_is "$(cat "$TEST_TMPDIR/A/carved.log" "$TEST_TMPDIR/B/carved.log" |
    grep -c 'Sanitizer\|runtime error')" 0 "and no sanitizer reported anything"
tap_diag "total $(($(date +%s) - t0)) s"
tap_done
