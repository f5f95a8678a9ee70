/* engine.h: the engine: the loop, the browser pool, the context cache, the signals, and the
 * jobs that share them. Owns: everything below it, and the shutdown order (stop accepting
 * work, cancel pending operations, release every owner's references, close contexts, close
 * the browsers, close each job's Lua, close the remaining handles, check that the loop
 * closes). A job is a value (job.h): jobs are added, started, cancelled and removed while the
 * engine runs. main.c uses lc_engine_run; tests drive the parts. */
#ifndef LC_ENGINE_H
#define LC_ENGINE_H

#include <stddef.h>

#include "job.h"

typedef struct lc_run_opts {
  const char *script;
  const char *const *args; /* "name=value" pairs, NULL-terminated */
  const char *output;      /* -o FILE, NULL: stdout */
  const char *stats;       /* --stats FILE */
  const char *browser;     /* --browser PATH */
  const char *connect;     /* --connect ws://HOST:PORT/...: someone else's browser */
  const char *state;       /* --state FILE: the crawl's durable state */
  int state_reuse;         /* --state-reuse */
  const char *frontier;    /* --frontier redis://HOST:PORT/DB?crawl=NAME: a shared crawl */
  int sandbox;             /* --sandbox: the script runs in the sandbox (docs/API.md, Sandbox) */
  int allow_private;       /* --allow-private: the sandbox lets loopback and private addresses through */
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

typedef struct lc_engine lc_engine;

typedef struct lc_engine_opts {
  const char *browser; /* --browser PATH (NULL: find one) */
  const char *connect; /* --connect URL: someone else's browser */
  int stats;           /* --stats: browser memory peaks are wanted every second */
  /* When set, the first SIGINT/SIGTERM is handed to this (on the loop) instead of cancelling
   * every job and stopping the loop: the caller (luacrawl serve) stops on its own terms. */
  void (*on_signal)(void *ud, int sig);
  void *signal_ud;
} lc_engine_opts;

/* A loop and what the jobs will share; no browser yet. NULL with err on bad input. */
lc_engine *lc_engine_new(const lc_engine_opts *o, char *err, size_t errlen);
/* Make a job in this engine (loaded and validated, not started). NULL with err. */
lc_job *lc_engine_add_job(lc_engine *e, const lc_job_opts *o, char *err, size_t errlen);
/* Create the cache with `policy` (NULL: defaults; its hook, if any, lives in the Lua state of
 * `hook_job`), install the signal handlers and launch the browser. -1 with err. */
int lc_engine_start(lc_engine *e, const lc_policy *policy, lc_job *hook_job, char *err,
                    size_t errlen);
/* Start a job added to a started engine: its requests begin when the browser is ready. */
int lc_engine_start_job(lc_engine *e, lc_job *j, char *err, size_t errlen);
/* Stop one job (its tasks end at the resume point; the others go on). */
void lc_engine_cancel_job(lc_engine *e, lc_job *j);
/* Free an ended job after giving back what it still holds. Its references must be 0. */
void lc_engine_remove_job(lc_engine *e, lc_job *j);
/* Turn the loop until done(ud) says so, the engine stops (a signal, a fatal browser error),
 * or `ms` pass (ms <= 0: no limit). */
void lc_engine_run_until(lc_engine *e, int (*done)(void *ud), void *ud, int ms);
/* The whole shutdown, then free. Returns the references still outstanding (must be 0). */
int lc_engine_free(lc_engine *e);
/* Why the engine stopped for good (browser never started, crash loop), or NULL. */
const char *lc_engine_failure(const lc_engine *e);
lc_cache *lc_engine_cache(lc_engine *e);
/* What the jobs share (loop, pool, cache, policy, browser counters): read by luacrawl serve
 * for its metrics and health check. Owned by the engine. */
lc_shared *lc_engine_shared(lc_engine *e);
/* The engine's libwebsockets context (NULL before lc_engine_start): luacrawl serve adds its
 * listening vhost to it, so one lws context on the one loop holds client and server. */
struct lc_ws_ctx *lc_engine_ws(lc_engine *e);

/* Run one job script to its end: the CLI. Returns the exit code. */
int lc_engine_run(const lc_run_opts *opts);

#endif
