/**
 * A read-only view of any backend: every operation that would change the file system answers
 * EROFS (opening for writing or with O_TRUNC too); reads pass through.
 */
import type { Backend, Node, Fh, SetAttr, Res, Entry, Stat, Created, DirSink, StatFs } from './backend.js';
import { O_ACCMODE, O_RDONLY, O_TRUNC } from './backend.js';
import { EROFS } from '../errno.js';

export class ReadonlyBackend implements Backend {
  constructor(readonly inner: Backend) {}
  attach(aname: Uint8Array, uid: number): Res<Entry> { return this.inner.attach(aname, uid); }
  lookup(dir: Node, name: Uint8Array): Res<Entry> { return this.inner.lookup(dir, name); }
  dup(node: Node): Res<Entry> { return this.inner.dup(node); }
  getattr(node: Node): Res<Stat> { return this.inner.getattr(node); }
  setattr(_n: Node, _a: SetAttr): Res<number> { return -EROFS; }
  open(node: Node, flags: number): Res<Fh> {
    if ((flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0) return -EROFS;
    return this.inner.open(node, flags);
  }
  create(): Res<Created> { return -EROFS; }
  read(fh: Fh, offset: number, dst: Uint8Array[]): Res<number> { return this.inner.read(fh, offset, dst); }
  write(): Res<number> { return -EROFS; }
  readdir(fh: Fh, cookie: number, sink: DirSink): Res<number> { return this.inner.readdir(fh, cookie, sink); }
  readlink(node: Node): Res<Uint8Array> { return this.inner.readlink(node); }
  mkdir(): Res<Stat> { return -EROFS; }
  symlink(): Res<Stat> { return -EROFS; }
  mknod(): Res<Stat> { return -EROFS; }
  link(): Res<number> { return -EROFS; }
  renameat(): Res<number> { return -EROFS; }
  rename(): Res<number> { return -EROFS; }
  unlinkat(): Res<number> { return -EROFS; }
  remove(): Res<number> { return -EROFS; }
  fsync(fh: Fh, datasync: boolean): Res<number> { return this.inner.fsync(fh, datasync); }
  statfs(node: Node): Res<StatFs> { return this.inner.statfs(node); }
  getxattr(node: Node, name: Uint8Array): Res<Uint8Array> { return this.inner.getxattr(node, name); }
  listxattr(node: Node): Res<Uint8Array[]> { return this.inner.listxattr(node); }
  setxattr(): Res<number> { return -EROFS; }
  removexattr(): Res<number> { return -EROFS; }
  close(fh: Fh): Res<number> { return this.inner.close(fh); }
  destroy(): unknown { return this.inner.destroy?.(); }
  forget(node: Node): void { this.inner.forget(node); }
}
