/**
 * What a guest can plant on the host through `virtio9p serve` under each security model. A
 * guest attached as uid 1000 creates a block device over a loop device's numbers, a set-uid
 * file, chowns a file to root with mode 04777, sets security.capability and a POSIX ACL, and
 * tries to read or forge the server's own user.virtfs.* metadata.
 *   - The default (mapped-xattr, the server run as root): the guest sees all of it; the host
 *     gets only regular files 0600 and directories 0700 owned by the server's user, with no
 *     set-id bits and no security.* or system.* xattrs.
 *   - passthrough, asked for: the objects are real (root may do it).
 *   - mapped-xattr run by an unprivileged user: a root-owned Linux tree (owners, device nodes,
 *     symlinks) is served from files that user owns.
 */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { serve, tempDir, type Served } from '../clients/serve-util.js';
import { connectStream, type StreamConn } from '../../harness/soak/stream-client.js';
import { P9ClientError } from '../../src/testing/p9/client.js';
import { fsops } from '../../src/helper/fsops.js';

const EACCES = 13, ENODATA = 61, ENXIO = 6, EOPNOTSUPP = 95, ENOENT = 2, EINVAL = 22;
const O_RDWR = 2;
const S_IFMT = 0o170000, S_IFREG = 0o100000, S_IFDIR = 0o40000, S_IFBLK = 0o60000, S_IFLNK = 0o120000, S_IFCHR = 0o20000;
const A_MODE = 0x1, A_UID = 0x2, A_GID = 0x4;
const NOBODY = 65534;
const te = new TextEncoder();
const CAP = new Uint8Array([0x01, 0x00, 0x00, 0x02, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const ACL = new Uint8Array([2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff]);

async function errnoOf(p: Promise<unknown>): Promise<number> {
  try { await p; return 0; } catch (e) { if (e instanceof P9ClientError) return e.errno; throw e; }
}

async function session(s: Served, uid: number): Promise<StreamConn> {
  const c = await connectStream(s.address.replace(/^unix:/, ''));
  await c.client.version(65536);
  await c.client.attach(0, undefined, 'user', '', uid);
  return c;
}

async function walk(c: StreamConn, ...names: string[]): Promise<number> {
  const fid = c.client.allocFid();
  await c.client.walk(0, fid, names);
  return fid;
}

/** The guest's attempts; the checks follow on both sides. mapped-file keeps no security.* or
 *  system.* xattrs at all (EOPNOTSUPP). */
async function plant(c: StreamConn, model: string): Promise<void> {
  const cl = c.client;
  await cl.mkdir(0, 'dir', 0o2775, 1000);
  await cl.mknod(0, 'disk', S_IFBLK | 0o660, 7, 0, 1000);
  await cl.mknod(0, 'null', S_IFCHR | 0o666, 1, 3, 1000);
  await cl.symlink(0, 'link', '/etc/shadow', 1000);
  const d = await walk(c);
  await cl.lcreate(d, 'suid', O_RDWR, 0o6755, 1000);
  await cl.write(d, 0, te.encode('#!/bin/sh\nid\n'));
  await cl.clunk(d);
  const f = await walk(c, 'suid');
  await cl.setattr(f, { valid: A_MODE | A_UID | A_GID, mode: 0o4777, uid: 0, gid: 0 });
  const x = cl.allocFid();
  await cl.xattrwalk(f, x, '');
  await cl.clunk(x);
  if (model === 'mapped-file') {
    expect(await errnoOf(xset(c, f, 'security.capability', CAP))).toBe(EOPNOTSUPP);
    expect(await errnoOf(xset(c, f, 'system.posix_acl_access', ACL))).toBe(EOPNOTSUPP);
  } else {
    await xset(c, f, 'security.capability', CAP);
    await xset(c, f, 'system.posix_acl_access', ACL);
  }
  await cl.clunk(f);
}

async function xset(c: StreamConn, fid: number, name: string, value: Uint8Array): Promise<void> {
  const x = c.client.allocFid();
  await c.client.walk(fid, x, []);
  await c.client.xattrcreate(x, name, value.length, 0);
  await c.client.write(x, 0, value);
  await c.client.clunk(x);
}

async function xget(c: StreamConn, fid: number, name: string): Promise<Uint8Array> {
  const x = c.client.allocFid();
  const size = await c.client.xattrwalk(fid, x, name);
  try { return await c.client.read(x, 0, Number(size)); } finally { await c.client.clunk(x); }
}

async function xlist(c: StreamConn, fid: number): Promise<string[]> {
  const raw = await xget(c, fid, '');
  return new TextDecoder().decode(raw).split('\0').filter((s) => s !== '').sort();
}

/** Host xattr names of a path (no follow). */
function hostXattrs(p: string): string[] {
  const F = fsops();
  const fd = F.openRoot(path.dirname(p));
  try {
    const v = F.listxattr(fd, path.basename(p), 65536);
    if (typeof v === 'number') return [];
    return Buffer.from(v).toString('latin1').split('\0').filter((s) => s !== '').sort();
  } finally { F.close(fd); }
}

let dirs: string[] = [];
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); dirs = []; });
const fresh = (tag: string): string => { const d = tempDir(tag); dirs.push(d); return d; };

describe.each([
  ['local', 'mapped-xattr'], ['proxy', 'mapped-xattr'], ['local', 'mapped-file'], ['proxy', 'mapped-file'],
])('--backend %s --security-model %s (mapped-xattr: the default), server run as root, --access any', (backend, model) => {
  let exp: string;
  let s: Served;
  let c: StreamConn;
  beforeAll(async () => {
    exp = fresh(`secmodel-${backend}`);
    // --access any: the model alone must hold, whatever the client claims to be
    s = await serve(exp, backend, ['--access', 'any', '--security-model', model]);
    c = await session(s, 1000);
    await plant(c, model);
  }, 60000);
  afterAll(async () => { await c.close(); await s.stop(); });

  test('the guest sees what it asked for', async () => {
    const g = async (...p: string[]) => { const f = await walk(c, ...p); try { return await c.client.getattr(f); } finally { await c.client.clunk(f); } };
    expect(((await g('disk')).mode & S_IFMT)).toBe(S_IFBLK);
    expect((await g('disk')).rdev).toBe(BigInt(7 << 8));
    expect((await g('null')).mode).toBe(S_IFCHR | 0o666);
    expect((await g('suid')).mode).toBe(S_IFREG | 0o4777);
    expect([(await g('suid')).uid, (await g('suid')).gid]).toEqual([0, 0]);
    expect((await g('link')).mode & S_IFMT).toBe(S_IFLNK);
    expect((await g('dir')).mode).toBe(S_IFDIR | 0o2775);
    const l = await walk(c, 'link');
    expect(await c.client.readlink(l)).toBe('/etc/shadow');
    await c.client.clunk(l);
    const f = await walk(c, 'suid');
    if (model === 'mapped-xattr') {
      expect([...await xget(c, f, 'security.capability')]).toEqual([...CAP]);
      expect(await xlist(c, f)).toEqual(['security.capability', 'system.posix_acl_access']);
    } else {
      expect(await xlist(c, f)).toEqual([]);
    }
    await c.client.clunk(f);
    expect(await errnoOf((async () => { const d = await walk(c, 'disk'); await c.client.lopen(d, O_RDWR); })())).toBe(ENXIO);
  });

  test('the host gets none of it: plain files and directories of the server\'s user, no set-id, no security.* / system.*', () => {
    for (const name of ['disk', 'null', 'link', 'suid']) {
      const st = fs.lstatSync(path.join(exp, name));
      expect([name, st.mode, st.uid, st.gid]).toEqual([name, S_IFREG | 0o600, 0, 0]);
      expect(hostXattrs(path.join(exp, name)).filter((x) => !x.startsWith('user.virtfs.'))).toEqual([]);
    }
    const d = fs.lstatSync(path.join(exp, 'dir'));
    expect(d.mode).toBe(S_IFDIR | 0o700);
    expect(fs.readFileSync(path.join(exp, 'link'), 'utf8')).toBe('/etc/shadow');
    expect(hostXattrs(path.join(exp, 'suid'))).toEqual(model === 'mapped-xattr' ? [
      'user.virtfs.gid', 'user.virtfs.mode', 'user.virtfs.security.capability',
      'user.virtfs.system.posix_acl_access', 'user.virtfs.uid',
    ] : []);
    if (model === 'mapped-file') {
      expect(fs.readFileSync(path.join(exp, '.virtfs_metadata', 'suid'), 'latin1')).toBe('virtfs.uid=0\nvirtfs.gid=0\nvirtfs.mode=35327\n');
      expect(fs.lstatSync(path.join(exp, '.virtfs_metadata')).mode).toBe(S_IFDIR | 0o700);
    }
  });

  test('the server\'s metadata is hidden from the guest and cannot be forged', async () => {
    const f = await walk(c, 'suid');
    for (const k of ['uid', 'gid', 'mode', 'rdev', 'security.capability']) {
      const x = c.client.allocFid();
      expect(await errnoOf(c.client.xattrwalk(f, x, `user.virtfs.${k}`))).toBe(ENODATA);
    }
    const x = c.client.allocFid();
    await c.client.walk(f, x, []);
    await c.client.xattrcreate(x, 'user.virtfs.uid', 4, 0);
    await c.client.write(x, 0, new Uint8Array(4));
    expect(await errnoOf(c.client.clunk(x))).toBe(EACCES);
    expect((await c.client.getattr(f)).mode).toBe(S_IFREG | 0o4777);
    await c.client.clunk(f);
  });
});

describe('mapped-file: its metadata names are out of the guest\'s reach', () => {
  test('.virtfs_metadata and .virtfs_metadata_root: not listed, not walked to, not created, not renamed to', async () => {
    const exp = fresh('secmodel-mfile-names');
    const s = await serve(exp, 'local', ['--security-model', 'mapped-file', '--access', 'any']);
    const c = await session(s, 0);
    try {
      await c.client.mkdir(0, 'd', 0o755, 0);
      await c.client.setattr(0, { valid: A_MODE, mode: 0o755 });
      expect(fs.existsSync(path.join(exp, '.virtfs_metadata', 'd'))).toBe(true);
      expect(fs.existsSync(path.join(exp, '.virtfs_metadata_root'))).toBe(true);
      const d = await walk(c);
      await c.client.lopen(d, 0);
      const names = (await c.client.readdirAll(d)).map((e) => new TextDecoder().decode(e.name)).sort();
      expect(names).toEqual(['.', '..', 'd']);
      for (const n of ['.virtfs_metadata', '.virtfs_metadata_root']) {
        const f = c.client.allocFid();
        expect(await errnoOf(c.client.walk(0, f, [n]))).toBe(ENOENT);
        expect(await errnoOf(c.client.mkdir(0, n, 0o755, 0))).toBe(EINVAL);
        expect(await errnoOf(c.client.renameat(0, 'd', 0, n))).toBe(EINVAL);
      }
    } finally { await c.close(); await s.stop(); }
  });
});

describe('--security-model passthrough, asked for, as root: the objects are real', () => {
  test('a device node, owner and set-id bits reach the host', async () => {
    const exp = fresh('secmodel-pt');
    const s = await serve(exp, 'local', ['--security-model', 'passthrough', '--access', 'any']);
    const c = await session(s, 1000);
    try {
      await c.client.mknod(0, 'null', S_IFCHR | 0o666, 1, 3, 1000);
      const d = await walk(c);
      await c.client.lcreate(d, 'suid', O_RDWR, 0o4755, 1000);
      await c.client.clunk(d);
      expect(fs.lstatSync(path.join(exp, 'null')).isCharacterDevice()).toBe(true);
      const st = fs.lstatSync(path.join(exp, 'suid'));
      expect([st.mode, st.uid, st.gid]).toEqual([S_IFREG | 0o4755, 1000, 1000]);
    } finally { await c.close(); await s.stop(); }
  });
});

describe('mapped-xattr run by an unprivileged user serves a root-owned tree', () => {
  test(`uid ${NOBODY} serves; the guest (root) makes root-owned files, nodes and symlinks; the host keeps plain files of uid ${NOBODY}`, async () => {
    const exp = fresh('secmodel-nobody');
    fs.chownSync(exp, NOBODY, NOBODY);
    const s = await serve(exp, 'local', [], { runAs: [NOBODY, NOBODY] });
    const c = await session(s, 0);
    try {
      await c.client.mkdir(0, 'etc', 0o755, 0);
      const e = await walk(c, 'etc');
      await c.client.lcreate(e, 'shadow', O_RDWR, 0o640, 42);
      await c.client.clunk(e);
      await c.client.mknod(0, 'console', S_IFCHR | 0o600, 5, 1, 0);
      await c.client.symlink(0, 'sh', 'bin/busybox', 0);
      const g = async (...p: string[]) => { const f = await walk(c, ...p); try { return await c.client.getattr(f); } finally { await c.client.clunk(f); } };
      expect([(await g('etc', 'shadow')).uid, (await g('etc', 'shadow')).gid, (await g('etc', 'shadow')).mode]).toEqual([0, 42, S_IFREG | 0o640]);
      expect([(await g('console')).mode, (await g('console')).rdev]).toEqual([S_IFCHR | 0o600, BigInt((5 << 8) | 1)]);
      expect((await g('sh')).mode & S_IFMT).toBe(S_IFLNK);
      for (const p of ['etc/shadow', 'console', 'sh']) {
        const st = fs.lstatSync(path.join(exp, p));
        expect([p, st.mode & S_IFMT, st.uid, st.gid]).toEqual([p, S_IFREG, NOBODY, NOBODY]);
      }
      expect(fs.lstatSync(path.join(exp, 'etc')).uid).toBe(NOBODY);
    } finally { await c.close(); await s.stop(); }
  });
});
