#!/bin/sh
# carve-cp's side of live migration, with the agents played by curl (node
# certificates, long poll, results, progress, heartbeats): the admin
# migrate action and its refusals before any command is sent (no room, an
# incompatible CPU, a drained or unknown target, the source itself, a VM
# that is busy or not running, the per-node limits), the prepare -> migrate
# -> finish sequence with the prepare result carried into vm.migrate and
# progress shown on the migration, the VM locked while it moves and found
# on the target after, a prepare refused at the target, cancels while
# preparing and while migrating, a vm.migrate that failed although the VM
# arrived, a carve-cp restart and a kill -9 mid-migration, and evacuations
# (a drain reported by heartbeat and POST /v1/nodes/{name}/evacuate) that
# move a node's VMs one at a time. Fast and deterministic: no libvirt.
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
SERVE="--heartbeat-interval 1 --node-ttl 600 --poll-timeout 5"

cp_init || tap_bail "cannot init carve-cp"
cp_start $SERVE || tap_bail "carve-cp did not start"

# -- three fake hosts: two x86_64 with room, one aarch64 ------------------------
cap() {	# cap VCPUS MEMORY_MIB DISK_GIB: all free
	jq -n --argjson v "$1" --argjson m "$2" --argjson d "$3" '
	  def inv($t): {total:$t,reserved:0,allocation_ratio:1.0,allocated:0,
	    allocatable:$t,free:$t};
	  {VCPU:inv($v),MEMORY_MIB:inv($m),DISK_GIB:inv($d)}'
}
host() {	# host NAME ARCH: aarch64 in the flat form of older agents
	if [ "$2" = aarch64 ]; then
		jq -n --arg n "$1" --arg a "$2" '{hostname:$n,cpus:8,
		  cpu_arch:$a,cpu_vendor:"ARM",cpu_model:"cortex-a72",
		  cpu_features:["fp"]}'
	else
		jq -n --arg n "$1" --arg a "$2" '{hostname:$n,cpus:8,
		  cpu:{arch:$a,vendor:"Intel",
		  model:"Skylake-Client",features:["vmx","aes"]}}'
	fi
}
register() {	# register NODE ARCH VCPUS MEMORY DISK [SCHEDULABLE]
	jq -n --argjson h "$(host "$1" "$2")" --argjson c "$(cap "$3" "$4" "$5")" \
	    --argjson s "${6:-true}" -c \
	    '{agent_version:"0.1.0",schedulable:$s,host:$h,capacity:$c}' |
	    { read -r reg; cp_node "$1" "$N" PUT "/v1/nodes/$1" "$reg"; }
}
for n in a b c; do
	cp_enroll $n "$N" || tap_bail "cannot enroll $n"
done
tap_is "$(st "$(register a x86_64 8 8192 100)") $(st "$(register b x86_64 8 4096 100)") $(st "$(register c aarch64 64 65536 1000)")" \
    "200 200 200" "three hosts registered (c: aarch64 with the most room)"

# -- the fake agent --------------------------------------------------------------
# The node's commands without a result, as a JSON array.
pending() {
	body "$(cp_node "$1" "$N" GET "/v1/nodes/$1/commands?cursor=0")" |
	    jq -c '[.commands[].command]'
}
# The first pending command of TYPE on NODE (JSON), or "null".
pending_of() {
	pending "$1" | jq -c --arg t "$2" '[.[] | select(.type == $t)][0]'
}
# answer NODE COMMAND_JSON STATUS RESULT_JSON|ERROR_JSON
answer() {
	_t=$(now_ms)
	if [ "$3" = succeeded ]; then
		_r=$(printf '%s' "$2" | jq -c --argjson r "$4" --argjson t "$_t" \
		    '{command_id:.id,type,vm_id,status:"succeeded",result:$r,
		      accepted_at:$t,finished_at:$t}')
	else
		_r=$(printf '%s' "$2" | jq -c --argjson e "$4" --argjson t "$_t" \
		    '{command_id:.id,type,vm_id,status:"failed",error:$e,
		      accepted_at:$t,finished_at:$t}')
	fi
	st "$(cp_node "$1" "$N" POST "/v1/commands/$(printf '%s' "$2" |
	    jq -r .id)/result" "$_r")"
}
mig() { body "$(cp_admin GET "/v1/migrations/$1")"; }
vmrec() { body "$(cp_admin GET "/v1/vms/$1")"; }
PREP='{"libvirt_uri":"qemu+tls://TARGET.example/system","migrate_uri":"tcp://10.0.0.9","disks":{"vda":"/var/lib/carve/pool/VM.qcow2","hdc":"/var/lib/carve/pool/VM-seed.iso"},"console_log":"/var/log/carve/carve-VM.console.log"}'
STATS='{"dest_node":"TARGET","elapsed_ms":2100,"downtime_ms":35,"data_transferred_bytes":95420416,"iterations":3}'
# Play the target's prepare (succeeded) for the VM's pending migration.
prepare_ok() {	# prepare_ok TARGET
	_c=$(pending_of "$1" vm.migrate.prepare)
	answer "$1" "$_c" succeeded "$(printf '%s' "$PREP" | sed "s/TARGET/$1/")"
}
migrate_ok() {	# migrate_ok SOURCE TARGET
	_c=$(pending_of "$1" vm.migrate)
	answer "$1" "$_c" succeeded "$(printf '%s' "$STATS" | sed "s/TARGET/$2/")"
}
finish() {	# finish TARGET arrived|released
	_c=$(pending_of "$1" vm.migrate.finish)
	answer "$1" "$_c" succeeded "{\"outcome\":\"$2\"}"
}
# Create a running VM on NODE: prints its id.
mkvm() {	# mkvm NAME NODE [MEMORY]
	_o=$(cp_admin POST /v1/vms "{\"name\":\"$1\",\"vcpus\":2,\"memory_mib\":${3:-1024},\"disk_gib\":10,\"node\":\"$2\"}")
	_id=$(body "$_o" | jq -r .id)
	_c=$(pending_of "$2" vm.create)
	answer "$2" "$_c" succeeded "{\"vm_id\":\"$_id\",\"name\":\"$1\",\"state\":\"running\"}" >/dev/null
	echo "$_id"
}

vm1=$(mkvm web1 a)
tap_is "$(vmrec "$vm1" | jq -c '[.node,.state]')" '["a","running"]' "a running VM on host a"

# -- refusals before any command is sent -----------------------------------------
nb=$(pending b | jq length)
out=$(cp_admin POST "/v1/vms/$vm1/actions" '{"action":"migrate","target_node":"c"}')
tap_is "$(st "$out") $(code "$out")" "409 conflict" "an explicit target of another CPU architecture: 409"
tap_like "$(body "$out" | jq -r .error.message)" '*"c"*aarch64*x86_64*' "... saying which CPU and why"
out=$(cp_admin POST "/v1/vms/$vm1/actions" '{"action":"migrate","target_node":"a"}')
tap_like "$(st "$out") $(body "$out" | jq -r .error.message)" "409 *already runs on*" "the source as target: 409"
out=$(cp_admin POST "/v1/vms/$vm1/actions" '{"action":"migrate","target_node":"nosuch"}')
tap_is "$(st "$out") $(code "$out")" "404 not_found" "an unknown target: 404"
out=$(cp_admin POST "/v1/vms/$vm1/actions" '{"action":"migrate","max_downtime_ms":0}')
tap_is "$(st "$out") $(code "$out")" "400 invalid_argument" "max_downtime_ms 0: 400"
out=$(cp_admin POST "/v1/vms/$vm1/actions" '{"action":"migrate","timeout_s":5}')
tap_is "$(st "$out") $(code "$out")" "400 invalid_argument" "timeout_s below 10: 400"
out=$(cp_admin POST "/v1/vms/$vm1/actions" '{"action":"migrate","force":true}')
tap_is "$(st "$out") $(code "$out")" "400 invalid_argument" "an unknown key: 400"
big=$(mkvm big1 a 6000)
out=$(cp_admin POST "/v1/vms/$big/actions" '{"action":"migrate"}')
tap_is "$(st "$out") $(code "$out")" "409 insufficient_capacity" \
    "no compatible host with room: insufficient_capacity"
tap_like "$(body "$out" | jq -r .error.message)" "*1 have an incompatible CPU and 1 lack room*" \
    "... counting why each host was passed over"
out=$(cp_admin POST "/v1/vms/$big/actions" '{"action":"migrate","target_node":"b"}')
tap_like "$(st "$out") $(code "$out") $(body "$out" | jq -r .error.message)" \
    '409 insufficient_capacity node "b" has *MiB of memory free*' "an explicit target without room: 409 saying so"
tap_is "$(pending b | jq length) $(cp_admin GET /v1/migrations | sed '$d')" "$nb []" \
    "nothing was sent and no migration recorded"

# -- A -> B: prepare, migrate, finish ---------------------------------------------
out=$(cp_admin POST "/v1/vms/$vm1/actions" '{"action":"migrate","max_downtime_ms":500,"bandwidth_mibps":100}')
tap_is "$(st "$out")" 202 "migrate is accepted (202)"
m1=$(body "$out" | jq -r .migration_id)
pc=$(body "$out" | jq -r .command_id)
tap_is "$(mig "$m1" | jq -c '[.state,.source,.target,.reason,.commands.prepare == "'"$pc"'",.max_downtime_ms,.bandwidth_mibps,.timeout_s]')" \
    '["preparing","a","b","admin",true,500,100,null]' \
    "the scheduler picked b (c's CPU differs); the migration is preparing"
c=$(pending_of b vm.migrate.prepare)
tap_is "$(printf '%s' "$c" | jq -c '[.id == "'"$pc"'",.vm_id == "'"$vm1"'",.args.source_node,.args.spec.name,.args.spec.memory_mib]')" \
    '[true,true,"a","web1",1024]' "b got vm.migrate.prepare with the VM's spec and the source"
tap_is "$(vmrec "$vm1" | jq -c '.migration | [.id == "'"$m1"'",.state,.target]')" '[true,"preparing","b"]' \
    "GET /v1/vms/{id} shows the migration"
tap_is "$(body "$(cp_admin GET /v1/vms)" | jq -r --arg v "$vm1" '.[] | select(.id == $v) | .migration.state')" \
    preparing "and so does the VM list"
tap_is "$(body "$(cp_admin GET /v1/nodes/b)" | jq '.capacity.MEMORY_MIB.free')" 4096 \
    "(b's report does not count the VM yet...)"
out=$(cp_admin POST /v1/vms '{"name":"fill","vcpus":1,"memory_mib":3500,"node":"b"}')
tap_is "$(st "$out") $(code "$out")" "409 insufficient_capacity" "... but its claim does: b cannot be filled meanwhile"
for a in '{"action":"stop"}' '{"action":"reboot"}' '{"action":"start"}'; do
	out=$(cp_admin POST "/v1/vms/$vm1/actions" "$a")
	tap_like "$(st "$out") $(code "$out") $(body "$out" | jq -r .error.message)" \
	    "409 conflict *being migrated*cancel*" "$(printf '%s' "$a" | jq -r .action) while migrating: 409"
done
out=$(cp_admin DELETE "/v1/vms/$vm1")
tap_is "$(st "$out") $(code "$out")" "409 conflict" "delete while migrating: 409"
out=$(cp_admin POST "/v1/vms/$vm1/actions" '{"action":"migrate"}')
tap_like "$(st "$out") $(body "$out" | jq -r .error.message)" "409 *already being migrated*" "a second migration of the VM: 409"
vm2=$(mkvm web2 a)
out=$(cp_admin POST "/v1/vms/$vm2/actions" '{"action":"migrate"}')
tap_like "$(st "$out") $(body "$out" | jq -r .error.message)" '409 *"a" already sends 1 migration*' \
    "another VM of the same source: 409 (one outgoing per host)"

tap_is "$(prepare_ok b)" 200 "b answers the prepare"
m=$(mig "$m1")
tap_is "$(printf '%s' "$m" | jq -r .state)" migrating "the migration is migrating"
c=$(pending_of a vm.migrate)
tap_is "$(printf '%s' "$c" | jq -c '[.id == "'"$(printf '%s' "$m" | jq -r .commands.migrate)"'",.args.dest_node,.args.dest_libvirt_uri,.args.dest_migrate_uri,.args.disks.vda,.args.disks.hdc,.args.console_log,.args.max_downtime_ms,.args.bandwidth_mibps,.args.timeout_s]')" \
    '[true,"b","qemu+tls://b.example/system","tcp://10.0.0.9","/var/lib/carve/pool/VM.qcow2","/var/lib/carve/pool/VM-seed.iso","/var/log/carve/carve-VM.console.log",500,100,600]' \
    "a got vm.migrate with the prepare's URIs, disks and console log and the limits"
out=$(cp_node a "$N" POST "/v1/commands/$(printf '%s' "$c" | jq -r .id)/progress" \
    '{"percent":42,"message":"iteration 2, 53 MiB remaining"}')
tap_is "$(st "$out") $(mig "$m1" | jq -c '[.progress.percent,.progress.message]')" \
    '200 [42,"iteration 2, 53 MiB remaining"]' "the source's progress shows on the migration"
tap_is "$(migrate_ok a b)" 200 "a reports the migration done"
tap_is "$(mig "$m1" | jq -r .state)" finishing "the migration is finishing"
tap_is "$(vmrec "$vm1" | jq -r .node)" a "the VM is still a's until the target confirms"
tap_is "$(finish b arrived)" 200 "b says the VM arrived"
m=$(mig "$m1")
tap_is "$(printf '%s' "$m" | jq -c '[.state,.error,.result.downtime_ms,.result.elapsed_ms,(.finished_at >= .started_at),.progress.percent]')" \
    '["done",null,35,2100,true,42]' "done: with vm.migrate's stats and the last progress"
tap_is "$(vmrec "$vm1" | jq -c '[.node,.state,.migration]')" '["b","running",null]' \
    "GET /v1/vms/{id}: the VM is on b now, no migration"
tap_is "$(pending a | jq length) $(pending b | jq length)" "0 0" "no command left on either host"
tap_is "$(body "$(cp_admin GET /v1/migrations)" | jq -c '[.[] | [.id == "'"$m1"'",.state]]')" \
    '[[true,"done"]]' "GET /v1/migrations lists it"
out=$(cp_admin POST "/v1/migrations/$m1/cancel")
tap_like "$(st "$out") $(body "$out" | jq -r .error.message)" "409 *over*" "cancelling a finished migration: 409"
out=$(cp_admin GET /v1/migrations/00000000-0000-4000-8000-000000000000)
tap_is "$(st "$out") $(code "$out")" "404 not_found" "an unknown migration: 404"

# -- B -> A with an explicit target; prepare refused at the target --------------------
# A fresh report from a: the VM that left is no longer counted there.
register a x86_64 8 8192 100 >/dev/null
out=$(cp_admin POST "/v1/vms/$vm1/actions" '{"action":"migrate","target_node":"a"}')
m2=$(body "$out" | jq -r .migration_id)
c=$(pending_of a vm.migrate.prepare)
tap_is "$(answer a "$c" failed '{"code":"insufficient_capacity","message":"a has 0 MiB free"}')" 200 \
    "a refuses the prepare"
tap_is "$(mig "$m2" | jq -r .state) $(pending b | jq length)" "finishing 0" \
    "the migration finishes (a releases what it may hold); nothing goes to the source"
tap_is "$(finish a released)" 200 "a released"
tap_is "$(mig "$m2" | jq -c '[.state,.error.code,.error.message,.commands.migrate]')" \
    '["failed","insufficient_capacity","a has 0 MiB free",null]' "failed, with the target's error"
tap_is "$(vmrec "$vm1" | jq -c '[.node,.migration]')" '["b",null]' "the VM stays on b"

# -- cancel while preparing -------------------------------------------------------------
out=$(cp_admin POST "/v1/vms/$vm1/actions" '{"action":"migrate","target_node":"a"}')
m3=$(body "$out" | jq -r .migration_id)
out=$(cp_admin POST "/v1/migrations/$m3/cancel")
tap_is "$(st "$out") $(body "$out" | jq -r .migration_id)" "202 $m3" "cancel while preparing: 202"
tap_is "$(pending a | jq -c '[.[].type]') $(mig "$m3" | jq -c '[.state,.cancel_requested]')" \
    '["vm.migrate.prepare","vm.migrate.finish"] ["finishing",true]' \
    "the finish is queued behind the prepare on the target; no vm.migrate"
prepare_ok a >/dev/null
tap_is "$(mig "$m3" | jq -c '[.state,.commands.migrate]') $(pending b | jq length)" '["finishing",null] 0' \
    "the late prepare result sends nothing"
finish a released >/dev/null
tap_is "$(mig "$m3" | jq -c '[.state,.error.message]')" '["failed","cancelled before the VM was sent"]' \
    "failed: cancelled"

# -- cancel while migrating ------------------------------------------------------------
out=$(cp_admin POST "/v1/vms/$vm1/actions" '{"action":"migrate","target_node":"a","bandwidth_mibps":1}')
m4=$(body "$out" | jq -r .migration_id)
prepare_ok a >/dev/null
out=$(cp_admin POST "/v1/migrations/$m4/cancel")
cc=$(body "$out" | jq -r .command_id)
tap_is "$(st "$out") $(pending b | jq -c '[.[].type]')" '202 ["vm.migrate","vm.migrate.cancel"]' \
    "cancel while migrating: vm.migrate.cancel to the source"
tap_is "$(mig "$m4" | jq -c '[.state,.cancel_requested,.commands.cancel == "'"$cc"'"]')" '["migrating",true,true]' \
    "the migration records the cancel"
out=$(cp_admin POST "/v1/migrations/$m4/cancel")
tap_is "$(st "$out") $(body "$out" | jq -r .command_id) $(pending b | jq length)" "202 $cc 2" \
    "a second cancel answers the same command"
answer b "$(pending_of b vm.migrate.cancel)" succeeded '{"cancelled":true}' >/dev/null
tap_is "$(mig "$m4" | jq -r .state)" migrating "the cancel's answer does not decide"
answer b "$(pending_of b vm.migrate)" failed '{"code":"conflict","message":"migration cancelled"}' >/dev/null
finish a released >/dev/null
tap_is "$(mig "$m4" | jq -c '[.state,.error.message]') $(vmrec "$vm1" | jq -r .node)" \
    '["failed","migration cancelled"] b' "failed, the VM stays on b"

# -- vm.migrate says failed, libvirt says it arrived -----------------------------------------
out=$(cp_admin POST "/v1/vms/$vm1/actions" '{"action":"migrate","target_node":"a","timeout_s":10}')
m5=$(body "$out" | jq -r .migration_id)
prepare_ok a >/dev/null
answer b "$(pending_of b vm.migrate)" failed '{"code":"hypervisor_error","message":"timed out after 10 s"}' >/dev/null
finish a arrived >/dev/null
tap_is "$(mig "$m5" | jq -c '[.state,.error.message]') $(vmrec "$vm1" | jq -r .node)" \
    '["done","timed out after 10 s"] a' "the target's word wins: done, the VM is on a"

# -- restart and kill -9 mid-migration ---------------------------------------------------
out=$(cp_admin POST "/v1/vms/$vm1/actions" '{"action":"migrate","target_node":"b"}')
m6=$(body "$out" | jq -r .migration_id)
prepare_ok b >/dev/null
cp_stop
tap_is "$?" 0 "carve-cp stops mid-migration (SIGTERM)"
cp_start $SERVE || tap_bail "carve-cp did not restart"
tap_is "$(mig "$m6" | jq -r .state) $(pending a | jq -c '[.[].type]')" 'migrating ["vm.migrate"]' \
    "after the restart: still migrating, vm.migrate delivered again"
migrate_ok a b >/dev/null
kill -KILL "$CP_PID"
wait "$CP_PID" 2>/dev/null
CP_PID=
cp_start $SERVE || tap_bail "carve-cp did not restart after kill -9"
tap_is "$(mig "$m6" | jq -r .state) $(pending b | jq -c '[.[].type]')" 'finishing ["vm.migrate.finish"]' \
    "after kill -9: finishing, the finish delivered"
finish b arrived >/dev/null
tap_is "$(mig "$m6" | jq -r .state) $(vmrec "$vm1" | jq -r .node)" "done b" "the migration completes on b"
tap_like "$(grep -c 'msg="migration done"' "$CP_DIR/carve-cp.log")" "[3-9]" "migrations are logged"

# -- drain: a heartbeat with schedulable=false evacuates the host -----------------------------
# a: web2 and big1 (running), and a stopped VM that cannot move live.
vm3=$(mkvm web3 a 512)
c=$(cp_admin POST "/v1/vms/$vm3/actions" '{"action":"stop"}')
answer a "$(pending_of a vm.stop)" succeeded "{\"vm_id\":\"$vm3\",\"state\":\"shutoff\"}" >/dev/null
register b x86_64 8 16384 100 >/dev/null	# room for web2 and big1
vmi() {	# vm_info of VM ID NAME STATE MEMORY
	jq -n --arg id "$1" --arg n "$2" --arg s "$3" --argjson m "$4" \
	    '{id:$id,name:$n,state:$s,vcpus:2,memory_mib:$m,disk_gib:10,created_at:1}'
}
hb() {	# hb NODE SEQ SCHEDULABLE VMS_JSON
	jq -n -c --argjson c "$(cap 8 8192 100)" --argjson seq "$2" \
	    --argjson s "$3" --argjson v "$4" \
	    '{seq:$seq,full:true,vms:$v,removed:[],capacity:$c,schedulable:$s}' |
	    { read -r h; cp_node "$1" "$N" POST "/v1/nodes/$1/heartbeat" "$h"; }
}
avms="[$(vmi "$vm2" web2 running 1024),$(vmi "$big" big1 running 6000),$(vmi "$vm3" web3 shutoff 512)]"
out=$(hb a 1 false "$avms")
tap_is "$(st "$out")" 200 "a reports itself drained"
tap_is "$(body "$(cp_admin GET /v1/nodes/a)" | jq -c '[.schedulable,.evacuation.reason,.evacuation.state,.evacuation.vms_left]')" \
    '[false,"drain","running",3]' "GET /v1/nodes/a: unschedulable, evacuation running, 3 VMs left"
out=$(cp_admin POST /v1/vms '{"name":"new1","vcpus":1,"memory_mib":128,"node":"a"}')
tap_is "$(st "$out")" 409 "nothing new is placed on a drained host"
# wait_mig SOURCE: the id of the migration under way off SOURCE
wait_mig() {
	_i=0
	while [ $_i -lt 50 ]; do
		_m=$(body "$(cp_admin GET "/v1/nodes/$1")" | jq -r '.evacuation.migration // empty')
		[ -n "$_m" ] && { echo "$_m"; return 0; }
		sleep 0.2
		_i=$((_i + 1))
	done
	return 1
}
moved=0
for i in 1 2; do
	em=$(wait_mig a) || break
	tap_is "$(mig "$em" | jq -c '[.reason,.source,.target]') $(pending b | jq -c '[.[].type]')" \
	    '["evacuation","a","b"] ["vm.migrate.prepare"]' "evacuation migration $i: a -> b, one at a time"
	prepare_ok b >/dev/null
	migrate_ok a b >/dev/null
	finish b arrived >/dev/null
	[ "$(mig "$em" | jq -r .state)" = done ] && moved=$((moved + 1))
done
tap_is "$moved" 2 "both running VMs moved"
i=0
while [ $i -lt 50 ] && [ "$(body "$(cp_admin GET /v1/nodes/a)" | jq -r .evacuation.state)" = running ]; do
	sleep 0.2
	i=$((i + 1))
done
tap_is "$(body "$(cp_admin GET /v1/nodes/a)" | jq -c '.evacuation | [.state,.vms_left,.vms_not_movable,.migrated,.failed,.migration]')" \
    '["incomplete",1,1,2,0,null]' "the evacuation ends; the stopped VM stays (not movable live)"
tap_is "$(body "$(cp_admin GET /v1/vms)" | jq -c '[.[] | [.name,.node]] | sort')" \
    '[["big1","b"],["web1","b"],["web2","b"],["web3","a"]]' "where every VM is now"

# -- evacuate on demand ------------------------------------------------------------------
hb a 2 true "[$(vmi "$vm3" web3 shutoff 512)]" >/dev/null
register b x86_64 8 8192 100 >/dev/null
register a x86_64 8 16384 100 >/dev/null
bvms="[$(vmi "$vm1" web1 running 1024),$(vmi "$vm2" web2 running 1024),$(vmi "$big" big1 running 6000)]"
hb b 1 true "$bvms" >/dev/null
out=$(cp_admin POST /v1/nodes/b/evacuate)
tap_is "$(st "$out") $(body "$out" | jq -c '[.reason,.state,.vms_left]')" '202 ["admin","running",3]' \
    "POST /v1/nodes/b/evacuate: 202 with the evacuation"
out=$(cp_admin POST /v1/nodes/nosuch/evacuate)
tap_is "$(st "$out")" 404 "evacuating an unknown node: 404"
em=$(wait_mig b)
tap_is "$(mig "$em" | jq -c '[.reason,.target]')" '["evacuation","a"]' "the first VM goes to a"
# Fail this one at the target: the evacuation skips it and goes on.
answer a "$(pending_of a vm.migrate.prepare)" failed '{"code":"hypervisor_error","message":"disk full"}' >/dev/null
finish a released >/dev/null
done_n=0
for i in 1 2; do
	em2=$(wait_mig b) || break
	[ "$em2" = "$em" ] && break
	em=$em2
	prepare_ok a >/dev/null
	migrate_ok b a >/dev/null
	finish a arrived >/dev/null
	done_n=$((done_n + 1))
done
i=0
while [ $i -lt 50 ] && [ "$(body "$(cp_admin GET /v1/nodes/b)" | jq -r .evacuation.state)" = running ]; do
	sleep 0.2
	i=$((i + 1))
done
tap_is "$done_n $(body "$(cp_admin GET /v1/nodes/b)" | jq -c '.evacuation | [.state,.vms_left,.migrated,.failed]')" \
    '2 ["incomplete",1,2,1]' "the others moved; the evacuation tried the failed one once"
tap_is "$(body "$(cp_admin GET /v1/nodes/b)" | jq -c .schedulable)" true \
    "an operator's evacuation leaves the agent's schedulable flag alone"
out=$(cp_admin POST /v1/vms '{"name":"new2","vcpus":1,"memory_mib":128,"node":"b"}')
tap_is "$(st "$out")" 202 "and once it is over, b takes VMs again"

cp_stop
tap_is "$?" 0 "carve-cp exits 0 (no leaks)"
tap_done
