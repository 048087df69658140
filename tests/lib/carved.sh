# Sourceable helpers to run a private carved in shell tests (after tap.sh).
#
#   carved_setup NAME URI [CONF_LINES]  make $TEST_TMPDIR/NAME/ with a config
#                                       (extra "[section]\nkey = v" lines
#                                       appended) ; sets CARVED_DIR and
#                                       CARVED_POOL (the storage pool name)
#   carved_start [ENV=VAL...]           start carved -f in the background,
#                                       wait until it answers and has read
#                                       libvirt; sets CARVED_PID
#   carved_stop                         SIGTERM and wait
#   carved_kill9                        kill -9 and wait
#   carved_use NAME                     switch to another carved of this test
#                                       (CARVED_DIR, CARVED_PID)
#   ctl ARGS...                         carvectl on this carved's socket
#   ctl_json ARGS...                    carvectl --json ...
#   wait_for DESC SECONDS CMD...        poll CMD every 0.1 s until it succeeds
#
# The daemon's log is $CARVED_DIR/carved.log (shown on failure by the tests).

: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
CARVED_BIN=$top_builddir/carved
CARVECTL_BIN=$top_builddir/carvectl

carved_setup() {
	CARVED_DIR=$TEST_TMPDIR/$1
	# A pool of this test's own: tests running side by side on one
	# libvirtd must not share (or delete) each other's volumes.
	CARVED_POOL=ct-$1-$$
	mkdir -p "$CARVED_DIR/state"
	cat > "$CARVED_DIR/carved.conf" <<EOC
[agent]
node_name = $1
state_dir = $CARVED_DIR/state
socket = $CARVED_DIR/carved.sock
log_level = debug
max_concurrent_ops = 4

[libvirt]
uri = $2
storage_pool = $CARVED_POOL
EOC
	if [ -n "${3:-}" ]; then
		printf '%b\n' "$3" >> "$CARVED_DIR/carved.conf"
	fi
}

# A free TCP port on loopback.
free_port() {
	_p=$(( ($$ * 7 + $(date +%N | sed 's/^0*//;s/^$/0/')) % 20000 + 20000 ))
	while ss -Hltn "sport = :$_p" 2>/dev/null | grep -q .; do
		_p=$((_p + 1))
	done
	echo "$_p"
}

ctl() {
	"$CARVECTL_BIN" -s "$CARVED_DIR/carved.sock" "$@"
}

ctl_json() {
	"$CARVECTL_BIN" -s "$CARVED_DIR/carved.sock" --json "$@"
}

carved_start() {
	env "$@" "$CARVED_BIN" -f -c "$CARVED_DIR/carved.conf" \
	    >>"$CARVED_DIR/carved.log" 2>&1 &
	CARVED_PID=$!
	echo "$CARVED_PID" > "$CARVED_DIR/pid"
	_i=0
	while [ $_i -lt 300 ]; do
		if ctl_json capacity >/dev/null 2>&1; then
			return 0
		fi
		if ! kill -0 "$CARVED_PID" 2>/dev/null; then
			echo "# carved exited early; log:" >&2
			sed 's/^/#   /' "$CARVED_DIR/carved.log" >&2
			return 1
		fi
		sleep 0.1
		_i=$((_i + 1))
	done
	echo "# carved did not become ready in 30 s" >&2
	return 1
}

carved_use() {
	CARVED_DIR=$TEST_TMPDIR/$1
	CARVED_PID=$(cat "$CARVED_DIR/pid" 2>/dev/null)
}

carved_stop() {
	[ -n "${CARVED_PID:-}" ] || return 0
	kill -TERM "$CARVED_PID" 2>/dev/null || true
	wait "$CARVED_PID" 2>/dev/null
	_rc=$?
	CARVED_PID=
	rm -f "$CARVED_DIR/pid"
	return $_rc
}

# Stop every carved this test started (for tap_at_exit).
carved_stop_all() {
	for _f in "$TEST_TMPDIR"/*/pid; do
		[ -f "$_f" ] || continue
		_p=$(cat "$_f")
		kill -TERM "$_p" 2>/dev/null
		wait "$_p" 2>/dev/null
		rm -f "$_f"
	done
}

carved_kill9() {
	[ -n "${CARVED_PID:-}" ] || return 0
	kill -KILL "$CARVED_PID" 2>/dev/null || true
	wait "$CARVED_PID" 2>/dev/null || true
	CARVED_PID=
	rm -f "$CARVED_DIR/pid"
}

carved_show_log() {
	tap_diag "carved log (last 40 lines):"
	tail -n 40 "$CARVED_DIR/carved.log" | sed 's/^/#   /'
}

wait_for() {
	_desc=$1 _secs=$2
	shift 2
	_i=0
	while [ $_i -lt $((_secs * 10)) ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		_i=$((_i + 1))
	done
	echo "# timed out after ${_secs}s waiting for: $_desc" >&2
	return 1
}
