/* engine.c: the engine (see engine.h): the loop, the browsers, the cache, signals, the jobs.
 * Order of a CLI run: make the job (its script, job table, policy and start URLs are loaded
 * and validated in protected calls) before any browser starts; then create the cache with the
 * job's policy, launch the browser, crawl, and shut down: stop accepting work, cancel pending
 * operations, release every owner, close contexts, close browsers, close Lua, close the
 * remaining handles, check that the loop closes. */
#include "engine.h"

#include <errno.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "browser.h"
#include "interrupt.h"
#include "l_policy.h"
#include "log.h"
#include "proc.h"
#include "window.h"
#include "ws.h"

#define TICK_MS 250
#define SHUTDOWN_CLOSE_MS 3000
#define OUTPUT_SIGNAL_WAIT_MS 500 /* after SIGINT/SIGTERM, how long the end waits for the reader */
/* More than this many browser crashes within CRASH_WINDOW_MS is a crash loop: the jobs end.
 * Crashes spread out (a hostile page now and then, its retries backing off) are not: that page
 * fails after its retries, the job goes on. */
#define MAX_CRASHES_IN_WINDOW 8
#define CRASH_WINDOW_MS 60000
#define MAX_LOST_CLOSES 3

struct lc_engine {
  lc_shared sh; /* what the jobs see */
  uv_loop_t loop;
  lc_ws_ctx *ws;
  lc_job *hook_job; /* whose Lua state holds the policy's hook, or NULL */
  char *browser_path;
  const char *connect;
  int want_stats;
  void (*signal_hook)(void *ud, int sig);
  void *signal_ud;

  lc_job **jobs;
  size_t n_jobs, cap_jobs;
  uint32_t next_job_id;

  int starting_gen; /* a generation being started for a recycle, or 0 */
  int ready;        /* the first browser was ready */
  int started;      /* lc_engine_start ran */
  int stopping;     /* shutting down */
  int stop_signal;  /* SIGINT/SIGTERM, or 0 */
  uint64_t signal_ms;
  int fatal;
  char fatal_msg[512];
  int signals_on;
  lc_window crashes;

  long gen_rss_kb, gen_pss_kb; /* the current generation alone */
  int64_t mem_sampled_ms, pss_sampled_ms;
  int mem_samples;

  uv_timer_t tick_timer; /* cache tick, idle cleanup, memory sampling, progress */
  uv_timer_t stop_timer; /* keeps the loop turning while shutdown waits */
};

static void each_job(lc_engine *e, void (*fn)(lc_job *j)) {
  for (size_t i = 0; i < e->n_jobs; i++) fn(e->jobs[i]);
}

/* Stop everything for good: every job fails with `msg`. */
static void engine_fail(lc_engine *e, const char *msg) {
  if (!e->fatal) snprintf(e->fatal_msg, sizeof e->fatal_msg, "%s", msg);
  e->fatal = 1;
  for (size_t i = 0; i < e->n_jobs; i++) lc_job_fail(e->jobs[i], msg);
  uv_stop(&e->loop);
}

/* ---------------------------------------------------------------- browser events */

static void on_browser_ready(void *ud, int gen, int err, const char *msg) {
  lc_engine *e = ud;
  if (err && e->stopping) {
    /* Closed by the shutdown while it was starting (a restart after the last crash). */
    lc_debug("a browser starting at shutdown did not finish: %s", msg ? msg : "closed");
    return;
  }
  if (err) {
    if (e->starting_gen == gen) {
      /* A recycle's new browser did not start: keep crawling on the old one. */
      lc_warn("a replacement browser did not start (%s); staying on the current one", msg);
      e->starting_gen = 0;
      return;
    }
    engine_fail(e, msg ? msg : "browser did not start");
    return;
  }
  if (e->starting_gen == gen) {
    /* Recycle: new work goes to the new browser; the old one drains, then closes. */
    int old = e->sh.gen;
    e->sh.gen = gen;
    e->sh.gen_pages = 0;
    e->starting_gen = 0;
    e->sh.browser_recycles++;
    lc_cache_set_generation(e->sh.cache, gen, lc_now(&e->sh));
    lc_info("browser recycled: %d -> %d", old, gen);
    each_job(e, lc_job_after_release);
    return;
  }
  e->ready = 1;
  each_job(e, lc_job_browser_ready);
}

static void on_browser_lost(void *ud, int gen, int crashed, const char *why) {
  lc_engine *e = ud;
  if (!crashed || e->stopping) return;
  if (gen != e->sh.gen) return; /* an old, draining browser: its requests fail and are retried */
  e->sh.restarts++;
  int recent = lc_window_note(&e->crashes, lc_now(&e->sh), CRASH_WINDOW_MS);
  char msg[512];
  if (recent > MAX_CRASHES_IN_WINDOW) {
    snprintf(msg, sizeof msg, "the browser crashed %d times within %d s (a crash loop); last: %s",
             recent, CRASH_WINDOW_MS / 1000, why);
    engine_fail(e, msg);
    return;
  }
  char *err = NULL;
  int g = lc_bpool_start(e->sh.pool, &err);
  if (g < 0) {
    snprintf(msg, sizeof msg, "cannot restart the browser: %s", err ? err : "unknown");
    free(err);
    engine_fail(e, msg);
    return;
  }
  lc_warn("browser crashed (%s); started a new one", why);
  e->sh.gen = g;
  e->sh.gen_pages = 0;
  lc_cache_set_generation(e->sh.cache, g, lc_now(&e->sh));
}

static void on_browser_drained(void *ud, int gen) {
  lc_engine *e = ud;
  if (gen != e->sh.gen) lc_bpool_close(e->sh.pool, gen, 2000);
}

/* A paused main-frame navigation: the job whose task holds the page decides. A page nobody
 * holds (it went idle meanwhile) is refused. */
static void on_nav_paused(void *ud, uint64_t page_id, const char *request_id, const char *url,
                          int redirected) {
  lc_engine *e = ud;
  uint64_t owner = lc_cache_page_owner(e->sh.cache, page_id);
  for (size_t i = 0; owner && i < e->n_jobs; i++) {
    if (owner >> LC_JOB_ID_SHIFT == lc_job_id(e->jobs[i])) {
      lc_job_nav_paused(e->jobs[i], page_id, request_id, url, redirected);
      return;
    }
  }
  lc_enpage *pg = lc_bpool_page(e->sh.pool, page_id);
  if (pg) lc_enpage_nav_decide(e->sh.pool, pg, request_id, 0);
}

/* ---------------------------------------------------------------- memory */

static int sample_mem(void *ud) {
  lc_engine *e = ud;
  int64_t now = lc_now(&e->sh);
  if (!e->sh.pool || (e->mem_sampled_ms && now - e->mem_sampled_ms < 1000)) return 0;
  e->mem_sampled_ms = now;
  e->mem_samples++;
  /* PSS costs the kernel a page-table walk per process (a bench measured ~15 % of a crawl's
   * pages/s when read every second): every second only for max_browser_pss_mb, else every 5 s.
   * Summed RSS (from /proc/PID/stat) is read every time. */
  const lc_policy *p = &e->sh.policy;
  int want_pss = p->max_browser_pss_mb > 0 || !e->pss_sampled_ms || now - e->pss_sampled_ms >= 5000;
  if (want_pss) e->pss_sampled_ms = now;
  lc_proc_mem all, cur;
  int browsers = lc_bpool_mem(e->sh.pool, 0, want_pss, &all);
  if (browsers > 1) /* a recycle under way: the limits see the new one */
    lc_bpool_mem(e->sh.pool, e->sh.gen, want_pss, &cur);
  else
    cur = all;
  e->sh.browser_rss_kb = all.rss_kb;
  e->gen_rss_kb = cur.rss_kb;
  if (want_pss) {
    e->sh.browser_pss_kb = all.pss_kb;
    e->gen_pss_kb = cur.pss_kb;
  }
  if (all.rss_kb > e->sh.browser_rss_peak_kb) e->sh.browser_rss_peak_kb = all.rss_kb;
  if (all.pss_kb > e->sh.browser_pss_peak_kb) e->sh.browser_pss_peak_kb = all.pss_kb;
  return 1;
}

/* Whether anything reads browser memory every second: a limit, the hook (its state has it),
 * a live progress line, or --stats (its peaks). Otherwise memory is sampled only when
 * something reports it (a progress line every 5 s, job:stats(), the summary). */
static int mem_wanted(const lc_engine *e) {
  const lc_policy *p = &e->sh.policy;
  return p->max_browser_rss_mb > 0 || p->max_browser_pss_mb > 0 || p->hook_ref != LUA_NOREF ||
         e->want_stats || isatty(2);
}

/* Whether the last sample puts the current browser at or over `num/den` of a memory limit. */
static int mem_at(const lc_engine *e, int num, int den) {
  const lc_policy *p = &e->sh.policy;
  return (p->max_browser_rss_mb > 0 && e->gen_rss_kb / 1024 * den >= p->max_browser_rss_mb * num) ||
         (p->max_browser_pss_mb > 0 && e->gen_pss_kb / 1024 * den >= p->max_browser_pss_mb * num);
}

static size_t pending_work(const lc_engine *e) {
  size_t n = 0;
  for (size_t i = 0; i < e->n_jobs; i++)
    if (!lc_job_stopping(e->jobs[i])) n += lc_job_pending(e->jobs[i]);
  return n;
}

static void maybe_recycle(lc_engine *e, int sampled) {
  const lc_policy *p = &e->sh.policy;
  if (e->stopping || e->starting_gen || !e->ready) return;
  int by_count = p->max_pages_per_browser > 0 && (int64_t)e->sh.gen_pages >= p->max_pages_per_browser;
  /* Memory limits are checked on fresh samples only (at most once a second). */
  int by_mem = sampled && mem_at(e, 1, 1);
  /* A browser that keeps leaving closes unanswered is not trusted with more work. (Only its
   * own closes count: not an old browser's, not contexts dropped by a crash.) */
  int by_lost = lc_cache_unanswered_closes(e->sh.cache) >= MAX_LOST_CLOSES;
  if (!by_count && !by_mem && !by_lost) {
    /* Close to the memory limit: give back what idle contexts hold first. */
    if (sampled && mem_at(e, 8, 10)) {
      lc_cleanup_params cp = {.max_contexts = p->max_contexts, .force = 1, .idle_ms = p->idle_ms};
      lc_cache_cleanup(e->sh.cache, &cp, lc_now(&e->sh));
    }
    return;
  }
  /* Nothing queued: the requests in flight finish where they are, and a replacement started
   * now may still be starting when the crawl ends (a browser launched for nothing). The check
   * comes back with the next tick once work is queued. */
  if (pending_work(e) == 0) return;
  char *err = NULL;
  int g = lc_bpool_start(e->sh.pool, &err);
  if (g < 0) {
    lc_warn("cannot start a replacement browser: %s", err ? err : "unknown");
    free(err);
    return;
  }
  const char *why = by_count ? "max_pages_per_browser"
                    : by_mem ? (p->max_browser_pss_mb > 0 &&
                                        e->gen_pss_kb / 1024 >= p->max_browser_pss_mb
                                    ? "max_browser_pss_mb"
                                    : "max_browser_rss_mb")
                             : "closes left unanswered";
  lc_info("recycling the browser (%s)", why);
  e->starting_gen = g;
}

/* ---------------------------------------------------------------- cleanup */

/* One cleanup pass: the table policy, then the hook, then the cache. Runs at a job's resume
 * point (the hook is Lua): the hook job's own, or any job's when there is no hook. */
static void idle_work(void *ud, lc_job *j) {
  lc_engine *e = ud;
  if (!e->sh.cleanup_due || !e->sh.cache) return;
  if (e->hook_job && j != e->hook_job) {
    lc_job_poke(e->hook_job); /* its resume point runs the hook */
    return;
  }
  e->sh.cleanup_due = 0;
  uint64_t ids[64];
  lc_cleanup_params p;
  lc_policy_state st = {.browser_rss_mb = (double)e->sh.browser_rss_kb / 1024.0,
                        .browser_pss_mb = (double)e->sh.browser_pss_kb / 1024.0,
                        .pages_served = e->sh.gen_pages};
  lua_State *L = e->hook_job ? lc_job_lua(e->hook_job) : NULL;
  lc_policy_decide(L, &e->sh.policy, e->sh.cache, lc_now(&e->sh), &st, &p, ids, 64);
  int closed = lc_cache_cleanup(e->sh.cache, &p, lc_now(&e->sh));
  if (closed > 0) lc_debug("cleanup closed %d context(s)", closed);
}

/* A job ended. The CLI's loop stops when every job has; a job is never freed here. */
static void job_ended(void *ud, lc_job *j) {
  lc_engine *e = ud;
  (void)j;
  for (size_t i = 0; i < e->n_jobs; i++)
    if (!lc_job_ended(e->jobs[i])) return;
  uv_stop(&e->loop);
}

static const lc_shared_ops shared_ops = {
    .idle_work = idle_work, .job_ended = job_ended, .sample_mem = sample_mem};

/* ---------------------------------------------------------------- timers and signals */

/* Every TICK_MS: cache deadlines, idle cleanup, progress, the recycling check. Once a second,
 * and only when something reads it (mem_wanted), the browsers' memory. */
static void tick_cb(uv_timer_t *h) {
  lc_engine *e = h->data;
  int sampled = mem_wanted(e) && sample_mem(e);
  lc_cache_tick(e->sh.cache, lc_now(&e->sh));
  each_job(e, lc_job_tick);
  if (e->ready && !e->stopping) {
    e->sh.cleanup_due = 1; /* the idle timer's pass, run at a resume point */
    if (e->hook_job)
      lc_job_poke(e->hook_job);
    else
      each_job(e, lc_job_poke);
    maybe_recycle(e, sampled);
  }
}

/* The first SIGINT or SIGTERM, taken on the loop (interrupt.c: a second one, or a loop that
 * does not get here in time, ends the process without waiting). */
static void on_signal(int sig, void *ud) {
  lc_engine *e = ud;
  if (e->signal_hook) { /* luacrawl serve: a graceful stop of its own */
    e->signal_hook(e->signal_ud, sig);
    return;
  }
  e->stop_signal = sig;
  e->signal_ms = uv_now(&e->loop);
  lc_info("%s: stopping (releasing everything; interrupt again to kill)",
          sig == SIGINT ? "interrupt" : "terminate");
  for (size_t i = 0; i < e->n_jobs; i++) lc_job_cancel(e->jobs[i], sig);
  uv_stop(&e->loop);
}

static void fatal_signal(int sig) {
  lc_browser_kill_all_now();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void at_exit_kill(void) { lc_browser_kill_all_now(); }

/* ---------------------------------------------------------------- the engine's life */

lc_engine *lc_engine_new(const lc_engine_opts *o, char *err, size_t errlen) {
  char path[4096] = "";
  const char *why = NULL;
  if (o->connect && o->browser) {
    snprintf(err, errlen, "--connect and --browser cannot be used together (see luacrawl --help)");
    return NULL;
  }
  if (!o->connect && lc_browser_find(o->browser, path, sizeof path, &why) != 0) {
    if (o->browser)
      snprintf(err, errlen, "--browser %s: %s", o->browser, why ? why : "not usable");
    else
      snprintf(err, errlen, "%s", why ? why : "no Chromium found");
    return NULL;
  }
  lc_engine *e = calloc(1, sizeof *e);
  if (!e || !(e->browser_path = strdup(path))) {
    free(e);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  e->connect = o->connect;
  e->want_stats = o->stats;
  e->signal_hook = o->on_signal;
  e->signal_ud = o->signal_ud;
  uv_loop_init(&e->loop);
  uv_timer_init(&e->loop, &e->tick_timer);
  e->tick_timer.data = e;
  uv_timer_init(&e->loop, &e->stop_timer);
  e->stop_timer.data = e;
  e->sh.loop = &e->loop;
  e->sh.ops = &shared_ops;
  e->sh.ud = e;
  lc_policy_defaults(&e->sh.policy, 0); /* lc_engine_start adopts a job's */
  return e;
}

lc_job *lc_engine_add_job(lc_engine *e, const lc_job_opts *o, char *err, size_t errlen) {
  if (e->n_jobs == e->cap_jobs) {
    size_t cap = e->cap_jobs ? e->cap_jobs * 2 : 4;
    lc_job **p = realloc(e->jobs, cap * sizeof *p);
    if (!p) {
      snprintf(err, errlen, "out of memory");
      return NULL;
    }
    e->jobs = p;
    e->cap_jobs = cap;
  }
  if (e->next_job_id >= (1u << (64 - LC_JOB_ID_SHIFT)) - 1) { /* owner ranges would collide */
    snprintf(err, errlen, "too many jobs in one engine");
    return NULL;
  }
  lc_job *j = lc_job_new(&e->sh, ++e->next_job_id, o, err, errlen);
  if (j) e->jobs[e->n_jobs++] = j;
  return j;
}

int lc_engine_start(lc_engine *e, const lc_policy *policy, lc_job *hook_job, char *err,
                    size_t errlen) {
  if (policy) e->sh.policy = *policy;
  e->hook_job = e->sh.policy.hook_ref != LUA_NOREF ? hook_job : NULL;
  if (!e->hook_job) e->sh.policy.hook_ref = LUA_NOREF;
  /* From here on a browser may run: every exit path must take it down. The handlers are the
   * process's, installed once whatever the number of engines (the browser registry they read
   * is the process's too: a signal handler has no other way to reach it). */
  static int process_handlers;
  if (!process_handlers) {
    process_handlers = 1;
    atexit(at_exit_kill);
    signal(SIGSEGV, fatal_signal);
    signal(SIGABRT, fatal_signal);
    signal(SIGBUS, fatal_signal);
    signal(SIGPIPE, SIG_IGN);
  }
  int irc = lc_interrupt_start(&e->loop, on_signal, e, lc_browser_kill_all_now);
  if (irc < 0) {
    snprintf(err, errlen, "cannot install the signal handlers: %s", uv_strerror(irc));
    return -1;
  }
  e->signals_on = 1;
  char *m = NULL;
  e->ws = lc_ws_ctx_new(&e->loop, &m);
  if (!e->ws) {
    snprintf(err, errlen, "%s", m ? m : "cannot create the WebSocket context");
    free(m);
    return -1;
  }
  lc_browser_opts bo = {.path = e->browser_path, .headless_shell = -1};
  lc_bpool_cbs pcbs = {.ud = e,
                       .on_ready = on_browser_ready,
                       .on_lost = on_browser_lost,
                       .on_drained = on_browser_drained,
                       .on_nav_paused = on_nav_paused};
  e->sh.pool = lc_bpool_new(&e->loop, e->ws, &bo, e->connect, &pcbs);
  lc_cache_backend be = lc_bpool_backend(e->sh.pool);
  const lc_policy *p = &e->sh.policy;
  lc_cache_config cc = {.close_timeout_ms = p->close_timeout_ms,
                        .max_idle_pages = p->max_idle_pages,
                        .max_pages_per_context = (int)p->max_pages_per_context,
                        .max_uses_per_page = p->max_uses_per_page,
                        .adaptive_idle = p->adaptive_idle_pages};
  e->sh.cache = lc_cache_new(&be, &cc);
  lc_bpool_set_cache(e->sh.pool, e->sh.cache);
  lc_bpool_set_close_timeout(e->sh.pool, p->close_timeout_ms);
  e->started = 1;
  e->sh.gen = lc_bpool_start(e->sh.pool, &m);
  if (e->sh.gen < 0) {
    snprintf(err, errlen, "cannot start the browser: %s", m ? m : "unknown");
    free(m);
    e->sh.gen = 0;
    return -1;
  }
  lc_cache_set_generation(e->sh.cache, e->sh.gen, lc_now(&e->sh));
  uv_timer_start(&e->tick_timer, tick_cb, TICK_MS, TICK_MS);
  return 0;
}

int lc_engine_start_job(lc_engine *e, lc_job *j, char *err, size_t errlen) {
  if (lc_job_start(j, err, errlen) != 0) return -1;
  if (e->ready) lc_job_browser_ready(j);
  return 0;
}

void lc_engine_cancel_job(lc_engine *e, lc_job *j) {
  (void)e;
  lc_job_cancel(j, 0);
}

void lc_engine_remove_job(lc_engine *e, lc_job *j) {
  for (size_t i = 0; i < e->n_jobs; i++) {
    if (e->jobs[i] != j) continue;
    e->jobs[i] = e->jobs[--e->n_jobs];
    break;
  }
  lc_job_release_all(j);
  int owned = lc_job_owns(j);
  if (owned) lc_error("engine bug: job %u still owns %d handle(s)", lc_job_id(j), owned);
  if (e->hook_job == j) {
    e->hook_job = NULL;
    e->sh.policy.hook_ref = LUA_NOREF;
  }
  e->sh.cleanup_due = 1;
  lc_job_free(j);
}

void lc_engine_run_until(lc_engine *e, int (*done)(void *ud), void *ud, int ms) {
  uint64_t until = ms > 0 ? uv_now(&e->loop) + (uint64_t)ms : UINT64_MAX;
  while (!(done && done(ud)) && uv_now(&e->loop) < until && !e->fatal && !e->stop_signal) {
    uv_run(&e->loop, UV_RUN_ONCE);
    uv_update_time(&e->loop);
  }
}

const char *lc_engine_failure(const lc_engine *e) { return e->fatal ? e->fatal_msg : NULL; }
lc_cache *lc_engine_cache(lc_engine *e) { return e->sh.cache; }
lc_shared *lc_engine_shared(lc_engine *e) { return &e->sh; }
struct lc_ws_ctx *lc_engine_ws(lc_engine *e) { return e->ws; }

/* ---------------------------------------------------------------- shutdown */

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) {
    lc_debug("closing a leftover libuv handle of type %s", uv_handle_type_name(h->type));
    uv_close(h, NULL);
  }
}

static void run_for(lc_engine *e, int ms, int (*done)(lc_engine *)) {
  uint64_t until = uv_now(&e->loop) + (uint64_t)ms;
  while (!done(e) && uv_now(&e->loop) < until) {
    uv_run(&e->loop, UV_RUN_ONCE);
    uv_update_time(&e->loop);
  }
}

/* No context of any generation is open or still being closed. */
static int contexts_closed(lc_engine *e) {
  for (int g = 1; g <= e->sh.gen || g <= e->starting_gen; g++) {
    int refs = 0;
    if (lc_cache_gen_contexts(e->sh.cache, g, &refs) > 0) return 0;
  }
  return 1;
}

static int tasks_gone(lc_engine *e) {
  for (size_t i = 0; i < e->n_jobs; i++)
    if (lc_job_tasks(e->jobs[i]) > 0) return 0;
  return 1;
}

static int jobs_ended(lc_engine *e) {
  for (size_t i = 0; i < e->n_jobs; i++)
    if (!lc_job_ended(e->jobs[i])) return 0;
  return 1;
}

static int browsers_gone(lc_engine *e) { return lc_bpool_live(e->sh.pool) == 0; }

/* Every job's backlog is out or failed, or a signal's short wait for the reader is over. */
static int output_done(lc_engine *e) {
  if (e->stop_signal && uv_now(&e->loop) >= e->signal_ms + OUTPUT_SIGNAL_WAIT_MS) return 1;
  for (size_t i = 0; i < e->n_jobs; i++)
    if (lc_job_backlog(e->jobs[i]) > 0 && !lc_job_output_failed_errno(e->jobs[i])) return 0;
  return 1;
}

/* A timer that only keeps the loop turning while we wait for something. */
static void nop_cb(uv_timer_t *h) { (void)h; }

/* Steps 1-3 of the shutdown: stop and cancel every job, release what they hold, close every
 * context. Returns the references still outstanding. */
static int shutdown_jobs(lc_engine *e) {
  e->stopping = 1;
  for (size_t i = 0; i < e->n_jobs; i++) lc_job_cancel(e->jobs[i], 0);
  uv_timer_start(&e->stop_timer, nop_cb, 10, 10);
  run_for(e, 1000, tasks_gone);
  /* A job on a shared frontier ends once the server took back what it held (job.c,
   * dist_settled: bounded by its own 2 s); every other job has ended with its tasks. */
  run_for(e, 2500, jobs_ended);
  if (!e->sh.cache) return 0;
  for (size_t i = 0; i < e->n_jobs; i++) lc_job_release_all(e->jobs[i]);
  lc_cleanup_params p = {.max_contexts = 0, .force = 1, .idle_ms = 0};
  lc_cache_cleanup(e->sh.cache, &p, lc_now(&e->sh));
  /* Wait as long as a close may take before the cache itself calls it lost (its tick runs
   * meanwhile, so an unanswered close is reported as such, with the right time). */
  int wait = e->sh.policy.close_timeout_ms + 500;
  run_for(e, wait > SHUTDOWN_CLOSE_MS ? wait : SHUTDOWN_CLOSE_MS, contexts_closed);
  lc_cache_tick(e->sh.cache, lc_now(&e->sh) + 3600 * 1000); /* anything still pending is lost */
  char why[256];
  lc_cache_stats cs;
  lc_cache_get_stats(e->sh.cache, &cs);
  if (cs.refs_outstanding != 0)
    lc_error("engine bug: %d references outstanding at exit", cs.refs_outstanding);
  if (lc_cache_check(e->sh.cache, why, sizeof why) != 0) lc_error("engine bug: cache: %s", why);
  return cs.refs_outstanding;
}

/* Steps 4-7: close the browsers, push the output the readers have not taken yet, free the
 * jobs (their Lua), the pool, the cache, and check that the loop closes. */
static void shutdown_rest(lc_engine *e) {
  if (e->sh.pool) {
    lc_bpool_close_all(e->sh.pool, 2000);
    run_for(e, 5000, browsers_gone);
  }
  /* Waited for as long as the reader lives (the loop turns, so a signal still ends the wait),
   * briefly after a signal. */
  if (!output_done(e)) {
    for (size_t i = 0; i < e->n_jobs; i++) lc_job_output_kick(e->jobs[i]);
    while (!output_done(e)) {
      uv_run(&e->loop, UV_RUN_ONCE);
      uv_update_time(&e->loop);
    }
    for (size_t i = 0; i < e->n_jobs; i++) {
      size_t left = lc_job_backlog(e->jobs[i]);
      if (left > 0 && !lc_job_output_failed_errno(e->jobs[i]))
        lc_warn("%zu bytes of output not written: the reader stopped reading", left);
    }
  }
  uv_timer_stop(&e->stop_timer);
  /* The jobs (their Lua) go before the pool: a task that outlived the shutdown's wait is
   * finished as its scheduler is freed, and its releases still reach a live pool. */
  while (e->n_jobs > 0) lc_job_free(e->jobs[--e->n_jobs]);
  free(e->jobs);
  e->jobs = NULL;
  if (e->sh.pool) lc_bpool_free(e->sh.pool); /* fails anything still pending into the cache */
  e->sh.pool = NULL;
  if (e->sh.cache) lc_cache_free(e->sh.cache);
  e->sh.cache = NULL;
  if (e->ws) lc_ws_ctx_destroy(e->ws);
  uv_close((uv_handle_t *)&e->tick_timer, NULL);
  uv_close((uv_handle_t *)&e->stop_timer, NULL);
  if (e->signals_on) lc_interrupt_stop();
  uv_run(&e->loop, UV_RUN_DEFAULT);
  if (e->ws) lc_ws_ctx_destroy_finish(e->ws);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&e->loop) != 0) {
    uv_walk(&e->loop, close_walk, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&e->loop) != 0) lc_error("engine bug: the event loop did not close");
  }
  free(e->browser_path);
  free(e);
}

int lc_engine_free(lc_engine *e) {
  int refs = shutdown_jobs(e);
  shutdown_rest(e);
  return refs;
}

/* ---------------------------------------------------------------- the CLI's run */

static int all_ended(void *ud) {
  lc_engine *e = ud;
  for (size_t i = 0; i < e->n_jobs; i++)
    if (!lc_job_ended(e->jobs[i])) return 0;
  return 1;
}

int lc_engine_run(const lc_run_opts *opts) {
  if (opts->verbose) lc_log_set_level(LC_LOG_DEBUG);
  if (opts->quiet) lc_log_set_level(LC_LOG_WARN);
  if (access(opts->script, R_OK) != 0) {
    fprintf(stderr, "luacrawl: cannot read script '%s': %s\n", opts->script, strerror(errno));
    return LC_EXIT_BADINPUT;
  }
  char err[1024];
  lc_engine_opts eo = {.browser = opts->browser, .connect = opts->connect, .stats = opts->stats != NULL};
  lc_engine *e = lc_engine_new(&eo, err, sizeof err);
  if (!e) {
    fprintf(stderr, "luacrawl: %s\n", err);
    return LC_EXIT_BADINPUT;
  }
  lc_job_opts jo = {.script = opts->script, .args = opts->args, .output = opts->output,
                    .quiet = opts->quiet, .progress = 1, .state = opts->state,
                    .state_reuse = opts->state_reuse, .frontier = opts->frontier,
                    .sandbox = opts->sandbox,
                    .allow_private = opts->allow_private};
  lc_job *j = lc_engine_add_job(e, &jo, err, sizeof err);
  if (!j) {
    fprintf(stderr, "luacrawl: %s\n", err);
    lc_engine_free(e);
    return LC_EXIT_BADINPUT;
  }
  /* The start URLs are queued (and bad ones reported) before any browser starts. */
  if (lc_job_start(j, err, sizeof err) != 0) {
    fprintf(stderr, "luacrawl: %s\n", err);
    lc_engine_free(e);
    return LC_EXIT_BADINPUT;
  }
  int code = LC_EXIT_OK;
  if (lc_job_state_finished(j)) {
    lc_job_cancel(j, 0); /* its end writes what the output lacks; no browser starts */
  } else if (lc_engine_start(e, lc_job_policy(j), j, err, sizeof err) != 0) {
    fprintf(stderr, "luacrawl: %s\n", err);
    lc_engine_free(e);
    return LC_EXIT_FAILED;
  }
  lc_engine_run_until(e, all_ended, e, 0);
  int refs = shutdown_jobs(e);
  (void)refs; /* reported by shutdown_jobs, and in --stats as refs_outstanding */
  if (lc_job_started(j)) {
    lc_job_progress(j, 1);
    lc_debug("browser memory sampled %d time(s)", e->mem_samples);
  }
  if (opts->stats && lc_job_write_stats(j, opts->stats) < 0)
    lc_error("cannot write --stats file %s: %s", opts->stats, strerror(errno));
  const char *failure = e->fatal ? e->fatal_msg : lc_job_failure(j);
  int sig = e->stop_signal ? e->stop_signal : lc_job_stop_signal(j);
  if (failure) {
    fprintf(stderr, "luacrawl: %s\n", failure);
    code = LC_EXIT_FAILED;
  } else if (sig == SIGINT) {
    code = LC_EXIT_SIGINT;
  } else if (sig == SIGTERM) {
    code = LC_EXIT_SIGTERM;
  }
  shutdown_rest(e);
  return code;
}
