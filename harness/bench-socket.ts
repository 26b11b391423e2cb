/**
 * `npm run bench -- --socket`: `virtio9p serve` raced against diod in the same run, with diod's
 * own load generator (diodload: 1 and 4 threads, read/write I/O and -g getattr) over Unix
 * sockets, and optionally the Linux guest workload's wall time (QEMU, trans=fd) against both.
 * diodload attaches aname "ctl": diod serves its synthetic ctl file system (zero and null are
 * devices), we serve a directory ctl/ with a 1 MiB file `zero` and an empty file `null`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface SocketBenchOptions { backend?: string; seconds?: number; guest?: boolean; log?: (s: string) => void }
export interface SocketBenchRow { name: string; ours: number; diod: number; ratio: number; unit: string }

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

function waitForSocket(p: string, proc: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const poll = () => {
      if (fs.existsSync(p)) return resolve();
      if (proc.exitCode !== null) return reject(new Error(`server exited (${proc.exitCode}) before listening`));
      if (Date.now() - t0 > 20000) return reject(new Error(`no socket at ${p}`));
      setTimeout(poll, 50);
    };
    poll();
  });
}

function stop(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once('exit', () => resolve());
    process.kill(proc.pid!, 'SIGTERM');
  });
}

function diodload(sock: string, seconds: number, threads: number, getattr: boolean): number {
  const r = spawnSync('diodload', ['-s', sock, '-r', String(seconds), '-n', String(threads), ...(getattr ? ['-g'] : [])], { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  const m = /diodload: (\d+) ops\/s/.exec(`${r.stderr}${r.stdout}`);
  if (!m) throw new Error(`diodload failed: ${r.stderr}`);
  return Number(m[1]);
}

/** Seconds between MOUNT OK and WORKLOAD DONE in the guest's console. */
function guestWorkload(sock: string, aname: string | null, log: (s: string) => void): number {
  const R = path.join(root, '.cache/linux-guest');
  const append = ['console=ttyS0', 'panic=-1', 'ninep.trans=fd', 'ninep.test=workload', 'quiet'];
  if (aname) append.push(`ninep.aname=${aname}`);
  const r = spawnSync('qemu-system-x86_64', ['-accel', 'tcg', '-m', '512', '-nographic', '-no-reboot',
    '-kernel', path.join(R, 'out/vmlinuz'), '-initrd', path.join(R, 'out/initramfs.cpio.gz'), '-append', append.join(' '),
    '-chardev', `socket,id=c9,path=${sock},server=off`, '-device', 'virtio-serial', '-device', 'virtserialport,chardev=c9,name=ninep'],
  { encoding: 'utf8', timeout: 300000 });
  const out = r.stdout + r.stderr;
  const t = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
  const fails = [...out.matchAll(/STEP (\S+) FAIL/g)].map((m) => m[1]);
  if (fails.length) log(`guest steps failed: ${fails.join(', ')}`);
  return t(/@@ ([\d.]+) WORKLOAD DONE/) - t(/@@ ([\d.]+) MOUNT OK/);
}

export async function runSocketBench(opts: SocketBenchOptions = {}): Promise<SocketBenchRow[]> {
  const log = opts.log ?? (() => {});
  const seconds = opts.seconds ?? 5;
  const backend = opts.backend ?? 'memory';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-sbench-'));
  const exp = path.join(dir, 'export');
  fs.mkdirSync(path.join(exp, 'ctl'), { recursive: true });
  fs.writeFileSync(path.join(exp, 'ctl', 'zero'), Buffer.alloc(1 << 20));
  fs.writeFileSync(path.join(exp, 'ctl', 'null'), '');
  const ourSock = path.join(dir, 'ours.sock'), diodSock = path.join(dir, 'diod.sock');
  const ours = spawn(process.execPath, [path.join(root, 'dist/cli.js'), 'serve', '--export', exp, '--backend', backend, '--listen', `unix:${ourSock}`], { stdio: 'ignore' });
  const diod = spawn('diod', ['-f', '-n', '-l', diodSock, '-e', 'ctl', '-e', exp, '-L', path.join(dir, 'diod.log')], { stdio: 'ignore' });
  const rows: SocketBenchRow[] = [];
  try {
    await waitForSocket(ourSock, ours);
    await waitForSocket(diodSock, diod);
    for (const getattr of [false, true]) {
      for (const n of [1, 4]) {
        const name = `diodload -n ${n}${getattr ? ' -g (getattr)' : ' (64 KiB read+write)'}`;
        log(`${name}: ours …`);
        const a = diodload(ourSock, seconds, n, getattr);
        log(`${name}: diod …`);
        const b = diodload(diodSock, seconds, n, getattr);
        rows.push({ name, ours: a, diod: b, ratio: a / b, unit: 'ops/s' });
      }
    }
    if (opts.guest) {
      log('Linux guest workload: ours …');
      const a = guestWorkload(ourSock, null, log);
      log('Linux guest workload: diod …');
      const b = guestWorkload(diodSock, exp, log);
      // for time, lower is better: the ratio is diod's time over ours (> 1 = we are faster)
      rows.push({ name: 'Linux guest 29-step workload (wall)', ours: a, diod: b, ratio: b / a, unit: 's' });
    }
  } finally {
    await stop(ours);
    await stop(diod);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

export function formatSocketRows(rows: SocketBenchRow[]): string {
  const w = Math.max(...rows.map((r) => r.name.length));
  const fmt = (v: number, u: string) => (u === 's' ? `${v.toFixed(2)} s` : Math.round(v).toLocaleString('en-US'));
  return [`${'workload'.padEnd(w)}  ${'virtio9p'.padStart(10)}  ${'diod'.padStart(10)}  ours/diod`,
    ...rows.map((r) => `${r.name.padEnd(w)}  ${fmt(r.ours, r.unit).padStart(10)}  ${fmt(r.diod, r.unit).padStart(10)}  ${r.ratio.toFixed(2)}`)].join('\n');
}
