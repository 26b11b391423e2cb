/**
 * The full v86 adapter: our virtio-9p device in place of v86's own, on v86's PCI bus.
 *
 *   const emulator = new V86({ ..., autostart: false });            // no `filesystem` option
 *   emulator.add_listener('emulator-loaded', async () => {
 *     const p9 = await V86Virtio9p.attach(emulator, { backend: new MemoryBackend(), tag: 'host9p' });
 *     emulator.run();
 *   });
 *   // guest: mount -t 9p -o trans=virtio,version=9p2000.L host9p /mnt
 *
 * What it does with v86 (everything v86 offers a PCI device, nothing more):
 *   - registers a PCI function (bus 0, device 4 by default: INTA# of device 4 is a PIRQ line
 *     no other v86 device shares, and v86's PIC keeps one level per line, not per device)
 *     whose configuration space is our core's — the virtio-pci modern capability list — with
 *     BAR 0 as a 4 KiB I/O BAR (v86 relocates I/O BARs when SeaBIOS assigns them; it cannot
 *     move memory BARs);
 *   - routes port accesses in that BAR to the core's BAR 0 register file (common config, ISR,
 *     device config with the mount tag, notify);
 *   - reads and writes guest RAM in copy mode (DeviceOptions.guestRam): v86's RAM lives in v86's
 *     own WebAssembly memory, which our core cannot import, so the device copies exactly the
 *     ring fields and buffers it touches; every write is reported to v86's JIT
 *     (`jit_dirty_cache`), as v86's own write_blob does;
 *   - raises the PCI interrupt when the core interrupts and lowers it when the driver reads ISR.
 *
 * Saving state: v86's save_state covers the CPU, guest RAM and the PCI configuration spaces
 * (ours included, so the BAR the BIOS assigned); the device's own state is `snapshot()`:
 *
 *   await emulator.stop();
 *   const vm = await emulator.save_state(), dev = await p9.snapshot();
 *   // later, in a new V86 with the same configuration, before its CPU runs:
 *   const fs = MemoryBackend.restoreState(Virtio9pDevice.snapshotBackendState(dev)!);
 *   await V86Virtio9p.restore(emulator2, dev, { backend: fs });
 *   await emulator2.restore_state(vm);   // moves our I/O BAR to where the BIOS had put it
 *   emulator2.run();
 */
import { Virtio9pDevice, type DeviceOptions } from '../device.js';
import type { Backend } from '../backends/backend.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

export interface V86Virtio9pOptions {
  backend: Backend;
  /** mount tag (default "host9p", what v86's own device reports) */
  tag?: string;
  /** PCI bus-0 address, device << 3 | function (default 0x20: device 4) */
  pciId?: number;
  /** I/O port BAR 0 starts at until SeaBIOS assigns it (≥ 0x1000, 4 KiB aligned; default 0xE000) */
  initialPort?: number;
  /** more device options (wasm, debug); guest RAM and interrupts are the adapter's */
  device?: Omit<Partial<DeviceOptions>, 'backend' | 'tag' | 'guestRam' | 'onGuestWrite' | 'memory' | 'guestBase' | 'guestMemorySize'>;
}

const BAR_SIZE = 0x1000;
const ISR = 0x100;

export class V86Virtio9p {
  /** PCI interrupts raised (used buffers and configuration changes) */
  interrupts = 0;
  private port: number;
  private constructor(readonly device: Virtio9pDevice, private readonly cpu: Any, readonly pciId: number, initialPort: number) {
    this.port = initialPort;
  }

  /** Create the device over `emulator`'s guest RAM and register it; call before the CPU runs. */
  static attach(emulator: Any, opts: V86Virtio9pOptions): Promise<V86Virtio9p> {
    return V86Virtio9p.build(emulator, opts, (o) => Virtio9pDevice.create(o));
  }

  /** Register a device in the state `snap` (from `snapshot()`) on a new emulator: call before the
   *  emulator's restore_state, with the backend the snapshot was taken on or one rebuilt from it. */
  static restore(emulator: Any, snap: Uint8Array, opts: V86Virtio9pOptions): Promise<V86Virtio9p> {
    return V86Virtio9p.build(emulator, opts, (o) => Virtio9pDevice.restore(snap, o));
  }

  /** The device's state (with the emulator stopped; see the header). */
  snapshot(): Promise<Uint8Array> { return this.device.snapshot(); }

  private static async build(emulator: Any, opts: V86Virtio9pOptions, make: (o: DeviceOptions) => Promise<Virtio9pDevice>): Promise<V86Virtio9p> {
    const cpu = emulator.v86?.cpu ?? emulator;
    const pci = cpu.devices?.pci, io = cpu.io;
    if (!pci || !io || !cpu.wasm_memory || !cpu.mem8) throw new Error('V86Virtio9p: not a v86 emulator (no cpu.devices.pci / io / wasm_memory)');
    const pciId = opts.pciId ?? 0x20;
    const initialPort = opts.initialPort ?? 0xe000;
    if (!Number.isInteger(pciId) || pciId < 8 || pciId > 255) throw new RangeError('V86Virtio9p: pciId must be 8..255');
    if (pci.devices[pciId]) throw new Error(`V86Virtio9p: PCI address ${pciId} is taken by ${pci.devices[pciId].name}`);
    if (initialPort < 0x1000 || initialPort % BAR_SIZE !== 0 || initialPort + BAR_SIZE > 0x10000) throw new RangeError('V86Virtio9p: initialPort must be a 4 KiB-aligned port ≥ 0x1000');

    // v86's mem8 is a Proxy (slow per access); a plain view of the same bytes, renewed if
    // v86's memory ever grows (a grown memory detaches old views).
    const ramOffset: number = cpu.mem8.byteOffset, ramSize: number = cpu.mem8.length;
    let view = new Uint8Array(cpu.wasm_memory.buffer, ramOffset, ramSize);
    const ram = (): Uint8Array => (view.byteLength ? view : (view = new Uint8Array(cpu.wasm_memory.buffer, ramOffset, ramSize)));

    let adapter: V86Virtio9p | undefined;
    const device = await make({
      ...opts.device,
      backend: opts.backend,
      tag: opts.tag ?? 'host9p',
      guestRam: ram,
      guestMemorySize: Math.floor(ramSize / 4096) * 4096,
      onGuestWrite: (gpa, len) => cpu.jit_dirty_cache(gpa, gpa + len),
      onInterrupt: () => { if (adapter) { adapter.interrupts++; pci.raise_irq(pciId); } },
    });
    adapter = new V86Virtio9p(device, cpu, pciId, initialPort);
    adapter.register();
    return adapter;
  }

  private register(): void {
    const { cpu, device } = this;
    const pci = cpu.devices.pci, io = cpu.io;
    const reg = device.pci;
    // Config space as our core reports it (capability list at 0x40), with BAR 0 as I/O.
    const space: number[] = [];
    for (let o = 0; o < 256; o++) space.push(reg.configRead(o, 1));
    space[0x10] = (this.port & 0xfc) | 1; space[0x11] = this.port >> 8; space[0x12] = 0; space[0x13] = 0;
    space[0x3c] = 0; space[0x3d] = 1; // line assigned by the BIOS, pin INTA#
    const fn = { name: 'virtio9p-wasm', pci_id: this.pciId, pci_space: space, pci_bars: [{ size: BAR_SIZE }] };
    // v86 dispatches an N-byte port access to the N-byte handler of its first port.
    for (let off = 0; off < BAR_SIZE; off++) {
      const o = off;
      io.register_read(this.port + o, fn,
        () => this.read(o, 1), () => this.read(o, 2), () => this.read(o, 4));
      io.register_write(this.port + o, fn,
        (v: number) => reg.barWrite(o, v, 1), (v: number) => reg.barWrite(o, v, 2), (v: number) => reg.barWrite(o, v, 4));
    }
    pci.register_device(fn);
  }

  private read(off: number, size: 1 | 2 | 4): number {
    const v = this.device.pci.barRead(off, size);
    // Reading ISR clears it (the core did): the level-triggered INTx line goes down.
    if (off === ISR) this.cpu.devices.pci.lower_irq(this.pciId);
    return v;
  }
}
