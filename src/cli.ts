/**
 * The `virtio9p` command. Subcommands: demo (what `npm start` runs), bench. A bad flag or value
 * prints one line and exits 2.
 */
import { runDemoOn } from '../harness/demo-node.js';
import { runBench, formatResults, formatHeader, jsonRows, BENCH_BACKENDS } from '../harness/bench.js';
import { KEYS, type WorkloadKey } from '../harness/bench/common.js';
import { runOverhead, formatOverhead, writeOverheadChart, writeResultsChart } from '../harness/bench/overhead.js';
import { runBrowserBench } from '../harness/browser/run.js';
import { runSocketBench, formatSocketRows } from '../harness/bench-socket.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { P9Server, parseListen } from './serve.js';
import { MAX_MAX_FIDS } from './device.js';
import { makeBackend, BACKENDS, type BackendKind } from './backends/make.js';
import { runHelper, HELPER_USAGE } from './helper/main.js';

class UsageError extends Error {}

const HELP: Record<string, string> = {
  helper: HELPER_USAGE,
  '': `usage: virtio9p <command> [flags]

commands:
  demo     run a short guest session against the in-memory backend through the virtqueue
  serve    serve a directory as 9P2000.L over a Unix socket, TCP or an inherited descriptor
  bench    run the benchmark workloads and print ops/s and MiB/s
  helper   the 9p proxy helper (QEMU virtfs-proxy-helper protocol and flags)

flags:
  -h, --help   show help (also: virtio9p <command> --help)`,
  demo: `usage: virtio9p demo [--backend proxy|local|memory]

Boots a device on a small embedded tree, drives it with the guest-side virtio driver through
the real virtqueue (attach, walk, readdir, read, write, create, rename, unlink) and prints
what the guest saw and the request rate. The default is the seed's architecture: the tree is
written to a temporary export, our helper (virtio9p helper) is started on it, and the device's
proxy backend asks the helper to open files and receives the descriptors (SCM_RIGHTS). local
serves the temporary export directly; memory keeps the tree in memory.

flags:
  --backend KIND   proxy (default), local or memory
  -h, --help       show this help`,
  serve: `usage: virtio9p serve --export DIR [flags]

Serves DIR with the wasm 9P2000.L server over a stream socket; each connection is its own
session. Stops cleanly on SIGINT/SIGTERM (a Unix socket file is removed).

flags:
  --export DIR         the directory to serve (required)
  --backend KIND       local (default): pass through to DIR; memory: an in-memory copy of DIR;
                       proxy: through a privileged helper speaking QEMU's proxy protocol
  --helper PATH        proxy: the helper to launch on DIR (default: ours, native/virtio9p-helper;
                       QEMU's is /usr/lib/qemu/virtfs-proxy-helper)
  --helper-socket PATH proxy: use a helper already listening on PATH instead of launching one
  --listen SPEC        unix:PATH | tcp:HOST:PORT | fd:N (default: unix:<tmpdir>/virtio9p-<pid>.sock)
  --msize N            the largest msize offered (default 1052672; 4096..4194304)
  --max-fids N         fids one connection may hold (default 1048576; 1..16777216); past it the
                       request that would add one gets EMFILE (a cache=loose mount keeps a fid
                       per cached dentry)
  --readonly           refuse every change (EROFS)
  -h, --help           show this help`,
  bench: `usage: virtio9p bench [--json] [--quick] [--backend KIND] [--runs N] [--only a,b,..] [--no-v86] [--copy-mode]
       virtio9p bench --overhead [--json] [--quick]
       virtio9p bench --browser [--json] [--quick] [--only a,b,..] [--no-v86]
       virtio9p bench --socket [--backend KIND] [--seconds N] [--guest] [--json]

Runs the issue-5 workloads (a)-(g) through the real virtqueue path, in the same run against
v86's own virtio-9p device and server (npm v86) and the memory-copy limit, and prints ops/s,
MiB/s, p50/p99 latency and the ratios us/v86 and us/limit; with --overhead, the core's
per-request cost on a null backend and its curve against open fids; with --browser, the same
suite in headless Chromium (/usr/bin/chromium, via playwright-core) in a Web Worker; with
--socket, races \`virtio9p serve\` against diod with diodload (needs Debian's diod).

flags:
  --json         print the results as JSON
  --quick        a smaller run (about a tenth of the work)
  --backend KIND memory (default) or local; with --socket: memory or local
  --runs N       measured runs per workload (default 3; the median is reported)
  --only LIST    workloads to run: a,b,c,d,d2,e,f,f8k,g (d2: overwrite; f8k: 8 KiB readdir)
  --no-v86       skip the v86 side
  --copy-mode    our device in copy mode (guest RAM in a plain ArrayBuffer, copied in and out)
  --overhead     null-backend getattr cost and the open-fids curve (writes docs/bench-fids.svg with --chart)
  --chart        also write the SVG charts into docs/
  --browser      run the suite in headless Chromium instead (memory backend)
  --socket       race the socket server against diod instead
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
  let maxFids: number | undefined;
  if (f.has('max-fids')) {
    maxFids = Number(f.get('max-fids'));
    if (!Number.isInteger(maxFids) || maxFids < 1 || maxFids > MAX_MAX_FIDS) throw new UsageError(`bad --max-fids '${f.get('max-fids')}' (want 1..${MAX_MAX_FIDS})`);
  }
  let listen;
  try { listen = parseListen(f.get('listen') ?? `unix:${path.join(os.tmpdir(), `virtio9p-${process.pid}.sock`)}`); }
  catch (e) { throw new UsageError((e as Error).message); }
  if ((f.has('helper') || f.has('helper-socket')) && kind !== 'proxy') throw new UsageError('--helper and --helper-socket need --backend proxy');
  const backend = await makeBackend(kind, path.resolve(exp), { readonly: f.has('readonly'), helper: f.get('helper'), helperSocket: f.get('helper-socket') });
  const server = await P9Server.start({ backend, listen, msize, maxFids, log: (l) => console.error(`virtio9p: ${l}`) });
  console.log(`virtio9p: serving ${path.resolve(exp)} (${kind}${f.has('readonly') ? ', read-only' : ''}) on ${server.address}`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      const done = () => Promise.resolve((backend as { destroy?: () => unknown }).destroy?.()).then(() => resolve(), () => resolve());
      server.close().then(done, done);
    };
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
    case 'helper': {
      // QEMU-style short flags (-p -f -s -u -g -n): parsed by the helper itself
      if (rest.includes('-h') || rest.includes('--help')) { console.log(HELP.helper); return 0; }
      return runHelper(rest);
    }
    case 'serve': {
      const f = parse(rest, ['readonly'], ['export', 'backend', 'listen', 'msize', 'max-fids', 'helper', 'helper-socket']);
      if (f.has('help')) { console.log(HELP.serve); return 0; }
      return serve(f);
    }
    case 'demo': {
      const f = parse(rest, [], ['backend']);
      if (f.has('help')) { console.log(HELP.demo); return 0; }
      const kind = (f.get('backend') ?? 'proxy') as BackendKind;
      if (!BACKENDS.includes(kind)) throw new UsageError(`bad --backend '${kind}' (want ${BACKENDS.join(', ')})`);
      await runDemoOn(kind);
      return 0;
    }
    case 'bench': {
      const f = parse(rest, ['json', 'quick', 'socket', 'guest', 'no-v86', 'overhead', 'browser', 'chart', 'copy-mode'], ['backend', 'seconds', 'runs', 'only']);
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
      for (const k of ['seconds', 'guest']) if (f.has(k)) throw new UsageError(`--${k} needs --socket`);
      // progress goes to stderr, also with --json (stdout stays the JSON)
      const log = (s: string) => process.stderr.write(`  ${s}\n`);
      const runs = Number(f.get('runs') ?? 3);
      if (!Number.isInteger(runs) || runs < 1 || runs > 50) throw new UsageError(`bad --runs '${f.get('runs')}' (want 1..50)`);
      let only: WorkloadKey[] | undefined;
      if (f.has('only')) {
        only = f.get('only')!.split(',') as WorkloadKey[];
        for (const k of only) if (!KEYS.includes(k)) throw new UsageError(`bad --only '${k}' (want ${KEYS.join(',')})`);
      }
      const benchKind = f.get('backend') ?? 'memory';
      if (!(benchKind in BENCH_BACKENDS)) throw new UsageError(`bad --backend '${benchKind}' (want ${Object.keys(BENCH_BACKENDS).join(', ')})`);
      if (f.has('overhead')) {
        const rep = await runOverhead({ quick: f.has('quick'), log });
        if (f.has('chart')) writeOverheadChart(rep, log);
        console.log(f.has('json') ? JSON.stringify(rep, null, 2) : formatOverhead(rep));
        return 0;
      }
      if (f.has('browser')) {
        if (benchKind !== 'memory') throw new UsageError('--browser runs on the memory backend only');
        const rep = await runBrowserBench({ quick: f.has('quick'), runs, only, noV86: f.has('no-v86'), log });
        if (f.has('chart')) writeResultsChart(rep, log, 'bench-browser.svg', `virtio9p vs v86 in ${rep.info.node} (Web Worker, memory backend, one run)`);
        if (f.has('json')) log(formatHeader(rep));
        console.log(f.has('json') ? JSON.stringify(jsonRows(rep), null, 2) : formatResults(rep));
        return 0;
      }
      const report = await runBench({ quick: f.has('quick'), runs, only, backend: benchKind, noV86: f.has('no-v86'), copyMode: f.has('copy-mode'), log });
      if (f.has('chart')) writeResultsChart(report, log);
      if (f.has('json')) log(formatHeader(report));
      console.log(f.has('json') ? JSON.stringify(jsonRows(report), null, 2) : formatResults(report));
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
