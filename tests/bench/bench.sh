#!/bin/sh
# carved's cost over raw libvirt, measured in one run on the in-process test
# driver (no daemon): wall time of N creates through carved (control socket
# -> engine -> journal -> libvirt) vs. the same N define+start calls made
# directly (bench_direct), and carved's peak RSS idle and with N VMs.
#   tests/bench/bench.sh [BUILDDIR] [N]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$src}" && pwd)
n=${2:-1000}
make -C "$build" carved tests/bench/bench_direct tests/bench/bench_carved >/dev/null

tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/state"
cat > "$tmp/carved.conf" <<EOC
[agent]
node_name = bench
state_dir = $tmp/state
socket = $tmp/carved.sock
log_level = warn
max_concurrent_ops = 8
[libvirt]
uri = test://$src/tests/node-big.xml
[capacity]
reserved_memory_mib = 0
cpu_allocation_ratio = 100
EOC

direct=$("$build/tests/bench/bench_direct" "test://$src/tests/node-big.xml" "$n" | sed -n 's/^direct_create_s=//p')

"$build/carved" -f -c "$tmp/carved.conf" 2>"$tmp/carved.log" &
pid=$!
i=0; until [ -S "$tmp/carved.sock" ] || [ $i -gt 100 ]; do sleep 0.1; i=$((i+1)); done
sleep 0.5
rss_idle=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
out=$("$build/tests/bench/bench_carved" "$tmp/carved.sock" "$n" 16)
via=$(printf '%s\n' "$out" | sed -n 's/^carved_create_s=//p')
failed=$(printf '%s\n' "$out" | sed -n 's/^failed=//p')
rss_full=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
kill -TERM $pid; wait $pid || true

echo "creates=$n failed=$failed"
echo "direct_define_start_s=$direct"
echo "carved_create_s=$via"
awk -v a="$via" -v b="$direct" 'BEGIN { printf "ratio_carved_over_direct=%.1f\n", a / b }'
echo "carved_peak_rss_idle_kib=$rss_idle"
echo "carved_peak_rss_${n}_vms_kib=$rss_full"
