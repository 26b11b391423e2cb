// The 9P2000.L server: per-request dispatch, the handlers, Tflush and the fid rules.
//
// A handler runs as a small state machine: `stage` 0 is the first entry; a backend import
// that answers PENDING parks the slot with the stage to resume at, and the host's
// `complete(slot, result)` re-enters the handler there with the result. Handlers never
// block and never allocate.
import {
  slotIndex, msgPtr, outPtr, freeSlot, SLOT_PENDING, SLOT_RUNNING, SLOT_FREE, SF_FLUSHED,
  SF_ORPHAN, STREAM_QUEUE, OFF_STATE, OFF_SESSION, OFF_HEAD, OFF_TAG, OFF_TYPE, OFF_STAGE,
  OFF_READLEN, OFF_WRITELEN, OFF_SIZE, OFF_FLUSHHEAD, OFF_FLUSHNEXT, OFF_FLUSHTARGET,
  OFF_FLAGS, OFF_QUEUE, OFF_AUX, OFF_AUXQ, OFF_WPOS, OFF_WBUDGET, OFF_NDESC, slotPtr,
} from "../slots";
import { OFF_EPOCH } from "../slots";
import { MAX_SLOTS, MSG_SIZE, OUT_SIZE, REPLY_BASE } from "../layout";
import { gather, scatter, slice, iovAt, syncOutWritable } from "../iov";
import { pushUsed } from "../virtq/split";
import { isPacked, packedPushUsed } from "../virtq/packed";
import {
  tFormat, P9_RLERROR, P9_TSTATFS, P9_TLOPEN, P9_TLCREATE, P9_TSYMLINK, P9_TMKNOD, P9_TRENAME,
  P9_TREADLINK, P9_TGETATTR, P9_TSETATTR, P9_TXATTRWALK, P9_TXATTRCREATE, P9_TREADDIR,
  P9_TFSYNC, P9_TLOCK, P9_TGETLOCK, P9_TLINK, P9_TMKDIR, P9_TRENAMEAT, P9_TUNLINKAT,
  P9_TVERSION, P9_TAUTH, P9_TATTACH, P9_TFLUSH, P9_TWALK, P9_TREAD, P9_TWRITE, P9_TCLUNK,
  P9_TREMOVE,
} from "./messages";
import { decode, encode, encodedHeader, field, field32, strPtr, strLen, wname, setR, strVal } from "./wire";
import * as E from "./errno";
import {
  sessionPtr, fidFind, fidInsert, fidDelete, fidAt, fidSlots, fidReset, fidFullErrno, FE_NODE, FE_FH, FE_FLAGS, FE_UID, FE_INO,
  FID_OPEN, FID_XATTR_READ, FID_XATTR_WRITE, QTDIR, QTSYMLINK,
} from "./fids";
import {
  PENDING, bAttach, bLookup, bDup, bGetattr, bSetattr, bOpen, bCreate, bRead, bWrite, bReaddir,
  bReadlink, bMkdir, bSymlink, bMknod, bLink, bRenameat, bRename, bUnlinkat, bRemove, bFsync,
  bStatfs, bXattrwalk, bXattrcreate, bLock, bGetlock, bClose, bForget, bCancel, hostReply,
} from "../host";
import {
  countRequest, countError, bump, add64, C_MALFORMED_MESSAGES, C_BYTES_READ, C_BYTES_WRITTEN,
  C_FLUSHED, C_REPLIES,
} from "../counters";

/** Our largest msize (Tversion answers min(client, this)). */
export const MAX_MSIZE: u32 = 4 << 20;
/** The smallest msize we accept (QEMU's P9_MIN_MSIZE). */
export const MIN_MSIZE: u32 = 4096;
const NOFID: u32 = 0xFFFFFFFF;
const IOHDRSZ: u32 = 11;
const XATTR_SIZE_MAX: u64 = 65536;
/** session header: bumped by every reset of the session (clunkAll) */
const SESS_EPOCH: usize = 12;
const SAFE_INT: u64 = 1 << 53;
const P9_GETATTR_BASIC: u64 = 0x7FF;
const AT_REMOVEDIR: u32 = 0x200;
// Tsetattr valid bit for SIZE (the only one the core inspects).
const P9_SETATTR_SIZE: u32 = 0x8;
// Linux open flags the core strips before opening (QEMU does the same).
const O_CREAT: u32 = 0o100, O_NOCTTY: u32 = 0o400, O_FASYNC: u32 = 0o20000, O_DIRECT: u32 = 0o40000;

// Out-area layout (slot + SLOT_OUT): the stat the backend fills, then other outs.
export const ST_INO: usize = 0, ST_MODE: usize = 8, ST_UID: usize = 12, ST_GID: usize = 16,
  ST_NODE: usize = 20, ST_NLINK: usize = 24, ST_RDEV: usize = 32, ST_SIZE: usize = 40,
  ST_BLKSIZE: usize = 48, ST_BLOCKS: usize = 56, ST_ATIME: usize = 64, ST_MTIME: usize = 80,
  ST_CTIME: usize = 96, OUT_FH: usize = 112, OUT_COUNT: usize = 116, OUT_XSIZE: usize = 120,
  OUT_WALKQIDS: usize = 256, OUT_QID: usize = 464, OUT_DIRENT: usize = 512, OUT_NAME: usize = 536,
  OUT_LINK: usize = 512;

const VERSION_L = memory.data<u8>([0x39, 0x50, 0x32, 0x30, 0x30, 0x30, 0x2E, 0x4C]); // "9P2000.L"
const UNKNOWN = memory.data<u8>([0x75, 0x6E, 0x6B, 0x6E, 0x6F, 0x77, 0x6E]); // "unknown"

/** Set when used elements were pushed and must be published. */
export let usedDirty: bool = false;

// ───────────────────────────── entry points ─────────────────────────────

/**
 * Start the request whose chain was walked into slot s. Reads the header, gathers the
 * message (all of it but a Twrite's payload), decodes it against the table and dispatches.
 * Returns false when no reply is possible (the header cannot be read or there is no room for
 * one): the caller treats the chain as malformed.
 */
export function startRequest(s: usize): bool {
  let readLen = load<u32>(s, OFF_READLEN);
  let writeLen = load<u32>(s, OFF_WRITELEN);
  if (readLen < 7 || writeLen < 7) return false;
  let m = msgPtr(s);
  gather(s, 0, m, 7);
  let size = load<u32>(m);
  let type = load<u8>(m, 4);
  let tag = load<u16>(m, 5);
  store<u32>(s, tag, OFF_TAG);
  store<u32>(s, type, OFF_TYPE);
  store<u32>(s, size, OFF_SIZE);
  countRequest(type);
  let fmt = tFormat(type);
  if (fmt.length == 0) { replyError(s, E.EOPNOTSUPP); return true; }
  let sess = sessionPtr(load<u32>(s, OFF_SESSION));
  let msize = load<u32>(sess);
  store<u32>(s, load<u32>(sess, SESS_EPOCH), OFF_EPOCH);
  // The declared size must be what the driver made readable, and within msize.
  if (size != readLen || size < 7) { malformed(s); return true; }
  if (size > msize && type != P9_TVERSION) { bump(C_MALFORMED_MESSAGES); replyError(s, E.EMSGSIZE); return true; }
  let have = type == P9_TWRITE ? (size < 23 ? size : 23) : size;
  if (have > <u32>MSG_SIZE) { bump(C_MALFORMED_MESSAGES); replyError(s, E.ENAMETOOLONG); return true; }
  gather(s, 7, m + 7, have - 7);
  if (decode(s, fmt, have, size) != 0) { malformed(s); return true; }
  run(s, 0, 0);
  return true;
}

/** The host finished a PENDING backend call for slot i. */
export function resume(i: i32, result: i32): void {
  if (i < 0 || i >= MAX_SLOTS) return;
  let s = slotPtr(i);
  if (load<u32>(s, OFF_STATE) != SLOT_PENDING) return;
  store<u32>(s, SLOT_RUNNING, OFF_STATE);
  run(s, load<u32>(s, OFF_STAGE), result);
}

function run(s: usize, stage: u32, r: i32): void {
  switch (<u8>load<u32>(s, OFF_TYPE)) {
    case P9_TVERSION: hVersion(s); break;
    case P9_TAUTH: replyError(s, E.ENOENT); break;
    case P9_TATTACH: hAttach(s, stage, r); break;
    case P9_TFLUSH: hFlush(s, stage); break;
    case P9_TWALK: hWalk(s, stage, r); break;
    case P9_TGETATTR: hGetattr(s, stage, r); break;
    case P9_TSETATTR: hSetattr(s, stage, r); break;
    case P9_TLOPEN: hLopen(s, stage, r); break;
    case P9_TLCREATE: hLcreate(s, stage, r); break;
    case P9_TREAD: hRead(s, stage, r); break;
    case P9_TWRITE: hWrite(s, stage, r); break;
    case P9_TREADDIR: hReaddir(s, stage, r); break;
    case P9_TCLUNK: hClunk(s, stage, r); break;
    case P9_TREMOVE: hRemove(s, stage, r); break;
    case P9_TSTATFS: hStatfs(s, stage, r); break;
    case P9_TREADLINK: hReadlink(s, stage, r); break;
    case P9_TMKDIR: hMkdir(s, stage, r); break;
    case P9_TSYMLINK: hSymlink(s, stage, r); break;
    case P9_TMKNOD: hMknod(s, stage, r); break;
    case P9_TLINK: hLink(s, stage, r); break;
    case P9_TRENAME: hRename(s, stage, r); break;
    case P9_TRENAMEAT: hRenameat(s, stage, r); break;
    case P9_TUNLINKAT: hUnlinkat(s, stage, r); break;
    case P9_TFSYNC: hFsync(s, stage, r); break;
    case P9_TXATTRWALK: hXattrwalk(s, stage, r); break;
    case P9_TXATTRCREATE: hXattrcreate(s, stage, r); break;
    case P9_TLOCK: hLock(s, stage, r); break;
    case P9_TGETLOCK: hGetlock(s, stage, r); break;
    default: replyError(s, E.EOPNOTSUPP);
  }
}

// ───────────────────────────── replies ─────────────────────────────

@inline function park(s: usize, stage: u32): void {
  store<u32>(s, stage, OFF_STAGE);
  store<u32>(s, SLOT_PENDING, OFF_STATE);
}
@inline function slotId(s: usize): i32 { return slotIndex(s); }
@inline function sess(s: usize): usize { return sessionPtr(load<u32>(s, OFF_SESSION)); }
/** The session was reset (Tversion, device reset, disconnect) since this request started:
 *  what it obtained must not become a fid of the new session. */
@inline function stale(s: usize): bool { return load<u32>(s, OFF_EPOCH) != load<u32>(sess(s), SESS_EPOCH); }
@inline function out(s: usize): usize { return outPtr(s); }
@inline function tagOf(s: usize): u16 { return <u16>load<u32>(s, OFF_TAG); }
@inline function msizeOf(s: usize): u32 { return load<u32>(sess(s)); }

function malformed(s: usize): void {
  bump(C_MALFORMED_MESSAGES);
  replyError(s, E.EINVAL);
}

/** Rlerror(errno) — or, for a request a Tflush cancelled, the silent len-0 completion. */
export function replyError(s: usize, errno: i32): void {
  if (errno <= 0 || errno > 4095) errno = E.EIO; // never 0: Linux would parse it as success
  if (errno == E.ECANCELED && (load<u32>(s, OFF_FLAGS) & SF_FLUSHED) != 0) {
    bump(C_FLUSHED);
    finish(s, 0);
    return;
  }
  countError(errno);
  setR(s, 0, <u64>errno);
  let total = encode(s, P9_RLERROR, tagOf(s));
  send(s, total);
}

/** Encode the reply to this request's type and send it. */
function reply(s: usize): void {
  let rtype = <u8>(load<u32>(s, OFF_TYPE) + 1);
  send(s, encode(s, rtype, tagOf(s)));
}

/** Requests without side effects: when flushed, their reply is suppressed (len 0). */
function isPure(type: u8): bool {
  return type == P9_TREAD || type == P9_TREADDIR || type == P9_TGETATTR || type == P9_TREADLINK
    || type == P9_TSTATFS || type == P9_TGETLOCK;
}

/** Scatter the encoded header into the guest and complete with the message's size. */
function send(s: usize, total: u32): void {
  // Orphaned by a reset or a closed connection: nobody reads this reply; write nothing.
  if ((load<u32>(s, OFF_FLAGS) & SF_ORPHAN) != 0) { finish(s, 0); return; }
  if ((load<u32>(s, OFF_FLAGS) & SF_FLUSHED) != 0 && isPure(<u8>load<u32>(s, OFF_TYPE))) {
    bump(C_FLUSHED);
    finish(s, 0);
    return;
  }
  let room = load<u32>(s, OFF_WRITELEN);
  let msize = msizeOf(s);
  if (total > room || total > msize) {
    // Never reply past the driver's buffer or msize: fall back to a short error.
    if (load<u8>(REPLY_BASE + 4) != P9_RLERROR && room >= 11) {
      countError(E.EMSGSIZE);
      setR(s, 0, <u64>E.EMSGSIZE);
      total = encode(s, P9_RLERROR, tagOf(s));
    } else { finish(s, 0); return; }
  }
  scatter(s, 0, REPLY_BASE, encodedHeader);
  finish(s, total);
}


/** Return the chain (len = reply size, 0 = no reply), then answer any Tflush waiting on it. */
function finish(s: usize, len: u32): void {
  let flags = load<u32>(s, OFF_FLAGS);
  let head = load<u32>(s, OFF_HEAD);
  let q = load<u32>(s, OFF_QUEUE);
  if (q == STREAM_QUEUE) {
    // The host always hears back (it owns the buffers); an orphan's reply is empty.
    if ((flags & SF_ORPHAN) != 0) len = 0;
    hostReply(head, len);
    if (len != 0) bump(C_REPLIES);
  } else if ((flags & SF_ORPHAN) == 0) {
    syncOutWritable(s, len);
    if (isPacked(<i32>q)) packedPushUsed(<i32>q, head, len, load<u32>(s, OFF_NDESC));
    else pushUsed(<i32>q, head, len);
    usedDirty = true;
    if (len != 0) bump(C_REPLIES);
  }
  let w = load<i32>(s, OFF_FLUSHHEAD);
  freeSlot(s);
  while (w >= 0) {
    let ws = slotPtr(w);
    let next = load<i32>(ws, OFF_FLUSHNEXT);
    store<u32>(ws, SLOT_RUNNING, OFF_STATE);
    reply(ws); // Rflush, after the flushed request's own completion
    w = next;
  }
}

// ───────────────────────────── helpers ─────────────────────────────

/** Name rules (QEMU): empty, '/' or NUL → ENOENT; when `creating`, "." and ".." → `dotErr`. */
function checkName(v: u64, dotErr: i32): i32 {
  let p = strPtr(v);
  let n = strLen(v);
  if (n == 0) return E.ENOENT;
  for (let i = 0; i < n; i++) {
    let c = load<u8>(p + <usize>i);
    if (c == 0x2F || c == 0) return E.ENOENT;
  }
  if (dotErr != 0 && load<u8>(p) == 0x2E && (n == 1 || (n == 2 && load<u8>(p, 1) == 0x2E))) return dotErr;
  return 0;
}

@inline function isDot(v: u64): bool { return strLen(v) == 1 && load<u8>(strPtr(v)) == 0x2E; }
@inline function isDotDot(v: u64): bool {
  return strLen(v) == 2 && load<u8>(strPtr(v)) == 0x2E && load<u8>(strPtr(v), 1) == 0x2E;
}

function qtypeOfMode(mode: u32): u32 {
  let fmt = mode & 0o170000;
  if (fmt == 0o040000) return QTDIR;
  if (fmt == 0o120000) return QTSYMLINK;
  return 0;
}

/** Write the qid of the stat at `st` to `dst` (13 bytes). qid.version is 0 (as v86 and diod
 *  for caches: the Linux client revalidates with getattr). */
function qidFromStat(st: usize, dst: usize): void {
  store<u8>(dst, <u8>qtypeOfMode(load<u32>(st, ST_MODE)));
  store<u32>(dst, 0, 1);
  store<u64>(dst, load<u64>(st, ST_INO), 5);
}

function qidFromFid(e: usize, dst: usize): void {
  store<u8>(dst, <u8>(load<u32>(e, FE_FLAGS) >> 8));
  store<u32>(dst, 0, 1);
  store<u64>(dst, load<u64>(e, FE_INO), 5);
}

/** Point fid entry e at the object of the stat at `st` (the entry takes the node reference). */
function setFidObject(e: usize, st: usize): void {
  store<u32>(e, load<u32>(st, ST_NODE), FE_NODE);
  store<u64>(e, load<u64>(st, ST_INO), FE_INO);
  let flags = load<u32>(e, FE_FLAGS) & 0xFF;
  store<u32>(e, flags | (qtypeOfMode(load<u32>(st, ST_MODE)) << 8), FE_FLAGS);
}

/** Release what a fid holds (close its handle without waiting, give back its node). */
function releaseFid(e: usize): void {
  let fh = load<u32>(e, FE_FH);
  if (fh != 0) bClose(-1, fh);
  let node = load<u32>(e, FE_NODE);
  if (node != 0) bForget(node);
}

/** Clunk every fid of a session (Tversion, reset). */
export function clunkAll(session: u32): void {
  let se = sessionPtr(session);
  store<u32>(se, load<u32>(se, SESS_EPOCH) + 1, SESS_EPOCH);
  let n = fidSlots(se);
  for (let i: u32 = 0; i < n; i++) {
    let e = fidAt(se, i);
    if (e != 0) releaseFid(e);
  }
  fidReset(se);
}

/** The fid entry named by request field i, or 0 after answering `errno`. */
function fidOrError(s: usize, i: i32, errno: i32): usize {
  let e = fidFind(sess(s), field32(s, i));
  if (e == 0) replyError(s, errno);
  return e;
}

/** An open, non-xattr fid for I/O (request field 0), or 0 after an error reply. */
function openFid(s: usize): usize {
  let e = fidOrError(s, 0, E.EBADF);
  if (e == 0) return 0;
  if ((load<u32>(e, FE_FLAGS) & FID_OPEN) == 0) { replyError(s, E.EBADF); return 0; }
  return e;
}

function replyStatQid(s: usize): void {
  qidFromStat(out(s), out(s) + OUT_QID);
  setR(s, 0, <u64>(out(s) + OUT_QID));
  reply(s);
}

// ───────────────────────────── session ─────────────────────────────

function hVersion(s: usize): void {
  let msize = field32(s, 0);
  let ver = field(s, 1);
  let se = sess(s);
  // Tversion resets the session: every fid is clunked before the reply.
  clunkAll(load<u32>(s, OFF_SESSION));
  if (msize < MIN_MSIZE) { replyError(s, E.EMSGSIZE); return; }
  if (msize > MAX_MSIZE) msize = MAX_MSIZE;
  store<u32>(se, msize);
  let isL = strLen(ver) == 8 && memory.compare(strPtr(ver), VERSION_L, 8) == 0;
  store<u32>(se, isL ? 1 : 0, 8);
  setR(s, 0, msize);
  setR(s, 1, isL ? strVal(VERSION_L, 8) : strVal(UNKNOWN, 7));
  reply(s);
}

function hAttach(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let fid = field32(s, 0);
    if (fidFind(sess(s), fid) != 0) { replyError(s, E.EINVAL); return; }
    if (field32(s, 1) != NOFID) { replyError(s, E.EBADF); return; }
    let aname = field(s, 3);
    r = bAttach(slotId(s), strPtr(aname), strLen(aname), field32(s, 4), out(s));
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  if (stale(s)) { bForget(load<u32>(out(s), ST_NODE)); replyError(s, E.ECANCELED); return; }
  // The fid was taken while the backend worked (pipelined Tattach on one fid): in use, as above.
  if (fidFind(sess(s), field32(s, 0)) != 0) { bForget(load<u32>(out(s), ST_NODE)); replyError(s, E.EINVAL); return; }
  let e = fidInsert(sess(s), field32(s, 0));
  if (e == 0) { bForget(load<u32>(out(s), ST_NODE)); replyError(s, fidFullErrno(sess(s))); return; }
  setFidObject(e, out(s));
  store<u32>(e, field32(s, 4), FE_UID);
  replyStatQid(s);
}

function hFlush(s: usize, stage: u32): void {
  if (stage == 0) {
    let oldtag = field32(s, 0);
    let session = load<u32>(s, OFF_SESSION);
    let self = slotId(s);
    for (let i = 0; i < MAX_SLOTS; i++) {
      if (i == self) continue;
      let t = slotPtr(i);
      if (load<u32>(t, OFF_STATE) != SLOT_PENDING) continue;
      if (load<u32>(t, OFF_SESSION) != session || load<u32>(t, OFF_TAG) != oldtag) continue;
      if (<u8>load<u32>(t, OFF_TYPE) == P9_TFLUSH) continue;
      // Wait for it: append to its waiters (answered in order), then ask the host to cancel.
      store<i32>(s, -1, OFF_FLUSHNEXT);
      let w = load<i32>(t, OFF_FLUSHHEAD);
      if (w < 0) store<i32>(t, self, OFF_FLUSHHEAD);
      else {
        while (load<i32>(slotPtr(w), OFF_FLUSHNEXT) >= 0) w = load<i32>(slotPtr(w), OFF_FLUSHNEXT);
        store<i32>(slotPtr(w), self, OFF_FLUSHNEXT);
      }
      store<i32>(s, i, OFF_FLUSHTARGET);
      store<u32>(t, load<u32>(t, OFF_FLAGS) | SF_FLUSHED, OFF_FLAGS);
      park(s, 1);
      bCancel(i);
      return;
    }
  }
  reply(s); // nothing pending under oldtag: Rflush at once
}

// ───────────────────────────── walk ─────────────────────────────

/** Walk state: aux0 = step, aux1 = current node, aux2 = 1 if the walk owns aux1, aux3 = uid. */
function walkIssue(s: usize, k: u32): i32 {
  let cur = load<u32>(s, OFF_AUX + 4);
  if (field32(s, 2) == 0) return bDup(slotId(s), cur, out(s));
  let nm = wname(s, <i32>k);
  return bLookup(slotId(s), cur, strPtr(nm), strLen(nm), out(s));
}

function hWalk(s: usize, stage: u32, r: i32): void {
  let n = field32(s, 2);
  let k: u32;
  if (stage == 0) {
    let fid = field32(s, 0);
    let newfid = field32(s, 1);
    let e = fidOrError(s, 0, E.ENOENT);
    if (e == 0) return;
    let flags = load<u32>(e, FE_FLAGS);
    if ((flags & (FID_XATTR_READ | FID_XATTR_WRITE)) != 0) { replyError(s, E.EINVAL); return; }
    if (newfid != fid && fidFind(sess(s), newfid) != 0) { replyError(s, E.EBADF); return; }
    if (newfid == fid && (flags & FID_OPEN) != 0) { replyError(s, E.EINVAL); return; }
    for (let i: u32 = 0; i < n; i++) {
      if (checkName(wname(s, <i32>i), 0) != 0) { replyError(s, E.ENOENT); return; }
    }
    store<u32>(s, load<u32>(e, FE_NODE), OFF_AUX + 4);
    store<u32>(s, 0, OFF_AUX + 8);
    store<u32>(s, load<u32>(e, FE_UID), OFF_AUX + 12);
    k = 0;
    r = walkIssue(s, 0);
    if (r == PENDING) { park(s, 1); return; }
  } else {
    k = stage - 1;
  }
  let o = out(s);
  while (true) {
    let owned = load<u32>(s, OFF_AUX + 8) != 0;
    let cur = load<u32>(s, OFF_AUX + 4);
    if (r != 0) {
      if (owned) bForget(cur);
      if (k == 0) { replyError(s, r); return; }
      // A later element failed: Rwalk with the qids of the walked prefix; no fid changes.
      setR(s, 0, <u64>k | (<u64>(o + OUT_WALKQIDS) << 32));
      reply(s);
      return;
    }
    if (owned) bForget(cur);
    if (n != 0) qidFromStat(o, o + OUT_WALKQIDS + <usize>(k * 13));
    store<u32>(s, load<u32>(o, ST_NODE), OFF_AUX + 4);
    store<u32>(s, 1, OFF_AUX + 8);
    k++;
    if (k >= n) break;
    r = walkIssue(s, k);
    if (r == PENDING) { park(s, k + 1); return; }
  }
  // Full success: install newfid (or move fid) at the last object.
  let fid = field32(s, 0);
  let newfid = field32(s, 1);
  let se = sess(s);
  if (stale(s)) { bForget(load<u32>(o, ST_NODE)); replyError(s, E.ECANCELED); return; }
  let e: usize;
  if (newfid == fid) {
    e = fidFind(se, fid);
    if (e != 0) { let old = load<u32>(e, FE_NODE); if (old != 0) bForget(old); }
  } else {
    // newfid taken while the walk ran (pipelined walks to one newfid): in use, as at the start
    if (fidFind(se, newfid) != 0) { bForget(load<u32>(o, ST_NODE)); replyError(s, E.EBADF); return; }
    e = fidInsert(se, newfid);
  }
  if (e == 0) { bForget(load<u32>(o, ST_NODE)); replyError(s, fidFullErrno(se)); return; }
  setFidObject(e, o);
  store<u32>(e, load<u32>(s, OFF_AUX + 12), FE_UID);
  setR(s, 0, <u64>n | (<u64>(o + OUT_WALKQIDS) << 32));
  reply(s);
}

// ───────────────────────────── attributes ─────────────────────────────

function hGetattr(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let e = fidOrError(s, 0, E.ENOENT);
    if (e == 0) return;
    let node = load<u32>(e, FE_NODE);
    if (node == 0) { replyError(s, E.EINVAL); return; }
    r = bGetattr(slotId(s), node, out(s));
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  let o = out(s);
  qidFromStat(o, o + OUT_QID);
  setR(s, 0, P9_GETATTR_BASIC);
  setR(s, 1, <u64>(o + OUT_QID));
  setR(s, 2, load<u32>(o, ST_MODE));
  setR(s, 3, load<u32>(o, ST_UID));
  setR(s, 4, load<u32>(o, ST_GID));
  setR(s, 5, load<u64>(o, ST_NLINK));
  setR(s, 6, load<u64>(o, ST_RDEV));
  setR(s, 7, load<u64>(o, ST_SIZE));
  setR(s, 8, load<u64>(o, ST_BLKSIZE));
  setR(s, 9, load<u64>(o, ST_BLOCKS));
  setR(s, 10, load<u64>(o, ST_ATIME)); setR(s, 11, load<u64>(o, ST_ATIME + 8));
  setR(s, 12, load<u64>(o, ST_MTIME)); setR(s, 13, load<u64>(o, ST_MTIME + 8));
  setR(s, 14, load<u64>(o, ST_CTIME)); setR(s, 15, load<u64>(o, ST_CTIME + 8));
  setR(s, 16, 0); setR(s, 17, 0); setR(s, 18, 0); setR(s, 19, 0);
  reply(s);
}

function hSetattr(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let e = fidOrError(s, 0, E.EINVAL);
    if (e == 0) return;
    let node = load<u32>(e, FE_NODE);
    if (node == 0) { replyError(s, E.EINVAL); return; }
    if ((field32(s, 1) & P9_SETATTR_SIZE) != 0 && field(s, 5) >= SAFE_INT) { replyError(s, E.EFBIG); return; }
    // The backend reads the Tsetattr body in place: valid mode uid gid size atime mtime.
    r = bSetattr(slotId(s), node, msgPtr(s) + 11);
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  reply(s);
}

function hStatfs(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let e = fidOrError(s, 0, E.ENOENT);
    if (e == 0) return;
    r = bStatfs(slotId(s), load<u32>(e, FE_NODE), out(s));
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  let o = out(s);
  setR(s, 0, load<u32>(o)); setR(s, 1, load<u32>(o, 4));
  for (let i = 0; i < 6; i++) setR(s, 2 + i, load<u64>(o + 8 + <usize>(i << 3)));
  setR(s, 8, load<u32>(o, 56));
  reply(s);
}

function hReadlink(s: usize, stage: u32, r: i32): void {
  let o = out(s);
  if (stage == 0) {
    let e = fidOrError(s, 0, E.ENOENT);
    if (e == 0) return;
    let cap = <u32>(OUT_SIZE - <i32>OUT_LINK);
    let room = load<u32>(s, OFF_WRITELEN) - 9;
    if (room < cap) cap = room;
    r = bReadlink(slotId(s), load<u32>(e, FE_NODE), o + OUT_LINK, <i32>cap, o + OUT_COUNT);
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  let len = load<u32>(o, OUT_COUNT);
  if (len > <u32>(OUT_SIZE - <i32>OUT_LINK)) { replyError(s, E.ENAMETOOLONG); return; }
  setR(s, 0, strVal(o + OUT_LINK, <i32>len));
  reply(s);
}

// ───────────────────────────── open, create, I/O ─────────────────────────────

function hLopen(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let e = fidOrError(s, 0, E.ENOENT);
    if (e == 0) return;
    let flags = load<u32>(e, FE_FLAGS);
    if ((flags & (FID_OPEN | FID_XATTR_READ | FID_XATTR_WRITE)) != 0) { replyError(s, E.EINVAL); return; }
    let oflags = field32(s, 1) & ~(O_CREAT | O_NOCTTY | O_FASYNC | O_DIRECT);
    r = bOpen(slotId(s), load<u32>(e, FE_NODE), oflags, out(s) + OUT_FH);
    if (r == PENDING) { park(s, 1); return; }
  }
  let fh = load<u32>(out(s), OUT_FH);
  if (r != 0) { replyError(s, r); return; }
  if (stale(s)) { bClose(-1, fh); replyError(s, E.ECANCELED); return; }
  let e = fidFind(sess(s), field32(s, 0));
  if (e == 0 || (load<u32>(e, FE_FLAGS) & FID_OPEN) != 0) { bClose(-1, fh); replyError(s, E.EBADF); return; }
  store<u32>(e, fh, FE_FH);
  store<u32>(e, load<u32>(e, FE_FLAGS) | FID_OPEN, FE_FLAGS);
  qidFromFid(e, out(s) + OUT_QID);
  setR(s, 0, <u64>(out(s) + OUT_QID));
  setR(s, 1, 0);
  reply(s);
}

function hLcreate(s: usize, stage: u32, r: i32): void {
  let o = out(s);
  if (stage == 0) {
    let e = fidOrError(s, 0, E.ENOENT);
    if (e == 0) return;
    let flags = load<u32>(e, FE_FLAGS);
    if ((flags & (FID_OPEN | FID_XATTR_READ | FID_XATTR_WRITE)) != 0) { replyError(s, E.EINVAL); return; }
    if (((flags >> 8) & QTDIR) == 0) { replyError(s, E.ENOTDIR); return; }
    let name = field(s, 1);
    let bad = checkName(name, E.EEXIST);
    if (bad != 0) { replyError(s, bad); return; }
    let oflags = field32(s, 2) & ~(O_NOCTTY | O_FASYNC | O_DIRECT);
    r = bCreate(slotId(s), load<u32>(e, FE_NODE), strPtr(name), strLen(name), oflags,
      field32(s, 3) & 0o7777, load<u32>(e, FE_UID), field32(s, 4), o);
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  // The fid becomes the new, open file.
  let e: usize = stale(s) ? 0 : fidFind(sess(s), field32(s, 0));
  if (e == 0) { bClose(-1, load<u32>(o, OUT_FH)); bForget(load<u32>(o, ST_NODE)); replyError(s, E.EBADF); return; }
  let old = load<u32>(e, FE_NODE);
  if (old != 0) bForget(old);
  setFidObject(e, o);
  store<u32>(e, load<u32>(o, OUT_FH), FE_FH);
  store<u32>(e, load<u32>(e, FE_FLAGS) | FID_OPEN, FE_FLAGS);
  qidFromStat(o, o + OUT_QID);
  setR(s, 0, <u64>(o + OUT_QID));
  setR(s, 1, 0);
  reply(s);
}

function hRead(s: usize, stage: u32, r: i32): void {
  let o = out(s);
  if (stage == 0) {
    let e = openFid(s); // xattr fids are open too: reads go to the host's xattr buffer
    if (e == 0) return;
    let offset = field(s, 1);
    let count = field32(s, 2);
    let room = load<u32>(s, OFF_WRITELEN) - IOHDRSZ;
    let msize = msizeOf(s) - IOHDRSZ;
    if (count > room) count = room;
    if (count > msize) count = msize;
    store<u32>(o, 0, OUT_COUNT);
    if (offset >= SAFE_INT || count == 0) { r = 0; }
    else {
      store<u32>(s, count, OFF_AUX);
      let sl = slice(s, true, IOHDRSZ, count);
      r = bRead(slotId(s), load<u32>(e, FE_FH), <f64>offset, iovAt(s, <i32>(sl & 0xFFFF)), <i32>(sl >> 16), o + OUT_COUNT);
      if (r == PENDING) { park(s, 1); return; }
    }
  }
  if (r != 0) { replyError(s, r); return; }
  let n = load<u32>(o, OUT_COUNT);
  let asked = load<u32>(s, OFF_AUX);
  if (n > asked) n = asked; // never more than asked
  add64(C_BYTES_READ, n);
  setR(s, 0, n);
  reply(s);
}

function hWrite(s: usize, stage: u32, r: i32): void {
  let o = out(s);
  if (stage == 0) {
    let e = openFid(s);
    if (e == 0) return;
    let offset = field(s, 1);
    let count = field32(s, 2);
    store<u32>(o, 0, OUT_COUNT);
    if (count == 0) { r = 0; }
    else if (offset >= SAFE_INT || offset + <u64>count > SAFE_INT) { replyError(s, E.EFBIG); return; }
    else {
      let sl = slice(s, false, 23, count);
      r = bWrite(slotId(s), load<u32>(e, FE_FH), <f64>offset, iovAt(s, <i32>(sl & 0xFFFF)), <i32>(sl >> 16), o + OUT_COUNT);
      if (r == PENDING) { park(s, 1); return; }
    }
  }
  if (r != 0) { replyError(s, r); return; }
  let n = load<u32>(o, OUT_COUNT);
  if (n > field32(s, 2)) n = field32(s, 2);
  if (n == 0 && field32(s, 2) != 0) { replyError(s, E.EIO); return; } // never Rwrite 0 for data
  add64(C_BYTES_WRITTEN, n);
  setR(s, 0, n);
  reply(s);
}

function hReaddir(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let e = openFid(s);
    if (e == 0) return;
    if (((load<u32>(e, FE_FLAGS) >> 8) & QTDIR) == 0) { replyError(s, E.ENOTDIR); return; }
    let cookie = field(s, 1);
    let count = field32(s, 2);
    let room = load<u32>(s, OFF_WRITELEN) - IOHDRSZ;
    let msize = msizeOf(s) - IOHDRSZ;
    if (count > room) count = room;
    if (count > msize) count = msize;
    store<u32>(s, 0, OFF_WPOS);
    store<u32>(s, count, OFF_WBUDGET);
    if (cookie >= SAFE_INT || count < 24) { r = 0; }
    else {
      r = bReaddir(slotId(s), load<u32>(e, FE_FH), <f64>cookie, out(s) + OUT_NAME);
      if (r == PENDING) { park(s, 1); return; }
    }
  }
  if (r != 0) { replyError(s, r); return; }
  setR(s, 0, load<u32>(s, OFF_WPOS));
  reply(s);
}

/**
 * One directory entry from the backend's readdir (its name already at OUT_NAME). Appends the
 * 9P dirent `qid[13] offset[8] type[1] name[s]` to the reply data; false when it does not fit.
 */
export function putDirent(i: i32, ino: u64, next: u64, dtype: u32, nameLen: u32): bool {
  if (i < 0 || i >= MAX_SLOTS) return false;
  let s = slotPtr(i);
  if (load<u32>(s, OFF_STATE) == SLOT_FREE || <u8>load<u32>(s, OFF_TYPE) != P9_TREADDIR) return false;
  if ((load<u32>(s, OFF_FLAGS) & SF_ORPHAN) != 0) return false; // nobody will read it
  if (nameLen > <u32>(OUT_SIZE - <i32>OUT_NAME)) return false;
  let pos = load<u32>(s, OFF_WPOS);
  let size = 24 + nameLen;
  if (pos + size > load<u32>(s, OFF_WBUDGET)) return false;
  let d = out(s) + OUT_DIRENT;
  store<u8>(d, <u8>(dtype == 4 ? QTDIR : dtype == 10 ? QTSYMLINK : 0));
  store<u32>(d, 0, 1);
  store<u64>(d, ino, 5);
  store<u64>(d, next, 13);
  store<u8>(d, <u8>dtype, 21);
  store<u16>(d, <u16>nameLen, 22);
  scatter(s, IOHDRSZ + pos, d, size);
  store<u32>(s, pos + size, OFF_WPOS);
  return true;
}

function hFsync(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let e = openFid(s);
    if (e == 0) return;
    r = bFsync(slotId(s), load<u32>(e, FE_FH), field32(s, 1) != 0 ? 1 : 0);
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  reply(s);
}

function hClunk(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let se = sess(s);
    let e = fidOrError(s, 0, E.ENOENT);
    if (e == 0) return;
    let fh = load<u32>(e, FE_FH);
    store<u32>(s, load<u32>(e, FE_NODE), OFF_AUX + 4);
    fidDelete(se, e); // gone even if the close reports an error
    r = 0;
    if (fh != 0) {
      // Closing may commit (an xattr write): its error comes back in Rclunk.
      r = bClose(slotId(s), fh);
      if (r == PENDING) { park(s, 1); return; }
    }
  }
  let node = load<u32>(s, OFF_AUX + 4);
  if (node != 0) bForget(node);
  if (r != 0) { replyError(s, r); return; }
  reply(s);
}

function hRemove(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let se = sess(s);
    let e = fidOrError(s, 0, E.ENOENT);
    if (e == 0) return;
    let node = load<u32>(e, FE_NODE);
    store<u32>(s, node, OFF_AUX + 4);
    store<u32>(s, load<u32>(e, FE_FH), OFF_AUX + 8);
    fidDelete(se, e); // Tremove clunks the fid even when the remove fails
    if (node == 0) { r = E.EINVAL; }
    else {
      r = bRemove(slotId(s), node);
      if (r == PENDING) { park(s, 1); return; }
    }
  }
  let fh = load<u32>(s, OFF_AUX + 8);
  let node = load<u32>(s, OFF_AUX + 4);
  if (fh != 0) bClose(-1, fh);
  if (node != 0) bForget(node);
  if (r != 0) { replyError(s, r); return; }
  reply(s);
}

// ───────────────────────────── directory operations ─────────────────────────────

/** The directory node of request field i, or 0 after an error reply. */
function dirNode(s: usize, i: i32): u32 {
  let e = fidOrError(s, i, E.ENOENT);
  if (e == 0) return 0;
  let flags = load<u32>(e, FE_FLAGS);
  if ((flags & (FID_XATTR_READ | FID_XATTR_WRITE)) != 0 || load<u32>(e, FE_NODE) == 0) { replyError(s, E.EINVAL); return 0; }
  return load<u32>(e, FE_NODE);
}

function uidOf(s: usize, i: i32): u32 {
  let e = fidFind(sess(s), field32(s, i));
  return e != 0 ? load<u32>(e, FE_UID) : NOFID;
}

function hMkdir(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let dir = dirNode(s, 0);
    if (dir == 0) return;
    let name = field(s, 1);
    let bad = checkName(name, E.EEXIST);
    if (bad != 0) { replyError(s, bad); return; }
    r = bMkdir(slotId(s), dir, strPtr(name), strLen(name), field32(s, 2) & 0o7777, uidOf(s, 0), field32(s, 3), out(s));
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  replyStatQid(s);
}

function hSymlink(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let dir = dirNode(s, 0);
    if (dir == 0) return;
    let name = field(s, 1);
    let bad = checkName(name, E.EEXIST);
    if (bad != 0) { replyError(s, bad); return; }
    let tgt = field(s, 2);
    r = bSymlink(slotId(s), dir, strPtr(name), strLen(name), strPtr(tgt), strLen(tgt), uidOf(s, 0), field32(s, 3), out(s));
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  replyStatQid(s);
}

function hMknod(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let dir = dirNode(s, 0);
    if (dir == 0) return;
    let name = field(s, 1);
    let bad = checkName(name, E.EEXIST);
    if (bad != 0) { replyError(s, bad); return; }
    r = bMknod(slotId(s), dir, strPtr(name), strLen(name), field32(s, 2), field32(s, 3), field32(s, 4), uidOf(s, 0), field32(s, 5), out(s));
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  replyStatQid(s);
}

function hLink(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let dir = dirNode(s, 0);
    if (dir == 0) return;
    let target = dirNode(s, 1);
    if (target == 0) return;
    let name = field(s, 2);
    let bad = checkName(name, E.EEXIST);
    if (bad != 0) { replyError(s, bad); return; }
    r = bLink(slotId(s), dir, strPtr(name), strLen(name), target);
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  reply(s);
}

function hRename(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let node = dirNode(s, 0);
    if (node == 0) return;
    let dir = dirNode(s, 1);
    if (dir == 0) return;
    let name = field(s, 2);
    let bad = checkName(name, E.EISDIR);
    if (bad != 0) { replyError(s, bad); return; }
    r = bRename(slotId(s), node, dir, strPtr(name), strLen(name));
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  reply(s);
}

function hRenameat(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let olddir = dirNode(s, 0);
    if (olddir == 0) return;
    let newdir = dirNode(s, 2);
    if (newdir == 0) return;
    let on = field(s, 1), nn = field(s, 3);
    let bad = checkName(on, E.EISDIR);
    if (bad == 0) bad = checkName(nn, E.EISDIR);
    if (bad != 0) { replyError(s, bad); return; }
    r = bRenameat(slotId(s), olddir, strPtr(on), strLen(on), newdir, strPtr(nn), strLen(nn));
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  reply(s);
}

function hUnlinkat(s: usize, stage: u32, r: i32): void {
  if (stage == 0) {
    let dir = dirNode(s, 0);
    if (dir == 0) return;
    let name = field(s, 1);
    let flags = field32(s, 2);
    if ((flags & ~AT_REMOVEDIR) != 0) { replyError(s, E.EINVAL); return; }
    if (isDot(name)) { replyError(s, E.EINVAL); return; }
    if (isDotDot(name)) { replyError(s, E.ENOTEMPTY); return; }
    let bad = checkName(name, 0);
    if (bad != 0) { replyError(s, bad); return; }
    r = bUnlinkat(slotId(s), dir, strPtr(name), strLen(name), flags);
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  reply(s);
}

// ───────────────────────────── xattrs and locks ─────────────────────────────

function hXattrwalk(s: usize, stage: u32, r: i32): void {
  let o = out(s);
  if (stage == 0) {
    let node = dirNode(s, 0);
    if (node == 0) return;
    let fid = field32(s, 0), newfid = field32(s, 1);
    if (newfid != fid && fidFind(sess(s), newfid) != 0) { replyError(s, E.EBADF); return; }
    let name = field(s, 2);
    store<u64>(o, 0, OUT_XSIZE);
    r = bXattrwalk(slotId(s), node, strPtr(name), strLen(name), o + OUT_FH);
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  let se = sess(s);
  let newfid = field32(s, 1);
  if (stale(s)) { bClose(-1, load<u32>(o, OUT_FH)); replyError(s, E.ECANCELED); return; }
  let e = fidFind(se, newfid);
  if (e != 0 && newfid != field32(s, 0)) { bClose(-1, load<u32>(o, OUT_FH)); replyError(s, E.EBADF); return; }
  if (e != 0) releaseFid(e); else e = fidInsert(se, newfid);
  if (e == 0) { bClose(-1, load<u32>(o, OUT_FH)); replyError(s, fidFullErrno(se)); return; }
  store<u32>(e, 0, FE_NODE);
  store<u32>(e, load<u32>(o, OUT_FH), FE_FH);
  store<u32>(e, FID_OPEN | FID_XATTR_READ, FE_FLAGS);
  setR(s, 0, load<u64>(o, OUT_XSIZE));
  reply(s);
}

function hXattrcreate(s: usize, stage: u32, r: i32): void {
  let o = out(s);
  if (stage == 0) {
    let e = fidOrError(s, 0, E.EINVAL);
    if (e == 0) return;
    if ((load<u32>(e, FE_FLAGS) & (FID_OPEN | FID_XATTR_READ | FID_XATTR_WRITE)) != 0 || load<u32>(e, FE_NODE) == 0) { replyError(s, E.EINVAL); return; }
    let size = field(s, 2);
    let flags = field32(s, 3);
    if (size > XATTR_SIZE_MAX) { replyError(s, E.E2BIG); return; }
    if ((flags & ~3) != 0) { replyError(s, E.EINVAL); return; }
    let name = field(s, 1);
    if (strLen(name) == 0) { replyError(s, E.EINVAL); return; }
    r = bXattrcreate(slotId(s), load<u32>(e, FE_NODE), strPtr(name), strLen(name), <f64>size, flags, o + OUT_FH);
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  // The fid becomes the xattr being written (it keeps its node until the commit at clunk).
  let e: usize = stale(s) ? 0 : fidFind(sess(s), field32(s, 0));
  if (e == 0) { bClose(-1, load<u32>(o, OUT_FH)); replyError(s, E.EBADF); return; }
  store<u32>(e, load<u32>(o, OUT_FH), FE_FH);
  store<u32>(e, FID_OPEN | FID_XATTR_WRITE, FE_FLAGS);
  reply(s);
}

function hLock(s: usize, stage: u32, r: i32): void {
  let o = out(s);
  if (stage == 0) {
    let e = openFid(s);
    if (e == 0) return;
    let type = field32(s, 1), flags = field32(s, 2);
    if (type > 2 || (flags & ~1) != 0) { replyError(s, E.EINVAL); return; }
    let start = field(s, 3), length = field(s, 4);
    if (start >= SAFE_INT || length >= SAFE_INT) { replyError(s, E.EINVAL); return; }
    let cid = field(s, 6);
    store<u32>(o, 2);
    r = bLock(slotId(s), load<u32>(e, FE_FH), <f64>load<u64>(e, FE_INO), type, flags, <f64>start, <f64>length, field32(s, 5), strPtr(cid), strLen(cid), o);
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  setR(s, 0, load<u32>(o));
  reply(s);
}

function hGetlock(s: usize, stage: u32, r: i32): void {
  let o = out(s);
  if (stage == 0) {
    let e = openFid(s);
    if (e == 0) return;
    let type = field32(s, 1);
    if (type > 2) { replyError(s, E.EINVAL); return; }
    let start = field(s, 2), length = field(s, 3);
    if (start >= SAFE_INT || length >= SAFE_INT) { replyError(s, E.EINVAL); return; }
    let cid = field(s, 5);
    r = bGetlock(slotId(s), load<u32>(e, FE_FH), <f64>load<u64>(e, FE_INO), type, <f64>start, <f64>length, field32(s, 4), strPtr(cid), strLen(cid), o);
    if (r == PENDING) { park(s, 1); return; }
  }
  if (r != 0) { replyError(s, r); return; }
  // out: type u32 @0, procId u32 @4, start u64 @8, length u64 @16, clientIdLen u32 @24, bytes @32
  let cl = load<u32>(o, 24);
  if (cl > 256) cl = 256;
  setR(s, 0, load<u32>(o));
  setR(s, 1, load<u64>(o, 8));
  setR(s, 2, load<u64>(o, 16));
  setR(s, 3, load<u32>(o, 4));
  setR(s, 4, strVal(o + 32, <i32>cl));
  reply(s);
}
