/* ws.h: the WebSocket CDP transport (lc_transport), over libwebsockets on the engine's loop,
 * for a browser someone else runs (--connect ws://HOST:PORT/devtools/browser/...).
 * Owns: the lws context (one per engine) and each connection's receive buffer and send queue.
 * Messages are delivered whole (lws hands them over in chunks; they are joined here).
 * Callbacks run from lws callbacks: they must not run Lua (ARCHITECTURE.md, invariant 4). */
#ifndef LC_WS_H
#define LC_WS_H

#include <stddef.h>
#include <uv.h>

#include "transport.h"

typedef struct lc_ws_ctx lc_ws_ctx;

/* One per engine, on a loop the caller owns. Destroyed by lc_ws_ctx_destroy, which must be
 * called twice around a final uv_run (lws frees its loop resources in a second pass on a foreign loop). */
lc_ws_ctx *lc_ws_ctx_new(uv_loop_t *loop, char **err);
void lc_ws_ctx_destroy(lc_ws_ctx *ctx);
void lc_ws_ctx_destroy_finish(lc_ws_ctx *ctx);
/* The lws context itself, for a server vhost on the same context (luacrawl serve). */
struct lws_context;
struct lws_context *lc_ws_lws(lc_ws_ctx *ctx);

typedef struct lc_ws_args {
  lc_ws_ctx *ctx;
  const char *url; /* ws://HOST:PORT/PATH (copied) */
} lc_ws_args;

/* Checks a --connect URL: ws://HOST:PORT/PATH with a port in 1..65535 and a path. Returns 0,
 * or -1 with *why set to a static reason. */
int lc_ws_url_check(const char *url, const char **why);

/* An lc_transport_open_fn: arg is an lc_ws_args. Starts connecting; on_open fires once the
 * upgrade is done, on_close if it fails. Released by lc_transport_close (exactly once); the
 * memory goes when lws destroys the socket. */
lc_transport *lc_ws_open(void *arg, const lc_transport_cbs *cbs, char **err);

#endif
