// Builds the esbuild bundles: dist/index.js (the library for Node), dist/cli.js (the
// `virtio9p` command) and dist/browser.js (the library for browsers; pass `wasm` bytes).
import { build } from 'esbuild';

const common = { bundle: true, format: 'esm', target: 'es2022', sourcemap: true, logLevel: 'warning' };
await Promise.all([
  build({ ...common, entryPoints: ['src/index.ts'], outfile: 'dist/index.js', platform: 'node', packages: 'external' }),
  build({
    ...common, entryPoints: ['src/cli.ts'], outfile: 'dist/cli.js', platform: 'node',
    banner: { js: '#!/usr/bin/env node' },
  }),
  build({ ...common, entryPoints: ['src/index.ts'], outfile: 'dist/browser.js', platform: 'browser', external: ['node:*'] }),
  build({ ...common, entryPoints: ['harness/fuzz/run.ts'], outfile: 'dist/fuzz.js', platform: 'node' }),
  build({ ...common, entryPoints: ['harness/soak/run.ts'], outfile: 'dist/soak.js', platform: 'node' }),
]);
