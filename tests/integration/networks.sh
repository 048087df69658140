#!/bin/sh
# VM network interfaces ("networks" in vm.create):
#   1. on libvirtd's test driver (test+unix:///default, held open by a virsh
#      connection so virsh sees carved's domains): the NICs asked for are in
#      `virsh dumpxml` in order, with the MAC given and with the MAC carve
#      derives (52:54:00 + SHA-256("<vm_id>/<index>")), stable across a
#      destroy and re-create; the result lists them; names off carved.conf's
#      [network] allow-lists, bad and duplicate MACs are invalid_argument
#      and leave no domain and no claim; a bad allow-list stops carved -t;
#   2. on the system libvirtd with a real TCG guest: an isolated libvirt
#      network of this test's own (no IP, so no dnsmasq), allowed in
#      carved.conf; a VM with two NICs on it boots and its guest prints
#      "NIC eth0 <mac>" / "NIC eth1 <mac>" with the MACs carve gave.
# Domains are named carve-net*; the network and its bridge are made and
# removed by this test only.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/tap.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/carved.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/libvirtd.sh"
command -v jq >/dev/null || tap_skip_all "jq not installed"
command -v python3 >/dev/null || tap_skip_all "python3 not installed"
[ "$(id -u)" = 0 ] || tap_skip_all "needs root (libvirtd)"

tmpdir_setup
libvirtd_ensure || tap_bail "libvirtd not available"
tap_at_exit libvirtd_stop_if_started

# derived_mac VM_ID INDEX: what carve gives a NIC without a MAC.
derived_mac() {
	printf '%s/%s' "$1" "$2" | sha256sum |
	    sed 's/^\(..\)\(..\)\(..\).*/52:54:00:\1:\2:\3/'
}
# ifaces URI DOMAIN: one line per <interface>: "TYPE SOURCE MAC MODEL".
ifaces() {
	virsh -q -c "$1" dumpxml "$2" | python3 -c '
import sys, xml.etree.ElementTree as E
for i in E.parse(sys.stdin).getroot().findall("devices/interface"):
    t = i.get("type")
    print(t, i.find("source").get(t), i.find("mac").get("address"),
          i.find("model").get("type"))'
}

# ------------------------------------------------------------- test driver
T=test+unix:///default
virsh -c $T event --all --loop >/dev/null 2>&1 &
holder=$!
tap_at_exit "kill $holder 2>/dev/null"
sleep 0.3
drop_test_doms() {
	for d in $(virsh -c $T list --all --name 2>/dev/null | grep '^carve-net'); do
		virsh -c $T destroy "$d" >/dev/null 2>&1
		virsh -c $T undefine "$d" >/dev/null 2>&1
	done
}
drop_test_doms
tap_at_exit drop_test_doms

carved_setup nettest "$T" "[network]\nnetworks = default, carvetest-other\nbridges = br-carve0"
tap_at_exit carved_stop
carved_start || tap_bail "carved did not start"

V1=5d6e7f80-1a2b-4c3d-8e4f-a1b2c3d4e5f6
r=$(ctl_json vm create carve-net1 --vcpus 1 --memory 128 --id $V1 \
    --network default,mac=52:54:00:AB:CD:01 --bridge br-carve0 --network carvetest-other)
tap_is "$(printf '%s' "$r" | jq -r .status)" succeeded "create with three NICs" || tap_diag "$r"
m1=$(derived_mac $V1 1)
m2=$(derived_mac $V1 2)
tap_is "$(printf '%s' "$r" | jq -c .result.interfaces)" \
    "[{\"network\":\"default\",\"mac\":\"52:54:00:ab:cd:01\"},{\"bridge\":\"br-carve0\",\"mac\":\"$m1\"},{\"network\":\"carvetest-other\",\"mac\":\"$m2\"}]" \
    "the result lists every NIC with its MAC (given, lower-cased; derived)"
tap_is "$(ifaces $T carve-net1 | tr '\n' ';')" \
    "network default 52:54:00:ab:cd:01 virtio;bridge br-carve0 $m1 virtio;network carvetest-other $m2 virtio;" \
    "virsh dumpxml: the interfaces in order, with source, MAC and virtio model"
tap_like "$(ctl vm create carve-net9 --vcpus 1 --memory 128 --network default 2>&1)" \
    "*nic 0: network default, mac 52:54:00:??:??:??*" "carvectl prints the NIC and its MAC"
ctl_json vm destroy carve-net9 >/dev/null

# The derived MACs belong to the VM id: the same after destroy and re-create.
ctl_json vm destroy carve-net1 >/dev/null
r=$(ctl_json vm create carve-net1 --vcpus 1 --memory 128 --id $V1 \
    --bridge br-carve0 --bridge br-carve0 --network default)
tap_is "$(ifaces $T carve-net1 | tr '\n' ';')" \
    "bridge br-carve0 $(derived_mac $V1 0) virtio;bridge br-carve0 $m1 virtio;network default $m2 virtio;" \
    "re-created with the same id: the same derived MACs (two NICs on one bridge differ)"
ctl_json vm destroy carve-net1 >/dev/null

# -- refused: nothing made, nothing claimed ----------------------------------
claimed() { ctl_json capacity | jq -c '[.VCPU.allocated, .MEMORY_MIB.allocated]'; }
before=$(claimed)
bad() { # DESC WANT-MESSAGE-PATTERN ARGS...
	_d=$1 _p=$2
	shift 2
	_r=$(ctl_json vm create carve-net-bad --vcpus 1 --memory 128 "$@")
	tap_is "$(printf '%s' "$_r" | jq -r '.error.code // .status')" invalid_argument "$_d: invalid_argument"
	tap_like "$(printf '%s' "$_r" | jq -r .error.message)" "$_p" "$_d: the message says why"
}
bad "a network off the allow-list" \
    '*networks\[1\]: network "nope" is not allowed on this host; allowed networks: default, carvetest-other*' \
    --network default --network nope
bad "a bridge off the allow-list" \
    '*networks\[0\]: bridge "virbr9" is not allowed on this host; allowed bridges: br-carve0*' \
    --bridge virbr9
bad "a bridge that names an allowed network" '*bridge "default" is not allowed*' --bridge default
bad "a multicast MAC" '*is a multicast address*' --network default,mac=01:00:5e:00:00:01
bad "an all-zero MAC" '*must not be all zero*' --network default,mac=00:00:00:00:00:00
bad "a MAC that is not one" '*must be six pairs of hexadecimal digits*' --network default,mac=52:54:00:zz:00:01
bad "a MAC twice" '*networks\[1\]: mac 52:54:00:00:00:07 is also the mac of networks\[0\]*' \
    --network default,mac=52:54:00:00:00:07 --bridge br-carve0,mac=52:54:00:00:00:07
bad "a 16-byte bridge name" '*a bridge name has at most 15*' --bridge br-carve0-abcdefg
bad "a network name with markup" '*may only contain letters*' "--network=a'b"
r=$(ctl_json vm create carve-net-bad --vcpus 1 --memory 128 --network a,b 2>&1)
tap_like "$r" "*expected NAME\[,mac=MAC\]*" "carvectl refuses an unknown --network setting"
tap_is "$(virsh -c $T list --all --name | grep -c '^carve-net')" 0 "no refused create left a domain"
tap_is "$(ctl_json vm list | jq length)" 0 "nor a VM in carved's view"
tap_is "$(claimed)" "$before" "nor a capacity claim"

# A host that allows nothing says so.
carved_setup netnone "$T"
carved_start || tap_bail "the second carved did not start"
r=$(ctl_json vm create carve-net-bad --vcpus 1 --memory 128 --network default)
tap_like "$(printf '%s' "$r" | jq -r .error.message)" \
    '*network "default" is not allowed on this host, which allows no networks (\[network\] networks is empty)*' \
    "without an allow-list no network is allowed"
carved_stop
carved_use nettest

# A bad allow-list stops carved at start-up, naming file:line.
printf '[network]\nnetworks = ok\nbridges = br0, br0\n' > "$TEST_TMPDIR/bad.conf"
msg=$("$CARVED_BIN" -t -c "$TEST_TMPDIR/bad.conf" 2>&1)
tap_is "$?" 1 "carved -t refuses a bridge listed twice" || tap_diag "$msg"
tap_like "$msg" "*bad.conf:3: \[network\] bridges: *br0* is listed twice*" "and names file:line and the entry"
carved_stop

# ------------------------------------------------------------ a real guest
if ! command -v qemu-system-x86_64 >/dev/null; then
	tap_skip "a real guest sees its NICs" "qemu-system-x86 not installed"
	tap_done
fi
Q=qemu:///system
guest=${CARVE_GUEST_DIR:-$top_builddir/tests/guest/out}
# mk-guest.sh rebuilds the guest when it is older than the script (which
# gained virtio_net for this test).
"$top_srcdir/tests/guest/mk-guest.sh" "$guest" >&2 || tap_bail "cannot build the test guest"
kdir=$(mktemp -d /var/tmp/carve-net-kernels.XXXXXX)
chmod 0755 "$kdir"
cp "$guest/vmlinuz" "$guest/initrd.gz" "$kdir/"
chmod 0644 "$kdir"/*
tap_at_exit "rm -rf '$kdir'"
vtype=${CARVE_VIRT_TYPE:-qemu}

# An isolated network: no <ip>, so libvirt runs no dnsmasq; the bridge name
# stays within IFNAMSIZ (carvet + at most 7 pid digits).
net=carvetest-net-$$
br=carvet$$
cat > "$TEST_TMPDIR/net.xml" <<EOX
<network>
  <name>$net</name>
  <bridge name='$br' stp='off' delay='0'/>
</network>
EOX
drop_net() {
	virsh -q -c $Q net-destroy "$net" >/dev/null 2>&1
	virsh -q -c $Q net-undefine "$net" >/dev/null 2>&1
}
virsh -q -c $Q net-define "$TEST_TMPDIR/net.xml" >/dev/null &&
    virsh -q -c $Q net-start "$net" >/dev/null ||
    { drop_net; tap_bail "cannot define and start libvirt network $net"; }
tap_at_exit drop_net

carved_setup netguest $Q "[libvirt]\ndomain_type = $vtype\nkernel_dir = $kdir\n[network]\nnetworks = $net"
awk '/^\[libvirt\]/{ if (seen) next; seen=1 } { print }' "$CARVED_DIR/carved.conf" > "$CARVED_DIR/c.tmp" && mv "$CARVED_DIR/c.tmp" "$CARVED_DIR/carved.conf"
drop_guest() {
	for d in $(virsh -c $Q list --all --name 2>/dev/null | grep '^carve-net'); do
		virsh -c $Q destroy "$d" >/dev/null 2>&1
		virsh -c $Q undefine "$d" >/dev/null 2>&1
	done
	case "$(virsh -c $Q pool-dumpxml "$CARVED_POOL" 2>/dev/null | sed -n 's:.*<path>\(.*\)</path>.*:\1:p')" in
	"$TEST_TMPDIR"/*)
		virsh -c $Q pool-destroy "$CARVED_POOL" >/dev/null 2>&1
		virsh -c $Q pool-undefine "$CARVED_POOL" >/dev/null 2>&1 ;;
	esac
}
tap_at_exit drop_guest
tap_at_exit carved_stop
carved_start || tap_bail "carved (qemu) did not start"

r=$(ctl_json vm create carve-net-g1 --vcpus 1 --memory 192 --kernel vmlinuz \
    --initrd initrd.gz --cmdline "console=ttyS0 panic=-1" \
    --network "$net" --network "$net,mac=52:54:00:C0:FF:EE")
tap_is "$(printf '%s' "$r" | jq -r .status)" succeeded "a real guest with two NICs on the test's network" || tap_diag "$r"
gid=$(printf '%s' "$r" | jq -r .vm_id)
g0=$(derived_mac "$gid" 0)
tap_is "$(ifaces $Q carve-net-g1 | tr '\n' ';')" \
    "network $net $g0 virtio;network $net 52:54:00:c0:ff:ee virtio;" \
    "virsh dumpxml (qemu): both NICs on the network with their MACs"
tap_like "$(virsh -q -c $Q domiflist carve-net-g1 | tr -s ' ' | tr '\n' ';')" \
    "*network $net virtio $g0*network $net virtio 52:54:00:c0:ff:ee*" \
    "libvirt attached both to the network's bridge"
log=/var/log/libvirt/qemu/carve-$gid.console.log
tap_at_exit "rm -f '$log'"
tap_ok "the guest sees eth0 with the derived MAC" wait_for "NIC eth0 $g0" 90 grep -q "NIC eth0 $g0" "$log" ||
    { tap_diag "console:"; grep -a -e '^NIC' -e GUEST -e insmod "$log" | sed 's/^/#   /'; }
tap_ok "the guest sees eth1 with the given MAC" wait_for "NIC eth1" 30 grep -q "NIC eth1 52:54:00:c0:ff:ee" "$log"
tap_is "$(ctl_json vm destroy carve-net-g1 | jq -r .status)" succeeded "destroy the guest"
tap_is "$(virsh -c $Q list --all --name | grep -c '^carve-net')" 0 "no domain left"
tap_done
