/**
 * The backend-independent 9P2000.L conformance suite on a ProxyBackend over QEMU's real
 * virtfs-proxy-helper: every factory call exports a fresh temporary directory through freshly
 * launched helpers (stopped, with the backend's fds, by the cleanup).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProxyBackend } from '../../src/backends/proxy/backend.js';
import { defineConformance } from './suite.js';

execFileSync(process.execPath, [path.resolve('native/build.mjs')], { stdio: 'inherit' });

defineConformance('ProxyBackend (virtfs-proxy-helper)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-conf-proxy-'));
  const backend = await ProxyBackend.launch({ export: dir }, { connections: 2 });
  return {
    backend,
    cleanup: async () => {
      await backend.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}, { maxXattr: 2048 });
