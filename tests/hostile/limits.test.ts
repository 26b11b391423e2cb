/**
 * Every resource a client can make `virtio9p serve` hold has a bound: one hostile client sits
 * at each bound over a real Unix socket while a well-behaved client on the same server keeps
 * working. Timeouts are small and waited for as conditions (the server closed the socket),
 * never raced against sleeps.
 */
import { describe, test, expect, afterEach } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { P9Server, type ServeOptions } from '../../src/serve.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { LocalBackend } from '../../src/backends/local.js';
import type { Backend } from '../../src/backends/backend.js';
import { connectStream, type StreamConn } from '../../harness/soak/stream-client.js';
import { P9ClientError } from '../../src/testing/p9/client.js';
import { MSG } from '../../src/testing/p9/codec.js';
import { tempDir, serve } from '../clients/serve-util.js';

const EMFILE = 24, ENOSPC = 28, ENOMEM = 12;
const NOFID = 0xffffffff;

const servers: P9Server[] = [];
const conns: StreamConn[] = [];
afterEach(async () => {
  for (const c of conns.splice(0)) await c.close();
  for (const s of servers.splice(0)) await s.close();
});

async function start(backend: Backend, opts: Partial<ServeOptions> = {}): Promise<{ srv: P9Server; sock: string; logs: string[] }> {
  const sock = path.join(tempDir('lim'), 's.sock');
  const logs: string[] = [];
  const srv = await P9Server.start({ backend, listen: { kind: 'unix', path: sock }, bufferSize: 16 << 20, log: (l) => logs.push(l), ...opts });
  servers.push(srv);
  return { srv, sock, logs };
}

async function connect(sock: string, msize = 65536): Promise<StreamConn> {
  const c = await connectStream(sock, msize);
  conns.push(c);
  return c;
}

/** A client that attached (fid 0 = the root). */
async function attached(sock: string, msize = 65536): Promise<StreamConn> {
  const c = await connect(sock, msize);
  await c.client.version(msize);
  await c.client.attach(0, NOFID, 'root', '', 0);
  return c;
}

/** Wait until `cond` holds (the event loop keeps running meanwhile). */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}

const closed = (c: StreamConn) => c.socket.destroyed || c.socket.readyState === 'closed';
function waitClosed(c: StreamConn): Promise<void> {
  return new Promise((r) => { if (closed(c)) r(); else c.socket.once('close', () => r()); });
}

/** The well-behaved client's work: read a known file through its own fids. */
async function wellBehaved(c: StreamConn, name = 'hello', want = 'hello world'): Promise<void> {
  await c.client.walk(0, 100, [name]);
  await c.client.lopen(100, 0);
  expect(new TextDecoder().decode(await c.client.read(100, 0, 4096))).toBe(want);
  await c.client.clunk(100);
}

function mem(opts: ConstructorParameters<typeof MemoryBackend>[0] = {}): MemoryBackend {
  const m = new MemoryBackend(opts);
  m.writeFile('hello', 'hello world');
  for (let i = 0; i < 20; i++) m.writeFile(`f${i}`, `file ${i}`);
  return m;
}

const errno = async (p: Promise<unknown>): Promise<number> => {
  try { await p; } catch (e) { if (e instanceof P9ClientError) return e.errno; throw e; }
  return 0;
};

describe('connections', () => {
  test('at --max-connections further connections are closed, with one log line per episode', async () => {
    const { srv, sock, logs } = await start(mem(), { maxConnections: 3 });
    const hostile = [await attached(sock), await attached(sock), await attached(sock)];
    for (let i = 0; i < 5; i++) {
      const extra = await connect(sock);
      await waitClosed(extra);
    }
    expect(srv.connections).toBe(3);
    expect(logs.filter((l) => l.startsWith('refusing connections'))).toHaveLength(1);
    // the attached clients keep working
    await wellBehaved(hostile[0]);
    await hostile[2].close();
    await until(() => srv.connections === 2);
    const good = await attached(sock);
    await wellBehaved(good);
    expect(logs.filter((l) => l.startsWith('accepting connections again (5 refused'))).toHaveLength(1);
  });

  test('a connection that never attaches is closed after attachTimeout; attached ones stay', async () => {
    const { srv, sock, logs } = await start(mem(), { attachTimeout: 1500 });
    const hostile = await connect(sock);
    const good = await attached(sock);
    await waitClosed(hostile);
    expect(logs.some((l) => /no attach within 1500 ms/.test(l))).toBe(true);
    expect(srv.connections).toBe(1);
    await wellBehaved(good);
    // Tversion resets the session: the clock starts again until the next attach
    const again = await attached(sock);
    await again.client.version(65536);
    await waitClosed(again);
    await wellBehaved(good);
  });

  test('a silent connection is closed after idleTimeout; a busy one is not', async () => {
    const { srv, sock, logs } = await start(mem(), { idleTimeout: 1000 });
    const hostile = await attached(sock);
    const good = await attached(sock);
    let n = 0;
    while (!closed(hostile)) { await wellBehaved(good); n++; }
    expect(n).toBeGreaterThan(0);
    expect(logs.some((l) => /idle for 1000 ms/.test(l))).toBe(true);
    expect(srv.connections).toBe(1);
    await wellBehaved(good);
  });

  test('a request that arrives byte by byte (slowloris) is closed after frameTimeout', async () => {
    const { srv, sock, logs } = await start(mem(), { frameTimeout: 300 });
    const good = await attached(sock);
    const hostile = await connect(sock);
    // a Tversion's size field and three more bytes, then nothing
    hostile.socket.write(Buffer.from([19, 0, 0, 0, 100, 0xff, 0xff]));
    await waitClosed(hostile);
    expect(logs.some((l) => /request frame took over 300 ms/.test(l))).toBe(true);
    expect(srv.connections).toBe(1);
    await wellBehaved(good);
  });

  test('clients that never read their replies hold at most their share, and are dropped after frameTimeout', async () => {
    const big = new MemoryBackend();
    big.writeFile('hello', 'hello world');
    big.writeFile('big', new Uint8Array(60000).fill(7));
    const quota = 256 << 10;
    const { srv, sock, logs } = await start(big, { connectionBuffer: quota, bufferSize: 4 << 20, frameTimeout: 0, msize: 65536 + 4096 });
    const hostile: StreamConn[] = [];
    for (let h = 0; h < 9; h++) {
      const c = await attached(sock);
      await c.client.walk(0, 1, ['big']);
      await c.client.lopen(1, 0);
      c.socket.pause(); // never read again
      // 200 Treads of 60000 bytes each: 12 MB of replies nobody takes
      for (let i = 0; i < 200; i++) void c.client.read(1, 0, 60000).catch(() => undefined);
      hostile.push(c);
    }
    // the server stops reading each of them at its share of the buffers
    await until(() => srv.bufferBytesInUse >= 9 * (quota - 2 * 60064));
    expect(srv.bufferBytesInUse).toBeLessThanOrEqual(9 * quota);
    // a fresh client is served
    const good = await attached(sock);
    await wellBehaved(good);
    await good.client.walk(0, 101, ['big']);
    await good.client.lopen(101, 0);
    expect((await good.client.read(101, 0, 60000)).length).toBe(60000);
    expect(logs).toHaveLength(0);
    for (const c of hostile) await c.close();
    await until(() => srv.connections === 1);

    // with a frame timeout, such a client is dropped
    const s2 = await start(big, { connectionBuffer: quota, bufferSize: 4 << 20, frameTimeout: 300, msize: 65536 + 4096 });
    const h2 = await attached(s2.sock);
    await h2.client.walk(0, 1, ['big']);
    await h2.client.lopen(1, 0);
    h2.socket.pause();
    for (let i = 0; i < 200; i++) void h2.client.read(1, 0, 60000).catch(() => undefined);
    const g2 = await attached(s2.sock);
    await until(() => s2.srv.connections === 1);
    expect(s2.logs.some((l) => /replies unread for 300 ms/.test(l))).toBe(true);
    await wellBehaved(g2);
  });
});

describe('per-session resources', () => {
  test.each(['memory', 'local'] as const)('open files: EMFILE at maxOpenPerSession (%s), others unaffected', async (kind) => {
    let backend: Backend;
    let openHandles: () => number;
    if (kind === 'memory') {
      const m = mem();
      backend = m;
      openHandles = () => m.openHandles;
    } else {
      const dir = tempDir('lim-local');
      fs.writeFileSync(path.join(dir, 'hello'), 'hello world');
      for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(dir, `f${i}`), `file ${i}`);
      backend = new LocalBackend({ root: dir });
      const fdCount = () => fs.readdirSync('/proc/self/fd').length;
      const base = fdCount();
      openHandles = () => fdCount() - base;
    }
    const { srv, sock, logs } = await start(backend, { maxOpenPerSession: 8 });
    const hostile = await attached(sock);
    const good = await attached(sock);
    for (let i = 0; i < 8; i++) { await hostile.client.walk(0, 10 + i, [`f${i}`]); await hostile.client.lopen(10 + i, 0); }
    for (let i = 8; i < 12; i++) {
      await hostile.client.walk(0, 10 + i, [`f${i}`]);
      const held = openHandles();
      expect(await errno(hostile.client.lopen(10 + i, 0))).toBe(EMFILE);
      expect(openHandles()).toBe(held);
    }
    await hostile.client.walk(0, 50, []);
    expect(await errno(hostile.client.lcreate(50, 'new', 0o102, 0o644))).toBe(EMFILE);
    expect(srv.device.sessionUsage(1).open + srv.device.sessionUsage(2).open).toBe(8);
    expect(logs.filter((l) => /at its limit of open files/.test(l))).toHaveLength(1);
    // the other session opens files up to its own limit
    await wellBehaved(good);
    for (let i = 0; i < 8; i++) { await good.client.walk(0, 10 + i, [`f${i}`]); await good.client.lopen(10 + i, 0); }
    // a clunk gives one back
    await hostile.client.clunk(10);
    await hostile.client.lopen(18, 0);
    // a disconnect gives all back
    await hostile.close();
    await until(() => srv.connections === 1);
    await good.client.walk(0, 60, ['f19']);
    expect(await errno(good.client.lopen(60, 0))).toBe(EMFILE);
    await good.close();
    await until(() => srv.connections === 0);
    expect(srv.device.sessionUsage(1).open + srv.device.sessionUsage(2).open).toBe(0);
  });

  test('xattr buffers: ENOSPC at maxXattrBytesPerSession, others unaffected', async () => {
    const m = mem();
    const { srv, sock, logs } = await start(m, { maxXattrBytesPerSession: 128 << 10 });
    const hostile = await attached(sock);
    const good = await attached(sock);
    for (let i = 0; i < 2; i++) {
      await hostile.client.walk(0, 10 + i, ['hello']);
      await hostile.client.xattrcreate(10 + i, `user.big${i}`, 65536);
    }
    for (let i = 2; i < 6; i++) {
      await hostile.client.walk(0, 10 + i, ['hello']);
      expect(await errno(hostile.client.xattrcreate(10 + i, `user.big${i}`, 65536))).toBe(ENOSPC);
    }
    // reading values counts too
    await hostile.client.walk(0, 30, ['hello']);
    expect(await errno(hostile.client.xattrwalk(30, 31, ''))).toBe(0); // empty list: 0 bytes
    expect(logs.filter((l) => /xattr buffer bytes/.test(l))).toHaveLength(1);
    // the other session sets a 64 KiB xattr and reads it back
    await good.client.walk(0, 10, ['hello']);
    await good.client.xattrcreate(10, 'user.ok', 65536);
    await good.client.write(10, 0, new Uint8Array(32768).fill(1));
    await good.client.write(10, 32768, new Uint8Array(32768).fill(1));
    await good.client.clunk(10);
    await good.client.walk(0, 11, ['hello']);
    expect(await good.client.xattrwalk(11, 12, 'user.ok')).toBe(65536n);
    await good.client.clunk(12);
    // the hostile session, full, cannot read it either (ENOMEM), until it lets go
    expect(await errno(hostile.client.xattrwalk(30, 32, 'user.ok'))).toBe(ENOMEM);
    expect(await errno(hostile.client.clunk(10))).toBe(22); // an unfinished value: EINVAL, and freed
    expect(await hostile.client.xattrwalk(30, 32, 'user.ok')).toBe(65536n);
    await hostile.close();
    await until(() => srv.connections === 1);
    expect(srv.device.sessionUsage(1).xattrBytes).toBe(0);
  });

  test('readdir listings share a byte budget: many open handles of a large directory stay bounded', async () => {
    const dir = tempDir('lim-dir');
    fs.writeFileSync(path.join(dir, 'hello'), 'hello world');
    fs.mkdirSync(path.join(dir, 'big'));
    const names: string[] = [];
    for (let i = 0; i < 2000; i++) { const n = `entry-${String(i).padStart(5, '0')}`; names.push(n); fs.writeFileSync(path.join(dir, 'big', n), ''); }
    const budget = 64 << 10;
    const local = new LocalBackend({ root: dir, readdirBudget: budget });
    const { sock } = await start(local);
    const hostile = await attached(sock);
    const good = await attached(sock);
    const listing = 2000 * (11 + 192);
    for (let h = 0; h < 20; h++) {
      await hostile.client.walk(0, 10 + h, ['big']);
      await hostile.client.lopen(10 + h, 0);
      await hostile.client.readdir(10 + h, 0, 512);
      expect(local.dirBudget.bytes).toBeLessThanOrEqual(Math.max(budget, listing));
    }
    // the well-behaved client lists the whole directory while the hostile one keeps evicting
    await good.client.walk(0, 10, ['big']);
    await good.client.lopen(10, 0);
    const seen: string[] = [];
    let off = 0n;
    for (;;) {
      const ents = await good.client.readdir(10, off, 2048);
      if (ents.length === 0) break;
      for (const e of ents) seen.push(new TextDecoder().decode(e.name));
      off = ents[ents.length - 1].offset;
      for (let h = 0; h < 20; h += 5) await hostile.client.readdir(10 + h, 0, 512);
      expect(local.dirBudget.bytes).toBeLessThanOrEqual(Math.max(budget, listing));
    }
    expect(seen.filter((n) => n !== '.' && n !== '..').sort()).toEqual(names);
    expect(new Set(seen).size).toBe(seen.length);
    await hostile.close();
    await good.close();
  });
});

describe('memory backend capacity', () => {
  test('writes and xattrs stop at the capacity with ENOSPC; statfs tells the truth; others keep reading', async () => {
    const cap = 1 << 20;
    const m = mem({ capacityBytes: cap, maxInodes: 100 });
    const { sock } = await start(m);
    const hostile = await attached(sock);
    const good = await attached(sock);
    const st0 = await good.client.statfs(0);
    expect(Number(st0.blocks) * st0.bsize).toBe(cap);
    const free0 = Number(st0.bfree) * st0.bsize;
    expect(free0).toBeLessThan(cap); // the seeded files take their share
    await hostile.client.walk(0, 1, []);
    await hostile.client.lcreate(1, 'hog', 0o102, 0o644);
    let off = 0, e = 0;
    while (e === 0) {
      try { off += await hostile.client.write(1, off, new Uint8Array(32768).fill(9)); } catch (x) { e = (x as P9ClientError).errno; }
    }
    expect(e).toBe(ENOSPC);
    expect(off).toBeGreaterThan(free0 - 65536);
    expect(off).toBeLessThanOrEqual(free0);
    const st1 = await good.client.statfs(0);
    expect(Number(st1.bfree) * st1.bsize).toBeLessThan(65536);
    await wellBehaved(good);
    // xattrs count against the same capacity
    await hostile.client.walk(0, 2, ['hello']);
    await hostile.client.xattrcreate(2, 'user.x', 65536);
    await hostile.client.write(2, 0, new Uint8Array(32768));
    await hostile.client.write(2, 32768, new Uint8Array(32768));
    expect(await errno(hostile.client.clunk(2))).toBe(ENOSPC);
    // files are bounded too
    let files = 0;
    for (;;) {
      await hostile.client.walk(0, 3, []);
      const r = await errno(hostile.client.lcreate(3, `n${files}`, 0o102, 0o644));
      if (r !== 0) { expect(r).toBe(ENOSPC); await hostile.client.clunk(3); break; }
      await hostile.client.clunk(3);
      files++;
    }
    expect(m.inodes).toBe(100);
    expect(Number((await good.client.statfs(0)).ffree)).toBe(0);
    // removing the hog gives the space back
    await hostile.client.clunk(1);
    await hostile.client.unlinkat(0, 'hog');
    const st2 = await good.client.statfs(0);
    expect(Number(st2.bfree) * st2.bsize).toBeGreaterThan(free0 - 65536);
  });
});

describe('memory backend hard links', () => {
  test('links beyond a file\'s first name count against the capacity (ENOSPC), and come back when removed', async () => {
    const m = mem({ capacityBytes: 256 << 10 });
    const { sock } = await start(m);
    const hostile = await attached(sock);
    const good = await attached(sock);
    await hostile.client.walk(0, 1, ['hello']);
    let n = 0, e = 0;
    while (e === 0) { e = await errno(hostile.client.link(0, 1, `l${n}`)); if (e === 0) n++; }
    expect(e).toBe(ENOSPC);
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan((256 << 10) / 256);
    expect(Number((await good.client.statfs(0)).bfree)).toBe(0);
    await wellBehaved(good);
    await hostile.client.unlinkat(0, 'l0');
    await hostile.client.link(0, 1, 'again');
    expect(await errno(hostile.client.link(0, 1, 'more'))).toBe(ENOSPC);
  });
});

describe('the limits as `virtio9p serve` flags', () => {
  test('--max-connections, --memory-capacity, --memory-files, --max-open and --attach-timeout take effect', async () => {
    const dir = tempDir('lim-cli');
    fs.writeFileSync(path.join(dir, 'hello'), 'hello world');
    const srv = await serve(dir, 'memory', ['--max-connections', '2', '--memory-capacity', '2M', '--memory-files', '50', '--max-open', '2', '--attach-timeout', '2']);
    try {
      const good = await attached(srv.sock);
      const st = await good.client.statfs(0);
      expect(Number(st.blocks) * st.bsize).toBe(2 << 20);
      expect(Number(st.files)).toBe(50);
      const idle = await connect(srv.sock); // never attaches: closed after 2 s
      const refused = await connect(srv.sock); // the third: closed at once
      await waitClosed(refused);
      await waitClosed(idle);
      for (let i = 0; i < 2; i++) { await good.client.walk(0, 10 + i, ['hello']); await good.client.lopen(10 + i, 0); }
      await good.client.walk(0, 12, ['hello']);
      expect(await errno(good.client.lopen(12, 0))).toBe(EMFILE);
      // the server's log comes through its own pipe, not in step with the replies: wait for it
      const logged = (l: string) => /refusing connections/.test(l) && /no attach within/.test(l) && /at its limit of open files/.test(l);
      for (let i = 0; i < 500 && !logged(srv.stderr()); i++) await new Promise((r) => setTimeout(r, 20));
      const log = srv.stderr();
      expect(log.match(/refusing connections/g)).toHaveLength(1);
      expect(log).toMatch(/no attach within 2000 ms/);
      expect(log).toMatch(/at its limit of open files \(2\)/);
    } finally {
      await srv.stop();
    }
  });
});
