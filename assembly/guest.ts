// The guest-memory boundary: the ONLY file that turns a guest physical address (gpa) into a
// module pointer (ptr). Guest RAM is the window [guestBase, guestBase + guestSize) of the
// module's linear memory; every (gpa, len) is checked against it with 64-bit arithmetic, so
// no length or address the guest writes can wrap or reach outside the window.

let guestBase: usize = 0;
let guestSize: u64 = 0;

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
