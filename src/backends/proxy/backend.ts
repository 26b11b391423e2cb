/**
 * ProxyBackend: a Backend served by QEMU's virtfs-proxy-helper (the 9p "proxy" fs driver).
 *
 *   const b = await ProxyBackend.launch({ export: '/srv/share' });          // starts helpers
 *   const b = await ProxyBackend.connect({ socket: '/run/proxy.sock' });     // helper -s PATH
 *   const b = await ProxyBackend.connect({ fd: 7 });                         // helper -f N's peer
 *
 * Design (like QEMU's proxy driver, which is path based):
 *  - Nodes are {path relative to the backend root, refcount, host (dev, ino)}; one map path →
 *    node. Paths go to the helper as "/rel" (the helper has chrooted into the export). A lookup
 *    that finds a different inode at a known path detaches the old node.
 *  - Fids follow objects: renames rewrite the stored path of every node at or under the renamed
 *    path; unlink/rmdir/rename-over detach the nodes of the removed path. Before *we* remove an
 *    object the core still holds, it is pinned with an O_PATH descriptor from the helper (T_OPEN
 *    O_PATH|O_NOFOLLOW; regular files and directories only — the 7.2.4+ helper refuses other
 *    types with ENXIO). A detached node works through its open handles or pin: fstat for
 *    getattr, `/proc/self/fd/N` for setattr and reopen; without one it answers ENOENT.
 *  - Metadata goes through the helper: lstat, readlink, statfs, chmod, chown (lchown), truncate,
 *    utimensat (nanoseconds, UTIME_OMIT for the time not set), rename, remove, link, mkdir,
 *    symlink, mknod, create, open and the four xattr calls; getversion is `getversion(node)`.
 *    Before a path operation on an existing node the path is lstat'ed through the helper and
 *    checked to still be the node's inode (a small race window remains between the check and
 *    the operation; the helper's chroot confines any path to the export whatever happens).
 *  - Data never goes through the helper: read/write/fsync/readdir/fstat use the descriptors it
 *    hands out (SCM_RIGHTS), asynchronously (libuv threadpool), straight into the caller's
 *    buffers. readdir lists `/proc/self/fd/N` of the open directory into a per-open snapshot:
 *    cookies are positions in it, stable for that handle. Every descriptor is closed exactly
 *    once (close, error paths, destroy); descriptors survive helper loss.
 *  - Credentials: create/mkdir/symlink/mknod run in the helper as uid:gid (0xFFFFFFFF = not
 *    given → 0). uid 0 with gid ≠ 0 would trip a helper bug (it loses its capabilities and
 *    later aborts, proxy-protocol.md §6.3): such objects are created as 0:0 and then chowned.
 *  - Helper loss (see client.ts): requests in flight answer EIO, the backend keeps answering
 *    (EIO while no helper is up) and reconnects / relaunches; node paths and fds stay valid.
 */
import fs from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { promisify } from 'node:util';
import type { Backend, Created, DirSink, Entry, Fh, Node, SetAttr, Stat, StatFs } from '../backend.js';
import {
  O_ACCMODE, O_EXCL, O_RDONLY, O_TRUNC, AT_REMOVEDIR, S_IFMT, S_IFLNK, S_IFREG, S_IFDIR, S_IFCHR, S_IFBLK,
} from '../backend.js';
import { E2BIG, EBADF, EBUSY, EEXIST, EINVAL, EISDIR, ELOOP, ENOENT, ENOSPC, ENOTDIR, ENXIO, EPERM, ERANGE } from '../../errno.js';
import { ProxyClient, type ClientOptions, type LaunchSpec, type ProxyTarget } from './client.js';
import {
  decodeStat, decodeStatFs, decodeString, decodeVersion, encodeRdev, makedev, UTIME_OMIT,
  type ProxyStat,
} from './protocol.js';
import { PathNode, PathTable } from '../path-table.js';
import { SnapshotBudget } from '../dir-snapshots.js';
import {
  DOT, DOTDOT, FhTable, InoRemap, NO_ID, O_PATH, V9FS_MAGIC, dirname, fail, hostFlags, join, keyOf,
  lostEntry, mknodType, nameKind, newName, openFlags, renameNames, setattrPlan, unlinkName,
} from '../path-common.js';

const C = fs.constants;
const NS = 1000000000n;
const ENOTTY = 25, ENOBUFS = 105;

const pFstat = promisify(fs.fstat) as (fd: number, o: { bigint: true }) => Promise<BigIntStats>;
const pReadv = (fd: number, b: Uint8Array[], pos: number): Promise<number> =>
  new Promise((res, rej) => fs.readv(fd, b, pos, (e, n) => (e ? rej(e) : res(n))));
const pWritev = (fd: number, b: Uint8Array[], pos: number): Promise<number> =>
  new Promise((res, rej) => fs.writev(fd, b, pos, (e, n) => (e ? rej(e) : res(n))));
const pFtruncate = promisify(fs.ftruncate);
const pFsync = promisify(fs.fsync);
const pFdatasync = promisify(fs.fdatasync);
const pClose = promisify(fs.close);
const pOpen = promisify(fs.open) as (p: string, flags: number) => Promise<number>;
const fsp = fs.promises;

export interface ProxyBackendOptions extends ClientOptions {
  /** Directory inside the export (as the helper sees it) used as this backend's root. Default "/". */
  root?: string;
  /** Bytes all open directories' readdir listings may hold together (dir-snapshots.ts; default 64 MiB). */
  readdirBudget?: number;
}

type PNode = PathNode<OpenFile>;

class OpenFile {
  snap: Buffer[] | null = null;
  closed = false;
  constructor(public readonly fd: number, public readonly node: PNode) {}
}

const procFd = (fd: number): string => `/proc/self/fd/${fd}`;

function splitNs(ns: bigint): [number, number] {
  if (ns < 0n) return [0, 0];
  const s = ns / NS;
  return [Number(s), Number(ns - s * NS)];
}

function seconds(t: [number, number]): number {
  return t[1] === 0 ? t[0] : t[0] + (Math.floor(t[1] / 1000) * 1000 + 500) / 1e9;
}

/** A stat from either source: the helper's ProxyStat or a local fstat. */
interface HStat { dev: bigint; ino: bigint; mode: number; s: Stat }

export class ProxyBackend implements Backend {
  private readonly table = new PathTable<PNode, HStat>({
    make: (id, rel, st) => new PathNode(id, rel, st.dev, st.ino, st.mode & S_IFMT, this.qino(st.dev, st.ino)),
    same: (n, st) => n.dev === st.dev && n.hino === st.ino,
    freed: (n) => { if (n.pin >= 0) { const fd = n.pin; n.pin = -1; this.closeFd(fd); } },
    rootReplacedCode: 'EIO',
  });
  private readonly fhs = new FhTable<OpenFile>();
  /** qid.path of host (dev, ino) pairs; its rootDev is the export root's device */
  private readonly inos = new InoRemap();
  /** "/" or "/sub/dir" (latin1 key): prefix of every wire path */
  private readonly base: string;
  private destroyed = false;

  private constructor(readonly client: ProxyClient, opts: ProxyBackendOptions) {
    const r = (opts.root ?? '/').split('/').filter((p) => p !== '' && p !== '.');
    if (r.includes('..')) throw new Error('proxy: root must not contain ".."');
    this.base = '/' + Buffer.from(r.join('/')).toString('latin1');
    this.dirBudget = new SnapshotBudget(opts.readdirBudget);
  }
  /** the byte budget of readdir listings */
  readonly dirBudget: SnapshotBudget;

  /** Connect to a running helper: its named socket (`-s PATH`; unlinked after connecting, like
   *  QEMU) or our end of the socketpair whose other end it got with `-f N`. */
  static async connect(target: ProxyTarget, opts: ProxyBackendOptions & {
    unlinkSocket?: boolean; reconnect?: () => Promise<ProxyTarget>;
  } = {}): Promise<ProxyBackend> {
    const client = await ProxyClient.connect(target, opts);
    return ProxyBackend.init(client, opts);
  }

  /** Start helpers on `spec.export` (default 4, one connection each; restarted when lost). */
  static async launch(spec: LaunchSpec, opts: ProxyBackendOptions & { connections?: number } = {}): Promise<ProxyBackend> {
    const client = await ProxyClient.launch(spec, opts);
    return ProxyBackend.init(client, opts);
  }

  private static async init(client: ProxyClient, opts: ProxyBackendOptions): Promise<ProxyBackend> {
    const b = new ProxyBackend(client, opts);
    const st = await b.lstat('');
    if (typeof st === 'number' || (st.mode & S_IFMT) !== S_IFDIR) {
      client.close();
      throw Object.assign(new Error(`proxy: the export root is not usable (${typeof st === 'number' ? `errno ${-st}` : 'not a directory'})`),
        { code: typeof st === 'number' && st === -ENOENT ? 'ENOENT' : 'EIO' });
    }
    b.inos.rootDev = st.dev;
    b.table.addRoot(st);
    return b;
  }

  // ---- helper calls -------------------------------------------------------------------------------

  /** Wire path of rel (never with a trailing NUL). */
  private wp(rel: string): Buffer {
    const s = rel === '' ? this.base : this.base === '/' ? '/' + rel : this.base + '/' + rel;
    return Buffer.from(s, 'latin1');
  }

  private async lstat(rel: string): Promise<HStat | number> {
    const r = await this.client.call('T_LSTAT', [this.wp(rel)], decodeStat);
    return typeof r === 'number' ? r : this.fromProxy(r);
  }

  private fromProxy(p: ProxyStat): HStat {
    const [as, an] = [Number(p.atimeSec), Number(p.atimeNsec)];
    return {
      dev: p.dev, ino: p.ino, mode: p.mode,
      s: {
        ino: this.qino(p.dev, p.ino), mode: p.mode, uid: p.uid, gid: p.gid, nlink: Number(p.nlink),
        rdev: encodeRdev(p.rdev), size: Number(p.size), blksize: Number(p.blksize), blocks: Number(p.blocks),
        atimeSec: as, atimeNsec: an, mtimeSec: Number(p.mtimeSec), mtimeNsec: Number(p.mtimeNsec),
        ctimeSec: Number(p.ctimeSec), ctimeNsec: Number(p.ctimeNsec),
      },
    };
  }

  private fromLocal(st: BigIntStats): HStat {
    const [as, an] = splitNs(st.atimeNs);
    const [ms, mn] = splitNs(st.mtimeNs);
    const [cs, cn] = splitNs(st.ctimeNs);
    return {
      dev: st.dev, ino: st.ino, mode: Number(st.mode),
      s: {
        ino: this.qino(st.dev, st.ino), mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid),
        nlink: Number(st.nlink), rdev: encodeRdev(st.rdev), size: Number(st.size),
        blksize: Number(st.blksize), blocks: Number(st.blocks),
        atimeSec: as, atimeNsec: an, mtimeSec: ms, mtimeNsec: mn, ctimeSec: cs, ctimeNsec: cn,
      },
    };
  }

  private qino(dev: bigint, ino: bigint): number {
    return this.inos.qino(dev, ino);
  }

  /** The helper's open (O_NOFOLLOW always): fd or -errno. */
  private hopen(rel: string, hostFlags: number): Promise<number> {
    return this.client.call('T_OPEN', [this.wp(rel), hostFlags | C.O_NOFOLLOW]);
  }

  private closeFd(fd: number): void {
    fs.close(fd, () => { /* gone either way */ });
  }

  /** uid/gid as the helper should switch to: [uid, gid, gid to chown afterwards or -1]. */
  private creds(uid: number, gid: number): [number, number, number] {
    const u = uid === NO_ID ? 0 : uid >>> 0;
    const g = gid === NO_ID ? 0 : gid >>> 0;
    if (u === 0 && g !== 0) return [0, 0, g]; // avoid the helper's uid-0/gid≠0 capability bug
    return [u, g, -1];
  }

  private async fixGroup(rel: string, g: number, mode: number, isLink: boolean): Promise<number> {
    if (g < 0) return 0;
    const r = await this.client.call('T_CHOWN', [this.wp(rel), -1, g]);
    if (r < 0) return r;
    if (!isLink && (mode & 0o6000)) return this.client.call('T_CHMOD', [this.wp(rel), mode & 0o7777]);
    return 0;
  }

  // ---- nodes --------------------------------------------------------------------------------------

  private entry(n: PNode, st: HStat): Entry {
    const e = { ...st.s } as Entry;
    n.last = st.s;
    e.node = n.id;
    return e;
  }

  private anyFd(n: PNode): number {
    for (const f of n.files) return f.fd;
    return n.pin;
  }

  /** Pin the referenced node at rel (before we remove / replace it). Best effort. */
  private async pinPath(rel: string): Promise<void> {
    const n = this.table.byPath.get(rel);
    if (n === undefined || n.refs === 0 || n.files.size > 0 || n.pin >= 0) return;
    if (n.type !== S_IFREG && n.type !== S_IFDIR) return; // the helper hands out no other fds
    const fd = await this.hopen(rel, O_PATH);
    if (fd < 0) return;
    try {
      const st = await pFstat(fd, { bigint: true });
      if (st.dev === n.dev && st.ino === n.hino && n.pin < 0 && this.table.nodes.get(n.id) === n) { n.pin = fd; return; }
    } catch { /* not pinned */ }
    this.closeFd(fd);
  }

  private unpin(rel: string): void {
    const n = this.table.byPath.get(rel);
    if (n === undefined || n.pin < 0) return;
    const fd = n.pin;
    n.pin = -1;
    this.closeFd(fd);
  }

  /** lstat of the node's path through the helper, checked to be the node's inode. */
  private async liveStat(n: PNode): Promise<HStat | number> {
    if (n.detached) return -ENOENT;
    const st = await this.lstat(n.path);
    if (typeof st === 'number') {
      if (st === -ENOENT && n !== this.table.root) this.table.detach(n);
      return st;
    }
    if (st.dev !== n.dev || st.ino !== n.hino) {
      if (n !== this.table.root) this.table.detach(n);
      return -ENOENT;
    }
    return st;
  }

  private async stat(n: PNode): Promise<HStat | number> {
    const fd = this.anyFd(n);
    if (fd >= 0) return this.fromLocal(await pFstat(fd, { bigint: true }));
    return this.liveStat(n);
  }

  private addFile(fd: number, n: PNode): Fh {
    const f = new OpenFile(fd, n);
    const fh = this.fhs.add(f);
    n.files.add(f);
    return fh;
  }

  // ---- Backend ------------------------------------------------------------------------------------

  async attach(aname: Uint8Array, _uid: number): Promise<Entry | number> {
    try {
      let rel = '';
      let st: HStat | number | undefined;
      for (const part of keyOf(aname).split('/')) {
        if (part === '' || part === '.') continue;
        if (part === '..') { rel = dirname(rel); st = undefined; continue; }
        rel = join(rel, part);
        st = await this.lstat(rel);
        if (typeof st === 'number') return st;
        if ((st.mode & S_IFMT) !== S_IFDIR) return -ENOTDIR;
      }
      if (st === undefined) st = await this.lstat(rel);
      if (typeof st === 'number') return st;
      if ((st.mode & S_IFMT) !== S_IFDIR) return -ENOTDIR;
      return this.entry(this.table.getNode(rel, st), st);
    } catch (e) { return fail(e); }
  }

  async lookup(dir: Node, name: Uint8Array): Promise<Entry | number> {
    const d = this.table.dirRef(dir);
    if (typeof d === 'number') return d;
    try {
      const k = nameKind(name);
      if (k < 0) return -ENOENT;
      if (k === 1 || (k === 2 && d === this.table.root)) {
        const st = await this.stat(d);
        if (typeof st === 'number') return st;
        if (this.table.ref(dir) !== d) return -EBADF;
        d.refs++;
        return this.entry(d, st);
      }
      if (d.detached) return -ENOENT;
      for (let tries = 0; ; tries++) {
        const rel = k === 2 ? dirname(d.path) : join(d.path, keyOf(name));
        const st = await this.lstat(rel);
        if (typeof st === 'number') return st;
        // a rename moved the directory meanwhile: look again under its new path
        const now = k === 2 ? dirname(d.path) : join(d.path, keyOf(name));
        if (now !== rel && tries < 3) continue;
        if (d.detached) return -ENOENT;
        return this.entry(this.table.getNode(rel, st), st);
      }
    } catch (e) { return fail(e); }
  }

  async dup(node: Node): Promise<Entry | number> {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    try {
      const st = await this.stat(n);
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

  async getattr(node: Node): Promise<Stat | number> {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    try {
      const st = await this.stat(n);
      if (typeof st === 'number') return st;
      return (n.last = st.s);
    } catch (e) { return fail(e); }
  }

  async setattr(node: Node, attr: SetAttr): Promise<number> {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    const t = n.type;
    const plan = setattrPlan(t, attr);
    if (typeof plan === 'number') return plan;
    const { uid, gid, times, other } = plan;
    try {
      const st = n.detached ? -ENOENT : await this.liveStat(n);
      if (typeof st === 'number') {
        if (st !== -ENOENT) return st;
        return await this.setattrLocal(n, attr, uid, gid, times, other);
      }
      const p = this.wp(n.path);
      let r = 0;
      if (uid !== -1 || gid !== -1) {
        r = await this.client.call('T_CHOWN', [p, uid, gid]);
        if (r < 0) return r;
        // Tsetattr changes only what it names: restore set-id bits the host kernel dropped
        const before = st.mode & 0o7777;
        if (attr.mode === undefined && t !== S_IFDIR && t !== S_IFLNK && (before & 0o6000)) {
          r = await this.client.call('T_CHMOD', [p, before]);
          if (r < 0 && r !== -EPERM) return r;
        }
      }
      if (attr.mode !== undefined) {
        r = await this.client.call('T_CHMOD', [p, attr.mode & 0o7777]);
        if (r < 0) return r;
      }
      if (attr.size !== undefined) {
        r = await this.client.call('T_TRUNCATE', [p, attr.size]);
        if (r < 0) return r;
      }
      if (times) {
        const a = attr.atime ?? [0, UTIME_OMIT];
        const m = attr.mtime ?? [0, UTIME_OMIT];
        r = await this.client.call('T_UTIME', [p, a[0], a[1], m[0], m[1]]);
        if (r < 0) return r;
      }
      if (attr.ctime && !other) {
        r = t === S_IFLNK ? await this.client.call('T_CHOWN', [p, -1, -1])
          : await this.client.call('T_CHMOD', [p, st.mode & 0o7777]);
        if (r < 0) return r;
      }
      return 0;
    } catch (e) { return fail(e); }
  }

  /** setattr of an unlinked object through one of our descriptors (/proc/self/fd/N). */
  private async setattrLocal(n: PNode, attr: SetAttr, uid: number, gid: number, times: boolean, other: boolean): Promise<number> {
    const fd = this.anyFd(n);
    if (fd < 0) return -ENOENT;
    const p = procFd(fd);
    if (uid !== -1 || gid !== -1) {
      const before = Number((await pFstat(fd, { bigint: true })).mode) & 0o7777;
      await fsp.chown(p, uid, gid);
      if (attr.mode === undefined && n.type !== S_IFDIR && (before & 0o6000)) await fsp.chmod(p, before);
    }
    if (attr.mode !== undefined) await fsp.chmod(p, attr.mode & 0o7777);
    if (attr.size !== undefined) await fsp.truncate(p, attr.size);
    if (times) {
      let a = attr.atime, m = attr.mtime;
      if (a === undefined || m === undefined) {
        const st = await pFstat(fd, { bigint: true });
        a ??= splitNs(st.atimeNs);
        m ??= splitNs(st.mtimeNs);
      }
      await fsp.utimes(p, seconds(a), seconds(m));
    }
    if (attr.ctime && !other) {
      const st = await pFstat(fd, { bigint: true });
      await fsp.chmod(p, Number(st.mode) & 0o7777);
    }
    return 0;
  }

  async open(node: Node, flags: number): Promise<Fh | number> {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    const acc = flags & O_ACCMODE;
    const t = n.type;
    const hf = openFlags(t, flags);
    if (hf < 0) return hf;
    let fd = -1;
    try {
      if (!n.detached) {
        const r = await this.hopen(n.path, hf);
        if (r >= 0) {
          fd = r;
          let ok = false;
          try {
            const st = await pFstat(fd, { bigint: true });
            ok = st.dev === n.dev && st.ino === n.hino;
          } finally {
            if (!ok) { this.closeFd(fd); fd = -1; }
          }
          if (!ok && n !== this.table.root) this.table.detach(n);
        } else if (r !== -ENOENT) {
          return r;
        }
      }
      if (fd < 0) {
        // unlinked (or replaced): reopen the object through one of our descriptors of it
        const via = this.anyFd(n);
        if (via < 0) return -ENOENT;
        fd = await pOpen(procFd(via), hf & ~C.O_NOFOLLOW);
      }
      if ((flags & O_TRUNC) && acc !== O_RDONLY && t === S_IFREG) await pFtruncate(fd, 0);
      if (this.table.ref(node) !== n || this.destroyed) { this.closeFd(fd); return -EBADF; }
      const fh = this.addFile(fd, n);
      fd = -1;
      return fh;
    } catch (e) {
      if (fd >= 0) this.closeFd(fd);
      return fail(e);
    }
  }

  async create(dir: Node, name: Uint8Array, flags: number, mode: number, uid: number, gid: number): Promise<Created | number> {
    const d = this.table.dirOf(dir);
    if (typeof d === 'number') return d;
    const key = newName(name);
    if (typeof key === 'number') return key;
    const acc = flags & O_ACCMODE;
    if (acc === O_ACCMODE) return -EINVAL;
    const rel = join(d.path, key);
    const hf = hostFlags(flags);
    const [u, g, fixG] = this.creds(uid, gid);
    let fd = -1;
    try {
      let created = false;
      const r = await this.client.call('T_CREATE', [this.wp(rel), hf | C.O_CREAT | C.O_EXCL, mode & 0o7777, u, g]);
      if (r >= 0) { fd = r; created = true; }
      else if (r !== -EEXIST || (flags & O_EXCL)) return r;
      else {
        // an existing object: never ask the helper to open a device node, FIFO or socket
        const ex = await this.lstat(rel);
        if (typeof ex !== 'number') {
          const et = ex.mode & S_IFMT;
          if (et === S_IFDIR) return -EISDIR;
          if (et !== S_IFREG) return et === S_IFLNK ? -ELOOP : -ENXIO;
        }
        const r2 = await this.hopen(rel, hf);
        if (r2 < 0) return r2 === -ENOENT ? -EEXIST : r2;
        fd = r2;
      }
      if (created && fixG >= 0) {
        const e = await this.fixGroup(rel, fixG, mode, false);
        if (e < 0) { this.closeFd(fd); fd = -1; return e; }
      }
      let st = await pFstat(fd, { bigint: true });
      const t = Number(st.mode) & S_IFMT;
      if (t === S_IFDIR) { this.closeFd(fd); fd = -1; return -EISDIR; }
      if (t !== S_IFREG) { this.closeFd(fd); fd = -1; return -ENXIO; }
      if (!created && (flags & O_TRUNC) && acc !== O_RDONLY && t === S_IFREG) {
        await pFtruncate(fd, 0);
        st = await pFstat(fd, { bigint: true });
      }
      if (this.destroyed) { this.closeFd(fd); fd = -1; return -EBADF; }
      const hs = this.fromLocal(st);
      // the directory may have been renamed meanwhile: key the node by its current path
      const n = this.table.getNode(d.detached ? rel : join(d.path, key), hs);
      const fh = this.addFile(fd, n);
      fd = -1;
      const out = { ...hs.s } as Created;
      n.last = hs.s;
      out.node = n.id;
      out.fh = fh;
      return out;
    } catch (e) {
      if (fd >= 0) this.closeFd(fd);
      return fail(e);
    }
  }

  async read(fh: Fh, offset: number, dst: Uint8Array[]): Promise<number> {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    if (f.node.type === S_IFDIR) return -EISDIR;
    try {
      return await pReadv(f.fd, dst, offset);
    } catch (e) { return fail(e); }
  }

  async write(fh: Fh, offset: number, src: Uint8Array[]): Promise<number> {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    if (f.node.type === S_IFDIR) return -EISDIR;
    try {
      const n = await pWritev(f.fd, src, offset);
      if (n === 0) for (const b of src) if (b.length > 0) return -ENOSPC;
      return n;
    } catch (e) { return fail(e); }
  }

  async readdir(fh: Fh, cookie: number, sink: DirSink): Promise<number> {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    const d = f.node;
    if (d.type !== S_IFDIR) return -ENOTDIR;
    try {
      const base = procFd(f.fd);
      if (cookie === 0 || f.snap === null) {
        const snap = await fsp.readdir(base, { encoding: 'buffer' });
        if (f.closed) return -EBADF;
        f.snap = snap;
        this.dirBudget.take(f, snap);
      } else this.dirBudget.touch(f);
      const snap = f.snap;
      let pino = d.ino;
      if (cookie < 2 && d !== this.table.root && !d.detached) {
        const pst = await this.lstat(dirname(d.path));
        if (typeof pst !== 'number') pino = pst.s.ino;
      }
      if (cookie < 1) {
        if (!sink.push(d.ino, 1, S_IFDIR >> 12, DOT)) return 0;
      }
      if (cookie < 2) {
        if (!sink.push(pino, 2, S_IFDIR >> 12, DOTDOT)) return 0;
      }
      const pre = Buffer.from(base + '/');
      for (let i = Math.max(0, cookie - 2); i < snap.length; i++) {
        const name = snap[i];
        let st: BigIntStats;
        try {
          st = await fsp.lstat(Buffer.concat([pre, name]), { bigint: true });
        } catch (e) {
          if ((e as { code?: string }).code === 'ENOENT') continue; // removed since the snapshot
          throw e;
        }
        // closed, or listed anew from cookie 0 (a listing dropped for the budget is still ours)
        if (f.closed || (f.snap !== snap && f.snap !== null)) break;
        if (!sink.push(this.qino(st.dev, st.ino), i + 3, (Number(st.mode) >> 12) & 15, name)) break;
      }
      return 0;
    } catch (e) { return fail(e); }
  }

  async readlink(node: Node): Promise<Uint8Array | number> {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    if (n.type !== S_IFLNK) return -EINVAL;
    const st = await this.liveStat(n);
    if (typeof st === 'number') return st;
    return this.client.call('T_READLINK', [this.wp(n.path), 4096], decodeString);
  }

  /** Shared tail of mkdir/symlink/mknod: fix the group if needed, then the new object's Stat. */
  private async made(rel: string, r: number, fixG: number, mode: number, isLink: boolean): Promise<Stat | number> {
    if (r < 0) return r;
    const e = await this.fixGroup(rel, fixG, mode, isLink);
    if (e < 0) return e;
    const st = await this.lstat(rel);
    return typeof st === 'number' ? st : st.s;
  }

  async mkdir(dir: Node, name: Uint8Array, mode: number, uid: number, gid: number): Promise<Stat | number> {
    const d = this.table.dirOf(dir);
    if (typeof d === 'number') return d;
    const key = newName(name);
    if (typeof key === 'number') return key;
    const rel = join(d.path, key);
    const [u, g, fixG] = this.creds(uid, gid);
    const r = await this.client.call('T_MKDIR', [u, g, this.wp(rel), mode & 0o7777]);
    return this.made(rel, r, fixG, mode, false);
  }

  async symlink(dir: Node, name: Uint8Array, target: Uint8Array, uid: number, gid: number): Promise<Stat | number> {
    const d = this.table.dirOf(dir);
    if (typeof d === 'number') return d;
    // the helper's strings are C strings: a NUL would silently cut the target
    if (target.indexOf(0) >= 0) return -EINVAL;
    const key = newName(name);
    if (typeof key === 'number') return key;
    const rel = join(d.path, key);
    const [u, g, fixG] = this.creds(uid, gid);
    const r = await this.client.call('T_SYMLINK', [u, g, target, this.wp(rel)]);
    return this.made(rel, r, fixG, 0, true);
  }

  async mknod(dir: Node, name: Uint8Array, mode: number, major: number, minor: number, uid: number, gid: number): Promise<Stat | number> {
    const d = this.table.dirOf(dir);
    if (typeof d === 'number') return d;
    const type = mknodType(mode);
    if (type < 0) return type;
    const key = newName(name);
    if (typeof key === 'number') return key;
    const rel = join(d.path, key);
    const [u, g, fixG] = this.creds(uid, gid);
    const rdev = type === S_IFCHR || type === S_IFBLK ? makedev(major, minor) : 0n;
    const r = await this.client.call('T_MKNOD', [u, g, this.wp(rel), type | (mode & 0o7777), rdev]);
    return this.made(rel, r, fixG, mode, false);
  }

  async link(dir: Node, name: Uint8Array, target: Node): Promise<number> {
    const d = this.table.dirOf(dir);
    if (typeof d === 'number') return d;
    const t = this.table.ref(target);
    if (t === null) return -EBADF;
    if (t.type === S_IFDIR) return -EPERM;
    const key = newName(name);
    if (typeof key === 'number') return key;
    const st = await this.liveStat(t);
    if (typeof st === 'number') return st;
    return this.client.call('T_LINK', [this.wp(t.path), this.wp(join(d.path, key))]);
  }

  private async doRename(oldRel: string, newRel: string, expect: PNode | null): Promise<number> {
    if (oldRel === '') return -EBUSY;
    const ost = await this.lstat(oldRel);
    if (typeof ost === 'number') return ost;
    if (expect !== null && (ost.dev !== expect.dev || ost.ino !== expect.hino)) {
      this.table.detach(expect);
      return -ENOENT;
    }
    const nst = await this.lstat(newRel);
    if (typeof nst !== 'number' && nst.dev === ost.dev && nst.ino === ost.ino) return 0;
    const exists = typeof nst !== 'number';
    if (exists) await this.pinPath(newRel);
    const r = await this.client.call('T_RENAME', [this.wp(oldRel), this.wp(newRel)]);
    if (r < 0) { if (exists) this.unpin(newRel); return r; }
    this.table.movePaths(oldRel, newRel, (ost.mode & S_IFMT) === S_IFDIR, exists && (nst.mode & S_IFMT) === S_IFDIR);
    return 0;
  }

  async renameat(olddir: Node, oldname: Uint8Array, newdir: Node, newname: Uint8Array): Promise<number> {
    const od = this.table.dirOf(olddir);
    if (typeof od === 'number') return od;
    const nd = this.table.dirOf(newdir);
    if (typeof nd === 'number') return nd;
    const bad = renameNames(oldname, newname);
    if (bad < 0) return bad;
    try {
      return await this.doRename(join(od.path, keyOf(oldname)), join(nd.path, keyOf(newname)), null);
    } catch (e) { return fail(e); }
  }

  async rename(node: Node, newdir: Node, newname: Uint8Array): Promise<number> {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    const nd = this.table.dirOf(newdir);
    if (typeof nd === 'number') return nd;
    if (n === this.table.root) return -EBUSY;
    if (n.detached) return -ENOENT;
    const bad = renameNames(newname);
    if (bad < 0) return bad;
    try {
      return await this.doRename(n.path, join(nd.path, keyOf(newname)), n);
    } catch (e) { return fail(e); }
  }

  /** T_REMOVE of rel (type already checked) with pinning and detaching. */
  private async removePath(rel: string, isDir: boolean): Promise<number> {
    await this.pinPath(rel);
    const r = await this.client.call('T_REMOVE', [this.wp(rel)]);
    if (r < 0) { this.unpin(rel); return r; }
    this.table.detachPath(rel, isDir);
    return 0;
  }

  async unlinkat(dir: Node, name: Uint8Array, flags: number): Promise<number> {
    const d = this.table.dirOf(dir);
    if (typeof d === 'number') return d;
    const key = unlinkName(name);
    if (typeof key === 'number') return key;
    const rel = join(d.path, key);
    try {
      // the helper's remove() picks unlink or rmdir itself: check the type first
      const st = await this.lstat(rel);
      if (typeof st === 'number') return st;
      const isDir = (st.mode & S_IFMT) === S_IFDIR;
      if ((flags & AT_REMOVEDIR) && !isDir) return -ENOTDIR;
      if (!(flags & AT_REMOVEDIR) && isDir) return -EISDIR;
      return await this.removePath(rel, isDir);
    } catch (e) { return fail(e); }
  }

  async remove(node: Node): Promise<number> {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    if (n === this.table.root) return -EBUSY;
    try {
      const st = await this.liveStat(n);
      if (typeof st === 'number') return st;
      return await this.removePath(n.path, n.type === S_IFDIR);
    } catch (e) { return fail(e); }
  }

  async fsync(fh: Fh, datasync: boolean): Promise<number> {
    const f = this.fhs.get(fh);
    if (f === undefined) return -EBADF;
    try {
      if (datasync) await pFdatasync(f.fd); else await pFsync(f.fd);
      return 0;
    } catch (e) { return fail(e); }
  }

  async statfs(node: Node): Promise<StatFs | number> {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    const s = await this.client.call('T_STATFS', [this.wp(n.detached ? '' : n.path)], decodeStatFs);
    if (typeof s === 'number') return s;
    return {
      type: V9FS_MAGIC, bsize: Number(s.bsize), blocks: Number(s.blocks), bfree: Number(s.bfree),
      bavail: Number(s.bavail), files: Number(s.files), ffree: Number(s.ffree), fsid: s.fsid[0],
      namelen: Number(s.namelen),
    };
  }

  /** The helper's statfs of the node's file system, as it reported it (f_type etc.). */
  async hostStatfs(node: Node): Promise<ReturnType<typeof decodeStatFs> | number> {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    return this.client.call('T_STATFS', [this.wp(n.detached ? '' : n.path)], decodeStatFs);
  }

  /** T_GETVERSION: the inode generation (FS_IOC_GETVERSION; 0 where the fs has none), 32 bits. */
  async getversion(node: Node): Promise<number> {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    if (n.type !== S_IFREG && n.type !== S_IFDIR) return -ENOTTY;
    const st = await this.liveStat(n);
    if (typeof st === 'number') return st;
    return this.client.call('T_GETVERSION', [this.wp(n.path)], decodeVersion);
  }

  private async xnode(node: Node): Promise<PNode | number> {
    const n = this.table.ref(node);
    if (n === null) return -EBADF;
    const st = await this.liveStat(n);
    return typeof st === 'number' ? st : n;
  }

  async getxattr(node: Node, name: Uint8Array): Promise<Uint8Array | number> {
    const n = await this.xnode(node);
    if (typeof n === 'number') return n;
    const p = this.wp(n.path);
    for (let tries = 0; tries < 4; tries++) {
      const len = await this.client.call('T_LGETXATTR', [0, p, name]);
      if (len < 0) return len;
      if (len === 0) return new Uint8Array(0);
      const v = await this.client.call('T_LGETXATTR', [len, p, name], decodeString);
      if (v === -ERANGE) continue; // grew in between
      if (v === -ENOBUFS) return -E2BIG; // does not fit a proxy reply (> 64 KiB)
      return v;
    }
    return -ERANGE;
  }

  async listxattr(node: Node): Promise<Uint8Array[] | number> {
    const n = await this.xnode(node);
    if (typeof n === 'number') return n;
    const p = this.wp(n.path);
    for (let tries = 0; tries < 4; tries++) {
      const len = await this.client.call('T_LLISTXATTR', [0, p]);
      if (len < 0) return len;
      if (len === 0) return [];
      const v = await this.client.call('T_LLISTXATTR', [len, p], decodeString);
      if (v === -ERANGE) continue;
      if (v === -ENOBUFS) return -E2BIG;
      if (typeof v === 'number') return v;
      const out: Uint8Array[] = [];
      let s = 0;
      for (let i = 0; i < v.length; i++) {
        if (v[i] === 0) { if (i > s) out.push(v.slice(s, i)); s = i + 1; }
      }
      if (s < v.length) out.push(v.slice(s));
      return out;
    }
    return -ERANGE;
  }

  async setxattr(node: Node, name: Uint8Array, value: Uint8Array, flags: number): Promise<number> {
    const n = await this.xnode(node);
    if (typeof n === 'number') return n;
    return this.client.call('T_LSETXATTR', [this.wp(n.path), name, value, value.length, flags]);
  }

  async removexattr(node: Node, name: Uint8Array): Promise<number> {
    const n = await this.xnode(node);
    if (typeof n === 'number') return n;
    return this.client.call('T_LREMOVEXATTR', [this.wp(n.path), name]);
  }

  close(fh: Fh): number {
    const f = this.fhs.take(fh);
    if (f === undefined) return -EBADF;
    f.closed = true;
    f.snap = null;
    this.dirBudget.release(f);
    // the last handle of an unlinked object the core still holds is kept as its pin
    if (!this.table.closeHandle(f.node, f, f.fd)) this.closeFd(f.fd);
    return 0;
  }

  forget(node: Node): void {
    this.table.unref(node);
  }

  /** Close every handle and pin, disconnect, and stop launched helpers. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const fds: number[] = [];
    for (const f of this.fhs.values()) { f.closed = true; fds.push(f.fd); }
    this.fhs.clear();
    for (const n of this.table.nodes.values()) {
      n.files.clear();
      if (n.pin >= 0) { fds.push(n.pin); n.pin = -1; }
    }
    this.client.close();
    await Promise.all(fds.map((fd) => pClose(fd).catch(() => undefined)));
  }

  // ---- inspection (tests) -------------------------------------------------------------------------

  /** Descriptors this backend holds (open handles + pins). */
  get heldFds(): number {
    let k = this.fhs.size;
    for (const n of this.table.nodes.values()) if (n.pin >= 0) k++;
    return k;
  }

  /** The descriptor behind an open handle (tests: fd passing). */
  fdOf(fh: Fh): number {
    return this.fhs.get(fh)?.fd ?? -1;
  }
}

