/**
 * The soak: 8 concurrent clients doing mixed operations with checksummed data against one
 * server for a time budget. Each client owns a directory and keeps a model of its files;
 * every read is checked against the model while running, and at the end every file is read
 * back through a fresh connection and its SHA-256 compared with what its writer recorded.
 * Then everything is removed and the resource figures are compared with the start:
 * descriptors (/proc/self/fd), process RSS, module memory, device inflight, the socket
 * server's buffers in use.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { P9Server } from '../../src/serve.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { LocalBackend } from '../../src/backends/local.js';
import type { Backend } from '../../src/backends/backend.js';
import { Virtio9pDevice } from '../../src/device.js';
import { SplitDriver } from '../../src/testing/virtio/split-driver.js';
import { P9Client, P9ClientError } from '../../src/testing/p9/client.js';
import { connectStream, type StreamConn } from './stream-client.js';
import { Rng } from '../fuzz/rng.js';

export type SoakBackend = 'memory' | 'local' | 'proxy';
export interface SoakOptions {
  ms: number;
  backend: SoakBackend;
  /** 'socket' (P9Server, one connection per client) or 'ring' (one device, one driver, 8 workers) */
  transport?: 'socket' | 'ring';
  clients?: number;
  seed?: number;
  msize?: number;
  /** largest file a client writes */
  maxFile?: number;
  log?: (line: string) => void;
}

export interface Resources { fds: number; rss: number; heap: number; wasm: number; inflight: number; buffers: number }
export interface SoakReport {
  backend: SoakBackend;
  transport: string;
  seconds: number;
  ops: number;
  opsPerSec: number;
  byOp: Record<string, number>;
  bytesWritten: number;
  bytesRead: number;
  files: number;
  verified: number;
  mismatches: string[];
  errors: string[];
  start: Resources;
  end: Resources;
  high: { inflight: number; buffers: number; fds: number; rss: number; inflightHighWater: number; stalls: number };
  /** node ran with --expose-gc: the heap figures are after collection */
  gc: boolean;
}

const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_TRUNC = 0o1000, O_DIRECTORY = 0o200000;
const S_IFREG = 0o100000, S_IFDIR = 0o40000, AT_REMOVEDIR = 0x200;
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;

function resources(dev: Virtio9pDevice, srv: P9Server | null): Resources {
  const mu = process.memoryUsage();
  return { fds: fdCount(), rss: mu.rss, heap: mu.heapUsed + mu.external - mu.arrayBuffers, wasm: dev.ram.buffer.byteLength, inflight: dev.counters().inflight, buffers: srv ? srv.buffersInUse : 0 };
}

class Worker {
  readonly files = new Map<string, Uint8Array>();
  readonly dirs = new Set<string>();
  ops = 0;
  byOp: Record<string, number> = {};
  bytesWritten = 0;
  bytesRead = 0;
  errors: string[] = [];
  private seq = 0;
  private dirFid = -1;
  constructor(readonly id: number, readonly c: P9Client, readonly rng: Rng, readonly chunk: number, readonly maxFile: number) {}
  get dir(): string { return `w${this.id}`; }

  async setup(): Promise<void> {
    const c = this.c;
    const r = c.allocFid();
    await c.walk(0, r, []);
    await c.mkdir(r, this.dir, S_IFDIR | 0o755, 0);
    await c.clunk(r);
    this.dirFid = c.allocFid();
    await c.walk(0, this.dirFid, [this.dir]);
  }

  private async fid(names: string[]): Promise<number> {
    const f = this.c.allocFid();
    try {
      const q = await this.c.walk(this.dirFid, f, names);
      if (q.length !== names.length) throw new Error(`partial walk to ${names.join('/')}`);
    } catch (e) { this.c.releaseFid(f); throw e; }
    return f;
  }

  private async writeAll(fid: number, off: number, data: Uint8Array): Promise<void> {
    for (let p = 0; p < data.length;) {
      const n = await this.c.write(fid, off + p, data.subarray(p, Math.min(data.length, p + this.chunk)));
      if (n <= 0) throw new Error(`write returned ${n}`);
      p += n;
    }
    this.bytesWritten += data.length;
  }

  async readFile(name: string, c = this.c, dirFid = this.dirFid): Promise<Uint8Array> {
    const f = c.allocFid();
    await c.walk(dirFid, f, [name]);
    try {
      await c.lopen(f, O_RDONLY);
      const d = await c.readAll(f, this.chunk);
      this.bytesRead += d.length;
      return d;
    } finally { await c.clunk(f); }
  }

  private check(name: string, got: Uint8Array): void {
    const want = this.files.get(name)!;
    if (got.length !== want.length || sha(got) !== sha(want)) this.errors.push(`${this.dir}/${name}: read ${got.length} bytes (sha ${sha(got).slice(0, 12)}), model ${want.length} (sha ${sha(want).slice(0, 12)})`);
  }

  private randomData(n: number): Uint8Array {
    const b = new Uint8Array(n);
    let x = this.rng.u32() | 1;
    for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; b[i] = x & 0xff; }
    return b;
  }

  async step(): Promise<void> {
    const rng = this.rng;
    const names = [...this.files.keys()];
    const op = names.length < 3 ? 'create' : rng.weighted([
      [3, 'create'], [5, 'overwrite'], [2, 'append'], [6, 'read'], [2, 'truncate'], [2, 'rename'], [2, 'unlink'],
      [3, 'getattr'], [2, 'readdir'], [1, 'fsync'], [1, 'mkdir'], [1, 'statfs'],
    ] as const);
    const c = this.c;
    this.byOp[op] = (this.byOp[op] ?? 0) + 1;
    this.ops++;
    const pickName = (): string => rng.pick(names);
    switch (op) {
      case 'create': {
        const name = `f${this.seq++}`;
        const data = this.randomData(rng.int(this.maxFile));
        const f = await this.fid([]);
        try {
          await c.lcreate(f, name, O_RDWR | O_TRUNC, S_IFREG | 0o644, 0);
          this.files.set(name, data);
          await this.writeAll(f, 0, data);
        } finally { await c.clunk(f); }
        break;
      }
      case 'overwrite': case 'append': {
        const name = pickName();
        const cur = this.files.get(name)!;
        const off = op === 'append' ? cur.length : rng.int(cur.length + 1);
        const data = this.randomData(rng.int(op === 'append' ? 20000 : 70000) + 1);
        const f = await this.fid([name]);
        try {
          await c.lopen(f, rng.chance(0.5) ? O_WRONLY : O_RDWR);
          const next = new Uint8Array(Math.max(cur.length, off + data.length));
          next.set(cur);
          next.set(data, off);
          this.files.set(name, next);
          await this.writeAll(f, off, data);
        } finally { await c.clunk(f); }
        break;
      }
      case 'read': {
        const name = pickName();
        this.check(name, await this.readFile(name));
        break;
      }
      case 'truncate': {
        const name = pickName();
        const cur = this.files.get(name)!;
        const size = rng.int(cur.length + 1000);
        const f = await this.fid([name]);
        try {
          await c.setattr(f, { valid: 0x8, size });
          const next = new Uint8Array(size);
          next.set(cur.subarray(0, Math.min(size, cur.length)));
          this.files.set(name, next);
        } finally { await c.clunk(f); }
        break;
      }
      case 'rename': {
        const from = pickName();
        const to = rng.chance(0.3) ? pickName() : `f${this.seq++}`;
        await c.renameat(this.dirFid, from, this.dirFid, to);
        const d = this.files.get(from)!;
        this.files.delete(from);
        this.files.set(to, d);
        break;
      }
      case 'unlink': {
        const name = pickName();
        await c.unlinkat(this.dirFid, name, 0);
        this.files.delete(name);
        break;
      }
      case 'getattr': {
        const name = pickName();
        const f = await this.fid([name]);
        try {
          const a = await c.getattr(f);
          if (Number(a.size) !== this.files.get(name)!.length) this.errors.push(`${this.dir}/${name}: getattr size ${a.size}, model ${this.files.get(name)!.length}`);
        } finally { await c.clunk(f); }
        break;
      }
      case 'readdir': {
        const f = await this.fid([]);
        try {
          await c.lopen(f, O_RDONLY | O_DIRECTORY);
          const got = (await c.readdirAll(f, 8192)).map((e) => new TextDecoder().decode(e.name)).filter((n) => n !== '.' && n !== '..').sort();
          const want = [...this.files.keys(), ...this.dirs].sort();
          if (got.join('/') !== want.join('/')) this.errors.push(`${this.dir}: readdir [${got.join(' ')}], model [${want.join(' ')}]`);
        } finally { await c.clunk(f); }
        break;
      }
      case 'fsync': {
        const f = await this.fid([pickName()]);
        try { await c.lopen(f, O_RDONLY); await c.fsync(f, rng.int(2)); } finally { await c.clunk(f); }
        break;
      }
      case 'mkdir': {
        if (this.dirs.size && rng.chance(0.5)) {
          const d = [...this.dirs][0];
          await c.unlinkat(this.dirFid, d, AT_REMOVEDIR);
          this.dirs.delete(d);
        } else {
          const d = `d${this.seq++}`;
          await c.mkdir(this.dirFid, d, S_IFDIR | 0o755, 0);
          this.dirs.add(d);
        }
        break;
      }
      case 'statfs': await c.statfs(this.dirFid); break;
    }
  }

  async teardown(): Promise<void> {
    for (const n of this.files.keys()) await this.c.unlinkat(this.dirFid, n, 0);
    for (const d of this.dirs) await this.c.unlinkat(this.dirFid, d, AT_REMOVEDIR);
    await this.c.clunk(this.dirFid);
    const r = this.c.allocFid();
    await this.c.walk(0, r, []);
    await this.c.unlinkat(r, this.dir, AT_REMOVEDIR);
    await this.c.clunk(r);
  }
}

const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** collect garbage when node runs with --expose-gc (the npm script does) */
async function settle(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 4; i++) { gc?.(); await tick(20); }
}

export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const log = opts.log ?? (() => {});
  const nClients = opts.clients ?? 8;
  const transport = opts.transport ?? 'socket';
  const msize = opts.msize ?? 65536;
  const seed = opts.seed ?? 12345;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-soak-'));
  const exportDir = path.join(tmp, 'export');
  fs.mkdirSync(exportDir);
  let backend: Backend;
  let destroy: () => Promise<void> = async () => {};
  let proxyPids: number[] = [];
  if (opts.backend === 'memory') backend = new MemoryBackend();
  else if (opts.backend === 'local') {
    const lb = new LocalBackend({ root: exportDir });
    backend = lb;
    destroy = async () => { (lb as unknown as { destroy?: () => void }).destroy?.(); };
  } else {
    const { ProxyBackend } = await import('../../src/backends/proxy/backend.js');
    const pb = await ProxyBackend.launch({ export: exportDir }, { connections: 4 });
    backend = pb;
    proxyPids = pb.client.pids;
    destroy = async () => {
      await pb.destroy();
      for (const pid of proxyPids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    };
  }

  let srv: P9Server | null = null;
  let device: Virtio9pDevice;
  let driver: SplitDriver | null = null;
  const conns: StreamConn[] = [];
  const clients: P9Client[] = [];
  if (transport === 'socket') {
    srv = await P9Server.start({ backend, listen: { kind: 'unix', path: path.join(tmp, 's.sock') }, bufferSize: 64 << 20 });
    device = srv.device;
  } else {
    device = await Virtio9pDevice.create({ backend, guestMemorySize: 64 << 20 });
  }
  // the module memory is fixed at instantiation but its pages become resident as they are
  // first touched: touch them all now, so that RSS start → end compares like with like
  device.ram.fill(0);
  await settle();
  const start = resources(device, srv);
  const high = { inflight: 0, buffers: 0, fds: start.fds, rss: start.rss, inflightHighWater: 0, stalls: 0 };
  const sampler = setInterval(() => {
    const r = resources(device, srv);
    high.inflight = Math.max(high.inflight, r.inflight);
    high.buffers = Math.max(high.buffers, r.buffers);
    high.fds = Math.max(high.fds, r.fds);
    high.rss = Math.max(high.rss, r.rss);
  }, 50);

  const openClient = async (): Promise<P9Client> => {
    if (srv) {
      const s = await connectStream(path.join(tmp, 's.sock'), msize);
      conns.push(s);
      await s.client.version(msize);
      await s.client.attach(0, 0xffffffff, 'root', '', 0);
      return s.client;
    }
    driver ??= new SplitDriver(device, { queueSize: 256 });
    if (!clients.length) {
      const c = new P9Client(driver.rpcFn, { msize });
      await c.version(msize);
      await c.attach(0, 0xffffffff, 'root', '', 0);
      clients.push(c);
    }
    return clients[0];
  };

  const workers: Worker[] = [];
  for (let i = 0; i < nClients; i++) workers.push(new Worker(i, await openClient(), new Rng(seed + i * 7919), msize - 24, opts.maxFile ?? 256 * 1024));
  for (const w of workers) await w.setup();
  const t0 = performance.now();
  const end = t0 + opts.ms;
  let lastLog = t0;
  await Promise.all(workers.map(async (w) => {
    while (performance.now() < end && w.errors.length === 0) {
      try { await w.step(); } catch (e) {
        w.errors.push(e instanceof P9ClientError ? `${w.dir}: ${e.message}` : `${w.dir}: ${(e as Error).stack ?? e}`);
      }
      if (w.id === 0 && performance.now() - lastLog > 10000) {
        lastLog = performance.now();
        const ops = workers.reduce((s, x) => s + x.ops, 0);
        log(`  ${((lastLog - t0) / 1000).toFixed(0)} s: ${ops} ops (${(ops / ((lastLog - t0) / 1000)).toFixed(0)}/s), inflight hwm ${device.counters().inflightHighWater}`);
      }
    }
  }));
  const seconds = (performance.now() - t0) / 1000;

  // verification through a fresh connection (socket) or a fresh client (ring)
  const mismatches: string[] = [];
  let verified = 0;
  let files = 0;
  const vc = srv ? await openClient() : clients[0];
  for (const w of workers) {
    const d = vc.allocFid();
    await vc.walk(0, d, [w.dir]);
    for (const [name, want] of w.files) {
      files++;
      const got = await w.readFile(name, vc, d);
      if (sha(got) === sha(want)) verified++;
      else mismatches.push(`${w.dir}/${name}: sha ${sha(got).slice(0, 16)} (${got.length} bytes), writer recorded ${sha(want).slice(0, 16)} (${want.length} bytes)`);
    }
    await vc.clunk(d);
    if (opts.backend !== 'memory') {
      // the host file system agrees too
      for (const [name, want] of w.files) {
        const p = path.join(exportDir, w.dir, name);
        const got = fs.readFileSync(p);
        if (sha(got) !== sha(want)) mismatches.push(`host ${p}: sha differs from the writer's record`);
      }
    }
  }
  for (const w of workers) { await w.teardown(); w.files.clear(); }
  for (const s of conns) await s.close();
  if (srv) for (let i = 0; i < 200 && srv.connections; i++) await tick(5);
  clearInterval(sampler);
  await tick(100);
  await settle();
  const endR = resources(device, srv);
  const c = device.counters();
  high.inflightHighWater = c.inflightHighWater;
  high.stalls = c.stalls;
  const ops = workers.reduce((s, w) => s + w.ops, 0);
  const byOp: Record<string, number> = {};
  for (const w of workers) for (const [k, v] of Object.entries(w.byOp)) byOp[k] = (byOp[k] ?? 0) + v;
  const report: SoakReport = {
    backend: opts.backend, transport, seconds, ops, opsPerSec: Math.round(ops / seconds), byOp,
    bytesWritten: workers.reduce((s, w) => s + w.bytesWritten, 0), bytesRead: workers.reduce((s, w) => s + w.bytesRead, 0),
    files, verified, mismatches, errors: workers.flatMap((w) => w.errors), start, end: endR, high,
    gc: typeof (globalThis as { gc?: unknown }).gc === 'function',
  };
  if (srv) await srv.close();
  await destroy();
  fs.rmSync(tmp, { recursive: true, force: true });
  return report;
}

const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
export function formatSoak(r: SoakReport): string {
  return [
    `soak ${r.backend}/${r.transport}: ${r.ops} ops in ${r.seconds.toFixed(1)} s → ${r.opsPerSec} ops/s; ${mib(r.bytesWritten)} written, ${mib(r.bytesRead)} read`,
    `  ops: ${Object.entries(r.byOp).sort().map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `  files at the end: ${r.files}, checksums verified: ${r.verified}, mismatches: ${r.mismatches.length}, errors: ${r.errors.length}`,
    `  high water: device inflight ${r.high.inflightHighWater} (sampled ${r.high.inflight}), server buffers ${r.high.buffers}, fds ${r.high.fds}, RSS ${mib(r.high.rss)}, stalls ${r.high.stalls}`,
    `  start → end: fds ${r.start.fds} → ${r.end.fds}, RSS ${mib(r.start.rss)} → ${mib(r.end.rss)}, JS heap ${mib(r.start.heap)} → ${mib(r.end.heap)}, wasm ${mib(r.start.wasm)} → ${mib(r.end.wasm)}, inflight ${r.start.inflight} → ${r.end.inflight}, server buffers ${r.start.buffers} → ${r.end.buffers}`,
    ...r.mismatches.slice(0, 10).map((m) => `  MISMATCH ${m}`),
    ...r.errors.slice(0, 10).map((m) => `  ERROR ${m}`),
  ].join('\n');
}

/**
 * What "back to the start" means: equal descriptor counts, the same module memory, nothing in
 * flight, no server buffer in use, the JS heap (after gc, when node runs with --expose-gc)
 * within `heapSlack`. RSS is reported but only bounded loosely (`rssSlack`): freed heap and
 * malloc pages are not necessarily returned to the OS.
 */
export function soakProblems(r: SoakReport, rssSlack = 384 << 20, heapSlack = 16 << 20): string[] {
  const p: string[] = [];
  if (r.mismatches.length) p.push(`${r.mismatches.length} checksum mismatches`);
  if (r.errors.length) p.push(`${r.errors.length} errors: ${r.errors[0]}`);
  if (r.end.fds !== r.start.fds) p.push(`descriptors ${r.start.fds} → ${r.end.fds}`);
  if (r.end.wasm !== r.start.wasm) p.push(`module memory ${r.start.wasm} → ${r.end.wasm}`);
  if (r.end.inflight !== 0) p.push(`device inflight ${r.end.inflight} at the end`);
  if (r.end.buffers !== 0) p.push(`server buffers in use ${r.end.buffers} at the end`);
  if (r.end.rss - r.start.rss > rssSlack) p.push(`RSS grew by ${mib(r.end.rss - r.start.rss)}`);
  if (r.gc && r.end.heap - r.start.heap > heapSlack) p.push(`JS heap grew by ${mib(r.end.heap - r.start.heap)} (after gc)`);
  if (r.high.inflightHighWater > 256) p.push(`inflight high water ${r.high.inflightHighWater} > 256`);
  return p;
}
