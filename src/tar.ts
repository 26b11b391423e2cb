/**
 * Tar archives: a header reader (ustar, GNU long names, pax path/linkpath/size/mtime/uid/gid)
 * over any positioned byte source, and a writer (ustar headers, pax records for what does not
 * fit). Browser-safe.
 */

export interface TarEntry {
  /** path without leading "./" or "/" */
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  /** '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo */
  type: string;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** byte offset of the contents in the archive */
  offset: number;
}

const dec = new TextDecoder();
const enc = new TextEncoder();

function str(b: Uint8Array, off: number, len: number): string {
  let e = off;
  while (e < off + len && b[e] !== 0) e++;
  return dec.decode(b.subarray(off, e));
}

function num(b: Uint8Array, off: number, len: number): number {
  if (b[off] & 0x80) { // base-256
    let v = b[off] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i];
    return v;
  }
  const s = str(b, off, len).trim();
  if (s === '') return 0;
  const v = parseInt(s, 8);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`tar: bad number ${JSON.stringify(s)}`);
  return v;
}

function checksumOk(h: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
  return sum === num(h, 148, 8);
}

function normName(n: string): string {
  let s = n;
  while (s.startsWith('./')) s = s.slice(2);
  while (s.startsWith('/')) s = s.slice(1);
  while (s.endsWith('/')) s = s.slice(0, -1);
  return s === '.' ? '' : s;
}

/** Read the entries of a tar archive; `read(pos, len)` returns exactly len bytes or fewer at the end. */
export function* readTar(read: (pos: number, len: number) => Uint8Array): Generator<TarEntry> {
  let pos = 0;
  let longName: string | null = null, longLink: string | null = null;
  let pax: Record<string, string> = {};
  for (;;) {
    const h = read(pos, 512);
    if (h.length < 512) return;
    if (h.every((x) => x === 0)) return;
    if (!checksumOk(h)) throw new Error(`tar: bad header checksum at ${pos}`);
    const type = String.fromCharCode(h[156] || 0x30);
    let size = num(h, 124, 12);
    const data = pos + 512;
    const next = data + Math.ceil(size / 512) * 512;
    if (type === 'L' || type === 'K' || type === 'x' || type === 'g') {
      const body = read(data, size);
      if (type === 'L') longName = str(body, 0, body.length);
      else if (type === 'K') longLink = str(body, 0, body.length);
      else if (type === 'x') pax = parsePax(body);
      pos = next;
      continue;
    }
    const prefix = h[257] === 0x75 /* "ustar" */ ? str(h, 345, 155) : '';
    let name = longName ?? pax.path ?? (prefix ? prefix + '/' + str(h, 0, 100) : str(h, 0, 100));
    const linkname = longLink ?? pax.linkpath ?? str(h, 157, 100);
    if (pax.size !== undefined) size = Number(pax.size);
    const e: TarEntry = {
      name: normName(name), mode: num(h, 100, 8) & 0o7777,
      uid: pax.uid !== undefined ? Number(pax.uid) : num(h, 108, 8),
      gid: pax.gid !== undefined ? Number(pax.gid) : num(h, 116, 8),
      size, mtime: pax.mtime !== undefined ? Math.floor(Number(pax.mtime)) : num(h, 136, 12),
      type: type === '\0' || type === '7' ? '0' : type, linkname: type === '1' ? normName(linkname) : linkname,
      devmajor: num(h, 329, 8), devminor: num(h, 337, 8), offset: data,
    };
    name = e.name;
    pos = pax.size !== undefined ? data + Math.ceil(size / 512) * 512 : next;
    longName = longLink = null;
    pax = {};
    yield e;
  }
}

function parsePax(b: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < b.length) {
    let sp = i;
    while (sp < b.length && b[sp] !== 0x20) sp++;
    const len = parseInt(dec.decode(b.subarray(i, sp)), 10);
    if (!(len > 0) || i + len > b.length) break;
    const rec = dec.decode(b.subarray(sp + 1, i + len - 1));
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

export interface TarHeader {
  name: string; mode: number; uid: number; gid: number; size: number; mtime: number;
  /** '0' file, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo */
  type: string;
  linkname?: string;
  devmajor?: number; devminor?: number;
}

function putStr(h: Uint8Array, off: number, len: number, s: string): boolean {
  const b = enc.encode(s);
  if (b.length > len) return false;
  h.set(b, off);
  return true;
}

function putNum(h: Uint8Array, off: number, len: number, v: number): boolean {
  const s = v.toString(8);
  if (s.length > len - 1) return false;
  putStr(h, off, len, s.padStart(len - 1, '0'));
  return true;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let n = enc.encode(body).length;
  let len = n + String(n).length;
  if (String(len).length !== String(n).length) len = n + String(len).length;
  return `${len}${body}`;
}

function header(t: TarHeader): Uint8Array {
  const h = new Uint8Array(512);
  putStr(h, 0, 100, t.name);
  putNum(h, 100, 8, t.mode & 0o7777);
  putNum(h, 108, 8, t.uid);
  putNum(h, 116, 8, t.gid);
  putNum(h, 124, 12, t.size);
  putNum(h, 136, 12, t.mtime);
  h[156] = t.type.charCodeAt(0);
  putStr(h, 157, 100, t.linkname ?? '');
  putStr(h, 257, 8, 'ustar\x0000');
  putNum(h, 329, 8, t.devmajor ?? 0);
  putNum(h, 337, 8, t.devminor ?? 0);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += h[i];
  putStr(h, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

/** Header blocks for one entry (a pax header first when a field does not fit ustar). */
export function tarHeader(t: TarHeader): Uint8Array[] {
  const pax: string[] = [];
  const probe = new Uint8Array(512);
  if (!putStr(probe, 0, 100, t.name)) pax.push(paxRecord('path', t.name));
  if (t.linkname !== undefined && !putStr(probe, 157, 100, t.linkname)) pax.push(paxRecord('linkpath', t.linkname));
  if (!putNum(probe, 124, 12, t.size)) pax.push(paxRecord('size', String(t.size)));
  if (!putNum(probe, 108, 8, t.uid)) pax.push(paxRecord('uid', String(t.uid)));
  if (!putNum(probe, 116, 8, t.gid)) pax.push(paxRecord('gid', String(t.gid)));
  const main = header({
    ...t, name: enc.encode(t.name).length > 100 ? t.name.slice(-90) : t.name,
    linkname: t.linkname !== undefined && enc.encode(t.linkname).length > 100 ? '' : t.linkname,
    size: pax.some((r) => r.includes(' size=')) ? 0 : t.size,
    uid: t.uid > 0o7777777 ? 0 : t.uid, gid: t.gid > 0o7777777 ? 0 : t.gid,
  });
  if (pax.length === 0) return [main];
  const body = enc.encode(pax.join(''));
  const ph = header({ name: 'PaxHeader', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: t.mtime, type: 'x' });
  const padded = new Uint8Array(Math.ceil(body.length / 512) * 512);
  padded.set(body);
  return [ph, padded, main];
}

/** Zero padding after `size` bytes of contents. */
export function tarPad(size: number): Uint8Array {
  return new Uint8Array((512 - (size % 512)) % 512);
}

/** The end-of-archive marker (two zero blocks). */
export const TAR_END = new Uint8Array(1024);
