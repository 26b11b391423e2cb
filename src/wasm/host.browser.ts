/**
 * The core's host in browsers: the release module is embedded in the bundle (about 26 KB), so
 * `Virtio9pDevice.create({ backend })` needs no file to fetch; the shared build is passed as
 * `wasm` (the package ships it as virtio9p-wasm/wasm/virtio9p.shared.wasm). The debug build
 * needs WASI and is Node-only.
 */
import type { CoreVariant } from './core.js';
import type { WasiHost } from './host.js';
import release from '../../build/virtio9p.wasm';

export async function defaultWasm(variant: CoreVariant): Promise<Uint8Array> {
  if (variant === 'release') return release;
  throw new Error(`virtio9p: the ${variant} build is not embedded in the browser bundle; pass its bytes as \`wasm\` (virtio9p-wasm/wasm/virtio9p.${variant}.wasm)`);
}

export async function wasiFor(): Promise<WasiHost> {
  throw new Error('virtio9p: the debug build needs WASI, which the browser bundle leaves out (use the release build)');
}
