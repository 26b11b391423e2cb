/**
 * virtio9p-wasm — the embedding API.
 *
 *   const device = await Virtio9pDevice.create({ backend: new MemoryBackend(), tag: 'share' });
 *   device.onInterrupt((kind) => raiseIrq());    // kind 0: used buffers, 1: config change
 *   device.setDriverFeatures(features);          // from the driver's feature writes
 *   device.setupQueue(0, { size, desc, avail, used });
 *   device.driverOk();
 *   device.notify(0);                            // the driver's kick
 */
export { Virtio9pDevice, type DeviceOptions, type Counters } from './device.js';
export { MemoryBackend } from './backends/memory.js';
export {
  withSecurityModel, MappedBackend, MappedXattrBackend, MappedFileBackend, SECURITY_MODELS, DEFAULT_SECURITY_MODEL,
  type SecurityModel, type SecurityOptions, type Mapped, type Where,
} from './backends/security.js';
export { AnameBackend } from './backends/aname.js';
export type { Backend, Stat, Entry, Created, StatFs, SetAttr, DirSink, Node, Fh } from './backends/backend.js';
export { P9Error, toErrno } from './errno.js';
export * as errno from './errno.js';
export { ABI_VERSION, STATUS } from './wasm/abi.js';
export { V86Handle9p, type V86Handle9pOptions } from './adapters/v86-handle9p.js';
export { V86Virtio9p, type V86Virtio9pOptions } from './adapters/v86-pci.js';
export { HttpBackend, type HttpBackendOptions, type HttpCounters } from './backends/http.js';
export { OverlayBackend, type OverlayOptions } from './backends/overlay.js';
export { MemoryUpperStore, type UpperStore } from './backends/upper-store.js';
export { IndexedDbStore, type IndexedDbStoreOptions } from './backends/upper-idb-store.js';
