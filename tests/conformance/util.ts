/**
 * Shared helpers for the backend-independent conformance suite (tests/conformance/suite.ts).
 *
 * - `boot(backend)`: a machine (device + split-ring driver) plus a P9Client whose transport
 *   records every completed chain (tag, used.len) in completion order (`log`), so tests can
 *   check reply ordering (Tflush) exactly.
 * - `DeferredBackend`: wraps any Backend; while holding, every call is queued and its Promise
 *   settles only when the test calls `release()` (the inner call runs at release time).
 * - Seeding through 9P itself (mkfile / mkdirs / walkTo …) so the suite works on any backend.
 * - `errnoOf(promise)`: the Rlerror errno of a rejected call, 0 on success (other errors rethrow).
 */
import { createMachine, createPackedMachine, type Machine } from '../../src/testing/machine.js';
import { loadV86Node, createV86 } from '../../harness/bench/v86.js';
import { V86Virtio9p } from '../../src/adapters/v86-pci.js';
import { V86PciPort } from '../../src/testing/virtio/v86-port.js';
import { SplitDriver } from '../../src/testing/virtio/split-driver.js';
import { PackedDriver } from '../../src/testing/virtio/packed-driver.js';
import { P9Client, P9ClientError, type RpcFn } from '../../src/testing/p9/client.js';
import { decode, encodeRaw, P9_NOFID, type Decoded } from '../../src/testing/p9/codec.js';
import type {
  Backend, Created, DirSink, Entry, Fh, Node, Res, SetAttr, Stat, StatFs,
} from '../../src/backends/backend.js';

export const te = new TextEncoder();
export const td = new TextDecoder();
export const bytes = (s: string): Uint8Array => te.encode(s);
export const str = (b: Uint8Array): string => td.decode(b);

export const ROOT = 0;

// Linux errno numbers (what Rlerror carries)
export const EPERM = 1, ENOENT = 2, E2BIG = 7, EBADF = 9, EEXIST = 17, ENOTDIR = 20, EISDIR = 21,
  EINVAL = 22, ENOTEMPTY = 39, ENODATA = 61, EMSGSIZE = 90, EOPNOTSUPP = 95, ENXIO = 6;

// open flags (P9_DOTL_*)
export const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_EXCL = 0o200, O_TRUNC = 0o1000,
  O_APPEND = 0o2000, O_DIRECTORY = 0o200000;
export const S_IFMT = 0o170000, S_IFSOCK = 0o140000, S_IFLNK = 0o120000, S_IFREG = 0o100000,
  S_IFBLK = 0o60000, S_IFDIR = 0o40000, S_IFCHR = 0o20000, S_IFIFO = 0o10000;
export const QTDIR = 0x80, QTSYMLINK = 0x02, QTFILE = 0;
export const DT_DIR = 4, DT_REG = 8, DT_LNK = 10;
export const AT_REMOVEDIR = 0x200;
export const XATTR_CREATE = 1, XATTR_REPLACE = 2;
export const RDLCK = 0, WRLCK = 1, UNLCK = 2;
export const LOCK_SUCCESS = 0, LOCK_BLOCKED = 1;
// Tsetattr valid bits
export const A_MODE = 0x1, A_UID = 0x2, A_GID = 0x4, A_SIZE = 0x8, A_ATIME = 0x10, A_MTIME = 0x20,
  A_CTIME = 0x40, A_ATIME_SET = 0x80, A_MTIME_SET = 0x100;
export const V9FS_MAGIC = 0x01021997;

/** One completed chain as the guest saw it. */
export interface Completion {
  tag: number;
  type: number;
  /** used.len (0 = flushed, no reply) */
  len: number;
}

export interface Ctx {
  machine: Machine;
  client: P9Client;
  /** every completion in the order the driver reaped it */
  log: Completion[];
  /** send raw bytes (any type/size) and decode the reply; null when the chain came back with len 0 */
  sendRaw(msg: Uint8Array, replyCap?: number): Promise<Decoded | null>;
}

/** v86 instances made by boot({ transport: 'v86' }); destroy them with destroyV86s() after each test. */
const v86s: { destroy?: () => void }[] = [];
export function destroyV86s(): void { for (const e of v86s.splice(0)) e.destroy?.(); }

/** Our device on the PCI bus of a (not running) v86, reached through v86's ports and RAM. */
async function v86Machine(backend: Backend, ring?: 'split' | 'packed'): Promise<Machine> {
  const emu = await createV86(await loadV86Node(), undefined);
  v86s.push(emu);
  const adapter = await V86Virtio9p.attach(emu, { backend });
  const port = new V86PciPort(adapter, emu.v86.cpu);
  const opts = { queueSize: 128, arenaBase: 1 << 20, arenaSize: 48 << 20 };
  const driver = ring === 'packed' ? new PackedDriver(port, opts) : new SplitDriver(port, opts);
  return { device: adapter.device, driver: driver as SplitDriver, client: new P9Client(driver.rpcFn, { msize: 512000 }) };
}

export async function boot(backend: Backend, opts: { msize?: number; mount?: boolean; transport?: 'direct' | 'mmio' | 'pci' | 'v86'; ring?: 'split' | 'packed'; memory?: 'window' | 'copy' } = {}): Promise<Ctx> {
  // copy mode: guest RAM is a plain ArrayBuffer of the "VMM"; the driver only ever sees it
  const device = opts.memory === 'copy' ? { guestRam: new Uint8Array(new ArrayBuffer(64 << 20)) } : undefined;
  const machine = opts.transport === 'v86' ? await v86Machine(backend, opts.ring) : opts.ring === 'packed'
    ? await createPackedMachine({ backend, msize: opts.msize ?? 512000, transport: opts.transport as 'mmio', device }) as unknown as Machine
    : await createMachine({ backend, msize: opts.msize ?? 512000, transport: opts.transport as 'mmio', device });
  const log: Completion[] = [];
  const driverRpc = machine.driver.rpcFn;
  const rpc: RpcFn = async (t, o) => {
    const r = await driverRpc(t, o);
    log.push({ tag: t[5] | (t[6] << 8), type: t[4], len: r.length });
    return r;
  };
  const client = new P9Client(rpc, { msize: opts.msize ?? 512000 });
  const ctx: Ctx = {
    machine,
    client,
    log,
    async sendRaw(msg, replyCap = 4096) {
      const r = await rpc(msg, { replyCap });
      return r.length === 0 ? null : decode(r);
    },
  };
  if (opts.mount ?? true) {
    await client.version(opts.msize ?? 512000);
    await client.attach(ROOT, P9_NOFID, 'nobody', '', P9_NOFID);
  }
  return ctx;
}

/** The Rlerror errno of a 9P call, 0 when it succeeded; other failures are rethrown. */
export async function errnoOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 0;
  } catch (e) {
    if (e instanceof P9ClientError) return e.errno;
    throw e;
  }
}

const split = (path: string): string[] => path.split('/').filter((p) => p !== '');

/** Walk from `from` (default the root fid) along a '/'-separated path into a new fid. */
export async function walkTo(c: P9Client, path: string, from = ROOT): Promise<number> {
  const fid = c.allocFid();
  const names = split(path);
  try {
    const qs = await c.walk(from, fid, names);
    if (qs.length !== names.length) throw new Error(`walkTo ${path}: partial walk (${qs.length}/${names.length})`);
  } catch (e) {
    c.releaseFid(fid);
    throw e;
  }
  return fid;
}

/** Walk + Tlopen. */
export async function openPath(c: P9Client, path: string, flags = O_RDONLY): Promise<number> {
  const fid = await walkTo(c, path);
  await c.lopen(fid, flags);
  return fid;
}

/** Create directories (like mkdir -p) through Tmkdir. */
export async function mkdirs(c: P9Client, path: string, mode = 0o755): Promise<void> {
  const parts = split(path);
  for (let i = 0; i < parts.length; i++) {
    const dir = await walkTo(c, parts.slice(0, i).join('/'));
    try {
      const e = await errnoOf(c.mkdir(dir, parts[i], S_IFDIR | mode, 0));
      if (e !== 0 && e !== EEXIST) throw new Error(`mkdirs ${path}: errno ${e}`);
    } finally {
      await c.clunk(dir);
    }
  }
}

/** Create (or truncate) a regular file with contents through Tlcreate + Twrite. */
export async function mkfile(c: P9Client, path: string, data: string | Uint8Array = '', mode = 0o644): Promise<void> {
  const parts = split(path);
  const name = parts.pop()!;
  if (parts.length) await mkdirs(c, parts.join('/'));
  const fid = await walkTo(c, parts.join('/'));
  try {
    await c.lcreate(fid, name, O_RDWR | O_TRUNC, S_IFREG | mode, 0);
    const b = typeof data === 'string' ? bytes(data) : data;
    let off = 0;
    while (off < b.length) {
      const n = await c.write(fid, off, b.subarray(off, Math.min(b.length, off + 65536)));
      if (n <= 0) throw new Error(`mkfile ${path}: write returned ${n}`);
      off += n;
    }
  } finally {
    await c.clunk(fid);
  }
}

export async function mksymlink(c: P9Client, path: string, target: string): Promise<void> {
  const parts = split(path);
  const name = parts.pop()!;
  const dir = await walkTo(c, parts.join('/'));
  try {
    await c.symlink(dir, name, target, 0);
  } finally {
    await c.clunk(dir);
  }
}

/** Contents of a file, read through a fresh fid. */
export async function readPath(c: P9Client, path: string): Promise<Uint8Array> {
  const fid = await openPath(c, path, O_RDONLY);
  try {
    return await c.readAll(fid);
  } finally {
    await c.clunk(fid);
  }
}

export async function exists(c: P9Client, path: string): Promise<boolean> {
  const fid = c.allocFid();
  const names = split(path);
  let n = -1;
  const e = await errnoOf(c.walk(ROOT, fid, names).then((qs) => { n = qs.length; }));
  if (e === 0 && n === names.length) {
    await c.clunk(fid);
    return true;
  }
  c.releaseFid(fid);
  return false;
}

/** Build a raw message: header (size = whole length unless overridden) + body bytes. */
export function rawMsg(type: number, tag: number, body: number[] | Uint8Array, sizeOverride?: number): Uint8Array {
  return encodeRaw(type, tag, body instanceof Uint8Array ? body : Uint8Array.from(body), sizeOverride);
}

export const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
export const le16 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff];
export const le64 = (v: bigint): number[] => {
  const out: number[] = [];
  for (let i = 0; i < 8; i++) out.push(Number((v >> BigInt(8 * i)) & 0xffn));
  return out;
};

/** Resolve after pending I/O callbacks (a few macrotask turns). */
export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

// ─────────────────────────────────────────────────────────── DeferredBackend

interface Held {
  method: string;
  run: () => void;
}

/**
 * An asynchronous wrapper around any Backend. Every call returns a Promise. While `hold` is
 * active (for every method, or the ones its predicate selects) calls are queued and their
 * Promises settle only when the test calls `release()`; the inner backend call runs at release
 * time. Otherwise calls are forwarded on the next microtask. `forget` is always immediate.
 */
export class DeferredBackend implements Backend {
  private held: Held[] = [];
  private holding: ((method: string) => boolean) | null = null;
  /** every call made, in order (method names) */
  readonly calls: string[] = [];

  constructor(readonly inner: Backend) {}

  /** Start queuing calls (all of them, or those `pred` selects). */
  hold(pred: (method: string) => boolean = () => true): void {
    this.holding = pred;
  }
  /** Stop queuing new calls (already queued ones stay queued until released). */
  passThrough(): void {
    this.holding = null;
  }
  /** Queued calls (method names). */
  get pending(): string[] {
    return this.held.map((h) => h.method);
  }
  /** Run the queued calls (those `pred` selects, default all), in order. Returns how many. */
  release(pred: (method: string) => boolean = () => true): number {
    const now: Held[] = [];
    const keep: Held[] = [];
    for (const h of this.held) (pred(h.method) ? now : keep).push(h);
    this.held = keep;
    for (const h of now) h.run();
    return now.length;
  }
  /** Wait until a call of `method` is queued (polls for a while). */
  async waitFor(method: string, timeoutMs = 2000): Promise<void> {
    const t0 = Date.now();
    while (!this.held.some((h) => h.method === method)) {
      if (Date.now() - t0 > timeoutMs) throw new Error(`DeferredBackend: no ${method} call queued (have: ${this.pending.join(', ')})`);
      await tick();
    }
  }

  private wrap<T>(method: string, fn: () => Res<T>): Promise<T | number> {
    this.calls.push(method);
    if (this.holding === null || !this.holding(method)) return Promise.resolve().then(fn);
    return new Promise<T | number>((resolve, reject) => {
      this.held.push({
        method,
        run: () => {
          try {
            resolve(fn());
          } catch (e) {
            reject(e);
          }
        },
      });
    });
  }

  attach(aname: Uint8Array, uid: number) { return this.wrap<Entry>('attach', () => this.inner.attach(aname, uid)); }
  lookup(dir: Node, name: Uint8Array) { return this.wrap<Entry>('lookup', () => this.inner.lookup(dir, name)); }
  dup(node: Node) { return this.wrap<Entry>('dup', () => this.inner.dup(node)); }
  getattr(node: Node) { return this.wrap<Stat>('getattr', () => this.inner.getattr(node)); }
  setattr(node: Node, attr: SetAttr) { return this.wrap<number>('setattr', () => this.inner.setattr(node, attr)); }
  open(node: Node, flags: number) { return this.wrap<Fh>('open', () => this.inner.open(node, flags)); }
  create(dir: Node, name: Uint8Array, flags: number, mode: number, uid: number, gid: number) {
    return this.wrap<Created>('create', () => this.inner.create(dir, name, flags, mode, uid, gid));
  }
  read(fh: Fh, offset: number, dst: Uint8Array[]) { return this.wrap<number>('read', () => this.inner.read(fh, offset, dst)); }
  write(fh: Fh, offset: number, src: Uint8Array[]) { return this.wrap<number>('write', () => this.inner.write(fh, offset, src)); }
  readdir(fh: Fh, cookie: number, sink: DirSink) { return this.wrap<number>('readdir', () => this.inner.readdir(fh, cookie, sink)); }
  readlink(node: Node) { return this.wrap<Uint8Array>('readlink', () => this.inner.readlink(node)); }
  mkdir(dir: Node, name: Uint8Array, mode: number, uid: number, gid: number) {
    return this.wrap<Stat>('mkdir', () => this.inner.mkdir(dir, name, mode, uid, gid));
  }
  symlink(dir: Node, name: Uint8Array, target: Uint8Array, uid: number, gid: number) {
    return this.wrap<Stat>('symlink', () => this.inner.symlink(dir, name, target, uid, gid));
  }
  mknod(dir: Node, name: Uint8Array, mode: number, major: number, minor: number, uid: number, gid: number) {
    return this.wrap<Stat>('mknod', () => this.inner.mknod(dir, name, mode, major, minor, uid, gid));
  }
  link(dir: Node, name: Uint8Array, target: Node) { return this.wrap<number>('link', () => this.inner.link(dir, name, target)); }
  renameat(olddir: Node, oldname: Uint8Array, newdir: Node, newname: Uint8Array) {
    return this.wrap<number>('renameat', () => this.inner.renameat(olddir, oldname, newdir, newname));
  }
  rename(node: Node, newdir: Node, newname: Uint8Array) { return this.wrap<number>('rename', () => this.inner.rename(node, newdir, newname)); }
  unlinkat(dir: Node, name: Uint8Array, flags: number) { return this.wrap<number>('unlinkat', () => this.inner.unlinkat(dir, name, flags)); }
  remove(node: Node) { return this.wrap<number>('remove', () => this.inner.remove(node)); }
  fsync(fh: Fh, datasync: boolean) { return this.wrap<number>('fsync', () => this.inner.fsync(fh, datasync)); }
  statfs(node: Node) { return this.wrap<StatFs>('statfs', () => this.inner.statfs(node)); }
  getxattr(node: Node, name: Uint8Array) { return this.wrap<Uint8Array>('getxattr', () => this.inner.getxattr(node, name)); }
  listxattr(node: Node) { return this.wrap<Uint8Array[]>('listxattr', () => this.inner.listxattr(node)); }
  setxattr(node: Node, name: Uint8Array, value: Uint8Array, flags: number) {
    return this.wrap<number>('setxattr', () => this.inner.setxattr(node, name, value, flags));
  }
  removexattr(node: Node, name: Uint8Array) { return this.wrap<number>('removexattr', () => this.inner.removexattr(node, name)); }
  close(fh: Fh) { return this.wrap<number>('close', () => this.inner.close(fh)); }
  forget(node: Node): void { this.inner.forget(node); }
}
