/**
 * Our side of the race (browser-safe): the suite's workloads through the real virtqueue path —
 * BenchRing (guest) → split ring → wasm core → backend → reply — on any backend. The tree is set
 * up through 9P itself (untimed), so a backend needs no seeding code of its own.
 *
 * A synchronous backend answers inside notify() and no workload ever awaits; an asynchronous
 * one (allowAsync) makes the ring return Promises, which the workloads await (see bench-ring.ts).
 */
import { Virtio9pDevice } from '../../src/device.js';
import type { Backend } from '../../src/backends/backend.js';
import type { WasmSource } from '../../src/wasm/core.js';
import { BenchRing } from '../virtio/bench-ring.js';
import { WORKLOADS, measureRuns, type Suite, type WorkloadKey, type SideResult, type Progress } from './common.js';
import { randomPages } from './v86.js';

const T = {
  lopen: 12, lcreate: 14, getattr: 24, readdir: 40, mkdir: 72, unlinkat: 76, version: 100,
  attach: 104, walk: 110, read: 116, write: 118, clunk: 120,
};
const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_TRUNC = 0o1000, O_DIRECTORY = 0o200000;
const NOFID = 0xffffffff;
const MSIZE = 512 * 1024;
const MiB = 1 << 20;
const enc = new TextEncoder();
const E = new Uint8Array(0);

type R = number | Promise<number>;

export interface OursOptions {
  backend: () => Backend | Promise<Backend>;
  /** the core's bytes or module (browsers); Node finds build/virtio9p.wasm */
  wasm?: WasmSource;
  /** the backend may answer asynchronously */
  allowAsync?: boolean;
  /** make a device (the SharedArrayBuffer prototype passes its own) */
  createDevice?: (backend: Backend) => Promise<Virtio9pDevice>;
}

export async function makeRing(opts: OursOptions, backend: Backend, guestMemorySize = 16 * MiB): Promise<{ device: Virtio9pDevice; g: BenchRing }> {
  const device = opts.createDevice ? await opts.createDevice(backend) : await Virtio9pDevice.create({ backend, guestMemorySize, wasm: opts.wasm });
  const g = new BenchRing(device, { dataSize: MSIZE + 4096, slots: 8, allowAsync: opts.allowAsync });
  return { device, g };
}

export async function runOurs(suite: Suite, opts: OursOptions, progress: Progress, side = 'ours'): Promise<Partial<Record<WorkloadKey, SideResult>>> {
  const backend = await opts.backend();
  const { g } = await makeRing(opts, backend);
  const s = suite.sizes;
  const out: Partial<Record<WorkloadKey, SideResult>> = {};
  const lat = new Float64Array(suite.maxRequests);
  let li = 0, prev = 0;
  const mark = (k: number) => { if (k) { const t = performance.now(); lat[li++] = t - prev; prev = t; } };
  const rec = (k: number) => { if (k) prev = performance.now(); };

  const walk = (fid: number, newfid: number, names: Uint8Array[]): R => {
    g.begin(T.walk).u32(fid).u32(newfid).u16(names.length);
    for (const n of names) g.str(n);
    return g.simple();
  };
  const clunk = (fid: number): R => g.begin(T.clunk).u32(fid).simple();
  const lopen = (fid: number, flags: number): R => g.begin(T.lopen).u32(fid).u32(flags).simple();
  const lcreate = (fid: number, name: Uint8Array, flags: number): R =>
    g.begin(T.lcreate).u32(fid).str(name).u32(flags).u32(0o644).u32(0).simple();
  const write = (fid: number, off: number, count: number): R => { g.begin(T.write).u32(fid).u64(off).u32(count); return g.write(count); };
  const read = (fid: number, off: number, count: number): R => { g.begin(T.read).u32(fid).u64(off).u32(count); return g.read(count); };
  const count = () => g.dv.getUint32(g.rep + 7, true);
  const fill = (len: number, seed: number) => { for (let i = 0; i < len; i++) g.ram[g.data + i] = (i * 131 + seed) & 0xff; };
  let r: R;
  let untimed = 0;

  // ── setup through 9P (untimed) ──
  progress(side, 'setup');
  r = g.begin(T.version).u32(MSIZE).str(enc.encode('9P2000.L')).simple(); if (typeof r === 'object') await r;
  r = g.begin(T.attach).u32(0).u32(NOFID).str(enc.encode('root')).str(E).u32(0).simple(); if (typeof r === 'object') await r;
  const names = Array.from({ length: 1000 }, (_, i) => enc.encode('f' + String(i).padStart(4, '0')));
  for (const n of names) {
    r = walk(0, 9, []); if (typeof r === 'object') await r;
    r = lcreate(9, n, O_RDWR | O_CREAT); if (typeof r === 'object') await r;
    r = clunk(9); if (typeof r === 'object') await r;
  }
  const BIG = enc.encode('big'), D10K = enc.encode('d10k');
  r = walk(0, 9, []); if (typeof r === 'object') await r;
  r = lcreate(9, BIG, O_RDWR | O_CREAT); if (typeof r === 'object') await r;
  fill(s.chunk, 7);
  for (let off = 0; off < s.bigSize; off += s.chunk) { r = write(9, off, s.chunk); if (typeof r === 'object') await r; }
  r = clunk(9); if (typeof r === 'object') await r;
  r = g.begin(T.mkdir).u32(0).str(D10K).u32(0o755).u32(0).simple(); if (typeof r === 'object') await r;
  r = walk(0, 8, [D10K]); if (typeof r === 'object') await r;
  for (let i = 0; i < s.dirEntries; i++) {
    r = walk(8, 9, []); if (typeof r === 'object') await r;
    r = lcreate(9, enc.encode('entry-' + i), O_RDWR | O_CREAT); if (typeof r === 'object') await r;
    r = clunk(9); if (typeof r === 'object') await r;
  }
  r = clunk(8); if (typeof r === 'object') await r;

  const run = async (k: WorkloadKey, fn: (L: number) => Promise<number>) => {
    if (!suite.only.includes(k)) return;
    progress(side, k);
    out[k] = await measureRuns(suite, WORKLOADS[k], async (L) => {
      li = 0; untimed = 0;
      const ops = await fn(L);
      return { ops, excludeMs: untimed, latencies: L ? lat.subarray(0, li) : undefined };
    });
  };

  await run('b', async (L) => {
    rec(L);
    for (let i = 0; i < s.walks; i++) {
      r = walk(0, 2, [names[i % 1000]]); if (typeof r === 'object') await r; mark(L);
      r = g.begin(T.getattr).u32(2).u64(0x3fff).simple(); if (typeof r === 'object') await r; mark(L);
      r = clunk(2); if (typeof r === 'object') await r; mark(L);
    }
    return s.walks;
  });

  r = walk(0, 1, [BIG]); if (typeof r === 'object') await r;
  r = lopen(1, O_RDONLY); if (typeof r === 'object') await r;
  await run('c', async (L) => {
    rec(L);
    for (let p = 0; p < s.readPasses; p++) {
      for (let off = 0; off < s.bigSize; off += s.chunk) {
        r = read(1, off, s.chunk); if (typeof r === 'object') await r; mark(L);
        if (count() !== s.chunk) throw new Error(`short read ${count()} at ${off}`);
      }
    }
    if (g.ram[g.data + 5] !== ((5 * 131 + 7) & 0xff)) throw new Error('read data mismatch');
    return s.readPasses * s.bigSize / s.chunk;
  });

  await run('g', async (L) => {
    const offs = randomPages(s.randomReads, s.bigSize / 4096);
    const depth = s.inflight;
    for (let i = 0; i < s.randomReads; i += depth) {
      rec(L);
      for (let k = 0; k < depth; k++) {
        g.begin(T.read, k).u32(1).u64(offs[i + k] * 4096).u32(4096);
        g.postRead(g.end(0, k), 4096, k);
      }
      r = g.kick(); if (typeof r === 'object') await r;
      if (L) { const t = performance.now(); for (let k = 0; k < depth; k++) lat[li++] = t - prev; }
      for (let k = 0; k < depth; k++) {
        g.check(k);
        if (g.dv.getUint32(g.reps[k] + 7, true) !== 4096) throw new Error('short random read');
      }
    }
    return s.randomReads;
  });

  let wrun = 0;
  await run('d', async (L) => {
    const name = enc.encode('new' + (wrun++));
    fill(s.chunk, 3);
    rec(L);
    r = walk(0, 6, []); if (typeof r === 'object') await r; mark(L);
    r = lcreate(6, name, O_WRONLY | O_CREAT | O_TRUNC); if (typeof r === 'object') await r; mark(L);
    for (let off = 0; off < s.bigSize; off += s.chunk) {
      r = write(6, off, s.chunk); if (typeof r === 'object') await r; mark(L);
      if (count() !== s.chunk) throw new Error('short write');
    }
    r = clunk(6); if (typeof r === 'object') await r; mark(L);
    // untimed: drop it again (the memory backend would otherwise hold every run's file)
    const t = performance.now();
    r = g.begin(T.unlinkat).u32(0).str(name).u32(0).simple(); if (typeof r === 'object') await r;
    untimed += performance.now() - t;
    return s.bigSize / s.chunk;
  });

  r = walk(0, 3, [BIG]); if (typeof r === 'object') await r;
  r = lopen(3, O_WRONLY); if (typeof r === 'object') await r;
  await run('d2', async (L) => {
    fill(s.chunk, 7);
    rec(L);
    for (let off = 0; off < s.bigSize; off += s.chunk) { r = write(3, off, s.chunk); if (typeof r === 'object') await r; mark(L); }
    return s.bigSize / s.chunk;
  });
  r = clunk(3); if (typeof r === 'object') await r;

  let crun = 0;
  const fileNames = Array.from({ length: s.creates }, (_, i) => enc.encode('n' + i));
  await run('e', async (L) => {
    const dname = enc.encode('c' + (crun++));
    r = g.begin(T.mkdir).u32(0).str(dname).u32(0o755).u32(0).simple(); if (typeof r === 'object') await r;
    r = walk(0, 4, [dname]); if (typeof r === 'object') await r;
    fill(4096, 1);
    rec(L);
    for (let i = 0; i < s.creates; i++) {
      r = walk(4, 5, []); if (typeof r === 'object') await r; mark(L);
      r = lcreate(5, fileNames[i], O_WRONLY | O_CREAT); if (typeof r === 'object') await r; mark(L);
      r = write(5, 0, 4096); if (typeof r === 'object') await r; mark(L);
      if (count() !== 4096) throw new Error('short write');
      r = clunk(5); if (typeof r === 'object') await r; mark(L);
    }
    r = clunk(4); if (typeof r === 'object') await r;
    return s.creates;
  });

  const list = (cnt: number, listings: number) => async (L: number) => {
    rec(L);
    for (let l = 0; l < listings; l++) {
      r = walk(0, 7, [D10K]); if (typeof r === 'object') await r; mark(L);
      r = lopen(7, O_RDONLY | O_DIRECTORY); if (typeof r === 'object') await r; mark(L);
      let offset = 0, seen = 0;
      for (;;) {
        g.begin(T.readdir).u32(7).u64(offset).u32(cnt);
        r = g.read(cnt); if (typeof r === 'object') await r; mark(L);
        const bytes = count();
        if (bytes === 0) break;
        const dv = g.dv;
        for (let o = 0; o < bytes;) {
          const at = g.data + o;
          offset = dv.getUint32(at + 13, true) + dv.getUint32(at + 17, true) * 4294967296;
          o += 24 + dv.getUint16(at + 22, true);
          seen++;
        }
      }
      r = clunk(7); if (typeof r === 'object') await r; mark(L);
      if (seen !== s.dirEntries + 2) throw new Error(`readdir saw ${seen} entries`);
    }
    return listings;
  };
  await run('f', list(MSIZE - 24, s.listings));
  await run('f8k', list(8192 - 24, s.listings8k));

  // (a) last: a Tversion resets the session (every fid is clunked)
  const V = enc.encode('9P2000.L'), ROOTNAME = enc.encode('root');
  await run('a', async (L) => {
    rec(L);
    for (let i = 0; i < s.pairs; i++) {
      r = g.begin(T.version).u32(MSIZE).str(V).simple(); if (typeof r === 'object') await r; mark(L);
      r = g.begin(T.attach).u32(0).u32(NOFID).str(ROOTNAME).str(E).u32(0).simple(); if (typeof r === 'object') await r; mark(L);
    }
    if (g.dv.getUint32(g.rep + 7, true) === 0) throw new Error('bad Rattach');
    return s.pairs;
  });
  return out;
}
