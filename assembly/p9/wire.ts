// Decoding and encoding driven by the message table (messages.ts). Decoding is strict: every
// field must lie inside the message, string lengths inside what is left, and the declared size
// must equal the bytes consumed. Reads past the end set a sticky overflow flag that is checked
// once per message (the cursor returns zeros meanwhile), so no decode step can read outside
// the message buffer.
import { OFF_F, OFF_W, OFF_R, msgPtr } from "../slots";
import { REPLY_BASE } from "../layout";
import { rFormat } from "./messages";
import { EINVAL } from "./errno";

export const MAXWELEM: u32 = 16;
const CH_b: i32 = 0x62, CH_w: i32 = 0x77, CH_d: i32 = 0x64, CH_q: i32 = 0x71, CH_s: i32 = 0x73,
  CH_Q: i32 = 0x51, CH_T: i32 = 0x54, CH_R: i32 = 0x52, CH_D: i32 = 0x44;

// The cursor: [base + pos, base + end). `bad` is sticky.
// transient (snapshot): the cursor of one decode or encode, which never spans a call.
let base: usize = 0;
let pos: u32 = 0;
let end: u32 = 0;
let bad: bool = false;

@inline function need(n: u32): bool {
  if (bad || n > end - pos) { bad = true; return false; }
  return true;
}

/** Field i of the decoded request (integers; strings pack ptr | len << 32). */
@inline export function field(s: usize, i: i32): u64 {
  return load<u64>(s + OFF_F + (<usize>i << 3));
}
@inline export function field32(s: usize, i: i32): u32 {
  return <u32>load<u64>(s + OFF_F + (<usize>i << 3));
}
@inline export function strPtr(v: u64): usize { return <usize>(v & 0xFFFFFFFF); }
@inline export function strLen(v: u64): i32 { return <i32>(v >> 32); }
/** Walk name k of a decoded Twalk. */
@inline export function wname(s: usize, k: i32): u64 {
  return load<u64>(s + OFF_W + (<usize>k << 3));
}

/**
 * Decode the body of the gathered message in slot s against format `fmt`. `have` is how many
 * bytes of the message are in the slot's buffer; `size` the declared size. A trailing `D`
 * (Twrite's payload) is checked against `size` but not read: it stays in guest memory.
 * Returns 0 or EINVAL.
 */
export function decode(s: usize, fmt: string, have: u32, size: u32): i32 {
  base = msgPtr(s); pos = 7; end = have; bad = false;
  let fp = s + OFF_F;
  for (let i = 0, n = fmt.length; i < n; i++) {
    let c = fmt.charCodeAt(i);
    let v: u64 = 0;
    if (c == CH_b) { if (need(1)) { v = load<u8>(base + pos); pos += 1; } }
    else if (c == CH_w) { if (need(2)) { v = load<u16>(base + pos); pos += 2; } }
    else if (c == CH_d) { if (need(4)) { v = load<u32>(base + pos); pos += 4; } }
    else if (c == CH_q) { if (need(8)) { v = load<u64>(base + pos); pos += 8; } }
    else if (c == CH_s) { v = readString(); }
    else if (c == CH_T) {
      if (need(2)) {
        let k = <u32>load<u16>(base + pos); pos += 2;
        if (k > MAXWELEM) { bad = true; } else {
          v = k;
          for (let j: u32 = 0; j < k; j++) store<u64>(s + OFF_W + (<usize>j << 3), readString());
        }
      }
    } else if (c == CH_D) {
      if (need(4)) {
        let count = load<u32>(base + pos); pos += 4;
        // The payload is whatever follows, up to the declared size; it must be exactly count.
        if (count != size - pos) bad = true; else { v = count; pos = size; end = size; }
      }
    } else { bad = true; }
    store<u64>(fp + (<usize>i << 3), v);
  }
  if (bad || pos != size) return EINVAL;
  return 0;
}

function readString(): u64 {
  if (!need(2)) return 0;
  let len = <u32>load<u16>(base + pos);
  pos += 2;
  if (!need(len)) return 0;
  let v = <u64>(base + pos) | (<u64>len << 32);
  pos += len;
  return v;
}

/** Set reply field i. */
@inline export function setR(s: usize, i: i32, v: u64): void {
  store<u64>(s + OFF_R + (<usize>i << 3), v);
}
@inline export function strVal(ptr: usize, len: i32): u64 {
  return <u64>ptr | (<u64>len << 32);
}

/** Header bytes of the last encoded reply (all of it except D payloads). */
// transient (snapshot): read right after the encode that set it.
export let encodedHeader: u32 = 0;

/**
 * Encode R-message `rtype` for `tag` from the slot's reply fields into the reply scratch.
 * `s` strings copy their bytes, `Q` copies 13 bytes from a pointer, `R` packs count | ptr << 32,
 * `D` writes only its count: the data is already in place right after the header. Returns the
 * whole message size; `encodedHeader` is what must be scattered to the guest.
 */
export function encode(s: usize, rtype: u8, tag: u16): u32 {
  let fmt = rFormat(rtype);
  let out = REPLY_BASE;
  let p: u32 = 7;
  let data: u32 = 0;
  let rp = s + OFF_R;
  for (let i = 0, n = fmt.length; i < n; i++) {
    let c = fmt.charCodeAt(i);
    let v = load<u64>(rp + (<usize>i << 3));
    if (c == CH_b) { store<u8>(out + p, <u8>v); p += 1; }
    else if (c == CH_w) { store<u16>(out + p, <u16>v); p += 2; }
    else if (c == CH_d) { store<u32>(out + p, <u32>v); p += 4; }
    else if (c == CH_q) { store<u64>(out + p, v); p += 8; }
    else if (c == CH_s) {
      let len = strLen(v);
      store<u16>(out + p, <u16>len);
      memory.copy(out + p + 2, strPtr(v), <usize>len);
      p += 2 + <u32>len;
    } else if (c == CH_Q) { memory.copy(out + p, <usize>v, 13); p += 13; }
    else if (c == CH_R) {
      let k = <u32>(v & 0xFFFF);
      store<u16>(out + p, <u16>k);
      memory.copy(out + p + 2, <usize>(v >> 32), <usize>(k * 13));
      p += 2 + k * 13;
    } else if (c == CH_D) { store<u32>(out + p, <u32>v); p += 4; data += <u32>v; }
  }
  store<u32>(out, p + data);
  store<u8>(out + 4, rtype);
  store<u16>(out + 5, tag);
  encodedHeader = p;
  return p + data;
}
