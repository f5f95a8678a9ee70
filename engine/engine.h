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
#include "window.h"
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

/* Output that the reader has not taken yet (a pipe, a terminal): above the soft mark the job
 * starts no new request until the backlog drains; the hard cap refuses a request's records
 * (all of them) rather than grow memory without bound. */
#define LC_OUTPUT_SOFT_BACKLOG ((size_t)4 << 20)
#define LC_OUTPUT_MAX_BACKLOG ((size_t)64 << 20)
#define LC_OUTPUT_DRAIN_MS 10 /* how often a backlog is pushed */
#define LC_OUTPUT_SIGNAL_WAIT_MS \
  500 /* after SIGINT/SIGTERM, how long the end waits for the reader */

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
  int navcheck_ref; /* Lua: function(target, url, redirected) -> nil | refusal reason */

  int gen;            /* current browser generation */
  int starting_gen;   /* a generation being started for a recycle, or 0 */
  uint64_t gen_pages; /* pages served by the current generation */
  int restarts;       /* browser starts after crashes */
  lc_window crashes;  /* when the current browsers crashed: a crash loop is fatal */
  int started;        /* the crawl has begun (start URLs queued) */
  int stopping;       /* no new work; finishing */
  int stop_signal;    /* SIGINT/SIGTERM that stopped the run, or 0 */
  int exit_code;
  int fatal;          /* the run failed before its end */
  int output_err;     /* errno of a failed output write: the run stops, nothing is retried */
  int output_paused;  /* the pump stopped for the output backlog */
  uint64_t signal_ms; /* when stop_signal arrived (loop ms) */
  char fatal_msg[512];

  int cleanup_due;       /* a cleanup pass is to run at the resume point */
  uint64_t *gc_releases; /* handles whose userdata the GC collected: released at the resume point */
  size_t n_gc_releases, cap_gc_releases;
  int lua_closing;          /* lua_close is running: __gc releases nothing */
  int in_flight;            /* request tasks running */
  int aux_tasks;            /* on_error and robots tasks running */
  int robots_in_flight;     /* robots tasks running: they count against the concurrency */
  struct lc_hosttab *hosts; /* host key -> lc_host (job.c) */
  struct lc_navcheck *navchecks, *navchecks_tail; /* paused navigations to decide (job.c) */

  /* statistics */
  uint64_t pages_ok, pages_failed, retries, emitted, robots_skipped, throttled;
  int browser_recycles;
  /* Browser memory, all generations (the last sample) and the current one alone. */
  long browser_rss_peak_kb, browser_rss_kb, browser_pss_peak_kb, browser_pss_kb;
  long gen_rss_kb, gen_pss_kb;
  int64_t mem_sampled_ms; /* when the last sample was taken; 0: never */
  int mem_samples;        /* how many were taken (each walks /proc) */
  int64_t pss_sampled_ms; /* when PSS was last read with it */
  uint64_t started_ms;
  double engine_cpu_start;

  uv_timer_t pump_timer; /* wakes the pump when a retry or host delay is due */
  uv_timer_t tick_timer; /* cache tick, idle cleanup, RSS sampling, progress */
  uv_timer_t stop_timer; /* bounds the shutdown */
  uv_timer_t out_timer;  /* pushes the output backlog */
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
/* The scheduler's stop callback (lc_sched_on_stop): marks the stopping task's pages bad. */
void lc_job_task_stopping(void *ud, lc_task *t);
/* The resume point's deferred work: queued releases, then a cleanup pass if one is due. */
void lc_job_idle_work(void *ud);
void lc_job_cleanup_pass(lc_engine *e, const char *why);
int lc_job_enqueue(lc_engine *e, const char *url, int depth, const char *data_json,
                   const char **why);
void lc_job_stop(lc_engine *e, int sig);
/* After records were written: keep pushing a backlog (timer), pause or resume the pump. */
void lc_job_output_kick(lc_engine *e);
/* The output failed (EPIPE: the reader went away): stop the run, exit 1, retry nothing. */
void lc_job_output_failed(lc_engine *e, int rc);
/* Politeness at the moment a request goes out: 0 if a navigation to `url` may start now (the
 * host's delay is then counted from now), else the milliseconds to wait before asking again. */
int64_t lc_job_host_slot(lc_engine *e, const char *url);
/* robots.txt's verdict on a URL: 1 allowed (or robots off), 0 disallowed, -1 not known yet
 * (its fetch is started when the job's concurrency leaves room). */
int lc_job_robots_verdict(lc_engine *e, const char *url);
/* bpool's on_nav_paused: queue the paused navigation for the resume point. */
void lc_job_nav_paused(void *ud, uint64_t page_id, const char *request_id, const char *url,
                       int redirected);
/* Fail every queued navigation check (shutdown) and free the queue. */
void lc_job_free_navchecks(lc_engine *e);
void lc_job_tick(lc_engine *e);
int lc_job_done(const lc_engine *e);
void lc_job_free_hosts(lc_engine *e);
void lc_job_progress(lc_engine *e, int final);
int lc_job_write_stats(lc_engine *e, const char *path);
int64_t lc_now(const lc_engine *e);
/* Samples the browsers' memory (summed RSS of every process tree; PSS too every 5 s, or every
 * time when max_browser_pss_mb is set) unless the last sample is younger than a second.
 * Returns 1 if it sampled now. */
int lc_engine_sample_mem(lc_engine *e);

/* Lua bindings (l_core.c): opens luacrawl.core */
int luaopen_luacrawl_core(lua_State *L);

#endif
