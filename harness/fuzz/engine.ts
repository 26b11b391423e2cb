/**
 * The fuzz loop shared by `npm run fuzz` (harness/fuzz/run.ts) and the CI budget test
 * (tests/regressions/fuzz-budget.test.ts): seeds first, then generated cases for a time
 * budget, alternating between the message and the ring target; a failing case is shrunk a
 * little (single items of a batch) and saved as a regression vector in tests/regressions/.
 */
import { readFileSync, writeFileSync, mkdirSync, existsSync, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Rng } from './rng.js';
import { MsgTarget, genMsgCase, loadMessageSeeds, type MsgCase } from './messages.js';
import { RingTarget, genRingCase, type RingCase } from './rings.js';

export type FuzzCase = MsgCase | RingCase;
export type TargetName = 'msg' | 'ring';

export interface RegressionVector {
  name: string;
  found: string;
  seed: number;
  error: string;
  /** true once the core is fixed and the vector passes (kept as a regression) */
  note?: string;
  case: FuzzCase;
}

export interface FuzzOptions {
  ms: number;
  seed: number;
  targets?: TargetName[];
  /** where failing cases are saved (null: not saved) */
  saveDir?: string | null;
  log?: (line: string) => void;
  /** stop after this many failures (default 5) */
  maxFailures?: number;
}

export interface FuzzReport {
  execs: Record<TargetName, number>;
  seconds: Record<TargetName, number>;
  execPerSec: Record<TargetName, number>;
  failures: RegressionVector[];
  saved: string[];
  stats: Record<string, number>;
}

export function repoRoot(): string {
  let dir = path.dirname(new URL(import.meta.url).pathname);
  for (let i = 0; i < 5; i++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'harness'))) return dir;
    dir = path.dirname(dir);
  }
  return process.cwd();
}

export function ringSeeds(): RingCase[] {
  const p = path.join(repoRoot(), 'harness/fuzz/seeds/rings.json');
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as RingCase[]) : [];
}

export function loadRegressions(dir = path.join(repoRoot(), 'tests/regressions')): RegressionVector[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f.endsWith('.json')).sort()
    .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as RegressionVector);
}

export class Targets {
  msg!: MsgTarget;
  ring!: RingTarget;
  static async create(): Promise<Targets> {
    const t = new Targets();
    t.msg = await MsgTarget.create();
    t.ring = await RingTarget.create();
    return t;
  }
  /** Run a case on a fresh or the shared target; throws on a broken invariant. */
  async run(c: FuzzCase): Promise<void> {
    if (c.kind === 'msg') await this.msg.run(c);
    else this.ring.run(c);
  }
}

/** Run one case on fresh targets (for replay and shrinking). */
export async function runFresh(c: FuzzCase): Promise<string | null> {
  try {
    const t = await Targets.create();
    await t.run(c);
    if (c.kind === 'msg') t.msg.check();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

async function shrink(c: FuzzCase, err: string): Promise<{ c: FuzzCase; err: string }> {
  if (c.kind !== 'msg' || c.items.length <= 1) return { c, err };
  for (const it of c.items) {
    for (const prelude of [false, true]) {
      const small: MsgCase = { kind: 'msg', prelude, items: [it] };
      const e = await runFresh(small);
      if (e) return { c: small, err: e };
    }
  }
  return { c, err };
}

function save(dir: string, v: Omit<RegressionVector, 'name'>): { path: string; v: RegressionVector } {
  mkdirSync(dir, { recursive: true });
  const h = createHash('sha256').update(JSON.stringify(v.case)).digest('hex').slice(0, 12);
  const name = `${v.case.kind}-${h}`;
  const full: RegressionVector = { name, ...v };
  const p = path.join(dir, `${name}.json`);
  writeFileSync(p, JSON.stringify(full, null, 1) + '\n');
  return { path: p, v: full };
}

export async function fuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const log = opts.log ?? (() => {});
  const targets = opts.targets ?? ['msg', 'ring'];
  const maxFailures = opts.maxFailures ?? 5;
  const corpus = loadMessageSeeds();
  const report: FuzzReport = {
    execs: { msg: 0, ring: 0 }, seconds: { msg: 0, ring: 0 }, execPerSec: { msg: 0, ring: 0 }, failures: [], saved: [], stats: {},
  };
  const bump = (k: string): void => { report.stats[k] = (report.stats[k] ?? 0) + 1; };
  let t = await Targets.create();
  const fail = async (c: FuzzCase, err: string, seed: number): Promise<void> => {
    const s = await shrink(c, err);
    const v = { found: new Date().toISOString(), seed, error: s.err, case: s.c };
    if (opts.saveDir) {
      const r = save(opts.saveDir, v);
      report.saved.push(r.path);
      report.failures.push(r.v);
      log(`FAILURE (${c.kind}): ${s.err}\n  saved ${r.path}`);
    } else {
      report.failures.push({ name: '(unsaved)', ...v });
      log(`FAILURE (${c.kind}): ${s.err}\n  case ${JSON.stringify(s.c).slice(0, 2000)}`);
    }
    t = await Targets.create(); // the failed target's state is suspect
  };

  // seeds first: the corpus messages one by one, and the ring seed cases
  const t0 = performance.now();
  if (targets.includes('msg')) {
    for (const m of corpus) {
      const c: MsgCase = { kind: 'msg', prelude: true, items: [{ hex: Buffer.from(m).toString('hex'), cap: 8192, rcuts: [], wcuts: [], indirect: false, streamCap: 70000 }] };
      try { await t.run(c); } catch (e) { await fail(c, (e as Error).message, -1); }
      report.execs.msg++;
    }
  }
  if (targets.includes('ring')) {
    for (const c of ringSeeds()) {
      try { t.run(c); } catch (e) { await fail(c, (e as Error).message, -1); }
      report.execs.ring++;
    }
  }
  const seedTime = (performance.now() - t0) / 1000;
  report.seconds.msg += seedTime / 2;
  report.seconds.ring += seedTime / 2;

  // generated cases, alternating in slices; each slice has its own seed (logged)
  const end = t0 + opts.ms;
  let slice = 0;
  while (performance.now() < end && report.failures.length < maxFailures) {
    const which = targets[slice % targets.length];
    const seed = (opts.seed + slice) >>> 0;
    const rng = new Rng(seed);
    const sliceEnd = Math.min(end, performance.now() + 500);
    const s0 = performance.now();
    let n = 0;
    while (performance.now() < sliceEnd && report.failures.length < maxFailures) {
      const c = which === 'msg' ? genMsgCase(rng, corpus) : genRingCase(rng);
      try {
        if (c.kind === 'msg') await t.msg.run(c);
        else bump(t.ring.run(c).broken ? 'ring:broken' : 'ring:healthy');
      } catch (e) {
        await fail(c, (e as Error).message, seed);
      }
      n++;
      if ((n & 255) === 0 && which === 'msg') {
        try { t.msg.check(); } catch (e) { await fail(c, `service check after the case: ${(e as Error).message}`, seed); }
      }
    }
    report.execs[which] += n;
    report.seconds[which] += (performance.now() - s0) / 1000;
    slice++;
    await new Promise((r) => setImmediate(r));
  }
  if (targets.includes('msg')) {
    try { t.msg.check(); } catch (e) { report.failures.push({ name: '(final service check)', found: new Date().toISOString(), seed: opts.seed, error: (e as Error).message, case: { kind: 'msg', prelude: false, items: [] } }); }
  }
  for (const k of ['msg', 'ring'] as const) report.execPerSec[k] = report.seconds[k] > 0 ? Math.round(report.execs[k] / report.seconds[k]) : 0;
  return report;
}
