/**
 * Saving and restoring a running VM with our device in it: a Debian i386 Linux in v86 mounts
 * through our device (src/adapters/v86-pci.ts, MemoryBackend) and runs guest-init's workload;
 * midway the emulator is stopped and saved — v86's save_state (CPU, RAM, PCI config) plus our
 * device's snapshot (queues, fids, the backend's file system) — and thrown away. A new v86 and a
 * new device are restored from those bytes and the guest carries on: the remaining steps pass on
 * the restored state, the unmount succeeds. Needs harness/v86-guest/setup.sh (.ci/run runs it).
 */
import { describe, test, expect } from '@jest/globals';
import fs from 'node:fs';
import path from 'node:path';
import { loadV86, v86GuestConfig, buildCmdline, V86_GUEST_DIR } from '../../harness/v86-guest/boot.js';
import { V86Virtio9p } from '../../src/adapters/v86-pci.js';
import { Virtio9pDevice } from '../../src/device.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { WORKLOAD_STEPS, parseGuestConsole } from '../../harness/side-by-side/result.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

const LOGS = path.join(V86_GUEST_DIR, '../logs');
const CUT = 'tar-x';   // save the VM right after this step printed its result

async function newEmulator(V86: Any, wasmPath: string, console: { out: string; onLine?: (l: string) => void }): Promise<Any> {
  const emu = new V86(v86GuestConfig(V86_GUEST_DIR, wasmPath, buildCmdline('host9p')));
  let line = '';
  emu.add_listener('serial0-output-byte', (b: number) => {
    const ch = String.fromCharCode(b);
    console.out += ch;
    if (b !== 10) { line += ch; return; }
    console.onLine?.(line);
    line = '';
  });
  await new Promise<void>((resolve) => emu.add_listener('emulator-loaded', () => resolve()));
  return emu;
}

/** Resolves on the first console line matching `re` (or rejects when the guard expires). */
function waitLine(c: { onLine?: (l: string) => void }, re: RegExp, guardMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no console line matching ${re} within ${guardMs / 1000} s (hang guard)`)), guardMs);
    c.onLine = (l) => { if (re.test(l)) { clearTimeout(t); c.onLine = undefined; resolve(l); } };
  });
}

describe('v86 save/restore with our device inside', () => {
  test(`the guest is saved after "${CUT}", restored into a new v86 + device, and finishes the workload`, async () => {
    if (!fs.existsSync(path.join(V86_GUEST_DIR, 'vmlinuz'))) throw new Error(`no v86 guest in ${V86_GUEST_DIR}: run harness/v86-guest/setup.sh`);
    const { V86, wasmPath } = await loadV86(false);

    // ── first life: boot, mount, run until CUT, stop, save
    const c1: { out: string; onLine?: (l: string) => void } = { out: '' };
    const emu1 = await newEmulator(V86, wasmPath, c1);
    let vm: ArrayBuffer, dev: Uint8Array, before: Map<string, { result: string }>;
    const fs1 = new MemoryBackend();
    try {
      const p9 = await V86Virtio9p.attach(emu1, { backend: fs1 });
      const cut = waitLine(c1, new RegExp(`STEP ${CUT} `), 300000);
      emu1.run();
      await cut;
      await emu1.stop();
      expect(p9.device.inflight).toBe(0);
      vm = await emu1.save_state();
      dev = await p9.snapshot();
      before = parseGuestConsole(c1.out).steps;
    } finally {
      fs.mkdirSync(LOGS, { recursive: true });
      fs.writeFileSync(path.join(LOGS, 'snapshot-before-console.log'), c1.out);
      await emu1.destroy();
    }
    expect(c1.out).toMatch(/MOUNT OK/);
    expect([...before.keys()]).toEqual(WORKLOAD_STEPS.slice(0, WORKLOAD_STEPS.indexOf(CUT) + 1));
    for (const [, s] of before) expect(s.result).toBe('PASS');

    // ── second life: a new emulator and a new device (and file system) from the saved bytes
    const c2: { out: string; onLine?: (l: string) => void } = { out: '' };
    const emu2 = await newEmulator(V86, wasmPath, c2);
    try {
      const fs2 = MemoryBackend.restoreState(Virtio9pDevice.snapshotBackendState(dev)!);
      const p9 = await V86Virtio9p.restore(emu2, dev, { backend: fs2 });
      await emu2.restore_state(vm);
      const done = waitLine(c2, /^@@ [\d.]+ poweroff/, 300000);
      emu2.run();
      await done;
      expect(p9.device.counters().replies).toBeGreaterThan(0);
    } finally {
      fs.writeFileSync(path.join(LOGS, 'snapshot-after-console.log'), c2.out);
      await emu2.stop();
      await emu2.destroy();
    }
    const after = parseGuestConsole(c2.out).steps;
    expect([...after.keys()]).toEqual(WORKLOAD_STEPS.slice(WORKLOAD_STEPS.indexOf(CUT) + 1));
    const failed = [...after].filter(([, s]) => s.result !== 'PASS');
    if (failed.length) console.log(c2.out.split('\n').slice(-80).join('\n'));
    expect(failed).toEqual([]);
    expect(c2.out).toMatch(/UMOUNT OK/);
  }, 700000);
});
