/**
 * The core's per-request overhead: Tgetattr through the ring on a *null* backend that answers
 * at once with a constant stat (no file system), so what is left is guest ring writes + notify
 * + descriptor walk + 9P decode + fid lookup + glue + encode + used ring. Measured with N fids
 * open (10 → 100,000, each a clone walk of the root), the getattrs spread over all of them in
 * a scattered order, so the curve shows whether the fid table stays flat. The memory backend's
 * getattr is measured alongside for comparison.
 */
import fs from 'node:fs';
import type { Backend, Entry, Stat } from '../../src/backends/backend.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { makeRing } from './ours.js';
import { median, now, type Row } from './common.js';
import { lineChartSvg, ratioChartSvg } from './chart.js';
import type { BenchRing } from '../virtio/bench-ring.js';
import type { BenchReport } from '../bench.js';

const EOPNOTSUPP = 95;
const STAT: Stat = {
  ino: 2, mode: 0o100644, uid: 0, gid: 0, nlink: 1, rdev: 0, size: 4096, blksize: 4096, blocks: 8,
  atimeSec: 1, atimeNsec: 0, mtimeSec: 1, mtimeNsec: 0, ctimeSec: 1, ctimeNsec: 0,
};
const ROOT: Entry = { ...STAT, ino: 1, mode: 0o40755, node: 1 };

/** Answers attach/lookup/dup/getattr at once with constants; everything else EOPNOTSUPP. */
export function nullBackend(): Backend {
  const no = () => -EOPNOTSUPP;
  return {
    attach: () => ROOT, lookup: () => ({ ...STAT, node: 2 }), dup: () => ROOT, getattr: () => STAT,
    setattr: no, open: no, create: no, read: no, write: no, readdir: no, readlink: no, mkdir: no,
    symlink: no, mknod: no, link: no, renameat: no, rename: no, unlinkat: no, remove: no, fsync: no,
    statfs: no, getxattr: no, listxattr: no, setxattr: no, removexattr: no, close: () => 0, forget: () => {},
  };
}

export interface OverheadPoint { fids: number; nsPerGetattr: number; refusedAt?: number; errno?: string }
export interface OverheadReport {
  node: string;
  nullGetattrNs: number;
  memoryGetattrNs: number;
  /** the guest side alone: building the message + chain + reading the used ring, no notify */
  guestOnlyNs: number;
  curve: OverheadPoint[];
  memoryCurve: OverheadPoint[];
}

const enc = new TextEncoder();

async function session(backend: Backend): Promise<BenchRing> {
  const { g } = await makeRing({ backend: () => backend }, backend, 8 << 20);
  g.begin(100).u32(512 * 1024).str(enc.encode('9P2000.L')).simple();
  g.begin(104).u32(0).u32(0xffffffff).str(enc.encode('root')).str(new Uint8Array(0)).u32(0).simple();
  return g;
}

/** Open fids 1..n (clone walks of the root); returns how many were opened and the error. */
function openFids(g: BenchRing, from: number, n: number): { opened: number; err?: string } {
  for (let f = from; f <= n; f++) {
    try { g.begin(110).u32(0).u32(f).u16(0).simple(); }
    catch (e) { return { opened: f - 1, err: (e as Error).message }; }
  }
  return { opened: n };
}

function timeGetattrs(g: BenchRing, fids: number, count: number, runs: number): number {
  // a scattered order over all open fids: stride coprime with the fid count
  let stride = Math.max(1, Math.floor(fids * 0.618));
  const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
  while (gcd(stride, fids) !== 1) stride++;
  const once = () => {
    let f = 0;
    for (let i = 0; i < count; i++) {
      g.begin(24).u32(f + 1).u64(0x3fff).simple();
      f += stride; if (f >= fids) f -= fids;
    }
  };
  once();
  const r: number[] = [];
  for (let i = 0; i < runs; i++) { const t = now(); once(); r.push((now() - t) * 1e6 / count); }
  return median(r);
}

function guestOnly(g: BenchRing, count: number, runs: number): number {
  const once = () => { for (let i = 0; i < count; i++) { g.begin(24).u32(1).u64(0x3fff); g.end(); } };
  once();
  const r: number[] = [];
  for (let i = 0; i < runs; i++) { const t = now(); once(); r.push((now() - t) * 1e6 / count); }
  return median(r);
}

async function curve(backend: Backend, counts: number[], count: number, runs: number, log: (s: string) => void, label: string): Promise<OverheadPoint[]> {
  const g = await session(backend);
  const pts: OverheadPoint[] = [];
  let open = 0;
  for (const n of counts) {
    const r = openFids(g, open + 1, n);
    open = r.opened;
    if (r.opened < n) {
      log(`${label}: the core refused fid ${r.opened + 1} (${r.err}); the curve stops at ${r.opened} fids`);
      pts.push({ fids: r.opened, nsPerGetattr: timeGetattrs(g, r.opened, count, runs), refusedAt: r.opened + 1, errno: r.err });
      break;
    }
    const ns = timeGetattrs(g, n, count, runs);
    log(`${label}: ${n.toLocaleString('en-US')} fids open: ${ns.toFixed(0)} ns per getattr`);
    pts.push({ fids: n, nsPerGetattr: ns });
  }
  return pts;
}

export async function runOverhead(opts: { quick?: boolean; log?: (s: string) => void } = {}): Promise<OverheadReport> {
  const log = opts.log ?? (() => {});
  const count = opts.quick ? 50000 : 300000, runs = opts.quick ? 3 : 5;
  const counts = [10, 30, 100, 300, 1000, 3000, 4000, 10000, 30000, 100000];
  const nul = await curve(nullBackend(), counts, count, runs, log, 'null backend');
  const mem = new MemoryBackend();
  const memCurve = await curve(mem, counts, count, runs, log, 'memory backend');
  const g = await session(nullBackend());
  return {
    node: process.version,
    nullGetattrNs: nul[0].nsPerGetattr,
    memoryGetattrNs: memCurve[0].nsPerGetattr,
    guestOnlyNs: guestOnly(g, count, runs),
    curve: nul,
    memoryCurve: memCurve,
  };
}

export function formatOverhead(r: OverheadReport): string {
  const lines = [
    `# per-request overhead (Tgetattr through the ring, one in flight), node ${r.node}`,
    `null backend, 10 fids:   ${r.nullGetattrNs.toFixed(0)} ns per getattr (target < 1,000 ns)`,
    `memory backend, 10 fids: ${r.memoryGetattrNs.toFixed(0)} ns per getattr`,
    `guest side alone (message build, no kick): ${r.guestOnlyNs.toFixed(0)} ns`,
    '',
    'open fids   null ns/getattr   memory ns/getattr',
  ];
  for (let i = 0; i < Math.max(r.curve.length, r.memoryCurve.length); i++) {
    const a = r.curve[i], b = r.memoryCurve[i];
    lines.push(`${(a ?? b).fids.toLocaleString('en-US').padStart(9)}   ${a ? a.nsPerGetattr.toFixed(0).padStart(15) : ''}   ${b ? b.nsPerGetattr.toFixed(0).padStart(17) : ''}${(a ?? b).refusedAt ? `   (fid ${(a ?? b).refusedAt} refused: ${(a ?? b).errno})` : ''}`);
  }
  return lines.join('\n');
}

/** Write the open-fids curve as an SVG chart to `file`. */
export function writeOverheadChart(r: OverheadReport, file: string, log: (s: string) => void): void {
  const svg = lineChartSvg({
    title: 'Tgetattr cost vs open fids (through the ring, one in flight)',
    xLabel: 'open fids (log)', yLabel: 'µs per getattr',
    series: [
      { name: 'null backend (core + ring + glue)', points: r.curve.map((p) => [p.fids, p.nsPerGetattr / 1000]) },
      { name: 'memory backend', points: r.memoryCurve.map((p) => [p.fids, p.nsPerGetattr / 1000]) },
    ],
    note: `node ${r.node}; ${r.curve.at(-1)?.refusedAt ? `the core refused fid ${r.curve.at(-1)!.refusedAt} (at its fid limit)` : 'no fid refused up to ' + (r.curve.at(-1)?.fids ?? 0).toLocaleString('en-US')}`,
  });
  fs.writeFileSync(file, svg);
  log(`wrote ${file}`);
}

/** Write the us/v86 ratios as an SVG chart to `file`. */
export function writeResultsChart(rep: BenchReport, file: string, log: (s: string) => void, title?: string): void {
  const rows: Row[] = rep.rows;
  const svg = ratioChartSvg(rows, title ?? `virtio9p vs v86 ${rep.info.v86 ?? ''} (${rep.info.backend} backend, node ${rep.info.node}, one run)`);
  fs.writeFileSync(file, svg);
  log(`wrote ${file}`);
}
