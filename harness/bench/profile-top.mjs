// Summarise a V8 .cpuprofile (node --cpu-prof): self time per function (file:line), top N,
// and the inclusive time of the functions named on the command line.
//   node harness/bench/profile-top.mjs PROFILE.cpuprofile [N] [--total=name,name] [--under=fn]
// --under=measureRuns counts only samples taken inside that function (the timed workload runs,
// not the set-up or the copy limit).
import fs from 'node:fs';
const [file, nArg] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const under = (process.argv.find((a) => a.startsWith('--under=')) ?? '--under=').slice(8);
const totals = (process.argv.find((a) => a.startsWith('--total=')) ?? '--total=').slice(8).split(',').filter(Boolean);
const p = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = new Map();
for (let i = 0; i < p.samples.length; i++) dt.set(p.samples[i], (dt.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
let all = 0;
const key = (n) => {
  const f = n.callFrame;
  const url = f.url.replace(/^.*\/(dist|src|harness|assembly|node_modules)\//, '$1/');
  return `${f.functionName || '(anonymous)'}  ${url}:${f.lineNumber + 1}`;
};
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const inside = (id) => { for (; id !== undefined; id = parent.get(id)) if (byId.get(id).callFrame.functionName === under) return true; return false; };
for (const n of p.nodes) {
  if (under && !inside(n.id)) continue;
  const t = dt.get(n.id) ?? 0;
  all += t;
  const k = key(n);
  self.set(k, (self.get(k) ?? 0) + t);
}
const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(nArg ?? 25));
console.log(`total ${(all / 1000).toFixed(0)} ms sampled`);
for (const [k, t] of top) console.log(`${(100 * t / all).toFixed(1).padStart(5)}%  ${(t / 1000).toFixed(0).padStart(6)} ms  ${k}`);
for (const name of totals) {
  let inc = 0;
  for (const n of p.nodes) {
    const t = dt.get(n.id) ?? 0;
    if (!t || (under && !inside(n.id))) continue;
    for (let id = n.id; id !== undefined; id = parent.get(id)) if (byId.get(id).callFrame.functionName === name) { inc += t; break; }
  }
  console.log(`inclusive ${name}: ${(100 * inc / all).toFixed(1)}%`);
}
