/**
 * A client that disconnects — idle or with requests in flight — leaks nothing: its fids are
 * clunked (open handles and node references go back to the backend), pending requests finish
 * without writing to the dead socket, and the server keeps serving others.
 */
import { describe, test, expect } from '@jest/globals';
import net from 'node:net';
import path from 'node:path';
import { P9Server } from '../../src/serve.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { P9Client } from '../../src/testing/p9/client.js';
import { DeferredBackend, tick } from '../conformance/util.js';
import { tempDir } from './serve-util.js';

/** A P9Client over a stream socket (size-prefixed framing). */
function streamClient(sock: string): Promise<{ client: P9Client; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(sock);
    const waiting = new Map<number, (b: Uint8Array) => void>();
    let buf = Buffer.alloc(0);
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 7 && buf.length >= buf.readUInt32LE(0)) {
        const n = buf.readUInt32LE(0);
        const msg = new Uint8Array(buf.subarray(0, n));
        buf = buf.subarray(n);
        const tag = msg[5] | (msg[6] << 8);
        waiting.get(tag)?.(msg);
        waiting.delete(tag);
      }
    });
    socket.once('error', reject);
    socket.once('connect', () => {
      const client = new P9Client((t) => new Promise((res) => {
        waiting.set(t[5] | (t[6] << 8), res);
        socket.write(t);
      }), { msize: 65536 });
      resolve({ client, socket });
    });
  });
}

describe('disconnects', () => {
  test('an idle client that vanishes with open fids releases them all', async () => {
    const mem = new MemoryBackend();
    for (let i = 0; i < 20; i++) mem.writeFile(`f${i}`, `data ${i}`);
    const sock = path.join(tempDir('disc'), 's.sock');
    const srv = await P9Server.start({ backend: mem, listen: { kind: 'unix', path: sock }, bufferSize: 16 << 20 });
    const { client, socket } = await streamClient(sock);
    await client.version(65536);
    await client.attach(0, 0xffffffff, 'root', '', 0);
    for (let i = 0; i < 20; i++) { await client.walk(0, 10 + i, [`f${i}`]); await client.lopen(10 + i, 2); }
    expect(mem.openHandles).toBe(20);
    socket.destroy();
    while (srv.connections) await tick();
    expect(mem.openHandles).toBe(0);
    expect(srv.device.counters().inflight).toBe(0);
    expect(srv.buffersInUse).toBe(0);
    await srv.close();
  });

  test('a client that vanishes mid-request: the request finishes silently, others keep working', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('big', new Uint8Array(100000).fill(3));
    const deferred = new DeferredBackend(mem);
    const sock = path.join(tempDir('disc'), 's.sock');
    const srv = await P9Server.start({ backend: deferred, listen: { kind: 'unix', path: sock }, bufferSize: 16 << 20 });
    const a = await streamClient(sock);
    await a.client.version(65536);
    await a.client.attach(0, 0xffffffff, 'root', '', 0);
    await a.client.walk(0, 1, ['big']);
    await a.client.lopen(1, 0);
    deferred.hold((m) => m === 'read');
    void a.client.read(1, 0, 60000).catch(() => undefined);
    await deferred.waitFor('read');
    expect(srv.device.counters().inflight).toBe(1);
    a.socket.destroy();
    while (srv.connections) await tick();
    deferred.passThrough();
    deferred.release();
    for (let i = 0; i < 20 && srv.device.counters().inflight; i++) await tick();
    expect(srv.device.counters().inflight).toBe(0);
    expect(srv.buffersInUse).toBe(0);
    expect(mem.openHandles).toBe(0);
    // the server still serves a new client
    const b = await streamClient(sock);
    await b.client.version(65536);
    await b.client.attach(0, 0xffffffff, 'root', '', 0);
    await b.client.walk(0, 1, ['big']);
    await b.client.lopen(1, 0);
    expect((await b.client.read(1, 99990, 100)).length).toBe(10);
    b.socket.destroy();
    await srv.close();
  });
});
