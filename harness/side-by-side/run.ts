/**
 * The side-by-side comparison (docs/side-by-side.md): run the Linux guest's 9P workload on each
 * device in turn — QEMU's own virtio-9p-pci first, as the reference — and print the report.
 *
 *   npx esbuild harness/side-by-side/run.ts --bundle --platform=node --format=esm \
 *     --outfile=.cache/side-by-side/run.mjs && node .cache/side-by-side/run.mjs [options]
 *
 *   --only a,b      run only these runners (by name; the first one run is the reference)
 *   --msize N       ninep.msize for every runner that honours it
 *   --opts a,b      extra mount options (ninep.opts), e.g. cache=loose
 *   --out FILE      where to write the report (default .cache/side-by-side/report.md)
 *
 * Exits 1 if a difference from the reference is not justified in docs/side-by-side.md, or the
 * reference fails a step the docs do not list as a known failure of it.
 *
 * More devices: add a Runner to RUNNERS below ({ name, run }), e.g. our device in v86 and v86's
 * own device; `run` returns a GuestResult (harness/side-by-side/result.ts: parseGuestConsole
 * turns a guest-init console into one) whose `device` is the name used in the docs' table.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { runQemuVirtio, repoRoot, QEMU_DEVICE } from './qemu-virtio.js';
import { loadJustifications, renderReport, undocumentedReferenceFailures, unjustified } from './report.js';
import type { GuestResult } from './result.js';
import { runV86, v86DeviceName, type V86Variant } from './v86.js';

export interface RunnerOptions { msize?: number; mountOpts?: string; logDir: string }

export interface Runner {
  /** the device's name (should equal the GuestResult's `device`) */
  name: string;
  run: (opts: RunnerOptions) => Promise<GuestResult>;
}

/** Run `fn` with an empty temporary export directory, removed afterwards. */
export async function withTempExport<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `v9p-sbs-${prefix}-`));
  try {
    return await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The devices, reference first. */
export const RUNNERS: Runner[] = [
  {
    name: QEMU_DEVICE,
    run: (o) => withTempExport('qemu', (exportDir) => runQemuVirtio({
      exportDir, msize: o.msize, mountOpts: o.mountOpts, log: path.join(o.logDir, `${QEMU_DEVICE}-console.log`),
    })),
  },
  // our device in v86 (memory, local and proxy backends), then v86's own device
  ...(['ours-memory', 'ours-local', 'ours-proxy', 'handle9p', 'own'] as V86Variant[]).map((variant): Runner => ({
    name: v86DeviceName(variant),
    run: (o) => withTempExport(variant, (exportDir) => runV86({
      variant, exportDir, msize: o.msize, mountOpts: o.mountOpts, log: path.join(o.logDir, `${v86DeviceName(variant)}-console.log`),
    })),
  })),
];

/** Run each runner in turn (never in parallel: the step times are compared). */
export async function runAll(runners: Runner[], opts: RunnerOptions, progress: (s: string) => void = () => {}): Promise<GuestResult[]> {
  const results: GuestResult[] = [];
  for (const r of runners) {
    progress(`running ${r.name} ...`);
    const res = await r.run(opts);
    const passed = [...res.steps.values()].filter((s) => s.result === 'PASS').length;
    progress(`${r.name}: mount ${res.mounted ? 'OK' : 'FAILED'}, ${passed}/${res.steps.size} steps pass, ${(res.wallMs / 1000).toFixed(1)} s`);
    results.push(res);
  }
  return results;
}

function parseArgs(argv: string[]) {
  const o: { only?: string[]; msize?: number; mountOpts?: string; out?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => { const x = argv[++i]; if (x === undefined) throw new Error(`${a} needs a value`); return x; };
    if (a === '--only') o.only = v().split(',');
    else if (a === '--msize') o.msize = Number(v());
    else if (a === '--opts') o.mountOpts = v();
    else if (a === '--out') o.out = v();
    else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const root = repoRoot();
  const runners = args.only ? args.only.map((n) => {
    const r = RUNNERS.find((x) => x.name === n);
    if (!r) throw new Error(`no runner ${n} (have ${RUNNERS.map((x) => x.name).join(', ')})`);
    return r;
  }) : RUNNERS;
  const outDir = path.join(root, '.cache/side-by-side');
  const logDir = path.join(outDir, 'logs');
  fs.mkdirSync(logDir, { recursive: true });
  const justifications = loadJustifications(path.join(root, 'docs/side-by-side.md'));
  const runs = await runAll(runners, { msize: args.msize, mountOpts: args.mountOpts, logDir }, (s) => process.stderr.write(`${s}\n`));
  const report = renderReport(runs, justifications);
  const out = args.out ?? path.join(outDir, 'report.md');
  fs.writeFileSync(out, report);
  process.stdout.write(report);
  process.stderr.write(`report: ${out}; consoles: ${logDir}\n`);
  const [ref, ...others] = runs;
  const bad = [...undocumentedReferenceFailures(ref, justifications), ...others.flatMap((o) => unjustified(ref, o, justifications))];
  process.exitCode = bad.length ? 1 : 0;
}

// only when run as the script (not when a test or another harness imports RUNNERS)
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((e) => { process.stderr.write(`${e instanceof Error ? e.stack : e}\n`); process.exitCode = 2; });
}
