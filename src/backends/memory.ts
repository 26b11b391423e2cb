/**
 * MemoryBackend: an in-memory POSIX file system implementing the Backend interface.
 *
 * Browser-safe (no Node imports). Design notes:
 *  - Every object is an `Inode` whose fields include all Stat fields plus `node`, so lookup and
 *    getattr return the inode itself (no allocation). The Node handle equals the ino; inos come
 *    from a counter and are never reused.
 *  - Regular files are sparse: data lives in ≤ 64 KiB chunks carved from pooled 1 MiB slabs (Map chunk index → Uint8Array); an
 *    absent chunk, or the part past a short chunk's end, reads as zeros. A chunk grows by doubling
 *    (4 KiB → 64 KiB) so small files stay small. Bytes past `size` are always zero.
 *  - Directory entries are keyed by a latin1-style 1:1 byte→char string of the name. Each entry
 *    gets a per-directory sequence number (from 3) at insert; the readdir cookie of an entry is
 *    its seq ("." = 1, ".." = 2). Entries sit in a seq-ordered array with lazy deletion and
 *    amortised compaction; resuming is a binary search for the first seq > cookie.
 *  - Each inode tracks one (directory, name) of a current link (plus extra links for hard
 *    links), so rename(node) and remove(node) can find it.
 *  - An inode is freed when nlink = 0 and no Node references or open handles remain.
 *  - Errors are returned as negative Linux errno numbers.
 *  - snapshotState() / MemoryBackend.restoreState() save and rebuild the whole state (Node and Fh
 *    numbers included) for a VMM saving its state; they live at the end of the class.
 */
import {
  Backend, Created, DirSink, Entry, Fh, Node, SetAttr, Stat, StatFs,
  O_ACCMODE, O_APPEND, O_DIRECTORY, O_EXCL, O_TRUNC, AT_REMOVEDIR, XATTR_CREATE, XATTR_REPLACE,
  S_IFMT, S_IFSOCK, S_IFLNK, S_IFREG, S_IFBLK, S_IFDIR, S_IFCHR, S_IFIFO,
} from './backend.js';
import {
  EBADF, EBUSY, EEXIST, EFBIG, EINVAL, EISDIR, ELOOP, ENODATA, ENOENT, ENOSPC, ENOTDIR, ENXIO,
  ENOTEMPTY, EOPNOTSUPP, EPERM, ENAMETOOLONG, P9Error,
} from '../errno.js';

const CHUNK = 65536;
const PAGE = 4096;
const SLAB = 1 << 20;

/**
 * Chunk memory, carved from 1 MiB slabs in power-of-two size classes (4 KiB … 64 KiB); freed
 * chunks go back to their class and are zeroed when reused. One `new Uint8Array` per chunk
 * costs a zero-filled ArrayBuffer and its GC bookkeeping for every small file — the largest
 * cost of creating files here. Slabs are kept for reuse (the pool holds the peak usage).
 */
class ChunkPool {
  private free: Uint8Array[][] = [[], [], [], [], []];
  private slab: ArrayBuffer | null = null;
  private off = SLAB;

  static sizeFor(need: number): number {
    let n = PAGE;
    while (n < need && n < CHUNK) n *= 2;
    return n;
  }

  private static cls(len: number): number { return 31 - Math.clz32(len / PAGE); }

  take(len: number): Uint8Array {
    const f = this.free[ChunkPool.cls(len)].pop();
    if (f !== undefined) { f.fill(0); return f; }
    if (this.off + len > SLAB) { this.slab = new ArrayBuffer(SLAB); this.off = 0; }
    const c = new Uint8Array(this.slab!, this.off, len);
    this.off += len;
    return c;
  }

  give(c: Uint8Array): void { this.free[ChunkPool.cls(c.length)].push(c); }
}
const NO_ID = 0xFFFFFFFF;
const MAX_FILE_SIZE = Number.MAX_SAFE_INTEGER;
const NOMINAL_CAPACITY = 2 ** 40; // statfs figure when no capacity limit is set (1 TiB)
const NOMINAL_INODES = 2 ** 24;   // statfs figure when no inode limit is set
const V9FS_MAGIC = 0x01021997;
/** Linux NAME_MAX and PATH_MAX: a longer name is ENAMETOOLONG; a longer symlink target too */
const NAME_MAX = 255;
const PATH_MAX = 4096;
/** what an xattr costs against the capacity beyond its name and value bytes */
const XATTR_OVERHEAD = 64;
/** what a hard link beyond a file's first name costs against the capacity (entry + name) */
const LINK_COST = 320;
const FSID = 0x6d656d66;          // "memf"

// ---------------------------------------------------------------------------------------------
// Time: wall-clock seconds plus a monotonic nanosecond component.

const perf = (globalThis as { performance?: { now(): number } }).performance;
let baseMs = Date.now();
let basePerf = perf ? perf.now() : 0;
let nowSec = 0, nowNsec = 0;

function tick(): void {
  const wall = Date.now();
  let ms: number;
  if (perf) {
    ms = baseMs + (perf.now() - basePerf);
    if (ms - wall > 1000 || wall - ms > 1000) { // clock drift / jump: re-base
      baseMs = wall; basePerf = perf.now(); ms = wall;
    }
  } else {
    ms = wall;
  }
  const sec = Math.floor(ms / 1000);
  let nsec = Math.floor((ms - sec * 1000) * 1e6);
  if (nsec > 999999999) nsec = 999999999;
  if (sec > nowSec || (sec === nowSec && nsec > nowNsec)) { nowSec = sec; nowNsec = nsec; }
}

// ---------------------------------------------------------------------------------------------
// Names: bytes ↔ latin1-style keys (1 char per byte, exact round trip).

function keyOf(b: Uint8Array): string {
  const n = b.length;
  if (n <= 4096) return String.fromCharCode.apply(null, b as unknown as number[]);
  let s = '';
  for (let i = 0; i < n; i += 4096) {
    s += String.fromCharCode.apply(null, b.subarray(i, Math.min(n, i + 4096)) as unknown as number[]);
  }
  return s;
}

function bytesOfKey(k: string): Uint8Array {
  const b = new Uint8Array(k.length);
  for (let i = 0; i < k.length; i++) b[i] = k.charCodeAt(i);
  return b;
}

const utf8 = new TextEncoder();
const utf8d = new TextDecoder();

function toBytes(s: string | Uint8Array): Uint8Array {
  return typeof s === 'string' ? utf8.encode(s) : s;
}

// ---------------------------------------------------------------------------------------------

class DirEnt {
  constructor(
    public key: string,
    public name: Uint8Array,
    public inode: Inode | null, // null once removed (lazy deletion from the ordered list)
    public seq: number,
  ) {}
}

class DirData {
  map = new Map<string, DirEnt>();
  /** entries in seq order; removed ones have inode === null until compaction */
  list: DirEnt[] = [];
  dead = 0;
  nextSeq = 3;
}

interface Xattr { name: Uint8Array; value: Uint8Array }
interface LinkRef { dir: Inode; key: string }

/** One file-system object. Doubles as the Entry/Stat handed to the core. */
export class Inode implements Entry {
  node: number;
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink = 1;
  rdev = 0;
  size = 0;
  blksize = PAGE;
  blocks = 0;
  atimeSec: number; atimeNsec: number;
  mtimeSec: number; mtimeNsec: number;
  ctimeSec: number; ctimeNsec: number;

  /** Node references held by the core */
  refs = 0;
  /** open handles */
  opens = 0;
  /** one current link (for a directory: its parent and name) */
  linkDir: Inode | null = null;
  linkKey = '';
  /** further links of a hard-linked non-directory */
  extraLinks: LinkRef[] | null = null;
  dir: DirData | null = null;
  chunks: Map<number, Uint8Array> | null = null;
  /** bytes allocated in chunks */
  alloc = 0;
  target: Uint8Array | null = null;
  xattrs: Map<string, Xattr> | null = null;

  constructor(ino: number, mode: number, uid: number, gid: number) {
    this.node = ino;
    this.ino = ino;
    this.mode = mode;
    this.uid = uid;
    this.gid = gid;
    this.atimeSec = this.mtimeSec = this.ctimeSec = nowSec;
    this.atimeNsec = this.mtimeNsec = this.ctimeNsec = nowNsec;
  }
}

class OpenFile {
  constructor(
    public inode: Inode,
    public readable: boolean,
    public writable: boolean,
    public append: boolean,
  ) {}
}

export interface MemoryBackendOptions {
  /** Total bytes of file data, xattrs and hard links beyond a file's first name; writes,
   *  setxattr and link beyond it fail with ENOSPC, and statfs reports it. Default: unlimited. */
  capacityBytes?: number;
  /** Maximum number of inodes (root included); creation beyond it fails with ENOSPC. */
  maxInodes?: number;
  /** Owner used when the caller passes uid/gid 0xFFFFFFFF ("not given"). Default 0/0. */
  owner?: { uid: number; gid: number };
  /** Permission bits of the root directory. Default 0o755. */
  rootMode?: number;
}

/** A tree for MemoryBackend.fromTree: strings/Uint8Arrays are files, `{ symlink }` symlinks,
 *  other objects directories. (A directory holding only a file named "symlink" with string
 *  contents is read as a symlink: seed that one with writeFile.) */
export type MemoryTree = { [name: string]: MemoryTreeNode };
export type MemoryTreeNode = string | Uint8Array | { symlink: string } | MemoryTree;

function now(ino: Inode, a: boolean, m: boolean, c: boolean): void {
  if (a) { ino.atimeSec = nowSec; ino.atimeNsec = nowNsec; }
  if (m) { ino.mtimeSec = nowSec; ino.mtimeNsec = nowNsec; }
  if (c) { ino.ctimeSec = nowSec; ino.ctimeNsec = nowNsec; }
}

function statCopy(i: Inode): Stat {
  return {
    ino: i.ino, mode: i.mode, uid: i.uid, gid: i.gid, nlink: i.nlink, rdev: i.rdev, size: i.size,
    blksize: i.blksize, blocks: i.blocks,
    atimeSec: i.atimeSec, atimeNsec: i.atimeNsec, mtimeSec: i.mtimeSec, mtimeNsec: i.mtimeNsec,
    ctimeSec: i.ctimeSec, ctimeNsec: i.ctimeNsec,
  };
}

function isDotName(name: Uint8Array): number {
  if (name.length === 1 && name[0] === 0x2e) return 1;
  if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return 2;
  return 0;
}


/** Linux new_encode_dev, as the kernel computes it (u32). */
export function encodeDev(major: number, minor: number): number {
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

export class MemoryBackend implements Backend {
  private pool = new ChunkPool();
  private readonly nodes = new Map<number, Inode>();
  private readonly fhs = new Map<number, OpenFile>();
  private readonly freeFhs: number[] = [];
  private nextFh = 1;
  private nextIno = 1;
  private inodeCount = 0;
  private used = 0;
  /** bytes of xattrs (names, values, XATTR_OVERHEAD each) and of hard links beyond a file's
   *  first name (LINK_COST each), charged against the capacity too */
  private metaUsed = 0;
  private readonly capacity: number;
  private readonly maxInodes: number;
  private readonly ownerUid: number;
  private readonly ownerGid: number;
  readonly root: Inode;

  constructor(opts: MemoryBackendOptions = {}) {
    this.capacity = opts.capacityBytes ?? Infinity;
    this.maxInodes = opts.maxInodes ?? Infinity;
    this.ownerUid = opts.owner?.uid ?? 0;
    this.ownerGid = opts.owner?.gid ?? 0;
    tick();
    const root = this.newInode(S_IFDIR | ((opts.rootMode ?? 0o755) & 0o7777), NO_ID, NO_ID);
    if (root === null) throw new P9Error(ENOSPC, 'maxInodes too small');
    root.nlink = 2;
    root.dir = new DirData();
    root.size = PAGE;
    this.root = root;
  }

  // ---- internals ------------------------------------------------------------------------------

  private newInode(mode: number, uid: number, gid: number): Inode | null {
    if (this.inodeCount >= this.maxInodes) return null;
    const ino = this.nextIno++;
    const i = new Inode(ino, mode, uid === NO_ID ? this.ownerUid : uid, gid === NO_ID ? this.ownerGid : gid);
    this.nodes.set(ino, i);
    this.inodeCount++;
    return i;
  }

  private ref(n: Node): Inode | null {
    const i = this.nodes.get(n);
    return i !== undefined && i.refs > 0 ? i : null;
  }

  private maybeFree(i: Inode): void {
    if (i.nlink === 0 && i.refs === 0 && i.opens === 0 && i !== this.root) {
      if (this.nodes.delete(i.ino)) {
        this.inodeCount--;
        this.used -= i.alloc;
        i.alloc = 0;
        if (i.chunks !== null) for (const c of i.chunks.values()) this.pool.give(c);
        i.chunks = null;
        if (i.xattrs !== null) for (const x of i.xattrs.values()) this.metaUsed -= x.name.length + x.value.length + XATTR_OVERHEAD;
        i.xattrs = null;
        i.target = null;
      }
    }
  }

  /** A directory that can take new entries: ENOTDIR / ENOENT (removed). */
  private liveDir(d: Inode): number {
    if (d.dir === null) return -ENOTDIR;
    if (d.nlink === 0) return -ENOENT;
    return 0;
  }

  private addEntry(dir: Inode, key: string, name: Uint8Array, child: Inode): void {
    const d = dir.dir!;
    const ent = new DirEnt(key, name, child, d.nextSeq++);
    d.map.set(key, ent);
    d.list.push(ent);
    if (child.dir !== null) dir.nlink++;
    if (child.linkDir === null) { child.linkDir = dir; child.linkKey = key; }
    else (child.extraLinks ??= []).push({ dir, key });
  }

  private dropEntry(dir: Inode, ent: DirEnt): Inode {
    const d = dir.dir!;
    const child = ent.inode!;
    d.map.delete(ent.key);
    ent.inode = null;
    d.dead++;
    if (d.dead > 16 && d.dead * 2 > d.list.length) {
      d.list = d.list.filter((e) => e.inode !== null);
      d.dead = 0;
    }
    if (child.dir !== null) dir.nlink--;
    // forget this link
    if (child.linkDir === dir && child.linkKey === ent.key) {
      const x = child.extraLinks !== null ? child.extraLinks.pop() : undefined;
      if (x !== undefined) { child.linkDir = x.dir; child.linkKey = x.key; }
      else { child.linkDir = null; child.linkKey = ''; }
    } else if (child.extraLinks !== null) {
      const xs = child.extraLinks;
      for (let k = 0; k < xs.length; k++) {
        if (xs[k].dir === dir && xs[k].key === ent.key) { xs.splice(k, 1); break; }
      }
    }
    if (child.extraLinks !== null && child.extraLinks.length === 0) child.extraLinks = null;
    return child;
  }

  /** Remove a name for good (unlink/rmdir/replaced by rename). Caller has ticked. */
  private unlinkEnt(dir: Inode, ent: DirEnt): void {
    const child = this.dropEntry(dir, ent);
    if (child.dir !== null) child.nlink = 0;
    else { if (child.nlink > 1) this.metaUsed -= LINK_COST; child.nlink--; }
    now(child, false, false, true);
    now(dir, false, true, true);
    this.maybeFree(child);
  }

  private growChunk(i: Inode, ci: number, old: Uint8Array | undefined, need: number): Uint8Array | null {
    const oldLen = old === undefined ? 0 : old.length;
    let len = ChunkPool.sizeFor(Math.max(need, oldLen * 2));
    const used = this.used + this.metaUsed;
    if (used + len - oldLen > this.capacity) len = ChunkPool.sizeFor(need); // no room to double
    if (used + len - oldLen > this.capacity) return null;
    const c = this.pool.take(len);
    if (old !== undefined) { c.set(old); this.pool.give(old); }
    i.chunks!.set(ci, c);
    this.used += len - oldLen;
    i.alloc += len - oldLen;
    i.blocks = i.alloc / 512;
    return c;
  }

  /** Write buffers at pos; returns bytes written or -errno. Updates size, not times. */
  private writeData(i: Inode, pos: number, src: Uint8Array[]): number {
    let total = 0;
    for (let k = 0; k < src.length; k++) total += src[k].length;
    if (total === 0) return 0;
    if (pos + total > MAX_FILE_SIZE) return -EFBIG;
    const chunks = i.chunks!;
    const start = pos;
    outer: for (let k = 0; k < src.length; k++) {
      const buf = src[k];
      const blen = buf.length;
      let bo = 0;
      while (bo < blen) {
        const ci = Math.floor(pos / CHUNK);
        const co = pos - ci * CHUNK;
        let n = CHUNK - co;
        if (n > blen - bo) n = blen - bo;
        let c = chunks.get(ci);
        if (c === undefined || c.length < co + n) {
          const g = this.growChunk(i, ci, c, co + n);
          if (g === null) break outer;
          c = g;
        }
        c.set(n === blen ? buf : buf.subarray(bo, bo + n), co);
        bo += n;
        pos += n;
      }
    }
    const written = pos - start;
    if (written === 0) return -ENOSPC;
    if (pos > i.size) i.size = pos;
    return written;
  }

  private truncate(i: Inode, newSize: number): void {
    const chunks = i.chunks!;
    if (newSize < i.size) {
      const keep = Math.ceil(newSize / CHUNK);
      let freed = 0;
      for (const [ci, c] of chunks) {
        if (ci >= keep) { chunks.delete(ci); freed += c.length; this.pool.give(c); }
      }
      this.used -= freed;
      i.alloc -= freed;
      i.blocks = i.alloc / 512;
      if (keep > 0) {
        const c = chunks.get(keep - 1);
        if (c !== undefined) {
          const co = newSize - (keep - 1) * CHUNK;
          if (co < c.length) c.fill(0, co);
        }
      }
    }
    i.size = newSize;
  }

  private doOpen(i: Inode, flags: number): number {
    const acc = flags & O_ACCMODE;
    if (acc === O_ACCMODE) return -EINVAL;
    const readable = acc !== 1;
    const writable = acc !== 0;
    const type = i.mode & S_IFMT;
    if (type === S_IFDIR) {
      if (writable) return -EISDIR;
    } else {
      if (flags & O_DIRECTORY) return -ENOTDIR;
      if (type === S_IFLNK) return -ELOOP;
      // device nodes, FIFOs and sockets are never opened, as on the host-backed backends
      if (type !== S_IFREG) return -ENXIO;
      if ((flags & O_TRUNC) && writable) {
        tick();
        this.truncate(i, 0);
        now(i, false, true, true);
      }
    }
    const f = new OpenFile(i, readable, writable, (flags & O_APPEND) !== 0);
    const fh = this.freeFhs.length > 0 ? this.freeFhs.pop()! : this.nextFh++;
    this.fhs.set(fh, f);
    i.opens++;
    return fh;
  }

  /** Common checks for creating `name` in `dir`; returns the key or a negative errno. */
  private newName(d: Inode, name: Uint8Array): string | number {
    const e = this.liveDir(d);
    if (e !== 0) return e;
    if (name.length > NAME_MAX) return -ENAMETOOLONG;
    if (isDotName(name)) return -EEXIST;
    const key = keyOf(name);
    if (d.dir!.map.has(key)) return -EEXIST;
    return key;
  }

  private makeChild(d: Inode, key: string, name: Uint8Array, mode: number, uid: number, gid: number): Inode | number {
    tick();
    const i = this.newInode(mode, uid, gid);
    if (i === null) return -ENOSPC;
    this.addEntry(d, key, name.slice(), i);
    now(d, false, true, true);
    return i;
  }

  private findLink(i: Inode): { dir: Inode; ent: DirEnt } | number {
    if (i === this.root) return -EBUSY;
    const dir = i.linkDir;
    if (dir === null || i.nlink === 0) return -ENOENT;
    const ent = dir.dir!.map.get(i.linkKey);
    if (ent === undefined || ent.inode !== i) return -ENOENT;
    return { dir, ent };
  }

  private doRename(srcDir: Inode, ent: DirEnt, dstDir: Inode, newname: Uint8Array): number {
    const e = this.liveDir(dstDir);
    if (e !== 0) return e;
    if (newname.length > NAME_MAX) return -ENAMETOOLONG;
    if (isDotName(newname)) return -EBUSY;
    const src = ent.inode!;
    const dkey = keyOf(newname);
    const dst = dstDir.dir!.map.get(dkey);
    if (dst !== undefined && dst.inode === src) return 0;
    // A target that is an ancestor of the source (its own parent included) → ENOTEMPTY, checked
    // before the type rules, as Linux's rename(2) does (the lock_rename "trap").
    if (dst !== undefined && dst.inode!.dir !== null) {
      for (let p: Inode | null = srcDir; p !== null; p = p.linkDir) {
        if (p === dst.inode) return -ENOTEMPTY;
        if (p === this.root) break;
      }
    }
    if (src.dir !== null) {
      for (let p: Inode | null = dstDir; p !== null; p = p.linkDir) {
        if (p === src) return -EINVAL;
      }
    }
    if (dst !== undefined) {
      const t = dst.inode!;
      if (src.dir !== null && t.dir === null) return -ENOTDIR;
      if (src.dir === null && t.dir !== null) return -EISDIR;
      if (t.dir !== null && t.dir.map.size > 0) return -ENOTEMPTY;
    }
    tick();
    if (dst !== undefined) this.unlinkEnt(dstDir, dst);
    this.dropEntry(srcDir, ent);
    this.addEntry(dstDir, dkey, newname.slice(), src);
    now(src, false, false, true);
    now(srcDir, false, true, true);
    now(dstDir, false, true, true);
    return 0;
  }

  // ---- Backend ---------------------------------------------------------------------------------

  attach(aname: Uint8Array, _uid: number): Entry | number {
    let i = this.root;
    if (aname.length > 0) {
      for (const part of keyOf(aname).split('/')) {
        if (part === '' || part === '.') continue;
        if (i.dir === null) return -ENOTDIR;
        if (part === '..') { if (i.linkDir !== null) i = i.linkDir; continue; }
        const ent = i.dir.map.get(part);
        if (ent === undefined) return -ENOENT;
        i = ent.inode!;
      }
      if (i.dir === null) return -ENOTDIR;
    }
    i.refs++;
    return i;
  }

  lookup(dir: Node, name: Uint8Array): Entry | number {
    const d = this.ref(dir);
    if (d === null) return -EBADF;
    const dd = d.dir;
    if (dd === null) return -ENOTDIR;
    if (name.length > NAME_MAX) return -ENAMETOOLONG;
    let i: Inode;
    const dot = isDotName(name);
    if (dot === 1) i = d;
    else if (dot === 2) {
      if (d === this.root) i = d;
      else if (d.linkDir === null) return -ENOENT;
      else i = d.linkDir;
    } else {
      const ent = dd.map.get(keyOf(name));
      if (ent === undefined) return -ENOENT;
      i = ent.inode!;
    }
    i.refs++;
    return i;
  }

  dup(node: Node): Entry | number {
    const i = this.ref(node);
    if (i === null) return -EBADF;
    i.refs++;
    return i;
  }

  getattr(node: Node): Stat | number {
    const i = this.ref(node);
    return i === null ? -EBADF : i;
  }

  setattr(node: Node, attr: SetAttr): number {
    const i = this.ref(node);
    if (i === null) return -EBADF;
    if (attr.size !== undefined) {
      const t = i.mode & S_IFMT;
      if (t === S_IFDIR) return -EISDIR;
      if (t !== S_IFREG) return -EINVAL;
      if (attr.size < 0 || attr.size > MAX_FILE_SIZE) return -EFBIG;
    }
    // Linux has no lchmod: a mode change on a symlink is EOPNOTSUPP (fchmodat AT_SYMLINK_NOFOLLOW).
    if (attr.mode !== undefined && (i.mode & S_IFMT) === S_IFLNK) return -EOPNOTSUPP;
    tick();
    let changed = false;
    if (attr.mode !== undefined) { i.mode = (i.mode & S_IFMT) | (attr.mode & 0o7777); changed = true; }
    if (attr.uid !== undefined && attr.uid !== NO_ID) { i.uid = attr.uid; changed = true; }
    if (attr.gid !== undefined && attr.gid !== NO_ID) { i.gid = attr.gid; changed = true; }
    if (attr.size !== undefined) {
      this.truncate(i, attr.size);
      now(i, false, true, false);
      changed = true;
    }
    if (attr.atime !== undefined) { i.atimeSec = attr.atime[0]; i.atimeNsec = attr.atime[1]; changed = true; }
    if (attr.mtime !== undefined) { i.mtimeSec = attr.mtime[0]; i.mtimeNsec = attr.mtime[1]; changed = true; }
    if (changed || attr.ctime) now(i, false, false, true);
    return 0;
  }

  open(node: Node, flags: number): Fh | number {
    const i = this.ref(node);
    if (i === null) return -EBADF;
    return this.doOpen(i, flags);
  }

  create(dir: Node, name: Uint8Array, flags: number, mode: number, uid: number, gid: number): Created | number {
    const d = this.ref(dir);
    if (d === null) return -EBADF;
    const e = this.liveDir(d);
    if (e !== 0) return e;
    if (name.length > NAME_MAX) return -ENAMETOOLONG;
    if (isDotName(name)) return -EEXIST;
    if ((flags & O_ACCMODE) === O_ACCMODE) return -EINVAL;
    const key = keyOf(name);
    const ent = d.dir!.map.get(key);
    let i: Inode;
    if (ent !== undefined) {
      if (flags & O_EXCL) return -EEXIST;
      i = ent.inode!;
      if (i.dir !== null) return -EISDIR;
    } else {
      const c = this.makeChild(d, key, name, S_IFREG | (mode & 0o7777), uid, gid);
      if (typeof c === 'number') return c;
      i = c;
      i.chunks = new Map();
    }
    const fh = this.doOpen(i, flags);
    if (fh < 0) { this.maybeFree(i); return fh; }
    i.refs++;
    const out = statCopy(i) as Created;
    out.node = i.node;
    out.fh = fh;
    return out;
  }

  read(fh: Fh, offset: number, dst: Uint8Array[]): number {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    const i = f.inode;
    if (i.dir !== null) return -EISDIR;
    if (!f.readable) return -EBADF;
    const chunks = i.chunks;
    if (chunks === null) return -EINVAL;
    const size = i.size;
    if (offset >= size) return 0;
    let pos = offset;
    for (let k = 0; k < dst.length && pos < size; k++) {
      const buf = dst[k];
      const blen = buf.length;
      let bo = 0;
      while (bo < blen && pos < size) {
        const ci = Math.floor(pos / CHUNK);
        const co = pos - ci * CHUNK;
        let n = CHUNK - co;
        if (n > blen - bo) n = blen - bo;
        if (n > size - pos) n = size - pos;
        const c = chunks.get(ci);
        if (c === undefined || co >= c.length) {
          buf.fill(0, bo, bo + n);
        } else if (co + n <= c.length) {
          buf.set(c.subarray(co, co + n), bo);
        } else {
          const m = c.length - co;
          buf.set(c.subarray(co), bo);
          buf.fill(0, bo + m, bo + n);
        }
        bo += n;
        pos += n;
      }
    }
    return pos - offset;
  }

  write(fh: Fh, offset: number, src: Uint8Array[]): number {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    const i = f.inode;
    if (i.dir !== null) return -EISDIR;
    if (!f.writable) return -EBADF;
    if (i.chunks === null) return -EINVAL;
    const r = this.writeData(i, f.append ? i.size : offset, src);
    if (r > 0) { tick(); now(i, false, true, true); }
    return r;
  }

  readdir(fh: Fh, cookie: number, sink: DirSink): number {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    const d = f.inode;
    const dd = d.dir;
    if (dd === null) return -ENOTDIR;
    if (cookie < 1) {
      if (!sink.push(d.ino, 1, S_IFDIR >> 12, DOT)) return 0;
    }
    if (cookie < 2) {
      const p = d === this.root || d.linkDir === null ? d : d.linkDir;
      if (!sink.push(p.ino, 2, S_IFDIR >> 12, DOTDOT)) return 0;
    }
    const list = dd.list;
    let lo = 0, hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid].seq <= cookie) lo = mid + 1; else hi = mid;
    }
    for (let k = lo; k < list.length; k++) {
      const e = list[k];
      const i = e.inode;
      if (i === null) continue;
      if (!sink.push(i.ino, e.seq, (i.mode >> 12) & 15, e.name)) break;
      if (dd.list !== list) break; // modified from inside the sink: stop safely
    }
    return 0;
  }

  readlink(node: Node): Uint8Array | number {
    const i = this.ref(node);
    if (i === null) return -EBADF;
    if (i.target === null) return -EINVAL;
    return i.target;
  }

  mkdir(dir: Node, name: Uint8Array, mode: number, uid: number, gid: number): Stat | number {
    const d = this.ref(dir);
    if (d === null) return -EBADF;
    const key = this.newName(d, name);
    if (typeof key === 'number') return key;
    const c = this.makeChild(d, key, name, S_IFDIR | (mode & 0o7777), uid, gid);
    if (typeof c === 'number') return c;
    // addEntry counted the child as a subdirectory only if c.dir was set; set it first next time
    c.dir = new DirData();
    c.nlink = 2;
    c.size = PAGE;
    d.nlink++;
    return c;
  }

  symlink(dir: Node, name: Uint8Array, target: Uint8Array, uid: number, gid: number): Stat | number {
    const d = this.ref(dir);
    if (d === null) return -EBADF;
    // as Linux symlink(2): an empty target is ENOENT, one longer than PATH_MAX ENAMETOOLONG;
    // a NUL cannot reach Linux through a C string, so a target holding one is EINVAL
    if (target.length === 0) return -ENOENT;
    if (target.length >= PATH_MAX) return -ENAMETOOLONG;
    if (target.indexOf(0) >= 0) return -EINVAL;
    const key = this.newName(d, name);
    if (typeof key === 'number') return key;
    const c = this.makeChild(d, key, name, S_IFLNK | 0o777, uid, gid);
    if (typeof c === 'number') return c;
    c.target = target.slice();
    c.size = target.length;
    return c;
  }

  mknod(dir: Node, name: Uint8Array, mode: number, major: number, minor: number, uid: number, gid: number): Stat | number {
    const d = this.ref(dir);
    if (d === null) return -EBADF;
    let type = mode & S_IFMT;
    if (type === 0) type = S_IFREG;
    if (type === S_IFDIR) return -EPERM;
    if (type !== S_IFREG && type !== S_IFCHR && type !== S_IFBLK && type !== S_IFIFO && type !== S_IFSOCK) return -EINVAL;
    const key = this.newName(d, name);
    if (typeof key === 'number') return key;
    const c = this.makeChild(d, key, name, type | (mode & 0o7777), uid, gid);
    if (typeof c === 'number') return c;
    if (type === S_IFREG) c.chunks = new Map();
    if (type === S_IFCHR || type === S_IFBLK) c.rdev = encodeDev(major, minor);
    return c;
  }

  link(dir: Node, name: Uint8Array, target: Node): number {
    const d = this.ref(dir);
    const t = this.ref(target);
    if (d === null || t === null) return -EBADF;
    if (d.dir === null) return -ENOTDIR; // the new name's parent is resolved first, as link(2) does
    if (t.dir !== null) return -EPERM;
    const key = this.newName(d, name);
    if (typeof key === 'number') return key;
    if (t.nlink === 0) return -ENOENT;
    if (this.used + this.metaUsed + LINK_COST > this.capacity) return -ENOSPC;
    tick();
    this.addEntry(d, key, name.slice(), t);
    t.nlink++;
    this.metaUsed += LINK_COST;
    now(t, false, false, true);
    now(d, false, true, true);
    return 0;
  }

  renameat(olddir: Node, oldname: Uint8Array, newdir: Node, newname: Uint8Array): number {
    const od = this.ref(olddir);
    const nd = this.ref(newdir);
    if (od === null || nd === null) return -EBADF;
    if (od.dir === null || nd.dir === null) return -ENOTDIR;
    if (isDotName(oldname)) return -EBUSY;
    const ent = od.dir.map.get(keyOf(oldname));
    if (ent === undefined) return -ENOENT;
    return this.doRename(od, ent, nd, newname);
  }

  rename(node: Node, newdir: Node, newname: Uint8Array): number {
    const i = this.ref(node);
    const nd = this.ref(newdir);
    if (i === null || nd === null) return -EBADF;
    if (nd.dir === null) return -ENOTDIR;
    const l = this.findLink(i);
    if (typeof l === 'number') return l;
    return this.doRename(l.dir, l.ent, nd, newname);
  }

  unlinkat(dir: Node, name: Uint8Array, flags: number): number {
    const d = this.ref(dir);
    if (d === null) return -EBADF;
    if (d.dir === null) return -ENOTDIR;
    const dot = isDotName(name);
    if (dot === 1) return -EINVAL;
    if (dot === 2) return -ENOTEMPTY;
    const ent = d.dir.map.get(keyOf(name));
    if (ent === undefined) return -ENOENT;
    const c = ent.inode!;
    if (flags & AT_REMOVEDIR) {
      if (c.dir === null) return -ENOTDIR;
      if (c.dir.map.size > 0) return -ENOTEMPTY;
    } else if (c.dir !== null) {
      return -EISDIR;
    }
    tick();
    this.unlinkEnt(d, ent);
    return 0;
  }

  remove(node: Node): number {
    const i = this.ref(node);
    if (i === null) return -EBADF;
    const l = this.findLink(i);
    if (typeof l === 'number') return l;
    if (i.dir !== null && i.dir.map.size > 0) return -ENOTEMPTY;
    tick();
    this.unlinkEnt(l.dir, l.ent);
    return 0;
  }

  fsync(fh: Fh, _datasync: boolean): number {
    return this.fhs.has(fh) ? 0 : -EBADF;
  }

  statfs(node: Node): StatFs | number {
    if (this.ref(node) === null) return -EBADF;
    const used = this.used + this.metaUsed;
    const total = this.capacity === Infinity ? Math.max(NOMINAL_CAPACITY, used) : this.capacity;
    const blocks = Math.floor(total / PAGE);
    const bfree = Math.max(0, Math.floor((total - used) / PAGE));
    const files = this.maxInodes === Infinity ? Math.max(NOMINAL_INODES, this.inodeCount) : this.maxInodes;
    return {
      type: V9FS_MAGIC, bsize: PAGE, blocks, bfree, bavail: bfree,
      files, ffree: Math.max(0, files - this.inodeCount), fsid: FSID, namelen: 255,
    };
  }

  getxattr(node: Node, name: Uint8Array): Uint8Array | number {
    const i = this.ref(node);
    if (i === null) return -EBADF;
    const x = i.xattrs === null ? undefined : i.xattrs.get(keyOf(name));
    return x === undefined ? -ENODATA : x.value;
  }

  listxattr(node: Node): Uint8Array[] | number {
    const i = this.ref(node);
    if (i === null) return -EBADF;
    const out: Uint8Array[] = [];
    if (i.xattrs !== null) for (const x of i.xattrs.values()) out.push(x.name);
    return out;
  }

  setxattr(node: Node, name: Uint8Array, value: Uint8Array, flags: number): number {
    const i = this.ref(node);
    if (i === null) return -EBADF;
    if (name.length === 0) return -EINVAL;
    if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) return -EINVAL;
    const key = keyOf(name);
    const has = i.xattrs !== null && i.xattrs.has(key);
    if ((flags & XATTR_CREATE) && has) return -EEXIST;
    if ((flags & XATTR_REPLACE) && !has) return -ENODATA;
    const old = has ? i.xattrs!.get(key)!.value.length : -(name.length + XATTR_OVERHEAD);
    const grow = value.length - old;
    if (grow > 0 && this.used + this.metaUsed + grow > this.capacity) return -ENOSPC;
    this.metaUsed += grow;
    (i.xattrs ??= new Map()).set(key, { name: name.slice(), value: value.slice() });
    tick();
    now(i, false, false, true);
    return 0;
  }

  removexattr(node: Node, name: Uint8Array): number {
    const i = this.ref(node);
    if (i === null) return -EBADF;
    const key = keyOf(name);
    const x = i.xattrs === null ? undefined : i.xattrs.get(key);
    if (x === undefined) return -ENODATA;
    i.xattrs!.delete(key);
    this.metaUsed -= x.name.length + x.value.length + XATTR_OVERHEAD;
    if (i.xattrs!.size === 0) i.xattrs = null;
    tick();
    now(i, false, false, true);
    return 0;
  }

  close(fh: Fh): number {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    this.fhs.delete(fh);
    this.freeFhs.push(fh);
    f.inode.opens--;
    this.maybeFree(f.inode);
    return 0;
  }

  forget(node: Node): void {
    const i = this.ref(node);
    if (i === null) return;
    i.refs--;
    if (i.refs === 0) this.maybeFree(i);
  }

  /** A new reference to an object known by its Inode (given back with forget): for wrappers
   *  that keep Inode objects of their own (the overlay), e.g. to link an unreferenced object. */
  hold(i: Inode): Node {
    if (this.nodes.get(i.ino) !== i) return -EBADF;
    i.refs++;
    return i.node;
  }

  // ---- host-side seeding and inspection (paths relative to the root, '/'-separated) ---------

  /** Number of live inodes (root included). */
  get inodes(): number { return this.inodeCount; }
  /** Bytes of file data allocated. */
  get usedBytes(): number { return this.used; }
  /** Number of open handles. */
  get openHandles(): number { return this.fhs.size; }

  private static parts(path: string): string[] {
    const out: string[] = [];
    for (const p of path.split('/')) {
      if (p === '' || p === '.') continue;
      if (p === '..') throw new P9Error(EINVAL, `'..' not allowed in seeding path: ${path}`);
      out.push(keyOf(utf8.encode(p)));
    }
    return out;
  }

  private resolve(path: string): Inode {
    let i = this.root;
    for (const k of MemoryBackend.parts(path)) {
      if (i.dir === null) throw new P9Error(ENOTDIR, `not a directory: ${path}`);
      const ent = i.dir.map.get(k);
      if (ent === undefined) throw new P9Error(ENOENT, `no such file: ${path}`);
      i = ent.inode!;
    }
    return i;
  }

  private dirFor(path: string): { dir: Inode; key: string } {
    const ps = MemoryBackend.parts(path);
    if (ps.length === 0) throw new P9Error(EEXIST, `path names the root: ${path}`);
    const key = ps.pop()!;
    return { dir: this.mkdirParts(ps, 0o755), key };
  }

  private mkdirParts(ps: string[], mode: number): Inode {
    let i = this.root;
    for (const k of ps) {
      if (i.dir === null) throw new P9Error(ENOTDIR, 'not a directory');
      const ent = i.dir.map.get(k);
      if (ent !== undefined) { i = ent.inode!; continue; }
      const c = this.makeChild(i, k, bytesOfKey(k), S_IFDIR | (mode & 0o7777), NO_ID, NO_ID);
      if (typeof c === 'number') throw new P9Error(-c);
      c.dir = new DirData();
      c.nlink = 2;
      c.size = PAGE;
      i.nlink++;
      i = c;
    }
    if (i.dir === null) throw new P9Error(ENOTDIR, 'not a directory');
    return i;
  }

  /** Create a directory and its missing parents. */
  mkdirp(path: string, mode = 0o755): void {
    this.mkdirParts(MemoryBackend.parts(path), mode);
  }

  /** Create or replace a regular file's contents (parents are created). */
  writeFile(path: string, data: Uint8Array | string, mode = 0o644): void {
    const { dir, key } = this.dirFor(path);
    const ent = dir.dir!.map.get(key);
    let i: Inode;
    if (ent !== undefined) {
      i = ent.inode!;
      if ((i.mode & S_IFMT) !== S_IFREG) throw new P9Error(EEXIST, `not a regular file: ${path}`);
      tick();
      this.truncate(i, 0);
      now(i, false, true, true);
    } else {
      const c = this.makeChild(dir, key, bytesOfKey(key), S_IFREG | (mode & 0o7777), NO_ID, NO_ID);
      if (typeof c === 'number') throw new P9Error(-c);
      i = c;
      i.chunks = new Map();
    }
    const bytes = toBytes(data);
    if (bytes.length > 0) {
      const r = this.writeData(i, 0, [bytes]);
      if (r < 0) throw new P9Error(-r, `writeFile ${path}`);
      if (r < bytes.length) throw new P9Error(ENOSPC, `writeFile ${path}`);
    }
  }

  /** Create a symbolic link at `path` pointing to `target`. */
  symlinkAt(path: string, target: string | Uint8Array): void {
    const { dir, key } = this.dirFor(path);
    if (dir.dir!.map.has(key)) throw new P9Error(EEXIST, `exists: ${path}`);
    const c = this.makeChild(dir, key, bytesOfKey(key), S_IFLNK | 0o777, NO_ID, NO_ID);
    if (typeof c === 'number') throw new P9Error(-c);
    c.target = toBytes(target).slice();
    c.size = c.target.length;
  }

  /** Create a device node, FIFO or socket at `path` (its metadata only: it is never opened). */
  mknodAt(path: string, mode: number, major = 0, minor = 0): void {
    const type = mode & S_IFMT;
    if (type !== S_IFCHR && type !== S_IFBLK && type !== S_IFIFO && type !== S_IFSOCK) throw new P9Error(EINVAL, `mknod ${path}`);
    const { dir, key } = this.dirFor(path);
    if (dir.dir!.map.has(key)) throw new P9Error(EEXIST, `exists: ${path}`);
    const c = this.makeChild(dir, key, bytesOfKey(key), type | (mode & 0o7777), NO_ID, NO_ID);
    if (typeof c === 'number') throw new P9Error(-c);
    if (type === S_IFCHR || type === S_IFBLK) c.rdev = encodeDev(major, minor);
  }

  /** Contents of a regular file. */
  readFileSync(path: string): Uint8Array {
    const i = this.resolve(path);
    if (i.chunks === null) throw new P9Error(i.dir !== null ? EISDIR : EINVAL, `not a regular file: ${path}`);
    if (i.size > 2 ** 31) throw new P9Error(EFBIG, `too large to read at once: ${path}`);
    const out = new Uint8Array(i.size);
    for (const [ci, c] of i.chunks) {
      const start = ci * CHUNK;
      if (start >= i.size) continue;
      out.set(c.subarray(0, Math.min(c.length, i.size - start)), start);
    }
    return out;
  }

  /** Contents of a regular file decoded as UTF-8. */
  readTextSync(path: string): string {
    return utf8d.decode(this.readFileSync(path));
  }

  /** Names in a directory (UTF-8 decoded), in readdir order. */
  readdirSync(path: string): string[] {
    const i = this.resolve(path);
    if (i.dir === null) throw new P9Error(ENOTDIR, `not a directory: ${path}`);
    const out: string[] = [];
    for (const e of i.dir.list) if (e.inode !== null) out.push(utf8d.decode(e.name));
    return out;
  }

  /** Attributes of the object at `path` (a snapshot), or null when absent. */
  statSync(path: string): Stat | null {
    try { return statCopy(this.resolve(path)); } catch { return null; }
  }

  /** Target of the symlink at `path`. */
  readlinkSync(path: string): string {
    const i = this.resolve(path);
    if (i.target === null) throw new P9Error(EINVAL, `not a symlink: ${path}`);
    return utf8d.decode(i.target);
  }

  /** Build a backend from a nested object tree. */
  static fromTree(tree: MemoryTree, opts?: MemoryBackendOptions): MemoryBackend {
    const b = new MemoryBackend(opts);
    b.addTree('', tree);
    return b;
  }

  /** Add a nested object tree under `path` ('' = root). */
  addTree(path: string, tree: MemoryTree): void {
    this.mkdirp(path);
    for (const name of Object.keys(tree)) {
      const v = tree[name];
      const p = path === '' ? name : `${path}/${name}`;
      if (typeof v === 'string' || v instanceof Uint8Array) this.writeFile(p, v);
      else if (isSymlinkSpec(v)) this.symlinkAt(p, v.symlink);
      else this.addTree(p, v as MemoryTree);
    }
  }

  // ---- snapshot / restore (a VMM saving its state) -------------------------------------------
  //
  // Binary format, little-endian (version 1):
  //   header   "V9PMEMFS" · u32 version · u32 reserved (0) · u64 body length
  //   body     globals · free fh list · inodes (ascending node) · open handles (fh table order)
  //   trailer  u32 CRC-32 (IEEE) of header + body
  // `bytes` = u32 length + raw bytes; `u53` = u64 holding a safe integer; times (sec, nsec) are
  // f64 (kept exactly whatever the core passed).
  // A file's data is its chunks as they are allocated (index, allocated length, then the bytes
  // from the first to the last non-zero one, raw): holes stay holes, zero runs at a chunk's ends
  // cost nothing, and capacity accounting continues exactly.
  // Directory entries are kept in readdir order with their cookies (seq) and the directory's
  // next cookie; removed entries still waiting for compaction are not kept (they are invisible).

  /**
   * Serialize the whole file system state: every live inode (unlinked-but-referenced ones
   * included) with its data, links, xattrs and the core's Node references, the open handles and
   * the handle/inode counters. `MemoryBackend.restoreState` rebuilds an identical backend, so
   * Node and Fh numbers held by the core stay valid. Deterministic: equal states give equal bytes.
   */
  snapshotState(): Uint8Array {
    const w = new SnapWriter();
    w.raw(SNAP_MAGIC);
    w.u32(SNAP_VERSION);
    w.u32(0);
    w.u32(0); w.u32(0); // body length, patched below
    w.f64(this.capacity);
    w.f64(this.maxInodes);
    w.u32(this.ownerUid);
    w.u32(this.ownerGid);
    w.u53(this.nextIno);
    w.u32(this.nextFh);
    w.u53(this.used);
    w.u32(this.inodeCount);
    w.u32(this.root.node);
    w.u32(this.freeFhs.length);
    for (const fh of this.freeFhs) w.u32(fh);
    w.u32(this.nodes.size);
    for (const i of this.nodes.values()) {
      w.u32(i.node);
      w.u32(i.mode); w.u32(i.uid); w.u32(i.gid); w.u32(i.nlink); w.u32(i.rdev);
      w.u53(i.size);
      w.f64(i.atimeSec); w.f64(i.atimeNsec);
      w.f64(i.mtimeSec); w.f64(i.mtimeNsec);
      w.f64(i.ctimeSec); w.f64(i.ctimeNsec);
      w.u32(i.refs);
      w.u32(i.linkDir === null ? 0 : i.linkDir.node);
      w.bytes(bytesOfKey(i.linkKey));
      const xl = i.extraLinks;
      w.u32(xl === null ? 0 : xl.length);
      if (xl !== null) for (const l of xl) { w.u32(l.dir.node); w.bytes(bytesOfKey(l.key)); }
      w.u32(i.xattrs === null ? 0 : i.xattrs.size);
      if (i.xattrs !== null) for (const x of i.xattrs.values()) { w.bytes(x.name); w.bytes(x.value); }
      const kind = i.dir !== null ? KIND_DIR : i.chunks !== null ? KIND_FILE : i.target !== null ? KIND_SYMLINK : KIND_NONE;
      w.u8(kind);
      if (kind === KIND_FILE) {
        const chunks = i.chunks!;
        w.u32(chunks.size);
        for (const [ci, c] of chunks) {
          let hi = c.length, lo = 0;
          while (hi > 0 && c[hi - 1] === 0) hi--;
          while (lo < hi && c[lo] === 0) lo++;
          w.u53(ci); w.u32(c.length); w.u32(lo); w.u32(hi - lo); w.raw(c.subarray(lo, hi));
        }
      } else if (kind === KIND_SYMLINK) {
        w.bytes(i.target!);
      } else if (kind === KIND_DIR) {
        const d = i.dir!;
        w.u53(d.nextSeq);
        w.u32(d.map.size);
        for (const e of d.list) {
          if (e.inode === null) continue;
          w.u53(e.seq); w.u32(e.inode.node); w.bytes(e.name);
        }
      }
    }
    w.u32(this.fhs.size);
    for (const [fh, f] of this.fhs) {
      w.u32(fh);
      w.u32(f.inode.node);
      w.u8((f.readable ? FH_READ : 0) | (f.writable ? FH_WRITE : 0) | (f.append ? FH_APPEND : 0));
    }
    return w.finish();
  }

  /**
   * Rebuild a backend from `snapshotState()` bytes (possibly from another process). Options
   * (capacity, inode limit, owner) come from the snapshot. Throws a MemorySnapshotError on a
   * snapshot that is not one, is truncated, has another version, fails its checksum or is
   * inconsistent.
   */
  static restoreState(bytes: Uint8Array): MemoryBackend {
    if (!(bytes instanceof Uint8Array)) throw new MemorySnapshotError('not a Uint8Array');
    if (bytes.length < 8) throw new MemorySnapshotError(`truncated: ${bytes.length} bytes, shorter than the header`);
    for (let k = 0; k < 8; k++) {
      if (bytes[k] !== SNAP_MAGIC[k]) throw new MemorySnapshotError('bad magic: not a MemoryBackend snapshot');
    }
    const h = new SnapReader(bytes, 8, bytes.length);
    const version = h.u32('version');
    if (version !== SNAP_VERSION) {
      throw new MemorySnapshotError(`unsupported version ${version} (this build reads version ${SNAP_VERSION})`);
    }
    if (h.u32('reserved header word') !== 0) throw new MemorySnapshotError('reserved header word is not 0');
    const bodyLen = h.u53('body length');
    const total = SNAP_HEADER + bodyLen + 4;
    if (bytes.length < total) {
      throw new MemorySnapshotError(`truncated: ${bytes.length} bytes, the header says ${total}`);
    }
    if (bytes.length > total) {
      throw new MemorySnapshotError(`${bytes.length - total} unexpected bytes after the end (${total} bytes)`);
    }
    const end = SNAP_HEADER + bodyLen;
    const want = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(end, true);
    if (crc32(bytes.subarray(0, end)) !== want) throw new MemorySnapshotError('checksum mismatch (corrupted)');
    return MemoryBackend.decodeBody(new SnapReader(bytes, SNAP_HEADER, end));
  }

  private static decodeBody(r: SnapReader): MemoryBackend {
    const bad = (msg: string): never => { throw new MemorySnapshotError(msg); };
    const capacity = r.f64('capacity');
    const maxInodes = r.f64('maxInodes');
    if (capacity !== Infinity && !(Number.isSafeInteger(capacity) && capacity >= 0)) bad(`bad capacity ${capacity}`);
    if (maxInodes !== Infinity && !(Number.isSafeInteger(maxInodes) && maxInodes >= 1)) bad(`bad maxInodes ${maxInodes}`);
    const ownerUid = r.u32('owner uid');
    const ownerGid = r.u32('owner gid');
    const nextIno = r.u53('nextIno');
    const nextFh = r.u32('nextFh');
    if (nextFh < 1 || nextFh > 2 ** 31) bad(`bad nextFh ${nextFh}`);
    const used = r.u53('used');
    const inodeCount = r.u32('inode count');
    const rootNode = r.u32('root node');

    const b = new MemoryBackend();
    const w = b as unknown as { capacity: number; maxInodes: number; ownerUid: number; ownerGid: number; root: Inode };
    w.capacity = capacity; w.maxInodes = maxInodes; w.ownerUid = ownerUid; w.ownerGid = ownerGid;
    b.nodes.clear();
    b.nextIno = nextIno;
    b.nextFh = nextFh;

    const nFree = r.count('free fh list', 4);
    const handles = new Set<number>();
    for (let k = 0; k < nFree; k++) {
      const fh = r.u32('free fh');
      if (fh < 1 || fh >= nextFh || handles.has(fh)) bad(`bad free fh ${fh}`);
      handles.add(fh);
      b.freeFhs.push(fh);
    }

    interface Pending { i: Inode; links: Array<[number, Uint8Array]>; ents: Array<[number, number, Uint8Array]> | null }
    const pending: Pending[] = [];
    const nInodes = r.count('inode table', 4);
    let last = 0;
    for (let k = 0; k < nInodes; k++) {
      const node = r.u32('node');
      if (node <= last || node >= nextIno) bad(`bad node number ${node} (after ${last}, nextIno ${nextIno})`);
      last = node;
      const i = new Inode(node, r.u32('mode'), r.u32('uid'), r.u32('gid'));
      i.nlink = r.u32('nlink');
      if (i.nlink > 1 && (i.mode & S_IFMT) !== S_IFDIR) b.metaUsed += (i.nlink - 1) * LINK_COST;
      i.rdev = r.u32('rdev');
      i.size = r.u53('size');
      i.atimeSec = r.f64('atime'); i.atimeNsec = r.f64('atime ns');
      i.mtimeSec = r.f64('mtime'); i.mtimeNsec = r.f64('mtime ns');
      i.ctimeSec = r.f64('ctime'); i.ctimeNsec = r.f64('ctime ns');
      if (![i.atimeSec, i.atimeNsec, i.mtimeSec, i.mtimeNsec, i.ctimeSec, i.ctimeNsec].every(Number.isFinite)) bad(`node ${node}: bad time`);
      i.refs = r.u32('refs');
      const links: Array<[number, Uint8Array]> = [];
      const linkDir = r.u32('link dir');
      const linkKey = r.bytes('link name');
      if (linkDir !== 0) links.push([linkDir, linkKey]);
      else if (linkKey.length !== 0) bad(`node ${node}: link name without a directory`);
      const nExtra = r.count('extra links', 8);
      if (nExtra > 0 && linkDir === 0) bad(`node ${node}: extra links without a first link`);
      for (let x = 0; x < nExtra; x++) {
        const dn = r.u32('extra link dir');
        if (dn === 0) bad(`node ${node}: extra link without a directory`);
        links.push([dn, r.bytes('extra link name')]);
      }
      const nX = r.count('xattrs', 8);
      if (nX > 0) {
        i.xattrs = new Map();
        for (let x = 0; x < nX; x++) {
          const name = r.bytes('xattr name');
          const value = r.bytes('xattr value');
          const key = keyOf(name);
          if (name.length === 0 || i.xattrs.has(key)) bad(`node ${node}: bad or duplicate xattr name`);
          i.xattrs.set(key, { name, value });
          b.metaUsed += name.length + value.length + XATTR_OVERHEAD;
        }
      }
      const kind = r.u8('kind');
      const type = i.mode & S_IFMT;
      const want = type === S_IFDIR ? KIND_DIR : type === S_IFREG ? KIND_FILE : type === S_IFLNK ? KIND_SYMLINK : KIND_NONE;
      if (kind !== want) bad(`node ${node}: kind ${kind} does not match mode 0o${i.mode.toString(8)}`);
      let ents: Pending['ents'] = null;
      if (kind === KIND_FILE) {
        const chunks = new Map<number, Uint8Array>();
        i.chunks = chunks;
        const nC = r.count('chunks', 20);
        for (let x = 0; x < nC; x++) {
          const ci = r.u53('chunk index');
          const len = r.u32('chunk length');
          const lo = r.u32('chunk data offset');
          const n = r.u32('chunk data length');
          if (len < PAGE || len > CHUNK || (len & (len - 1)) !== 0) bad(`node ${node}: bad chunk length ${len}`);
          if (lo + n > len || ci * CHUNK >= i.size || ci * CHUNK + lo + n > i.size) bad(`node ${node}: chunk ${ci} outside the file`);
          if (chunks.has(ci)) bad(`node ${node}: duplicate chunk ${ci}`);
          const data = r.raw(n, 'chunk data');
          // canonical form: the stored range starts and ends with a non-zero byte
          if (n === 0 ? lo !== 0 : data[0] === 0 || data[n - 1] === 0) bad(`node ${node}: chunk ${ci} data not trimmed`);
          const c = b.pool.take(len);
          c.set(data, lo);
          chunks.set(ci, c);
          i.alloc += len;
        }
        i.blocks = i.alloc / 512;
      } else if (kind === KIND_SYMLINK) {
        i.target = r.bytes('symlink target');
        if (i.size !== i.target.length) bad(`node ${node}: symlink size ${i.size} != target length`);
      } else if (kind === KIND_DIR) {
        i.dir = new DirData();
        i.dir.nextSeq = r.u53('next cookie');
        ents = [];
        const nE = r.count('directory entries', 16);
        let prev = 2;
        for (let x = 0; x < nE; x++) {
          const seq = r.u53('cookie');
          const child = r.u32('entry node');
          const name = r.bytes('entry name');
          if (seq <= prev || seq >= i.dir.nextSeq) bad(`node ${node}: entry cookie ${seq} out of order`);
          prev = seq;
          if (name.length === 0 || isDotName(name)) bad(`node ${node}: bad entry name`);
          ents.push([seq, child, name]);
        }
      } else if (i.size !== 0) {
        bad(`node ${node}: special file with size ${i.size}`);
      }
      b.nodes.set(node, i);
      pending.push({ i, links, ents });
    }

    const nFh = r.count('open handles', 9);
    for (let k = 0; k < nFh; k++) {
      const fh = r.u32('fh');
      const node = r.u32('fh node');
      const fl = r.u8('fh flags');
      if (fh < 1 || fh >= nextFh || handles.has(fh)) bad(`bad or duplicate fh ${fh}`);
      handles.add(fh);
      const i = b.nodes.get(node);
      if (i === undefined) bad(`fh ${fh}: no node ${node}`);
      if ((fl & ~(FH_READ | FH_WRITE | FH_APPEND)) !== 0 || (fl & (FH_READ | FH_WRITE)) === 0) bad(`fh ${fh}: bad flags ${fl}`);
      b.fhs.set(fh, new OpenFile(i!, (fl & FH_READ) !== 0, (fl & FH_WRITE) !== 0, (fl & FH_APPEND) !== 0));
      i!.opens++;
    }
    if (r.pos !== r.end) bad(`${r.end - r.pos} unparsed bytes at the end of the body`);
    if (handles.size !== nextFh - 1) bad(`fh table (${handles.size} open or free) does not cover 1..${nextFh - 1}`);

    // Cross references: directory entries, then each inode's links against them.
    const root = b.nodes.get(rootNode);
    if (root === undefined || root.dir === null) bad(`root node ${rootNode} is not a directory`);
    w.root = root!;
    const entOwner = new Map<DirEnt, Inode>();
    const linkCount = new Map<Inode, number>();
    for (const p of pending) {
      if (p.ents === null) continue;
      const d = p.i.dir!;
      let subdirs = 0;
      for (const [seq, cn, name] of p.ents) {
        const c = b.nodes.get(cn);
        if (c === undefined) bad(`node ${p.i.node}: entry for missing node ${cn}`);
        if (c === root) bad(`node ${p.i.node}: entry for the root`);
        const key = keyOf(name);
        if (d.map.has(key)) bad(`node ${p.i.node}: duplicate entry name`);
        const ent = new DirEnt(key, name, c!, seq);
        d.map.set(key, ent);
        d.list.push(ent);
        entOwner.set(ent, c!);
        linkCount.set(c!, (linkCount.get(c!) ?? 0) + 1);
        if (c!.dir !== null) subdirs++;
      }
      const linked = p.i === root || p.links.length > 0;
      if (linked ? p.i.nlink !== 2 + subdirs : p.i.nlink !== 0 || d.map.size !== 0) {
        bad(`directory ${p.i.node}: nlink ${p.i.nlink} does not match its entries`);
      }
    }
    for (const p of pending) {
      const i = p.i;
      for (let k = 0; k < p.links.length; k++) {
        const [dn, name] = p.links[k];
        const d = b.nodes.get(dn);
        const key = keyOf(name);
        const ent = d === undefined || d.dir === null ? undefined : d.dir.map.get(key);
        if (ent === undefined || ent.inode !== i || !entOwner.delete(ent)) bad(`node ${i.node}: link to a missing entry`);
        if (k === 0) { i.linkDir = d!; i.linkKey = key; }
        else (i.extraLinks ??= []).push({ dir: d!, key });
      }
      const n = linkCount.get(i) ?? 0;
      if (n !== p.links.length) bad(`node ${i.node}: ${n} entries but ${p.links.length} links`);
      if (i.dir !== null ? n > 1 : i.nlink !== n) bad(`node ${i.node}: nlink ${i.nlink} with ${n} entries`);
      if (i !== root && i.nlink === 0 && i.refs === 0 && i.opens === 0) bad(`node ${i.node} is unreferenced`);
      b.used += i.alloc;
    }
    if (entOwner.size !== 0) bad('directory entries without a link');
    if (root!.linkDir !== null) bad('the root has a link');
    b.inodeCount = b.nodes.size;
    if (inodeCount !== b.nodes.size || b.nodes.size > maxInodes) bad(`inode count ${inodeCount} != ${b.nodes.size} inodes`);
    if (used !== b.used || used > capacity) bad(`used ${used} != ${b.used} bytes of chunks (capacity ${capacity})`);
    return b;
  }
}

function isSymlinkSpec(v: object): v is { symlink: string } {
  const keys = Object.keys(v);
  return keys.length === 1 && keys[0] === 'symlink' && typeof (v as { symlink: unknown }).symlink === 'string';
}

const DOT = new Uint8Array([0x2e]);
const DOTDOT = new Uint8Array([0x2e, 0x2e]);

// ---------------------------------------------------------------------------------------------
// Snapshot encoding (MemoryBackend.snapshotState / restoreState).

/** A snapshot that cannot be restored (not a snapshot, truncated, other version, corrupted). */
export class MemorySnapshotError extends Error {
  constructor(message: string) {
    super(`MemoryBackend snapshot: ${message}`);
    this.name = 'MemorySnapshotError';
  }
}

const SNAP_MAGIC = new Uint8Array([0x56, 0x39, 0x50, 0x4d, 0x45, 0x4d, 0x46, 0x53]); // "V9PMEMFS"
const SNAP_VERSION = 1;
const SNAP_HEADER = 24; // magic, version, reserved, u64 body length
const KIND_NONE = 0, KIND_DIR = 1, KIND_FILE = 2, KIND_SYMLINK = 3;
const FH_READ = 1, FH_WRITE = 2, FH_APPEND = 4;

class SnapWriter {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  private pos = 0;

  private need(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let len = this.buf.length * 2;
    while (len < this.pos + n) len *= 2;
    const nb = new Uint8Array(len);
    nb.set(this.buf.subarray(0, this.pos));
    this.buf = nb;
    this.dv = new DataView(nb.buffer);
  }

  u8(v: number): void { this.need(1); this.buf[this.pos++] = v; }

  u32(v: number): void {
    if (v >>> 0 !== v) throw new MemorySnapshotError(`cannot encode ${v} as u32`);
    this.need(4); this.dv.setUint32(this.pos, v, true); this.pos += 4;
  }

  u53(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new MemorySnapshotError(`cannot encode ${v} as u64`);
    this.need(8);
    this.dv.setUint32(this.pos, v >>> 0, true);
    this.dv.setUint32(this.pos + 4, Math.floor(v / 2 ** 32), true);
    this.pos += 8;
  }

  f64(v: number): void { this.need(8); this.dv.setFloat64(this.pos, v, true); this.pos += 8; }

  raw(b: Uint8Array): void { this.need(b.length); this.buf.set(b, this.pos); this.pos += b.length; }

  bytes(b: Uint8Array): void { this.u32(b.length); this.raw(b); }

  /** Patch the body length, append the CRC and return the exact bytes. */
  finish(): Uint8Array {
    const bodyLen = this.pos - SNAP_HEADER;
    this.dv.setUint32(16, bodyLen >>> 0, true);
    this.dv.setUint32(20, Math.floor(bodyLen / 2 ** 32), true);
    const crc = crc32(this.buf.subarray(0, this.pos));
    this.need(4);
    this.dv.setUint32(this.pos, crc, true);
    this.pos += 4;
    return this.buf.slice(0, this.pos);
  }
}

/** Bounds-checked little-endian reader over [pos, end). */
class SnapReader {
  private readonly dv: DataView;
  constructor(private readonly b: Uint8Array, public pos: number, readonly end: number) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.pos) {
      throw new MemorySnapshotError(`truncated: ${what} at offset ${this.pos} needs ${n} bytes, ${this.end - this.pos} left`);
    }
  }

  u8(what: string): number { this.need(1, what); return this.b[this.pos++]; }

  u32(what: string): number { this.need(4, what); const v = this.dv.getUint32(this.pos, true); this.pos += 4; return v; }

  u53(what: string): number {
    this.need(8, what);
    const lo = this.dv.getUint32(this.pos, true), hi = this.dv.getUint32(this.pos + 4, true);
    if (hi > 0x1FFFFF) throw new MemorySnapshotError(`${what} at offset ${this.pos} is above 2^53`);
    this.pos += 8;
    return hi * 2 ** 32 + lo;
  }

  f64(what: string): number { this.need(8, what); const v = this.dv.getFloat64(this.pos, true); this.pos += 8; return v; }

  /** A view of the next n bytes (copy it to keep it). */
  raw(n: number, what: string): Uint8Array { this.need(n, what); const v = this.b.subarray(this.pos, this.pos + n); this.pos += n; return v; }

  /** A length-prefixed byte string, copied. */
  bytes(what: string): Uint8Array { const n = this.u32(what); return this.raw(n, what).slice(); }

  /** An element count, checked against the bytes left (each element takes at least `min`). */
  count(what: string, min: number): number {
    const n = this.u32(`${what} count`);
    if (n * min > this.end - this.pos) {
      throw new MemorySnapshotError(`truncated: ${what} count ${n} at offset ${this.pos - 4} exceeds the bytes left`);
    }
    return n;
  }
}

let crcTable: Int32Array | null = null;

/** CRC-32 (IEEE 802.3), as zlib computes it. */
function crc32(b: Uint8Array): number {
  let t = crcTable;
  if (t === null) {
    t = crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
      t[n] = c;
    }
  }
  let c = -1;
  for (let k = 0; k < b.length; k++) c = t[(c ^ b[k]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
