/**
 * POSIX record locks for Tlock/Tgetlock, shared by every backend. A lock is owned by the open
 * handle it was taken through (so clunking the fid releases it, as diod's tests expect), and
 * conflicts with another owner's overlapping lock when either is a write lock. Tlock never
 * blocks: a conflict answers BLOCKED and the client retries.
 */
export const F_RDLCK = 0, F_WRLCK = 1, F_UNLCK = 2;
export const LOCK_SUCCESS = 0, LOCK_BLOCKED = 1;

interface Lock { owner: number; type: number; start: number; end: number; procId: number; clientId: Uint8Array }

export interface Conflict { type: number; start: number; length: number; procId: number; clientId: Uint8Array }

export class LockTable {
  private byFile = new Map<number, Lock[]>();

  private conflict(file: number, owner: number, type: number, start: number, end: number): Lock | undefined {
    for (const l of this.byFile.get(file) ?? []) {
      if (l.owner === owner) continue;
      if (l.start < end && start < l.end && (type === F_WRLCK || l.type === F_WRLCK)) return l;
    }
    return undefined;
  }

  private unlock(file: number, owner: number, start: number, end: number): void {
    const list = this.byFile.get(file);
    if (!list) return;
    const kept: Lock[] = [];
    for (const l of list) {
      if (l.owner !== owner || l.end <= start || end <= l.start) { kept.push(l); continue; }
      if (l.start < start) kept.push({ ...l, end: start });
      if (end < l.end) kept.push({ ...l, start: end });
    }
    if (kept.length) this.byFile.set(file, kept); else this.byFile.delete(file);
  }

  /** Returns LOCK_SUCCESS or LOCK_BLOCKED. length 0 = to the end of the file. */
  lock(file: number, owner: number, type: number, start: number, length: number, procId: number, clientId: Uint8Array): number {
    const end = length === 0 ? Infinity : start + length;
    if (type === F_UNLCK) { this.unlock(file, owner, start, end); return LOCK_SUCCESS; }
    if (this.conflict(file, owner, type, start, end)) return LOCK_BLOCKED;
    this.unlock(file, owner, start, end);
    const list = this.byFile.get(file) ?? [];
    list.push({ owner, type, start, end, procId, clientId: clientId.slice() });
    this.byFile.set(file, list);
    return LOCK_SUCCESS;
  }

  /** The first lock that would block this one, or undefined. */
  test(file: number, owner: number, type: number, start: number, length: number): Conflict | undefined {
    const end = length === 0 ? Infinity : start + length;
    const l = type === F_UNLCK ? undefined : this.conflict(file, owner, type, start, end);
    if (!l) return undefined;
    return { type: l.type, start: l.start, length: l.end === Infinity ? 0 : l.end - l.start, procId: l.procId, clientId: l.clientId };
  }

  /** Drop every lock an owner holds (its handle was closed). */
  release(owner: number): void {
    for (const file of [...this.byFile.keys()]) this.unlock(file, owner, 0, Infinity);
  }

  /** Every lock, for a device snapshot. */
  save(): { file: number; owner: number; type: number; start: number; end: number | null; procId: number; clientId: number[] }[] {
    const out = [];
    for (const [file, list] of this.byFile) {
      for (const l of list) out.push({ file, owner: l.owner, type: l.type, start: l.start, end: l.end === Infinity ? null : l.end, procId: l.procId, clientId: [...l.clientId] });
    }
    return out;
  }

  /** Replace the table with a snapshot's locks. */
  load(locks: ReturnType<LockTable['save']>): void {
    this.byFile.clear();
    for (const l of locks) {
      const list = this.byFile.get(l.file) ?? [];
      list.push({ owner: l.owner, type: l.type, start: l.start, end: l.end ?? Infinity, procId: l.procId, clientId: Uint8Array.from(l.clientId) });
      this.byFile.set(l.file, list);
    }
  }
}
