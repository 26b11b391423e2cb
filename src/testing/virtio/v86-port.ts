/**
 * A DevicePort for our device registered on v86's PCI bus (src/adapters/v86-pci.ts) that
 * touches only what a guest driver in v86 touches: PCI configuration space through the
 * 0xCF8/0xCFC mechanism, BAR 0 as I/O ports (v86's port dispatch), and v86's guest RAM.
 */
import type { V86Virtio9p } from '../../adapters/v86-pci.js';
import { RegisterPort, COMMON } from './transport-ports.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

export class V86PciPort extends RegisterPort {
  private io: Any;
  private common = 0;
  private isr = 0;
  private devcfg = 0;
  private notifyOff = 0;
  private multiplier = 0;

  constructor(readonly adapter: V86Virtio9p, private readonly cpu: Any) {
    super(() => adapter.device.ram);
    adapter.device.onInterrupt(() => this.interrupt());
    this.io = cpu.io;
    if (this.cfg(0, 2) !== 0x1af4 || this.cfg(2, 2) !== 0x1049) throw new Error('no virtio-pci 9p function at this address');
    if (!(this.cfg(0x06, 2) & 0x10)) throw new Error('no capability list');
    this.cfgWrite(0x04, 0x0005); // I/O space + bus master
    for (let p = this.cfg(0x34, 1), n = 0; p !== 0 && n < 48; p = this.cfg(p + 1, 1), n++) {
      if (this.cfg(p, 1) !== 0x09) continue;
      const type = this.cfg(p + 3, 1), off = this.cfg(p + 8, 4);
      if (this.cfg(p + 4, 1) !== 0) throw new Error('capability outside BAR 0');
      if (type === 1) this.common = off;
      else if (type === 3) this.isr = off;
      else if (type === 4) this.devcfg = off;
      else if (type === 2) { this.notifyOff = off; this.multiplier = this.cfg(p + 16, 4); }
    }
  }

  /** The I/O port BAR 0 is at now (bit 0 set: an I/O BAR). */
  get barPort(): number {
    const b = this.cfg(0x10, 4);
    if (!(b & 1)) throw new Error('BAR 0 is not an I/O BAR');
    return b & 0xfffc;
  }

  cfg(off: number, size: 1 | 2 | 4): number {
    this.io.port_write32(0xcf8, (0x80000000 | (this.adapter.pciId << 8) | (off & 0xfc)) >>> 0);
    const p = 0xcfc + (off & 3);
    return (size === 1 ? this.io.port_read8(p) : size === 2 ? this.io.port_read16(p) : this.io.port_read32(p)) >>> 0;
  }
  cfgWrite(off: number, v: number): void {
    this.io.port_write32(0xcf8, (0x80000000 | (this.adapter.pciId << 8) | (off & 0xfc)) >>> 0);
    this.io.port_write32(0xcfc, v >>> 0);
  }

  private bar(off: number, size: 1 | 2 | 4, v?: number): number {
    const p = this.barPort + off;
    if (v === undefined) return (size === 1 ? this.io.port_read8(p) : size === 2 ? this.io.port_read16(p) : this.io.port_read32(p)) >>> 0;
    if (size === 1) this.io.port_write8(p, v); else if (size === 2) this.io.port_write16(p, v); else this.io.port_write32(p, v >>> 0);
    return 0;
  }
  protected read(reg: string): number { const [o, s] = COMMON[reg]; return this.bar(this.common + o, s); }
  protected write(reg: string, v: number): void { const [o, s] = COMMON[reg]; this.bar(this.common + o, s, v); }
  protected ack(): number { return this.bar(this.isr, 1); }
  notify(queue: number): void {
    this.write('queueSel', queue);
    this.bar(this.notifyOff + this.read('queueNotifyOff') * this.multiplier, 2, queue);
  }
  protected configRead(off: number, size: 1 | 2 | 4): number { return this.bar(this.devcfg + off, size); }
}
