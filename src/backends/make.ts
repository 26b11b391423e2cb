/** Backend construction for the CLI (Node only). */
import type { Backend } from './backend.js';
import { ReadonlyBackend } from './readonly.js';
import { memoryFromDirectory } from './seed.js';
import { withExportAnames } from './aname.js';

export const BACKENDS = ['local', 'memory'] as const;
export type BackendKind = (typeof BACKENDS)[number];

export async function makeBackend(kind: BackendKind, dir: string, opts: { readonly?: boolean } = {}): Promise<Backend> {
  let b: Backend;
  if (kind === 'memory') b = memoryFromDirectory(dir);
  else {
    const { LocalBackend } = await import('./local.js');
    b = new LocalBackend({ root: dir, readonly: opts.readonly });
  }
  return withExportAnames(opts.readonly ? new ReadonlyBackend(b) : b, dir);
}
