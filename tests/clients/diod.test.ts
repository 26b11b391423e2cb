/**
 * diod's own 9P2000.L clients (Debian `diod`: diodls, diodcat, diodload) against
 * `virtio9p serve` on each backend: listings and contents match the export byte for byte.
 * .ci/run installs diod; without it these tests fail (they are not optional).
 */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { serve, tempDir, type Served } from './serve-util.js';

const DIODLS = '/usr/sbin/diodls', DIODCAT = '/usr/sbin/diodcat', DIODLOAD = '/usr/sbin/diodload';

function makeExport(): string {
  const dir = tempDir('diod-export');
  fs.writeFileSync(path.join(dir, 'hello.txt'), 'hello from virtio9p-wasm\n');
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.writeFileSync(path.join(dir, 'sub', 'rand.bin'), crypto.randomBytes(200 * 1024 + 17));
  for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(dir, 'sub', `f${i}`), `file ${i}\n`);
  fs.symlinkSync('hello.txt', path.join(dir, 'link'));
  // diodload attaches aname "ctl" and uses ctl/zero (≥ msize bytes) and ctl/null
  fs.mkdirSync(path.join(dir, 'ctl'));
  fs.writeFileSync(path.join(dir, 'ctl', 'zero'), Buffer.alloc(1 << 20));
  fs.writeFileSync(path.join(dir, 'ctl', 'null'), '');
  return dir;
}

const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { timeout: 60000, maxBuffer: 64 << 20 });

describe.each(['local', 'memory', 'proxy'])('diod clients against virtio9p serve --backend %s', (backend) => {
  let exp: string;
  let srv: Served;
  beforeAll(async () => {
    for (const t of [DIODLS, DIODCAT, DIODLOAD]) if (!fs.existsSync(t)) throw new Error(`${t} missing: apt-get install diod`);
    exp = makeExport();
    srv = await serve(exp, backend);
  });
  afterAll(async () => {
    const code = await srv.stop();
    expect(code).toBe(0);
    expect(fs.existsSync(srv.sock)).toBe(false); // the socket file is removed on SIGTERM
    fs.rmSync(exp, { recursive: true, force: true });
  });

  test('diodls lists the export root and a subdirectory', () => {
    const names = run(DIODLS, ['-s', srv.sock, '-a', exp]).toString().split('\n').filter(Boolean).sort();
    expect(names).toEqual(fs.readdirSync(exp).sort());
    const sub = run(DIODLS, ['-s', srv.sock, '-a', exp, 'sub']).toString().split('\n').filter(Boolean).sort();
    expect(sub).toEqual(fs.readdirSync(path.join(exp, 'sub')).sort());
  });

  test('diodls -l walks and stats every entry', () => {
    const out = run(DIODLS, ['-l', '-s', srv.sock, '-a', exp, 'sub']).toString();
    for (const n of ['rand.bin', 'f0', 'f49']) expect(out).toContain(n);
    expect(out).toMatch(new RegExp(`${200 * 1024 + 17}\\s+.*rand\\.bin`));
  });

  test('diodcat returns files byte for byte (aname empty and the export path)', () => {
    expect(run(DIODCAT, ['-s', srv.sock, '-a', exp, 'sub/rand.bin']).equals(fs.readFileSync(path.join(exp, 'sub/rand.bin')))).toBe(true);
    expect(run(DIODCAT, ['-s', srv.sock, '-a', '', 'hello.txt']).toString()).toBe('hello from virtio9p-wasm\n');
    expect(run(DIODCAT, ['-m', '8192', '-s', srv.sock, '-a', exp, 'sub/rand.bin']).equals(fs.readFileSync(path.join(exp, 'sub/rand.bin')))).toBe(true);
  });

  test('diodcat of a missing file fails cleanly', () => {
    const r = spawnSync(DIODCAT, ['-s', srv.sock, '-a', exp, 'nosuch'], { timeout: 30000 });
    expect(r.status).toBe(1);
    expect(r.stderr.toString()).toMatch(/No such file or directory/);
  });

  test.each([[1, []], [4, []], [1, ['-g']], [4, ['-g']]] as [number, string[]][])('diodload -n %d %j runs against aname ctl', (n, extra) => {
    const r = spawnSync(DIODLOAD, ['-s', srv.sock, '-r', '2', '-n', String(n), ...extra], { timeout: 60000 });
    const line = r.stderr.toString() + r.stdout.toString();
    expect(r.status).toBe(0);
    const m = /diodload: (\d+) ops\/s/.exec(line);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
  });
});
