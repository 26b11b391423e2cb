/**
 * The `virtio9p` command. Subcommands: demo (what `npm start` runs), bench. A bad flag or value
 * prints one line and exits 2.
 */
import { runDemo } from '../harness/demo.js';
import { runBench, formatResults } from '../harness/bench.js';
import { runSocketBench, formatSocketRows } from '../harness/bench-socket.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { P9Server, parseListen } from './serve.js';
import { makeBackend, BACKENDS, type BackendKind } from './backends/make.js';

class UsageError extends Error {}

const HELP: Record<string, string> = {
  '': `usage: virtio9p <command> [flags]

commands:
  demo     run a short guest session against the in-memory backend through the virtqueue
  serve    serve a directory as 9P2000.L over a Unix socket, TCP or an inherited descriptor
  bench    run the benchmark workloads and print ops/s and MiB/s

flags:
  -h, --help   show help (also: virtio9p <command> --help)`,
  demo: `usage: virtio9p demo

Boots a device with the in-memory backend seeded with a small tree, drives it with the
guest-side virtio driver (attach, walk, readdir, read, write, create, rename, unlink) and
prints what the guest saw and the request rate.

flags:
  -h, --help   show this help`,
  serve: `usage: virtio9p serve --export DIR [flags]

Serves DIR with the wasm 9P2000.L server over a stream socket; each connection is its own
session. Stops cleanly on SIGINT/SIGTERM (a Unix socket file is removed).

flags:
  --export DIR         the directory to serve (required)
  --backend KIND       local (default): pass through to DIR; memory: an in-memory copy of DIR
  --listen SPEC        unix:PATH | tcp:HOST:PORT | fd:N (default: unix:<tmpdir>/virtio9p-<pid>.sock)
  --msize N            the largest msize offered (default 1052672; 4096..4194304)
  --readonly           refuse every change (EROFS)
  -h, --help           show this help`,
  bench: `usage: virtio9p bench [--json] [--quick]
       virtio9p bench --socket [--backend KIND] [--seconds N] [--guest] [--json]

Runs the fixed workloads through the real virtqueue path on the in-memory backend; with
--socket, races \`virtio9p serve\` against diod with diodload (needs Debian's diod).

flags:
  --json         print the results as JSON
  --quick        a smaller run (a tenth of the work)
  --socket       race the socket server against diod instead
  --backend KIND with --socket: memory (default) or local
  --seconds N    with --socket: diodload run length (default 5)
  --guest        with --socket: also time the Linux guest workload on both (needs QEMU and .cache/linux-guest)
  -h, --help     show this help`,
};

/** Flags: `known` take no value, `valued` take one (`--x V` or `--x=V`). */
function parse(args: string[], known: string[], valued: string[] = []): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '-h' || a === '--help') { flags.set('help', ''); continue; }
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument '${a}'`);
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

async function serve(f: Map<string, string>): Promise<number> {
  const exp = f.get('export');
  if (!exp) throw new UsageError('serve needs --export DIR');
  let st: fs.Stats;
  try { st = fs.statSync(exp); } catch { throw new UsageError(`export directory '${exp}' does not exist`); }
  if (!st.isDirectory()) throw new UsageError(`export '${exp}' is not a directory`);
  const kind = (f.get('backend') ?? 'local') as BackendKind;
  if (!BACKENDS.includes(kind)) throw new UsageError(`bad --backend '${kind}' (want ${BACKENDS.join(', ')})`);
  let msize: number | undefined;
  if (f.has('msize')) {
    msize = Number(f.get('msize'));
    if (!Number.isInteger(msize) || msize < 4096 || msize > 4 << 20) throw new UsageError(`bad --msize '${f.get('msize')}' (want 4096..4194304)`);
  }
  let listen;
  try { listen = parseListen(f.get('listen') ?? `unix:${path.join(os.tmpdir(), `virtio9p-${process.pid}.sock`)}`); }
  catch (e) { throw new UsageError((e as Error).message); }
  const backend = await makeBackend(kind, path.resolve(exp), { readonly: f.has('readonly') });
  const server = await P9Server.start({ backend, listen, msize, log: (l) => console.error(`virtio9p: ${l}`) });
  console.log(`virtio9p: serving ${path.resolve(exp)} (${kind}${f.has('readonly') ? ', read-only' : ''}) on ${server.address}`);
  await new Promise<void>((resolve) => {
    const stop = () => { server.close().then(resolve, resolve); };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    console.log(HELP['']);
    return cmd === undefined ? 2 : 0;
  }
  switch (cmd) {
    case 'serve': {
      const f = parse(rest, ['readonly'], ['export', 'backend', 'listen', 'msize']);
      if (f.has('help')) { console.log(HELP.serve); return 0; }
      return serve(f);
    }
    case 'demo': {
      const f = parse(rest, []);
      if (f.has('help')) { console.log(HELP.demo); return 0; }
      await runDemo();
      return 0;
    }
    case 'bench': {
      const f = parse(rest, ['json', 'quick', 'socket', 'guest'], ['backend', 'seconds']);
      if (f.has('help')) { console.log(HELP.bench); return 0; }
      if (f.has('socket')) {
        const seconds = Number(f.get('seconds') ?? 5);
        if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600) throw new UsageError(`bad --seconds '${f.get('seconds')}' (want 1..600)`);
        const kind = f.get('backend') ?? 'memory';
        if (!BACKENDS.includes(kind as BackendKind)) throw new UsageError(`bad --backend '${kind}' (want ${BACKENDS.join(', ')})`);
        const log = f.has('json') ? undefined : (s: string) => process.stderr.write(`  ${s}\n`);
        const rows = await runSocketBench({ backend: kind, seconds, guest: f.has('guest'), log });
        console.log(f.has('json') ? JSON.stringify(rows, null, 2) : formatSocketRows(rows));
        return 0;
      }
      for (const k of ['backend', 'seconds', 'guest']) if (f.has(k)) throw new UsageError(`--${k} needs --socket`);
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
