/**
 * Hostile rings (DESIGN "Hostile guests", reference §2.4, §2.7): every malformed ring gets the
 * defined outcome — DEVICE_NEEDS_RESET (status bit 64), counters().malformedChains and
 * needsReset +1, one config interrupt (DRIVER_OK is set), no used element for the bad chain,
 * nothing thrown out of notify, guest RAM untouched (outside the used ring), later kicks do
 * nothing — and after device.reset() and re-initialisation by a new driver, normal service
 * (version + attach + getattr) resumes.
 */
import { describe, test, expect } from '@jest/globals';
import {
  Rig, type RigOptions, diffRanges, outside, hex, replyProblem, defaultBackend,
  F_NEXT, F_WRITE, F_INDIRECT, STATUS_NEEDS_RESET, IRQ_CONFIG, IRQ_USED,
} from '../../harness/ring/rig.js';
import { encode, decode, MSG } from '../../src/testing/p9/codec.js';

const U64_MAX = (1n << 64n) - 1n;
const getattr = (tag = 7): Uint8Array => encode(MSG.Tgetattr, tag, [0, 0x7ffn]);
/** Tgetattr is 19 bytes: size[4] type[1] tag[2] fid[4] mask[8] */
const GL = 19;

/** Allocate a guest buffer holding `data` (or `len` bytes of 0xa5); returns its address. */
function buf(rig: Rig, data: Uint8Array | number): number {
  const len = typeof data === 'number' ? data : data.length;
  const a = rig.driver.alloc(Math.max(len, 1), 16);
  if (typeof data === 'number') rig.ram.fill(0xa5, a, a + len);
  else rig.ram.set(data, a);
  return a;
}

/** An indirect table at a fresh 16-aligned address. */
function table(rig: Rig, entries: [addr: number | bigint, len: number, flags: number, next: number][]): number {
  const t = rig.driver.alloc(Math.max(16, 16 * entries.length), 16);
  entries.forEach(([a, l, f, n], i) => rig.writeDescAt(t + 16 * i, a, l, f, n));
  return t;
}

/** Take k ring descriptors. */
function descs(rig: Rig, k: number): number[] {
  return Array.from({ length: k }, () => rig.takeDesc());
}

type Setup = (rig: Rig) => void;

/**
 * The defined outcome for a malformed ring, then reset + re-init + service. `setup` writes
 * the bad ring and publishes; it must not kick.
 */
async function expectMalformed(setup: Setup, opts: RigOptions = {}): Promise<void> {
  const rig = await Rig.create({ debug: true, ...opts });
  await rig.serviceCheck();
  expect(rig.device.needsReset).toBe(false);
  rig.mux.forward = false;
  const c0 = rig.device.counters();
  const irq0 = [...rig.mux.irq];
  const used0 = rig.usedIdx();
  setup(rig);
  const before = rig.ram.slice();

  expect(() => rig.kick()).not.toThrow();

  const c1 = rig.device.counters();
  expect(rig.device.status & STATUS_NEEDS_RESET).toBe(STATUS_NEEDS_RESET);
  expect(rig.device.needsReset).toBe(true);
  expect(c1.malformedChains - c0.malformedChains).toBe(1);
  expect(c1.needsReset - c0.needsReset).toBe(1);
  expect(rig.mux.irq[IRQ_CONFIG] - irq0[IRQ_CONFIG]).toBe(1);
  expect(rig.mux.irq[IRQ_USED]).toBe(irq0[IRQ_USED]);
  // no used element for the bad chain, no request started, nothing written in guest RAM
  expect(rig.usedIdx()).toBe(used0);
  expect(c1.replies).toBe(c0.replies);
  expect(c1.requests).toEqual(c0.requests);
  expect(outside(diffRanges(before, rig.ram), [rig.usedRing])).toEqual([]);
  expect(diffRanges(before, rig.ram)).toEqual([]);

  // The queue is stopped: a good chain and two more kicks do nothing at all.
  const good = rig.buildChain([{ data: getattr(9) }, { write: 4096 }]);
  rig.post(good.head);
  const before2 = rig.ram.slice();
  expect(() => {
    rig.kick();
    rig.kick();
  }).not.toThrow();
  const c2 = rig.device.counters();
  expect(rig.usedIdx()).toBe(used0);
  expect(c2.requests).toEqual(c0.requests);
  expect(c2.malformedChains).toBe(c1.malformedChains);
  expect(c2.needsReset).toBe(c1.needsReset);
  expect(rig.mux.irq).toEqual([irq0[0], irq0[1] + 1]);
  expect(diffRanges(before2, rig.ram)).toEqual([]);

  // reset + re-initialisation by a new driver: normal service resumes
  rig.reinit();
  expect(rig.device.status & STATUS_NEEDS_RESET).toBe(0);
  await rig.serviceCheck();
  rig.serviceCheckSync();
  expect(rig.device.needsReset).toBe(false);
  expect(rig.device.counters().malformedChains).toBe(c1.malformedChains);
}

// ---------------------------------------------------------------- the malformed cases

const cases: [string, Setup, RigOptions?][] = [
  // avail index
  ['avail index ahead by N + 1', (r) => r.driver.setAvailIdx(r.driver.availIdxShadow + r.N + 1)],
  ['avail index ahead by 0xffff (moved backwards by one)', (r) => r.driver.setAvailIdx(r.driver.availIdxShadow - 1)],
  ['avail index ahead by 1025 on a 1024-entry queue', (r) => r.driver.setAvailIdx(r.driver.availIdxShadow + 1025), { queueSize: 1024 }],
  // head
  ['head == N', (r) => r.post(r.N)],
  ['head == 0xffff', (r) => r.post(0xffff)],
  ['head == N + 3', (r) => r.post(r.N + 3)],
  // next
  ['next == N in the ring table', (r) => {
    const [d] = descs(r, 1);
    r.writeDesc(d, buf(r, getattr()), GL, F_NEXT, r.N);
    r.post(d);
  }],
  ['next == 0xffff in the ring table (after a writable descriptor)', (r) => {
    const [d0, d1] = descs(r, 2);
    r.writeDesc(d0, buf(r, getattr()), GL, F_NEXT, d1);
    r.writeDesc(d1, buf(r, 4096), 4096, F_WRITE | F_NEXT, 0xffff);
    r.post(d0);
  }],
  ['next == table length in an indirect table', (r) => {
    const t = table(r, [[buf(r, getattr()), GL, F_NEXT, 2], [buf(r, 4096), 4096, F_WRITE, 0]]);
    const [d] = descs(r, 1);
    r.writeDesc(d, t, 32, F_INDIRECT, 0);
    r.post(d);
  }],
  // cycles
  ['descriptor self-loop', (r) => {
    const [d0, d1] = descs(r, 2);
    r.writeDesc(d0, buf(r, getattr()), GL, F_NEXT, d1);
    r.writeDesc(d1, buf(r, 64), 64, F_WRITE | F_NEXT, d1);
    r.post(d0);
  }],
  ['descriptor cycle of two writable descriptors', (r) => {
    const [d0, d1, d2] = descs(r, 3);
    r.writeDesc(d0, buf(r, getattr()), GL, F_NEXT, d1);
    r.writeDesc(d1, buf(r, 64), 64, F_WRITE | F_NEXT, d2);
    r.writeDesc(d2, buf(r, 64), 64, F_WRITE | F_NEXT, d1);
    r.post(d0);
  }],
  ['descriptor cycle back to the head', (r) => {
    const [d0, d1] = descs(r, 2);
    r.writeDesc(d0, buf(r, getattr()), GL, F_NEXT, d1);
    r.writeDesc(d1, buf(r, 0), 0, F_NEXT, d0);
    r.post(d0);
  }],
  ['descriptor cycle of zero-length descriptors', (r) => {
    const [d0, d1, d2] = descs(r, 3);
    const z = buf(r, 8);
    r.writeDesc(d0, buf(r, getattr()), GL, F_NEXT, d1);
    r.writeDesc(d1, z, 0, F_WRITE | F_NEXT, d2);
    r.writeDesc(d2, z, 0, F_WRITE | F_NEXT, d1);
    r.post(d0);
  }],
  ['descriptor cycle on a 1024-entry queue (segment limit and loop guard meet)', (r) => {
    const [d0, d1] = descs(r, 2);
    r.writeDesc(d0, buf(r, getattr()), GL, F_NEXT, d1);
    r.writeDesc(d1, buf(r, 8), 8, F_WRITE | F_NEXT, d1);
    r.post(d0);
  }, { queueSize: 1024 }],
  ['cycle inside an indirect table', (r) => {
    const t = table(r, [
      [buf(r, getattr()), GL, F_NEXT, 1],
      [buf(r, 64), 64, F_WRITE | F_NEXT, 2],
      [buf(r, 64), 64, F_WRITE | F_NEXT, 1],
    ]);
    const [d] = descs(r, 1);
    r.writeDesc(d, t, 48, F_INDIRECT, 0);
    r.post(d);
  }],
  ['self-loop of zero-length entries inside an indirect table', (r) => {
    const z = buf(r, 8);
    const t = table(r, [[buf(r, getattr()), GL, F_NEXT, 1], [z, 0, F_NEXT, 1]]);
    const [d] = descs(r, 1);
    r.writeDesc(d, t, 32, F_INDIRECT, 0);
    r.post(d);
  }],
  // indirect rules
  ['nested indirect (an INDIRECT entry inside an indirect table)', (r) => {
    const inner = table(r, [[buf(r, getattr()), GL, F_NEXT, 1], [buf(r, 4096), 4096, F_WRITE, 0]]);
    const outer = table(r, [[inner, 32, F_INDIRECT, 0]]);
    const [d] = descs(r, 1);
    r.writeDesc(d, outer, 16, F_INDIRECT, 0);
    r.post(d);
  }],
  ['nested indirect after a readable entry', (r) => {
    const inner = table(r, [[buf(r, 4096), 4096, F_WRITE, 0]]);
    const outer = table(r, [[buf(r, getattr()), GL, F_NEXT, 1], [inner, 16, F_INDIRECT, 0]]);
    const [d] = descs(r, 1);
    r.writeDesc(d, outer, 32, F_INDIRECT, 0);
    r.post(d);
  }],
  ['INDIRECT together with NEXT', (r) => {
    const t = table(r, [[buf(r, getattr()), GL, F_NEXT, 1], [buf(r, 4096), 4096, F_WRITE, 0]]);
    const [d0, d1] = descs(r, 2);
    r.writeDesc(d0, t, 32, F_INDIRECT | F_NEXT, d1);
    r.writeDesc(d1, buf(r, 64), 64, F_WRITE, 0);
    r.post(d0);
  }],
  ['indirect table len 0', (r) => {
    const t = table(r, [[buf(r, getattr()), GL, F_NEXT, 1], [buf(r, 4096), 4096, F_WRITE, 0]]);
    const [d] = descs(r, 1);
    r.writeDesc(d, t, 0, F_INDIRECT, 0);
    r.post(d);
  }],
  ['indirect table len 24 (not a multiple of 16)', (r) => {
    const t = table(r, [[buf(r, getattr()), GL, F_NEXT, 1], [buf(r, 4096), 4096, F_WRITE, 0]]);
    const [d] = descs(r, 1);
    r.writeDesc(d, t, 24, F_INDIRECT, 0);
    r.post(d);
  }],
  ['indirect table len 8', (r) => {
    const t = table(r, [[buf(r, getattr()), GL, F_NEXT, 1], [buf(r, 4096), 4096, F_WRITE, 0]]);
    const [d] = descs(r, 1);
    r.writeDesc(d, t, 8, F_INDIRECT, 0);
    r.post(d);
  }],
  ['indirect descriptor when INDIRECT_DESC was not negotiated', (r) => {
    expect(r.driver.indirect).toBe(false);
    const t = table(r, [[buf(r, getattr()), GL, F_NEXT, 1], [buf(r, 4096), 4096, F_WRITE, 0]]);
    const [d] = descs(r, 1);
    r.writeDesc(d, t, 32, F_INDIRECT, 0);
    r.post(d);
  }, { indirect: false }],
  // ordering
  ['readable descriptor after a writable one', (r) => {
    const [d0, d1] = descs(r, 2);
    r.writeDesc(d0, buf(r, 4096), 4096, F_WRITE | F_NEXT, d1);
    r.writeDesc(d1, buf(r, getattr()), GL, 0, 0);
    r.post(d0);
  }],
  ['readable, writable, readable', (r) => {
    const m = getattr();
    const [d0, d1, d2] = descs(r, 3);
    r.writeDesc(d0, buf(r, m.subarray(0, 7)), 7, F_NEXT, d1);
    r.writeDesc(d1, buf(r, 4096), 4096, F_WRITE | F_NEXT, d2);
    r.writeDesc(d2, buf(r, m.subarray(7)), GL - 7, 0, 0);
    r.post(d0);
  }],
  ['readable after writable inside an indirect table', (r) => {
    const m = getattr();
    const t = table(r, [
      [buf(r, m.subarray(0, 9)), 9, F_NEXT, 1],
      [buf(r, 64), 64, F_WRITE | F_NEXT, 2],
      [buf(r, m.subarray(9)), GL - 9, F_NEXT, 3],
      [buf(r, 4096), 4096, F_WRITE, 0],
    ]);
    const [d] = descs(r, 1);
    r.writeDesc(d, t, 64, F_INDIRECT, 0);
    r.post(d);
  }],
  // guest RAM bounds
  ...(
    [
      ['readable at ramSize − 8, len 16', (r: Rig) => [[r.ramSize - 8, 16, 0], [buf(r, 4096), 4096, F_WRITE]]],
      ['writable at ramSize − 8, len 16', (r: Rig) => [[buf(r, getattr()), GL, 0], [r.ramSize - 8, 16, F_WRITE]]],
      ['readable at ramSize, len 1', (r: Rig) => [[r.ramSize, 1, 0], [buf(r, 4096), 4096, F_WRITE]]],
      ['writable at ramSize − 1, len 2', (r: Rig) => [[buf(r, getattr()), GL, 0], [r.ramSize - 1, 2, F_WRITE]]],
      ['readable at 2^64 − 8, len 16 (u64 wrap)', (r: Rig) => [[U64_MAX - 7n, 16, 0], [buf(r, 4096), 4096, F_WRITE]]],
      ['writable at 2^64 − 8, len 16 (u64 wrap)', (r: Rig) => [[buf(r, getattr()), GL, 0], [U64_MAX - 7n, 16, F_WRITE]]],
      ['writable at 2^64 − 1, len 4096 (u64 wrap)', (r: Rig) => [[buf(r, getattr()), GL, 0], [U64_MAX, 4096, F_WRITE]]],
      ['writable at 2^32 + a valid address (no 32-bit truncation)', (r: Rig) => [[buf(r, getattr()), GL, 0], [(1n << 32n) + BigInt(buf(r, 4096)), 4096, F_WRITE]]],
      ['readable at 2^32 + a valid address (no 32-bit truncation)', (r: Rig) => [[(1n << 32n) + BigInt(buf(r, getattr())), GL, 0], [buf(r, 4096), 4096, F_WRITE]]],
      ['writable at 0, len 0xffffffff', (r: Rig) => [[buf(r, getattr()), GL, 0], [0, 0xffffffff, F_WRITE]]],
      ['writable len larger than RAM by one byte', (r: Rig) => [[buf(r, getattr()), GL, 0], [0, r.ramSize + 1, F_WRITE]]],
    ] as [string, (r: Rig) => [number | bigint, number, number][]][]
  ).flatMap(([name, segs]): [string, Setup][] => [
    [`${name} (direct)`, (r) => {
      const s = segs(r);
      const ds = descs(r, s.length);
      s.forEach(([a, l, f], i) => r.writeDesc(ds[i], a, l, f | (i < s.length - 1 ? F_NEXT : 0), ds[i + 1] ?? 0));
      r.post(ds[0]);
    }],
    [`${name} (inside an indirect table)`, (r) => {
      const s = segs(r);
      const t = table(r, s.map(([a, l, f], i) => [a, l, f | (i < s.length - 1 ? F_NEXT : 0), i + 1]));
      const [d] = descs(r, 1);
      r.writeDesc(d, t, 16 * s.length, F_INDIRECT, 0);
      r.post(d);
    }],
  ]),
  ['indirect table at ramSize − 8, len 16', (r) => {
    const [d] = descs(r, 1);
    r.writeDesc(d, r.ramSize - 8, 16, F_INDIRECT, 0);
    r.post(d);
  }],
  ['indirect table at 2^64 − 8, len 16 (u64 wrap)', (r) => {
    const [d] = descs(r, 1);
    r.writeDesc(d, U64_MAX - 7n, 16, F_INDIRECT, 0);
    r.post(d);
  }],
  ['indirect table at 2^32 + a valid table (no 32-bit truncation)', (r) => {
    const t = table(r, [[buf(r, getattr()), GL, F_NEXT, 1], [buf(r, 4096), 4096, F_WRITE, 0]]);
    const [d] = descs(r, 1);
    r.writeDesc(d, (1n << 32n) + BigInt(t), 32, F_INDIRECT, 0);
    r.post(d);
  }],
  ['indirect table len 0xfffffff0 (past RAM)', (r) => {
    const t = table(r, [[buf(r, getattr()), GL, F_NEXT, 1], [buf(r, 4096), 4096, F_WRITE, 0]]);
    const [d] = descs(r, 1);
    r.writeDesc(d, t, 0xfffffff0, F_INDIRECT, 0);
    r.post(d);
  }],
  // segment limit
  ['1025 segments in an indirect chain (19 readable + 1006 writable)', (r) => {
    const m = getattr();
    const entries: [number, number, number, number][] = [];
    for (let i = 0; i < GL; i++) entries.push([buf(r, m.subarray(i, i + 1)), 1, F_NEXT, entries.length + 1]);
    for (let i = 0; i < 1006; i++) entries.push([buf(r, 8), 8, F_WRITE | F_NEXT, entries.length + 1]);
    entries[entries.length - 1][2] = F_WRITE;
    const t = table(r, entries);
    const [d] = descs(r, 1);
    r.writeDesc(d, t, 16 * entries.length, F_INDIRECT, 0);
    r.post(d);
  }],
  ['1025 segments across a direct part and an indirect table (2 direct readable + 1023 writable entries)', (r) => {
    const m = getattr();
    const [d0, d1] = descs(r, 2);
    r.writeDesc(d0, buf(r, m.subarray(0, 4)), 4, F_NEXT, d1);
    r.writeDesc(d1, buf(r, m.subarray(4)), GL - 4, F_NEXT, 0);
    const entries: [number, number, number, number][] = [];
    for (let i = 0; i < 1023; i++) entries.push([buf(r, 8), 8, F_WRITE | F_NEXT, i + 1]);
    entries[1022][2] = F_WRITE;
    const [di] = descs(r, 1);
    r.writeDesc(d1, buf(r, m.subarray(4)), GL - 4, F_NEXT, di);
    r.writeDesc(di, table(r, entries), 16 * 1023, F_INDIRECT, 0);
    r.post(d0);
  }],
  // no room for a request or a reply
  ['readable part of 6 bytes', (r) => {
    const [d0, d1] = descs(r, 2);
    r.writeDesc(d0, buf(r, getattr().subarray(0, 6)), 6, F_NEXT, d1);
    r.writeDesc(d1, buf(r, 4096), 4096, F_WRITE, 0);
    r.post(d0);
  }],
  ['readable part of 6 bytes in three descriptors', (r) => {
    const m = getattr();
    const [d0, d1, d2, d3] = descs(r, 4);
    r.writeDesc(d0, buf(r, m.subarray(0, 2)), 2, F_NEXT, d1);
    r.writeDesc(d1, buf(r, m.subarray(2, 4)), 2, F_NEXT, d2);
    r.writeDesc(d2, buf(r, m.subarray(4, 6)), 2, F_NEXT, d3);
    r.writeDesc(d3, buf(r, 4096), 4096, F_WRITE, 0);
    r.post(d0);
  }],
  ['no readable part (writable only)', (r) => {
    const [d] = descs(r, 1);
    r.writeDesc(d, buf(r, 4096), 4096, F_WRITE, 0);
    r.post(d);
  }],
  ['readable part of zero-length descriptors only', (r) => {
    const [d0, d1] = descs(r, 2);
    r.writeDesc(d0, buf(r, getattr()), 0, F_NEXT, d1);
    r.writeDesc(d1, buf(r, 4096), 4096, F_WRITE, 0);
    r.post(d0);
  }],
  ['writable part of 6 bytes', (r) => {
    const [d0, d1] = descs(r, 2);
    r.writeDesc(d0, buf(r, getattr()), GL, F_NEXT, d1);
    r.writeDesc(d1, buf(r, 6), 6, F_WRITE, 0);
    r.post(d0);
  }],
  ['writable part of 6 bytes in two descriptors (indirect)', (r) => {
    const t = table(r, [[buf(r, getattr()), GL, F_NEXT, 1], [buf(r, 3), 3, F_WRITE | F_NEXT, 2], [buf(r, 3), 3, F_WRITE, 0]]);
    const [d] = descs(r, 1);
    r.writeDesc(d, t, 48, F_INDIRECT, 0);
    r.post(d);
  }],
  ['no writable part (readable only)', (r) => {
    const [d] = descs(r, 1);
    r.writeDesc(d, buf(r, getattr()), GL, 0, 0);
    r.post(d);
  }],
];

describe('malformed rings → DEVICE_NEEDS_RESET, then reset + re-init serves again', () => {
  test.each(cases.map(([n, s, o]) => [n, s, o] as const))('%s', async (_name, setup, opts) => {
    await expectMalformed(setup, opts ?? {});
  });

  test('the same outcome without EVENT_IDX and without INDIRECT_DESC negotiated', async () => {
    await expectMalformed((r) => r.post(r.N), { eventIdx: false, indirect: false });
  });

  test('chains before the bad one in the same batch are answered and published; the bad one and later ones are not', async () => {
    const rig = await Rig.create({ debug: true });
    await rig.serviceCheck();
    rig.mux.forward = false;
    const used0 = rig.usedIdx();
    const irq0 = [...rig.mux.irq];
    const c0 = rig.device.counters();
    const g1 = rig.buildChain([{ data: getattr(11) }, { write: 4096 }]);
    const g2 = rig.buildChain([{ data: getattr(12) }, { write: 4096 }], { indirect: true });
    const after = rig.buildChain([{ data: getattr(13) }, { write: 4096 }]);
    rig.post(g1.head);
    rig.post(g2.head);
    rig.post(rig.N); // bad head
    rig.post(after.head);
    rig.usedEvent = used0; // EVENT_IDX: interrupt when the first one is used
    expect(() => rig.kick()).not.toThrow();
    expect(rig.device.needsReset).toBe(true);
    const used = rig.usedSince(used0);
    expect(used.map((u) => u.id)).toEqual([g1.head, g2.head]);
    for (const [u, c, tag] of [[used[0], g1, 11], [used[1], g2, 12]] as const) {
      const reply = rig.gatherWritable(c, u.len);
      expect(replyProblem(getattr(tag), u.len, 4096, reply)).toBeNull();
      expect(decode(reply).type).toBe(MSG.Rgetattr);
    }
    expect(rig.gatherWritable(after, 16)).toEqual(new Uint8Array(16).fill(0xa5));
    expect(rig.device.counters().malformedChains - c0.malformedChains).toBe(1);
    expect(rig.mux.irq[IRQ_CONFIG] - irq0[IRQ_CONFIG]).toBe(1);
    expect(rig.mux.irq[IRQ_USED] - irq0[IRQ_USED]).toBe(1);
    rig.reinit();
    await rig.serviceCheck();
  });

  test('re-initialisation may change the negotiated features (indirect off, EVENT_IDX off)', async () => {
    const rig = await Rig.create({ debug: true });
    await rig.serviceCheck();
    rig.post(0xffff);
    rig.kick();
    expect(rig.device.needsReset).toBe(true);
    rig.reinit({ indirect: false, eventIdx: false, queueSize: 16 });
    await rig.serviceCheck();
    expect(rig.device.needsReset).toBe(false);
    // and an indirect descriptor is now malformed
    const t = rig.driver.alloc(32, 16);
    rig.writeDescAt(t, buf(rig, getattr()), GL, F_NEXT, 1);
    rig.writeDescAt(t + 16, buf(rig, 4096), 4096, F_WRITE, 0);
    const d = rig.takeDesc();
    rig.writeDesc(d, t, 32, F_INDIRECT, 0);
    rig.post(d);
    rig.kick();
    expect(rig.device.needsReset).toBe(true);
  });

  /** Three Tgetattr chains held by an asynchronous backend, then reset + re-init; returns a
   *  function that lets the held backend calls finish. */
  async function resetWithInflight(): Promise<{ rig: Rig; release: () => Promise<void>; old: ReturnType<Rig['buildChain']>[] }> {
    const inner = defaultBackend();
    const held: (() => void)[] = [];
    let hold = false;
    const backend = new Proxy(inner, {
      get(t, p, r) {
        const v = Reflect.get(t, p, r);
        if (typeof v !== 'function') return v;
        if (p !== 'getattr') return v.bind(t);
        return (...args: unknown[]) => {
          if (!hold) return v.apply(t, args);
          return new Promise((res) => held.push(() => res(v.apply(t, args))));
        };
      },
    }) as typeof inner;
    const rig = await Rig.create({ debug: true, backend });
    await rig.serviceCheck();
    rig.mux.forward = false;
    hold = true;
    const old = [0, 1, 2].map((i) => rig.buildChain([{ data: getattr(40 + i) }, { write: 4096 }]));
    for (const c of old) rig.post(c.head);
    rig.kick();
    expect(held.length).toBe(3);
    expect(rig.device.counters().inflight).toBe(3);
    hold = false;
    // The driver writes 0; the reset completes when the in-flight requests have drained
    // (VIRTIO 1.2 §4.1.4.3.2: the driver waits for status to read 0 before re-initialising).
    rig.device.reset();
    expect(rig.device.status).not.toBe(0);
    expect(rig.device.setDriverFeatures(rig.device.deviceFeatures & ((1n << 32n) | 1n))).toBe(false);
    return {
      rig,
      old,
      release: async () => {
        for (const f of held) f();
        await new Promise((r) => setImmediate(r));
        expect(rig.device.status).toBe(0);
        expect(rig.device.counters().inflight).toBe(0);
      },
    };
  }

  test('reset with requests in flight: late completions publish nothing into the re-initialised rings; service resumes', async () => {
    const { rig, release } = await resetWithInflight();
    rig.mux.forward = false;
    const irq0 = [...rig.mux.irq];
    const used0 = rig.usedIdx();
    const [r0, r1] = rig.usedRing;
    const ringBefore = rig.ram.slice(rig.driver.descAddr, r1);
    await release();
    expect(rig.usedIdx()).toBe(used0);
    expect(hex(rig.ram.subarray(rig.driver.descAddr, r1))).toBe(hex(ringBefore));
    expect(r0).toBeGreaterThan(rig.driver.descAddr);
    expect(rig.mux.irq).toEqual(irq0);
    rig.attachDriver();
    await rig.serviceCheck();
    rig.serviceCheckSync();
  });

  test('reset with requests in flight: their late completions write nothing into guest memory', async () => {
    const { rig, release, old } = await resetWithInflight();
    const before = rig.ram.slice();
    await release();
    // After reset the driver owns all of guest RAM again (Linux frees these buffers); the
    // reference (§1.5: "virtio reset destroys all fids and pending requests") leaves no reply
    // for them to receive. Any bytes written here land in memory the guest may have reused.
    const written = diffRanges(before, rig.ram).map(([s, e]) => `${s}..${e}: ${hex(rig.ram.subarray(s, e))}`);
    expect(old.map((c) => c.writable[0].addr)).toHaveLength(3);
    expect(written).toEqual([]);
  });

  test('a reset without re-initialisation leaves the queue dead (kicks do nothing, nothing thrown)', async () => {
    const rig = await Rig.create({ debug: true });
    await rig.serviceCheck();
    rig.device.reset();
    const used0 = rig.usedIdx();
    const c = rig.buildChain([{ data: getattr() }, { write: 4096 }]);
    rig.post(c.head);
    expect(() => rig.kick()).not.toThrow();
    expect(rig.usedIdx()).toBe(used0);
    expect(rig.device.status).toBe(0);
  });
});

// ---------------------------------------------------------------- legal edge cases

describe('legal edge cases are served', () => {
  /** Send one request over a hand-made chain and return (used.len, reply bytes). */
  function sendChain(rig: Rig, build: () => { head: number; readWrite: () => Uint8Array }): { len: number; reply: Uint8Array } {
    const used0 = rig.usedIdx();
    const c = build();
    rig.post(c.head);
    rig.kick();
    expect(rig.device.needsReset).toBe(false);
    const used = rig.usedSince(used0);
    rig.sync();
    expect(used.map((u) => u.id)).toEqual([c.head]);
    return { len: used[0].len, reply: c.readWrite().subarray(0, used[0].len) };
  }

  test('zero-length descriptors inside a chain are skipped (direct and indirect)', async () => {
    const rig = await Rig.create({ debug: true });
    await rig.serviceCheck();
    rig.mux.forward = false;
    const m = getattr(21);
    const plain = rig.rawRpc(m, 4096);
    for (const indirect of [false, true]) {
      const r = rig.rawRpc(m, 4096, {
        indirect,
        out: [new Uint8Array(0), m.subarray(0, 3), new Uint8Array(0), new Uint8Array(0), m.subarray(3), new Uint8Array(0)],
        inLens: [0, 5, 0, 100, 0, 3991, 0],
      });
      expect(hex(r.bytes)).toBe(hex(plain.bytes));
      expect(r.len).toBe(plain.len);
    }
  });

  test('exactly 1024 segments (19 readable + 1005 writable) are served', async () => {
    const rig = await Rig.create({ debug: true, ramSize: 4 << 20 });
    await rig.serviceCheck();
    const m = getattr(22);
    const plain = rig.rawRpc(m, 1005 * 8);
    const r = rig.rawRpc(m, 0, {
      indirect: true,
      out: Array.from({ length: GL }, (_, i) => m.subarray(i, i + 1)),
      inLens: Array.from({ length: 1005 }, () => 8),
    });
    expect(plain.len).toBeGreaterThan(11);
    expect(hex(r.bytes)).toBe(hex(plain.bytes));
    expect(rig.device.counters().malformedChains).toBe(0);
  });

  test('direct descriptors followed by an indirect descriptor', async () => {
    const rig = await Rig.create({ debug: true });
    await rig.serviceCheck();
    const m = getattr(23);
    const plain = rig.rawRpc(m, 4096);
    const { len, reply } = sendChain(rig, () => {
      const [d0, d1] = descs(rig, 2);
      const w = buf(rig, 4096);
      const t = table(rig, [[buf(rig, m.subarray(5)), GL - 5, F_NEXT, 1], [w, 4096, F_WRITE, 0]]);
      rig.writeDesc(d0, buf(rig, m.subarray(0, 5)), 5, F_NEXT, d1);
      rig.writeDesc(d1, t, 32, F_INDIRECT, 0);
      return { head: d0, readWrite: () => rig.ram.slice(w, w + 4096) };
    });
    expect(len).toBe(plain.len);
    expect(hex(reply)).toBe(hex(plain.bytes));
  });

  test('the WRITE flag on the descriptor that points to an indirect table is ignored', async () => {
    const rig = await Rig.create({ debug: true });
    await rig.serviceCheck();
    const m = getattr(24);
    const plain = rig.rawRpc(m, 4096);
    const { len, reply } = sendChain(rig, () => {
      const [d0] = descs(rig, 1);
      const w = buf(rig, 4096);
      const t = table(rig, [[buf(rig, m), GL, F_NEXT, 1], [w, 4096, F_WRITE, 0]]);
      rig.writeDesc(d0, t, 32, F_INDIRECT | F_WRITE, 0);
      return { head: d0, readWrite: () => rig.ram.slice(w, w + 4096) };
    });
    expect(len).toBe(plain.len);
    expect(hex(reply)).toBe(hex(plain.bytes));
  });

  test('a writable buffer ending exactly at the end of guest RAM', async () => {
    const rig = await Rig.create({ debug: true });
    await rig.serviceCheck();
    const m = encode(MSG.Tgetattr, 25, [0x7777, 0x7ffn]); // unknown fid → Rlerror (11 bytes)
    const before = rig.ram.slice();
    const { len, reply } = sendChain(rig, () => {
      const [d0, d1] = descs(rig, 2);
      rig.writeDesc(d0, buf(rig, m), m.length, F_NEXT, d1);
      rig.writeDesc(d1, rig.ramSize - 16, 16, F_WRITE, 0);
      return { head: d0, readWrite: () => rig.ram.slice(rig.ramSize - 16) };
    });
    expect(len).toBe(11);
    expect(decode(reply).type).toBe(MSG.Rlerror);
    expect(decode(reply).tag).toBe(25);
    expect(rig.ram.subarray(rig.ramSize - 5)).toEqual(before.subarray(rig.ramSize - 5));
  });

  test('a readable buffer ending exactly at the end of guest RAM', async () => {
    const rig = await Rig.create({ debug: true });
    await rig.serviceCheck();
    const m = getattr(26);
    const plain = rig.rawRpc(m, 4096);
    rig.ram.set(m, rig.ramSize - m.length);
    const { len, reply } = sendChain(rig, () => {
      const [d0, d1] = descs(rig, 2);
      const w = buf(rig, 4096);
      rig.writeDesc(d0, rig.ramSize - m.length, m.length, F_NEXT, d1);
      rig.writeDesc(d1, w, 4096, F_WRITE, 0);
      return { head: d0, readWrite: () => rig.ram.slice(w, w + 4096) };
    });
    expect(len).toBe(plain.len);
    expect(hex(reply)).toBe(hex(plain.bytes));
  });

  test('an avail index exactly N ahead (a full ring) is served', async () => {
    const rig = await Rig.create({ debug: true, queueSize: 8, indirect: true });
    await rig.serviceCheck();
    rig.mux.forward = false;
    const used0 = rig.usedIdx();
    const chains = Array.from({ length: 8 }, (_, i) => rig.buildChain([{ data: getattr(100 + i) }, { write: 512 }], { indirect: true }));
    for (const c of chains) rig.post(c.head);
    rig.kick();
    expect(rig.device.needsReset).toBe(false);
    const used = rig.usedSince(used0);
    expect(used.map((u) => u.id).sort()).toEqual(chains.map((c) => c.head).sort());
    chains.forEach((c, i) => {
      const u = used.find((x) => x.id === c.head)!;
      expect(replyProblem(getattr(100 + i), u.len, 512, rig.gatherWritable(c, u.len))).toBeNull();
    });
  });

  test('a writable part of 7..10 bytes: completed with used.len 0 when even Rlerror does not fit', async () => {
    const rig = await Rig.create({ debug: true });
    await rig.serviceCheck();
    for (const cap of [7, 8, 10]) {
      const r = rig.rawRpc(getattr(27), cap);
      expect(r.len).toBe(0);
    }
    const r = rig.rawRpc(getattr(28), 11); // Rgetattr does not fit; Rlerror(EMSGSIZE) does
    expect(r.len).toBe(11);
    expect(decode(r.bytes)).toMatchObject({ type: MSG.Rlerror, tag: 28, fields: [90] });
    expect(rig.device.needsReset).toBe(false);
  });
});
