/**
 * Virtio9pDevice: the wasm core plus the host glue that turns its backend imports into calls
 * on a Backend (see backends/backend.ts) — the only place where backend results and errors
 * become Linux errnos and out-parameters.
 */
import type { Backend, DirSink, SetAttr, Stat, Entry, Created, StatFs } from './backends/backend.js';
import { compileCore, instantiateCore, type WasmSource } from './wasm/core.js';
import { ABI_VERSION, C, PENDING, ST, STATUS, type CoreExports } from './wasm/abi.js';
import { toErrno, P9Error, EBADF, EBUSY, EINVAL, EMFILE, ENOMEM, ENOSPC, ERANGE } from './errno.js';
import { LockTable, LOCK_BLOCKED } from './locks.js';

const PAGE = 65536;
/** snapshot format: magic, version, header length, JSON header, core pages, grown fid tables,
 *  backend state */
const SNAP_MAGIC = 0x53503956; // "V9PS"
const SNAP_VERSION = 2;
const SNAP_PAGE = 4096;
const backendIds = new WeakMap<object, number>();
let nextBackendId = 1;
/** A per-process identity of a backend object (a snapshot of a live backend restores only onto it). */
function backendId(b: object): number {
  let id = backendIds.get(b);
  if (id === undefined) { id = nextBackendId++; backendIds.set(b, id); }
  return id;
}

interface SnapshotHeader {
  abi: number; coreEnd: number; guestSize: number; copyMode: boolean; tag: number[];
  pages: number; backendBytes: number; backendId: number | null;
  /** fid tables that grew into the fid heap: their bytes follow the pages, in this order */
  fidTables: { session: number; bytes: number }[];
  nextXattr: number; xattrs: { h: number; node: number; name: number[]; flags: number; data: number[]; extent: number; write: boolean; session?: number }[];
  /** open backend handles and the session holding each */
  fhs?: [number, number][];
  locks: ReturnType<LockTable['save']>;
}
const TWO32 = 4294967296;
/** xattr buffers live in the glue; their handles have this bit (backend Fh must be < 2^30). */
const XATTR_FH = 0x40000000;
/** Fids one session may hold by default (DeviceOptions.maxFids), and the most it may be set to. */
export const DEFAULT_MAX_FIDS = 1048576;
export const MAX_MAX_FIDS = 16777216;

export interface DeviceOptions {
  backend: Backend;
  /** the mount tag (VIRTIO_9P_MOUNT_TAG config), at most 255 bytes; default "virtio9p" */
  tag?: string;
  /** guest RAM bytes owned by the device (default 64 MiB) */
  guestMemorySize?: number;
  /** the compiled module or its bytes (browsers); Node finds build/virtio9p.wasm itself */
  wasm?: WasmSource;
  /** use the debug build (assertions on) */
  debug?: boolean;
  /** run on a SharedArrayBuffer-backed memory (the shared build, build/virtio9p.shared.wasm;
   *  in browsers the page must be cross-origin isolated), so a VMM can keep guest RAM
   *  (`device.ram`) shared with other workers */
  sharedMemory?: boolean;
  /** called on interrupts: kind 0 = used buffers, 1 = configuration change */
  onInterrupt?: (kind: number) => void;
  /**
   * The VMM's own memory, when guest RAM already lives in a WebAssembly.Memory (zero copy):
   * guest RAM is [guestBase, guestBase + guestMemorySize) of it, and the device takes
   * [0, Virtio9pDevice.coreBytes()) for itself (its static data and tables), so guestBase must
   * be at or above that and 64 KiB aligned. A shared memory needs `sharedMemory: true`.
   * The memory is grown if it is too small for the window.
   */
  memory?: WebAssembly.Memory;
  guestBase?: number;
  /**
   * Copy mode, for a VMM whose guest RAM the device cannot map: a plain ArrayBuffer, or a view
   * into another module's memory (v86's). Guest physical address 0 is guestRam[0]; pass a
   * function when the view can change (a memory that grows detaches old views). The device
   * keeps a shadow window of guestMemorySize bytes (default: the RAM's length) and copies in
   * exactly what it reads — ring indices, descriptors, indirect tables, request buffers — and
   * copies out exactly what it writes: used elements and indices, and the reply's bytes.
   */
  guestRam?: Uint8Array | (() => Uint8Array);
  /** copy mode: told after the device wrote guest RAM [gpa, gpa + len) (v86: jit_dirty_cache) */
  onGuestWrite?: (gpa: number, len: number) => void;
  /** offer only these features (a mask of MOUNT_TAG, INDIRECT_DESC, EVENT_IDX, RING_PACKED;
   *  VERSION_1 is always offered): e.g. ~(1n << 34n) keeps drivers on the split ring */
  features?: bigint;
  /** Open files and directories one session (the virtqueue's, or one stream connection) may
   *  hold; one more open or create answers EMFILE. Default 65536: a Linux guest mounted with
   *  cache=loose keeps every file it wrote open while the file is cached. */
  maxOpenPerSession?: number;
  /** Bytes of xattr buffers one session may hold (Txattrcreate values being written,
   *  Txattrwalk values being read): beyond it Txattrcreate answers ENOSPC and Txattrwalk
   *  ENOMEM. Default 1 MiB. */
  maxXattrBytesPerSession?: number;
  /**
   * Fids one 9P session may hold (default 1,048,576; 1..16,777,216). A Linux guest mounted
   * with cache=loose keeps a fid per cached dentry, so this bounds what the guest may cache,
   * not just its open files. A request that would add a fid past it gets Rlerror(EMFILE); the
   * session keeps working and a clunk makes room. The table costs 32 bytes per entry at 3/8 to
   * 3/4 load (≤ 64 MiB at the default limit); past its first 1,024 entries it grows into memory
   * the core adds with memory.grow, above guest RAM — so a non-shared memory's ArrayBuffer may
   * be replaced by any call into the device (take views of `device.ram` afresh).
   */
  maxFids?: number;
}

/** Per-session bounds (DeviceOptions) and their defaults. */
export const DEFAULT_MAX_OPEN = 65536;
export const DEFAULT_MAX_XATTR_BYTES = 1 << 20;

export interface Counters {
  requests: Record<number, number>;
  errors: Record<number, number>;
  malformedChains: number;
  malformedMessages: number;
  inflight: number;
  inflightHighWater: number;
  bytesRead: bigint;
  bytesWritten: bigint;
  flushed: number;
  replies: number;
  needsReset: number;
  stalls: number;
}

interface XattrBuf { node: number; name: Uint8Array; flags: number; data: Uint8Array; extent: number; write: boolean; session: number }

export class Virtio9pDevice {
  readonly backend: Backend;
  readonly tag: Uint8Array;
  readonly guestBase: number;
  readonly guestSize: number;
  /** copy mode: the device works on a shadow of the VMM's RAM (DeviceOptions.guestRam) */
  readonly copyMode: boolean;
  private ex!: CoreExports;
  private u8!: Uint8Array;
  private dv!: DataView;
  private listeners: ((kind: number) => void)[] = [];
  private xattrs = new Map<number, XattrBuf>();
  private nextXattr = 1;
  /** per session (index = session id): open backend handles, including opens in flight */
  private openCount: number[] = [];
  /** per session: bytes of xattr buffers held */
  private xattrBytes: number[] = [];
  /** open backend handle → the session holding it */
  private fhSession = new Map<number, number>();
  private readonly maxOpen: number;
  private readonly maxXattrBytes: number;
  /** called once when a session reaches a bound (again only after it fell to half of it) */
  onLimit: ((session: number, what: 'open' | 'xattr') => void) | null = null;
  /** per session: 1 = at the open-files bound, 2 = at the xattr-bytes bound (logged once) */
  private atLimit: number[] = [];
  private locks = new LockTable();
  private replies = new Map<number, (len: number) => void>();
  private nextToken = 1;
  private window: Uint8Array;
  private growListeners: (() => void)[] = [];
  private vmmRam: (() => Uint8Array) | null;
  private onGuestWrite: ((gpa: number, len: number) => void) | null;
  private memory: WebAssembly.Memory;
  private drainWaiters: (() => void)[] = [];

  private constructor(opts: DeviceOptions, ex: CoreExports, memory: WebAssembly.Memory, base: number, size: number) {
    this.backend = opts.backend;
    this.tag = new TextEncoder().encode(opts.tag ?? 'virtio9p');
    if (this.tag.length === 0 || this.tag.length > 255) throw new RangeError('virtio9p: mount tag must be 1..255 bytes');
    this.ex = ex;
    this.guestBase = base;
    this.guestSize = size;
    this.memory = memory;
    this.u8 = new Uint8Array(memory.buffer);
    this.dv = new DataView(memory.buffer);
    this.window = this.u8.subarray(base, base + size);
    const g = opts.guestRam;
    this.vmmRam = g === undefined ? null : typeof g === 'function' ? g : () => g;
    this.copyMode = this.vmmRam !== null;
    this.onGuestWrite = opts.onGuestWrite ?? null;
    this.maxOpen = opts.maxOpenPerSession ?? DEFAULT_MAX_OPEN;
    this.maxXattrBytes = opts.maxXattrBytesPerSession ?? DEFAULT_MAX_XATTR_BYTES;
    if (!Number.isInteger(this.maxOpen) || this.maxOpen < 1) throw new RangeError('virtio9p: maxOpenPerSession must be a positive integer');
    if (!Number.isInteger(this.maxXattrBytes) || this.maxXattrBytes < 0) throw new RangeError('virtio9p: maxXattrBytesPerSession must be an integer ≥ 0');
    if (opts.onInterrupt) this.listeners.push(opts.onInterrupt);
    this.u8.set(this.tag, ex.tagPtr());
    ex.setTagLen(this.tag.length);
  }

  /** Guest RAM: guest physical address 0 is ram[0] (in copy mode, the VMM's own buffer). When
   *  it is in the module's memory, a view of it is valid until the memory grows: the core grows
   *  it for large fid tables, which detaches a non-shared memory's ArrayBuffer — take the view
   *  again then (`onMemoryGrow`). */
  get ram(): Uint8Array { return this.vmmRam ? this.vmmRam() : this.window; }

  /** Called (synchronously, inside the call into the device that grew it) after the core grew
   *  the module memory; views of `ram` or of the memory taken before are stale from then on. */
  onMemoryGrow(cb: () => void): void { this.growListeners.push(cb); }

  /** The core grew the memory: re-take the glue's views, then tell the listeners. */
  private grew(): void {
    this.u8 = new Uint8Array(this.memory.buffer);
    this.dv = new DataView(this.memory.buffer);
    this.window = this.u8.subarray(this.guestBase, this.guestBase + this.guestSize);
    for (const l of this.growListeners) l();
  }

  /** Copy mode: the core reads [gpa, gpa+len) next — bring it into the window. The core only
   *  asks for ranges it has checked against the window (guest.ts). */
  private copyIn(gpa: number, len: number): void {
    const ram = this.vmmRam!(), w = this.window;
    // ring fields (2–16 bytes) by hand: a subarray per field would allocate
    if (len <= 32) for (let i = 0; i < len; i++) w[gpa + i] = ram[gpa + i];
    else w.set(ram.subarray(gpa, gpa + len), gpa);
  }
  /** Copy mode: the core wrote [gpa, gpa+len) — publish it to the VMM's RAM. */
  private copyOut(gpa: number, len: number): void {
    const ram = this.vmmRam!(), w = this.window;
    if (len <= 32) for (let i = 0; i < len; i++) ram[gpa + i] = w[gpa + i];
    else ram.set(w.subarray(gpa, gpa + len), gpa);
    this.onGuestWrite?.(gpa, len);
  }

  /** Bytes at the start of a memory the device needs for itself (its static data and tables):
   *  a VMM that supplies its own memory places guest RAM at or after this (64 KiB aligned). */
  static async coreBytes(opts: Pick<DeviceOptions, 'wasm' | 'sharedMemory' | 'debug'> = {}): Promise<number> {
    const module = await compileCore(opts.wasm, opts.sharedMemory ? 'shared' : opts.debug ? 'debug' : 'release');
    const probe = opts.sharedMemory
      ? new WebAssembly.Memory({ initial: 256, maximum: 65536, shared: true } as WebAssembly.MemoryDescriptor)
      : new WebAssembly.Memory({ initial: 256 });
    const none = () => 0;
    const ex = await instantiateCore(module, probe, { device: { interrupt: none, reply: none, copyIn: none, copyOut: none, grew: none }, backend: new Proxy({}, { get: () => none }) });
    return Math.ceil(ex.coreEnd() / PAGE) * PAGE;
  }

  static async create(opts: DeviceOptions): Promise<Virtio9pDevice> {
    if (opts.guestRam !== undefined && opts.memory !== undefined) throw new RangeError('virtio9p: guestRam (copy mode) and memory (zero copy) exclude each other');
    const ramLen = opts.guestRam === undefined ? undefined : (typeof opts.guestRam === 'function' ? opts.guestRam() : opts.guestRam).length;
    const size = opts.guestMemorySize ?? (ramLen !== undefined ? Math.floor(ramLen / 4096) * 4096 : 64 << 20);
    if (ramLen !== undefined && size > ramLen) throw new RangeError(`virtio9p: guestMemorySize ${size} is larger than guestRam (${ramLen} bytes)`);
    if (!Number.isInteger(size) || size <= 0 || size % 4096 !== 0) throw new RangeError('virtio9p: guestMemorySize must be a positive multiple of 4096');
    const maxFids = opts.maxFids ?? DEFAULT_MAX_FIDS;
    if (!Number.isInteger(maxFids) || maxFids < 1 || maxFids > MAX_MAX_FIDS) throw new RangeError(`virtio9p: maxFids must be an integer from 1 to ${MAX_MAX_FIDS}`);
    const module = await compileCore(opts.wasm, opts.sharedMemory ? 'shared' : opts.debug ? 'debug' : 'release');
    // A shared memory needs its maximum up front (the shared build declares 65536 pages).
    const memory = opts.memory ?? (opts.sharedMemory
      ? new WebAssembly.Memory({ initial: 256, maximum: 65536, shared: true } as WebAssembly.MemoryDescriptor)
      : new WebAssembly.Memory({ initial: 256 }));
    let dev: Virtio9pDevice | undefined;
    const imports = Virtio9pDevice.imports(() => dev!);
    const ex = await instantiateCore(module, memory, imports);
    const need = Math.ceil(ex.coreEnd() / PAGE) * PAGE;
    const base = opts.guestBase ?? need;
    if (!Number.isInteger(base) || base < need || base % PAGE !== 0) {
      throw new RangeError(`virtio9p: guestBase must be a multiple of 65536 at or above ${need} (the device's own area)`);
    }
    const pages = Math.ceil((base + size) / PAGE);
    if (pages > memory.buffer.byteLength / PAGE) memory.grow(pages - memory.buffer.byteLength / PAGE);
    ex.init(base, BigInt(size), opts.guestRam !== undefined ? 1 : 0);
    if (opts.features !== undefined) ex.offerFeatures(BigInt.asUintN(64, opts.features));
    ex.setFidLimit(maxFids);
    dev = new Virtio9pDevice(opts, ex, memory, base, size);
    return dev;
  }

  // ── the virtio side (DevicePort) ──

  get deviceFeatures(): bigint { return this.ex.deviceFeatures(); }
  get status(): number { return this.ex.status(); }
  /** The features the driver accepted (0n until FEATURES_OK): e.g. whether it chose the packed ring. */
  get driverFeatures(): bigint { return this.ex.driverFeatures(); }
  get needsReset(): boolean { return (this.ex.status() & STATUS.DEVICE_NEEDS_RESET) !== 0; }
  setDriverFeatures(bits: bigint): boolean { return this.ex.setDriverFeatures(bits) === 1; }
  setupQueue(queue: number, cfg: { size: number; desc: number; avail: number; used: number }): void {
    const r = this.ex.setupQueue(queue, cfg.size, BigInt(cfg.desc), BigInt(cfg.avail), BigInt(cfg.used));
    if (r !== 0) throw new RangeError(`virtio9p: invalid queue ${queue} configuration`);
  }
  driverOk(): void {
    if (this.ex.driverOk() !== 1) throw new Error('virtio9p: DRIVER_OK before FEATURES_OK and a queue');
  }
  notify(queue: number): void { this.ex.notify(queue); }
  onInterrupt(cb: (kind: number) => void): void { this.listeners.push(cb); }
  /** Device reset (status ← 0): rings, features and the 9P session. */
  reset(): void { this.ex.reset(); }

  /** The device configuration space: tag_len le16, then the tag bytes (virtio 1.2 §5.3.4). */
  configSpace(): Uint8Array {
    const c = new Uint8Array(2 + this.tag.length);
    c[0] = this.tag.length & 0xff; c[1] = this.tag.length >> 8;
    c.set(this.tag, 2);
    return c;
  }

  counters(): Counters {
    const p = this.ex.countersPtr();
    const dv = this.dv;
    const u32 = (o: number) => dv.getUint32(p + o, true);
    const table = (o: number) => {
      const t: Record<number, number> = {};
      for (let i = 0; i < 256; i++) { const v = u32(o + i * 4); if (v) t[i] = v; }
      return t;
    };
    return {
      requests: table(C.REQUESTS), errors: table(C.ERRORS),
      malformedChains: u32(C.MALFORMED_CHAINS), malformedMessages: u32(C.MALFORMED_MESSAGES),
      inflight: u32(C.INFLIGHT), inflightHighWater: u32(C.INFLIGHT_HWM),
      bytesRead: dv.getBigUint64(p + C.BYTES_READ, true), bytesWritten: dv.getBigUint64(p + C.BYTES_WRITTEN, true),
      flushed: u32(C.FLUSHED), replies: u32(C.REPLIES), needsReset: u32(C.NEEDS_RESET), stalls: u32(C.STALLS),
    };
  }

  // ── snapshot and restore (for VMMs that save state) ──

  /** Requests in flight (backend calls not yet finished). */
  get inflight(): number { return this.ex.inflight(); }

  /**
   * The device's state: queues (geometry, indices, event state), negotiated features and
   * status, the transport registers, every session's fids and msize, counters, xattr
   * buffers and locks — and the backend's own state when it can save it
   * (`snapshotState()`, the MemoryBackend). Requests in flight are finished first (their
   * replies reach the guest before the state is taken), so pause the guest before calling:
   * the promise resolves once nothing is in flight. Guest RAM is not included (it is the VMM's;
   * with a device-owned window, save `device.ram` with the rest of guest memory).
   */
  async snapshot(): Promise<Uint8Array> {
    while (this.ex.inflight() > 0) await new Promise<void>((r) => this.drainWaiters.push(r));
    const end = this.ex.coreEnd();
    this.ex.saveState();
    const u8 = new Uint8Array(this.memory.buffer);
    const pages: number[] = [];
    for (let p = 0; p < end; p += SNAP_PAGE) {
      const n = Math.min(SNAP_PAGE, end - p);
      const w = new Uint32Array(u8.buffer, p, n >> 2);
      let nonzero = false;
      for (let i = 0; i < w.length; i++) if (w[i] !== 0) { nonzero = true; break; }
      if (nonzero) pages.push(p / SNAP_PAGE);
    }
    const fidTables: { session: number; bytes: number }[] = [];
    for (let s = 0; s < this.ex.maxSessions(); s++) {
      const bytes = this.ex.fidTableBytes(s);
      if (bytes > 0) fidTables.push({ session: s, bytes });
    }
    const fidBytes = fidTables.reduce((n, t) => n + t.bytes, 0);
    const b = this.backend as Backend & { snapshotState?: () => Uint8Array };
    const backendState = typeof b.snapshotState === 'function' ? b.snapshotState() : null;
    const header: SnapshotHeader = {
      abi: ABI_VERSION, coreEnd: end, guestSize: this.guestSize, copyMode: this.copyMode, tag: [...this.tag],
      pages: pages.length, backendBytes: backendState ? backendState.length : 0, fidTables,
      backendId: backendState ? null : backendId(this.backend),
      nextXattr: this.nextXattr,
      xattrs: [...this.xattrs].map(([h, x]) => ({ h, node: x.node, name: [...x.name], flags: x.flags, data: [...x.data], extent: x.extent, write: x.write, session: x.session })),
      fhs: [...this.fhSession],
      locks: this.locks.save(),
    };
    const json = new TextEncoder().encode(JSON.stringify(header));
    const total = 12 + json.length + pages.length * (4 + SNAP_PAGE) + fidBytes + header.backendBytes;
    const out = new Uint8Array(total);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, SNAP_MAGIC, true); dv.setUint32(4, SNAP_VERSION, true); dv.setUint32(8, json.length, true);
    out.set(json, 12);
    let o = 12 + json.length;
    for (const p of pages) {
      dv.setUint32(o, p, true);
      out.set(u8.subarray(p * SNAP_PAGE, Math.min(end, (p + 1) * SNAP_PAGE)), o + 4);
      o += 4 + SNAP_PAGE;
    }
    const mem = new Uint8Array(this.memory.buffer);
    for (const t of fidTables) {
      const p = this.ex.fidTablePtr(t.session);
      out.set(mem.subarray(p, p + t.bytes), o);
      o += t.bytes;
    }
    if (backendState) out.set(backendState, o);
    return out;
  }

  /** The backend's part of a snapshot (null when the backend was live and saved nothing), to
   *  rebuild it before `restore` — e.g. `MemoryBackend.restoreState(bytes)`. */
  static snapshotBackendState(snap: Uint8Array): Uint8Array | null {
    const { header, backendAt } = parseSnapshot(snap);
    return header.backendBytes ? snap.subarray(backendAt, backendAt + header.backendBytes) : null;
  }

  /**
   * A device in the state `snap` was taken in. `opts` are the options the saved device was
   * created with (guest RAM size, copy mode, tag); its backend is either the same live backend
   * object (same process) or one rebuilt from `snapshotBackendState(snap)`. Throws on a
   * malformed snapshot or one that does not match the options.
   */
  static async restore(snap: Uint8Array, opts: DeviceOptions): Promise<Virtio9pDevice> {
    const { header, pagesAt, fidsAt } = parseSnapshot(snap);
    const dev = await Virtio9pDevice.create(opts);
    const why = header.abi !== ABI_VERSION ? `ABI ${header.abi}, this core is ${ABI_VERSION}`
      : header.coreEnd !== dev.ex.coreEnd() ? 'a different core build'
      : header.guestSize !== dev.guestSize ? `guest RAM ${header.guestSize} bytes, the options give ${dev.guestSize}`
      : header.copyMode !== dev.copyMode ? 'a different memory mode (copy / zero copy)'
      : header.tag.length !== dev.tag.length || header.tag.some((b, i) => b !== dev.tag[i]) ? 'a different mount tag'
      : header.backendId !== null && backendIds.get(opts.backend) !== header.backendId ? 'a live backend that is not this one (only a backend with snapshotState travels in a snapshot)'
      : null;
    if (why) throw new Error(`virtio9p: cannot restore this snapshot: ${why}`);
    const u8 = new Uint8Array(dev.memory.buffer);
    const end = header.coreEnd;
    u8.fill(0, 0, end);
    let o = pagesAt;
    for (let i = 0; i < header.pages; i++) {
      const p = new DataView(snap.buffer, snap.byteOffset + o, 4).getUint32(0, true);
      if (p * SNAP_PAGE >= end) throw new Error('virtio9p: cannot restore this snapshot: a page outside the core');
      u8.set(snap.subarray(o + 4, o + 4 + Math.min(SNAP_PAGE, end - p * SNAP_PAGE)), p * SNAP_PAGE);
      o += 4 + SNAP_PAGE;
    }
    if (dev.ex.loadState() !== 1) throw new Error('virtio9p: cannot restore this snapshot: no device state in it');
    dev.ex.setFidLimit(opts.maxFids ?? DEFAULT_MAX_FIDS); // this host's limit, not the saved one
    // loadState gave each grown fid table a fresh block (the memory may have grown): fill them
    o = fidsAt;
    for (const t of header.fidTables) {
      if (dev.ex.fidTableBytes(t.session) !== t.bytes) throw new Error(`virtio9p: cannot restore this snapshot: no memory for session ${t.session}'s fid table (${t.bytes} bytes)`);
      new Uint8Array(dev.memory.buffer).set(snap.subarray(o, o + t.bytes), dev.ex.fidTablePtr(t.session));
      o += t.bytes;
    }
    dev.nextXattr = header.nextXattr;
    dev.xattrs = new Map(header.xattrs.map((x) => [x.h, { node: x.node, name: Uint8Array.from(x.name), flags: x.flags, data: Uint8Array.from(x.data), extent: x.extent, write: x.write, session: x.session ?? 0 }]));
    for (const x of dev.xattrs.values()) dev.xattrBytes[x.session] = (dev.xattrBytes[x.session] ?? 0) + x.data.length;
    for (const [fh, s] of header.fhs ?? []) { dev.fhSession.set(fh, s); dev.openCount[s] = (dev.openCount[s] ?? 0) + 1; }
    dev.locks.load(header.locks);
    return dev;
  }

  // ── transports: the register files a VMM maps (assembly/transport.ts) ──

  /** virtio-mmio version 2: accesses at offsets of the device's MMIO window (registers are
   *  32-bit; the configuration at 0x100 also takes 8- and 16-bit reads). */
  readonly mmio = {
    read: (offset: number, size: 1 | 2 | 4 = 4): number => this.ex.mmioRead(offset, size) >>> 0,
    write: (offset: number, value: number, size: 1 | 2 | 4 = 4): void => this.ex.mmioWrite(offset, value >>> 0, size),
  };

  /** virtio-pci modern: the function's configuration space (vendor capabilities at 0x40) and
   *  its 4 KiB memory BAR 0 (offsets within the BAR; `bar0()` is where the driver mapped it). */
  readonly pci = {
    configRead: (offset: number, size: 1 | 2 | 4 = 4): number => this.ex.pciConfigRead(offset, size) >>> 0,
    configWrite: (offset: number, value: number, size: 1 | 2 | 4 = 4): void => this.ex.pciConfigWrite(offset, value >>> 0, size),
    barRead: (offset: number, size: 1 | 2 | 4 = 4): number => this.ex.pciBarRead(offset, size) >>> 0,
    barWrite: (offset: number, value: number, size: 1 | 2 | 4 = 4): void => this.ex.pciBarWrite(offset, value >>> 0, size),
    bar0: (): number => (this.ex.pciConfigRead(0x10, 4) & ~0xfff) >>> 0,
    barSize: 0x1000,
  };

  // ── 9P over streams: sessions that share this core (see serve.ts) ──

  /** A new session with its own fids and msize; throws when all are in use. */
  openSession(): number {
    if (this.copyMode) throw new Error('virtio9p: stream sessions address the device window; they need a device without guestRam');
    const id = this.ex.openSession();
    if (id < 0) throw new P9Error(EBUSY, 'virtio9p: too many sessions');
    return id;
  }
  /** Clunk a session's fids; its pending requests complete without a reply. */
  closeSession(id: number): void { this.ex.closeSession(id); }
  /**
   * Start one request of a session: the T-message is `reqLen` bytes at guest address `req`,
   * the reply goes to [rep, rep + repCap). `done(len)` runs when the reply is there (len 0: the
   * request was flushed and has no reply). Returns 0, EAGAIN (every slot busy: retry after a
   * reply) or EINVAL.
   */
  submit(session: number, req: number, reqLen: number, rep: number, repCap: number, done: (len: number) => void): number {
    const token = this.nextToken;
    this.nextToken = this.nextToken >= 0x7fffffff ? 1 : this.nextToken + 1;
    this.replies.set(token, done);
    const r = this.ex.submit(session, token, BigInt(req), reqLen, BigInt(rep), repCap);
    if (r !== 0) this.replies.delete(token);
    return r;
  }

  // ── the glue: backend imports ──

  private interrupt(kind: number): void { for (const l of this.listeners) l(kind); }

  private putU64(off: number, v: number): void {
    this.dv.setUint32(off, v >>> 0, true);
    this.dv.setUint32(off + 4, Math.floor(v / TWO32) >>> 0, true);
  }
  private getU64(off: number): number {
    return this.dv.getUint32(off, true) + this.dv.getUint32(off + 4, true) * TWO32;
  }

  private putStat(out: number, st: Stat, node: number): void {
    const dv = this.dv;
    this.putU64(out + ST.INO, st.ino);
    dv.setUint32(out + ST.MODE, st.mode, true);
    dv.setUint32(out + ST.UID, st.uid, true);
    dv.setUint32(out + ST.GID, st.gid, true);
    dv.setUint32(out + ST.NODE, node, true);
    this.putU64(out + ST.NLINK, st.nlink);
    this.putU64(out + ST.RDEV, st.rdev);
    this.putU64(out + ST.SIZE, st.size);
    this.putU64(out + ST.BLKSIZE, st.blksize);
    this.putU64(out + ST.BLOCKS, st.blocks);
    this.putU64(out + ST.ATIME, st.atimeSec); this.putU64(out + ST.ATIME + 8, st.atimeNsec);
    this.putU64(out + ST.MTIME, st.mtimeSec); this.putU64(out + ST.MTIME + 8, st.mtimeNsec);
    this.putU64(out + ST.CTIME, st.ctimeSec); this.putU64(out + ST.CTIME + 8, st.ctimeNsec);
  }

  private bytes(ptr: number, len: number): Uint8Array { return this.u8.subarray(ptr, ptr + len); }

  private iovs(ptr: number, cnt: number): Uint8Array[] {
    const v: Uint8Array[] = new Array(cnt);
    for (let i = 0; i < cnt; i++) {
      const p = this.dv.getUint32(ptr + i * 8, true);
      const l = this.dv.getUint32(ptr + i * 8 + 4, true);
      v[i] = this.u8.subarray(p, p + l);
    }
    return v;
  }

  /**
   * Run one backend call for `slot`: a value is finished by `ok` (which writes the outs and
   * returns 0 or an errno), -errno and throws become errnos, and a Promise answers PENDING and
   * completes the slot when it settles. slot -1 = nobody waits (fire and forget).
   */
  private call<T>(slot: number, fn: () => T | number | Promise<T | number>, ok: (v: T) => number, undo?: (v: T) => void, fail?: () => void): number {
    let r: T | number | Promise<T | number>;
    try { r = fn(); } catch (e) { fail?.(); return toErrno(e); }
    if (r instanceof Promise) {
      r.then(
        (v) => {
          let e: number;
          try { e = typeof v === 'number' && v < 0 ? -v : ok(v as T); } catch (x) { e = toErrno(x); }
          if (e !== 0) fail?.();
          if (slot >= 0) this.completeSlot(slot, e);
          else if (e === 0 && undo) undo(v as T);
        },
        (x) => { fail?.(); if (slot >= 0) this.completeSlot(slot, toErrno(x)); },
      );
      return slot >= 0 ? PENDING : 0;
    }
    let e: number;
    if (typeof r === 'number' && r < 0) e = -r;
    else try { e = ok(r as T); } catch (x) { e = toErrno(x); }
    if (e !== 0) fail?.();
    return e;
  }

  // ── per-session bounds ──

  private sessionOf(slot: number): number { return slot >= 0 ? this.ex.slotSession(slot) : 0; }

  private limitReached(session: number, what: 'open' | 'xattr'): void {
    const bit = what === 'open' ? 1 : 2, had = this.atLimit[session] ?? 0;
    if (had & bit) return;
    this.atLimit[session] = had | bit;
    this.onLimit?.(session, what);
  }

  /** Reserve one open handle for `session` (false: it holds maxOpenPerSession already). */
  private takeOpen(session: number): boolean {
    const n = this.openCount[session] ?? 0;
    if (n >= this.maxOpen) { this.limitReached(session, 'open'); return false; }
    this.openCount[session] = n + 1;
    return true;
  }
  private giveOpen(session: number): void {
    const n = (this.openCount[session] ?? 1) - 1;
    this.openCount[session] = n;
    // the episode ends once the session is well below the bound (not at every close)
    if (n <= this.maxOpen >> 1 && this.atLimit[session]) this.atLimit[session] &= ~1;
  }

  /** Reserve xattr buffer bytes for `session` (false: over maxXattrBytesPerSession). */
  private takeXattr(session: number, bytes: number): boolean {
    const n = this.xattrBytes[session] ?? 0;
    if (n + bytes > this.maxXattrBytes) { this.limitReached(session, 'xattr'); return false; }
    this.xattrBytes[session] = n + bytes;
    return true;
  }
  private giveXattr(session: number, bytes: number): void {
    const n = (this.xattrBytes[session] ?? bytes) - bytes;
    this.xattrBytes[session] = n;
    if (n <= this.maxXattrBytes / 2 && this.atLimit[session]) this.atLimit[session] &= ~2;
  }

  /** What one session holds: open handles and xattr buffer bytes. */
  sessionUsage(session: number): { open: number; xattrBytes: number } {
    return { open: this.openCount[session] ?? 0, xattrBytes: this.xattrBytes[session] ?? 0 };
  }

  private completeSlot(slot: number, e: number): void {
    this.ex.complete(slot, e);
    if (this.drainWaiters.length && this.ex.inflight() === 0) {
      const w = this.drainWaiters;
      this.drainWaiters = [];
      for (const r of w) r();
    }
  }

  private static imports(get: () => Virtio9pDevice) {
    const d = () => get();
    const device = {
      interrupt: (kind: number) => d().interrupt(kind),
      reply: (token: number, len: number) => {
        const cb = d().replies.get(token);
        if (cb) { d().replies.delete(token); cb(len); }
      },
      copyIn: (gpa: number, len: number) => d().copyIn(gpa >>> 0, len >>> 0),
      copyOut: (gpa: number, len: number) => d().copyOut(gpa >>> 0, len >>> 0),
      grew: () => d().grew(),
    };
    const backend = {
      attach: (slot: number, a: number, al: number, uid: number, out: number) =>
        d().call(slot, () => d().backend.attach(d().bytes(a, al), uid >>> 0), (e: Entry) => (d().putStat(out, e, e.node), 0)),
      lookup: (slot: number, dir: number, n: number, nl: number, out: number) =>
        d().call(slot, () => d().backend.lookup(dir, d().bytes(n, nl)), (e: Entry) => (d().putStat(out, e, e.node), 0)),
      dup: (slot: number, node: number, out: number) =>
        d().call(slot, () => d().backend.dup(node), (e: Entry) => (d().putStat(out, e, e.node), 0)),
      getattr: (slot: number, node: number, out: number) =>
        d().call(slot, () => d().backend.getattr(node), (st: Stat) => (d().putStat(out, st, node), 0)),
      setattr: (slot: number, node: number, p: number) => d().call(slot, () => d().backend.setattr(node, d().readSetattr(p)), () => 0),
      open: (slot: number, node: number, flags: number, outFh: number) => {
        const dev = d(), s = dev.sessionOf(slot);
        if (!dev.takeOpen(s)) return EMFILE;
        return dev.call(slot, () => dev.backend.open(node, flags >>> 0),
          (fh: number) => { dev.dv.setUint32(outFh, fh, true); dev.fhSession.set(fh, s); return 0; }, undefined, () => dev.giveOpen(s));
      },
      create: (slot: number, dir: number, n: number, nl: number, flags: number, mode: number, uid: number, gid: number, out: number) => {
        const dev = d(), s = dev.sessionOf(slot);
        if (!dev.takeOpen(s)) return EMFILE;
        return dev.call(slot, () => dev.backend.create(dir, dev.bytes(n, nl), flags >>> 0, mode, uid >>> 0, gid >>> 0),
          (c: Created) => { dev.putStat(out, c, c.node); dev.dv.setUint32(out + ST.FH, c.fh, true); dev.fhSession.set(c.fh, s); return 0; },
          undefined, () => dev.giveOpen(s));
      },
      read: (slot: number, fh: number, off: number, iov: number, cnt: number, outCount: number) => d().read(slot, fh, off, iov, cnt, outCount),
      write: (slot: number, fh: number, off: number, iov: number, cnt: number, outCount: number) => d().write(slot, fh, off, iov, cnt, outCount),
      readdir: (slot: number, fh: number, cookie: number, nameBuf: number) => d().readdir(slot, fh, cookie, nameBuf),
      readlink: (slot: number, node: number, buf: number, cap: number, outLen: number) =>
        d().call(slot, () => d().backend.readlink(node), (t: Uint8Array) => {
          if (t.length > cap) return ERANGE;
          d().u8.set(t, buf); d().dv.setUint32(outLen, t.length, true); return 0;
        }),
      mkdir: (slot: number, dir: number, n: number, nl: number, mode: number, uid: number, gid: number, out: number) =>
        d().call(slot, () => d().backend.mkdir(dir, d().bytes(n, nl), mode, uid >>> 0, gid >>> 0), (st: Stat) => (d().putStat(out, st, 0), 0)),
      symlink: (slot: number, dir: number, n: number, nl: number, t: number, tl: number, uid: number, gid: number, out: number) => {
        // a target is a C string on every host: a NUL inside it would cut it (EINVAL for all backends)
        const target = d().bytes(t, tl);
        if (target.indexOf(0) >= 0) return EINVAL;
        return d().call(slot, () => d().backend.symlink(dir, d().bytes(n, nl), target, uid >>> 0, gid >>> 0), (st: Stat) => (d().putStat(out, st, 0), 0));
      },
      mknod: (slot: number, dir: number, n: number, nl: number, mode: number, major: number, minor: number, uid: number, gid: number, out: number) =>
        d().call(slot, () => d().backend.mknod(dir, d().bytes(n, nl), mode >>> 0, major >>> 0, minor >>> 0, uid >>> 0, gid >>> 0), (st: Stat) => (d().putStat(out, st, 0), 0)),
      link: (slot: number, dir: number, n: number, nl: number, target: number) =>
        d().call(slot, () => d().backend.link(dir, d().bytes(n, nl), target), () => 0),
      renameat: (slot: number, od: number, on: number, onl: number, nd: number, nn: number, nnl: number) =>
        d().call(slot, () => d().backend.renameat(od, d().bytes(on, onl), nd, d().bytes(nn, nnl)), () => 0),
      rename: (slot: number, node: number, nd: number, n: number, nl: number) =>
        d().call(slot, () => d().backend.rename(node, nd, d().bytes(n, nl)), () => 0),
      unlinkat: (slot: number, dir: number, n: number, nl: number, flags: number) =>
        d().call(slot, () => d().backend.unlinkat(dir, d().bytes(n, nl), flags >>> 0), () => 0),
      remove: (slot: number, node: number) => d().call(slot, () => d().backend.remove(node), () => 0),
      fsync: (slot: number, fh: number, datasync: number) =>
        d().call(slot, () => (fh & XATTR_FH ? 0 : d().backend.fsync(fh, datasync !== 0)), () => 0),
      statfs: (slot: number, node: number, out: number) =>
        d().call(slot, () => d().backend.statfs(node), (s: StatFs) => (d().putStatfs(out, s), 0)),
      xattrwalk: (slot: number, node: number, n: number, nl: number, outFh: number) => d().xattrwalk(slot, node, n, nl, outFh),
      xattrcreate: (slot: number, node: number, n: number, nl: number, size: number, flags: number, outFh: number) => {
        const s = d().sessionOf(slot);
        if (!d().takeXattr(s, size)) return ENOSPC;
        const h = XATTR_FH | d().nextXattr++;
        d().xattrs.set(h, { node, name: d().bytes(n, nl).slice(), flags, data: new Uint8Array(size), extent: 0, write: true, session: s });
        d().dv.setUint32(outFh, h, true);
        return 0;
      },
      lock: (slot: number, fh: number, ino: number, type: number, flags: number, start: number, length: number, procId: number, cid: number, cidl: number, out: number) => {
        const st = d().locks.lock(ino, fh, type, start, length, procId, d().bytes(cid, cidl));
        d().dv.setUint32(out, st === LOCK_BLOCKED ? 1 : 0, true);
        return 0;
      },
      getlock: (slot: number, fh: number, ino: number, type: number, start: number, length: number, procId: number, cid: number, cidl: number, out: number) =>
        d().getlock(fh, ino, type, start, length, procId, cid, cidl, out),
      close: (slot: number, fh: number) => d().close(slot, fh),
      forget: (node: number) => { try { d().backend.forget(node); } catch { /* a forget cannot fail the guest */ } },
      cancel: (_slot: number) => { /* backends finish what they started; the core suppresses or answers */ },
    };
    return { device, backend };
  }

  private readSetattr(p: number): SetAttr {
    const dv = this.dv;
    const valid = dv.getUint32(p, true);
    const a: SetAttr = {};
    if (valid & 0x1) a.mode = dv.getUint32(p + 4, true);
    if (valid & 0x2) a.uid = dv.getUint32(p + 8, true);
    if (valid & 0x4) a.gid = dv.getUint32(p + 12, true);
    if (valid & 0x8) a.size = this.getU64(p + 16);
    const now = (): [number, number] => { const ms = Date.now(); return [Math.floor(ms / 1000), (ms % 1000) * 1e6]; };
    if (valid & 0x10) a.atime = valid & 0x80 ? this.timespec(p + 24) : now();
    if (valid & 0x20) a.mtime = valid & 0x100 ? this.timespec(p + 40) : now();
    if ((valid & 0x40) && !(valid & 0x7f & ~0x40)) a.ctime = true;
    return a;
  }

  /** A guest-given time: nanoseconds must be below 10^9, as utimensat(2) requires of every
   *  backend (checked here once, so no backend stores an impossible time). */
  private timespec(p: number): [number, number] {
    const nsec = this.getU64(p + 8);
    if (nsec >= 1e9) throw new P9Error(EINVAL, 'virtio9p: tv_nsec out of range');
    return [this.getU64(p), nsec];
  }

  private putStatfs(out: number, s: StatFs): void {
    this.dv.setUint32(out, s.type, true);
    this.dv.setUint32(out + 4, s.bsize, true);
    this.putU64(out + 8, s.blocks); this.putU64(out + 16, s.bfree); this.putU64(out + 24, s.bavail);
    this.putU64(out + 32, s.files); this.putU64(out + 40, s.ffree); this.putU64(out + 48, s.fsid);
    this.dv.setUint32(out + 56, s.namelen, true);
  }

  private read(slot: number, fh: number, off: number, iov: number, cnt: number, outCount: number): number {
    const dst = this.iovs(iov, cnt);
    if (fh & XATTR_FH) {
      const x = this.xattrs.get(fh);
      if (!x || x.write) return EBADF;
      let n = 0;
      let o = off;
      for (const b of dst) {
        if (o >= x.data.length) break;
        const part = x.data.subarray(o, Math.min(x.data.length, o + b.length));
        b.set(part); n += part.length; o += part.length;
      }
      this.dv.setUint32(outCount, n, true);
      return 0;
    }
    return this.call(slot, () => this.backend.read(fh, off, dst), (n: number) => (this.dv.setUint32(outCount, n, true), 0));
  }

  private write(slot: number, fh: number, off: number, iov: number, cnt: number, outCount: number): number {
    const src = this.iovs(iov, cnt);
    if (fh & XATTR_FH) {
      const x = this.xattrs.get(fh);
      if (!x || !x.write) return EBADF;
      let n = 0;
      for (const b of src) n += b.length;
      if (off + n > x.data.length) return ENOSPC;
      let o = off;
      for (const b of src) { x.data.set(b, o); o += b.length; }
      x.extent = Math.max(x.extent, o);
      this.dv.setUint32(outCount, n, true);
      return 0;
    }
    return this.call(slot, () => this.backend.write(fh, off, src), (n: number) => (this.dv.setUint32(outCount, n, true), 0));
  }

  private readdir(slot: number, fh: number, cookie: number, nameBuf: number): number {
    const ex = this.ex;
    const dev = this; // this.u8, not a copy: an asynchronous readdir may push after the memory grew
    const sink: DirSink = {
      push(ino, next, dtype, name) {
        if (name.length > 4096) return true; // not representable here: skip it
        dev.u8.set(name, nameBuf);
        return ex.dirent(slot, ino, next, dtype, name.length) === 1;
      },
    };
    return this.call(slot, () => this.backend.readdir(fh, cookie, sink), () => 0);
  }

  private xattrwalk(slot: number, node: number, n: number, nl: number, outFh: number): number {
    const name = this.bytes(n, nl);
    const s = this.sessionOf(slot);
    const done = (data: Uint8Array) => {
      if (!this.takeXattr(s, data.length)) return ENOMEM;
      const h = XATTR_FH | this.nextXattr++;
      this.xattrs.set(h, { node, name: new Uint8Array(0), flags: 0, data, extent: data.length, write: false, session: s });
      this.dv.setUint32(outFh, h, true);
      this.putU64(outFh + 8, data.length);
      return 0;
    };
    if (nl === 0) {
      return this.call(slot, () => this.backend.listxattr(node), (names: Uint8Array[]) => {
        let len = 0;
        for (const x of names) len += x.length + 1;
        const data = new Uint8Array(len);
        let o = 0;
        for (const x of names) { data.set(x, o); o += x.length + 1; }
        return done(data);
      });
    }
    return this.call(slot, () => this.backend.getxattr(node, name), (v: Uint8Array) => done(v.slice()));
  }

  private getlock(fh: number, ino: number, type: number, start: number, length: number, procId: number, cid: number, cidl: number, out: number): number {
    const c = this.locks.test(ino, fh, type, start, length);
    const dv = this.dv;
    const res = c ?? { type: 2, start, length, procId, clientId: this.bytes(cid, cidl).slice() };
    dv.setUint32(out, res.type, true);
    dv.setUint32(out + 4, res.procId, true);
    this.putU64(out + 8, res.start);
    this.putU64(out + 16, res.length);
    const id = res.clientId.subarray(0, 256);
    dv.setUint32(out + 24, id.length, true);
    this.u8.set(id, out + 32);
    return 0;
  }

  private close(slot: number, fh: number): number {
    this.locks.release(fh);
    if (fh & XATTR_FH) {
      const x = this.xattrs.get(fh);
      if (!x) return EBADF;
      this.xattrs.delete(fh);
      this.giveXattr(x.session, x.data.length);
      if (!x.write) return 0;
      if (x.data.length === 0) return this.call(slot, () => this.backend.removexattr(x.node, x.name), () => 0);
      if (x.extent !== x.data.length) return EINVAL;
      return this.call(slot, () => this.backend.setxattr(x.node, x.name, x.data, x.flags), () => 0);
    }
    const s = this.fhSession.get(fh);
    if (s !== undefined) { this.fhSession.delete(fh); this.giveOpen(s); }
    return this.call(slot, () => this.backend.close(fh), () => 0);
  }
}


/** Strict reading of a snapshot's framing: every length is checked against the bytes. */
function parseSnapshot(snap: Uint8Array): { header: SnapshotHeader; pagesAt: number; fidsAt: number; backendAt: number } {
  const bad = (why: string): never => { throw new Error(`virtio9p: not a device snapshot (${why})`); };
  if (!(snap instanceof Uint8Array) || snap.length < 12) bad('too short');
  const dv = new DataView(snap.buffer, snap.byteOffset, snap.byteLength);
  if (dv.getUint32(0, true) !== SNAP_MAGIC) bad('bad magic');
  if (dv.getUint32(4, true) !== SNAP_VERSION) bad(`format version ${dv.getUint32(4, true)}, this build reads ${SNAP_VERSION}`);
  const jl = dv.getUint32(8, true);
  if (12 + jl > snap.length) bad('truncated header');
  let header: SnapshotHeader;
  try { header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(snap.subarray(12, 12 + jl))); } catch { return bad('corrupt header'); }
  const pagesAt = 12 + jl;
  if (!Number.isInteger(header.pages) || !Number.isInteger(header.backendBytes) || header.pages < 0 || header.backendBytes < 0) bad('corrupt header');
  if (!Array.isArray(header.fidTables) || header.fidTables.some((t) => !Number.isInteger(t?.session) || !Number.isInteger(t?.bytes) || t.session < 0 || t.bytes <= 0)) bad('corrupt header');
  const fidsAt = pagesAt + header.pages * (4 + SNAP_PAGE);
  const backendAt = fidsAt + header.fidTables.reduce((n, t) => n + t.bytes, 0);
  if (backendAt + header.backendBytes !== snap.length) bad('truncated or trailing bytes');
  return { header, pagesAt, fidsAt, backendAt };
}
