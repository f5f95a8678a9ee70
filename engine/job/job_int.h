/* job_int.h: the inside of a job, shared by the crawl loop (job.c) and the job's Lua bindings
 * (l_core.c). Nothing outside engine/job/ includes it. */
#ifndef LC_JOB_INT_H
#define LC_JOB_INT_H

#include <lua.h>
#include <stdint.h>
#include <uv.h>

#include "frontier.h"
#include "job.h"
#include "netguard.h"
#include "output.h"
#include "store.h"
#include "task.h"

/* Output that the reader has not taken yet (a pipe, a terminal): above the soft mark the job
 * starts no new request until the backlog drains; the hard cap refuses a request's records
 * (all of them) rather than grow memory without bound. */
#define LC_OUTPUT_SOFT_BACKLOG ((size_t)4 << 20)
#define LC_OUTPUT_MAX_BACKLOG ((size_t)64 << 20)
#define LC_OUTPUT_DRAIN_MS 10 /* how often a backlog is pushed */

typedef struct lc_job_cfg {
  int concurrency;
  int retries;
  int64_t timeout_ms;
  int64_t max_pages;
  int64_t delay_ms;
  int per_host; /* requests in flight per host; 0: no cap */
  int robots;
  char user_agent_token[64];
  int throttle_retries; /* 429/503 answers tolerated per request before it fails */
} lc_job_cfg;

/* The sandbox's state (sandbox.c). */
#define LC_SANDBOX_MEMORY_MB 64           /* default cap of a sandboxed job's Lua heap */
#define LC_SANDBOX_INSTRUCTIONS 100000000 /* default Lua instructions per request */
typedef struct lc_sandbox {
  int on;            /* the script runs in the sandbox */
  int allow_private; /* --allow-private */
  size_t mem_used;   /* bytes of the job's Lua heap (counted always) */
  size_t mem_cap;    /* 0: no cap */
  int mem_hit;       /* an allocation was refused */
  int64_t memory_mb, job_ms;
  lc_netguard *guard;  /* the job's network guard (netguard.h), started at its first context */
  char **allow_hosts;  /* the job's allowed_hosts (NULL-terminated), or NULL: any host */
  int guard_failed;    /* it could not start: the sandbox's contexts are refused */
  int rules;           /* the host rules are on: the sandbox, or the job's host_rules */
} lc_sandbox;

typedef struct lc_host lc_host; /* per-host politeness state (job.c) */

struct lc_job {
  uint32_t id;
  lc_shared *sh;
  lc_job_opts opts;
  lua_State *L;
  lc_sched *sched;
  lc_frontier *frontier;
  lc_sink *sink;
  lc_job_cfg cfg;
  lc_policy policy; /* the job table's policy: the engine adopts it (its hook is in L) */

  uint64_t owner;   /* owner id of job-level handles (sessions, contexts taken outside a task) */
  int runner_ref;   /* Lua: function(req) run in each request task */
  int on_error_ref; /* Lua: function(req, err) when a request failed for good */
  int robots_ref;   /* Lua: function(origin) -> status, text */
  int navcheck_ref; /* Lua: function(target, url, redirected) -> nil | refusal reason */

  int started;     /* the crawl has begun (the browser was ready once) */
  int stopping;    /* no new work; finishing */
  int ended;       /* job_ended was called */
  int stop_signal; /* SIGINT/SIGTERM that stopped the job, or 0 */
  int failed;      /* the job could not run to its end */
  int output_err;  /* errno of a failed output write: the job stops, nothing is retried */
  int output_paused;
  char failure[512];

  uint64_t *gc_releases; /* handles whose userdata the GC collected: released at the resume point */
  size_t n_gc_releases, cap_gc_releases;
  int lua_closing;          /* lua_close is running: __gc releases nothing */
  int in_flight;            /* request tasks running */
  int aux_tasks;            /* on_error and robots tasks running */
  int robots_in_flight;     /* robots tasks running: they count against the concurrency */
  struct lc_hosttab *hosts; /* host key -> lc_host */
  struct lc_navcheck *navchecks, *navchecks_tail; /* paused navigations to decide */
  struct lc_session_wait *session_waits; /* tasks waiting for another task's session (l_core.c) */

  lc_job_counts n;
  uint64_t started_ms;
  lc_sandbox sb;

  /* --state: the durable state. Records of a request are held until its acknowledgement,
   * which commits them with it; output is written from committed records only. */
  lc_store *store;
  uint64_t out_seq;      /* the last committed record written to the output */
  int64_t out_base;      /* the output file's size when this run opened it (-1: a stream) */
  lc_job_counts stored;  /* what the state file's counters already hold */
  uv_timer_t *flush_timer;
  int failed_store; /* a commit failed: nothing more is written to it */
  /* Records handed to a queued output (a pipe) but maybe not out yet: (seq, the sink's byte
   * count after it). The position stored is the last one whose bytes left the queue. */
  struct out_mark { uint64_t seq, bytes_end; } *marks;
  size_t n_marks, cap_marks;
  uint64_t out_stored; /* the output position last given to the store */
  int start_queued;    /* lc_job_start ran: the browser's readiness may start the crawl */
  int dist;            /* --frontier: the frontier is shared through Redis (dist.c) */
  int64_t dist_stop_ms; /* --frontier: loop ms when the stop began waiting for the server */
  lc_job_counts at_open; /* counters the state file held when this run opened it */

  uv_timer_t *pump_timer; /* malloc'ed: freed in their close callbacks */
  uv_timer_t *out_timer;
  int progress_tty;
  uint64_t last_progress_ms;
};

/* What a request task's function (job.run_request, lib/luacrawl/job.lua) returns: one of
 * these (core.REQUEST_*), then its value: nothing for OK, the message for FAILED, the
 * milliseconds to back off for THROTTLED. */
enum { LC_REQUEST_OK = 0, LC_REQUEST_FAILED = 1, LC_REQUEST_THROTTLED = 2 };

/* The job whose Lua state L is (or a thread of it). */
lc_job *lc_job_get(lua_State *L);

void lc_job_pump(lc_job *j);
/* Queue the release of a handle whose userdata was collected (from __gc). */
void lc_job_release_later(lc_job *j, uint64_t handle);
int lc_job_enqueue(lc_job *j, const char *url, int depth, const char *data_json,
                   const char **why);
/* The output failed (EPIPE: the reader went away): stop the job, retry nothing. */
void lc_job_output_failed(lc_job *j, int rc);
/* Politeness at the moment a request goes out: 0 if a navigation to `url` may start now (the
 * host's delay is then counted from now), else the milliseconds to wait before asking again. */
int64_t lc_job_host_slot(lc_job *j, const char *url);
/* robots.txt's verdict on a URL: 1 allowed (or robots off), 0 disallowed, -1 not known yet
 * (its fetch is started when the job's concurrency leaves room). */
int lc_job_robots_verdict(lc_job *j, const char *url);
/* --state: hold a record of the running request task `t` until its acknowledgement (the
 * store commits both at once). 0, or -ENOENT when t is not a request task, -ENOMEM. */
int lc_job_hold_record(lc_job *j, lc_task *t, const char *line, size_t len);
/* --state: commit a record that belongs to no request (job:emit outside a handler). */
int lc_job_commit_record(lc_job *j, const char *line, size_t len);

/* --frontier (dist.c): open the shared frontier and the output; acknowledge a request with
 * its records (taking the arrays over), or commit records of no request; take the host's slot
 * on the server (a binding's return expression: it may yield). */
int lc_job_dist_open(lc_job *j, char *err, size_t errlen);
int lc_job_dist_commit(lc_job *j, const lc_request *req, char **lines, size_t *lens, size_t n);
int lc_job_dist_commit_record(lc_job *j, const char *line, size_t len);
int lc_job_dist_host_slot(lua_State *L, lc_job *j, const char *url);
/* The part of the host slot this engine decides: its own pause (ms to wait, > 0), no usable
 * host (-1), else 0 with the host's name and the delay its slot takes (delay_ms, Crawl-delay). */
int64_t lc_job_host_local(lc_job *j, const char *url, char *name, size_t n, int64_t *delay);

/* Whether the handle is owned by this job (one of its tasks or the job itself). */
int lc_job_owns_handle(const lc_job *j, uint64_t handle);

/* The job's statistics (stats.c): every counter, where it goes and how it is written. */
enum { LC_STAT_COUNT, LC_STAT_MB, LC_STAT_SECONDS, LC_STAT_BOOL };
typedef struct lc_stat {
  const char *name;
  int where; /* 1: job:stats(), 2: the --stats file, 3: both */
  int kind;  /* LC_STAT_*: job:stats() gives MB as whole numbers, the file with one decimal */
  double value;
} lc_stat;
#define LC_JOB_MAX_STATS 64
/* Fills up to cap entries; returns how many there are. Samples browser memory first (at most
 * once a second). */
size_t lc_job_stats(lc_job *j, lc_stat *out, size_t cap);
int lc_job_stat_live(const lc_stat *s);

/* The sandbox (sandbox.c). */
void *lc_job_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
void lc_job_sandbox_begin(lc_job *j);
/* A job-level budget tripped: fail the job (call at a resume point or from a loop callback). */
void lc_job_sandbox_check(lc_job *j);
const char *lc_job_sandbox_setup_failure(lc_job *j, char *buf, size_t n);
int l_core_sandbox(lua_State *L);
int l_core_sandbox_apply(lua_State *L);
int l_core_fail(lua_State *L);
int l_core_host_refusal(lua_State *L);
int l_core_memory(lua_State *L);
int l_core_net_refusal(lua_State *L);
int l_core_set_host_rules(lua_State *L);
int l_core_host_rules(lua_State *L);
/* The job's network guard's proxy URL, started on first use; NULL if it cannot start. */
const char *lc_job_netguard_url(lc_job *j);
/* Close the guard and free the allow list (lc_job_free). */
void lc_job_sandbox_free(lc_job *j);

/* The Lua bindings (l_core.c): opens luacrawl.core */
int luaopen_luacrawl_core(lua_State *L);

#endif
