/**
 * What one run of the Linux guest's 9P workload (harness/linux-guest/guest-init) produced, and
 * the parser of its console. Every runner of the side-by-side comparison — QEMU's own
 * virtio-9p-pci (qemu-virtio.ts), our device in v86, v86's own device — returns a GuestResult
 * built with parseGuestConsole from a console in guest-init's format:
 *
 *   @@ <uptime> MOUNT OK                      (or "@@ <uptime> MOUNT FAILED rc=N")
 *   @@ <uptime> STEP <name> PASS (<secs>s)    (or "... STEP <name> FAIL rc=N (<secs>s)")
 *   @@ <uptime> WORKLOAD DONE
 *   @@ <uptime> UMOUNT OK
 */

export interface StepResult {
  /** "PASS" or "FAIL rc=N", as guest-init printed it */
  result: string;
  /** the step's duration measured by the guest (its /proc/uptime); NaN if not printed */
  seconds: number;
}

export interface GuestResult {
  /** the device's name: a column of the report, and the key of its justifications */
  device: string;
  /** workload steps in the order the guest ran them */
  steps: Map<string, StepResult>;
  /** the guest printed "MOUNT OK" */
  mounted: boolean;
  /** host wall-clock time of the whole run (boot to power-off) */
  wallMs: number;
  /** the raw console (serial output, plus the VMM's own stderr if the runner has it) */
  console: string;
}

export interface ParsedConsole {
  steps: Map<string, StepResult>;
  mounted: boolean;
  /** "WORKLOAD DONE" was printed (every step ran) */
  done: boolean;
  /** "UMOUNT OK" was printed */
  unmounted: boolean;
}

/**
 * The workload's steps in guest-init's order (a test checks this list against
 * harness/linux-guest/guest-init, so it cannot drift).
 */
export const WORKLOAD_STEPS: readonly string[] = [
  'mkdir', 'write+cat', 'ls-l', 'cp-a-bin', 'symlinks-kept', 'cp-a-mods', 'md5-mods', 'tar-c',
  'tar-x', 'tar-verify', 'ln-s', 'ln-hard', 'mkfifo', 'mknod-chr', 'chmod', 'chown', 'touch-mtime',
  'truncate', 'mv-file', 'mv-dir', 'append', 'dd-write-8M', 'dd-read-8M', 'parallel-4x', 'find',
  'df', 'rm-r', 'rm-rest', 'gone',
];

/** The pseudo-step used by the report and by differences() for the mount itself. */
export const MOUNT_STEP = 'mount';

const STEP_LINE = /^@@ [\d.]+ STEP (\S+) (PASS|FAIL[^(]*?)\s*(?:\(([-+\d.e]+)s\))?\s*$/;
const MARK = /^@@ [\d.]+ (MOUNT OK|WORKLOAD DONE|UMOUNT OK)\s*$/;

/** Parse a guest console (serial output; CRs and interleaved VMM messages are tolerated). */
export function parseGuestConsole(console: string): ParsedConsole {
  const steps = new Map<string, StepResult>();
  const seen = new Set<string>();
  for (const raw of console.split('\n')) {
    const line = raw.replace(/\r/g, '');
    const s = STEP_LINE.exec(line);
    if (s) {
      steps.set(s[1], { result: s[2].trim(), seconds: s[3] === undefined ? NaN : Number(s[3]) });
      continue;
    }
    const m = MARK.exec(line);
    if (m) seen.add(m[1]);
  }
  return { steps, mounted: seen.has('MOUNT OK'), done: seen.has('WORKLOAD DONE'), unmounted: seen.has('UMOUNT OK') };
}

/** PASS, FAIL, or MISSING (the step never reported) — the unit differences() compares. */
export function stepStatus(r: GuestResult, step: string): 'PASS' | 'FAIL' | 'MISSING' {
  if (step === MOUNT_STEP) return r.mounted ? 'PASS' : 'FAIL';
  const s = r.steps.get(step);
  if (!s) return 'MISSING';
  return s.result === 'PASS' ? 'PASS' : 'FAIL';
}
