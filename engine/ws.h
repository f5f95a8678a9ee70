/* ws.h: WebSocket client connections over libwebsockets on the engine's libuv loop.
 * Owns: the lws context (one per engine) and each connection's receive buffer and send queue.
 * Messages are delivered whole (lws hands them over in chunks; they are joined here).
 * Callbacks run from lws callbacks: they must not run Lua (STYLE rule 7). */
#ifndef LC_WS_H
#define LC_WS_H

#include <stddef.h>
#include <uv.h>

typedef struct lc_ws_ctx lc_ws_ctx;
typedef struct lc_ws lc_ws;

typedef struct lc_ws_cbs {
  void (*on_open)(void *ud);
  /* A whole message. `msg` is writable and NUL-terminated; it is only valid during the call. */
  void (*on_message)(void *ud, char *msg, size_t len);
  /* The connection failed or closed (not called after lc_ws_close). `why` is a short reason. */
  void (*on_close)(void *ud, const char *why);
} lc_ws_cbs;

/* One per engine, on a loop the caller owns. Destroyed by lc_ws_ctx_destroy, which must be
 * called twice around a final uv_run (see NOTES: lws teardown on a foreign loop). */
lc_ws_ctx *lc_ws_ctx_new(uv_loop_t *loop, char **err);
void lc_ws_ctx_destroy(lc_ws_ctx *ctx);
void lc_ws_ctx_destroy_finish(lc_ws_ctx *ctx);

/* Connect to ws://host:port/path. Returns a connection or NULL with *err (malloc'ed).
 * Released by lc_ws_close (exactly once); the memory goes when lws destroys the socket. */
lc_ws *lc_ws_connect(lc_ws_ctx *ctx, const char *url, const lc_ws_cbs *cbs, void *ud, char **err);
/* Queue one text message (copied). Returns 0, or -1 when the connection is closing/closed. */
int lc_ws_send(lc_ws *ws, const char *msg, size_t len);
/* Close the connection; no callback fires after this. */
void lc_ws_close(lc_ws *ws);

#endif
