/**
 * Boots the v86 guest with v86's own virtio-9p device (in-memory FS, tag host9p) and prints
 * guest-init's workload steps and the wall time. Console: .cache/v86-guest/logs/run-console.log.
 *
 *   sh harness/v86-guest/setup.sh
 *   npx esbuild harness/v86-guest/run.ts --bundle --platform=node --format=esm \
 *     --packages=external --outfile=.cache/v86-guest/run.mjs && node .cache/v86-guest/run.mjs
 *
 * Flags: --ours (our device in place of v86's, MemoryBackend, through src/adapters/v86-pci.ts),
 *        --console (stream the whole serial console to stderr; default: only the @@ lines),
 *        --cmdline "words" (extra/overriding kernel words, e.g. "ninep.msize=65536 quiet"),
 *        --memory MiB (256), --timeout s (600), --debug LEVEL (v86 debug build, log_level).
 */
import path from 'node:path';
import { bootV86Guest, V86_GUEST_DIR } from './boot.js';
import { V86Virtio9p } from '../../src/adapters/v86-pci.js';
import { MemoryBackend } from '../../src/backends/memory.js';

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(name);
const val = (name: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };

const ours = flag('--ours');
const log = path.join(V86_GUEST_DIR, `../logs/run-${ours ? 'ours' : 'own'}-console.log`);
let pending = '';
let adapter: V86Virtio9p | undefined;
const r = await bootV86Guest({
  ownDevice: !ours,
  tag: ours ? 'host9p' : undefined,
  beforeStart: ours ? async (emulator) => { adapter = await V86Virtio9p.attach(emulator, { backend: new MemoryBackend() }); } : undefined,
  cmdline: val('--cmdline'),
  memoryMB: val('--memory') ? Number(val('--memory')) : undefined,
  timeoutMs: val('--timeout') ? Number(val('--timeout')) * 1000 : undefined,
  debugLogLevel: val('--debug') !== undefined ? Number(val('--debug')) : undefined,
  log,
  onConsole: (s) => {
    if (flag('--console')) { process.stderr.write(s); return; }
    pending += s;
    let i;
    while ((i = pending.indexOf('\n')) >= 0) {
      const l = pending.slice(0, i); pending = pending.slice(i + 1);
      if (l.startsWith('@@ ') || l.startsWith('   | ') || /Kernel panic|insmod .* failed/.test(l)) process.stderr.write(l + '\n');
    }
  },
});

console.log(`\ncmdline: ${r.cmdline}`);
console.log(`end: ${r.end}; mounted: ${r.mounted}; kernel boot to /init: ${r.bootMs !== undefined ? (r.bootMs / 1000).toFixed(1) + ' s' : 'n/a'}; wall ${(r.wallMs / 1000).toFixed(1)} s`);
const pass = [...r.steps.values()].filter((s) => s.result === 'PASS').length;
console.log(`steps: ${pass} PASS / ${r.steps.size} run`);
const w = Math.max(4, ...[...r.steps.keys()].map((k) => k.length));
console.log(`${'step'.padEnd(w)}  result      guest s`);
for (const [name, s] of r.steps) console.log(`${name.padEnd(w)}  ${s.result.padEnd(10)}  ${s.seconds.toFixed(2).padStart(7)}`);
if (adapter) console.log(`our device: ${adapter.interrupts} interrupts, ${adapter.device.counters().replies} replies`);
console.log(`console: ${log}`);
process.exit(r.end === 'poweroff' && r.mounted ? 0 : 1);
