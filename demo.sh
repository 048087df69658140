#!/bin/sh
# The carve demo: builds carve if needed, starts carved on libvirt's test
# driver (an in-process fake host of 32 CPUs / 64 GiB: no libvirtd, no real
# VMs), and drives it with carvectl step by step, as an operator would.
# Run from the repository root as root on Debian 12:  ./demo.sh
set -eu
cd "$(dirname "$0")"
root=$(pwd)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

./scripts/deps.sh
if [ ! -x build/carved ] || [ ! -x build/carvectl ] || [ -n "$(find agent common api -newer build/carved -name '*.[ch]' 2>/dev/null | head -1)" ]; then
	say "Building carve (./build)"
	[ -x configure ] || autoreconf -fi >/dev/null
	mkdir -p build
	(cd build && { [ -f Makefile ] || ../configure -q; } && make -j"$(nproc)" carved carvectl >/dev/null)
fi

tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
mkdir -p "$tmp/state"
cat > "$tmp/carved.conf" <<EOC
[agent]
node_name = demo-host-1
state_dir = $tmp/state
socket = $tmp/carved.sock
log_level = info

[libvirt]
uri = test://$root/tests/node-big.xml

[capacity]
reserved_vcpus = 2
reserved_memory_mib = 4096
cpu_allocation_ratio = 4.0
ram_allocation_ratio = 1.0
EOC

say "carved's configuration ($tmp/carved.conf)"
cat "$tmp/carved.conf"

say "Starting carved in the foreground (its logfmt log: $tmp/carved.log)"
build/carved -f -c "$tmp/carved.conf" 2>"$tmp/carved.log" &
pid=$!
i=0
until build/carvectl -s "$tmp/carved.sock" capacity >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -lt 100 ] || { cat "$tmp/carved.log"; exit 1; }
	sleep 0.1
done
ctl() { run build/carvectl -s "$tmp/carved.sock" "$@"; }

say "What the agent is doing"
ctl status
say "What this host can hold (total, reserved, ratio, allocated)"
ctl capacity
say "A user asks for a server: 2 vCPUs, 4 GiB"
ctl vm create web-1 --vcpus 2 --memory 4096 --disk-gib 20
ctl vm create db-1 --vcpus 4 --memory 16384 --disk-gib 100
say "The VMs on this host"
ctl vm list
say "Capacity now counts them"
ctl capacity
say "Bad input gets a clear, coded error and changes nothing"
ctl vm create 'web-1;rm -rf /' --vcpus 2 --memory 4096 || true
ctl vm create huge --vcpus 2 --memory 70000 || true
say "Stop, start, reboot"
ctl vm stop web-1
ctl vm start web-1
ctl vm reboot web-1
say "The same command delivered twice runs once (answered from the journal)"
cid=$(cat /proc/sys/kernel/random/uuid)
ctl vm stop db-1 --command-id "$cid"
ctl vm stop db-1 --command-id "$cid"
say "Recent commands, from the durable journal"
ctl commands --limit 10
say "Destroy one VM"
ctl vm destroy db-1
ctl vm list
say "A few lines of carved's log"
tail -n 8 "$tmp/carved.log"
say "Stopping carved (SIGTERM: drains commands, closes the journal)"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
echo "done."
