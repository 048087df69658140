#!/bin/sh
# Replays each fuzz target's seed corpus (tests/fuzz/corpus/TARGET/) through
# the target built with the replay driver (driver.c), under whatever
# sanitizers the build has. TAP output, one test per target; run by
# "make check", which sets top_srcdir and top_builddir.
set -u

here=$(cd "$(dirname "$0")" && pwd)
: "${top_srcdir:=$(cd "$here/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"

targets="fuzz_command fuzz_conf fuzz_ctl_request fuzz_metadata fuzz_proto"
log=$(mktemp "${TMPDIR:-/tmp}/carve-replay.XXXXXX") || exit 1
trap 'rm -f "$log"' EXIT INT TERM

echo "1..5"
n=0
for t in $targets; do
	n=$((n + 1))
	bin="$top_builddir/tests/fuzz/$t"
	corpus="$top_srcdir/tests/fuzz/corpus/$t"
	if [ ! -x "$bin" ]; then
		echo "not ok $n - $t (not built: $bin)"
		continue
	fi
	if [ ! -d "$corpus" ]; then
		echo "not ok $n - $t (no corpus: $corpus)"
		continue
	fi
	if "$bin" "$corpus" >"$log" 2>&1; then
		k=$(sed -n 's/^.*: \([0-9][0-9]*\) inputs$/\1/p' "$log" | tail -n 1)
		# An empty corpus would pass while testing nothing.
		if [ "${k:-0}" -gt 0 ]; then
			echo "ok $n - $t ($k inputs)"
		else
			echo "not ok $n - $t (no inputs replayed)"
		fi
	else
		rc=$?
		echo "not ok $n - $t (exit status $rc)"
		sed 's/^/# /' "$log"
	fi
done
