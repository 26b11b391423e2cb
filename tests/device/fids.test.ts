/**
 * The fid table grows: a session holds 100,000 fids through the virtqueue (the table doubles
 * into memory the core takes with memory.grow), every one answers getattr, clunk frees them,
 * and the memory is reused by the next session's table. The per-session limit (maxFids) is a
 * resource limit: the request that would pass it gets EMFILE and everything else keeps working.
 */
import { describe, test, expect } from '@jest/globals';
import { createMachine, createPackedMachine } from '../../src/testing/machine.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { Virtio9pDevice } from '../../src/device.js';
import { P9ClientError } from '../../src/testing/p9/client.js';
import { MSG, P9_RLERROR } from '../../src/testing/p9/codec.js';

const EMFILE = 24, ENOENT = 2;
const FILES = 1000;
const log = (s: string): void => { console.log(s); }; // eslint-disable-line no-console

function tree(): MemoryBackend {
  const mem = new MemoryBackend();
  for (let i = 0; i < FILES; i++) mem.writeFile(`f${i}`, `file ${i}`);
  return mem;
}

/** Run fn(i) for i in [from, to) with `depth` requests in flight at a time. */
async function each(from: number, to: number, fn: (i: number) => Promise<unknown>, depth = 64): Promise<void> {
  for (let i = from; i < to; i += depth) {
    const ps: Promise<unknown>[] = [];
    for (let k = i; k < Math.min(to, i + depth); k++) ps.push(fn(k));
    await Promise.all(ps);
  }
}

async function errnoOf(p: Promise<unknown>): Promise<number> {
  try { await p; } catch (e) { if (e instanceof P9ClientError) return e.errno; throw e; }
  return 0;
}

describe('fid table', () => {
  test('100,000 fids in one session: walk, getattr each, clunk each; memory is reused by the next session', async () => {
    const { client: c, device } = await createMachine({ backend: tree(), guestMemorySize: 8 << 20 });
    const mem0 = device.ram.buffer.byteLength;
    await c.mount({ msize: 65536 });
    const N = 100000;
    // fid i → file f(i mod 1000); every 10th a clone of the root
    const name = (i: number): string[] => (i % 10 === 0 ? [] : [`f${i % FILES}`]);
    await each(1, N + 1, (i) => c.walk(0, i, name(i)));
    const grown = device.ram.buffer.byteLength;
    log(`[fids] ${N} fids held: module memory ${(mem0 / 1048576).toFixed(1)} → ${(grown / 1048576).toFixed(1)} MiB`);
    expect(grown).toBeGreaterThan(mem0);
    // 100,000 fids at ≤ 3/4 load: 262,144 entries × 32 B = 8 MiB, plus the smaller tables it
    // grew through (returned to the heap's free lists): under 16 MiB in all
    expect(grown - mem0).toBeLessThanOrEqual(16 << 20);
    const root = await c.getattr(0);
    const wrong: number[] = [];
    await each(1, N + 1, async (i) => {
      const st = await c.getattr(i);
      if (i % 10 === 0 ? st.qid.path !== root.qid.path : st.size !== BigInt(`file ${i % FILES}`.length)) wrong.push(i);
    });
    expect(wrong).toEqual([]);
    // clunk the odd fids, check the even ones still resolve (entries moved by deletions)
    await each(1, N + 1, (i) => (i % 2 ? c.clunk(i) : Promise.resolve()));
    expect(await errnoOf(c.getattr(99999))).toBe(ENOENT);
    await each(1, N / 2 + 1, async (k) => { if ((await c.getattr(2 * k)).qid.type !== (k % 5 === 0 ? 0x80 : 0)) wrong.push(2 * k); });
    expect(wrong).toEqual([]);
    await each(1, N / 2 + 1, (k) => c.clunk(2 * k));
    expect(device.counters().errors).toEqual({ [ENOENT]: 1 });
    // a new session (Tversion clunks everything and returns the table) holds as many again
    // without more memory: the heap's blocks are reused
    await c.mount({ msize: 65536 });
    await each(1, N + 1, (i) => c.walk(0, i, name(i)));
    expect((await c.getattr(N)).qid.path).toBe(root.qid.path);
    expect(device.ram.buffer.byteLength).toBe(grown);
  }, 240000);

  test('packed ring, MMIO transport: the driver keeps working across the memory growth', async () => {
    const { client: c, device } = await createPackedMachine({ backend: tree(), guestMemorySize: 8 << 20, transport: 'mmio' });
    const mem0 = device.ram.buffer.byteLength;
    await c.mount({ msize: 65536 });
    await each(1, 5001, (i) => c.walk(0, i, [`f${i % FILES}`]));
    expect(device.ram.buffer.byteLength).toBeGreaterThan(mem0);
    await c.walk(0, 6000, ['f7']);
    await c.lopen(6000, 0);
    expect(new TextDecoder().decode(await c.read(6000, 0, 100))).toBe('file 7');
  }, 60000);

  test('maxFids reached: EMFILE for what would add a fid, other requests answered, a clunk makes room', async () => {
    const LIMIT = 2000; // past the first table (1,024 entries): the limit holds in a grown table too
    const { client: c, device } = await createMachine({ backend: tree(), guestMemorySize: 8 << 20, device: { maxFids: LIMIT } });
    await c.mount({ msize: 65536 });
    await each(1, LIMIT, (i) => c.walk(0, i, [`f${i % FILES}`]));  // the root + 1,999
    expect(await errnoOf(c.walk(0, LIMIT, ['f1']))).toBe(EMFILE);
    expect(await errnoOf(c.walk(0, LIMIT, []))).toBe(EMFILE);
    // Txattrwalk and Tattach add a fid too
    const xr = await c.raw(MSG.Txattrwalk, [1, LIMIT, '']);
    expect(xr.type).toBe(P9_RLERROR);
    expect(xr.fields[0]).toBe(EMFILE);
    expect(await errnoOf(c.attach(LIMIT + 1, 0xffffffff, 'root', '', 0))).toBe(EMFILE);
    // requests that reuse a fid, or none, still work
    await c.walk(5, 5, []);                                  // fid replaced in place
    await c.lopen(3, 0);
    expect(new TextDecoder().decode(await c.read(3, 0, 100))).toBe('file 3');
    expect((await c.getattr(LIMIT - 1)).size).toBe(BigInt(`file ${(LIMIT - 1) % FILES}`.length));
    await c.clunk(8);
    await c.walk(0, 8, []);                                  // the place just freed
    await c.lcreate(8, 'made-at-the-limit', 0o102, 0o644, 0); // Tlcreate turns fid 8 into the new file
    expect(await c.write(8, 0, new TextEncoder().encode('ok'))).toBe(2);
    // a clunk frees a place: the next walk gets it, the one after is refused again
    await c.clunk(9);
    await c.walk(0, LIMIT, ['f1']);
    expect(await errnoOf(c.walk(0, LIMIT + 2, ['f1']))).toBe(EMFILE);
    expect(device.counters().errors[EMFILE]).toBe(5);
  }, 60000);

  test('maxFids is validated', async () => {
    for (const maxFids of [0, -1, 1.5, 16777217, NaN]) {
      await expect(Virtio9pDevice.create({ backend: new MemoryBackend(), guestMemorySize: 1 << 20, maxFids })).rejects.toThrow(/maxFids must be an integer from 1 to 16777216/);
    }
  });
});
