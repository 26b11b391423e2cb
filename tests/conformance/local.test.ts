/**
 * The backend-independent 9P2000.L conformance suite on a LocalBackend: every factory call
 * exports a fresh temporary directory, removed again (with the backend's fds) by the cleanup.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalBackend } from '../../src/backends/local.js';
import { defineConformance } from './suite.js';

defineConformance('LocalBackend', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-conf-local-'));
  const backend = new LocalBackend({ root: dir });
  return {
    backend,
    cleanup: async () => {
      backend.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}, { maxXattr: 2048 });
