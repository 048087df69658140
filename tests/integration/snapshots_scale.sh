#!/bin/sh
# The snapshot commands at scale on libvirt's test driver (in-process
# test driver: metadata-only snapshots, no daemon, no guests). 50 VMs
# (CARVE_SNAP_VMS) through one carved, their flows side by side: create
# full and disk, list, revert to each, delete; results by command id
# (a re-delivered create is answered from the journal, even after its
# snapshot is gone), conflict and not_found as results, the per-VM limit,
# DISK_GIB accounting and its refusal; then the same commands through
# carve-cp's admin API (two-wildcard routes; the list comes from the VM's
# last heartbeat).
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/e2e.sh"
command -v jq >/dev/null || tap_skip_all "jq not installed"
command -v curl >/dev/null || tap_skip_all "curl not installed"

tmpdir_setup
tap_at_exit carved_stop_all
N=${CARVE_SNAP_VMS:-50}
# A command id per (VM, step): the same flow gives the same ids.
cid() { printf '5eaf%04x-0000-4000-8000-%012x\n' "$1" "$2"; }
ms() { date +%s%3N; }
# Run "$@" in the background, at most 10 at a time (plain "wait" would
# also wait for carved).
jobs_pids=
bg() {
	"$@" &
	jobs_pids="$jobs_pids $!"
	set -- $jobs_pids
	if [ $# -ge 10 ]; then
		wait_jobs
	fi
}
wait_jobs() {
	for p in $jobs_pids; do
		wait "$p"
	done
	jobs_pids=
}

carved_setup snaps "test://$top_srcdir/tests/node-big.xml"
carved_start || tap_bail "carved did not start"

t0=$(ms)
create() {
	ctl_json vm create "carve-snap-s$1" --vcpus 1 --memory 128 \
	    --command-id "$(cid "$1" 0)" > "$TEST_TMPDIR/create.$1"
}
for i in $(seq 1 "$N"); do
	bg create "$i"
done
wait_jobs
ok=$(cat "$TEST_TMPDIR"/create.* | jq -r .status | grep -c '^succeeded$')
tap_is "$ok" "$N" "$N VMs created" ||
    tap_diag "$(cat "$TEST_TMPDIR"/create.* | jq -c 'select(.status != "succeeded")' | head -3)"
t1=$(ms)

# One VM's whole flow; each line "step outcome".
flow() {
	v=carve-snap-s$1 out=$TEST_TMPDIR/flow.$1
	{
		r=$(ctl_json vm snapshot create "$v" full --kind full --command-id "$(cid "$1" 1)")
		echo "create-full $(printf '%s' "$r" | jq -r '.status + "/" + .result.kind')"
		at=$(printf '%s' "$r" | jq -r .result.created_at)
		r=$(ctl_json vm snapshot create "$v" disk --kind disk --command-id "$(cid "$1" 2)")
		echo "create-disk $(printf '%s' "$r" | jq -r '.status + "/" + .result.kind')"
		echo "list $(ctl_json vm snapshots "$v" | jq -r '[.snapshots[] | .name + ":" + .kind] | join(",")')"
		r=$(ctl_json vm snapshot revert "$v" full --command-id "$(cid "$1" 3)")
		echo "revert-full $(printf '%s' "$r" | jq -r '.status + "/" + .result.state')"
		r=$(ctl_json vm snapshot revert "$v" disk --command-id "$(cid "$1" 4)")
		echo "revert-disk $(printf '%s' "$r" | jq -r '.status + "/" + .result.state + "/" + (.result.booted|tostring)')"
		r=$(ctl_json vm snapshot delete "$v" full --command-id "$(cid "$1" 5)")
		echo "delete $(printf '%s' "$r" | jq -r '.status + "/" + (.result.deleted|tostring)')"
		r=$(ctl_json vm snapshot create "$v" full --kind full --command-id "$(cid "$1" 1)")
		echo "redeliver $(printf '%s' "$r" | jq -r .status)/$([ "$(printf '%s' "$r" | jq -r .result.created_at)" = "$at" ] && echo same || echo differs)"
		r=$(ctl_json vm snapshot create "$v" disk --kind full --command-id "$(cid "$1" 6)")
		echo "duplicate $(printf '%s' "$r" | jq -r '.status + "/" + .error.code')"
		r=$(ctl_json vm snapshot delete "$v" full --command-id "$(cid "$1" 7)")
		echo "unknown $(printf '%s' "$r" | jq -r '.status + "/" + .error.code')"
		echo "final $(ctl_json vm snapshots "$v" | jq -r '[.snapshots[] | .name] | join(",")')"
	} > "$out" 2>&1
}
for i in $(seq 1 "$N"); do
	bg flow "$i"
done
wait_jobs
t2=$(ms)
count() { cat "$TEST_TMPDIR"/flow.* | grep -c "^$1\$"; }
tap_is "$(count 'create-full succeeded/full')" "$N" "a full snapshot of each"
tap_is "$(count 'create-disk succeeded/disk')" "$N" "a disk snapshot of each"
tap_is "$(count 'list full:full,disk:disk')" "$N" "each lists both, oldest first"
tap_is "$(count 'revert-full succeeded/running')" "$N" "each reverted to its full snapshot"
tap_is "$(count 'revert-disk succeeded/running/true')" "$N" "each reverted to its disk snapshot (booted afresh)"
tap_is "$(count 'delete succeeded/true')" "$N" "each deleted its full snapshot"
tap_is "$(count 'redeliver succeeded/same')" "$N" \
    "a re-delivered create is answered from the journal (its first result)"
tap_is "$(count 'duplicate failed/conflict')" "$N" "a second snapshot of a name: conflict"
tap_is "$(count 'unknown failed/not_found')" "$N" "deleting a deleted one: not_found"
tap_is "$(count 'final disk')" "$N" "each ends with its disk snapshot"
if [ "$(count 'final disk')" != "$N" ]; then
	for f in "$TEST_TMPDIR"/flow.*; do
		grep -q '^final disk$' "$f" || { tap_diag "$f:"; sed 's/^/#   /' "$f"; break; }
	done
fi
tap_diag "$N VMs: created in $((t1 - t0)) ms; $((N * 9)) snapshot commands + $((N * 2)) lists in $((t2 - t1)) ms"

cmds=$(ctl_json commands --limit 1000)
tap_is "$(printf '%s' "$cmds" | jq '[.[] | select(.type | startswith("vm.snapshot.")) | .status] | group_by(.) | map("\(.[0]):\(length)") | join(" ")' -r)" \
    "failed:$((N * 2)) succeeded:$((N * 5))" "the journal holds each snapshot command once"
tap_is "$(ctl_json vm list | jq "[.[] | select(.name | startswith(\"carve-snap-s\")) | select(.snapshots == [{name: \"disk\", kind: \"disk\", created_at: .snapshots[0].created_at}])] | length")" \
    "$N" "vm list reports each VM's snapshot"
tap_is "$(ctl_json capacity | jq .DISK_GIB.allocated)" "$N" \
    "each snapshot counts 1 GiB against DISK_GIB (128 MiB of memory, rounded up)"

# -- the per-VM limit ---------------------------------------------------------
for k in $(seq 2 16); do
	ctl_json vm snapshot create carve-snap-s1 "more$k" --kind disk >/dev/null
done
tap_is "$(ctl_json vm snapshots carve-snap-s1 | jq '.snapshots | length')" 16 "16 snapshots on one VM"
r=$(ctl_json vm snapshot create carve-snap-s1 one-too-many --kind disk)
tap_is "$(printf '%s' "$r" | jq -r '.status + " " + .error.code')" "failed conflict" "a 17th: conflict"
tap_like "$(printf '%s' "$r" | jq -r .error.message)" "*the most a VM may have*" "saying why"
r=$(ctl_json vm snapshot create carve-snap-s1 'bad name' --kind disk)
tap_is "$(printf '%s' "$r" | jq -r .error.code)" invalid_argument "a bad name: invalid_argument"
r=$(ctl_json vm snapshot create carve-snap-s1 q --kind full --quiesce)
tap_is "$(printf '%s' "$r" | jq -r .error.code)" invalid_argument "quiesce with a full snapshot: invalid_argument"
r=$(ctl_json vm snapshot revert carve-snap-nosuch s1)
tap_is "$(printf '%s' "$r" | jq -r .error.code)" not_found "a snapshot of a VM that does not exist: not_found"
r=$(ctl_json vm destroy carve-snap-s1)
tap_is "$(printf '%s' "$r" | jq -r .status)" succeeded "destroy a VM with 16 snapshots"
tap_is "$(ctl_json capacity | jq .DISK_GIB.allocated)" "$((N - 1))" "its snapshots' space is free again"
total=$(ctl_json capacity | jq .DISK_GIB.total)
carved_stop

# -- DISK_GIB refuses a snapshot that does not fit ----------------------------
carved_setup snapcap test:///default "[capacity]\nreserved_disk_gib = $((total - 2))"
carved_start || tap_bail "carved snapcap did not start"
ctl_json vm create carve-snap-c1 --vcpus 1 --memory 1024 >/dev/null
tap_is "$(ctl_json vm snapshot create carve-snap-c1 a | jq -r .status)" succeeded "1 GiB of 2 free: fits"
tap_is "$(ctl_json vm snapshot create carve-snap-c1 b | jq -r .status)" succeeded "2 GiB of 2: fits"
r=$(ctl_json vm snapshot create carve-snap-c1 c)
tap_is "$(printf '%s' "$r" | jq -r .error.code)" insufficient_capacity "a third: insufficient_capacity"
tap_like "$(printf '%s' "$r" | jq -r .error.message)" "*DISK_GIB*" "naming DISK_GIB"
tap_is "$(ctl_json vm snapshot delete carve-snap-c1 a | jq -r .status)" succeeded "delete one"
tap_is "$(ctl_json vm snapshot create carve-snap-c1 c | jq -r .status)" succeeded "and there is room again"
carved_stop

# -- through carve-cp --------------------------------------------------------------
cp_setup
tap_at_exit cp_stop
cp_start --heartbeat-interval 1 || tap_bail "carve-cp did not start"
carved_setup_cp snapcp test:///default
carved_start || tap_bail "carved snapcp did not start"
tap_ok "node enrolled and up" cp_wait_node_up snapcp

# Wait until command $1 has a final status; print the command record.
cmd_done() {
	_i=0
	while [ $_i -lt 100 ]; do
		_r=$(cp_admin GET "/v1/commands/$1")
		case "$(printf '%s' "$_r" | jq -r .status)" in
		succeeded|failed) printf '%s' "$_r"; return 0 ;;
		esac
		sleep 0.1; _i=$((_i + 1))
	done
	printf '%s' "$_r"
}
cp_snaps() { cp_admin GET "/v1/vms/$1/snapshots" | jq -r '[.snapshots[] | .name + ":" + .kind] | join(",")'; }

r=$(cp_admin POST /v1/vms '{"name":"carve-snap-cp1","vcpus":1,"memory_mib":128}')
vm=$(printf '%s' "$r" | jq -r .id)
tap_is "$(cmd_done "$(printf '%s' "$r" | jq -r .command_id)" | jq -r .status)" succeeded "a VM through carve-cp"
r=$(cp_admin POST "/v1/vms/$vm/snapshots" '{"name":"s1","kind":"full"}')
tap_is "$(cp_code)" 202 "POST /v1/vms/{id}/snapshots: 202"
c=$(printf '%s' "$r" | jq -r .command_id)
tap_is "$(cmd_done "$c" | jq -r '.status + " " + .result.name + " " + .result.kind')" "succeeded s1 full" \
    "the snapshot command succeeded"
tap_ok "GET /v1/vms/{id}/snapshots lists it (from the heartbeat)" \
    wait_for "s1 reported" 15 sh -c "[ \"\$(curl -s --cacert '$CP_DIR/ca.crt' -H \"Authorization: Bearer \$(cat '$CP_DIR/admin.token')\" '$CP_URL/v1/vms/$vm/snapshots' | jq -r '[.snapshots[].name] | join(\",\")')\" = s1 ]"
tap_is "$(cp_snaps "$vm")" "s1:full" "with its kind"
r=$(cp_admin POST "/v1/vms/$vm/snapshots" '{"name":"s1","kind":"disk"}')
tap_is "$(cmd_done "$(printf '%s' "$r" | jq -r .command_id)" | jq -r '.status + " " + .error.code')" \
    "failed conflict" "a second s1: the command fails with conflict"
r=$(cp_admin POST "/v1/vms/$vm/snapshots/s1/revert")
tap_is "$(cp_code)" 202 "POST /v1/vms/{id}/snapshots/{name}/revert: 202"
tap_is "$(cmd_done "$(printf '%s' "$r" | jq -r .command_id)" | jq -r '.status + " " + .result.state')" \
    "succeeded running" "the revert succeeded"
r=$(cp_admin POST "/v1/vms/$vm/snapshots/nope/revert")
tap_is "$(cmd_done "$(printf '%s' "$r" | jq -r .command_id)" | jq -r '.status + " " + .error.code')" \
    "failed not_found" "reverting to an unknown one: not_found"
r=$(cp_admin DELETE "/v1/vms/$vm/snapshots/s1")
tap_is "$(cp_code)" 202 "DELETE /v1/vms/{id}/snapshots/{name}: 202"
tap_is "$(cmd_done "$(printf '%s' "$r" | jq -r .command_id)" | jq -r '.status + " " + (.result.deleted|tostring)')" \
    "succeeded true" "the delete succeeded"
tap_ok "and the list is empty again" \
    wait_for "s1 gone" 15 sh -c "[ \"\$(curl -s --cacert '$CP_DIR/ca.crt' -H \"Authorization: Bearer \$(cat '$CP_DIR/admin.token')\" '$CP_URL/v1/vms/$vm/snapshots' | jq -c .snapshots)\" = '[]' ]"
# The API's own refusals.
cp_admin POST "/v1/vms/$vm/snapshots" '{"name":"a b","kind":"full"}' >/dev/null
tap_is "$(cp_code)" 400 "a bad name in the body: 400"
cp_admin POST "/v1/vms/$vm/snapshots" '{"name":"a"}' >/dev/null
tap_is "$(cp_code)" 400 "no kind: 400"
cp_admin POST "/v1/vms/$vm/snapshots" '{"name":"a","kind":"full","quiesce":true}' >/dev/null
tap_is "$(cp_code)" 400 "quiesce with full: 400"
cp_admin POST "/v1/vms/$vm/snapshots/a%20b/revert" >/dev/null
tap_is "$(cp_code)" 400 "a bad name in the path: 400"
cp_admin POST "/v1/vms/$vm/snapshots/s1/revert" '{"force":true}' >/dev/null
tap_is "$(cp_code)" 400 "a revert takes no body: 400"
cp_admin GET "/v1/vms/2b0e0a4c-95c4-4a57-a5d4-1d1a5d0c1f00/snapshots" >/dev/null
tap_is "$(cp_code)" 404 "snapshots of an unknown VM: 404"
cp_admin DELETE "/v1/vms/2b0e0a4c-95c4-4a57-a5d4-1d1a5d0c1f00/snapshots/s1" >/dev/null
tap_is "$(cp_code)" 404 "deleting a snapshot of an unknown VM: 404"
cp_admin GET "/v1/vms/$vm/snapshots/s1" >/dev/null
tap_is "$(cp_code)" 405 "GET on a snapshot: 405"
carved_stop
tap_done
