import { describe, test, expect } from '@jest/globals';
import { createMachine } from '../../harness/machine.js';
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
