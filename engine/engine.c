/* engine.c: one run of luacrawl, from the script to the last closed handle (see engine.h).
 * Order of a run: load and validate everything in Lua (script, job table, policy, start
 * URLs) before any browser starts; then launch the browser, crawl, and shut down in the
 * STYLE order: stop accepting work, cancel pending operations, release every owner, close
 * contexts, close browsers, close Lua, close the remaining handles, check the loop closes. */
#include "engine.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "browser.h"
#include "interrupt.h"
#include "log.h"
#include "proc.h"
#include "window.h"

#define TICK_MS 250
#define SHUTDOWN_CLOSE_MS 3000
/* More than this many browser crashes within CRASH_WINDOW_MS is a crash loop: the job ends.
 * Crashes spread out (a hostile page now and then, its retries backing off) are not: that page
 * fails after its retries, the job goes on. */
#define MAX_CRASHES_IN_WINDOW 8
#define CRASH_WINDOW_MS 60000

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static void set_paths(lua_State *L) {
  const char *lib = getenv("LUACRAWL_LIB");
  if (!lib || !*lib) lib = LC_LIB_DIR;
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", lib, lib);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_luacrawl_core);
  lua_setfield(L, -2, "luacrawl.core");
  lua_pop(L, 1);
  const char *js = getenv("LUACRAWL_JS");
  lua_pushstring(L, js && *js ? js : LC_JS_DIR);
  lua_setglobal(L, "LUACRAWL_JS_DIR");
}

/* Integer field of the config table at idx, with a default. stack: unchanged */
static int64_t cfg_int(lua_State *L, int idx, const char *k, int64_t def) {
  lua_getfield(L, idx, k);
  int64_t v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : def;
  lua_pop(L, 1);
  return v;
}

static int cfg_ref(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1);
    return LUA_NOREF;
  }
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* ---------------------------------------------------------------- browser events */

static void on_browser_ready(void *ud, int gen, int err, const char *msg) {
  lc_engine *e = ud;
  if (err && e->stopping) {
    /* Closed by the shutdown while it was starting (a restart after the last crash): not a
     * failure of the run. */
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
    snprintf(e->fatal_msg, sizeof e->fatal_msg, "%s", msg ? msg : "browser did not start");
    e->fatal = 1;
    lc_job_stop(e, 0);
    uv_stop(&e->loop);
    return;
  }
  if (e->starting_gen == gen) {
    /* Recycle: new work goes to the new browser; the old one drains, then closes. */
    int old = e->gen;
    e->gen = gen;
    e->gen_pages = 0;
    e->starting_gen = 0;
    e->browser_recycles++;
    lc_cache_set_generation(e->cache, gen, lc_now(e));
    lc_info("browser recycled: %d -> %d", old, gen);
    lc_job_after_release(e);
    return;
  }
  if (!e->started) {
    e->started = 1;
    e->started_ms = uv_now(&e->loop);
    e->last_progress_ms = e->started_ms; /* the first progress line comes after a while */
  }
  lc_job_pump(e);
}

static void on_browser_lost(void *ud, int gen, int crashed, const char *why) {
  lc_engine *e = ud;
  if (!crashed || e->stopping) return;
  if (gen != e->gen) return; /* an old, draining browser: its requests fail and are retried */
  e->restarts++;
  int recent = lc_window_note(&e->crashes, lc_now(e), CRASH_WINDOW_MS);
  if (recent > MAX_CRASHES_IN_WINDOW) {
    snprintf(e->fatal_msg, sizeof e->fatal_msg,
             "the browser crashed %d times within %d s (a crash loop); last: %s", recent,
             CRASH_WINDOW_MS / 1000, why);
    e->fatal = 1;
    lc_job_stop(e, 0);
    uv_stop(&e->loop);
    return;
  }
  char *err = NULL;
  int g = lc_bpool_start(e->pool, &err);
  if (g < 0) {
    snprintf(e->fatal_msg, sizeof e->fatal_msg, "cannot restart the browser: %s",
             err ? err : "unknown");
    free(err);
    e->fatal = 1;
    lc_job_stop(e, 0);
    uv_stop(&e->loop);
    return;
  }
  lc_warn("browser crashed (%s); started a new one", why);
  e->gen = g;
  e->gen_pages = 0;
  lc_cache_set_generation(e->cache, g, lc_now(e));
}

static void on_browser_drained(void *ud, int gen) {
  lc_engine *e = ud;
  if (gen != e->gen) lc_bpool_close(e->pool, gen, 2000);
}

/* ---------------------------------------------------------------- timers and signals */

#define MAX_LOST_CLOSES 3

int lc_engine_sample_mem(lc_engine *e) {
  int64_t now = lc_now(e);
  if (!e->pool || (e->mem_sampled_ms && now - e->mem_sampled_ms < 1000)) return 0;
  e->mem_sampled_ms = now;
  e->mem_samples++;
  /* PSS costs the kernel a page-table walk per process (a bench measured ~15 % of a crawl's
   * pages/s when read every second): every second only for max_browser_pss_mb, else every 5 s.
   * Summed RSS (from /proc/PID/stat) is read every time. */
  int want_pss =
      e->policy.max_browser_pss_mb > 0 || !e->pss_sampled_ms || now - e->pss_sampled_ms >= 5000;
  if (want_pss) e->pss_sampled_ms = now;
  lc_proc_mem all, cur;
  int browsers = lc_bpool_mem(e->pool, 0, want_pss, &all);
  if (browsers > 1) /* a recycle under way: the limits see the new one */
    lc_bpool_mem(e->pool, e->gen, want_pss, &cur);
  else
    cur = all;
  e->browser_rss_kb = all.rss_kb;
  e->gen_rss_kb = cur.rss_kb;
  if (want_pss) {
    e->browser_pss_kb = all.pss_kb;
    e->gen_pss_kb = cur.pss_kb;
  }
  if (all.rss_kb > e->browser_rss_peak_kb) e->browser_rss_peak_kb = all.rss_kb;
  if (all.pss_kb > e->browser_pss_peak_kb) e->browser_pss_peak_kb = all.pss_kb;
  return 1;
}

/* Whether anything reads browser memory every second: a limit, the hook (its state has it),
 * the live progress line, or --stats (its peaks). Otherwise memory is sampled only when
 * something reports it (a progress line every 5 s, job:stats(), the summary). */
static int mem_wanted(const lc_engine *e) {
  return e->policy.max_browser_rss_mb > 0 || e->policy.max_browser_pss_mb > 0 ||
         e->policy.hook_ref != LUA_NOREF || e->opts.stats || e->progress_tty;
}

/* Whether the last sample puts the current browser at or over `num/den` of a memory limit. */
static int mem_at(const lc_engine *e, int num, int den) {
  const lc_policy *p = &e->policy;
  return (p->max_browser_rss_mb > 0 && e->gen_rss_kb / 1024 * den >= p->max_browser_rss_mb * num) ||
         (p->max_browser_pss_mb > 0 && e->gen_pss_kb / 1024 * den >= p->max_browser_pss_mb * num);
}

static void maybe_recycle(lc_engine *e, int sampled) {
  if (e->stopping || e->starting_gen || !e->started) return;
  int by_count = e->policy.max_pages_per_browser > 0 &&
                 (int64_t)e->gen_pages >= e->policy.max_pages_per_browser;
  /* Memory limits are checked on fresh samples only (at most once a second). */
  int by_mem = sampled && mem_at(e, 1, 1);
  /* A browser that keeps leaving closes unanswered is not trusted with more work. (Only its
   * own closes count: not an old browser's, not contexts dropped by a crash.) */
  int by_lost = lc_cache_unanswered_closes(e->cache) >= MAX_LOST_CLOSES;
  if (!by_count && !by_mem && !by_lost) {
    /* Close to the memory limit: give back what idle contexts hold first. */
    if (sampled && mem_at(e, 8, 10)) {
      lc_cleanup_params p = {
          .max_contexts = e->policy.max_contexts, .force = 1, .idle_ms = e->policy.idle_ms};
      lc_cache_cleanup(e->cache, &p, lc_now(e));
    }
    return;
  }
  /* Nothing queued: the requests in flight finish where they are, and a replacement started
   * now may still be starting when the crawl ends (a browser launched for nothing). The check
   * comes back with the next tick once work is queued. */
  if (e->frontier->ops->pending(e->frontier) == 0) return;
  char *err = NULL;
  int g = lc_bpool_start(e->pool, &err);
  if (g < 0) {
    lc_warn("cannot start a replacement browser: %s", err ? err : "unknown");
    free(err);
    return;
  }
  const char *why = by_count ? "max_pages_per_browser"
                    : by_mem ? (e->policy.max_browser_pss_mb > 0 &&
                                        e->gen_pss_kb / 1024 >= e->policy.max_browser_pss_mb
                                    ? "max_browser_pss_mb"
                                    : "max_browser_rss_mb")
                             : "closes left unanswered";
  lc_info("recycling the browser (%s)", why);
  e->starting_gen = g;
}

/* Every TICK_MS: cache deadlines, idle cleanup, progress, the recycling check. Once a second,
 * and only when something reads it (mem_wanted), the browsers' memory: a sample walks /proc and
 * reads each browser process's smaps_rollup. */
static void tick_cb(uv_timer_t *h) {
  lc_engine *e = h->data;
  int sampled = mem_wanted(e) && lc_engine_sample_mem(e);
  lc_job_tick(e);
  if (e->started && !e->stopping) {
    lc_job_after_release(e); /* the idle timer's pass, run at the resume point */
    maybe_recycle(e, sampled);
  }
}

/* The first SIGINT or SIGTERM, taken on the loop (interrupt.c: a second one, or a loop that
 * does not get here in time, ends the process without waiting). */
static void on_signal(int sig, void *ud) {
  lc_engine *e = ud;
  e->stop_signal = sig; /* also when the job was already ending: the exit code says so */
  e->signal_ms = uv_now(&e->loop);
  lc_info("%s: stopping (releasing everything; interrupt again to kill)",
          sig == SIGINT ? "interrupt" : "terminate");
  lc_job_stop(e, sig);
  uv_stop(&e->loop);
}

static void fatal_signal(int sig) {
  lc_browser_kill_all_now();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void at_exit_kill(void) { lc_browser_kill_all_now(); }

/* ---------------------------------------------------------------- set-up */

/* Load the script and validate the job in Lua. Leaves the config table on the stack and
 * returns 0, or writes the message into e->fatal_msg and returns -1. */
static int load_job(lc_engine *e) {
  lua_State *L = e->L;
  lua_pushcfunction(L, traceback);
  int msgh = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "luacrawl.boot");
  if (lua_pcall(L, 1, 1, msgh) != LUA_OK) {
    snprintf(e->fatal_msg, sizeof e->fatal_msg, "cannot load the Lua library: %s",
             lua_tostring(L, -1));
    return -1;
  }
  lua_getfield(L, -1, "load");
  lua_remove(L, -2);
  lua_pushstring(L, e->opts.script);
  lua_newtable(L);
  for (const char *const *a = e->opts.args; a && *a; a++) {
    const char *eq = strchr(*a, '=');
    lua_pushlstring(L, *a, (size_t)(eq - *a));
    lua_pushstring(L, eq + 1);
    lua_settable(L, -3);
  }
  if (lua_pcall(L, 2, 2, msgh) != LUA_OK) {
    snprintf(e->fatal_msg, sizeof e->fatal_msg, "%s", lua_tostring(L, -1));
    return -1;
  }
  if (lua_isnil(L, -2)) {
    snprintf(e->fatal_msg, sizeof e->fatal_msg, "%s", lua_tostring(L, -1));
    return -1;
  }
  lua_pop(L, 1);
  lua_remove(L, msgh);
  return 0;
}

static int configure(lc_engine *e) {
  lua_State *L = e->L;
  int cfg = lua_gettop(L);
  e->cfg.concurrency = (int)cfg_int(L, cfg, "concurrency", 8);
  e->cfg.retries = (int)cfg_int(L, cfg, "retries", 2);
  e->cfg.timeout_ms = cfg_int(L, cfg, "timeout_ms", 30000);
  e->cfg.max_pages = cfg_int(L, cfg, "max_pages", 0);
  e->cfg.max_depth = (int)cfg_int(L, cfg, "max_depth", -1);
  e->cfg.delay_ms = cfg_int(L, cfg, "delay_ms", 0);
  e->cfg.per_host = (int)cfg_int(L, cfg, "per_host", 0);
  e->cfg.throttle_retries = (int)cfg_int(L, cfg, "throttle_retries", 5);
  lua_getfield(L, cfg, "robots");
  e->cfg.robots = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, cfg, "user_agent_token");
  snprintf(e->cfg.user_agent_token, sizeof e->cfg.user_agent_token, "%s",
           lua_isstring(L, -1) ? lua_tostring(L, -1) : "luacrawl");
  lua_pop(L, 1);
  lc_policy_defaults(&e->policy);
  e->policy.max_idle_pages = e->cfg.concurrency;
  lua_getfield(L, cfg, "policy");
  char err[400];
  int rc = lc_policy_from_lua(L, -1, &e->policy, err, sizeof err);
  lua_pop(L, 1);
  if (rc < 0) {
    snprintf(e->fatal_msg, sizeof e->fatal_msg, "%s", err);
    return -1;
  }
  e->runner_ref = cfg_ref(L, cfg, "run_request");
  e->on_error_ref = cfg_ref(L, cfg, "on_error");
  e->robots_ref = cfg_ref(L, cfg, "fetch_robots");
  e->navcheck_ref = cfg_ref(L, cfg, "check_navigation");
  if (e->runner_ref == LUA_NOREF) {
    snprintf(e->fatal_msg, sizeof e->fatal_msg, "internal: the job has no request runner");
    return -1;
  }
  return 0;
}

static int queue_start_urls(lc_engine *e) {
  lua_State *L = e->L;
  int cfg = lua_gettop(L);
  lua_getfield(L, cfg, "start");
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    const char *why = NULL;
    if (lc_job_enqueue(e, lua_tostring(L, -1), 0, NULL, &why) <= 0 && why &&
        strcmp(why, "already seen") != 0)
      lc_warn("start URL %s not queued: %s", lua_tostring(L, -1), why);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

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
  for (int g = 1; g <= e->gen || g <= e->starting_gen; g++) {
    int refs = 0;
    if (lc_cache_gen_contexts(e->cache, g, &refs) > 0) return 0;
  }
  return 1;
}

/* The backlog is out, the output failed, or a signal's short wait for the reader is over. */
static int output_done(lc_engine *e) {
  if (lc_sink_backlog(e->sink) == 0 || e->output_err) return 1;
  return e->stop_signal && uv_now(&e->loop) >= e->signal_ms + LC_OUTPUT_SIGNAL_WAIT_MS;
}

static int browsers_gone(lc_engine *e) { return lc_bpool_live(e->pool) == 0; }
static int tasks_gone(lc_engine *e) { return lc_sched_count(e->sched) == 0; }

/* A timer that only keeps the loop turning while we wait for something. */
static void nop_cb(uv_timer_t *h) { (void)h; }

static void shutdown_engine(lc_engine *e) {
  /* 1. stop accepting work; 2. cancel pending operations (tasks' finalizers release). */
  e->stopping = 1;
  uv_timer_stop(&e->pump_timer);
  if (e->sched) lc_sched_kill_all(e->sched, "shutting down");
  uv_timer_start(&e->stop_timer, nop_cb, 10, 10);
  if (e->sched) run_for(e, 1000, tasks_gone);
  /* 3. release what the job itself owns (sessions), then close every context. */
  if (e->cache) {
    lc_cache_release_owner(e->cache, e->job_owner, lc_now(e));
    lc_cleanup_params p = {.max_contexts = 0, .force = 1, .idle_ms = 0};
    lc_cache_cleanup(e->cache, &p, lc_now(e));
    /* Wait as long as a close may take before the cache itself calls it lost (its tick runs
     * meanwhile, so an unanswered close is reported as such, with the right time). */
    int wait = e->policy.close_timeout_ms + 500;
    run_for(e, wait > SHUTDOWN_CLOSE_MS ? wait : SHUTDOWN_CLOSE_MS, contexts_closed);
    lc_cache_tick(e->cache, lc_now(e) + 3600 * 1000); /* anything still pending is lost */
  }
  if (e->started) lc_job_progress(e, 1);
  if (e->started) lc_debug("browser memory sampled %d time(s)", e->mem_samples);
  if (e->opts.stats && e->cache && lc_job_write_stats(e, e->opts.stats) < 0)
    lc_error("cannot write --stats file %s: %s", e->opts.stats, strerror(errno));
  if (e->cache) {
    char why[256];
    lc_cache_stats cs;
    lc_cache_get_stats(e->cache, &cs);
    if (cs.refs_outstanding != 0)
      lc_error("engine bug: %d references outstanding at exit", cs.refs_outstanding);
    if (lc_cache_check(e->cache, why, sizeof why) != 0) lc_error("engine bug: cache: %s", why);
  }
  /* 4. close the browsers. */
  if (e->pool) {
    lc_bpool_close_all(e->pool, 2000);
    run_for(e, 5000, browsers_gone);
  }
  /* 5. the output the reader has not taken yet: waited for as long as the reader lives (the
   * loop turns, so a signal still ends the wait), briefly after a signal. */
  if (e->sink && lc_sink_backlog(e->sink) > 0 && !e->output_err) {
    lc_job_output_kick(e);
    while (!output_done(e)) {
      uv_run(&e->loop, UV_RUN_ONCE);
      uv_update_time(&e->loop);
    }
    size_t left = lc_sink_backlog(e->sink);
    if (left > 0 && !e->output_err)
      lc_warn("%zu bytes of output not written: the reader stopped reading", left);
  }
  uv_timer_stop(&e->stop_timer);
}

static void free_engine(lc_engine *e) {
  lc_job_free_navchecks(e);
  if (e->pool) lc_bpool_free(e->pool); /* fails anything still pending into the cache */
  if (e->sched) lc_sched_free(e->sched);
  /* 5. close Lua (after the scheduler: no task is left). __gc releases nothing now: every
   * owner was released in shutdown_engine, and the pool the cache would call is gone. */
  if (e->L) {
    lc_policy_release(e->L, &e->policy);
    e->lua_closing = 1;
    lua_close(e->L);
    e->L = NULL;
  }
  free(e->gc_releases);
  if (e->cache) lc_cache_free(e->cache);
  e->cache = NULL;
  if (e->frontier) e->frontier->ops->destroy(e->frontier);
  if (e->sink) e->sink->ops->close(e->sink);
  lc_job_free_hosts(e);
  /* 6. close the remaining handles and check that the loop closes. */
  if (e->ws) lc_ws_ctx_destroy(e->ws);
  uv_close((uv_handle_t *)&e->pump_timer, NULL);
  uv_close((uv_handle_t *)&e->tick_timer, NULL);
  uv_close((uv_handle_t *)&e->stop_timer, NULL);
  uv_close((uv_handle_t *)&e->out_timer, NULL);
  lc_interrupt_stop();
  uv_run(&e->loop, UV_RUN_DEFAULT);
  if (e->ws) lc_ws_ctx_destroy_finish(e->ws);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&e->loop) != 0) {
    uv_walk(&e->loop, close_walk, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&e->loop) != 0) lc_error("engine bug: the event loop did not close");
  }
  free(e->browser_path);
}

int lc_engine_run(const lc_run_opts *opts) {
  lc_engine engine, *e = &engine;
  memset(e, 0, sizeof *e);
  e->opts = *opts;
  e->runner_ref = e->on_error_ref = e->robots_ref = e->navcheck_ref = LUA_NOREF;
  lc_policy_defaults(&e->policy);
  if (opts->verbose) lc_log_set_level(LC_LOG_DEBUG);
  if (opts->quiet) lc_log_set_level(LC_LOG_WARN);

  if (access(opts->script, R_OK) != 0) {
    fprintf(stderr, "luacrawl: cannot read script '%s': %s\n", opts->script, strerror(errno));
    return LC_EXIT_BADINPUT;
  }
  char path[4096] = "";
  const char *why = NULL;
  if (opts->connect && opts->browser) {
    fprintf(stderr,
            "luacrawl: --connect and --browser cannot be used together (see luacrawl --help)\n");
    return LC_EXIT_BADINPUT;
  }
  if (!opts->connect && lc_browser_find(opts->browser, path, sizeof path, &why) != 0) {
    if (opts->browser)
      fprintf(stderr, "luacrawl: --browser %s: %s\n", opts->browser, why ? why : "not usable");
    else
      fprintf(stderr, "luacrawl: %s\n", why ? why : "no Chromium found");
    return LC_EXIT_BADINPUT;
  }
  e->browser_path = strdup(path);

  uv_loop_init(&e->loop);
  uv_timer_init(&e->loop, &e->pump_timer);
  e->pump_timer.data = e;
  uv_timer_init(&e->loop, &e->tick_timer);
  e->tick_timer.data = e;
  uv_timer_init(&e->loop, &e->stop_timer);
  e->stop_timer.data = e;
  uv_timer_init(&e->loop, &e->out_timer);
  e->out_timer.data = e;

  e->L = luaL_newstate();
  if (!e->L) {
    fprintf(stderr, "luacrawl: cannot create a Lua state\n");
    return LC_EXIT_FAILED;
  }
  luaL_openlibs(e->L);
  lua_pushlightuserdata(e->L, e);
  lua_setfield(e->L, LUA_REGISTRYINDEX, "luacrawl.engine");
  e->sched = lc_sched_new(&e->loop, e->L);
  lc_sched_on_idle(e->sched, lc_job_idle_work, e);
  lc_sched_on_stop(e->sched, lc_job_task_stopping, e);
  set_paths(e->L);

  int code = LC_EXIT_OK;
  if (load_job(e) != 0 || configure(e) != 0) {
    fprintf(stderr, "luacrawl: %s\n", e->fatal_msg);
    code = LC_EXIT_BADINPUT;
    goto out;
  }
  char *err = NULL;
  e->frontier = lc_frontier_memory_new(e->cfg.max_pages > 0 ? (size_t)e->cfg.max_pages : 0);
  e->sink = lc_sink_jsonl_open(opts->output, &err);
  if (!e->frontier || !e->sink) {
    fprintf(stderr, "luacrawl: cannot open output %s: %s\n", opts->output ? opts->output : "-",
            err ? err : "out of memory");
    free(err);
    code = LC_EXIT_BADINPUT;
    goto out;
  }
  /* A pipe or terminal is written through a bounded queue the loop drains: a reader that stops
   * reading pauses the crawl instead of blocking the loop in write(2). */
  lc_sink_jsonl_queue(e->sink, LC_OUTPUT_MAX_BACKLOG);

  /* From here on a browser may run: every exit path must take it down. */
  atexit(at_exit_kill);
  signal(SIGSEGV, fatal_signal);
  signal(SIGABRT, fatal_signal);
  signal(SIGBUS, fatal_signal);
  signal(SIGPIPE, SIG_IGN);
  int irc = lc_interrupt_start(&e->loop, on_signal, e, lc_browser_kill_all_now);
  if (irc < 0) {
    fprintf(stderr, "luacrawl: cannot install the signal handlers: %s\n", uv_strerror(irc));
    code = LC_EXIT_FAILED;
    goto out;
  }

  e->ws = lc_ws_ctx_new(&e->loop, &err);
  if (!e->ws) {
    fprintf(stderr, "luacrawl: %s\n", err);
    free(err);
    code = LC_EXIT_FAILED;
    goto out;
  }
  lc_browser_opts bo = {.path = e->browser_path, .headless_shell = -1};
  lc_bpool_cbs pcbs = {.ud = e,
                       .on_ready = on_browser_ready,
                       .on_lost = on_browser_lost,
                       .on_drained = on_browser_drained,
                       .on_nav_paused = lc_job_nav_paused};
  e->pool = lc_bpool_new(&e->loop, e->ws, &bo, opts->connect, &pcbs);
  lc_cache_backend be = lc_bpool_backend(e->pool);
  lc_cache_config cc = {.close_timeout_ms = e->policy.close_timeout_ms,
                        .max_idle_pages = e->policy.max_idle_pages,
                        .max_pages_per_context = (int)e->policy.max_pages_per_context,
                        .adaptive_idle = e->policy.adaptive_idle_pages};
  e->cache = lc_cache_new(&be, &cc);
  lc_bpool_set_cache(e->pool, e->cache);
  lc_bpool_set_close_timeout(e->pool, e->policy.close_timeout_ms);
  e->job_owner = lc_sched_new_id(e->sched);

  queue_start_urls(e);
  lua_settop(e->L, 0);

  e->gen = lc_bpool_start(e->pool, &err);
  if (e->gen < 0) {
    fprintf(stderr, "luacrawl: cannot start the browser: %s\n", err ? err : "unknown");
    free(err);
    code = LC_EXIT_FAILED;
    goto out;
  }
  lc_cache_set_generation(e->cache, e->gen, lc_now(e));
  uv_timer_start(&e->tick_timer, tick_cb, TICK_MS, TICK_MS);

  uv_run(&e->loop, UV_RUN_DEFAULT);

  shutdown_engine(e);
  if (e->fatal) {
    fprintf(stderr, "luacrawl: %s\n", e->fatal_msg);
    code = LC_EXIT_FAILED;
  } else if (e->stop_signal == SIGINT) {
    code = LC_EXIT_SIGINT;
  } else if (e->stop_signal == SIGTERM) {
    code = LC_EXIT_SIGTERM;
  }
out:
  free_engine(e);
  return code;
}
