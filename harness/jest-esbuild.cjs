// Jest transform: TypeScript → ESM with esbuild (no type checking here; `tsc --noEmit` does it).
const esbuild = require('esbuild');
module.exports = {
  process(src, file) {
    return esbuild.transformSync(src, { loader: 'ts', format: 'esm', target: 'node20', sourcemap: 'inline', sourcefile: file });
  },
};
