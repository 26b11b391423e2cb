/**
 * Where an OverlayBackend keeps its upper layer: a metadata journal (JSON lines the overlay
 * writes and replays) and the data of upper files, addressed by the file's inode number.
 * Implementations: MemoryUpperStore here (browser-safe, for tests and pages that want no
 * persistence), NodeDirStore (a directory, Node), IndexedDbStore (a browser database).
 *
 * Any method may finish synchronously or return a Promise. The overlay calls them in order and
 * never concurrently for the same id.
 */
export type Awaitable<T> = T | Promise<T>;

export interface UpperStore {
  /** Every journal line written so far, oldest first (a torn last line may be dropped). */
  loadJournal(): Awaitable<string[]>;
  appendJournal(lines: string[]): Awaitable<void>;
  /** Replace the whole journal atomically (compaction). */
  rewriteJournal(lines: string[]): Awaitable<void>;
  /** Read file data of `id` at offset into dst; returns the bytes available (short at its end). */
  read(id: number, offset: number, dst: Uint8Array): Awaitable<number>;
  /** Write (creating the file if needed). Throws a P9Error(ENOSPC) when full. */
  write(id: number, offset: number, src: Uint8Array): Awaitable<void>;
  /** Set the stored length (creating an empty file if needed). */
  truncate(id: number, size: number): Awaitable<void>;
  remove(id: number): Awaitable<void>;
  /** Make everything written so far durable. */
  sync(): Awaitable<void>;
  /** Forget everything (journal and data). */
  clear(): Awaitable<void>;
  /** Bytes of file data stored. */
  usage(): number;
  /** The ids that have data (the overlay removes those no record refers to when it opens). */
  ids(): Awaitable<number[]>;
}

import { ENOSPC, P9Error } from '../errno.js';

const CHUNK = 65536;

/** An upper layer in memory (gone with the page). File data is sparse: 64 KiB chunks, an
 *  absent chunk reads as zeros; `capacity` bounds the stored length of all files. */
export class MemoryUpperStore implements UpperStore {
  private journal: string[] = [];
  private readonly files = new Map<number, { chunks: Map<number, Uint8Array>; len: number }>();
  private used = 0;
  constructor(private readonly capacity = Infinity) {}

  loadJournal(): string[] { return this.journal.slice(); }
  appendJournal(lines: string[]): void { for (const l of lines) this.journal.push(l); }
  rewriteJournal(lines: string[]): void { this.journal = lines.slice(); }

  read(id: number, offset: number, dst: Uint8Array): number {
    const f = this.files.get(id);
    if (f === undefined || offset >= f.len) return 0;
    const n = Math.min(dst.length, f.len - offset);
    for (let done = 0; done < n;) {
      const pos = offset + done, ci = Math.floor(pos / CHUNK), co = pos % CHUNK;
      const k = Math.min(CHUNK - co, n - done);
      const c = f.chunks.get(ci);
      if (c === undefined) dst.fill(0, done, done + k); else dst.set(c.subarray(co, co + k), done);
      done += k;
    }
    return n;
  }

  private file(id: number): { chunks: Map<number, Uint8Array>; len: number } {
    let f = this.files.get(id);
    if (f === undefined) { f = { chunks: new Map(), len: 0 }; this.files.set(id, f); }
    return f;
  }

  private setLen(f: { chunks: Map<number, Uint8Array>; len: number }, len: number): void {
    if (len > f.len && this.used + (len - f.len) > this.capacity) throw new P9Error(ENOSPC, 'upper layer full');
    if (len < f.len) {
      for (const ci of [...f.chunks.keys()]) {
        if (ci * CHUNK >= len) f.chunks.delete(ci);
        else if ((ci + 1) * CHUNK > len) f.chunks.get(ci)!.fill(0, len - ci * CHUNK);
      }
    }
    this.used += len - f.len;
    f.len = len;
  }

  write(id: number, offset: number, src: Uint8Array): void {
    const f = this.file(id);
    const end = offset + src.length;
    if (end > f.len) this.setLen(f, end);
    for (let done = 0; done < src.length;) {
      const pos = offset + done, ci = Math.floor(pos / CHUNK), co = pos % CHUNK;
      const k = Math.min(CHUNK - co, src.length - done);
      let c = f.chunks.get(ci);
      if (c === undefined) { c = new Uint8Array(CHUNK); f.chunks.set(ci, c); }
      c.set(src.subarray(done, done + k), co);
      done += k;
    }
  }

  truncate(id: number, size: number): void { this.setLen(this.file(id), size); }
  remove(id: number): void {
    const f = this.files.get(id);
    if (f !== undefined) { this.used -= f.len; this.files.delete(id); }
  }
  sync(): void {}
  clear(): void { this.journal = []; this.files.clear(); this.used = 0; }
  usage(): number { return this.used; }
  ids(): number[] { return [...this.files.keys()]; }
  /** Stored length of `id` (0 when absent). */
  length(id: number): number { return this.files.get(id)?.len ?? 0; }
}
