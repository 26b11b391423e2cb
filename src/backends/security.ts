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
import { isErr, run, type Op } from './op.js';
import type { Backend, Created, DirSink, Entry, Fh, Node, Res, SetAttr, Stat, StatFs } from './backend.js';
import {
  O_EXCL, O_RDONLY, O_TRUNC, O_WRONLY, S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK,
} from './backend.js';
import { EACCES, EINVAL, ELOOP, ENODATA, ENXIO, EOPNOTSUPP, EPERM } from '../errno.js';

export const SECURITY_MODELS = ['passthrough', 'mapped-xattr', 'mapped-file', 'none'] as const;
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

// ---- the mapped models -------------------------------------------------------------------------------

/** The guest's view of one object's metadata (null: not recorded, or not to be changed). */
export interface Mapped { uid: number | null; gid: number | null; mode: number | null; rdev: number | null }

/** Where a node handed to the core was found: by name in a directory, or the attach root. */
export type Where = { dir: Node; name: Uint8Array } | 'root';

/**
 * The mapped models: everything but where the guest's metadata is kept (readMeta/writeMeta,
 * in the subclasses). `track`/`untrack` see every node handed to the core and given back.
 */
export abstract class MappedBackend implements Backend {
  protected readonly fmode: number;
  protected readonly dmode: number;

  constructor(readonly inner: Backend, opts: { fmode?: number; dmode?: number } = {}) {
    this.fmode = (opts.fmode ?? 0o600) & 0o777;
    this.dmode = (opts.dmode ?? 0o700) & 0o777;
  }

  protected abstract readMeta(node: Node): Op<Mapped>;
  /** Record the non-null fields of `m` for `node`; 0 or -errno. */
  protected abstract writeMeta(node: Node, m: Mapped): Op<number>;
  protected *track(_e: Entry, _where: Where): Op<void> { /* path-free stores need nothing */ }
  protected untrack(_node: Node): void { /* as above */ }
  /** A last correction of what the guest sees (mapped-file hides its metadata directory). */
  protected *adjust<S extends Stat>(st: S, _node: Node): Op<S> { return st; }
  /** One more reference to a tracked node (a dup). */
  protected retain(_node: Node): void { /* as above */ }

  private *mapped(node: Node): Op<Mapped> {
    return yield* this.readMeta(node);
  }

  /** A copy of `st` as the guest sees it (never mutate the inner backend's objects). */
  private *view<S extends Stat>(st: S): Op<S> {
    const node = (st as unknown as Entry).node ?? 0;
    const m = yield* this.mapped(node);
    return yield* this.adjust(this.apply(st, m), node);
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
    return yield* this.adjust(this.apply(st as Stat, m), node);
  }

  /** Record the guest's owner, mode and rdev of a new object; on failure remove it again. */
  private *record(dir: Node, name: Uint8Array, node: Node, uid: number, gid: number, mode: number, rdev: number | null, isDir: boolean): Op<number> {
    const r = yield* this.writeMeta(node, { uid: uid !== NO_ID ? uid : null, gid: gid !== NO_ID ? gid : null, mode, rdev });
    if (r < 0) {
      yield* this.removeName(dir, name, isDir ? 0x200 : 0);
      // a host file system without user xattrs cannot hold this model
      return r === -EOPNOTSUPP || r === -EPERM ? -EOPNOTSUPP : r;
    }
    return 0;
  }

  /** unlinkat as this model does it (mapped-file also removes the metadata). */
  protected *removeName(dir: Node, name: Uint8Array, flags: number): Op<number> {
    return (yield this.inner.unlinkat(dir, name, flags)) as number;
  }

  /** A node the inner backend handed out, tracked and seen as the guest sees it. */
  private *found(p: Res<Entry>, where: Where | 'same'): Op<Entry | number> {
    const e = yield p;
    if (isErr(e)) return e;
    const en = e as Entry;
    if (where !== 'same') yield* this.track(en, where);
    else this.retain(en.node);
    return yield* this.view(en);
  }

  attach(aname: Uint8Array, uid: number): Res<Entry> {
    return run(this.found(this.inner.attach(aname, uid), 'root'));
  }

  lookup(dir: Node, name: Uint8Array): Res<Entry> {
    const h = this.hidden(dir, name);
    if (h < 0) return h;
    return run(this.found(this.inner.lookup(dir, name), { dir, name: name.slice() }));
  }
  dup(node: Node): Res<Entry> { return run(this.found(this.inner.dup(node), 'same')); }
  /** -ENOENT for names the model keeps for itself, else 0. */
  protected hidden(_dir: Node, _name: Uint8Array): number { return 0; }
  getattr(node: Node): Res<Stat> { return run(this.statOf(node)); }

  setattr(node: Node, attr: SetAttr): Res<number> { return run(this.setattrOp(node, attr)); }

  private *setattrOp(node: Node, attr: SetAttr): Op<number> {
    if (attr.mode !== undefined || attr.uid !== undefined || attr.gid !== undefined) {
      const st = yield* this.statOf(node);
      if (isErr(st)) return st;
      const s = st as Stat;
      const r = yield* this.writeMeta(node, {
        mode: attr.mode !== undefined ? (s.mode & S_IFMT) | (attr.mode & 0o7777) : null,
        uid: attr.uid ?? null, gid: attr.gid ?? null, rdev: null,
      });
      if (r < 0) return r;
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
    const h = this.reserved(dir, name);
    if (h < 0) return h;
    const c = yield this.inner.create(dir, name, flags | O_EXCL, this.fmode, NO_ID, NO_ID);
    if (!isErr(c)) {
      const cr = c as Created;
      yield* this.track(cr, { dir, name: name.slice() });
      const e = yield* this.record(dir, name, cr.node, uid, gid, S_IFREG | (mode & 0o7777), null, false);
      if (e < 0) { yield this.inner.close(cr.fh); this.release(cr.node); return e; }
      return yield* this.view(cr);
    }
    if (c !== -17 /* EEXIST */ || (flags & O_EXCL)) return c as number;
    // an existing name: open it, but only if the guest's view says it is a regular file
    const ent = yield* this.found(this.inner.lookup(dir, name), { dir, name: name.slice() });
    if (isErr(ent)) return ent;
    const en = ent as Entry;
    const t = en.mode & S_IFMT;
    let err = 0;
    if (t === S_IFDIR) err = -21; // EISDIR
    else if (t === S_IFLNK) err = -ELOOP;
    else if (t !== S_IFREG) err = -ENXIO;
    if (err < 0) { this.release(en.node); return err; }
    const fh = yield this.inner.open(en.node, flags);
    if (isErr(fh)) { this.release(en.node); return fh; }
    const st = yield* this.statOf(en.node);
    if (isErr(st)) { yield this.inner.close(fh as number); this.release(en.node); return st; }
    return { ...(st as Stat), node: en.node, fh: fh as number };
  }

  read(fh: Fh, offset: number, dst: Uint8Array[]): Res<number> { return this.inner.read(fh, offset, dst); }
  write(fh: Fh, offset: number, src: Uint8Array[]): Res<number> { return this.inner.write(fh, offset, src); }

  readdir(fh: Fh, cookie: number, sink: DirSink): Res<number> {
    return this.readdirAs(fh, cookie, sink);
  }

  protected readdirAs(fh: Fh, cookie: number, sink: DirSink): Res<number> {
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
    // the target is file content here: the checks symlink(2) would make
    if (target.length === 0) return -2; // ENOENT
    if (target.length >= SYMLINK_MAX) return -36; // ENAMETOOLONG
    if (target.includes(0)) return -EINVAL;
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
    const h = this.reserved(dir, name);
    if (h < 0) return h;
    const isDir = (mode & S_IFMT) === S_IFDIR;
    const where = { dir, name: name.slice() };
    let node: Node;
    if (isDir) {
      const r = yield this.inner.mkdir(dir, name, this.dmode, NO_ID, NO_ID);
      if (isErr(r)) return r;
      const ent = yield this.inner.lookup(dir, name);
      if (isErr(ent)) return ent;
      node = (ent as Entry).node;
      yield* this.track(ent as Entry, where);
    } else {
      const c = yield this.inner.create(dir, name, (target !== null ? O_WRONLY : O_RDONLY) | O_EXCL, this.fmode, NO_ID, NO_ID);
      if (isErr(c)) return c;
      const cr = c as Created;
      node = cr.node;
      yield* this.track(cr, where);
      let e = 0;
      if (target !== null && target.length > 0) {
        const w = yield this.inner.write(cr.fh, 0, [target]);
        if (isErr(w)) e = w;
        else if ((w as number) !== target.length) e = -28; // ENOSPC
      }
      yield this.inner.close(cr.fh);
      if (e < 0) { yield this.inner.unlinkat(dir, name, 0); this.release(node); return e; }
    }
    const e = yield* this.record(dir, name, node, uid, gid, mode, rdev, isDir);
    if (e < 0) { this.release(node); return e; }
    const st = yield* this.statOf(node);
    this.release(node);
    return st;
  }

  /** -EINVAL for names the model keeps for itself (creating them), else 0. */
  protected reserved(_dir: Node, _name: Uint8Array): number { return 0; }

  /** Give back a reference this wrapper took (never handed to the core). */
  private release(node: Node): void {
    this.untrack(node);
    this.inner.forget(node);
  }

  link(dir: Node, name: Uint8Array, target: Node): Res<number> {
    const h = this.reserved(dir, name);
    return h < 0 ? h : this.inner.link(dir, name, target);
  }
  renameat(olddir: Node, oldname: Uint8Array, newdir: Node, newname: Uint8Array): Res<number> {
    const h = this.hidden(olddir, oldname) || this.reserved(newdir, newname);
    return h < 0 ? h : this.inner.renameat(olddir, oldname, newdir, newname);
  }
  rename(node: Node, newdir: Node, newname: Uint8Array): Res<number> {
    const h = this.reserved(newdir, newname);
    return h < 0 ? h : this.inner.rename(node, newdir, newname);
  }
  unlinkat(dir: Node, name: Uint8Array, flags: number): Res<number> {
    const h = this.hidden(dir, name);
    return h < 0 ? h : run(this.removeName(dir, name, flags));
  }
  remove(node: Node): Res<number> { return this.inner.remove(node); }
  fsync(fh: Fh, datasync: boolean): Res<number> { return this.inner.fsync(fh, datasync); }
  statfs(node: Node): Res<StatFs> { return this.inner.statfs(node); }

  /** The host name of a guest xattr name, or -errno (the guest may not name user.virtfs.*). */
  protected hostName(name: Uint8Array): Uint8Array | number {
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
  destroy(): unknown { return this.inner.destroy?.(); }
  forget(node: Node): void { this.release(node); }
}

/** mapped-xattr: the guest's metadata in user.virtfs.{uid,gid,mode,rdev} of the object itself. */
export class MappedXattrBackend extends MappedBackend {
  protected *readMeta(node: Node): Op<Mapped> {
    const uid = readLe(yield this.inner.getxattr(node, X_UID));
    const gid = readLe(yield this.inner.getxattr(node, X_GID));
    const mode = readLe(yield this.inner.getxattr(node, X_MODE));
    const rdev = readLe(yield this.inner.getxattr(node, X_RDEV));
    return { uid, gid, mode, rdev };
  }

  protected *writeMeta(node: Node, m: Mapped): Op<number> {
    const sets: [Uint8Array, Uint8Array][] = [];
    if (m.uid !== null) sets.push([X_UID, le32(m.uid)]);
    if (m.gid !== null) sets.push([X_GID, le32(m.gid)]);
    if (m.mode !== null) sets.push([X_MODE, le32(m.mode)]);
    if (m.rdev !== null) sets.push([X_RDEV, le64(m.rdev)]);
    for (const [k, v] of sets) {
      const r = yield this.inner.setxattr(node, k, v, 0);
      if (isErr(r)) return r as number;
    }
    return 0;
  }
}

const META_DIR = enc.encode('.virtfs_metadata');
const META_ROOT = enc.encode('.virtfs_metadata_root');
const USER_NS = enc.encode('user.');
const dec = new TextDecoder();
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && startsWith(a, b);

/** 'gone': unlinked or replaced; its metadata lives on in `meta` only */
interface Loc { where: Where | 'gone'; refs: number; held: Node | null; meta: Mapped | null }

/**
 * mapped-file: the guest's metadata in text files, QEMU's layout: for an entry NAME of a
 * directory, DIR/.virtfs_metadata/NAME ("virtfs.uid=N", "virtfs.gid=N", "virtfs.mode=N",
 * "virtfs.rdev=N" lines, decimal); for the export root, .virtfs_metadata_root. Those names are
 * invisible to the guest and cannot be created by it. For host file systems without user xattrs.
 * The metadata of a node is read once and kept while the core holds the node (so an unlinked
 * open file keeps its owner); renames, links and removals carry the metadata files along.
 * Only user.* xattrs of the guest are kept (on the objects themselves).
 */
export class MappedFileBackend extends MappedBackend {
  private readonly locs = new Map<Node, Loc>();

  protected *track(e: Entry, where: Where): Op<void> {
    const l = this.locs.get(e.node);
    if (l !== undefined) { l.refs++; return; }
    let held: Node | null = null;
    if (where !== 'root') {
      const d = yield this.inner.dup(where.dir);
      if (!isErr(d)) held = (d as Entry).node;
    }
    this.locs.set(e.node, { where, refs: 1, held, meta: null });
  }

  protected retain(node: Node): void {
    const l = this.locs.get(node);
    if (l !== undefined) l.refs++;
  }

  protected untrack(node: Node): void {
    const l = this.locs.get(node);
    if (l === undefined || --l.refs > 0) return;
    this.locs.delete(node);
    if (l.held !== null) this.inner.forget(l.held);
  }

  protected hidden(_dir: Node, name: Uint8Array): number {
    return sameBytes(name, META_DIR) || sameBytes(name, META_ROOT) ? -2 /* ENOENT */ : 0;
  }

  protected reserved(_dir: Node, name: Uint8Array): number {
    return sameBytes(name, META_DIR) || sameBytes(name, META_ROOT) ? -EINVAL : 0;
  }

  protected readdirAs(fh: Fh, cookie: number, sink: DirSink): Res<number> {
    const s: DirSink = {
      push: (ino, next, dtype, name) => (this.hidden(0, name) < 0 ? true : sink.push(ino, next, dtype === 8 ? 0 : dtype, name)),
    };
    return this.inner.readdir(fh, cookie, s);
  }

  /** The metadata file's directory and name for a location (the directory: one reference). */
  private *metaAt(where: Where, rootOf: Node, create: boolean): Op<[Node, Uint8Array] | number> {
    if (where === 'root') {
      const d = yield this.inner.dup(rootOf);
      return isErr(d) ? (d as number) : [(d as Entry).node, META_ROOT];
    }
    let md = yield this.inner.lookup(where.dir, META_DIR);
    if (md === -2 && create) {
      const r = yield this.inner.mkdir(where.dir, META_DIR, 0o700, NO_ID, NO_ID);
      if (isErr(r) && r !== -17) return r as number;
      md = yield this.inner.lookup(where.dir, META_DIR);
    }
    if (isErr(md)) return md as number;
    return [(md as Entry).node, where.name];
  }

  private *readFile(where: Where, node: Node): Op<Mapped> {
    const none: Mapped = { uid: null, gid: null, mode: null, rdev: null };
    const at = yield* this.metaAt(where, node, false);
    if (typeof at === 'number') return none;
    const [md, name] = at;
    const f = yield this.inner.lookup(md, name);
    this.inner.forget(md);
    if (isErr(f)) return none;
    const fnode = (f as Entry).node;
    const fh = yield this.inner.open(fnode, O_RDONLY);
    if (isErr(fh)) { this.inner.forget(fnode); return none; }
    const buf = new Uint8Array(1024);
    const n = yield this.inner.read(fh as number, 0, [buf]);
    yield this.inner.close(fh as number);
    this.inner.forget(fnode);
    if (isErr(n)) return none;
    const out = { ...none };
    for (const line of dec.decode(buf.subarray(0, n as number)).split('\n')) {
      const m = /^virtfs\.(uid|gid|mode|rdev)=(-?\d+)/.exec(line);
      if (m) out[m[1] as keyof Mapped] = Number(m[2]) >>> 0;
    }
    return out;
  }

  protected *readMeta(node: Node): Op<Mapped> {
    const l = this.locs.get(node);
    if (l === undefined) return { uid: null, gid: null, mode: null, rdev: null };
    if (l.meta === null) l.meta = l.where === 'gone' ? { uid: null, gid: null, mode: null, rdev: null } : yield* this.readFile(l.where, node);
    return l.meta;
  }

  /** The nodes held at dir/name no longer have a name there. */
  private detach(dir: Node, name: Uint8Array, except: Loc | null = null): void {
    for (const l of this.locs.values()) {
      if (l === except || l.where === 'root' || l.where === 'gone') continue;
      if (l.where.dir !== dir || !sameBytes(l.where.name, name)) continue;
      l.where = 'gone';
      if (l.held !== null) { this.inner.forget(l.held); l.held = null; }
    }
  }

  /** A directory's link count without its metadata directory. */
  protected *adjust<S extends Stat>(st: S, node: Node): Op<S> {
    if ((st.mode & S_IFMT) !== S_IFDIR) return st;
    const md = yield this.inner.lookup(node, META_DIR);
    if (isErr(md)) return st;
    this.inner.forget((md as Entry).node);
    return { ...st, nlink: Math.max(1, st.nlink - 1) };
  }

  protected *writeMeta(node: Node, m: Mapped): Op<number> {
    const l = this.locs.get(node);
    if (l === undefined) return -EINVAL;
    const cur = yield* this.readMeta(node);
    const next: Mapped = {
      uid: m.uid ?? cur.uid, gid: m.gid ?? cur.gid, mode: m.mode ?? cur.mode, rdev: m.rdev ?? cur.rdev,
    };
    if (l.where === 'gone') { l.meta = next; return 0; }
    const at = yield* this.metaAt(l.where, node, true);
    if (typeof at === 'number') return at;
    const [md, name] = at;
    const c = yield this.inner.create(md, name, O_WRONLY | O_TRUNC, 0o600, NO_ID, NO_ID);
    this.inner.forget(md);
    if (isErr(c)) return c as number;
    const cr = c as Created;
    let text = '';
    for (const k of ['uid', 'gid', 'mode', 'rdev'] as const) if (next[k] !== null) text += `virtfs.${k}=${next[k]! | 0}\n`;
    const bytes = enc.encode(text);
    const w = yield this.inner.write(cr.fh, 0, [bytes]);
    yield this.inner.close(cr.fh);
    this.inner.forget(cr.node);
    if (isErr(w)) return w as number;
    l.meta = next;
    return 0;
  }

  /** Remove dir/name and its metadata (a directory: its own, empty, metadata directory first). */
  protected *removeName(dir: Node, name: Uint8Array, flags: number): Op<number> {
    if (flags & 0x200) {
      const t = yield this.inner.lookup(dir, name);
      if (!isErr(t)) {
        const tn = (t as Entry).node;
        const r = yield this.inner.unlinkat(tn, META_DIR, 0x200);
        this.inner.forget(tn);
        if (r === -39 /* ENOTEMPTY */) return r;
      }
    }
    const r = yield this.inner.unlinkat(dir, name, flags);
    if (isErr(r)) return r as number;
    this.detach(dir, name);
    const md = yield this.inner.lookup(dir, META_DIR);
    if (!isErr(md)) {
      yield this.inner.unlinkat((md as Entry).node, name, 0);
      this.inner.forget((md as Entry).node);
    }
    return 0;
  }

  remove(node: Node): Res<number> {
    const l = this.locs.get(node);
    if (l === undefined || l.where === 'root' || l.where === 'gone') return this.inner.remove(node);
    const { dir, name } = l.where;
    return run(this.removeNode(node, dir, name));
  }

  private *removeNode(node: Node, dir: Node, name: Uint8Array): Op<number> {
    const st = yield this.inner.getattr(node);
    if (isErr(st)) return st as number;
    return yield* this.removeName(dir, name, ((st as Stat).mode & S_IFMT) === S_IFDIR ? 0x200 : 0);
  }

  /** Move the metadata file with its object and follow it in the nodes held. */
  private *moved(olddir: Node, oldname: Uint8Array, newdir: Node, newname: Uint8Array): Op<void> {
    const om = yield this.inner.lookup(olddir, META_DIR);
    if (!isErr(om)) {
      const at = yield* this.metaAt({ dir: newdir, name: newname }, newdir, true);
      if (typeof at !== 'number') {
        const r = yield this.inner.renameat((om as Entry).node, oldname, at[0], newname);
        if (r === -2) yield this.inner.unlinkat(at[0], newname, 0); // none to carry: drop the old target's
        this.inner.forget(at[0]);
      }
      this.inner.forget((om as Entry).node);
    }
    const movers = [...this.locs.values()].filter((l) => l.where !== 'root' && l.where !== 'gone' && l.where.dir === olddir && sameBytes(l.where.name, oldname));
    for (const l of this.locs.values()) if (!movers.includes(l)) this.detach(newdir, newname, l);
    for (const l of movers) {
      const d = yield this.inner.dup(newdir);
      if (isErr(d)) continue;
      if (l.held !== null) this.inner.forget(l.held);
      l.held = (d as Entry).node;
      l.where = { dir: newdir, name: newname.slice() };
    }
  }

  renameat(olddir: Node, oldname: Uint8Array, newdir: Node, newname: Uint8Array): Res<number> {
    const h = this.hidden(olddir, oldname) || this.reserved(newdir, newname);
    if (h < 0) return h;
    return run(this.renameatOp(olddir, oldname, newdir, newname));
  }

  private *renameatOp(olddir: Node, oldname: Uint8Array, newdir: Node, newname: Uint8Array): Op<number> {
    const r = yield this.inner.renameat(olddir, oldname, newdir, newname);
    if (isErr(r)) return r as number;
    yield* this.moved(olddir, oldname, newdir, newname);
    return 0;
  }

  rename(node: Node, newdir: Node, newname: Uint8Array): Res<number> {
    const l = this.locs.get(node);
    if (l === undefined || l.where === 'root' || l.where === 'gone') return super.rename(node, newdir, newname);
    return this.renameat(l.where.dir, l.where.name, newdir, newname);
  }

  link(dir: Node, name: Uint8Array, target: Node): Res<number> {
    const h = this.reserved(dir, name);
    if (h < 0) return h;
    return run(this.linkOp(dir, name, target));
  }

  private *linkOp(dir: Node, name: Uint8Array, target: Node): Op<number> {
    const r = yield this.inner.link(dir, name, target);
    if (isErr(r)) return r as number;
    // the new name shares the object: give it a copy of the metadata (a link of the file, as QEMU)
    const m = yield* this.readMeta(target);
    const e = yield this.inner.lookup(dir, name);
    if (isErr(e)) return 0;
    yield* this.track(e as Entry, { dir, name: name.slice() });
    const w = yield* this.writeMeta((e as Entry).node, m);
    this.untrack((e as Entry).node);
    this.inner.forget((e as Entry).node);
    return w < 0 ? 0 : 0;
  }

  /** Only user.* xattrs: the others would need a mapping this model has no place for. */
  protected hostName(name: Uint8Array): Uint8Array | number {
    if (startsWith(name, VIRTFS)) return -EACCES;
    return startsWith(name, USER_NS) ? name : -EOPNOTSUPP;
  }
}

/** `inner` under the chosen security model. */
export function withSecurityModel(inner: Backend, opts: SecurityOptions): Backend {
  switch (opts.model) {
    case 'passthrough':
    case 'none':
      return inner;
    case 'mapped-xattr':
      return new MappedXattrBackend(inner, opts);
    case 'mapped-file':
      return new MappedFileBackend(inner, opts);
  }
}
