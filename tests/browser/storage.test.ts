/**
 * HttpBackend and OverlayBackend in headless Chromium (Debian's /usr/bin/chromium through
 * playwright-core): an image served from loopback, the upper layer in IndexedDB. The page
 * changes the tree and flushes, the browser reloads the page, and the new page sees the
 * flushed changes (not the unflushed one); only the blobs that were read were fetched.
 */
import { test, expect } from '@jest/globals';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildImage } from '../../src/image.js';
import { launchChromium } from '../../harness/browser/run.js';
import { findHarnessFile } from '../../harness/bench.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

test('overlay over an HTTP image with its upper layer in IndexedDB survives a page reload', async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-browser-storage-'));
  const tree = path.join(tmp, 'tree');
  fs.mkdirSync(tree);
  fs.writeFileSync(path.join(tree, 'f1.txt'), 'first\n');
  fs.writeFileSync(path.join(tree, 'f2.txt'), 'second\n');
  fs.writeFileSync(path.join(tree, 'untouched.bin'), Buffer.alloc(200_000, 1));
  buildImage(tree, path.join(tmp, 'img'));
  const esbuild = await import('esbuild');
  const page = (await esbuild.build({
    entryPoints: [findHarnessFile('browser/storage-page.ts')], bundle: true, format: 'esm', platform: 'browser',
    target: 'es2022', write: false, logLevel: 'error',
  })).outputFiles[0].text;
  const log: string[] = [];
  let deliver: (v: unknown) => void = () => {};
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    log.push(url);
    if (req.method === 'POST' && url === '/result') {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => { res.end('ok'); deliver(JSON.parse(body)); });
      return;
    }
    if (url === '/') { res.setHeader('Content-Type', 'text/html'); res.end('<!doctype html><script type="module" src="/page.js"></script>'); return; }
    if (url === '/page.js') { res.setHeader('Content-Type', 'text/javascript'); res.end(page); return; }
    const file = path.join(tmp, 'img', url.replace(/^\/img\//, '').replace(/\.\./g, ''));
    if (!url.startsWith('/img/') || !fs.existsSync(file)) { res.writeHead(404).end(); return; }
    res.end(fs.readFileSync(file));
  });
  server.keepAliveTimeout = 0;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const browser = await launchChromium(CHROMIUM);
  try {
    const tab = await browser.newPage();
    const result = async (phase: string) => {
      const p = new Promise<Record<string, unknown>>((r) => { deliver = r as (v: unknown) => void; });
      await tab.goto(`${base}/?phase=${phase}`);
      const r = await p;
      if (r.error) throw new Error(String(r.error));
      return r;
    };
    const w = await result('write');
    expect(w.f1).toBe('First\n');
    const r = await result('read');
    expect(r).toMatchObject({ hello: 'written in the browser', f1: 'First\n', f2: false, unflushed: false, ino: w.ino });
    expect(r.afterReset).toEqual({ f2: true, notes: false });
    // laziness: the 200 KB blob was never read, so never fetched
    const untouched = fs.readdirSync(path.join(tmp, 'img', 'base')).filter((b) => fs.statSync(path.join(tmp, 'img', 'base', b)).size === 200_000);
    expect(untouched).toHaveLength(1);
    expect(log.filter((u) => u.includes(untouched[0]))).toEqual([]);
    expect(log.filter((u) => u.startsWith('/img/base/')).length).toBeGreaterThan(0);
  } finally {
    await browser.close().catch(() => {});
    await new Promise<void>((r) => server.close(() => r()));
    server.closeAllConnections?.();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}, 120_000);
