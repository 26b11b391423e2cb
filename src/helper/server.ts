/**
 * The server side of QEMU 7.2's 9p proxy protocol (what virtfs-proxy-helper speaks), confined
 * with native/fsops.c instead of chroot. One connection, requests strictly one at a time, in a
 * synchronous loop on a blocking socket (the helper process does nothing else).
 *
 * Wire: the request table, formats and reply shapes are src/backends/proxy/protocol.ts's
 * (REQUESTS); the protocol is QEMU 7.2's (hw/9pfs/9p-proxy.h, fsdev/virtfs-proxy-helper.c).
 *  - fd replies (T_OPEN, T_CREATE): one 4-byte sendmsg: INT_MAX + one SCM_RIGHTS fd, or -errno.
 *  - status replies: {T_SUCCESS|T_ERROR, 4} + d value.
 *  - data replies: {T_SUCCESS, n} + body, or {T_ERROR, 4} + d -errno; a body that would not fit
 *    64 KiB → -ENOBUFS (as QEMU's helper).
 *  - An unknown type, a size above 64 KiB, or a payload that does not decode → disconnect
 *    (QEMU's helper closes the connection on framing errors too). Strings end at their first
 *    NUL (QEMU's client sends existing paths with a trailing NUL); xattr values are binary.
 *
 * Confinement: every path is resolved beneath the export's O_PATH fd with openat2
 * (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS), the last component never
 * followed; leading '/' name the export root (so QEMU's "//dir/name" paths work without
 * chroot). No symlink is ever traversed, also not one swapped in during a request; `..` cannot
 * climb above the export (EXDEV). T_CHMOD of a symlink → EOPNOTSUPP (QEMU's chrooted helper
 * follows it; following is what we refuse).
 *
 * Special files (QEMU 7.2.4+, CVE-2023-2861): T_OPEN / T_CREATE hand out descriptors only for
 * regular files and directories, anything else → ENXIO. We open non-blocking first, so a FIFO
 * never blocks the helper (QEMU's helper blocks in open() on a FIFO without a writer).
 *
 * Credentials (§6.2): creations (CREATE, MKDIR, MKNOD, SYMLINK) are done as the helper's own
 * user and the new object is then chowned to the requested uid:gid (fchownat, no follow) and,
 * where chown dropped set-id bits, chmod'ed back to the exact requested mode. No set*id, no
 * capability changes, no other thread: none of QEMU's helper bugs (lost capabilities after a
 * uid-0/gid≠0 create, an abort on the next, capabilities kept by a second thread) can happen.
 * An existing file opened by T_CREATE without O_EXCL keeps its owner (as with QEMU).
 */
import fs from 'node:fs';
import { fdpass } from '../backends/proxy/native.js';
import {
  REQUESTS, T_SUCCESS, T_ERROR, PROXY_MAX_IO_SZ, HEADER_SIZE, FD_VALID, marshal, unmarshal, ProxyProtocolError, type RequestName,
} from '../backends/proxy/protocol.js';
import { fsops, REGULAR_ONLY, type FsOps } from './fsops.js';

const EINVAL = 22, ENOBUFS = 105, EEXIST = 17, EPERM = 1, EAGAIN = 11, ENXIO = 6, ENOTTY = 25;
const O_CREAT = 0o100, O_EXCL = 0o200;
const S_IFMT = 0o170000, S_IFREG = 0o100000, S_IFDIR = 0o40000;
/** file systems whose FS_IOC_GETVERSION the helper forwards (QEMU: ext2/3/4, btrfs, reiserfs, xfs) */
const GETVERSION_FS = new Set([0xEF53, 0x9123683E, 0x52654973, 0x58465342]);

const BY_TYPE = new Map<number, RequestName>();
for (const [name, spec] of Object.entries(REQUESTS)) BY_TYPE.set(spec.type, name as RequestName);

export class FramingError extends Error {}

/** A string argument cut at its first NUL (QEMU sends V9fsPath with its terminator). */
function cstr(b: Uint8Array): Uint8Array {
  const i = b.indexOf(0);
  return i < 0 ? b : b.subarray(0, i);
}

export interface HelperLog {
  (msg: string): void;
}

export interface ServeOptions {
  /** export directory (already checked to be a directory) */
  root: string;
  log?: HelperLog;
}

export class HelperServer {
  private readonly F: FsOps = fsops();
  private readonly rootFd: number;
  private readonly getversion: boolean;
  private readonly isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  private readonly st = new BigInt64Array(16);
  private readonly sfs = new BigInt64Array(11);
  private readonly log: HelperLog;
  private warnedSpecial = false;
  /** requests served (tests) */
  served = 0;

  constructor(opts: ServeOptions) {
    this.log = opts.log ?? ((m) => process.stderr.write(`virtio9p-helper: ${m}\n`));
    const fd = this.F.openRoot(opts.root);
    if (fd < 0) throw Object.assign(new Error(`cannot open ${opts.root}: errno ${-fd}`), { errno: -fd });
    this.rootFd = fd;
    const t = this.F.fsType(fd);
    this.getversion = t >= 0 && GETVERSION_FS.has(t);
  }

  close(): void {
    this.F.close(this.rootFd);
  }

  /**
   * Serve one connection until EOF or a framing error. Blocking: the socket is made blocking
   * (a non-blocking inherited fd works too, unlike QEMU's helper). Returns the reason.
   */
  serve(sock: number): string {
    const nat = fdpass();
    this.F.setBlocking(sock);
    const hdr = Buffer.alloc(HEADER_SIZE);
    const payload = Buffer.alloc(PROXY_MAX_IO_SZ);
    for (;;) {
      if (!readFull(sock, hdr, HEADER_SIZE)) return 'EOF';
      const type = hdr.readInt32LE(0);
      const size = hdr.readInt32LE(4);
      const name = BY_TYPE.get(type);
      if (name === undefined) return `unknown request type ${type}`;
      if (size < 0 || size > PROXY_MAX_IO_SZ) return `request size ${size} out of range`;
      if (!readFull(sock, payload, size)) return 'EOF inside a request';
      let reply: Reply;
      try {
        const args = unmarshal(payload.subarray(0, size), REQUESTS[name].args, { lenient: true, views: true });
        reply = this.handle(name, args);
      } catch (e) {
        if (e instanceof FramingError || e instanceof ProxyProtocolError) return e.message;
        throw e;
      }
      this.served++;
      if (reply.kind === 'fd') {
        const b = Buffer.alloc(4);
        b.writeInt32LE(reply.fd >= 0 ? FD_VALID : reply.fd, 0);
        for (;;) {
          const n = nat.send(sock, b, reply.fd >= 0 ? [reply.fd] : undefined);
          if (n === -EAGAIN) { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); continue; }
          if (reply.fd >= 0) this.F.close(reply.fd);
          if (n < 0) return `send: errno ${-n}`;
          break;
        }
      } else {
        writeFull(sock, reply.bytes);
      }
    }
  }

  // ---- one request ----------------------------------------------------------------------------

  handle(name: RequestName, a: (number | bigint | Uint8Array)[]): Reply {
    const F = this.F, R = this.rootFd;
    const s = (i: number): Uint8Array => cstr(a[i] as Uint8Array);
    const d = (i: number): number => a[i] as number;
    const q = (i: number): bigint => a[i] as bigint;
    switch (name) {
      case 'T_OPEN': {
        const fd = F.open(R, s(0), d(1) & ~O_CREAT, 0, REGULAR_ONLY);
        return { kind: 'fd', fd: this.special(fd) };
      }
      case 'T_CREATE': {
        const [flags, mode, uid, gid] = [d(1), d(2), d(3), d(4)];
        const p = s(0);
        let fd = F.open(R, p, flags | O_CREAT | O_EXCL, mode, REGULAR_ONLY);
        let created = fd >= 0;
        if (fd === -EEXIST && !(flags & O_EXCL)) { fd = F.open(R, p, flags & ~O_CREAT, 0, REGULAR_ONLY); created = false; }
        if (fd >= 0 && created) {
          const r = this.own(fd, '', uid, gid, mode);
          if (r < 0) { F.close(fd); F.unlink(R, p, 0); fd = r; }
        }
        return { kind: 'fd', fd: this.special(fd) };
      }
      case 'T_MKNOD': {
        const [uid, gid, p, mode] = [d(0), d(1), s(2), d(3)];
        return this.made(p, F.mknod(R, p, mode, q(4)), uid, gid, mode);
      }
      case 'T_MKDIR': {
        const [uid, gid, p, mode] = [d(0), d(1), s(2), d(3)];
        return this.made(p, F.mkdir(R, p, mode), uid, gid, mode);
      }
      case 'T_SYMLINK': {
        // a NUL inside the target (beyond a C string's own terminator) would cut it: refuse
        const raw = a[2] as Uint8Array;
        const nul = raw.indexOf(0);
        if (nul >= 0 && nul < raw.length - 1) return error(-EINVAL);
        const [uid, gid, target, p] = [d(0), d(1), s(2), s(3)];
        return this.made(p, F.symlink(target, R, p), uid, gid, -1);
      }
      case 'T_LINK': return status(F.link(R, s(0), R, s(1)));
      case 'T_LSTAT': {
        const r = F.stat(R, s(0), this.st);
        if (r < 0) return error(r);
        const t = this.st;
        return data('T_LSTAT', [t[0], t[1], t[2], Number(t[3]), Number(t[4]), Number(t[5]), t[6], t[7], t[8], t[9],
          t[10], t[11], t[12], t[13], t[14], t[15]]);
      }
      case 'T_READLINK': {
        const r = F.readlink(R, s(0));
        if (typeof r === 'number') return error(r);
        const max = Math.max(0, d(1) - 1);
        return data('T_READLINK', [r.length > max ? r.subarray(0, max) : r]);
      }
      case 'T_STATFS': {
        const r = F.statfs(R, s(0), this.sfs);
        if (r < 0) return error(r);
        return data('T_STATFS', [...this.sfs]);
      }
      case 'T_CHMOD': return status(F.chmod(R, s(0), d(1)));
      case 'T_CHOWN': return status(F.chown(R, s(0), d(1), d(2)));
      case 'T_TRUNCATE': return status(F.truncate(R, s(0), BigInt.asIntN(64, q(1))));
      case 'T_UTIME': {
        const v = [1, 2, 3, 4].map((i) => BigInt.asIntN(64, q(i)));
        return status(F.utimes(R, s(0), v[0], v[1], v[2], v[3]));
      }
      case 'T_RENAME': return status(F.rename(R, s(0), R, s(1), 0));
      case 'T_REMOVE': return status(F.unlink(R, s(0), -1));
      case 'T_LGETXATTR': {
        const size = d(0);
        const r = F.getxattr(R, s(1), s(2), Math.max(0, size));
        return this.xreply('T_LGETXATTR', size, r);
      }
      case 'T_LLISTXATTR': {
        const size = d(0);
        const r = F.listxattr(R, s(1), Math.max(0, size));
        return this.xreply('T_LLISTXATTR', size, r);
      }
      case 'T_LSETXATTR': {
        const value = a[2] as Uint8Array;
        const size = d(3);
        if (size < 0 || size > value.length) return status(-EINVAL);
        return status(F.setxattr(R, s(0), s(1), value.subarray(0, size), d(4)));
      }
      case 'T_LREMOVEXATTR': return status(F.removexattr(R, s(0), s(1)));
      case 'T_GETVERSION': {
        if (!this.getversion) return data('T_GETVERSION', [0n]); // as QEMU: 0 for any path
        const r = F.getversion(R, s(0));
        if (r < 0) return error(r === -ENOTTY ? r : r);
        return data('T_GETVERSION', [BigInt(r >>> 0)]);
      }
    }
    throw new FramingError(`unhandled ${name as string}`);
  }

  /** ENXIO for special files is already decided by fsops (REGULAR_ONLY); log it once like QEMU. */
  private special(fd: number): number {
    if (fd === -ENXIO && !this.warnedSpecial) {
      this.warnedSpecial = true;
      this.log('9p: refused to open a special file (not a regular file or directory): ENXIO');
    }
    return fd;
  }

  /** chown a new object to uid:gid (fd + "" or root + path) and restore the exact mode. */
  private own(fd: number, p: Uint8Array | string, uid: number, gid: number, mode: number): number {
    const F = this.F;
    const dirfd = fd >= 0 ? fd : this.rootFd;
    const u = uid >>> 0, g = gid >>> 0;
    const myU = process.geteuid?.() ?? 0, myG = process.getegid?.() ?? 0;
    if (u === myU && g === myG) return 0;
    const r = F.chown(dirfd, p, u === 0xFFFFFFFF ? -1 : u, g === 0xFFFFFFFF ? -1 : g);
    if (r < 0) {
      // not root: QEMU's helper cannot switch ids either; keep the object as ours, best effort
      if (r === -EPERM && !this.isRoot) return 0;
      return r;
    }
    // chown cleared S_ISUID/S_ISGID of a non-directory: put the requested mode back
    if (mode >= 0 && (mode & 0o6000)) {
      const t = F.stat(dirfd, p, this.st);
      if (t === 0 && (Number(this.st[3]) & S_IFMT) !== S_IFDIR) F.chmod(dirfd, p, mode & 0o7777);
    }
    return 0;
  }

  private made(p: Uint8Array, r: number, uid: number, gid: number, mode: number): Reply {
    if (r < 0) return status(r);
    const e = this.own(-1, p, uid, gid, mode);
    if (e < 0) { this.F.unlink(this.rootFd, p, -1); return status(e); }
    return status(0);
  }

  private xreply(name: 'T_LGETXATTR' | 'T_LLISTXATTR', size: number, r: Buffer | number): Reply {
    if (size <= 0) return status(typeof r === 'number' ? r : r.length);
    if (typeof r === 'number') return error(r);
    if (2 + r.length > PROXY_MAX_IO_SZ) return error(-ENOBUFS);
    return data(name, [r]);
  }
}

export type Reply = { kind: 'fd'; fd: number } | { kind: 'bytes'; bytes: Uint8Array };

function header(type: number, size: number, body: number): Uint8Array {
  const b = Buffer.alloc(HEADER_SIZE + size);
  b.writeInt32LE(type, 0);
  b.writeInt32LE(size, 4);
  if (size === 4) b.writeInt32LE(body, 8);
  return b;
}

function status(v: number): Reply {
  return { kind: 'bytes', bytes: header(v < 0 ? T_ERROR : T_SUCCESS, 4, v) };
}

function error(v: number): Reply {
  return { kind: 'bytes', bytes: header(T_ERROR, 4, v) };
}

/** scratch for data bodies (the helper serves one request at a time) */
const scratch = new Uint8Array(PROXY_MAX_IO_SZ + 16);

function data(name: RequestName, values: (number | bigint | Uint8Array)[]): Reply {
  const spec = REQUESTS[name] as { body?: string };
  const fmt = spec.body!;
  const tmp = scratch;
  const n = marshal(tmp, 0, fmt, values.map((v) => (typeof v === 'bigint' ? BigInt.asUintN(64, v) : v)));
  if (n > PROXY_MAX_IO_SZ) return error(-ENOBUFS);
  const b = Buffer.alloc(HEADER_SIZE + n);
  b.writeInt32LE(T_SUCCESS, 0);
  b.writeInt32LE(n, 4);
  b.set(tmp.subarray(0, n), HEADER_SIZE);
  return { kind: 'bytes', bytes: b };
}

function readFull(fd: number, buf: Buffer, n: number): boolean {
  let off = 0;
  while (off < n) {
    let k: number;
    try {
      k = fs.readSync(fd, buf, off, n - off, null);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'EINTR') continue;
      if (code === 'EAGAIN') { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); continue; }
      if (code === 'ECONNRESET') return false;
      throw e;
    }
    if (k === 0) return false;
    off += k;
  }
  return true;
}

function writeFull(fd: number, b: Uint8Array): void {
  let off = 0;
  while (off < b.length) {
    try {
      off += fs.writeSync(fd, b, off, b.length - off);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'EAGAIN' || code === 'EINTR') continue;
      throw e;
    }
  }
}
