/**
 * PROTOTYPE (issue 5, "the module runs from a SharedArrayBuffer-backed memory too"): a device
 * whose wasm memory — guest RAM included — is a shared WebAssembly.Memory, so a VMM that keeps
 * guest RAM in a SharedArrayBuffer across workers can hand it to the core.
 *
 * What it needs (not done in src/ — see docs/bench.md, "SharedArrayBuffer"):
 *  1. a second build of the same sources whose memory import is declared shared:
 *       asc assembly/index.ts ... --importMemory --sharedMemory --maximumMemory 65536 --enable threads
 *     (an asconfig target "shared" → build/virtio9p.shared.wasm). A shared memory import must
 *     have a maximum, and a module compiled for a non-shared import refuses a shared memory.
 *  2. Virtio9pDevice.create({ sharedMemory: true }) creating
 *       new WebAssembly.Memory({ initial: 256, maximum: pages, shared: true })
 *     and loading the shared build (compileCore keyed by variant), or accepting a caller's
 *     `memory` (the VMM's guest RAM) plus `guestBase`.
 * This file does step 2 from the outside (through the class's private members) to show that
 * nothing else changes: the glue's typed-array views work the same over a SharedArrayBuffer.
 */
import fs from 'node:fs';
import { Virtio9pDevice } from '../../src/device.js';
import type { Backend } from '../../src/backends/backend.js';


export async function createSharedDevice(backend: Backend, sharedWasm: BufferSource, guestMemorySize = 16 << 20): Promise<Virtio9pDevice> {
  const dev = await Virtio9pDevice.create({ backend, wasm: sharedWasm, sharedMemory: true, guestMemorySize });
  if (!(dev.ram.buffer instanceof SharedArrayBuffer)) throw new Error('shared prototype: guest RAM is not shared');
  return dev;
}

/** Build the shared variant with asc into `out` (needs the assemblyscript devDependency). */
export async function buildSharedWasm(out: string): Promise<Uint8Array> {
  const { execFileSync } = await import('node:child_process');
  execFileSync('npx', ['asc', 'assembly/index.ts', '-o', out, '--config', 'node_modules/@assemblyscript/wasi-shim/asconfig.json',
    '--runtime', 'stub', '--importMemory', '--sharedMemory', '--maximumMemory', '65536', '--enable', 'threads',
    '--initialMemory', '256', '--exportStart', '', '-O3', '--noAssert'], { stdio: 'inherit' });
  return new Uint8Array(fs.readFileSync(out));
}
