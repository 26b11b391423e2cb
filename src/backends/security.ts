/**
 * Security models, in QEMU's vocabulary (`-fsdev local,security_model=…`), as one wrapper over
 * any backend — local, proxy or memory — so each model is written once.
 *
 * - `passthrough`: the guest's owners, modes, device nodes and xattrs are the host's (the inner
 *   backend as it is; the server needs the privileges to do what the guest asks).
 * - `none`: passthrough in which an owner the host refuses is ignored (as QEMU's "none"); our
 *   path backends already treat a refused chown of a new object that way.
 * - `mapped-xattr`: nothing the guest sets on owners, modes or types reaches the host's own
 *   metadata. Host objects are created owned by the server's user with `fmode` (files) or
 *   `dmode` (directories); the guest's uid, gid, mode (with its type bits) and rdev are kept in
 *   the xattrs `user.virtfs.uid`, `.gid`, `.mode` (4 bytes, little-endian) and `.rdev` (8 bytes,
 *   little-endian): QEMU's byte format, so trees move between QEMU and us. Device nodes, FIFOs
 *   and sockets are regular files with their type in `user.virtfs.mode`; a symlink is a regular
 *   file holding its target. The guest never sees or sets `user.virtfs.*`; its `system.*`,
 *   `security.*` and `trusted.*` xattrs are stored as `user.virtfs.<name>` (QEMU maps its POSIX
 *   ACLs so), so no capability, SELinux label or ACL of the guest lands on a real file.
 *
 * Opening any object whose (mapped) type is not a regular file or directory is ENXIO on every
 * model. Operations are written once as generators over the inner backend's results and driven
 * synchronously while the inner backend answers synchronously (the local and memory backends),
 * asynchronously otherwise (the proxy).
 */
import type { Backend, Created, DirSink, Entry, Fh, Node, Res, SetAttr, Stat, StatFs } from './backend.js';
import {
  O_EXCL, O_RDONLY, O_WRONLY, S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK,
} from './backend.js';
import { EACCES, EINVAL, ELOOP, ENODATA, ENXIO, EOPNOTSUPP, EPERM } from '../errno.js';

export const SECURITY_MODELS = ['passthrough', 'mapped-xattr', 'none'] as const;
export type SecurityModel = (typeof SECURITY_MODELS)[number];
/** What a backend built for `virtio9p serve` uses when nothing is asked. */
export const DEFAULT_SECURITY_MODEL: SecurityModel = 'mapped-xattr';

export interface SecurityOptions {
  model: SecurityModel;
  /** host permission bits of files the guest creates in the mapped models (QEMU's fmode) */
  fmode?: number;
  /** host permission bits of directories the guest creates in the mapped models (QEMU's dmode) */
  dmode?: number;
}

const NO_ID = 0xFFFFFFFF;
const SYMLINK_MAX = 4096;
const enc = new TextEncoder();
const X_UID = enc.encode('user.virtfs.uid');
const X_GID = enc.encode('user.virtfs.gid');
const X_MODE = enc.encode('user.virtfs.mode');
const X_RDEV = enc.encode('user.virtfs.rdev');
const VIRTFS = enc.encode('user.virtfs.');
const MAPPED_NS = ['system.', 'security.', 'trusted.'].map((s) => enc.encode(s));

function startsWith(b: Uint8Array, p: Uint8Array): boolean {
  if (b.length < p.length) return false;
  for (let i = 0; i < p.length; i++) if (b[i] !== p[i]) return false;
  return true;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const o = new Uint8Array(a.length + b.length);
  o.set(a, 0);
  o.set(b, a.length);
  return o;
}

function le32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}

function le64(v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return b;
}

/** A little-endian value of 4 or 8 bytes (as QEMU writes them), or null when absent or malformed. */
function readLe(v: unknown): number | null {
  if (!(v instanceof Uint8Array) || (v.length !== 4 && v.length !== 8)) return null;
  const dv = new DataView(v.buffer, v.byteOffset, v.length);
  return v.length === 4 ? dv.getUint32(0, true) : Number(dv.getBigUint64(0, true) & 0xFFFFFFFFn);
}

const isErr = (v: unknown): v is number => typeof v === 'number' && v < 0;

// ---- the generator runner: synchronous while the inner backend is -------------------------------

type Op<T> = Generator<unknown, T, unknown>;

function run<T>(g: Op<T>): Res<T> {
  let r = g.next();
  while (!r.done) {
    const v = r.value;
    if (v instanceof Promise) return resume(g, v);
    r = g.next(v);
  }
  return r.value as Res<T>;
}

async function resume<T>(g: Op<T>, first: Promise<unknown>): Promise<T> {
  let p: unknown = first;
  for (;;) {
    let r: IteratorResult<unknown, T>;
    try { r = g.next(await p); } catch (e) { r = g.throw(e); }
    if (r.done) return r.value;
    p = r.value;
  }
}

// ---- the mapped-xattr model ------------------------------------------------------------------------

/** The guest's view of one object's metadata, from its user.virtfs.* xattrs. */
interface Mapped { uid: number | null; gid: number | null; mode: number | null; rdev: number | null }

export class MappedXattrBackend implements Backend {
  private readonly fmode: number;
  private readonly dmode: number;

  constructor(readonly inner: Backend, opts: { fmode?: number; dmode?: number } = {}) {
    this.fmode = (opts.fmode ?? 0o600) & 0o777;
    this.dmode = (opts.dmode ?? 0o700) & 0o777;
  }

  private *mapped(node: Node): Op<Mapped> {
    const uid = readLe(yield this.inner.getxattr(node, X_UID));
    const gid = readLe(yield this.inner.getxattr(node, X_GID));
    const mode = readLe(yield this.inner.getxattr(node, X_MODE));
    const rdev = readLe(yield this.inner.getxattr(node, X_RDEV));
    return { uid, gid, mode, rdev };
  }

  /** A copy of `st` as the guest sees it (never mutate the inner backend's objects). */
  private *view<S extends Stat>(st: S): Op<S> {
    const m = yield* this.mapped((st as unknown as Entry).node ?? 0);
    return this.apply(st, m);
  }

  private apply<S extends Stat>(st: S, m: Mapped): S {
    const out = { ...st };
    if (m.uid !== null) out.uid = m.uid;
    if (m.gid !== null) out.gid = m.gid;
    if (m.mode !== null) {
      // a mode without type bits keeps the host's type (a directory stays a directory)
      const t = (m.mode & S_IFMT) !== 0 ? m.mode & S_IFMT : st.mode & S_IFMT;
      out.mode = t | (m.mode & 0o7777);
    }
    if (m.rdev !== null) out.rdev = m.rdev;
    if ((out.mode & S_IFMT) !== S_IFCHR && (out.mode & S_IFMT) !== S_IFBLK) out.rdev = st.rdev;
    return out;
  }

  private *entry(e: unknown): Op<Entry | number> {
    if (isErr(e)) return e;
    return yield* this.view(e as Entry);
  }

  private *statOf(node: Node): Op<Stat | number> {
    const st = yield this.inner.getattr(node);
    if (isErr(st)) return st;
    const m = yield* this.mapped(node);
    return this.apply(st as Stat, m);
  }

  /** Record the guest's owner, mode and rdev of a new object; on failure remove it again. */
  private *record(dir: Node, name: Uint8Array, node: Node, uid: number, gid: number, mode: number, rdev: number | null, isDir: boolean): Op<number> {
    const sets: [Uint8Array, Uint8Array][] = [];
    if (uid !== NO_ID) sets.push([X_UID, le32(uid)]);
    if (gid !== NO_ID) sets.push([X_GID, le32(gid)]);
    sets.push([X_MODE, le32(mode)]);
    if (rdev !== null) sets.push([X_RDEV, le64(rdev)]);
    for (const [k, v] of sets) {
      const r = yield this.inner.setxattr(node, k, v, 0);
      if (isErr(r)) {
        yield this.inner.unlinkat(dir, name, isDir ? 0x200 : 0);
        // a host file system without user xattrs cannot hold this model
        return r === -EOPNOTSUPP || r === -EPERM ? -EOPNOTSUPP : r;
      }
    }
    return 0;
  }

  attach(aname: Uint8Array, uid: number): Res<Entry> {
    return run(this.entry0(this.inner.attach(aname, uid)));
  }

  private *entry0(p: Res<Entry>): Op<Entry | number> {
    return yield* this.entry(yield p);
  }

  lookup(dir: Node, name: Uint8Array): Res<Entry> { return run(this.entry0(this.inner.lookup(dir, name))); }
  dup(node: Node): Res<Entry> { return run(this.entry0(this.inner.dup(node))); }
  getattr(node: Node): Res<Stat> { return run(this.statOf(node)); }

  setattr(node: Node, attr: SetAttr): Res<number> { return run(this.setattrOp(node, attr)); }

  private *setattrOp(node: Node, attr: SetAttr): Op<number> {
    if (attr.mode !== undefined || attr.uid !== undefined || attr.gid !== undefined) {
      const st = yield* this.statOf(node);
      if (isErr(st)) return st;
      const s = st as Stat;
      if (attr.mode !== undefined) {
        const r = yield this.inner.setxattr(node, X_MODE, le32((s.mode & S_IFMT) | (attr.mode & 0o7777)), 0);
        if (isErr(r)) return r;
      }
      if (attr.uid !== undefined) {
        const r = yield this.inner.setxattr(node, X_UID, le32(attr.uid), 0);
        if (isErr(r)) return r;
      }
      if (attr.gid !== undefined) {
        const r = yield this.inner.setxattr(node, X_GID, le32(attr.gid), 0);
        if (isErr(r)) return r;
      }
    }
    // size and times are the host file's own; a metadata-only change still touches ctime
    const rest: SetAttr = {};
    if (attr.size !== undefined) rest.size = attr.size;
    if (attr.atime !== undefined) rest.atime = attr.atime;
    if (attr.mtime !== undefined) rest.mtime = attr.mtime;
    if (rest.size === undefined && rest.atime === undefined && rest.mtime === undefined) rest.ctime = true;
    const r = yield this.inner.setattr(node, rest);
    return r as number;
  }

  open(node: Node, flags: number): Res<Fh> { return run(this.openOp(node, flags)); }

  private *openOp(node: Node, flags: number): Op<number> {
    const st = yield* this.statOf(node);
    if (isErr(st)) return st;
    const t = (st as Stat).mode & S_IFMT;
    if (t === S_IFLNK) return -ELOOP;
    if (t !== S_IFREG && t !== S_IFDIR) return -ENXIO;
    return (yield this.inner.open(node, flags)) as number;
  }

  create(dir: Node, name: Uint8Array, flags: number, mode: number, uid: number, gid: number): Res<Created> {
    return run(this.createOp(dir, name, flags, mode, uid, gid));
  }

  private *createOp(dir: Node, name: Uint8Array, flags: number, mode: number, uid: number, gid: number): Op<Created | number> {
    const c = yield this.inner.create(dir, name, flags | O_EXCL, this.fmode, NO_ID, NO_ID);
    if (!isErr(c)) {
      const cr = c as Created;
      const e = yield* this.record(dir, name, cr.node, uid, gid, S_IFREG | (mode & 0o7777), null, false);
      if (e < 0) { yield this.inner.close(cr.fh); this.inner.forget(cr.node); return e; }
      return yield* this.view(cr);
    }
    if (c !== -17 /* EEXIST */ || (flags & O_EXCL)) return c as number;
    // an existing name: open it, but only if the guest's view says it is a regular file
    const ent = yield this.inner.lookup(dir, name);
    if (isErr(ent)) return ent;
    const en = yield* this.view(ent as Entry);
    const t = en.mode & S_IFMT;
    let err = 0;
    if (t === S_IFDIR) err = -21; // EISDIR
    else if (t === S_IFLNK) err = -ELOOP;
    else if (t !== S_IFREG) err = -ENXIO;
    if (err < 0) { this.inner.forget(en.node); return err; }
    const fh = yield this.inner.open(en.node, flags);
    if (isErr(fh)) { this.inner.forget(en.node); return fh; }
    const st = yield* this.statOf(en.node);
    if (isErr(st)) { yield this.inner.close(fh as number); this.inner.forget(en.node); return st; }
    return { ...(st as Stat), node: en.node, fh: fh as number };
  }

  read(fh: Fh, offset: number, dst: Uint8Array[]): Res<number> { return this.inner.read(fh, offset, dst); }
  write(fh: Fh, offset: number, src: Uint8Array[]): Res<number> { return this.inner.write(fh, offset, src); }

  readdir(fh: Fh, cookie: number, sink: DirSink): Res<number> {
    // a host file may stand for a symlink or a node (its type is in the xattrs): DT_UNKNOWN
    // makes the guest ask, as QEMU's mapped models do; directories are real directories
    const s: DirSink = { push: (ino, next, dtype, name) => sink.push(ino, next, dtype === 8 ? 0 : dtype, name) };
    return this.inner.readdir(fh, cookie, s);
  }

  readlink(node: Node): Res<Uint8Array> { return run(this.readlinkOp(node)); }

  private *readlinkOp(node: Node): Op<Uint8Array | number> {
    const st = yield* this.statOf(node);
    if (isErr(st)) return st;
    const s = st as Stat;
    if ((s.mode & S_IFMT) !== S_IFLNK) return -EINVAL;
    // a real host symlink (made on the host) reads as itself
    const hostSt = yield this.inner.getattr(node);
    if (!isErr(hostSt) && ((hostSt as Stat).mode & S_IFMT) === S_IFLNK) return (yield this.inner.readlink(node)) as Uint8Array | number;
    const fh = yield this.inner.open(node, O_RDONLY);
    if (isErr(fh)) return fh;
    const buf = new Uint8Array(SYMLINK_MAX);
    const n = yield this.inner.read(fh as number, 0, [buf]);
    yield this.inner.close(fh as number);
    if (isErr(n)) return n;
    return buf.slice(0, n as number);
  }

  mkdir(dir: Node, name: Uint8Array, mode: number, uid: number, gid: number): Res<Stat> {
    return run(this.makeOp(dir, name, S_IFDIR | (mode & 0o7777), uid, gid, null, null));
  }

  symlink(dir: Node, name: Uint8Array, target: Uint8Array, uid: number, gid: number): Res<Stat> {
    return run(this.makeOp(dir, name, S_IFLNK | 0o777, uid, gid, null, target));
  }

  mknod(dir: Node, name: Uint8Array, mode: number, major: number, minor: number, uid: number, gid: number): Res<Stat> {
    let t = mode & S_IFMT;
    if (t === 0) t = S_IFREG;
    if (t === S_IFDIR) return -EPERM;
    const rdev = t === S_IFCHR || t === S_IFBLK
      ? ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0 : 0;
    return run(this.makeOp(dir, name, t | (mode & 0o7777), uid, gid, rdev, null));
  }

  /** A directory, or a regular file standing for a file, node or symlink (with its target). */
  private *makeOp(dir: Node, name: Uint8Array, mode: number, uid: number, gid: number, rdev: number | null, target: Uint8Array | null): Op<Stat | number> {
    const isDir = (mode & S_IFMT) === S_IFDIR;
    let node: Node;
    if (isDir) {
      const r = yield this.inner.mkdir(dir, name, this.dmode, NO_ID, NO_ID);
      if (isErr(r)) return r;
      const ent = yield this.inner.lookup(dir, name);
      if (isErr(ent)) return ent;
      node = (ent as Entry).node;
    } else {
      const c = yield this.inner.create(dir, name, (target !== null ? O_WRONLY : O_RDONLY) | O_EXCL, this.fmode, NO_ID, NO_ID);
      if (isErr(c)) return c;
      const cr = c as Created;
      node = cr.node;
      let e = 0;
      if (target !== null && target.length > 0) {
        const w = yield this.inner.write(cr.fh, 0, [target]);
        if (isErr(w)) e = w;
        else if ((w as number) !== target.length) e = -28; // ENOSPC
      }
      yield this.inner.close(cr.fh);
      if (e < 0) { yield this.inner.unlinkat(dir, name, 0); this.inner.forget(node); return e; }
    }
    const e = yield* this.record(dir, name, node, uid, gid, mode, rdev, isDir);
    if (e < 0) { this.inner.forget(node); return e; }
    const st = yield* this.statOf(node);
    this.inner.forget(node);
    return st;
  }

  link(dir: Node, name: Uint8Array, target: Node): Res<number> { return this.inner.link(dir, name, target); }
  renameat(olddir: Node, oldname: Uint8Array, newdir: Node, newname: Uint8Array): Res<number> {
    return this.inner.renameat(olddir, oldname, newdir, newname);
  }
  rename(node: Node, newdir: Node, newname: Uint8Array): Res<number> { return this.inner.rename(node, newdir, newname); }
  unlinkat(dir: Node, name: Uint8Array, flags: number): Res<number> { return this.inner.unlinkat(dir, name, flags); }
  remove(node: Node): Res<number> { return this.inner.remove(node); }
  fsync(fh: Fh, datasync: boolean): Res<number> { return this.inner.fsync(fh, datasync); }
  statfs(node: Node): Res<StatFs> { return this.inner.statfs(node); }

  /** The host name of a guest xattr name, or -errno (the guest may not name user.virtfs.*). */
  private hostName(name: Uint8Array): Uint8Array | number {
    if (startsWith(name, VIRTFS)) return -EACCES;
    for (const ns of MAPPED_NS) if (startsWith(name, ns)) return concat(VIRTFS, name);
    return name;
  }

  getxattr(node: Node, name: Uint8Array): Res<Uint8Array> {
    if (startsWith(name, VIRTFS)) return -ENODATA;
    const h = this.hostName(name);
    return typeof h === 'number' ? h : this.inner.getxattr(node, h);
  }

  listxattr(node: Node): Res<Uint8Array[]> { return run(this.listOp(node)); }

  private *listOp(node: Node): Op<Uint8Array[] | number> {
    const l = yield this.inner.listxattr(node);
    if (isErr(l)) return l;
    const out: Uint8Array[] = [];
    for (const n of l as Uint8Array[]) {
      if (!startsWith(n, VIRTFS)) { out.push(n); continue; }
      const rest = n.subarray(VIRTFS.length);
      if (MAPPED_NS.some((ns) => startsWith(rest, ns))) out.push(rest);
    }
    return out;
  }

  setxattr(node: Node, name: Uint8Array, value: Uint8Array, flags: number): Res<number> {
    const h = this.hostName(name);
    return typeof h === 'number' ? h : this.inner.setxattr(node, h, value, flags);
  }

  removexattr(node: Node, name: Uint8Array): Res<number> {
    const h = this.hostName(name);
    return typeof h === 'number' ? h : this.inner.removexattr(node, h);
  }

  close(fh: Fh): Res<number> { return this.inner.close(fh); }
  forget(node: Node): void { this.inner.forget(node); }
}

/** `inner` under the chosen security model. */
export function withSecurityModel(inner: Backend, opts: SecurityOptions): Backend {
  switch (opts.model) {
    case 'passthrough':
    case 'none':
      return inner;
    case 'mapped-xattr':
      return new MappedXattrBackend(inner, opts);
  }
}
