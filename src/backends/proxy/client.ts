/**
 * ProxyClient: talks the proxy protocol to one or more virtfs-proxy-helper processes.
 *
 * - A *slot* is one helper connection (the helper serves exactly one connection and handles
 *   requests strictly one at a time, replies carry no tag). Each connection has at most one
 *   request in flight; further requests wait in one FIFO queue shared by all slots and go to
 *   the first idle connection. With N slots, N helper calls run in parallel, so one slow call
 *   (a large directory, a stalled disk, a stopped helper) stalls nothing else.
 * - I/O never blocks the event loop: the socket is non-blocking, readiness comes from a libuv
 *   poll handle (native/fdpass.c); replies are read with recvmsg(MSG_CMSG_CLOEXEC) so an
 *   SCM_RIGHTS descriptor is never lost. Bytes and descriptors are accumulated and parsed
 *   strictly for the shape the in-flight request expects.
 * - Loss: EOF, a socket error, a malformed reply (ProxyProtocolError), unsolicited bytes or fds,
 *   or no reply within `deadlineMs` → the connection is dropped (its helper SIGKILLed when we
 *   launched it), the in-flight request gets -EIO; queued requests stay queued while another
 *   connection is up, else they get -EIO, and new requests get -EIO at once while everything is
 *   down. Every slot reconnects (relaunches) in the background with backoff.
 * - Descriptors: a received fd belongs to the caller from the moment its request resolves;
 *   unexpected fds are closed here; fds still in a dropped connection are closed by the kernel.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fdpass, POLL_READABLE, POLL_WRITABLE, MSG_CTRUNC, type PollHandle } from './native.js';
import {
  encodeRequest, replyShape, decodeHeader, checkErrno, ProxyProtocolError, ProxyEncodeError,
  FD_VALID, HEADER_SIZE, PROXY_MAX_IO_SZ, T_ERROR, type RequestName, type Value,
} from './protocol.js';

const EIO = 5, EAGAIN = 11, ENFILE = 23;

export const DEFAULT_HELPER = '/usr/lib/qemu/virtfs-proxy-helper';
export const DEFAULT_DEADLINE_MS = 10000;

/** Where a helper connection comes from. */
export type ProxyTarget = { socket: string } | { fd: number };

export interface ClientOptions {
  /** Per-request deadline (ms) before the helper is declared hung. Default 10 s. */
  deadlineMs?: number;
  /** Reconnect backoff bounds (ms). Default 50 .. 2000. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

export interface LaunchSpec {
  /** the export directory (the helper chroots into it) */
  export: string;
  /** the helper binary */
  helper?: string;
  /** 'fd' (default): `-n -p DIR -f 3` over a socketpair; 'socket': `-n -p DIR -s PATH -u 0 -g 0` */
  mode?: 'fd' | 'socket';
}

/** Events for tests and logging. */
export interface ClientEvents {
  onLoss?: (slot: number, reason: string) => void;
  onUp?: (slot: number, pid: number | undefined) => void;
}

interface Pending {
  name: RequestName;
  frame: Uint8Array;
  shape: 'fd' | 'status' | 'data';
  decode: ((body: Uint8Array) => unknown) | undefined;
  resolve: (v: unknown) => void;
}

/** One connected socket to one helper, with at most one request in flight. */
class Conn {
  private readonly nat = fdpass();
  private poll: PollHandle | null;
  private cur: Pending | null = null;
  private rbuf = new Uint8Array(HEADER_SIZE + PROXY_MAX_IO_SZ + 64);
  private rlen = 0;
  private rfds: number[] = [];
  private wbuf: Uint8Array | null = null;
  private timer: NodeJS.Timeout | null = null;
  alive = true;
  /** replies completed on this connection */
  served = 0;

  constructor(
    readonly fd: number,
    private readonly deadlineMs: number,
    private readonly onIdle: (c: Conn) => void,
    private readonly onDead: (c: Conn, reason: string) => void,
  ) {
    this.poll = this.nat.pollStart(fd, POLL_READABLE, (status, ev) => this.onEvents(status, ev));
    this.nat.pollRef(this.poll, false);
  }

  get idle(): boolean { return this.alive && this.cur === null; }

  start(p: Pending): void {
    this.cur = p;
    this.nat.pollRef(this.poll!, true);
    this.timer = setTimeout(() => this.fail(`no reply to ${p.name} within ${this.deadlineMs} ms`), this.deadlineMs);
    this.wbuf = p.frame;
    this.flush();
  }

  private flush(): void {
    while (this.alive && this.wbuf !== null) {
      const n = this.nat.send(this.fd, this.wbuf);
      if (n === -EAGAIN) { this.nat.pollUpdate(this.poll!, POLL_READABLE | POLL_WRITABLE); return; }
      if (n < 0) { this.fail(`send: errno ${-n}`); return; }
      this.wbuf = n >= this.wbuf.length ? null : this.wbuf.subarray(n);
    }
    if (this.alive) this.nat.pollUpdate(this.poll!, POLL_READABLE);
  }

  private onEvents(status: number, ev: number): void {
    if (!this.alive) return;
    if (status < 0) { this.fail(`poll: errno ${-status}`); return; }
    if (ev & POLL_WRITABLE) this.flush();
    if (this.alive && (ev & POLL_READABLE)) this.receive();
  }

  private receive(): void {
    for (;;) {
      if (this.rlen === this.rbuf.length) { this.fail('reply larger than any the protocol allows'); return; }
      const r = this.nat.recv(this.fd, this.rbuf.subarray(this.rlen), 4);
      for (let i = 2; i < r.length; i++) this.rfds.push(r[i]);
      const n = r[0];
      if (n === -EAGAIN) break;
      if (n < 0) { this.fail(`recv: errno ${-n}`); return; }
      if (n === 0) { this.fail('helper closed the connection'); return; }
      if (r[1] & MSG_CTRUNC) { this.fail('descriptors truncated'); return; }
      this.rlen += n;
    }
    try {
      this.parse();
    } catch (e) {
      this.fail(e instanceof Error ? e.message : String(e));
    }
  }

  private int32(off: number): number {
    const b = this.rbuf;
    return b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24);
  }

  private parse(): void {
    const p = this.cur;
    if (p === null) {
      if (this.rlen > 0 || this.rfds.length > 0) throw new ProxyProtocolError('unsolicited data from the helper');
      return;
    }
    let result: unknown;
    if (p.shape === 'fd') {
      if (this.rlen < 4) {
        if (this.rfds.length > 0 && this.rlen === 0) throw new ProxyProtocolError('descriptor without data');
        return;
      }
      if (this.rlen > 4) throw new ProxyProtocolError(`fd reply of ${this.rlen} bytes`);
      const v = this.int32(0);
      if (v === FD_VALID) {
        if (this.rfds.length > 1) throw new ProxyProtocolError(`${this.rfds.length} descriptors in one reply`);
        // INT_MAX without a descriptor: it was dropped on the way (fd table full): QEMU says ENFILE
        result = this.rfds.length === 1 ? this.rfds.pop()! : -ENFILE;
      } else {
        checkErrno(v);
        if (this.rfds.length > 0) throw new ProxyProtocolError('descriptor with an error reply');
        result = v;
      }
    } else {
      if (this.rfds.length > 0) throw new ProxyProtocolError('descriptor with a non-fd reply');
      if (this.rlen < HEADER_SIZE) return;
      const h = decodeHeader(this.rbuf.subarray(0, HEADER_SIZE));
      const end = HEADER_SIZE + h.size;
      if (this.rlen < end) return;
      if (this.rlen > end) throw new ProxyProtocolError(`${this.rlen - end} bytes after the reply`);
      if (h.type === T_ERROR) {
        result = checkErrno(this.int32(HEADER_SIZE));
      } else if (p.shape === 'status') {
        if (h.size !== 4) throw new ProxyProtocolError(`status reply of size ${h.size}`);
        const v = this.int32(HEADER_SIZE);
        if (v < 0) throw new ProxyProtocolError(`T_SUCCESS with ${v}`);
        result = v;
      } else {
        const body = this.rbuf.slice(HEADER_SIZE, end);
        result = p.decode !== undefined ? p.decode(body) : body;
      }
    }
    this.rlen = 0;
    this.complete(result);
  }

  private complete(v: unknown): void {
    const p = this.cur!;
    this.cur = null;
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    this.nat.pollRef(this.poll!, false);
    this.served++;
    p.resolve(v);
    this.onIdle(this);
  }

  /** Drop the connection: in-flight → -EIO, stray fds closed, socket closed (exactly once). */
  fail(reason: string): void {
    if (!this.alive) return;
    this.alive = false;
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    if (this.poll !== null) { this.nat.pollClose(this.poll); this.poll = null; }
    for (const fd of this.rfds) this.nat.close(fd);
    this.rfds = [];
    this.nat.close(this.fd);
    const p = this.cur;
    this.cur = null;
    this.onDead(this, reason);
    if (p !== null) p.resolve(-EIO);
  }
}

interface Slot {
  index: number;
  conn: Conn | null;
  child: ChildProcess | null;
  connecting: boolean;
  retryMs: number;
  timer: NodeJS.Timeout | null;
  /** last stderr of a launched helper */
  log: string;
}

/** Makes a connection for a slot; returns the socket fd (non-blocking) and maybe a child. */
type Maker = (slot: Slot) => Promise<{ fd: number; child: ChildProcess | null }>;

export class ProxyClient {
  private readonly nat = fdpass();
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private readonly deadlineMs: number;
  private readonly retryMin: number;
  private readonly retryMax: number;
  private closed = false;
  events: ClientEvents = {};
  /** helper losses so far (tests / monitoring) */
  losses = 0;

  private constructor(private readonly maker: Maker | null, nslots: number, opts: ClientOptions) {
    this.deadlineMs = opts.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.retryMin = opts.retryMinMs ?? 50;
    this.retryMax = opts.retryMaxMs ?? 2000;
    for (let i = 0; i < nslots; i++) {
      this.slots.push({ index: i, conn: null, child: null, connecting: false, retryMs: this.retryMin, timer: null, log: '' });
    }
  }

  /** A client over an existing connection (socket path or inherited fd). */
  static async connect(target: ProxyTarget, opts: ClientOptions & {
    unlinkSocket?: boolean;
    /** called to get a new connection after a loss (default: reconnect to the same socket path; none for an fd) */
    reconnect?: () => Promise<ProxyTarget>;
  } = {}): Promise<ProxyClient> {
    const nat = fdpass();
    const open = async (t: ProxyTarget): Promise<number> => {
      if ('fd' in t) {
        const r = nat.setNonBlocking(t.fd, true);
        if (r < 0) throw Object.assign(new Error(`proxy: fd ${t.fd}: errno ${-r}`), { errno: -r });
        return t.fd;
      }
      const fd = nat.connectUnix(t.socket);
      if (fd < 0) throw Object.assign(new Error(`proxy: connect ${t.socket}: errno ${-fd}`), { errno: -fd });
      if (opts.unlinkSocket ?? true) fs.rmSync(t.socket, { force: true });
      return fd;
    };
    let first = true;
    const reconnect = opts.reconnect ?? ('socket' in target ? async () => target : null);
    const maker: Maker = async () => {
      if (first) { first = false; return { fd: await open(target), child: null }; }
      if (reconnect === null) throw new Error('proxy: no way to reconnect');
      return { fd: await open(await reconnect()), child: null };
    };
    const c = new ProxyClient(maker, 1, opts);
    await c.bringUp(c.slots[0], true);
    return c;
  }

  /** Start `connections` helpers (one connection each) on `spec.export`. */
  static async launch(spec: LaunchSpec, opts: ClientOptions & { connections?: number } = {}): Promise<ProxyClient> {
    const helper = spec.helper ?? DEFAULT_HELPER;
    const dir = path.resolve(spec.export);
    const nat = fdpass();
    const maker: Maker = async (slot) => {
      if (spec.mode === 'socket') {
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-proxy-'));
        const sock = path.join(tmp, 's');
        let child: ChildProcess | null = null;
        try {
          child = await spawnHelper(helper, ['-n', '-p', dir, '-s', sock, '-u', '0', '-g', '0'], ['ignore', 'ignore', 'pipe'], slot);
          const t0 = Date.now();
          while (!fs.existsSync(sock)) {
            if (child.exitCode !== null || child.signalCode !== null) throw new Error(`proxy helper exited: ${slot.log.trim()}`);
            if (Date.now() - t0 > 5000) throw new Error('proxy helper did not create its socket');
            await new Promise((r) => setTimeout(r, 5));
          }
          const fd = nat.connectUnix(sock);
          if (fd < 0) throw new Error(`proxy: connect ${sock}: errno ${-fd}`);
          return { fd, child };
        } catch (e) {
          killStarted(child);
          throw e;
        } finally {
          fs.rmSync(tmp, { recursive: true, force: true });
        }
      }
      const pair = nat.socketpair();
      if (typeof pair === 'number') throw new Error(`proxy: socketpair: errno ${-pair}`);
      const [ours, theirs] = pair;
      let child: ChildProcess;
      try {
        // the helper's end stays blocking (it exits on EAGAIN); ours becomes non-blocking
        child = await spawnHelper(helper, ['-n', '-p', dir, '-f', '3'], ['ignore', 'ignore', 'pipe', theirs], slot);
      } catch (e) {
        nat.close(ours);
        nat.close(theirs);
        throw e;
      }
      nat.close(theirs);
      nat.setNonBlocking(ours, true);
      return { fd: ours, child };
    };
    const n = Math.max(1, opts.connections ?? 4);
    const c = new ProxyClient(maker, n, opts);
    await Promise.all(c.slots.map((s) => c.bringUp(s, true)));
    return c;
  }

  /** Send one request; resolves with the reply (fd ≥ 0, status value, or decoded body) or -errno. */
  call<T = number>(name: RequestName, args: readonly Value[], decode?: (body: Uint8Array) => T): Promise<T | number> {
    let frame: Uint8Array;
    try {
      frame = encodeRequest(name, args);
    } catch (e) {
      if (e instanceof ProxyEncodeError) return Promise.resolve(-e.errno);
      throw e;
    }
    if (this.closed || !this.slots.some((s) => s.conn !== null)) return Promise.resolve(-EIO);
    return new Promise<T | number>((resolve) => {
      this.queue.push({ name, frame, shape: replyShape(name, args), decode, resolve: resolve as (v: unknown) => void });
      this.pump();
    });
  }

  /** Number of live connections. */
  get up(): number { return this.slots.filter((s) => s.conn !== null).length; }

  /** PIDs of the launched helpers currently connected. */
  get pids(): number[] {
    return this.slots.filter((s) => s.conn !== null && s.child !== null && s.child.pid !== undefined).map((s) => s.child!.pid!);
  }

  /** Resolve once at least `n` connections are up (polls; for tests and callers that wait for recovery). */
  async waitUp(n = 1, timeoutMs = 10000): Promise<boolean> {
    const t0 = Date.now();
    while (this.up < n) {
      if (Date.now() - t0 > timeoutMs) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
    return true;
  }

  /** Close every connection and kill launched helpers. Pending requests get -EIO. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.slots) {
      if (s.timer !== null) { clearTimeout(s.timer); s.timer = null; }
      if (s.conn !== null) s.conn.fail('closed');
      this.killChild(s);
    }
    for (const p of this.queue.splice(0)) p.resolve(-EIO);
  }

  // ---- internals ------------------------------------------------------------------------------

  private pump(): void {
    for (const s of this.slots) {
      if (this.queue.length === 0) return;
      if (s.conn !== null && s.conn.idle) s.conn.start(this.queue.shift()!);
    }
  }

  private killChild(s: Slot): void {
    const ch = s.child;
    s.child = null;
    killStarted(ch);
  }

  private async bringUp(s: Slot, initial: boolean): Promise<void> {
    if (this.closed || s.conn !== null || s.connecting) return;
    s.connecting = true;
    try {
      const { fd, child } = await this.maker!(s);
      if (this.closed) {
        this.nat.close(fd);
        killStarted(child);
        return;
      }
      s.child = child;
      const conn = new Conn(fd, this.deadlineMs, () => this.pump(), (c, reason) => this.lost(s, c, reason));
      s.conn = conn;
      if (child !== null) {
        child.once('exit', () => { if (s.conn === conn) conn.fail(`helper exited (${s.log.trim().split('\n').pop() ?? ''})`); });
      }
      this.events.onUp?.(s.index, child?.pid);
      this.pump();
    } catch (e) {
      if (initial) throw e;
      this.schedule(s);
    } finally {
      s.connecting = false;
    }
  }

  private lost(s: Slot, c: Conn, reason: string): void {
    if (s.conn !== c) return;
    s.conn = null;
    this.losses++;
    this.killChild(s);
    if (c.served > 0) s.retryMs = this.retryMin;
    this.events.onLoss?.(s.index, reason);
    if (!this.slots.some((x) => x.conn !== null)) {
      for (const p of this.queue.splice(0)) p.resolve(-EIO);
    }
    if (!this.closed) this.schedule(s);
  }

  private schedule(s: Slot): void {
    if (this.closed || s.timer !== null) return;
    const ms = s.retryMs;
    s.retryMs = Math.min(this.retryMax, s.retryMs * 2);
    s.timer = setTimeout(() => { s.timer = null; void this.bringUp(s, false); }, ms);
    s.timer.unref();
  }
}

/** A helper path that cannot be run: refused before anything is spawned. */
export class HelperNotRunnable extends Error {
  constructor(readonly helper: string, why: string) {
    super(`proxy helper ${helper}: ${why}`);
    this.name = 'HelperNotRunnable';
  }
}

/** Throws HelperNotRunnable unless `helper` is an executable regular file. */
export function checkHelper(helper: string): void {
  let st: fs.Stats;
  try { st = fs.statSync(helper); } catch { throw new HelperNotRunnable(helper, 'no such file'); }
  if (!st.isFile()) throw new HelperNotRunnable(helper, 'not a regular file');
  try { fs.accessSync(helper, fs.constants.X_OK); } catch { throw new HelperNotRunnable(helper, 'not executable'); }
}

/**
 * SIGKILL a child we started, only while it really runs: a child whose spawn failed has no
 * pid, and a pid that is not a positive integer must never reach kill(2) (kill(0) or kill(-1)
 * would signal the caller's process group or every process).
 */
export function killStarted(child: ChildProcess | null): void {
  if (child === null) return;
  const pid = child.pid;
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) return;
  if (child.exitCode !== null || child.signalCode !== null) return;
  try { child.kill('SIGKILL'); } catch { /* already gone */ }
}

/** Start the helper; resolves once it has really started (its 'spawn' event), rejects otherwise. */
async function spawnHelper(helper: string, args: string[], stdio: ('ignore' | 'pipe' | number)[], slot: Slot): Promise<ChildProcess> {
  checkHelper(helper);
  const child = spawn(helper, args, { stdio, detached: false });
  slot.log = '';
  child.stderr?.on('data', (d: Buffer) => { slot.log = (slot.log + d.toString()).slice(-2048); });
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => { child.off('spawn', onSpawn); reject(new HelperNotRunnable(helper, e.message)); };
    const onSpawn = (): void => { child.off('error', onError); resolve(); };
    child.once('error', onError);
    child.once('spawn', onSpawn);
  });
  child.on('error', (e) => { slot.log += `helper error: ${e.message}\n`; });
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
  child.unref();
  return child;
}
