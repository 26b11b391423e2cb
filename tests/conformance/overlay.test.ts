/**
 * The conformance suite on OverlayBackend: over an empty MemoryBackend and an empty LocalBackend
 * directory (upper in memory), and over an HttpBackend image served from a loopback web server
 * (upper in a temp directory).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from '@jest/globals';
import { MemoryBackend } from '../../src/backends/memory.js';
import { LocalBackend } from '../../src/backends/local.js';
import { OverlayBackend } from '../../src/backends/overlay.js';
import { HttpBackend } from '../../src/backends/http.js';
import { NodeDirStore } from '../../src/backends/upper-dir-store.js';
import { buildImage } from '../../src/image.js';
import { serveDir, type ImageServer } from '../backends/http-server.js';
import { defineConformance } from './suite.js';

defineConformance('OverlayBackend over MemoryBackend', async () => ({
  backend: await OverlayBackend.open({ lower: new MemoryBackend() }),
}));

let tmp: string;
let server: ImageServer;
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-conf-ovl-'));
  // an image whose root is empty: the suite expects a fresh, empty export
  fs.mkdirSync(path.join(tmp, 'tree'));
  buildImage(path.join(tmp, 'tree'), path.join(tmp, 'img'));
  server = await serveDir(path.join(tmp, 'img'));
});
afterAll(async () => {
  await server.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

let n = 0;
defineConformance('OverlayBackend over HttpBackend (upper in a directory)', async () => {
  const lower = await HttpBackend.load(`${server.url}/fs.json`, { baseUrl: `${server.url}/base/` });
  const store = new NodeDirStore(path.join(tmp, `upper-${n++}`));
  const backend = await OverlayBackend.open({ lower, store });
  return { backend, cleanup: async () => { store.close(); fs.rmSync(store.dir, { recursive: true, force: true }); } };
});

defineConformance('OverlayBackend over LocalBackend', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-conf-ovl-local-'));
  const lower = new LocalBackend({ root: dir });
  const backend = await OverlayBackend.open({ lower });
  return { backend, cleanup: async () => { lower.destroy(); fs.rmSync(dir, { recursive: true, force: true }); } };
});
