/**
 * How a caller plugs its own PCI device into the v86 guest (bootV86Guest with ownDevice:
 * false and beforeStart): registers a dummy device with one 4 KiB I/O BAR, boots, and reports
 * what SeaBIOS and Linux made of it (BAR address, IRQ line, port accesses). The guest has no
 * driver for it and no 9p device, so the mount fails and guest-init powers off.
 *
 *   npx esbuild harness/v86-guest/probe-pci.ts --bundle --platform=node --format=esm \
 *     --packages=external --outfile=.cache/v86-guest/probe-pci.mjs && node .cache/v86-guest/probe-pci.mjs [--pci-id 0x20]
 */
import path from 'node:path';
import { bootV86Guest, V86_GUEST_DIR } from './boot.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

// bus 0 device 6 function 0 (v86's own virtio-9p slot, free when ownDevice is false) unless
// --pci-id N (bdf = device << 3 | function)
const argi = process.argv.indexOf('--pci-id');
const PCI_ID = argi > 0 ? Number(process.argv[argi + 1]) : 0x30;
const INITIAL_PORT = 0xe000;  // 4 KiB-aligned, no v86 device there; SeaBIOS moves the BAR anyway
const SIZE = 4096;

let cpu: Any;
const dev: Any = {
  name: 'probe-4k-io',
  pci_id: PCI_ID,
  // config header: vendor 1b36 device 00ff (no Linux driver), command 0, class ff0000,
  // BAR0 = INITIAL_PORT | 1 (I/O), subsystem, interrupt pin 1 (INTA#) at 0x3d
  pci_space: [
    0x36, 0x1b, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00,
    (INITIAL_PORT & 0xfc) | 1, INITIAL_PORT >> 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x36, 0x1b, 0xff, 0x00,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01, 0x00, 0x00,
  ],
  pci_bars: [{ size: SIZE }],
};
const accesses: string[] = [];
const usedBefore: string[] = [];

const r = await bootV86Guest({
  ownDevice: false,
  cmdline: 'ninep.test=none',
  timeoutMs: 300000,
  log: path.join(V86_GUEST_DIR, '../logs/probe-pci-console.log'),
  beforeStart: (emulator) => {
    cpu = emulator.v86.cpu;
    const pci = cpu.devices.pci, io = cpu.io;
    for (let id = 0; id < 256; id++) if (pci.devices[id]) usedBefore.push(`${hex(id)} dev ${id >> 3} fn ${id & 7}: ${pci.devices[id].name}`);
    // 1. handlers on the initial ports (register_device snapshots io.ports[BAR range])
    for (let off = 0; off < SIZE; off++) {
      const o = off;
      io.register_read(INITIAL_PORT + o, dev,
        () => { accesses.push(`r8 +${hex(o)}`); return o & 0xff; },
        () => { accesses.push(`r16 +${hex(o)}`); return o & 0xffff; },
        () => { accesses.push(`r32 +${hex(o)}`); return o; });
      io.register_write(INITIAL_PORT + o, dev,
        (v: number) => { accesses.push(`w8 +${hex(o)}=${hex(v)}`); },
        (v: number) => { accesses.push(`w16 +${hex(o)}=${hex(v)}`); },
        (v: number) => { accesses.push(`w32 +${hex(o)}=${hex(v)}`); });
    }
    // 2. the PCI function itself
    pci.register_device(dev);
  },
});

function hex(n: number): string { return '0x' + (n >>> 0).toString(16); }

const space: Int32Array = cpu.devices.pci.device_spaces[PCI_ID];
const bar0 = space[4] >>> 0, port = bar0 & 0xfffc;
const irqLine = space[15] & 0xff, pin = (space[15] >> 8) & 0xff;
const pirq = cpu.devices.pci.isa_bridge_space8[0x60 + ((pin - 1 + ((PCI_ID >> 3) - 1)) & 3)];
console.log('PCI functions before start:\n  ' + usedBefore.join('\n  '));
console.log(`probe device after boot: BAR0 ${hex(bar0)} (I/O at ${hex(port)}-${hex(port + SIZE - 1)}), command ${hex(space[1] & 0xffff)}, ` +
  `interrupt line ${irqLine} pin ${pin}; v86 raise_irq(${hex(PCI_ID)}) drives IRQ ${pirq}`);
console.log(`io.ports[${hex(port)}].device is ours: ${cpu.io.ports[port].device === dev}; initial port still ours: ${cpu.io.ports[INITIAL_PORT].device === dev}`);
console.log(`port accesses by the guest (${accesses.length}): ${accesses.slice(0, 20).join(', ')}`);
for (const l of r.console.split('\n')) if (/1b36:00ff|PCI: |PIRQ|IRQ 1[01]/i.test(l)) console.log('  console: ' + l);
console.log(`end: ${r.end}; mounted: ${r.mounted}; wall ${(r.wallMs / 1000).toFixed(1)} s`);
