/**
 * Loading the core: compile build/virtio9p.wasm once per process and instantiate it with a
 * memory, the device/backend imports and the WASI runtime imports (@wasmer/wasi, which the
 * debug build needs for abort). In Node the module is found next to the package; a browser
 * passes the bytes or a compiled module.
 */
import { init as initWasi, WASI } from '@wasmer/wasi';
import type { CoreExports } from './abi.js';

export type WasmSource = BufferSource | WebAssembly.Module;

const compiled = new Map<string, Promise<WebAssembly.Module>>();

/** release (default), debug (assertions on) or shared (imports a shared memory). */
export type CoreVariant = 'release' | 'debug' | 'shared';

async function readNodeWasm(variant: CoreVariant): Promise<BufferSource> {
  const fs = await import('node:fs');
  const url = await import('node:url');
  const path = await import('node:path');
  const name = variant === 'release' ? 'virtio9p.wasm' : `virtio9p.${variant}.wasm`;
  // src/wasm/core.ts (tests, tsx) or dist/*.js (the bundle): look upwards for build/.
  let dir = path.dirname(url.fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const p = path.join(dir, 'build', name);
    if (fs.existsSync(p)) return new Uint8Array(fs.readFileSync(p));
    dir = path.dirname(dir);
  }
  throw new Error(`virtio9p: cannot find build/${name} (run npm run build)`);
}

export function compileCore(source?: WasmSource, variant: CoreVariant = 'release'): Promise<WebAssembly.Module> {
  if (source instanceof WebAssembly.Module) return Promise.resolve(source);
  if (source) return WebAssembly.compile(source);
  let p = compiled.get(variant);
  if (!p) {
    p = readNodeWasm(variant).then((bytes) => WebAssembly.compile(bytes));
    compiled.set(variant, p);
  }
  return p;
}

let wasiReady: Promise<void> | undefined;

/** Instantiate the core over `memory` with the given device/backend imports. */
export async function instantiateCore(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  imports: { device: Record<string, Function>; backend: Record<string, Function> },
): Promise<CoreExports> {
  const needsWasi = WebAssembly.Module.imports(module).some((i) => i.module === 'wasi_snapshot_preview1');
  let wasi: WASI | undefined;
  const all: WebAssembly.Imports = { env: { memory }, device: imports.device, backend: imports.backend } as never;
  if (needsWasi) {
    wasiReady ??= initWasi();
    await wasiReady;
    wasi = new WASI({ args: ['virtio9p'], env: {} });
    Object.assign(all, wasi.getImports(module));
    (all as Record<string, unknown>).env = { memory };
  }
  const instance = await WebAssembly.instantiate(module, all);
  if (wasi) wasi.instantiate(instance, {});
  const ex = instance.exports as unknown as CoreExports;
  ex._start();
  return ex;
}
