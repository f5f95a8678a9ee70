/* job.h: one crawl job as a value, and what the jobs of one engine share.
 * A job owns its configuration, its Lua state and scheduler, its frontier, its sink, its
 * per-host politeness, its counters, its timers and every cache handle its tasks or its
 * sessions hold. It borrows the loop, the browser pool and the context cache from the engine
 * (lc_shared), which outlives it. Making, starting, cancelling and freeing a job never stops
 * the loop and never touches another job: the engine learns of a job's end through
 * lc_shared_ops.job_ended and frees it when it likes.
 *
 * Owner ids: a job's handles are owned by ids in its own range (id << LC_JOB_ID_SHIFT), so
 * the owner of any handle names its job, and one job cannot release or use another's. */
#ifndef LC_JOB_H
#define LC_JOB_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bpool.h"
#include "ctxcache.h"
#include "policy.h"

#define LC_JOB_ID_SHIFT 40

typedef struct lc_job lc_job;

typedef struct lc_shared_ops {
  /* The engine's deferred work (a cleanup pass, which may call the policy hook), run from a
   * job's resume point: never from a loop callback. */
  void (*idle_work)(void *ud, lc_job *j);
  /* The job reached its end (every task ended). Called from a loop callback: the engine must
   * not free the job inside it. */
  void (*job_ended)(void *ud, lc_job *j);
  /* Sample the browsers' memory unless the last sample is younger than a second. */
  int (*sample_mem)(void *ud);
} lc_shared_ops;

/* What every job of an engine shares. Owned by the engine; jobs read it, never free it. */
typedef struct lc_shared {
  uv_loop_t *loop;
  lc_bpool *pool;   /* NULL until the engine starts */
  lc_cache *cache;  /* NULL until the engine starts */
  lc_policy policy; /* the cache's cleanup policy */
  int gen;          /* current browser generation */
  uint64_t gen_pages; /* pages served by the current generation */
  int restarts;       /* browser starts after crashes */
  int browser_recycles;
  long browser_rss_kb, browser_rss_peak_kb, browser_pss_kb, browser_pss_peak_kb;
  int cleanup_due; /* a cleanup pass is to run at a resume point */
  const lc_shared_ops *ops;
  void *ud;
} lc_shared;

typedef struct lc_job_opts {
  const char *script;
  const char *const *args; /* "name=value" pairs, NULL-terminated */
  const char *output;      /* NULL: stdout */
  int quiet;               /* no progress line */
  int progress;            /* this job draws the progress line and the summary on stderr */
  const char *log_tag;     /* what its log lines carry ("job 2"), NULL: nothing (the CLI's one job) */
  const char *state;       /* --state FILE: the crawl's durable state (store.h), NULL: in memory */
  int state_reuse;         /* --state-reuse: take over a state file of another job */
  const char *frontier;    /* --frontier redis://...: the crawl shared with other engines */
  int frontier_async;      /* no blocking check of its Redis (serve): a Redis never reached
                            * fails the job instead (rfrontier.h no_check) */
  int64_t frontier_first_give_up_ms; /* how long a Redis never reached is tried for; 0: a
                                      * minute (rfrontier.h first_give_up_ms) */
  int sandbox;             /* --sandbox: the script's chunk runs in the sandbox (sandbox.c) */
  int allow_private;       /* --allow-private: loopback and private addresses pass the sandbox */
  /* The name the job's contexts are keyed under: jobs of one engine with the same partition
   * share contexts (cookies, cache) when their options match, as the requests of `serve`'s
   * /crawl do. NULL: the job's own ("job ID"), so nothing of one job reaches another. Letters,
   * digits, space, '/', '-', '_' only. Borrowed: outlives the job. */
  const char *partition;
  /* The network guard the job's contexts connect through under the host rules, shared by the
   * jobs of one partition (its URL is part of every context key, so contexts of different
   * guards are never shared). NULL: the job starts its own. Borrowed: outlives the job. */
  struct lc_netguard *guard;
} lc_job_opts;

/* Make a job: a Lua state, the script loaded and its job table validated (with its policy
 * table), the output opened. Everything that touches the user's Lua values runs inside a
 * protected call. Returns NULL with a one-line message in err when the input is bad; nothing
 * is started then. Freed by lc_job_free. `id` (> 0, unique in the engine) names its owners. */
lc_job *lc_job_new(lc_shared *sh, uint32_t id, const lc_job_opts *o, char *err, size_t errlen);
void lc_job_free(lc_job *j);

uint32_t lc_job_id(const lc_job *j);
/* The job table's policy (defaults where it says nothing); its hook lives in lc_job_lua. */
const lc_policy *lc_job_policy(const lc_job *j);
lua_State *lc_job_lua(lc_job *j);

/* Queue the start URLs (they are validated by lc_job_new). The crawl begins with
 * lc_job_browser_ready. Returns 0, or -1 with err when the job cannot start. */
int lc_job_start(lc_job *j, char *err, size_t errlen);
/* After lc_job_start: 1 when the job resumes a --state crawl that has nothing left to do
 * (nothing queued or leased, the start URLs seen): it needs no browser. Ending it (cancel)
 * still writes the committed records its output lacks. */
int lc_job_state_finished(const lc_job *j);
/* The browser is ready (the first time, or again after a crash or recycle): pump. */
void lc_job_browser_ready(lc_job *j);
/* Stop the job: no new requests, its tasks are stopped (sig: SIGINT/SIGTERM, or 0). */
void lc_job_cancel(lc_job *j, int sig);
/* Stop the job because it cannot go on (the browser never started, a crash loop). */
void lc_job_fail(lc_job *j, const char *msg);
/* After the end: give back what the job itself holds (sessions), so its references are 0. */
void lc_job_release_all(lc_job *j);
/* A release happened (or the engine wants a pass): a cleanup pass is due, run at the
 * resume point. */
void lc_job_after_release(lc_job *j);
/* bpool's on_nav_paused, routed by the engine to the job whose task holds the page: queued
 * for the job's resume point, where its check_navigation decides. */
void lc_job_nav_paused(lc_job *j, uint64_t page_id, const char *request_id, const char *url,
                       int redirected);
/* Ask for the engine's idle work at this job's resume point. */
void lc_job_poke(lc_job *j);
/* Every tick: progress. */
void lc_job_tick(lc_job *j);

int lc_job_ended(const lc_job *j);
int lc_job_started(const lc_job *j);
int lc_job_stopping(const lc_job *j);
int lc_job_tasks(const lc_job *j);     /* tasks of the job still alive */
size_t lc_job_pending(const lc_job *j); /* requests queued in its frontier */
int lc_job_owns(const lc_job *j);      /* cache handles its owners hold */
/* Why the job failed (lc_job_fail, output failure), or NULL. */
const char *lc_job_failure(const lc_job *j);
int lc_job_stop_signal(const lc_job *j);

/* The job's counters. */
typedef struct lc_job_counts {
  uint64_t pages_ok, pages_failed, retries, emitted, robots_skipped, throttled;
} lc_job_counts;
void lc_job_get_counts(const lc_job *j, lc_job_counts *out);

/* Output: records not yet taken by the reader; push them (after the end, at shutdown). */
size_t lc_job_backlog(const lc_job *j);
int lc_job_output_failed_errno(const lc_job *j);
void lc_job_output_kick(lc_job *j);
/* The summary line (final) on stderr. */
void lc_job_progress(lc_job *j, int final);
int lc_job_write_stats(lc_job *j, const char *path);

/* The loop's clock, brought up to date. */
int64_t lc_now(const lc_shared *sh);

#endif
