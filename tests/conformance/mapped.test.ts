/**
 * The conformance suite under the mapped security models, over the local backend (the guest's
 * owners, modes, nodes and symlinks in user.virtfs.* xattrs, or .virtfs_metadata files, of plain
 * host files) and over the memory backend (the same wrappers on a backend with no host).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalBackend } from '../../src/backends/local.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { MappedFileBackend, MappedXattrBackend } from '../../src/backends/security.js';
import { defineConformance, type BackendFactory } from './suite.js';

/** A fresh temporary export under `Model` over a LocalBackend (removed by the cleanup). */
function overLocal(Model: typeof MappedXattrBackend | typeof MappedFileBackend): BackendFactory {
  return async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-conf-mapped-'));
    const local = new LocalBackend({ root: dir });
    return {
      backend: new Model(local),
      cleanup: async () => {
        local.destroy();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  };
}

defineConformance('mapped-xattr over LocalBackend', overLocal(MappedXattrBackend), { maxXattr: 2048, mappedTypes: true });
defineConformance('mapped-xattr over MemoryBackend', async () => ({ backend: new MappedXattrBackend(new MemoryBackend()) }), { mappedTypes: true });
defineConformance('mapped-file over LocalBackend', overLocal(MappedFileBackend), { maxXattr: 2048, mappedTypes: true });
defineConformance('mapped-file over MemoryBackend', async () => ({ backend: new MappedFileBackend(new MemoryBackend()) }), { mappedTypes: true });
