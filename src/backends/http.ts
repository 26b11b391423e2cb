/**
 * HttpBackend: a read-only tree served from a web server in v86's image format (`fs.json`
 * version 3 plus SHA-256-named blobs under a base URL; see fsjson.ts), so an existing v86 image
 * serves through this device unchanged.
 *
 * Browser-safe: it uses only `fetch`. File contents are fetched on first read, by HTTP Range in
 * chunks when the server honours Range (a 206), else as whole blobs (a server answering 200 to a
 * Range request is remembered and asked for whole blobs from then on). Chunks live in one LRU
 * cache bounded in bytes; concurrent reads of the same chunk share one request. A failed or
 * short fetch is EIO to the request that needed it, nothing of it is cached, and a later read
 * fetches again. Zstd blobs (`.bin.zst`) are fetched whole and decompressed by the `decompress`
 * option. Every change is EROFS.
 *
 * Inode numbers are the index of the object in the image's depth-first order (root = 1): stable
 * for the same fs.json.
 */
import type { Backend, Created, DirSink, Entry, Fh, Node, Res, SetAttr, Stat, StatFs } from './backend.js';
import { O_ACCMODE, O_DIRECTORY, O_RDONLY, O_TRUNC, S_IFMT, S_IFDIR, S_IFLNK } from './backend.js';
import { EBADF, EINVAL, EIO, EISDIR, ELOOP, ENODATA, ENOENT, ENOTDIR, EROFS, P9Error } from '../errno.js';
import { parseFsJson, type ImageNode } from './fsjson.js';

type FetchFn = (url: string, init?: { headers?: Record<string, string>; signal?: AbortSignal }) => Promise<{
  status: number; ok: boolean; arrayBuffer(): Promise<ArrayBuffer>;
}>;

export interface HttpBackendOptions {
  /** URL of the blobs' directory (v86's `baseurl`) */
  baseUrl: string;
  /** the fetch to use (default: globalThis.fetch) */
  fetch?: FetchFn;
  /** bytes per Range request (default 256 KiB) */
  chunkSize?: number;
  /** bound of the chunk cache in bytes (default 64 MiB) */
  cacheBytes?: number;
  /** 'auto' (default): Range first, whole blobs if the server ignores it; 'never': whole blobs */
  range?: 'auto' | 'never';
  /** a blob request that has not completed after this many ms is EIO (default 60000) */
  timeoutMs?: number;
  /** decompress a `.zst` blob (or a `.zst` index) to `size` bytes; default: the platform's
   *  DecompressionStream('zstd') where it exists (otherwise such reads are EIO) */
  decompress?: (data: Uint8Array, size: number) => Uint8Array | Promise<Uint8Array>;
}

export interface HttpCounters {
  /** HTTP requests made for blobs (successful or not) */
  fetches: number;
  /** body bytes received for blobs */
  bytesFetched: number;
  /** chunk reads answered from the cache */
  cacheHits: number;
  /** chunk reads that waited for a fetch (shared fetches count once per waiter) */
  cacheMisses: number;
  /** failed blob fetches */
  errors: number;
  /** bytes in the cache now */
  cachedBytes: number;
}

const V9FS_MAGIC = 0x01021997;
const FSID = 0x68747470; // "http"

async function platformDecompress(data: Uint8Array, _size: number): Promise<Uint8Array> {
  const DS = (globalThis as { DecompressionStream?: new (f: string) => unknown }).DecompressionStream;
  let ds: unknown;
  try { ds = DS ? new DS('zstd' as string) : undefined; } catch { ds = undefined; }
  if (ds === undefined) throw new P9Error(EIO, 'no zstd decompressor (pass options.decompress)');
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(ds as TransformStream<Uint8Array, Uint8Array>);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function keyOf(b: Uint8Array): string {
  return String.fromCharCode.apply(null, b as unknown as number[]);
}

/** The blobs of one image: chunked Range reads, an LRU cache bounded in bytes, shared fetches. */
export class BlobCache {
  private readonly cache = new Map<string, Uint8Array>();
  private readonly inflight = new Map<string, Promise<Uint8Array>>();
  private bytes = 0;
  /** null until the server has answered a Range request */
  private rangeOk: boolean | null;
  readonly counters: HttpCounters = { fetches: 0, bytesFetched: 0, cacheHits: 0, cacheMisses: 0, errors: 0, cachedBytes: 0 };
  private readonly fetchFn: FetchFn;
  private readonly base: string;
  readonly chunk: number;
  private readonly limit: number;
  private readonly timeoutMs: number;
  private readonly decompress: (data: Uint8Array, size: number) => Uint8Array | Promise<Uint8Array>;

  constructor(opts: HttpBackendOptions) {
    const f = opts.fetch ?? (globalThis as { fetch?: FetchFn }).fetch;
    if (f === undefined) throw new Error('HttpBackend: no fetch available');
    this.fetchFn = f;
    this.base = opts.baseUrl.endsWith('/') ? opts.baseUrl : opts.baseUrl + '/';
    this.chunk = opts.chunkSize ?? 256 * 1024;
    if (!Number.isSafeInteger(this.chunk) || this.chunk < 4096) throw new Error('HttpBackend: chunkSize must be an integer ≥ 4096');
    this.limit = opts.cacheBytes ?? 64 * 1024 * 1024;
    this.rangeOk = opts.range === 'never' ? false : null;
    this.timeoutMs = opts.timeoutMs ?? 60000;
    this.decompress = opts.decompress ?? platformDecompress;
  }

  /** Copy bytes [offset, offset + Σdst) ∩ [0, size) of `blob` into dst; returns bytes copied. */
  async read(blob: string, size: number, offset: number, dst: Uint8Array[]): Promise<number> {
    let want = 0;
    for (const d of dst) want += d.length;
    const end = Math.min(size, offset + want);
    if (offset >= end) return 0;
    const first = Math.floor(offset / this.chunk), last = Math.floor((end - 1) / this.chunk);
    const parts: Promise<Uint8Array>[] = [];
    for (let ci = first; ci <= last; ci++) parts.push(this.getChunk(blob, size, ci));
    const chunks = await Promise.all(parts);
    let pos = offset, k = 0, bo = 0;
    while (pos < end) {
      const c = chunks[Math.floor(pos / this.chunk) - first];
      const co = pos % this.chunk;
      const buf = dst[k];
      const n = Math.min(c.length - co, buf.length - bo, end - pos);
      buf.set(c.subarray(co, co + n), bo);
      pos += n; bo += n;
      if (bo === buf.length) { k++; bo = 0; }
    }
    return end - offset;
  }

  private chunkLen(size: number, ci: number): number {
    return Math.min(this.chunk, size - ci * this.chunk);
  }

  private getChunk(blob: string, size: number, ci: number): Promise<Uint8Array> {
    const key = blob + '#' + ci;
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      this.cache.delete(key); // LRU: most recent last
      this.cache.set(key, hit);
      this.counters.cacheHits++;
      return Promise.resolve(hit);
    }
    this.counters.cacheMisses++;
    const whole = this.rangeOk === false || blob.endsWith('.zst');
    const fkey = whole ? blob + '#*' : key;
    let p = this.inflight.get(fkey);
    if (p === undefined) {
      p = whole ? this.fetchWhole(blob, size) : this.fetchRange(blob, size, ci);
      const pp = p;
      this.inflight.set(fkey, pp);
      const done = (): void => { if (this.inflight.get(fkey) === pp) this.inflight.delete(fkey); };
      pp.then(done, done);
    }
    if (!whole) return p;
    return p.then((all) => all.subarray(ci * this.chunk, ci * this.chunk + this.chunkLen(size, ci)));
  }

  private async get(url: string, headers?: Record<string, string>): Promise<{ status: number; body: Uint8Array }> {
    this.counters.fetches++;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.timeoutMs);
    try {
      const f = this.fetchFn; // called unbound: a browser's fetch refuses any other `this`
      const r = await f(url, { ...(headers ? { headers } : {}), signal: abort.signal });
      if (r.status !== 200 && r.status !== 206) throw new P9Error(EIO, `HTTP ${r.status} for ${url}`);
      const body = new Uint8Array(await r.arrayBuffer());
      this.counters.bytesFetched += body.length;
      return { status: r.status, body };
    } catch (e) {
      this.counters.errors++;
      throw e instanceof P9Error ? e : new P9Error(EIO, `fetch ${url}: ${String(e)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private async fetchRange(blob: string, size: number, ci: number): Promise<Uint8Array> {
    const start = ci * this.chunk, len = this.chunkLen(size, ci);
    const r = await this.get(this.base + blob, { Range: `bytes=${start}-${start + len - 1}` });
    if (r.status === 206) {
      if (r.body.length !== len) { this.counters.errors++; throw new P9Error(EIO, `${blob}: short range (${r.body.length} of ${len})`); }
      this.rangeOk = true;
      this.insert(blob + '#' + ci, r.body);
      return r.body;
    }
    // 200: the server sent the whole blob
    if (r.body.length !== size) { this.counters.errors++; throw new P9Error(EIO, `${blob}: ${r.body.length} bytes, expected ${size}`); }
    if (this.rangeOk === null) this.rangeOk = false;
    this.insertAll(blob, r.body, size);
    return r.body.subarray(start, start + len);
  }

  private async fetchWhole(blob: string, size: number): Promise<Uint8Array> {
    const r = await this.get(this.base + blob);
    let data = r.body;
    if (blob.endsWith('.zst')) {
      try { data = await this.decompress(data, size); } catch (e) { this.counters.errors++; throw e instanceof P9Error ? e : new P9Error(EIO, String(e)); }
    }
    if (r.status !== 200 || data.length !== size) { this.counters.errors++; throw new P9Error(EIO, `${blob}: ${data.length} bytes, expected ${size}`); }
    this.insertAll(blob, data, size);
    return data;
  }

  private insertAll(blob: string, data: Uint8Array, size: number): void {
    for (let ci = 0; ci * this.chunk < size; ci++) {
      this.insert(blob + '#' + ci, data.slice(ci * this.chunk, ci * this.chunk + this.chunkLen(size, ci)));
    }
  }

  private insert(key: string, c: Uint8Array): void {
    if (c.length > this.limit) return;
    const old = this.cache.get(key);
    if (old !== undefined) { this.cache.delete(key); this.bytes -= old.length; }
    this.cache.set(key, c);
    this.bytes += c.length;
    while (this.bytes > this.limit) {
      const [k, v] = this.cache.entries().next().value as [string, Uint8Array];
      this.cache.delete(k);
      this.bytes -= v.length;
    }
    this.counters.cachedBytes = this.bytes;
  }
}

interface HNode {
  ino: number;
  img: ImageNode;
  parent: HNode;
  nlink: number;
  /** children by name key, built on first lookup */
  byName: Map<string, HNode> | null;
  kids: HNode[] | null;
}

export class HttpBackend implements Backend {
  private readonly nodes: HNode[] = [];
  private readonly fhs = new Map<number, HNode>();
  private readonly freeFhs: number[] = [];
  private nextFh = 1;
  private readonly blobs: BlobCache;
  private readonly root: HNode;
  private readonly totalSize: number;

  /** Fetch `indexUrl` (fs.json, or fs.json.zst) and serve the image whose blobs are under opts.baseUrl. */
  static async load(indexUrl: string, opts: HttpBackendOptions): Promise<HttpBackend> {
    const f = opts.fetch ?? (globalThis as { fetch?: FetchFn }).fetch;
    if (f === undefined) throw new Error('HttpBackend: no fetch available');
    const r = await f(indexUrl);
    if (!r.ok) throw new Error(`HttpBackend: HTTP ${r.status} for ${indexUrl}`);
    let body: Uint8Array = new Uint8Array(await r.arrayBuffer());
    if (indexUrl.endsWith('.zst')) body = await (opts.decompress ?? platformDecompress)(body, -1);
    return new HttpBackend(JSON.parse(new TextDecoder().decode(body)), opts);
  }

  /** Serve an already-fetched fs.json document. */
  constructor(index: unknown, opts: HttpBackendOptions) {
    this.blobs = new BlobCache(opts);
    const rootImg = parseFsJson(index);
    let total = 0;
    const add = (img: ImageNode, parent: HNode | null): HNode => {
      const n: HNode = { ino: this.nodes.length + 1, img, parent: null as unknown as HNode, nlink: 1, byName: null, kids: null };
      n.parent = parent ?? n;
      this.nodes.push(n);
      total += img.size;
      if (img.children !== null) {
        n.kids = img.children.map((c) => add(c, n));
        n.nlink = 2 + n.kids.filter((k) => k.img.children !== null).length;
      }
      return n;
    };
    this.root = add(rootImg, null);
    this.totalSize = total;
  }

  /** Fetch and cache counters. */
  get counters(): HttpCounters { return this.blobs.counters; }

  private node(n: Node): HNode | null {
    return n >= 1 && n <= this.nodes.length ? this.nodes[n - 1] : null;
  }

  private stat(n: HNode): Stat {
    const i = n.img;
    const t = i.mtime;
    return {
      ino: n.ino, mode: i.mode, uid: i.uid, gid: i.gid, nlink: n.nlink, rdev: 0, size: i.size,
      blksize: 4096, blocks: Math.ceil(i.size / 512),
      atimeSec: t, atimeNsec: 0, mtimeSec: t, mtimeNsec: 0, ctimeSec: t, ctimeNsec: 0,
    };
  }

  private entry(n: HNode): Entry { return { ...this.stat(n), node: n.ino }; }

  attach(aname: Uint8Array, _uid: number): Res<Entry> {
    let n = this.root;
    if (aname.length > 0) {
      for (const part of new TextDecoder().decode(aname).split('/')) {
        if (part === '' || part === '.') continue;
        const r = this.child(n, new TextEncoder().encode(part));
        if (typeof r === 'number') return r;
        n = r;
      }
      if (n.kids === null) return -ENOTDIR;
    }
    return this.entry(n);
  }

  private child(d: HNode, name: Uint8Array): HNode | number {
    if (d.kids === null) return -ENOTDIR;
    if (name.length === 1 && name[0] === 0x2e) return d;
    if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) return d.parent;
    if (d.byName === null) {
      d.byName = new Map();
      for (const k of d.kids) d.byName.set(keyOf(k.img.name), k);
    }
    return d.byName.get(keyOf(name)) ?? -ENOENT;
  }

  lookup(dir: Node, name: Uint8Array): Res<Entry> {
    const d = this.node(dir);
    if (d === null) return -EBADF;
    const r = this.child(d, name);
    return typeof r === 'number' ? r : this.entry(r);
  }

  dup(node: Node): Res<Entry> {
    const n = this.node(node);
    return n === null ? -EBADF : this.entry(n);
  }

  getattr(node: Node): Res<Stat> {
    const n = this.node(node);
    return n === null ? -EBADF : this.stat(n);
  }

  setattr(_n: Node, _a: SetAttr): Res<number> { return -EROFS; }

  open(node: Node, flags: number): Res<Fh> {
    const n = this.node(node);
    if (n === null) return -EBADF;
    if ((flags & O_ACCMODE) === O_ACCMODE) return -EINVAL;
    const fmt = n.img.mode & S_IFMT;
    if (fmt === S_IFDIR) {
      if ((flags & O_ACCMODE) !== O_RDONLY) return -EISDIR;
    } else {
      if (flags & O_DIRECTORY) return -ENOTDIR;
      if (fmt === S_IFLNK) return -ELOOP;
    }
    if ((flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0) return -EROFS;
    const fh = this.freeFhs.length > 0 ? this.freeFhs.pop()! : this.nextFh++;
    this.fhs.set(fh, n);
    return fh;
  }

  create(): Res<Created> { return -EROFS; }

  read(fh: Fh, offset: number, dst: Uint8Array[]): Res<number> {
    const n = this.fhs.get(fh);
    if (n === undefined) return -EBADF;
    if (n.kids !== null) return -EISDIR;
    const img = n.img;
    if (img.blob === null || offset >= img.size) return 0;
    return this.blobs.read(img.blob, img.size, offset, dst);
  }

  write(): Res<number> { return -EROFS; }

  readdir(fh: Fh, cookie: number, sink: DirSink): Res<number> {
    const n = this.fhs.get(fh);
    if (n === undefined) return -EBADF;
    const kids = n.kids;
    if (kids === null) return -ENOTDIR;
    if (cookie < 1 && !sink.push(n.ino, 1, 4, DOT)) return 0;
    if (cookie < 2 && !sink.push(n.parent.ino, 2, 4, DOTDOT)) return 0;
    for (let i = Math.max(0, cookie - 2); i < kids.length; i++) {
      const k = kids[i];
      if (!sink.push(k.ino, i + 3, (k.img.mode >> 12) & 15, k.img.name)) return 0;
    }
    return 0;
  }

  readlink(node: Node): Res<Uint8Array> {
    const n = this.node(node);
    if (n === null) return -EBADF;
    return n.img.target ?? -EINVAL;
  }

  mkdir(): Res<Stat> { return -EROFS; }
  symlink(): Res<Stat> { return -EROFS; }
  mknod(): Res<Stat> { return -EROFS; }
  link(): Res<number> { return -EROFS; }
  renameat(): Res<number> { return -EROFS; }
  rename(): Res<number> { return -EROFS; }
  unlinkat(): Res<number> { return -EROFS; }
  remove(): Res<number> { return -EROFS; }

  fsync(fh: Fh): Res<number> { return this.fhs.has(fh) ? 0 : -EBADF; }

  statfs(node: Node): Res<StatFs> {
    if (this.node(node) === null) return -EBADF;
    return {
      type: V9FS_MAGIC, bsize: 4096, blocks: Math.ceil(this.totalSize / 4096), bfree: 0, bavail: 0,
      files: this.nodes.length, ffree: 0, fsid: FSID, namelen: 255,
    };
  }

  getxattr(node: Node): Res<Uint8Array> { return this.node(node) === null ? -EBADF : -ENODATA; }
  listxattr(node: Node): Res<Uint8Array[]> { return this.node(node) === null ? -EBADF : []; }
  setxattr(): Res<number> { return -EROFS; }
  removexattr(): Res<number> { return -EROFS; }

  close(fh: Fh): Res<number> {
    if (!this.fhs.delete(fh)) return -EBADF;
    this.freeFhs.push(fh);
    return 0;
  }

  /** The tree never changes: nodes live as long as the backend. */
  forget(_node: Node): void {}
}

const DOT = new Uint8Array([0x2e]);
const DOTDOT = new Uint8Array([0x2e, 0x2e]);
