#!/bin/bash
# The project's copy of the workplace's linux-guest kit (R defaults to <repo>/.cache/linux-guest).
# Boot the tiny Debian-kernel guest under QEMU TCG and mount a host 9P server.
#
#   MODE=fd      (default) guest v9fs trans=fd over a virtio-serial port whose host
#                side is a Unix-socket chardev (QEMU connects, server=off) to:
#                  SERVER=diod  diod listening directly on $R/diod.sock
#                  SERVER=mitm  9pmitm.js on $R/9p.sock -> diod on $R/diod.sock
#                                (logs every 9P message to $R/logs/<tag>-trace.log)
#                  SERVER=external  nothing started; QEMU connects to $SOCK, which
#                                your own server must already be listening on
#   MODE=virtio  QEMU's own 9p server: -fsdev local + -device virtio-9p-pci
#   TEST=workload|none|shell, MSIZE=..., OPTS=cache=loose,... (extra mount opts)
#   EXPORT=dir   exported directory (default $R/export-guest)
#   ANAME=str    aname for the guest's attach (default $EXPORT; empty = none)
#   SOCK=path    (SERVER=external) Unix socket your server listens on
#   EXTRA_APPEND="ninep.relay=direct"  (extra kernel cmdline words)
#   ACCEL=tcg    (default; this VM has /dev/kvm but no vmx/svm -> use tcg)
# Console goes to $R/logs/<tag>-console.log; a summary line is printed.
set -u
R=${R:-$(cd "$(dirname "$0")/../.." && pwd)/.cache/linux-guest}; KIT=$(cd "$(dirname "$0")" && pwd)
MODE=${MODE:-fd}; SERVER=${SERVER:-diod}; TEST=${TEST:-workload}
EXPORT=${EXPORT:-$R/export-guest}; ACCEL=${ACCEL:-tcg}
TAG=${TAG:-$MODE-$SERVER-$TEST}
mkdir -p $R/logs "$EXPORT"
CON=$R/logs/$TAG-console.log; TRACE=$R/logs/$TAG-trace.log; DLOG=$R/logs/$TAG-diod.log
rm -f $CON $TRACE $DLOG
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT

APPEND="console=ttyS0 panic=-1 ninep.trans=$MODE ninep.test=$TEST"
[ -n "${MSIZE:-}" ] && APPEND="$APPEND ninep.msize=$MSIZE"
[ -n "${OPTS:-}" ] && APPEND="$APPEND ninep.opts=$OPTS"
[ -n "${QUIET:-1}" ] && APPEND="$APPEND quiet"
[ -n "${EXTRA_APPEND:-}" ] && APPEND="$APPEND $EXTRA_APPEND"

if [ "$MODE" = fd ]; then
  ANAME=${ANAME-$EXPORT}   # diod needs aname=<exported path>; ANAME= (empty) omits it
  [ -n "$ANAME" ] && APPEND="$APPEND ninep.aname=$ANAME"
  SOCK=${SOCK:-$R/diod.sock}
  if [ "$SERVER" != external ]; then
    rm -f $R/diod.sock
    diod -f -n -l $R/diod.sock -e "$EXPORT" -L $DLOG ${DIOD_ARGS:-} & PIDS+=($!)
    for i in $(seq 50); do [ -S $R/diod.sock ] && break; sleep 0.1; done
    if [ "$SERVER" = mitm ]; then
      SOCK=$R/9p.sock; rm -f $SOCK
      node "$KIT/9pmitm.js" $SOCK $R/diod.sock $TRACE & PIDS+=($!)
      for i in $(seq 50); do [ -S $SOCK ] && break; sleep 0.1; done
    fi
  fi
  DEV=(-chardev socket,id=c9,path=$SOCK,server=off
       -device virtio-serial -device virtserialport,chardev=c9,name=ninep)
else
  DEV=(-fsdev local,id=fs9,path=$EXPORT,security_model=${SECMODEL:-passthrough}
       -device virtio-9p-pci,fsdev=fs9,mount_tag=ninep)
fi

T0=$(date +%s.%N)
if [ "$TEST" = shell ]; then
  qemu-system-x86_64 -accel $ACCEL -m 512 -nographic -no-reboot \
    -kernel $R/out/vmlinuz -initrd $R/out/initramfs.cpio.gz -append "$APPEND" "${DEV[@]}"
else
  timeout ${TIMEOUT:-600} qemu-system-x86_64 -accel $ACCEL -m 512 -nographic -no-reboot \
    -kernel $R/out/vmlinuz -initrd $R/out/initramfs.cpio.gz -append "$APPEND" "${DEV[@]}" \
    </dev/null >$CON 2>&1
fi
RC=$?
T1=$(date +%s.%N)
echo "== $TAG: qemu rc=$RC wall=$(awk "BEGIN{print $T1 - $T0}")s console=$CON"
grep -a '^@@' $CON | sed 's/^/   /'
grep -a -E 'FAIL|error|Error' $CON | grep -v '^@@' | head -20 | sed 's/^/   ! /'
