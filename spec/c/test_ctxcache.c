/* test_ctxcache.c: unit tests for engine/ctxcache.c.
 * Owns: a fake backend that records every call and completes it when the test says
 * (inside the call, later, or never), a fake clock, and the tests of the cache contract,
 * ending with a seeded random walk that checks every invariant after every step. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctxcache.h"
#include "test.h"

/* ------------------------------------------------------------------- fake backend */

enum { CALL_CREATE_CTX, CALL_CLOSE_CTX, CALL_CREATE_PAGE, CALL_CLOSE_PAGE, CALL_KINDS };

typedef struct fake_call {
  int kind;
  uint64_t id; /* context id for context calls, page id for page calls */
  uint64_t ctx_id;
  int gen;
  int pending;
} fake_call;

#define MAX_HANDLES 65536

typedef struct ready_rec {
  int fired;
  int err;
  char msg[64];
} ready_rec;

typedef struct fake {
  lc_cache *c;
  int64_t now;
  fake_call *calls;
  size_t n_calls, cap_calls;
  int sync[CALL_KINDS];     /* complete calls of this kind inside the call */
  int sync_err[CALL_KINDS]; /* ... with this error */
  int drained[32];
  int n_drained;
  unsigned char drained_seen[1024], lost_seen[1024]; /* by generation */
  int drain_violations; /* browser_drained twice, or for a lost generation */
  int n_logs[3];
  char last_log[3][256];
  int close_in_use;   /* close_context for a context the cache shows in use: must stay 0 */
  int check_failures; /* lc_cache_check failed inside a callback */
  int check_in_callbacks;
  ready_rec ready[MAX_HANDLES];
  int late_ready; /* ready for a handle the test had released */
  /* random walk: the test's own model of live handles */
  uint64_t *live;
  uint64_t *live_owner;
  size_t n_live, cap_live;
  int release_in_ready; /* percent of ready callbacks that release their handle */
  uint64_t rng;
} fake;

static void fake_check_inside(fake *f) {
  char why[256];
  if (f->check_in_callbacks && lc_cache_check(f->c, why, sizeof why) != 0) {
    fprintf(stderr, "  check inside a callback: %s\n", why);
    f->check_failures++;
  }
}

static size_t fake_record(fake *f, int kind, uint64_t id, uint64_t ctx_id, int gen) {
  if (f->n_calls == f->cap_calls) {
    f->cap_calls = f->cap_calls ? f->cap_calls * 2 : 64;
    f->calls = realloc(f->calls, f->cap_calls * sizeof *f->calls);
    if (!f->calls) abort();
  }
  fake_call *k = &f->calls[f->n_calls];
  k->kind = kind;
  k->id = id;
  k->ctx_id = ctx_id;
  k->gen = gen;
  k->pending = 1;
  return f->n_calls++;
}

/* Completes recorded call `i` with `err`. */
static void fake_complete_at(fake *f, size_t i, int err) {
  fake_call k = f->calls[i];
  char name[32];
  f->calls[i].pending = 0;
  switch (k.kind) {
    case CALL_CREATE_CTX:
      snprintf(name, sizeof name, "B%" PRIu64, k.id);
      lc_cache_context_created(f->c, k.id, name, err, err ? "no context for you" : NULL, f->now);
      break;
    case CALL_CLOSE_CTX:
      lc_cache_context_closed(f->c, k.id, err, f->now);
      break;
    case CALL_CREATE_PAGE:
      snprintf(name, sizeof name, "T%" PRIu64, k.id);
      lc_cache_page_created(f->c, k.id, name, err, err ? "no page for you" : NULL, f->now);
      break;
    case CALL_CLOSE_PAGE:
      lc_cache_page_closed(f->c, k.id, err, f->now);
      break;
  }
}

/* Index of the pending call of `kind` for `id`, or -1. */
static long fake_find(const fake *f, int kind, uint64_t id) {
  for (size_t i = 0; i < f->n_calls; i++)
    if (f->calls[i].pending && f->calls[i].kind == kind && f->calls[i].id == id) return (long)i;
  return -1;
}

/* Completes the pending call of `kind` for `id`; returns 0, or -1 if there is none. */
static int fake_complete(fake *f, int kind, uint64_t id, int err) {
  long i = fake_find(f, kind, id);
  if (i < 0) return -1;
  fake_complete_at(f, (size_t)i, err);
  return 0;
}

/* Completes every pending call, including those the completions start. */
static void fake_complete_all(fake *f) {
  for (size_t i = 0; i < f->n_calls; i++)
    if (f->calls[i].pending) fake_complete_at(f, i, 0);
}

static int fake_count(const fake *f, int kind, int pending_only) {
  int n = 0;
  for (size_t i = 0; i < f->n_calls; i++)
    if (f->calls[i].kind == kind && (!pending_only || f->calls[i].pending)) n++;
  return n;
}

/* The id of the last call of `kind`, or 0. */
static uint64_t fake_last(const fake *f, int kind) {
  for (size_t i = f->n_calls; i-- > 0;)
    if (f->calls[i].kind == kind) return f->calls[i].id;
  return 0;
}

/* Position of the call of `kind` for `id` in the call log, or -1. */
static long fake_pos(const fake *f, int kind, uint64_t id) {
  for (size_t i = 0; i < f->n_calls; i++)
    if (f->calls[i].kind == kind && f->calls[i].id == id) return (long)i;
  return -1;
}

static void fb_create_context(void *ud, uint64_t ctx_id, int gen, const char *options) {
  fake *f = ud;
  fake_check_inside(f);
  size_t i = fake_record(f, CALL_CREATE_CTX, ctx_id, ctx_id, gen);
  if (f->sync[CALL_CREATE_CTX]) fake_complete_at(f, i, f->sync_err[CALL_CREATE_CTX]);
}

static void fb_close_context(void *ud, uint64_t ctx_id, const char *bctx, int gen) {
  fake *f = ud;
  fake_check_inside(f);
  /* The rule this cache exists for: never close a context that is in use. */
  if (lc_cache_context_refcount(f->c, ctx_id) != 0) f->close_in_use++;
  lc_cache_ctx_info info[64];
  size_t total = 0, n = lc_cache_snapshot(f->c, info, 64, &total, f->now);
  for (size_t i = 0; i < n; i++)
    if (info[i].id == ctx_id && info[i].refcount != 0) f->close_in_use++;
  for (size_t i = 0; i < f->n_live; i++)
    if (lc_cache_handle_ctx(f->c, f->live[i]) == ctx_id) f->close_in_use++;
  if (!bctx || bctx[0] != 'B') f->close_in_use++;
  size_t k = fake_record(f, CALL_CLOSE_CTX, ctx_id, ctx_id, gen);
  if (f->sync[CALL_CLOSE_CTX]) fake_complete_at(f, k, f->sync_err[CALL_CLOSE_CTX]);
}

static void fb_create_page(void *ud, uint64_t page_id, uint64_t ctx_id, const char *bctx, int gen,
                           const char *options) {
  fake *f = ud;
  fake_check_inside(f);
  size_t i = fake_record(f, CALL_CREATE_PAGE, page_id, ctx_id, gen);
  if (f->sync[CALL_CREATE_PAGE]) fake_complete_at(f, i, f->sync_err[CALL_CREATE_PAGE]);
}

static void fb_close_page(void *ud, uint64_t page_id, const char *target_id, int gen) {
  fake *f = ud;
  fake_check_inside(f);
  size_t i = fake_record(f, CALL_CLOSE_PAGE, page_id, 0, gen);
  if (f->sync[CALL_CLOSE_PAGE]) fake_complete_at(f, i, f->sync_err[CALL_CLOSE_PAGE]);
}

static void fb_browser_drained(void *ud, int gen) {
  fake *f = ud;
  if (f->n_drained < 32) f->drained[f->n_drained] = gen;
  f->n_drained++;
  if (gen < 0 || gen >= 1024 || f->drained_seen[gen] || f->lost_seen[gen] ||
      gen == lc_cache_generation(f->c))
    f->drain_violations++;
  else
    f->drained_seen[gen] = 1;
}

static void fb_log(void *ud, int level, const char *msg) {
  fake *f = ud;
  if (level < 0 || level > 2) level = 2;
  f->n_logs[level]++;
  snprintf(f->last_log[level], sizeof f->last_log[level], "%s", msg);
}

static void model_remove(fake *f, uint64_t h);

/* xorshift64*: the random walk's seeded PRNG. */
static uint64_t rnd(fake *f) {
  f->rng ^= f->rng >> 12;
  f->rng ^= f->rng << 25;
  f->rng ^= f->rng >> 27;
  return f->rng * UINT64_C(2685821657736338717);
}

static unsigned rnd_below(fake *f, unsigned n) { return (unsigned)(rnd(f) % n); }

/* The ready callback every test uses; ready_ud is the fake. */
static void on_ready(void *ud, uint64_t h, int err, const char *msg) {
  fake *f = ud;
  if (h == 0 || h >= MAX_HANDLES) abort();
  ready_rec *r = &f->ready[h];
  r->fired++;
  r->err = err;
  snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
  if (!lc_cache_handle_live(f->c, h)) f->late_ready++;
  fake_check_inside(f);
  if (f->release_in_ready && (int)rnd_below(f, 100) < f->release_in_ready) {
    /* a ready callback that gives its handle straight back (re-entrant release) */
    if (lc_cache_release(f->c, h, f->now) == 0) model_remove(f, h);
  }
}

static fake *fake_new_cfg(const lc_cache_config *cfg) {
  fake *f = calloc(1, sizeof *f);
  if (!f) abort();
  f->now = 1000;
  f->check_in_callbacks = 1;
  lc_cache_backend be = {.ud = f,
                         .create_context = fb_create_context,
                         .close_context = fb_close_context,
                         .create_page = fb_create_page,
                         .close_page = fb_close_page,
                         .browser_drained = fb_browser_drained,
                         .log = fb_log};
  f->c = lc_cache_new(&be, cfg);
  if (!f->c) abort();
  return f;
}

static fake *fake_new(int close_timeout_ms, int max_idle_pages) {
  lc_cache_config cfg = {.close_timeout_ms = close_timeout_ms, .max_idle_pages = max_idle_pages};
  return fake_new_cfg(&cfg);
}

static void fake_free(fake *f) {
  lc_cache_free(f->c);
  free(f->calls);
  free(f->live);
  free(f->live_owner);
  free(f);
}

/* lc_cache_check passes, and nothing broke inside a callback. */
#define CHECK_CACHE(f)                                             \
  do {                                                             \
    char why_[256] = "";                                           \
    int rc_ = lc_cache_check((f)->c, why_, sizeof why_);           \
    if (rc_ != 0) fprintf(stderr, "  lc_cache_check: %s\n", why_); \
    CHECK_INT(rc_, 0);                                             \
    CHECK_INT((f)->check_failures, 0);                             \
    CHECK_INT((f)->close_in_use, 0);                               \
    CHECK_INT((f)->late_ready, 0);                                 \
    CHECK_INT((f)->drain_violations, 0);                           \
  } while (0)

static uint64_t acq(fake *f, uint64_t owner, const char *opts, int want_page) {
  return lc_cache_acquire(f->c, owner, opts, want_page, f->now, on_ready, f);
}

static lc_cache_stats stats_of(const fake *f) {
  lc_cache_stats s;
  lc_cache_get_stats(f->c, &s);
  return s;
}

/* The snapshot entry of context `id`, or a zeroed one with refcount -1. */
static lc_cache_ctx_info info_of(const fake *f, uint64_t id) {
  lc_cache_ctx_info all[64], none;
  size_t n = lc_cache_snapshot(f->c, all, 64, NULL, f->now);
  for (size_t i = 0; i < n; i++)
    if (all[i].id == id) return all[i];
  memset(&none, 0, sizeof none);
  none.refcount = -1;
  return none;
}

static const char *OPT_A = "{\"locale\":\"en-US\"}";
static const char *OPT_B = "{\"locale\":\"de-DE\"}";
static const char *OPT_C = "{\"locale\":\"fr-FR\"}";
static const char *OPT_D = "{\"locale\":\"it-IT\"}";

/* Acquires a context for `opts` (no page), completes its creation, releases it. */
static uint64_t make_idle_ctx(fake *f, const char *opts) {
  uint64_t h = acq(f, 1, opts, 0);
  fake_complete(f, CALL_CREATE_CTX, fake_last(f, CALL_CREATE_CTX), 0);
  uint64_t ctx = lc_cache_handle_ctx(f->c, h);
  lc_cache_release(f->c, h, f->now);
  return ctx;
}

/* Acquires a page handle for `opts` and completes whatever it started. */
static uint64_t acq_page_ready(fake *f, uint64_t owner, const char *opts) {
  uint64_t h = acq(f, owner, opts, 1);
  fake_complete_all(f);
  return h;
}

/* ------------------------------------------------------------------------- tests */

TEST(test_signature_is_fnv1a_and_stable) {
  char a[LC_SIG_LEN], b[LC_SIG_LEN], d[LC_SIG_LEN];
  lc_cache_signature("", a);
  CHECK_STR(a, "cbf29ce484222325"); /* the FNV-1a 64 offset basis */
  lc_cache_signature("a", a);
  CHECK_STR(a, "af63dc4c8601ec8c");
  lc_cache_signature("foobar", a);
  CHECK_STR(a, "85944171f73967e8");
  lc_cache_signature(OPT_A, a);
  lc_cache_signature(OPT_A, b);
  lc_cache_signature(OPT_B, d);
  CHECK_STR(a, b);
  CHECK(strcmp(a, d) != 0);
  CHECK_INT(strlen(a), 16);
  CHECK_INT(strspn(a, "0123456789abcdef"), 16);
}

TEST(test_acquire_reuses_context_by_signature) {
  fake *f = fake_new(5000, 4);
  uint64_t h1 = acq(f, 1, OPT_A, 0);
  CHECK(h1 > 0);
  CHECK_INT(fake_count(f, CALL_CREATE_CTX, 0), 1);
  CHECK_CACHE(f);
  fake_complete(f, CALL_CREATE_CTX, fake_last(f, CALL_CREATE_CTX), 0);
  uint64_t ctx = lc_cache_handle_ctx(f->c, h1);
  CHECK(ctx > 0);
  CHECK_STR(lc_cache_handle_browser_ctx(f->c, h1), "B1");
  char sig[LC_SIG_LEN];
  lc_cache_signature(OPT_A, sig);
  CHECK_STR(lc_cache_handle_signature(f->c, h1), sig);

  uint64_t h2 = acq(f, 1, OPT_A, 0); /* same signature: same context, no backend call */
  CHECK(h2 > h1);
  CHECK_INT(fake_count(f, CALL_CREATE_CTX, 0), 1);
  CHECK_INT(lc_cache_handle_ctx(f->c, h2), ctx);
  CHECK_INT(info_of(f, ctx).refcount, 2);
  CHECK_INT(info_of(f, ctx).uses, 2);

  uint64_t h3 = acq(f, 1, OPT_B, 0); /* another signature: a new context */
  CHECK_INT(fake_count(f, CALL_CREATE_CTX, 0), 2);
  fake_complete_all(f);
  CHECK(lc_cache_handle_ctx(f->c, h3) != ctx);
  lc_cache_stats s = stats_of(f);
  CHECK_INT(s.contexts_created, 2);
  CHECK_INT(s.contexts_open, 2);
  CHECK_INT(s.contexts_open_peak, 2);
  CHECK_INT(s.refs_outstanding, 3);
  CHECK_INT(lc_cache_open_count(f->c), 2);
  CHECK_CACHE(f);
  CHECK_INT(lc_cache_release(f->c, h1, f->now), 0);
  CHECK_INT(lc_cache_release(f->c, h2, f->now), 0);
  CHECK_INT(lc_cache_release(f->c, h3, f->now), 0);
  CHECK_INT(stats_of(f).refs_outstanding, 0);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_ready_fires_once_later_or_synchronously) {
  fake *f = fake_new(5000, 4);
  uint64_t h1 = acq(f, 1, OPT_A, 1);
  CHECK_INT(f->ready[h1].fired, 0); /* context still being created */
  CHECK(lc_cache_handle_live(f->c, h1));
  CHECK(lc_cache_handle_target(f->c, h1) == NULL);
  fake_complete(f, CALL_CREATE_CTX, fake_last(f, CALL_CREATE_CTX), 0);
  CHECK_INT(f->ready[h1].fired, 0); /* now the page is being created */
  CHECK_INT(fake_count(f, CALL_CREATE_PAGE, 1), 1);
  fake_complete(f, CALL_CREATE_PAGE, fake_last(f, CALL_CREATE_PAGE), 0);
  CHECK_INT(f->ready[h1].fired, 1);
  CHECK_INT(f->ready[h1].err, 0);
  CHECK_STR(lc_cache_handle_target(f->c, h1), "T1");
  CHECK_INT(lc_cache_handle_page_fresh(f->c, h1), 1);
  /* A duplicate completion changes nothing. */
  lc_cache_context_created(f->c, lc_cache_handle_ctx(f->c, h1), "B1", 0, NULL, f->now);
  lc_cache_page_created(f->c, lc_cache_handle_page(f->c, h1), "T1", 0, NULL, f->now);
  CHECK_INT(f->ready[h1].fired, 1);
  CHECK_CACHE(f);

  uint64_t h2 = acq(f, 1, OPT_A, 0); /* context open, no page wanted: ready inside acquire */
  CHECK_INT(f->ready[h2].fired, 1);
  CHECK_INT(f->ready[h2].err, 0);

  /* A backend that answers inside the call: ready fires before acquire returns. */
  f->sync[CALL_CREATE_CTX] = f->sync[CALL_CREATE_PAGE] = 1;
  uint64_t h3 = acq(f, 1, OPT_B, 1);
  CHECK_INT(f->ready[h3].fired, 1);
  CHECK_INT(f->ready[h3].err, 0);
  CHECK(lc_cache_handle_target(f->c, h3) != NULL);
  CHECK_CACHE(f);
  lc_cache_release(f->c, h1, f->now);
  lc_cache_release(f->c, h2, f->now);
  lc_cache_release(f->c, h3, f->now);
  CHECK_INT(f->ready[h1].fired + f->ready[h2].fired + f->ready[h3].fired, 3);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_waiting_handles_all_proceed) {
  fake *f = fake_new(5000, 4);
  uint64_t h1 = acq(f, 1, OPT_A, 0);
  uint64_t h2 = acq(f, 1, OPT_A, 1);
  uint64_t h3 = acq(f, 2, OPT_A, 1);
  CHECK_INT(fake_count(f, CALL_CREATE_CTX, 0), 1);
  CHECK_INT(stats_of(f).refs_outstanding, 3);
  fake_complete(f, CALL_CREATE_CTX, fake_last(f, CALL_CREATE_CTX), 0);
  CHECK_INT(f->ready[h1].fired, 1);
  CHECK_INT(f->ready[h2].fired, 0);
  CHECK_INT(fake_count(f, CALL_CREATE_PAGE, 1), 2); /* one page each */
  CHECK_CACHE(f);
  fake_complete_all(f);
  CHECK_INT(f->ready[h2].fired, 1);
  CHECK_INT(f->ready[h3].fired, 1);
  CHECK(lc_cache_handle_page(f->c, h2) != lc_cache_handle_page(f->c, h3));
  CHECK_INT(lc_cache_release_owner(f->c, 1, f->now), 2);
  CHECK_INT(lc_cache_release_owner(f->c, 2, f->now), 1);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_cleanup_closes_least_recently_released_first) {
  fake *f = fake_new(5000, 4);
  uint64_t ha = acq(f, 1, OPT_A, 0), hb = acq(f, 1, OPT_B, 0), hc = acq(f, 1, OPT_C, 0);
  fake_complete_all(f);
  uint64_t a = lc_cache_handle_ctx(f->c, ha), b = lc_cache_handle_ctx(f->c, hb),
           c = lc_cache_handle_ctx(f->c, hc);
  /* Released in the order B, A, C: B is the least recently used. */
  f->now = 2000;
  lc_cache_release(f->c, hb, f->now);
  f->now = 3000;
  lc_cache_release(f->c, ha, f->now);
  f->now = 4000;
  lc_cache_release(f->c, hc, f->now);
  lc_cache_ctx_info snap[8];
  size_t total = 0;
  CHECK_INT(lc_cache_snapshot(f->c, snap, 8, &total, f->now), 3);
  CHECK_INT(total, 3);
  CHECK_INT(snap[0].id, b);
  CHECK_INT(snap[1].id, a);
  CHECK_INT(snap[2].id, c);
  CHECK_INT(snap[0].idle_ms, 2000);
  CHECK_INT(snap[0].age_ms, 3000);

  lc_cleanup_params p = {2, 0, 0, NULL, 0};
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 1);
  CHECK_INT(fake_count(f, CALL_CLOSE_CTX, 0), 1);
  CHECK_INT(fake_last(f, CALL_CLOSE_CTX), b);
  CHECK_CACHE(f);
  p.max_contexts = 1;
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 1);
  CHECK_INT(fake_last(f, CALL_CLOSE_CTX), a);
  CHECK_INT(lc_cache_open_count(f->c), 1);
  CHECK_INT(info_of(f, c).refcount, 0);
  /* A new acquire of B's options makes a new context: B left the signature map. */
  uint64_t hb2 = acq(f, 1, OPT_B, 0);
  CHECK_INT(fake_count(f, CALL_CREATE_CTX, 0), 4);
  fake_complete_all(f);
  CHECK(lc_cache_handle_ctx(f->c, hb2) != b);
  lc_cache_release(f->c, hb2, f->now);
  CHECK_INT(stats_of(f).contexts_closed, 2);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_cleanup_respects_max_contexts) {
  fake *f = fake_new(5000, 4);
  make_idle_ctx(f, OPT_A);
  make_idle_ctx(f, OPT_B);
  make_idle_ctx(f, OPT_C);
  make_idle_ctx(f, OPT_D);
  CHECK_INT(lc_cache_open_count(f->c), 4);
  lc_cleanup_params p = {4, 0, 0, NULL, 0};
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 0);
  p.max_contexts = 2;
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 2);
  CHECK_INT(lc_cache_open_count(f->c), 2);
  CHECK_INT(stats_of(f).contexts_open, 2);
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 0); /* already within the limit */
  fake_complete_all(f);
  CHECK_INT(stats_of(f).contexts_closed, 2);
  p.max_contexts = -1;
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), LC_CACHE_EINVAL);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_force_closes_idle_pages_then_context) {
  fake *f = fake_new(5000, 4);
  uint64_t h = acq_page_ready(f, 1, OPT_A);
  uint64_t ctx = lc_cache_handle_ctx(f->c, h), page = lc_cache_handle_page(f->c, h);
  lc_cache_release(f->c, h, f->now);
  CHECK_INT(stats_of(f).idle_pages, 1);
  lc_cleanup_params p = {0, 0, 0, NULL, 0};
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 0); /* idle pages and no force: skipped */
  CHECK_INT(fake_count(f, CALL_CLOSE_CTX, 0), 0);
  CHECK_INT(fake_count(f, CALL_CLOSE_PAGE, 0), 0);
  CHECK_INT(lc_cache_open_count(f->c), 1);
  p.force = 1;
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 1);
  long pc = fake_pos(f, CALL_CLOSE_PAGE, page), cc = fake_pos(f, CALL_CLOSE_CTX, ctx);
  CHECK(pc >= 0);
  CHECK(cc >= 0);
  CHECK(pc < cc); /* the pages first, then the context */
  CHECK_INT(stats_of(f).idle_pages, 0);
  CHECK_INT(info_of(f, ctx).refcount, -1); /* no longer open */
  CHECK_CACHE(f);
  fake_complete_all(f);
  lc_cache_stats s = stats_of(f);
  CHECK_INT(s.pages_closed, 1);
  CHECK_INT(s.contexts_closed, 1);
  CHECK_INT(lc_cache_context_refcount(f->c, ctx), LC_CACHE_ENOENT);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_context_in_use_is_never_closed) {
  fake *f = fake_new(5000, 4);
  uint64_t h1 = acq(f, 1, OPT_A, 0);         /* refcount 1, no page */
  uint64_t h2 = acq_page_ready(f, 1, OPT_B); /* refcount 1, page in use */
  uint64_t a = lc_cache_handle_ctx(f->c, h1), b = lc_cache_handle_ctx(f->c, h2);
  f->now += 100000;
  uint64_t ids[] = {a, b, 4242};
  lc_cleanup_params p = {0, 1, 1, ids, 3}; /* max 0, force, idle 1 ms, and asked by id */
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 0);
  CHECK_INT(fake_count(f, CALL_CLOSE_CTX, 0), 0);
  CHECK_INT(fake_count(f, CALL_CLOSE_PAGE, 0), 0);
  CHECK_INT(f->n_logs[LC_CACHE_LOG_WARN], 2); /* refused, each named; the unknown id skipped */
  char want[64];
  snprintf(want, sizeof want, "context %" PRIu64 ": in use, refcount 1", b);
  CHECK(strstr(f->last_log[LC_CACHE_LOG_WARN], want) != NULL);
  CHECK_INT(info_of(f, a).refcount, 1);
  CHECK_INT(info_of(f, b).refcount, 1);
  CHECK_INT(lc_cache_open_count(f->c), 2);
  CHECK_CACHE(f);
  lc_cache_release(f->c, h1, f->now);
  lc_cache_release(f->c, h2, f->now);
  /* Now closable: the hook's explicit ask closes b with its idle page, no force needed. */
  p.force = 0;
  p.idle_ms = 0;
  p.max_contexts = 5;
  p.n_close_ids = 2;
  p.close_ids = &ids[1];
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 1);
  CHECK_INT(fake_last(f, CALL_CLOSE_CTX), b);
  CHECK_INT(fake_count(f, CALL_CLOSE_PAGE, 0), 1);
  CHECK_CACHE(f);
  fake_complete_all(f);
  fake_free(f);
}

TEST(test_reused_session_takes_and_releases_nothing) {
  fake *f = fake_new(5000, 4);
  int created = -1;
  uint64_t s1 = lc_cache_session_open(f->c, 7, "main", OPT_A, f->now, on_ready, f, &created);
  CHECK(s1 > 0);
  CHECK_INT(created, 1);
  fake_complete_all(f);
  uint64_t ctx = lc_cache_handle_ctx(f->c, s1);
  CHECK_INT(info_of(f, ctx).refcount, 1);
  uint64_t s2 = lc_cache_session_open(f->c, 7, "main", OPT_A, f->now, on_ready, f, &created);
  CHECK_INT(s2, s1);
  CHECK_INT(created, 0);
  CHECK_INT(info_of(f, ctx).refcount, 1); /* unchanged */
  CHECK_INT(lc_cache_session_prepared(f->c, 7, "main"), 0);
  CHECK_INT(lc_cache_session_set_prepared(f->c, 7, "main"), 0);
  CHECK_INT(lc_cache_session_prepared(f->c, 7, "main"), 1);
  CHECK_INT(lc_cache_session_prepared(f->c, 8, "main"), 0);
  CHECK_INT(lc_cache_session_set_prepared(f->c, 8, "main"), LC_CACHE_ENOENT);
  CHECK_INT(stats_of(f).refs_outstanding, 1);
  CHECK_INT(f->ready[s1].fired, 1);
  CHECK_INT(lc_cache_session_find(f->c, 7, "main"), s1);
  CHECK_INT(lc_cache_session_find(f->c, 8, "main"), 0);
  CHECK_CACHE(f);
  CHECK_INT(lc_cache_session_close(f->c, 7, "main", f->now), 0); /* the one release */
  CHECK_INT(info_of(f, ctx).refcount, 0);
  CHECK_INT(lc_cache_session_find(f->c, 7, "main"), 0);
  CHECK_INT(lc_cache_session_close(f->c, 7, "main", f->now), LC_CACHE_ENOENT);
  CHECK_INT(stats_of(f).bad_releases, 0);
  CHECK_INT(info_of(f, ctx).refcount, 0);
  CHECK_INT(lc_cache_session_prepared(f->c, 7, "main"), 0); /* gone with the handle */
  /* Released directly, the session's name goes with it. */
  uint64_t s3 = lc_cache_session_open(f->c, 7, "main", OPT_A, f->now, on_ready, f, &created);
  CHECK_INT(created, 1);
  CHECK_INT(lc_cache_session_prepared(f->c, 7, "main"), 0); /* a new session starts unprepared */
  /* A session whose context is still being created cannot be prepared yet. */
  uint64_t s4 = lc_cache_session_open(f->c, 7, "other", OPT_B, f->now, on_ready, f, &created);
  CHECK_INT(lc_cache_handle_state(f->c, s4), 0);
  CHECK_INT(lc_cache_session_set_prepared(f->c, 7, "other"), LC_CACHE_EINVAL);
  CHECK_INT(lc_cache_session_prepared(f->c, 7, "other"), 0);
  CHECK_INT(lc_cache_session_close(f->c, 7, "other", f->now), 0);
  fake_complete_all(f);
  CHECK(s3 != s1);
  CHECK_INT(lc_cache_release(f->c, s3, f->now), 0);
  CHECK_INT(lc_cache_session_find(f->c, 7, "main"), 0);
  CHECK_INT(lc_cache_session_close(f->c, 7, "main", f->now), LC_CACHE_ENOENT);
  CHECK_INT(stats_of(f).refs_outstanding, 0);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_bad_release_is_loud_and_changes_nothing) {
  fake *f = fake_new(5000, 4);
  uint64_t h1 = acq(f, 1, OPT_A, 0), h2 = acq(f, 1, OPT_A, 0);
  fake_complete_all(f);
  uint64_t ctx = lc_cache_handle_ctx(f->c, h1);
  CHECK_INT(lc_cache_release(f->c, h1, f->now), 0);
  CHECK_INT(info_of(f, ctx).refcount, 1);
  CHECK_INT(lc_cache_release(f->c, h1, f->now), LC_CACHE_EBADHANDLE); /* double */
  CHECK_INT(info_of(f, ctx).refcount, 1);
  CHECK_INT(stats_of(f).bad_releases, 1);
  CHECK_INT(f->n_logs[LC_CACHE_LOG_ERROR], 1);
  char want[32];
  snprintf(want, sizeof want, "handle %" PRIu64 " ", h1);
  CHECK(strstr(f->last_log[LC_CACHE_LOG_ERROR], want) != NULL);
  CHECK_INT(lc_cache_release(f->c, 999, f->now), LC_CACHE_EBADHANDLE); /* never acquired */
  CHECK(strstr(f->last_log[LC_CACHE_LOG_ERROR], "handle 999 ") != NULL);
  CHECK_INT(lc_cache_release(f->c, 0, f->now), LC_CACHE_EBADHANDLE);
  lc_cache_stats s = stats_of(f);
  CHECK_INT(s.bad_releases, 3);
  CHECK_INT(s.refs_outstanding, 1);
  CHECK_INT(info_of(f, ctx).refcount, 1);
  CHECK(lc_cache_handle_live(f->c, h2));
  CHECK_INT(lc_cache_page_mark_bad(f->c, h1), LC_CACHE_EBADHANDLE);
  CHECK_CACHE(f);
  CHECK_INT(lc_cache_release(f->c, h2, f->now), 0);
  CHECK_INT(info_of(f, ctx).refcount, 0);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_unanswered_close_frees_slot_after_timeout) {
  fake *f = fake_new(5000, 4);
  uint64_t h = acq_page_ready(f, 1, OPT_A);
  uint64_t ctx = lc_cache_handle_ctx(f->c, h), page = lc_cache_handle_page(f->c, h);
  lc_cache_page_mark_bad(f->c, h);
  f->now = 2000;
  lc_cache_release(f->c, h, f->now); /* bad page: closed at release */
  CHECK_INT(fake_count(f, CALL_CLOSE_PAGE, 1), 1);
  lc_cleanup_params p = {0, 0, 0, NULL, 0};
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 1);
  CHECK_INT(lc_cache_open_count(f->c), 0);
  CHECK_INT(info_of(f, ctx).refcount, -1);
  CHECK_INT(lc_cache_context_refcount(f->c, ctx), 0); /* closing, still tracked */
  CHECK_INT(lc_cache_gen_contexts(f->c, 0, NULL), 1);
  f->now = 6999;
  lc_cache_tick(f->c, f->now);
  lc_cache_stats s = stats_of(f);
  CHECK_INT(s.contexts_lost, 0);
  CHECK_INT(s.contexts_closed, 0);
  CHECK_INT(s.pages_closed, 0);
  f->now = 7000;
  lc_cache_tick(f->c, f->now);
  s = stats_of(f);
  CHECK_INT(s.contexts_lost, 1);
  CHECK_INT(s.contexts_closed, 1);
  CHECK_INT(s.pages_closed, 1);
  CHECK_INT(lc_cache_context_refcount(f->c, ctx), LC_CACHE_ENOENT); /* slot freed */
  CHECK_INT(lc_cache_gen_contexts(f->c, 0, NULL), 0);
  CHECK_INT(lc_cache_unanswered_closes(f->c), 1); /* counted against this browser */
  CHECK_INT(f->n_logs[LC_CACHE_LOG_WARN], 2);
  CHECK_CACHE(f);
  /* The late answers are harmless. */
  CHECK_INT(fake_complete(f, CALL_CLOSE_CTX, ctx, 0), 0);
  CHECK_INT(fake_complete(f, CALL_CLOSE_PAGE, page, 0), 0);
  s = stats_of(f);
  CHECK_INT(s.contexts_closed, 1);
  CHECK_INT(s.pages_closed, 1);
  /* And the signature gets a fresh context. */
  uint64_t h2 = acq(f, 1, OPT_A, 0);
  fake_complete_all(f);
  CHECK(lc_cache_handle_ctx(f->c, h2) != ctx);
  lc_cache_release(f->c, h2, f->now);
  CHECK_CACHE(f);
  /* A new browser starts with a clean record. */
  lc_cache_set_generation(f->c, 1, f->now);
  CHECK_INT(lc_cache_unanswered_closes(f->c), 0);
  fake_complete_all(f);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_browser_lost_drops_contexts) {
  fake *f = fake_new(5000, 4);
  lc_cache_set_generation(f->c, 1, f->now);
  uint64_t hc = acq_page_ready(f, 3, OPT_C); /* an idle page in C */
  lc_cache_release(f->c, hc, f->now);
  uint64_t h1 = acq_page_ready(f, 1, OPT_A);    /* ready, page in use */
  uint64_t hidle = acq_page_ready(f, 1, OPT_A); /* its page goes idle */
  lc_cache_release(f->c, hidle, f->now);
  uint64_t h2 = acq(f, 1, OPT_B, 0); /* context creating */
  uint64_t h3 = acq(f, 2, OPT_A, 1); /* reuses the idle page */
  uint64_t h4 = acq(f, 2, OPT_A, 1); /* page being created */
  CHECK_INT(f->ready[h3].fired, 1);
  CHECK_INT(f->ready[h4].fired, 0);
  CHECK_INT(fake_count(f, CALL_CREATE_PAGE, 1), 1);
  CHECK_INT(stats_of(f).idle_pages, 1); /* C's */
  CHECK_INT(lc_cache_open_count(f->c), 3);
  size_t calls_before = f->n_calls;
  uint64_t b = fake_last(f, CALL_CREATE_CTX);
  lc_cache_browser_lost(f->c, 1, f->now);
  CHECK_INT(f->n_calls, calls_before); /* no backend calls */
  CHECK_INT(f->ready[h2].fired, 1);
  CHECK_INT(f->ready[h2].err, LC_CACHE_ELOST);
  CHECK_INT(f->ready[h4].fired, 1);
  CHECK_INT(f->ready[h4].err, LC_CACHE_ELOST);
  CHECK_INT(f->ready[h1].fired, 1);
  CHECK_STR(lc_cache_handle_target(f->c, h1), "T2"); /* readable until release */
  lc_cache_stats s = stats_of(f);
  CHECK_INT(s.contexts_lost, 3);
  CHECK_INT(s.contexts_open, 0);
  CHECK_INT(s.idle_pages, 0);
  CHECK_INT(s.refs_outstanding, 4);
  int refs = 0;
  CHECK_INT(lc_cache_gen_contexts(f->c, 1, &refs), 2); /* C had no refs: gone */
  CHECK_INT(refs, 4);
  CHECK_CACHE(f);
  /* Late completions for the lost browser are ignored. */
  lc_cache_context_created(f->c, b, "B-late", 0, NULL, f->now);
  fake_complete_all(f);
  CHECK_INT(f->ready[h2].fired, 1);
  CHECK_INT(f->ready[h4].fired, 1);
  CHECK_INT(lc_cache_open_count(f->c), 0);
  CHECK_CACHE(f);
  /* Each handle is released exactly once, without error or backend calls. */
  calls_before = f->n_calls;
  CHECK_INT(lc_cache_release(f->c, h1, f->now), 0);
  CHECK_INT(lc_cache_release(f->c, h1, f->now), LC_CACHE_EBADHANDLE);
  CHECK_INT(lc_cache_release(f->c, h2, f->now), 0);
  CHECK_INT(lc_cache_release(f->c, h3, f->now), 0);
  CHECK_INT(lc_cache_release(f->c, h4, f->now), 0);
  CHECK_INT(f->n_calls, calls_before);
  s = stats_of(f);
  CHECK_INT(s.bad_releases, 1);
  CHECK_INT(s.refs_outstanding, 0);
  CHECK_INT(lc_cache_gen_contexts(f->c, 1, NULL), 0);
  lc_cache_set_generation(f->c, 2, f->now); /* the restarted browser */
  CHECK_INT(f->n_drained, 1); /* gen 0, drained when gen 1 started; never the lost gen 1 */
  CHECK_INT(f->drained[0], 0);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_idle_timer_closes_after_and_not_before) {
  fake *f = fake_new(5000, 4);
  uint64_t h = acq_page_ready(f, 1, OPT_A);
  uint64_t busy = acq(f, 2, OPT_B, 0);
  fake_complete_all(f);
  uint64_t ctx = lc_cache_handle_ctx(f->c, h), page = lc_cache_handle_page(f->c, h);
  uint64_t busy_ctx = lc_cache_handle_ctx(f->c, busy);
  f->now = 10000;
  lc_cache_release(f->c, h, f->now);
  lc_cleanup_params p = {10, 0, 5000, NULL, 0};
  f->now = 14999;
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 0);
  CHECK_INT(fake_count(f, CALL_CLOSE_PAGE, 0), 0);
  CHECK_INT(fake_count(f, CALL_CLOSE_CTX, 0), 0);
  CHECK_INT(info_of(f, ctx).idle_ms, 4999);
  CHECK_INT(info_of(f, busy_ctx).idle_ms, 0);
  f->now = 15000;
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 1);
  CHECK(fake_pos(f, CALL_CLOSE_PAGE, page) >= 0);
  CHECK(fake_pos(f, CALL_CLOSE_PAGE, page) < fake_pos(f, CALL_CLOSE_CTX, ctx));
  CHECK_INT(fake_count(f, CALL_CLOSE_CTX, 0), 1); /* the busy one stays */
  CHECK_INT(info_of(f, busy_ctx).refcount, 1);
  CHECK_CACHE(f);
  /* An idle page alone expires while its context is younger than idle_ms. */
  uint64_t h2 = acq_page_ready(f, 1, OPT_C);
  uint64_t h3 = acq_page_ready(f, 1, OPT_C);
  uint64_t c2 = lc_cache_handle_ctx(f->c, h2), p2 = lc_cache_handle_page(f->c, h2);
  lc_cache_release(f->c, h2, f->now); /* page idle since 15000 */
  f->now = 21000;
  lc_cache_release(f->c, h3, f->now); /* context idle since 21000 */
  CHECK_INT(stats_of(f).idle_pages, 2);
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 0);
  CHECK(fake_pos(f, CALL_CLOSE_PAGE, p2) >= 0);
  CHECK_INT(stats_of(f).idle_pages, 1);
  CHECK_INT(info_of(f, c2).refcount, 0);
  f->now = 26000;
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 1);
  CHECK_INT(fake_last(f, CALL_CLOSE_CTX), c2);
  CHECK_INT(stats_of(f).idle_pages, 0);
  CHECK_CACHE(f);
  /* A page that arrives after its context went idle keeps the context open until the
   * page itself has been idle long enough. */
  uint64_t h4 = acq(f, 1, OPT_D, 1);
  uint64_t c4 = fake_last(f, CALL_CREATE_CTX);
  fake_complete(f, CALL_CREATE_CTX, c4, 0);
  lc_cache_release(f->c, h4, f->now); /* context idle since 26000, page still creating */
  f->now = 28000;
  fake_complete(f, CALL_CREATE_PAGE, fake_last(f, CALL_CREATE_PAGE), 0); /* idle since 28000 */
  f->now = 31000;
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 0);
  CHECK_INT(info_of(f, c4).idle_pages, 1);
  f->now = 33000;
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 1);
  CHECK_INT(fake_last(f, CALL_CLOSE_CTX), c4);
  lc_cache_release(f->c, busy, f->now);
  fake_complete_all(f);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_page_reuse_and_bad_pages) {
  fake *f = fake_new(5000, 4);
  uint64_t h1 = acq_page_ready(f, 1, OPT_A), h2 = acq_page_ready(f, 1, OPT_A);
  uint64_t p1 = lc_cache_handle_page(f->c, h1), p2 = lc_cache_handle_page(f->c, h2);
  CHECK(p1 != p2);
  lc_cache_release(f->c, h1, f->now);
  lc_cache_release(f->c, h2, f->now); /* p2 idled most recently */
  CHECK_INT(stats_of(f).idle_pages, 2);
  uint64_t page_calls = (uint64_t)fake_count(f, CALL_CREATE_PAGE, 0);
  uint64_t h3 = acq(f, 1, OPT_A, 1);
  CHECK_INT(f->ready[h3].fired, 1);              /* synchronously */
  CHECK_INT(lc_cache_handle_page(f->c, h3), p2); /* most recently idled first */
  CHECK_INT(lc_cache_handle_page_fresh(f->c, h3), 0);
  CHECK_INT(fake_count(f, CALL_CREATE_PAGE, 0), page_calls);
  CHECK_INT(stats_of(f).pages_reused, 1);
  CHECK_INT(stats_of(f).idle_pages, 1);
  CHECK_CACHE(f);
  CHECK_INT(lc_cache_page_mark_bad(f->c, h3), 0);
  lc_cache_release(f->c, h3, f->now);
  CHECK(fake_pos(f, CALL_CLOSE_PAGE, p2) >= 0);
  CHECK_INT(stats_of(f).idle_pages, 1);
  CHECK_INT(fake_complete(f, CALL_CLOSE_PAGE, p2, 0), 0);
  CHECK_INT(stats_of(f).pages_closed, 1);
  uint64_t h4 = acq(f, 1, OPT_A, 1);
  CHECK_INT(lc_cache_handle_page(f->c, h4), p1);
  uint64_t h5 = acq(f, 1, OPT_A, 1); /* no idle page left: a fresh one */
  fake_complete_all(f);
  CHECK_INT(lc_cache_handle_page_fresh(f->c, h5), 1);
  CHECK(lc_cache_handle_page(f->c, h5) != p1 && lc_cache_handle_page(f->c, h5) != p2);
  uint64_t h6 = acq(f, 1, OPT_A, 0);
  CHECK_INT(lc_cache_page_mark_bad(f->c, h6), LC_CACHE_ENOENT); /* no page to mark */
  lc_cache_release_owner(f->c, 1, f->now);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_broken_page_is_closed_never_reused) {
  fake *f = fake_new(5000, 4);
  /* In use when it breaks: closed at its release, not idled. */
  uint64_t h1 = acq_page_ready(f, 1, OPT_A);
  uint64_t p1 = lc_cache_handle_page(f->c, h1);
  CHECK_INT(lc_cache_page_in_use(f->c, p1), 1);
  CHECK_INT(lc_cache_page_broken(f->c, p1, f->now), 0);
  CHECK_INT(fake_pos(f, CALL_CLOSE_PAGE, p1), -1); /* not while in use */
  lc_cache_release(f->c, h1, f->now);
  CHECK(fake_pos(f, CALL_CLOSE_PAGE, p1) >= 0);
  CHECK_INT(stats_of(f).idle_pages, 0);
  CHECK_INT(lc_cache_page_in_use(f->c, p1), 0);
  fake_complete_all(f);
  /* Idle when it breaks: closed at once. */
  uint64_t h2 = acq_page_ready(f, 1, OPT_A);
  uint64_t p2 = lc_cache_handle_page(f->c, h2);
  CHECK(p2 != p1);
  lc_cache_release(f->c, h2, f->now);
  CHECK_INT(stats_of(f).idle_pages, 1);
  CHECK_INT(lc_cache_page_in_use(f->c, p2), 0);
  CHECK_INT(lc_cache_page_broken(f->c, p2, f->now), 0);
  CHECK(fake_pos(f, CALL_CLOSE_PAGE, p2) >= 0);
  CHECK_INT(stats_of(f).idle_pages, 0);
  CHECK_CACHE(f);
  fake_complete_all(f);
  uint64_t h3 = acq_page_ready(f, 1, OPT_A);
  uint64_t p3 = lc_cache_handle_page(f->c, h3);
  CHECK(p3 != p1 && p3 != p2);
  CHECK_INT(lc_cache_handle_page_fresh(f->c, h3), 1);
  lc_cache_release(f->c, h3, f->now);
  /* A session whose page broke: closing and reopening it gives a new page. */
  int created = 0;
  uint64_t s1 = lc_cache_session_open(f->c, 7, "s", OPT_B, f->now, on_ready, f, &created);
  fake_complete_all(f);
  uint64_t sp1 = lc_cache_handle_page(f->c, s1);
  CHECK_INT(lc_cache_page_broken(f->c, sp1, f->now), 0);
  CHECK_INT(lc_cache_session_close(f->c, 7, "s", f->now), 0);
  uint64_t s2 = lc_cache_session_open(f->c, 7, "s", OPT_B, f->now, on_ready, f, &created);
  fake_complete_all(f);
  CHECK_INT(created, 1);
  CHECK(lc_cache_handle_page(f->c, s2) != sp1);
  CHECK_INT(lc_cache_session_close(f->c, 7, "s", f->now), 0);
  CHECK_INT(lc_cache_page_broken(f->c, 999999, f->now), LC_CACHE_ENOENT);
  fake_complete_all(f);
  CHECK_INT(stats_of(f).refs_outstanding, 0);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_max_idle_pages) {
  fake *f = fake_new(5000, 1);
  uint64_t h1 = acq_page_ready(f, 1, OPT_A), h2 = acq_page_ready(f, 1, OPT_A);
  uint64_t p1 = lc_cache_handle_page(f->c, h1), p2 = lc_cache_handle_page(f->c, h2);
  lc_cache_release(f->c, h1, f->now);
  CHECK_INT(stats_of(f).idle_pages, 1);
  CHECK_INT(fake_count(f, CALL_CLOSE_PAGE, 0), 0);
  lc_cache_release(f->c, h2, f->now); /* over max_idle_pages: the older idle page goes */
  CHECK_INT(stats_of(f).idle_pages, 1);
  CHECK_INT(stats_of(f).pages_evicted, 1);
  CHECK_INT(fake_last(f, CALL_CLOSE_PAGE), p1);
  CHECK_INT(info_of(f, 1).pages, 2); /* one idle, one closing */
  fake_complete_all(f);
  CHECK_INT(info_of(f, 1).pages, 1);
  uint64_t h3 = acq_page_ready(f, 1, OPT_A); /* the one kept is the one reused */
  CHECK_INT(lc_cache_handle_page(f->c, h3), p2);
  lc_cache_release(f->c, h3, f->now);
  CHECK_CACHE(f);
  fake_free(f);

  f = fake_new(5000, 0); /* keep none */
  h1 = acq_page_ready(f, 1, OPT_A);
  lc_cache_release(f->c, h1, f->now);
  CHECK_INT(stats_of(f).idle_pages, 0);
  CHECK_INT(fake_count(f, CALL_CLOSE_PAGE, 0), 1);
  fake_complete_all(f);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_creation_failures) {
  fake *f = fake_new(5000, 4);
  uint64_t h1 = acq(f, 1, OPT_A, 0), h2 = acq(f, 1, OPT_A, 1);
  uint64_t ctx = fake_last(f, CALL_CREATE_CTX);
  CHECK_INT(fake_complete(f, CALL_CREATE_CTX, ctx, -32000), 0);
  CHECK_INT(f->ready[h1].fired, 1);
  CHECK_INT(f->ready[h1].err, LC_CACHE_ECREATE);
  CHECK_STR(f->ready[h1].msg, "no context for you");
  CHECK_INT(f->ready[h2].fired, 1);
  CHECK_INT(f->ready[h2].err, LC_CACHE_ECREATE);
  CHECK(lc_cache_handle_live(f->c, h1)); /* live until released */
  CHECK_INT(lc_cache_context_refcount(f->c, ctx), 2);
  CHECK_INT(lc_cache_open_count(f->c), 0);
  CHECK_INT(fake_count(f, CALL_CREATE_PAGE, 0), 0);
  CHECK(f->n_logs[LC_CACHE_LOG_WARN] >= 1);
  CHECK_CACHE(f);
  uint64_t h3 = acq(f, 1, OPT_A, 1); /* out of the map: a new context */
  CHECK_INT(fake_count(f, CALL_CREATE_CTX, 0), 2);
  CHECK_INT(lc_cache_release(f->c, h1, f->now), 0);
  CHECK_INT(lc_cache_release(f->c, h2, f->now), 0);
  CHECK_INT(lc_cache_context_refcount(f->c, ctx), LC_CACHE_ENOENT); /* freed */
  CHECK_CACHE(f);
  /* Page creation fails: ready with the error, the handle stays live. */
  fake_complete(f, CALL_CREATE_CTX, fake_last(f, CALL_CREATE_CTX), 0);
  CHECK_INT(fake_complete(f, CALL_CREATE_PAGE, fake_last(f, CALL_CREATE_PAGE), -1), 0);
  CHECK_INT(f->ready[h3].fired, 1);
  CHECK_INT(f->ready[h3].err, LC_CACHE_ECREATE);
  CHECK_STR(f->ready[h3].msg, "no page for you");
  CHECK(lc_cache_handle_live(f->c, h3));
  CHECK(lc_cache_handle_target(f->c, h3) == NULL);
  CHECK_CACHE(f);
  CHECK_INT(lc_cache_release(f->c, h3, f->now), 0);
  CHECK_INT(stats_of(f).refs_outstanding, 0);
  CHECK_CACHE(f);
  /* A backend that fails inside the call: ready fires with the error before acquire returns. */
  f->sync[CALL_CREATE_CTX] = 1;
  f->sync_err[CALL_CREATE_CTX] = -1;
  uint64_t h4 = acq(f, 1, OPT_B, 1);
  CHECK_INT(f->ready[h4].fired, 1);
  CHECK_INT(f->ready[h4].err, LC_CACHE_ECREATE);
  CHECK(lc_cache_handle_live(f->c, h4));
  CHECK_INT(lc_cache_open_count(f->c), 1); /* only h3's context */
  CHECK_CACHE(f);
  CHECK_INT(lc_cache_release(f->c, h4, f->now), 0);
  CHECK_INT(lc_cache_release(f->c, h4, f->now), LC_CACHE_EBADHANDLE);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_release_of_pending_handle_cancels_ready) {
  fake *f = fake_new(5000, 4);
  uint64_t h1 = acq(f, 1, OPT_A, 1);
  uint64_t ctx = fake_last(f, CALL_CREATE_CTX);
  CHECK_INT(lc_cache_release(f->c, h1, f->now), 0); /* while the context is creating */
  CHECK_INT(lc_cache_context_refcount(f->c, ctx), 0);
  fake_complete(f, CALL_CREATE_CTX, ctx, 0);
  CHECK_INT(f->ready[h1].fired, 0);
  CHECK_INT(fake_count(f, CALL_CREATE_PAGE, 0), 0);
  CHECK_INT(lc_cache_open_count(f->c), 1);
  CHECK_CACHE(f);
  uint64_t h2 = acq(f, 1, OPT_A, 1);
  uint64_t page = fake_last(f, CALL_CREATE_PAGE);
  CHECK_INT(lc_cache_release(f->c, h2, f->now), 0); /* while its page is creating */
  lc_cleanup_params p = {0, 1, 0, NULL, 0};
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 0); /* a page is being created: not yet */
  CHECK_CACHE(f);
  fake_complete(f, CALL_CREATE_PAGE, page, 0);
  CHECK_INT(f->ready[h2].fired, 0);
  CHECK_INT(stats_of(f).idle_pages, 1); /* the late page went idle */
  uint64_t h3 = acq(f, 1, OPT_A, 1);
  CHECK_INT(f->ready[h3].fired, 1);
  CHECK_INT(lc_cache_handle_page(f->c, h3), page);
  CHECK_INT(lc_cache_handle_page_fresh(f->c, h3), 0);
  lc_cache_release(f->c, h3, f->now);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_generation_recycle) {
  fake *f = fake_new(5000, 4);
  lc_cache_set_generation(f->c, 1, f->now);
  CHECK_INT(f->n_drained, 1); /* gen 0 had nothing open */
  CHECK_INT(f->drained[0], 0);
  uint64_t h1 = acq_page_ready(f, 1, OPT_A);
  uint64_t hb = acq_page_ready(f, 1, OPT_B);
  uint64_t a = lc_cache_handle_ctx(f->c, h1), b = lc_cache_handle_ctx(f->c, hb);
  uint64_t pa = lc_cache_handle_page(f->c, h1), pb = lc_cache_handle_page(f->c, hb);
  lc_cache_release(f->c, hb, f->now); /* b: refcount 0, one idle page */
  lc_cache_set_generation(f->c, 2, f->now);
  CHECK_INT(lc_cache_generation(f->c), 2);
  CHECK(fake_pos(f, CALL_CLOSE_PAGE, pb) >= 0);
  CHECK(fake_pos(f, CALL_CLOSE_PAGE, pb) < fake_pos(f, CALL_CLOSE_CTX, b));
  CHECK_INT(fake_pos(f, CALL_CLOSE_CTX, a), -1); /* in use: stays */
  CHECK_INT(lc_cache_context_refcount(f->c, a), 1);
  CHECK_CACHE(f);
  uint64_t h2 = acq(f, 1, OPT_A, 0); /* new acquires go to a new context in gen 2 */
  CHECK_INT(f->calls[fake_pos(f, CALL_CREATE_CTX, fake_last(f, CALL_CREATE_CTX))].gen, 2);
  fake_complete_all(f);
  CHECK(lc_cache_handle_ctx(f->c, h2) != a);
  CHECK_INT(lc_cache_handle_browser_gen(f->c, h2), 2);
  CHECK_INT(lc_cache_handle_browser_gen(f->c, h1), 1);
  CHECK_INT(f->n_drained, 1);         /* gen 1 still has a */
  lc_cache_release(f->c, h1, f->now); /* last reference: the page and a close now */
  CHECK(fake_pos(f, CALL_CLOSE_PAGE, pa) >= 0);
  CHECK(fake_pos(f, CALL_CLOSE_CTX, a) >= 0);
  CHECK_INT(stats_of(f).idle_pages, 0);
  CHECK_INT(f->n_drained, 1); /* closing is not closed */
  CHECK_CACHE(f);
  fake_complete_all(f);
  CHECK_INT(f->n_drained, 2);
  CHECK_INT(f->drained[1], 1);
  lc_cache_tick(f->c, f->now + 100000);
  lc_cache_release(f->c, h2, f->now);
  CHECK_INT(f->n_drained, 2); /* once */
  CHECK_CACHE(f);
  /* An old browser that crashes while draining is lost, not drained. */
  uint64_t h3 = acq(f, 1, OPT_C, 0);
  fake_complete_all(f);
  lc_cache_set_generation(f->c, 3, f->now);
  CHECK_INT(lc_cache_gen_contexts(f->c, 2, NULL), 2); /* h2's closing, h3's in use */
  lc_cache_browser_lost(f->c, 2, f->now);
  CHECK_INT(lc_cache_gen_contexts(f->c, 2, NULL), 1); /* h3's, dead, still held */
  CHECK_INT(f->n_drained, 2);
  CHECK_INT(lc_cache_release(f->c, h3, f->now), 0);
  CHECK_INT(f->n_drained, 2);
  CHECK_INT(lc_cache_gen_contexts(f->c, 2, NULL), 0);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_release_owner_is_the_finalizer) {
  fake *f = fake_new(5000, 4);
  int created = 0;
  uint64_t a1 = acq(f, 1, OPT_A, 0);
  uint64_t a2 = acq(f, 1, OPT_B, 1);
  uint64_t s1 = lc_cache_session_open(f->c, 1, "login", OPT_A, f->now, on_ready, f, &created);
  uint64_t b1 = acq(f, 2, OPT_A, 1);
  fake_complete_all(f);
  uint64_t pending = acq(f, 1, OPT_C, 1); /* still creating when the owner ends */
  CHECK_INT(lc_cache_owned(f->c, 1), 4);
  CHECK_INT(lc_cache_owned(f->c, 2), 1);
  CHECK_INT(lc_cache_release_owner(f->c, 1, f->now), 4);
  CHECK_INT(lc_cache_owned(f->c, 1), 0);
  CHECK_INT(lc_cache_owned(f->c, 2), 1);
  CHECK(!lc_cache_handle_live(f->c, a1) && !lc_cache_handle_live(f->c, a2));
  CHECK(!lc_cache_handle_live(f->c, s1) && !lc_cache_handle_live(f->c, pending));
  CHECK(lc_cache_handle_live(f->c, b1));
  CHECK_INT(lc_cache_session_find(f->c, 1, "login"), 0);
  CHECK_INT(stats_of(f).refs_outstanding, 1);
  CHECK_INT(lc_cache_release_owner(f->c, 1, f->now), 0);
  CHECK_INT(stats_of(f).bad_releases, 0);
  fake_complete_all(f);
  CHECK_INT(f->ready[pending].fired, 0);
  CHECK_CACHE(f);
  CHECK_INT(lc_cache_release_owner(f->c, 2, f->now), 1);
  CHECK_CACHE(f);
  fake_free(f);
}

/* lc_cache_handle_owner names the owner of a live handle, pending or ready, and 0 after. */
TEST(test_handle_owner) {
  fake *f = fake_new(5000, 4);
  int created = 0;
  uint64_t a = acq(f, 11, OPT_A, 1);
  CHECK_INT(lc_cache_handle_owner(f->c, a), 11); /* still waiting for its context */
  fake_complete_all(f);
  uint64_t b = acq(f, 12, OPT_A, 0);
  uint64_t s = lc_cache_session_open(f->c, 13, "s", OPT_B, f->now, on_ready, f, &created);
  fake_complete_all(f);
  CHECK_INT(lc_cache_handle_owner(f->c, a), 11);
  CHECK_INT(lc_cache_handle_owner(f->c, b), 12);
  CHECK_INT(lc_cache_handle_owner(f->c, s), 13);
  CHECK_INT(lc_cache_handle_owner(f->c, 9999), 0);
  CHECK_INT(lc_cache_handle_owner(NULL, a), 0);
  /* The page's owner is its holder's; the range counts handles of owners in [lo, hi). */
  CHECK_INT(lc_cache_page_owner(f->c, lc_cache_handle_page(f->c, a)), 11);
  CHECK_INT(lc_cache_page_owner(f->c, lc_cache_handle_page(f->c, s)), 13);
  CHECK_INT(lc_cache_owned_range(f->c, 11, 13), 2);
  CHECK_INT(lc_cache_owned_range(f->c, 0, UINT64_MAX), 3);
  CHECK_INT(lc_cache_owned_range(f->c, 14, 100), 0);
  uint64_t page_a = lc_cache_handle_page(f->c, a);
  lc_cache_release(f->c, a, f->now);
  CHECK_INT(lc_cache_handle_owner(f->c, a), 0);
  CHECK_INT(lc_cache_page_owner(f->c, page_a), 0); /* idle now */
  CHECK_INT(lc_cache_owned_range(f->c, 11, 13), 1);
  CHECK_INT(lc_cache_release_owner(f->c, 13, f->now), 1);
  CHECK_INT(lc_cache_handle_owner(f->c, s), 0);
  CHECK_INT(lc_cache_handle_owner(f->c, b), 12);
  /* An owner whose handles all went comes back with a new handle. */
  uint64_t b2 = acq(f, 13, OPT_A, 0);
  CHECK_INT(lc_cache_handle_owner(f->c, b2), 13);
  CHECK_INT(lc_cache_owned(f->c, 13), 1);
  CHECK_CACHE(f);
  lc_cache_release(f->c, b, f->now);
  lc_cache_release(f->c, b2, f->now);
  CHECK_CACHE(f);
  fake_free(f);
}

/* A context whose handles were all released while it was being created becomes unused when
 * it opens, at the place in the LRU order its last release gave it: before contexts
 * released after it. */
TEST(test_context_opened_after_release_keeps_lru_place) {
  fake *f = fake_new(5000, 4);
  uint64_t ha = acq(f, 1, OPT_A, 0), hb = acq(f, 1, OPT_B, 0), hc = acq(f, 1, OPT_C, 0);
  fake_complete_all(f);
  uint64_t a = lc_cache_handle_ctx(f->c, ha), b = lc_cache_handle_ctx(f->c, hb),
           c = lc_cache_handle_ctx(f->c, hc);
  CHECK_INT(lc_cache_release(f->c, hb, f->now), 0);
  f->now += 10;
  CHECK_INT(lc_cache_release(f->c, hc, f->now), 0);
  f->now += 10;
  CHECK_INT(lc_cache_release(f->c, ha, f->now), 0);
  /* Now a context D released while creating, then opened: its release came before E's. */
  uint64_t hd = acq(f, 1, OPT_D, 0);
  uint64_t d = fake_last(f, CALL_CREATE_CTX);
  f->now += 10;
  CHECK_INT(lc_cache_release(f->c, hd, f->now), 0); /* D: released while creating */
  uint64_t he = acq(f, 1, "{\"locale\":\"nl-NL\"}", 0);
  uint64_t e = fake_last(f, CALL_CREATE_CTX);
  fake_complete(f, CALL_CREATE_CTX, e, 0);
  f->now += 10;
  CHECK_INT(lc_cache_release(f->c, he, f->now), 0); /* E: released after D */
  fake_complete(f, CALL_CREATE_CTX, d, 0);          /* D opens last, unused at once */
  CHECK_CACHE(f);
  /* LRU: B, C, A, D, E. Keeping two closes B, C and A; keeping one closes D too. */
  lc_cleanup_params p = {2, 0, 0, NULL, 0};
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 3);
  CHECK_INT(f->calls[f->n_calls - 3].id, b);
  CHECK_INT(f->calls[f->n_calls - 2].id, c);
  CHECK_INT(f->calls[f->n_calls - 1].id, a);
  p.max_contexts = 1;
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 1);
  CHECK_INT(fake_last(f, CALL_CLOSE_CTX), d);
  fake_complete_all(f);
  CHECK_CACHE(f);
  fake_free(f);
}

/* The idle pool is one budget across contexts: a release evicts the least recently idled
 * page of any context, and the context it leaves empty is closed by the next LRU pass. */
TEST(test_idle_budget_is_global) {
  fake *f = fake_new(5000, 2);
  const char *opts[] = {OPT_A, OPT_B, OPT_C, OPT_D};
  uint64_t h[4], pg[4], cx[4];
  for (int i = 0; i < 4; i++) {
    h[i] = acq_page_ready(f, 1, opts[i]);
    pg[i] = lc_cache_handle_page(f->c, h[i]);
    cx[i] = lc_cache_handle_ctx(f->c, h[i]);
  }
  for (int i = 0; i < 4; i++) {
    f->now += 10;
    lc_cache_release(f->c, h[i], f->now);
    CHECK(stats_of(f).idle_pages <= 2);
  }
  /* A's and B's pages were idled first: they went; C and D keep theirs. */
  CHECK_INT(stats_of(f).idle_pages, 2);
  CHECK_INT(stats_of(f).pages_evicted, 2);
  CHECK(fake_pos(f, CALL_CLOSE_PAGE, pg[0]) >= 0);
  CHECK(fake_pos(f, CALL_CLOSE_PAGE, pg[1]) >= 0);
  CHECK(fake_pos(f, CALL_CLOSE_PAGE, pg[2]) < 0);
  CHECK(fake_pos(f, CALL_CLOSE_PAGE, pg[3]) < 0);
  fake_complete_all(f);
  CHECK_INT(info_of(f, cx[0]).idle_pages, 0);
  CHECK_INT(info_of(f, cx[2]).idle_pages, 1);
  /* Without force, max_contexts 0: the emptied contexts close, the two with idle pages stay
   * (the bound is max(max_contexts, max_idle_pages) unused contexts). */
  lc_cleanup_params p = {.max_contexts = 0};
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 2);
  CHECK(fake_pos(f, CALL_CLOSE_CTX, cx[0]) >= 0);
  CHECK(fake_pos(f, CALL_CLOSE_CTX, cx[1]) >= 0);
  CHECK(fake_pos(f, CALL_CLOSE_CTX, cx[2]) < 0);
  fake_complete_all(f);
  CHECK_INT(stats_of(f).contexts_open, 2);
  /* With force the LRU pass closes them too, pages and all. */
  p.force = 1;
  CHECK_INT(lc_cache_cleanup(f->c, &p, f->now), 2);
  fake_complete_all(f);
  CHECK_INT(stats_of(f).contexts_open, 0);
  CHECK_INT(stats_of(f).idle_pages, 0);
  CHECK_CACHE(f);
  fake_free(f);
}

/* A crawl in miniature: `slots` requests in flight, each acquiring a page for configuration
 * (i % n_sigs) round robin, completing at once, and releasing in order. Returns reuse %;
 * *target gets the pool's target before the last requests are given back. */
static int rotate(fake *f, unsigned n_sigs, int slots, int requests, int *target) {
  uint64_t inflight[64];
  char opts[64];
  int n = 0;
  f->sync[CALL_CREATE_CTX] = f->sync[CALL_CREATE_PAGE] = 1;
  f->sync[CALL_CLOSE_CTX] = f->sync[CALL_CLOSE_PAGE] = 1;
  lc_cache_stats before = stats_of(f);
  for (int i = 0; i < requests; i++) {
    if (n == slots) {
      lc_cache_release(f->c, inflight[0], f->now);
      memmove(inflight, inflight + 1, (size_t)(n - 1) * sizeof inflight[0]);
      n--;
      lc_cleanup_params p = {.max_contexts = 4};
      lc_cache_cleanup(f->c, &p, f->now);
    }
    snprintf(opts, sizeof opts, "{\"ua\":\"ua-%u\"}", (unsigned)i % n_sigs);
    inflight[n++] = acq(f, 1, opts, 1);
    f->now += 5;
  }
  *target = stats_of(f).idle_target;
  while (n) lc_cache_release(f->c, inflight[--n], f->now);
  lc_cache_stats after = stats_of(f);
  uint64_t reused = after.pages_reused - before.pages_reused;
  return (int)(reused * 100 / (uint64_t)requests);
}

/* adaptive_idle: four configurations keep their idle pages and reuse nearly every page; twenty
 * in round robin (which a pool of 8 can never serve) end with the pool's target at 0, so no
 * idle page is kept; when the load goes back to four, the target grows back. */
TEST(test_adaptive_idle_pool) {
  lc_cache_config cfg = {.close_timeout_ms = 5000, .max_idle_pages = 8, .adaptive_idle = 1};
  fake *f = fake_new_cfg(&cfg);
  int target = -1;
  CHECK(rotate(f, 4, 8, 2000, &target) >= 95);
  CHECK_INT(target, 8); /* never overflowed: nothing to adapt */
  CHECK_INT(rotate(f, 20, 8, 2000, &target), 0);
  CHECK_INT(target, 0);
  CHECK_INT(stats_of(f).idle_pages, 0);
  CHECK(rotate(f, 4, 8, 2000, &target) >= 90);
  /* Each release here is followed by an acquire of the same configuration: one idle page
   * serves them all, and the target settles where that is enough. */
  CHECK(target >= 1);
  CHECK(stats_of(f).idle_ghost_hits > 0);
  CHECK_CACHE(f);
  lc_cleanup_params all = {.max_contexts = 0, .force = 1};
  lc_cache_cleanup(f->c, &all, f->now);
  fake_free(f);
  /* Without adapting, twenty configurations keep the pool full of pages nobody reuses. */
  cfg.adaptive_idle = 0;
  f = fake_new_cfg(&cfg);
  CHECK_INT(rotate(f, 20, 8, 2000, &target), 0);
  CHECK_INT(target, 8);
  CHECK_INT(stats_of(f).idle_pages, 8);
  CHECK(rotate(f, 4, 8, 2000, &target) >= 95);
  lc_cache_cleanup(f->c, &all, f->now);
  fake_free(f);
}

/* max_pages_per_context: the acquire that reaches the limit is the context's last; the next
 * one of the same key gets a fresh context; the old one closes with its last reference, in
 * use until then, and keeps no idle page. */
/* max_uses_per_page: a page handed out that many times is closed when it comes back (not
 * idled, not a pool eviction); the next acquire of its context gets a fresh page, and the
 * context stays. A page in use past the limit is never closed under its handle. */
TEST(test_page_retires_after_max_uses) {
  lc_cache_config cfg = {.close_timeout_ms = 5000, .max_idle_pages = 4, .max_uses_per_page = 2};
  fake *f = fake_new_cfg(&cfg);
  uint64_t h1 = acq_page_ready(f, 1, OPT_A);
  uint64_t p1 = lc_cache_handle_page(f->c, h1), ctx = lc_cache_handle_ctx(f->c, h1);
  lc_cache_release(f->c, h1, f->now); /* 1 use of 2: idles */
  CHECK_INT(stats_of(f).idle_pages, 1);
  uint64_t h2 = acq_page_ready(f, 1, OPT_A);
  CHECK_INT(lc_cache_handle_page(f->c, h2), p1); /* 2 of 2: still served */
  CHECK_INT(fake_pos(f, CALL_CLOSE_PAGE, p1), -1);
  lc_cache_release(f->c, h2, f->now);
  CHECK(fake_pos(f, CALL_CLOSE_PAGE, p1) >= 0); /* worn out: closed, not idled */
  CHECK_INT(stats_of(f).idle_pages, 0);
  CHECK_INT(stats_of(f).pages_retired, 1);
  CHECK_INT(stats_of(f).pages_evicted, 0);
  CHECK_INT(fake_complete(f, CALL_CLOSE_PAGE, p1, 0), 0);
  uint64_t h3 = acq_page_ready(f, 1, OPT_A);
  CHECK_INT(lc_cache_handle_page_fresh(f->c, h3), 1);
  CHECK(lc_cache_handle_page(f->c, h3) != p1);
  CHECK_INT(lc_cache_handle_ctx(f->c, h3), ctx); /* the context stays */
  CHECK_INT(stats_of(f).contexts_created, 1);
  lc_cache_release_owner(f->c, 1, f->now);
  CHECK_CACHE(f);
  fake_free(f);
}

TEST(test_context_retires_after_max_pages) {
  lc_cache_config cfg = {.close_timeout_ms = 5000, .max_idle_pages = 4, .max_pages_per_context = 3};
  fake *f = fake_new_cfg(&cfg);
  uint64_t h1 = acq_page_ready(f, 1, OPT_A);
  uint64_t old = lc_cache_handle_ctx(f->c, h1);
  lc_cache_release(f->c, h1, f->now);
  uint64_t h2 = acq_page_ready(f, 1, OPT_A); /* reuses the idle page: 2 of 3 */
  CHECK_INT(lc_cache_handle_ctx(f->c, h2), old);
  CHECK_INT(lc_cache_handle_page_fresh(f->c, h2), 0);
  uint64_t h3 = acq_page_ready(f, 1, OPT_A); /* 3 of 3: served, and the context retires */
  CHECK_INT(lc_cache_handle_ctx(f->c, h3), old);
  CHECK_INT(stats_of(f).contexts_retired, 1);
  CHECK_INT(info_of(f, old).retired, 1);
  uint64_t h4 = acq_page_ready(f, 1, OPT_A); /* a fresh context takes the key */
  uint64_t fresh = lc_cache_handle_ctx(f->c, h4);
  CHECK(fresh != old);
  CHECK_INT(stats_of(f).contexts_created, 2);
  lc_cleanup_params force_all = {.max_contexts = 0, .force = 1};
  lc_cache_cleanup(f->c, &force_all, f->now); /* in use: never closed */
  CHECK(fake_pos(f, CALL_CLOSE_CTX, old) < 0);
  lc_cache_release(f->c, h2, f->now); /* a retired context keeps no idle page */
  CHECK_INT(info_of(f, old).idle_pages, 0);
  CHECK(fake_pos(f, CALL_CLOSE_CTX, old) < 0);
  lc_cache_release(f->c, h3, f->now); /* its last reference: closed */
  CHECK(fake_pos(f, CALL_CLOSE_CTX, old) >= 0);
  CHECK(fake_pos(f, CALL_CLOSE_CTX, fresh) < 0);
  lc_cache_release(f->c, h4, f->now);
  CHECK_INT(info_of(f, fresh).idle_pages, 1); /* the fresh one is reusable */
  fake_complete_all(f);
  /* Context-only acquires do not wear a context out. */
  for (int i = 0; i < 5; i++) lc_cache_release(f->c, acq(f, 1, OPT_A, 0), f->now);
  CHECK_INT(stats_of(f).contexts_retired, 1);
  CHECK_CACHE(f);
  lc_cache_cleanup(f->c, &force_all, f->now);
  fake_complete_all(f);
  CHECK_INT(stats_of(f).contexts_open, 0);
  fake_free(f);
}

/* Handles that joined a context while it was being created are all served by it, even past
 * the limit's count of later joiners: nothing joins a retired context. */
TEST(test_retire_while_creating) {
  lc_cache_config cfg = {.close_timeout_ms = 5000, .max_idle_pages = 4, .max_pages_per_context = 2};
  fake *f = fake_new_cfg(&cfg);
  uint64_t h1 = acq(f, 1, OPT_A, 1), h2 = acq(f, 1, OPT_A, 1), h3 = acq(f, 1, OPT_A, 1);
  CHECK_INT(fake_count(f, CALL_CREATE_CTX, 0), 2); /* the third started a fresh context */
  fake_complete_all(f);
  CHECK_INT(lc_cache_handle_ctx(f->c, h1), lc_cache_handle_ctx(f->c, h2));
  CHECK(lc_cache_handle_ctx(f->c, h3) != lc_cache_handle_ctx(f->c, h1));
  uint64_t old = lc_cache_handle_ctx(f->c, h1);
  lc_cache_release(f->c, h1, f->now);
  lc_cache_release(f->c, h2, f->now);
  CHECK(fake_pos(f, CALL_CLOSE_CTX, old) >= 0);
  lc_cache_release(f->c, h3, f->now);
  fake_complete_all(f);
  CHECK_CACHE(f);
  lc_cleanup_params force_all = {.max_contexts = 0, .force = 1};
  lc_cache_cleanup(f->c, &force_all, f->now);
  fake_complete_all(f);
  fake_free(f);
}

/* ------------------------------------------------------------------ random walk */

static void model_add(fake *f, uint64_t h, uint64_t owner) {
  if (f->n_live == f->cap_live) {
    f->cap_live = f->cap_live ? f->cap_live * 2 : 64;
    f->live = realloc(f->live, f->cap_live * sizeof *f->live);
    f->live_owner = realloc(f->live_owner, f->cap_live * sizeof *f->live_owner);
    if (!f->live || !f->live_owner) abort();
  }
  f->live_owner[f->n_live] = owner;
  f->live[f->n_live++] = h;
}

static void model_remove(fake *f, uint64_t h) {
  for (size_t i = 0; i < f->n_live; i++) {
    if (f->live[i] != h) continue;
    f->live[i] = f->live[f->n_live - 1];
    f->live_owner[i] = f->live_owner[f->n_live - 1];
    f->n_live--;
    return;
  }
}

static int model_has(const fake *f, uint64_t h) {
  for (size_t i = 0; i < f->n_live; i++)
    if (f->live[i] == h) return 1;
  return 0;
}

/* The memory bound lc_cache_cleanup promises (ctxcache.h): unused open contexts of the
 * current generation at most max(max_contexts, max_idle_pages), or max_contexts with force.
 * Returns the count found, or -1 (and says so) when it is over. */
static int unused_over_bound(const fake *f, const lc_cleanup_params *p, int budget) {
  static lc_cache_ctx_info all[1024];
  size_t n = lc_cache_snapshot(f->c, all, 1024, NULL, f->now);
  int unused = 0, gen = lc_cache_generation(f->c);
  for (size_t i = 0; i < n; i++)
    unused += all[i].browser_gen == gen && !all[i].creating && all[i].refcount == 0 &&
              all[i].creating_pages == 0 && !all[i].retired;
  int bound = p->force ? p->max_contexts : (p->max_contexts > budget ? p->max_contexts : budget);
  if (unused <= bound) return unused;
  fprintf(stderr,
          "  %d unused contexts open after cleanup (max_contexts %d, force %d, budget %d)\n",
          unused, p->max_contexts, p->force, budget);
  return -1;
}

/* One seeded walk of acquires, releases, completions, cleanups (with hook-style close lists),
 * ticks, crashes, recycles, bad marks, owner finalizers and sessions over `n_sigs` rotating
 * signatures, checking every invariant after every step and the memory bound after every
 * cleanup. */
static uint64_t random_walk(uint64_t seed, const lc_cache_config *cfg, unsigned n_sigs, int steps) {
  static char opts[512][32];
  static const char *names[] = {"s1", "s2"};
  for (unsigned i = 0; i < n_sigs; i++) snprintf(opts[i], sizeof opts[i], "{\"ua\":\"ua-%u\"}", i);
  {
    fake *f = fake_new_cfg(cfg);
    f->rng = seed * UINT64_C(0x9E3779B97F4A7C15);
    f->release_in_ready = 5;
    uint64_t released[256] = {0};
    size_t n_released = 0;
    uint64_t bad = 0;
    int gen = 0, failed_step = -1;
    unsigned next_sig = 0; /* round robin over the signatures, with random jumps */
    for (int step = 0; step < steps && failed_step < 0; step++) {
      if (step % 50 == 0)
        for (int k = 0; k < CALL_KINDS; k++) f->sync[k] = rnd_below(f, 4) == 0;
      unsigned op = rnd_below(f, 100);
      uint64_t owner = 1 + rnd_below(f, 3);
      if (op < 25) {
        unsigned sig = rnd_below(f, 4) ? next_sig++ % n_sigs : rnd_below(f, n_sigs);
        uint64_t h = acq(f, owner, opts[sig], (int)rnd_below(f, 3) > 0);
        CHECK(h > 0);
        /* a ready callback may already have given it back */
        if (lc_cache_handle_live(f->c, h)) model_add(f, h, owner);
      } else if (op < 45 && f->n_live) {
        uint64_t h = f->live[rnd_below(f, (unsigned)f->n_live)];
        CHECK_INT(lc_cache_release(f->c, h, f->now), 0);
        model_remove(f, h);
        released[n_released++ % 256] = h;
      } else if (op < 48 && n_released) {
        uint64_t h = released[rnd_below(f, (unsigned)(n_released < 256 ? n_released : 256))];
        if (!model_has(f, h)) {
          CHECK_INT(lc_cache_release(f->c, h, f->now), LC_CACHE_EBADHANDLE);
          bad++;
        }
      } else if (op < 70) {
        size_t pending[64], n = 0;
        for (size_t i = 0; i < f->n_calls && n < 64; i++)
          if (f->calls[i].pending) pending[n++] = i;
        if (n) {
          size_t i = pending[rnd_below(f, (unsigned)n)];
          int err = rnd_below(f, 10) == 0 ? -1 : 0;
          fake_complete_at(f, i, err);
        }
      } else if (op < 78) {
        uint64_t ids[3];
        size_t n = rnd_below(f, 4);
        for (size_t i = 0; i < n; i++) ids[i] = 1 + rnd_below(f, (unsigned)(f->n_calls + 2));
        lc_cleanup_params p = {(int)rnd_below(f, 4), (int)rnd_below(f, 2),
                               rnd_below(f, 2) ? 500 + rnd_below(f, 4000) : 0, ids, n};
        CHECK(lc_cache_cleanup(f->c, &p, f->now) >= 0);
        if (unused_over_bound(f, &p, cfg->max_idle_pages) < 0) failed_step = step;
      } else if (op < 86) {
        f->now += rnd_below(f, 1500);
        lc_cache_tick(f->c, f->now);
      } else if (op < 87) {
        if (rnd_below(f, 3) == 0) {                                    /* a crash, now and then */
          int which = gen > 0 && rnd_below(f, 3) == 0 ? gen - 1 : gen; /* sometimes the old one */
          if (!f->drained_seen[which]) {
            lc_cache_browser_lost(f->c, which, f->now);
            f->lost_seen[which] = 1;
          }
          if (rnd_below(f, 2)) lc_cache_set_generation(f->c, ++gen, f->now);
        }
      } else if (op < 88) {
        if (rnd_below(f, 2) == 0) lc_cache_set_generation(f->c, ++gen, f->now); /* recycle */
      } else if (op < 92 && f->n_live) {
        uint64_t h = f->live[rnd_below(f, (unsigned)f->n_live)];
        int rc = lc_cache_page_mark_bad(f->c, h);
        CHECK(rc == 0 || rc == LC_CACHE_ENOENT);
      } else if (op < 93) {
        /* a renderer crash: any page id the backend has seen, idle, in use or gone */
        uint64_t page = 1 + rnd_below(f, (unsigned)(f->n_calls + 2));
        int rc = lc_cache_page_broken(f->c, page, f->now);
        CHECK(rc == 0 || rc == LC_CACHE_ENOENT);
      } else if (op < 95) {
        int n = lc_cache_release_owner(f->c, owner, f->now);
        int expect = 0;
        for (size_t i = f->n_live; i-- > 0;) {
          if (f->live_owner[i] != owner) continue;
          expect++;
          model_remove(f, f->live[i]);
        }
        CHECK_INT(n, expect);
        CHECK_INT(lc_cache_owned(f->c, owner), 0);
      } else {
        const char *name = names[rnd_below(f, 2)];
        uint64_t before = lc_cache_session_find(f->c, owner, name);
        if (rnd_below(f, 2)) {
          int created = -1;
          uint64_t h = lc_cache_session_open(f->c, owner, name, opts[rnd_below(f, n_sigs)], f->now,
                                             on_ready, f, &created);
          CHECK_INT(created, before ? 0 : 1);
          if (before) CHECK_INT(h, before);
          if (created && lc_cache_handle_live(f->c, h)) model_add(f, h, owner);
        } else {
          int rc = lc_cache_session_close(f->c, owner, name, f->now);
          CHECK_INT(rc, before ? 0 : LC_CACHE_ENOENT);
          if (before) model_remove(f, before);
        }
      }
      /* after every step */
      char why[256] = "";
      lc_cache_stats s = stats_of(f);
      int ok = lc_cache_check(f->c, why, sizeof why) == 0;
      if (!ok) fprintf(stderr, "  seed %" PRIu64 " step %d: %s\n", seed, step, why);
      ok = ok && s.refs_outstanding == (int)f->n_live && s.bad_releases == bad;
      ok = ok && f->close_in_use == 0 && f->check_failures == 0 && f->late_ready == 0;
      ok = ok && f->drain_violations == 0 && gen < 1000;
      for (size_t i = 0; ok && i < f->n_live; i++) {
        uint64_t h = f->live[i];
        ok = lc_cache_handle_live(f->c, h) && f->ready[h].fired <= 1;
        if (ok && f->ready[h].fired && f->ready[h].err == 0 && lc_cache_handle_page(f->c, h))
          ok = lc_cache_handle_target(f->c, h) != NULL;
      }
      ok = ok && s.contexts_open == lc_cache_open_count(f->c) && s.idle_pages >= 0;
      if (!ok) {
        failed_step = step;
        fprintf(stderr, "  seed %" PRIu64 " broke at step %d (refs %d, model %zu)\n", seed, step,
                s.refs_outstanding, f->n_live);
      }
    }
    CHECK_INT(failed_step, -1);
    /* Wind down: everything released, answered and cleaned leaves nothing open. */
    f->release_in_ready = 0;
    while (f->n_live) {
      CHECK_INT(lc_cache_release(f->c, f->live[0], f->now), 0);
      model_remove(f, f->live[0]);
    }
    fake_complete_all(f);
    lc_cleanup_params p = {0, 1, 0, NULL, 0};
    lc_cache_cleanup(f->c, &p, f->now);
    fake_complete_all(f);
    lc_cache_tick(f->c, f->now + 100000);
    lc_cache_stats s = stats_of(f);
    CHECK_INT(s.refs_outstanding, 0);
    CHECK_INT(s.contexts_open, 0);
    CHECK_INT(s.idle_pages, 0);
    CHECK(s.contexts_created > 20);
    if (cfg->max_pages_per_context > 0) CHECK(s.contexts_retired > 0);
    CHECK_INT(lc_cache_gen_contexts(f->c, gen, NULL), 0);
    /* every old generation was drained, exactly once, or lost */
    for (int g = 0; g < gen; g++) CHECK(f->drained_seen[g] + f->lost_seen[g] == 1);
    CHECK_CACHE(f);
    fake_free(f);
    return s.pages_reused;
  }
}

TEST(test_random_walk_keeps_invariants) {
  lc_cache_config cfg = {.close_timeout_ms = 3000, .max_idle_pages = 2};
  for (uint64_t seed = 1; seed <= 4; seed++) CHECK(random_walk(seed, &cfg, 5, 4000) > 0);
}

/* Many rotating signatures: what stays open is bounded by the policy's numbers alone. */
TEST(test_random_walk_rotating_signatures_bounded) {
  static const lc_cache_config cfgs[] = {
      {.close_timeout_ms = 3000, .max_idle_pages = 0},
      {.close_timeout_ms = 3000, .max_idle_pages = 3},
      {.close_timeout_ms = 3000, .max_idle_pages = 8, .max_pages_per_context = 3},
      {.close_timeout_ms = 3000, .max_idle_pages = 1, .max_pages_per_context = 1},
      {.close_timeout_ms = 3000, .max_idle_pages = 4, .adaptive_idle = 1},
      {.close_timeout_ms = 3000,
       .max_idle_pages = 8,
       .max_pages_per_context = 2,
       .adaptive_idle = 1},
  };
  static const unsigned sigs[] = {4, 20, 200};
  uint64_t seed = 100;
  for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++)
    for (size_t j = 0; j < sizeof sigs / sizeof sigs[0]; j++)
      if (random_walk(seed++, &cfgs[i], sigs[j], 3000) == 0)
        CHECK(cfgs[i].max_idle_pages == 0 || cfgs[i].max_pages_per_context == 1 || sigs[j] > 20);
}

int main(void) {
  RUN(test_signature_is_fnv1a_and_stable);
  RUN(test_acquire_reuses_context_by_signature);
  RUN(test_ready_fires_once_later_or_synchronously);
  RUN(test_waiting_handles_all_proceed);
  RUN(test_cleanup_closes_least_recently_released_first);
  RUN(test_cleanup_respects_max_contexts);
  RUN(test_force_closes_idle_pages_then_context);
  RUN(test_context_in_use_is_never_closed);
  RUN(test_reused_session_takes_and_releases_nothing);
  RUN(test_bad_release_is_loud_and_changes_nothing);
  RUN(test_unanswered_close_frees_slot_after_timeout);
  RUN(test_browser_lost_drops_contexts);
  RUN(test_idle_timer_closes_after_and_not_before);
  RUN(test_page_reuse_and_bad_pages);
  RUN(test_broken_page_is_closed_never_reused);
  RUN(test_max_idle_pages);
  RUN(test_creation_failures);
  RUN(test_release_of_pending_handle_cancels_ready);
  RUN(test_generation_recycle);
  RUN(test_release_owner_is_the_finalizer);
  RUN(test_handle_owner);
  RUN(test_context_opened_after_release_keeps_lru_place);
  RUN(test_idle_budget_is_global);
  RUN(test_adaptive_idle_pool);
  RUN(test_page_retires_after_max_uses);
  RUN(test_context_retires_after_max_pages);
  RUN(test_retire_while_creating);
  RUN(test_random_walk_keeps_invariants);
  RUN(test_random_walk_rotating_signatures_bounded);
  DONE();
}
