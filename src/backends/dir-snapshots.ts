/**
 * Readdir snapshots of the path backends (local, proxy) share one byte budget per backend:
 * readdir cookies are positions in a per-open listing, and a client can open many handles of
 * a large directory. When a new listing would take the total over the budget, the least
 * recently used other listings are dropped; their handles re-read the directory at their next
 * readdir and resume at the same position (exact unless the directory changed meanwhile,
 * which readdir(3) allows). One listing larger than the whole budget is still kept (a
 * directory must stay listable), so the bound is max(budget, the largest directory).
 */

/** What an entry costs beyond its name bytes (its Buffer object and array slot: measured
 *  with 10,000-entry listings, about 190 bytes on Node 20). */
const ENTRY_OVERHEAD = 192;
export const DEFAULT_READDIR_BUDGET = 64 << 20;

export interface HasSnapshot { snap: Buffer[] | null }

export class SnapshotBudget {
  /** owners by recency (Map order: least recently used first) and their bytes */
  private owners = new Map<HasSnapshot, number>();
  private total = 0;

  constructor(readonly limit = DEFAULT_READDIR_BUDGET) {
    if (!Number.isInteger(limit) || limit < 0) throw new RangeError('readdir snapshot budget must be an integer ≥ 0');
  }

  /** Bytes of listings held now. */
  get bytes(): number { return this.total; }

  /** `owner` now holds the listing `names` (its previous one, if any, is replaced). */
  take(owner: HasSnapshot, names: Buffer[]): void {
    this.release(owner);
    let n = 0;
    for (const b of names) n += b.length + ENTRY_OVERHEAD;
    for (const [o, m] of this.owners) {
      if (this.total + n <= this.limit) break;
      this.owners.delete(o);
      this.total -= m;
      o.snap = null;
    }
    this.owners.set(owner, n);
    this.total += n;
  }

  /** `owner` read from its listing: the most recently used now. */
  touch(owner: HasSnapshot): void {
    const n = this.owners.get(owner);
    if (n === undefined) return;
    this.owners.delete(owner);
    this.owners.set(owner, n);
  }

  /** `owner` dropped its listing (closed). */
  release(owner: HasSnapshot): void {
    const n = this.owners.get(owner);
    if (n === undefined) return;
    this.owners.delete(owner);
    this.total -= n;
  }
}
