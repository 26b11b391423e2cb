/**
 * Boots the linux-guest kit's i386 Linux + busybox initramfs (harness/v86-guest/setup.sh:
 * .cache/v86-guest/out/{vmlinuz,initramfs.cpio.gz,bios.bin,vgabios.bin}) inside the v86
 * emulator (npm `v86`), headless in this Node process, and runs guest-init's 9P workload over
 * trans=virtio. The console is v86's first UART (ttyS0); the result is parsed from guest-init's
 * `@@ <uptime> STEP <name> PASS|FAIL (..s)` lines, as tests/e2e/linux-guest.test.ts does.
 *
 * `ownDevice: true` gives v86's own virtio-9p device (option `filesystem: {}`, an empty
 * in-memory FS, mount tag "host9p"). `ownDevice: false` leaves it out, so a caller can put its
 * own virtio-9p PCI device in: `beforeStart(emulator)` runs after v86 has built its devices
 * (`emulator.v86.cpu.devices.pci`, `.io`) and before the CPU executes its first instruction
 * (SeaBIOS enumerates PCI when it runs, so a device registered there is seen by the BIOS and
 * by Linux). Pass the device's mount tag as `tag` (default "ninep" for ownDevice false).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { parseGuestConsole, type StepResult } from '../side-by-side/result.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

export interface V86GuestOptions {
  /** extra kernel command line words; a `key=value` word replaces the default with that key */
  cmdline?: string;
  /** guest RAM in MiB (default 256; v86 puts the initrd at 64 MiB, so more than ~80 MiB) */
  memoryMB?: number;
  /** true: v86's own virtio-9p device with its in-memory FS; false: no 9p device from v86 */
  ownDevice: boolean;
  /** virtio mount tag handed to guest-init (ninep.tag=); default host9p / ninep */
  tag?: string;
  /** called with the V86 instance after its devices exist and before the CPU starts */
  beforeStart?: (emulator: Any) => void | Promise<void>;
  /** hang guard in ms (default 600000): the emulator is stopped and the result returned */
  timeoutMs?: number;
  /** write the serial console to this file at the end */
  log?: string;
  /** streamed console output (e.g. process.stdout.write) */
  onConsole?: (text: string) => void;
  /** directory with vmlinuz, initramfs.cpio.gz, bios.bin, vgabios.bin (default .cache/v86-guest/out) */
  dir?: string;
  /** v86's debug build (libv86-debug.mjs + v86-debug.wasm), with this log_level (e.g. -1) */
  debugLogLevel?: number;
  /** more V86 options, merged last (e.g. { acpi: true }) */
  v86Options?: Record<string, unknown>;
}

export interface V86GuestResult {
  steps: Map<string, StepResult>;
  console: string;
  wallMs: number;
  /** guest-init printed "MOUNT OK" */
  mounted: boolean;
  /** why the run ended: the guest's poweroff line, a kernel panic, or the hang guard */
  end: 'poweroff' | 'panic' | 'timeout';
  /** ms from the CPU start to guest-init's first line (the kernel boot), if it got there */
  bootMs?: number;
  cmdline: string;
}

const root = new URL('../../', import.meta.url).pathname;
export const V86_GUEST_DIR = path.join(root, '.cache/v86-guest/out');

/** Kernel command line: base words, then `extra` words replacing same-key base words. */
export function buildCmdline(tag: string, extra = ''): string {
  const base = ['console=ttyS0', 'panic=-1', 'ninep.trans=virtio', 'ninep.test=workload', `ninep.tag=${tag}`];
  const add = extra.split(/\s+/).filter(Boolean);
  const key = (w: string) => (w.includes('=') ? w.slice(0, w.indexOf('=')) : w);
  const keys = new Set(add.map(key));
  return [...base.filter((w) => !keys.has(key(w))), ...add].join(' ');
}

/** The V86 constructor options for the guest kit in `dir`: BIOS, kernel, initrd, `cmdline`,
 *  headless, not started (the caller registers devices, or restores a state, then runs it). */
export function v86GuestConfig(dir: string, wasmPath: string, cmdline: string, memoryMB = 256): Record<string, unknown> {
  return {
    wasm_path: wasmPath,
    memory_size: memoryMB * 1024 * 1024,
    vga_memory_size: 2 * 1024 * 1024,
    bios: buf(path.join(dir, 'bios.bin')),
    vga_bios: buf(path.join(dir, 'vgabios.bin')),
    bzimage: buf(path.join(dir, 'vmlinuz')),
    initrd: buf(path.join(dir, 'initramfs.cpio.gz')),
    cmdline,
    autostart: false,
    disable_keyboard: true, disable_mouse: true, disable_speaker: true,
  };
}

export async function loadV86(debug: boolean): Promise<{ V86: Any; wasmPath: string }> {
  const req = createRequire(import.meta.url);
  const pkgdir = path.dirname(req.resolve('v86/package.json'));
  const lib = path.join(pkgdir, 'build', debug ? 'libv86-debug.mjs' : 'libv86.mjs');
  const { V86 } = await import(pathToFileURL(lib).href);
  return { V86, wasmPath: path.join(pkgdir, 'build', debug ? 'v86-debug.wasm' : 'v86.wasm') };
}

const buf = (file: string) => {
  const b = fs.readFileSync(file);
  return { buffer: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) };
};

export async function bootV86Guest(opts: V86GuestOptions): Promise<V86GuestResult> {
  const dir = opts.dir ?? V86_GUEST_DIR;
  for (const f of ['vmlinuz', 'initramfs.cpio.gz', 'bios.bin', 'vgabios.bin']) {
    if (!fs.existsSync(path.join(dir, f))) throw new Error(`no ${f} in ${dir}: run harness/v86-guest/setup.sh`);
  }
  const tag = opts.tag ?? (opts.ownDevice ? 'host9p' : 'ninep');
  const cmdline = buildCmdline(tag, opts.cmdline);
  const debug = opts.debugLogLevel !== undefined;
  const { V86, wasmPath } = await loadV86(debug);
  const t0 = performance.now();

  const emulator: Any = new V86({
    ...v86GuestConfig(dir, wasmPath, cmdline, opts.memoryMB),
    ...(opts.ownDevice ? { filesystem: {} } : {}),
    ...(debug ? { log_level: opts.debugLogLevel } : {}),
    ...opts.v86Options,
  });

  let out = '';
  let startedAt = 0;
  let bootMs: number | undefined;
  let finish: (end: V86GuestResult['end']) => void = () => {};
  const ended = new Promise<V86GuestResult['end']>((resolve) => { finish = resolve; });
  let line = '';
  const dec = new TextDecoder('utf-8');
  emulator.add_listener('serial0-output-byte', (byte: number) => {
    const ch = dec.decode(new Uint8Array([byte]), { stream: true });
    out += ch;
    opts.onConsole?.(ch);
    if (byte !== 10) { line += ch; return; }
    if (bootMs === undefined && line.startsWith('@@ ') && line.includes('init start')) bootMs = performance.now() - startedAt;
    if (/^@@ [\d.]+ poweroff/.test(line)) finish('poweroff');
    // panic=-1 reboots at once; give the panic text a moment to reach the console
    else if (line.includes('Kernel panic - not syncing')) setTimeout(() => finish('panic'), 500);
    line = '';
  });

  let guard: NodeJS.Timeout | undefined;
  let end: V86GuestResult['end'] = 'timeout';
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('v86 did not load in 60 s')), 60000);
      emulator.add_listener('emulator-loaded', () => { clearTimeout(t); resolve(); });
    });
    if (opts.beforeStart) await opts.beforeStart(emulator);
    guard = setTimeout(() => finish('timeout'), opts.timeoutMs ?? 600000);
    startedAt = performance.now();
    await emulator.run();
    end = await ended;
  } finally {
    if (guard) clearTimeout(guard);
    try { await emulator.stop(); } catch { /* already stopped */ }
    try { await emulator.destroy(); } catch { /* best effort */ }
  }
  const wallMs = performance.now() - t0;
  if (end === 'timeout') out += '\n@@ TIMEOUT (emulator stopped)\n';
  if (opts.log) { fs.mkdirSync(path.dirname(opts.log), { recursive: true }); fs.writeFileSync(opts.log, out); }
  const parsed = parseGuestConsole(out);
  return { steps: parsed.steps, console: out, wallMs, mounted: parsed.mounted, end, bootMs, cmdline };
}
