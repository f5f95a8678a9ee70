/* bpool.h: the browsers the engine runs, their CDP connections, and the pages attached in them.
 * Owns: one "generation" per browser launched (the lc_browser, its lc_cdp connection, the
 * context/page operations waiting for it to start), every engine-side page (its CDP session,
 * its event queue, the task waiting on it), and the lc_cache_backend that turns cache
 * decisions into CDP commands. A browser crash is turned into lc_cache_browser_lost() and
 * failed waiters; the engine decides whether to start another generation. */
#ifndef LC_BPOOL_H
#define LC_BPOOL_H

#include <stdint.h>
#include <uv.h>

#include "browser.h"
#include "cdp.h"
#include "ctxcache.h"
#include "ws.h"

typedef struct lc_bpool lc_bpool;
typedef struct lc_enpage lc_enpage;

typedef struct lc_bpool_cbs {
  void *ud;
  /* A generation started (err == 0) or failed to start. */
  void (*on_ready)(void *ud, int gen, int err, const char *msg);
  /* A generation is gone. `crashed` is 0 when the engine closed it on purpose. */
  void (*on_lost)(void *ud, int gen, int crashed, const char *why);
  /* Every old generation has been closed by the cache (a recycle finished). */
  void (*on_drained)(void *ud, int gen);
  /* A main-frame document request of a guarded page is paused (a navigation, or one hop of its
   * redirects): answer it with lc_enpage_nav_decide, later, from the resume point. `redirected`
   * is 1 when a redirect response caused it. `request_id` and `url` are valid during the call
   * only. NULL: such requests continue at once. */
  void (*on_nav_paused)(void *ud, uint64_t page_id, const char *request_id, const char *url,
                        int redirected);
} lc_bpool_cbs;

typedef struct lc_bpool_stats {
  int browser_starts;
  int browser_crashes;
  int live_browsers;
  uint64_t events_dropped;      /* past a page's caps, or arrived while the page was idle */
  uint64_t events_queued_bytes; /* params bytes buffered now, all pages */
  uint64_t log_bytes;           /* bytes the browsers wrote to stdout/stderr (kept: a ring each) */
  uint64_t log_bytes_done;      /* of browsers already gone (internal) */
  size_t log_kept_max;          /* the most any live browser's ring holds (<= 256 KiB) */
  int unsandboxed;              /* live browsers running with --no-sandbox */
} lc_bpool_stats;

/* Created once per engine; freed by lc_bpool_free after the cache released everything (it
 * fails whatever is still pending, then destroys the browsers; run the loop afterwards so
 * they are reaped). */
/* connect_url NULL: each generation launches a browser and talks to it over its pipe. Else each
 * generation is a WebSocket connection to that browser (someone else's: never launched, killed
 * or watched; closing a generation closes only the connection). */
lc_bpool *lc_bpool_new(uv_loop_t *loop, lc_ws_ctx *ws, const lc_browser_opts *bopts,
                       const char *connect_url, const lc_bpool_cbs *cbs);
void lc_bpool_free(lc_bpool *p);
/* The cache this pool completes operations on (set once, before any start). */
void lc_bpool_set_cache(lc_bpool *p, lc_cache *c);
/* The backend to give lc_cache_new. */
lc_cache_backend lc_bpool_backend(lc_bpool *p);
void lc_bpool_set_close_timeout(lc_bpool *p, int ms);

/* Launch a new browser generation; on_ready fires later. Returns the generation (> 0) or a
 * negative error with *err (malloc'ed). */
int lc_bpool_start(lc_bpool *p, char **err);
/* Close a generation on purpose (recycle done, shutdown); on_lost(crashed=0) follows. */
void lc_bpool_close(lc_bpool *p, int gen, int grace_ms);
/* Close every generation now (shutdown). */
void lc_bpool_close_all(lc_bpool *p, int grace_ms);
/* SIGKILL a generation's browser (fault tests, a hung browser). */
void lc_bpool_kill(lc_bpool *p, int gen);
int lc_bpool_ready(const lc_bpool *p, int gen);
int lc_bpool_live(const lc_bpool *p);
long lc_bpool_rss_kb(const lc_bpool *p, int gen); /* gen 0: all */
/* Memory of the browsers of generation gen (0: all) in one walk each; returns how many
 * browsers were alive. */
int lc_bpool_mem(const lc_bpool *p, int gen, int want_pss, lc_proc_mem *out);
double lc_bpool_cpu_seconds(const lc_bpool *p);
pid_t lc_bpool_pid(const lc_bpool *p, int gen);
void lc_bpool_get_stats(const lc_bpool *p, lc_bpool_stats *out);

/* Browser-level command on a generation (no session). Returns 0 if it cannot be sent (the
 * reply then never fires). */
uint64_t lc_bpool_send(lc_bpool *p, int gen, const char *method, const char *params, int timeout_ms,
                       lc_cdp_reply_fn fn, void *ud);
int lc_bpool_cancel(lc_bpool *p, int gen, uint64_t id);

/* Engine-side pages. */
lc_enpage *lc_bpool_page(lc_bpool *p, uint64_t page_id);
int lc_enpage_gen(const lc_enpage *pg);
const char *lc_enpage_session(const lc_enpage *pg);
const char *lc_enpage_target(const lc_enpage *pg);
/* Why the page cannot be used (crashed, detached), or NULL while it is healthy. */
const char *lc_enpage_broken(const lc_enpage *pg);
/* A command on the page's session; a reply longer than `max_reply` bytes (0: no cap) fails
 * it with LC_CDP_ETOOBIG. Returns 0 if it cannot be sent. */
uint64_t lc_enpage_send(lc_bpool *p, lc_enpage *pg, const char *method, const char *params,
                        int timeout_ms, size_t max_reply, lc_cdp_reply_fn fn, void *ud);
/* One Fetch request pattern, as Fetch.enable takes it. */
typedef struct lc_fetch_pattern {
  const char *url;  /* urlPattern: '*' any run, '?' one character, '\\' escapes the next one */
  const char *type; /* resourceType ("Document", "Script", ...), or NULL: any */
  int response;     /* requestStage "Response" (else "Request") */
} lc_fetch_pattern;

/* Who answers a Fetch.requestPaused of a page (Fetch is enabled with the engine's patterns and
 * the script's, merged): the engine's rules come first. A request at the Request stage that
 * matches a `block` pattern is failed at once (BlockedByClient); with the guard on, a
 * main-frame document request goes to on_nav_paused (and is answered by lc_enpage_nav_decide).
 * What the engine lets through and a pattern the script enabled matches reaches the script as
 * a Fetch.requestPaused event (the script continues, fulfils or fails it); if the page cannot
 * take the event (it is idle, or not subscribed to it), or no pattern of the script matches,
 * the request is continued. */
/* The engine's rules (guard on/off, block patterns); replaces earlier ones. Returns 0, or -1
 * when out of memory (the page then has no rules: nothing is blocked or guarded). */
int lc_enpage_set_guard(lc_enpage *pg, int on, const lc_fetch_pattern *block, size_t n);
/* The engine's patterns as Fetch.enable takes them (the block patterns, then the guard's
 * Document pattern when it is on): writes up to `cap`, returns how many there are. The strings
 * are the page's, valid until the next lc_enpage_set_guard. */
size_t lc_enpage_engine_patterns(const lc_enpage *pg, lc_fetch_pattern *out, size_t cap);
/* The patterns the script enabled itself (page:send("Fetch.enable")); replaces earlier ones.
 * Returns 0, or -1 when out of memory (the page then has none). */
int lc_enpage_set_script_fetch(lc_enpage *pg, const lc_fetch_pattern *pats, size_t n);
/* The URL page:navigate is about to load (NULL: none): its first request is not paused for
 * the engine, whatever the guard. */
void lc_enpage_expect(lc_enpage *pg, const char *url);
/* Answer a paused navigation request: continue it (allow) or fail it as BlockedByClient. */
void lc_enpage_nav_decide(lc_bpool *p, lc_enpage *pg, const char *request_id, int allow);

/* The events the page buffers (its subscription): method names, or prefixes ending in '.'
 * ("Page." is every Page event). Replaces the earlier set; a new page has none. The Lua page
 * layer sets it when it prepares a page (lib/luacrawl/page.lua: M.EVENTS and what the script
 * subscribes to). Returns 0, or -1 when out of memory (the set is then empty). */
int lc_enpage_subscribe(lc_enpage *pg, const char *const *methods, size_t n);

/* Events are buffered per page up to LC_ENPAGE_MAX_EVENTS events and LC_ENPAGE_MAX_EVENT_BYTES
 * bytes of params (the oldest are dropped first, and counted), and only while the cache has
 * the page in use: an idle page's events are dropped as they come. */
#define LC_ENPAGE_MAX_EVENTS 4000
#define LC_ENPAGE_MAX_EVENT_BYTES (8u * 1024 * 1024)
/* Forget buffered events (a new navigation, a reuse). */
void lc_enpage_clear_events(lc_enpage *pg);
/* Take the oldest buffered event: 1 and the caller owns *method and *params (free both), or
 * 0 when none is buffered. */
int lc_enpage_take_event(lc_enpage *pg, char **method, char **params, size_t *len);
/* Called once when a wait ends: with the event (err NULL; the strings are the pool's, valid
 * during the call) or with err ("timeout", or why the page broke). Runs in a loop callback:
 * it must not run Lua. */
typedef void (*lc_enpage_event_fn)(void *ud, const char *method, const char *params, size_t len,
                                   const char *err);
/* Wait for the next event (call when none is buffered and the page is not broken). One wait
 * per page: -EBUSY if another is pending, -ENOMEM. */
int lc_enpage_wait_event(lc_enpage *pg, int timeout_ms, lc_enpage_event_fn fn, void *ud);
/* Drop the wait registered with `ud`, if it is still pending: fn is then never called. */
void lc_enpage_cancel_wait(lc_enpage *pg, void *ud);

#endif
