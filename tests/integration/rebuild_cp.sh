#!/bin/sh
# carve-cp's side of data disks and vm.rebuild, driven with curl as an
# operator and one enrolled node: a VM created with data disks is placed by
# root + data disks and its command carries them; POST .../actions
# {"action":"rebuild"} queues a vm.rebuild (with the image when one is
# given) and keeps the VM's desired state; what does not belong to a
# rebuild is refused with 400.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/cp.sh"
for t in jq curl openssl; do
	command -v $t >/dev/null || tap_skip_all "$t not installed"
done

tmpdir_setup
tap_at_exit cp_stop
N=$TEST_TMPDIR/nodes
mkdir -p "$N"
st() { cp_status "$1"; }
body() { cp_body "$1"; }
code() { cp_body "$1" | jq -r '.error.code // "none"'; }
SUM=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

cp_init || tap_bail "carve-cp init failed"
cp_start --heartbeat-interval 5 --node-ttl 60 --poll-timeout 5 || tap_bail "carve-cp did not start"
cp_enroll rbnode "$N" || tap_bail "cannot enroll"
cap='{"VCPU":{"total":8,"reserved":0,"allocation_ratio":1.0,"allocated":0,"allocatable":8,"free":8},
 "MEMORY_MIB":{"total":16384,"reserved":0,"allocation_ratio":1.0,"allocated":0,"allocatable":16384,"free":16384},
 "DISK_GIB":{"total":100,"reserved":0,"allocation_ratio":1.0,"allocated":0,"allocatable":100,"free":100}}'
reg=$(jq -n --argjson cap "$cap" '{agent_version:"0.1.0",schedulable:true,host:{hostname:"h1",cpus:8},capacity:$cap}')
[ "$(st "$(cp_node rbnode "$N" PUT /v1/nodes/rbnode "$reg")")" = 200 ] || tap_bail "cannot register"
hb=$(jq -n --argjson cap "$cap" '{seq:1,full:true,vms:[],removed:[],capacity:$cap}')
[ "$(st "$(cp_node rbnode "$N" POST /v1/nodes/rbnode/heartbeat "$hb")")" = 200 ] || tap_bail "no heartbeat"
cur=0
# The next command delivered to the node (its "command" object).
next_cmd() {
	_o=$(cp_node rbnode "$N" GET "/v1/nodes/rbnode/commands?cursor=$cur&wait_s=1")
	_n=$(body "$_o" | jq '.commands | length')
	[ "$_n" -gt 0 ] || { echo '{}'; return; }
	cur=$(body "$_o" | jq .cursor)
	body "$_o" | jq -c '.commands[-1].command'
}

# -- data disks count in DISK_GIB --------------------------------------------
out=$(cp_admin POST /v1/vms '{"name":"carve-rbcp1","vcpus":1,"memory_mib":512,"disk_gib":10,"data_disks":[{"size_gib":50},{"size_gib":30}]}')
tap_is "$(st "$out")" 202 "create with two data disks accepted"
vm=$(body "$out" | jq -r .id)
tap_is "$(next_cmd | jq -c '[.type, .args.data_disks]')" '["vm.create",[{"size_gib":50},{"size_gib":30}]]' \
    "the node gets the data disks in the vm.create"
tap_is "$(body "$(cp_admin GET /v1/vms/$vm)" | jq .disk_gib)" 90 "the VM record counts root + data disks"
out=$(cp_admin POST /v1/vms '{"name":"carve-rbcp2","vcpus":1,"memory_mib":512,"disk_gib":5,"data_disks":[{"size_gib":6}]}')
tap_is "$(st "$out") $(code "$out")" "409 insufficient_capacity" "a VM whose data disks do not fit is not placed"
out=$(cp_admin POST /v1/vms '{"name":"carve-rbcp2","vcpus":1,"memory_mib":512,"data_disks":[{"size_gib":0}]}')
tap_is "$(st "$out") $(code "$out")" "400 invalid_argument" "a data disk of 0 GiB: 400"

# -- the rebuild action ------------------------------------------------------------
out=$(cp_admin POST /v1/vms/$vm/actions '{"action":"rebuild"}')
tap_is "$(st "$out")" 202 "rebuild accepted"
rb1=$(body "$out" | jq -r .command_id)
tap_is "$(next_cmd | jq -c '[.id == $c, .type, .vm_id == $v, .args]' --arg c "$rb1" --arg v "$vm")" \
    '[true,"vm.rebuild",true,{}]' "the node gets a vm.rebuild without an image"
tap_is "$(body "$(cp_admin GET /v1/vms/$vm)" | jq -c '[.desired_state, .last_command_id == $c]' --arg c "$rb1")" \
    '["running",true]' "the VM's last command is the rebuild; desired state kept"
out=$(cp_admin POST /v1/vms/$vm/actions "{\"action\":\"rebuild\",\"image\":{\"url\":\"https://img.example/d13.qcow2\",\"sha256\":\"$SUM\",\"format\":\"qcow2\"}}")
tap_is "$(st "$out")" 202 "rebuild onto another image accepted"
tap_is "$(next_cmd | jq -c '[.type, .args.image.url, .args.image.format]')" \
    '["vm.rebuild","https://img.example/d13.qcow2","qcow2"]' "the node gets the image with it"
cp_admin POST /v1/vms/$vm/actions '{"action":"stop"}' >/dev/null
next_cmd >/dev/null
out=$(cp_admin POST /v1/vms/$vm/actions '{"action":"rebuild"}')
tap_is "$(body "$(cp_admin GET /v1/vms/$vm)" | jq -r .desired_state)" stopped "rebuilding a stopped VM keeps it stopped"

out=$(cp_admin POST /v1/vms/$vm/actions '{"action":"rebuild","force":true}')
tap_is "$(st "$out") $(code "$out")" "400 invalid_argument" "force with rebuild: 400"
out=$(cp_admin POST /v1/vms/$vm/actions "{\"action\":\"start\",\"image\":{\"url\":\"https://a/x\",\"sha256\":\"$SUM\",\"format\":\"raw\"}}")
tap_is "$(st "$out") $(body "$out" | jq -r .error.message)" "400 image applies to the rebuild action only" "an image with start: 400"
out=$(cp_admin POST /v1/vms/$vm/actions "{\"action\":\"rebuild\",\"image\":{\"url\":\"ftp://a/x\",\"sha256\":\"$SUM\",\"format\":\"raw\"}}")
tap_is "$(st "$out") $(code "$out")" "400 invalid_argument" "an image URL of another scheme: 400"
out=$(cp_admin POST /v1/vms/$vm/actions '{"action":"rebuild","image":{"url":"https://a/x"}}')
tap_is "$(st "$out") $(code "$out")" "400 invalid_argument" "an incomplete image: 400"
out=$(cp_admin POST /v1/vms/2b0e0a4c-95c4-4a57-a5d4-1d1a5d0c1f00/actions '{"action":"rebuild"}')
tap_is "$(st "$out") $(code "$out")" "404 not_found" "rebuilding an unknown VM: 404"
cp_admin DELETE /v1/vms/$vm >/dev/null
out=$(cp_admin POST /v1/vms/$vm/actions '{"action":"rebuild"}')
tap_is "$(st "$out") $(code "$out")" "409 conflict" "rebuilding a VM being deleted: 409"
cp_stop
tap_is "$?" 0 "carve-cp exits cleanly (no leaks)"
tap_done
