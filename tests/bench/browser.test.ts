/**
 * The browser bench page runs to completion in Debian's Chromium (apt-get install -y chromium)
 * and reports sane numbers — finite and positive, never their size (speed is not asserted).
 */
import fs from 'node:fs';
import { runBrowserBench } from '../../harness/browser/run.js';
import { KEYS } from '../../harness/bench/common.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';



test('the bench page completes in headless Chromium with sane numbers', async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  const progress: string[] = [];
  const rep = await runBrowserBench({ tiny: true, runs: 1, log: (s) => progress.push(s) });
  expect(progress.some((p) => p.includes('ours (memory): workload b'))).toBe(true);
  expect(rep.info.host).toContain('crossOriginIsolated=true');
  expect(rep.rows.map((r) => r.key)).toEqual(KEYS);
  const pos = (x: number | undefined) => { expect(Number.isFinite(x)).toBe(true); expect(x!).toBeGreaterThan(0); };
  const nonneg = (x: number | undefined) => { expect(Number.isFinite(x)).toBe(true); expect(x!).toBeGreaterThanOrEqual(0); };
  for (const r of rep.rows) {
    for (const side of [r.ours, r.v86]) {
      expect(side).toBeDefined();
      pos(side!.opsPerSec);
      for (const x of side!.runs) pos(x);
      nonneg(side!.p50Us); // a worker's clock is coarse (5 µs): small requests can read 0
      nonneg(side!.p99Us);
      expect(side!.p99Us).toBeGreaterThanOrEqual(side!.p50Us);
    }
    pos(r.usOverV86);
    if (r.limit) { pos(r.limit.wasmMiBps); pos(r.limit.hostMiBps); pos(r.usOverLimit); pos(r.ours!.mibPerSec); }
  }
}, 240_000);
