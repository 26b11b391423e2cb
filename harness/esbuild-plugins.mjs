// esbuild plugins shared by the build, the browser bench and the static tests.
import path from 'node:path';

/** Browser builds: src/wasm/host.ts → src/wasm/host.browser.ts (no Node built-ins, no WASI;
 *  the release module embedded through the binary loader). */
export const browserHost = {
  name: 'virtio9p-browser-host',
  setup(build) {
    build.onResolve({ filter: /^\.\/host\.js$/ }, (a) =>
      path.basename(a.importer) === 'core.ts' ? { path: path.join(a.resolveDir, 'host.browser.ts') } : undefined);
  },
};

/** Options every browser build of src/ needs. */
export const browserOptions = { platform: 'browser', plugins: [browserHost], loader: { '.wasm': 'binary' } };
