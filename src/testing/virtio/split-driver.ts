/**
 * Guest-side virtio split-virtqueue driver over a DevicePort, laid out like Linux's
 * drivers/virtio/virtio_ring.c + net/9p/trans_virtio.c.
 *
 * - Feature negotiation: VERSION_1 | MOUNT_TAG, plus INDIRECT_DESC / EVENT_IDX when requested by the
 *   options; each bit only if the device offers it. Throws if setDriverFeatures refuses.
 * - Rings at ringBase: descriptor table (align 16), avail ring (align 2), used ring (align 4).
 * - Guest buffers come from a first-fit allocator over [arenaBase, arenaBase + arenaSize).
 * - Buffers are split at page boundaries (pack_sg_list), readable descriptors first, then writable.
 *   With INDIRECT_DESC and more than one descriptor the chain is one indirect table (virtqueue_add_sgs).
 * - Kicks: by default notification suppression is respected like Linux (virtqueue_kick_prepare):
 *   without EVENT_IDX kick unless used.flags & NO_NOTIFY; with EVENT_IDX kick iff
 *   vring_need_event(avail_event, new, old). `alwaysKick: true` kicks after every publish instead.
 * - Interrupts: reap used.idx vs last seen; with EVENT_IDX write used_event = last seen used idx
 *   (and re-check used.idx afterwards, like virtqueue_enable_cb).
 * - Back-pressure: when descriptors (or arena space) run out, requests wait in FIFO order and are
 *   dispatched (in a microtask, never re-entrantly inside the device's notify) as chains complete.
 */
import {
  type DevicePort,
  VIRTIO_9P_F_MOUNT_TAG,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
} from '../port.js';

export const VRING_DESC_F_NEXT = 1;
export const VRING_DESC_F_WRITE = 2;
export const VRING_DESC_F_INDIRECT = 4;
export const VRING_AVAIL_F_NO_INTERRUPT = 1;
export const VRING_USED_F_NO_NOTIFY = 1;

export interface SplitDriverOptions {
  /** queue size, power of two (default 128, Linux/QEMU's VIRTQUEUE_NUM) */
  queueSize?: number;
  /** accept VIRTIO_F_INDIRECT_DESC if offered (default true) */
  indirect?: boolean;
  /** accept VIRTIO_F_EVENT_IDX if offered (default true) */
  eventIdx?: boolean;
  /** where the rings go (default 0x1000) */
  ringBase?: number;
  /** guest-buffer arena (default: the first page boundary after the rings .. end of RAM) */
  arenaBase?: number;
  arenaSize?: number;
  /** page size used to split buffers (default 4096) */
  pageSize?: number;
  /** kick after every publish, ignoring NO_NOTIFY / avail_event (default false) */
  alwaysKick?: boolean;
  /** extra feature bits to accept (masked by what the device offers) */
  extraFeatures?: bigint;
  /** byte written into writable buffers before they are handed to the device (default 0) */
  fillByte?: number;
}

export interface Desc {
  addr: number;
  len: number;
  flags: number;
  next: number;
}

export interface UsedElem {
  id: number;
  len: number;
}

export interface RequestResult {
  /** used.len as reported by the device */
  len: number;
  /** copies of the writable buffers (full capacity each), in order */
  in: Uint8Array[];
}

export interface RpcOptions {
  /** capacity of the reply buffer for a regular request (default 8192) */
  replyCap?: number;
  /** zero-copy read: in = [11-byte header buffer, readData bytes] */
  readData?: number;
  /** zero-copy write: out = [tmsg (23-byte Twrite header), writeData], in = [4096] */
  writeData?: Uint8Array;
}

/** Segments of a chain as laid out (for tests): guest address, length, device-writable. */
export interface ChainInfo {
  head: number;
  indirect: boolean;
  /** the table address when indirect */
  table?: number;
  segs: { addr: number; len: number; write: boolean }[];
}

interface Pending {
  out: Uint8Array[];
  inLens: number[];
  resolve: (r: RequestResult) => void;
  reject: (e: Error) => void;
}

interface InFlight {
  head: number;
  descs: number[];
  allocs: number[];
  ins: { addr: number; len: number }[];
  resolve: (r: RequestResult) => void;
  info: ChainInfo;
}

const align = (x: number, a: number): number => Math.ceil(x / a) * a;

/** First-fit allocator over a guest-physical range. */
export class ArenaAllocator {
  private free: { start: number; len: number }[];
  private used = new Map<number, { start: number; len: number }>();
  constructor(
    readonly base: number,
    readonly size: number,
  ) {
    this.free = size > 0 ? [{ start: base, len: size }] : [];
  }
  /** Returns the address or -1. The block covers [addr, addr+len) (len rounded up to 8, min 8). */
  tryAlloc(len: number, alignment = 8): number {
    const need = Math.max(8, align(len, 8));
    for (let i = 0; i < this.free.length; i++) {
      const f = this.free[i];
      const a = align(f.start, alignment);
      const pad = a - f.start;
      if (pad + need > f.len) continue;
      // carve [a, a+need) out of f
      const after = { start: a + need, len: f.start + f.len - (a + need) };
      const parts: { start: number; len: number }[] = [];
      if (pad > 0) parts.push({ start: f.start, len: pad });
      if (after.len > 0) parts.push(after);
      this.free.splice(i, 1, ...parts);
      this.used.set(a, { start: a, len: need });
      return a;
    }
    return -1;
  }
  freeBlock(addr: number): void {
    const b = this.used.get(addr);
    if (!b) throw new Error(`arena: free of unallocated address 0x${addr.toString(16)}`);
    this.used.delete(addr);
    // insert sorted, merge neighbours
    let i = 0;
    while (i < this.free.length && this.free[i].start < b.start) i++;
    this.free.splice(i, 0, { start: b.start, len: b.len });
    if (i + 1 < this.free.length && this.free[i].start + this.free[i].len === this.free[i + 1].start) {
      this.free[i].len += this.free[i + 1].len;
      this.free.splice(i + 1, 1);
    }
    if (i > 0 && this.free[i - 1].start + this.free[i - 1].len === this.free[i].start) {
      this.free[i - 1].len += this.free[i].len;
      this.free.splice(i, 1);
    }
  }
  get allocatedBlocks(): number {
    return this.used.size;
  }
  get freeBytes(): number {
    return this.free.reduce((s, f) => s + f.len, 0);
  }
}

export class SplitDriver {
  readonly port: DevicePort;
  ram: Uint8Array;
  dv: DataView;
  /** re-take guest RAM from the port: the device's memory grew (large fid tables), which
   *  detaches a non-shared memory's old buffer */
  private remap(): void {
    this.ram = this.port.ram;
    this.dv = new DataView(this.ram.buffer, this.ram.byteOffset, this.ram.byteLength);
  }
  readonly queueSize: number;
  readonly pageSize: number;
  /** negotiated feature bits */
  readonly features: bigint;
  readonly indirect: boolean;
  readonly eventIdx: boolean;
  readonly alwaysKick: boolean;
  /** ring addresses */
  readonly descAddr: number;
  readonly availAddr: number;
  readonly usedAddr: number;
  /** first byte after the used ring (incl. avail_event) */
  readonly ringEnd: number;
  readonly arena: ArenaAllocator;
  readonly fillByte: number;

  /** shadow of avail.idx (free running u16) */
  private availIdx = 0;
  /** avail.idx at the last kick decision */
  private kickedIdx = 0;
  private lastUsed = 0;
  private freeDescs: number[] = [];
  private inflight = new Map<number, InFlight>();
  private waitq: Pending[] = [];
  private usedLog: UsedElem[] = [];
  private pumpScheduled = false;
  private reaping = false;

  /** counters */
  kicks = 0;
  interrupts = 0;
  /** every chain this driver published via request(), in order (tests inspect layouts) */
  readonly chains: ChainInfo[] = [];
  /** anomalies seen while reaping (unknown head, len > capacity, used.idx jumped by > N) */
  readonly anomalies: string[] = [];

  constructor(port: DevicePort, opts: SplitDriverOptions = {}) {
    this.port = port;
    this.ram = port.ram;
    this.dv = new DataView(this.ram.buffer, this.ram.byteOffset, this.ram.byteLength);
    port.onMemoryGrow?.(() => this.remap());
    const N = opts.queueSize ?? 128;
    if (!Number.isInteger(N) || N < 1 || N > 32768 || (N & (N - 1)) !== 0) {
      throw new Error(`queueSize must be a power of two in [1, 32768], got ${N}`);
    }
    this.queueSize = N;
    this.pageSize = opts.pageSize ?? 4096;
    this.alwaysKick = opts.alwaysKick ?? false;
    this.fillByte = opts.fillByte ?? 0;

    // ---- features
    const offered = port.deviceFeatures;
    let want = VIRTIO_F_VERSION_1 | VIRTIO_9P_F_MOUNT_TAG | (opts.extraFeatures ?? 0n);
    if (opts.indirect ?? true) want |= VIRTIO_F_INDIRECT_DESC;
    if (opts.eventIdx ?? true) want |= VIRTIO_F_EVENT_IDX;
    const accept = want & offered;
    if (!port.setDriverFeatures(accept)) {
      throw new Error(`device refused driver features 0x${accept.toString(16)} (FEATURES_OK not set)`);
    }
    this.features = accept;
    this.indirect = (accept & VIRTIO_F_INDIRECT_DESC) !== 0n;
    this.eventIdx = (accept & VIRTIO_F_EVENT_IDX) !== 0n;

    // ---- layout
    const ringBase = opts.ringBase ?? 0x1000;
    this.descAddr = align(ringBase, 16);
    this.availAddr = align(this.descAddr + 16 * N, 2);
    this.usedAddr = align(this.availAddr + 6 + 2 * N, 4);
    this.ringEnd = this.usedAddr + 6 + 8 * N;
    if (this.ringEnd > this.ram.length) throw new Error('rings do not fit in guest RAM');
    this.ram.fill(0, this.descAddr, this.ringEnd);

    const arenaBase = opts.arenaBase ?? align(this.ringEnd, this.pageSize);
    const arenaSize = opts.arenaSize ?? this.ram.length - arenaBase;
    if (arenaBase < 0 || arenaSize < 0 || arenaBase + arenaSize > this.ram.length) {
      throw new Error('arena outside guest RAM');
    }
    if (arenaBase < this.ringEnd && arenaBase + arenaSize > this.descAddr) {
      throw new Error('arena overlaps the rings');
    }
    this.arena = new ArenaAllocator(arenaBase, arenaSize);

    for (let i = N - 1; i >= 0; i--) this.freeDescs.push(i); // pop() hands out 0, 1, 2, ...

    port.onInterrupt(() => this.onInterrupt());
    port.setupQueue(0, { size: N, desc: this.descAddr, avail: this.availAddr, used: this.usedAddr });
    port.driverOk();
  }

  // ------------------------------------------------------------------ public state

  /** requests in flight + waiting for descriptors */
  get pending(): number {
    return this.inflight.size + this.waitq.length;
  }
  get inFlight(): number {
    return this.inflight.size;
  }
  get waiting(): number {
    return this.waitq.length;
  }
  get numFree(): number {
    return this.freeDescs.length;
  }
  get lastUsedIdx(): number {
    return this.lastUsed;
  }
  get availIdxShadow(): number {
    return this.availIdx;
  }

  // ------------------------------------------------------------------ raw ring access

  /** avail.ring[i] address */
  availRingAddr(i: number): number {
    return this.availAddr + 4 + 2 * (i & (this.queueSize - 1));
  }
  /** used_event (avail ring offset 4 + 2N) */
  get usedEventAddr(): number {
    return this.availAddr + 4 + 2 * this.queueSize;
  }
  /** avail_event (used ring offset 4 + 8N) */
  get availEventAddr(): number {
    return this.usedAddr + 4 + 8 * this.queueSize;
  }

  writeDesc(index: number, gpa: number, len: number, flags: number, next: number): void {
    this.writeDescAt(this.descAddr + 16 * index, gpa, len, flags, next);
  }

  readDesc(index: number): Desc {
    return this.readDescAt(this.descAddr + 16 * index);
  }

  readDescAt(a: number): Desc {
    return {
      addr: Number(this.dv.getBigUint64(a, true)),
      len: this.dv.getUint32(a + 8, true),
      flags: this.dv.getUint16(a + 12, true),
      next: this.dv.getUint16(a + 14, true),
    };
  }

  /** Write an indirect table at gpa (entries: {addr, len, flags, next}). */
  writeIndirectTable(gpa: number, entries: Desc[]): void {
    entries.forEach((e, i) => this.writeDescAt(gpa + 16 * i, e.addr, e.len, e.flags, e.next));
  }

  /** Put head in the avail ring and bump avail.idx (no kick). */
  publish(head: number): void {
    this.dv.setUint16(this.availRingAddr(this.availIdx), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.dv.setUint16(this.availAddr + 2, this.availIdx, true);
  }

  /** Write avail.idx directly (and the shadow). */
  setAvailIdx(n: number): void {
    this.availIdx = n & 0xffff;
    this.dv.setUint16(this.availAddr + 2, this.availIdx, true);
  }

  get availFlags(): number {
    return this.dv.getUint16(this.availAddr, true);
  }
  set availFlags(v: number) {
    this.dv.setUint16(this.availAddr, v, true);
  }
  get usedIdx(): number {
    return this.dv.getUint16(this.usedAddr + 2, true);
  }
  get usedFlags(): number {
    return this.dv.getUint16(this.usedAddr, true);
  }

  /** Unconditional notify(0). */
  kick(): void {
    this.kicks++;
    this.kickedIdx = this.availIdx;
    this.port.notify(0);
  }

  /** All used elements reaped since the last readUsed() (reaps first, in case no interrupt came). */
  readUsed(): UsedElem[] {
    this.reap();
    const r = this.usedLog;
    this.usedLog = [];
    return r;
  }

  alloc(len: number, alignment = 8): number {
    const a = this.arena.tryAlloc(len, alignment);
    if (a < 0) throw new Error(`guest arena exhausted (wanted ${len} bytes)`);
    return a;
  }

  free(gpa: number): void {
    this.arena.freeBlock(gpa);
  }

  /** Take a descriptor index off the driver's free list (for hand-made chains); returns -1 if none. */
  takeDesc(): number {
    return this.freeDescs.pop() ?? -1;
  }
  giveDesc(i: number): void {
    this.freeDescs.push(i);
  }

  // ------------------------------------------------------------------ requests

  request(out: Uint8Array[], inLens: number[]): Promise<RequestResult> {
    return new Promise<RequestResult>((resolve, reject) => {
      const p: Pending = { out, inLens, resolve, reject };
      if (this.waitq.length > 0 || !this.tryDispatch(p)) this.waitq.push(p);
    });
  }

  /** 9P over the ring, laid out like net/9p/trans_virtio.c. Returns the reply bytes (first used.len bytes). */
  async rpc(tmsg: Uint8Array, opts: RpcOptions = {}): Promise<Uint8Array> {
    let out: Uint8Array[];
    let inLens: number[];
    if (opts.writeData !== undefined) {
      out = [tmsg, opts.writeData];
      inLens = [4096];
    } else if (opts.readData !== undefined) {
      out = [tmsg];
      inLens = [11, opts.readData];
    } else {
      out = [tmsg];
      inLens = [opts.replyCap ?? 8192];
    }
    const r = await this.request(out, inLens);
    if (r.len === 0) return new Uint8Array(0);
    const total = r.in.reduce((s, b) => s + b.length, 0);
    const n = Math.min(r.len, total);
    const reply = new Uint8Array(n);
    let pos = 0;
    for (const b of r.in) {
      if (pos >= n) break;
      const k = Math.min(b.length, n - pos);
      reply.set(b.subarray(0, k), pos);
      pos += k;
    }
    return reply;
  }

  /** rpc bound to this driver, for P9Client. */
  get rpcFn(): (tmsg: Uint8Array, opts?: RpcOptions) => Promise<Uint8Array> {
    return (t, o) => this.rpc(t, o);
  }

  // ------------------------------------------------------------------ internals

  private writeDescAt(a: number, gpa: number, len: number, flags: number, next: number): void {
    this.dv.setBigUint64(a, BigInt(gpa), true);
    this.dv.setUint32(a + 8, len >>> 0, true);
    this.dv.setUint16(a + 12, flags, true);
    this.dv.setUint16(a + 14, next, true);
  }

  /** pack_sg_list: split [addr, addr+len) at page boundaries. */
  private splitPages(addr: number, len: number, write: boolean, segs: ChainInfo['segs']): void {
    let a = addr;
    let left = len;
    while (left > 0) {
      const room = this.pageSize - (a % this.pageSize);
      const k = Math.min(room, left);
      segs.push({ addr: a, len: k, write });
      a += k;
      left -= k;
    }
  }

  /** Try to place p on the ring now. Returns false if resources are short (caller queues it). */
  private tryDispatch(p: Pending): boolean {
    const allocs: number[] = [];
    const undo = (): void => allocs.forEach((a) => this.arena.freeBlock(a));
    const segs: ChainInfo['segs'] = [];
    const ins: { addr: number; len: number }[] = [];

    for (const b of p.out) {
      if (b.length === 0) continue;
      const a = this.arena.tryAlloc(b.length);
      if (a < 0) return this.shortOf(p, undo, 'arena space');
      allocs.push(a);
      this.ram.set(b, a);
      this.splitPages(a, b.length, false, segs);
    }
    for (const n of p.inLens) {
      if (n === 0) {
        ins.push({ addr: 0, len: 0 });
        continue;
      }
      const a = this.arena.tryAlloc(n);
      if (a < 0) return this.shortOf(p, undo, 'arena space');
      allocs.push(a);
      this.ram.fill(this.fillByte, a, a + n);
      ins.push({ addr: a, len: n });
      this.splitPages(a, n, true, segs);
    }
    if (segs.length === 0) {
      undo();
      p.reject(new Error('request with no buffers'));
      return true;
    }

    const useIndirect = this.indirect && segs.length > 1;
    const needDescs = useIndirect ? 1 : segs.length;
    if (!useIndirect && needDescs > this.queueSize) {
      undo();
      p.reject(new Error(`chain of ${needDescs} descriptors exceeds the queue size ${this.queueSize}`));
      return true;
    }
    if (this.freeDescs.length < needDescs) return this.shortOf(p, undo, 'descriptors');

    let table: number | undefined;
    if (useIndirect) {
      table = this.arena.tryAlloc(16 * segs.length, 16);
      if (table < 0) return this.shortOf(p, undo, 'arena space');
      allocs.push(table);
      segs.forEach((s, i) => {
        const last = i === segs.length - 1;
        this.writeDescAt(
          table! + 16 * i,
          s.addr,
          s.len,
          (s.write ? VRING_DESC_F_WRITE : 0) | (last ? 0 : VRING_DESC_F_NEXT),
          last ? 0 : i + 1,
        );
      });
    }

    const descs: number[] = [];
    for (let i = 0; i < needDescs; i++) descs.push(this.freeDescs.pop()!);
    if (useIndirect) {
      this.writeDesc(descs[0], table!, 16 * segs.length, VRING_DESC_F_INDIRECT, 0);
    } else {
      segs.forEach((s, i) => {
        const last = i === segs.length - 1;
        this.writeDesc(
          descs[i],
          s.addr,
          s.len,
          (s.write ? VRING_DESC_F_WRITE : 0) | (last ? 0 : VRING_DESC_F_NEXT),
          last ? 0 : descs[i + 1],
        );
      });
    }
    const head = descs[0];
    const info: ChainInfo = { head, indirect: useIndirect, table, segs };
    this.chains.push(info);
    this.inflight.set(head, { head, descs, allocs, ins, resolve: p.resolve, info });
    this.publish(head);
    this.maybeKick();
    return true;
  }

  /** Resource shortage: queue if something in flight will free resources, else fail. */
  private shortOf(p: Pending, undo: () => void, what: string): boolean {
    undo();
    if (this.inflight.size > 0) return false;
    p.reject(new Error(`request can never fit: not enough ${what} with nothing in flight`));
    return true;
  }

  private maybeKick(): void {
    let kick: boolean;
    if (this.alwaysKick) kick = true;
    else if (this.eventIdx) {
      const availEvent = this.dv.getUint16(this.availEventAddr, true);
      const nw = this.availIdx;
      const old = this.kickedIdx;
      kick = ((nw - availEvent - 1) & 0xffff) < ((nw - old) & 0xffff);
      this.kickedIdx = nw;
    } else {
      kick = (this.usedFlags & VRING_USED_F_NO_NOTIFY) === 0;
      this.kickedIdx = this.availIdx;
    }
    if (kick) {
      this.kicks++;
      this.port.notify(0);
    }
  }

  private onInterrupt(): void {
    this.interrupts++;
    this.reap();
  }

  /** Reap the used ring. Safe to call any time (re-entrant calls are ignored). */
  reap(): void {
    if (this.reaping) return;
    this.reaping = true;
    try {
      for (;;) {
        let idx = this.usedIdx;
        let diff = (idx - this.lastUsed) & 0xffff;
        if (diff > this.queueSize) {
          this.anomalies.push(`used.idx jumped from ${this.lastUsed} to ${idx} (> queue size ${this.queueSize})`);
          idx = (this.lastUsed + this.queueSize) & 0xffff;
          diff = this.queueSize;
        }
        for (let k = 0; k < diff; k++) {
          const slot = this.usedAddr + 4 + 8 * ((this.lastUsed + k) & (this.queueSize - 1));
          const e = { id: this.dv.getUint32(slot, true), len: this.dv.getUint32(slot + 4, true) };
          this.usedLog.push(e);
          this.complete(e);
        }
        this.lastUsed = idx;
        if (this.eventIdx) this.dv.setUint16(this.usedEventAddr, this.lastUsed, true);
        // virtqueue_enable_cb: re-check after publishing used_event
        if (this.usedIdx === this.lastUsed) break;
      }
    } finally {
      this.reaping = false;
    }
    if (this.waitq.length > 0) this.schedulePump();
  }

  private complete(e: UsedElem): void {
    const f = this.inflight.get(e.id);
    if (!f) {
      this.anomalies.push(`used element for head ${e.id} which is not in flight (len ${e.len})`);
      return;
    }
    this.inflight.delete(e.id);
    const cap = f.ins.reduce((s, b) => s + b.len, 0);
    if (e.len > cap) this.anomalies.push(`head ${e.id}: used.len ${e.len} > writable capacity ${cap}`);
    const copies = f.ins.map((b) => this.ram.slice(b.addr, b.addr + b.len));
    for (const a of f.allocs) this.arena.freeBlock(a);
    for (const d of f.descs) this.freeDescs.push(d);
    f.resolve({ len: e.len, in: copies });
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Dispatch waiting requests in FIFO order while resources allow. */
  private pump(): void {
    while (this.waitq.length > 0) {
      const p = this.waitq[0];
      if (!this.tryDispatch(p)) break;
      this.waitq.shift();
    }
  }
}
