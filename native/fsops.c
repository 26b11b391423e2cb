/*
 * fsops: confined file-system primitives for Node (node-api only, Linux >= 5.6 for openat2).
 *
 * Every path is resolved *relative to a directory fd* (the export root, or any directory fd
 * below it) with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS):
 *   - leading '/' are ignored: "/a/b" and "a/b" both mean root/a/b (chroot-like naming);
 *   - ".." that would climb above the directory fd fails (EXDEV), ".." below it works;
 *   - no symlink is ever traversed, in any component, including one swapped in by another
 *     process during the call (the kernel fails the resolution with ELOOP), and no /proc
 *     magic link either;
 *   - the final component is never followed: operations work on the symlink itself
 *     (lstat/lchown/lutimes semantics), open of a symlink fails with ELOOP (O_PATH|O_NOFOLLOW
 *     opens the link itself), create through a dangling symlink fails.
 * Operations on a name are done as "resolve the parent directory beneath (O_PATH fd), then one
 * *at() call on the single last component without following it", so the race between the
 * check and the use that path-based code has does not exist.
 * The empty path (or "/") names the directory fd itself. A last component "." or ".." is
 * resolved to the directory it names (and is refused where a new name is needed).
 * Strings (paths, names) are Uint8Array/Buffer or JS strings; they end at the first NUL
 * (QEMU's proxy client sends paths with a trailing NUL). Results are numbers >= 0 or a
 * negative errno (Linux numbering); nothing throws except for wrong argument types.
 * All calls are synchronous and short; opens always add O_CLOEXEC, and `open` with the
 * REGULAR_ONLY option opens non-blocking first (a FIFO never blocks) and refuses anything that
 * is not a regular file or a directory with ENXIO (QEMU 7.2.4+ helper, CVE-2023-2861).
 *
 *   openRoot(path)                         → O_PATH|O_DIRECTORY fd of the export root
 *   open(dirfd, path, flags, mode, opts)   → fd           (opts 1 = REGULAR_ONLY)
 *   stat(dirfd, path, out BigInt64Array16) → 0            (lstat; out in ProxyStat order:
 *       dev ino nlink mode uid gid rdev size blksize blocks atime atimens mtime mtimens ctime ctimens)
 *   fstat(fd, out)                         → 0            (fstat, works on O_PATH fds)
 *   statfs(dirfd, path, out BigInt64Array11)→ 0           (type bsize blocks bfree bavail files
 *                                                          ffree fsid0 fsid1 namelen frsize)
 *   mkdir(dirfd, path, mode) · mknod(dirfd, path, mode, rdev) · symlink(target, dirfd, path)
 *   link(olddirfd, old, newdirfd, new) · rename(olddirfd, old, newdirfd, new, flags)
 *   unlink(dirfd, path, flags)             (flags: AT_REMOVEDIR 0x200; -1 = either, like remove(3))
 *   chown(dirfd, path, uid, gid)           (never follows; -1 keeps)
 *   chmod(dirfd, path, mode)               (a symlink → EOPNOTSUPP; never follows)
 *   truncate(dirfd, path, length)          (regular files only)
 *   utimes(dirfd, path, asec, ansec, msec, mnsec)   (UTIME_NOW / UTIME_OMIT in the ns fields)
 *   readlink(dirfd, path)                  → Buffer | -errno
 *   getxattr(dirfd, path, name, size)      → size 0: length | -errno; else Buffer | -errno
 *   listxattr(dirfd, path, size)           → same shapes
 *   setxattr(dirfd, path, name, value, flags) · removexattr(dirfd, path, name)
 *   getversion(dirfd, path)                → u32 inode generation | -errno (regular/dir only)
 *   readdir(fd, offset, max)               → [next offset (BigInt), ...[name Buffer, ino (BigInt),
 *                                             d_type, d_off (BigInt)]] | -errno  (getdents64)
 *   close(fd)                              → 0 | -errno
 * Helper sockets (blocking, for the single-threaded `virtio9p helper` loop):
 *   listenUnix(path, backlog)              → listening fd (bind fails with EADDRINUSE if path exists)
 *   accept(fd)                             → connected fd (blocking, close-on-exec)
 *   setBlocking(fd)                        → 0 | -errno (clears O_NONBLOCK)
 *   fsType(fd)                             → f_type of the fd's file system (number) | -errno
 * Numbers wider than 2^53 (offsets, rdev) may be passed as BigInt.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef NODE_GYP_MODULE_NAME
#define NODE_GYP_MODULE_NAME fsops
#endif

#define STRICT (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS)
#define OPT_REGULAR_ONLY 1
#define XBUF_MAX (64 * 1024 + 1)

static napi_value num(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

static int arg_int(napi_env env, napi_value v, int *out) {
  int32_t i;
  if (napi_get_value_int32(env, v, &i) != napi_ok) {
    napi_throw_type_error(env, NULL, "fsops: integer argument expected");
    return 0;
  }
  *out = i;
  return 1;
}

static int arg_i64(napi_env env, napi_value v, int64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return 0;
  if (t == napi_bigint) {
    bool lossless;
    if (napi_get_value_bigint_int64(env, v, out, &lossless) == napi_ok) return 1;
  } else if (t == napi_number) {
    if (napi_get_value_int64(env, v, out) == napi_ok) return 1;
  }
  napi_throw_type_error(env, NULL, "fsops: number or bigint expected");
  return 0;
}

/* bytes of a Uint8Array / Buffer or a JS string, copied NUL-terminated (cut at the first NUL) */
static int arg_str(napi_env env, napi_value v, char *buf, size_t cap, size_t *lenOut) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return 0;
  size_t len = 0;
  if (t == napi_string) {
    if (napi_get_value_string_utf8(env, v, buf, cap, &len) != napi_ok) return 0;
    if (len >= cap - 1) {
      size_t full;
      napi_get_value_string_utf8(env, v, NULL, 0, &full);
      if (full >= cap - 1) return -1;
    }
  } else {
    bool is;
    void *data;
    napi_typedarray_type tt;
    napi_value ab;
    size_t off;
    if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
        napi_get_typedarray_info(env, v, &tt, &len, &data, &ab, &off) != napi_ok || tt != napi_uint8_array) {
      napi_throw_type_error(env, NULL, "fsops: string or Uint8Array expected");
      return 0;
    }
    const char *z = memchr(data, 0, len);
    if (z != NULL) len = (size_t)(z - (const char *)data);
    if (len >= cap) return -1;
    memcpy(buf, data, len);
  }
  buf[len] = 0;
  len = strlen(buf);
  if (lenOut) *lenOut = len;
  return 1;
}

/* raw bytes (binary values: xattr values) */
static int arg_bytes(napi_env env, napi_value v, void **data, size_t *len) {
  bool is;
  napi_typedarray_type tt;
  napi_value ab;
  size_t off;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &tt, len, data, &ab, &off) != napi_ok || tt != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "fsops: Uint8Array expected");
    return 0;
  }
  return 1;
}

static long do_openat2(int dirfd, const char *path, int flags, int mode, unsigned long long resolve) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (unsigned long long)(unsigned)(flags | O_CLOEXEC);
  if (flags & (O_CREAT | __O_TMPFILE)) how.mode = (unsigned long long)(mode & 07777);
  how.resolve = resolve;
  long r;
  do r = syscall(SYS_openat2, dirfd, path, &how, sizeof how); while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : r;
}

/* strip leading '/' (the dirfd is the root) and trailing '/' */
static char *norm(char *p) {
  while (*p == '/') p++;
  size_t n = strlen(p);
  while (n > 0 && p[n - 1] == '/') p[--n] = 0;
  return p;
}

/*
 * A resolved target: either (pfd, base) — a directory fd and one component that is neither
 * "." nor ".." — or (pfd, base = NULL) when the path names the directory fd itself / a
 * directory reached through "." / "..". `owned` tells whether pfd must be closed.
 */
typedef struct {
  int pfd;
  const char *base;
  int owned;
} Target;

static void tclose(Target *t) {
  if (t->owned && t->pfd >= 0) close(t->pfd);
  t->pfd = -1;
  t->owned = 0;
}

static int resolve(int dirfd, char *path, Target *t) {
  char *p = norm(path);
  t->pfd = dirfd;
  t->owned = 0;
  t->base = NULL;
  if (*p == 0) return 0;
  char *slash = strrchr(p, '/');
  char *base = slash ? slash + 1 : p;
  if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
    long fd = do_openat2(dirfd, p, O_PATH | O_DIRECTORY, 0, STRICT);
    if (fd < 0) return (int)fd;
    t->pfd = (int)fd;
    t->owned = 1;
    return 0;
  }
  if (slash != NULL) {
    *slash = 0;
    long fd = do_openat2(dirfd, *p ? p : ".", O_PATH | O_DIRECTORY, 0, STRICT);
    if (fd < 0) return (int)fd;
    t->pfd = (int)fd;
    t->owned = 1;
  }
  t->base = base;
  return 0;
}

/* O_PATH|O_NOFOLLOW fd of the target object (caller closes) */
static int target_fd(Target *t) {
  if (t->base == NULL) {
    if (t->owned) { t->owned = 0; return t->pfd; }
    int fd = fcntl(t->pfd, F_DUPFD_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
  }
  int fd = openat(t->pfd, t->base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

static void procpath(char *buf, size_t cap, int fd, const char *base) {
  if (base) snprintf(buf, cap, "/proc/self/fd/%d/%s", fd, base);
  else snprintf(buf, cap, "/proc/self/fd/%d", fd);
}

#define GET_ARGS(N)                                                              \
  size_t argc = N;                                                               \
  napi_value argv[N];                                                            \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL; \
  if (argc < N) { napi_throw_type_error(env, NULL, "fsops: too few arguments"); return NULL; }

#define PATH_ARG(i, var)                                                         \
  char var##_buf[PATH_MAX + 1];                                                  \
  {                                                                              \
    int ok_ = arg_str(env, argv[i], var##_buf, sizeof var##_buf, NULL);          \
    if (ok_ == 0) return NULL;                                                   \
    if (ok_ < 0) return num(env, -ENAMETOOLONG);                                 \
  }                                                                              \
  char *var = var##_buf;

static napi_value js_open_root(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  PATH_ARG(0, p);
  int fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
  return num(env, fd < 0 ? -errno : fd);
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  int dirfd, flags, mode, opts;
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  if (!arg_int(env, argv[2], &flags) || !arg_int(env, argv[3], &mode) || !arg_int(env, argv[4], &opts)) return NULL;
  p = norm(p);
  if (*p == 0) p = ".";
  int regonly = (opts & OPT_REGULAR_ONLY) && !(flags & O_PATH);
  int f = flags;
  if (regonly) f |= O_NONBLOCK;
  long fd = do_openat2(dirfd, p, f, mode, STRICT);
  if (fd < 0) return num(env, (double)fd);
  if (regonly) {
    struct stat st;
    if (fstat((int)fd, &st) < 0) { int e = errno; close((int)fd); return num(env, -e); }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) { close((int)fd); return num(env, -ENXIO); }
    if (!(flags & O_NONBLOCK)) {
      int fl = fcntl((int)fd, F_GETFL);
      if (fl >= 0) fcntl((int)fd, F_SETFL, fl & ~O_NONBLOCK);
    }
  } else if ((opts & OPT_REGULAR_ONLY) && (flags & O_PATH)) {
    struct stat st;
    if (fstat((int)fd, &st) < 0) { int e = errno; close((int)fd); return num(env, -e); }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) { close((int)fd); return num(env, -ENXIO); }
  }
  return num(env, (double)fd);
}

static int out_array(napi_env env, napi_value v, int64_t **data, size_t want) {
  bool is;
  napi_typedarray_type tt;
  size_t len, off;
  napi_value ab;
  void *d;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &tt, &len, &d, &ab, &off) != napi_ok ||
      (tt != napi_bigint64_array && tt != napi_biguint64_array) || len < want) {
    napi_throw_type_error(env, NULL, "fsops: BigInt64Array of the right length expected");
    return 0;
  }
  *data = d;
  return 1;
}

static void fill_stat(int64_t *o, const struct stat *st) {
  o[0] = (int64_t)st->st_dev; o[1] = (int64_t)st->st_ino; o[2] = (int64_t)st->st_nlink;
  o[3] = st->st_mode; o[4] = st->st_uid; o[5] = st->st_gid; o[6] = (int64_t)st->st_rdev;
  o[7] = st->st_size; o[8] = st->st_blksize; o[9] = st->st_blocks;
  o[10] = st->st_atim.tv_sec; o[11] = st->st_atim.tv_nsec;
  o[12] = st->st_mtim.tv_sec; o[13] = st->st_mtim.tv_nsec;
  o[14] = st->st_ctim.tv_sec; o[15] = st->st_ctim.tv_nsec;
}

static napi_value js_stat(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int dirfd;
  int64_t *o;
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  if (!out_array(env, argv[2], &o, 16)) return NULL;
  Target t;
  int r = resolve(dirfd, p, &t);
  if (r < 0) return num(env, r);
  struct stat st;
  r = t.base ? fstatat(t.pfd, t.base, &st, AT_SYMLINK_NOFOLLOW) : fstatat(t.pfd, "", &st, AT_EMPTY_PATH);
  r = r < 0 ? -errno : 0;
  tclose(&t);
  if (r == 0) fill_stat(o, &st);
  return num(env, r);
}

static napi_value js_fstat(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int fd;
  int64_t *o;
  if (!arg_int(env, argv[0], &fd) || !out_array(env, argv[1], &o, 16)) return NULL;
  struct stat st;
  if (fstatat(fd, "", &st, AT_EMPTY_PATH) < 0) return num(env, -errno);
  fill_stat(o, &st);
  return num(env, 0);
}

static napi_value js_statfs(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int dirfd;
  int64_t *o;
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  if (!out_array(env, argv[2], &o, 11)) return NULL;
  Target t;
  int r = resolve(dirfd, p, &t);
  if (r < 0) return num(env, r);
  int fd = target_fd(&t);
  tclose(&t);
  if (fd < 0) return num(env, fd);
  struct statfs s;
  r = fstatfs(fd, &s) < 0 ? -errno : 0;
  close(fd);
  if (r == 0) {
    int fsid[2];
    memcpy(fsid, &s.f_fsid, sizeof fsid);
    o[0] = s.f_type; o[1] = s.f_bsize; o[2] = (int64_t)s.f_blocks; o[3] = (int64_t)s.f_bfree;
    o[4] = (int64_t)s.f_bavail; o[5] = (int64_t)s.f_files; o[6] = (int64_t)s.f_ffree;
    o[7] = fsid[0]; o[8] = fsid[1]; o[9] = s.f_namelen; o[10] = s.f_frsize;
  }
  return num(env, r);
}

/* target for creating a new name: must have a base */
static int resolve_new(int dirfd, char *p, Target *t) {
  int r = resolve(dirfd, p, t);
  if (r < 0) return r;
  if (t->base == NULL) { tclose(t); return -EEXIST; }
  return 0;
}

static napi_value js_mkdir(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int dirfd, mode;
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  if (!arg_int(env, argv[2], &mode)) return NULL;
  Target t;
  int r = resolve_new(dirfd, p, &t);
  if (r < 0) return num(env, r);
  r = mkdirat(t.pfd, t.base, (mode_t)mode) < 0 ? -errno : 0;
  tclose(&t);
  return num(env, r);
}

static napi_value js_mknod(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  int dirfd, mode;
  int64_t rdev;
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  if (!arg_int(env, argv[2], &mode) || !arg_i64(env, argv[3], &rdev)) return NULL;
  Target t;
  int r = resolve_new(dirfd, p, &t);
  if (r < 0) return num(env, r);
  r = mknodat(t.pfd, t.base, (mode_t)mode, (dev_t)rdev) < 0 ? -errno : 0;
  tclose(&t);
  return num(env, r);
}

static napi_value js_symlink(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int dirfd;
  PATH_ARG(0, target);
  if (!arg_int(env, argv[1], &dirfd)) return NULL;
  PATH_ARG(2, p);
  Target t;
  int r = resolve_new(dirfd, p, &t);
  if (r < 0) return num(env, r);
  r = symlinkat(target, t.pfd, t.base) < 0 ? -errno : 0;
  tclose(&t);
  return num(env, r);
}

static napi_value js_link(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  int od, nd;
  if (!arg_int(env, argv[0], &od)) return NULL;
  PATH_ARG(1, op);
  if (!arg_int(env, argv[2], &nd)) return NULL;
  PATH_ARG(3, np);
  Target a, b;
  int r = resolve(od, op, &a);
  if (r < 0) return num(env, r);
  if (a.base == NULL) { tclose(&a); return num(env, -EPERM); } /* a directory */
  r = resolve_new(nd, np, &b);
  if (r < 0) { tclose(&a); return num(env, r); }
  r = linkat(a.pfd, a.base, b.pfd, b.base, 0) < 0 ? -errno : 0;
  tclose(&a);
  tclose(&b);
  return num(env, r);
}

static napi_value js_rename(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  int od, nd, flags;
  if (!arg_int(env, argv[0], &od)) return NULL;
  PATH_ARG(1, op);
  if (!arg_int(env, argv[2], &nd)) return NULL;
  PATH_ARG(3, np);
  if (!arg_int(env, argv[4], &flags)) return NULL;
  Target a, b;
  int r = resolve(od, op, &a);
  if (r < 0) return num(env, r);
  if (a.base == NULL) { tclose(&a); return num(env, -EBUSY); }
  r = resolve(nd, np, &b);
  if (r < 0) { tclose(&a); return num(env, r); }
  if (b.base == NULL) { tclose(&a); tclose(&b); return num(env, -EBUSY); }
  if (flags != 0) r = syscall(SYS_renameat2, a.pfd, a.base, b.pfd, b.base, (unsigned)flags) < 0 ? -errno : 0;
  else r = renameat(a.pfd, a.base, b.pfd, b.base) < 0 ? -errno : 0;
  tclose(&a);
  tclose(&b);
  return num(env, r);
}

static napi_value js_unlink(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int dirfd, flags;
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  if (!arg_int(env, argv[2], &flags)) return NULL;
  Target t;
  int r = resolve(dirfd, p, &t);
  if (r < 0) return num(env, r);
  if (t.base == NULL) { tclose(&t); return num(env, -EBUSY); }
  if (flags == -1) {
    struct stat st;
    if (fstatat(t.pfd, t.base, &st, AT_SYMLINK_NOFOLLOW) < 0) r = -errno;
    else r = unlinkat(t.pfd, t.base, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0 ? -errno : 0;
  } else {
    r = unlinkat(t.pfd, t.base, flags) < 0 ? -errno : 0;
  }
  tclose(&t);
  return num(env, r);
}

static napi_value js_chown(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  int dirfd, uid, gid;
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  if (!arg_int(env, argv[2], &uid) || !arg_int(env, argv[3], &gid)) return NULL;
  Target t;
  int r = resolve(dirfd, p, &t);
  if (r < 0) return num(env, r);
  r = (t.base ? fchownat(t.pfd, t.base, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW)
              : fchownat(t.pfd, "", (uid_t)uid, (gid_t)gid, AT_EMPTY_PATH)) < 0 ? -errno : 0;
  tclose(&t);
  return num(env, r);
}

/* chmod / truncate / utimes / xattrs on the object through /proc/self/fd/N of an O_PATH fd */
static int object_fd(int dirfd, char *p, struct stat *st) {
  Target t;
  int r = resolve(dirfd, p, &t);
  if (r < 0) return r;
  int fd = target_fd(&t);
  tclose(&t);
  if (fd < 0) return fd;
  if (fstatat(fd, "", st, AT_EMPTY_PATH) < 0) { int e = errno; close(fd); return -e; }
  return fd;
}

static napi_value js_chmod(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int dirfd, mode;
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  if (!arg_int(env, argv[2], &mode)) return NULL;
  struct stat st;
  int fd = object_fd(dirfd, p, &st);
  if (fd < 0) return num(env, fd);
  int r;
  if (S_ISLNK(st.st_mode)) r = -EOPNOTSUPP;
  else {
    char pp[64];
    procpath(pp, sizeof pp, fd, NULL);
    r = chmod(pp, (mode_t)mode) < 0 ? -errno : 0;
  }
  close(fd);
  return num(env, r);
}

static napi_value js_truncate(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int dirfd;
  int64_t len;
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  if (!arg_i64(env, argv[2], &len)) return NULL;
  struct stat st;
  int fd = object_fd(dirfd, p, &st);
  if (fd < 0) return num(env, fd);
  int r;
  if (S_ISDIR(st.st_mode)) r = -EISDIR;
  else if (!S_ISREG(st.st_mode)) r = -EINVAL;
  else {
    char pp[64];
    procpath(pp, sizeof pp, fd, NULL);
    r = truncate(pp, (off_t)len) < 0 ? -errno : 0;
  }
  close(fd);
  return num(env, r);
}

static napi_value js_utimes(napi_env env, napi_callback_info info) {
  GET_ARGS(6);
  int dirfd;
  int64_t v[4];
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  for (int i = 0; i < 4; i++) if (!arg_i64(env, argv[2 + i], &v[i])) return NULL;
  struct timespec ts[2] = { { (time_t)v[0], (long)v[1] }, { (time_t)v[2], (long)v[3] } };
  Target t;
  int r = resolve(dirfd, p, &t);
  if (r < 0) return num(env, r);
  if (t.base) {
    r = utimensat(t.pfd, t.base, ts, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
  } else {
    /* a directory reached as the dirfd itself: through its magic link */
    char pp[64];
    procpath(pp, sizeof pp, t.pfd, NULL);
    r = utimensat(AT_FDCWD, pp, ts, 0) < 0 ? -errno : 0;
  }
  tclose(&t);
  return num(env, r);
}

static napi_value js_readlink(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int dirfd;
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  Target t;
  int r = resolve(dirfd, p, &t);
  if (r < 0) return num(env, r);
  char buf[PATH_MAX + 1];
  ssize_t n = t.base ? readlinkat(t.pfd, t.base, buf, sizeof buf) : (errno = EINVAL, -1);
  r = n < 0 ? -errno : 0;
  tclose(&t);
  if (r < 0) return num(env, r);
  napi_value out;
  void *d;
  if (napi_create_buffer_copy(env, (size_t)n, buf, &d, &out) != napi_ok) return NULL;
  return out;
}

/* the path an l*xattr call uses for the target: /proc/self/fd/PFD/base (base not followed) or
 * /proc/self/fd/FD (an O_PATH fd of the object) — `fdOut` is closed by the caller */
static int xattr_path(int dirfd, char *p, char *pp, size_t cap, int *fdOut, int *follow) {
  Target t;
  int r = resolve(dirfd, p, &t);
  if (r < 0) return r;
  if (t.base) {
    int fd = t.owned ? t.pfd : fcntl(t.pfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) { int e = errno; tclose(&t); return -e; }
    t.owned = 0;
    procpath(pp, cap, fd, t.base);
    *fdOut = fd;
    *follow = 0;
  } else {
    int fd = target_fd(&t);
    tclose(&t);
    if (fd < 0) return fd;
    procpath(pp, cap, fd, NULL);
    *fdOut = fd;
    *follow = 1;
  }
  return 0;
}

static napi_value xattr_result(napi_env env, ssize_t n, size_t size, const char *buf) {
  if (n < 0) return num(env, -errno);
  if (size == 0) return num(env, (double)n);
  napi_value out;
  void *d;
  if (napi_create_buffer_copy(env, (size_t)n, buf, &d, &out) != napi_ok) return NULL;
  return out;
}

static napi_value js_getxattr(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  int dirfd, size;
  char name[XATTR_NAME_MAX + 2];
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  int ok = arg_str(env, argv[2], name, sizeof name, NULL);
  if (ok == 0) return NULL;
  if (ok < 0) return num(env, -ERANGE);
  if (!arg_int(env, argv[3], &size)) return NULL;
  if (size < 0 || size > XBUF_MAX) size = XBUF_MAX;
  char pp[PATH_MAX + 64];
  int fd, follow;
  int r = xattr_path(dirfd, p, pp, sizeof pp, &fd, &follow);
  if (r < 0) return num(env, r);
  char *buf = size ? malloc((size_t)size) : NULL;
  ssize_t n = follow ? getxattr(pp, name, buf, (size_t)size) : lgetxattr(pp, name, buf, (size_t)size);
  int e = errno;
  close(fd);
  errno = e;
  napi_value out = xattr_result(env, n, (size_t)size, buf);
  free(buf);
  return out;
}

static napi_value js_listxattr(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int dirfd, size;
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  if (!arg_int(env, argv[2], &size)) return NULL;
  if (size < 0 || size > XBUF_MAX) size = XBUF_MAX;
  char pp[PATH_MAX + 64];
  int fd, follow;
  int r = xattr_path(dirfd, p, pp, sizeof pp, &fd, &follow);
  if (r < 0) return num(env, r);
  char *buf = size ? malloc((size_t)size) : NULL;
  ssize_t n = follow ? listxattr(pp, buf, (size_t)size) : llistxattr(pp, buf, (size_t)size);
  int e = errno;
  close(fd);
  errno = e;
  napi_value out = xattr_result(env, n, (size_t)size, buf);
  free(buf);
  return out;
}

static napi_value js_setxattr(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  int dirfd, flags;
  char name[XATTR_NAME_MAX + 2];
  void *val;
  size_t vlen;
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  int ok = arg_str(env, argv[2], name, sizeof name, NULL);
  if (ok == 0) return NULL;
  if (ok < 0) return num(env, -ERANGE);
  if (!arg_bytes(env, argv[3], &val, &vlen) || !arg_int(env, argv[4], &flags)) return NULL;
  char pp[PATH_MAX + 64];
  int fd, follow;
  int r = xattr_path(dirfd, p, pp, sizeof pp, &fd, &follow);
  if (r < 0) return num(env, r);
  r = (follow ? setxattr(pp, name, val, vlen, flags) : lsetxattr(pp, name, val, vlen, flags)) < 0 ? -errno : 0;
  close(fd);
  return num(env, r);
}

static napi_value js_removexattr(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int dirfd;
  char name[XATTR_NAME_MAX + 2];
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  int ok = arg_str(env, argv[2], name, sizeof name, NULL);
  if (ok == 0) return NULL;
  if (ok < 0) return num(env, -ERANGE);
  char pp[PATH_MAX + 64];
  int fd, follow;
  int r = xattr_path(dirfd, p, pp, sizeof pp, &fd, &follow);
  if (r < 0) return num(env, r);
  r = (follow ? removexattr(pp, name) : lremovexattr(pp, name)) < 0 ? -errno : 0;
  close(fd);
  return num(env, r);
}

static napi_value js_getversion(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int dirfd;
  if (!arg_int(env, argv[0], &dirfd)) return NULL;
  PATH_ARG(1, p);
  char *q = norm(p);
  long fd = do_openat2(dirfd, *q ? q : ".", O_RDONLY | O_NONBLOCK | O_NOFOLLOW, 0, STRICT);
  if (fd < 0) return num(env, (double)fd);
  struct stat st;
  int r;
  if (fstat((int)fd, &st) < 0) r = -errno;
  else if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) r = -ENOTTY;
  else {
    unsigned int v = 0; /* the kernel writes an int: no stack garbage in the top half */
    r = ioctl((int)fd, FS_IOC_GETVERSION, &v) < 0 ? -errno : 0;
    if (r == 0) { close((int)fd); return num(env, (double)v); }
  }
  close((int)fd);
  return num(env, r);
}

struct linux_dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

static napi_value js_readdir(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int fd, max;
  int64_t off;
  if (!arg_int(env, argv[0], &fd) || !arg_i64(env, argv[1], &off) || !arg_int(env, argv[2], &max)) return NULL;
  if (lseek(fd, (off_t)off, SEEK_SET) < 0) return num(env, -errno);
  char buf[32768];
  napi_value arr;
  if (napi_create_array(env, &arr) != napi_ok) return NULL;
  uint32_t k = 1;
  int count = 0;
  int64_t next = off;
  while (max <= 0 || count < max) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n < 0 && errno == ENOENT) n = 0; /* a removed directory: empty (as glibc's readdir) */
    if (n < 0) return num(env, -errno);
    if (n == 0) break;
    for (long pos = 0; pos < n;) {
      struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + pos);
      pos += d->d_reclen;
      if (max > 0 && count >= max) {
        /* more than asked: resume right here next time */
        break;
      }
      napi_value name, ino, type, doff;
      void *dd;
      napi_create_buffer_copy(env, strlen(d->d_name), d->d_name, &dd, &name);
      napi_create_bigint_uint64(env, d->d_ino, &ino);
      napi_create_int32(env, d->d_type, &type);
      napi_create_bigint_int64(env, d->d_off, &doff);
      napi_set_element(env, arr, k++, name);
      napi_set_element(env, arr, k++, ino);
      napi_set_element(env, arr, k++, type);
      napi_set_element(env, arr, k++, doff);
      next = d->d_off;
      count++;
    }
  }
  napi_value nx;
  napi_create_bigint_int64(env, next, &nx);
  napi_set_element(env, arr, 0, nx);
  return arr;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int fd;
  if (!arg_int(env, argv[0], &fd)) return NULL;
  return num(env, close(fd) < 0 ? -errno : 0);
}

static napi_value js_listen_unix(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t len = 0;
  int ok = arg_str(env, argv[0], sa.sun_path, sizeof sa.sun_path, &len);
  if (ok == 0) return NULL;
  if (ok < 0 || len >= sizeof sa.sun_path - 1) return num(env, -ENAMETOOLONG);
  int backlog;
  if (!arg_int(env, argv[1], &backlog)) return NULL;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return num(env, -errno);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, backlog) < 0) {
    int e = errno;
    close(fd);
    return num(env, -e);
  }
  return num(env, fd);
}

static napi_value js_accept(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int fd;
  if (!arg_int(env, argv[0], &fd)) return NULL;
  int c;
  do c = accept4(fd, NULL, NULL, SOCK_CLOEXEC); while (c < 0 && errno == EINTR);
  return num(env, c < 0 ? -errno : c);
}

static napi_value js_set_blocking(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int fd;
  if (!arg_int(env, argv[0], &fd)) return NULL;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) return num(env, -errno);
  return num(env, 0);
}

static napi_value js_fs_type(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int fd;
  if (!arg_int(env, argv[0], &fd)) return NULL;
  struct statfs s;
  if (fstatfs(fd, &s) < 0) return num(env, -errno);
  return num(env, (double)(unsigned long)s.f_type);
}

static napi_value init(napi_env env, napi_value exports) {
#define F(name, fn) { name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL }
  napi_property_descriptor props[] = {
    F("openRoot", js_open_root), F("open", js_open), F("stat", js_stat), F("fstat", js_fstat),
    F("statfs", js_statfs), F("mkdir", js_mkdir), F("mknod", js_mknod), F("symlink", js_symlink),
    F("link", js_link), F("rename", js_rename), F("unlink", js_unlink), F("chown", js_chown),
    F("chmod", js_chmod), F("truncate", js_truncate), F("utimes", js_utimes),
    F("readlink", js_readlink), F("getxattr", js_getxattr), F("listxattr", js_listxattr),
    F("setxattr", js_setxattr), F("removexattr", js_removexattr), F("getversion", js_getversion),
    F("readdir", js_readdir), F("close", js_close), F("listenUnix", js_listen_unix),
    F("accept", js_accept), F("setBlocking", js_set_blocking), F("fsType", js_fs_type),
  };
#undef F
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
