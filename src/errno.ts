/**
 * The one errno map: Linux errno numbers (what 9P2000.L's Rlerror carries, whatever OS the
 * host runs) and the conversion from Node's `err.code` strings. Never use the host's numeric
 * errno (macOS ENOTEMPTY is 66, Linux 39). Unknown errors become EIO.
 */
export const EPERM = 1, ENOENT = 2, EIO = 5, ENXIO = 6, E2BIG = 7, EBADF = 9, EAGAIN = 11, ENOMEM = 12,
  EACCES = 13, EBUSY = 16, EEXIST = 17, EXDEV = 18, ENODEV = 19, ENOTDIR = 20, EISDIR = 21,
  EINVAL = 22, ENFILE = 23, EMFILE = 24, EFBIG = 27, ENOSPC = 28, ESPIPE = 29, EROFS = 30,
  EMLINK = 31, EPIPE = 32, ERANGE = 34, ENAMETOOLONG = 36, ENOLCK = 37, ENOSYS = 38,
  ENOTEMPTY = 39, ELOOP = 40, ENODATA = 61, EPROTO = 71, EOVERFLOW = 75, EMSGSIZE = 90,
  EOPNOTSUPP = 95, ECONNRESET = 104, ETIMEDOUT = 110, ECANCELED = 125;

const BY_CODE: Record<string, number> = {
  EPERM, ENOENT, EIO, ENXIO, E2BIG, EBADF, EAGAIN, ENOMEM, EACCES, EBUSY, EEXIST, EXDEV, ENODEV,
  ENOTDIR, EISDIR, EINVAL, ENFILE, EMFILE, EFBIG, ENOSPC, ESPIPE, EROFS, EMLINK, EPIPE, ERANGE,
  ENAMETOOLONG, ENOLCK, ENOSYS, ENOTEMPTY, ELOOP, ENODATA, EPROTO, EOVERFLOW, EMSGSIZE,
  EOPNOTSUPP, ENOTSUP: EOPNOTSUPP, ECONNRESET, ETIMEDOUT, ECANCELED, EWOULDBLOCK: EAGAIN,
  ENOATTR: ENODATA, EFTYPE: EINVAL,
};

/** Error carrying a Linux errno; backends may throw it (or a Node fs error). */
export class P9Error extends Error {
  constructor(public readonly errno: number, message?: string) {
    super(message ?? `errno ${errno}`);
    this.name = 'P9Error';
  }
}

/** Map anything a backend threw to a Linux errno (1..4095). */
export function toErrno(err: unknown): number {
  if (err instanceof P9Error) return err.errno;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code in BY_CODE) return BY_CODE[code];
  return EIO;
}
