import { MemoryBackend } from '../../src/backends/memory.js';
import { defineConformance } from './suite.js';

defineConformance('MemoryBackend', async () => ({ backend: new MemoryBackend() }));
