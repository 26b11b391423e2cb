/**
 * DevicePorts that reach the device only through its transport registers, the way a guest
 * driver does: virtio-mmio version 2 (Linux drivers/virtio/virtio_mmio.c's sequence) and
 * virtio-pci modern (walk the vendor capabilities in config space, then program the common
 * configuration in BAR 0). The SplitDriver and the conformance suite run over either.
 */
import type { DevicePort, QueueConfig } from '../port.js';
import type { Virtio9pDevice } from '../../device.js';

const ACK = 1, DRIVER = 2, DRIVER_OK = 4, FEATURES_OK = 8;

/** A virtio driver over register accesses (what Linux's transport drivers do); subclasses say
 *  how a register is reached. The guest's interrupt handler is `interrupt()`. */
export abstract class RegisterPort implements DevicePort {
  private listeners: (() => void)[] = [];
  /** `ram` is asked for afresh: the device's memory may grow (fid tables) */
  constructor(private readonly ramOf: () => Uint8Array) {}
  get ram(): Uint8Array { return this.ramOf(); }
  onMemoryGrow?: (cb: () => void) => void;
  protected abstract read(reg: string): number;
  protected abstract write(reg: string, v: number): void;
  /** acknowledge the interrupt the way the transport wants; returns the ISR bits */
  protected abstract ack(): number;

  get deviceFeatures(): bigint {
    this.write('devFeatSel', 0);
    const lo = this.read('devFeat');
    this.write('devFeatSel', 1);
    const hi = this.read('devFeat');
    return BigInt(lo >>> 0) | (BigInt(hi >>> 0) << 32n);
  }

  setDriverFeatures(bits: bigint): boolean {
    this.write('status', 0);
    while (this.read('status') !== 0) { /* a reset completes when in-flight requests drain */ }
    this.write('status', ACK);
    this.write('status', ACK | DRIVER);
    this.write('drvFeatSel', 0);
    this.write('drvFeat', Number(bits & 0xffffffffn));
    this.write('drvFeatSel', 1);
    this.write('drvFeat', Number(bits >> 32n));
    this.write('status', ACK | DRIVER | FEATURES_OK);
    return (this.read('status') & FEATURES_OK) !== 0;
  }

  setupQueue(queue: number, cfg: QueueConfig): void {
    this.write('queueSel', queue);
    if (this.read('queueMax') < cfg.size) throw new RangeError('queue too large');
    this.write('queueSize', cfg.size);
    this.write64('queueDesc', cfg.desc);
    this.write64('queueDriver', cfg.avail);
    this.write64('queueDevice', cfg.used);
    this.write('queueReady', 1);
    if (this.read('queueReady') !== 1) throw new RangeError('queue refused');
  }

  driverOk(): void {
    this.write('status', ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    if (!(this.read('status') & DRIVER_OK)) throw new Error('DRIVER_OK refused');
  }

  protected write64(reg: string, v: number): void {
    this.write(`${reg}Lo`, v % 2 ** 32);
    this.write(`${reg}Hi`, Math.floor(v / 2 ** 32));
  }

  abstract notify(queue: number): void;

  onInterrupt(cb: () => void): void { this.listeners.push(cb); }
  /** The guest's handler for the device's interrupt: ack through the transport, then reap the
   *  used ring. Returns the ISR bits it found (0: spurious, not ours). */
  interrupt(): number {
    const s = this.ack();
    if (s !== 0) for (const l of this.listeners) l();
    return s;
  }
  /** the device status register */
  get status(): number { return this.read('status'); }

  /** The device configuration's mount tag, read through the transport. */
  get tag(): string { return this.readTag(); }
  readTag(): string {
    const len = this.configRead(0, 2);
    let s = '';
    for (let i = 0; i < len; i++) s += String.fromCharCode(this.configRead(2 + i, 1));
    return s;
  }
  protected abstract configRead(off: number, size: 1 | 2 | 4): number;
}

/** virtio-mmio version 2 register offsets (§4.2.2). */
export const MMIO: Record<string, number> = {
  magic: 0x000, version: 0x004, deviceId: 0x008, devFeat: 0x010, devFeatSel: 0x014, drvFeat: 0x020,
  drvFeatSel: 0x024, queueSel: 0x030, queueMax: 0x034, queueSize: 0x038, queueReady: 0x044,
  queueNotify: 0x050, intStatus: 0x060, intAck: 0x064, status: 0x070, queueDescLo: 0x080,
  queueDescHi: 0x084, queueDriverLo: 0x090, queueDriverHi: 0x094, queueDeviceLo: 0x0a0, queueDeviceHi: 0x0a4,
};

export class MmioPort extends RegisterPort {
  constructor(private dev: Virtio9pDevice) {
    super(() => dev.ram);
    dev.onInterrupt(() => this.interrupt());
    this.onMemoryGrow = (cb) => dev.onMemoryGrow(cb);
    if (dev.mmio.read(0) !== 0x74726976 || dev.mmio.read(4) !== 2 || dev.mmio.read(8) !== 9) throw new Error('not a virtio-mmio v2 9p device');
  }
  protected read(reg: string): number { return this.dev.mmio.read(MMIO[reg]); }
  protected write(reg: string, v: number): void { this.dev.mmio.write(MMIO[reg], v); }
  protected ack(): number {
    const s = this.read('intStatus');
    if (s) this.write('intAck', s);
    return s;
  }
  notify(queue: number): void { this.write('queueNotify', queue); }
  protected configRead(off: number, size: 1 | 2 | 4): number { return this.dev.mmio.read(0x100 + off, size); }
}

/** virtio-pci common configuration: offset and width of each field (§4.1.4.3). */
export const COMMON: Record<string, [number, 1 | 2 | 4]> = {
  devFeatSel: [0x00, 4], devFeat: [0x04, 4], drvFeatSel: [0x08, 4], drvFeat: [0x0c, 4],
  msixConfig: [0x10, 2], numQueues: [0x12, 2], status: [0x14, 1], queueSel: [0x16, 2], queueSize: [0x18, 2],
  queueMax: [0x18, 2], queueMsix: [0x1a, 2], queueReady: [0x1c, 2], queueNotifyOff: [0x1e, 2],
  queueDescLo: [0x20, 4], queueDescHi: [0x24, 4], queueDriverLo: [0x28, 4], queueDriverHi: [0x2c, 4],
  queueDeviceLo: [0x30, 4], queueDeviceHi: [0x34, 4],
};

export interface PciCap { type: number; bar: number; offset: number; length: number; multiplier?: number }

/** Walk the capability list like Linux's virtio_pci_modern probe. */
export function pciCaps(dev: Virtio9pDevice): PciCap[] {
  const caps: PciCap[] = [];
  if (!(dev.pci.configRead(0x06, 2) & 0x10)) return caps;
  for (let p = dev.pci.configRead(0x34, 1), n = 0; p !== 0 && n < 48; p = dev.pci.configRead(p + 1, 1), n++) {
    if (dev.pci.configRead(p, 1) !== 0x09) continue;
    const cap: PciCap = { type: dev.pci.configRead(p + 3, 1), bar: dev.pci.configRead(p + 4, 1), offset: dev.pci.configRead(p + 8), length: dev.pci.configRead(p + 12) };
    if (cap.type === 2) cap.multiplier = dev.pci.configRead(p + 16);
    caps.push(cap);
  }
  return caps;
}

export class PciPort extends RegisterPort {
  private common: number;
  private isr: number;
  private devcfg: number;
  private notifyBase: number;
  private multiplier: number;
  constructor(private dev: Virtio9pDevice) {
    super(() => dev.ram);
    dev.onInterrupt(() => this.interrupt());
    this.onMemoryGrow = (cb) => dev.onMemoryGrow(cb);
    if (dev.pci.configRead(0, 2) !== 0x1af4 || dev.pci.configRead(2, 2) !== 0x1049) throw new Error('not a virtio-pci 9p device');
    // size and place BAR 0 as firmware would
    dev.pci.configWrite(0x10, 0xffffffff);
    const size = (~(dev.pci.configRead(0x10) & ~0xf) >>> 0) + 1;
    if (size !== 0x1000) throw new Error(`BAR 0 size ${size}`);
    dev.pci.configWrite(0x10, 0xfebf0000);
    dev.pci.configWrite(0x04, 0x0006, 2); // memory space + bus master
    const caps = pciCaps(dev);
    const find = (t: number) => { const c = caps.find((x) => x.type === t); if (!c) throw new Error(`no cap ${t}`); return c; };
    this.common = find(1).offset;
    this.isr = find(3).offset;
    this.devcfg = find(4).offset;
    const n = find(2);
    this.notifyBase = n.offset;
    this.multiplier = n.multiplier ?? 0;
  }
  protected read(reg: string): number { const [o, s] = COMMON[reg]; return this.dev.pci.barRead(this.common + o, s); }
  protected write(reg: string, v: number): void { const [o, s] = COMMON[reg]; this.dev.pci.barWrite(this.common + o, v, s); }
  protected ack(): number { return this.dev.pci.barRead(this.isr, 1); } // reading the ISR clears it
  notify(queue: number): void {
    this.write('queueSel', queue);
    const off = this.read('queueNotifyOff');
    this.dev.pci.barWrite(this.notifyBase + off * this.multiplier, queue, 2);
  }
  protected configRead(off: number, size: 1 | 2 | 4): number { return this.dev.pci.barRead(this.devcfg + off, size); }
}
