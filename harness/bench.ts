/**
 * `npm run bench`: the workload suite, in one process and one run —
 *   ours:  workloads (a)–(g) through the real virtqueue path (BenchRing → ring → wasm core →
 *          backend → reply) on the chosen backend (bench/ours.ts);
 *   v86:   the same workloads on v86's own virtio-9p device and 9P server (npm `v86`, release
 *          build, driven through its virtio-pci ports; bench/v86.ts);
 *   limit: wasm `memory.copy` and `Buffer.copy` of the same bytes (bench/copylimit.ts);
 * each the median of several runs after a warm-up, with p50/p99 per-request latency, and the
 * ratios us/v86 and us/limit. Speed is measured here, never asserted in tests.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import url from 'node:url';
import type { Backend } from '../src/backends/backend.js';
import { MemoryBackend } from '../src/backends/memory.js';
import { Virtio9pDevice } from '../src/device.js';
import { FULL, QUICK, TINY, KEYS, makeSuite, makeRows, formatRows, type Row, type WorkloadKey, type Progress, type Sizes } from './bench/common.js';
import { runOurs } from './bench/ours.js';
import { runV86, loadV86Node } from './bench/v86.js';
import { measureCopyLimits } from './bench/copylimit.js';

/** Backends the suite runs on. An asynchronous one sets `async` (the ring then awaits replies). */
export interface BenchBackend { async: boolean; make(): Promise<{ backend: Backend; cleanup(): void }> }
export const BENCH_BACKENDS: Record<string, BenchBackend> = {
  memory: { async: false, make: async () => ({ backend: new MemoryBackend(), cleanup() {} }) },
  local: {
    async: false,
    make: async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtio9p-bench-'));
      const { LocalBackend } = await import('../src/backends/local.js');
      const backend = new LocalBackend({ root: dir });
      return { backend, cleanup() { backend.destroy(); fs.rmSync(dir, { recursive: true, force: true }); } };
    },
  },
  proxy: {
    async: true,
    make: async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtio9p-bench-'));
      const { ProxyBackend } = await import('../src/backends/proxy/backend.js');
      const { ownHelper } = await import('../src/backends/make.js');
      const backend = await ProxyBackend.launch({ export: dir, helper: process.env.VIRTIO9P_BENCH_HELPER ?? await ownHelper() });
      return { backend, cleanup() { void backend.destroy(); fs.rmSync(dir, { recursive: true, force: true }); } };
    },
  },
  // OverlayBackend over an empty MemoryBackend, its upper layer in a temp directory
  overlay: {
    async: true,
    make: async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtio9p-bench-'));
      const { OverlayBackend } = await import('../src/backends/overlay.js');
      const { NodeDirStore } = await import('../src/backends/upper-dir-store.js');
      const store = new NodeDirStore(dir);
      const backend = await OverlayBackend.open({ lower: new MemoryBackend(), store });
      return { backend, cleanup() { store.close(); fs.rmSync(dir, { recursive: true, force: true }); } };
    },
  },
};

export interface BenchOptions {
  quick?: boolean;
  /** test-sized run */
  tiny?: boolean;
  runs?: number;
  warmup?: number;
  backend?: string;
  only?: WorkloadKey[];
  /** skip the v86 side */
  noV86?: boolean;
  /** our device in copy mode: guest RAM in a plain ArrayBuffer the device cannot map */
  copyMode?: boolean;
  log?: (s: string) => void;
}

export interface BenchReport {
  info: { node: string; host: string; backend: string; sizes: Sizes; runs: number; warmup: number; v86?: string; date: string };
  rows: Row[];
}

export function sizesFor(o: { quick?: boolean; tiny?: boolean }): Sizes { return o.tiny ? TINY : o.quick ? QUICK : FULL; }

/** copy.wat compiled with wabt (also what the browser bench serves as /copy.wasm). */
export async function compileCopyWat(shared = false): Promise<Uint8Array<ArrayBuffer>> {
  const wabtName = 'wabt';
  const wabt = (await import(/* non-literal: stays external in the CLI bundle */ wabtName)).default;
  const w = await wabt();
  let text = fs.readFileSync(findHarnessFile('bench/copy.wat'), 'utf8');
  if (shared) text = text.replace('(memory 1)', '(memory 1 65536 shared)');
  const m = w.parseWat('copy.wat', text, { bulk_memory: true, threads: shared });
  m.validate();
  const bin = m.toBinary({}).buffer as Uint8Array;
  m.destroy();
  return new Uint8Array(bin);
}

/** A file under harness/ from the sources (tsx/jest) or from dist/ (the CLI bundle). */
export function findHarnessFile(rel: string): string {
  let dir = path.dirname(url.fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    for (const p of [path.join(dir, rel), path.join(dir, 'harness', rel)]) if (fs.existsSync(p)) return p;
    dir = path.dirname(dir);
  }
  throw new Error(`bench: cannot find harness/${rel}`);
}

export async function runBench(opts: BenchOptions = {}): Promise<BenchReport> {
  const log = opts.log ?? (() => {});
  const kind = opts.backend ?? 'memory';
  const bb = BENCH_BACKENDS[kind];
  if (!bb) throw new Error(`bench: unknown backend '${kind}' (want ${Object.keys(BENCH_BACKENDS).join(', ')})`);
  const suite = makeSuite(sizesFor(opts), { runs: opts.runs ?? 3, warmup: opts.warmup, only: opts.only ?? KEYS });
  const t0 = performance.now();
  const progress: Progress = (side, what) => log(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${side}: ${what === 'setup' ? 'setting up the tree' : `workload ${what}`}`);

  progress('copy limit', 'memory.copy / Buffer.copy');
  const limits = await measureCopyLimits(suite, await compileCopyWat());

  const made = await bb.make();
  let ours;
  const createDevice = opts.copyMode
    ? (backend: Backend) => Virtio9pDevice.create({ backend, guestMemorySize: 16 << 20, guestRam: new Uint8Array(new ArrayBuffer(16 << 20)) })
    : undefined;
  try { ours = await runOurs(suite, { backend: () => made.backend, allowAsync: bb.async, createDevice }, progress, `ours (${kind}${opts.copyMode ? ', copy mode' : ''})`); }
  finally { made.cleanup(); }

  let v86 = {};
  let v86version: string | undefined;
  if (!opts.noV86) {
    const loader = await loadV86Node();
    v86version = loader.version;
    v86 = await runV86(suite, loader, progress);
  }
  log(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] done`);
  const cpus = os.cpus();
  return {
    info: {
      node: `node ${process.version}`, host: `${os.type()} ${os.release()} ${os.arch()}, ${cpus.length} × ${cpus[0]?.model ?? '?'}`,
      backend: opts.copyMode ? `${kind}, copy mode` : kind, sizes: suite.sizes, runs: suite.runs, warmup: suite.warmup, v86: v86version, date: new Date().toISOString(),
    },
    rows: makeRows(suite, ours, v86, limits),
  };
}

export function formatHeader(report: BenchReport): string {
  const i = report.info;
  return `# bench — backend ${i.backend}; v86 ${i.v86 ?? '(skipped)'}; ${i.node}; ${i.host}\n` +
    `# median of ${i.runs} runs after ${i.warmup} warm-up; p50/p99 per 9P request from one more run; copy = max(wasm memory.copy, host copy)`;
}

export function formatResults(report: BenchReport): string {
  return `${formatHeader(report)}\n${formatRows(report.rows)}`;
}

/**
 * The --json form: one object per workload — name, ours, v86, the copy limit where it applies,
 * the ratios us/v86 and us/limit, the target — plus ours' opsPerSec/mibPerSec at the top level
 * (the shape earlier versions printed). The run's description goes to stderr.
 */
export function jsonRows(report: BenchReport): (Row & { opsPerSec?: number; mibPerSec?: number })[] {
  return report.rows.map((r) => ({ ...r, opsPerSec: r.ours?.opsPerSec, mibPerSec: r.ours?.mibPerSec }));
}
