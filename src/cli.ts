/**
 * The `virtio9p` command: demo, serve, helper, image. A bad flag or value prints one line and
 * exits 2; a failure prints one line and exits 1.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runDemoOn } from './demo-node.js';
import { P9Server } from './serve.js';
import { parseListen, prepareListen, listenError } from './listen.js';
import { MAX_MAX_FIDS } from './device.js';
import { makeBackend, BACKENDS, type BackendKind } from './backends/make.js';
import { runHelper, HELPER_USAGE } from './helper/main.js';
import { parseFlags, runMain, UsageError } from './args.js';
import { checkHelper } from './backends/proxy/client.js';
import { DEFAULT_SECURITY_MODEL, SECURITY_MODELS, type SecurityModel } from './backends/security.js';

declare const VIRTIO9P_VERSION: string;
/** The package version (set by the build from package.json). */
const VERSION = typeof VIRTIO9P_VERSION === 'string' ? VIRTIO9P_VERSION : 'dev';

const HELP: Record<string, string> = {
  helper: HELPER_USAGE,
  '': `usage: virtio9p <command> [flags]

commands:
  demo     run a short guest session against a device through the virtqueue
  serve    serve a directory as 9P2000.L over a Unix socket, TCP or an inherited descriptor
  helper   the 9p proxy helper (QEMU virtfs-proxy-helper protocol and flags)
  image    make a v86-format image (fs.json + blobs) of a directory or a tar file

flags:
  -h, --help     show help (also: virtio9p <command> --help)
  -V, --version  print the version`,
  demo: `usage: virtio9p demo [--backend proxy|local|memory]

Boots a device on a small embedded tree, drives it with the guest-side virtio driver through
the real virtqueue (attach, walk, readdir, read, write, create, rename, unlink) and prints
what the guest saw and the request rate. With proxy (the default) the tree is written to a
temporary directory, a helper process (virtio9p helper) is started on it and opens files for
the device, passing the descriptors back; local serves the temporary directory directly;
memory keeps the tree in memory. The temporary directory is removed afterwards.

flags:
  --backend KIND   proxy (default), local or memory
  -h, --help       show this help`,
  serve: `usage: virtio9p serve DIR [flags]
       virtio9p serve --export DIR [flags]

Serves DIR with the wasm 9P2000.L server over a stream socket; each connection is its own
session. Stops cleanly on SIGINT/SIGTERM (a Unix socket file is removed). A Linux guest
mounts it with: mount -t 9p -o trans=tcp,port=PORT,version=9p2000.L HOST /mnt

flags:
  --export DIR         the directory to serve (or give DIR as the argument)
  --backend KIND       local (default): pass through to DIR; memory: an in-memory copy of DIR;
                       proxy: through a helper process speaking QEMU's proxy protocol
  --helper PATH        proxy: the helper to launch on DIR (default: virtio9p helper;
                       QEMU's is /usr/lib/qemu/virtfs-proxy-helper)
  --helper-socket PATH proxy: use a helper already listening on PATH instead of launching one
  --security-model M   local, proxy: mapped-xattr (default): the guest's owners, modes, device
                       nodes, FIFOs and symlinks are kept in user.virtfs.* xattrs (QEMU's format)
                       and host objects are plain files and directories owned by the server's
                       user; mapped-file: the same in .virtfs_metadata files; passthrough: they
                       are real on the host (needs root to be useful); none: passthrough where a
                       refused chown is ignored
  --fmode MODE, --dmode MODE
                       mapped models: host permissions of new files / directories (0600 / 0700)
  --access user|any    user (default): every request is checked as the user the client attached
                       as (Tattach's n_uname; none: nobody), with POSIX permissions on what the
                       guest sees: only root chowns, makes device nodes or sets security.*;
                       any: the client may do what the server's own user may
  --squash UID:GID     every attach is this user, and new objects are UID:GID (diod's --allsquash)
  --listen SPEC        unix:PATH | tcp:HOST:PORT | tcp::PORT (all addresses) | fd:N
                       (default: unix:<tmpdir>/virtio9p-<pid>.sock); a socket file left by a
                       server that is gone is replaced
  --msize N            the largest msize offered (default 1052672; 4096..4194304)
  --max-fids N         fids one connection may hold (default 1048576; 1..16777216); past it the
                       request that would add one gets EMFILE (a cache=loose mount keeps a fid
                       per cached dentry)
  --readonly           refuse every change (EROFS)

limits (what one client can make the server hold; BYTES takes K, M or G):
  --max-connections N      connections at once, more are closed (default 32; 1..63)
  --attach-timeout SEC     close a connection without an attached fid after SEC (default 30; 0 = never)
  --idle-timeout SEC       close a connection silent for SEC with nothing in flight (default 0 = never)
  --frame-timeout SEC      close a connection whose request takes over SEC to arrive or whose
                           replies stay unread for SEC (default 30; 0 = never)
  --connection-buffer BYTES  request + unsent reply bytes per connection; beyond, it is not read
                           (default 8M: 256M of buffers / max connections)
  --max-open N             open files and directories per connection (EMFILE; default 1024)
  --max-xattr-bytes BYTES  xattr buffers per connection (Txattrcreate ENOSPC; default 1M)
  --memory-capacity BYTES  memory backend: file data, xattrs, hard links (ENOSPC; statfs; default 256M)
  --memory-files N         memory backend: files, directories and links (ENOSPC; default 65536)
  -h, --help           show this help`,
  image: `usage: virtio9p image DIR|TAR --out OUT

Writes OUT/fs.json (v86's 9P image index, version 3) and OUT/base/<sha256 prefix>.bin, the
format of v86's tools/fs2json.py and tools/copy-to-sha256.py: serve OUT over HTTP and open it
with HttpBackend (or v86's basefs/baseurl).

flags:
  --out OUT    the output directory (made if missing)
  -h, --help   show this help`,
};

/** A count, or a byte size with an optional K/M/G (×1024) suffix, within [min, max]. */
function intFlag(f: Map<string, string>, name: string, min: number, max: number, bytes = false): number | undefined {
  const v = f.get(name);
  if (v === undefined) return undefined;
  const m = (bytes ? /^(\d+)([KMG]?)$/i : /^(\d+)()$/).exec(v);
  const n = m ? Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase()) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`bad --${name} '${v}' (want ${min}..${max}${bytes ? ', K/M/G allowed' : ''})`);
  return n;
}

/** Seconds (decimals allowed, 0 = never) as milliseconds. */
function secondsFlag(f: Map<string, string>, name: string): number | undefined {
  const v = f.get(name);
  if (v === undefined) return undefined;
  const n = /^\d+(\.\d+)?$/.test(v) ? Number(v) : NaN;
  if (!(n >= 0 && n <= 86400 * 7)) throw new UsageError(`bad --${name} '${v}' (want seconds, 0..604800)`);
  return Math.round(n * 1000);
}

function limitFlags(f: Map<string, string>) {
  return {
    serve: {
      maxConnections: intFlag(f, 'max-connections', 1, 63),
      attachTimeout: secondsFlag(f, 'attach-timeout'),
      idleTimeout: secondsFlag(f, 'idle-timeout'),
      frameTimeout: secondsFlag(f, 'frame-timeout'),
      connectionBuffer: intFlag(f, 'connection-buffer', 64 << 10, 2 ** 40, true),
      maxOpenPerSession: intFlag(f, 'max-open', 1, 1 << 30),
      maxXattrBytesPerSession: intFlag(f, 'max-xattr-bytes', 0, 2 ** 40, true),
    },
    memoryCapacity: intFlag(f, 'memory-capacity', 4096, 2 ** 50, true),
    memoryFiles: intFlag(f, 'memory-files', 1, 2 ** 31, false),
  };
}

async function serve(f: Map<string, string>): Promise<number> {
  if (f.has('export') && f.has('0')) throw new UsageError('give the directory once: serve DIR or serve --export DIR');
  const exp = f.get('export') ?? f.get('0');
  if (!exp) throw new UsageError('serve needs a directory: virtio9p serve DIR');
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
  const log = (l: string) => console.error(`virtio9p: ${l}`);
  await prepareListen(listen, log);
  if ((f.has('helper') || f.has('helper-socket')) && kind !== 'proxy') throw new UsageError('--helper and --helper-socket need --backend proxy');
  const helper = f.get('helper');
  if (helper !== undefined) {
    try { checkHelper(helper); } catch (e) { throw new UsageError((e as Error).message); }
  }
  const model = (f.get('security-model') ?? DEFAULT_SECURITY_MODEL) as SecurityModel;
  if (!SECURITY_MODELS.includes(model)) throw new UsageError(`bad --security-model '${model}' (want ${SECURITY_MODELS.join(', ')})`);
  const perm = (k: string, dflt: number): number => {
    const v = f.get(k);
    if (v === undefined) return dflt;
    if (!/^0?[0-7]{3}$/.test(v)) throw new UsageError(`bad --${k} '${v}' (want octal permissions such as 0640)`);
    return parseInt(v, 8);
  };
  const fmode = perm('fmode', 0o600), dmode = perm('dmode', 0o700);
  if ((f.has('fmode') || f.has('dmode')) && !model.startsWith('mapped')) throw new UsageError('--fmode and --dmode need a mapped --security-model');
  const access = f.get('access') ?? 'user';
  if (access !== 'user' && access !== 'any') throw new UsageError(`bad --access '${access}' (want user, any)`);
  let squash: { uid: number; gid: number } | undefined;
  if (f.has('squash')) {
    const m = /^(\d+):(\d+)$/.exec(f.get('squash')!);
    if (!m || Number(m[1]) > 0xFFFFFFFE || Number(m[2]) > 0xFFFFFFFE) throw new UsageError(`bad --squash '${f.get('squash')}' (want UID:GID)`);
    if (access === 'any') throw new UsageError('--squash needs --access user');
    squash = { uid: Number(m[1]), gid: Number(m[2]) };
  }
  const lim = limitFlags(f);
  if ((f.has('memory-capacity') || f.has('memory-files')) && kind !== 'memory') throw new UsageError('--memory-capacity and --memory-files need --backend memory');
  let backend;
  try {
    backend = await makeBackend(kind, path.resolve(exp), {
      readonly: f.has('readonly'), helper, helperSocket: f.get('helper-socket'),
      securityModel: model, fmode, dmode, access, squash,
      memoryCapacity: lim.memoryCapacity, memoryFiles: lim.memoryFiles,
    });
  } catch (e) {
    if ((e as { usage?: boolean }).usage || (e as Error).name === 'HelperNotRunnable') throw new UsageError((e as Error).message);
    throw e;
  }
  let server: P9Server;
  try { server = await P9Server.start({ backend, listen, msize, maxFids, ...lim.serve, log }); } catch (e) {
    await Promise.resolve((backend as { destroy?: () => unknown }).destroy?.()).catch(() => {});
    throw (e as NodeJS.ErrnoException).syscall === 'listen' || (e as NodeJS.ErrnoException).code === 'EADDRINUSE' ? listenError(listen, e as NodeJS.ErrnoException) : e;
  }
  // the signal handlers are in place before the line that tells a supervisor we are up
  const stopped = new Promise<void>((resolve) => {
    const stop = () => {
      const done = () => Promise.resolve((backend as { destroy?: () => unknown }).destroy?.()).then(() => resolve(), () => resolve());
      server.close().then(done, done);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  const how = kind === 'memory' ? kind : `${kind}, ${model}`;
  console.log(`virtio9p: serving ${path.resolve(exp)} (${how}${f.has('readonly') ? ', read-only' : ''}) on ${server.address}`);
  await stopped;
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    console.log(HELP['']);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === '-V' || cmd === '--version' || cmd === 'version') { console.log(VERSION); return 0; }
  switch (cmd) {
    case 'helper': {
      // QEMU-style short flags (-p -f -s -u -g -n): parsed by the helper itself
      if (rest.includes('-h') || rest.includes('--help')) { console.log(HELP.helper); return 0; }
      return runHelper(rest);
    }
    case 'serve': {
      const f = parseFlags(rest, ['readonly'], ['export', 'backend', 'listen', 'msize', 'helper', 'helper-socket',
        'security-model', 'max-fids', 'fmode', 'dmode', 'access', 'squash',
        'max-connections', 'attach-timeout', 'idle-timeout', 'frame-timeout', 'connection-buffer', 'max-open',
        'max-xattr-bytes', 'memory-capacity', 'memory-files'], 1);
      if (f.has('help')) { console.log(HELP.serve); return 0; }
      return serve(f);
    }
    case 'image': {
      const src = rest[0] !== undefined && !rest[0].startsWith('-') ? rest[0] : undefined;
      const f = parseFlags(src === undefined ? rest : rest.slice(1), [], ['out']);
      if (f.has('help')) { console.log(HELP.image); return 0; }
      if (src === undefined) throw new UsageError('image needs a source DIR or TAR');
      if (!f.has('out')) throw new UsageError('image needs --out OUT');
      if (!fs.existsSync(src)) throw new UsageError(`'${src}' does not exist`);
      const { buildImage } = await import('./image.js');
      const r = buildImage(src, f.get('out')!);
      console.log(`virtio9p: ${r.files} files, ${r.blobs} blobs (${r.bytes} bytes) in ${f.get('out')}`);
      return 0;
    }
    case 'demo': {
      const f = parseFlags(rest, [], ['backend']);
      if (f.has('help')) { console.log(HELP.demo); return 0; }
      const kind = (f.get('backend') ?? 'proxy') as BackendKind;
      if (!BACKENDS.includes(kind)) throw new UsageError(`bad --backend '${kind}' (want ${BACKENDS.join(', ')})`);
      await runDemoOn(kind);
      return 0;
    }
    default:
      throw new UsageError(`unknown command '${cmd}' (try virtio9p --help)`);
  }
}

runMain('virtio9p', () => main(process.argv.slice(2)));
