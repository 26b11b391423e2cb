import { describe, test, expect } from '@jest/globals';
import { createMachine } from '../../src/testing/machine.js';
import { MemoryBackend } from '../../src/backends/memory.js';

describe('smoke', () => {
  test('version, attach, walk, read', async () => {
    const backend = new MemoryBackend();
    backend.writeFile('hello.txt', 'hello world\n');
    const { client, device } = await createMachine({ backend });
    const v = await client.version(512000);
    expect(v.version).toBe('9P2000.L');
    await client.attach(0, 0xffffffff, 'root', '', 0);
    await client.walk(0, 1, ['hello.txt']);
    await client.lopen(1, 0);
    const data = await client.read(1, 0, 4096);
    expect(new TextDecoder().decode(data)).toBe('hello world\n');
    expect(device.counters().replies).toBeGreaterThan(3);
  });
});

describe('offered features', () => {
  const PACKED = 1n << 34n, EVENT_IDX = 1n << 29n, VERSION_1 = 1n << 32n;
  test('a VMM withholds RING_PACKED: it is not offered, a driver taking it is refused, the split ring works', async () => {
    const backend = new MemoryBackend();
    backend.writeFile('f', 'split');
    const { client, device } = await createMachine({ backend, device: { features: ~PACKED } });
    expect(device.deviceFeatures & PACKED).toBe(0n);
    expect(device.deviceFeatures & EVENT_IDX).toBe(EVENT_IDX);
    expect(device.driverFeatures & PACKED).toBe(0n);          // what the harness driver accepted
    expect(device.driverFeatures & VERSION_1).toBe(VERSION_1);
    await client.version(65536);
    await client.attach(0, 0xffffffff, 'root', '', 0);
    await client.walk(0, 1, ['f']);
    await client.lopen(1, 0);
    expect(new TextDecoder().decode(await client.read(1, 0, 100))).toBe('split');
    device.reset();
    expect(device.setDriverFeatures(VERSION_1 | PACKED)).toBe(false);
    expect(device.setDriverFeatures(VERSION_1)).toBe(true);
  });

  test('VERSION_1 is always offered (a modern-only device), whatever the mask', async () => {
    const { device } = await createMachine({ backend: new MemoryBackend(), device: { features: 0n } });
    expect(device.deviceFeatures).toBe(VERSION_1);
    const all = await createMachine({ backend: new MemoryBackend() });
    expect(all.device.deviceFeatures & (PACKED | EVENT_IDX | VERSION_1 | 1n | (1n << 28n))).toBe(PACKED | EVENT_IDX | VERSION_1 | 1n | (1n << 28n));
  });
});
