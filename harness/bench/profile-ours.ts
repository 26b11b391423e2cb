/**
 * Profile our side of one or more workloads: `node --cpu-prof` on this (bundled by
 * harness/bench/profile.sh), optionally with a core built with names (--debug names, same -O3).
 *   node --cpu-prof dist/profile-ours.mjs c,d2 [core.wasm]
 */
import fs from 'node:fs';
import { MemoryBackend } from '../../src/backends/memory.js';
import { FULL, makeSuite, formatRows, makeRows, type WorkloadKey } from './common.js';
import { runOurs } from './ours.js';

const only = (process.argv[2] ?? 'c').split(',') as WorkloadKey[];
const wasm = process.argv[3] ? new Uint8Array(fs.readFileSync(process.argv[3])) : undefined;
const suite = makeSuite(FULL, { runs: Number(process.env.RUNS ?? 5), only });
const ours = await runOurs(suite, { backend: () => new MemoryBackend(), wasm }, (s, w) => process.stderr.write(`${s}: ${w}\n`));
console.log(formatRows(makeRows(suite, ours, {}, {})));
