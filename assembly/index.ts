// The module's ABI: every export, and only numbers cross (i64 as BigInt on the JS side).
// Documented in README.md ("ABI") and typed in src/wasm/abi.ts. Bump ABI_VERSION on any change.
import { setWindow, setCopyMode } from "./guest";
import * as state from "./state";
import { CORE_END, COUNTERS_BASE, MAX_SLOTS } from "./layout";
import * as dev from "./device";
import { putDirent } from "./p9/server";
import { clearCounters } from "./counters";
import { slotPtr, outPtr, OFF_SESSION } from "./slots";
import * as stream from "./stream";
import * as transport from "./transport";
import * as fids from "./p9/fids";
import { MAX_SESSIONS } from "./layout";

const ABI_VERSION: i32 = 5;

export function abiVersion(): i32 { return ABI_VERSION; }

/** Bytes of linear memory the core uses from 0; guest RAM must start at or after this. */
export function coreEnd(): usize { return CORE_END; }

/** Place guest RAM at [base, base + size) of linear memory and reset the device. */
export function init(base: usize, size: u64, copyMode: i32): void {
  setWindow(base, size);
  setCopyMode(copyMode != 0);
  clearCounters();
  dev.initSessions();
  dev.reset();
  transport.transportInit();
}

// ── transports (transport.ts): the register files a VMM maps ──
/** Where the host writes the mount tag bytes (at most 255), then calls setTagLen. */
export function tagPtr(): usize { return transport.tagPtr(); }
export function setTagLen(n: i32): void { transport.setTagLen(n); }
/** virtio-mmio v2: a `size`-byte access at `off` in the device's window. */
export function mmioRead(off: u32, size: u32): u32 { return transport.mmioRead(off, size); }
export function mmioWrite(off: u32, value: u32, size: u32): void { transport.mmioWrite(off, value, size); }
/** virtio-pci modern: configuration space and BAR 0 (4 KiB) accesses. */
export function pciConfigRead(off: u32, size: u32): u32 { return transport.pciConfigRead(off, size); }
export function pciConfigWrite(off: u32, value: u32, size: u32): void { transport.pciConfigWrite(off, value, size); }
export function pciBarRead(off: u32, size: u32): u32 { return transport.pciBarRead(off, size); }
export function pciBarWrite(off: u32, value: u32, size: u32): void { transport.pciBarWrite(off, value, size); }

export function deviceFeatures(): u64 { return dev.offeredFeatures(); }
/** Withhold features from the offer (VERSION_1 stays); see device.ts. */
export function offerFeatures(mask: u64): void { dev.offerFeatures(mask); }
/** Returns 1 if accepted (FEATURES_OK), 0 if refused. */
export function setDriverFeatures(f: u64): i32 { return dev.setDriverFeatures(f) ? 1 : 0; }
export function status(): u32 { return dev.getStatus(); }
/** The features the driver accepted (0 until FEATURES_OK). */
export function driverFeatures(): u64 { return dev.negotiated(); }
/** Returns 0, or EINVAL for a bad size, misaligned area or one outside guest RAM. */
export function setupQueue(q: i32, size: u32, desc: u64, avail: u64, used: u64): i32 {
  return dev.setupQueue(q, size, desc, avail, used);
}
export function driverOk(): i32 { return dev.driverOk() ? 1 : 0; }
export function reset(): void { dev.reset(); }
export function notify(q: i32): void { dev.notify(q); }

/** Finish slot's pending backend call with `result` (0 or a Linux errno). */
export function complete(slot: i32, result: i32): void { dev.complete(slot, result); }

/** Readdir sink: one entry for slot's pending Treaddir, name bytes already at nameBuf.
 *  Returns 1 if it fit, 0 if the reply is full. */
export function dirent(slot: i32, ino: f64, next: f64, dtype: u32, nameLen: u32): i32 {
  return putDirent(slot, <u64>ino, <u64>next, dtype, nameLen) ? 1 : 0;
}

// ── 9P over streams (stream.ts) ──
/** A new stream session id (≥ 1), or -1 when all are in use. */
export function openSession(): i32 { return stream.openSession(); }
export function closeSession(id: i32): void { stream.closeSession(id); }
/** Start a stream request: 0, EAGAIN (all slots busy) or EINVAL. The reply comes via device.reply. */
export function submit(id: i32, token: u32, req: u64, reqLen: u32, rep: u64, repCap: u32): i32 {
  return stream.submit(id, token, req, reqLen, rep, repCap);
}

export function countersPtr(): usize { return COUNTERS_BASE; }
export function maxSlots(): i32 { return MAX_SLOTS; }
/** The session (0 = the virtqueue's, ≥ 1 a stream's) whose request occupies slot i, or -1. */
export function slotSession(i: i32): i32 {
  if (i < 0 || i >= MAX_SLOTS) return -1;
  return <i32>load<u32>(slotPtr(i), OFF_SESSION);
}
/** The out-parameter area of slot i (for hosts that need to address it). */
export function slotOut(i: i32): usize { return outPtr(slotPtr(i)); }

// ── snapshot and restore (state.ts) ──
/** Fids one session may hold (1..16,777,216); past it, requests that add one get EMFILE. */
export function setFidLimit(n: u32): void { fids.setFidLimit(n); }
export function maxSessions(): i32 { return MAX_SESSIONS; }
/** A session's fid table when it grew out of its first area (into the fid heap, past guest
 *  RAM): its address and bytes; 0 bytes for a table still inside [0, coreEnd). A snapshot
 *  saves these bytes; after loadState the host writes them back at the new fidTablePtr. */
export function fidTablePtr(session: i32): usize { return session < 0 || session >= MAX_SESSIONS ? 0 : fids.fidTablePtr(<u32>session); }
export function fidTableBytes(session: i32): usize { return session < 0 || session >= MAX_SESSIONS ? 0 : fids.fidTableBytes(<u32>session); }

/** Write the module's globals into its state block (inside [0, coreEnd)); returns its address.
 *  The snapshot is then the memory image [0, coreEnd) and the grown fid tables. Only when no request is in flight. */
export function saveState(): usize { return state.saveState(); }
/** After the host wrote a memory image back: reload the globals. 1 = ok, 0 = not a state. */
export function loadState(): i32 { return state.loadState() ? 1 : 0; }
/** Requests in flight (slots in use), over the device queue and stream sessions. */
export function inflight(): i32 { return <i32>load<u32>(COUNTERS_BASE + 2056); }
