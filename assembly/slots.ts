// Request slots: the state of one request from the moment its chain is popped until its reply
// is published. A slot survives across asynchronous backend calls, so many requests are in
// flight at once and a slow one never blocks the others.
//
//   slot (SLOT_SIZE bytes, at SLOT_BASE + i × SLOT_SIZE)
//   +0    state u32   FREE | RUNNING | PENDING
//   +4    session u32         +8   head u32 (chain head; 0xFFFFFFFF for stream requests)
//   +12   tag u32             +16  type u32           +20  stage u32
//   +24   nRead u32 (readable segments)               +28  nWrite u32 (writable segments)
//   +32   readLen u32         +36  writeLen u32       +40  size u32 (declared message size)
//   +44   flushHead i32       +48  flushNext i32      +52  flushTarget i32
//   +56   flags u32           +60  queue u32
//   +64   aux[4] u32          +80  auxq u64            +88  epoch u32
//   +96   F[24] u64  decoded request fields            +288 W[16] u64  walk names
//   +416  wPos u32 (bytes of Rreaddir data written)    +420 wBudget u32   +424 nDesc u32 (packed)
//   +512  R[24] u64  reply fields
//   +SLOT_MSG  the gathered T-message     +SLOT_OUT  backend out-parameters
//   +SLOT_IOV  iovecs {ptr u32, len u32}: readable segments, writable segments, then a slice
import { MAX_SLOTS, SLOT_BASE, SLOT_SIZE, SLOT_MSG, SLOT_OUT, SLOT_IOV, COUNTERS_BASE } from "./layout";

export const SLOT_FREE: u32 = 0;
export const SLOT_RUNNING: u32 = 1;
export const SLOT_PENDING: u32 = 2;

export const SF_FLUSHED: u32 = 1;   // a Tflush asked to cancel this request
export const SF_ORPHAN: u32 = 2;    // the device was reset while it was pending
export const NO_HEAD: u32 = 0xFFFFFFFF;
/** OFF_QUEUE of a request that came from a stream (submit), not a virtqueue. */
export const STREAM_QUEUE: u32 = 0xFFFFFFFF;

export const OFF_STATE: usize = 0;
export const OFF_SESSION: usize = 4;
export const OFF_HEAD: usize = 8;
export const OFF_TAG: usize = 12;
export const OFF_TYPE: usize = 16;
export const OFF_STAGE: usize = 20;
export const OFF_NREAD: usize = 24;
export const OFF_NWRITE: usize = 28;
export const OFF_READLEN: usize = 32;
export const OFF_WRITELEN: usize = 36;
export const OFF_SIZE: usize = 40;
export const OFF_FLUSHHEAD: usize = 44;
export const OFF_FLUSHNEXT: usize = 48;
export const OFF_FLUSHTARGET: usize = 52;
export const OFF_FLAGS: usize = 56;
export const OFF_QUEUE: usize = 60;
export const OFF_AUX: usize = 64;
export const OFF_AUXQ: usize = 80;
export const OFF_EPOCH: usize = 88;
export const OFF_F: usize = 96;
export const OFF_W: usize = 288;
export const OFF_WPOS: usize = 416;
export const OFF_WBUDGET: usize = 420;
/** ring slots a packed-queue chain occupied (skipped when its used descriptor is written) */
export const OFF_NDESC: usize = 424;
export const OFF_R: usize = 512;

let freeCount: i32 = MAX_SLOTS;
// Free slots as a stack (LIFO): the slot freed last is reused first, so one request at a time
// keeps touching the same few cache lines instead of cycling through every slot.
const freeStack = memory.data(MAX_SLOTS * 4);
let stackInit: bool = false;

function initStack(): void {
  for (let i = 0; i < MAX_SLOTS; i++) store<i32>(freeStack + (<usize>i << 2), MAX_SLOTS - 1 - i);
  stackInit = true;
}

// Counters (COUNTERS_BASE): see counters.ts
const C_INFLIGHT: usize = 2056;
const C_HWM: usize = 2060;

@inline export function slotPtr(i: i32): usize {
  return SLOT_BASE + <usize>i * <usize>SLOT_SIZE;
}
@inline export function slotIndex(s: usize): i32 {
  return <i32>((s - SLOT_BASE) / <usize>SLOT_SIZE);
}
@inline export function msgPtr(s: usize): usize { return s + <usize>SLOT_MSG; }
@inline export function outPtr(s: usize): usize { return s + <usize>SLOT_OUT; }
@inline export function iovPtr(s: usize): usize { return s + <usize>SLOT_IOV; }

export function slotsFree(): i32 { return freeCount; }

/** A free slot (state RUNNING), or 0 if all are busy. */
export function allocSlot(): usize {
  if (!stackInit) initStack();
  if (freeCount == 0) return 0;
  freeCount--;
  let s = slotPtr(load<i32>(freeStack + (<usize>freeCount << 2)));
  store<u32>(s, SLOT_RUNNING, OFF_STATE);
  store<u32>(s, 0, OFF_STAGE);
  store<u32>(s, 0, OFF_FLAGS);
  store<i32>(s, -1, OFF_FLUSHHEAD);
  store<i32>(s, -1, OFF_FLUSHNEXT);
  store<i32>(s, -1, OFF_FLUSHTARGET);
  store<u32>(s, 0, OFF_WPOS);
  let inflight = load<u32>(COUNTERS_BASE, C_INFLIGHT) + 1;
  store<u32>(COUNTERS_BASE, inflight, C_INFLIGHT);
  if (inflight > load<u32>(COUNTERS_BASE, C_HWM)) store<u32>(COUNTERS_BASE, inflight, C_HWM);
  return s;
}

export function freeSlot(s: usize): void {
  if (load<u32>(s, OFF_STATE) == SLOT_FREE) return;
  store<u32>(s, SLOT_FREE, OFF_STATE);
  assert(freeCount < MAX_SLOTS, "slot freed twice");
  store<i32>(freeStack + (<usize>freeCount << 2), slotIndex(s));
  freeCount++;
  store<u32>(COUNTERS_BASE, load<u32>(COUNTERS_BASE, C_INFLIGHT) - 1, C_INFLIGHT);
}

/** Snapshot (state.ts): this module's globals; the stack itself is static data. */
export function saveSlots(p: usize): usize {
  store<i32>(p, freeCount); store<u32>(p, stackInit ? 1 : 0, 4);
  return p + 8;
}
export function loadSlots(p: usize): usize {
  freeCount = load<i32>(p); stackInit = load<u32>(p, 4) != 0;
  return p + 8;
}
