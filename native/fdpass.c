/*
 * fdpass: Unix stream sockets with descriptor passing (SCM_RIGHTS) for Node, node-api only.
 *
 * Everything is non-blocking; readiness comes from a libuv poll handle on Node's own loop
 * (napi_get_uv_event_loop), and the JS callback runs through napi_make_callback, so promise
 * jobs queued by it run right after it as for any other I/O callback. The event loop is never
 * blocked: socket calls use MSG_DONTWAIT / O_NONBLOCK and report -EAGAIN.
 *
 * Results are numbers: >= 0 on success, a negative errno (Linux numbering) on failure.
 *
 *   socketpair()                     → [fdA, fdB] | -errno   (both blocking, close-on-exec)
 *   connectUnix(path)                → fd | -errno            (non-blocking, close-on-exec)
 *   setNonBlocking(fd, on)           → 0 | -errno
 *   send(fd, u8, fds?)               → bytes sent | -errno   (sendmsg, MSG_DONTWAIT|MSG_NOSIGNAL,
 *                                                              fds attached as SCM_RIGHTS)
 *   recv(fd, u8, maxFds)             → [n | -errno, msgFlags, ...fds]  (recvmsg, MSG_DONTWAIT |
 *                                                              MSG_CMSG_CLOEXEC; n = 0 is EOF)
 *   close(fd)                        → 0 | -errno
 *   pollStart(fd, events, cb)        → handle; cb(status, events) on readiness (1 = readable,
 *                                       2 = writable; status < 0 = a libuv error)
 *   pollUpdate(handle, events)       → 0 | -errno   (events 0 stops watching)
 *   pollRef(handle, on)              → undefined    (whether the handle keeps the loop alive)
 *   pollClose(handle)                → undefined    (idempotent; frees once libuv is done)
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef NODE_GYP_MODULE_NAME
#define NODE_GYP_MODULE_NAME fdpass
#endif

#define MAX_FDS 16

#define CHECK(call)                                                              \
  do {                                                                           \
    if ((call) != napi_ok) {                                                     \
      napi_throw_error(env, NULL, "fdpass: node-api call failed: " #call);       \
      return NULL;                                                               \
    }                                                                            \
  } while (0)

static napi_value num(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

static int arg_int(napi_env env, napi_value v, int *out) {
  int32_t i;
  if (napi_get_value_int32(env, v, &i) != napi_ok) {
    napi_throw_type_error(env, NULL, "fdpass: integer argument expected");
    return 0;
  }
  *out = i;
  return 1;
}

static int arg_bytes(napi_env env, napi_value v, void **data, size_t *len) {
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &t, len, data, &ab, &off) != napi_ok || t != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "fdpass: Uint8Array argument expected");
    return 0;
  }
  return 1;
}

static napi_value js_socketpair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return num(env, -errno);
  napi_value arr;
  CHECK(napi_create_array_with_length(env, 2, &arr));
  CHECK(napi_set_element(env, arr, 0, num(env, sv[0])));
  CHECK(napi_set_element(env, arr, 1, num(env, sv[1])));
  return arr;
}

static napi_value js_connect(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t len = 0;
  if (argc < 1 ||
      napi_get_value_string_utf8(env, argv[0], sa.sun_path, sizeof sa.sun_path, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "fdpass: path string expected");
    return NULL;
  }
  if (len == 0 || len >= sizeof sa.sun_path - 1) return num(env, -ENAMETOOLONG);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return num(env, -errno);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno == EINPROGRESS ? EAGAIN : errno;
    close(fd);
    return num(env, -e);
  }
  return num(env, fd);
}

static napi_value js_set_nonblocking(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd;
  bool on = true;
  if (argc < 1 || !arg_int(env, argv[0], &fd)) return NULL;
  if (argc > 1) napi_get_value_bool(env, argv[1], &on);
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return num(env, -errno);
  fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  if (fcntl(fd, F_SETFL, fl) < 0) return num(env, -errno);
  return num(env, 0);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd;
  if (argc < 1 || !arg_int(env, argv[0], &fd)) return NULL;
  /* Linux: the descriptor is released even when close reports EINTR/EIO; never retry */
  return num(env, close(fd) < 0 ? -errno : 0);
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd;
  void *data;
  size_t len;
  if (argc < 2 || !arg_int(env, argv[0], &fd) || !arg_bytes(env, argv[1], &data, &len)) return NULL;
  int fds[MAX_FDS];
  uint32_t nfds = 0;
  if (argc > 2) {
    napi_valuetype vt;
    CHECK(napi_typeof(env, argv[2], &vt));
    if (vt != napi_undefined && vt != napi_null) {
      bool isArr;
      CHECK(napi_is_array(env, argv[2], &isArr));
      if (!isArr) {
        napi_throw_type_error(env, NULL, "fdpass: fds must be an array");
        return NULL;
      }
      CHECK(napi_get_array_length(env, argv[2], &nfds));
      if (nfds > MAX_FDS) return num(env, -EINVAL);
      for (uint32_t i = 0; i < nfds; i++) {
        napi_value e;
        CHECK(napi_get_element(env, argv[2], i, &e));
        if (!arg_int(env, e, &fds[i])) return NULL;
      }
    }
  }
  struct iovec iov = { data, len };
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  union { char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)]; struct cmsghdr align; } u;
  if (nfds > 0) {
    if (len == 0) return num(env, -EINVAL); /* SCM_RIGHTS needs at least one data byte */
    memset(&u, 0, sizeof u);
    msg.msg_control = u.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  return num(env, n < 0 ? -errno : (double)n);
}

static napi_value js_recv(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd, maxFds = 1;
  void *data;
  size_t len;
  if (argc < 2 || !arg_int(env, argv[0], &fd) || !arg_bytes(env, argv[1], &data, &len)) return NULL;
  if (argc > 2 && !arg_int(env, argv[2], &maxFds)) return NULL;
  if (maxFds < 0) maxFds = 0;
  if (maxFds > MAX_FDS) maxFds = MAX_FDS;
  struct iovec iov = { data, len };
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  union { char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)]; struct cmsghdr align; } u;
  memset(&u, 0, sizeof u);
  if (maxFds > 0) {
    msg.msg_control = u.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * maxFds);
  }
  ssize_t n;
  do n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
  int got[MAX_FDS * 2];
  int ngot = 0;
  if (n >= 0) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k && ngot < MAX_FDS * 2; i++) memcpy(&got[ngot++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
  }
  napi_value arr;
  CHECK(napi_create_array_with_length(env, 2 + ngot, &arr));
  CHECK(napi_set_element(env, arr, 0, num(env, n < 0 ? -errno : (double)n)));
  CHECK(napi_set_element(env, arr, 1, num(env, n < 0 ? 0 : msg.msg_flags)));
  for (int i = 0; i < ngot; i++) CHECK(napi_set_element(env, arr, 2 + i, num(env, got[i])));
  return arr;
}

/* ---- poll handles --------------------------------------------------------------------------- */

typedef struct Poll {
  uv_poll_t handle;
  napi_env env;
  napi_ref cb;
  napi_async_context ctx;
  int closed;
  struct Poll *next, *prev; /* live list, for the env cleanup hook */
} Poll;

static Poll *live = NULL;

static void on_closed(uv_handle_t *h) { free(h->data); }

static void poll_close(Poll *p) {
  if (p->closed) return;
  p->closed = 1;
  if (p->prev) p->prev->next = p->next; else live = p->next;
  if (p->next) p->next->prev = p->prev;
  uv_poll_stop(&p->handle);
  napi_delete_reference(p->env, p->cb);
  napi_async_destroy(p->env, p->ctx);
  uv_close((uv_handle_t *)&p->handle, on_closed);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  Poll *p = h->data;
  if (p->closed) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[2], result;
  if (napi_get_reference_value(env, p->cb, &cb) == napi_ok && cb != NULL) {
    napi_get_global(env, &recv);
    napi_create_int32(env, status, &argv[0]);
    napi_create_int32(env, events, &argv[1]);
    if (napi_make_callback(env, p->ctx, recv, cb, 2, argv, &result) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void cleanup_hook(void *arg) {
  napi_env env = arg;
  Poll *p = live;
  while (p != NULL) {
    Poll *next = p->next;
    if (p->env == env) poll_close(p);
    p = next;
  }
}

static void finalize_poll(napi_env env, void *data, void *hint) {
  (void)env; (void)data; (void)hint;
  /* The JS wrapper is gone; the handle lives on until pollClose (or env cleanup). */
}

static Poll *get_poll(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, NULL, "fdpass: poll handle expected");
    return NULL;
  }
  return p;
}

static int uv_events(int ev) {
  return ((ev & 1) ? UV_READABLE : 0) | ((ev & 2) ? UV_WRITABLE : 0);
}

static void on_poll_translated(uv_poll_t *h, int status, int events) {
  on_poll(h, status, ((events & UV_READABLE) ? 1 : 0) | ((events & UV_WRITABLE) ? 2 : 0) |
                         ((events & UV_DISCONNECT) ? 1 : 0));
}

static napi_value js_poll_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd, ev;
  if (argc < 3 || !arg_int(env, argv[0], &fd) || !arg_int(env, argv[1], &ev)) return NULL;
  napi_valuetype vt;
  CHECK(napi_typeof(env, argv[2], &vt));
  if (vt != napi_function) {
    napi_throw_type_error(env, NULL, "fdpass: callback expected");
    return NULL;
  }
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  Poll *p = calloc(1, sizeof *p);
  if (p == NULL) {
    napi_throw_error(env, NULL, "fdpass: out of memory");
    return NULL;
  }
  int r = uv_poll_init(loop, &p->handle, fd);
  if (r != 0) {
    free(p);
    napi_throw_error(env, NULL, uv_strerror(r));
    return NULL;
  }
  p->handle.data = p;
  p->env = env;
  napi_value name, res;
  napi_create_string_utf8(env, "fdpass.poll", NAPI_AUTO_LENGTH, &name);
  napi_create_object(env, &res);
  if (napi_create_reference(env, argv[2], 1, &p->cb) != napi_ok ||
      napi_async_init(env, res, name, &p->ctx) != napi_ok) {
    uv_close((uv_handle_t *)&p->handle, on_closed);
    napi_throw_error(env, NULL, "fdpass: poll setup failed");
    return NULL;
  }
  p->next = live;
  if (live) live->prev = p;
  live = p;
  if (ev != 0) {
    r = uv_poll_start(&p->handle, uv_events(ev), on_poll_translated);
    if (r != 0) {
      poll_close(p);
      napi_throw_error(env, NULL, uv_strerror(r));
      return NULL;
    }
  }
  napi_value ext;
  CHECK(napi_create_external(env, p, finalize_poll, NULL, &ext));
  return ext;
}

static napi_value js_poll_update(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int ev;
  if (argc < 2) return NULL;
  Poll *p = get_poll(env, argv[0]);
  if (p == NULL || !arg_int(env, argv[1], &ev)) return NULL;
  if (p->closed) return num(env, -EBADF);
  int r = ev == 0 ? uv_poll_stop(&p->handle) : uv_poll_start(&p->handle, uv_events(ev), on_poll_translated);
  return num(env, r); /* libuv errors are negative errnos on Unix */
}

static napi_value js_poll_ref(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool on = true;
  if (argc < 2) return NULL;
  Poll *p = get_poll(env, argv[0]);
  if (p == NULL) return NULL;
  napi_get_value_bool(env, argv[1], &on);
  if (!p->closed) {
    if (on) uv_ref((uv_handle_t *)&p->handle); else uv_unref((uv_handle_t *)&p->handle);
  }
  return NULL;
}

static napi_value js_poll_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return NULL;
  Poll *p = get_poll(env, argv[0]);
  if (p != NULL) poll_close(p);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "socketpair", NULL, js_socketpair, NULL, NULL, NULL, napi_enumerable, NULL },
    { "connectUnix", NULL, js_connect, NULL, NULL, NULL, napi_enumerable, NULL },
    { "setNonBlocking", NULL, js_set_nonblocking, NULL, NULL, NULL, napi_enumerable, NULL },
    { "send", NULL, js_send, NULL, NULL, NULL, napi_enumerable, NULL },
    { "recv", NULL, js_recv, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pollStart", NULL, js_poll_start, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pollUpdate", NULL, js_poll_update, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pollRef", NULL, js_poll_ref, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pollClose", NULL, js_poll_close, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  napi_add_env_cleanup_hook(env, cleanup_hook, env);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
