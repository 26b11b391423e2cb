/**
 * `npm run fuzz -- --minutes N [--seed S] [--target msg|ring|all] [--no-save]`
 *
 * Runs the structure-aware 9P message fuzzer and the ring fuzzer (harness/fuzz/) for the
 * budget, prints executions per second, and saves every failing case as a regression vector
 * in tests/regressions/ (replayed by tests/regressions/replay.test.ts). Exit status 1 when
 * something failed.
 */
import path from 'node:path';
import { fuzz, repoRoot, type TargetName } from './engine.js';

function usage(msg?: string): never {
  if (msg) process.stderr.write(`fuzz: ${msg}\n`);
  process.stderr.write('usage: fuzz [--minutes N] [--seconds N] [--seed S] [--target msg|ring|all] [--no-save]\n');
  process.exit(2);
}

const args = process.argv.slice(2);
let ms = 60_000;
let seed = (Date.now() ^ (process.pid << 16)) >>> 0;
let targets: TargetName[] = ['msg', 'ring'];
let save = true;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const val = (): string => { const v = args[++i]; if (v === undefined) usage(`${a} needs a value`); return v; };
  if (a === '--minutes') ms = Number(val()) * 60_000;
  else if (a === '--seconds') ms = Number(val()) * 1000;
  else if (a === '--seed') seed = Number(val()) >>> 0;
  else if (a === '--target') { const v = val(); targets = v === 'all' ? ['msg', 'ring'] : [v as TargetName]; if (!['msg', 'ring', 'all'].includes(v)) usage(`bad --target ${v}`); }
  else if (a === '--no-save') save = false;
  else if (a === '--help' || a === '-h') usage();
  else usage(`unknown flag '${a}'`);
}
if (!(ms > 0)) usage('bad budget');

const root = repoRoot();
console.log(`fuzz: targets ${targets.join('+')}, budget ${(ms / 1000).toFixed(0)} s, seed ${seed}`);
const r = await fuzz({ ms, seed, targets, saveDir: save ? path.join(root, 'tests/regressions') : null, log: (l) => console.log(l), maxFailures: 20 });
for (const t of targets) {
  console.log(`  ${t.padEnd(5)} ${String(r.execs[t]).padStart(9)} executions in ${r.seconds[t].toFixed(1)} s → ${r.execPerSec[t]} exec/s`);
}
if (r.stats['ring:broken'] !== undefined || r.stats['ring:healthy'] !== undefined) {
  console.log(`  rings: ${r.stats['ring:healthy'] ?? 0} well formed, ${r.stats['ring:broken'] ?? 0} malformed (reset + re-init after each)`);
}
if (r.failures.length) {
  console.log(`${r.failures.length} failure(s); vectors: ${r.saved.join(', ') || '(not saved)'}`);
  process.exit(1);
}
console.log('no invariant broken');
