// 9P over a stream (a socket): the same server, sessions 1..MAX_SESSIONS-1, one per
// connection. The host copies each size-prefixed T-message into a request buffer inside the
// guest window, names a reply buffer there, and `submit`s them; the reply comes back through
// the `device.reply(token, len)` import, possibly later (asynchronous backends) and out of
// order. Buffers are (gpa, len) pairs checked by guest.ts like any descriptor.
import { MAX_SESSIONS, MAX_SLOTS } from "./layout";
import { sessionPtr } from "./p9/fids";
import { translate } from "./guest";
import { iovAt } from "./iov";
import {
  allocSlot, freeSlot, slotPtr, OFF_SESSION, OFF_HEAD, OFF_QUEUE, OFF_STATE, OFF_FLAGS,
  OFF_NREAD, OFF_NWRITE, OFF_READLEN, OFF_WRITELEN, SLOT_FREE, SF_ORPHAN, STREAM_QUEUE,
} from "./slots";
import { startRequest, clunkAll, MAX_MSIZE } from "./p9/server";

const SESS_USED: usize = 16;

/** A new session id (≥ 1), or -1 when all are in use. */
export function openSession(): i32 {
  for (let i = 1; i < MAX_SESSIONS; i++) {
    let se = sessionPtr(<u32>i);
    if (load<u32>(se, SESS_USED) == 0) {
      store<u32>(se, 1, SESS_USED);
      store<u32>(se, MAX_MSIZE);
      store<u32>(se, 0, 8);
      return i;
    }
  }
  return -1;
}

/** The connection is gone: clunk its fids; its pending requests finish without replying. */
export function closeSession(id: i32): void {
  if (id < 1 || id >= MAX_SESSIONS) return;
  let se = sessionPtr(<u32>id);
  if (load<u32>(se, SESS_USED) == 0) return;
  for (let i = 0; i < MAX_SLOTS; i++) {
    let s = slotPtr(i);
    if (load<u32>(s, OFF_STATE) != SLOT_FREE && load<u32>(s, OFF_SESSION) == <u32>id) {
      store<u32>(s, load<u32>(s, OFF_FLAGS) | SF_ORPHAN, OFF_FLAGS);
    }
  }
  clunkAll(<u32>id);
  store<u32>(se, 0, SESS_USED);
}

/** Results of submit. */
export const SUBMIT_OK: i32 = 0;
export const SUBMIT_BUSY: i32 = 11;   // EAGAIN: every slot is in flight; retry after a reply
export const SUBMIT_INVALID: i32 = 22; // EINVAL: bad session, buffers outside the window, or no header

/**
 * Start one request of session `id`: the T-message is [req, req+reqLen), the reply goes to
 * [rep, rep+repCap). `token` comes back with the reply.
 */
export function submit(id: i32, token: u32, req: u64, reqLen: u32, rep: u64, repCap: u32): i32 {
  if (id < 1 || id >= MAX_SESSIONS || load<u32>(sessionPtr(<u32>id), SESS_USED) == 0) return SUBMIT_INVALID;
  let rp = translate(req, reqLen);
  let wp = translate(rep, repCap);
  if (rp == 0 || wp == 0 || reqLen < 7 || repCap < 11) return SUBMIT_INVALID;
  let s = allocSlot();
  if (s == 0) return SUBMIT_BUSY;
  store<u32>(s, <u32>id, OFF_SESSION);
  store<u32>(s, token, OFF_HEAD);
  store<u32>(s, STREAM_QUEUE, OFF_QUEUE);
  let e = iovAt(s, 0);
  store<u32>(e, <u32>rp); store<u32>(e, reqLen, 4);
  e = iovAt(s, 1);
  store<u32>(e, <u32>wp); store<u32>(e, repCap, 4);
  store<u32>(s, 1, OFF_NREAD);
  store<u32>(s, 1, OFF_NWRITE);
  store<u32>(s, reqLen, OFF_READLEN);
  store<u32>(s, repCap, OFF_WRITELEN);
  if (!startRequest(s)) { freeSlot(s); return SUBMIT_INVALID; }
  return SUBMIT_OK;
}
