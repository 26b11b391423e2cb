/**
 * The differential property's machinery (shared by the differential tests): the random request
 * model, running one request through a P9Client, normalising replies, and `compare`, which runs
 * a sequence against two backends and then compares the whole tree read through both.
 */
import { expect, afterAll } from '@jest/globals';
import fc from 'fast-check';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createMachine } from '../../src/testing/machine.js';
import { P9Client, P9ClientError } from '../../src/testing/p9/client.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { LocalBackend } from '../../src/backends/local.js';
import type { Backend } from '../../src/backends/backend.js';


export const SEED = process.env.DIFF_SEED !== undefined ? Number(process.env.DIFF_SEED) : 0x5eed_d1ff;
// A fixed number of runs keeps CI deterministic; DIFF_MS explores for longer (time-boxed).
export const RUNS = Number(process.env.DIFF_RUNS ?? 400);
export const TIME_MS = Number(process.env.DIFF_MS ?? 0);
const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_EXCL = 0o200, O_TRUNC = 0o1000, O_APPEND = 0o2000, O_DIRECTORY = 0o200000;
const S_IFDIR = 0o40000, S_IFREG = 0o100000, S_IFIFO = 0o10000;
const AT_REMOVEDIR = 0x200;

const NAMES = ['a', 'b', 'd', 'e'];
const pathArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NAMES) },
  fc.tuple(fc.constantFrom('d', 'e', 'a'), fc.constantFrom(...NAMES)).map(([x, y]) => `${x}/${y}`),
  fc.tuple(fc.constantFrom('d', 'e'), fc.constantFrom('d', 'e'), fc.constantFrom(...NAMES)).map(([x, y, z]) => `${x}/${y}/${z}`),
);
const dataArb = fc.uint8Array({ maxLength: 3000 });

export type Op =
  | { op: 'mkdir'; p: string; mode: number }
  | { op: 'create'; p: string; mode: number; flags: number; data: Uint8Array }
  | { op: 'write'; p: string; off: number; data: Uint8Array; flags: number }
  | { op: 'read'; p: string; off: number; count: number }
  | { op: 'truncate'; p: string; size: number }
  | { op: 'chmod'; p: string; mode: number }
  | { op: 'getattr'; p: string }
  | { op: 'readdir'; p: string; count: number }
  | { op: 'rename'; p: string; q: string }
  | { op: 'renameFid'; p: string; q: string }
  | { op: 'unlink'; p: string; dir: boolean }
  | { op: 'remove'; p: string }
  | { op: 'symlink'; p: string; target: string }
  | { op: 'readlink'; p: string }
  | { op: 'link'; p: string; q: string }
  | { op: 'walk'; p: string }
  | { op: 'open'; p: string; flags: number }
  | { op: 'statfs' }
  | { op: 'fsync'; p: string }
  | { op: 'mknodReg'; p: string; mode: number }
  | { op: 'mknodFifo'; p: string }
  | { op: 'xattr'; p: string; name: string; value: Uint8Array };

const OPS_BOTH = ['mkdir', 'create', 'write', 'read', 'truncate', 'chmod', 'getattr', 'readdir', 'rename', 'renameFid', 'unlink', 'remove', 'symlink', 'readlink', 'link', 'walk', 'open', 'statfs', 'fsync', 'mknodReg'];
const OPS_ALL = [...OPS_BOTH, 'mknodFifo', 'xattr'];
export const ENABLED = new Set(process.env.DIFF_OPS === 'all' ? OPS_ALL : OPS_BOTH);

const opArbs: Record<string, fc.Arbitrary<Op>> = {
  mkdir: fc.record({ op: fc.constant('mkdir' as const), p: pathArb, mode: fc.constantFrom(0o755, 0o700, 0o1777) }),
  create: fc.record({ op: fc.constant('create' as const), p: pathArb, mode: fc.constantFrom(0o644, 0o600, 0o755), flags: fc.constantFrom(O_RDWR, O_RDWR | O_EXCL, O_WRONLY | O_TRUNC, O_RDWR | O_APPEND), data: dataArb }),
  write: fc.record({ op: fc.constant('write' as const), p: pathArb, off: fc.nat({ max: 5000 }), data: dataArb, flags: fc.constantFrom(O_WRONLY, O_RDWR, O_RDWR | O_APPEND, O_WRONLY | O_TRUNC) }),
  read: fc.record({ op: fc.constant('read' as const), p: pathArb, off: fc.nat({ max: 6000 }), count: fc.constantFrom(0, 1, 100, 4096, 60000) }),
  truncate: fc.record({ op: fc.constant('truncate' as const), p: pathArb, size: fc.nat({ max: 6000 }) }),
  chmod: fc.record({ op: fc.constant('chmod' as const), p: pathArb, mode: fc.constantFrom(0o600, 0o4755, 0o777, 0o000) }),
  getattr: fc.record({ op: fc.constant('getattr' as const), p: pathArb }),
  readdir: fc.record({ op: fc.constant('readdir' as const), p: fc.oneof(fc.constant(''), pathArb), count: fc.constantFrom(100, 8192) }),
  rename: fc.record({ op: fc.constant('rename' as const), p: pathArb, q: pathArb }),
  renameFid: fc.record({ op: fc.constant('renameFid' as const), p: pathArb, q: pathArb }),
  unlink: fc.record({ op: fc.constant('unlink' as const), p: pathArb, dir: fc.boolean() }),
  remove: fc.record({ op: fc.constant('remove' as const), p: pathArb }),
  symlink: fc.record({ op: fc.constant('symlink' as const), p: pathArb, target: fc.constantFrom('a', '../b', '/etc/passwd', 'd/e/a', 'x'.repeat(200)) }),
  readlink: fc.record({ op: fc.constant('readlink' as const), p: pathArb }),
  link: fc.record({ op: fc.constant('link' as const), p: pathArb, q: pathArb }),
  walk: fc.record({ op: fc.constant('walk' as const), p: fc.oneof(pathArb, fc.constantFrom('..', 'd/..', 'd/../a', 'a/..', '../..')) }),
  open: fc.record({ op: fc.constant('open' as const), p: fc.oneof(fc.constant(''), pathArb), flags: fc.constantFrom(O_RDONLY, O_WRONLY, O_RDWR, O_DIRECTORY, O_RDONLY | O_TRUNC, O_CREAT) }),
  statfs: fc.constant({ op: 'statfs' as const }),
  fsync: fc.record({ op: fc.constant('fsync' as const), p: pathArb }),
  mknodReg: fc.record({ op: fc.constant('mknodReg' as const), p: pathArb, mode: fc.constantFrom(0o644, 0o600) }),
  mknodFifo: fc.record({ op: fc.constant('mknodFifo' as const), p: pathArb }),
  xattr: fc.record({ op: fc.constant('xattr' as const), p: pathArb, name: fc.constantFrom('user.a', 'user.b'), value: fc.uint8Array({ maxLength: 50 }) }),
};
export const opArb: fc.Arbitrary<Op> = fc.oneof(...[...ENABLED].map((k) => ({ weight: ['create', 'write', 'read', 'mkdir', 'getattr', 'readdir'].includes(k) ? 3 : 1, arbitrary: opArbs[k] })));

// ---------------------------------------------------------------- running one op

const split = (p: string): string[] => p.split('/').filter((x) => x !== '');
const parent = (p: string): string[] => split(p).slice(0, -1);
const leaf = (p: string): string => split(p).slice(-1)[0] ?? '';
const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');

async function walkTo(c: P9Client, names: string[]): Promise<number> {
  const fid = c.allocFid();
  try {
    const qs = await c.walk(0, fid, names);
    if (qs.length !== names.length) throw new P9ClientError(-1, `partial walk ${qs.length}/${names.length}`);
  } catch (e) {
    c.releaseFid(fid);
    throw e;
  }
  return fid;
}

async function withFid<T>(c: P9Client, names: string[], fn: (fid: number) => Promise<T>): Promise<T> {
  const fid = await walkTo(c, names);
  try {
    return await fn(fid);
  } finally {
    await c.clunk(fid).catch(() => undefined);
  }
}

function normAttr(a: Awaited<ReturnType<P9Client['getattr']>>): unknown {
  const isDir = (a.mode & 0o170000) === S_IFDIR;
  return { qtype: a.qid.type, mode: a.mode.toString(8), uid: a.uid, gid: a.gid, nlink: Number(a.nlink), size: isDir ? 'dir' : Number(a.size), valid: a.valid.toString(16) };
}

async function run(c: P9Client, o: Op): Promise<unknown> {
  switch (o.op) {
    case 'mkdir': return withFid(c, parent(o.p), async (d) => (await c.mkdir(d, leaf(o.p), S_IFDIR | o.mode, 0)).type);
    case 'create': return withFid(c, parent(o.p), async (d) => {
      const r = await c.lcreate(d, leaf(o.p), o.flags, S_IFREG | o.mode, 0);
      const n = o.data.length ? await c.write(d, 0, o.data) : 0;
      return { qtype: r.qid.type, n };
    });
    case 'write': return withFid(c, split(o.p), async (f) => {
      await c.lopen(f, o.flags);
      return c.write(f, o.off, o.data);
    });
    case 'read': return withFid(c, split(o.p), async (f) => {
      await c.lopen(f, O_RDONLY);
      return hexOf(await c.read(f, o.off, o.count));
    });
    case 'truncate': return withFid(c, split(o.p), (f) => c.setattr(f, { valid: 0x8, size: o.size }));
    case 'chmod': return withFid(c, split(o.p), async (f) => {
      await c.setattr(f, { valid: 0x1, mode: o.mode });
      return normAttr(await c.getattr(f, 0x3fffn));
    });
    case 'getattr': return withFid(c, split(o.p), async (f) => normAttr(await c.getattr(f, 0x3fffn)));
    case 'readdir': return withFid(c, split(o.p), async (f) => {
      await c.lopen(f, O_RDONLY | O_DIRECTORY);
      const ents = await c.readdirAll(f, o.count);
      return ents.map((e) => `${Buffer.from(e.name).toString('latin1')}:${e.type}:${e.qid.type}`).sort();
    });
    case 'rename': return withFid(c, parent(o.p), (a) => withFid(c, parent(o.q), (b) => c.renameat(a, leaf(o.p), b, leaf(o.q))));
    case 'renameFid': return withFid(c, split(o.p), (f) => withFid(c, parent(o.q), (b) => c.rename(f, b, leaf(o.q))));
    case 'unlink': return withFid(c, parent(o.p), (d) => c.unlinkat(d, leaf(o.p), o.dir ? AT_REMOVEDIR : 0));
    case 'remove': {
      const f = await walkTo(c, split(o.p));
      await c.remove(f); // clunks f whatever the outcome
      return 'removed';
    }
    case 'symlink': return withFid(c, parent(o.p), async (d) => (await c.symlink(d, leaf(o.p), o.target, 0)).type);
    case 'readlink': return withFid(c, split(o.p), (f) => c.readlink(f));
    case 'link': return withFid(c, split(o.p), (f) => withFid(c, parent(o.q), (d) => c.link(d, f, leaf(o.q))));
    case 'walk': {
      const fid = c.allocFid();
      const qs = await c.walk(0, fid, split(o.p)).finally(() => undefined);
      if (qs.length === split(o.p).length) await c.clunk(fid); else c.releaseFid(fid);
      return qs.map((q) => q.type);
    }
    case 'open': return withFid(c, split(o.p), async (f) => (await c.lopen(f, o.flags)).qid.type);
    case 'statfs': {
      const s = await c.statfs(0);
      return { type: s.type, namelen: s.namelen };
    }
    case 'fsync': return withFid(c, split(o.p), async (f) => {
      await c.lopen(f, O_RDONLY);
      await c.fsync(f, 0);
    });
    case 'mknodReg': return withFid(c, parent(o.p), async (d) => (await c.mknod(d, leaf(o.p), S_IFREG | o.mode, 0, 0, 0)).type);
    case 'mknodFifo': return withFid(c, parent(o.p), async (d) => (await c.mknod(d, leaf(o.p), S_IFIFO | 0o644, 0, 0, 0)).type);
    case 'xattr': return withFid(c, split(o.p), async (f) => {
      await c.xattrcreate(f, o.name, o.value.length, 0);
      await c.write(f, 0, o.value);
      await c.clunk(f).catch(() => undefined);
      const g = await walkTo(c, split(o.p));
      try {
        const size = await c.xattrwalk(g, c.allocFid(), o.name);
        return Number(size);
      } finally { await c.clunk(g).catch(() => undefined); }
    });
  }
}

export const stats: Record<string, number> = {};
async function outcome(c: P9Client, o: Op): Promise<unknown> {
  try {
    const ok = (await run(c, o)) ?? null;
    stats[`${o.op}:ok`] = (stats[`${o.op}:ok`] ?? 0) + 1;
    return { ok };
  } catch (e) {
    if (e instanceof P9ClientError) {
      stats[`${o.op}:${e.errno}`] = (stats[`${o.op}:${e.errno}`] ?? 0) + 1;
      return { errno: e.errno };
    }
    throw e;
  }
}

// ---------------------------------------------------------------- the property

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

async function boot(backend: Backend): Promise<{ c: P9Client; destroy: () => void }> {
  const m = await createMachine({ backend, guestMemorySize: 4 << 20, msize: 65536 });
  await m.client.version(65536);
  await m.client.attach(0, 0xffffffff, 'root', '', 0);
  return { c: m.client, destroy: () => undefined };
}

/** every sequence starts from the same small tree, so that most requests find something */
export const PREFIX: Op[] = [
  { op: 'mkdir', p: 'd', mode: 0o755 },
  { op: 'mkdir', p: 'd/e', mode: 0o750 },
  { op: 'create', p: 'a', mode: 0o644, flags: O_RDWR, data: new TextEncoder().encode('hello, differential world\n') },
  { op: 'create', p: 'd/b', mode: 0o600, flags: O_RDWR, data: new Uint8Array(5000).map((_, i) => i & 0xff) },
  { op: 'symlink', p: 'd/e/a', target: '../../a' },
];

/**
 * Divergences already reported and pinned by a failing regression test below; the random
 * property stops a sequence that hits one (so that it keeps finding new ones). Remove an entry
 * once its regression test passes.
 */
// Divergences found by the property and not fixed yet go here (each with its own regression
// test), so the random search keeps looking past them. Empty: the memory backend's chmod of a
// symlink, rename onto an ancestor and link into a non-directory were fixed to match Linux.
export const KNOWN: { name: string; match: (o: Op, a: unknown, b: unknown) => boolean }[] = [];
export const knownHits: Record<string, number> = {};

/** A backend under test made from the state the PREFIX left in the local backend's directory
 *  (e.g. an image of it as the lower layer of an overlay). */
export type MakeFromPrefix = (dir: string) => Promise<{
  backend: Backend;
  cleanup?: () => Promise<void>;
  /** a new backend over the same persisted state (the final tree is read through it) */
  reload?: () => Promise<Backend>;
}>;

/** Run PREFIX + ops0 on backend A (memory, or `fromPrefix`: the PREFIX is run on the local
 *  backend only and A is made from its result) and on the local backend; every reply and the
 *  final tree must agree. */
export async function compare(ops0: Op[], strict = false, fromPrefix?: MakeFromPrefix): Promise<void> {
  const ops = [...PREFIX, ...ops0];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-diff-'));
  dirs.push(dir);
  const local = new LocalBackend({ root: dir });
  const B = await boot(local);
  let cleanupA: (() => Promise<void>) | undefined;
  let reload: (() => Promise<Backend>) | undefined;
  let A: { c: P9Client; destroy: () => void };
  let first = 0;
  if (fromPrefix !== undefined) {
    for (const o of PREFIX) await outcome(B.c, o);
    const made = await fromPrefix(dir);
    cleanupA = made.cleanup;
    reload = made.reload;
    A = await boot(made.backend);
    first = PREFIX.length;
  } else A = await boot(new MemoryBackend());
  try {
    for (let i = first; i < ops.length; i++) {
      const a = await outcome(A.c, ops[i]);
      const b = await outcome(B.c, ops[i]);
      if (JSON.stringify(a) !== JSON.stringify(b)) {
        const known = strict ? undefined : KNOWN.find((k) => k.match(ops[i], a, b));
        if (known) {
          knownHits[known.name] = (knownHits[known.name] ?? 0) + 1;
          return; // a known, separately pinned divergence: the rest of this sequence is moot
        }
        throw new Error(`step ${i} ${JSON.stringify(ops[i], (_k, v) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v))}: ${fromPrefix ? 'A' : 'memory'} ${JSON.stringify(a)} != local ${JSON.stringify(b)}`);
      }
    }
    if (reload !== undefined) { A.destroy(); A = await boot(await reload()); }
    // final state: the whole tree, read through both
    const tree = async (c: P9Client): Promise<unknown> => {
      const out: Record<string, unknown> = {};
      const visit = async (names: string[]): Promise<void> => {
        const ents = (await outcome(c, { op: 'readdir', p: names.join('/'), count: 8192 })) as { ok?: string[] };
        for (const e of ents.ok ?? []) {
          const [n, t] = e.split(':');
          if (n === '.' || n === '..') continue;
          const p = [...names, n].join('/');
          out[p] = await outcome(c, { op: 'getattr', p });
          if (t === '4') await visit([...names, n]);
          else if (t === '8') out[p + '#'] = await outcome(c, { op: 'read', p, off: 0, count: 60000 });
          else if (t === '10') out[p + '@'] = await outcome(c, { op: 'readlink', p });
        }
      };
      await visit([]);
      return out;
    };
    expect(await tree(B.c)).toEqual(await tree(A.c));
  } finally {
    A.destroy();
    B.destroy();
    (local as unknown as { destroy?: () => void }).destroy?.();
    if (cleanupA !== undefined) await cleanupA();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

