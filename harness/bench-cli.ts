/**
 * `npm run bench` (a repository script, not part of the installed `virtio9p` command: the
 * suite races v86 and needs the repository's harness and devDependencies).
 * Built by harness/build.mjs into build/bench.js.
 */
import path from 'node:path';
import { parseFlags, runMain, UsageError } from '../src/args.js';
import { BACKENDS, type BackendKind } from '../src/backends/make.js';
import { runBench, formatResults, formatHeader, jsonRows, BENCH_BACKENDS } from './bench.js';
import { KEYS, type WorkloadKey } from './bench/common.js';
import { runOverhead, formatOverhead, writeOverheadChart, writeResultsChart } from './bench/overhead.js';
import { runBrowserBench } from './browser/run.js';
import { runSocketBench, formatSocketRows } from './bench-socket.js';

export const BENCH_HELP = `usage: npm run bench -- [--json] [--quick] [--backend KIND] [--runs N] [--only a,b,..] [--no-v86] [--copy-mode] [--chart --out FILE]
       npm run bench -- --overhead [--json] [--quick] [--chart --out FILE]
       npm run bench -- --browser [--json] [--quick] [--only a,b,..] [--no-v86] [--chart --out FILE]
       npm run bench -- --socket [--backend KIND] [--seconds N] [--guest] [--json]

Runs the workloads (a)-(g) through the real virtqueue path, in the same run against v86's own
virtio-9p device and server (npm v86) and the memory-copy limit, and prints ops/s, MiB/s,
p50/p99 latency and the ratios us/v86 and us/limit; with --overhead, the core's per-request
cost on a null backend and its curve against open fids; with --browser, the same suite in
headless Chromium (/usr/bin/chromium, via playwright-core) in a Web Worker; with --socket,
races \`virtio9p serve\` against diod with diodload (needs Debian's diod).

flags:
  --json         print the results as JSON
  --quick        a smaller run (about a tenth of the work)
  --backend KIND ${Object.keys(BENCH_BACKENDS).join(', ')} (default memory); with --socket: ${BACKENDS.join(', ')}
  --runs N       measured runs per workload (default 3; the median is reported)
  --only LIST    workloads to run: ${KEYS.join(',')} (d2: overwrite; f8k: 8 KiB readdir)
  --no-v86       skip the v86 side
  --copy-mode    our device in copy mode (guest RAM in a plain ArrayBuffer, copied in and out)
  --overhead     null-backend getattr cost and the open-fids curve
  --chart        also write an SVG chart (to the file given with --out)
  --out FILE     where --chart writes
  --browser      run the suite in headless Chromium instead (memory backend)
  --socket       race the socket server against diod instead
  --seconds N    with --socket: diodload run length (default 5)
  --guest        with --socket: also time the Linux guest workload on both (needs QEMU and .cache/linux-guest)
  -h, --help     show this help`;

export async function benchMain(rest: string[]): Promise<number> {
  const f = parseFlags(rest, ['json', 'quick', 'socket', 'guest', 'no-v86', 'overhead', 'browser', 'chart', 'copy-mode'], ['backend', 'seconds', 'runs', 'only', 'out']);
  if (f.has('help')) { console.log(BENCH_HELP); return 0; }
  if (f.has('chart') !== f.has('out')) throw new UsageError(f.has('chart') ? '--chart needs --out FILE' : '--out needs --chart');
  const out = f.has('out') ? path.resolve(f.get('out')!) : undefined;
  if (f.has('socket')) {
    if (f.has('chart')) throw new UsageError('--chart does not apply to --socket');
    const seconds = Number(f.get('seconds') ?? 5);
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600) throw new UsageError(`bad --seconds '${f.get('seconds')}' (want 1..600)`);
    const kind = f.get('backend') ?? 'memory';
    if (!BACKENDS.includes(kind as BackendKind)) throw new UsageError(`bad --backend '${kind}' (want ${BACKENDS.join(', ')})`);
    const log = f.has('json') ? undefined : (s: string) => process.stderr.write(`  ${s}\n`);
    const rows = await runSocketBench({ backend: kind, seconds, guest: f.has('guest'), log });
    console.log(f.has('json') ? JSON.stringify(rows, null, 2) : formatSocketRows(rows));
    return 0;
  }
  for (const k of ['seconds', 'guest']) if (f.has(k)) throw new UsageError(`--${k} needs --socket`);
  // progress goes to stderr, also with --json (stdout stays the JSON)
  const log = (s: string) => process.stderr.write(`  ${s}\n`);
  const runs = Number(f.get('runs') ?? 3);
  if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new UsageError(`bad --runs '${f.get('runs')}' (want 1..50)`);
  let only: WorkloadKey[] | undefined;
  if (f.has('only')) {
    only = f.get('only')!.split(',') as WorkloadKey[];
    for (const k of only) if (!KEYS.includes(k)) throw new UsageError(`bad --only '${k}' (want ${KEYS.join(',')})`);
  }
  const benchKind = f.get('backend') ?? 'memory';
  if (!(benchKind in BENCH_BACKENDS)) throw new UsageError(`bad --backend '${benchKind}' (want ${Object.keys(BENCH_BACKENDS).join(', ')})`);
  // the table is printed before the chart is written, so a bad --out never loses a run
  if (f.has('overhead')) {
    const rep = await runOverhead({ quick: f.has('quick'), log });
    console.log(f.has('json') ? JSON.stringify(rep, null, 2) : formatOverhead(rep));
    if (out) writeOverheadChart(rep, out, log);
    return 0;
  }
  if (f.has('browser')) {
    if (benchKind !== 'memory') throw new UsageError('--browser runs on the memory backend only');
    const rep = await runBrowserBench({ quick: f.has('quick'), runs, only, noV86: f.has('no-v86'), log });
    if (f.has('json')) log(formatHeader(rep));
    console.log(f.has('json') ? JSON.stringify(jsonRows(rep), null, 2) : formatResults(rep));
    if (out) writeResultsChart(rep, out, log, `virtio9p vs v86 in ${rep.info.node} (Web Worker, memory backend, one run)`);
    return 0;
  }
  const report = await runBench({ quick: f.has('quick'), runs, only, backend: benchKind, noV86: f.has('no-v86'), copyMode: f.has('copy-mode'), log });
  if (f.has('json')) log(formatHeader(report));
  console.log(f.has('json') ? JSON.stringify(jsonRows(report), null, 2) : formatResults(report));
  if (out) writeResultsChart(report, out, log);
  return 0;
}

runMain('bench', () => benchMain(process.argv.slice(2)));
