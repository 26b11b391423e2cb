#!/bin/sh
# pack-initramfs.sh R KVER — the guest's initramfs, shared by the QEMU kit (build-initramfs.sh)
# and the v86 kit (harness/v86-guest/setup.sh): in R, from the unpacked kernel (R/kroot) and
# busybox-static (R/bbroot), writes R/out/initramfs.cpio.gz with busybox, the virtio/9p modules
# and guest-init as /init.
set -eu
R=$1; KVER=$2; KIT=$(cd "$(dirname "$0")" && pwd)
cd "$R"
rm -rf ird && mkdir -p ird/bin ird/lib/modules ird/dev out
cp bbroot/bin/busybox ird/bin/busybox
ln -s busybox ird/bin/sh
MD=kroot/lib/modules/$KVER/kernel
# Debian 6.1 (amd64 and i386 686) has these as modules (=m); guest-init insmods this list and
# tolerates missing ones.
for f in drivers/virtio/virtio.ko drivers/virtio/virtio_ring.ko \
         drivers/virtio/virtio_pci_legacy_dev.ko drivers/virtio/virtio_pci_modern_dev.ko \
         drivers/virtio/virtio_pci.ko drivers/char/virtio_console.ko \
         net/9p/9pnet.ko net/9p/9pnet_fd.ko net/9p/9pnet_virtio.ko \
         fs/netfs/netfs.ko fs/fscache/fscache.ko fs/9p/9p.ko \
         net/core/failover.ko drivers/net/net_failover.ko drivers/net/virtio_net.ko; do
  cp $MD/$f ird/lib/modules/      # uncompressed .ko; busybox insmod loads them
done
cp "$KIT/guest-init" ird/init && chmod 755 ird/init
# cpio newc archive made by the busybox just unpacked (the host has no cpio), or the host's
# cpio / busybox when this host cannot run that busybox (an i386 one on a kernel without ia32)
CPIO="$R/bbroot/bin/busybox cpio"
$R/bbroot/bin/busybox true 2>/dev/null || CPIO=$(command -v cpio || echo "busybox cpio")
(cd ird && find . | $CPIO -o -H newc 2>/dev/null) | gzip -1 > out/initramfs.cpio.gz
# a cpio that could not run leaves an empty archive behind the pipe: fail here, not at boot
[ "$(gzip -dc out/initramfs.cpio.gz | wc -c)" -gt 100000 ] || { echo "pack-initramfs: the archive is empty (no working cpio here: apt-get install cpio)" >&2; rm -f out/initramfs.cpio.gz; exit 1; }
