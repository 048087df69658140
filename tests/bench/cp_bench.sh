#!/bin/sh
# The control-plane conversation, measured on loopback with real TLS:
#  - latency from an admin POST /v1/vms (committed at carve-cp) to the agent
#    starting the command, over N sequential creates: median and p99;
#  - requests per second an idle node makes to the control plane;
#  - heartbeat bytes with 1000 steady VMs (a delta) vs. a full state report.
#   tests/bench/cp_bench.sh [BUILDDIR] [N]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$src}" && pwd)
n=${2:-50}
make -C "$build" carved carve-cp >/dev/null

tmp=$(mktemp -d)
cppid= cdpid=
trap 'kill $cdpid $cppid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
"$build/carve-cp" init --dir "$tmp/cp" >/dev/null
"$build/carve-cp" serve --dir "$tmp/cp" --listen 127.0.0.1:0 --log-level debug \
    2>"$tmp/cp.log" &
cppid=$!
i=0
until port=$(sed -n 's/.*msg=listening .*port=\([0-9]*\).*/\1/p' "$tmp/cp.log") && [ -n "$port" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "carve-cp did not start" >&2; exit 1; }
	sleep 0.1
done
url=https://127.0.0.1:$port
mkdir -p "$tmp/state"
cat > "$tmp/carved.conf" <<EOC
[agent]
node_name = bench
state_dir = $tmp/state
socket = $tmp/carved.sock
log_level = debug
max_concurrent_ops = 8
[libvirt]
uri = test://$src/tests/node-big.xml
[capacity]
reserved_memory_mib = 0
cpu_allocation_ratio = 100
ram_allocation_ratio = 2.0
[control_plane]
url = $url
ca_file = $tmp/cp/ca.crt
bootstrap_token_file = $tmp/cp/bootstrap.token
EOC
"$build/carved" -f -c "$tmp/carved.conf" 2>"$tmp/carved.log" &
cdpid=$!
admin() {
	curl -sS --cacert "$tmp/cp/ca.crt" -H "Authorization: Bearer $(cat "$tmp/cp/admin.token")" "$@"
}
i=0
until admin "$url/v1/nodes/bench" 2>/dev/null | grep -q '"up":true'; do
	i=$((i + 1)); [ $i -lt 200 ] || { echo "node did not come up" >&2; exit 1; }
	sleep 0.1
done

ms_of() { # logfmt ts=2026-11-25T13:00:00.123Z -> ms since the epoch
	sed -n 's/^ts=\([^ ]*\)Z.*/\1/p' | while read -r t; do
		s=$(date -u -d "${t%.*}" +%s); echo "$s${t##*.}"
	done
}

# -- latency ---------------------------------------------------------------------
: > "$tmp/lat"
i=1
while [ $i -le "$n" ]; do
	out=$(admin -d "{\"name\":\"lat-$i\",\"vcpus\":1,\"memory_mib\":64}" "$url/v1/vms")
	cid=$(printf '%s' "$out" | sed -n 's/.*"command_id":"\([^"]*\)".*/\1/p')
	j=0
	until grep -q "running command.*command_id=$cid" "$tmp/carved.log"; do
		j=$((j + 1)); [ $j -lt 200 ] || { echo "command $cid never ran" >&2; exit 1; }
		sleep 0.02
	done
	# carve-cp logs the POST when it answers: the command is committed and
	# the node's parked poll already woken by then.
	posted=$(grep 'msg=request method=POST uri=/v1/vms ' "$tmp/cp.log" | sed -n "${i}p" | ms_of)
	started=$(grep "running command.*command_id=$cid" "$tmp/carved.log" | head -1 | ms_of)
	echo $((started - posted)) >> "$tmp/lat"
	i=$((i + 1))
done
sort -n "$tmp/lat" > "$tmp/lat.s"
med=$(awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}' "$tmp/lat.s")
p99=$(awk '{a[NR]=$1} END {i=int(NR*0.99+0.999); if (i<1) i=1; print a[i]}' "$tmp/lat.s")
echo "post_to_running_ms_median=$med"
echo "post_to_running_ms_p99=$p99"
echo "post_to_running_ms_max=$(tail -1 "$tmp/lat.s")"

# -- idle request rate -------------------------------------------------------------
sleep 2
before=$(grep -c 'msg=request .*who=bench' "$tmp/cp.log" || true)
sleep 60
after=$(grep -c 'msg=request .*who=bench' "$tmp/cp.log" || true)
awk -v a="$after" -v b="$before" 'BEGIN { printf "idle_requests_per_s=%.3f\n", (a - b) / 60 }'

# -- heartbeat bytes with 1000 VMs ---------------------------------------------------
# One curl process, one TLS connection reused for the 1000 POSTs (options
# reset at every "next", so each block repeats them).
cfg=$tmp/curl.cfg
: > "$cfg"
tok=$(cat "$tmp/cp/admin.token")
i=1
while [ $i -le 1000 ]; do
	[ $i -gt 1 ] && echo next >> "$cfg"
	printf 'url = "%s/v1/vms"\ncacert = "%s"\nheader = "Authorization: Bearer %s"\ndata = "{\\"name\\":\\"hb-%d\\",\\"vcpus\\":1,\\"memory_mib\\":64}"\noutput = /dev/null\nsilent\n' \
	    "$url" "$tmp/cp/ca.crt" "$tok" "$i" >> "$cfg"
	i=$((i + 1))
done
curl -K "$cfg"
i=0
until [ "$(grep -c 'command finished.*type=vm.create' "$tmp/carved.log")" -ge $((n + 1000)) ]; do
	i=$((i + 1)); [ $i -lt 600 ] || { echo "creates did not finish" >&2; exit 1; }
	sleep 0.1
done
sleep 25   # two heartbeats with nothing changed
steady=$(grep 'msg=heartbeat .*full=false vms=0 removed=0' "$tmp/carved.log" | tail -1 | sed -n 's/.*bytes=\([0-9]*\).*/\1/p')
# Make carve-cp forget the node's heartbeat sequence: it asks for a resync
# and the next heartbeat is a full state report.
sqlite3 "$tmp/cp/carve-cp.db" "UPDATE nodes SET hb_seq = NULL WHERE name = 'bench';"
sleep 25
full=$(grep 'msg=heartbeat .*full=true' "$tmp/carved.log" | tail -1 | sed -n 's/.*vms=\([0-9]*\).*bytes=\([0-9]*\).*/vms=\1 bytes=\2/p')
echo "heartbeat_steady_1000_vms_bytes=$steady"
echo "heartbeat_full_report=$full"
