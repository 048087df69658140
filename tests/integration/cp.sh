#!/bin/sh
# carve-cp alone, driven with curl and openssl the way an agent and an
# operator would: init, the admin API's credentials and error codes, TLS and
# client-certificate checks, enrollment, registration, heartbeats, the long
# poll and how fast a new command wakes it, results and progress, node
# liveness, a restart that keeps everything, short-lived certificates, and
# a clean exit with sanitizers watching.
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
now_ms() { date +%s%3N; }

# -- init ------------------------------------------------------------------
tap_ok "init makes the directory" cp_init
tap_is "$(stat -c '%a' "$CP_DIR/ca.key" "$CP_DIR/server.key" \
    "$CP_DIR/admin.token" "$CP_DIR/bootstrap.token" | tr '\n' ' ')" \
    "600 600 600 600 " "keys and tokens are 0600"
tap_ok "the CA verifies the server certificate" \
    openssl verify -CAfile "$CP_DIR/ca.crt" -purpose sslserver "$CP_DIR/server.crt"
"$CP_BIN" init --dir "$CP_DIR" >/dev/null 2>&1
tap_is "$?" 1 "init refuses to overwrite without --force"

cp_start --heartbeat-interval 1 --node-ttl 2 --poll-timeout 5 \
    --cert-days 1 || tap_bail "carve-cp did not start"

# -- admin credentials and errors ---------------------------------------------
out=$(_cp_curl GET /v1/nodes "")
tap_is "$(st "$out") $(code "$out")" "401 unauthenticated" "admin call without a token: 401"
out=$(_cp_curl GET /v1/nodes "" -H "Authorization: Bearer $CP_BOOTSTRAP")
tap_is "$(st "$out") $(code "$out")" "401 unauthenticated" "the bootstrap token is not an admin token"
out=$(_cp_curl GET /v1/vms "" -H "Authorization: Bearer ${CP_ADMIN}0")
tap_is "$(st "$out")" 401 "wrong admin token: 401"
out=$(cp_admin GET /v1/nodes)
tap_is "$(st "$out") $(body "$out")" "200 []" "admin lists no nodes yet"
out=$(cp_admin POST /v1/vms '{"name":"a","vcpus":1,')
tap_is "$(st "$out") $(code "$out")" "400 invalid_argument" "malformed JSON: 400"
out=$(cp_admin POST /v1/vms '{"name":"a","vcpus":1,"memory_mib":128,"colour":"red"}')
tap_is "$(st "$out") $(code "$out")" "400 invalid_argument" "unknown key: 400"
out=$(cp_admin POST /v1/vms '{"name":"a<b","vcpus":1,"memory_mib":128}')
tap_is "$(st "$out") $(code "$out")" "400 invalid_argument" "bad VM name: 400"
out=$(cp_admin GET /v1/vms/2b0e0a4c-95c4-4a57-a5d4-1d1a5d0c1f00)
tap_is "$(st "$out") $(code "$out")" "404 not_found" "unknown VM: 404"
out=$(cp_admin GET /v1/vms/not-a-uuid)
tap_is "$(st "$out") $(code "$out")" "404 not_found" "VM id that is no UUID: 404"
out=$(cp_admin GET /v1/nodes/nosuch)
tap_is "$(st "$out") $(code "$out")" "404 not_found" "unknown node: 404"
out=$(cp_admin GET /v1/nothing)
tap_is "$(st "$out") $(code "$out")" "404 not_found" "unknown endpoint: 404"
out=$(cp_admin PUT /v1/vms '{}')
tap_is "$(st "$out")" 405 "wrong method: 405"
head -c 1100000 /dev/zero | tr '\0' ' ' > "$TEST_TMPDIR/big"
tap_is "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CP_DIR/ca.crt" \
    -H "Authorization: Bearer $CP_ADMIN" --data-binary @"$TEST_TMPDIR/big" \
    "$CP_URL/v1/vms")" 413 "body over 1 MiB: 413"

# -- TLS ---------------------------------------------------------------------
tap_is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$CP_PORT/v1/nodes")" \
    000 "plain HTTP gets no answer"
# The client's own security level would refuse TLS 1.1 first: lower it, so
# that it is the server that says no.
tap_like "$(curl -sv -o /dev/null --tlsv1.0 --tls-max 1.1 \
    --ciphers 'DEFAULT@SECLEVEL=0' --cacert "$CP_DIR/ca.crt" \
    "$CP_URL/v1/nodes" 2>&1)" "*alert protocol version*" \
    "TLS 1.1 is refused by the server (protocol_version alert)"
tap_is "$(curl -s -o /dev/null -w '%{http_code}' --tlsv1.2 --tls-max 1.2 \
    --cacert "$CP_DIR/ca.crt" -H "Authorization: Bearer $CP_ADMIN" \
    "$CP_URL/v1/nodes")" 200 "TLS 1.2 is accepted"

# -- enroll ------------------------------------------------------------------
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj /CN=node1 -keyout "$N/x.key" -out "$N/x.csr" 2>/dev/null
req=$(jq -n --rawfile csr "$N/x.csr" '{node:"node1",csr:$csr}')
out=$(_cp_curl POST /v1/enroll "$req" -H "Authorization: Bearer $CP_ADMIN")
tap_is "$(st "$out") $(code "$out")" "401 unauthenticated" "enroll with the admin token: 401"
out=$(_cp_curl POST /v1/enroll "$req")
tap_is "$(st "$out")" 401 "enroll without a token: 401"
req=$(jq -n --rawfile csr "$N/x.csr" '{node:"node2",csr:$csr}')
out=$(_cp_curl POST /v1/enroll "$req" -H "Authorization: Bearer $CP_BOOTSTRAP")
tap_is "$(st "$out") $(code "$out")" "400 invalid_argument" "CSR whose CN is another node: 400"
t0=$(now_ms)
req=$(jq -n --rawfile csr "$N/x.csr" '{node:"node1",csr:$csr}')
out=$(_cp_curl POST /v1/enroll "$req" -H "Authorization: Bearer $CP_BOOTSTRAP")
tap_is "$(st "$out")" 200 "enroll with the bootstrap token"
body "$out" | jq -r .certificate > "$N/node1.crt"
cp "$N/x.key" "$N/node1.key"
tap_ok "the issued certificate is a client certificate from the CA" \
    openssl verify -CAfile "$CP_DIR/ca.crt" -purpose sslclient "$N/node1.crt"
tap_is "$(openssl x509 -in "$N/node1.crt" -noout -subject -ext extendedKeyUsage | tr -d '\n ')" \
    "subject=CN=node1X509v3ExtendedKeyUsage:TLSWebClientAuthentication" \
    "subject CN=node1, clientAuth only"
exp=$(body "$out" | jq .expires_at)
tap_like "$(( (exp - t0) / 1000 ))" "8639[0-9]" "expires_at is --cert-days 1 ahead"
tap_is "$(body "$out" | jq -r .ca)" "$(cat "$CP_DIR/ca.crt")" "the answer carries the CA"
cp_enroll node2 "$N" || tap_bail "cannot enroll node2"

# -- register --------------------------------------------------------------------
cap='{"VCPU":{"total":8,"reserved":0,"allocation_ratio":4.0,"allocated":0,"allocatable":32,"free":32},
 "MEMORY_MIB":{"total":16384,"reserved":1024,"allocation_ratio":1.0,"allocated":0,"allocatable":15360,"free":15360},
 "DISK_GIB":{"total":100,"reserved":0,"allocation_ratio":1.0,"allocated":0,"allocatable":100,"free":100}}'
reg=$(jq -n --argjson cap "$cap" '{agent_version:"0.1.0",schedulable:true,host:{hostname:"h1",cpus:8},capacity:$cap}')
out=$(cp_node node1 "$N" PUT /v1/nodes/node1 "$reg")
tap_is "$(st "$out") $(body "$out")" \
    '200 {"heartbeat_interval_s":1,"poll_timeout_s":5,"node_ttl_s":2}' \
    "register answers the server-directed intervals"
out=$(_cp_curl PUT /v1/nodes/node1 "$reg")
tap_is "$(st "$out") $(code "$out")" "401 unauthenticated" "register without a client certificate: 401"
out=$(cp_node node1 "$N" PUT /v1/nodes/node2 "$reg")
tap_is "$(st "$out") $(code "$out")" "403 permission_denied" "node1's certificate for node2's path: 403"
out=$(cp_node node1 "$N" PUT /v1/nodes/node1 '{"agent_version":"0.1.0"}')
tap_is "$(st "$out") $(code "$out")" "400 invalid_argument" "incomplete registration: 400"
out=$(_cp_curl PUT /v1/nodes/node1 "$reg" --cert "$CP_DIR/server.crt" --key "$CP_DIR/server.key")
tap_is "$(st "$out")" 000 "the server certificate is refused as a client certificate"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=node1 -keyout "$N/foreign.key" -out "$N/foreign.crt" 2>/dev/null
out=$(cp_node foreign "$N" PUT /v1/nodes/node1 "$reg")
tap_is "$(st "$out")" 000 "a certificate from another CA is refused"
tap_like "$(grep 'client certificate refused' "$CP_DIR/carve-cp.log" | tail -1)" \
    "*reason=*subject=*" "the refusal is logged with its reason"
out=$(cp_node node2 "$N" PUT /v1/nodes/node2 "$(printf '%s' "$reg" | jq '.host.hostname="h2"')")
tap_is "$(st "$out")" 200 "node2 registers"

# -- heartbeat -------------------------------------------------------------------
hb() { jq -n --argjson cap "$cap" --argjson seq "$1" --argjson full "$2" \
    --argjson vms "${3:-[]}" --argjson rm "${4:-[]}" \
    '{seq:$seq,full:$full,vms:$vms,removed:$rm,capacity:$cap}'; }
out=$(cp_node node1 "$N" POST /v1/nodes/node1/heartbeat "$(hb 1 true)")
tap_is "$(st "$out") $(body "$out")" '200 {"ack":1,"resync":false,"heartbeat_interval_s":1}' \
    "full heartbeat acknowledged"
out=$(cp_node node1 "$N" POST /v1/nodes/node1/heartbeat "$(hb 3 false)")
tap_is "$(body "$out" | jq -c '[.ack,.resync]')" "[3,true]" "a gap in seq asks for a resync"
out=$(cp_node node1 "$N" POST /v1/nodes/node1/heartbeat "$(hb 4 true)")
tap_is "$(body "$out" | jq -c '[.ack,.resync]')" "[4,false]" "the full one after it is accepted"
out=$(cp_admin GET /v1/nodes)
tap_is "$(body "$out" | jq -c '[.[] | [.name,.up,.schedulable,.host.hostname,.vms]]')" \
    '[["node1",true,true,"h1",0],["node2",true,true,"h2",0]]' "nodes are listed up, by name"

# -- scheduling, long poll and its wake-up ----------------------------------------
cur=0
poll_bg() {	# poll_bg CURSOR WAIT OUTFILE: background poll, end time in OUTFILE.t
	( cp_node node1 "$N" GET "/v1/nodes/node1/commands?cursor=$1&wait_s=$2" > "$3"
	  now_ms > "$3.t" ) &
	POLL_PID=$!
}
poll_bg $cur 5 "$TEST_TMPDIR/p1"
sleep 0.5
tap_is "$(cat "$TEST_TMPDIR/p1.t" 2>/dev/null)" "" "the long poll is parked"
t0=$(now_ms)
out=$(cp_admin POST /v1/vms '{"name":"web1","vcpus":2,"memory_mib":4096,"disk_gib":10}')
t1=$(now_ms)
wait $POLL_PID
tw=$(cat "$TEST_TMPDIR/p1.t")
tap_is "$(st "$out")" 202 "VM create accepted"
vm1=$(body "$out" | jq -r .id)
cmd1=$(body "$out" | jq -r .command_id)
node_of_vm1=$(body "$out" | jq -r .node)
tap_like "$node_of_vm1" "node[12]" "the scheduler picked a node"
poll=$(body "$(cat "$TEST_TMPDIR/p1")")
tap_is "$(printf '%s' "$poll" | jq -r '.commands[0].command.id')" "$cmd1" \
    "the parked poll got the new command"
tap_diag "long-poll wake: poll answered $((tw - t0)) ms after the POST was sent (the POST itself took $((t1 - t0)) ms, TLS handshake included)"
if [ $((tw - t0)) -lt 500 ]; then
	tap_pass "woken within 500 ms"
else
	tap_fail "woken within 500 ms" "took $((tw - t0)) ms"
fi
# Server side: from the commit to the answer.
q=$(grep "command queued.*id=$cmd1" "$CP_DIR/carve-cp.log" | sed 's/^ts=\([^ ]*\).*/\1/')
a=$(grep 'uri="/v1/nodes/node1/commands?cursor=0&wait_s=5" status=200' "$CP_DIR/carve-cp.log" | tail -1 | sed 's/^ts=\([^ ]*\).*/\1/')
tap_diag "server log: queued at $q, poll answered at $a"
if [ "$node_of_vm1" != node1 ]; then
	tap_fail "the VM went to node1" "node1 has the same free memory; ties go by name"
else
	tap_pass "the VM went to node1 (tie on free memory broken by name)"
fi
cur=$(printf '%s' "$poll" | jq .cursor)
tap_is "$(printf '%s' "$poll" | jq -c '.commands[0].command | [.type,.vm_id,.args.name,.args.memory_mib]')" \
    "[\"vm.create\",\"$vm1\",\"web1\",4096]" "the command is the vm.create in wire form"

out=$(cp_admin POST /v1/vms '{"name":"web2","vcpus":2,"memory_mib":4096}')
tap_is "$(body "$out" | jq -r .node)" node2 "the next VM goes to the node with more room (claims counted)"
out=$(cp_admin POST /v1/vms '{"name":"web1","vcpus":1,"memory_mib":128}')
tap_is "$(st "$out") $(code "$out")" "409 conflict" "duplicate VM name: 409"
out=$(cp_admin POST /v1/vms '{"name":"huge","vcpus":1,"memory_mib":65536}')
tap_is "$(st "$out") $(code "$out")" "409 insufficient_capacity" "no node fits: 409 insufficient_capacity"
out=$(cp_admin POST /v1/vms '{"name":"x1","vcpus":1,"memory_mib":128,"node":"nosuch"}')
tap_is "$(st "$out") $(code "$out")" "404 not_found" "named unknown node: 404"
out=$(cp_admin GET /v1/vms/$vm1)
tap_is "$(body "$out" | jq -c '[.name,.node,.desired_state,.state,.last_command_id==$c]' --arg c "$cmd1")" \
    '["web1","node1","running","pending",true]' "the VM is pending until the node reports"

out=$(cp_node node1 "$N" GET "/v1/nodes/node1/commands?cursor=$cur&wait_s=1")
tap_is "$(body "$out")" "{\"commands\":[],\"cursor\":$cur}" "a poll with nothing new times out empty, cursor kept"
out=$(cp_node node1 "$N" GET "/v1/nodes/node1/commands?cursor=0")
tap_is "$(body "$out" | jq -r '.commands[0].command.id')" "$cmd1" "cursor=0 delivers again what has no result"
out=$(cp_node node1 "$N" GET "/v1/nodes/node1/commands?cursor=0&wait_s=x")
tap_is "$(st "$out") $(code "$out")" "400 invalid_argument" "bad query: 400"
out=$(cp_node node1 "$N" GET "/v1/nodes/node2/commands")
tap_is "$(st "$out")" 403 "polling another node's commands: 403"

dropped=$(grep -c 'long poll dropped' "$CP_DIR/carve-cp.log")
curl -s -o /dev/null --cacert "$CP_DIR/ca.crt" --cert "$N/node1.crt" \
    --key "$N/node1.key" "$CP_URL/v1/nodes/node1/commands?cursor=$cur&wait_s=5" &
curl_pid=$!
sleep 0.3
kill $curl_pid
wait $curl_pid 2>/dev/null
sleep 0.3
tap_is "$(grep -c 'long poll dropped' "$CP_DIR/carve-cp.log")" "$((dropped + 1))" \
    "a parked poll whose client hangs up is dropped at once"

# -- progress and results ------------------------------------------------------
out=$(cp_node node1 "$N" POST /v1/commands/$cmd1/progress '{"percent":40,"message":"copying"}')
tap_is "$(st "$out") $(body "$out")" "200 {}" "progress accepted"
ts=$(now_ms)
res=$(jq -n --arg c "$cmd1" --arg v "$vm1" --argjson t "$ts" \
    '{command_id:$c,type:"vm.create",vm_id:$v,status:"succeeded",result:{vm_id:$v,name:"web1",state:"running"},accepted_at:$t,finished_at:$t}')
out=$(cp_node node2 "$N" POST /v1/commands/$cmd1/result "$res")
tap_is "$(st "$out") $(code "$out")" "403 permission_denied" "a result from another node: 403"
out=$(cp_node node1 "$N" POST /v1/commands/2b0e0a4c-95c4-4a57-a5d4-1d1a5d0c1f00/result "$res")
tap_is "$(st "$out") $(code "$out")" "404 not_found" "a result for an unknown command: 404"
cmdx=$(body "$(cp_admin GET /v1/vms)" | jq -r '.[] | select(.name=="web2") | .last_command_id')
out=$(cp_node node2 "$N" POST /v1/commands/$cmdx/result "$res")
tap_is "$(st "$out") $(code "$out")" "400 invalid_argument" "command_id not the path's: 400"
out=$(cp_node node1 "$N" POST /v1/commands/$cmd1/result "$res")
tap_is "$(st "$out") $(body "$out")" "200 {}" "result accepted"
out=$(cp_node node1 "$N" POST /v1/commands/$cmd1/result "$res")
tap_is "$(st "$out")" 200 "the same result again: 200 (idempotent)"
out=$(cp_admin GET /v1/commands/$cmd1)
tap_is "$(body "$out" | jq -c '[.status,.node,.result.state,.error,.progress.percent,(.delivered_at>0),(.finished_at>0)]')" \
    '["succeeded","node1","running",null,40,true,true]' "the command shows result, progress and times"
tap_is "$(body "$(cp_admin GET /v1/vms/$vm1)" | jq -r .state)" running "the VM takes the reported state"
out=$(cp_node node1 "$N" GET "/v1/nodes/node1/commands?cursor=0")
tap_is "$(body "$out" | jq '.commands | length')" 0 "a finished command is not delivered again"

vminfo=$(jq -n --arg v "$vm1" --arg c "$cmd1" --argjson t "$ts" \
    '[{id:$v,name:"web1",state:"paused",vcpus:2,memory_mib:4096,disk_gib:10,command_id:$c,created_at:$t}]')
out=$(cp_node node1 "$N" POST /v1/nodes/node1/heartbeat "$(hb 5 false "$vminfo")")
tap_is "$(body "$out" | jq -c '[.ack,.resync]')" "[5,false]" "heartbeat delta in sequence"
tap_is "$(body "$(cp_admin GET /v1/vms/$vm1)" | jq -r .state)" paused "the heartbeat's VM state shows"
tap_is "$(body "$(cp_admin GET /v1/nodes/node1)" | jq .vms)" 1 "the node reports one VM"

# -- actions and delete ------------------------------------------------------------
out=$(cp_admin POST /v1/vms/$vm1/actions '{"action":"stop","force":true}')
tap_is "$(st "$out")" 202 "stop accepted"
stop_cmd=$(body "$out" | jq -r .command_id)
out=$(cp_admin POST /v1/vms/$vm1/actions '{"action":"start","force":true}')
tap_is "$(st "$out") $(code "$out")" "400 invalid_argument" "force with start: 400"
tap_is "$(body "$(cp_admin GET /v1/vms/$vm1)" | jq -c '[.desired_state,.last_command_id==$c]' --arg c "$stop_cmd")" \
    '["stopped",true]' "desired state follows the action"
out=$(cp_node node1 "$N" GET "/v1/nodes/node1/commands?cursor=$cur")
tap_is "$(body "$out" | jq -c '.commands[0].command | [.type,.args.force]')" '["vm.stop",true]' \
    "the stop is delivered with its arguments"
out=$(cp_admin DELETE /v1/vms/$vm1)
tap_is "$(st "$out")" 202 "delete accepted"
del_cmd=$(body "$out" | jq -r .command_id)
out=$(cp_admin DELETE /v1/vms/$vm1)
tap_is "$(body "$out" | jq -r .command_id)" "$del_cmd" "a repeated delete answers the pending destroy"
out=$(cp_admin POST /v1/vms/$vm1/actions '{"action":"start"}')
tap_is "$(st "$out") $(code "$out")" "409 conflict" "an action on a VM being deleted: 409"

# -- liveness ---------------------------------------------------------------------
sleep 2.5
tap_is "$(body "$(cp_admin GET /v1/nodes)" | jq -c '[.[] | .up]')" "[false,false]" \
    "nodes without heartbeat for node_ttl are down"
out=$(cp_admin POST /v1/vms '{"name":"web3","vcpus":1,"memory_mib":128,"node":"node1"}')
tap_is "$(st "$out") $(code "$out")" "409 conflict" "creating on a down node: 409 conflict"
out=$(cp_admin POST /v1/vms '{"name":"web3","vcpus":1,"memory_mib":128}')
tap_is "$(st "$out") $(code "$out")" "409 insufficient_capacity" "the scheduler skips down nodes"

# -- restart: state survives, undelivered work is delivered again --------------------
poll_bg 0 5 "$TEST_TMPDIR/p3"
sleep 0.3
cp_stop
tap_is "$?" 0 "carve-cp exits 0 on SIGTERM with a poll parked (and no leaks)"
wait $POLL_PID 2>/dev/null
tap_like "$(tail -2 "$CP_DIR/carve-cp.log")" "*shutting down*stopped*" "it logs its shutdown"
cp_start --heartbeat-interval 1 --node-ttl 30 --poll-timeout 5 --cert-seconds 3 ||
    tap_bail "carve-cp did not restart"
tap_is "$(body "$(cp_admin GET /v1/vms)" | jq -c '[.[] | [.name,.desired_state]]')" \
    '[["web1","deleted"],["web2","running"]]' "VMs survive the restart"
out=$(cp_node node1 "$N" GET "/v1/nodes/node1/commands?cursor=0")
tap_is "$(body "$out" | jq -c '[.commands[].command.type]')" '["vm.stop","vm.destroy"]' \
    "commands without a result are delivered again after the restart"
out=$(cp_node node1 "$N" POST /v1/nodes/node1/heartbeat "$(hb 6 false)")
tap_is "$(body "$out" | jq -c '[.ack,.resync]')" "[6,false]" "the heartbeat sequence survives too"
ts=$(now_ms)
res=$(jq -n --arg c "$del_cmd" --arg v "$vm1" --argjson t "$ts" \
    '{command_id:$c,type:"vm.destroy",vm_id:$v,status:"succeeded",result:{vm_id:$v,destroyed:true},accepted_at:$t,finished_at:$t}')
out=$(cp_node node1 "$N" POST /v1/commands/$del_cmd/result "$res")
tap_is "$(st "$out")" 200 "destroy result accepted"
tap_is "$(st "$(cp_admin GET /v1/vms/$vm1)")" 404 "a destroyed VM is gone"
out=$(cp_admin POST /v1/vms '{"name":"web1","vcpus":1,"memory_mib":128,"node":"node1"}')
tap_is "$(st "$out")" 202 "its name can be used again"
ncmd=$(body "$out" | jq -r .command_id)
nvm=$(body "$out" | jq -r .id)
res=$(jq -n --arg c "$ncmd" --arg v "$nvm" --argjson t "$ts" \
    '{command_id:$c,type:"vm.create",vm_id:$v,status:"failed",error:{code:"insufficient_capacity",message:"no room"},accepted_at:$t,finished_at:$t}')
out=$(cp_node node1 "$N" POST /v1/commands/$ncmd/result "$res")
tap_is "$(body "$(cp_admin GET /v1/commands/$ncmd)" | jq -c '[.status,.error.code]')" \
    '["failed","insufficient_capacity"]' "a failed create shows its error"
tap_is "$(st "$(cp_admin GET /v1/vms/$nvm)")" 404 "and its VM does not stay behind"

# -- stored commands no agent can run ------------------------------------------------
if command -v sqlite3 >/dev/null; then
	b1=0b0b0b0b-0000-4000-8000-000000000001
	b2=0b0b0b0b-0000-4000-8000-000000000002
	b3=0b0b0b0b-0000-4000-8000-000000000003
	v=0b0b0b0b-0000-4000-8000-0000000000ff
	sqlite3 "$CP_DIR/carve-cp.db" "
INSERT INTO commands(id,node,vm_id,type,command,status,created_at) VALUES
 ('$b1','node1','$v','vm.explode','{\"id\":\"$b1\",\"type\":\"vm.explode\",\"vm_id\":\"$v\"}','pending',1),
 ('$b2','node1','$v','vm.stop','{\"id\":\"$b2\",\"type\":\"vm.stop\",\"vm_id\":\"$v\",\"args\":{\"timeout_s\":99999999999999999999}}','pending',1),
 ('$b3','node1','$v','vm.stop','{\"id\":\"$b3\",\"type\":\"vm.stop\",\"vm_id\":\"$v\",\"args\":{\"force\":\"yes\"}}','pending',1);"
	out=$(cp_node node1 "$N" GET "/v1/nodes/node1/commands?cursor=0")
	tap_is "$(body "$out" | jq -c '[.commands[].command.id]')" "[\"$stop_cmd\",\"$b3\"]" \
	    "a bad row does not block the queue; what an agent can answer is delivered"
	tap_is "$(body "$(cp_admin GET /v1/commands/$b1)" | jq -c '[.status,.error.code]')" \
	    '["failed","invalid_argument"]' "an unknown command type is refused by carve-cp"
	tap_is "$(body "$(cp_admin GET /v1/commands/$b2)" | jq -c '[.status,.error.code]')" \
	    '["failed","invalid_argument"]' "a stored command that is not strict JSON is refused"
	res=$(jq -n --arg c "$b3" --arg v "$v" --argjson t "$ts" \
	    '{command_id:$c,type:"vm.stop",vm_id:$v,status:"failed",error:{code:"invalid_argument",message:"force must be a boolean"},accepted_at:$t,finished_at:$t}')
	out=$(cp_node node1 "$N" POST /v1/commands/$b3/result "$res")
	tap_is "$(st "$out")" 200 "the agent's refusal of a type-confused command is taken"
else
	tap_skip "stored commands no agent can run" "sqlite3 not installed"
fi

# -- short-lived certificates ------------------------------------------------------
cp_enroll node3 "$N" || tap_bail "cannot enroll node3"
out=$(cp_node node3 "$N" PUT /v1/nodes/node3 "$reg")
tap_is "$(st "$out")" 200 "a fresh 3-second certificate works"
renew=$(jq -n --rawfile csr "$N/node3.csr" '{csr:$csr}')
out=$(cp_node node3 "$N" POST /v1/nodes/node3/renew "$renew")
tap_is "$(st "$out")" 200 "renewal with the current certificate"
body "$out" | jq -r .certificate > "$N/node3new.crt"
tap_is "$(openssl x509 -in "$N/node3new.crt" -noout -subject)" "subject=CN = node3" \
    "the renewed certificate is for the same node"
out=$(cp_node node3 "$N" POST /v1/nodes/node1/renew "$renew")
tap_is "$(st "$out")" 403 "renewing for another node: 403"
sleep 4
out=$(cp_node node3 "$N" PUT /v1/nodes/node3 "$reg")
tap_is "$(st "$out")" 000 "an expired certificate is refused"

cp_stop
tap_is "$?" 0 "carve-cp exits 0 on SIGTERM"
tap_done
