/**
 * The `virtio9p` command. Subcommands: demo (what `npm start` runs), bench. A bad flag or value
 * prints one line and exits 2.
 */
import { runDemo } from '../harness/demo.js';
import { runBench, formatResults } from '../harness/bench.js';

class UsageError extends Error {}

const HELP: Record<string, string> = {
  '': `usage: virtio9p <command> [flags]

commands:
  demo     run a short guest session against the in-memory backend through the virtqueue
  bench    run the benchmark workloads and print ops/s and MiB/s

flags:
  -h, --help   show help (also: virtio9p <command> --help)`,
  demo: `usage: virtio9p demo

Boots a device with the in-memory backend seeded with a small tree, drives it with the
guest-side virtio driver (attach, walk, readdir, read, write, create, rename, unlink) and
prints what the guest saw and the request rate.

flags:
  -h, --help   show this help`,
  bench: `usage: virtio9p bench [--json] [--quick]

Runs the fixed workloads through the real virtqueue path on the in-memory backend.

flags:
  --json       print the results as JSON
  --quick      a smaller run (a tenth of the work)
  -h, --help   show this help`,
};

function parse(args: string[], known: string[]): Set<string> {
  const flags = new Set<string>();
  for (const a of args) {
    if (a === '-h' || a === '--help') { flags.add('help'); continue; }
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument '${a}'`);
    const name = a.slice(2);
    if (name.includes('=')) throw new UsageError(`flag --${name.split('=')[0]} takes no value`);
    if (!known.includes(name)) throw new UsageError(`unknown flag '${a}'`);
    flags.add(name);
  }
  return flags;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    console.log(HELP['']);
    return cmd === undefined ? 2 : 0;
  }
  switch (cmd) {
    case 'demo': {
      const f = parse(rest, []);
      if (f.has('help')) { console.log(HELP.demo); return 0; }
      await runDemo();
      return 0;
    }
    case 'bench': {
      const f = parse(rest, ['json', 'quick']);
      if (f.has('help')) { console.log(HELP.bench); return 0; }
      const log = f.has('json') ? undefined : (s: string) => process.stderr.write(`  ${s}\n`);
      const results = await runBench({ quick: f.has('quick'), log });
      console.log(f.has('json') ? JSON.stringify(results, null, 2) : formatResults(results));
      return 0;
    }
    default:
      throw new UsageError(`unknown command '${cmd}' (try virtio9p --help)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    if (err instanceof UsageError) { console.error(`virtio9p: ${err.message}`); process.exitCode = 2; return; }
    console.error(`virtio9p: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
