// npm's install step for the package: nothing to do when prebuilds/<platform>-<arch>/ has
// binaries that load here (linux-x64 ships them); else build the addons from native/*.c with
// the C compiler and Node headers. The addons are Linux-only (openat2, SCM_RIGHTS); without
// them the device, the in-memory backend and the browser build still work, so a failed build
// prints one line naming what is missing and does not fail the install.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const ADDONS = ['fdpass', 'fsops'];
const require = createRequire(import.meta.url);

if (process.platform !== 'linux') {
  console.error(`virtio9p-wasm: the native addons are Linux-only; LocalBackend, ProxyBackend and \`virtio9p serve --backend local|proxy\` are unavailable on ${process.platform} (the device, MemoryBackend and the browser build work)`);
  process.exit(0);
}
const loads = (dir) => ADDONS.every((a) => {
  try { require(path.join(dir, `${a}.node`)); return true; } catch { return false; }
});
if (loads(path.join(here, '..', 'prebuilds', `${process.platform}-${process.arch}`))) process.exit(0);
try {
  execFileSync(process.execPath, [path.join(here, 'build.mjs'), '--addons-only'], { stdio: ['ignore', 'ignore', 'inherit'] });
} catch {
  // build.mjs printed the one line naming what is missing
}
process.exit(0);
