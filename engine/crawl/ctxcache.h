/* ctxcache.h: the refcounted browser-context cache.
 *
 * Owns: every browser context and page the engine has open, their reference counts,
 * the handles that hold those references, the LRU and idle bookkeeping, and cleanup.
 * It is pure logic: it talks to a browser only through lc_cache_backend (function
 * pointers), and time is always passed in as `now_ms`, so unit tests use a fake
 * backend and a fake clock.
 *
 * Vocabulary
 *   context   one browser context (Target.createBrowserContext), keyed by a signature
 *             of the options that shape it. Belongs to one browser generation.
 *   page      one target (tab) inside a context. Either in use by exactly one handle,
 *             or idle (kept for reuse, holding no reference), or closing.
 *   handle    one acquisition. It holds exactly one reference on one context, and for a
 *             page handle also the page itself. Handles are named by a uint64 id that is
 *             never reused, so a stale or double release is detected, never misapplied.
 *   owner     an opaque uint64 (a request task, a job) recorded on each handle;
 *             lc_cache_release_owner() is the one finalizer that gives back all of it.
 *
 * Invariants (checked by lc_cache_check)
 *   - ctx->refcount == number of live handles on ctx; never negative.
 *   - A context whose refcount is above zero is never closed, by any path.
 *   - A page is in at most one of: in use (by one handle), idle, closing.
 *   - At most one mapped context (creating or open, not retired) per signature in the
 *     current browser generation.
 *   - Idle pages, all contexts together, never exceed max_idle_pages.
 *
 * The memory bound (what lc_cache_cleanup guarantees when it returns): the open contexts of
 * the current generation with refcount 0 and no page being created number at most
 * max(max_contexts, max_idle_pages) without force (each one kept past max_contexts holds an
 * idle page, and the pool holds at most max_idle_pages), and at most max_contexts with force.
 * So what the browser holds depends on the policy's numbers and the live references only,
 * never on how many distinct signatures have been seen.
 *
 * Acquire is asynchronous (a context or page may need creating): lc_cache_acquire()
 * returns a handle id at once, and the `ready` callback fires exactly once, later or
 * before acquire returns, with 0 or a negative error. The handle holds its reference from
 * the moment acquire returns: releasing a pending handle is legal and cancels the
 * callback.
 */
#ifndef LC_CTXCACHE_H
#define LC_CTXCACHE_H

#include <stddef.h>
#include <stdint.h>

#define LC_SIG_LEN 17 /* 16 hex digits and a NUL */

enum {
  LC_CACHE_OK = 0,
  LC_CACHE_EBADHANDLE = -1, /* release of a handle that is not live: double or unknown */
  LC_CACHE_EINUSE = -2,     /* asked to close a context whose refcount is above zero */
  LC_CACHE_ENOENT = -3,     /* no such context or session */
  LC_CACHE_ECREATE = -4,    /* the backend failed to create a context or page */
  LC_CACHE_ELOST = -5,      /* the browser that held it crashed or was lost */
  LC_CACHE_ENOMEM = -6,
  LC_CACHE_ESHUTDOWN = -7, /* the cache is shutting down */
  LC_CACHE_EINVAL = -8,    /* a NULL cache or an invalid parameter */
};

/* Levels passed to lc_cache_backend.log: the same values as LC_LOG_* in log.h. */
enum { LC_CACHE_LOG_ERROR = 0, LC_CACHE_LOG_WARN = 1, LC_CACHE_LOG_INFO = 2 };

typedef struct lc_cache lc_cache;

/* What the backend is told about; ids are stable, pointers are not handed out. */
typedef struct lc_cache_backend {
  void *ud;
  /* Start creating context `ctx_id` in browser `browser_gen` from `options_json` (the
   * canonical options, see lc_cache_signature). Complete with lc_cache_context_created(). */
  void (*create_context)(void *ud, uint64_t ctx_id, int browser_gen, const char *options_json);
  /* Start disposing a context. Complete with lc_cache_context_closed(). */
  void (*close_context)(void *ud, uint64_t ctx_id, const char *browser_ctx_id, int browser_gen);
  /* Start creating a page in a context. Complete with lc_cache_page_created(). */
  void (*create_page)(void *ud, uint64_t page_id, uint64_t ctx_id, const char *browser_ctx_id,
                      int browser_gen, const char *options_json);
  /* Start closing a page. Complete with lc_cache_page_closed(). */
  void (*close_page)(void *ud, uint64_t page_id, const char *target_id, int browser_gen);
  /* Every context of an old browser generation is closed or released: the engine may
   * now close that browser. Optional. */
  void (*browser_drained)(void *ud, int browser_gen);
  /* A message worth logging (a refused hook request, a lost close, a bad release). */
  void (*log)(void *ud, int level, const char *msg);
} lc_cache_backend;

/* Called once per acquire when the handle is ready (err == 0) or failed (err < 0, msg says why). */
typedef void (*lc_cache_ready_fn)(void *ud, uint64_t handle, int err, const char *msg);

typedef struct lc_cache_config {
  int close_timeout_ms; /* a close or dispose unanswered this long is marked lost */
  /* The idle-page budget: idle pages kept for reuse, one pool across every context. A page
   * released while the pool is full pushes out the least recently idled page, whatever its
   * context; a context left without idle pages is then closable by the LRU pass. */
  int max_idle_pages;
  /* > 0: a context that has handed out this many pages is retired: it leaves the signature
   * map (the next acquire of its key creates a fresh context), keeps no idle pages, and is
   * closed when its last reference is given back. 0: contexts never wear out. */
  int max_pages_per_context;
  /* > 0: a page that has been handed out this many times is closed when it comes back
   * instead of idling (its renderer has grown with age); 0: pages never wear out. */
  int max_uses_per_page;
  /* 1: keep fewer idle pages than max_idle_pages while they are not being reused. The pool's
   * target starts at max_idle_pages; a page the pool pushes out lowers it by one, and an
   * acquire that creates a page in a context one of whose pages the pool recently let go
   * (a "ghost": the last max_idle_pages such contexts are remembered) raises it by one. So
   * a few configurations keep their pages (they come back before eviction), while many
   * rotating ones, which a pool of max_idle_pages could not serve anyway, keep none. */
  int adaptive_idle;
} lc_cache_config;

typedef struct lc_cache_stats {
  uint64_t contexts_created;
  uint64_t contexts_closed; /* closes that completed, answered or lost */
  uint64_t contexts_lost;   /* closes that timed out, or contexts dropped by a crash */
  uint64_t pages_created;
  uint64_t pages_closed;
  uint64_t pages_reused;
  int contexts_open; /* creating or open, all browser generations */
  int contexts_open_peak;
  int refs_outstanding; /* sum of refcounts = live handles */
  int idle_pages;
  uint64_t bad_releases;     /* double releases and releases without an acquire */
  uint64_t pages_evicted;    /* idle pages closed to keep the pool within its target */
  uint64_t idle_ghost_hits;  /* acquires that found a page the pool had let go (adaptive_idle) */
  int idle_target;           /* idle pages the pool keeps now: max_idle_pages, or less adapting */
  uint64_t contexts_retired; /* contexts retired by max_pages_per_context */
  uint64_t pages_retired;    /* pages closed after max_uses_per_page uses */
} lc_cache_stats;

/* One context as the policy hook sees it. */
typedef struct lc_cache_ctx_info {
  uint64_t id;
  char signature[LC_SIG_LEN];
  int refcount;
  int pages; /* idle pages plus pages in use */
  int idle_pages;
  int creating_pages; /* pages asked of Chromium and not yet answered */
  int64_t idle_ms;    /* since the refcount last dropped to zero; 0 while in use */
  int64_t age_ms;
  uint64_t uses;      /* acquires served */
  uint64_t page_uses; /* of those, acquires of a page (what max_pages_per_context counts) */
  int retired;        /* retired by max_pages_per_context: takes no new acquires */
  int browser_gen;
  int creating;         /* 1 while Chromium has not yet answered its creation */
  char browser_ctx[64]; /* Chromium's browserContextId once created, else "" */
} lc_cache_ctx_info;

typedef struct lc_cleanup_params {
  int max_contexts;          /* keep at most this many idle-or-busy contexts open */
  int force;                 /* may close refcount-0 contexts that still have idle pages */
  int64_t idle_ms;           /* > 0: close idle pages and contexts unused this long */
  const uint64_t *close_ids; /* contexts the policy hook asks to close */
  size_t n_close_ids;
} lc_cleanup_params;

/* Create and destroy. destroy requires that no handle is live (asserts in debug builds);
 * release every owner first. */
lc_cache *lc_cache_new(const lc_cache_backend *backend, const lc_cache_config *cfg);
void lc_cache_free(lc_cache *c);

/* Compute the signature of canonical options: FNV-1a 64 of the bytes, as 16 hex digits.
 * The caller canonicalizes (sorted keys, only context-shaping options). */
void lc_cache_signature(const char *canonical_options, char out[LC_SIG_LEN]);

/* Take one reference on the context for `options_json` (reusing or creating it) and, when
 * `want_page`, a page in it (reusing an idle page or creating one). Returns the handle id
 * (> 0) or 0 on allocation failure. `ready` fires exactly once unless the handle is
 * released first. Released by lc_cache_release() or lc_cache_release_owner(). */
uint64_t lc_cache_acquire(lc_cache *c, uint64_t owner, const char *options_json, int want_page,
                          int64_t now_ms, lc_cache_ready_fn ready, void *ready_ud);

/* Give back exactly the reference `handle` took. A healthy page of a context that can still
 * be reused becomes idle (the least recently idled page of the whole cache is closed if the
 * pool is then over max_idle_pages); any other page is closed.
 * Returns LC_CACHE_EBADHANDLE (and logs, and counts bad_releases) for a handle that is not
 * live. Does not run cleanup: the engine runs it after every release. */
int lc_cache_release(lc_cache *c, uint64_t handle, int64_t now_ms);

/* The finalizer: release every handle owned by `owner`. Returns how many. */
int lc_cache_release_owner(lc_cache *c, uint64_t owner, int64_t now_ms);

/* Live handles owned by `owner`. */
int lc_cache_owned(const lc_cache *c, uint64_t owner);
/* Live handles whose owner id is in [lo, hi): what one job's owners hold. */
int lc_cache_owned_range(const lc_cache *c, uint64_t lo, uint64_t hi);

/* Mark the page of a handle as not reusable (it timed out, crashed, or misbehaved): it is
 * closed at release instead of kept idle. */
int lc_cache_page_mark_bad(lc_cache *c, uint64_t handle);
/* The same for every page handle `owner` holds (a task stopped at its deadline: whatever its
 * pages were doing is not to be trusted). Returns how many. */
int lc_cache_owner_mark_bad(lc_cache *c, uint64_t owner);

/* Page `page_id` is broken (its renderer crashed, its target detached): closed now if idle,
 * at its release if in use; never handed out again. Returns 0 or LC_CACHE_ENOENT. */
int lc_cache_page_broken(lc_cache *c, uint64_t page_id, int64_t now_ms);
/* 1 while page `page_id` is held by a handle (being created for one, or in use), else 0
 * (idle, closing, unknown). */
int lc_cache_page_in_use(const lc_cache *c, uint64_t page_id);

/* What a ready handle refers to. NULL/0 for unknown handles or before ready. The strings
 * are owned by the cache and live as long as the handle. */
const char *lc_cache_handle_target(const lc_cache *c, uint64_t handle);      /* CDP targetId */
const char *lc_cache_handle_browser_ctx(const lc_cache *c, uint64_t handle); /* browserContextId */
const char *lc_cache_handle_signature(const lc_cache *c, uint64_t handle);
uint64_t lc_cache_handle_ctx(const lc_cache *c, uint64_t handle);
uint64_t lc_cache_handle_page(const lc_cache *c, uint64_t handle);
int lc_cache_handle_browser_gen(const lc_cache *c, uint64_t handle);
int lc_cache_handle_live(const lc_cache *c, uint64_t handle);
int lc_cache_handle_page_fresh(const lc_cache *c, uint64_t handle); /* 1 if newly created */
/* 1 ready, 0 still waiting for its context or page, -1 failed, -2 not live. */
int lc_cache_handle_state(const lc_cache *c, uint64_t handle);
/* The owner of a live handle, or 0. */
uint64_t lc_cache_handle_owner(const lc_cache *c, uint64_t handle);
/* The owner of the handle that holds the page (in use or being created), or 0 when idle. */
uint64_t lc_cache_page_owner(const lc_cache *c, uint64_t page_id);

/* The refcount of context `ctx_id` in any state the cache still tracks (creating, open,
 * closing, failed, dead by crash), or LC_CACHE_ENOENT once it is gone. For tests and
 * diagnostics. */
int lc_cache_context_refcount(const lc_cache *c, uint64_t ctx_id);

/* Backend completions. `err` < 0 on failure; `msg` may be NULL. Completions for ids the
 * cache no longer knows (a close that was marked lost, a crashed browser) are ignored. */
void lc_cache_context_created(lc_cache *c, uint64_t ctx_id, const char *browser_ctx_id, int err,
                              const char *msg, int64_t now_ms);
void lc_cache_context_closed(lc_cache *c, uint64_t ctx_id, int err, int64_t now_ms);
void lc_cache_page_created(lc_cache *c, uint64_t page_id, const char *target_id, int err,
                           const char *msg, int64_t now_ms);
void lc_cache_page_closed(lc_cache *c, uint64_t page_id, int err, int64_t now_ms);

/* A cleanup pass. Closes idle pages and contexts past p->idle_ms; then the contexts in
 * p->close_ids that are closable (refused with a warning naming each one in use); then
 * refcount-0 contexts of the current generation, least recently used first, while more
 * than p->max_contexts are open. Without p->force a context with idle pages is skipped;
 * with it, its pages are closed first. Never closes a context whose refcount is above 0.
 * Returns the number of contexts it started closing. */
int lc_cache_cleanup(lc_cache *c, const lc_cleanup_params *p, int64_t now_ms);

/* Timers: marks closes past close_timeout_ms as lost (their slot is freed). Call often. */
void lc_cache_tick(lc_cache *c, int64_t now_ms);

/* The browser generation new contexts go to. Starting a new generation (a recycle)
 * detaches the old generation's contexts from the signature map: their idle pages and
 * refcount-0 contexts are closed now, referenced ones when their last reference goes;
 * browser_drained fires when nothing of the old generation remains open. */
void lc_cache_set_generation(lc_cache *c, int browser_gen, int64_t now_ms);
int lc_cache_generation(const lc_cache *c);
/* Closes of contexts of the current generation that went unanswered (marked lost by tick)
 * since it became current: a browser that keeps doing this is replaced. */
int lc_cache_unanswered_closes(const lc_cache *c);

/* The browser of generation `gen` is gone (crashed or killed): drop its contexts and pages
 * without telling the backend. Pending acquires on them fail with LC_CACHE_ELOST. Handles
 * stay live and are released exactly once later, without error. */
void lc_cache_browser_lost(lc_cache *c, int browser_gen, int64_t now_ms);

/* Snapshot of open contexts (the policy hook's state.contexts, job:contexts()), LRU first.
 * Returns the count written (at most `cap`); `*total` gets the full count. Callers list at
 * most LC_CACHE_SNAPSHOT_MAX contexts. */
#define LC_CACHE_SNAPSHOT_MAX 512
size_t lc_cache_snapshot(const lc_cache *c, lc_cache_ctx_info *out, size_t cap, size_t *total,
                         int64_t now_ms);

void lc_cache_get_stats(const lc_cache *c, lc_cache_stats *out);

/* Contexts (all generations) in state creating or open. */
int lc_cache_open_count(const lc_cache *c);
/* Contexts of generation `gen` that are not closed, and their total refcount. */
int lc_cache_gen_contexts(const lc_cache *c, int gen, int *refs);

/* Check every invariant; returns 0, or -1 and writes what broke into `why`. */
int lc_cache_check(const lc_cache *c, char *why, size_t why_len);

/* Sessions: a named page that an owner keeps across requests. The first open acquires a
 * page handle (one reference); later opens of the same (owner, name) return the same
 * handle and take nothing. lc_cache_session_close releases it; lc_cache_release_owner
 * releases it too. Returns the handle, or 0; `*created` says whether it was new. */
uint64_t lc_cache_session_open(lc_cache *c, uint64_t owner, const char *name,
                               const char *options_json, int64_t now_ms, lc_cache_ready_fn ready,
                               void *ready_ud, int *created);
uint64_t lc_cache_session_find(const lc_cache *c, uint64_t owner, const char *name);
int lc_cache_session_close(lc_cache *c, uint64_t owner, const char *name, int64_t now_ms);
/* Whether the session's opener has prepared its page (emulation, blocking): only then do other
 * openers get it. The mark goes with the session's handle, whichever way it is released.
 * set_prepared returns 0, LC_CACHE_ENOENT (no such session) or LC_CACHE_EINVAL (its page is
 * not ready). */
int lc_cache_session_set_prepared(lc_cache *c, uint64_t owner, const char *name);
int lc_cache_session_prepared(const lc_cache *c, uint64_t owner, const char *name);

#endif
