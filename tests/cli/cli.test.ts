/** The `virtio9p` command as a user meets it: help, bad input, the main job. */
import { describe, test, expect } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { CLI } from '../clients/serve-util.js';

const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120000 });

describe('virtio9p CLI', () => {
  test('--help lists the commands; each command --help lists its flags', () => {
    const h = run('--help');
    expect(h.status).toBe(0);
    for (const c of ['demo', 'serve', 'bench']) expect(h.stdout).toContain(c);
    const s = run('serve', '--help');
    expect(s.status).toBe(0);
    for (const f of ['--export', '--backend', '--listen', '--msize', '--max-fids', '--readonly']) expect(s.stdout).toContain(f);
    expect(run('bench', '--help').stdout).toContain('--json');
    expect(run('demo', '--help').status).toBe(0);
  });

  test.each([
    [['serve', '--export'], /--export needs a value/],
    [['serve', '--nope'], /unknown flag '--nope'/],
    [['serve', '--export', '/definitely/not/here'], /export directory '\/definitely\/not\/here' does not exist/],
    [['serve', '--export', '.', '--backend', 'zfs'], /bad --backend 'zfs'/],
    [['serve', '--export', '.', '--msize', '12'], /bad --msize '12'/],
    [['serve', '--export', '.', '--max-fids', '0'], /bad --max-fids '0' \(want 1\.\.16777216\)/],
    [['serve', '--export', '.', '--max-fids', '1.5'], /bad --max-fids '1\.5'/],
    [['serve', '--export', '.', '--max-fids', '16777217'], /bad --max-fids '16777217'/],
    [['serve', '--export', '.', '--listen', 'udp:1'], /bad --listen 'udp:1'/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['bench', '--json=1'], /flag --json takes no value/],
    [['demo', 'extra'], /unexpected argument 'extra'/],
  ])('%j → one line on stderr, exit 2', (args, msg) => {
    const r = run(...(args as string[]));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(msg);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stdout).toBe('');
  });

  test('no command: usage on stdout, exit 2', () => {
    const r = run();
    expect(r.status).toBe(2);
    expect(r.stdout).toContain('usage: virtio9p');
  });

  test('demo: the guest session runs through the virtqueue and reports its rate', () => {
    const r = run('demo');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Tversion        → 9P2000.L, msize 512000');
    expect(r.stdout).toMatch(/Treaddir \/ +→ \. {2}\.\. {2}README\.txt {2}etc {2}home {2}var/);
    expect(r.stdout).toContain('Tread again     → "# notes\\n- ring buffers are fun\\n- and so is 9P\\n"');
    expect(r.stdout).toContain('Tunlinkat       → var/log/boot.log.1 removed');
    expect(r.stdout).toMatch(/session: \d+ requests, \d+ replies, no errors, [\d,]+ ops\/s overall/);
  });

  test('bench --quick --json prints every workload', () => {
    const r = run('bench', '--quick', '--json');
    expect(r.status).toBe(0);
    const res = JSON.parse(r.stdout) as { name: string; opsPerSec: number }[];
    expect(res.length).toBeGreaterThanOrEqual(7);
    for (const x of res) expect(x.opsPerSec).toBeGreaterThan(0);
  });

  test('serve of a file (not a directory) is a clear error', () => {
    const r = run('serve', '--export', CLI);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/is not a directory/);
  });
});
