/**
 * Disk full: a 1 MiB tmpfs (mount -t tmpfs -o size=1m; needs root / CAP_SYS_ADMIN) exported
 * through the local and the proxy backends. Writing past the end of the space gives the guest
 * ENOSPC (after a short write, as write(2) does), and nothing else: what was written reads
 * back, other requests and the device keep working, and after an unlink the space is usable
 * again. It needs root (CI runs as root); without it the test fails and says why.
 */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalBackend } from '../../src/backends/local.js';
import { ProxyBackend } from '../../src/backends/proxy/backend.js';
import type { Backend } from '../../src/backends/backend.js';
import { createMachine } from '../../src/testing/machine.js';
import { P9ClientError } from '../../src/testing/p9/client.js';

const ENOSPC = 28;
const O_RDWR = 2, O_RDONLY = 0;
const S_IFREG = 0o100000;
let mnt = '';
let why = '';

beforeAll(() => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-enospc-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', d], { stdio: 'pipe' });
    mnt = d;
  } catch (e) {
    why = `mount -t tmpfs failed: ${(e as { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message} (uid ${process.getuid?.()})`;
    fs.rmSync(d, { recursive: true, force: true });
  }
  if (mnt) execFileSync(process.execPath, [path.resolve('native/build.mjs')], { stdio: 'inherit' });
});
afterAll(() => {
  if (!mnt) return;
  try { execFileSync('umount', [mnt]); } catch { execFileSync('umount', ['-l', mnt]); }
  fs.rmSync(mnt, { recursive: true, force: true });
});

async function errnoOf(p: Promise<unknown>): Promise<number> {
  try { await p; return 0; } catch (e) { if (e instanceof P9ClientError) return e.errno; throw e; }
}

async function diskFull(kind: string, backend: Backend, sub: string): Promise<void> {
  const m = await createMachine({ backend, guestMemorySize: 8 << 20, msize: 65536 });
  const c = m.client;
  await c.version(65536);
  await c.attach(0, 0xffffffff, 'root', '', 0);
  // a small file first (kept), then fill the disk
  await c.walk(0, 1, []);
  await c.lcreate(1, 'small', O_RDWR, S_IFREG | 0o644, 0);
  expect(await c.write(1, 0, new TextEncoder().encode('small file'))).toBe(10);
  await c.clunk(1);
  await c.walk(0, 2, []);
  await c.lcreate(2, 'big', O_RDWR, S_IFREG | 0o644, 0);
  const chunk = new Uint8Array(60000).fill(0x5a);
  let off = 0;
  let err = 0;
  let short = 0;
  for (let i = 0; i < 100 && !err; i++) {
    try {
      const n = await c.write(2, off, chunk);
      if (n < chunk.length) short++;
      off += n;
    } catch (e) {
      if (!(e instanceof P9ClientError)) throw e;
      err = e.errno;
    }
  }
  console.log(`[enospc ${kind}] wrote ${off} bytes into a 1 MiB tmpfs, then errno ${err} (short writes: ${short})`); // eslint-disable-line no-console
  expect(err).toBe(ENOSPC);
  expect(off).toBeGreaterThan(512 * 1024);
  expect(off).toBeLessThanOrEqual(1 << 20);
  // ENOSPC and nothing else: the device is healthy, the data written reads back, others work
  expect(m.device.needsReset).toBe(false);
  expect(m.device.counters().inflight).toBe(0);
  expect(Number((await c.getattr(2)).size)).toBe(off);
  const back = await c.read(2, 0, 4096);
  expect(back.every((x) => x === 0x5a)).toBe(true);
  expect(fs.statSync(path.join(sub, 'big')).size).toBe(off);
  await c.walk(0, 3, ['small']);
  await c.lopen(3, O_RDONLY);
  expect(new TextDecoder().decode(await c.read(3, 0, 100))).toBe('small file');
  expect(await errnoOf(c.fsync(2, 0))).toBe(0);
  const ents = await c.walk(0, 4, []).then(async () => { await c.lopen(4, 0o200000); return c.readdirAll(4); });
  expect(ents.map((e) => new TextDecoder().decode(e.name)).sort()).toEqual(['.', '..', 'big', 'small']);
  // free the space: writes work again
  await c.clunk(2);
  await c.unlinkat(0, 'big', 0);
  await c.walk(0, 5, []);
  await c.lcreate(5, 'again', O_RDWR, S_IFREG | 0o644, 0);
  expect(await c.write(5, 0, chunk)).toBe(chunk.length);
  await c.clunk(5);
  await c.unlinkat(0, 'again', 0);
  for (const f of [3, 4]) await c.clunk(f);
}

describe('disk full', () => {
  test('local backend on a 1 MiB tmpfs: ENOSPC reaches the guest, nothing else breaks', async () => {
    if (!mnt) throw new Error(`a 1 MiB tmpfs is needed (run as root): ${why}`);
    const sub = path.join(mnt, 'local');
    fs.mkdirSync(sub);
    const be = new LocalBackend({ root: sub });
    try {
      await diskFull('local', be, sub);
    } finally {
      (be as unknown as { destroy?: () => void }).destroy?.();
      fs.rmSync(sub, { recursive: true, force: true });
    }
  }, 30000);

  test('proxy backend (virtfs-proxy-helper) on a 1 MiB tmpfs: ENOSPC reaches the guest, nothing else breaks', async () => {
    if (!mnt) throw new Error(`a 1 MiB tmpfs is needed (run as root): ${why}`);
    const sub = path.join(mnt, 'proxy');
    fs.mkdirSync(sub);
    const be = await ProxyBackend.launch({ export: sub, helper: '/usr/lib/qemu/virtfs-proxy-helper' }, { connections: 1 });
    const pids = be.client.pids;
    try {
      await diskFull('proxy', be, sub);
    } finally {
      await be.destroy();
      for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
      fs.rmSync(sub, { recursive: true, force: true });
    }
  }, 30000);
});
