/**
 * Rig for ring-level tests and the fuzzers (tests/ring, tests/property, harness/fuzz): a real Virtio9pDevice, a port
 * multiplexer so that a device can be re-initialised by a *new* SplitDriver after reset (the
 * old driver stops receiving interrupts), hand-made chains written descriptor by descriptor,
 * synchronous raw RPCs (the memory backend completes inside notify), and RAM diffing.
 */
import { Virtio9pDevice } from '../../src/device.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import type { Backend } from '../../src/backends/backend.js';
import { SplitDriver, type SplitDriverOptions } from '../../src/testing/virtio/split-driver.js';
import type { DevicePort, QueueConfig } from '../../src/testing/port.js';
import { P9Client } from '../../src/testing/p9/client.js';
import { decode, encode, MSG, P9_RLERROR, type Decoded } from '../../src/testing/p9/codec.js';

export const F_NEXT = 1;
export const F_WRITE = 2;
export const F_INDIRECT = 4;
export const STATUS_DRIVER_OK = 4;
export const STATUS_NEEDS_RESET = 64;
export const IRQ_USED = 0;
export const IRQ_CONFIG = 1;
export const MAX_SEGS = 1024;

/**
 * The DevicePort the drivers see. Interrupts are counted per kind; used-buffer interrupts
 * (kind 0) are forwarded to the current driver only (and only while `forward`), config
 * interrupts are never forwarded (SplitDriver would treat them as used-buffer interrupts).
 */
export class PortMux implements DevicePort {
  readonly irq = [0, 0];
  forward = true;
  private cb: (() => void) | null = null;
  constructor(readonly device: Virtio9pDevice) {
    device.onInterrupt((kind) => {
      this.irq[kind] = (this.irq[kind] ?? 0) + 1;
      if (kind === IRQ_USED && this.forward && this.cb) this.cb();
    });
  }
  get ram(): Uint8Array {
    return this.device.ram;
  }
  get deviceFeatures(): bigint {
    return this.device.deviceFeatures;
  }
  setDriverFeatures(bits: bigint): boolean {
    return this.device.setDriverFeatures(bits);
  }
  setupQueue(queue: number, cfg: QueueConfig): void {
    this.device.setupQueue(queue, cfg);
  }
  driverOk(): void {
    this.device.driverOk();
  }
  notify(queue: number): void {
    this.device.notify(queue);
  }
  onInterrupt(cb: () => void): void {
    this.cb = cb;
  }
}

export interface RigOptions {
  ramSize?: number;
  queueSize?: number;
  indirect?: boolean;
  eventIdx?: boolean;
  backend?: Backend;
  debug?: boolean;
  msize?: number;
  driver?: SplitDriverOptions;
}

/** A segment of a hand-made chain: bytes to make readable, or a writable buffer of `len`. */
export type SegSpec = { data: Uint8Array } | { write: number } | { zero: 'r' | 'w' };

export interface HandChain {
  head: number;
  /** ring descriptors taken */
  descs: number[];
  /** arena blocks */
  allocs: number[];
  /** the writable buffers, in order */
  writable: { addr: number; len: number }[];
  /** the readable buffers, in order */
  readable: { addr: number; len: number }[];
  table?: number;
}

export interface RawReply {
  id: number;
  len: number;
  /** the first `len` bytes of the writable part */
  bytes: Uint8Array;
}

export class Rig {
  driver!: SplitDriver;
  client!: P9Client;
  readonly ramSize: number;
  private constructor(
    readonly device: Virtio9pDevice,
    readonly mux: PortMux,
    readonly backend: Backend,
    public opts: RigOptions,
  ) {
    this.ramSize = device.ram.length;
  }

  static async create(opts: RigOptions = {}): Promise<Rig> {
    const backend = opts.backend ?? defaultBackend();
    const device = await Virtio9pDevice.create({ backend, guestMemorySize: opts.ramSize ?? 1 << 20, debug: opts.debug });
    const rig = new Rig(device, new PortMux(device), backend, opts);
    rig.attachDriver();
    return rig;
  }

  get ram(): Uint8Array {
    return this.device.ram;
  }
  get dv(): DataView {
    return this.driver.dv;
  }
  get N(): number {
    return this.driver.queueSize;
  }

  /** A new SplitDriver (and client) on the device; the device must be freshly reset. */
  attachDriver(over: RigOptions = {}): void {
    this.opts = { ...this.opts, ...over };
    const o = this.opts;
    this.mux.forward = true;
    this.driver = new SplitDriver(this.mux, {
      queueSize: o.queueSize ?? 128,
      indirect: o.indirect ?? true,
      eventIdx: o.eventIdx ?? true,
      ...o.driver,
    });
    this.client = new P9Client(this.driver.rpcFn, { msize: o.msize ?? 65536 });
  }

  /** Device reset, then a new driver (re-initialisation from scratch). */
  reinit(over: RigOptions = {}): void {
    this.device.reset();
    this.attachDriver(over);
  }

  /** version + attach + getattr through the P9Client (the whole async driver path). */
  async serviceCheck(): Promise<void> {
    const v = await this.client.version(this.opts.msize ?? 65536);
    if (v.version !== '9P2000.L') throw new Error(`version: ${v.version}`);
    await this.client.attach(0, 0xffffffff, 'root', '', 0);
    const a = await this.client.getattr(0);
    if ((a.mode & 0o170000) !== 0o040000) throw new Error(`root is not a directory: mode ${a.mode.toString(8)}`);
  }

  /** The same, synchronously over hand-made chains (no interrupts needed). */
  serviceCheckSync(msize = 65536): void {
    const v = decode(this.rawRpc(encode(MSG.Tversion, 0xffff, [msize, '9P2000.L']), 4096).bytes);
    if (v.type !== MSG.Rversion) throw new Error(`Tversion → ${v.name}`);
    const at = decode(this.rawRpc(encode(MSG.Tattach, 1, [0, 0xffffffff, 'root', '', 0]), 4096).bytes);
    if (at.type !== MSG.Rattach) throw new Error(`Tattach → ${at.name} ${JSON.stringify(at.fields)}`);
    const g = decode(this.rawRpc(encode(MSG.Tgetattr, 2, [0, 0x7ffn]), 4096).bytes);
    if (g.type !== MSG.Rgetattr) throw new Error(`Tgetattr → ${g.name} ${JSON.stringify(g.fields)}`);
  }

  // ---------------------------------------------------------------- raw ring access

  usedIdx(): number {
    return this.driver.usedIdx;
  }
  usedElem(i: number): { id: number; len: number } {
    const a = this.driver.usedAddr + 4 + 8 * (i & (this.N - 1));
    return { id: this.dv.getUint32(a, true), len: this.dv.getUint32(a + 4, true) };
  }
  get usedEvent(): number {
    return this.dv.getUint16(this.driver.usedEventAddr, true);
  }
  set usedEvent(v: number) {
    this.dv.setUint16(this.driver.usedEventAddr, v & 0xffff, true);
  }
  get availEvent(): number {
    return this.dv.getUint16(this.driver.availEventAddr, true);
  }
  /** [start, end) of the used ring incl. avail_event */
  get usedRing(): [number, number] {
    return [this.driver.usedAddr, this.driver.usedAddr + 6 + 8 * this.N];
  }

  /** Write a descriptor at guest address `a` (addr as bigint to reach the whole u64 range). */
  writeDescAt(a: number, addr: number | bigint, len: number, flags: number, next: number): void {
    const dv = this.dv;
    dv.setBigUint64(a, BigInt.asUintN(64, BigInt(addr)), true);
    dv.setUint32(a + 8, len >>> 0, true);
    dv.setUint16(a + 12, flags & 0xffff, true);
    dv.setUint16(a + 14, next & 0xffff, true);
  }
  writeDesc(i: number, addr: number | bigint, len: number, flags: number, next: number): void {
    this.writeDescAt(this.driver.descAddr + 16 * i, addr, len, flags, next);
  }

  takeDesc(): number {
    const d = this.driver.takeDesc();
    if (d < 0) throw new Error('out of descriptors');
    return d;
  }

  /**
   * Lay out a well-formed chain: each spec becomes one descriptor (a readable copy of `data`,
   * a writable buffer, or a zero-length descriptor), direct in the ring table or as one
   * indirect table. Does not publish.
   */
  buildChain(specs: SegSpec[], opts: { indirect?: boolean; fill?: number } = {}): HandChain {
    const allocs: number[] = [];
    const writable: HandChain['writable'] = [];
    const readable: HandChain['readable'] = [];
    const entries: { addr: number; len: number; flags: number }[] = [];
    for (const s of specs) {
      if ('data' in s) {
        const a = this.driver.alloc(Math.max(1, s.data.length));
        allocs.push(a);
        this.ram.set(s.data, a);
        readable.push({ addr: a, len: s.data.length });
        entries.push({ addr: a, len: s.data.length, flags: 0 });
      } else if ('write' in s) {
        const a = this.driver.alloc(Math.max(1, s.write));
        allocs.push(a);
        this.ram.fill(opts.fill ?? 0xa5, a, a + s.write);
        writable.push({ addr: a, len: s.write });
        entries.push({ addr: a, len: s.write, flags: F_WRITE });
      } else {
        // zero-length, at a valid address (the arena start)
        entries.push({ addr: this.driver.arena.base, len: 0, flags: s.zero === 'w' ? F_WRITE : 0 });
      }
    }
    const descs: number[] = [];
    let table: number | undefined;
    if (opts.indirect) {
      table = this.driver.alloc(16 * entries.length, 16);
      allocs.push(table);
      entries.forEach((e, i) => {
        const last = i === entries.length - 1;
        this.writeDescAt(table! + 16 * i, e.addr, e.len, e.flags | (last ? 0 : F_NEXT), last ? 0 : i + 1);
      });
      const d = this.takeDesc();
      descs.push(d);
      this.writeDesc(d, table, 16 * entries.length, F_INDIRECT, 0);
    } else {
      for (let i = 0; i < entries.length; i++) descs.push(this.takeDesc());
      entries.forEach((e, i) => {
        const last = i === entries.length - 1;
        this.writeDesc(descs[i], e.addr, e.len, e.flags | (last ? 0 : F_NEXT), last ? 0 : descs[i + 1]);
      });
    }
    return { head: descs[0], descs, allocs, writable, readable, table };
  }

  /** Give a chain's descriptors and buffers back. */
  release(c: HandChain): void {
    for (const d of c.descs) this.driver.giveDesc(d);
    for (const a of c.allocs) this.driver.free(a);
  }

  /** Put a head on the avail ring (no kick). */
  post(head: number): void {
    this.driver.publish(head);
  }
  kick(): void {
    this.driver.kick();
  }

  /** The writable part of a chain as one byte string (first n bytes). */
  gatherWritable(c: HandChain, n = Infinity): Uint8Array {
    const total = c.writable.reduce((s, w) => s + w.len, 0);
    const out = new Uint8Array(Math.min(total, n));
    let pos = 0;
    for (const w of c.writable) {
      if (pos >= out.length) break;
      const k = Math.min(w.len, out.length - pos);
      out.set(this.ram.subarray(w.addr, w.addr + k), pos);
      pos += k;
    }
    return out;
  }

  /**
   * Used elements published since `from` (a used index), without reaping through the driver.
   * Call `sync()` afterwards so the driver's view (and used_event) catches up.
   */
  usedSince(from: number): { id: number; len: number }[] {
    const n = (this.usedIdx() - from) & 0xffff;
    const r: { id: number; len: number }[] = [];
    for (let k = 0; k < n; k++) r.push(this.usedElem(from + k));
    return r;
  }

  /** Let the driver reap (updates its last-used index and used_event); discards the log. */
  sync(): void {
    this.driver.readUsed();
  }

  /**
   * One request over a hand-made chain, synchronously: the memory backend answers inside
   * notify. Throws if the chain was not answered exactly once.
   */
  rawRpc(msg: Uint8Array, cap: number, layout?: { out?: Uint8Array[]; inLens?: number[]; indirect?: boolean }): RawReply {
    const specs: SegSpec[] = [];
    for (const o of layout?.out ?? [msg]) specs.push(o.length === 0 ? { zero: 'r' } : { data: o });
    for (const l of layout?.inLens ?? [cap]) specs.push(l === 0 ? { zero: 'w' } : { write: l });
    const c = this.buildChain(specs, { indirect: layout?.indirect });
    try {
      const from = this.usedIdx();
      const fwd = this.mux.forward;
      this.mux.forward = false;
      this.post(c.head);
      this.kick();
      this.mux.forward = fwd;
      const used = this.usedSince(from);
      this.sync();
      if (used.length !== 1 || used[0].id !== c.head) {
        throw new Error(`rawRpc: expected one used element for head ${c.head}, got ${JSON.stringify(used)} (status ${this.device.status})`);
      }
      return { id: used[0].id, len: used[0].len, bytes: this.gatherWritable(c, used[0].len) };
    } finally {
      this.release(c);
    }
  }
}

export function defaultBackend(): MemoryBackend {
  const b = new MemoryBackend();
  b.mkdirp('dir/sub');
  b.writeFile('file', 'hello, world\n');
  b.writeFile('dir/a', new Uint8Array(5000).map((_, i) => i & 0xff));
  b.writeFile('dir/bb', 'bb');
  return b;
}

// ---------------------------------------------------------------- RAM diffing

export type Range = [number, number];

/**
 * Byte ranges that differ between two snapshots (coalesced). Compares 4 KiB blocks with
 * Buffer.equals first, so an unchanged RAM costs little.
 */
export function diffRanges(a: Uint8Array, b: Uint8Array): Range[] {
  const A = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const B = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const out: Range[] = [];
  const BLK = 4096;
  for (let o = 0; o < A.length; o += BLK) {
    const e = Math.min(A.length, o + BLK);
    if (A.subarray(o, e).equals(B.subarray(o, e))) continue;
    for (let i = o; i < e; i++) {
      if (A[i] !== B[i]) {
        const last = out[out.length - 1];
        if (last && last[1] === i) last[1] = i + 1;
        else out.push([i, i + 1]);
      }
    }
  }
  return out;
}

/** The parts of `changed` not covered by `allowed` (allowed ranges may overlap). */
export function outside(changed: Range[], allowed: Range[]): Range[] {
  const al = allowed.filter(([s, e]) => e > s).sort((x, y) => x[0] - y[0]);
  const bad: Range[] = [];
  for (const [s0, e0] of changed) {
    let s = s0;
    for (const [as, ae] of al) {
      if (ae <= s) continue;
      if (as >= e0) break;
      if (as > s) bad.push([s, Math.min(as, e0)]);
      s = Math.max(s, ae);
      if (s >= e0) break;
    }
    if (s < e0) bad.push([s, e0]);
  }
  return bad;
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Checks a reply against its T-message: size = len, same tag, type T+1 or Rlerror. */
export function replyProblem(t: Uint8Array, len: number, cap: number, reply: Uint8Array): string | null {
  if (len === 0) return null;
  if (len > cap) return `used.len ${len} > writable capacity ${cap}`;
  if (len < 7) return `used.len ${len} < 7`;
  const dv = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
  const size = dv.getUint32(0, true);
  if (size !== len) return `reply size field ${size} != used.len ${len}`;
  const ttype = t[4];
  const ttag = t[5] | (t[6] << 8);
  const rtype = reply[4];
  const rtag = dv.getUint16(5, true);
  if (rtag !== ttag) return `reply tag ${rtag} != request tag ${ttag}`;
  if (rtype !== ((ttype + 1) & 0xff) && rtype !== P9_RLERROR) return `reply type ${rtype} for T type ${ttype}`;
  let d: Decoded;
  try {
    d = decode(reply);
  } catch (e) {
    return `reply does not decode: ${(e as Error).message} (${hex(reply)})`;
  }
  if (d.type === P9_RLERROR && ((d.fields[0] as number) === 0 || (d.fields[0] as number) > 4095)) return `Rlerror errno ${d.fields[0]}`;
  return null;
}
