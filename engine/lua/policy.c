/* policy.c: cleanup policy validation and the on_cleanup hook (see policy.h). */
#include "policy.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "interrupt.h"
#include "log.h"

#define HOOK_BUDGET_NS (250ull * 1000 * 1000)

void lc_policy_defaults(lc_policy *p) {
  memset(p, 0, sizeof *p);
  p->max_contexts = 4;
  p->idle_ms = 30000;
  p->max_idle_pages = 8;
  p->adaptive_idle_pages = 1;
  p->close_timeout_ms = 5000;
  p->hook_ref = LUA_NOREF;
}

/* Reads an integer field in [lo, hi]; absent leaves *out. stack: unchanged */
static int int_field(lua_State *L, int t, const char *name, int64_t lo, int64_t hi, int64_t *out,
                     char *err, size_t n) {
  int ty = lua_getfield(L, t, name);
  int rc = 0;
  if (ty != LUA_TNIL) {
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < lo || v > hi) {
      snprintf(err, n, "policy.%s must be an integer from %lld to %lld (got %s)", name,
               (long long)lo, (long long)hi, luaL_tolstring(L, -1, NULL));
      lua_pop(L, 1);
      rc = -1;
    } else {
      *out = v;
    }
  }
  lua_pop(L, 1);
  return rc;
}

int lc_policy_from_lua(lua_State *L, int idx, lc_policy *p, char *err, size_t errlen) {
  idx = lua_absindex(L, idx);
  if (lua_isnil(L, idx)) return 0;
  if (!lua_istable(L, idx)) {
    snprintf(err, errlen, "policy must be a table (got %s)", luaL_typename(L, idx));
    return -1;
  }
  static const char *const known[] = {"max_contexts",
                                      "force",
                                      "idle_ms",
                                      "max_pages_per_browser",
                                      "max_browser_rss_mb",
                                      "max_browser_pss_mb",
                                      "max_pages_per_context",
                                      "on_cleanup",
                                      "max_idle_pages",
                                      "adaptive_idle_pages",
                                      "close_timeout_ms",
                                      NULL};
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int ok = 0;
    if (lua_type(L, -2) == LUA_TSTRING) {
      for (int i = 0; known[i]; i++)
        if (strcmp(lua_tostring(L, -2), known[i]) == 0) ok = 1;
    }
    if (!ok) {
      snprintf(err, errlen, "policy has an unknown field '%s'", luaL_tolstring(L, -2, NULL));
      lua_pop(L, 3);
      return -1;
    }
    lua_pop(L, 1);
  }
  int64_t v;
  v = p->max_contexts;
  if (int_field(L, idx, "max_contexts", 0, 1000000, &v, err, errlen)) return -1;
  p->max_contexts = (int)v;
  if (int_field(L, idx, "idle_ms", 0, INT64_MAX / 2, &p->idle_ms, err, errlen)) return -1;
  if (int_field(L, idx, "max_pages_per_browser", 0, INT64_MAX / 2, &p->max_pages_per_browser, err,
                errlen))
    return -1;
  if (int_field(L, idx, "max_browser_rss_mb", 0, 1 << 30, &p->max_browser_rss_mb, err, errlen))
    return -1;
  if (int_field(L, idx, "max_browser_pss_mb", 0, 1 << 30, &p->max_browser_pss_mb, err, errlen))
    return -1;
  if (int_field(L, idx, "max_pages_per_context", 0, 1 << 30, &p->max_pages_per_context, err,
                errlen))
    return -1;
  v = p->max_idle_pages;
  if (int_field(L, idx, "max_idle_pages", 0, 10000, &v, err, errlen)) return -1;
  p->max_idle_pages = (int)v;
  v = p->close_timeout_ms;
  if (int_field(L, idx, "close_timeout_ms", 1, 600000, &v, err, errlen)) return -1;
  p->close_timeout_ms = (int)v;
  int ty = lua_getfield(L, idx, "force");
  if (ty != LUA_TNIL && ty != LUA_TBOOLEAN) {
    snprintf(err, errlen, "policy.force must be a boolean (got %s)", luaL_typename(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  p->force = lua_toboolean(L, -1);
  lua_pop(L, 1);
  ty = lua_getfield(L, idx, "adaptive_idle_pages");
  if (ty != LUA_TNIL && ty != LUA_TBOOLEAN) {
    snprintf(err, errlen, "policy.adaptive_idle_pages must be a boolean (got %s)",
             luaL_typename(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  if (ty == LUA_TBOOLEAN) p->adaptive_idle_pages = lua_toboolean(L, -1);
  lua_pop(L, 1);
  ty = lua_getfield(L, idx, "on_cleanup");
  if (ty != LUA_TNIL && ty != LUA_TFUNCTION) {
    snprintf(err, errlen, "policy.on_cleanup must be a function (got %s)", luaL_typename(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  if (ty == LUA_TFUNCTION) {
    luaL_unref(L, LUA_REGISTRYINDEX, p->hook_ref);
    p->hook_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  } else {
    lua_pop(L, 1);
  }
  return 0;
}

void lc_policy_release(lua_State *L, lc_policy *p) {
  luaL_unref(L, LUA_REGISTRYINDEX, p->hook_ref);
  p->hook_ref = LUA_NOREF;
}

static uint64_t hook_started;

static void budget_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  if (lc_interrupt_pending()) {
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "interrupted (a signal stops the job)");
  }
  if (uv_hrtime() - hook_started > HOOK_BUDGET_NS) {
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1); /* a pcall in the hook cannot swallow this */
    luaL_error(L, "policy hook ran longer than %d ms", (int)(HOOK_BUDGET_NS / 1000000));
  }
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : luaL_tolstring(L, 1, NULL), 1);
  return 1;
}

/* stack: +1 state table */
static void push_state(lua_State *L, const lc_cache *cache, int64_t now_ms,
                       const lc_policy_state *st) {
  lc_cache_ctx_info info[256];
  size_t total = 0;
  size_t n = lc_cache_snapshot(cache, info, 256, &total, now_ms);
  lua_createtable(L, 0, 6);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 10);
    lua_pushinteger(L, (lua_Integer)info[i].id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, info[i].signature);
    lua_setfield(L, -2, "signature");
    lua_pushinteger(L, info[i].refcount);
    lua_setfield(L, -2, "refcount");
    lua_pushinteger(L, info[i].pages);
    lua_setfield(L, -2, "pages");
    lua_pushinteger(L, info[i].idle_pages);
    lua_setfield(L, -2, "idle_pages");
    lua_pushinteger(L, info[i].idle_ms);
    lua_setfield(L, -2, "idle_ms");
    lua_pushinteger(L, (lua_Integer)info[i].uses);
    lua_setfield(L, -2, "uses");
    lua_pushinteger(L, info[i].age_ms);
    lua_setfield(L, -2, "age_ms");
    lua_pushinteger(L, (lua_Integer)info[i].page_uses);
    lua_setfield(L, -2, "page_uses");
    lua_pushboolean(L, info[i].retired);
    lua_setfield(L, -2, "retired");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "contexts");
  lua_pushnumber(L, st->browser_rss_mb);
  lua_setfield(L, -2, "browser_rss_mb");
  lua_pushnumber(L, st->browser_pss_mb);
  lua_setfield(L, -2, "browser_pss_mb");
  lua_pushinteger(L, (lua_Integer)st->pages_served);
  lua_setfield(L, -2, "pages_served");
  lc_cache_stats cs;
  lc_cache_get_stats(cache, &cs);
  lua_pushinteger(L, cs.idle_pages);
  lua_setfield(L, -2, "idle_pages");
  lua_pushinteger(L, cs.idle_target);
  lua_setfield(L, -2, "idle_target");
}

int lc_policy_decide(lua_State *L, const lc_policy *p, const lc_cache *cache, int64_t now_ms,
                     const lc_policy_state *st, lc_cleanup_params *out, uint64_t *ids, size_t cap) {
  memset(out, 0, sizeof *out);
  out->max_contexts = p->max_contexts;
  out->force = p->force;
  out->idle_ms = p->idle_ms;
  out->close_ids = ids;
  if (p->hook_ref == LUA_NOREF) return 0;
  int top = lua_gettop(L);
  lua_pushcfunction(L, traceback);
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->hook_ref);
  push_state(L, cache, now_ms, st);
  hook_started = uv_hrtime();
  lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1000);
  int status = lua_pcall(L, 1, 1, top + 1);
  lua_sethook(L, NULL, 0, 0);
  if (status != LUA_OK) {
    lc_warn("policy hook failed, the table policy applies: %s", lua_tostring(L, -1));
    lua_settop(L, top);
    return -1;
  }
  int used = 0;
  if (lua_istable(L, -1)) {
    used = 1;
    int r = lua_gettop(L);
    int ty = lua_getfield(L, r, "max_contexts");
    if (ty != LUA_TNIL) {
      int isint = 0;
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      if (isint && v >= 0 && v <= 1000000)
        out->max_contexts = (int)v;
      else
        lc_warn("policy hook returned a bad max_contexts (%s): ignored",
                luaL_tolstring(L, -1, NULL));
    }
    lua_settop(L, r);
    ty = lua_getfield(L, r, "idle_ms");
    if (ty != LUA_TNIL) {
      int isint = 0;
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      if (isint && v >= 0)
        out->idle_ms = v;
      else
        lc_warn("policy hook returned a bad idle_ms (%s): ignored", luaL_tolstring(L, -1, NULL));
    }
    lua_settop(L, r);
    ty = lua_getfield(L, r, "force");
    if (ty == LUA_TBOOLEAN)
      out->force = lua_toboolean(L, -1);
    else if (ty != LUA_TNIL)
      lc_warn("policy hook returned a non-boolean force: ignored");
    lua_settop(L, r);
    ty = lua_getfield(L, r, "close");
    if (ty == LUA_TTABLE) {
      lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
      for (lua_Integer i = 1; i <= len && out->n_close_ids < cap; i++) {
        lua_rawgeti(L, -1, i);
        int isint = 0;
        lua_Integer v = lua_tointegerx(L, -1, &isint);
        if (isint && v > 0)
          ids[out->n_close_ids++] = (uint64_t)v;
        else
          lc_warn("policy hook asked to close '%s', which is not a context id: ignored",
                  luaL_tolstring(L, -1, NULL));
        lua_settop(L, r + 1);
      }
    } else if (ty != LUA_TNIL) {
      lc_warn("policy hook returned a non-table close: ignored");
    }
  } else if (!lua_isnil(L, -1)) {
    lc_warn("policy hook returned a %s, not a table or nil: ignored", luaL_typename(L, -1));
  }
  lua_settop(L, top);
  return used;
}
