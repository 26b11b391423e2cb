/** The conformance suite through the transports' registers, on the packed ring layout, and with
 *  guest RAM in a plain ArrayBuffer (copy mode: the driver never sees the device's window). */
import { MemoryBackend } from '../../src/backends/memory.js';
import { afterEach } from '@jest/globals';
import { defineConformance } from './suite.js';
import { destroyV86s } from './util.js';

afterEach(() => destroyV86s());

defineConformance('MemoryBackend over virtio-mmio', async () => ({ backend: new MemoryBackend() }), { transport: 'mmio' });
defineConformance('MemoryBackend over virtio-pci', async () => ({ backend: new MemoryBackend() }), { transport: 'pci' });
defineConformance('MemoryBackend on a packed virtqueue', async () => ({ backend: new MemoryBackend() }), { ring: 'packed' });
defineConformance('MemoryBackend on a packed virtqueue over virtio-pci', async () => ({ backend: new MemoryBackend() }), { ring: 'packed', transport: 'pci' });
defineConformance('MemoryBackend, guest RAM in a plain ArrayBuffer (copy mode)', async () => ({ backend: new MemoryBackend() }), { memory: 'copy' });
defineConformance('MemoryBackend, copy mode, packed virtqueue over virtio-mmio', async () => ({ backend: new MemoryBackend() }), { memory: 'copy', ring: 'packed', transport: 'mmio' });
defineConformance('MemoryBackend on v86\'s PCI bus (the full v86 adapter)', async () => ({ backend: new MemoryBackend() }), { transport: 'v86' });
defineConformance('MemoryBackend on v86\'s PCI bus, packed virtqueue', async () => ({ backend: new MemoryBackend() }), { transport: 'v86', ring: 'packed' });
