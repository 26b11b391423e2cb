#!/bin/sh
# The project's copy of the workplace's linux-guest kit (R defaults to <repo>/.cache/linux-guest).
# One-time host setup (Debian bookworm, root). ~15 s with a warm mirror.
set -e
export DEBIAN_FRONTEND=noninteractive
[ -n "$(ls /var/lib/apt/lists/*_Packages* 2>/dev/null)" ] || apt-get update -qq || true   # a failed index (mirror mid-sync) is not fatal
apt-get install -y diod socat                                  # 9P server + diod* clients, socat
apt-get install -y --no-install-recommends qemu-system-x86     # QEMU 7.2 (TCG)
R=${R:-$(cd "$(dirname "$0")/../.." && pwd)/.cache/linux-guest}; mkdir -p $R/debs && cd $R/debs
KPKG=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
apt-get download "$KPKG" busybox-static kmod                   # NOT installed; unpacked with dpkg -x
