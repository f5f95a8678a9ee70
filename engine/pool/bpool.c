/* bpool.c: browser generations, their CDP connections, engine-side pages, and the CDP
 * implementation of the context cache's backend (see bpool.h). */
#include "bpool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "pipe.h"
#include "url.h"

#define CMD_TIMEOUT_MS 15000
#define KEEPALIVE_IDLE_MS 3000
#define KEEPALIVE_TIMEOUT_MS 8000

enum { G_STARTING, G_READY, G_CLOSING, G_DEAD };

typedef struct deferred {
  struct deferred *next;
  uint64_t id; /* a context to create once the generation is ready */
  char *options;
} deferred;

typedef struct gen_t {
  struct gen_t *next;
  lc_bpool *pool;
  int gen;
  int state;
  int reported;        /* on_lost fired */
  lc_browser *browser; /* NULL for a browser someone else runs (--connect) */
  lc_cdp *cdp;
  uv_timer_t *later; /* an external generation's close, on the next turn; freed in its close cb */
  deferred *waiting;
  char why[256];
} gen_t;

typedef struct pev {
  struct pev *next;
  char *method;
  char *params;
  size_t len;
} pev;

/* A Fetch pattern the page owns (a copy of an lc_fetch_pattern). */
typedef struct fpat {
  char *url;
  char *type; /* NULL: any resource type */
  int response;
} fpat;

/* A paused document request the guard is deciding that a pattern of the script also matches:
 * if the guard lets it through, it goes to the script as this event. */
typedef struct held_req {
  struct held_req *next;
  char *request_id;
  char *params;
  size_t len;
} held_req;

struct lc_enpage {
  lc_enpage *next;
  lc_bpool *pool;
  uint64_t page_id;
  int gen;
  char target[64];
  char session[64];
  char broken[160];
  pev *head, *tail;
  int n_events;
  size_t event_bytes; /* params bytes of the queued events */
  lc_enpage_event_fn waiter; /* the one wait for an event, or NULL */
  void *waiter_ud;
  uv_timer_t *timer; /* malloc'ed; freed in its close callback */
  int guard;         /* main-frame document requests go to on_nav_paused */
  fpat *block;       /* the engine's block patterns (block, block_urls): failed at once */
  size_t n_block;
  fpat *script;      /* the patterns the script enabled: its requests reach it as events */
  size_t n_script;
  held_req *held;    /* guarded documents that go to the script if the guard allows them */
  char **subs;       /* the events the page buffers: names, or prefixes ending in '.' */
  size_t n_subs;
  char *expect; /* normalized URL page:navigate asked for: its first request goes at once */
};

struct lc_bpool {
  uv_loop_t *loop;
  lc_ws_ctx *ws;
  char *connect_url; /* --connect: attach to this browser instead of launching one */
  lc_browser_opts bopts;
  lc_bpool_cbs cbs;
  lc_cache *cache;
  gen_t *gens;
  lc_enpage *pages;
  int next_gen;
  int close_timeout_ms;
  lc_bpool_stats stats;
  uv_timer_t *reaper; /* frees dead generations outside lws/cdp callbacks */
  int freeing;
};

static int64_t now_ms(lc_bpool *p) { return (int64_t)uv_now(p->loop); }

static gen_t *gen_find(const lc_bpool *p, int gen) {
  for (gen_t *g = p->gens; g; g = g->next)
    if (g->gen == gen) return g;
  return NULL;
}

static void free_handle(uv_handle_t *h) { free(h); }

/* ---------------------------------------------------------------- pages */

static void pev_free(pev *e) {
  free(e->method);
  free(e->params);
  free(e);
}

/* Unlinks and frees the oldest queued event. */
static void page_drop_oldest(lc_enpage *pg) {
  pev *e = pg->head;
  pg->head = e->next;
  if (!pg->head) pg->tail = NULL;
  pg->n_events--;
  pg->event_bytes -= e->len;
  pg->pool->stats.events_queued_bytes -= e->len;
  pev_free(e);
}

void lc_enpage_clear_events(lc_enpage *pg) {
  while (pg->head) page_drop_oldest(pg);
}

/* End the wait: the waiter is called once, with an event or with why there is none. */
static void page_wake(lc_enpage *pg, const char *method, const char *params, size_t len,
                      const char *err) {
  lc_enpage_event_fn fn = pg->waiter;
  if (!fn) return;
  pg->waiter = NULL;
  if (pg->timer) uv_timer_stop(pg->timer);
  fn(pg->waiter_ud, method, params, len, err);
}

static void page_fail_waiter(lc_enpage *pg, const char *why) { page_wake(pg, NULL, NULL, 0, why); }

static void page_break(lc_enpage *pg, const char *why) {
  if (!pg->broken[0]) snprintf(pg->broken, sizeof pg->broken, "%s", why);
  page_fail_waiter(pg, why);
}

static lc_enpage *page_new(lc_bpool *p, uint64_t page_id, int gen, const char *target,
                           const char *session) {
  lc_enpage *pg = calloc(1, sizeof *pg);
  if (!pg) return NULL;
  pg->pool = p;
  pg->page_id = page_id;
  pg->gen = gen;
  snprintf(pg->target, sizeof pg->target, "%s", target);
  snprintf(pg->session, sizeof pg->session, "%s", session);
  pg->next = p->pages;
  p->pages = pg;
  return pg;
}

static void page_free(lc_bpool *p, lc_enpage *pg, const char *why) {
  for (lc_enpage **pp = &p->pages; *pp; pp = &(*pp)->next) {
    if (*pp == pg) {
      *pp = pg->next;
      break;
    }
  }
  page_break(pg, why);
  lc_enpage_clear_events(pg);
  lc_enpage_set_guard(pg, 0, NULL, 0);
  lc_enpage_set_script_fetch(pg, NULL, 0);
  lc_enpage_subscribe(pg, NULL, 0);
  while (pg->held) {
    held_req *h = pg->held;
    pg->held = h->next;
    free(h->request_id);
    free(h->params);
    free(h);
  }
  lc_enpage_expect(pg, NULL);
  if (pg->timer) {
    pg->timer->data = NULL;
    uv_close((uv_handle_t *)pg->timer, free_handle);
  }
  free(pg);
}

lc_enpage *lc_bpool_page(lc_bpool *p, uint64_t page_id) {
  for (lc_enpage *pg = p->pages; pg; pg = pg->next)
    if (pg->page_id == page_id) return pg;
  return NULL;
}

static lc_enpage *page_by_session(lc_bpool *p, int gen, const char *session) {
  for (lc_enpage *pg = p->pages; pg; pg = pg->next)
    if (pg->gen == gen && strcmp(pg->session, session) == 0) return pg;
  return NULL;
}

static lc_enpage *page_by_target(lc_bpool *p, int gen, const char *target) {
  for (lc_enpage *pg = p->pages; pg; pg = pg->next)
    if (pg->gen == gen && strcmp(pg->target, target) == 0) return pg;
  return NULL;
}

int lc_enpage_gen(const lc_enpage *pg) { return pg->gen; }
const char *lc_enpage_session(const lc_enpage *pg) { return pg->session; }
const char *lc_enpage_target(const lc_enpage *pg) { return pg->target; }
const char *lc_enpage_broken(const lc_enpage *pg) { return pg->broken[0] ? pg->broken : NULL; }

uint64_t lc_enpage_send(lc_bpool *p, lc_enpage *pg, const char *method, const char *params,
                        int timeout_ms, size_t max_reply, lc_cdp_reply_fn fn, void *ud) {
  gen_t *g = gen_find(p, pg->gen);
  if (!g || g->state != G_READY || !g->cdp || pg->broken[0]) return 0;
  return lc_cdp_send_capped(g->cdp, pg->session, method, params, timeout_ms, max_reply, fn, ud);
}

static void free_pats(fpat **v, size_t *n) {
  for (size_t i = 0; i < *n; i++) {
    free((*v)[i].url);
    free((*v)[i].type);
  }
  free(*v);
  *v = NULL;
  *n = 0;
}

/* Copies `n` patterns into *v (replacing what it held). Returns 0, or -1 (then none). */
static int copy_pats(fpat **v, size_t *nv, const lc_fetch_pattern *src, size_t n) {
  free_pats(v, nv);
  if (n == 0) return 0;
  *v = calloc(n, sizeof **v);
  if (!*v) return -1;
  for (; *nv < n; (*nv)++) {
    fpat *d = &(*v)[*nv];
    d->url = strdup(src[*nv].url ? src[*nv].url : "*");
    d->type = src[*nv].type ? strdup(src[*nv].type) : NULL;
    d->response = src[*nv].response;
    if (!d->url || (src[*nv].type && !d->type)) {
      (*nv)++;
      free_pats(v, nv);
      return -1;
    }
  }
  return 0;
}

int lc_enpage_set_guard(lc_enpage *pg, int on, const lc_fetch_pattern *block, size_t n) {
  pg->guard = 0;
  if (!on) {
    free_pats(&pg->block, &pg->n_block);
    return 0;
  }
  if (copy_pats(&pg->block, &pg->n_block, block, n) != 0) return -1;
  pg->guard = 1;
  return 0;
}

size_t lc_enpage_engine_patterns(const lc_enpage *pg, lc_fetch_pattern *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < pg->n_block; i++, n++)
    if (n < cap) out[n] = (lc_fetch_pattern){pg->block[i].url, pg->block[i].type, 0};
  if (pg->guard) {
    if (n < cap) out[n] = (lc_fetch_pattern){"*", "Document", 0};
    n++;
  }
  return n;
}

int lc_enpage_set_script_fetch(lc_enpage *pg, const lc_fetch_pattern *pats, size_t n) {
  return copy_pats(&pg->script, &pg->n_script, pats, n);
}

int lc_enpage_subscribe(lc_enpage *pg, const char *const *methods, size_t n) {
  for (size_t i = 0; i < pg->n_subs; i++) free(pg->subs[i]);
  free(pg->subs);
  pg->subs = NULL;
  pg->n_subs = 0;
  if (n == 0) return 0;
  pg->subs = calloc(n, sizeof *pg->subs);
  if (!pg->subs) return -1;
  for (; pg->n_subs < n; pg->n_subs++) {
    if (!(pg->subs[pg->n_subs] = strdup(methods[pg->n_subs]))) {
      lc_enpage_subscribe(pg, NULL, 0);
      return -1;
    }
  }
  return 0;
}

/* Whether the page buffers events named `method`. */
static int subscribed(const lc_enpage *pg, const char *method) {
  for (size_t i = 0; i < pg->n_subs; i++) {
    const char *m = pg->subs[i];
    size_t n = strlen(m);
    if (n > 0 && m[n - 1] == '.' ? strncmp(method, m, n) == 0 : strcmp(method, m) == 0) return 1;
  }
  return 0;
}

void lc_enpage_expect(lc_enpage *pg, const char *url) {
  free(pg->expect);
  pg->expect = NULL;
  if (url && lc_url_normalize(NULL, url, &pg->expect, NULL) != 0) pg->expect = NULL;
}

/* Whether `url` is the navigation the script asked for (not a redirect hop). */
static int is_expected(const lc_enpage *pg, const char *url) {
  char *n = NULL;
  if (!pg->expect || lc_url_normalize(NULL, url, &n, NULL) != 0) return 0;
  int same = strcmp(n, pg->expect) == 0;
  free(n);
  return same;
}

/* A Fetch URL pattern: '*' matches any run, '?' one character, a backslash makes the next
 * character literal. Greedy with one backtrack point; the patterns are the script's own. */
static int fetch_pattern_matches(const char *p, const char *s) {
  const char *star = NULL, *star_s = NULL;
  for (;;) {
    if (*p == '*') {
      star = ++p;
      star_s = s;
      continue;
    }
    const char *lit = p;
    if (*lit == '\\' && lit[1]) lit++;
    if (*p && *s && (*lit == *s || (*p == '?' && lit == p))) {
      p = lit + 1;
      s++;
      continue;
    }
    if (!*p && !*s) return 1;
    if (!star || !*star_s) return 0;
    p = star;
    s = ++star_s;
  }
}

static void reply_nav(void *ud, int err, char *r, size_t n) {
  (void)ud;
  (void)n;
  if (err) lc_debug("answering a paused navigation: %s", r);
}

/* Continue or fail the paused request `request_id` (a JSON string literal, quotes included). */
static void nav_answer(lc_bpool *p, lc_enpage *pg, const char *request_id, size_t id_len,
                       int allow) {
  lc_buf b;
  lc_buf_init(&b);
  lc_buf_puts(&b, "{\"requestId\":");
  lc_buf_add(&b, request_id, id_len);
  lc_buf_puts(&b, allow ? "}" : ",\"errorReason\":\"BlockedByClient\"}");
  if (!lc_buf_str(&b) ||
      !lc_enpage_send(p, pg, allow ? "Fetch.continueRequest" : "Fetch.failRequest", b.p,
                      CMD_TIMEOUT_MS, 0, reply_nav, NULL))
    lc_debug("cannot answer a paused navigation of page %llu", (unsigned long long)pg->page_id);
  lc_buf_free(&b);
}

static int page_push_event(lc_enpage *pg, const char *method, const char *params, size_t len);

/* Whether one of the patterns `v` matches a paused request. */
static int pats_match(const fpat *v, size_t n, const char *url, const char *type, int response) {
  for (size_t i = 0; i < n; i++)
    if (v[i].response == response && (!v[i].type || strcmp(v[i].type, type) == 0) &&
        fetch_pattern_matches(v[i].url, url))
      return 1;
  return 0;
}

/* A paused request the engine's rules let through: the script's (`script`: one of its patterns
 * matches) when the page takes the event, else continued. `id` is the requestId as a JSON
 * string literal. */
static void fetch_pass(lc_bpool *p, lc_enpage *pg, int script, const char *params, size_t len,
                       const char *id, size_t id_len) {
  if (script && subscribed(pg, "Fetch.requestPaused") &&
      page_push_event(pg, "Fetch.requestPaused", params, len))
    return;
  nav_answer(p, pg, id, id_len, 1);
}

/* Keeps a guarded document request the script's patterns match, for when the guard allows
 * it. Out of memory, it is not kept (allowed, it is continued). */
static void hold_for_script(lc_enpage *pg, const char *request_id, const char *params,
                            size_t len) {
  held_req *h = calloc(1, sizeof *h);
  if (!h) return;
  h->request_id = strdup(request_id);
  h->params = malloc(len + 1);
  if (!h->request_id || !h->params) {
    free(h->request_id);
    free(h->params);
    free(h);
    return;
  }
  memcpy(h->params, params, len);
  h->params[len] = 0;
  h->len = len;
  h->next = pg->held;
  pg->held = h;
}

void lc_enpage_nav_decide(lc_bpool *p, lc_enpage *pg, const char *request_id, int allow) {
  held_req *h = NULL;
  for (held_req **hp = &pg->held; *hp; hp = &(*hp)->next) {
    if (strcmp((*hp)->request_id, request_id) == 0) {
      h = *hp;
      *hp = h->next;
      break;
    }
  }
  lc_buf b;
  lc_buf_init(&b);
  lc_buf_json_string(&b, request_id);
  if (lc_buf_str(&b)) {
    if (allow && h)
      fetch_pass(p, pg, 1, h->params, h->len, b.p, b.n);
    else
      nav_answer(p, pg, b.p, b.n, allow);
  }
  lc_buf_free(&b);
  if (h) {
    free(h->request_id);
    free(h->params);
    free(h);
  }
}

/* A Fetch.requestPaused (see lc_enpage_set_guard in bpool.h for who answers it): the engine's
 * block patterns fail it, the guard decides a main-frame document, the script gets what its
 * own patterns match, and the rest continues. */
static void fetch_paused(lc_bpool *p, lc_enpage *pg, const char *params, size_t len) {
  lc_json_span id, v, req, u;
  char type[32] = "", frame[64];
  if (lc_json_member(params, len, "requestId", &id) != 0) return;
  if (lc_json_member(params, len, "resourceType", &v) != 0 ||
      lc_json_plain_string(v, type, sizeof type) != 0)
    type[0] = 0;
  char *url = lc_json_member(params, len, "request", &req) == 0 &&
                      lc_json_member(req.p, req.n, "url", &u) == 0
                  ? lc_json_string_dup(u)
                  : NULL;
  if (!url) { /* the engine's rules cannot be checked: refuse it */
    nav_answer(p, pg, id.p, id.n, 0);
    return;
  }
  int response = lc_json_member(params, len, "responseStatusCode", &v) == 0 ||
                 lc_json_member(params, len, "responseErrorReason", &v) == 0;
  int script = pats_match(pg->script, pg->n_script, url, type, response);
  int main_frame = strcmp(type, "Document") == 0 && lc_json_member(params, len, "frameId", &v) == 0 &&
                   lc_json_plain_string(v, frame, sizeof frame) == 0 && strcmp(frame, pg->target) == 0;
  /* While page:navigate's Page.navigate is in flight (its reply waits for the main document),
   * the task cannot read events: its main-frame documents are never the script's to answer. */
  if (main_frame && pg->expect) script = 0;
  if (!response && pats_match(pg->block, pg->n_block, url, type, 0)) {
    nav_answer(p, pg, id.p, id.n, 0);
    free(url);
    return;
  }
  if (!response && pg->guard && main_frame && p->cbs.on_nav_paused) {
    int redirected = lc_json_member(params, len, "redirectedRequestId", &v) == 0;
    /* The first request of page:navigate(url) is the script's choice and goes at once: a
     * round trip through the resume point would only blur the politeness delay it just
     * waited for. Subframes are not guarded. */
    if (redirected || !is_expected(pg, url)) {
      char *rid = lc_json_string_dup(id);
      if (!rid) {
        nav_answer(p, pg, id.p, id.n, 0);
        free(url);
        return;
      }
      if (script) hold_for_script(pg, rid, params, len);
      p->cbs.on_nav_paused(p->cbs.ud, pg->page_id, rid, url, redirected);
      free(rid);
      free(url);
      return;
    }
  }
  fetch_pass(p, pg, script, params, len, id.p, id.n);
  free(url);
}

/* Hands the event to the page's waiter or buffers it. Returns 1, or 0 when it was dropped. */
static int page_push_event(lc_enpage *pg, const char *method, const char *params, size_t len) {
  if (pg->waiter) {
    page_wake(pg, method, params, len, NULL);
    return 1;
  }
  lc_bpool *p = pg->pool;
  /* Nobody reads an idle page's events (its next use starts by clearing them): keep none. */
  if (p->cache && !lc_cache_page_in_use(p->cache, pg->page_id)) {
    p->stats.events_dropped += (uint64_t)pg->n_events + 1;
    lc_enpage_clear_events(pg);
    return 0;
  }
  if (len > LC_ENPAGE_MAX_EVENT_BYTES) {
    p->stats.events_dropped++;
    return 0;
  }
  while (pg->head && (pg->n_events >= LC_ENPAGE_MAX_EVENTS ||
                      pg->event_bytes + len > LC_ENPAGE_MAX_EVENT_BYTES)) {
    page_drop_oldest(pg);
    p->stats.events_dropped++;
  }
  pev *e = calloc(1, sizeof *e);
  if (!e) return 0;
  e->method = strdup(method);
  e->params = malloc(len + 1);
  if (!e->method || !e->params) {
    pev_free(e);
    return 0;
  }
  memcpy(e->params, params, len);
  e->params[len] = 0;
  e->len = len;
  if (pg->tail)
    pg->tail->next = e;
  else
    pg->head = e;
  pg->tail = e;
  pg->n_events++;
  pg->event_bytes += len;
  p->stats.events_queued_bytes += len;
  return 1;
}

static void event_timeout_cb(uv_timer_t *h) {
  lc_enpage *pg = h->data;
  if (pg) page_fail_waiter(pg, "timeout");
}

int lc_enpage_take_event(lc_enpage *pg, char **method, char **params, size_t *len) {
  pev *e = pg->head;
  if (!e) return 0;
  pg->head = e->next;
  if (!pg->head) pg->tail = NULL;
  pg->n_events--;
  pg->event_bytes -= e->len;
  pg->pool->stats.events_queued_bytes -= e->len;
  *method = e->method;
  *params = e->params;
  *len = e->len;
  free(e);
  return 1;
}

int lc_enpage_wait_event(lc_enpage *pg, int timeout_ms, lc_enpage_event_fn fn, void *ud) {
  if (pg->waiter) return -EBUSY;
  if (!pg->timer) {
    pg->timer = malloc(sizeof *pg->timer);
    if (!pg->timer) return -ENOMEM;
    uv_timer_init(pg->pool->loop, pg->timer);
    pg->timer->data = pg;
  }
  pg->waiter = fn;
  pg->waiter_ud = ud;
  uv_timer_start(pg->timer, event_timeout_cb, (uint64_t)(timeout_ms > 0 ? timeout_ms : 1), 0);
  return 0;
}

void lc_enpage_cancel_wait(lc_enpage *pg, void *ud) {
  if (pg->waiter && pg->waiter_ud == ud) {
    pg->waiter = NULL;
    if (pg->timer) uv_timer_stop(pg->timer);
  }
}

/* ---------------------------------------------------------------- generations */

static void gen_lost(gen_t *g, int crashed, const char *why);

static void reaper_cb(uv_timer_t *h) {
  lc_bpool *p = h->data;
  for (gen_t **gp = &p->gens; *gp;) {
    gen_t *g = *gp;
    if (g->state != G_DEAD) {
      gp = &g->next;
      continue;
    }
    *gp = g->next;
    if (g->cdp) lc_cdp_free(g->cdp);
    if (g->later) uv_close((uv_handle_t *)g->later, free_handle);
    if (g->browser) {
      p->stats.log_bytes_done += lc_browser_log_bytes(g->browser);
      lc_browser_destroy(g->browser);
    }
    free(g);
  }
}

static void schedule_reap(lc_bpool *p) {
  if (p->reaper) uv_timer_start(p->reaper, reaper_cb, 0, 0);
}

static void fail_deferred(gen_t *g, const char *why) {
  lc_bpool *p = g->pool;
  while (g->waiting) {
    deferred *d = g->waiting;
    g->waiting = d->next;
    if (p->cache) lc_cache_context_created(p->cache, d->id, NULL, LC_CACHE_ELOST, why, now_ms(p));
    free(d->options);
    free(d);
  }
}

static void gen_lost(gen_t *g, int crashed, const char *why) {
  lc_bpool *p = g->pool;
  if (g->state == G_DEAD) return;
  int was_closing = g->state == G_CLOSING;
  g->state = G_DEAD;
  snprintf(g->why, sizeof g->why, "%s", why);
  if (was_closing) crashed = 0;
  if (crashed) {
    p->stats.browser_crashes++;
    /* What Chromium said last goes with the report (the tail of its output ring). */
    char tail[2048] = "";
    if (g->browser) lc_browser_log_tail(g->browser, tail, sizeof tail);
    lc_warn("browser %d lost: %s%s", g->gen, why, tail);
  }
  fail_deferred(g, why);
  /* Pages first (their waiters learn why), then the cache drops the contexts. */
  for (lc_enpage *pg = p->pages, *next; pg; pg = next) {
    next = pg->next;
    if (pg->gen == g->gen) page_free(p, pg, crashed ? "browser crashed" : "browser closed");
  }
  if (g->cdp) lc_cdp_fail_session(g->cdp, "", why);
  if (p->cache) lc_cache_browser_lost(p->cache, g->gen, now_ms(p));
  if (!g->reported) {
    g->reported = 1;
    if (p->cbs.on_lost && !p->freeing) p->cbs.on_lost(p->cbs.ud, g->gen, crashed, why);
  }
  schedule_reap(p);
}

static void run_deferred(gen_t *g);

static void on_cdp_open(void *ud) {
  gen_t *g = ud;
  if (g->state != G_STARTING) return;
  g->state = G_READY;
  lc_debug("browser %d connected", g->gen);
  run_deferred(g);
  if (g->pool->cbs.on_ready) g->pool->cbs.on_ready(g->pool->cbs.ud, g->gen, 0, NULL);
}

static void connect_cdp(gen_t *g);

static void on_cdp_closed(void *ud, const char *why) {
  gen_t *g = ud;
  char msg[300];
  if (g->browser)
    snprintf(msg, sizeof msg, "DevTools connection lost (%s)", why);
  else if (g->state == G_STARTING)
    snprintf(msg, sizeof msg, "cannot connect to the browser at %s (%s)", g->pool->connect_url,
             why);
  else
    snprintf(msg, sizeof msg, "the connection to the browser at %s was lost (%s)",
             g->pool->connect_url, why);
  if (g->state == G_STARTING && g->pool->cbs.on_ready) {
    g->state = G_DEAD; /* reported as a failed start, not a crash */
    g->reported = 1;
    fail_deferred(g, msg);
    g->pool->cbs.on_ready(g->pool->cbs.ud, g->gen, -1, msg);
    schedule_reap(g->pool);
    return;
  }
  gen_lost(g, 1, msg);
}

static void reply_dialog(void *ud, int err, char *r, size_t n) {
  (void)ud;
  (void)r;
  (void)n;
  if (err) lc_debug("dismissing a dialog: %s", r);
}

/* A page whose renderer crashed or whose target detached: its commands and waiter fail, and
 * the cache closes it (now if idle, at release if in use) instead of handing it out again.
 * The cache may close the page inside the call (be_close_page frees pg): pg is not touched
 * after it. */
static void page_broken(gen_t *g, lc_enpage *pg, const char *why) {
  lc_bpool *p = g->pool;
  uint64_t page_id = pg->page_id;
  if (g->cdp) lc_cdp_fail_session(g->cdp, pg->session, why);
  page_break(pg, why);
  lc_enpage_clear_events(pg);
  if (p->cache) lc_cache_page_broken(p->cache, page_id, now_ms(p));
}

static void on_cdp_event(void *ud, const char *session, const char *method, char *params,
                         size_t len) {
  gen_t *g = ud;
  lc_bpool *p = g->pool;
  lc_enpage *pg = NULL;
  if (!*session) {
    /* Browser-level: crashes and detaches of targets. */
    if (strcmp(method, "Target.targetCrashed") == 0 ||
        strcmp(method, "Target.detachedFromTarget") == 0) {
      lc_json_span v;
      char id[64];
      if (lc_json_member(params, len, "sessionId", &v) == 0 &&
          lc_json_plain_string(v, id, sizeof id) == 0)
        pg = page_by_session(p, g->gen, id);
      else if (lc_json_member(params, len, "targetId", &v) == 0 &&
               lc_json_plain_string(v, id, sizeof id) == 0)
        pg = page_by_target(p, g->gen, id);
      if (pg) page_broken(g, pg, method[7] == 't' ? "page crashed" : "page detached");
    }
    return;
  }
  pg = page_by_session(p, g->gen, session);
  if (!pg) return;
  if (strcmp(method, "Inspector.targetCrashed") == 0) {
    page_broken(g, pg, "page crashed");
    return;
  }
  if (strcmp(method, "Fetch.requestPaused") == 0) {
    fetch_paused(p, pg, params, len);
    return;
  }
  if (strcmp(method, "Page.javascriptDialogOpening") == 0) {
    /* alert/confirm/prompt would block the page forever: accept them. */
    lc_cdp_send(g->cdp, session, "Page.handleJavaScriptDialog", "{\"accept\":true}", CMD_TIMEOUT_MS,
                reply_dialog, NULL);
  }
  /* What a page buffers is what its Lua asked for (lc_enpage_subscribe). */
  if (subscribed(pg, method)) page_push_event(pg, method, params, len);
}

static void on_browser_ready(lc_browser *b, int err, const char *msg, void *ud) {
  gen_t *g = ud;
  lc_bpool *p = g->pool;
  if (err && g->state == G_CLOSING) return; /* closed on purpose while starting: on_exit follows */
  if (err) {
    char why[600];
    snprintf(why, sizeof why, "browser did not start: %s", msg ? msg : "unknown");
    g->state = G_DEAD;
    g->reported = 1;
    fail_deferred(g, why);
    if (p->cbs.on_ready) p->cbs.on_ready(p->cbs.ud, g->gen, err, why);
    schedule_reap(p);
    return;
  }
  connect_cdp(g);
}

/* Opens the generation's CDP connection: the pipe of the browser we launched, or a WebSocket
 * to the one given by --connect. Returns 0, or -1 with *err (malloc'ed). */
static int open_cdp(gen_t *g, char **err) {
  lc_bpool *p = g->pool;
  lc_cdp_cbs cbs = {on_cdp_open, on_cdp_event, on_cdp_closed, g};
  if (!g->browser) {
    lc_ws_args wa = {p->ws, p->connect_url};
    g->cdp = lc_cdp_open(p->loop, lc_ws_open, &wa, &cbs, err);
  } else {
    /* LUACRAWL_PIPE_MAX_MESSAGE: a smaller cap on one message, so specs can reach it. */
    const char *cap = getenv("LUACRAWL_PIPE_MAX_MESSAGE");
    lc_pipe_args pa = {p->loop, lc_browser_take_cdp_fd(g->browser),
                       cap ? (size_t)strtoull(cap, NULL, 10) : 0};
    if (pa.fd < 0) {
      *err = strdup("the browser's DevTools pipe is gone");
      return -1;
    }
    g->cdp = lc_cdp_open(p->loop, lc_pipe_open, &pa, &cbs, err);
    /* The pipe has no pings: a stopped browser is found as lws found it (3 s idle, 8 s). */
    if (g->cdp) lc_cdp_set_keepalive(g->cdp, KEEPALIVE_IDLE_MS, KEEPALIVE_TIMEOUT_MS);
  }
  return g->cdp ? 0 : -1;
}

static void connect_cdp(gen_t *g) {
  lc_bpool *p = g->pool;
  char *cerr = NULL;
  if (open_cdp(g, &cerr) != 0) {
    char why[300];
    snprintf(why, sizeof why, "cannot connect to the browser: %s", cerr ? cerr : "unknown");
    free(cerr);
    g->state = G_DEAD;
    g->reported = 1;
    fail_deferred(g, why);
    if (p->cbs.on_ready) p->cbs.on_ready(p->cbs.ud, g->gen, -1, why);
    schedule_reap(p);
  }
}

static void on_browser_exit(lc_browser *b, int status, int sig, void *ud) {
  gen_t *g = ud;
  (void)b;
  char why[128];
  if (sig)
    snprintf(why, sizeof why, "browser process killed by signal %d", sig);
  else
    snprintf(why, sizeof why, "browser process exited with status %d", status);
  if (g->state == G_STARTING) return; /* on_browser_ready reports the failed start */
  gen_lost(g, 1, why);
}

lc_bpool *lc_bpool_new(uv_loop_t *loop, lc_ws_ctx *ws, const lc_browser_opts *bopts,
                       const char *connect_url, const lc_bpool_cbs *cbs) {
  lc_bpool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  if (connect_url && !(p->connect_url = strdup(connect_url))) {
    free(p);
    return NULL;
  }
  p->loop = loop;
  p->ws = ws;
  p->bopts = *bopts;
  p->cbs = *cbs;
  p->close_timeout_ms = 5000;
  p->reaper = malloc(sizeof *p->reaper);
  if (!p->reaper) {
    free(p->connect_url);
    free(p);
    return NULL;
  }
  uv_timer_init(loop, p->reaper);
  p->reaper->data = p;
  return p;
}

void lc_bpool_free(lc_bpool *p) {
  if (!p) return;
  p->freeing = 1;
  for (gen_t *g = p->gens; g; g = g->next) {
    if (g->state != G_DEAD) gen_lost(g, 0, "shutting down");
  }
  while (p->pages) page_free(p, p->pages, "shutting down");
  reaper_cb(p->reaper);
  uv_close((uv_handle_t *)p->reaper, free_handle);
  free(p->connect_url);
  free(p);
}

void lc_bpool_set_cache(lc_bpool *p, lc_cache *c) { p->cache = c; }
void lc_bpool_set_close_timeout(lc_bpool *p, int ms) { p->close_timeout_ms = ms; }

int lc_bpool_start(lc_bpool *p, char **err) {
  gen_t *g = calloc(1, sizeof *g);
  if (!g) {
    *err = strdup("out of memory");
    return -1;
  }
  g->pool = p;
  g->gen = ++p->next_gen;
  g->state = G_STARTING;
  if (p->connect_url) {
    /* Someone else's browser: connect, never launch, kill or watch a process. */
    if (open_cdp(g, err) != 0) {
      free(g);
      return -1;
    }
    g->next = p->gens;
    p->gens = g;
    p->stats.browser_starts++;
    lc_debug("browser %d: connecting to %s", g->gen, p->connect_url);
    return g->gen;
  }
  int rc =
      lc_browser_launch(p->loop, &p->bopts, on_browser_ready, on_browser_exit, g, &g->browser, err);
  if (rc < 0) {
    free(g);
    return rc;
  }
  g->next = p->gens;
  p->gens = g;
  p->stats.browser_starts++;
  lc_debug("browser %d launched (pid %d, %s, sandbox %s)", g->gen, (int)lc_browser_pid(g->browser),
           lc_browser_uid(g->browser) == 0 ? "as root" : "unprivileged",
           lc_browser_sandboxed(g->browser) ? "on" : "off");
  return g->gen;
}

static void close_external_cb(uv_timer_t *h) {
  gen_t *g = h->data;
  gen_lost(g, 0, "connection closed");
}

void lc_bpool_close(lc_bpool *p, int gen, int grace_ms) {
  gen_t *g = gen_find(p, gen);
  if (!g || g->state == G_DEAD || g->state == G_CLOSING) return;
  g->state = G_CLOSING;
  fail_deferred(g, "browser closing");
  if (g->browser) {
    lc_browser_terminate(g->browser, grace_ms);
    return;
  }
  /* Someone else's browser: only our connection ends (its contexts go with it, disposeOnDetach),
   * on the next turn, so that no callback runs inside this call. */
  if (!g->later) {
    g->later = malloc(sizeof *g->later);
    if (!g->later) {
      gen_lost(g, 0, "connection closed");
      return;
    }
    uv_timer_init(p->loop, g->later);
    g->later->data = g;
  }
  uv_timer_start(g->later, close_external_cb, 0, 0);
}

void lc_bpool_close_all(lc_bpool *p, int grace_ms) {
  for (gen_t *g = p->gens; g; g = g->next) lc_bpool_close(p, g->gen, grace_ms);
}

void lc_bpool_kill(lc_bpool *p, int gen) {
  gen_t *g = gen_find(p, gen);
  if (g && !g->browser && p->connect_url) {
    lc_warn("not killing browser %d: luacrawl did not launch it (--connect)", gen);
    return;
  }
  if (g && g->browser && g->state != G_DEAD) lc_browser_kill(g->browser);
}

int lc_bpool_ready(const lc_bpool *p, int gen) {
  gen_t *g = gen_find(p, gen);
  return g && g->state == G_READY;
}

int lc_bpool_live(const lc_bpool *p) {
  int n = 0;
  for (gen_t *g = p->gens; g; g = g->next)
    if (g->browser ? lc_browser_alive(g->browser) : g->state != G_DEAD) n++;
  return n;
}

long lc_bpool_rss_kb(const lc_bpool *p, int gen) {
  long kb = 0;
  for (gen_t *g = p->gens; g; g = g->next)
    if ((gen == 0 || g->gen == gen) && g->browser) kb += lc_browser_rss_kb(g->browser);
  return kb;
}

int lc_bpool_mem(const lc_bpool *p, int gen, int want_pss, lc_proc_mem *out) {
  memset(out, 0, sizeof *out);
  int browsers = 0;
  for (gen_t *g = p->gens; g; g = g->next) {
    if ((gen != 0 && g->gen != gen) || !g->browser) continue;
    lc_proc_mem m;
    if (lc_browser_mem(g->browser, want_pss, &m) > 0) browsers++;
    out->rss_kb += m.rss_kb;
    out->pss_kb += m.pss_kb;
    out->procs += m.procs;
  }
  return browsers;
}

double lc_bpool_cpu_seconds(const lc_bpool *p) {
  double s = 0;
  for (gen_t *g = p->gens; g; g = g->next)
    if (g->browser) s += lc_browser_cpu_seconds(g->browser);
  return s;
}

pid_t lc_bpool_pid(const lc_bpool *p, int gen) {
  gen_t *g = gen_find(p, gen);
  return g && g->browser ? lc_browser_pid(g->browser) : 0;
}

void lc_bpool_get_stats(const lc_bpool *p, lc_bpool_stats *out) {
  *out = p->stats;
  out->live_browsers = lc_bpool_live(p);
  out->log_bytes = p->stats.log_bytes_done;
  for (gen_t *g = p->gens; g; g = g->next) {
    if (!g->browser) continue;
    out->log_bytes += lc_browser_log_bytes(g->browser);
    size_t kept = lc_browser_log_kept(g->browser);
    if (kept > out->log_kept_max) out->log_kept_max = kept;
    if (!lc_browser_sandboxed(g->browser)) out->unsandboxed++;
  }
}

uint64_t lc_bpool_send(lc_bpool *p, int gen, const char *method, const char *params, int timeout_ms,
                       lc_cdp_reply_fn fn, void *ud) {
  gen_t *g = gen_find(p, gen);
  if (!g || g->state != G_READY || !g->cdp) return 0;
  return lc_cdp_send(g->cdp, NULL, method, params, timeout_ms, fn, ud);
}

int lc_bpool_cancel(lc_bpool *p, int gen, uint64_t id) {
  gen_t *g = gen_find(p, gen);
  if (!g || !g->cdp) return -1;
  return lc_cdp_cancel(g->cdp, id);
}

/* ---------------------------------------------------------------- the cache backend */

/* Close commands get a CDP deadline beyond the cache's own close_timeout_ms: the cache decides
 * when an unanswered close is lost (and frees the slot); a late answer is then ignored. */

/* One multi-step backend operation in flight. Always completed by a CDP reply (answer,
 * error, timeout or connection loss), so it is always freed. */
typedef struct bop {
  lc_bpool *pool;
  int gen;
  uint64_t id, ctx_id;
  char target[64];
  char bctx[64];
  char *options;
  int step;
} bop;

static void bop_free(bop *o) {
  free(o->options);
  free(o);
}

static int extract_string(const char *json, size_t n, const char *key, char *out, size_t cap) {
  lc_json_span v;
  if (lc_json_member(json, n, key, &v) != 0) return -1;
  return lc_json_plain_string(v, out, cap);
}

static void ctx_created_reply(void *ud, int err, char *r, size_t n);

static void create_context_now(gen_t *g, uint64_t ctx_id, const char *options) {
  lc_bpool *p = g->pool;
  bop *o = calloc(1, sizeof *o);
  if (!o) {
    lc_cache_context_created(p->cache, ctx_id, NULL, LC_CACHE_ENOMEM, "out of memory", now_ms(p));
    return;
  }
  o->pool = p;
  o->gen = g->gen;
  o->id = ctx_id;
  o->options = options ? strdup(options) : NULL;
  lc_buf b;
  lc_buf_init(&b);
  lc_buf_puts(&b, "{\"disposeOnDetach\":true");
  lc_json_span v;
  size_t olen = options ? strlen(options) : 0;
  if (options && lc_json_member(options, olen, "proxy", &v) == 0 && v.p[0] == '"') {
    lc_buf_puts(&b, ",\"proxyServer\":");
    lc_buf_add(&b, v.p, v.n);
    if (lc_json_member(options, olen, "proxy_bypass", &v) == 0 && v.p[0] == '"') {
      lc_buf_puts(&b, ",\"proxyBypassList\":");
      lc_buf_add(&b, v.p, v.n);
    }
  }
  lc_buf_puts(&b, "}");
  uint64_t id = lc_buf_str(&b) ? lc_cdp_send(g->cdp, NULL, "Target.createBrowserContext", b.p,
                                             CMD_TIMEOUT_MS, ctx_created_reply, o)
                               : 0;
  lc_buf_free(&b);
  if (!id) {
    lc_cache_context_created(p->cache, ctx_id, NULL, LC_CACHE_ECREATE,
                             "cannot send Target.createBrowserContext", now_ms(p));
    bop_free(o);
  }
}

/* A context Chromium made but the cache will never hold: dispose of it, answer unneeded. */
static void dispose_orphan(lc_bpool *p, int gen, const char *bctx) {
  gen_t *g = gen_find(p, gen);
  if (!g || g->state != G_READY || !g->cdp || !bctx[0]) return;
  lc_buf b;
  lc_buf_init(&b);
  lc_buf_puts(&b, "{\"browserContextId\":");
  lc_buf_json_string(&b, bctx);
  lc_buf_puts(&b, "}");
  if (lc_buf_str(&b))
    lc_cdp_send(g->cdp, NULL, "Target.disposeBrowserContext", b.p, CMD_TIMEOUT_MS, reply_dialog,
                NULL);
  lc_buf_free(&b);
}

/* Steps: 0 createBrowserContext, 1 Storage.setCookies (when the options have cookies). */
static void ctx_created_reply(void *ud, int err, char *r, size_t n) {
  bop *o = ud;
  lc_bpool *p = o->pool;
  if (err) {
    if (p->cache) lc_cache_context_created(p->cache, o->id, NULL, LC_CACHE_ECREATE, r, now_ms(p));
    if (o->step == 1) dispose_orphan(p, o->gen, o->bctx); /* made, but its cookies failed */
    bop_free(o);
    return;
  }
  if (o->step == 0) {
    if (extract_string(r, n, "browserContextId", o->bctx, sizeof o->bctx) != 0) {
      if (p->cache)
        lc_cache_context_created(p->cache, o->id, NULL, LC_CACHE_ECREATE,
                                 "no browserContextId in the answer", now_ms(p));
      bop_free(o);
      return;
    }
    lc_json_span v;
    if (o->options && lc_json_member(o->options, strlen(o->options), "cookies", &v) == 0 &&
        v.p[0] == '[' && v.n > 2) {
      gen_t *g = gen_find(p, o->gen);
      lc_buf b;
      lc_buf_init(&b);
      lc_buf_puts(&b, "{\"browserContextId\":");
      lc_buf_json_string(&b, o->bctx);
      lc_buf_puts(&b, ",\"cookies\":");
      lc_buf_add(&b, v.p, v.n);
      lc_buf_puts(&b, "}");
      o->step = 1;
      if (g && g->cdp && lc_buf_str(&b) &&
          lc_cdp_send(g->cdp, NULL, "Storage.setCookies", b.p, CMD_TIMEOUT_MS, ctx_created_reply,
                      o)) {
        lc_buf_free(&b);
        return;
      }
      lc_buf_free(&b);
      /* Never report success without the cookies the options asked for. */
      if (p->cache)
        lc_cache_context_created(p->cache, o->id, NULL, LC_CACHE_ECREATE,
                                 "cannot set the context's cookies", now_ms(p));
      dispose_orphan(p, o->gen, o->bctx);
      bop_free(o);
      return;
    }
  }
  if (p->cache) lc_cache_context_created(p->cache, o->id, o->bctx, 0, NULL, now_ms(p));
  bop_free(o);
}

static void be_create_context(void *ud, uint64_t ctx_id, int gen, const char *options) {
  lc_bpool *p = ud;
  gen_t *g = gen_find(p, gen);
  if (!g || g->state == G_DEAD || g->state == G_CLOSING) {
    lc_cache_context_created(p->cache, ctx_id, NULL, LC_CACHE_ELOST, "browser not running",
                             now_ms(p));
    return;
  }
  if (g->state == G_STARTING) {
    deferred *d = calloc(1, sizeof *d);
    if (!d) {
      lc_cache_context_created(p->cache, ctx_id, NULL, LC_CACHE_ENOMEM, "out of memory", now_ms(p));
      return;
    }
    d->id = ctx_id;
    d->options = options ? strdup(options) : NULL;
    d->next = g->waiting;
    g->waiting = d;
    return;
  }
  create_context_now(g, ctx_id, options);
}

static void ctx_closed_reply(void *ud, int err, char *r, size_t n) {
  bop *o = ud;
  (void)n;
  if (err) lc_debug("closing context %llu: %s", (unsigned long long)o->id, r);
  if (o->pool->cache)
    lc_cache_context_closed(o->pool->cache, o->id, err == LC_CDP_ETIMEOUT ? -1 : 0,
                            now_ms(o->pool));
  bop_free(o);
}

static void be_close_context(void *ud, uint64_t ctx_id, const char *bctx, int gen) {
  lc_bpool *p = ud;
  gen_t *g = gen_find(p, gen);
  if (!g || g->state != G_READY || !bctx || !*bctx) {
    /* Nothing to close in a browser that is gone (or never made the context). */
    lc_cache_context_closed(p->cache, ctx_id, 0, now_ms(p));
    return;
  }
  bop *o = calloc(1, sizeof *o);
  if (!o) {
    lc_cache_context_closed(p->cache, ctx_id, -1, now_ms(p));
    return;
  }
  o->pool = p;
  o->gen = gen;
  o->id = ctx_id;
  lc_buf b;
  lc_buf_init(&b);
  lc_buf_puts(&b, "{\"browserContextId\":");
  lc_buf_json_string(&b, bctx);
  lc_buf_puts(&b, "}");
  lc_cdp_send(g->cdp, NULL, "Target.disposeBrowserContext", lc_buf_str(&b),
              p->close_timeout_ms + 2000, ctx_closed_reply, o);
  lc_buf_free(&b);
}

/* Steps: 0 createTarget, 1 attachToTarget. */
static void page_created_reply(void *ud, int err, char *r, size_t n) {
  bop *o = ud;
  lc_bpool *p = o->pool;
  gen_t *g = gen_find(p, o->gen);
  if (err) {
    if (p->cache) lc_cache_page_created(p->cache, o->id, NULL, LC_CACHE_ECREATE, r, now_ms(p));
    /* A target made before attach failed would leak: close it. */
    if (o->step == 1 && g && g->state == G_READY) {
      lc_buf b;
      lc_buf_init(&b);
      lc_buf_puts(&b, "{\"targetId\":");
      lc_buf_json_string(&b, o->target);
      lc_buf_puts(&b, "}");
      lc_cdp_send(g->cdp, NULL, "Target.closeTarget", lc_buf_str(&b), CMD_TIMEOUT_MS, reply_dialog,
                  NULL);
      lc_buf_free(&b);
    }
    bop_free(o);
    return;
  }
  if (o->step == 0) {
    if (extract_string(r, n, "targetId", o->target, sizeof o->target) != 0 || !g ||
        g->state != G_READY) {
      if (p->cache)
        lc_cache_page_created(p->cache, o->id, NULL, LC_CACHE_ECREATE, "no targetId", now_ms(p));
      bop_free(o);
      return;
    }
    o->step = 1;
    lc_buf b;
    lc_buf_init(&b);
    lc_buf_puts(&b, "{\"flatten\":true,\"targetId\":");
    lc_buf_json_string(&b, o->target);
    lc_buf_puts(&b, "}");
    lc_cdp_send(g->cdp, NULL, "Target.attachToTarget", lc_buf_str(&b), CMD_TIMEOUT_MS,
                page_created_reply, o);
    lc_buf_free(&b);
    return;
  }
  char session[64];
  if (extract_string(r, n, "sessionId", session, sizeof session) != 0 ||
      !page_new(p, o->id, o->gen, o->target, session)) {
    if (p->cache)
      lc_cache_page_created(p->cache, o->id, NULL, LC_CACHE_ECREATE, "attach failed", now_ms(p));
    bop_free(o);
    return;
  }
  if (p->cache) lc_cache_page_created(p->cache, o->id, o->target, 0, NULL, now_ms(p));
  bop_free(o);
}

static void create_page_now(gen_t *g, uint64_t page_id, const char *bctx) {
  lc_bpool *p = g->pool;
  bop *o = calloc(1, sizeof *o);
  if (!o) {
    lc_cache_page_created(p->cache, page_id, NULL, LC_CACHE_ENOMEM, "out of memory", now_ms(p));
    return;
  }
  o->pool = p;
  o->gen = g->gen;
  o->id = page_id;
  snprintf(o->bctx, sizeof o->bctx, "%s", bctx ? bctx : "");
  lc_buf b;
  lc_buf_init(&b);
  lc_buf_puts(&b, "{\"url\":\"about:blank\",\"browserContextId\":");
  lc_buf_json_string(&b, o->bctx);
  lc_buf_puts(&b, "}");
  lc_cdp_send(g->cdp, NULL, "Target.createTarget", lc_buf_str(&b), CMD_TIMEOUT_MS,
              page_created_reply, o);
  lc_buf_free(&b);
}

static void be_create_page(void *ud, uint64_t page_id, uint64_t ctx_id, const char *bctx, int gen,
                           const char *options) {
  lc_bpool *p = ud;
  (void)ctx_id;
  (void)options;
  gen_t *g = gen_find(p, gen);
  if (!g || g->state != G_READY) {
    lc_cache_page_created(p->cache, page_id, NULL, LC_CACHE_ELOST, "browser not running",
                          now_ms(p));
    return;
  }
  create_page_now(g, page_id, bctx);
}

static void page_closed_reply(void *ud, int err, char *r, size_t n) {
  bop *o = ud;
  (void)n;
  if (err) lc_debug("closing page %llu: %s", (unsigned long long)o->id, r);
  if (o->pool->cache)
    lc_cache_page_closed(o->pool->cache, o->id, err == LC_CDP_ETIMEOUT ? -1 : 0, now_ms(o->pool));
  bop_free(o);
}

static void be_close_page(void *ud, uint64_t page_id, const char *target, int gen) {
  lc_bpool *p = ud;
  lc_enpage *pg = lc_bpool_page(p, page_id);
  if (pg) page_free(p, pg, "page closed");
  gen_t *g = gen_find(p, gen);
  if (!g || g->state != G_READY || !target || !*target) {
    lc_cache_page_closed(p->cache, page_id, 0, now_ms(p));
    return;
  }
  bop *o = calloc(1, sizeof *o);
  if (!o) {
    lc_cache_page_closed(p->cache, page_id, -1, now_ms(p));
    return;
  }
  o->pool = p;
  o->gen = gen;
  o->id = page_id;
  lc_buf b;
  lc_buf_init(&b);
  lc_buf_puts(&b, "{\"targetId\":");
  lc_buf_json_string(&b, target);
  lc_buf_puts(&b, "}");
  lc_cdp_send(g->cdp, NULL, "Target.closeTarget", lc_buf_str(&b), p->close_timeout_ms + 2000,
              page_closed_reply, o);
  lc_buf_free(&b);
}

static void be_browser_drained(void *ud, int gen) {
  lc_bpool *p = ud;
  if (p->cbs.on_drained) p->cbs.on_drained(p->cbs.ud, gen);
}

static void be_log(void *ud, int level, const char *msg) {
  (void)ud;
  lc_log(level, "%s", msg);
}

static void run_deferred(gen_t *g) {
  /* Oldest first: the list was built by pushing at the head. */
  deferred *rev = NULL;
  while (g->waiting) {
    deferred *d = g->waiting;
    g->waiting = d->next;
    d->next = rev;
    rev = d;
  }
  while (rev) {
    deferred *d = rev;
    rev = d->next;
    create_context_now(g, d->id, d->options);
    free(d->options);
    free(d);
  }
}

lc_cache_backend lc_bpool_backend(lc_bpool *p) {
  lc_cache_backend be = {
      .ud = p,
      .create_context = be_create_context,
      .close_context = be_close_context,
      .create_page = be_create_page,
      .close_page = be_close_page,
      .browser_drained = be_browser_drained,
      .log = be_log,
  };
  return be;
}
