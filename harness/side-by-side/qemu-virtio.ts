/**
 * The reference of the side-by-side comparison: QEMU's OWN 9P server and device
 * (-fsdev local,security_model=passthrough + -device virtio-9p-pci,mount_tag=ninep) running the
 * Linux guest's workload (harness/linux-guest/guest-init with ninep.trans=virtio). The guest is
 * the kit's Debian 6.1 kernel + busybox under QEMU TCG, booted exactly like
 * tests/e2e/linux-guest.test.ts boots it (spawn, a hang guard that kills by PID, the console
 * kept as a log). Needs .cache/linux-guest/out/{vmlinuz,initramfs.cpio.gz}
 * (harness/linux-guest/setup.sh && harness/linux-guest/build-initramfs.sh).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseGuestConsole, type GuestResult } from './result.js';

/** The device name of this runner's results (the report's first column; docs key on it). */
export const QEMU_DEVICE = 'qemu';

/** The repository root: the nearest directory above this module with the project's package.json. */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'virtio9p-wasm') return dir;
    const up = path.dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

export function guestKit(root = repoRoot()) {
  const R = path.join(root, '.cache/linux-guest');
  return { kernel: path.join(R, 'out/vmlinuz'), initrd: path.join(R, 'out/initramfs.cpio.gz') };
}

export interface QemuVirtioOptions {
  /** the host directory QEMU exports (use an empty temporary directory) */
  exportDir: string;
  /** ninep.msize (guest-init's default for trans=virtio is 512000) */
  msize?: number;
  /** extra mount options, e.g. "cache=loose" */
  mountOpts?: string;
  /** where to keep the console (default .cache/side-by-side/logs/qemu-console.log) */
  log?: string;
  /** hang guard: SIGKILL QEMU after this long (default 5 minutes; a healthy run takes ~10 s) */
  timeoutMs?: number;
}

/** QEMU's -fsdev/-device option values are comma-separated; a comma in a value is doubled. */
const qemuOpt = (s: string) => s.replace(/,/g, ',,');

/** The QEMU command line (exported for the docs and for inspection). */
export function qemuVirtioArgs(opts: QemuVirtioOptions, kit = guestKit()): string[] {
  const append = ['console=ttyS0', 'panic=-1', 'ninep.trans=virtio', 'ninep.test=workload', 'quiet'];
  if (opts.msize) append.push(`ninep.msize=${opts.msize}`);
  if (opts.mountOpts) append.push(`ninep.opts=${opts.mountOpts}`);
  return ['-accel', 'tcg', '-m', '512', '-nographic', '-no-reboot', '-kernel', kit.kernel, '-initrd', kit.initrd,
    '-append', append.join(' '),
    '-fsdev', `local,id=fs9,path=${qemuOpt(path.resolve(opts.exportDir))},security_model=passthrough`,
    '-device', 'virtio-9p-pci,fsdev=fs9,mount_tag=ninep'];
}

/** Boot the guest against QEMU's own virtio-9p-pci and parse its workload results. */
export function runQemuVirtio(opts: QemuVirtioOptions): Promise<GuestResult> {
  const root = repoRoot();
  const kit = guestKit(root);
  for (const f of [kit.kernel, kit.initrd]) {
    if (!fs.existsSync(f)) {
      return Promise.reject(new Error(`no ${f}: run harness/linux-guest/setup.sh and harness/linux-guest/build-initramfs.sh`));
    }
  }
  if (!fs.statSync(opts.exportDir, { throwIfNoEntry: false })?.isDirectory()) {
    return Promise.reject(new Error(`export directory ${opts.exportDir} does not exist`));
  }
  const log = opts.log ?? path.join(root, '.cache/side-by-side/logs', `${QEMU_DEVICE}-console.log`);
  fs.mkdirSync(path.dirname(log), { recursive: true });
  const args = qemuVirtioArgs(opts, kit);
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    // QEMU's own messages (stderr) are kept in the console: its 9p server reports there
    qemu.stdout!.on('data', (d) => { out += d; });
    qemu.stderr!.on('data', (d) => { out += d; });
    // A hang guard, not a speed check.
    const guard = setTimeout(() => {
      out += '\n@@ TIMEOUT (killed)\n';
      if (qemu.pid !== undefined) process.kill(qemu.pid, 'SIGKILL');
    }, opts.timeoutMs ?? 300000);
    qemu.once('error', (e) => { clearTimeout(guard); reject(e); });
    qemu.once('exit', (code, signal) => {
      clearTimeout(guard);
      const wallMs = Date.now() - t0;
      if (code !== 0) out += `\n@@ qemu exited ${signal ?? code}\n`;
      fs.writeFileSync(log, out);
      const parsed = parseGuestConsole(out);
      resolve({ device: QEMU_DEVICE, steps: parsed.steps, mounted: parsed.mounted, wallMs, console: out });
    });
  });
}
