/**
 * The main job on its embedded default: a device with the in-memory backend seeded with a
 * small tree, driven by the guest driver through the real virtqueue, doing a short session.
 */
import { createMachine } from './testing/machine.js';
import { MemoryBackend } from './backends/memory.js';
import { P9_NOFID } from './testing/p9/codec.js';
import type { Backend } from './backends/backend.js';

const td = new TextDecoder();
const O_RDONLY = 0, O_RDWR = 2, O_DIRECTORY = 0o200000;

type Tree = { [name: string]: string | { symlink: string } | Tree };

/** The embedded default export. */
export const DEMO_TREE: Tree = {
  'README.txt': 'virtio9p-wasm demo export\n',
  etc: { hostname: 'wasm-guest\n', motd: 'Welcome to a 9P2000.L share served from WebAssembly.\n' },
  home: { user: { 'notes.md': '# notes\n- ring buffers are fun\n', link: { symlink: '../../README.txt' } } },
  var: { log: {} },
};

export function demoTree(): MemoryBackend {
  return MemoryBackend.fromTree(DEMO_TREE as never);
}

export async function runDemo(log: (line: string) => void = console.log, backend: Backend = demoTree()): Promise<{ requests: number; seconds: number }> {
  const { client, device } = await createMachine({ backend });
  const t0 = performance.now();
  const v = await client.version(512000);
  log(`Tversion        → ${v.version}, msize ${v.msize}`);
  const root = await client.attach(0, P9_NOFID, 'root', '', 0);
  log(`Tattach         → root qid type 0x${root.type.toString(16)} path ${root.path}`);

  await client.walk(0, 1, []);
  await client.lopen(1, O_RDONLY | O_DIRECTORY);
  const entries = await client.readdirAll(1);
  log(`Treaddir /      → ${entries.map((e) => td.decode(e.name)).join('  ')}`);
  await client.clunk(1);

  const qids = await client.walk(0, 2, ['home', 'user', 'notes.md']);
  log(`Twalk home/user/notes.md → ${qids.length} qids, file qid path ${qids[2].path}`);
  await client.lopen(2, O_RDWR);
  log(`Tread notes.md  → ${JSON.stringify(td.decode(await client.read(2, 0, 4096)))}`);
  const extra = new TextEncoder().encode('- and so is 9P\n');
  const size = Number((await client.getattr(2)).size);
  const n = await client.write(2, size, extra);
  log(`Twrite          → ${n} bytes appended at offset ${size}`);
  log(`Tread again     → ${JSON.stringify(td.decode(await client.read(2, 0, 4096)))}`);
  await client.clunk(2);

  await client.walk(0, 3, ['home', 'user', 'link']);
  log(`Treadlink link  → ${await client.readlink(3)}`);
  await client.clunk(3);

  await client.walk(0, 4, ['var', 'log']);
  await client.walk(4, 5, []);
  await client.lcreate(5, 'boot.log', O_RDWR, 0o644);
  await client.write(5, 0, new TextEncoder().encode('booted\n'));
  log(`Tlcreate var/log/boot.log → created and written`);
  await client.clunk(5);
  await client.renameat(4, 'boot.log', 4, 'boot.log.1');
  log(`Trenameat       → var/log/boot.log.1`);
  await client.walk(4, 6, []);
  await client.lopen(6, O_RDONLY | O_DIRECTORY);
  log(`Treaddir var/log → ${(await client.readdirAll(6)).map((e) => td.decode(e.name)).join('  ')}`);
  await client.clunk(6);
  await client.unlinkat(4, 'boot.log.1');
  log(`Tunlinkat       → var/log/boot.log.1 removed`);
  await client.clunk(4);

  // A short burst of walk + getattr + clunk to show the rate.
  const burst = 20000;
  const tb = performance.now();
  for (let i = 0; i < burst; i++) {
    await client.walk(0, 7, ['etc', 'hostname']);
    await client.getattr(7);
    await client.clunk(7);
  }
  const bs = (performance.now() - tb) / 1000;
  const c = device.counters();
  const requests = Object.values(c.requests).reduce((a, b) => a + b, 0);
  const seconds = (performance.now() - t0) / 1000;
  log(`walk+getattr+clunk × ${burst}: ${Math.round((burst * 3) / bs).toLocaleString('en-US')} requests/s`);
  log(`session: ${requests} requests, ${c.replies} replies, ${Object.keys(c.errors).length ? JSON.stringify(c.errors) : 'no'} errors, ` +
    `${Math.round(requests / seconds).toLocaleString('en-US')} ops/s overall`);
  return { requests, seconds };
}
