#!/bin/bash
# mk-guest.sh OUTDIR: build carve's real test guest, OUTDIR/vmlinuz and
# OUTDIR/initrd.gz, from Debian packages (nothing binary is committed).
#
# The kernel is Debian's cloud kernel (the package linux-image-cloud-amd64
# depends on); the initramfs holds busybox-static, the virtio/ACPI-button/
# evdev modules and an /init that:
#   - mounts proc, sys and dev, prints "GUEST UP";
#   - with "kvmprobe" on the kernel command line, powers off at once
#     (kvm-probe.sh only needs to see that the kernel got that far);
#   - loads the modules, prints "DISK vda <marker>" when a virtio disk is
#     there (the marker: the disk's first bytes, alphanumerics only);
#   - when the disk holds a FAT file system (the image mk-image.sh makes,
#     whole-disk or in /dev/vda1) prints "MARKER <text>" from its
#     MARKER.TXT and "WRITES <words>" from WRITES.TXT (lines an earlier boot
#     appended); with "writemark=<word>" on the command line appends <word>
#     to WRITES.TXT and prints "WROTE <word>" (so a test sees whether a
#     write went to an overlay and not to its base);
#   - when a virtio disk with serial "carve-data0" is there (carve's first
#     data disk, vdb), prints "DATA <words>" from it: its first 4 KiB hold
#     "CARVEDATA" and one word per line (a blank disk prints "DATA "); with
#     "datamark=<word>" on the command line appends <word> there (formatting
#     a blank disk) and prints "DATA-WROTE <word>" (so a test sees what
#     survives a rebuild of the root disk);
#   - in the background, waits up to 10 s for a disk labelled "cidata" (the
#     NoCloud seed, an IDE/SCSI cdrom or a virtio disk), mounts it and
#     prints "CIDATA <instance-id>" and "CIDATA-HOSTNAME <local-hostname>"
#     from its meta-data; a line "#writemark: <word>" in its user-data
#     (a YAML comment: still valid cloud-config) does what writemark=
#     does when the command line has none, for images that boot through
#     their own boot loader (no kernel command line to set); likewise
#     "#datamark: <word>" for datamark=; a line
#     "#disktick: on" in its user-data then starts a loop that every second
#     appends "tick N" to WRITES.TXT (mount, append, sync, unmount) and
#     prints "DISKTICK N UP <uptime seconds>" (the snapshot tests: what the
#     disk held at a snapshot, and whether a revert resumed the guest or
#     booted it afresh);
#   - loads virtio_net (and the failover modules it needs) and prints
#     "NIC <ifname> <mac>" for each network interface but lo, sorted by
#     name (a VM with no NIC prints nothing);
#   - starts acpid so that an ACPI power-button press (virsh shutdown)
#     runs /etc/acpi/PWRF/00000080 = "poweroff -f" (unless "noacpid" is on
#     the command line: a guest that ignores graceful shutdown);
#   - prints "READY";
#   - with "memfill=<MiB>" on the command line (1..4999), fills that much
#     of its memory before READY (a file in its tmpfs root, which it can
#     neither reclaim nor give to the balloon) and prints "MEMFILL <MiB>":
#     a guest using more than a shrink leaves it;
#   - with "sizemon" on the command line, in the background: brings every
#     hot-added CPU online (what a distribution's udev rule does) and
#     prints "SIZE cpus=<online CPUs> memtotal_kb=<MemTotal>" at start and
#     whenever either changes (checked every second), so a test sees a
#     vCPU hot-plug or a balloon resize from inside the guest;
#   - with "tick" on the command line prints "tick N" every second,
#     otherwise sleeps forever.
#
# Downloads are cached in $CARVE_GUEST_CACHE (default OUTDIR/cache).  Nothing
# is rebuilt while both outputs exist and are newer than this script.
# Needs: apt-get, dpkg-deb, cpio, gzip, xz/zstd only for compressed modules.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
out=$1
self=$0
cache=${CARVE_GUEST_CACHE:-$out/cache}

if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.gz" ] &&
    [ "$out/vmlinuz" -nt "$self" ] && [ "$out/initrd.gz" -nt "$self" ]; then
	exit 0
fi

log() {
	echo "mk-guest: $*" >&2
}

# Load order matters: virtio before virtio_ring fails with "Unknown symbol
# virtio_break_device".  The cloud kernel ships no modules.dep (depmod runs
# in its postinst), so the order is spelled out here.  After the virtio and
# ACPI ones: FAT for mk-image.sh's disk.
modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev
virtio_pci virtio_blk virtio_balloon button evdev
fat vfat nls_cp437 nls_ascii"
# What reads a seed cdrom, loaded in the background (the ATA probe costs
# ~0.6 s under TCG, which READY need not wait for): the SCSI core, cdrom +
# sr_mod + isofs, and the controllers a cdrom can sit on that this kernel
# has (ata_piix: IDE on QEMU's i440fx "pc" machine; virtio_scsi).  The cloud
# kernel has no AHCI driver: a cdrom on a SATA bus (q35's only disk
# controller) is invisible to this guest.
cdmodules="nls_utf8 scsi_common scsi_mod cdrom sr_mod isofs libata ata_piix
virtio_scsi"
# virtio NICs: virtio_net needs net_failover, which needs failover (after
# virtio_ring and virtio, loaded above).
netmodules="failover net_failover virtio_net"

mkdir -p "$out" "$cache"
# qemu runs as libvirt-qemu: it must be able to read what we make.
chmod 0755 "$out"
work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

updated=0
apt_update_once() {
	[ "$updated" = 1 ] && return 0
	updated=1
	log "apt-get update"
	apt-get update -qq >&2
}

# The versioned package linux-image-cloud-amd64 points to, e.g.
# linux-image-6.1.0-28-cloud-amd64.
resolve_kernel_pkg() {
	{ apt-cache depends linux-image-cloud-amd64 2>/dev/null || :; } |
	    awk '!found && /^ *Depends: linux-image-[0-9].*-cloud-amd64$/ {
		print $2; found = 1 }'
}

kpkg=$(resolve_kernel_pkg)
if [ -z "$kpkg" ]; then
	# A fresh machine may have no package lists yet.
	apt_update_once
	kpkg=$(resolve_kernel_pkg)
fi
if [ -z "$kpkg" ]; then
	log "cannot resolve linux-image-cloud-amd64 to a kernel package"
	exit 1
fi

# fetch PKG: make sure a .deb of PKG is in the cache; print its path.
fetch() {
	local pkg=$1 deb
	deb=$(find "$cache" -maxdepth 1 -name "${pkg}_*_amd64.deb" | sort | tail -n 1)
	if [ -z "$deb" ]; then
		# apt-get download as root warns that the _apt sandbox user cannot
		# write the directory; root writes it, as intended.
		if ! (cd "$cache" && apt-get download -q -o APT::Sandbox::User=root \
		    "$pkg" >&2); then
			# Lists older than the mirror name .debs that are gone.
			apt_update_once
			(cd "$cache" && apt-get download -q \
			    -o APT::Sandbox::User=root "$pkg" >&2)
		fi
		deb=$(find "$cache" -maxdepth 1 -name "${pkg}_*_amd64.deb" | sort | tail -n 1)
	fi
	if [ -z "$deb" ]; then
		log "no .deb for $pkg after download"
		exit 1
	fi
	echo "$deb"
}

kdeb=$(fetch "$kpkg")
bdeb=$(fetch busybox-static)

dpkg-deb -x "$kdeb" "$work/kernel"
dpkg-deb -x "$bdeb" "$work/busybox"

kver=$(ls "$work/kernel/lib/modules")
if [ -z "$kver" ] || [ ! -f "$work/kernel/boot/vmlinuz-$kver" ]; then
	log "unexpected layout in $kdeb"
	exit 1
fi

root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,lib/modules}
mkdir -p "$root"/{etc/acpi/PWRF,var/log,var/run,run,mnt/disk,mnt/cidata}
install -m 0755 "$work/busybox/bin/busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"

# Modules go in flat, uncompressed (busybox insmod then needs no
# decompressor); a module built into the kernel is simply not loaded.
kmods=$work/kernel/lib/modules/$kver
# add_modules LIST: copy them in; print those to insmod (not built in).
add_modules() {
	local m src dst load=
	for m in $1; do
		src=$(find "$kmods/kernel" \( -name "$m.ko" -o -name "$m.ko.xz" \
		    -o -name "$m.ko.zst" -o -name "$m.ko.gz" \) -print -quit)
		if [ -z "$src" ]; then
			if grep -q "/$m\.ko" "$kmods/modules.builtin" 2>/dev/null; then
				continue
			fi
			log "module $m neither in $kpkg nor built in"
			exit 1
		fi
		dst=$root/lib/modules/$m.ko
		case "$src" in
		*.xz) xz -dc "$src" >"$dst" ;;
		*.zst) zstd -qdc "$src" >"$dst" ;;
		*.gz) gzip -dc "$src" >"$dst" ;;
		*) cp "$src" "$dst" ;;
		esac
		load="$load $m"
	done
	echo "$load"
}
load=$(add_modules "$modules")
cdload=$(add_modules "$cdmodules")
netload=$(add_modules "$netmodules")

cat >"$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
poweroff -f
EOF
chmod 0755 "$root/etc/acpi/PWRF/00000080"

cat >"$root/init" <<EOF
#!/bin/sh
# carve test guest init (generated by tests/guest/mk-guest.sh)
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "GUEST UP"
cmdline=\$(cat /proc/cmdline)
has() {
	case " \$cmdline " in
	*" \$1 "*) return 0 ;;
	esac
	return 1
}
if has kvmprobe; then
	poweroff -f
fi
for m in$load; do
	insmod /lib/modules/\$m.ko || echo "insmod \$m failed"
done
if [ -b /dev/vda ]; then
	echo "DISK vda \$(head -c 64 /dev/vda | tr -cd 'A-Za-z0-9_.:=-')"
fi
# The value of NAME=... on the command line, as a safe word.
arg() {
	for w in \$cmdline; do
		case "\$w" in
		"\$1"=*) echo "\${w#*=}" | tr -cd 'A-Za-z0-9_.:-'; return 0 ;;
		esac
	done
	return 1
}
# mk-image.sh's FAT volume: the whole disk, or a first partition.
disk_mount() {
	for d in /dev/vda1 /dev/vda; do
		[ -b "\$d" ] || continue
		mount -t vfat "\$d" /mnt/disk 2>/dev/null && return 0
	done
	return 1
}
# Append a word to WRITES.TXT on the disk, durably.
disk_write() {
	disk_mount || return 1
	echo "\$1" >>/mnt/disk/WRITES.TXT
	sync
	umount /mnt/disk
	echo "WROTE \$1"
}
if disk_mount; then
	if [ -f /mnt/disk/MARKER.TXT ]; then
		echo "MARKER \$(head -n 1 /mnt/disk/MARKER.TXT | tr -cd 'A-Za-z0-9_.:=-')"
	fi
	if [ -f /mnt/disk/WRITES.TXT ]; then
		echo WRITES \$(tr -cd 'A-Za-z0-9_.:\n-' </mnt/disk/WRITES.TXT)
	fi
	umount /mnt/disk
fi
writemark=\$(arg writemark || :)
if [ -n "\$writemark" ]; then
	disk_write "\$writemark" || echo "WRITE FAILED \$writemark"
fi
# carve's first data disk (serial carve-data0): "CARVEDATA" and one word a
# line in its first 4 KiB; anything else there reads as blank.
data_dev() {
	for b in /sys/block/vd*; do
		[ "\$(cat "\$b/serial" 2>/dev/null)" = carve-data0 ] || continue
		echo "/dev/\${b##*/}"
		return 0
	done
	return 1
}
data_words() {
	d=\$(data_dev) || return 1
	head -c 4096 "\$d" | tr -d '\000' >/tmp/data.cur
	[ "\$(head -n 1 /tmp/data.cur)" = CARVEDATA ] || return 0
	sed 1d /tmp/data.cur | tr -cd 'A-Za-z0-9_.:\n-'
}
# Append a word, durably (conv=sync pads the block with zeros).
data_write() {
	d=\$(data_dev) || return 1
	{ echo CARVEDATA; data_words; echo "\$1"; } >/tmp/data.new
	dd if=/tmp/data.new of="\$d" bs=4096 count=1 conv=notrunc,sync,fsync 2>/dev/null ||
	    return 1
	echo "DATA-WROTE \$1"
}
if data_dev >/dev/null; then
	echo DATA \$(data_words)
fi
datamark=\$(arg datamark || :)
if [ -n "\$datamark" ]; then
	data_write "\$datamark" || echo "DATA WRITE FAILED \$datamark"
fi
# "#disktick: on": a tick a second, on the disk and the console.
disktick() {
	t=0
	while :; do
		t=\$((t + 1))
		if disk_mount; then
			echo "tick \$t" >>/mnt/disk/WRITES.TXT
			sync
			umount /mnt/disk
			echo "DISKTICK \$t UP \$(cut -d ' ' -f 1 /proc/uptime)"
		else
			echo "DISKTICK FAILED \$t"
		fi
		sleep 1
	done
}
# The NoCloud seed: SCSI/ATA scans finish after insmod returns, so look for
# it in the background instead of holding READY back on every boot.
cidata() {
	for m in$cdload; do
		insmod /lib/modules/\$m.ko || echo "insmod \$m failed"
	done
	i=0
	while [ \$i -lt 100 ]; do
		for d in /dev/sr* /dev/vd? /dev/sd?; do
			[ -b "\$d" ] || continue
			# The ISO9660 volume id: 32 bytes at 32808 (sector 16,
			# offset 40), space padded. busybox-static has no blkid.
			[ "\$(dd if="\$d" bs=1 skip=32808 count=7 2>/dev/null)" = "cidata " ] ||
			    continue
			mount -t iso9660 -o ro "\$d" /mnt/cidata 2>/dev/null ||
			    continue
			md=/mnt/cidata/meta-data
			echo "CIDATA \$(sed -n 's/^instance-id: *//p' \$md | tr -cd 'A-Za-z0-9_.:-')"
			echo "CIDATA-HOSTNAME \$(sed -n 's/^local-hostname: *//p' \$md | tr -cd 'A-Za-z0-9_.:-')"
			cwm=\$(sed -n 's/^#writemark: *//p' /mnt/cidata/user-data | head -n 1 | tr -cd 'A-Za-z0-9_.:-')
			cdm=\$(sed -n 's/^#datamark: *//p' /mnt/cidata/user-data | head -n 1 | tr -cd 'A-Za-z0-9_.:-')
			cdt=\$(sed -n 's/^#disktick: *//p' /mnt/cidata/user-data | head -n 1 | tr -cd 'a-z')
			umount /mnt/cidata
			if [ -n "\$cwm" ] && [ -z "\$writemark" ]; then
				disk_write "\$cwm" || echo "WRITE FAILED \$cwm"
			fi
			if [ -n "\$cdm" ] && [ -z "\$datamark" ]; then
				data_write "\$cdm" || echo "DATA WRITE FAILED \$cdm"
			fi
			if [ "\$cdt" = on ]; then
				disktick
			fi
			return 0
		done
		sleep 0.1
		i=\$((i + 1))
	done
}
cidata &
# NICs: the driver binds the PCI devices while insmod runs, so every
# interface exists when it returns.
for m in$netload; do
	insmod /lib/modules/\$m.ko || echo "insmod \$m failed"
done
for n in /sys/class/net/*; do
	[ -e "\$n/address" ] || continue
	i=\${n##*/}
	[ "\$i" = lo ] && continue
	echo "NIC \$(echo "\$i" | tr -cd 'A-Za-z0-9_.-') \$(tr -cd '0-9a-f:' <"\$n/address")"
done
if has noacpid; then
	echo "NOACPID: ignoring the power button"
else
	acpid -l /var/log/acpid.log
fi
memfill=\$(arg memfill || :)
case "\$memfill" in
[1-9]|[1-9][0-9]|[1-9][0-9][0-9]|[1-4][0-9][0-9][0-9])
	dd if=/dev/zero of=/memfill bs=1048576 count="\$memfill" 2>/dev/null &&
	    echo "MEMFILL \$memfill" ;;
esac
# What the guest has: online CPUs and MemTotal (the balloon lowers it).
sizemon() {
	last=
	while :; do
		for f in /sys/devices/system/cpu/cpu[0-9]*/online; do
			[ -f "\$f" ] || continue
			[ "\$(cat "\$f")" = 1 ] || echo 1 >"\$f" 2>/dev/null
		done
		n=0
		for f in /sys/devices/system/cpu/cpu[0-9]*; do
			[ -d "\$f" ] || continue
			if [ ! -f "\$f/online" ] || [ "\$(cat "\$f/online")" = 1 ]; then
				n=\$((n + 1))
			fi
		done
		mt=\$(sed -n 's/^MemTotal: *\\([0-9]*\\).*/\\1/p' /proc/meminfo)
		cur="cpus=\$n memtotal_kb=\$mt"
		if [ "\$cur" != "\$last" ]; then
			echo "SIZE \$cur"
			last=\$cur
		fi
		sleep 1
	done
}
if has sizemon; then
	sizemon &
fi
echo "READY"
if has tick; then
	n=0
	while :; do
		n=\$((n + 1))
		echo "tick \$n"
		sleep 1
	done
fi
# init must never exit: the kernel would panic.
while :; do
	sleep 3600
done
EOF
chmod 0755 "$root/init"

install -m 0644 "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
# Fixed timestamps and no name or time in the gzip header: the same
# packages give the same initrd.gz (and mk-image.sh the same image sha256).
find "$root" -exec touch -h -d @1700000000 {} +
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) |
    gzip -9 -n >"$work/initrd.gz"
chmod 0644 "$work/initrd.gz"
# Replace atomically so a half-built guest never looks finished.
mv -f "$work/vmlinuz" "$out/vmlinuz"
mv -f "$work/initrd.gz" "$out/initrd.gz"
log "built $out/vmlinuz ($kver) and $out/initrd.gz (modules:$load;$cdload;$netload)"
