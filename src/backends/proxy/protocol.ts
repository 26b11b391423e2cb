/**
 * The QEMU 7.2 9p "proxy" protocol (virtfs-proxy-helper), wire level: one table of request
 * types with their marshal formats and reply shapes, and strict encoders/decoders.
 * Reference: QEMU 7.2's hw/9pfs/9p-proxy.{h,c} and fsdev/virtfs-proxy-helper.c (primitives,
 * framing, the request catalogue, layouts).
 *
 * Primitives (host byte order = little-endian on every host this runs on):
 *   b u8 · w u16 · d 32-bit (two's complement when negative) · q u64 · s (w length, raw bytes)
 * Request: d type, d size, payload (size ≤ PROXY_MAX_IO_SZ).
 * Replies: 'fd'     — no header: one 4-byte d (INT_MAX + one SCM_RIGHTS fd, or -errno);
 *          'status' — {d T_SUCCESS|T_ERROR, d 4} + d value (≥ 0 or -errno);
 *          'data'   — {d T_SUCCESS, d n} + n bytes in the request's reply format,
 *                     or {d T_ERROR, d 4} + d -errno.
 *          LGETXATTR / LLISTXATTR are 'status' when the requested size is 0, else 'data'.
 * Decoding is strict: a short or over-long body, a bad header or an impossible value throws a
 * ProxyProtocolError (the connection is then beyond repair).
 */

export const T_SUCCESS = 0;
export const T_ERROR = 1;
/** Largest request payload (header excluded); bigger requests make the helper hang up. */
export const PROXY_MAX_IO_SZ = 65536;
export const HEADER_SIZE = 8;
/** V9FS_FD_VALID: the fd reply value that comes with a descriptor. */
export const FD_VALID = 0x7fffffff;
/** utimensat special nanosecond values (pass through T_UTIME unchanged). */
export const UTIME_NOW = 0x3fffffff;
export const UTIME_OMIT = 0x3ffffffe;

export type ReplyShape = 'fd' | 'status' | 'data' | 'xattr';

export interface RequestSpec {
  /** wire type number (QEMU 7.2 hw/9pfs/9p-proxy.h) */
  readonly type: number;
  /** marshal format of the arguments, in wire order */
  readonly args: string;
  /** reply shape; 'xattr' = 'status' when the size argument is 0, else 'data' */
  readonly reply: ReplyShape;
  /** format of a successful data reply's body */
  readonly body?: string;
}

/** THE table: request name → number, argument format, reply shape (and data body format). */
export const REQUESTS = {
  T_OPEN:         { type: 2,  args: 'sd',    reply: 'fd' },
  T_CREATE:       { type: 3,  args: 'sdddd', reply: 'fd' },
  T_MKNOD:        { type: 4,  args: 'ddsdq', reply: 'status' },
  T_MKDIR:        { type: 5,  args: 'ddsd',  reply: 'status' },
  T_SYMLINK:      { type: 6,  args: 'ddss',  reply: 'status' },
  T_LINK:         { type: 7,  args: 'ss',    reply: 'status' },
  T_LSTAT:        { type: 8,  args: 's',     reply: 'data', body: 'qqqdddqqqqqqqqqq' },
  T_READLINK:     { type: 9,  args: 'sd',    reply: 'data', body: 's' },
  T_STATFS:       { type: 10, args: 's',     reply: 'data', body: 'qqqqqqqqqqq' },
  T_CHMOD:        { type: 11, args: 'sd',    reply: 'status' },
  T_CHOWN:        { type: 12, args: 'sdd',   reply: 'status' },
  T_TRUNCATE:     { type: 13, args: 'sq',    reply: 'status' },
  T_UTIME:        { type: 14, args: 'sqqqq', reply: 'status' },
  T_RENAME:       { type: 15, args: 'ss',    reply: 'status' },
  T_REMOVE:       { type: 16, args: 's',     reply: 'status' },
  T_LGETXATTR:    { type: 17, args: 'dss',   reply: 'xattr', body: 's' },
  T_LLISTXATTR:   { type: 18, args: 'ds',    reply: 'xattr', body: 's' },
  T_LSETXATTR:    { type: 19, args: 'sssdd', reply: 'status' },
  T_LREMOVEXATTR: { type: 20, args: 'ss',    reply: 'status' },
  T_GETVERSION:   { type: 21, args: 's',     reply: 'data', body: 'q' },
} as const satisfies Record<string, RequestSpec>;

export type RequestName = keyof typeof REQUESTS;

/** A marshalled value: 'b'/'w'/'d' numbers, 'q' number or bigint, 's' bytes (or a JS string, UTF-8). */
export type Value = number | bigint | Uint8Array | string;

export class ProxyProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProxyProtocolError';
  }
}

/** A request that cannot be expressed on the wire (string > 65535 bytes, payload > 64 KiB). */
export class ProxyEncodeError extends Error {
  constructor(message: string, public readonly errno: number) {
    super(message);
    this.name = 'ProxyEncodeError';
  }
}

const utf8 = new TextEncoder();
const E2BIG = 7, ENAMETOOLONG = 36, EINVAL = 22;

/** Byte size of `values` marshalled with `fmt`. */
function sizeOf(fmt: string, values: readonly Value[]): number {
  let n = 0;
  for (let i = 0; i < fmt.length; i++) {
    switch (fmt[i]) {
      case 'b': n += 1; break;
      case 'w': n += 2; break;
      case 'd': n += 4; break;
      case 'q': n += 8; break;
      case 's': {
        const v = values[i];
        n += 2 + (typeof v === 'string' ? utf8.encode(v).length : (v as Uint8Array).length);
        break;
      }
      default: throw new Error(`proxy: bad format code ${fmt[i]}`);
    }
  }
  return n;
}

/** Marshal `values` with `fmt` into out at off; returns the new offset. */
export function marshal(out: Uint8Array, off: number, fmt: string, values: readonly Value[]): number {
  if (values.length !== fmt.length) throw new Error(`proxy: ${fmt} needs ${fmt.length} values, got ${values.length}`);
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < fmt.length; i++) {
    const v = values[i];
    switch (fmt[i]) {
      case 'b': dv.setUint8(off, Number(v) & 0xff); off += 1; break;
      case 'w': dv.setUint16(off, Number(v) & 0xffff, true); off += 2; break;
      case 'd': {
        const x = Number(v);
        if (!Number.isInteger(x) || x < -0x80000000 || x > 0xffffffff) throw new ProxyEncodeError(`proxy: d out of range: ${x}`, EINVAL);
        dv.setUint32(off, x >>> 0, true);
        off += 4;
        break;
      }
      case 'q': {
        const x = typeof v === 'bigint' ? v : BigInt(Number(v));
        dv.setBigUint64(off, BigInt.asUintN(64, x), true);
        off += 8;
        break;
      }
      case 's': {
        const b = typeof v === 'string' ? utf8.encode(v) : (v as Uint8Array);
        if (b.length > 0xffff) throw new ProxyEncodeError('proxy: string longer than 65535 bytes', ENAMETOOLONG);
        dv.setUint16(off, b.length, true);
        out.set(b, off + 2);
        off += 2 + b.length;
        break;
      }
      default: throw new Error(`proxy: bad format code ${fmt[i]}`);
    }
  }
  return off;
}

/**
 * Unmarshal `fmt` from `buf`. 'q' gives bigint, 's' bytes. Strict by default (every byte must
 * be consumed; strings are copies). The helper reads requests `lenient` (trailing bytes ignored,
 * as QEMU's helper reads only what it needs) with strings as `views` into the payload.
 */
export function unmarshal(buf: Uint8Array, fmt: string, opts: { lenient?: boolean; views?: boolean } = {}): (number | bigint | Uint8Array)[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: (number | bigint | Uint8Array)[] = [];
  let off = 0;
  const need = (n: number): void => {
    if (off + n > buf.length) throw new ProxyProtocolError(`proxy: reply body too short for ${fmt} (${buf.length} bytes)`);
  };
  for (let i = 0; i < fmt.length; i++) {
    switch (fmt[i]) {
      case 'b': need(1); out.push(dv.getUint8(off)); off += 1; break;
      case 'w': need(2); out.push(dv.getUint16(off, true)); off += 2; break;
      case 'd': need(4); out.push(dv.getInt32(off, true)); off += 4; break;
      case 'q': need(8); out.push(dv.getBigUint64(off, true)); off += 8; break;
      case 's': {
        need(2);
        const n = dv.getUint16(off, true);
        off += 2;
        need(n);
        out.push(opts.views ? buf.subarray(off, off + n) : buf.slice(off, off + n));
        off += n;
        break;
      }
      default: throw new Error(`proxy: bad format code ${fmt[i]}`);
    }
  }
  if (!opts.lenient && off !== buf.length) throw new ProxyProtocolError(`proxy: ${buf.length - off} trailing bytes after ${fmt}`);
  return out;
}

/** A complete request frame (header + payload) for `name` with its arguments. */
export function encodeRequest(name: RequestName, args: readonly Value[]): Uint8Array {
  const spec: RequestSpec = REQUESTS[name];
  const size = sizeOf(spec.args, args);
  if (size > PROXY_MAX_IO_SZ) throw new ProxyEncodeError(`proxy: ${name} payload ${size} > ${PROXY_MAX_IO_SZ}`, E2BIG);
  const out = new Uint8Array(HEADER_SIZE + size);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, spec.type, true);
  dv.setInt32(4, size, true);
  const end = marshal(out, HEADER_SIZE, spec.args, args);
  if (end !== out.length) throw new Error('proxy: internal size mismatch');
  return out;
}

/** The reply shape of one concrete request (xattr queries depend on their size argument). */
export function replyShape(name: RequestName, args: readonly Value[]): 'fd' | 'status' | 'data' {
  const r = REQUESTS[name].reply;
  if (r !== 'xattr') return r;
  return Number(args[0]) === 0 ? 'status' : 'data';
}

/** Decode a reply header; throws on anything the helper never sends. */
export function decodeHeader(b: Uint8Array): { type: number; size: number } {
  if (b.length < HEADER_SIZE) throw new ProxyProtocolError('proxy: short header');
  const dv = new DataView(b.buffer, b.byteOffset, HEADER_SIZE);
  const type = dv.getInt32(0, true);
  const size = dv.getInt32(4, true);
  if (type !== T_SUCCESS && type !== T_ERROR) throw new ProxyProtocolError(`proxy: bad reply type ${type}`);
  if (size < 0 || size > PROXY_MAX_IO_SZ) throw new ProxyProtocolError(`proxy: bad reply size ${size}`);
  if (type === T_ERROR && size !== 4) throw new ProxyProtocolError(`proxy: error reply of size ${size}`);
  return { type, size };
}

/** A -errno the helper may legitimately send (Linux errnos are 1..4095). */
export function checkErrno(v: number): number {
  if (v >= 0 || v < -4095) throw new ProxyProtocolError(`proxy: bad errno ${v}`);
  return v;
}

// ---- structures (§5) ----------------------------------------------------------------------------

/** ProxyStat (T_LSTAT body, 116 bytes), as decoded. */
export interface ProxyStat {
  dev: bigint; ino: bigint; nlink: bigint; mode: number; uid: number; gid: number; rdev: bigint;
  size: bigint; blksize: bigint; blocks: bigint;
  atimeSec: bigint; atimeNsec: bigint; mtimeSec: bigint; mtimeNsec: bigint; ctimeSec: bigint; ctimeNsec: bigint;
}

export function decodeStat(body: Uint8Array): ProxyStat {
  if (body.length !== 116) throw new ProxyProtocolError(`proxy: LSTAT body of ${body.length} bytes (want 116)`);
  const v = unmarshal(body, REQUESTS.T_LSTAT.body);
  return {
    dev: v[0] as bigint, ino: v[1] as bigint, nlink: v[2] as bigint,
    mode: (v[3] as number) >>> 0, uid: (v[4] as number) >>> 0, gid: (v[5] as number) >>> 0,
    rdev: v[6] as bigint, size: v[7] as bigint, blksize: v[8] as bigint, blocks: v[9] as bigint,
    atimeSec: v[10] as bigint, atimeNsec: v[11] as bigint, mtimeSec: v[12] as bigint, mtimeNsec: v[13] as bigint,
    ctimeSec: v[14] as bigint, ctimeNsec: v[15] as bigint,
  };
}

/** ProxyStatFS (T_STATFS body, 88 bytes). fsid halves arrive sign-extended: masked to 32 bits here. */
export interface ProxyStatFs {
  type: bigint; bsize: bigint; blocks: bigint; bfree: bigint; bavail: bigint; files: bigint; ffree: bigint;
  fsid: [number, number]; namelen: bigint; frsize: bigint;
}

export function decodeStatFs(body: Uint8Array): ProxyStatFs {
  if (body.length !== 88) throw new ProxyProtocolError(`proxy: STATFS body of ${body.length} bytes (want 88)`);
  const v = unmarshal(body, REQUESTS.T_STATFS.body) as bigint[];
  return {
    type: v[0], bsize: v[1], blocks: v[2], bfree: v[3], bavail: v[4], files: v[5], ffree: v[6],
    fsid: [Number(v[7] & 0xffffffffn), Number(v[8] & 0xffffffffn)], namelen: v[9], frsize: v[10],
  };
}

/** GETVERSION body: u64 whose top half is helper stack garbage (§4): masked to 32 bits. */
export function decodeVersion(body: Uint8Array): number {
  if (body.length !== 8) throw new ProxyProtocolError(`proxy: GETVERSION body of ${body.length} bytes (want 8)`);
  return Number((unmarshal(body, 'q')[0] as bigint) & 0xffffffffn);
}

/** A body that is one 's' (READLINK, LGETXATTR, LLISTXATTR data replies). */
export function decodeString(body: Uint8Array): Uint8Array {
  return unmarshal(body, 's')[0] as Uint8Array;
}

/** glibc dev_t (gnu_dev_makedev) from major/minor. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0), mi = BigInt(minor >>> 0);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

/** Linux new_encode_dev (what Stat.rdev carries) from a glibc dev_t. */
export function encodeRdev(d: bigint): number {
  if (d === 0n) return 0;
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}
