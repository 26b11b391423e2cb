// Builds the JavaScript of the package and the repository's dev scripts:
//   dist/node/{index,node,testing}.js   the library for Node (entries '.', './node', './testing')
//   dist/browser/{index,testing}.js     the library for browsers (the `browser` condition): no Node
//                                       built-ins, no WASI, the release core embedded
//   dist/cli.js                         the `virtio9p` command
//   dist/types/                         declarations (tsc, tsconfig.types.json)
//   build/{bench,fuzz,soak}.js          dev scripts (npm run bench / fuzz / soak; not shipped)
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { browserOptions } from './esbuild-plugins.mjs';

const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const define = { VIRTIO9P_VERSION: JSON.stringify(pkg.version) };
const common = { bundle: true, format: 'esm', target: 'es2022', sourcemap: true, logLevel: 'warning', define };
fs.rmSync('dist', { recursive: true, force: true });
await Promise.all([
  build({
    ...common, entryPoints: { index: 'src/index.ts', node: 'src/node.ts', testing: 'src/testing/index.ts' },
    outdir: 'dist/node', splitting: true, chunkNames: 'chunk-[hash]', platform: 'node', packages: 'external',
  }),
  build({
    ...common, ...browserOptions, entryPoints: { index: 'src/index.ts', testing: 'src/testing/index.ts' },
    outdir: 'dist/browser', splitting: true, chunkNames: 'chunk-[hash]',
  }),
  build({ ...common, entryPoints: ['src/cli.ts'], outfile: 'dist/cli.js', platform: 'node', packages: 'external', banner: { js: '#!/usr/bin/env node' } }),
  // dev scripts: run inside the repository, so its node_modules stay imports
  build({ ...common, entryPoints: ['harness/bench-cli.ts'], outfile: 'build/bench.js', platform: 'node', packages: 'external' }),
  build({ ...common, entryPoints: ['harness/fuzz/run.ts'], outfile: 'build/fuzz.js', platform: 'node', packages: 'external' }),
  build({ ...common, entryPoints: ['harness/soak/run.ts'], outfile: 'build/soak.js', platform: 'node', packages: 'external' }),
]);
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.types.json'], { stdio: 'inherit' });
// the WebAssembly interfaces for users compiling without the DOM library (tsc does not copy .d.ts sources)
fs.copyFileSync('src/wasm/globals.d.ts', 'dist/types/wasm/globals.d.ts');
for (const [entry, ref] of [['index', './wasm/globals.d.ts'], ['node', './wasm/globals.d.ts'], ['testing/index', '../wasm/globals.d.ts']]) {
  const f = `dist/types/${entry}.d.ts`;
  fs.writeFileSync(f, `/// <reference path="${ref}" />\n` + fs.readFileSync(f, 'utf8'));
}
