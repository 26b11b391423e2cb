/**
 * The one loader of the native addons (native/fdpass.c, native/fsops.c; Linux only). Looked
 * for, in order: $VIRTIO9P_<NAME> (a path to the .node file); native/build/<name>.node in the
 * package root (built from source by `node native/build.mjs`, or at install time where no
 * prebuilt binary fits); prebuilds/<platform>-<arch>/<name>.node (shipped in the package).
 * The package root is the nearest directory above this module with a package.json.
 */
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type AddonName = 'fdpass' | 'fsops';

const cache = new Map<AddonName, unknown>();

function packageRoot(): string | null {
  let dir: string;
  try { dir = path.dirname(fileURLToPath(import.meta.url)); } catch { return null; }
  for (let i = 0; i < 5; i++, dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
  }
  return null;
}

/** The addon's exports; throws one line naming what is missing and how to get it. */
export function loadAddon<T>(name: AddonName): T {
  const hit = cache.get(name);
  if (hit !== undefined) return hit as T;
  const env = process.env[`VIRTIO9P_${name.toUpperCase()}`];
  const root = packageRoot();
  const tried = env ? [env] : root === null ? [] : [
    path.join(root, 'native', 'build', `${name}.node`),
    path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, `${name}.node`),
  ];
  const found = tried.find((p) => fs.existsSync(p));
  if (found === undefined) {
    const why = process.platform !== 'linux'
      ? `the native addons are Linux-only (this is ${process.platform})`
      : env ? `$VIRTIO9P_${name.toUpperCase()} names a missing file (${env})`
        : `no prebuilt binary for ${process.platform}-${process.arch} and none built (needs a C compiler and Node headers: npm rebuild virtio9p-wasm, or node native/build.mjs in a clone)`;
    throw new Error(`virtio9p: the ${name} addon is not available: ${why}`);
  }
  const mod = createRequire(import.meta.url)(found) as T;
  cache.set(name, mod);
  return mod;
}
