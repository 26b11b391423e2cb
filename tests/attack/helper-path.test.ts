/**
 * A helper path that cannot run never harms the caller: the CLI prints one line and exits 2,
 * the API rejects, and nothing is signalled. The CLI case runs under its own `bash` in a new
 * process group (setsid), as a user's shell would: the test checks that this shell survived to
 * print the CLI's exit code (a kill(0, SIGKILL) would have killed it first).
 */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI, tempDir } from '../clients/serve-util.js';
import { ProxyBackend } from '../../src/backends/proxy/backend.js';
import { HelperNotRunnable } from '../../src/backends/proxy/client.js';
import { makeBackend } from '../../src/backends/make.js';

let dir: string;
let notExec: string;
let badInterp: string;
beforeAll(() => {
  dir = tempDir('helperpath');
  notExec = path.join(dir, 'not-executable');
  fs.writeFileSync(notExec, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
  // executable, but exec fails (its interpreter is missing): the spawn itself fails
  badInterp = path.join(dir, 'bad-interpreter');
  fs.writeFileSync(badInterp, '#!/nonexistent/interpreter\n', { mode: 0o755 });
});
afterAll(() => { fs.rmSync(dir, { recursive: true, force: true }); });

/** Run `cmd` through `setsid bash -c` in its own process group; resolves with bash's output. */
function inOwnGroup(args: string[]): Promise<{ stdout: string; stderr: string; code: number | null; signal: string | null }> {
  return new Promise((resolve) => {
    const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const p = spawn('setsid', ['bash', '-c', `${quoted}; echo "rc=$?"`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (code, signal) => resolve({ stdout, stderr, code, signal }));
  });
}

describe('a helper that cannot run', () => {
  test.each([
    ['/nonexistent/helper', 'no such file'],
    ['NOTEXEC', 'not executable'],
    ['/', 'not a regular file'],
    ['BADINTERP', 'spawn BADINTERP ENOENT'],
  ])('serve --helper %s: one line, exit 2, the calling shell survives', async (helper, why) => {
    const h = helper === 'NOTEXEC' ? notExec : helper === 'BADINTERP' ? badInterp : helper;
    const r = await inOwnGroup([process.execPath, CLI, 'serve', '--backend', 'proxy', '--helper', h, '--export', dir]);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('rc=2');
    expect(r.stderr.trim().split('\n')).toEqual([`virtio9p: proxy helper ${h}: ${why.replace('BADINTERP', h)}`]);
  });

  test('ProxyBackend.launch and makeBackend reject (no throw out of band, nothing signalled)', async () => {
    await expect(ProxyBackend.launch({ export: dir, helper: '/nonexistent/helper' })).rejects.toBeInstanceOf(HelperNotRunnable);
    await expect(ProxyBackend.launch({ export: dir, helper: notExec }, { connections: 2 })).rejects.toBeInstanceOf(HelperNotRunnable);
    await expect(makeBackend('proxy', dir, { helper: '/nonexistent/helper' })).rejects.toThrow(/no such file/);
    await expect(ProxyBackend.launch({ export: dir, helper: badInterp })).rejects.toThrow(/ENOENT/);
    expect(process.kill(process.pid, 0)).toBe(true); // and we are still here
  });
});
