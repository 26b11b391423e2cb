/**
 * Tens of thousands of files under cache=loose, where Linux's v9fs keeps a fid for every cached
 * dentry: the guest creates N small files in one directory, lists them with `ls -l`, cats them
 * all (checking the sum of their contents), reads the last one and removes them
 * (guest-init's `ninep.test=files`). Once through `virtio9p serve` with the kernel's trans=fd
 * client under QEMU (TCG), once through our device in v86 (trans=virtio). The server must hold
 * more fids than a session's first table (1,024 entries): its table grows.
 * The kernels and initramfs come from .ci/run (harness/linux-guest, harness/v86-guest).
 */
import { describe, test, expect } from '@jest/globals';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { serve, tempDir } from '../clients/serve-util.js';
import { bootV86Guest, V86_GUEST_DIR } from '../../harness/v86-guest/boot.js';
import { parseGuestConsole, type StepResult } from '../../harness/side-by-side/result.js';
import { V86Virtio9p } from '../../src/adapters/v86-pci.js';
import { MemoryBackend } from '../../src/backends/memory.js';

const root = new URL('../../', import.meta.url).pathname;
const R = path.join(root, '.cache/linux-guest');
const STEPS = ['files-mkdir', 'files-create', 'files-ls-l', 'files-cat', 'files-last', 'files-rm'];
// Sized so each guest stays near a minute under TCG / in v86 on a shared 2-core machine
// (docs/linux-guest.md has the measured times).
const QEMU_FILES = 2200; // with cache=loose about two fids a file: past the 4,095 of a fixed table
const V86_FILES = 2500;

function report(steps: Map<string, StepResult>, con: string): string {
  return `${[...steps].map(([k, v]) => `${k} ${v.result} ${v.seconds}s`).join(', ')}\n` +
    con.split('\n').filter((l) => /^@@|^ {3}\|/.test(l.replace(/\r/g, ''))).slice(-30).join('\n');
}

function expectAll(steps: Map<string, StepResult>, con: string, n: number): void {
  const failed = STEPS.filter((s) => steps.get(s)?.result !== 'PASS');
  if (failed.length) console.log(report(steps, con)); // eslint-disable-line no-console
  expect(failed).toEqual([]);
  expect(con).toMatch(new RegExp(`@@ [\\d.]+ FILES DONE ${n}`));
  expect(con).toMatch(/@@ [\d.]+ UMOUNT OK/);
}

describe('many files under cache=loose', () => {
  test(`virtio9p serve (local backend), QEMU guest, trans=fd: ${QEMU_FILES} files created, listed, read, removed`, async () => {
    const kernel = path.join(R, 'out/vmlinuz'), initrd = path.join(R, 'out/initramfs.cpio.gz');
    if (!fs.existsSync(kernel)) throw new Error(`no guest kernel at ${kernel}: run harness/linux-guest/setup.sh and build-initramfs.sh`);
    const exp = tempDir('many-files');
    const srv = await serve(exp, 'local');
    let con = '';
    try {
      const append = ['console=ttyS0', 'panic=-1', 'ninep.trans=fd', 'ninep.test=files', `ninep.files=${QEMU_FILES}`,
        'ninep.opts=cache=loose', 'quiet'].join(' ');
      con = await new Promise<string>((resolve, reject) => {
        const qemu = spawn('qemu-system-x86_64', ['-accel', 'tcg', '-m', '512', '-nographic', '-no-reboot',
          '-kernel', kernel, '-initrd', initrd, '-append', append,
          '-chardev', `socket,id=c9,path=${srv.sock},server=off`, '-device', 'virtio-serial', '-device', 'virtserialport,chardev=c9,name=ninep'],
        { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        qemu.stdout!.on('data', (d) => { out += d; });
        qemu.stderr!.on('data', (d) => { out += d; });
        const guard = setTimeout(() => { out += '\n@@ TIMEOUT (killed)\n'; process.kill(qemu.pid!, 'SIGKILL'); }, 400000); // a hang guard
        qemu.once('error', (e) => { clearTimeout(guard); reject(e); });
        qemu.once('exit', () => { clearTimeout(guard); resolve(out); });
      });
    } finally {
      expect(await srv.stop()).toBe(0);
      fs.rmSync(exp, { recursive: true, force: true });
    }
    fs.mkdirSync(path.join(R, 'logs'), { recursive: true });
    fs.writeFileSync(path.join(R, 'logs', 'many-files-serve-console.log'), con);
    const { steps } = parseGuestConsole(con);
    console.log(`[many files, serve] ${report(steps, '')}`); // eslint-disable-line no-console
    expectAll(steps, con, QEMU_FILES);
  }, 450000);

  test(`our device in v86 (memory backend), trans=virtio: ${V86_FILES} files created, listed, read, removed`, async () => {
    if (!fs.existsSync(path.join(V86_GUEST_DIR, 'vmlinuz'))) throw new Error(`no v86 guest in ${V86_GUEST_DIR}: run harness/v86-guest/setup.sh`);
    const backend = new MemoryBackend();
    let adapter: V86Virtio9p | undefined;
    const r = await bootV86Guest({
      ownDevice: false,
      tag: 'host9p',
      cmdline: `ninep.test=files ninep.files=${V86_FILES} ninep.opts=cache=loose`,
      log: path.join(root, '.cache/v86-guest/logs/many-files-console.log'),
      timeoutMs: 400000,
      beforeStart: async (emulator) => { adapter = await V86Virtio9p.attach(emulator, { backend }); },
    });
    console.log(`[many files, v86] wall ${(r.wallMs / 1000).toFixed(1)} s; ${report(r.steps, '')}`); // eslint-disable-line no-console
    expectAll(r.steps, r.console, V86_FILES);
    const c = adapter!.device.counters();
    expect([c.errors[23] ?? 0, c.errors[24] ?? 0]).toEqual([0, 0]); // no ENFILE, no EMFILE
    expect(c.requests[12 /* Tlopen */] ?? 0).toBeGreaterThanOrEqual(V86_FILES);
  }, 450000);
});
