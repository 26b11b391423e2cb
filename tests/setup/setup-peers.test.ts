/**
 * scripts/setup-peers.sh where it cannot install (here: a PATH with no peers and no apt-get):
 * one line naming what is missing, exit 1 — never a partial install or a hang.
 */
import { describe, test, expect } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const repo = new URL('../../', import.meta.url).pathname;

describe('setup-peers.sh', () => {
  test('nothing installable: one line naming what is missing, exit 1', () => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-path-'));
    try {
      for (const c of ['id', 'wc', 'dirname']) {
        const which = spawnSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' }).stdout.trim();
        fs.symlinkSync(which, path.join(bin, c));
      }
      const r = spawnSync('/bin/sh', [path.join(repo, 'scripts/setup-peers.sh')], { encoding: 'utf8', timeout: 30000, env: { PATH: bin } });
      expect(r.status).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^setup-peers: missing: .*socat.*qemu-system-x86_64.*C-compiler/);
      expect(lines[0]).toMatch(process.getuid?.() === 0 ? /no apt-get here to install them/ : /installing them needs root/);
      expect(r.stdout).toBe('');
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });
});
