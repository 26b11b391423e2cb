/**
 * House rules that are cheaper to check than to review: the hot path allocates nothing, one
 * file turns guest addresses into pointers, the browser build has no Node built-ins, and the
 * layers stay apart (src ← harness ← tests).
 */
import { describe, test, expect } from '@jest/globals';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { build, buildSync } from 'esbuild';

const root = new URL('../../', import.meta.url).pathname;
function files(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((f) => {
    const p = join(dir, f);
    return statSync(join(root, p)).isDirectory() ? files(p) : [p];
  });
}
const core = files('assembly').filter((f) => f.endsWith('.ts'));
const strip = (src: string) => src.replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '');

describe('core rules', () => {
  test('no allocation in the core: no `new`, no arrays, strings only as static literals', () => {
    for (const f of core) {
      const src = strip(readFileSync(join(root, f), 'utf8'));
      expect([f, /\bnew\s+[A-Z]/.test(src), /\bArray<|\bMap<|\bSet<|\.concat\(|\.substring\(/.test(src)]).toEqual([f, false, false]);
    }
  });

  test('only guest.ts knows where guest RAM is', () => {
    for (const f of core) {
      const src = strip(readFileSync(join(root, f), 'utf8'));
      if (f.endsWith('guest.ts')) continue;
      expect([f, /guestBase|guestSize/.test(src)]).toEqual([f, false]);
    }
    const users = core.filter((f) => /\btranslate(Aligned)?\(/.test(strip(readFileSync(join(root, f), 'utf8'))));
    expect(users.sort()).toEqual(['assembly/guest.ts', 'assembly/stream.ts', 'assembly/virtq/packed.ts', 'assembly/virtq/split.ts']);
  });

  test('snapshot: every module-level `let` of the core is saved and loaded (state.ts), or marked transient', () => {
    const bodies = (kind: 'save' | 'load') => core.map((f) => readFileSync(join(root, f), 'utf8'))
      .flatMap((src) => [...src.matchAll(new RegExp(`export function ${kind}[A-Z]\\w*\\(p: usize\\): usize \\{([^}]*)\\}`, 'g'))].map((m) => m[1]))
      .join('\n');
    const saved = bodies('save'), loaded = bodies('load');
    expect(saved.length).toBeGreaterThan(0);
    const missing: string[] = [];
    let lets = 0;
    for (const f of core) {
      let transient = false;
      for (const line of readFileSync(join(root, f), 'utf8').split('\n')) {
        if (/^\/\/ transient \(snapshot\)/.test(line)) { transient = true; continue; }
        const m = /^(?:export )?let (\w+)/.exec(line);
        if (!m) { transient = false; continue; }
        lets++;
        const re = new RegExp(`\\b${m[1]}\\b`);
        if (!transient && !(re.test(saved) && re.test(loaded))) missing.push(`${f}: ${m[1]}`);
      }
    }
    expect(lets).toBeGreaterThan(20);
    expect(missing).toEqual([]);
  });

  test('every import of the core is declared in host.ts', () => {
    for (const f of core) {
      const src = readFileSync(join(root, f), 'utf8');
      if (!f.endsWith('host.ts')) expect([f, src.includes('@external')]).toEqual([f, false]);
    }
  });
});

describe('browser', () => {
  test('the in-memory and browser backends bundle without Node built-ins', () => {
    // the HTTP image, the overlay and its browser stores, the security models
    for (const f of ['memory', 'http', 'overlay', 'upper-store', 'upper-idb-store', 'security']) {
      const r = buildSync({
        entryPoints: [join(root, `src/backends/${f}.ts`)], bundle: true, write: false, platform: 'neutral', format: 'esm', logLevel: 'silent',
      });
      expect(r.errors).toEqual([]);
    }
  });

  test('the browser build of the package entries has no Node built-ins, no WASI and no externals', async () => {
    const { browserOptions } = await import('../../harness/esbuild-plugins.mjs');
    const dev = await build({
      ...browserOptions, entryPoints: [join(root, 'src/index.ts'), join(root, 'src/testing/index.ts')], outdir: '/x',
      bundle: true, write: false, format: 'esm', logLevel: 'silent', metafile: true,
    });
    const inputs = Object.keys(dev.metafile!.inputs);
    expect(inputs.filter((i) => /^node:|@wasmer|node_modules/.test(i))).toEqual([]);
    expect(inputs.some((i) => i.endsWith('host.browser.ts'))).toBe(true);
    expect(Object.values(dev.metafile!.outputs).flatMap((o) => o.imports)).toEqual([]);
  });
});

describe('layering: src ← harness ← tests', () => {
  const importsOf = (f: string) => [...readFileSync(join(root, f), 'utf8').matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1]!);
  test('nothing in src/ imports harness/ or tests/', () => {
    const src = files('src').filter((f) => f.endsWith('.ts'));
    expect(src.length).toBeGreaterThan(30);
    // src/ may reach outside itself only for the built core (build/*.wasm)
    const escapes = (f: string, i: string) => i.startsWith('../'.repeat(f.split('/').length - 1)) && !/\/build\/[\w.]+\.wasm$/.test(i);
    const bad = src.flatMap((f) => importsOf(f).filter((i) => /(^|\/)(harness|tests)\//.test(i) || escapes(f, i)).map((i) => `${f}: ${i}`));
    expect(bad).toEqual([]);
  });
  test('nothing in harness/ imports tests/', () => {
    const h = files('harness').filter((f) => /\.(ts|mjs)$/.test(f));
    expect(h.flatMap((f) => importsOf(f).filter((i) => /(^|\/)tests\//.test(i)).map((i) => `${f}: ${i}`))).toEqual([]);
  });
});
