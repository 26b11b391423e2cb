/**
 * The image builder (`virtio9p image DIR|TAR --out OUT`): writes OUT/fs.json (v86's index,
 * version 3, as its tools/fs2json.py makes it) and OUT/base/<first 8 hex of SHA-256>.bin blobs
 * (as its tools/copy-to-sha256.py makes them), so the result serves through HttpBackend and
 * v86's own 9P loader alike. Node only.
 *
 * As fs2json: hard links become separate entries sharing one blob; a directory's files and
 * symlinks come before its subdirectories; sockets, devices and FIFOs get entries without a
 * blob (v86 and HttpBackend skip them); the size of directories and symlinks is what the
 * source reports. From a tar, type bits are added to the mode and missing parent directories
 * are made (mode 0755).
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { FSJSON_VERSION, BLOB_HASH_LENGTH, type FsJsonEntry } from './backends/fsjson.js';
import { readTar } from './tar.js';

const S_IFLNK = 0o120000, S_IFREG = 0o100000, S_IFDIR = 0o40000;
const TAR_TYPE_BITS: Record<string, number> = { '0': S_IFREG, '1': S_IFREG, '2': S_IFLNK, '3': 0o20000, '4': 0o60000, '5': S_IFDIR, '6': 0o10000 };
const IO = 1 << 20;

export interface ImageResult { files: number; blobs: number; bytes: number }

class BlobWriter {
  private readonly hashes = new Map<string, string>();
  files = 0;
  bytes = 0;
  constructor(private readonly dir: string) { fs.mkdirSync(dir, { recursive: true }); }

  /** Hash `read`'s bytes (read(pos, len) → bytes), store the blob once, return its name. */
  add(size: number, read: (pos: number, len: number) => Uint8Array): string {
    const h = crypto.createHash('sha256');
    for (let p = 0; p < size; p += IO) h.update(read(p, Math.min(IO, size - p)));
    const full = h.digest('hex');
    const name = full.slice(0, BLOB_HASH_LENGTH) + '.bin';
    const prev = this.hashes.get(name);
    if (prev !== undefined && prev !== full) throw new Error(`image: short hash collision (${prev} and ${full})`);
    this.files++;
    if (prev === undefined) {
      this.hashes.set(name, full);
      const dst = path.join(this.dir, name);
      const tmp = dst + '.tmp';
      const fd = fs.openSync(tmp, 'w');
      try { for (let p = 0; p < size; p += IO) fs.writeSync(fd, read(p, Math.min(IO, size - p))); } finally { fs.closeSync(fd); }
      fs.renameSync(tmp, dst);
      this.bytes += size;
    }
    return name;
  }
  get blobs(): number { return this.hashes.size; }
}

function fdReader(fd: number, base = 0): (pos: number, len: number) => Uint8Array {
  return (pos, len) => {
    const b = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const n = fs.readSync(fd, b, got, len - got, base + pos + got);
      if (n === 0) break;
      got += n;
    }
    return b.subarray(0, got);
  };
}

function fromDir(root: string, blobs: BlobWriter): { fsroot: FsJsonEntry[]; size: number } {
  let total = 0;
  const node = (st: fs.Stats, name: string): FsJsonEntry => {
    total += st.size;
    return [name, st.size, Math.floor(st.mtimeMs / 1000), st.mode, st.uid, st.gid];
  };
  const walk = (dir: string): FsJsonEntry[] => {
    const out: FsJsonEntry[] = [];
    const subdirs: string[] = [];
    for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
      const abs = path.join(dir, d.name);
      const st = fs.lstatSync(abs);
      if (st.isDirectory()) { subdirs.push(d.name); continue; }
      const e = node(st, d.name);
      if (st.isSymbolicLink()) e[6] = fs.readlinkSync(abs);
      else if (st.isFile()) {
        const fd = fs.openSync(abs, 'r');
        try { e[6] = blobs.add(st.size, fdReader(fd)); } finally { fs.closeSync(fd); }
      }
      out.push(e);
    }
    for (const name of subdirs) {
      const abs = path.join(dir, name);
      const e = node(fs.statSync(abs), name);
      e[6] = walk(abs);
      out.push(e);
    }
    return out;
  };
  const fsroot = walk(root);
  return { fsroot, size: total };
}

function fromTar(file: string, blobs: BlobWriter): { fsroot: FsJsonEntry[]; size: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const read = fdReader(fd);
    const fsroot: FsJsonEntry[] = [];
    let total = 0;
    const byPath = new Map<string, FsJsonEntry>();
    const blobOf = new Map<string, [string, number]>();
    const dirOf = (p: string, mtime: number): FsJsonEntry[] => {
      if (p === '') return fsroot;
      const e = byPath.get(p);
      if (e !== undefined && Array.isArray(e[6])) return e[6];
      const i = p.lastIndexOf('/');
      const parent = dirOf(i < 0 ? '' : p.slice(0, i), mtime);
      const d: FsJsonEntry = [p.slice(i + 1), 4096, mtime, S_IFDIR | 0o755, 0, 0, []];
      if (e !== undefined) parent.splice(parent.indexOf(e), 1);
      parent.push(d);
      byPath.set(p, d);
      return d[6] as FsJsonEntry[];
    };
    for (const m of readTar(read)) {
      if (m.name === '') continue;
      const bits = TAR_TYPE_BITS[m.type];
      if (bits === undefined) continue;
      const i = m.name.lastIndexOf('/');
      const name = m.name.slice(i + 1);
      const e: FsJsonEntry = [name, m.size, m.mtime, m.mode | bits, m.uid, m.gid];
      if (m.type === '0') {
        const b = blobs.add(m.size, (pos, len) => read(m.offset + pos, len));
        e[6] = b;
        blobOf.set(m.name, [b, m.size]);
      } else if (m.type === '1') {
        const t = blobOf.get(m.linkname);
        if (t === undefined) continue;
        e[6] = t[0]; e[1] = t[1];
        blobs.files++;
      } else if (m.type === '2') {
        e[6] = m.linkname;
      } else if (m.type === '5') {
        const old = byPath.get(m.name);
        e[6] = old !== undefined && Array.isArray(old[6]) ? old[6] : [];
      }
      const parent = dirOf(i < 0 ? '' : m.name.slice(0, i), m.mtime);
      const old = byPath.get(m.name);
      if (old !== undefined) { parent.splice(parent.indexOf(old), 1); total -= old[1]; }
      parent.push(e);
      byPath.set(m.name, e);
      total += e[1];
    }
    return { fsroot, size: total };
  } finally {
    fs.closeSync(fd);
  }
}

/** Build an image of a directory or a tar file into `out` (fs.json and base/). */
export function buildImage(src: string, out: string): ImageResult {
  const st = fs.statSync(src);
  const blobs = new BlobWriter(path.join(out, 'base'));
  const { fsroot, size } = st.isDirectory() ? fromDir(src, blobs) : fromTar(src, blobs);
  const json = JSON.stringify({ fsroot, version: FSJSON_VERSION, size });
  fs.writeFileSync(path.join(out, 'fs.json'), json);
  return { files: blobs.files, blobs: blobs.blobs, bytes: blobs.bytes };
}

/** Entries sorted by name at every level (for comparing indexes made by different tools). */
export function sortFsJson(list: FsJsonEntry[]): FsJsonEntry[] {
  return list.map((e) => (Array.isArray(e[6]) ? [...e.slice(0, 6), sortFsJson(e[6])] as unknown as FsJsonEntry : e))
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}
