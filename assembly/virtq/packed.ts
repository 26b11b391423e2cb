// The packed virtqueue (VIRTIO 1.2 §2.8): one descriptor ring written by both sides, wrap
// counters instead of indices, and event-suppression structures.
//
//   descriptor (16 bytes)          event suppression (4 bytes: driver area, device area)
//   +0  addr  le64                 +0  desc  le16  {offset: 15, wrap: 1}
//   +8  len   le32                 +2  flags le16  ENABLE 0 | DISABLE 1 | DESC 2
//   +12 id    le16
//   +14 flags le16  NEXT 1, WRITE 2, INDIRECT 4, AVAIL 1<<7, USED 1<<15
//
//   queue state (shares the split queue's QUEUE_SIZE record; see split.ts for 0..36)
//   +20 next avail index   +24 next used index   +40 packed flag
//   +44 avail wrap counter +48 used wrap counter
//
// The chain's buffer id sits in its last descriptor; the device writes one used descriptor
// per chain at the next used position and skips as many ring slots as the chain occupied
// (§2.8.6). Completions may come out of order: the driver matches them by id. The device
// area stays ENABLE (it always wants kicks); the driver area's DISABLE suppresses interrupts
// and DESC is treated as ENABLE (an extra interrupt is always allowed).
import { queuePtr, featIndirect } from "./split";
import { translate, translateAligned, syncIn, syncOut } from "../guest";
import { iovAt } from "../iov";
import { OFF_NREAD, OFF_NWRITE, OFF_READLEN, OFF_WRITELEN, OFF_HEAD, OFF_NDESC } from "../slots";
import { MAX_QUEUE_SIZE, MAX_SEGS } from "../layout";

const F_NEXT: u16 = 1, F_WRITE: u16 = 2, F_INDIRECT: u16 = 4;
const F_AVAIL: u16 = 1 << 7, F_USED: u16 = 1 << 15;
const EVENT_DISABLE: u16 = 1;

const Q_SIZE: usize = 0, Q_READY: usize = 4, Q_DESC: usize = 8, Q_DRIVER: usize = 12,
  Q_DEVICE: usize = 16, Q_AVAIL_IDX: usize = 20, Q_USED_IDX: usize = 24, Q_UNPUBLISHED: usize = 32,
  Q_PACKED: usize = 40, Q_AVAIL_WRAP: usize = 44, Q_USED_WRAP: usize = 48;

export function isPacked(q: i32): bool { return load<u32>(queuePtr(q), Q_PACKED) != 0; }

/** Validate and install a packed queue: size 1..MAX (any, §2.8.10.1), ring 16-aligned, event
 *  structures 4-aligned, all inside guest RAM. Returns 0 or 22 (EINVAL). */
export function packedSetup(q: i32, size: u32, desc: u64, driver: u64, device: u64): i32 {
  if (size == 0 || size > MAX_QUEUE_SIZE) return 22;
  let d = translateAligned(desc, <u64>size * 16, 16);
  let dr = translateAligned(driver, 4, 4);
  let dv = translateAligned(device, 4, 4);
  if (d == 0 || dr == 0 || dv == 0) return 22;
  let qp = queuePtr(q);
  memory.fill(qp, 0, 64);
  store<u32>(qp, size, Q_SIZE);
  store<u32>(qp, <u32>d, Q_DESC);
  store<u32>(qp, <u32>dr, Q_DRIVER);
  store<u32>(qp, <u32>dv, Q_DEVICE);
  store<u32>(qp, 1, Q_PACKED);
  store<u32>(qp, 1, Q_AVAIL_WRAP);
  store<u32>(qp, 1, Q_USED_WRAP);
  store<u32>(qp, 1, Q_READY);
  // SAFE: [dv, dv + 4) was validated above. Kicks stay enabled.
  store<u32>(dv, 0);
  syncOut(dv, 4);
  return 0;
}

/** Whether the descriptor at the next avail position is available (§2.8.1). */
export function packedAvailable(q: i32): bool {
  let qp = queuePtr(q);
  let d = <usize>load<u32>(qp, Q_DESC) + (<usize>load<u32>(qp, Q_AVAIL_IDX) << 4);
  let wrap = load<u32>(qp, Q_AVAIL_WRAP) != 0;
  // SAFE: the avail index is < size and the ring was validated by packedSetup.
  syncIn(d, 16);
  let flags = load<u16>(d, 14);
  let avail = (flags & F_AVAIL) != 0, used = (flags & F_USED) != 0;
  return avail == wrap && used != wrap;
}

/**
 * Walk the chain at the next avail position into slot s (readable then writable segments;
 * the buffer id → OFF_HEAD, ring slots used → OFF_NDESC) and consume it. Returns false for a
 * malformed chain: longer than the ring, an indirect table without the feature, nested, with
 * NEXT, empty or not a multiple of 16, a readable segment after a writable one, an address
 * outside guest RAM, more than MAX_SEGS segments, or more than 4 GiB in all.
 */
export function packedWalk(q: i32, s: usize): bool {
  let qp = queuePtr(q);
  let ring = <usize>load<u32>(qp, Q_DESC);
  let size = load<u32>(qp, Q_SIZE);
  let i = load<u32>(qp, Q_AVAIL_IDX);
  let count: u32 = 0;
  let nRead: i32 = 0, nWrite: i32 = 0;
  let readLen: u64 = 0, writeLen: u64 = 0;
  let id: u32 = 0;
  while (true) {
    if (++count > size) return false;
    // SAFE: i < size; the ring was validated by packedSetup.
    let d = ring + (<usize>i << 4);
    syncIn(d, 16);
    let addr = load<u64>(d);
    let len = load<u32>(d, 8);
    id = <u32>load<u16>(d, 12);
    let flags = load<u16>(d, 14);
    i = i + 1 == size ? 0 : i + 1;
    if (flags & F_INDIRECT) {
      if (!featIndirect || (flags & F_NEXT) != 0 || len == 0 || (len & 15) != 0) return false;
      let n = len >> 4;
      if (n > <u32>MAX_SEGS) return false;
      let t = translate(addr, <u64>len);
      if (t == 0) return false;
      syncIn(t, len);
      for (let j: u32 = 0; j < n; j++) {
        // SAFE: j < n and [t, t + 16n) was validated by translate.
        let e = t + (<usize>j << 4);
        let ef = load<u16>(e, 14);
        if (ef & F_INDIRECT) return false;
        let el = load<u32>(e, 8);
        if (el == 0) continue;
        let p = translate(load<u64>(e), <u64>el);
        if (p == 0 || nRead + nWrite >= MAX_SEGS) return false;
        if (ef & F_WRITE) { let x = iovAt(s, nRead + nWrite); store<u32>(x, <u32>p); store<u32>(x, el, 4); nWrite++; writeLen += el; }
        else { if (nWrite != 0) return false; syncIn(p, el); let x = iovAt(s, nRead); store<u32>(x, <u32>p); store<u32>(x, el, 4); nRead++; readLen += el; }
      }
      if (readLen + writeLen > 0xFFFFFFFF) return false;
      break;
    }
    if (len != 0) {
      let p = translate(addr, <u64>len);
      if (p == 0 || nRead + nWrite >= MAX_SEGS) return false;
      if (flags & F_WRITE) { let x = iovAt(s, nRead + nWrite); store<u32>(x, <u32>p); store<u32>(x, len, 4); nWrite++; writeLen += len; }
      else { if (nWrite != 0) return false; syncIn(p, len); let x = iovAt(s, nRead); store<u32>(x, <u32>p); store<u32>(x, len, 4); nRead++; readLen += len; }
      if (readLen + writeLen > 0xFFFFFFFF) return false;
    }
    if ((flags & F_NEXT) == 0) break;
  }
  // consume: advance past the chain, flipping the wrap counter when passing the end
  let start = load<u32>(qp, Q_AVAIL_IDX);
  let next = start + count;
  if (next >= size) { next -= size; store<u32>(qp, load<u32>(qp, Q_AVAIL_WRAP) ^ 1, Q_AVAIL_WRAP); }
  store<u32>(qp, next, Q_AVAIL_IDX);
  store<u32>(s, id, OFF_HEAD);
  store<u32>(s, count, OFF_NDESC);
  store<u32>(s, nRead, OFF_NREAD);
  store<u32>(s, nWrite, OFF_NWRITE);
  store<u32>(s, <u32>readLen, OFF_READLEN);
  store<u32>(s, <u32>writeLen, OFF_WRITELEN);
  return true;
}

/** Write the used descriptor for buffer `id` (flags last) and skip the chain's `ndesc` slots. */
export function packedPushUsed(q: i32, id: u32, len: u32, ndesc: u32): void {
  let qp = queuePtr(q);
  let size = load<u32>(qp, Q_SIZE);
  let idx = load<u32>(qp, Q_USED_IDX);
  let wrap = load<u32>(qp, Q_USED_WRAP) != 0;
  // SAFE: idx < size; the ring was validated by packedSetup.
  let d = <usize>load<u32>(qp, Q_DESC) + (<usize>idx << 4);
  store<u32>(d, len, 8);
  store<u16>(d, <u16>id, 12);
  let flags: u16 = (wrap ? (F_AVAIL | F_USED) : 0) | (len != 0 ? F_WRITE : 0);
  store<u16>(d, flags, 14);
  syncOut(d + 8, 8);
  let next = idx + (ndesc == 0 ? 1 : ndesc);
  while (next >= size) { next -= size; wrap = !wrap; }
  store<u32>(qp, next, Q_USED_IDX);
  store<u32>(qp, wrap ? 1 : 0, Q_USED_WRAP);
  store<u32>(qp, load<u32>(qp, Q_UNPUBLISHED) + 1, Q_UNPUBLISHED);
}

/** Used descriptors are visible as soon as written; decide on the interrupt. */
export function packedPublish(q: i32): bool {
  let qp = queuePtr(q);
  if (load<u32>(qp, Q_UNPUBLISHED) == 0) return false;
  store<u32>(qp, 0, Q_UNPUBLISHED);
  // SAFE: the driver area was validated by packedSetup.
  let drv = <usize>load<u32>(qp, Q_DRIVER);
  syncIn(drv, 4);
  let flags = load<u16>(drv, 2);
  return flags != EVENT_DISABLE;
}
