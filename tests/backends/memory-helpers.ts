/** Sync helpers for driving a MemoryBackend directly (it never returns Promises). */
import { expect } from '@jest/globals';
import type { MemoryBackend } from '../../src/backends/memory.js';
import type { DirSink } from '../../src/backends/backend.js';

const td = new TextDecoder();

/** The value, or a thrown error for an errno or a Promise. */
export function ok<T>(v: T | number | Promise<T | number>): T {
  if (typeof v === 'number' && v < 0) throw new Error(`unexpected errno ${-v}`);
  if (v instanceof Promise) throw new Error('unexpected promise');
  return v as T;
}

/** Up to `len` bytes of the open file `fh` at `offset`. */
export function readAll(fs: MemoryBackend, fh: number, offset: number, len: number): Uint8Array {
  const buf = new Uint8Array(len);
  const n = ok<number>(fs.read(fh, offset, [buf]));
  return buf.subarray(0, n);
}

export interface DirItem { ino: number; next: number; dtype: number; name: string }

/** Entries of the open directory `fh` from `cookie` (at most `max`); names decoded by `name`. */
export function listDir(fs: MemoryBackend, fh: number, cookie = 0, max = Infinity, name = (n: Uint8Array) => td.decode(n)): DirItem[] {
  const out: DirItem[] = [];
  const sink: DirSink = {
    push(ino, next, dtype, n) {
      if (out.length >= max) return false;
      out.push({ ino, next, dtype, name: name(n) });
      return true;
    },
  };
  expect(fs.readdir(fh, cookie, sink)).toBe(0);
  return out;
}
