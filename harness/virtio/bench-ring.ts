/**
 * A lean guest for benchmarks: one split ring whose requests are written straight into fixed
 * guest buffers, kicked, and read back from the used ring — no per-request objects and no
 * copies on the guest side, so the numbers are the device's (ring → core → backend → reply).
 *
 * Completion: with a synchronous backend (memory, local) every request is answered inside
 * notify(), and the calls return the used length as a number. With an asynchronous backend
 * (`allowAsync`) a call that is not answered inside notify() returns a Promise instead: the ring
 * asks for an interrupt (EVENT_IDX used_event) and polls the used ring after each one. Callers
 * write `let n = g.x(...); if (typeof n !== 'number') n = await n;` so that a synchronous
 * backend never pays for a microtask.
 *
 * Batches: post() queues a chain (each at its own descriptor head, with its own reply/data
 * buffers) without kicking; kick() notifies once and completes them all (up to `slots` in flight).
 * The general driver is split-driver.ts.
 */
import type { DevicePort } from '../../src/testing/port.js';
import { VIRTIO_9P_F_MOUNT_TAG, VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1 } from '../../src/testing/port.js';

const F_NEXT = 1, F_WRITE = 2;
const RLERROR = 7;

export class BenchError extends Error {}

export class BenchRing {
  ram: Uint8Array;
  dv: DataView;
  /** re-take guest RAM from the port: the device's memory grew (large fid tables), which
   *  detaches a non-shared memory's old buffer */
  private remap(): void {
    this.ram = this.port.ram;
    this.dv = new DataView(this.ram.buffer, this.ram.byteOffset, this.ram.byteLength);
  }
  readonly size: number;
  readonly desc = 0x1000;
  readonly avail: number;
  readonly used: number;
  /** in-flight slots for post()/kick(); slot 0 is what the one-at-a-time calls use */
  readonly slots: number;
  /** per-slot request buffer (T-messages are built here), reply buffer, bulk data buffer */
  readonly reqs: number[] = [];
  readonly reps: number[] = [];
  readonly datas: number[] = [];
  readonly req: number;
  readonly rep: number;
  readonly data: number;
  readonly dataSize: number;
  /** requests completed outside notify() (asynchronous backends) */
  asyncCompletions = 0;
  private availIdx = 0;
  private usedSeen = 0;
  private posted = 0;
  private pos = 0;
  private tag = 0;
  private allowAsync: boolean;
  private wake: (() => void) | null = null;

  constructor(private port: DevicePort, opts: { queueSize?: number; dataSize?: number; slots?: number; allowAsync?: boolean } = {}) {
    this.ram = port.ram;
    this.dv = new DataView(this.ram.buffer, this.ram.byteOffset, this.ram.byteLength);
    port.onMemoryGrow?.(() => this.remap());
    this.size = opts.queueSize ?? 256;
    this.slots = opts.slots ?? 8;
    this.allowAsync = opts.allowAsync ?? false;
    if (this.slots * 4 > this.size) throw new RangeError('bench ring: too many slots for the queue');
    this.avail = this.desc + 16 * this.size;
    this.used = (this.avail + 6 + 2 * this.size + 4095) & ~4095;
    this.dataSize = opts.dataSize ?? 1 << 20;
    let at = (this.used + 6 + 8 * this.size + 4095) & ~4095;
    for (let s = 0; s < this.slots; s++) {
      // slot 0 gets the big data buffer; the others (batched small reads) 64 KiB each
      const ds = s === 0 ? this.dataSize : Math.min(this.dataSize, 65536);
      this.reqs.push(at); this.reps.push(at + 65536); this.datas.push(at + 131072);
      at += 131072 + ds;
    }
    if (at > this.ram.length) throw new RangeError('bench ring: guest RAM too small');
    [this.req, this.rep, this.data] = [this.reqs[0], this.reps[0], this.datas[0]];
    if (!port.setDriverFeatures(VIRTIO_F_VERSION_1 | VIRTIO_9P_F_MOUNT_TAG | VIRTIO_F_EVENT_IDX)) throw new Error('features refused');
    port.setupQueue(0, { size: this.size, desc: this.desc, avail: this.avail, used: this.used });
    // used_event is only moved when we wait for an asynchronous completion; otherwise the
    // device never needs to interrupt and we poll the used ring.
    this.dv.setUint16(this.avail + 4 + 2 * this.size, 0x8000, true);
    port.onInterrupt(() => { const w = this.wake; if (w) { this.wake = null; w(); } });
    port.driverOk();
  }

  // ── building a T-message at `req` (or another slot's request buffer) ──
  begin(type: number, slot = 0): this {
    const req = this.reqs[slot];
    this.pos = req + 7;
    this.dv.setUint8(req + 4, type);
    this.tag = (this.tag + 1) & 0x7fff;
    this.dv.setUint16(req + 5, this.tag, true);
    return this;
  }
  u8(v: number): this { this.dv.setUint8(this.pos, v); this.pos += 1; return this; }
  u16(v: number): this { this.dv.setUint16(this.pos, v, true); this.pos += 2; return this; }
  u32(v: number): this { this.dv.setUint32(this.pos, v >>> 0, true); this.pos += 4; return this; }
  u64(v: number): this { this.u32(v % 4294967296); return this.u32(Math.floor(v / 4294967296)); }
  str(b: Uint8Array): this { this.u16(b.length); this.ram.set(b, this.pos); this.pos += b.length; return this; }
  /** Finish the message of `slot` (size field, plus `extra` payload bytes that follow elsewhere). */
  end(extra = 0, slot = 0): number {
    const req = this.reqs[slot];
    const len = this.pos - req;
    this.dv.setUint32(req, len + extra, true);
    return len;
  }

  // ── chains: written at descriptor head 4*slot (at most 3 descriptors) ──
  private descAt(i: number, gpa: number, len: number, flags: number, next: number): void {
    const a = this.desc + 16 * i;
    const dv = this.dv;
    dv.setUint32(a, gpa, true);
    dv.setUint32(a + 4, 0, true);
    dv.setUint32(a + 8, len, true);
    dv.setUint16(a + 12, flags, true);
    dv.setUint16(a + 14, next, true);
  }
  private publish(head: number): void {
    const dv = this.dv;
    dv.setUint16(this.avail + 4 + 2 * (this.availIdx & (this.size - 1)), head, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    dv.setUint16(this.avail + 2, this.availIdx, true);
    this.posted++;
  }
  /** Queue a small request of `slot` (request + one reply buffer of `cap`), not kicked yet. */
  postSimple(reqLen: number, cap = 4096, slot = 0): void {
    const h = 4 * slot;
    this.descAt(h, this.reqs[slot], reqLen, F_NEXT, h + 1);
    this.descAt(h + 1, this.reps[slot], cap, F_WRITE, 0);
    this.publish(h);
  }
  /** Queue a Tread/Treaddir of `slot`: reply header (11 bytes) then `count` bytes at data. */
  postRead(reqLen: number, count: number, slot = 0): void {
    const h = 4 * slot;
    this.descAt(h, this.reqs[slot], reqLen, F_NEXT, h + 1);
    this.descAt(h + 1, this.reps[slot], 11, F_WRITE | F_NEXT, h + 2);
    this.descAt(h + 2, this.datas[slot], count, F_WRITE, 0);
    this.publish(h);
  }
  /** Queue a Twrite of `slot`: header, then `count` payload bytes at data; reply buffer. */
  postWrite(reqLen: number, count: number, slot = 0): void {
    const h = 4 * slot;
    this.descAt(h, this.reqs[slot], reqLen, F_NEXT, h + 1);
    this.descAt(h + 1, this.datas[slot], count, F_NEXT, h + 2);
    this.descAt(h + 2, this.reps[slot], 4096, F_WRITE, 0);
    this.publish(h);
  }

  /**
   * Kick and complete everything posted. Returns the used length of the last completion, or a
   * Promise of it when the backend did not answer inside notify().
   */
  kick(): number | Promise<number> {
    this.port.notify(0);
    const want = (this.usedSeen + this.posted) & 0xffff;
    if (this.dv.getUint16(this.used + 2, true) === want) return this.reap();
    if (!this.allowAsync) throw new BenchError('bench ring: request not completed synchronously (use an asynchronous run)');
    return this.waitUsed(want);
  }
  private reap(): number {
    const dv = this.dv;
    let len = 0;
    for (; this.posted > 0; this.posted--) {
      len = dv.getUint32(this.used + 4 + 8 * (this.usedSeen & (this.size - 1)) + 4, true);
      this.usedSeen = (this.usedSeen + 1) & 0xffff;
    }
    return len;
  }
  private async waitUsed(want: number): Promise<number> {
    this.asyncCompletions++;
    for (;;) {
      const idx = this.dv.getUint16(this.used + 2, true);
      if (idx === want) return this.reap();
      // interrupt when the device publishes the used entry after the ones we have
      this.dv.setUint16(this.avail + 4 + 2 * this.size, idx, true);
      await new Promise<void>((r) => {
        this.wake = r;
        if (this.dv.getUint16(this.used + 2, true) !== idx) { this.wake = null; r(); }
      });
    }
  }

  // ── one request at a time (slot 0), each checked for Rlerror ──
  /** A small request with one reply buffer. */
  simple(replyCap = 4096): number | Promise<number> {
    this.postSimple(this.end(), replyCap);
    return this.checked(this.kick(), 0);
  }
  /** The message built is a Tread/Treaddir of `count` bytes into `data`. */
  read(count: number): number | Promise<number> {
    this.postRead(this.end(), count);
    return this.checked(this.kick(), 0);
  }
  /** The message built is a Twrite of `count` bytes from `data`. */
  write(count: number): number | Promise<number> {
    this.postWrite(this.end(count), count);
    return this.checked(this.kick(), 0);
  }
  private checked(r: number | Promise<number>, slot: number): number | Promise<number> {
    if (typeof r === 'number') { this.check(slot); return r; }
    return r.then((n) => { this.check(slot); return n; });
  }

  check(slot = 0): void {
    const rep = this.reps[slot];
    if (this.dv.getUint8(rep + 4) === RLERROR) throw new BenchError(`bench ring: Rlerror ${this.dv.getUint32(rep + 7, true)} (request type ${this.dv.getUint8(this.reqs[slot] + 4)})`);
  }
}
