// The static memory map of the core. Everything the core keeps lives in fixed regions that
// start at the end of the module's own data (`__heap_base`), so the hot path never allocates.
//
//   0 ........ __heap_base   AssemblyScript static data (constants, message table strings)
//   CORE_BASE                 counters          COUNTERS_SIZE
//   QUEUE_BASE                queue states      MAX_QUEUES × QUEUE_SIZE
//   SESSION_BASE              sessions          MAX_SESSIONS × SESSION_SIZE (first fid tables inside)
//   SLOT_BASE                 request slots     MAX_SLOTS × SLOT_SIZE
//   REPLY_BASE                reply scratch     REPLY_SIZE (encode, then scatter into the guest)
//   CORE_END                  ── the host places guest RAM at or after this (64 KiB aligned)
//   (end of memory)           the fid heap: tables past INLINE_FIDS, taken with memory.grow

export const MAX_QUEUES: i32 = 1;
export const MAX_QUEUE_SIZE: u32 = 1024;

/** Requests in flight at once, over all queues and sessions. */
export const MAX_SLOTS: i32 = 256;
/** Sessions: 0 is the virtio device's; stream connections use the others. */
export const MAX_SESSIONS: i32 = 64;
/** Entries of each session's first fid table (power of two); tables double from there. */
export const INLINE_FIDS: i32 = 1024;
/** Fids a session may hold unless the host sets a limit (setFidLimit), and the most it may set. */
export const DEFAULT_FID_LIMIT: u32 = 1 << 20;
export const MAX_FID_LIMIT: u32 = 1 << 24;

/** Largest T-message the core gathers (everything but a Twrite's payload). */
export const MSG_SIZE: i32 = 8192;
/** Per-request area for the backend's out-parameters (stat, statfs, readlink target, lock). */
export const OUT_SIZE: i32 = 8192;
/** Descriptors per chain the core accepts (readable + writable); more → malformed ring. */
export const MAX_SEGS: i32 = 1024;
/** iovec entries per slot: the chain's segments plus room for one sliced view of them. */
export const IOV_ENTRIES: i32 = MAX_SEGS * 2;
export const IOV_SIZE: i32 = IOV_ENTRIES * 8;

// Slot layout (SLOT_SIZE bytes each):
//   +0     SLOT_HDR_SIZE   fields (see slots.ts)
//   +HDR   MSG_SIZE        the gathered T-message
//   ...    OUT_SIZE        out-parameters
//   ...    IOV_SIZE        iovecs {ptr u32, len u32}
export const SLOT_HDR_SIZE: i32 = 512;
export const SLOT_MSG: i32 = SLOT_HDR_SIZE;
export const SLOT_OUT: i32 = SLOT_MSG + MSG_SIZE;
export const SLOT_IOV: i32 = SLOT_OUT + OUT_SIZE;
export const SLOT_SIZE: i32 = SLOT_IOV + IOV_SIZE;

export const COUNTERS_SIZE: i32 = 4096;
export const QUEUE_SIZE: i32 = 128;
export const FID_ENTRY_SIZE: i32 = 32;
export const SESSION_HDR_SIZE: i32 = 64;
export const SESSION_SIZE: i32 = SESSION_HDR_SIZE + INLINE_FIDS * FID_ENTRY_SIZE;
export const REPLY_SIZE: i32 = 65536;

export const CORE_BASE: usize = (__heap_base + 15) & ~(<usize>15);
export const COUNTERS_BASE: usize = CORE_BASE;
export const QUEUE_BASE: usize = COUNTERS_BASE + <usize>COUNTERS_SIZE;
export const SESSION_BASE: usize = QUEUE_BASE + <usize>(MAX_QUEUES * QUEUE_SIZE);
export const SLOT_BASE: usize = SESSION_BASE + <usize>(MAX_SESSIONS * SESSION_SIZE);
export const REPLY_BASE: usize = SLOT_BASE + <usize>(MAX_SLOTS * SLOT_SIZE);
export const CORE_END: usize = REPLY_BASE + <usize>REPLY_SIZE;
