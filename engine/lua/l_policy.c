/* l_policy.c: the policy table read from Lua, and the on_cleanup hook (see l_policy.h).
 *
 * Each entry point pushes one C function and calls it with lua_pcall; that function does all
 * the Lua work on a C struct passed as a light userdata, so a metamethod that raises (the
 * table's __index, the answer's) becomes a message instead of a panic. The C side records
 * which field it was reading, so the message can name it. */
#include "l_policy.h"

#include <lauxlib.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "interrupt.h"
#include "l_cache.h"
#include "log.h"

_Static_assert(LC_POLICY_NO_HOOK == LUA_NOREF, "policy.h's no-hook value must be LUA_NOREF");

#define HOOK_BUDGET_NS (250ull * 1000 * 1000)

/* ---------------------------------------------------------------- values in messages */

/* Turns line breaks and other control bytes into spaces: the CLI prints one line. */
static void one_line(char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = ' ';
}

/* Describes the value at `idx` without running any of its metamethods (no __tostring, no
 * __name): a number or boolean as itself, a string quoted (its first 40 bytes), anything
 * else by its type ("a table"). */
static const char *describe(lua_State *L, int idx, char *buf, size_t n) {
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx))
        snprintf(buf, n, "%lld", (long long)lua_tointeger(L, idx));
      else
        snprintf(buf, n, "%.14g", (double)lua_tonumber(L, idx));
      break;
    case LUA_TBOOLEAN:
      snprintf(buf, n, "%s", lua_toboolean(L, idx) ? "true" : "false");
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      snprintf(buf, n, "'%.*s%s'", (int)(len > 40 ? 40 : len), s, len > 40 ? "..." : "");
      break;
    }
    default:
      snprintf(buf, n, "a %s", luaL_typename(L, idx));
  }
  one_line(buf);
  return buf;
}

/* The text of the error object at `idx`, without running its metamethods. */
static const char *error_text(lua_State *L, int idx, char *buf, size_t n) {
  char what[64];
  int ty = lua_type(L, idx);
  if (ty == LUA_TSTRING || ty == LUA_TNUMBER)
    snprintf(buf, n, "%s", lua_tostring(L, idx));
  else
    snprintf(buf, n, "(an error object that is %s)", describe(L, idx, what, sizeof what));
  return buf;
}

/* ---------------------------------------------------------------- the policy table */

typedef struct table_read {
  lc_policy p;         /* the caller's policy with the values read so far */
  const char *reading; /* the field being read, while a metamethod may run */
  char *err;
  size_t errlen;
  int bad; /* a bad field or value: the message is in err */
} table_read;

/* Reads the value on top (not nil) into r->p as field `f`; sets r->bad on a bad one. */
static void read_value(lua_State *L, const lc_policy_field *f, table_read *r) {
  char got[64];
  int isint = 0;
  lua_Integer v;
  switch (f->kind) {
    case LC_POLICY_INT:
      v = lua_tointegerx(L, -1, &isint);
      if (!isint) lc_policy_type_error(f, describe(L, -1, got, sizeof got), r->err, r->errlen);
      r->bad = !isint || lc_policy_set_int(&r->p, f->name, (int64_t)v, r->err, r->errlen) != 0;
      break;
    case LC_POLICY_BOOL:
      if (lua_type(L, -1) != LUA_TBOOLEAN) {
        lc_policy_type_error(f, describe(L, -1, got, sizeof got), r->err, r->errlen);
        r->bad = 1;
      } else {
        r->bad = lc_policy_set_bool(&r->p, f->name, lua_toboolean(L, -1), r->err, r->errlen) != 0;
      }
      break;
    case LC_POLICY_FUNCTION:
      if (lua_type(L, -1) != LUA_TFUNCTION) {
        lc_policy_type_error(f, describe(L, -1, got, sizeof got), r->err, r->errlen);
        r->bad = 1;
      }
      break;
  }
}

/* Protected: checks the table's keys (lua_next is raw: no metamethod runs), reads every
 * field (lua_getfield may run __index), and last, once nothing can fail, takes the reference
 * to the hook. stack: r table -> r table */
static int read_table(lua_State *L) {
  table_read *r = lua_touserdata(L, 1);
  char got[64];
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      snprintf(r->err, r->errlen, "policy has a key that is not a field name (%s)",
               describe(L, -1, got, sizeof got));
      r->bad = 1;
      return 0;
    }
    if (!lc_policy_field_find(lua_tostring(L, -1))) {
      snprintf(r->err, r->errlen, "policy has an unknown field %s",
               describe(L, -1, got, sizeof got));
      r->bad = 1;
      return 0;
    }
  }
  const lc_policy_field *f, *hook = NULL;
  for (size_t i = 0; (f = lc_policy_field_at(i)) != NULL; i++) {
    r->reading = f->name;
    int ty = lua_getfield(L, 2, f->name);
    r->reading = NULL;
    if (ty != LUA_TNIL) read_value(L, f, r);
    if (r->bad) return 0;
    if (ty == LUA_TFUNCTION && f->kind == LC_POLICY_FUNCTION)
      hook = f; /* stays on the stack until the end */
    else
      lua_pop(L, 1);
  }
  if (hook) r->p.hook_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int lc_policy_from_lua(lua_State *L, int idx, lc_policy *p, char *err, size_t errlen) {
  idx = lua_absindex(L, idx);
  if (lua_isnil(L, idx)) return 0;
  if (!lua_istable(L, idx)) {
    snprintf(err, errlen, "policy must be a table (got %s)", luaL_typename(L, idx));
    return -1;
  }
  table_read r = {.p = *p, .err = err, .errlen = errlen};
  int top = lua_gettop(L);
  lua_pushcfunction(L, read_table);
  lua_pushlightuserdata(L, &r);
  lua_pushvalue(L, idx);
  int status = lua_pcall(L, 2, 0, 0);
  if (status != LUA_OK) {
    char msg[300];
    error_text(L, -1, msg, sizeof msg);
    if (r.reading)
      snprintf(err, errlen, "policy: reading policy.%s raised an error: %s", r.reading, msg);
    else
      snprintf(err, errlen, "policy: %s", msg);
    one_line(err);
    lua_settop(L, top);
    return -1;
  }
  lua_settop(L, top);
  if (r.bad) return -1; /* read_table took no reference */
  if (r.p.hook_ref != p->hook_ref) luaL_unref(L, LUA_REGISTRYINDEX, p->hook_ref);
  *p = r.p;
  return 0;
}

void lc_policy_release(lua_State *L, lc_policy *p) {
  luaL_unref(L, LUA_REGISTRYINDEX, p->hook_ref);
  p->hook_ref = LC_POLICY_NO_HOOK;
}

/* ---------------------------------------------------------------- the hook */

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

/* The message handler: the message and a traceback (an error object that is not a string is
 * named by its type: no __tostring runs here). */
static int traceback(lua_State *L) {
  char buf[300];
  luaL_traceback(L, L, error_text(L, 1, buf, sizeof buf), 1);
  return 1;
}

/* stack: +1 state table */
static void push_state(lua_State *L, const lc_cache *cache, int64_t now_ms,
                       const lc_policy_state *st) {
  lua_createtable(L, 0, 6);
  lc_l_cache_push_contexts(L, cache, now_ms);
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

typedef struct hook_call {
  const lc_policy *p;
  const lc_cache *cache;
  int64_t now_ms;
  const lc_policy_state *st;
  lc_cleanup_params out; /* the decision being built; the caller's only once all is read */
  uint64_t *ids;
  size_t cap;
  const char *reading; /* the answer's field being read, while a metamethod may run */
  int used;            /* the hook answered a table */
} hook_call;

/* Reads the answer's `close` list (on top; raw: its elements are read with no metamethod). */
static void read_close_list(lua_State *L, hook_call *h) {
  char got[64];
  int list = lua_gettop(L);
  lua_Integer len = (lua_Integer)lua_rawlen(L, list);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_rawgeti(L, list, i);
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    int rc = isint ? lc_policy_add_close(&h->out, h->ids, h->cap, (int64_t)v) : -1;
    if (rc < 0)
      lc_warn("policy hook asked to close %s, which is not a context id: ignored",
              describe(L, -1, got, sizeof got));
    lua_settop(L, list);
    if (rc > 0) {
      lc_warn("policy hook asked to close more than %zu contexts: the rest wait for a later pass",
              h->cap);
      return;
    }
  }
}

/* Reads the hook's answer at `a` (a table) into h->out: each field it may set is checked as
 * the table's is; a bad one is ignored with a warning. */
static void read_answer(lua_State *L, hook_call *h, int a) {
  lc_policy pass = *h->p;
  char err[256], got[64];
  const lc_policy_field *f;
  for (size_t i = 0; (f = lc_policy_field_at(i)) != NULL; i++) {
    if (!f->in_answer) continue;
    h->reading = f->name;
    int ty = lua_getfield(L, a, f->name);
    h->reading = NULL;
    if (ty == LUA_TNIL) {
      lua_settop(L, a);
      continue;
    }
    int bad = 1, isint = 0;
    if (f->kind == LC_POLICY_INT) {
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      if (!isint)
        lc_policy_type_error(f, describe(L, -1, got, sizeof got), err, sizeof err);
      else
        bad = lc_policy_set_int(&pass, f->name, (int64_t)v, err, sizeof err) != 0;
    } else if (f->kind == LC_POLICY_BOOL) {
      if (ty != LUA_TBOOLEAN)
        lc_policy_type_error(f, describe(L, -1, got, sizeof got), err, sizeof err);
      else
        bad = lc_policy_set_bool(&pass, f->name, lua_toboolean(L, -1), err, sizeof err) != 0;
    }
    if (bad) lc_warn("policy hook answered a bad value, ignored: %s", err);
    lua_settop(L, a);
  }
  lc_policy_decide_table(&pass, &h->out, h->ids);
  h->reading = "close";
  int ty = lua_getfield(L, a, "close");
  h->reading = NULL;
  if (ty == LUA_TTABLE)
    read_close_list(L, h);
  else if (ty != LUA_TNIL)
    lc_warn("policy hook answered close = %s, not a list of context ids: ignored",
            describe(L, -1, got, sizeof got));
  lua_settop(L, a);
  h->used = 1;
}

/* Protected: calls the hook with the state and reads its answer. stack: h -> h */
static int run_hook(lua_State *L) {
  hook_call *h = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->p->hook_ref);
  push_state(L, h->cache, h->now_ms, h->st);
  lua_call(L, 1, 1); /* stack: h answer */
  if (lua_istable(L, 2))
    read_answer(L, h, 2);
  else if (!lua_isnil(L, 2))
    lc_warn("policy hook returned a %s, not a table or nil: ignored", luaL_typename(L, 2));
  return 0;
}

int lc_policy_decide(lua_State *L, const lc_policy *p, const lc_cache *cache, int64_t now_ms,
                     const lc_policy_state *st, lc_cleanup_params *out, uint64_t *ids, size_t cap) {
  lc_policy_decide_table(p, out, ids);
  if (p->hook_ref == LC_POLICY_NO_HOOK) return 0;
  hook_call h = {.p = p, .cache = cache, .now_ms = now_ms, .st = st, .ids = ids, .cap = cap};
  h.out = *out;
  lua_Hook was_hook = lua_gethook(L);
  int was_mask = lua_gethookmask(L), was_count = lua_gethookcount(L);
  int top = lua_gettop(L);
  lua_pushcfunction(L, traceback);
  lua_pushcfunction(L, run_hook);
  lua_pushlightuserdata(L, &h);
  hook_started = uv_hrtime();
  lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1000);
  int status = lua_pcall(L, 1, 0, top + 1);
  lua_sethook(L, was_hook, was_mask, was_count);
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (!msg) msg = "(no message)";
    if (h.reading)
      lc_warn("policy hook failed, the table policy applies: reading its answer's %s: %s",
              h.reading, msg);
    else
      lc_warn("policy hook failed, the table policy applies: %s", msg);
    lua_settop(L, top);
    lc_policy_decide_table(p, out, ids);
    return -1;
  }
  lua_settop(L, top);
  if (!h.used) return 0;
  *out = h.out;
  return 1;
}
