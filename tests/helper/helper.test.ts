/**
 * `virtio9p helper` at the wire level (ProxyClient over a socketpair, helper -f 3), next to what
 * proxy-probe.md found in QEMU's virtfs-proxy-helper:
 *  - creating with uid 0 and gid ≠ 0, twice, then chown and another create with other ids:
 *    all work and the helper stays up (QEMU's loses its capabilities, then aborts);
 *  - creations honour uid:gid and the exact mode (set-id bits kept after the chown);
 *  - special files: OPEN/CREATE → ENXIO, a FIFO never blocks the helper;
 *  - QEMU's trailing-NUL paths and "//name" paths; confinement (.., symlinks → no escape);
 *  - framing: an unknown type or an oversized request → disconnect; CLI errors and exit codes.
 */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProxyClient } from '../../src/backends/proxy/client.js';
import { fdpass } from '../../src/backends/proxy/native.js';
import { decodeStat, decodeString, encodeRequest } from '../../src/backends/proxy/protocol.js';

const root = new URL('../../', import.meta.url).pathname;
const HELPER = path.join(root, 'native/virtio9p-helper');
const isRoot = process.getuid?.() === 0;
const O_RDONLY = 0, O_RDWR = 2, O_CREAT = 0o100, O_EXCL = 0o200, O_DIRECTORY = 0o200000;
const ENOENT = 2, ENXIO = 6, EEXIST = 17, EXDEV = 18, ELOOP = 40;

let top: string;
beforeAll(() => {
  execFileSync(process.execPath, [path.join(root, 'native/build.mjs')], { stdio: 'inherit' });
  top = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-helper-'));
});
afterAll(() => fs.rmSync(top, { recursive: true, force: true }));

let seq = 0;
async function start(): Promise<{ c: ProxyClient; child: ChildProcess; exp: string; log: () => string }> {
  const exp = path.join(top, `e${seq++}`);
  fs.mkdirSync(exp);
  const pair = fdpass().socketpair();
  if (typeof pair === 'number') throw new Error('socketpair');
  const [ours, theirs] = pair;
  const child = spawn(HELPER, ['-n', '-p', exp, '-f', '3'], { stdio: ['ignore', 'ignore', 'pipe', theirs] });
  fdpass().close(theirs);
  let log = '';
  child.stderr!.on('data', (d) => { log += d; });
  const c = await ProxyClient.connect({ fd: ours });
  return { c, child, exp, log: () => log };
}

const alive = (ch: ChildProcess): boolean => ch.exitCode === null && ch.signalCode === null;
const exited = (ch: ChildProcess): Promise<number | null> =>
  ch.exitCode !== null || ch.signalCode !== null ? Promise.resolve(ch.exitCode) : new Promise((r) => ch.once('exit', (c) => r(c)));

describe('virtio9p helper', () => {
  (isRoot ? test : test.skip)('uid 0 with gid ≠ 0, twice: works, and the helper stays healthy (no QEMU §6.3 bug)', async () => {
    const { c, child, exp } = await start();
    try {
      for (const n of ['q1', 'q2']) {
        const fd = await c.call('T_CREATE', [`//${n}`, O_RDWR | O_CREAT, 0o640, 0, 1000]);
        expect(fd).toBeGreaterThanOrEqual(0);
        fs.closeSync(fd);
        const st = fs.lstatSync(path.join(exp, n));
        expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([0, 1000, 0o640]);
      }
      expect(await c.call('T_MKDIR', [0, 1000, '//d0', 0o2750])).toBe(0);
      // QEMU's helper: EPERM here (capabilities lost) ...
      expect(await c.call('T_CHOWN', ['/q1\0', 2000, 2000])).toBe(0);
      expect(fs.lstatSync(path.join(exp, 'q1')).uid).toBe(2000);
      // ... and SIGABRT here
      expect(await c.call('T_MKDIR', [1001, 1002, '//d1', 0o750])).toBe(0);
      expect(await c.call('T_SYMLINK', [1003, 1004, 'q1', '//s1'])).toBe(0);
      expect(await c.call('T_MKNOD', [1005, 1006, '//p1', 0o10604, 0n])).toBe(0);
      const d1 = fs.lstatSync(path.join(exp, 'd1'));
      expect([d1.uid, d1.gid, d1.mode & 0o7777]).toEqual([1001, 1002, 0o750]);
      // mkdir(2) drops S_ISGID from the mode (Linux inherits it from the parent only): as QEMU's helper
      expect([fs.lstatSync(path.join(exp, 'd0')).gid, fs.lstatSync(path.join(exp, 'd0')).mode & 0o7777]).toEqual([1000, 0o750]);
      const s1 = fs.lstatSync(path.join(exp, 's1'));
      expect([s1.isSymbolicLink(), s1.uid, s1.gid]).toEqual([true, 1003, 1004]);
      const p1 = fs.lstatSync(path.join(exp, 'p1'));
      expect([p1.isFIFO(), p1.uid, p1.gid, p1.mode & 0o7777]).toEqual([true, 1005, 1006, 0o604]);
      // set-id bits survive the chown to the requested owner
      const fd = await c.call('T_CREATE', ['//suid', O_RDWR | O_CREAT, 0o6755, 1000, 1000]);
      fs.closeSync(fd);
      expect(fs.lstatSync(path.join(exp, 'suid')).mode & 0o7777).toBe(0o6755);
      // the process is still healthy: no capability change ever happened
      expect(alive(child)).toBe(true);
      const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const capEff = /CapEff:\s*([0-9a-f]+)/.exec(status)![1];
      const self = /CapEff:\s*([0-9a-f]+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1];
      expect(capEff).toBe(self);
      expect(await c.call('T_LSTAT', ['/'], decodeStat)).toHaveProperty('mode');
    } finally {
      c.close();
      await exited(child);
    }
  });

  test('special files: OPEN / CREATE give ENXIO and never block; regular files and dirs pass fds', async () => {
    const { c, child, exp, log } = await start();
    try {
      expect(spawnSync('mkfifo', [path.join(exp, 'fifo')]).status).toBe(0);
      fs.writeFileSync(path.join(exp, 'f'), 'hello');
      expect(await c.call('T_OPEN', ['/fifo\0', O_RDONLY])).toBe(-ENXIO); // no writer: QEMU's helper would block
      expect(await c.call('T_OPEN', ['//fifo', O_RDWR])).toBe(-ENXIO);
      expect(await c.call('T_CREATE', ['//fifo', O_RDWR | O_CREAT, 0o644, 0, 0])).toBe(-ENXIO);
      expect(await c.call('T_CREATE', ['//fifo', O_RDWR | O_CREAT | O_EXCL, 0o644, 0, 0])).toBe(-EEXIST);
      const fd = await c.call('T_OPEN', ['/f\0', O_RDONLY]);
      expect(fs.readFileSync(fd, 'utf8')).toBe('hello');
      fs.closeSync(fd);
      const dfd = await c.call('T_OPEN', ['/', O_DIRECTORY]);
      expect(fs.readdirSync(`/proc/self/fd/${dfd}`).sort()).toEqual(['f', 'fifo']);
      fs.closeSync(dfd);
      expect(log()).toContain('special file');
      expect(alive(child)).toBe(true);
    } finally {
      c.close();
      await exited(child);
    }
  });

  test('confinement: "..", absolute and relative symlinks, trailing NULs', async () => {
    const { c, child, exp } = await start();
    try {
      fs.symlinkSync('/', path.join(exp, 'rootlink'));
      fs.symlinkSync('../../../../../../etc', path.join(exp, 'up'));
      fs.mkdirSync(path.join(exp, 'd'));
      expect(await c.call('T_LSTAT', ['/../../../../etc/passwd'], decodeStat)).toBe(-EXDEV);
      expect(await c.call('T_LSTAT', ['//d/../../etc'], decodeStat)).toBe(-EXDEV);
      expect(await c.call('T_OPEN', ['/rootlink/etc/passwd', O_RDONLY])).toBe(-ELOOP);
      expect(await c.call('T_OPEN', ['//up/passwd', O_RDONLY])).toBe(-ELOOP);
      expect(await c.call('T_OPEN', ['//rootlink', O_DIRECTORY])).toBe(-ELOOP);
      expect(await c.call('T_CREATE', ['//up/evil', O_RDWR | O_CREAT, 0o644, 0, 0])).toBe(-ELOOP);
      expect(await c.call('T_MKDIR', [0, 0, '//rootlink/tmp/evil', 0o755])).toBe(-ELOOP);
      expect(await c.call('T_CHMOD', ['//rootlink', 0o777])).toBeLessThan(0);
      expect(fs.lstatSync('/').mode & 0o777).not.toBe(0o777);
      expect(await c.call('T_LINK', ['//up/passwd', '//stolen'])).toBe(-ELOOP);
      expect(await c.call('T_RENAME', ['//d', '//../escaped'])).toBe(-EXDEV);
      const t = await c.call('T_READLINK', ['/rootlink\0', 4096], decodeString);
      expect(Buffer.from(t as Uint8Array).toString()).toBe('/');
      expect(await c.call('T_LSTAT', ['/nope\0'], decodeStat)).toBe(-ENOENT);
      expect(fs.readdirSync(exp).sort()).toEqual(['d', 'rootlink', 'up']);
    } finally {
      c.close();
      await exited(child);
    }
  });

  test('framing errors disconnect: unknown type, oversized request', async () => {
    for (const frame of [
      (() => { const b = encodeRequest('T_LSTAT', ['/']); b[0] = 99; return b; })(),
      (() => { const b = Buffer.alloc(8); b.writeInt32LE(8, 0); b.writeInt32LE(65537, 4); return b; })(),
    ]) {
      const exp = path.join(top, `f${seq++}`);
      fs.mkdirSync(exp);
      const pair = fdpass().socketpair() as [number, number];
      const child = spawn(HELPER, ['-n', '-p', exp, '-f', '3'], { stdio: ['ignore', 'ignore', 'pipe', pair[1]] });
      fdpass().close(pair[1]);
      let log = '';
      child.stderr!.on('data', (d) => { log += d; });
      fs.writeSync(pair[0], frame);
      expect(await exited(child)).toBe(0);
      let n: number | string;
      try { n = fs.readSync(pair[0], Buffer.alloc(16)); } catch (e) { n = (e as { code: string }).code; }
      expect([0, 'ECONNRESET']).toContain(n); // no reply: EOF (or a reset: our request was left unread)
      fdpass().close(pair[0]);
      expect(log).toMatch(/disconnecting/);
    }
  });

  test('command line: QEMU exit codes and checks', () => {
    const run = (args: string[]) => spawnSync(HELPER, args, { encoding: 'utf8' });
    expect(run(['-n']).status).toBe(255);
    expect(run(['-n', '-p', '/nonexistent-dir-xyz', '-f', '3']).status).toBe(1);
    const file = path.join(top, 'file');
    fs.writeFileSync(file, '');
    expect(run(['-n', '-p', file, '-f', '3']).stderr).toContain('is not directory');
    expect(run(['-n', '-p', top, '-s', path.join(top, 'x.sock')]).status).toBe(1); // no -u/-g
    expect(run(['-n', '-p', top, '-s', path.join(top, 'x.sock'), '-f', '3']).status).toBe(1);
    const exists = path.join(top, 'exists.sock');
    fs.writeFileSync(exists, '');
    const r = run(['-n', '-p', top, '-s', exists, '-u', '0', '-g', '0']);
    expect([r.status, r.stderr.includes('socket already exists')]).toEqual([0, true]);
    expect(run(['--help']).stdout).toContain('usage: virtio9p helper');
  });

  test('named socket: srwxrwx--- owned by -u:-g, exactly one connection', async () => {
    const exp = path.join(top, `s${seq++}`);
    fs.mkdirSync(exp);
    const sock = path.join(top, `s${seq++}.sock`);
    const child = spawn(HELPER, ['-n', '-p', exp, '-s', sock, '-u', String(isRoot ? 1234 : process.getuid!()), '-g', String(isRoot ? 1235 : process.getgid!())], { stdio: 'ignore' });
    const t0 = Date.now();
    while (!fs.existsSync(sock) && Date.now() - t0 < 10000) await new Promise((r) => setTimeout(r, 10));
    const st = fs.lstatSync(sock);
    expect([st.isSocket(), st.mode & 0o777]).toEqual([true, 0o770]);
    if (isRoot) expect([st.uid, st.gid]).toEqual([1234, 1235]);
    const c = await ProxyClient.connect({ socket: sock });
    expect(fs.existsSync(sock)).toBe(false); // the client unlinks it, like QEMU
    const s = await c.call('T_LSTAT', ['/\0'], decodeStat);
    expect(typeof s).toBe('object');
    c.close();
    expect(await exited(child)).toBe(0);
  });
});
