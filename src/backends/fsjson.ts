/**
 * v86's 9P image index, `fs.json` version 3 (made by v86's tools/fs2json.py, read by its
 * lib/filesystem.js):
 *
 *   { "fsroot": [entry…], "version": 3, "size": <sum of sizes> }
 *   entry = [name, size, mtime, mode, uid, gid, extra?]
 *     directory (mode & S_IFMT = S_IFDIR): extra = [entry…]  (its children)
 *     regular file:                        extra = blob name, the first 8 hex digits of the
 *                                          SHA-256 of the contents + ".bin" (".bin.zst" when
 *                                          the blob is zstd-compressed)
 *     symlink:                             extra = target
 *   Other types carry no extra; v86 skips them when loading (so does this reader).
 *
 * Browser-safe. Validation happens here, once: a malformed index is an Error at load time.
 */
import { S_IFMT, S_IFDIR, S_IFREG, S_IFLNK } from './backend.js';

export const FSJSON_VERSION = 3;
/** Length of the SHA-256 hex prefix in blob names. */
export const BLOB_HASH_LENGTH = 8;

export type FsJsonEntry = [string, number, number, number, number, number, (FsJsonEntry[] | string)?];
export interface FsJson { fsroot: FsJsonEntry[]; version: number; size: number }

/** One object of a parsed image. Directories list their children; files name their blob. */
export interface ImageNode {
  name: Uint8Array;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  children: ImageNode[] | null;
  blob: string | null;
  target: Uint8Array | null;
}

const utf8 = new TextEncoder();
const MAX_DEPTH = 4096;

function bad(msg: string): never { throw new Error(`fs.json: ${msg}`); }

function u53(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`${what} is not a non-negative integer`);
  return v;
}

/** A blob name safe to append to a base URL: no '/', no '..', printable ASCII. */
export function validBlobName(s: string): boolean {
  return s.length > 0 && s.length <= 255 && s !== '.' && s !== '..' && /^[A-Za-z0-9._-]+$/.test(s);
}

/** Parse and validate an fs.json document into a tree whose root is a directory. */
export function parseFsJson(doc: unknown, rootMode = S_IFDIR | 0o755): ImageNode {
  if (typeof doc !== 'object' || doc === null) bad('not an object');
  const d = doc as { fsroot?: unknown; version?: unknown };
  if (d.version !== FSJSON_VERSION) bad(`version ${String(d.version)} (expected ${FSJSON_VERSION})`);
  if (!Array.isArray(d.fsroot)) bad('fsroot is not an array');
  const root: ImageNode = {
    name: new Uint8Array(0), mode: rootMode, uid: 0, gid: 0, size: 4096, mtime: 0,
    children: [], blob: null, target: null,
  };
  const walk = (list: unknown[], into: ImageNode[], depth: number): void => {
    if (depth > MAX_DEPTH) bad('tree too deep');
    const seen = new Set<string>();
    for (const e of list) {
      if (!Array.isArray(e) || e.length < 6) bad('entry is not [name, size, mtime, mode, uid, gid, …]');
      const [name, size, mtime, mode, uid, gid, extra] = e as unknown[];
      if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
        bad(`bad name ${JSON.stringify(name)}`);
      }
      if (seen.has(name)) bad(`duplicate name ${JSON.stringify(name)}`);
      seen.add(name);
      const n: ImageNode = {
        name: utf8.encode(name), size: u53(size, 'size'), mtime: u53(mtime, 'mtime'),
        mode: u53(mode, 'mode'), uid: u53(uid, 'uid'), gid: u53(gid, 'gid'),
        children: null, blob: null, target: null,
      };
      if (n.mode > 0xffff || n.uid > 0xffffffff || n.gid > 0xffffffff) bad(`${name}: mode/uid/gid out of range`);
      const fmt = n.mode & S_IFMT;
      if (fmt === S_IFDIR) {
        if (!Array.isArray(extra)) bad(`${name}: directory without children`);
        n.children = [];
        walk(extra, n.children, depth + 1);
      } else if (fmt === S_IFREG) {
        if (typeof extra !== 'string' || !validBlobName(extra)) bad(`${name}: bad blob name ${JSON.stringify(extra)}`);
        n.blob = extra;
      } else if (fmt === S_IFLNK) {
        if (typeof extra !== 'string' || extra === '' || extra.includes('\0')) bad(`${name}: bad symlink target`);
        n.target = utf8.encode(extra);
        n.size = n.target.length;
      } else {
        continue; // sockets, devices, FIFOs: skipped, as v86 does
      }
      into.push(n);
    }
  };
  walk(d.fsroot, root.children!, 0);
  return root;
}
