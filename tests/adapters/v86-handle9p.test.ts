/**
 * Stock v86 (npm `v86`, its release build) with our 9P server behind its external-server hook
 * `filesystem.handle9p`: v86's own virtio-9p PCI device and virtqueue, driven through its
 * registers as its guest driver would, answered by our core.
 */
import { describe, test, expect, afterAll } from '@jest/globals';
import { loadV86Node, createV86, Guest } from '../../harness/bench/v86.js';
import { V86Handle9p } from '../../src/adapters/v86-handle9p.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { DeferredBackend, tick } from '../conformance/util.js';

const emulators: { destroy?: () => void }[] = [];
afterAll(() => { for (const e of emulators) e.destroy?.(); });

describe('v86 + handle9p → our server', () => {
  test('a session through v86\'s virtio-9p device is answered by our core', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('hello.txt', 'served by virtio9p-wasm inside v86\n');
    const adapter = await V86Handle9p.create({ backend: mem });
    const emu = await createV86(await loadV86Node(), { handle9p: adapter.handle9p });
    emulators.push(emu);
    const g = new Guest(emu);
    await g.version(512 * 1024);
    await g.attach(0);
    await g.walk(0, 1, ['hello.txt']);
    await g.lopen(1, 0);
    const n = await g.read(1, 0, 4096);
    expect(n).toBe(35);
    expect(new TextDecoder().decode(g.m.subarray(g.rp, g.rp + n))).toBe('served by virtio9p-wasm inside v86\n');
    await g.walk(0, 2, []);
    await g.lcreate(2, 'new.txt', 0o102, 0o644);
    g.m.set(new TextEncoder().encode('written through v86'), 0x200000 + 23);
    expect(await g.write(2, 0, 19)).toBe(19);
    expect(new TextDecoder().decode(mem.readFileSync('new.txt'))).toBe('written through v86');
    expect(adapter.device.counters().errors).toEqual({});
  });

  test('a session holding thousands of fids (the core grows its memory mid-request): every reply reaches v86 whole', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('f', 'still here');
    const adapter = await V86Handle9p.create({ backend: mem });
    const emu = await createV86(await loadV86Node(), { handle9p: adapter.handle9p });
    emulators.push(emu);
    const g = new Guest(emu);
    await g.version(65536);
    await g.attach(0);
    for (let fid = 1; fid <= 3000; fid++) await g.walk(0, fid, fid % 2 ? ['f'] : []);
    await g.lopen(2999, 0);
    expect(await g.read(2999, 0, 100)).toBe(10);
    expect(new TextDecoder().decode(g.m.subarray(g.rp, g.rp + 10))).toBe('still here');
    expect(adapter.device.counters().errors).toEqual({});
  });

  test('asynchronous backends: the reply comes later and v86 still completes the request', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('f', 'later');
    const deferred = new DeferredBackend(mem);
    const adapter = await V86Handle9p.create({ backend: deferred });
    const emu = await createV86(await loadV86Node(), { handle9p: adapter.handle9p });
    emulators.push(emu);
    const g = new Guest(emu);
    await g.version(65536);
    await g.attach(0);
    await g.walk(0, 1, ['f']);
    await g.lopen(1, 0);
    deferred.hold((m) => m === 'read');
    const p = g.read(1, 0, 100);
    await deferred.waitFor('read');
    await tick();
    deferred.passThrough();
    deferred.release();
    expect(await p).toBe(5);
  });
});
