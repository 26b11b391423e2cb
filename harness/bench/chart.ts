/**
 * Tiny SVG charts (browser-safe, no dependencies): a grouped bar chart on a log axis (ours vs
 * v86 vs the copy limit per workload, normalised to v86 = 1) and a line chart (cost vs open fids).
 */
import type { Row } from './common.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const COLORS = ['#2b6cb0', '#c05621', '#718096', '#2f855a'];

function logTicks(lo: number, hi: number): number[] {
  const t: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) t.push(10 ** e);
  return t;
}
const fmtTick = (v: number) => (v >= 1000 ? `${v / 1000}k` : v >= 1 ? String(v) : String(v));

/** Bars per workload: v86 = 1, ours = ours/v86, copy limit = limit/v86 (where it applies). */
export function ratioChartSvg(rows: Row[], title: string): string {
  const groups = rows.filter((r) => r.ours && r.v86);
  const W = 900, H = 380, L = 60, R = 70, Tp = 40, B = 100;
  const vals: number[] = [];
  const bars = groups.map((r) => {
    const b: { name: string; v: number }[] = [{ name: 'v86', v: 1 }, { name: 'ours', v: r.usOverV86! }];
    if (r.limit && r.v86!.mibPerSec) b.push({ name: 'copy limit', v: r.limit.limitMiBps / r.v86!.mibPerSec });
    for (const x of b) vals.push(x.v);
    return { r, b };
  });
  const lo = Math.min(0.5, ...vals) , hi = Math.max(10, ...vals) * 1.5;
  const ticks = logTicks(lo, hi);
  const y0 = Math.log10(ticks[0]), y1 = Math.log10(ticks[ticks.length - 1]);
  const y = (v: number) => Tp + (H - Tp - B) * (1 - (Math.log10(v) - y0) / (y1 - y0));
  const gw = (W - L - R) / Math.max(1, groups.length), bw = Math.min(22, gw / 4);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`);
  for (const t of ticks) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/>`);
    out.push(`<text x="${L - 6}" y="${y(t) + 4}" text-anchor="end">${fmtTick(t)}×</text>`);
  }
  out.push(`<text transform="translate(14 ${(Tp + H - B) / 2}) rotate(-90)" text-anchor="middle">throughput relative to v86 (log)</text>`);
  bars.forEach(({ r, b }, i) => {
    const x0 = L + i * gw + (gw - b.length * bw) / 2;
    b.forEach((bar, j) => {
      const yy = y(bar.v), base = y(ticks[0]);
      const color = COLORS[j === 0 ? 2 : j === 1 ? 0 : 1];
      out.push(`<rect x="${x0 + j * bw}" y="${Math.min(yy, base)}" width="${bw - 2}" height="${Math.abs(base - yy)}" fill="${color}"><title>${esc(`${r.name}: ${bar.name} ${bar.v.toFixed(2)}×`)}</title></rect>`);
      if (j === 1) out.push(`<text x="${x0 + j * bw + bw / 2}" y="${yy - 4}" text-anchor="middle" font-size="10">${bar.v >= 10 ? bar.v.toFixed(0) : bar.v.toFixed(1)}×</text>`);
    });
    const label = r.name.replace(/^\((\w+)\)\s*/, '($1) ');
    const short = label.length > 26 ? label.slice(0, 25) + '…' : label;
    out.push(`<text transform="translate(${L + i * gw + gw / 2} ${H - B + 12}) rotate(30)" font-size="10">${esc(short)}</text>`);
  });
  const legend = [['v86 = 1', COLORS[2]], ['ours', COLORS[0]], ['copy limit', COLORS[1]]];
  legend.forEach(([n, c], i) => {
    out.push(`<rect x="${L + 10 + i * 110}" y="${Tp - 12}" width="10" height="10" fill="${c}"/><text x="${L + 24 + i * 110}" y="${Tp - 3}">${n}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

export interface Series { name: string; points: [number, number][] }

/** A line chart with a log x axis and a linear y axis from 0. */
export function lineChartSvg(opts: { title: string; xLabel: string; yLabel: string; series: Series[]; note?: string }): string {
  const W = 720, H = 360, L = 70, R = 20, Tp = 40, B = 60;
  const xs = opts.series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = opts.series.flatMap((s) => s.points.map((p) => p[1]));
  const xt = logTicks(Math.min(...xs), Math.max(...xs));
  const x0 = Math.log10(xt[0]), x1 = Math.log10(xt[xt.length - 1]);
  const ymax = Math.max(...ys) * 1.2;
  const step = 10 ** Math.floor(Math.log10(ymax / 4));
  const ystep = [1, 2, 5, 10].map((m) => m * step).find((s) => ymax / s <= 6)!;
  const x = (v: number) => L + (W - L - R) * (Math.log10(v) - x0) / (x1 - x0);
  const y = (v: number) => Tp + (H - Tp - B) * (1 - v / ymax);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(opts.title)}</text>`);
  for (let v = 0; v <= ymax; v += ystep) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${+v.toFixed(3)}</text>`);
  }
  for (const t of xt) out.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${Tp}" y2="${H - B}" stroke="#eee"/><text x="${x(t)}" y="${H - B + 16}" text-anchor="middle">${t.toLocaleString('en-US')}</text>`);
  out.push(`<text x="${(L + W - R) / 2}" y="${H - B + 34}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${(Tp + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`);
  opts.series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${s.points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ')}"/>`);
    for (const p of s.points) out.push(`<circle cx="${x(p[0])}" cy="${y(p[1])}" r="3" fill="${c}"><title>${esc(`${s.name}: ${p[0]} fids, ${p[1].toFixed(3)}`)}</title></circle>`);
    out.push(`<rect x="${L + 10}" y="${Tp + 6 + i * 16}" width="10" height="10" fill="${c}"/><text x="${L + 24}" y="${Tp + 15 + i * 16}">${esc(s.name)}</text>`);
  });
  if (opts.note) out.push(`<text x="${W - R}" y="${H - 8}" text-anchor="end" font-size="10" fill="#555">${esc(opts.note)}</text>`);
  out.push('</svg>');
  return out.join('\n');
}
