#!/bin/sh
# carve-cp + two carved (test-driver hosts of 8 CPUs/16 GiB and 32 CPUs/
# 64 GiB) over real mutual TLS on loopback: enrolment, registration,
# placement by capacity, insufficient_capacity when full, commands reaching
# the agents through the long poll, results and state reported back.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/e2e.sh"
command -v jq >/dev/null || tap_skip_all "jq not installed"
command -v curl >/dev/null || tap_skip_all "curl not installed"

tmpdir_setup
cp_setup
tap_at_exit cp_stop
tap_at_exit carved_stop_all
cp_start || tap_bail "carve-cp did not start"

carved_setup_cp small "test://$top_srcdir/tests/node-small.xml"
carved_start || tap_bail "carved small did not start"
mport=$(free_port)
carved_setup_cp big "test://$top_srcdir/tests/node-big.xml" "[metrics]
listen = 127.0.0.1:$mport"
carved_start || tap_bail "carved big did not start"
tap_ok "node small enrolled, registered and up" cp_wait_node_up small
tap_ok "node big enrolled, registered and up" cp_wait_node_up big

nodes=$(cp_admin GET /v1/nodes)
tap_is "$(printf '%s' "$nodes" | jq -r '[.[] | "\(.name):\(.up):\(.capacity.VCPU.total)"] | sort | join(" ")')" \
    "big:true:32 small:true:8" "GET /v1/nodes shows both nodes with their reported capacity"
tap_like "$(ls -l "$TEST_TMPDIR/small/state/")" "*client.key*" "the node's key was made on the host"
tap_is "$(stat -c %a "$TEST_TMPDIR/small/state/client.key")" 600 "the node's key is 0600"

# wait until command $1 has a final status at carve-cp; print it
cmd_status() {
	_i=0
	while [ $_i -lt 100 ]; do
		_s=$(cp_admin GET "/v1/commands/$1" | jq -r .status)
		case "$_s" in succeeded|failed) echo "$_s"; return 0 ;; esac
		sleep 0.1; _i=$((_i + 1))
	done
	echo "$_s"
}

# -- a user asks for a server: 2 vCPUs, 4 GiB --------------------------------
r=$(cp_admin POST /v1/vms '{"name":"web-1","vcpus":2,"memory_mib":4096}')
tap_is "$(cp_code)" 202 "POST /v1/vms is accepted (202)"
vm=$(printf '%s' "$r" | jq -r .id)
cmd=$(printf '%s' "$r" | jq -r .command_id)
tap_is "$(printf '%s' "$r" | jq -r .node)" big "placed on the node with the most free memory"
tap_is "$(cmd_status "$cmd")" succeeded "the command ran on the agent and its result came back"
carved_use big
tap_is "$(ctl_json vm show web-1 | jq -r '"\(.id) \(.state) \(.vcpus) \(.memory_mib)"')" \
    "$vm running 2 4096" "the VM exists on node big with the requested size"
tap_is "$(cp_admin GET "/v1/vms/$vm" | jq -r '"\(.node) \(.state)"')" "big running" "carve-cp shows where it runs and its reported state"

r=$(cp_admin POST /v1/vms '{"name":"db-1","vcpus":1,"memory_mib":1024,"node":"small"}')
vm2=$(printf '%s' "$r" | jq -r .id)
tap_is "$(cmd_status "$(printf '%s' "$r" | jq -r .command_id)")" succeeded "a VM placed on a named node"
carved_use small
tap_is "$(ctl_json vm show db-1 | jq -r .id)" "$vm2" "it exists on node small"

# -- bad admin requests --------------------------------------------------------
cp_admin POST /v1/vms '{"name":"x","vcpus":"2","memory_mib":4096}' >/dev/null
tap_is "$(cp_code)" 400 "a type-confused request is 400"
tap_is "$(cp_admin POST /v1/vms '{"name":"x<y","vcpus":2,"memory_mib":4096}' | jq -r .error.code)" invalid_argument "a bad name is invalid_argument"
tap_is "$(cp_admin POST /v1/vms '{"name":"web-1","vcpus":1,"memory_mib":128}' | jq -r .error.code)" conflict "a duplicate name is a conflict"
cp_admin GET /v1/vms/00000000-0000-4000-8000-000000000000 >/dev/null
tap_is "$(cp_code)" 404 "an unknown VM is 404"
tap_is "$(cp_admin POST /v1/vms '{"name":"n1","vcpus":1,"memory_mib":128,"node":"nosuch"}' | jq -r .error.code)" not_found "an unknown node is not_found"

# -- fill the cloud: every accepted VM is made, then insufficient_capacity ----
made=0 code=202 i=0
while [ "$code" = 202 ] && [ $i -lt 40 ]; do
	i=$((i + 1))
	r=$(cp_admin POST /v1/vms "{\"name\":\"fill-$i\",\"vcpus\":2,\"memory_mib\":4096}")
	code=$(cp_code)
	if [ "$code" = 202 ]; then
		[ "$(cmd_status "$(printf '%s' "$r" | jq -r .command_id)")" = succeeded ] && made=$((made + 1))
	fi
done
tap_is "$code $(printf '%s' "$r" | jq -r .error.code)" "409 insufficient_capacity" "when nothing fits: 409 insufficient_capacity"
tap_is "$(cp_admin GET /v1/vms | jq '[.[] | select(.name|startswith("fill-"))] | length')" "$made" "every accepted VM was made"
# small: (16384-512)/4096 = 3 more (db-1 holds 1 GiB -> 14848 free -> 3); big: (65024-4096)/4096 = 14
tap_is "$made" 17 "placement used the memory of both hosts (3 + 14)"
carved_use small; ns=$(ctl_json vm list | jq length)
carved_use big; nb=$(ctl_json vm list | jq length)
tap_is "$ns $nb" "4 15" "VMs per node as capacity allows"

# -- destroy -----------------------------------------------------------------------
r=$(cp_admin DELETE "/v1/vms/$vm")
tap_is "$(cp_code)" 202 "DELETE /v1/vms/{id} is accepted"
tap_is "$(cmd_status "$(printf '%s' "$r" | jq -r .command_id)")" succeeded "the destroy ran"
carved_use big
ctl_json vm show web-1 >/dev/null 2>&1
tap_is "$?" 1 "the VM is gone from its node"

# -- the control plane owns desired state ------------------------------------------
tap_is "$(ctl_json vm create local1 --vcpus 1 --memory 128 | jq -r .error.code)" permission_denied "carvectl VM mutations are refused with a control plane"
tap_is "$(ctl_json status | jq -r .control_plane.state)" connected "carvectl status shows the control-plane connection"
tap_like "$(curl -s "http://127.0.0.1:$mport/metrics")" "*carve_control_plane_up 1*" "metrics show the control plane up"
tap_done
