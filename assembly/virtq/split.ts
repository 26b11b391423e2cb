// The split virtqueue (VIRTIO 1.2 §2.7): ring geometry, popping chains, pushing used elements,
// publishing the used index once per batch, and notification suppression in both directions.
//
//   descriptor (16 bytes)       avail ring                    used ring
//   +0  addr  le64              +0  flags le16                +0  flags le16
//   +8  len   le32              +2  idx   le16                +2  idx   le16
//   +12 flags le16              +4  ring[N] le16              +4  ring[N] {id le32, len le32}
//   +14 next  le16              +4+2N used_event le16         +4+8N avail_event le16
//
//   queue state (QUEUE_SIZE bytes at QUEUE_BASE + q × QUEUE_SIZE)
//   +0 size  +4 ready  +8 desc ptr  +12 avail ptr  +16 used ptr  +20 lastAvail  +24 usedIdx
//   +28 signalled (used idx at the last interrupt decision)  +32 unpublished  +36 stalled
//
// Guest RAM is not shared with another thread while the core runs (the VMM calls notify and
// complete from its own thread), so plain loads and stores are ordered enough; a VMM that
// runs the guest on another thread over a SharedArrayBuffer must call in between its
// barriers. Every ring access below is inside ranges validated once by queueSetup (// SAFE).
import { QUEUE_BASE, QUEUE_SIZE, MAX_QUEUE_SIZE, MAX_SEGS } from "../layout";
import { translate, translateAligned, syncIn, syncOut } from "../guest";
import { iovAt } from "../iov";
import { OFF_NREAD, OFF_NWRITE, OFF_READLEN, OFF_WRITELEN } from "../slots";

export const VIRTQ_DESC_F_NEXT: u16 = 1;
export const VIRTQ_DESC_F_WRITE: u16 = 2;
export const VIRTQ_DESC_F_INDIRECT: u16 = 4;
export const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;

const Q_SIZE: usize = 0, Q_READY: usize = 4, Q_DESC: usize = 8, Q_AVAIL: usize = 12,
  Q_USED: usize = 16, Q_LAST_AVAIL: usize = 20, Q_USED_IDX: usize = 24, Q_SIGNALLED: usize = 28,
  Q_UNPUBLISHED: usize = 32, Q_STALLED: usize = 36;

export let featIndirect: bool = false;
export let featEventIdx: bool = false;

@inline export function queuePtr(q: i32): usize {
  return QUEUE_BASE + <usize>q * <usize>QUEUE_SIZE;
}

export function queueReset(q: i32): void {
  memory.fill(queuePtr(q), 0, <usize>QUEUE_SIZE);
}

/**
 * Validate and install a queue's geometry (§2.7 alignment table): size a power of two
 * ≤ MAX_QUEUE_SIZE, each area aligned (16/2/4) and wholly inside guest RAM, event fields
 * included. Returns 0 or 22 (EINVAL).
 */
export function queueSetup(q: i32, size: u32, desc: u64, avail: u64, used: u64): i32 {
  if (size == 0 || size > MAX_QUEUE_SIZE || (size & (size - 1)) != 0) return 22;
  let d = translateAligned(desc, <u64>size * 16, 16);
  let a = translateAligned(avail, 6 + <u64>size * 2, 2);
  let u = translateAligned(used, 6 + <u64>size * 8, 4);
  if (d == 0 || a == 0 || u == 0) return 22;
  let qp = queuePtr(q);
  queueReset(q);
  store<u32>(qp, size, Q_SIZE);
  store<u32>(qp, <u32>d, Q_DESC);
  store<u32>(qp, <u32>a, Q_AVAIL);
  store<u32>(qp, <u32>u, Q_USED);
  store<u32>(qp, 1, Q_READY);
  return 0;
}

@inline export function queueReady(q: i32): bool {
  return load<u32>(queuePtr(q), Q_READY) != 0;
}

/** Outcome of popping: a head, nothing, or a broken ring. */
export const POP_EMPTY: i32 = -1;
export const POP_BROKEN: i32 = -2;

/**
 * The next available head, or POP_EMPTY / POP_BROKEN (avail index more than `size` ahead of
 * what was consumed, or a head out of range: §2.7.13.x, QEMU "Guest moved index"). Does not
 * consume it: call `consume` once the chain has a slot.
 */
export function peekAvail(q: i32): i32 {
  let qp = queuePtr(q);
  let size = load<u32>(qp, Q_SIZE);
  let avail = <usize>load<u32>(qp, Q_AVAIL);
  let last = load<u32>(qp, Q_LAST_AVAIL);
  // SAFE: the avail ring [avail, avail + 6 + 2N) was validated by queueSetup.
  syncIn(avail + 2, 2);
  let idx = <u32>load<u16>(avail, 2);
  let ahead = (idx - last) & 0xFFFF;
  if (ahead == 0) return POP_EMPTY;
  if (ahead > size) return POP_BROKEN;
  let slot = avail + 4 + (<usize>(last & (size - 1)) << 1);
  syncIn(slot, 2);
  let head = <u32>load<u16>(slot);
  if (head >= size) return POP_BROKEN;
  return <i32>head;
}

export function consume(q: i32): void {
  let qp = queuePtr(q);
  store<u32>(qp, (load<u32>(qp, Q_LAST_AVAIL) + 1) & 0xFFFF, Q_LAST_AVAIL);
}

/**
 * Walk the chain at `head` into slot s's iovec table (§2.7.5, §2.7.7): readable segments, then
 * writable ones. Returns false for a malformed chain: a loop (more descriptors than the table
 * holds), next out of range, a readable descriptor after a writable one, an indirect table
 * when INDIRECT_DESC was not negotiated, nested, with NEXT, empty or not a multiple of 16, any
 * address outside guest RAM, more than MAX_SEGS segments, or more than 4 GiB in all.
 */
export function walkChain(q: i32, head: i32, s: usize): bool {
  let qp = queuePtr(q);
  let table = <usize>load<u32>(qp, Q_DESC);
  let limit = load<u32>(qp, Q_SIZE);
  let i = <u32>head;
  let visited: u32 = 0;
  let indirect = false;
  let nRead: i32 = 0, nWrite: i32 = 0;
  let readLen: u64 = 0, writeLen: u64 = 0;
  while (true) {
    if (++visited > limit) return false;
    // SAFE: i < limit, and the table [table, table + 16 × limit) was validated (by queueSetup
    // for the ring's table, by translate below for an indirect one).
    let d = table + (<usize>i << 4);
    if (!indirect) syncIn(d, 16); // an indirect table came in whole
    let addr = load<u64>(d);
    let len = load<u32>(d, 8);
    let flags = load<u16>(d, 12);
    let next = <u32>load<u16>(d, 14);
    if (flags & VIRTQ_DESC_F_INDIRECT) {
      if (!featIndirect || indirect || (flags & VIRTQ_DESC_F_NEXT) != 0) return false;
      if (len == 0 || (len & 15) != 0) return false;
      let t = translate(addr, <u64>len);
      if (t == 0) return false;
      syncIn(t, len);
      table = t; limit = len >> 4; i = 0; visited = 0; indirect = true;
      continue;
    }
    if (len != 0) {
      let p = translate(addr, <u64>len);
      if (p == 0) return false;
      if (nRead + nWrite >= MAX_SEGS) return false;
      if (flags & VIRTQ_DESC_F_WRITE) {
        let e = iovAt(s, nRead + nWrite);
        store<u32>(e, <u32>p); store<u32>(e, len, 4);
        nWrite++; writeLen += len;
      } else {
        if (nWrite != 0) return false;
        syncIn(p, len);
        let e = iovAt(s, nRead);
        store<u32>(e, <u32>p); store<u32>(e, len, 4);
        nRead++; readLen += len;
      }
      if (readLen + writeLen > 0xFFFFFFFF) return false;
    }
    if ((flags & VIRTQ_DESC_F_NEXT) == 0) break;
    if (next >= limit) return false;
    i = next;
  }
  store<u32>(s, nRead, OFF_NREAD);
  store<u32>(s, nWrite, OFF_NWRITE);
  store<u32>(s, <u32>readLen, OFF_READLEN);
  store<u32>(s, <u32>writeLen, OFF_WRITELEN);
  return true;
}

/** Write a used element; it becomes visible to the driver at the next publish. */
export function pushUsed(q: i32, head: u32, len: u32): void {
  let qp = queuePtr(q);
  let size = load<u32>(qp, Q_SIZE);
  let used = <usize>load<u32>(qp, Q_USED);
  let idx = load<u32>(qp, Q_USED_IDX);
  // SAFE: the used ring [used, used + 6 + 8N) was validated by queueSetup.
  let e = used + 4 + (<usize>(idx & (size - 1)) << 3);
  store<u32>(e, head);
  store<u32>(e, len, 4);
  syncOut(e, 8);
  store<u32>(qp, (idx + 1) & 0xFFFF, Q_USED_IDX);
  store<u32>(qp, load<u32>(qp, Q_UNPUBLISHED) + 1, Q_UNPUBLISHED);
}

/**
 * Publish the used index (the elements were written first, §2.7.8) and decide whether the
 * driver wants an interrupt: with EVENT_IDX, iff used_event lies in [old, new) (§2.7.10,
 * vring_need_event); otherwise unless the driver set NO_INTERRUPT. Returns true to interrupt.
 */
export function publish(q: i32): bool {
  let qp = queuePtr(q);
  if (load<u32>(qp, Q_UNPUBLISHED) == 0) return false;
  store<u32>(qp, 0, Q_UNPUBLISHED);
  let size = load<u32>(qp, Q_SIZE);
  let used = <usize>load<u32>(qp, Q_USED);
  let avail = <usize>load<u32>(qp, Q_AVAIL);
  let newIdx = load<u32>(qp, Q_USED_IDX);
  // SAFE: validated ring areas.
  store<u16>(used, <u16>newIdx, 2);
  syncOut(used + 2, 2);
  if (featEventIdx) {
    let old = load<u32>(qp, Q_SIGNALLED);
    store<u32>(qp, newIdx, Q_SIGNALLED);
    let evp = avail + 4 + (<usize>size << 1);
    syncIn(evp, 2);
    let ev = <u32>load<u16>(evp);
    return ((newIdx - ev - 1) & 0xFFFF) < ((newIdx - old) & 0xFFFF);
  }
  syncIn(avail, 2);
  return (load<u16>(avail) & VIRTQ_AVAIL_F_NO_INTERRUPT) == 0;
}

/**
 * With EVENT_IDX, ask for a kick on the next buffer (avail_event = lastAvail), then report
 * whether more arrived meanwhile: the caller must drain again if so (no lost wakeup, §2.7.10).
 */
export function armKick(q: i32): bool {
  let qp = queuePtr(q);
  if (!featEventIdx) return false;
  let size = load<u32>(qp, Q_SIZE);
  let used = <usize>load<u32>(qp, Q_USED);
  let avail = <usize>load<u32>(qp, Q_AVAIL);
  let last = load<u32>(qp, Q_LAST_AVAIL);
  let evp = used + 4 + (<usize>size << 3);
  store<u16>(evp, <u16>last);
  syncOut(evp, 2);
  syncIn(avail + 2, 2);
  return ((<u32>load<u16>(avail, 2)) & 0xFFFF) != last;
}

export function setStalled(q: i32, v: bool): void {
  store<u32>(queuePtr(q), v ? 1 : 0, Q_STALLED);
}
export function isStalled(q: i32): bool {
  return load<u32>(queuePtr(q), Q_STALLED) != 0;
}
