/**
 * A first-fit allocator over a byte range (the server's request/reply buffers inside the
 * core's guest window). Blocks are 64-byte aligned; free blocks coalesce.
 */
export class Arena {
  /** free blocks sorted by start: [start, length] */
  private free: [number, number][];
  private used = new Map<number, number>();

  constructor(readonly base: number, readonly size: number) {
    this.free = [[base, size]];
  }

  /** Start of a block of at least `len` bytes, or -1. */
  alloc(len: number): number {
    const n = Math.max(64, (len + 63) & ~63);
    for (let i = 0; i < this.free.length; i++) {
      const [start, flen] = this.free[i];
      if (flen < n) continue;
      if (flen === n) this.free.splice(i, 1); else this.free[i] = [start + n, flen - n];
      this.used.set(start, n);
      return start;
    }
    return -1;
  }

  release(start: number): void {
    const n = this.used.get(start);
    if (n === undefined) throw new Error(`arena: ${start} is not allocated`);
    this.used.delete(start);
    let i = 0;
    while (i < this.free.length && this.free[i][0] < start) i++;
    this.free.splice(i, 0, [start, n]);
    // coalesce with the next, then the previous
    if (i + 1 < this.free.length && start + n === this.free[i + 1][0]) {
      this.free[i][1] += this.free[i + 1][1];
      this.free.splice(i + 1, 1);
    }
    if (i > 0 && this.free[i - 1][0] + this.free[i - 1][1] === start) {
      this.free[i - 1][1] += this.free[i][1];
      this.free.splice(i, 1);
    }
  }

  get inUse(): number { return this.used.size; }
  /** Bytes of the blocks in use. */
  get bytesInUse(): number { let n = 0; for (const v of this.used.values()) n += v; return n; }
}
