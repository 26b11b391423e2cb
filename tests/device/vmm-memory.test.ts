/**
 * Guest RAM supplied by the VMM as its own WebAssembly.Memory (zero copy): the device works
 * in place on the VMM's bytes, and the VMM sees the rings and replies in its own view.
 */
import { describe, test, expect } from '@jest/globals';
import { Virtio9pDevice } from '../../src/device.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { SplitDriver } from '../../src/testing/virtio/split-driver.js';
import { P9Client } from '../../src/testing/p9/client.js';

describe('VMM-supplied memory', () => {
  test('guest RAM stays where the VMM put it; the device reads and writes it in place', async () => {
    const core = await Virtio9pDevice.coreBytes();
    const guestBase = core + 65536;            // the VMM keeps one page of its own in between
    const guestSize = 8 << 20;
    const memory = new WebAssembly.Memory({ initial: (guestBase + guestSize) / 65536 });
    const vmm = new Uint8Array(memory.buffer);
    vmm.set(new TextEncoder().encode('guest firmware'), guestBase + (6 << 20)); // the VMM's own data
    const mem = new MemoryBackend();
    mem.writeFile('f', 'in place');
    const d = await Virtio9pDevice.create({ backend: mem, memory, guestBase, guestMemorySize: guestSize });
    expect(d.ram.buffer).toBe(memory.buffer);
    expect(d.ram.byteOffset).toBe(guestBase);
    expect(new TextDecoder().decode(d.ram.subarray(6 << 20, (6 << 20) + 14))).toBe('guest firmware');
    const driver = new SplitDriver(d, { queueSize: 64, arenaBase: 1 << 20, arenaSize: 4 << 20 });
    const c = new P9Client(driver.rpcFn, { msize: 65536 });
    await c.version(65536);
    await c.attach(0, 0xffffffff, 'root', '', 0);
    await c.walk(0, 1, ['f']);
    await c.lopen(1, 0);
    expect(new TextDecoder().decode(await c.read(1, 0, 100))).toBe('in place');
    // the VMM's own view shows the device's used ring progress at guestBase + usedAddr
    const vmmView = new DataView(memory.buffer);
    expect(vmmView.getUint16(guestBase + driver.usedAddr + 2, true)).toBe(5);
    expect(new TextDecoder().decode(vmm.subarray(guestBase + (6 << 20), guestBase + (6 << 20) + 14))).toBe('guest firmware');
  });

  test('a guestBase inside the device\'s own area is refused', async () => {
    const core = await Virtio9pDevice.coreBytes();
    const memory = new WebAssembly.Memory({ initial: (core + (1 << 20)) / 65536 });
    await expect(Virtio9pDevice.create({ backend: new MemoryBackend(), memory, guestBase: 0, guestMemorySize: 1 << 20 })).rejects.toThrow(/guestBase/);
  });
});
