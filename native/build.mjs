// Builds the fd-passing addon native/build/fdpass.node from native/fdpass.c with the C compiler
// and the installed Node headers (node-api only: one binary works for every Node >= 18).
// No downloads, no node-gyp. Skips the compile when the binary is newer than the source.
// Usage: node native/build.mjs [--force]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const src = path.join(here, 'fdpass.c');
const out = path.join(here, 'build', 'fdpass.node');

if (process.platform !== 'linux') {
  console.log('native/build.mjs: fdpass addon is Linux-only; skipped');
  process.exit(0);
}

const force = process.argv.includes('--force');
if (!force && fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(src).mtimeMs) process.exit(0);

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
const inc = candidates.find((d) => fs.existsSync(path.join(d, 'node_api.h')) && fs.existsSync(path.join(d, 'uv.h')));
if (!inc) {
  console.error('native/build.mjs: Node headers (node_api.h, uv.h) not found; set NODEDIR');
  process.exit(1);
}
const cc = process.env.CC || 'cc';
fs.mkdirSync(path.dirname(out), { recursive: true });
const tmp = out + '.tmp';
execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-std=gnu11', '-shared', '-fPIC', '-fvisibility=hidden',
  `-I${inc}`, '-o', tmp, src], { stdio: 'inherit' });
fs.renameSync(tmp, out);
console.log(`native/build.mjs: built ${path.relative(process.cwd(), out)} (headers ${inc})`);
