/**
 * virtio9p-wasm/testing — the guest side, to drive a device without a kernel: split and packed
 * virtqueue drivers (laid out like Linux's), drivers that reach the device only through its
 * virtio-mmio / virtio-pci registers or v86's ports, a 9P2000.L client and codec, and
 * createMachine (device + driver + client in one call). Browser-safe.
 *
 *   const { client } = await createMachine({ backend: new MemoryBackend() });
 *   await client.version(512000);
 */
export { createMachine, createPackedMachine, type Machine, type PackedMachine, type MachineOptions } from './machine.js';
export {
  type DevicePort, type QueueConfig,
  VIRTIO_9P_F_MOUNT_TAG, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1, VIRTIO_F_RING_PACKED,
} from './port.js';
export {
  SplitDriver, ArenaAllocator, type SplitDriverOptions, type Desc, type UsedElem, type RequestResult, type ChainInfo,
  VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_DESC_F_INDIRECT, VRING_AVAIL_F_NO_INTERRUPT, VRING_USED_F_NO_NOTIFY,
} from './virtio/split-driver.js';
export { PackedDriver, type PackedDriverOptions } from './virtio/packed-driver.js';
export { RegisterPort, MmioPort, PciPort, pciCaps, type PciCap } from './virtio/transport-ports.js';
export { V86PciPort } from './virtio/v86-port.js';
export {
  P9Client, P9ClientError, P9FlushedError, P9ProtocolError,
  type RpcFn, type RpcOptions, type U64, type Getattr, type SetattrArgs, type Statfs, type LockArgs, type GetlockResult, type RawOptions,
} from './p9/client.js';
export * as p9 from './p9/codec.js';
