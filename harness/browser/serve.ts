/**
 * Serves the bench page on loopback, cross-origin isolated (COOP same-origin + COEP
 * require-corp, so SharedArrayBuffer and fine timers are available): the page and worker
 * bundled with esbuild at start, build/virtio9p.wasm, copy.wat compiled with wabt, and v86's
 * release build from node_modules. POST /result delivers the page's JSON.
 */
import { browserOptions } from '../esbuild-plugins.mjs';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { compileCopyWat, findHarnessFile } from '../bench.js';

export interface BenchServer { url: string; result: Promise<unknown>; close(): Promise<void> }

const HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>virtio9p bench</title>
<style>
body { font: 14px sans-serif; margin: 1.5em; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 2px 6px; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
#log { color: #555; font-size: 12px; max-height: 12em; overflow: auto; }
</style></head>
<body><h1>virtio9p bench</h1>
<p>The issue-5 workloads on the memory backend in a Web Worker, against v86's own 9P device and server and the memory-copy limit.</p>
<div id="progress">loading…</div><div id="table"></div><div id="chart"></div><pre id="log"></pre>
<script type="module" src="/page.js"></script></body></html>`;

async function bundle(): Promise<{ page: string; worker: string }> {
  const esbuild = await import('esbuild');
  // the package's browser build settings (src/wasm/host.browser.ts: no Node built-ins, no WASI);
  // node:* stays external for the bench's own Node-only modules that the page never calls
  const common = { ...browserOptions, bundle: true, format: 'esm' as const, target: 'es2022', write: false, external: ['node:*'], logLevel: 'error' as const, sourcemap: 'inline' as const };
  const [p, w] = await Promise.all([
    esbuild.build({ ...common, entryPoints: [findHarnessFile('browser/page.ts')] }),
    esbuild.build({ ...common, entryPoints: [findHarnessFile('browser/worker.ts')] }),
  ]);
  return { page: p.outputFiles![0]!.text, worker: w.outputFiles![0]!.text };
}

function coreWasmPath(): string {
  const p = findHarnessFile('bench/copy.wat');
  const root = path.resolve(path.dirname(p), '..', '..');
  const w = path.join(root, 'build', 'virtio9p.wasm');
  if (!fs.existsSync(w)) throw new Error('build/virtio9p.wasm missing (npm run build:wasm)');
  return w;
}

export async function startBenchServer(): Promise<BenchServer> {
  const { page, worker } = await bundle();
  const core = fs.readFileSync(coreWasmPath());
  const copy = Buffer.from(await compileCopyWat());
  const req = createRequire(findHarnessFile('bench/copy.wat'));
  const v86dir = path.dirname(req.resolve('v86/package.json'));
  const v86Version = JSON.parse(fs.readFileSync(path.join(v86dir, 'package.json'), 'utf8')).version as string;
  const files: Record<string, [string, Buffer | string]> = {
    '/': ['text/html; charset=utf-8', HTML],
    '/index.html': ['text/html; charset=utf-8', HTML],
    '/page.js': ['text/javascript', page],
    '/worker.js': ['text/javascript', worker],
    '/virtio9p.wasm': ['application/wasm', core],
    '/copy.wasm': ['application/wasm', copy],
    '/config.json': ['application/json', JSON.stringify({ v86Version })],
    '/v86/libv86.mjs': ['text/javascript', fs.readFileSync(path.join(v86dir, 'build/libv86.mjs'))],
    '/v86/v86.wasm': ['application/wasm', fs.readFileSync(path.join(v86dir, 'build/v86.wasm'))],
  };
  let resolve!: (v: unknown) => void;
  const result = new Promise<unknown>((r) => { resolve = r; });
  const server = http.createServer((rq, rs) => {
    const u = new URL(rq.url ?? '/', 'http://x');
    rs.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    rs.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    rs.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    rs.setHeader('Cache-Control', 'no-store');
    if (rq.method === 'POST' && u.pathname === '/result') {
      const chunks: Buffer[] = [];
      rq.on('data', (c: Buffer) => chunks.push(c));
      rq.on('end', () => {
        rs.end('ok');
        try { resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))); } catch (e) { resolve({ error: String(e) }); }
      });
      return;
    }
    const f = files[u.pathname];
    if (!f) { rs.statusCode = 404; rs.end('not found'); return; }
    rs.setHeader('Content-Type', f[0]);
    rs.end(f[1]);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${addr.port}/`,
    result,
    close: () => new Promise<void>((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
  };
}
