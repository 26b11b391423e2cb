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
  /** proxy: the helper binary to launch on the export (default: the project's own,
   *  native/virtio9p-helper; QEMU's is /usr/lib/qemu/virtfs-proxy-helper) */
  helper?: string;
  /** memory: bytes of file data and xattrs (default 256 MiB; ENOSPC beyond, statfs shows it) */
  memoryCapacity?: number;
  /** memory: files, directories and symlinks, the root included (default 65536) */
  memoryFiles?: number;
}

export const MEMORY_DEFAULTS = { capacity: 256 << 20, files: 65536 } as const;

/** The project's own helper executable (native/virtio9p-helper), found from this module. */
export async function ownHelper(): Promise<string> {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const url = await import('node:url');
  let dir = path.dirname(url.fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const p = path.join(dir, 'native', 'virtio9p-helper');
    if (fs.existsSync(p)) return p;
    dir = path.dirname(dir);
  }
  throw new Error('virtio9p: cannot find native/virtio9p-helper (run npm run build)');
}

export async function makeBackend(kind: BackendKind, dir: string, opts: MakeOptions = {}): Promise<Backend> {
  let b: Backend;
  if (kind === 'memory') {
    const capacityBytes = opts.memoryCapacity ?? MEMORY_DEFAULTS.capacity;
    const maxInodes = opts.memoryFiles ?? MEMORY_DEFAULTS.files;
    try { b = memoryFromDirectory(dir, { capacityBytes, maxInodes }); } catch (e) {
      throw new Error(`the export does not fit in the memory backend (${capacityBytes} bytes, ${maxInodes} files): ${(e as Error).message}`);
    }
  }
  else if (kind === 'proxy') {
    const { ProxyBackend } = await import('./proxy/backend.js');
    b = opts.helperSocket
      ? await ProxyBackend.connect({ socket: opts.helperSocket })
      : await ProxyBackend.launch({ export: dir, helper: opts.helper ?? await ownHelper() });
  } else {
    const { LocalBackend } = await import('./local.js');
    b = new LocalBackend({ root: dir, readonly: opts.readonly });
  }
  return withExportAnames(opts.readonly ? new ReadonlyBackend(b) : b, dir);
}
