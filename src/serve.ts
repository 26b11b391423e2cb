/**
 * `virtio9p serve`: the same wasm server core speaking plain size-prefixed 9P2000.L over
 * stream sockets (Unix, TCP, or an inherited descriptor), so real 9P clients — diod's tools,
 * the Linux kernel with trans=fd/unix/tcp — can be pointed at it. Each connection is a session
 * of its own (fids, msize); requests of one connection are submitted as they arrive and may
 * complete out of order, as the Linux client expects.
 */
import net from 'node:net';
import fs from 'node:fs';
import { Virtio9pDevice } from './device.js';
import type { Backend } from './backends/backend.js';
import { Arena } from './arena.js';
import { EAGAIN } from './errno.js';

export type ListenSpec = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number } | { kind: 'fd'; fd: number };

export function parseListen(s: string): ListenSpec {
  if (s.startsWith('unix:') && s.length > 5) return { kind: 'unix', path: s.slice(5) };
  const tcp = /^tcp:(.+):(\d+)$/.exec(s);
  if (tcp) {
    const port = Number(tcp[2]);
    if (port > 65535) throw new RangeError(`bad port in '${s}'`);
    return { kind: 'tcp', host: tcp[1].replace(/^\[|\]$/g, ''), port };
  }
  const fd = /^fd:(\d+)$/.exec(s);
  if (fd) return { kind: 'fd', fd: Number(fd[1]) };
  throw new RangeError(`bad --listen '${s}' (want unix:PATH, tcp:HOST:PORT or fd:N)`);
}

export interface ServeOptions {
  backend: Backend;
  listen: ListenSpec;
  /** largest msize offered (default 1 MiB + 4 KiB; the core's own maximum is 4 MiB) */
  msize?: number;
  /** bytes of buffer space shared by all connections (default 256 MiB) */
  bufferSize?: number;
  /** the most of it one connection may hold (requests received + replies not yet sent);
   *  default max(bufferSize / 8, 4 × (msize + 16 KiB)). A client that stops reading its
   *  replies stops being read at this point, and the others keep their share. */
  connectionBuffer?: number;
  /** fids one connection may hold (DeviceOptions.maxFids; default 1,048,576): past it EMFILE */
  maxFids?: number;
  log?: (line: string) => void;
}

const P9_TVERSION = 100, P9_TREAD = 116, P9_TREADDIR = 40;
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
}

export class P9Server {
  readonly device: Virtio9pDevice;
  private server: net.Server;
  private conns = new Set<Conn>();
  private arena: Arena;
  private msize: number;
  private quota: number;
  private log: (line: string) => void;
  /** connections waiting for slots or buffers, retried after any reply */
  private starved = new Set<Conn>();
  /** where we listen, as a --listen value */
  address = '';

  private constructor(device: Virtio9pDevice, private opts: ServeOptions) {
    this.device = device;
    this.arena = new Arena(0, device.guestSize);
    this.msize = opts.msize ?? (1 << 20) + 4096;
    this.quota = opts.connectionBuffer ?? Math.max(Math.floor(device.guestSize / 8), 4 * (this.msize + SMALL_REPLY));
    this.log = opts.log ?? (() => {});
    this.server = net.createServer({ noDelay: true } as net.ServerOpts, (s) => this.accept(s));
  }

  static async start(opts: ServeOptions): Promise<P9Server> {
    const device = await Virtio9pDevice.create({ backend: opts.backend, guestMemorySize: opts.bufferSize ?? 256 << 20, maxFids: opts.maxFids });
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
        else if (a && typeof a === 'object') this.address = `tcp:${a.address}:${a.port}`;
        resolve();
      };
      if (l.kind === 'unix') this.server.listen(l.path, ok);
      else if (l.kind === 'tcp') this.server.listen(l.port, l.host, ok);
      else this.server.listen({ fd: l.fd }, ok);
    });
  }

  /** Serve one already-connected stream (a socketpair end, an inherited descriptor, a pipe pair). */
  serveStream(socket: net.Socket): void { this.accept(socket); }

  get connections(): number { return this.conns.size; }
  /** request and reply buffers in use (0 when idle) */
  get buffersInUse(): number { return this.arena.inUse; }

  private accept(socket: net.Socket): void {
    if (socket.setNoDelay) socket.setNoDelay(true);
    let session: number;
    try { session = this.device.openSession(); } catch (e) {
      this.log(`refusing a connection: ${(e as Error).message}`);
      socket.destroy();
      return;
    }
    const c: Conn = { socket, session, head: Buffer.alloc(0), cur: null, backlog: [], stalled: null, inflight: 0, inUse: 0, closed: false };
    this.conns.add(c);
    socket.on('data', (chunk: Buffer) => this.onData(c, chunk));
    socket.on('error', () => this.drop(c));
    socket.on('close', () => this.drop(c));
  }

  private drop(c: Conn): void {
    if (c.closed) return;
    c.closed = true;
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
      // straight from the reply buffer; it is released once the socket has taken the bytes
      c.socket.write(this.device.ram.subarray(rep, rep + len), () => this.releaseReply(c, rep, cap));
    } else { this.arena.release(rep); c.inUse -= cap; }
    if (this.starved.size) {
      const waiting = [...this.starved];
      this.starved.clear();
      queueMicrotask(() => { for (const w of waiting) this.pump(w); });
    }
  }

  private releaseReply(c: Conn, rep: number, cap: number): void {
    this.arena.release(rep);
    c.inUse -= cap;
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
