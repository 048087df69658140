#!/bin/sh
# vm.rebuild and data disks at the command level, on libvirtd's test driver
# (test+unix:///default; volumes are metadata only there): a create with a
# data disk claims root + data in DISK_GIB and attaches vdb with serial
# carve-data0; a rebuild keeps the VM's id, name, size and data disk, puts
# a new root volume on the same or another image, records the image in the
# metadata, answers a re-sent command id from the journal and keeps a
# stopped VM stopped; an image larger than the root disk, a VM without an
# image and an unknown VM are refused with nothing touched; a carved killed
# in the middle of a rebuild (VM stopped, disk not yet replaced) or after
# it finishes the rebuild when it starts again; destroy leaves no volume.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/libvirtd.sh"
command -v jq >/dev/null || tap_skip_all "jq not installed"
command -v qemu-img >/dev/null || tap_skip_all "qemu-img not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "needs root (libvirtd)"

tmpdir_setup
libvirtd_ensure || tap_bail "libvirtd not available"
tap_at_exit libvirtd_stop_if_started
URI=test+unix:///default
V="virsh -q -c $URI"
# The test driver forgets everything when its last client leaves: hold on.
virsh -c $URI event --all --loop >/dev/null 2>&1 &
holder=$!
tap_at_exit "kill $holder 2>/dev/null"
sleep 0.3

img=$TEST_TMPDIR/img
mkdir -p "$img"
qemu-img create -q -f qcow2 "$img/a.qcow2" 64M
qemu-img create -q -f qcow2 "$img/b.qcow2" 32M
qemu-img create -q -f qcow2 "$img/big.qcow2" 3G
qemu-img create -q -f qcow2 "$img/c.qcow2" 16M
sum() { sha256sum "$img/$1" | cut -d' ' -f1; }
A=$(sum a.qcow2) B=$(sum b.qcow2) BIG=$(sum big.qcow2)
BAD=$(sum c.qcow2 | tr 0-9a-f 1-9a-f0)

carved_setup rbcmd "$URI"
drop_test_pool() {
	for d in $($V list --all --name | grep '^carve-rbc'); do
		$V destroy "$d" >/dev/null 2>&1; $V undefine "$d" >/dev/null 2>&1
	done
	$V pool-destroy "$CARVED_POOL" >/dev/null 2>&1
	$V pool-undefine "$CARVED_POOL" >/dev/null 2>&1
}
tap_at_exit drop_test_pool
tap_at_exit carved_kill9
carved_start || tap_bail "carved did not start"

status_of() { printf '%s' "$1" | jq -r '.error.code // .status'; }
disk_allocated() { ctl_json capacity | jq -r .DISK_GIB.allocated; }
md() { $V metadata "$1" https://carve.dev/xmlns/vm/1 2>/dev/null; }
vols() { $V vol-list "$CARVED_POOL" 2>/dev/null | awk '{print $1}' | grep "^$1-" | sort | tr '\n' ' '; }
# Wait until command $1 has a result; print the result.
wait_result() {
	_i=0
	while [ $_i -lt 150 ]; do
		_r=$(ctl_json commands --limit 1000 2>/dev/null | jq -c ".[] | select(.command_id==\"$1\")")
		[ -n "$_r" ] && { echo "$_r"; return 0; }
		sleep 0.1; _i=$((_i + 1))
	done
	echo '{}'
}
running_inflight() {
	ctl_json status | jq -e ".inflight[] | select(.command_id==\"$1\" and .state==\"running\")"
}

# -- create with a data disk ----------------------------------------------------
before=$(disk_allocated)
r=$(ctl_json vm create carve-rbc1 --vcpus 1 --memory 128 --disk-gib 1 \
    --image-url "file://$img/a.qcow2" --image-sha256 "$A" --image-format qcow2 \
    --data-disk 2)
tap_is "$(status_of "$r")" succeeded "create with one data disk" || tap_diag "$r"
id=$(printf '%s' "$r" | jq -r .vm_id)
tap_is "$(printf '%s' "$r" | jq -c .result.data_disks)" '[{"size_gib":2}]' "the result lists the data disk"
tap_is "$(($(disk_allocated) - before))" 3 "DISK_GIB counts the root disk and the data disk"
tap_is "$(vols "$id")" "$id-data0.qcow2 $id-root.qcow2 $id-seed.iso " "root, data and seed volumes in the pool"
xml=$($V dumpxml carve-rbc1)
tap_like "$xml" "*<target dev='vdb' bus='virtio'/>*<serial>carve-data0</serial>*" "the data disk is vdb with serial carve-data0"
tap_like "$(md carve-rbc1)" "*<data_disk_gib>2</data_disk_gib>*" "the metadata records the data disk's size"
tap_like "$(md carve-rbc1)" "*<image_sha256>$A</image_sha256>*" "and the image"
show=$(ctl_json vm show carve-rbc1)
tap_is "$(printf '%s' "$show" | jq -r '"\(.image.sha256) \(.image.format) \(.data_disks[0].size_gib)"')" "$A qcow2 2" "vm show reports image and data disk"
data_key=$($V vol-key "$id-data0.qcow2" --pool "$CARVED_POOL")

# -- rebuild from the same image ---------------------------------------------------
CR1=cccccccc-0000-4000-8000-0000000000a1
r=$(ctl_json vm rebuild carve-rbc1 --command-id $CR1)
tap_is "$(status_of "$r")" succeeded "rebuild from the VM's own image" || tap_diag "$r"
tap_is "$(printf '%s' "$r" | jq -r '"\(.vm_id) \(.result.name) \(.result.state) \(.result.disk_gib) \(.result.image.sha256)"')" \
    "$id carve-rbc1 running 1 $A" "result: same id and name, running, root size and image"
tap_like "$(md carve-rbc1)" "*<rebuilt_by>$CR1</rebuilt_by>*<was_running>true</was_running>*" "metadata: rebuilt_by and was_running"
r2=$(ctl_json vm rebuild carve-rbc1 --command-id $CR1)
tap_is "$(printf '%s' "$r2" | jq -c 'del(.finished_at)')" "$(printf '%s' "$r" | jq -c 'del(.finished_at)')" "the same command id is answered, not run again"
tap_is "$(ctl_json commands --limit 1000 | jq "[.[] | select(.command_id==\"$CR1\")] | length")" 1 "one result for it"
tap_is "$($V vol-key "$id-data0.qcow2" --pool "$CARVED_POOL")" "$data_key" "the data disk volume is kept"
tap_is "$(vols "$id")" "$id-data0.qcow2 $id-root.qcow2 $id-seed.iso " "and so is the seed; one root volume"

# -- rebuild onto another image ---------------------------------------------------
r=$(ctl_json vm rebuild carve-rbc1 --image-url "file://$img/b.qcow2" --image-sha256 "$B" --image-format qcow2)
tap_is "$(status_of "$r")" succeeded "rebuild onto another image" || tap_diag "$r"
tap_like "$($V vol-dumpxml "$id-root.qcow2" --pool "$CARVED_POOL")" "*<backingStore>*$B.qcow2*" "the new root volume is on the new base"
tap_is "$(ctl_json vm show carve-rbc1 | jq -r .image.sha256)" "$B" "the VM now reports the new image"
tap_is "$(($(disk_allocated) - before))" 3 "DISK_GIB unchanged"
r=$(ctl_json vm rebuild carve-rbc1)
tap_is "$(printf '%s' "$r" | jq -r .result.image.sha256)" "$B" "a rebuild without an image reuses the VM's current one"

# -- refusals ------------------------------------------------------------------------
md_before=$(md carve-rbc1)
r=$(ctl_json vm rebuild carve-rbc1 --image-url "file://$img/big.qcow2" --image-sha256 "$BIG" --image-format qcow2)
tap_is "$(status_of "$r")" invalid_argument "an image larger than the root disk is refused" || tap_diag "$r"
tap_like "$(printf '%s' "$r" | jq -r .error.message)" "*does not fit the root disk of 1 GiB*" "the message says why"
tap_is "$(md carve-rbc1)" "$md_before" "the VM's record is untouched"
tap_is "$($V domstate carve-rbc1)" running "and it still runs"
r=$(ctl_json vm rebuild carve-rbc1 --image-url "file://$img/c.qcow2" --image-sha256 "$BAD" --image-format qcow2)
tap_is "$(status_of "$r")" invalid_argument "an image whose sha256 does not match is refused"
tap_is "$(md carve-rbc1)" "$md_before" "the VM's record is untouched"
r=$(ctl_json vm snapshot create carve-rbc1 keep1)
tap_is "$(status_of "$r")" succeeded "a snapshot of the VM" || tap_diag "$r"
r=$(ctl_json vm rebuild carve-rbc1)
tap_is "$(status_of "$r")" conflict "a VM with snapshots is not rebuilt (they live in the root disk it replaces)" || tap_diag "$r"
tap_is "$(ctl_json vm snapshots carve-rbc1 | jq -r '.snapshots[].name')" keep1 "and its snapshot is still there"
r=$(ctl_json vm snapshot delete carve-rbc1 keep1)
tap_is "$(status_of "$r")" succeeded "the snapshot deleted" || tap_diag "$r"
r=$(ctl_json vm create carve-rbc2 --vcpus 1 --memory 128 --data-disk 1)
tap_is "$(status_of "$r")" succeeded "a VM without an image, with a data disk"
id2=$(printf '%s' "$r" | jq -r .vm_id)
tap_is "$(vols "$id2")" "$id2-data0.qcow2 " "gets its data disk volume alone"
r=$(ctl_json vm rebuild carve-rbc2)
tap_is "$(status_of "$r")" invalid_argument "a VM without an image cannot be rebuilt"
tap_like "$(printf '%s' "$r" | jq -r .error.message)" "*nothing to rebuild*" "the message says why"
r=$(ctl_json vm rebuild aaaaaaaa-0000-4000-8000-00000000dead)
tap_is "$(status_of "$r")" not_found "an unknown VM is not found"
r=$(ctl_json vm create carve-rbc3 --vcpus 1 --memory 128 --data-disk 0)
tap_is "$(status_of "$r")" invalid_argument "a data disk of 0 GiB is refused"
tap_is "$(ctl_json vm show carve-rbc3 2>/dev/null | jq -r ".id // empty")" "" "and nothing is made"

# -- a stopped VM stays stopped ---------------------------------------------------
ctl_json vm stop carve-rbc1 --force >/dev/null
r=$(ctl_json vm rebuild carve-rbc1)
tap_is "$(printf '%s' "$r" | jq -r '"\(.status) \(.result.state)"')" "succeeded shutoff" "rebuilding a stopped VM leaves it stopped"
ctl_json vm start carve-rbc1 >/dev/null

# -- killed with the VM stopped and the disk not yet replaced ------------------------
carved_stop
carved_start CARVED_TEST_DELAY_MID_MS=20000 || tap_bail "carved did not start"
CR2=cccccccc-0000-4000-8000-0000000000a2
ctl_json vm rebuild carve-rbc1 --image-url "file://$img/a.qcow2" --image-sha256 "$A" \
    --image-format qcow2 --command-id $CR2 >/dev/null 2>&1 &
tap_ok "the rebuild is running" wait_for "rebuild running" 10 running_inflight $CR2
tap_ok "it has stopped the VM" wait_for "VM stopped" 10 sh -c "$V domstate carve-rbc1 | grep -q 'shut off'"
tap_like "$(md carve-rbc1)" "*<rebuilding>$CR2</rebuilding>*<was_running>true</was_running>*" "and marked the rebuild under way"
carved_kill9
carved_start || tap_bail "carved did not restart"
r=$(wait_result $CR2)
tap_is "$(printf '%s' "$r" | jq -r '"\(.status) \(.result.state) \(.result.recovered) \(.result.image.sha256)"')" \
    "succeeded running true $A" "after the restart the rebuild is finished and the VM runs again" || tap_diag "$r"
tap_like "$(md carve-rbc1)" "*<rebuilt_by>$CR2</rebuilt_by>*" "metadata: rebuilt_by the recovered command"
tap_unlike_rebuilding() { ! md carve-rbc1 | grep -q '<rebuilding>'; }
tap_ok "and no rebuild marked under way" tap_unlike_rebuilding
tap_like "$($V vol-dumpxml "$id-root.qcow2" --pool "$CARVED_POOL")" "*<backingStore>*$A.qcow2*" "the root volume is on the image it asked for"

# -- killed after the effect, before the result --------------------------------------
carved_stop
carved_start CARVED_TEST_DELAY_AFTER_MS=20000 || tap_bail "carved did not start"
CR3=cccccccc-0000-4000-8000-0000000000a3
ctl_json vm rebuild carve-rbc1 --command-id $CR3 >/dev/null 2>&1 &
tap_ok "the next rebuild has done its work" wait_for "rebuilt_by CR3" 15 sh -c "$V metadata carve-rbc1 https://carve.dev/xmlns/vm/1 | grep -q '$CR3'"
carved_kill9
carved_start || tap_bail "carved did not restart"
r=$(wait_result $CR3)
tap_is "$(printf '%s' "$r" | jq -r '"\(.status) \(.result.state) \(.result.recovered)"')" "succeeded running true" "recovered as done: only the run state is ensured" || tap_diag "$r"
# What the restarted carved logged (carved.log spans every run): the kill
# may come before or after the killed run logged its replacement.
tap_is "$(awk '/ started: node /{n=0} /rebuilt on image/{n++} END{print n+0}' "$CARVED_DIR/carved.log")" 0 \
    "the recovery did not replace the disk again"
tap_is "$(ctl_json vm rebuild carve-rbc1 --command-id $CR3 | jq -r .result.recovered)" true "a re-sent id gets that result"

# -- destroy ---------------------------------------------------------------------------
ctl_json vm destroy carve-rbc1 >/dev/null
ctl_json vm destroy carve-rbc2 >/dev/null
tap_is "$(vols "$id")$(vols "$id2")" "" "destroy deleted every volume, data disks included"
tap_is "$(disk_allocated)" "$before" "and DISK_GIB is free again"
tap_done
