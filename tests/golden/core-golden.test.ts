/**
 * The core against the golden vectors: every golden T-message gets a strictly decodable reply
 * for its tag, and where the server's answer is determined by the session, the reply is
 * byte-identical to the golden R-vector. Also: the core's message table (assembly/p9/messages.ts)
 * and the harness codec's table agree on every format.
 */
import { describe, test, expect, beforeAll } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { createMachine, type Machine } from '../../src/testing/machine.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { MESSAGES, decode, encode, fromHex, toHex } from '../../src/testing/p9/codec.js';

interface Vector { name: string; type: number; tag: number; fields: unknown[]; hex: string }
const vectors: Vector[] = JSON.parse(readFileSync(new URL('./9p-vectors.json', import.meta.url), 'utf8')).filter((v: Vector) => v.name);
const golden = (name: string, tag: number): Uint8Array => {
  const v = vectors.find((x) => x.name === name && x.tag === tag);
  if (!v) throw new Error(`no golden ${name} tag ${tag}`);
  return fromHex(v.hex);
};

describe('message table', () => {
  const src = readFileSync(new URL('../../assembly/p9/messages.ts', import.meta.url), 'utf8');
  const ids: Record<string, number> = {};
  for (const m of src.matchAll(/export const (P9_T\w+): u8 = (\d+);/g)) ids[m[1]] = Number(m[2]);
  ids.P9_RLERROR = 7;
  const table = (fn: string): Map<number, string> => {
    const body = src.split(`export function ${fn}`)[1].split('\n}\n')[0];
    const out = new Map<number, string>();
    for (const m of body.matchAll(/case (P9_\w+)( \+ 1)?: return "([^"]*)";/g)) out.set(ids[m[1]] + (m[2] ? 1 : 0), m[3]);
    return out;
  };
  const t = table('tFormat'), r = table('rFormat');

  test('every 9P2000.L T-message the core accepts has the codec format', () => {
    expect(t.size).toBeGreaterThanOrEqual(28);
    for (const [id, fmt] of t) expect([id, fmt]).toEqual([id, MESSAGES[id].fmt]);
  });
  test('every R-message the core encodes has the codec format', () => {
    for (const [id, fmt] of r) expect([id, fmt]).toEqual([id, MESSAGES[id].fmt]);
    for (const id of t.keys()) expect(r.has(id + 1)).toBe(true);
  });
});

describe('core vs golden vectors', () => {
  let m: Machine;
  let backend: MemoryBackend;
  const send = (bytes: Uint8Array, readData?: number) => m.driver.rpc(bytes, readData ? { readData } : { replyCap: 8192 });

  beforeAll(async () => {
    backend = new MemoryBackend();
    backend.mkdirp('usr/bin');
    const f = new Uint8Array(4096 + 13);
    f.set(new TextEncoder().encode('hello, world\n'), 4096);
    backend.writeFile('file', f);
    m = await createMachine({ backend });
  });

  test('Tversion 512000 "9P2000.L" → the golden Rversion', async () => {
    expect(toHex(await send(golden('Tversion', 65535)))).toBe(toHex(golden('Rversion', 65535)));
  });

  test('unknown dialect → the golden Rversion "unknown"', async () => {
    const reply = await send(encode(100, 65535, [8192, '9P2000.u']));
    expect(toHex(reply)).toBe(vectors.find((v) => v.name === 'Rversion' && (v.fields[1] as string) === 'unknown')!.hex);
    await send(golden('Tversion', 65535)); // back to 9P2000.L
  });

  test('the session answers byte for byte', async () => {
    await m.client.attach(0, 0xffffffff, 'root', '', 0);
    await m.client.attach(1, 0xffffffff, 'root', '', 0);
    expect(toHex(await send(encode(24, 1, [77, 0x7ffn])))).toBe(toHex(golden('Rlerror', 1))); // unknown fid → ENOENT
    expect(toHex(await send(golden('Twalk', 28)))).toBe(toHex(golden('Rwalk', 28)));
    await m.client.walk(0, 3, ['file']);
    await m.client.lopen(3, 2);
    expect(toHex(await send(golden('Tread', 31), 8168))).toBe(toHex(golden('Rread', 31)));
    expect(toHex(await send(encode(116, 32, [3, 4096n + 13n, 100]), 100))).toBe(toHex(golden('Rread', 32)));
    expect(toHex(await send(golden('Twrite', 33)))).toBe(toHex(golden('Rwrite', 33)));
    expect(await m.client.read(3, 2 ** 32, 100)).toEqual(new Uint8Array([0x61, 0x62, 0x63, 0, 0xff]));
    expect(toHex(await send(golden('Tflush', 26)))).toBe(toHex(golden('Rflush', 26)));
    expect(toHex(await send(golden('Tclunk', 34)))).toBe(toHex(golden('Rclunk', 34)));
    const unknown = new Uint8Array([7, 0, 0, 0, 200, 0x34, 0x12]);
    expect(toHex(await send(unknown))).toBe(toHex(golden('Rlerror', 4660)));
  });

  test('every golden T-message gets one well-formed reply for its tag', async () => {
    for (const v of vectors.filter((x) => x.name.startsWith('T'))) {
      const bytes = fromHex(v.hex);
      const isRead = v.type === 116 || v.type === 40;
      const reply = await send(bytes, isRead ? 8192 : undefined);
      const d = decode(reply);
      expect([v.name, d.tag]).toEqual([v.name, v.tag]);
      const legacy = [112, 114, 124, 126].includes(v.type);
      if (legacy) expect([v.name, d.type, d.fields[0]]).toEqual([v.name, 7, 95]);
      else expect([v.name, [v.type + 1, 7].includes(d.type)]).toEqual([v.name, true]);
      if (v.type === 100) await m.client.attach(0, 0xffffffff, 'root', '', 0).catch(() => undefined);
    }
    expect(m.device.counters().malformedChains).toBe(0);
  });
});
