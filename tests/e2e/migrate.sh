#!/bin/sh
# Live migration end to end: two libvirt hosts on this machine (network and
# mount namespaces joined by a veth pair, tests/lib/mignodes.sh), each with
# its carved enrolled at one carve-cp over mutual TLS. A TCG guest that
# prints a tick every second, created through the admin API on A:
#   - migrates A -> B (the scheduler's choice) while running: its ticks go
#     on in B's serial log, virsh lists it on B only, carve-cp puts it on B
#     and the migration record is done, with the progress the source's
#     carved posted and libvirt's job stats;
#   - back B -> A with an explicit target;
#   - a VM too big for B is refused before anything is sent; nothing left;
#   - a bandwidth-limited migration cancelled mid-way stays on its source;
#   - `carvectl drain` on A: carve-cp evacuates A's VMs to B (patching);
#   - kill -9 of the source carved mid-migration: after its restart both
#     hosts and carve-cp agree on where the VM is, and the record is final.
# Closing measure (diagnostics): carve's migration wall time and libvirt's
# downtime vs a bare `virsh migrate` of the same guest in the same run.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/e2e.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/mignodes.sh"
for t in jq curl; do
	command -v $t >/dev/null || tap_skip_all "$t not installed"
done
why=$(mignodes_check) || tap_skip_all "$why"
guest=${CARVE_GUEST_DIR:-$top_builddir/tests/guest/out}
if [ ! -f "$guest/vmlinuz" ] || [ ! -f "$guest/initrd.gz" ]; then
	"$top_srcdir/tests/guest/mk-guest.sh" "$guest" >&2 ||
	    tap_skip_all "cannot build the test guest"
fi

t_start=$(date +%s)
tmpdir_setup
cp_setup
tap_at_exit cp_stop
tap_at_exit carved_stop_all
cp_start --heartbeat-interval 1 --poll-timeout 5 || tap_bail "carve-cp did not start"
mignodes_up hosta hostb || tap_bail "cannot set up the two hosts"

CPCONF="[control_plane]
url = $CP_URL
ca_file = $CP_DIR/ca.crt
bootstrap_token_file = $CP_DIR/bootstrap.token"
mignode_carved_setup hosta "$CPCONF"
mignode_carved_setup hostb "$CPCONF"
mignode_carved_start hosta || tap_bail "carved hosta did not start"
# B is small: room for the 128 MiB guest, not for a 320 MiB one. Its
# memory as carved counts it first, then the reserve that leaves 300 MiB.
mignode_carved_start hostb || tap_bail "carved hostb did not start"
mem=$(ctl_json capacity | jq .MEMORY_MIB.total)
carved_stop
printf '[capacity]\nreserved_memory_mib = %s\n' $((mem - 300)) >> "$CARVED_DIR/carved.conf"
mignode_carved_start hostb || tap_bail "carved hostb did not restart"
tap_ok "host a enrolled and up at carve-cp" cp_wait_node_up hosta
tap_ok "host b enrolled and up at carve-cp" cp_wait_node_up hostb

# -- helpers -------------------------------------------------------------------
cmd_wait() {	# cmd_wait ID SECONDS: its final status
	_i=0
	while [ $_i -lt $(($2 * 5)) ]; do
		_s=$(cp_admin GET "/v1/commands/$1" | jq -r .status)
		case "$_s" in succeeded|failed) echo "$_s"; return 0 ;; esac
		sleep 0.2
		_i=$((_i + 1))
	done
	echo "$_s"
}
mig() { cp_admin GET "/v1/migrations/$1"; }
# mig_wait ID SECONDS: wait for a final state; prints the record. Notes in
# $TEST_TMPDIR/progress.ID a progress report seen while it migrated.
mig_wait() {
	_i=0
	while [ $_i -lt $(($2 * 5)) ]; do
		_r=$(mig "$1")
		_s=$(printf '%s' "$_r" | jq -r .state)
		if [ "$_s" = migrating ] &&
		    [ "$(printf '%s' "$_r" | jq -r '.progress.percent // empty')" != "" ]; then
			printf '%s\n' "$_r" | jq -c .progress >> "$TEST_TMPDIR/progress.$1"
		fi
		case "$_s" in done|failed) printf '%s\n' "$_r"; return 0 ;; esac
		sleep 0.2
		_i=$((_i + 1))
	done
	printf '%s\n' "$_r"
	return 1
}
# mig_wait_running ID SECONDS: until it migrates and the source reported
# progress at least once.
mig_wait_running() {
	wait_for "migration $1 under way" "$2" sh -c "curl -s --cacert '$CP_DIR/ca.crt' \
	    -H \"Authorization: Bearer \$(cat '$CP_DIR/admin.token')\" \
	    '$CP_URL/v1/migrations/$1' | jq -e '.state == \"migrating\" and .progress != null'"
}
# Where libvirt runs the domain: the hosts listing it running, by name.
where() {
	_w=
	for _h in hosta hostb; do
		if mignode_virsh "$_h" list --name 2>/dev/null | grep -qx "$1"; then
			_w="$_w $_h"
		fi
	done
	echo "${_w# }"
}
defined_on() {	# any state
	mignode_virsh "$2" list --all --name 2>/dev/null | grep -cx "$1"
}
last_tick() {
	sed -n 's/.*tick \([0-9][0-9]*\).*/\1/p' "$1" 2>/dev/null | tail -1
}
# ticks_after FILE N SECONDS: the guest printed a tick above N in FILE.
ticks_after() {
	wait_for "a tick after $2 in $1" "$3" sh -c \
	    "t=\$(sed -n 's/.*tick \\([0-9][0-9]*\\).*/\\1/p' '$1' 2>/dev/null | tail -1); [ -n \"\$t\" ] && [ \"\$t\" -gt $2 ]"
}
vm_node() { cp_admin GET "/v1/vms/$1" | jq -r .node; }
# started RESPONSE: MIG = the migration id, or bail out (nothing after
# would mean anything, and every wait would run out).
started() {
	MIG=$(printf '%s' "$1" | jq -r '.migration_id // empty')
	[ -n "$MIG" ] || tap_bail "no migration started: $1"
}
diag_mig() {	# one line of numbers about a finished migration
	printf '%s' "$1" | jq -r '"migration \(.source) -> \(.target): \(.state), wall \(.finished_at - .started_at) ms (carve-cp, prepare to finish), libvirt elapsed \(.result.elapsed_ms // "?") ms, downtime \(.result.downtime_ms // "?") ms, \(.result.data_transferred_bytes // "?") bytes, \(.result.iterations // "?") iterations"'
}

# -- a ticking guest on A ----------------------------------------------------------
r=$(cp_admin POST /v1/vms '{"name":"carve-mig1","vcpus":1,"memory_mib":128,"node":"hosta","kernel":"vmlinuz","initrd":"initrd.gz","cmdline":"console=ttyS0 panic=-1 tick"}')
vm=$(printf '%s' "$r" | jq -r .id)
tap_is "$(cmd_wait "$(printf '%s' "$r" | jq -r .command_id)" 60)" succeeded \
    "carve-mig1 created on host a through the admin API"
conA=$(mignode_console hosta "$vm")
conB=$(mignode_console hostb "$vm")
tap_ok "it ticks on a's serial log" ticks_after "$conA" 1 30

# -- A -> B ---------------------------------------------------------------------
r=$(cp_admin POST "/v1/vms/$vm/actions" '{"action":"migrate","bandwidth_mibps":16}')
tap_is "$(cp_code)" 202 "migrate (no target) is accepted"
started "$r"; m1=$MIG
tap_is "$(mig "$m1" | jq -r .target)" hostb "the scheduler chose b"
ta=$(last_tick "$conA")
rec=$(mig_wait "$m1" 90)
tap_is "$(printf '%s' "$rec" | jq -r .state)" done "the migration is done" ||
    tap_diag "$(printf '%s' "$rec" | jq -c .)"
tap_diag "$(diag_mig "$rec")"
tap_ok "progress was reported while it ran" test -s "$TEST_TMPDIR/progress.$m1"
tap_diag "progress seen: $(tail -1 "$TEST_TMPDIR/progress.$m1" 2>/dev/null)"
tap_is "$(printf '%s' "$rec" | jq '.result.downtime_ms >= 0 and .result.elapsed_ms > 0')" true \
    "the record holds libvirt's job stats"
tap_ok "the guest's ticks go on in b's serial log" ticks_after "$conB" "${ta:-0}" 20
tap_is "$(where carve-mig1)" hostb "virsh: running on b, and only there"
tap_is "$(defined_on carve-mig1 hosta)" 0 "a no longer defines it"
tap_is "$(vm_node "$vm")" hostb "GET /v1/vms/{id}: node b"
tap_is "$(cp_admin GET /v1/vms | jq -r --arg v "$vm" '.[] | select(.id == $v) | .node')" hostb \
    "GET /v1/vms: node b"

# -- B -> A, explicit target ---------------------------------------------------------
r=$(cp_admin POST "/v1/vms/$vm/actions" '{"action":"migrate","target_node":"hosta","max_downtime_ms":500}')
started "$r"; m2=$MIG
tb=$(last_tick "$conB")
rec=$(mig_wait "$m2" 90)
tap_is "$(printf '%s' "$rec" | jq -r .state)" done "back to a with an explicit target: done"
tap_diag "$(diag_mig "$rec")"
tap_ok "ticks go on in a's serial log" ticks_after "$conA" "${tb:-0}" 20
tap_is "$(where carve-mig1) $(vm_node "$vm")" "hosta hosta" "libvirt and carve-cp agree: a"

# -- no room on B: refused before anything is sent ---------------------------------------
r=$(cp_admin POST /v1/vms '{"name":"carve-mig2","vcpus":1,"memory_mib":320,"node":"hosta","kernel":"vmlinuz","initrd":"initrd.gz","cmdline":"console=ttyS0 panic=-1"}')
vm2=$(printf '%s' "$r" | jq -r .id)
tap_is "$(cmd_wait "$(printf '%s' "$r" | jq -r .command_id)" 60)" succeeded "a 320 MiB VM on a"
nmig=$(cp_admin GET /v1/migrations | jq length)
r=$(cp_admin POST "/v1/vms/$vm2/actions" '{"action":"migrate"}')
tap_is "$(cp_code) $(printf '%s' "$r" | jq -r .error.code)" "409 insufficient_capacity" \
    "migrating it is refused: b has no room"
tap_diag "$(printf '%s' "$r" | jq -r .error.message)"
r=$(cp_admin POST "/v1/vms/$vm2/actions" '{"action":"migrate","target_node":"hostb"}')
tap_like "$(cp_code) $(printf '%s' "$r" | jq -r .error.message)" '409 node "hostb" has *MiB of memory free; 320 are needed' \
    "with b named: 409 saying how much is free"
carved_use hostb
tap_is "$(cp_admin GET /v1/migrations | jq length) $(defined_on carve-mig2 hostb) $(ctl_json vm list | jq length)" \
    "$nmig 0 0" "nothing left behind: no migration, no domain, no VM on b"
tap_is "$(where carve-mig2)" hosta "it runs on a as before"
r=$(cp_admin DELETE "/v1/vms/$vm2")
cmd_wait "$(printf '%s' "$r" | jq -r .command_id)" 30 >/dev/null

# -- cancel mid-way ---------------------------------------------------------------------
r=$(cp_admin POST "/v1/vms/$vm/actions" '{"action":"migrate","bandwidth_mibps":1}')
started "$r"; m3=$MIG
tap_ok "a migration limited to 1 MiB/s is under way" mig_wait_running "$m3" 60
r=$(cp_admin POST "/v1/migrations/$m3/cancel")
tap_is "$(cp_code)" 202 "cancel: 202"
ta=$(last_tick "$conA")
rec=$(mig_wait "$m3" 60)
tap_is "$(printf '%s' "$rec" | jq -c '[.state,.cancel_requested]')" '["failed",true]' \
    "the migration failed, as cancelled"
tap_diag "cancelled: $(printf '%s' "$rec" | jq -r .error.message)"
tap_is "$(where carve-mig1) $(defined_on carve-mig1 hostb) $(vm_node "$vm")" "hosta 0 hosta" \
    "it stays on a; b holds nothing"
tap_ok "and keeps ticking on a" ticks_after "$conA" "${ta:-0}" 20
carved_use hostb
tap_ok "b's capacity has nothing allocated again" wait_for "b released" 20 sh -c \
    "'$CARVECTL_BIN' -s '$CARVED_DIR/carved.sock' --json capacity | jq -e '.MEMORY_MIB.allocated == 0'"

# -- carvectl drain on A: carve-cp evacuates it -------------------------------------------
carved_use hosta
tap_ok "carvectl drain on a" ctl drain
tap_ok "carve-cp sees a unschedulable and evacuates it" wait_for "evacuation of a" 30 sh -c \
    "curl -s --cacert '$CP_DIR/ca.crt' -H \"Authorization: Bearer \$(cat '$CP_DIR/admin.token')\" \
    '$CP_URL/v1/nodes/hosta' | jq -e '.schedulable == false and .evacuation.reason == \"drain\"'"
tb=$(last_tick "$conA")
tap_ok "the evacuation completes" wait_for "evacuation done" 90 sh -c \
    "curl -s --cacert '$CP_DIR/ca.crt' -H \"Authorization: Bearer \$(cat '$CP_DIR/admin.token')\" \
    '$CP_URL/v1/nodes/hosta' | jq -e '.evacuation.state == \"done\"'"
tap_is "$(cp_admin GET /v1/nodes/hosta | jq -c '.evacuation | [.vms_left,.migrated,.failed]')" "[0,1,0]" \
    "GET /v1/nodes/a: no VM left, one migrated"
tap_is "$(where carve-mig1) $(vm_node "$vm")" "hostb hostb" "the guest runs on b"
tap_ok "still ticking" ticks_after "$conB" "${tb:-0}" 20
r=$(cp_admin POST /v1/vms '{"name":"carve-mig3","vcpus":1,"memory_mib":64,"node":"hosta"}')
tap_is "$(cp_code)" 409 "a drained host takes no new VM"
tap_ok "carvectl undrain" ctl undrain
tap_ok "a is schedulable again" wait_for "a schedulable" 20 sh -c \
    "curl -s --cacert '$CP_DIR/ca.crt' -H \"Authorization: Bearer \$(cat '$CP_DIR/admin.token')\" \
    '$CP_URL/v1/nodes/hosta' | jq -e '.schedulable == true'"

# -- kill -9 of the source carved mid-migration -------------------------------------------
r=$(cp_admin POST "/v1/vms/$vm/actions" '{"action":"migrate","target_node":"hosta","bandwidth_mibps":4}')
started "$r"; m4=$MIG
tap_ok "a migration b -> a is under way" mig_wait_running "$m4" 60
carved_use hostb
carved_kill9
tap_is "$(mig "$m4" | jq -r .state)" migrating "b's carved killed -9 mid-migration"
sleep 2
mignode_carved_start hostb || tap_bail "carved hostb did not restart"
rec=$(mig_wait "$m4" 120)
st=$(printf '%s' "$rec" | jq -r .state)
tap_ok "after the restart the migration is final ($st)" test "$st" = done -o "$st" = failed
tap_diag "after kill -9: $(diag_mig "$rec")"
w=$(where carve-mig1)
case "$st" in done) want=hosta ;; *) want=hostb ;; esac
tap_is "$w $(vm_node "$vm")" "$want $want" "libvirt runs it on exactly one host, the one carve-cp names"
carved_use hostb
tap_ok "b's carved agrees" wait_for "b's view" 30 sh -c \
    "n=\$('$CARVECTL_BIN' -s '$CARVED_DIR/carved.sock' --json vm list | jq '[.[] | select(.name == \"carve-mig1\")] | length'); \
    [ \"\$n\" = $([ "$want" = hostb ] && echo 1 || echo 0) ]"
carved_use hosta
tap_ok "a's carved agrees" wait_for "a's view" 30 sh -c \
    "n=\$('$CARVECTL_BIN' -s '$CARVED_DIR/carved.sock' --json vm list | jq '[.[] | select(.name == \"carve-mig1\")] | length'); \
    [ \"\$n\" = $([ "$want" = hosta ] && echo 1 || echo 0) ]"

# -- closing measure: a bare virsh migrate of the same guest ----------------------------------
src=$want
dst=hostb
[ "$src" = hostb ] && dst=hosta
t0=$(date +%s%3N)
if mignode_virsh "$src" migrate --live --p2p --unsafe --persistent --undefinesource \
    carve-mig1 "$(mignode_uri "$dst")" --migrateuri "tcp://$(mignode_addr "$dst")" \
    >"$TEST_TMPDIR/virsh-migrate.out" 2>&1; then
	t1=$(date +%s%3N)
	tap_diag "bare virsh migrate $src -> $dst: wall $((t1 - t0)) ms; $(mignode_virsh "$dst" domjobinfo --completed carve-mig1 2>/dev/null |
	    grep -E 'Time elapsed:|Total downtime:' | sed 's/  */ /g' | tr '\n' ';')"
else
	tap_diag "bare virsh migrate failed: $(cat "$TEST_TMPDIR/virsh-migrate.out")"
fi
tap_diag "test wall time: $(( $(date +%s) - t_start )) s"
tap_done
