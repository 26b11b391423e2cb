/**
 * LocalBackend specifics (the shared Backend behaviour is in tests/conformance): fids that
 * follow renames, detached objects after unlink, read-only, byte names, the export wall
 * (".." at the root, symlinks never followed), readdir snapshots and fd hygiene.
 */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { LocalBackend } from '../../src/backends/local.js';
import {
  AT_REMOVEDIR, O_APPEND, O_DIRECTORY, O_EXCL, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY,
  S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG,
} from '../../src/backends/backend.js';
import type { Created, DirSink, Entry, Stat, StatFs } from '../../src/backends/backend.js';
import {
  EBADF, EBUSY, EEXIST, EINVAL, EISDIR, ELOOP, ENODATA, ENOENT, ENOTDIR, ENOTEMPTY, ENXIO, EOPNOTSUPP, EPERM, EROFS,
} from '../../src/errno.js';

const te = new TextEncoder();
const td = new TextDecoder();
const b = (s: string): Uint8Array => te.encode(s);
const NONE = 0xFFFFFFFF;

function ok<T>(v: T | number | Promise<T | number>): T {
  if (typeof v === 'number' && v < 0) throw new Error(`unexpected errno ${-v}`);
  if (v instanceof Promise) throw new Error('unexpected promise');
  return v as T;
}

const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;

let top: string;
let fdsAtStart: number;
let seq = 0;
const backends: LocalBackend[] = [];

beforeAll(() => {
  top = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-local-'));
  fdsAtStart = fdCount();
});
afterAll(() => {
  fs.rmSync(top, { recursive: true, force: true });
});

/** A fresh export directory and a backend on it. */
function setup(opts: { readonly?: boolean } = {}) {
  const dir = path.join(top, `x${seq++}`);
  fs.mkdirSync(dir);
  const be = new LocalBackend({ root: dir, readonly: opts.readonly });
  backends.push(be);
  const root = ok<Entry>(be.attach(new Uint8Array(0), NONE));
  return { be, dir, root: root.node, rootIno: root.ino };
}

const look = (be: LocalBackend, dir: number, name: string | Uint8Array): Entry =>
  ok<Entry>(be.lookup(dir, typeof name === 'string' ? b(name) : name));

function create(be: LocalBackend, dir: number, name: string | Uint8Array, flags = O_RDWR, mode = 0o644): Created {
  return ok<Created>(be.create(dir, typeof name === 'string' ? b(name) : name, flags, mode, NONE, NONE));
}

function readStr(be: LocalBackend, fh: number, off = 0, len = 4096): string {
  const buf = new Uint8Array(len);
  const n = ok<number>(be.read(fh, off, [buf]));
  return td.decode(buf.subarray(0, n));
}

interface Item { ino: number; next: number; dtype: number; name: Uint8Array }
function list(be: LocalBackend, fh: number, cookie = 0, max = Infinity): Item[] {
  const out: Item[] = [];
  const sink: DirSink = {
    push(ino, next, dtype, name) {
      if (out.length >= max) return false;
      out.push({ ino, next, dtype, name: name.slice() });
      return true;
    },
  };
  expect(be.readdir(fh, cookie, sink)).toBe(0);
  return out;
}
const names = (items: Item[]): string[] => items.map((i) => td.decode(i.name));

describe('LocalBackend', () => {
  test('create/write/read/getattr pass through to the host file', () => {
    const { be, dir, root } = setup();
    const c = create(be, root, 'f', O_RDWR | O_EXCL, 0o640);
    expect(c.mode).toBe(S_IFREG | 0o640); // the umask is undone
    expect(c.ino).toBe(Number(fs.statSync(path.join(dir, 'f')).ino));
    expect(ok<number>(be.write(c.fh, 0, [b('hello '), b('world')]))).toBe(11);
    expect(fs.readFileSync(path.join(dir, 'f'), 'utf8')).toBe('hello world');
    // read straight into several buffers
    const x = new Uint8Array(5), y = new Uint8Array(10);
    expect(ok<number>(be.read(c.fh, 0, [x, y]))).toBe(11);
    expect(td.decode(x) + td.decode(y.subarray(0, 6))).toBe('hello world');
    expect(ok<Stat>(be.getattr(c.node)).size).toBe(11);
    expect(be.create(root, b('f'), O_RDWR | O_EXCL, 0o644, NONE, NONE)).toBe(-EEXIST);
    // create without O_EXCL on an existing file opens it (O_TRUNC honoured)
    const c2 = create(be, root, 'f', O_WRONLY | O_TRUNC);
    expect(c2.node).toBe(c.node); // same path, same inode → same node
    expect(c2.size).toBe(0);
    expect(fs.statSync(path.join(dir, 'f')).size).toBe(0);
    be.close(c.fh); be.close(c2.fh); be.forget(c.node); be.forget(c2.node);
    expect(be.openHandles).toBe(0);
    expect(be.liveNodes).toBe(1);
  });

  test('O_APPEND writes go to EOF whatever the offset; O_TRUNC on open', () => {
    const { be, dir, root } = setup();
    fs.writeFileSync(path.join(dir, 'log'), 'abc');
    const e = look(be, root, 'log');
    const fh = ok<number>(be.open(e.node, O_WRONLY | O_APPEND));
    expect(ok<number>(be.write(fh, 0, [b('def')]))).toBe(3);
    expect(fs.readFileSync(path.join(dir, 'log'), 'utf8')).toBe('abcdef');
    be.close(fh);
    const fh2 = ok<number>(be.open(e.node, O_RDWR | O_TRUNC));
    expect(fs.statSync(path.join(dir, 'log')).size).toBe(0);
    be.close(fh2);
    expect(be.open(e.node, O_RDWR | O_DIRECTORY)).toBe(-ENOTDIR);
    expect(be.open(ok<Entry>(be.lookup(root, b('.'))).node, O_RDWR)).toBe(-EISDIR);
  });

  test('fids follow renames of an ancestor (open and unopened)', () => {
    const { be, dir, root } = setup();
    fs.mkdirSync(path.join(dir, 'a/b'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'a/b/c'), 'payload');
    const a = look(be, root, 'a'), bb = look(be, a.node, 'b'), c = look(be, bb.node, 'c');
    const fh = ok<number>(be.open(c.node, O_RDONLY));
    expect(ok<number>(be.renameat(root, b('a'), root, b('z')))).toBe(0);
    expect(fs.existsSync(path.join(dir, 'z/b/c'))).toBe(true);
    expect(readStr(be, fh)).toBe('payload');
    be.close(fh);
    // the unopened fids were rewritten: getattr, open and lookup through them work
    expect(ok<Stat>(be.getattr(c.node)).size).toBe(7);
    const fh2 = ok<number>(be.open(c.node, O_RDONLY));
    expect(readStr(be, fh2)).toBe('payload');
    be.close(fh2);
    const c2 = look(be, bb.node, 'c');
    expect(c2.node).toBe(c.node);
    // ".." of b is now z
    expect(look(be, bb.node, '..').node).toBe(a.node);
    // Trename of the object itself
    expect(ok<number>(be.rename(bb.node, root, b('top')))).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'top/c'), 'utf8')).toBe('payload');
    expect(ok<Stat>(be.getattr(c.node)).size).toBe(7);
    expect(look(be, bb.node, '..').node).toBe(root);
    // moving a directory into itself
    expect(be.renameat(root, b('z'), a.node, b('in'))).toBe(-EINVAL);
    expect(be.rename(root, a.node, b('r'))).toBe(-EBUSY);
  });

  test('open, rename away, recreate: the old fid keeps its object (diod "setattr after move")', () => {
    const { be, dir, root } = setup();
    const c = create(be, root, 'f', O_RDWR, 0o644);
    expect(ok<number>(be.renameat(root, b('f'), root, b('g')))).toBe(0);
    const n = create(be, root, 'f', O_RDWR, 0o600);
    expect(n.node).not.toBe(c.node);
    expect(ok<number>(be.setattr(c.node, { mode: 0o751 }))).toBe(0);
    expect(fs.statSync(path.join(dir, 'g')).mode & 0o7777).toBe(0o751);
    expect(fs.statSync(path.join(dir, 'f')).mode & 0o7777).toBe(0o600);
    // rename over an existing file: the replaced object's fids are detached, still usable while open
    ok<number>(be.write(n.fh, 0, [b('new')]));
    ok<number>(be.write(c.fh, 0, [b('old!')]));
    expect(ok<number>(be.renameat(root, b('g'), root, b('f')))).toBe(0);
    expect(ok<Stat>(be.getattr(n.node)).nlink).toBe(0);
    expect(readStr(be, n.fh)).toBe('new');
    expect(look(be, root, 'f').node).toBe(c.node);
    expect(readStr(be, c.fh)).toBe('old!');
    // renaming onto a hard link of itself is a no-op
    expect(ok<number>(be.link(root, b('h'), c.node))).toBe(0);
    expect(ok<number>(be.renameat(root, b('f'), root, b('h')))).toBe(0);
    expect(fs.existsSync(path.join(dir, 'f'))).toBe(true);
    expect(ok<Stat>(be.getattr(c.node)).nlink).toBe(2);
    be.close(n.fh); be.close(c.fh);
  });

  test('detached after unlink: works through an open handle or a pin; host-side unlink → ENOENT', () => {
    const { be, dir, root } = setup();
    const c = create(be, root, 'f', O_RDWR, 0o644);
    ok<number>(be.write(c.fh, 0, [b('0123456789')]));
    fs.writeFileSync(path.join(dir, 'g'), 'x');
    const g = look(be, root, 'g');
    expect(ok<number>(be.unlinkat(root, b('f'), 0))).toBe(0);
    expect(ok<number>(be.unlinkat(root, b('g'), 0))).toBe(0);
    expect(fs.existsSync(path.join(dir, 'f'))).toBe(false);
    const st = ok<Stat>(be.getattr(c.node));
    expect(st.nlink).toBe(0);
    expect(st.size).toBe(10);
    expect(ok<number>(be.setattr(c.node, { mode: 0o600, size: 4, mtime: [1000000000, 0] }))).toBe(0);
    const st2 = ok<Stat>(be.getattr(c.node));
    expect(st2.mode).toBe(S_IFREG | 0o600);
    expect(st2.size).toBe(4);
    expect(st2.mtimeSec).toBe(1000000000);
    expect(readStr(be, c.fh)).toBe('0123');
    ok<number>(be.write(c.fh, 4, [b('AB')]));
    expect(readStr(be, c.fh)).toBe('0123AB');
    // a second open of the unlinked object (through the first handle)
    const fh2 = ok<number>(be.open(c.node, O_RDONLY));
    expect(readStr(be, fh2)).toBe('0123AB');
    be.close(fh2);
    // a new file at the same name is a different node
    const n = create(be, root, 'f');
    expect(n.node).not.toBe(c.node);
    be.close(n.fh);
    // no open handle, but unlinked through the backend while held: pinned (O_PATH), still works
    expect(ok<Stat>(be.getattr(g.node)).nlink).toBe(0);
    expect(ok<number>(be.setattr(g.node, { mode: 0o600, size: 0 }))).toBe(0);
    expect(ok<Stat>(be.getattr(g.node)).mode).toBe(S_IFREG | 0o600);
    const gfh = ok<number>(be.open(g.node, O_RDWR));
    ok<number>(be.write(gfh, 0, [b('gg')]));
    expect(readStr(be, gfh)).toBe('gg');
    be.close(gfh);
    const g2 = ok<Entry>(be.dup(g.node));
    expect([g2.node, g2.nlink, g2.size]).toEqual([g.node, 0, 2]);
    be.forget(g2.node);
    be.close(c.fh);
    expect(ok<Stat>(be.getattr(c.node)).nlink).toBe(0);
    expect(be.remove(c.node)).toBe(-ENOENT);
    // unlinked on the host (not through the backend): ENOENT, but dup still answers (nlink 0)
    fs.writeFileSync(path.join(dir, 'h'), 'hh');
    const hN = look(be, root, 'h');
    fs.unlinkSync(path.join(dir, 'h'));
    expect(be.getattr(hN.node)).toBe(-ENOENT);
    expect(be.setattr(hN.node, { mode: 0o600 })).toBe(-ENOENT);
    expect(be.open(hN.node, O_RDONLY)).toBe(-ENOENT);
    const h2 = ok<Entry>(be.dup(hN.node));
    expect([h2.node, h2.nlink, h2.size]).toEqual([hN.node, 0, 2]);
    const fds = fdCount();
    be.forget(c.node); be.forget(g.node); be.forget(n.node); be.forget(hN.node); be.forget(h2.node);
    expect(fdCount()).toBe(fds - 2); // the pins of g and c
    expect(be.liveNodes).toBe(1);
  });

  test('unlinkat / remove errors follow Linux', () => {
    const { be, dir, root } = setup();
    fs.mkdirSync(path.join(dir, 'd/e'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'file'), '');
    expect(be.unlinkat(root, b('d'), 0)).toBe(-EISDIR);
    expect(be.unlinkat(root, b('d'), AT_REMOVEDIR)).toBe(-ENOTEMPTY);
    expect(be.unlinkat(root, b('file'), AT_REMOVEDIR)).toBe(-ENOTDIR);
    expect(be.unlinkat(root, b('.'), 0)).toBe(-EINVAL);
    expect(be.unlinkat(root, b('..'), AT_REMOVEDIR)).toBe(-ENOTEMPTY);
    expect(be.unlinkat(root, b('nope'), 0)).toBe(-ENOENT);
    const d = look(be, root, 'd');
    const e = look(be, d.node, 'e');
    expect(be.remove(d.node)).toBe(-ENOTEMPTY);
    expect(ok<number>(be.remove(e.node))).toBe(0);
    expect(ok<number>(be.unlinkat(root, b('d'), AT_REMOVEDIR))).toBe(0);
    expect(be.lookup(d.node, b('x'))).toBe(-ENOENT);
    expect(be.mkdir(d.node, b('x'), 0o755, NONE, NONE)).toBe(-ENOENT);
    expect(be.remove(root)).toBe(-EBUSY);
  });

  test('readonly: every mutating operation answers EROFS', () => {
    const { be, dir, root } = setup({ readonly: true });
    fs.writeFileSync(path.join(dir, 'f'), 'data');
    fs.mkdirSync(path.join(dir, 'd'));
    const f = look(be, root, 'f');
    const d = look(be, root, 'd');
    expect(be.create(root, b('n'), O_RDWR, 0o644, NONE, NONE)).toBe(-EROFS);
    expect(be.open(f.node, O_WRONLY)).toBe(-EROFS);
    expect(be.open(f.node, O_RDWR)).toBe(-EROFS);
    expect(be.open(f.node, O_RDONLY | O_TRUNC)).toBe(-EROFS);
    expect(be.setattr(f.node, { mode: 0o600 })).toBe(-EROFS);
    expect(be.mkdir(root, b('m'), 0o755, NONE, NONE)).toBe(-EROFS);
    expect(be.symlink(root, b('s'), b('f'), NONE, NONE)).toBe(-EROFS);
    expect(be.mknod(root, b('p'), S_IFREG | 0o644, 0, 0, NONE, NONE)).toBe(-EROFS);
    expect(be.link(root, b('l'), f.node)).toBe(-EROFS);
    expect(be.renameat(root, b('f'), root, b('g'))).toBe(-EROFS);
    expect(be.rename(f.node, root, b('g'))).toBe(-EROFS);
    expect(be.unlinkat(root, b('f'), 0)).toBe(-EROFS);
    expect(be.unlinkat(root, b('d'), AT_REMOVEDIR)).toBe(-EROFS);
    expect(be.remove(d.node)).toBe(-EROFS);
    expect(be.setxattr(f.node, b('user.x'), b('1'), 0)).toBe(-EROFS);
    expect(be.removexattr(f.node, b('user.x'))).toBe(-EROFS);
    const fh = ok<number>(be.open(f.node, O_RDONLY));
    expect(readStr(be, fh)).toBe('data');
    expect(be.write(fh, 0, [b('x')])).toBe(-EROFS);
    expect(ok<number>(be.fsync(fh, false))).toBe(0);
    be.close(fh);
    expect(fs.readdirSync(dir).sort()).toEqual(['d', 'f']);
    expect(fs.readFileSync(path.join(dir, 'f'), 'utf8')).toBe('data');
  });

  test('names are bytes: non-UTF-8 names round trip', () => {
    const { be, dir, root } = setup();
    const raw = new Uint8Array([0x66, 0xff, 0xfe, 0x80, 0x2e]);
    const c = create(be, root, raw);
    be.close(c.fh);
    expect(fs.readdirSync(dir, { encoding: 'buffer' }).map((x) => [...x])).toEqual([[...raw]]);
    expect(look(be, root, raw).node).toBe(c.node);
    const dfh = ok<number>(be.open(root, O_RDONLY));
    const items = list(be, dfh);
    be.close(dfh);
    expect(items.map((i) => [...i.name])).toEqual([[0x2e], [0x2e, 0x2e], [...raw]]);
    expect(items[2].ino).toBe(c.ino);
    // a host-made Latin-1 name, and a non-UTF-8 symlink target
    fs.writeFileSync(Buffer.from([...Buffer.from(dir), 0x2f, 0xe9, 0x74, 0xe9]), 'été');
    expect(look(be, root, new Uint8Array([0xe9, 0x74, 0xe9])).size).toBe(5);
    const target = new Uint8Array([0x2e, 0x2f, 0xc3, 0x28]);
    const s = ok<Stat>(be.symlink(root, b('sl'), target, NONE, NONE));
    expect(s.mode & S_IFMT).toBe(S_IFLNK);
    expect([...ok<Uint8Array>(be.readlink(look(be, root, 'sl').node))]).toEqual([...target]);
    expect(be.lookup(root, b('a/b'))).toBe(-ENOENT);
    expect(be.lookup(root, new Uint8Array(0))).toBe(-ENOENT);
    expect(be.create(root, b('x\0y'), O_RDWR, 0o644, NONE, NONE)).toBe(-ENOENT);
    expect(be.mkdir(root, b('..'), 0o755, NONE, NONE)).toBe(-EEXIST);
  });

  test('".." at the export root stays at the root; attach by aname', () => {
    const { be, dir, root, rootIno } = setup();
    fs.mkdirSync(path.join(dir, 'sub/deeper'), { recursive: true });
    const up = look(be, root, '..');
    expect(up.node).toBe(root);
    expect(up.ino).toBe(rootIno);
    expect(look(be, look(be, root, '..').node, '..').node).toBe(root);
    const sub = look(be, root, 'sub');
    expect(look(be, sub.node, '..').node).toBe(root);
    const dfh = ok<number>(be.open(root, O_RDONLY));
    const items = list(be, dfh);
    be.close(dfh);
    expect(items[1].ino).toBe(rootIno);
    expect(items[1].next).toBe(2);
    // aname: empty, the export's host path, a relative path; ".." cannot climb out
    expect(ok<Entry>(be.attach(b(dir), NONE)).node).toBe(root);
    expect(ok<Entry>(be.attach(b('sub'), NONE)).node).toBe(sub.node);
    expect(ok<Entry>(be.attach(b(`${dir}/sub/deeper`), NONE)).ino).toBe(Number(fs.statSync(path.join(dir, 'sub/deeper')).ino));
    expect(ok<Entry>(be.attach(b('../../..'), NONE)).node).toBe(root);
    expect(ok<Entry>(be.attach(b('sub/../..'), NONE)).node).toBe(root);
    expect(be.attach(b('nope'), NONE)).toBe(-ENOENT);
  });

  test('symlinks are never followed: lookup, open, create, setattr, walk through', () => {
    const { be, dir, root } = setup();
    const outside = path.join(top, `outside${seq++}`);
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'secret'), 'secret');
    fs.chmodSync(path.join(outside, 'secret'), 0o600);
    fs.symlinkSync(path.join(outside, 'secret'), path.join(dir, 'lf'));
    fs.symlinkSync(outside, path.join(dir, 'ld'));
    fs.symlinkSync('nowhere', path.join(dir, 'dangling'));
    const lf = look(be, root, 'lf');
    expect(lf.mode & S_IFMT).toBe(S_IFLNK);
    expect(lf.size).toBe(path.join(outside, 'secret').length);
    expect(be.open(lf.node, O_RDONLY)).toBe(-ELOOP);
    expect(be.open(lf.node, O_RDWR | O_TRUNC)).toBe(-ELOOP);
    expect(td.decode(ok<Uint8Array>(be.readlink(lf.node)))).toBe(path.join(outside, 'secret'));
    const ld = look(be, root, 'ld');
    expect(ld.mode & S_IFMT).toBe(S_IFLNK);
    expect(be.lookup(ld.node, b('secret'))).toBe(-ENOTDIR);
    expect(be.open(ld.node, O_RDONLY | O_DIRECTORY)).toBe(-ENOTDIR);
    expect(be.create(ld.node, b('x'), O_RDWR, 0o644, NONE, NONE)).toBe(-ENOTDIR);
    expect(be.mkdir(ld.node, b('x'), 0o755, NONE, NONE)).toBe(-ENOTDIR);
    expect(be.attach(b('ld'), NONE)).toBe(-ENOTDIR);
    // create over a symlink (no O_EXCL) does not open its target; a dangling one is not created through
    expect(be.create(root, b('lf'), O_RDWR | O_TRUNC, 0o644, NONE, NONE)).toBe(-ELOOP);
    expect(be.create(root, b('dangling'), O_RDWR, 0o644, NONE, NONE)).toBe(-ELOOP);
    expect(fs.existsSync(path.join(dir, 'nowhere'))).toBe(false);
    // setattr acts on the link itself
    expect(be.setattr(lf.node, { mode: 0o666 })).toBe(-EOPNOTSUPP);
    expect(be.setattr(lf.node, { size: 0 })).toBe(-EINVAL);
    expect(ok<number>(be.setattr(lf.node, { mtime: [1234567890, 0] }))).toBe(0);
    expect(ok<Stat>(be.getattr(lf.node)).mtimeSec).toBe(1234567890);
    // link of a symlink links the symlink; rename of it moves the link
    expect(ok<number>(be.link(root, b('lf2'), lf.node))).toBe(0);
    expect(fs.lstatSync(path.join(dir, 'lf2')).isSymbolicLink()).toBe(true);
    expect(ok<number>(be.renameat(root, b('lf2'), root, b('lf3')))).toBe(0);
    expect(fs.lstatSync(path.join(dir, 'lf3')).isSymbolicLink()).toBe(true);
    const sst = fs.statSync(path.join(outside, 'secret'));
    expect(sst.mode & 0o7777).toBe(0o600);
    expect(sst.size).toBe(6);
    expect(sst.mtimeMs).not.toBe(1234567890000);
    expect(fs.readdirSync(outside)).toEqual(['secret']);
  });

  test('setattr: chmod/truncate/times, ns read precision, µs write precision', () => {
    const { be, dir, root } = setup();
    fs.writeFileSync(path.join(dir, 'f'), 'abcdef');
    const f = look(be, root, 'f');
    expect(ok<number>(be.setattr(f.node, { mode: 0o4755, size: 2 }))).toBe(0);
    let st = ok<Stat>(be.getattr(f.node));
    expect(st.mode).toBe(S_IFREG | 0o4755);
    expect(st.size).toBe(2);
    expect(ok<number>(be.setattr(f.node, { atime: [1600000000, 123456000], mtime: [1500000000, 987654000] }))).toBe(0);
    st = ok<Stat>(be.getattr(f.node));
    expect([st.atimeSec, st.atimeNsec, st.mtimeSec, st.mtimeNsec]).toEqual([1600000000, 123456000, 1500000000, 987654000]);
    const hs = fs.statSync(path.join(dir, 'f'), { bigint: true });
    expect(BigInt(st.mtimeSec) * 1000000000n + BigInt(st.mtimeNsec)).toBe(hs.mtimeNs);
    // only mtime: atime is kept
    expect(ok<number>(be.setattr(f.node, { mtime: [1400000000, 0] }))).toBe(0);
    st = ok<Stat>(be.getattr(f.node));
    expect([st.atimeSec, st.atimeNsec, st.mtimeSec]).toEqual([1600000000, 123456000, 1400000000]);
    const c0 = st.ctimeSec * 1e9 + st.ctimeNsec;
    expect(ok<number>(be.setattr(f.node, { ctime: true }))).toBe(0);
    st = ok<Stat>(be.getattr(f.node));
    expect(st.ctimeSec * 1e9 + st.ctimeNsec).toBeGreaterThanOrEqual(c0);
    expect(st.mode).toBe(S_IFREG | 0o4755);
    const d = look(be, root, '.');
    expect(be.setattr(d.node, { size: 0 })).toBe(-EISDIR);
    expect(ok<number>(be.setattr(d.node, { mode: 0o700 }))).toBe(0);
    expect(fs.statSync(dir).mode & 0o7777).toBe(0o700);
  });

  test('mkdir/symlink/mknod/link/statfs/xattr', () => {
    const { be, dir, root } = setup();
    const m = ok<Stat>(be.mkdir(root, b('d'), S_IFDIR | 0o2750, NONE, NONE));
    expect(m.mode).toBe(S_IFDIR | 0o2750);
    expect(be.mkdir(root, b('d'), 0o755, NONE, NONE)).toBe(-EEXIST);
    const r = ok<Stat>(be.mknod(root, b('reg'), S_IFREG | 0o604, 0, 0, NONE, NONE));
    expect(r.mode).toBe(S_IFREG | 0o604);
    const ff = ok<Stat>(be.mknod(root, b('fifo'), S_IFIFO | 0o641, 0, 0, NONE, NONE));
    expect(ff.mode).toBe(S_IFIFO | 0o641);
    expect(fs.lstatSync(path.join(dir, 'fifo')).isFIFO()).toBe(true);
    expect(be.mknod(root, b('fifo'), S_IFIFO | 0o644, 0, 0, NONE, NONE)).toBe(-EEXIST);
    expect(be.mknod(root, b('dir'), S_IFDIR | 0o755, 0, 0, NONE, NONE)).toBe(-EPERM);
    const reg = look(be, root, 'reg');
    expect(ok<number>(be.link(root, b('reg2'), reg.node))).toBe(0);
    const reg2 = look(be, root, 'reg2');
    expect(reg2.ino).toBe(reg.ino);
    expect(reg2.node).not.toBe(reg.node); // another path: another node, same qid
    expect(reg2.nlink).toBe(2);
    expect(be.link(root, b('d2'), look(be, root, 'd').node)).toBe(-EPERM);
    expect(be.link(root, b('reg'), reg.node)).toBe(-EEXIST);
    const sf = ok<StatFs>(be.statfs(root));
    expect(sf.bsize).toBeGreaterThan(0);
    expect(sf.namelen).toBe(255);
    expect(be.getxattr(reg.node, b('user.x'))).toBe(-ENODATA);
    expect(be.listxattr(reg.node)).toEqual([]);
    expect(be.setxattr(reg.node, b('user.x'), b('v'), 0)).toBe(0);
    expect(td.decode(ok<Uint8Array>(be.getxattr(reg.node, b('user.x'))))).toBe('v');
    expect(ok<Uint8Array[]>(be.listxattr(reg.node)).map((n) => td.decode(n))).toEqual(['user.x']);
    expect(be.removexattr(reg.node, b('user.x'))).toBe(0);
    expect(be.removexattr(reg.node, b('user.x'))).toBe(-ENODATA);
    expect(be.getattr(9999)).toBe(-EBADF);
    expect(be.read(9999, 0, [new Uint8Array(1)])).toBe(-EBADF);
    expect(fs.readdirSync(dir).sort()).toEqual(['d', 'fifo', 'reg', 'reg2']);
  });

  test('readdir: per-open snapshot, cookies survive unlinking (rm -rf), types and inos', () => {
    const { be, dir, root } = setup();
    const want: string[] = [];
    for (let i = 0; i < 60; i++) { fs.writeFileSync(path.join(dir, `f${i}`), ''); want.push(`f${i}`); }
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.symlinkSync('f0', path.join(dir, 'ln'));
    const dfh = ok<number>(be.open(root, O_RDONLY));
    const all = list(be, dfh);
    expect(names(all).slice(0, 2)).toEqual(['.', '..']);
    expect(names(all).slice(2).sort()).toEqual([...want, 'ln', 'sub'].sort());
    for (const it of all) {
      expect(it.next).toBeGreaterThan(0);
      const nm = td.decode(it.name);
      if (nm === '.' || nm === '..') continue;
      const hs = fs.lstatSync(path.join(dir, nm));
      expect(it.ino).toBe(hs.ino);
      expect(it.dtype).toBe(hs.isDirectory() ? 4 : hs.isSymbolicLink() ? 10 : 8);
    }
    // rm -rf: read a batch, unlink it, continue from the last cookie
    let cookie = 0;
    const seen: string[] = [];
    for (;;) {
      const batch = list(be, dfh, cookie, 7);
      if (batch.length === 0) break;
      for (const it of batch) {
        const nm = td.decode(it.name);
        seen.push(nm);
        if (nm === '.' || nm === '..') continue;
        expect(ok<number>(be.unlinkat(root, it.name, nm === 'sub' ? AT_REMOVEDIR : 0))).toBe(0);
      }
      cookie = batch[batch.length - 1].next;
    }
    expect(seen.length).toBe(all.length);
    expect(fs.readdirSync(dir)).toEqual([]);
    // cookie 0 retakes the snapshot
    expect(names(list(be, dfh, 0))).toEqual(['.', '..']);
    be.close(dfh);
    expect(be.readdir(dfh, 0, { push: () => true })).toBe(-EBADF);
    const c = create(be, root, 'x');
    expect(be.readdir(c.fh, 0, { push: () => true })).toBe(-ENOTDIR);
    be.close(c.fh);
    const rfh = ok<number>(be.open(root, O_RDONLY));
    expect(be.read(rfh, 0, [new Uint8Array(4)])).toBe(-EISDIR);
    be.close(rfh);
  });

  test('an unlinked directory still lists through its open handle', () => {
    const { be, dir, root } = setup();
    fs.mkdirSync(path.join(dir, 'd'));
    const d = look(be, root, 'd');
    const fh = ok<number>(be.open(d.node, O_RDONLY));
    expect(ok<number>(be.unlinkat(root, b('d'), AT_REMOVEDIR))).toBe(0);
    expect(names(list(be, fh))).toEqual(['.', '..']);
    expect(ok<Stat>(be.getattr(d.node)).mode & S_IFMT).toBe(S_IFDIR);
    be.close(fh);
    // the last handle became the pin: the fid still works, creating in it does not
    expect(ok<Stat>(be.getattr(d.node)).nlink).toBe(0);
    expect(be.mkdir(d.node, b('x'), 0o755, NONE, NONE)).toBe(-ENOENT);
    expect(be.lookup(d.node, b('..'))).toBe(-ENOENT);
    expect(look(be, d.node, '.').node).toBe(d.node);
  });

  test('host-made FIFOs and devices: never opened (ENXIO, no hang), rdev is Linux new_encode_dev', () => {
    const { be, dir, root } = setup();
    const made = (cmd: string, args: string[]): boolean => spawnSync(cmd, args).status === 0;
    expect(made('mkfifo', [path.join(dir, 'fifo')])).toBe(true);
    const f = look(be, root, 'fifo');
    expect(f.mode & S_IFMT).toBe(S_IFIFO);
    expect(be.open(f.node, O_RDONLY)).toBe(-ENXIO); // no writer: an open would block; it is refused
    expect(be.open(f.node, O_RDWR)).toBe(-ENXIO);
    expect(be.mknod(root, b('fifo'), S_IFIFO | 0o644, 0, 0, NONE, NONE)).toBe(-EEXIST);
    if (process.getuid?.() === 0) { // device nodes need root on the host
      expect(made('mknod', [path.join(dir, 'null'), 'c', '1', '3'])).toBe(true);
      expect(made('mknod', [path.join(dir, 'blk'), 'b', '259', String(0x12345)])).toBe(true);
      expect(be.open(look(be, root, 'null').node, O_RDWR)).toBe(-ENXIO);
      expect(be.open(look(be, root, 'blk').node, O_RDONLY)).toBe(-ENXIO);
      expect(look(be, root, 'null').rdev).toBe((3 & 0xff) | (1 << 8));
      expect(look(be, root, 'blk').rdev).toBe(((0x12345 & 0xff) | (259 << 8) | ((0x12345 & ~0xff) << 12)) >>> 0);
      const dfh = ok<number>(be.open(root, O_RDONLY));
      const types = Object.fromEntries(list(be, dfh).map((i) => [td.decode(i.name), i.dtype]));
      be.close(dfh);
      expect([types.null, types.blk]).toEqual([2, 6]);
    }
  });

  test('a file replaced on the host is a new node; the old node is detached', () => {
    const { be, dir, root } = setup();
    fs.writeFileSync(path.join(dir, 'f'), 'one');
    const a = look(be, root, 'f');
    // (keep the old inode alive so its number cannot be reused: (dev, ino) is the identity)
    fs.renameSync(path.join(dir, 'f'), path.join(top, `old${seq++}`));
    fs.writeFileSync(path.join(dir, 'f'), 'two!');
    expect(be.getattr(a.node)).toBe(-ENOENT);
    expect(be.open(a.node, O_RDONLY)).toBe(-ENOENT);
    const b2 = look(be, root, 'f');
    expect(b2.node).not.toBe(a.node);
    expect(b2.size).toBe(4);
  });

  test('file descriptors are all released (count of /proc/self/fd back to start)', () => {
    const fds0 = fdCount();
    const { be, dir, root } = setup();
    for (let round = 0; round < 3; round++) {
      const handles: number[] = [];
      const nodes: number[] = [];
      for (let i = 0; i < 20; i++) {
        const c = create(be, root, `r${round}-${i}`);
        handles.push(c.fh); nodes.push(c.node);
        ok<number>(be.write(c.fh, 0, [b('x'.repeat(i))]));
        ok<number>(be.setattr(c.node, { mode: 0o600 }));
      }
      const e = look(be, root, `r${round}-3`);
      nodes.push(e.node);
      ok<number>(be.setattr(e.node, { size: 1 }));
      const dfh = ok<number>(be.open(root, O_RDONLY));
      list(be, dfh);
      be.close(dfh);
      for (const h of handles) expect(be.close(h)).toBe(0);
      for (const n of nodes) be.forget(n);
      expect(be.close(handles[0])).toBe(-EBADF);
    }
    expect(fs.readdirSync(dir).length).toBe(60);
    expect(be.openHandles).toBe(0);
    expect(be.liveNodes).toBe(1);
    expect(fdCount()).toBe(fds0 + 1); // the export root's O_PATH fd, closed by destroy()
  });

  test('no file descriptor left after destroy()', () => {
    for (const be of backends) be.destroy();
    expect(fdCount()).toBe(fdsAtStart);
  });
});
