/* transport.h: how the CDP layer reaches a browser, whatever carries the bytes.
 * Owns nothing itself: it is the interface (a small vtable) that each transport implements.
 *   - pipe.c: the browser we launch, over --remote-debugging-pipe (fds 3 and 4 of the child,
 *     NUL-separated JSON on a socketpair): no port exists, nobody else can connect.
 *   - ws.c:   a browser someone else runs, over a WebSocket (--connect ws://HOST:PORT/...).
 * A transport delivers whole messages, in order, and reports the end of the connection once.
 * Its callbacks run from libuv/libwebsockets callbacks: they never run Lua (ARCHITECTURE.md, invariant 4), and
 * they never fire during the call that created the transport. */
#ifndef LC_TRANSPORT_H
#define LC_TRANSPORT_H

#include <stddef.h>

typedef struct lc_transport lc_transport;

typedef struct lc_transport_cbs {
  /* The connection is usable; fires once, before any message. */
  void (*on_open)(void *ud);
  /* A whole message. `msg` is writable and NUL-terminated; it is only valid during the call. */
  void (*on_message)(void *ud, char *msg, size_t len);
  /* The connection failed or closed (never after close()). `why` is a short reason. */
  void (*on_close)(void *ud, const char *why);
  void *ud;
  /* Optional. A message over the transport's cap was dropped: `head` holds its first bytes
   * (enough to find a reply's "id"), `total` its length. Without it, such a message ends the
   * connection. */
  void (*on_oversize)(void *ud, const char *head, size_t head_len, size_t total);
} lc_transport_cbs;

/* How many first bytes of a dropped message on_oversize gets. */
#define LC_TRANSPORT_HEAD 64

typedef struct lc_transport_ops {
  const char *name; /* "pipe", "websocket": for messages */
  /* Queue one message (copied). Returns 0, or a negative error when closing/closed. */
  int (*send)(lc_transport *t, const char *msg, size_t len);
  /* Release the transport: no callback fires after this; the memory goes once the loop has
   * closed the handles. Exactly once per transport. */
  void (*close)(lc_transport *t);
} lc_transport_ops;

/* Every transport's struct starts with this. */
struct lc_transport {
  const lc_transport_ops *ops;
  lc_transport_cbs cbs;
};

/* A constructor, for the CDP layer (and for fakes in tests): makes a transport that reports to
 * cbs, or returns NULL with *err (malloc'ed). `arg` is the constructor's own. */
typedef lc_transport *(*lc_transport_open_fn)(void *arg, const lc_transport_cbs *cbs, char **err);

static inline int lc_transport_send(lc_transport *t, const char *msg, size_t len) {
  return t->ops->send(t, msg, len);
}
static inline void lc_transport_close(lc_transport *t) { t->ops->close(t); }

#endif
