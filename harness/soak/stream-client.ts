/**
 * A P9Client over a stream socket (size-prefixed 9P, what `virtio9p serve` speaks): replies
 * are matched to requests by tag. Also gives raw access (write bytes, count replies) for
 * hostile-guest tests.
 */
import net from 'node:net';
import { P9Client } from '../../src/testing/p9/client.js';

export interface StreamConn {
  client: P9Client;
  socket: net.Socket;
  /** replies that matched no waiting request (raw traffic) */
  unmatched: Uint8Array[];
  /** count of every reply received */
  replies: number;
  close(): Promise<void>;
}

export function connectStream(target: string | { port: number; host?: string }, msize = 65536): Promise<StreamConn> {
  return new Promise((resolve, reject) => {
    const socket = typeof target === 'string' ? net.connect(target) : net.connect(target.port, target.host ?? '127.0.0.1');
    const waiting = new Map<number, (b: Uint8Array) => void>();
    let buf: Buffer = Buffer.alloc(0);
    const conn: StreamConn = {
      client: null as unknown as P9Client,
      socket,
      unmatched: [],
      replies: 0,
      close: () => new Promise((res) => {
        if (socket.destroyed) { res(); return; }
        socket.once('close', () => res());
        socket.destroy();
      }),
    };
    socket.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      while (buf.length >= 7 && buf.length >= buf.readUInt32LE(0)) {
        const n = buf.readUInt32LE(0);
        const msg = new Uint8Array(buf.subarray(0, n));
        buf = buf.subarray(n);
        conn.replies++;
        const tag = msg[5] | (msg[6] << 8);
        const w = waiting.get(tag);
        if (w) { waiting.delete(tag); w(msg); } else conn.unmatched.push(msg);
      }
    });
    socket.on('close', () => {
      for (const w of waiting.values()) w(new Uint8Array(0));
      waiting.clear();
    });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.setNoDelay(true);
      conn.client = new P9Client((t, o) => new Promise((res) => {
        waiting.set(t[5] | (t[6] << 8), res);
        socket.write(t);
        if (o?.writeData) socket.write(o.writeData);
      }), { msize });
      // zero-copy writes are sent as header + payload (the size field covers both)
      resolve(conn);
    });
  });
}
