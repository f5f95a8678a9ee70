/* job.c: one job as a value (job.h), and its crawl loop.
 * Owns: making the job (its Lua state, its script and job table read in protected calls),
 * taking requests from the frontier at the job's concurrency, per-host politeness (in-flight
 * cap, delay, Retry-After backoff, robots.txt), one task per request, and the one finalizer
 * every task (request, robots.txt, on_error) passes through: whatever it acquired is released
 * there, whether it returned, raised, passed its deadline or was cancelled, and the job checks
 * that the task owns nothing afterwards. Then retries, on_error, statistics, progress and the
 * job's end, which the engine hears of. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lualib.h>
#include <signal.h>

#include "hosttab.h"
#include "job_int.h"
#include "json.h"
#include "l_policy.h"
#include "log.h"
#include "proc.h"
#include "rfrontier.h"
#include "robots.h"
#include "url.h"

#define PUMP_POLL_MS 50
#define MAX_BACKOFF_MS 30000

struct lc_host {
  char name[256];
  char origin[300];
  int in_flight;
  int64_t next_ok_ms; /* politeness delay and Retry-After */
  int robots_state;   /* 0 unknown, 1 fetching, 2 known */
  lc_robots *robots;  /* NULL: everything allowed */
  int64_t crawl_delay_ms;
};

/* What every task of the job carries: its kind and what its end must give back. */
typedef enum { TASK_REQUEST, TASK_ROBOTS, TASK_ON_ERROR } task_kind;

typedef struct req_state {
  lc_job *j;
  task_kind kind;
  lc_host *host;         /* the host whose in-flight slot the task holds, or NULL */
  lc_request req;        /* TASK_REQUEST */
  int restarts_at_start; /* TASK_REQUEST: sh->restarts when this attempt began */
  char **held;           /* --state: the request's records, committed with its acknowledgement */
  size_t *held_len, n_held, cap_held;
} req_state;

static void task_done(lc_task *t, int status, const char *err, void *ud);
static req_state *task_state_new(lc_job *j, task_kind kind, lc_host *h);

/* The loop's clock, brought up to date: deadlines computed after long synchronous work (a
 * big JSON decode, a slow hook) must not start from a stale time. */
int64_t lc_now(const lc_shared *sh) {
  uv_update_time(sh->loop);
  return (int64_t)uv_now(sh->loop);
}

static void check_end(lc_job *j);
static void durable_flush(lc_job *j);
static uv_timer_t *timer_new(lc_job *j);

/* Wall-clock ms: what the state file keeps (the loop's clock means nothing after a restart). */
static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- hosts */

/* The politeness state of the URL's host, created on first use: O(1) expected (a hash
 * table, not a list scan: admission asks for every host pop considers). NULL when out of
 * memory or for a URL without a usable host. */
static lc_host *host_get(lc_job *j, const char *url) {
  char name[256];
  if (lc_url_host(url, name, sizeof name) != 0) return NULL;
  if (!j->hosts && !(j->hosts = lc_hosttab_new())) return NULL;
  lc_host *h = lc_hosttab_find(j->hosts, name);
  if (h) return h;
  h = calloc(1, sizeof *h);
  if (!h) return NULL;
  snprintf(h->name, sizeof h->name, "%s", name);
  lc_url_origin(url, h->origin, sizeof h->origin);
  if (lc_hosttab_put(j->hosts, h->name, h) != 0) {
    free(h);
    return NULL;
  }
  if (j->store) {
    /* A resumed crawl keeps a host's pause (delay, Retry-After) across the restart. */
    int64_t wall = lc_store_host_get(j->store, h->name), now = wall_ms();
    if (wall > now) h->next_ok_ms = lc_now(j->sh) + (wall - now);
  }
  return h;
}

/* --state: a host's pause, in wall-clock time. */
static void host_persist(lc_job *j, const lc_host *h) {
  if (j->store) lc_store_host_set(j->store, h->name, wall_ms() + (h->next_ok_ms - lc_now(j->sh)));
}

static void host_free(void *value, void *ud) {
  lc_host *h = value;
  (void)ud;
  if (h->robots) lc_robots_free(h->robots);
  free(h);
}


static void start_robots(lc_job *j, lc_host *h);

/* Requests and robots.txt fetches in flight: what the job's concurrency caps. */
static int busy(const lc_job *j) { return j->in_flight + j->robots_in_flight; }

/* The frontier's admission gate: may a request to this URL start now? A host whose robots.txt
 * is not known yet gets its robots.txt fetch started instead, when the job's concurrency and
 * the host's per_host leave room for it: that fetch counts against both, like a request. */
static int admit(void *ud, const char *url) {
  lc_job *j = ud;
  lc_host *h = host_get(j, url);
  if (!h) return 1; /* cannot happen for a normalized URL; let the request fail visibly */
  if (busy(j) >= j->cfg.concurrency) return 0; /* a robots fetch started in this pop */
  if (j->cfg.per_host > 0 && h->in_flight >= j->cfg.per_host) return 0;
  if (lc_now(j->sh) < h->next_ok_ms) return 0;
  if (j->cfg.robots) {
    if (h->robots_state == 0) start_robots(j, h);
    if (h->robots_state != 2) return 0;
  }
  return 1;
}

/* ---------------------------------------------------------------- robots.txt */

/* The end of a robots.txt task (after the finalizer): the host's rules. */
/* A robots.txt answer (code, text) becomes the host's rules. */
static void robots_apply(lc_job *j, lc_host *h, lua_Integer code, const char *text, size_t n) {
    if (code >= 200 && code < 300 && text) {
      h->robots = lc_robots_parse(text, n, j->cfg.user_agent_token);
      double delay = h->robots ? lc_robots_crawl_delay(h->robots) : -1;
      if (delay > 0) h->crawl_delay_ms = (int64_t)(delay * 1000);
    } else {
      /* RFC 9309 2.3.1: 4xx allows everything, 5xx (and 429) disallows everything. */
      h->robots = lc_robots_for_status((int)code);
      if (h->robots && code >= 429)
        lc_warn("robots.txt of %s answered %d: not crawling that host", h->origin, (int)code);
    }
}

static void robots_result(lc_job *j, lc_host *h, lua_State *co, int status, const char *err) {
  h->robots_state = 2;
  if (status == LC_TASK_OK && lua_gettop(co) >= 2 && lua_isinteger(co, -2)) {
    lua_Integer code = lua_tointeger(co, -2);
    size_t n = 0;
    const char *text = lua_tolstring(co, -1, &n);
    robots_apply(j, h, code, text, n);
    /* --state: kept for 24 hours (RFC 9309 2.4), so a resumed crawl asks again only then. */
    /* A 5xx or 429 is transient: it is not kept, the next run asks again. */
    if (j->store && code < 429)
      lc_store_robots_put(j->store, h->origin, (int)code, text ? text : "", n);
  } else if (status != LC_TASK_CANCELLED) {
    /* Unreachable means disallowed (RFC 9309 2.3.1.4): the browser could not fetch it. */
    h->robots = lc_robots_for_status(0);
    lc_warn("cannot read robots.txt of %s (%s): not crawling that host", h->origin,
            err ? err : "no answer");
  }
}

static void start_robots(lc_job *j, lc_host *h) {
  if (j->stopping || j->robots_ref == LUA_NOREF) return;
  int code = 0;
  char *text = NULL;
  size_t len = 0;
  if (j->store && lc_store_robots_get(j->store, h->origin, &code, &text, &len) == 1) {
    h->robots_state = 2;
    robots_apply(j, h, code, text, len);
    free(text);
    return;
  }
  req_state *ts = task_state_new(j, TASK_ROBOTS, h);
  if (!ts) return;
  h->robots_state = 1;
  lua_rawgeti(j->L, LUA_REGISTRYINDEX, j->robots_ref);
  lua_pushstring(j->L, h->origin);
  /* A slot of the job's concurrency and of the host's per_host, like a request. */
  j->aux_tasks++;
  j->robots_in_flight++;
  h->in_flight++;
  if (!lc_task_spawn(j->sched, 1, j->cfg.timeout_ms, task_done, ts)) {
    j->aux_tasks--;
    j->robots_in_flight--;
    h->in_flight--;
    free(ts);
    h->robots_state = 2;
  }
}

int lc_job_robots_verdict(lc_job *j, const char *url) {
  if (!j->cfg.robots) return 1;
  lc_host *h = host_get(j, url);
  if (!h) return 0;
  if (h->robots_state == 2) return !h->robots || lc_robots_allowed_url(h->robots, url) == 1;
  if (h->robots_state == 0 && busy(j) < j->cfg.concurrency &&
      (j->cfg.per_host <= 0 || h->in_flight < j->cfg.per_host))
    start_robots(j, h);
  return -1;
}

/* ---------------------------------------------------------------- navigation guard */

/* A paused main-frame navigation request waiting for the crawl's rules (bpool asks; the
 * decision runs Lua, so it waits for the resume point). */
struct lc_navcheck {
  struct lc_navcheck *next;
  uint64_t page_id;
  int redirected;
  char *request_id, *url;
};

static void navcheck_free(struct lc_navcheck *c) {
  free(c->request_id);
  free(c->url);
  free(c);
}

void lc_job_nav_paused(lc_job *j, uint64_t page_id, const char *request_id, const char *url,
                       int redirected) {
  struct lc_navcheck *c = calloc(1, sizeof *c);
  if (c) {
    c->request_id = strdup(request_id);
    c->url = strdup(url);
  }
  if (!c || !c->request_id || !c->url) {
    if (c) navcheck_free(c);
    lc_error("out of memory queueing a navigation check: refusing %s", url);
    lc_enpage *pg = lc_bpool_page(j->sh->pool, page_id);
    if (pg) lc_enpage_nav_decide(j->sh->pool, pg, request_id, 0);
    return;
  }
  c->page_id = page_id;
  c->redirected = redirected;
  if (j->navchecks_tail)
    j->navchecks_tail->next = c;
  else
    j->navchecks = c;
  j->navchecks_tail = c;
  if (j->sched) lc_sched_poke(j->sched);
}

static void free_navchecks(lc_job *j) {
  while (j->navchecks) {
    struct lc_navcheck *c = j->navchecks;
    j->navchecks = c->next;
    navcheck_free(c);
  }
  j->navchecks_tail = NULL;
}

static int nav_traceback(lua_State *L) {
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

/* Decide the queued navigations: the job's check_navigation says nil (go on) or why not. A
 * check that fails refuses: the rules are not known to allow it. */
static void run_navchecks(lc_job *j) {
  while (j->navchecks) {
    struct lc_navcheck *c = j->navchecks;
    j->navchecks = c->next;
    if (!j->navchecks) j->navchecks_tail = NULL;
    lc_enpage *pg = lc_bpool_page(j->sh->pool, c->page_id);
    if (pg) {
      int allow = 1;
      if (j->navcheck_ref != LUA_NOREF && !j->lua_closing) {
        lua_State *L = j->L;
        int top = lua_gettop(L);
        lua_pushcfunction(L, nav_traceback);
        lua_rawgeti(L, LUA_REGISTRYINDEX, j->navcheck_ref);
        lua_pushstring(L, lc_enpage_target(pg));
        lua_pushstring(L, c->url);
        lua_pushboolean(L, c->redirected);
        if (lua_pcall(L, 3, 1, top + 1) != LUA_OK) {
          lc_warn("navigation check of %s failed, refusing it: %s", c->url, lua_tostring(L, -1));
          allow = 0;
        } else if (lua_isstring(L, -1)) {
          lc_info("%s", lua_tostring(L, -1));
          allow = 0;
        }
        lua_settop(L, top);
      }
      lc_enpage_nav_decide(j->sh->pool, pg, c->request_id, allow);
    }
    navcheck_free(c);
  }
}

/* ---------------------------------------------------------------- the resume point's work */

/* A release happened: the engine's cleanup pass is due. It may call the Lua policy hook, so
 * it runs at the resume point, not inside whatever callback released. */
void lc_job_after_release(lc_job *j) {
  j->sh->cleanup_due = 1;
  if (j->sched) lc_sched_poke(j->sched);
}

void lc_job_poke(lc_job *j) {
  if (j->sched) lc_sched_poke(j->sched);
}

/* A task is being stopped (deadline, cancel), before its variables are closed: whatever
 * its pages are doing is not to be trusted, so each is closed when given back -- by a
 * `<close>` variable while the task unwinds, or by the finalizer after. */
static void task_stopping(void *ud, lc_task *t) {
  lc_job *j = ud;
  if (j->sh->cache) lc_cache_owner_mark_bad(j->sh->cache, lc_task_id(t));
}

void lc_job_release_later(lc_job *j, uint64_t handle) {
  if (j->lua_closing || !j->sched) return;
  if (j->n_gc_releases == j->cap_gc_releases) {
    size_t cap = j->cap_gc_releases ? j->cap_gc_releases * 2 : 16;
    uint64_t *p = realloc(j->gc_releases, cap * sizeof *p);
    if (!p) {
      lc_error("out of memory queueing a release; the request's finalizer will release it");
      return;
    }
    j->gc_releases = p;
    j->cap_gc_releases = cap;
  }
  j->gc_releases[j->n_gc_releases++] = handle;
  lc_sched_poke(j->sched);
}

/* The resume point's deferred work, after the ready tasks ran: navigation checks, releases
 * the GC queued, then the engine's (a cleanup pass when one is due). */
static void idle_work(void *ud) {
  lc_job *j = ud;
  run_navchecks(j);
  if (!j->sh->cache) return;
  for (size_t i = 0; i < j->n_gc_releases; i++) {
    if (!lc_cache_handle_live(j->sh->cache, j->gc_releases[i])) continue; /* its owner ended first */
    lc_debug("releasing handle %llu whose userdata was collected",
             (unsigned long long)j->gc_releases[i]);
    lc_cache_release(j->sh->cache, j->gc_releases[i], lc_now(j->sh));
    j->sh->cleanup_due = 1;
  }
  j->n_gc_releases = 0;
  j->sh->ops->idle_work(j->sh->ud, j);
  check_end(j);
}

/* ---------------------------------------------------------------- requests */

static void push_request(lua_State *L, const lc_request *r) {
  lua_createtable(L, 0, 7);
  lua_pushstring(L, r->url);
  lua_setfield(L, -2, "url");
  lua_pushinteger(L, r->depth);
  lua_setfield(L, -2, "depth");
  lua_pushinteger(L, r->attempt);
  lua_setfield(L, -2, "attempt");
  lua_pushinteger(L, (lua_Integer)r->id);
  lua_setfield(L, -2, "id");
  lua_pushinteger(L, r->lost);
  lua_setfield(L, -2, "lost");
  if (r->data_json) {
    lua_pushstring(L, r->data_json);
    lua_setfield(L, -2, "data_json");
  }
}

static void request_failed_for_good(lc_job *j, req_state *rs, const char *err) {
  j->n.pages_failed++;
  lc_frontier_done(j->frontier, rs->req.id, 0);
  lc_warn("failed: %s: %s", rs->req.url, err);
  if (j->on_error_ref != LUA_NOREF && !j->stopping) {
    /* on_error gets the message; the traceback went to the log above. */
    const char *tb = strstr(err, "\nstack traceback:");
    lua_rawgeti(j->L, LUA_REGISTRYINDEX, j->on_error_ref);
    push_request(j->L, &rs->req);
    lua_pushlstring(j->L, err, tb ? (size_t)(tb - err) : strlen(err));
    req_state *ts = task_state_new(j, TASK_ON_ERROR, NULL);
    if (!ts) {
      lua_pop(j->L, 3);
      return;
    }
    j->aux_tasks++;
    if (!lc_task_spawn(j->sched, 2, j->cfg.timeout_ms, task_done, ts)) {
      j->aux_tasks--;
      free(ts);
    }
  }
}

/* A request handed out and not tried to its end because the job stops: back to the frontier
 * as it was (frontier.h: release), taking its strings. */
static void give_back(lc_job *j, lc_request *r) {
  int rc = lc_frontier_release(j->frontier, r);
  /* EIO: the state file failed, which stopped the job and was said once already. */
  if (rc < 0 && rc != LC_FRONTIER_ENOENT && rc != LC_FRONTIER_EIO)
    lc_warn("cannot give a request back to the frontier (%d): it counts as a lost lease", rc);
}

static void retry_later(lc_job *j, req_state *rs, int64_t delay_ms, int count_attempt) {
  lc_request r = rs->req;
  memset(&rs->req, 0, sizeof rs->req); /* ownership of the strings moves to the frontier */
  if (!count_attempt) r.attempt--;     /* the frontier's retry counts one attempt itself */
  if (lc_frontier_retry(j->frontier, &r, lc_now(j->sh) + delay_ms) < 0) {
    lc_error("cannot queue a retry of %s", r.url);
    lc_request_clear(&r);
  }
}

/* The end of a request task (after the finalizer): done, retried, or failed for good. */
static void request_result(lc_job *j, req_state *rs, lua_State *co, int status, const char *err) {
  char msg[2048];
  const char *result = NULL;
  if (status == LC_TASK_OK) {
    int isnum = 0;
    lua_Integer kind = lua_gettop(co) >= 1 ? lua_tointegerx(co, 1, &isnum) : -1;
    if (!isnum) kind = -1;
    if (kind == LC_REQUEST_THROTTLED) {
      int64_t wait = lua_isinteger(co, 2) ? lua_tointeger(co, 2) : 1000;
      if (wait < 0) wait = 0;
      if (wait > 10 * 60 * 1000) wait = 10 * 60 * 1000;
      j->n.throttled++;
      if (rs->host) {
        rs->host->next_ok_ms = lc_now(j->sh) + wait;
        host_persist(j, rs->host);
        if (j->dist) lc_rfront_pause(j->frontier, rs->host->name, wait); /* every engine's */
      }
      if (rs->req.throttles < j->cfg.throttle_retries && !j->stopping) {
        lc_info("%s answered 429/503: backing off %s for %" PRId64 " ms", rs->req.url,
                rs->host ? rs->host->name : "the host", wait);
        rs->req.throttles++;
        retry_later(j, rs, wait, 0);
        goto out;
      }
      snprintf(msg, sizeof msg, "still throttled (429/503) after %d tries", rs->req.throttles + 1);
      result = msg;
    } else if (kind == LC_REQUEST_FAILED) {
      const char *m = lua_tostring(co, 2);
      snprintf(msg, sizeof msg, "%s", m ? m : "handler failed");
      result = msg;
    } else if (kind != LC_REQUEST_OK) {
      snprintf(msg, sizeof msg, "engine bug: the request runner returned no core.REQUEST_* kind");
      result = msg;
    }
  } else if (status == LC_TASK_TIMEOUT) {
    snprintf(msg, sizeof msg, "request deadline of %" PRId64 " ms passed", j->cfg.timeout_ms);
    result = msg;
  } else if (status == LC_TASK_CANCELLED) {
    /* Stopped by an interrupt or a cancel: neither done nor failed; nothing already emitted is
     * lost. Given back to the frontier untried, so it is not counted as a lost lease. */
    give_back(j, &rs->req);
    goto out;
  } else {
    snprintf(msg, sizeof msg, "%s", err ? err : "handler failed");
    result = msg;
  }

  /* A browser crash during a failed attempt is named in the reason: a page that takes the
   * browser down each time it loads fails after its retries, saying so; the job goes on. */
  if (result && j->sh->restarts > rs->restarts_at_start) {
    rs->req.crashes++;
    if (rs->req.attempt >= j->cfg.retries || j->stopping) {
      char why[2048];
      snprintf(why, sizeof why,
               "the browser crashed during %d of its %d attempt%s (a page that takes the browser "
               "down?); last error: %.1500s",
               rs->req.crashes, rs->req.attempt + 1, rs->req.attempt ? "s" : "", result);
      snprintf(msg, sizeof msg, "%s", why);
      result = msg;
    }
  }
  /* The output failed: the run ends; a request that did not get through is neither done nor
   * failed, and nothing is retried (its page would be fetched again for nothing). */
  if (result && j->output_err) {
    give_back(j, &rs->req);
    goto out;
  }
  if (!result && j->store) {
    /* Done only now, with its records, in one step of the state file's transaction. */
    int rc = lc_store_commit(j->store, rs->req.id, (const char *const *)rs->held, rs->held_len,
                             rs->n_held);
    if (rc < 0) {
      char why[600];
      snprintf(why, sizeof why, "cannot commit %s to the state file: %s", rs->req.url,
               lc_store_error(j->store));
      lc_job_fail(j, why);
      goto out;
    }
    j->n.pages_ok++;
    j->n.emitted += rs->n_held;
  } else if (!result && j->dist) {
    /* Acknowledged with its records in one step on the server; counted and written to this
     * engine's output when the server answers (dist.c). */
    int rc = lc_job_dist_commit(j, &rs->req, rs->held, rs->held_len, rs->n_held);
    rs->held = NULL;
    rs->held_len = NULL;
    rs->n_held = rs->cap_held = 0;
    if (rc < 0) lc_job_fail(j, "cannot send an acknowledgement to the shared frontier");
  } else if (!result) {
    j->n.pages_ok++;
    lc_frontier_done(j->frontier, rs->req.id, 1);
  } else if (rs->req.attempt < j->cfg.retries && !j->stopping) {
    j->n.retries++;
    int64_t backoff = 250LL << (rs->req.attempt < 7 ? rs->req.attempt : 7);
    if (backoff > MAX_BACKOFF_MS) backoff = MAX_BACKOFF_MS;
    lc_info("retrying %s in %" PRId64 " ms (attempt %d): %.300s", rs->req.url, backoff,
            rs->req.attempt + 2, result);
    retry_later(j, rs, backoff, 1);
  } else {
    request_failed_for_good(j, rs, result);
  }
out:
  lc_request_clear(&rs->req);
}

static void task_state_free(req_state *ts) {
  for (size_t i = 0; i < ts->n_held; i++) free(ts->held[i]);
  free(ts->held);
  free(ts->held_len);
  free(ts);
}

int lc_job_hold_record(lc_job *j, lc_task *t, const char *line, size_t len) {
  req_state *ts = t ? lc_task_data(t) : NULL;
  if (!ts || ts->j != j || ts->kind != TASK_REQUEST) return -ENOENT;
  if (ts->n_held == ts->cap_held) {
    size_t cap = ts->cap_held ? ts->cap_held * 2 : 4;
    char **h = realloc(ts->held, cap * sizeof *h);
    if (!h) return -ENOMEM;
    ts->held = h;
    size_t *l = realloc(ts->held_len, cap * sizeof *l);
    if (!l) return -ENOMEM;
    ts->held_len = l;
    ts->cap_held = cap;
  }
  char *copy = malloc(len + 1);
  if (!copy) return -ENOMEM;
  memcpy(copy, line, len);
  copy[len] = 0;
  ts->held[ts->n_held] = copy;
  ts->held_len[ts->n_held++] = len;
  return 0;
}

int lc_job_commit_record(lc_job *j, const char *line, size_t len) {
  if (j->dist) return lc_job_dist_commit_record(j, line, len);
  const char *lines[1] = {line};
  int rc = lc_store_commit(j->store, 0, lines, &len, 1);
  if (rc == 0) j->n.emitted++;
  return rc;
}

static req_state *task_state_new(lc_job *j, task_kind kind, lc_host *h) {
  req_state *ts = calloc(1, sizeof *ts);
  if (!ts) return NULL;
  ts->j = j;
  ts->kind = kind;
  ts->host = h;
  ts->restarts_at_start = j->sh->restarts;
  return ts;
}

/* The one finalizer, for every kind of task, on every path (return, error, deadline, cancel):
 * the counts the task held are given back, then everything it acquired. Pages of a task that
 * was stopped may still be busy (a script spinning, a load hanging): they were marked bad when
 * the stop began (task_stopping), before its variables were closed, so they are closed here,
 * never reused. Then the task owns nothing, and its kind decides what its end means. */
static void task_done(lc_task *t, int status, const char *err, void *ud) {
  req_state *ts = ud;
  lc_job *j = ts->j;
  if (ts->kind == TASK_REQUEST)
    j->in_flight--;
  else
    j->aux_tasks--;
  if (ts->kind == TASK_ROBOTS) j->robots_in_flight--;
  if (ts->host) ts->host->in_flight--;

  if (status == LC_TASK_TIMEOUT || status == LC_TASK_CANCELLED)
    lc_cache_owner_mark_bad(j->sh->cache, lc_task_id(t));
  int released = lc_cache_release_owner(j->sh->cache, lc_task_id(t), lc_now(j->sh));
  if (released > 0 && status == LC_TASK_OK && ts->kind == TASK_REQUEST)
    lc_debug("released %d handle(s) the handler of %s kept", released, ts->req.url);
  int owned = lc_cache_owned(j->sh->cache, lc_task_id(t));
  if (owned != 0) lc_error("engine bug: a finished task still owns %d handle(s)", owned);

  lua_State *co = lc_task_thread(t);
  switch (ts->kind) {
  case TASK_REQUEST:
    request_result(j, ts, co, status, err);
    break;
  case TASK_ROBOTS:
    robots_result(j, ts->host, co, status, err);
    break;
  case TASK_ON_ERROR:
    if (status != LC_TASK_OK && status != LC_TASK_CANCELLED)
      lc_warn("on_error failed: %s", err ? err : "unknown error");
    break;
  }
  task_state_free(ts);
  lc_job_sandbox_check(j);
  lc_job_after_release(j);
  lc_job_pump(j);
}

static void pump_timer_cb(uv_timer_t *h) { lc_job_pump(h->data); }

void lc_job_pump(lc_job *j) {
  if (!j->started || j->stopping || !j->sh->cache) {
    check_end(j);
    return;
  }
  int started = 0;
  while (busy(j) < j->cfg.concurrency) {
    if (lc_sink_backlog(j->sink) > LC_OUTPUT_SOFT_BACKLOG) {
      j->output_paused = 1; /* the output timer pumps again once the reader caught up */
      break;
    }
    lc_request r;
    int64_t next_ms = -1;
    memset(&r, 0, sizeof r);
    int got = lc_frontier_pop(j->frontier, lc_now(j->sh), admit, j, &r, &next_ms);
    if (got <= 0) {
      if (lc_frontier_pending(j->frontier) > 0) {
        int64_t wait = next_ms >= 0 ? next_ms - lc_now(j->sh) : PUMP_POLL_MS;
        if (wait > PUMP_POLL_MS || wait < 1) wait = wait < 1 ? 1 : PUMP_POLL_MS;
        uv_timer_start(j->pump_timer, pump_timer_cb, (uint64_t)wait, 0);
      }
      break;
    }
    /* Handed out and never ended (frontier.h: lost) more than retries + 1 times: so many
     * engines or runs died (or stalled past the lease) while it ran. Compared with retries + 1,
     * not retries as request_result compares attempts: one death is no evidence against a
     * page by itself (kill -9 of the service, the OOM killer choosing this process for another
     * page, a machine going down take every request in flight with them), and a job with
     * retries = 0 must still resume after one kill -9 without losing the pages it was running
     * (spec/serve_spec.lua). So the first lost lease is forgiven, and a page that kills every
     * engine gets retries + 2 of them before it is given up. */
    if (r.lost > j->cfg.retries + 1) {
      char why[300];
      snprintf(why, sizeof why,
               "its lease was lost %d times: the engine%s holding it died or stalled each time (a "
               "page that kills the engine?); not run again",
               r.lost, j->dist ? "s" : "");
      req_state gone = {.j = j, .kind = TASK_REQUEST, .req = r};
      request_failed_for_good(j, &gone, why);
      lc_request_clear(&gone.req);
      continue;
    }
    lc_host *h = host_get(j, r.url);
    if (j->cfg.robots && h && h->robots) {
      /* Any length: a URL too long for a buffer is checked like any other (issue 9, item 7). */
      int verdict = lc_robots_allowed_url(h->robots, r.url);
      if (verdict < 0)
        lc_warn("cannot check %s against robots.txt (%d): skipping it", r.url, verdict);
      if (verdict != 1) {
        lc_info("robots.txt disallows %s", r.url);
        j->n.robots_skipped++;
        lc_frontier_done(j->frontier, r.id, 0);
        lc_request_clear(&r);
        continue;
      }
    }
    req_state *rs = task_state_new(j, TASK_REQUEST, h);
    if (!rs) {
      give_back(j, &r);
      break;
    }
    rs->req = r;
    if (h) h->in_flight++; /* the delay is taken when the request navigates (lc_job_host_slot) */
    lua_rawgeti(j->L, LUA_REGISTRYINDEX, j->runner_ref);
    push_request(j->L, &rs->req);
    j->in_flight++;
    lc_task *t = lc_task_spawn(j->sched, 1, j->cfg.timeout_ms, task_done, rs);
    if (!t) {
      j->in_flight--;
      if (h) h->in_flight--;
      give_back(j, &rs->req);
      task_state_free(rs);
      break;
    }
    lc_task_set_data(t, rs);
    started++;
  }
  /* --state: the leases just taken are committed before their pages load, so a page that
   * kills the process is found leased, and counted, by the next run (a kill inside the 200 ms
   * batch would otherwise go uncounted, every time). A WAL commit without fsync, once per
   * pump that started something. */
  if (started && j->store) durable_flush(j);
  check_end(j);
}

int64_t lc_job_host_local(lc_job *j, const char *url, char *name, size_t n, int64_t *delay) {
  lc_host *h = host_get(j, url);
  if (!h) return -1;
  int64_t now = lc_now(j->sh);
  if (now < h->next_ok_ms) return h->next_ok_ms - now;
  snprintf(name, n, "%s", h->name);
  *delay = j->cfg.delay_ms > h->crawl_delay_ms ? j->cfg.delay_ms : h->crawl_delay_ms;
  return 0;
}

int64_t lc_job_host_slot(lc_job *j, const char *url) {
  lc_host *h = host_get(j, url);
  if (!h) return 0;
  int64_t now = lc_now(j->sh);
  if (now < h->next_ok_ms) return h->next_ok_ms - now;
  int64_t delay = j->cfg.delay_ms > h->crawl_delay_ms ? j->cfg.delay_ms : h->crawl_delay_ms;
  if (delay > 0) {
    h->next_ok_ms = now + delay;
    host_persist(j, h);
  }
  return 0;
}

/* --frontier: the shared frontier has what this engine still holds back, or it is time to go
 * without it. A stopping job gives its prefetch buffer back (its cancelled requests were given
 * back by request_result) and waits, without blocking the loop (the pump timer polls, the
 * server's answers pump), for the server to answer everything given (releases, acks, ends):
 * a lease given back is not counted as lost, an ack answered is written to the output. Bounded
 * by LC_DIST_STOP_WAIT_MS: a server that is away never answers, and its leases expire. */
#define LC_DIST_STOP_WAIT_MS 2000
static int dist_settled(lc_job *j) {
  if (!j->stopping) return 1; /* a natural end: pending() counted every answer */
  int64_t now = lc_now(j->sh);
  if (!j->dist_stop_ms) {
    j->dist_stop_ms = now > 0 ? now : 1; /* 0: not stopped yet */
    lc_rfront_stop(j->frontier);
  }
  if (lc_rfront_outstanding(j->frontier) == 0 || lc_rfront_failure(j->frontier)) return 1;
  if (now - j->dist_stop_ms >= LC_DIST_STOP_WAIT_MS) {
    lc_warn("the shared frontier did not answer within %d ms of the stop: %zu command(s) "
            "unanswered (leases not given back expire; running ones then count as lost)",
            LC_DIST_STOP_WAIT_MS, lc_rfront_outstanding(j->frontier));
    return 1;
  }
  uv_timer_start(j->pump_timer, pump_timer_cb, 20, 0);
  return 0;
}

/* The job's end: nothing runs, and it was stopped or has nothing left to do. The engine
 * hears of it once. */
static void check_end(lc_job *j) {
  if (j->ended || j->in_flight || j->aux_tasks) return;
  if (!j->stopping && !(j->started && lc_frontier_pending(j->frontier) == 0)) return;
  if (j->dist && !dist_settled(j)) return;
  j->ended = 1;
  uv_timer_stop(j->pump_timer);
  if (j->store) {
    if (j->flush_timer) uv_timer_stop(j->flush_timer);
    durable_flush(j);
  }
  j->sh->ops->job_ended(j->sh->ud, j);
}

int lc_job_enqueue(lc_job *j, const char *url, int depth, const char *data_json,
                   const char **why) {
  if (j->stopping) {
    *why = "the job is stopping";
    return 0;
  }
  int rc = lc_frontier_push(j->frontier, url, depth, data_json, lc_now(j->sh));
  if (rc == 0)
    *why = "already seen";
  else if (rc == LC_FRONTIER_EFULL)
    *why = "max_pages reached";
  else if (rc < 0)
    *why = "cannot queue the URL";
  if (rc > 0 && j->started) {
    /* Start it on the next loop turn, not inside the handler that enqueued it. */
    if (!uv_is_active((uv_handle_t *)j->pump_timer))
      uv_timer_start(j->pump_timer, pump_timer_cb, 0, 0);
  }
  return rc > 0 ? 1 : rc;
}

void lc_job_cancel(lc_job *j, int sig) {
  if (sig && !j->stop_signal) j->stop_signal = sig; /* also when already ending: the exit says so */
  if (j->stopping) return;
  j->stopping = 1;
  uv_timer_stop(j->pump_timer);
  lc_sched_kill_all(j->sched, sig ? "interrupted" : "stopping");
  check_end(j);
}

void lc_job_fail(lc_job *j, const char *msg) {
  if (!j->failed) {
    j->failed = 1;
    /* Cut to the buffer (a caller's longer message, e.g. a path in it, is cut here). */
    snprintf(j->failure, sizeof j->failure, "%.*s", (int)sizeof j->failure - 1, msg);
  }
  lc_job_cancel(j, 0);
}

/* ---------------------------------------------------------------- output */

static void out_timer_cb(uv_timer_t *h) {
  lc_job *j = h->data;
  int rc = lc_sink_drain(j->sink);
  if (rc != 0 && rc != -EAGAIN) {
    uv_timer_stop(h);
    lc_job_output_failed(j, rc);
    return;
  }
  if (rc == 0) uv_timer_stop(h);
  if (j->output_paused && lc_sink_backlog(j->sink) <= LC_OUTPUT_SOFT_BACKLOG) {
    j->output_paused = 0;
    lc_job_pump(j);
  }
}

void lc_job_output_kick(lc_job *j) {
  if (j->output_err || lc_sink_backlog(j->sink) == 0) return;
  if (!uv_is_active((uv_handle_t *)j->out_timer))
    uv_timer_start(j->out_timer, out_timer_cb, LC_OUTPUT_DRAIN_MS, LC_OUTPUT_DRAIN_MS);
}

void lc_job_output_failed(lc_job *j, int rc) {
  if (j->output_err) return;
  j->output_err = rc < 0 ? -rc : EIO;
  uv_timer_stop(j->out_timer);
  uint64_t records = 0;
  lc_sink_count(j->sink, &records, NULL);
  char msg[256];
  snprintf(msg, sizeof msg,
           "cannot write the output (%s) after %" PRIu64 " record%s; stopping the run",
           strerror(j->output_err), records, records == 1 ? "" : "s");
  lc_job_fail(j, msg);
}

/* ---------------------------------------------------------------- progress and stats */

/* The live progress line is the terminal's: one at a time, cleared before a log line. */
static int progress_line_shown;

static void progress_clear(void) {
  if (progress_line_shown) fputs("\r\033[K", stderr);
  progress_line_shown = 0;
}

void lc_job_progress(lc_job *j, int final) {
  if (!j->opts.progress || !j->sh->cache) return;
  int64_t now = lc_now(j->sh);
  double secs = (double)(now - (int64_t)j->started_ms) / 1000.0;
  /* This run's pages: a resumed crawl's counters include the runs before it. */
  uint64_t pages = j->n.pages_ok + j->n.pages_failed - j->at_open.pages_ok - j->at_open.pages_failed;
  double rate = secs > 0 ? (double)pages / secs : 0;
  lc_cache_stats cs;
  lc_cache_get_stats(j->sh->cache, &cs);
  int due = final || (!j->opts.quiet &&
                      (j->progress_tty || now - (int64_t)j->last_progress_ms >= 5000));
  if (!due) return;
  j->sh->ops->sample_mem(j->sh->ud); /* at most once a second */
  char line[512];
  snprintf(line, sizeof line,
           "%" PRIu64 " done, %" PRIu64
           " failed, %zu queued, %d in flight, %.1f pages/s, "
           "%d contexts open, %d idle pages, browser PSS %ld MB",
           j->n.pages_ok, j->n.pages_failed, lc_frontier_pending(j->frontier), j->in_flight,
           rate, cs.contexts_open, cs.idle_pages, j->sh->browser_pss_kb / 1024);
  if (final) {
    progress_clear();
    fprintf(stderr,
            "luacrawl: %s: %" PRIu64 " pages ok, %" PRIu64 " failed, %" PRIu64 " retries, %" PRIu64
            " records in %.1f s (%.1f pages/s); contexts created %" PRIu64
            ", peak %d open; browser PSS peak %ld MB (RSS %ld MB)\n",
            j->stop_signal ? "interrupted"
            : j->failed    ? "stopped"
                           : "done",
            j->n.pages_ok, j->n.pages_failed, j->n.retries, j->n.emitted, secs, rate,
            cs.contexts_created, cs.contexts_open_peak, j->sh->browser_pss_peak_kb / 1024,
            j->sh->browser_rss_peak_kb / 1024);
    return;
  }
  if (j->progress_tty) {
    fprintf(stderr, "\r\033[K%s", line);
    progress_line_shown = 1;
  } else if (now - (int64_t)j->last_progress_ms >= 5000) {
    fprintf(stderr, "luacrawl: progress: %s\n", line);
    j->last_progress_ms = (uint64_t)now;
  }
}

void lc_job_tick(lc_job *j) {
  lc_job_sandbox_check(j);
  if (j->started && !j->stopping) lc_job_progress(j, 0);
}

/* ---------------------------------------------------------------- the state file */

#define FLUSH_MS 200 /* how often the state file's transaction is committed */

static void counter_sync(lc_job *j, const char *name, uint64_t now, uint64_t *stored) {
  if (now != *stored) lc_store_counter_add(j->store, name, (int64_t)(now - *stored));
  *stored = now;
}

/* Write committed records after out_seq to the output. A full output queue (a slow reader)
 * stops here; the next flush goes on. stack: none */
static int write_committed(void *ud, uint64_t seq, const char *line, size_t len) {
  lc_job *j = ud;
  int rc = lc_sink_write(j->sink, line, len);
  if (rc == -ENOBUFS) return 1;
  if (rc != 0) {
    lc_job_output_failed(j, rc);
    return 1;
  }
  j->out_seq = seq;
  if (j->n_marks == j->cap_marks) {
    size_t cap = j->cap_marks ? j->cap_marks * 2 : 64;
    struct out_mark *m = realloc(j->marks, cap * sizeof *m);
    if (!m) return 1; /* the position stays behind: those lines may come again, never lost */
    j->marks = m;
    j->cap_marks = cap;
  }
  uint64_t bytes = 0;
  lc_sink_count(j->sink, NULL, &bytes);
  j->marks[j->n_marks++] = (struct out_mark){seq, bytes};
  return 0;
}

/* The output position to store: the last record whose bytes left the sink's queue (a file
 * has no queue: all of them). A record still queued when the run dies is written again by the
 * resume, never lost. */
static void store_output_position(lc_job *j) {
  uint64_t bytes = 0;
  lc_sink_count(j->sink, NULL, &bytes);
  uint64_t out = bytes - lc_sink_backlog(j->sink);
  size_t k = 0;
  uint64_t seq = j->out_stored;
  while (k < j->n_marks && j->marks[k].bytes_end <= out) seq = j->marks[k++].seq;
  if (k > 0) {
    memmove(j->marks, j->marks + k, (j->n_marks - k) * sizeof *j->marks);
    j->n_marks -= k;
  }
  if (seq == j->out_stored) return;
  j->out_stored = seq;
  /* The file's size after that record: the bytes this run wrote up to it, past its base. */
  int64_t off = -1;
  if (j->out_base >= 0) off = j->out_base + (int64_t)bytes; /* a file: nothing is queued */
  lc_store_set_output(j->store, seq, off);
}

/* Commit the state file's transaction, then write what it committed, then note (for the next
 * commit) how far the output got: a kill between the two leaves lines the next run truncates
 * and writes again, never a line twice or half a line. A failed commit (a full disk) stops the
 * job; what was committed before stays. */
static void durable_flush(lc_job *j) {
  if (!j->store || j->failed_store || !j->sink) return;
  counter_sync(j, "pages_ok", j->n.pages_ok, &j->stored.pages_ok);
  counter_sync(j, "pages_failed", j->n.pages_failed, &j->stored.pages_failed);
  counter_sync(j, "retries", j->n.retries, &j->stored.retries);
  counter_sync(j, "robots_skipped", j->n.robots_skipped, &j->stored.robots_skipped);
  counter_sync(j, "throttled", j->n.throttled, &j->stored.throttled);
  if (lc_store_flush(j->store) != 0) {
    char why[600];
    snprintf(why, sizeof why, "cannot commit to the state file %s: %s", j->opts.state,
             lc_store_error(j->store));
    j->failed_store = 1;
    lc_job_fail(j, why);
    return;
  }
  uint64_t before = j->out_seq;
  lc_store_each_record(j->store, j->out_seq, write_committed, j);
  if (j->out_seq != before) lc_job_output_kick(j);
  store_output_position(j);
}

static void flush_timer_cb(uv_timer_t *h) { durable_flush(h->data); }

/* A hash of the job: the script's bytes and its arguments. A state file belongs to one. */
static void job_hash(const lc_job_opts *o, char out[17]) {
  uint64_t h = 1469598103934665603ull;
  FILE *f = fopen(o->script, "rb");
  int c;
  while (f && (c = fgetc(f)) != EOF) h = (h ^ (uint64_t)(unsigned char)c) * 1099511628211ull;
  if (f) fclose(f);
  for (const char *const *a = o->args; a && *a; a++)
    for (const char *p = *a;; p++) {
      h = (h ^ (uint64_t)(unsigned char)*p) * 1099511628211ull; /* the NUL separates them */
      if (!*p) break;
    }
  snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* The output as a state file names it: "-" for stdout, else an absolute path with its folder
 * resolved (the file itself may not exist yet), so "-o out.jsonl" run from another folder is
 * another output. */
static void output_identity(const char *output, char *buf, size_t n) {
  if (!output || !strcmp(output, "-")) {
    snprintf(buf, n, "-");
    return;
  }
  char real[PATH_MAX];
  if (realpath(output, real)) {
    snprintf(buf, n, "%s", real);
    return;
  }
  char dir[PATH_MAX];
  const char *slash = strrchr(output, '/');
  const char *base = slash ? slash + 1 : output;
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == output) snprintf(dir, sizeof dir, "/");
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash - output), output);
  if (realpath(dir, real)) snprintf(buf, n, "%s%s%s", real, strcmp(real, "/") ? "/" : "", base);
  else snprintf(buf, n, "%s", output); /* its folder is missing: opening it will say so */
}

/* --state: open the state file and take its frontier, counters and output position. */
static int open_state(lc_job *j, char *err, size_t errlen) {
  char hash[17];
  job_hash(&j->opts, hash);
  lc_store_opts so = {.path = j->opts.state, .job_hash = hash, .reuse = j->opts.state_reuse};
  char why[512];
  j->store = lc_store_open(&so, why, sizeof why, NULL);
  if (!j->store) {
    snprintf(err, errlen, "--state %s: %s", j->opts.state, why);
    return -1;
  }
  j->frontier = lc_store_frontier(j->store, j->cfg.max_pages > 0 ? (size_t)j->cfg.max_pages : 0);
  j->n.pages_ok = j->stored.pages_ok = (uint64_t)lc_store_counter(j->store, "pages_ok");
  j->n.pages_failed = j->stored.pages_failed = (uint64_t)lc_store_counter(j->store, "pages_failed");
  j->n.retries = j->stored.retries = (uint64_t)lc_store_counter(j->store, "retries");
  j->n.robots_skipped = j->stored.robots_skipped =
      (uint64_t)lc_store_counter(j->store, "robots_skipped");
  j->n.throttled = j->stored.throttled = (uint64_t)lc_store_counter(j->store, "throttled");
  lc_store_status st;
  if (lc_store_get_status(j->store, &st) == 0) j->n.emitted = (uint64_t)st.records;
  j->at_open = j->n;
  uint64_t seq = 0;
  int64_t offset = 0;
  lc_store_get_output(j->store, &seq, &offset);
  /* The position is in the output the records went to. Another -o (or stdout after a file)
   * gets every committed record, as a new output, and the old one is left as it is: written
   * at the old file's size, the new one would keep its own head and miss what came before. */
  char now_out[PATH_MAX + 8], was_out[PATH_MAX + 8];
  output_identity(j->opts.output, now_out, sizeof now_out);
  int known = lc_store_get_output_path(j->store, was_out, sizeof was_out);
  if (known < 0 || lc_store_set_output_path(j->store, now_out) < 0) {
    snprintf(err, errlen, "--state %s: %s", j->opts.state, lc_store_error(j->store));
    return -1;
  }
  if (known == 1 && seq > 0 && strcmp(was_out, now_out) != 0) {
    lc_warn("the crawl in %s wrote its records to %s; writing all %llu committed records to %s "
            "(the other is left as it is)",
            j->opts.state, strcmp(was_out, "-") ? was_out : "stdout", (unsigned long long)seq,
            strcmp(now_out, "-") ? now_out : "stdout");
    seq = 0;
    offset = 0;
    /* with the new path, in one step: a kill before the first record reached it leaves no
     * position in the old file's bytes for the new one */
    if (lc_store_set_output(j->store, 0, 0) < 0) {
      snprintf(err, errlen, "--state %s: %s", j->opts.state, lc_store_error(j->store));
      return -1;
    }
  }
  int to_file = j->opts.output && strcmp(j->opts.output, "-") != 0;
  struct stat ost;
  int regular = to_file && (stat(j->opts.output, &ost) != 0 || S_ISREG(ost.st_mode));
  if (regular && (offset < 0 || stat(j->opts.output, &ost) != 0 || ost.st_size < offset)) {
    /* The records written before went to stdout, or the file is missing or shorter than the
     * committed size (moved, or cut by a power loss): write every committed record again. */
    if (seq > 0) lc_info("writing all %llu committed records to %s again", (unsigned long long)seq,
                         j->opts.output);
    seq = 0;
    offset = 0;
  }
  j->out_seq = j->out_stored = seq;
  j->out_base = regular ? (offset > 0 ? offset : 0) : -1;
  char *oerr = NULL;
  j->sink = lc_sink_jsonl_open_at(j->opts.output, regular ? j->out_base : -1, &oerr);
  if (!j->sink) {
    snprintf(err, errlen, "%s", oerr ? oerr : "cannot open the output");
    free(oerr);
    return -1;
  }
  j->flush_timer = timer_new(j);
  if (!j->flush_timer) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  uv_timer_start(j->flush_timer, flush_timer_cb, FLUSH_MS, FLUSH_MS);
  return 0;
}

/* ---------------------------------------------------------------- making a job */

#define JOB_KEY "luacrawl.job"

lc_job *lc_job_get(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, JOB_KEY);
  lc_job *j = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return j;
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Where the job's Lua finds the library (LUACRAWL_LIB), luacrawl.core and the in-page
 * JavaScript (LUACRAWL_JS). */
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

/* Integer field of the config table at idx. The job's defaults and ranges have one owner,
 * lib/luacrawl/boot.lua, which filled in every field: a missing one is an engine bug.
 * stack: unchanged */
static int64_t cfg_int(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  if (!lua_isinteger(L, -1)) luaL_error(L, "internal: luacrawl.boot left job.%s unset", k);
  int64_t v = lua_tointeger(L, -1);
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

/* The protected part of lc_job_new (lua_pcall'ed: every touch of the user's values may
 * raise): load the script through luacrawl.boot, which validates the job table and fills in
 * its defaults, then read it. Returns boot's message (it may carry the script's own
 * traceback) or nothing; raises on other bad input (a raising metamethod, a bad policy).
 * stack: [job lightuserdata] -> [message?] */
static int setup_protected(lua_State *L) {
  lc_job *j = lua_touserdata(L, 1);
  lua_settop(L, 0);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "luacrawl.boot");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "load");
  lua_remove(L, -2);
  lua_pushstring(L, j->opts.script);
  lua_newtable(L);
  for (const char *const *a = j->opts.args; a && *a; a++) {
    const char *eq = strchr(*a, '=');
    if (!eq) return luaL_error(L, "argument '%s' is not name=value", *a);
    lua_pushlstring(L, *a, (size_t)(eq - *a));
    lua_pushstring(L, eq + 1);
    lua_settable(L, -3);
  }
  lua_call(L, 2, 2);
  if (lua_isnil(L, -2)) return 1; /* boot's message */
  lua_pop(L, 1);
  int cfg = lua_gettop(L);
  /* boot.lua validated and defaulted every field: these are its values. */
  j->cfg.concurrency = (int)cfg_int(L, cfg, "concurrency");
  j->cfg.retries = (int)cfg_int(L, cfg, "retries");
  j->cfg.timeout_ms = cfg_int(L, cfg, "timeout_ms");
  j->cfg.max_pages = cfg_int(L, cfg, "max_pages");
  j->cfg.delay_ms = cfg_int(L, cfg, "delay_ms");
  j->cfg.per_host = (int)cfg_int(L, cfg, "per_host");
  j->cfg.throttle_retries = (int)cfg_int(L, cfg, "throttle_retries");
  lua_getfield(L, cfg, "robots");
  j->cfg.robots = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, cfg, "user_agent_token");
  if (lua_type(L, -1) != LUA_TSTRING)
    return luaL_error(L, "internal: luacrawl.boot left job.user_agent_token unset");
  snprintf(j->cfg.user_agent_token, sizeof j->cfg.user_agent_token, "%s", lua_tostring(L, -1));
  lua_pop(L, 1);
  lc_policy_defaults(&j->policy, j->cfg.concurrency);
  lua_getfield(L, cfg, "policy");
  char err[400];
  int rc = lc_policy_from_lua(L, -1, &j->policy, err, sizeof err);
  lua_pop(L, 1);
  if (rc < 0) return luaL_error(L, "%s", err);
  j->runner_ref = cfg_ref(L, cfg, "run_request");
  j->on_error_ref = cfg_ref(L, cfg, "on_error");
  j->robots_ref = cfg_ref(L, cfg, "fetch_robots");
  j->navcheck_ref = cfg_ref(L, cfg, "check_navigation");
  if (j->runner_ref == LUA_NOREF) return luaL_error(L, "internal: the job has no request runner");
  /* The start URLs stay in the registry until lc_job_start queues them. */
  lua_getfield(L, cfg, "start");
  lua_setfield(L, LUA_REGISTRYINDEX, "luacrawl.start");
  lua_settop(L, 0);
  return 0;
}

/* A Lua error outside any protected call: nothing can be unwound safely. Say so in one line
 * and leave; the atexit handler and the parent-death signal take the browsers down. */
static int at_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "luacrawl: engine bug: a Lua error escaped every protected call: %s\n",
          msg ? msg : "(not a string)");
  fflush(stderr);
  exit(70);
}

static void timer_free(uv_handle_t *h) { free(h); }

static uv_timer_t *timer_new(lc_job *j) {
  uv_timer_t *t = malloc(sizeof *t);
  if (!t) return NULL;
  uv_timer_init(j->sh->loop, t);
  t->data = j;
  return t;
}

/* A partition name goes into context keys (JSON) as it is: the engine's own, plain words. */
static int partition_ok(const char *p) {
  if (!p) return 1;
  size_t n = strlen(p);
  if (n == 0 || n > 64) return 0;
  for (; *p; p++)
    if (!isalnum((unsigned char)*p) && !strchr(" /-_", *p)) return 0;
  return 1;
}

lc_job *lc_job_new(lc_shared *sh, uint32_t id, const lc_job_opts *o, char *err, size_t errlen) {
  if (!partition_ok(o->partition)) {
    snprintf(err, errlen, "engine bug: a bad context partition name");
    return NULL;
  }
  lc_job *j = calloc(1, sizeof *j);
  if (!j) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  j->id = id;
  j->sh = sh;
  j->opts = *o;
  j->runner_ref = j->on_error_ref = j->robots_ref = j->navcheck_ref = LUA_NOREF;
  lc_policy_defaults(&j->policy, 0); /* setup_protected sets it with the concurrency */
  j->pump_timer = timer_new(j);
  j->out_timer = timer_new(j);
  j->sb.allow_private = o->allow_private;
  j->L = lua_newstate(lc_job_alloc, &j->sb); /* counting: the sandbox caps it */
  if (!j->pump_timer || !j->out_timer || !j->L) {
    snprintf(err, errlen, "out of memory");
    lc_job_free(j);
    return NULL;
  }
  lua_atpanic(j->L, at_panic);
  luaL_openlibs(j->L);
  lua_pushlightuserdata(j->L, j);
  lua_setfield(j->L, LUA_REGISTRYINDEX, JOB_KEY);
  j->sched = lc_sched_new(sh->loop, j->L);
  if (!j->sched) {
    snprintf(err, errlen, "out of memory");
    lc_job_free(j);
    return NULL;
  }
  /* This job's owners: tasks and the job itself, in the job's own id range. */
  lc_sched_set_id_base(j->sched, (uint64_t)id << LC_JOB_ID_SHIFT);
  j->owner = lc_sched_new_id(j->sched);
  lc_sched_on_idle(j->sched, idle_work, j);
  if (o->log_tag) lc_sched_set_log_tag(j->sched, o->log_tag);
  lc_sched_on_stop(j->sched, task_stopping, j);
  if (o->sandbox) lc_job_sandbox_begin(j);
  set_paths(j->L);
  lua_pushcfunction(j->L, traceback);
  lua_pushcfunction(j->L, setup_protected);
  lua_pushlightuserdata(j->L, j);
  int prc = lua_pcall(j->L, 1, 1, 1);
  if (prc != LUA_OK || lua_isstring(j->L, -1)) {
    const char *m = lua_tostring(j->L, -1);
    char sbuf[200];
    const char *budget = lc_job_sandbox_setup_failure(j, sbuf, sizeof sbuf);
    snprintf(err, errlen, "%s", budget ? budget : m ? m : "bad job");
    /* Our traceback is for bugs; bad input is one line. */
    char *tb = prc != LUA_OK ? strstr(err, "\nstack traceback:") : NULL;
    if (tb) *tb = 0;
    lc_job_free(j);
    return NULL;
  }
  lua_settop(j->L, 0);
  char *oerr = NULL;
  if (o->state) {
    if (open_state(j, err, errlen) != 0) {
      lc_job_free(j);
      return NULL;
    }
  } else if (o->frontier) {
    if (lc_job_dist_open(j, err, errlen) != 0) {
      lc_job_free(j);
      return NULL;
    }
  } else {
    j->frontier = lc_frontier_memory_new(j->cfg.max_pages > 0 ? (size_t)j->cfg.max_pages : 0);
    j->sink = lc_sink_jsonl_open(o->output, &oerr);
  }
  if (!j->frontier || !j->sink) {
    snprintf(err, errlen, "cannot open output %s: %s", o->output ? o->output : "-",
             oerr ? oerr : "out of memory");
    free(oerr);
    lc_job_free(j);
    return NULL;
  }
  /* A pipe or terminal is written through a bounded queue the loop drains: a reader that stops
   * reading pauses the crawl instead of blocking the loop in write(2). */
  lc_sink_jsonl_queue(j->sink, LC_OUTPUT_MAX_BACKLOG);
  j->progress_tty = o->progress && !o->quiet && isatty(2);
  if (j->progress_tty) lc_log_set_clear_hook(progress_clear);
  return j;
}

/* stack: [job] -> []: queue the start URLs kept by setup_protected. */
static int start_protected(lua_State *L) {
  lc_job *j = lua_touserdata(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, "luacrawl.start");
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    const char *url = lua_tostring(L, -1);
    const char *why = NULL;
    if (url && lc_job_enqueue(j, url, 0, NULL, &why) <= 0 && why &&
        strcmp(why, "already seen") != 0)
      lc_warn("start URL %s not queued: %s", url, why);
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, "luacrawl.start");
  return 0;
}

int lc_job_start(lc_job *j, char *err, size_t errlen) {
  lua_pushcfunction(j->L, traceback);
  lua_pushcfunction(j->L, start_protected);
  lua_pushlightuserdata(j->L, j);
  int rc = lua_pcall(j->L, 1, 0, 1);
  if (rc != LUA_OK) snprintf(err, errlen, "%s", lua_tostring(j->L, -1));
  lua_settop(j->L, 0);
  if (rc == LUA_OK) j->start_queued = 1;
  if (rc == LUA_OK && j->store && lc_store_resumed(j->store)) {
    if (lc_job_state_finished(j))
      lc_info("the crawl in %s is finished: %llu done, %llu failed, %llu records (written "
              "already): nothing to crawl",
              j->opts.state, (unsigned long long)j->n.pages_ok,
              (unsigned long long)j->n.pages_failed, (unsigned long long)j->n.emitted);
    else
      lc_info("resuming the crawl in %s: %llu done, %llu records", j->opts.state,
              (unsigned long long)j->n.pages_ok, (unsigned long long)j->n.emitted);
  }
  return rc == LUA_OK ? 0 : -1;
}

int lc_job_state_finished(const lc_job *j) {
  return j->store && j->start_queued && !j->started && lc_store_resumed(j->store) &&
         lc_frontier_pending(j->frontier) == 0;
}

void lc_job_browser_ready(lc_job *j) {
  if (!j->start_queued) return; /* added to the engine, not started yet */
  if (!j->started && !j->stopping) {
    j->started = 1;
    j->started_ms = uv_now(j->sh->loop);
    j->last_progress_ms = j->started_ms; /* the first progress line comes after a while */
  }
  lc_job_pump(j);
}

void lc_job_release_all(lc_job *j) {
  if (j->sh->cache) lc_cache_release_owner(j->sh->cache, j->owner, lc_now(j->sh));
  free_navchecks(j);
}

void lc_job_free(lc_job *j) {
  if (!j) return;
  /* Nothing in the teardown starts work or tells the engine of an end. */
  j->ended = 1;
  j->stopping = 1;
  free_navchecks(j);
  if (j->sched) lc_sched_free(j->sched); /* every task ended: lc_job_ended */
  if (j->L) {
    /* __gc releases nothing now: the job's owners were released (lc_job_release_all). */
    lc_policy_release(j->L, &j->policy);
    j->lua_closing = 1;
    lua_close(j->L);
  }
  free(j->gc_releases);
  free(j->marks);
  if (j->frontier) lc_frontier_destroy(j->frontier);
  if (j->store) {
    durable_flush(j);
    /* After a failed commit the store refuses everything: that was reported once already. */
    if (lc_store_close(j->store) != 0 && !j->failed_store)
      lc_error("cannot close the state file %s: %s", j->opts.state, "its last commit failed");
  }
  if (j->sink) lc_sink_close(j->sink);
  lc_hosttab_each(j->hosts, host_free, NULL);
  lc_hosttab_free(j->hosts);
  lc_job_sandbox_free(j);
  if (j->pump_timer) uv_close((uv_handle_t *)j->pump_timer, timer_free);
  if (j->out_timer) uv_close((uv_handle_t *)j->out_timer, timer_free);
  if (j->flush_timer) uv_close((uv_handle_t *)j->flush_timer, timer_free);
  if (j->progress_tty) lc_log_set_clear_hook(NULL);
  free(j);
}

/* ---------------------------------------------------------------- what others read */

uint32_t lc_job_id(const lc_job *j) { return j->id; }
const lc_policy *lc_job_policy(const lc_job *j) { return &j->policy; }
lua_State *lc_job_lua(lc_job *j) { return j->L; }
int lc_job_ended(const lc_job *j) { return j->ended; }
int lc_job_started(const lc_job *j) { return j->started; }
int lc_job_stopping(const lc_job *j) { return j->stopping; }
int lc_job_tasks(const lc_job *j) { return j->sched ? lc_sched_count(j->sched) : 0; }
size_t lc_job_pending(const lc_job *j) { return lc_frontier_pending(j->frontier); }
const char *lc_job_failure(const lc_job *j) { return j->failed ? j->failure : NULL; }
int lc_job_stop_signal(const lc_job *j) { return j->stop_signal; }
void lc_job_get_counts(const lc_job *j, lc_job_counts *out) { *out = j->n; }
size_t lc_job_backlog(const lc_job *j) { return j->sink ? lc_sink_backlog(j->sink) : 0; }
int lc_job_output_failed_errno(const lc_job *j) { return j->output_err; }

int lc_job_owns(const lc_job *j) {
  if (!j->sh->cache) return 0;
  return lc_cache_owned_range(j->sh->cache, (uint64_t)j->id << LC_JOB_ID_SHIFT,
                              ((uint64_t)j->id + 1) << LC_JOB_ID_SHIFT);
}

int lc_job_owns_handle(const lc_job *j, uint64_t handle) {
  uint64_t owner = j->sh->cache ? lc_cache_handle_owner(j->sh->cache, handle) : 0;
  return owner && owner >> LC_JOB_ID_SHIFT == j->id;
}
