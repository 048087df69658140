# Sourceable helpers to run a private carve-cp in shell tests (after tap.sh).
# shellcheck shell=sh
#
#   cp_init [--name N]...        carve-cp init into $TEST_TMPDIR/cp; sets
#                                CP_DIR, CP_ADMIN, CP_BOOTSTRAP
#   cp_start [SERVE_ARGS...]     carve-cp serve on a free loopback port in the
#                                background; waits until it listens; sets
#                                CP_PID, CP_PORT, CP_URL
#   cp_stop                      SIGTERM and wait; returns carve-cp's status
#   cp_admin METHOD PATH [BODY]  admin call; prints the body, then the status
#                                on a last line of its own
#   cp_enroll NODE DIR           key + CSR made here, enrolled with the
#                                bootstrap token: DIR/NODE.key, DIR/NODE.crt
#   cp_node NODE DIR METHOD PATH [BODY]
#                                the same as cp_admin with NODE's certificate
#   cp_status OUTPUT             the status line of cp_admin/cp_node output
#   cp_body OUTPUT               everything before it
#
# The log is $CP_DIR/carve-cp.log (every start appends to it).

: "${top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
CP_BIN=$top_builddir/carve-cp

cp_init() {
	CP_DIR=$TEST_TMPDIR/cp
	"$CP_BIN" init --dir "$CP_DIR" "$@" >/dev/null || return 1
	CP_ADMIN=$(cat "$CP_DIR/admin.token")
	CP_BOOTSTRAP=$(cat "$CP_DIR/bootstrap.token")
}

cp_start() {
	_cp_lines=0
	[ -f "$CP_DIR/carve-cp.log" ] &&
	    _cp_lines=$(wc -l < "$CP_DIR/carve-cp.log")
	"$CP_BIN" serve --dir "$CP_DIR" --listen 127.0.0.1:0 \
	    --log-level debug "$@" >>"$CP_DIR/carve-cp.log" 2>&1 &
	CP_PID=$!
	_i=0
	while [ $_i -lt 100 ]; do
		CP_PORT=$(tail -n +"$((_cp_lines + 1))" "$CP_DIR/carve-cp.log" |
		    sed -n 's/.*msg=listening .*port=\([0-9]*\).*/\1/p' | head -1)
		if [ -n "$CP_PORT" ]; then
			CP_URL=https://127.0.0.1:$CP_PORT
			return 0
		fi
		if ! kill -0 "$CP_PID" 2>/dev/null; then
			echo "# carve-cp exited early; log:" >&2
			sed 's/^/#   /' "$CP_DIR/carve-cp.log" >&2
			return 1
		fi
		sleep 0.1
		_i=$((_i + 1))
	done
	return 1
}

cp_stop() {
	[ -n "${CP_PID:-}" ] || return 0
	kill -TERM "$CP_PID" 2>/dev/null
	wait "$CP_PID"
	_cp_rc=$?
	CP_PID=
	return $_cp_rc
}

# curl against carve-cp: the body, then the HTTP status on its own line
# (000 when no HTTP answer came, e.g. a refused handshake).
_cp_curl() {
	_cp_m=$1 _cp_p=$2
	shift 2
	if [ $# -gt 0 ] && [ "$1" != "" ]; then
		_cp_b=$1
		shift
		printf '%s' "$_cp_b" | curl -s --cacert "$CP_DIR/ca.crt" \
		    -X "$_cp_m" "$@" --data-binary @- -w '\n%{http_code}\n' \
		    "$CP_URL$_cp_p"
	else
		[ $# -gt 0 ] && shift
		curl -s --cacert "$CP_DIR/ca.crt" -X "$_cp_m" "$@" \
		    -w '\n%{http_code}\n' "$CP_URL$_cp_p"
	fi
}

cp_admin() {
	_cp_curl "$1" "$2" "${3:-}" -H "Authorization: Bearer $CP_ADMIN"
}

cp_node() {
	_cp_n=$1 _cp_d=$2
	shift 2
	_cp_curl "$1" "$2" "${3:-}" --cert "$_cp_d/$_cp_n.crt" \
	    --key "$_cp_d/$_cp_n.key"
}

cp_status() {
	printf '%s\n' "$1" | tail -n 1
}

cp_body() {
	printf '%s\n' "$1" | sed '$d'
}

cp_enroll() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -subj "/CN=$1" -keyout "$2/$1.key" -out "$2/$1.csr" \
	    2>/dev/null || return 1
	jq -n --arg node "$1" --rawfile csr "$2/$1.csr" \
	    '{node:$node,csr:$csr}' |
	    curl -sf --cacert "$CP_DIR/ca.crt" \
	    -H "Authorization: Bearer $CP_BOOTSTRAP" --data-binary @- \
	    "$CP_URL/v1/enroll" | jq -r .certificate > "$2/$1.crt" &&
	    [ -s "$2/$1.crt" ]
}
