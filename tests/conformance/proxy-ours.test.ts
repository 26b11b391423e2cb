/**
 * The backend-independent 9P2000.L conformance suite on a ProxyBackend over the project's own
 * helper (`virtio9p helper`, run through the native/virtio9p-helper shim, which executes the
 * bundle native/build.mjs makes from src/helper/): every factory call exports a fresh
 * temporary directory through freshly launched helpers.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProxyBackend } from '../../src/backends/proxy/backend.js';
import { defineConformance } from './suite.js';

execFileSync(process.execPath, [path.resolve('native/build.mjs')], { stdio: 'inherit' });
const helper = path.resolve('native/virtio9p-helper');

defineConformance('ProxyBackend (virtio9p helper)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-conf-ours-'));
  const backend = await ProxyBackend.launch({ export: dir, helper }, { connections: 2 });
  return {
    backend,
    cleanup: async () => {
      await backend.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}, { maxXattr: 2048 });
