#!/bin/sh
# carve-cp + carved (libvirtd's test driver, so libvirt state outlives
# carved): the control plane killed while a command runs -> the command
# finishes and its result arrives after the restart; carved killed -9
# mid-command -> recovered, re-delivered, answered once; hostile commands
# in the control plane's queue -> invalid_argument results, the agent goes
# on; a silent node is marked down.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/e2e.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/libvirtd.sh"
command -v jq >/dev/null || tap_skip_all "jq not installed"
command -v sqlite3 >/dev/null || tap_skip_all "sqlite3 not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "needs root (libvirtd)"

tmpdir_setup
libvirtd_ensure || tap_bail "libvirtd not available"
tap_at_exit libvirtd_stop_if_started
URI=test+unix:///default
virsh -c $URI event --all --loop >/dev/null 2>&1 &
holder=$!
tap_at_exit "kill $holder 2>/dev/null"
sleep 0.3
ndoms() { virsh -c $URI list --all --name | grep -c "^$1\$"; }

cp_setup
tap_at_exit cp_stop
tap_at_exit carved_stop_all
CPARGS="--heartbeat-interval 1 --node-ttl 3 --poll-timeout 5"
# shellcheck disable=SC2086
cp_start $CPARGS || tap_bail "carve-cp did not start"
carved_setup_cp n1 "$URI"
carved_start || tap_bail "carved did not start"
tap_ok "node up" cp_wait_node_up n1

cmd_status() { cp_admin GET "/v1/commands/$1" | jq -r .status; }
wait_status() { # ID STATUS SECONDS
	wait_for "command $1 $2" "$3" sh -c "[ \"\$(curl -s --cacert '$CP_DIR/ca.crt' -H \"Authorization: Bearer \$(cat '$CP_DIR/admin.token')\" '$CP_URL/v1/commands/$1' | jq -r .status)\" = '$2' ]"
}

r=$(cp_admin POST /v1/vms '{"name":"vm1","vcpus":1,"memory_mib":128}')
tap_ok "a first VM is made" wait_status "$(printf '%s' "$r" | jq -r .command_id)" succeeded 20

# -- the control plane dies while a command runs ------------------------------
carved_stop
carved_start CARVED_TEST_DELAY_BEFORE_MS=3000 || tap_bail "carved did not restart"
r=$(cp_admin POST /v1/vms '{"name":"vm2","vcpus":1,"memory_mib":128}')
c2=$(printf '%s' "$r" | jq -r .command_id)
v2=$(printf '%s' "$r" | jq -r .id)
tap_ok "vm2's command reaches the agent" wait_for "running" 10 sh -c \
    "'$CARVECTL_BIN' -s '$CARVED_DIR/carved.sock' --json status | jq -e '.inflight[] | select(.command_id==\"$c2\")'"
cp_kill9
tap_ok "with carve-cp gone, the command still finishes on the agent" wait_for "vm2 running" 15 sh -c \
    "'$CARVECTL_BIN' -s '$CARVED_DIR/carved.sock' --json vm show vm2 | jq -e '.state==\"running\"'"
tap_ok "carved shows the outage and keeps the result to deliver" wait_for "outbox" 10 sh -c \
    "'$CARVECTL_BIN' -s '$CARVED_DIR/carved.sock' --json status | jq -e '.control_plane.state != \"connected\" and .control_plane.outbox >= 1'"
tap_is "$(ctl_json status | jq -r '.control_plane.last_error | length > 0')" true "status names the last control-plane error"
tap_is "$(virsh -c $URI domstate vm1 | head -1)" running "VMs keep running without the control plane"
# shellcheck disable=SC2086
cp_start $CPARGS || tap_bail "carve-cp did not restart"
tap_ok "after the restart the result arrives" wait_status "$c2" succeeded 60
tap_is "$(cp_admin GET "/v1/vms/$v2" | jq -r .state)" running "and the VM's state converges"
tap_is "$(ndoms vm2)" 1 "vm2 was made once"

# -- carved killed -9 mid-command ---------------------------------------------
carved_stop
carved_start CARVED_TEST_DELAY_AFTER_MS=3000 || tap_bail "carved did not restart"
r=$(cp_admin POST /v1/vms '{"name":"vm3","vcpus":1,"memory_mib":128}')
c3=$(printf '%s' "$r" | jq -r .command_id)
tap_ok "vm3 is made by the agent" wait_for "vm3 defined" 10 sh -c "virsh -c $URI list --all --name | grep -qx vm3"
carved_kill9
carved_start || tap_bail "carved did not restart"
tap_ok "after carved's restart the command is answered" wait_status "$c3" succeeded 30
tap_is "$(ndoms vm3)" 1 "vm3 exists once"
tap_like "$(cat "$CARVED_DIR/carved.log")" "*accepted but never finished*" "carved recovered it from its journal"

# -- hostile commands in the queue ----------------------------------------------
b1=0b0b0b0b-0000-4000-8000-000000000001
b2=0b0b0b0b-0000-4000-8000-000000000002
now=$(date +%s%3N)
sqlite3 "$CP_DIR/carve-cp.db" "
INSERT INTO commands(id,node,vm_id,type,command,status,created_at) VALUES
 ('$b1','n1','$v2','vm.explode','{\"id\":\"$b1\",\"type\":\"vm.explode\",\"vm_id\":\"$v2\",\"args\":{}}','pending',$now),
 ('$b2','n1','$v2','vm.stop','{\"id\":\"$b2\",\"type\":\"vm.stop\",\"vm_id\":\"$v2\",\"args\":{\"force\":\"yes\",\"timeout_s\":5}}','pending',$now);"
r=$(cp_admin POST /v1/vms '{"name":"vm4","vcpus":1,"memory_mib":128}')
tap_ok "an unknown command type gets a failed result" wait_status "$b1" failed 30
tap_is "$(cp_admin GET "/v1/commands/$b1" | jq -r .error.code)" invalid_argument "... with invalid_argument"
tap_ok "a type-confused command reaches carved and gets a failed result" wait_status "$b2" failed 30
tap_is "$(cp_admin GET "/v1/commands/$b2" | jq -r .error.code)" invalid_argument "... with invalid_argument"
tap_ok "and the agent goes on: the next command runs" wait_status "$(printf '%s' "$r" | jq -r .command_id)" succeeded 30
tap_is "$(virsh -c $URI domstate vm2 | head -1)" running "the hostile stop did nothing"
tap_ok "carved is still running" kill -0 "$CARVED_PID"

# -- a silent node is marked down ---------------------------------------------------
carved_stop
tap_ok "a node that stops heartbeating is marked down" wait_for "n1 down" 15 sh -c \
    "curl -s --cacert '$CP_DIR/ca.crt' -H \"Authorization: Bearer \$(cat '$CP_DIR/admin.token')\" '$CP_URL/v1/nodes/n1' | jq -e '.up == false'"
tap_is "$(cp_admin POST /v1/vms '{"name":"vm5","vcpus":1,"memory_mib":128}' | jq -r .error.code)" \
    insufficient_capacity "nothing is placed on a down node"
for d in vm1 vm2 vm3 vm4; do virsh -c $URI destroy $d >/dev/null 2>&1; virsh -c $URI undefine $d >/dev/null 2>&1; done
tap_done
