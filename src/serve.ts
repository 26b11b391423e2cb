/**
 * `virtio9p serve`: the same wasm server core speaking plain size-prefixed 9P2000.L over
 * stream sockets (Unix, TCP, or an inherited descriptor), so real 9P clients — diod's tools,
 * the Linux kernel with trans=fd/unix/tcp — can be pointed at it. Each connection is a session
 * of its own (fids, msize); requests of one connection are submitted as they arrive and may
 * complete out of order, as the Linux client expects.
 */
import net from 'node:net';
import fs from 'node:fs';
import { Virtio9pDevice, DEFAULT_MAX_OPEN, DEFAULT_MAX_XATTR_BYTES } from './device.js';
import type { Backend } from './backends/backend.js';
import { Arena } from './arena.js';
import { EAGAIN } from './errno.js';
import { formatTcp, type ListenSpec } from './listen.js';

export { parseListen, type ListenSpec } from './listen.js';

export interface ServeOptions {
  backend: Backend;
  listen: ListenSpec;
  /** largest msize offered (default 1 MiB + 4 KiB; the core's own maximum is 4 MiB) */
  msize?: number;
  /** bytes of buffer space shared by all connections (default 256 MiB) */
  bufferSize?: number;
  /** the most of it one connection may hold (requests received + replies not yet sent);
   *  default bufferSize / maxConnections, and never below 2 × (msize + 16 KiB). A client that
   *  stops reading its replies stops being read at this point, and the others keep their share. */
  connectionBuffer?: number;
  /** connections served at once (default 32, at most 63); more are closed at once */
  maxConnections?: number;
  /** ms a connection may go without an attached fid (from its connect or its last Tversion)
   *  before it is closed; default 30 000, 0 = never */
  attachTimeout?: number;
  /** ms a connection may stay silent with nothing in flight before it is closed;
   *  default 0 = never (kernel mounts stay idle for hours) */
  idleTimeout?: number;
  /** ms one frame may take to arrive once its first byte did, and ms a client may take none
   *  of its waiting replies, before the connection is closed; default 30 000 */
  frameTimeout?: number;
  /** per session: open files and directories (EMFILE beyond; default: a quarter of the
   *  process's open-file limit, at most 65536: a host backend holds a descriptor per open file,
   *  so no one client can take them all, while a cache=loose guest, which keeps every file it
   *  wrote open, still gets thousands) */
  maxOpenPerSession?: number;
  /** per session: bytes of xattr buffers (ENOSPC at Txattrcreate beyond; default 1 MiB) */
  maxXattrBytesPerSession?: number;
  /** fids one connection may hold (DeviceOptions.maxFids; default 1,048,576): past it EMFILE */
  maxFids?: number;
  log?: (line: string) => void;
}

/** Defaults of the server's bounds (README "Limits"). */
export const SERVE_DEFAULTS = {
  maxConnections: 32, attachTimeout: 30_000, idleTimeout: 0, frameTimeout: 30_000,
  maxOpenPerSession: DEFAULT_MAX_OPEN, maxXattrBytesPerSession: DEFAULT_MAX_XATTR_BYTES,
} as const;
/** The core's stream sessions (64 minus the virtqueue's). */
const MAX_STREAM_SESSIONS = 63;

const P9_TVERSION = 100, P9_TREAD = 116, P9_TREADDIR = 40, P9_RVERSION = 101, P9_RATTACH = 105;
const SMALL_REPLY = 16384;

/** A request being received or waiting to be submitted: its bytes go straight into the
 *  core's buffer window (no intermediate copies). */
interface Frame { req: number; size: number; filled: number }

interface Conn {
  socket: net.Socket;
  session: number;
  /** the first bytes of the next frame's size field, when a chunk split it */
  head: Buffer;
  /** the frame being received */
  cur: Frame | null;
  /** complete frames waiting for a free request slot or reply space */
  backlog: Frame[];
  /** a chunk (rest) waiting for buffer space; the socket is paused meanwhile */
  stalled: Buffer | null;
  inflight: number;
  /** buffer bytes this connection holds (its quota is connectionBuffer) */
  inUse: number;
  closed: boolean;
  /** a Tattach succeeded since the connection opened or last sent Tversion */
  attached: boolean;
  /** closes the connection when it goes without an attach for attachTimeout */
  attachTimer: NodeJS.Timeout | null;
  /** closes the connection when it stays silent for idleTimeout with nothing in flight */
  idleTimer: NodeJS.Timeout | null;
  /** running while a frame is half received (frameTimeout) */
  frameTimer: NodeJS.Timeout | null;
  /** running while replies wait for the client to read them (frameTimeout) */
  sendTimer: NodeJS.Timeout | null;
}

export class P9Server {
  readonly device: Virtio9pDevice;
  private server: net.Server;
  private conns = new Set<Conn>();
  private arena: Arena;
  private msize: number;
  private quota: number;
  private maxConns: number;
  private attachTimeout: number;
  private idleTimeout: number;
  private frameTimeout: number;
  /** connections refused in the current episode of being full (logged once per episode) */
  private refused = 0;
  private log: (line: string) => void;
  /** connections waiting for slots or buffers, retried after any reply */
  private starved = new Set<Conn>();
  /** where we listen, as a --listen value */
  address = '';

  private constructor(device: Virtio9pDevice, private opts: ServeOptions) {
    this.device = device;
    this.arena = new Arena(0, device.guestSize);
    this.msize = opts.msize ?? (1 << 20) + 4096;
    const D = SERVE_DEFAULTS;
    this.maxConns = opts.maxConnections ?? D.maxConnections;
    this.attachTimeout = opts.attachTimeout ?? D.attachTimeout;
    this.idleTimeout = opts.idleTimeout ?? D.idleTimeout;
    this.frameTimeout = opts.frameTimeout ?? D.frameTimeout;
    // never below one largest request plus one largest reply, or such a request would wait forever
    this.quota = Math.max(opts.connectionBuffer ?? Math.floor(device.guestSize / this.maxConns), 2 * (this.msize + SMALL_REPLY));
    this.log = opts.log ?? (() => {});
    device.onLimit = (session, what) => this.log(what === 'open'
      ? `session ${session}: at its limit of open files (${opts.maxOpenPerSession ?? D.maxOpenPerSession}); further opens get EMFILE`
      : `session ${session}: at its limit of xattr buffer bytes (${opts.maxXattrBytesPerSession ?? D.maxXattrBytesPerSession}); further xattr buffers get ENOSPC/ENOMEM`);
    this.server = net.createServer({ noDelay: true } as net.ServerOpts, (s) => this.accept(s));
  }

  static async start(opts: ServeOptions): Promise<P9Server> {
    checkServeOptions(opts);
    const device = await Virtio9pDevice.create({
      backend: opts.backend, guestMemorySize: opts.bufferSize ?? 256 << 20, maxFids: opts.maxFids,
      maxOpenPerSession: opts.maxOpenPerSession ?? defaultOpenPerSession(),
      maxXattrBytesPerSession: opts.maxXattrBytesPerSession,
    });
    const srv = new P9Server(device, opts);
    await srv.listen();
    return srv;
  }

  private listen(): Promise<void> {
    const l = this.opts.listen;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      const ok = () => {
        this.server.off('error', reject);
        const a = this.server.address();
        if (l.kind === 'unix') this.address = `unix:${l.path}`;
        else if (l.kind === 'fd') this.address = `fd:${l.fd}`;
        else if (a && typeof a === 'object') this.address = formatTcp(a.address, a.port);
        resolve();
      };
      if (l.kind === 'unix') this.server.listen(l.path, ok);
      else if (l.kind === 'tcp') this.server.listen(l.port, l.host === '' ? undefined : l.host, ok);
      else this.server.listen({ fd: l.fd }, ok);
    });
  }

  /** Serve one already-connected stream (a socketpair end, an inherited descriptor, a pipe pair). */
  serveStream(socket: net.Socket): void { this.accept(socket); }

  get connections(): number { return this.conns.size; }
  /** request and reply buffers in use (0 when idle) */
  get buffersInUse(): number { return this.arena.inUse; }
  /** bytes of request and reply buffers in use */
  get bufferBytesInUse(): number { return this.arena.bytesInUse; }

  private accept(socket: net.Socket): void {
    if (socket.setNoDelay) socket.setNoDelay(true);
    let session = -1;
    let why = `${this.conns.size} connections open (the limit)`;
    if (this.conns.size < this.maxConns) {
      try { session = this.device.openSession(); } catch (e) { why = (e as Error).message; }
    }
    if (session < 0) {
      // one log line per episode of being full, not one per refused connection
      if (this.refused++ === 0) this.log(`refusing connections: ${why}`);
      socket.destroy();
      return;
    }
    if (this.refused) {
      this.log(`accepting connections again (${this.refused} refused meanwhile)`);
      this.refused = 0;
    }
    const c: Conn = {
      socket, session, head: Buffer.alloc(0), cur: null, backlog: [], stalled: null, inflight: 0, inUse: 0, closed: false,
      attached: false, attachTimer: null, idleTimer: null, frameTimer: null, sendTimer: null,
    };
    this.conns.add(c);
    socket.on('data', (chunk: Buffer) => this.onData(c, chunk));
    socket.on('error', () => this.drop(c));
    socket.on('close', () => this.drop(c));
    socket.on('drain', () => this.clearTimer(c, 'sendTimer'));
    this.armAttach(c);
    this.armIdle(c);
  }

  // ── timeouts: each closes the connection with one log line ──

  private clearTimer(c: Conn, k: 'attachTimer' | 'idleTimer' | 'frameTimer' | 'sendTimer'): void {
    const t = c[k];
    if (t) { clearTimeout(t); c[k] = null; }
  }

  private expire(c: Conn, why: string): void {
    if (c.closed) return;
    this.log(`session ${c.session}: ${why}, closing`);
    this.drop(c);
  }

  private armAttach(c: Conn): void {
    this.clearTimer(c, 'attachTimer');
    if (this.attachTimeout > 0 && !c.attached && !c.closed) {
      c.attachTimer = setTimeout(() => this.expire(c, `no attach within ${this.attachTimeout} ms`), this.attachTimeout);
      c.attachTimer.unref();
    }
  }

  /** (Re)start the idle clock: only while nothing is in flight, received or waiting to be sent. */
  private armIdle(c: Conn): void {
    this.clearTimer(c, 'idleTimer');
    if (this.idleTimeout > 0 && !c.closed && c.inflight === 0 && c.inUse === 0 && !c.cur && c.head.length === 0) {
      c.idleTimer = setTimeout(() => this.expire(c, `idle for ${this.idleTimeout} ms`), this.idleTimeout);
      c.idleTimer.unref();
    }
  }

  private drop(c: Conn): void {
    if (c.closed) return;
    c.closed = true;
    for (const k of ['attachTimer', 'idleTimer', 'frameTimer', 'sendTimer'] as const) this.clearTimer(c, k);
    this.conns.delete(c);
    this.starved.delete(c);
    if (c.cur) this.arena.release(c.cur.req);
    for (const f of c.backlog) this.arena.release(f.req);
    c.cur = null;
    c.backlog = [];
    c.stalled = null;
    // Pending requests complete silently (their buffers are released by the reply callback).
    this.device.closeSession(c.session);
    c.socket.destroy();
  }

  private onData(c: Conn, chunk: Buffer): void {
    this.clearTimer(c, 'idleTimer');
    let off = 0;
    const ram = this.device.ram;
    while (off < chunk.length && !c.closed) {
      if (!c.cur) {
        // the 4-byte size field, possibly split across chunks
        let size: number;
        if (c.head.length === 0 && chunk.length - off >= 4) { size = chunk.readUInt32LE(off); off += 4; }
        else {
          const need = 4 - c.head.length;
          c.head = Buffer.concat([c.head, chunk.subarray(off, off + need)]);
          off += Math.min(need, chunk.length - off);
          if (c.head.length < 4) return;
          size = c.head.readUInt32LE(0);
          c.head = Buffer.alloc(0);
        }
        if (size < 7 || size > this.msize + 64) {
          this.log(`session ${c.session}: bad message size ${size}, closing`);
          this.drop(c);
          return;
        }
        const req = c.inUse + size > this.quota ? -1 : this.arena.alloc(size);
        if (req < 0) {
          // no room: hold the rest of this chunk (size field included) and stop reading
          const rest = Buffer.alloc(4 + chunk.length - off);
          rest.writeUInt32LE(size, 0);
          chunk.copy(rest, 4, off);
          c.stalled = rest;
          c.socket.pause();
          this.starved.add(c);
          // waiting for our buffers is not the client's slowness
          this.clearTimer(c, 'frameTimer');
          return;
        }
        ram[req] = size & 0xff; ram[req + 1] = (size >>> 8) & 0xff; ram[req + 2] = (size >>> 16) & 0xff; ram[req + 3] = size >>> 24;
        c.inUse += size;
        c.cur = { req, size, filled: 4 };
      }
      const f = c.cur;
      const n = Math.min(f.size - f.filled, chunk.length - off);
      ram.set(chunk.subarray(off, off + n), f.req + f.filled);
      f.filled += n;
      off += n;
      if (f.filled === f.size) { c.backlog.push(f); c.cur = null; }
    }
    if (c.closed) return;
    // A frame started and not finished: it must finish within frameTimeout (slowloris).
    if ((c.cur || c.head.length) && !c.stalled) {
      if (!c.frameTimer && this.frameTimeout > 0) {
        c.frameTimer = setTimeout(() => this.expire(c, `a request frame took over ${this.frameTimeout} ms to arrive`), this.frameTimeout);
        c.frameTimer.unref();
      }
    } else this.clearTimer(c, 'frameTimer');
    this.pump(c);
  }

  /** Submit the connection's complete frames, as far as slots and reply space allow. */
  private pump(c: Conn): void {
    while (c.backlog.length && !c.closed) {
      const ram = this.device.ram; // afresh: a submit may grow the memory (fid tables)
      const f = c.backlog[0];
      const type = ram[f.req + 4];
      const u32 = (o: number) => (ram[f.req + o] | (ram[f.req + o + 1] << 8) | (ram[f.req + o + 2] << 16) | (ram[f.req + o + 3] << 24)) >>> 0;
      if (type === P9_TVERSION && f.size >= 11 && u32(7) > this.msize) {
        const m = this.msize; // offer at most our --msize
        ram[f.req + 7] = m & 0xff; ram[f.req + 8] = (m >>> 8) & 0xff; ram[f.req + 9] = (m >>> 16) & 0xff; ram[f.req + 10] = m >>> 24;
      }
      let cap = SMALL_REPLY;
      if ((type === P9_TREAD || type === P9_TREADDIR) && f.size >= 23) cap = Math.max(cap, Math.min(11 + u32(19), this.msize));
      const rep = c.inUse + cap > this.quota ? -1 : this.arena.alloc(cap);
      if (rep < 0) { this.starved.add(c); return; }
      c.inUse += cap;
      c.inflight++;
      const r = this.device.submit(c.session, f.req, f.size, rep, cap, (len) => this.onReply(c, f, rep, cap, len));
      if (r === EAGAIN) {
        c.inflight--;
        this.arena.release(rep);
        c.inUse -= cap;
        this.starved.add(c);
        return;
      }
      c.backlog.shift();
      if (r !== 0) {
        c.inflight--;
        this.arena.release(f.req);
        this.arena.release(rep);
        this.log(`session ${c.session}: request rejected (${r}), closing`);
        this.drop(c);
        return;
      }
    }
    if (c.stalled && !c.closed) {
      const rest = c.stalled;
      c.stalled = null;
      c.socket.resume();
      this.onData(c, rest);
    }
  }

  private onReply(c: Conn, f: Frame, rep: number, cap: number, len: number): void {
    c.inflight--;
    this.arena.release(f.req);
    c.inUse -= f.size;
    if (len > 0 && !c.closed) {
      const type = this.device.ram[rep + 4];
      if (type === P9_RATTACH && !c.attached) { c.attached = true; this.clearTimer(c, 'attachTimer'); }
      else if (type === P9_RVERSION) { c.attached = false; this.armAttach(c); }
      // straight from the reply buffer; it is released once the socket has taken the bytes
      const flushed = c.socket.write(this.device.ram.subarray(rep, rep + len), () => this.releaseReply(c, rep, cap));
      if (!flushed && !c.sendTimer) this.armSend(c);
    } else { this.arena.release(rep); c.inUse -= cap; this.armIdle(c); }
    if (this.starved.size) {
      const waiting = [...this.starved];
      this.starved.clear();
      queueMicrotask(() => { for (const w of waiting) this.pump(w); });
    }
  }

  /** Replies wait in the socket: the client must take some within frameTimeout. */
  private armSend(c: Conn): void {
    this.clearTimer(c, 'sendTimer');
    if (this.frameTimeout > 0 && !c.closed) {
      c.sendTimer = setTimeout(() => this.expire(c, `replies unread for ${this.frameTimeout} ms`), this.frameTimeout);
      c.sendTimer.unref();
    }
  }

  private releaseReply(c: Conn, rep: number, cap: number): void {
    this.arena.release(rep);
    c.inUse -= cap;
    // the client took bytes: progress restarts its clock (a slow reader is not a dead one)
    if (c.sendTimer) { if (c.socket.writableLength > 0) this.armSend(c); else this.clearTimer(c, 'sendTimer'); }
    this.armIdle(c);
    if (this.starved.size) {
      const waiting = [...this.starved];
      this.starved.clear();
      for (const w of waiting) this.pump(w);
    }
  }

  /** Stop listening, close every connection, remove a Unix socket file. */
  async close(): Promise<void> {
    for (const c of [...this.conns]) this.drop(c);
    await new Promise<void>((r) => this.server.close(() => r()));
    if (this.opts.listen.kind === 'unix') fs.rmSync(this.opts.listen.path, { force: true });
  }
}

/** Validate ServeOptions' bounds once, at the boundary (RangeError with the option's name). */
export function checkServeOptions(o: ServeOptions): void {
  const int = (name: keyof ServeOptions, min: number, max: number) => {
    const v = o[name];
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)) {
      throw new RangeError(`virtio9p: ${name} must be an integer in ${min}..${max}`);
    }
  };
  int('maxConnections', 1, MAX_STREAM_SESSIONS);
  for (const k of ['attachTimeout', 'idleTimeout', 'frameTimeout'] as const) int(k, 0, 2 ** 31 - 1);
  int('maxOpenPerSession', 1, 2 ** 30);
  int('maxXattrBytesPerSession', 0, 2 ** 40);
}

/** A quarter of this process's open-file limit (RLIMIT_NOFILE, soft), within 64..65536. */
function defaultOpenPerSession(): number {
  let limit = 1024;
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    if (m) limit = m[1] === 'unlimited' ? 1 << 20 : Number(m[1]);
  } catch { /* not Linux: keep the common default */ }
  return Math.max(64, Math.min(65536, Math.floor(limit / 4)));
}
