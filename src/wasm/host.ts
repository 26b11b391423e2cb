/**
 * The core's host in Node: the default module is read from the package's build/ directory,
 * and WASI for the debug build comes from @wasmer/wasi (loaded only when that build is used).
 * Browser builds use ./host.browser.ts instead (same exports).
 */
import type { CoreVariant } from './core.js';

export interface WasiHost {
  imports: Record<string, Record<string, unknown>>;
  start(instance: WebAssembly.Instance): void;
}

export async function defaultWasm(variant: CoreVariant): Promise<Uint8Array> {
  const fs = await import('node:fs');
  const url = await import('node:url');
  const path = await import('node:path');
  const name = variant === 'release' ? 'virtio9p.wasm' : `virtio9p.${variant}.wasm`;
  // src/wasm/host.ts (tests) or dist/<entry>/*.js (the bundles): look upwards for build/.
  let dir = path.dirname(url.fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const p = path.join(dir, 'build', name);
    if (fs.existsSync(p)) return new Uint8Array(fs.readFileSync(p));
    dir = path.dirname(dir);
  }
  throw new Error(`virtio9p: cannot find build/${name} (run npm run build)`);
}

let wasiReady: Promise<void> | undefined;

export async function wasiFor(module: WebAssembly.Module): Promise<WasiHost> {
  const { init, WASI } = await import('@wasmer/wasi');
  wasiReady ??= init();
  await wasiReady;
  const wasi = new WASI({ args: ['virtio9p'], env: {} });
  return { imports: wasi.getImports(module) as Record<string, Record<string, unknown>>, start: (instance) => { wasi.instantiate(instance, {}); } };
}
