# Sourceable helpers that give tests a system libvirtd without systemd.
#
#   libvirtd_ensure            start virtlogd and libvirtd unless running;
#                              wait until qemu:///system answers
#   libvirtd_stop_if_started   stop only the daemons libvirtd_ensure started
#   libvirtd_restart           kill libvirtd (by pid file), start it again,
#                              wait until it answers (for reconnect tests)
#   libvirtd_running           0 if libvirtd's pid file names a live libvirtd
#
# Whether we started a daemon is kept in shell variables, so a test that
# sources this file and finds the daemons already up (started by check.sh)
# leaves them alone on exit.  libvirtd_restart reads the pid file each time,
# so the owner's later stop still finds the new process.
#
# Needs root: libvirtd writes /run/libvirtd.pid and /run/libvirt only then.
# Plain sh plus "local", which dash and bash both have.
# shellcheck shell=sh disable=SC3043

LIBVIRTD_PIDFILE=${LIBVIRTD_PIDFILE:-/run/libvirtd.pid}
VIRTLOGD_PIDFILE=${VIRTLOGD_PIDFILE:-/run/virtlogd.pid}
# Bound on waiting for the daemon to answer, in tenths of a second.
LIBVIRTD_WAIT_TENTHS=${LIBVIRTD_WAIT_TENTHS:-100}
# Never inherited: only the shell that started a daemon may stop it.
LIBVIRTD_STARTED_LIBVIRTD=0
LIBVIRTD_STARTED_VIRTLOGD=0

_libvirtd_log() {
	echo "libvirtd.sh: $*" >&2
}

# _libvirtd_pid_alive PIDFILE NAME: prints the pid and returns 0 when the
# pid file names a live process called NAME (a stale file whose pid was
# reused by something else does not count).
_libvirtd_pid_alive() {
	local pid comm
	[ -r "$1" ] || return 1
	# libvirt writes the pid without a trailing newline: no "read".
	pid=$(cat "$1" 2>/dev/null) || return 1
	case "$pid" in
	''|*[!0-9]*) return 1 ;;
	esac
	[ -r "/proc/$pid/comm" ] || return 1
	comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
	[ "$comm" = "$2" ] || return 1
	_libvirtd_gone "$pid" && return 1
	echo "$pid"
}

# A daemon's parent is whatever reaps orphans; in some containers nothing
# does, so a dead daemon lingers as a zombie: count that as gone.
_libvirtd_gone() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	[ "${stat%% *}" = Z ]
}

libvirtd_running() {
	_libvirtd_pid_alive "$LIBVIRTD_PIDFILE" libvirtd >/dev/null
}

_libvirtd_answers() {
	timeout 10 virsh -c qemu:///system version >/dev/null 2>&1
}

# Wait (bounded) until qemu:///system answers.
_libvirtd_wait_ready() {
	local i=0
	while [ "$i" -lt "$LIBVIRTD_WAIT_TENTHS" ]; do
		if _libvirtd_answers; then
			return 0
		fi
		sleep 0.1
		i=$((i + 1))
	done
	_libvirtd_log "libvirtd did not answer on qemu:///system within $((LIBVIRTD_WAIT_TENTHS / 10)) s"
	return 1
}

# Wait (bounded, 10 s) until pid is gone.
_libvirtd_wait_exit() {
	local pid="$1" i=0
	while ! _libvirtd_gone "$pid" && [ "$i" -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	_libvirtd_gone "$pid"
}

_libvirtd_dirs() {
	mkdir -p /var/log/libvirt /run/libvirt /var/lib/libvirt /var/cache/libvirt
}

_libvirtd_start_libvirtd() {
	if ! libvirtd -d; then
		_libvirtd_log "libvirtd -d failed"
		return 1
	fi
}

# Without udev (containers, chroots) /dev/kvm stays root:root 0600.  The
# qemu user then cannot open it while the root-run capability probe saw
# KVM, so libvirtd deems its cached QEMU capabilities stale and re-probes
# QEMU on every call (3.5 s for each "virsh version" here).  Give it the
# owner and mode udev's 50-udev-default.rules would have given it.
_libvirtd_fix_kvm_perms() {
	[ -c /dev/kvm ] || return 0
	getent group kvm >/dev/null 2>&1 || return 0
	case "$(stat -c '%G %a' /dev/kvm)" in
	'kvm 660'|'kvm 666') return 0 ;;
	esac
	_libvirtd_log "giving /dev/kvm group kvm, mode 0660 (as udev would)"
	chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
}

libvirtd_ensure() {
	if [ "$(id -u)" -ne 0 ]; then
		_libvirtd_log "need root to run the system libvirtd"
		return 1
	fi
	_libvirtd_dirs
	_libvirtd_fix_kvm_perms
	if ! _libvirtd_pid_alive "$VIRTLOGD_PIDFILE" virtlogd >/dev/null; then
		if ! virtlogd -d; then
			_libvirtd_log "virtlogd -d failed"
			return 1
		fi
		LIBVIRTD_STARTED_VIRTLOGD=1
	fi
	# A daemon that answers but has no pid file of ours (e.g. socket
	# activated by systemd) is someone else's: use it, never stop it.
	if ! libvirtd_running && ! _libvirtd_answers; then
		_libvirtd_start_libvirtd || return 1
		LIBVIRTD_STARTED_LIBVIRTD=1
	fi
	_libvirtd_wait_ready
}

# _libvirtd_kill PIDFILE NAME: TERM the process, then KILL if it lingers.
_libvirtd_kill() {
	local pid
	pid=$(_libvirtd_pid_alive "$1" "$2") || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	if ! _libvirtd_wait_exit "$pid"; then
		_libvirtd_log "$2 ($pid) ignored SIGTERM for 10 s, killing"
		kill -KILL "$pid" 2>/dev/null
		_libvirtd_wait_exit "$pid"
	fi
}

libvirtd_stop_if_started() {
	if [ "$LIBVIRTD_STARTED_LIBVIRTD" = 1 ]; then
		_libvirtd_kill "$LIBVIRTD_PIDFILE" libvirtd
		LIBVIRTD_STARTED_LIBVIRTD=0
	fi
	if [ "$LIBVIRTD_STARTED_VIRTLOGD" = 1 ]; then
		_libvirtd_kill "$VIRTLOGD_PIDFILE" virtlogd
		LIBVIRTD_STARTED_VIRTLOGD=0
	fi
	return 0
}

libvirtd_restart() {
	local pid
	if pid=$(_libvirtd_pid_alive "$LIBVIRTD_PIDFILE" libvirtd); then
		kill -TERM "$pid" 2>/dev/null
		if ! _libvirtd_wait_exit "$pid"; then
			_libvirtd_log "libvirtd ($pid) did not exit within 10 s"
			return 1
		fi
	fi
	_libvirtd_dirs
	_libvirtd_start_libvirtd || return 1
	_libvirtd_wait_ready
}
