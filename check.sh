#!/bin/bash
# check.sh: build carve and run every test, as root on a Debian 12 machine,
# from the repository root:  ./check.sh
#
#   1. scripts/deps.sh installs missing packages (apt, once);
#   2. autoreconf if the tree has no configure yet, then an out-of-tree
#      build in ./build-check with --enable-debug --enable-sanitizers;
#   3. starts virtlogd/libvirtd unless running (stopped again on exit);
#   4. builds the test guest into tests/guest/out and probes KVM once; the
#      tests get CARVE_GUEST_DIR (vmlinuz, initrd.gz: tests/guest/out, or a
#      copy QEMU can read if the checkout is not world-traversable) and
#      CARVE_VIRT_TYPE (kvm or qemu);
#   5. make check (failed tests' logs are printed);
#   6. last line: "N passed, N failed, N skipped", from automake's summary
#      in build-check/test-suite.log, which counts individual TAP test
#      cases.  Exit status 0 only if nothing failed.
#
# Environment: CHECK_CONFIGURE_ARGS adds configure arguments; CHECK_TEST_JOBS
# (default 1) runs that many test programs at once: the integration tests
# share one libvirtd, so they run one after another by default.
set -uo pipefail

cd "$(dirname "$0")" || exit 1
srcdir=$PWD
builddir=$srcdir/build-check
jobs=$(nproc 2>/dev/null || echo 2)

say() {
	echo "check.sh: $*"
}

# Called on every exit path: stop what we started, then the count line.
passed=0 failed=0 skipped=0
summary() {
	echo "$passed passed, $failed failed, $skipped skipped"
}

# A step that fails before the tests ran counts as one failure, so the
# count line never reads as a clean run.
die() {
	say "$*"
	failed=$((failed + 1))
	exit 1
}

finish() {
	local status=$?
	trap - EXIT
	if declare -F libvirtd_stop_if_started >/dev/null; then
		libvirtd_stop_if_started
	fi
	if [ -n "${guest_stage:-}" ]; then
		rm -rf "$guest_stage"
	fi
	summary
	exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "dependencies"
sh scripts/deps.sh || die "scripts/deps.sh failed"

if [ "$(id -u)" -ne 0 ]; then
	say "warning: not root: no system libvirtd; tests that need it will skip or fail"
fi

if [ -f config.status ]; then
	die "the source tree is configured in place (config.status); run 'make distclean' there first"
fi
if [ ! -x configure ] || [ ! -f build-aux/tap-driver.sh ] ||
    [ configure.ac -nt configure ]; then
	say "autoreconf -fi"
	autoreconf -fi || die "autoreconf failed"
fi

mkdir -p "$builddir"
if [ ! -f "$builddir/config.status" ] ||
    [ configure -nt "$builddir/config.status" ]; then
	say "configure"
	# shellcheck disable=SC2086 # extra arguments are split on purpose
	(cd "$builddir" && "$srcdir/configure" --enable-debug \
	    --enable-sanitizers ${CHECK_CONFIGURE_ARGS:-}) ||
	    die "configure failed (see build-check/config.log)"
fi

say "build"
make -C "$builddir" -j"$jobs" || die "build failed"
# Build the test programs in parallel too, without running any test yet.
make -C "$builddir" -j"$jobs" check TESTS= >/dev/null ||
    die "building the test programs failed"

if [ "$(id -u)" -eq 0 ]; then
	# shellcheck source=tests/lib/libvirtd.sh
	. tests/lib/libvirtd.sh
	if libvirtd_ensure; then
		say "libvirtd ready (started by us: $LIBVIRTD_STARTED_LIBVIRTD)"
	else
		say "warning: libvirtd is not available; tests that need it will skip or fail"
	fi
fi

say "test guest"
guest_stage=
if tests/guest/mk-guest.sh tests/guest/out; then
	CARVE_GUEST_DIR=$srcdir/tests/guest/out
	# QEMU runs as libvirt-qemu: a checkout under /root (0700) keeps it
	# from the kernel.  Then the tests get a copy it can reach.
	if id libvirt-qemu >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] &&
	    ! runuser -u libvirt-qemu -- test -r "$CARVE_GUEST_DIR/initrd.gz"; then
		if ! guest_stage=$(mktemp -d /var/tmp/carve-guest.XXXXXX) ||
		    ! chmod 0755 "$guest_stage" ||
		    ! cp -p tests/guest/out/vmlinuz tests/guest/out/initrd.gz \
		    "$guest_stage/"; then
			die "cannot stage the guest in /var/tmp"
		fi
		CARVE_GUEST_DIR=$guest_stage
		say "libvirt-qemu cannot read tests/guest/out; guest staged in $guest_stage"
	fi
	CARVE_VIRT_TYPE=$(tests/guest/kvm-probe.sh tests/guest/out/vmlinuz \
	    tests/guest/out/initrd.gz)
	export CARVE_GUEST_DIR CARVE_VIRT_TYPE
	say "guest in $CARVE_GUEST_DIR, domain type: $CARVE_VIRT_TYPE"
else
	say "warning: could not build the test guest; real-guest tests will skip"
fi

say "make check"
rm -f "$builddir/test-suite.log"
make -C "$builddir" -j"${CHECK_TEST_JOBS:-1}" check VERBOSE=1
make_status=$?

# automake's summary at the top of test-suite.log, e.g. "# PASS:  12".
log=$builddir/test-suite.log
count() {
	awk -v k="# $1:" '$1 " " $2 == k { print $3; found = 1; exit }
	    END { if (!found) print 0 }' "$log"
}
# The TAP driver also reports a program that exits non-zero as an ERROR,
# and TAP programs (cmocka's runner, tap_done) exit non-zero because some
# case already failed: that one test case would count twice.  So an
# "exited with status N" ERROR of a program that has a FAIL/XPASS line is
# not counted again; a crash (signal) or an exit without failed cases is.
double_counted() {
	awk '/^(FAIL|XPASS): / { bad[$2] = 1 }
	    /^ERROR: .* - exited with status [0-9]+$/ { ex[$2]++ }
	    END { n = 0; for (p in ex) if (p in bad) n += ex[p]; print n }' "$log"
}
if [ -f "$log" ]; then
	passed=$(($(count PASS) + $(count XFAIL)))
	failed=$(($(count FAIL) + $(count XPASS) + $(count ERROR) - $(double_counted)))
	skipped=$(count SKIP)
else
	say "no test-suite.log: make check did not get to the tests"
fi
if [ "$make_status" -ne 0 ] && [ "$failed" -eq 0 ]; then
	say "make check failed (exit $make_status) outside the tests"
	failed=1
fi
[ "$failed" -eq 0 ]
