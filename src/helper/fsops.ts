/**
 * Types of the confined file-system addon (native/fsops.c), loaded by src/native.ts.
 *
 * Every path is relative to a directory fd and resolved with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS): no `..` above it, no symlink anywhere in the
 * path (also not one swapped in during the call), the final component never followed. Leading
 * '/' are ignored, "" names the directory fd itself. Results: >= 0 or a negative errno.
 */
import { loadAddon } from '../native.js';

export type PathArg = Uint8Array | string;

export interface FsOps {
  openRoot(p: PathArg): number;
  /** opts: REGULAR_ONLY (1) refuses anything but regular files and directories with ENXIO */
  open(dirfd: number, p: PathArg, flags: number, mode: number, opts: number): number;
  /** lstat into out (16 × i64, ProxyStat order) */
  stat(dirfd: number, p: PathArg, out: BigInt64Array): number;
  fstat(fd: number, out: BigInt64Array): number;
  /** out: 11 × i64 (type bsize blocks bfree bavail files ffree fsid0 fsid1 namelen frsize) */
  statfs(dirfd: number, p: PathArg, out: BigInt64Array): number;
  mkdir(dirfd: number, p: PathArg, mode: number): number;
  mknod(dirfd: number, p: PathArg, mode: number, rdev: number | bigint): number;
  symlink(target: PathArg, dirfd: number, p: PathArg): number;
  link(olddirfd: number, oldp: PathArg, newdirfd: number, newp: PathArg): number;
  rename(olddirfd: number, oldp: PathArg, newdirfd: number, newp: PathArg, flags: number): number;
  /** flags: 0, AT_REMOVEDIR (0x200), or -1 = by type (remove(3)) */
  unlink(dirfd: number, p: PathArg, flags: number): number;
  chown(dirfd: number, p: PathArg, uid: number, gid: number): number;
  chmod(dirfd: number, p: PathArg, mode: number): number;
  truncate(dirfd: number, p: PathArg, len: number | bigint): number;
  utimes(dirfd: number, p: PathArg, as: number | bigint, ans: number | bigint, ms: number | bigint, mns: number | bigint): number;
  readlink(dirfd: number, p: PathArg): Buffer | number;
  getxattr(dirfd: number, p: PathArg, name: PathArg, size: number): Buffer | number;
  listxattr(dirfd: number, p: PathArg, size: number): Buffer | number;
  setxattr(dirfd: number, p: PathArg, name: PathArg, value: Uint8Array, flags: number): number;
  removexattr(dirfd: number, p: PathArg, name: PathArg): number;
  getversion(dirfd: number, p: PathArg): number;
  /** [next offset, name, ino, d_type, d_off, name, ...] or -errno */
  readdir(fd: number, offset: number | bigint, max: number): (bigint | Buffer | number)[] | number;
  close(fd: number): number;
  /** a listening AF_UNIX stream socket bound to path (blocking) */
  listenUnix(p: string, backlog: number): number;
  /** blocking accept4(SOCK_CLOEXEC) */
  accept(fd: number): number;
  /** clear O_NONBLOCK */
  setBlocking(fd: number): number;
  /** f_type of the fd's file system */
  fsType(fd: number): number;
}

export const REGULAR_ONLY = 1;
export const UTIME_NOW = 0x3fffffff, UTIME_OMIT = 0x3ffffffe;
/** stat array indices */
export const ST = {
  dev: 0, ino: 1, nlink: 2, mode: 3, uid: 4, gid: 5, rdev: 6, size: 7, blksize: 8, blocks: 9,
  atime: 10, atimeNs: 11, mtime: 12, mtimeNs: 13, ctime: 14, ctimeNs: 15,
} as const;

/** The addon (throws one line naming what is missing). */
export function fsops(): FsOps {
  return loadAddon<FsOps>('fsops');
}

/** Throw a Node-style error for a negative errno result (code set, like fs errors). */
export function check(r: number, what: string): number {
  if (r < 0) throw errnoError(-r, what);
  return r;
}

const CODES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 5: 'EIO', 6: 'ENXIO', 9: 'EBADF', 13: 'EACCES', 16: 'EBUSY', 17: 'EEXIST',
  18: 'EXDEV', 20: 'ENOTDIR', 21: 'EISDIR', 22: 'EINVAL', 28: 'ENOSPC', 34: 'ERANGE', 36: 'ENAMETOOLONG',
  39: 'ENOTEMPTY', 40: 'ELOOP', 61: 'ENODATA', 95: 'EOPNOTSUPP',
};

export function errnoError(errno: number, what: string): Error & { code: string; errno: number } {
  const code = CODES[errno] ?? `E${errno}`;
  return Object.assign(new Error(`${code}: ${what}`), { code, errno: -errno });
}
