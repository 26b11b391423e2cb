/**
 * LocalBackend: a passthrough to a host directory (Linux host, Node only).
 *
 * Design notes
 *  - Nodes are path based: a table of {path relative to the root, refcount, host (dev, ino)}.
 *    Paths are kept as latin1-style strings (one char per byte, exact round trip) and handed to
 *    the native calls as Buffers, so names that are not UTF-8 work. One map path → node gives
 *    "same path, same host inode → same Node"; a lookup that finds a different inode at a known
 *    path (replaced on the host) detaches the old node and makes a new one.
 *  - Fids follow objects: renameat/rename rewrite the stored path of every node at or under the
 *    renamed path (QEMU's v9fs_fix_path); unlinkat/remove and rename-over mark the nodes of the
 *    removed path *detached*. A detached node keeps working through any open handle of it
 *    (fstat, and fd-relative calls for chmod/chown/truncate/utimes/xattrs/reopen). So that
 *    unopened fids of an object the guest unlinks keep working too (getattr/setattr/open/dup
 *    after unlink), the backend *pins* such a node just before unlinking it: an O_PATH fd (or
 *    the node's last open fd when it is closed while the node is detached), released at forget.
 *    Objects removed by someone else on the host are not pinned: their unopened nodes answer
 *    ENOENT (dup still answers, from the last attributes read, with nlink 0).
 *  - qid.path (Stat.ino) is the host st_ino for objects on the root's device (and below 2^52);
 *    any other (dev, ino) pair — a mount point inside the export — is remapped to 2^52 + n
 *    through a Map that lives as long as the backend (stable, never reused).
 *  - readdir cookies are positions in a per-open snapshot of the directory ("." = 1, ".." = 2,
 *    entries 3..), taken (getdents64) at the first readdir and retaken whenever cookie 0 is
 *    asked for. They are stable for that open handle however the directory changes, which is
 *    what `rm -rf` needs (Linux reads one whole listing through one open fid). Entries removed
 *    since the snapshot are skipped (each entry is fstatat'ed relative to the open directory fd).
 *  - Open flags are translated bit by bit from the Linux (x86) values to this host's
 *    fs.constants; O_NOFOLLOW and O_NONBLOCK are always added (a FIFO or tty must never block
 *    the server), O_CREAT is never passed by open. O_TRUNC is applied with ftruncate after the
 *    opened object was checked to be the node's inode.
 *  - Timestamps are read and written with nanosecond precision (utimensat; the time not given
 *    is UTIME_OMIT). mknod makes FIFOs, sockets and devices (mknodat; devices need CAP_MKNOD),
 *    xattrs are the host's (l*xattr through the confined resolution). chmod of a symlink is
 *    EOPNOTSUPP (Linux itself has none).
 *  - Tsetattr changes only the fields it names: set-id bits the host kernel drops on chown are
 *    put back (the guest kernel sends its own mode change when it wants them dropped).
 *  - statfs reports the host's figures under the V9FS_MAGIC type; `destroy()` closes every fd
 *    (the root fd included).
 *  - ownership: create/mkdir/symlink/mknod chown the new object to the given uid/gid (0xFFFFFFFF =
 *    not given) when running as root; as another user only the group is attempted, and EPERM is
 *    ignored (best effort). New objects get exactly mode & 0o7777 (the host umask is undone).
 *
 * Confinement ("the export root is a wall")
 *  - Every host path operation goes through native/fsops.c relative to an O_PATH fd of the
 *    export root, resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
 *    RESOLVE_NO_SYMLINKS) and the last component handled with one *at() call that never
 *    follows it. No `..`, absolute path or symlink can leave the root — including a directory
 *    that a process on the *host* swaps for a symlink after it was looked up (the kernel then
 *    fails the resolution with ELOOP; the old path-string race of this backend is gone).
 *  - Names are single components: empty, '/' or NUL → ENOENT; "." and ".." are handled (lookup)
 *    or refused (everything else) here and never reach the host; ".." at the root is the root,
 *    elsewhere it is the parent of the stored path.
 *  - Every opened object is fstat'ed and compared with the node's (dev, ino) before use.
 *    link() and rename() name both ends by confined paths (parent fd + name): a host-side swap
 *    can retarget them only to other objects inside the export.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Backend, Created, DirSink, Entry, Fh, Node, SetAttr, Stat, StatFs } from './backend.js';
import {
  O_ACCMODE, O_EXCL, O_RDONLY, O_TRUNC, AT_REMOVEDIR, S_IFMT, S_IFLNK, S_IFREG, S_IFBLK, S_IFDIR, S_IFCHR,
} from './backend.js';
import {
  E2BIG, EBADF, EBUSY, EEXIST, EINVAL, EISDIR, ENOENT, ENOSPC, ENOTDIR, ENXIO, EPERM, ERANGE, EROFS, P9Error,
} from '../errno.js';
import { fsops, REGULAR_ONLY, UTIME_OMIT, type FsOps } from '../helper/fsops.js';
import { PathNode, PathTable } from './path-table.js';
import { SnapshotBudget } from './dir-snapshots.js';
import {
  DOT, DOTDOT, FhTable, InoRemap, NO_ID, O_PATH, V9FS_MAGIC, dirname, fail, hostFlags, join, keyOf,
  lostEntry, mknodType, nameKind, newName, openFlags, renameNames, setattrPlan, unlinkName,
} from './path-common.js';

const C = fs.constants;
/** largest xattr value / list we hand out (the 9P side caps values at 64 KiB) */
const XATTR_MAX = 65536;

export interface LocalBackendOptions {
  /** The host directory to export. */
  root: string;
  /** Refuse every mutating operation with EROFS. */
  readonly?: boolean;
  /** Bytes all open directories' readdir listings may hold together (dir-snapshots.ts; default 64 MiB). */
  readdirBudget?: number;
}

/** A host stat: 16 × i64 in ProxyStat order (dev ino nlink mode uid gid rdev size blksize blocks
 *  atime atimens mtime mtimens ctime ctimens), as native/fsops.c fills it. */
type HS = BigInt64Array;
const newHS = (): HS => new BigInt64Array(16);
const hsIno = (s: HS): bigint => BigInt.asUintN(64, s[1]);
const hsMode = (s: HS): number => Number(s[3]);
const isDir = (s: HS): boolean => (hsMode(s) & S_IFMT) === S_IFDIR;

/** A file-system object known to the guest (see path-table.ts). */
type LNode = PathNode<OpenFile>;

class OpenFile {
  /** readdir snapshot (names), built at the first readdir / at cookie 0 */
  snap: Buffer[] | null = null;
  constructor(
    public readonly fd: number,
    public readonly node: LNode,
    public readonly seekable: boolean,
  ) {}
}

/** A native result: the value, or throw its errno. */
function chk(r: number): number {
  if (r < 0) throw new P9Error(-r);
  return r;
}

/** Linux new_encode_dev from a glibc dev_t. */
function encodeRdev(d: bigint): number {
  if (d === 0n) return 0;
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

/** glibc dev_t (gnu_dev_makedev) from major/minor. */
function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0), mi = BigInt(minor >>> 0);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

function clampTime(s: bigint, ns: bigint): [number, number] {
  if (s < 0n) return [0, 0];
  return [Number(s), Number(ns)];
}

const bufOf = (rel: string): Buffer => Buffer.from(rel, 'latin1');

export class LocalBackend implements Backend {
  /** the export root, resolved (realpath), as a latin1-style byte string */
  private readonly rootKey: string;
  /** the root as the caller named it (resolved, not realpath'ed) */
  private readonly givenKey: string;
  private readonly ro: boolean;
  private readonly isRoot: boolean;
  private readonly F: FsOps;
  /** O_PATH fd of the export root: every path is resolved beneath it */
  private rootFd: number;
  /** the node table (ids, paths, refcounts, renames); pins and open handles stay in this backend */
  private readonly table = new PathTable<LNode, HS>({
    make: (id, rel, st) => new PathNode(id, rel, st[0], hsIno(st), hsMode(st) & S_IFMT, this.qino(st[0], hsIno(st))),
    same: (n, st) => this.same(n, st),
    freed: (n) => {
      if (n.pin >= 0) {
        const fd = n.pin;
        n.pin = -1;
        this.F.close(fd);
      }
    },
    rootReplacedCode: 'ESTALE',
  });
  private readonly fhs = new FhTable<OpenFile>();
  /** qid.path of host (dev, ino) pairs; its rootDev is the export root's device */
  private readonly inos = new InoRemap();
  /** scratch stat buffer for calls whose result is consumed at once */
  private readonly tmp = newHS();
  /** the byte budget of readdir listings */
  readonly dirBudget: SnapshotBudget;

  constructor(opts: LocalBackendOptions) {
    const given = path.resolve(opts.root);
    const real = fs.realpathSync.native(Buffer.from(given), { encoding: 'buffer' });
    this.rootKey = real.toString('latin1');
    this.givenKey = Buffer.from(given).toString('latin1');
    this.ro = opts.readonly === true;
    this.dirBudget = new SnapshotBudget(opts.readdirBudget);
    this.F = fsops();
    const fd = this.F.openRoot(real);
    if (fd < 0) throw Object.assign(new Error(`cannot open the export root ${given}: errno ${-fd}`), { code: toCode(-fd) });
    this.rootFd = fd;
    const st = newHS();
    chk(this.F.fstat(fd, st));
    this.inos.rootDev = st[0];
    this.isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    this.table.addRoot(st);
  }

  // ---- internals ------------------------------------------------------------------------------

  /** lstat of rel beneath the root; null when it does not exist (other errors throw). */
  private lst(rel: string, out: HS = newHS()): HS | null {
    const r = this.F.stat(this.rootFd, bufOf(rel), out);
    if (r === -ENOENT) return null;
    chk(r);
    return out;
  }

  private fst(fd: number, out: HS = newHS()): HS {
    chk(this.F.fstat(fd, out));
    return out;
  }

  private qino(dev: bigint, ino: bigint): number {
    return this.inos.qino(dev, ino);
  }

  private toStat(st: HS): Stat {
    const [as, an] = clampTime(st[10], st[11]);
    const [ms, mn] = clampTime(st[12], st[13]);
    const [cs, cn] = clampTime(st[14], st[15]);
    return {
      ino: this.qino(st[0], hsIno(st)), mode: hsMode(st), uid: Number(st[4]), gid: Number(st[5]),
      nlink: Number(st[2]), rdev: encodeRdev(BigInt.asUintN(64, st[6])), size: Number(st[7]),
      blksize: Number(st[8]), blocks: Number(st[9]),
      atimeSec: as, atimeNsec: an, mtimeSec: ms, mtimeNsec: mn, ctimeSec: cs, ctimeNsec: cn,
    };
  }

  private entry(n: LNode, st: HS): Entry {
    const e = this.toStat(st) as Entry;
    n.last = e;
    e.node = n.id;
    return e;
  }

  private same(n: LNode, st: HS): boolean {
    return st[0] === n.dev && hsIno(st) === n.hino;
  }

  /** Any open fd of the node (or its pin), or -1. */
  private anyFd(n: LNode): number {
    for (const f of n.files) return f.fd;
    return n.pin;
  }

  /** A fresh O_PATH|O_NOFOLLOW fd of rel checked to be the node's inode, or -1. */
  private pathFd(n: LNode, rel: string): number {
    const fd = this.F.open(this.rootFd, bufOf(rel), O_PATH | C.O_NOFOLLOW, 0, 0);
    if (fd < 0) return -1;
    if (this.F.fstat(fd, this.tmp) === 0 && this.same(n, this.tmp)) return fd;
    this.F.close(fd);
    return -1;
  }

  /**
   * About to unlink / replace `rel` (and, for a directory, nothing live can be below it): pin
   * the node there, if the core holds it and it has no open handle, with an O_PATH fd so its
   * fids keep working on the unlinked object. Best effort: on failure the node just ends up
   * detached without a handle (ENOENT).
   */
  private pinPath(rel: string): void {
    const n = this.table.byPath.get(rel);
    if (n === undefined || n.refs === 0 || n.files.size > 0 || n.pin >= 0) return;
    const fd = this.pathFd(n, rel);
    if (fd >= 0) n.pin = fd;
  }

  /** Undo pinPath when the operation failed (the object is still linked). */
  private unpin(rel: string): void {
    const n = this.table.byPath.get(rel);
    if (n === undefined || n.pin < 0) return;
    const fd = n.pin;
    n.pin = -1;
    this.F.close(fd);
  }

  /** lstat of the node's path, checked to still be the node's inode (else the node is detached). */
  private liveStat(n: LNode): HS | null {
    if (n.detached) return null;
    const st = this.lst(n.path);
    if (st === null || !this.same(n, st)) {
      if (n !== this.table.root) this.table.detach(n);
      return null;
    }
    return st;
  }

  /**
   * An fd that names exactly the node's object (never a symlink's target): an open handle, its
   * pin, or a fresh O_PATH|O_NOFOLLOW fd checked against the node's inode. fsops calls with
   * (fd, "") then act on that object. Call `done()` afterwards. -ENOENT when unreachable.
   */
  private handle(n: LNode): { fd: number; done: () => void } | number {
    const fd0 = this.anyFd(n);
    if (fd0 >= 0) return { fd: fd0, done: () => {} };
    if (n.detached) return -ENOENT;
    const fd = this.pathFd(n, n.path);
    if (fd < 0) { if (n !== this.table.root) this.table.detach(n); return -ENOENT; }
    return { fd, done: () => { this.F.close(fd); } };
  }

  private addFile(fd: number, n: LNode): Fh {
    const t = n.type;
    const f = new OpenFile(fd, n, t === S_IFREG || t === S_IFDIR || t === S_IFBLK);
    const fh = this.fhs.add(f);
    n.files.add(f);
    return fh;
  }

  /** Open the node's object; returns the fd (checked to be the node's inode) or -errno. */
  private openNode(n: LNode, flags: number): number {
    const acc = flags & O_ACCMODE;
    const t = n.type;
    const hf = openFlags(t, flags);
    if (hf < 0) return hf;
    let fd = -1;
    if (!n.detached) {
      fd = this.F.open(this.rootFd, bufOf(n.path), hf, 0, REGULAR_ONLY);
      if (fd < 0 && fd !== -ENOENT) return fd;
      if (fd >= 0 && !(this.F.fstat(fd, this.tmp) === 0 && this.same(n, this.tmp))) {
        this.F.close(fd);
        fd = -1;
      }
      if (fd < 0 && n !== this.table.root) this.table.detach(n);
    }
    if (fd < 0) {
      // unlinked (or replaced on the host): reopen the object through one of its open handles
      const via = this.anyFd(n);
      if (via < 0) return -ENOENT;
      // the same inode as the node, whose type openFlags checked: a regular file or directory
      fd = fs.openSync(`/proc/self/fd/${via}`, hf & ~C.O_NOFOLLOW);
      const rt = hsMode(this.fst(fd)) & S_IFMT;
      if (rt !== S_IFREG && rt !== S_IFDIR) { this.F.close(fd); return -ENXIO; }
    }
    if ((flags & O_TRUNC) && acc !== O_RDONLY && t === S_IFREG) {
      try { fs.ftruncateSync(fd, 0); } catch (e) { this.F.close(fd); throw e; }
    }
    return fd;
  }

  /** chown the just-created object (fd, or dirfd + path) as far as we may: best effort. */
  private chownNew(uid: number, gid: number, fd: number, p: string | null): void {
    const u = this.isRoot && uid !== NO_ID ? uid : -1;
    const g = gid !== NO_ID ? gid : -1;
    if (u === -1 && g === -1) return;
    const r = p !== null ? this.F.chown(this.rootFd, bufOf(p), u, g) : this.F.chown(fd, '', u, g);
    if (r < 0 && r !== -EPERM && r !== -EINVAL) chk(r);
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
      let st: HS | null = null;
      for (const part of s.split('/')) {
        if (part === '' || part === '.') continue;
        if (part === '..') { rel = dirname(rel); st = null; continue; }
        rel = join(rel, part);
        st = this.lst(rel);
        if (st === null) return -ENOENT;
        if (!isDir(st)) return -ENOTDIR;
      }
      if (st === null) st = this.lst(rel);
      if (st === null) return -ENOENT;
      if (!isDir(st)) return -ENOTDIR;
      return this.entry(this.table.getNode(rel, st), st);
    } catch (e) { return fail(e); }
  }

  lookup(dir: Node, name: Uint8Array): Entry | number {
    const d = this.table.dirRef(dir);
    if (typeof d === 'number') return d;
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
      if (k === 2 && d === this.table.root) return this.lookup(dir, DOT);
      const rel = k === 2 ? dirname(d.path) : join(d.path, keyOf(name));
      const st = this.lst(rel);
      if (st === null) return -ENOENT;
      return this.entry(this.table.getNode(rel, st), st);
    } catch (e) { return fail(e); }
  }

  dup(node: Node): Entry | number {
    const n = this.table.ref(node);
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
    return lostEntry(n);
  }

  /** Attributes of the node's object: through an open handle if any, else lstat of its path. */
  private stat(n: LNode): HS | number {
    const fd = this.anyFd(n);
    if (fd >= 0) return this.fst(fd);
    return this.liveStat(n) ?? -ENOENT;
  }

  getattr(node: Node): Stat | number {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    try {
      const st = this.stat(n);
      if (typeof st === 'number') return st;
      return (n.last = this.toStat(st));
    } catch (e) { return fail(e); }
  }

  setattr(node: Node, attr: SetAttr): number {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    if (this.ro) return -EROFS;
    const t = n.type;
    const plan = setattrPlan(t, attr);
    if (typeof plan === 'number') return plan;
    const { uid, gid, times, other } = plan;
    try {
      // every call below acts on exactly the node's object: (its fd, "") — never a path a
      // symlink could redirect (a symlink's O_PATH fd names the link itself)
      const h = this.handle(n);
      if (typeof h === 'number') return h;
      const F = this.F, fd = h.fd;
      try {
        if (uid !== -1 || gid !== -1) {
          // Tsetattr changes only what it names: the host kernel drops set-id bits on chown, the
          // guest kernel already sent a mode change if it wanted them dropped — restore them
          const before = attr.mode === undefined && t !== S_IFDIR && t !== S_IFLNK ? hsMode(this.fst(fd)) & 0o7777 : 0;
          chk(F.chown(fd, '', uid, gid));
          if (before & 0o6000) {
            const r = F.chmod(fd, '', before);
            if (r < 0 && r !== -EPERM) chk(r);
          }
        }
        if (attr.mode !== undefined) chk(F.chmod(fd, '', attr.mode & 0o7777));
        if (attr.size !== undefined) chk(F.truncate(fd, '', attr.size));
        if (times) {
          const a = attr.atime ?? [0, UTIME_OMIT];
          const m = attr.mtime ?? [0, UTIME_OMIT];
          chk(F.utimes(fd, '', a[0], a[1], m[0], m[1]));
        }
        if (attr.ctime && !other) {
          // touch ctime only: for a symlink chown(-1,-1), else chmod to the current mode
          // (chown(-1,-1) would drop set-id bits)
          if (t === S_IFLNK) chk(F.chown(fd, '', -1, -1));
          else chk(F.chmod(fd, '', hsMode(this.fst(fd)) & 0o7777));
        }
      } finally { h.done(); }
      return 0;
    } catch (e) { return fail(e); }
  }

  open(node: Node, flags: number): Fh | number {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    if (this.ro && ((flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0)) return -EROFS;
    try {
      const fd = this.openNode(n, flags);
      return fd < 0 ? fd : this.addFile(fd, n);
    } catch (e) { return fail(e); }
  }

  create(dir: Node, name: Uint8Array, flags: number, mode: number, uid: number, gid: number): Created | number {
    const d = this.table.dirOf(dir);
    if (typeof d === 'number') return d;
    if (this.ro) return -EROFS;
    const key = newName(name);
    if (typeof key === 'number') return key;
    const acc = flags & O_ACCMODE;
    if (acc === O_ACCMODE) return -EINVAL;
    const rel = join(d.path, key);
    const p = bufOf(rel);
    try {
      const hf = hostFlags(flags);
      let created = false;
      let fd = this.F.open(this.rootFd, p, hf | C.O_CREAT | C.O_EXCL, mode & 0o7777, REGULAR_ONLY);
      if (fd >= 0) created = true;
      else if (fd === -EEXIST && !(flags & O_EXCL)) fd = this.F.open(this.rootFd, p, hf, 0, REGULAR_ONLY);
      chk(fd);
      let fh = 0;
      try {
        if (created) {
          this.chownNew(uid, gid, fd, null);
          chk(this.F.chmod(fd, '', mode & 0o7777)); // undo the umask (and restore set-id bits after chown)
        }
        let st = this.fst(fd);
        const t = hsMode(st) & S_IFMT;
        if (t === S_IFDIR) return -EISDIR;
        if (!created && (flags & O_TRUNC) && acc !== O_RDONLY && t === S_IFREG) {
          fs.ftruncateSync(fd, 0);
          st = this.fst(fd);
        }
        const n = this.table.getNode(rel, st);
        fh = this.addFile(fd, n);
        const out = this.toStat(st) as Created;
        out.node = n.id;
        out.fh = fh;
        return out;
      } finally {
        if (fh === 0) this.F.close(fd);
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

  /** Names of the open directory (getdents64 on its fd), without "." and "..". */
  private snapshot(fd: number): Buffer[] {
    const r = this.F.readdir(fd, 0, 0);
    if (typeof r === 'number') chk(r);
    const a = r as (bigint | Buffer | number)[];
    const out: Buffer[] = [];
    for (let i = 1; i + 3 < a.length + 1 && i < a.length; i += 4) {
      const name = a[i] as Buffer;
      if (name.length <= 2 && name[0] === 0x2e && (name.length === 1 || name[1] === 0x2e)) continue;
      out.push(name);
    }
    return out;
  }

  readdir(fh: Fh, cookie: number, sink: DirSink): number {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    const d = f.node;
    if (d.type !== S_IFDIR) return -ENOTDIR;
    try {
      if (cookie === 0 || f.snap === null) this.dirBudget.take(f, f.snap = this.snapshot(f.fd));
      else this.dirBudget.touch(f);
      if (cookie < 1) {
        if (!sink.push(d.ino, 1, S_IFDIR >> 12, DOT)) return 0;
      }
      if (cookie < 2) {
        let pino = d.ino;
        if (d !== this.table.root && !d.detached) {
          const pst = this.lst(dirname(d.path), this.tmp);
          if (pst !== null) pino = this.qino(pst[0], hsIno(pst));
        }
        if (!sink.push(pino, 2, S_IFDIR >> 12, DOTDOT)) return 0;
      }
      const snap = f.snap;
      const st = this.tmp;
      for (let i = Math.max(0, cookie - 2); i < snap.length; i++) {
        const name = snap[i];
        // one component relative to the open directory fd: no path, nothing followed
        const r = this.F.stat(f.fd, name, st);
        if (r === -ENOENT) continue; // removed since the snapshot
        chk(r);
        if (!sink.push(this.qino(st[0], hsIno(st)), i + 3, (hsMode(st) >> 12) & 15, name)) break;
        if (f.snap !== snap) break; // re-entered from the sink: stop safely
      }
      return 0;
    } catch (e) { return fail(e); }
  }

  readlink(node: Node): Uint8Array | number {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    if (n.type !== S_IFLNK) return -EINVAL;
    if (n.detached) return -ENOENT;
    try {
      const h = this.handle(n);
      if (typeof h === 'number') return h;
      try {
        // readlinkat(O_PATH fd of the link, "") through the parent: the node's own link
        const t = this.F.readlink(this.rootFd, bufOf(n.path));
        if (typeof t === 'number') return t;
        // check it is still the node's symlink (replaced on the host → ENOENT)
        return this.liveStat(n) === null ? -ENOENT : t;
      } finally { h.done(); }
    } catch (e) { return fail(e); }
  }

  /** After creating rel: chown (as far as allowed), exact mode, stat — all on the new object. */
  private finishNew(rel: string, mode: number | null, uid: number, gid: number): Stat {
    const p = bufOf(rel);
    const fd = chk(this.F.open(this.rootFd, p, O_PATH | C.O_NOFOLLOW, 0, 0));
    try {
      this.chownNew(uid, gid, fd, null);
      if (mode !== null) chk(this.F.chmod(fd, '', mode & 0o7777)); // undo the umask, restore set-id bits
      return this.toStat(this.fst(fd));
    } finally { this.F.close(fd); }
  }

  mkdir(dir: Node, name: Uint8Array, mode: number, uid: number, gid: number): Stat | number {
    const d = this.table.dirOf(dir);
    if (typeof d === 'number') return d;
    if (this.ro) return -EROFS;
    const key = newName(name);
    if (typeof key === 'number') return key;
    const rel = join(d.path, key);
    try {
      chk(this.F.mkdir(this.rootFd, bufOf(rel), mode & 0o7777));
      return this.finishNew(rel, mode, uid, gid);
    } catch (e) { return fail(e); }
  }

  symlink(dir: Node, name: Uint8Array, target: Uint8Array, uid: number, gid: number): Stat | number {
    const d = this.table.dirOf(dir);
    if (typeof d === 'number') return d;
    if (this.ro) return -EROFS;
    const key = newName(name);
    if (typeof key === 'number') return key;
    if (target.length === 0) return -ENOENT;
    for (let i = 0; i < target.length; i++) if (target[i] === 0) return -EINVAL;
    const rel = join(d.path, key);
    try {
      chk(this.F.symlink(target, this.rootFd, bufOf(rel)));
      return this.finishNew(rel, null, uid, gid);
    } catch (e) { return fail(e); }
  }

  mknod(dir: Node, name: Uint8Array, mode: number, major: number, minor: number, uid: number, gid: number): Stat | number {
    const d = this.table.dirOf(dir);
    if (typeof d === 'number') return d;
    if (this.ro) return -EROFS;
    const type = mknodType(mode);
    if (type < 0) return type;
    const key = newName(name);
    if (typeof key === 'number') return key;
    const rel = join(d.path, key);
    try {
      const rdev = type === S_IFCHR || type === S_IFBLK ? makedev(major, minor) : 0n;
      chk(this.F.mknod(this.rootFd, bufOf(rel), type | (mode & 0o7777), rdev));
      return this.finishNew(rel, mode, uid, gid);
    } catch (e) { return fail(e); }
  }

  link(dir: Node, name: Uint8Array, target: Node): number {
    const d = this.table.dirOf(dir);
    if (typeof d === 'number') return d;
    const t = this.table.ref(target);
    if (t === null) return -EBADF;
    if (this.ro) return -EROFS;
    if (t.type === S_IFDIR) return -EPERM;
    const key = newName(name);
    if (typeof key === 'number') return key;
    try {
      if (this.liveStat(t) === null) return -ENOENT;
      // linkat(2) without AT_SYMLINK_FOLLOW: a symlink `target` is linked itself
      return chk(this.F.link(this.rootFd, bufOf(t.path), this.rootFd, bufOf(join(d.path, key))));
    } catch (e) { return fail(e); }
  }

  /** rename(2) of oldRel → newRel plus the fid fixups. `expect`: the inode the source must be. */
  private doRename(oldRel: string, newRel: string, expect: LNode | null): number {
    if (oldRel === '') return -EBUSY;
    const ost = this.lst(oldRel);
    if (ost === null) return -ENOENT;
    if (expect !== null && !this.same(expect, ost)) {
      this.table.detach(expect);
      return -ENOENT;
    }
    const nst = this.lst(newRel);
    if (nst !== null && nst[0] === ost[0] && hsIno(nst) === hsIno(ost)) return 0; // same inode: no-op
    if (nst !== null) this.pinPath(newRel);
    const r = this.F.rename(this.rootFd, bufOf(oldRel), this.rootFd, bufOf(newRel), 0);
    if (r < 0) { if (nst !== null) this.unpin(newRel); return r; }
    this.table.movePaths(oldRel, newRel, isDir(ost), nst !== null && isDir(nst));
    return 0;
  }

  renameat(olddir: Node, oldname: Uint8Array, newdir: Node, newname: Uint8Array): number {
    const od = this.table.dirOf(olddir);
    if (typeof od === 'number') return od;
    const nd = this.table.dirOf(newdir);
    if (typeof nd === 'number') return nd;
    if (this.ro) return -EROFS;
    const bad = renameNames(oldname, newname);
    if (bad < 0) return bad;
    try {
      return this.doRename(join(od.path, keyOf(oldname)), join(nd.path, keyOf(newname)), null);
    } catch (e) { return fail(e); }
  }

  rename(node: Node, newdir: Node, newname: Uint8Array): number {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    const nd = this.table.dirOf(newdir);
    if (typeof nd === 'number') return nd;
    if (this.ro) return -EROFS;
    if (n === this.table.root) return -EBUSY;
    if (n.detached) return -ENOENT;
    const bad = renameNames(newname);
    if (bad < 0) return bad;
    try {
      return this.doRename(n.path, join(nd.path, keyOf(newname)), n);
    } catch (e) { return fail(e); }
  }

  unlinkat(dir: Node, name: Uint8Array, flags: number): number {
    const d = this.table.dirOf(dir);
    if (typeof d === 'number') return d;
    if (this.ro) return -EROFS;
    const key = unlinkName(name);
    if (typeof key === 'number') return key;
    const rel = join(d.path, key);
    try {
      this.pinPath(rel);
      // Linux unlink: EISDIR for a directory
      const r = this.F.unlink(this.rootFd, bufOf(rel), (flags & AT_REMOVEDIR) ? AT_REMOVEDIR : 0);
      if (r < 0) { this.unpin(rel); return r; }
      this.table.detachPath(rel, (flags & AT_REMOVEDIR) !== 0);
      return 0;
    } catch (e) { return fail(e); }
  }

  remove(node: Node): number {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    if (this.ro) return -EROFS;
    if (n === this.table.root) return -EBUSY;
    try {
      if (this.liveStat(n) === null) return -ENOENT;
      const dirp = n.type === S_IFDIR;
      const rel = n.path;
      this.pinPath(rel);
      const r = this.F.unlink(this.rootFd, bufOf(rel), dirp ? AT_REMOVEDIR : 0);
      if (r < 0) { this.unpin(rel); return r; }
      this.table.detachPath(rel, dirp);
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
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    try {
      const fd = this.anyFd(n);
      const s = new BigInt64Array(11);
      if (fd >= 0) chk(this.F.statfs(fd, '', s));
      else chk(this.F.statfs(this.rootFd, bufOf(n.detached ? '' : n.path), s));
      return {
        type: V9FS_MAGIC, bsize: Number(s[1]), blocks: Number(s[2]), bfree: Number(s[3]), bavail: Number(s[4]),
        files: Number(s[5]), ffree: Number(s[6]), fsid: Number(this.inos.rootDev & 0xFFFFFFFFn), namelen: 255,
      };
    } catch (e) { return fail(e); }
  }

  // ---- xattrs: the host's, on exactly the node's object ------------------------------------

  private withHandle<T>(node: Node, fn: (fd: number) => T | number): T | number {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    try {
      const h = this.handle(n);
      if (typeof h === 'number') return h;
      try { return fn(h.fd); } finally { h.done(); }
    } catch (e) { return fail(e); }
  }

  getxattr(node: Node, name: Uint8Array): Uint8Array | number {
    return this.withHandle(node, (fd) => {
      for (let tries = 0; tries < 4; tries++) {
        const len = this.F.getxattr(fd, '', name, 0) as number;
        if (len < 0) return len;
        if (len === 0) return new Uint8Array(0);
        if (len > XATTR_MAX) return -E2BIG;
        const v = this.F.getxattr(fd, '', name, len);
        if (v === -ERANGE) continue; // grew in between
        return v;
      }
      return -ERANGE;
    });
  }

  listxattr(node: Node): Uint8Array[] | number {
    return this.withHandle(node, (fd) => {
      for (let tries = 0; tries < 4; tries++) {
        const len = this.F.listxattr(fd, '', 0) as number;
        if (len < 0) return len;
        if (len === 0) return [];
        const v = this.F.listxattr(fd, '', len);
        if (v === -ERANGE) continue;
        if (typeof v === 'number') return v;
        const out: Uint8Array[] = [];
        let s = 0;
        for (let i = 0; i < v.length; i++) {
          if (v[i] === 0) { if (i > s) out.push(v.subarray(s, i)); s = i + 1; }
        }
        if (s < v.length) out.push(v.subarray(s));
        return out;
      }
      return -ERANGE;
    });
  }

  setxattr(node: Node, name: Uint8Array, value: Uint8Array, flags: number): number {
    if (this.table.ref(node) === null) return -EBADF;
    if (this.ro) return -EROFS;
    return this.withHandle(node, (fd) => this.F.setxattr(fd, '', name, value, flags));
  }

  removexattr(node: Node, name: Uint8Array): number {
    if (this.table.ref(node) === null) return -EBADF;
    if (this.ro) return -EROFS;
    return this.withHandle(node, (fd) => this.F.removexattr(fd, '', name));
  }

  close(fh: Fh): number {
    const f = this.fhs.take(fh);
    if (f === undefined) return -EBADF;
    f.snap = null;
    this.dirBudget.release(f);
    // the last handle of an unlinked object the core still holds is kept as its pin
    if (!this.table.closeHandle(f.node, f, f.fd)) this.F.close(f.fd);
    return 0;
  }

  forget(node: Node): void {
    this.table.unref(node);
  }

  /** Close every open handle, pin and the root fd (the backend must not be used afterwards). */
  destroy(): void {
    for (const fh of [...this.fhs.keys()]) this.close(fh);
    for (const n of this.table.nodes.values()) {
      if (n.pin >= 0) { this.F.close(n.pin); n.pin = -1; }
    }
    if (this.rootFd >= 0) { this.F.close(this.rootFd); this.rootFd = -1; }
  }

  // ---- inspection (tests) ---------------------------------------------------------------------

  /** Number of open handles. */
  get openHandles(): number { return this.fhs.size; }
  /** Number of nodes in the table (the root included). */
  get liveNodes(): number { return this.table.nodes.size; }
}

function toCode(errno: number): string {
  return errno === ENOENT ? 'ENOENT' : errno === ENOTDIR ? 'ENOTDIR' : 'EIO';
}
