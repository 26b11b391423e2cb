/**
 * Differential property on OverlayBackend: random request sequences against the overlay and
 * against the local backend, both starting from the same tree (the PREFIX run on the local
 * backend; the overlay's lower layer is that tree, as an HTTP image built from the directory, as
 * a MemoryBackend copy of it, or as a LocalBackend on a copy of the directory). The random requests delete, rename, link and rewrite lower
 * entries, so every sequence exercises copy-up, deletes of lower names and moves of lower
 * directories. Over the HTTP image, the final tree is read through a new overlay reopened from
 * the persisted upper directory. Same normalisation as the memory/local differential.
 */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import fc from 'fast-check';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SEED, RUNS, opArb, compare } from './differential-lib.js';
import { OverlayBackend } from '../../src/backends/overlay.js';
import { HttpBackend } from '../../src/backends/http.js';
import { NodeDirStore } from '../../src/backends/upper-dir-store.js';
import { memoryFromDirectory } from '../../src/backends/seed.js';
import { LocalBackend } from '../../src/backends/local.js';
import { buildImage } from '../../src/image.js';
import { serveDir, type ImageServer } from '../backends/http-server.js';

const runs = Math.max(20, Math.floor(RUNS / 8)); // DIFF_RUNS scales it
let tmp: string;
let server: ImageServer;
let n = 0;
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-ovl-diff-'));
  server = await serveDir(tmp);
});
afterAll(async () => {
  await server.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function overHttp(dir: string) {
  const id = `r${n++}`;
  buildImage(dir, path.join(tmp, id));
  const lower = await HttpBackend.load(`${server.url}/${id}/fs.json`, { baseUrl: `${server.url}/${id}/base/`, chunkSize: 4096 });
  let store = new NodeDirStore(path.join(tmp, id, 'upper'));
  const backend = await OverlayBackend.open({ lower, store });
  // a clean shutdown, then a new overlay (and a new HttpBackend) over the same upper directory
  const reload = async () => {
    await backend.flush();
    store.close();
    store = new NodeDirStore(path.join(tmp, id, 'upper'));
    const lower2 = await HttpBackend.load(`${server.url}/${id}/fs.json`, { baseUrl: `${server.url}/${id}/base/`, chunkSize: 4096 });
    return OverlayBackend.open({ lower: lower2, store });
  };
  return { backend, reload, cleanup: async () => { store.close(); fs.rmSync(path.join(tmp, id), { recursive: true, force: true }); } };
}

async function overMemory(dir: string) {
  return { backend: await OverlayBackend.open({ lower: memoryFromDirectory(dir) }) };
}

async function overLocal(dir: string) {
  const copy = path.join(tmp, `l${n++}`);
  fs.cpSync(dir, copy, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  const lower = new LocalBackend({ root: copy });
  return {
    backend: await OverlayBackend.open({ lower }),
    cleanup: async () => { lower.destroy(); fs.rmSync(copy, { recursive: true, force: true }); },
  };
}

describe('differential: overlay vs local backend', () => {
  test('deleting, renaming and rewriting lower entries (fixed sequence)', async () => {
    await compare([
      { op: 'unlink', p: 'a', dir: false },
      { op: 'rename', p: 'd', q: 'x' },
      { op: 'write', p: 'x/b', off: 10, data: new Uint8Array([1, 2, 3]), flags: 1 },
      { op: 'link', p: 'x/b', q: 'x/e/c' },
      { op: 'unlink', p: 'x/e/a', dir: false },
      { op: 'unlink', p: 'x/e', dir: true },
      { op: 'mkdir', p: 'd', mode: 0o700 },
      { op: 'truncate', p: 'x/b', size: 7 },
    ], true, overHttp);
  });

  for (const [name, make] of [['HTTP image', overHttp], ['MemoryBackend', overMemory], ['LocalBackend directory', overLocal]] as const) {
    test(`random sequences over a lower ${name} give the same replies as the local backend`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => { await compare(ops, true, make); }),
        { seed: SEED, numRuns: runs, endOnFailure: true },
      );
      expect(n).toBeGreaterThanOrEqual(0);
    }, 600000);
  }
});
