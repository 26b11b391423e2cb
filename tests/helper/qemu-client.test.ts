/**
 * QEMU 7.2's own 9p proxy client (`-fsdev proxy`) against our helper (`virtio9p helper`, run
 * through native/virtio9p-helper): the project's Linux guest (harness/linux-guest, kernel and
 * initramfs in .cache/linux-guest/out) mounts the virtio-9p-pci device (trans=virtio) and runs
 * the kit's 29-step POSIX workload. Both ways QEMU reaches a helper are covered: a named socket
 * (helper -s PATH -u -g; QEMU socket=PATH) and an inherited socketpair (helper -f N; QEMU
 * sock_fd=M). Consoles are kept in .cache/linux-guest/logs.
 */
import { describe, test, expect, beforeAll } from '@jest/globals';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fdpass } from '../../src/backends/proxy/native.js';

const root = new URL('../../', import.meta.url).pathname;
const R = path.join(root, '.cache/linux-guest');
const KERNEL = path.join(R, 'out/vmlinuz');
const INITRD = path.join(R, 'out/initramfs.cpio.gz');
const HELPER = path.join(root, 'native/virtio9p-helper');
const STEPS = 29;

beforeAll(() => {
  execFileSync(process.execPath, [path.join(root, 'native/build.mjs')], { stdio: 'inherit' });
});

interface Run { steps: Map<string, string>; out: string; helperLog: string; helperExit: number | null }

function waitExit(ch: ChildProcess): Promise<number | null> {
  if (ch.exitCode !== null || ch.signalCode !== null) return Promise.resolve(ch.exitCode);
  return new Promise((r) => ch.once('exit', (c) => r(c)));
}

async function boot(mode: 'socket' | 'fd', exp: string, tag: string): Promise<Run> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-qh-'));
  let helper: ChildProcess;
  let dev: string;
  const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe'];
  let theirs = -1;
  if (mode === 'socket') {
    const sock = path.join(tmp, 'proxy.sock');
    helper = spawn(HELPER, ['-n', '-p', exp, '-s', sock, '-u', '0', '-g', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const t0 = Date.now();
    while (!fs.existsSync(sock)) {
      if (helper.exitCode !== null || Date.now() - t0 > 10000) throw new Error('helper did not create its socket');
      await new Promise((r) => setTimeout(r, 20));
    }
    dev = `proxy,id=fs9,socket=${sock}`;
  } else {
    const pair = fdpass().socketpair();
    if (typeof pair === 'number') throw new Error(`socketpair: ${pair}`);
    const [a, b] = pair;
    helper = spawn(HELPER, ['-n', '-p', exp, '-f', '3'], { stdio: ['ignore', 'ignore', 'pipe', a] });
    fdpass().close(a);
    theirs = b;
    stdio.push(b);
    dev = 'proxy,id=fs9,sock_fd=3';
  }
  let helperLog = '';
  helper.stderr!.on('data', (d) => { helperLog += d; });
  const args = ['-accel', 'tcg', '-m', '512', '-nographic', '-no-reboot', '-kernel', KERNEL, '-initrd', INITRD,
    '-append', 'console=ttyS0 panic=-1 ninep.trans=virtio ninep.test=workload quiet',
    '-fsdev', dev, '-device', 'virtio-9p-pci,fsdev=fs9,mount_tag=ninep'];
  const qemu = spawn('qemu-system-x86_64', args, { stdio });
  if (theirs >= 0) fdpass().close(theirs);
  let out = '';
  qemu.stdout!.on('data', (d) => { out += d; });
  qemu.stderr!.on('data', (d) => { out += d; });
  const guard = setTimeout(() => { out += '\n@@ TIMEOUT (killed)\n'; qemu.kill('SIGKILL'); }, 300000);
  await waitExit(qemu);
  clearTimeout(guard);
  // QEMU is gone: the helper sees EOF, logs "Done" and exits 0
  const hguard = setTimeout(() => helper.kill('SIGKILL'), 10000);
  const helperExit = await waitExit(helper);
  clearTimeout(hguard);
  fs.mkdirSync(path.join(R, 'logs'), { recursive: true });
  fs.writeFileSync(path.join(R, 'logs', `${tag}-console.log`), out);
  fs.rmSync(tmp, { recursive: true, force: true });
  const steps = new Map<string, string>();
  for (const m of out.matchAll(/^@@ [\d.]+ STEP (\S+) (PASS|FAIL[^(]*)/gm)) steps.set(m[1], m[2].trim());
  return { steps, out, helperLog, helperExit };
}

describe('QEMU 7.2 proxy client (-fsdev proxy) → virtio9p helper', () => {
  test('the kernel and initramfs are prepared', () => {
    expect([fs.existsSync(KERNEL), fs.existsSync(INITRD)]).toEqual([true, true]);
  });

  test.each([['socket'], ['fd']] as const)('helper over %s: all 29 workload steps pass', async (mode) => {
    if (!fs.existsSync(KERNEL)) throw new Error(`no guest kernel at ${KERNEL}: run harness/linux-guest/setup.sh and build-initramfs.sh`);
    const exp = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-qh-exp-'));
    try {
      const run = await boot(mode, exp, `proxy-ours-${mode}`);
      const failed = [...run.steps].filter(([, v]) => v !== 'PASS');
      if (run.steps.size !== STEPS || failed.length > 0) {
        console.log(run.out.split('\n').filter((l) => l.startsWith('@@') || /FAIL|rror/.test(l)).slice(0, 80).join('\n'));
        console.log(run.helperLog);
      }
      expect(run.out).toContain('MOUNT OK');
      expect(failed).toEqual([]);
      expect(run.steps.size).toBe(STEPS);
      expect(run.out).toContain('WORKLOAD DONE');
      expect(run.helperLog).toContain('Started');
      expect(run.helperLog).toContain('Done');
      expect(run.helperExit).toBe(0);
    } finally {
      fs.rmSync(exp, { recursive: true, force: true });
    }
  }, 400000);
});
