/* cache_bench.c: a unit benchmark of the context cache (engine/crawl/ctxcache.c).
 *
 * Owns: a fake backend that answers every creation inside the call and leaves every close
 * pending (so a cleanup pass is timed without its answers, and tick has closes to time out),
 * an injected clock, and the phases below, each timed with CLOCK_MONOTONIC and printed as one
 * JSON line on stdout and one human line on stderr. It measures and reports; it asserts only
 * that the cache's own counters agree with what it did (and runs lc_cache_check at the end
 * of the fill when asked to), so a broken cache cannot post a good figure.
 *
 *   cache_bench [--contexts N] [--handles N] [--owners N] [--check]
 *
 * Defaults: 10,000 contexts, 100,000 page handles over 1,000 owners, max_idle_pages = the
 * handles (every released page stays idle, so the cache holds 100,000 pages throughout).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctxcache.h"

typedef struct bench {
  lc_cache *c;
  int64_t now_ms;
  uint64_t *closes; /* pending close_page / close_context ids, just counted */
  size_t n_page_closes, n_ctx_closes;
} bench;

static void be_create_context(void *ud, uint64_t ctx_id, int gen, const char *options) {
  bench *b = ud;
  char name[32];
  snprintf(name, sizeof name, "B%" PRIu64, ctx_id);
  lc_cache_context_created(b->c, ctx_id, name, 0, NULL, b->now_ms);
}

static void be_close_context(void *ud, uint64_t ctx_id, const char *bctx, int gen) {
  ((bench *)ud)->n_ctx_closes++;
}

static void be_create_page(void *ud, uint64_t page_id, uint64_t ctx_id, const char *bctx, int gen,
                           const char *options) {
  bench *b = ud;
  char name[32];
  snprintf(name, sizeof name, "T%" PRIu64, page_id);
  lc_cache_page_created(b->c, page_id, name, 0, NULL, b->now_ms);
}

static void be_close_page(void *ud, uint64_t page_id, const char *target, int gen) {
  ((bench *)ud)->n_page_closes++;
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static size_t n_contexts = 10000, n_handles = 100000, n_owners = 1000;

/* Prints one phase: `ops` operations in `ns` nanoseconds. */
static void report(const char *phase, size_t ops, double ns, const char *note) {
  printf(
      "{\"bench\":\"ctxcache\",\"phase\":\"%s\",\"contexts\":%zu,\"handles\":%zu,\"ops\":%zu,"
      "\"ms\":%.3f,\"ns_per_op\":%.1f}\n",
      phase, n_contexts, n_handles, ops, ns / 1e6, ops ? ns / (double)ops : 0.0);
  fflush(stdout);
  fprintf(stderr, "%-34s %8zu ops  %10.3f ms  %10.1f ns/op  %s\n", phase, ops, ns / 1e6,
          ops ? ns / (double)ops : 0.0, note ? note : "");
}

static int failures;

/* A counter the cache keeps disagrees with what the bench did: the figures mean nothing. */
static void expect(const char *what, long long got, long long want) {
  if (got == want) return;
  fprintf(stderr, "cache_bench: %s is %lld, expected %lld\n", what, got, want);
  failures++;
}

static void options_of(size_t ctx, char *out, size_t len) {
  snprintf(out, len, "{\"user_agent\":\"bench-%zu\"}", ctx);
}

int main(int argc, char **argv) {
  int check = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--contexts") == 0 && i + 1 < argc)
      n_contexts = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--handles") == 0 && i + 1 < argc)
      n_handles = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--owners") == 0 && i + 1 < argc)
      n_owners = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--check") == 0)
      check = 1;
    else {
      fprintf(stderr, "usage: cache_bench [--contexts N] [--handles N] [--owners N] [--check]\n");
      return 2;
    }
  }
  if (!n_contexts || !n_owners || n_handles < n_contexts) {
    fprintf(stderr, "cache_bench: need contexts, owners > 0 and handles >= contexts\n");
    return 2;
  }
  bench b = {.now_ms = 1000};
  lc_cache_backend be = {.ud = &b,
                         .create_context = be_create_context,
                         .close_context = be_close_context,
                         .create_page = be_create_page,
                         .close_page = be_close_page};
  lc_cache_config cfg = {.close_timeout_ms = 5000, .max_idle_pages = (int)n_handles};
  b.c = lc_cache_new(&be, &cfg);
  uint64_t *h = calloc(n_handles, sizeof *h);
  char(*opts)[64] = calloc(n_contexts, sizeof *opts);
  if (!b.c || !h || !opts) return 1;
  for (size_t i = 0; i < n_contexts; i++) options_of(i, opts[i], sizeof opts[i]);
  fprintf(stderr, "cache_bench: %zu contexts, %zu page handles, %zu owners\n", n_contexts,
          n_handles, n_owners);

  /* Fill: handle i takes a page in context i % contexts for owner i % owners; each makes a
   * page (none is idle yet), the first n_contexts make their contexts too. */
  double t0 = now_ns();
  for (size_t i = 0; i < n_handles; i++) {
    b.now_ms++;
    h[i] = lc_cache_acquire(b.c, 1 + i % n_owners, opts[i % n_contexts], 1, b.now_ms, NULL, NULL);
  }
  report("acquire_new_page", n_handles, now_ns() - t0, "context by signature, page created");
  lc_cache_stats st;
  lc_cache_get_stats(b.c, &st);
  expect("refs_outstanding", st.refs_outstanding, (long long)n_handles);
  expect("contexts_open", st.contexts_open, (long long)n_contexts);
  if (check) {
    char why[256];
    t0 = now_ns();
    int rc = lc_cache_check(b.c, why, sizeof why);
    report("check", 1, now_ns() - t0, rc == 0 ? "invariants hold" : why);
    if (rc != 0) failures++;
  }

  /* Lookups by handle id. */
  t0 = now_ns();
  size_t found = 0;
  for (size_t i = 0; i < n_handles; i++) {
    found += lc_cache_handle_target(b.c, h[i]) != NULL;
    found += lc_cache_handle_owner(b.c, h[i]) == 1 + i % n_owners;
  }
  report("handle_lookup", 2 * n_handles, now_ns() - t0, "handle_target + handle_owner");
  expect("handles found", (long long)found, 2 * (long long)n_handles);

  /* Release every other handle: its page goes idle (the pool is as large as the handles). */
  t0 = now_ns();
  size_t released = 0;
  for (size_t i = 0; i < n_handles; i += 2, released++) {
    b.now_ms++;
    if (lc_cache_release(b.c, h[i], b.now_ms) != 0) failures++;
    h[i] = 0;
  }
  report("release_to_idle", released, now_ns() - t0, "page kept idle");
  lc_cache_get_stats(b.c, &st);
  expect("idle_pages", st.idle_pages, (long long)released);

  /* Acquire again: each reuses an idle page of its context. */
  t0 = now_ns();
  for (size_t i = 0; i < n_handles; i += 2) {
    b.now_ms++;
    h[i] = lc_cache_acquire(b.c, 1 + i % n_owners, opts[i % n_contexts], 1, b.now_ms, NULL, NULL);
  }
  report("acquire_idle_page", released, now_ns() - t0, "context and idle page reused");
  lc_cache_get_stats(b.c, &st);
  expect("pages_reused", (long long)st.pages_reused, (long long)released);

  /* The cleanup pass the engine runs after every release, when nothing is over the limit. */
  lc_cleanup_params p = {.max_contexts = (int)n_contexts};
  size_t passes = 1000;
  t0 = now_ns();
  for (size_t i = 0; i < passes; i++) lc_cache_cleanup(b.c, &p, b.now_ms);
  report("cleanup_nothing_to_do", passes, now_ns() - t0, "ns/op = one pass");

  /* Every owner's finalizer. */
  t0 = now_ns();
  int n_released = 0;
  for (size_t o = 1; o <= n_owners; o++) n_released += lc_cache_release_owner(b.c, o, b.now_ms);
  double ns = now_ns() - t0;
  report("release_owner", (size_t)n_released, ns, "ns/op = per handle");
  report("release_owner_per_owner", n_owners, ns, "ns/op = per owner");
  expect("handles released by owners", n_released, (long long)n_handles);
  lc_cache_get_stats(b.c, &st);
  expect("idle_pages", st.idle_pages, (long long)n_handles);

  /* Every context is unused now and holds idle pages: a pass without force may close none
   * of them (it examines them all); with max_contexts 0 that is the worst case. */
  p.max_contexts = 0;
  passes = 100;
  t0 = now_ns();
  int started = 0;
  for (size_t i = 0; i < passes; i++) started += lc_cache_cleanup(b.c, &p, b.now_ms);
  report("cleanup_noforce_all_idle", passes, now_ns() - t0,
         "ns/op = one pass over unused contexts holding idle pages");
  expect("contexts closed without force", started, 0);

  /* With force: close half the contexts (and their idle pages) in one pass. */
  p.force = 1;
  p.max_contexts = (int)(n_contexts / 2);
  size_t closes_before = b.n_page_closes;
  t0 = now_ns();
  started = lc_cache_cleanup(b.c, &p, b.now_ms);
  ns = now_ns() - t0;
  report("cleanup_force_half", 1, ns, "ns/op = the pass");
  report("cleanup_force_half_per_ctx", (size_t)started, ns, "ns/op = per context closed");
  expect("contexts closed with force", started, (long long)(n_contexts - n_contexts / 2));
  fprintf(stderr, "  (that pass marked %zu page closes)\n", b.n_page_closes - closes_before);

  /* tick while no close is due, then once past every deadline: each close marked lost. */
  passes = 1000;
  t0 = now_ns();
  for (size_t i = 0; i < passes; i++) lc_cache_tick(b.c, b.now_ms);
  report("tick_nothing_due", passes, now_ns() - t0, "ns/op = one tick");
  lc_cache_get_stats(b.c, &st);
  uint64_t pages_closed = st.pages_closed;
  t0 = now_ns();
  lc_cache_tick(b.c, b.now_ms + cfg.close_timeout_ms);
  ns = now_ns() - t0;
  lc_cache_get_stats(b.c, &st);
  report("tick_all_overdue", 1, ns, "ns/op = the tick");
  report("tick_all_overdue_per_close", (size_t)(st.contexts_lost + st.pages_closed - pages_closed),
         ns, "ns/op = per close (pages and contexts) marked lost");
  expect("contexts lost", (long long)st.contexts_lost, (long long)started);

  /* The idle timer: every idle page and then every context is past idle_ms. */
  b.now_ms += 100000;
  p = (lc_cleanup_params){.max_contexts = (int)n_contexts, .idle_ms = 30000};
  t0 = now_ns();
  started = lc_cache_cleanup(b.c, &p, b.now_ms);
  ns = now_ns() - t0;
  report("cleanup_idle_expired", (size_t)started, ns, "ns/op = per context closed");
  expect("contexts closed by idle_ms", started, (long long)(n_contexts / 2));
  lc_cache_tick(b.c, b.now_ms + cfg.close_timeout_ms);
  lc_cache_get_stats(b.c, &st);
  expect("contexts_open at the end", st.contexts_open, 0);
  expect("refs_outstanding at the end", st.refs_outstanding, 0);

  lc_cache_free(b.c);
  free(h);
  free(opts);
  if (failures) fprintf(stderr, "cache_bench: %d counters disagreed\n", failures);
  return failures ? 1 : 0;
}
