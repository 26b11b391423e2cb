/**
 * Notification suppression and used-ring publication (reference §2.3–2.5, §2.8):
 * EVENT_IDX interrupts only when used_event is crossed, avail_event = the device's last
 * consumed index after draining, NO_INTERRUPT without EVENT_IDX, one used.idx publication and
 * one interrupt per notify batch, used.id = chain head, used.len = the reply's size field,
 * and back-pressure (a nearly full 1024-entry queue; more chains than request slots with an
 * asynchronous backend).
 */
import { describe, test, expect } from '@jest/globals';
import { Rig, type HandChain, replyProblem, defaultBackend, IRQ_USED, IRQ_CONFIG } from '../../harness/ring/rig.js';
import { encode, decode, MSG } from '../../src/testing/p9/codec.js';
import type { Backend } from '../../src/backends/backend.js';

const getattr = (tag: number, fid = 0): Uint8Array => encode(MSG.Tgetattr, tag, [fid, 0x7ffn]);

/** A rig with a session (fid 0 = root) and interrupts no longer forwarded to the driver, so
 *  nothing but the device writes the rings while a test watches. */
async function quietRig(opts: Parameters<typeof Rig.create>[0] = {}): Promise<Rig> {
  const rig = await Rig.create({ debug: true, ...opts });
  await rig.serviceCheck();
  rig.sync();
  rig.mux.forward = false;
  return rig;
}

function postGetattrs(rig: Rig, n: number, tag0: number, opts: { indirect?: boolean; cap?: number } = {}): HandChain[] {
  const cs: HandChain[] = [];
  for (let i = 0; i < n; i++) {
    const c = rig.buildChain([{ data: getattr((tag0 + i) & 0xffff) }, { write: opts.cap ?? 256 }], { indirect: opts.indirect });
    rig.post(c.head);
    cs.push(c);
  }
  return cs;
}

/** Every chain answered once, in any order, with a well-formed Rgetattr for its tag. */
function expectAnswered(rig: Rig, from: number, cs: HandChain[], tag0: number, cap = 256): void {
  const used = rig.usedSince(from);
  expect(used.length).toBe(cs.length);
  const byHead = new Map(used.map((u) => [u.id, u]));
  expect(byHead.size).toBe(cs.length);
  cs.forEach((c, i) => {
    const u = byHead.get(c.head);
    expect(u).toBeDefined();
    const reply = rig.gatherWritable(c, u!.len);
    const tag = (tag0 + i) & 0xffff;
    expect(replyProblem(getattr(tag), u!.len, cap, reply)).toBeNull();
    const d = decode(reply);
    expect([d.type, d.tag]).toEqual([MSG.Rgetattr, tag]);
  });
}

describe('EVENT_IDX', () => {
  test('used_event far ahead → no interrupt; used_event crossed → exactly one interrupt', async () => {
    const rig = await quietRig({ eventIdx: true });
    expect(rig.driver.eventIdx).toBe(true);
    const u0 = rig.usedIdx();
    const irq0 = rig.mux.irq[IRQ_USED];

    rig.usedEvent = u0 + 100;
    postGetattrs(rig, 1, 1);
    rig.kick();
    expect(rig.usedIdx()).toBe((u0 + 1) & 0xffff);
    expect(rig.mux.irq[IRQ_USED]).toBe(irq0);

    // one batch of 2: old = u0+1, new = u0+3; used_event = u0+2 lies in [old, new)
    rig.usedEvent = u0 + 2;
    postGetattrs(rig, 2, 2);
    rig.kick();
    expect(rig.usedIdx()).toBe((u0 + 3) & 0xffff);
    expect(rig.mux.irq[IRQ_USED]).toBe(irq0 + 1);

    // used_event = the index of the next used element → interrupt after it
    rig.usedEvent = u0 + 3;
    postGetattrs(rig, 1, 4);
    rig.kick();
    expect(rig.mux.irq[IRQ_USED]).toBe(irq0 + 2);

    // stale used_event (already passed) → no interrupt
    postGetattrs(rig, 1, 5);
    rig.kick();
    expect(rig.usedIdx()).toBe((u0 + 5) & 0xffff);
    expect(rig.mux.irq[IRQ_USED]).toBe(irq0 + 2);

    // used_event one past the batch → no interrupt; the next batch crosses it
    rig.usedEvent = u0 + 7;
    postGetattrs(rig, 2, 6);
    rig.kick();
    expect(rig.mux.irq[IRQ_USED]).toBe(irq0 + 2);
    postGetattrs(rig, 1, 8);
    rig.kick();
    expect(rig.mux.irq[IRQ_USED]).toBe(irq0 + 3);
    expect(rig.mux.irq[IRQ_CONFIG]).toBe(0);
    expect(rig.device.needsReset).toBe(false);
    // with EVENT_IDX the owner of used.flags (the device) keeps it 0 (§2.5)
    expect(rig.driver.usedFlags).toBe(0);
  });

  test('a chain posted while the device is inside notify (from a backend call) is served in the same notify', async () => {
    let hook: (() => void) | null = null;
    const inner = defaultBackend();
    const backend = new Proxy(inner, {
      get(t, p, r) {
        const v = Reflect.get(t, p, r);
        if (typeof v !== 'function') return v;
        if (p !== 'getattr') return v.bind(t);
        return (...args: unknown[]) => {
          const h = hook;
          hook = null;
          h?.(); // the "other vCPU" posts a buffer while the device works
          return v.apply(t, args);
        };
      },
    }) as Backend;
    const rig = await quietRig({ backend, eventIdx: true });
    const u0 = rig.usedIdx();
    const late = rig.buildChain([{ data: getattr(601) }, { write: 256 }]);
    hook = () => rig.post(late.head);
    const first = postGetattrs(rig, 1, 600);
    const kicks0 = rig.driver.kicks;
    rig.kick();
    expect(rig.driver.kicks).toBe(kicks0 + 1);
    expect(rig.usedIdx()).toBe((u0 + 2) & 0xffff);
    expectAnswered(rig, u0, [...first, late], 600);
    expect(rig.availEvent).toBe(rig.driver.availIdxShadow);
  });

  test('the device writes avail_event = its last consumed index after draining', async () => {
    const rig = await quietRig({ eventIdx: true, queueSize: 64 });
    const N = rig.N;
    const availEventAt = rig.driver.usedAddr + 4 + 8 * N;
    expect(availEventAt).toBe(rig.driver.availEventAddr);
    const read = (): number => rig.dv.getUint16(availEventAt, true);
    expect(read()).toBe(rig.driver.availIdxShadow);
    for (const n of [1, 5, 17, 3]) {
      postGetattrs(rig, n, 40);
      // before the kick the device has not seen them: avail_event still lags
      expect(read()).toBe((rig.driver.availIdxShadow - n) & 0xffff);
      rig.kick();
      expect(read()).toBe(rig.driver.availIdxShadow);
      expect(rig.usedIdx()).toBe(rig.driver.availIdxShadow); // one request per chain, all consumed
      rig.sync();
      rig.mux.forward = false;
    }
  });

  test('the avail flags NO_INTERRUPT bit is ignored with EVENT_IDX', async () => {
    const rig = await quietRig({ eventIdx: true });
    const irq0 = rig.mux.irq[IRQ_USED];
    rig.driver.availFlags = 1;
    rig.usedEvent = rig.usedIdx();
    postGetattrs(rig, 1, 1);
    rig.kick();
    expect(rig.mux.irq[IRQ_USED]).toBe(irq0 + 1);
  });

  test('a kick with nothing new neither publishes nor interrupts', async () => {
    const rig = await quietRig({ eventIdx: true });
    const u0 = rig.usedIdx();
    rig.usedEvent = u0;
    const irq0 = [...rig.mux.irq];
    const before = rig.ram.slice();
    rig.kick();
    rig.kick();
    expect(rig.mux.irq).toEqual(irq0);
    expect(rig.usedIdx()).toBe(u0);
    expect(Buffer.from(rig.ram).equals(Buffer.from(before))).toBe(true);
  });
});

describe('16-bit index wrap-around', () => {
  test('used/avail indices wrap past 65535: need_event across the wrap, elements and avail_event stay right', async () => {
    // release build: 65k requests
    const rig = await Rig.create({ queueSize: 1024, ramSize: 8 << 20, eventIdx: true });
    await rig.serviceCheck();
    rig.sync();
    rig.mux.forward = false;
    const cs = Array.from({ length: 1024 }, (_, i) => rig.buildChain([{ data: getattr(i) }, { write: 256 }], { indirect: true }));
    const postN = (n: number): HandChain[] => {
      const batch = cs.slice(0, n);
      for (const c of batch) rig.post(c.head);
      return batch;
    };
    rig.usedEvent = 0xffff; // never crossed while we fast-forward
    while (rig.usedIdx() + 1024 < 65500) {
      postN(1024); // avail index exactly N ahead every time
      rig.kick();
    }
    expect(rig.device.needsReset).toBe(false);
    // bring used idx to 65515
    const toGo = 65515 - rig.usedIdx();
    expect(toGo).toBeGreaterThan(0);
    expect(toGo).toBeLessThanOrEqual(1024);
    postN(toGo);
    rig.kick();
    expect(rig.usedIdx()).toBe(65515);
    const irq0 = rig.mux.irq[IRQ_USED];

    // a batch of 30 crossing the wrap (old 65515, new 9) with used_event 65530 inside it → interrupt
    rig.usedEvent = 65530;
    const batch = postN(30);
    rig.kick();
    expect(rig.usedIdx()).toBe(9);
    expect(rig.mux.irq[IRQ_USED]).toBe(irq0 + 1);
    expectAnswered(rig, 65515, batch, 0);
    expect(rig.availEvent).toBe(rig.driver.availIdxShadow);
    expect(rig.driver.availIdxShadow).toBe(rig.usedIdx());

    // stale used_event just behind the batch after the wrap → none
    rig.usedEvent = 5;
    postN(1);
    rig.kick();
    expect(rig.usedIdx()).toBe(10);
    expect(rig.mux.irq[IRQ_USED]).toBe(irq0 + 1);
    // used_event = the next index → one
    rig.usedEvent = 10;
    postN(1);
    rig.kick();
    expect(rig.mux.irq[IRQ_USED]).toBe(irq0 + 2);
    // used_event 65535 is (u16) far ahead of 11 → none for a batch of 5
    rig.usedEvent = 65535;
    postN(5);
    rig.kick();
    expect(rig.usedIdx()).toBe(16);
    expect(rig.mux.irq[IRQ_USED]).toBe(irq0 + 2);
    expect(rig.device.needsReset).toBe(false);
  });
});

describe('without EVENT_IDX', () => {
  test('avail flags NO_INTERRUPT suppresses interrupts; clearing it restores them', async () => {
    const rig = await quietRig({ eventIdx: false });
    expect(rig.driver.eventIdx).toBe(false);
    const u0 = rig.usedIdx();
    const irq0 = rig.mux.irq[IRQ_USED];
    rig.driver.availFlags = 1;
    const a = postGetattrs(rig, 3, 1);
    rig.kick();
    expect(rig.usedIdx()).toBe((u0 + 3) & 0xffff);
    expect(rig.mux.irq[IRQ_USED]).toBe(irq0);
    expectAnswered(rig, u0, a, 1);
    rig.driver.availFlags = 0;
    postGetattrs(rig, 2, 4);
    rig.kick();
    expect(rig.usedIdx()).toBe((u0 + 5) & 0xffff);
    expect(rig.mux.irq[IRQ_USED]).toBe(irq0 + 1);
  });

  test('the device does not write avail_event (the field does not exist without EVENT_IDX)', async () => {
    const rig = await quietRig({ eventIdx: false });
    const at = rig.driver.availEventAddr;
    rig.dv.setUint16(at, 0xbeef, true);
    postGetattrs(rig, 2, 1);
    rig.kick();
    expect(rig.dv.getUint16(at, true)).toBe(0xbeef);
  });
});

describe('used ring publication', () => {
  for (const eventIdx of [false, true]) {
    test(`5 requests, one kick → one interrupt, used.idx advanced by 5 (EVENT_IDX ${eventIdx})`, async () => {
      const rig = await quietRig({ eventIdx });
      const u0 = rig.usedIdx();
      if (eventIdx) rig.usedEvent = u0;
      const irq0 = rig.mux.irq[IRQ_USED];
      const cs = postGetattrs(rig, 5, 300);
      // watch used.idx while the device runs: it must jump once, straight to u0 + 5
      const seen: number[] = [];
      rig.device.onInterrupt(() => seen.push(rig.usedIdx()));
      rig.kick();
      expect(rig.mux.irq[IRQ_USED]).toBe(irq0 + 1);
      expect(seen).toEqual([(u0 + 5) & 0xffff]);
      expect(rig.usedIdx()).toBe((u0 + 5) & 0xffff);
      expectAnswered(rig, u0, cs, 300);
    });
  }

  test('used.id is the chain head (direct, indirect, heads not in order) and used.len the reply size', async () => {
    const rig = await quietRig({ queueSize: 32 });
    // scramble the free list so heads are not 0, 1, 2...
    const taken = Array.from({ length: 13 }, () => rig.takeDesc());
    for (const d of taken.filter((_, i) => i % 3 === 0)) rig.driver.giveDesc(d);
    const u0 = rig.usedIdx();
    const cs: HandChain[] = [];
    for (let i = 0; i < 6; i++) {
      const c = rig.buildChain(
        i % 2 ? [{ data: getattr(500 + i) }, { write: 100 }, { write: 156 }] : [{ data: getattr(500 + i).subarray(0, 9) }, { data: getattr(500 + i).subarray(9) }, { write: 256 }],
        { indirect: i % 3 === 0 },
      );
      rig.post(c.head);
      cs.push(c);
    }
    rig.kick();
    const used = rig.usedSince(u0);
    expect(used.map((u) => u.id)).toEqual(cs.map((c) => c.head));
    expect(new Set(used.map((u) => u.id)).size).toBe(6);
    expectAnswered(rig, u0, cs, 500);
  });

  test('used.len equals the size field for every reply kind (Rversion, Rattach, Rwalk, Rlopen, Rread split 11+data, Rreaddir, Rstatfs, Rlerror, Rclunk)', async () => {
    const rig = await quietRig();
    const check = (t: Uint8Array, cap: number, layout?: { inLens: number[] }): Uint8Array => {
      const r = rig.rawRpc(t, cap, layout);
      expect(r.len).toBeGreaterThanOrEqual(7);
      expect(replyProblem(t, r.len, layout ? layout.inLens.reduce((a, b) => a + b, 0) : cap, r.bytes)).toBeNull();
      return r.bytes;
    };
    check(encode(MSG.Tversion, 0xffff, [65536, '9P2000.L']), 4096);
    check(encode(MSG.Tattach, 1, [0, 0xffffffff, 'root', '', 0]), 4096);
    check(encode(MSG.Twalk, 2, [0, 1, ['dir', 'a']]), 4096);
    check(encode(MSG.Tlopen, 3, [1, 0]), 4096);
    const rd = check(encode(MSG.Tread, 4, [1, 10n, 3000]), 0, { inLens: [11, 3000] });
    expect(decode(rd).type).toBe(MSG.Rread);
    expect(rd.length).toBe(11 + 3000);
    check(encode(MSG.Twalk, 5, [0, 2, ['dir']]), 4096);
    check(encode(MSG.Tlopen, 6, [2, 0o200000]), 4096);
    expect(decode(check(encode(MSG.Treaddir, 7, [2, 0n, 4000]), 4096)).type).toBe(MSG.Rreaddir);
    expect(decode(check(encode(MSG.Tstatfs, 8, [0]), 4096)).type).toBe(MSG.Rstatfs);
    expect(decode(check(encode(MSG.Tgetattr, 9, [999, 0x7ffn]), 4096)).type).toBe(MSG.Rlerror);
    expect(decode(check(encode(MSG.Tclunk, 10, [2]), 4096)).type).toBe(MSG.Rclunk);
    // an Rgetattr that does not fit → Rlerror(EMSGSIZE), still size == used.len
    expect(decode(check(getattr(11), 100)).fields).toEqual([90]);
  });
});

describe('back-pressure', () => {
  test('queueSize 1024: 1000 Tgetattr chains posted before one kick are all answered correctly', async () => {
    const rig = await quietRig({ queueSize: 1024, ramSize: 8 << 20 });
    await Promise.resolve();
    const u0 = rig.usedIdx();
    rig.usedEvent = u0;
    const irq0 = rig.mux.irq[IRQ_USED];
    const cs = postGetattrs(rig, 1000, 1000, { indirect: true });
    rig.kick();
    expect(rig.device.needsReset).toBe(false);
    expect(rig.usedIdx()).toBe((u0 + 1000) & 0xffff);
    expect(rig.mux.irq[IRQ_USED]).toBe(irq0 + 1);
    expectAnswered(rig, u0, cs, 1000);
    expect(rig.availEvent).toBe(rig.driver.availIdxShadow);
  });

  test('queueSize 1024: 512 direct two-descriptor chains (the whole table) before one kick', async () => {
    const rig = await quietRig({ queueSize: 1024, ramSize: 8 << 20 });
    const u0 = rig.usedIdx();
    const cs = postGetattrs(rig, 512, 7, { indirect: false });
    rig.kick();
    expect(rig.usedIdx()).toBe((u0 + 512) & 0xffff);
    expectAnswered(rig, u0, cs, 7);
  });

  test('an asynchronous backend: 1000 chains > 256 request slots stall, then all complete as slots free', async () => {
    const inner = defaultBackend();
    let pending = 0;
    let maxPending = 0;
    // getattr answers in a later macrotask, so requests stay in their slots
    const backend = new Proxy(inner, {
      get(t, p, r) {
        const v = Reflect.get(t, p, r);
        if (typeof v !== 'function') return v;
        if (p !== 'getattr') return v.bind(t);
        return (...args: unknown[]) => {
          pending++;
          maxPending = Math.max(maxPending, pending);
          return new Promise((res) => setImmediate(() => { pending--; res(v.apply(t, args)); }));
        };
      },
    }) as Backend;
    const rig = await Rig.create({ debug: true, backend, queueSize: 1024, ramSize: 8 << 20 });
    await rig.serviceCheck();
    rig.sync();
    rig.mux.forward = false;
    const u0 = rig.usedIdx();
    const c0 = rig.device.counters();
    const cs = postGetattrs(rig, 1000, 2000, { indirect: true });
    rig.kick();
    // the first kick fills every slot and stalls
    expect(rig.device.counters().stalls).toBeGreaterThan(c0.stalls);
    expect(rig.device.counters().inflight).toBeLessThanOrEqual(256);
    const deadline = Date.now() + 20000;
    while (rig.usedIdx() !== ((u0 + 1000) & 0xffff) && Date.now() < deadline) {
      await new Promise((r) => setImmediate(r));
    }
    expect(rig.usedIdx()).toBe((u0 + 1000) & 0xffff);
    expect(maxPending).toBeLessThanOrEqual(256);
    expect(maxPending).toBeGreaterThan(1);
    expect(rig.device.counters().inflightHighWater).toBeLessThanOrEqual(256);
    expect(rig.device.needsReset).toBe(false);
    expectAnswered(rig, u0, cs, 2000);
    expect(rig.availEvent).toBe(rig.driver.availIdxShadow);
    rig.sync();
    rig.mux.forward = true;
    await rig.serviceCheck();
  });
});
