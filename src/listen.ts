/** `--listen` values for the socket server: parsing, checks before listening, printing. */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export type ListenSpec = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number } | { kind: 'fd'; fd: number };

/** unix:PATH | tcp:HOST:PORT | tcp::PORT (every address) | tcp:[V6]:PORT | fd:N */
export function parseListen(s: string): ListenSpec {
  if (s.startsWith('unix:') && s.length > 5) return { kind: 'unix', path: s.slice(5) };
  const tcp = /^tcp:(\[[^\]]*\]|[^[\]]*):(\d+)$/.exec(s);
  if (tcp) {
    const port = Number(tcp[2]);
    if (port > 65535) throw new RangeError(`bad port in '${s}' (want 0..65535)`);
    return { kind: 'tcp', host: tcp[1]!.replace(/^\[|\]$/g, ''), port };
  }
  const fd = /^fd:(\d+)$/.exec(s);
  if (fd) return { kind: 'fd', fd: Number(fd[1]) };
  throw new RangeError(`bad --listen '${s}' (want unix:PATH, tcp:HOST:PORT, tcp::PORT or fd:N)`);
}

/** A listen address as a --listen value (IPv6 hosts in brackets). */
export function formatTcp(host: string, port: number): string {
  return `tcp:${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Whether something accepts connections on the Unix socket at p. */
function answers(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(p);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * Check a listen spec before listening, so a failure names its cause: a Unix socket's
 * directory must exist; a socket file left by a server that is gone (nothing answers on it) is
 * replaced, with a line to `log`; a live one or a non-socket file is an error; an fd must be an
 * open socket. Throws Error with a one-line message.
 */
export async function prepareListen(l: ListenSpec, log: (line: string) => void): Promise<void> {
  if (l.kind === 'unix') {
    const dir = path.dirname(path.resolve(l.path));
    let d: fs.Stats;
    try { d = fs.statSync(dir); } catch { throw new Error(`cannot listen on unix:${l.path}: directory '${dir}' does not exist`); }
    if (!d.isDirectory()) throw new Error(`cannot listen on unix:${l.path}: '${dir}' is not a directory`);
    if (Buffer.byteLength(l.path) >= 108) throw new Error(`cannot listen on unix:${l.path}: the path is longer than 107 bytes`);
    let st: fs.Stats | undefined;
    try { st = fs.lstatSync(l.path); } catch { /* free */ }
    if (st === undefined) return;
    if (!st.isSocket()) throw new Error(`cannot listen on unix:${l.path}: the file exists and is not a socket`);
    if (await answers(l.path)) throw new Error(`cannot listen on unix:${l.path}: another server is listening there`);
    fs.unlinkSync(l.path);
    log(`removed the stale socket file ${l.path} (no server answered on it)`);
  } else if (l.kind === 'fd') {
    let st: fs.Stats;
    try { st = fs.fstatSync(l.fd); } catch { throw new Error(`cannot listen on fd:${l.fd}: no such open descriptor`); }
    if (!st.isSocket()) throw new Error(`cannot listen on fd:${l.fd}: not a socket`);
  }
}

/** One line for an error from listen(2). */
export function listenError(l: ListenSpec, e: NodeJS.ErrnoException): Error {
  const where = l.kind === 'unix' ? `unix:${l.path}` : l.kind === 'fd' ? `fd:${l.fd}` : formatTcp(l.host, l.port);
  const why: Record<string, string> = {
    EACCES: 'permission denied', EADDRINUSE: 'the address is in use', EADDRNOTAVAIL: 'no such local address',
    ENOTFOUND: 'unknown host', EINVAL: 'not a listening-capable socket', EROFS: 'read-only file system',
  };
  return new Error(`cannot listen on ${where}: ${(e.code && why[e.code]) ?? e.message}`);
}
