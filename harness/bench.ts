/**
 * `virtio9p bench`: fixed workloads through the real virtqueue path (guest driver → ring →
 * core → backend → reply) on the in-memory backend. Prints ops/s and MB/s; --json for
 * machines. Speed is measured here, never asserted in tests.
 */
import { createMachine, type Machine } from './machine.js';
import { MemoryBackend } from '../src/backends/memory.js';
import { P9_NOFID } from './p9/codec.js';

export interface BenchResult { name: string; ops: number; seconds: number; opsPerSec: number; mbPerSec?: number }
export interface BenchOptions { quick?: boolean; log?: (s: string) => void }

const O_RDONLY = 0, O_RDWR = 2, O_CREAT = 0o100, O_DIRECTORY = 0o200000;
const MiB = 1 << 20;

async function mount(m: Machine): Promise<void> {
  await m.client.version(512000 + 24);
  await m.client.attach(0, P9_NOFID, 'root', '', 0);
}

function result(name: string, ops: number, seconds: number, bytes?: number): BenchResult {
  const r: BenchResult = { name, ops, seconds, opsPerSec: ops / seconds };
  if (bytes !== undefined) r.mbPerSec = bytes / MiB / seconds;
  return r;
}

export async function runBench(opts: BenchOptions = {}): Promise<BenchResult[]> {
  const log = opts.log ?? (() => {});
  const q = opts.quick ? 10 : 1;
  const results: BenchResult[] = [];
  const enc = new TextEncoder();

  // (b) walk one name + getattr + clunk on a directory of 1,000 files
  {
    const backend = new MemoryBackend();
    for (let i = 0; i < 1000; i++) backend.writeFile(`dir/f${i}`, '');
    const m = await createMachine({ backend });
    await mount(m);
    await m.client.walk(0, 1, ['dir']);
    const names = Array.from({ length: 1000 }, (_, i) => enc.encode(`f${i}`));
    const n = 100000 / q;
    log(`walk+getattr+clunk × ${n} …`);
    const t = performance.now();
    for (let i = 0; i < n; i++) {
      await m.client.walk(1, 2, [names[i % 1000]]);
      await m.client.getattr(2);
      await m.client.clunk(2);
    }
    results.push(result('walk+getattr+clunk (1,000-file dir)', n, (performance.now() - t) / 1000));
  }

  // (c)/(d) 64 MiB read and write in 128 KiB requests
  {
    const size = 64 * MiB / q, chunk = 128 * 1024;
    const backend = new MemoryBackend();
    backend.writeFile('big', new Uint8Array(size).fill(7));
    const m = await createMachine({ backend, guestMemorySize: 32 * MiB });
    await mount(m);
    await m.client.walk(0, 1, ['big']);
    await m.client.lopen(1, O_RDWR);
    log(`read ${size / MiB} MiB …`);
    let t = performance.now();
    for (let off = 0; off < size; off += chunk) await m.client.read(1, off, chunk);
    results.push(result('read 64 MiB in 128 KiB requests', size / chunk, (performance.now() - t) / 1000, size));
    const data = new Uint8Array(chunk).fill(9);
    log(`overwrite ${size / MiB} MiB …`);
    t = performance.now();
    for (let off = 0; off < size; off += chunk) await m.client.write(1, off, data);
    results.push(result('overwrite 64 MiB in 128 KiB requests', size / chunk, (performance.now() - t) / 1000, size));
    await m.client.walk(0, 2, []);
    await m.client.lcreate(2, 'new', O_RDWR | O_CREAT, 0o644);
    log(`write a new ${size / MiB} MiB file …`);
    t = performance.now();
    for (let off = 0; off < size; off += chunk) await m.client.write(2, off, data);
    results.push(result('write new 64 MiB file in 128 KiB requests', size / chunk, (performance.now() - t) / 1000, size));
  }

  // (e) create + write 4 KiB + clunk
  {
    const m = await createMachine({ backend: new MemoryBackend() });
    await mount(m);
    await m.client.walk(0, 1, []);
    const data = new Uint8Array(4096).fill(1);
    const n = 10000 / q;
    log(`create+write+clunk × ${n} …`);
    const t = performance.now();
    for (let i = 0; i < n; i++) {
      await m.client.walk(0, 2, []);
      await m.client.lcreate(2, `file${i}`, O_RDWR | O_CREAT, 0o644);
      await m.client.write(2, 0, data);
      await m.client.clunk(2);
    }
    results.push(result('create+write 4 KiB+clunk', n, (performance.now() - t) / 1000, n * 4096));
  }

  // (f) readdir of a 10,000-entry directory, whole listing
  {
    const backend = new MemoryBackend();
    for (let i = 0; i < 10000; i++) backend.writeFile(`big/entry-${String(i).padStart(5, '0')}`, '');
    const m = await createMachine({ backend });
    await mount(m);
    const passes = opts.quick ? 2 : 20;
    for (const count of [512 * 1024 - 24, 8192]) {
      log(`readdir 10,000 entries at count ${count} × ${passes} …`);
      const t = performance.now();
      for (let p = 0; p < passes; p++) {
        await m.client.walk(0, 1, ['big']);
        await m.client.lopen(1, O_RDONLY | O_DIRECTORY);
        const list = await m.client.readdirAll(1, count);
        if (list.length !== 10002) throw new Error(`readdir saw ${list.length} entries`);
        await m.client.clunk(1);
      }
      results.push(result(`readdir 10,000 entries (count ${count >= 8192 * 2 ? '512 KiB' : '8 KiB'})`, passes, (performance.now() - t) / 1000));
    }
  }
  return results;
}

export function formatResults(results: BenchResult[]): string {
  const rows = results.map((r) => [
    r.name,
    Math.round(r.opsPerSec).toLocaleString('en-US'),
    r.mbPerSec === undefined ? '' : r.mbPerSec.toFixed(0),
  ]);
  const w = [Math.max(8, ...rows.map((r) => r[0].length)), 12, 8];
  const line = (c: string[]) => `${c[0].padEnd(w[0])}  ${c[1].padStart(w[1])}  ${c[2].padStart(w[2])}`;
  return [line(['workload', 'ops/s', 'MiB/s']), ...rows.map(line)].join('\n');
}
