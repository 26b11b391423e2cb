/**
 * The physical limit of the bulk workloads (browser-safe): the same bytes moved by a wasm
 * `memory.copy` (copy.wat) and by a host copy (`Buffer.copy` in Node, `Uint8Array.set` in a
 * browser), same process, same chunk sizes and access pattern:
 *   read   — 64 MiB source walked in 128 KiB chunks into one 128 KiB destination (c)
 *   write  — one 128 KiB source into a 64 MiB destination walked in 128 KiB chunks (d)
 *   random — 4 KiB pages at the suite's random offsets into 8 rotating 4 KiB buffers (g)
 * Reported per workload as MiB/s; the limit is the faster of the two.
 */
import { WORKLOADS, median, now, type CopyLimit, type Suite, type WorkloadKey } from './common.js';
import { randomPages } from './v86.js';

const MiB = 1 << 20;
const PAGE = 65536;

interface CopyExports { seq: (...a: number[]) => void; gather: (...a: number[]) => void }

/** copy.wat's text for a shared memory (the SharedArrayBuffer run) */
export function sharedWat(wat: string): string {
  return wat.replace('(memory 1)', '(memory 1 65536 shared)');
}

export async function measureCopyLimits(suite: Suite, copyWasm: BufferSource, opts: { shared?: boolean } = {}): Promise<Partial<Record<WorkloadKey, CopyLimit>>> {
  const s = suite.sizes;
  const big = s.bigSize, chunk = s.chunk;
  // layout: [0, big) the big region, then a chunk-sized buffer, then 8 pages, then the offset list
  const small = big, pages = small + chunk, list = pages + 8 * 4096;
  const bytes = list + 4 * s.randomReads;
  const n = Math.ceil(bytes / PAGE);
  const memory = new WebAssembly.Memory(opts.shared ? { initial: n, maximum: Math.max(n, 65536) / 1, shared: true } as WebAssembly.MemoryDescriptor : { initial: n });
  const { instance } = await WebAssembly.instantiate(copyWasm, { env: { memory } }) as unknown as { instance: WebAssembly.Instance };
  const ex = instance.exports as unknown as CopyExports;
  const u8 = new Uint8Array(memory.buffer);
  for (let i = 0; i < big; i += 4096) u8[i] = i & 0xff;     // touch every page
  const offs = randomPages(s.randomReads, big / 4096);
  const listView = new Uint32Array(memory.buffer, list, s.randomReads);
  for (let i = 0; i < offs.length; i++) listView[i] = offs[i] * 4096;

  const B = (globalThis as { Buffer?: { from(a: ArrayBufferLike, o: number, l: number): { copy(t: unknown, ts: number, ss: number, se: number): number } } }).Buffer;
  const hostKind = B ? 'Buffer.copy' : 'Uint8Array.set';
  const buf = B ? B.from(memory.buffer, 0, bytes) : null;
  const hostCopy = (dst: number, src: number, len: number) => {
    if (buf) buf.copy(buf, dst, src, src + len);
    else u8.copyWithin(dst, src, src + len);
  };
  // u8.set(u8.subarray(..)) on the same buffer is a memmove too; copyWithin is the direct form

  const chunks = big / chunk;
  const passes: Record<'read' | 'write' | 'random', { bytes: number; wasm: () => void; host: () => void }> = {
    read: {
      bytes: s.readPasses * big,
      wasm: () => ex.seq(small, 0, 0, chunk, chunk, s.readPasses * chunks, big),
      host: () => { for (let p = 0; p < s.readPasses; p++) for (let o = 0; o < big; o += chunk) hostCopy(small, o, chunk); },
    },
    write: {
      bytes: big,
      wasm: () => ex.seq(0, chunk, small, 0, chunk, chunks, big),
      host: () => { for (let o = 0; o < big; o += chunk) hostCopy(o, small, chunk); },
    },
    random: {
      bytes: s.randomReads * 4096,
      wasm: () => ex.gather(pages, 0, list, 4096, s.randomReads),
      host: () => { for (let i = 0; i < offs.length; i++) hostCopy(pages + (i & 7) * 4096, offs[i] * 4096, 4096); },
    },
  };
  const rate = (p: { bytes: number }, fn: () => void): number => {
    for (let i = 0; i < suite.warmup; i++) fn();
    const r: number[] = [];
    for (let i = 0; i < Math.max(3, suite.runs); i++) { const t = now(); fn(); r.push(p.bytes / MiB / ((now() - t) / 1000)); }
    return median(r);
  };
  const cache = new Map<string, CopyLimit>();
  const out: Partial<Record<WorkloadKey, CopyLimit>> = {};
  for (const k of suite.only) {
    const kind = WORKLOADS[k].copy;
    if (!kind) continue;
    let c = cache.get(kind);
    if (!c) {
      const p = passes[kind];
      const wasmMiBps = rate(p, p.wasm), hostMiBps = rate(p, p.host);
      c = { wasmMiBps, hostMiBps, hostKind, limitMiBps: Math.max(wasmMiBps, hostMiBps) };
      cache.set(kind, c);
    }
    out[k] = c;
  }
  return out;
}
