/**
 * The CI budget of `npm run fuzz`: the message and ring fuzzers (harness/fuzz/) for a few
 * seconds each with a fixed seed (FUZZ_SEED / FUZZ_BUDGET_MS override). Failures are not saved
 * here (run `npm run fuzz` to save a vector); the test prints the failing case instead.
 */
import { test, expect } from '@jest/globals';
import { fuzz } from '../../harness/fuzz/engine.js';

const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 0x9f0c1a2b;
const MS = Number(process.env.FUZZ_BUDGET_MS ?? 8000);

test(`message + ring fuzzers, ${MS / 1000} s, seed ${SEED}`, async () => {
  const lines: string[] = [];
  const r = await fuzz({ ms: MS, seed: SEED, saveDir: null, log: (l) => lines.push(l) });
  // eslint-disable-next-line no-console
  console.log(`[fuzz budget] seed=${SEED} msg ${r.execs.msg} execs (${r.execPerSec.msg}/s), ring ${r.execs.ring} execs (${r.execPerSec.ring}/s) ${JSON.stringify(r.stats)}`);
  expect(lines.filter((l) => l.startsWith('FAILURE'))).toEqual([]);
  expect(r.failures).toEqual([]);
  expect(r.execs.msg).toBeGreaterThan(100);
  expect(r.execs.ring).toBeGreaterThan(100);
}, 30000);
