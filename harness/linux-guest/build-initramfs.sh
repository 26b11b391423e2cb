#!/bin/sh
# The project's copy of the workplace's linux-guest kit (R defaults to <repo>/.cache/linux-guest).
# Build $R/out/{vmlinuz,initramfs.cpio.gz} from Debian packages only
# (linux-image-amd64's current image + busybox-static), without installing them.
set -eu
R=${R:-$(cd "$(dirname "$0")/../.." && pwd)/.cache/linux-guest}; KIT=$(cd "$(dirname "$0")" && pwd)
cd $R
mkdir -p debs out
KPKG=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
KVER=${KPKG#linux-image-}
[ -n "$(ls debs/${KPKG}_*.deb 2>/dev/null)" ] || (cd debs && apt-get download "$KPKG")
[ -n "$(ls debs/busybox-static_*.deb 2>/dev/null)" ] || (cd debs && apt-get download busybox-static)
[ -d kroot/lib/modules/$KVER ] || { mkdir -p kroot && dpkg -x debs/${KPKG}_*.deb kroot; }
[ -x bbroot/bin/busybox ] || { mkdir -p bbroot && dpkg -x debs/busybox-static_*.deb bbroot; }

cp kroot/boot/vmlinuz-$KVER out/vmlinuz
sh "$KIT/pack-initramfs.sh" "$R" "$KVER"
ls -la out/
echo "kernel $KVER"
