#!/bin/sh
# Admission against capacity on a test-driver host of 8 CPUs / 16 GiB:
# create until full -> insufficient_capacity with nothing made; reserve and
# allocation ratios change what fits; parallel creates never overcommit.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
command -v jq >/dev/null || tap_skip_all "jq not installed"

tmpdir_setup
node="test://$top_srcdir/tests/node-small.xml"
tap_at_exit carved_stop

status_of() { ctl_json "$@" 2>/dev/null | jq -r '.error.code // .status'; }

# -- ratio 1.0, no reserve: 8 vCPUs allocatable ------------------------------
carved_setup cap1 "$node" "[capacity]\nreserved_vcpus = 0\nreserved_memory_mib = 0\ncpu_allocation_ratio = 1.0\nram_allocation_ratio = 1.0"
carved_start || tap_bail "carved did not start"
for i in 1 2 3 4; do
	tap_is "$(status_of vm create vm$i --vcpus 2 --memory 1024)" succeeded "create vm$i (2 vCPUs) fits"
done
tap_is "$(status_of vm create vm5 --vcpus 2 --memory 1024)" insufficient_capacity "the fifth does not fit"
msg=$(ctl_json vm create vm5 --vcpus 2 --memory 1024 | jq -r .error.message)
tap_like "$msg" "*VCPU*" "the message names the resource class"
tap_is "$(ctl_json vm list | jq length)" 4 "the refused create made nothing"
tap_is "$(ctl_json capacity | jq -r '"\(.VCPU.allocatable) \(.VCPU.allocated) \(.VCPU.free)"')" "8 8 0" "capacity shows the host full"
tap_is "$(status_of vm create big --vcpus 1 --memory 20000)" invalid_argument "more memory than the host can ever give is invalid"
tap_is "$(status_of vm destroy vm4)" succeeded "destroy one"
tap_is "$(status_of vm create vm5 --vcpus 2 --memory 1024)" succeeded "its room is usable again"
carved_stop

# -- reserve and ratio --------------------------------------------------------
carved_setup cap2 "$node" "[capacity]\nreserved_vcpus = 2\nreserved_memory_mib = 4096\ncpu_allocation_ratio = 2.0\nram_allocation_ratio = 1.5"
carved_start || tap_bail "carved did not start"
cap=$(ctl_json capacity)
tap_is "$(printf '%s' "$cap" | jq -r '"\(.VCPU.total) \(.VCPU.reserved) \(.VCPU.allocatable)"')" "8 2 12" "VCPU allocatable = (8 - 2) * 2.0"
tap_is "$(printf '%s' "$cap" | jq -r '"\(.MEMORY_MIB.total) \(.MEMORY_MIB.allocatable)"')" "16384 18432" "MEMORY allocatable = (16384 - 4096) * 1.5"
for i in 1 2 3; do
	ctl_json vm create r$i --vcpus 4 --memory 512 >/dev/null
done
tap_is "$(ctl_json vm list | jq length)" 3 "three 4-vCPU VMs fit in 12"
tap_is "$(status_of vm create r4 --vcpus 1 --memory 512)" insufficient_capacity "a thirteenth vCPU does not"
tap_is "$(status_of vm create m1 --vcpus 0 --memory 512)" invalid_argument "0 vCPUs is invalid, not a capacity matter"
carved_stop

# -- parallel creates never overcommit (claims count while in flight) -------
carved_setup cap3 "$node" "[capacity]\nreserved_vcpus = 0\nreserved_memory_mib = 0\ncpu_allocation_ratio = 1.0"
carved_start CARVED_TEST_DELAY_BEFORE_MS=300 || tap_bail "carved did not start"
pids=
for i in 1 2 3 4 5 6 7 8; do
	ctl_json vm create p$i --vcpus 2 --memory 256 > "$CARVED_DIR/p$i.json" 2>/dev/null &
	pids="$pids $!"
done
wait $pids   # not a bare wait: carved is our child too
ok=$(cat "$CARVED_DIR"/p*.json | jq -r .status | grep -c succeeded)
full=$(cat "$CARVED_DIR"/p*.json | jq -r '.error.code // empty' | grep -c insufficient_capacity)
tap_is "$ok $full" "4 4" "8 parallel 2-vCPU creates on 8 vCPUs: 4 made, 4 refused"
tap_is "$(ctl_json vm list | jq length)" 4 "exactly 4 VMs exist"
tap_is "$(ctl_json capacity | jq -r .VCPU.allocated)" 8 "allocated equals the VMs made"

# An operator's client that gives up before its answer (Ctrl-C) must not
# take carved down with SIGPIPE; the command still completes.
victim=$(ctl_json vm list | jq -r '.[0].name')
timeout -s INT 0.1 "$CARVECTL_BIN" -s "$CARVED_DIR/carved.sock" vm destroy "$victim" >/dev/null 2>&1
sleep 0.6
tap_ok "carved survives a client that hung up early" kill -0 "$CARVED_PID"
tap_is "$(ctl_json vm list | jq length)" 3 "and the command it sent completed"
carved_stop
tap_is "$?" 0 "carved stops cleanly"
tap_done
