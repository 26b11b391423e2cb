/**
 * IndexedDbStore: an overlay's upper layer in a browser's IndexedDB (browser only).
 *
 * The store works in memory (a MemoryUpperStore) and writes what changed to the database at
 * sync() — the overlay's flush points (fsync, close after write, flush()) — in one transaction:
 * the new journal lines and the changed 64 KiB chunks. So a reload keeps exactly what was
 * flushed, and a flush is all or nothing. open() reads the whole layer back into memory (the
 * upper layer must fit in memory). A database over its quota fails the transaction: sync()
 * throws ENOSPC and keeps the changes for a later sync.
 *
 * Why IndexedDB and not OPFS: OPFS's fast path (a synchronous access handle) exists only in a
 * dedicated worker, and its async API costs a file handle per file; one IndexedDB transaction
 * per flush serves any page or worker and batches many small files.
 */
import { MemoryUpperStore, type UpperStore } from './upper-store.js';
import { EIO, ENOSPC, P9Error } from '../errno.js';

const CHUNK = 65536;
type IDB = IDBDatabase;

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'));
  });
}

export interface IndexedDbStoreOptions {
  /** bound of the stored file data in bytes (ENOSPC beyond it; default none: the quota decides) */
  capacityBytes?: number;
  /** ask the browser to keep the database under storage pressure (navigator.storage.persist()) */
  persist?: boolean;
}

export class IndexedDbStore implements UpperStore {
  private readonly mem: MemoryUpperStore;
  private pendingLines: string[] = [];
  private rewrite: string[] | null = null;
  /** file id → chunk indexes changed since the last sync ('all' after a truncate) */
  private readonly changed = new Map<number, Set<number> | 'all'>();
  private readonly removed = new Set<number>();
  private cleared = false;
  /** whether navigator.storage.persist() was granted (undefined: not asked) */
  persisted: boolean | undefined;

  private constructor(private readonly db: IDB, opts: IndexedDbStoreOptions) {
    this.mem = new MemoryUpperStore(opts.capacityBytes ?? Infinity);
  }

  /** Open (or create) the database `name` and load the layer it holds. */
  static async open(name: string, opts: IndexedDbStoreOptions = {}): Promise<IndexedDbStore> {
    const open = indexedDB.open(name, 1);
    open.onupgradeneeded = () => {
      const db = open.result;
      db.createObjectStore('journal', { autoIncrement: true });
      db.createObjectStore('chunks');   // key [id, chunk] → Uint8Array
      db.createObjectStore('lengths');  // key id → length
    };
    const db = await req(open);
    const s = new IndexedDbStore(db, opts);
    if (opts.persist) {
      const st = (globalThis as { navigator?: { storage?: { persist?: () => Promise<boolean> } } }).navigator?.storage;
      s.persisted = st?.persist ? await st.persist().catch(() => false) : false;
    }
    const tx = db.transaction(['journal', 'chunks', 'lengths'], 'readonly');
    const [lines, lenKeys, lens, chunkKeys, chunks] = await Promise.all([
      req(tx.objectStore('journal').getAll()) as Promise<string[]>,
      req(tx.objectStore('lengths').getAllKeys()) as Promise<number[]>,
      req(tx.objectStore('lengths').getAll()) as Promise<number[]>,
      req(tx.objectStore('chunks').getAllKeys()) as Promise<[number, number][]>,
      req(tx.objectStore('chunks').getAll()) as Promise<Uint8Array[]>,
    ]);
    s.mem.appendJournal(lines);
    for (let k = 0; k < lenKeys.length; k++) s.mem.truncate(lenKeys[k], lens[k]);
    for (let k = 0; k < chunkKeys.length; k++) {
      const [id, ci] = chunkKeys[k];
      const len = lens[lenKeys.indexOf(id)] ?? 0;
      const c = chunks[k].subarray(0, Math.max(0, Math.min(CHUNK, len - ci * CHUNK)));
      if (c.length > 0) s.mem.write(id, ci * CHUNK, c);
    }
    return s;
  }

  loadJournal(): string[] { return this.mem.loadJournal(); }
  appendJournal(lines: string[]): void {
    this.mem.appendJournal(lines);
    if (this.rewrite !== null) this.rewrite.push(...lines); else this.pendingLines.push(...lines);
  }
  rewriteJournal(lines: string[]): void {
    this.mem.rewriteJournal(lines);
    this.rewrite = lines.slice();
    this.pendingLines = [];
  }

  read(id: number, offset: number, dst: Uint8Array): number { return this.mem.read(id, offset, dst); }

  write(id: number, offset: number, src: Uint8Array): void {
    this.mem.write(id, offset, src);
    this.removed.delete(id);
    let set = this.changed.get(id);
    if (set === 'all') return;
    if (set === undefined) this.changed.set(id, set = new Set());
    for (let ci = Math.floor(offset / CHUNK); ci * CHUNK < offset + src.length; ci++) set.add(ci);
    if (src.length === 0) set.add(Math.floor(offset / CHUNK));
  }

  truncate(id: number, size: number): void {
    this.mem.truncate(id, size);
    this.removed.delete(id);
    this.changed.set(id, 'all');
  }

  remove(id: number): void {
    this.mem.remove(id);
    this.changed.delete(id);
    this.removed.add(id);
  }

  async sync(): Promise<void> {
    if (!this.cleared && this.pendingLines.length === 0 && this.rewrite === null && this.changed.size === 0 && this.removed.size === 0) return;
    const tx = this.db.transaction(['journal', 'chunks', 'lengths'], 'readwrite');
    const journal = tx.objectStore('journal'), chunks = tx.objectStore('chunks'), lengths = tx.objectStore('lengths');
    if (this.cleared) { journal.clear(); chunks.clear(); lengths.clear(); }
    if (this.rewrite !== null) { journal.clear(); for (const l of this.rewrite) journal.add(l); }
    for (const l of this.pendingLines) journal.add(l);
    const buf = new Uint8Array(CHUNK);
    for (const id of this.removed) {
      chunks.delete(IDBKeyRange.bound([id, 0], [id, Infinity]));
      lengths.delete(id);
    }
    for (const [id, set] of this.changed) {
      const len = this.sizeOf(id);
      lengths.put(len, id);
      const n = Math.ceil(len / CHUNK);
      if (set === 'all') chunks.delete(IDBKeyRange.bound([id, n], [id, Infinity]));
      for (const ci of set === 'all' ? Array.from({ length: n }, (_, k) => k) : set) {
        if (ci >= n) continue;
        const got = this.mem.read(id, ci * CHUNK, buf);
        chunks.put(buf.slice(0, got), [id, ci]);
      }
    }
    try {
      await done(tx);
    } catch (e) {
      const name = (e as { name?: string } | null)?.name;
      throw new P9Error(name === 'QuotaExceededError' ? ENOSPC : EIO, `IndexedDB: ${String(e)}`);
    }
    this.cleared = false;
    this.rewrite = null;
    this.pendingLines = [];
    this.changed.clear();
    this.removed.clear();
  }

  private sizeOf(id: number): number { return this.mem.length(id); }

  clear(): void {
    this.mem.clear();
    this.pendingLines = [];
    this.rewrite = null;
    this.changed.clear();
    this.removed.clear();
    this.cleared = true;
  }

  usage(): number { return this.mem.usage(); }
  ids(): number[] { return this.mem.ids(); }

  close(): void { this.db.close(); }
}
