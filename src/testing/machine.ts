/**
 * An in-process machine: our device with a backend, the guest-side split-ring driver over its
 * RAM, and a 9P2000.L client on top — the whole virtqueue path, no shortcuts.
 */
import { Virtio9pDevice, type DeviceOptions } from '../device.js';
import type { Backend } from '../backends/backend.js';
import { SplitDriver } from './virtio/split-driver.js';
import { P9Client } from './p9/client.js';
import { MmioPort, PciPort } from './virtio/transport-ports.js';
import { PackedDriver } from './virtio/packed-driver.js';
import type { DevicePort } from './port.js';

export interface MachineOptions {
  backend: Backend;
  guestMemorySize?: number;
  queueSize?: number;
  indirect?: boolean;
  eventIdx?: boolean;
  msize?: number;
  debug?: boolean;
  device?: Partial<DeviceOptions>;
  /** how the driver reaches the device: direct calls (default), virtio-mmio or virtio-pci registers */
  transport?: 'direct' | 'mmio' | 'pci';
}

export interface Machine {
  device: Virtio9pDevice;
  driver: SplitDriver;
  client: P9Client;
}

export async function createMachine(opts: MachineOptions): Promise<Machine> {
  const device = await Virtio9pDevice.create({
    backend: opts.backend,
    guestMemorySize: opts.guestMemorySize ?? 64 << 20,
    debug: opts.debug,
    ...opts.device,
  });
  const port: DevicePort = opts.transport === 'mmio' ? new MmioPort(device) : opts.transport === 'pci' ? new PciPort(device) : device;
  const driver = new SplitDriver(port, {
    queueSize: opts.queueSize ?? 128,
    indirect: opts.indirect ?? true,
    eventIdx: opts.eventIdx ?? true,
  });
  const client = new P9Client(driver.rpcFn, { msize: opts.msize ?? 512000 });
  return { device, driver, client };
}

export interface PackedMachine {
  device: Virtio9pDevice;
  driver: PackedDriver;
  client: P9Client;
}

/** The same machine with a packed virtqueue (VIRTIO_F_RING_PACKED). */
export async function createPackedMachine(opts: MachineOptions): Promise<PackedMachine> {
  const device = await Virtio9pDevice.create({ backend: opts.backend, guestMemorySize: opts.guestMemorySize ?? 64 << 20, debug: opts.debug, ...opts.device });
  const port: DevicePort = opts.transport === 'mmio' ? new MmioPort(device) : opts.transport === 'pci' ? new PciPort(device) : device;
  const driver = new PackedDriver(port, { queueSize: opts.queueSize ?? 128, indirect: opts.indirect ?? true });
  const client = new P9Client(driver.rpcFn, { msize: opts.msize ?? 512000 });
  return { device, driver, client };
}
