/**
 * `virtio9p bench` in Node at a test size: every workload runs on both sides (ours through the
 * ring on the memory and local backends, v86's own device), the copy limit is measured, and the
 * numbers are sane — finite and positive, never their size.
 */
import { runBench, formatResults } from '../../harness/bench.js';
import { KEYS } from '../../harness/bench/common.js';
import { runOverhead } from '../../harness/bench/overhead.js';



const pos = (x: number | undefined) => { expect(Number.isFinite(x)).toBe(true); expect(x!).toBeGreaterThan(0); };

test('memory backend against v86 and the copy limit', async () => {
  const rep = await runBench({ tiny: true, runs: 1 });
  expect(rep.rows.map((r) => r.key)).toEqual(KEYS);
  for (const r of rep.rows) {
    pos(r.ours?.opsPerSec); pos(r.v86?.opsPerSec); pos(r.usOverV86);
    expect(r.ours!.p99Us).toBeGreaterThanOrEqual(r.ours!.p50Us);
    if (r.limit) { pos(r.limit.limitMiBps); pos(r.usOverLimit); }
  }
  expect(formatResults(rep)).toContain('us/v86');
}, 180_000);

test('local backend (ours only)', async () => {
  const rep = await runBench({ tiny: true, runs: 1, backend: 'local', noV86: true, only: ['b', 'c', 'e', 'f', 'g'] });
  for (const r of rep.rows) pos(r.ours?.opsPerSec);
}, 180_000);

test('null-backend overhead curve', async () => {
  const rep = await runOverhead({ quick: true });
  pos(rep.nullGetattrNs);
  expect(rep.curve.length).toBeGreaterThan(3);
  for (const p of rep.curve) pos(p.nsPerGetattr);
}, 180_000);
