/**
 * The full v86 adapter (src/adapters/v86-pci.ts): our device on v86's PCI bus, reached only the
 * way a guest driver in v86 reaches it — PCI configuration space through ports 0xCF8/0xCFC,
 * BAR 0 through v86's I/O port dispatch, rings and buffers in v86's own guest RAM (copy mode).
 * v86's CPU never runs here; tests/e2e/side-by-side.test.ts boots a Linux guest on it.
 */
import { describe, test, expect, afterAll } from '@jest/globals';
import { loadV86Node, createV86 } from '../../harness/bench/v86.js';
import { V86Virtio9p } from '../../src/adapters/v86-pci.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { V86PciPort } from '../../src/testing/virtio/v86-port.js';
import { SplitDriver } from '../../src/testing/virtio/split-driver.js';
import { P9Client } from '../../src/testing/p9/client.js';
import { DeferredBackend, tick } from '../conformance/util.js';
import type { Backend } from '../../src/backends/backend.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

const emulators: Any[] = [];
afterAll(() => { for (const e of emulators) e.destroy?.(); });

async function v86(): Promise<Any> {
  const emu = await createV86(await loadV86Node(), undefined); // no `filesystem`: no 9p device of v86's own
  emulators.push(emu);
  return emu;
}

async function session(backend: Backend, opts: { pciId?: number } = {}) {
  const emu = await v86();
  const cpu = emu.v86.cpu;
  const dirty: [number, number][] = [];
  const jit = cpu.jit_dirty_cache.bind(cpu);
  cpu.jit_dirty_cache = (a: number, b: number) => { dirty.push([a, b]); jit(a, b); };
  const irq = { raised: 0, lowered: 0 };
  const pci = cpu.devices.pci;
  const raise = pci.raise_irq.bind(pci), lower = pci.lower_irq.bind(pci);
  pci.raise_irq = (id: number) => { if (id === (opts.pciId ?? 0x20)) irq.raised++; raise(id); };
  pci.lower_irq = (id: number) => { if (id === (opts.pciId ?? 0x20)) irq.lowered++; lower(id); };
  const adapter = await V86Virtio9p.attach(emu, { backend, tag: 'host9p', pciId: opts.pciId });
  const port = new V86PciPort(adapter, cpu);
  const driver = new SplitDriver(port, { queueSize: 128, arenaBase: 8 << 20, arenaSize: 16 << 20 });
  const client = new P9Client(driver.rpcFn, { msize: 512000 });
  return { emu, cpu, adapter, port, driver, client, dirty, irq };
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe('v86 full adapter: our device on v86\'s PCI bus', () => {
  test('PCI function: our configuration space with an I/O BAR 0; the mount tag through the BAR', async () => {
    const { port, adapter, cpu } = await session(new MemoryBackend());
    expect(port.cfg(0, 4)).toBe((0x1049 << 16 | 0x1af4) >>> 0);
    expect(port.cfg(0x3d, 1)).toBe(1);                 // INTA#
    expect(port.barPort).toBe(0xe000);                   // the initial port (no BIOS ran)
    expect(port.readTag()).toBe('host9p');
    expect(cpu.devices.pci.devices[adapter.pciId].name).toBe('virtio9p-wasm');
  });

  test('a 9P session through v86\'s ports and RAM: read, create, write, readdir', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('hello.txt', 'served by our device inside v86\n');
    const { client, adapter, dirty, irq, cpu } = await session(mem);
    expect((await client.version(512000)).msize).toBe(512000);
    await client.attach(0, 0xffffffff, 'root', '', 0);
    await client.walk(0, 1, ['hello.txt']);
    await client.lopen(1, 0);
    expect(text(await client.read(1, 0, 4096))).toBe('served by our device inside v86\n');
    await client.walk(0, 2, []);
    await client.lcreate(2, 'new.txt', 0o102, 0o644, 0);
    expect(await client.write(2, 0, new TextEncoder().encode('written through v86'))).toBe(19);
    expect(text(mem.readFileSync('new.txt'))).toBe('written through v86');
    await client.walk(0, 3, []);
    await client.lopen(3, 0o200000);
    const names = (await client.readdir(3, 0n, 8192)).map((e: Any) => text(e.name)).sort();
    expect(names).toEqual(['.', '..', 'hello.txt', 'new.txt']);
    expect(adapter.device.counters().errors).toEqual({});
    // every byte the device wrote into v86's RAM was reported to v86's JIT
    const ramSize = cpu.mem8.length;
    expect(dirty.length).toBeGreaterThan(0);
    for (const [a, b] of dirty) expect(a < b && b <= ramSize).toBe(true);
    // interrupts went through v86's PCI INTx, and reading ISR lowered the line
    expect(irq.raised).toBeGreaterThan(0);
    expect(irq.lowered).toBeGreaterThanOrEqual(irq.raised);
    expect(adapter.interrupts).toBe(irq.raised);
  });

  test('the BIOS moving BAR 0: accesses follow it to the new ports', async () => {
    const { client, port, emu } = await session(new MemoryBackend());
    await client.version(65536);
    port.cfgWrite(0x10, 0xc000 | 1);
    expect(port.barPort).toBe(0xc000);
    expect(emu.v86.cpu.io.ports[0xe000].device).not.toBe(emu.v86.cpu.io.ports[0xc000].device);
    await client.attach(0, 0xffffffff, 'root', '', 0);
    expect((await client.getattr(0, 0x7ffn)).mode & 0o170000).toBe(0o040000);
  });

  test('an asynchronous backend: the reply arrives later and raises the interrupt then', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('f', 'later');
    const slow = new DeferredBackend(mem);
    const { client, irq } = await session(slow);
    await client.version(65536);
    await client.attach(0, 0xffffffff, 'root', '', 0);
    await client.walk(0, 1, ['f']);
    await client.lopen(1, 0);
    slow.hold((m) => m === 'read');
    const before = irq.raised;
    const r = client.read(1, 0, 100);
    await slow.waitFor('read');
    await tick();
    expect(irq.raised).toBe(before);
    slow.release();
    expect(text(await r)).toBe('later');
    expect(irq.raised).toBe(before + 1);
  });

  test('bad attachments are refused with a clear error', async () => {
    const emu = await v86();
    await expect(V86Virtio9p.attach(emu, { backend: new MemoryBackend(), pciId: 0x08 })).rejects.toThrow(/taken by/);
    await expect(V86Virtio9p.attach(emu, { backend: new MemoryBackend(), pciId: 300 })).rejects.toThrow(RangeError);
    await expect(V86Virtio9p.attach(emu, { backend: new MemoryBackend(), initialPort: 0x100 })).rejects.toThrow(RangeError);
    await expect(V86Virtio9p.attach({}, { backend: new MemoryBackend() })).rejects.toThrow(/not a v86 emulator/);
  });
});
