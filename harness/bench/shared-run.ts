/**
 * The SharedArrayBuffer prototype raced against the normal build in one process:
 *   npx esbuild harness/bench/shared-run.ts --bundle --platform=node --format=esm --outfile=.cache/shared-run.mjs && node .cache/shared-run.mjs [--quick]
 */
import fs from 'node:fs';
import { MemoryBackend } from '../../src/backends/memory.js';
import { FULL, QUICK, makeSuite, formatRows, makeRows } from './common.js';
import { runOurs } from './ours.js';
import { buildSharedWasm, createSharedDevice } from './shared.js';

fs.mkdirSync('.cache', { recursive: true });
const wasm = await buildSharedWasm('.cache/virtio9p.shared.wasm');
const suite = makeSuite(process.argv.includes('--quick') ? QUICK : FULL, { runs: 3 });
const log = (s: string, w: string) => process.stderr.write(`  ${s}: ${w}\n`);
const plain = await runOurs(suite, { backend: () => new MemoryBackend() }, log, 'plain memory');
const shared = await runOurs(suite, { backend: () => new MemoryBackend(), createDevice: (b) => createSharedDevice(b, wasm as Uint8Array<ArrayBuffer>) }, log, 'shared memory');
// "v86" column = the plain build here: us/v86 reads as shared/plain
console.log('# ours on a SharedArrayBuffer memory (ours) vs the normal build (the "v86" column), same run');
console.log(formatRows(makeRows(suite, shared, plain, {}).map((r) => ({ ...r, target: undefined, met: undefined }))));
