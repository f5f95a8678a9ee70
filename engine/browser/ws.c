/* ws.c: libwebsockets client glue on a foreign libuv loop (see ws.h).
 * Facts this relies on: no Origin header (Chromium refuses the
 * upgrade otherwise), messages arrive as one frame in rx_buffer_size chunks, one lws_write per
 * WRITEABLE callback, keepalive pings detect a hung (stopped) browser. */
#include "ws.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define WS_RX_CHUNK 65536
#define WS_MAX_MESSAGE (512u * 1024 * 1024)

struct lc_ws_ctx {
  struct lws_context *lws;
  uv_loop_t *loop;
};

typedef struct ws_msg {
  struct ws_msg *next;
  size_t len;
  unsigned char data[]; /* LWS_PRE bytes of headroom, then the message */
} ws_msg;

typedef struct lc_ws {
  lc_transport base; /* first: an lc_ws is an lc_transport */
  struct lws *wsi;
  char *rx;
  size_t rx_len, rx_cap;
  ws_msg *head, *tail;
  int closing;    /* the owner called lc_ws_close: no more callbacks */
  int dead;       /* lws reported close or error */
  int connecting; /* inside lc_ws_open: nothing is reported, nothing freed */
  char why[256];  /* the first reason the connection ended */
} lc_ws;

static void ws_free_queue(lc_ws *ws) {
  while (ws->head) {
    ws_msg *m = ws->head;
    ws->head = m->next;
    free(m);
  }
  ws->tail = NULL;
}

static void ws_free(lc_ws *ws) {
  ws_free_queue(ws);
  free(ws->rx);
  free(ws);
}

static void ws_report_close(lc_ws *ws, const char *why) {
  if (ws->dead) return;
  ws->dead = 1;
  snprintf(ws->why, sizeof ws->why, "%s", why);
  if (ws->connecting) return;
  if (!ws->closing && ws->base.cbs.on_close) ws->base.cbs.on_close(ws->base.cbs.ud, why);
}

static int ws_rx_append(lc_ws *ws, const void *in, size_t len) {
  if (ws->rx_len + len + 1 > ws->rx_cap) {
    size_t cap = ws->rx_cap ? ws->rx_cap : WS_RX_CHUNK;
    while (cap < ws->rx_len + len + 1) cap *= 2;
    if (cap > WS_MAX_MESSAGE) return -1;
    char *p = realloc(ws->rx, cap);
    if (!p) return -1;
    ws->rx = p;
    ws->rx_cap = cap;
  }
  memcpy(ws->rx + ws->rx_len, in, len);
  ws->rx_len += len;
  ws->rx[ws->rx_len] = 0;
  return 0;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len) {
  lc_ws *ws = user;
  switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      if (ws && !ws->closing && ws->base.cbs.on_open) ws->base.cbs.on_open(ws->base.cbs.ud);
      if (ws && ws->head) lws_callback_on_writable(wsi);
      break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
      if (!ws) break;
      char why[256];
      snprintf(why, sizeof why, "connection failed: %s", in ? (const char *)in : "unknown");
      ws_report_close(ws, why);
      break;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE:
      if (!ws || ws->closing) break;
      if (ws_rx_append(ws, in, len) < 0) {
        ws_report_close(ws, "message too large or out of memory");
        return -1;
      }
      if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
        size_t n = ws->rx_len;
        ws->rx_len = 0;
        if (ws->base.cbs.on_message) ws->base.cbs.on_message(ws->base.cbs.ud, ws->rx, n);
        /* A huge message leaves a huge buffer: give it back rather than keep it for life. */
        if (ws->rx_cap > 4 * WS_RX_CHUNK) {
          free(ws->rx);
          ws->rx = NULL;
          ws->rx_cap = 0;
        }
      }
      break;
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
      if (!ws) break;
      if (ws->closing) return -1;
      ws_msg *m = ws->head;
      if (!m) break;
      int n = lws_write(wsi, m->data + LWS_PRE, m->len, LWS_WRITE_TEXT);
      if (n < (int)m->len) {
        ws_report_close(ws, "write failed");
        return -1;
      }
      ws->head = m->next;
      if (!ws->head) ws->tail = NULL;
      free(m);
      if (ws->head) lws_callback_on_writable(wsi);
      break;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
      if (ws) ws_report_close(ws, "connection closed");
      break;
    case LWS_CALLBACK_WSI_DESTROY:
      if (ws) {
        ws_report_close(ws, "connection closed");
        ws->wsi = NULL;
        if (ws->closing && !ws->connecting) ws_free(ws);
      }
      break;
    default:
      break;
  }
  return 0;
}

static const struct lws_protocols ws_protocols[] = {
    {"luacrawl-cdp", ws_callback, 0, WS_RX_CHUNK, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Ping after 3 s of silence, hang up after 8 s without an answer: a stopped browser is found. */
static const lws_retry_bo_t ws_keepalive = {
    .secs_since_valid_ping = 3,
    .secs_since_valid_hangup = 8,
};

lc_ws_ctx *lc_ws_ctx_new(uv_loop_t *loop, char **err) {
  lc_ws_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) {
    *err = strdup("out of memory");
    return NULL;
  }
  lws_set_log_level(LLL_ERR, NULL);
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  void *loops[1] = {loop};
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = ws_protocols;
  info.options = LWS_SERVER_OPTION_LIBUV;
  info.foreign_loops = loops;
  info.retry_and_idle_policy = &ws_keepalive;
  info.gid = -1;
  info.uid = -1;
  ctx->loop = loop;
  ctx->lws = lws_create_context(&info);
  if (!ctx->lws) {
    free(ctx);
    *err = strdup("cannot create the libwebsockets context (is libwebsockets-evlib-uv installed?)");
    return NULL;
  }
  return ctx;
}

void lc_ws_ctx_destroy(lc_ws_ctx *ctx) {
  if (ctx && ctx->lws) lws_context_destroy(ctx->lws);
}

struct lws_context *lc_ws_lws(lc_ws_ctx *ctx) { return ctx ? ctx->lws : NULL; }

void lc_ws_ctx_destroy_finish(lc_ws_ctx *ctx) {
  if (!ctx) return;
  if (ctx->lws) lws_context_destroy(ctx->lws);
  free(ctx);
}

/* Splits ws://HOST:PORT/PATH; returns 0 or -1 with *why. */
static int ws_parse(const char *url, char *host, size_t hn, int *port, char *path, size_t pn,
                    const char **why) {
  static const char scheme[] = "ws://";
  if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0) {
    *why = "must start with ws://";
    return -1;
  }
  const char *h = url + sizeof scheme - 1;
  size_t hl = strcspn(h, ":/");
  if (hl == 0 || hl >= hn) {
    *why = "has no host (or one too long)";
    return -1;
  }
  if (h[hl] != ':') {
    *why = "needs a port (ws://HOST:PORT/devtools/browser/ID)";
    return -1;
  }
  const char *pp = h + hl + 1;
  long pv = 0;
  size_t digits = 0;
  while (pp[digits] >= '0' && pp[digits] <= '9' && digits < 6) pv = pv * 10 + (pp[digits++] - '0');
  if (digits == 0 || pv < 1 || pv > 65535 || (pp[digits] != '/' && pp[digits] != '\0')) {
    *why = "has a bad port";
    return -1;
  }
  const char *rest = pp + digits;
  if (*rest != '/' || strlen(rest) >= pn) {
    *why = "needs a path (ws://HOST:PORT/devtools/browser/ID), of at most 511 bytes";
    return -1;
  }
  for (const char *c = rest; *c; c++) {
    if ((unsigned char)*c <= ' ' || *c == 0x7f) {
      *why = "has a space or control character";
      return -1;
    }
  }
  memcpy(host, h, hl);
  host[hl] = '\0';
  *port = (int)pv;
  memcpy(path, rest, strlen(rest) + 1);
  return 0;
}

int lc_ws_url_check(const char *url, const char **why) {
  char host[256], path[512];
  int port;
  return ws_parse(url, host, sizeof host, &port, path, sizeof path, why);
}

static int ws_send(lc_transport *t, const char *msg, size_t len);
static void ws_close(lc_transport *t);
static const lc_transport_ops ws_ops = {"websocket", ws_send, ws_close};

lc_transport *lc_ws_open(void *arg, const lc_transport_cbs *cbs, char **err) {
  const lc_ws_args *a = arg;
  char host[256], path[512];
  int port = 0;
  const char *why = NULL;
  if (ws_parse(a->url, host, sizeof host, &port, path, sizeof path, &why) != 0) {
    char buf[300];
    snprintf(buf, sizeof buf, "bad WebSocket URL: %s", why);
    *err = strdup(buf);
    return NULL;
  }
  lc_ws *ws = calloc(1, sizeof *ws);
  if (!ws) {
    *err = strdup("out of memory");
    return NULL;
  }
  ws->base.ops = &ws_ops;
  ws->base.cbs = *cbs;
  struct lws_client_connect_info ci;
  memset(&ci, 0, sizeof ci);
  ci.context = a->ctx->lws;
  ci.address = host;
  ci.port = port;
  ci.path = path;
  ci.host = host;
  ci.origin = NULL;
  ci.protocol = NULL;
  ci.local_protocol_name = "luacrawl-cdp";
  ci.ietf_version_or_minus_one = -1;
  ci.userdata = ws;
  ci.pwsi = &ws->wsi;
  ci.retry_and_idle_policy = &ws_keepalive;
  ws->connecting = 1; /* a synchronous failure is recorded, not reported */
  struct lws *wsi = lws_client_connect_via_info(&ci);
  ws->connecting = 0;
  if (wsi && ws->wsi && !ws->dead) return &ws->base;
  char buf[300];
  snprintf(buf, sizeof buf, "cannot connect to %s: %s", a->url,
           ws->why[0] ? ws->why : "the WebSocket connection did not start");
  *err = strdup(buf);
  if (wsi && ws->wsi) {
    ws->closing = 1; /* lws still holds it: freed when it destroys the socket */
    lws_set_timeout(ws->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
  } else {
    ws_free(ws);
  }
  return NULL;
}

static int ws_send(lc_transport *t, const char *msg, size_t len) {
  lc_ws *ws = (lc_ws *)t;
  if (!ws || ws->closing || ws->dead || !ws->wsi) return -1;
  ws_msg *m = malloc(sizeof *m + LWS_PRE + len);
  if (!m) return -1;
  m->next = NULL;
  m->len = len;
  memcpy(m->data + LWS_PRE, msg, len);
  if (ws->tail)
    ws->tail->next = m;
  else
    ws->head = m;
  ws->tail = m;
  lws_callback_on_writable(ws->wsi);
  return 0;
}

static void ws_close(lc_transport *t) {
  lc_ws *ws = (lc_ws *)t;
  ws->closing = 1;
  ws_free_queue(ws);
  if (!ws->wsi) {
    ws_free(ws);
    return;
  }
  lws_set_timeout(ws->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}
