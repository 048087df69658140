#!/bin/sh
# The carve demo, step by step: a control plane (carve-cp) and two hosts
# (carved on libvirt's test driver: fake hosts of 8 CPUs/16 GiB and
# 32 CPUs/64 GiB, no libvirtd, no real VMs) talking HTTPS with mutual TLS on
# loopback, with freshly made certificates. The hosts enrol, report their
# capacity, and carve out VMs that a user asks the control plane for.
# Run from the repository root as root on Debian 12:  ./demo.sh
set -eu
cd "$(dirname "$0")"
root=$(pwd)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

./scripts/deps.sh
if [ ! -x build/carved ] || [ ! -x build/carve-cp ] ||
    [ -n "$(find agent common api -newer build/carved -name '*.[ch]' 2>/dev/null | head -1)" ]; then
	say "Building carve (./build)"
	[ -x configure ] || autoreconf -fi >/dev/null
	mkdir -p build
	(cd build && { [ -f Makefile ] || ../configure -q; } &&
	    make -j"$(nproc)" carved carvectl carve-cp >/dev/null)
fi

tmp=$(mktemp -d)
pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

say "1. Make the control plane's CA, server certificate and tokens"
run build/carve-cp init --dir "$tmp/cp"
run ls -l "$tmp/cp"

say "2. Start carve-cp on loopback (HTTPS, TLS 1.2+, client certificates from its CA)"
build/carve-cp serve --dir "$tmp/cp" --listen 127.0.0.1:0 --heartbeat-interval 2 \
    2>"$tmp/cp.log" &
pids="$pids $!"
i=0
until port=$(sed -n 's/.*msg=listening .*port=\([0-9]*\).*/\1/p' "$tmp/cp.log") && [ -n "$port" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$tmp/cp.log"; exit 1; }
	sleep 0.1
done
url=https://127.0.0.1:$port
note "listening on $url"

admin() { # METHOD PATH [JSON]: show the call, then make it
	printf '$ curl -X %s %s%s %s\n' "$1" "$url" "$2" "${3:-}" >&2
	api "$@"
}
api() { # METHOD PATH [JSON]
	if [ $# -ge 3 ]; then
		curl -sS --cacert "$tmp/cp/ca.crt" -H "Authorization: Bearer $(cat "$tmp/cp/admin.token")" \
		    -X "$1" -d "$3" "$url$2"
	else
		curl -sS --cacert "$tmp/cp/ca.crt" -H "Authorization: Bearer $(cat "$tmp/cp/admin.token")" \
		    -X "$1" "$url$2"
	fi
}
pretty() { jq "$@" 2>/dev/null || cat; }

host() { # NAME NODE_XML
	mkdir -p "$tmp/$1/state"
	cat > "$tmp/$1/carved.conf" <<EOC
[agent]
node_name = $1
state_dir = $tmp/$1/state
socket = $tmp/$1/carved.sock

[libvirt]
uri = test://$root/tests/$2

[control_plane]
url = $url
ca_file = $tmp/cp/ca.crt
bootstrap_token_file = $tmp/cp/bootstrap.token
EOC
	build/carved -f -c "$tmp/$1/carved.conf" 2>"$tmp/$1/carved.log" &
	pids="$pids $!"
}

say "3. Start two hosts: carved with the CA pinned and the bootstrap token"
host host-a node-small.xml
host host-b node-big.xml
note "each makes its own key (0600, never leaves the host), sends a CSR with the"
note "bootstrap token, gets a client certificate, registers, and long-polls"
i=0
until [ "$(api GET /v1/nodes 2>/dev/null | jq '[.[] | select(.up)] | length' 2>/dev/null)" = 2 ]; do
	i=$((i + 1)); [ $i -lt 100 ] || { tail "$tmp"/*/carved.log; exit 1; }
	sleep 0.2
done >/dev/null
run ls -l "$tmp/host-a/state"

say "4. What the control plane knows about the hosts"
admin GET /v1/nodes | pretty -c '.[] | {name, up, cpus: .host.cpus, memory_mib: .host.memory_mib,
    free_vcpus: .capacity.VCPU.free, free_memory_mib: .capacity.MEMORY_MIB.free}'

say "5. A user asks for a server: 2 vCPUs, 4 GiB"
out=$(admin POST /v1/vms '{"name":"web-1","vcpus":2,"memory_mib":4096}')
printf '%s\n' "$out" | pretty .
vm=$(printf '%s' "$out" | jq -r .id)
cmd=$(printf '%s' "$out" | jq -r .command_id)
note "the scheduler chose the host with the most free memory; its long poll"
note "got the command at once"
sleep 0.5
admin GET "/v1/commands/$cmd" | pretty '{id, type, node, status, result, error}'

say "6. More servers; one pinned to host-a"
admin POST /v1/vms '{"name":"db-1","vcpus":4,"memory_mib":8192}' | pretty -c .
admin POST /v1/vms '{"name":"cache-1","vcpus":1,"memory_mib":1024,"node":"host-a"}' | pretty -c .
sleep 1

say "7. Where they landed, and the state each host reports"
admin GET /v1/vms | pretty -c '.[] | {name, node, vcpus, memory_mib, state}'
say "   host-b's own view (carvectl on the host)"
run build/carvectl -s "$tmp/host-b/carved.sock" vm list
run build/carvectl -s "$tmp/host-b/carved.sock" capacity

say "8. Asking for more than any host can hold"
admin POST /v1/vms '{"name":"huge","vcpus":2,"memory_mib":60000}' | pretty -c .
admin POST /v1/vms '{"name":"bad<name>","vcpus":2,"memory_mib":4096}' | pretty -c .

say "9. With a control plane, the operator's CLI may look but not change VMs"
build/carvectl -s "$tmp/host-b/carved.sock" vm destroy web-1 || true
run build/carvectl -s "$tmp/host-b/carved.sock" status

say "10. Destroy a server"
out=$(admin DELETE "/v1/vms/$vm")
printf '%s\n' "$out" | pretty -c .
sleep 0.5
admin GET "/v1/commands/$(printf '%s' "$out" | jq -r .command_id)" | pretty -c '{type, status}'
admin GET /v1/vms | pretty -c '.[] | {name, node, state}'

say "11. The hosts' logs (logfmt), last lines"
tail -n 4 "$tmp/host-b/carved.log"
say "Stopping everything"
cleanup
trap - EXIT INT TERM
echo "done."
