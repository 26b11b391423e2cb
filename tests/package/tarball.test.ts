/**
 * The package as its users get it: a fresh copy of the repository (tracked and new files only:
 * no dist/, build/ or native/build/) is packed with `npm pack`, the tarball is installed into a
 * new project, and everything is used from there — the `virtio9p` command, the three entries
 * from ESM, the declarations under strict compiler flags (with and without DOM and Node types),
 * and a browser bundle of '.' + './testing' loaded by a page in headless Chromium.
 * Needs diod's clients (diodls, diodcat) and /usr/bin/chromium (scripts/setup-peers.sh).
 */
import { describe, test, expect, beforeAll, afterAll } from '@jest/globals';
import { execFileSync, spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';

const repo = new URL('../../', import.meta.url).pathname;
const repoModules = fs.realpathSync(path.join(repo, 'node_modules'));
const TSC = path.join(repoModules, 'typescript/bin/tsc');
const DIODLS = '/usr/sbin/diodls', DIODCAT = '/usr/sbin/diodcat';
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

let tmp: string;
let proj: string;
let tgzFiles: string[];

function sh(cmd: string, args: string[], cwd: string, timeout = 600000): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) → ${r.status ?? r.signal}\n${r.stdout}\n${r.stderr}`);
  return r;
}

beforeAll(() => {
  for (const p of [DIODLS, DIODCAT, CHROMIUM]) if (!fs.existsSync(p)) throw new Error(`${p} missing: run scripts/setup-peers.sh`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'v9p-tarball-'));
  // a fresh copy: what git tracks plus new files not ignored, nothing built
  const clone = path.join(tmp, 'clone');
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repo, encoding: 'utf8' })
    .split('\0').filter((f) => f !== '' && fs.existsSync(path.join(repo, f)) && fs.lstatSync(path.join(repo, f)).isFile());
  for (const f of files) {
    fs.mkdirSync(path.dirname(path.join(clone, f)), { recursive: true });
    fs.copyFileSync(path.join(repo, f), path.join(clone, f));
  }
  expect(fs.existsSync(path.join(clone, 'dist'))).toBe(false);
  fs.symlinkSync(repoModules, path.join(clone, 'node_modules'));
  const out = path.join(tmp, 'out');
  fs.mkdirSync(out);
  const pack = sh('npm', ['pack', '--json', '--pack-destination', out], clone, 900000);
  const info = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  tgzFiles = info[0]!.files.map((f) => f.path);
  const tgz = path.join(out, info[0]!.filename);
  proj = path.join(tmp, 'proj');
  fs.mkdirSync(proj);
  fs.writeFileSync(path.join(proj, 'package.json'), JSON.stringify({ name: 'user-project', version: '1.0.0', private: true, type: 'module' }));
  sh('npm', ['install', '--prefer-offline', tgz], proj);
}, 1200000);

afterAll(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

describe('the tarball', () => {
  test('holds the built library, declarations, core, prebuilt addons and docs; no sources of the repository', () => {
    for (const f of ['dist/cli.js', 'dist/node/index.js', 'dist/node/node.js', 'dist/node/testing.js', 'dist/browser/index.js',
      'dist/browser/testing.js', 'dist/types/index.d.ts', 'dist/types/node.d.ts', 'dist/types/testing/index.d.ts',
      'build/virtio9p.wasm', 'build/virtio9p.shared.wasm', 'build/virtio9p.debug.wasm', 'prebuilds/linux-x64/fdpass.node',
      'prebuilds/linux-x64/fsops.node', 'native/install.mjs', 'native/virtio9p-helper', 'LICENSE', 'README.md', 'CHANGELOG.md', 'package.json']) {
      expect([f, tgzFiles.includes(f)]).toEqual([f, true]);
    }
    expect(tgzFiles.filter((f) => /^(harness|tests|src|assembly|docs)\//.test(f))).toEqual([]);
  });

  test('npx virtio9p --version and demo', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string };
    expect(sh('npx', ['--no-install', 'virtio9p', '--version'], proj).stdout.trim()).toBe(pkg.version);
    const demoTmp = path.join(tmp, 'demo-tmp');
    fs.mkdirSync(demoTmp);
    const r = spawnSync('npx', ['--no-install', 'virtio9p', 'demo'], { cwd: proj, encoding: 'utf8', timeout: 300000, env: { ...process.env, TMPDIR: demoTmp } });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('backend: proxy');
    expect(r.stdout).toMatch(/session: \d+ requests, \d+ replies, no errors/);
    expect(fs.readdirSync(demoTmp)).toEqual([]);
  });

  test('npx virtio9p serve DIR (local backend), read by diodls and diodcat', async () => {
    const exp = path.join(tmp, 'export');
    fs.mkdirSync(path.join(exp, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(exp, 'hello.txt'), 'hello from the tarball\n');
    fs.writeFileSync(path.join(exp, 'sub', 'f'), 'f');
    const sock = path.join(tmp, 'serve.sock');
    const bin = path.join(proj, 'node_modules/.bin/virtio9p');
    const proc = spawn(bin, ['serve', exp, '--listen', `unix:${sock}`], { cwd: proj, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | string | null>((resolve) => proc.once('exit', (c, s) => resolve(c ?? s)));
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        proc.stdout!.on('data', (d) => { out += d; if (out.includes('\n')) resolve(); });
        void exited.then((c) => reject(new Error(`serve exited ${c}`)));
      });
      expect(out).toContain(`(local, mapped-xattr) on unix:${sock}`);
      const ls = sh(DIODLS, ['-s', sock, '-a', exp], proj, 60000).stdout.split('\n').filter(Boolean).sort();
      expect(ls).toEqual(['hello.txt', 'sub']);
      expect(sh(DIODCAT, ['-s', sock, '-a', exp, 'hello.txt'], proj, 60000).stdout).toBe('hello from the tarball\n');
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, 'SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  test('without a prebuilt binary the install step compiles the addons; without a compiler it says so in one line', () => {
    const pkg = path.join(tmp, 'no-prebuilds', 'virtio9p-wasm');
    fs.cpSync(path.join(proj, 'node_modules/virtio9p-wasm'), pkg, { recursive: true });
    fs.rmSync(path.join(pkg, 'prebuilds'), { recursive: true, force: true });
    const install = (env: Record<string, string>) =>
      spawnSync(process.execPath, [path.join(pkg, 'native/install.mjs')], { cwd: pkg, encoding: 'utf8', timeout: 300000, env: { ...process.env, ...env } });
    const noCc = install({ CC: path.join(tmp, 'no-such-cc') });
    expect(noCc.status).toBe(0); // the device, MemoryBackend and the browser build work without the addons
    expect(noCc.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^virtio9p-wasm: cannot build the native addons: no C compiler \('.*no-such-cc' not found/)]);
    expect(fs.existsSync(path.join(pkg, 'native/build'))).toBe(false);
    const use = `import { LocalBackend } from ${JSON.stringify(path.join(pkg, 'dist/node/node.js'))}; new LocalBackend({ root: ${JSON.stringify(tmp)} }); console.log('ok');`;
    const before = spawnSync(process.execPath, ['--input-type=module', '-e', use], { encoding: 'utf8' });
    expect(before.stderr).toMatch(/the fsops addon is not available: no prebuilt binary for linux-x64 and none built/);
    const cc = install({});
    expect([cc.status, cc.stderr]).toEqual([0, '']);
    for (const a of ['fdpass', 'fsops']) expect(fs.existsSync(path.join(pkg, 'native/build', `${a}.node`))).toBe(true);
    expect(spawnSync(process.execPath, ['--input-type=module', '-e', use], { encoding: 'utf8' }).stdout).toBe('ok\n');
  });

  test("an ESM program uses '.', './node' and './testing'", () => {
    const dir = path.join(tmp, 'esm-export');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'on-disk.txt'), 'from the local backend\n');
    fs.writeFileSync(path.join(proj, 'check.mjs'), `
import { Virtio9pDevice, MemoryBackend } from 'virtio9p-wasm';
import { LocalBackend, ProxyBackend, P9Server, parseListen } from 'virtio9p-wasm/node';
import { createMachine, p9 } from 'virtio9p-wasm/testing';
const td = new TextDecoder();
async function readFile(backend, name) {
  const { client } = await createMachine({ backend });
  await client.version(65536);
  await client.attach(0, p9.P9_NOFID, 'user', '', 0);
  await client.walk(0, 1, [name]);
  await client.lopen(1, 0);
  return td.decode(await client.read(1, 0, 4096));
}
const server = await P9Server.start({ backend: new MemoryBackend(), listen: parseListen('tcp:127.0.0.1:0') });
const address = server.address;
await server.close();
console.log(JSON.stringify({
  memory: await readFile(MemoryBackend.fromTree({ 'm.txt': 'from memory\\n' }), 'm.txt'),
  local: await readFile(new LocalBackend({ root: process.argv[2] }), 'on-disk.txt'),
  device: typeof Virtio9pDevice.create, proxy: typeof ProxyBackend.launch, address,
}));
`);
    const r = JSON.parse(sh(process.execPath, ['check.mjs', dir], proj).stdout) as Record<string, string>;
    expect(r).toEqual({ memory: 'from memory\n', local: 'from the local backend\n', device: 'function', proxy: 'function', address: expect.stringMatching(/^tcp:127\.0\.0\.1:\d+$/) });
  });

  test('the declarations compile with strict, noUncheckedIndexedAccess and exactOptionalPropertyTypes, with and without DOM and Node types', () => {
    fs.writeFileSync(path.join(proj, 'web.ts'), `
import { Virtio9pDevice, MemoryBackend, type DeviceOptions, type Backend } from 'virtio9p-wasm';
import { createMachine, SplitDriver, type P9Client } from 'virtio9p-wasm/testing';
export async function run(wasm?: ArrayBuffer): Promise<string> {
  const backend: Backend = new MemoryBackend();
  const opts: DeviceOptions = wasm === undefined ? { backend } : { backend, wasm };
  const device: Virtio9pDevice = await Virtio9pDevice.create(opts);
  const { client }: { client: P9Client } = await createMachine({ backend: new MemoryBackend() });
  void device; void SplitDriver;
  return (await client.version(8192)).version;
}
`);
    fs.writeFileSync(path.join(proj, 'server.ts'), `
import { LocalBackend, P9Server, parseListen } from 'virtio9p-wasm/node';
export async function start(root: string): Promise<string> {
  const s = await P9Server.start({ backend: new LocalBackend({ root }), listen: parseListen('tcp::0') });
  const a = s.address;
  await s.close();
  return a;
}
`);
    const variants: [string[], string[], string[]][] = [
      [['es2022'], [], ['web.ts']],
      [['es2022', 'dom'], [], ['web.ts']],
      [['es2022'], ['node'], ['web.ts', 'server.ts']],
      [['es2022', 'dom'], ['node'], ['web.ts', 'server.ts']],
    ];
    for (const [lib, types, files] of variants) {
      fs.writeFileSync(path.join(proj, 'tsconfig.json'), JSON.stringify({
        compilerOptions: {
          strict: true, noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true, skipLibCheck: false, noEmit: true,
          target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', lib, types, typeRoots: [path.join(repoModules, '@types')],
        },
        files,
      }));
      const r = spawnSync(process.execPath, [TSC, '-p', '.'], { cwd: proj, encoding: 'utf8', timeout: 300000 });
      expect([lib.join('+'), types.join('+'), r.status, r.stdout]).toEqual([lib.join('+'), types.join('+'), 0, '']);
    }
  });

  test("a browser bundle of '.' and './testing' (no externals) runs a request through a device in Chromium", async () => {
    fs.writeFileSync(path.join(proj, 'page.js'), `
import { Virtio9pDevice, MemoryBackend } from 'virtio9p-wasm';
import { createMachine, p9 } from 'virtio9p-wasm/testing';
const td = new TextDecoder();
(async () => {
  const { client, device } = await createMachine({ backend: MemoryBackend.fromTree({ 'in-browser.txt': 'hello, browser\\n' }) });
  const v = await client.version(65536);
  await client.attach(0, p9.P9_NOFID, 'user', '', 0);
  await client.walk(0, 1, ['in-browser.txt']);
  await client.lopen(1, 0);
  const text = td.decode(await client.read(1, 0, 4096));
  window.result = { version: v.version, text, isDevice: device instanceof Virtio9pDevice, requests: Object.values(device.counters().requests).reduce((a, b) => a + b, 0) };
})().catch((e) => { window.result = { error: String(e && e.stack || e) }; });
`);
    const r = await build({
      absWorkingDir: proj, entryPoints: ['page.js'], bundle: true, platform: 'browser', format: 'esm', write: false,
      outfile: 'page.bundle.js', logLevel: 'silent', metafile: true, minify: true,
    });
    const js = r.outputFiles[0]!.text;
    const inputs = Object.keys(r.metafile!.inputs);
    expect(inputs.filter((i) => /^node:|@wasmer|dist\/node\//.test(i))).toEqual([]);
    expect(Object.values(r.metafile!.outputs).flatMap((o) => o.imports)).toEqual([]);
    process.stderr.write(`browser bundle of '.' + './testing' (minified): ${(js.length / 1024).toFixed(1)} KiB\n`);
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto('about:blank');
      await page.addScriptTag({ content: js, type: 'module' });
      await page.waitForFunction(() => (window as unknown as { result?: unknown }).result !== undefined, undefined, { timeout: 120000 });
      const res = await page.evaluate(() => (window as unknown as { result: unknown }).result);
      expect(errors).toEqual([]);
      expect(res).toEqual({ version: '9P2000.L', text: 'hello, browser\n', isDevice: true, requests: expect.any(Number) });
      expect((res as { requests: number }).requests).toBeGreaterThanOrEqual(5);
    } finally {
      await browser.close();
    }
  });
});
