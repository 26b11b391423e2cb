/**
 * Escape suite: a guest (the conformance kit's virtqueue driver + 9P client) and a hostile
 * process on the host try to make the server touch anything outside its export, against
 *   - the local backend (native/fsops.c confinement in-process),
 *   - the proxy backend over our helper (`virtio9p helper`, openat2-confined, no chroot),
 *   - the proxy backend over QEMU's virtfs-proxy-helper (chroot), for comparison.
 * Attacks: symlink to "/", symlink chains with ../../.., ".." names, absolute symlink targets,
 * hard links to a file outside (through symlinks, and through a directory swapped for a
 * symlink), a directory swapped for a symlink between walk and use (a host process swapping it
 * in a tight loop while the guest works for a few hundred iterations), renames across the root.
 * The host-side check: outside the export, a canary tree (files, a directory, an xattr) is
 * never read (atime set before mtime, so relatime would update it), never modified (content,
 * size, mode, owner, times, nlink, xattrs), and no new file appears outside the export (every
 * name the attacks create carries a token; /, /tmp, /etc and the test's own tree are searched).
 */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalBackend } from '../../src/backends/local.js';
import { ProxyBackend } from '../../src/backends/proxy/backend.js';
import type { Backend } from '../../src/backends/backend.js';
import { boot, errnoOf, walkTo, ROOT, type Ctx } from '../conformance/util.js';
import { P9_NOFID } from '../../src/testing/p9/codec.js';
import { fsops } from '../../src/helper/fsops.js';

const root = new URL('../../', import.meta.url).pathname;
const OUR_HELPER = path.join(root, 'native/virtio9p-helper');
const QEMU_HELPER = '/usr/lib/qemu/virtfs-proxy-helper';
const TOKEN = `esc${process.pid}x${Date.now().toString(36)}`;
const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_TRUNC = 0o1000, O_DIRECTORY = 0o200000;
const S_IFREG = 0o100000, S_IFDIR = 0o40000, S_IFIFO = 0o10000;
const RACE_ITERATIONS = 300;

let top: string;
beforeAll(() => {
  execFileSync(process.execPath, [path.join(root, 'native/build.mjs')], { stdio: 'inherit' });
  top = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-escape-'));
});
afterAll(() => { fs.rmSync(top, { recursive: true, force: true }); });

// ---- the outside world and its fingerprint ---------------------------------------------------

interface World { base: string; exp: string; out: string }

function makeWorld(tag: string): World {
  const base = path.join(top, tag);
  const exp = path.join(base, 'export');
  const out = path.join(base, 'outside');
  fs.mkdirSync(path.join(out, 'dir'), { recursive: true });
  fs.mkdirSync(path.join(exp, 'sub', 'dir'), { recursive: true });
  for (const p of ['canary', 'file', 'dir/inner']) fs.writeFileSync(path.join(out, p), `CANARY ${p}\n`);
  fs.writeFileSync(path.join(exp, 'sub', 'file'), 'inside\n');
  fs.chmodSync(path.join(out, 'canary'), 0o640);
  try { execFileSync('setfattr', ['-n', 'user.canary', '-v', 'yes', path.join(out, 'canary')], { stdio: 'ignore' }); } catch { /* no setfattr */ }
  // atime before mtime: any read would move atime (relatime)
  const old = new Date(1000000000 * 1000);
  for (const p of ['canary', 'file', 'dir/inner', 'dir', '']) fs.utimesSync(path.join(out, p), old, new Date());
  // host-made traps inside the export
  fs.symlinkSync('/', path.join(exp, 'rootlink'));
  fs.symlinkSync('../../../../../../../../..', path.join(exp, 'uplink'));
  fs.symlinkSync('uplink/etc', path.join(exp, 'chain'));
  fs.symlinkSync(out, path.join(exp, 'abslink'));
  fs.symlinkSync('../outside/canary', path.join(exp, 'relcanary'));
  fs.symlinkSync(path.join(out, 'canary'), path.join(exp, 'abscanary'));
  return { base, exp, out };
}

const O_NOATIME = 0o1000000;

/** Read a file or list a directory without touching its atime (O_NOATIME; we are its owner). */
function peek(p: string, dir: boolean): string[] | string {
  const fd = fs.openSync(p, (dir ? fs.constants.O_DIRECTORY : 0) | O_NOATIME);
  try {
    if (!dir) return fs.readFileSync(fd, 'latin1');
    const r = fsops().readdir(fd, 0, 0);
    if (typeof r === 'number') throw new Error(`readdir ${p}: ${r}`);
    const names: string[] = [];
    for (let i = 1; i < r.length; i += 4) {
      const n = (r[i] as Buffer).toString('latin1');
      if (n !== '.' && n !== '..') names.push(n);
    }
    return names.sort();
  } finally { fs.closeSync(fd); }
}

function fingerprint(w: World): string {
  const rows: string[] = [];
  const walk = (p: string): void => {
    const st = fs.lstatSync(p, { bigint: true });
    let x = '';
    try { x = execFileSync('getfattr', ['-d', '--absolute-names', p], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }); } catch { /* none */ }
    rows.push([path.relative(w.base, p), st.mode, st.uid, st.gid, st.size, st.nlink, st.ino, st.atimeNs, st.mtimeNs, st.ctimeNs,
      st.isFile() ? peek(p, false) : '', x.replace(/^#.*$/m, '')].join('|'));
    if (st.isDirectory()) for (const n of peek(p, true) as string[]) walk(path.join(p, n));
  };
  walk(w.out);
  rows.push(fs.readdirSync(w.base).sort().join(','));
  return rows.join('\n');
}

/** Names carrying TOKEN anywhere outside the export (a few levels deep). */
function strays(w: World): string[] {
  const found: string[] = [];
  const scan = (dir: string, depth: number): void => {
    if (dir === w.exp || depth < 0) return;
    let names: string[];
    try { names = fs.readdirSync(dir); } catch { return; }
    for (const n of names) {
      const p = path.join(dir, n);
      if (p === w.exp) continue;
      if (n.includes(TOKEN)) found.push(p);
      let st: fs.Stats;
      try { st = fs.lstatSync(p); } catch { continue; }
      if (st.isDirectory()) scan(p, depth - 1);
    }
  };
  scan(w.base, 6);
  for (const d of ['/', '/etc', '/tmp', os.tmpdir()]) scan(d, 0);
  return found;
}

// ---- attacks ------------------------------------------------------------------------------------

const enc = new TextEncoder();
const quiet = async (p: Promise<unknown>): Promise<number> => {
  try { return await errnoOf(p); } catch { return -1; }
};

async function fidFor(c: Ctx['client'], names: string[]): Promise<number | null> {
  const fid = c.allocFid();
  try {
    const qs = await c.walk(ROOT, fid, names);
    if (qs.length === names.length) return fid;
    c.releaseFid(fid);
    return null;
  } catch {
    c.releaseFid(fid);
    return null;
  }
}

/** Everything a guest can do with a fid it believes is a file. */
async function abuseFile(c: Ctx['client'], names: string[], i: number): Promise<void> {
  const f = await fidFor(c, names);
  if (f === null) return;
  await quiet(c.getattr(f));
  await quiet(c.setattr(f, { valid: 0x1 | 0x8, mode: 0o777, size: 0 }));
  await quiet(c.setattr(f, { valid: 0x2 | 0x4, uid: 4242, gid: 4242 }));
  await quiet(c.setattr(f, { valid: 0x10 | 0x20 | 0x80 | 0x100, atime_sec: 1, mtime_sec: 1 }));
  const x = c.allocFid();
  if ((await quiet(c.walk(f, x, []))) === 0) {
    await quiet(c.xattrcreate(x, `user.${TOKEN}`, 1));
    await quiet(c.write(x, 0, enc.encode('x')));
    await quiet(c.clunk(x));
  } else c.releaseFid(x);
  const y = c.allocFid();
  if ((await quiet(c.walk(f, y, []))) === 0) {
    await quiet(c.xattrwalk(y, c.allocFid(), 'user.canary'));
    await quiet(c.clunk(y));
  } else c.releaseFid(y);
  if ((await quiet(c.lopen(f, O_RDWR | O_TRUNC))) === 0) {
    await quiet(c.read(f, 0, 64));
    await quiet(c.write(f, 0, enc.encode(`PWNED ${i}\n`)));
  }
  await quiet(c.readlink(f));
  const d = await fidFor(c, []);
  if (d !== null) {
    await quiet(c.link(d, f, `hl-${TOKEN}-${i}`));
    await quiet(c.clunk(d));
  }
  await quiet(c.clunk(f));
}

/** Everything a guest can do with a fid it believes is a directory. */
async function abuseDir(c: Ctx['client'], names: string[], i: number): Promise<void> {
  const d = await fidFor(c, names);
  if (d === null) return;
  const n = `${TOKEN}-${i}`;
  await quiet(c.mkdir(d, `d-${n}`, 0o755));
  await quiet(c.symlink(d, `s-${n}`, '/etc/passwd'));
  await quiet(c.mknod(d, `p-${n}`, S_IFIFO | 0o644, 0, 0));
  const cf = c.allocFid();
  if ((await quiet(c.walk(d, cf, []))) === 0) {
    if ((await quiet(c.lcreate(cf, `c-${n}`, O_RDWR, S_IFREG | 0o644))) === 0) await quiet(c.write(cf, 0, enc.encode('x')));
    await quiet(c.clunk(cf));
  } else c.releaseFid(cf);
  await quiet(c.renameat(d, 'file', ROOT, `mv-${n}`));
  await quiet(c.renameat(ROOT, `mv-${n}`, d, 'file'));
  await quiet(c.renameat(d, 'canary', ROOT, `mv2-${n}`));
  await quiet(c.unlinkat(d, 'canary', 0));
  await quiet(c.unlinkat(d, 'inner', 0));
  await quiet(c.unlinkat(d, 'dir', 0x200));
  const r = c.allocFid();
  if ((await quiet(c.walk(d, r, []))) === 0) {
    if ((await quiet(c.lopen(r, O_RDONLY | O_DIRECTORY))) === 0) await quiet(c.readdir(r, 0, 4096));
    await quiet(c.clunk(r));
  } else c.releaseFid(r);
  await quiet(c.statfs(d));
  await quiet(c.clunk(d));
}

async function staticAttacks(ctx: Ctx): Promise<string[]> {
  const c = ctx.client;
  const notes: string[] = [];
  // walking through symlinks never works: a symlink is a leaf
  for (const names of [['rootlink', 'etc', 'passwd'], ['uplink', 'outside', 'canary'], ['chain', 'passwd'],
    ['abslink', 'canary'], ['..', '..', 'outside', 'canary'], ['..', '..', '..', 'etc', 'passwd'], ['sub', '..', '..', 'outside', 'canary']]) {
    const f = await fidFor(c, names);
    if (f !== null) { notes.push(`walk ${names.join('/')} succeeded`); await quiet(c.clunk(f)); }
  }
  // the symlinks themselves: open, setattr, xattrs, links, renames
  for (const l of ['rootlink', 'uplink', 'chain', 'abslink', 'relcanary', 'abscanary']) await abuseFile(c, [l], 0);
  for (const l of ['rootlink', 'uplink', 'abslink']) await abuseDir(c, [l], 0);
  // guest-made symlinks to outside and ".." names
  const r = await fidFor(c, []);
  if (r !== null) {
    await quiet(c.symlink(r, `g-${TOKEN}`, '../outside'));
    await quiet(c.symlink(r, `ga-${TOKEN}`, path.join(top)));
    for (const bad of ['..', '.', '../x', 'a/b', '']) {
      await quiet(c.mkdir(r, bad, 0o755));
      await quiet(c.renameat(r, 'sub', r, bad));
      await quiet(c.renameat(r, bad, r, `r-${TOKEN}`));
      await quiet(c.unlinkat(r, bad, 0x200));
      const cf = c.allocFid();
      if ((await quiet(c.walk(r, cf, []))) === 0) { await quiet(c.lcreate(cf, bad, O_RDWR, S_IFREG | 0o644)); await quiet(c.clunk(cf)); }
      else c.releaseFid(cf);
    }
    await quiet(c.clunk(r));
  }
  for (const l of [`g-${TOKEN}`, `ga-${TOKEN}`]) { await abuseFile(c, [l], 1); await abuseDir(c, [l], 1); }
  // rename the root / things across the root
  const rootFid = await fidFor(c, []);
  const sub = await fidFor(c, ['sub']);
  if (rootFid !== null && sub !== null) {
    await quiet(c.rename(rootFid, sub, `root-${TOKEN}`));
    await quiet(c.rename(sub, rootFid, '..'));
    await quiet(c.renameat(rootFid, '..', sub, `x-${TOKEN}`));
  }
  if (rootFid !== null) await quiet(c.clunk(rootFid));
  if (sub !== null) await quiet(c.clunk(sub));
  // Tattach with an aname outside / through a symlink
  for (const aname of ['/', '/etc', '..', '../outside', 'abslink', 'uplink/etc']) {
    const f = c.allocFid();
    if ((await quiet(c.attach(f, P9_NOFID, 'root', aname, 0))) === 0) {
      const q = await quiet(c.walk(f, c.allocFid(), ['canary']));
      if (q === 0) notes.push(`attach ${aname} reached a canary`);
      await quiet(c.clunk(f));
    } else c.releaseFid(f);
  }
  return notes;
}

/** A host process that swaps export/sub for a symlink to the outside dir, in a tight loop. */
function swapper(w: World, ms: number): ChildProcess {
  const script = `
    const fs = require('fs'); const path = require('path');
    const [exp, out, ms, stop] = process.argv.slice(-4);
    const sub = path.join(exp, 'sub'), real = path.join(exp, 'sub.real'), tmp = path.join(exp, 'sub.lnk');
    const end = Date.now() + Number(ms); let n = 0;
    while (Date.now() < end && !fs.existsSync(stop)) {
      try { fs.symlinkSync(out, tmp); fs.renameSync(sub, real); fs.renameSync(tmp, sub); } catch {}
      for (let i = 0; i < 200; i++);
      try { fs.renameSync(sub, tmp); fs.renameSync(real, sub); fs.unlinkSync(tmp); } catch {}
      n++;
    }
    try { if (fs.lstatSync(sub).isSymbolicLink()) { fs.unlinkSync(sub); } } catch {}
    try { fs.renameSync(real, sub); } catch {}
    try { fs.unlinkSync(tmp); } catch {}
    process.stdout.write(String(n));
  `;
  return spawn(process.execPath, ['-e', script, w.exp, w.out, String(ms), path.join(w.base, 'stop')], { stdio: ['ignore', 'pipe', 'inherit'] });
}

async function raceAttacks(ctx: Ctx, w: World): Promise<number> {
  const c = ctx.client;
  const sw = swapper(w, 60000);
  let swaps = '';
  sw.stdout!.on('data', (d) => { swaps += d; });
  const done = new Promise<void>((r) => sw.once('exit', () => r()));
  try {
    for (let i = 0; i < RACE_ITERATIONS; i++) {
      // walk first, use later: the directory may be a symlink by then
      const held = await fidFor(c, ['sub', 'file']);
      const heldDir = await fidFor(c, ['sub', 'dir']);
      await abuseFile(c, ['sub', 'file'], i);
      await abuseFile(c, ['sub', 'canary'], i);
      await abuseFile(c, ['sub', 'dir', 'inner'], i);
      await abuseDir(c, ['sub'], i);
      await abuseDir(c, ['sub', 'dir'], i);
      if (held !== null) {
        if ((await quiet(c.lopen(held, O_WRONLY | O_TRUNC))) === 0) await quiet(c.write(held, 0, enc.encode('PWNED\n')));
        await quiet(c.setattr(held, { valid: 0x1, mode: 0o777 }));
        const r = await fidFor(c, []);
        if (r !== null) { await quiet(c.link(r, held, `hl2-${TOKEN}-${i}`)); await quiet(c.rename(held, r, `mvh-${TOKEN}-${i}`)); await quiet(c.clunk(r)); }
        await quiet(c.clunk(held));
      }
      if (heldDir !== null) {
        await quiet(c.mkdir(heldDir, `hd-${TOKEN}-${i}`, 0o755));
        await quiet(c.unlinkat(heldDir, 'inner', 0));
        await quiet(c.clunk(heldDir));
      }
    }
  } finally {
    fs.writeFileSync(path.join(w.base, 'stop'), '');
    await done;
    fs.rmSync(path.join(w.base, 'stop'));
  }
  return Number(swaps || '0');
}

// ---- targets ------------------------------------------------------------------------------------

type Make = (w: World) => Promise<{ backend: Backend; close: () => Promise<void> }>;
const targets: [string, Make | null][] = [
  ['local backend', async (w) => {
    const b = new LocalBackend({ root: w.exp });
    return { backend: b, close: async () => b.destroy() };
  }],
  ['proxy backend → virtio9p helper', async (w) => {
    const b = await ProxyBackend.launch({ export: w.exp, helper: OUR_HELPER }, { connections: 2 });
    return { backend: b, close: () => b.destroy() };
  }],
  ['proxy backend → QEMU virtfs-proxy-helper', fs.existsSync(QEMU_HELPER) && process.getuid?.() === 0 ? async (w) => {
    const b = await ProxyBackend.launch({ export: w.exp }, { connections: 2 });
    return { backend: b, close: () => b.destroy() };
  } : null],
];

describe.each(targets)('escape suite: %s', (name, make) => {
  const t = make === null ? test.skip : test;
  t('static attacks (symlinks to /, ../.. chains, absolute targets, ".." names, renames across the root) find nothing outside', async () => {
    const w = makeWorld(`${name.replace(/\W+/g, '_')}-static`);
    const before = fingerprint(w);
    const { backend, close } = await make!(w);
    let notes: string[];
    try {
      const ctx = await boot(backend);
      notes = await staticAttacks(ctx);
    } finally { await close(); }
    expect(notes).toEqual([]);
    expect(fingerprint(w)).toBe(before);
    expect(strays(w)).toEqual([]);
  }, 120000);

  t(`a directory swapped for a symlink by a host process during ${RACE_ITERATIONS} rounds of walk-then-use finds nothing outside`, async () => {
    const w = makeWorld(`${name.replace(/\W+/g, '_')}-race`);
    const before = fingerprint(w);
    const { backend, close } = await make!(w);
    let swaps = 0;
    try {
      const ctx = await boot(backend);
      swaps = await raceAttacks(ctx, w);
    } finally { await close(); }
    expect(swaps).toBeGreaterThan(10); // the race really ran
    expect(fingerprint(w)).toBe(before);
    expect(strays(w)).toEqual([]);
  }, 300000);
});
