# Sourceable helpers for the e2e tests: a private carve-cp on a fixed port (so it
# can be restarted on the same address) plus carveds wired to it. After tap.sh and carved.sh.
#
#   cp_setup [NAME...]      carve-cp init in $TEST_TMPDIR/cp (server cert for
#                           NAMEs, default localhost 127.0.0.1); sets CP_DIR
#   cp_start [ARGS...]      serve on a free loopback port; sets CP_PID, CP_URL
#   cp_stop / cp_kill9
#   cp_admin METHOD PATH [JSON]   admin API call; body on stdout; the HTTP
#                                 code is kept for cp_code (works across $(...))
#   cp_code                       the HTTP code of the last cp_admin
#   carved_setup_cp NAME NODE_XML [CONF_LINES]
#                           carved_setup wired to this carve-cp

: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
CARVECP_BIN=$top_builddir/carve-cp

cp_setup() {
	CP_DIR=$TEST_TMPDIR/cp
	_names=
	for _n in "$@"; do _names="$_names --name $_n"; done
	# shellcheck disable=SC2086
	"$CARVECP_BIN" init --dir "$CP_DIR" $_names >/dev/null
}

cp_start() {
	if [ -z "${CP_PORT:-}" ]; then
		CP_PORT=$(free_port)
	fi
	CP_URL=https://127.0.0.1:$CP_PORT
	"$CARVECP_BIN" serve --dir "$CP_DIR" --listen "127.0.0.1:$CP_PORT" "$@" \
	    >>"$CP_DIR/carve-cp.log" 2>&1 &
	CP_PID=$!
	_i=0
	while [ $_i -lt 100 ]; do
		if curl -s -o /dev/null --cacert "$CP_DIR/ca.crt" "$CP_URL/v1/nodes"; then
			return 0
		fi
		kill -0 "$CP_PID" 2>/dev/null || break
		sleep 0.1
		_i=$((_i + 1))
	done
	echo "# carve-cp did not start; log:" >&2
	sed 's/^/#   /' "$CP_DIR/carve-cp.log" >&2
	return 1
}

cp_stop() {
	[ -n "${CP_PID:-}" ] || return 0
	kill -TERM "$CP_PID" 2>/dev/null || true
	wait "$CP_PID" 2>/dev/null
	_rc=$?
	CP_PID=
	return $_rc
}

cp_kill9() {
	[ -n "${CP_PID:-}" ] || return 0
	kill -KILL "$CP_PID" 2>/dev/null || true
	wait "$CP_PID" 2>/dev/null || true
	CP_PID=
}

cp_admin() {
	_out=$TEST_TMPDIR/.cp_admin.$$
	if [ $# -ge 3 ]; then
		CP_CODE=$(curl -sS -o "$_out" -w '%{http_code}' --cacert "$CP_DIR/ca.crt" \
		    -H "Authorization: Bearer $(cat "$CP_DIR/admin.token")" \
		    -H 'Content-Type: application/json' -X "$1" --data-binary "$3" \
		    "$CP_URL$2")
	else
		CP_CODE=$(curl -sS -o "$_out" -w '%{http_code}' --cacert "$CP_DIR/ca.crt" \
		    -H "Authorization: Bearer $(cat "$CP_DIR/admin.token")" \
		    -X "$1" "$CP_URL$2")
	fi
	echo "$CP_CODE" > "$TEST_TMPDIR/.cp_code"
	cat "$_out"
	rm -f "$_out"
}

cp_code() {
	cat "$TEST_TMPDIR/.cp_code" 2>/dev/null
}

carved_setup_cp() {
	carved_setup "$1" "$2" "[control_plane]
url = $CP_URL
ca_file = $CP_DIR/ca.crt
bootstrap_token_file = $CP_DIR/bootstrap.token
${3:-}"
}

# carved_start waits for "capacity"; with a control plane, also wait for the
# node to be registered and up at carve-cp.
cp_wait_node_up() {
	wait_for "node $1 up" 30 sh -c "curl -s --cacert '$CP_DIR/ca.crt' \
	    -H \"Authorization: Bearer \$(cat '$CP_DIR/admin.token')\" \
	    '$CP_URL/v1/nodes/$1' | jq -e '.up == true' >/dev/null"
}

