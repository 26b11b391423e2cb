/**
 * The v86 runners of the side-by-side comparison: the same i386 Linux guest (harness/v86-guest)
 * mounting with trans=virtio either through our device in place of v86's own
 * (src/adapters/v86-pci.ts, on a memory, local or proxy backend), through v86's own virtio-9p
 * device handing requests to our server (src/adapters/v86-handle9p.ts), or through v86's own
 * device with its in-memory file system.
 */
import type { Backend } from '../../src/backends/backend.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { makeBackend } from '../../src/backends/make.js';
import { V86Virtio9p } from '../../src/adapters/v86-pci.js';
import { V86Handle9p } from '../../src/adapters/v86-handle9p.js';
import { bootV86Guest } from '../v86-guest/boot.js';
import { STATUS } from '../../src/wasm/abi.js';
import type { GuestResult } from './result.js';

/** ours-*: our device in place of v86's; handle9p: v86's own device handing each request to our
 *  server (the light adapter, MemoryBackend); own: v86's own device and file system */
export const PACKED = 1n << 34n;

export type V86Variant = 'ours-memory' | 'ours-local' | 'ours-proxy' | 'handle9p' | 'own';

export interface V86RunOptions {
  variant: V86Variant;
  /** the export directory (ours-local, ours-proxy) */
  exportDir?: string;
  msize?: number;
  mountOpts?: string;
  log?: string;
  timeoutMs?: number;
}

export const v86DeviceName = (v: V86Variant): string => `v86-${v}`;

/** `served`: replies our core sent (undefined for v86's own device); `features`: what the guest's
 *  driver accepted from our device (the full adapter only), sampled at the first interrupt after
 *  DRIVER_OK — the guest's power-off resets the device, so reading it at the end would see 0. */
export async function runV86(o: V86RunOptions): Promise<GuestResult & { served?: number; features?: bigint }> {
  let backend: Backend | undefined;
  let adapter: V86Virtio9p | undefined;
  let light: V86Handle9p | undefined;
  let features: bigint | undefined;
  if (o.variant === 'ours-memory') backend = new MemoryBackend();
  else if (o.variant === 'handle9p') light = await V86Handle9p.create({ backend: new MemoryBackend() });
  else if (o.variant !== 'own') {
    if (!o.exportDir) throw new Error(`${o.variant} needs an export directory`);
    backend = await makeBackend(o.variant === 'ours-local' ? 'local' : 'proxy', o.exportDir);
  }
  const words: string[] = [];
  if (o.msize) words.push(`ninep.msize=${o.msize}`);
  if (o.mountOpts) words.push(`ninep.opts=${o.mountOpts}`);
  try {
    const r = await bootV86Guest({
      ownDevice: o.variant === 'own' || o.variant === 'handle9p',
      v86Options: light ? { filesystem: { handle9p: light.handle9p } } : undefined,
      tag: 'host9p',
      cmdline: words.join(' '),
      log: o.log,
      timeoutMs: o.timeoutMs ?? 300000,
      beforeStart: backend ? async (emulator) => {
        const a = adapter = await V86Virtio9p.attach(emulator, {
          backend: backend!,
          // the local run keeps Linux on the split ring (RING_PACKED withheld); the others let it
          // take the packed ring, as Linux 6.1 does when offered
          device: o.variant === 'ours-local' ? { features: ~PACKED } : undefined,
        });
        a.device.onInterrupt(() => {
          if (features === undefined && (a.device.status & STATUS.DRIVER_OK) !== 0) features = a.device.driverFeatures;
        });
      } : undefined,
    });
    return { device: v86DeviceName(o.variant), steps: r.steps, mounted: r.mounted, wallMs: r.wallMs, console: r.console, served: (adapter ?? light)?.device.counters().replies, features };
  } finally {
    const d = backend as unknown as { destroy?: () => unknown } | undefined;
    await d?.destroy?.();
  }
}
