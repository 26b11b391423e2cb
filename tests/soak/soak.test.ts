/**
 * The short CI soak (harness/soak/soak.ts, `npm run soak` for long runs): 8 concurrent
 * clients over the socket server with checksummed data, a few seconds per backend (memory,
 * local, proxy with QEMU's virtfs-proxy-helper) and one run over the device ring. Every file's
 * checksum must match what its writer recorded; descriptors, module memory, device inflight
 * and server buffers must be back to their start. (Jest has no gc exposed, so only the loose
 * RSS bound applies to memory here; `npm run soak` runs with --expose-gc and checks the heap.)
 */
import { describe, test, expect, beforeAll } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { runSoak, formatSoak, soakProblems, type SoakBackend } from '../../harness/soak/soak.js';

const MS = Number(process.env.SOAK_MS ?? 2500);

beforeAll(() => {
  execFileSync(process.execPath, [path.resolve('native/build.mjs')], { stdio: 'inherit' });
});

describe('short soak', () => {
  const cases: [SoakBackend, 'socket' | 'ring'][] = [['memory', 'socket'], ['local', 'socket'], ['proxy', 'socket'], ['memory', 'ring']];
  test.each(cases)('%s backend over the %s', async (backend, transport) => {
    const r = await runSoak({ ms: MS, backend, transport, seed: 0x50a4 });
    console.log(formatSoak(r)); // eslint-disable-line no-console
    expect(soakProblems(r)).toEqual([]);
    expect(r.ops).toBeGreaterThan(100);
    expect(r.verified).toBe(r.files);
  }, MS + 30000);
});
