/**
 * A guest-side packed-virtqueue driver (VIRTIO 1.2 §2.8), laid out like Linux's
 * virtio_ring.c packed path: descriptors written in ring order with the head's flags last,
 * buffer ids from a free list, used descriptors matched by id (completions may come out of
 * order), an indirect table when negotiated and the chain has more than one segment, and the
 * driver event-suppression structure left at ENABLE. Same request/rpc API as SplitDriver.
 */
import type { DevicePort } from '../port.js';
import { VIRTIO_9P_F_MOUNT_TAG, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1, VIRTIO_F_RING_PACKED } from '../port.js';
import { ArenaAllocator, type RequestResult, type RpcOptions } from './split-driver.js';

const F_NEXT = 1, F_WRITE = 2, F_INDIRECT = 4, F_AVAIL = 1 << 7, F_USED = 1 << 15;

export interface PackedDriverOptions {
  queueSize?: number;
  indirect?: boolean;
  ringBase?: number;
  pageSize?: number;
}

interface Pending { out: Uint8Array[]; inLens: number[]; resolve: (r: RequestResult) => void; reject: (e: Error) => void }
interface Buf { ndesc: number; allocs: number[]; ins: { addr: number; len: number }[]; resolve: (r: RequestResult) => void }

export class PackedDriver {
  ram: Uint8Array;
  private dv: DataView;
  /** re-take guest RAM from the port: the device's memory grew (large fid tables), which
   *  detaches a non-shared memory's old buffer */
  private remap(): void {
    this.ram = this.port.ram;
    this.dv = new DataView(this.ram.buffer, this.ram.byteOffset, this.ram.byteLength);
  }
  readonly size: number;
  readonly ringAddr: number;
  readonly driverEvent: number;
  readonly deviceEvent: number;
  private arena: ArenaAllocator;
  private indirect: boolean;
  private pageSize: number;
  private availIdx = 0;
  private availWrap = true;
  private usedIdx = 0;
  private usedWrap = true;
  private freeSlots: number;
  private freeIds: number[];
  private inflight = new Map<number, Buf>();
  private waiting: Pending[] = [];
  private pumping = false;

  constructor(private port: DevicePort, opts: PackedDriverOptions = {}) {
    this.ram = port.ram;
    this.dv = new DataView(this.ram.buffer, this.ram.byteOffset, this.ram.byteLength);
    port.onMemoryGrow?.(() => this.remap());
    this.size = opts.queueSize ?? 128;
    this.pageSize = opts.pageSize ?? 4096;
    const want = VIRTIO_F_VERSION_1 | VIRTIO_9P_F_MOUNT_TAG | VIRTIO_F_RING_PACKED | (opts.indirect ?? true ? VIRTIO_F_INDIRECT_DESC : 0n);
    const accept = want & port.deviceFeatures;
    if (!(accept & VIRTIO_F_RING_PACKED)) throw new Error('device does not offer RING_PACKED');
    this.indirect = (accept & VIRTIO_F_INDIRECT_DESC) !== 0n;
    if (!port.setDriverFeatures(accept)) throw new Error('features refused');
    this.ringAddr = opts.ringBase ?? 0x1000;
    this.driverEvent = this.ringAddr + 16 * this.size;
    this.deviceEvent = this.driverEvent + 4;
    const arenaBase = Math.ceil((this.deviceEvent + 4) / 4096) * 4096;
    this.arena = new ArenaAllocator(arenaBase, this.ram.length - arenaBase);
    this.ram.fill(0, this.ringAddr, this.deviceEvent + 4);
    this.freeSlots = this.size;
    this.freeIds = Array.from({ length: this.size }, (_, i) => this.size - 1 - i);
    port.setupQueue(0, { size: this.size, desc: this.ringAddr, avail: this.driverEvent, used: this.deviceEvent });
    port.onInterrupt(() => this.reap());
    port.driverOk();
  }

  get pending(): number { return this.inflight.size + this.waiting.length; }

  request(out: Uint8Array[], inLens: number[]): Promise<RequestResult> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ out, inLens, resolve, reject });
      this.pump();
    });
  }

  async rpc(tmsg: Uint8Array, opts: RpcOptions = {}): Promise<Uint8Array> {
    let out: Uint8Array[] = [tmsg];
    let inLens: number[] = [opts.replyCap ?? 8192];
    if (opts.writeData !== undefined) { out = [tmsg, opts.writeData]; inLens = [4096]; }
    else if (opts.readData !== undefined) inLens = [11, opts.readData];
    const r = await this.request(out, inLens);
    const all = new Uint8Array(r.in.reduce((s, b) => s + b.length, 0));
    let o = 0;
    for (const b of r.in) { all.set(b, o); o += b.length; }
    return all.subarray(0, r.len);
  }

  get rpcFn(): (tmsg: Uint8Array, opts?: RpcOptions) => Promise<Uint8Array> { return (t, o) => this.rpc(t, o); }

  private pages(addr: number, len: number, write: boolean, segs: { addr: number; len: number; write: boolean }[]): void {
    for (let a = addr, left = len; left > 0;) {
      const k = Math.min(this.pageSize - (a % this.pageSize), left);
      segs.push({ addr: a, len: k, write });
      a += k; left -= k;
    }
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    let posted = false;
    while (this.waiting.length) {
      const p = this.waiting[0];
      if (!this.tryPost(p)) break;
      this.waiting.shift();
      posted = true;
    }
    this.pumping = false;
    if (posted) this.port.notify(0);
  }

  private tryPost(p: Pending): boolean {
    if (!this.freeIds.length) return false;
    const allocs: number[] = [];
    const undo = () => allocs.forEach((a) => this.arena.freeBlock(a));
    const segs: { addr: number; len: number; write: boolean }[] = [];
    for (const b of p.out) {
      if (!b.length) continue;
      const a = this.arena.tryAlloc(b.length);
      if (a < 0) { undo(); return false; }
      allocs.push(a);
      this.ram.set(b, a);
      this.pages(a, b.length, false, segs);
    }
    const ins: { addr: number; len: number }[] = [];
    for (const n of p.inLens) {
      const a = this.arena.tryAlloc(Math.max(n, 1));
      if (a < 0) { undo(); return false; }
      allocs.push(a);
      this.ram.fill(0, a, a + n);
      ins.push({ addr: a, len: n });
      this.pages(a, n, true, segs);
    }
    const useIndirect = this.indirect && segs.length > 1;
    const ndesc = useIndirect ? 1 : segs.length;
    if (ndesc > this.freeSlots) {
      undo();
      if (ndesc > this.size) p.reject(new Error('chain longer than the ring'));
      return ndesc > this.size; // rejected requests leave the queue; others wait
    }
    const id = this.freeIds.pop()!;
    const wrapFlags = (w: boolean) => (w ? F_AVAIL : F_USED);
    if (useIndirect) {
      const t = this.arena.tryAlloc(16 * segs.length, 16);
      if (t < 0) { this.freeIds.push(id); undo(); return false; }
      allocs.push(t);
      segs.forEach((s, i) => this.writeDesc(t + 16 * i, s.addr, s.len, 0, s.write ? F_WRITE : 0));
      this.writeDesc(this.ringAddr + 16 * this.availIdx, t, 16 * segs.length, id, 0, false);
      this.dv.setUint16(this.ringAddr + 16 * this.availIdx + 14, F_INDIRECT | wrapFlags(this.availWrap), true);
      this.advance(1);
    } else {
      // write every descriptor but the head's flags, then the head's flags last (§2.8.21)
      const head = this.availIdx, headWrap = this.availWrap;
      let headFlags = 0;
      segs.forEach((s, i) => {
        const last = i === segs.length - 1;
        const f = (s.write ? F_WRITE : 0) | (last ? 0 : F_NEXT) | wrapFlags(this.availWrap);
        const at = this.ringAddr + 16 * this.availIdx;
        this.writeDesc(at, s.addr, s.len, last ? id : 0, f, i !== 0);
        if (i === 0) headFlags = f;
        this.advance(1);
      });
      void headWrap;
      this.dv.setUint16(this.ringAddr + 16 * head + 14, headFlags, true);
    }
    this.freeSlots -= ndesc;
    this.inflight.set(id, { ndesc, allocs, ins, resolve: p.resolve });
    return true;
  }

  private advance(n: number): void {
    this.availIdx += n;
    if (this.availIdx >= this.size) { this.availIdx -= this.size; this.availWrap = !this.availWrap; }
  }

  private writeDesc(at: number, addr: number, len: number, id: number, flags: number, writeFlags = true): void {
    this.dv.setUint32(at, addr % 2 ** 32, true);
    this.dv.setUint32(at + 4, Math.floor(addr / 2 ** 32), true);
    this.dv.setUint32(at + 8, len, true);
    this.dv.setUint16(at + 12, id, true);
    if (writeFlags) this.dv.setUint16(at + 14, flags, true);
  }

  /** Take every used descriptor at the used position (AVAIL == USED == our used wrap). */
  private reap(): void {
    let any = false;
    while (true) {
      const at = this.ringAddr + 16 * this.usedIdx;
      const f = this.dv.getUint16(at + 14, true);
      const avail = (f & F_AVAIL) !== 0, used = (f & F_USED) !== 0;
      if (avail !== used || used !== this.usedWrap) break;
      const id = this.dv.getUint16(at + 12, true);
      const len = this.dv.getUint32(at + 8, true);
      const b = this.inflight.get(id);
      if (!b) throw new Error(`packed driver: used id ${id} not in flight`);
      this.inflight.delete(id);
      this.usedIdx += b.ndesc;
      if (this.usedIdx >= this.size) { this.usedIdx -= this.size; this.usedWrap = !this.usedWrap; }
      this.freeSlots += b.ndesc;
      this.freeIds.push(id);
      const copies = b.ins.map((x) => this.ram.slice(x.addr, x.addr + x.len));
      for (const a of b.allocs) this.arena.freeBlock(a);
      b.resolve({ len, in: copies });
      any = true;
    }
    if (any && this.waiting.length) queueMicrotask(() => this.pump());
  }
}
