#!/bin/sh
# deps.sh: install what building and testing carve needs on Debian 12.
# Idempotent: installs (after one apt-get update) only when a package is
# missing, so a second run costs one dpkg-query.  Needs root.
set -eu

# Build: compiler, autotools and the libraries configure checks for.
# Test: libvirt's daemon and QEMU for the real guest (mk-guest.sh needs
# cpio; it downloads its kernel and busybox itself), busybox-static,
# jq/sqlite3 for shell tests, clang for libFuzzer builds.
# xz-utils: mk-guest.sh decompresses .ko.xz modules should a kernel ship them.
# genisoimage: carved builds cloud-init seed ISOs with it (isoinfo, from the
# same package, reads them back in the tests); syslinux, syslinux-common,
# mtools, dosfstools: tests/guest/mk-image.sh makes a bootable disk image.
packages="
build-essential autoconf automake libtool pkg-config
libvirt-dev libuv1-dev libjson-c-dev libcurl4-openssl-dev libssl-dev
libsqlite3-dev libxml2-dev libcmocka-dev libevent-dev
libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils
busybox-static cpio xz-utils jq sqlite3 procps iproute2 clang socat curl openssl python3
genisoimage syslinux syslinux-common mtools dosfstools
"

# The OpenAPI lint runs @redocly/cli with npx. Some hosts carry a Node.js
# from elsewhere (whose nodejs package conflicts with Debian's npm): only
# ask for Debian's when there is no npx at all.
if ! command -v npx >/dev/null 2>&1; then
	packages="$packages nodejs npm"
fi

missing=
for p in $packages; do
	# "install ok installed" is the only state in which the package is usable.
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || :)
	if [ "$status" != "install ok installed" ]; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "deps.sh: all packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing:$missing" >&2
	echo "deps.sh: run as root:  sh scripts/deps.sh" >&2
	echo "deps.sh: (or: sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing)" >&2
	exit 1
fi

echo "deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086 # word splitting of the list is intended
apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    $missing
