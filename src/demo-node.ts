/**
 * The demo on a host directory (Node only): the embedded default tree written to a temporary
 * directory, served by the local or proxy backend (with proxy, a helper process opens the
 * files and passes descriptors back), and removed afterwards — also on a failure or a signal.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEMO_TREE, runDemo } from './demo.js';
import { makeBackend, type BackendKind } from './backends/make.js';
import type { Backend } from './backends/backend.js';

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
  const remove = () => fs.rmSync(dir, { recursive: true, force: true });
  // a signal ends the process without running finally blocks: remove the directory first
  const onSignal = (sig: NodeJS.Signals) => { remove(); process.kill(process.pid, sig); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let backend: Backend | undefined;
  try {
    writeTree(dir, DEMO_TREE as Tree);
    backend = await makeBackend(kind, dir, helper === undefined ? {} : { helper });
    log(`backend: ${kind} on a temporary directory${kind === 'proxy' ? ' (a helper process opens files and passes descriptors back)' : ''}`);
    await runDemo(log, backend);
  } finally {
    try { await (backend as { destroy?: () => unknown } | undefined)?.destroy?.(); } finally {
      remove();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
}
