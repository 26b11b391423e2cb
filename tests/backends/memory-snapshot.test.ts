import { describe, test, expect } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { MemoryBackend, MemorySnapshotError } from '../../src/backends/memory.js';
import {
  AT_REMOVEDIR, O_APPEND, O_DIRECTORY, O_RDONLY, O_RDWR, O_WRONLY,
  S_IFBLK, S_IFCHR, S_IFIFO, S_IFSOCK,
} from '../../src/backends/backend.js';
import type { Created, Entry, Stat, StatFs } from '../../src/backends/backend.js';
import { EBADF, ENOSPC } from '../../src/errno.js';
import { ok, readAll, listDir as listDirAs } from './memory-helpers.js';

const te = new TextEncoder();
const td = new TextDecoder();
const b = (s: string): Uint8Array => te.encode(s);
const NONE = 0xFFFFFFFF;
const GiB = 2 ** 30;

function stat(fs: MemoryBackend, node: number): Stat {
  const s = ok<Stat>(fs.getattr(node));
  return {
    ino: s.ino, mode: s.mode, uid: s.uid, gid: s.gid, nlink: s.nlink, rdev: s.rdev, size: s.size,
    blksize: s.blksize, blocks: s.blocks, atimeSec: s.atimeSec, atimeNsec: s.atimeNsec,
    mtimeSec: s.mtimeSec, mtimeNsec: s.mtimeNsec, ctimeSec: s.ctimeSec, ctimeNsec: s.ctimeNsec,
  };
}

/** Names as their exact bytes (no decoding), so any byte string compares exactly. */
const listDir = (fs: MemoryBackend, fh: number, cookie = 0, max = Infinity) => listDirAs(fs, fh, cookie, max, (n) => Array.from(n).join(','));

/** A pattern that is different at every offset (no zero runs that could hide a shift). */
function pattern(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let k = 0; k < len; k++) out[k] = ((k * 31 + seed * 7) % 251) + 1;
  return out;
}

/** A non-trivial state built through the Backend API, with the handles a core would hold. */
function buildState() {
  const fs = new MemoryBackend({ capacityBytes: 2 * 1024 * 1024, maxInodes: 80, owner: { uid: 1000, gid: 100 }, rootMode: 0o711 });
  const root = ok<Entry>(fs.attach(new Uint8Array(0), NONE)).node;
  const mkdir = (dir: number, name: string | Uint8Array, mode = 0o755) => {
    const nm = typeof name === 'string' ? b(name) : name;
    ok<Stat>(fs.mkdir(dir, nm, mode, 7, 8));
    return ok<Entry>(fs.lookup(dir, nm)).node;
  };
  const a = mkdir(root, 'a');
  const ab = mkdir(a, 'b', 0o1777);
  const weird = mkdir(root, new Uint8Array([0xff, 0x00, 0x41])); // non-UTF-8 name with a NUL

  // a small file, a sparse file with data in several chunks and far out (5 GiB)
  const small = ok<Created>(fs.create(a, b('small.txt'), O_RDWR, 0o640, 1, 2));
  ok(fs.write(small.fh, 0, [b('hello, snapshot')]));
  const sparse = ok<Created>(fs.create(ab, b('sparse.bin'), O_RDWR, 0o600, NONE, NONE));
  ok(fs.write(sparse.fh, 3 * 65536 - 10, [pattern(100, 1)]));      // spans chunks 2 and 3
  ok(fs.write(sparse.fh, 70000, [pattern(9000, 2)]));               // inside chunk 1, grows it
  ok(fs.write(sparse.fh, 5 * GiB + 12345, [pattern(300, 3)]));       // far out
  ok(fs.write(sparse.fh, 5 * GiB + 12345 + 300, [new Uint8Array(50)])); // trailing zeros extend size
  // an append-only handle and a write-only handle stay open
  const appendFh = ok<number>(fs.open(small.node, O_WRONLY | O_APPEND));
  const roFh = ok<number>(fs.open(sparse.node, O_RDONLY));

  // symlinks (one with a binary target), fifo, devices, socket
  ok(fs.symlink(a, b('lnk'), b('../a/small.txt'), 5, 6));
  ok(fs.symlink(root, b('blnk'), new Uint8Array([1, 2, 0xfe, 255]), NONE, NONE)); // not UTF-8 (a NUL is EINVAL, as on Linux)
  ok(fs.mknod(a, b('fifo'), S_IFIFO | 0o644, 0, 0, NONE, NONE));
  ok(fs.mknod(a, b('tty'), S_IFCHR | 0o620, 4, 300, 0, 5));
  ok(fs.mknod(a, b('sda'), S_IFBLK | 0o660, 8, 1, 0, 6));
  ok(fs.mknod(root, b('sock'), S_IFSOCK | 0o777, 0, 0, NONE, NONE));

  // hard links: small.txt in three directories, then the first name goes (links reorder)
  ok(fs.link(root, b('hl1'), small.node));
  ok(fs.link(ab, b('hl2'), small.node));
  ok(fs.unlinkat(a, b('small.txt'), 0));

  // xattrs, on a file and a directory (binary value with zeros, empty value)
  ok(fs.setxattr(small.node, b('user.b'), new Uint8Array([0, 1, 0, 2]), 0));
  ok(fs.setxattr(small.node, b('user.a'), new Uint8Array(0), 0));
  ok(fs.setxattr(a, b('trusted.dir'), b('dirvalue'), 0));

  // an open file that is then unlinked and forgotten (kept alive by its fh only)
  const doomed = ok<Created>(fs.create(root, b('doomed'), O_RDWR, 0o644, NONE, NONE));
  ok(fs.write(doomed.fh, 0, [pattern(5000, 4)]));
  ok(fs.unlinkat(root, b('doomed'), 0));
  fs.forget(doomed.node);
  // an unlinked file kept alive by a Node reference only, and an unlinked directory
  const ghost = ok<Created>(fs.create(a, b('ghost'), O_RDWR, 0o644, NONE, NONE));
  ok(fs.write(ghost.fh, 0, [b('boo')]));
  ok(fs.close(ghost.fh));
  ok(fs.remove(ghost.node));
  const gone = mkdir(root, 'gone');
  ok(fs.unlinkat(root, b('gone'), AT_REMOVEDIR));

  // a directory with many entries, some deleted (lazy deletion), and a half-finished readdir
  const many = mkdir(root, 'many');
  for (let k = 0; k < 40; k++) {
    const c = ok<Created>(fs.create(many, b(`f${k}`), O_RDWR, 0o644, NONE, NONE));
    ok(fs.close(c.fh));
    fs.forget(c.node);
  }
  for (let k = 0; k < 40; k += 3) ok(fs.unlinkat(many, b(`f${k}`), 0));
  const c = ok<Created>(fs.create(many, b('late'), O_RDWR, 0o644, NONE, NONE));
  ok(fs.close(c.fh)); fs.forget(c.node);
  ok(fs.renameat(many, b('f1'), many, b('f1-renamed'))); // moves to the end of the order
  const dirFh = ok<number>(fs.open(many, O_RDONLY | O_DIRECTORY));
  const firstPage = listDir(fs, dirFh, 0, 9);
  const cookie = firstPage[firstPage.length - 1].next;

  // changed times, with nanoseconds
  ok(fs.setattr(a, { atime: [1000000000, 123456789], mtime: [1234567890, 987654321] }));
  ok(fs.setattr(small.node, { mtime: [42, 1], atime: [4000000000, 999999999] }));
  ok(fs.setattr(ab, { mtime: [2 ** 40, 2 ** 40 + 1] })); // out-of-range nsec from a guest is kept as given
  ok(fs.setattr(sparse.node, { mode: 0o4755, uid: 77 }));

  // Node references: extra dup refs; fh churn so the free list is non-trivial
  ok(fs.dup(sparse.node));
  ok(fs.dup(sparse.node));
  const tmp = [1, 2, 3, 4].map(() => ok<number>(fs.open(a, O_RDONLY)));
  ok(fs.close(tmp[2])); ok(fs.close(tmp[0])); ok(fs.close(tmp[3]));

  const nodes = { root, a, ab, weird, small: small.node, sparse: sparse.node, ghost: ghost.node, gone, many };
  const fhs = { small: small.fh, sparse: sparse.fh, appendFh, roFh, doomed: doomed.fh, dirFh, tmp1: tmp[1] };
  return { fs, nodes, fhs, firstPage, cookie };
}

/** Everything observable through the read-only API, walked from the root (symmetric: it leaves
 *  refs and handles as it found them). */
function observe(fs: MemoryBackend, root: number): unknown[] {
  const out: unknown[] = [];
  const walk = (node: number, path: string) => {
    const st = stat(fs, node);
    out.push([path, st]);
    const xs = ok<Uint8Array[]>(fs.listxattr(node));
    for (const x of xs) out.push([path, 'xattr', Array.from(x), Array.from(ok<Uint8Array>(fs.getxattr(node, x)))]);
    const type = st.mode & 0o170000;
    if (type === 0o120000) out.push([path, 'target', Array.from(ok<Uint8Array>(fs.readlink(node)))]);
    if (type === 0o100000) {
      const fh = ok<number>(fs.open(node, O_RDONLY));
      // all data up to 1 MiB, then windows around every chunk boundary of big files
      if (st.size <= 1 << 20) out.push([path, 'data', Buffer.from(readAll(fs, fh, 0, st.size)).toString('base64')]);
      else for (const off of [0, 65530, 5 * GiB, 5 * GiB + 12340, st.size - 40]) out.push([path, off, Buffer.from(readAll(fs, fh, off, 400)).toString('base64')]);
      ok(fs.close(fh));
    }
    if (type === 0o040000) {
      const fh = ok<number>(fs.open(node, O_RDONLY | O_DIRECTORY));
      const items = listDir(fs, fh);
      ok(fs.close(fh));
      out.push([path, 'dir', items]);
      for (const it of items.slice(2)) {
        const name = new Uint8Array(it.name.split(',').map(Number));
        const e = ok<Entry>(fs.lookup(node, name));
        walk(e.node, `${path}/${it.name}`);
        fs.forget(e.node);
      }
    }
  };
  walk(root, '');
  out.push(['statfs', ok<StatFs>(fs.statfs(root))]);
  out.push(['counts', fs.inodes, fs.usedBytes, fs.openHandles]);
  return out;
}

describe('MemoryBackend snapshot: round trip', () => {
  test('restored backend is identical through the Backend API', () => {
    const s = buildState();
    const { fs, nodes, fhs } = s;
    const snap = fs.snapshotState();
    expect(snap).toBeInstanceOf(Uint8Array);
    const r = MemoryBackend.restoreState(snap);

    // every node the core holds has the same attributes
    for (const n of Object.values(nodes)) expect(stat(r, n)).toEqual(stat(fs, n));
    expect(observe(r, nodes.root)).toEqual(observe(fs, nodes.root));
    expect(r.inodes).toBe(fs.inodes);
    expect(r.usedBytes).toBe(fs.usedBytes);
    expect(r.openHandles).toBe(fs.openHandles);
    expect(r.statfs(nodes.root)).toEqual(fs.statfs(nodes.root));

    // spot checks of the interesting objects
    expect(td.decode(readAll(r, fhs.small, 0, 100))).toBe('hello, snapshot');
    expect(stat(r, nodes.small).nlink).toBe(2);
    expect(readAll(r, fhs.sparse, 3 * 65536 - 10, 100)).toEqual(pattern(100, 1));
    expect(readAll(r, fhs.roFh, 70000, 9000)).toEqual(pattern(9000, 2));
    expect(readAll(r, fhs.sparse, 5 * GiB + 12345, 400)).toEqual(Uint8Array.from([...pattern(300, 3), ...new Uint8Array(50)]));
    expect(readAll(r, fhs.sparse, 1000, 10)).toEqual(new Uint8Array(10)); // a hole
    expect(stat(r, nodes.sparse).size).toBe(5 * GiB + 12345 + 350);
    expect(stat(r, nodes.sparse).blocks).toBe(stat(fs, nodes.sparse).blocks);
    const dev = stat(r, ok<Entry>(r.lookup(nodes.a, b('tty'))).node);
    expect(dev.rdev).toBe(stat(fs, ok<Entry>(fs.lookup(nodes.a, b('tty'))).node).rdev);
    expect(dev.mode).toBe(S_IFCHR | 0o620);
    expect(Array.from(ok<Uint8Array>(r.getxattr(nodes.small, b('user.b'))))).toEqual([0, 1, 0, 2]);
    expect(ok<Uint8Array[]>(r.listxattr(nodes.small)).map((x) => td.decode(x))).toEqual(['user.b', 'user.a']);
    expect(stat(r, nodes.a).atimeNsec).toBe(123456789);
    expect(stat(r, nodes.small).atimeSec).toBe(4000000000);
    expect(stat(r, nodes.ab).mtimeNsec).toBe(2 ** 40 + 1);

    // the unlinked open file still reads through its fh; the unlinked Node still answers
    expect(readAll(r, fhs.doomed, 0, 5000)).toEqual(pattern(5000, 4));
    expect(stat(r, nodes.ghost).nlink).toBe(0);
    expect(stat(r, nodes.gone).nlink).toBe(0);
  });

  test('restored snapshot is byte-for-byte the original (determinism), also after read-only use', () => {
    const { fs, nodes } = buildState();
    const snap = fs.snapshotState();
    expect(fs.snapshotState()).toEqual(snap); // snapshotting does not change the state
    const r = MemoryBackend.restoreState(snap);
    const again = r.snapshotState();
    expect(again.length).toBe(snap.length);
    expect(Buffer.from(again).equals(Buffer.from(snap))).toBe(true);
    // the same read-only operations on both keep them identical, refs and handles included
    observe(fs, nodes.root);
    observe(r, nodes.root);
    expect(Buffer.from(r.snapshotState()).equals(Buffer.from(fs.snapshotState()))).toBe(true);
    // and a state change shows in the bytes
    r.forget(nodes.sparse);
    expect(Buffer.from(r.snapshotState()).equals(Buffer.from(snap))).toBe(false);
  });

  test('a half-finished readdir continues from its cookie with the remaining entries', () => {
    const { fs, nodes, fhs, firstPage, cookie } = buildState();
    const r = MemoryBackend.restoreState(fs.snapshotState());
    const rest = listDir(r, fhs.dirFh, cookie);
    expect(rest).toEqual(listDir(fs, fhs.dirFh, cookie));
    // first page + rest = a full listing, each entry once, in order
    const fresh = ok<number>(r.open(nodes.many, O_RDONLY | O_DIRECTORY));
    expect([...firstPage, ...rest]).toEqual(listDir(r, fresh));
    expect(rest[rest.length - 1].name).toBe(Array.from(b('f1-renamed')).join(','));
    // cookies of entries added after the restore continue after the old ones
    const c = ok<Created>(r.create(nodes.many, b('new'), O_RDWR, 0o644, NONE, NONE));
    const tail = listDir(r, fhs.dirFh, rest[rest.length - 1].next);
    expect(tail.map((e) => e.name)).toEqual([Array.from(b('new')).join(',')]);
    expect(tail[0].next).toBeGreaterThan(rest[rest.length - 1].next);
    expect(tail[0].ino).toBe(c.ino);
  });

  test('handles, counters, references and capacity continue exactly', () => {
    const s1 = buildState();
    const { fs, nodes, fhs } = s1;
    const r = MemoryBackend.restoreState(fs.snapshotState());
    const both = [fs, r];

    // next fh (from the free list) and next node number are the same
    const f = both.map((x) => ok<number>(x.open(nodes.a, O_RDONLY)));
    expect(f[1]).toBe(f[0]);
    const g = both.map((x) => ok<number>(x.open(nodes.a, O_RDONLY)));
    expect(g[1]).toBe(g[0]);
    const cr = both.map((x) => ok<Created>(x.create(nodes.root, b('after'), O_RDWR | O_APPEND, 0o644, NONE, NONE)));
    expect(cr[1].node).toBe(cr[0].node);
    expect(cr[1].fh).toBe(cr[0].fh);

    // the append handle appends; the open write handles write
    for (const x of both) ok(x.write(fhs.appendFh, 0, [b('!')]));
    expect(td.decode(readAll(r, fhs.small, 0, 100))).toBe('hello, snapshot!');

    // fill to ENOSPC: the same number of bytes fits in both
    const written = both.map((x) => {
      let total = 0;
      for (;;) {
        const n = x.write(cr[0].fh, 0, [pattern(100000, 5)]);
        if (n === -ENOSPC) return total;
        total += ok<number>(n);
      }
    });
    expect(written[0]).toBeGreaterThan(0);
    expect(written[1]).toBe(written[0]);
    expect(r.usedBytes).toBe(fs.usedBytes);
    expect(r.statfs(nodes.root)).toEqual(fs.statfs(nodes.root));

    // the inode limit hits at the same point
    const made = both.map((x) => {
      let k = 0;
      for (;;) {
        const res = x.mknod(nodes.root, b(`n${k}`), S_IFIFO | 0o644, 0, 0, NONE, NONE);
        if (res === -ENOSPC) return k;
        ok(res);
        k++;
      }
    });
    expect(made[0]).toBeGreaterThan(0);
    expect(made[1]).toBe(made[0]);
    expect(r.inodes).toBe(80);

    // Node reference counts: sparse holds 3 (create + 2 dups)
    for (let k = 0; k < 2; k++) r.forget(nodes.sparse);
    expect(stat(r, nodes.sparse).size).toBe(5 * GiB + 12345 + 350);
    r.forget(nodes.sparse);
    expect(r.getattr(nodes.sparse)).toBe(-EBADF);
    expect(stat(r, ok<Entry>(r.lookup(nodes.ab, b('sparse.bin'))).node).uid).toBe(77);

    // the unlinked file held by an fh only is freed when that fh closes
    const before = r.inodes;
    ok(r.close(fhs.doomed));
    expect(r.inodes).toBe(before - 1);
    expect(r.read(fhs.doomed, 0, [new Uint8Array(1)])).toBe(-EBADF);
    // the unlinked directory held by a reference only is freed on forget
    r.forget(nodes.gone);
    expect(r.inodes).toBe(before - 2);
    expect(r.getattr(nodes.gone)).toBe(-EBADF);

    // hard links: remove(node) removes the same name in both (the inode's current link)
    for (const x of both) ok(x.remove(nodes.small));
    const names = (x: MemoryBackend, d: number) => {
      const fh = ok<number>(x.open(d, O_RDONLY | O_DIRECTORY));
      const l = listDir(x, fh).map((e) => td.decode(new Uint8Array(e.name.split(',').map(Number))));
      ok(x.close(fh));
      return l;
    };
    expect(names(r, nodes.root)).toEqual(names(fs, nodes.root));
    expect(names(r, nodes.ab)).toEqual(names(fs, nodes.ab));
    expect(stat(r, nodes.small).nlink).toBe(1);
    // '..' of a directory resolves to its parent
    expect(ok<Entry>(r.lookup(nodes.ab, b('..'))).node).toBe(nodes.a);
  });

  test('a restored backend is usable in a new process (bundled module, no shared state)', () => {
    const { fs, nodes, fhs } = buildState();
    const snap = fs.snapshotState();
    const dir = mkdtempSync(join(tmpdir(), 'memsnap-'));
    try {
      const bundle = join(dir, 'memory.mjs');
      buildSync({ entryPoints: [join(process.cwd(), 'src/backends/memory.ts')], bundle: true, format: 'esm', platform: 'node', outfile: bundle, logLevel: 'silent' });
      writeFileSync(join(dir, 'snap.bin'), snap);
      const script = `
        import { MemoryBackend } from ${JSON.stringify(bundle)};
        import { readFileSync, writeFileSync } from 'node:fs';
        const r = MemoryBackend.restoreState(new Uint8Array(readFileSync(${JSON.stringify(join(dir, 'snap.bin'))})));
        const buf = new Uint8Array(5000);
        const n = r.read(${fhs.doomed}, 0, [buf]);
        const st = r.getattr(${nodes.sparse});
        writeFileSync(${JSON.stringify(join(dir, 'again.bin'))}, r.snapshotState());
        console.log(JSON.stringify({ n, sum: buf.reduce((a, x) => a + x, 0), size: st.size, mode: st.mode }));
      `;
      const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
      const want = pattern(5000, 4).reduce((a, x) => a + x, 0);
      expect(out).toEqual({ n: 5000, sum: want, size: 5 * GiB + 12345 + 350, mode: stat(fs, nodes.sparse).mode });
      expect(Buffer.from(readFileSync(join(dir, 'again.bin'))).equals(Buffer.from(snap))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an empty backend and a default-option backend round-trip', () => {
    const fs = new MemoryBackend();
    const snap = fs.snapshotState();
    const r = MemoryBackend.restoreState(snap);
    expect(Buffer.from(r.snapshotState()).equals(Buffer.from(snap))).toBe(true);
    const root = ok<Entry>(r.attach(new Uint8Array(0), NONE)).node;
    expect(stat(r, root)).toEqual(stat(fs, ok<Entry>(fs.attach(new Uint8Array(0), NONE)).node));
    const st = ok<StatFs>(r.statfs(root));
    expect(st.blocks).toBe(ok<StatFs>(fs.statfs(root)).blocks); // unlimited capacity kept
    ok(r.write(ok<Created>(r.create(root, b('x'), O_RDWR, 0o644, NONE, NONE)).fh, 0, [pattern(3 * 1024 * 1024, 9)]));
  });
});

// ---------------------------------------------------------------------------------------------
// Random operation sequences: every state the API can reach must snapshot, restore and re-snapshot
// to the same bytes (guards the decoder's consistency checks against rejecting real states).

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32; };
}

describe('MemoryBackend snapshot: random states', () => {
  test('200 random operation sequences round-trip exactly', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rand = rng(seed);
      const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
      const fs = new MemoryBackend({ capacityBytes: 400000, maxInodes: 40 });
      const root = ok<Entry>(fs.attach(new Uint8Array(0), NONE)).node;
      const held: number[] = [root];
      const open: number[] = [];
      const names = ['a', 'b', 'c', 'd', 'e'].map(b);
      for (let step = 0; step < 150; step++) {
        const d = pick(held);
        const nm = pick(names);
        switch (Math.floor(rand() * 16)) {
          case 0: fs.mkdir(d, nm, 0o755, NONE, NONE); break;
          case 1: { const c = fs.create(d, nm, O_RDWR, 0o644, NONE, NONE); if (typeof c !== 'number') { held.push((c as Created).node); open.push((c as Created).fh); } break; }
          case 2: { const e = fs.lookup(d, nm); if (typeof e !== 'number') held.push((e as Entry).node); break; }
          case 3: if (open.length) fs.write(pick(open), Math.floor(rand() * 300000), [pattern(1 + Math.floor(rand() * 70000), step)]); break;
          case 4: fs.unlinkat(d, nm, rand() < 0.5 ? AT_REMOVEDIR : 0); break;
          case 5: fs.renameat(d, nm, pick(held), pick(names)); break;
          case 6: fs.link(d, nm, pick(held)); break;
          case 7: if (held.length > 1) { const k = 1 + Math.floor(rand() * (held.length - 1)); fs.forget(held[k]); held.splice(k, 1); } break;
          case 8: if (open.length) { const k = Math.floor(rand() * open.length); fs.close(open[k]); open.splice(k, 1); } break;
          case 9: { const fh = fs.open(d, rand() < 0.5 ? O_RDONLY : O_RDWR); if (typeof fh === 'number' && fh > 0) open.push(fh); break; }
          case 10: fs.setattr(d, { size: Math.floor(rand() * 200000) }); break;
          case 11: fs.symlink(d, nm, pick(names), NONE, NONE); break;
          case 12: fs.mknod(d, nm, S_IFIFO | 0o600, 0, 0, NONE, NONE); break;
          case 13: fs.setxattr(d, pick(names), pattern(Math.floor(rand() * 20), step), 0); break;
          case 14: fs.remove(d); break;
          case 15: fs.rename(d, pick(held), nm); break;
        }
      }
      const snap = fs.snapshotState();
      let r: MemoryBackend;
      try {
        r = MemoryBackend.restoreState(snap);
      } catch (e) {
        throw new Error(`seed ${seed}: ${(e as Error).message}`);
      }
      expect(Buffer.from(r.snapshotState()).equals(Buffer.from(snap))).toBe(true);
      expect(observe(r, root)).toEqual(observe(fs, root));
      for (const n of held) expect(r.getattr(n) === -EBADF).toBe(fs.getattr(n) === -EBADF);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Malformed snapshots.

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(buf: Uint8Array): number {
  let c = 0xFFFFFFFF;
  for (const x of buf) c = CRC_TABLE[(c ^ x) & 0xff] ^ (c >>> 8);
  return (c ^ 0xFFFFFFFF) >>> 0;
}

/** Re-frame a (modified) body: fix the length field and the checksum, so only the decoder's
 *  own checks can reject it. */
function reframe(snap: Uint8Array, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(24 + body.length + 4);
  out.set(snap.subarray(0, 24));
  out.set(body, 24);
  const dv = new DataView(out.buffer);
  dv.setUint32(16, body.length, true);
  dv.setUint32(20, 0, true);
  dv.setUint32(24 + body.length, crc32(out.subarray(0, 24 + body.length)), true);
  return out;
}

function restoreError(bytes: Uint8Array): Error {
  try {
    MemoryBackend.restoreState(bytes);
  } catch (e) {
    return e as Error;
  }
  throw new Error('restoreState accepted a malformed snapshot');
}

describe('MemoryBackend snapshot: malformed input', () => {
  const small = () => {
    const fs = new MemoryBackend({ capacityBytes: 1 << 20 });
    const root = ok<Entry>(fs.attach(new Uint8Array(0), NONE)).node;
    ok(fs.mkdir(root, b('d'), 0o755, NONE, NONE));
    const c = ok<Created>(fs.create(root, b('f'), O_RDWR, 0o644, NONE, NONE));
    ok(fs.write(c.fh, 70000, [b('data')]));
    ok(fs.link(root, b('g'), c.node));
    ok(fs.setxattr(c.node, b('user.x'), b('v'), 0));
    ok(fs.symlink(root, b('s'), b('f'), NONE, NONE));
    return fs.snapshotState();
  };

  test('the format: magic, version 1, body length, CRC-32 trailer', () => {
    const snap = small();
    expect(td.decode(snap.subarray(0, 8))).toBe('V9PMEMFS');
    const dv = new DataView(snap.buffer, snap.byteOffset, snap.byteLength);
    expect(dv.getUint32(8, true)).toBe(1);
    expect(dv.getUint32(16, true)).toBe(snap.length - 28);
    expect(dv.getUint32(snap.length - 4, true)).toBe(crc32(snap.subarray(0, snap.length - 4)));
    // file data is stored raw: the written bytes appear verbatim
    expect(Buffer.from(snap).indexOf(Buffer.from('data'))).toBeGreaterThan(24);
    expect(snap.length).toBeLessThan(1000); // the 70000-byte hole (and the zeros around 'data') are not stored
  });

  test('truncated at any point → a clear error', () => {
    const snap = small();
    for (const cut of [0, 1, 7, 8, 11, 12, 16, 23, 24, 25, 40, snap.length >> 1, snap.length - 5, snap.length - 1]) {
      const e = restoreError(snap.subarray(0, cut));
      expect(e).toBeInstanceOf(MemorySnapshotError);
      expect(e.message).toMatch(/^MemoryBackend snapshot: truncated/);
    }
  });

  test('bad magic, other version, reserved bits, trailing bytes, checksum, wrong type', () => {
    const snap = small();
    const mod = (k: number, v: number) => { const x = snap.slice(); x[k] = v; return x; };
    expect(restoreError(mod(0, 0x57)).message).toMatch(/bad magic/);
    expect(restoreError(b('{"json": true}')).message).toMatch(/bad magic/);
    expect(restoreError(mod(8, 2)).message).toMatch(/unsupported version 2 \(this build reads version 1\)/);
    expect(restoreError(mod(11, 0x80)).message).toMatch(/unsupported version 2147483649/);
    expect(restoreError(mod(12, 1)).message).toMatch(/reserved/);
    expect(restoreError(mod(23, 0x40)).message).toMatch(/above 2\^53/);
    expect(restoreError(Uint8Array.from([...snap, 0])).message).toMatch(/1 unexpected bytes after the end/);
    expect(restoreError(mod(60, snap[60] ^ 1)).message).toMatch(/checksum mismatch/);
    expect(restoreError(mod(snap.length - 1, snap[snap.length - 1] ^ 0x10)).message).toMatch(/checksum mismatch/);
    expect(restoreError('nope' as unknown as Uint8Array)).toBeInstanceOf(MemorySnapshotError);
    // a subarray view at an offset decodes fine (no assumptions about byteOffset)
    const padded = new Uint8Array(snap.length + 3);
    padded.set(snap, 3);
    expect(() => MemoryBackend.restoreState(padded.subarray(3))).not.toThrow();
  });

  test('a body cut anywhere, with a valid checksum, is rejected by the decoder (never a RangeError)', () => {
    const snap = small();
    const body = snap.subarray(24, snap.length - 4);
    for (let cut = 0; cut < body.length; cut++) {
      const e = restoreError(reframe(snap, body.subarray(0, cut)));
      expect(e).toBeInstanceOf(MemorySnapshotError);
    }
    // extra bytes at the end of the body
    expect(restoreError(reframe(snap, Uint8Array.from([...body, 0, 0]))).message).toMatch(/2 unparsed bytes/);
  });

  test('corrupted bytes with a valid checksum: a MemorySnapshotError or a consistent restore', () => {
    const snap = small();
    const body = snap.subarray(24, snap.length - 4);
    let rejected = 0;
    for (let k = 0; k < body.length; k++) {
      for (const v of [0x00, 0xff, body[k] ^ 0x01, body[k] ^ 0x80]) {
        if (v === body[k]) continue;
        const x = body.slice();
        x[k] = v;
        let r: MemoryBackend | null = null;
        try {
          r = MemoryBackend.restoreState(reframe(snap, x));
        } catch (e) {
          if (!(e instanceof MemorySnapshotError)) throw new Error(`byte ${k} = ${v}: ${String(e)}`);
          rejected++;
        }
        // an accepted corruption is a valid state of its own: it round-trips
        if (r !== null && !Buffer.from(r.snapshotState()).equals(Buffer.from(reframe(snap, x)))) {
          throw new Error(`byte ${k} = ${v} was accepted but does not round-trip`);
        }
      }
    }
    expect(rejected).toBeGreaterThan(body.length); // most corruptions break a consistency check
  });

  test('consistency checks: inode count, used bytes, fh table', () => {
    const snap = small();
    const body = snap.subarray(24, snap.length - 4).slice();
    const dv = new DataView(body.buffer);
    // globals: capacity f64 @0, maxInodes f64 @8, uid @16, gid @20, nextIno u64 @24, nextFh @32,
    // used u64 @36, inodeCount @44, root @48
    const x1 = body.slice(); new DataView(x1.buffer).setUint32(44, dv.getUint32(44, true) + 1, true);
    expect(restoreError(reframe(snap, x1)).message).toMatch(/inode count/);
    const x2 = body.slice(); new DataView(x2.buffer).setUint32(36, dv.getUint32(36, true) + 4096, true);
    expect(restoreError(reframe(snap, x2)).message).toMatch(/used/);
    const x3 = body.slice(); new DataView(x3.buffer).setUint32(32, dv.getUint32(32, true) + 1, true);
    expect(restoreError(reframe(snap, x3)).message).toMatch(/fh table/);
    const x4 = body.slice(); new DataView(x4.buffer).setUint32(48, 99, true);
    expect(restoreError(reframe(snap, x4)).message).toMatch(/root node 99/);
    const x5 = body.slice(); new DataView(x5.buffer).setFloat64(0, 100, true);
    expect(restoreError(reframe(snap, x5)).message).toMatch(/capacity 100/);
  });
});
