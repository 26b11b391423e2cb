/** Messages between the bench page and its worker (browser-safe). */
import type { Sizes, WorkloadKey, Row } from '../bench/common.js';

export interface StartMsg {
  type: 'start';
  sizes: Sizes;
  runs: number;
  warmup: number;
  only: WorkloadKey[];
  noV86: boolean;
  /** build/virtio9p.wasm and the compiled copy.wat */
  coreWasm: ArrayBuffer;
  copyWasm: ArrayBuffer;
  /** absolute URLs of v86's libv86.mjs and v86.wasm */
  v86Lib: string;
  v86Wasm: string;
}
export type WorkerMsg =
  | { type: 'progress'; text: string }
  | { type: 'done'; rows: Row[]; v86?: string; v86Error?: string; crossOriginIsolated: boolean; sharedMemory: boolean }
  | { type: 'error'; message: string };
