/**
 * The demo on a host directory (Node only): the embedded default tree written to a temporary
 * export, served by the local or proxy backend (the seed's architecture: a helper process
 * opens the files and passes descriptors back), removed afterwards.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEMO_TREE, runDemo } from './demo.js';
import { makeBackend, type BackendKind } from '../src/backends/make.js';

type Tree = { [name: string]: string | { symlink: string } | Tree };

export function writeTree(dir: string, tree: Tree): void {
  for (const [name, v] of Object.entries(tree)) {
    const p = path.join(dir, name);
    if (typeof v === 'string') fs.writeFileSync(p, v);
    else if ('symlink' in v && typeof v.symlink === 'string') fs.symlinkSync(v.symlink, p);
    else { fs.mkdirSync(p); writeTree(p, v as Tree); }
  }
}

export async function runDemoOn(kind: BackendKind, log: (line: string) => void = console.log, helper?: string): Promise<void> {
  if (kind === 'memory') { await runDemo(log); return; }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtio9p-demo-'));
  writeTree(dir, DEMO_TREE as Tree);
  const backend = await makeBackend(kind, dir, { helper });
  log(`backend: ${kind} on ${dir}${kind === 'proxy' ? ' (a helper process opens files and passes descriptors back)' : ''}`);
  try {
    await runDemo(log, backend);
  } finally {
    await (backend as { destroy?: () => unknown }).destroy?.();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
