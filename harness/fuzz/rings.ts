/**
 * Ring fuzzer: random descriptor tables, avail indices and indirect tables, with addresses at
 * and past the edge of guest memory (and u64 wrap), loops, bad flags — both fully random rings
 * and rings a driver could have written with 0–2 corrupted fields. A case is stored concretely
 * (every descriptor, table and avail entry), so a failure replays without the generator.
 *
 * Region map of the 256 KiB guest RAM (ring at 0x1000 from the rig's driver):
 *   [MSG_BASE, DATA_BASE)   valid T-messages (readable targets)
 *   [DATA_BASE, TABLE_BASE) writable targets
 *   [TABLE_BASE, RAM)       indirect tables — never a writable target inside RAM, so a reply
 *                           cannot rewrite a table another chain of the batch still uses.
 *
 * Invariants: notify never throws; the outcome agrees with a reference walker of the virtio
 * §2.7 rules and the core's documented limits (the chains before the first malformed one are
 * answered in order, a malformed one sets DEVICE_NEEDS_RESET with one config interrupt and
 * malformedChains +1; a well-formed ring leaves no request unanswered); guest RAM changes only
 * in the answered chains' writable buffers and the used ring; module memory does not grow;
 * after reset + re-initialisation the device serves again.
 */
import { encode, MSG } from '../../src/testing/p9/codec.js';
import {
  Rig, diffRanges, outside, replyProblem, type Range, F_NEXT, F_WRITE, F_INDIRECT, STATUS_NEEDS_RESET, IRQ_CONFIG,
} from '../ring/rig.js';
import { Rng, toHex, fromHex } from './rng.js';

export const RAM = 256 << 10;
export const MSG_BASE = 0x2000;
export const DATA_BASE = 0x4000;
export const TABLE_BASE = 0x30000;
export const TABLE_STRIDE = 0x1000;
export const U64 = (1n << 64n) - 1n;

/** [addr (decimal u64 string), len, flags, next] */
export type D = [string, number, number, number];
export interface RingCase {
  kind: 'ring';
  N: number;
  indirect: boolean;
  eventIdx: boolean;
  ring: D[];
  tables: { at: number; descs: D[] }[];
  msgs: { at: number; hex: string }[];
  /** avail ring entries k = 0.. (slot k & (N - 1)) */
  heads: number[];
  availIdx: number;
  kicks: number;
}

/** The messages placed in the MSG region (fid 0 is attached by one of them). */
export const RING_MSGS: readonly Uint8Array[] = [
  encode(MSG.Tversion, 0xffff, [65536, '9P2000.L']),
  encode(MSG.Tattach, 1, [0, 0xffffffff, 'root', '', 0]),
  encode(MSG.Tgetattr, 2, [0, 0x7ffn]),
  encode(MSG.Twalk, 3, [0, 1, ['dir', 'a']]),
  encode(MSG.Tstatfs, 4, [0]),
  encode(MSG.Tclunk, 5, [1]),
  encode(MSG.Tread, 6, [0, 0n, 0xffffffff]),
];

// ---------------------------------------------------------------- generation

interface Ctx { rng: Rng; msgs: { at: number; len: number }[]; tables: { at: number; len: number }[] }

function edge(c: Ctx): [bigint, number] {
  const { rng } = c;
  switch (rng.int(9)) {
    case 0: return [BigInt(RAM - 8), 16];
    case 1: return [BigInt(RAM), rng.pick([0, 1])];
    case 2: return [U64 - 7n, 16];
    case 3: return [U64, 4096];
    case 4: return [0n, 0xffffffff];
    case 5: return [(1n << 32n) + BigInt(DATA_BASE + rng.int(0x1000)), 64];
    case 6: return [BigInt(RAM - 1), 2];
    case 7: return [BigInt(RAM - 16), 16];
    default: return [rng.u64(), rng.u32()];
  }
}

function target(c: Ctx, flags: number): [bigint, number] {
  const { rng } = c;
  if (flags & F_INDIRECT) {
    const k = rng.int(100);
    if (k < 70 && c.tables.length) {
      const t = rng.pick(c.tables);
      return [BigInt(t.at), k < 60 ? t.len : rng.pick([0, 8, 24, t.len + 16, 16 * 0x1000, 0xfffffff0])];
    }
    if (k < 80) return [BigInt(TABLE_BASE + 16 * rng.int(0x1000)), 16 * (1 + rng.int(64))];
    return edge(c);
  }
  if (flags & F_WRITE) {
    const k = rng.int(100);
    if (k < 75) {
      const at = DATA_BASE + rng.int(TABLE_BASE - DATA_BASE - 7);
      return [BigInt(at), Math.min(rng.pick([7, 11, 64, 256, 4096, 9000]), TABLE_BASE - at)];
    }
    if (k < 82) return [BigInt(DATA_BASE + rng.int(0x1000)), 0];
    if (k < 86) return [rng.u64(), 0];
    const [a, l] = edge(c);
    // in-RAM writable targets stay in the data region (see the region map)
    if (l !== 0 && a < BigInt(RAM) && a + BigInt(l) > BigInt(DATA_BASE)) return [a + BigInt(RAM), l];
    return [a, l];
  }
  const k = rng.int(100);
  const m = rng.pick(c.msgs);
  if (k < 55) return [BigInt(m.at), m.len];
  if (k < 65) {
    const j = rng.int(m.len + 1);
    return rng.chance(0.5) ? [BigInt(m.at), j] : [BigInt(m.at + j), m.len - j];
  }
  if (k < 78) {
    const at = rng.int(RAM);
    return [BigInt(at), Math.min(rng.int(512), RAM - at)];
  }
  if (k < 84) return [rng.u64(), 0];
  return edge(c);
}

function randomFlags(rng: Rng): number {
  return rng.weighted([
    [8, rng.pick([0, F_NEXT, F_WRITE, F_WRITE | F_NEXT])],
    [2, rng.pick([F_INDIRECT, F_INDIRECT | F_NEXT, F_INDIRECT | F_WRITE])],
    [1, rng.int(0x10000)],
  ] as const);
}
function randomNext(rng: Rng, lim: number): number {
  return rng.weighted([[8, rng.int(lim)], [1, lim + rng.int(3)], [1, rng.int(0x10000)]] as const);
}
function desc(c: Ctx, flags: number, next: number): D {
  const [a, l] = target(c, flags);
  return [a.toString(), l >>> 0, flags, next];
}

export function genRingCase(rng: Rng): RingCase {
  const N = rng.pick([4, 8, 16]);
  const indirect = rng.chance(0.7);
  const eventIdx = rng.chance(0.5);
  // messages, shuffled into the message region
  const order = RING_MSGS.map((_, i) => i).sort(() => rng.int(3) - 1);
  const msgs: RingCase['msgs'] = [];
  let p = MSG_BASE;
  for (const k of order) {
    msgs.push({ at: p, hex: toHex(RING_MSGS[k]) });
    p += (RING_MSGS[k].length + 15) & ~15;
  }
  const nTables = rng.int(4);
  const tableLens = Array.from({ length: nTables }, () => rng.range(1, 6));
  const c: Ctx = {
    rng,
    msgs: msgs.map((m) => ({ at: m.at, len: m.hex.length / 2 })),
    tables: tableLens.map((k, i) => ({ at: TABLE_BASE + i * TABLE_STRIDE, len: 16 * k })),
  };
  const ring: D[] = [];
  const tables: RingCase['tables'] = [];
  const heads: number[] = [];
  if (rng.chance(1 / 3)) {
    // fully random
    for (let i = 0; i < N; i++) { const f = randomFlags(rng); ring.push(desc(c, f, randomNext(rng, N))); }
    tableLens.forEach((k, i) => {
      const ds: D[] = [];
      for (let j = 0; j < k; j++) { const f = randomFlags(rng); ds.push(desc(c, f, randomNext(rng, k))); }
      tables.push({ at: c.tables[i].at, descs: ds });
    });
    const nh = rng.int(N + 3);
    for (let k = 0; k < nh; k++) heads.push(rng.chance(0.9) ? rng.int(N) : rng.pick([N, N + 1, 0xffff]));
  } else {
    // chains a driver could write, then corruptions
    for (let i = 0; i < N; i++) ring.push(['0', 0, 0, 0]);
    let free = 0;
    const chain = (base: number): D[] => {
      const m = rng.pick(c.msgs);
      const nW = rng.range(1, 2);
      const ds: D[] = [[String(m.at), m.len, F_NEXT, base + 1]];
      for (let w = 0; w < nW; w++) {
        const last = w === nW - 1;
        const at = DATA_BASE + rng.int(TABLE_BASE - DATA_BASE - 9000);
        ds.push([String(at), rng.pick([11, 64, 4096, 9000]), F_WRITE | (last ? 0 : F_NEXT), last ? 0 : base + 2 + w]);
      }
      return ds;
    };
    const nPlans = rng.range(1, N);
    for (let k = 0; k < nPlans; k++) {
      if (rng.chance(0.5) && tables.length < 3 && free < N) {
        const ds = chain(0);
        const at = TABLE_BASE + tables.length * TABLE_STRIDE;
        tables.push({ at, descs: ds });
        ring[free] = [String(at), 16 * ds.length, F_INDIRECT, 0];
        heads.push(free++);
      } else {
        const ds = chain(free);
        if (free + ds.length > N) break;
        ds.forEach((d, j) => (ring[free + j] = d));
        heads.push(free);
        free += ds.length;
      }
    }
    c.tables = tables.map((t) => ({ at: t.at, len: 16 * t.descs.length }));
    const all = [...ring, ...tables.flatMap((t) => t.descs)];
    const nc = rng.weighted([[3, 0], [4, 1], [2, 2]] as const);
    for (let k = 0; k < nc; k++) {
      const d = rng.pick(all);
      switch (rng.int(4)) {
        case 0: d[2] = randomFlags(rng); break;
        case 1: d[3] = randomNext(rng, N); break;
        case 2: { const [a, l] = target(c, d[2]); d[0] = a.toString(); d[1] = l >>> 0; break; }
        default: { const [a, l] = edge(c); d[0] = a.toString(); d[1] = l >>> 0; if (d[2] & F_WRITE && l && a < BigInt(RAM)) d[0] = (a + BigInt(RAM)).toString(); }
      }
    }
    if (heads.length && rng.chance(1 / 7)) heads[rng.int(heads.length)] = rng.int(0x10000);
  }
  const mode = rng.int(20);
  const availIdx = mode === 0 ? rng.int(0x10000) : mode === 1 ? N + 1 + rng.int(4) : heads.length;
  return { kind: 'ring', N, indirect, eventIdx, ring, tables, msgs, heads, availIdx, kicks: rng.chance(0.3) ? 2 : 1 };
}

// ---------------------------------------------------------------- reference walker

export interface Walk { ok: boolean; read: Range[]; write: Range[]; readLen: number; writeLen: number; why?: string }
interface Rd { addr: bigint; len: number; flags: number; next: number }

function readDesc(dv: DataView, a: number): Rd {
  return { addr: dv.getBigUint64(a, true), len: dv.getUint32(a + 8, true), flags: dv.getUint16(a + 12, true), next: dv.getUint16(a + 14, true) };
}

/** The virtio §2.7 chain rules plus the core's documented limits, over a RAM snapshot. */
export function refWalk(dv: DataView, ramSize: number, descAddr: number, head: number, N: number, indirectOk: boolean): Walk {
  const bad = (why: string): Walk => ({ ok: false, read: [], write: [], readLen: 0, writeLen: 0, why });
  const R = BigInt(ramSize);
  const inRam = (a: bigint, l: number): boolean => a <= R && BigInt(l) <= R - a;
  let base = descAddr;
  let limit = N;
  let i = head;
  let visited = 0;
  let inIndirect = false;
  const read: Range[] = [];
  const write: Range[] = [];
  let readLen = 0;
  let writeLen = 0;
  for (;;) {
    if (++visited > limit) return bad('loop');
    const d = readDesc(dv, base + 16 * i);
    if (d.flags & F_INDIRECT) {
      if (!indirectOk) return bad('indirect without the feature');
      if (inIndirect) return bad('nested indirect');
      if (d.flags & F_NEXT) return bad('indirect with NEXT');
      if (d.len === 0 || d.len % 16 !== 0) return bad('indirect table length');
      if (!inRam(d.addr, d.len)) return bad('indirect table outside RAM');
      base = Number(d.addr);
      limit = d.len / 16;
      i = 0;
      visited = 0;
      inIndirect = true;
      continue;
    }
    if (d.len !== 0) {
      if (!inRam(d.addr, d.len)) return bad('buffer outside RAM');
      if (read.length + write.length >= 1024) return bad('too many segments');
      const r: Range = [Number(d.addr), Number(d.addr) + d.len];
      if (d.flags & F_WRITE) { write.push(r); writeLen += d.len; } else {
        if (write.length) return bad('readable after writable');
        read.push(r);
        readLen += d.len;
      }
    }
    if (!(d.flags & F_NEXT)) break;
    if (d.next >= limit) return bad('next out of range');
    i = d.next;
  }
  if (readLen < 7) return bad('no room for a header');
  if (writeLen < 7) return bad('no room for a reply');
  return { ok: true, read, write, readLen, writeLen };
}

const overlaps = (x: Range, y: Range): boolean => x[0] < y[1] && y[0] < x[1];

/**
 * The request bytes (`t`) and the reply (the first min(usedLen, writable) bytes) of answered
 * chain k, gathered from RAM; null when its buffers overlap another answered chain's writable
 * ones, or its own writable buffers overlap (last write wins), so the reply cannot be checked.
 */
export function answeredReply(ram: Uint8Array, answered: readonly { w: Walk }[], k: number, usedLen: number): { t: Uint8Array; reply: Uint8Array } | null {
  const x = answered[k];
  const allW = answered.flatMap((y) => y.w.write);
  const shared = x.w.read.some((r) => allW.some((w) => overlaps(r, w)))
    || x.w.write.some((w) => answered.some((y, j) => j !== k && y.w.write.some((v) => overlaps(w, v))))
    || x.w.write.some((w, i) => x.w.write.some((v, j) => i !== j && overlaps(w, v)));
  if (shared) return null;
  const t = new Uint8Array(x.w.readLen);
  let o = 0;
  for (const [s, e] of x.w.read) { t.set(ram.subarray(s, e), o); o += e - s; }
  const reply = new Uint8Array(Math.min(usedLen, x.w.writeLen));
  o = 0;
  for (const [s, e] of x.w.write) {
    if (o >= reply.length) break;
    const n = Math.min(e - s, reply.length - o);
    reply.set(ram.subarray(s, s + n), o);
    o += n;
  }
  return { t, reply };
}

// ---------------------------------------------------------------- the target

export class RingTarget {
  private constructor(readonly rig: Rig) {}
  static async create(): Promise<RingTarget> {
    const rig = await Rig.create({ ramSize: RAM, queueSize: 16 });
    rig.serviceCheckSync();
    return new RingTarget(rig);
  }

  /** Run one case; throws an Error describing the first broken invariant. */
  run(c: RingCase): { broken: boolean; answered: number } {
    const rig = this.rig;
    const mem0 = rig.device.ram.buffer.byteLength;
    rig.reinit({ queueSize: c.N, indirect: c.indirect, eventIdx: c.eventIdx });
    rig.mux.forward = false;
    const ram = rig.ram;
    const dv = rig.dv;
    ram.fill(0, MSG_BASE, RAM);
    for (const m of c.msgs) ram.set(fromHex(m.hex), m.at);
    for (const t of c.tables) t.descs.forEach((d, j) => rig.writeDescAt(t.at + 16 * j, BigInt(d[0]), d[1], d[2], d[3]));
    c.ring.forEach((d, j) => rig.writeDesc(j, BigInt(d[0]), d[1], d[2], d[3]));
    c.heads.forEach((h, k) => dv.setUint16(rig.driver.availAddr + 4 + 2 * (k & (c.N - 1)), h & 0xffff, true));
    rig.driver.setAvailIdx(c.availIdx);

    // prediction over the snapshot
    const ahead = c.availIdx & 0xffff;
    let broken = false;
    let why = '';
    const answered: { head: number; w: Walk }[] = [];
    if (ahead > c.N) { broken = true; why = 'avail index too far ahead'; } else {
      for (let k = 0; k < ahead; k++) {
        const h = dv.getUint16(rig.driver.availAddr + 4 + 2 * (k & (c.N - 1)), true);
        if (h >= c.N) { broken = true; why = `head ${h} out of range`; break; }
        const w = refWalk(dv, RAM, rig.driver.descAddr, h, c.N, c.indirect);
        if (!w.ok) { broken = true; why = `head ${h}: ${w.why}`; break; }
        answered.push({ head: h, w });
      }
    }
    const c0 = rig.device.counters();
    const irq0 = rig.mux.irq[IRQ_CONFIG];
    const before = ram.slice();
    try {
      for (let k = 0; k < c.kicks; k++) rig.kick();
    } catch (e) {
      throw new Error(`notify threw: ${(e as Error).message}`);
    }
    const c1 = rig.device.counters();
    const isBroken = (rig.device.status & STATUS_NEEDS_RESET) !== 0;
    const used = rig.usedSince(0);
    if (isBroken !== broken || used.length !== answered.length) {
      throw new Error(`outcome: device broken=${isBroken} answered=${used.length}; reference broken=${broken} (${why || 'well formed'}) answered=${answered.length}`);
    }
    if (used.map((u) => u.id).join() !== answered.map((a) => a.head).join()) throw new Error(`used ids ${used.map((u) => u.id)} != expected ${answered.map((a) => a.head)}`);
    if (c1.malformedChains - c0.malformedChains !== (broken ? 1 : 0)) throw new Error(`malformedChains +${c1.malformedChains - c0.malformedChains}`);
    if (rig.mux.irq[IRQ_CONFIG] - irq0 !== (broken ? 1 : 0)) throw new Error(`config interrupts +${rig.mux.irq[IRQ_CONFIG] - irq0}`);
    const allowed: Range[] = [rig.usedRing, ...answered.flatMap((x) => x.w.write)];
    const badR = outside(diffRanges(before, ram), allowed);
    if (badR.length) throw new Error(`guest RAM changed outside the writable buffers: ${JSON.stringify(badR.slice(0, 4))}`);
    answered.forEach((x, k) => {
      const u = used[k];
      if (u.len > x.w.writeLen) throw new Error(`head ${x.head}: used.len ${u.len} > writable ${x.w.writeLen}`);
      const got = answeredReply(ram, answered, k, u.len);
      if (got === null) return;
      const { t, reply } = got;
      const prob = replyProblem(t, u.len, x.w.writeLen, reply);
      if (prob) throw new Error(`head ${x.head}: ${prob}; T=${toHex(t)}`);
    });
    if (rig.device.ram.buffer.byteLength !== mem0) throw new Error('module memory grew');
    // reset + re-init: normal service
    rig.reinit({ queueSize: 16, indirect: true, eventIdx: true });
    rig.serviceCheckSync();
    if (rig.device.needsReset) throw new Error('still needs reset after reset + re-init');
    return { broken, answered: answered.length };
  }
}
