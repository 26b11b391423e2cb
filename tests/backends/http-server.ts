/**
 * A loopback web server for image tests: serves a directory, with or without Range support,
 * logs every request, and can be told to cut the next responses off mid-body.
 */
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';

export interface ImageServer {
  url: string;
  /** request paths (with the Range header, if any) */
  log: string[];
  /** answer Range requests with 206 (default true) */
  range: boolean;
  /** the next N blob responses send half their body and then drop the connection */
  breakNext: number;
  close(): Promise<void>;
}

export async function serveDir(root: string): Promise<ImageServer> {
  const sockets = new Set<import('node:net').Socket>();
  const state: ImageServer = {
    url: '', log: [], range: true, breakNext: 0,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent((req.url ?? '/').split('?')[0]);
    const range = req.headers.range;
    state.log.push(range ? `${rel} ${range}` : rel);
    const file = path.join(root, path.normalize(rel).replace(/^(\.\.[/\\])+/, ''));
    let data: Buffer;
    try { data = fs.readFileSync(file); } catch { res.writeHead(404).end(); return; }
    let status = 200, body = data;
    const m = state.range && range ? /^bytes=(\d+)-(\d+)$/.exec(range) : null;
    if (m) {
      const a = Number(m[1]), b = Math.min(Number(m[2]), data.length - 1);
      status = 206;
      body = data.subarray(a, b + 1);
      res.setHeader('Content-Range', `bytes ${a}-${b}/${data.length}`);
    }
    res.setHeader('Content-Length', String(body.length));
    if (state.breakNext > 0 && rel.endsWith('.bin')) {
      state.breakNext--;
      res.writeHead(status);
      res.write(body.subarray(0, body.length >> 1), () => res.socket?.destroy());
      return;
    }
    res.writeHead(status).end(body);
  });
  // idle keep-alive sockets stay open until close(): a slow machine must not race the client
  server.keepAliveTimeout = 0;
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}
