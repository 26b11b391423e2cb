import { describe, test, expect } from '@jest/globals';
import {
  type DevicePort,
  type QueueConfig,
  VIRTIO_9P_F_MOUNT_TAG,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  VIRTIO_F_RING_PACKED,
} from '../../src/testing/port.js';
import {
  SplitDriver,
  ArenaAllocator,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_DESC_F_INDIRECT,
} from '../../src/testing/virtio/split-driver.js';
import { P9Client, P9ClientError, P9FlushedError } from '../../src/testing/p9/client.js';
import { decode, encode, MESSAGES, MSG, NOTAG, P9_RLERROR } from '../../src/testing/p9/codec.js';

const ALL = VIRTIO_F_VERSION_1 | VIRTIO_9P_F_MOUNT_TAG | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX;

interface Seg {
  addr: number;
  len: number;
  write: boolean;
}
interface SeenChain {
  head: number;
  indirect: boolean;
  /** descriptor indexes (ring) visited */
  ringDescs: number[];
  segs: Seg[];
  readable: Uint8Array;
}

/**
 * Tiny fake virtio device over a plain Uint8Array: on notify walks the avail ring, follows direct
 * and indirect chains, echoes the readable bytes reversed into the writable buffers and writes the
 * used ring. Modes: 'sync' completes inside notify(); 'manual' holds chains until completeSome().
 */
class FakeDevice implements DevicePort {
  readonly ram: Uint8Array;
  readonly dv: DataView;
  deviceFeatures: bigint;
  driverFeatures = 0n;
  refuse = false;
  q?: QueueConfig;
  ok = false;
  mode: 'sync' | 'manual' = 'sync';
  lastAvail = 0;
  usedIdx = 0;
  lastSignalled = 0;
  notifies = 0;
  interruptsSent = 0;
  seen: SeenChain[] = [];
  held: SeenChain[] = [];
  errors: string[] = [];
  maxOutstanding = 0;
  /** decide the used.len for a chain: undefined = echo normally */
  lenOverride?: (c: SeenChain) => number | undefined;
  /** reply generator instead of reversed echo */
  reply?: (c: SeenChain) => Uint8Array;
  private cb: () => void = () => {};

  constructor(features = ALL, ramSize = 1 << 20) {
    this.ram = new Uint8Array(ramSize);
    this.dv = new DataView(this.ram.buffer);
    this.deviceFeatures = features;
  }
  get N(): number {
    return this.q!.size;
  }
  get eventIdx(): boolean {
    return (this.driverFeatures & VIRTIO_F_EVENT_IDX) !== 0n;
  }
  setDriverFeatures(bits: bigint): boolean {
    if (this.refuse || (bits & ~this.deviceFeatures) !== 0n || (bits & VIRTIO_F_VERSION_1) === 0n) return false;
    this.driverFeatures = bits;
    return true;
  }
  setupQueue(queue: number, cfg: QueueConfig): void {
    expect(queue).toBe(0);
    this.q = cfg;
  }
  driverOk(): void {
    this.ok = true;
  }
  onInterrupt(cb: () => void): void {
    this.cb = cb;
  }
  notify(queue: number): void {
    expect(queue).toBe(0);
    this.notifies++;
    this.drain();
    if (this.mode === 'sync') this.completeSome(this.held.length);
  }

  readDesc(a: number): { addr: number; len: number; flags: number; next: number } {
    return {
      addr: Number(this.dv.getBigUint64(a, true)),
      len: this.dv.getUint32(a + 8, true),
      flags: this.dv.getUint16(a + 12, true),
      next: this.dv.getUint16(a + 14, true),
    };
  }

  drain(): void {
    const q = this.q!;
    for (;;) {
      const availIdx = this.dv.getUint16(q.avail + 2, true);
      while (this.lastAvail !== availIdx) {
        const head = this.dv.getUint16(q.avail + 4 + 2 * (this.lastAvail % this.N), true);
        this.lastAvail = (this.lastAvail + 1) & 0xffff;
        this.held.push(this.walk(head));
        this.maxOutstanding = Math.max(this.maxOutstanding, this.held.length);
      }
      if (this.eventIdx) this.dv.setUint16(q.used + 4 + 8 * this.N, this.lastAvail, true);
      if (this.dv.getUint16(q.avail + 2, true) === this.lastAvail) break;
    }
  }

  walk(head: number): SeenChain {
    const q = this.q!;
    const c: SeenChain = { head, indirect: false, ringDescs: [], segs: [], readable: new Uint8Array(0) };
    let i = head;
    let table = -1;
    let limit = this.N;
    let seenWrite = false;
    const rd: number[] = [];
    for (let n = 0; ; n++) {
      if (n >= limit) {
        this.errors.push(`chain at ${head} too long`);
        break;
      }
      const d = this.readDesc(table >= 0 ? table + 16 * i : q.desc + 16 * i);
      if (table < 0) c.ringDescs.push(i);
      if (d.flags & VRING_DESC_F_INDIRECT) {
        if (table >= 0) this.errors.push('nested indirect');
        if ((this.driverFeatures & VIRTIO_F_INDIRECT_DESC) === 0n) this.errors.push('indirect not negotiated');
        if (d.flags & VRING_DESC_F_NEXT) this.errors.push('INDIRECT|NEXT');
        if (d.len === 0 || d.len % 16) this.errors.push('bad indirect len');
        c.indirect = true;
        table = d.addr;
        limit = d.len / 16;
        i = 0;
        n = -1;
        continue;
      }
      const write = (d.flags & VRING_DESC_F_WRITE) !== 0;
      if (!write && seenWrite) this.errors.push('readable after writable');
      seenWrite ||= write;
      c.segs.push({ addr: d.addr, len: d.len, write });
      if (!write) for (let k = 0; k < d.len; k++) rd.push(this.ram[d.addr + k]);
      if (!(d.flags & VRING_DESC_F_NEXT)) break;
      i = d.next;
    }
    c.readable = Uint8Array.from(rd);
    this.seen.push(c);
    return c;
  }

  /** complete `n` held chains; `order` picks which (default FIFO) */
  completeSome(n: number, pick: (held: SeenChain[]) => number = () => 0): void {
    const q = this.q!;
    const old = this.usedIdx;
    for (let k = 0; k < n && this.held.length > 0; k++) {
      const c = this.held.splice(pick(this.held), 1)[0];
      const reply = this.reply ? this.reply(c) : c.readable.slice().reverse();
      let pos = 0;
      for (const s of c.segs) {
        if (!s.write) continue;
        const m = Math.min(s.len, reply.length - pos);
        if (m > 0) this.ram.set(reply.subarray(pos, pos + m), s.addr);
        pos += Math.max(0, m);
      }
      const len = this.lenOverride?.(c) ?? pos;
      const slot = q.used + 4 + 8 * (this.usedIdx % this.N);
      this.dv.setUint32(slot, c.head, true);
      this.dv.setUint32(slot + 4, len, true);
      this.usedIdx = (this.usedIdx + 1) & 0xffff;
      this.dv.setUint16(q.used + 2, this.usedIdx, true);
    }
    if (this.usedIdx === old) return;
    let fire: boolean;
    if (this.eventIdx) {
      const e = this.dv.getUint16(q.avail + 4 + 2 * this.N, true);
      fire = ((this.usedIdx - e - 1) & 0xffff) < ((this.usedIdx - this.lastSignalled) & 0xffff);
    } else fire = (this.dv.getUint16(q.avail, true) & 1) === 0;
    this.lastSignalled = this.usedIdx;
    if (fire) {
      this.interruptsSent++;
      this.cb();
    }
  }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function checkPageSplit(segs: Seg[], page = 4096): void {
  for (const s of segs) {
    expect(s.len).toBeGreaterThan(0);
    expect(Math.floor(s.addr / page)).toBe(Math.floor((s.addr + s.len - 1) / page));
  }
}

function pattern(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed * 13 + (i >> 8)) & 0xff;
  return b;
}

describe('SplitDriver: negotiation and layout', () => {
  test('accepts VERSION_1 | MOUNT_TAG | INDIRECT | EVENT_IDX when offered', () => {
    const dev = new FakeDevice(ALL | VIRTIO_F_RING_PACKED);
    const drv = new SplitDriver(dev);
    expect(dev.driverFeatures).toBe(ALL);
    expect(drv.features).toBe(ALL);
    expect(drv.indirect).toBe(true);
    expect(drv.eventIdx).toBe(true);
    expect(dev.ok).toBe(true);
  });

  test('options turn off INDIRECT / EVENT_IDX; features not offered are not accepted', () => {
    const d1 = new FakeDevice();
    const drv1 = new SplitDriver(d1, { indirect: false, eventIdx: false });
    expect(d1.driverFeatures).toBe(VIRTIO_F_VERSION_1 | VIRTIO_9P_F_MOUNT_TAG);
    expect(drv1.indirect).toBe(false);
    const d2 = new FakeDevice(VIRTIO_F_VERSION_1 | VIRTIO_9P_F_MOUNT_TAG);
    const drv2 = new SplitDriver(d2);
    expect(d2.driverFeatures).toBe(VIRTIO_F_VERSION_1 | VIRTIO_9P_F_MOUNT_TAG);
    expect(drv2.indirect || drv2.eventIdx).toBe(false);
  });

  test('throws if the device refuses the features', () => {
    const dev = new FakeDevice();
    dev.refuse = true;
    expect(() => new SplitDriver(dev)).toThrow(/refused/);
    expect(dev.ok).toBe(false);
  });

  test('ring placement respects alignments and is passed to setupQueue', () => {
    const dev = new FakeDevice();
    const drv = new SplitDriver(dev, { queueSize: 8, ringBase: 0x2003 });
    expect(drv.descAddr).toBe(0x2010);
    expect(drv.availAddr).toBe(0x2010 + 16 * 8);
    expect(drv.availAddr % 2).toBe(0);
    expect(drv.usedAddr).toBe(drv.availAddr + 6 + 2 * 8 + 2); // padded to 4
    expect(drv.usedAddr % 4).toBe(0);
    expect(dev.q).toEqual({ size: 8, desc: drv.descAddr, avail: drv.availAddr, used: drv.usedAddr });
    expect(drv.usedEventAddr).toBe(drv.availAddr + 4 + 16);
    expect(drv.availEventAddr).toBe(drv.usedAddr + 4 + 64);
    expect(drv.arena.base % 4096).toBe(0);
    expect(drv.arena.base).toBeGreaterThanOrEqual(drv.ringEnd);
    expect(() => new SplitDriver(new FakeDevice(), { queueSize: 12 })).toThrow(/power of two/);
  });
});

describe('SplitDriver: chain layout', () => {
  test('direct chain: readable first, page-boundary splits, NEXT links, reversed echo', async () => {
    const dev = new FakeDevice();
    const drv = new SplitDriver(dev, { indirect: false, queueSize: 16 });
    const out = [pattern(5000, 1), pattern(10, 2)];
    const r = await drv.request(out, [100, 6000]);
    expect(dev.errors).toEqual([]);
    const c = dev.seen[0];
    expect(c.indirect).toBe(false);
    // 5000 bytes from a page-aligned arena start -> 4096 + 904; then 10; then 100; then 6000 split
    const reads = c.segs.filter((s) => !s.write);
    const writes = c.segs.filter((s) => s.write);
    expect(c.segs.slice(0, reads.length).every((s) => !s.write)).toBe(true);
    expect(reads.map((s) => s.len)).toEqual([4096, 904, 10]);
    expect(reads.reduce((a, s) => a + s.len, 0)).toBe(5010);
    expect(writes.reduce((a, s) => a + s.len, 0)).toBe(6100);
    expect(writes.length).toBeGreaterThanOrEqual(3);
    checkPageSplit(c.segs);
    expect(c.ringDescs.length).toBe(c.segs.length);
    // descriptor flags in the table
    c.ringDescs.forEach((d, k) => {
      const desc = drv.readDesc(d);
      const last = k === c.ringDescs.length - 1;
      expect(desc.flags & VRING_DESC_F_NEXT).toBe(last ? 0 : VRING_DESC_F_NEXT);
      if (!last) expect(desc.next).toBe(c.ringDescs[k + 1]);
    });
    // reversed echo, scattered over the writable buffers in order
    const expected = Uint8Array.from([...out[0], ...out[1]]).reverse();
    expect(r.len).toBe(5010);
    expect(r.in.map((b) => b.length)).toEqual([100, 6000]);
    const got = Uint8Array.from([...r.in[0], ...r.in[1]]).subarray(0, 5010);
    expect(got).toEqual(expected);
    // everything freed
    expect(drv.numFree).toBe(16);
    expect(drv.arena.allocatedBlocks).toBe(0);
    expect(drv.pending).toBe(0);
  });

  test('indirect table when negotiated and > 1 descriptor; single descriptor stays direct', async () => {
    const dev = new FakeDevice();
    const drv = new SplitDriver(dev, { queueSize: 8 });
    // capture the raw ring descriptor of the head before completion
    dev.mode = 'manual';
    const p = drv.request([pattern(30)], [8192]);
    const c = dev.seen[0];
    expect(c.indirect).toBe(true);
    expect(c.ringDescs.length).toBe(1);
    const headDesc = drv.readDesc(c.head);
    expect(headDesc.flags).toBe(VRING_DESC_F_INDIRECT);
    expect(headDesc.len).toBe(16 * c.segs.length);
    expect(headDesc.addr % 16).toBe(0);
    expect(c.segs.map((s) => s.write)).toEqual(c.segs.map((_, i) => i > 0));
    expect(c.segs.length).toBeGreaterThanOrEqual(3); // 8192 writable bytes span >= 2 pages
    checkPageSplit(c.segs);
    expect(drv.numFree).toBe(7);
    dev.completeSome(1);
    const r = await p;
    expect(r.len).toBe(30);
    expect(drv.chains[0].indirect).toBe(true);

    // a request that needs only one descriptor: no indirect table
    dev.mode = 'sync';
    const r2 = await drv.request([], [64]);
    const c2 = dev.seen[1];
    expect(c2.indirect).toBe(false);
    expect(c2.segs).toEqual([{ addr: c2.segs[0].addr, len: 64, write: true }]);
    expect(r2.len).toBe(0);
    expect(dev.errors).toEqual([]);
    expect(drv.arena.allocatedBlocks).toBe(0);
  });

  test('no indirect descriptors when INDIRECT_DESC was not negotiated', async () => {
    const dev = new FakeDevice(VIRTIO_F_VERSION_1 | VIRTIO_9P_F_MOUNT_TAG);
    const drv = new SplitDriver(dev, { queueSize: 8 });
    await drv.request([pattern(100)], [5000]);
    expect(dev.seen[0].indirect).toBe(false);
    expect(dev.seen[0].segs.length).toBe(dev.seen[0].ringDescs.length);
    expect(dev.errors).toEqual([]);
  });

  test('a direct chain longer than the queue is rejected, not queued forever', async () => {
    const dev = new FakeDevice();
    const drv = new SplitDriver(dev, { queueSize: 4, indirect: false });
    await expect(drv.request([pattern(10)], [4096 * 5])).rejects.toThrow(/exceeds the queue size/);
    await expect(drv.request([], [])).rejects.toThrow(/no buffers/);
  });

  test('rpc: regular, zero-copy read and zero-copy write layouts', async () => {
    const dev = new FakeDevice();
    const drv = new SplitDriver(dev, { indirect: false });
    const t = encode(MSG.Tclunk, 3, [7]);
    dev.reply = () => encode(MSG.Rclunk, 3, []);
    const r1 = await drv.rpc(t);
    expect(decode(r1).name).toBe('Rclunk');
    const w1 = dev.seen[0].segs.filter((s) => s.write);
    expect(w1.reduce((a, s) => a + s.len, 0)).toBe(8192);
    expect(dev.seen[0].readable).toEqual(t);

    // zero-copy read: in = [11, n]
    const data = pattern(3000, 5);
    dev.reply = () => encode(MSG.Rread, 4, [data]);
    const tr = encode(MSG.Tread, 4, [7, 0n, 3000]);
    const r2 = await drv.rpc(tr, { readData: 3000 });
    expect(decode(r2).fields[0]).toEqual(data);
    const w2 = dev.seen[1].segs.filter((s) => s.write);
    expect(w2[0].len).toBe(11);
    expect(w2.slice(1).reduce((a, s) => a + s.len, 0)).toBe(3000);

    // zero-copy write: out = [23-byte header, data], in = [4096]
    const wd = pattern(5000, 6);
    const hdr = encode(MSG.Twrite, 5, [7, 0n, new Uint8Array(0)]);
    new DataView(hdr.buffer).setUint32(0, 23 + wd.length, true);
    new DataView(hdr.buffer).setUint32(19, wd.length, true);
    dev.reply = () => encode(MSG.Rwrite, 5, [wd.length]);
    const r3 = await drv.rpc(hdr, { writeData: wd });
    expect(decode(r3).fields).toEqual([5000]);
    const c3 = dev.seen[2];
    expect(c3.readable.length).toBe(23 + 5000);
    expect(decode(c3.readable).fields[2]).toEqual(wd);
    expect(c3.segs.filter((s) => s.write).reduce((a, s) => a + s.len, 0)).toBe(4096);
    expect(c3.segs.filter((s) => !s.write)[0].len).toBe(23);
    expect(dev.errors).toEqual([]);
  });
});

describe('SplitDriver: completion', () => {
  test('used-ring reaping routes out-of-order completions by head', async () => {
    const dev = new FakeDevice();
    dev.mode = 'manual';
    const drv = new SplitDriver(dev, { queueSize: 16 });
    const outs = [0, 1, 2, 3, 4].map((i) => pattern(20 + i, i));
    const ps = outs.map((o) => drv.request([o], [64]));
    expect(drv.inFlight).toBe(5);
    dev.completeSome(2, (h) => h.length - 1); // complete the last two first
    dev.completeSome(3, (h) => Math.min(1, h.length - 1));
    const rs = await Promise.all(ps);
    rs.forEach((r, i) => {
      expect(r.len).toBe(outs[i].length);
      expect(r.in[0].subarray(0, r.len)).toEqual(outs[i].slice().reverse());
    });
    expect(drv.pending).toBe(0);
    // EVENT_IDX: used_event tracks the last seen used idx
    expect(drv.lastUsedIdx).toBe(5);
    expect(dev.dv.getUint16(drv.usedEventAddr, true)).toBe(5);
  });

  test('len 0 completion (flushed request) resolves with len 0 / empty reply', async () => {
    const dev = new FakeDevice();
    const drv = new SplitDriver(dev);
    dev.lenOverride = () => 0;
    const r = await drv.request([pattern(10)], [100]);
    expect(r.len).toBe(0);
    expect(r.in[0].length).toBe(100);
    const reply = await drv.rpc(encode(MSG.Tclunk, 1, [1]));
    expect(reply.length).toBe(0);
    const client = new P9Client(drv.rpcFn);
    await expect(client.clunk(1)).rejects.toBeInstanceOf(P9FlushedError);
    expect(drv.pending).toBe(0);
  });

  test('back-pressure: queue of 8, 50 concurrent requests, never throws, all complete', async () => {
    for (const indirect of [false, true]) {
      const dev = new FakeDevice();
      dev.mode = 'manual';
      const drv = new SplitDriver(dev, { queueSize: 8, indirect });
      const outs = Array.from({ length: 50 }, (_, i) => pattern(10 + i, i));
      const ps = outs.map((o) => drv.request([o], [200]));
      expect(drv.pending).toBe(50);
      expect(drv.inFlight).toBe(indirect ? 8 : 4);
      let rounds = 0;
      while (drv.pending > 0 && rounds++ < 1000) {
        dev.completeSome(3, (h) => h.length - 1); // LIFO-ish, out of order
        await tick();
        expect(drv.inFlight).toBeLessThanOrEqual(indirect ? 8 : 4);
      }
      const rs = await Promise.all(ps);
      rs.forEach((r, i) => expect(r.in[0].subarray(0, r.len)).toEqual(outs[i].slice().reverse()));
      expect(dev.maxOutstanding).toBeLessThanOrEqual(indirect ? 8 : 4);
      expect(dev.seen.length).toBe(50);
      expect(dev.errors).toEqual([]);
      expect(drv.numFree).toBe(8);
      expect(drv.arena.allocatedBlocks).toBe(0);
      expect(drv.anomalies).toEqual([]);
    }
  });

  test('back-pressure with a synchronously completing device', async () => {
    const dev = new FakeDevice();
    const drv = new SplitDriver(dev, { queueSize: 8, indirect: false });
    const ps = Array.from({ length: 50 }, (_, i) => drv.request([pattern(5000, i)], [5000]));
    const rs = await Promise.all(ps);
    expect(rs.every((r) => r.len === 5000)).toBe(true);
    expect(dev.errors).toEqual([]);
    expect(drv.numFree).toBe(8);
  });
});

describe('SplitDriver: notification suppression', () => {
  test('without EVENT_IDX: NO_NOTIFY suppresses kicks unless alwaysKick', async () => {
    const dev = new FakeDevice(VIRTIO_F_VERSION_1 | VIRTIO_9P_F_MOUNT_TAG);
    const drv = new SplitDriver(dev, { queueSize: 8 });
    await drv.request([pattern(4)], [8]);
    expect(dev.notifies).toBe(1);
    dev.dv.setUint16(dev.q!.used, 1, true); // NO_NOTIFY
    dev.mode = 'manual';
    const p = drv.request([pattern(4)], [8]);
    expect(dev.notifies).toBe(1);
    dev.drain();
    dev.completeSome(1);
    await p;
    const dev2 = new FakeDevice(VIRTIO_F_VERSION_1 | VIRTIO_9P_F_MOUNT_TAG);
    const drv2 = new SplitDriver(dev2, { alwaysKick: true });
    dev2.dv.setUint16(dev2.q!.used, 1, true);
    await drv2.request([pattern(4)], [8]);
    expect(dev2.notifies).toBe(1);
  });

  test('with EVENT_IDX: kicks follow avail_event', async () => {
    const dev = new FakeDevice();
    dev.mode = 'manual';
    const drv = new SplitDriver(dev, { queueSize: 16 });
    const a = drv.request([pattern(4)], [8]); // avail_event 0 -> kick
    expect(dev.notifies).toBe(1);
    expect(dev.dv.getUint16(drv.availEventAddr, true)).toBe(1);
    dev.dv.setUint16(drv.availEventAddr, 5, true); // device: "tell me when idx passes 5"
    const b = drv.request([pattern(4)], [8]); // new idx 2: no kick
    expect(dev.notifies).toBe(1);
    dev.drain();
    dev.dv.setUint16(drv.availEventAddr, 2, true);
    const c = drv.request([pattern(4)], [8]); // new idx 3, event 2 in [2,3) -> kick
    expect(dev.notifies).toBe(2);
    dev.completeSome(3);
    await Promise.all([a, b, c]);
    expect(dev.interruptsSent).toBe(1);
    expect(dev.dv.getUint16(drv.usedEventAddr, true)).toBe(3);
  });
});

describe('SplitDriver: low-level access for hostile-ring tests', () => {
  test('hand-made chain via writeDesc/publish/kick/readUsed', () => {
    const dev = new FakeDevice();
    const drv = new SplitDriver(dev, { queueSize: 8 });
    const rbuf = drv.alloc(4);
    const wbuf = drv.alloc(4);
    dev.ram.set([1, 2, 3, 4], rbuf);
    const d0 = drv.takeDesc();
    const d1 = drv.takeDesc();
    drv.writeDesc(d0, rbuf, 4, VRING_DESC_F_NEXT, d1);
    drv.writeDesc(d1, wbuf, 4, VRING_DESC_F_WRITE, 0);
    drv.publish(d0);
    expect(dev.notifies).toBe(0);
    drv.kick();
    expect(drv.readUsed()).toEqual([{ id: d0, len: 4 }]);
    expect(Array.from(dev.ram.subarray(wbuf, wbuf + 4))).toEqual([4, 3, 2, 1]);
    expect(drv.readUsed()).toEqual([]);
    expect(drv.anomalies.length).toBe(1); // head not owned by request()
    drv.giveDesc(d0);
    drv.giveDesc(d1);

    // indirect table written by hand
    const table = drv.alloc(32, 16);
    const w2 = drv.alloc(8);
    drv.writeIndirectTable(table, [
      { addr: rbuf, len: 4, flags: VRING_DESC_F_NEXT, next: 1 },
      { addr: w2, len: 8, flags: VRING_DESC_F_WRITE, next: 0 },
    ]);
    const h = drv.takeDesc();
    drv.writeDesc(h, table, 32, VRING_DESC_F_INDIRECT, 0);
    drv.publish(h);
    drv.kick();
    expect(drv.readUsed()).toEqual([{ id: h, len: 4 }]);
    expect(dev.seen[1].indirect).toBe(true);
    for (const a of [rbuf, wbuf, table, w2]) drv.free(a);
    drv.giveDesc(h);
    expect(drv.arena.allocatedBlocks).toBe(0);

    // setAvailIdx moves idx (and the shadow)
    drv.setAvailIdx(1000);
    expect(dev.dv.getUint16(drv.availAddr + 2, true)).toBe(1000);
    expect(drv.availIdxShadow).toBe(1000);
  });

  test('arena allocator: first fit, alignment, merge on free', () => {
    const a = new ArenaAllocator(0x1000, 0x1000);
    const x = a.tryAlloc(10);
    const y = a.tryAlloc(100, 64);
    expect(x).toBe(0x1000);
    expect(y % 64).toBe(0);
    expect(a.tryAlloc(0x1000)).toBe(-1);
    a.freeBlock(x);
    a.freeBlock(y);
    expect(a.freeBytes).toBe(0x1000);
    expect(a.tryAlloc(0x1000)).toBe(0x1000);
    expect(() => a.freeBlock(0x1234)).toThrow(/unallocated/);
  });
});

describe('P9Client over SplitDriver + a scripted fake server', () => {
  test('version uses NOTAG, Rlerror rejects with errno, zero-copy read above 1024', async () => {
    const dev = new FakeDevice();
    const drv = new SplitDriver(dev);
    const client = new P9Client(drv.rpcFn);
    dev.reply = (c) => {
      const t = decode(c.readable);
      switch (t.name) {
        case 'Tversion':
          return encode(MSG.Rversion, t.tag, [8192, '9P2000.L']);
        case 'Tattach':
          return encode(MSG.Rattach, t.tag, [{ type: 0x80, version: 0, path: 1n }]);
        case 'Tread':
          return encode(MSG.Rread, t.tag, [pattern(t.fields[2] as number)]);
        default:
          return encode(P9_RLERROR, t.tag, [2]);
      }
    };
    expect(await client.version(512000)).toEqual({ msize: 8192, version: '9P2000.L' });
    expect(decode(dev.seen[0].readable).tag).toBe(NOTAG);
    expect((await client.attach(0)).path).toBe(1n);
    const e = await client.getattr(0).catch((x) => x);
    expect(e).toBeInstanceOf(P9ClientError);
    expect((e as P9ClientError).errno).toBe(2);
    const small = await client.read(0, 0, 100);
    expect(small).toEqual(pattern(100));
    expect(dev.seen.at(-1)!.segs.filter((s) => s.write).reduce((a, s) => a + s.len, 0)).toBe(111);
    const big = await client.read(0, 0, 2000);
    expect(big).toEqual(pattern(2000));
    const w = dev.seen.at(-1)!.segs.filter((s) => s.write);
    expect(w[0].len).toBe(11);
    expect(client.outstanding.size).toBe(0);
  });
});

describe('P9Client: operations on the wire', () => {
  test('zero-copy write, readdirAll, readAll, getattr/statfs/lock objects', async () => {
    const dev = new FakeDevice();
    const drv = new SplitDriver(dev);
    const client = new P9Client(drv.rpcFn, { msize: 8192 });
    const file = pattern(2500, 9);
    const ents = [
      { qid: { type: 0x80, version: 0, path: 1n }, offset: 1n, type: 4, name: '.' },
      { qid: { type: 0x80, version: 0, path: 0n }, offset: 2n, type: 4, name: '..' },
      { qid: { type: 0, version: 3, path: 9n }, offset: 3n, type: 8, name: 'f' },
    ];
    const { encodeDirents } = await import('../../src/testing/p9/codec.js');
    const seenT: string[] = [];
    dev.reply = (c) => {
      const t = decode(c.readable);
      seenT.push(t.name);
      const f = t.fields;
      switch (t.name) {
        case 'Twrite':
          return encode(MSG.Rwrite, t.tag, [(f[2] as Uint8Array).length]);
        case 'Treaddir': {
          const off = Number(f[1]);
          return encode(MSG.Rreaddir, t.tag, [encodeDirents(ents.slice(off, off + 2))]);
        }
        case 'Tread': {
          const off = Number(f[1]);
          return encode(MSG.Rread, t.tag, [file.subarray(off, off + (f[2] as number))]);
        }
        case 'Tgetattr':
          return encode(MSG.Rgetattr, t.tag, [
            f[1], { type: 0, version: 1, path: 9n }, 0o100644, 1, 2, 1n, 0n, 2500n, 4096n, 8n,
            ...Array(10).fill(0n),
          ]);
        case 'Tstatfs':
          return encode(MSG.Rstatfs, t.tag, [0x01021997, 4096, 10n, 5n, 5n, 100n, 50n, 7n, 255]);
        case 'Tlock':
          return encode(MSG.Rlock, t.tag, [0]);
        case 'Tgetlock':
          return encode(MSG.Rgetlock, t.tag, [2, f[2], f[3], f[4], f[5]]);
        case 'Txattrwalk':
          return encode(MSG.Rxattrwalk, t.tag, [17n]);
        case 'Twalk':
          return encode(MSG.Rwalk, t.tag, [(f[2] as unknown[]).map((_, i) => ({ type: 0, version: 0, path: BigInt(i) }))]);
        case 'Treadlink':
          return encode(MSG.Rreadlink, t.tag, ['tgt']);
        default: {
          const fmt = MESSAGES[MSG[t.name] + 1].fmt;
          const vals: Record<string, unknown> = { Q: { type: 0, version: 0, path: 5n }, d: 0, b: 0, q: 0n, s: '' };
          return encode(MSG[t.name] + 1, t.tag, [...fmt].map((ch) => vals[ch]));
        }
      }
    };
    // zero-copy write: header (23 bytes, size covering the data) + data
    expect(await client.write(2, 100n, pattern(3000))).toBe(3000);
    const wchain = dev.seen.at(-1)!;
    expect(wchain.segs.filter((s) => !s.write)[0].len).toBe(23);
    expect(decode(wchain.readable).fields).toEqual([2, 100n, pattern(3000)]);
    // small write is inline
    expect(await client.write(2, 0, pattern(10))).toBe(10);
    expect(dev.seen.at(-1)!.segs.filter((s) => !s.write).length).toBe(1);

    const all = await client.readdirAll(2);
    expect(all.map((e) => new TextDecoder().decode(e.name))).toEqual(['.', '..', 'f']);
    expect(await client.readAll(2, 1000)).toEqual(file);
    const ga = await client.getattr(2);
    expect(ga.valid).toBe(0x7ffn);
    expect(ga.size).toBe(2500n);
    expect(ga.mode).toBe(0o100644);
    expect((await client.statfs(2)).namelen).toBe(255);
    expect(await client.lock(2, { type: 1 })).toBe(0);
    expect((await client.getlock(2, { type: 1, start: 5, length: 6 })).start).toBe(5n);
    expect(await client.xattrwalk(2, 3, 'user.x')).toBe(17n);
    expect((await client.walk(0, 4, ['a', 'b'])).length).toBe(2);
    expect(await client.readlink(4)).toBe('tgt');
    await client.mkdir(0, 'd', 0o755);
    await client.symlink(0, 'l', 't');
    await client.mknod(0, 'n', 0o10644, 0, 0);
    await client.link(0, 4, 'h');
    await client.renameat(0, 'a', 0, 'b');
    await client.rename(4, 0, 'c');
    await client.unlinkat(0, 'd', 0x200);
    await client.fsync(4);
    await client.setattr(4, { valid: 8, size: 0 });
    await client.xattrcreate(4, 'user.y', 3);
    await client.lcreate(0, 'new', 0o1101, 0o644);
    await client.lopen(4, 0);
    await client.flush(12);
    await client.remove(4);
    await client.clunk(3);
    const rawReply = await client.raw(MSG.Tclunk, [99]);
    expect(rawReply.name).toBe('Rclunk');
    expect(seenT).toContain('Tunlinkat');
    expect(client.outstanding.size).toBe(0);
    expect(dev.errors).toEqual([]);
    expect(drv.anomalies).toEqual([]);
  });
});
