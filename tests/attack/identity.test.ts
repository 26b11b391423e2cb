/**
 * Who the guest is (`virtio9p serve --access user`, the default): requests run as the user the
 * fid was attached as. Root prepares a tree; users 1000 and 1001 then try, on the real server,
 * what a Linux host refuses them — reading a root-only file, chowning to root, making device
 * nodes, planting security.capability, writing another user's file, deleting in a sticky
 * directory, creating in root's directory — and do what it allows. --squash maps everyone to
 * one user; --access any is the old trust-the-client mode. Every backend; the default model.
 */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import fs from 'node:fs';
import { serve, tempDir, type Served } from '../clients/serve-util.js';
import { connectStream, type StreamConn } from '../../harness/soak/stream-client.js';
import { P9ClientError } from '../../src/testing/p9/client.js';

const EPERM = 1, EACCES = 13;
const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2;
const S_IFREG = 0o100000, S_IFCHR = 0o20000, S_IFIFO = 0o10000;
const A_MODE = 0x1, A_UID = 0x2, A_GID = 0x4;
const te = new TextEncoder();

async function errnoOf(p: Promise<unknown>): Promise<number> {
  try { await p; return 0; } catch (e) { if (e instanceof P9ClientError) return e.errno; throw e; }
}

class User {
  constructor(readonly c: StreamConn, readonly root: number) {}
  static async attach(s: Served, conn: StreamConn | null, uid: number): Promise<User> {
    const c = conn ?? await connectStream(s.address.replace(/^unix:/, ''));
    if (conn === null) await c.client.version(65536);
    const fid = c.client.allocFid();
    await c.client.attach(fid, undefined, `u${uid}`, '', uid);
    return new User(c, fid);
  }
  async walk(p: string): Promise<number> {
    const fid = this.c.client.allocFid();
    await this.c.client.walk(this.root, fid, p === '' ? [] : p.split('/'));
    return fid;
  }
  async try(f: (fid: number) => Promise<unknown>, p: string): Promise<number> {
    const fid = await this.walk(p);
    try { return await errnoOf(f(fid)); } finally { await errnoOf(this.c.client.clunk(fid)); }
  }
  open(p: string, flags: number) { return this.try((fid) => this.c.client.lopen(fid, flags), p); }
  create(dir: string, name: string, mode: number) { return this.try((fid) => this.c.client.lcreate(fid, name, O_RDWR, mode, 0xFFFFFFFF), dir); }
  setattr(p: string, a: Parameters<StreamConn['client']['setattr']>[1]) { return this.try((fid) => this.c.client.setattr(fid, a), p); }
  mknod(dir: string, name: string, mode: number) { return this.try((fid) => this.c.client.mknod(fid, name, mode, 1, 3, 0xFFFFFFFF), dir); }
  unlink(dir: string, name: string) { return this.try((fid) => this.c.client.unlinkat(fid, name, 0), dir); }
  xset(p: string, name: string) {
    return this.try(async (fid) => {
      await this.c.client.xattrcreate(fid, name, 4, 0);
      await this.c.client.write(fid, 0, new Uint8Array(4));
      await this.c.client.clunk(fid);
    }, p);
  }
  write(p: string, s: string) { return this.try(async (fid) => { await this.c.client.lopen(fid, O_WRONLY); await this.c.client.write(fid, 0, te.encode(s)); }, p); }
  async stat(p: string) { const fid = await this.walk(p); try { return await this.c.client.getattr(fid); } finally { await this.c.client.clunk(fid); } }
}

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

describe.each(['local', 'proxy', 'memory'])('--access user (default), --backend %s', (backend) => {
  let s: Served;
  let root: User, u1000: User, u1001: User;
  beforeAll(async () => {
    const exp = tempDir(`identity-${backend}`);
    dirs.push(exp);
    fs.chmodSync(exp, 0o755); // a temporary directory is 0700: the others could not even search it
    s = await serve(exp, backend);
    root = await User.attach(s, null, 0);
    u1000 = await User.attach(s, null, 1000);
    u1001 = await User.attach(s, u1000.c, 1001); // a second user on the same session
    expect(await root.create('', 'secret', 0o600)).toBe(0);
    expect(await root.try((f) => root.c.client.mkdir(f, 'pub', 0o777, 0), '')).toBe(0);
    expect(await root.setattr('pub', { valid: A_MODE, mode: 0o1777 })).toBe(0);
    expect(await u1000.create('pub', 'mine', 0o644)).toBe(0);
  }, 60000);
  afterAll(async () => { await root.c.close(); await u1000.c.close(); await s.stop(); });

  test('a root-only file: root reads it, 1000 gets EACCES', async () => {
    expect(await root.open('secret', O_RDONLY)).toBe(0);
    expect(await u1000.open('secret', O_RDONLY)).toBe(EACCES);
    expect(await u1000.open('secret', O_WRONLY)).toBe(EACCES);
  });

  test('1000 may not chown to root, make device nodes or set security.* / trusted.*; root may', async () => {
    expect(await u1000.setattr('pub/mine', { valid: A_MODE | A_UID | A_GID, mode: 0o4777, uid: 0, gid: 0 })).toBe(EPERM);
    expect(await u1000.setattr('pub/mine', { valid: A_UID, uid: 1001 })).toBe(EPERM);
    expect(await u1000.mknod('pub', 'null', S_IFCHR | 0o666)).toBe(EPERM);
    expect(await u1000.xset('pub/mine', 'security.capability')).toBe(EPERM);
    expect(await u1000.xset('pub/mine', 'trusted.x')).toBe(EPERM);
    expect(await u1000.mknod('pub', 'fifo', S_IFIFO | 0o644)).toBe(0); // a FIFO needs no privilege
    expect(await root.mknod('pub', 'null', S_IFCHR | 0o666)).toBe(0);
    expect(await root.setattr('pub/mine', { valid: A_UID | A_GID, uid: 1000, gid: 1000 })).toBe(0);
    expect(await root.xset('secret', 'security.capability')).toBe(0);
  });

  test('the owner sets modes (set-uid included, on its own file); others may not', async () => {
    expect(await u1000.setattr('pub/mine', { valid: A_MODE, mode: 0o4755 })).toBe(0);
    expect((await u1000.stat('pub/mine')).mode).toBe(S_IFREG | 0o4755);
    expect(await u1001.setattr('pub/mine', { valid: A_MODE, mode: 0o777 })).toBe(EPERM);
    expect(await u1000.setattr('pub/mine', { valid: A_MODE, mode: 0o644 })).toBe(0);
  });

  test('new objects belong to the attached user', async () => {
    expect(await u1001.create('pub', 'theirs', 0o644)).toBe(0);
    const st = await u1001.stat('pub/theirs');
    expect([st.uid, st.mode]).toEqual([1001, S_IFREG | 0o644]);
  });

  test('another user\'s 0644 file: readable, not writable', async () => {
    expect(await u1001.open('pub/mine', O_RDONLY)).toBe(0);
    expect(await u1001.write('pub/mine', 'x')).toBe(EACCES);
    expect(await u1000.write('pub/mine', 'x')).toBe(0);
  });

  test('a sticky directory: only the owner removes its file', async () => {
    expect(await u1001.create('pub', 'gone', 0o644)).toBe(0);
    expect(await u1000.unlink('pub', 'gone')).toBe(EPERM);
    expect(await u1001.unlink('pub', 'gone')).toBe(0);
  });

  test('root\'s 0755 directory: no creating, no removing for 1000', async () => {
    expect(await u1000.create('', 'x', 0o644)).toBe(EACCES);
    expect(await u1000.unlink('', 'secret')).toBe(EACCES);
    expect(await u1000.try((f) => u1000.c.client.mkdir(f, 'd', 0o755, 0), '')).toBe(EACCES);
  });
});

describe('--squash and --access any', () => {
  test('--squash 1234:1234: root attaches as 1234, its files are 1234:1234, root-only files are closed to it', async () => {
    const exp = tempDir('identity-squash');
    dirs.push(exp);
    fs.writeFileSync(`${exp}/secret`, 'x', { mode: 0o600 });
    fs.chmodSync(exp, 0o777);
    const s = await serve(exp, 'local', ['--squash', '1234:1234']);
    const r = await User.attach(s, null, 0);
    try {
      expect(await r.open('secret', O_RDONLY)).toBe(EACCES);
      expect(await r.create('', 'new', 0o644)).toBe(0);
      const st = await r.stat('new');
      expect([st.uid, st.gid]).toEqual([1234, 1234]);
    } finally { await r.c.close(); await s.stop(); }
  });

  test('--access any trusts the client (the server\'s own rights decide)', async () => {
    const exp = tempDir('identity-any');
    dirs.push(exp);
    fs.writeFileSync(`${exp}/secret`, 'x', { mode: 0o600 });
    const s = await serve(exp, 'local', ['--access', 'any']);
    const u = await User.attach(s, null, 1000);
    try {
      expect(await u.open('secret', O_RDONLY)).toBe(0);
    } finally { await u.c.close(); await s.stop(); }
  });
});
