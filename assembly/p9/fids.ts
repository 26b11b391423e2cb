// The fid table of each session: open addressing with linear probing and backward-shift
// deletion (no tombstones). A table starts in the session's inline area and doubles, with a
// rehash, when it passes 3/4 load; bigger tables come from the fid heap below. Lookup is
// O(1) and the steady state allocates nothing: memory is taken only when a table doubles.
//
//   session (SESSION_SIZE bytes at SESSION_BASE + i × SESSION_SIZE)
//   +0  msize u32   +4  count u32   +8  dialect u32 (1 = 9P2000.L negotiated)
//   +16 in use u32 (stream sessions)   +20 table ptr u32   +24 mask u32 (entries − 1)
//   +28 hash shift u32 (32 − log2 entries)
//   +64 the inline table: INLINE_FIDS entries
//   entry (32 bytes):
//        +0 fid u32  +4 used u32  +8 node u32  +12 fh u32  +16 flags u32  +20 uid u32
//        +24 ino u64
//   flags: FID_OPEN | FID_XATTR_READ | FID_XATTR_WRITE, qid type in bits 8..15.
//
// The fid heap: blocks of a power of two of 64 KiB pages taken with memory.grow (after guest
// RAM: the host never places anything of its own above the memory's end), one free list per
// size. A table that doubles returns its old block; a session that ends (Tversion, reset,
// closed connection) returns its table; both are reused by the next table of that size.
// Module memory never shrinks, so the heap holds at most what the largest tables held at
// once: each session's table is bounded by the fid limit.
import * as E from "./errno";
import { hostGrew } from "../host";
import { SESSION_BASE, SESSION_SIZE, SESSION_HDR_SIZE, INLINE_FIDS, FID_ENTRY_SIZE, MAX_SESSIONS, DEFAULT_FID_LIMIT, MAX_FID_LIMIT } from "../layout";

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

const S_COUNT: usize = 4;
const S_TABLE: usize = 20;
const S_MASK: usize = 24;
const S_SHIFT: usize = 28;

/** Fids one session may hold (the host's resource limit; EMFILE past it). */
let fidLimit: u32 = DEFAULT_FID_LIMIT;

/** Free blocks of the fid heap: list k holds blocks of 2^k pages (linked through word 0). */
const HEAP_FREE = memory.data(32 * 4);

@inline export function sessionPtr(session: u32): usize {
  return SESSION_BASE + <usize>session * <usize>SESSION_SIZE;
}
@inline function inlineTable(sess: usize): usize { return sess + <usize>SESSION_HDR_SIZE; }
@inline function hash(fid: u32, shift: u32): u32 { return (fid * 0x9E3779B1) >> shift; }

/** An empty session table (the inline one). Does not release a heap table: see fidReset. */
export function fidInit(sess: usize): void {
  memory.fill(inlineTable(sess), 0, <usize>INLINE_FIDS * <usize>FID_ENTRY_SIZE);
  store<u32>(sess, 0, S_COUNT);
  store<u32>(sess, <u32>inlineTable(sess), S_TABLE);
  store<u32>(sess, <u32>INLINE_FIDS - 1, S_MASK);
  store<u32>(sess, 32 - <u32>ctz(<i32>INLINE_FIDS), S_SHIFT);
}

/** After every fid of the session was released: give back a heap table, start empty. */
export function fidReset(sess: usize): void {
  let t = <usize>load<u32>(sess, S_TABLE);
  if (t != inlineTable(sess)) heapFree(t, (<usize>load<u32>(sess, S_MASK) + 1) * <usize>FID_ENTRY_SIZE);
  fidInit(sess);
}

/** Entries in the session's table (count the slots, not the fids: for clunk-all). */
export function fidSlots(sess: usize): u32 { return load<u32>(sess, S_MASK) + 1; }

/** The entry for `fid`, or 0. Entries move on insertion (a table that doubles) and deletion:
 *  do not keep the pointer across a call that inserts or deletes. */
export function fidFind(sess: usize, fid: u32): usize {
  let t = <usize>load<u32>(sess, S_TABLE);
  let mask = load<u32>(sess, S_MASK);
  let i = hash(fid, load<u32>(sess, S_SHIFT));
  while (true) { // load ≤ 3/4: a free entry ends every probe run
    let e = t + (<usize>i << 5);
    if (load<u32>(e, FE_USED) == 0) return 0;
    if (load<u32>(e, FE_FID) == fid) return e;
    i = (i + 1) & mask;
  }
  return 0;
}

/** A new entry for `fid` (which must not exist), or 0 when the session is at its limit or
 *  the table could not grow (fidFullErrno says which). */
export function fidInsert(sess: usize, fid: u32): usize {
  let count = load<u32>(sess, S_COUNT);
  if (count >= fidLimit) return 0;
  if ((<u64>count + 1) * 4 > (<u64>load<u32>(sess, S_MASK) + 1) * 3 && !grow(sess)) return 0;
  let t = <usize>load<u32>(sess, S_TABLE);
  let mask = load<u32>(sess, S_MASK);
  let i = hash(fid, load<u32>(sess, S_SHIFT));
  while (true) {
    let e = t + (<usize>i << 5);
    if (load<u32>(e, FE_USED) == 0) {
      store<u32>(e, fid, FE_FID);
      store<u32>(e, 1, FE_USED);
      store<u32>(e, 0, FE_NODE);
      store<u32>(e, 0, FE_FH);
      store<u32>(e, 0, FE_FLAGS);
      store<u32>(e, 0, FE_UID);
      store<u64>(e, 0, FE_INO);
      store<u32>(sess, count + 1, S_COUNT);
      return e;
    }
    i = (i + 1) & mask;
  }
  return 0;
}

/** Why fidInsert failed: EMFILE at the session's limit (its own quota, as RLIMIT_NOFILE is a
 *  process's), else ENFILE (the table could not grow: memory for the whole server). */
export function fidFullErrno(sess: usize): i32 {
  return load<u32>(sess, S_COUNT) >= fidLimit ? E.EMFILE : E.ENFILE;
}

/** Remove entry e (from fidFind), shifting later entries of its probe run back. */
export function fidDelete(sess: usize, e: usize): void {
  let t = <usize>load<u32>(sess, S_TABLE);
  let mask = load<u32>(sess, S_MASK);
  let shift = load<u32>(sess, S_SHIFT);
  let i = <u32>((e - t) >> 5);
  let j = i;
  while (true) {
    j = (j + 1) & mask;
    let ej = t + (<usize>j << 5);
    if (load<u32>(ej, FE_USED) == 0) break;
    let k = hash(load<u32>(ej, FE_FID), shift);
    // Move ej into the hole at i unless its home k lies cyclically in (i, j].
    let inRange = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (!inRange) {
      memory.copy(t + (<usize>i << 5), ej, <usize>FID_ENTRY_SIZE);
      i = j;
    }
  }
  store<u32>(t + (<usize>i << 5), 0, FE_USED);
  store<u32>(sess, load<u32>(sess, S_COUNT) - 1, S_COUNT);
}

/** The used entry at index i of the table, or 0 (for clunk-all). */
export function fidAt(sess: usize, i: u32): usize {
  let e = <usize>load<u32>(sess, S_TABLE) + (<usize>i << 5);
  return load<u32>(e, FE_USED) != 0 ? e : 0;
}

/** Double the session's table: a block from the heap, every entry rehashed into it. */
function grow(sess: usize): bool {
  let oldT = <usize>load<u32>(sess, S_TABLE);
  let oldN = load<u32>(sess, S_MASK) + 1;
  if (oldN >= (<u32>1 << 26)) return false; // 2 GiB tables: beyond any limit the host may set
  let n = oldN << 1;
  let bytes = <usize>n * <usize>FID_ENTRY_SIZE;
  let t = heapAlloc(bytes);
  if (t == 0) return false;
  memory.fill(t, 0, bytes);
  let mask = n - 1;
  let shift = <u32>clz(<i32>n) + 1; // 32 − log2(n)
  for (let k: u32 = 0; k < oldN; k++) {
    let e = oldT + (<usize>k << 5);
    if (load<u32>(e, FE_USED) == 0) continue;
    let i = hash(load<u32>(e, FE_FID), shift);
    while (load<u32>(t + (<usize>i << 5), FE_USED) != 0) i = (i + 1) & mask;
    memory.copy(t + (<usize>i << 5), e, <usize>FID_ENTRY_SIZE);
  }
  if (oldT != inlineTable(sess)) heapFree(oldT, <usize>oldN * <usize>FID_ENTRY_SIZE);
  store<u32>(sess, <u32>t, S_TABLE);
  store<u32>(sess, mask, S_MASK);
  store<u32>(sess, shift, S_SHIFT);
  return true;
}

/** A block of `bytes` (a power of two, ≥ 64 KiB) from the free list or memory.grow, or 0. */
function heapAlloc(bytes: usize): usize {
  let k = <usize>ctz(<i32>bytes) - 16;
  let head = <usize>load<u32>(HEAP_FREE + (k << 2));
  if (head != 0) {
    store<u32>(HEAP_FREE + (k << 2), load<u32>(head));
    return head;
  }
  let old = memory.grow(<i32>(bytes >> 16));
  if (old < 0) return 0;
  hostGrew();
  return <usize>old << 16;
}

function heapFree(block: usize, bytes: usize): void {
  let k = <usize>ctz(<i32>bytes) - 16;
  store<u32>(block, load<u32>(HEAP_FREE + (k << 2)));
  store<u32>(HEAP_FREE + (k << 2), <u32>block);
}

/** Set the per-session limit (1..MAX_FID_LIMIT; the host validates). Sessions above a
 *  lowered limit keep their fids but get no new ones. */
export function setFidLimit(n: u32): void {
  fidLimit = n < 1 ? 1 : n > MAX_FID_LIMIT ? MAX_FID_LIMIT : n;
}

/** A heap table's address and size in bytes (0 for an inline table), for snapshots. */
export function fidTablePtr(session: u32): usize { return <usize>load<u32>(sessionPtr(session), S_TABLE); }
export function fidTableBytes(session: u32): usize {
  let se = sessionPtr(session);
  if (<usize>load<u32>(se, S_TABLE) == inlineTable(se)) return 0;
  return (<usize>load<u32>(se, S_MASK) + 1) * <usize>FID_ENTRY_SIZE;
}

/** Restore: the memory image holds the sessions but not the heap (it lies outside the image).
 *  Give every session that had a heap table a fresh block of the same size for the host to
 *  fill with the saved bytes (fidTablePtr); one that cannot get it starts empty, which the
 *  host reports as a failed restore (fidTableBytes is then 0). */
function rebuildHeap(): void {
  memory.fill(HEAP_FREE, 0, 32 * 4);
  for (let i = 0; i < MAX_SESSIONS; i++) {
    let se = sessionPtr(<u32>i);
    let t = <usize>load<u32>(se, S_TABLE);
    if (t == inlineTable(se) || t == 0) continue;
    let n = load<u32>(se, S_MASK) + 1;
    // a heap table has 2 × INLINE_FIDS to 2^26 entries, a power of two
    if (n < <u32>INLINE_FIDS * 2 || n > (<u32>1 << 26) || (n & (n - 1)) != 0) { fidInit(se); continue; }
    let bytes = <usize>n * <usize>FID_ENTRY_SIZE;
    let nt = heapAlloc(bytes);
    if (nt == 0) { fidInit(se); continue; }
    memory.fill(nt, 0, bytes);
    store<u32>(se, <u32>nt, S_TABLE);
  }
}

export function saveFids(p: usize): usize { store<u32>(p, fidLimit); return p + 8; }
export function loadFids(p: usize): usize { fidLimit = load<u32>(p); rebuildHeap(); return p + 8; }
