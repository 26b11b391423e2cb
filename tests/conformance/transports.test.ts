/** The conformance suite with the driver reaching the device only through its registers. */
import { MemoryBackend } from '../../src/backends/memory.js';
import { defineConformance } from './suite.js';

defineConformance('MemoryBackend over virtio-mmio', async () => ({ backend: new MemoryBackend() }), { transport: 'mmio' });
defineConformance('MemoryBackend over virtio-pci', async () => ({ backend: new MemoryBackend() }), { transport: 'pci' });
