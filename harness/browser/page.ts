/**
 * The bench page: starts the worker, shows progress, then a results table and a chart (ours vs
 * v86 vs the copy limit per workload), and posts the JSON to /result (and to window.benchResult
 * for whoever drives the page). Query: ?size=full|quick|tiny&runs=N&only=a,b&nov86=1
 */
import { FULL, QUICK, TINY, KEYS, formatRows, type Row, type WorkloadKey } from '../bench/common.js';
import { ratioChartSvg } from '../bench/chart.js';
import type { StartMsg, WorkerMsg } from './protocol.js';

const q = new URLSearchParams(location.search);
const size = q.get('size') ?? 'full';
const sizes = size === 'tiny' ? TINY : size === 'quick' ? QUICK : FULL;
const runs = Number(q.get('runs') ?? 3);
const only = (q.get('only')?.split(',') ?? KEYS) as WorkloadKey[];
const noV86 = q.get('nov86') === '1';

const $ = (id: string) => document.getElementById(id)!;
const log = (s: string) => { $('progress').textContent = s; $('log').textContent += s + '\n'; console.log(`bench: ${s}`); };
const w = window as unknown as { benchResult?: unknown; benchError?: string };

function table(rows: Row[]): string {
  const n = (x: number | undefined, d = 0) => (x === undefined || !Number.isFinite(x) ? '' : x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
  const head = ['workload', 'ours ops/s', 'MiB/s', 'p50 µs', 'p99 µs', 'v86 ops/s', 'MiB/s', 'p50 µs', 'copy MiB/s', 'us/v86', 'us/copy', 'target'];
  const body = rows.map((r) => [r.name, n(r.ours?.opsPerSec), n(r.ours?.mibPerSec), n(r.ours?.p50Us, 1), n(r.ours?.p99Us, 1),
    n(r.v86?.opsPerSec), n(r.v86?.mibPerSec), n(r.v86?.p50Us, 1), n(r.limit?.limitMiBps),
    r.usOverV86 === undefined ? '' : `${n(r.usOverV86, r.usOverV86 >= 10 ? 0 : 2)}×`,
    r.usOverLimit === undefined ? '' : `${Math.round(r.usOverLimit * 100)}%`,
    r.target ? `${r.target}${r.met === undefined ? '' : r.met ? ' met' : ' below'}` : '']);
  return `<table><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr>${body.map((b) => `<tr>${b.map((c, i) => `<td${i ? ' class=n' : ''}>${c}</td>`).join('')}</tr>`).join('')}</table>`;
}

async function main(): Promise<void> {
  const cfg = await (await fetch('/config.json')).json() as { v86Version: string };
  const [core, copy] = await Promise.all(['/virtio9p.wasm', '/copy.wasm'].map(async (u) => (await fetch(u)).arrayBuffer()));
  log(`crossOriginIsolated=${crossOriginIsolated}; size ${size}, ${runs} runs; starting the worker`);
  const worker = new Worker('/worker.js', { type: 'module' });
  const msg: StartMsg = {
    type: 'start', sizes, runs, warmup: 1, only, noV86, coreWasm: core, copyWasm: copy,
    v86Lib: new URL(`/v86/libv86.mjs?v=${encodeURIComponent(cfg.v86Version)}`, location.href).href,
    v86Wasm: new URL('/v86/v86.wasm', location.href).href,
  };
  const result = await new Promise<Extract<WorkerMsg, { type: 'done' }>>((resolve, reject) => {
    worker.onmessage = (ev: MessageEvent<WorkerMsg>) => {
      const m = ev.data;
      if (m.type === 'progress') log(m.text);
      else if (m.type === 'done') resolve(m);
      else reject(new Error(m.message));
    };
    worker.onerror = (e) => reject(new Error(`worker: ${e.message}`));
    worker.postMessage(msg, [core, copy]);
  });
  worker.terminate();
  const report = {
    info: {
      node: navigator.userAgent.match(/(Chrom(e|ium)\/[\d.]+)/)?.[1] ?? navigator.userAgent,
      host: `browser worker, ${navigator.hardwareConcurrency} logical CPUs, crossOriginIsolated=${result.crossOriginIsolated}`,
      backend: 'memory', sizes, runs, warmup: 1, v86: result.v86 ?? (result.v86Error ? `(failed: ${result.v86Error})` : undefined),
      date: new Date().toISOString(),
    },
    rows: result.rows,
  };
  $('table').innerHTML = table(report.rows);
  $('chart').innerHTML = ratioChartSvg(report.rows, `virtio9p vs v86 in ${report.info.node} (Web Worker, memory backend)`);
  console.log(formatRows(report.rows));
  w.benchResult = report;
  await fetch('/result', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(report) }).catch(() => {});
  log('done');
}

main().catch(async (e) => {
  const m = (e as Error).stack ?? String(e);
  w.benchError = m;
  log(`FAILED: ${m}`);
  await fetch('/result', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ error: m }) }).catch(() => {});
});
