/**
 * 9P2000.L codec for the client side of the test harness.
 *
 * Everything is driven by one table, `MESSAGES`: message id -> { name, fmt }. The format alphabet
 * follows Linux's net/9p/protocol.c:
 *
 *   b  u8                 -> number
 *   w  u16                -> number
 *   d  u32                -> number
 *   q  u64                -> bigint (encode also accepts a non-negative safe-integer number)
 *   s  string: len[2] + bytes         -> Uint8Array (encode accepts string (UTF-8) or Uint8Array)
 *   Q  qid: type[1] version[4] path[8] -> { type: number, version: number, path: bigint }
 *   T  u16 count + that many strings  -> Uint8Array[] (encode accepts strings or Uint8Arrays)
 *   R  u16 count + that many qids     -> Qid[]
 *   D  u32 count + that many bytes    -> Uint8Array
 *
 * Every message starts with the 7-byte header size[4] type[1] tag[2] (little-endian; size counts
 * the whole message). `decode` is strict: the size field must equal the message length, every
 * field must lie in bounds and no bytes may be left over.
 *
 * Legacy stat blobs (Rstat / Twstat `n[2] stat[n]`) are carried opaquely as an `s` field.
 */

export interface Qid {
  type: number;
  version: number;
  path: bigint;
}

export interface Decoded {
  type: number;
  tag: number;
  name: string;
  fields: unknown[];
}

export interface Dirent {
  qid: Qid;
  offset: bigint;
  type: number;
  name: Uint8Array;
}

// ---- message ids (Linux include/net/9p/9p.h enum p9_msg_t) ----
export const P9_TLERROR = 6;
export const P9_RLERROR = 7;
export const P9_TSTATFS = 8;
export const P9_RSTATFS = 9;
export const P9_TLOPEN = 12;
export const P9_RLOPEN = 13;
export const P9_TLCREATE = 14;
export const P9_RLCREATE = 15;
export const P9_TSYMLINK = 16;
export const P9_RSYMLINK = 17;
export const P9_TMKNOD = 18;
export const P9_RMKNOD = 19;
export const P9_TRENAME = 20;
export const P9_RRENAME = 21;
export const P9_TREADLINK = 22;
export const P9_RREADLINK = 23;
export const P9_TGETATTR = 24;
export const P9_RGETATTR = 25;
export const P9_TSETATTR = 26;
export const P9_RSETATTR = 27;
export const P9_TXATTRWALK = 30;
export const P9_RXATTRWALK = 31;
export const P9_TXATTRCREATE = 32;
export const P9_RXATTRCREATE = 33;
export const P9_TREADDIR = 40;
export const P9_RREADDIR = 41;
export const P9_TFSYNC = 50;
export const P9_RFSYNC = 51;
export const P9_TLOCK = 52;
export const P9_RLOCK = 53;
export const P9_TGETLOCK = 54;
export const P9_RGETLOCK = 55;
export const P9_TLINK = 70;
export const P9_RLINK = 71;
export const P9_TMKDIR = 72;
export const P9_RMKDIR = 73;
export const P9_TRENAMEAT = 74;
export const P9_RRENAMEAT = 75;
export const P9_TUNLINKAT = 76;
export const P9_RUNLINKAT = 77;
export const P9_TVERSION = 100;
export const P9_RVERSION = 101;
export const P9_TAUTH = 102;
export const P9_RAUTH = 103;
export const P9_TATTACH = 104;
export const P9_RATTACH = 105;
export const P9_TERROR = 106;
export const P9_RERROR = 107;
export const P9_TFLUSH = 108;
export const P9_RFLUSH = 109;
export const P9_TWALK = 110;
export const P9_RWALK = 111;
export const P9_TOPEN = 112;
export const P9_ROPEN = 113;
export const P9_TCREATE = 114;
export const P9_RCREATE = 115;
export const P9_TREAD = 116;
export const P9_RREAD = 117;
export const P9_TWRITE = 118;
export const P9_RWRITE = 119;
export const P9_TCLUNK = 120;
export const P9_RCLUNK = 121;
export const P9_TREMOVE = 122;
export const P9_RREMOVE = 123;
export const P9_TSTAT = 124;
export const P9_RSTAT = 125;
export const P9_TWSTAT = 126;
export const P9_RWSTAT = 127;

// ---- misc constants ----
export const P9_NOTAG = 0xffff;
export const P9_NOFID = 0xffffffff;
export const P9_NONUNAME = 0xffffffff;
export const NOTAG = P9_NOTAG;
export const NOFID = P9_NOFID;
export const P9_HDRSZ = 7;
export const P9_IOHDRSZ = 24;
export const P9_READDIRHDRSZ = 24;
export const P9_ZC_HDR_SZ = 4096;
export const P9_MAXWELEM = 16;

// getattr masks
export const P9_GETATTR_MODE = 0x1n;
export const P9_GETATTR_NLINK = 0x2n;
export const P9_GETATTR_UID = 0x4n;
export const P9_GETATTR_GID = 0x8n;
export const P9_GETATTR_RDEV = 0x10n;
export const P9_GETATTR_ATIME = 0x20n;
export const P9_GETATTR_MTIME = 0x40n;
export const P9_GETATTR_CTIME = 0x80n;
export const P9_GETATTR_INO = 0x100n;
export const P9_GETATTR_SIZE = 0x200n;
export const P9_GETATTR_BLOCKS = 0x400n;
export const P9_GETATTR_BTIME = 0x800n;
export const P9_GETATTR_GEN = 0x1000n;
export const P9_GETATTR_DATA_VERSION = 0x2000n;
export const P9_GETATTR_BASIC = 0x7ffn;
export const P9_GETATTR_ALL = 0x3fffn;
export const GETATTR_BASIC = P9_GETATTR_BASIC;
export const GETATTR_ALL = P9_GETATTR_ALL;

// setattr valid bits
export const P9_ATTR_MODE = 0x1;
export const P9_ATTR_UID = 0x2;
export const P9_ATTR_GID = 0x4;
export const P9_ATTR_SIZE = 0x8;
export const P9_ATTR_ATIME = 0x10;
export const P9_ATTR_MTIME = 0x20;
export const P9_ATTR_CTIME = 0x40;
export const P9_ATTR_ATIME_SET = 0x80;
export const P9_ATTR_MTIME_SET = 0x100;

// lopen/lcreate flags (P9_DOTL_*)
export const P9_DOTL_RDONLY = 0o0;
export const P9_DOTL_WRONLY = 0o1;
export const P9_DOTL_RDWR = 0o2;
export const P9_DOTL_NOACCESS = 0o3;
export const P9_DOTL_CREATE = 0o100;
export const P9_DOTL_EXCL = 0o200;
export const P9_DOTL_NOCTTY = 0o400;
export const P9_DOTL_TRUNC = 0o1000;
export const P9_DOTL_APPEND = 0o2000;
export const P9_DOTL_NONBLOCK = 0o4000;
export const P9_DOTL_DSYNC = 0o10000;
export const P9_DOTL_FASYNC = 0o20000;
export const P9_DOTL_DIRECT = 0o40000;
export const P9_DOTL_LARGEFILE = 0o100000;
export const P9_DOTL_DIRECTORY = 0o200000;
export const P9_DOTL_NOFOLLOW = 0o400000;
export const P9_DOTL_NOATIME = 0o1000000;
export const P9_DOTL_CLOEXEC = 0o2000000;
export const P9_DOTL_SYNC = 0o4000000;
export const P9_DOTL_AT_REMOVEDIR = 0x200;

// locks
export const P9_LOCK_TYPE_RDLCK = 0;
export const P9_LOCK_TYPE_WRLCK = 1;
export const P9_LOCK_TYPE_UNLCK = 2;
export const P9_LOCK_FLAGS_BLOCK = 1;
export const P9_LOCK_FLAGS_RECLAIM = 2;
export const P9_LOCK_SUCCESS = 0;
export const P9_LOCK_BLOCKED = 1;
export const P9_LOCK_ERROR = 2;
export const P9_LOCK_GRACE = 3;

// qid types
export const P9_QTDIR = 0x80;
export const P9_QTAPPEND = 0x40;
export const P9_QTEXCL = 0x20;
export const P9_QTMOUNT = 0x10;
export const P9_QTAUTH = 0x08;
export const P9_QTTMP = 0x04;
export const P9_QTSYMLINK = 0x02;
export const P9_QTLINK = 0x01;
export const P9_QTFILE = 0x00;

/** The one table: every T and R message of 9P2000.L plus the 9P2000 base (and legacy open/create/stat). */
export const MESSAGES: { [type: number]: { name: string; fmt: string } } = {
  7: { name: 'Rlerror', fmt: 'd' },
  8: { name: 'Tstatfs', fmt: 'd' },
  9: { name: 'Rstatfs', fmt: 'ddqqqqqqd' },
  12: { name: 'Tlopen', fmt: 'dd' },
  13: { name: 'Rlopen', fmt: 'Qd' },
  14: { name: 'Tlcreate', fmt: 'dsddd' },
  15: { name: 'Rlcreate', fmt: 'Qd' },
  16: { name: 'Tsymlink', fmt: 'dssd' },
  17: { name: 'Rsymlink', fmt: 'Q' },
  18: { name: 'Tmknod', fmt: 'dsdddd' },
  19: { name: 'Rmknod', fmt: 'Q' },
  20: { name: 'Trename', fmt: 'dds' },
  21: { name: 'Rrename', fmt: '' },
  22: { name: 'Treadlink', fmt: 'd' },
  23: { name: 'Rreadlink', fmt: 's' },
  24: { name: 'Tgetattr', fmt: 'dq' },
  25: { name: 'Rgetattr', fmt: 'qQdddqqqqqqqqqqqqqqq' },
  26: { name: 'Tsetattr', fmt: 'dddddqqqqq' },
  27: { name: 'Rsetattr', fmt: '' },
  30: { name: 'Txattrwalk', fmt: 'dds' },
  31: { name: 'Rxattrwalk', fmt: 'q' },
  32: { name: 'Txattrcreate', fmt: 'dsqd' },
  33: { name: 'Rxattrcreate', fmt: '' },
  40: { name: 'Treaddir', fmt: 'dqd' },
  41: { name: 'Rreaddir', fmt: 'D' },
  50: { name: 'Tfsync', fmt: 'dd' },
  51: { name: 'Rfsync', fmt: '' },
  52: { name: 'Tlock', fmt: 'dbdqqds' },
  53: { name: 'Rlock', fmt: 'b' },
  54: { name: 'Tgetlock', fmt: 'dbqqds' },
  55: { name: 'Rgetlock', fmt: 'bqqds' },
  70: { name: 'Tlink', fmt: 'dds' },
  71: { name: 'Rlink', fmt: '' },
  72: { name: 'Tmkdir', fmt: 'dsdd' },
  73: { name: 'Rmkdir', fmt: 'Q' },
  74: { name: 'Trenameat', fmt: 'dsds' },
  75: { name: 'Rrenameat', fmt: '' },
  76: { name: 'Tunlinkat', fmt: 'dsd' },
  77: { name: 'Runlinkat', fmt: '' },
  100: { name: 'Tversion', fmt: 'ds' },
  101: { name: 'Rversion', fmt: 'ds' },
  102: { name: 'Tauth', fmt: 'dssd' },
  103: { name: 'Rauth', fmt: 'Q' },
  104: { name: 'Tattach', fmt: 'ddssd' },
  105: { name: 'Rattach', fmt: 'Q' },
  108: { name: 'Tflush', fmt: 'w' },
  109: { name: 'Rflush', fmt: '' },
  110: { name: 'Twalk', fmt: 'ddT' },
  111: { name: 'Rwalk', fmt: 'R' },
  112: { name: 'Topen', fmt: 'db' },
  113: { name: 'Ropen', fmt: 'Qd' },
  114: { name: 'Tcreate', fmt: 'dsdb' },
  115: { name: 'Rcreate', fmt: 'Qd' },
  116: { name: 'Tread', fmt: 'dqd' },
  117: { name: 'Rread', fmt: 'D' },
  118: { name: 'Twrite', fmt: 'dqD' },
  119: { name: 'Rwrite', fmt: 'd' },
  120: { name: 'Tclunk', fmt: 'd' },
  121: { name: 'Rclunk', fmt: '' },
  122: { name: 'Tremove', fmt: 'd' },
  123: { name: 'Rremove', fmt: '' },
  124: { name: 'Tstat', fmt: 'd' },
  125: { name: 'Rstat', fmt: 's' },
  126: { name: 'Twstat', fmt: 'ds' },
  127: { name: 'Rwstat', fmt: '' },
};

/** name -> id, e.g. MSG.Tversion === 100 */
export const MSG: { [name: string]: number } = Object.fromEntries(
  Object.entries(MESSAGES).map(([id, m]) => [m.name, Number(id)]),
);

const utf8enc = new TextEncoder();
const utf8dec = new TextDecoder();

export function str(s: string | Uint8Array): Uint8Array {
  return typeof s === 'string' ? utf8enc.encode(s) : s;
}

export function text(b: Uint8Array): string {
  return utf8dec.decode(b);
}

export function msgName(type: number): string {
  return MESSAGES[type]?.name ?? `unknown(${type})`;
}

// ---------------------------------------------------------------- encoding

class Writer {
  buf: Uint8Array;
  dv: DataView;
  pos = 0;
  constructor(cap = 256) {
    this.buf = new Uint8Array(cap);
    this.dv = new DataView(this.buf.buffer);
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.pos));
    this.buf = nb;
    this.dv = new DataView(nb.buffer);
  }
  u8(v: number): void {
    this.ensure(1);
    this.dv.setUint8(this.pos, v);
    this.pos += 1;
  }
  u16(v: number): void {
    this.ensure(2);
    this.dv.setUint16(this.pos, v, true);
    this.pos += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.dv.setUint32(this.pos, v, true);
    this.pos += 4;
  }
  u64(v: bigint): void {
    this.ensure(8);
    this.dv.setBigUint64(this.pos, v, true);
    this.pos += 8;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

function checkInt(v: unknown, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new Error(`9p encode: ${what} must be an integer in [0, ${max}], got ${String(v)}`);
  }
  return v;
}

function toU64(v: unknown, what: string): bigint {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else throw new Error(`9p encode: ${what} must be a bigint (u64), got ${String(v)}`);
  if (b < 0n || b > 0xffffffffffffffffn) throw new Error(`9p encode: ${what} out of u64 range: ${b}`);
  return b;
}

function toBytes(v: unknown, what: string): Uint8Array {
  if (typeof v === 'string') return utf8enc.encode(v);
  if (v instanceof Uint8Array) return v;
  throw new Error(`9p encode: ${what} must be a string or Uint8Array, got ${typeof v}`);
}

function writeQid(w: Writer, v: unknown, what: string): void {
  if (typeof v !== 'object' || v === null) throw new Error(`9p encode: ${what} must be a qid object`);
  const q = v as Partial<Qid>;
  w.u8(checkInt(q.type, 0xff, `${what}.type`));
  w.u32(checkInt(q.version, 0xffffffff, `${what}.version`));
  w.u64(toU64(q.path, `${what}.path`));
}

function writeField(w: Writer, c: string, v: unknown, what: string): void {
  switch (c) {
    case 'b':
      w.u8(checkInt(v, 0xff, what));
      return;
    case 'w':
      w.u16(checkInt(v, 0xffff, what));
      return;
    case 'd':
      w.u32(checkInt(v, 0xffffffff, what));
      return;
    case 'q':
      w.u64(toU64(v, what));
      return;
    case 's': {
      const b = toBytes(v, what);
      if (b.length > 0xffff) throw new Error(`9p encode: ${what} string too long (${b.length} > 65535)`);
      w.u16(b.length);
      w.bytes(b);
      return;
    }
    case 'Q':
      writeQid(w, v, what);
      return;
    case 'T': {
      if (!Array.isArray(v)) throw new Error(`9p encode: ${what} must be an array of strings`);
      w.u16(checkInt(v.length, 0xffff, `${what}.length`));
      v.forEach((e, i) => writeField(w, 's', e, `${what}[${i}]`));
      return;
    }
    case 'R': {
      if (!Array.isArray(v)) throw new Error(`9p encode: ${what} must be an array of qids`);
      w.u16(checkInt(v.length, 0xffff, `${what}.length`));
      v.forEach((e, i) => writeQid(w, e, `${what}[${i}]`));
      return;
    }
    case 'D': {
      const b = toBytes(v, what);
      w.u32(b.length);
      w.bytes(b);
      return;
    }
    default:
      throw new Error(`9p codec: unknown format character '${c}'`);
  }
}

/** Encode a body with an explicit format (no header). */
export function encodeFields(fmt: string, fields: unknown[], ctx = 'fields'): Uint8Array {
  if (fields.length !== fmt.length) {
    throw new Error(`9p encode: ${ctx} expects ${fmt.length} fields ("${fmt}"), got ${fields.length}`);
  }
  const w = new Writer();
  for (let i = 0; i < fmt.length; i++) writeField(w, fmt[i], fields[i], `${ctx} field ${i} ('${fmt[i]}')`);
  return w.buf.slice(0, w.pos);
}

/** Encode a full message: size[4] type[1] tag[2] + body per MESSAGES[type].fmt. */
export function encode(type: number, tag: number, fields: unknown[]): Uint8Array {
  const m = MESSAGES[type];
  if (!m) throw new Error(`9p encode: unknown message type ${type}`);
  checkInt(tag, 0xffff, 'tag');
  const w = new Writer(64);
  w.u32(0);
  w.u8(type);
  w.u16(tag);
  if (fields.length !== m.fmt.length) {
    throw new Error(`9p encode: ${m.name} expects ${m.fmt.length} fields ("${m.fmt}"), got ${fields.length}`);
  }
  for (let i = 0; i < m.fmt.length; i++) writeField(w, m.fmt[i], fields[i], `${m.name} field ${i} ('${m.fmt[i]}')`);
  if (w.pos > 0xffffffff) throw new Error('9p encode: message too large');
  w.dv.setUint32(0, w.pos, true);
  return w.buf.slice(0, w.pos);
}

/** Encode a raw header + body (for hostile tests: any type byte, any size field). */
export function encodeRaw(type: number, tag: number, body: Uint8Array, sizeOverride?: number): Uint8Array {
  const out = new Uint8Array(7 + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, sizeOverride ?? out.length, true);
  dv.setUint8(4, type & 0xff);
  dv.setUint16(5, tag & 0xffff, true);
  out.set(body, 7);
  return out;
}

// ---------------------------------------------------------------- decoding

class Reader {
  dv: DataView;
  pos: number;
  constructor(
    public buf: Uint8Array,
    pos: number,
    public ctx: string,
  ) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = pos;
  }
  need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) {
      throw new Error(
        `9p decode: ${this.ctx}: ${what} needs ${n} bytes at offset ${this.pos} but only ${this.buf.length - this.pos} remain`,
      );
    }
  }
  u8(what: string): number {
    this.need(1, what);
    return this.dv.getUint8(this.pos++);
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.dv.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(what: string): bigint {
    this.need(8, what);
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const b = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  qid(what: string): Qid {
    this.need(13, what);
    const type = this.u8(what);
    const version = this.u32(what);
    const path = this.u64(what);
    return { type, version, path };
  }
  field(c: string, what: string): unknown {
    switch (c) {
      case 'b':
        return this.u8(what);
      case 'w':
        return this.u16(what);
      case 'd':
        return this.u32(what);
      case 'q':
        return this.u64(what);
      case 's': {
        const n = this.u16(`${what} length`);
        return this.bytes(n, `${what} (string of ${n} bytes)`);
      }
      case 'Q':
        return this.qid(what);
      case 'T': {
        const n = this.u16(`${what} count`);
        const out: Uint8Array[] = [];
        for (let i = 0; i < n; i++) out.push(this.field('s', `${what}[${i}]`) as Uint8Array);
        return out;
      }
      case 'R': {
        const n = this.u16(`${what} count`);
        const out: Qid[] = [];
        for (let i = 0; i < n; i++) out.push(this.qid(`${what}[${i}]`));
        return out;
      }
      case 'D': {
        const n = this.u32(`${what} count`);
        return this.bytes(n, `${what} (data of ${n} bytes)`);
      }
      default:
        throw new Error(`9p codec: unknown format character '${c}'`);
    }
  }
}

/** Decode a body with an explicit format; strict (no leftover bytes). */
export function decodeFields(fmt: string, body: Uint8Array, ctx = 'body'): unknown[] {
  const r = new Reader(body, 0, ctx);
  const out: unknown[] = [];
  for (let i = 0; i < fmt.length; i++) out.push(r.field(fmt[i], `field ${i} ('${fmt[i]}')`));
  if (r.pos !== body.length) {
    throw new Error(`9p decode: ${ctx}: ${body.length - r.pos} leftover byte(s) after the last field`);
  }
  return out;
}

/** Decode a full message. Strict: size must equal msg.length, fields in bounds, no leftover bytes. */
export function decode(msg: Uint8Array): Decoded {
  if (msg.length < 7) throw new Error(`9p decode: message of ${msg.length} bytes is shorter than the 7-byte header`);
  const dv = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  const size = dv.getUint32(0, true);
  const type = dv.getUint8(4);
  const tag = dv.getUint16(5, true);
  if (size !== msg.length) {
    throw new Error(`9p decode: size field ${size} does not equal the message length ${msg.length}`);
  }
  const m = MESSAGES[type];
  if (!m) throw new Error(`9p decode: unknown message type ${type}`);
  const r = new Reader(msg, 7, `${m.name} (tag ${tag})`);
  const fields: unknown[] = [];
  for (let i = 0; i < m.fmt.length; i++) fields.push(r.field(m.fmt[i], `field ${i} ('${m.fmt[i]}')`));
  if (r.pos !== msg.length) {
    throw new Error(`9p decode: ${m.name} (tag ${tag}): ${msg.length - r.pos} leftover byte(s) after the last field`);
  }
  return { type, tag, name: m.name, fields };
}

/** Parse Rreaddir data: back-to-back qid[13] offset[8] type[1] name[s]. Strict. */
export function parseDirents(data: Uint8Array): Dirent[] {
  const r = new Reader(data, 0, 'readdir data');
  const out: Dirent[] = [];
  while (r.pos < data.length) {
    const i = out.length;
    const qid = r.qid(`dirent ${i} qid`);
    const offset = r.u64(`dirent ${i} offset`);
    const type = r.u8(`dirent ${i} type`);
    const n = r.u16(`dirent ${i} name length`);
    const name = r.bytes(n, `dirent ${i} name`);
    out.push({ qid, offset, type, name });
  }
  return out;
}

/** Encode dirents (for tests / fake servers). */
export function encodeDirents(ents: { qid: Qid; offset: bigint; type: number; name: string | Uint8Array }[]): Uint8Array {
  const w = new Writer();
  ents.forEach((e, i) => {
    writeQid(w, e.qid, `dirent ${i} qid`);
    w.u64(toU64(e.offset, `dirent ${i} offset`));
    w.u8(checkInt(e.type, 0xff, `dirent ${i} type`));
    writeField(w, 's', e.name, `dirent ${i} name`);
  });
  return w.buf.slice(0, w.pos);
}

export function toHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

export function fromHex(h: string): Uint8Array {
  if (h.length % 2) throw new Error('odd-length hex');
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) {
    const v = parseInt(h.substr(2 * i, 2), 16);
    if (Number.isNaN(v)) throw new Error(`bad hex at ${2 * i}`);
    out[i] = v;
  }
  return out;
}
