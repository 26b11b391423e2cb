/**
 * NodeDirStore: an overlay's upper layer in a host directory (Node only):
 *   DIR/journal     the metadata journal (JSON lines, appended; replaced atomically on compaction)
 *   DIR/data/<ino>  the data of each upper file
 * Data files stay open in a small LRU of descriptors. sync() fsyncs the written files and the
 * journal. `capacityBytes` bounds the data (ENOSPC beyond it).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { UpperStore } from './upper-store.js';
import { ENOSPC, P9Error } from '../errno.js';

const MAX_FDS = 32;

export class NodeDirStore implements UpperStore {
  private readonly journal: string;
  private readonly data: string;
  private readonly fds = new Map<number, number>();
  private readonly unsynced = new Set<number>();
  private journalFd: number | null = null;
  private used = 0;
  private readonly sizes = new Map<number, number>();

  constructor(readonly dir: string, private readonly capacityBytes = Infinity) {
    this.journal = path.join(dir, 'journal');
    this.data = path.join(dir, 'data');
    fs.mkdirSync(this.data, { recursive: true });
    for (const name of fs.readdirSync(this.data)) {
      const id = Number(name);
      if (!Number.isSafeInteger(id)) continue;
      const size = fs.statSync(path.join(this.data, name)).size;
      this.sizes.set(id, size);
      this.used += size;
    }
  }

  loadJournal(): string[] {
    let text: string;
    try { text = fs.readFileSync(this.journal, 'utf8'); } catch { return []; }
    const lines = text.split('\n');
    lines.pop(); // after the last newline: empty, or a torn line
    return lines;
  }

  appendJournal(lines: string[]): void {
    if (this.journalFd === null) this.journalFd = fs.openSync(this.journal, 'a');
    fs.writeSync(this.journalFd, lines.join('\n') + '\n');
  }

  rewriteJournal(lines: string[]): void {
    const tmp = this.journal + '.tmp';
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, lines.length > 0 ? lines.join('\n') + '\n' : '');
      fs.fsyncSync(fd);
    } finally { fs.closeSync(fd); }
    if (this.journalFd !== null) { fs.closeSync(this.journalFd); this.journalFd = null; }
    fs.renameSync(tmp, this.journal);
  }

  private fd(id: number): number {
    let fd = this.fds.get(id);
    if (fd !== undefined) { this.fds.delete(id); this.fds.set(id, fd); return fd; }
    if (this.fds.size >= MAX_FDS) {
      const [oid, ofd] = this.fds.entries().next().value as [number, number];
      fs.closeSync(ofd); // still in `unsynced` if written: sync() reopens it

      this.fds.delete(oid);
    }
    fd = fs.openSync(path.join(this.data, String(id)), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    this.fds.set(id, fd);
    if (!this.sizes.has(id)) this.sizes.set(id, 0);
    return fd;
  }

  private grow(id: number, size: number): void {
    const old = this.sizes.get(id) ?? 0;
    if (size > old && this.used + (size - old) > this.capacityBytes) throw new P9Error(ENOSPC, 'upper layer full');
    this.used += size - old;
    this.sizes.set(id, size);
  }

  read(id: number, offset: number, dst: Uint8Array): number {
    if (!this.sizes.has(id)) return 0;
    let got = 0;
    while (got < dst.length) {
      const n = fs.readSync(this.fd(id), dst, got, dst.length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return got;
  }

  write(id: number, offset: number, src: Uint8Array): void {
    const end = offset + src.length;
    const fd = this.fd(id);
    if (end > (this.sizes.get(id) ?? 0)) this.grow(id, end);
    let done = 0;
    while (done < src.length) done += fs.writeSync(fd, src, done, src.length - done, offset + done);
    this.unsynced.add(id);
  }

  truncate(id: number, size: number): void {
    const fd = this.fd(id);
    this.grow(id, size);
    fs.ftruncateSync(fd, size);
    this.unsynced.add(id);
  }

  remove(id: number): void {
    const fd = this.fds.get(id);
    if (fd !== undefined) { fs.closeSync(fd); this.fds.delete(id); }
    this.unsynced.delete(id);
    this.used -= this.sizes.get(id) ?? 0;
    this.sizes.delete(id);
    fs.rmSync(path.join(this.data, String(id)), { force: true });
  }

  sync(): void {
    for (const id of this.unsynced) {
      const fd = this.fds.get(id);
      if (fd !== undefined) { fs.fsyncSync(fd); continue; }
      const tmp = fs.openSync(path.join(this.data, String(id)), 'r+');
      try { fs.fsyncSync(tmp); } finally { fs.closeSync(tmp); }
    }
    this.unsynced.clear();
    if (this.journalFd !== null) fs.fsyncSync(this.journalFd);
  }

  clear(): void {
    this.close();
    fs.rmSync(this.journal, { force: true });
    fs.rmSync(this.data, { recursive: true, force: true });
    fs.mkdirSync(this.data, { recursive: true });
    this.sizes.clear();
    this.used = 0;
  }

  usage(): number { return this.used; }
  ids(): number[] { return [...this.sizes.keys()]; }

  /** Close every descriptor (the store can be used again; it reopens what it needs). */
  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
    this.unsynced.clear();
    if (this.journalFd !== null) { fs.closeSync(this.journalFd); this.journalFd = null; }
  }
}
