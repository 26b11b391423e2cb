/**
 * What both sides of the race share (browser-safe): the workload table, sizes, the
 * warm-up/runs/median/percentile measurement, and the result shapes.
 */

export type WorkloadKey = 'a' | 'b' | 'c' | 'd' | 'd2' | 'e' | 'f' | 'f8k' | 'g';
export const KEYS: WorkloadKey[] = ['a', 'b', 'c', 'd', 'd2', 'e', 'f', 'f8k', 'g'];

export interface Workload {
  key: WorkloadKey;
  title: string;
  /** what one op is */
  unit: string;
  /** payload bytes per op, for MiB/s */
  bytesPerOp?: (s: Sizes) => number;
  /** the copy limit applies: how the bytes move (see copylimit.ts) */
  copy?: 'read' | 'write' | 'random';
  /** target relative to v86 (ours/v86 at least this) or to the copy limit */
  target?: { v86?: number; limit?: number };
}

const KiB = 1024, MiB = 1024 * 1024;

export const WORKLOADS: Record<WorkloadKey, Workload> = {
  a: { key: 'a', title: '(a) Tversion msize 512 KiB + Tattach', unit: 'pairs/s' },
  b: { key: 'b', title: '(b) walk 1 name + getattr + clunk, 1,000-file dir', unit: 'triples/s', target: { v86: 5 } },
  c: { key: 'c', title: '(c) read 64 MiB file in 128 KiB requests, 4 passes', unit: 'req/s', bytesPerOp: (s) => s.chunk, copy: 'read', target: { limit: 0.8 } },
  d: { key: 'd', title: '(d) write a new 64 MiB file in 128 KiB requests', unit: 'req/s', bytesPerOp: (s) => s.chunk, copy: 'write', target: { v86: 10 } },
  d2: { key: 'd2', title: '(d) overwrite the 64 MiB file in 128 KiB requests', unit: 'req/s', bytesPerOp: (s) => s.chunk, copy: 'write', target: { limit: 0.8 } },
  e: { key: 'e', title: '(e) create + write 4 KiB + clunk', unit: 'files/s', bytesPerOp: () => 4 * KiB, target: { v86: 5 } },
  f: { key: 'f', title: '(f) readdir 10,000 entries, 512 KiB count', unit: 'listings/s', target: { v86: 5 } },
  f8k: { key: 'f8k', title: '(f) readdir 10,000 entries, 8 KiB count', unit: 'listings/s', target: { v86: 50 } },
  g: { key: 'g', title: '(g) 4 KiB random reads, 8 in flight', unit: 'reads/s', bytesPerOp: () => 4 * KiB, copy: 'random' },
};

export interface Sizes {
  pairs: number; walks: number; bigSize: number; chunk: number; readPasses: number;
  creates: number; dirEntries: number; listings: number; listings8k: number; listings8kV86: number;
  randomReads: number; inflight: number;
}

export const FULL: Sizes = {
  pairs: 2000, walks: 100000, bigSize: 64 * MiB, chunk: 128 * KiB, readPasses: 4,
  creates: 10000, dirEntries: 10000, listings: 20, listings8k: 20, listings8kV86: 5,
  randomReads: 65536, inflight: 8,
};
/** --quick: a tenth of the work (the directory and file sizes shrink too). */
export const QUICK: Sizes = {
  pairs: 200, walks: 10000, bigSize: 16 * MiB, chunk: 128 * KiB, readPasses: 2,
  creates: 1000, dirEntries: 2000, listings: 4, listings8k: 4, listings8kV86: 2,
  randomReads: 8192, inflight: 8,
};
/** for tests: seconds, not minutes */
export const TINY: Sizes = {
  pairs: 50, walks: 1000, bigSize: 2 * MiB, chunk: 128 * KiB, readPasses: 1,
  creates: 200, dirEntries: 500, listings: 2, listings8k: 2, listings8kV86: 1,
  randomReads: 1024, inflight: 8,
};

export interface Suite {
  sizes: Sizes;
  warmup: number;
  runs: number;
  only: WorkloadKey[];
  /** largest latency sample buffer a run needs */
  maxRequests: number;
}

export function makeSuite(sizes: Sizes, opts: { warmup?: number; runs?: number; only?: WorkloadKey[] } = {}): Suite {
  const s = sizes;
  const perListing8k = Math.ceil(s.dirEntries * 40 / (8 * KiB)) + 5;
  const maxRequests = Math.max(2 * s.pairs, 3 * s.walks, s.readPasses * s.bigSize / s.chunk + 4, s.bigSize / s.chunk + 4,
    4 * s.creates, s.randomReads, s.listings8k * perListing8k, s.listings * 8) + 64;
  return { sizes: s, warmup: opts.warmup ?? 1, runs: opts.runs ?? 3, only: opts.only ?? KEYS, maxRequests };
}

/** One side's figures for one workload. */
export interface SideResult {
  /** median over the runs */
  opsPerSec: number;
  mibPerSec?: number;
  /** per-request latency (one extra run that timestamps every 9P request), microseconds */
  p50Us: number;
  p99Us: number;
  /** ops/s of each measured run */
  runs: number[];
}

export interface CopyLimit { wasmMiBps: number; hostMiBps: number; hostKind: string; limitMiBps: number }

export interface Row {
  key: WorkloadKey;
  name: string;
  unit: string;
  ours?: SideResult;
  v86?: SideResult;
  limit?: CopyLimit;
  /** ours/v86 (ops/s) */
  usOverV86?: number;
  /** ours/limit (MiB/s) */
  usOverLimit?: number;
  target?: string;
  met?: boolean;
}

export type Progress = (side: string, what: string) => void;

export const now = (): number => performance.now();

export function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** A run's outcome: ops done, untimed clean-up inside it, per-request latencies (ms). */
export interface RunOut { ops: number; excludeMs?: number; latencies?: Float64Array }

/**
 * `fn(0)` does one timed run and returns the ops it did; `fn(1)` does the same run but records
 * every request's latency (ms) and returns them. Warm-up runs first, then `runs` timed ones,
 * then one latency run.
 */
export async function measureRuns(
  suite: Suite, w: Workload,
  fn: (latency: number) => Promise<RunOut> | RunOut,
): Promise<SideResult> {
  for (let i = 0; i < suite.warmup; i++) await fn(0);
  const rates: number[] = [];
  for (let i = 0; i < suite.runs; i++) {
    const t = now();
    const { ops, excludeMs } = await fn(0);
    const dt = (now() - t - (excludeMs ?? 0)) / 1000;
    rates.push(ops / dt);
  }
  const { latencies } = await fn(1);
  const lat = Float64Array.from(latencies ?? []).sort();
  const opsPerSec = median(rates);
  const r: SideResult = { opsPerSec, p50Us: percentile(lat, 0.5) * 1000, p99Us: percentile(lat, 0.99) * 1000, runs: rates };
  if (w.bytesPerOp) r.mibPerSec = opsPerSec * w.bytesPerOp(suite.sizes) / MiB;
  return r;
}

/** Build the rows with ratios and target checks. */
export function makeRows(suite: Suite, ours: Partial<Record<WorkloadKey, SideResult>>, v86: Partial<Record<WorkloadKey, SideResult>>,
  limits: Partial<Record<WorkloadKey, CopyLimit>>): Row[] {
  const rows: Row[] = [];
  for (const k of suite.only) {
    const w = WORKLOADS[k];
    const row: Row = { key: k, name: w.title, unit: w.unit, ours: ours[k], v86: v86[k], limit: limits[k] };
    if (row.ours && row.v86) row.usOverV86 = row.ours.opsPerSec / row.v86.opsPerSec;
    if (row.ours?.mibPerSec !== undefined && row.limit) row.usOverLimit = row.ours.mibPerSec / row.limit.limitMiBps;
    if (w.target?.v86 !== undefined) {
      row.target = `≥${w.target.v86}× v86`;
      if (row.usOverV86 !== undefined) row.met = row.usOverV86 >= w.target.v86;
    } else if (w.target?.limit !== undefined) {
      row.target = `≥${Math.round(w.target.limit * 100)}% of copy`;
      if (row.usOverLimit !== undefined) row.met = row.usOverLimit >= w.target.limit;
    }
    rows.push(row);
  }
  return rows;
}

const num = (x: number | undefined, d = 0): string =>
  x === undefined || !Number.isFinite(x) ? '' : x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const sig = (x: number): number => (x >= 100 ? 0 : x >= 10 ? 1 : 2);

export function formatRows(rows: Row[]): string {
  const head = ['workload', 'ours ops/s', 'MiB/s', 'p50 µs', 'p99 µs', 'v86 ops/s', 'MiB/s', 'p50 µs', 'copy MiB/s', 'us/v86', 'us/copy', 'target'];
  const body = rows.map((r) => [
    r.name,
    num(r.ours?.opsPerSec), num(r.ours?.mibPerSec), num(r.ours?.p50Us, 2), num(r.ours?.p99Us, 2),
    num(r.v86?.opsPerSec), num(r.v86?.mibPerSec), num(r.v86?.p50Us, 1),
    num(r.limit?.limitMiBps),
    r.usOverV86 === undefined ? '' : `${num(r.usOverV86, sig(r.usOverV86))}×`,
    r.usOverLimit === undefined ? '' : `${Math.round(r.usOverLimit * 100)}%`,
    r.target === undefined ? '' : `${r.target}${r.met === undefined ? '' : r.met ? ' met' : ' below'}`,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 || i === c.length - 1 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ').trimEnd();
  return [line(head), ...body.map(line)].join('\n');
}
