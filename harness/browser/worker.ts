/**
 * The browser bench's Web Worker: the same suite as `npm run bench` on the memory backend —
 * copy limit (wasm memory.copy and Uint8Array copyWithin), ours (the core from the bytes the
 * page passes), then v86 (its npm release build, loaded from the page's origin).
 */
import { MemoryBackend } from '../../src/backends/memory.js';
import { makeSuite, makeRows, type SideResult, type WorkloadKey } from '../bench/common.js';
import { runOurs } from '../bench/ours.js';
import { runV86 } from '../bench/v86.js';
import { measureCopyLimits } from '../bench/copylimit.js';
import type { StartMsg, WorkerMsg } from './protocol.js';

const post = (m: WorkerMsg) => (self as unknown as Worker).postMessage(m);

self.onmessage = async (ev: MessageEvent<StartMsg>) => {
  const m = ev.data;
  if (m.type !== 'start') return;
  try {
    const suite = makeSuite(m.sizes, { runs: m.runs, warmup: m.warmup, only: m.only });
    const t0 = performance.now();
    const progress = (side: string, what: string) =>
      post({ type: 'progress', text: `[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${side}: ${what === 'setup' ? 'setting up the tree' : `workload ${what}`}` });
    progress('copy limit', 'memory.copy / copyWithin');
    const limits = await measureCopyLimits(suite, m.copyWasm);
    const ours = await runOurs(suite, { backend: () => new MemoryBackend(), wasm: m.coreWasm }, progress, 'ours (memory)');
    let v86: Partial<Record<WorkloadKey, SideResult>> = {};
    let v86Error: string | undefined;
    let v86Version: string | undefined;
    if (!m.noV86) {
      try {
        const lib = m.v86Lib;
        const { V86 } = await import(/* non-literal: loaded at run time */ lib);
        v86Version = new URL(m.v86Lib).searchParams.get('v') ?? undefined;
        v86 = await runV86(suite, { V86, wasmPath: m.v86Wasm }, progress);
      } catch (e) {
        v86Error = `v86 could not run in the worker: ${(e as Error).message}`;
        progress('v86', `FAILED (${v86Error})`);
      }
    }
    post({
      type: 'done', rows: makeRows(suite, ours, v86, limits), v86: v86Version, v86Error,
      crossOriginIsolated: (self as unknown as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
      sharedMemory: typeof SharedArrayBuffer !== 'undefined',
    });
  } catch (e) {
    post({ type: 'error', message: (e as Error).stack ?? String(e) });
  }
};
