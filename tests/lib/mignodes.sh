# Sourceable harness (after tap.sh and carved.sh) that makes two "hosts"
# on this one machine for live-migration tests: each is a network namespace
# with a private libvirtd (+ virtlogd) in a mount namespace of its own, and
# the two namespaces are joined by a veth pair.  Recipe and measurements:
# shared/notes/libvirt-recipes.md, section 3.
#
#   mignodes_check                  0 when this machine can do it (root, ip
#                                   netns, unshare, libvirtd, qemu); else
#                                   prints why (for tap_skip_all)
#   mignodes_up NAME1 NAME2         namespaces, veth, both libvirtds started
#                                   and warmed up; the teardown is hooked on
#                                   tap_at_exit (call after tmpdir_setup)
#   mignodes_down                   kill everything of both hosts, delete
#                                   the namespaces (also run at exit)
#   mignode_uri NAME                the host's libvirt URI (a unix socket:
#                                   it works from any network namespace)
#   mignode_addr NAME               its address on the veth (migration data)
#   mignode_dir NAME                its private dir (etc run lib log cache)
#   mignode_ns NAME                 its network namespace
#   mignode_virsh NAME ARGS...      virsh -q on that host
#   mignode_carved_setup NAME [CONF_LINES]
#                                   carved_setup for a carved managing that
#                                   host: own state dir, storage pool and
#                                   console log dir, [migration] advertising
#                                   the host's URI and address (extra lines
#                                   appended, as for carved_setup)
#   mignode_carved_start NAME [ENV=VAL...]
#                                   start that host's carved (CARVED_* of it)
#   mignode_console NAME VMID       the VM's serial console log on that host
#
# Each host NAME lives in $TEST_TMPDIR/lv/NAME/{etc,run,lib,log,cache},
# bind-mounted over /etc/libvirt /run/libvirt /var/lib/libvirt
# /var/log/libvirt /var/cache/libvirt inside its mount namespace, so the
# host's own libvirtd (which other tests use) is never touched.  carved
# runs in the root namespaces (so it reaches a control plane on loopback)
# and talks to its libvirtd through the socket file
# $TEST_TMPDIR/lv/NAME/run/libvirt-sock.  Paths libvirtd and QEMU open
# (kernels, pools, console logs) must lie outside the bind-mounted dirs:
# $TEST_TMPDIR is seen the same from every namespace.
#
# Settings (environment):
#   MIGNODES_NET      first three octets of the veth subnet (default
#                     10.77.231); the addresses exist only inside the two
#                     namespaces, so a clash with the host's is harmless
#   MIGNODES_VIRT     domain type for carved (default qemu: TCG)
#   CARVE_GUEST_DIR   where vmlinuz/initrd.gz are (default
#                     $top_builddir/tests/guest/out); copied to
#                     $MIGNODES_KERNEL_DIR, which carved gets as kernel_dir
# shellcheck shell=sh disable=SC3043

MIGNODES_NET=${MIGNODES_NET:-10.77.231}
MIGNODES_VIRT=${MIGNODES_VIRT:-qemu}
MIGNODES_NAMES=
# Bound on waiting for a private libvirtd, in tenths of a second.
MIGNODES_WAIT_TENTHS=${MIGNODES_WAIT_TENTHS:-300}

_mig_log() {
	echo "mignodes.sh: $*" >&2
}

mignodes_check() {
	local t
	if [ "$(id -u)" -ne 0 ]; then
		echo "needs root (network and mount namespaces, libvirtd)"
		return 1
	fi
	for t in ip unshare libvirtd virtlogd virsh qemu-system-x86_64 jq; do
		if ! command -v "$t" >/dev/null 2>&1; then
			echo "$t not installed"
			return 1
		fi
	done
	t=carve-mchk-$$
	if ! ip netns add "$t" 2>/dev/null; then
		echo "cannot create a network namespace (ip netns add)"
		return 1
	fi
	if ! ip netns exec "$t" unshare --mount --uts --propagation private \
	    true 2>/dev/null; then
		ip netns delete "$t" 2>/dev/null
		echo "cannot unshare a mount namespace"
		return 1
	fi
	ip netns delete "$t" 2>/dev/null
	return 0
}

# The index of NAME among the hosts (1 or 2), for addresses and names.
_mig_index() {
	local i=0 n
	for n in $MIGNODES_NAMES; do
		i=$((i + 1))
		[ "$n" = "$1" ] && { echo "$i"; return 0; }
	done
	_mig_log "unknown host $1"
	return 1
}

mignode_dir() {
	echo "$TEST_TMPDIR/lv/$1"
}

mignode_ns() {
	echo "carve-mig$$-$(_mig_index "$1")"
}

mignode_addr() {
	echo "$MIGNODES_NET.$(_mig_index "$1")"
}

mignode_uri() {
	echo "qemu+unix:///system?socket=$(mignode_dir "$1")/run/libvirt-sock"
}

mignode_virsh() {
	local n=$1
	shift
	timeout 60 virsh -q -c "$(mignode_uri "$n")" "$@"
}

mignode_console() {
	echo "$TEST_TMPDIR/$1/console/carve-$2.console.log"
}

# A random host UUID: libvirt refuses to migrate between hosts with the same
# one, and rejects UUIDs of repeated digits.
_mig_uuid() {
	cat /proc/sys/kernel/random/uuid
}

_mig_config() {
	local d=$1 port=$2
	mkdir -p "$d/etc/qemu" "$d/run" "$d/lib" "$d/log/qemu" "$d/cache"
	cat > "$d/etc/libvirtd.conf" <<EOF
host_uuid = "$(_mig_uuid)"
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
EOF
	# Both daemons run QEMU as root without cgroups or virtlogd mediation
	# so that they never fight over file ownership (dynamic_ownership would
	# chown the shared kernel and the other host's files), over cgroups,
	# or over the log daemon.  Distinct port ranges keep the two hosts'
	# migration and NBD ports apart on the shared machine.
	cat > "$d/etc/qemu.conf" <<EOF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
cgroup_controllers = [ ]
stdio_handler = "file"
security_driver = "none"
migration_port_min = $port
migration_port_max = $((port + 63))
EOF
	: > "$d/etc/virtlogd.conf"
	: > "$d/etc/libvirt.conf"
	# The host's capability cache, if any, spares the first QEMU probe
	# (libvirt re-probes by itself when it is stale).
	if [ -d /var/cache/libvirt/qemu/capabilities ]; then
		mkdir -p "$d/cache/qemu"
		cp -a /var/cache/libvirt/qemu/capabilities "$d/cache/qemu/" \
		    2>/dev/null
	fi
}

# Start NAME's daemons inside its network namespace and a new mount (and
# UTS: its own host name) namespace.  The daemons fork away; the mount
# namespace lives as long as they do.
_mig_start() {
	local n=$1 d ns
	d=$(mignode_dir "$n")
	ns=$(mignode_ns "$n")
	ip netns exec "$ns" unshare --mount --uts --propagation private \
	    /bin/sh -ec '
		d=$1
		hostname "$2"
		mount --bind "$d/etc" /etc/libvirt
		mount --bind "$d/run" /run/libvirt
		mount --bind "$d/lib" /var/lib/libvirt
		mount --bind "$d/log" /var/log/libvirt
		mount --bind "$d/cache" /var/cache/libvirt
		ip link set lo up
		virtlogd -d -p /run/libvirt/virtlogd.pid
		exec libvirtd -d -p /run/libvirt/libvirtd.pid
	' mignode "$d" "carve-$n" >>"$d/daemons.log" 2>&1
}

_mig_wait() {
	local n=$1 i=0
	while [ "$i" -lt "$MIGNODES_WAIT_TENTHS" ]; do
		if timeout 10 virsh -c "$(mignode_uri "$n")" version \
		    >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
		i=$((i + 1))
	done
	_mig_log "libvirtd of $n did not answer in $((MIGNODES_WAIT_TENTHS / 10)) s"
	sed 's/^/# /' "$(mignode_dir "$n")/daemons.log" >&2
	return 1
}

mignodes_up() {
	local n1=$1 n2=$2 ns1 ns2 v1 v2 guest
	MIGNODES_NAMES="$n1 $n2"
	tap_at_exit mignodes_down
	mkdir -p "$TEST_TMPDIR/lv"
	ns1=$(mignode_ns "$n1")
	ns2=$(mignode_ns "$n2")
	v1=cmig$$a
	v2=cmig$$b
	ip netns add "$ns1" || return 1
	ip netns add "$ns2" || return 1
	ip link add "$v1" type veth peer name "$v2" || return 1
	ip link set "$v1" netns "$ns1" || return 1
	ip link set "$v2" netns "$ns2" || return 1
	ip -n "$ns1" addr add "$(mignode_addr "$n1")/24" dev "$v1" || return 1
	ip -n "$ns2" addr add "$(mignode_addr "$n2")/24" dev "$v2" || return 1
	ip -n "$ns1" link set "$v1" up || return 1
	ip -n "$ns2" link set "$v2" up || return 1
	ip -n "$ns1" link set lo up
	ip -n "$ns2" link set lo up
	# Ports per run and host, so parallel runs do not collide either.
	_mig_config "$(mignode_dir "$n1")" $((49152 + ($$ % 100) * 128))
	_mig_config "$(mignode_dir "$n2")" $((49152 + ($$ % 100) * 128 + 64))
	_mig_start "$n1" || return 1
	_mig_start "$n2" || return 1
	_mig_wait "$n1" || return 1
	_mig_wait "$n2" || return 1
	# The first QEMU start on a fresh daemon waits for its capability
	# probe (~4 s): pay it now, on both hosts at once.
	mignode_virsh "$n1" domcapabilities >/dev/null 2>&1 &
	v1=$!
	mignode_virsh "$n2" domcapabilities >/dev/null 2>&1 &
	v2=$!
	wait "$v1" "$v2"
	# One copy of the test guest's kernel, outside the bind mounts, that
	# both hosts read (kernel_dir of both carveds).
	guest=${CARVE_GUEST_DIR:-$top_builddir/tests/guest/out}
	MIGNODES_KERNEL_DIR=$TEST_TMPDIR/kernels
	mkdir -p "$MIGNODES_KERNEL_DIR"
	if [ -f "$guest/vmlinuz" ] && [ -f "$guest/initrd.gz" ]; then
		cp "$guest/vmlinuz" "$guest/initrd.gz" "$MIGNODES_KERNEL_DIR/"
	fi
	return 0
}

# The pid in a pid file if it is alive.
_mig_pid() {
	local p
	[ -r "$1" ] || return 1
	p=$(cat "$1" 2>/dev/null) || return 1
	case "$p" in ''|*[!0-9]*) return 1 ;; esac
	kill -0 "$p" 2>/dev/null || return 1
	echo "$p"
}

_mig_down_one() {
	local n=$1 d ns p i dom
	d=$(mignode_dir "$n")
	ns=$(mignode_ns "$n")
	[ -d "$d" ] || return 0
	# Domains first, while the daemon can still stop QEMU cleanly; every
	# domain on this private daemon is the test's.
	if _mig_pid "$d/run/libvirtd.pid" >/dev/null; then
		for dom in $(timeout 20 virsh -q -c "$(mignode_uri "$n")" \
		    list --all --name 2>/dev/null); do
			timeout 20 virsh -q -c "$(mignode_uri "$n")" destroy \
			    "$dom" >/dev/null 2>&1
		done
	fi
	for p in libvirtd virtlogd; do
		if p=$(_mig_pid "$d/run/$p.pid"); then
			kill -TERM "$p" 2>/dev/null
			i=0
			while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do
				sleep 0.1
				i=$((i + 1))
			done
			kill -KILL "$p" 2>/dev/null
		fi
	done
	# Whatever is left in the namespace (a QEMU the daemon lost).
	if ip netns list 2>/dev/null | grep -q "^$ns\\b"; then
		for p in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$p" 2>/dev/null
		done
		ip netns delete "$ns" 2>/dev/null
	fi
}

mignodes_down() {
	local n
	# carveds first: they would only reconnect to dying daemons.
	command -v carved_stop_all >/dev/null 2>&1 && carved_stop_all
	for n in $MIGNODES_NAMES; do
		_mig_down_one "$n"
	done
	MIGNODES_NAMES=
	return 0
}

mignode_carved_setup() {
	local n=$1 extra=${2:-}
	carved_setup "$n" "$(mignode_uri "$n")"
	mkdir -p "$CARVED_DIR/console"
	# carved_setup's file ends in its [libvirt] section: continue it.
	cat >> "$CARVED_DIR/carved.conf" <<EOF
domain_type = $MIGNODES_VIRT
kernel_dir = $MIGNODES_KERNEL_DIR
console_log_dir = $CARVED_DIR/console

[migration]
libvirt_uri = $(mignode_uri "$n")
address = $(mignode_addr "$n")
EOF
	if [ -n "$extra" ]; then
		printf '%b\n' "$extra" >> "$CARVED_DIR/carved.conf"
	fi
}

mignode_carved_start() {
	local n=$1
	shift
	carved_use "$n"
	carved_start "$@"
}
