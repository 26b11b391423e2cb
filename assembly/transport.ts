// Transports: the register files a VMM maps — virtio-mmio version 2 (VIRTIO 1.2 §4.2.2) and
// virtio-pci modern (§4.1: the PCI configuration space with its capability list, and BAR 0
// holding the common configuration, ISR, device configuration and notify areas). Both sit on
// the same device layer (device.ts); the queue logic does not know how it was reached.
//
//   BAR 0 (PCI) layout                      MMIO window (§4.2.2)
//   0x000  common config (0x38 bytes)        0x000..0x0fc  registers (32-bit)
//   0x100  ISR status (1 byte, read clears)  0x100..       device config
//   0x200  device config (tag_len, tag)
//   0x300  notify (queue 0, multiplier 0)
import * as dev from "./device";
import * as irq from "./irq";

const MMIO_MAGIC: u32 = 0x74726976;          // "virt"
const MMIO_VENDOR: u32 = 0x554D4551;         // "QEMU", as most VMMs report
const VIRTIO_ID_9P: u32 = 9;
const PCI_VENDOR_ID: u32 = 0x1AF4;
const PCI_DEVICE_ID: u32 = 0x1040 + VIRTIO_ID_9P; // modern, non-transitional (§4.1.2)
const NO_VECTOR: u32 = 0xFFFF;
export const BAR0_SIZE: u32 = 0x1000;
const BAR_COMMON: u32 = 0x000, BAR_ISR: u32 = 0x100, BAR_DEVICE: u32 = 0x200, BAR_NOTIFY: u32 = 0x300;

// ── shared transport state ──
let devFeatSel: u32 = 0;
let drvFeatSel: u32 = 0;
let drvFeatures: u64 = 0;
let queueSel: u32 = 0;
let qSize: u32 = 0;
let qDesc: u64 = 0;
let qDriver: u64 = 0;
let qDevice: u64 = 0;
let qReady: u32 = 0;
let statusShadow: u32 = 0;

// The mount tag (device config): tag_len le16 then the bytes (§5.3.4).
const TAG_MAX: i32 = 255;
const tagBuf = memory.data(TAG_MAX + 2);
export function tagPtr(): usize { return tagBuf + 2; }
export function setTagLen(n: i32): void { store<u16>(tagBuf, <u16>(n < 0 ? 0 : n > TAG_MAX ? TAG_MAX : n)); }
function configSize(): u32 { return 2 + <u32>load<u16>(tagBuf); }

function resetTransport(): void {
  devFeatSel = 0; drvFeatSel = 0; drvFeatures = 0; queueSel = 0;
  qSize = dev.MAX_QUEUE; qDesc = 0; qDriver = 0; qDevice = 0; qReady = 0; irq.clearIsr();
  statusShadow = 0;
}

export function transportInit(): void { resetTransport(); }

function deviceFeatureBank(sel: u32): u32 {
  if (sel == 0) return <u32>dev.offeredFeatures();
  if (sel == 1) return <u32>(dev.offeredFeatures() >> 32);
  return 0;
}

function setDriverFeatureBank(sel: u32, v: u32): void {
  if (sel == 0) drvFeatures = (drvFeatures & 0xFFFFFFFF00000000) | <u64>v;
  else if (sel == 1) drvFeatures = (drvFeatures & 0xFFFFFFFF) | (<u64>v << 32);
}

/** A driver's status write (§2.1): 0 resets; FEATURES_OK validates the features; DRIVER_OK starts. */
function writeStatus(v: u32): void {
  if (v == 0) { dev.reset(); resetTransport(); return; }
  let had = statusShadow;
  if ((v & dev.STATUS_FEATURES_OK) != 0 && (had & dev.STATUS_FEATURES_OK) == 0) {
    if (!dev.setDriverFeatures(drvFeatures)) v &= ~dev.STATUS_FEATURES_OK;
  }
  if ((v & dev.STATUS_DRIVER_OK) != 0 && (had & dev.STATUS_DRIVER_OK) == 0) {
    if (!dev.driverOk()) v &= ~dev.STATUS_DRIVER_OK;
  }
  statusShadow = v & ~dev.STATUS_NEEDS_RESET;
}

function readStatus(): u32 {
  // Mid-reset the device still shows its old status until in-flight requests drain
  // (§4.1.4.3.2); otherwise what the driver wrote, plus the device's own NEEDS_RESET bit.
  if (dev.isResetting()) return dev.getStatus();
  return statusShadow | (dev.getStatus() & dev.STATUS_NEEDS_RESET);
}

function enableQueue(): void {
  if (queueSel != 0) return;
  if (dev.setupQueue(0, qSize, qDesc, qDriver, qDevice) == 0) qReady = 1;
}

function configRead(off: u32, size: u32): u32 {
  let v: u32 = 0;
  for (let i: u32 = 0; i < size; i++) {
    let o = off + i;
    let b: u32 = o < configSize() ? <u32>load<u8>(tagBuf + <usize>o) : 0;
    v |= b << (8 * i);
  }
  return v;
}

// ───────────────────────────── virtio-mmio ─────────────────────────────

export function mmioRead(off: u32, size: u32): u32 {
  if (off >= 0x100) return configRead(off - 0x100, size);
  if (size != 4 || (off & 3) != 0) return 0;
  switch (off) {
    case 0x000: return MMIO_MAGIC;
    case 0x004: return 2;
    case 0x008: return VIRTIO_ID_9P;
    case 0x00c: return MMIO_VENDOR;
    case 0x010: return deviceFeatureBank(devFeatSel);
    case 0x034: return queueSel == 0 ? dev.MAX_QUEUE : 0;
    case 0x044: return queueSel == 0 ? qReady : 0;
    case 0x060: return irq.isr;
    case 0x070: return readStatus();
    case 0x0b0: case 0x0b4: case 0x0b8: case 0x0bc: return 0xFFFFFFFF; // no shared memory
    case 0x0fc: return 0; // config generation: the tag never changes
  }
  return 0;
}

export function mmioWrite(off: u32, v: u32, size: u32): void {
  if (off >= 0x100 || size != 4 || (off & 3) != 0) return; // config is read-only for 9p
  switch (off) {
    case 0x014: devFeatSel = v; break;
    case 0x020: setDriverFeatureBank(drvFeatSel, v); break;
    case 0x024: drvFeatSel = v; break;
    case 0x030: queueSel = v; break;
    case 0x038: if (qReady == 0) qSize = v; break;
    case 0x044: if (v == 1 && qReady == 0) enableQueue(); break;
    case 0x050: dev.notify(<i32>v); break;
    case 0x064: irq.ackIsr(v); break;
    case 0x070: writeStatus(v); break;
    case 0x080: if (qReady == 0) qDesc = (qDesc & 0xFFFFFFFF00000000) | <u64>v; break;
    case 0x084: if (qReady == 0) qDesc = (qDesc & 0xFFFFFFFF) | (<u64>v << 32); break;
    case 0x090: if (qReady == 0) qDriver = (qDriver & 0xFFFFFFFF00000000) | <u64>v; break;
    case 0x094: if (qReady == 0) qDriver = (qDriver & 0xFFFFFFFF) | (<u64>v << 32); break;
    case 0x0a0: if (qReady == 0) qDevice = (qDevice & 0xFFFFFFFF00000000) | <u64>v; break;
    case 0x0a4: if (qReady == 0) qDevice = (qDevice & 0xFFFFFFFF) | (<u64>v << 32); break;
  }
}

// ───────────────────────────── virtio-pci modern ─────────────────────────────
//
// Config space: the type-0 header, then vendor capabilities (cap id 0x09) at 0x40:
//   0x40 COMMON (bar 0, 0x000, 0x38)   0x50 ISR (bar 0, 0x100, 1)
//   0x60 DEVICE (bar 0, 0x200, 2+tag)  0x70 NOTIFY (bar 0, 0x300, 2, multiplier 0) — 20 bytes
// No MSI-X capability: vector registers read NO_VECTOR and the driver uses INTx.

let pciCommand: u32 = 0;
let bar0: u32 = 0;
let bar0Probe: bool = false;
let intLine: u32 = 0;
const pciCaps = memory.data<u8>([
  // cap_vndr, next, len, cfg_type, bar, id, pad, pad, offset(le32), length(le32)
  0x09, 0x50, 16, 1, 0, 0, 0, 0, 0x00, 0x00, 0, 0, 0x38, 0, 0, 0,
  0x09, 0x60, 16, 3, 0, 0, 0, 0, 0x00, 0x01, 0, 0, 0x01, 0, 0, 0,
  0x09, 0x70, 16, 4, 0, 0, 0, 0, 0x00, 0x02, 0, 0, 0x00, 0, 0, 0, // length patched: 2 + tag
  0x09, 0x00, 20, 2, 0, 0, 0, 0, 0x00, 0x03, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0,
]);

export function pciConfigRead(off: u32, size: u32): u32 {
  let v: u32 = 0;
  for (let i: u32 = 0; i < size; i++) v |= pciConfigByte(off + i) << (8 * i);
  return v;
}

function pciConfigByte(o: u32): u32 {
  if (o >= 0x40 && o < 0x84) {
    if (o == 0x6C) return configSize() & 0xFF;
    if (o == 0x6D) return configSize() >> 8;
    return <u32>load<u8>(pciCaps + <usize>(o - 0x40));
  }
  let d: u32 = 0;
  switch (o & ~3) {
    case 0x00: d = PCI_VENDOR_ID | (PCI_DEVICE_ID << 16); break;
    case 0x04: d = pciCommand | (0x0010 << 16); break;      // status: capability list
    case 0x08: d = 0x01 | (0xFF0000 << 8); break;           // revision 1 (modern), class "other"
    case 0x10: d = bar0Probe ? (~(BAR0_SIZE - 1)) : (bar0 & ~(BAR0_SIZE - 1)); break; // 32-bit memory BAR
    case 0x2C: d = PCI_VENDOR_ID | (0x0040 << 16); break;   // subsystem: vendor, id ≥ 0x40 (modern)
    case 0x34: d = 0x40; break;                              // capabilities pointer
    case 0x3C: d = (intLine & 0xFF) | (1 << 8); break;       // interrupt pin INTA#
  }
  return (d >> (8 * (o & 3))) & 0xFF;
}

export function pciConfigWrite(off: u32, v: u32, size: u32): void {
  if (off == 0x04 && size >= 2) pciCommand = v & 0x0407; // IO, memory, bus master, INTx disable
  else if (off == 0x10 && size == 4) { bar0Probe = v == 0xFFFFFFFF; if (!bar0Probe) bar0 = v; }
  else if (off == 0x3C) intLine = v & 0xFF;
}

/** The guest-physical base of BAR 0 as the driver programmed it (for VMMs routing accesses). */
export function pciBar0(): u32 { return bar0 & ~(BAR0_SIZE - 1); }

export function pciBarRead(off: u32, size: u32): u32 {
  if (off >= BAR_NOTIFY) return 0;
  if (off >= BAR_DEVICE) return configRead(off - BAR_DEVICE, size);
  if (off >= BAR_ISR) return off == BAR_ISR ? irq.takeIsr() : 0; // reading the ISR clears it
  return commonRead(off, size);
}

export function pciBarWrite(off: u32, v: u32, size: u32): void {
  if (off >= BAR_NOTIFY) { if (off == BAR_NOTIFY) dev.notify(<i32>(v & 0xFFFF)); return; }
  if (off < BAR_ISR) commonWrite(off, v, size);
}

function commonRead(off: u32, size: u32): u32 {
  switch (off) {
    case 0x00: return devFeatSel;
    case 0x04: return deviceFeatureBank(devFeatSel);
    case 0x08: return drvFeatSel;
    case 0x0C: return drvFeatSel == 0 ? <u32>drvFeatures : drvFeatSel == 1 ? <u32>(drvFeatures >> 32) : 0;
    case 0x10: return NO_VECTOR;
    case 0x12: return 1;                                   // num_queues
    case 0x14: return size == 1 ? readStatus() : readStatus() & 0xFF; // device_status u8 (+ generation 0)
    case 0x15: return 0;                                   // config_generation
    case 0x16: return queueSel;
    case 0x18: return queueSel == 0 ? qSize : 0;
    case 0x1A: return NO_VECTOR;
    case 0x1C: return queueSel == 0 ? qReady : 0;
    case 0x1E: return 0;                                   // queue_notify_off
    case 0x20: return <u32>qDesc;
    case 0x24: return <u32>(qDesc >> 32);
    case 0x28: return <u32>qDriver;
    case 0x2C: return <u32>(qDriver >> 32);
    case 0x30: return <u32>qDevice;
    case 0x34: return <u32>(qDevice >> 32);
  }
  return 0;
}

function commonWrite(off: u32, v: u32, size: u32): void {
  switch (off) {
    case 0x00: devFeatSel = v; break;
    case 0x08: drvFeatSel = v; break;
    case 0x0C: setDriverFeatureBank(drvFeatSel, v); break;
    case 0x14: writeStatus(v & 0xFF); break;
    case 0x16: queueSel = v & 0xFFFF; if (queueSel == 0 && qReady == 0 && qSize == 0) qSize = dev.MAX_QUEUE; break;
    case 0x18: if (qReady == 0 && queueSel == 0) qSize = v & 0xFFFF; break;
    case 0x1C: if (v == 1 && qReady == 0) enableQueue(); break;
    case 0x20: if (qReady == 0) qDesc = (qDesc & 0xFFFFFFFF00000000) | <u64>v; break;
    case 0x24: if (qReady == 0) qDesc = (qDesc & 0xFFFFFFFF) | (<u64>v << 32); break;
    case 0x28: if (qReady == 0) qDriver = (qDriver & 0xFFFFFFFF00000000) | <u64>v; break;
    case 0x2C: if (qReady == 0) qDriver = (qDriver & 0xFFFFFFFF) | (<u64>v << 32); break;
    case 0x30: if (qReady == 0) qDevice = (qDevice & 0xFFFFFFFF00000000) | <u64>v; break;
    case 0x34: if (qReady == 0) qDevice = (qDevice & 0xFFFFFFFF) | (<u64>v << 32); break;
  }
}

/** Snapshot (state.ts): this module's globals (the tag and capabilities are static data). */
export function saveTransport(p: usize): usize {
  store<u32>(p, devFeatSel); store<u32>(p, drvFeatSel, 4); store<u64>(p, drvFeatures, 8);
  store<u32>(p, queueSel, 16); store<u32>(p, qSize, 20); store<u64>(p, qDesc, 24);
  store<u64>(p, qDriver, 32); store<u64>(p, qDevice, 40); store<u32>(p, qReady, 48);
  store<u32>(p, statusShadow, 52); store<u32>(p, pciCommand, 56); store<u32>(p, bar0, 60);
  store<u32>(p, bar0Probe ? 1 : 0, 64); store<u32>(p, intLine, 68);
  return p + 72;
}
export function loadTransport(p: usize): usize {
  devFeatSel = load<u32>(p); drvFeatSel = load<u32>(p, 4); drvFeatures = load<u64>(p, 8);
  queueSel = load<u32>(p, 16); qSize = load<u32>(p, 20); qDesc = load<u64>(p, 24);
  qDriver = load<u64>(p, 32); qDevice = load<u64>(p, 40); qReady = load<u32>(p, 48);
  statusShadow = load<u32>(p, 52); pciCommand = load<u32>(p, 56); bar0 = load<u32>(p, 60);
  bar0Probe = load<u32>(p, 64) != 0; intLine = load<u32>(p, 68);
  return p + 72;
}
