#!/bin/sh
# Exactly-once: a command id seen again is answered from the journal, also
# across a restart of carved, and never runs twice. libvirt state lives in
# libvirtd's test driver (test+unix:///default), held open by a virsh
# connection so it survives carved's restart.
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

carved_setup idem "$URI"
tap_at_exit carved_stop
carved_start || tap_bail "carved did not start"
ndoms() { virsh -c $URI list --all --name | grep -c "^$1\$"; }

C1=11111111-2222-4333-8444-555555555555
V1=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee
r1=$(ctl_json vm create idem1 --vcpus 1 --memory 128 --id $V1 --command-id $C1 | jq -cS .)
tap_is "$(printf '%s' "$r1" | jq -r .status)" succeeded "first delivery runs"
r2=$(ctl_json vm create idem1 --vcpus 1 --memory 128 --id $V1 --command-id $C1 | jq -cS .)
tap_is "$r2" "$r1" "second delivery gets the identical result"
tap_is "$(ndoms idem1)" 1 "one domain in libvirt"
tap_is "$(ctl_json commands --limit 100 | jq "[.[] | select(.command_id==\"$C1\")] | length")" 1 "one command record"

C0=99999999-2222-4333-8444-555555555555
r0=$(ctl_json vm create retry0 --vcpus 1 --memory 128 --command-id $C0 | jq -cS .)
tap_is "$(ctl_json vm create retry0 --vcpus 1 --memory 128 --command-id $C0 | jq -cS .)" "$r0" \
    "a CLI retry naming only its command id gets the first result"
tap_is "$(ndoms retry0)" 1 "and made one domain"

r3=$(ctl_json vm create other --vcpus 1 --memory 128 --command-id $C1 | jq -r .error.code)
tap_is "$r3" conflict "the same id for a different command is a conflict"

carved_stop
carved_start || tap_bail "carved did not restart"
r4=$(ctl_json vm create idem1 --vcpus 1 --memory 128 --id $V1 --command-id $C1 | jq -cS .)
tap_is "$r4" "$r1" "after a restart the journal answers, identically"
tap_is "$(ndoms idem1)" 1 "still one domain"
tap_like "$(grep -c 'answering from the journal' "$CARVED_DIR/carved.log")" "[1-9]*" "the log says it was answered from the journal"

D1=22222222-3333-4444-8555-666666666666
d1=$(ctl_json vm destroy idem1 --command-id $D1 | jq -cS .)
tap_is "$(printf '%s' "$d1" | jq -r .status)" succeeded "destroy runs"
tap_is "$(ndoms idem1)" 0 "the domain is gone"
d2=$(ctl_json vm destroy $V1 --command-id $D1 | jq -cS .)
tap_is "$d2" "$d1" "destroy re-delivered after the VM is gone: same success, not not_found"
tap_done
