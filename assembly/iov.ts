// A slot's iovec table: {ptr u32, len u32} entries. Entries [0, nRead) are the chain's readable
// segments, [nRead, nRead + nWrite) its writable ones, all already translated and range-checked
// by guest.ts when the chain was walked. `slice` appends a view of a byte range of either part
// after them (the iovecs handed to the backend for Tread/Twrite).
import { iovPtr, OFF_NREAD, OFF_NWRITE } from "./slots";
import { IOV_ENTRIES } from "./layout";
import { syncOut } from "./guest";

@inline export function iovAt(s: usize, i: i32): usize {
  return iovPtr(s) + (<usize>i << 3);
}

/**
 * Copy `len` bytes starting at byte `off` of a part (first segment `first`, `n` segments) to or
 * from `buf`. Returns the bytes copied (less than len if the part is shorter).
 */
function copyPart(s: usize, first: i32, n: i32, off: u32, buf: usize, len: u32, toGuest: bool): u32 {
  let done: u32 = 0;
  for (let i = 0; i < n && done < len; i++) {
    let e = iovAt(s, first + i);
    let segLen = load<u32>(e, 4);
    if (off >= segLen) { off -= segLen; continue; }
    let take = segLen - off;
    if (take > len - done) take = len - done;
    // SAFE: the segment [ptr, ptr+segLen) was checked by guest.translate when the chain was walked.
    let p = <usize>load<u32>(e) + <usize>off;
    if (toGuest) memory.copy(p, buf + <usize>done, <usize>take);
    else memory.copy(buf + <usize>done, p, <usize>take);
    done += take;
    off = 0;
  }
  return done;
}

/** Gather from the readable part. */
export function gather(s: usize, off: u32, dst: usize, len: u32): u32 {
  return copyPart(s, 0, <i32>load<u32>(s, OFF_NREAD), off, dst, len, false);
}

/** Scatter into the writable part. */
export function scatter(s: usize, off: u32, src: usize, len: u32): u32 {
  return copyPart(s, <i32>load<u32>(s, OFF_NREAD), <i32>load<u32>(s, OFF_NWRITE), off, src, len, true);
}

/**
 * Append iovecs viewing bytes [off, off+len) of the readable (writable = false) or writable
 * part after the chain's own entries. Returns the index of the first appended entry in the
 * low 16 bits and their count in the high 16 bits.
 */
export function slice(s: usize, writable: bool, off: u32, len: u32): u32 {
  let nRead = <i32>load<u32>(s, OFF_NREAD);
  let nWrite = <i32>load<u32>(s, OFF_NWRITE);
  let first = writable ? nRead : 0;
  let n = writable ? nWrite : nRead;
  let dst = nRead + nWrite;
  let start = dst;
  for (let i = 0; i < n && len > 0 && dst < IOV_ENTRIES; i++) {
    let e = iovAt(s, first + i);
    let segLen = load<u32>(e, 4);
    if (off >= segLen) { off -= segLen; continue; }
    let take = segLen - off;
    if (take > len) take = len;
    let d = iovAt(s, dst++);
    store<u32>(d, load<u32>(e) + off);
    store<u32>(d, take, 4);
    len -= take;
    off = 0;
  }
  return <u32>start | (<u32>(dst - start) << 16);
}

/** Copy mode: publish the first `len` bytes of the writable part (the reply) to guest RAM. */
export function syncOutWritable(s: usize, len: u32): void {
  let first = <i32>load<u32>(s, OFF_NREAD);
  let n = <i32>load<u32>(s, OFF_NWRITE);
  for (let i = 0; i < n && len > 0; i++) {
    let e = iovAt(s, first + i);
    let segLen = load<u32>(e, 4);
    let take = segLen < len ? segLen : len;
    syncOut(<usize>load<u32>(e), <usize>take);
    len -= take;
  }
}
