/**
 * The typed ABI of build/virtio9p.wasm (see README "ABI"). The module imports `env.memory`,
 * `device.interrupt`, `device.reply`, `device.copyIn`/`copyOut` (copy mode), the `backend.*` file-system table and (debug build only)
 * wasi_snapshot_preview1 `fd_write`/`proc_exit` for abort; it exports the functions below.
 * tests/abi.test.ts and harness/check-abi.mjs compare the module against these lists.
 */
export const ABI_VERSION = 5;

export interface CoreExports {
  memory: WebAssembly.Memory;
  _start(): void;
  abiVersion(): number;
  coreEnd(): number;
  init(base: number, size: bigint, copyMode: number): void;
  deviceFeatures(): bigint;
  setDriverFeatures(f: bigint): number;
  status(): number;
  driverFeatures(): bigint;
  offerFeatures(mask: bigint): void;
  setupQueue(q: number, size: number, desc: bigint, avail: bigint, used: bigint): number;
  driverOk(): number;
  reset(): void;
  notify(q: number): void;
  complete(slot: number, result: number): void;
  dirent(slot: number, ino: number, next: number, dtype: number, nameLen: number): number;
  openSession(): number;
  closeSession(id: number): void;
  submit(id: number, token: number, req: bigint, reqLen: number, rep: bigint, repCap: number): number;
  tagPtr(): number;
  setTagLen(n: number): void;
  mmioRead(off: number, size: number): number;
  mmioWrite(off: number, value: number, size: number): void;
  pciConfigRead(off: number, size: number): number;
  pciConfigWrite(off: number, value: number, size: number): void;
  pciBarRead(off: number, size: number): number;
  pciBarWrite(off: number, value: number, size: number): void;
  countersPtr(): number;
  maxSlots(): number;
  slotOut(slot: number): number;
  slotSession(slot: number): number;
  saveState(): number;
  loadState(): number;
  inflight(): number;
  setFidLimit(n: number): void;
  maxSessions(): number;
  fidTablePtr(session: number): number;
  fidTableBytes(session: number): number;
}

export const EXPORTS = [
  'memory', '_start', 'abiVersion', 'coreEnd', 'init', 'deviceFeatures', 'setDriverFeatures',
  'status', 'driverFeatures', 'offerFeatures', 'setupQueue', 'driverOk', 'reset', 'notify', 'complete', 'dirent', 'openSession',
  'closeSession', 'submit', 'tagPtr', 'setTagLen', 'mmioRead', 'mmioWrite', 'pciConfigRead',
  'pciConfigWrite', 'pciBarRead', 'pciBarWrite', 'countersPtr',
  'maxSlots', 'slotOut', 'slotSession', 'saveState', 'loadState', 'inflight', 'setFidLimit', 'maxSessions',
  'fidTablePtr', 'fidTableBytes',
] as const;

/** backend.* imports: file operations in WASI conventions. */
export const BACKEND_IMPORTS = [
  'attach', 'lookup', 'dup', 'getattr', 'setattr', 'open', 'create', 'read', 'write', 'readdir',
  'readlink', 'mkdir', 'symlink', 'mknod', 'link', 'renameat', 'rename', 'unlinkat', 'remove',
  'fsync', 'statfs', 'xattrwalk', 'xattrcreate', 'lock', 'getlock', 'close', 'forget', 'cancel',
] as const;

export const IMPORTS = [
  'env.memory', 'device.interrupt', 'device.reply', 'device.copyIn', 'device.copyOut', 'device.grew', ...BACKEND_IMPORTS.map((n) => `backend.${n}`),
];
/** Only the debug build (assertions on) imports these. */
export const DEBUG_IMPORTS = ['wasi_snapshot_preview1.fd_write', 'wasi_snapshot_preview1.proc_exit'];

/** A backend import's "the host will call complete(slot, result) later". */
export const PENDING = -1;

/** Stat out-parameter (written by the host at outStat). */
export const ST = {
  INO: 0, MODE: 8, UID: 12, GID: 16, NODE: 20, NLINK: 24, RDEV: 32, SIZE: 40, BLKSIZE: 48,
  BLOCKS: 56, ATIME: 64, MTIME: 80, CTIME: 96, FH: 112, COUNT: 116, XSIZE: 120,
} as const;

/** Counters (at countersPtr()). */
export const C = {
  REQUESTS: 0, ERRORS: 1024, MALFORMED_CHAINS: 2048, MALFORMED_MESSAGES: 2052, INFLIGHT: 2056,
  INFLIGHT_HWM: 2060, BYTES_READ: 2064, BYTES_WRITTEN: 2072, FLUSHED: 2080, REPLIES: 2084,
  NEEDS_RESET: 2088, STALLS: 2092,
} as const;

export const STATUS = {
  ACKNOWLEDGE: 1, DRIVER: 2, DRIVER_OK: 4, FEATURES_OK: 8, DEVICE_NEEDS_RESET: 64, FAILED: 128,
} as const;
