/**
 * The side-by-side report: one row per workload step, one column per device (the first run is
 * the reference — QEMU's own virtio-9p-pci), and a last column naming every device whose
 * pass/fail differs from the reference and whether docs/side-by-side.md justifies it.
 *
 * Justifications live in a Markdown table in docs/side-by-side.md:
 *
 *   | device | step | why |
 *   |---|---|---|
 *   | qemu | mkfifo | QEMU 7.2 (Debian) ... |
 *
 * keyed by (device, step). A row for the reference device documents a known failure of the
 * reference (it then justifies every device that passes where the reference fails); a row for
 * another device justifies that device's difference; device `*` justifies any device's
 * difference at that step. Backticks around cells are ignored; `\|` escapes a pipe.
 */
import fs from 'node:fs';
import { MOUNT_STEP, WORKLOAD_STEPS, stepStatus, type GuestResult } from './result.js';

/** The key of a justification in the Map renderReport takes. */
export function justificationKey(device: string, step: string): string {
  return `${device}\u0000${step}`;
}

/** Steps of all runs: guest-init's order first, then any others in order of appearance. */
export function stepUnion(runs: GuestResult[]): string[] {
  const names = new Set<string>();
  for (const r of runs) for (const s of r.steps.keys()) names.add(s);
  const known = WORKLOAD_STEPS.filter((s) => names.has(s));
  return [...known, ...[...names].filter((s) => !WORKLOAD_STEPS.includes(s))];
}

/**
 * Steps whose pass/fail differs between the reference and another run ("mount" first if the
 * mount status differs). A step missing from one run (never reported) differs from one that
 * ran, and a FAIL with rc=1 equals a FAIL with rc=2: only pass/fail/missing is compared.
 */
export function differences(reference: GuestResult, other: GuestResult): string[] {
  const out: string[] = [];
  if (reference.mounted !== other.mounted) out.push(MOUNT_STEP);
  for (const step of stepUnion([reference, other])) {
    if (stepStatus(reference, step) !== stepStatus(other, step)) out.push(step);
  }
  return out;
}

/** The justification for `other` differing from `reference` at `step`, if the docs give one. */
export function justificationFor(justifications: Map<string, string>, reference: GuestResult, other: GuestResult, step: string): string | undefined {
  return justifications.get(justificationKey(other.device, step))
    ?? justifications.get(justificationKey('*', step))
    // a documented failure of the reference explains any device that passes there
    ?? (stepStatus(reference, step) === 'FAIL' && stepStatus(other, step) === 'PASS'
      ? justifications.get(justificationKey(reference.device, step)) : undefined);
}

/** Differences of `other` from `reference` that the docs do not justify. */
export function unjustified(reference: GuestResult, other: GuestResult, justifications: Map<string, string>): string[] {
  return differences(reference, other).filter((s) => justificationFor(justifications, reference, other, s) === undefined);
}

/** Failures (and the mount) of the reference itself that the docs do not list as known. */
export function undocumentedReferenceFailures(reference: GuestResult, justifications: Map<string, string>): string[] {
  const steps = [MOUNT_STEP, ...stepUnion([reference])];
  return steps.filter((s) => stepStatus(reference, s) === 'FAIL' && !justifications.has(justificationKey(reference.device, s)));
}

const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function cell(r: GuestResult, step: string, known: boolean): string {
  if (step === MOUNT_STEP) return r.mounted ? 'OK' : `**FAILED**${known ? ' (known)' : ''}`;
  const s = r.steps.get(step);
  if (!s) return '—';
  const secs = Number.isFinite(s.seconds) ? ` ${s.seconds.toFixed(2)}s` : '';
  if (s.result === 'PASS') return `PASS${secs}`;
  return `**${esc(s.result)}**${known ? ' (known)' : ''}${secs}`;
}

/**
 * A Markdown report: the step table (reference first), then the wall times, then the
 * justifications the table relies on and the differences nothing justifies.
 */
export function renderReport(runs: GuestResult[], justifications: Map<string, string>): string {
  if (runs.length === 0) return '_no runs_\n';
  const [ref] = runs;
  const others = runs.slice(1);
  const steps = [MOUNT_STEP, ...stepUnion(runs)];
  const used = new Map<string, string>();   // footnote text → number
  const notJustified: string[] = [];
  const lines: string[] = [];
  lines.push(`| step | ${runs.map((r) => esc(r.device)).join(' | ')} | differs from ${esc(ref.device)} |`);
  lines.push(`|---|${runs.map(() => '---|').join('')}---|`);
  for (const step of steps) {
    const cells = runs.map((r) => cell(r, step, stepStatus(r, step) === 'FAIL' && justifications.has(justificationKey(r.device, step))));
    const diffs: string[] = [];
    for (const o of others) {
      if (stepStatus(ref, step) === stepStatus(o, step)) continue;
      const why = justificationFor(justifications, ref, o, step);
      if (why === undefined) {
        diffs.push(`${esc(o.device)} **(not justified)**`);
        notJustified.push(`${o.device}: ${step} (${stepStatus(ref, step)} on ${ref.device}, ${stepStatus(o, step)} on ${o.device})`);
      } else {
        if (!used.has(why)) used.set(why, String(used.size + 1));
        diffs.push(`${esc(o.device)} (justified [${used.get(why)}])`);
      }
    }
    lines.push(`| ${esc(step)} | ${cells.join(' | ')} | ${diffs.join(', ')} |`);
  }
  lines.push('');
  lines.push(`Wall time (boot to power-off, host clock): ${runs.map((r) => `${r.device} ${(r.wallMs / 1000).toFixed(1)} s`).join(', ')}.`);
  lines.push('Step times are measured inside the guest (its /proc/uptime, 10 ms resolution).');
  // the reference's own known failures, so the table's "(known)" marks are explained
  const knownRef = steps.filter((s) => stepStatus(ref, s) === 'FAIL' && justifications.has(justificationKey(ref.device, s)));
  for (const s of knownRef) {
    const why = justifications.get(justificationKey(ref.device, s))!;
    if (!used.has(why)) used.set(why, String(used.size + 1));
  }
  if (used.size) {
    lines.push('');
    lines.push('Justifications (docs/side-by-side.md):');
    lines.push('');
    for (const [why, n] of used) lines.push(`${n}. ${why.replace(/\n/g, ' ')}`);
  }
  const undocumented = undocumentedReferenceFailures(ref, justifications);
  if (notJustified.length || undocumented.length) {
    lines.push('');
    lines.push('**Not justified** (fix them, or justify them in docs/side-by-side.md):');
    lines.push('');
    for (const m of notJustified) lines.push(`- ${m}`);
    for (const s of undocumented) lines.push(`- ${ref.device}: ${s} fails and is not a documented failure of the reference`);
  }
  return lines.join('\n') + '\n';
}

/** Split a Markdown table row into its cells (`\|` is an escaped pipe, not a separator). */
function cells(line: string): string[] {
  const body = line.trim().replace(/^\|/, '').replace(/(?<!\\)\|$/, '');
  return body.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
}

const unquote = (s: string) => s.replace(/^`(.*)`$/, '$1').trim();

/**
 * Read the justifications of a Markdown file: every row of every table whose header starts
 * `| device | step | why |` (any case). Keys are justificationKey(device, step). A row without
 * a device, step or reason, or a second row for the same (device, step), is an error.
 */
export function loadJustifications(markdownPath: string): Map<string, string> {
  return parseJustifications(fs.readFileSync(markdownPath, 'utf8'), markdownPath);
}

export function parseJustifications(markdown: string, source = 'markdown'): Map<string, string> {
  const out = new Map<string, string>();
  let inTable = false;
  markdown.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line.startsWith('|')) { inTable = false; return; }
    const c = cells(line);
    if (!inTable) {
      inTable = c.length >= 3 && c[0].toLowerCase() === 'device' && c[1].toLowerCase() === 'step' && c[2].toLowerCase() === 'why';
      return;
    }
    if (c.every((x) => /^:?-+:?$/.test(x))) return;   // the |---| row
    const [device, step, ...why] = c;
    const text = why.join(' | ').trim();
    if (!unquote(device) || !unquote(step) || !text) throw new Error(`${source}:${i + 1}: a justification needs a device, a step and a reason: ${line}`);
    const key = justificationKey(unquote(device), unquote(step));
    if (out.has(key)) throw new Error(`${source}:${i + 1}: a second justification for ${unquote(device)} ${unquote(step)}`);
    out.set(key, text);
  });
  return out;
}

/** The (device, step) pairs of a justification map, for checks. */
export function justifiedPairs(justifications: Map<string, string>): { device: string; step: string }[] {
  return [...justifications.keys()].map((k) => { const [device, step] = k.split('\u0000'); return { device, step }; });
}
