import { describe, test, expect } from '@jest/globals';
import { MemoryBackend, encodeDev } from '../../src/backends/memory.js';
import {
  AT_REMOVEDIR, O_APPEND, O_EXCL, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY, XATTR_CREATE, XATTR_REPLACE,
  S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
} from '../../src/backends/backend.js';
import type { Created, Entry, Stat, StatFs } from '../../src/backends/backend.js';
import {
  EBADF, EBUSY, EEXIST, EINVAL, EISDIR, ENODATA, ENOENT, ENOSPC, ENOTDIR, ENOTEMPTY, EPERM,
} from '../../src/errno.js';
import { ok, readAll, listDir } from './memory-helpers.js';

const te = new TextEncoder();
const td = new TextDecoder();
const b = (s: string): Uint8Array => te.encode(s);
const NONE = 0xFFFFFFFF;

function errno(v: unknown): number {
  expect(typeof v).toBe('number');
  return v as number;
}

function setup(opts?: ConstructorParameters<typeof MemoryBackend>[0]) {
  const fs = new MemoryBackend(opts);
  const root = ok<Entry>(fs.attach(new Uint8Array(0), NONE));
  return { fs, root: root.node, rootIno: root.ino };
}

function createFile(fs: MemoryBackend, dir: number, name: string, flags = O_RDWR, mode = 0o644): Created {
  return ok<Created>(fs.create(dir, b(name), flags, mode, NONE, NONE));
}

function look(fs: MemoryBackend, dir: number, name: string): Entry {
  return ok<Entry>(fs.lookup(dir, b(name)));
}


describe('MemoryBackend: basics', () => {
  test('attach gives the root directory, lookup of . and .. at root is the root', () => {
    const { fs, root, rootIno } = setup();
    const st = ok<Stat>(fs.getattr(root));
    expect(st.mode & S_IFMT).toBe(S_IFDIR);
    expect(st.nlink).toBe(2);
    expect(look(fs, root, '.').ino).toBe(rootIno);
    expect(look(fs, root, '..').ino).toBe(rootIno);
    expect(fs.lookup(root, b('missing'))).toBe(-ENOENT);
  });

  test('create, write, read back, getattr size/blocks/times', () => {
    const { fs, root } = setup();
    const before = ok<Stat>(fs.getattr(root));
    const bm = [before.mtimeSec, before.mtimeNsec];
    const c = createFile(fs, root, 'hello.txt', O_RDWR, 0o100640);
    expect(c.mode).toBe(S_IFREG | 0o640);
    expect(c.fh).toBeGreaterThan(0);
    expect(c.node).toBeGreaterThan(0);
    expect(fs.write(c.fh, 0, [b('hello '), b('world')])).toBe(11);
    expect(td.decode(readAll(fs, c.fh, 0, 100))).toBe('hello world');
    expect(td.decode(readAll(fs, c.fh, 6, 3))).toBe('wor');
    expect(readAll(fs, c.fh, 11, 10).length).toBe(0);
    expect(readAll(fs, c.fh, 1000, 10).length).toBe(0);
    const st = ok<Stat>(fs.getattr(c.node));
    expect(st.size).toBe(11);
    expect(st.blocks).toBeGreaterThan(0);
    expect(st.nlink).toBe(1);
    const after = ok<Stat>(fs.getattr(root));
    expect(after.mtimeSec * 1e9 + after.mtimeNsec).toBeGreaterThanOrEqual(bm[0] * 1e9 + bm[1]);
    // read into several buffers
    const a = new Uint8Array(4), z = new Uint8Array(4), y = new Uint8Array(10);
    expect(fs.read(c.fh, 0, [a, z, y])).toBe(11);
    expect(td.decode(a) + td.decode(z) + td.decode(y.subarray(0, 3))).toBe('hello world');
    expect(fs.close(c.fh)).toBe(0);
    expect(fs.close(c.fh)).toBe(-EBADF);
    expect(fs.readFileSync('hello.txt')).toEqual(b('hello world'));
  });

  test('uid/gid 0xFFFFFFFF use the default owner', () => {
    const { fs, root } = setup({ owner: { uid: 1000, gid: 100 } });
    const c = createFile(fs, root, 'f');
    expect(c.uid).toBe(1000);
    expect(c.gid).toBe(100);
    const d = ok<Stat>(fs.mkdir(root, b('d'), 0o40755, 42, 43));
    expect(d.uid).toBe(42);
    expect(d.gid).toBe(43);
    expect(d.mode).toBe(S_IFDIR | 0o755);
  });

  test('create existing: O_EXCL → EEXIST, otherwise opens it; dir → EISDIR; dot names → EEXIST', () => {
    const { fs, root } = setup();
    const c = createFile(fs, root, 'f');
    fs.write(c.fh, 0, [b('abc')]);
    expect(fs.create(root, b('f'), O_RDWR | O_EXCL, 0o644, NONE, NONE)).toBe(-EEXIST);
    const c2 = createFile(fs, root, 'f', O_RDONLY);
    expect(c2.ino).toBe(c.ino);
    expect(td.decode(readAll(fs, c2.fh, 0, 10))).toBe('abc');
    const c3 = createFile(fs, root, 'f', O_WRONLY | O_TRUNC);
    expect(c3.size).toBe(0);
    fs.mkdir(root, b('d'), 0o755, NONE, NONE);
    expect(fs.create(root, b('d'), O_RDWR, 0o644, NONE, NONE)).toBe(-EISDIR);
    expect(fs.create(root, b('.'), O_RDWR, 0o644, NONE, NONE)).toBe(-EEXIST);
    expect(fs.create(root, b('..'), O_RDWR, 0o644, NONE, NONE)).toBe(-EEXIST);
    expect(fs.mkdir(root, b('..'), 0o755, NONE, NONE)).toBe(-EEXIST);
    expect(fs.mkdir(root, b('f'), 0o755, NONE, NONE)).toBe(-EEXIST);
    expect(fs.create(c.node, b('x'), O_RDWR, 0o644, NONE, NONE)).toBe(-ENOTDIR);
    expect(fs.lookup(c.node, b('x'))).toBe(-ENOTDIR);
  });

  test('names are bytes: non-UTF-8 names round-trip exactly', () => {
    const { fs, root } = setup();
    const name = new Uint8Array([0xff, 0x80, 0x41, 0x9f, 0xc3]);
    const c = ok<Created>(fs.create(root, name, O_RDWR, 0o644, NONE, NONE));
    const e = ok<Entry>(fs.lookup(root, name.slice()));
    expect(e.ino).toBe(c.ino);
    const dfh = ok<number>(fs.open(root, O_RDONLY));
    const seen: Uint8Array[] = [];
    fs.readdir(dfh, 2, { push(_i, _n, _t, nm) { seen.push(nm.slice()); return true; } });
    expect(seen).toEqual([name]);
    // a different name differing only in a cp1252-remapped byte is distinct
    expect(fs.lookup(root, new Uint8Array([0xff, 0x80, 0x41, 0x9f, 0xc2]))).toBe(-ENOENT);
  });
});

describe('MemoryBackend: sparse files and truncate', () => {
  test('write at 5 GiB, read back, holes read as zeros, little memory used', () => {
    const { fs, root } = setup();
    const c = createFile(fs, root, 'sparse');
    const off = 5 * 2 ** 30 + 123;
    const data = new Uint8Array(70000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 255;
    expect(fs.write(c.fh, off, [data])).toBe(70000);
    const st = ok<Stat>(fs.getattr(c.node));
    expect(st.size).toBe(off + 70000);
    expect(fs.usedBytes).toBeLessThan(1 << 20);
    expect(st.blocks * 512).toBeLessThan(1 << 20);
    const back = readAll(fs, c.fh, off, 70000);
    expect(back).toEqual(data);
    // straddle the start of the data: 100 zeros then data
    const s = readAll(fs, c.fh, off - 100, 200);
    expect(s.subarray(0, 100).every((x) => x === 0)).toBe(true);
    expect(s.subarray(100)).toEqual(data.subarray(0, 100));
    // a hole in the middle
    const hole = readAll(fs, c.fh, 2 ** 30, 4096);
    expect(hole.length).toBe(4096);
    expect(hole.every((x) => x === 0)).toBe(true);
    // read past EOF is short
    expect(readAll(fs, c.fh, off + 69990, 100).length).toBe(10);
  });

  test('truncate down zeroes the tail; growing again reads zeros', () => {
    const { fs, root } = setup();
    const c = createFile(fs, root, 't');
    const data = new Uint8Array(200000).fill(0xab);
    expect(fs.write(c.fh, 0, [data])).toBe(200000);
    const used = fs.usedBytes;
    expect(fs.setattr(c.node, { size: 70000 })).toBe(0);
    expect(fs.usedBytes).toBeLessThan(used);
    expect(ok<Stat>(fs.getattr(c.node)).size).toBe(70000);
    expect(fs.setattr(c.node, { size: 150000 })).toBe(0);
    const r = readAll(fs, c.fh, 0, 200000);
    expect(r.length).toBe(150000);
    expect(r.subarray(0, 70000).every((x) => x === 0xab)).toBe(true);
    expect(r.subarray(70000).every((x) => x === 0)).toBe(true);
    expect(fs.setattr(c.node, { size: 0 })).toBe(0);
    expect(fs.usedBytes).toBe(0);
    expect(ok<Stat>(fs.getattr(c.node)).blocks).toBe(0);
  });

  test('O_TRUNC and O_APPEND', () => {
    const { fs, root } = setup();
    const c = createFile(fs, root, 'a');
    fs.write(c.fh, 0, [b('0123456789')]);
    fs.close(c.fh);
    const ap = ok<number>(fs.open(c.node, O_WRONLY | O_APPEND));
    expect(fs.write(ap, 0, [b('AB')])).toBe(2);
    expect(td.decode(fs.readFileSync('a'))).toBe('0123456789AB');
    const ro = ok<number>(fs.open(c.node, O_RDONLY | O_TRUNC));
    expect(ok<Stat>(fs.getattr(c.node)).size).toBe(12); // no truncate without write access
    const tr = ok<number>(fs.open(c.node, O_RDWR | O_TRUNC));
    expect(ok<Stat>(fs.getattr(c.node)).size).toBe(0);
    [ap, ro, tr].forEach((h) => expect(fs.close(h)).toBe(0));
  });

  test('setattr mode keeps type bits, times are settable, ctime touch', () => {
    const { fs, root } = setup();
    const c = createFile(fs, root, 'm');
    expect(fs.setattr(c.node, { mode: 0o104711, uid: 5, gid: 6, atime: [100, 200], mtime: [300, 400] })).toBe(0);
    const st = ok<Stat>(fs.getattr(c.node));
    expect(st.mode).toBe(S_IFREG | 0o4711);
    expect([st.uid, st.gid]).toEqual([5, 6]);
    expect([st.atimeSec, st.atimeNsec, st.mtimeSec, st.mtimeNsec]).toEqual([100, 200, 300, 400]);
    expect(st.ctimeSec).toBeGreaterThan(1e9);
    expect(st.ctimeNsec).toBeGreaterThanOrEqual(0);
    expect(st.ctimeNsec).toBeLessThan(1e9);
    expect(fs.setattr(root, { size: 0 })).toBe(-EISDIR);
  });
});

describe('MemoryBackend: readdir', () => {
  test('lists . and .. and entries with types and resumable cookies', () => {
    const { fs, root, rootIno } = setup();
    const d = ok<Stat>(fs.mkdir(root, b('sub'), 0o755, NONE, NONE));
    const f = createFile(fs, root, 'file');
    fs.symlink(root, b('ln'), b('file'), NONE, NONE);
    const fh = ok<number>(fs.open(root, O_RDONLY));
    const all = listDir(fs, fh);
    expect(all.map((e) => e.name)).toEqual(['.', '..', 'sub', 'file', 'ln']);
    expect(all[0]).toEqual({ ino: rootIno, next: 1, dtype: 4, name: '.' });
    expect(all[1]).toEqual({ ino: rootIno, next: 2, dtype: 4, name: '..' });
    expect(all[2].ino).toBe(d.ino);
    expect(all[2].dtype).toBe(4);
    expect(all[3].ino).toBe(f.ino);
    expect(all[3].dtype).toBe(8);
    expect(all[4].dtype).toBe(10);
    const nexts = all.map((e) => e.next);
    expect(new Set(nexts).size).toBe(5);
    expect(nexts.every((n) => n > 0)).toBe(true);
    // resume after each entry
    for (let k = 0; k < all.length; k++) {
      expect(listDir(fs, fh, all[k].next).map((e) => e.name)).toEqual(all.slice(k + 1).map((e) => e.name));
    }
    // ".." of a subdirectory is the parent
    const sub = look(fs, root, 'sub');
    const sfh = ok<number>(fs.open(sub.node, O_RDONLY));
    const sl = listDir(fs, sfh);
    expect(sl.map((e) => [e.name, e.ino])).toEqual([['.', d.ino], ['..', rootIno]]);
    expect(look(fs, sub.node, '..').ino).toBe(rootIno);
    expect(fs.readdir(f.fh, 0, { push: () => true })).toBe(-ENOTDIR);
  });

  test('resume across deletions (rm -rf pattern) sees every entry exactly once', () => {
    const { fs, root } = setup();
    const d = ok<Stat>(fs.mkdir(root, b('big'), 0o755, NONE, NONE));
    const dn = look(fs, root, 'big').node;
    expect(d.ino).toBeGreaterThan(0);
    for (let i = 0; i < 100; i++) {
      const c = createFile(fs, dn, `f${i}`);
      fs.close(c.fh);
      fs.forget(c.node);
    }
    const fh = ok<number>(fs.open(dn, O_RDONLY));
    const seen = new Map<string, number>();
    let cookie = 0;
    for (let round = 0; round < 1000; round++) {
      const batch = listDir(fs, fh, cookie, 7);
      if (batch.length === 0) break;
      for (const e of batch) {
        seen.set(e.name, (seen.get(e.name) ?? 0) + 1);
        if (e.name !== '.' && e.name !== '..') expect(fs.unlinkat(dn, b(e.name), 0)).toBe(0);
      }
      cookie = batch[batch.length - 1].next;
    }
    expect(seen.size).toBe(102);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    expect(fs.unlinkat(root, b('big'), AT_REMOVEDIR)).toBe(0);
  });

  test('entries added during a listing after the cookie are seen; earlier deletions do not shift', () => {
    const { fs, root } = setup();
    for (let i = 0; i < 50; i++) fs.mknod(root, b(`n${i}`), S_IFIFO | 0o644, 0, 0, NONE, NONE);
    const fh = ok<number>(fs.open(root, O_RDONLY));
    const first = listDir(fs, fh, 0, 12);
    const cookie = first[first.length - 1].next;
    // delete everything already read plus some later ones
    for (let i = 0; i < 10; i++) fs.unlinkat(root, b(`n${i}`), 0);
    fs.unlinkat(root, b('n30'), 0);
    fs.mknod(root, b('late'), S_IFIFO | 0o644, 0, 0, NONE, NONE);
    const rest = listDir(fs, fh, cookie).map((e) => e.name);
    const expected = [];
    for (let i = 10; i < 50; i++) if (i !== 30) expected.push(`n${i}`);
    expected.push('late');
    expect(rest).toEqual(expected);
  });

  test('10,000 entries listed in chunks in roughly linear time', () => {
    const { fs, root } = setup();
    for (let i = 0; i < 10000; i++) fs.mknod(root, b(`e${i}`), S_IFREG | 0o644, 0, 0, NONE, NONE);
    const fh = ok<number>(fs.open(root, O_RDONLY));
    let cookie = 0, count = 0;
    const t0 = Date.now();
    for (;;) {
      const batch = listDir(fs, fh, cookie, 50);
      if (batch.length === 0) break;
      count += batch.length;
      cookie = batch[batch.length - 1].next;
    }
    expect(count).toBe(10002);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

describe('MemoryBackend: rename', () => {
  test('renameat moves and replaces a non-directory; fids follow objects', () => {
    const { fs, root } = setup();
    const a = createFile(fs, root, 'a');
    fs.write(a.fh, 0, [b('AAA')]);
    const bb = createFile(fs, root, 'b');
    fs.write(bb.fh, 0, [b('BBB')]);
    expect(fs.renameat(root, b('a'), root, b('b'))).toBe(0);
    expect(fs.lookup(root, b('a'))).toBe(-ENOENT);
    expect(look(fs, root, 'b').ino).toBe(a.ino);
    expect(td.decode(fs.readFileSync('b'))).toBe('AAA');
    // the replaced file stays usable through its handles, nlink 0
    expect(ok<Stat>(fs.getattr(bb.node)).nlink).toBe(0);
    expect(td.decode(readAll(fs, bb.fh, 0, 10))).toBe('BBB');
    expect(fs.setattr(bb.node, { mode: 0o600 })).toBe(0);
    expect(ok<Stat>(fs.getattr(look(fs, root, 'b').node)).mode & 0o777).toBe(0o644);
    // move across directories
    fs.mkdir(root, b('d'), 0o755, NONE, NONE);
    const dn = look(fs, root, 'd').node;
    expect(fs.renameat(root, b('b'), dn, b('c'))).toBe(0);
    expect(look(fs, dn, 'c').ino).toBe(a.ino);
    expect(fs.renameat(root, b('nope'), dn, b('x'))).toBe(-ENOENT);
  });

  test('rename errnos: ENOTEMPTY, ENOTDIR, EISDIR, EINVAL, same inode no-op', () => {
    const { fs, root } = setup();
    fs.mkdir(root, b('d1'), 0o755, NONE, NONE);
    fs.mkdir(root, b('d2'), 0o755, NONE, NONE);
    fs.mkdir(root, b('empty'), 0o755, NONE, NONE);
    const d1 = look(fs, root, 'd1');
    const d2 = look(fs, root, 'd2');
    fs.mkdir(d2.node, b('inner'), 0o755, NONE, NONE);
    const f = createFile(fs, root, 'f');
    fs.link(root, b('f2'), f.node);
    expect(fs.renameat(root, b('d1'), root, b('d2'))).toBe(-ENOTEMPTY);
    expect(fs.renameat(root, b('d1'), root, b('f'))).toBe(-ENOTDIR);
    expect(fs.renameat(root, b('f'), root, b('d1'))).toBe(-EISDIR);
    expect(fs.renameat(root, b('d2'), look(fs, d2.node, 'inner').node, b('x'))).toBe(-EINVAL);
    expect(fs.renameat(root, b('d2'), d2.node, b('x'))).toBe(-EINVAL);
    expect(fs.renameat(root, b('f'), root, b('f2'))).toBe(0); // same inode: no-op
    expect(look(fs, root, 'f').ino).toBe(f.ino);
    expect(look(fs, root, 'f2').ino).toBe(f.ino);
    expect(fs.renameat(root, b('f'), root, b('f'))).toBe(0);
    // a directory replaces an empty directory; nlink bookkeeping
    const rootBefore = ok<Stat>(fs.getattr(root)).nlink; // 2 + d1 + d2 + empty
    expect(rootBefore).toBe(5);
    expect(fs.renameat(root, b('d1'), root, b('empty'))).toBe(0);
    expect(look(fs, root, 'empty').ino).toBe(d1.ino);
    expect(ok<Stat>(fs.getattr(root)).nlink).toBe(4);
    // move a dir into another dir: parent link counts and ".." update
    expect(fs.renameat(root, b('empty'), d2.node, b('moved'))).toBe(0);
    expect(ok<Stat>(fs.getattr(root)).nlink).toBe(3);
    expect(ok<Stat>(fs.getattr(d2.node)).nlink).toBe(4);
    expect(look(fs, d1.node, '..').ino).toBe(d2.ino);
  });

  test('rename(node) moves the object the node refers to; unlinked → ENOENT', () => {
    const { fs, root } = setup();
    const c = createFile(fs, root, 'x');
    fs.mkdir(root, b('d'), 0o755, NONE, NONE);
    const d = look(fs, root, 'd');
    expect(fs.rename(c.node, d.node, b('y'))).toBe(0);
    expect(look(fs, d.node, 'y').ino).toBe(c.ino);
    expect(fs.lookup(root, b('x'))).toBe(-ENOENT);
    expect(fs.rename(c.node, root, b('z'))).toBe(0);
    expect(look(fs, root, 'z').ino).toBe(c.ino);
    expect(fs.unlinkat(root, b('z'), 0)).toBe(0);
    expect(fs.rename(c.node, root, b('w'))).toBe(-ENOENT);
    expect(fs.rename(d.node, d.node, b('self'))).toBe(-EINVAL);
    expect(fs.rename(root, d.node, b('r'))).toBe(-EBUSY);
  });
});

describe('MemoryBackend: unlink, remove, links', () => {
  test('unlinkat rules', () => {
    const { fs, root } = setup();
    fs.mkdir(root, b('d'), 0o755, NONE, NONE);
    const d = look(fs, root, 'd');
    createFile(fs, d.node, 'f');
    createFile(fs, root, 'g');
    expect(fs.unlinkat(root, b('d'), 0)).toBe(-EISDIR);
    expect(fs.unlinkat(root, b('g'), AT_REMOVEDIR)).toBe(-ENOTDIR);
    expect(fs.unlinkat(root, b('d'), AT_REMOVEDIR)).toBe(-ENOTEMPTY);
    expect(fs.unlinkat(root, b('.'), AT_REMOVEDIR)).toBe(-EINVAL);
    expect(fs.unlinkat(root, b('..'), AT_REMOVEDIR)).toBe(-ENOTEMPTY);
    expect(fs.unlinkat(root, b('nope'), 0)).toBe(-ENOENT);
    expect(fs.unlinkat(d.node, b('f'), 0)).toBe(0);
    expect(fs.unlinkat(root, b('d'), AT_REMOVEDIR)).toBe(0);
    expect(ok<Stat>(fs.getattr(d.node)).nlink).toBe(0);
    expect(ok<Stat>(fs.getattr(root)).nlink).toBe(2);
    // creating in a removed directory fails
    expect(fs.create(d.node, b('n'), O_RDWR, 0o644, NONE, NONE)).toBe(-ENOENT);
    expect(fs.lookup(d.node, b('..'))).toBe(-ENOENT);
  });

  test('unlinked open file keeps its data; freed after last close/forget', () => {
    const { fs, root } = setup();
    const base = fs.inodes;
    const c = createFile(fs, root, 'tmp');
    expect(fs.write(c.fh, 0, [b('still here')])).toBe(10);
    expect(fs.unlinkat(root, b('tmp'), 0)).toBe(0);
    expect(fs.lookup(root, b('tmp'))).toBe(-ENOENT);
    expect(td.decode(readAll(fs, c.fh, 0, 100))).toBe('still here');
    expect(fs.write(c.fh, 10, [b('!')])).toBe(1);
    expect(td.decode(readAll(fs, c.fh, 0, 100))).toBe('still here!');
    const st = ok<Stat>(fs.getattr(c.node));
    expect(st.nlink).toBe(0);
    expect(st.size).toBe(11);
    expect(fs.setattr(c.node, { size: 5 })).toBe(0);
    expect(td.decode(readAll(fs, c.fh, 0, 100))).toBe('still');
    expect(fs.inodes).toBe(base + 1);
    expect(fs.close(c.fh)).toBe(0);
    expect(fs.inodes).toBe(base + 1); // node reference still held
    expect(ok<Stat>(fs.getattr(c.node)).size).toBe(5);
    fs.forget(c.node);
    expect(fs.inodes).toBe(base);
    expect(fs.usedBytes).toBe(0);
    expect(fs.getattr(c.node)).toBe(-EBADF);
  });

  test('remove(node)', () => {
    const { fs, root } = setup();
    fs.mkdir(root, b('d'), 0o755, NONE, NONE);
    const d = look(fs, root, 'd');
    const f = createFile(fs, d.node, 'f');
    expect(fs.remove(d.node)).toBe(-ENOTEMPTY);
    expect(fs.remove(f.node)).toBe(0);
    expect(fs.remove(f.node)).toBe(-ENOENT);
    expect(fs.remove(d.node)).toBe(0);
    expect(fs.lookup(root, b('d'))).toBe(-ENOENT);
    expect(fs.remove(root)).toBe(-EBUSY);
  });

  test('hard links share the inode and count nlink; directories → EPERM', () => {
    const { fs, root } = setup();
    const c = createFile(fs, root, 'orig');
    fs.write(c.fh, 0, [b('data')]);
    expect(fs.link(root, b('alias'), c.node)).toBe(0);
    const al = look(fs, root, 'alias');
    expect(al.ino).toBe(c.ino);
    expect(al.nlink).toBe(2);
    expect(fs.link(root, b('alias'), c.node)).toBe(-EEXIST);
    expect(fs.link(root, b('dirlink'), root)).toBe(-EPERM);
    expect(fs.unlinkat(root, b('orig'), 0)).toBe(0);
    expect(ok<Stat>(fs.getattr(c.node)).nlink).toBe(1);
    expect(td.decode(fs.readFileSync('alias'))).toBe('data');
    // remove(node) finds the remaining link
    expect(fs.remove(c.node)).toBe(0);
    expect(fs.lookup(root, b('alias'))).toBe(-ENOENT);
    expect(ok<Stat>(fs.getattr(c.node)).nlink).toBe(0);
  });
});

describe('MemoryBackend: special files', () => {
  test('symlink and readlink', () => {
    const { fs, root } = setup();
    const target = new Uint8Array([0x2e, 0x2e, 0x2f, 0xfe, 0x61]);
    const st = ok<Stat>(fs.symlink(root, b('ln'), target, NONE, NONE));
    expect(st.mode).toBe(S_IFLNK | 0o777);
    expect(st.size).toBe(5);
    const e = look(fs, root, 'ln');
    expect(fs.readlink(e.node)).toEqual(target);
    expect(fs.readlink(root)).toBe(-EINVAL);
    expect(fs.symlink(root, b('ln'), target, NONE, NONE)).toBe(-EEXIST);
  });

  test('mknod: rdev encoding and types', () => {
    expect(encodeDev(8, 1)).toBe(0x801);
    expect(encodeDev(1, 0x12345)).toBe(0x12300145);
    expect(encodeDev(0xfff, 0xfffff)).toBe(0xffffffff);
    const { fs, root } = setup();
    const chr = ok<Stat>(fs.mknod(root, b('null'), S_IFCHR | 0o666, 1, 3, NONE, NONE));
    expect(chr.mode).toBe(S_IFCHR | 0o666);
    expect(chr.rdev).toBe(0x103);
    const blk = ok<Stat>(fs.mknod(root, b('sda'), S_IFBLK | 0o660, 259, 0x12345, NONE, NONE));
    expect(blk.rdev).toBe(((0x45) | (259 << 8) | (0x12300 << 12)) >>> 0);
    expect(blk.rdev).toBeGreaterThan(0);
    const fifo = ok<Stat>(fs.mknod(root, b('p'), S_IFIFO | 0o600, 0, 0, NONE, NONE));
    expect(fifo.mode & S_IFMT).toBe(S_IFIFO);
    expect(fifo.rdev).toBe(0);
    const sock = ok<Stat>(fs.mknod(root, b('s'), S_IFSOCK | 0o600, 0, 0, NONE, NONE));
    expect(sock.mode & S_IFMT).toBe(S_IFSOCK);
    expect(fs.mknod(root, b('dd'), S_IFDIR | 0o755, 0, 0, NONE, NONE)).toBe(-EPERM);
    expect(look(fs, root, 'null').rdev).toBe(0x103);
  });
});

describe('MemoryBackend: xattrs', () => {
  test('set/get/list/remove with CREATE and REPLACE flags', () => {
    const { fs, root } = setup();
    const c = createFile(fs, root, 'x');
    expect(fs.getxattr(c.node, b('user.a'))).toBe(-ENODATA);
    expect(fs.setxattr(c.node, b('user.a'), b('1'), XATTR_REPLACE)).toBe(-ENODATA);
    expect(fs.setxattr(c.node, b('user.a'), b('1'), XATTR_CREATE)).toBe(0);
    expect(fs.setxattr(c.node, b('user.a'), b('2'), XATTR_CREATE)).toBe(-EEXIST);
    expect(fs.setxattr(c.node, b('user.a'), b('3'), XATTR_REPLACE)).toBe(0);
    expect(fs.setxattr(c.node, b('user.b'), new Uint8Array(0), 0)).toBe(0);
    expect(fs.getxattr(c.node, b('user.a'))).toEqual(b('3'));
    expect(fs.getxattr(c.node, b('user.b'))).toEqual(new Uint8Array(0));
    const names = ok<Uint8Array[]>(fs.listxattr(c.node)).map((n) => td.decode(n)).sort();
    expect(names).toEqual(['user.a', 'user.b']);
    expect(fs.removexattr(c.node, b('user.a'))).toBe(0);
    expect(fs.removexattr(c.node, b('user.a'))).toBe(-ENODATA);
    expect(ok<Uint8Array[]>(fs.listxattr(c.node)).map((n) => td.decode(n))).toEqual(['user.b']);
    // the stored value is a copy
    const v = b('abc');
    fs.setxattr(c.node, b('user.c'), v, 0);
    v[0] = 0x7a;
    expect(fs.getxattr(c.node, b('user.c'))).toEqual(b('abc'));
  });
});

describe('MemoryBackend: statfs and limits', () => {
  test('statfs figures', () => {
    const { fs, root } = setup({ capacityBytes: 1 << 20, maxInodes: 100 });
    const s0 = ok<StatFs>(fs.statfs(root));
    expect(s0.type).toBe(0x01021997);
    expect(s0.bsize).toBe(4096);
    expect(s0.namelen).toBe(255);
    expect(s0.blocks).toBe(256);
    expect(s0.bfree).toBe(256);
    expect(s0.bavail).toBe(256);
    expect(s0.files).toBe(100);
    expect(s0.ffree).toBe(99);
    const c = createFile(fs, root, 'f');
    fs.write(c.fh, 0, [new Uint8Array(8192)]);
    const s1 = ok<StatFs>(fs.statfs(root));
    expect(s1.bfree).toBe(254);
    expect(s1.ffree).toBe(98);
    expect(s1.fsid).toBe(s0.fsid);
  });

  test('ENOSPC on capacity, short write then error', () => {
    const { fs, root } = setup({ capacityBytes: 64 * 1024 });
    const c = createFile(fs, root, 'f');
    expect(fs.write(c.fh, 0, [new Uint8Array(60 * 1024).fill(1)])).toBe(60 * 1024);
    const r = fs.write(c.fh, 60 * 1024, [new Uint8Array(16 * 1024).fill(2)]);
    expect(r).toBe(4 * 1024);
    expect(fs.write(c.fh, 64 * 1024, [new Uint8Array(10)])).toBe(-ENOSPC);
    // a sparse write elsewhere needs a new chunk: no room
    expect(fs.write(c.fh, 10 * 2 ** 20, [new Uint8Array(10)])).toBe(-ENOSPC);
    // freeing space lets writes succeed again
    expect(fs.setattr(c.node, { size: 0 })).toBe(0);
    expect(fs.write(c.fh, 0, [new Uint8Array(10)])).toBe(10);
  });

  test('ENOSPC on inode limit', () => {
    const { fs, root } = setup({ maxInodes: 3 });
    createFile(fs, root, 'a');
    expect(ok<Stat>(fs.mkdir(root, b('b'), 0o755, NONE, NONE)).mode & S_IFMT).toBe(S_IFDIR);
    expect(fs.create(root, b('c'), O_RDWR, 0o644, NONE, NONE)).toBe(-ENOSPC);
    expect(fs.mkdir(root, b('c'), 0o755, NONE, NONE)).toBe(-ENOSPC);
    expect(fs.symlink(root, b('c'), b('a'), NONE, NONE)).toBe(-ENOSPC);
    expect(fs.unlinkat(root, b('b'), AT_REMOVEDIR)).toBe(0);
    expect(ok<Stat>(fs.mkdir(root, b('c'), 0o755, NONE, NONE)).mode & S_IFMT).toBe(S_IFDIR);
    expect(fs.inodes).toBe(3);
  });
});

describe('MemoryBackend: bad handles and modes', () => {
  test('EBADF and EISDIR cases', () => {
    const { fs, root } = setup();
    const c = createFile(fs, root, 'f', O_WRONLY);
    expect(fs.read(c.fh, 0, [new Uint8Array(4)])).toBe(-EBADF);
    expect(fs.write(c.fh, 0, [b('x')])).toBe(1);
    const ro = ok<number>(fs.open(c.node, O_RDONLY));
    expect(fs.write(ro, 0, [b('x')])).toBe(-EBADF);
    expect(fs.open(root, O_WRONLY)).toBe(-EISDIR);
    expect(fs.open(root, O_RDWR)).toBe(-EISDIR);
    const dfh = ok<number>(fs.open(root, O_RDONLY));
    expect(fs.read(dfh, 0, [new Uint8Array(4)])).toBe(-EISDIR);
    expect(fs.write(dfh, 0, [b('x')])).toBe(-EISDIR);
    expect(fs.fsync(dfh, false)).toBe(0);
    expect(fs.fsync(9999, true)).toBe(-EBADF);
    expect(fs.read(9999, 0, [new Uint8Array(4)])).toBe(-EBADF);
    expect(fs.write(9999, 0, [b('x')])).toBe(-EBADF);
    expect(fs.readdir(9999, 0, { push: () => true })).toBe(-EBADF);
    expect(fs.close(9999)).toBe(-EBADF);
    for (const bad of [0, 12345]) {
      expect(fs.getattr(bad)).toBe(-EBADF);
      expect(fs.lookup(bad, b('x'))).toBe(-EBADF);
      expect(fs.open(bad, O_RDONLY)).toBe(-EBADF);
      expect(fs.setattr(bad, { mode: 0 })).toBe(-EBADF);
      expect(fs.mkdir(bad, b('x'), 0o755, NONE, NONE)).toBe(-EBADF);
      expect(fs.create(bad, b('x'), O_RDWR, 0o644, NONE, NONE)).toBe(-EBADF);
      expect(fs.statfs(bad)).toBe(-EBADF);
      expect(fs.getxattr(bad, b('user.x'))).toBe(-EBADF);
      expect(fs.remove(bad)).toBe(-EBADF);
      expect(fs.unlinkat(bad, b('x'), 0)).toBe(-EBADF);
      expect(fs.renameat(bad, b('x'), root, b('y'))).toBe(-EBADF);
      expect(fs.link(root, b('y'), bad)).toBe(-EBADF);
      expect(fs.readlink(bad)).toBe(-EBADF);
    }
    expect(fs.unlinkat(c.node, b('x'), 0)).toBe(-ENOTDIR);
    expect(errno(fs.open(c.node, O_RDONLY))).toBeGreaterThan(0);
  });

  test('node references are counted: forget releases them one at a time', () => {
    const { fs, root } = setup();
    const c = createFile(fs, root, 'f');
    fs.close(c.fh);
    const e1 = look(fs, root, 'f');
    expect(e1.node).toBe(c.node);
    fs.unlinkat(root, b('f'), 0);
    fs.forget(c.node);
    expect(ok<Stat>(fs.getattr(c.node)).nlink).toBe(0);
    fs.forget(c.node);
    expect(fs.getattr(c.node)).toBe(-EBADF);
  });
});

describe('MemoryBackend: seeding API', () => {
  test('fromTree, mkdirp, writeFile, symlinkAt, readFileSync', () => {
    const fs = MemoryBackend.fromTree({
      'README': 'hi',
      'bin': { 'tool': new Uint8Array([1, 2, 3]), 'sh': { symlink: '/bin/busybox' } },
      'empty': {},
      'ünï': 'utf8 name',
    });
    expect(td.decode(fs.readFileSync('README'))).toBe('hi');
    expect(fs.readFileSync('bin/tool')).toEqual(new Uint8Array([1, 2, 3]));
    expect(fs.readlinkSync('bin/sh')).toBe('/bin/busybox');
    expect(fs.readdirSync('')).toEqual(['README', 'bin', 'empty', 'ünï']);
    expect(fs.statSync('empty')!.mode & S_IFMT).toBe(S_IFDIR);
    fs.mkdirp('a/b/c', 0o700);
    expect(fs.statSync('a/b/c')!.mode).toBe(S_IFDIR | 0o700);
    fs.writeFile('a/b/c/f.txt', 'one');
    fs.writeFile('a/b/c/f.txt', 'two!');
    expect(fs.readTextSync('a/b/c/f.txt')).toBe('two!');
    fs.symlinkAt('x/link', 'a/b');
    expect(fs.statSync('x/link')!.mode & S_IFMT).toBe(S_IFLNK);
    expect(() => fs.readFileSync('nope')).toThrow();
    // visible through the Backend API
    const root = ok<Entry>(fs.attach(new Uint8Array(0), NONE));
    const a = look(fs, root.node, 'a');
    const bb = look(fs, a.node, 'b');
    const cc = look(fs, bb.node, 'c');
    const f = look(fs, cc.node, 'f.txt');
    const fh = ok<number>(fs.open(f.node, O_RDONLY));
    expect(td.decode(readAll(fs, fh, 0, 10))).toBe('two!');
    expect(look(fs, root.node, 'ünï').size).toBe(9);
    // attach with an aname
    const sub = ok<Entry>(fs.attach(b('/a/b'), NONE));
    expect(sub.ino).toBe(bb.ino);
    expect(fs.attach(b('/nope'), NONE)).toBe(-ENOENT);
  });

  test('large sequential write/read through 128 KiB requests', () => {
    const { fs, root } = setup();
    const c = createFile(fs, root, 'big');
    const req = new Uint8Array(128 * 1024);
    for (let i = 0; i < req.length; i++) req[i] = i & 255;
    const total = 16 * 1024 * 1024;
    for (let off = 0; off < total; off += req.length) expect(fs.write(c.fh, off, [req])).toBe(req.length);
    const out = new Uint8Array(req.length);
    for (let off = 0; off < total; off += req.length) {
      expect(fs.read(c.fh, off, [out])).toBe(req.length);
    }
    expect(out).toEqual(req);
    expect(ok<Stat>(fs.getattr(c.node)).size).toBe(total);
    expect(fs.usedBytes).toBe(total);
  });
});
