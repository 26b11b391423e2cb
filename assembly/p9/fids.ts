// The fid table of each session: fixed-size open addressing with linear probing and
// backward-shift deletion, in static memory (no GC, no tombstones).
//
//   session (SESSION_SIZE bytes at SESSION_BASE + i × SESSION_SIZE)
//   +0  msize u32   +4  count u32   +8  dialect u32 (1 = 9P2000.L negotiated)   +12 epoch u32
//   +64 entries[MAX_FIDS] × 32 bytes:
//        +0 fid u32  +4 used u32  +8 node u32  +12 fh u32  +16 flags u32  +20 uid u32
//        +24 ino u64
//   flags: FID_OPEN | FID_XATTR_READ | FID_XATTR_WRITE, qid type in bits 8..15.
import { SESSION_BASE, SESSION_SIZE, SESSION_HDR_SIZE, MAX_FIDS, FID_ENTRY_SIZE } from "../layout";

export const FID_OPEN: u32 = 1;
export const FID_XATTR_READ: u32 = 2;
export const FID_XATTR_WRITE: u32 = 4;
export const QTDIR: u32 = 0x80;
export const QTSYMLINK: u32 = 0x02;

export const FE_FID: usize = 0;
export const FE_USED: usize = 4;
export const FE_NODE: usize = 8;
export const FE_FH: usize = 12;
export const FE_FLAGS: usize = 16;
export const FE_UID: usize = 20;
export const FE_INO: usize = 24;

const MASK: u32 = <u32>MAX_FIDS - 1;

@inline export function sessionPtr(session: u32): usize {
  return SESSION_BASE + <usize>session * <usize>SESSION_SIZE;
}
@inline function entry(sess: usize, i: u32): usize {
  return sess + <usize>SESSION_HDR_SIZE + (<usize>i * <usize>FID_ENTRY_SIZE);
}
@inline function hash(fid: u32): u32 {
  return (fid * 0x9E3779B1) >> (32 - <u32>ctz(MAX_FIDS));
}

/** The entry for `fid`, or 0. Entries move on deletion: do not keep the pointer across calls
 *  that delete. */
export function fidFind(sess: usize, fid: u32): usize {
  let i = hash(fid);
  for (let n = 0; n < MAX_FIDS; n++) {
    let e = entry(sess, i);
    if (load<u32>(e, FE_USED) == 0) return 0;
    if (load<u32>(e, FE_FID) == fid) return e;
    i = (i + 1) & MASK;
  }
  return 0;
}

/** A new entry for `fid` (which must not exist), or 0 if the table is full. The table keeps
 *  one slot free so that probing always ends. */
export function fidInsert(sess: usize, fid: u32): usize {
  let count = load<u32>(sess, 4);
  if (count >= MASK) return 0;
  let i = hash(fid);
  while (true) {
    let e = entry(sess, i);
    if (load<u32>(e, FE_USED) == 0) {
      store<u32>(e, fid, FE_FID);
      store<u32>(e, 1, FE_USED);
      store<u32>(e, 0, FE_NODE);
      store<u32>(e, 0, FE_FH);
      store<u32>(e, 0, FE_FLAGS);
      store<u32>(e, 0, FE_UID);
      store<u64>(e, 0, FE_INO);
      store<u32>(sess, count + 1, 4);
      return e;
    }
    i = (i + 1) & MASK;
  }
  return 0;
}

/** Remove entry e (from fidFind), shifting later entries of its probe run back. */
export function fidDelete(sess: usize, e: usize): void {
  let i = <u32>((e - entry(sess, 0)) / <usize>FID_ENTRY_SIZE);
  let j = i;
  while (true) {
    j = (j + 1) & MASK;
    let ej = entry(sess, j);
    if (load<u32>(ej, FE_USED) == 0) break;
    let k = hash(load<u32>(ej, FE_FID));
    // Move ej into the hole at i unless its home k lies cyclically in (i, j].
    let inRange = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (!inRange) {
      memory.copy(entry(sess, i), ej, <usize>FID_ENTRY_SIZE);
      i = j;
    }
  }
  store<u32>(entry(sess, i), 0, FE_USED);
  store<u32>(sess, load<u32>(sess, 4) - 1, 4);
}

/** Visit every used entry: returns the entry at or after index *from, for clunk-all. */
export function fidAt(sess: usize, i: u32): usize {
  let e = entry(sess, i);
  return load<u32>(e, FE_USED) != 0 ? e : 0;
}
