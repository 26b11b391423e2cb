/**
 * The backend interface: what the host gives the wasm core's file-system imports.
 *
 * The core keeps the 9P session (fids, open state, walk rules, msize); a backend only answers
 * file-system questions about opaque handles it hands out:
 *
 *   Node  — a file-system object (u32 > 0). Every Node a backend returns (attach, lookup,
 *           create) carries one reference that the core gives back with `forget(node)`.
 *           A Node stays valid after its object is renamed or unlinked (fids follow objects).
 *   Fh    — an open file or directory (u32 > 0, < 2^31), released with `close(fh)`.
 *
 * Results: every method returns its value (numbers ≥ 0) or a **negative Linux errno** (-ENOENT),
 * or throws a P9Error / Node fs error, or returns a Promise of any of these (asynchronous
 * backends). Returning -errno is the cheap path for expected failures (a lookup miss).
 * Names and data are Uint8Array views into the module's memory: they stay valid until the
 * operation completes; copy them if you keep them longer. Names are bytes, never decoded by
 * the core; the core has already rejected empty names, '/' and NUL where the operation creates
 * a name.
 *
 * 64-bit values (offsets, sizes, cookies) are JS numbers; the core never passes values above
 * 2^53 (it answers EFBIG/EINVAL itself), and backends must not produce them.
 */

export type Node = number;
export type Fh = number;
/** A negative Linux errno (-ENOENT). */
export type Errno = number;
export type Res<T> = T | Errno | Promise<T | Errno>;

/** Attributes of an object (Rgetattr's fields). */
export interface Stat {
  /** unique per object across the export, shared by hard links; becomes qid.path */
  ino: number;
  /** st_mode including the S_IFMT type bits */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  /** Linux new_encode_dev(major, minor): (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12) */
  rdev: number;
  size: number;
  blksize: number;
  /** 512-byte units */
  blocks: number;
  atimeSec: number; atimeNsec: number;
  mtimeSec: number; mtimeNsec: number;
  ctimeSec: number; ctimeNsec: number;
}

/** A Stat plus the Node handle (with one reference for the core). */
export interface Entry extends Stat {
  node: Node;
}

/** What create returns: the new object (one reference) and the open handle. */
export interface Created extends Entry {
  fh: Fh;
}

export interface StatFs {
  type: number; bsize: number; blocks: number; bfree: number; bavail: number;
  files: number; ffree: number; fsid: number; namelen: number;
}

/** A Tsetattr, already normalised: absent fields are not changed. */
export interface SetAttr {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** [sec, nsec]; "now" has already been resolved by the caller */
  atime?: [number, number];
  mtime?: [number, number];
  /** touch ctime only (Tsetattr CTIME with nothing else) */
  ctime?: boolean;
}

/** Where readdir puts entries. `push` returns false when the entry did not fit: stop there. */
export interface DirSink {
  /**
   * @param ino    the entry's qid.path
   * @param next   cookie that resumes just after this entry (never 0)
   * @param dtype  DT_* type ((mode >> 12) & 15)
   * @param name   the entry's name bytes
   */
  push(ino: number, next: number, dtype: number, name: Uint8Array): boolean;
}

/** Linux open flags as 9P2000.L carries them (the x86 O_* values). */
export const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_ACCMODE = 3, O_CREAT = 0o100,
  O_EXCL = 0o200, O_TRUNC = 0o1000, O_APPEND = 0o2000, O_DIRECTORY = 0o200000,
  O_NOFOLLOW = 0o400000;
export const AT_REMOVEDIR = 0x200;
export const XATTR_CREATE = 1, XATTR_REPLACE = 2;
export const S_IFMT = 0o170000, S_IFSOCK = 0o140000, S_IFLNK = 0o120000, S_IFREG = 0o100000,
  S_IFBLK = 0o60000, S_IFDIR = 0o40000, S_IFCHR = 0o20000, S_IFIFO = 0o10000;

export interface Backend {
  /** The root of the tree named by aname (bytes; empty = the export root). uid 0xFFFFFFFF = none given. */
  attach(aname: Uint8Array, uid: number): Res<Entry>;
  /** One name in a directory. "." is the directory itself; ".." its parent, and ".." at the
   *  export root is the root. Not a directory → ENOTDIR. */
  lookup(dir: Node, name: Uint8Array): Res<Entry>;
  /** Another reference to `node` (a fid is cloned), with its current attributes. Works on any
   *  type of object, including unlinked ones. */
  dup(node: Node): Res<Entry>;
  getattr(node: Node): Res<Stat>;
  /** Returns 0 on success. Works on unlinked objects. */
  setattr(node: Node, attr: SetAttr): Res<number>;
  /** Open (flags: Linux O_*; honours O_TRUNC and O_APPEND). Returns the Fh (> 0). */
  open(node: Node, flags: number): Res<Fh>;
  /** Create and open a regular file (mode's permission bits; O_EXCL honoured). */
  create(dir: Node, name: Uint8Array, flags: number, mode: number, uid: number, gid: number): Res<Created>;
  /** Read into the buffers in order, at most their total length; returns bytes read (0 = EOF). */
  read(fh: Fh, offset: number, dst: Uint8Array[]): Res<number>;
  /** Write the buffers in order; returns bytes written (> 0 for a non-empty write). */
  write(fh: Fh, offset: number, src: Uint8Array[]): Res<number>;
  /** Entries after `cookie` (0 = from the start, "." and ".." included), until sink.push
   *  returns false or the directory ends. Returns 0 (or an errno). */
  readdir(fh: Fh, cookie: number, sink: DirSink): Res<number>;
  readlink(node: Node): Res<Uint8Array>;
  mkdir(dir: Node, name: Uint8Array, mode: number, uid: number, gid: number): Res<Stat>;
  symlink(dir: Node, name: Uint8Array, target: Uint8Array, uid: number, gid: number): Res<Stat>;
  mknod(dir: Node, name: Uint8Array, mode: number, major: number, minor: number, uid: number, gid: number): Res<Stat>;
  /** Hard link `target` as dir/name. Directories → EPERM. Returns 0. */
  link(dir: Node, name: Uint8Array, target: Node): Res<number>;
  /** rename(2) semantics. Returns 0. */
  renameat(olddir: Node, oldname: Uint8Array, newdir: Node, newname: Uint8Array): Res<number>;
  /** Rename the object `node` (Trename) to newdir/newname. Returns 0. */
  rename(node: Node, newdir: Node, newname: Uint8Array): Res<number>;
  /** flags: 0 or AT_REMOVEDIR. Returns 0. */
  unlinkat(dir: Node, name: Uint8Array, flags: number): Res<number>;
  /** Remove the object `node` from its directory (Tremove). Returns 0. */
  remove(node: Node): Res<number>;
  fsync(fh: Fh, datasync: boolean): Res<number>;
  statfs(node: Node): Res<StatFs>;
  /** Value of one xattr; ENODATA when absent. */
  getxattr(node: Node, name: Uint8Array): Res<Uint8Array>;
  /** Names of all xattrs. */
  listxattr(node: Node): Res<Uint8Array[]>;
  /** flags: 0, XATTR_CREATE or XATTR_REPLACE. Returns 0. */
  setxattr(node: Node, name: Uint8Array, value: Uint8Array, flags: number): Res<number>;
  /** ENODATA when absent. Returns 0. */
  removexattr(node: Node, name: Uint8Array): Res<number>;
  /** Release an open handle. Returns 0. */
  close(fh: Fh): Res<number>;
  /** Give back one reference to a Node. */
  forget(node: Node): void;
  /** Optional: release what the backend holds on the host (descriptors, helper processes);
   *  wrappers pass it on to the backend they wrap. */
  destroy?(): unknown;
}
