#!/bin/sh
# vm.resize end to end.
#   Test driver (in process): every error case; live within the maxima,
#   next_boot beyond them (maxima raised) and for fewer vCPUs; admission
#   against capacity on a small host (insufficient_capacity, nothing
#   changed; a shrink always fits); idempotency by command id; parallel
#   resizes and creates never overcommit (capacity sampled while they run),
#   resizes queued on one VM claim their peak, and 100 resizes at scale;
#   carve-cp's resize action (node capacity check, the record's size from
#   the result).
#   Real libvirtd + TCG guest (root only): memory live down and up through
#   the balloon (virsh dominfo / domstats and the guest's MemTotal), vCPU
#   hot-plug within the maximum (virsh vcpucount and the guest's online
#   CPUs), growth beyond the maxima -> next_boot, the warning when shrinking
#   below what the guest uses, a resize recovered after kill -9, and the new
#   size live after a stop/start.
# Domains are named carve-rs-*.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/e2e.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/libvirtd.sh"
command -v jq >/dev/null || tap_skip_all "jq not installed"

tmpdir_setup
tap_at_exit carved_stop_all
node="test://$top_srcdir/tests/node-small.xml"
full_host="[capacity]\nreserved_vcpus = 0\nreserved_memory_mib = 0\ncpu_allocation_ratio = 1.0\nram_allocation_ratio = 1.0"

status_of() { ctl_json "$@" 2>/dev/null | jq -r '.error.code // .status'; }
size_of() { ctl_json vm show "$1" | jq -r '"\(.vcpus) \(.memory_mib)"'; }
allocated() { ctl_json capacity | jq -r '"\(.VCPU.allocated) \(.MEMORY_MIB.allocated)"'; }
# "status applied vcpus memory_mib max_vcpus max_memory_mib" of a result
outcome() {
	printf '%s' "$1" | jq -r '[.status, .result.applied, .result.vcpus,
	    .result.memory_mib, .result.max_vcpus, .result.max_memory_mib] |
	    map(tostring) | join(" ")'
}
uuid() { cat /proc/sys/kernel/random/uuid; }

# == test driver: a small host (8 CPUs, 16 GiB), nothing reserved ==========
carved_setup rs1 "$node" "$full_host"
carved_start || tap_bail "carved did not start"
r=$(ctl_json vm create carve-rs-a --vcpus 2 --memory 1024)
tap_is "$(printf '%s' "$r" | jq -r .status)" succeeded "create carve-rs-a (2 vCPUs, 1 GiB)"
ida=$(printf '%s' "$r" | jq -r .vm_id)

# -- refused before anything happens ----------------------------------------
tap_is "$(status_of vm resize carve-rs-a)" invalid_argument "a resize without a size is invalid"
tap_like "$(ctl_json vm resize carve-rs-a 2>/dev/null | jq -r .error.message)" \
    "*needs vcpus, memory_mib or both*" "and says what is missing"
tap_is "$(status_of vm resize carve-rs-a --vcpus 0)" invalid_argument "0 vCPUs is invalid"
tap_is "$(status_of vm resize carve-rs-a --vcpus 1025)" invalid_argument "1025 vCPUs is invalid"
tap_is "$(status_of vm resize carve-rs-a --memory 63)" invalid_argument "63 MiB is invalid"
tap_is "$(status_of vm resize carve-rs-a --memory 16777217)" invalid_argument "more than 16 TiB is invalid"
tap_is "$(status_of vm resize carve-rs-nosuch --vcpus 2)" not_found "an unknown VM name is not_found"
tap_is "$(status_of vm resize "$(uuid)" --vcpus 2)" not_found "an unknown VM id is not_found"
"$CARVECTL_BIN" -s "$CARVED_DIR/carved.sock" vm resize carve-rs-a --disk-gib 3 >/dev/null 2>&1
tap_is "$?" 2 "an unknown option is a usage error"
tap_is "$(status_of vm resize carve-rs-a --vcpus 9)" invalid_argument \
    "more vCPUs than the host can ever give is invalid_argument"
tap_is "$(size_of carve-rs-a) $(allocated)" "2 1024 2 1024" "none of that changed anything"

# -- live within the maxima, next_boot beyond -------------------------------
r=$(ctl_json vm resize carve-rs-a --vcpus 4 --memory 2048)
tap_is "$(outcome "$r")" "succeeded live 4 2048 4 2048" \
    "grow to the maxima (2 x the size): applied live"
tap_is "$(size_of carve-rs-a) $(allocated)" "4 2048 4 2048" "the view and capacity count the new size"
r=$(ctl_json vm resize carve-rs-a --vcpus 6 --memory 3072)
tap_is "$(outcome "$r")" "succeeded next_boot 6 3072 8 6144" \
    "beyond the maxima: next_boot, maxima raised (vCPUs capped by the host's 8)"
tap_is "$(size_of carve-rs-a) $(allocated)" "6 3072 6 3072" "capacity counts the size it will boot with"
r=$(ctl_json vm resize carve-rs-a --vcpus 2)
tap_is "$(outcome "$r")" "succeeded next_boot 2 3072 8 6144" "fewer vCPUs: next_boot"
tap_like "$(printf '%s' "$r" | jq -r .result.warning)" "*not hot-unplugged*keeps 4*" \
    "with a warning that the running guest keeps its vCPUs"
r=$(ctl_json vm resize carve-rs-a --memory 512)
tap_is "$(outcome "$r")" "succeeded live 2 512 8 6144" \
    "a memory shrink is live (the pending vCPU change is not this resize's)"
tap_is "$(printf '%s' "$r" | jq -r '.result.warning // "none"')" none "no warning (the test driver has no guest)"
tap_is "$(ctl vm resize carve-rs-a --memory 768)" \
    "vm carve-rs-a resized to 2 vCPUs, 768 MiB: applied live" "carvectl prints the outcome"

# -- admission against capacity ------------------------------------------------
tap_is "$(status_of vm create carve-rs-b --vcpus 6 --memory 1024)" succeeded "fill the host's vCPUs (2 + 6 of 8)"
before="$(size_of carve-rs-a) $(allocated)"
r=$(ctl_json vm resize carve-rs-a --vcpus 3)
tap_is "$(printf '%s' "$r" | jq -r .error.code)" insufficient_capacity "one more vCPU does not fit"
tap_like "$(printf '%s' "$r" | jq -r .error.message)" "*VCPU*needs 1 more, free 0 of 8*" \
    "the message names the class and the growth"
r=$(ctl_json vm resize carve-rs-a --memory 16000)
tap_is "$(printf '%s' "$r" | jq -r .error.code)" insufficient_capacity "memory growth beyond what is free does not fit"
tap_is "$(status_of vm resize carve-rs-a --memory 20000)" invalid_argument \
    "more memory than the host can ever give is invalid_argument"
tap_is "$(size_of carve-rs-a) $(allocated)" "$before" "refused resizes changed nothing"
tap_is "$(status_of vm resize carve-rs-b --vcpus 5 --memory 512)" succeeded "a shrink always fits on a full host"
tap_is "$(status_of vm resize carve-rs-a --vcpus 3)" succeeded "and its room is usable again"
tap_is "$(allocated)" "8 1280" "capacity: 3 + 5 vCPUs, 768 + 512 MiB"

# -- idempotency by command id -------------------------------------------------
cid=$(uuid)
r1=$(ctl_json vm resize carve-rs-a --memory 1024 --command-id "$cid")
r2=$(ctl_json vm resize carve-rs-a --memory 1024 --command-id "$cid")
tap_is "$(outcome "$r1")" "succeeded live 3 1024 8 6144" "resize with a command id"
tap_is "$r2" "$r1" "the same command id again: the first answer, not a second run"
tap_is "$(status_of vm resize carve-rs-b --memory 1024 --command-id "$cid")" conflict \
    "the same command id for another VM is a conflict"
tap_is "$(ctl_json commands --limit 50 | jq "[.[] | select(.command_id == \"$cid\")] | length")" 1 \
    "the journal has it once"

# -- a stopped VM: next_boot, and started with it -------------------------------
tap_is "$(status_of vm stop carve-rs-a --force)" succeeded "stop carve-rs-a"
r=$(ctl_json vm resize carve-rs-a --vcpus 2 --memory 2048)
tap_is "$(outcome "$r") $(printf '%s' "$r" | jq -r .result.state)" \
    "succeeded next_boot 2 2048 8 6144 shutoff" "resizing a stopped VM: next_boot"
tap_is "$(status_of vm start carve-rs-a)" succeeded "start it"
tap_is "$(size_of carve-rs-a)" "2 2048" "it runs with the new size"
r=$(ctl_json vm resize carve-rs-a --vcpus 3)
tap_is "$(outcome "$r")" "succeeded live 3 2048 8 6144" \
    "after a restart the raised maximum is live: growth within it is live"
tap_is "$(status_of vm destroy carve-rs-a)" succeeded "destroy carve-rs-a"
tap_is "$(allocated)" "5 512" "its size is no longer counted"
carved_stop
tap_is "$?" 0 "carved rs1 stops cleanly (no sanitizer report)"

# == test driver: parallel resizes and creates, queues, scale ================
carved_setup rs2 "$node" "$full_host"
carved_start CARVED_TEST_DELAY_BEFORE_MS=1500 || tap_bail "carved did not start"
pids=
for i in 1 2 3 4; do
	ctl_json vm create carve-rs-v$i --vcpus 1 --memory 1024 >/dev/null 2>&1 &
	pids="$pids $!"
done
wait $pids
tap_is "$(allocated)" "4 4096" "four 1-vCPU VMs"
# Sample capacity while 4 resizes (+1 vCPU each) and 4 creates (1 vCPU
# each) compete for the 4 vCPUs left.
: > "$CARVED_DIR/samples"
( while [ ! -f "$CARVED_DIR/stop-sampling" ]; do
	ctl_json capacity 2>/dev/null | jq -r '"\(.VCPU.allocated) \(.VCPU.allocatable)"' >> "$CARVED_DIR/samples"
	sleep 0.05
done ) &
sampler=$!
pids=
for i in 1 2 3 4; do
	ctl_json vm resize carve-rs-v$i --vcpus 2 > "$CARVED_DIR/r$i.json" 2>/dev/null &
	pids="$pids $!"
	ctl_json vm create carve-rs-c$i --vcpus 1 --memory 64 > "$CARVED_DIR/c$i.json" 2>/dev/null &
	pids="$pids $!"
done
wait $pids
touch "$CARVED_DIR/stop-sampling"
wait $sampler
ok=$(cat "$CARVED_DIR"/r?.json "$CARVED_DIR"/c?.json | jq -r .status | grep -c succeeded)
full=$(cat "$CARVED_DIR"/r?.json "$CARVED_DIR"/c?.json | jq -r '.error.code // empty' | grep -c insufficient_capacity)
tap_is "$ok $full" "4 4" "8 parallel requests for 4 free vCPUs: 4 done, 4 refused"
tap_is "$(awk '$1 > $2 { bad++ } END { print (NR >= 5 ? bad + 0 : "too few samples") }' "$CARVED_DIR/samples")" 0 \
    "capacity was never overcommitted while they ran ($(wc -l < "$CARVED_DIR/samples") samples)"
sum=$(ctl_json vm list | jq '[.[].vcpus] | add')
tap_is "$(allocated | cut -d' ' -f1) $sum" "8 8" "allocated is exactly the VMs' sizes once they are done"

# Resizes queued on one VM claim their peak, not their sum. Back to four
# 1-vCPU VMs and one more: 3 vCPUs free.
for v in $(ctl_json vm list | jq -r '.[] | select(.name | startswith("carve-rs-c")) | .name'); do
	ctl_json vm destroy "$v" >/dev/null
done
ctl_json vm resize carve-rs-v1 --vcpus 1 >/dev/null
ctl_json vm resize carve-rs-v2 --vcpus 1 >/dev/null
ctl_json vm resize carve-rs-v3 --vcpus 1 >/dev/null
ctl_json vm resize carve-rs-v4 --vcpus 1 >/dev/null
tap_is "$(allocated | cut -d' ' -f1)" 4 "back to four 1-vCPU VMs"
ctl_json vm create carve-rs-f --vcpus 1 --memory 64 >/dev/null
# 3 vCPUs free: v1 to 4 (+3), then to 3 while the first is in flight. A sum
# of growths (3 + 2) would not fit; their peak (3) does.
ctl_json vm resize carve-rs-v1 --vcpus 4 > "$CARVED_DIR/q1.json" 2>/dev/null &
q1=$!
sleep 0.1
ctl_json vm resize carve-rs-v1 --vcpus 3 > "$CARVED_DIR/q2.json" 2>/dev/null &
q2=$!
sleep 0.1
tap_is "$(status_of vm create carve-rs-g --vcpus 1 --memory 64)" insufficient_capacity \
    "while both are in flight their peak growth is claimed"
wait $q1 $q2
tap_is "$(jq -r .status "$CARVED_DIR/q1.json") $(jq -r .status "$CARVED_DIR/q2.json")" \
    "succeeded succeeded" "two queued resizes of one VM that fit by their peak"
tap_is "$(size_of carve-rs-v1) $(allocated | cut -d' ' -f1)" "3 1024 7" "the last one's size holds; its claim is gone"
carved_stop
tap_is "$?" 0 "carved rs2 stops cleanly"

# At scale: 10 VMs, 10 resizes each (VMs in parallel), no delay.
carved_setup rs3 "$node" "[capacity]\nreserved_vcpus = 0\nreserved_memory_mib = 0\ncpu_allocation_ratio = 4.0"
carved_start || tap_bail "carved did not start"
for i in 0 1 2 3 4 5 6 7 8 9; do
	ctl_json vm create carve-rs-s$i --vcpus 1 --memory 256 >/dev/null
done
pids=
for i in 0 1 2 3 4 5 6 7 8 9; do
	( for k in 1 2 3 4 5 6 7 8 9 10; do
		ctl_json vm resize carve-rs-s$i --vcpus $(( (i + k) % 3 + 1 )) \
		    --memory $(( 256 + 64 * ((i * k) % 5) ))
	done > "$CARVED_DIR/s$i.json" 2>/dev/null ) &
	pids="$pids $!"
done
wait $pids
tap_is "$(cat "$CARVED_DIR"/s?.json | jq -r .status | sort | uniq -c | tr -s ' ')" " 100 succeeded" \
    "100 resizes on 10 VMs in parallel all succeed"
want=$(for i in 0 1 2 3 4 5 6 7 8 9; do
	echo "carve-rs-s$i $(( (i + 10) % 3 + 1 )) $(( 256 + 64 * ((i * 10) % 5) ))"
done)
tap_is "$(ctl_json vm list | jq -r '.[] | "\(.name) \(.vcpus) \(.memory_mib)"' | sort)" "$want" \
    "each VM has its last resize's size"
tap_is "$(allocated)" "$(ctl_json vm list | jq -r '"\([.[].vcpus] | add) \([.[].memory_mib] | add)"')" \
    "capacity counts exactly those sizes"
tap_is "$(ctl_json status | jq -r '.commands.running + .commands.queued')" 0 "nothing left in flight"
carved_stop
tap_is "$?" 0 "carved rs3 stops cleanly"

# == carve-cp: the resize action ================================================
if command -v curl >/dev/null; then
	cp_setup
	tap_at_exit cp_stop
	cp_start || tap_bail "carve-cp did not start"
	carved_setup_cp rscp "$node" "$full_host"
	carved_start || tap_bail "carved rscp did not start"
	tap_ok "node rscp is up at carve-cp" cp_wait_node_up rscp
	cmd_status() {
		_i=0
		while [ $_i -lt 100 ]; do
			_s=$(cp_admin GET "/v1/commands/$1" | jq -r .status)
			case "$_s" in succeeded|failed) echo "$_s"; return 0 ;; esac
			sleep 0.1; _i=$((_i + 1))
		done
		echo "$_s"
	}
	r=$(cp_admin POST /v1/vms '{"name":"carve-rs-cp","vcpus":2,"memory_mib":1024,"node":"rscp"}')
	vm=$(printf '%s' "$r" | jq -r .id)
	tap_is "$(cmd_status "$(printf '%s' "$r" | jq -r .command_id)")" succeeded "carve-cp creates a VM on rscp"
	r=$(cp_admin POST "/v1/vms/$vm/actions" '{"action":"resize","vcpus":4,"memory_mib":2048}')
	tap_is "$(cp_code)" 202 "POST actions {resize} is accepted (202)"
	c=$(printf '%s' "$r" | jq -r .command_id)
	tap_is "$(cmd_status "$c")" succeeded "the resize ran on the node"
	tap_is "$(cp_admin GET "/v1/commands/$c" | jq -r '.result.applied')" live "its result came back (applied live)"
	tap_is "$(cp_admin GET "/v1/vms/$vm" | jq -r '"\(.vcpus) \(.memory_mib) \(.desired_state)"')" \
	    "4 2048 running" "the VM's record has the new size; desired state unchanged"
	carved_use rscp
	tap_is "$(size_of carve-rs-cp)" "4 2048" "and so has the node"
	# Judge room only once a heartbeat has reported the grown VM.
	node_vcpus_are() { [ "$(cp_admin GET /v1/nodes/rscp | jq -r .capacity.VCPU.allocated)" = "$1" ]; }
	tap_ok "the node's next report counts the new size" wait_for "report" 15 node_vcpus_are 4
	r=$(cp_admin POST "/v1/vms/$vm/actions" '{"action":"resize","vcpus":9}')
	tap_is "$(cp_code) $(printf '%s' "$r" | jq -r .error.code)" "409 insufficient_capacity" \
	    "growth beyond the node's free capacity: 409 before anything is posted"
	r=$(cp_admin POST "/v1/vms/$vm/actions" '{"action":"resize"}')
	tap_is "$(cp_code) $(printf '%s' "$r" | jq -r .error.code)" "400 invalid_argument" "a resize without a size: 400"
	r=$(cp_admin POST "/v1/vms/$vm/actions" '{"action":"stop","vcpus":2}')
	tap_is "$(cp_code)" 400 "sizes with another action: 400"
	r=$(cp_admin POST "/v1/vms/$vm/actions" '{"action":"resize","vcpus":1,"memory_mib":512}')
	tap_is "$(cmd_status "$(printf '%s' "$r" | jq -r .command_id)")" succeeded "a shrink is posted and runs"
	tap_is "$(cp_admin GET "/v1/vms/$vm" | jq -r '"\(.vcpus) \(.memory_mib)"')" "1 512" "the record follows"
	carved_stop
	tap_is "$?" 0 "carved rscp stops cleanly"
	cp_stop
	tap_is "$?" 0 "carve-cp stops cleanly"
else
	tap_skip "carve-cp resize action" "curl not installed"
fi

# == real libvirtd and a TCG guest ==============================================
real_reason=
[ "$(id -u)" = 0 ] || real_reason="needs root (libvirtd, qemu:///system)"
command -v qemu-system-x86_64 >/dev/null || real_reason="qemu-system-x86 not installed"
if [ -n "$real_reason" ]; then
	tap_skip "resizing a real guest" "$real_reason"
	tap_done
fi

guest=${CARVE_GUEST_DIR:-$top_builddir/tests/guest/out}
"$top_srcdir/tests/guest/mk-guest.sh" "$guest" >&2 || tap_bail "cannot build the test guest"
libvirtd_ensure || tap_bail "libvirtd not available"
tap_at_exit libvirtd_stop_if_started
V="virsh -q -c qemu:///system"
kdir=$(mktemp -d /var/tmp/carve-rs-kernels.XXXXXX)
chmod 0755 "$kdir"
cp "$guest/vmlinuz" "$guest/initrd.gz" "$kdir/"
chmod 0644 "$kdir"/*
tap_at_exit "rm -rf '$kdir'"
vtype=${CARVE_VIRT_TYPE:-qemu}

carved_setup rsreal qemu:///system "[libvirt]\ndomain_type = $vtype\nkernel_dir = $kdir"
awk '/^\[libvirt\]/{ if (seen) next; seen=1 } { print }' "$CARVED_DIR/carved.conf" > "$CARVED_DIR/c.tmp" && mv "$CARVED_DIR/c.tmp" "$CARVED_DIR/carved.conf"
cleanup_real() {
	for d in $($V list --all --name | grep '^carve-rs-'); do
		$V destroy "$d" >/dev/null 2>&1; $V undefine "$d" >/dev/null 2>&1
	done
	case "$($V pool-dumpxml "$CARVED_POOL" 2>/dev/null | sed -n 's:.*<path>\(.*\)</path>.*:\1:p')" in
	"$TEST_TMPDIR"/*) $V pool-destroy "$CARVED_POOL" >/dev/null 2>&1; $V pool-undefine "$CARVED_POOL" >/dev/null 2>&1 ;;
	esac
}
cleanup_real
tap_at_exit cleanup_real
carved_start || tap_bail "carved did not start"

log=
# the last "SIZE cpus=N memtotal_kb=M" the guest printed, as "N M"
guest_size() { sed -n 's/.*SIZE cpus=\([0-9]*\) memtotal_kb=\([0-9]*\).*/\1 \2/p' "$log" | tail -1; }
guest_cpus() { guest_size | cut -d' ' -f1; }
guest_mem() { guest_size | cut -d' ' -f2; }
# CMP KB: the guest's MemTotal compares (-lt/-gt) with KB
guest_mem_is() { _m=$(guest_mem); [ -n "$_m" ] && [ "$_m" "$1" "$2" ]; }
used_kib() { $V dominfo carve-rs-g1 | sed -n 's/^Used memory: *\([0-9]*\) KiB/\1/p'; }
balloon() { $V domstats --balloon carve-rs-g1 | sed -n 's/.*balloon.current=//p'; }
vcpus_of() { $V vcpucount carve-rs-g1 "$@"; }
used_is() { [ "$(used_kib)" = "$1" ]; }

r=$(ctl_json vm create carve-rs-g1 --vcpus 1 --memory 256 --kernel vmlinuz --initrd initrd.gz \
    --cmdline "console=ttyS0 panic=-1 sizemon memfill=90")
tap_is "$(printf '%s' "$r" | jq -r .status)" succeeded "create carve-rs-g1 (1 vCPU, 256 MiB) on the real host" || tap_diag "$r"
idg=$(printf '%s' "$r" | jq -r .vm_id)
log=/var/log/libvirt/qemu/carve-$idg.console.log
info=$($V dominfo carve-rs-g1)
tap_like "$info" "*Max memory:*524288 KiB*" "defined with room to grow: max memory 2 x 256 MiB"
tap_ok "current memory 256 MiB (once the balloon driver is up)" wait_for "balloon" 120 used_is 262144
tap_is "$(vcpus_of --config --maximum) $(vcpus_of --live --active)" "2 1" "vCPUs: maximum 2, current 1"
tap_ok "the guest is up and filled 90 MiB" wait_for "MEMFILL" 120 grep -q "MEMFILL 90" "$log"
tap_ok "the guest reports its size, the balloon holding it at 256 MiB" \
    wait_for "SIZE" 60 guest_mem_is -lt 270000
tap_is "$(guest_cpus)" 1 "the guest has 1 CPU"
m0=$(guest_mem)

r=$(ctl_json vm resize carve-rs-g1 --memory 192)
tap_is "$(outcome "$r")" "succeeded live 1 192 2 512" "memory down to 192 MiB: live" || tap_diag "$r"
tap_is "$(printf '%s' "$r" | jq -r '.result.warning // "none"')" none "no warning: the guest uses less"
tap_ok "virsh dominfo: used memory 192 MiB" wait_for "balloon" 60 used_is 196608
tap_is "$(balloon)" 196608 "virsh domstats --balloon: balloon.current 196608"
tap_ok "the guest's MemTotal went down by ~64 MiB" wait_for "guest mem" 30 guest_mem_is -lt $((m0 - 60000))
m1=$(guest_mem)
r=$(ctl_json vm resize carve-rs-g1 --memory 448)
tap_is "$(outcome "$r")" "succeeded live 1 448 2 512" "memory up to 448 MiB (within the 512 maximum): live"
tap_ok "virsh dominfo: used memory 448 MiB" wait_for "balloon" 60 used_is 458752
tap_ok "the guest's MemTotal went up by ~256 MiB" wait_for "guest mem" 30 guest_mem_is -gt $((m1 + 250000))

r=$(ctl_json vm resize carve-rs-g1 --vcpus 2)
tap_is "$(outcome "$r")" "succeeded live 2 448 2 512" "vCPUs 1 -> 2 (the maximum): hot-plugged live"
tap_is "$(vcpus_of --live --active)" 2 "virsh vcpucount --live: 2"
tap_ok "the guest brought its second CPU online" wait_for "guest cpus" 30 sh -c "[ \"\$(sed -n 's/.*SIZE cpus=\([0-9]*\).*/\1/p' '$log' | tail -1)\" = 2 ]"

# The warning reads the guest's balloon statistics (refreshed every 5 s):
# wait until they show what the guest filled, so a loaded machine does not
# race the shrink against a stale report.
guest_used_kib() {
	$V dommemstat carve-rs-g1 2>/dev/null |
	    awk '$1 == "available" { a = $2 } $1 == "usable" { u = $2 }
	    END { print (a && u) ? a - u : 0 }'
}
guest_uses_over() { [ "$(guest_used_kib)" -gt "$1" ]; }
tap_ok "the balloon statistics show the guest using more than 96 MiB" \
    wait_for "memory stats" 60 guest_uses_over 98304
r=$(ctl_json vm resize carve-rs-g1 --memory 96)
tap_is "$(outcome "$r")" "succeeded live 2 96 2 512" "memory down to 96 MiB, below what the guest uses"
tap_like "$(printf '%s' "$r" | jq -r .result.warning)" "*guest uses about*96 MiB*" \
    "the result warns that the guest uses more (balloon statistics)"
tap_diag "warning: $(printf '%s' "$r" | jq -r .result.warning)"

r=$(ctl_json vm resize carve-rs-g1 --vcpus 3)
tap_is "$(outcome "$r")" "succeeded next_boot 3 96 3 512" "vCPUs beyond the maximum: next_boot, maximum raised"
tap_is "$(vcpus_of --live --active) $(vcpus_of --config --active) $(vcpus_of --config --maximum)" \
    "2 3 3" "vcpucount: live 2, config 3 of a maximum 3"
cid=$(uuid)
r=$(ctl_json vm resize carve-rs-g1 --memory 640 --command-id "$cid")
tap_is "$(outcome "$r")" "succeeded next_boot 3 640 3 1280" "memory beyond the maximum: next_boot, maximum raised"
tap_like "$($V dominfo carve-rs-g1)" "*Max memory:*524288 KiB*" "the running guest keeps its maximum"
inactive=$($V dumpxml --inactive carve-rs-g1)
tap_like "$inactive" "*<memory unit='KiB'>1310720</memory>*<currentMemory unit='KiB'>655360</currentMemory>*" \
    "the persistent definition: 640 MiB of a 1280 MiB maximum"
tap_is "$(ctl_json vm resize carve-rs-g1 --memory 640 --command-id "$cid")" "$r" \
    "the same command id again: the first answer"
r=$(ctl_json vm resize carve-rs-g1 --memory 640)
tap_is "$(outcome "$r")" "succeeded next_boot 3 640 3 1280" "a new resize to the same size converges"
tap_is "$($V dumpxml --inactive carve-rs-g1)" "$inactive" "and leaves the definition as it was"

# -- a resize interrupted by kill -9 is recovered from libvirt -----------------
carved_stop
carved_start CARVED_TEST_DELAY_AFTER_MS=5000 || tap_bail "carved did not restart"
cid=$(uuid)
ctl_json vm resize carve-rs-g1 --memory 600 --command-id "$cid" >/dev/null 2>&1 &
bg=$!
wait_for "the effect" 20 sh -c "$V dumpxml --inactive carve-rs-g1 | grep -q \"<currentMemory unit='KiB'>614400<\""
carved_kill9
wait $bg 2>/dev/null
carved_start || tap_bail "carved did not restart"
r=$(ctl_json vm resize carve-rs-g1 --memory 600 --command-id "$cid")
tap_is "$(outcome "$r")" "succeeded next_boot 3 600 3 1280" "after kill -9 the resize is recovered and answered"
tap_like "$(cat "$CARVED_DIR/carved.log")" "*recovering command*$cid*" "through the recovery step"
tap_is "$(size_of carve-rs-g1)" "3 600" "the view has the size libvirt shows"

# -- after a stop/start the new size is live --------------------------------------
tap_is "$(status_of vm stop carve-rs-g1 --force)" succeeded "stop the guest"
lines=$(wc -l < "$log")
tap_is "$(status_of vm start carve-rs-g1)" succeeded "start it again"
info=$($V dominfo carve-rs-g1)
tap_like "$info" "*CPU(s):*3*" "virsh dominfo: 3 vCPUs"
tap_like "$info" "*Max memory:*1310720 KiB*" "virsh dominfo: maximum 1280 MiB"
tap_ok "virsh dominfo: used memory 600 MiB" wait_for "balloon" 60 used_is 614400
tap_is "$(vcpus_of --live --active)" 3 "virsh vcpucount --live: 3"
new_size() { tail -n +"$((lines + 1))" "$log" | sed -n 's/.*SIZE cpus=\([0-9]*\) memtotal_kb=\([0-9]*\).*/\1 \2/p' | tail -1; }
size_ok() { _s=$(new_size); [ "${_s%% *}" = 3 ] && [ "${_s#* }" -gt 450000 ] && [ "${_s#* }" -lt 620000 ]; }
tap_ok "the guest booted with 3 CPUs and ~600 MiB" wait_for "guest size" 120 size_ok
tap_diag "guest after restart: $(new_size)"

tap_is "$(status_of vm destroy carve-rs-g1)" succeeded "destroy carve-rs-g1"
tap_is "$($V list --all --name | grep -c '^carve-rs-')" 0 "nothing left in libvirt"
carved_stop
tap_is "$?" 0 "carved stops cleanly"
tap_done
