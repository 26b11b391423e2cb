/**
 * Seed a MemoryBackend from a host directory (Node only): regular files with their bytes and
 * modes, directories, symlinks. Other file types are skipped.
 */
import fs from 'node:fs';
import path from 'node:path';
import { MemoryBackend } from './memory.js';

export function memoryFromDirectory(dir: string, opts: ConstructorParameters<typeof MemoryBackend>[0] = {}): MemoryBackend {
  const mem = new MemoryBackend(opts);
  const walk = (abs: string, rel: string) => {
    for (const d of fs.readdirSync(abs, { withFileTypes: true })) {
      const a = path.join(abs, d.name);
      const r = rel ? `${rel}/${d.name}` : d.name;
      const st = fs.lstatSync(a);
      if (st.isDirectory()) { mem.mkdirp(r, st.mode & 0o7777); walk(a, r); }
      else if (st.isFile()) mem.writeFile(r, fs.readFileSync(a), st.mode & 0o7777);
      else if (st.isSymbolicLink()) mem.symlinkAt(r, fs.readlinkSync(a));
      else if (st.isFIFO() || st.isSocket() || st.isCharacterDevice() || st.isBlockDevice()) {
        mem.mknodAt(r, st.mode, Math.floor(st.rdev / 256) & 0xfff, (st.rdev & 0xff) | ((st.rdev >>> 12) & ~0xff));
      }
    }
  };
  walk(dir, '');
  return mem;
}
