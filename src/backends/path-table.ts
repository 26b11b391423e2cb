/**
 * The path-based node table shared by the host backends (LocalBackend, ProxyBackend).
 *
 * A node is {path relative to the root, refcount, host (dev, ino)}; one map id → node and one
 * map path → node give "same path, same host inode → same Node". A lookup that finds a different
 * inode at a known path (replaced on the host) detaches the old node and makes a new one. Fids
 * follow objects: a rename rewrites the stored path of every node at or under the renamed path
 * (QEMU's v9fs_fix_path); removed paths mark their nodes *detached*. A node leaves the table
 * (its id is reused) once the core holds no reference, it has no open handle and it is not the
 * root.
 *
 * What is backend specific stays in the backend, behind the hooks: how a node is made from a
 * host stat, the identity check of a stat against a node, and what a freed node releases (its
 * pin). Open handles (`files`) and pins are managed by the backends.
 */
import type { Node, Stat } from './backend.js';
import { S_IFDIR } from './backend.js';
import { EBADF, ENOENT, ENOTDIR } from '../errno.js';

/** A file-system object known to the guest; `F` is the backend's open-handle type. */
export class PathNode<F> {
  /** refs held by the core (attach/lookup/create) */
  refs = 0;
  /** open handles on this node */
  readonly files = new Set<F>();
  /** unlinked / replaced: `path` is stale, only open handles reach the object */
  detached = false;
  /** the attributes last read (what dup answers once the object is unreachable) */
  last: Stat | null = null;
  /** an O_PATH fd taken just before *we* unlinked / renamed over the object while the core
   *  held the node: keeps the unlinked object reachable until forget */
  pin = -1;
  constructor(
    public readonly id: number,
    /** path relative to the root, latin1-style byte string, '' = the root */
    public path: string,
    public readonly dev: bigint,
    public readonly hino: bigint,
    /** S_IFMT bits */
    public readonly type: number,
    /** qid.path */
    public readonly ino: number,
  ) {}
}

/** The backend-specific parts of a PathTable; `S` is the backend's host stat type. */
export interface PathTableHooks<N, S> {
  /** A new node with this id for `rel`, whose lstat is `st`. */
  make(id: number, rel: string, st: S): N;
  /** Whether `st` is the object of `n` (same host dev and inode). */
  same(n: N, st: S): boolean;
  /** `n` left the table: release what it still holds (its pin). */
  freed(n: N): void;
  /** `code` of the error thrown when a lookup finds the export root replaced */
  rootReplacedCode: string;
}

export class PathTable<N extends PathNode<unknown>, S> {
  readonly nodes = new Map<number, N>();
  readonly byPath = new Map<string, N>();
  private readonly freeIds: number[] = [];
  private nextId = 1;
  /** the export root's node (never freed) */
  root!: N;

  constructor(private readonly hooks: PathTableHooks<N, S>) {}

  /** Make the root's node (once, at start). */
  addRoot(st: S): N {
    this.root = this.newNode('', st);
    return this.root;
  }

  newNode(rel: string, st: S): N {
    const id = this.freeIds.length > 0 ? this.freeIds.pop()! : this.nextId++;
    const n = this.hooks.make(id, rel, st);
    this.nodes.set(id, n);
    this.byPath.set(rel, n);
    return n;
  }

  /** The node for `rel` whose lstat is `st`, with one more reference. */
  getNode(rel: string, st: S): N {
    let n = this.byPath.get(rel);
    if (n !== undefined && !this.hooks.same(n, st)) {
      if (n === this.root) throw Object.assign(new Error('export root replaced'), { code: this.hooks.rootReplacedCode });
      this.detach(n);
      n = undefined;
    }
    if (n === undefined) n = this.newNode(rel, st);
    n.refs++;
    return n;
  }

  /** A node the core holds a reference to. */
  ref(id: Node): N | null {
    const n = this.nodes.get(id);
    return n !== undefined && n.refs > 0 ? n : null;
  }

  /** Drop one reference the core holds (forget); the node is freed when nothing holds it. */
  unref(id: Node): void {
    const n = this.ref(id);
    if (n === null) return;
    n.refs--;
    if (n.refs === 0) this.maybeFree(n);
  }

  /** A directory node the core holds (possibly detached: lookup of "." still answers), or -errno. */
  dirRef(id: Node): N | number {
    const d = this.ref(id);
    if (d === null) return -EBADF;
    if (d.type !== S_IFDIR) return -ENOTDIR;
    return d;
  }

  /** A live directory node that can be used as a parent, or -errno. */
  dirOf(id: Node): N | number {
    const d = this.dirRef(id);
    if (typeof d === 'number') return d;
    if (d.detached) return -ENOENT;
    return d;
  }

  /**
   * The open handle `f` (descriptor `fd`) of `n` is closed. When it was the last handle of an
   * unlinked object the core still holds, `fd` becomes the node's pin: true, keep it open.
   * Otherwise the node is freed if nothing holds it: false, the caller closes `fd`.
   */
  closeHandle(n: N, f: unknown, fd: number): boolean {
    n.files.delete(f);
    if (n.detached && n.refs > 0 && n.files.size === 0 && n.pin < 0) {
      n.pin = fd;
      return true;
    }
    this.maybeFree(n);
    return false;
  }

  detach(n: N): void {
    if (this.byPath.get(n.path) === n) this.byPath.delete(n.path);
    n.detached = true;
    this.maybeFree(n);
  }

  /** Detach the node at `rel` and, when `subtree`, every node below it. */
  detachPath(rel: string, subtree: boolean): void {
    const n = this.byPath.get(rel);
    if (n !== undefined) this.detach(n);
    if (subtree) {
      const pre = rel + '/';
      const gone: N[] = [];
      for (const [k, m] of this.byPath) if (k.startsWith(pre)) gone.push(m);
      for (const m of gone) this.detach(m);
    }
  }

  /** After a successful rename oldRel → newRel: the fids follow (QEMU v9fs_fix_path). */
  movePaths(oldRel: string, newRel: string, isDirectory: boolean, replacedDir: boolean): void {
    this.detachPath(newRel, replacedDir);
    const n = this.byPath.get(oldRel);
    if (n !== undefined) { this.byPath.delete(oldRel); n.path = newRel; this.byPath.set(newRel, n); }
    if (!isDirectory) return;
    const pre = oldRel + '/';
    const moved: N[] = [];
    for (const [k, m] of this.byPath) if (k.startsWith(pre)) moved.push(m);
    for (const m of moved) this.byPath.delete(m.path);
    for (const m of moved) {
      m.path = newRel + m.path.slice(oldRel.length);
      const old = this.byPath.get(m.path);
      if (old !== undefined) { this.byPath.delete(m.path); old.detached = true; this.maybeFree(old); }
      this.byPath.set(m.path, m);
    }
  }

  /** Drop the node from the table when nothing holds it any more. */
  maybeFree(n: N): void {
    if (n.refs > 0 || n.files.size > 0 || n === this.root) return;
    if (this.nodes.get(n.id) !== n) return;
    this.nodes.delete(n.id);
    this.freeIds.push(n.id);
    if (this.byPath.get(n.path) === n) this.byPath.delete(n.path);
    this.hooks.freed(n);
  }
}
