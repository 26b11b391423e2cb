/**
 * Replays every regression vector saved by the fuzzers (tests/regressions/*.json, written by
 * `npm run fuzz` when an invariant broke) and every committed seed (harness/fuzz/seeds/), each
 * on fresh targets. A vector that still fails names the invariant it breaks.
 */
import { describe, test, expect } from '@jest/globals';
import { loadRegressions, ringSeeds, runFresh, Targets } from '../../harness/fuzz/engine.js';
import { loadMessageSeeds } from '../../harness/fuzz/messages.js';

const vectors = loadRegressions();

describe('fuzz regression vectors', () => {
  test(`${vectors.length} saved vector(s) replay without breaking an invariant`, async () => {
    const failing: string[] = [];
    for (const v of vectors) {
      const err = await runFresh(v.case);
      if (err) failing.push(`${v.name}: ${err}`);
    }
    expect(failing).toEqual([]);
  });

  test('committed seeds: every corpus message and ring seed case', async () => {
    const t = await Targets.create();
    for (const m of loadMessageSeeds()) {
      await t.run({ kind: 'msg', prelude: true, items: [{ hex: Buffer.from(m).toString('hex'), cap: 8192, rcuts: [], wcuts: [], indirect: false, streamCap: 70000 }] });
    }
    for (const c of ringSeeds()) await t.run(c);
    t.msg.check();
  });
});
