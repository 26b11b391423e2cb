/**
 * Loader for the fd-passing addon (native/fdpass.c, built by `node native/build.mjs` into
 * native/build/fdpass.node). Found through $VIRTIO9P_FDPASS, or relative to this module (src/
 * or dist/ layouts), or the current directory.
 */
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface FdPass {
  socketpair(): [number, number] | number;
  connectUnix(path: string): number;
  setNonBlocking(fd: number, on: boolean): number;
  send(fd: number, data: Uint8Array, fds?: number[]): number;
  /** [n | -errno, msg_flags, ...fds] */
  recv(fd: number, buf: Uint8Array, maxFds: number): number[];
  close(fd: number): number;
  pollStart(fd: number, events: number, cb: (status: number, events: number) => void): PollHandle;
  pollUpdate(h: PollHandle, events: number): number;
  pollRef(h: PollHandle, on: boolean): void;
  pollClose(h: PollHandle): void;
}
export type PollHandle = { readonly __poll: unique symbol };

export const POLL_READABLE = 1, POLL_WRITABLE = 2;
export const MSG_CTRUNC = 0x8;

let cached: FdPass | null = null;

function candidates(): string[] {
  const out: string[] = [];
  if (process.env.VIRTIO9P_FDPASS) out.push(process.env.VIRTIO9P_FDPASS);
  let here: string | null = null;
  try { here = path.dirname(fileURLToPath(import.meta.url)); } catch { /* not a file URL */ }
  if (here !== null) {
    for (let d = here, i = 0; i < 5; i++, d = path.dirname(d)) out.push(path.join(d, 'native', 'build', 'fdpass.node'));
  }
  out.push(path.resolve('native', 'build', 'fdpass.node'));
  return out;
}

/** The addon (throws with the build command when it is missing). */
export function fdpass(): FdPass {
  if (cached !== null) return cached;
  const req = createRequire(import.meta.url);
  const tried = candidates();
  for (const p of tried) {
    if (fs.existsSync(p)) {
      cached = req(p) as FdPass;
      return cached;
    }
  }
  throw new Error(`fdpass addon not built (run \`node native/build.mjs\`); looked in: ${tried.join(', ')}`);
}
