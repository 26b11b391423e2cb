/**
 * `npm run soak -- --minutes N [--backend memory|local|proxy|all] [--transport socket|ring] [--clients 8] [--seed S]`
 *
 * 8 concurrent clients doing mixed operations with checksummed data (harness/soak/soak.ts);
 * prints ops/s, the high-water marks and the start → end resource figures, and exits 1 if a
 * checksum, a descriptor count or a memory figure is off.
 */
import { runSoak, formatSoak, soakProblems, type SoakBackend } from './soak.js';

function usage(msg?: string): never {
  if (msg) process.stderr.write(`soak: ${msg}\n`);
  process.stderr.write('usage: soak [--minutes N | --seconds N] [--backend memory|local|proxy|all] [--transport socket|ring] [--clients N] [--seed S]\n');
  process.exit(2);
}
const args = process.argv.slice(2);
let ms = 60_000;
let backends: SoakBackend[] = ['memory'];
let transport: 'socket' | 'ring' = 'socket';
let clients = 8;
let seed = (Date.now() >>> 0);
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const val = (): string => { const v = args[++i]; if (v === undefined) usage(`${a} needs a value`); return v; };
  if (a === '--minutes') ms = Number(val()) * 60_000;
  else if (a === '--seconds') ms = Number(val()) * 1000;
  else if (a === '--backend') { const v = val(); if (!['memory', 'local', 'proxy', 'all'].includes(v)) usage(`bad --backend ${v}`); backends = v === 'all' ? ['memory', 'local', 'proxy'] : [v as SoakBackend]; }
  else if (a === '--transport') { const v = val(); if (v !== 'socket' && v !== 'ring') usage(`bad --transport ${v}`); transport = v; }
  else if (a === '--clients') clients = Number(val());
  else if (a === '--seed') seed = Number(val()) >>> 0;
  else if (a === '--help' || a === '-h') usage();
  else usage(`unknown flag '${a}'`);
}
if (!(ms > 0) || !(clients > 0)) usage('bad budget or client count');
let bad = 0;
for (const backend of backends) {
  console.log(`soak: backend ${backend}, transport ${transport}, ${clients} clients, ${(ms / 1000).toFixed(0)} s, seed ${seed}`);
  const r = await runSoak({ ms: ms / backends.length, backend, transport, clients, seed, log: (l) => console.log(l) });
  console.log(formatSoak(r));
  const p = soakProblems(r);
  if (p.length) { bad++; console.log(`  PROBLEMS: ${p.join('; ')}`); } else console.log('  all checksums match; descriptors, module memory, inflight and buffers back to the start');
}
process.exit(bad ? 1 : 0);
