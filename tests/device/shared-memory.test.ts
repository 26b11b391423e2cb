/**
 * The core on a SharedArrayBuffer-backed memory (the shared build): guest RAM is shared, so a
 * VMM can hand it to other workers; a worker thread writes a file's new contents straight into
 * guest RAM and the device serves a Twrite from it.
 */
import { describe, test, expect } from '@jest/globals';
import { Worker } from 'node:worker_threads';
import { createMachine } from '../../src/testing/machine.js';
import { MemoryBackend } from '../../src/backends/memory.js';

describe('SharedArrayBuffer-backed memory', () => {
  test('the device runs on shared memory and its guest RAM is shared with a worker', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('f', 'before');
    const m = await createMachine({ backend: mem, device: { sharedMemory: true } });
    expect(m.device.ram.buffer).toBeInstanceOf(SharedArrayBuffer);
    await m.client.version(65536);
    await m.client.attach(0, 0xffffffff, 'root', '', 0);
    await m.client.walk(0, 1, ['f']);
    await m.client.lopen(1, 2);
    expect(new TextDecoder().decode(await m.client.read(1, 0, 100))).toBe('before');
    // another thread fills a region of guest RAM (as a VMM's other worker would) …
    const at = m.device.ram.length - 4096;
    const w = new Worker(`
      const { workerData, parentPort } = require('node:worker_threads');
      const ram = new Uint8Array(workerData.sab, workerData.off, workerData.len);
      ram.set(new TextEncoder().encode('from a worker'), workerData.at);
      parentPort.postMessage('done');`, { eval: true, workerData: { sab: m.device.ram.buffer, off: m.device.ram.byteOffset, len: m.device.ram.length, at } });
    await new Promise((r) => w.once('message', r));
    await w.terminate();
    // … and the guest-side driver hands those bytes to a Twrite
    const data = m.device.ram.slice(at, at + 13);
    expect(await m.client.write(1, 0, data)).toBe(13);
    expect(new TextDecoder().decode(mem.readFileSync('f'))).toBe('from a worker');
  });
});
