/**
 * A page for the browser storage test: an OverlayBackend over an HttpBackend image with its
 * upper layer in IndexedDB. `?phase=write` changes the tree and flushes; `?phase=read` (after
 * a reload) reads it back. Each phase POSTs its findings to /result as JSON.
 */
import { HttpBackend } from '../../src/backends/http.js';
import { OverlayBackend } from '../../src/backends/overlay.js';
import { IndexedDbStore } from '../../src/backends/upper-idb-store.js';
import type { Backend, Entry } from '../../src/backends/backend.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

async function walk(b: Backend, p: string): Promise<Entry> {
  let e = await b.attach(new Uint8Array(0), 0) as Entry;
  for (const part of p.split('/').filter(Boolean)) {
    const r = await b.lookup(e.node, enc(part));
    b.forget(e.node);
    if (typeof r === 'number') throw new Error(`${p}: errno ${-r}`);
    e = r as Entry;
  }
  return e;
}

async function read(b: Backend, p: string): Promise<string> {
  const e = await walk(b, p);
  const fh = await b.open(e.node, 0) as number;
  const buf = new Uint8Array(1 << 16);
  const n = await b.read(fh, 0, [buf]) as number;
  await b.close(fh);
  b.forget(e.node);
  if (n < 0) throw new Error(`read ${p}: errno ${-n}`);
  return dec(buf.subarray(0, n));
}

async function exists(b: Backend, p: string): Promise<boolean> {
  try { b.forget((await walk(b, p)).node); return true; } catch { return false; }
}

async function run(): Promise<unknown> {
  const phase = new URLSearchParams(location.search).get('phase');
  const lower = await HttpBackend.load('/img/fs.json', { baseUrl: '/img/base/' });
  const store = await IndexedDbStore.open('virtio9p-storage-test', { persist: true });
  const o = await OverlayBackend.open({ lower, store });
  if (phase === 'write') {
    const root = await walk(o, '');
    await o.mkdir(root.node, enc('notes'), 0o755, 0, 0);
    const notes = await walk(o, 'notes');
    const c = await o.create(notes.node, enc('hello.txt'), 2, 0o644, 0, 0);
    if (typeof c === 'number') throw new Error(`create: ${c}`);
    await o.write(c.fh, 0, [enc('written in the browser')]);
    await o.close(c.fh);
    const f1 = await walk(o, 'f1.txt');
    const fh = await o.open(f1.node, 2) as number;
    if (fh < 0) throw new Error(`open f1.txt: errno ${-fh}`);
    const wn = await o.write(fh, 0, [enc('F')]) as number;
    if (wn !== 1) throw new Error(`write f1.txt: ${wn}`);
    await o.close(fh);
    await o.unlinkat(root.node, enc('f2.txt'), 0);
    await o.flush();
    const unflushed = await o.create(notes.node, enc('unflushed.txt'), 2, 0o644, 0, 0);
    if (typeof unflushed === 'number') throw new Error('create');
    await o.write(unflushed.fh, 0, [enc('lost on reload')]);
    return { phase, persisted: store.persisted, ino: (await walk(o, 'notes/hello.txt')).ino, f1: await read(o, 'f1.txt'), counters: lower.counters };
  }
  const r = {
    phase,
    hello: await read(o, 'notes/hello.txt'),
    ino: (await walk(o, 'notes/hello.txt')).ino,
    f1: await read(o, 'f1.txt'),
    f2: await exists(o, 'f2.txt'),
    unflushed: await exists(o, 'notes/unflushed.txt'),
    counters: lower.counters,
  };
  await o.reset();
  await o.flush();
  return { ...r, afterReset: { f2: await exists(o, 'f2.txt'), notes: await exists(o, 'notes') } };
}

run().then(
  (r) => fetch('/result', { method: 'POST', body: JSON.stringify(r) }),
  (e) => fetch('/result', { method: 'POST', body: JSON.stringify({ error: String(e?.stack ?? e) }) }),
);
