/* ctxcache.c: the refcounted browser-context cache (the contract is ctxcache.h).
 *
 * Owns: the contexts, pages and handles of each lc_cache, their refcounts, the signature
 * lookup, the LRU order, the idle and close timers, sessions, browser generations, and
 * cleanup. No global state: everything hangs off the lc_cache.
 *
 * Design
 *   Every lookup is a hash map (engine/base/idmap.h): live handles by id, pages by id
 *   (until gone), contexts by id (until swept), owners by id, and the signature map, keyed
 *   by the 64-bit FNV value the signature spells, holding exactly the contexts that are
 *   creating or open, not detached (so of the current generation). Every set that a pass
 *   walks is an intrusive doubly linked list, so joining or leaving it is O(1): contexts
 *   in LRU order (least recently released first); the unused contexts (open, refcount 0)
 *   in the same order; each context's pages, idle pages and waiting handles; the global
 *   idle pool in idle order; closes in deadline order; closes not yet sent; handles that
 *   failed and are not yet told; and what the sweep may free. So a cleanup pass costs the
 *   contexts it examines (at most the unused ones holding idle pages, or being created,
 *   besides those it closes) plus what it closes, release_owner costs the owner's handles,
 *   tick costs the closes that are overdue, and the sweep costs what it frees. Only
 *   lc_cache_check, the snapshot, lc_cache_gen_contexts, a generation change and a lost
 *   browser walk everything. Timers assume now_ms never goes backwards: the idle, unused
 *   and closing lists are then in time order, and a pass stops at the first entry not yet
 *   due (a clock that did go back would make a timer fire late, never early).
 *   A session is a handle that carries a name, so releasing the handle by any path
 *   forgets the session. Every state change goes through ctx_set_state or page_set_state,
 *   which keep the counters in step; a counter that would drop below zero aborts (a
 *   broken invariant is a panic, never a clamp).
 *
 *   Re-entrancy. The backend may complete an operation inside the call that started it,
 *   and a ready callback may call back into the cache. Three rules make that safe:
 *   (1) state is written before any backend call or callback, and code after such a call
 *   re-reads state (loops that call out restart their search from the list head);
 *   (2) closes are marked first and sent last: a public call marks pages and contexts
 *   closing, and cache_leave sends every unsent close (pages before contexts), so the
 *   backend never sees a half-applied operation;
 *   (3) nothing is freed while a public call runs: a dead handle is marked not live, a
 *   dead page PAGE_GONE, and a finished context with no refs and no pages is left in its
 *   list; the outermost public call sweeps them all on its way out (cache_leave), after
 *   firing browser_drained for generations that have emptied.
 *   The random test in spec/c/test_ctxcache.c runs lc_cache_check inside every backend
 *   call and ready callback to hold the cache to this.
 *
 * Decisions where the header leaves room
 *   - The handle accessors return NULL/0 until ready has fired with success (the header's
 *     "before ready"), then stay valid until release, even after a crash.
 *     lc_cache_handle_live is 1 from acquire to release. lc_cache_handle_browser_gen
 *     returns 0 for unknown handles as the header says, so gen 0 is ambiguous there.
 *   - ctx_info.pages counts every page not yet closed: creating, in use, idle and closing.
 *     A closing page leaves the count when its close is answered or times out.
 *   - The snapshot lists contexts that are creating or open, of every generation (an old
 *     generation's context still in use is listed; browser_gen tells it apart). Closing
 *     and finished contexts are not listed. lc_cache_context_refcount (added) reports any
 *     context the cache still knows.
 *   - cleanup, close_ids: the hook asked for that context by id, so a refcount-0 context
 *     is closed with its idle pages without p->force. Skipped silently: unknown ids and
 *     contexts already closing or finished. Refused with a warning: refcount above zero.
 *     Skipped with an info log: a context still being created or with a page being
 *     created (it cannot be closed cleanly yet; a later pass will).
 *   - cleanup, LRU pass: max_contexts counts creating and open contexts of the current
 *     generation; candidates are open refcount-0 contexts with no page being created.
 *   - contexts_created and pages_created count creation requests; a failed creation is
 *     logged and counted neither closed nor lost.
 *   - A close answered with an error is logged as a warning and counted as closed: the
 *     slot is freed either way, as after a timeout.
 *   - When a context's close completes (answered or lost) its pages still closing are
 *     counted closed with it (disposing a context closes its targets); their late
 *     completions are ignored.
 *   - browser_lost: a close in flight on the lost browser counts as closed and lost; a
 *     lost generation gets no browser_drained (there is no browser left to close).
 *   - lc_cache_gen_contexts counts contexts of the generation that are creating, open,
 *     closing, failed or dead by crash (the last two only while handles still hold them).
 *   - session_open on an existing session ignores options_json, ready and ready_ud: the
 *     first open's ready is the one that fires.
 *   - page_mark_bad on a handle that did not ask for a page returns LC_CACHE_ENOENT; on a
 *     pending page handle it takes effect when the page is released.
 *   - The idle pool is global (cfg.max_idle_pages for the whole cache): page_settle keeps
 *     the page it is given and closes the least recently idled one when the pool overflows
 *     (counted in pages_evicted). A context that so loses its last idle page is an ordinary
 *     LRU candidate at the next cleanup, which the engine runs after every release.
 *   - adaptive_idle: the target (stats.idle_target) moves by one at a time between 0 and
 *     max_idle_pages: down when a release overflows the pool, up when an acquire creates a
 *     page in a context listed in the ghost ring (the last max_idle_pages contexts whose
 *     page the pool evicted or refused). With it off the target stays at max_idle_pages.
 *   - max_pages_per_context counts acquires that ask for a page, sessions included, at
 *     acquire time: the acquire that reaches the limit is served by the context and retires
 *     it (detached at once, so handles already waiting on it are served and no later one
 *     joins); it closes like an old generation's context, when its refcount reaches 0.
 *   - lc_cache_free makes no backend calls; the engine closes the browser around it.
 *   - Argument errors: lc_cache_cleanup and lc_cache_release return LC_CACHE_EINVAL
 *     (added) for a NULL cache or invalid parameters.
 */
#include "ctxcache.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"

/* ------------------------------------------------------------------------------ lists */

/* An intrusive doubly linked list. A link that is in no list points to itself, so removing
 * it again is harmless. CONTAINER turns a link back into the struct that embeds it. */
typedef struct cache_link {
  struct cache_link *prev, *next;
} cache_link;

#define CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Makes `head` an empty list (or `l` a link in no list). */
static void link_init(cache_link *head) {
  head->prev = head;
  head->next = head;
}

static int link_empty(const cache_link *head) { return head->next == head; }
static int link_linked(const cache_link *l) { return l->next != l; }

/* Inserts `l` after `at`. */
static void link_insert_after(cache_link *at, cache_link *l) {
  l->prev = at;
  l->next = at->next;
  at->next->prev = l;
  at->next = l;
}

/* Appends `l` at the tail of `head`. */
static void link_append(cache_link *head, cache_link *l) { link_insert_after(head->prev, l); }

/* Unlinks `l` from whatever list holds it; a no-op for a link in no list. */
static void link_remove(cache_link *l) {
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->prev = l;
  l->next = l;
}

/* ----------------------------------------------------------------------------- types */

typedef enum {
  CTX_CREATING, /* create_context sent, not answered */
  CTX_OPEN,
  CTX_CLOSING, /* close_context sent; refcount is 0 */
  CTX_CLOSED,  /* close answered or timed out, or in flight when the browser was lost */
  CTX_FAILED,  /* creation failed; kept while handles hold it */
  CTX_DEAD,    /* its browser was lost while creating or open; kept while handles hold it */
} ctx_state;

typedef enum {
  PAGE_CREATING, /* create_page sent; `handle` is the waiting handle, or 0 if orphaned */
  PAGE_IN_USE,   /* held by handle `handle` */
  PAGE_IDLE,     /* kept for reuse, no handle */
  PAGE_CLOSING,  /* close_page sent */
  PAGE_DEAD,     /* in use when its browser was lost; kept until its handle is released */
  PAGE_GONE,     /* closed, failed or dropped: swept at the end of the public call */
} page_state;

typedef enum {
  HANDLE_WAIT_CTX,  /* its context is being created */
  HANDLE_WAIT_PAGE, /* its page is being created */
  HANDLE_READY,     /* ready fired with 0 */
  HANDLE_FAILED,    /* ready fired (or is about to fire) with an error */
} handle_state;

typedef struct cache_ctx {
  cache_link link;         /* in lc_cache.contexts, LRU order; must stay first */
  cache_link unused_link;  /* in lc_cache.unused while CTX_OPEN with refcount 0 */
  cache_link closing_link; /* in lc_cache.closing_ctxs while CTX_CLOSING */
  cache_link send_link;    /* in lc_cache.send_ctxs while CTX_CLOSING and not yet sent */
  cache_link sweep_link;   /* in lc_cache.sweep_ctxs once it may be freeable */
  cache_link page_list;    /* head: every page of it not yet swept (cache_page.ctx_link) */
  cache_link idle_list;    /* head: its idle pages, least recently idled first */
  cache_link handle_list;  /* head: its live handles (cache_handle.ctx_link) */
  cache_link waiting;      /* head: its live handles in HANDLE_WAIT_CTX, in acquire order */
  uint64_t id;
  uint64_t sig_key; /* the signature as a number: the signature map's key */
  char signature[LC_SIG_LEN];
  char *options;
  char *browser_ctx_id; /* NULL until created */
  int browser_gen;
  ctx_state state;
  int detached; /* not in the signature map (closing, finished, retired, or an old generation) */
  int refcount;
  int pages;          /* pages of this context not PAGE_GONE */
  int idle_pages;     /* of those, PAGE_IDLE */
  int creating_pages; /* of those, PAGE_CREATING */
  uint64_t uses;
  uint64_t page_uses;   /* acquires that asked for a page */
  uint64_t release_seq; /* larger = released more recently: its place in the LRU order */
  int retired;          /* max_pages_per_context reached: detached, closed once unused */
  int close_sent;       /* close_context called (state CTX_CLOSING) */
  int64_t created_ms, idle_since_ms, close_deadline_ms;
} cache_ctx;

typedef struct cache_page {
  cache_link link;          /* by state: lc_cache.idle, .closing_pages or .gone_pages; else none */
  cache_link ctx_link;      /* in ctx->page_list until swept */
  cache_link ctx_idle_link; /* in ctx->idle_list while PAGE_IDLE */
  cache_link send_link;     /* in lc_cache.send_pages while PAGE_CLOSING and not yet sent */
  uint64_t id;
  cache_ctx *ctx;
  char *target_id; /* NULL until created */
  page_state state;
  uint64_t handle;   /* see page_state */
  uint64_t idle_seq; /* larger = idled more recently */
  int close_sent;    /* close_page called (state PAGE_CLOSING) */
  int broken;        /* its renderer crashed or it detached: closed, never reused */
  uint64_t uses;     /* times handed out (max_uses_per_page) */
  int64_t idle_since_ms, close_deadline_ms;
} cache_page;

/* The live handles of one owner; freed by the sweep once it has none. */
typedef struct cache_owner {
  cache_link sweep_link; /* in lc_cache.sweep_owners while it has no handle */
  cache_link handles;    /* head: its live handles (cache_handle.owner_link), acquire order */
  cache_link sessions;   /* head: those of them that are sessions (cache_handle.session_link) */
  uint64_t id;
  int n; /* live handles */
} cache_owner;

typedef struct cache_handle {
  cache_link link;         /* in lc_cache.handles while live, then lc_cache.dead_handles */
  cache_link owner_link;   /* in own->handles while live */
  cache_link session_link; /* in own->sessions while live, for a session */
  cache_link ctx_link;     /* in ctx->handle_list while live */
  cache_link wait_link;    /* in ctx->waiting while live and HANDLE_WAIT_CTX */
  cache_link fail_link;    /* in lc_cache.failed while live, HANDLE_FAILED and not yet told */
  uint64_t id, owner;
  cache_owner *own; /* valid while live */
  cache_ctx *ctx;   /* valid while live: the handle holds a reference */
  cache_page *page; /* the page it waits for or holds, or NULL */
  char *session;    /* the session name, or NULL */
  lc_cache_ready_fn ready;
  void *ready_ud;
  handle_state state;
  int live, want_page, fresh, bad, fired;
  int prepared; /* a session whose page its opener has prepared */
} cache_handle;

/* An old browser generation waiting for browser_drained, and how many of its contexts the
 * browser still has (creating, open or closing). */
typedef struct cache_retired {
  int gen;
  int alive;
} cache_retired;

struct lc_cache {
  lc_cache_backend be;
  lc_cache_config cfg;
  cache_link contexts;     /* every context not yet swept, LRU order */
  cache_link unused;       /* open contexts with refcount 0, LRU order */
  cache_link closing_ctxs; /* closing contexts, in the order they began closing */
  cache_link send_ctxs;    /* closing contexts whose close_context is not yet sent */
  cache_link sweep_ctxs;   /* finished contexts that may have nothing left: freed by the sweep */
  cache_link idle;         /* the idle pool: idle pages, least recently idled first */
  cache_link closing_pages, send_pages, gone_pages;
  cache_link handles;      /* live handles, acquire order */
  cache_link dead_handles; /* released handles: freed by the sweep */
  cache_link failed;       /* live failed handles whose ready has not fired */
  cache_link sweep_owners; /* owners without handles: freed by the sweep */
  lc_idmap by_handle;      /* live handles */
  lc_idmap by_page;        /* pages not PAGE_GONE */
  lc_idmap by_ctx;         /* contexts not yet swept */
  lc_idmap by_sig;         /* the signature map: sig_key of every context not detached */
  lc_idmap by_owner;       /* owners not yet swept */
  uint64_t next_handle, next_ctx, next_page, next_idle_seq, next_release_seq;
  int open_current; /* creating or open contexts of the current generation */
  int unanswered;   /* closes of the current generation that timed out */
  int gen;
  int gen_lost;     /* lc_cache_browser_lost was called for the current generation */
  int depth;        /* nesting of public calls; the outermost one sweeps */
  uint64_t *ghosts; /* adaptive_idle: contexts whose pages the pool let go, a ring */
  size_t n_ghosts, ghost_next;
  cache_retired *retired; /* old generations still waiting for browser_drained, oldest first */
  size_t n_retired, cap_retired;
  lc_cache_stats stats;
};

/* ------------------------------------------------------------------------ small tools */

/* A broken internal invariant: stop loudly. Never reachable through the public API. */
static void cache_panic(const char *what) {
  fprintf(stderr, "ctxcache: internal invariant broken: %s\n", what);
  abort();
}

#define COUNT_DOWN(counter, what)          \
  do {                                     \
    if ((counter) <= 0) cache_panic(what); \
    (counter)--;                           \
  } while (0)

/* Copies a string with malloc. */
static char *cache_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* Formats a message and hands it to the backend's logger, if any. */
static void cache_log(lc_cache *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cache_log(lc_cache *c, int level, const char *fmt, ...) {
  if (!c->be.log) return;
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->be.log(c->be.ud, level, msg);
}

/* ---------------------------------------------------------------------------- lookup */

/* The live handle `id`, or NULL. */
static cache_handle *handle_find(const lc_cache *c, uint64_t id) {
  return lc_idmap_get(&c->by_handle, id);
}

/* The context `id` in any state, or NULL once swept. */
static cache_ctx *ctx_find(const lc_cache *c, uint64_t id) { return lc_idmap_get(&c->by_ctx, id); }

/* The page `id` unless gone, or NULL. */
static cache_page *page_find(const lc_cache *c, uint64_t id) {
  return lc_idmap_get(&c->by_page, id);
}

/* The owner record of `owner`, or NULL. */
static cache_owner *owner_find(const lc_cache *c, uint64_t owner) {
  return lc_idmap_get(&c->by_owner, owner);
}

/* The context the signature map holds for `sig_key`, or NULL. */
static cache_ctx *ctx_lookup(const lc_cache *c, uint64_t sig_key) {
  return lc_idmap_get(&c->by_sig, sig_key);
}

/* The most recently idled page of `x`, or NULL. */
static cache_page *ctx_newest_idle(const cache_ctx *x) {
  return link_empty(&x->idle_list) ? NULL : CONTAINER(x->idle_list.prev, cache_page, ctx_idle_link);
}

/* The first live handle on `x` still waiting for `x` to be created. */
static cache_handle *handle_first_waiting(const cache_ctx *x) {
  return link_empty(&x->waiting) ? NULL : CONTAINER(x->waiting.next, cache_handle, wait_link);
}

/* ----------------------------------------------------------------- state transitions */

static int ctx_state_counts_open(ctx_state s) { return s == CTX_CREATING || s == CTX_OPEN; }
/* What the browser still has: what browser_drained waits for. */
static int ctx_state_alive(ctx_state s) { return ctx_state_counts_open(s) || s == CTX_CLOSING; }
static int ctx_state_finished(ctx_state s) {
  return s == CTX_CLOSED || s == CTX_FAILED || s == CTX_DEAD;
}

/* Takes `x` out of the signature map, once. */
static void ctx_detach(lc_cache *c, cache_ctx *x) {
  if (x->detached) return;
  x->detached = 1;
  if (lc_idmap_remove(&c->by_sig, x->sig_key) != x) cache_panic("signature map out of step");
}

/* Puts `x` in the unused list at its LRU place (by release_seq; almost always the tail). */
static void unused_insert(lc_cache *c, cache_ctx *x) {
  cache_link *at = c->unused.prev;
  while (at != &c->unused && CONTAINER(at, cache_ctx, unused_link)->release_seq > x->release_seq)
    at = at->prev;
  link_insert_after(at, &x->unused_link);
}

/* Keeps `x` in the unused list exactly while it is open with refcount 0. */
static void ctx_update_unused(lc_cache *c, cache_ctx *x) {
  int unused = x->state == CTX_OPEN && x->refcount == 0;
  if (unused && !link_linked(&x->unused_link)) unused_insert(c, x);
  if (!unused) link_remove(&x->unused_link);
}

/* Queues `x` for the sweep once it is finished with no references and no pages. */
static void ctx_maybe_dead(lc_cache *c, cache_ctx *x) {
  if (ctx_state_finished(x->state) && x->refcount == 0 && x->pages == 0 &&
      !link_linked(&x->sweep_link))
    link_append(&c->sweep_ctxs, &x->sweep_link);
}

/* One context of generation `gen` left the browser: count it off a retired generation. */
static void retired_count_down(lc_cache *c, int gen) {
  for (size_t i = 0; i < c->n_retired; i++)
    if (c->retired[i].gen == gen) COUNT_DOWN(c->retired[i].alive, "retired generation below zero");
}

/* Moves `x` to state `s`, keeping contexts_open, the signature map and the lists in step. */
static void ctx_set_state(lc_cache *c, cache_ctx *x, ctx_state s) {
  ctx_state old = x->state;
  int was_open = ctx_state_counts_open(old), is_open = ctx_state_counts_open(s);
  x->state = s;
  if (!is_open) ctx_detach(c, x);
  if (was_open && !is_open) {
    COUNT_DOWN(c->stats.contexts_open, "contexts_open below zero");
    if (x->browser_gen == c->gen) COUNT_DOWN(c->open_current, "open_current below zero");
  }
  if (!was_open && is_open) cache_panic("a context reopened");
  if (ctx_state_alive(old) && !ctx_state_alive(s)) retired_count_down(c, x->browser_gen);
  if (old == CTX_CLOSING) {
    link_remove(&x->closing_link);
    link_remove(&x->send_link);
  }
  if (s == CTX_CLOSING) link_append(&c->closing_ctxs, &x->closing_link);
  ctx_update_unused(c, x);
  ctx_maybe_dead(c, x);
}

/* Moves `p` to state `s`, keeping the page counters and lists of its context and the cache. */
static void page_set_state(lc_cache *c, cache_page *p, page_state s) {
  cache_ctx *x = p->ctx;
  page_state old = p->state;
  if (old == s) return;
  if (old == PAGE_GONE || s == PAGE_CREATING) cache_panic("impossible page transition");
  if (old == PAGE_IDLE) {
    COUNT_DOWN(x->idle_pages, "idle pages of a context below zero");
    COUNT_DOWN(c->stats.idle_pages, "idle_pages below zero");
  }
  if (old == PAGE_CREATING) COUNT_DOWN(x->creating_pages, "creating pages below zero");
  link_remove(&p->link);
  link_remove(&p->ctx_idle_link);
  link_remove(&p->send_link);
  p->state = s;
  switch (s) {
    case PAGE_IDLE:
      x->idle_pages++;
      c->stats.idle_pages++;
      link_append(&c->idle, &p->link);
      link_append(&x->idle_list, &p->ctx_idle_link);
      break;
    case PAGE_CLOSING:
      link_append(&c->closing_pages, &p->link);
      break;
    case PAGE_GONE:
      COUNT_DOWN(x->pages, "pages of a context below zero");
      if (lc_idmap_remove(&c->by_page, p->id) != p) cache_panic("page map out of step");
      link_append(&c->gone_pages, &p->link);
      ctx_maybe_dead(c, x);
      break;
    default:
      break;
  }
}

/* Moves `h` to state `s`, keeping the waiting and failed lists in step. */
static void handle_set_state(lc_cache *c, cache_handle *h, handle_state s) {
  h->state = s;
  if (s != HANDLE_WAIT_CTX) link_remove(&h->wait_link);
  if (s == HANDLE_FAILED && h->live && !h->fired) {
    if (!link_linked(&h->fail_link)) link_append(&c->failed, &h->fail_link);
  } else {
    link_remove(&h->fail_link);
  }
}

/* ------------------------------------------------------------------------- creation */

/* A new context in state creating, at the MRU end, in the context and signature maps;
 * the caller calls create_context. NULL when out of memory (nothing changed). */
static cache_ctx *ctx_new(lc_cache *c, const char *sig, uint64_t sig_key, const char *options,
                          int64_t now_ms) {
  if (lc_idmap_reserve(&c->by_ctx, lc_idmap_count(&c->by_ctx) + 1) < 0 ||
      lc_idmap_reserve(&c->by_sig, lc_idmap_count(&c->by_sig) + 1) < 0)
    return NULL;
  cache_ctx *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  x->options = cache_strdup(options);
  if (!x->options) {
    free(x);
    return NULL;
  }
  link_init(&x->link);
  link_init(&x->unused_link);
  link_init(&x->closing_link);
  link_init(&x->send_link);
  link_init(&x->sweep_link);
  link_init(&x->page_list);
  link_init(&x->idle_list);
  link_init(&x->handle_list);
  link_init(&x->waiting);
  x->id = ++c->next_ctx;
  x->sig_key = sig_key;
  memcpy(x->signature, sig, LC_SIG_LEN);
  x->browser_gen = c->gen;
  x->state = CTX_CREATING;
  x->created_ms = now_ms;
  x->idle_since_ms = now_ms;
  if (lc_idmap_put(&c->by_ctx, x->id, x) < 0 || lc_idmap_put(&c->by_sig, sig_key, x) < 0)
    cache_panic("a reserved map slot failed");
  link_append(&c->contexts, &x->link);
  c->stats.contexts_created++;
  c->stats.contexts_open++;
  c->open_current++;
  if (c->stats.contexts_open > c->stats.contexts_open_peak)
    c->stats.contexts_open_peak = c->stats.contexts_open;
  return x;
}

/* A new page of `x` in state creating for handle `handle`; the caller calls create_page. */
static cache_page *page_new(lc_cache *c, cache_ctx *x, uint64_t handle) {
  cache_page *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  link_init(&p->link);
  link_init(&p->ctx_link);
  link_init(&p->ctx_idle_link);
  link_init(&p->send_link);
  p->id = c->next_page + 1;
  if (lc_idmap_put(&c->by_page, p->id, p) < 0) {
    free(p);
    return NULL;
  }
  c->next_page++;
  p->ctx = x;
  p->state = PAGE_CREATING;
  p->handle = handle;
  x->pages++;
  x->creating_pages++;
  link_append(&x->page_list, &p->ctx_link);
  c->stats.pages_created++;
  return p;
}

/* ---------------------------------------------------------------------------- ready */

/* Fires `h`'s ready callback, once, unless the handle was released. */
static void handle_fire(lc_cache *c, cache_handle *h, int err, const char *msg) {
  if (!h->live || h->fired) return;
  h->fired = 1;
  handle_set_state(c, h, err ? HANDLE_FAILED : HANDLE_READY);
  if (h->ready) h->ready(h->ready_ud, h->id, err, msg);
}

/* Fires ready with `err` for every live handle marked failed and not yet told. All are
 * marked before the first callback runs, so a callback sees a consistent cache. */
static void handle_fire_failed(lc_cache *c, int err, const char *msg) {
  while (!link_empty(&c->failed))
    handle_fire(c, CONTAINER(c->failed.next, cache_handle, fail_link), err, msg);
}

/* Moves a handle on for its now open context: fires ready, or takes an idle page (most
 * recently idled first), or starts creating a page. */
static void ctx_close_idle_pages(lc_cache *c, cache_ctx *x, int64_t now_ms);
static void ghost_check(lc_cache *c, const cache_ctx *x);

static void handle_proceed(lc_cache *c, cache_handle *h, int64_t now_ms) {
  cache_ctx *x = h->ctx;
  if (!h->want_page) {
    handle_fire(c, h, 0, NULL);
    return;
  }
  cache_page *p = ctx_newest_idle(x);
  if (p) {
    page_set_state(c, p, PAGE_IN_USE);
    p->handle = h->id;
    p->uses++;
    h->page = p;
    h->fresh = 0;
    c->stats.pages_reused++;
    if (x->detached) ctx_close_idle_pages(c, x, now_ms); /* retired by this acquire */
    handle_fire(c, h, 0, NULL);
    return;
  }
  ghost_check(c, x);
  p = page_new(c, x, h->id);
  if (!p) {
    handle_fire(c, h, LC_CACHE_ENOMEM, "out of memory creating a page");
    return;
  }
  p->uses = 1;
  h->page = p;
  h->fresh = 1;
  handle_set_state(c, h, HANDLE_WAIT_PAGE);
  c->be.create_page(c->be.ud, p->id, x->id, x->browser_ctx_id, x->browser_gen, x->options);
}

/* -------------------------------------------------------------------------- closing */

/* Closing is two steps: mark the state now (page_begin_close, ctx_begin_close), and send
 * the backend calls when the public call is done changing state (cache_send_closes, from
 * cache_leave). So every backend call and callback sees a cache where all of one
 * operation's closes are already marked, and the pages' closes go out before their
 * context's. */

/* Marks page `p` (idle, or in use when released) as closing. */
static void page_begin_close(lc_cache *c, cache_page *p, int64_t now_ms) {
  page_set_state(c, p, PAGE_CLOSING);
  p->handle = 0;
  p->close_sent = 0;
  p->close_deadline_ms = now_ms + c->cfg.close_timeout_ms;
  link_append(&c->send_pages, &p->send_link);
}

/* Marks every idle page of `x` as closing. */
static void ctx_close_idle_pages(lc_cache *c, cache_ctx *x, int64_t now_ms) {
  cache_page *p;
  while ((p = ctx_newest_idle(x)) != NULL) page_begin_close(c, p, now_ms);
}

/* Marks `x` closing: out of the signature map at once, its idle pages closing too. The one
 * path to close_context; it refuses (aborts) a context in use. */
static void ctx_begin_close(lc_cache *c, cache_ctx *x, int64_t now_ms) {
  if (x->refcount != 0) cache_panic("closing a context whose refcount is above zero");
  if (x->state != CTX_OPEN || x->creating_pages != 0) cache_panic("closing a busy context");
  ctx_close_idle_pages(c, x, now_ms);
  ctx_set_state(c, x, CTX_CLOSING);
  x->close_sent = 0;
  x->close_deadline_ms = now_ms + c->cfg.close_timeout_ms;
  link_append(&c->send_ctxs, &x->send_link);
}

/* Sends every marked close the backend has not been told about: pages first, then
 * contexts. Each is flagged sent before its call, and the search restarts after each call
 * (the backend may answer inside it). */
static void cache_send_closes(lc_cache *c) {
  for (;;) {
    if (!link_empty(&c->send_pages)) {
      cache_page *p = CONTAINER(c->send_pages.next, cache_page, send_link);
      link_remove(&p->send_link);
      p->close_sent = 1;
      c->be.close_page(c->be.ud, p->id, p->target_id, p->ctx->browser_gen);
      continue;
    }
    if (link_empty(&c->send_ctxs)) return;
    cache_ctx *x = CONTAINER(c->send_ctxs.next, cache_ctx, send_link);
    link_remove(&x->send_link);
    if (x->refcount != 0) cache_panic("sending a close for a context in use");
    x->close_sent = 1;
    c->be.close_context(c->be.ud, x->id, x->browser_ctx_id, x->browser_gen);
  }
}

/* The close of `x` is over (answered, or `lost`): free its slot and its closing pages. */
static void ctx_finish_close(lc_cache *c, cache_ctx *x, int lost) {
  ctx_set_state(c, x, CTX_CLOSED);
  c->stats.contexts_closed++;
  if (lost) c->stats.contexts_lost++;
  if (lost && x->browser_gen == c->gen) c->unanswered++;
  for (cache_link *l = x->page_list.next, *next; l != &x->page_list; l = next) {
    next = l->next; /* a page going gone stays in page_list until the sweep */
    cache_page *p = CONTAINER(l, cache_page, ctx_link);
    if (p->state != PAGE_CLOSING) continue;
    page_set_state(c, p, PAGE_GONE);
    c->stats.pages_closed++;
  }
}

/* An old generation's context with something to give back now: idle pages, or itself. */
static int ctx_needs_retire(const cache_ctx *x) {
  return x->detached && x->state == CTX_OPEN &&
         (x->idle_pages > 0 || (x->refcount == 0 && x->creating_pages == 0));
}

/* Retires an old generation's context as far as it can go now. */
static void ctx_maybe_retire(lc_cache *c, cache_ctx *x, int64_t now_ms) {
  if (!ctx_needs_retire(x)) return;
  ctx_close_idle_pages(c, x, now_ms);
  if (x->state == CTX_OPEN && x->refcount == 0 && x->creating_pages == 0)
    ctx_begin_close(c, x, now_ms);
}

/* ------------------------------------------------------------- the adaptive idle pool */

/* Remembers that the pool let a page of context `ctx_id` go (adaptive_idle only). */
static void ghost_add(lc_cache *c, uint64_t ctx_id) {
  size_t cap = (size_t)c->cfg.max_idle_pages;
  if (!c->ghosts || cap == 0) return;
  c->ghosts[c->ghost_next] = ctx_id;
  c->ghost_next = (c->ghost_next + 1) % cap;
  if (c->n_ghosts < cap) c->n_ghosts++;
}

/* An acquire creates a page in `x`: if the pool recently let one of x's pages go, a larger
 * pool would have served it, so the target grows by one (and that ghost is spent). */
static void ghost_check(lc_cache *c, const cache_ctx *x) {
  for (size_t i = 0; c->ghosts && i < c->n_ghosts; i++) {
    if (c->ghosts[i] != x->id) continue;
    c->ghosts[i] = 0;
    c->stats.idle_ghost_hits++;
    if (c->stats.idle_target < c->cfg.max_idle_pages) c->stats.idle_target++;
    return;
  }
}

/* The idle page of the whole cache idled longest ago, or NULL. */
static cache_page *page_lru_idle(const lc_cache *c) {
  return link_empty(&c->idle) ? NULL : CONTAINER(c->idle.next, cache_page, link);
}

/* A page whose handle is gone: idle if healthy and its context can still be reused, closed
 * otherwise. The idle pool is one budget for the whole cache: when this page makes it too
 * large, the least recently idled page goes, whichever context holds it. */
static void page_settle(lc_cache *c, cache_page *p, int bad, int64_t now_ms) {
  cache_ctx *x = p->ctx;
  p->handle = 0;
  if (!bad && !p->broken && c->cfg.max_uses_per_page > 0 &&
      p->uses >= (uint64_t)c->cfg.max_uses_per_page) {
    c->stats.pages_retired++; /* worn out: a fresh page takes its place at the next acquire */
    page_begin_close(c, p, now_ms);
    return;
  }
  if (bad || p->broken || x->state != CTX_OPEN || x->detached || c->stats.idle_target == 0) {
    if (!bad && !p->broken && x->state == CTX_OPEN && !x->detached)
      ghost_add(c, x->id); /* the pool said no */
    page_begin_close(c, p, now_ms);
    return;
  }
  page_set_state(c, p, PAGE_IDLE);
  p->idle_since_ms = now_ms;
  p->idle_seq = ++c->next_idle_seq;
  if (c->stats.idle_pages <= c->stats.idle_target) return;
  /* Over the target: the least recently idled page goes, and (adapting) the target shrinks by
   * one, since that page sat unused through the pool's whole turnover. At most one step per
   * release; the pool is trimmed to the new target at once. */
  if (c->cfg.adaptive_idle && c->stats.idle_target > 0) c->stats.idle_target--;
  while (c->stats.idle_pages > c->stats.idle_target) {
    cache_page *q = page_lru_idle(c);
    ghost_add(c, q->ctx->id);
    page_begin_close(c, q, now_ms);
    c->stats.pages_evicted++;
  }
}

/* Gives back what a live handle holds. Returns nothing: the handle is known live. */
static void handle_release(lc_cache *c, cache_handle *h, int64_t now_ms) {
  cache_ctx *x = h->ctx;
  cache_page *p = h->page;
  cache_owner *o = h->own;
  h->live = 0;
  h->page = NULL;
  h->own = NULL;
  if (lc_idmap_remove(&c->by_handle, h->id) != h) cache_panic("handle map out of step");
  link_remove(&h->owner_link);
  link_remove(&h->session_link);
  link_remove(&h->ctx_link);
  link_remove(&h->wait_link);
  link_remove(&h->fail_link);
  link_remove(&h->link);
  link_append(&c->dead_handles, &h->link);
  COUNT_DOWN(o->n, "owner's handles below zero");
  if (o->n == 0) link_append(&c->sweep_owners, &o->sweep_link);
  COUNT_DOWN(x->refcount, "context refcount below zero");
  COUNT_DOWN(c->stats.refs_outstanding, "refs_outstanding below zero");
  link_remove(&x->link);
  link_append(&c->contexts, &x->link);
  x->release_seq = ++c->next_release_seq;
  if (x->refcount == 0) x->idle_since_ms = now_ms;
  ctx_update_unused(c, x);
  ctx_maybe_dead(c, x);
  if (p) {
    switch (p->state) {
      case PAGE_CREATING: /* orphaned: lc_cache_page_created settles it */
        p->handle = 0;
        break;
      case PAGE_IN_USE:
        page_settle(c, p, h->bad, now_ms);
        break;
      case PAGE_DEAD:
        p->handle = 0;
        page_set_state(c, p, PAGE_GONE);
        break;
      default:
        cache_panic("a handle held a page that was idle, closing or gone");
    }
  }
  ctx_maybe_retire(c, x, now_ms);
}

/* --------------------------------------------------------------- generations, sweep */

/* Forgets generation `gen` in the retired list, if it is there. */
static void retired_remove(lc_cache *c, int gen) {
  for (size_t i = 0; i < c->n_retired; i++) {
    if (c->retired[i].gen != gen) continue;
    memmove(&c->retired[i], &c->retired[i + 1], (c->n_retired - i - 1) * sizeof *c->retired);
    c->n_retired--;
    return;
  }
}

/* Contexts of generation `gen` the browser still has: creating, open or closing. A walk of
 * every context: run once per generation change; ctx_set_state keeps the count after. */
static int gen_alive(const lc_cache *c, int gen) {
  int n = 0;
  for (cache_link *l = c->contexts.next; l != &c->contexts; l = l->next) {
    const cache_ctx *x = (const cache_ctx *)l;
    if (x->browser_gen == gen && ctx_state_alive(x->state)) n++;
  }
  return n;
}

/* Adds generation `gen` to the retired list. Returns 0 or LC_CACHE_ENOMEM. */
static int retired_add(lc_cache *c, int gen) {
  retired_remove(c, gen);
  if (c->n_retired == c->cap_retired) {
    size_t cap = c->cap_retired ? c->cap_retired * 2 : 4;
    cache_retired *r = realloc(c->retired, cap * sizeof *r);
    if (!r) return LC_CACHE_ENOMEM;
    c->retired = r;
    c->cap_retired = cap;
  }
  c->retired[c->n_retired].gen = gen;
  c->retired[c->n_retired].alive = gen_alive(c, gen);
  c->n_retired++;
  return 0;
}

/* Fires browser_drained, once, for each retired generation with nothing left open. */
static void drain_check(lc_cache *c) {
  size_t i = 0;
  while (i < c->n_retired) {
    int gen = c->retired[i].gen;
    if (c->retired[i].alive > 0) {
      i++;
      continue;
    }
    retired_remove(c, gen);
    if (c->be.browser_drained) c->be.browser_drained(c->be.ud, gen);
    i = 0; /* the callback may have changed the list */
  }
}

/* Frees a handle, a page, a context, an owner record: only from the sweep and lc_cache_free. */
static void handle_free(cache_handle *h) {
  free(h->session);
  free(h);
}

static void page_free(cache_page *p) {
  free(p->target_id);
  free(p);
}

static void ctx_free(cache_ctx *x) {
  free(x->options);
  free(x->browser_ctx_id);
  free(x);
}

/* Frees every handle, page, context and owner record that has died. Only from the
 * outermost call; it walks only what died. */
static void cache_sweep(lc_cache *c) {
  while (!link_empty(&c->dead_handles)) {
    cache_handle *h = CONTAINER(c->dead_handles.next, cache_handle, link);
    link_remove(&h->link);
    handle_free(h);
  }
  while (!link_empty(&c->gone_pages)) {
    cache_page *p = CONTAINER(c->gone_pages.next, cache_page, link);
    link_remove(&p->link);
    link_remove(&p->ctx_link);
    page_free(p);
  }
  while (!link_empty(&c->sweep_ctxs)) {
    cache_ctx *x = CONTAINER(c->sweep_ctxs.next, cache_ctx, sweep_link);
    link_remove(&x->sweep_link);
    if (!ctx_state_finished(x->state) || x->refcount > 0 || x->pages > 0) continue;
    if (!link_empty(&x->page_list)) cache_panic("sweeping a context that still lists pages");
    if (lc_idmap_remove(&c->by_ctx, x->id) != x) cache_panic("context map out of step");
    link_remove(&x->link);
    link_remove(&x->unused_link);
    link_remove(&x->closing_link);
    link_remove(&x->send_link);
    ctx_free(x);
  }
  while (!link_empty(&c->sweep_owners)) {
    cache_owner *o = CONTAINER(c->sweep_owners.next, cache_owner, sweep_link);
    link_remove(&o->sweep_link);
    if (o->n > 0) continue;
    if (lc_idmap_remove(&c->by_owner, o->id) != o) cache_panic("owner map out of step");
    free(o);
  }
}

/* Every mutating public function runs between cache_enter and cache_leave. */
static void cache_enter(lc_cache *c) { c->depth++; }

static void cache_leave(lc_cache *c) {
  cache_send_closes(c);
  if (c->depth == 1) {
    drain_check(c);
    cache_sweep(c);
  }
  c->depth--;
}

/* ------------------------------------------------------------------ create, destroy */

lc_cache *lc_cache_new(const lc_cache_backend *backend, const lc_cache_config *cfg) {
  if (!backend || !cfg || !backend->create_context || !backend->close_context ||
      !backend->create_page || !backend->close_page)
    return NULL;
  if (cfg->close_timeout_ms <= 0 || cfg->max_idle_pages < 0 || cfg->max_pages_per_context < 0)
    return NULL;
  lc_cache *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->be = *backend;
  c->cfg = *cfg;
  c->stats.idle_target = cfg->max_idle_pages;
  if (cfg->adaptive_idle && cfg->max_idle_pages > 0 &&
      !(c->ghosts = calloc((size_t)cfg->max_idle_pages, sizeof *c->ghosts))) {
    free(c);
    return NULL;
  }
  cache_link *heads[] = {&c->contexts,    &c->unused,  &c->closing_ctxs,  &c->send_ctxs,
                         &c->sweep_ctxs,  &c->idle,    &c->closing_pages, &c->send_pages,
                         &c->gone_pages,  &c->handles, &c->dead_handles,  &c->failed,
                         &c->sweep_owners};
  for (size_t i = 0; i < sizeof heads / sizeof *heads; i++) link_init(heads[i]);
  lc_idmap_init(&c->by_handle);
  lc_idmap_init(&c->by_page);
  lc_idmap_init(&c->by_ctx);
  lc_idmap_init(&c->by_sig);
  lc_idmap_init(&c->by_owner);
  return c;
}

void lc_cache_free(lc_cache *c) {
  if (!c) return;
  assert(c->depth == 0 && "lc_cache_free from inside a cache callback");
  assert(c->stats.refs_outstanding == 0 && "lc_cache_free with live handles");
  cache_sweep(c);
  cache_link *lists[] = {&c->handles, &c->dead_handles};
  for (size_t i = 0; i < 2; i++) {
    while (!link_empty(lists[i])) {
      cache_handle *h = CONTAINER(lists[i]->next, cache_handle, link);
      link_remove(&h->link);
      handle_free(h);
    }
  }
  while (!link_empty(&c->contexts)) {
    cache_ctx *x = (cache_ctx *)c->contexts.next;
    link_remove(&x->link);
    while (!link_empty(&x->page_list)) {
      cache_page *p = CONTAINER(x->page_list.next, cache_page, ctx_link);
      link_remove(&p->ctx_link);
      page_free(p);
    }
    ctx_free(x);
  }
  size_t pos = 0;
  void *o;
  while (lc_idmap_next(&c->by_owner, &pos, NULL, &o)) free(o);
  lc_idmap_free(&c->by_handle);
  lc_idmap_free(&c->by_page);
  lc_idmap_free(&c->by_ctx);
  lc_idmap_free(&c->by_sig);
  lc_idmap_free(&c->by_owner);
  free(c->retired);
  free(c->ghosts);
  free(c);
}

/* FNV-1a 64 of a string: the number a signature spells, and the signature map's key. */
static uint64_t cache_fnv1a(const char *canonical_options) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  const unsigned char *s = (const unsigned char *)(canonical_options ? canonical_options : "");
  for (; *s; s++) {
    h ^= *s;
    h *= UINT64_C(0x100000001b3);
  }
  return h;
}

/* Spells `h` as a signature: 16 lowercase hex digits. */
static void cache_sig_format(uint64_t h, char out[LC_SIG_LEN]) {
  static const char hex[] = "0123456789abcdef";
  for (int i = LC_SIG_LEN - 2; i >= 0; i--) {
    out[i] = hex[h & 0xf];
    h >>= 4;
  }
  out[LC_SIG_LEN - 1] = '\0';
}

void lc_cache_signature(const char *canonical_options, char out[LC_SIG_LEN]) {
  cache_sig_format(cache_fnv1a(canonical_options), out);
}

/* ----------------------------------------------------------------- acquire, release */

/* The owner record of `owner`, made if it has none. NULL when out of memory. */
static cache_owner *owner_get(lc_cache *c, uint64_t owner) {
  cache_owner *o = owner_find(c, owner);
  if (o) return o;
  if (!(o = calloc(1, sizeof *o))) return NULL;
  link_init(&o->sweep_link);
  link_init(&o->handles);
  link_init(&o->sessions);
  o->id = owner;
  if (lc_idmap_put(&c->by_owner, owner, o) < 0) {
    free(o);
    return NULL;
  }
  link_append(&c->sweep_owners, &o->sweep_link); /* until its first handle */
  return o;
}

/* The acquire behind lc_cache_acquire and lc_cache_session_open. */
static uint64_t cache_acquire(lc_cache *c, uint64_t owner, const char *options_json, int want_page,
                              int64_t now_ms, lc_cache_ready_fn ready, void *ready_ud,
                              const char *session) {
  cache_handle *h = calloc(1, sizeof *h);
  if (!h) return 0;
  if (session && !(h->session = cache_strdup(session))) {
    free(h);
    return 0;
  }
  /* Everything that can fail comes first; an owner record made for nothing is swept. */
  cache_owner *o = NULL;
  if (lc_idmap_reserve(&c->by_handle, lc_idmap_count(&c->by_handle) + 1) < 0 ||
      !(o = owner_get(c, owner))) {
    handle_free(h);
    return 0;
  }
  uint64_t sig_key = cache_fnv1a(options_json);
  cache_ctx *x = ctx_lookup(c, sig_key);
  int new_ctx = 0;
  if (!x) {
    char sig[LC_SIG_LEN];
    cache_sig_format(sig_key, sig);
    x = ctx_new(c, sig, sig_key, options_json, now_ms);
    if (!x) {
      handle_free(h);
      return 0;
    }
    new_ctx = 1;
  }
  link_init(&h->link);
  link_init(&h->owner_link);
  link_init(&h->session_link);
  link_init(&h->ctx_link);
  link_init(&h->wait_link);
  link_init(&h->fail_link);
  h->id = ++c->next_handle;
  h->owner = owner;
  h->own = o;
  h->ctx = x;
  h->ready = ready;
  h->ready_ud = ready_ud;
  h->want_page = want_page ? 1 : 0;
  h->live = 1;
  h->state = HANDLE_WAIT_CTX;
  if (lc_idmap_put(&c->by_handle, h->id, h) < 0) cache_panic("a reserved map slot failed");
  link_append(&c->handles, &h->link);
  link_append(&o->handles, &h->owner_link);
  if (h->session) link_append(&o->sessions, &h->session_link);
  if (o->n++ == 0) link_remove(&o->sweep_link);
  link_append(&x->handle_list, &h->ctx_link);
  link_append(&x->waiting, &h->wait_link);
  x->refcount++;
  x->uses++;
  ctx_update_unused(c, x);
  c->stats.refs_outstanding++;
  if (want_page) x->page_uses++;
  if (want_page && c->cfg.max_pages_per_context > 0 &&
      x->page_uses >= (uint64_t)c->cfg.max_pages_per_context) {
    /* Worn out: this acquire is its last. Out of the signature map now, so the next acquire
     * of its key makes a fresh context; closed when its last reference comes back. */
    x->retired = 1;
    ctx_detach(c, x);
    c->stats.contexts_retired++;
  }
  uint64_t id = h->id;
  if (new_ctx)
    c->be.create_context(c->be.ud, x->id, x->browser_gen, x->options);
  else if (x->state == CTX_OPEN)
    handle_proceed(c, h, now_ms);
  return id;
}

uint64_t lc_cache_acquire(lc_cache *c, uint64_t owner, const char *options_json, int want_page,
                          int64_t now_ms, lc_cache_ready_fn ready, void *ready_ud) {
  if (!c || !options_json) return 0;
  cache_enter(c);
  uint64_t id = cache_acquire(c, owner, options_json, want_page, now_ms, ready, ready_ud, NULL);
  cache_leave(c);
  return id;
}

int lc_cache_release(lc_cache *c, uint64_t handle, int64_t now_ms) {
  if (!c) return LC_CACHE_EINVAL;
  cache_enter(c);
  cache_handle *h = handle_find(c, handle);
  if (!h) {
    c->stats.bad_releases++;
    cache_log(c, LC_CACHE_LOG_ERROR,
              "ctxcache: release of handle %" PRIu64
              " that is not live (double release or never acquired)",
              handle);
    cache_leave(c);
    return LC_CACHE_EBADHANDLE;
  }
  handle_release(c, h, now_ms);
  cache_leave(c);
  return 0;
}

int lc_cache_release_owner(lc_cache *c, uint64_t owner, int64_t now_ms) {
  if (!c) return LC_CACHE_EINVAL;
  cache_enter(c);
  int n = 0;
  cache_owner *o = owner_find(c, owner);
  while (o && !link_empty(&o->handles)) { /* a record with no handles stays till the sweep */
    handle_release(c, CONTAINER(o->handles.next, cache_handle, owner_link), now_ms);
    n++;
  }
  cache_leave(c);
  return n;
}

int lc_cache_owned(const lc_cache *c, uint64_t owner) {
  const cache_owner *o = c ? owner_find(c, owner) : NULL;
  return o ? o->n : 0;
}

/* O(owners with live handles): a job's range is far wider than the owners it has. */
int lc_cache_owned_range(const lc_cache *c, uint64_t lo, uint64_t hi) {
  if (!c) return 0;
  int n = 0;
  size_t pos = 0;
  uint64_t id;
  void *o;
  while (lc_idmap_next(&c->by_owner, &pos, &id, &o))
    if (id >= lo && id < hi) n += ((const cache_owner *)o)->n;
  return n;
}

int lc_cache_page_mark_bad(lc_cache *c, uint64_t handle) {
  if (!c) return LC_CACHE_EINVAL;
  cache_handle *h = handle_find(c, handle);
  if (!h) return LC_CACHE_EBADHANDLE;
  if (!h->want_page) return LC_CACHE_ENOENT;
  h->bad = 1;
  return 0;
}

int lc_cache_page_broken(lc_cache *c, uint64_t page_id, int64_t now_ms) {
  if (!c) return LC_CACHE_EINVAL;
  cache_enter(c);
  cache_page *p = page_find(c, page_id);
  int rc = p ? 0 : LC_CACHE_ENOENT;
  if (p) {
    p->broken = 1;
    if (p->state == PAGE_IDLE) page_begin_close(c, p, now_ms);
  }
  cache_leave(c);
  return rc;
}

int lc_cache_page_in_use(const lc_cache *c, uint64_t page_id) {
  const cache_page *p = c ? page_find(c, page_id) : NULL;
  return p && p->handle != 0 && (p->state == PAGE_IN_USE || p->state == PAGE_CREATING);
}

uint64_t lc_cache_handle_owner(const lc_cache *c, uint64_t handle) {
  const cache_handle *h = c ? handle_find(c, handle) : NULL; /* the map holds live ones only */
  return h ? h->owner : 0;
}

uint64_t lc_cache_page_owner(const lc_cache *c, uint64_t page_id) {
  const cache_page *p = c ? page_find(c, page_id) : NULL;
  if (!p || p->handle == 0) return 0;
  return lc_cache_handle_owner(c, p->handle);
}

int lc_cache_handle_state(const lc_cache *c, uint64_t handle) {
  const cache_handle *h = c ? handle_find(c, handle) : NULL;
  if (!h || !h->live) return -2;
  if (h->state == HANDLE_READY) return 1;
  if (h->state == HANDLE_FAILED) return -1;
  return 0;
}

int lc_cache_owner_mark_bad(lc_cache *c, uint64_t owner) {
  if (!c) return LC_CACHE_EINVAL;
  int n = 0;
  cache_owner *o = owner_find(c, owner);
  for (cache_link *l = o ? o->handles.next : NULL; o && l != &o->handles; l = l->next) {
    cache_handle *k = CONTAINER(l, cache_handle, owner_link);
    if (k->want_page) {
      k->bad = 1;
      n++;
    }
  }
  return n;
}

/* ------------------------------------------------------------------------ accessors */

/* The live handle `id` if its ready fired with success, or NULL. */
static const cache_handle *handle_ready(const lc_cache *c, uint64_t id) {
  if (!c) return NULL;
  const cache_handle *h = handle_find(c, id);
  return h && h->state == HANDLE_READY ? h : NULL;
}

const char *lc_cache_handle_target(const lc_cache *c, uint64_t handle) {
  const cache_handle *h = handle_ready(c, handle);
  return h && h->page ? h->page->target_id : NULL;
}

const char *lc_cache_handle_browser_ctx(const lc_cache *c, uint64_t handle) {
  const cache_handle *h = handle_ready(c, handle);
  return h ? h->ctx->browser_ctx_id : NULL;
}

const char *lc_cache_handle_signature(const lc_cache *c, uint64_t handle) {
  const cache_handle *h = handle_ready(c, handle);
  return h ? h->ctx->signature : NULL;
}

uint64_t lc_cache_handle_ctx(const lc_cache *c, uint64_t handle) {
  const cache_handle *h = handle_ready(c, handle);
  return h ? h->ctx->id : 0;
}

uint64_t lc_cache_handle_page(const lc_cache *c, uint64_t handle) {
  const cache_handle *h = handle_ready(c, handle);
  return h && h->page ? h->page->id : 0;
}

int lc_cache_handle_browser_gen(const lc_cache *c, uint64_t handle) {
  const cache_handle *h = handle_ready(c, handle);
  return h ? h->ctx->browser_gen : 0;
}

int lc_cache_handle_live(const lc_cache *c, uint64_t handle) {
  return c && handle_find(c, handle) ? 1 : 0;
}

int lc_cache_handle_page_fresh(const lc_cache *c, uint64_t handle) {
  const cache_handle *h = handle_ready(c, handle);
  return h && h->page ? h->fresh : 0;
}

int lc_cache_context_refcount(const lc_cache *c, uint64_t ctx_id) {
  const cache_ctx *x = c ? ctx_find(c, ctx_id) : NULL;
  return x ? x->refcount : LC_CACHE_ENOENT;
}

/* ---------------------------------------------------------------------- completions */

void lc_cache_context_created(lc_cache *c, uint64_t ctx_id, const char *browser_ctx_id, int err,
                              const char *msg, int64_t now_ms) {
  if (!c) return;
  cache_enter(c);
  cache_ctx *x = ctx_find(c, ctx_id);
  if (!x || x->state != CTX_CREATING) goto out; /* dropped or lost meanwhile */
  if (err >= 0 && !(x->browser_ctx_id = cache_strdup(browser_ctx_id ? browser_ctx_id : ""))) {
    err = LC_CACHE_ENOMEM;
    msg = "out of memory recording a created context";
  }
  if (err < 0) {
    if (!msg) msg = "browser context creation failed";
    ctx_set_state(c, x, CTX_FAILED);
    cache_handle *h;
    while ((h = handle_first_waiting(x)) != NULL) handle_set_state(c, h, HANDLE_FAILED);
    cache_log(c, LC_CACHE_LOG_WARN, "ctxcache: creating context %" PRIu64 " failed (%d): %s",
              ctx_id, err, msg);
    handle_fire_failed(c, LC_CACHE_ECREATE, msg);
    goto out;
  }
  ctx_set_state(c, x, CTX_OPEN);
  cache_handle *h;
  while (x->state == CTX_OPEN && (h = handle_first_waiting(x)) != NULL)
    handle_proceed(c, h, now_ms);
  ctx_maybe_retire(c, x, now_ms);
out:
  cache_leave(c);
}

void lc_cache_context_closed(lc_cache *c, uint64_t ctx_id, int err, int64_t now_ms) {
  if (!c) return;
  cache_enter(c);
  cache_ctx *x = ctx_find(c, ctx_id);
  if (x && x->state == CTX_CLOSING) {
    ctx_finish_close(c, x, 0);
    if (err < 0)
      cache_log(c, LC_CACHE_LOG_WARN,
                "ctxcache: closing context %" PRIu64 " failed (%d); counted as closed", ctx_id,
                err);
  }
  cache_leave(c);
}

void lc_cache_page_created(lc_cache *c, uint64_t page_id, const char *target_id, int err,
                           const char *msg, int64_t now_ms) {
  if (!c) return;
  cache_enter(c);
  cache_page *p = page_find(c, page_id);
  if (!p || p->state != PAGE_CREATING) goto out;
  cache_ctx *x = p->ctx;
  cache_handle *h = p->handle ? handle_find(c, p->handle) : NULL;
  if (h && h->page != p) cache_panic("a creating page and its handle disagree");
  if (err >= 0 && !(p->target_id = cache_strdup(target_id ? target_id : ""))) {
    err = LC_CACHE_ENOMEM;
    msg = "out of memory recording a created page";
  }
  if (err < 0) {
    if (!msg) msg = "page creation failed";
    page_set_state(c, p, PAGE_GONE);
    if (h) {
      h->page = NULL;
      handle_set_state(c, h, HANDLE_FAILED);
    }
    cache_log(c, LC_CACHE_LOG_WARN,
              "ctxcache: creating page %" PRIu64 " in context %" PRIu64 " failed (%d): %s", page_id,
              x->id, err, msg);
    if (h) handle_fire(c, h, LC_CACHE_ECREATE, msg);
  } else if (h) {
    page_set_state(c, p, PAGE_IN_USE);
    handle_fire(c, h, 0, NULL);
  } else {
    page_settle(c, p, 0, now_ms); /* its handle was released while it was being created */
  }
  ctx_maybe_retire(c, x, now_ms);
out:
  cache_leave(c);
}

void lc_cache_page_closed(lc_cache *c, uint64_t page_id, int err, int64_t now_ms) {
  if (!c) return;
  cache_enter(c);
  cache_page *p = page_find(c, page_id);
  if (p && p->state == PAGE_CLOSING) {
    page_set_state(c, p, PAGE_GONE);
    c->stats.pages_closed++;
    if (err < 0)
      cache_log(c, LC_CACHE_LOG_WARN,
                "ctxcache: closing page %" PRIu64 " failed (%d); counted as closed", page_id, err);
  }
  cache_leave(c);
}

/* -------------------------------------------------------------------------- cleanup */

/* The least recently idled page of the pool if it is idle for at least `idle_ms`: the pool
 * is in idle order, so when it is not, no page is. */
static cache_page *page_first_expired(const lc_cache *c, int64_t idle_ms, int64_t now_ms) {
  cache_page *p = page_lru_idle(c);
  return p && now_ms - p->idle_since_ms >= idle_ms ? p : NULL;
}

/* Whether an unused context is one the LRU pass may close. */
static int ctx_lru_candidate(const lc_cache *c, const cache_ctx *x, int force) {
  return x->browser_gen == c->gen && !x->detached && x->creating_pages == 0 &&
         (x->idle_pages == 0 || force);
}

int lc_cache_cleanup(lc_cache *c, const lc_cleanup_params *p, int64_t now_ms) {
  if (!c || !p || p->max_contexts < 0 || (p->n_close_ids > 0 && !p->close_ids))
    return LC_CACHE_EINVAL;
  cache_enter(c);
  int started = 0;
  cache_ctx *x;
  /* No pass below calls out (closes are only marked until cache_leave), so each walks its
   * list once, keeping the next entry before it closes the current one. */
  if (p->idle_ms > 0) {
    cache_page *pg;
    while ((pg = page_first_expired(c, p->idle_ms, now_ms)) != NULL)
      page_begin_close(c, pg, now_ms);
    /* Open refcount-0 contexts without pages, unused this long: the unused list is in
     * release order, which is idle_since order, so the walk stops at the first too recent. */
    for (cache_link *l = c->unused.next, *next; l != &c->unused; l = next) {
      next = l->next;
      x = CONTAINER(l, cache_ctx, unused_link);
      if (now_ms - x->idle_since_ms < p->idle_ms) break;
      if (x->idle_pages > 0 || x->creating_pages > 0) continue;
      ctx_begin_close(c, x, now_ms);
      started++;
    }
  }
  for (size_t i = 0; i < p->n_close_ids; i++) {
    uint64_t id = p->close_ids[i];
    x = ctx_find(c, id);
    if (!x || !ctx_state_counts_open(x->state)) continue; /* unknown, closing or finished */
    if (x->refcount > 0) {
      cache_log(c, LC_CACHE_LOG_WARN,
                "ctxcache: cleanup refused to close context %" PRIu64 ": in use, refcount %d", id,
                x->refcount);
      continue;
    }
    if (x->state == CTX_CREATING || x->creating_pages > 0) {
      cache_log(c, LC_CACHE_LOG_INFO,
                "ctxcache: cleanup did not close context %" PRIu64 ": still being created", id);
      continue;
    }
    ctx_begin_close(c, x, now_ms);
    started++;
  }
  /* The LRU pass: unused contexts, least recently used first, while too many are open. */
  for (cache_link *l = c->unused.next, *next; l != &c->unused && c->open_current > p->max_contexts;
       l = next) {
    next = l->next;
    x = CONTAINER(l, cache_ctx, unused_link);
    if (!ctx_lru_candidate(c, x, p->force)) continue;
    ctx_begin_close(c, x, now_ms);
    started++;
  }
  cache_leave(c);
  return started;
}

/* The page whose close began first, if it is overdue (closes are in deadline order). */
static cache_page *page_first_overdue(const lc_cache *c, int64_t now_ms) {
  if (link_empty(&c->closing_pages)) return NULL;
  cache_page *p = CONTAINER(c->closing_pages.next, cache_page, link);
  return now_ms >= p->close_deadline_ms ? p : NULL;
}

/* The context whose close began first, if it is overdue. */
static cache_ctx *ctx_first_overdue(const lc_cache *c, int64_t now_ms) {
  if (link_empty(&c->closing_ctxs)) return NULL;
  cache_ctx *x = CONTAINER(c->closing_ctxs.next, cache_ctx, closing_link);
  return now_ms >= x->close_deadline_ms ? x : NULL;
}

void lc_cache_tick(lc_cache *c, int64_t now_ms) {
  if (!c) return;
  cache_enter(c);
  cache_page *p;
  while ((p = page_first_overdue(c, now_ms)) != NULL) {
    page_set_state(c, p, PAGE_GONE);
    c->stats.pages_closed++;
    cache_log(c, LC_CACHE_LOG_WARN,
              "ctxcache: close of page %" PRIu64 " unanswered after %d ms; marked lost", p->id,
              c->cfg.close_timeout_ms);
  }
  cache_ctx *x;
  while ((x = ctx_first_overdue(c, now_ms)) != NULL) {
    ctx_finish_close(c, x, 1);
    cache_log(c, LC_CACHE_LOG_WARN,
              "ctxcache: close of context %" PRIu64 " unanswered after %d ms; marked lost", x->id,
              c->cfg.close_timeout_ms);
  }
  cache_leave(c);
}

/* ---------------------------------------------------------------------- generations */

int lc_cache_unanswered_closes(const lc_cache *c) { return c ? c->unanswered : 0; }

void lc_cache_set_generation(lc_cache *c, int browser_gen, int64_t now_ms) {
  if (!c || browser_gen == c->gen) return;
  cache_enter(c);
  c->unanswered = 0;
  if (!c->gen_lost && retired_add(c, c->gen) < 0)
    cache_log(c, LC_CACHE_LOG_ERROR,
              "ctxcache: out of memory: browser_drained will not fire for generation %d", c->gen);
  retired_remove(c, browser_gen);
  c->gen = browser_gen;
  c->gen_lost = 0;
  c->open_current = 0;
  for (cache_link *l = c->contexts.next; l != &c->contexts; l = l->next) {
    cache_ctx *x = (cache_ctx *)l;
    if (x->browser_gen != browser_gen) ctx_detach(c, x);
    if (x->browser_gen == browser_gen && ctx_state_counts_open(x->state)) c->open_current++;
  }
  /* Retiring only marks closes (nothing calls out) and never reorders the LRU list. */
  for (cache_link *l = c->contexts.next; l != &c->contexts; l = l->next)
    ctx_maybe_retire(c, (cache_ctx *)l, now_ms);
  cache_leave(c);
}

int lc_cache_generation(const lc_cache *c) { return c ? c->gen : 0; }

/* The browser holding `x` is gone: drop its pages without telling the backend. */
static void ctx_drop_pages(lc_cache *c, cache_ctx *x) {
  for (cache_link *l = x->page_list.next; l != &x->page_list; l = l->next) {
    cache_page *p = CONTAINER(l, cache_page, ctx_link);
    switch (p->state) {
      case PAGE_CREATING: {
        cache_handle *h = p->handle ? handle_find(c, p->handle) : NULL;
        if (h) h->page = NULL;
        page_set_state(c, p, PAGE_GONE);
        break;
      }
      case PAGE_IDLE:
        page_set_state(c, p, PAGE_GONE);
        break;
      case PAGE_CLOSING:
        page_set_state(c, p, PAGE_GONE);
        c->stats.pages_closed++;
        break;
      case PAGE_IN_USE:
        page_set_state(c, p, PAGE_DEAD);
        break;
      default:
        break;
    }
  }
}

void lc_cache_browser_lost(lc_cache *c, int browser_gen, int64_t now_ms) {
  if (!c) return;
  cache_enter(c);
  int dropped = 0;
  for (cache_link *l = c->contexts.next; l != &c->contexts; l = l->next) {
    cache_ctx *x = (cache_ctx *)l;
    if (x->browser_gen != browser_gen) continue;
    if (ctx_state_counts_open(x->state)) {
      ctx_set_state(c, x, CTX_DEAD);
      c->stats.contexts_lost++;
      dropped++;
    } else if (x->state == CTX_CLOSING) {
      ctx_set_state(c, x, CTX_CLOSED);
      c->stats.contexts_lost++;
      c->stats.contexts_closed++;
      dropped++;
    }
  }
  for (cache_link *m = c->contexts.next; m != &c->contexts; m = m->next) {
    cache_ctx *x = (cache_ctx *)m;
    if (x->browser_gen == browser_gen) ctx_drop_pages(c, x);
  }
  /* Every handle still waiting fails; mark them all before the first callback runs. */
  for (cache_link *l = c->handles.next; l != &c->handles; l = l->next) {
    cache_handle *h = (cache_handle *)l;
    if (h->live && !h->fired && h->ctx->browser_gen == browser_gen)
      handle_set_state(c, h, HANDLE_FAILED);
  }
  retired_remove(c, browser_gen);
  if (browser_gen == c->gen) c->gen_lost = 1;
  if (dropped)
    cache_log(c, LC_CACHE_LOG_WARN, "ctxcache: browser generation %d lost: %d contexts dropped",
              browser_gen, dropped);
  handle_fire_failed(c, LC_CACHE_ELOST, "the browser was lost");
  cache_leave(c);
}

/* ------------------------------------------------------------------- observation */

size_t lc_cache_snapshot(const lc_cache *c, lc_cache_ctx_info *out, size_t cap, size_t *total,
                         int64_t now_ms) {
  size_t n = 0, all = 0;
  if (c) {
    for (cache_link *l = c->contexts.next; l != &c->contexts; l = l->next) {
      const cache_ctx *x = (const cache_ctx *)l;
      if (!ctx_state_counts_open(x->state)) continue;
      all++;
      if (n >= cap || !out) continue;
      lc_cache_ctx_info *i = &out[n++];
      memset(i, 0, sizeof *i);
      i->id = x->id;
      memcpy(i->signature, x->signature, LC_SIG_LEN);
      i->refcount = x->refcount;
      i->pages = x->pages;
      i->idle_pages = x->idle_pages;
      i->creating_pages = x->creating_pages;
      i->idle_ms = x->refcount == 0 ? now_ms - x->idle_since_ms : 0;
      i->age_ms = now_ms - x->created_ms;
      i->uses = x->uses;
      i->page_uses = x->page_uses;
      i->retired = x->retired;
      i->browser_gen = x->browser_gen;
      i->creating = x->state == CTX_CREATING;
      if (x->browser_ctx_id)
        snprintf(i->browser_ctx, sizeof i->browser_ctx, "%s", x->browser_ctx_id);
    }
  }
  if (total) *total = all;
  return n;
}

void lc_cache_get_stats(const lc_cache *c, lc_cache_stats *out) {
  if (!out) return;
  if (!c) {
    memset(out, 0, sizeof *out);
    return;
  }
  *out = c->stats;
}

int lc_cache_open_count(const lc_cache *c) { return c ? c->stats.contexts_open : 0; }

int lc_cache_gen_contexts(const lc_cache *c, int gen, int *refs) {
  int n = 0, r = 0;
  if (c) {
    for (cache_link *l = c->contexts.next; l != &c->contexts; l = l->next) {
      const cache_ctx *x = (const cache_ctx *)l;
      if (x->browser_gen != gen || x->state == CTX_CLOSED) continue;
      n++;
      r += x->refcount;
    }
  }
  if (refs) *refs = r;
  return n;
}

/* Writes a failure into `why`; returns -1. */
static int check_fail(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int check_fail(char *why, size_t why_len, const char *fmt, ...) {
  if (why && why_len) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* Whether `x` is one of the contexts the cache lists. */
static int check_ctx_listed(const lc_cache *c, const cache_ctx *x) {
  return ctx_find(c, x->id) == x;
}

/* The length of list `head`. */
static size_t check_list_len(const cache_link *head) {
  size_t n = 0;
  for (const cache_link *l = head->next; l != head; l = l->next) n++;
  return n;
}

/* The checks on one page of `x`; see lc_cache_check. */
static int check_page(const lc_cache *c, const cache_ctx *x, const cache_page *p, char *why,
                      size_t why_len) {
  if (p->ctx != x)
    return check_fail(why, why_len, "page %" PRIu64 " listed under another context", p->id);
  if ((page_find(c, p->id) == p) != (p->state != PAGE_GONE))
    return check_fail(why, why_len, "page %" PRIu64 " and the page map disagree", p->id);
  /* Its holder: the live handle it names, if that handle names it back. A second handle
   * holding it would have to be named by it too, so "at most one" follows from the handle
   * checks (every live handle's page names that handle). */
  const cache_handle *holder = p->handle ? handle_find(c, p->handle) : NULL;
  if (holder && holder->page != p) holder = NULL;
  int in_state_list = link_linked(&p->link), in_idle = link_linked(&p->ctx_idle_link);
  if ((p->state == PAGE_IDLE || p->state == PAGE_CLOSING || p->state == PAGE_GONE) !=
          in_state_list ||
      (p->state == PAGE_IDLE) != in_idle ||
      link_linked(&p->send_link) != (p->state == PAGE_CLOSING && !p->close_sent))
    return check_fail(why, why_len, "page %" PRIu64 " is in the wrong lists", p->id);
  switch (p->state) {
    case PAGE_IN_USE:
    case PAGE_DEAD:
      if (!holder || holder->id != p->handle)
        return check_fail(why, why_len, "page %" PRIu64 " in use without its handle", p->id);
      if (p->state == PAGE_IN_USE && (x->state != CTX_OPEN || holder->state != HANDLE_READY))
        return check_fail(why, why_len, "page %" PRIu64 " in use in a context not open", p->id);
      if (p->state == PAGE_DEAD && x->state != CTX_DEAD)
        return check_fail(why, why_len, "dead page %" PRIu64 " in a live context", p->id);
      break;
    case PAGE_IDLE:
      if (holder || p->handle)
        return check_fail(why, why_len, "idle page %" PRIu64 " is held", p->id);
      if (x->state != CTX_OPEN || x->detached)
        return check_fail(why, why_len, "idle page %" PRIu64 " in a context not reusable", p->id);
      break;
    case PAGE_CREATING:
      if (x->state != CTX_OPEN)
        return check_fail(why, why_len, "page %" PRIu64 " created in a context not open", p->id);
      if (p->handle && (!holder || holder->state != HANDLE_WAIT_PAGE))
        return check_fail(why, why_len, "creating page %" PRIu64 " lost its handle", p->id);
      break;
    case PAGE_CLOSING:
      if (holder || p->handle)
        return check_fail(why, why_len, "closing page %" PRIu64 " is held", p->id);
      break;
    case PAGE_GONE:
      if (holder) return check_fail(why, why_len, "gone page %" PRIu64 " is held", p->id);
      break;
  }
  return 0;
}

/* What check_ctx counts over all contexts, for the cache-wide totals. */
typedef struct check_totals {
  size_t pages, closing_pages, unsent_pages, handles, mapped, unused, closing, unsent;
  int open, open_current, idle;
} check_totals;

/* The checks on one context and its pages; see lc_cache_check. */
static int check_ctx(const lc_cache *c, const cache_ctx *x, check_totals *t, char *why,
                     size_t why_len) {
  int live = 0, pages = 0, idle = 0, creating = 0;
  if (!check_ctx_listed(c, x))
    return check_fail(why, why_len, "context %" PRIu64 " missing from the context map", x->id);
  for (const cache_link *l = x->handle_list.next; l != &x->handle_list; l = l->next) {
    const cache_handle *h = CONTAINER(l, cache_handle, ctx_link);
    if (!h->live || h->ctx != x)
      return check_fail(why, why_len, "context %" PRIu64 " lists a handle not its own", x->id);
    live++;
  }
  for (const cache_link *l = x->waiting.next; l != &x->waiting; l = l->next) {
    const cache_handle *h = CONTAINER(l, cache_handle, wait_link);
    if (!h->live || h->ctx != x || h->state != HANDLE_WAIT_CTX)
      return check_fail(why, why_len, "context %" PRIu64 " lists a handle not waiting", x->id);
  }
  for (const cache_link *l = x->page_list.next; l != &x->page_list; l = l->next) {
    const cache_page *p = CONTAINER(l, cache_page, ctx_link);
    if (check_page(c, x, p, why, why_len) < 0) return -1;
    t->closing_pages += p->state == PAGE_CLOSING;
    t->unsent_pages += p->state == PAGE_CLOSING && !p->close_sent;
    if (p->state == PAGE_GONE) continue;
    pages++;
    idle += p->state == PAGE_IDLE;
    creating += p->state == PAGE_CREATING;
  }
  uint64_t seq = 0;
  for (const cache_link *l = x->idle_list.next; l != &x->idle_list; l = l->next) {
    const cache_page *p = CONTAINER(l, cache_page, ctx_idle_link);
    if (p->ctx != x || p->state != PAGE_IDLE || p->idle_seq <= seq)
      return check_fail(why, why_len, "context %" PRIu64 " idle list out of order", x->id);
    seq = p->idle_seq;
  }
  t->pages += (size_t)pages;
  t->handles += (size_t)live;
  if (x->refcount < 0)
    return check_fail(why, why_len, "context %" PRIu64 " refcount %d", x->id, x->refcount);
  if (x->refcount != live)
    return check_fail(why, why_len, "context %" PRIu64 " refcount %d but %d live handles", x->id,
                      x->refcount, live);
  if (x->refcount > 0 && (x->state == CTX_CLOSING || x->state == CTX_CLOSED))
    return check_fail(why, why_len, "context %" PRIu64 " closing with refcount %d", x->id,
                      x->refcount);
  if (pages != x->pages || idle != x->idle_pages || creating != x->creating_pages)
    return check_fail(why, why_len, "context %" PRIu64 " page counts %d/%d/%d, found %d/%d/%d",
                      x->id, x->pages, x->idle_pages, x->creating_pages, pages, idle, creating);
  if (!ctx_state_counts_open(x->state) && !x->detached)
    return check_fail(why, why_len, "context %" PRIu64 " finished but still mapped", x->id);
  if (x->state == CTX_OPEN && !x->browser_ctx_id)
    return check_fail(why, why_len, "context %" PRIu64 " open without an id", x->id);
  if (x->retired && !x->detached)
    return check_fail(why, why_len, "retired context %" PRIu64 " still mapped", x->id);
  /* The signature map holds exactly the mapped contexts, each under its own key, so no two
   * mapped contexts share a signature; and a mapped context is of the current generation. */
  if (!x->detached) {
    if (x->browser_gen != c->gen)
      return check_fail(why, why_len, "context %" PRIu64 " of an old generation mapped", x->id);
    if (ctx_lookup(c, x->sig_key) != x)
      return check_fail(why, why_len, "%s maps to another context than %" PRIu64, x->signature,
                        x->id);
    t->mapped++;
  }
  char sig[LC_SIG_LEN];
  cache_sig_format(x->sig_key, sig);
  if (strcmp(sig, x->signature) != 0)
    return check_fail(why, why_len, "context %" PRIu64 " key and signature differ", x->id);
  if (link_linked(&x->unused_link) != (x->state == CTX_OPEN && x->refcount == 0) ||
      link_linked(&x->closing_link) != (x->state == CTX_CLOSING) ||
      link_linked(&x->send_link) != (x->state == CTX_CLOSING && !x->close_sent))
    return check_fail(why, why_len, "context %" PRIu64 " is in the wrong lists", x->id);
  t->unused += link_linked(&x->unused_link);
  t->closing += x->state == CTX_CLOSING;
  t->unsent += x->state == CTX_CLOSING && !x->close_sent;
  t->open += ctx_state_counts_open(x->state);
  t->open_current += x->browser_gen == c->gen && ctx_state_counts_open(x->state);
  t->idle += x->idle_pages;
  return 0;
}

/* The cache-wide lists: each in order and holding what it should. */
static int check_lists(const lc_cache *c, const check_totals *t, char *why, size_t why_len) {
  uint64_t seq = 0;
  for (const cache_link *l = c->idle.next; l != &c->idle; l = l->next) {
    const cache_page *p = CONTAINER(l, cache_page, link);
    if (p->state != PAGE_IDLE || p->idle_seq <= seq)
      return check_fail(why, why_len, "the idle pool is out of order at page %" PRIu64, p->id);
    seq = p->idle_seq;
  }
  seq = 0;
  for (const cache_link *l = c->unused.next; l != &c->unused; l = l->next) {
    const cache_ctx *x = CONTAINER(l, cache_ctx, unused_link);
    if (x->release_seq < seq)
      return check_fail(why, why_len, "the unused list is out of order at %" PRIu64, x->id);
    seq = x->release_seq;
  }
  if (check_list_len(&c->idle) != (size_t)t->idle || check_list_len(&c->unused) != t->unused ||
      check_list_len(&c->closing_pages) != t->closing_pages ||
      check_list_len(&c->send_pages) != t->unsent_pages ||
      check_list_len(&c->closing_ctxs) != t->closing || check_list_len(&c->send_ctxs) != t->unsent)
    return check_fail(why, why_len, "a cache-wide list has the wrong length");
  for (const cache_link *l = c->failed.next; l != &c->failed; l = l->next) {
    const cache_handle *h = CONTAINER(l, cache_handle, fail_link);
    if (!h->live || h->fired || h->state != HANDLE_FAILED)
      return check_fail(why, why_len, "handle %" PRIu64 " queued as failed", h->id);
  }
  if (lc_idmap_count(&c->by_page) != t->pages || lc_idmap_count(&c->by_sig) != t->mapped ||
      lc_idmap_count(&c->by_ctx) != check_list_len(&c->contexts))
    return check_fail(why, why_len, "a map holds %s entries than its lists",
                      lc_idmap_count(&c->by_page) != t->pages ? "other page" : "other context");
  for (size_t i = 0; i < c->n_retired; i++)
    if (c->retired[i].alive != gen_alive(c, c->retired[i].gen))
      return check_fail(why, why_len, "retired generation %d counts %d alive, found %d",
                        c->retired[i].gen, c->retired[i].alive, gen_alive(c, c->retired[i].gen));
  return 0;
}

/* The checks on one live handle; see lc_cache_check. */
static int check_handle(const lc_cache *c, const cache_handle *h, char *why, size_t why_len) {
  if (!h->live) return check_fail(why, why_len, "handle %" PRIu64 " listed live", h->id);
  if (handle_find(c, h->id) != h)
    return check_fail(why, why_len, "handle %" PRIu64 " missing from the handle map", h->id);
  if (!check_ctx_listed(c, h->ctx))
    return check_fail(why, why_len, "handle %" PRIu64 " has an unlisted context", h->id);
  if (!h->own || owner_find(c, h->owner) != h->own || !link_linked(&h->owner_link) ||
      !link_linked(&h->ctx_link) || link_linked(&h->session_link) != (h->session != NULL) ||
      link_linked(&h->wait_link) != (h->state == HANDLE_WAIT_CTX) ||
      link_linked(&h->fail_link) != (h->state == HANDLE_FAILED && !h->fired))
    return check_fail(why, why_len, "handle %" PRIu64 " is in the wrong lists", h->id);
  if (h->page && (h->page->ctx != h->ctx || h->page->handle != h->id))
    return check_fail(why, why_len, "handle %" PRIu64 " and its page disagree", h->id);
  if (h->state == HANDLE_WAIT_PAGE && !h->page)
    return check_fail(why, why_len, "handle %" PRIu64 " waits for no page", h->id);
  if (h->state == HANDLE_READY && h->want_page && !h->page)
    return check_fail(why, why_len, "handle %" PRIu64 " ready without its page", h->id);
  if (h->state == HANDLE_WAIT_CTX && !ctx_state_counts_open(h->ctx->state))
    return check_fail(why, why_len, "handle %" PRIu64 " waits for a finished context", h->id);
  return 0;
}

/* The owners: each lists its own live handles and sessions, with no session twice. */
static int check_owners(const lc_cache *c, size_t live, char *why, size_t why_len) {
  size_t pos = 0, total = 0;
  void *v;
  while (lc_idmap_next(&c->by_owner, &pos, NULL, &v)) {
    const cache_owner *o = v;
    int n = 0;
    for (const cache_link *l = o->handles.next; l != &o->handles; l = l->next) {
      const cache_handle *h = CONTAINER(l, cache_handle, owner_link);
      if (!h->live || h->own != o || h->owner != o->id)
        return check_fail(why, why_len, "owner %" PRIu64 " lists a handle not its own", o->id);
      n++;
    }
    if (n != o->n || link_linked(&o->sweep_link) != (n == 0))
      return check_fail(why, why_len, "owner %" PRIu64 " counts %d handles, lists %d", o->id, o->n,
                        n);
    total += (size_t)n;
    for (const cache_link *l = o->sessions.next; l != &o->sessions; l = l->next) {
      const cache_handle *h = CONTAINER(l, cache_handle, session_link);
      if (!h->live || h->own != o || !h->session)
        return check_fail(why, why_len, "owner %" PRIu64 " lists a session not its own", o->id);
      for (const cache_link *m = l->next; m != &o->sessions; m = m->next)
        if (strcmp(CONTAINER(m, cache_handle, session_link)->session, h->session) == 0)
          return check_fail(why, why_len, "two handles for session %s", h->session);
    }
  }
  if (total != live) return check_fail(why, why_len, "owners hold %zu handles of %zu", total, live);
  return 0;
}

int lc_cache_check(const lc_cache *c, char *why, size_t why_len) {
  if (!c) return check_fail(why, why_len, "no cache");
  check_totals t = {0};
  for (cache_link *l = c->contexts.next; l != &c->contexts; l = l->next)
    if (check_ctx(c, (const cache_ctx *)l, &t, why, why_len) < 0) return -1;
  size_t live = 0;
  for (cache_link *l = c->handles.next; l != &c->handles; l = l->next) {
    if (check_handle(c, (const cache_handle *)l, why, why_len) < 0) return -1;
    live++;
  }
  if (live != t.handles || live != lc_idmap_count(&c->by_handle))
    return check_fail(why, why_len, "%zu live handles, %zu under contexts, %zu in the map", live,
                      t.handles, lc_idmap_count(&c->by_handle));
  if (check_owners(c, live, why, why_len) < 0 || check_lists(c, &t, why, why_len) < 0) return -1;
  if (t.open != c->stats.contexts_open)
    return check_fail(why, why_len, "contexts_open %d, found %d", c->stats.contexts_open, t.open);
  if (t.open_current != c->open_current)
    return check_fail(why, why_len, "open_current %d, found %d", c->open_current, t.open_current);
  int idle = t.idle;
  if (idle != c->stats.idle_pages)
    return check_fail(why, why_len, "idle_pages %d, found %d", c->stats.idle_pages, idle);
  if (idle > c->cfg.max_idle_pages)
    return check_fail(why, why_len, "%d idle pages over the budget of %d", idle,
                      c->cfg.max_idle_pages);
  if (idle > c->stats.idle_target)
    return check_fail(why, why_len, "%d idle pages over the target of %d", idle,
                      c->stats.idle_target);
  if (c->stats.idle_target < 0 || c->stats.idle_target > c->cfg.max_idle_pages)
    return check_fail(why, why_len, "idle target %d outside 0..%d", c->stats.idle_target,
                      c->cfg.max_idle_pages);
  if ((int)live != c->stats.refs_outstanding)
    return check_fail(why, why_len, "refs_outstanding %d but %zu live handles",
                      c->stats.refs_outstanding, live);
  return 0;
}

/* ------------------------------------------------------------------------- sessions */

/* The live handle of session (owner, name), or NULL. */
static cache_handle *session_find(const lc_cache *c, uint64_t owner, const char *name) {
  const cache_owner *o = owner_find(c, owner);
  for (const cache_link *l = o ? o->sessions.next : NULL; o && l != &o->sessions; l = l->next) {
    cache_handle *h = CONTAINER(l, cache_handle, session_link);
    if (strcmp(h->session, name) == 0) return h;
  }
  return NULL;
}

uint64_t lc_cache_session_open(lc_cache *c, uint64_t owner, const char *name,
                               const char *options_json, int64_t now_ms, lc_cache_ready_fn ready,
                               void *ready_ud, int *created) {
  if (created) *created = 0;
  if (!c || !name || !options_json) return 0;
  cache_handle *h = session_find(c, owner, name);
  if (h) return h->id;
  cache_enter(c);
  uint64_t id = cache_acquire(c, owner, options_json, 1, now_ms, ready, ready_ud, name);
  if (id && created) *created = 1;
  cache_leave(c);
  return id;
}

uint64_t lc_cache_session_find(const lc_cache *c, uint64_t owner, const char *name) {
  if (!c || !name) return 0;
  const cache_handle *h = session_find(c, owner, name);
  return h ? h->id : 0;
}

int lc_cache_session_set_prepared(lc_cache *c, uint64_t owner, const char *name) {
  cache_handle *h = c && name ? session_find(c, owner, name) : NULL;
  if (!h) return LC_CACHE_ENOENT;
  if (h->state != HANDLE_READY) return LC_CACHE_EINVAL;
  h->prepared = 1;
  return 0;
}

int lc_cache_session_prepared(const lc_cache *c, uint64_t owner, const char *name) {
  const cache_handle *h = c && name ? session_find(c, owner, name) : NULL;
  return h && h->prepared;
}

int lc_cache_session_close(lc_cache *c, uint64_t owner, const char *name, int64_t now_ms) {
  if (!c || !name) return LC_CACHE_EINVAL;
  cache_enter(c);
  cache_handle *h = session_find(c, owner, name);
  int rc = h ? 0 : LC_CACHE_ENOENT;
  if (h) handle_release(c, h, now_ms);
  cache_leave(c);
  return rc;
}
