/**
 * The Linux kernel's 9p client against `virtio9p serve`: a Debian 6.1 kernel and busybox boot
 * under QEMU (TCG), mount our server over a virtio-serial port (trans=fd through a FIFO relay
 * in the guest) and run the kit's 29-step POSIX workload (harness/linux-guest/guest-init).
 * .ci/run prepares the kernel and initramfs (harness/linux-guest/setup.sh, build-initramfs.sh);
 * consoles are kept in .cache/linux-guest/logs.
 */
import { describe, test, expect } from '@jest/globals';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { serve, tempDir } from '../clients/serve-util.js';

const root = new URL('../../', import.meta.url).pathname;
const R = path.join(root, '.cache/linux-guest');
const KERNEL = path.join(R, 'out/vmlinuz');
const INITRD = path.join(R, 'out/initramfs.cpio.gz');
const STEPS = 29;

interface GuestRun { steps: Map<string, string>; console: string; log: string }

type Opts = { msize?: number; mountOpts?: string; trans?: 'fd' | 'tcp' };

function bootGuest(sock: string, tag: string, opts: Opts): Promise<GuestRun> {
  const trans = opts.trans ?? 'fd';
  const append = ['console=ttyS0', 'panic=-1', `ninep.trans=${trans}`, 'ninep.test=workload', 'quiet'];
  if (opts.msize) append.push(`ninep.msize=${opts.msize}`);
  if (opts.mountOpts) append.push(`ninep.opts=${opts.mountOpts}`);
  const args = ['-accel', 'tcg', '-m', '512', '-nographic', '-no-reboot', '-kernel', KERNEL, '-initrd', INITRD,
    '-append', append.join(' '),
    ...(trans === 'fd'
      ? ['-chardev', `socket,id=c9,path=${sock},server=off`, '-device', 'virtio-serial', '-device', 'virtserialport,chardev=c9,name=ninep']
      // user networking with no host access except one forwarded address: 10.0.2.100:564 → our socket
      : ['-netdev', `user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:564-unix:${sock}`, '-device', 'virtio-net-pci,netdev=n0,romfile=']),
  ];
  fs.mkdirSync(path.join(R, 'logs'), { recursive: true });
  const log = path.join(R, 'logs', `${tag}-console.log`);
  return new Promise((resolve, reject) => {
    const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    qemu.stdout!.on('data', (d) => { out += d; });
    qemu.stderr!.on('data', (d) => { out += d; });
    // A hang guard, not a speed check: a healthy run takes ~15 s.
    const guard = setTimeout(() => { out += '\n@@ TIMEOUT (killed)\n'; process.kill(qemu.pid!, 'SIGKILL'); }, 300000);
    qemu.once('error', (e) => { clearTimeout(guard); reject(e); });
    qemu.once('exit', () => {
      clearTimeout(guard);
      fs.writeFileSync(log, out);
      const steps = new Map<string, string>();
      for (const m of out.matchAll(/^@@ [\d.]+ STEP (\S+) (PASS|FAIL[^(]*)/gm)) steps.set(m[1], m[2].trim());
      resolve({ steps, console: out, log });
    });
  });
}

// msize 1 MiB runs over trans=tcp: with trans=fd the kit relays through two FIFOs, and the
// kernel's fd transport can wait on only two wait queues (MAXPOLLWADDR in net/9p/trans_fd.c)
// while a pipe has two of its own, so a message larger than a pipe (64 KiB) never finishes
// sending — whatever the server (docs/linux-guest.md).
const configs: [string, string, Opts][] = [
  ['local', 'default cache', {}],
  ['local', 'cache=loose', { mountOpts: 'cache=loose' }],
  ['local', 'msize 1 MiB (trans=tcp)', { msize: 1 << 20, trans: 'tcp' }],
  ['proxy', 'default cache', {}],
  ['proxy', 'cache=loose', { mountOpts: 'cache=loose' }],
  ['memory', 'default cache', {}],
];
// (cache=loose with the memory backend runs through the device in tests/e2e/many-files.test.ts,
// and msize 1 MiB over tcp is the same socket path for every backend: kept to one, for CI time)

describe('Linux v9fs guest (QEMU, trans=fd over virtio-serial)', () => {
  test('the kernel and initramfs are prepared', () => {
    expect([fs.existsSync(KERNEL), fs.existsSync(INITRD)]).toEqual([true, true]);
  });

  test.each(configs)('backend %s, %s: all %p workload steps pass', async (backend, label, opts) => {
    if (!fs.existsSync(KERNEL)) throw new Error(`no guest kernel at ${KERNEL}: run harness/linux-guest/setup.sh and build-initramfs.sh`);
    const exp = tempDir('guest-export');
    const srv = await serve(exp, backend);
    let run: GuestRun;
    try {
      run = await bootGuest(srv.sock, `${backend}-${label.replace(/\W+/g, '_')}`, opts);
    } finally {
      expect(await srv.stop()).toBe(0);
      fs.rmSync(exp, { recursive: true, force: true });
    }
    const failed = [...run.steps].filter(([, r]) => r !== 'PASS');
    if (failed.length || run.steps.size !== STEPS) {
      // keep the evidence in the test output (the console log stays in .cache/linux-guest/logs)
      console.log(`${run.log}\n${run.console.split('\n').filter((l) => /^@@|^ {3}\|/.test(l)).join('\n')}`);
    }
    expect(failed).toEqual([]);
    expect(run.steps.size).toBe(STEPS);
    expect(run.console).toMatch(/@@ [\d.]+ MOUNT OK/);
    expect(run.console).toMatch(/@@ [\d.]+ WORKLOAD DONE/);
    expect(run.console).toMatch(/@@ [\d.]+ UMOUNT OK/);
  }, 400000);
});
