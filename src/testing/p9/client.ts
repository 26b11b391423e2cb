/**
 * 9P2000.L client over any `rpc` transport (e.g. SplitDriver.rpc), modelled on Linux net/9p/client.c:
 * tags 0..0xFFFE (Tversion uses NOTAG), zero-copy Tread/Treaddir/Twrite when the payload is > 1024
 * bytes, per-message reply buffer sizes like 6.x `p9_msg_buf_size` (4 KiB default, 8 KiB for
 * Rreadlink/Rstat, 11 + count for Rread/Rreaddir; all capped at msize).
 *
 * u64 values are bigint in results; u64 arguments accept number | bigint.
 * Rlerror rejects with P9ClientError (.errno); a flushed request (used.len 0) rejects with
 * P9FlushedError; a malformed / mismatched reply rejects with P9ProtocolError.
 */
import {
  MESSAGES,
  P9_NOFID,
  P9_NOTAG,
  P9_RLERROR,
  P9_GETATTR_BASIC,
  decode,
  encode,
  msgName,
  parseDirents,
  text,
  type Decoded,
  type Dirent,
  type Qid,
  MSG,
} from './codec.js';

export interface RpcOptions {
  replyCap?: number;
  readData?: number;
  writeData?: Uint8Array;
}
export type RpcFn = (tmsg: Uint8Array, opts?: RpcOptions) => Promise<Uint8Array>;

export class P9ClientError extends Error {
  constructor(
    readonly errno: number,
    readonly request: string,
  ) {
    super(`${request}: Rlerror errno ${errno}`);
    this.name = 'P9ClientError';
  }
}

export class P9FlushedError extends Error {
  constructor(readonly request: string, readonly tag: number) {
    super(`${request} (tag ${tag}): request was flushed (used.len 0)`);
    this.name = 'P9FlushedError';
  }
}

export class P9ProtocolError extends Error {
  constructor(message: string, readonly reply?: Uint8Array) {
    super(message);
    this.name = 'P9ProtocolError';
  }
}

export type U64 = number | bigint;
type Name = string | Uint8Array;

export interface Getattr {
  valid: bigint;
  qid: Qid;
  mode: number;
  uid: number;
  gid: number;
  nlink: bigint;
  rdev: bigint;
  size: bigint;
  blksize: bigint;
  blocks: bigint;
  atime_sec: bigint;
  atime_nsec: bigint;
  mtime_sec: bigint;
  mtime_nsec: bigint;
  ctime_sec: bigint;
  ctime_nsec: bigint;
  btime_sec: bigint;
  btime_nsec: bigint;
  gen: bigint;
  data_version: bigint;
}

export interface SetattrArgs {
  valid: number;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: U64;
  atime_sec?: U64;
  atime_nsec?: U64;
  mtime_sec?: U64;
  mtime_nsec?: U64;
}

export interface Statfs {
  type: number;
  bsize: number;
  blocks: bigint;
  bfree: bigint;
  bavail: bigint;
  files: bigint;
  ffree: bigint;
  fsid: bigint;
  namelen: number;
}

export interface LockArgs {
  type: number;
  flags?: number;
  start?: U64;
  length?: U64;
  proc_id?: number;
  client_id?: Name;
}

export interface GetlockResult {
  type: number;
  start: bigint;
  length: bigint;
  proc_id: number;
  client_id: Uint8Array;
}

export interface RawOptions extends RpcOptions {
  /** use this tag instead of allocating one (it is not tracked) */
  tag?: number;
}

const u64 = (v: U64): bigint => (typeof v === 'bigint' ? v : BigInt(v));

export class P9Client {
  readonly rpc: RpcFn;
  msize: number;
  negotiatedVersion = '';
  /** zero-copy threshold (Linux: 1024) */
  zcThreshold = 1024;
  /** outstanding tags -> message name */
  readonly outstanding = new Map<number, string>();
  private nextTagHint = 0;
  private nextFidHint = 0;
  private fids = new Set<number>();
  /** tag of the most recently sent request (handy for Tflush tests) */
  lastTag = -1;

  constructor(rpc: RpcFn, opts: { msize?: number } = {}) {
    this.rpc = rpc;
    this.msize = opts.msize ?? 512000;
  }

  // ------------------------------------------------------------ tags and fids

  allocTag(): number {
    for (let k = 0; k < 0xffff; k++) {
      const t = (this.nextTagHint + k) % 0xffff; // 0..0xFFFE
      if (!this.outstanding.has(t)) {
        this.nextTagHint = (t + 1) % 0xffff;
        return t;
      }
    }
    throw new Error('9p client: out of tags');
  }

  allocFid(): number {
    for (;;) {
      const f = this.nextFidHint;
      this.nextFidHint = (this.nextFidHint + 1) % P9_NOFID;
      if (!this.fids.has(f)) {
        this.fids.add(f);
        return f;
      }
    }
  }

  /** Mark a fid as in use (e.g. one chosen by the test). */
  useFid(fid: number): number {
    this.fids.add(fid);
    return fid;
  }

  releaseFid(fid: number): void {
    this.fids.delete(fid);
  }

  // ------------------------------------------------------------ transport

  /** Linux-like receive buffer size for a regular (non-zero-copy) request. */
  replyCapFor(type: number, fields: unknown[]): number {
    let cap: number;
    switch (type) {
      case MSG.Tread:
      case MSG.Treaddir:
        cap = Math.max(11, 11 + (fields[2] as number));
        break;
      case MSG.Treadlink:
      case MSG.Tstat:
        cap = 8192;
        break;
      default:
        cap = 4096;
    }
    return Math.min(cap, this.msize);
  }

  /** Send a T-message and return the decoded reply, whatever it is (Rlerror included). */
  async raw(type: number, fields: unknown[], opts: RawOptions = {}): Promise<Decoded> {
    const own = opts.tag === undefined;
    const tag = own ? (type === MSG.Tversion ? P9_NOTAG : this.allocTag()) : opts.tag!;
    const name = msgName(type);
    if (own && tag !== P9_NOTAG) this.outstanding.set(tag, name);
    this.lastTag = tag;
    try {
      let t: Uint8Array;
      const rpcOpts: RpcOptions = {};
      if (opts.writeData !== undefined) {
        // zero-copy Twrite: 23-byte header fid[4] offset[8] count[4], size patched to cover the data
        t = encode(type, tag, [...fields.slice(0, 2), new Uint8Array(0)]);
        const dv = new DataView(t.buffer, t.byteOffset, t.byteLength);
        dv.setUint32(t.length - 4, opts.writeData.length, true);
        dv.setUint32(0, t.length + opts.writeData.length, true);
        rpcOpts.writeData = opts.writeData;
      } else {
        t = encode(type, tag, fields);
        if (opts.readData !== undefined) rpcOpts.readData = opts.readData;
        else rpcOpts.replyCap = opts.replyCap ?? this.replyCapFor(type, fields);
      }
      const reply = await this.rpc(t, rpcOpts);
      if (reply.length === 0) throw new P9FlushedError(name, tag);
      let d: Decoded;
      try {
        d = decode(reply);
      } catch (e) {
        throw new P9ProtocolError(`${name} (tag ${tag}): malformed reply: ${(e as Error).message}`, reply);
      }
      if (d.tag !== tag) {
        throw new P9ProtocolError(`${name}: reply tag ${d.tag} does not match request tag ${tag}`, reply);
      }
      return d;
    } finally {
      if (own && tag !== P9_NOTAG) this.outstanding.delete(tag);
    }
  }

  /** Send and require R = T + 1; Rlerror -> P9ClientError. Returns the reply fields. */
  async call(type: number, fields: unknown[], opts: RawOptions = {}): Promise<unknown[]> {
    const d = await this.raw(type, fields, opts);
    if (d.type === P9_RLERROR) throw new P9ClientError(d.fields[0] as number, msgName(type));
    if (d.type !== type + 1) {
      throw new P9ProtocolError(`${msgName(type)}: unexpected reply ${d.name} (expected ${MESSAGES[type + 1]?.name})`);
    }
    return d.fields;
  }

  // ------------------------------------------------------------ session

  async version(msize = this.msize, version: Name = '9P2000.L'): Promise<{ msize: number; version: string }> {
    const [m, v] = await this.call(MSG.Tversion, [msize, version]);
    this.msize = m as number;
    this.negotiatedVersion = text(v as Uint8Array);
    return { msize: this.msize, version: this.negotiatedVersion };
  }

  async auth(afid: number, uname: Name = 'nobody', aname: Name = '', n_uname = P9_NOFID): Promise<Qid> {
    const [q] = await this.call(MSG.Tauth, [afid, uname, aname, n_uname]);
    return q as Qid;
  }

  async attach(fid: number, afid = P9_NOFID, uname: Name = 'nobody', aname: Name = '', n_uname = P9_NOFID): Promise<Qid> {
    this.useFid(fid);
    const [q] = await this.call(MSG.Tattach, [fid, afid, uname, aname, n_uname]);
    return q as Qid;
  }

  async flush(oldtag: number): Promise<void> {
    await this.call(MSG.Tflush, [oldtag]);
  }

  async walk(fid: number, newfid: number, names: Name[]): Promise<Qid[]> {
    const [qs] = await this.call(MSG.Twalk, [fid, newfid, names]);
    if ((qs as Qid[]).length === names.length) this.useFid(newfid);
    return qs as Qid[];
  }

  async clunk(fid: number): Promise<void> {
    try {
      await this.call(MSG.Tclunk, [fid]);
    } finally {
      this.releaseFid(fid);
    }
  }

  async remove(fid: number): Promise<void> {
    try {
      await this.call(MSG.Tremove, [fid]);
    } finally {
      this.releaseFid(fid);
    }
  }

  // ------------------------------------------------------------ files

  async lopen(fid: number, flags: number): Promise<{ qid: Qid; iounit: number }> {
    const [qid, iounit] = await this.call(MSG.Tlopen, [fid, flags]);
    return { qid: qid as Qid, iounit: iounit as number };
  }

  async lcreate(fid: number, name: Name, flags: number, mode: number, gid = 0): Promise<{ qid: Qid; iounit: number }> {
    const [qid, iounit] = await this.call(MSG.Tlcreate, [fid, name, flags, mode, gid]);
    return { qid: qid as Qid, iounit: iounit as number };
  }

  /** Tread; zero-copy (11-byte header buffer + data buffer) when count > 1024, like Linux. */
  async read(fid: number, offset: U64, count: number): Promise<Uint8Array> {
    const f = [fid, u64(offset), count];
    const zc = count > this.zcThreshold ? { readData: count } : {};
    const [data] = await this.call(MSG.Tread, f, zc);
    return data as Uint8Array;
  }

  /** Twrite; zero-copy (23-byte header + data pages, 4096 reply buffer) when data > 1024 bytes. */
  async write(fid: number, offset: U64, data: Uint8Array): Promise<number> {
    const opts = data.length > this.zcThreshold ? { writeData: data } : {};
    const [n] = await this.call(MSG.Twrite, [fid, u64(offset), data], opts);
    return n as number;
  }

  async readdirRaw(fid: number, offset: U64, count: number): Promise<Uint8Array> {
    const zc = count > this.zcThreshold ? { readData: count } : {};
    const [data] = await this.call(MSG.Treaddir, [fid, u64(offset), count], zc);
    return data as Uint8Array;
  }

  async readdir(fid: number, offset: U64, count: number): Promise<Dirent[]> {
    return parseDirents(await this.readdirRaw(fid, offset, count));
  }

  async getattr(fid: number, mask: U64 = P9_GETATTR_BASIC): Promise<Getattr> {
    const f = await this.call(MSG.Tgetattr, [fid, u64(mask)]);
    const names = [
      'valid', 'qid', 'mode', 'uid', 'gid', 'nlink', 'rdev', 'size', 'blksize', 'blocks', 'atime_sec',
      'atime_nsec', 'mtime_sec', 'mtime_nsec', 'ctime_sec', 'ctime_nsec', 'btime_sec', 'btime_nsec', 'gen',
      'data_version',
    ];
    return Object.fromEntries(names.map((n, i) => [n, f[i]])) as unknown as Getattr;
  }

  async setattr(fid: number, a: SetattrArgs): Promise<void> {
    await this.call(MSG.Tsetattr, [
      fid, a.valid, a.mode ?? 0, a.uid ?? 0, a.gid ?? 0, u64(a.size ?? 0n), u64(a.atime_sec ?? 0n),
      u64(a.atime_nsec ?? 0n), u64(a.mtime_sec ?? 0n), u64(a.mtime_nsec ?? 0n),
    ]);
  }

  async statfs(fid: number): Promise<Statfs> {
    const f = await this.call(MSG.Tstatfs, [fid]);
    const names = ['type', 'bsize', 'blocks', 'bfree', 'bavail', 'files', 'ffree', 'fsid', 'namelen'];
    return Object.fromEntries(names.map((n, i) => [n, f[i]])) as unknown as Statfs;
  }

  async fsync(fid: number, datasync = 0): Promise<void> {
    await this.call(MSG.Tfsync, [fid, datasync]);
  }

  // ------------------------------------------------------------ namespace

  async mkdir(dfid: number, name: Name, mode: number, gid = 0): Promise<Qid> {
    const [q] = await this.call(MSG.Tmkdir, [dfid, name, mode, gid]);
    return q as Qid;
  }

  async symlink(dfid: number, name: Name, target: Name, gid = 0): Promise<Qid> {
    const [q] = await this.call(MSG.Tsymlink, [dfid, name, target, gid]);
    return q as Qid;
  }

  async mknod(dfid: number, name: Name, mode: number, major: number, minor: number, gid = 0): Promise<Qid> {
    const [q] = await this.call(MSG.Tmknod, [dfid, name, mode, major, minor, gid]);
    return q as Qid;
  }

  async link(dfid: number, fid: number, name: Name): Promise<void> {
    await this.call(MSG.Tlink, [dfid, fid, name]);
  }

  async readlink(fid: number): Promise<string> {
    return text(await this.readlinkBytes(fid));
  }

  async readlinkBytes(fid: number): Promise<Uint8Array> {
    const [t] = await this.call(MSG.Treadlink, [fid]);
    return t as Uint8Array;
  }

  async renameat(olddirfid: number, oldname: Name, newdirfid: number, newname: Name): Promise<void> {
    await this.call(MSG.Trenameat, [olddirfid, oldname, newdirfid, newname]);
  }

  async rename(fid: number, dfid: number, name: Name): Promise<void> {
    await this.call(MSG.Trename, [fid, dfid, name]);
  }

  async unlinkat(dirfid: number, name: Name, flags = 0): Promise<void> {
    await this.call(MSG.Tunlinkat, [dirfid, name, flags]);
  }

  // ------------------------------------------------------------ xattrs and locks

  /** Returns the xattr size; newfid then reads the value with Tread. */
  async xattrwalk(fid: number, newfid: number, name: Name = ''): Promise<bigint> {
    const [size] = await this.call(MSG.Txattrwalk, [fid, newfid, name]);
    this.useFid(newfid);
    return size as bigint;
  }

  async xattrcreate(fid: number, name: Name, attrSize: U64, flags = 0): Promise<void> {
    await this.call(MSG.Txattrcreate, [fid, name, u64(attrSize), flags]);
  }

  async lock(fid: number, a: LockArgs): Promise<number> {
    const [status] = await this.call(MSG.Tlock, [
      fid, a.type, a.flags ?? 0, u64(a.start ?? 0n), u64(a.length ?? 0n), a.proc_id ?? 1, a.client_id ?? 'harness',
    ]);
    return status as number;
  }

  async getlock(fid: number, a: LockArgs): Promise<GetlockResult> {
    const [type, start, length, proc_id, client_id] = await this.call(MSG.Tgetlock, [
      fid, a.type, u64(a.start ?? 0n), u64(a.length ?? 0n), a.proc_id ?? 1, a.client_id ?? 'harness',
    ]);
    return {
      type: type as number,
      start: start as bigint,
      length: length as bigint,
      proc_id: proc_id as number,
      client_id: client_id as Uint8Array,
    };
  }

  // ------------------------------------------------------------ helpers

  /** Read a whole (opened) file with chunks of msize - 24 (Linux's IOHDRSZ) until a short/0 read. */
  async readAll(fid: number, chunk = this.msize - 24): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let off = 0n;
    for (;;) {
      const d = await this.read(fid, off, chunk);
      if (d.length === 0) break;
      parts.push(d);
      off += BigInt(d.length);
    }
    const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let pos = 0;
    for (const p of parts) {
      out.set(p, pos);
      pos += p.length;
    }
    return out;
  }

  /** Read a whole (opened) directory: Treaddir from offset 0, resuming at the last entry's offset, until count 0. */
  async readdirAll(fid: number, count = this.msize - 24, maxCalls = 100000): Promise<Dirent[]> {
    const all: Dirent[] = [];
    let off = 0n;
    for (let i = 0; i < maxCalls; i++) {
      const ents = await this.readdir(fid, off, count);
      if (ents.length === 0) return all;
      all.push(...ents);
      off = ents[ents.length - 1].offset;
    }
    throw new Error(`readdirAll: no EOF after ${maxCalls} Treaddir calls`);
  }

  /** Convenience: Tversion + Tattach(fid 0). Returns the root qid. */
  async mount(opts: { msize?: number; uname?: Name; aname?: Name; n_uname?: number; fid?: number } = {}): Promise<Qid> {
    await this.version(opts.msize ?? this.msize);
    return this.attach(opts.fid ?? 0, P9_NOFID, opts.uname ?? 'nobody', opts.aname ?? '', opts.n_uname ?? P9_NOFID);
  }
}
