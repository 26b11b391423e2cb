/**
 * What the guest-side driver needs from a device: guest RAM and the transport-level actions a
 * virtio driver performs (feature acceptance, queue setup, DRIVER_OK, kicks) plus interrupt
 * delivery. `Virtio9pDevice` implements it; a VMM's transport (PCI/MMIO registers) maps onto
 * the same actions.
 */
export interface QueueConfig {
  /** queue size (power of two) */
  size: number;
  /** guest physical addresses of the descriptor table, available ring and used ring */
  desc: number;
  avail: number;
  used: number;
}

export interface DevicePort {
  /** guest RAM; guest physical address 0 is ram[0] */
  readonly ram: Uint8Array;
  /** feature bits the device offers */
  readonly deviceFeatures: bigint;
  /** the subset the driver accepts; returns false if the device refuses (FEATURES_OK not set) */
  setDriverFeatures(bits: bigint): boolean;
  setupQueue(queue: number, cfg: QueueConfig): void;
  driverOk(): void;
  /** the driver's kick */
  notify(queue: number): void;
  /** used-buffer (and config-change) interrupts; may be called synchronously inside notify() */
  onInterrupt(cb: () => void): void;
  /** when `ram` lives in a memory the device may grow (fid tables): called after it grew, so
   *  the driver takes `ram` again (the old view is detached) */
  onMemoryGrow?(cb: () => void): void;
}

/** Feature bits (virtio 1.2 §6, §5.3.3). */
export const VIRTIO_9P_F_MOUNT_TAG = 1n << 0n;
export const VIRTIO_F_INDIRECT_DESC = 1n << 28n;
export const VIRTIO_F_EVENT_IDX = 1n << 29n;
export const VIRTIO_F_VERSION_1 = 1n << 32n;
export const VIRTIO_F_RING_PACKED = 1n << 34n;
