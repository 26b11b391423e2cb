/**
 * Helper faults end to end: P9Client → split ring → wasm core → ProxyBackend → QEMU's
 * /usr/lib/qemu/virtfs-proxy-helper (tests/backends/proxy.test.ts covers the same faults at
 * the backend level). For each fault — SIGKILL mid-request, SIGSTOP past the deadline,
 * garbage on the wire — the requests in flight get Rlerror(EIO) in the guest, the backend
 * reconnects (a new helper), the guest's session and fids keep working, and data written and
 * fsynced before the fault is on disk afterwards (read from the host file directly).
 * Every helper is stopped by PID.
 */
import { describe, test, expect, beforeAll, afterAll, afterEach } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { ProxyBackend } from '../../src/backends/proxy/backend.js';
import { createMachine, type Machine } from '../../src/testing/machine.js';
import { P9ClientError } from '../../src/testing/p9/client.js';

const HELPER = '/usr/lib/qemu/virtfs-proxy-helper';
const EIO = 5;
const O_RDWR = 2, O_RDONLY = 0;
const S_IFREG = 0o100000;

beforeAll(() => {
  execFileSync(process.execPath, [path.resolve('native/build.mjs')], { stdio: 'inherit' });
});

const dirs: string[] = [];
const backends: ProxyBackend[] = [];
const stopped: number[] = [];
afterEach(async () => {
  for (const pid of stopped.splice(0)) {
    try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
  }
  for (const be of backends.splice(0)) {
    const pids = be.client.pids;
    await be.destroy();
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  }
});
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

function tmpdir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-fault-'));
  dirs.push(d);
  return d;
}
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
async function errnoOf(p: Promise<unknown>): Promise<number> {
  try { await p; return 0; } catch (e) { if (e instanceof P9ClientError) return e.errno; throw e; }
}

async function boot(be: ProxyBackend): Promise<Machine> {
  const m = await createMachine({ backend: be, guestMemorySize: 8 << 20, msize: 65536 });
  await m.client.version(65536);
  await m.client.attach(0, 0xffffffff, 'root', '', 0);
  return m;
}

/** Create `name`, write `data` in 32 KiB pieces, fsync, keep the fid open; returns the fid. */
async function writeDurable(m: Machine, name: string, data: Uint8Array): Promise<number> {
  const c = m.client;
  const fid = c.allocFid();
  await c.walk(0, fid, []);
  await c.lcreate(fid, name, O_RDWR, S_IFREG | 0o644, 0);
  for (let off = 0; off < data.length; off += 32768) await c.write(fid, off, data.subarray(off, Math.min(data.length, off + 32768)));
  await c.fsync(fid, 0);
  return fid;
}

async function readBack(m: Machine, name: string): Promise<Uint8Array> {
  const c = m.client;
  const fid = c.allocFid();
  await c.walk(0, fid, [name]);
  await c.lopen(fid, O_RDONLY);
  const d = await c.readAll(fid, 60000);
  await c.clunk(fid);
  return d;
}

describe('proxy helper faults through the device', () => {
  test('SIGKILL mid-request: in-flight requests get EIO, a new helper takes over, fsynced data is on disk', async () => {
    const dir = tmpdir();
    const be = await ProxyBackend.launch({ export: dir, helper: HELPER }, { connections: 1, deadlineMs: 5000, retryMinMs: 50 });
    backends.push(be);
    const m = await boot(be);
    const data = new Uint8Array(randomBytes(200000));
    const fid = await writeDurable(m, 'durable', data);
    const [pid] = be.client.pids;
    process.kill(pid, 'SIGSTOP'); // hold the next requests inside the helper
    stopped.push(pid);
    const c = m.client;
    const inflight = [
      errnoOf(c.walk(0, 100, ['durable'])),
      errnoOf(c.mkdir(0, 'newdir', 0o40755, 0)),
      errnoOf(c.walk(0, 101, ['nothing'])),
    ];
    await new Promise((r) => setTimeout(r, 100));
    expect(m.device.counters().inflight).toBeGreaterThanOrEqual(1);
    process.kill(pid, 'SIGKILL');
    expect(await Promise.all(inflight)).toEqual([EIO, EIO, EIO]);
    expect(await be.client.waitUp(1, 5000)).toBe(true);
    expect(be.client.pids[0]).not.toBe(pid);
    // the session survived: the open fid still reads (our own descriptor), walks work again
    expect(sha(await c.readAll(fid, 60000))).toBe(sha(data));
    expect(sha(await readBack(m, 'durable'))).toBe(sha(data));
    await c.mkdir(0, 'newdir', 0o40755, 0);
    expect(fs.statSync(path.join(dir, 'newdir')).isDirectory()).toBe(true);
    // on disk, read by the host directly
    expect(sha(fs.readFileSync(path.join(dir, 'durable')))).toBe(sha(data));
    await c.clunk(fid);
    expect(m.device.counters().inflight).toBe(0);
    expect(m.device.needsReset).toBe(false);
  }, 30000);

  test('SIGSTOP past the deadline: EIO at the deadline, the hung helper is replaced, data intact', async () => {
    const dir = tmpdir();
    const be = await ProxyBackend.launch({ export: dir, helper: HELPER }, { connections: 1, deadlineMs: 400, retryMinMs: 100 });
    backends.push(be);
    const m = await boot(be);
    const c = m.client;
    const data = new Uint8Array(randomBytes(100000));
    const fid = await writeDurable(m, 'f', data);
    const [pid] = be.client.pids;
    process.kill(pid, 'SIGSTOP');
    stopped.push(pid);
    const t0 = Date.now();
    expect(await errnoOf(c.walk(0, 100, ['f']))).toBe(EIO);
    const dt = Date.now() - t0;
    expect(dt).toBeGreaterThanOrEqual(350);
    expect(dt).toBeLessThan(5000);
    // while the helper is being replaced, data through the already-open fid still flows
    expect(await c.write(fid, 0, new TextEncoder().encode('HEAD'))).toBe(4);
    await c.fsync(fid, 0);
    expect(await be.client.waitUp(1, 5000)).toBe(true);
    expect(be.client.pids[0]).not.toBe(pid);
    const want = data.slice();
    want.set(new TextEncoder().encode('HEAD'), 0);
    expect(sha(await readBack(m, 'f'))).toBe(sha(want));
    expect(sha(fs.readFileSync(path.join(dir, 'f')))).toBe(sha(want));
    await c.clunk(fid);
    expect(m.device.counters().inflight).toBe(0);
  }, 30000);

  test('garbage from the helper: EIO in the guest, reconnect, the device keeps serving', async () => {
    const sockDir = tmpdir();
    const sock = path.join(sockDir, 'fake.sock');
    // a fake helper: valid LSTAT replies (a directory) for its first two requests, then junk
    const stat = Buffer.alloc(116);
    stat.writeBigUInt64LE(42n, 0); stat.writeBigUInt64LE(7n, 8); stat.writeBigUInt64LE(2n, 16);
    stat.writeUInt32LE(0o40755, 24);
    const good = Buffer.concat([Buffer.from([0, 0, 0, 0, 116, 0, 0, 0]), stat]);
    const junk = [Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), Buffer.from([1, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0]), Buffer.from([0, 0, 0, 0, 255, 255, 1, 0])];
    let conn = 0;
    const server = net.createServer((s) => {
      const mine = conn++;
      let n = 0;
      s.on('data', () => { if (n++ < 2) s.write(good); else s.write(junk[mine % junk.length]); });
      s.on('error', () => { /* hung up */ });
    });
    await new Promise<void>((res) => server.listen(sock, res));
    try {
      const be = await ProxyBackend.connect({ socket: sock }, { unlinkSocket: false, retryMinMs: 20, deadlineMs: 2000 });
      backends.push(be);
      const m = await boot(be); // attach: good reply #2
      const c = m.client;
      let eio = 0, ok = 0;
      for (let i = 0; i < 12; i++) {
        if (!(await be.client.waitUp(1, 5000))) break;
        const e = await errnoOf(c.getattr(0).then(() => c.walk(0, 200 + i, ['x'])));
        if (e === EIO) eio++;
        else if (e === 0) { ok++; await c.clunk(200 + i); }
      }
      expect(eio).toBeGreaterThanOrEqual(3);
      expect(be.client.losses).toBeGreaterThanOrEqual(3);
      expect(m.device.needsReset).toBe(false);
      expect(m.device.counters().inflight).toBe(0);
      // the core itself still answers (version/attach handled without the backend's help)
      const st = await errnoOf(c.getattr(0));
      expect([0, EIO]).toContain(st);
      void ok;
    } finally {
      await new Promise((res) => server.close(res));
    }
  }, 30000);
});
