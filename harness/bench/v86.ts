/**
 * The v86 side of the race: v86's own virtio-9p device and 9P2000.L server (npm `v86`, the
 * closure-compiled release build), driven headless through its virtio-pci registers with the
 * suite's workloads. Adapted from /work/shared/tools/v86-anchor/bench-v86-9p.mjs (see
 * /work/shared/reference/v86-anchor.md): same guest-driver technique, made importable so that
 * both sides run in one process and one run, and browser-safe (the caller passes the V86
 * constructor and the wasm location).
 *
 * How a request goes: the T-message is written into v86's guest RAM (a plain Uint8Array view
 * of its wasm memory — `cpu.mem8` is a Proxy that would add ~30%), a 2-descriptor chain
 * (request + msize reply buffer, the anchor's "flat" layout) is published in the avail ring,
 * the queue is kicked with a 16-bit write to the notify port 0xA900, and the reply is taken when
 * the device raises its interrupt (VirtIO.raise_irq, wrapped); the ISR port 0xA700 is read to
 * lower it. The CPU never runs. v86's queue size is 32; workload (g) posts 8 chains per kick.
 */
import { WORKLOADS, measureRuns, type Suite, type WorkloadKey, type SideResult, type Progress } from './common.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

const KiB = 1024, MiB = 1024 * 1024;
const MSIZE = 512 * KiB;
const T = {
  lopen: 12, lcreate: 14, getattr: 24, readdir: 40, mkdir: 72, unlinkat: 76, version: 100,
  attach: 104, walk: 110, read: 116, write: 118, clunk: 120,
};
const RLERROR = 7;
const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_TRUNC = 0o1000, O_DIRECTORY = 0o200000;
const GETATTR_ALL = 0x3fff;
const NOFID = 0xffffffff;

const QSIZE = 32;
const DESC = 0x100000, AVAIL = 0x101000, USED = 0x102000;
const REQ = 0x200000;                    // slot s: REQ + s * 0x20000 (request), REPLY + s * MSIZE
const REPLY = 0x400000;
const GUEST_MEM = 64 * MiB;
const NOTIFY_PORT = 0xa900, ISR_PORT = 0xa700;
const ROOT = 0;

export interface V86Loader {
  /** the V86 constructor (libv86.mjs export) */
  V86: Any;
  /** where V86 finds v86.wasm (a file path in Node, a URL in a browser) */
  wasmPath: string;
  version?: string;
}

/** Node: load the npm package's release build. */
export async function loadV86Node(): Promise<V86Loader> {
  const { createRequire } = await import('node:module');
  const path = await import('node:path');
  const url = await import('node:url');
  const fs = await import('node:fs');
  const req = createRequire(import.meta.url);
  let pkgdir: string;
  try { pkgdir = path.dirname(req.resolve('v86/package.json')); }
  catch { throw new Error("npm package 'v86' not found (npm install --save-dev v86)"); }
  const version = JSON.parse(fs.readFileSync(path.join(pkgdir, 'package.json'), 'utf8')).version;
  const lib = url.pathToFileURL(path.join(pkgdir, 'build/libv86.mjs')).href;
  const { V86 } = await import(/* @vite-ignore */ lib);
  return { V86, wasmPath: path.join(pkgdir, 'build/v86.wasm'), version };
}

/** The guest side: plays v86's virtio-9p driver through its registers (exported for tests). */
export class Guest {
  m!: Uint8Array;
  dv!: DataView;
  tag = 1;
  availIdx = 0;
  usedSeen = 0;
  waitFor = -1;
  resolve: (() => void) | null = null;
  p = 0;
  type = 0;
  rp = 0;
  irqs = 0;
  syncDone = 0;
  requests = 0;

  constructor(private emu: Any) {
    const cpu = emu.v86.cpu;
    const dev = cpu.devices.virtio_9p;
    if (!dev || !dev.virtio) throw new Error('virtio_9p device not found in the V86 instance');
    this.refresh();
    this.m.fill(0, DESC, REQ);
    const vq = dev.virtqueue;
    vq.desc_addr = DESC; vq.avail_addr = AVAIL; vq.used_addr = USED;
    vq.set_size(QSIZE);
    vq.enabled = true;
    dev.virtio.device_status = 0xf;
    const virtio = dev.virtio;
    const orig = virtio.raise_irq;
    const self = this;
    virtio.raise_irq = function (this: Any, type: number) {
      orig.call(this, type);
      self.irqs++;
      const r = self.resolve;
      if (r && self.dv.getUint16(USED + 2, true) === self.waitFor) { self.resolve = null; r(); }
    };
  }
  refresh(): void {
    const mem8 = this.emu.v86.cpu.mem8;
    this.m = new Uint8Array(mem8.buffer, mem8.byteOffset, mem8.length);
    this.dv = new DataView(this.m.buffer, this.m.byteOffset, this.m.byteLength);
  }
  writeDesc(i: number, addr: number, len: number, flags: number, next: number): void {
    const o = DESC + i * 16, dv = this.dv;
    dv.setUint32(o, addr, true); dv.setUint32(o + 4, 0, true);
    dv.setUint32(o + 8, len, true); dv.setUint16(o + 12, flags, true); dv.setUint16(o + 14, next, true);
  }
  /** Publish the request of `slot` (already at REQ + slot*0x20000) with a msize reply buffer. */
  post(slot: number, reqlen: number): void {
    const head = (2 * slot) % QSIZE;
    this.writeDesc(head, REQ + slot * 0x20000, reqlen, 1, head + 1);
    this.writeDesc(head + 1, REPLY + slot * MSIZE, MSIZE, 2, 0);
    this.dv.setUint16(AVAIL + 4 + 2 * (this.availIdx % QSIZE), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.dv.setUint16(AVAIL + 2, this.availIdx, true);
  }
  /** Kick; resolves when `n` posted requests are in the used ring. */
  async kick(n: number): Promise<void> {
    if (this.m.byteLength === 0) this.refresh();
    const target = (this.usedSeen + n) & 0xffff;
    this.waitFor = target;
    const cpu = this.emu.v86.cpu;
    const done = new Promise<void>((r) => { this.resolve = r; });
    cpu.io.port_write16(NOTIFY_PORT, 0);
    this.requests += n;
    if (this.resolve === null) this.syncDone += n;
    else if (this.dv.getUint16(USED + 2, true) === target) { this.resolve = null; this.syncDone += n; }
    else await done;
    cpu.io.port_read8(ISR_PORT);
    this.usedSeen = target;
  }

  begin(type: number, slot = 0): void { this.p = REQ + slot * 0x20000 + 7; this.type = type; }
  u8(v: number): void { this.m[this.p++] = v; }
  u16(v: number): void { this.dv.setUint16(this.p, v, true); this.p += 2; }
  u32(v: number): void { this.dv.setUint32(this.p, v >>> 0, true); this.p += 4; }
  u64(v: number): void { this.u32(v % 4294967296); this.u32(Math.floor(v / 4294967296)); }
  str(s: string): void {
    this.u16(s.length);
    for (let i = 0; i < s.length; i++) this.m[this.p + i] = s.charCodeAt(i);
    this.p += s.length;
  }
  /** Finish the message of `slot`; returns its length (plus `extra` payload bytes). */
  end(extra = 0, slot = 0): number {
    const req = REQ + slot * 0x20000;
    const size = this.p - req + extra;
    this.tag = (this.tag + 1) & 0x7fff;
    this.dv.setUint32(req, size, true); this.m[req + 4] = this.type; this.dv.setUint16(req + 5, this.tag, true);
    return size;
  }
  checkReply(slot: number, type: number): void {
    const rep = REPLY + slot * MSIZE;
    const rtype = this.m[rep + 4];
    if (rtype !== type + 1) throw new Error(`v86: 9P type ${type} failed: reply type ${rtype}` + (rtype === RLERROR ? ` errno ${this.dv.getUint32(rep + 7, true)}` : ''));
  }
  async call(extra = 0): Promise<void> {
    const t = this.type;
    this.post(0, this.end(extra));
    await this.kick(1);
    this.checkReply(0, t);
    this.rp = REPLY + 7;
  }
  r16(): number { const v = this.dv.getUint16(this.rp, true); this.rp += 2; return v; }
  r32(): number { const v = this.dv.getUint32(this.rp, true); this.rp += 4; return v; }
  r64(): number { const lo = this.r32(), hi = this.r32(); return hi * 4294967296 + lo; }

  version(msize: number) { this.begin(T.version); this.u32(msize); this.str('9P2000.L'); return this.call(); }
  attach(fid: number) { this.begin(T.attach); this.u32(fid); this.u32(NOFID); this.str('root'); this.str(''); this.u32(0); return this.call(); }
  walk(fid: number, newfid: number, names: string[]) { this.begin(T.walk); this.u32(fid); this.u32(newfid); this.u16(names.length); for (const n of names) this.str(n); return this.call(); }
  getattr(fid: number) { this.begin(T.getattr); this.u32(fid); this.u64(GETATTR_ALL); return this.call(); }
  clunk(fid: number) { this.begin(T.clunk); this.u32(fid); return this.call(); }
  lopen(fid: number, flags: number) { this.begin(T.lopen); this.u32(fid); this.u32(flags); return this.call(); }
  lcreate(fid: number, name: string, flags: number, mode: number) { this.begin(T.lcreate); this.u32(fid); this.str(name); this.u32(flags); this.u32(mode); this.u32(0); return this.call(); }
  mkdir(dfid: number, name: string) { this.begin(T.mkdir); this.u32(dfid); this.str(name); this.u32(0o755); this.u32(0); return this.call(); }
  unlinkat(dfid: number, name: string) { this.begin(T.unlinkat); this.u32(dfid); this.str(name); this.u32(0); return this.call(); }
  async read(fid: number, off: number, count: number) { this.begin(T.read); this.u32(fid); this.u64(off); this.u32(count); await this.call(); return this.r32(); }
  readdir(fid: number, off: number, count: number) { this.begin(T.readdir); this.u32(fid); this.u64(off); this.u32(count); return this.call(); }
  /** Twrite: the payload must already be at REQ+23 */
  async write(fid: number, off: number, count: number) { this.begin(T.write); this.u32(fid); this.u64(off); this.u32(count); await this.call(count); return this.r32(); }
}

function fillPattern(g: Guest, off: number, len: number, seed: number): void {
  for (let i = 0; i < len; i++) g.m[off + i] = (i * 131 + seed) & 0xff;
}
const fname = (i: number) => 'f' + String(i).padStart(4, '0');

/** Run the suite on v86; returns one SideResult per workload key (absent = not run). */
/** A V86 instance whose CPU never runs (its devices, ports and guest RAM are real). */
export function createV86(loader: V86Loader, filesystem: Any = {}): Promise<Any> {
  return new Promise((resolve, reject) => {
    const e = new loader.V86({
      wasm_path: loader.wasmPath,
      memory_size: GUEST_MEM,
      vga_memory_size: 2 * MiB,
      autostart: false,
      filesystem,
      disable_keyboard: true, disable_mouse: true, disable_speaker: true,
    });
    e.add_listener('emulator-loaded', () => resolve(e));
    const t = setTimeout(() => reject(new Error('V86 did not load in 60 s')), 60000);
    (t as Any).unref?.();
  });
}

export async function runV86(suite: Suite, loader: V86Loader, progress: Progress): Promise<Partial<Record<WorkloadKey, SideResult>>> {
  const emu: Any = await new Promise((resolve, reject) => {
    const e = new loader.V86({
      wasm_path: loader.wasmPath,
      memory_size: GUEST_MEM,
      vga_memory_size: 2 * MiB,
      autostart: false,
      filesystem: {},
      disable_keyboard: true, disable_mouse: true, disable_speaker: true,
    });
    e.add_listener('emulator-loaded', () => resolve(e));
    const t = setTimeout(() => reject(new Error('V86 did not load in 60 s')), 60000);
    (t as Any).unref?.();
  });
  const g = new Guest(emu);
  const out: Partial<Record<WorkloadKey, SideResult>> = {};
  const s = suite.sizes;
  const lat = new Float64Array(suite.maxRequests);
  let li = 0, prev = 0;
  const mark = (k: number) => { if (k) { const t = performance.now(); lat[li++] = t - prev; prev = t; } };
  const rec = (k: number) => { if (k) prev = performance.now(); };
  let untimed = 0;

  try {
    await g.version(MSIZE); await g.attach(ROOT);
    // setup through 9P (untimed): 1,000 root files, a 64 MiB file, a 10,000-entry directory
    progress('v86', 'setup');
    let fid = 100;
    for (let i = 0; i < 1000; i++) { const f = fid++; await g.walk(ROOT, f, []); await g.lcreate(f, fname(i), O_RDWR | O_CREAT, 0o644); await g.clunk(f); }
    {
      const f = fid++;
      await g.walk(ROOT, f, []);
      await g.lcreate(f, 'big', O_RDWR | O_CREAT, 0o644);
      fillPattern(g, REQ + 23, s.chunk, 7);
      for (let off = 0; off < s.bigSize; off += s.chunk) await g.write(f, off, s.chunk);
      await g.clunk(f);
    }
    {
      await g.mkdir(ROOT, 'd10k');
      const dd = fid++;
      await g.walk(ROOT, dd, ['d10k']);
      for (let i = 0; i < s.dirEntries; i++) { const f = fid++; await g.walk(dd, f, []); await g.lcreate(f, 'entry-' + i, O_RDWR | O_CREAT, 0o644); await g.clunk(f); }
      await g.clunk(dd);
    }
    const want = (k: WorkloadKey) => suite.only.includes(k);
    const run = async (k: WorkloadKey, fn: (L: number) => Promise<number>) => {
      if (!want(k)) return;
      progress('v86', k);
      out[k] = await measureRuns(suite, WORKLOADS[k], async (L) => {
        li = 0; untimed = 0;
        const ops = await fn(L);
        return { ops, excludeMs: untimed, latencies: L ? lat.subarray(0, li) : undefined };
      });
    };

    await run('a', async (L) => {
      for (let i = 0; i < s.pairs; i++) { rec(L); await g.version(MSIZE); mark(L); await g.attach(ROOT); mark(L); }
      return s.pairs;
    });
    await run('b', async (L) => {
      const f = 50;
      for (let i = 0; i < s.walks; i++) {
        rec(L);
        await g.walk(ROOT, f, [fname(i % 1000)]); mark(L);
        await g.getattr(f); mark(L);
        await g.clunk(f); mark(L);
      }
      return s.walks;
    });
    {
      const f = 51;
      await g.walk(ROOT, f, ['big']);
      await g.lopen(f, O_RDONLY);
      await run('c', async (L) => {
        rec(L);
        for (let p = 0; p < s.readPasses; p++) {
          for (let off = 0; off < s.bigSize; off += s.chunk) {
            const n = await g.read(f, off, s.chunk); mark(L);
            if (n !== s.chunk) throw new Error(`v86: short read ${n}`);
          }
        }
        return s.readPasses * s.bigSize / s.chunk;
      });
      // (g): 8 random 4 KiB reads in flight per kick
      await run('g', async (L) => {
        const offs = randomPages(s.randomReads, s.bigSize / 4096);
        const depth = s.inflight;
        for (let i = 0; i < s.randomReads; i += depth) {
          rec(L);
          for (let k = 0; k < depth; k++) {
            g.begin(T.read, k); g.u32(f); g.u64(offs[i + k] * 4096); g.u32(4096);
            g.post(k, g.end(0, k));
          }
          await g.kick(depth);
          // every request of the batch is charged the whole batch's time (kick → last reply)
          if (L) { const t = performance.now(); for (let k = 0; k < depth; k++) lat[li++] = t - prev; }
          for (let k = 0; k < depth; k++) g.checkReply(k, T.read);
        }
        return s.randomReads;
      });
      await g.clunk(f);
    }
    let wrun = 0;
    await run('d', async (L) => {
      const f = 52, name = 'new' + (wrun++);
      fillPattern(g, REQ + 23, s.chunk, 3);
      rec(L);
      await g.walk(ROOT, f, []); mark(L);
      await g.lcreate(f, name, O_WRONLY | O_CREAT | O_TRUNC, 0o644); mark(L);
      for (let off = 0; off < s.bigSize; off += s.chunk) {
        const n = await g.write(f, off, s.chunk); mark(L);
        if (n !== s.chunk) throw new Error(`v86: short write ${n}`);
      }
      await g.clunk(f); mark(L);
      const t = performance.now();
      await g.unlinkat(ROOT, name);          // untimed: free the memory
      untimed += performance.now() - t;
      return s.bigSize / s.chunk;
    });
    {
      const f = 56;
      await g.walk(ROOT, f, ['big']);
      await g.lopen(f, O_WRONLY);
      await run('d2', async (L) => {
        fillPattern(g, REQ + 23, s.chunk, 7);
        rec(L);
        for (let off = 0; off < s.bigSize; off += s.chunk) { await g.write(f, off, s.chunk); mark(L); }
        return s.bigSize / s.chunk;
      });
      await g.clunk(f);
    }
    let crun = 0;
    await run('e', async (L) => {
      const dname = 'c' + (crun++);
      await g.mkdir(ROOT, dname);
      const d = 53, f = 54;
      await g.walk(ROOT, d, [dname]);
      fillPattern(g, REQ + 23, 4096, 1);
      rec(L);
      for (let i = 0; i < s.creates; i++) {
        await g.walk(d, f, []); mark(L);
        await g.lcreate(f, 'n' + i, O_WRONLY | O_CREAT, 0o644); mark(L);
        const n = await g.write(f, 0, 4096); mark(L);
        if (n !== 4096) throw new Error('v86: short write');
        await g.clunk(f); mark(L);
      }
      await g.clunk(d);
      return s.creates;
    });
    const list = (count: number, listings: number) => async (L: number) => {
      const f = 55;
      rec(L);
      for (let l = 0; l < listings; l++) {
        await g.walk(ROOT, f, ['d10k']); mark(L);
        await g.lopen(f, O_RDONLY | O_DIRECTORY); mark(L);
        let off = 0, n = 0;
        for (;;) {
          await g.readdir(f, off, count); mark(L);
          const len = g.r32();
          if (len === 0) break;
          const end = g.rp + len;
          while (g.rp < end) { g.rp += 13; off = g.r64(); g.rp += 1; const nl = g.r16(); g.rp += nl; n++; }
        }
        await g.clunk(f); mark(L);
        if (n !== s.dirEntries + 2) throw new Error(`v86: listing returned ${n} entries`);
      }
      return listings;
    };
    await run('f', list(MSIZE - 24, s.listings));
    await run('f8k', list(8 * KiB - 24, s.listings8kV86));
  } finally {
    try { emu.destroy?.(); } catch { /* best effort */ }
  }
  return out;
}

/** Deterministic random page indices (xorshift32), shared by both sides. */
export function randomPages(n: number, pages: number): Uint32Array {
  const a = new Uint32Array(n);
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; a[i] = x % pages; }
  return a;
}
