/**
 * The Debian i386 guest in v86 (harness/v86-guest) mounts our device, on v86's PCI bus, whose
 * tree is an OverlayBackend over an HttpBackend image (served from loopback) with its upper
 * layer in a directory, and runs the guest kit's whole workload in it. Afterwards the image is
 * unchanged, only blobs the guest read were fetched, and an overlay reopened from the upper
 * directory shows the same tree (same inode numbers).
 */
import { test, expect } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bootV86Guest, V86_GUEST_DIR } from '../../harness/v86-guest/boot.js';
import { V86Virtio9p } from '../../src/adapters/v86-pci.js';
import { HttpBackend } from '../../src/backends/http.js';
import { OverlayBackend } from '../../src/backends/overlay.js';
import { NodeDirStore } from '../../src/backends/upper-dir-store.js';
import type { Backend, Entry } from '../../src/backends/backend.js';
import { buildImage } from '../../src/image.js';
import { WORKLOAD_STEPS, parseGuestConsole } from '../../harness/side-by-side/result.js';
import { serveDir } from '../backends/http-server.js';

async function tree(b: Backend): Promise<Record<string, [number, number, number]>> {
  const out: Record<string, [number, number, number]> = {};
  const root = await b.attach(new Uint8Array(0), 0) as Entry;
  const visit = async (e: Entry, p: string): Promise<void> => {
    out[p] = [e.ino, e.mode, (e.mode & 0o170000) === 0o40000 ? 0 : e.size];
    if ((e.mode & 0o170000) !== 0o40000) return;
    const fh = await b.open(e.node, 0) as number;
    const names: Uint8Array[] = [];
    await b.readdir(fh, 0, { push: (_i, _n, _t, name) => { names.push(name.slice()); return true; } });
    await b.close(fh);
    for (const n of names) {
      const s = new TextDecoder().decode(n);
      if (s === '.' || s === '..') continue;
      const c = await b.lookup(e.node, n) as Entry;
      await visit(c, `${p}/${s}`);
      b.forget(c.node);
    }
  };
  await visit(root, '');
  return out;
}

test('v86 guest runs the workload on overlay(http image) and the upper layer reopens', async () => {
  if (!fs.existsSync(path.join(V86_GUEST_DIR, 'vmlinuz'))) throw new Error(`no v86 guest in ${V86_GUEST_DIR}: run harness/v86-guest/setup.sh`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-v86-ovl-'));
  const src = path.join(tmp, 'src');
  fs.mkdirSync(path.join(src, 'docs'), { recursive: true });
  fs.writeFileSync(path.join(src, 'docs', 'readme.txt'), 'from the image\n');
  fs.writeFileSync(path.join(src, 'never-read.bin'), Buffer.alloc(300_000, 9));
  buildImage(src, path.join(tmp, 'img'));
  const imageBefore = fs.readFileSync(path.join(tmp, 'img', 'fs.json'));
  const server = await serveDir(path.join(tmp, 'img'));
  const upper = path.join(tmp, 'upper');
  let store = new NodeDirStore(upper);
  try {
    const lower = await HttpBackend.load(`${server.url}/fs.json`, { baseUrl: `${server.url}/base/` });
    const overlay = await OverlayBackend.open({ lower, store });
    let adapter: V86Virtio9p | undefined;
    const run = await bootV86Guest({
      ownDevice: false, tag: 'host9p',
      beforeStart: async (emulator) => { adapter = await V86Virtio9p.attach(emulator, { backend: overlay }); },
      log: path.join(tmp, 'console.log'),
    });
    if (!run.mounted || run.steps.size !== WORKLOAD_STEPS.length) console.log(run.console.split('\n').slice(-60).join('\n'));
    expect(run.mounted).toBe(true);
    expect([...run.steps.keys()]).toEqual([...WORKLOAD_STEPS]);
    expect([...run.steps.values()].filter((s) => s.result !== 'PASS')).toEqual([]);
    expect(parseGuestConsole(run.console).unmounted).toBe(true);
    expect(adapter!.device.counters().replies).toBeGreaterThan(1000);
    await overlay.flush();
    // the image is as it was; its big blob was never read
    expect(fs.readFileSync(path.join(tmp, 'img', 'fs.json')).equals(imageBefore)).toBe(true);
    expect(server.log.filter((l) => l.startsWith('/base/')).length).toBe(lower.counters.fetches);
    const before = await tree(overlay);
    expect(Object.keys(before).sort()).toEqual(['', '/docs', '/docs/readme.txt', '/never-read.bin']);
    expect(lower.counters.bytesFetched).toBeLessThan(300_000);
    store.close();
    store = new NodeDirStore(upper);
    const lower2 = await HttpBackend.load(`${server.url}/fs.json`, { baseUrl: `${server.url}/base/` });
    expect(await tree(await OverlayBackend.open({ lower: lower2, store }))).toEqual(before);
  } finally {
    store.close();
    await server.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}, 600_000);
