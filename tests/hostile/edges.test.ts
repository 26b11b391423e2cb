/**
 * Edges a hostile client can push on, through the real server (a Unix socket) and the device:
 * an aname is a boundary (".." at its root stays there, on every backend, through the CLI);
 * requests in flight across a Tversion install no fids afterwards, and pipelined Tattach /
 * Twalk to one fid do not replace each other; names over 255 bytes and empty or NUL-holding
 * symlink targets get Linux's errnos; the proxy refuses a NUL in a target instead of cutting it.
 */
import { describe, test, expect, afterEach, afterAll } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { P9Server } from '../../src/serve.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { AnameBackend } from '../../src/backends/aname.js';
import { ProxyBackend } from '../../src/backends/proxy/backend.js';
import type { Backend } from '../../src/backends/backend.js';
import { connectStream, type StreamConn } from '../../harness/soak/stream-client.js';
import { P9ClientError, type P9Client } from '../../src/testing/p9/client.js';
import { DeferredBackend, boot } from '../conformance/util.js';
import { serve, tempDir, type Served } from '../clients/serve-util.js';

const ENOENT = 2, EBADF = 9, EINVAL = 22, ENAMETOOLONG = 36, ECANCELED = 125;
const NOFID = 0xffffffff;
const enc = new TextEncoder();

const servers: P9Server[] = [];
const conns: StreamConn[] = [];
const children: Served[] = [];
afterEach(async () => {
  for (const c of conns.splice(0)) await c.close();
  for (const s of servers.splice(0)) await s.close();
  for (const c of children.splice(0)) await c.stop();
});

async function inProcess(backend: Backend): Promise<string> {
  const sock = path.join(tempDir('edge'), 's.sock');
  servers.push(await P9Server.start({ backend, listen: { kind: 'unix', path: sock }, bufferSize: 16 << 20 }));
  return sock;
}

async function client(sock: string): Promise<P9Client> {
  const c = await connectStream(sock, 65536);
  conns.push(c);
  await c.client.version(65536);
  return c.client;
}

const errno = async (p: Promise<unknown>): Promise<number> => {
  try { await p; } catch (e) { if (e instanceof P9ClientError) return e.errno; throw e; }
  return 0;
};

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 2));
}

function exportTree(): string {
  const dir = tempDir('edge-exp');
  fs.writeFileSync(path.join(dir, 'secret'), 'export root only');
  fs.mkdirSync(path.join(dir, 'sub', 'inner'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'sub', 'subfile'), 'in sub');
  return dir;
}

/** An attach at aname "sub" cannot climb out of it, whatever the walk. */
async function checkAnameBoundary(c: P9Client): Promise<void> {
  const root = await c.attach(1, NOFID, 'root', 'sub', 0);
  const up = await c.walk(1, 2, ['..']);
  expect(up[0].path).toBe(root.path);
  // "..", then a name that only exists at the export root: not found
  expect(await c.walk(1, 3, ['..', 'secret'])).toHaveLength(1);
  expect(await errno(c.walk(3, 4, []))).toBe(ENOENT); // fid 3 was not made
  // down and up again, past the attach root: still the attach root
  const qs = await c.walk(1, 5, ['inner', '..', '..', '..']);
  expect(qs).toHaveLength(4);
  expect(qs[3].path).toBe(root.path);
  await c.walk(5, 6, ['subfile']);
  await c.lopen(6, 0);
  expect(new TextDecoder().decode(await c.read(6, 0, 100))).toBe('in sub');
  // the root is a directory like any other: list it, stat it
  await c.walk(1, 7, []);
  await c.lopen(7, 0);
  const names = (await c.readdirAll(7)).map((e) => new TextDecoder().decode(e.name)).sort();
  expect(names).toEqual(['.', '..', 'inner', 'subfile']);
  expect((await c.getattr(1)).qid.path).toBe(root.path);
  // an attach at the export root still climbs from sub to the root
  const top = await c.attach(10, NOFID, 'root', '', 0);
  const back = await c.walk(10, 11, ['sub', '..', 'secret']);
  expect(back).toHaveLength(3);
  const viaSub = await c.walk(10, 12, ['sub', '..']);
  expect(viaSub[1].path).toBe(top.path);
  for (const f of [1, 2, 5, 6, 7, 10, 11, 12]) await c.clunk(f);
}

describe('an aname is a boundary', () => {
  execFileSync(process.execPath, [path.resolve('native/build.mjs')], { stdio: 'ignore' });
  test.each(['local', 'memory', 'proxy'])('".." at the attach root of aname "sub" stays there (serve --backend %s)', async (kind) => {
    const srv = await serve(exportTree(), kind);
    children.push(srv);
    await checkAnameBoundary(await client(srv.sock));
  });

  test('through the device (virtqueue) over an AnameBackend', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('secret', 'export root only');
    mem.mkdirp('sub/inner');
    mem.writeFile('sub/subfile', 'in sub');
    const ctx = await boot(new AnameBackend(mem), { mount: false });
    await ctx.client.version(65536);
    await checkAnameBoundary(ctx.client);
  });
});

describe('requests in flight across a reset', () => {
  test('a Twalk in flight when Tversion arrives installs no fid afterwards', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('hello', 'hi');
    const deferred = new DeferredBackend(mem);
    const c = await client(await inProcess(deferred));
    await c.attach(0, NOFID, 'root', '', 0);
    deferred.hold((m) => m === 'lookup');
    const walk = errno(c.walk(0, 5, ['hello']));
    await deferred.waitFor('lookup');
    await c.version(65536); // resets the session: fid 0 is gone
    await c.attach(0, NOFID, 'root', '', 0); // the new session's fid 0 (the root node lives on)
    deferred.passThrough();
    deferred.release();
    expect(await walk).toBe(ECANCELED);
    expect(await errno(c.walk(5, 6, []))).toBe(ENOENT); // fid 5 does not exist
    await c.walk(0, 5, ['hello']); // and can be made now
  });

  test('the same through the device (virtqueue)', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('hello', 'hi');
    const deferred = new DeferredBackend(mem);
    const ctx = await boot(deferred, { mount: false });
    const c = ctx.client;
    await c.version(65536);
    await c.attach(0, NOFID, 'root', '', 0);
    deferred.hold((m) => m === 'lookup');
    const walk = errno(c.walk(0, 5, ['hello']));
    await deferred.waitFor('lookup');
    await c.version(65536);
    await c.attach(0, NOFID, 'root', '', 0);
    deferred.passThrough();
    deferred.release();
    expect(await walk).toBe(ECANCELED);
    expect(await errno(c.walk(5, 6, []))).toBe(ENOENT);
  });

  test('a Tlopen in flight when Tversion arrives leaves no open file', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('hello', 'hi');
    const deferred = new DeferredBackend(mem);
    const c = await client(await inProcess(deferred));
    await c.attach(0, NOFID, 'root', '', 0);
    await c.walk(0, 1, ['hello']);
    deferred.hold((m) => m === 'open');
    const open = errno(c.lopen(1, 0));
    await deferred.waitFor('open');
    await c.version(65536);
    await c.attach(0, NOFID, 'root', '', 0);
    await c.walk(0, 1, ['hello']); // fid 1 again, in the new session
    deferred.passThrough();
    deferred.release();
    expect(await open).toBe(ECANCELED);
    await until(() => mem.openHandles === 0);
    await c.lopen(1, 0); // not open: the stale open did not land on the new fid 1
    expect(mem.openHandles).toBe(1);
  });

  test('two pipelined Tattach on one fid: the second fails', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('hello', 'hi');
    const deferred = new DeferredBackend(mem);
    const c = await client(await inProcess(deferred));
    deferred.hold((m) => m === 'attach');
    const a = errno(c.attach(7, NOFID, 'root', '', 0));
    const b = errno(c.attach(7, NOFID, 'root', '', 0));
    await until(() => deferred.pending.length === 2);
    deferred.passThrough();
    deferred.release();
    expect([await a, await b]).toEqual([0, EINVAL]);
    await c.walk(7, 8, ['hello']);
  });

  test('two pipelined Twalk to one newfid: the second fails', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('a', 'A');
    mem.writeFile('b', 'B');
    const deferred = new DeferredBackend(mem);
    const c = await client(await inProcess(deferred));
    await c.attach(0, NOFID, 'root', '', 0);
    deferred.hold((m) => m === 'lookup');
    const a = errno(c.walk(0, 3, ['a']));
    const b = errno(c.walk(0, 3, ['b']));
    await until(() => deferred.pending.length === 2);
    deferred.passThrough();
    deferred.release();
    expect([await a, await b]).toEqual([0, EBADF]);
    await c.lopen(3, 0);
    expect(new TextDecoder().decode(await c.read(3, 0, 10))).toBe('A');
  });
});

describe('names and symlink targets', () => {
  const long = 'x'.repeat(256), max = 'y'.repeat(255);

  async function checkNames(c: P9Client, memory: boolean): Promise<void> {
    await c.attach(0, NOFID, 'root', '', 0);
    await c.walk(0, 1, []);
    expect(await errno(c.lcreate(1, long, 0o102, 0o644))).toBe(ENAMETOOLONG);
    await c.lcreate(1, max, 0o102, 0o644);
    expect(await errno(c.mkdir(0, long, 0o755))).toBe(ENAMETOOLONG);
    expect(await errno(c.symlink(0, long, 'target'))).toBe(ENAMETOOLONG);
    expect(await errno(c.renameat(0, max, 0, long))).toBe(ENAMETOOLONG);
    expect(await errno(c.walk(0, 2, [long]))).toBe(ENAMETOOLONG);
    // targets: empty → ENOENT (Linux symlink("")), a NUL inside → EINVAL (never cut)
    expect(await errno(c.symlink(0, 'empty', ''))).toBe(ENOENT);
    expect(await errno(c.symlink(0, 'nul', enc.encode('a\0b')))).toBe(EINVAL);
    expect(await errno(c.walk(0, 3, ['nul']))).toBe(ENOENT);
    if (memory) expect(await errno(c.symlink(0, 'huge', 'z'.repeat(4096)))).toBe(ENAMETOOLONG);
    await c.symlink(0, 'ok', 'a/b');
    await c.walk(0, 4, ['ok']);
    expect(await c.readlink(4)).toBe('a/b');
  }

  test('memory backend, through the server', async () => {
    await checkNames(await client(await inProcess(new MemoryBackend())), true);
  });

  test('memory backend, through the device', async () => {
    const ctx = await boot(new MemoryBackend(), { mount: false });
    await ctx.client.version(65536);
    await checkNames(ctx.client, true);
  });

  test.each(['local', 'proxy'])('serve --backend %s answers the same', async (kind) => {
    const srv = await serve(tempDir('edge-names'), kind);
    children.push(srv);
    await checkNames(await client(srv.sock), false);
  });

  test('MemoryBackend API: the same errnos without the device in front', () => {
    const m = new MemoryBackend();
    const root = (m.attach(new Uint8Array(0), 0) as { node: number }).node;
    expect(m.symlink(root, enc.encode('e'), new Uint8Array(0), 0, 0)).toBe(-ENOENT);
    expect(m.symlink(root, enc.encode('n'), enc.encode('a\0b'), 0, 0)).toBe(-EINVAL);
    expect(m.mkdir(root, enc.encode(long), 0o755, 0, 0)).toBe(-ENAMETOOLONG);
    expect(m.lookup(root, enc.encode(long))).toBe(-ENAMETOOLONG);
  });

  describe('proxy backend API and our helper', () => {
    let backend: ProxyBackend | null = null;
    afterAll(async () => { await backend?.destroy(); });
    test('a NUL in a symlink target is EINVAL on both sides of the helper socket', async () => {
      const dir = tempDir('edge-proxy');
      backend = await ProxyBackend.launch({ export: dir, helper: path.resolve('native/virtio9p-helper') });
      const root = await backend.attach(new Uint8Array(0), 0);
      expect(typeof root).toBe('object');
      const node = (root as { node: number }).node;
      expect(await backend.symlink(node, enc.encode('l'), enc.encode('a\0b'), NOFID, NOFID)).toBe(-EINVAL);
      // the helper itself, asked directly (as QEMU's proxy client could)
      const r = await backend.client.call('T_SYMLINK', [process.getuid!(), process.getgid!(), enc.encode('a\0b'), enc.encode('l2')]);
      expect(r).toBe(-EINVAL);
      expect(fs.readdirSync(dir)).toEqual([]);
      await backend.symlink(node, enc.encode('l3'), enc.encode('a'), NOFID, NOFID);
      expect(fs.readlinkSync(path.join(dir, 'l3'))).toBe('a');
      backend.forget(node);
    });
  });
});
