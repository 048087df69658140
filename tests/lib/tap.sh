# Sourceable TAP helpers for carve's shell tests (POSIX sh; bash works too).
# shellcheck shell=sh
#
#   tap_plan N                 print the plan "1..N" up front (optional)
#   tap_pass DESC              ok N - DESC
#   tap_fail DESC [DIAG...]    not ok N - DESC, then each DIAG as "# ..."
#   tap_ok DESC CMD [ARG...]   run CMD (its stdout goes to stderr, so it
#                              cannot confuse the TAP parser); ok if it exits 0
#   tap_is GOT WANT DESC       ok if the strings are equal, else show both
#   tap_like GOT PATTERN DESC  ok if GOT matches the case/glob PATTERN
#   tap_skip DESC REASON       ok N - DESC # SKIP REASON
#   tap_skip_all REASON        "1..0 # SKIP REASON" and exit 0 (before any test)
#   tap_diag MSG               "# MSG" on stdout
#   tap_bail REASON            "Bail out! REASON" and exit 1
#   tap_done                   print the plan if none was given, then exit
#                              0 when every test passed and the count matches
#                              the plan, 1 otherwise
#
#   tmpdir_setup               make a private temp dir in $TEST_TMPDIR, removed
#                              on exit
#   tap_at_exit CMD            run CMD (a string for eval) on exit, newest
#                              first, before the temp dir goes; use this
#                              instead of "trap ... EXIT", which would replace
#                              the cleanup

_tap_n=0
_tap_failed=0
_tap_planned=
_tap_cleanups=
_tap_trap_set=

tap_plan() {
	_tap_planned=$1
	echo "1..$1"
}

tap_diag() {
	# Every line of a multi-line message gets its own "# ".
	printf '%s\n' "$*" | sed 's/^/# /'
}

tap_pass() {
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $1"
}

tap_fail() {
	_tap_n=$((_tap_n + 1))
	_tap_failed=$((_tap_failed + 1))
	echo "not ok $_tap_n - $1"
	shift
	for _tap_d in "$@"; do
		tap_diag "$_tap_d"
	done
}

tap_ok() {
	_tap_desc=$1
	shift
	if "$@" >&2; then
		tap_pass "$_tap_desc"
	else
		tap_fail "$_tap_desc" "command failed (exit $?): $*"
	fi
}

tap_is() {
	if [ "$1" = "$2" ]; then
		tap_pass "$3"
	else
		tap_fail "$3" "     got: '$1'" "expected: '$2'"
	fi
}

tap_like() {
	# $2 is deliberately unquoted in the case pattern: it is a glob.
	# shellcheck disable=SC2254
	case "$1" in
	$2) tap_pass "$3" ;;
	*) tap_fail "$3" "     got: '$1'" "expected to match: '$2'" ;;
	esac
}

tap_skip() {
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $1 # SKIP $2"
}

tap_skip_all() {
	echo "1..0 # SKIP $*"
	exit 0
}

tap_bail() {
	echo "Bail out! $*"
	exit 1
}

tap_done() {
	if [ -z "$_tap_planned" ]; then
		echo "1..$_tap_n"
	elif [ "$_tap_planned" -ne "$_tap_n" ]; then
		tap_diag "planned $_tap_planned tests but ran $_tap_n"
		exit 1
	fi
	if [ "$_tap_failed" -ne 0 ]; then
		tap_diag "$_tap_failed of $_tap_n tests failed"
		exit 1
	fi
	exit 0
}

_tap_on_exit() {
	_tap_status=$?
	# Unhook first so a failing cleanup cannot loop back here.
	trap - EXIT
	eval "$_tap_cleanups"
	if [ -n "${TEST_TMPDIR:-}" ] && [ -d "$TEST_TMPDIR" ]; then
		rm -rf "$TEST_TMPDIR"
	fi
	exit "$_tap_status"
}

_tap_trap() {
	[ -n "$_tap_trap_set" ] && return 0
	_tap_trap_set=1
	trap _tap_on_exit EXIT
	# dash runs the EXIT trap on "exit" but not when killed by a signal.
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

tap_at_exit() {
	_tap_trap
	# Newest first, as with nested resources; "|| :" keeps one failed
	# cleanup from skipping the others.
	_tap_cleanups="$1 || :
$_tap_cleanups"
}

tmpdir_setup() {
	_tap_trap
	TEST_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/carve-test.XXXXXX") ||
	    tap_bail "cannot make a temp dir"
	export TEST_TMPDIR
}
