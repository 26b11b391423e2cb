/**
 * Pure helpers shared by the path-based host backends (LocalBackend, ProxyBackend): name
 * checks on single path components, latin1-style path keys, the qid.path (ino) remapping,
 * Linux → host open-flag translation and the checks before an open, the mknod type check,
 * the handle-number table and the attributes of an unreachable node. See path-table.ts for
 * the node table itself.
 */
import fs from 'node:fs';
import type { Entry, Fh, SetAttr, Stat } from './backend.js';
import {
  O_ACCMODE, O_APPEND, O_DIRECTORY, O_RDONLY,
  S_IFMT, S_IFSOCK, S_IFLNK, S_IFREG, S_IFBLK, S_IFDIR, S_IFCHR, S_IFIFO,
} from './backend.js';
import { EBUSY, EEXIST, EINVAL, EISDIR, ELOOP, ENOENT, ENOTDIR, ENOTEMPTY, ENXIO, EOPNOTSUPP, EPERM, toErrno } from '../errno.js';
import type { PathNode } from './path-table.js';

const C = fs.constants;
/** uid/gid "not given" */
export const NO_ID = 0xFFFFFFFF;
/** Linux (x86/arm64 generic) O_PATH: an fd that names an object without opening it. */
export const O_PATH = 0o10000000;
/** Linux x86 O_* bits not in backend.ts */
const L_O_DSYNC = 0o10000, L___O_SYNC = 0o4000000;
/** qid.path values handed out for objects not on the root's device (or with huge inos). */
const REMAP_BASE = 2 ** 52;
/** Rstatfs type: the guest sees a 9p file system, whatever the host's is */
export const V9FS_MAGIC = 0x01021997;

export const DOT = new Uint8Array([0x2e]);
export const DOTDOT = new Uint8Array([0x2e, 0x2e]);

/** The latin1-style key (one char per byte, exact round trip) of a name or path. */
export function keyOf(b: Uint8Array): string {
  const n = b.length;
  if (n <= 4096) return String.fromCharCode.apply(null, b as unknown as number[]);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

/** 0 = ordinary name, 1 = ".", 2 = "..", -1 = not a single component (empty, '/', NUL). */
export function nameKind(name: Uint8Array): number {
  const n = name.length;
  if (n === 0) return -1;
  if (name[0] === 0x2e && (n === 1 || (n === 2 && name[1] === 0x2e))) return n;
  for (let i = 0; i < n; i++) if (name[i] === 0x2f || name[i] === 0) return -1;
  return 0;
}

/** A name that may be created: its key, or -errno (ENOENT not a component, EEXIST "."/".."). */
export function newName(name: Uint8Array): string | number {
  const k = nameKind(name);
  if (k < 0) return -ENOENT;
  if (k > 0) return -EEXIST;
  return keyOf(name);
}

/** A name that may be unlinked: its key, or -errno (ENOENT, EINVAL ".", ENOTEMPTY ".."). */
export function unlinkName(name: Uint8Array): string | number {
  const k = nameKind(name);
  if (k < 0) return -ENOENT;
  if (k === 1) return -EINVAL;
  if (k === 2) return -ENOTEMPTY;
  return keyOf(name);
}

/** The names of a rename: 0, or -ENOENT (one is not a component), else -EBUSY (one is "."/".."). */
export function renameNames(a: Uint8Array, b?: Uint8Array): number {
  const ka = nameKind(a), kb = b === undefined ? 0 : nameKind(b);
  if (ka < 0 || kb < 0) return -ENOENT;
  if (ka > 0 || kb > 0) return -EBUSY;
  return 0;
}

export function join(dir: string, key: string): string {
  return dir === '' ? key : dir + '/' + key;
}

export function dirname(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/** Node fs errors and P9Errors → a negative Linux errno (Node's own ERR_* argument errors: EINVAL). */
export function fail(e: unknown): number {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_')) return -EINVAL;
  return -toErrno(e);
}

/**
 * qid.path (Stat.ino) of a host (dev, ino): the host ino for objects on the root's device (and
 * below 2^52); any other pair — a mount point inside the export — is remapped to 2^52 + n
 * (stable for the life of the map, never reused).
 */
export class InoRemap {
  /** the export root's device (set once it is known) */
  rootDev = 0n;
  private readonly remap = new Map<string, number>();
  private nextRemap = REMAP_BASE;

  qino(dev: bigint, ino: bigint): number {
    if (dev === this.rootDev && ino < 4503599627370496n) return Number(ino);
    const k = `${dev}:${ino}`;
    let q = this.remap.get(k);
    if (q === undefined) { q = this.nextRemap++; this.remap.set(k, q); }
    return q;
  }
}

/** Open handles by handle number (numbers are reused once closed). */
export class FhTable<F> {
  private readonly fhs = new Map<number, F>();
  private readonly freeFhs: number[] = [];
  private nextFh = 1;

  add(f: F): Fh {
    const fh = this.freeFhs.length > 0 ? this.freeFhs.pop()! : this.nextFh++;
    this.fhs.set(fh, f);
    return fh;
  }

  get(fh: Fh): F | undefined { return this.fhs.get(fh); }

  /** Remove the handle (its number becomes free); undefined when it is not open. */
  take(fh: Fh): F | undefined {
    const f = this.fhs.get(fh);
    if (f === undefined) return undefined;
    this.fhs.delete(fh);
    this.freeFhs.push(fh);
    return f;
  }

  get size(): number { return this.fhs.size; }
  keys(): IterableIterator<number> { return this.fhs.keys(); }
  values(): IterableIterator<F> { return this.fhs.values(); }
  clear(): void { this.fhs.clear(); }
}

/** Attributes for a node nothing was ever read of. */
export function blankStat(n: PathNode<unknown>): Stat {
  return {
    ino: n.ino, mode: n.type, uid: 0, gid: 0, nlink: 0, rdev: 0, size: 0, blksize: 4096, blocks: 0,
    atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0,
  };
}

/** dup of an unreachable node (unlinked, no open handle): the last attributes known, nlink 0. */
export function lostEntry(n: PathNode<unknown>): Entry {
  const e = { ...(n.last ?? blankStat(n)), nlink: 0 } as Entry;
  e.node = n.id;
  n.refs++;
  return e;
}

/** Linux open flags → host flags (no O_CREAT/O_EXCL/O_TRUNC; + O_NOFOLLOW|O_NONBLOCK). */
export function hostFlags(flags: number): number {
  const acc = flags & O_ACCMODE;
  let f = acc === 1 ? C.O_WRONLY : acc === 2 ? C.O_RDWR : C.O_RDONLY;
  if (flags & O_APPEND) f |= C.O_APPEND;
  if (flags & O_DIRECTORY) f |= C.O_DIRECTORY;
  if (flags & L___O_SYNC) f |= C.O_SYNC;
  else if (flags & L_O_DSYNC) f |= C.O_DSYNC;
  return f | C.O_NOFOLLOW | C.O_NONBLOCK;
}

/**
 * The host flags to open an existing object of type `t` (S_IFMT bits) with Linux `flags`, or
 * -errno: EINVAL (access mode 3), EISDIR (a directory not read-only), ENOTDIR (O_DIRECTORY on
 * a non-directory), ELOOP (a symlink), ENXIO (a device node, FIFO or socket: only regular files
 * and directories are ever opened on the host, as QEMU does since CVE-2023-2861).
 */
export function openFlags(t: number, flags: number): number {
  const acc = flags & O_ACCMODE;
  if (acc === O_ACCMODE) return -EINVAL;
  if (t === S_IFDIR) {
    if (acc !== O_RDONLY) return -EISDIR;
    return C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW | C.O_NONBLOCK;
  }
  if (flags & O_DIRECTORY) return -ENOTDIR;
  if (t === S_IFLNK) return -ELOOP;
  if (t !== S_IFREG) return -ENXIO;
  return hostFlags(flags);
}

/** The S_IFMT type mknod makes for `mode` (0 = regular), or -errno (EPERM dir, EINVAL other). */
export function mknodType(mode: number): number {
  let type = mode & S_IFMT;
  if (type === 0) type = S_IFREG;
  if (type === S_IFDIR) return -EPERM;
  if (type !== S_IFREG && type !== S_IFCHR && type !== S_IFBLK && type !== S_IFIFO && type !== S_IFSOCK) return -EINVAL;
  return type;
}

/** What a Tsetattr asks for, after the checks against the node's type `t`. */
export interface SetAttrPlan {
  /** -1 = unchanged */
  uid: number;
  gid: number;
  /** atime or mtime given */
  times: boolean;
  /** anything besides ctime given */
  other: boolean;
}

/** Check a setattr against the node's type `t` (size of a non-file, mode of a symlink) or -errno. */
export function setattrPlan(t: number, attr: SetAttr): SetAttrPlan | number {
  if (attr.size !== undefined) {
    if (t === S_IFDIR) return -EISDIR;
    if (t !== S_IFREG) return -EINVAL;
    if (attr.size < 0) return -EINVAL;
  }
  if (t === S_IFLNK && attr.mode !== undefined) return -EOPNOTSUPP;
  const uid = attr.uid !== undefined && attr.uid !== NO_ID ? attr.uid : -1;
  const gid = attr.gid !== undefined && attr.gid !== NO_ID ? attr.gid : -1;
  const times = attr.atime !== undefined || attr.mtime !== undefined;
  const other = uid !== -1 || gid !== -1 || attr.mode !== undefined || attr.size !== undefined || times;
  return { uid, gid, times, other };
}
