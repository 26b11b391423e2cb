/** The transports' register files as a driver sees them (VIRTIO 1.2 §4.1, §4.2.2). */
import { describe, test, expect } from '@jest/globals';
import { Virtio9pDevice } from '../../src/device.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { MmioPort, PciPort, pciCaps } from '../../src/testing/virtio/transport-ports.js';
import { SplitDriver } from '../../src/testing/virtio/split-driver.js';
import { P9Client } from '../../src/testing/p9/client.js';

const make = (tag = 'share9') => Virtio9pDevice.create({ backend: new MemoryBackend(), tag, guestMemorySize: 4 << 20 });
const VERSION_1 = 1n << 32n, MOUNT_TAG = 1n;

describe('virtio-mmio version 2', () => {
  test('identification, feature banks, config space', async () => {
    const d = await make();
    expect([d.mmio.read(0x000), d.mmio.read(0x004), d.mmio.read(0x008)]).toEqual([0x74726976, 2, 9]);
    d.mmio.write(0x014, 0); const lo = d.mmio.read(0x010);
    d.mmio.write(0x014, 1); const hi = d.mmio.read(0x010);
    expect(BigInt(lo) | (BigInt(hi) << 32n)).toBe(d.deviceFeatures);
    d.mmio.write(0x014, 2); expect(d.mmio.read(0x010)).toBe(0);
    expect(d.mmio.read(0x100, 2)).toBe(6);
    expect(String.fromCharCode(...[0, 1, 2, 3, 4, 5].map((i) => d.mmio.read(0x102 + i, 1)))).toBe('share9');
    expect(d.mmio.read(0x102, 4)).toBe(0x72616873); // "shar"
    d.mmio.write(0x102, 0x41414141);                 // the config is read-only
    expect(new MmioPort(d).readTag()).toBe('share9');
    expect(d.mmio.read(0x034)).toBe(1024);           // QueueSizeMax
    d.mmio.write(0x030, 1); expect(d.mmio.read(0x034)).toBe(0); // no second queue
  });

  test('a driver without VERSION_1 is refused: FEATURES_OK does not stick', async () => {
    const d = await make();
    d.mmio.write(0x070, 1); d.mmio.write(0x070, 3);
    d.mmio.write(0x024, 0); d.mmio.write(0x020, Number(MOUNT_TAG));
    d.mmio.write(0x024, 1); d.mmio.write(0x020, 0);
    d.mmio.write(0x070, 3 | 8);
    expect(d.mmio.read(0x070)).toBe(3);
    // with VERSION_1 it is accepted
    d.mmio.write(0x024, 1); d.mmio.write(0x020, 1);
    d.mmio.write(0x070, 3 | 8);
    expect(d.mmio.read(0x070)).toBe(11);
  });

  test('a bad queue is not enabled; DRIVER_OK needs a queue; reset clears everything', async () => {
    const d = await make();
    const port = new MmioPort(d);
    expect(port.setDriverFeatures(VERSION_1 | MOUNT_TAG)).toBe(true);
    d.mmio.write(0x030, 0); d.mmio.write(0x038, 3); // not a power of two
    d.mmio.write(0x044, 1);
    expect(d.mmio.read(0x044)).toBe(0);
    d.mmio.write(0x070, 15);
    expect(d.mmio.read(0x070) & 4).toBe(0);
    d.mmio.write(0x070, 0);
    expect([d.mmio.read(0x070), d.mmio.read(0x044), d.mmio.read(0x060)]).toEqual([0, 0, 0]);
  });

  test('a session over the registers; InterruptStatus follows used buffers and ACK clears it', async () => {
    const d = await make();
    const seen: number[] = [];
    d.onInterrupt(() => seen.push(d.mmio.read(0x060))); // before the port's handler acknowledges
    const port = new MmioPort(d);
    const driver = new SplitDriver(port, { queueSize: 64 });
    const c = new P9Client(driver.rpcFn, { msize: 65536 });
    expect((await c.version(65536)).version).toBe('9P2000.L');
    await c.attach(0, 0xffffffff, 'root', '', 0);
    expect(((await c.getattr(0)).mode & 0o170000)).toBe(0o040000);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => (s & 1) === 1)).toBe(true);
    expect(d.mmio.read(0x060)).toBe(0); // the port acknowledged them
  });
});

describe('virtio-pci modern', () => {
  test('header, capabilities, BAR sizing', async () => {
    const d = await make('t');
    expect([d.pci.configRead(0, 2), d.pci.configRead(2, 2)]).toEqual([0x1af4, 0x1049]);
    expect(d.pci.configRead(0x08, 1)).toBeGreaterThanOrEqual(1);          // revision ≥ 1: modern
    expect(d.pci.configRead(0x2c, 2)).toBe(0x1af4);
    expect(d.pci.configRead(0x2e, 2)).toBeGreaterThanOrEqual(0x40);       // subsystem id (§4.1.2.1)
    expect(d.pci.configRead(0x3d, 1)).toBe(1);                           // INTA#
    d.pci.configWrite(0x10, 0xffffffff);
    expect(d.pci.configRead(0x10) >>> 0).toBe(0xfffff000);               // 4 KiB memory BAR
    d.pci.configWrite(0x10, 0xfe000000);
    expect(d.pci.bar0() >>> 0).toBe(0xfe000000);
    const caps = pciCaps(d);
    expect(caps.map((c) => c.type).sort()).toEqual([1, 2, 3, 4]);
    const byType = Object.fromEntries(caps.map((c) => [c.type, c]));
    expect(byType[1].length).toBeGreaterThanOrEqual(0x38);
    expect(byType[3].length).toBe(1);
    expect(byType[4].length).toBe(2 + 1);
    expect(byType[2].multiplier).toBe(0);
    for (const c of caps) expect(c.offset + c.length).toBeLessThanOrEqual(d.pci.barSize);
  });

  test('common config: one queue, no MSI-X vectors, status and ISR semantics', async () => {
    const d = await make();
    const port = new PciPort(d);
    const common = pciCaps(d).find((c) => c.type === 1)!.offset;
    const isr = pciCaps(d).find((c) => c.type === 3)!.offset;
    expect(d.pci.barRead(common + 0x12, 2)).toBe(1);
    d.pci.barWrite(common + 0x10, 0, 2);
    expect(d.pci.barRead(common + 0x10, 2)).toBe(0xffff);  // config_msix_vector: NO_VECTOR
    d.pci.barWrite(common + 0x1a, 0, 2);
    expect(d.pci.barRead(common + 0x1a, 2)).toBe(0xffff);  // queue_msix_vector: NO_VECTOR
    expect(d.pci.barRead(common + 0x18, 2)).toBe(1024);    // queue_size reads the maximum
    const driver = new SplitDriver(port, { queueSize: 128 });
    const c = new P9Client(driver.rpcFn, { msize: 65536 });
    await c.version(65536);
    expect(d.pci.barRead(isr, 1)).toBe(0);                  // the port's interrupt handler read (cleared) it
    expect(d.pci.barRead(common + 0x14, 1)).toBe(15);
    expect(port.readTag()).toBe('share9');
  });
});
