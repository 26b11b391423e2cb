/** Types of the fd-passing addon (native/fdpass.c), loaded by src/native.ts. */
import { loadAddon } from '../../native.js';

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

/** The addon (throws one line naming what is missing). */
export function fdpass(): FdPass {
  return loadAddon<FdPass>('fdpass');
}
