#!/bin/sh
# The linux-guest kit, for the v86 emulator (R defaults to <repo>/.cache/v86-guest).
# Builds $R/out/{vmlinuz,initramfs.cpio.gz,bios.bin,vgabios.bin} from Debian packages only,
# downloaded and unpacked with dpkg -x, never installed:
#   linux-image-686's current image (i386, non-PAE "686" flavour: v86 has no PAE),
#   busybox-static:i386 and seabios (QEMU's SeaBIOS build; v86 emulates QEMU's fw_cfg).
# The initramfs (harness/linux-guest/pack-initramfs.sh) carries the virtio/9p modules and
# harness/linux-guest/guest-init as /init.
# Idempotent: a second run reuses the .debs and unpacked trees. Needs root (dpkg
# --add-architecture, apt-get update); a failed index download (e.g. a mirror still syncing
# bookworm-security's i386 list) is tolerated as long as the i386 packages are known.
set -eu
R=${R:-$(cd "$(dirname "$0")/../.." && pwd)/.cache/v86-guest}; KIT=$(cd "$(dirname "$0")/../linux-guest" && pwd)
export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx i386; then
  dpkg --add-architecture i386
  apt-get update -qq || true
fi
apt-cache show linux-image-686:i386 >/dev/null 2>&1 || apt-get update -qq || true
KPKG=$(apt-cache depends linux-image-686:i386 | sed -n 's/.*Depends: \(linux-image-[0-9][^:]*\).*/\1/p' | head -1)
[ -n "$KPKG" ] || { echo "linux-image-686:i386 unknown to apt (apt-get update?)" >&2; exit 1; }
KVER=${KPKG#linux-image-}
mkdir -p $R/debs $R/out && cd $R
# apt-get download drops privileges to _apt, which may not write here; the download still works.
[ -n "$(ls debs/${KPKG}_*_i386.deb 2>/dev/null)" ] || (cd debs && apt-get download -q "$KPKG:i386")
[ -n "$(ls debs/busybox-static_*_i386.deb 2>/dev/null)" ] || (cd debs && apt-get download -q busybox-static:i386)
[ -n "$(ls debs/seabios_*.deb 2>/dev/null)" ] || (cd debs && apt-get download -q seabios)
[ -d kroot/lib/modules/$KVER ] || { mkdir -p kroot && dpkg -x debs/${KPKG}_*_i386.deb kroot; }
[ -x bbroot/bin/busybox ] || { mkdir -p bbroot && dpkg -x debs/busybox-static_*_i386.deb bbroot; }
[ -f biosroot/usr/share/seabios/bios.bin ] || { mkdir -p biosroot && dpkg -x debs/seabios_*.deb biosroot; }

cp kroot/boot/vmlinuz-$KVER out/vmlinuz
# bios.bin (128 KiB) boots under v86; QEMU's stdvga ROM goes with v86's Bochs VBE VGA.
cp biosroot/usr/share/seabios/bios.bin out/bios.bin
cp biosroot/usr/share/seabios/vgabios-stdvga.bin out/vgabios.bin

sh "$KIT/pack-initramfs.sh" "$R" "$KVER"
ls -la out/
echo "kernel $KVER"
