/**
 * An image made by v86's own tools (tests/fixtures/v86-image, see its README) serves through
 * HttpBackend byte for byte, and our builder makes the same index and blobs from the same tree
 * (modulo what depends on the host: owners, directory sizes, entry order).
 */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import url from 'node:url';
import { buildImage, sortFsJson } from '../../src/image.js';
import { HttpBackend } from '../../src/backends/http.js';
import type { FsJsonEntry } from '../../src/backends/fsjson.js';
import type { Entry } from '../../src/backends/backend.js';
import { serveDir, type ImageServer } from './http-server.js';

const FIXTURE = path.join(path.dirname(url.fileURLToPath(import.meta.url)), '..', 'fixtures', 'v86-image');
const FILES: Record<string, Buffer> = {
  'etc/hostname': Buffer.from('v86-image\n'),
  'etc/conf.d/net': Buffer.from('# net\nconfig=dhcp\n'),
  'usr/bin/tool': Buffer.from(Array.from({ length: 70000 }, (_, i) => (i * 7 + 3) & 0xff)),
  'usr/bin/same': Buffer.from('v86-image\n'),
  empty: Buffer.alloc(0),
};

let tmp: string, tree: string, server: ImageServer;
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-v86img-'));
  tree = path.join(tmp, 'tree');
  for (const d of ['etc/conf.d', 'usr/bin', 'empty-dir']) fs.mkdirSync(path.join(tree, d), { recursive: true });
  for (const [p, data] of Object.entries(FILES)) fs.writeFileSync(path.join(tree, p), data);
  fs.symlinkSync('../etc/hostname', path.join(tree, 'usr/hostname-link'));
  fs.chmodSync(path.join(tree, 'usr/bin/tool'), 0o755);
  for (const p of ['etc/hostname', 'etc/conf.d/net', 'usr/bin/same', 'empty']) fs.chmodSync(path.join(tree, p), 0o644);
  for (const d of ['etc', 'etc/conf.d', 'usr', 'usr/bin', 'empty-dir']) fs.chmodSync(path.join(tree, d), 0o755);
  for (const p of [...Object.keys(FILES), 'etc', 'etc/conf.d', 'usr', 'usr/bin', 'empty-dir', 'usr/hostname-link']) {
    fs.lutimesSync(path.join(tree, p), 1600000000, 1600000000);
  }
  server = await serveDir(FIXTURE);
});
afterAll(async () => {
  await server.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** owners and directory sizes zeroed (host-dependent), entries sorted, total without directories */
function normal(j: { fsroot: FsJsonEntry[] }): unknown {
  let total = 0;
  const walk = (l: FsJsonEntry[]): FsJsonEntry[] => l.map((e) => {
    const dir = Array.isArray(e[6]);
    if (!dir) total += e[1];
    const out = [e[0], dir ? 0 : e[1], e[2], e[3], 0, 0, ...(e.length > 6 ? [dir ? walk(e[6] as FsJsonEntry[]) : e[6]] : [])];
    return out as unknown as FsJsonEntry;
  });
  const fsroot = sortFsJson(walk(j.fsroot));
  return { fsroot, total };
}

describe("an image made by v86's tools", () => {
  test('our builder makes the same fs.json and blobs from the same tree', () => {
    const out = path.join(tmp, 'ours');
    buildImage(tree, out);
    const theirs = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'fs.json'), 'utf8'));
    const ours = JSON.parse(fs.readFileSync(path.join(out, 'fs.json'), 'utf8'));
    expect(ours.version).toBe(theirs.version);
    expect(normal(ours)).toEqual(normal(theirs));
    const blobs = fs.readdirSync(path.join(FIXTURE, 'base')).sort();
    expect(fs.readdirSync(path.join(out, 'base')).sort()).toEqual(blobs);
    for (const b of blobs) expect(fs.readFileSync(path.join(out, 'base', b)).equals(fs.readFileSync(path.join(FIXTURE, 'base', b)))).toBe(true);
  });

  test('HttpBackend serves it byte for byte (Range chunks)', async () => {
    const b = await HttpBackend.load(`${server.url}/fs.json`, { baseUrl: `${server.url}/base/`, chunkSize: 16384 });
    const walk = async (p: string): Promise<Entry> => {
      let e = await b.attach(new Uint8Array(0), 0) as Entry;
      for (const part of p.split('/')) e = await b.lookup(e.node, new TextEncoder().encode(part)) as Entry;
      return e;
    };
    for (const [p, data] of Object.entries(FILES)) {
      const e = await walk(p);
      expect(e.size).toBe(data.length);
      expect(e.mtimeSec).toBe(1600000000);
      const fh = await b.open(e.node, 0) as number;
      const buf = new Uint8Array(data.length + 10);
      const n = await b.read(fh, 0, [buf.subarray(0, 5000), buf.subarray(5000)]);
      expect(n).toBe(data.length);
      expect(Buffer.from(buf.subarray(0, data.length)).equals(data)).toBe(true);
    }
    const link = await walk('usr/hostname-link');
    expect(new TextDecoder().decode(await b.readlink(link.node) as Uint8Array)).toBe('../etc/hostname');
    expect((await walk('usr/bin/tool')).mode).toBe(0o100755);
    expect(server.log.filter((l) => l.includes('9f6d8bb5.bin'))).toHaveLength(5); // 70,000 bytes in 16 KiB ranges
  });
});
