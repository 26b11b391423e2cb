/** Backend construction for the CLI (Node only). */
import type { Backend } from './backend.js';
import { ReadonlyBackend } from './readonly.js';
import { memoryFromDirectory } from './seed.js';
import { withExportAnames } from './aname.js';

export const BACKENDS = ['local', 'memory', 'proxy'] as const;
export type BackendKind = (typeof BACKENDS)[number];

export interface MakeOptions {
  readonly?: boolean;
  /** proxy: use a helper already listening on this Unix socket (e.g. QEMU's virtfs-proxy-helper -s) */
  helperSocket?: string;
  /** proxy: the helper binary to launch on the export */
  helper?: string;
}

export async function makeBackend(kind: BackendKind, dir: string, opts: MakeOptions = {}): Promise<Backend> {
  let b: Backend;
  if (kind === 'memory') b = memoryFromDirectory(dir);
  else if (kind === 'proxy') {
    const { ProxyBackend } = await import('./proxy/backend.js');
    b = opts.helperSocket
      ? await ProxyBackend.connect({ socket: opts.helperSocket })
      : await ProxyBackend.launch({ export: dir, helper: opts.helper });
  } else {
    const { LocalBackend } = await import('./local.js');
    b = new LocalBackend({ root: dir, readonly: opts.readonly });
  }
  return withExportAnames(opts.readonly ? new ReadonlyBackend(b) : b, dir);
}
