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
}

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
  if (kind === 'memory') b = memoryFromDirectory(dir);
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
      try { fs.accessSync(helper, fs.constants.X_OK); } catch { throw new Error(`helper '${helper}' is not an executable file`); }
      try { b = await ProxyBackend.launch({ export: dir, helper }); } catch (e) {
        throw new Error(`helper '${helper}' did not serve ${dir}: ${helperFailure(e)}`);
      }
    }
  } else {
    const { LocalBackend } = await import('./local.js');
    b = new LocalBackend({ root: dir, readonly: opts.readonly });
  }
  return withExportAnames(opts.readonly ? new ReadonlyBackend(b) : b, dir);
}

/** Why a helper could not be used, in words (errno 5 and ECONNREFUSED are the usual ones). */
function helperFailure(e: unknown): string {
  const err = e as { code?: string; errno?: number; message?: string };
  if (err.code === 'EIO' || err.errno === 5 || err.errno === -5) return 'it exited or closed the connection before answering (is it a 9p proxy helper?)';
  if (err.errno === 111 || err.errno === -111) return 'nothing is listening there (connection refused)';
  if (err.errno === 13 || err.errno === -13) return 'permission denied';
  return err.message ?? String(e);
}
