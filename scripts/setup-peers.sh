#!/bin/sh
# What the full test tier (`npm test`) runs against, installed when missing (Debian, as root):
#   diod and its clients (diodls, diodcat, diodload), socat, cpio, QEMU (qemu-system-x86) with its
#   virtfs-proxy-helper, Chromium (driven by playwright-core), a C compiler for the native
#   addons, and two guest kits in .cache/, built from Debian packages that are downloaded and
#   unpacked, never installed: an amd64 kernel + initramfs for QEMU (harness/linux-guest) and an
#   i386 one for v86 (harness/v86-guest).
# Idempotent: with everything present it only checks (well under a second). When something is
# missing and cannot be installed here (not root, no apt-get), it stops at once with one line
# naming what is missing. The fast tier (`npm run test:unit`) needs none of this.
set -eu
cd "$(dirname "$0")/.."
LG=.cache/linux-guest/out
V86=.cache/v86-guest/out

# a kit is usable when its kernel is there and its initramfs is not a stub from an interrupted run
# and it was packed after the guest's init script last changed
kit_ok() {
  [ -s "$1/vmlinuz" ] && [ -f "$1/initramfs.cpio.gz" ] && [ "$(wc -c < "$1/initramfs.cpio.gz")" -gt 100000 ] &&
    [ "$1/initramfs.cpio.gz" -nt harness/linux-guest/guest-init ]
}

missing() {
  m=""
  for c in diod diodls diodcat diodload; do [ -x /usr/sbin/$c ] || m="$m $c"; done
  command -v socat >/dev/null 2>&1 || m="$m socat"
  # packs the guests' initramfs when the kit's own busybox cannot run here (an i386 one)
  command -v cpio >/dev/null 2>&1 || m="$m cpio"
  command -v qemu-system-x86_64 >/dev/null 2>&1 || m="$m qemu-system-x86_64"
  [ -x /usr/lib/qemu/virtfs-proxy-helper ] || m="$m virtfs-proxy-helper"
  [ -x /usr/bin/chromium ] || m="$m chromium"
  command -v "${CC:-cc}" >/dev/null 2>&1 || m="$m C-compiler(${CC:-cc})"
  kit_ok $LG || m="$m linux-guest-kit($LG)"
  { kit_ok $V86 && [ -s $V86/bios.bin ]; } || m="$m v86-guest-kit($V86)"
  echo "$m"
}

m=$(missing)
[ -z "$m" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "setup-peers: missing:$m — installing them needs root (sudo sh scripts/setup-peers.sh), or use npm run test:unit" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-peers: missing:$m — no apt-get here to install them (Debian/Ubuntu); install them by hand, or use npm run test:unit" >&2
  exit 1
fi
echo "setup-peers: installing:$m" >&2
export DEBIAN_FRONTEND=noninteractive
pkgs=""
case "$m" in *diod*) pkgs="$pkgs diod" ;; esac
case "$m" in *socat*) pkgs="$pkgs socat" ;; esac
case "$m" in *cpio*) pkgs="$pkgs cpio" ;; esac
case "$m" in *qemu*|*virtfs*) pkgs="$pkgs qemu-system-x86" ;; esac
case "$m" in *chromium*) pkgs="$pkgs chromium" ;; esac
case "$m" in *C-compiler*) pkgs="$pkgs gcc libc6-dev" ;; esac
if [ -n "$pkgs" ]; then
  # a mirror mid-sync can fail one index; a package that is really missing fails the install below
  apt-get update -qq || echo "setup-peers: apt-get update reported a failed index; continuing" >&2
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi
if ! kit_ok $LG; then
  sh harness/linux-guest/setup.sh >/dev/null
  sh harness/linux-guest/build-initramfs.sh >/dev/null
fi
{ kit_ok $V86 && [ -s $V86/bios.bin ]; } || sh harness/v86-guest/setup.sh >/dev/null
m=$(missing)
if [ -n "$m" ]; then
  echo "setup-peers: still missing after installing:$m" >&2
  exit 1
fi
echo "setup-peers: done" >&2
