/**
 * Device nodes never reach the host: a guest attached as an ordinary uid talks to the real
 * `virtio9p serve` (the CLI bundle, a child process) over its Unix socket, on every backend,
 * with and without --readonly. It opens device nodes and FIFOs that already sit in the export
 * (made on the host), creates a block device node over a loop device's numbers and opens it,
 * and re-creates it with Tlcreate: every open is ENXIO, no request hangs, and the server keeps
 * answering. The creating case runs in the most trusting configuration (passthrough, --access
 * any), where the node is real on the host.
 */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { serve, tempDir, type Served } from '../clients/serve-util.js';
import { connectStream, type StreamConn } from '../../harness/soak/stream-client.js';
import { P9ClientError } from '../../src/testing/p9/client.js';

const ENXIO = 6, EROFS = 30, EPERM = 1;
const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2;
const S_IFBLK = 0o60000, S_IFCHR = 0o20000;
const isRoot = process.getuid?.() === 0;

async function errnoOf(p: Promise<unknown>): Promise<number> {
  try { await p; return 0; } catch (e) { if (e instanceof P9ClientError) return e.errno; throw e; }
}

let exp: string;
beforeAll(() => {
  exp = tempDir('devnodes');
  fs.writeFileSync(path.join(exp, 'plain'), 'plain\n');
  execFileSync('mkfifo', [path.join(exp, 'fifo')]);
  if (isRoot) {
    execFileSync('mknod', [path.join(exp, 'loop0'), 'b', '7', '0']);
    execFileSync('mknod', [path.join(exp, 'null'), 'c', '1', '3']);
  }
});
afterAll(() => { fs.rmSync(exp, { recursive: true, force: true }); });

async function session(s: Served, uid = 1000): Promise<StreamConn> {
  const c = await connectStream(s.address.replace(/^unix:/, ''));
  await c.client.version(65536);
  await c.client.attach(0, undefined, 'user', '', uid);
  return c;
}

async function openErr(c: StreamConn, name: string, flags: number): Promise<number> {
  const fid = c.client.allocFid();
  await c.client.walk(0, fid, [name]);
  try { return await errnoOf(c.client.lopen(fid, flags)); } finally { await c.client.clunk(fid); }
}

const pre = (): string[] => (isRoot ? ['fifo', 'loop0', 'null'] : ['fifo']);

describe.each(['local', 'proxy', 'memory'])('virtio9p serve --backend %s', (backend) => {
  test('pre-existing device nodes and FIFOs: every open is ENXIO (every model, also --readonly), nothing hangs', async () => {
    for (const [ro, model] of [[false, 'mapped-xattr'], [true, 'mapped-xattr'], [false, 'mapped-file'], [false, 'passthrough'], [true, 'none']] as const) {
      const s = await serve(exp, backend, [...(ro ? ['--readonly'] : []), ...(backend === 'memory' ? [] : ['--security-model', model])]);
      const c = await session(s, 0); // root: no permission check stands before the open
      try {
        for (const name of pre()) {
          for (const fl of ro ? [O_RDONLY] : [O_RDONLY, O_WRONLY, O_RDWR]) {
            expect([name, fl, ro, await openErr(c, name, fl)]).toEqual([name, fl, ro, ENXIO]);
          }
        }
        // the server still serves ordinary files on the same session
        const fid = c.client.allocFid();
        await c.client.walk(0, fid, ['plain']);
        await c.client.lopen(fid, O_RDONLY);
        expect(new TextDecoder().decode(await c.client.read(fid, 0, 100))).toBe('plain\n');
      } finally {
        await c.close();
        await s.stop();
      }
    }
  });

  test('Tmknod of a block device, then Tlopen / Tlcreate of it: ENXIO; --readonly refuses the mknod', async () => {
    // the most trusting configuration: real device nodes, and the client's word for who it is
    const dir = tempDir('devnodes-mk');
    const s = await serve(dir, backend, ['--security-model', 'passthrough', '--access', 'any']);
    const c = await session(s);
    try {
      const e = await errnoOf(c.client.mknod(0, 'disk', S_IFBLK | 0o600, 7, 0, 0));
      // a server run as root creates it (really, under passthrough); others: EPERM
      expect(e === 0 || (!isRoot && e === EPERM)).toBe(true);
      if (isRoot && backend !== 'memory') expect(fs.lstatSync(path.join(dir, 'disk')).isBlockDevice()).toBe(true);
      if (e === 0) {
        for (const fl of [O_RDONLY, O_WRONLY, O_RDWR]) expect(await openErr(c, 'disk', fl)).toBe(ENXIO);
        const dfid = c.client.allocFid();
        await c.client.walk(0, dfid, []);
        expect(await errnoOf(c.client.lcreate(dfid, 'disk', O_RDWR, 0o600))).toBe(ENXIO);
        await c.client.clunk(dfid);
      }
      await c.client.mknod(0, 'null', S_IFCHR | 0o666, 1, 3, 0).then(
        () => expect(openErr(c, 'null', O_RDWR)).resolves.toBe(ENXIO), () => undefined);
    } finally {
      await c.close();
      await s.stop();
    }
    const r = await serve(dir, backend, ['--readonly']);
    const c2 = await session(r);
    try {
      expect(await errnoOf(c2.client.mknod(0, 'disk2', S_IFBLK | 0o600, 7, 0, 0))).toBe(EROFS);
    } finally {
      await c2.close();
      await r.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
