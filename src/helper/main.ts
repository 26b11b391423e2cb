/**
 * `virtio9p helper`: the project's own 9p proxy helper, a drop-in for QEMU 7.2's
 * virtfs-proxy-helper (same command line, same wire protocol — QEMU's `-fsdev proxy` client and
 * our ProxyBackend both use it).
 *
 *   virtio9p helper -p DIR (-f FD | -s PATH -u UID -g GID) [-n]
 *
 *   -p, --path DIR     the export (must be a directory; a symlink to one is refused, like QEMU)
 *   -f, --fd N         serve the inherited socket N (blocking or not: both work)
 *   -s, --socket PATH  create PATH (refused if it exists, or is ≥ 108 bytes), chown it to
 *                      UID:GID (mode srwxrwx---), accept exactly one connection, serve it
 *   -u, --uid UID / -g, --gid GID   owner of the socket (required with -s)
 *   -n, --nodaemon     accepted for compatibility; this helper always stays in the foreground
 *                      and logs to stderr (Node cannot daemon(3) itself; run it under a
 *                      supervisor or with `setsid -f` to detach)
 *
 * Differences from QEMU's helper, all deliberate:
 *  - no chroot and no capability juggling: confinement is openat2(RESOLVE_BENEATH |
 *    RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS) on every path (native/fsops.c), so it does
 *    not need CAP_SYS_CHROOT; ids of new objects are set with fchownat after creating them
 *    (needs CAP_CHOWN for other owners, i.e. root), never with set*id — the uid-0/gid≠0 bugs of
 *    QEMU's helper (proxy-probe.md) do not exist here. To run with fewer privileges, start it
 *    with only CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID and CAP_MKNOD (setpriv).
 *  - FIFOs are never opened blocking; a non-blocking inherited socket is fine.
 * Exit codes as QEMU's: 255 no path/socket given, 1 bad path or bad option combination, 0 after
 * "Started" (also on EOF, "Done").
 */
import fs from 'node:fs';
import { fsops } from './fsops.js';
import { HelperServer } from './server.js';

export const HELPER_USAGE = `usage: virtio9p helper -p DIR (-f FD | -s SOCKET -u UID -g GID) [-n]

The project's 9p proxy helper (QEMU 7.2 virtfs-proxy-helper protocol and command line):
serves DIR to one proxy client (QEMU's -fsdev proxy, or the proxy backend) over an inherited
socket (-f) or a Unix socket it creates and accepts one connection on (-s). Confined to DIR
with openat2 (no chroot needed); creations are chowned to the requested uid/gid.

flags:
  -p, --path DIR      export directory
  -f, --fd N          inherited socket descriptor
  -s, --socket PATH   socket to create (with -u and -g)
  -u, --uid UID       socket owner uid
  -g, --gid GID       socket owner gid
  -n, --nodaemon      stay in the foreground (always the case; accepted for compatibility)
  -h, --help          show this help`;

interface Opts { path?: string; fd?: number; socket?: string; uid?: number; gid?: number; help?: boolean }

function parse(argv: string[]): Opts | string {
  const o: Opts = {};
  const num = (v: string | undefined, what: string): number | string => {
    if (v === undefined || !/^-?\d+$/.test(v)) return `${what} needs a number`;
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let val: string | undefined;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    if (eq > 0) { val = a.slice(eq + 1); a = a.slice(0, eq); }
    const take = (): string | undefined => val ?? argv[++i];
    switch (a) {
      case '-p': case '--path': o.path = take(); if (o.path === undefined) return 'path expected'; break;
      case '-s': case '--socket': o.socket = take(); if (o.socket === undefined) return 'socket path expected'; break;
      case '-f': case '--fd': { const v = num(take(), '--fd'); if (typeof v === 'string') return v; o.fd = v; break; }
      case '-u': case '--uid': { const v = num(take(), '--uid'); if (typeof v === 'string') return v; o.uid = v; break; }
      case '-g': case '--gid': { const v = num(take(), '--gid'); if (typeof v === 'string') return v; o.gid = v; break; }
      case '-n': case '--nodaemon': break;
      case '-h': case '--help': o.help = true; break;
      default: return `unknown option ${argv[i]}`;
    }
  }
  return o;
}

/** Run the helper; resolves with the process exit code. */
export async function runHelper(argv: string[], log: (m: string) => void = (m) => process.stderr.write(`${m}\n`)): Promise<number> {
  const o = parse(argv);
  if (typeof o === 'string') { log(o); log(HELPER_USAGE); return 255; }
  if (o.help) { console.log(HELPER_USAGE); return 0; }
  if (o.path === undefined || (o.socket === undefined && o.fd === undefined)) {
    log('socket, socket descriptor or path not specified');
    log(HELPER_USAGE);
    return 255;
  }
  if (o.socket !== undefined && o.fd !== undefined) { log('both named socket and socket descriptor specified'); return 1; }
  if (o.socket !== undefined && (o.uid === undefined || o.gid === undefined)) {
    log('owner uid:gid not specified, specify socket owner uid:gid');
    return 1;
  }
  let st: fs.Stats;
  try {
    st = fs.lstatSync(o.path);
  } catch (e) {
    log(`invalid path "${o.path}" (${(e as Error).message})`);
    return 1;
  }
  if (!st.isDirectory()) { log(`specified path "${o.path}" is not directory`); return 1; }
  log('Started');
  const F = fsops();
  let sock: number;
  if (o.socket !== undefined) {
    if (Buffer.byteLength(o.socket) >= 108) { log('socket name too long'); return 0; }
    if (fs.existsSync(o.socket)) { log('socket already exists'); return 0; }
    const old = process.umask(0o007);
    const lfd = F.listenUnix(o.socket, 1);
    process.umask(old);
    if (lfd < 0) { log(`socket: errno ${-lfd}`); return 0; }
    try {
      fs.chownSync(o.socket, o.uid!, o.gid!);
    } catch (e) {
      log(`chown: ${(e as Error).message}`);
      F.close(lfd);
      return 0;
    }
    sock = F.accept(lfd);
    F.close(lfd);
    if (sock < 0) { log(`accept: errno ${-sock}`); return 0; }
  } else {
    sock = o.fd!;
  }
  process.umask(0); // modes in requests are applied exactly
  let server: HelperServer;
  try {
    server = new HelperServer({ root: o.path, log });
  } catch (e) {
    log((e as Error).message);
    return 0;
  }
  let reason: string;
  try {
    reason = server.serve(sock);
  } catch (e) {
    reason = (e as Error).message;
  }
  if (reason !== 'EOF') log(`disconnecting: ${reason}`);
  F.close(sock);
  server.close();
  log('Done');
  return 0;
}
