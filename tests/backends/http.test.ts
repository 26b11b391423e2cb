/**
 * The image builder (v86's fs.json + blob format) and HttpBackend over a loopback web server:
 * byte-for-byte reads, laziness, Range chunks vs whole blobs, the LRU bound, shared fetches,
 * and a server that drops connections mid-body (EIO, nothing cached, a retry works).
 */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { buildImage } from '../../src/image.js';
import { HttpBackend } from '../../src/backends/http.js';
import { parseFsJson } from '../../src/backends/fsjson.js';
import type { Backend, Entry } from '../../src/backends/backend.js';
import { serveDir, type ImageServer } from './http-server.js';

const EIO = 5, EROFS = 30, ENOENT = 2;
const enc = (s: string) => new TextEncoder().encode(s);
const sha8 = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex').slice(0, 8) + '.bin';

let tmp: string;
let tree: string;
let out: string;
let server: ImageServer;
const big = crypto.randomBytes(700_000);

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-http-'));
  tree = path.join(tmp, 'tree');
  fs.mkdirSync(path.join(tree, 'sub', 'deep'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'a.txt'), 'hello\n');
  fs.writeFileSync(path.join(tree, 'sub', 'dup.txt'), 'hello\n');
  fs.writeFileSync(path.join(tree, 'sub', 'big.bin'), big);
  fs.writeFileSync(path.join(tree, 'empty'), '');
  fs.symlinkSync('a.txt', path.join(tree, 'link'));
  fs.symlinkSync('../sub', path.join(tree, 'sub', 'deep', 'up'));
  fs.linkSync(path.join(tree, 'a.txt'), path.join(tree, 'hard'));
  fs.chmodSync(path.join(tree, 'sub'), 0o751);
  out = path.join(tmp, 'img');
  buildImage(tree, out);
  server = await serveDir(out);
});

afterAll(async () => {
  await server.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function walk(b: Backend, p: string): Promise<Entry> {
  let e = await b.attach(new Uint8Array(0), 0) as Entry;
  for (const part of p.split('/').filter(Boolean)) {
    const r = await b.lookup(e.node, enc(part));
    if (typeof r === 'number') throw Object.assign(new Error(`lookup ${part}: ${r}`), { errno: -r });
    e = r as Entry;
  }
  return e;
}

async function readAll(b: Backend, p: string, step = 100_000): Promise<Buffer> {
  const e = await walk(b, p);
  const fh = await b.open(e.node, 0) as number;
  const parts: Buffer[] = [];
  for (let off = 0; ; ) {
    const buf = new Uint8Array(step);
    const n = await b.read(fh, off, [buf.subarray(0, step >> 1), buf.subarray(step >> 1)]) as number;
    if (n === 0) break;
    parts.push(Buffer.from(buf.subarray(0, n)));
    off += n;
  }
  await b.close(fh);
  return Buffer.concat(parts);
}

function load(opts: Partial<ConstructorParameters<typeof HttpBackend>[1]> = {}): Promise<HttpBackend> {
  return HttpBackend.load(`${server.url}/fs.json`, { baseUrl: `${server.url}/base/`, chunkSize: 256 * 1024, ...opts });
}

describe('image builder', () => {
  test('fs.json version 3 and SHA-256-named blobs, as v86 tools make them', () => {
    const j = JSON.parse(fs.readFileSync(path.join(out, 'fs.json'), 'utf8'));
    expect(j.version).toBe(3);
    const byName = new Map<string, unknown[]>(j.fsroot.map((e: unknown[]) => [e[0], e]));
    const st = fs.lstatSync(path.join(tree, 'a.txt'));
    expect(byName.get('a.txt')).toEqual(['a.txt', 6, Math.floor(st.mtimeMs / 1000), st.mode, st.uid, st.gid, sha8(enc('hello\n'))]);
    expect(byName.get('hard')![6]).toBe(sha8(enc('hello\n')));
    expect(byName.get('link')![6]).toBe('a.txt');
    expect(byName.get('empty')![6]).toBe('e3b0c442.bin');
    const sub = byName.get('sub')!;
    expect(sub[3]).toBe(fs.statSync(path.join(tree, 'sub')).mode);
    // files before subdirectories, as fs2json's os.walk order gives
    const kids = (sub[6] as unknown[][]).map((e) => e[0]);
    expect(kids.indexOf('deep')).toBe(kids.length - 1);
    expect(fs.readFileSync(path.join(out, 'base', sha8(big))).equals(big)).toBe(true);
    expect(fs.readdirSync(path.join(out, 'base')).sort()).toEqual([sha8(big), sha8(enc('hello\n')), 'e3b0c442.bin'].sort());
    // the total is the sum of every entry's size
    let total = 0;
    const sum = (l: unknown[][]) => { for (const e of l) { total += e[1] as number; if (Array.isArray(e[6])) sum(e[6] as unknown[][]); } };
    sum(j.fsroot);
    expect(j.size).toBe(total);
  });

  test('from a tar: the same tree (type bits added, ./ prefix dropped, hard link shares the blob)', () => {
    const tarFile = path.join(tmp, 'tree.tar');
    execFileSync('tar', ['-C', tree, '-cf', tarFile, '.']);
    const out2 = path.join(tmp, 'img-tar');
    buildImage(tarFile, out2);
    const j = JSON.parse(fs.readFileSync(path.join(out2, 'fs.json'), 'utf8'));
    const root = parseFsJson(j);
    const names = root.children!.map((c) => new TextDecoder().decode(c.name)).sort();
    expect(names).toEqual(['a.txt', 'empty', 'hard', 'link', 'sub']);
    const hard = root.children!.find((c) => new TextDecoder().decode(c.name) === 'hard')!;
    expect(hard.blob).toBe(sha8(enc('hello\n')));
    expect(hard.size).toBe(6);
    expect(fs.readdirSync(path.join(out2, 'base')).sort()).toEqual(fs.readdirSync(path.join(out, 'base')).sort());
  });

  test('a malformed index is refused at load', () => {
    expect(() => parseFsJson({ version: 2, fsroot: [] })).toThrow(/version/);
    expect(() => parseFsJson({ version: 3, fsroot: [['a/b', 0, 0, 0o100644, 0, 0, 'x.bin']] })).toThrow(/bad name/);
    expect(() => parseFsJson({ version: 3, fsroot: [['a', 0, 0, 0o100644, 0, 0, '../x.bin']] })).toThrow(/blob/);
    expect(() => parseFsJson({ version: 3, fsroot: [['a', 0, 0, 0o40755, 0, 0]] })).toThrow(/children/);
    expect(() => parseFsJson({ version: 3, fsroot: [['a', -1, 0, 0o100644, 0, 0, 'x.bin']] })).toThrow(/size/);
  });
});

describe('HttpBackend', () => {
  test('serves the image byte for byte; nothing is fetched before a read', async () => {
    server.range = true;
    server.log.length = 0;
    const b = await load();
    expect(server.log).toEqual(['/fs.json']);
    const root = await walk(b, '');
    expect(root.mode & 0o170000).toBe(0o40000);
    const sub = await walk(b, 'sub');
    expect(sub.mode).toBe(fs.statSync(path.join(tree, 'sub')).mode);
    expect(sub.nlink).toBe(3);
    expect(await readAll(b, 'a.txt')).toEqual(Buffer.from('hello\n'));
    expect((await readAll(b, 'sub/big.bin')).equals(big)).toBe(true);
    expect(await readAll(b, 'empty')).toEqual(Buffer.alloc(0));
    const link = await walk(b, 'sub/deep/up');
    expect(new TextDecoder().decode(await b.readlink(link.node) as Uint8Array)).toBe('../sub');
    expect(await b.lookup(root.node, enc('nope'))).toBe(-ENOENT);
    // 700,000 bytes in 256 KiB chunks: three ranges; the empty file needs no request
    expect(server.log.filter((l) => l.includes(sha8(big)))).toEqual([
      `/base/${sha8(big)} bytes=0-262143`, `/base/${sha8(big)} bytes=262144-524287`, `/base/${sha8(big)} bytes=524288-699999`]);
    expect(server.log.some((l) => l.includes('e3b0c442'))).toBe(false);
    const fetched = b.counters.fetches;
    expect((await readAll(b, 'sub/big.bin')).equals(big)).toBe(true);
    expect(b.counters.fetches).toBe(fetched);
    expect(b.counters.cacheHits).toBeGreaterThan(0);
    // readdir lists every entry with its inode
    const names: string[] = [];
    const fh = await b.open(root.node, 0) as number;
    await b.readdir(fh, 0, { push: (_i, _n, _t, name) => { names.push(new TextDecoder().decode(name)); return true; } });
    expect(names.sort()).toEqual(['.', '..', 'a.txt', 'empty', 'hard', 'link', 'sub']);
  });

  test('a server without Range support: whole blobs, remembered', async () => {
    server.range = false;
    server.log.length = 0;
    const b = await load();
    expect((await readAll(b, 'sub/big.bin', 4096)).equals(big)).toBe(true);
    expect(server.log.filter((l) => l.startsWith('/base/'))).toEqual([`/base/${sha8(big)} bytes=0-262143`]);
    expect(await readAll(b, 'a.txt')).toEqual(Buffer.from('hello\n'));
    expect(server.log.filter((l) => l.startsWith('/base/')).slice(1)).toEqual([`/base/${sha8(enc('hello\n'))}`]);
    server.range = true;
  });

  test('range: never fetches whole blobs', async () => {
    server.log.length = 0;
    const b = await load({ range: 'never' });
    expect((await readAll(b, 'sub/big.bin')).equals(big)).toBe(true);
    expect(server.log.filter((l) => l.startsWith('/base/'))).toEqual([`/base/${sha8(big)}`]);
  });

  test('concurrent reads of one chunk share one request', async () => {
    server.log.length = 0;
    const b = await load();
    const e = await walk(b, 'sub/big.bin');
    const fh = await b.open(e.node, 0) as number;
    const bufs = [0, 1, 2, 3].map(() => new Uint8Array(1000));
    const ns = await Promise.all(bufs.map((buf, i) => b.read(fh, i * 1000, [buf])));
    expect(ns).toEqual([1000, 1000, 1000, 1000]);
    bufs.forEach((buf, i) => expect(Buffer.from(buf)).toEqual(big.subarray(i * 1000, i * 1000 + 1000)));
    expect(server.log.filter((l) => l.startsWith('/base/'))).toHaveLength(1);
    expect(b.counters.fetches).toBe(1);
  });

  test('the cache stays within its byte bound (LRU)', async () => {
    server.log.length = 0;
    const b = await load({ cacheBytes: 300_000, chunkSize: 128 * 1024 });
    expect((await readAll(b, 'sub/big.bin')).equals(big)).toBe(true);
    expect(b.counters.cachedBytes).toBeLessThanOrEqual(300_000);
    const before = b.counters.fetches;
    expect((await readAll(b, 'sub/big.bin')).equals(big)).toBe(true);
    expect(b.counters.fetches).toBeGreaterThan(before); // evicted chunks came again
    expect(b.counters.cachedBytes).toBeLessThanOrEqual(300_000);
  });

  test('server gone mid-body: EIO, nothing cached, a later read fetches again and is correct', async () => {
    for (const range of [true, false]) {
      server.range = range;
      const b = await load();
      const e = await walk(b, 'sub/big.bin');
      const fh = await b.open(e.node, 0) as number;
      server.breakNext = 1;
      const small = new Uint8Array(100_000); // within the first chunk: one request
      await expect(Promise.resolve(b.read(fh, 0, [small]))).rejects.toMatchObject({ errno: EIO });
      expect(b.counters.errors).toBeGreaterThan(0);
      expect(b.counters.cachedBytes).toBe(0);
      const buf = new Uint8Array(300_000);
      expect(await b.read(fh, 0, [buf])).toBe(300_000);
      expect(Buffer.from(buf).equals(big.subarray(0, 300_000))).toBe(true);
    }
    server.range = true;
  });

  test('a server that never answers: EIO after timeoutMs', async () => {
    const http = await import('node:http');
    const stall = http.createServer(() => { /* never answers */ });
    await new Promise<void>((r) => stall.listen(0, '127.0.0.1', r));
    const port = (stall.address() as import('node:net').AddressInfo).port;
    try {
      const doc = JSON.parse(fs.readFileSync(path.join(out, 'fs.json'), 'utf8'));
      const b = new HttpBackend(doc, { baseUrl: `http://127.0.0.1:${port}/base/`, timeoutMs: 200 });
      const e = await walk(b, 'a.txt');
      const fh = await b.open(e.node, 0) as number;
      await expect(Promise.resolve(b.read(fh, 0, [new Uint8Array(10)]))).rejects.toMatchObject({ errno: EIO });
    } finally {
      stall.closeAllConnections();
      await new Promise<void>((r) => stall.close(() => r()));
    }
  });

  test('read-only: every change is EROFS', async () => {
    const b = await load();
    const root = await walk(b, '');
    const f = await walk(b, 'a.txt');
    expect(await b.open(f.node, 1)).toBe(-EROFS);
    expect(await b.open(f.node, 0o1000)).toBe(-EROFS);
    expect(await b.setattr(f.node, { mode: 0o600 })).toBe(-EROFS);
    expect(await (b as Backend).mkdir(root.node, enc("x"), 0o755, 0, 0)).toBe(-EROFS);
    expect(await (b as Backend).unlinkat(root.node, enc("a.txt"), 0)).toBe(-EROFS);
  });
});
