// Per-device counters, readable by the host at countersPtr() (layout mirrored in
// src/wasm/abi.ts):
//
//   +0     requests[256] u32   T-messages received, by type byte
//   +1024  errors[256] u32     Rlerror replies, by errno (errno ≥ 255 counted at 255)
//   +2048  malformedChains u32 chains that broke the ring rules (device needs reset)
//   +2052  malformedMessages u32  messages that failed to decode (answered Rlerror)
//   +2056  inflight u32        requests in flight now
//   +2060  inflightHwm u32     the most ever in flight
//   +2064  bytesRead u64       file data delivered to the guest (Rread)
//   +2072  bytesWritten u64    file data taken from the guest (Twrite)
//   +2080  flushed u32         requests cancelled by Tflush (returned with len 0)
//   +2084  replies u32         replies published
//   +2088  needsReset u32      times the device entered DEVICE_NEEDS_RESET
//   +2092  stalls u32          times popping stopped because every slot was busy
import { COUNTERS_BASE, COUNTERS_SIZE } from "./layout";

export const C_REQUESTS: usize = 0;
export const C_ERRORS: usize = 1024;
export const C_MALFORMED_CHAINS: usize = 2048;
export const C_MALFORMED_MESSAGES: usize = 2052;
export const C_BYTES_READ: usize = 2064;
export const C_BYTES_WRITTEN: usize = 2072;
export const C_FLUSHED: usize = 2080;
export const C_REPLIES: usize = 2084;
export const C_NEEDS_RESET: usize = 2088;
export const C_STALLS: usize = 2092;

@inline export function bump(off: usize): void {
  store<u32>(COUNTERS_BASE + off, load<u32>(COUNTERS_BASE + off) + 1);
}
@inline export function add64(off: usize, n: u64): void {
  store<u64>(COUNTERS_BASE + off, load<u64>(COUNTERS_BASE + off) + n);
}
export function countRequest(type: u8): void {
  bump(C_REQUESTS + (<usize>type << 2));
}
export function countError(errno: i32): void {
  let e = errno < 0 || errno > 255 ? 255 : errno;
  bump(C_ERRORS + (<usize>e << 2));
}
export function clearCounters(): void {
  memory.fill(COUNTERS_BASE, 0, <usize>COUNTERS_SIZE);
}
