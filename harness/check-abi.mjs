// Validates build/virtio9p.wasm and build/virtio9p.debug.wasm with wabt and checks that their
// imports and exports are exactly the ABI written in README.md (between the abi markers):
// a stray import or export, or one the README lists but the module lacks, fails.
import { readFileSync } from 'node:fs';
import wabtInit from 'wabt';

const wabt = await wabtInit();
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const block = readme.split('<!-- abi:begin -->')[1]?.split('<!-- abi:end -->')[0];
if (!block) { console.error('check-abi: README.md has no <!-- abi:begin --> … <!-- abi:end --> block'); process.exit(1); }
const want = { import: new Set(), export: new Set(), debug: new Set() };
for (const line of block.split('\n')) {
  const m = /^(import|export|debug-import)\s+([\w.]+)/.exec(line.trim());
  if (m) want[m[1] === 'debug-import' ? 'debug' : m[1]].add(m[2]);
}

let failed = false;
function compare(what, file, have, expected) {
  const missing = [...expected].filter((x) => !have.has(x));
  const stray = [...have].filter((x) => !expected.has(x));
  if (missing.length || stray.length) {
    failed = true;
    console.error(`check-abi: ${file} ${what}: ${missing.length ? `missing ${missing.join(', ')}` : ''}${stray.length ? ` not in README: ${stray.join(', ')}` : ''}`);
  }
}

for (const [file, debug] of [['build/virtio9p.wasm', false], ['build/virtio9p.debug.wasm', true], ['build/virtio9p.shared.wasm', false]]) {
  const bytes = readFileSync(new URL(`../${file}`, import.meta.url));
  const shared = file.includes('.shared.');
  try {
    // wabt reads (and checks) the shared build with the threads feature; its validate() does
    // not take features, so that build is validated by the engine instead.
    const mod = wabt.readWasm(bytes, { readDebugNames: false, check: true, threads: shared });
    if (!shared) mod.validate();
    mod.destroy();
    if (!WebAssembly.validate(bytes)) throw new Error('WebAssembly.validate refused it');
  } catch (e) { failed = true; console.error(`check-abi: ${file} does not validate: ${e.message}`); }
  const m = new WebAssembly.Module(bytes);
  const imports = new Set(WebAssembly.Module.imports(m).map((i) => `${i.module}.${i.name}`));
  const exports = new Set(WebAssembly.Module.exports(m).map((e) => e.name));
  compare('imports', file, imports, debug ? new Set([...want.import, ...want.debug]) : want.import);
  compare('exports', file, exports, want.export);
}
if (failed) process.exit(1);
console.log(`check-abi: the three builds (release, debug, shared) valid; ${want.import.size} imports (+${want.debug.size} debug), ${want.export.size} exports match README.md`);
