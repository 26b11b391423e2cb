/**
 * ProxyBackend against QEMU's real /usr/lib/qemu/virtfs-proxy-helper (no mocks, except the
 * deliberately broken fake helpers of the garbage tests): every operation, fd passing,
 * descriptor accounting, helper loss (SIGKILL, SIGSTOP past the deadline, garbage) and recovery.
 * Every helper is stopped by PID in afterEach/afterAll.
 */
import { describe, test, expect, beforeAll, afterAll, afterEach } from '@jest/globals';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ProxyBackend } from '../../src/backends/proxy/backend.js';
import { fdpass } from '../../src/backends/proxy/native.js';
import {
  REQUESTS, encodeRequest, unmarshal, decodeStat, makedev, encodeRdev,
} from '../../src/backends/proxy/protocol.js';
import type { DirSink, Entry, Stat } from '../../src/backends/backend.js';

const HELPER = '/usr/lib/qemu/virtfs-proxy-helper';
const te = new TextEncoder();
const td = new TextDecoder();
const b = (s: string): Uint8Array => te.encode(s);
const EIO = 5, ENOENT = 2, ENODATA = 61, EEXIST = 17, ENOTEMPTY = 39, ENOTDIR = 20, EISDIR = 21, ENXIO = 6;
const S_IFMT = 0o170000, S_IFDIR = 0o40000, S_IFREG = 0o100000, S_IFLNK = 0o120000, S_IFIFO = 0o10000, S_IFCHR = 0o20000;

beforeAll(() => {
  execFileSync(process.execPath, [path.resolve('native/build.mjs')], { stdio: 'inherit' });
});

const dirs: string[] = [];
const backends: ProxyBackend[] = [];
const children: ChildProcess[] = [];
const stopped: number[] = [];

function tmpdir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-proxy-'));
  dirs.push(d);
  return d;
}

async function launch(opts: Parameters<typeof ProxyBackend.launch>[1] = {}, dir = tmpdir()): Promise<{ be: ProxyBackend; dir: string }> {
  const be = await ProxyBackend.launch({ export: dir, helper: HELPER }, opts);
  backends.push(be);
  return { be, dir };
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

afterEach(async () => {
  for (const pid of stopped.splice(0)) {
    try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  for (const be of backends.splice(0)) {
    const pids = be.client.pids;
    await be.destroy();
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  }
  for (const c of children.splice(0)) if (c.exitCode === null && c.pid) { try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }
});

afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function root(be: ProxyBackend): Promise<Entry> {
  const r = await be.attach(new Uint8Array(0), 0);
  if (typeof r === 'number') throw new Error(`attach: ${r}`);
  return r;
}

async function ok<T>(p: T | number | Promise<T | number>): Promise<T> {
  const r = await p;
  if (typeof r === 'number' && r < 0) throw new Error(`errno ${-r}`);
  return r as T;
}

async function readAll(be: ProxyBackend, fh: number): Promise<string> {
  const buf = new Uint8Array(65536);
  const n = await ok(be.read(fh, 0, [buf]));
  return td.decode(buf.subarray(0, n));
}

async function listDir(be: ProxyBackend, fh: number): Promise<{ name: string; ino: number; next: number; dtype: number }[]> {
  const out: { name: string; ino: number; next: number; dtype: number }[] = [];
  let cookie = 0;
  for (;;) {
    const before = out.length;
    const sink: DirSink = {
      push(ino, next, dtype, name) {
        if (out.length - before >= 3) return false; // small batches: exercise cookies
        out.push({ name: td.decode(name), ino, next, dtype });
        return true;
      },
    };
    await ok(be.readdir(fh, cookie, sink));
    if (out.length === before) return out;
    cookie = out[out.length - 1].next;
  }
}

/** Our descriptors that point into `dir` (the export): immune to the test runner's own fds. */
const fdsInto = (dir: string): number => fs.readdirSync('/proc/self/fd').filter((n) => {
  try { return fs.readlinkSync(`/proc/self/fd/${n}`).startsWith(dir); } catch { return false; }
}).length;

// ─────────────────────────────────────────────────────────────────────────── protocol

describe('protocol table and codec', () => {
  test('request numbers are QEMU 7.2 (9p-proxy.h)', () => {
    const nums = Object.fromEntries(Object.entries(REQUESTS).map(([k, v]) => [k, v.type]));
    expect(nums).toEqual({
      T_OPEN: 2, T_CREATE: 3, T_MKNOD: 4, T_MKDIR: 5, T_SYMLINK: 6, T_LINK: 7, T_LSTAT: 8, T_READLINK: 9,
      T_STATFS: 10, T_CHMOD: 11, T_CHOWN: 12, T_TRUNCATE: 13, T_UTIME: 14, T_RENAME: 15, T_REMOVE: 16,
      T_LGETXATTR: 17, T_LLISTXATTR: 18, T_LSETXATTR: 19, T_LREMOVEXATTR: 20, T_GETVERSION: 21,
    });
  });

  test('framing matches the reference wire bytes', () => {
    // QEMU's first request, minus its trailing NUL: LSTAT "/"
    expect(Buffer.from(encodeRequest('T_LSTAT', [b('/')])).toString('hex')).toBe('08000000030000000100' + '2f');
    const mk = encodeRequest('T_MKNOD', [1000, 1000, b('//f'), S_IFIFO | 0o644, makedev(259, 0x12345)]);
    expect(mk.length).toBe(8 + 4 + 4 + 2 + 3 + 4 + 8);
    const v = unmarshal(mk.subarray(8), 'ddsdq');
    expect(v[0]).toBe(1000);
    expect(td.decode(v[2] as Uint8Array)).toBe('//f');
    expect(encodeRdev(v[4] as bigint)).toBe(((0x12345 & 0xff) | (259 << 8) | ((0x12345 & ~0xff) << 12)) >>> 0);
    // negative d (uid -1) is two's complement
    expect(Buffer.from(encodeRequest('T_CHOWN', [b('/x'), -1, 5])).subarray(12, 16).toString('hex')).toBe('ffffffff');
  });

  test('strict decoding: short, long and trailing bytes are errors', () => {
    expect(() => decodeStat(new Uint8Array(115))).toThrow();
    expect(() => decodeStat(new Uint8Array(117))).toThrow();
    expect(() => unmarshal(Uint8Array.of(3, 0, 0x61, 0x62), 's')).toThrow();
    expect(() => unmarshal(Uint8Array.of(1, 0, 0x61, 0x62), 's')).toThrow();
    expect(encodeRequest('T_LSETXATTR', [b('/f'), b('user.x'), new Uint8Array(65514), 65514, 0]).length).toBe(8 + 65536);
    expect(() => encodeRequest('T_LSETXATTR', [b('/f'), b('user.x'), new Uint8Array(65515), 65515, 0])).toThrow(); // payload
    expect(() => encodeRequest('T_LSETXATTR', [b('/'), b(''), new Uint8Array(65536), 65536, 0])).toThrow(); // 's' length
  });
});

// ─────────────────────────────────────────────────────────────────────────── operations

describe('ProxyBackend over the real helper', () => {
  test('lookup / getattr / open / read / write / create / readdir / fsync, fd passing', async () => {
    const dir = tmpdir();
    fs.writeFileSync(path.join(dir, 'hello.txt'), 'hello from the proxy export\n');
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.writeFileSync(path.join(dir, 'sub', 'inner.txt'), 'inner');
    const { be } = await launch({}, dir);
    const r = await root(be);
    expect(r.mode & S_IFMT).toBe(S_IFDIR);
    expect(r.ino).toBe(Number(fs.statSync(dir).ino));
    const h = await ok(be.lookup(r.node, b('hello.txt')));
    const host = fs.lstatSync(path.join(dir, 'hello.txt'), { bigint: true });
    expect(h.ino).toBe(Number(host.ino));
    expect(h.size).toBe(28);
    expect(h.mtimeNsec).toBe(Number(host.mtimeNs % 1000000000n));
    expect(await be.lookup(r.node, b('nope'))).toBe(-ENOENT);

    // fd passing: the handle's descriptor is a real fd of this process on the host file
    const fh = await ok(be.open(h.node, 0));
    const fd = be.fdOf(fh);
    expect(fd).toBeGreaterThan(2);
    expect(fs.fstatSync(fd, { bigint: true }).ino).toBe(host.ino);
    expect(fs.readlinkSync(`/proc/self/fd/${fd}`)).toBe(path.join(fs.realpathSync(dir), 'hello.txt'));
    // close-on-exec (MSG_CMSG_CLOEXEC)
    const fdinfo = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    const flags = parseInt(/flags:\s*([0-7]+)/.exec(fdinfo)![1], 8);
    expect(flags & 0o2000000).toBe(0o2000000);
    expect(await readAll(be, fh)).toBe('hello from the proxy export\n');
    // scatter read into two views (guest memory), at an offset
    const a = new Uint8Array(5), c = new Uint8Array(4);
    expect(await be.read(fh, 6, [a, c])).toBe(9);
    expect(td.decode(a) + td.decode(c)).toBe('from the ');
    expect(be.close(fh)).toBe(0);
    expect(be.close(fh)).toBe(-9);

    // create + write + fsync
    const cr = await ok(be.create(r.node, b('new.txt'), 2, 0o640, 1000, 1000));
    expect(cr.mode).toBe(S_IFREG | 0o640);
    expect(cr.uid).toBe(1000);
    expect(cr.gid).toBe(1000);
    expect(await be.write(cr.fh, 0, [b('abc'), b('def')])).toBe(6);
    expect(await be.write(cr.fh, 3, [b('XYZ')])).toBe(3);
    expect(await be.fsync(cr.fh, false)).toBe(0);
    expect(await be.fsync(cr.fh, true)).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'new.txt'), 'utf8')).toBe('abcXYZ');
    expect(await be.create(r.node, b('new.txt'), 0o302, 0o640, 0, 0)).toBe(-EEXIST); // O_EXCL|O_CREAT|RDWR
    // create without O_EXCL on an existing file opens it; O_TRUNC truncates
    const again = await ok(be.create(r.node, b('new.txt'), 0o1002, 0o600, 0, 0));
    expect(again.node).toBe(cr.node);
    expect(again.size).toBe(0);
    be.close(again.fh);
    be.close(cr.fh);

    // readdir through the received directory descriptor, stable cookies
    const sub = await ok(be.lookup(r.node, b('sub')));
    for (let i = 0; i < 7; i++) fs.writeFileSync(path.join(dir, 'sub', `f${i}`), '');
    const dfh = await ok(be.open(sub.node, 0));
    const ents = await listDir(be, dfh);
    expect(ents.map((e) => e.name).sort()).toEqual(['.', '..', 'f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'inner.txt']);
    expect(ents.find((e) => e.name === '..')!.ino).toBe(r.ino);
    expect(ents.find((e) => e.name === 'inner.txt')!.dtype).toBe(8);
    expect(new Set(ents.map((e) => e.next)).size).toBe(ents.length);
    // resuming at a cookie gives the same tail even after the directory changed
    const k = ents[4].next;
    fs.writeFileSync(path.join(dir, 'sub', 'late'), '');
    const tail: string[] = [];
    await ok(be.readdir(dfh, k, { push: (_i, _n, _t, name) => { tail.push(td.decode(name)); return true; } }));
    expect(tail).toEqual(ents.slice(5).map((e) => e.name));
    be.close(dfh);
    expect(await be.read(dfh, 0, [new Uint8Array(1)])).toBe(-9);
  });

  test('mkdir / symlink / readlink / mknod / link / rename / unlink / remove / statfs / getversion', async () => {
    const { be, dir } = await launch();
    const r = await root(be);
    const d = await ok(be.mkdir(r.node, b('d'), 0o750, 1001, 1002));
    expect(d.mode).toBe(S_IFDIR | 0o750);
    expect([d.uid, d.gid]).toEqual([1001, 1002]);
    expect(await be.mkdir(r.node, b('d'), 0o755, 0, 0)).toBe(-EEXIST);
    // uid 0 with a group: created 0:0 then chowned (the helper's uid0/gid bug is avoided)
    const g = await ok(be.mkdir(r.node, b('g'), 0o2770, 0, 1234));
    expect([g.uid, g.gid, g.mode & 0o7777]).toEqual([0, 1234, 0o2770]);
    const dn = await ok(be.lookup(r.node, b('d')));

    const l = await ok(be.symlink(dn.node, b('l'), b('../some/where'), 1000, 1000));
    expect(l.mode & S_IFMT).toBe(S_IFLNK);
    expect(l.uid).toBe(1000);
    const ln = await ok(be.lookup(dn.node, b('l')));
    expect(td.decode(await ok(be.readlink(ln.node)))).toBe('../some/where');
    expect(fs.readlinkSync(path.join(dir, 'd', 'l'))).toBe('../some/where');

    const fifo = await ok(be.mknod(r.node, b('fifo'), S_IFIFO | 0o644, 0, 0, 1000, 1000));
    expect(fifo.mode).toBe(S_IFIFO | 0o644);
    const chr = await ok(be.mknod(r.node, b('null'), S_IFCHR | 0o666, 1, 3, 0, 0));
    expect(chr.rdev).toBe((3 & 0xff) | (1 << 8));
    expect(fs.statSync(path.join(dir, 'null')).rdev).toBe(Number(makedev(1, 3)));
    // the 7.2.4+ helper hands out no descriptors for special files (CVE-2023-2861)
    const fn = await ok(be.lookup(r.node, b('fifo')));
    expect(await be.open(fn.node, 0)).toBe(-ENXIO);

    const f = await ok(be.create(r.node, b('f'), 2, 0o644, 0, 0));
    be.close(f.fh);
    expect(await be.link(dn.node, b('hard'), f.node)).toBe(0);
    expect((await ok(be.getattr(f.node))).nlink).toBe(2);

    // rename: fids follow (a node below a renamed directory keeps working)
    const hard = await ok(be.lookup(dn.node, b('hard')));
    expect(await be.renameat(r.node, b('d'), r.node, b('d2'))).toBe(0);
    expect((await ok(be.getattr(hard.node))).ino).toBe(f.ino);
    expect(td.decode(await ok(be.readlink(ln.node)))).toBe('../some/where');
    expect(await be.rename(hard.node, r.node, b('moved'))).toBe(0);
    expect(fs.existsSync(path.join(dir, 'moved'))).toBe(true);
    expect((await ok(be.getattr(hard.node))).nlink).toBe(2);

    // unlinkat type checks, ENOTEMPTY, remove
    expect(await be.unlinkat(r.node, b('d2'), 0)).toBe(-EISDIR);
    expect(await be.unlinkat(r.node, b('f'), 0x200)).toBe(-ENOTDIR);
    expect(await be.unlinkat(r.node, b('d2'), 0x200)).toBe(-ENOTEMPTY);
    expect(await be.unlinkat(r.node, b('fifo'), 0)).toBe(0);
    expect(await be.remove(ln.node)).toBe(0);
    expect(fs.existsSync(path.join(dir, 'd2', 'l'))).toBe(false);

    const sf = await ok(be.statfs(r.node));
    const host = fs.statfsSync(dir);
    expect(sf.bsize).toBe(host.bsize);
    expect(sf.blocks).toBe(host.blocks);
    const hsf = await ok(be.hostStatfs(r.node));
    expect(Number(hsf.type)).toBe(host.type);

    // GETVERSION: the low 32 bits of the ext4 i_generation (0 on file systems without one)
    const ver = await be.getversion(f.node);
    expect(ver).toBeGreaterThanOrEqual(0);
    expect(ver).toBeLessThan(2 ** 32);
    if (host.type === 0xef53) {
      let want: number | null = null;
      try {
        want = Number(execFileSync('lsattr', ['-v', '-d', path.join(dir, 'f')], { encoding: 'utf8' }).trim().split(/\s+/)[0]);
      } catch { /* no lsattr */ }
      if (want !== null && !Number.isNaN(want)) expect(ver).toBe(want);
    }
    expect(await be.getversion(fifo.ino > 0 ? (await ok(be.lookup(r.node, b('null')))).node : 0)).toBe(-25);
  });

  test('setattr: chmod, chown, truncate, utimensat with nanoseconds, UTIME_OMIT', async () => {
    const { be, dir } = await launch();
    const r = await root(be);
    const f = await ok(be.create(r.node, b('f'), 2, 0o644, 0, 0));
    await ok(be.write(f.fh, 0, [b('0123456789')]));
    be.close(f.fh);
    expect(await be.setattr(f.node, { mode: 0o4755 })).toBe(0);
    expect(await be.setattr(f.node, { uid: 2000, gid: 2001 })).toBe(0);
    let st = await ok(be.getattr(f.node)) as Stat;
    expect([st.uid, st.gid, st.mode]).toEqual([2000, 2001, S_IFREG | 0o4755]); // set-id kept
    expect(await be.setattr(f.node, { size: 3 })).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'f'), 'utf8')).toBe('012');
    expect(await be.setattr(f.node, { atime: [1000000000, 111], mtime: [1200000000, 222] })).toBe(0);
    st = await ok(be.getattr(f.node));
    expect([st.atimeSec, st.atimeNsec, st.mtimeSec, st.mtimeNsec]).toEqual([1000000000, 111, 1200000000, 222]);
    expect(await be.setattr(f.node, { mtime: [1300000000, 333] })).toBe(0);
    st = await ok(be.getattr(f.node));
    expect([st.atimeSec, st.atimeNsec, st.mtimeSec, st.mtimeNsec]).toEqual([1000000000, 111, 1300000000, 333]);
    const c0 = st.ctimeSec * 1e9 + st.ctimeNsec;
    await new Promise((res) => setTimeout(res, 20));
    expect(await be.setattr(f.node, { ctime: true })).toBe(0);
    st = await ok(be.getattr(f.node));
    expect(st.ctimeSec * 1e9 + st.ctimeNsec).toBeGreaterThan(c0);
    // symlinks: lchown works, chmod is refused
    await ok(be.symlink(r.node, b('l'), b('f'), 0, 0));
    const l = await ok(be.lookup(r.node, b('l')));
    expect(await be.setattr(l.node, { uid: 7, gid: 8 })).toBe(0);
    expect(fs.lstatSync(path.join(dir, 'l')).uid).toBe(7);
    expect(fs.statSync(path.join(dir, 'f')).uid).toBe(2000);
    expect(await be.setattr(l.node, { mode: 0o777 })).toBe(-95);
  });

  test('xattrs (user.*) through LSETXATTR / LGETXATTR / LLISTXATTR / LREMOVEXATTR', async () => {
    const { be, dir } = await launch();
    const r = await root(be);
    const f = await ok(be.create(r.node, b('f'), 2, 0o644, 0, 0));
    be.close(f.fh);
    expect(await be.listxattr(f.node)).toEqual([]);
    expect(await be.getxattr(f.node, b('user.nope'))).toBe(-ENODATA);
    expect(await be.setxattr(f.node, b('user.test'), b('val123'), 0)).toBe(0);
    expect(await be.setxattr(f.node, b('user.bin'), Uint8Array.of(0, 1, 255, 0), 0)).toBe(0);
    expect(await be.setxattr(f.node, b('user.empty'), new Uint8Array(0), 0)).toBe(0);
    expect(td.decode(await ok(be.getxattr(f.node, b('user.test'))))).toBe('val123');
    expect(Array.from(await ok(be.getxattr(f.node, b('user.bin'))))).toEqual([0, 1, 255, 0]);
    expect((await ok(be.getxattr(f.node, b('user.empty')))).length).toBe(0);
    expect(await be.setxattr(f.node, b('user.test'), b('x'), 1)).toBe(-EEXIST); // XATTR_CREATE
    expect(await be.setxattr(f.node, b('user.none'), b('x'), 2)).toBe(-ENODATA); // XATTR_REPLACE
    const names = (await ok(be.listxattr(f.node))).map((n) => td.decode(n)).sort();
    expect(names).toEqual(['user.bin', 'user.empty', 'user.test']);
    const big = new Uint8Array(3000).fill(9);
    expect(await be.setxattr(r.node, b('user.big'), big, 0)).toBe(0);
    expect(await ok(be.getxattr(r.node, b('user.big')))).toEqual(big);
    expect(await be.removexattr(f.node, b('user.test'))).toBe(0);
    expect(await be.removexattr(f.node, b('user.test'))).toBe(-ENODATA);
    // the host agrees (python's os.getxattr as an independent reader)
    const out = execFileSync('python3', ['-c', 'import os,sys; print(sorted(os.listxattr(sys.argv[1])))', path.join(dir, 'f')], { encoding: 'utf8' });
    expect(out.trim()).toBe("['user.bin', 'user.empty']");
  });

  test('unlinked objects: open descriptors keep working; pinned nodes stay usable', async () => {
    const { be, dir } = await launch();
    const r = await root(be);
    const f = await ok(be.create(r.node, b('f'), 2, 0o644, 0, 0));
    await ok(be.write(f.fh, 0, [b('still here')]));
    const g = await ok(be.create(r.node, b('g'), 2, 0o600, 0, 0));
    be.close(g.fh);
    expect(await be.unlinkat(r.node, b('f'), 0)).toBe(0);
    expect(await be.unlinkat(r.node, b('g'), 0)).toBe(0);
    expect(fs.existsSync(path.join(dir, 'f'))).toBe(false);
    expect(await readAll(be, f.fh)).toBe('still here');
    expect((await ok(be.getattr(f.node))).nlink).toBe(0);
    expect(await be.setattr(f.node, { size: 5 })).toBe(0);
    expect(await readAll(be, f.fh)).toBe('still');
    // g had no open handle: we pinned it before unlinking; it can be reopened and written
    const g2 = await ok(be.open(g.node, 2));
    expect(await be.write(g2, 0, [b('pinned')])).toBe(6);
    expect(await readAll(be, g2)).toBe('pinned');
    be.close(g2);
    be.close(f.fh);
    be.forget(f.node);
    be.forget(g.node);
    expect(be.heldFds).toBe(0);
  });

  test('descriptor accounting: a long run of open/read/close leaves /proc/self/fd unchanged', async () => {
    const { be, dir } = await launch({ connections: 2 });
    const r = await root(be);
    const f = await ok(be.create(r.node, b('f'), 2, 0o644, 0, 0));
    await ok(be.write(f.fh, 0, [b('data')]));
    be.close(f.fh);
    await new Promise((res) => setTimeout(res, 50));
    const before = fdsInto(dir);
    expect(before).toBe(0);
    for (let i = 0; i < 300; i++) {
      const fhs = await Promise.all([0, 1, 2].map(() => ok(be.open(f.node, 0))));
      for (const fh of fhs) expect(await readAll(be, fh)).toBe('data');
      const d = await ok(be.open(r.node, 0));
      await listDir(be, d);
      for (const fh of [...fhs, d]) expect(be.close(fh)).toBe(0);
      // error paths: a failing open (O_DIRECTORY on a file) and a failing create
      expect(await be.open(f.node, 0o200000)).toBe(-ENOTDIR);
      expect(await be.create(r.node, b('f'), 0o302, 0o644, 0, 0)).toBe(-EEXIST);
    }
    await new Promise((res) => setTimeout(res, 50)); // closes are asynchronous
    expect(be.heldFds).toBe(0);
    expect(fdsInto(dir)).toBe(0);
  });

  test('connect({ socket }) to a helper started with -s PATH -u 0 -g 0 (socket unlinked after connect)', async () => {
    const dir = tmpdir();
    fs.writeFileSync(path.join(dir, 'x'), 'x!');
    const sock = path.join(tmpdir(), 'proxy.sock');
    const child = spawn(HELPER, ['-n', '-p', dir, '-s', sock, '-u', '0', '-g', '0'], { stdio: 'ignore' });
    children.push(child);
    for (let i = 0; i < 500 && !fs.existsSync(sock); i++) await new Promise((res) => setTimeout(res, 10));
    // The helper binds (the file appears), chowns, then listens: until then connect is refused.
    let be: ProxyBackend | undefined;
    for (let i = 0; !be; i++) {
      try { be = await ProxyBackend.connect({ socket: sock }); } catch (e) {
        if (i >= 250 || !/ECONNREFUSED|111|refused/i.test(String((e as Error).message) + String((e as { code?: unknown }).code))) throw e;
        await new Promise((res) => setTimeout(res, 20));
      }
    }
    backends.push(be);
    expect(fs.existsSync(sock)).toBe(false);
    const r = await root(be);
    const x = await ok(be.lookup(r.node, b('x')));
    const fh = await ok(be.open(x.node, 0));
    expect(await readAll(be, fh)).toBe('x!');
    be.close(fh);
  });

  test('connect({ fd }) to a helper started with -f N; with the helper gone it answers EIO', async () => {
    const dir = tmpdir();
    fs.writeFileSync(path.join(dir, 'x'), 'fd mode');
    const nat = fdpass();
    const [ours, theirs] = nat.socketpair() as [number, number];
    const child = spawn(HELPER, ['-n', '-p', dir, '-f', '3'], { stdio: ['ignore', 'ignore', 'ignore', theirs] });
    children.push(child);
    nat.close(theirs);
    const be = await ProxyBackend.connect({ fd: ours });
    backends.push(be);
    const r = await root(be);
    const x = await ok(be.lookup(r.node, b('x')));
    const fh = await ok(be.open(x.node, 0));
    const exited = new Promise((res) => child.once('exit', res));
    child.kill('SIGKILL');
    await exited;
    await new Promise((res) => setTimeout(res, 20));
    expect(await be.getattr(x.node)).toEqual(expect.objectContaining({ size: 7 })); // fstat of our fd
    expect(await be.lookup(r.node, b('x'))).toBe(-EIO);
    expect(await be.mkdir(r.node, b('y'), 0o755, 0, 0)).toBe(-EIO);
    expect(await readAll(be, fh)).toBe('fd mode'); // the received descriptor still works
    be.close(fh);
  });
});

// ─────────────────────────────────────────────────────────────────────────── helper loss

describe('helper loss and recovery', () => {
  test('SIGKILL mid-request → EIO, the helper is relaunched, earlier fds keep working', async () => {
    const { be, dir } = await launch({ connections: 1 });
    const r = await root(be);
    fs.writeFileSync(path.join(dir, 'keep'), 'kept data');
    const k = await ok(be.lookup(r.node, b('keep')));
    const fh = await ok(be.open(k.node, 2));
    const [pid] = be.client.pids;
    process.kill(pid, 'SIGSTOP'); // hold the request inside the helper
    stopped.push(pid);
    const pending = be.lookup(r.node, b('keep'));
    await new Promise((res) => setTimeout(res, 50));
    process.kill(pid, 'SIGKILL');
    expect(await pending).toBe(-EIO);
    expect(await be.client.waitUp(1, 5000)).toBe(true);
    const [pid2] = be.client.pids;
    expect(pid2).not.toBe(pid);
    expect((await ok(be.lookup(r.node, b('keep')))).node).toBe(k.node);
    expect(await readAll(be, fh)).toBe('kept data');
    expect(await be.write(fh, 0, [b('KEPT')])).toBe(4);
    expect(fs.readFileSync(path.join(dir, 'keep'), 'utf8')).toBe('KEPT data');
    be.close(fh);
  });

  test('SIGSTOP past the deadline → EIO (helper killed), EIO while down, then recovery', async () => {
    const { be, dir } = await launch({ connections: 1, deadlineMs: 300, retryMinMs: 200 });
    const r = await root(be);
    fs.writeFileSync(path.join(dir, 'a'), 'A');
    const a = await ok(be.lookup(r.node, b('a')));
    const fh = await ok(be.open(a.node, 0));
    const [pid] = be.client.pids;
    process.kill(pid, 'SIGSTOP');
    stopped.push(pid);
    const t0 = Date.now();
    expect(await be.lookup(r.node, b('a'))).toBe(-EIO);
    const dt = Date.now() - t0;
    expect(dt).toBeGreaterThanOrEqual(250);
    expect(dt).toBeLessThan(3000);
    // while no helper is up: immediate EIO, data through our fd still fine
    expect(be.client.up).toBe(0);
    expect(await be.mkdir(r.node, b('z'), 0o755, 0, 0)).toBe(-EIO);
    expect(await readAll(be, fh)).toBe('A');
    await new Promise((res) => setTimeout(res, 100));
    expect(alive(pid)).toBe(false); // the hung helper was killed
    expect(await be.client.waitUp(1, 5000)).toBe(true);
    expect((await ok(be.lookup(r.node, b('a')))).size).toBe(1);
    be.close(fh);
  });

  test('with several helpers, a stopped one stalls nothing else (only its own request)', async () => {
    const { be, dir } = await launch({ connections: 3, deadlineMs: 1500 });
    const r = await root(be);
    fs.writeFileSync(path.join(dir, 'a'), 'A');
    const pids = be.client.pids;
    expect(pids.length).toBe(3);
    process.kill(pids[0], 'SIGSTOP');
    stopped.push(pids[0]);
    const t0 = Date.now();
    const results = await Promise.all(Array.from({ length: 30 }, () => be.lookup(r.node, b('a'))));
    const fast = Date.now() - t0;
    // exactly one request went to the stopped helper and got EIO at the deadline; the rest ok
    expect(results.filter((x) => x === -EIO).length).toBeLessThanOrEqual(1);
    expect(results.filter((x) => typeof x !== 'number').length).toBeGreaterThanOrEqual(29);
    expect(fast).toBeLessThan(3000);
  });

  test('garbage from a fake helper → EIO, no crash, keeps answering', async () => {
    const sockDir = tmpdir();
    const sock = path.join(sockDir, 'fake.sock');
    // a valid 116-byte LSTAT reply for the root, then junk for everything else
    const stat = Buffer.alloc(116);
    stat.writeBigUInt64LE(42n, 0); stat.writeBigUInt64LE(7n, 8); stat.writeBigUInt64LE(2n, 16);
    stat.writeUInt32LE(S_IFDIR | 0o755, 24);
    const good = Buffer.concat([Buffer.from([0, 0, 0, 0, 116, 0, 0, 0]), stat]);
    const junk = [
      Buffer.from('HTTP/1.1 200 OK\r\n\r\n'),              // bad reply type
      Buffer.from([0, 0, 0, 0, 100, 0, 0, 0, 1, 2, 3]),     // short stat body (then EOF)
      Buffer.from([1, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0]),   // T_ERROR with a positive errno
      Buffer.from([0, 0, 0, 0, 255, 255, 1, 0]),           // size > 64 KiB
    ];
    let conn = 0;
    const server = net.createServer((s) => {
      const mine = conn++;
      let n = 0;
      s.on('data', () => {
        if (n++ < 2) s.write(good);
        else { s.write(junk[mine % junk.length]); if (mine % junk.length === 1) s.end(); }
      });
      s.on('error', () => { /* client hung up */ });
    });
    await new Promise<void>((res) => server.listen(sock, res));
    try {
      const be = await ProxyBackend.connect({ socket: sock }, { unlinkSocket: false, retryMinMs: 20, deadlineMs: 2000 });
      backends.push(be);
      const r = await root(be);
      expect(r.ino).toBe(7);
      // every connection: good replies to its first two requests, then junk → EIO, reconnect
      let eio = 0;
      for (let i = 0; i < 40 && be.client.losses < junk.length; i++) {
        if (!(await be.client.waitUp(1, 5000))) break;
        const res = await be.lookup(r.node, b('x'));
        if (res === -EIO) eio++;
        else expect(typeof res).toBe('object');
      }
      expect(be.client.losses).toBe(junk.length);
      expect(eio).toBe(junk.length);
      // an fd reply that is junk (an fd-less INT_MAX is ENFILE, an odd value is garbage)
      expect(await be.client.waitUp(1, 5000)).toBe(true);
      expect(await be.open(r.node, 0)).toBeLessThan(0);
    } finally {
      await new Promise((res) => server.close(res));
    }
    // junk as the very first reply: connect rejects cleanly
    const sock2 = path.join(sockDir, 'junk.sock');
    const server2 = net.createServer((s) => { s.on('data', () => s.write('garbage!')); s.on('error', () => {}); });
    await new Promise<void>((res) => server2.listen(sock2, res));
    try {
      await expect(ProxyBackend.connect({ socket: sock2 }, { unlinkSocket: false, deadlineMs: 1000 })).rejects.toThrow(/not usable/);
    } finally {
      await new Promise((res) => server2.close(res));
    }
  });
});
