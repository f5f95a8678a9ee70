/* cdp.c: CDP commands, deadlines and event routing over one transport (see cdp.h). */
#include "cdp.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"

#define CDP_SWEEP_MS 20

typedef struct cdp_cmd {
  struct cdp_cmd *next, *prev;
  uint64_t id;
  uint64_t deadline_ms;
  lc_cdp_reply_fn fn;
  void *ud;
  char session[64];
  size_t max_reply; /* 0: no cap on the reply's length */
  int failed;       /* queued to fail on the next sweep (could not send) */
  char method[64];  /* for messages */
} cdp_cmd;

struct lc_cdp {
  uv_loop_t *loop;
  lc_transport *t;
  lc_cdp_cbs cbs;
  uint64_t next_id;
  cdp_cmd pending; /* sentinel of a doubly linked list, oldest first */
  size_t n_pending;
  uv_timer_t *sweep; /* malloc'ed: freed in its close callback */
  int open, closed;
  uv_timer_t *keepalive; /* malloc'ed, NULL until lc_cdp_set_keepalive */
  int keepalive_idle_ms, keepalive_timeout_ms;
  uint64_t last_rx_ms; /* loop time of the last message received */
  int ping_in_flight;
};

static void cmd_unlink(lc_cdp *c, cdp_cmd *m) {
  m->prev->next = m->next;
  m->next->prev = m->prev;
  c->n_pending--;
}

static cdp_cmd *cmd_find(lc_cdp *c, uint64_t id) {
  for (cdp_cmd *m = c->pending.next; m != &c->pending; m = m->next)
    if (m->id == id) return m;
  return NULL;
}

/* Complete a command: unlink it first, so the callback may send or cancel freely. */
static void cmd_finish(lc_cdp *c, cdp_cmd *m, int err, char *result, size_t len) {
  cmd_unlink(c, m);
  lc_cdp_reply_fn fn = m->fn;
  void *ud = m->ud;
  free(m);
  if (fn) fn(ud, err, result, len);
}

static void cmd_fail(lc_cdp *c, cdp_cmd *m, int err, const char *detail) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s: %s", m->method, detail ? detail : "");
  cmd_finish(c, m, err, msg, strlen(msg));
}

static void fail_all(lc_cdp *c, const char *why) {
  while (c->pending.next != &c->pending) cmd_fail(c, c->pending.next, LC_CDP_ECLOSED, why);
}

static void sweep_cb(uv_timer_t *t) {
  lc_cdp *c = t->data;
  uint64_t now = uv_now(c->loop);
  /* Restart the scan after each completion: a callback may change the list. */
  for (;;) {
    cdp_cmd *due = NULL;
    for (cdp_cmd *m = c->pending.next; m != &c->pending; m = m->next) {
      if (m->failed || now >= m->deadline_ms) {
        due = m;
        break;
      }
    }
    if (!due) break;
    if (due->failed)
      cmd_fail(c, due, LC_CDP_ESEND, "could not send the command");
    else
      cmd_fail(c, due, LC_CDP_ETIMEOUT, "timed out waiting for the browser");
  }
  if (c->n_pending == 0) uv_timer_stop(t);
}

static void on_transport_open(void *ud) {
  lc_cdp *c = ud;
  c->open = 1;
  if (c->cbs.on_open) c->cbs.on_open(c->cbs.ud);
}

static void on_transport_close(void *ud, const char *why) {
  lc_cdp *c = ud;
  if (c->closed) return;
  c->closed = 1;
  c->open = 0;
  char msg[300];
  snprintf(msg, sizeof msg, "the browser connection was lost (crashed or killed): %s",
           why ? why : "connection closed");
  fail_all(c, msg);
  if (c->cbs.on_closed) c->cbs.on_closed(c->cbs.ud, why ? why : "connection closed");
}

static void handle_reply(lc_cdp *c, int64_t id, char *msg, size_t len) {
  cdp_cmd *m = cmd_find(c, (uint64_t)id);
  if (!m) return; /* cancelled, or answered after its deadline */
  if (m->max_reply && len > m->max_reply) {
    /* Refused before its payload is looked at: this command fails, nothing else does. */
    char buf[160];
    snprintf(buf, sizeof buf, "%s: reply exceeds max_bytes (%zu)", m->method, m->max_reply);
    cmd_finish(c, m, LC_CDP_ETOOBIG, buf, strlen(buf));
    return;
  }
  lc_json_span v;
  if (lc_json_member(msg, len, "error", &v) == 0) {
    lc_json_span em;
    char *text = NULL;
    if (lc_json_member(v.p, v.n, "message", &em) == 0) text = lc_json_string_dup(em);
    lc_json_span data;
    char *detail = NULL;
    if (lc_json_member(v.p, v.n, "data", &data) == 0) detail = lc_json_string_dup(data);
    char buf[1024];
    snprintf(buf, sizeof buf, "%s: %s%s%s", m->method, text ? text : "protocol error",
             detail ? ": " : "", detail ? detail : "");
    free(text);
    free(detail);
    cmd_finish(c, m, LC_CDP_EPROTO, buf, strlen(buf));
    return;
  }
  int has_result = lc_json_member(msg, len, "result", &v);
  if (has_result == -2) { /* cut short or garbled before its result: not an answer */
    cmd_fail(c, m, LC_CDP_EPROTO, "malformed reply from the browser");
    return;
  }
  if (has_result != 0) {
    static char empty[] = "{}";
    cmd_finish(c, m, 0, empty, 2);
    return;
  }
  /* The span points into msg, which is writable and owned by ws for this call. */
  char *r = (char *)v.p;
  char saved = r[v.n];
  r[v.n] = 0;
  cmd_finish(c, m, 0, r, v.n);
  r[v.n] = saved;
}

/* The transport dropped a message over its cap: if it was a reply (Chromium writes "id"
 * first), that command fails alone; an event is lost, with a warning. */
static void on_transport_oversize(void *ud, const char *head, size_t head_len, size_t total) {
  lc_cdp *c = ud;
  uint64_t id = 0;
  const char *p = head, *end = head + head_len;
  while (p < end && (*p == ' ' || *p == '{')) p++;
  if (end - p > 5 && memcmp(p, "\"id\":", 5) == 0) {
    for (p += 5; p < end && *p >= '0' && *p <= '9'; p++) id = id * 10 + (uint64_t)(*p - '0');
  }
  cdp_cmd *m = id ? cmd_find(c, id) : NULL;
  if (!m) {
    lc_warn("dropped a message of %zu bytes from the browser (over the transport's limit)", total);
    return;
  }
  char buf[200];
  snprintf(buf, sizeof buf, "%s: reply exceeds max_bytes (%zu bytes, over the transport's limit)",
           m->method, total);
  cmd_finish(c, m, LC_CDP_ETOOBIG, buf, strlen(buf));
}

static void on_transport_message(void *ud, char *msg, size_t len) {
  lc_cdp *c = ud;
  if (c->closed) return; /* declared lost (a keepalive went unanswered): nothing counts now */
  c->last_rx_ms = uv_now(c->loop);
  lc_json_fix_surrogates(msg, len);
  lc_json_span v;
  if (lc_json_member(msg, len, "id", &v) == 0) {
    int64_t id;
    if (lc_json_int(v, &id) == 0) handle_reply(c, id, msg, len);
    return;
  }
  if (lc_json_member(msg, len, "method", &v) != 0) return;
  char method[128], session[128] = "";
  if (lc_json_plain_string(v, method, sizeof method) != 0) return;
  lc_json_span s;
  if (lc_json_member(msg, len, "sessionId", &s) == 0)
    lc_json_plain_string(s, session, sizeof session);
  lc_json_span p;
  static char empty[] = "{}";
  char *params = empty;
  size_t plen = 2;
  char saved = 0;
  if (lc_json_member(msg, len, "params", &p) == 0) {
    params = (char *)p.p;
    plen = p.n;
    saved = params[plen];
    params[plen] = 0;
  }
  if (c->cbs.on_event) c->cbs.on_event(c->cbs.ud, session, method, params, plen);
  if (params != empty) params[plen] = saved;
}

lc_cdp *lc_cdp_open(uv_loop_t *loop, lc_transport_open_fn open, void *arg, const lc_cdp_cbs *cbs,
                    char **err) {
  lc_cdp *c = calloc(1, sizeof *c);
  uv_timer_t *t = malloc(sizeof *t);
  if (!c || !t) {
    free(c);
    free(t);
    *err = strdup("out of memory");
    return NULL;
  }
  c->loop = loop;
  c->cbs = *cbs;
  c->next_id = 1;
  c->pending.next = c->pending.prev = &c->pending;
  uv_timer_init(loop, t);
  t->data = c;
  c->sweep = t;
  lc_transport_cbs tcbs = {on_transport_open, on_transport_message, on_transport_close, c,
                           on_transport_oversize};
  c->t = open(arg, &tcbs, err);
  if (!c->t) {
    c->closed = 1;
    lc_cdp_free(c);
    return NULL;
  }
  return c;
}

static void free_timer(uv_handle_t *h) { free(h); }

static void ping_reply(void *ud, int err, char *result, size_t len) {
  lc_cdp *c = ud;
  (void)result;
  (void)len;
  c->ping_in_flight = 0;
  if (err == LC_CDP_ETIMEOUT) {
    char why[160];
    snprintf(why, sizeof why, "the browser stopped answering (no reply to a keepalive in %d ms)",
             c->keepalive_timeout_ms);
    on_transport_close(c, why);
  }
}

static void keepalive_cb(uv_timer_t *t) {
  lc_cdp *c = t->data;
  if (!c || c->closed || !c->open || c->ping_in_flight) return;
  if (uv_now(c->loop) - c->last_rx_ms < (uint64_t)c->keepalive_idle_ms) return;
  c->ping_in_flight = 1;
  lc_cdp_send(c, NULL, "Browser.getVersion", NULL, c->keepalive_timeout_ms, ping_reply, c);
}

void lc_cdp_set_keepalive(lc_cdp *c, int idle_ms, int timeout_ms) {
  if (!c || idle_ms <= 0 || timeout_ms <= 0) return;
  if (!c->keepalive) {
    c->keepalive = malloc(sizeof *c->keepalive);
    if (!c->keepalive) return;
    uv_timer_init(c->loop, c->keepalive);
    c->keepalive->data = c;
  }
  c->keepalive_idle_ms = idle_ms;
  c->keepalive_timeout_ms = timeout_ms;
  c->last_rx_ms = uv_now(c->loop);
  uv_timer_start(c->keepalive, keepalive_cb, (uint64_t)idle_ms, (uint64_t)idle_ms);
}

void lc_cdp_free(lc_cdp *c) {
  if (!c) return;
  c->cbs.on_closed = NULL;
  c->cbs.on_event = NULL;
  c->cbs.on_open = NULL;
  if (c->t) {
    lc_transport_close(c->t);
    c->t = NULL;
  }
  c->closed = 1;
  fail_all(c, "shutting down");
  c->sweep->data = NULL;
  uv_close((uv_handle_t *)c->sweep, free_timer);
  if (c->keepalive) {
    c->keepalive->data = NULL;
    uv_close((uv_handle_t *)c->keepalive, free_timer);
  }
  free(c);
}

uint64_t lc_cdp_send(lc_cdp *c, const char *session, const char *method, const char *params_json,
                     int timeout_ms, lc_cdp_reply_fn fn, void *ud) {
  return lc_cdp_send_capped(c, session, method, params_json, timeout_ms, 0, fn, ud);
}

uint64_t lc_cdp_send_capped(lc_cdp *c, const char *session, const char *method,
                            const char *params_json, int timeout_ms, size_t max_reply,
                            lc_cdp_reply_fn fn, void *ud) {
  cdp_cmd *m = calloc(1, sizeof *m);
  if (!m) return 0;
  m->id = c->next_id++;
  m->max_reply = max_reply;
  m->fn = fn;
  m->ud = ud;
  m->deadline_ms = uv_now(c->loop) + (uint64_t)(timeout_ms > 0 ? timeout_ms : 30000);
  snprintf(m->method, sizeof m->method, "%s", method);
  snprintf(m->session, sizeof m->session, "%s", session ? session : "");
  m->prev = c->pending.prev;
  m->next = &c->pending;
  c->pending.prev->next = m;
  c->pending.prev = m;
  c->n_pending++;

  lc_buf b;
  lc_buf_init(&b);
  lc_buf_printf(&b, "{\"id\":%" PRIu64 ",\"method\":", m->id);
  lc_buf_json_string(&b, method);
  if (session && *session) {
    lc_buf_puts(&b, ",\"sessionId\":");
    lc_buf_json_string(&b, session);
  }
  lc_buf_puts(&b, ",\"params\":");
  lc_buf_puts(&b, params_json && *params_json ? params_json : "{}");
  lc_buf_puts(&b, "}");
  const char *text = lc_buf_str(&b);
  if (c->closed || !text || lc_transport_send(c->t, text, b.n) != 0) m->failed = 1;
  lc_buf_free(&b);
  /* Sweep soon for a failed send; otherwise at the pace that keeps deadlines honest. */
  if (m->failed || !uv_is_active((uv_handle_t *)c->sweep))
    uv_timer_start(c->sweep, sweep_cb, m->failed ? 0 : CDP_SWEEP_MS, CDP_SWEEP_MS);
  return m->id;
}

int lc_cdp_cancel(lc_cdp *c, uint64_t id) {
  cdp_cmd *m = cmd_find(c, id);
  if (!m) return -1;
  cmd_unlink(c, m);
  free(m);
  return 0;
}

void lc_cdp_fail_session(lc_cdp *c, const char *session, const char *why) {
  for (;;) {
    cdp_cmd *hit = NULL;
    for (cdp_cmd *m = c->pending.next; m != &c->pending; m = m->next)
      if (strcmp(m->session, session) == 0) {
        hit = m;
        break;
      }
    if (!hit) return;
    cmd_fail(c, hit, LC_CDP_ECLOSED, why);
  }
}

int lc_cdp_is_open(const lc_cdp *c) { return c && c->open && !c->closed; }
size_t lc_cdp_pending(const lc_cdp *c) { return c ? c->n_pending : 0; }
