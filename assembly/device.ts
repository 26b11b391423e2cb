// Device-level state: feature negotiation, status, DRIVER_OK, reset, and the queue loop that
// pops chains into request slots. Transports (PCI/MMIO register files) sit on top of this.
import {
  queueSetup, queueReady, queueReset, peekAvail, consume, walkChain, publish, armKick,
  POP_EMPTY, POP_BROKEN, setStalled, isStalled, pushUsed,
} from "./virtq/split";
import * as split from "./virtq/split";
import * as packed from "./virtq/packed";
import { allocSlot, freeSlot, slotPtr, OFF_SESSION, OFF_HEAD, OFF_QUEUE, OFF_STATE, OFF_FLAGS, SLOT_FREE, SF_ORPHAN } from "./slots";
import { startRequest, usedDirty, clunkAll, MAX_MSIZE } from "./p9/server";
import * as server from "./p9/server";
import { raise } from "./irq";
import { bump, C_MALFORMED_CHAINS, C_NEEDS_RESET, C_STALLS } from "./counters";
import { MAX_SLOTS, MAX_SESSIONS, MAX_QUEUE_SIZE } from "./layout";
import { sessionPtr, fidInit } from "./p9/fids";

export const VIRTIO_9P_F_MOUNT_TAG: u64 = 1 << 0;
export const VIRTIO_F_INDIRECT_DESC: u64 = 1 << 28;
export const VIRTIO_F_EVENT_IDX: u64 = 1 << 29;
export const VIRTIO_F_VERSION_1: u64 = 1 << 32;
export const VIRTIO_F_RING_PACKED: u64 = 1 << 34;
export const DEVICE_FEATURES: u64 = VIRTIO_9P_F_MOUNT_TAG | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX | VIRTIO_F_VERSION_1 | VIRTIO_F_RING_PACKED;

/** What the device offers: DEVICE_FEATURES, less what the VMM withheld (offerFeatures). */
let offered: u64 = DEVICE_FEATURES;
export function offeredFeatures(): u64 { return offered; }
/** The VMM withholds features (e.g. RING_PACKED for a driver it knows mishandles it); VERSION_1
 *  stays: this is a modern-only device. Takes effect at the next feature negotiation. */
export function offerFeatures(mask: u64): void { offered = (DEVICE_FEATURES & mask) | VIRTIO_F_VERSION_1; }

export const STATUS_ACKNOWLEDGE: u32 = 1;
export const STATUS_DRIVER: u32 = 2;
export const STATUS_DRIVER_OK: u32 = 4;
export const STATUS_FEATURES_OK: u32 = 8;
export const STATUS_NEEDS_RESET: u32 = 64;
export const STATUS_FAILED: u32 = 128;

export const IRQ_USED: i32 = 0;
export const IRQ_CONFIG: i32 = 1;

export const MAX_QUEUE: u32 = <u32>MAX_QUEUE_SIZE;

let status: u32 = 0;
let driverFeatures: u64 = 0;
/** A reset was requested while requests were in flight; it completes when they drain. */
let resetting: bool = false;

/** The device status; after a reset request it reads the old value until the reset has
 *  completed (VIRTIO 1.2 §4.1.4.3.2, §4.2.2.2: the driver waits for 0 before re-initialising). */
export function getStatus(): u32 { return status; }
export function isResetting(): bool { return resetting; }

/** The driver's accepted features. Refused (false, FEATURES_OK stays clear) if not a subset of
 *  ours or without VERSION_1 (VIRTIO 1.2 §6.1: a modern device may require it). */
export function setDriverFeatures(f: u64): bool {
  if (resetting) return false;
  if ((f & ~offered) != 0 || (f & VIRTIO_F_VERSION_1) == 0) {
    status &= ~STATUS_FEATURES_OK;
    return false;
  }
  driverFeatures = f;
  split.featIndirect = (f & VIRTIO_F_INDIRECT_DESC) != 0;
  split.featEventIdx = (f & VIRTIO_F_EVENT_IDX) != 0;
  status |= STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK;
  return true;
}

export function negotiated(): u64 { return driverFeatures; }

export function setupQueue(q: i32, size: u32, desc: u64, avail: u64, used: u64): i32 {
  if (q != 0 || resetting) return 22;
  // The areas are the descriptor ring and the driver / device event structures when packed.
  if ((driverFeatures & VIRTIO_F_RING_PACKED) != 0) return packed.packedSetup(q, size, desc, avail, used);
  return queueSetup(q, size, desc, avail, used);
}

export function driverOk(): bool {
  if (resetting) return false;
  if ((status & STATUS_FEATURES_OK) == 0 || !queueReady(0)) return false;
  status |= STATUS_DRIVER_OK;
  return true;
}

/**
 * Reset (the driver wrote 0 to status): queues, features and the 9P session. Requests still
 * in flight are orphaned — they finish without writing a reply or touching the rings — and
 * the reset completes (status reads 0) when the last of them has drained, as QEMU drains
 * before v9fs_reset. Until then the device refuses re-initialisation.
 */
export function reset(): void {
  let pending = 0;
  for (let i = 0; i < MAX_SLOTS; i++) {
    let s = slotPtr(i);
    if (load<u32>(s, OFF_STATE) != SLOT_FREE && load<u32>(s, OFF_SESSION) == 0) {
      store<u32>(s, load<u32>(s, OFF_FLAGS) | SF_ORPHAN, OFF_FLAGS);
      pending++;
    }
  }
  resetting = true;
  if (pending == 0) finishReset();
}

function finishReset(): void {
  status = 0;
  driverFeatures = 0;
  split.featIndirect = false;
  split.featEventIdx = false;
  queueReset(0);
  clunkAll(0);
  store<u32>(sessionPtr(0), MAX_MSIZE);
  server.usedDirty = false;
  resetting = false;
}

function orphansLeft(): bool {
  for (let i = 0; i < MAX_SLOTS; i++) {
    let s = slotPtr(i);
    if (load<u32>(s, OFF_STATE) != SLOT_FREE && load<u32>(s, OFF_SESSION) == 0) return true;
  }
  return false;
}

export function initSessions(): void {
  for (let i = 0; i < MAX_SESSIONS; i++) {
    store<u32>(sessionPtr(<u32>i), MAX_MSIZE);
    fidInit(sessionPtr(<u32>i));
  }
}

function needsReset(): void {
  if ((status & STATUS_NEEDS_RESET) != 0) return;
  status |= STATUS_NEEDS_RESET;
  bump(C_NEEDS_RESET);
  if ((status & STATUS_DRIVER_OK) != 0) raise(IRQ_CONFIG);
}

@inline function live(): bool {
  return !resetting && (status & (STATUS_DRIVER_OK | STATUS_NEEDS_RESET)) == STATUS_DRIVER_OK;
}

/**
 * The driver kicked queue q: pop every available chain into a request slot and start it.
 * Stops (and resumes on the next completion) when every slot is busy. A malformed ring puts
 * the device in DEVICE_NEEDS_RESET. Publishes used elements once at the end.
 */
export function notify(q: i32): void {
  if (q != 0 || !live()) return;
  drain(q);
  flush(q);
}

function drain(q: i32): void {
  if (packed.isPacked(q)) { drainPacked(q); return; }
  while (true) {
    while (true) {
      let head = peekAvail(q);
      if (head == POP_EMPTY) break;
      if (head == POP_BROKEN) { bump(C_MALFORMED_CHAINS); needsReset(); return; }
      let s = allocSlot();
      if (s == 0) { bump(C_STALLS); setStalled(q, true); return; }
      consume(q);
      store<u32>(s, 0, OFF_SESSION);
      store<u32>(s, <u32>head, OFF_HEAD);
      store<u32>(s, <u32>q, OFF_QUEUE);
      if (!walkChain(q, head, s) || !startRequest(s)) {
        freeSlot(s);
        bump(C_MALFORMED_CHAINS);
        needsReset();
        return;
      }
    }
    if (!armKick(q)) break;
  }
}

function drainPacked(q: i32): void {
  while (packed.packedAvailable(q)) {
    let s = allocSlot();
    if (s == 0) { bump(C_STALLS); setStalled(q, true); return; }
    store<u32>(s, 0, OFF_SESSION);
    store<u32>(s, <u32>q, OFF_QUEUE);
    if (!packed.packedWalk(q, s) || !startRequest(s)) {
      freeSlot(s);
      bump(C_MALFORMED_CHAINS);
      needsReset();
      return;
    }
  }
}

/** Publish what was completed and interrupt if the driver wants it. */
function flush(q: i32): void {
  if (!server.usedDirty) return;
  server.usedDirty = false;
  if (packed.isPacked(q) ? packed.packedPublish(q) : publish(q)) raise(IRQ_USED);
}

/** The host finished slot i's pending backend call. */
export function complete(i: i32, result: i32): void {
  server.resume(i, result);
  if (resetting) { if (!orphansLeft()) finishReset(); return; }
  if (!queueReady(0)) { server.usedDirty = false; return; }
  if (isStalled(0) && live()) { setStalled(0, false); drain(0); }
  flush(0);
}

/** Snapshot (state.ts): this module's globals. */
export function saveDevice(p: usize): usize {
  store<u32>(p, status); store<u32>(p, resetting ? 1 : 0, 4); store<u64>(p, driverFeatures, 8);
  store<u32>(p, split.featIndirect ? 1 : 0, 16); store<u32>(p, split.featEventIdx ? 1 : 0, 20);
  store<u32>(p, server.usedDirty ? 1 : 0, 24);
  store<u64>(p, offered, 32);
  return p + 40;
}
export function loadDevice(p: usize): usize {
  status = load<u32>(p); resetting = load<u32>(p, 4) != 0; driverFeatures = load<u64>(p, 8);
  split.featIndirect = load<u32>(p, 16) != 0; split.featEventIdx = load<u32>(p, 20) != 0;
  server.usedDirty = load<u32>(p, 24) != 0;
  offered = load<u64>(p, 32);
  return p + 40;
}
