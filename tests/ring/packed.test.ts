/**
 * The packed virtqueue (VIRTIO 1.2 §2.8): wrap counters, out-of-order completion by id,
 * DISABLE suppression, and the same hostile-input outcomes as the split ring.
 */
import { describe, test, expect } from '@jest/globals';
import { createPackedMachine } from '../../src/testing/machine.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { DeferredBackend, tick } from '../conformance/util.js';
import { encode, decode } from '../../src/testing/p9/codec.js';

const F_NEXT = 1, F_WRITE = 2, F_INDIRECT = 4, F_AVAIL = 1 << 7, F_USED = 1 << 15;

async function machine(backend = new MemoryBackend(), queueSize = 16) {
  const m = await createPackedMachine({ backend, queueSize });
  await m.client.version(65536);
  await m.client.attach(0, 0xffffffff, 'root', '', 0);
  return m;
}

/** Write a raw chain at the driver's next avail position (bypassing its bookkeeping). */
function rawChain(m: Awaited<ReturnType<typeof machine>>, descs: { addr: number; len: number; flags: number; id?: number }[]) {
  const d = m.driver as unknown as { availIdx: number; availWrap: boolean; ringAddr: number; size: number };
  const dv = new DataView(m.device.ram.buffer, m.device.ram.byteOffset);
  let i = d.availIdx, wrap = d.availWrap;
  for (const x of descs) {
    const at = d.ringAddr + 16 * i;
    dv.setUint32(at, x.addr, true); dv.setUint32(at + 4, 0, true);
    dv.setUint32(at + 8, x.len, true); dv.setUint16(at + 12, x.id ?? 0, true);
    dv.setUint16(at + 14, x.flags | (wrap ? F_AVAIL : F_USED), true);
    if (++i === d.size) { i = 0; wrap = !wrap; }
  }
}

describe('packed ring', () => {
  test('many requests wrap the ring several times; every reply is right', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('f', 'packed!');
    const m = await machine(mem, 8);
    await m.client.walk(0, 1, ['f']);
    await m.client.lopen(1, 0);
    for (let i = 0; i < 100; i++) expect(new TextDecoder().decode(await m.client.read(1, 0, 100))).toBe('packed!');
    const all = await Promise.all(Array.from({ length: 40 }, () => m.client.getattr(0)));
    expect(all.every((a) => (a.mode & 0o170000) === 0o040000)).toBe(true);
  });

  test('out-of-order completion: used descriptors carry the right ids', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('a', 'AAAA');
    mem.writeFile('b', 'BBBB');
    const deferred = new DeferredBackend(mem);
    const m = await machine(deferred as never);
    await m.client.walk(0, 1, ['a']); await m.client.lopen(1, 0);
    await m.client.walk(0, 2, ['b']); await m.client.lopen(2, 0);
    deferred.hold((x) => x === 'read');
    const ra = m.client.read(1, 0, 4), rb = m.client.read(2, 0, 4);
    await deferred.waitFor('read');
    while (deferred.pending.length < 2) await tick();
    deferred.release((x) => x === 'read'); // both complete; order of used descriptors is the device's
    expect(new TextDecoder().decode(await rb)).toBe('BBBB');
    expect(new TextDecoder().decode(await ra)).toBe('AAAA');
  });

  test('driver event DISABLE suppresses interrupts', async () => {
    const m = await machine();
    let irqs = 0;
    m.device.onInterrupt(() => irqs++);
    const dv = new DataView(m.device.ram.buffer, m.device.ram.byteOffset);
    dv.setUint16(m.driver.driverEvent + 2, 1, true);
    const before = irqs;
    const p = m.client.getattr(0);
    await tick();
    expect(irqs).toBe(before);
    dv.setUint16(m.driver.driverEvent + 2, 0, true);
    (m.driver as unknown as { reap(): void }).reap();
    await p;
  });

  const hostile: [string, (m: Awaited<ReturnType<typeof machine>>, buf: number) => void][] = [
    ['a chain that never ends (NEXT everywhere)', (m, buf) => rawChain(m, Array.from({ length: 16 }, () => ({ addr: buf, len: 16, flags: F_NEXT })))],
    ['a readable descriptor after a writable one', (m, buf) => rawChain(m, [{ addr: buf, len: 64, flags: F_WRITE | F_NEXT }, { addr: buf + 64, len: 16, flags: 0 }])],
    ['an address outside guest RAM', (m) => rawChain(m, [{ addr: m.device.ram.length - 8, len: 16, flags: 0 }])],
    ['an indirect table with NEXT', (m, buf) => rawChain(m, [{ addr: buf, len: 32, flags: F_INDIRECT | F_NEXT }, { addr: buf, len: 16, flags: 0 }])],
    ['an indirect table of 17 bytes', (m, buf) => rawChain(m, [{ addr: buf, len: 17, flags: F_INDIRECT }])],
    ['a nested indirect table', (m, buf) => {
      const dv = new DataView(m.device.ram.buffer, m.device.ram.byteOffset);
      dv.setUint32(buf, buf + 64, true); dv.setUint32(buf + 8, 16, true); dv.setUint16(buf + 14, F_INDIRECT, true);
      rawChain(m, [{ addr: buf, len: 16, flags: F_INDIRECT }]);
    }],
  ];
  test.each(hostile)('%s → DEVICE_NEEDS_RESET, nothing used', async (_n, build) => {
    const m = await machine();
    const buf = 0x200000;
    const used0 = m.device.counters().replies;
    build(m, buf);
    expect(() => m.device.notify(0)).not.toThrow();
    expect(m.device.needsReset).toBe(true);
    expect(m.device.counters().malformedChains).toBe(1);
    expect(m.device.counters().replies).toBe(used0);
  });

  test('a Tgetattr split over many descriptors gets the same reply as in one', async () => {
    const m = await machine();
    const msg = encode(24, 7, [0, 0x7ffn]);
    const one = await m.driver.request([msg], [4096]);
    const parts = [msg.subarray(0, 3), msg.subarray(3, 9), msg.subarray(9)];
    const many = await m.driver.request(parts, [5, 100, 3991]);
    const cat = (r: { len: number; in: Uint8Array[] }) => { const a = new Uint8Array(4096); let o = 0; for (const b of r.in) { a.set(b, o); o += b.length; } return a.subarray(0, r.len); };
    expect(decode(cat(many)).type).toBe(25);
    expect(cat(many)).toEqual(cat(one));
  });
});
