// The guest-memory boundary: the ONLY file that turns a guest physical address (gpa) into a
// module pointer (ptr). Guest RAM is the window [guestBase, guestBase + guestSize) of the
// module's linear memory; every (gpa, len) is checked against it with 64-bit arithmetic, so
// no length or address the guest writes can wrap or reach outside the window.
//
// Copy mode: when the VMM's RAM is not this module's memory (a plain ArrayBuffer, or another
// module's memory such as v86's), the window is a shadow of it. The core then asks the host to
// copy in exactly the bytes it is about to read (ring indices, descriptors, readable buffers)
// and to copy out exactly the bytes it wrote (used elements and indices, the reply's bytes),
// through device.copyIn/copyOut with guest addresses. In zero-copy mode both are no-ops.
import { hostCopyIn, hostCopyOut } from "./host";

let guestBase: usize = 0;
let guestSize: u64 = 0;
let copyMode: bool = false;

export function setCopyMode(on: bool): void { copyMode = on; }

/** Set the window. The host guarantees it lies inside linear memory. */
export function setWindow(base: usize, size: u64): void {
  guestBase = base;
  guestSize = size;
}

export function windowSize(): u64 {
  return guestSize;
}

/** ptr for [gpa, gpa+len), or 0 if any byte of it is outside guest RAM. A zero-length range
 *  at a valid address is valid. (ptr 0 is never inside the window: the core sits below it.) */
export function translate(gpa: u64, len: u64): usize {
  // No u64 wrap: both terms are bounded before the add.
  if (gpa > guestSize || len > guestSize - gpa) return 0;
  return guestBase + <usize>gpa;
}

/** Same rule, for a range that must also be `align`-aligned (ring areas). */
export function translateAligned(gpa: u64, len: u64, align: u64): usize {
  if ((gpa & (align - 1)) != 0) return 0;
  return translate(gpa, len);
}

/** Copy mode: refresh [ptr, ptr+len) of the window (already translated) from the VMM's RAM. */
@inline export function syncIn(ptr: usize, len: usize): void {
  if (copyMode && len != 0) hostCopyIn(<u32>(ptr - guestBase), <u32>len);
}

/** Copy mode: publish [ptr, ptr+len) of the window (already translated) to the VMM's RAM. */
@inline export function syncOut(ptr: usize, len: usize): void {
  if (copyMode && len != 0) hostCopyOut(<u32>(ptr - guestBase), <u32>len);
}

export function saveGuest(p: usize): usize {
  store<u32>(p, <u32>guestBase); store<u64>(p, guestSize, 8); store<u32>(p, copyMode ? 1 : 0, 16);
  return p + 24;
}
export function loadGuest(p: usize): usize {
  guestBase = <usize>load<u32>(p); guestSize = load<u64>(p, 8); copyMode = load<u32>(p, 16) != 0;
  return p + 24;
}
