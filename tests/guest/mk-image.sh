#!/bin/bash
# mk-image.sh OUTDIR [MARKER]: a bootable qcow2 base image for the
# real-guest tests, OUTDIR/base.qcow2, standing in for a cloud image (served
# by file:// or a loopback HTTP server with its sha256). Prints the image's
# sha256 on stdout; progress goes to stderr.
#
# The image is one FAT volume (no partition table) holding the test guest
# of mk-guest.sh (run first, into OUTDIR, if needed): vmlinuz, initrd.gz, a
# syslinux.cfg booting them with "console=ttyS0 panic=-1", and MARKER.TXT
# with MARKER (default "carve-base"; letters, digits and _.:=- only). The
# boot sector is syslinux's, written into the volume itself, so neither loop
# devices nor mounts are needed (mtools writes the files). SeaBIOS boots it
# from a virtio disk; the guest's init prints "MARKER <MARKER>" once it has
# mounted the volume (see mk-guest.sh for its other lines).
#
# Rebuilt only when the guest, this script or the marker changed; the build
# is reproducible (fixed volume id and timestamps), so the same inputs give
# the same sha256.
# Needs: syslinux, syslinux-common, mtools, dosfstools, qemu-utils.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 OUTDIR [MARKER]" >&2
	exit 2
fi
out=$1
marker=${2:-carve-base}
here=$(cd "$(dirname "$0")" && pwd)
self=$here/$(basename "$0")

log() {
	echo "mk-image: $*" >&2
}

case "$marker" in
'' | *[!A-Za-z0-9_.:=-]*)
	log "MARKER must be letters, digits and _.:=- only"
	exit 2
	;;
esac
for tool in mkfs.vfat mcopy syslinux qemu-img sha256sum; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		log "$tool not found (sh scripts/deps.sh installs it)"
		exit 1
	fi
done

"$here/mk-guest.sh" "$out"

img=$out/base.qcow2
stamp=$out/base.marker
if [ -s "$img" ] && [ -f "$stamp" ] &&
    [ "$(cat "$stamp")" = "$marker" ] &&
    [ "$img" -nt "$self" ] && [ "$img" -nt "$out/vmlinuz" ] &&
    [ "$img" -nt "$out/initrd.gz" ]; then
	sha256sum "$img" | cut -d ' ' -f 1
	exit 0
fi

work=$(mktemp -d "$out/.image.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Same timestamps every time: mtools and syslinux stamp files with the time
# of the copy unless SOURCE_DATE_EPOCH says otherwise.
export SOURCE_DATE_EPOCH=1700000000
cp "$out/vmlinuz" "$out/initrd.gz" "$work/"
printf '%s\n' "$marker" >"$work/MARKER.TXT"
# TIMEOUT is in tenths of a second; the single entry boots at once anyway.
printf 'DEFAULT linux\nLABEL linux\n KERNEL vmlinuz\n INITRD initrd.gz\n APPEND console=ttyS0 panic=-1\nTIMEOUT 1\n' \
    >"$work/syslinux.cfg"
touch -d "@$SOURCE_DATE_EPOCH" "$work"/*

# 64 MiB: the kernel and initramfs take ~10 MiB; the rest is room for the
# guest's writes (WRITES.TXT).
truncate -s 64M "$work/base.img"
mkfs.vfat --invariant -n CARVEBOOT -i CA4BE000 "$work/base.img" >/dev/null
mcopy -m -i "$work/base.img" "$work/vmlinuz" "$work/initrd.gz" \
    "$work/syslinux.cfg" "$work/MARKER.TXT" ::/
syslinux --install "$work/base.img"
qemu-img convert -f raw -O qcow2 "$work/base.img" "$work/base.qcow2"
# qemu runs as libvirt-qemu: the base must be readable by it.
chmod 0644 "$work/base.qcow2"
mv -f "$work/base.qcow2" "$img"
printf '%s\n' "$marker" >"$stamp"
sum=$(sha256sum "$img" | cut -d ' ' -f 1)
log "built $img (marker $marker, sha256 $sum)"
echo "$sum"
