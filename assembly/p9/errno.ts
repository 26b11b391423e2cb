// Linux errno numbers (include/uapi/asm-generic/errno-base.h, errno.h). Rlerror always
// carries these, whatever OS the host runs. src/errno.ts holds the same numbers for the host.
export const EPERM: i32 = 1;
export const ENOENT: i32 = 2;
export const EIO: i32 = 5;
export const E2BIG: i32 = 7;
export const EBADF: i32 = 9;
export const ENOMEM: i32 = 12;
export const EEXIST: i32 = 17;
export const ENOTDIR: i32 = 20;
export const EISDIR: i32 = 21;
export const EINVAL: i32 = 22;
export const ENFILE: i32 = 23;
export const EMFILE: i32 = 24;
export const EFBIG: i32 = 27;
export const ENOSPC: i32 = 28;
export const ERANGE: i32 = 34;
export const ENAMETOOLONG: i32 = 36;
export const ENOTEMPTY: i32 = 39;
export const ENODATA: i32 = 61;
export const EPROTO: i32 = 71;
export const EMSGSIZE: i32 = 90;
export const EOPNOTSUPP: i32 = 95;
export const ECANCELED: i32 = 125;
