/* l_core.c: the Lua bindings of the engine, module `luacrawl.core`.
 * Owns: the userdata types luacrawl.Page and luacrawl.Context (each names one cache handle by
 * id, so a released or foreign handle is an error, never a dangling pointer), and the async
 * operations they start. Lua modules in lib/luacrawl build the user-facing API on these.
 *
 * Conventions: misuse raises (luaL_argerror, or calling an async function outside a
 * task); runtime failure returns nil, message. Functions marked [async] yield the calling task.
 */
#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "job_int.h"
#include "json.h"
#include "l_cache.h"
#include "log.h"
#include "proc.h"
#include "url.h"

#define PAGE_MT "luacrawl.Page"
#define CONTEXT_MT "luacrawl.Context"

typedef struct l_handle {
  uint64_t handle;
  int session; /* a job session: only closed by close_session or the job's end */
  int released;
} l_handle;

static lc_job *check_job(lua_State *L) {
  lc_job *j = lc_job_get(L);
  if (!j || !j->sh->cache) luaL_error(L, "the luacrawl engine is not running");
  return j;
}

/* stack: +1 userdata */
static l_handle *push_handle(lua_State *L, const char *mt, uint64_t handle, int session) {
  l_handle *h = lua_newuserdatauv(L, sizeof *h, 1);
  h->handle = handle;
  h->session = session;
  h->released = 0;
  luaL_setmetatable(L, mt);
  return h;
}

/* A live handle of type mt at arg 1, or a raised error that says what is wrong. */
static l_handle *check_live(lua_State *L, const char *mt, lc_job **pj) {
  l_handle *h = luaL_checkudata(L, 1, mt);
  lc_job *j = check_job(L);
  if (h->released || !lc_cache_handle_live(j->sh->cache, h->handle))
    luaL_error(L, "%s used after its release", mt[9] == 'P' ? "page" : "context");
  if (!lc_job_owns_handle(j, h->handle))
    luaL_error(L, "this %s belongs to another job", mt[9] == 'P' ? "page" : "context");
  *pj = j;
  return h;
}

/* --------------------------------------------------------------- acquire */

typedef struct acq_op {
  lc_task *t;
  lc_job *j;
  uint64_t handle;
  const char *mt;
  int session;
  char *session_name; /* malloc'ed, for a session: its waiters are woken when this ends */
} acq_op;

static void session_wake(lc_job *j, const char *name);

static void acq_free(acq_op *op) {
  free(op->session_name);
  free(op);
}

static void acq_ready(void *ud, uint64_t handle, int err, const char *msg) {
  acq_op *op = ud;
  lua_State *co = lc_task_thread(op->t);
  if (err) {
    lua_pushnil(co);
    lua_pushstring(co, msg ? msg : "cannot open a browser context");
  } else {
    push_handle(co, op->mt, handle, op->session);
    if (op->mt[9] == 'P') op->j->sh->gen_pages++;
    if (op->session) lua_pushboolean(co, 1); /* created */
  }
  lc_task *t = op->t;
  int n = err || op->session ? 2 : 1;
  if (op->session_name) session_wake(op->j, op->session_name);
  acq_free(op);
  lc_task_op_complete(t, n);
}

static void acq_cancel(lc_task *t, void *data) {
  acq_op *op = data;
  (void)t;
  /* Releasing the pending handle cancels its ready callback for good (and forgets the
   * session: those waiting for it look again). */
  lc_job *j = op->j;
  lc_cache_release(j->sh->cache, op->handle, lc_now(j->sh));
  if (op->session_name) session_wake(j, op->session_name);
  acq_free(op);
  lc_job_after_release(j);
}

/* Acquire for the running task: a page or context handle owned by the task, or (session
 * != NULL) the job's named session page. Stack: +1 handle (+ created for a session) | +2
 * nil, err. Nothing may follow the await: a yield without a continuation does not return. */
static int acquire(lua_State *L, lc_job *j, lc_task *t, const char *options, int want_page,
                   const char *session) {
  acq_op *op = calloc(1, sizeof *op);
  if (!op) return luaL_error(L, "out of memory");
  op->t = t;
  op->j = j;
  op->mt = want_page ? PAGE_MT : CONTEXT_MT;
  op->session = session != NULL;
  if (session && !(op->session_name = strdup(session))) {
    free(op);
    return luaL_error(L, "out of memory");
  }
  /* Contexts are the job's own: the job's id (or the partition the engine gave it, shared with
   * other jobs on purpose) is part of the key (a member of the options object the backend
   * ignores), so no cookie or cache of one job reaches another. */
  size_t olen = strlen(options);
  /* Under the host rules (the sandbox's, or the job's host_rules), a context without a proxy
   * of its own connects through the job's network guard (netguard.h): the rules hold for
   * every connection its pages make. */
  char guard[96] = "";
  lc_json_span pv;
  if (j->sb.rules && olen >= 2 && lc_json_member(options, olen, "proxy", &pv) != 0) {
    const char *url = lc_job_netguard_url(j);
    if (!url) {
      acq_free(op);
      lua_pushnil(L);
      lua_pushstring(L, "the host rules' network guard could not start");
      return 2;
    }
    snprintf(guard, sizeof guard, "\"proxy\":\"%s\",\"proxy_bypass\":\"<-loopback>\",", url);
  }
  char part[96];
  if (j->opts.partition)
    snprintf(part, sizeof part, "%s", j->opts.partition);
  else
    snprintf(part, sizeof part, "job %u", (unsigned)j->id);
  size_t klen = olen + strlen(guard) + strlen(part) + 20;
  char *keyed = olen >= 2 && options[0] == '{' ? malloc(klen) : NULL;
  if (!keyed) {
    acq_free(op);
    return luaL_error(L, olen >= 2 ? "out of memory" : "bad context options");
  }
  snprintf(keyed, klen, "{%s\"partition\":\"%s\"%s%s", guard, part, olen > 2 ? "," : "",
           options + 1);
  lc_task_op_begin(t, acq_cancel, op);
  int created = 0;
  uint64_t handle = session ? lc_cache_session_open(j->sh->cache, j->owner, session, keyed,
                                                    lc_now(j->sh), acq_ready, op, &created)
                            : lc_cache_acquire(j->sh->cache, lc_task_id(t), keyed, want_page,
                                               lc_now(j->sh), acq_ready, op);
  free(keyed);
  if (!handle) {
    lc_task_op_abort(t);
    acq_free(op);
    lua_pushnil(L);
    lua_pushstring(L, session ? "cannot open the session" : "out of memory");
    return 2;
  }
  if (lc_task_op_pending(t)) op->handle = handle; /* else ready already fired and freed op */
  return lc_task_op_await(L, t);
}

/* core.acquire(options_json, want_page) [async] -> Page|Context | nil, err */
static int l_core_acquire(lua_State *L) {
  lc_job *j = check_job(L);
  const char *options = luaL_checkstring(L, 1);
  int want_page = lua_toboolean(L, 2);
  lc_task *t = lc_task_check(L, want_page ? "opening a page" : "job:context()");
  if (j->stopping) {
    lua_pushnil(L);
    lua_pushliteral(L, "the job is stopping");
    return 2;
  }
  return acquire(L, j, t, options, want_page, NULL);
}

/* ------------------------------------------------------- waiting for another task's session */

/* A task waiting while another task opens or prepares a session: woken (its core.session
 * returns false: "look again") by any change of that session: its page became ready or
 * failed, its opener prepared it, gave up or was stopped, or it was closed. The wait is
 * the task's one pending operation; its cancel function unlinks it, so a killed waiter
 * leaves nothing behind. */
typedef struct lc_session_wait {
  struct lc_session_wait *next, **prevp; /* in j->session_waits */
  lc_task *t;
  char name[];
} lc_session_wait;

static void session_wait_unlink(lc_session_wait *w) {
  *w->prevp = w->next;
  if (w->next) w->next->prevp = w->prevp;
}

static void session_wait_cancel(lc_task *t, void *data) {
  lc_session_wait *w = data;
  (void)t;
  session_wait_unlink(w);
  free(w);
}

/* Completes every wait for session `name` (from a callback or a binding: runs no Lua). */
static void session_wake(lc_job *j, const char *name) {
  for (lc_session_wait *w = j->session_waits, *next; w; w = next) {
    next = w->next;
    if (strcmp(w->name, name) != 0) continue;
    session_wait_unlink(w);
    lc_task *t = w->t;
    free(w);
    lua_pushboolean(lc_task_thread(t), 0);
    lc_task_op_complete(t, 1);
  }
}

/* Suspend the running task until session `name` changes. Stack: the await's results. */
static int session_wait(lua_State *L, lc_job *j, lc_task *t, const char *name) {
  size_t n = strlen(name);
  lc_session_wait *w = malloc(sizeof *w + n + 1);
  if (!w) return luaL_error(L, "out of memory");
  memcpy(w->name, name, n + 1);
  w->t = t;
  w->next = j->session_waits;
  w->prevp = &j->session_waits;
  if (w->next) w->next->prevp = &w->next;
  j->session_waits = w;
  lc_task_op_begin(t, session_wait_cancel, w);
  return lc_task_op_await(L, t);
}

/* core.session(name, options_json) [async] -> Page, created | nil, err | false
 * The job's session page: created = true for the caller that opened it (it prepares the page,
 * then calls core.session_prepared(name)); false: it was opened and prepared before. While
 * another task opens or prepares it, the caller waits, and `false` alone means "something
 * changed, ask again". */
static int l_core_session(lua_State *L) {
  lc_job *j = check_job(L);
  const char *name = luaL_checkstring(L, 1);
  const char *options = luaL_checkstring(L, 2);
  lc_task *t = lc_task_check(L, "job:session()");
  uint64_t existing = lc_cache_session_find(j->sh->cache, j->owner, name);
  if (existing) {
    int st = lc_cache_handle_state(j->sh->cache, existing);
    lc_enpage *pg =
        st == 1 ? lc_bpool_page(j->sh->pool, lc_cache_handle_page(j->sh->cache, existing)) : NULL;
    /* Another request is opening it, or preparing its page: wait for that. */
    if (st == 0 || (pg && !lc_enpage_broken(pg) &&
                    !lc_cache_session_prepared(j->sh->cache, j->owner, name)))
      return session_wait(L, j, t, name);
    if (pg && !lc_enpage_broken(pg)) {
      push_handle(L, PAGE_MT, existing, 1);
      lua_pushboolean(L, 0);
      return 2;
    }
    /* Failed to open, or its page died (a crash): replace it with a new one. */
    lc_cache_session_close(j->sh->cache, j->owner, name, lc_now(j->sh));
    lc_job_after_release(j);
  }
  if (j->stopping) {
    lua_pushnil(L);
    lua_pushliteral(L, "the job is stopping");
    return 2;
  }
  return acquire(L, j, t, options, 1, name);
}

/* core.session_prepared(name) -> true | nil, err: the opener prepared the session's page;
 * those waiting for it get it now. */
static int l_core_session_prepared(lua_State *L) {
  lc_job *j = check_job(L);
  const char *name = luaL_checkstring(L, 1);
  int rc = lc_cache_session_set_prepared(j->sh->cache, j->owner, name);
  session_wake(j, name);
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "session '%s' is %s", name, rc == LC_CACHE_ENOENT ? "closed" : "not open");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.close_session(name) -> true | nil, err */
static int l_core_close_session(lua_State *L) {
  lc_job *j = check_job(L);
  const char *name = luaL_checkstring(L, 1);
  int rc = lc_cache_session_close(j->sh->cache, j->owner, name, lc_now(j->sh));
  session_wake(j, name);
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "no session named '%s'", name);
    return 2;
  }
  lc_job_after_release(j);
  lua_pushboolean(L, 1);
  return 1;
}

/* --------------------------------------------------------------- handles */

static int release_handle(lua_State *L, const char *mt, int quiet) {
  l_handle *h = luaL_checkudata(L, 1, mt);
  lc_job *j = lc_job_get(L);
  if (h->released || !j || !j->sh->cache) {
    if (quiet) return 0;
    lua_pushnil(L);
    lua_pushfstring(L, "%s already released", mt[9] == 'P' ? "page" : "context");
    return 2;
  }
  if (h->session) {
    /* A session lives until close_session or the job's end; dropping this reference to it
       (scope end, garbage) takes nothing back. */
    if (quiet) return 0;
    lua_pushnil(L);
    lua_pushliteral(L, "a session is closed with job:close_session(name)");
    return 2;
  }
  h->released = 1;
  if (!lc_cache_handle_live(j->sh->cache, h->handle)) {
    /* Already given back by the engine (the request ended): nothing to do. */
    if (quiet) return 0;
    lua_pushnil(L);
    lua_pushfstring(L, "%s already released", mt[9] == 'P' ? "page" : "context");
    return 2;
  }
  int rc = lc_cache_release(j->sh->cache, h->handle, lc_now(j->sh));
  lc_job_after_release(j);
  if (quiet) return 0;
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "release failed: the handle was not live");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* __gc may run at any allocation, inside any callback that pushes a value: it only queues
 * the release, which the resume point carries out (lc_job_idle_work). */
static int collect_handle(lua_State *L, const char *mt) {
  l_handle *h = luaL_checkudata(L, 1, mt);
  lc_job *j = lc_job_get(L);
  if (h->released || h->session || !j || !j->sh->cache) return 0;
  h->released = 1;
  lc_job_release_later(j, h->handle);
  return 0;
}

static int l_page_release(lua_State *L) { return release_handle(L, PAGE_MT, 0); }
static int l_page_close(lua_State *L) { return release_handle(L, PAGE_MT, 1); }
static int l_page_gc(lua_State *L) { return collect_handle(L, PAGE_MT); }
static int l_context_release(lua_State *L) { return release_handle(L, CONTEXT_MT, 0); }
static int l_context_close(lua_State *L) { return release_handle(L, CONTEXT_MT, 1); }
static int l_context_gc(lua_State *L) { return collect_handle(L, CONTEXT_MT); }

static lc_enpage *check_enpage(lua_State *L, lc_job **pj, l_handle **ph) {
  l_handle *h = check_live(L, PAGE_MT, pj);
  lc_enpage *pg = lc_bpool_page((*pj)->sh->pool, lc_cache_handle_page((*pj)->sh->cache, h->handle));
  if (ph) *ph = h;
  return pg;
}

/* One CDP command for a task: a page's (handle != 0) or the browser's. */
typedef struct cmd_op {
  lc_task *t;
  lc_job *j;
  uint64_t handle; /* the page handle, or 0 for a browser-level command */
  int gen;
  uint64_t id;
} cmd_op;

static void cmd_reply(void *ud, int err, char *r, size_t n) {
  cmd_op *op = ud;
  lua_State *co = lc_task_thread(op->t);
  lc_task *t = op->t;
  if (err) {
    if (err == LC_CDP_ETIMEOUT && op->handle) lc_cache_page_mark_bad(op->j->sh->cache, op->handle);
    lua_pushnil(co);
    lua_pushstring(co, r);
  } else {
    lua_pushlstring(co, r, n);
  }
  free(op);
  lc_task_op_complete(t, err ? 2 : 1);
}

static void cmd_cancel(lc_task *t, void *data) {
  cmd_op *op = data;
  (void)t;
  lc_bpool_cancel(op->j->sh->pool, op->gen, op->id);
  /* A page whose command was abandoned (deadline) is not trusted again. */
  if (op->handle) lc_cache_page_mark_bad(op->j->sh->cache, op->handle);
  free(op);
}

/* Send on the page `pg` (or the browser of generation `gen` when pg is NULL) and await the
 * answer. stack: +1 result_json | +2 nil, err */
static int cmd_await(lua_State *L, lc_job *j, lc_task *t, lc_enpage *pg, uint64_t handle,
                     int gen, const char *method, const char *params, int timeout,
                     size_t max_reply) {
  cmd_op *op = calloc(1, sizeof *op);
  if (!op) return luaL_error(L, "out of memory");
  op->t = t;
  op->j = j;
  op->handle = handle;
  op->gen = pg ? lc_enpage_gen(pg) : gen;
  lc_task_op_begin(t, cmd_cancel, op);
  int ms = lc_task_remaining_ms(t, timeout);
  op->id = pg ? lc_enpage_send(j->sh->pool, pg, method, params, ms, max_reply, cmd_reply, op)
              : lc_bpool_send(j->sh->pool, gen, method, params, ms, cmd_reply, op);
  if (!op->id) {
    lc_task_op_abort(t);
    free(op);
    lua_pushnil(L);
    lua_pushliteral(L, "the browser is not connected");
    return 2;
  }
  return lc_task_op_await(L, t);
}

/* page:_send(method, params_json [, timeout_ms [, max_reply]]) [async] -> result_json | nil, err
 * max_reply: the longest reply message accepted, in bytes (engine-side; a longer one fails
 * this command with "reply exceeds max_bytes (N)"). Default: no cap beyond the transport's. */
static int l_page_send(lua_State *L) {
  lc_job *j;
  l_handle *h;
  lc_enpage *pg = check_enpage(L, &j, &h);
  const char *method = luaL_checkstring(L, 2);
  const char *params = luaL_optstring(L, 3, "{}");
  int timeout = (int)luaL_optinteger(L, 4, 30000);
  lua_Integer max_reply = luaL_optinteger(L, 5, 0);
  luaL_argcheck(L, max_reply >= 0, 5, "max_reply must be >= 0");
  lc_task *t = lc_task_check(L, "page methods");
  if (!pg || lc_enpage_broken(pg)) {
    lua_pushnil(L);
    lua_pushstring(L, pg ? lc_enpage_broken(pg) : "page is gone (its browser crashed or closed)");
    return 2;
  }
  return cmd_await(L, j, t, pg, h->handle, 0, method, params, timeout, (size_t)max_reply);
}

/* One wait for a page event, for a task. The page is named by id: it may be freed before the
 * wait is cancelled. */
typedef struct event_op {
  lc_task *t;
  lc_bpool *pool;
  uint64_t page_id;
} event_op;

static void event_done(void *ud, const char *method, const char *params, size_t len,
                       const char *err) {
  event_op *op = ud;
  lua_State *co = lc_task_thread(op->t);
  if (err) {
    lua_pushnil(co);
    lua_pushstring(co, err);
  } else {
    lua_pushstring(co, method);
    lua_pushlstring(co, params, len);
  }
  lc_task *t = op->t;
  free(op);
  lc_task_op_complete(t, 2);
}

static void event_cancel(lc_task *t, void *data) {
  event_op *op = data;
  (void)t;
  lc_enpage *pg = lc_bpool_page(op->pool, op->page_id);
  if (pg) lc_enpage_cancel_wait(pg, op);
  free(op);
}

/* page:_event(timeout_ms) [async] -> method, params_json | nil, err */
static int l_page_event(lua_State *L) {
  lc_job *j;
  l_handle *h;
  lc_enpage *pg = check_enpage(L, &j, &h);
  int timeout = (int)luaL_checkinteger(L, 2);
  lc_task *t = lc_task_check(L, "page methods");
  if (!pg) {
    lua_pushnil(L);
    lua_pushliteral(L, "page is gone (its browser crashed or closed)");
    return 2;
  }
  char *method, *params;
  size_t len;
  if (lc_enpage_take_event(pg, &method, &params, &len)) {
    lua_pushstring(L, method);
    lua_pushlstring(L, params, len);
    free(method);
    free(params);
    return 2;
  }
  const char *broken = lc_enpage_broken(pg);
  if (broken) {
    lua_pushnil(L);
    lua_pushstring(L, broken);
    return 2;
  }
  event_op *op = malloc(sizeof *op);
  if (!op) return luaL_error(L, "out of memory");
  *op = (event_op){.t = t, .pool = j->sh->pool, .page_id = lc_cache_handle_page(j->sh->cache, h->handle)};
  int rc = lc_enpage_wait_event(pg, lc_task_remaining_ms(t, timeout), event_done, op);
  if (rc < 0) {
    free(op);
    return luaL_error(L, rc == -EBUSY ? "two tasks wait for events of one page" : "out of memory");
  }
  lc_task_op_begin(t, event_cancel, op);
  return lc_task_op_await(L, t);
}

static int l_page_clear_events(lua_State *L) {
  lc_job *j;
  lc_enpage *pg = check_enpage(L, &j, NULL);
  if (pg) lc_enpage_clear_events(pg);
  return 0;
}

/* Reads the list of Fetch patterns at `idx` ({ urlPattern =, resourceType =, requestStage = }
 * each, as Fetch.enable takes them) into a malloc'ed array whose strings the list keeps alive
 * (*out NULL when it is empty). Raises on misuse or out of memory. */
static size_t check_patterns(lua_State *L, int idx, lc_fetch_pattern **out) {
  *out = NULL;
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  size_t n = (size_t)lua_rawlen(L, idx);
  if (n == 0) return 0;
  lc_fetch_pattern *v = calloc(n, sizeof *v);
  if (!v) luaL_error(L, "out of memory");
  int top = lua_gettop(L);
  for (size_t i = 0; i < n; i++) {
    const char *bad = NULL;
    if (lua_rawgeti(L, idx, (lua_Integer)i + 1) != LUA_TTABLE) bad = "patterns must be tables";
    if (!bad && lua_getfield(L, -1, "urlPattern") != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TSTRING) bad = "urlPattern must be a string";
      v[i].url = lua_tostring(L, -1); /* the list keeps it */
    }
    if (!bad && lua_getfield(L, -2, "resourceType") != LUA_TNIL) {
      if (lua_type(L, -1) != LUA_TSTRING) bad = "resourceType must be a string";
      v[i].type = lua_tostring(L, -1);
    }
    if (!bad && lua_getfield(L, -3, "requestStage") != LUA_TNIL) {
      const char *st = lua_tostring(L, -1);
      if (lua_type(L, -1) != LUA_TSTRING || (strcmp(st, "Request") && strcmp(st, "Response")))
        bad = "requestStage must be \"Request\" or \"Response\"";
      else
        v[i].response = strcmp(st, "Response") == 0;
    }
    lua_settop(L, top);
    if (bad) {
      free(v);
      luaL_argerror(L, idx, bad);
    }
  }
  *out = v;
  return n;
}
/* page:_guard(on [, block_patterns]): the engine's Fetch rules of the page (bpool.h,
 * lc_enpage_set_guard): with `on`, its main-frame document requests go to the job's
 * check_navigation (Fetch must be enabled with a Document pattern); requests matching
 * block_patterns (Fetch patterns) fail at once. Raises on misuse or out of memory. */
static int l_page_guard(lua_State *L) {
  lc_job *j;
  lc_enpage *pg = check_enpage(L, &j, NULL);
  int on = lua_toboolean(L, 2);
  lc_fetch_pattern *v;
  size_t n = check_patterns(L, 3, &v);
  int rc = pg ? lc_enpage_set_guard(pg, on, v, n) : 0;
  free(v);
  if (rc != 0) return luaL_error(L, "out of memory");
  return 0;
}

/* page:_script_fetch(patterns): the Fetch patterns the script enabled itself; what they pause
 * (and the engine's rules let through) reaches the script as Fetch.requestPaused events.
 * Raises on misuse or out of memory. */
static int l_page_script_fetch(lua_State *L) {
  lc_job *j;
  lc_enpage *pg = check_enpage(L, &j, NULL);
  lc_fetch_pattern *v;
  size_t n = check_patterns(L, 2, &v);
  int rc = pg ? lc_enpage_set_script_fetch(pg, v, n) : 0;
  free(v);
  if (rc != 0) return luaL_error(L, "out of memory");
  return 0;
}

/* page:_engine_fetch() -> the engine's Fetch patterns of the page, as Fetch.enable takes them
 * ({ urlPattern, resourceType, requestStage } each): what a script's own Fetch.enable is
 * merged with. */
static int l_page_engine_fetch(lua_State *L) {
  lc_job *j;
  lc_enpage *pg = check_enpage(L, &j, NULL);
  size_t n = pg ? lc_enpage_engine_patterns(pg, NULL, 0) : 0;
  /* A userdata buffer: a memory error while the list is built leaves nothing to free. */
  lc_fetch_pattern *v = lua_newuserdatauv(L, (n ? n : 1) * sizeof *v, 0); /* stack: buf */
  if (n) lc_enpage_engine_patterns(pg, v, n);
  lua_createtable(L, (int)n, 0); /* stack: buf list */
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, v[i].url);
    lua_setfield(L, -2, "urlPattern");
    if (v[i].type) {
      lua_pushstring(L, v[i].type);
      lua_setfield(L, -2, "resourceType");
    }
    lua_pushstring(L, v[i].response ? "Response" : "Request");
    lua_setfield(L, -2, "requestStage");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_remove(L, -2); /* stack: list */
  return 1;
}

/* page:_subscribe(methods): the events the page buffers from now on (names, or prefixes
 * ending in '.'); replaces the earlier set. Raises on misuse or out of memory. */
static int l_page_subscribe(lua_State *L) {
  lc_job *j;
  lc_enpage *pg = check_enpage(L, &j, NULL);
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t n = (size_t)lua_rawlen(L, 2);
  const char **v = n ? calloc(n, sizeof *v) : NULL;
  if (n && !v) return luaL_error(L, "out of memory");
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    v[i] = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL; /* the table keeps it */
    lua_pop(L, 1);
    if (!v[i]) {
      free(v);
      return luaL_argerror(L, 2, "event methods must be strings");
    }
  }
  int rc = pg ? lc_enpage_subscribe(pg, v, n) : 0;
  free(v);
  if (rc != 0) return luaL_error(L, "out of memory");
  return 0;
}

/* page:_expect(url | nil): the URL page:navigate is about to load; its first request is not
 * paused for the navigation guard. */
static int l_page_expect(lua_State *L) {
  lc_job *j;
  lc_enpage *pg = check_enpage(L, &j, NULL);
  const char *url = luaL_optstring(L, 2, NULL);
  if (pg) lc_enpage_expect(pg, url);
  return 0;
}

static int l_page_broken(lua_State *L) {
  lc_job *j;
  lc_enpage *pg = check_enpage(L, &j, NULL);
  if (!pg) {
    lua_pushliteral(L, "page is gone (its browser crashed or closed)");
    return 1;
  }
  const char *b = lc_enpage_broken(pg);
  if (b)
    lua_pushstring(L, b);
  else
    lua_pushnil(L);
  return 1;
}

static int l_page_fresh(lua_State *L) {
  lc_job *j;
  l_handle *h = check_live(L, PAGE_MT, &j);
  lua_pushboolean(L, lc_cache_handle_page_fresh(j->sh->cache, h->handle));
  return 1;
}

static int l_page_mark_bad(lua_State *L) {
  lc_job *j;
  l_handle *h = check_live(L, PAGE_MT, &j);
  lc_cache_page_mark_bad(j->sh->cache, h->handle);
  return 0;
}

static int handle_info(lua_State *L, const char *mt) {
  lc_job *j;
  l_handle *h = check_live(L, mt, &j);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)h->handle);
  lua_setfield(L, -2, "handle");
  lua_pushinteger(L, (lua_Integer)lc_cache_handle_ctx(j->sh->cache, h->handle));
  lua_setfield(L, -2, "context");
  lua_pushstring(L, lc_cache_handle_signature(j->sh->cache, h->handle));
  lua_setfield(L, -2, "signature");
  const char *bctx = lc_cache_handle_browser_ctx(j->sh->cache, h->handle);
  if (bctx) {
    lua_pushstring(L, bctx);
    lua_setfield(L, -2, "browser_context");
  }
  const char *target = lc_cache_handle_target(j->sh->cache, h->handle);
  if (target) {
    lua_pushstring(L, target);
    lua_setfield(L, -2, "target");
  }
  lua_pushinteger(L, lc_cache_handle_browser_gen(j->sh->cache, h->handle));
  lua_setfield(L, -2, "browser");
  lua_pushboolean(L, h->session);
  lua_setfield(L, -2, "session");
  return 1;
}

static int l_page_info(lua_State *L) { return handle_info(L, PAGE_MT); }
static int l_context_info(lua_State *L) { return handle_info(L, CONTEXT_MT); }

static int l_handle_live(lua_State *L) {
  l_handle *h = lua_touserdata(L, 1);
  lc_job *j = lc_job_get(L);
  int live = h && (luaL_testudata(L, 1, PAGE_MT) || luaL_testudata(L, 1, CONTEXT_MT)) &&
             !h->released && j && j->sh->cache && lc_cache_handle_live(j->sh->cache, h->handle);
  lua_pushboolean(L, live);
  return 1;
}

static int l_handle_tostring(lua_State *L) {
  l_handle *h = lua_touserdata(L, 1);
  int page = luaL_testudata(L, 1, PAGE_MT) != NULL;
  lua_pushfstring(L, "luacrawl.%s (handle %I%s)", page ? "Page" : "Context", (lua_Integer)h->handle,
                  h->released ? ", released" : "");
  return 1;
}

/* --------------------------------------------------------------- job functions */

/* core.enqueue(url, depth [, data_json]) -> true | false, reason */
static int l_core_enqueue(lua_State *L) {
  lc_job *j = check_job(L);
  const char *url = luaL_checkstring(L, 1);
  int depth = (int)luaL_checkinteger(L, 2);
  const char *data = luaL_optstring(L, 3, NULL);
  const char *why = NULL;
  int rc = lc_job_enqueue(j, url, depth, data, &why);
  lua_pushboolean(L, rc > 0);
  if (rc > 0) return 1;
  lua_pushstring(L, why ? why : "not added");
  return 2;
}

/* core.normalize(url [, base]) -> url | nil, err */
static int l_core_normalize(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  const char *base = luaL_optstring(L, 2, NULL);
  char *out = NULL;
  const char *err = NULL;
  if (lc_url_normalize(base, url, &out, &err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err ? err : "bad URL");
    return 2;
  }
  lua_pushstring(L, out);
  free(out);
  return 1;
}

static int l_core_origin(lua_State *L) {
  char buf[2048];
  if (lc_url_origin(luaL_checkstring(L, 1), buf, sizeof buf) != 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "bad URL");
    return 2;
  }
  lua_pushstring(L, buf);
  return 1;
}

/* core.host_slot(url) -> 0 to go now, else ms to wait (delay_ms, Crawl-delay, Retry-After) */
static int l_core_host_slot(lua_State *L) {
  lc_job *j = check_job(L);
  const char *url = luaL_checkstring(L, 1);
  if (j->dist) return lc_job_dist_host_slot(L, j, url); /* on the server: may yield */
  lua_pushinteger(L, lc_job_host_slot(j, url));
  return 1;
}

/* core.robots_verdict(url) -> true (allowed, or robots off) | false (disallowed) | nil (not
 * read yet; its fetch starts when the concurrency leaves room) */
static int l_core_robots_verdict(lua_State *L) {
  lc_job *j = check_job(L);
  int v = lc_job_robots_verdict(j, luaL_checkstring(L, 1));
  if (v < 0)
    lua_pushnil(L);
  else
    lua_pushboolean(L, v);
  return 1;
}

/* Write one record, with lua-cjson's "\/" turned back into "/" (valid, but noisy in every URL).
 * Returns 0 or the sink's negative errno. */
static int emit_line(lua_State *L, lc_job *j, const char *json, size_t n) {
  char *line = malloc(n + 1);
  if (!line) return -ENOMEM;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (json[i] == '\\' && i + 1 < n) {
      if (json[i + 1] == '/') {
        line[o++] = '/';
      } else {
        line[o++] = json[i];
        line[o++] = json[i + 1];
      }
      i++;
      continue;
    }
    line[o++] = json[i];
  }
  int rc;
  if (j->store || j->dist) {
    /* --state, --frontier: a request's records wait for its acknowledgement, which commits them; a
     * record of no request is committed at once. Output is written from commits only. */
    lc_task *t = lc_task_current(L);
    if (!t) t = lc_sched_running(j->sched); /* a coroutine the handler made */
    rc = lc_job_hold_record(j, t, line, o);
    if (rc == -ENOENT) rc = lc_job_commit_record(j, line, o) < 0 ? -EIO : 0;
  } else {
    rc = lc_sink_write(j->sink, line, o);
    if (rc == 0) j->n.emitted++;
  }
  free(line);
  return rc;
}

/* After a write: keep a backlog moving; a broken output stops the run (once). stack: +2 on
 * failure (nil, message), else unchanged */
static int emit_result(lua_State *L, lc_job *j, int rc) {
  lc_job_output_kick(j);
  if (rc == 0) return 0;
  if (rc == -ENOBUFS) {
    lua_pushnil(L);
    lua_pushliteral(L, "the output backlog is full (the reader is not keeping up)");
    return 2;
  }
  if (rc != -EINVAL && rc != -ENOMEM) lc_job_output_failed(j, rc);
  lua_pushnil(L);
  lua_pushfstring(L, "cannot write the record: %s", strerror(-rc));
  return 2;
}

/* core.emit(json_line) -> true | nil, err */
static int l_core_emit(lua_State *L) {
  lc_job *j = check_job(L);
  size_t n;
  const char *json = luaL_checklstring(L, 1, &n);
  if (!j->sink) {
    lua_pushnil(L);
    lua_pushliteral(L, "no output");
    return 2;
  }
  int r = emit_result(L, j, emit_line(L, j, json, n));
  if (r) return r;
  lua_pushboolean(L, 1);
  return 1;
}

/* core.emit_all({json_line...}) -> true | nil, err: a request's records, all or none: they are
 * refused together when the output backlog cannot take them all, so a retried request never
 * writes some of them twice. Raises on a list that holds anything but strings. */
static int l_core_emit_all(lua_State *L) {
  lc_job *j = check_job(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  size_t total = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 1, i) != LUA_TSTRING) return luaL_argerror(L, 1, "records must be strings");
    total += lua_rawlen(L, -1) + 1;
    lua_pop(L, 1);
  }
  if (n > 0 && !j->sink) {
    lua_pushnil(L);
    lua_pushliteral(L, "no output");
    return 2;
  }
  /* With --state the records go to the state file; output is written from it later. */
  size_t backlog = j->store || j->dist ? 0 : lc_sink_backlog(j->sink);
  if (backlog > 0 && backlog + total > LC_OUTPUT_MAX_BACKLOG) return emit_result(L, j, -ENOBUFS);
  for (lua_Integer i = 1; i <= n; i++) {
    size_t len;
    lua_rawgeti(L, 1, i);
    const char *json = lua_tolstring(L, -1, &len);
    int rc = emit_line(L, j, json, len);
    lua_pop(L, 1);
    int r = emit_result(L, j, rc);
    if (r) return r;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.cleanup(max_contexts, force) -> number of contexts closed */
static int l_core_cleanup(lua_State *L) {
  lc_job *j = check_job(L);
  lc_cleanup_params p;
  memset(&p, 0, sizeof p);
  p.max_contexts = (int)luaL_optinteger(L, 1, j->sh->policy.max_contexts);
  luaL_argcheck(L, p.max_contexts >= 0, 1, "max_contexts must be >= 0");
  p.force = lua_isnoneornil(L, 2) ? j->sh->policy.force : lua_toboolean(L, 2);
  p.idle_ms = j->sh->policy.idle_ms;
  lua_pushinteger(L, lc_cache_cleanup(j->sh->cache, &p, lc_now(j->sh)));
  return 1;
}

static int l_core_log(lua_State *L) {
  int level = (int)luaL_checkinteger(L, 1);
  lc_log(level, "%s", luaL_checkstring(L, 2));
  return 0;
}

static int l_core_sleep(lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  lc_task *t = lc_task_check(L, "job:sleep()");
  return lc_task_sleep(L, t, (int)(ms < 0 ? 0 : ms > INT32_MAX ? INT32_MAX : ms));
}

static int l_core_now(lua_State *L) {
  lc_job *j = check_job(L);
  lua_pushinteger(L, lc_now(j->sh));
  return 1;
}

/* core.remaining_ms() -> ms left of the running request's deadline, or nil */
static int l_core_remaining(lua_State *L) {
  lc_task *t = lc_task_current(L);
  if (!t || !lc_task_deadline(t)) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushinteger(L, lc_task_remaining_ms(t, 0));
  return 1;
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

/* core.stats() -> table of counters (the live ones of stats.c's list) */
static int l_core_stats(lua_State *L) {
  lc_job *j = check_job(L);
  lc_stat st[LC_JOB_MAX_STATS];
  size_t n = lc_job_stats(j, st, LC_JOB_MAX_STATS);
  lua_createtable(L, 0, (int)n);
  for (size_t i = 0; i < n && i < LC_JOB_MAX_STATS; i++) {
    if (!lc_job_stat_live(&st[i])) continue;
    set_int(L, st[i].name, (lua_Integer)st[i].value);
  }
  return 1;
}

/* core.contexts() -> the cache's view, the policy hook's state.contexts shape (l_cache.h) */
static int l_core_contexts(lua_State *L) {
  lc_job *j = check_job(L);
  lc_l_cache_push_contexts(L, j->sh->cache, lc_now(j->sh));
  return 1;
}

/* core.browser_send(method [, params_json]) [async] -> result_json | nil, err
 * A browser-level command on the current browser (Target.getBrowserContexts, ...). */
static int l_core_browser_send(lua_State *L) {
  lc_job *j = check_job(L);
  const char *method = luaL_checkstring(L, 1);
  const char *params = luaL_optstring(L, 2, "{}");
  lc_task *t = lc_task_check(L, "browser commands");
  return cmd_await(L, j, t, NULL, 0, j->sh->gen, method, params, 15000, 0);
}

/* core.kill_browser() -> true: SIGKILL the current browser (fault drills) */
static int l_core_kill_browser(lua_State *L) {
  lc_job *j = check_job(L);
  lc_bpool_kill(j->sh->pool, j->sh->gen);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.b64decode(text) -> bytes | nil, err */
static int l_core_b64decode(lua_State *L) {
  size_t n, o;
  const char *s = luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, LC_BASE64_DECODED_MAX(n));
  if (lc_base64_decode(s, n, out, &o) != 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "invalid base64");
    return 2;
  }
  luaL_pushresultsize(&b, o);
  return 1;
}

static const luaL_Reg page_methods[] = {{"_send", l_page_send},
                                        {"_event", l_page_event},
                                        {"_clear_events", l_page_clear_events},
                                        {"_guard", l_page_guard},
                                        {"_script_fetch", l_page_script_fetch},
                                        {"_subscribe", l_page_subscribe},
                                        {"_engine_fetch", l_page_engine_fetch},
                                        {"_expect", l_page_expect},
                                        {"broken", l_page_broken},
                                        {"fresh", l_page_fresh},
                                        {"mark_bad", l_page_mark_bad},
                                        {"info", l_page_info},
                                        {"release", l_page_release},
                                        {"live", l_handle_live},
                                        {NULL, NULL}};

static const luaL_Reg context_methods[] = {{"info", l_context_info},
                                           {"release", l_context_release},
                                           {"live", l_handle_live},
                                           {NULL, NULL}};

static const luaL_Reg core_funcs[] = {{"acquire", l_core_acquire},
                                      {"session", l_core_session},
                                      {"close_session", l_core_close_session},
                                      {"session_prepared", l_core_session_prepared},
                                      {"enqueue", l_core_enqueue},
                                      {"normalize", l_core_normalize},
                                      {"origin", l_core_origin},
                                      {"emit", l_core_emit},
                                      {"emit_all", l_core_emit_all},
                                      {"cleanup", l_core_cleanup},
                                      {"log", l_core_log},
                                      {"sleep", l_core_sleep},
                                      {"now", l_core_now},
                                      {"remaining_ms", l_core_remaining},
                                      {"stats", l_core_stats},
                                      {"contexts", l_core_contexts},
                                      {"browser_send", l_core_browser_send},
                                      {"kill_browser", l_core_kill_browser},
                                      {"live", l_handle_live},
                                      {"b64decode", l_core_b64decode},
                                      {"host_slot", l_core_host_slot},
                                      {"robots_verdict", l_core_robots_verdict},
                                      {"sandbox", l_core_sandbox},
                                      {"sandbox_apply", l_core_sandbox_apply},
                                      {"fail", l_core_fail},
                                      {"host_refusal", l_core_host_refusal},
                                      {"net_refusal", l_core_net_refusal},
                                      {"set_host_rules", l_core_set_host_rules},
                                      {"host_rules", l_core_host_rules},
                                      {"memory", l_core_memory},
                                      {NULL, NULL}};

static void new_type(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction gc,
                     lua_CFunction close) {
  luaL_newmetatable(L, mt);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "methods"); /* lib code adds Lua methods to this table */
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, l_handle_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

int luaopen_luacrawl_core(lua_State *L) {
  new_type(L, PAGE_MT, page_methods, l_page_gc, l_page_close);
  new_type(L, CONTEXT_MT, context_methods, l_context_gc, l_context_close);
  luaL_newlib(L, core_funcs);
  luaL_getmetatable(L, PAGE_MT);
  lua_getfield(L, -1, "methods");
  lua_setfield(L, -3, "Page");
  lua_pop(L, 1);
  luaL_getmetatable(L, CONTEXT_MT);
  lua_getfield(L, -1, "methods");
  lua_setfield(L, -3, "Context");
  lua_pop(L, 1);
  lua_pushliteral(L, LC_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushinteger(L, LC_LOG_ERROR);
  lua_setfield(L, -2, "ERROR");
  lua_pushinteger(L, LC_LOG_WARN);
  lua_setfield(L, -2, "WARN");
  lua_pushinteger(L, LC_LOG_INFO);
  lua_setfield(L, -2, "INFO");
  lua_pushinteger(L, LC_LOG_DEBUG);
  lua_setfield(L, -2, "DEBUG");
  /* What job.run_request returns: the kind, then its value (job_int.h). */
  lua_pushinteger(L, LC_REQUEST_OK);
  lua_setfield(L, -2, "REQUEST_OK");
  lua_pushinteger(L, LC_REQUEST_FAILED);
  lua_setfield(L, -2, "REQUEST_FAILED");
  lua_pushinteger(L, LC_REQUEST_THROTTLED);
  lua_setfield(L, -2, "REQUEST_THROTTLED");
  return 1;
}
