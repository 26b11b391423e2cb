// Builds the native addons native/build/{fdpass,fsops}.node from native/{fdpass,fsops}.c with the C compiler
// and the installed Node headers (node-api only: one binary works for every Node >= 18).
// No downloads, no node-gyp. Skips the compile when the binary is newer than the source.
// Usage: node native/build.mjs [--force] [--prebuild] [--addons-only]
//   --prebuild     also copy them to prebuilds/<platform>-<arch>/ (what the package ships; npm pack runs this)
//   --addons-only  skip the helper bundle (install time: no devDependencies there)
// A missing compiler or missing headers is one line on stderr and exit status 1.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const ADDONS = ['fdpass', 'fsops'];

if (process.platform !== 'linux') {
  console.log('native/build.mjs: the native addons are Linux-only; skipped');
  process.exit(0);
}

const force = process.argv.includes('--force');
const prebuild = process.argv.includes('--prebuild');
const addonsOnly = process.argv.includes('--addons-only');
const todo = ADDONS.map((name) => ({ src: path.join(here, `${name}.c`), out: path.join(here, 'build', `${name}.node`) }))
  .filter(({ src, out }) => force || !fs.existsSync(out) || fs.statSync(out).mtimeMs < fs.statSync(src).mtimeMs);

function npmNodedir() {
  try {
    const v = execFileSync('npm', ['config', 'get', 'nodedir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return v && v !== 'undefined' && v !== 'null' ? v : null;
  } catch { return null; }
}

const candidates = [
  process.env.NODEDIR, process.env.npm_config_nodedir, npmNodedir(),
  path.resolve(path.dirname(process.execPath), '..'), '/usr', '/usr/local',
].filter(Boolean).flatMap((d) => [path.join(d, 'include', 'node'), path.join(d, 'src')]);
const inc = todo.length === 0 ? '' : candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h')) && fs.existsSync(path.join(d, 'uv.h')));
if (todo.length > 0 && !inc) {
  console.error(`virtio9p-wasm: cannot build the native addons: Node headers (node_api.h, uv.h) not found; install them (Debian: apt install nodejs-dev, or use Node from nodejs.org) or set NODEDIR`);
  process.exit(1);
}
const cc = process.env.CC || 'cc';
if (todo.length > 0) {
  try { execFileSync(cc, ['--version'], { stdio: 'ignore' }); } catch {
    console.error(`virtio9p-wasm: cannot build the native addons: no C compiler ('${cc}' not found; Debian: apt install gcc, or set CC)`);
    process.exit(1);
  }
}
for (const { src, out } of todo) {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = out + '.tmp';
  try {
    execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-std=gnu11', '-shared', '-fPIC', '-fvisibility=hidden',
      `-I${inc}`, '-o', tmp, src], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const first = String(e.stderr ?? '').split('\n').find((l) => /error/.test(l)) ?? `${cc} failed`;
    console.error(`virtio9p-wasm: cannot build ${path.basename(src)}: ${first.trim()}`);
    process.exit(1);
  }
  fs.renameSync(tmp, out);
  console.log(`native/build.mjs: built ${path.relative(process.cwd(), out)}`);
}
if (prebuild) {
  const dir = path.join(path.dirname(here), 'prebuilds', `${process.platform}-${process.arch}`);
  fs.mkdirSync(dir, { recursive: true });
  for (const name of ADDONS) fs.copyFileSync(path.join(here, 'build', `${name}.node`), path.join(dir, `${name}.node`));
  console.log(`native/build.mjs: copied the addons to ${path.relative(process.cwd(), dir)}`);
}
if (addonsOnly) process.exit(0);

// The helper as one stand-alone bundle, native/build/virtio9p-helper.mjs (run by the
// native/virtio9p-helper shim: a helper *binary* path for ProxyBackend.launch and scripts).
// Needs esbuild (a devDependency); skipped without it.
{
  const root = path.dirname(here);
  const out = path.join(here, 'build', 'virtio9p-helper.mjs');
  const inputs = [
    ...fs.readdirSync(path.join(root, 'src', 'helper')).map((f) => path.join(root, 'src', 'helper', f)),
    path.join(root, 'src', 'backends', 'proxy', 'protocol.ts'),
    path.join(root, 'src', 'backends', 'proxy', 'native.ts'),
  ].filter((f) => fs.existsSync(f));
  const newest = Math.max(...inputs.map((f) => fs.statSync(f).mtimeMs));
  if (force || !fs.existsSync(out) || fs.statSync(out).mtimeMs < newest) {
    let esbuild = null;
    try { esbuild = await import('esbuild'); } catch { /* not installed */ }
    if (esbuild === null) {
      console.log('native/build.mjs: esbuild not installed; helper bundle skipped (use `virtio9p helper`)');
    } else {
      fs.mkdirSync(path.dirname(out), { recursive: true });
      await esbuild.build({
        entryPoints: [path.join(root, 'src', 'helper', 'bin.ts')], outfile: out, bundle: true,
        format: 'esm', platform: 'node', target: 'es2022', logLevel: 'warning',
      });
      console.log(`native/build.mjs: built ${path.relative(process.cwd(), out)}`);
    }
  }
}
