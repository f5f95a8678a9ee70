/* job.c: the crawl loop of one job.
 * Owns: taking requests from the frontier at the job's concurrency, per-host politeness
 * (in-flight cap, delay, Retry-After backoff, robots.txt), one task per request, and the one
 * finalizer every request task passes through: whatever the task acquired is released there,
 * whether it returned, raised, passed its deadline or was cancelled, and the engine checks that
 * the task owns nothing afterwards. Then retries, on_error, statistics, progress and the end. */
#include <errno.h>
#include <inttypes.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "hosttab.h"
#include "json.h"
#include "log.h"
#include "proc.h"
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

typedef struct req_state {
  lc_engine *e;
  lc_request req;
  lc_host *host;
  int restarts_at_start; /* e->restarts when this attempt began */
} req_state;

/* The loop's clock, brought up to date: deadlines computed after long synchronous work (a
 * big JSON decode, a slow hook) must not start from a stale time. */
int64_t lc_now(const lc_engine *e) {
  uv_update_time((uv_loop_t *)&e->loop);
  return (int64_t)uv_now((uv_loop_t *)&e->loop);
}

/* ---------------------------------------------------------------- hosts */

/* The politeness state of the URL's host, created on first use: O(1) expected (a hash
 * table, not a list scan: admission asks for every host pop considers). NULL when out of
 * memory or for a URL without a usable host. */
static lc_host *host_get(lc_engine *e, const char *url) {
  char name[256];
  if (lc_url_host(url, name, sizeof name) != 0) return NULL;
  if (!e->hosts && !(e->hosts = lc_hosttab_new())) return NULL;
  lc_host *h = lc_hosttab_find(e->hosts, name);
  if (h) return h;
  h = calloc(1, sizeof *h);
  if (!h) return NULL;
  snprintf(h->name, sizeof h->name, "%s", name);
  lc_url_origin(url, h->origin, sizeof h->origin);
  if (lc_hosttab_put(e->hosts, h->name, h) != 0) {
    free(h);
    return NULL;
  }
  return h;
}

static void host_free(void *value, void *ud) {
  lc_host *h = value;
  (void)ud;
  if (h->robots) lc_robots_free(h->robots);
  free(h);
}

void lc_job_free_hosts(lc_engine *e) {
  lc_hosttab_each(e->hosts, host_free, NULL);
  lc_hosttab_free(e->hosts);
  e->hosts = NULL;
}

static void start_robots(lc_engine *e, lc_host *h);

/* Requests and robots.txt fetches in flight: what the job's concurrency caps. */
static int busy(const lc_engine *e) { return e->in_flight + e->robots_in_flight; }

/* The frontier's admission gate: may a request to this URL start now? A host whose robots.txt
 * is not known yet gets its robots.txt fetch started instead, when the job's concurrency and
 * the host's per_host leave room for it: that fetch counts against both, like a request. */
static int admit(void *ud, const char *url) {
  lc_engine *e = ud;
  lc_host *h = host_get(e, url);
  if (!h) return 1; /* cannot happen for a normalized URL; let the request fail visibly */
  if (busy(e) >= e->cfg.concurrency) return 0; /* a robots fetch started in this pop */
  if (e->cfg.per_host > 0 && h->in_flight >= e->cfg.per_host) return 0;
  if (lc_now(e) < h->next_ok_ms) return 0;
  if (e->cfg.robots) {
    if (h->robots_state == 0) start_robots(e, h);
    if (h->robots_state != 2) return 0;
  }
  return 1;
}

/* ---------------------------------------------------------------- robots.txt */

typedef struct robots_op {
  lc_engine *e;
  lc_host *host;
} robots_op;

static void robots_done(lc_task *t, int status, const char *err, void *ud) {
  robots_op *op = ud;
  lc_engine *e = op->e;
  lc_host *h = op->host;
  lua_State *co = lc_task_thread(t);
  e->aux_tasks--;
  e->robots_in_flight--;
  h->in_flight--;
  lc_cache_release_owner(e->cache, lc_task_id(t), lc_now(e));
  h->robots_state = 2;
  if (status == LC_TASK_OK && lua_gettop(co) >= 2 && lua_isinteger(co, -2)) {
    lua_Integer code = lua_tointeger(co, -2);
    size_t n = 0;
    const char *text = lua_tolstring(co, -1, &n);
    if (code >= 200 && code < 300 && text) {
      h->robots = lc_robots_parse(text, n, e->cfg.user_agent_token);
      double delay = h->robots ? lc_robots_crawl_delay(h->robots) : -1;
      if (delay > 0) h->crawl_delay_ms = (int64_t)(delay * 1000);
    } else {
      /* RFC 9309 2.3.1: 4xx allows everything, 5xx (and 429) disallows everything. */
      h->robots = lc_robots_for_status((int)code);
      if (h->robots && code >= 429)
        lc_warn("robots.txt of %s answered %d: not crawling that host", h->origin, (int)code);
    }
  } else if (status != LC_TASK_CANCELLED) {
    /* Unreachable means disallowed (RFC 9309 2.3.1.4): the browser could not fetch it. */
    h->robots = lc_robots_for_status(0);
    lc_warn("cannot read robots.txt of %s (%s): not crawling that host", h->origin,
            err ? err : "no answer");
  }
  free(op);
  lc_job_after_release(e);
  lc_job_pump(e);
}

static void start_robots(lc_engine *e, lc_host *h) {
  if (e->stopping || e->robots_ref == LUA_NOREF) return;
  robots_op *op = calloc(1, sizeof *op);
  if (!op) return;
  op->e = e;
  op->host = h;
  h->robots_state = 1;
  lua_rawgeti(e->L, LUA_REGISTRYINDEX, e->robots_ref);
  lua_pushstring(e->L, h->origin);
  if (!lc_task_spawn(e->sched, 1, e->cfg.timeout_ms, robots_done, op)) {
    free(op);
    h->robots_state = 2;
    return;
  }
  e->aux_tasks++;
  e->robots_in_flight++; /* a slot of the job's concurrency and of the host's per_host */
  h->in_flight++;
}

int lc_job_robots_verdict(lc_engine *e, const char *url) {
  if (!e->cfg.robots) return 1;
  lc_host *h = host_get(e, url);
  if (!h) return 0;
  if (h->robots_state == 2) return !h->robots || lc_robots_allowed_url(h->robots, url) == 1;
  if (h->robots_state == 0 && busy(e) < e->cfg.concurrency &&
      (e->cfg.per_host <= 0 || h->in_flight < e->cfg.per_host))
    start_robots(e, h);
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

void lc_job_nav_paused(void *ud, uint64_t page_id, const char *request_id, const char *url,
                       int redirected) {
  lc_engine *e = ud;
  struct lc_navcheck *c = calloc(1, sizeof *c);
  if (c) {
    c->request_id = strdup(request_id);
    c->url = strdup(url);
  }
  if (!c || !c->request_id || !c->url) {
    if (c) navcheck_free(c);
    lc_error("out of memory queueing a navigation check: refusing %s", url);
    lc_enpage *pg = lc_bpool_page(e->pool, page_id);
    if (pg) lc_enpage_nav_decide(e->pool, pg, request_id, 0);
    return;
  }
  c->page_id = page_id;
  c->redirected = redirected;
  if (e->navchecks_tail)
    e->navchecks_tail->next = c;
  else
    e->navchecks = c;
  e->navchecks_tail = c;
  if (e->sched) lc_sched_poke(e->sched);
}

void lc_job_free_navchecks(lc_engine *e) {
  while (e->navchecks) {
    struct lc_navcheck *c = e->navchecks;
    e->navchecks = c->next;
    navcheck_free(c);
  }
  e->navchecks_tail = NULL;
}

static int nav_traceback(lua_State *L) {
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

/* Decide the queued navigations: the job's check_navigation says nil (go on) or why not. A
 * check that fails refuses: the rules are not known to allow it. */
static void run_navchecks(lc_engine *e) {
  while (e->navchecks) {
    struct lc_navcheck *c = e->navchecks;
    e->navchecks = c->next;
    if (!e->navchecks) e->navchecks_tail = NULL;
    lc_enpage *pg = lc_bpool_page(e->pool, c->page_id);
    if (pg) {
      int allow = 1;
      if (e->navcheck_ref != LUA_NOREF && !e->lua_closing) {
        lua_State *L = e->L;
        int top = lua_gettop(L);
        lua_pushcfunction(L, nav_traceback);
        lua_rawgeti(L, LUA_REGISTRYINDEX, e->navcheck_ref);
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
      lc_enpage_nav_decide(e->pool, pg, c->request_id, allow);
    }
    navcheck_free(c);
  }
}

/* ---------------------------------------------------------------- cleanup */

void lc_job_cleanup_pass(lc_engine *e, const char *why) {
  if (!e->cache) return;
  uint64_t ids[64];
  lc_cleanup_params p;
  lc_policy_state st = {.browser_rss_mb = (double)e->browser_rss_kb / 1024.0,
                        .browser_pss_mb = (double)e->browser_pss_kb / 1024.0,
                        .pages_served = e->gen_pages};
  lc_policy_decide(e->L, &e->policy, e->cache, lc_now(e), &st, &p, ids, 64);
  int closed = lc_cache_cleanup(e->cache, &p, lc_now(e));
  if (closed > 0) lc_debug("cleanup (%s) closed %d context(s)", why, closed);
}

/* Cleanup runs after every release, but not inside whatever callback released: it may call
 * the Lua policy hook, so it runs at the resume point. */
void lc_job_after_release(lc_engine *e) {
  e->cleanup_due = 1;
  if (e->sched) lc_sched_poke(e->sched);
}

/* A task is being stopped (deadline, cancel), before its variables are closed: whatever
 * its pages are doing is not to be trusted, so each is closed when given back -- by a
 * `<close>` variable while the task unwinds, or by the finalizer after. */
void lc_job_task_stopping(void *ud, lc_task *t) {
  lc_engine *e = ud;
  if (e->cache) lc_cache_owner_mark_bad(e->cache, lc_task_id(t));
}

void lc_job_release_later(lc_engine *e, uint64_t handle) {
  if (e->lua_closing || !e->sched) return;
  if (e->n_gc_releases == e->cap_gc_releases) {
    size_t cap = e->cap_gc_releases ? e->cap_gc_releases * 2 : 16;
    uint64_t *p = realloc(e->gc_releases, cap * sizeof *p);
    if (!p) {
      lc_error("out of memory queueing a release; the request's finalizer will release it");
      return;
    }
    e->gc_releases = p;
    e->cap_gc_releases = cap;
  }
  e->gc_releases[e->n_gc_releases++] = handle;
  lc_sched_poke(e->sched);
}

void lc_job_idle_work(void *ud) {
  lc_engine *e = ud;
  run_navchecks(e);
  if (!e->cache) return;
  for (size_t i = 0; i < e->n_gc_releases; i++) {
    if (!lc_cache_handle_live(e->cache, e->gc_releases[i])) continue; /* its owner ended first */
    lc_debug("releasing handle %llu whose userdata was collected",
             (unsigned long long)e->gc_releases[i]);
    lc_cache_release(e->cache, e->gc_releases[i], lc_now(e));
    e->cleanup_due = 1;
  }
  e->n_gc_releases = 0;
  if (e->cleanup_due) {
    e->cleanup_due = 0;
    lc_job_cleanup_pass(e, "release");
  }
}

/* ---------------------------------------------------------------- requests */

static void push_request(lua_State *L, const lc_request *r) {
  lua_createtable(L, 0, 6);
  lua_pushstring(L, r->url);
  lua_setfield(L, -2, "url");
  lua_pushinteger(L, r->depth);
  lua_setfield(L, -2, "depth");
  lua_pushinteger(L, r->attempt);
  lua_setfield(L, -2, "attempt");
  lua_pushinteger(L, (lua_Integer)r->id);
  lua_setfield(L, -2, "id");
  if (r->data_json) {
    lua_pushstring(L, r->data_json);
    lua_setfield(L, -2, "data_json");
  }
}

static void on_error_done(lc_task *t, int status, const char *err, void *ud) {
  lc_engine *e = ud;
  e->aux_tasks--;
  if (status != LC_TASK_OK && status != LC_TASK_CANCELLED)
    lc_warn("on_error failed: %s", err ? err : "unknown error");
  lc_cache_release_owner(e->cache, lc_task_id(t), lc_now(e));
  lc_job_after_release(e);
  lc_job_pump(e);
}

static void request_failed_for_good(lc_engine *e, req_state *rs, const char *err) {
  e->pages_failed++;
  e->frontier->ops->done(e->frontier, rs->req.id, 0);
  lc_warn("failed: %s: %s", rs->req.url, err);
  if (e->on_error_ref != LUA_NOREF && !e->stopping) {
    /* on_error gets the message; the traceback went to the log above. */
    const char *tb = strstr(err, "\nstack traceback:");
    lua_rawgeti(e->L, LUA_REGISTRYINDEX, e->on_error_ref);
    push_request(e->L, &rs->req);
    lua_pushlstring(e->L, err, tb ? (size_t)(tb - err) : strlen(err));
    if (lc_task_spawn(e->sched, 2, e->cfg.timeout_ms, on_error_done, e)) e->aux_tasks++;
  }
}

static void retry_later(lc_engine *e, req_state *rs, int64_t delay_ms, int count_attempt) {
  lc_request r = rs->req;
  memset(&rs->req, 0, sizeof rs->req); /* ownership of the strings moves to the frontier */
  if (!count_attempt) r.attempt--;     /* the frontier's retry counts one attempt itself */
  if (e->frontier->ops->retry(e->frontier, &r, lc_now(e) + delay_ms) < 0) {
    lc_error("cannot queue a retry of %s", r.url);
    lc_request_clear(&r);
  }
}

static void request_done(lc_task *t, int status, const char *err, void *ud) {
  req_state *rs = ud;
  lc_engine *e = rs->e;
  lua_State *co = lc_task_thread(t);
  e->in_flight--;
  if (rs->host) rs->host->in_flight--;

  /* The finalizer: everything the request acquired goes back, on every path. Pages of a
   * request stopped at its deadline may still be busy (a script spinning, a load hanging):
   * lc_job_task_stopping marked them bad before the task unwound, so they are closed here,
   * not reused. */
  int released = lc_cache_release_owner(e->cache, lc_task_id(t), lc_now(e));
  if (released > 0 && status == LC_TASK_OK)
    lc_debug("released %d handle(s) the handler of %s kept", released, rs->req.url);
  int owned = lc_cache_owned(e->cache, lc_task_id(t));
  if (owned != 0) lc_error("engine bug: request task still owns %d handle(s)", owned);

  char msg[2048];
  const char *result = NULL;
  if (status == LC_TASK_OK) {
    int top = lua_gettop(co);
    const char *kind = top >= 2 ? lua_tostring(co, top - 1) : NULL;
    if (!kind) kind = top >= 1 ? lua_tostring(co, top) : "ok";
    if (kind && strcmp(kind, "throttled") == 0) {
      int64_t wait = top >= 2 && lua_isinteger(co, top) ? lua_tointeger(co, top) : 1000;
      if (wait < 0) wait = 0;
      if (wait > 10 * 60 * 1000) wait = 10 * 60 * 1000;
      e->throttled++;
      if (rs->host) rs->host->next_ok_ms = lc_now(e) + wait;
      if (rs->req.throttles < e->cfg.throttle_retries && !e->stopping) {
        lc_info("%s answered 429/503: backing off %s for %" PRId64 " ms", rs->req.url,
                rs->host ? rs->host->name : "the host", wait);
        rs->req.throttles++;
        retry_later(e, rs, wait, 0);
        goto out;
      }
      snprintf(msg, sizeof msg, "still throttled (429/503) after %d tries", rs->req.throttles + 1);
      result = msg;
    } else if (kind && strcmp(kind, "error") == 0) {
      const char *m = lua_tostring(co, top);
      snprintf(msg, sizeof msg, "%s", m ? m : "handler failed");
      result = msg;
    }
  } else if (status == LC_TASK_TIMEOUT) {
    snprintf(msg, sizeof msg, "request deadline of %" PRId64 " ms passed", e->cfg.timeout_ms);
    result = msg;
  } else if (status == LC_TASK_CANCELLED) {
    /* Stopped by an interrupt: neither done nor failed; nothing already emitted is lost. */
    goto out;
  } else {
    snprintf(msg, sizeof msg, "%s", err ? err : "handler failed");
    result = msg;
  }

  /* A browser crash during a failed attempt is named in the reason: a page that takes the
   * browser down each time it loads fails after its retries, saying so; the job goes on. */
  if (result && e->restarts > rs->restarts_at_start) {
    rs->req.crashes++;
    if (rs->req.attempt >= e->cfg.retries || e->stopping) {
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
  if (result && e->output_err) goto out;
  if (!result) {
    e->pages_ok++;
    e->frontier->ops->done(e->frontier, rs->req.id, 1);
  } else if (rs->req.attempt < e->cfg.retries && !e->stopping) {
    e->retries++;
    int64_t backoff = 250LL << (rs->req.attempt < 7 ? rs->req.attempt : 7);
    if (backoff > MAX_BACKOFF_MS) backoff = MAX_BACKOFF_MS;
    lc_info("retrying %s in %" PRId64 " ms (attempt %d): %.300s", rs->req.url, backoff,
            rs->req.attempt + 2, result);
    retry_later(e, rs, backoff, 1);
  } else {
    request_failed_for_good(e, rs, result);
  }
out:
  lc_request_clear(&rs->req);
  free(rs);
  lc_job_after_release(e);
  lc_job_pump(e);
}

static void pump_timer_cb(uv_timer_t *h) { lc_job_pump(h->data); }

void lc_job_pump(lc_engine *e) {
  if (!e->started || e->stopping) return;
  while (busy(e) < e->cfg.concurrency) {
    if (lc_sink_backlog(e->sink) > LC_OUTPUT_SOFT_BACKLOG) {
      e->output_paused = 1; /* the output timer pumps again once the reader caught up */
      break;
    }
    lc_request r;
    int64_t next_ms = -1;
    memset(&r, 0, sizeof r);
    int got = e->frontier->ops->pop(e->frontier, lc_now(e), admit, e, &r, &next_ms);
    if (got <= 0) {
      if (e->frontier->ops->pending(e->frontier) > 0) {
        int64_t wait = next_ms >= 0 ? next_ms - lc_now(e) : PUMP_POLL_MS;
        if (wait > PUMP_POLL_MS || wait < 1) wait = wait < 1 ? 1 : PUMP_POLL_MS;
        uv_timer_start(&e->pump_timer, pump_timer_cb, (uint64_t)wait, 0);
      }
      break;
    }
    lc_host *h = host_get(e, r.url);
    if (e->cfg.robots && h && h->robots) {
      /* Any length: a URL too long for a buffer is checked like any other (issue 9, item 7). */
      int verdict = lc_robots_allowed_url(h->robots, r.url);
      if (verdict < 0)
        lc_warn("cannot check %s against robots.txt (%d): skipping it", r.url, verdict);
      if (verdict != 1) {
        lc_info("robots.txt disallows %s", r.url);
        e->robots_skipped++;
        e->frontier->ops->done(e->frontier, r.id, 0);
        lc_request_clear(&r);
        continue;
      }
    }
    req_state *rs = calloc(1, sizeof *rs);
    if (!rs) {
      lc_request_clear(&r);
      break;
    }
    rs->e = e;
    rs->req = r;
    rs->host = h;
    rs->restarts_at_start = e->restarts;
    if (h) h->in_flight++; /* the delay is taken when the request navigates (lc_job_host_slot) */
    lua_rawgeti(e->L, LUA_REGISTRYINDEX, e->runner_ref);
    push_request(e->L, &rs->req);
    e->in_flight++;
    if (!lc_task_spawn(e->sched, 1, e->cfg.timeout_ms, request_done, rs)) {
      e->in_flight--;
      if (h) h->in_flight--;
      lc_request_clear(&rs->req);
      free(rs);
      break;
    }
  }
  if (lc_job_done(e)) uv_stop(&e->loop);
}

int64_t lc_job_host_slot(lc_engine *e, const char *url) {
  lc_host *h = host_get(e, url);
  if (!h) return 0;
  int64_t now = lc_now(e);
  if (now < h->next_ok_ms) return h->next_ok_ms - now;
  int64_t delay = e->cfg.delay_ms > h->crawl_delay_ms ? e->cfg.delay_ms : h->crawl_delay_ms;
  if (delay > 0) h->next_ok_ms = now + delay;
  return 0;
}

int lc_job_done(const lc_engine *e) {
  return e->started && e->in_flight == 0 && e->aux_tasks == 0 &&
         (e->stopping || e->frontier->ops->pending(e->frontier) == 0);
}

int lc_job_enqueue(lc_engine *e, const char *url, int depth, const char *data_json,
                   const char **why) {
  if (e->stopping) {
    *why = "the job is stopping";
    return 0;
  }
  int rc = e->frontier->ops->push(e->frontier, url, depth, data_json, lc_now(e));
  if (rc == 0)
    *why = "already seen";
  else if (rc == LC_FRONTIER_EFULL)
    *why = "max_pages reached";
  else if (rc < 0)
    *why = "cannot queue the URL";
  if (rc > 0 && e->started) {
    /* Start it on the next loop turn, not inside the handler that enqueued it. */
    if (!uv_is_active((uv_handle_t *)&e->pump_timer))
      uv_timer_start(&e->pump_timer, pump_timer_cb, 0, 0);
  }
  return rc > 0 ? 1 : rc;
}

void lc_job_stop(lc_engine *e, int sig) {
  if (e->stopping) return;
  e->stopping = 1;
  if (sig) e->stop_signal = sig;
  uv_timer_stop(&e->pump_timer);
  lc_sched_kill_all(e->sched, sig ? "interrupted" : "stopping");
  if (lc_job_done(e)) uv_stop(&e->loop);
}

/* ---------------------------------------------------------------- output */

static void out_timer_cb(uv_timer_t *h) {
  lc_engine *e = h->data;
  int rc = lc_sink_drain(e->sink);
  if (rc != 0 && rc != -EAGAIN) {
    uv_timer_stop(h);
    lc_job_output_failed(e, rc);
    return;
  }
  if (rc == 0) uv_timer_stop(h);
  if (e->output_paused && lc_sink_backlog(e->sink) <= LC_OUTPUT_SOFT_BACKLOG) {
    e->output_paused = 0;
    lc_job_pump(e);
  }
}

void lc_job_output_kick(lc_engine *e) {
  if (e->output_err || lc_sink_backlog(e->sink) == 0) return;
  if (!uv_is_active((uv_handle_t *)&e->out_timer))
    uv_timer_start(&e->out_timer, out_timer_cb, LC_OUTPUT_DRAIN_MS, LC_OUTPUT_DRAIN_MS);
}

void lc_job_output_failed(lc_engine *e, int rc) {
  if (e->output_err) return;
  e->output_err = rc < 0 ? -rc : EIO;
  uv_timer_stop(&e->out_timer);
  uint64_t records = 0;
  lc_sink_count(e->sink, &records, NULL);
  snprintf(e->fatal_msg, sizeof e->fatal_msg,
           "cannot write the output (%s) after %" PRIu64 " record%s; stopping the run",
           strerror(e->output_err), records, records == 1 ? "" : "s");
  e->fatal = 1;
  lc_job_stop(e, 0);
  uv_stop(&e->loop);
}

/* ---------------------------------------------------------------- progress and stats */

static void progress_clear(void);
static int progress_on_tty;

static void progress_clear(void) {
  if (progress_on_tty) fputs("\r\033[K", stderr);
}

void lc_job_progress(lc_engine *e, int final) {
  int64_t now = lc_now(e);
  double secs = (double)(now - (int64_t)e->started_ms) / 1000.0;
  double rate = secs > 0 ? (double)(e->pages_ok + e->pages_failed) / secs : 0;
  lc_cache_stats cs;
  lc_cache_get_stats(e->cache, &cs);
  int due =
      final || (!e->opts.quiet && (progress_on_tty || now - (int64_t)e->last_progress_ms >= 5000));
  if (!due) return;
  lc_engine_sample_mem(e); /* at most once a second; a no-op when the tick just sampled */
  char line[512];
  snprintf(line, sizeof line,
           "%" PRIu64 " done, %" PRIu64
           " failed, %zu queued, %d in flight, %.1f pages/s, "
           "%d contexts open, %d idle pages, browser PSS %ld MB",
           e->pages_ok, e->pages_failed, e->frontier->ops->pending(e->frontier), e->in_flight, rate,
           cs.contexts_open, cs.idle_pages, e->browser_pss_kb / 1024);
  if (final) {
    progress_clear();
    fprintf(stderr,
            "luacrawl: %s: %" PRIu64 " pages ok, %" PRIu64 " failed, %" PRIu64 " retries, %" PRIu64
            " records in %.1f s (%.1f pages/s); contexts created %" PRIu64
            ", peak %d open; browser PSS peak %ld MB (RSS %ld MB)\n",
            e->stop_signal ? "interrupted"
            : e->fatal     ? "stopped"
                           : "done",
            e->pages_ok, e->pages_failed, e->retries, e->emitted, secs, rate, cs.contexts_created,
            cs.contexts_open_peak, e->browser_pss_peak_kb / 1024, e->browser_rss_peak_kb / 1024);
    return;
  }
  if (progress_on_tty) {
    fprintf(stderr, "\r\033[K%s", line);
    e->progress_shown = 1;
  } else if (now - (int64_t)e->last_progress_ms >= 5000) {
    fprintf(stderr, "luacrawl: progress: %s\n", line);
    e->last_progress_ms = (uint64_t)now;
  }
}

void lc_job_tick(lc_engine *e) {
  static int init;
  if (!init) {
    init = 1;
    progress_on_tty = isatty(2) && !e->opts.quiet;
    e->progress_tty = progress_on_tty;
    if (progress_on_tty) lc_log_set_clear_hook(progress_clear);
  }
  lc_cache_tick(e->cache, lc_now(e));
  if (e->started && !e->stopping) lc_job_progress(e, 0);
}

int lc_job_write_stats(lc_engine *e, const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  lc_cache_stats cs;
  lc_cache_get_stats(e->cache, &cs);
  lc_bpool_stats bs;
  lc_bpool_get_stats(e->pool, &bs);
  lc_engine_sample_mem(e);
  double secs = (double)(lc_now(e) - (int64_t)e->started_ms) / 1000.0;
  fprintf(f,
          "{\"contexts_created\":%" PRIu64 ",\"contexts_closed\":%" PRIu64
          ",\"contexts_lost\":%" PRIu64
          ",\"contexts_open_peak\":%d,\"contexts_open_at_exit\":%d,"
          "\"refs_outstanding\":%d,\"bad_releases\":%" PRIu64 ",\"pages_ok\":%" PRIu64
          ",\"pages_failed\":%" PRIu64 ",\"retries\":%" PRIu64 ",\"throttled\":%" PRIu64
          ",\"robots_skipped\":%" PRIu64 ",\"records\":%" PRIu64 ",\"pages_created\":%" PRIu64
          ",\"pages_reused\":%" PRIu64 ",\"pages_closed\":%" PRIu64 ",\"pages_evicted\":%" PRIu64
          ",\"contexts_retired\":%" PRIu64 ",\"idle_ghost_hits\":%" PRIu64
          ",\"browser_starts\":%d,\"browser_crashes\":%d,\"events_dropped\":%" PRIu64
          ","
          "\"browser_recycles\":%d,\"browser_rss_peak_mb\":%.1f,\"browser_pss_peak_mb\":%.1f,"
          "\"browser_pss_mb\":%.1f,\"engine_rss_peak_mb\":%.1f,"
          "\"seconds\":%.3f,\"interrupted\":%s}\n",
          cs.contexts_created, cs.contexts_closed, cs.contexts_lost, cs.contexts_open_peak,
          cs.contexts_open, cs.refs_outstanding, cs.bad_releases, e->pages_ok, e->pages_failed,
          e->retries, e->throttled, e->robots_skipped, e->emitted, cs.pages_created,
          cs.pages_reused, cs.pages_closed, cs.pages_evicted, cs.contexts_retired,
          cs.idle_ghost_hits, bs.browser_starts, bs.browser_crashes, bs.events_dropped,
          e->browser_recycles, (double)e->browser_rss_peak_kb / 1024.0,
          (double)e->browser_pss_peak_kb / 1024.0, (double)e->browser_pss_kb / 1024.0,
          (double)lc_proc_self_peak_rss_kb() / 1024.0, secs, e->stop_signal ? "true" : "false");
  return fclose(f) == 0 ? 0 : -1;
}
