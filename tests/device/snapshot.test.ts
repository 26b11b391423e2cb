/**
 * Device snapshot and restore with a guest driver that carries on across the restore.
 *
 * Guest RAM belongs to the test (the "VMM"): copy mode over a plain buffer, so it survives the
 * device. The driver reaches the device through a `Slot` — the VMM's binding of its bus to the
 * current device object — and after `Virtio9pDevice.restore` the VMM points the slot at the new
 * device: the driver's ring state, fids and negotiated features are simply still valid.
 */
import { describe, test, expect, afterAll } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Virtio9pDevice, type DeviceOptions } from '../../src/device.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { LocalBackend } from '../../src/backends/local.js';
import type { Backend } from '../../src/backends/backend.js';
import { SplitDriver } from '../../src/testing/virtio/split-driver.js';
import { PackedDriver } from '../../src/testing/virtio/packed-driver.js';
import { P9Client } from '../../src/testing/p9/client.js';
import { MSG } from '../../src/testing/p9/codec.js';
import { guest, PciGuestPort, type Bus } from '../../harness/readme/guest.js';
import type { DevicePort, QueueConfig } from '../../src/testing/port.js';

const te = new TextEncoder(), td = new TextDecoder();
const O_RDONLY = 0, O_RDWR = 2, O_CREAT = 0o100;
const WRLCK = 1, UNLCK = 2;
const VIRTIO_F_RING_PACKED = 1n << 34n;
const RAM = 8 << 20;
const TAG = 'snap';

/** The VMM's binding of the guest's view of "the device" to the current device object. */
class Slot implements DevicePort {
  private listeners: (() => void)[] = [];
  cur!: Virtio9pDevice;
  constructor(readonly ram: Uint8Array, dev: Virtio9pDevice) { this.attach(dev); }
  attach(dev: Virtio9pDevice): void {
    this.cur = dev;
    dev.onInterrupt(() => { if (this.cur === dev) for (const l of this.listeners) l(); });
  }
  get deviceFeatures(): bigint { return this.cur.deviceFeatures; }
  setDriverFeatures(bits: bigint): boolean { return this.cur.setDriverFeatures(bits); }
  setupQueue(q: number, cfg: QueueConfig): void { this.cur.setupQueue(q, cfg); }
  driverOk(): void { this.cur.driverOk(); }
  notify(q: number): void { this.cur.notify(q); }
  onInterrupt(cb: () => void): void { this.listeners.push(cb); }
}

/** A backend wrapper whose reads wait until the test releases them (a Promise per read). */
function holdingReads<B extends Backend>(inner: B, { hideSnapshot = false } = {}) {
  const held: (() => void)[] = [];
  let holding = false;
  const backend = new Proxy(inner, {
    get(t, k, r) {
      if (hideSnapshot && k === 'snapshotState') return undefined;
      if (k === 'read' && holding) {
        return (...a: Parameters<Backend['read']>) => new Promise((res, rej) => held.push(() => {
          try { res(t.read(...a) as number); } catch (e) { rej(e); }
        }));
      }
      const v = Reflect.get(t, k, r);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  }) as B;
  return {
    backend,
    held,
    hold() { holding = true; },
    release() { holding = false; for (const h of held.splice(0)) h(); },
  };
}

/** Turn the event loop a few times (no timing: just lets anything that is ready run). */
async function spin(n = 10): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

interface Rig {
  ram: Uint8Array;
  mem: MemoryBackend;
  slot: Slot;
  client: P9Client;
  driver: SplitDriver | PackedDriver;
  opts: (backend: Backend) => DeviceOptions;
}

async function rig(kind: 'split' | 'packed', backend?: Backend, mem = new MemoryBackend()): Promise<Rig> {
  const ram = new Uint8Array(RAM);
  mem.writeFile('a.txt', 'hello');
  mem.writeFile('big', new Uint8Array(50000).fill(0x61));
  const opts = (b: Backend): DeviceOptions => ({ backend: b, guestRam: ram, tag: TAG });
  const dev = await Virtio9pDevice.create(opts(backend ?? mem));
  const slot = new Slot(ram, dev);
  const driver = kind === 'split' ? new SplitDriver(slot, { queueSize: 32 }) : new PackedDriver(slot, { queueSize: 32 });
  const client = new P9Client((t, o) => driver.rpc(t, o), { msize: 32768 });
  await client.mount({ msize: 32768 });
  client.useFid(0);
  return { ram, mem, slot, client, driver, opts };
}

async function open(c: P9Client, fid: number, name: string, flags = O_RDWR): Promise<void> {
  await c.walk(0, c.useFid(fid), [name]);
  await c.lopen(fid, flags);
}

const tmpdirs: string[] = [];
afterAll(() => { for (const d of tmpdirs) fs.rmSync(d, { recursive: true, force: true }); });

describe('snapshot and restore: the guest carries on', () => {
  for (const kind of ['split', 'packed'] as const) {
    test(`${kind} ring: fids, msize, ring indices, features and counters continue on the restored device`, async () => {
      const r = await rig(kind);
      const { client: c, slot } = r;
      const A = slot.cur;
      await open(c, 1, 'a.txt', O_RDONLY);
      await open(c, 2, 'big', O_RDONLY);
      await c.walk(0, c.useFid(3), []);
      await c.lcreate(3, 'new.txt', O_RDWR | O_CREAT, 0o644);
      expect(await c.write(3, 0, te.encode('abc'))).toBe(3);
      const usedBefore = kind === 'split' ? (r.driver as SplitDriver).usedIdx : 0;

      const snap = await A.snapshot();
      const countersA = A.counters();
      const state = Virtio9pDevice.snapshotBackendState(snap);
      expect(state).not.toBeNull();
      const memB = MemoryBackend.restoreState(state!);
      const B = await Virtio9pDevice.restore(snap, r.opts(memB));
      expect(B.counters()).toEqual(countersA);
      expect(B.status).toBe(A.status);
      expect(B.status & 0x4f).toBe(0x0f);                    // ACK | DRIVER | FEATURES_OK | DRIVER_OK, no NEEDS_RESET
      expect(B.copyMode).toBe(true);
      expect(B.ram).toBe(r.ram);
      expect(B.inflight).toBe(0);
      slot.attach(B);

      // no reset, no re-negotiation: the driver's next request just goes on the ring
      expect(td.decode(await c.read(1, 0, 100))).toBe('hello');
      if (kind === 'split') {
        const d = r.driver as SplitDriver;
        expect(usedBefore).toBeGreaterThan(5);
        expect(d.usedIdx).toBe((usedBefore + 1) & 0xffff);   // continues from the saved index
        expect(d.anomalies).toEqual([]);
      }
      // msize 32768 is kept: a read of 60000 bytes is cut to msize - 11
      expect((await c.read(2, 0, 60000)).length).toBe(32768 - 11);
      // writes go to the restored backend; the old one is not touched
      expect(await c.write(3, 3, te.encode('def'))).toBe(3);
      expect(memB.readTextSync('new.txt')).toBe('abcdef');
      expect(r.mem.readTextSync('new.txt')).toBe('abc');
      await c.clunk(1);
      await c.clunk(2);
      await c.clunk(3);

      const k = B.counters();
      expect(k.requests[MSG.Tversion]).toBe(1);               // no second Tversion
      expect(k.requests[MSG.Tread]).toBe((countersA.requests[MSG.Tread] ?? 0) + 2);
      expect(k.requests[MSG.Twrite]).toBe(2);
      expect(k.replies).toBe(countersA.replies + 6);
      expect(k.errors).toEqual({});
      expect(k.malformedChains + k.malformedMessages + k.needsReset).toBe(0);
      if (kind === 'packed') expect(B.deviceFeatures & VIRTIO_F_RING_PACKED).toBe(VIRTIO_F_RING_PACKED);
      // the old device saw nothing after the snapshot
      expect(A.counters()).toEqual(countersA);
    });
  }

  test('a fid table that grew past its first area (into the fid heap) is saved and restored', async () => {
    const r = await rig('split');
    const { client: c, slot } = r;
    const A = slot.cur;
    const N = 5000; // the table doubles past 768 fids: 8,192 entries in the heap
    for (let i = 1; i <= N; i += 50) {
      const ps: Promise<unknown>[] = [];
      for (let k = i; k < i + 50; k++) ps.push(c.walk(0, c.useFid(k), [k % 2 ? 'a.txt' : 'big']));
      await Promise.all(ps);
    }
    await c.lopen(N, O_RDONLY);
    const snap = await A.snapshot();
    const jl = new DataView(snap.buffer, snap.byteOffset).getUint32(8, true);
    expect(JSON.parse(td.decode(snap.subarray(12, 12 + jl))).fidTables).toEqual([{ session: 0, bytes: 8192 * 32 }]);
    const memB = MemoryBackend.restoreState(Virtio9pDevice.snapshotBackendState(snap)!);
    // the restored device grows its memory to hold the table again; the bytes are the saved ones
    const B = await Virtio9pDevice.restore(snap, r.opts(memB));
    slot.attach(B);
    for (let i = 1; i <= N; i += 50) {
      const ps: Promise<unknown>[] = [];
      for (let k = i; k < i + 50; k++) ps.push(c.getattr(k).then((st) => expect(st.size).toBe(k % 2 ? 5n : 50000n)));
      await Promise.all(ps);
    }
    expect((await c.read(N, 0, 10)).length).toBe(10);        // the open fid is still open
    await c.clunk(1);
    await c.walk(0, c.useFid(N + 1), ['a.txt']);
    expect((await c.getattr(N + 1)).size).toBe(5n);
    expect(B.counters().errors).toEqual({});
    // a snapshot that lost its table bytes is refused, not restored without its fids
    const cut = snap.slice(0, snap.length - 1);
    await expect(Virtio9pDevice.restore(cut, r.opts(memB))).rejects.toThrow(/not a device snapshot/);
  });

  test('PCI transport: registers and configuration space read the same after restore, and the driver keeps using BAR 0', async () => {
    const ram = new Uint8Array(RAM);
    const mem = new MemoryBackend();
    mem.writeFile('a.txt', 'over pci');
    let dev: Virtio9pDevice;
    let isr: () => void = () => {};
    const opts = (b: Backend): DeviceOptions => ({ backend: b, guestRam: ram, tag: TAG, onInterrupt: () => isr() });
    dev = await Virtio9pDevice.create(opts(mem));
    const config: Bus = { read: (o, s) => dev.pci.configRead(o, s), write: (o, v, s) => dev.pci.configWrite(o, v, s) };
    const inBar = (a: number) => a >= dev.pci.bar0() && a < dev.pci.bar0() + dev.pci.barSize;
    const bus: Bus = {
      read: (a, s) => (inBar(a) ? dev.pci.barRead(a - dev.pci.bar0(), s) : 0xffffffff),
      write: (a, v, s) => { if (inBar(a)) dev.pci.barWrite(a - dev.pci.bar0(), v, s); },
    };
    const port = new PciGuestPort(config, bus, ram, 0xfe00_0000);
    isr = () => port.interrupt();
    const gfs = await guest.mount(port, { queueSize: 16 });
    const fid = await gfs.open('a.txt');
    expect(await gfs.read(fid)).toBe('over pci');

    // every register a driver reads (not the ISR: reading it clears it)
    const regs = (d: Virtio9pDevice) => {
      const out: Record<string, number> = {};
      const cfg: number[] = [];
      for (let o = 0; o < 256; o += 4) cfg.push(d.pci.configRead(o, 4));
      out.cfg = cfg.reduce((h, v) => (Math.imul(h, 31) + v) >>> 0, 7);
      for (const sel of [0, 1]) {
        d.pci.barWrite(0x00, sel); out[`devFeat${sel}`] = d.pci.barRead(0x04);
        d.pci.barWrite(0x08, sel); out[`drvFeat${sel}`] = d.pci.barRead(0x0c);
      }
      out.numQueues = d.pci.barRead(0x12, 2);
      out.status = d.pci.barRead(0x14, 1);
      out.cfgGen = d.pci.barRead(0x15, 1);
      d.pci.barWrite(0x16, 0, 2);
      for (const [n, o, s] of [['qsize', 0x18, 2], ['qmsix', 0x1a, 2], ['qready', 0x1c, 2], ['qnotify', 0x1e, 2],
        ['qdesc', 0x20, 4], ['qdriver', 0x28, 4], ['qdevice', 0x30, 4]] as const) out[n] = d.pci.barRead(o, s);
      return out;
    };
    const A = dev;
    const snap = await A.snapshot();
    const before = regs(A);
    expect(before.status).toBe(0x0f);
    expect(before.qready).toBe(1);
    expect(before.qsize).toBe(16);
    const B = await Virtio9pDevice.restore(snap, opts(MemoryBackend.restoreState(Virtio9pDevice.snapshotBackendState(snap)!)));
    expect(regs(B)).toEqual(before);
    expect(B.pci.bar0()).toBe(0xfe00_0000);
    dev = B;                                              // the VMM's bus now reaches B
    expect(port.tag).toBe(TAG);
    expect(await gfs.write(fid, 8, ' and on')).toBe(7);
    expect(await gfs.read(fid)).toBe('over pci and on');
    await gfs.close(fid);
    expect(await gfs.readFile('a.txt')).toBe('over pci and on');
    expect(B.counters().errors).toEqual({});
    expect(port.status).toBe(0x0f);
  });

  test('a snapshot taken while a backend read is in flight waits for it, and the reply reaches the guest first', async () => {
    const mem = new MemoryBackend();
    const h = holdingReads(mem);
    const r = await rig('split', h.backend, mem);
    const { client: c, slot } = r;
    const A = slot.cur;
    await open(c, 1, 'a.txt', O_RDONLY);
    h.hold();
    let replied = false;
    const read = c.read(1, 0, 100).then((d) => { replied = true; return td.decode(d); });
    while (h.held.length === 0) await spin(1);
    expect(A.inflight).toBe(1);
    const d = r.driver as SplitDriver;
    const usedBefore = d.usedIdx;
    let taken = false, usedAtSnapshot = -1;
    const snapP = A.snapshot().then((s) => { taken = true; usedAtSnapshot = d.usedIdx; return s; });
    await spin(20);
    expect(taken).toBe(false);                            // still waiting: the read is in flight
    expect(replied).toBe(false);
    h.release();
    const snap = await snapP;
    expect(usedAtSnapshot).toBe((usedBefore + 1) & 0xffff);  // the reply was in the used ring before the state was taken
    expect(await read).toBe('hello');
    expect(A.inflight).toBe(0);
    const k = A.counters();
    expect(k.inflight).toBe(0);
    expect(k.inflightHighWater).toBe(1);

    // the state in the snapshot has nothing in flight; the guest continues on B
    const B = await Virtio9pDevice.restore(snap, r.opts(MemoryBackend.restoreState(Virtio9pDevice.snapshotBackendState(snap)!)));
    expect(B.counters()).toEqual(k);
    slot.attach(B);
    expect(td.decode(await c.read(1, 1, 100))).toBe('ello');
    expect((r.driver as SplitDriver).anomalies).toEqual([]);
  });

  test('locks and xattr buffers held by the glue survive the restore', async () => {
    const r = await rig('split');
    const { client: c, slot } = r;
    await open(c, 1, 'a.txt');
    await open(c, 2, 'a.txt');
    expect(await c.lock(1, { type: WRLCK, start: 0, length: 10, proc_id: 11, client_id: 'one' })).toBe(0);
    // an xattr being written (Txattrcreate + part of its value) and one being read (Txattrwalk)
    await c.walk(0, c.useFid(3), ['a.txt']);
    await c.xattrcreate(3, 'user.color', 5);
    expect(await c.write(3, 0, te.encode('bl'))).toBe(2);
    r.mem.writeFile('b.txt', 'b');
    await c.walk(0, c.useFid(4), ['a.txt']);
    await c.xattrcreate(4, 'user.size', 2);
    expect(await c.write(4, 0, te.encode('XL'))).toBe(2);
    await c.clunk(4);                                     // committed: user.size = XL
    await c.walk(0, c.useFid(5), ['a.txt']);
    expect(await c.xattrwalk(5, c.useFid(6), 'user.size')).toBe(2n);

    const snap = await slot.cur.snapshot();
    const memB = MemoryBackend.restoreState(Virtio9pDevice.snapshotBackendState(snap)!);
    const B = await Virtio9pDevice.restore(snap, r.opts(memB));
    slot.attach(B);
    // new xattr handles do not collide with the restored ones
    await c.walk(0, c.useFid(9), ['a.txt']);
    expect(await c.xattrwalk(9, c.useFid(10), 'user.size')).toBe(2n);
    expect(td.decode(await c.read(10, 0, 100))).toBe('XL');

    // the lock: another owner still conflicts with it; its owner can release it
    const g = await c.getlock(2, { type: WRLCK, start: 5, length: 1, proc_id: 22, client_id: 'two' });
    expect([g.type, g.proc_id, td.decode(g.client_id), g.start, g.length]).toEqual([WRLCK, 11, 'one', 0n, 10n]);
    expect(await c.lock(2, { type: WRLCK, start: 0, length: 1, proc_id: 22, client_id: 'two' })).toBe(1); // blocked
    expect(await c.lock(1, { type: UNLCK, start: 0, length: 10, proc_id: 11, client_id: 'one' })).toBe(0);
    expect(await c.lock(2, { type: WRLCK, start: 0, length: 1, proc_id: 22, client_id: 'two' })).toBe(0);
    // the xattr being read
    expect(td.decode(await c.read(6, 0, 100))).toBe('XL');
    // the xattr being written: the rest of the value, then the clunk commits it to B's backend
    expect(await c.write(3, 2, te.encode('ack'))).toBe(3);
    await c.clunk(3);
    await c.walk(0, c.useFid(7), ['a.txt']);
    expect(await c.xattrwalk(7, c.useFid(8), 'user.color')).toBe(5n);
    expect(td.decode(await c.read(8, 0, 100))).toBe('black');
    expect(B.counters().errors).toEqual({});
  });
});

describe('restore refuses what it cannot honour', () => {
  test('a different guest RAM size, mount tag, or memory mode', async () => {
    const r = await rig('split');
    const snap = await r.slot.cur.snapshot();
    const b = () => MemoryBackend.restoreState(Virtio9pDevice.snapshotBackendState(snap)!);
    await expect(Virtio9pDevice.restore(snap, { backend: b(), guestRam: new Uint8Array(RAM * 2), tag: TAG })).rejects.toThrow(/cannot restore.*guest RAM/);
    await expect(Virtio9pDevice.restore(snap, { backend: b(), guestRam: r.ram, guestMemorySize: RAM / 2, tag: TAG })).rejects.toThrow(/guest RAM/);
    await expect(Virtio9pDevice.restore(snap, { backend: b(), guestRam: r.ram, tag: 'other' })).rejects.toThrow(/cannot restore.*mount tag/);
    await expect(Virtio9pDevice.restore(snap, { backend: b(), guestRam: r.ram })).rejects.toThrow(/mount tag/);   // default tag
    await expect(Virtio9pDevice.restore(snap, { backend: b(), guestMemorySize: RAM, tag: TAG })).rejects.toThrow(/cannot restore.*memory mode/);
    // and the other way: a zero-copy device's snapshot into copy mode
    const z = await Virtio9pDevice.create({ backend: new MemoryBackend(), guestMemorySize: RAM, tag: TAG });
    const zs = await z.snapshot();
    await expect(Virtio9pDevice.restore(zs, { backend: new MemoryBackend(), guestRam: new Uint8Array(RAM), tag: TAG })).rejects.toThrow(/memory mode/);
    // the matching options work
    await expect(Virtio9pDevice.restore(zs, { backend: new MemoryBackend(), guestMemorySize: RAM, tag: TAG })).resolves.toBeInstanceOf(Virtio9pDevice);
  });

  test('a live backend (one that saves nothing) restores only onto the same object', async () => {
    const mem = new MemoryBackend();
    const live = holdingReads(mem, { hideSnapshot: true }).backend;
    const r = await rig('split', live, mem);
    await open(r.client, 1, 'a.txt');
    const snap = await r.slot.cur.snapshot();
    expect(Virtio9pDevice.snapshotBackendState(snap)).toBeNull();
    await expect(Virtio9pDevice.restore(snap, r.opts(mem))).rejects.toThrow(/live backend that is not this one/);
    await expect(Virtio9pDevice.restore(snap, r.opts(holdingReads(mem, { hideSnapshot: true }).backend))).rejects.toThrow(/live backend/);
    await expect(Virtio9pDevice.restore(snap, r.opts(MemoryBackend.restoreState(mem.snapshotState())))).rejects.toThrow(/live backend/);
    const B = await Virtio9pDevice.restore(snap, r.opts(live));
    r.slot.attach(B);
    expect(td.decode(await r.client.read(1, 0, 100))).toBe('hello');
  });

  test('corrupt snapshots: a clear Error, never a device', async () => {
    const r = await rig('split');
    const snap = await r.slot.cur.snapshot();
    const o = () => r.opts(new MemoryBackend());
    const bad = async (s: Uint8Array, why: RegExp) => {
      await expect(Virtio9pDevice.restore(s, o())).rejects.toThrow(why);
      expect(() => Virtio9pDevice.snapshotBackendState(s)).toThrow(why);
    };
    await bad(new Uint8Array(0), /not a device snapshot \(too short\)/);
    await bad(snap.subarray(0, 11), /too short/);
    await bad(snap.subarray(0, snap.length - 1), /not a device snapshot \(truncated/);
    await bad(snap.subarray(0, 40), /not a device snapshot/);
    await bad(Uint8Array.from([...snap, 0]), /trailing/);
    const magic = snap.slice(); magic[0] ^= 0xff;
    await bad(magic, /bad magic/);
    const version = snap.slice(); version[4] = 99;
    await bad(version, /format version 99/);
    const json = snap.slice(); json[12] = 0x5b; json[13] = 0x7d;   // "[}": not JSON
    await bad(json, /corrupt header/);
    const hl = snap.slice(); new DataView(hl.buffer).setUint32(8, snap.length, true);
    await bad(hl, /truncated header/);
    // a page index outside the core (framing intact)
    const jl = new DataView(snap.buffer, snap.byteOffset).getUint32(8, true);
    const page = snap.slice(); new DataView(page.buffer).setUint32(12 + jl, 0x7fffffff, true);
    await expect(Virtio9pDevice.restore(page, o())).rejects.toThrow(/cannot restore this snapshot: a page outside the core/);
    // the device state block wiped (every page zeroed): loadState refuses
    const pages = JSON.parse(td.decode(snap.subarray(12, 12 + jl))).pages as number;
    const blank = snap.slice();
    for (let i = 0; i < pages; i++) blank.fill(0, 12 + jl + i * 4100 + 4, 12 + jl + (i + 1) * 4100);
    await expect(Virtio9pDevice.restore(blank, o())).rejects.toThrow(/cannot restore this snapshot/);
    expect(() => Virtio9pDevice.snapshotBackendState('nope' as unknown as Uint8Array)).toThrow(/not a device snapshot/);
  });
});

describe('restore onto the same live backend object', () => {
  test('LocalBackend: an open file handle keeps working after the restore', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-snap-'));
    tmpdirs.push(dir);
    fs.writeFileSync(path.join(dir, 'a.txt'), 'hello');
    fs.writeFileSync(path.join(dir, 'big'), 'x');
    const local = new LocalBackend({ root: dir });
    const ram = new Uint8Array(RAM);
    const opts: DeviceOptions = { backend: local, guestRam: ram, tag: TAG };
    const A = await Virtio9pDevice.create(opts);
    const slot = new Slot(ram, A);
    const driver = new SplitDriver(slot, { queueSize: 16 });
    const c = new P9Client(driver.rpcFn, { msize: 32768 });
    await c.mount({ msize: 32768 });
    c.useFid(0);
    await open(c, 1, 'a.txt');
    const snap = await A.snapshot();
    expect(Virtio9pDevice.snapshotBackendState(snap)).toBeNull();
    await expect(Virtio9pDevice.restore(snap, { ...opts, backend: new LocalBackend({ root: dir }) })).rejects.toThrow(/live backend/);
    const B = await Virtio9pDevice.restore(snap, opts);
    slot.attach(B);
    expect(await c.write(1, 5, te.encode(' world'))).toBe(6);
    expect(td.decode(await c.read(1, 0, 100))).toBe('hello world');
    expect(fs.readFileSync(path.join(dir, 'a.txt'), 'utf8')).toBe('hello world');
    await c.clunk(1);
    expect(B.counters().errors).toEqual({});
  });

  test('MemoryBackend: restoring onto the same object (its state not used) works', async () => {
    const r = await rig('split');
    await open(r.client, 1, 'a.txt');
    const snap = await r.slot.cur.snapshot();
    const B = await Virtio9pDevice.restore(snap, r.opts(r.mem));
    r.slot.attach(B);
    expect(await r.client.write(1, 5, te.encode('!'))).toBe(1);
    expect(r.mem.readTextSync('a.txt')).toBe('hello!');
  });

  test('one snapshot restores any number of times; a restored device snapshots again', async () => {
    const r = await rig('split');
    await open(r.client, 1, 'a.txt', O_RDONLY);
    const A = r.slot.cur;
    const snap = await A.snapshot();
    const state = Virtio9pDevice.snapshotBackendState(snap)!;
    const B = await Virtio9pDevice.restore(snap, r.opts(MemoryBackend.restoreState(state)));
    r.slot.attach(B);
    expect(td.decode(await r.client.read(1, 0, 100))).toBe('hello');
    const C = await Virtio9pDevice.restore(snap, r.opts(MemoryBackend.restoreState(state)));
    expect(C.counters()).toEqual(A.counters());             // B's progress is not in `snap`
    expect(B.counters().replies).toBe(A.counters().replies + 1);
    const snap2 = await B.snapshot();
    const D = await Virtio9pDevice.restore(snap2, r.opts(MemoryBackend.restoreState(Virtio9pDevice.snapshotBackendState(snap2)!)));
    expect(D.counters()).toEqual(B.counters());
    r.slot.attach(D);
    expect(td.decode(await r.client.read(1, 1, 100))).toBe('ello');
  });
});
