/* engine.h: one run of luacrawl: the loop, the Lua state, the browsers, the cache, the job.
 * Owns: everything below it, and the shutdown order (STYLE rule 12): stop accepting work,
 * cancel pending operations, release every owner's references, close contexts, close the
 * browsers, close Lua, close the remaining handles, and check that the loop closes.
 * The struct is shared with the job runtime and the Lua bindings (job.c, l_core.c); nothing
 * else includes this header but main.c. */
#ifndef LC_ENGINE_H
#define LC_ENGINE_H

#include <lua.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "bpool.h"
#include "ctxcache.h"
#include "frontier.h"
#include "output.h"
#include "policy.h"
#include "task.h"
#include "ws.h"

typedef struct lc_run_opts {
  const char *script;
  const char *const *args; /* "name=value" pairs, NULL-terminated */
  const char *output;      /* -o FILE, NULL: stdout */
  const char *stats;       /* --stats FILE */
  const char *browser;     /* --browser PATH */
  const char *connect;     /* --connect ws://HOST:PORT/...: someone else's browser */
  int quiet;               /* no progress */
  int verbose;
} lc_run_opts;

/* Exit codes */
enum {
  LC_EXIT_OK = 0,
  LC_EXIT_FAILED = 1,   /* the job could not run to its end (browser never started, ...) */
  LC_EXIT_BADINPUT = 2, /* bad script, option, policy or URL: nothing was started */
  LC_EXIT_SIGINT = 130,
  LC_EXIT_SIGTERM = 143,
};

typedef struct lc_host lc_host; /* per-host politeness state (job.c) */

typedef struct lc_job_cfg {
  int concurrency;
  int retries;
  int64_t timeout_ms;
  int64_t max_pages;
  int max_depth;
  int64_t delay_ms;
  int per_host; /* requests in flight per host; 0: no cap */
  int robots;
  char user_agent_token[64];
  int throttle_retries; /* 429/503 answers tolerated per request before it fails */
} lc_job_cfg;

typedef struct lc_engine {
  uv_loop_t loop;
  lua_State *L;
  lc_sched *sched;
  lc_ws_ctx *ws;
  lc_bpool *pool;
  lc_cache *cache;
  lc_frontier *frontier;
  lc_sink *sink;
  lc_policy policy;
  lc_job_cfg cfg;
  lc_run_opts opts;
  char *browser_path;

  uint64_t
      job_owner;    /* owner id of job-level handles (sessions, contexts taken outside a request) */
  int runner_ref;   /* Lua: function(req) run in each request task */
  int on_error_ref; /* Lua: function(req, err) when a request failed for good */
  int robots_ref;   /* Lua: function(origin) -> status, text */

  int gen;            /* current browser generation */
  int starting_gen;   /* a generation being started for a recycle, or 0 */
  uint64_t gen_pages; /* pages served by the current generation */
  int restarts;       /* browser starts after crashes */
  int started;        /* the crawl has begun (start URLs queued) */
  int stopping;       /* no new work; finishing */
  int stop_signal;    /* SIGINT/SIGTERM that stopped the run, or 0 */
  int exit_code;
  int fatal; /* the run failed before its end */
  char fatal_msg[512];

  int cleanup_due;       /* a cleanup pass is to run at the resume point */
  uint64_t *gc_releases; /* handles whose userdata the GC collected: released at the resume point */
  size_t n_gc_releases, cap_gc_releases;
  int lua_closing; /* lua_close is running: __gc releases nothing */
  int in_flight;   /* request tasks running */
  int aux_tasks;   /* on_error and robots tasks running */
  lc_host *hosts;

  /* statistics */
  uint64_t pages_ok, pages_failed, retries, emitted, robots_skipped, throttled;
  int browser_recycles;
  long browser_rss_peak_kb, browser_rss_kb;
  uint64_t started_ms;
  double engine_cpu_start;

  uv_timer_t pump_timer; /* wakes the pump when a retry or host delay is due */
  uv_timer_t tick_timer; /* cache tick, idle cleanup, RSS sampling, progress */
  uv_signal_t sigint, sigterm;
  uv_timer_t stop_timer; /* bounds the shutdown */
  int progress_tty;
  int progress_shown;
  uint64_t last_progress_ms;
} lc_engine;

/* The one engine of this process (a service mode will hold several jobs, not engines). */
lc_engine *lc_engine_get(lua_State *L);

/* Run a job script to its end; returns the exit code. */
int lc_engine_run(const lc_run_opts *opts);

/* Job runtime (job.c) */
void lc_job_pump(lc_engine *e);
void lc_job_after_release(lc_engine *e);
/* Queue the release of a handle whose userdata was collected (from __gc). */
void lc_job_release_later(lc_engine *e, uint64_t handle);
/* The resume point's deferred work: queued releases, then a cleanup pass if one is due. */
void lc_job_idle_work(void *ud);
void lc_job_cleanup_pass(lc_engine *e, const char *why);
int lc_job_enqueue(lc_engine *e, const char *url, int depth, const char *data_json,
                   const char **why);
void lc_job_stop(lc_engine *e, int sig);
/* Politeness at the moment a request goes out: 0 if a navigation to `url` may start now (the
 * host's delay is then counted from now), else the milliseconds to wait before asking again. */
int64_t lc_job_host_slot(lc_engine *e, const char *url);
void lc_job_tick(lc_engine *e);
int lc_job_done(const lc_engine *e);
void lc_job_free_hosts(lc_engine *e);
void lc_job_progress(lc_engine *e, int final);
int lc_job_write_stats(lc_engine *e, const char *path);
int64_t lc_now(const lc_engine *e);

/* Lua bindings (l_core.c): opens luacrawl.core */
int luaopen_luacrawl_core(lua_State *L);

#endif
