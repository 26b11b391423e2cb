/**
 * `guest`: the stand-in for a guest kernel in the README's embedding examples (and the snapshot
 * tests). A VMM author's code never contains this — it is what Linux's virtio_ring, its
 * virtio-mmio / virtio-pci transport drivers and v9fs do on the other side of the registers:
 *
 *   guest.mount(port)                 the split-ring (or packed) driver + a 9P2000.L client:
 *                                     features, queue 0, DRIVER_OK, Tversion, Tattach
 *   guest.mmio(bus, base, ram)        a driver that reaches the device only through the VMM's
 *                                     memory bus at `base` (virtio-mmio version 2 registers)
 *   guest.pci(config, bus, ram)       firmware + driver for a PCI function: sizes and places
 *                                     BAR 0 through config space, walks the vendor capabilities,
 *                                     then programs the device through the BAR on the VMM's bus
 *
 * Both register drivers have `interrupt()`: the guest's handler for the device's interrupt
 * line (reads InterruptStatus / ISR through the bus and acks, then reaps the used ring).
 */
import { SplitDriver, type RpcOptions } from '../../src/testing/virtio/split-driver.js';
import { PackedDriver } from '../../src/testing/virtio/packed-driver.js';
import { P9Client } from '../../src/testing/p9/client.js';
import type { DevicePort } from '../../src/testing/port.js';
import { RegisterPort, MMIO, COMMON } from '../../src/testing/virtio/transport-ports.js';

/** The VMM's side of an address space: how the guest's loads and stores reach a device. */
export interface Bus {
  read(addr: number, size: 1 | 2 | 4): number;
  write(addr: number, value: number, size: 1 | 2 | 4): void;
}

const O_RDONLY = 0, O_RDWR = 2, O_WRONLY = 1, O_CREAT = 0o100, O_TRUNC = 0o1000;
const td = new TextDecoder(), te = new TextEncoder();

/** A mounted 9P file system as the guest sees it (paths relative to the export root). */
export class GuestFs {
  constructor(readonly driver: SplitDriver | PackedDriver, readonly client: P9Client) {}

  /** The split-ring driver (for raw ring access); throws on a packed ring. */
  get splitRing(): SplitDriver {
    if (!(this.driver instanceof SplitDriver)) throw new Error('guest: not a split ring');
    return this.driver;
  }

  /** Walk to `path` and open it; the fid stays open (read / write / close it). */
  async open(path: string, flags = O_RDWR): Promise<number> {
    const fid = this.client.allocFid();
    await this.client.walk(0, fid, split(path));
    await this.client.lopen(fid, flags);
    return fid;
  }
  async read(fid: number, offset = 0, count = 65536): Promise<string> {
    return td.decode(await this.client.read(fid, offset, count));
  }
  async write(fid: number, offset: number, text: string): Promise<number> {
    return this.client.write(fid, offset, te.encode(text));
  }
  async close(fid: number): Promise<void> { await this.client.clunk(fid); this.client.releaseFid(fid); }

  async readFile(path: string): Promise<string> {
    const fid = await this.open(path, O_RDONLY);
    try { return td.decode(await this.client.readAll(fid)); } finally { await this.close(fid); }
  }
  async writeFile(path: string, text: string): Promise<void> {
    const parts = split(path);
    const fid = this.client.allocFid();
    await this.client.walk(0, fid, parts.slice(0, -1));
    await this.client.lcreate(fid, parts[parts.length - 1], O_WRONLY | O_CREAT | O_TRUNC, 0o644);
    try {
      const data = te.encode(text);
      if (data.length && (await this.client.write(fid, 0, data)) !== data.length) throw new Error('short write');
    } finally { await this.close(fid); }
  }
}
const split = (p: string): string[] => p.split('/').filter((x) => x !== '');

/** A driver whose register accesses go to the VMM's bus (RegisterPort: Linux's sequence). */
abstract class BusPort extends RegisterPort {
  protected abstract reg(name: string): [number, 1 | 2 | 4];
  protected abstract bus: Bus;
  protected read(name: string): number { const [a, s] = this.reg(name); return this.bus.read(a, s); }
  protected write(name: string, v: number): void { const [a, s] = this.reg(name); this.bus.write(a, v >>> 0, s); }
}

/** Linux's virtio_mmio.c over the VMM's bus: the device's window at `base`. */
export class MmioGuestPort extends BusPort {
  constructor(protected bus: Bus, readonly base: number, ram: Uint8Array) {
    super(() => ram);
    if (bus.read(base, 4) !== 0x74726976 || bus.read(base + 4, 4) !== 2 || bus.read(base + 8, 4) !== 9) {
      throw new Error(`guest: no virtio-mmio v2 9p device at 0x${base.toString(16)}`);
    }
  }
  protected reg(name: string): [number, 1 | 2 | 4] { return [this.base + MMIO[name], 4]; }
  protected ack(): number {
    const s = this.read('intStatus');
    if (s) this.write('intAck', s);
    return s;
  }
  notify(queue: number): void { this.write('queueNotify', queue); }
  protected configRead(off: number, size: 1 | 2 | 4): number { return this.bus.read(this.base + 0x100 + off, size); }
}

/** Firmware + Linux's virtio_pci_modern.c: config space through `config`, BAR 0 on `bus`. */
export class PciGuestPort extends BusPort {
  readonly bar0: number;
  private common = 0; private isr = 0; private devcfg = 0; private notifyAt = 0; private mult = 0;
  constructor(private config: Bus, protected bus: Bus, ram: Uint8Array, bar0 = 0xfebf0000) {
    super(() => ram);
    if (config.read(0, 2) !== 0x1af4 || config.read(2, 2) !== 0x1049) throw new Error('guest: not a virtio-pci 9p function');
    config.write(0x10, 0xffffffff, 4);                    // size BAR 0 …
    const size = (~(config.read(0x10, 4) & ~0xf) >>> 0) + 1;
    if (size !== 0x1000) throw new Error(`guest: BAR 0 is ${size} bytes`);
    config.write(0x10, bar0, 4);                          // … place it
    config.write(0x04, 0x0006, 2);                        // memory space + bus master
    this.bar0 = bar0;
    for (let p = config.read(0x34, 1); p !== 0; p = config.read(p + 1, 1)) {
      if (config.read(p, 1) !== 0x09) continue;           // vendor capability: cfg_type, bar, offset
      const type = config.read(p + 3, 1), off = config.read(p + 8, 4);
      if (type === 1) this.common = off;
      else if (type === 2) { this.notifyAt = off; this.mult = config.read(p + 16, 4); }
      else if (type === 3) this.isr = off;
      else if (type === 4) this.devcfg = off;
    }
  }
  protected reg(name: string): [number, 1 | 2 | 4] { const [o, s] = COMMON[name]; return [this.bar0 + this.common + o, s]; }
  protected ack(): number { return this.bus.read(this.bar0 + this.isr, 1); } // reading clears it
  notify(queue: number): void {
    this.write('queueSel', queue);
    this.bus.write(this.bar0 + this.notifyAt + this.read('queueNotifyOff') * this.mult, queue, 2);
  }
  protected configRead(off: number, size: 1 | 2 | 4): number { return this.bus.read(this.bar0 + this.devcfg + off, size); }
}

export interface MountOptions {
  /** negotiate VIRTIO_F_RING_PACKED and use a packed virtqueue (default: split) */
  packed?: boolean;
  msize?: number;
  queueSize?: number;
}

export const guest = {
  /** Bring the device up from the driver side and mount the export. */
  async mount(port: DevicePort, opts: MountOptions = {}): Promise<GuestFs> {
    const queueSize = opts.queueSize ?? 64;
    const driver = opts.packed ? new PackedDriver(port, { queueSize }) : new SplitDriver(port, { queueSize });
    const client = new P9Client((t: Uint8Array, o?: RpcOptions) => driver.rpc(t, o), { msize: opts.msize ?? 65536 });
    await client.mount();
    client.useFid(0);
    return new GuestFs(driver, client);
  },
  mmio(bus: Bus, base: number, ram: Uint8Array): MmioGuestPort { return new MmioGuestPort(bus, base, ram); },
  pci(config: Bus, bus: Bus, ram: Uint8Array, bar0?: number): PciGuestPort { return new PciGuestPort(config, bus, ram, bar0); },
};
