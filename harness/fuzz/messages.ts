/**
 * Structure-aware 9P message fuzzer. Seeds are the golden T-messages
 * (tests/golden/9p-vectors.json) plus harness/fuzz/seeds/messages.json; each case mutates
 * them field by field using the message table's format strings (numbers set to boundary
 * values and huge counts, string and data lengths that run past the end, names like "..",
 * truncation, wrong size fields, type/tag/fid swaps, splices), then sends a batch of them
 * (a) over hand-made, well-formed virtqueue chains split at random points, direct or indirect,
 * and (b) through a stream session (`device.submit`, the path `virtio9p serve` uses).
 *
 * Invariants checked for every case: nothing throws out of the module, the device never asks
 * for a reset (these chains are well formed), every chain / submission is answered exactly
 * once, a reply is either len 0 (flushed) or a well-formed R-message (T+1 or Rlerror, same
 * tag, size = used.len ≤ writable capacity, errno 1..4095), guest RAM changes only inside the
 * chains' writable buffers and the used ring, the module memory does not grow, and the device
 * still serves version/attach/getattr afterwards.
 */
import { readFileSync, existsSync } from 'node:fs';
import { MESSAGES, MSG, encode } from '../../src/testing/p9/codec.js';
import { Rig, type HandChain, type SegSpec, diffRanges, outside, replyProblem, type Range, STATUS_NEEDS_RESET } from '../ring/rig.js';
import { Rng, toHex, fromHex } from './rng.js';

// ---------------------------------------------------------------- seeds

const here = new URL('.', import.meta.url);
function findUp(rel: string): string {
  // works from harness/fuzz/*.ts (tests) and from build/fuzz.js (the bundle)
  let dir = new URL('.', here);
  for (let i = 0; i < 5; i++) {
    const p = new URL(rel, dir).pathname;
    if (existsSync(p)) return p;
    dir = new URL('..', dir);
  }
  throw new Error(`fuzz: cannot find ${rel}`);
}

export function loadMessageSeeds(): Uint8Array[] {
  const golden = JSON.parse(readFileSync(findUp('tests/golden/9p-vectors.json'), 'utf8')) as { name?: string; hex?: string }[];
  const out = golden.filter((v) => v.name?.startsWith('T') && v.hex).map((v) => fromHex(v.hex!));
  const extra = JSON.parse(readFileSync(findUp('harness/fuzz/seeds/messages.json'), 'utf8')) as { hex: string }[];
  for (const e of extra) out.push(fromHex(e.hex));
  return out;
}

export const T_TYPES = Object.keys(MESSAGES).map(Number).filter((t) => MESSAGES[t].name.startsWith('T'));

// ---------------------------------------------------------------- structure

type SpanKind = 'b' | 'w' | 'd' | 'q' | 'slen' | 'sdata' | 'Q' | 'Tcount' | 'Rcount' | 'Dcount' | 'Ddata';
interface Span { kind: SpanKind; off: number; len: number }

/** Field spans of a (well-formed) message by its format string; null when it does not parse. */
export function spans(m: Uint8Array): Span[] | null {
  if (m.length < 7) return null;
  const spec = MESSAGES[m[4]];
  if (!spec) return null;
  const dv = new DataView(m.buffer, m.byteOffset, m.byteLength);
  const out: Span[] = [];
  let p = 7;
  const need = (n: number): boolean => p + n <= m.length;
  const str = (): boolean => {
    if (!need(2)) return false;
    const n = dv.getUint16(p, true);
    out.push({ kind: 'slen', off: p, len: 2 });
    p += 2;
    if (!need(n)) return false;
    out.push({ kind: 'sdata', off: p, len: n });
    p += n;
    return true;
  };
  for (const c of spec.fmt) {
    switch (c) {
      case 'b': case 'w': case 'd': case 'q': {
        const n = { b: 1, w: 2, d: 4, q: 8 }[c];
        if (!need(n)) return null;
        out.push({ kind: c, off: p, len: n });
        p += n;
        break;
      }
      case 's': if (!str()) return null; break;
      case 'Q': if (!need(13)) return null; out.push({ kind: 'Q', off: p, len: 13 }); p += 13; break;
      case 'T': {
        if (!need(2)) return null;
        const n = dv.getUint16(p, true);
        out.push({ kind: 'Tcount', off: p, len: 2 });
        p += 2;
        for (let i = 0; i < n; i++) if (!str()) return null;
        break;
      }
      case 'R': {
        if (!need(2)) return null;
        const n = dv.getUint16(p, true);
        out.push({ kind: 'Rcount', off: p, len: 2 });
        p += 2;
        if (!need(13 * n)) return null;
        p += 13 * n;
        break;
      }
      case 'D': {
        if (!need(4)) return null;
        const n = dv.getUint32(p, true);
        out.push({ kind: 'Dcount', off: p, len: 4 });
        p += 4;
        if (!need(n)) return null;
        out.push({ kind: 'Ddata', off: p, len: n });
        p += n;
        break;
      }
    }
  }
  return out;
}

const INTERESTING: Record<number, readonly number[]> = {
  1: [0, 1, 0x7f, 0x80, 0xfe, 0xff],
  2: [0, 1, 2, 7, 16, 17, 255, 256, 0x7fff, 0x8000, 0xfffe, 0xffff],
  4: [0, 1, 2, 3, 4, 5, 7, 11, 23, 4095, 4096, 4097, 8192, 65536, 0x7fffffff, 0x80000000, 0xfffffff0, 0xfffffffe, 0xffffffff],
};
const INTERESTING64: readonly bigint[] = [0n, 1n, 0x7fffffffn, 0xffffffffn, 0x100000000n, (1n << 53n) - 1n, 1n << 53n, (1n << 63n) - 1n, 1n << 63n, (1n << 64n) - 1n, (1n << 64n) - 4096n];
const FIDS = [0, 1, 2, 3, 4, 5, 6, 50, 4095, 4096, 0x7777, 0xfffffffe, 0xffffffff];
const te = new TextEncoder();
const NAMES: readonly Uint8Array[] = [
  '', '.', '..', '/', 'a/b', '../..', 'dir', 'file', 'sub', 'a', 'bb', 'nope', 'x'.repeat(255), 'x'.repeat(256), 'y'.repeat(4000),
].map((s) => te.encode(s)).concat([Uint8Array.of(0), Uint8Array.of(0x61, 0, 0x62), Uint8Array.of(0xff, 0xfe), Uint8Array.of(0xc0, 0xaf)]);

function setLE(m: Uint8Array, off: number, len: number, v: number | bigint): void {
  let x = BigInt.asUintN(64, BigInt(v));
  for (let i = 0; i < len && off + i < m.length; i++) {
    m[off + i] = Number(x & 0xffn);
    x >>= 8n;
  }
}

const setSize = <T extends Uint8Array>(m: T): T => {
  if (m.length >= 4) new DataView(m.buffer, m.byteOffset, m.byteLength).setUint32(0, m.length >>> 0, true);
  return m;
};

/** One structure-aware mutation of `m` (returns a new array). */
export function mutateOnce(m0: Uint8Array, rng: Rng, corpus: readonly Uint8Array[]): { m: Uint8Array; sized: boolean } {
  let m: Uint8Array = m0.slice();
  const sp = spans(m) ?? [];
  const nums = sp.filter((s) => s.kind !== 'sdata' && s.kind !== 'Ddata' && s.kind !== 'Q');
  const lens = sp.filter((s) => s.kind === 'slen' || s.kind === 'Tcount' || s.kind === 'Rcount' || s.kind === 'Dcount');
  const strs = sp.filter((s) => s.kind === 'sdata');
  const op = rng.weighted([
    [6, 'num'], [4, 'lenPastEnd'], [3, 'truncate'], [3, 'size'], [2, 'extend'], [3, 'name'], [2, 'type'],
    [1, 'tag'], [3, 'fid'], [3, 'byte'], [1, 'splice'], [1, 'hugeCount'],
  ] as const);
  let sized = false;
  switch (op) {
    case 'num': {
      if (!nums.length) break;
      const s = rng.pick(nums);
      if (s.len === 8) setLE(m, s.off, 8, rng.chance(0.8) ? rng.pick(INTERESTING64) : rng.u64());
      else setLE(m, s.off, s.len, rng.chance(0.8) ? rng.pick(INTERESTING[s.len]) : rng.u32());
      break;
    }
    case 'lenPastEnd': {
      // a length that runs past the end of the message (or exactly to it, or far past it)
      if (!lens.length) { setLE(m, 0, 4, m.length + rng.range(1, 64)); sized = true; break; }
      const s = rng.pick(lens);
      const left = m.length - (s.off + s.len);
      const unit = s.kind === 'Rcount' ? 13 : 1;
      const v = rng.pick([Math.floor(left / unit) + 1, Math.floor(left / unit) + rng.range(2, 64), left, 0xffff, 0xffffffff]);
      setLE(m, s.off, s.len, v);
      break;
    }
    case 'hugeCount': {
      // Tread/Treaddir count, Twrite count: 4 GiB and friends
      const d = sp.filter((s) => s.kind === 'd' || s.kind === 'Dcount');
      if (!d.length) break;
      setLE(m, rng.pick(d).off, 4, rng.pick([0xffffffff, 0x80000000, 0x7fffffff, 4 << 20, (4 << 20) + 1, 0xfffffff0]));
      break;
    }
    case 'truncate': {
      const n = rng.range(0, Math.max(0, m.length - 1));
      m = m.slice(0, n);
      if (rng.chance(0.5)) { m = setSize(m.length >= 7 ? m : padTo7(m)); sized = true; }
      break;
    }
    case 'size': {
      setLE(m, 0, 4, rng.pick([0, 1, 6, 7, m.length - 1, m.length + 1, m.length + 4096, 0x7fffffff, 0xffffffff, rng.u32()]));
      sized = true;
      break;
    }
    case 'extend': {
      const b = rng.bytes(rng.pick([1, 2, 4, 13, 100, 5000]));
      const o = new Uint8Array(m.length + b.length);
      o.set(m);
      o.set(b, m.length);
      m = o;
      break;
    }
    case 'name': {
      if (!strs.length) break;
      const s = rng.pick(strs);
      const name = rng.chance(0.85) ? rng.pick(NAMES) : rng.bytes(rng.range(0, 40));
      const o = new Uint8Array(m.length - s.len + name.length);
      o.set(m.subarray(0, s.off));
      o.set(name, s.off);
      o.set(m.subarray(s.off + s.len), s.off + name.length);
      setLE(o, s.off - 2, 2, name.length);
      m = o;
      break;
    }
    case 'type': {
      if (m.length > 4) m[4] = rng.chance(0.8) ? rng.pick(T_TYPES) : rng.int(256);
      break;
    }
    case 'tag': {
      if (m.length >= 7) setLE(m, 5, 2, rng.pick([0, 1, 0xfffe, 0xffff, rng.int(0x10000)]));
      break;
    }
    case 'fid': {
      const d = sp.filter((s) => s.kind === 'd');
      if (!d.length) break;
      setLE(m, rng.pick(d).off, 4, rng.pick(FIDS));
      break;
    }
    case 'byte': {
      if (!m.length) break;
      const p = rng.int(m.length);
      m[p] = rng.chance(0.5) ? m[p] ^ (1 << rng.int(8)) : rng.int(256);
      break;
    }
    case 'splice': {
      const other = rng.pick(corpus);
      const a = rng.int(m.length + 1);
      const b = rng.int(other.length + 1);
      const o = new Uint8Array(a + other.length - b);
      o.set(m.subarray(0, a));
      o.set(other.subarray(b), a);
      m = o;
      break;
    }
  }
  return { m, sized };
}

function padTo7(m: Uint8Array): Uint8Array {
  const o = new Uint8Array(7);
  o.set(m.subarray(0, 7));
  return o;
}

/** A mutated message: 1–4 mutations of a corpus entry; the size field is fixed up half the time. */
export function genMessage(rng: Rng, corpus: readonly Uint8Array[]): Uint8Array {
  let m = rng.pick(corpus);
  let sized = false;
  const k = rng.weighted([[2, 0], [6, 1], [4, 2], [2, 3], [1, 4]] as const);
  for (let i = 0; i < k; i++) {
    const r = mutateOnce(m, rng, corpus);
    m = r.m;
    sized ||= r.sized;
  }
  if (!sized && rng.chance(0.7)) m = setSize(m.slice());
  if (m.length < 7) m = padTo7(m); // a well-formed chain: the readable part holds a header
  return m;
}

// ---------------------------------------------------------------- cases

export interface MsgItem {
  hex: string;
  /** writable capacity of the chain */
  cap: number;
  /** cut points of the readable / writable parts (each piece one descriptor) */
  rcuts: number[];
  wcuts: number[];
  indirect: boolean;
  /** reply capacity of the stream submission */
  streamCap: number;
}
export interface MsgCase {
  kind: 'msg';
  /** set up the fids the golden vectors assume first */
  prelude: boolean;
  items: MsgItem[];
}

export function genMsgCase(rng: Rng, corpus: readonly Uint8Array[]): MsgCase {
  const n = rng.range(1, 6);
  const items: MsgItem[] = [];
  for (let i = 0; i < n; i++) {
    const m = genMessage(rng, corpus);
    const cap = rng.weighted([[1, rng.range(7, 16)], [3, rng.range(7, 9000)], [1, rng.pick([11, 24, 4096, 65536])]] as const);
    const cuts = (len: number, k: number): number[] => Array.from({ length: k }, () => rng.int(Math.max(1, len)));
    items.push({
      hex: toHex(m),
      cap,
      rcuts: rng.chance(0.5) ? [] : cuts(m.length, rng.range(1, 8)),
      wcuts: rng.chance(0.6) ? [] : cuts(cap, rng.range(1, 4)),
      indirect: rng.chance(0.5),
      streamCap: rng.weighted([[1, rng.range(7, 64)], [3, rng.range(64, 70000)]] as const),
    });
  }
  return { kind: 'msg', prelude: rng.chance(0.25), items };
}

function pieces(total: number, pts: number[]): [number, number][] {
  const s = new Set<number>();
  for (const p of pts) if (total > 1) s.add(1 + (p % (total - 1)));
  const c = [...s].sort((a, b) => a - b);
  const out: [number, number][] = [];
  let p = 0;
  for (const q of [...c, total]) {
    out.push([p, q]);
    p = q;
  }
  return out;
}

/** The T-messages of the session the golden vectors assume: fids 0..5 in use (root, dirs, open files). */
export function preludeMessages(): Uint8Array[] {
  return [
    encode(MSG.Tversion, 0xffff, [65536, '9P2000.L']),
    encode(MSG.Tattach, 1, [0, 0xffffffff, 'root', '', 0]),
    encode(MSG.Twalk, 2, [0, 1, ['dir']]),
    encode(MSG.Twalk, 3, [0, 2, ['file']]),
    encode(MSG.Tlopen, 4, [2, 2]),
    encode(MSG.Twalk, 5, [0, 3, ['dir', 'a']]),
    encode(MSG.Tlopen, 6, [3, 2]),
    encode(MSG.Twalk, 7, [0, 4, ['dir', 'sub']]),
    encode(MSG.Twalk, 8, [0, 5, []]),
  ];
}

// ---------------------------------------------------------------- the target

export class MsgTarget {
  private session = -1;
  private constructor(readonly rig: Rig) {}

  static async create(): Promise<MsgTarget> {
    const rig = await Rig.create({ ramSize: 1 << 20, queueSize: 256 });
    rig.mux.forward = false;
    const t = new MsgTarget(rig);
    t.rig.serviceCheckSync();
    t.session = rig.device.openSession();
    t.streamSetup();
    return t;
  }

  private memBytes(): number {
    return this.rig.device.ram.buffer.byteLength;
  }

  /** the session the golden vectors assume: fids 0..5 (root, dirs, open files) */
  private prelude(): void {
    for (const m of preludeMessages()) this.rig.rawRpc(m, 4096);
  }

  private streamSetup(): void {
    this.submitSync(encode(MSG.Tversion, 0xffff, [65536, '9P2000.L']), 4096);
    this.submitSync(encode(MSG.Tattach, 1, [0, 0xffffffff, 'root', '', 0]), 4096);
  }

  private submitSync(m: Uint8Array, cap: number): number {
    const d = this.rig.driver;
    const req = d.alloc(Math.max(1, m.length));
    const rep = d.alloc(cap);
    this.rig.ram.set(m, req);
    let got = -1;
    try {
      const r = this.rig.device.submit(this.session, req, m.length, rep, cap, (len) => { got = len; });
      if (r !== 0) return -2;
      return got;
    } finally {
      d.free(req);
      d.free(rep);
    }
  }

  /** Run one case; throws an Error describing the first broken invariant. */
  async run(c: MsgCase): Promise<void> {
    const rig = this.rig;
    const mem0 = this.memBytes();
    if (c.prelude) this.prelude();
    const msgs = c.items.map((it) => fromHex(it.hex));
    // (a) the ring: all items in one batch, one kick
    const used0 = rig.usedIdx();
    const c0 = rig.device.counters();
    const chains: HandChain[] = [];
    try {
      for (let i = 0; i < msgs.length; i++) {
        const it = c.items[i];
        const specs: SegSpec[] = [];
        for (const [a, b] of pieces(msgs[i].length, it.rcuts)) specs.push({ data: msgs[i].subarray(a, b) });
        for (const [a, b] of pieces(it.cap, it.wcuts)) specs.push({ write: b - a });
        chains.push(rig.buildChain(specs, { indirect: it.indirect }));
      }
      for (const ch of chains) rig.post(ch.head);
      const before = rig.ram.slice();
      try {
        rig.kick();
      } catch (e) {
        throw new Error(`ring: notify threw: ${(e as Error).message}`);
      }
      if (rig.device.status & STATUS_NEEDS_RESET) throw new Error('ring: device set DEVICE_NEEDS_RESET for well-formed chains');
      if (rig.device.counters().malformedChains !== c0.malformedChains) throw new Error('ring: malformedChains went up for well-formed chains');
      const used = rig.usedSince(used0);
      const ids = used.map((u) => u.id).sort((a, b) => a - b);
      const want = chains.map((ch) => ch.head).sort((a, b) => a - b);
      if (ids.join() !== want.join()) throw new Error(`ring: used ids ${ids} != posted heads ${want} (unanswered or duplicated)`);
      chains.forEach((ch, i) => {
        const u = used.find((x) => x.id === ch.head)!;
        const reply = rig.gatherWritable(ch, u.len);
        const p = replyProblem(msgs[i], u.len, c.items[i].cap, reply);
        if (p) throw new Error(`ring: item ${i}: ${p}; reply=${toHex(reply)}`);
      });
      const allowed: Range[] = [rig.usedRing, ...chains.flatMap((ch) => ch.writable.map((w): Range => [w.addr, w.addr + w.len]))];
      const bad = outside(diffRanges(before, rig.ram), allowed);
      if (bad.length) throw new Error(`ring: guest RAM changed outside the writable buffers: ${JSON.stringify(bad.slice(0, 4))}`);
    } finally {
      rig.sync();
      for (const ch of chains) rig.release(ch);
    }
    // (b) the stream path: each item submitted to a session of the same core
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i];
      const cap = c.items[i].streamCap;
      const d = rig.driver;
      const req = d.alloc(Math.max(1, m.length));
      const rep = d.alloc(cap + 64);
      rig.ram.set(m, req);
      rig.ram.fill(0xa5, rep, rep + cap + 64);
      let calls = 0;
      let len = -1;
      try {
        let r: number;
        try {
          r = rig.device.submit(this.session, req, m.length, rep, cap, (l) => { calls++; len = l; });
        } catch (e) {
          throw new Error(`stream: submit threw: ${(e as Error).message}`);
        }
        if (r === 0) {
          for (let k = 0; k < 20 && calls === 0; k++) await new Promise((res) => setImmediate(res));
          if (calls !== 1) throw new Error(`stream: item ${i}: reply callback ran ${calls} times`);
          for (let k = cap; k < cap + 64; k++) if (rig.ram[rep + k] !== 0xa5) throw new Error(`stream: item ${i}: wrote past the reply capacity ${cap} (offset ${k})`);
          if (len > 0) {
            const reply = rig.ram.slice(rep, rep + len);
            const p = replyProblem(m, len, cap, reply);
            if (p) throw new Error(`stream: item ${i}: ${p}; reply=${toHex(reply)}`);
          }
        } else if (r !== 22 && r !== 11) throw new Error(`stream: submit returned ${r}`);
      } finally {
        d.free(req);
        d.free(rep);
      }
      if (m[4] === MSG.Tversion) this.streamSetup();
    }
    if (this.memBytes() !== mem0) throw new Error(`module memory grew from ${mem0} to ${this.memBytes()} bytes`);
    if (rig.device.counters().inflight !== 0) throw new Error(`inflight ${rig.device.counters().inflight} after a synchronous case`);
  }

  /** normal service over the ring and the stream session */
  check(): void {
    this.rig.serviceCheckSync();
    this.streamSetup();
    const r = this.submitSync(encode(MSG.Tgetattr, 3, [0, 0x7ffn]), 4096);
    if (r <= 0) throw new Error(`stream service check: Tgetattr answered ${r}`);
  }
}

