/**
 * OverlayBackend: a copy-on-write tree over any lower backend (HttpBackend, MemoryBackend,
 * LocalBackend), with the changes in an upper layer that persists (an UpperStore).
 *
 * Browser-safe. How it works:
 *  - The merged namespace and all metadata live in an in-memory MemoryBackend (`ns`), which
 *    gives every POSIX rule (rename, hard links, unlinked-but-open objects, readdir cookies,
 *    xattrs, setattr) one implementation. A directory is populated from its source the first
 *    time anything needs its entries: from the lower directory, or from the upper layer's
 *    listing once it has changed. `ns` holds no file data.
 *  - File data is read from the lower object until the file is opened for writing or truncated
 *    (copy-up: the lower contents are copied into the store), and from the store after. A chmod
 *    or chown copies no data (only the metadata record changes).
 *  - Deletes need no whiteout objects: a directory whose entries changed is persisted with its
 *    complete listing, which replaces the lower listing (a lower name missing from it is
 *    deleted; a directory made anew has no lower and so is opaque). Renaming a lower directory
 *    moves the object: its lower contents follow it. Export (exportTar) writes the standard
 *    whiteout form (.wh.NAME, .wh..wh..opq) for other tools.
 *  - Inode numbers (qid.path): a lower object keeps its lower inode number (which must be
 *    < 2^48, as MemoryBackend's, HttpBackend's and ext4/xfs inodes are), also after copy-up;
 *    objects made in the overlay get numbers from 2^48 up, from a counter that persists. So no
 *    two objects share a number, across layers and reloads.
 *  - Persistence: changed objects are journal records (JSON lines) written at flush points:
 *    fsync and flush() (written and synced), the close of a file that was written (written, not
 *    synced) and, with autoFlushMs, a timer (synced). File data goes to the store as it is
 *    written. What a reload loses is what was not flushed; what a crash of the machine loses,
 *    what was not synced.
 *    The journal is compacted when it is mostly superseded records.
 *  - The lower tree must not change under a persisted upper layer.
 */
import type { Backend, Created, DirSink, Entry, Fh, Node, Res, SetAttr, Stat, StatFs } from './backend.js';
import {
  O_ACCMODE, O_APPEND, O_DIRECTORY, O_EXCL, O_RDONLY, O_TRUNC, AT_REMOVEDIR,
  S_IFMT, S_IFDIR, S_IFREG, S_IFLNK,
} from './backend.js';
import { MemoryBackend, type Inode } from './memory.js';
import { EBADF, EFBIG, EIO, EINVAL, EISDIR, ENOENT, ENOSPC, P9Error, toErrno } from '../errno.js';
import { MemoryUpperStore, type UpperStore } from './upper-store.js';
import { tarHeader, tarPad, TAR_END } from '../tar.js';

/** First inode number of objects made in the overlay. */
export const UPPER_INO_BASE = 2 ** 48;
const NO_ID = 0xFFFFFFFF;
const COPY_CHUNK = 1 << 20;
const MAX_FILE_SIZE = 2 ** 52;

export interface OverlayOptions {
  lower: Backend;
  /** the upper layer (default: in memory, not persisted) */
  store?: UpperStore;
  /** also flush this many ms after a change (default 0: only at fsync, close after write, flush()) */
  autoFlushMs?: number;
  /** most objects the namespace holds (made or visited); beyond it creating is ENOSPC */
  maxInodes?: number;
}

/** A persisted object (one journal record). Names and symlink targets are latin1 strings
 *  (one char per byte). */
interface NodeRec {
  i: number;      // inode number
  m: number; u: number; g: number; s: number; r: number;
  t: [number, number, number, number, number, number]; // atime, mtime, ctime (sec, nsec)
  l?: string;     // symlink target
  x?: [string, string][];
  p?: string;     // lower path of the object ('' = the lower root); absent: no lower object
  d?: 1;          // data in the store
  n?: number;     // link count (non-directories)
  e?: [string, number][]; // complete listing (a directory whose entries changed)
}
/** Journal lines: {n: NodeRec} sets a record (a record without `e` keeps the listing it had),
 *  {d: ino} deletes one, {a: [dir, name, ino]} / {r: [dir, name]} change one listing entry,
 *  {c: next} is the next inode number for new objects. */
interface JournalLine { n?: NodeRec; d?: number; a?: [number, string, number]; r?: [number, string]; c?: number }

const enum Data { None, Lower, Upper }

class OvNode {
  lowerNode: Node | null = null;
  populated = false;
  populating: Promise<void> | null = null;
  copying: Promise<void> | null = null;
  /** entries changed: persist the complete listing */
  listing = false;
  /** has (or will have) a record */
  touched = false;
  xattrsLoaded = false;
  lowerFh: Fh | null = null;
  /** a directory's link count before it is populated (its lower directory's) */
  srcNlink = 0;
  /** names of this (non-directory) object in directories not populated yet */
  bias = 0;
  /** names (keys) of this directory changed since the last flush */
  pending: Set<string> | null = null;
  constructor(public stable: number, public inode: Inode, public lowerPath: string | null, public data: Data) {}
}

interface OvFh { ov: OvNode; readable: boolean; writable: boolean; append: boolean; wrote: boolean }

const utf8 = new TextEncoder();
function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 4096) s += String.fromCharCode.apply(null, b.subarray(i, i + 4096) as unknown as number[]);
  return s;
}
function bytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}
async function v<T>(r: Res<T>): Promise<T | number> { return r; }
function fail(r: unknown): r is number { return typeof r === 'number' && r < 0; }
function decodeDev(rdev: number): [number, number] {
  return [(rdev >>> 8) & 0xfff, (rdev & 0xff) | ((rdev >>> 12) & 0xfff00)];
}

export class OverlayBackend implements Backend {
  private ns!: MemoryBackend;
  private rootNode!: Node;
  private readonly byMem = new Map<number, OvNode>();
  private readonly byStable = new Map<number, OvNode>();
  private records = new Map<number, NodeRec>();
  /** persisted listings of directories whose entries changed */
  private listings = new Map<number, Map<string, number>>();
  private readonly dirty = new Set<OvNode>();
  private readonly fhs = new Map<Fh, OvFh>();
  private nextUpper = UPPER_INO_BASE;
  private journalLines = 0;
  private lowerRoot!: Entry;
  private flushing: Promise<void> = Promise.resolve();
  private timer: ReturnType<typeof setTimeout> | null = null;
  readonly lower: Backend;
  readonly store: UpperStore;
  private readonly autoFlushMs: number;
  private readonly maxInodes: number | undefined;
  /** counters for a page's panel */
  readonly counters = { copyUps: 0, copiedBytes: 0, flushes: 0, journalRecords: 0 };

  private constructor(opts: OverlayOptions) {
    this.lower = opts.lower;
    this.store = opts.store ?? new MemoryUpperStore();
    this.autoFlushMs = opts.autoFlushMs ?? 0;
    this.maxInodes = opts.maxInodes;
  }

  /** Open an overlay: attach the lower root and replay the store's journal. */
  static async open(opts: OverlayOptions): Promise<OverlayBackend> {
    const o = new OverlayBackend(opts);
    const r = await v(o.lower.attach(new Uint8Array(0), NO_ID));
    if (fail(r)) throw new P9Error(-r, 'overlay: cannot attach the lower tree');
    o.lowerRoot = r as Entry;
    await o.init(await o.store.loadJournal());
    // data no record refers to: files made or unlinked after the last flush before a reload
    for (const id of await o.store.ids()) if (o.records.get(id)?.d !== 1) await o.store.remove(id);
    return o;
  }

  private async init(lines: string[]): Promise<void> {
    this.records = new Map();
    this.listings = new Map();
    this.nextUpper = UPPER_INO_BASE;
    for (const line of lines) {
      let j: JournalLine;
      try { j = JSON.parse(line); } catch { continue; } // a torn last line
      if (j.n !== undefined) {
        if (j.n.e !== undefined) this.listings.set(j.n.i, new Map(j.n.e));
        delete j.n.e;
        this.records.set(j.n.i, j.n);
      } else if (j.d !== undefined) {
        this.records.delete(j.d);
        this.listings.delete(j.d);
      } else if (j.a !== undefined) {
        let l = this.listings.get(j.a[0]);
        if (l === undefined) this.listings.set(j.a[0], l = new Map());
        l.set(j.a[1], j.a[2]);
      } else if (j.r !== undefined) this.listings.get(j.r[0])?.delete(j.r[1]);
      if (j.c !== undefined && j.c > this.nextUpper) this.nextUpper = j.c;
    }
    this.journalLines = lines.length;
    this.byMem.clear();
    this.byStable.clear();
    this.dirty.clear();
    this.ns = new MemoryBackend({ maxInodes: this.maxInodes });
    const root = this.ns.attach(new Uint8Array(0), NO_ID) as Inode;
    this.rootNode = root.node;
    const lr = this.lowerRoot;
    const stable = this.stableOfLower(lr.ino);
    const ov = this.track(new OvNode(stable, root, '', Data.None));
    ov.lowerNode = lr.node;
    this.applyAttrs(root, this.records.get(stable) ?? lr);
    if (this.records.has(stable)) ov.touched = true;
    ov.listing = this.listings.has(stable);
    if (ov.listing) await this.populate(ov); else ov.srcNlink = lr.nlink;
    if (this.journalLines > 64 && this.journalLines > 2 * this.liveSize()) await this.compact();
  }

  private liveSize(): number {
    let n = this.records.size;
    for (const l of this.listings.values()) n += l.size;
    return n;
  }

  // ---- identity ---------------------------------------------------------------------------

  private stableOfLower(ino: number): number {
    if (!(ino >= 0 && ino < UPPER_INO_BASE)) throw new P9Error(EIO, `overlay: lower inode ${ino} ≥ 2^48`);
    return ino;
  }

  private track(ov: OvNode): OvNode {
    this.byMem.set(ov.inode.node, ov);
    this.byStable.set(ov.stable, ov);
    return ov;
  }

  private ov(node: Node): OvNode | null {
    return this.byMem.get(node) ?? null;
  }

  private out(s: Stat, stable: number, ov?: OvNode): Stat {
    const nlink = ov === undefined ? s.nlink
      : ov.inode.dir !== null ? (!ov.populated && ov.srcNlink > 0 ? ov.srcNlink : s.nlink)
        : s.nlink + ov.bias;
    return {
      ino: stable, mode: s.mode, uid: s.uid, gid: s.gid, nlink, rdev: s.rdev, size: s.size,
      blksize: 4096, blocks: Math.ceil(s.size / 512),
      atimeSec: s.atimeSec, atimeNsec: s.atimeNsec, mtimeSec: s.mtimeSec, mtimeNsec: s.mtimeNsec,
      ctimeSec: s.ctimeSec, ctimeNsec: s.ctimeNsec,
    };
  }

  private entry(e: Entry): Entry {
    const ov = this.byMem.get(e.node)!;
    return { ...this.out(e, ov.stable, ov), node: e.node };
  }

  private applyAttrs(i: Inode, a: Stat | NodeRec): void {
    if ('i' in a) {
      i.mode = a.m; i.uid = a.u; i.gid = a.g; i.rdev = a.r;
      if (i.dir === null) i.size = a.s;
      [i.atimeSec, i.atimeNsec, i.mtimeSec, i.mtimeNsec, i.ctimeSec, i.ctimeNsec] = a.t;
      if (a.x !== undefined) {
        i.xattrs = new Map(a.x.map(([k, val]) => [k, { name: bytes(k), value: bytes(val) }]));
      }
    } else {
      i.mode = a.mode; i.uid = a.uid; i.gid = a.gid; i.rdev = a.rdev;
      if (i.dir === null) i.size = a.size;
      i.atimeSec = a.atimeSec; i.atimeNsec = a.atimeNsec; i.mtimeSec = a.mtimeSec; i.mtimeNsec = a.mtimeNsec;
      i.ctimeSec = a.ctimeSec; i.ctimeNsec = a.ctimeNsec;
    }
  }

  /** Mark `ov` changed; `names`: entries of directory `ov` that were added, removed or replaced. */
  private touch(ov: OvNode, names?: (Uint8Array | string)[]): void {
    ov.touched = true;
    if (names !== undefined) {
      ov.listing = true;
      ov.pending ??= new Set();
      for (const n of names) ov.pending.add(typeof n === 'string' ? n : latin1(n));
    }
    this.dirty.add(ov);
    if (this.autoFlushMs > 0 && this.timer === null) {
      this.timer = setTimeout(() => { this.timer = null; this.flush().catch(() => {}); }, this.autoFlushMs);
    }
  }

  // ---- lower access -----------------------------------------------------------------------

  private async lowerNodeOf(ov: OvNode): Promise<Node> {
    if (ov.lowerNode !== null) return ov.lowerNode;
    if (ov.lowerPath === null) throw new P9Error(EIO, 'overlay: no lower object');
    let n = this.lowerRoot.node;
    let owned = false;
    for (const part of ov.lowerPath.split('/')) {
      if (part === '') continue;
      const r = await v(this.lower.lookup(n, bytes(part)));
      if (owned) this.lower.forget(n);
      if (fail(r)) throw new P9Error(EIO, `overlay: the lower tree changed (${ov.lowerPath})`);
      n = (r as Entry).node;
      owned = true;
    }
    ov.lowerNode = n;
    return n;
  }

  private async lowerNames(dir: Node): Promise<Uint8Array[]> {
    const fh = await v(this.lower.open(dir, O_RDONLY | O_DIRECTORY));
    if (fail(fh)) throw new P9Error(-fh);
    const names: Uint8Array[] = [];
    try {
      let cookie = 0;
      for (;;) {
        let last = -1;
        const r = await v(this.lower.readdir(fh as Fh, cookie, {
          push: (_ino, next, _t, name) => {
            if (names.length >= 1 << 22) return false;
            if (!(name.length === 1 && name[0] === 0x2e) && !(name.length === 2 && name[0] === 0x2e && name[1] === 0x2e)) names.push(name.slice());
            last = next;
            return true;
          },
        }));
        if (fail(r)) throw new P9Error(-r);
        if (last < 0) break;
        cookie = last;
      }
    } finally {
      await v(this.lower.close(fh as Fh));
    }
    return names;
  }

  // ---- population -------------------------------------------------------------------------

  /** Make sure the entries of directory `ov` are in the namespace. */
  private populate(ov: OvNode): Promise<void> {
    if (ov.populated || ov.inode.dir === null) return Promise.resolve();
    if (ov.populating === null) {
      ov.populating = this.doPopulate(ov).then(
        () => { ov.populated = true; ov.populating = null; },
        (e) => { ov.populating = null; throw e; },
      );
    }
    return ov.populating;
  }

  private async doPopulate(ov: OvNode): Promise<void> {
    const dirNode = this.ns.hold(ov.inode);
    try {
      const listing = this.listings.get(ov.stable);
      if (listing !== undefined) {
        for (const [key, stable] of listing) {
          const r = this.records.get(stable);
          if (r !== undefined) await this.addChild(dirNode, ov, bytes(key), stable, r, null);
          else {
            // an unchanged lower object at its lower place
            if (ov.lowerPath === null) continue;
            const ld = await this.lowerNodeOf(ov);
            const e = await v(this.lower.lookup(ld, bytes(key)));
            if (fail(e)) throw new P9Error(EIO, 'overlay: the lower tree changed');
            await this.addChild(dirNode, ov, bytes(key), stable, null, e as Entry);
          }
        }
      } else if (ov.lowerPath !== null) {
        const ld = await this.lowerNodeOf(ov);
        for (const name of await this.lowerNames(ld)) {
          const e = await v(this.lower.lookup(ld, name));
          if (fail(e)) continue; // vanished meanwhile
          const le = e as Entry;
          await this.addChild(dirNode, ov, name, this.stableOfLower(le.ino), this.records.get(le.ino) ?? null, le);
        }
      }
    } finally {
      this.ns.forget(dirNode);
    }
  }

  private async addChild(dirNode: Node, parent: OvNode, name: Uint8Array, stable: number, rec: NodeRec | null, le: Entry | null): Promise<void> {
    const seen = this.byStable.get(stable);
    if (seen !== undefined && seen.inode.dir === null) {
      // another name of a hard-linked object
      const t = this.ns.hold(seen.inode);
      if (t > 0) {
        const r = this.ns.link(dirNode, name, t);
        this.ns.forget(t);
        if (r === 0) {
          if (seen.bias > 0) seen.bias--;
          if (le !== null) this.lower.forget(le.node);
          return;
        }
      }
      // its other names are gone from the namespace; this one is still pending
      if (seen.bias > 0) { rec = null; if (le !== null) { this.lower.forget(le.node); le = null; } }
    }
    const revive = seen !== undefined && seen.inode.dir === null && rec === null && le === null ? seen : null;
    const a: Stat | NodeRec = revive !== null ? revive.inode : rec ?? le!;
    const mode = 'i' in a ? a.m : a.mode;
    const type = mode & S_IFMT;
    let c: Stat | number;
    if (type === S_IFDIR) c = this.ns.mkdir(dirNode, name, mode, 0, 0);
    else if (type === S_IFLNK) {
      let target: Uint8Array;
      if (rec !== null && rec.l !== undefined) target = bytes(rec.l);
      else if (revive !== null) target = revive.inode.target!;
      else {
        const ln = le !== null ? le.node : await this.lowerNodeOf({ lowerNode: null, lowerPath: rec!.p ?? null } as OvNode);
        const t = await v(this.lower.readlink(ln));
        if (fail(t)) throw new P9Error(EIO, 'overlay: lower readlink failed');
        target = t as Uint8Array;
      }
      c = this.ns.symlink(dirNode, name, target, 0, 0);
    } else c = this.ns.mknod(dirNode, name, mode, 0, 0, 0, 0);
    if (fail(c)) throw new P9Error(-(c as number), 'overlay: cannot populate');
    const i = c as Inode;
    this.applyAttrs(i, a);
    let lowerPath: string | null;
    if (revive !== null) lowerPath = revive.lowerPath;
    else if (rec !== null) lowerPath = rec.p ?? null;
    else lowerPath = parent.lowerPath === null ? null : parent.lowerPath + '/' + latin1(name);
    const data = revive !== null ? revive.data
      : type !== S_IFREG ? Data.None : rec !== null && rec.d === 1 ? Data.Upper : lowerPath !== null ? Data.Lower : Data.Upper;
    const ov = this.track(new OvNode(stable, i, lowerPath, data));
    if (type !== S_IFDIR) {
      if (revive !== null) {
        ov.bias = revive.bias - 1;
        ov.touched = true;
        ov.xattrsLoaded = revive.xattrsLoaded;
        if (revive.inode.xattrs !== null) i.xattrs = new Map(revive.inode.xattrs);
        revive.bias = 0;
      } else ov.bias = Math.max(0, (rec !== null ? rec.n ?? 1 : le!.nlink) - 1);
    }
    if (rec !== null) { ov.touched = true; ov.listing = this.listings.has(stable); ov.xattrsLoaded = true; }
    if (type === S_IFDIR && le !== null && !ov.listing) ov.srcNlink = le.nlink;
    if (le !== null) {
      // the lower entry we looked up is this object's lower object when it is at its lower place
      if (parent.lowerPath !== null && lowerPath === parent.lowerPath + '/' + latin1(name)) ov.lowerNode = le.node;
      else this.lower.forget(le.node);
    }
    // a directory with a listing of its own: its link count needs its entries
    if (type === S_IFDIR && (ov.listing || (le === null && lowerPath === null))) await this.populate(ov);
    else if (type === S_IFDIR && le === null) {
      const ln = await this.lowerNodeOf(ov);
      const st = await v(this.lower.getattr(ln));
      if (!fail(st)) ov.srcNlink = (st as Stat).nlink;
    }
  }

  // ---- copy-up ------------------------------------------------------------------------------

  private copyUp(ov: OvNode, truncateTo: number | null): Promise<void> {
    if (ov.data !== Data.Lower) return Promise.resolve();
    if (ov.copying === null) {
      ov.copying = this.doCopyUp(ov, truncateTo).finally(() => { ov.copying = null; });
    }
    return ov.copying;
  }

  private async doCopyUp(ov: OvNode, truncateTo: number | null): Promise<void> {
    const size = truncateTo === null ? ov.inode.size : Math.min(truncateTo, ov.inode.size);
    await this.store.truncate(ov.stable, 0);
    if (size > 0) {
      const ln = await this.lowerNodeOf(ov);
      const fh = await v(this.lower.open(ln, O_RDONLY));
      if (fail(fh)) throw new P9Error(-fh);
      try {
        const buf = new Uint8Array(Math.min(COPY_CHUNK, size));
        for (let off = 0; off < size;) {
          const want = Math.min(buf.length, size - off);
          const n = await v(this.lower.read(fh as Fh, off, [buf.subarray(0, want)]));
          if (fail(n)) throw new P9Error(-n);
          if (n === 0) break;
          await this.store.write(ov.stable, off, buf.subarray(0, n as number));
          off += n as number;
          this.counters.copiedBytes += n as number;
        }
      } catch (e) {
        await this.store.remove(ov.stable);
        throw e;
      } finally {
        await v(this.lower.close(fh as Fh));
      }
    }
    ov.data = Data.Upper;
    this.counters.copyUps++;
    if (ov.lowerFh !== null) { const f = ov.lowerFh; ov.lowerFh = null; await v(this.lower.close(f)); }
    this.touch(ov);
  }

  private async loadXattrs(ov: OvNode): Promise<void> {
    if (ov.xattrsLoaded) return;
    ov.xattrsLoaded = true;
    if (ov.lowerPath === null) return;
    const ln = await this.lowerNodeOf(ov);
    const names = await v(this.lower.listxattr(ln));
    if (fail(names)) return;
    for (const name of names as Uint8Array[]) {
      const val = await v(this.lower.getxattr(ln, name));
      if (fail(val)) continue;
      (ov.inode.xattrs ??= new Map()).set(latin1(name), { name: name.slice(), value: (val as Uint8Array).slice() });
    }
  }

  // ---- wrapping -----------------------------------------------------------------------------

  /** Run an operation, turning thrown errors into -errno. */
  private async run<T>(fn: () => Promise<T | number>): Promise<T | number> {
    try { return await fn(); } catch (e) { return -toErrno(e); }
  }

  private newNode(parent: OvNode, name: Uint8Array, s: Stat | number): Stat | number {
    if (fail(s)) return s;
    const i = s as Inode;
    const ov = this.track(new OvNode(this.nextUpper++, i, null, (i.mode & S_IFMT) === S_IFREG ? Data.Upper : Data.None));
    ov.populated = true;
    ov.xattrsLoaded = true;
    this.touch(ov);
    this.touch(parent, [name]);
    return this.out(i, ov.stable);
  }

  attach(aname: Uint8Array, uid: number): Res<Entry> {
    return this.run(async () => {
      let e = this.ns.attach(new Uint8Array(0), uid) as Entry;
      for (const part of latin1(aname).split('/')) {
        if (part === '' || part === '.') continue;
        const r = await this.lookup(e.node, bytes(part));
        this.ns.forget(e.node);
        if (fail(r)) return r;
        e = r as Entry;
      }
      if (aname.length > 0 && (e.mode & S_IFMT) !== S_IFDIR) { this.ns.forget(e.node); return -20; }
      return this.entry(e);
    });
  }

  lookup(dir: Node, name: Uint8Array): Res<Entry> {
    return this.run(async () => {
      const d = this.ov(dir);
      if (d === null) return -EBADF;
      await this.populate(d);
      const r = this.ns.lookup(dir, name);
      return fail(r) ? r : this.entry(r as Entry);
    });
  }

  dup(node: Node): Res<Entry> {
    const r = this.ns.dup(node);
    return fail(r) ? r : this.entry(r as Entry);
  }

  getattr(node: Node): Res<Stat> {
    const r = this.ns.getattr(node);
    if (fail(r)) return r;
    const ov = this.byMem.get(node)!;
    return this.out(r as Stat, ov.stable, ov);
  }

  setattr(node: Node, attr: SetAttr): Res<number> {
    return this.run(async () => {
      const ov = this.ov(node);
      if (ov === null) return -EBADF;
      if (attr.size !== undefined && ov.data === Data.Lower) {
        if (attr.size > MAX_FILE_SIZE) return -EFBIG;
        await this.copyUp(ov, attr.size);
      }
      const r = this.ns.setattr(node, attr);
      if (r !== 0) return r;
      if (attr.size !== undefined && ov.data === Data.Upper) await this.store.truncate(ov.stable, attr.size);
      this.touch(ov);
      return 0;
    });
  }

  open(node: Node, flags: number): Res<Fh> {
    return this.run(async () => {
      const ov = this.ov(node);
      if (ov === null) return -EBADF;
      const acc = flags & O_ACCMODE;
      const writable = acc === 1 || acc === 2;
      const type = ov.inode.mode & S_IFMT;
      if (type === S_IFDIR) await this.populate(ov);
      const trunc = type === S_IFREG && writable && (flags & O_TRUNC) !== 0;
      if (type === S_IFREG && writable && !trunc && ov.data === Data.Lower) await this.copyUp(ov, null);
      const fh = this.ns.open(node, flags);
      if (fail(fh)) return fh;
      if (trunc) {
        if (ov.data === Data.Lower) { ov.data = Data.Upper; this.counters.copyUps++; }
        await this.store.truncate(ov.stable, 0);
        this.touch(ov);
      }
      this.fhs.set(fh as Fh, { ov, readable: acc !== 1, writable, append: (flags & O_APPEND) !== 0, wrote: false });
      return fh;
    });
  }

  create(dir: Node, name: Uint8Array, flags: number, mode: number, uid: number, gid: number): Res<Created> {
    return this.run(async () => {
      const d = this.ov(dir);
      if (d === null) return -EBADF;
      await this.populate(d);
      const acc = flags & O_ACCMODE;
      const old = this.ns.lookup(dir, name);
      if (!fail(old)) {
        // an existing name: create opens it (unless O_EXCL), so copy up first as open does
        this.ns.forget((old as Entry).node);
        const ov = this.byMem.get((old as Entry).node)!;
        const writable = acc === 1 || acc === 2;
        const trunc = writable && (flags & O_TRUNC) !== 0 && (ov.inode.mode & S_IFMT) === S_IFREG;
        if ((flags & O_EXCL) === 0 && writable && !trunc && ov.data === Data.Lower) await this.copyUp(ov, null);
        const r = this.ns.create(dir, name, flags, mode, uid, gid);
        if (fail(r)) return r;
        const c = r as Created;
        if (trunc) {
          if (ov.data === Data.Lower) { ov.data = Data.Upper; this.counters.copyUps++; }
          await this.store.truncate(ov.stable, 0);
          this.touch(ov);
        }
        this.fhs.set(c.fh, { ov, readable: acc !== 1, writable, append: (flags & O_APPEND) !== 0, wrote: false });
        return { ...this.out(c, ov.stable, ov), node: c.node, fh: c.fh };
      }
      const r = this.ns.create(dir, name, flags, mode, uid, gid);
      if (fail(r)) return r;
      const c = r as Created;
      const i = this.ns.getattr(c.node) as Inode;
      const s = this.newNode(d, name, i) as Stat;
      await this.store.truncate(this.byMem.get(c.node)!.stable, 0);
      this.fhs.set(c.fh, { ov: this.byMem.get(c.node)!, readable: acc !== 1, writable: acc !== 0, append: (flags & O_APPEND) !== 0, wrote: false });
      return { ...s, node: c.node, fh: c.fh };
    });
  }

  read(fh: Fh, offset: number, dst: Uint8Array[]): Res<number> {
    return this.run(async () => {
      const f = this.fhs.get(fh);
      if (f === undefined) return -EBADF;
      const ov = f.ov;
      if (ov.inode.dir !== null) return -EISDIR;
      if (!f.readable) return -EBADF;
      const size = ov.inode.size;
      if (offset >= size) return 0;
      let want = 0;
      for (const d of dst) want += d.length;
      const end = Math.min(size, offset + want);
      if (ov.data === Data.Lower) {
        if (ov.lowerFh === null) {
          const ln = await this.lowerNodeOf(ov);
          const lf = await v(this.lower.open(ln, O_RDONLY));
          if (fail(lf)) return lf;
          if (ov.lowerFh === null) ov.lowerFh = lf as Fh; else await v(this.lower.close(lf as Fh));
        }
        if (ov.data === Data.Lower) {
          // clip the buffers to the overlay's size (the lower may hold more after a truncate)
          const clipped: Uint8Array[] = [];
          let left = end - offset;
          for (const d of dst) { if (left === 0) break; const n = Math.min(d.length, left); clipped.push(d.subarray(0, n)); left -= n; }
          return this.lower.read(ov.lowerFh!, offset, clipped);
        }
      }
      let pos = offset;
      for (const d of dst) {
        if (pos >= end) break;
        const part = d.subarray(0, Math.min(d.length, end - pos));
        const got = await this.store.read(ov.stable, pos, part);
        if (got < part.length) part.fill(0, got); // sparse tail (extended by truncate)
        pos += part.length;
      }
      return end - offset;
    });
  }

  write(fh: Fh, offset: number, src: Uint8Array[]): Res<number> {
    return this.run(async () => {
      const f = this.fhs.get(fh);
      if (f === undefined) return -EBADF;
      const ov = f.ov;
      if (ov.inode.dir !== null) return -EISDIR;
      if (!f.writable) return -EBADF;
      if (ov.data === Data.Lower) await this.copyUp(ov, null);
      let total = 0;
      for (const s of src) total += s.length;
      let pos = f.append ? ov.inode.size : offset;
      if (pos + total > MAX_FILE_SIZE) return -EFBIG;
      const start = pos;
      for (const s of src) {
        if (s.length === 0) continue;
        await this.store.write(ov.stable, pos, s);
        pos += s.length;
      }
      const i = ov.inode;
      if (pos > i.size) i.size = pos;
      const now = Date.now();
      i.mtimeSec = i.ctimeSec = Math.floor(now / 1000);
      i.mtimeNsec = i.ctimeNsec = (now % 1000) * 1e6;
      f.wrote = true;
      this.touch(ov);
      return pos - start;
    });
  }

  readdir(fh: Fh, cookie: number, sink: DirSink): Res<number> {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    return this.ns.readdir(fh, cookie, {
      push: (ino, next, dtype, name) => sink.push(this.byMem.get(ino)?.stable ?? ino, next, dtype, name),
    });
  }

  readlink(node: Node): Res<Uint8Array> { return this.ns.readlink(node); }

  mkdir(dir: Node, name: Uint8Array, mode: number, uid: number, gid: number): Res<Stat> {
    return this.run(async () => {
      const d = this.ov(dir);
      if (d === null) return -EBADF;
      await this.populate(d);
      return this.newNode(d, name, this.ns.mkdir(dir, name, mode, uid, gid));
    });
  }

  symlink(dir: Node, name: Uint8Array, target: Uint8Array, uid: number, gid: number): Res<Stat> {
    return this.run(async () => {
      const d = this.ov(dir);
      if (d === null) return -EBADF;
      await this.populate(d);
      return this.newNode(d, name, this.ns.symlink(dir, name, target, uid, gid));
    });
  }

  mknod(dir: Node, name: Uint8Array, mode: number, major: number, minor: number, uid: number, gid: number): Res<Stat> {
    return this.run(async () => {
      const d = this.ov(dir);
      if (d === null) return -EBADF;
      await this.populate(d);
      const s = this.newNode(d, name, this.ns.mknod(dir, name, mode, major, minor, uid, gid));
      if (!fail(s) && ((s as Stat).mode & S_IFMT) === S_IFREG) await this.store.truncate((s as Stat).ino, 0);
      return s;
    });
  }

  link(dir: Node, name: Uint8Array, target: Node): Res<number> {
    return this.run(async () => {
      const d = this.ov(dir), t = this.ov(target);
      if (d === null || t === null) return -EBADF;
      await this.populate(d);
      const r = this.ns.link(dir, name, target);
      if (r === 0) { this.touch(d, [name]); this.touch(t); }
      return r;
    });
  }

  /** Populate dir and, when dir/name is a directory, that directory too (its emptiness matters). */
  private async prepareName(d: OvNode, dirNode: Node, name: Uint8Array): Promise<OvNode | null> {
    await this.populate(d);
    const e = this.ns.lookup(dirNode, name);
    if (fail(e)) return null;
    this.ns.forget((e as Entry).node);
    const c = this.byMem.get((e as Entry).node)!;
    await this.populate(c);
    return c;
  }

  private moved(ov: OvNode | null): void {
    if (ov !== null) this.touch(ov);
  }

  renameat(olddir: Node, oldname: Uint8Array, newdir: Node, newname: Uint8Array): Res<number> {
    return this.run(async () => {
      const od = this.ov(olddir), nd = this.ov(newdir);
      if (od === null || nd === null) return -EBADF;
      const src = await this.prepareName(od, olddir, oldname);
      const dst = await this.prepareName(nd, newdir, newname);
      const r = this.ns.renameat(olddir, oldname, newdir, newname);
      if (r === 0) { this.touch(od, [oldname]); this.touch(nd, [newname]); this.moved(src); this.moved(dst); }
      return r;
    });
  }

  rename(node: Node, newdir: Node, newname: Uint8Array): Res<number> {
    return this.run(async () => {
      const ov = this.ov(node), nd = this.ov(newdir);
      if (ov === null || nd === null) return -EBADF;
      const dst = await this.prepareName(nd, newdir, newname);
      const from = ov.inode.linkDir, fromKey = ov.inode.linkKey;
      const r = this.ns.rename(node, newdir, newname);
      if (r === 0) {
        if (from !== null) { const p = this.byMem.get(from.node); if (p !== undefined) this.touch(p, [fromKey]); }
        this.touch(nd, [newname]); this.touch(ov); this.moved(dst);
      }
      return r;
    });
  }

  unlinkat(dir: Node, name: Uint8Array, flags: number): Res<number> {
    return this.run(async () => {
      const d = this.ov(dir);
      if (d === null) return -EBADF;
      const c = (flags & AT_REMOVEDIR) !== 0 ? await this.prepareName(d, dir, name) : (await this.populate(d), null);
      let victim = c;
      if (victim === null) {
        const e = this.ns.lookup(dir, name);
        if (!fail(e)) { this.ns.forget((e as Entry).node); victim = this.byMem.get((e as Entry).node) ?? null; }
      }
      const r = this.ns.unlinkat(dir, name, flags);
      if (r === 0) { this.touch(d, [name]); this.moved(victim); }
      return r;
    });
  }

  remove(node: Node): Res<number> {
    return this.run(async () => {
      const ov = this.ov(node);
      if (ov === null) return -EBADF;
      await this.populate(ov);
      const from = ov.inode.linkDir, fromKey = ov.inode.linkKey;
      const r = this.ns.remove(node);
      if (r === 0) {
        if (from !== null) { const p = this.byMem.get(from.node); if (p !== undefined) this.touch(p, [fromKey]); }
        this.touch(ov);
      }
      return r;
    });
  }

  fsync(fh: Fh, _datasync: boolean): Res<number> {
    if (!this.fhs.has(fh)) return -EBADF;
    return this.run(async () => { await this.flush(); return 0; });
  }

  statfs(node: Node): Res<StatFs> {
    const r = this.ns.statfs(node);
    if (fail(r)) return r;
    return { ...(r as StatFs), fsid: 0x6f766c79 /* "ovly" */ };
  }

  getxattr(node: Node, name: Uint8Array): Res<Uint8Array> {
    return this.run(async () => {
      const ov = this.ov(node);
      if (ov === null) return -EBADF;
      await this.loadXattrs(ov);
      return this.ns.getxattr(node, name);
    });
  }

  listxattr(node: Node): Res<Uint8Array[]> {
    return this.run(async () => {
      const ov = this.ov(node);
      if (ov === null) return -EBADF;
      await this.loadXattrs(ov);
      return this.ns.listxattr(node);
    });
  }

  setxattr(node: Node, name: Uint8Array, value: Uint8Array, flags: number): Res<number> {
    return this.run(async () => {
      const ov = this.ov(node);
      if (ov === null) return -EBADF;
      await this.loadXattrs(ov);
      const r = this.ns.setxattr(node, name, value, flags);
      if (r === 0) this.touch(ov);
      return r;
    });
  }

  removexattr(node: Node, name: Uint8Array): Res<number> {
    return this.run(async () => {
      const ov = this.ov(node);
      if (ov === null) return -EBADF;
      await this.loadXattrs(ov);
      const r = this.ns.removexattr(node, name);
      if (r === 0) this.touch(ov);
      return r;
    });
  }

  close(fh: Fh): Res<number> {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    this.fhs.delete(fh);
    const r = this.ns.close(fh);
    if (!f.wrote) { this.release(f.ov); return r; }
    return this.run(async () => { await this.flush(false); this.release(f.ov); return r; });
  }

  forget(node: Node): void {
    const ov = this.byMem.get(node);
    this.ns.forget(node);
    if (ov !== undefined) this.release(ov);
  }

  /** Drop an object the namespace has freed (no links, references or open handles). */
  private release(ov: OvNode): void {
    const i = ov.inode;
    if (i.nlink > 0 || i.refs > 0 || i.opens > 0 || ov === this.byMem.get(this.rootNode)) return;
    if (this.byMem.get(i.node) !== ov) return;
    this.byMem.delete(i.node);
    if (this.byStable.get(ov.stable) === ov && ov.bias === 0) this.byStable.delete(ov.stable);
    if (ov.lowerFh !== null) { const f = ov.lowerFh; ov.lowerFh = null; void Promise.resolve(this.lower.close(f)).catch(() => {}); }
    if (ov.lowerNode !== null && ov.lowerNode !== this.lowerRoot.node) this.lower.forget(ov.lowerNode);
    ov.lowerNode = null;
    // its record and data go at the next flush
    this.dirty.add(ov);
  }

  // ---- persistence --------------------------------------------------------------------------

  private record(ov: OvNode): NodeRec {
    const i = ov.inode;
    const r: NodeRec = {
      i: ov.stable, m: i.mode, u: i.uid, g: i.gid, s: i.dir === null ? i.size : 0, r: i.rdev,
      t: [i.atimeSec, i.atimeNsec, i.mtimeSec, i.mtimeNsec, i.ctimeSec, i.ctimeNsec],
    };
    if (i.target !== null) r.l = latin1(i.target);
    if (i.xattrs !== null && i.xattrs.size > 0) r.x = [...i.xattrs.entries()].map(([k, x]) => [k, latin1(x.value)]);
    if (ov.lowerPath !== null) r.p = ov.lowerPath;
    if (ov.data === Data.Upper) r.d = 1;
    if (i.dir === null && i.nlink + ov.bias !== 1) r.n = i.nlink + ov.bias;
    return r;
  }

  /** The directory's current entries (name key → inode number). */
  private listingOf(ov: OvNode): Map<string, number> {
    const l = new Map<string, number>();
    for (const [key, ent] of ov.inode.dir!.map) {
      const c = ent.inode === null ? undefined : this.byMem.get(ent.inode.node);
      if (c !== undefined) l.set(key, c.stable);
    }
    return l;
  }

  /** Write every pending change to the store; `durable` (default): and sync the store (fsync
   *  does this; closing a written file writes the journal without syncing, as close(2) does). */
  flush(durable = true): Promise<void> {
    const p = this.flushing.then(() => this.doFlush(durable));
    this.flushing = p.catch(() => {});
    return p;
  }

  private async doFlush(durable: boolean): Promise<void> {
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    const lines: string[] = [];
    const gone: number[] = [];
    for (const ov of this.dirty) {
      const links = ov.inode.nlink + ov.bias;
      const live = this.byStable.get(ov.stable) === ov && links > 0;
      if (live) {
        if (!ov.touched) continue;
        const rec = this.record(ov);
        this.records.set(ov.stable, rec);
        const prev = this.listings.get(ov.stable);
        if (ov.listing && ov.inode.dir !== null && prev === undefined) {
          // the first change of this directory: its complete listing
          const cur = this.listingOf(ov);
          lines.push(JSON.stringify({ n: { ...rec, e: [...cur] } }));
          this.listings.set(ov.stable, cur);
        } else {
          lines.push(JSON.stringify({ n: rec }));
          if (prev !== undefined && ov.pending !== null && ov.inode.dir !== null) {
            // the changed names only
            for (const k of ov.pending) {
              const ent = ov.inode.dir.map.get(k);
              const c = ent === undefined || ent.inode === null ? undefined : this.byMem.get(ent.inode.node);
              if (c !== undefined) {
                if (prev.get(k) !== c.stable) { prev.set(k, c.stable); lines.push(JSON.stringify({ a: [ov.stable, k, c.stable] })); }
              } else if (prev.delete(k)) lines.push(JSON.stringify({ r: [ov.stable, k] }));
            }
          }
        }
        ov.pending = null;
      } else if (links === 0) {
        this.listings.delete(ov.stable);
        if (this.records.delete(ov.stable)) lines.push(JSON.stringify({ d: ov.stable }));
        if (!this.byMem.has(ov.inode.node) && ov.data === Data.Upper) gone.push(ov.stable);
        if (this.byMem.has(ov.inode.node)) continue; // still open: its data goes when it is released
      }
    }
    this.dirty.clear();
    for (const ov of this.byMem.values()) if (ov.inode.nlink + ov.bias === 0) this.dirty.add(ov);
    if (lines.length > 0) {
      lines.push(JSON.stringify({ c: this.nextUpper }));
      await this.store.appendJournal(lines);
      this.journalLines += lines.length;
      this.counters.journalRecords = this.journalLines;
    }
    for (const id of gone) await this.store.remove(id);
    if (durable) await this.store.sync();
    this.counters.flushes++;
    if (this.journalLines > 256 && this.journalLines > 4 * this.liveSize()) await this.compact();
  }

  private async compact(): Promise<void> {
    const lines = [...this.records.values()].map((r) => {
      const l = this.listings.get(r.i);
      return JSON.stringify({ n: l === undefined ? r : { ...r, e: [...l] } });
    });
    lines.push(JSON.stringify({ c: this.nextUpper }));
    await this.store.rewriteJournal(lines);
    this.journalLines = lines.length;
    this.counters.journalRecords = this.journalLines;
  }

  /** Bytes of file data in the upper layer. */
  get upperBytes(): number { return this.store.usage(); }

  /**
   * Drop every change: the tree is the lower tree again. Only while no guest has the tree
   * attached (a guest's fids refer to objects that no longer exist).
   */
  async reset(): Promise<void> {
    await this.flushing;
    for (const ov of this.byMem.values()) {
      if (ov.lowerFh !== null) await v(this.lower.close(ov.lowerFh));
      if (ov.lowerNode !== null && ov.lowerNode !== this.lowerRoot.node) this.lower.forget(ov.lowerNode);
    }
    this.fhs.clear();
    await this.store.clear();
    await this.init([]);
  }

  // ---- export -------------------------------------------------------------------------------

  /**
   * The upper layer as a tar stream, in the OCI layer convention: changed and new objects with
   * their contents, `.wh.NAME` for a deleted lower name, `.wh..wh..opq` in a directory that
   * replaces a lower one. Walks the whole merged tree (populating it).
   */
  async *exportTar(): AsyncGenerator<Uint8Array> {
    await this.flush();
    const root = this.byMem.get(this.rootNode)!;
    const links = new Map<number, string>();
    const self = this;
    const mtime = (i: Inode) => i.mtimeSec;
    async function* emit(ov: OvNode, path: string): AsyncGenerator<Uint8Array> {
      const i = ov.inode;
      const type = i.mode & S_IFMT;
      const base = { name: path, mode: i.mode, uid: i.uid, gid: i.gid, mtime: mtime(i), size: 0 };
      if (type === S_IFDIR) { yield* tarHeader({ ...base, name: path + '/', type: '5' }); return; }
      if (type !== S_IFREG && type !== S_IFLNK) {
        const [ma, mi] = decodeDev(i.rdev);
        const t = type === 0o20000 ? '3' : type === 0o60000 ? '4' : '6';
        if (type === 0o140000) return; // sockets are not archived
        yield* tarHeader({ ...base, type: t, devmajor: ma, devminor: mi });
        return;
      }
      const prev = links.get(ov.stable);
      if (prev !== undefined) { yield* tarHeader({ ...base, type: '1', linkname: prev }); return; }
      if (i.nlink > 1) links.set(ov.stable, path);
      if (type === S_IFLNK) { yield* tarHeader({ ...base, type: '2', linkname: new TextDecoder().decode(i.target!) }); return; }
      yield* tarHeader({ ...base, size: i.size, type: '0' });
      const node = self.ns.hold(i);
      const fh = await v(self.open(node, O_RDONLY));
      self.ns.forget(node);
      if (fail(fh)) throw new P9Error(-fh);
      try {
        const buf = new Uint8Array(COPY_CHUNK);
        for (let off = 0; off < i.size;) {
          const n = await v(self.read(fh as Fh, off, [buf.subarray(0, Math.min(buf.length, i.size - off))]));
          if (fail(n) || n === 0) throw new P9Error(EIO, 'overlay: short read in export');
          yield buf.slice(0, n as number);
          off += n as number;
        }
      } finally { await v(self.close(fh as Fh)); }
      yield tarPad(i.size);
    }
    async function lowerAt(dir: Node | null, name: Uint8Array): Promise<Entry | null> {
      if (dir === null) return null;
      const r = await v(self.lower.lookup(dir, name));
      return fail(r) ? null : r as Entry;
    }
    async function* walk(ov: OvNode, path: string, lowerHere: Node | null, all: boolean): AsyncGenerator<Uint8Array> {
      await self.populate(ov);
      const i = ov.inode;
      const lowerNames = lowerHere !== null && !all ? await self.lowerNames(lowerHere) : [];
      const present = new Set<string>();
      for (const [key, ent] of i.dir!.map) {
        const c = ent.inode === null ? undefined : self.byMem.get(ent.inode.node);
        if (c === undefined) continue;
        present.add(key);
        const name = new TextDecoder().decode(bytes(key));
        const p = path === '' ? name : path + '/' + name;
        const lpath = (ov.lowerPath ?? '\0') + '/' + key;
        const inPlace = !all && c.lowerPath === lpath && lowerHere !== null;
        const isDir = c.inode.dir !== null;
        const le = isDir ? await lowerAt(lowerHere, bytes(key)) : null;
        if (isDir) {
          if (inPlace) {
            if (c.touched) yield* emit(c, p);
            yield* walk(c, p, le?.node ?? null, false);
          } else {
            yield* emit(c, p);
            if (le !== null && (le.mode & S_IFMT) === S_IFDIR) yield* tarHeader({ name: p + '/.wh..wh..opq', mode: 0o600, uid: 0, gid: 0, size: 0, mtime: 0, type: '0' });
            yield* walk(c, p, null, true);
          }
          if (le !== null) self.lower.forget(le.node);
        } else if (!inPlace || c.touched) yield* emit(c, p);
      }
      for (const n of lowerNames) {
        const key = latin1(n);
        if (present.has(key)) continue;
        const name = new TextDecoder().decode(n);
        yield* tarHeader({ name: (path === '' ? '' : path + '/') + '.wh.' + name, mode: 0o600, uid: 0, gid: 0, size: 0, mtime: 0, type: '0' });
      }
    }
    yield* walk(root, '', this.lowerRoot.node, false);
    yield TAR_END;
  }
}
