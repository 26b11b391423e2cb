/** Command-line flag parsing shared by the `virtio9p` command and the repository's dev scripts. */

/** A bad flag or value: printed as one line, exit status 2. */
export class UsageError extends Error {}

/** Flags: `known` take no value, `valued` take one (`--x V` or `--x=V`); up to `positional`
 *  plain arguments are collected in order under the keys '0', '1', … */
export function parseFlags(args: string[], known: string[], valued: string[] = [], positional = 0): Map<string, string> {
  const flags = new Map<string, string>();
  let pos = 0;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-h' || a === '--help') { flags.set('help', ''); continue; }
    if (!a.startsWith('--')) {
      if (pos < positional) { flags.set(String(pos++), a); continue; }
      throw new UsageError(`unexpected argument '${a}'`);
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    if (valued.includes(name)) {
      const v = eq >= 0 ? a.slice(eq + 1) : args[++i];
      if (v === undefined || v === '') throw new UsageError(`flag --${name} needs a value`);
      flags.set(name, v);
    } else if (known.includes(name)) {
      if (eq >= 0) throw new UsageError(`flag --${name} takes no value`);
      flags.set(name, '');
    } else throw new UsageError(`unknown flag '${a.slice(0, eq < 0 ? undefined : eq)}'`);
  }
  return flags;
}

/** Run a command's main: its exit code, one line on stderr for an error (2 for usage errors). */
export function runMain(prog: string, main: () => Promise<number>): void {
  main().then(
    (code) => { process.exitCode = code; },
    (err) => {
      console.error(`${prog}: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = err instanceof UsageError ? 2 : 1;
    },
  );
}
