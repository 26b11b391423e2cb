/**
 * OverlayBackend beyond the conformance suite: the lower layer is never written, copy-up only
 * when data changes, inode numbers (stable across copy-up and reloads, unique across layers),
 * persistence (what a reload keeps and loses), hard links and xattrs of lower objects, reset,
 * export as a tar with whiteouts, a full upper layer (ENOSPC), journal compaction, and an HTTP
 * lower layer whose server drops connections (EIO, then a retry works).
 */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Backend, Entry, Stat } from '../../src/backends/backend.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { OverlayBackend, UPPER_INO_BASE } from '../../src/backends/overlay.js';
import { MemoryUpperStore } from '../../src/backends/upper-store.js';
import { NodeDirStore } from '../../src/backends/upper-dir-store.js';
import { HttpBackend } from '../../src/backends/http.js';
import { buildImage } from '../../src/image.js';
import { readTar } from '../../src/tar.js';
import { serveDir, type ImageServer } from './http-server.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const EIO = 5, ENOENT = 2, ENOSPC = 28;
const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_TRUNC = 0o1000;

/** Path-level helpers over any Backend (every Node taken is given back). */
class P {
  constructor(readonly b: Backend) {}
  async walk(p: string): Promise<Entry> {
    let e = await this.b.attach(new Uint8Array(0), 0) as Entry;
    for (const part of p.split('/').filter(Boolean)) {
      const r = await this.b.lookup(e.node, enc(part));
      this.b.forget(e.node);
      if (typeof r === 'number') throw Object.assign(new Error(`${p}: errno ${-r}`), { errno: -r });
      e = r as Entry;
    }
    return e;
  }
  async stat(p: string): Promise<Stat> { const e = await this.walk(p); this.b.forget(e.node); return e; }
  async errno(fn: () => Promise<unknown>): Promise<number> {
    try { await fn(); return 0; } catch (e) { return (e as { errno?: number }).errno ?? -1; }
  }
  async read(p: string): Promise<string> {
    const e = await this.walk(p);
    const fh = await this.b.open(e.node, O_RDONLY) as number;
    const buf = new Uint8Array(1 << 20);
    const n = await this.b.read(fh, 0, [buf]);
    await this.b.close(fh);
    this.b.forget(e.node);
    if (typeof n === 'number' && n < 0) throw Object.assign(new Error('read'), { errno: -n });
    return dec(buf.subarray(0, n as number));
  }
  async write(p: string, data: string, off = 0, flags = O_RDWR): Promise<void> {
    const e = await this.walk(p);
    const fh = await this.b.open(e.node, flags) as number;
    if (fh < 0) throw Object.assign(new Error('open'), { errno: -fh });
    const n = await this.b.write(fh, off, [enc(data)]);
    await this.b.close(fh);
    this.b.forget(e.node);
    if ((n as number) < 0) throw Object.assign(new Error('write'), { errno: -(n as number) });
  }
  async create(p: string, data: string, opts: { fsync?: boolean; close?: boolean } = {}): Promise<void> {
    const i = p.lastIndexOf('/');
    const d = await this.walk(i < 0 ? '' : p.slice(0, i));
    const c = await this.b.create(d.node, enc(p.slice(i + 1)), O_RDWR | O_CREAT, 0o644, 0, 0);
    this.b.forget(d.node);
    if (typeof c === 'number') throw Object.assign(new Error('create'), { errno: -c });
    const n = await this.b.write(c.fh, 0, [enc(data)]);
    if ((n as number) < 0) throw Object.assign(new Error('write'), { errno: -(n as number) });
    if (opts.fsync) await this.b.fsync(c.fh, false);
    if (opts.close !== false) { await this.b.close(c.fh); this.b.forget(c.node); }
  }
  async at(p: string, fn: (dir: number, name: Uint8Array) => Promise<unknown> | unknown): Promise<void> {
    const i = p.lastIndexOf('/');
    const d = await this.walk(i < 0 ? '' : p.slice(0, i));
    const r = await fn(d.node, enc(p.slice(i + 1)));
    this.b.forget(d.node);
    if (typeof r === 'number' && r < 0) throw Object.assign(new Error(p), { errno: -r });
  }
  async ls(p: string): Promise<string[]> {
    const e = await this.walk(p);
    const fh = await this.b.open(e.node, O_RDONLY) as number;
    const names: string[] = [];
    await this.b.readdir(fh, 0, { push: (_i, _n, _t, name) => { names.push(dec(name)); return true; } });
    await this.b.close(fh);
    this.b.forget(e.node);
    return names.filter((n) => n !== '.' && n !== '..').sort();
  }
  /** every path → inode number */
  async inos(p = ''): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const visit = async (q: string) => {
      const s = await this.stat(q);
      out.set(q, s.ino);
      if ((s.mode & 0o170000) === 0o40000) for (const n of await this.ls(q)) await visit(q === '' ? n : `${q}/${n}`);
    };
    await visit(p);
    return out;
  }
}

function lowerTree(): MemoryBackend {
  const m = MemoryBackend.fromTree({
    'a.txt': 'lower a\n',
    d: { 'b.txt': 'lower b\n', e: { 'c.txt': 'lower c\n' } },
    keep: { 'k.txt': 'kept\n' },
    big: 'x'.repeat(100_000),
  });
  return m;
}

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-ovl-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

describe('OverlayBackend', () => {
  test('changes never reach the lower layer; copy-up only when data changes', async () => {
    const lower = lowerTree();
    const o = await OverlayBackend.open({ lower });
    const p = new P(o), l = new P(lower);
    expect(await p.read('d/e/c.txt')).toBe('lower c\n');
    await p.at('a.txt', (d, n) => o.unlinkat(d, n, 0));
    await p.at('d', async (d, n) => { const r = await p.walk(''); const x = await o.renameat(r.node, enc('d'), r.node, enc('moved')); o.forget(r.node); return x; });
    const k = await p.walk('keep/k.txt');
    expect(await o.setattr(k.node, { mode: 0o600 })).toBe(0);
    o.forget(k.node);
    expect(o.counters.copyUps).toBe(0);
    expect(o.upperBytes).toBe(0);
    await p.write('moved/b.txt', 'UPPER', 0);
    expect(o.counters.copyUps).toBe(1);
    expect(await p.read('moved/b.txt')).toBe('UPPER b\n');
    expect(await p.read('moved/e/c.txt')).toBe('lower c\n');
    expect(await p.ls('')).toEqual(['big', 'keep', 'moved']);
    expect((await p.stat('keep/k.txt')).mode & 0o7777).toBe(0o600);
    // the lower tree is as it was
    expect(await l.ls('')).toEqual(['a.txt', 'big', 'd', 'keep']);
    expect(await l.read('d/b.txt')).toBe('lower b\n');
    expect((await l.stat('keep/k.txt')).mode & 0o7777).toBe(0o644);
  });

  test('inode numbers: a lower object keeps its number through copy-up; new objects are ≥ 2^48; no two objects share one', async () => {
    const lower = lowerTree();
    const o = await OverlayBackend.open({ lower });
    const p = new P(o);
    const lowerIno = (await new P(lower).stat('d/b.txt')).ino;
    expect((await p.stat('d/b.txt')).ino).toBe(lowerIno);
    await p.write('d/b.txt', 'changed');
    expect((await p.stat('d/b.txt')).ino).toBe(lowerIno);
    await p.create('new.txt', 'n');
    await p.at('d/sub', (d, n) => o.mkdir(d, n, 0o755, 0, 0));
    expect((await p.stat('new.txt')).ino).toBeGreaterThanOrEqual(UPPER_INO_BASE);
    const inos = await p.inos();
    expect(new Set(inos.values()).size).toBe(inos.size);
  });

  test('persistence: a reload keeps what was flushed (same inode numbers) and loses what was not', async () => {
    const dir = path.join(tmp, 'persist');
    const lower = lowerTree();
    let store = new NodeDirStore(dir);
    const o = await OverlayBackend.open({ lower, store });
    const p = new P(o);
    await p.create('kept.txt', 'kept data', { fsync: true, close: false });
    await p.write('d/b.txt', 'B', 0);                                 // close after write flushes
    await p.at('keep', (d, n) => o.unlinkat(d, n, 0x200)).catch(() => undefined); // not empty
    await p.at('keep/k.txt', (d, n) => o.unlinkat(d, n, 0));
    await p.at('keep', (d, n) => o.unlinkat(d, n, 0x200));
    await p.at('d/e/c.txt', async (d, n) => { const t = await p.walk('d'); const r = await o.link(t.node, enc('hard'), (await p.walk('d/e/c.txt')).node); o.forget(t.node); return r; });
    await o.flush();
    const before = await p.inos();
    await p.create('lost.txt', 'never flushed', { close: false });     // open, written, no fsync
    store.close();

    store = new NodeDirStore(dir);
    expect(store.ids()).toHaveLength(3); // kept.txt, d/b.txt and the unflushed lost.txt
    const o2 = await OverlayBackend.open({ lower, store });
    expect(store.ids()).toHaveLength(2); // lost.txt's data is gone with it
    const p2 = new P(o2);
    expect(await p2.ls('')).toEqual(['a.txt', 'big', 'd', 'kept.txt']);
    expect(await p2.read('kept.txt')).toBe('kept data');
    expect(await p2.read('d/b.txt')).toBe('Bower b\n');
    expect(await p2.read('d/hard')).toBe('lower c\n');
    expect((await p2.stat('d/hard')).nlink).toBe(2);
    expect(await p2.inos()).toEqual(before);
    // a file made now gets a number never used before
    await p2.create('later.txt', 'x');
    const all = await p2.inos();
    expect(all.get('d/hard')).toBe(all.get('d/e/c.txt')); // one object, two names
    expect(new Set(all.values()).size).toBe(all.size - 1);
    expect(all.get('later.txt')).toBeGreaterThan(Math.max(...[...before.values()]));
    store.close();
  });

  test('hard links of a lower file share data after copy-up; xattrs of lower objects', async () => {
    const lower = lowerTree();
    const le = await new P(lower).walk('a.txt');
    expect(lower.setxattr(le.node, enc('user.k'), enc('v'), 0)).toBe(0);
    lower.forget(le.node);
    const o = await OverlayBackend.open({ lower });
    const p = new P(o);
    const a = await p.walk('a.txt');
    expect(dec(await o.getxattr(a.node, enc('user.k')) as Uint8Array)).toBe('v');
    expect(await o.setxattr(a.node, enc('user.k'), enc('w'), 0)).toBe(0);
    const root = await p.walk('');
    expect(await o.link(root.node, enc('b.txt'), a.node)).toBe(0);
    o.forget(root.node); o.forget(a.node);
    await p.write('b.txt', 'L');
    expect(await p.read('a.txt')).toBe('Lower a\n');
    expect((await p.stat('a.txt')).ino).toBe((await p.stat('b.txt')).ino);
    const lx = await new P(lower).walk('a.txt');
    expect(dec(lower.getxattr(lx.node, enc('user.k')) as Uint8Array)).toBe('v');
  });

  test('a lower hard link whose other name is in a directory not yet read: link count, unlink, then the other name', async () => {
    const lower = MemoryBackend.fromTree({ x: { f: 'shared\n' }, y: {} });
    const lp = new P(lower);
    const f = await lp.walk('x/f'), y = await lp.walk('y');
    expect(lower.link(y.node, enc('g'), f.node)).toBe(0);
    lower.forget(f.node); lower.forget(y.node);
    const store = new MemoryUpperStore();
    const o = await OverlayBackend.open({ lower, store });
    const p = new P(o);
    expect((await p.stat('x/f')).nlink).toBe(2);
    await p.at('x/f', (d, n) => o.unlinkat(d, n, 0));
    await o.flush();
    expect(await p.ls('y')).toEqual(['g']);
    expect((await p.stat('y/g')).nlink).toBe(1);
    expect(await p.read('y/g')).toBe('shared\n');
    await p.write('y/g', 'S');
    expect(await p.read('y/g')).toBe('Shared\n');
    const o2 = await OverlayBackend.open({ lower, store });
    expect(await new P(o2).ls('x')).toEqual([]);
    expect(await new P(o2).read('y/g')).toBe('Shared\n');
  });

  test('reset() gives the lower tree back; exportTar writes changes with whiteouts', async () => {
    const lower = lowerTree();
    const o = await OverlayBackend.open({ lower, store: new MemoryUpperStore() });
    const p = new P(o);
    await p.create('new.txt', 'new!');
    await p.at('a.txt', (d, n) => o.unlinkat(d, n, 0));
    await p.write('keep/k.txt', 'K');
    // replace directory d by a new one
    const r = await p.walk('');
    expect(await o.renameat(r.node, enc('d'), r.node, enc('old-d'))).toBe(0);
    expect(await o.mkdir(r.node, enc('d'), 0o700, 0, 0)).toMatchObject({ mode: 0o40700 });
    o.forget(r.node);
    const chunks: Uint8Array[] = [];
    for await (const c of o.exportTar()) chunks.push(c);
    const tar = Buffer.concat(chunks);
    const entries = [...readTar((pos, len) => tar.subarray(pos, pos + len))];
    const byName = new Map(entries.map((e) => [e.name, e]));
    expect([...byName.keys()].sort()).toEqual([
      '.wh.a.txt', 'd', 'd/.wh..wh..opq', 'keep/k.txt', 'new.txt', 'old-d', 'old-d/b.txt', 'old-d/e', 'old-d/e/c.txt',
    ]);
    const body = (n: string) => dec(tar.subarray(byName.get(n)!.offset, byName.get(n)!.offset + byName.get(n)!.size));
    expect(body('new.txt')).toBe('new!');
    expect(body('keep/k.txt')).toBe('Kept\n');
    expect(body('old-d/e/c.txt')).toBe('lower c\n');
    expect(byName.get('d')!.type).toBe('5');

    await o.reset();
    expect(await p.ls('')).toEqual(['a.txt', 'big', 'd', 'keep']);
    expect(await p.read('keep/k.txt')).toBe('kept\n');
    expect(o.upperBytes).toBe(0);
  });

  test('a full upper layer is ENOSPC; the file keeps what fitted', async () => {
    const o = await OverlayBackend.open({ lower: lowerTree(), store: new MemoryUpperStore(150_000) });
    const p = new P(o);
    await p.write('big', 'y'); // copy-up: 100,000 bytes
    expect(await p.errno(() => p.create('more', 'z'.repeat(60_000)))).toBe(ENOSPC);
    expect((await p.read('big')).length).toBe(100_000);
  });

  test('maxInodes bounds the namespace: creating beyond it is ENOSPC', async () => {
    const o = await OverlayBackend.open({ lower: new MemoryBackend(), maxInodes: 5 });
    const p = new P(o);
    for (let i = 0; i < 4; i++) await p.create(`f${i}`, 'x');
    expect(await p.errno(() => p.create('f4', 'x'))).toBe(ENOSPC);
    expect(await p.ls('')).toEqual(['f0', 'f1', 'f2', 'f3']);
  });

  test('the journal is compacted when it is mostly superseded', async () => {
    const store = new MemoryUpperStore();
    const o = await OverlayBackend.open({ lower: lowerTree(), store });
    const p = new P(o);
    const k = await p.walk('keep/k.txt');
    for (let i = 0; i < 600; i++) {
      expect(await o.setattr(k.node, { mode: 0o600 | (i & 7) })).toBe(0);
      await o.flush();
    }
    o.forget(k.node);
    expect((store.loadJournal() as string[]).length).toBeLessThan(300);
    const o2 = await OverlayBackend.open({ lower: o.lower, store });
    expect((await new P(o2).stat('keep/k.txt')).mode & 0o7777).toBe(0o600 | (599 & 7));
  });
});

describe('OverlayBackend over HttpBackend: a server that drops connections', () => {
  let server: ImageServer;
  beforeAll(async () => {
    const tree = path.join(tmp, 'http-tree');
    fs.mkdirSync(tree);
    fs.writeFileSync(path.join(tree, 'f.bin'), Buffer.alloc(50_000, 7));
    buildImage(tree, path.join(tmp, 'http-img'));
    server = await serveDir(path.join(tmp, 'http-img'));
  });
  afterAll(async () => { await server.close(); });

  test('EIO for the read or copy-up that failed, nothing half-copied, a retry works', async () => {
    const lower = await HttpBackend.load(`${server.url}/fs.json`, { baseUrl: `${server.url}/base/`, chunkSize: 16384 });
    const o = await OverlayBackend.open({ lower });
    const p = new P(o);
    server.breakNext = 1;
    expect(await p.errno(() => p.read('f.bin'))).toBe(EIO);
    expect(await p.read('f.bin')).toBe('\x07'.repeat(50_000));
    const o2 = await OverlayBackend.open({ lower: await HttpBackend.load(`${server.url}/fs.json`, { baseUrl: `${server.url}/base/` }) });
    const p2 = new P(o2);
    server.breakNext = 1;
    expect(await p2.errno(() => p2.write('f.bin', 'A'))).toBe(EIO);
    expect(o2.upperBytes).toBe(0);
    expect(await p2.read('f.bin')).toBe('\x07'.repeat(50_000));
    await p2.write('f.bin', 'A');
    expect(await p2.read('f.bin')).toBe('A' + '\x07'.repeat(49_999));
    expect(await p2.errno(() => p2.stat('nope'))).toBe(ENOENT);
  });
});

void O_WRONLY; void O_TRUNC;
