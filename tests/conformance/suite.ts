/**
 * A backend-independent 9P2000.L conformance suite: the whole virtqueue path (SplitDriver →
 * Virtio9pDevice → wasm core → Backend), asserting exact values and errnos from
 * /work/shared/reference/9p-virtio-reference.md §1.4–1.7 and §3 (QEMU qtest / diod checklists).
 *
 * Every test gets a fresh backend from the factory and seeds it through 9P itself, so the same
 * suite runs against any Backend: `defineConformance('memory', async () => ({ backend }))`.
 */
import { describe, test, expect, beforeEach, afterEach } from '@jest/globals';
import type { Backend } from '../../src/backends/backend.js';
import { MSG, P9_NOFID, P9_NOTAG, P9_RLERROR, P9_GETATTR_BASIC, parseDirents, text, type Qid } from '../../src/testing/p9/codec.js';
import { P9FlushedError } from '../../src/testing/p9/client.js';
import {
  boot, errnoOf, walkTo, openPath, mkdirs, mkfile, mksymlink, readPath, exists, rawMsg, le16, le32, le64,
  bytes, str, tick, DeferredBackend, type Ctx,
  ROOT, EPERM, ENOENT, E2BIG, EBADF, EEXIST, ENOTDIR, EISDIR, EINVAL, ENOTEMPTY, ENODATA, EMSGSIZE, EOPNOTSUPP, ENXIO,
  O_RDONLY, O_WRONLY, O_RDWR, O_EXCL, O_TRUNC, O_APPEND,
  S_IFMT, S_IFLNK, S_IFREG, S_IFDIR, S_IFCHR, S_IFIFO, S_IFBLK, S_IFSOCK, QTDIR, QTSYMLINK, QTFILE, DT_DIR, DT_REG, DT_LNK,
  AT_REMOVEDIR, XATTR_CREATE, XATTR_REPLACE, RDLCK, WRLCK, UNLCK, LOCK_SUCCESS, LOCK_BLOCKED,
  A_MODE, A_UID, A_GID, A_SIZE, A_ATIME, A_MTIME, A_ATIME_SET, A_MTIME_SET, V9FS_MAGIC,
} from './util.js';

export type BackendFactory = () => Promise<{ backend: Backend; cleanup?: () => Promise<void> }>;

const GiB = 2 ** 30;

/** What a backend declares about itself where the protocol leaves room. */
export interface BackendTraits {
  /** the largest xattr value it stores (default 65536, XATTR_SIZE_MAX). QEMU's proxy protocol
   *  carries at most 65535 bytes and ext4 keeps user xattrs in one 4 KiB block. */
  maxXattr?: number;
  /** run every test over this transport (default: direct calls on the device); v86: our device
   *  on a v86 PCI bus, through v86's ports and guest RAM (src/adapters/v86-pci.ts) */
  transport?: 'direct' | 'mmio' | 'pci' | 'v86';
  /** run every test on this ring layout (default split) */
  ring?: 'split' | 'packed';
  /** guest RAM: the device's own window (default) or a plain ArrayBuffer in copy mode */
  memory?: 'window' | 'copy';
  /** a mapped security model: objects stored as host files (files, symlinks, nodes) are listed
   *  by readdir as DT_UNKNOWN with a plain qid type, as QEMU's mapped models do; the guest asks */
  mappedTypes?: boolean;
}

export function defineConformance(name: string, makeBackend: BackendFactory, traits: BackendTraits = {}): void {
  const maxXattr = traits.maxXattr ?? 65536;
  /** the readdir type of an object that a mapped model stores as a host file */
  const dt = (t: number): number => (traits.mappedTypes ? 0 : t);
  describe(`9P2000.L conformance: ${name}`, () => {
    let cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      const cs = cleanups;
      cleanups = [];
      for (const c of cs.reverse()) await c();
    });

    /** A fresh backend (cleaned up after the test). */
    async function fresh(): Promise<Backend> {
      const { backend, cleanup } = await makeBackend();
      if (cleanup) cleanups.push(cleanup);
      return backend;
    }
    /** A fresh backend booted and mounted (Tversion 512000 + Tattach fid 0). */
    async function mount(opts: { msize?: number; mount?: boolean } = {}): Promise<Ctx> {
      return boot(await fresh(), { transport: traits.transport, ring: traits.ring, memory: traits.memory, ...opts });
    }

    // ───────────────────────────────────────────────────────────── Tversion

    describe('Tversion', () => {
      test('msize = min(client, server): 512000 → 512000, 8 MiB → 4 MiB; version echoed', async () => {
        const { client } = await mount({ mount: false });
        expect(await client.version(512000)).toEqual({ msize: 512000, version: '9P2000.L' });
        expect(await client.version(8 << 20)).toEqual({ msize: 4194304, version: '9P2000.L' });
        expect(await client.version(4096)).toEqual({ msize: 4096, version: '9P2000.L' });
      });

      test('msize < 4096 → Rlerror EMSGSIZE', async () => {
        const { client } = await mount({ mount: false });
        expect(await errnoOf(client.version(4095))).toBe(EMSGSIZE);
        expect(await errnoOf(client.version(0))).toBe(EMSGSIZE);
        // the device keeps working
        expect((await client.version(512000)).msize).toBe(512000);
      });

      test('unknown dialects ("9P2000.u", "foo", "9P2000") → Rversion "unknown"', async () => {
        const { client } = await mount({ mount: false });
        for (const v of ['9P2000.u', 'foo', '9P2000']) {
          const d = await client.raw(MSG.Tversion, [512000, v]);
          expect(d.type).toBe(MSG.Rversion);
          expect(d.tag).toBe(P9_NOTAG);
          expect(text(d.fields[1] as Uint8Array)).toBe('unknown');
        }
      });

      test('Tversion clunks every fid', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        const f = await openPath(client, 'f');
        const d = await walkTo(client, '');
        await client.version(512000);
        expect(await errnoOf(client.getattr(ROOT))).toBe(ENOENT);
        expect(await errnoOf(client.getattr(f))).toBe(ENOENT);
        expect(await errnoOf(client.getattr(d))).toBe(ENOENT);
        expect(await errnoOf(client.clunk(d))).toBe(ENOENT);
        // fid 0 is free again
        const q = await client.attach(ROOT, P9_NOFID, 'nobody', '', P9_NOFID);
        expect(q.type).toBe(QTDIR);
        expect(str(await readPath(client, 'f'))).toBe('x');
      });
    });

    // ───────────────────────────────────────────────────────────── Tauth / Tattach

    describe('Tauth / Tattach', () => {
      test('Tauth → Rlerror ENOENT', async () => {
        const { client } = await mount({ mount: false });
        await client.version(512000);
        expect(await errnoOf(client.auth(7, 'nobody', '', P9_NOFID))).toBe(ENOENT);
        // afid was not created
        expect(await errnoOf(client.getattr(7))).toBe(ENOENT);
      });

      test('two attaches in a row both work; root qid is QTDIR', async () => {
        const { client } = await mount({ mount: false });
        await client.version(512000);
        const q0 = await client.attach(0, P9_NOFID, 'nobody', '', 0xffffffff);
        const q1 = await client.attach(1, P9_NOFID, '', '', 0);
        expect(q0.type).toBe(QTDIR);
        expect(q1.type).toBe(QTDIR);
        expect(q1.path).toBe(q0.path);
        const a0 = await client.getattr(0);
        const a1 = await client.getattr(1);
        expect(a0.qid).toEqual(q0);
        expect(a1.qid).toEqual(q1);
        expect(a0.mode & S_IFMT).toBe(S_IFDIR);
      });

      test('Tattach on a fid in use → error (fid unchanged)', async () => {
        const { client } = await mount();
        await mkdirs(client, 'sub');
        const s = await walkTo(client, 'sub');
        const sq = (await client.getattr(s)).qid;
        expect(await errnoOf(client.attach(s, P9_NOFID, 'nobody', '', P9_NOFID))).toBeGreaterThan(0);
        expect(await errnoOf(client.attach(ROOT, P9_NOFID, 'nobody', '', P9_NOFID))).toBeGreaterThan(0);
        expect((await client.getattr(s)).qid).toEqual(sq);
      });
    });

    // ───────────────────────────────────────────────────────────── Twalk

    describe('Twalk', () => {
      test('nwname 0 clones: Rwalk with no qids, newfid is the same object', async () => {
        const { client } = await mount();
        const root = (await client.getattr(ROOT)).qid;
        const d = await client.raw(MSG.Twalk, [ROOT, 5, []]);
        expect(d.type).toBe(MSG.Rwalk);
        expect(d.fields[0]).toEqual([]);
        client.useFid(5);
        expect((await client.getattr(5)).qid).toEqual(root);
        // the clone is independent: clunking it leaves the original
        await client.clunk(5);
        expect((await client.getattr(ROOT)).qid).toEqual(root);
      });

      test('nwname 0 clones a file fid, a symlink fid and an unlinked file (Linux clones before open)', async () => {
        const { client } = await mount();
        await mkfile(client, 'f.txt', 'data');
        await mksymlink(client, 'ln', 'f.txt');
        for (const name of ['f.txt', 'ln']) {
          const f = await walkTo(client, name);
          const q = (await client.getattr(f)).qid;
          await client.walk(f, 9, []);
          expect((await client.getattr(9)).qid).toEqual(q);
          await client.clunk(9);
          await client.clunk(f);
        }
        const f = await walkTo(client, 'f.txt');
        await client.unlinkat(ROOT, 'f.txt');
        await client.walk(f, 9, []);
        expect(Number((await client.getattr(9)).nlink)).toBe(0);
      });

      test('1..16 names; 17 names → error and no newfid', async () => {
        const { client } = await mount();
        const names = Array.from({ length: 16 }, (_, i) => `d${i}`);
        await mkdirs(client, names.join('/'));
        for (const n of [1, 2, 8, 16]) {
          const qs = await client.walk(ROOT, 10 + n, names.slice(0, n));
          expect(qs).toHaveLength(n);
          for (const q of qs) expect(q.type).toBe(QTDIR);
          expect((await client.getattr(10 + n)).qid).toEqual(qs[n - 1]);
        }
        expect(new Set((await client.walk(ROOT, 40, names)).map((q) => q.path)).size).toBe(16);
        const e17 = await errnoOf(client.walk(ROOT, 41, [...names, '.']));
        expect(e17).toBeGreaterThan(0);
        expect(await errnoOf(client.getattr(41))).toBe(ENOENT);
        // 17 names from a fid where all 17 would exist
        const e17b = await errnoOf(client.walk(ROOT, 42, Array(17).fill('.')));
        expect(e17b).toBeGreaterThan(0);
        expect(await errnoOf(client.getattr(42))).toBe(ENOENT);
      });

      test('first name missing → Rlerror ENOENT, newfid not created', async () => {
        const { client } = await mount();
        const d = await client.raw(MSG.Twalk, [ROOT, 3, ['nope']]);
        expect(d.type).toBe(P9_RLERROR);
        expect(d.fields[0]).toBe(ENOENT);
        expect(await errnoOf(client.getattr(3))).toBe(ENOENT);
        expect(await errnoOf(client.clunk(3))).toBe(ENOENT);
      });

      test('second name missing → Rwalk with 1 qid, newfid not created', async () => {
        const { client } = await mount();
        await mkdirs(client, 'a');
        const root = (await client.getattr(ROOT)).qid;
        const d = await client.raw(MSG.Twalk, [ROOT, 3, ['a', 'nope']]);
        expect(d.type).toBe(MSG.Rwalk);
        const qs = d.fields[0] as Qid[];
        expect(qs).toHaveLength(1);
        expect(qs[0].type).toBe(QTDIR);
        expect(qs[0].path).not.toBe(root.path);
        expect(await errnoOf(client.getattr(3))).toBe(ENOENT);
        // a partial walk does not change an in-place fid either
        const a = await walkTo(client, '');
        const d2 = await client.raw(MSG.Twalk, [a, a, ['a', 'nope']]);
        expect(d2.type).toBe(MSG.Rwalk);
        expect((d2.fields[0] as Qid[]).length).toBe(1);
        expect((await client.getattr(a)).qid).toEqual(root);
      });

      test('"." and ".."; ".." at the root stays at the root', async () => {
        const { client } = await mount();
        await mkdirs(client, 'a/b');
        const root = (await client.getattr(ROOT)).qid;
        const [qa, qb] = await client.walk(ROOT, 1, ['a', 'b']);
        const dot = await client.walk(1, 2, ['.']);
        expect(dot[0].path).toBe(qb.path);
        const up = await client.walk(1, 3, ['..']);
        expect(up[0].path).toBe(qa.path);
        const up2 = await client.walk(1, 4, ['..', '..']);
        expect(up2[1].path).toBe(root.path);
        const rootUp = await client.walk(ROOT, 5, ['..']);
        expect(rootUp[0]).toEqual(root);
        const rootUp3 = await client.walk(ROOT, 6, ['..', '..', '..']);
        expect(rootUp3.map((q) => q.path)).toEqual([root.path, root.path, root.path]);
        expect((await client.getattr(6)).qid).toEqual(root);
        const mixed = await client.walk(ROOT, 7, ['a', '.', 'b', '..', 'b']);
        expect(mixed[4].path).toBe(qb.path);
      });

      test("names with '/' or empty → ENOENT", async () => {
        const { client } = await mount();
        await mkdirs(client, 'a/b');
        expect(await errnoOf(client.walk(ROOT, 1, [' /']))).toBe(ENOENT);
        expect(await errnoOf(client.walk(ROOT, 1, ['a/b']))).toBe(ENOENT);
        expect(await errnoOf(client.walk(ROOT, 1, ['']))).toBe(ENOENT);
        expect(await errnoOf(client.walk(ROOT, 1, ['/']))).toBe(ENOENT);
        expect(await errnoOf(client.getattr(1))).toBe(ENOENT);
        // a later bad element: QEMU checks every name first (Rlerror ENOENT); a partial Rwalk
        // with the good prefix is also acceptable; either way newfid is not created
        for (const bad of ['', 'x/y']) {
          const d = await client.raw(MSG.Twalk, [ROOT, 1, ['a', bad]]);
          if (d.type === P9_RLERROR) expect(d.fields[0]).toBe(ENOENT);
          else {
            expect(d.type).toBe(MSG.Rwalk);
            expect((d.fields[0] as Qid[]).length).toBe(1);
          }
          expect(await errnoOf(client.getattr(1))).toBe(ENOENT);
        }
      });

      test('newfid in use → error, newfid unchanged', async () => {
        const { client } = await mount();
        await mkdirs(client, 'a');
        await mkfile(client, 'f', 'x');
        const a = await walkTo(client, 'a');
        const qa = (await client.getattr(a)).qid;
        expect(await errnoOf(client.walk(ROOT, a, ['f']))).toBeGreaterThan(0);
        expect((await client.getattr(a)).qid).toEqual(qa);
      });

      test('walk from an open fid into a different newfid works; fid == newfid on an open fid → EINVAL', async () => {
        const { client } = await mount();
        await mkdirs(client, 'dir/sub');
        const root = (await client.getattr(ROOT)).qid;
        const d = await walkTo(client, 'dir');
        await client.lopen(d, O_RDONLY);
        const up = await client.walk(d, 20, ['..']);
        expect(up[0].path).toBe(root.path);
        const sub = await client.walk(d, 21, ['sub']);
        expect(sub[0].type).toBe(QTDIR);
        expect(await errnoOf(client.walk(d, d, ['sub']))).toBe(EINVAL);
        expect(await errnoOf(client.walk(d, d, []))).toBe(EINVAL);
        // the open fid is intact: still readable as a directory
        const ents = await client.readdirAll(d);
        expect(ents.map((e) => str(e.name)).sort()).toEqual(['.', '..', 'sub']);
        // in place on an unopened fid works
        const u = await walkTo(client, 'dir');
        const qs = await client.walk(u, u, ['sub']);
        expect((await client.getattr(u)).qid).toEqual(qs[0]);
      });

      test('qid types: dir 0x80, symlink 0x02, file 0', async () => {
        const { client } = await mount();
        await mkdirs(client, 'd');
        await mkfile(client, 'f', 'data');
        await mksymlink(client, 'l', 'f');
        expect((await client.walk(ROOT, 1, ['d']))[0].type).toBe(QTDIR);
        expect((await client.walk(ROOT, 2, ['l']))[0].type).toBe(QTSYMLINK);
        expect((await client.walk(ROOT, 3, ['f']))[0].type).toBe(QTFILE);
        expect((await client.getattr(1)).qid.type).toBe(QTDIR);
        expect((await client.getattr(2)).qid.type).toBe(QTSYMLINK);
        expect((await client.getattr(3)).qid.type).toBe(QTFILE);
        // walking through a file → ENOTDIR (first element ok, second fails → partial)
        const d = await client.raw(MSG.Twalk, [ROOT, 4, ['f', 'x']]);
        expect(d.type).toBe(MSG.Rwalk);
        expect((d.fields[0] as Qid[]).length).toBe(1);
        expect(await errnoOf(client.walk(3, 5, ['x']))).toBe(ENOTDIR);
      });

      test('walk from an unknown fid → ENOENT', async () => {
        const { client } = await mount();
        expect(await errnoOf(client.walk(99, 100, []))).toBe(ENOENT);
        expect(await errnoOf(client.walk(99, 100, ['x']))).toBe(ENOENT);
      });
    });

    // ───────────────────────────────────────────────────────────── Tlopen / Tread / Twrite

    describe('Tlopen / Tread / Twrite', () => {
      test('write then read back; read at and after EOF returns 0 bytes', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', '');
        const f = await openPath(client, 'f', O_RDWR);
        const open = await client.lopen(await walkTo(client, 'f'), O_RDONLY);
        expect(open.qid.type).toBe(QTFILE);
        expect(await client.write(f, 0, bytes('hello '))).toBe(6);
        expect(await client.write(f, 6, bytes('world'))).toBe(5);
        expect(str(await client.read(f, 0, 100))).toBe('hello world');
        expect(str(await client.read(f, 6, 3))).toBe('wor');
        expect((await client.read(f, 11, 100)).length).toBe(0);
        expect((await client.read(f, 12, 100)).length).toBe(0);
        expect((await client.read(f, 1n << 40n, 100)).length).toBe(0);
        // a write past EOF leaves a hole of zeros
        expect(await client.write(f, 20, bytes('!'))).toBe(1);
        expect(Array.from(await client.read(f, 9, 100))).toEqual([...bytes('ld'), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x21]);
        expect((await client.getattr(f)).size).toBe(21n);
        // large (zero-copy) write and read
        const big = new Uint8Array(300000).map((_, i) => (i * 7) & 0xff);
        expect(await client.write(f, 0, big)).toBe(big.length);
        expect(await client.readAll(f)).toEqual(big);
      });

      test('read count is clamped to msize − 11 (zero-copy and regular buffers)', async () => {
        const { client } = await mount();
        const data = new Uint8Array(700000).map((_, i) => (i * 13 + 5) & 0xff);
        await mkfile(client, 'big', data);
        const f = await openPath(client, 'big');
        const r = await client.read(f, 0, 1_000_000);
        expect(r.length).toBeGreaterThan(0);
        expect(r.length).toBeLessThanOrEqual(512000 - 11);
        expect(r).toEqual(data.subarray(0, r.length));
        // with a small msize and a non-zero-copy buffer of exactly msize
        await client.version(8192);
        await client.attach(ROOT, P9_NOFID, 'nobody', '', P9_NOFID);
        const g = await openPath(client, 'big');
        const d = await client.raw(MSG.Tread, [g, 100n, 100000], { replyCap: 8192 });
        expect(d.type).toBe(MSG.Rread);
        const got = d.fields[0] as Uint8Array;
        expect(got.length).toBeGreaterThan(0);
        expect(got.length).toBeLessThanOrEqual(8192 - 11);
        expect(got).toEqual(data.subarray(100, 100 + got.length));
      });

      test('64-bit offsets: write at 5 GiB and read it back; size = 5 GiB + len', async () => {
        const { client } = await mount();
        await mkfile(client, 'sparse', '');
        const f = await openPath(client, 'sparse', O_RDWR);
        const off = 5 * GiB;
        expect(await client.write(f, off, bytes('far away'))).toBe(8);
        expect(str(await client.read(f, off, 100))).toBe('far away');
        expect(str(await client.read(f, BigInt(off) + 4n, 100))).toBe('away');
        expect((await client.getattr(f)).size).toBe(BigInt(off) + 8n);
        expect(Array.from(await client.read(f, off - 4, 6))).toEqual([0, 0, 0, 0, 0x66, 0x61]);
        expect((await client.read(f, 1n * BigInt(GiB), 16)).every((b) => b === 0)).toBe(true);
      });

      test('Tlopen on an already-open fid → EINVAL', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        const f = await openPath(client, 'f');
        expect(await errnoOf(client.lopen(f, O_RDONLY))).toBe(EINVAL);
        const d = await openPath(client, '');
        expect(await errnoOf(client.lopen(d, O_RDONLY))).toBe(EINVAL);
        expect(str(await client.read(f, 0, 10))).toBe('x');
      });

      test('I/O on an unopened fid → EBADF', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'abc');
        const f = await walkTo(client, 'f');
        expect(await errnoOf(client.read(f, 0, 10))).toBe(EBADF);
        expect(await errnoOf(client.write(f, 0, bytes('z')))).toBe(EBADF);
        expect(await errnoOf(client.write(f, 0, new Uint8Array(4000)))).toBe(EBADF);
        expect(await errnoOf(client.read(f, 0, 5000))).toBe(EBADF);
        expect(str(await readPath(client, 'f'))).toBe('abc');
      });

      test('write on an O_RDONLY fid → EBADF; read on an O_WRONLY fid → EBADF', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'abc');
        const r = await openPath(client, 'f', O_RDONLY);
        expect(await errnoOf(client.write(r, 0, bytes('zz')))).toBe(EBADF);
        const w = await openPath(client, 'f', O_WRONLY);
        expect(await errnoOf(client.read(w, 0, 10))).toBe(EBADF);
        expect(await client.write(w, 0, bytes('X'))).toBe(1);
        expect(str(await client.read(r, 0, 10))).toBe('Xbc');
      });

      test('opening a directory for writing → EISDIR', async () => {
        const { client } = await mount();
        await mkdirs(client, 'd');
        expect(await errnoOf(client.lopen(await walkTo(client, 'd'), O_WRONLY))).toBe(EISDIR);
        expect(await errnoOf(client.lopen(await walkTo(client, 'd'), O_RDWR))).toBe(EISDIR);
      });

      test('O_TRUNC is honoured', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'some content');
        const f = await openPath(client, 'f', O_WRONLY | O_TRUNC);
        expect((await client.getattr(f)).size).toBe(0n);
        expect(await client.write(f, 0, bytes('new'))).toBe(3);
        expect(str(await readPath(client, 'f'))).toBe('new');
      });

      test('O_APPEND writes at the end whatever the offset', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'abc');
        const f = await openPath(client, 'f', O_WRONLY | O_APPEND);
        expect(await client.write(f, 0, bytes('def'))).toBe(3);
        expect(await client.write(f, 1, bytes('gh'))).toBe(2);
        expect(str(await readPath(client, 'f'))).toBe('abcdefgh');
        expect((await client.getattr(f)).size).toBe(8n);
      });

      test('Rlopen qid matches the object', async () => {
        const { client } = await mount();
        await mkdirs(client, 'd');
        const q = (await client.walk(ROOT, 1, ['d']))[0];
        const r = await client.lopen(1, O_RDONLY);
        expect(r.qid).toEqual(q);
        expect(await errnoOf(client.lopen(77, O_RDONLY))).toBeGreaterThan(0);
      });
    });

    // ───────────────────────────────────────────────────────────── Tlcreate

    describe('Tlcreate', () => {
      test('turns the fid into the open new file', async () => {
        const { client } = await mount();
        await mkdirs(client, 'dir');
        const fid = await walkTo(client, 'dir');
        const r = await client.lcreate(fid, 'new.txt', O_RDWR, S_IFREG | 0o2751, 0);
        expect(r.qid.type).toBe(QTFILE);
        expect(await client.write(fid, 0, bytes('through the fid'))).toBe(15);
        expect(str(await client.read(fid, 0, 100))).toBe('through the fid');
        const a = await client.getattr(fid);
        expect(a.mode).toBe(S_IFREG | 0o2751);
        expect(a.qid).toEqual(r.qid);
        expect(a.size).toBe(15n);
        // the directory is no longer reachable through that fid
        expect(await errnoOf(client.walk(fid, 50, ['new.txt']))).toBeGreaterThan(0);
        expect(await errnoOf(client.readdir(fid, 0, 4096))).toBeGreaterThan(0);
        expect(await errnoOf(client.lcreate(fid, 'other', O_RDWR, 0o644, 0))).toBeGreaterThan(0);
        // and the file is in the directory
        const w = await client.walk(ROOT, 51, ['dir', 'new.txt']);
        expect(w[1]).toEqual(r.qid);
        expect(str(await readPath(client, 'dir/new.txt'))).toBe('through the fid');
      });

      test('mode is masked with 0o7777 and S_IFREG is forced', async () => {
        const { client } = await mount();
        const fid = await walkTo(client, '');
        await client.lcreate(fid, 'm', O_WRONLY, 0o640, 0);
        expect((await client.getattr(fid)).mode).toBe(S_IFREG | 0o640);
        const fid2 = await walkTo(client, '');
        await client.lcreate(fid2, 'm2', O_WRONLY, S_IFREG | 0o604, 0);
        expect((await client.getattr(fid2)).mode).toBe(S_IFREG | 0o604);
      });

      test('EXCL on an existing name → EEXIST; the fid stays the unopened directory', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'keep');
        const root = (await client.getattr(ROOT)).qid;
        const fid = await walkTo(client, '');
        expect(await errnoOf(client.lcreate(fid, 'f', O_RDWR | O_EXCL, 0o644, 0))).toBe(EEXIST);
        expect((await client.getattr(fid)).qid).toEqual(root);
        expect(str(await readPath(client, 'f'))).toBe('keep');
        // still usable as an unopened directory fid
        const r = await client.lcreate(fid, 'g', O_RDWR | O_EXCL, 0o644, 0);
        expect(r.qid.type).toBe(QTFILE);
      });

      test('names: "." and ".." → EEXIST; empty or with \'/\' → ENOENT', async () => {
        const { client } = await mount();
        await mkdirs(client, 'a');
        const fid = await walkTo(client, 'a');
        expect(await errnoOf(client.lcreate(fid, '.', O_RDWR, 0o644, 0))).toBe(EEXIST);
        expect(await errnoOf(client.lcreate(fid, '..', O_RDWR, 0o644, 0))).toBe(EEXIST);
        expect(await errnoOf(client.lcreate(fid, '', O_RDWR, 0o644, 0))).toBe(ENOENT);
        expect(await errnoOf(client.lcreate(fid, 'x/y', O_RDWR, 0o644, 0))).toBe(ENOENT);
        expect(await errnoOf(client.lcreate(fid, '/', O_RDWR, 0o644, 0))).toBe(ENOENT);
        const ents = await client.readdirAll(await openPath(client, 'a'));
        expect(ents.map((e) => str(e.name)).sort()).toEqual(['.', '..']);
      });

      test('Tlcreate on a file fid → ENOTDIR', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        const f = await walkTo(client, 'f');
        expect(await errnoOf(client.lcreate(f, 'g', O_RDWR, 0o644, 0))).toBe(ENOTDIR);
        expect(await exists(client, 'g')).toBe(false);
      });

      test('Tlcreate on an opened directory fid → error', async () => {
        const { client } = await mount();
        const d = await openPath(client, '');
        expect(await errnoOf(client.lcreate(d, 'g', O_RDWR, 0o644, 0))).toBeGreaterThan(0);
      });

      test('owner comes from the attach n_uname, gid from the request', async () => {
        const { client } = await mount();
        await client.attach(1, P9_NOFID, '', '', 1000);
        const fid = await walkTo(client, '', 1);
        await client.lcreate(fid, 'owned', O_RDWR, 0o644, 100);
        const a = await client.getattr(fid);
        expect(a.uid).toBe(1000);
        expect(a.gid).toBe(100);
        const dq = await client.mkdir(1, 'odir', S_IFDIR | 0o755, 101);
        const d = await client.walk(ROOT, 60, ['odir']);
        expect(d[0]).toEqual(dq);
        const da = await client.getattr(60);
        expect(da.uid).toBe(1000);
        expect(da.gid).toBe(101);
      });
    });

    // ───────────────────────────────────────────────────────────── Treaddir

    describe('Treaddir', () => {
      test('"." and ".." included; qids and DT types right', async () => {
        const { client } = await mount();
        await mkdirs(client, 'top/sub');
        await mkfile(client, 'top/file', 'x');
        await mksymlink(client, 'top/link', 'file');
        const topQ = (await client.walk(ROOT, 30, ['top']))[0];
        const rootQ = (await client.getattr(ROOT)).qid;
        const subQ = (await client.walk(ROOT, 31, ['top', 'sub']))[1];
        const fileQ = (await client.walk(ROOT, 32, ['top', 'file']))[1];
        const linkQ = (await client.walk(ROOT, 33, ['top', 'link']))[1];
        const d = await openPath(client, 'top');
        const ents = await client.readdirAll(d);
        const by = new Map(ents.map((e) => [str(e.name), e]));
        expect([...by.keys()].sort()).toEqual(['.', '..', 'file', 'link', 'sub']);
        expect(ents).toHaveLength(5);
        expect(by.get('.')!.type).toBe(DT_DIR);
        expect(by.get('.')!.qid.path).toBe(topQ.path);
        expect(by.get('..')!.type).toBe(DT_DIR);
        expect(by.get('..')!.qid.path).toBe(rootQ.path);
        expect(by.get('sub')!.type).toBe(DT_DIR);
        expect(by.get('sub')!.qid.path).toBe(subQ.path);
        expect(by.get('sub')!.qid.type).toBe(QTDIR);
        expect(by.get('file')!.type).toBe(dt(DT_REG));
        expect(by.get('file')!.qid.path).toBe(fileQ.path);
        expect(by.get('file')!.qid.type).toBe(QTFILE);
        expect(by.get('link')!.type).toBe(dt(DT_LNK));
        expect(by.get('link')!.qid.path).toBe(linkQ.path);
        expect(by.get('link')!.qid.type).toBe(traits.mappedTypes ? QTFILE : QTSYMLINK);
        // offsets: never 0, all distinct
        const offs = ents.map((e) => e.offset);
        expect(offs.every((o) => o !== 0n)).toBe(true);
        expect(new Set(offs).size).toBe(offs.length);
        // ".." of the root is the root
        const rents = await client.readdirAll(await openPath(client, ''));
        const rdd = rents.find((e) => str(e.name) === '..')!;
        expect(rdd.qid.path).toBe(rootQ.path);
        expect(rdd.type).toBe(DT_DIR);
      });

      test('small counts: only whole entries, all 202 names once, count 0 at the end', async () => {
        const { client } = await mount();
        await mkdirs(client, 'big');
        for (let i = 0; i < 200; i++) await mkfile(client, `big/entry-${String(i).padStart(3, '0')}`, '');
        const d = await openPath(client, 'big');
        for (const count of [512, 256, 128, 40]) {
          const seen: string[] = [];
          let off = 0n;
          for (let calls = 0; ; calls++) {
            expect(calls).toBeLessThan(1000);
            const raw = await client.readdirRaw(d, off, count);
            expect(raw.length).toBeLessThanOrEqual(count);
            if (raw.length === 0) break;
            const ents = parseDirents(raw); // strict: throws on a partial entry
            expect(ents.length).toBeGreaterThan(0);
            for (const e of ents) seen.push(str(e.name));
            off = ents[ents.length - 1].offset;
          }
          expect(seen).toHaveLength(202);
          expect(new Set(seen).size).toBe(202);
          expect(seen).toContain('.');
          expect(seen).toContain('..');
          // count 0 again at the same (end) offset
          expect((await client.readdirRaw(d, off, count)).length).toBe(0);
        }
        // a count too small for the next entry: the only possible reply is empty
        expect((await client.readdirRaw(d, 0, 10)).length).toBe(0);
      });

      test('cookies survive unlinking the entries already read (rm -rf pattern)', async () => {
        const { client } = await mount();
        await mkdirs(client, 'victim');
        const names = new Set<string>();
        for (let i = 0; i < 200; i++) {
          const n = `f${i}`;
          names.add(n);
          await mkfile(client, `victim/${n}`, 'x');
        }
        const d = await openPath(client, 'victim');
        const dir = await walkTo(client, 'victim');
        const seen = new Map<string, number>();
        let off = 0n;
        for (let calls = 0; ; calls++) {
          expect(calls).toBeLessThan(1000);
          const ents = await client.readdir(d, off, 200);
          if (ents.length === 0) break;
          for (const e of ents) {
            const n = str(e.name);
            seen.set(n, (seen.get(n) ?? 0) + 1);
            if (n !== '.' && n !== '..') await client.unlinkat(dir, n, 0);
          }
          off = ents[ents.length - 1].offset;
        }
        for (const n of names) expect([n, seen.get(n)]).toEqual([n, 1]);
        expect(seen.get('.')).toBe(1);
        expect(seen.get('..')).toBe(1);
        expect(seen.size).toBe(202);
        expect(await client.readdir(d, 0, 4096).then((e) => e.map((x) => str(x.name)).sort())).toEqual(['.', '..']);
        expect(await errnoOf(client.unlinkat(ROOT, 'victim', AT_REMOVEDIR))).toBe(0);
      });

      test('entries created during the listing do not disturb resumption', async () => {
        const { client } = await mount();
        await mkdirs(client, 'd');
        for (let i = 0; i < 20; i++) await mkfile(client, `d/a${i}`, '');
        const d = await openPath(client, 'd');
        const seen: string[] = [];
        let off = 0n;
        for (let round = 0; ; round++) {
          const ents = await client.readdir(d, off, 100);
          if (ents.length === 0) break;
          seen.push(...ents.map((e) => str(e.name)));
          off = ents[ents.length - 1].offset;
          if (round < 3) await mkfile(client, `d/new${round}`, '');
        }
        for (let i = 0; i < 20; i++) expect(seen.filter((n) => n === `a${i}`)).toHaveLength(1);
        expect(new Set(seen).size).toBe(seen.length);
      });

      test('Treaddir count is clamped to msize − 11', async () => {
        const { client } = await mount({ msize: 8192 });
        await mkdirs(client, 'many');
        for (let i = 0; i < 400; i++) await mkfile(client, `many/name-${String(i).padStart(4, '0')}`, '');
        const d = await openPath(client, 'many');
        const r = await client.raw(MSG.Treaddir, [d, 0n, 1_000_000], { replyCap: 8192 });
        expect(r.type).toBe(MSG.Rreaddir);
        const data = r.fields[0] as Uint8Array;
        expect(data.length).toBeGreaterThan(0);
        expect(data.length).toBeLessThanOrEqual(8192 - 11);
        expect(parseDirents(data).length).toBeGreaterThan(100);
        expect(await client.readdirAll(d, 100000)).toHaveLength(402);
      });

      test('Treaddir on an unopened fid or a file → error', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        expect(await errnoOf(client.readdir(await walkTo(client, ''), 0, 4096))).toBeGreaterThan(0);
        expect(await errnoOf(client.readdir(await openPath(client, 'f'), 0, 4096))).toBeGreaterThan(0);
      });
    });

    // ───────────────────────────────────────────────────────────── Tgetattr

    describe('Tgetattr', () => {
      test('valid ⊇ BASIC; mode with S_IFMT, nlink, size, uid/gid', async () => {
        const { client } = await mount();
        await mkdirs(client, 'd/e');
        await mkfile(client, 'f', '12345', 0o640);
        await mksymlink(client, 'l', 'target!');
        const r = await client.getattr(ROOT);
        expect(r.valid & P9_GETATTR_BASIC).toBe(P9_GETATTR_BASIC);
        expect(r.mode & S_IFMT).toBe(S_IFDIR);
        const f = await walkTo(client, 'f');
        const a = await client.getattr(f);
        expect(a.valid & 0x7ffn).toBe(0x7ffn);
        expect(a.mode).toBe(S_IFREG | 0o640);
        expect(a.nlink).toBe(1n);
        expect(a.size).toBe(5n);
        expect(a.qid.type).toBe(QTFILE);
        expect(a.blksize).toBeGreaterThan(0n);
        const d = await client.getattr(await walkTo(client, 'd'));
        expect(d.mode & S_IFMT).toBe(S_IFDIR);
        expect(d.nlink).toBe(3n); // ".", the entry in the parent, "e/.."
        const l = await client.getattr(await walkTo(client, 'l'));
        expect(l.mode & S_IFMT).toBe(S_IFLNK);
        expect(l.size).toBe(7n);
        // uid/gid read back after a setattr
        await client.setattr(f, { valid: A_UID | A_GID, uid: 4242, gid: 4343 });
        const b = await client.getattr(f);
        expect(b.uid).toBe(4242);
        expect(b.gid).toBe(4343);
        // the full mask answers at least BASIC too
        expect((await client.getattr(f, 0x3fffn)).valid & 0x7ffn).toBe(0x7ffn);
      });

      test('qid.path unique per file, equal for hard links (Tlink)', async () => {
        const { client } = await mount();
        await mkdirs(client, 'd');
        for (const n of ['a', 'b', 'c', 'd/a']) await mkfile(client, n, n);
        const paths = new Set<bigint>();
        for (const n of ['', 'a', 'b', 'c', 'd', 'd/a']) paths.add((await client.getattr(await walkTo(client, n))).qid.path);
        expect(paths.size).toBe(6);
        const a = await walkTo(client, 'a');
        const d = await walkTo(client, 'd');
        await client.link(d, a, 'hard');
        const h = await client.getattr(await walkTo(client, 'd/hard'));
        const aa = await client.getattr(a);
        expect(h.qid.path).toBe(aa.qid.path);
        expect(h.nlink).toBe(2n);
        expect(aa.nlink).toBe(2n);
        expect(str(await readPath(client, 'd/hard'))).toBe('a');
      });

      test('works on a fid whose file was unlinked (nlink 0); data readable and writable via an open fid', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'still here');
        const open = await openPath(client, 'f', O_RDWR);
        const plain = await walkTo(client, 'f');
        const q = (await client.getattr(plain)).qid;
        await client.unlinkat(ROOT, 'f', 0);
        expect(await exists(client, 'f')).toBe(false);
        const a = await client.getattr(plain);
        expect(a.nlink).toBe(0n);
        expect(a.qid.path).toBe(q.path);
        expect((await client.getattr(open)).nlink).toBe(0n);
        expect(str(await client.read(open, 0, 100))).toBe('still here');
        expect(await client.write(open, 0, bytes('STILL'))).toBe(5);
        expect(str(await client.read(open, 0, 100))).toBe('STILL here');
        // qtest local/use_after_unlink: Tsetattr(SIZE = 2001) works and reads back
        await client.setattr(open, { valid: A_SIZE, size: 2001 });
        expect((await client.getattr(open)).size).toBe(2001n);
        await client.setattr(plain, { valid: A_MODE, mode: 0o444 });
        expect((await client.getattr(open)).mode).toBe(S_IFREG | 0o444);
      });

      test('open-unlink-recreate: the old fid keeps the old file (diod bug-open-move-setattr)', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'old');
        const old = await openPath(client, 'f', O_RDONLY);
        await client.unlinkat(ROOT, 'f', 0);
        await mkfile(client, 'f', 'new content', 0o644);
        await client.setattr(old, { valid: A_MODE, mode: 0o444 });
        expect((await client.getattr(old)).mode).toBe(S_IFREG | 0o444);
        expect(str(await client.read(old, 0, 100))).toBe('old');
        const n = await client.getattr(await walkTo(client, 'f'));
        expect(n.mode).toBe(S_IFREG | 0o644);
        expect(n.size).toBe(11n);
      });

      test('Tgetattr on an unknown fid → ENOENT', async () => {
        const { client } = await mount();
        expect(await errnoOf(client.getattr(1234))).toBe(ENOENT);
      });
    });

    // ───────────────────────────────────────────────────────────── Tsetattr

    describe('Tsetattr', () => {
      test('mode, uid/gid', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        const f = await walkTo(client, 'f');
        await client.setattr(f, { valid: A_MODE, mode: 0o4711 });
        expect((await client.getattr(f)).mode).toBe(S_IFREG | 0o4711);
        await client.setattr(f, { valid: A_UID, uid: 1001 });
        await client.setattr(f, { valid: A_GID, gid: 2002 });
        const a = await client.getattr(f);
        expect([a.uid, a.gid, a.mode]).toEqual([1001, 2002, S_IFREG | 0o4711]);
        await mkdirs(client, 'd');
        const d = await walkTo(client, 'd');
        await client.setattr(d, { valid: A_MODE | A_UID | A_GID, mode: 0o700, uid: 7, gid: 8 });
        const da = await client.getattr(d);
        expect([da.mode, da.uid, da.gid]).toEqual([S_IFDIR | 0o700, 7, 8]);
      });

      test('size truncates and extends (zeros)', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'abcdefghij');
        const f = await walkTo(client, 'f');
        await client.setattr(f, { valid: A_SIZE, size: 3 });
        expect((await client.getattr(f)).size).toBe(3n);
        expect(str(await readPath(client, 'f'))).toBe('abc');
        await client.setattr(f, { valid: A_SIZE, size: 10 });
        expect((await client.getattr(f)).size).toBe(10n);
        expect(Array.from(await readPath(client, 'f'))).toEqual([0x61, 0x62, 0x63, 0, 0, 0, 0, 0, 0, 0]);
        await client.setattr(f, { valid: A_SIZE, size: 0 });
        expect((await readPath(client, 'f')).length).toBe(0);
        await client.setattr(f, { valid: A_SIZE, size: 3 * GiB });
        expect((await client.getattr(f)).size).toBe(BigInt(3 * GiB));
        // truncating a directory is an error
        expect(await errnoOf(client.setattr(ROOT, { valid: A_SIZE, size: 0 }))).toBeGreaterThan(0);
      });

      test('atime/mtime with *_SET: explicit values read back exactly', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        const f = await walkTo(client, 'f');
        await client.setattr(f, {
          valid: A_ATIME | A_ATIME_SET | A_MTIME | A_MTIME_SET,
          atime_sec: 1000000000, atime_nsec: 123456789, mtime_sec: 1234567890, mtime_nsec: 987654321,
        });
        const a = await client.getattr(f);
        expect([a.atime_sec, a.atime_nsec]).toEqual([1000000000n, 123456789n]);
        expect([a.mtime_sec, a.mtime_nsec]).toEqual([1234567890n, 987654321n]);
        // only mtime: atime untouched
        await client.setattr(f, { valid: A_MTIME | A_MTIME_SET, mtime_sec: 42, mtime_nsec: 7 });
        const b = await client.getattr(f);
        expect([b.atime_sec, b.atime_nsec]).toEqual([1000000000n, 123456789n]);
        expect([b.mtime_sec, b.mtime_nsec]).toEqual([42n, 7n]);
      });

      test('a nanosecond field of 10^9 or more with *_SET → EINVAL, nothing changed (as utimensat)', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        const f = await walkTo(client, 'f');
        await client.setattr(f, { valid: A_MTIME | A_MTIME_SET, mtime_sec: 42, mtime_nsec: 7 });
        expect(await errnoOf(client.setattr(f, { valid: A_MTIME | A_MTIME_SET, mtime_sec: 43, mtime_nsec: 1000000000 }))).toBe(EINVAL);
        expect(await errnoOf(client.setattr(f, { valid: A_ATIME | A_ATIME_SET, atime_sec: 1, atime_nsec: 2 ** 40 }))).toBe(EINVAL);
        const a = await client.getattr(f);
        expect([a.mtime_sec, a.mtime_nsec]).toEqual([42n, 7n]);
        // without *_SET the sent values are not used, so they are not checked either
        await client.setattr(f, { valid: A_MTIME, mtime_sec: 0, mtime_nsec: 2 ** 40 });
      });

      test('ATIME / MTIME without *_SET = server time now (sent values ignored)', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        const f = await walkTo(client, 'f');
        await client.setattr(f, {
          valid: A_ATIME | A_ATIME_SET | A_MTIME | A_MTIME_SET, atime_sec: 5, atime_nsec: 5, mtime_sec: 5, mtime_nsec: 5,
        });
        const t0 = BigInt(Math.floor(Date.now() / 1000));
        await client.setattr(f, { valid: A_ATIME, atime_sec: 77, atime_nsec: 77 });
        const t1 = BigInt(Math.ceil(Date.now() / 1000));
        const a = await client.getattr(f);
        expect(a.atime_sec).toBeGreaterThanOrEqual(t0 - 1n);
        expect(a.atime_sec).toBeLessThanOrEqual(t1 + 1n);
        expect(a.atime_nsec).toBeLessThan(1000000000n);
        expect([a.mtime_sec, a.mtime_nsec]).toEqual([5n, 5n]);
        await client.setattr(f, { valid: A_MTIME, mtime_sec: 77, mtime_nsec: 77 });
        const b = await client.getattr(f);
        expect(b.mtime_sec).toBeGreaterThanOrEqual(t0 - 1n);
        expect(b.mtime_sec).toBeLessThanOrEqual(BigInt(Math.ceil(Date.now() / 1000)) + 1n);
      });

      test('Tsetattr on an unknown fid → error', async () => {
        const { client } = await mount();
        expect(await errnoOf(client.setattr(999, { valid: A_MODE, mode: 0o600 }))).toBeGreaterThan(0);
      });
    });

    // ───────────────────────────────────────────────────────────── creation ops

    describe('Tmkdir / Tsymlink / Tmknod / Tlink / Treadlink', () => {
      test('Tmkdir: qid, mode, no fid created, name checks', async () => {
        const { client } = await mount();
        const root = (await client.getattr(ROOT)).qid;
        const q = await client.mkdir(ROOT, 'd', S_IFDIR | 0o750, 0);
        expect(q.type).toBe(QTDIR);
        expect((await client.getattr(ROOT)).qid).toEqual(root); // dfid still the parent
        const w = await client.walk(ROOT, 1, ['d']);
        expect(w[0].path).toBe(q.path);
        expect((await client.getattr(1)).mode).toBe(S_IFDIR | 0o750);
        expect((await client.getattr(1)).nlink).toBe(2n);
        expect(await errnoOf(client.mkdir(ROOT, 'd', 0o755, 0))).toBe(EEXIST);
        expect(await errnoOf(client.mkdir(ROOT, '.', 0o755, 0))).toBe(EEXIST);
        expect(await errnoOf(client.mkdir(ROOT, '..', 0o755, 0))).toBe(EEXIST);
        expect(await errnoOf(client.mkdir(ROOT, '', 0o755, 0))).toBe(ENOENT);
        expect(await errnoOf(client.mkdir(ROOT, 'x/y', 0o755, 0))).toBe(ENOENT);
        await mkfile(client, 'f', '');
        expect(await errnoOf(client.mkdir(await walkTo(client, 'f'), 'x', 0o755, 0))).toBe(ENOTDIR);
      });

      test('Tsymlink + Treadlink', async () => {
        const { client } = await mount();
        await mkdirs(client, 'd');
        const d = await walkTo(client, 'd');
        const q = await client.symlink(d, 'l', '../some/where', 0);
        expect(q.type).toBe(QTSYMLINK);
        const w = await client.walk(ROOT, 1, ['d', 'l']);
        expect(w[1].path).toBe(q.path);
        expect(await client.readlink(1)).toBe('../some/where');
        const a = await client.getattr(1);
        expect(a.mode & S_IFMT).toBe(S_IFLNK);
        expect(a.size).toBe(13n);
        expect(await errnoOf(client.symlink(d, 'l', 'x', 0))).toBe(EEXIST);
        expect(await errnoOf(client.symlink(d, '', 'x', 0))).toBe(ENOENT);
        expect(await errnoOf(client.symlink(d, '..', 'x', 0))).toBe(EEXIST);
        // Treadlink on a non-symlink → EINVAL
        await mkfile(client, 'f', '');
        expect(await errnoOf(client.readlink(await walkTo(client, 'f')))).toBe(EINVAL);
        // a dangling symlink is fine
        await client.symlink(d, 'dangling', 'nowhere', 0);
        expect(await client.readlink(await walkTo(client, 'd/dangling'))).toBe('nowhere');
      });

      test('Tmknod: fifo and character device', async () => {
        const { client } = await mount();
        const fq = await client.mknod(ROOT, 'fifo', S_IFIFO | 0o644, 0, 0, 0);
        expect(fq.type).toBe(QTFILE);
        const fifo = await walkTo(client, 'fifo');
        expect((await client.getattr(fifo)).mode).toBe(S_IFIFO | 0o644);
        expect((await client.getattr(fifo)).qid.path).toBe(fq.path);
        const cq = await client.mknod(ROOT, 'null', S_IFCHR | 0o666, 1, 3, 0);
        expect(cq.type).toBe(QTFILE);
        const c = await client.getattr(await walkTo(client, 'null'));
        expect(c.mode).toBe(S_IFCHR | 0o666);
        expect(c.rdev).toBe(BigInt((3 & 0xff) | (1 << 8)));
        const big = await client.mknod(ROOT, 'blk', 0o60600, 259, 0x12345, 0);
        expect(big.type).toBe(QTFILE);
        const bg = await client.getattr(await walkTo(client, 'blk'));
        expect(bg.rdev).toBe(BigInt(((0x12345 & 0xff) | (259 << 8) | ((0x12345 & ~0xff) << 12)) >>> 0));
        expect(await errnoOf(client.mknod(ROOT, 'fifo', S_IFIFO | 0o644, 0, 0, 0))).toBe(EEXIST);
        const ents = await client.readdirAll(await openPath(client, ''));
        expect(ents.find((e) => str(e.name) === 'fifo')!.type).toBe(dt(1)); // DT_FIFO
        expect(ents.find((e) => str(e.name) === 'null')!.type).toBe(dt(2)); // DT_CHR
      });

      test('Tlopen / Tlcreate of a device node, FIFO or socket: ENXIO, for every access mode', async () => {
        const { client } = await mount();
        await client.mknod(ROOT, 'fifo', S_IFIFO | 0o666, 0, 0, 0);
        await client.mknod(ROOT, 'chr', S_IFCHR | 0o666, 1, 3, 0);
        await client.mknod(ROOT, 'blk', S_IFBLK | 0o600, 7, 0, 0);
        await client.mknod(ROOT, 'sock', S_IFSOCK | 0o666, 0, 0, 0);
        for (const name of ['fifo', 'chr', 'blk', 'sock']) {
          for (const flags of [O_RDONLY, O_WRONLY, O_RDWR, O_RDWR | O_TRUNC]) {
            const fid = await walkTo(client, name);
            expect([name, flags, await errnoOf(client.lopen(fid, flags))]).toEqual([name, flags, ENXIO]);
            await client.clunk(fid);
          }
          // Tlcreate of the existing name without O_EXCL would open it: also refused
          const dir = await walkTo(client, '');
          expect([name, await errnoOf(client.lcreate(dir, name, O_RDWR, 0o644))]).toEqual([name, ENXIO]);
          await client.clunk(dir);
        }
        // nothing was written through any of them
        expect((await client.getattr(await walkTo(client, 'blk'))).mode).toBe(S_IFBLK | 0o600);
      });

      test('Tlink: same qid, nlink counts; directory → EPERM; existing name → EEXIST', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'data');
        await mkdirs(client, 'd');
        const f = await walkTo(client, 'f');
        const root = (await client.getattr(ROOT)).qid;
        await client.link(ROOT, f, 'g');
        expect((await client.getattr(ROOT)).qid).toEqual(root);
        expect((await client.getattr(f)).nlink).toBe(2n);
        expect((await client.getattr(await walkTo(client, 'g'))).qid.path).toBe((await client.getattr(f)).qid.path);
        // a write through one name shows through the other
        const w = await openPath(client, 'g', O_WRONLY);
        await client.write(w, 0, bytes('DATA'));
        expect(str(await readPath(client, 'f'))).toBe('DATA');
        expect(await errnoOf(client.link(ROOT, await walkTo(client, 'd'), 'dl'))).toBe(EPERM);
        expect(await errnoOf(client.link(ROOT, f, 'd'))).toBe(EEXIST);
        expect(await errnoOf(client.link(ROOT, f, ''))).toBe(ENOENT);
        // unlinking one name keeps the other
        await client.unlinkat(ROOT, 'f', 0);
        expect(str(await readPath(client, 'g'))).toBe('DATA');
        expect((await client.getattr(await walkTo(client, 'g'))).nlink).toBe(1n);
      });
    });

    // ───────────────────────────────────────────────────────────── renames

    describe('Trenameat / Trename', () => {
      test('basic rename moves the object (same qid path)', async () => {
        const { client } = await mount();
        await mkdirs(client, 'x');
        await mkfile(client, 'a', 'A');
        const q = (await client.getattr(await walkTo(client, 'a'))).qid;
        const x = await walkTo(client, 'x');
        await client.renameat(ROOT, 'a', x, 'b');
        expect(await exists(client, 'a')).toBe(false);
        expect((await client.getattr(await walkTo(client, 'x/b'))).qid.path).toBe(q.path);
        expect(str(await readPath(client, 'x/b'))).toBe('A');
        expect(await errnoOf(client.renameat(ROOT, 'missing', ROOT, 'z'))).toBe(ENOENT);
      });

      test('replaces an existing file atomically; the replaced file lives on through its fid', async () => {
        const { client } = await mount();
        await mkfile(client, 'src', 'new');
        await mkfile(client, 'dst', 'old');
        const oldFid = await openPath(client, 'dst', O_RDONLY);
        await client.renameat(ROOT, 'src', ROOT, 'dst');
        expect(str(await readPath(client, 'dst'))).toBe('new');
        expect(await exists(client, 'src')).toBe(false);
        expect(str(await client.read(oldFid, 0, 10))).toBe('old');
        expect((await client.getattr(oldFid)).nlink).toBe(0n);
      });

      test('rename(2) errnos: ENOTEMPTY, EISDIR, ENOTDIR, EINVAL (own subtree)', async () => {
        const { client } = await mount();
        await mkdirs(client, 'a/b/c');
        await mkdirs(client, 'full/x');
        await mkdirs(client, 'empty');
        await mkfile(client, 'f', 'f');
        expect(await errnoOf(client.renameat(ROOT, 'a', ROOT, 'full'))).toBe(ENOTEMPTY);
        expect(await errnoOf(client.renameat(ROOT, 'f', ROOT, 'empty'))).toBe(EISDIR);
        expect(await errnoOf(client.renameat(ROOT, 'empty', ROOT, 'f'))).toBe(ENOTDIR);
        const c = await walkTo(client, 'a/b/c');
        expect(await errnoOf(client.renameat(ROOT, 'a', c, 'inside'))).toBe(EINVAL);
        const b = await walkTo(client, 'a/b');
        expect(await errnoOf(client.renameat(ROOT, 'a', b, 'a'))).toBe(EINVAL);
        const a = await walkTo(client, 'a');
        expect(await errnoOf(client.renameat(ROOT, 'a', a, 'self'))).toBe(EINVAL);
        // nothing moved
        for (const p of ['a/b/c', 'full/x', 'empty', 'f']) expect(await exists(client, p)).toBe(true);
        // a directory may replace an empty directory
        const aq = (await client.getattr(a)).qid;
        await client.renameat(ROOT, 'a', ROOT, 'empty');
        expect(await exists(client, 'a')).toBe(false);
        expect((await client.getattr(await walkTo(client, 'empty'))).qid.path).toBe(aq.path);
        expect(await exists(client, 'empty/b/c')).toBe(true);
      });

      test("names: empty or with '/' → ENOENT; '.' / '..' → error; nothing moves", async () => {
        const { client } = await mount();
        await mkdirs(client, 'd/e');
        await mkfile(client, 'f', 'x');
        const d = await walkTo(client, 'd');
        expect(await errnoOf(client.renameat(ROOT, 'f', ROOT, ''))).toBe(ENOENT);
        expect(await errnoOf(client.renameat(ROOT, 'f', ROOT, 'a/b'))).toBe(ENOENT);
        expect(await errnoOf(client.renameat(ROOT, '', ROOT, 'g'))).toBe(ENOENT);
        expect(await errnoOf(client.renameat(ROOT, 'd/e', ROOT, 'g'))).toBe(ENOENT);
        expect(await errnoOf(client.renameat(ROOT, 'f', d, '.'))).toBeGreaterThan(0);
        expect(await errnoOf(client.renameat(ROOT, 'f', d, '..'))).toBeGreaterThan(0);
        expect(await errnoOf(client.renameat(d, '.', ROOT, 'g'))).toBeGreaterThan(0);
        expect(await errnoOf(client.renameat(d, '..', ROOT, 'g'))).toBeGreaterThan(0);
        expect(await errnoOf(client.rename(await walkTo(client, 'f'), ROOT, ''))).toBe(ENOENT);
        for (const p of ['d/e', 'f']) expect(await exists(client, p)).toBe(true);
        expect(await exists(client, 'g')).toBe(false);
        expect(str(await readPath(client, 'f'))).toBe('x');
      });

      test('same inode (hard links) → success, no-op', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        await client.link(ROOT, await walkTo(client, 'f'), 'g');
        await client.renameat(ROOT, 'f', ROOT, 'g');
        expect(await exists(client, 'g')).toBe(true);
        expect(await exists(client, 'f')).toBe(true);
        await client.renameat(ROOT, 'f', ROOT, 'f');
        expect(await exists(client, 'f')).toBe(true);
      });

      test('fids follow the object when an ancestor is renamed', async () => {
        const { client } = await mount();
        await mkfile(client, 'a/b/c.txt', 'deep data');
        const f = await openPath(client, 'a/b/c.txt', O_RDONLY);
        const plain = await walkTo(client, 'a/b');
        const q = (await client.getattr(f)).qid;
        await client.renameat(ROOT, 'a', ROOT, 'z');
        expect(str(await client.read(f, 0, 100))).toBe('deep data');
        expect((await client.getattr(f)).qid).toEqual(q);
        expect((await client.getattr(f)).size).toBe(9n);
        const w = await client.walk(ROOT, 90, ['z', 'b', 'c.txt']);
        expect(w[2].path).toBe(q.path);
        expect(await exists(client, 'a')).toBe(false);
        // the unopened fid on a/b also follows: walk c.txt from it
        const from = await client.walk(plain, 91, ['c.txt']);
        expect(from[0].path).toBe(q.path);
        const up = await client.walk(plain, 92, ['..']);
        expect(up[0].path).toBe((await client.getattr(await walkTo(client, 'z'))).qid.path);
      });

      test('Trename(fid, dfid, name) renames the fid\'s object, also an open fid from Tlcreate', async () => {
        const { client } = await mount();
        await mkdirs(client, 'd');
        await mkfile(client, 'd/f', 'content');
        const f = await walkTo(client, 'd/f');
        const q = (await client.getattr(f)).qid;
        await client.rename(f, ROOT, 'moved');
        expect(await exists(client, 'd/f')).toBe(false);
        expect((await client.getattr(await walkTo(client, 'moved'))).qid.path).toBe(q.path);
        expect((await client.getattr(f)).qid.path).toBe(q.path);
        // diod bug-create-rename
        const c = await walkTo(client, 'd');
        await client.lcreate(c, 'created', O_RDWR, 0o644, 0);
        await client.write(c, 0, bytes('hi'));
        await client.rename(c, ROOT, 'created2');
        expect(str(await readPath(client, 'created2'))).toBe('hi');
        expect(await exists(client, 'd/created')).toBe(false);
        // rename a directory into its own subtree → EINVAL
        await mkdirs(client, 'p/q');
        expect(await errnoOf(client.rename(await walkTo(client, 'p'), await walkTo(client, 'p/q'), 'x'))).toBe(EINVAL);
      });
    });

    // ───────────────────────────────────────────────────────────── removal

    describe('Tunlinkat / Tremove', () => {
      test('removes files, empty directories and symlinks; fids stay valid', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        await mkdirs(client, 'd');
        await mksymlink(client, 'l', 'f');
        const df = await walkTo(client, 'd');
        await client.unlinkat(ROOT, 'f', 0);
        await client.unlinkat(ROOT, 'd', AT_REMOVEDIR);
        await client.unlinkat(ROOT, 'l', 0);
        for (const p of ['f', 'd', 'l']) expect(await exists(client, p)).toBe(false);
        expect((await client.getattr(df)).mode & S_IFMT).toBe(S_IFDIR);
        expect(await errnoOf(client.unlinkat(ROOT, 'f', 0))).toBe(ENOENT);
        // creating in a removed directory fails
        expect(await errnoOf(client.mkdir(df, 'x', 0o755, 0))).toBeGreaterThan(0);
      });

      test('flag rules: ENOTDIR, EISDIR, ENOTEMPTY, EINVAL for other bits', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        await mkdirs(client, 'd');
        await mkdirs(client, 'full/sub');
        expect(await errnoOf(client.unlinkat(ROOT, 'f', AT_REMOVEDIR))).toBe(ENOTDIR);
        expect(await errnoOf(client.unlinkat(ROOT, 'd', 0))).toBe(EISDIR);
        expect(await errnoOf(client.unlinkat(ROOT, 'full', AT_REMOVEDIR))).toBe(ENOTEMPTY);
        expect(await errnoOf(client.unlinkat(ROOT, 'f', 0x100))).toBe(EINVAL);
        expect(await errnoOf(client.unlinkat(ROOT, 'f', 0x1))).toBe(EINVAL);
        expect(await errnoOf(client.unlinkat(ROOT, 'd', AT_REMOVEDIR | 0x400))).toBe(EINVAL);
        for (const p of ['f', 'd', 'full/sub']) expect(await exists(client, p)).toBe(true);
      });

      test('"." → EINVAL, ".." → ENOTEMPTY', async () => {
        const { client } = await mount();
        await mkdirs(client, 'd');
        const d = await walkTo(client, 'd');
        expect(await errnoOf(client.unlinkat(d, '.', AT_REMOVEDIR))).toBe(EINVAL);
        expect(await errnoOf(client.unlinkat(d, '..', AT_REMOVEDIR))).toBe(ENOTEMPTY);
        expect(await errnoOf(client.unlinkat(d, '.', 0))).toBe(EINVAL);
        expect(await exists(client, 'd')).toBe(true);
      });

      test('Tremove removes and clunks; on failure it still clunks', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        await mkdirs(client, 'full/sub');
        const f = await walkTo(client, 'f');
        await client.remove(f);
        expect(await exists(client, 'f')).toBe(false);
        expect(await errnoOf(client.clunk(f))).toBe(ENOENT);
        const full = await walkTo(client, 'full');
        expect(await errnoOf(client.remove(full))).toBe(ENOTEMPTY);
        expect(await errnoOf(client.clunk(full))).toBe(ENOENT);
        expect(await errnoOf(client.getattr(full))).toBe(ENOENT);
        expect(await exists(client, 'full/sub')).toBe(true);
        // remove an empty directory
        const sub = await walkTo(client, 'full/sub');
        await client.remove(sub);
        expect(await exists(client, 'full/sub')).toBe(false);
      });
    });

    // ───────────────────────────────────────────────────────────── Tstatfs / Tfsync

    describe('Tstatfs / Tfsync', () => {
      test('Tstatfs: V9FS magic, bsize > 0, namelen 255', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        for (const fid of [ROOT, await walkTo(client, 'f'), await openPath(client, 'f')]) {
          const s = await client.statfs(fid);
          expect(s.type).toBe(V9FS_MAGIC);
          expect(s.bsize).toBeGreaterThan(0);
          expect(s.namelen).toBe(255);
          expect(s.bfree).toBeLessThanOrEqual(s.blocks);
          expect(s.bavail).toBeLessThanOrEqual(s.blocks);
          expect(s.ffree).toBeLessThanOrEqual(s.files);
        }
        expect(await errnoOf(client.statfs(555))).toBeGreaterThan(0);
      });

      test('Tfsync: ok on an open fid, EBADF on an unopened one', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        const f = await openPath(client, 'f', O_RDWR);
        await client.fsync(f, 0);
        await client.fsync(f, 1);
        const d = await openPath(client, '');
        await client.fsync(d, 0);
        expect(await errnoOf(client.fsync(await walkTo(client, 'f'), 0))).toBe(EBADF);
      });
    });

    // ───────────────────────────────────────────────────────────── xattrs

    describe('xattrs', () => {
      async function setx(c: Ctx['client'], path: string, name: string, value: string | Uint8Array, flags = 0): Promise<void> {
        const fid = await walkTo(c, path);
        const v = typeof value === 'string' ? bytes(value) : value;
        await c.xattrcreate(fid, name, v.length, flags);
        if (v.length) expect(await c.write(fid, 0, v)).toBe(v.length);
        await c.clunk(fid);
      }
      async function getx(c: Ctx['client'], path: string, name: string): Promise<{ size: bigint; data: Uint8Array }> {
        const fid = await walkTo(c, path);
        const nf = c.allocFid();
        try {
          const size = await c.xattrwalk(fid, nf, name);
          const data = size > 0n ? await c.readAll(nf) : new Uint8Array(0);
          await c.clunk(nf);
          return { size, data };
        } finally {
          await c.clunk(fid);
        }
      }

      test('Txattrcreate + Twrite + Tclunk commits; Txattrwalk size + Tread value', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        await setx(client, 'f', 'user.foo', 'hello xattr');
        const g = await getx(client, 'f', 'user.foo');
        expect(g.size).toBe(11n);
        expect(str(g.data)).toBe('hello xattr');
        // piecewise reads through the xattr fid
        const fid = await walkTo(client, 'f');
        expect(await client.xattrwalk(fid, 70, 'user.foo')).toBe(11n);
        expect(str(await client.read(70, 6, 100))).toBe('xattr');
        expect((await client.read(70, 11, 100)).length).toBe(0);
        // on a directory too; replace the value
        await setx(client, '', 'user.dir', 'D');
        await setx(client, '', 'user.dir', 'DD');
        expect(str((await getx(client, '', 'user.dir')).data)).toBe('DD');
        // binary value written in two pieces
        const fid2 = await walkTo(client, 'f');
        await client.xattrcreate(fid2, 'user.bin', 4, 0);
        expect(await client.write(fid2, 2, Uint8Array.of(0, 255))).toBe(2);
        expect(await client.write(fid2, 0, Uint8Array.of(1, 2))).toBe(2);
        await client.clunk(fid2);
        expect(Array.from((await getx(client, 'f', 'user.bin')).data)).toEqual([1, 2, 0, 255]);
      });

      test('empty name lists the names (NUL-terminated)', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        expect((await getx(client, 'f', '')).size).toBe(0n);
        await setx(client, 'f', 'user.a', '1');
        await setx(client, 'f', 'user.bb', '22');
        const l = await getx(client, 'f', '');
        expect(l.size).toBe(BigInt('user.a\0user.bb\0'.length));
        expect(l.data[l.data.length - 1]).toBe(0);
        expect(str(l.data).split('\0').slice(0, -1).sort()).toEqual(['user.a', 'user.bb']);
      });

      test('missing attribute → ENODATA', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        const fid = await walkTo(client, 'f');
        expect(await errnoOf(client.xattrwalk(fid, 71, 'user.nope'))).toBe(ENODATA);
        client.releaseFid(71);
        expect(await errnoOf(client.getattr(71))).toBe(ENOENT);
      });

      test('size mismatch at clunk → Rclunk EINVAL (not set, fid gone)', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        const fid = await walkTo(client, 'f');
        await client.xattrcreate(fid, 'user.short', 5, 0);
        expect(await client.write(fid, 0, bytes('abc'))).toBe(3);
        expect(await errnoOf(client.clunk(fid))).toBe(EINVAL);
        expect(await errnoOf(client.clunk(fid))).toBe(ENOENT);
        const f2 = await walkTo(client, 'f');
        expect(await errnoOf(client.xattrwalk(f2, 72, 'user.short'))).toBe(ENODATA);
      });

      test('write past attr_size → error', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        const fid = await walkTo(client, 'f');
        await client.xattrcreate(fid, 'user.x', 3, XATTR_CREATE);
        expect(await errnoOf(client.write(fid, 2684469248, bytes('a')))).toBeGreaterThan(0);
        expect(await errnoOf(client.write(fid, 0, bytes('abcd')))).toBeGreaterThan(0);
      });

      test(`attr_size > 65536 → E2BIG; the backend's largest value (${maxXattr}) is stored`, async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        const fid = await walkTo(client, 'f');
        expect(await errnoOf(client.xattrcreate(fid, 'user.big', 65537, 0))).toBe(E2BIG);
        expect(await errnoOf(client.xattrcreate(fid, 'user.big', 1n << 40n, 0))).toBe(E2BIG);
        await setx(client, 'f', 'user.max', new Uint8Array(maxXattr).fill(7));
        expect((await getx(client, 'f', 'user.max')).size).toBe(BigInt(maxXattr));
      });

      test('XATTR_CREATE on an existing attribute → EEXIST; XATTR_REPLACE on a missing one → ENODATA', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        await setx(client, 'f', 'user.k', 'v1');
        // the error may come from Txattrcreate or from the commit in Rclunk
        const fid = await walkTo(client, 'f');
        let e = await errnoOf(client.xattrcreate(fid, 'user.k', 2, XATTR_CREATE));
        if (e === 0) {
          await client.write(fid, 0, bytes('v2'));
          e = await errnoOf(client.clunk(fid));
        }
        expect(e).toBe(EEXIST);
        expect(str((await getx(client, 'f', 'user.k')).data)).toBe('v1');
        const fid2 = await walkTo(client, 'f');
        let e2 = await errnoOf(client.xattrcreate(fid2, 'user.none', 1, XATTR_REPLACE));
        if (e2 === 0) {
          await client.write(fid2, 0, bytes('z'));
          e2 = await errnoOf(client.clunk(fid2));
        }
        expect(e2).toBe(ENODATA);
        await setx(client, 'f', 'user.k', 'v3', XATTR_REPLACE);
        expect(str((await getx(client, 'f', 'user.k')).data)).toBe('v3');
      });

      test('attr_size 0 + clunk removes the attribute', async () => {
        const { client } = await mount();
        await mkfile(client, 'f', 'x');
        await setx(client, 'f', 'user.gone', 'soon');
        await setx(client, 'f', 'user.stay', 'here');
        const fid = await walkTo(client, 'f');
        await client.xattrcreate(fid, 'user.gone', 0, XATTR_REPLACE);
        await client.clunk(fid);
        const f2 = await walkTo(client, 'f');
        expect(await errnoOf(client.xattrwalk(f2, 73, 'user.gone'))).toBe(ENODATA);
        expect(str((await getx(client, 'f', '')).data)).toBe('user.stay\0');
      });
    });

    // ───────────────────────────────────────────────────────────── locks

    describe('Tlock / Tgetlock', () => {
      async function twoOpens(c: Ctx['client']): Promise<[number, number, number]> {
        await mkfile(c, 'lk', 'lock me');
        return [await openPath(c, 'lk', O_RDWR), await openPath(c, 'lk', O_RDWR), await openPath(c, 'lk', O_RDWR)];
      }

      test('WRLCK contention: ok → BLOCKED → unlock → ok; getlock reports the holder', async () => {
        const { client } = await mount();
        const [f1, f2] = await twoOpens(client);
        expect(await client.lock(f1, { type: WRLCK, proc_id: 11, client_id: 'one' })).toBe(LOCK_SUCCESS);
        expect(await client.lock(f2, { type: WRLCK, proc_id: 22, client_id: 'two' })).toBe(LOCK_BLOCKED);
        expect(await client.lock(f2, { type: RDLCK, proc_id: 22, client_id: 'two' })).toBe(LOCK_BLOCKED);
        const g = await client.getlock(f2, { type: WRLCK, start: 0, length: 0, proc_id: 22, client_id: 'two' });
        expect(g.type).toBe(WRLCK);
        expect(g.start).toBe(0n);
        expect(g.length).toBe(0n);
        expect(g.proc_id).toBe(11);
        expect(str(g.client_id)).toBe('one');
        expect(await client.lock(f1, { type: UNLCK, proc_id: 11, client_id: 'one' })).toBe(LOCK_SUCCESS);
        const g2 = await client.getlock(f2, { type: WRLCK, start: 5, length: 10, proc_id: 22, client_id: 'two' });
        expect(g2.type).toBe(UNLCK);
        expect([g2.start, g2.length, g2.proc_id]).toEqual([5n, 10n, 22]);
        expect(await client.lock(f2, { type: WRLCK, proc_id: 22, client_id: 'two' })).toBe(LOCK_SUCCESS);
        expect(await client.lock(f1, { type: WRLCK, proc_id: 11, client_id: 'one' })).toBe(LOCK_BLOCKED);
      });

      test('RDLCK + RDLCK ok; a WRLCK is blocked until both unlock', async () => {
        const { client } = await mount();
        const [f1, f2, f3] = await twoOpens(client);
        expect(await client.lock(f1, { type: RDLCK, proc_id: 1 })).toBe(LOCK_SUCCESS);
        expect(await client.lock(f2, { type: RDLCK, proc_id: 2 })).toBe(LOCK_SUCCESS);
        expect((await client.getlock(f3, { type: RDLCK, proc_id: 3 })).type).toBe(UNLCK);
        const g = await client.getlock(f3, { type: WRLCK, proc_id: 3 });
        expect(g.type).toBe(RDLCK);
        expect([1, 2]).toContain(g.proc_id);
        expect(await client.lock(f3, { type: WRLCK, proc_id: 3 })).toBe(LOCK_BLOCKED);
        await client.lock(f1, { type: UNLCK, proc_id: 1 });
        expect(await client.lock(f3, { type: WRLCK, proc_id: 3 })).toBe(LOCK_BLOCKED);
        await client.lock(f2, { type: UNLCK, proc_id: 2 });
        expect(await client.lock(f3, { type: WRLCK, proc_id: 3 })).toBe(LOCK_SUCCESS);
      });

      test('byte ranges: disjoint ranges do not conflict, overlapping ones do', async () => {
        const { client } = await mount();
        const [f1, f2] = await twoOpens(client);
        expect(await client.lock(f1, { type: WRLCK, start: 0, length: 10, proc_id: 1 })).toBe(LOCK_SUCCESS);
        expect(await client.lock(f2, { type: WRLCK, start: 10, length: 10, proc_id: 2 })).toBe(LOCK_SUCCESS);
        expect(await client.lock(f2, { type: WRLCK, start: 9, length: 1, proc_id: 2 })).toBe(LOCK_BLOCKED);
        const g = await client.getlock(f2, { type: RDLCK, start: 5, length: 1, proc_id: 2 });
        expect([g.type, g.start, g.length, g.proc_id]).toEqual([WRLCK, 0n, 10n, 1]);
      });

      test('clunk releases the locks', async () => {
        const { client } = await mount();
        const [f1, f2] = await twoOpens(client);
        expect(await client.lock(f1, { type: WRLCK, proc_id: 1 })).toBe(LOCK_SUCCESS);
        expect(await client.lock(f2, { type: WRLCK, proc_id: 2 })).toBe(LOCK_BLOCKED);
        await client.clunk(f1);
        expect((await client.getlock(f2, { type: WRLCK, proc_id: 2 })).type).toBe(UNLCK);
        expect(await client.lock(f2, { type: WRLCK, proc_id: 2 })).toBe(LOCK_SUCCESS);
      });

      test('bad type or flags → EINVAL; unopened fid → EBADF', async () => {
        const { client } = await mount();
        const [f1] = await twoOpens(client);
        expect(await errnoOf(client.lock(f1, { type: 3, proc_id: 1 }))).toBe(EINVAL);
        expect(await errnoOf(client.lock(f1, { type: 0xff, proc_id: 1 }))).toBe(EINVAL);
        expect(await errnoOf(client.getlock(f1, { type: 3, proc_id: 1 }))).toBe(EINVAL);
        expect(await errnoOf(client.lock(f1, { type: WRLCK, flags: 4, proc_id: 1 }))).toBe(EINVAL);
        expect(await client.lock(f1, { type: WRLCK, flags: 1, proc_id: 1 })).toBe(LOCK_SUCCESS); // BLOCK is fine
        const u = await walkTo(client, 'lk');
        expect(await errnoOf(client.lock(u, { type: WRLCK, proc_id: 1 }))).toBe(EBADF);
        expect(await errnoOf(client.getlock(u, { type: WRLCK, proc_id: 1 }))).toBe(EBADF);
      });
    });

    // ───────────────────────────────────────────────────────────── unknown / malformed

    describe('unknown and malformed messages', () => {
      test('unknown types and legacy Topen/Tstat → Rlerror EOPNOTSUPP for that tag', async () => {
        const ctx = await mount();
        const cases: [number, number[]][] = [
          [0, []], [5, []], [200, [1, 2, 3]], [255, []], [6, []],
          [112, [...le32(ROOT), 0]], // Topen fid mode[1]
          [124, le32(ROOT)], // Tstat fid
        ];
        let tag = 300;
        for (const [type, body] of cases) {
          tag++;
          const d = await ctx.sendRaw(rawMsg(type, tag, body));
          expect([type, d?.type, d?.tag, d?.fields[0]]).toEqual([type, P9_RLERROR, tag, EOPNOTSUPP]);
        }
        // R-message ids are not requests either
        for (const type of [7, 101, 117]) {
          const d = await ctx.sendRaw(rawMsg(type, 400 + type, []));
          expect([type, d?.type, d?.tag, d?.fields[0]]).toEqual([type, P9_RLERROR, 400 + type, EOPNOTSUPP]);
        }
        expect((await ctx.client.getattr(ROOT)).mode & S_IFMT).toBe(S_IFDIR);
      });

      test('malformed bodies → Rlerror EINVAL for that tag; the device keeps working', async () => {
        const ctx = await mount();
        await mkdirs(ctx.client, 'dir');
        const sub = await walkTo(ctx.client, 'dir');
        const cases: [string, Uint8Array][] = [
          // Tgetattr fid[4] request_mask[8] with one byte missing (size field consistent)
          ['getattr short', rawMsg(MSG.Tgetattr, 501, [...le32(ROOT), 0xff, 0x07, 0, 0, 0, 0, 0])],
          // Twalk with a string length running past the end
          ['walk string overrun', rawMsg(MSG.Twalk, 502, [...le32(ROOT), ...le32(60), ...le16(1), ...le16(100), 0x61, 0x62, 0x63])],
          // Twalk with more names than bytes
          ['walk nwname overrun', rawMsg(MSG.Twalk, 503, [...le32(ROOT), ...le32(61), ...le16(3), ...le16(1), 0x61])],
          // Tclunk with an extra trailing byte (must not clunk)
          ['clunk trailing byte', rawMsg(MSG.Tclunk, 504, [...le32(sub), 0])],
          // Tgetattr with an extra trailing byte
          ['getattr trailing byte', rawMsg(MSG.Tgetattr, 505, [...le32(ROOT), ...le64(0x7ffn), 9])],
          // Tmkdir with a name length past the end
          ['mkdir string overrun', rawMsg(MSG.Tmkdir, 506, [...le32(ROOT), ...le16(50), 0x78, ...le32(0o755), ...le32(0)])],
          // Tlopen with an empty body
          ['lopen empty', rawMsg(MSG.Tlopen, 507, [])],
          // Tread missing the count
          ['read short', rawMsg(MSG.Tread, 508, [...le32(ROOT), ...le64(0n)])],
        ];
        for (const [what, msg] of cases) {
          const d = await ctx.sendRaw(msg);
          const tag = msg[5] | (msg[6] << 8);
          expect([what, d?.type, d?.tag, d?.fields[0]]).toEqual([what, P9_RLERROR, tag, EINVAL]);
        }
        // nothing happened: no clunk, no walk, no mkdir
        expect((await ctx.client.getattr(sub)).mode & S_IFMT).toBe(S_IFDIR);
        expect(await errnoOf(ctx.client.getattr(60))).toBe(ENOENT);
        expect(await errnoOf(ctx.client.getattr(61))).toBe(ENOENT);
        expect(await exists(ctx.client, 'x')).toBe(false);
        // and the device keeps working
        await mkfile(ctx.client, 'after', 'ok');
        expect(str(await readPath(ctx.client, 'after'))).toBe('ok');
      });
    });

    // ───────────────────────────────────────────────────────────── Tflush

    describe('Tflush', () => {
      test('nothing pending → Rflush at once; unknown / finished tags → Rflush', async () => {
        const ctx = await mount();
        const { client } = ctx;
        await client.flush(1234);
        await client.getattr(ROOT);
        const done = client.lastTag;
        await client.flush(done);
        const d = await client.raw(MSG.Tflush, [0xfffe]);
        expect(d.type).toBe(MSG.Rflush);
        // a self-referencing flush is answered too
        const self = await client.raw(MSG.Tflush, [77], { tag: 77 });
        expect([self.type, self.tag]).toEqual([MSG.Rflush, 77]);
      });

      test('flushing a pending Tread: no Rflush before its completion; Tread completes with len 0, then Rflush', async () => {
        const inner = await fresh();
        const be = new DeferredBackend(inner);
        const ctx = await boot(be);
        const { client, log } = ctx;
        await mkfile(client, 'f', 'payload');
        const f = await openPath(client, 'f');
        be.hold((m) => m === 'read');
        const readP = client.read(f, 0, 100);
        const readTag = client.lastTag;
        const readSettled = readP.then(() => 'ok', (e) => e);
        await be.waitFor('read');
        const flushP = client.flush(readTag);
        const flushTag = client.lastTag;
        let flushed = false;
        void flushP.then(() => { flushed = true; });
        for (let i = 0; i < 10; i++) await tick();
        expect(flushed).toBe(false);
        expect(log.some((c) => c.tag === flushTag || c.tag === readTag)).toBe(false);
        // other requests still work meanwhile
        expect((await client.getattr(f)).size).toBe(7n);
        be.release();
        const r = await readSettled;
        await flushP;
        expect(r).toBeInstanceOf(P9FlushedError);
        const iRead = log.findIndex((c) => c.tag === readTag && c.type === MSG.Tread);
        const iFlush = log.findIndex((c) => c.tag === flushTag && c.type === MSG.Tflush);
        expect(iRead).toBeGreaterThanOrEqual(0);
        expect(iFlush).toBeGreaterThan(iRead);
        expect(log[iRead].len).toBe(0);
        expect(log[iFlush].len).toBe(7); // Rflush
        // the fid still works afterwards
        be.passThrough();
        expect(str(await client.read(f, 0, 100))).toBe('payload');
      });

      test('a flushed Tlcreate (side effect) gets its real reply before the Rflush', async () => {
        const be = new DeferredBackend(await fresh());
        const { client, log } = await boot(be);
        const dir = await walkTo(client, '');
        be.hold((m) => m === 'create');
        const createP = client.lcreate(dir, 'made', O_RDWR, 0o644, 0);
        const createTag = client.lastTag;
        await be.waitFor('create');
        const flushP = client.flush(createTag);
        const flushTag = client.lastTag;
        for (let i = 0; i < 5; i++) await tick();
        expect(log.some((c) => c.tag === flushTag)).toBe(false);
        be.release();
        const r = await createP;
        await flushP;
        expect(r.qid.type).toBe(QTFILE);
        const iC = log.findIndex((c) => c.tag === createTag && c.type === MSG.Tlcreate);
        const iF = log.findIndex((c) => c.tag === flushTag && c.type === MSG.Tflush);
        expect(log[iC].len).toBeGreaterThan(0);
        expect(iF).toBeGreaterThan(iC);
        be.passThrough();
        // the fid is the new open file, and the file exists
        expect(await client.write(dir, 0, bytes('yes'))).toBe(3);
        expect(str(await readPath(client, 'made'))).toBe('yes');
      });

      test('two Tflush of the same pending tag are answered in order, after the request', async () => {
        const be = new DeferredBackend(await fresh());
        const { client, log } = await boot(be);
        be.hold((m) => m === 'getattr');
        const gP = client.getattr(ROOT).then(() => 'ok', (e) => e);
        const gTag = client.lastTag;
        await be.waitFor('getattr');
        const f1 = client.flush(gTag);
        const t1 = client.lastTag;
        const f2 = client.flush(gTag);
        const t2 = client.lastTag;
        for (let i = 0; i < 5; i++) await tick();
        expect(log.some((c) => c.tag === t1 || c.tag === t2)).toBe(false);
        be.release();
        await Promise.all([gP, f1, f2]);
        const iG = log.findIndex((c) => c.tag === gTag && c.type === MSG.Tgetattr);
        const i1 = log.findIndex((c) => c.tag === t1 && c.type === MSG.Tflush);
        const i2 = log.findIndex((c) => c.tag === t2 && c.type === MSG.Tflush);
        expect(iG).toBeGreaterThanOrEqual(0);
        expect(i1).toBeGreaterThan(iG);
        expect(i2).toBeGreaterThan(i1);
      });

      test('requests in flight complete out of order (a slow one does not block others)', async () => {
        const be = new DeferredBackend(await fresh());
        const { client, log, machine } = await boot(be);
        await mkfile(client, 'slow', 'slow data');
        await mkfile(client, 'fast', 'fast data');
        const slow = await openPath(client, 'slow');
        const fast = await openPath(client, 'fast');
        be.hold((m) => m === 'read');
        const slowP = client.read(slow, 0, 100);
        const slowTag = client.lastTag;
        await be.waitFor('read');
        // non-read requests complete while the read is pending
        expect((await client.getattr(fast)).size).toBe(9n);
        await mkdirs(client, 'meanwhile');
        expect(await exists(client, 'meanwhile')).toBe(true);
        // a second read queues too; release it first
        const fastP = client.read(fast, 0, 100);
        const fastTag = client.lastTag;
        while (be.pending.length < 2) await tick();
        expect(machine.device.counters().inflight).toBeGreaterThanOrEqual(2);
        be.release((() => { let n = 0; return () => n++ === 1; })()); // only the second queued call
        expect(str(await fastP)).toBe('fast data');
        expect(log.some((c) => c.tag === slowTag && c.type === MSG.Tread)).toBe(false);
        be.release();
        expect(str(await slowP)).toBe('slow data');
        const iFast = log.findIndex((c) => c.tag === fastTag && c.type === MSG.Tread);
        const iSlow = log.findIndex((c) => c.tag === slowTag && c.type === MSG.Tread);
        expect(iFast).toBeLessThan(iSlow);
        // many at once, released in reverse
        const fids = [slow, fast];
        const ps = Array.from({ length: 20 }, (_, i) => client.read(fids[i % 2], i % 5, 3));
        while (be.pending.length < 20) await tick();
        expect(machine.device.counters().inflightHighWater).toBeGreaterThanOrEqual(20);
        const held = be.pending.length;
        for (let k = held - 1; k >= 0; k--) be.release((() => { let n = 0; return () => n++ === k; })());
        const got = (await Promise.all(ps)).map(str);
        expect(got).toEqual(Array.from({ length: 20 }, (_, i) => (i % 2 ? 'fast data' : 'slow data').slice(i % 5, (i % 5) + 3)));
      });

      test('the suite also passes through an async backend: basic operations', async () => {
        const be = new DeferredBackend(await fresh());
        const { client } = await boot(be);
        await mkfile(client, 'a/b/c', 'async');
        expect(str(await readPath(client, 'a/b/c'))).toBe('async');
        const ents = await client.readdirAll(await openPath(client, 'a/b'));
        expect(ents.map((e) => str(e.name)).sort()).toEqual(['.', '..', 'c']);
        expect(await errnoOf(client.walk(ROOT, 80, ['nope']))).toBe(ENOENT);
      });
    });

    // ───────────────────────────────────────────────────────────── Tclunk

    describe('Tclunk', () => {
      test('unknown fid → ENOENT; a clunked fid is no longer usable', async () => {
        const { client } = await mount();
        expect(await errnoOf(client.clunk(4321))).toBe(ENOENT);
        await mkfile(client, 'f', 'x');
        const f = await openPath(client, 'f');
        await client.clunk(f);
        expect(await errnoOf(client.getattr(f))).toBe(ENOENT);
        expect(await errnoOf(client.read(f, 0, 10))).toBeGreaterThan(0);
        expect(await errnoOf(client.walk(f, 200, []))).toBe(ENOENT);
        expect(await errnoOf(client.clunk(f))).toBe(ENOENT);
        // the fid number can be reused
        await client.walk(ROOT, f, ['f']);
        expect((await client.getattr(f)).size).toBe(1n);
      });
    });

    // ───────────────────────────────────────────────────────────── counters

    describe('counters', () => {
      test('requests by type and errors by errno', async () => {
        const ctx = await mount();
        const { client, machine } = ctx;
        await mkfile(client, 'f', 'x');
        const f = await walkTo(client, 'f');
        const before = machine.device.counters();
        const req = (c: typeof before, t: number) => c.requests[t] ?? 0;
        const err = (c: typeof before, e: number) => c.errors[e] ?? 0;
        for (let i = 0; i < 3; i++) await client.getattr(ROOT);
        await errnoOf(client.clunk(999));
        await errnoOf(client.clunk(998));
        await errnoOf(client.walk(ROOT, 50, ['missing']));
        await errnoOf(client.read(f, 0, 10)); // EBADF
        await ctx.sendRaw(rawMsg(200, 600, []));
        await ctx.sendRaw(rawMsg(MSG.Tclunk, 601, [...le32(f), 0]));
        const after = machine.device.counters();
        expect(req(after, MSG.Tgetattr) - req(before, MSG.Tgetattr)).toBe(3);
        expect(req(after, MSG.Tclunk) - req(before, MSG.Tclunk)).toBe(3);
        expect(req(after, MSG.Twalk) - req(before, MSG.Twalk)).toBe(1);
        expect(req(after, MSG.Tread) - req(before, MSG.Tread)).toBe(1);
        expect(err(after, ENOENT) - err(before, ENOENT)).toBe(3);
        expect(err(after, EBADF) - err(before, EBADF)).toBe(1);
        expect(err(after, EOPNOTSUPP) - err(before, EOPNOTSUPP)).toBe(1);
        expect(err(after, EINVAL) - err(before, EINVAL)).toBe(1);
        expect(after.malformedMessages - before.malformedMessages).toBe(1);
        expect(after.replies - before.replies).toBe(9);
        expect(after.inflight).toBe(0);
      });
    });
  });
}
