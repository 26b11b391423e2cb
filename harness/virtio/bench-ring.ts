/**
 * A lean, synchronous guest for benchmarks: one split ring whose requests are written straight
 * into fixed guest buffers, kicked, and read back from the used ring — no Promises, no copies
 * on the guest side, so the numbers are the device's (ring → core → backend → reply). Works
 * with backends that complete synchronously (the in-memory backend); the general driver is
 * split-driver.ts.
 */
import type { DevicePort } from '../port.js';
import { VIRTIO_9P_F_MOUNT_TAG, VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1 } from '../port.js';

const F_NEXT = 1, F_WRITE = 2;

export class BenchRing {
  readonly ram: Uint8Array;
  readonly dv: DataView;
  readonly size: number;
  readonly desc = 0x1000;
  readonly avail: number;
  readonly used: number;
  /** request buffer (T-messages are built here), reply buffer, bulk data buffer */
  readonly req: number;
  readonly rep: number;
  readonly data: number;
  readonly dataSize: number;
  private availIdx = 0;
  private usedSeen = 0;
  private pos = 0;
  private tag = 0;

  constructor(private port: DevicePort, opts: { queueSize?: number; dataSize?: number } = {}) {
    this.ram = port.ram;
    this.dv = new DataView(this.ram.buffer, this.ram.byteOffset, this.ram.byteLength);
    this.size = opts.queueSize ?? 256;
    this.avail = this.desc + 16 * this.size;
    this.used = (this.avail + 6 + 2 * this.size + 4095) & ~4095;
    this.req = (this.used + 6 + 8 * this.size + 4095) & ~4095;
    this.rep = this.req + 65536;
    this.data = this.rep + 65536;
    this.dataSize = opts.dataSize ?? 1 << 20;
    if (this.data + this.dataSize > this.ram.length) throw new RangeError('bench ring: guest RAM too small');
    if (!port.setDriverFeatures(VIRTIO_F_VERSION_1 | VIRTIO_9P_F_MOUNT_TAG | VIRTIO_F_EVENT_IDX)) throw new Error('features refused');
    port.setupQueue(0, { size: this.size, desc: this.desc, avail: this.avail, used: this.used });
    // used_event far behind: the device never needs to interrupt; we poll the used ring.
    port.driverOk();
  }

  // ── building a T-message at `req` ──
  begin(type: number): this {
    this.pos = this.req + 7;
    this.dv.setUint8(this.req + 4, type);
    this.tag = (this.tag + 1) & 0x7fff;
    this.dv.setUint16(this.req + 5, this.tag, true);
    return this;
  }
  u8(v: number): this { this.dv.setUint8(this.pos, v); this.pos += 1; return this; }
  u16(v: number): this { this.dv.setUint16(this.pos, v, true); this.pos += 2; return this; }
  u32(v: number): this { this.dv.setUint32(this.pos, v >>> 0, true); this.pos += 4; return this; }
  u64(v: number): this { this.u32(v % 4294967296); return this.u32(Math.floor(v / 4294967296)); }
  str(b: Uint8Array): this { this.u16(b.length); this.ram.set(b, this.pos); this.pos += b.length; return this; }
  /** Finish the message (size field, plus `extra` payload bytes that follow elsewhere). */
  end(extra = 0): number {
    const len = this.pos - this.req;
    this.dv.setUint32(this.req, len + extra, true);
    return len;
  }

  /**
   * One request: readable segments then writable ones, as one direct chain at descriptor 0,
   * kicked and completed synchronously. Returns used.len.
   */
  call(outs: number[], ins: number[]): number {
    const dv = this.dv;
    const n = outs.length / 2 + ins.length / 2;
    let d = 0;
    for (let i = 0; i < outs.length; i += 2, d++) this.descAt(d, outs[i], outs[i + 1], d + 1 < n ? F_NEXT : 0, d + 1);
    for (let i = 0; i < ins.length; i += 2, d++) this.descAt(d, ins[i], ins[i + 1], F_WRITE | (d + 1 < n ? F_NEXT : 0), d + 1);
    dv.setUint16(this.avail + 4 + 2 * (this.availIdx & (this.size - 1)), 0, true);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    dv.setUint16(this.avail + 2, this.availIdx, true);
    this.port.notify(0);
    const idx = dv.getUint16(this.used + 2, true);
    if (idx === this.usedSeen) throw new Error('bench ring: request not completed synchronously');
    const len = dv.getUint32(this.used + 4 + 8 * (this.usedSeen & (this.size - 1)) + 4, true);
    this.usedSeen = (this.usedSeen + 1) & 0xffff;
    return len;
  }

  private descAt(i: number, gpa: number, len: number, flags: number, next: number): void {
    const a = this.desc + 16 * i;
    this.dv.setUint32(a, gpa, true);
    this.dv.setUint32(a + 4, 0, true);
    this.dv.setUint32(a + 8, len, true);
    this.dv.setUint16(a + 12, flags, true);
    this.dv.setUint16(a + 14, next, true);
  }

  /** A small request with one reply buffer; throws on Rlerror. */
  simple(replyCap = 4096): number {
    const len = this.end();
    const r = this.call([this.req, len], [this.rep, replyCap]);
    this.check();
    return r;
  }

  check(): void {
    if (this.dv.getUint8(this.rep + 4) === 7) throw new Error(`bench ring: Rlerror ${this.dv.getUint32(this.rep + 7, true)}`);
  }
}
