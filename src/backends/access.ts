/**
 * Who the guest is: each request is checked as the user the fid was attached as (diod's
 * behaviour), whatever the server's own user may do. A wrapper over any backend (and any
 * security model below it), so the checks are written once:
 *
 * - The identity comes from Tattach's n_uname (none given: nobody, 65534) and travels with the
 *   nodes derived from that attach (lookup, dup), so one session may hold fids of several users.
 *   With `squash`, every attach is that one uid:gid (diod's --allsquash).
 * - Permissions are POSIX's, on the attributes the guest sees: owner, group (the user's groups
 *   from `groupsOf`, by default the host's passwd and group files), other; uid 0 passes every
 *   check but execute, as root does. Opens check read/write (and write for O_TRUNC), walks
 *   search permission, creates and removals write+search on the directory and the sticky bit.
 * - Only root changes an owner, makes device nodes or sets security.* / trusted.* xattrs; only
 *   the owner (or root) changes a mode, ACL or times; a group outside the user's groups loses
 *   set-group-ID, as Linux does. New objects belong to the attached user.
 */
import fs from 'node:fs';
import { isErr, run, type Op } from './op.js';
import type { Backend, Created, DirSink, Entry, Fh, Node, Res, SetAttr, Stat, StatFs } from './backend.js';
import {
  AT_REMOVEDIR, O_ACCMODE, O_EXCL, O_RDONLY, O_TRUNC, O_WRONLY, S_IFMT, S_IFDIR, S_IFREG, S_IFCHR, S_IFBLK,
} from './backend.js';
import { EACCES, EBADF, EPERM } from '../errno.js';

const NO_ID = 0xFFFFFFFF;
export const NOBODY = 65534;
const R = 4, W = 2, X = 1;
const S_ISUID = 0o4000, S_ISGID = 0o2000, S_ISVTX = 0o1000;

export interface AccessOptions {
  /** every attach is this user (diod's --allsquash); new objects get its uid and gid */
  squash?: { uid: number; gid: number };
  /** the groups of a uid, primary first (default: the host's /etc/passwd and /etc/group) */
  groupsOf?: (uid: number) => number[];
}

/** The host's user database: a uid's primary group and the groups listing its name. */
export function hostGroups(passwd = '/etc/passwd', group = '/etc/group'): (uid: number) => number[] {
  const read = (p: string): string[] => { try { return fs.readFileSync(p, 'utf8').split('\n'); } catch { return []; } };
  const users = new Map<number, { name: string; gid: number }>();
  for (const l of read(passwd)) {
    const f = l.split(':');
    if (f.length >= 4 && /^\d+$/.test(f[2] ?? '') && /^\d+$/.test(f[3] ?? '')) users.set(Number(f[2]), { name: f[0] ?? '', gid: Number(f[3]) });
  }
  const members = new Map<string, number[]>();
  for (const l of read(group)) {
    const f = l.split(':');
    if (f.length < 4 || !/^\d+$/.test(f[2] ?? '')) continue;
    for (const m of (f[3] ?? '').split(',')) if (m !== '') members.set(m, [...(members.get(m) ?? []), Number(f[2])]);
  }
  const cache = new Map<number, number[]>();
  return (uid) => {
    let g = cache.get(uid);
    if (g === undefined) {
      const u = users.get(uid);
      // a uid the host does not know: its own number as its only group (no group rights)
      g = u === undefined ? [uid] : [u.gid, ...(members.get(u.name) ?? []).filter((x) => x !== u.gid)];
      cache.set(uid, g);
    }
    return g;
  };
}

interface Who { uid: number; groups: number[] }
interface Ref { inner: Node; who: Who }

/** May `who` have `want` (R|W|X bits) on an object with these attributes? 0 or -EACCES. */
export function permits(st: Stat, who: Who, want: number): number {
  if (who.uid === 0) {
    // root: everything but executing a non-directory that nobody may execute
    if ((want & X) && (st.mode & S_IFMT) !== S_IFDIR && (st.mode & 0o111) === 0) return -EACCES;
    return 0;
  }
  const bits = st.uid === who.uid ? (st.mode >> 6) & 7 : who.groups.includes(st.gid) ? (st.mode >> 3) & 7 : st.mode & 7;
  return (want & ~bits) !== 0 ? -EACCES : 0;
}

export class AccessBackend implements Backend {
  private readonly refs = new Map<Node, Ref>();
  private next = 1;
  private readonly groupsOf: (uid: number) => number[];

  constructor(readonly inner: Backend, private readonly opts: AccessOptions = {}) {
    this.groupsOf = opts.squash ? () => [opts.squash!.gid] : (opts.groupsOf ?? hostGroups());
  }

  private wrap(e: Entry, who: Who): Entry {
    let id = this.next;
    while (this.refs.has(id)) id = id >= 0x7FFFFFFF ? 1 : id + 1;
    this.next = id >= 0x7FFFFFFF ? 1 : id + 1;
    this.refs.set(id, { inner: e.node, who });
    return { ...e, node: id };
  }

  private *stat(node: Node): Op<Stat | number> {
    return (yield this.inner.getattr(node)) as Stat | number;
  }

  /** The checks on a directory before creating or removing in it: write and search. */
  private *dirOk(dir: Ref): Op<number> {
    const st = yield* this.stat(dir.inner);
    if (isErr(st)) return st;
    return permits(st as Stat, dir.who, W | X);
  }

  /** The sticky directory rule for removing or replacing `name` in `dir`. */
  private *stickyOk(dir: Ref, name: Uint8Array): Op<number> {
    if (dir.who.uid === 0) return 0;
    const dst = yield* this.stat(dir.inner);
    if (isErr(dst)) return dst;
    const d = dst as Stat;
    if ((d.mode & S_ISVTX) === 0 || d.uid === dir.who.uid) return 0;
    const e = yield this.inner.lookup(dir.inner, name);
    if (isErr(e)) return 0; // the operation itself reports the missing name
    const ent = e as Entry;
    this.inner.forget(ent.node);
    return ent.uid === dir.who.uid ? 0 : -EPERM;
  }

  /** The owner and group a new object gets, and its mode without set-gid outside the user's groups. */
  private owner(who: Who, gid: number, mode: number): [number, number, number] {
    const sq = this.opts.squash;
    const uid = sq ? sq.uid : who.uid;
    let g = sq ? sq.gid : gid === NO_ID ? (who.groups[0] ?? who.uid) : gid;
    if (who.uid !== 0 && !sq && !who.groups.includes(g)) g = who.groups[0] ?? who.uid;
    let m = mode;
    if (who.uid !== 0 && (mode & S_IFMT) !== S_IFDIR && !who.groups.includes(g)) m &= ~S_ISGID;
    return [uid, g, m];
  }

  attach(aname: Uint8Array, uid: number): Res<Entry> {
    const sq = this.opts.squash;
    const id = sq ? sq.uid : uid === NO_ID ? NOBODY : uid;
    const who: Who = { uid: id, groups: this.groupsOf(id) };
    return run(this.entryOp(this.inner.attach(aname, id), who));
  }

  private *entryOp(p: Res<Entry>, who: Who): Op<Entry | number> {
    const e = yield p;
    return isErr(e) ? e : this.wrap(e as Entry, who);
  }

  lookup(dir: Node, name: Uint8Array): Res<Entry> {
    const d = this.refs.get(dir);
    if (d === undefined) return -EBADF;
    return run(this.lookupOp(d, name));
  }

  private *lookupOp(d: Ref, name: Uint8Array): Op<Entry | number> {
    const st = yield* this.stat(d.inner);
    if (isErr(st)) return st;
    const ok = permits(st as Stat, d.who, X);
    if (ok < 0) return ok;
    return yield* this.entryOp(this.inner.lookup(d.inner, name), d.who);
  }

  dup(node: Node): Res<Entry> {
    const r = this.refs.get(node);
    if (r === undefined) return -EBADF;
    return run(this.entryOp(this.inner.dup(r.inner), r.who));
  }

  getattr(node: Node): Res<Stat> {
    const r = this.refs.get(node);
    return r === undefined ? -EBADF : this.inner.getattr(r.inner);
  }

  setattr(node: Node, attr: SetAttr): Res<number> {
    const r = this.refs.get(node);
    if (r === undefined) return -EBADF;
    return run(this.setattrOp(r, attr));
  }

  private *setattrOp(r: Ref, attr: SetAttr): Op<number> {
    const st0 = yield* this.stat(r.inner);
    if (isErr(st0)) return st0;
    const st = st0 as Stat;
    const who = r.who;
    const root = who.uid === 0;
    const owner = root || st.uid === who.uid;
    const a: SetAttr = { ...attr };
    if (a.uid !== undefined && a.uid !== st.uid && !root) return -EPERM;
    if (a.gid !== undefined && a.gid !== st.gid && !(root || (owner && who.groups.includes(a.gid)))) return -EPERM;
    if (a.mode !== undefined) {
      if (!owner) return -EPERM;
      const g = a.gid ?? st.gid;
      if (!root && (st.mode & S_IFMT) !== S_IFDIR && !who.groups.includes(g)) a.mode &= ~S_ISGID;
    }
    if ((a.uid !== undefined && a.uid !== st.uid) || (a.gid !== undefined && a.gid !== st.gid)) {
      // a new owner drops set-id bits of a non-directory, as chown(2) does
      if ((st.mode & S_IFMT) !== S_IFDIR && a.mode === undefined && (st.mode & (S_ISUID | S_ISGID)) !== 0) {
        a.mode = st.mode & 0o7777 & ~S_ISUID & ~((st.mode & 0o10) ? S_ISGID : 0);
      }
    }
    if (a.size !== undefined) {
      const e = permits(st, who, W);
      if (e < 0) return e;
    }
    if ((a.atime !== undefined || a.mtime !== undefined) && !owner) {
      const e = permits(st, who, W);
      if (e < 0) return -EPERM;
    }
    return (yield this.inner.setattr(r.inner, a)) as number;
  }

  open(node: Node, flags: number): Res<Fh> {
    const r = this.refs.get(node);
    if (r === undefined) return -EBADF;
    return run(this.openOp(r, flags));
  }

  private *openOp(r: Ref, flags: number): Op<number> {
    const st = yield* this.stat(r.inner);
    if (isErr(st)) return st;
    const e = permits(st as Stat, r.who, openWant(flags));
    if (e < 0) return e;
    return (yield this.inner.open(r.inner, flags)) as number;
  }

  create(dir: Node, name: Uint8Array, flags: number, mode: number, _uid: number, gid: number): Res<Created> {
    const d = this.refs.get(dir);
    if (d === undefined) return -EBADF;
    return run(this.createOp(d, name, flags, mode, gid));
  }

  private *createOp(d: Ref, name: Uint8Array, flags: number, mode: number, gid: number): Op<Created | number> {
    const e = yield* this.dirOk(d);
    if (e < 0) {
      // an existing name is opened, which needs search permission only
      if (e !== -EACCES) return e;
    }
    if (!(flags & O_EXCL)) {
      const ex = yield this.inner.lookup(d.inner, name);
      if (!isErr(ex)) {
        const ent = ex as Entry;
        this.inner.forget(ent.node);
        const ds = yield* this.stat(d.inner);
        if (isErr(ds)) return ds;
        const sx = permits(ds as Stat, d.who, X);
        if (sx < 0) return sx;
        const p = permits(ent, d.who, openWant(flags));
        if (p < 0) return p;
      } else if (e < 0) return e;
    } else if (e < 0) return e;
    const [u, g, m] = this.owner(d.who, gid, S_IFREG | (mode & 0o7777));
    const c = yield this.inner.create(d.inner, name, flags, m & 0o7777, u, g);
    if (isErr(c)) return c;
    const cr = c as Created;
    return { ...this.wrap(cr, d.who), fh: cr.fh };
  }

  read(fh: Fh, offset: number, dst: Uint8Array[]): Res<number> { return this.inner.read(fh, offset, dst); }
  write(fh: Fh, offset: number, src: Uint8Array[]): Res<number> { return this.inner.write(fh, offset, src); }
  readdir(fh: Fh, cookie: number, sink: DirSink): Res<number> { return this.inner.readdir(fh, cookie, sink); }

  readlink(node: Node): Res<Uint8Array> {
    const r = this.refs.get(node);
    return r === undefined ? -EBADF : this.inner.readlink(r.inner);
  }

  mkdir(dir: Node, name: Uint8Array, mode: number, _uid: number, gid: number): Res<Stat> {
    const d = this.refs.get(dir);
    if (d === undefined) return -EBADF;
    return run(this.makeOp(d, (u, g, m) => this.inner.mkdir(d.inner, name, m & 0o7777, u, g), S_IFDIR | (mode & 0o7777), gid));
  }

  symlink(dir: Node, name: Uint8Array, target: Uint8Array, _uid: number, gid: number): Res<Stat> {
    const d = this.refs.get(dir);
    if (d === undefined) return -EBADF;
    return run(this.makeOp(d, (u, g) => this.inner.symlink(d.inner, name, target, u, g), 0o120777, gid));
  }

  mknod(dir: Node, name: Uint8Array, mode: number, major: number, minor: number, _uid: number, gid: number): Res<Stat> {
    const d = this.refs.get(dir);
    if (d === undefined) return -EBADF;
    const t = mode & S_IFMT;
    if ((t === S_IFCHR || t === S_IFBLK) && d.who.uid !== 0) return -EPERM; // CAP_MKNOD
    return run(this.makeOp(d, (u, g, m) => this.inner.mknod(d.inner, name, (mode & S_IFMT) | (m & 0o7777), major, minor, u, g), mode, gid));
  }

  private *makeOp(d: Ref, make: (uid: number, gid: number, mode: number) => Res<Stat>, mode: number, gid: number): Op<Stat | number> {
    const e = yield* this.dirOk(d);
    if (e < 0) return e;
    const [u, g, m] = this.owner(d.who, gid, mode);
    return (yield make(u, g, m)) as Stat | number;
  }

  link(dir: Node, name: Uint8Array, target: Node): Res<number> {
    const d = this.refs.get(dir);
    const t = this.refs.get(target);
    if (d === undefined || t === undefined) return -EBADF;
    return run(this.linkOp(d, name, t));
  }

  private *linkOp(d: Ref, name: Uint8Array, t: Ref): Op<number> {
    const e = yield* this.dirOk(d);
    if (e < 0) return e;
    if (d.who.uid !== 0) {
      // protected hard links (Linux's default): own it, or may read and write a plain file
      const st = yield* this.stat(t.inner);
      if (isErr(st)) return st;
      const s = st as Stat;
      const plain = (s.mode & S_IFMT) === S_IFREG && (s.mode & S_ISUID) === 0 && (s.mode & (S_ISGID | 0o10)) !== (S_ISGID | 0o10);
      if (s.uid !== d.who.uid && !(plain && permits(s, d.who, R | W) === 0)) return -EPERM;
    }
    return (yield this.inner.link(d.inner, name, t.inner)) as number;
  }

  renameat(olddir: Node, oldname: Uint8Array, newdir: Node, newname: Uint8Array): Res<number> {
    const o = this.refs.get(olddir);
    const n = this.refs.get(newdir);
    if (o === undefined || n === undefined) return -EBADF;
    return run(this.renameOp(o, oldname, n, newname));
  }

  private *renameOp(o: Ref, oldname: Uint8Array, n: Ref, newname: Uint8Array): Op<number> {
    for (const [d, name] of [[o, oldname], [n, newname]] as [Ref, Uint8Array][]) {
      const e = yield* this.dirOk(d);
      if (e < 0) return e;
      const s = yield* this.stickyOk(d, name);
      if (s < 0) return s;
    }
    return (yield this.inner.renameat(o.inner, oldname, n.inner, newname)) as number;
  }

  rename(node: Node, newdir: Node, newname: Uint8Array): Res<number> {
    const r = this.refs.get(node);
    const n = this.refs.get(newdir);
    if (r === undefined || n === undefined) return -EBADF;
    return run(this.renameNodeOp(r, n, newname));
  }

  /** Trename names no old directory: its owner (or root) may move it where it may write. */
  private *renameNodeOp(r: Ref, n: Ref, newname: Uint8Array): Op<number> {
    const e = yield* this.dirOk(n);
    if (e < 0) return e;
    const s = yield* this.stickyOk(n, newname);
    if (s < 0) return s;
    if (r.who.uid !== 0) {
      const st = yield* this.stat(r.inner);
      if (isErr(st)) return st;
      if ((st as Stat).uid !== r.who.uid) return -EPERM;
    }
    return (yield this.inner.rename(r.inner, n.inner, newname)) as number;
  }

  unlinkat(dir: Node, name: Uint8Array, flags: number): Res<number> {
    const d = this.refs.get(dir);
    if (d === undefined) return -EBADF;
    return run(this.unlinkOp(d, name, flags));
  }

  private *unlinkOp(d: Ref, name: Uint8Array, flags: number): Op<number> {
    const e = yield* this.dirOk(d);
    if (e < 0) return e;
    const s = yield* this.stickyOk(d, name);
    if (s < 0) return s;
    return (yield this.inner.unlinkat(d.inner, name, flags & AT_REMOVEDIR)) as number;
  }

  /** Tremove names no directory either: its owner or root. */
  remove(node: Node): Res<number> {
    const r = this.refs.get(node);
    if (r === undefined) return -EBADF;
    return run(this.removeOp(r));
  }

  private *removeOp(r: Ref): Op<number> {
    if (r.who.uid !== 0) {
      const st = yield* this.stat(r.inner);
      if (isErr(st)) return st;
      if ((st as Stat).uid !== r.who.uid) return -EACCES;
    }
    return (yield this.inner.remove(r.inner)) as number;
  }

  fsync(fh: Fh, datasync: boolean): Res<number> { return this.inner.fsync(fh, datasync); }

  statfs(node: Node): Res<StatFs> {
    const r = this.refs.get(node);
    return r === undefined ? -EBADF : this.inner.statfs(r.inner);
  }

  getxattr(node: Node, name: Uint8Array): Res<Uint8Array> {
    const r = this.refs.get(node);
    if (r === undefined) return -EBADF;
    return run(this.xgetOp(r, name));
  }

  private *xgetOp(r: Ref, name: Uint8Array): Op<Uint8Array | number> {
    const ns = namespace(name);
    if (ns === 'trusted' && r.who.uid !== 0) return -61; // ENODATA: invisible to others, as Linux
    if (ns === 'user') {
      const st = yield* this.stat(r.inner);
      if (isErr(st)) return st;
      const e = permits(st as Stat, r.who, R);
      if (e < 0) return e;
    }
    return (yield this.inner.getxattr(r.inner, name)) as Uint8Array | number;
  }

  listxattr(node: Node): Res<Uint8Array[]> {
    const r = this.refs.get(node);
    if (r === undefined) return -EBADF;
    return run(this.xlistOp(r));
  }

  private *xlistOp(r: Ref): Op<Uint8Array[] | number> {
    const l = yield this.inner.listxattr(r.inner);
    if (isErr(l) || r.who.uid === 0) return l as Uint8Array[] | number;
    return (l as Uint8Array[]).filter((n) => namespace(n) !== 'trusted');
  }

  setxattr(node: Node, name: Uint8Array, value: Uint8Array, flags: number): Res<number> {
    const r = this.refs.get(node);
    if (r === undefined) return -EBADF;
    return run(this.xsetOp(r, name, () => this.inner.setxattr(r.inner, name, value, flags)));
  }

  removexattr(node: Node, name: Uint8Array): Res<number> {
    const r = this.refs.get(node);
    if (r === undefined) return -EBADF;
    return run(this.xsetOp(r, name, () => this.inner.removexattr(r.inner, name)));
  }

  private *xsetOp(r: Ref, name: Uint8Array, act: () => Res<number>): Op<number> {
    const ns = namespace(name);
    const root = r.who.uid === 0;
    if ((ns === 'security' || ns === 'trusted') && !root) return -EPERM;
    if (!root) {
      const st = yield* this.stat(r.inner);
      if (isErr(st)) return st;
      const s = st as Stat;
      if (ns === 'system' && s.uid !== r.who.uid) return -EPERM;
      if (ns === 'user') {
        const t = s.mode & S_IFMT;
        if (t !== S_IFREG && t !== S_IFDIR) return -EPERM;
        const e = permits(s, r.who, W);
        if (e < 0) return e;
      }
    }
    return (yield act()) as number;
  }

  close(fh: Fh): Res<number> { return this.inner.close(fh); }

  destroy(): unknown { return this.inner.destroy?.(); }
  forget(node: Node): void {
    const r = this.refs.get(node);
    if (r === undefined) return;
    this.refs.delete(node);
    this.inner.forget(r.inner);
  }
}

function openWant(flags: number): number {
  const acc = flags & O_ACCMODE;
  let w = acc === O_RDONLY ? R : acc === O_WRONLY ? W : R | W;
  if (flags & O_TRUNC) w |= W;
  return w;
}

function namespace(name: Uint8Array): string {
  const dot = name.indexOf(0x2e);
  return dot < 0 ? '' : new TextDecoder().decode(name.subarray(0, dot));
}
