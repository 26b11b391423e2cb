/**
 * LocalBackend: a passthrough to a host directory (Linux host, Node only).
 *
 * Design notes
 *  - Nodes are path based: a table of {path relative to the root, refcount, host (dev, ino)}.
 *    Paths are kept as latin1-style strings (one char per byte, exact round trip) and handed to
 *    `fs` as Buffers, so names that are not UTF-8 work. One map path → node gives "same path,
 *    same host inode → same Node"; a lookup that finds a different inode at a known path
 *    (replaced on the host) detaches the old node and makes a new one.
 *  - Fids follow objects: renameat/rename rewrite the stored path of every node at or under the
 *    renamed path (QEMU's v9fs_fix_path); unlinkat/remove and rename-over mark the nodes of the
 *    removed path *detached*. A detached node keeps working through any open handle of it
 *    (fstat, and `/proc/self/fd/N` for chmod/chown/truncate/utimes/reopen). So that unopened
 *    fids of an object the guest unlinks keep working too (getattr/setattr/open/dup after
 *    unlink), the backend *pins* such a node just before unlinking it: an O_PATH fd (or the
 *    node's last open fd when it is closed while the node is detached), released at forget.
 *    Objects removed by someone else on the host are not pinned: their unopened nodes answer
 *    ENOENT (dup still answers, from the last attributes read, with nlink 0).
 *  - qid.path (Stat.ino) is the host st_ino for objects on the root's device (and below 2^52);
 *    any other (dev, ino) pair — a mount point inside the export — is remapped to 2^52 + n
 *    through a Map that lives as long as the backend (stable, never reused).
 *  - readdir cookies are positions in a per-open snapshot of the directory ("." = 1, ".." = 2,
 *    entries 3..), taken at the first readdir and retaken whenever cookie 0 is asked for. They
 *    are stable for that open handle however the directory changes, which is what `rm -rf`
 *    needs (Linux reads one whole listing through one open fid). Entries removed since the
 *    snapshot are skipped (each entry is lstat'ed when emitted, for its ino and type).
 *  - Open flags are translated bit by bit from the Linux (x86) values to this host's
 *    fs.constants; O_NOFOLLOW and O_NONBLOCK are always added (a FIFO or tty must never block
 *    the server), O_CREAT is never passed by open. O_TRUNC is applied with ftruncate after the
 *    opened object was checked to be the node's inode.
 *  - Timestamps are read with nanosecond precision (bigint stats); Node's utimes takes
 *    fractional seconds and libuv rounds them to **microseconds**, so Tsetattr times are stored
 *    with µs precision, and setting only one of atime/mtime rewrites the other from its current
 *    value at µs precision. Times before 1970 cannot be set (Node maps negative times to now).
 *  - Not supported (EOPNOTSUPP), until the proxy helper provides them: xattrs (Node has no
 *    xattr API), mknod of FIFOs, sockets and devices (Node has no mknod; mknod of a regular file
 *    works), chmod of a symlink (Linux itself has none).
 *  - Tsetattr changes only the fields it names: set-id bits the host kernel drops on chown are
 *    put back (the guest kernel sends its own mode change when it wants them dropped).
 *  - statfs reports the host's figures under the V9FS_MAGIC type; `destroy()` closes every fd.
 *  - ownership: create/mkdir/symlink/mknod chown the new object to the given uid/gid (0xFFFFFFFF =
 *    not given) when running as root; as another user only the group is attempted, and EPERM is
 *    ignored (best effort). New objects get exactly mode & 0o7777 (the host umask is undone).
 *
 * Confinement ("the export root is a wall")
 *  - Names are single components: empty, '/' or NUL → ENOENT; "." and ".." are handled (lookup)
 *    or refused (everything else) here and never reach the host; ".." at the root is the root,
 *    elsewhere it is the parent of the stored path (never a path edit the kernel resolves).
 *  - The final component is never followed: lstat for lookup/getattr, O_NOFOLLOW for open and
 *    create, O_PATH|O_NOFOLLOW plus an inode check before chmod/chown/truncate/utimes via
 *    /proc/self/fd/N, lchown/lutimes for symlinks. Every opened object is fstat'ed and compared
 *    with the node's (dev, ino) before use.
 *  - Intermediate components are not re-checked: every node path is built only from components
 *    that were lstat'ed as directories when they were looked up, so the guest alone cannot make
 *    the host traverse a symlink. RESIDUAL RACE: a process on the *host* that swaps a directory
 *    inside the export for a symlink after it was looked up makes later path operations below
 *    it follow that symlink (possibly outside the export). Closing this needs openat/O_PATH
 *    resolution component by component, which Node does not offer; the proxy helper backend
 *    will do that. The same host-side swap can also retarget link() and rename() (path based).
 */
import fs from 'node:fs';
import type { BigIntStats } from 'node:fs';
import path from 'node:path';
import type { Backend, Created, DirSink, Entry, Fh, Node, SetAttr, Stat, StatFs } from './backend.js';
import {
  O_ACCMODE, O_APPEND, O_DIRECTORY, O_EXCL, O_RDONLY, O_TRUNC, AT_REMOVEDIR,
  S_IFMT, S_IFSOCK, S_IFLNK, S_IFREG, S_IFBLK, S_IFDIR, S_IFCHR, S_IFIFO,
} from './backend.js';
import {
  EBADF, EBUSY, EEXIST, EINVAL, EISDIR, ELOOP, ENOENT, ENOSPC, ENOTDIR, ENOTEMPTY, EOPNOTSUPP,
  EPERM, EROFS, toErrno,
} from '../errno.js';

const C = fs.constants;
const NO_ID = 0xFFFFFFFF;
/** Linux (x86/arm64 generic) O_PATH: an fd that names an object without opening it. */
const O_PATH = 0o10000000;
/** Linux x86 O_* bits not in backend.ts */
const L_O_DSYNC = 0o10000, L___O_SYNC = 0o4000000;
/** qid.path values handed out for objects not on the root's device (or with huge inos). */
const REMAP_BASE = 2 ** 52;
const NS = 1000000000n;
/** Rstatfs type: the guest sees a 9p file system, whatever the host's is */
const V9FS_MAGIC = 0x01021997;

export interface LocalBackendOptions {
  /** The host directory to export. */
  root: string;
  /** Refuse every mutating operation with EROFS. */
  readonly?: boolean;
}

/** A file-system object known to the guest. */
class LNode {
  /** refs held by the core (attach/lookup/create) */
  refs = 0;
  /** open handles on this node */
  readonly files = new Set<OpenFile>();
  /** unlinked / replaced: `path` is stale, only open handles reach the object */
  detached = false;
  /** the attributes last read (what dup answers once the object is unreachable) */
  last: Stat | null = null;
  /** an O_PATH fd taken just before *we* unlinked / renamed over the object while the core
   *  held the node: keeps the unlinked object reachable (fstat, /proc/self/fd/N) until forget */
  pin = -1;
  constructor(
    public readonly id: number,
    /** path relative to the root, latin1-style byte string, '' = the root */
    public path: string,
    public readonly dev: bigint,
    public readonly hino: bigint,
    /** S_IFMT bits */
    public readonly type: number,
    /** qid.path */
    public readonly ino: number,
  ) {}
}

class OpenFile {
  /** readdir snapshot (names), built at the first readdir / at cookie 0 */
  snap: Buffer[] | null = null;
  constructor(
    public readonly fd: number,
    public readonly node: LNode,
    public readonly seekable: boolean,
  ) {}
}

function keyOf(b: Uint8Array): string {
  const n = b.length;
  if (n <= 4096) return String.fromCharCode.apply(null, b as unknown as number[]);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

/** 0 = ordinary name, 1 = ".", 2 = "..", -1 = not a single component (empty, '/', NUL). */
function nameKind(name: Uint8Array): number {
  const n = name.length;
  if (n === 0) return -1;
  if (name[0] === 0x2e && (n === 1 || (n === 2 && name[1] === 0x2e))) return n;
  for (let i = 0; i < n; i++) if (name[i] === 0x2f || name[i] === 0) return -1;
  return 0;
}

function join(dir: string, key: string): string {
  return dir === '' ? key : dir + '/' + key;
}

function dirname(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/** Node fs errors and P9Errors → a negative Linux errno (Node's own ERR_* argument errors: EINVAL). */
function fail(e: unknown): number {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_')) return -EINVAL;
  return -toErrno(e);
}

/** Linux new_encode_dev from a glibc dev_t. */
function encodeRdev(d: bigint): number {
  if (d === 0n) return 0;
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

function splitNs(ns: bigint): [number, number] {
  if (ns < 0n) return [0, 0];
  const s = ns / NS;
  return [Number(s), Number(ns - s * NS)];
}

/**
 * [sec, nsec] → the fractional seconds Node's utimes takes. libuv truncates to whole
 * microseconds, so aim at the middle of the microsecond: the double's rounding error (~120 ns
 * for today's dates) then cannot push it into the previous one.
 */
function seconds(t: [number, number]): number {
  return t[1] === 0 ? t[0] : t[0] + (Math.floor(t[1] / 1000) * 1000 + 500) / 1e9;
}

function nsSeconds(ns: bigint): number {
  const [s, n] = splitNs(ns);
  return seconds([s, n]);
}

const procFd = (fd: number): string => `/proc/self/fd/${fd}`;

const DOT = new Uint8Array([0x2e]);
const DOTDOT = new Uint8Array([0x2e, 0x2e]);

export class LocalBackend implements Backend {
  /** the export root, resolved (realpath), as a latin1-style byte string */
  private readonly rootKey: string;
  /** the root as the caller named it (resolved, not realpath'ed) */
  private readonly givenKey: string;
  private readonly ro: boolean;
  private readonly rootDev: bigint;
  private readonly isRoot: boolean;
  private readonly nodes = new Map<number, LNode>();
  private readonly byPath = new Map<string, LNode>();
  private readonly freeIds: number[] = [];
  private nextId = 1;
  private readonly fhs = new Map<number, OpenFile>();
  private readonly freeFhs: number[] = [];
  private nextFh = 1;
  private readonly remap = new Map<string, number>();
  private nextRemap = REMAP_BASE;
  private readonly rootNode: LNode;

  constructor(opts: LocalBackendOptions) {
    const given = path.resolve(opts.root);
    const real = fs.realpathSync.native(Buffer.from(given), { encoding: 'buffer' });
    this.rootKey = real.toString('latin1');
    this.givenKey = Buffer.from(given).toString('latin1');
    this.ro = opts.readonly === true;
    const st = fs.lstatSync(real, { bigint: true });
    if (!st.isDirectory()) throw Object.assign(new Error(`not a directory: ${given}`), { code: 'ENOTDIR' });
    this.rootDev = st.dev;
    this.isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    this.rootNode = this.newNode('', st);
  }

  // ---- internals ------------------------------------------------------------------------------

  private abs(rel: string): Buffer {
    return Buffer.from(rel === '' ? this.rootKey : this.rootKey + '/' + rel, 'latin1');
  }

  private qino(dev: bigint, ino: bigint): number {
    if (dev === this.rootDev && ino < 4503599627370496n) return Number(ino);
    const k = `${dev}:${ino}`;
    let q = this.remap.get(k);
    if (q === undefined) { q = this.nextRemap++; this.remap.set(k, q); }
    return q;
  }

  private toStat(st: BigIntStats): Stat {
    const [as, an] = splitNs(st.atimeNs);
    const [ms, mn] = splitNs(st.mtimeNs);
    const [cs, cn] = splitNs(st.ctimeNs);
    return {
      ino: this.qino(st.dev, st.ino), mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid),
      nlink: Number(st.nlink), rdev: encodeRdev(st.rdev), size: Number(st.size),
      blksize: Number(st.blksize), blocks: Number(st.blocks),
      atimeSec: as, atimeNsec: an, mtimeSec: ms, mtimeNsec: mn, ctimeSec: cs, ctimeNsec: cn,
    };
  }

  private entry(n: LNode, st: BigIntStats): Entry {
    const e = this.toStat(st) as Entry;
    n.last = e;
    e.node = n.id;
    return e;
  }

  private newNode(rel: string, st: BigIntStats): LNode {
    const id = this.freeIds.length > 0 ? this.freeIds.pop()! : this.nextId++;
    const n = new LNode(id, rel, st.dev, st.ino, Number(st.mode) & S_IFMT, this.qino(st.dev, st.ino));
    this.nodes.set(id, n);
    this.byPath.set(rel, n);
    return n;
  }

  /** The node for `rel` whose lstat is `st`, with one more reference. */
  private getNode(rel: string, st: BigIntStats): LNode {
    let n = this.byPath.get(rel);
    if (n !== undefined && (n.dev !== st.dev || n.hino !== st.ino)) {
      if (n === this.rootNode) throw Object.assign(new Error('export root replaced'), { code: 'ESTALE' });
      this.detach(n);
      n = undefined;
    }
    if (n === undefined) n = this.newNode(rel, st);
    n.refs++;
    return n;
  }

  /** A node the core holds a reference to. */
  private ref(id: Node): LNode | null {
    const n = this.nodes.get(id);
    return n !== undefined && n.refs > 0 ? n : null;
  }

  /** A live directory node that can be used as a parent, or -errno. */
  private dirOf(id: Node): LNode | number {
    const d = this.ref(id);
    if (d === null) return -EBADF;
    if (d.type !== S_IFDIR) return -ENOTDIR;
    if (d.detached) return -ENOENT;
    return d;
  }

  private detach(n: LNode): void {
    if (this.byPath.get(n.path) === n) this.byPath.delete(n.path);
    n.detached = true;
    this.maybeFree(n);
  }

  /** Detach the node at `rel` and, when `subtree`, every node below it. */
  private detachPath(rel: string, subtree: boolean): void {
    const n = this.byPath.get(rel);
    if (n !== undefined) this.detach(n);
    if (subtree) {
      const pre = rel + '/';
      const gone: LNode[] = [];
      for (const [k, m] of this.byPath) if (k.startsWith(pre)) gone.push(m);
      for (const m of gone) this.detach(m);
    }
  }

  /** After a successful rename oldRel → newRel: the fids follow (QEMU v9fs_fix_path). */
  private movePaths(oldRel: string, newRel: string, isDir: boolean, replacedDir: boolean): void {
    this.detachPath(newRel, replacedDir);
    const n = this.byPath.get(oldRel);
    if (n !== undefined) { this.byPath.delete(oldRel); n.path = newRel; this.byPath.set(newRel, n); }
    if (!isDir) return;
    const pre = oldRel + '/';
    const moved: LNode[] = [];
    for (const [k, m] of this.byPath) if (k.startsWith(pre)) moved.push(m);
    for (const m of moved) this.byPath.delete(m.path);
    for (const m of moved) {
      m.path = newRel + m.path.slice(oldRel.length);
      const old = this.byPath.get(m.path);
      if (old !== undefined) { this.byPath.delete(m.path); old.detached = true; this.maybeFree(old); }
      this.byPath.set(m.path, m);
    }
  }

  private maybeFree(n: LNode): void {
    if (n.refs > 0 || n.files.size > 0 || n === this.rootNode) return;
    if (this.nodes.get(n.id) !== n) return;
    this.nodes.delete(n.id);
    this.freeIds.push(n.id);
    if (this.byPath.get(n.path) === n) this.byPath.delete(n.path);
    if (n.pin >= 0) {
      const fd = n.pin;
      n.pin = -1;
      try { fs.closeSync(fd); } catch { /* gone either way */ }
    }
  }

  /** Any open fd of the node (or its pin), or -1. */
  private anyFd(n: LNode): number {
    for (const f of n.files) return f.fd;
    return n.pin;
  }

  /**
   * About to unlink / replace `rel` (and, for a directory, nothing live can be below it): pin
   * the node there, if the core holds it and it has no open handle, with an O_PATH fd so its
   * fids keep working on the unlinked object. Best effort: on failure the node just ends up
   * detached without a handle (ENOENT).
   */
  private pinPath(rel: string): void {
    const n = this.byPath.get(rel);
    if (n === undefined || n.refs === 0 || n.files.size > 0 || n.pin >= 0) return;
    let fd = -1;
    try {
      fd = fs.openSync(this.abs(rel), O_PATH | C.O_NOFOLLOW);
      const st = fs.fstatSync(fd, { bigint: true });
      if (st.dev === n.dev && st.ino === n.hino) { n.pin = fd; fd = -1; }
    } catch { /* not pinned */ }
    if (fd >= 0) fs.closeSync(fd);
  }

  /** Undo pinPath when the operation failed (the object is still linked). */
  private unpin(rel: string): void {
    const n = this.byPath.get(rel);
    if (n === undefined || n.pin < 0) return;
    const fd = n.pin;
    n.pin = -1;
    fs.closeSync(fd);
  }

  /** lstat of the node's path, checked to still be the node's inode (else the node is detached). */
  private liveStat(n: LNode): BigIntStats | null {
    if (n.detached) return null;
    const st = fs.lstatSync(this.abs(n.path), { bigint: true, throwIfNoEntry: false });
    if (st === undefined || st.dev !== n.dev || st.ino !== n.hino) {
      if (n !== this.rootNode) this.detach(n);
      return null;
    }
    return st;
  }

  /**
   * A path that names exactly the node's object (never a symlink's target):
   * /proc/self/fd/N of an open handle, or of a fresh O_PATH|O_NOFOLLOW fd checked against the
   * node's inode. Call `done()` afterwards. -ENOENT when the object is unreachable.
   */
  private handle(n: LNode): { p: string; done: () => void } | number {
    const fd0 = this.anyFd(n);
    if (fd0 >= 0) return { p: procFd(fd0), done: () => {} };
    if (n.detached) return -ENOENT;
    const fd = fs.openSync(this.abs(n.path), O_PATH | C.O_NOFOLLOW);
    let ok = false;
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      ok = st.dev === n.dev && st.ino === n.hino;
    } finally {
      if (!ok) fs.closeSync(fd);
    }
    if (!ok) { if (n !== this.rootNode) this.detach(n); return -ENOENT; }
    return { p: procFd(fd), done: () => fs.closeSync(fd) };
  }

  /** Linux open flags → host flags (no O_CREAT/O_EXCL/O_TRUNC; + O_NOFOLLOW|O_NONBLOCK). */
  private hostFlags(flags: number): number {
    const acc = flags & O_ACCMODE;
    let f = acc === 1 ? C.O_WRONLY : acc === 2 ? C.O_RDWR : C.O_RDONLY;
    if (flags & O_APPEND) f |= C.O_APPEND;
    if (flags & O_DIRECTORY) f |= C.O_DIRECTORY;
    if (flags & L___O_SYNC) f |= C.O_SYNC;
    else if (flags & L_O_DSYNC) f |= C.O_DSYNC;
    return f | C.O_NOFOLLOW | C.O_NONBLOCK;
  }

  private addFile(fd: number, n: LNode): Fh {
    const t = n.type;
    const f = new OpenFile(fd, n, t === S_IFREG || t === S_IFDIR || t === S_IFBLK);
    const fh = this.freeFhs.length > 0 ? this.freeFhs.pop()! : this.nextFh++;
    this.fhs.set(fh, f);
    n.files.add(f);
    return fh;
  }

  /** Open the node's object; returns the fd (checked to be the node's inode) or -errno. */
  private openNode(n: LNode, flags: number): number {
    const acc = flags & O_ACCMODE;
    if (acc === O_ACCMODE) return -EINVAL;
    const t = n.type;
    let hf: number;
    if (t === S_IFDIR) {
      if (acc !== O_RDONLY) return -EISDIR;
      hf = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW | C.O_NONBLOCK;
    } else {
      if (flags & O_DIRECTORY) return -ENOTDIR;
      if (t === S_IFLNK) return -ELOOP;
      hf = this.hostFlags(flags);
    }
    let fd = -1;
    if (!n.detached) {
      fd = fs.openSync(this.abs(n.path), hf);
      let ok = false;
      try {
        const st = fs.fstatSync(fd, { bigint: true });
        ok = st.dev === n.dev && st.ino === n.hino;
      } finally {
        if (!ok) fs.closeSync(fd);
      }
      if (!ok) { fd = -1; if (n !== this.rootNode) this.detach(n); }
    }
    if (fd < 0) {
      // unlinked (or replaced on the host): reopen the object through one of its open handles
      const via = this.anyFd(n);
      if (via < 0) return -ENOENT;
      fd = fs.openSync(procFd(via), hf & ~C.O_NOFOLLOW);
    }
    if ((flags & O_TRUNC) && acc !== O_RDONLY && t === S_IFREG) {
      try { fs.ftruncateSync(fd, 0); } catch (e) { fs.closeSync(fd); throw e; }
    }
    return fd;
  }

  /** chown the just-created object (fd or path) as far as we may: best effort. */
  private chownNew(uid: number, gid: number, fd: number, p: Buffer | null): void {
    const u = this.isRoot && uid !== NO_ID ? uid : -1;
    const g = gid !== NO_ID ? gid : -1;
    if (u === -1 && g === -1) return;
    try {
      if (p !== null) fs.lchownSync(p, u, g); else fs.fchownSync(fd, u, g);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== 'EPERM' && code !== 'EINVAL') throw e;
    }
  }

  /** A name that may be created in `d`: its key, or -errno. */
  private newName(name: Uint8Array): string | number {
    const k = nameKind(name);
    if (k < 0) return -ENOENT;
    if (k > 0) return -EEXIST;
    return keyOf(name);
  }

  // ---- Backend ---------------------------------------------------------------------------------

  attach(aname: Uint8Array, _uid: number): Entry | number {
    try {
      let s = keyOf(aname);
      for (const pre of [this.rootKey, this.givenKey]) {
        if (s === pre) { s = ''; break; }
        if (s.startsWith(pre + '/')) { s = s.slice(pre.length + 1); break; }
      }
      let rel = '';
      let st: BigIntStats | undefined;
      for (const part of s.split('/')) {
        if (part === '' || part === '.') continue;
        if (part === '..') { rel = dirname(rel); st = undefined; continue; }
        rel = join(rel, part);
        st = fs.lstatSync(this.abs(rel), { bigint: true, throwIfNoEntry: false });
        if (st === undefined) return -ENOENT;
        if (!st.isDirectory()) return -ENOTDIR;
      }
      if (st === undefined) st = fs.lstatSync(this.abs(rel), { bigint: true });
      if (!st.isDirectory()) return -ENOTDIR;
      return this.entry(this.getNode(rel, st), st);
    } catch (e) { return fail(e); }
  }

  lookup(dir: Node, name: Uint8Array): Entry | number {
    const d = this.ref(dir);
    if (d === null) return -EBADF;
    if (d.type !== S_IFDIR) return -ENOTDIR;
    try {
      const k = nameKind(name);
      if (k < 0) return -ENOENT;
      if (k === 1) {
        const st = this.stat(d);
        if (typeof st === 'number') return st;
        d.refs++;
        return this.entry(d, st);
      }
      if (d.detached) return -ENOENT;
      const rel = k === 2 ? dirname(d.path) : join(d.path, keyOf(name));
      if (k === 2 && d === this.rootNode) return this.lookup(dir, DOT);
      const st = fs.lstatSync(this.abs(rel), { bigint: true, throwIfNoEntry: false });
      if (st === undefined) return -ENOENT;
      return this.entry(this.getNode(rel, st), st);
    } catch (e) { return fail(e); }
  }

  dup(node: Node): Entry | number {
    const n = this.ref(node);
    if (n === null) return -EBADF;
    try {
      const st = this.stat(n);
      if (typeof st !== 'number') {
        n.refs++;
        return this.entry(n, st);
      }
      if (st !== -ENOENT) return st;
    } catch (e) {
      const r = fail(e);
      if (r !== -ENOENT) return r;
    }
    // unreachable (unlinked, no open handle): the last attributes known, nlink 0
    const e = { ...(n.last ?? this.blankStat(n)), nlink: 0 } as Entry;
    e.node = n.id;
    n.refs++;
    return e;
  }

  private blankStat(n: LNode): Stat {
    return {
      ino: n.ino, mode: n.type, uid: 0, gid: 0, nlink: 0, rdev: 0, size: 0, blksize: 4096, blocks: 0,
      atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0,
    };
  }

  /** Attributes of the node's object: through an open handle if any, else lstat of its path. */
  private stat(n: LNode): BigIntStats | number {
    const fd = this.anyFd(n);
    if (fd >= 0) return fs.fstatSync(fd, { bigint: true });
    return this.liveStat(n) ?? -ENOENT;
  }

  getattr(node: Node): Stat | number {
    const n = this.ref(node);
    if (n === null) return -EBADF;
    try {
      const st = this.stat(n);
      if (typeof st === 'number') return st;
      return (n.last = this.toStat(st));
    } catch (e) { return fail(e); }
  }

  setattr(node: Node, attr: SetAttr): number {
    const n = this.ref(node);
    if (n === null) return -EBADF;
    if (this.ro) return -EROFS;
    const t = n.type;
    if (attr.size !== undefined) {
      if (t === S_IFDIR) return -EISDIR;
      if (t !== S_IFREG) return -EINVAL;
      if (attr.size < 0) return -EINVAL;
    }
    const uid = attr.uid !== undefined && attr.uid !== NO_ID ? attr.uid : -1;
    const gid = attr.gid !== undefined && attr.gid !== NO_ID ? attr.gid : -1;
    const times = attr.atime !== undefined || attr.mtime !== undefined;
    const other = uid !== -1 || gid !== -1 || attr.mode !== undefined || attr.size !== undefined || times;
    try {
      if (t === S_IFLNK) {
        // symlinks are never opened: lchown/lutimes on the path (never follow)
        if (attr.mode !== undefined) return -EOPNOTSUPP;
        const st = this.liveStat(n);
        if (st === null) return -ENOENT;
        const p = this.abs(n.path);
        if (uid !== -1 || gid !== -1 || (attr.ctime && !other)) fs.lchownSync(p, uid, gid);
        if (times) {
          fs.lutimesSync(p, attr.atime ? seconds(attr.atime) : nsSeconds(st.atimeNs),
            attr.mtime ? seconds(attr.mtime) : nsSeconds(st.mtimeNs));
        }
        return 0;
      }
      const h = this.handle(n);
      if (typeof h === 'number') return h;
      try {
        if (uid !== -1 || gid !== -1) {
          // Tsetattr changes only what it names: the host kernel drops set-id bits on chown, the
          // guest kernel already sent a mode change if it wanted them dropped — restore them
          const before = attr.mode === undefined && t !== S_IFDIR ? Number(fs.statSync(h.p).mode) & 0o7777 : 0;
          fs.chownSync(h.p, uid, gid);
          if (before & 0o6000) {
            try { fs.chmodSync(h.p, before); } catch (e) { if ((e as { code?: string }).code !== 'EPERM') throw e; }
          }
        }
        if (attr.mode !== undefined) fs.chmodSync(h.p, attr.mode & 0o7777);
        if (attr.size !== undefined) {
          const w = fs.openSync(h.p, C.O_WRONLY | C.O_NONBLOCK);
          try { fs.ftruncateSync(w, attr.size); } finally { fs.closeSync(w); }
        }
        if (times) {
          let a = attr.atime, m = attr.mtime;
          if (a === undefined || m === undefined) {
            const st = fs.statSync(h.p, { bigint: true });
            a ??= splitNs(st.atimeNs);
            m ??= splitNs(st.mtimeNs);
          }
          fs.utimesSync(h.p, seconds(a), seconds(m));
        }
        if (attr.ctime && !other) {
          // touch ctime only: chmod to the current mode (chown(-1,-1) would drop set-id bits)
          const st = fs.statSync(h.p, { bigint: true });
          fs.chmodSync(h.p, Number(st.mode) & 0o7777);
        }
      } finally { h.done(); }
      return 0;
    } catch (e) { return fail(e); }
  }

  open(node: Node, flags: number): Fh | number {
    const n = this.ref(node);
    if (n === null) return -EBADF;
    if (this.ro && ((flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0)) return -EROFS;
    try {
      const fd = this.openNode(n, flags);
      return fd < 0 ? fd : this.addFile(fd, n);
    } catch (e) { return fail(e); }
  }

  create(dir: Node, name: Uint8Array, flags: number, mode: number, uid: number, gid: number): Created | number {
    const d = this.dirOf(dir);
    if (typeof d === 'number') return d;
    if (this.ro) return -EROFS;
    const key = this.newName(name);
    if (typeof key === 'number') return key;
    const acc = flags & O_ACCMODE;
    if (acc === O_ACCMODE) return -EINVAL;
    const rel = join(d.path, key);
    const p = this.abs(rel);
    try {
      const hf = this.hostFlags(flags);
      let fd: number;
      let created = false;
      try {
        fd = fs.openSync(p, hf | C.O_CREAT | C.O_EXCL, mode & 0o7777);
        created = true;
      } catch (e) {
        if ((e as { code?: string }).code !== 'EEXIST' || (flags & O_EXCL)) throw e;
        fd = fs.openSync(p, hf);
      }
      let fh = 0;
      try {
        if (created) {
          this.chownNew(uid, gid, fd, null);
          fs.fchmodSync(fd, mode & 0o7777); // undo the umask (and restore set-id bits after chown)
        }
        const st = fs.fstatSync(fd, { bigint: true });
        const t = Number(st.mode) & S_IFMT;
        if (t === S_IFDIR) return -EISDIR;
        if (!created && (flags & O_TRUNC) && acc !== O_RDONLY && t === S_IFREG) {
          fs.ftruncateSync(fd, 0);
        }
        const n = this.getNode(rel, st);
        fh = this.addFile(fd, n);
        const out = this.toStat(created || !(flags & O_TRUNC) ? st : fs.fstatSync(fd, { bigint: true })) as Created;
        out.node = n.id;
        out.fh = fh;
        return out;
      } finally {
        if (fh === 0) fs.closeSync(fd);
      }
    } catch (e) { return fail(e); }
  }

  read(fh: Fh, offset: number, dst: Uint8Array[]): number {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    if (f.node.type === S_IFDIR) return -EISDIR;
    try {
      return f.seekable ? fs.readvSync(f.fd, dst, offset) : fs.readvSync(f.fd, dst);
    } catch (e) { return fail(e); }
  }

  write(fh: Fh, offset: number, src: Uint8Array[]): number {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    if (f.node.type === S_IFDIR) return -EISDIR;
    if (this.ro) return -EROFS;
    try {
      // an O_APPEND fd appends whatever the offset (Linux pwritev semantics)
      const n = f.seekable ? fs.writevSync(f.fd, src, offset) : fs.writevSync(f.fd, src);
      if (n === 0) {
        for (const b of src) if (b.length > 0) return -ENOSPC;
      }
      return n;
    } catch (e) { return fail(e); }
  }

  readdir(fh: Fh, cookie: number, sink: DirSink): number {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    const d = f.node;
    if (d.type !== S_IFDIR) return -ENOTDIR;
    try {
      const base = procFd(f.fd);
      if (cookie === 0 || f.snap === null) f.snap = fs.readdirSync(base, { encoding: 'buffer' });
      if (cookie < 1) {
        if (!sink.push(d.ino, 1, S_IFDIR >> 12, DOT)) return 0;
      }
      if (cookie < 2) {
        let pino = d.ino;
        if (d !== this.rootNode && !d.detached) {
          const pst = fs.lstatSync(this.abs(dirname(d.path)), { bigint: true, throwIfNoEntry: false });
          if (pst !== undefined) pino = this.qino(pst.dev, pst.ino);
        }
        if (!sink.push(pino, 2, S_IFDIR >> 12, DOTDOT)) return 0;
      }
      const snap = f.snap;
      const pre = Buffer.from(base + '/');
      for (let i = Math.max(0, cookie - 2); i < snap.length; i++) {
        const name = snap[i];
        const st = fs.lstatSync(Buffer.concat([pre, name]), { bigint: true, throwIfNoEntry: false });
        if (st === undefined) continue; // removed since the snapshot
        if (!sink.push(this.qino(st.dev, st.ino), i + 3, (Number(st.mode) >> 12) & 15, name)) break;
        if (f.snap !== snap) break; // re-entered from the sink: stop safely
      }
      return 0;
    } catch (e) { return fail(e); }
  }

  readlink(node: Node): Uint8Array | number {
    const n = this.ref(node);
    if (n === null) return -EBADF;
    if (n.type !== S_IFLNK) return -EINVAL;
    if (n.detached) return -ENOENT;
    try {
      const t = fs.readlinkSync(this.abs(n.path), { encoding: 'buffer' });
      // check it is still the node's symlink (replaced on the host → ENOENT)
      return this.liveStat(n) === null ? -ENOENT : t;
    } catch (e) { return fail(e); }
  }

  mkdir(dir: Node, name: Uint8Array, mode: number, uid: number, gid: number): Stat | number {
    const d = this.dirOf(dir);
    if (typeof d === 'number') return d;
    if (this.ro) return -EROFS;
    const key = this.newName(name);
    if (typeof key === 'number') return key;
    const p = this.abs(join(d.path, key));
    try {
      fs.mkdirSync(p, mode & 0o7777);
      const fd = fs.openSync(p, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW | C.O_NONBLOCK);
      try {
        this.chownNew(uid, gid, fd, null);
        fs.fchmodSync(fd, mode & 0o7777);
        return this.toStat(fs.fstatSync(fd, { bigint: true }));
      } finally { fs.closeSync(fd); }
    } catch (e) { return fail(e); }
  }

  symlink(dir: Node, name: Uint8Array, target: Uint8Array, uid: number, gid: number): Stat | number {
    const d = this.dirOf(dir);
    if (typeof d === 'number') return d;
    if (this.ro) return -EROFS;
    const key = this.newName(name);
    if (typeof key === 'number') return key;
    const p = this.abs(join(d.path, key));
    try {
      fs.symlinkSync(Buffer.from(target), p);
      this.chownNew(uid, gid, -1, p);
      return this.toStat(fs.lstatSync(p, { bigint: true }));
    } catch (e) { return fail(e); }
  }

  mknod(dir: Node, name: Uint8Array, mode: number, _major: number, _minor: number, uid: number, gid: number): Stat | number {
    const d = this.dirOf(dir);
    if (typeof d === 'number') return d;
    if (this.ro) return -EROFS;
    let type = mode & S_IFMT;
    if (type === 0) type = S_IFREG;
    if (type === S_IFDIR) return -EPERM;
    if (type !== S_IFREG && type !== S_IFCHR && type !== S_IFBLK && type !== S_IFIFO && type !== S_IFSOCK) return -EINVAL;
    const key = this.newName(name);
    if (typeof key === 'number') return key;
    const p = this.abs(join(d.path, key));
    try {
      // Node has no mknod(2): only regular files can be made here
      if (type !== S_IFREG) {
        return fs.lstatSync(p, { bigint: true, throwIfNoEntry: false }) === undefined ? -EOPNOTSUPP : -EEXIST;
      }
      const fd = fs.openSync(p, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW | C.O_NONBLOCK, mode & 0o7777);
      try {
        this.chownNew(uid, gid, fd, null);
        fs.fchmodSync(fd, mode & 0o7777);
        return this.toStat(fs.fstatSync(fd, { bigint: true }));
      } finally { fs.closeSync(fd); }
    } catch (e) { return fail(e); }
  }

  link(dir: Node, name: Uint8Array, target: Node): number {
    const d = this.dirOf(dir);
    if (typeof d === 'number') return d;
    const t = this.ref(target);
    if (t === null) return -EBADF;
    if (this.ro) return -EROFS;
    if (t.type === S_IFDIR) return -EPERM;
    const key = this.newName(name);
    if (typeof key === 'number') return key;
    try {
      if (this.liveStat(t) === null) return -ENOENT;
      // link(2) does not follow a symlink `target`
      fs.linkSync(this.abs(t.path), this.abs(join(d.path, key)));
      return 0;
    } catch (e) { return fail(e); }
  }

  /** rename(2) of oldRel → newRel plus the fid fixups. `expect`: the inode the source must be. */
  private doRename(oldRel: string, newRel: string, expect: LNode | null): number {
    if (oldRel === '') return -EBUSY;
    const op = this.abs(oldRel), np = this.abs(newRel);
    const ost = fs.lstatSync(op, { bigint: true, throwIfNoEntry: false });
    if (ost === undefined) return -ENOENT;
    if (expect !== null && (ost.dev !== expect.dev || ost.ino !== expect.hino)) {
      this.detach(expect);
      return -ENOENT;
    }
    const nst = fs.lstatSync(np, { bigint: true, throwIfNoEntry: false });
    if (nst !== undefined && nst.dev === ost.dev && nst.ino === ost.ino) return 0; // same inode: no-op
    if (nst !== undefined) this.pinPath(newRel);
    try { fs.renameSync(op, np); } catch (e) { if (nst !== undefined) this.unpin(newRel); throw e; }
    this.movePaths(oldRel, newRel, ost.isDirectory(), nst !== undefined && nst.isDirectory());
    return 0;
  }

  renameat(olddir: Node, oldname: Uint8Array, newdir: Node, newname: Uint8Array): number {
    const od = this.dirOf(olddir);
    if (typeof od === 'number') return od;
    const nd = this.dirOf(newdir);
    if (typeof nd === 'number') return nd;
    if (this.ro) return -EROFS;
    const ok = nameKind(oldname), nk = nameKind(newname);
    if (ok < 0 || nk < 0) return -ENOENT;
    if (ok > 0 || nk > 0) return -EBUSY;
    try {
      return this.doRename(join(od.path, keyOf(oldname)), join(nd.path, keyOf(newname)), null);
    } catch (e) { return fail(e); }
  }

  rename(node: Node, newdir: Node, newname: Uint8Array): number {
    const n = this.ref(node);
    if (n === null) return -EBADF;
    const nd = this.dirOf(newdir);
    if (typeof nd === 'number') return nd;
    if (this.ro) return -EROFS;
    if (n === this.rootNode) return -EBUSY;
    if (n.detached) return -ENOENT;
    const nk = nameKind(newname);
    if (nk < 0) return -ENOENT;
    if (nk > 0) return -EBUSY;
    try {
      return this.doRename(n.path, join(nd.path, keyOf(newname)), n);
    } catch (e) { return fail(e); }
  }

  unlinkat(dir: Node, name: Uint8Array, flags: number): number {
    const d = this.dirOf(dir);
    if (typeof d === 'number') return d;
    if (this.ro) return -EROFS;
    const k = nameKind(name);
    if (k < 0) return -ENOENT;
    if (k === 1) return -EINVAL;
    if (k === 2) return -ENOTEMPTY;
    const rel = join(d.path, keyOf(name));
    try {
      this.pinPath(rel);
      try {
        if (flags & AT_REMOVEDIR) fs.rmdirSync(this.abs(rel));
        else fs.unlinkSync(this.abs(rel)); // Linux: EISDIR for a directory
      } catch (e) { this.unpin(rel); throw e; }
      this.detachPath(rel, (flags & AT_REMOVEDIR) !== 0);
      return 0;
    } catch (e) { return fail(e); }
  }

  remove(node: Node): number {
    const n = this.ref(node);
    if (n === null) return -EBADF;
    if (this.ro) return -EROFS;
    if (n === this.rootNode) return -EBUSY;
    try {
      if (this.liveStat(n) === null) return -ENOENT;
      const isDir = n.type === S_IFDIR;
      const rel = n.path;
      this.pinPath(rel);
      try {
        if (isDir) fs.rmdirSync(this.abs(rel)); else fs.unlinkSync(this.abs(rel));
      } catch (e) { this.unpin(rel); throw e; }
      this.detachPath(rel, isDir);
      return 0;
    } catch (e) { return fail(e); }
  }

  fsync(fh: Fh, datasync: boolean): number {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    try {
      if (datasync) fs.fdatasyncSync(f.fd); else fs.fsyncSync(f.fd);
      return 0;
    } catch (e) { return fail(e); }
  }

  statfs(node: Node): StatFs | number {
    const n = this.ref(node);
    if (n === null) return -EBADF;
    try {
      const fd = this.anyFd(n);
      // (statfs follows symlinks: ask about a symlink's directory instead)
      const p = fd >= 0 ? procFd(fd) : n.detached ? this.abs('')
        : this.abs(n.type === S_IFLNK ? dirname(n.path) : n.path);
      const s = fs.statfsSync(p);
      return {
        type: V9FS_MAGIC, bsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail,
        files: s.files, ffree: s.ffree, fsid: Number(this.rootDev & 0xFFFFFFFFn), namelen: 255,
      };
    } catch (e) { return fail(e); }
  }

  // Node has no xattr API: the proxy helper backend provides xattrs.
  getxattr(node: Node, _name: Uint8Array): Uint8Array | number {
    return this.ref(node) === null ? -EBADF : -EOPNOTSUPP;
  }

  listxattr(node: Node): Uint8Array[] | number {
    return this.ref(node) === null ? -EBADF : -EOPNOTSUPP;
  }

  setxattr(node: Node, _name: Uint8Array, _value: Uint8Array, _flags: number): number {
    if (this.ref(node) === null) return -EBADF;
    return this.ro ? -EROFS : -EOPNOTSUPP;
  }

  removexattr(node: Node, _name: Uint8Array): number {
    if (this.ref(node) === null) return -EBADF;
    return this.ro ? -EROFS : -EOPNOTSUPP;
  }

  close(fh: Fh): number {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    this.fhs.delete(fh);
    this.freeFhs.push(fh);
    const n = f.node;
    n.files.delete(f);
    f.snap = null;
    if (n.detached && n.refs > 0 && n.files.size === 0 && n.pin < 0) {
      n.pin = f.fd; // the last handle of an unlinked object the core still holds: keep it as the pin
      return 0;
    }
    this.maybeFree(n);
    try { fs.closeSync(f.fd); } catch { /* the fd is gone either way */ }
    return 0;
  }

  forget(node: Node): void {
    const n = this.ref(node);
    if (n === null) return;
    n.refs--;
    if (n.refs === 0) this.maybeFree(n);
  }

  /** Close every open handle and pin (the backend must not be used afterwards). */
  destroy(): void {
    for (const fh of [...this.fhs.keys()]) this.close(fh);
    for (const n of this.nodes.values()) {
      if (n.pin >= 0) { try { fs.closeSync(n.pin); } catch { /* ignore */ } n.pin = -1; }
    }
  }

  // ---- inspection (tests) ---------------------------------------------------------------------

  /** Number of open handles. */
  get openHandles(): number { return this.fhs.size; }
  /** Number of nodes in the table (the root included). */
  get liveNodes(): number { return this.nodes.size; }
}
