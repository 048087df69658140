#!/bin/sh
# carvectl against a private carved on the libvirt test driver (in-process,
# no daemon): the VM life cycle, the JSON shapes scripts rely on, the error
# codes of bad input, and the socket's permission checks.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
command -v jq >/dev/null || tap_skip_all "jq not installed"

tmpdir_setup
mport=$(free_port)
carved_setup cli "test://$top_srcdir/tests/node-small.xml" "[metrics]\nlisten = 127.0.0.1:$mport"
tap_at_exit carved_stop
carved_start || tap_bail "carved did not start"

# -- create and read back --------------------------------------------------
out=$(ctl_json vm create web1 --vcpus 2 --memory 1024 --disk-gib 10)
tap_is "$(printf '%s' "$out" | jq -r .status)" succeeded "vm create succeeds"
vm_id=$(printf '%s' "$out" | jq -r .vm_id)
cmd_id=$(printf '%s' "$out" | jq -r .command_id)
tap_like "$vm_id" "????????-????-????-????-????????????" "result carries the new vm_id"
tap_like "$cmd_id" "????????-????-????-????-????????????" "result carries the command_id"

list=$(ctl_json vm list)
tap_is "$(printf '%s' "$list" | jq length)" 1 "vm list has one VM"
tap_is "$(printf '%s' "$list" | jq -r '.[0] | "\(.id) \(.name) \(.state) \(.vcpus) \(.memory_mib) \(.disk_gib)"')" \
    "$vm_id web1 running 2 1024 10" "vm list shows id, name, state, size"

tap_is "$(ctl_json vm show web1 | jq -r .id)" "$vm_id" "vm show by name"
tap_is "$(ctl_json vm show "$vm_id" | jq -r .name)" web1 "vm show by id"
tap_like "$(ctl vm list)" "*web1*running*" "human vm list shows the VM"

# -- life cycle ------------------------------------------------------------
tap_is "$(ctl_json vm stop web1 | jq -r '.status + " " + .result.state')" \
    "succeeded shutoff" "vm stop shuts the VM off"
tap_is "$(ctl_json vm show web1 | jq -r .state)" shutoff "view says shutoff"
tap_is "$(ctl_json vm stop web1 | jq -r .status)" succeeded "stopping a stopped VM is a no-op success"
tap_is "$(ctl_json vm reboot web1 | jq -r .error.code)" conflict "rebooting a stopped VM is a conflict"
tap_is "$(ctl_json vm start web1 | jq -r '.status + " " + .result.state')" \
    "succeeded running" "vm start"
tap_is "$(ctl_json vm reboot web1 | jq -r .status)" succeeded "vm reboot"
tap_is "$(ctl_json vm stop --force web1 | jq -r '.status + " " + (.result.forced|tostring)')" \
    "succeeded true" "vm stop --force forces it off"

# -- bad input: stable codes, nothing made ---------------------------------
code() { ctl_json "$@" 2>/dev/null | jq -r '.error.code // .status'; }
tap_is "$(code vm create 'bad<name>' --vcpus 1 --memory 128)" invalid_argument "name with XML metacharacters refused"
tap_is "$(code vm create 'a/b' --vcpus 1 --memory 128)" invalid_argument "name with a path separator refused"
tap_is "$(code vm create "$(printf 'x%.0s' $(seq 65))" --vcpus 1 --memory 128)" invalid_argument "65-byte name refused"
tap_is "$(code vm create ok1 --vcpus 0 --memory 128)" invalid_argument "0 vCPUs refused"
tap_is "$(code vm create ok1 --vcpus 1 --memory 32)" invalid_argument "32 MiB refused (minimum 64)"
tap_is "$(code vm create ok1 --vcpus 64 --memory 128)" invalid_argument "more vCPUs than the host refused"
tap_is "$(code vm create ok1 --vcpus 1 --memory 1048576)" invalid_argument "more memory than the host refused"
tap_is "$(code vm create web1 --vcpus 1 --memory 128)" conflict "duplicate name is a conflict"
tap_is "$(code vm create ok1 --vcpus 1 --memory 128 --kernel vmlinuz)" invalid_argument "kernel boot refused when kernel_dir is unset"
tap_is "$(code vm create ok1 --vcpus 1 --memory 128 --command-id not-a-uuid)" invalid_argument "non-UUID command id refused"
tap_is "$(code vm start nosuchvm)" not_found "unknown VM is not_found"
tap_is "$(code vm stop 2b0e0a4c-95c4-4a57-a5d4-1d1a5d0c1f00)" not_found "unknown VM id is not_found"
tap_is "$(code vm destroy 2b0e0a4c-95c4-4a57-a5d4-1d1a5d0c1f00)" succeeded "destroying a VM that does not exist succeeds (its end state holds)"
tap_is "$(ctl_json vm list | jq length)" 1 "rejected creates left nothing behind"
ctl vm create 'bad<name>' --vcpus 1 --memory 128 >/dev/null 2>&1
tap_is "$?" 1 "an error exits 1"
msg=$(ctl vm create ok1 --vcpus 1 --memory 32 2>&1 >/dev/null)
tap_like "$msg" "*invalid_argument*64*" "error message names the code and the limit"

# raw protocol errors: unknown verb, malformed JSON, duplicate keys
sock=$CARVED_DIR/carved.sock
raw() { printf '%s\n' "$1" | timeout 5 socat - "UNIX-CONNECT:$sock" 2>/dev/null; }
if command -v socat >/dev/null; then
	tap_is "$(raw '{"verb":"vm.explode"}' | jq -r .error.code)" invalid_argument "unknown verb refused"
	tap_is "$(raw '{"verb":' | jq -r .error.code)" invalid_argument "malformed JSON refused"
	tap_is "$(raw '{"verb":"vm.create","args":{"name":"d1","name":"d2","vcpus":1,"memory_mib":128}}' | jq -r .error.code)" \
	    invalid_argument "duplicate keys refused"
	tap_is "$(raw '{"verb":"vm.create","args":{"name":"d1","vcpus":"1","memory_mib":128}}' | jq -r .error.message)" \
	    "vcpus must be an integer" "wrong JSON type refused with the field named"
else
	tap_skip "raw protocol errors" "socat not installed"
fi

# -- commands, status, capacity ---------------------------------------------
cmds=$(ctl_json commands --limit 50)
tap_is "$(printf '%s' "$cmds" | jq "[.[] | select(.command_id == \"$cmd_id\")] | .[0].status" -r)" \
    succeeded "commands lists the create with its status"
tap_like "$(printf '%s' "$cmds" | jq -r '[.[] | select(.status=="failed")] | .[0].error.code')" "*_*" \
    "commands lists failures with their error code"
st=$(ctl_json status)
tap_is "$(printf '%s' "$st" | jq -r '.libvirt.connected, .mode, .node_name, .vms.total' | tr '\n' ' ')" \
    "true standalone cli 1 " "status shows libvirt, mode, node and VM count"
cap=$(ctl_json capacity)
tap_is "$(printf '%s' "$cap" | jq -r '.VCPU.total, .VCPU.allocated, .MEMORY_MIB.allocated, .host.cpus' | tr '\n' ' ')" \
    "8 2 1024 8 " "capacity counts the VM against the host"

# -- metrics ---------------------------------------------------------------
metrics=$(curl -s "http://127.0.0.1:$mport/metrics")
tap_like "$metrics" '*carve_vms{state="shutoff"} 1*' "metrics: one VM, shut off"
tap_like "$metrics" '*carve_commands_total{type="vm.create",status="succeeded"} 1*' "metrics: one create succeeded"
tap_like "$metrics" '*carve_capacity_allocated{class="VCPU"} 2*' "metrics: allocated vCPUs"
tap_is "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/other")" 404 "metrics: other paths are 404"

# -- permissions: SO_PEERCRED decides, not just the file mode --------------
chmod 0755 "$TEST_TMPDIR" "$CARVED_DIR"   # let uid 65534 reach the socket file
chmod 0666 "$sock"
tap_is "$(setpriv --reuid=65534 --regid=65534 --clear-groups "$CARVECTL_BIN" -s "$sock" --json vm list | jq length)" 1 \
    "an unprivileged user may read"
tap_is "$(setpriv --reuid=65534 --regid=65534 --clear-groups "$CARVECTL_BIN" -s "$sock" --json vm destroy web1 2>/dev/null | jq -r .error.code)" \
    permission_denied "an unprivileged user may not mutate"
chmod 0660 "$sock"
setpriv --reuid=65534 --regid=65534 --clear-groups "$CARVECTL_BIN" -s "$sock" vm list >/dev/null 2>&1
tap_is "$?" 2 "the socket (0660) refuses other users outright"

# -- destroy ---------------------------------------------------------------
tap_is "$(ctl_json vm destroy web1 | jq -r '.status + " " + (.result.destroyed|tostring)')" \
    "succeeded true" "vm destroy"
tap_is "$(ctl_json vm list | jq length)" 0 "the VM is gone"
tap_is "$(ctl_json capacity | jq -r .VCPU.allocated)" 0 "its capacity is released"

carved_stop
tap_is "$?" 0 "carved exits 0 on SIGTERM"
tap_done
