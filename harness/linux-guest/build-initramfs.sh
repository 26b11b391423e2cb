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
rm -rf ird && mkdir -p ird/bin ird/lib/modules ird/dev
cp bbroot/bin/busybox ird/bin/busybox
ln -s busybox ird/bin/sh
MD=kroot/lib/modules/$KVER/kernel
for f in drivers/virtio/virtio.ko drivers/virtio/virtio_ring.ko \
         drivers/virtio/virtio_pci_legacy_dev.ko drivers/virtio/virtio_pci_modern_dev.ko \
         drivers/virtio/virtio_pci.ko drivers/char/virtio_console.ko \
         net/9p/9pnet.ko net/9p/9pnet_fd.ko net/9p/9pnet_virtio.ko \
         fs/netfs/netfs.ko fs/fscache/fscache.ko fs/9p/9p.ko \
         net/core/failover.ko drivers/net/net_failover.ko drivers/net/virtio_net.ko; do
  cp $MD/$f ird/lib/modules/      # Debian 6.1 ships uncompressed .ko; busybox insmod loads them
done
cp "$KIT/guest-init" ird/init && chmod 755 ird/init
# cpio newc archive built with the busybox we just unpacked (host has no cpio)
(cd ird && find . | $R/bbroot/bin/busybox cpio -o -H newc 2>/dev/null) | gzip -1 > out/initramfs.cpio.gz
ls -la out/
echo "kernel $KVER"
