/**
 * `virtio9p bench`: fixed workloads through the real virtqueue path (guest ring → core →
 * backend → reply) on the in-memory backend, driven by the lean synchronous guest in
 * virtio/bench-ring.ts. Each workload runs after a warm-up and reports the median of several
 * runs. Speed is measured here, never asserted in tests.
 */
import { Virtio9pDevice } from '../src/device.js';
import { MemoryBackend } from '../src/backends/memory.js';
import { BenchRing } from './virtio/bench-ring.js';

export interface BenchResult { name: string; ops: number; seconds: number; opsPerSec: number; mbPerSec?: number }
export interface BenchOptions { quick?: boolean; runs?: number; log?: (s: string) => void }

const T = { version: 100, attach: 104, walk: 110, getattr: 24, clunk: 120, lopen: 12, lcreate: 14, read: 116, write: 118, readdir: 40 };
const NOFID = 0xffffffff;
const O_RDONLY = 0, O_RDWR = 2, O_CREAT = 0o100, O_DIRECTORY = 0o200000;
const MiB = 1 << 20;
const enc = new TextEncoder();

async function machine(backend: MemoryBackend, guest = 8 * MiB): Promise<BenchRing> {
  const device = await Virtio9pDevice.create({ backend, guestMemorySize: guest });
  const g = new BenchRing(device, { dataSize: 2 * MiB });
  g.begin(T.version).u32(1 << 20).str(enc.encode('9P2000.L')).simple();
  g.begin(T.attach).u32(0).u32(NOFID).str(enc.encode('root')).str(new Uint8Array(0)).u32(0).simple();
  return g;
}

function walk(g: BenchRing, fid: number, newfid: number, names: Uint8Array[]): void {
  g.begin(T.walk).u32(fid).u32(newfid).u16(names.length);
  for (const n of names) g.str(n);
  g.simple();
}

/** Run `fn` (which does `ops` operations) warm-up + runs times; the median run's rate. */
function measure(name: string, runs: number, ops: number, bytes: number | undefined, fn: () => void): BenchResult {
  fn();
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    fn();
    times.push((performance.now() - t) / 1000);
  }
  times.sort((a, b) => a - b);
  const seconds = times[Math.floor(times.length / 2)];
  const res: BenchResult = { name, ops, seconds, opsPerSec: ops / seconds };
  if (bytes !== undefined) res.mbPerSec = bytes / MiB / seconds;
  return res;
}

export async function runBench(opts: BenchOptions = {}): Promise<BenchResult[]> {
  const log = opts.log ?? (() => {});
  const q = opts.quick ? 10 : 1;
  const runs = opts.runs ?? (opts.quick ? 1 : 3);
  const results: BenchResult[] = [];

  {
    const backend = new MemoryBackend();
    for (let i = 0; i < 1000; i++) backend.writeFile(`dir/f${i}`, '');
    const g = await machine(backend);
    walk(g, 0, 1, [enc.encode('dir')]);
    const names = Array.from({ length: 1000 }, (_, i) => enc.encode(`f${i}`));
    const n = 100000 / q;
    log(`walk+getattr+clunk × ${n}`);
    results.push(measure('walk+getattr+clunk triples, 1,000-file dir', runs, n, undefined, () => {
      for (let i = 0; i < n; i++) {
        walk(g, 1, 2, [names[i % 1000]]);
        g.begin(T.getattr).u32(2).u64(0x7ff).simple();
        g.begin(T.clunk).u32(2).simple();
      }
    }));
  }

  {
    const size = 64 * MiB / q, chunk = 128 * 1024;
    const backend = new MemoryBackend();
    backend.writeFile('big', new Uint8Array(size).fill(7));
    const g = await machine(backend);
    walk(g, 0, 1, [enc.encode('big')]);
    g.begin(T.lopen).u32(1).u32(O_RDWR).simple();
    log(`read ${size / MiB} MiB in 128 KiB`);
    results.push(measure('read 64 MiB, 128 KiB requests', runs, size / chunk, size, () => {
      for (let off = 0; off < size; off += chunk) {
        const len = g.begin(T.read).u32(1).u64(off).u32(chunk).end();
        g.call([g.req, len], [g.rep, 11, g.data, chunk]);
        g.check();
      }
    }));
    log(`overwrite ${size / MiB} MiB in 128 KiB`);
    results.push(measure('overwrite 64 MiB, 128 KiB requests', runs, size / chunk, size, () => {
      for (let off = 0; off < size; off += chunk) {
        const len = g.begin(T.write).u32(1).u64(off).u32(chunk).end(chunk);
        g.call([g.req, len, g.data, chunk], [g.rep, 4096]);
        g.check();
      }
    }));
    let file = 0;
    log(`write new ${size / MiB} MiB files in 128 KiB`);
    results.push(measure('write new 64 MiB file, 128 KiB requests', runs, size / chunk, size, () => {
      walk(g, 0, 2, []);
      g.begin(T.lcreate).u32(2).str(enc.encode(`new${file++}`)).u32(O_RDWR | O_CREAT).u32(0o644).u32(0).simple();
      for (let off = 0; off < size; off += chunk) {
        const len = g.begin(T.write).u32(2).u64(off).u32(chunk).end(chunk);
        g.call([g.req, len, g.data, chunk], [g.rep, 4096]);
        g.check();
      }
      g.begin(T.clunk).u32(2).simple();
    }));
  }

  {
    const g = await machine(new MemoryBackend());
    const n = 10000 / q;
    let round = 0;
    log(`create+write 4 KiB+clunk × ${n}`);
    results.push(measure('create+write 4 KiB+clunk', runs, n, n * 4096, () => {
      // a fresh directory per round (Tmkdir = 72)
      g.begin(72).u32(0).str(enc.encode(`d${round}`)).u32(0o755).u32(0).simple();
      walk(g, 0, 1, [enc.encode(`d${round++}`)]);
      for (let i = 0; i < n; i++) {
        walk(g, 1, 2, []);
        g.begin(T.lcreate).u32(2).str(enc.encode(`file${i}`)).u32(O_RDWR | O_CREAT).u32(0o644).u32(0).simple();
        const len = g.begin(T.write).u32(2).u64(0).u32(4096).end(4096);
        g.call([g.req, len, g.data, 4096], [g.rep, 4096]);
        g.check();
        g.begin(T.clunk).u32(2).simple();
      }
      g.begin(T.clunk).u32(1).simple();
    }));
  }

  {
    const backend = new MemoryBackend();
    for (let i = 0; i < 10000; i++) backend.writeFile(`big/entry-${String(i).padStart(5, '0')}`, '');
    const g = await machine(backend);
    const passes = opts.quick ? 2 : 20;
    for (const [label, count] of [['512 KiB', 512 * 1024 - 24], ['8 KiB', 8192 - 24]] as const) {
      log(`readdir 10,000 entries, count ${label}, × ${passes}`);
      results.push(measure(`readdir 10,000 entries, ${label} count`, runs, passes, undefined, () => {
        for (let p = 0; p < passes; p++) {
          walk(g, 0, 1, [enc.encode('big')]);
          g.begin(T.lopen).u32(1).u32(O_RDONLY | O_DIRECTORY).simple();
          let offset = 0, seen = 0;
          while (true) {
            const len = g.begin(T.readdir).u32(1).u64(offset).u32(count).end();
            g.call([g.req, len], [g.rep, 11, g.data, count]);
            g.check();
            const bytes = g.dv.getUint32(g.rep + 7, true);
            if (bytes === 0) break;
            for (let o = 0; o < bytes;) {
              const at = g.data + o;
              offset = g.dv.getUint32(at + 13, true) + g.dv.getUint32(at + 17, true) * 4294967296;
              o += 24 + g.dv.getUint16(at + 22, true);
              seen++;
            }
          }
          if (seen !== 10002) throw new Error(`readdir saw ${seen} entries`);
          g.begin(T.clunk).u32(1).simple();
        }
      }));
    }
  }
  return results;
}

export function formatResults(results: BenchResult[]): string {
  const rows = results.map((r) => [
    r.name,
    Math.round(r.opsPerSec).toLocaleString('en-US'),
    r.mbPerSec === undefined ? '' : Math.round(r.mbPerSec).toLocaleString('en-US'),
  ]);
  const w = [Math.max(8, ...rows.map((r) => r[0].length)), 12, 8];
  const line = (c: string[]) => `${c[0].padEnd(w[0])}  ${c[1].padStart(w[1])}  ${c[2].padStart(w[2])}`;
  return [line(['workload', 'ops/s', 'MiB/s']), ...rows.map(line)].join('\n');
}
