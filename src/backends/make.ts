/** Backend construction for the CLI (Node only). */
import type { Backend } from './backend.js';
import { ReadonlyBackend } from './readonly.js';
import { memoryFromDirectory } from './seed.js';
import { withExportAnames } from './aname.js';
import { AccessBackend } from './access.js';
import { withSecurityModel, DEFAULT_SECURITY_MODEL, MappedXattrBackend, type SecurityModel } from './security.js';

export const BACKENDS = ['local', 'memory', 'proxy'] as const;
export type BackendKind = (typeof BACKENDS)[number];

export interface MakeOptions {
  readonly?: boolean;
  /** proxy: use a helper already listening on this Unix socket (e.g. QEMU's virtfs-proxy-helper -s) */
  helperSocket?: string;
  /** proxy: the helper binary to launch on the export (default: the project's own,
   *  native/virtio9p-helper; QEMU's is /usr/lib/qemu/virtfs-proxy-helper) */
  helper?: string;
  /** local, proxy: QEMU's security models (default mapped-xattr); the memory backend never
   *  reaches the host, so it keeps every owner, mode and node as the guest sets them */
  securityModel?: SecurityModel;
  /** mapped-xattr: host permission bits of new files / directories (default 0600 / 0700) */
  fmode?: number;
  dmode?: number;
  /** 'user' (default): each request is checked as the attached user; 'any': the client may do
   *  what the server's user may */
  access?: 'user' | 'any';
  /** every attach is this user (implies access 'user') */
  squash?: { uid: number; gid: number };
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
    const fs = await import('node:fs');
    if (opts.helperSocket !== undefined) {
      const sock = opts.helperSocket;
      let st;
      try { st = fs.statSync(sock); } catch { throw new Error(`helper socket '${sock}' does not exist`); }
      if (!st.isSocket()) throw new Error(`helper socket '${sock}' is not a socket`);
      try { b = await ProxyBackend.connect({ socket: sock }); } catch (e) {
        throw new Error(`cannot use the helper on '${sock}': ${helperFailure(e)}`);
      }
    } else {
      const helper = opts.helper ?? await ownHelper();
      const { checkHelper, HelperNotRunnable } = await import('./proxy/client.js');
      checkHelper(helper); // a helper that cannot run: HelperNotRunnable, nothing spawned
      try { b = await ProxyBackend.launch({ export: dir, helper }); } catch (e) {
        if (e instanceof HelperNotRunnable) throw e;
        throw new Error(`helper '${helper}' did not serve ${dir}: ${helperFailure(e)}`);
      }
    }
  } else {
    const { LocalBackend } = await import('./local.js');
    b = new LocalBackend({ root: dir, readonly: opts.readonly });
  }
  if (kind !== 'memory') {
    b = withSecurityModel(b, { model: opts.securityModel ?? DEFAULT_SECURITY_MODEL, fmode: opts.fmode, dmode: opts.dmode });
    if (b instanceof MappedXattrBackend) await checkUserXattrs(b, dir);
  }
  if ((opts.access ?? 'user') === 'user' || opts.squash) b = new AccessBackend(b, { squash: opts.squash });
  return withExportAnames(opts.readonly ? new ReadonlyBackend(b) : b, dir);
}

/** mapped-xattr needs user.* xattrs on the export's file system: ask once, without writing. */
async function checkUserXattrs(b: MappedXattrBackend, dir: string): Promise<void> {
  const root = await b.inner.attach(new Uint8Array(0), 0xFFFFFFFF);
  if (typeof root === 'number') return; // reported by the first attach
  try {
    const r = await b.inner.getxattr(root.node, new TextEncoder().encode('user.virtfs.uid'));
    if (r === -95 /* EOPNOTSUPP */) {
      throw Object.assign(new Error(`${dir}: its file system has no user xattrs, which --security-model mapped-xattr needs (choose mapped-file)`), { usage: true });
    }
  } finally {
    b.inner.forget(root.node);
  }
}

/** Why a helper could not be used, in words (errno 5 and ECONNREFUSED are the usual ones). */
function helperFailure(e: unknown): string {
  const err = e as { code?: string; errno?: number; message?: string };
  if (err.code === 'EIO' || err.errno === 5 || err.errno === -5) return 'it exited or closed the connection before answering (is it a 9p proxy helper?)';
  if (err.errno === 111 || err.errno === -111) return 'nothing is listening there (connection refused)';
  if (err.errno === 13 || err.errno === -13) return 'permission denied';
  return err.message ?? String(e);
}
