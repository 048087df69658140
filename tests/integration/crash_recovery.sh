#!/bin/sh
# kill -9 carved mid-command, restart: commands accepted but unfinished are
# recovered against libvirt's real state; nothing is lost or done twice.
# Fault injection (CARVED_TEST_DELAY_{BEFORE,AFTER}_MS) holds a command
# before or after its effect so the kill lands where we want it.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/libvirtd.sh"
command -v jq >/dev/null || tap_skip_all "jq not installed"
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

carved_setup crash "$URI"
tap_at_exit carved_kill9

# Wait until command $1 is running inside carved.
wait_running() {
	_i=0
	while [ $_i -lt 100 ]; do
		ctl_json status | jq -e ".inflight[] | select(.command_id==\"$1\" and .state==\"running\")" >/dev/null 2>&1 && return 0
		sleep 0.1; _i=$((_i + 1))
	done
	return 1
}
# Wait until command $1 has a result; print its status.
wait_result() {
	_i=0
	while [ $_i -lt 100 ]; do
		_s=$(ctl_json commands --limit 1000 | jq -r ".[] | select(.command_id==\"$1\") | .status")
		[ -n "$_s" ] && { echo "$_s"; return 0; }
		sleep 0.1; _i=$((_i + 1))
	done
	echo none
}

# -- A: killed before the effect ----------------------------------------------
carved_start CARVED_TEST_DELAY_BEFORE_MS=5000 || tap_bail "carved did not start"
CA=aaaaaaaa-0000-4000-8000-00000000000a
VA=bbbbbbbb-0000-4000-8000-00000000000a
ctl_json vm create crashA --vcpus 1 --memory 128 --id $VA --command-id $CA >/dev/null 2>&1 &
tap_ok "create A is running inside carved" wait_running $CA
tap_is "$(ndoms crashA)" 0 "its effect has not happened yet"
carved_kill9
carved_start || tap_bail "carved did not restart"
tap_is "$(wait_result $CA)" succeeded "A recovered after restart: succeeded"
tap_is "$(ndoms crashA)" 1 "A's domain exists once"
tap_like "$(cat "$CARVED_DIR/carved.log")" "*accepted but never finished*" "the log names the recovery"
tap_is "$(ctl_json vm create crashA --vcpus 1 --memory 128 --id $VA --command-id $CA | jq -r .status)" succeeded "re-delivery of A answered"
tap_is "$(ndoms crashA)" 1 "and still once"
carved_stop

# -- B: killed after the effect, before the result ----------------------------
carved_start CARVED_TEST_DELAY_AFTER_MS=5000 || tap_bail "carved did not start"
CB=aaaaaaaa-0000-4000-8000-00000000000b
VB=bbbbbbbb-0000-4000-8000-00000000000b
ctl_json vm create crashB --vcpus 1 --memory 128 --id $VB --command-id $CB >/dev/null 2>&1 &
tap_ok "create B is running inside carved" wait_running $CB
_i=0; while [ "$(ndoms crashB)" = 0 ] && [ $_i -lt 50 ]; do sleep 0.1; _i=$((_i+1)); done
tap_is "$(ndoms crashB)" 1 "B's domain was made before the kill"
carved_kill9
carved_start || tap_bail "carved did not restart"
tap_is "$(wait_result $CB)" succeeded "B recovered: succeeded"
tap_is "$(ndoms crashB)" 1 "B's domain exists once, not twice"
tap_is "$(virsh -c $URI domstate crashB | head -1)" running "B is running"

# destroy killed after its effect
DB=aaaaaaaa-0000-4000-8000-0000000000db
carved_stop
carved_start CARVED_TEST_DELAY_AFTER_MS=5000 || tap_bail "carved did not start"
ctl_json vm destroy crashB --command-id $DB >/dev/null 2>&1 &
tap_ok "destroy B is running" wait_running $DB
carved_kill9
carved_start || tap_bail "carved did not restart"
tap_is "$(wait_result $DB)" succeeded "destroy B recovered: succeeded"
tap_is "$(ndoms crashB)" 0 "B is gone"
carved_stop

# -- C: a burst of creates, killed at a random point, then re-delivered ------
carved_start CARVED_TEST_DELAY_BEFORE_MS=100 || tap_bail "carved did not start"
i=1; pids=
while [ $i -le 20 ]; do
	n=$(printf '%02d' $i)
	ctl_json vm create burst$n --vcpus 1 --memory 64 \
	    --id cccccccc-0000-4000-8000-0000000000$n \
	    --command-id dddddddd-0000-4000-8000-0000000000$n >/dev/null 2>&1 &
	pids="$pids $!"
	i=$((i + 1))
done
sleep 0.5
carved_kill9
wait $pids
carved_start || tap_bail "carved did not restart"
i=1; ok=0
while [ $i -le 20 ]; do
	n=$(printf '%02d' $i)
	s=$(ctl_json vm create burst$n --vcpus 1 --memory 64 \
	    --id cccccccc-0000-4000-8000-0000000000$n \
	    --command-id dddddddd-0000-4000-8000-0000000000$n | jq -r .status)
	[ "$s" = succeeded ] && ok=$((ok + 1))
	i=$((i + 1))
done
tap_is "$ok" 20 "all 20 re-delivered creates succeed"
tap_is "$(virsh -c $URI list --all --name | grep -c '^burst')" 20 "exactly 20 domains: none lost, none doubled"
tap_is "$(ctl_json vm list | jq '[.[] | select(.name|startswith("burst"))] | length')" 20 "carved's view agrees"
carved_stop
tap_is "$?" 0 "carved stops cleanly"
tap_done
