/**
 * README.md's "## Embedding API" examples are run, not just shown: every code block marked with
 * `<!-- example: NAME -->` on the line before its fence is extracted, bundled by esbuild with
 * `virtio9p-wasm`, `virtio9p-wasm/node` and `virtio9p-wasm/testing` mapped to their sources and
 * the guest stand-in (`guest`, harness/readme/guest.ts) imported for it, written under build/
 * (so that the core finds build/*.wasm and `v86` resolves from node_modules) and run in its own
 * Node process. An example passes when the process exits 0: a failed `assert`, a throw, an
 * unhandled rejection or a top-level await that never settles all exit non-zero.
 */
import { describe, test, expect, afterAll } from '@jest/globals';
import { build, type Plugin } from 'esbuild';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const outDir = path.join(repo, 'build', 'readme-examples');

/** The examples the README must contain (a removed or renamed block fails). */
const EXPECTED = [
  'owned-ram', 'wasm-memory', 'shared-memory', 'copy-mode', 'mmio', 'pci', 'interrupts', 'snapshot', 'v86-pci', 'v86-handle9p',
];

interface Example { name: string; code: string; line: number }

/** Marked blocks of a markdown text; a marker not followed by a ```ts / ```js fence is an error. */
export function extractExamples(md: string): Example[] {
  const lines = md.split('\n');
  const out: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^<!--\s*example:\s*([\w-]+)\s*-->\s*$/.exec(lines[i]);
    if (!m) continue;
    if (!/^```(ts|js|typescript|javascript)\s*$/.test(lines[i + 1] ?? '')) throw new Error(`README.md:${i + 1}: example ${m[1]} is not followed by a \`\`\`ts fence`);
    const end = lines.indexOf('```', i + 2);
    if (end < 0) throw new Error(`README.md:${i + 1}: example ${m[1]} has no closing fence`);
    out.push({ name: m[1], code: lines.slice(i + 2, end).join('\n'), line: i + 3 });
    i = end;
  }
  return out;
}

const mapPackage: Plugin = {
  name: 'virtio9p-wasm',
  setup(b) {
    const entries: Record<string, string> = { 'virtio9p-wasm': 'src/index.ts', 'virtio9p-wasm/node': 'src/node.ts', 'virtio9p-wasm/testing': 'src/testing/index.ts' };
    b.onResolve({ filter: /^virtio9p-wasm(\/node|\/testing)?$/ }, (a) => ({ path: path.join(repo, entries[a.path]!) }));
  },
};

/** Bundle and run one example; returns the process's exit status and output. */
async function runExample(name: string, code: string, line: number): Promise<{ status: number | null; output: string }> {
  // The prelude is one line, so the example's line N is line N + 1 of the bundle's source.
  const prelude = `import { guest } from ${JSON.stringify(path.join(repo, 'harness/readme/guest.ts'))};`;
  const res = await build({
    stdin: { contents: `${prelude}\n${code}`, loader: 'ts', resolveDir: repo, sourcefile: `README.md#${name}(line ${line - 1}+)` },
    bundle: true, platform: 'node', format: 'esm', target: 'node20', write: false, sourcemap: 'inline', logLevel: 'silent',
    plugins: [mapPackage],
    // node_modules stay imports (resolved next to the file, inside the repository)
    external: ['v86', '@wasmer/wasi'],
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `${name}.mjs`);
  fs.writeFileSync(file, res.outputFiles[0].contents);
  const r = spawnSync(process.execPath, ['--enable-source-maps', file], { cwd: repo, encoding: 'utf8', timeout: 50_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

const readme = fs.readFileSync(path.join(repo, 'README.md'), 'utf8');
const section = (() => {
  const a = readme.indexOf('## Embedding API'), b = readme.indexOf('\n## ', a + 1);
  return a < 0 ? '' : readme.slice(a, b < 0 ? undefined : b);
})();
let examples: Example[] = [];
let extractError: unknown = null;
try { examples = extractExamples(section); } catch (e) { extractError = e; }

afterAll(() => { fs.rmSync(outDir, { recursive: true, force: true }); });

describe('README embedding examples', () => {
  test('the Embedding API section has exactly the expected marked examples', () => {
    expect(extractError).toBeNull();
    expect(section).not.toBe('');
    expect(examples.map((e) => e.name)).toEqual(EXPECTED);
    expect(new Set(examples.map((e) => e.name)).size).toBe(examples.length);
    // every example does real checks
    for (const e of examples) expect(`${e.name}: ${/\bassert[.(]/.test(e.code)}`).toBe(`${e.name}: true`);
    // markers outside the section would be run by nobody
    expect(extractExamples(readme).length).toBe(examples.length);
  });

  test.each(EXPECTED)('example %s runs', async (name) => {
    const ex = examples.find((e) => e.name === name);
    if (!ex) throw new Error(`README.md has no block marked <!-- example: ${name} -->`);
    const r = await runExample(name, ex.code, ex.line);
    if (r.status !== 0) throw new Error(`example ${name} (README.md line ${ex.line}) exited with ${r.status}:\n${r.output}`);
  });

  test('the runner fails an example whose assertion fails, throws, or never finishes', async () => {
    const bad = [
      "import assert from 'node:assert/strict';\nassert.equal(1 + 1, 3);",
      "import { Virtio9pDevice, MemoryBackend } from 'virtio9p-wasm';\nawait Virtio9pDevice.create({ backend: new MemoryBackend(), guestMemorySize: 1000 });",
      'await new Promise(() => {});',
      "Promise.reject(new Error('unhandled'));",
    ];
    for (const [i, code] of bad.entries()) {
      const r = await runExample(`selftest-${i}`, code, 1);
      expect(r.status).not.toBe(0);
    }
    const ok = await runExample('selftest-ok', "import assert from 'node:assert/strict';\nconst fs = guest; assert.equal(typeof fs.mount, 'function');", 1);
    expect(ok.output).toBe('');
    expect(ok.status).toBe(0);
  });

  test('extraction: markers need a fence', () => {
    expect(() => extractExamples('<!-- example: x -->\ntext\n')).toThrow(/fence/);
    expect(extractExamples('<!-- example: a-b -->\n```ts\nx();\n```\n').map((e) => [e.name, e.code, e.line])).toEqual([['a-b', 'x();', 3]]);
  });
});
