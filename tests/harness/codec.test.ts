import { describe, test, expect } from '@jest/globals';
import { readFileSync } from 'node:fs';
import {
  MESSAGES,
  MSG,
  encode,
  decode,
  parseDirents,
  encodeDirents,
  fromHex,
  toHex,
  P9_TVERSION,
  P9_RLERROR,
  P9_NOTAG,
  P9_NOFID,
  NOTAG,
  NOFID,
  GETATTR_BASIC,
  GETATTR_ALL,
  type Qid,
} from '../../src/testing/p9/codec.js';

interface Vector {
  name: string;
  type: number;
  tag: number;
  fields: unknown[];
  hex: string;
  source: string;
}

const raw = JSON.parse(readFileSync(new URL('../golden/9p-vectors.json', import.meta.url), 'utf8')) as Record<
  string,
  unknown
>[];
const vectors = raw.filter((v) => typeof v.name === 'string') as unknown as Vector[];

const enc = new TextEncoder();

/** JSON convention -> codec value, guided by the format character. */
function fromJson(c: string, v: unknown): unknown {
  const u64 = (x: unknown): bigint => {
    if (typeof x !== 'string' || !/^\d+n$/.test(x)) throw new Error(`bad u64 ${String(x)}`);
    return BigInt(x.slice(0, -1));
  };
  const bytes = (x: unknown): Uint8Array =>
    typeof x === 'string' ? enc.encode(x) : fromHex((x as { hex: string }).hex);
  const qid = (x: unknown): Qid => {
    const q = x as { type: number; version: number; path: string };
    return { type: q.type, version: q.version, path: u64(q.path) };
  };
  switch (c) {
    case 'b':
    case 'w':
    case 'd':
      if (typeof v !== 'number') throw new Error(`bad int ${String(v)}`);
      return v;
    case 'q':
      return u64(v);
    case 's':
    case 'D':
      return bytes(v);
    case 'Q':
      return qid(v);
    case 'T':
      return (v as unknown[]).map(bytes);
    case 'R':
      return (v as unknown[]).map(qid);
  }
  throw new Error(`unknown fmt char ${c}`);
}

function fieldsOf(v: Vector): unknown[] {
  const fmt = MESSAGES[v.type].fmt;
  expect(v.fields.length).toBe(fmt.length);
  return v.fields.map((f, i) => fromJson(fmt[i], f));
}

/** Normalise Uint8Array subclasses / views for toEqual. */
function norm(x: unknown): unknown {
  if (x instanceof Uint8Array) return { bytes: toHex(x) };
  if (Array.isArray(x)) return x.map(norm);
  if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, y]) => [k, norm(y)]));
  return x;
}

describe('9P codec table', () => {
  test('golden file is non-trivial', () => {
    expect(vectors.length).toBeGreaterThan(60);
  });

  test('every message type in MESSAGES has at least one vector', () => {
    const have = new Set(vectors.map((v) => v.type));
    const missing = Object.keys(MESSAGES)
      .map(Number)
      .filter((t) => !have.has(t))
      .map((t) => MESSAGES[t].name);
    expect(missing).toEqual([]);
  });

  test('every vector refers to a table entry with the same name', () => {
    for (const v of vectors) {
      expect(MESSAGES[v.type]?.name).toBe(v.name);
      expect(MSG[v.name]).toBe(v.type);
    }
  });

  test('ids obey R = T + 1, T ids are even, names agree', () => {
    for (const [k, m] of Object.entries(MESSAGES)) {
      const id = Number(k);
      if (m.name.startsWith('T')) {
        expect(id % 2).toBe(0);
        expect(MESSAGES[id + 1]?.name).toBe('R' + m.name.slice(1));
      } else {
        expect(m.name.startsWith('R')).toBe(true);
        expect(id % 2).toBe(1);
        if (id !== P9_RLERROR) expect(MESSAGES[id - 1]?.name).toBe('T' + m.name.slice(1));
      }
    }
  });

  test('required 9P2000.L + base messages are present with the expected formats', () => {
    const want: Record<string, string> = {
      Tversion: 'ds', Rversion: 'ds', Tauth: 'dssd', Rauth: 'Q', Tattach: 'ddssd', Rattach: 'Q', Rlerror: 'd',
      Tflush: 'w', Rflush: '', Twalk: 'ddT', Rwalk: 'R', Tread: 'dqd', Rread: 'D', Twrite: 'dqD', Rwrite: 'd',
      Tclunk: 'd', Rclunk: '', Tremove: 'd', Rremove: '', Tstatfs: 'd', Rstatfs: 'ddqqqqqqd', Tlopen: 'dd',
      Rlopen: 'Qd', Tlcreate: 'dsddd', Rlcreate: 'Qd', Tsymlink: 'dssd', Rsymlink: 'Q', Tmknod: 'dsdddd',
      Rmknod: 'Q', Trename: 'dds', Rrename: '', Treadlink: 'd', Rreadlink: 's', Tgetattr: 'dq',
      Rgetattr: 'qQdddqqqqqqqqqqqqqqq', Tsetattr: 'dddddqqqqq', Rsetattr: '', Txattrwalk: 'dds', Rxattrwalk: 'q',
      Txattrcreate: 'dsqd', Rxattrcreate: '', Treaddir: 'dqd', Rreaddir: 'D', Tfsync: 'dd', Rfsync: '',
      Tlock: 'dbdqqds', Rlock: 'b', Tgetlock: 'dbqqds', Rgetlock: 'bqqds', Tlink: 'dds', Rlink: '',
      Tmkdir: 'dsdd', Rmkdir: 'Q', Trenameat: 'dsds', Rrenameat: '', Tunlinkat: 'dsd', Runlinkat: '',
    };
    for (const [name, fmt] of Object.entries(want)) {
      expect(MSG[name]).toBeDefined();
      expect([name, MESSAGES[MSG[name]].fmt]).toEqual([name, fmt]);
    }
  });

  test('constants', () => {
    expect(P9_TVERSION).toBe(100);
    expect(P9_NOTAG).toBe(0xffff);
    expect(NOTAG).toBe(0xffff);
    expect(P9_NOFID).toBe(0xffffffff);
    expect(NOFID).toBe(0xffffffff);
    expect(GETATTR_BASIC).toBe(0x7ffn);
    expect(GETATTR_ALL).toBe(0x3fffn);
  });
});

describe.each(vectors.map((v, i) => [`${v.name} #${i}`, v] as const))('vector %s', (_label, v) => {
  const bytes = fromHex(v.hex);

  test('size field equals the vector length', () => {
    expect(new DataView(bytes.buffer).getUint32(0, true)).toBe(bytes.length);
  });

  test('encode(fields) === hex', () => {
    expect(toHex(encode(v.type, v.tag, fieldsOf(v)))).toBe(v.hex);
  });

  test('decode(hex) === fields', () => {
    const d = decode(bytes);
    expect(d.type).toBe(v.type);
    expect(d.tag).toBe(v.tag);
    expect(d.name).toBe(v.name);
    expect(norm(d.fields)).toEqual(norm(fieldsOf(v)));
  });

  test('every truncated prefix throws, a trailing extra byte throws', () => {
    for (let n = 0; n < bytes.length; n++) {
      expect(() => decode(bytes.slice(0, n))).toThrow(Error);
      // also a prefix whose size field was patched to match (field-level bounds check)
      if (n >= 7) {
        const p = bytes.slice(0, n);
        new DataView(p.buffer).setUint32(0, n, true);
        expect(() => decode(p)).toThrow(/9p decode/);
      }
    }
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    expect(() => decode(longer)).toThrow(/size field/);
    new DataView(longer.buffer).setUint32(0, longer.length, true);
    expect(() => decode(longer)).toThrow(/leftover/);
  });
});

describe('codec details', () => {
  test('unknown type and short header', () => {
    expect(() => decode(fromHex('07000000ff0100'))).toThrow(/unknown message type 255/);
    expect(() => decode(fromHex('070000'))).toThrow(/shorter than the 7-byte header/);
    expect(() => encode(99, 0, [])).toThrow(/unknown message type/);
  });

  test('encode validates field count and ranges', () => {
    expect(() => encode(P9_TVERSION, NOTAG, [512000])).toThrow(/expects 2 fields/);
    expect(() => encode(P9_TVERSION, NOTAG, [-1, '9P2000.L'])).toThrow(/integer/);
    expect(() => encode(P9_TVERSION, 0x10000, [1, 'x'])).toThrow(/tag/);
    expect(() => encode(MSG.Tgetattr, 1, [1, -1n])).toThrow(/u64/);
    expect(() => encode(MSG.Tflush, 1, [0x10000])).toThrow();
  });

  test('strings accept string or Uint8Array; u64 accepts safe numbers', () => {
    const a = encode(MSG.Twalk, 3, [0, 1, ['a', new Uint8Array([0xff, 0x00])]]);
    const d = decode(a);
    expect(norm(d.fields)).toEqual(norm([0, 1, [enc.encode('a'), new Uint8Array([0xff, 0])]]));
    expect(toHex(encode(MSG.Tread, 1, [1, 5, 10]))).toBe(toHex(encode(MSG.Tread, 1, [1, 5n, 10])));
  });

  test('decode works on a subarray view with a non-zero byteOffset', () => {
    const m = encode(MSG.Rlerror, 7, [2]);
    const big = new Uint8Array(m.length + 5);
    big.set(m, 5);
    expect(decode(big.subarray(5)).fields).toEqual([2]);
  });

  test('parseDirents parses the golden Rreaddir and round-trips encodeDirents', () => {
    const v = vectors.find((x) => x.name === 'Rreaddir' && (x.fields[0] as { hex: string }).hex.length > 0)!;
    const data = decode(fromHex(v.hex)).fields[0] as Uint8Array;
    const ents = parseDirents(data);
    expect(ents.length).toBe(2);
    expect(ents[0]).toEqual({ qid: { type: 0x80, version: 0, path: 2n }, offset: 1n, type: 4, name: enc.encode('.') });
    expect(ents[1].offset).toBe(0x7fffffffn);
    expect(new TextDecoder().decode(ents[1].name)).toBe('hello.txt');
    expect(toHex(encodeDirents(ents))).toBe(toHex(data));
    expect(parseDirents(new Uint8Array(0))).toEqual([]);
    for (let n = 1; n < data.length; n++) {
      if (n === 25) continue; // exact boundary after the first entry is valid
      expect(() => parseDirents(data.slice(0, n))).toThrow(/dirent/);
    }
  });
});
