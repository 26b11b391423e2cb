/**
 * Attach names for a served export: "", "/" or the export's own path attach the export root;
 * any other aname names a directory inside the export ("ctl" → DIR/ctl, as diodload needs;
 * "/sub" or "DIR/sub" likewise). An aname that would leave the export ("..") is refused with
 * EACCES.
 *
 * An aname is a boundary: attached at "sub", ".." at the attach root stays there, as at the
 * export root. Nodes reached from such an attach are this wrapper's own handles (ids from
 * 2^30 up; the wrapped backends' ids stay below) that remember the inode number of their
 * attach root, so a ".." lookup from that directory answers the directory itself. Attaches at
 * the export root pass through untouched (no per-call cost). As with a chroot, a directory
 * another client moves out of the sub-tree while this one holds a fid in it is no longer
 * below the boundary; the export root stays the wall.
 */
import type { Backend, Entry, Created, DirSink, Fh, Node, Res, SetAttr, Stat, StatFs } from './backend.js';
import { EACCES, EBADF } from '../errno.js';

/** A node reached from a sub-tree attach: the wrapped node (one reference) and its root. */
interface Confined { inner: Node; ino: number; rootIno: number }

/** Wrapper ids: [2^30, 2^31) — the core hands nodes to the host as i32, and the wrapped
 *  backends' own ids (small counters) stay below 2^30. */
const WRAPPED = 0x40000000;
const LAST = 0x7fffffff;

function then<T, U>(r: Res<T>, f: (v: T) => U | number): U | number | Promise<U | number> {
  if (r instanceof Promise) return r.then((v) => (typeof v === 'number' && v < 0 ? v : f(v as T)));
  if (typeof r === 'number' && r < 0) return r;
  return f(r as T);
}

export class AnameBackend implements Backend {
  private nodes = new Map<number, Confined>();
  private next = WRAPPED;
  private readonly base: string;
  private enc = new TextEncoder();
  private dec = new TextDecoder();

  /** `exportPath`: the export's own path, also accepted as (a prefix of) an aname */
  constructor(readonly inner: Backend, exportPath = '') {
    this.base = exportPath.replace(/\/+$/, '');
  }

  private wrap(e: Entry, rootIno: number): Entry {
    let id = this.next;
    while (this.nodes.has(id)) id = id >= LAST ? WRAPPED : id + 1;
    this.next = id >= LAST ? WRAPPED : id + 1;
    this.nodes.set(id, { inner: e.node, ino: e.ino, rootIno });
    return { ...e, node: id };
  }
  /** The wrapped backend's node for `n` (0 for a stale wrapper id). */
  private in(n: Node): Node {
    if (n < WRAPPED) return n;
    const c = this.nodes.get(n);
    return c === undefined ? 0 : c.inner;
  }
  /** Entries below a confined node are confined to the same root. */
  private out<T extends Entry>(from: Node, r: Res<T>): Res<T> {
    const c = from >= WRAPPED ? this.nodes.get(from) : undefined;
    if (c === undefined) return r;
    return then(r, (e: T) => this.wrap(e, c.rootIno) as T) as Res<T>;
  }

  attach(aname: Uint8Array, uid: number): Res<Entry> {
    let a = this.dec.decode(aname);
    if (this.base && (a === this.base || a.startsWith(`${this.base}/`))) a = a.slice(this.base.length);
    const parts = a.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.includes('..')) return -EACCES;
    if (parts.length === 0) return this.inner.attach(new Uint8Array(0), uid);
    return then(this.inner.attach(this.enc.encode(parts.join('/')), uid), (e: Entry) => this.wrap(e, e.ino));
  }

  lookup(dir: Node, name: Uint8Array): Res<Entry> {
    const c = dir >= WRAPPED ? this.nodes.get(dir) : undefined;
    if (dir >= WRAPPED && c === undefined) return -EBADF;
    if (c !== undefined && c.ino === c.rootIno && name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) {
      return this.dup(dir); // ".." at the attach root is the root
    }
    return this.out(dir, this.inner.lookup(this.in(dir), name));
  }
  dup(node: Node): Res<Entry> { return this.out(node, this.inner.dup(this.in(node))); }
  getattr(node: Node): Res<Stat> { return this.inner.getattr(this.in(node)); }
  setattr(node: Node, attr: SetAttr): Res<number> { return this.inner.setattr(this.in(node), attr); }
  open(node: Node, flags: number): Res<Fh> { return this.inner.open(this.in(node), flags); }
  create(dir: Node, name: Uint8Array, flags: number, mode: number, uid: number, gid: number): Res<Created> {
    return this.out(dir, this.inner.create(this.in(dir), name, flags, mode, uid, gid));
  }
  read(fh: Fh, offset: number, dst: Uint8Array[]): Res<number> { return this.inner.read(fh, offset, dst); }
  write(fh: Fh, offset: number, src: Uint8Array[]): Res<number> { return this.inner.write(fh, offset, src); }
  readdir(fh: Fh, cookie: number, sink: DirSink): Res<number> { return this.inner.readdir(fh, cookie, sink); }
  readlink(node: Node): Res<Uint8Array> { return this.inner.readlink(this.in(node)); }
  mkdir(dir: Node, name: Uint8Array, mode: number, uid: number, gid: number): Res<Stat> { return this.inner.mkdir(this.in(dir), name, mode, uid, gid); }
  symlink(dir: Node, name: Uint8Array, target: Uint8Array, uid: number, gid: number): Res<Stat> {
    return this.inner.symlink(this.in(dir), name, target, uid, gid);
  }
  mknod(dir: Node, name: Uint8Array, mode: number, major: number, minor: number, uid: number, gid: number): Res<Stat> {
    return this.inner.mknod(this.in(dir), name, mode, major, minor, uid, gid);
  }
  link(dir: Node, name: Uint8Array, target: Node): Res<number> { return this.inner.link(this.in(dir), name, this.in(target)); }
  renameat(olddir: Node, oldname: Uint8Array, newdir: Node, newname: Uint8Array): Res<number> {
    return this.inner.renameat(this.in(olddir), oldname, this.in(newdir), newname);
  }
  rename(node: Node, newdir: Node, newname: Uint8Array): Res<number> { return this.inner.rename(this.in(node), this.in(newdir), newname); }
  unlinkat(dir: Node, name: Uint8Array, flags: number): Res<number> { return this.inner.unlinkat(this.in(dir), name, flags); }
  remove(node: Node): Res<number> { return this.inner.remove(this.in(node)); }
  fsync(fh: Fh, datasync: boolean): Res<number> { return this.inner.fsync(fh, datasync); }
  statfs(node: Node): Res<StatFs> { return this.inner.statfs(this.in(node)); }
  getxattr(node: Node, name: Uint8Array): Res<Uint8Array> { return this.inner.getxattr(this.in(node), name); }
  listxattr(node: Node): Res<Uint8Array[]> { return this.inner.listxattr(this.in(node)); }
  setxattr(node: Node, name: Uint8Array, value: Uint8Array, flags: number): Res<number> { return this.inner.setxattr(this.in(node), name, value, flags); }
  removexattr(node: Node, name: Uint8Array): Res<number> { return this.inner.removexattr(this.in(node), name); }
  close(fh: Fh): Res<number> { return this.inner.close(fh); }
  forget(node: Node): void {
    if (node < WRAPPED) { this.inner.forget(node); return; }
    const c = this.nodes.get(node);
    if (c === undefined) return;
    this.nodes.delete(node);
    this.inner.forget(c.inner);
  }
  /** Whatever else the wrapped backend offers (destroy, snapshotState) stays reachable. */
  destroy(): unknown { return (this.inner as { destroy?: () => unknown }).destroy?.(); }
}

/** The export's anames over `inner` (see AnameBackend). */
export function withExportAnames(inner: Backend, exportPath: string): Backend {
  return new AnameBackend(inner, exportPath);
}
