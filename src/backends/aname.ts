/**
 * Attach names for a served export (`virtio9p serve`): "", "/" or the export's own path attach
 * the export root; any other aname names a directory inside the export ("ctl" → DIR/ctl, as
 * diodload needs; "/sub" or "DIR/sub" likewise). An aname that would leave the export ("..")
 * is refused with EACCES. Everything else passes through to the wrapped backend.
 */
import type { Backend, Entry, Res } from './backend.js';
import { EACCES } from '../errno.js';

export function withExportAnames<B extends Backend>(inner: B, exportPath: string): B {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const base = exportPath.replace(/\/+$/, '');
  const attach = inner.attach.bind(inner);
  // Only attach changes: replace it on the instance (no per-call indirection for the rest).
  inner.attach = (aname: Uint8Array, uid: number): Res<Entry> => {
    let a = dec.decode(aname);
    if (a === base || a.startsWith(`${base}/`)) a = a.slice(base.length);
    const parts = a.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.includes('..')) return -EACCES;
    return attach(enc.encode(parts.join('/')), uid);
  };
  return inner;
}
