/**
 * Loading the core: compile build/virtio9p.wasm once per process and instantiate it with a
 * memory, the device/backend imports and, for the debug build only, WASI imports (its abort
 * prints through them). Where the default module comes from and who provides WASI is the
 * host's business (./host.ts for Node, ./host.browser.ts for browsers, swapped in by the build).
 */
import type { CoreExports } from './abi.js';
import { defaultWasm, wasiFor } from './host.js';

/** Bytes of a module (any ArrayBuffer or view of one) or a compiled module. */
export type WasmSource = ArrayBuffer | ArrayBufferView | WebAssembly.Module;

const compiled = new Map<string, Promise<WebAssembly.Module>>();

/** release (default), debug (assertions on) or shared (imports a shared memory). */
export type CoreVariant = 'release' | 'debug' | 'shared';

export function compileCore(source?: WasmSource, variant: CoreVariant = 'release'): Promise<WebAssembly.Module> {
  if (source instanceof WebAssembly.Module) return Promise.resolve(source);
  if (source) return WebAssembly.compile(source as BufferSource);
  let p = compiled.get(variant);
  if (!p) {
    p = defaultWasm(variant).then((bytes) => WebAssembly.compile(bytes as BufferSource));
    compiled.set(variant, p);
  }
  return p;
}

/** Instantiate the core over `memory` with the given device/backend imports. */
export async function instantiateCore(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  imports: { device: Record<string, Function>; backend: Record<string, Function> },
): Promise<CoreExports> {
  const needsWasi = WebAssembly.Module.imports(module).some((i) => i.module === 'wasi_snapshot_preview1');
  const all: WebAssembly.Imports = { env: { memory }, device: imports.device, backend: imports.backend } as never;
  const wasi = needsWasi ? await wasiFor(module) : undefined;
  if (wasi) {
    Object.assign(all, wasi.imports);
    (all as Record<string, unknown>).env = { memory };
  }
  const instance = await WebAssembly.instantiate(module, all);
  wasi?.start(instance);
  const ex = instance.exports as unknown as CoreExports;
  ex._start();
  return ex;
}
