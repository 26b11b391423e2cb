/** The `virtio9p` command as a user meets it: help, bad input, the main job. */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { CLI, tempDir } from '../clients/serve-util.js';

const root = new URL('../../', import.meta.url).pathname;
const BENCH = path.join(root, 'build/bench.js');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120000 });
const runEnv = (env: Record<string, string>, ...args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120000, env: { ...process.env, ...env } });

/** Start `serve`, wait for its "serving … on ADDRESS" line, stop it by its PID. */
async function serveUntilListening(args: string[]): Promise<{ stdout: string; stderr: string; code: number | string | null }> {
  const proc = spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  proc.stderr!.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | string | null>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig)));
  await new Promise<void>((resolve) => {
    proc.stdout!.on('data', (d) => { stdout += d; if (stdout.includes('\n')) resolve(); });
    void exited.then(() => resolve());
  });
  if (proc.exitCode === null) process.kill(proc.pid!, 'SIGTERM');
  return { stdout, stderr, code: await exited };
}

describe('virtio9p CLI', () => {
  test('--help lists the commands; each command --help lists its flags', () => {
    const h = run('--help');
    expect(h.status).toBe(0);
    for (const c of ['demo', 'serve', 'helper', '--version']) expect(h.stdout).toContain(c);
    const s = run('serve', '--help');
    expect(s.status).toBe(0);
    for (const f of ['--export', '--backend', '--listen', '--msize', '--readonly', '--max-connections', '--attach-timeout',
      '--idle-timeout', '--frame-timeout', '--connection-buffer', '--max-open', '--max-xattr-bytes', '--memory-capacity', '--memory-files',
      '--security-model', '--max-fids', '--access', '--squash', '--fmode', '--dmode']) expect(s.stdout).toContain(f);
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
    [['serve', '--export', '.', '--max-connections', '64'], /bad --max-connections '64' \(want 1\.\.63\)/],
    [['serve', '--export', '.', '--max-connections', 'many'], /bad --max-connections 'many'/],
    [['serve', '--export', '.', '--attach-timeout', '-1'], /bad --attach-timeout '-1'/],
    [['serve', '--export', '.', '--idle-timeout', '1h'], /bad --idle-timeout '1h'/],
    [['serve', '--export', '.', '--frame-timeout', 'x'], /bad --frame-timeout 'x'/],
    [['serve', '--export', '.', '--connection-buffer', '1T'], /bad --connection-buffer '1T'/],
    [['serve', '--export', '.', '--max-open', '0'], /bad --max-open '0'/],
    [['serve', '--export', '.', '--max-xattr-bytes', '1.5M'], /bad --max-xattr-bytes '1.5M'/],
    [['serve', '--export', '.', '--memory-capacity', '2M'], /--memory-capacity and --memory-files need --backend memory/],
    [['serve', '--export', '.', '--backend', 'memory', '--memory-files', '0'], /bad --memory-files '0'/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['bench'], /unknown command 'bench'/],
    [['serve'], /serve needs a directory/],
    [['serve', '.', '--export', '.'], /give the directory once/],
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

  test('serve of a file (not a directory) is a clear error', () => {
    const r = run('serve', '--export', CLI);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/is not a directory/);
  });

  test('--version prints the package version', () => {
    const r = run('--version');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version);
  });

  test('demo removes its temporary directory, also when it fails', () => {
    const tmp = tempDir('demo-tmp');
    try {
      const ok = runEnv({ TMPDIR: tmp }, 'demo', '--backend', 'local');
      expect(ok.status).toBe(0);
      expect(fs.readdirSync(tmp)).toEqual([]);
      // the proxy backend cannot load its addon: the demo fails after making its directory
      const bad = runEnv({ TMPDIR: tmp, VIRTIO9P_FDPASS: path.join(tmp, 'missing.node') }, 'demo', '--backend', 'proxy');
      expect(bad.status).toBe(1);
      expect(bad.stderr).toMatch(/fdpass addon is not available/);
      expect(fs.readdirSync(tmp)).toEqual([]);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('serve: listen addresses and helpers, one clear line each', () => {
  let exp: string;
  beforeAll(() => { exp = tempDir('exp'); fs.writeFileSync(path.join(exp, 'a'), 'a'); });
  afterAll(() => fs.rmSync(exp, { recursive: true, force: true }));

  const fails = (args: string[], msg: RegExp) => {
    const r = run('serve', exp, ...args);
    expect([r.status, r.stderr.trim().split('\n').length, r.stdout]).toEqual([1, 1, '']);
    expect(r.stderr).toMatch(msg);
  };

  test('a Unix socket in a directory that does not exist', () => {
    fails(['--listen', `unix:${path.join(exp, 'no', 'such', 'dir', 's.sock')}`], /cannot listen on unix:.*: directory '.*dir' does not exist/);
  });
  test('an fd that is not open', () => fails(['--listen', 'fd:99'], /cannot listen on fd:99: no such open descriptor/));
  test('a file that is not a socket', () => fails(['--listen', `unix:${path.join(exp, 'a')}`], /the file exists and is not a socket/));
  test('a helper that is not one', () => {
    fails(['--backend', 'proxy', '--helper', '/bin/false'], /helper '\/bin\/false' did not serve .*: it exited or closed the connection before answering/);
  });
  test('a helper socket that does not exist', () => {
    fails(['--backend', 'proxy', '--helper-socket', path.join(exp, 'none.sock')], /helper socket '.*none\.sock' does not exist/);
  });

  test('a stale socket file (no server answers) is replaced, and said so', async () => {
    const dir = tempDir('stale');
    const sock = path.join(dir, 's.sock');
    try {
      // a process that binds the socket and exits without removing it, as a crashed server does
      const r = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.exit(0))`]);
      expect(r.status).toBe(0);
      expect(fs.lstatSync(sock).isSocket()).toBe(true);
      const s = await serveUntilListening([exp, '--listen', `unix:${sock}`]);
      expect(s.stderr).toContain(`removed the stale socket file ${sock}`);
      expect(s.stdout).toContain(`on unix:${sock}`);
      expect(s.code).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a socket another server listens on is left alone', async () => {
    const dir = tempDir('live');
    const sock = path.join(dir, 's.sock');
    const other = net.createServer((c) => c.destroy());
    await new Promise<void>((resolve) => other.listen(sock, resolve));
    try {
      const r = spawnSync(process.execPath, [CLI, 'serve', exp, '--listen', `unix:${sock}`], { encoding: 'utf8', timeout: 60000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/another server is listening there/);
      expect(fs.lstatSync(sock).isSocket()).toBe(true);
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('tcp::PORT listens on every address; IPv6 addresses are printed in brackets', async () => {
    const any = await serveUntilListening([exp, '--listen', 'tcp::0']);
    expect(any.stdout).toMatch(/on tcp:(\[::\]|0\.0\.0\.0):\d+\n/);
    const v6 = await serveUntilListening([exp, '--listen', 'tcp:[::1]:0']);
    expect(v6.stdout).toMatch(/on tcp:\[::1\]:\d+\n/);
  });
});

describe('npm run bench (a repository script, not part of the installed command)', () => {
  const bench = (...args: string[]) => spawnSync(process.execPath, [BENCH, ...args], { encoding: 'utf8', timeout: 300000 });
  test('--help; --chart needs --out', () => {
    expect(bench('--help').stdout).toContain('--out FILE');
    const r = bench('--chart');
    expect([r.status, r.stderr.trim()]).toEqual([2, 'bench: --chart needs --out FILE']);
    expect(bench('--json=1').stderr).toMatch(/flag --json takes no value/);
  });

  test('--quick --json prints every workload; --chart --out writes the chart there', () => {
    const dir = tempDir('chart');
    try {
      const out = path.join(dir, 'chart.svg');
      const r = bench('--quick', '--json', '--no-v86', '--chart', '--out', out);
      expect(r.status).toBe(0);
      const res = JSON.parse(r.stdout) as { name: string; opsPerSec: number }[];
      expect(res.length).toBeGreaterThanOrEqual(7);
      for (const x of res) expect(x.opsPerSec).toBeGreaterThan(0);
      expect(fs.readFileSync(out, 'utf8')).toMatch(/^<svg/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
