/**
 * Time-boxed property tests of the ring + 9P core (fast-check, fixed seeds, logged):
 *
 *  (a) random byte strings and mutated golden T-messages, sent as well-formed chains in
 *      random batches and layouts: notify never throws, every chain gets exactly one used
 *      element, used.len is 0 or the reply's size field, the reply is T+1 or Rlerror for the
 *      same tag and fits the writable buffer, nothing outside the writable buffers and the used
 *      ring changes, the device stays healthy (a final version/attach/getattr works);
 *  (b) random descriptor tables, avail indices and indirect tables (addresses at and past the
 *      RAM edge, u64 wrap, loops, bad flags): notify never throws, the outcome agrees with a
 *      reference walker of the §2.4 rules (answered chains / DEVICE_NEEDS_RESET), nothing
 *      outside the answered chains' writable buffers and the used ring changes, and after
 *      reset + re-init the device serves again;
 *  (c) split invariance: a T-message split across many descriptors at random points (inside
 *      the header, inside strings, with zero-length descriptors, direct or indirect), and a
 *      reply buffer split the same way, gives the byte-identical reply of the unsplit chain.
 *
 * Seeds: FUZZ_SEED=<n> overrides the base seed; each property logs the seed it ran with, its
 * runs and executions per second. REGRESSION_SEEDS are re-run first with a fixed numRuns.
 */
import { describe, test, expect, beforeAll } from '@jest/globals';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import {
  Rig, type HandChain, type SegSpec, diffRanges, outside, hex, replyProblem, type Range,
  F_NEXT, F_WRITE, F_INDIRECT, STATUS_NEEDS_RESET, IRQ_CONFIG,
} from '../../harness/ring/rig.js';
import { encode, fromHex, MSG } from '../../src/testing/p9/codec.js';
import { preludeMessages, T_TYPES } from '../../harness/fuzz/messages.js';
import {
  answeredReply, refWalk, type Walk, RING_MSGS as HARNESS_RING_MSGS, RAM as RAM_B, MSG_BASE, DATA_BASE, TABLE_BASE, TABLE_STRIDE, U64,
} from '../../harness/fuzz/rings.js';

// ---------------------------------------------------------------- seeds and budgets

const BASE_SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : 0x2f9e_51d3;
/** seeds that found something once (or that we want pinned): re-run every time */
const REGRESSION_SEEDS: Record<'a' | 'b' | 'c', number[]> = {
  a: [0x2f9e51d3, 1, 424242],
  b: [0x2f9e51d4, 7, 20240611, 13],
  c: [0x2f9e51d5, 99, 31337],
};
const TIME_LIMIT_MS = Number(process.env.FUZZ_MS ?? 4000);
/** what the generators actually exercised (logged with the exec rate) */
const stats: Record<string, number> = {};
const bump = (k: string, n = 1): void => {
  stats[k] = (stats[k] ?? 0) + n;
};
const REGRESSION_RUNS = 60;

function runProperty<T>(name: string, seed: number, arb: fc.Arbitrary<T>, body: (v: T) => void, numRuns?: number): void {
  let runs = 0;
  for (const k of Object.keys(stats)) delete stats[k];
  const t0 = performance.now();
  const prop = fc.property(arb, (v) => {
    runs++;
    body(v);
  });
  try {
    fc.assert(prop, numRuns !== undefined
      ? { seed, numRuns }
      : { seed, numRuns: 100000, interruptAfterTimeLimit: TIME_LIMIT_MS });
  } finally {
    const dt = (performance.now() - t0) / 1000;
    // eslint-disable-next-line no-console
    console.log(`[fuzz ${name}] seed=${seed} runs=${runs} (incl. shrinking) in ${dt.toFixed(2)} s → ${(runs / dt).toFixed(0)} exec/s ${JSON.stringify(stats)}`);
  }
}

// ---------------------------------------------------------------- golden T-messages

interface Vector { name: string; type: number; tag: number; hex: string }
const VECTORS: Vector[] = JSON.parse(readFileSync(new URL('../golden/9p-vectors.json', import.meta.url), 'utf8')).filter((v: Vector) => v.name);
const T_VECTORS = VECTORS.filter((v) => v.name.startsWith('T')).map((v) => fromHex(v.hex));

const setSize = (m: Uint8Array): Uint8Array => {
  new DataView(m.buffer, m.byteOffset, m.byteLength).setUint32(0, m.length, true);
  return m;
};

type Mutation =
  | { op: 'flip'; pos: number; bit: number }
  | { op: 'set'; pos: number; val: number }
  | { op: 'insert'; pos: number; bytes: Uint8Array }
  | { op: 'delete'; pos: number; n: number }
  | { op: 'u16'; pos: number; val: number }
  | { op: 'u32'; pos: number; val: number }
  | { op: 'truncate'; n: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), pos: fc.nat(), val: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('insert' as const), pos: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), pos: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('u16' as const), pos: fc.nat(), val: fc.constantFrom(0, 1, 0x7fff, 0x8000, 0xffff, 300) }),
  fc.record({ op: fc.constant('u32' as const), pos: fc.nat(), val: fc.constantFrom(0, 1, 7, 0x7fffffff, 0x80000000, 0xffffffff, 4096, 65536) }),
  fc.record({ op: fc.constant('truncate' as const), n: fc.integer({ min: 1, max: 16 }) }),
);

function mutate(base: Uint8Array, muts: Mutation[], fix: boolean): Uint8Array {
  let m = Array.from(base);
  for (const x of muts) {
    const p = m.length ? x.op === 'truncate' ? 0 : x.pos % m.length : 0;
    switch (x.op) {
      case 'flip': if (m.length) m[p] ^= 1 << x.bit; break;
      case 'set': if (m.length) m[p] = x.val; break;
      case 'insert': m.splice(p, 0, ...x.bytes); break;
      case 'delete': m.splice(p, x.n); break;
      case 'u16': for (let i = 0; i < 2 && p + i < m.length; i++) m[p + i] = (x.val >> (8 * i)) & 0xff; break;
      case 'u32': for (let i = 0; i < 4 && p + i < m.length; i++) m[p + i] = (x.val >>> (8 * i)) & 0xff; break;
      case 'truncate': m = m.slice(0, Math.max(0, m.length - x.n)); break;
    }
  }
  while (m.length < 7) m.push(0); // a well-formed chain: the readable part holds a header
  const out = Uint8Array.from(m);
  return fix ? setSize(out) : out;
}

const mutatedArb = fc
  .record({ base: fc.constantFrom(...T_VECTORS), muts: fc.array(mutationArb, { maxLength: 4 }), fix: fc.boolean() })
  .map(({ base, muts, fix }) => mutate(base, muts, fix));

const randomMsgArb = fc
  .record({
    type: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...T_TYPES) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
    tag: fc.integer({ min: 0, max: 0xffff }),
    body: fc.oneof({ weight: 8, arbitrary: fc.uint8Array({ maxLength: 120 }) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 8150, maxLength: 8300 }) }),
    size: fc.oneof({ weight: 3, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.nat({ max: 0xffffffff }) }),
  })
  .map(({ type, tag, body, size }) => {
    const m = new Uint8Array(7 + body.length);
    m.set(body, 7);
    m[4] = type;
    m[5] = tag & 0xff;
    m[6] = tag >> 8;
    new DataView(m.buffer).setUint32(0, size < 0 ? m.length : size, true);
    return m;
  });

/** cut positions → segments of `len` bytes (sorted, unique, inside (0, len)) */
function cuts(len: number, pts: number[]): number[] {
  const s = new Set<number>();
  for (const p of pts) if (len > 1) s.add(1 + (p % (len - 1)));
  return [...s].sort((a, b) => a - b);
}
function pieces<T extends { subarray(a: number, b?: number): T; length: number }>(m: T, pts: number[]): T[] {
  const out: T[] = [];
  let p = 0;
  for (const q of [...cuts(m.length, pts), m.length]) {
    out.push(m.subarray(p, q));
    p = q;
  }
  return out;
}
function lens(total: number, pts: number[]): number[] {
  const out: number[] = [];
  let p = 0;
  for (const q of [...cuts(total, pts), total]) {
    out.push(q - p);
    p = q;
  }
  return out;
}

interface Layout {
  rcuts: number[];
  wcuts: number[];
  zeros: number[];
  indirect: boolean;
}
const cutArb = fc.oneof(fc.integer({ min: 1, max: 8 }), fc.nat());
const layoutArb: fc.Arbitrary<Layout> = fc.record({
  rcuts: fc.array(cutArb, { maxLength: 12 }),
  wcuts: fc.array(cutArb, { maxLength: 6 }),
  zeros: fc.array(fc.nat(), { maxLength: 3 }),
  indirect: fc.boolean(),
});

/** The chain specs of a layout: readable pieces, writable pieces, zero-length descriptors inserted. */
function specsOf(msg: Uint8Array, cap: number, l: Layout): SegSpec[] {
  const r: SegSpec[] = pieces(msg, l.rcuts).map((data) => ({ data }));
  const w: SegSpec[] = lens(cap, l.wcuts).map((n) => ({ write: n }));
  for (const z of l.zeros) {
    const where = z % (r.length + w.length + 1);
    if (where <= r.length) r.splice(where, 0, { zero: 'r' });
    else w.splice(where - r.length - 1, 0, { zero: 'w' });
  }
  return [...r, ...w];
}

// ================================================================ (a) messages

describe('(a) random and mutated messages on well-formed chains', () => {
  let rig: Rig;
  beforeAll(async () => {
    rig = await Rig.create({ ramSize: 1 << 20, queueSize: 256 });
    await rig.serviceCheck();
    rig.sync();
  });

  const itemArb = fc.record({
    msg: fc.oneof(mutatedArb, randomMsgArb),
    cap: fc.oneof({ weight: 1, arbitrary: fc.integer({ min: 7, max: 16 }) }, { weight: 3, arbitrary: fc.integer({ min: 7, max: 9000 }) }),
    layout: layoutArb,
  });
  const batchArb = fc.record({ prelude: fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }), items: fc.array(itemArb, { minLength: 1, maxLength: 6 }) });

  /** A session like the golden vectors assume: fids 0..5 in use (root, dirs, open files). */
  function prelude(): void {
    for (const m of preludeMessages()) rig.rawRpc(m, 4096);
  }

  function body({ prelude: pre, items: batch }: { prelude: boolean; items: { msg: Uint8Array; cap: number; layout: Layout }[] }): void {
    rig.mux.forward = false;
    if (pre) prelude();
    const used0 = rig.usedIdx();
    const c0 = rig.device.counters();
    const chains: HandChain[] = batch.map((it) => rig.buildChain(specsOf(it.msg, it.cap, it.layout), { indirect: it.layout.indirect }));
    try {
      for (const c of chains) rig.post(c.head);
      const before = rig.ram.slice();
      try {
        rig.kick();
      } catch (e) {
        throw new Error(`notify threw: ${(e as Error).message}`);
      }
      expect(rig.device.status & STATUS_NEEDS_RESET).toBe(0);
      expect(rig.device.counters().malformedChains).toBe(c0.malformedChains);
      const used = rig.usedSince(used0);
      expect(used.map((u) => u.id).sort((a, b) => a - b)).toEqual(chains.map((c) => c.head).sort((a, b) => a - b));
      chains.forEach((c, i) => {
        const u = used.find((x) => x.id === c.head)!;
        const reply = rig.gatherWritable(c, u.len);
        bump('chains');
        bump(u.len === 0 ? 'len0' : reply[4] === 7 ? 'Rlerror' : 'R');
        const p = replyProblem(batch[i].msg, u.len, batch[i].cap, reply);
        if (p) throw new Error(`${p}\n  T=${hex(batch[i].msg)}\n  cap=${batch[i].cap} reply=${hex(reply)}`);
      });
      const allowed: Range[] = [rig.usedRing, ...chains.flatMap((c) => c.writable.map((w): Range => [w.addr, w.addr + w.len]))];
      expect(outside(diffRanges(before, rig.ram), allowed)).toEqual([]);
    } finally {
      rig.sync();
      for (const c of chains) rig.release(c);
    }
  }

  test('regression seeds', () => {
    for (const seed of REGRESSION_SEEDS.a) runProperty('a/regression', seed, batchArb, body, REGRESSION_RUNS);
    rig.serviceCheckSync();
  });

  test('time-boxed', async () => {
    runProperty('a', BASE_SEED, batchArb, body);
    expect(rig.device.needsReset).toBe(false);
    rig.serviceCheckSync();
    rig.mux.forward = true;
    await rig.serviceCheck(); // the async path still works too
  });
});

// ================================================================ (b) random rings

// the region map of harness/fuzz/rings.ts: valid T-messages (readable targets) from MSG_BASE,
// writable targets in [DATA_BASE, TABLE_BASE), indirect tables (never writable) from TABLE_BASE
// to the end of RAM_B

interface RawDesc {
  flags: number;
  next: number;
  kind: number;
  a: number;
  b: number;
  big: bigint;
}
const rawDescArb = (nextLim: number): fc.Arbitrary<RawDesc> =>
  fc.record({
    flags: fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(0, F_NEXT, F_WRITE, F_WRITE | F_NEXT) },
      { weight: 2, arbitrary: fc.constantFrom(F_INDIRECT, F_INDIRECT | F_NEXT, F_INDIRECT | F_WRITE) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
    ),
    next: fc.oneof(
      { weight: 8, arbitrary: fc.integer({ min: 0, max: nextLim - 1 }) },
      { weight: 1, arbitrary: fc.integer({ min: nextLim, max: nextLim + 2 }) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
    ),
    kind: fc.nat({ max: 99 }),
    a: fc.nat(),
    b: fc.nat(),
    big: fc.bigInt({ min: 0n, max: U64 }),
  });

interface RingCase {
  N: number;
  indirect: boolean;
  eventIdx: boolean;
  ring: RawDesc[];
  tables: RawDesc[][];
  heads: number[];
  availMode: number;
  availRand: number;
  msgOrder: number[];
  secondKick: boolean;
}

const randomRingArb: fc.Arbitrary<RingCase> = fc
  .record({ N: fc.constantFrom(4, 8, 16), indirect: fc.boolean(), eventIdx: fc.boolean() })
  .chain(({ N, indirect, eventIdx }) =>
    fc.record({
      N: fc.constant(N),
      indirect: fc.constant(indirect),
      eventIdx: fc.constant(eventIdx),
      ring: fc.array(rawDescArb(N), { minLength: N, maxLength: N }),
      tables: fc.array(fc.integer({ min: 1, max: 6 }).chain((k) => fc.array(rawDescArb(k), { minLength: k, maxLength: k })), { maxLength: 3 }),
      heads: fc.array(fc.oneof({ weight: 10, arbitrary: fc.integer({ min: 0, max: N - 1 }) }, { weight: 1, arbitrary: fc.constantFrom(N, N + 1, 0xffff) }), { maxLength: N + 2 }),
      availMode: fc.nat({ max: 19 }),
      availRand: fc.integer({ min: 0, max: 0xffff }),
      msgOrder: fc.shuffledSubarray([0, 1, 2, 3, 4, 5], { minLength: 6, maxLength: 6 }),
      secondKick: fc.boolean(),
    }),
  );

/**
 * Rings a driver could have written (valid chains, direct or through an indirect table), then
 * 0–2 corruptions of one descriptor field, of a head or of the avail index.
 */
interface ChainPlan { useTable: boolean; msg: number; nW: number; wa: number[]; wb: number[] }
interface Corruption { target: number; field: keyof RawDesc; with: RawDesc }
const structuredRingArb: fc.Arbitrary<RingCase> = fc
  .record({ N: fc.constantFrom(4, 8, 16), indirect: fc.boolean(), eventIdx: fc.boolean() })
  .chain(({ N, indirect, eventIdx }) =>
    fc.record({
      N: fc.constant(N),
      indirect: fc.constant(indirect),
      eventIdx: fc.constant(eventIdx),
      plans: fc.array(
        fc.record({
          useTable: fc.boolean(),
          msg: fc.nat({ max: 5 }),
          nW: fc.integer({ min: 1, max: 2 }),
          wa: fc.array(fc.nat(), { minLength: 2, maxLength: 2 }),
          wb: fc.array(fc.constantFrom(1, 2, 3, 4), { minLength: 2, maxLength: 2 }),
        }),
        { minLength: 1, maxLength: N },
      ),
      corruptions: fc.array(
        fc.record({ target: fc.nat(), field: fc.constantFrom<keyof RawDesc>('flags', 'next', 'kind', 'a', 'b', 'big'), with: rawDescArb(N) }),
        { maxLength: 2 },
      ),
      headCorruption: fc.oneof({ weight: 6, arbitrary: fc.constant(-1) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) }),
      availMode: fc.nat({ max: 19 }),
      availRand: fc.integer({ min: 0, max: 0xffff }),
      msgOrder: fc.shuffledSubarray([0, 1, 2, 3, 4, 5], { minLength: 6, maxLength: 6 }),
      secondKick: fc.boolean(),
    }),
  )
  .map((s): RingCase => {
    const filler = (): RawDesc => ({ flags: 0, next: 0, kind: 0, a: 0, b: 0, big: 0n });
    const ring: RawDesc[] = Array.from({ length: s.N }, filler);
    const tables: RawDesc[][] = [];
    const heads: number[] = [];
    let free = 0;
    const chainDescs = (p: ChainPlan, base: number): RawDesc[] => {
      const ds: RawDesc[] = [{ flags: F_NEXT, next: base + 1, kind: 0, a: p.msg, b: 0, big: 0n }];
      for (let w = 0; w < p.nW; w++) {
        const last = w === p.nW - 1;
        ds.push({ flags: F_WRITE | (last ? 0 : F_NEXT), next: last ? 0 : base + 2 + w, kind: 0, a: p.wa[w], b: p.wb[w], big: 0n });
      }
      return ds;
    };
    for (const p of s.plans) {
      if (p.useTable && tables.length < 3) {
        if (free >= s.N) break;
        tables.push(chainDescs(p, 0));
        ring[free] = { flags: F_INDIRECT, next: 0, kind: 0, a: tables.length - 1, b: 0, big: 0n };
        heads.push(free++);
      } else {
        if (free + 1 + p.nW > s.N) break;
        chainDescs(p, free).forEach((d, k) => (ring[free + k] = d));
        heads.push(free);
        free += 1 + p.nW;
      }
    }
    // corruptions: a field of one descriptor (ring or table) takes a random value
    const all = [...ring, ...tables.flat()];
    for (const c of s.corruptions) {
      const d = all[c.target % all.length];
      (d as unknown as Record<string, unknown>)[c.field] = c.with[c.field];
    }
    if (s.headCorruption >= 0 && heads.length) heads[s.headCorruption % heads.length] = s.headCorruption;
    // tables are indexed by position: an indirect descriptor's `a` picks tableAt[a % count]
    return { N: s.N, indirect: s.indirect, eventIdx: s.eventIdx, ring, tables, heads, availMode: s.availMode, availRand: s.availRand, msgOrder: s.msgOrder, secondKick: s.secondKick };
  });

const ringCaseArb: fc.Arbitrary<RingCase> = fc.oneof({ weight: 1, arbitrary: randomRingArb }, { weight: 2, arbitrary: structuredRingArb });

/** The messages placed in the MSG region (fid 0 is attached by one of them): the harness's
 *  ring messages but its last (Tread); msgOrder shuffles these six. */
const RING_MSGS: readonly Uint8Array[] = HARNESS_RING_MSGS.slice(0, 6);

interface Resolved {
  addr: bigint;
  len: number;
  flags: number;
  next: number;
}

/** Turn a raw random descriptor into one whose target fits its role (see the region map). */
function resolve(d: RawDesc, msgAt: { addr: number; len: number }[], tableAt: { addr: number; len: number }[]): Resolved {
  const { flags, next, kind, a, b, big } = d;
  let addr: bigint;
  let len: number;
  const edge = (): [bigint, number] => {
    switch (a % 8) {
      case 0: return [BigInt(RAM_B - 8), 16];
      case 1: return [BigInt(RAM_B), 1];
      case 2: return [U64 - 7n, 16];
      case 3: return [U64, 4096];
      case 4: return [0n, 0xffffffff];
      case 5: return [(1n << 32n) + BigInt(DATA_BASE + (b % 0x1000)), 64];
      case 6: return [BigInt(RAM_B - 1), 2];
      default: return [big, b >>> 0];
    }
  };
  if (flags & F_INDIRECT) {
    if (kind < 70 && tableAt.length) {
      const t = tableAt[a % tableAt.length];
      [addr, len] = [BigInt(t.addr), kind < 60 ? t.len : [0, 8, 24, t.len + 16, 16 * 0x1000, 0xfffffff0][b % 6]];
    } else if (kind < 80) {
      // a table-region address with a random 16-multiple length (may run past RAM)
      [addr, len] = [BigInt(TABLE_BASE + 16 * (a % 0x1000)), 16 * (1 + (b % 64))];
    } else [addr, len] = edge();
  } else if (flags & F_WRITE) {
    if (kind < 75) {
      const at = DATA_BASE + (a % (TABLE_BASE - DATA_BASE - 7));
      const room = TABLE_BASE - at;
      len = [7, 11, 64, 256, 4096, 9000][b % 6];
      if (len > room) len = room;
      addr = BigInt(at);
    } else if (kind < 82) [addr, len] = [BigInt(DATA_BASE + (a % 0x1000)), 0];
    else if (kind < 86) [addr, len] = [big, 0]; // zero-length at any address
    else [addr, len] = edge();
  } else {
    if (kind < 55) {
      const m = msgAt[a % msgAt.length];
      [addr, len] = [BigInt(m.addr), m.len];
    } else if (kind < 65) {
      const m = msgAt[a % msgAt.length];
      const k = b % (m.len + 1);
      [addr, len] = b & 1 ? [BigInt(m.addr), k] : [BigInt(m.addr + k), m.len - k];
    } else if (kind < 78) {
      const at = a % RAM_B;
      [addr, len] = [BigInt(at), Math.min(b % 512, RAM_B - at)];
    } else if (kind < 84) [addr, len] = [big, 0];
    else [addr, len] = edge();
  }
  return { addr, len: len >>> 0, flags, next };
}

describe('(b) random descriptor tables, avail indices and indirect tables', () => {
  let rig: Rig;
  beforeAll(async () => {
    rig = await Rig.create({ ramSize: RAM_B, queueSize: 16 });
    rig.serviceCheckSync();
  });

  function body(c: RingCase): void {
    // a fresh device state: reset + a new driver with this case's features
    rig.reinit({ queueSize: c.N, indirect: c.indirect, eventIdx: c.eventIdx });
    rig.mux.forward = false;
    const ram = rig.ram;
    const dv = rig.dv;
    const N = c.N;
    // messages
    const msgAt: { addr: number; len: number }[] = [];
    let p = MSG_BASE;
    for (const k of c.msgOrder) {
      ram.set(RING_MSGS[k], p);
      msgAt.push({ addr: p, len: RING_MSGS[k].length });
      p += (RING_MSGS[k].length + 15) & ~15;
    }
    // indirect tables: addresses first (descriptors may point at any of them)
    const tableAt = c.tables.map((t, k) => ({ addr: TABLE_BASE + k * TABLE_STRIDE, len: 16 * t.length }));
    // table region: zero it, then lay the tables out
    ram.fill(0, TABLE_BASE, RAM_B);
    const resolvedTables = c.tables.map((t) => t.map((d) => resolve(d, msgAt, tableAt)));
    resolvedTables.forEach((t, k) => t.forEach((d, j) => rig.writeDescAt(tableAt[k].addr + 16 * j, d.addr, d.len, d.flags, d.next)));
    const ring = c.ring.map((d) => resolve(d, msgAt, tableAt));
    ring.forEach((d, j) => rig.writeDesc(j, d.addr, d.len, d.flags, d.next));
    // a table the device could follow must not be writable by any chain (region map) — check it
    // (the reference walker reads the ring and every table from RAM itself)
    for (const d of [...ring, ...resolvedTables.flat()]) {
      const followable = d.addr <= BigInt(RAM_B) && BigInt(d.len) <= BigInt(RAM_B) - d.addr && d.len !== 0 && d.len % 16 === 0;
      if (d.flags & F_INDIRECT && followable && d.addr < BigInt(TABLE_BASE)) {
        throw new Error(`test bug: indirect table outside the table region at ${Number(d.addr)}`);
      }
    }
    // avail ring
    c.heads.forEach((h, k) => dv.setUint16(rig.driver.availAddr + 4 + 2 * (k & (N - 1)), h, true));
    let availIdx = c.heads.length;
    if (c.availMode === 0) availIdx = c.availRand;
    else if (c.availMode === 1) availIdx = N + 1 + (c.availRand % 4);
    rig.driver.setAvailIdx(availIdx);

    // prediction
    const ahead = availIdx & 0xffff;
    let predictedBroken = false;
    const answered: { head: number; w: Walk }[] = [];
    if (ahead > N) predictedBroken = true;
    else {
      for (let k = 0; k < ahead; k++) {
        const h = dv.getUint16(rig.driver.availAddr + 4 + 2 * (k & (N - 1)), true);
        if (h >= N) { predictedBroken = true; break; }
        const w = refWalk(dv, RAM_B, rig.driver.descAddr, h, N, c.indirect);
        if (!w.ok) { predictedBroken = true; break; }
        answered.push({ head: h, w });
      }
    }

    bump(predictedBroken ? 'broken' : 'healthy');
    bump('answered', answered.length);
    const c0 = rig.device.counters();
    const irq0 = [...rig.mux.irq];
    const before = ram.slice();
    try {
      rig.kick();
      if (c.secondKick) rig.kick();
    } catch (e) {
      throw new Error(`notify threw: ${(e as Error).message}`);
    }
    const c1 = rig.device.counters();
    const broken = (rig.device.status & STATUS_NEEDS_RESET) !== 0;
    expect({ broken, answered: rig.usedIdx() }).toEqual({ broken: predictedBroken, answered: answered.length });
    expect(c1.malformedChains - c0.malformedChains).toBe(predictedBroken ? 1 : 0);
    expect(c1.needsReset - c0.needsReset).toBe(predictedBroken ? 1 : 0);
    expect(rig.mux.irq[IRQ_CONFIG] - irq0[IRQ_CONFIG]).toBe(predictedBroken ? 1 : 0);
    const used = rig.usedSince(0);
    expect(used.map((u) => u.id)).toEqual(answered.map((x) => x.head));
    // RAM: only the answered chains' writable buffers and the used ring may change
    const allowed: Range[] = [rig.usedRing, ...answered.flatMap((x) => x.w.write)];
    const changed = diffRanges(before, ram);
    const bad = outside(changed, allowed);
    if (bad.length) throw new Error(`guest RAM changed outside the writable buffers: ${JSON.stringify(bad.slice(0, 5))}`);
    // each answered chain (whose buffers no other chain of the batch touches) has a proper reply
    answered.forEach((x, k) => {
      const u = used[k];
      expect(u.len).toBeLessThanOrEqual(x.w.writeLen);
      const got = answeredReply(ram, answered, k, u.len); // null: buffers shared with another chain (or its own overlap)
      if (got === null) return;
      const { t, reply } = got;
      bump(u.len === 0 ? 'len0' : reply[4] === 7 ? 'Rlerror' : 'R');
      const prob = replyProblem(t, u.len, x.w.writeLen, reply);
      if (prob) throw new Error(`head ${x.head}: ${prob}; T=${hex(t)}`);
    });

    // reset + re-init: normal service
    rig.reinit({ queueSize: 16, indirect: true, eventIdx: true });
    rig.serviceCheckSync();
    expect(rig.device.needsReset).toBe(false);
  }

  test('regression: a chain whose two writable buffers overlap (found by seed 13; the reply check must allow last-write-wins)', () => {
    const d = (flags: number, next: number, a: number, b: number): RawDesc => ({ flags, next, kind: 0, a, b, big: 0n });
    body({
      N: 8, indirect: true, eventIdx: false,
      ring: [d(1, 1, 4, 0), d(3, 2, 2147483627, 1), d(2, 0, 2147483619, 1), d(1, 4, 0, 0), d(2, 0, 0, 1), d(0, 0, 0, 0), d(0, 0, 0, 0), d(0, 0, 0, 0)],
      tables: [], heads: [0, 3], availMode: 2, availRand: 0, msgOrder: [2, 0, 3, 4, 1, 5], secondKick: false,
    });
  });

  test('regression seeds', () => {
    for (const seed of REGRESSION_SEEDS.b) runProperty('b/regression', seed, ringCaseArb, body, REGRESSION_RUNS);
  });

  test('time-boxed', () => {
    runProperty('b', BASE_SEED + 1, ringCaseArb, body);
    rig.serviceCheckSync();
  });
});

// ================================================================ (c) split invariance

describe('(c) split invariance', () => {
  let rig: Rig;
  const CLUNK_AFTER = [50, 51, 0x7777];

  function call(m: Uint8Array, cap = 8192): Uint8Array {
    return rig.rawRpc(m, cap).bytes;
  }
  /** fid 0 = root, 1 = dir, 2 = file (open RDWR), 3 = dir (open for readdir) */
  function setup(): void {
    call(encode(MSG.Tversion, 0xffff, [65536, '9P2000.L']));
    call(encode(MSG.Tattach, 1, [0, 0xffffffff, 'root', '', 0]));
    call(encode(MSG.Twalk, 2, [0, 1, ['dir']]));
    call(encode(MSG.Twalk, 3, [0, 2, ['file']]));
    call(encode(MSG.Tlopen, 4, [2, 2]));
    call(encode(MSG.Twalk, 5, [0, 3, ['dir']]));
    call(encode(MSG.Tlopen, 6, [3, 0o200000]));
  }
  function cleanup(): void {
    for (const f of CLUNK_AFTER) call(encode(MSG.Tclunk, 9, [f]));
  }

  beforeAll(async () => {
    rig = await Rig.create({ ramSize: 1 << 20, queueSize: 256 });
    rig.mux.forward = false;
    setup();
  });

  const nameArb = fc.oneof(
    fc.constantFrom('dir', 'file', 'a', 'bb', 'sub', '..', '.', 'nope', 'x'.repeat(300)),
    fc.string({ maxLength: 12 }),
  );
  const tag = fc.integer({ min: 0, max: 0xfffe });
  const msgArb: fc.Arbitrary<{ msg: Uint8Array; version?: boolean }> = fc.oneof(
    fc.record({ tag, fid: fc.constantFrom(0, 1, 2, 3, 77), mask: fc.bigInt({ min: 0n, max: U64 }) }).map(({ tag, fid, mask }) => ({ msg: encode(MSG.Tgetattr, tag, [fid, mask]) })),
    fc.record({ tag, fid: fc.constantFrom(0, 1, 77) }).map(({ tag, fid }) => ({ msg: encode(MSG.Tstatfs, tag, [fid]) })),
    fc.record({ tag, fid: fc.constantFrom(0, 1), names: fc.array(nameArb, { maxLength: 5 }) }).map(({ tag, fid, names }) => ({ msg: encode(MSG.Twalk, tag, [fid, 50, names]) })),
    fc.record({ tag, off: fc.integer({ min: 0, max: 6000 }), count: fc.integer({ min: 0, max: 5000 }) }).map(({ tag, off, count }) => ({ msg: encode(MSG.Tread, tag, [2, BigInt(off), count]) })),
    fc.record({ tag, off: fc.integer({ min: 0, max: 3000 }), data: fc.uint8Array({ maxLength: 1500 }) }).map(({ tag, off, data }) => ({ msg: encode(MSG.Twrite, tag, [2, BigInt(off), data]) })),
    fc.record({ tag, count: fc.integer({ min: 0, max: 3000 }) }).map(({ tag, count }) => ({ msg: encode(MSG.Treaddir, tag, [3, 0n, count]) })),
    fc.record({ tag, name: nameArb }).map(({ tag, name }) => ({ msg: encode(MSG.Txattrwalk, tag, [0, 51, name]) })),
    fc.record({ tag, name: nameArb }).map(({ tag, name }) => ({ msg: encode(MSG.Tattach, tag, [0x7777, 0xffffffff, 'root', name, 0]) })),
    fc.record({ msize: fc.integer({ min: 0, max: 200000 }), v: fc.constantFrom('9P2000.L', '9P2000', '9P2000.u', '') }).map(({ msize, v }) => ({ msg: encode(MSG.Tversion, 0xffff, [msize, v]), version: true })),
    // any T type but Tversion, its first body word forced to an unused fid (0x7777, clunked after)
    fc.record({ type: fc.constantFrom(...T_TYPES.filter((t) => t !== MSG.Tversion)), tag, body: fc.uint8Array({ maxLength: 80 }), fix: fc.boolean() }).map(({ type, tag, body, fix }) => {
      const m = new Uint8Array(7 + body.length);
      m.set(body, 7);
      m[4] = type;
      m[5] = tag & 0xff;
      m[6] = tag >> 8;
      if (m.length >= 11) new DataView(m.buffer).setUint32(7, 0x7777, true);
      return { msg: fix ? setSize(m) : m };
    }),
    // mutated golden vectors whose fids cannot hit the session's (checked below)
    mutatedArb.map((msg) => ({ msg })),
  );

  const caseArb = fc.record({
    m: msgArb,
    cap: fc.oneof({ weight: 4, arbitrary: fc.constant(8192) }, { weight: 1, arbitrary: fc.integer({ min: 7, max: 400 }) }),
    layout: layoutArb,
  });

  /** Messages that would change the session state between the two sends are skipped. */
  function stateless(m: Uint8Array): boolean {
    const type = m[4];
    const safeTypes = new Set([MSG.Tgetattr, MSG.Tstatfs, MSG.Twalk, MSG.Tread, MSG.Twrite, MSG.Treaddir, MSG.Txattrwalk, MSG.Tattach, MSG.Tversion, MSG.Tflush, MSG.Treadlink, MSG.Tgetlock]);
    if (safeTypes.has(type)) {
      if (type === MSG.Twalk && m.length >= 15) {
        const nf = new DataView(m.buffer, m.byteOffset).getUint32(11, true);
        return nf === 50 || nf === 51 || nf === 0x7777;
      }
      if (type === MSG.Txattrwalk && m.length >= 15) {
        const nf = new DataView(m.buffer, m.byteOffset).getUint32(11, true);
        return nf === 51;
      }
      if (type === MSG.Tattach && m.length >= 11) return new DataView(m.buffer, m.byteOffset).getUint32(7, true) === 0x7777;
      return true;
    }
    // anything else only if it names an unused fid
    return m.length >= 11 && new DataView(m.buffer, m.byteOffset).getUint32(7, true) >= 0x7777;
  }

  function compare(msg: Uint8Array, cap: number, layout: Layout, isVersion: boolean): void {
    const plain = rig.rawRpc(msg, cap);
    cleanup();
    if (isVersion) setup();
    const specs = specsOf(msg, cap, layout);
    const c = rig.buildChain(specs, { indirect: layout.indirect });
    const used0 = rig.usedIdx();
    try {
      rig.post(c.head);
      rig.kick();
      const used = rig.usedSince(used0);
      rig.sync();
      expect(used.length).toBe(1);
      const split = rig.gatherWritable(c, used[0].len);
      if (used[0].len !== plain.len || hex(split) !== hex(plain.bytes)) {
        throw new Error(`split reply differs\n  T=${hex(msg)}\n  layout=${JSON.stringify(layout)} cap=${cap}\n  unsplit (len ${plain.len})=${hex(plain.bytes)}\n  split   (len ${used[0].len})=${hex(split)}`);
      }
      expect(replyProblem(msg, plain.len, cap, plain.bytes)).toBeNull();
      bump(plain.len === 0 ? 'len0' : plain.bytes[4] === 7 ? 'Rlerror' : 'R');
    } finally {
      rig.release(c);
      cleanup();
      if (isVersion) setup();
    }
  }

  function body(v: { m: { msg: Uint8Array; version?: boolean }; cap: number; layout: Layout }): void {
    if (!stateless(v.m.msg)) {
      bump('skipped');
      return;
    }
    bump(`type${v.m.msg[4]}`);
    const isVersion = v.m.msg[4] === MSG.Tversion;
    compare(v.m.msg, v.cap, v.layout, isVersion || v.m.version === true);
    expect(rig.device.needsReset).toBe(false);
  }

  test('every single cut point, for several message types (exhaustive)', () => {
    const msgs = [
      encode(MSG.Tversion, 0xffff, [65536, '9P2000.L']),
      encode(MSG.Tgetattr, 7, [1, 0x3fffn]),
      encode(MSG.Twalk, 8, [0, 50, ['dir', 'sub', '..', 'a']]),
      encode(MSG.Tread, 9, [2, 3n, 100]),
      encode(MSG.Twrite, 10, [2, 20n, new TextEncoder().encode('split me anywhere')]),
      encode(MSG.Txattrwalk, 11, [0, 51, 'user.nothing']),
      encode(MSG.Treaddir, 12, [3, 0n, 500]),
      encode(MSG.Tstatfs, 13, [0]),
    ];
    for (const m of msgs) {
      for (let k = 1; k < m.length; k++) {
        for (const indirect of [false, true]) {
          compare(m, 8192, { rcuts: [k - 1], wcuts: [k + 3], zeros: [k], indirect }, m[4] === MSG.Tversion);
        }
      }
      // every byte its own descriptor
      compare(m, 8192, { rcuts: Array.from({ length: m.length }, (_, i) => i), wcuts: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], zeros: [0, 3], indirect: true }, m[4] === MSG.Tversion);
    }
  });

  test('regression seeds', () => {
    for (const seed of REGRESSION_SEEDS.c) runProperty('c/regression', seed, caseArb, body, REGRESSION_RUNS);
  });

  test('time-boxed', () => {
    runProperty('c', BASE_SEED + 2, caseArb, body);
    expect(rig.device.needsReset).toBe(false);
    rig.serviceCheckSync();
  });
});
