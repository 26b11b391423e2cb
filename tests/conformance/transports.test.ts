/** The conformance suite through the transports' registers and on the packed ring layout. */
import { MemoryBackend } from '../../src/backends/memory.js';
import { defineConformance } from './suite.js';

defineConformance('MemoryBackend over virtio-mmio', async () => ({ backend: new MemoryBackend() }), { transport: 'mmio' });
defineConformance('MemoryBackend over virtio-pci', async () => ({ backend: new MemoryBackend() }), { transport: 'pci' });
defineConformance('MemoryBackend on a packed virtqueue', async () => ({ backend: new MemoryBackend() }), { ring: 'packed' });
defineConformance('MemoryBackend on a packed virtqueue over virtio-pci', async () => ({ backend: new MemoryBackend() }), { ring: 'packed', transport: 'pci' });
