/**
 * Hostile guests (issue 7): the device stays within a fixed memory bound, answers with errors
 * where it must, and other queues / connections keep working.
 *
 * The memory bound. The core's linear memory is sized at instantiation: coreEnd() (static
 * area: 256 request slots with their message buffers, 64 sessions with a first fid table of
 * 1,024 entries each, counters) rounded up to 64 KiB, plus guestMemorySize. It grows only
 * when a session's fid table outgrows its first area — bounded by the per-session fid limit
 * (maxFids) — and every other test here compares WebAssembly memory size before and after. The host side keeps, per request,
 * one slot's state (at most 256 in flight: counters().inflight ≤ 256, then the device stops
 * popping the ring — counters().stalls — and the chains stay in the guest's ring); the socket
 * server additionally bounds request and reply bytes by its buffer arena (bufferSize: when it is
 * full the server stops reading the connection), so a client that never reads replies costs
 * at most bufferSize + the kernel's socket buffers. The figures are logged by each test.
 */
import { describe, test, expect, afterAll } from '@jest/globals';
import path from 'node:path';
import fs from 'node:fs';
import { Rig, defaultBackend, type HandChain } from '../../harness/ring/rig.js';
import { DeferredBackend, tick } from '../conformance/util.js';
import { createMachine } from '../../src/testing/machine.js';
import { P9Client, P9ClientError, P9FlushedError } from '../../src/testing/p9/client.js';
import { encode, decode, MSG, P9_RLERROR } from '../../src/testing/p9/codec.js';
import { P9Server } from '../../src/serve.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { connectStream } from '../../harness/soak/stream-client.js';
import { tempDir } from '../clients/serve-util.js';

const EMFILE = 24;
const MAX_SLOTS = 256;
const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => { for (const c of cleanups.reverse()) await c(); });

const log = (s: string): void => { console.log(s); }; // eslint-disable-line no-console
const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
const memOf = (ram: Uint8Array): number => ram.buffer.byteLength;

describe('hostile guests', () => {
  test('10,000 requests posted without reading replies: ≤ 256 in flight, the device stalls, memory fixed', async () => {
    const deferred = new DeferredBackend(defaultBackend());
    const rig = await Rig.create({ backend: deferred, ramSize: 4 << 20, queueSize: 1024 });
    await rig.serviceCheck();
    rig.mux.forward = false; // the guest never looks at the used ring from here on
    const N = rig.N;
    const mem0 = memOf(rig.device.ram);
    const c0 = rig.device.counters();
    // 512 chains (indirect: one ring descriptor each), re-posted over and over while their
    // earlier replies are unread — what a hostile guest may do
    const chains: HandChain[] = [];
    for (let i = 0; i < 512; i++) chains.push(rig.buildChain([{ data: encode(MSG.Tgetattr, i, [0, 0x7ffn]) }, { write: 256 }], { indirect: true }));
    deferred.hold((m) => m === 'getattr');
    const TOTAL = 10000;
    let posted = 0;
    let maxInflight = 0;
    let rounds = 0;
    while (posted < TOTAL) {
      const c = rig.device.counters();
      const popped = c.replies - c0.replies + c.inflight;
      const room = Math.min(N - (posted - popped), TOTAL - posted);
      for (let k = 0; k < room; k++) rig.post(chains[(posted + k) % chains.length].head);
      posted += room;
      rig.kick();
      const c1 = rig.device.counters();
      maxInflight = Math.max(maxInflight, c1.inflight);
      expect(c1.inflight).toBeLessThanOrEqual(MAX_SLOTS);
      expect(rig.device.needsReset).toBe(false);
      // the backend answers what it holds; completions let the device pop more
      deferred.release();
      for (let k = 0; k < 3; k++) await tick();
      rounds++;
    }
    deferred.passThrough();
    deferred.release();
    for (let k = 0; k < 50 && rig.device.counters().replies - c0.replies < TOTAL; k++) { rig.kick(); await tick(); }
    const c2 = rig.device.counters();
    log(`[hostile flood/ring] ${TOTAL} posted in ${rounds} rounds; replies ${c2.replies - c0.replies}, inflight now ${c2.inflight}, ` +
      `inflightHighWater ${c2.inflightHighWater}, max seen ${maxInflight}, stalls ${c2.stalls - c0.stalls}; ` +
      `wasm memory ${mib(mem0)} → ${mib(memOf(rig.device.ram))} (guest RAM ${mib(rig.ramSize)})`);
    expect(c2.replies - c0.replies).toBe(TOTAL);
    expect(c2.inflight).toBe(0);
    expect(c2.inflightHighWater).toBeLessThanOrEqual(MAX_SLOTS);
    expect(maxInflight).toBe(MAX_SLOTS); // it really filled every slot...
    expect(c2.stalls - c0.stalls).toBeGreaterThan(0); // ...and stalled instead of growing
    expect(memOf(rig.device.ram)).toBe(mem0);
    expect(rig.device.needsReset).toBe(false);
    for (const ch of chains) rig.release(ch);
    rig.reinit();
    await rig.serviceCheck();
  }, 60000);

  test('10,000 requests on a socket without reading replies: bounded by the server arena; another connection keeps working [REGRESSION: fails, serve.ts shared arena]', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('f', 'x'.repeat(100));
    const sock = path.join(tempDir('hostile'), 's.sock');
    const BUF = 8 << 20;
    const srv = await P9Server.start({ backend: mem, listen: { kind: 'unix', path: sock }, bufferSize: BUF });
    cleanups.push(() => srv.close());
    const mem0 = memOf(srv.device.ram);
    const rss0 = process.memoryUsage().rss;
    const a = await connectStream(sock);
    await a.client.version(65536);
    await a.client.attach(0, 0xffffffff, 'root', '', 0);
    // stop reading replies, then blast 10,000 Tgetattr
    a.socket.pause();
    const TOTAL = 10000;
    const one = encode(MSG.Tgetattr, 1, [0, 0x7ffn]);
    const blob = Buffer.alloc(one.length * TOTAL);
    for (let i = 0; i < TOTAL; i++) { blob.set(one, i * one.length); blob.writeUInt16LE(i % 0xffff, i * one.length + 5); }
    a.socket.write(blob);
    let maxBuf = 0;
    let maxInflight = 0;
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 10));
      maxBuf = Math.max(maxBuf, srv.buffersInUse);
      maxInflight = Math.max(maxInflight, srv.device.counters().inflight);
    }
    const rss1 = process.memoryUsage().rss;
    // a second connection must be served meanwhile (3 s allowed)
    const b = await connectStream(sock);
    const bWork = (async () => {
      await b.client.version(65536);
      await b.client.attach(0, 0xffffffff, 'root', '', 0);
      const st = await b.client.getattr(0);
      expect(st.mode & 0o170000).toBe(0o040000);
      await b.client.walk(0, 1, ['f']);
      await b.client.lopen(1, 0);
      expect(new TextDecoder().decode(await b.client.read(1, 0, 200))).toBe('x'.repeat(100));
      return 'served';
    })();
    const bWhileStalled = await Promise.race([bWork, new Promise<string>((r) => setTimeout(() => r('starved'), 3000))]);
    const buffersWhileStalled = srv.buffersInUse;
    // now read everything
    a.socket.resume();
    for (let i = 0; i < 500 && a.replies < TOTAL + 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await bWork).toBe('served'); // once A reads again, B is answered
    log(`[hostile flood/socket] ${TOTAL} requests unread: server buffer blocks in use peaked at ${maxBuf} (arena ${mib(BUF)}), ` +
      `second connection while A stalled: ${bWhileStalled} (blocks in use ${buffersWhileStalled}), ` +
      `device inflight peak ${maxInflight}, RSS ${mib(rss0)} → ${mib(rss1)} while stalled; replies received afterwards ${a.replies - 2}; ` +
      `wasm memory ${mib(mem0)} → ${mib(memOf(srv.device.ram))}`);
    expect(a.replies).toBe(TOTAL + 2);
    expect(a.unmatched.every((m) => m[4] === MSG.Rgetattr)).toBe(true);
    expect(maxInflight).toBeLessThanOrEqual(MAX_SLOTS);
    expect(memOf(srv.device.ram)).toBe(mem0);
    await a.close();
    await b.close();
    for (let i = 0; i < 100 && srv.connections; i++) await tick();
    expect(srv.buffersInUse).toBe(0);
    expect(srv.device.counters().inflight).toBe(0);
    // BUG (host, src/serve.ts): the buffer arena is shared by all connections with no
    // per-connection share, so one connection that stops reading its replies fills it and
    // every other connection starves until that one reads again.
    expect(bWhileStalled).toBe('served');
  }, 60000);

  test('a guest that flushes every tag (0..0xFFFE) while 100 requests are held', async () => {
    const deferred = new DeferredBackend(defaultBackend());
    const m = await createMachine({ backend: deferred, guestMemorySize: 8 << 20, msize: 65536 });
    const c = m.client;
    const log2: { kind: 'req' | 'flush'; tag: number; len: number }[] = [];
    await c.version(65536);
    await c.attach(0, 0xffffffff, 'root', '', 0);
    const mem0 = memOf(m.device.ram);
    deferred.hold((x) => x === 'getattr');
    const HELD = 100;
    const reqs: Promise<unknown>[] = [];
    for (let t = 0; t < HELD; t++) {
      reqs.push(c.raw(MSG.Tgetattr, [0, 0x7ffn], { tag: t }).then(
        (d) => { log2.push({ kind: 'req', tag: t, len: d.type }); },
        (e) => { if (e instanceof P9FlushedError) log2.push({ kind: 'req', tag: t, len: 0 }); else throw e; },
      ));
    }
    await deferred.waitFor('getattr');
    // Tflush of every tag, each from a tag of its own (flushes of held tags use 1000 + t;
    // flushing tags 1000..1099 later flushes those flushes)
    const flushes: Promise<void>[] = [];
    for (let t = 0; t < 0xffff; t++) {
      const ftag = t < HELD ? 1000 + t : t >= 1000 && t < 1000 + HELD ? 2000 + (t - 1000) : (t + 0x8000) % 0xffff;
      flushes.push(c.raw(MSG.Tflush, [t], { tag: ftag }).then((d) => {
        if (d.type !== MSG.Rflush) throw new Error(`Tflush(${t}) → ${d.name} ${JSON.stringify(d.fields)}`);
        if (t < HELD) log2.push({ kind: 'flush', tag: t, len: d.type });
      }));
      if ((t & 1023) === 0) await tick();
    }
    for (let k = 0; k < 20; k++) await tick();
    const mid = m.device.counters();
    expect(mid.inflight).toBeLessThanOrEqual(MAX_SLOTS);
    deferred.passThrough();
    deferred.release();
    await Promise.all([...reqs, ...flushes]);
    const cEnd = m.device.counters();
    log(`[hostile flush] ${0xffff} Tflush sent, ${HELD} held requests: flushed ${cEnd.flushed}, inflight during ${mid.inflight}, ` +
      `high water ${cEnd.inflightHighWater}, stalls ${cEnd.stalls}; wasm memory ${mib(mem0)} → ${mib(memOf(m.device.ram))}`);
    // each held request completed (Rgetattr or silently) before its Rflush
    for (let t = 0; t < HELD; t++) {
      const r = log2.findIndex((x) => x.kind === 'req' && x.tag === t);
      const f = log2.findIndex((x) => x.kind === 'flush' && x.tag === t);
      expect(r).toBeGreaterThanOrEqual(0);
      expect(f).toBeGreaterThan(r);
    }
    expect(cEnd.inflight).toBe(0);
    expect(cEnd.inflightHighWater).toBeLessThanOrEqual(MAX_SLOTS);
    expect(memOf(m.device.ram)).toBe(mem0);
    expect(m.device.needsReset).toBe(false);
    const st = await c.getattr(0);
    expect(st.mode & 0o170000).toBe(0o040000);
  }, 90000);

  test('a guest that opens fids up to its limit gets EMFILE; its other fids and other connections keep working; the table memory is reused', async () => {
    const mem = new MemoryBackend();
    mem.writeFile('f', 'data');
    const sock = path.join(tempDir('hostile'), 's.sock');
    const LIMIT = 4096;
    const srv = await P9Server.start({ backend: mem, listen: { kind: 'unix', path: sock }, bufferSize: 16 << 20, maxFids: LIMIT });
    cleanups.push(() => srv.close());
    const mem0 = memOf(srv.device.ram);
    const a = await connectStream(sock);
    const b = await connectStream(sock);
    for (const x of [a, b]) { await x.client.version(65536); await x.client.attach(0, 0xffffffff, 'root', '', 0); }
    let n = 1; // the root
    let err = 0;
    for (let fid = 1; fid < 10000; fid++) {
      try {
        await a.client.walk(0, fid, fid % 2 ? ['f'] : []);
        n++;
      } catch (e) {
        if (!(e instanceof P9ClientError)) throw e;
        err = e.errno;
        break;
      }
      if (fid % 512 === 0) { // the other connection is unaffected while A fills its table
        const st = await b.client.getattr(0);
        expect(st.mode & 0o170000).toBe(0o040000);
      }
    }
    log(`[hostile fids] connection A held ${n} fids when walk failed with errno ${err}; memory ${mib(mem0)} → ${mib(memOf(srv.device.ram))}`);
    expect(err).toBe(EMFILE);
    expect(n).toBe(LIMIT);
    // A's table grew from 1,024 to 8,192 entries (past 3/4 load): 64 + 128 + 256 KiB of heap
    const memFull = memOf(srv.device.ram);
    expect(memFull - mem0).toBeLessThanOrEqual(448 << 10);
    // the full table refuses every fid-creating request cleanly, and A's existing fids work
    expect(await a.client.lopen(1, 0).then(() => 0)).toBe(0);
    expect(new TextDecoder().decode(await a.client.read(1, 0, 100))).toBe('data');
    const rl = await a.client.raw(MSG.Txattrwalk, [0, 20000, '']);
    expect(rl.type).toBe(P9_RLERROR);
    // B: a full session of its own is possible too
    await b.client.walk(0, 1, ['f']);
    await b.client.lopen(1, 0);
    expect(new TextDecoder().decode(await b.client.read(1, 0, 100))).toBe('data');
    // clunk one on A: the next walk succeeds
    await a.client.clunk(2);
    await a.client.walk(0, 2, ['f']);
    await a.close();
    for (let i = 0; i < 100 && srv.connections > 1; i++) await tick();
    expect(mem.openHandles).toBe(1); // only B's
    // A's table went back to the heap: a new connection fills its own without more memory
    const c = await connectStream(sock);
    await c.client.version(65536);
    await c.client.attach(0, 0xffffffff, 'root', '', 0);
    for (let fid = 1; fid < LIMIT; fid++) await c.client.walk(0, fid, []);
    expect(await c.client.walk(0, LIMIT, []).then(() => 0, (e: P9ClientError) => e.errno)).toBe(EMFILE);
    expect(memOf(srv.device.ram)).toBe(memFull);
    await c.close();
    await b.close();
  }, 90000);

  test('reads and readdirs of 4 GiB: count clamped to msize and the writable space', async () => {
    const mem = defaultBackend();
    mem.writeFile('big', new Uint8Array(3 << 20).fill(7));
    const m = await createMachine({ backend: mem, guestMemorySize: 16 << 20, msize: 65536 });
    const c = m.client;
    await c.version(65536);
    await c.attach(0, 0xffffffff, 'root', '', 0);
    await c.walk(0, 1, ['big']);
    await c.lopen(1, 0);
    const mem0 = memOf(m.device.ram);
    // regular reply buffer of 8 KiB: count ≤ 8192 - 11
    let d = decode(await m.driver.rpc(encode(MSG.Tread, 5, [1, 0n, 0xffffffff]), { replyCap: 8192 }));
    expect(d.type).toBe(MSG.Rread);
    expect((d.fields[0] as Uint8Array).length).toBe(8192 - 11);
    // a 1 MiB zero-copy buffer: count ≤ msize - 11
    d = decode(await m.driver.rpc(encode(MSG.Tread, 6, [1, 0n, 0xffffffff]), { readData: 1 << 20 }));
    expect((d.fields[0] as Uint8Array).length).toBe(65536 - 11);
    // reply space smaller than a header + 1: an empty read or an error, never an overflow
    const tiny = await m.driver.rpc(encode(MSG.Tread, 7, [1, 0n, 0xffffffff]), { replyCap: 11 });
    const dt = decode(tiny);
    expect(dt.type === MSG.Rread ? (dt.fields[0] as Uint8Array).length : -1).toBeLessThanOrEqual(0);
    // readdir of 4 GiB
    await c.walk(0, 2, ['dir']);
    await c.lopen(2, 0o200000);
    d = decode(await m.driver.rpc(encode(MSG.Treaddir, 8, [2, 0n, 0xffffffff]), { replyCap: 300 }));
    expect(d.type).toBe(MSG.Rreaddir);
    expect((d.fields[0] as Uint8Array).length).toBeLessThanOrEqual(300 - 11);
    // Twrite that declares 4 GiB but carries 4 bytes: EINVAL, nothing written
    const w = encode(MSG.Twrite, 9, [1, 0n, new TextEncoder().encode('abcd')]);
    new DataView(w.buffer).setUint32(19, 0xffffffff, true);
    d = decode(await m.driver.rpc(w, { replyCap: 4096 }));
    expect(d.type).toBe(P9_RLERROR);
    expect(memOf(m.device.ram)).toBe(mem0);
    expect(m.device.needsReset).toBe(false);
    expect(m.device.counters().inflight).toBe(0);
    // over the socket server: the reply buffer it allocates is min(11 + count, msize)
    const sock = path.join(tempDir('hostile'), 's.sock');
    const srv = await P9Server.start({ backend: mem, listen: { kind: 'unix', path: sock }, bufferSize: 16 << 20 });
    cleanups.push(() => srv.close());
    const s = await connectStream(sock);
    await s.client.version(1 << 20);
    await s.client.attach(0, 0xffffffff, 'root', '', 0);
    await s.client.walk(0, 1, ['big']);
    await s.client.lopen(1, 0);
    const rs = await Promise.all(Array.from({ length: 8 }, () => s.client.read(1, 0, 0xffffffff)));
    for (const r of rs) expect(r.length).toBe(s.client.msize - 11);
    log(`[hostile 4 GiB reads] ring: clamped to 8181 / 65525 bytes; socket (msize ${s.client.msize}): 8 parallel reads of ${rs[0].length} bytes; ` +
      `server buffers in use after: ${srv.buffersInUse}`);
    await s.close();
    for (let i = 0; i < 100 && srv.connections; i++) await tick();
    expect(srv.buffersInUse).toBe(0);
  }, 60000);
});

void fs;
