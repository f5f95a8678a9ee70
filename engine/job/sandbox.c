/* sandbox.c: the C half of the sandbox (docs/API.md, "Sandbox"); lib/luacrawl/sandbox.lua is
 * the Lua half (the script's environment, the guarded library, the Lua-side budgets).
 * Owns: the job's counting lua_Alloc and its memory cap, the budgets the engine enforces in C
 * (instructions through the scheduler's count hook, memory, the job's wall-clock time), the
 * host rules on addresses (addr.h), and the bindings boot.lua uses to turn the sandbox on.
 * A job-level budget that trips fails the job (lc_job_fail: exit 1, every reference given
 * back by the normal shutdown); the engine and other jobs live on. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "job_int.h"
#include "log.h"
#include "url.h"

#define MEM_GRACE \
  ((size_t)16 << 20) /* what the engine may still allocate to unwind after a refusal */

/* The allocator of every job state (Lua's own l_alloc, counting): an allocation that would
 * take the heap past the cap returns NULL, which Lua turns into a memory error in the code
 * that asked. Shrinking and freeing never fail. */
void *lc_job_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  lc_sandbox *sb = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    sb->mem_used -= old;
    return NULL;
  }
  if (nsize > old && sb->mem_cap && sb->mem_used - old + nsize > sb->mem_cap) {
    if (!sb->mem_hit) {
      sb->mem_hit = 1;
      sb->mem_cap += MEM_GRACE; /* the failing code unwinds, the engine's finalizers run */
    }
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (!p) return NULL;
  sb->mem_used = sb->mem_used - old + nsize;
  return p;
}

/* Turn the sandbox on before the script loads (--sandbox): the default budgets hold while it
 * runs its chunk; boot.lua applies the job table's once it is validated. */
void lc_job_sandbox_begin(lc_job *j) {
  lc_sandbox *sb = &j->sb;
  sb->on = 1;
  sb->rules = 1;
  sb->mem_cap = (size_t)LC_SANDBOX_MEMORY_MB << 20;
  if (sb->mem_used + MEM_GRACE > sb->mem_cap) sb->mem_cap = sb->mem_used + MEM_GRACE;
  lc_sched_set_instruction_budget(j->sched, LC_SANDBOX_INSTRUCTIONS);
  lc_sched_arm(j->sched, j->L);
}

/* Why the job must stop now, or NULL: a job-level budget tripped. */
static const char *tripped(lc_job *j, char *buf, size_t n) {
  lc_sandbox *sb = &j->sb;
  if (!sb->on) return NULL;
  if (sb->mem_hit) {
    snprintf(buf, n, "budget 'memory_mb' exceeded: the job's Lua heap reached its cap of %lld MB",
             (long long)sb->memory_mb);
    return buf;
  }
  if (sb->job_ms > 0 && j->started_ms && lc_now(j->sh) - (int64_t)j->started_ms > sb->job_ms) {
    snprintf(buf, n, "budget 'job_ms' exceeded: the job ran longer than %lld ms",
             (long long)sb->job_ms);
    return buf;
  }
  return NULL;
}

void lc_job_sandbox_check(lc_job *j) {
  char buf[200];
  const char *why = tripped(j, buf, sizeof buf);
  if (why && !j->failed) {
    lc_error("%s", why);
    lc_job_fail(j, why);
  }
}

/* The message of a setup that a budget stopped, or NULL. */
const char *lc_job_sandbox_setup_failure(lc_job *j, char *buf, size_t n) {
  if (!j->sb.on) return NULL;
  if (j->sb.mem_hit) {
    snprintf(buf, n, "budget 'memory_mb' exceeded while the script loaded (cap %lld MB)",
             (long long)(j->sb.memory_mb ? j->sb.memory_mb : LC_SANDBOX_MEMORY_MB));
    return buf;
  }
  if (lc_sched_budget_hit(j->sched)) {
    snprintf(buf, n, "budget 'instructions' exceeded while the script loaded");
    return buf;
  }
  return NULL;
}

/* The proxy URL of the job's network guard, started on first use; NULL if it cannot start. */
const char *lc_job_netguard_url(lc_job *j) {
  lc_sandbox *sb = &j->sb;
  if (!sb->guard && j->opts.guard) sb->guard = j->opts.guard; /* the partition's */
  if (!sb->guard && !sb->guard_failed) {
    char err[200], tag[80] = "";
    if (j->opts.log_tag) snprintf(tag, sizeof tag, "[%s] ", j->opts.log_tag);
    lc_netguard_opts o = {.allow_private = sb->allow_private,
                          .allow_hosts = (const char *const *)sb->allow_hosts,
                          .log_tag = tag};
    sb->guard = lc_netguard_new(j->sh->loop, &o, err, sizeof err);
    if (!sb->guard) {
      sb->guard_failed = 1;
      lc_error("%s", err);
    }
  }
  return lc_netguard_url(sb->guard);
}

void lc_job_sandbox_free(lc_job *j) {
  if (j->sb.guard != j->opts.guard) lc_netguard_close(j->sb.guard); /* a borrowed one stays */
  j->sb.guard = NULL;
  if (j->sb.allow_hosts)
    for (char **h = j->sb.allow_hosts; *h; h++) free(*h);
  free(j->sb.allow_hosts);
  j->sb.allow_hosts = NULL;
}

/* ---------------------------------------------------------------- bindings (luacrawl.core) */

/* core.net_refusal(host) -> nil | why the network guard refused the last connection to host.
 * core.net_refusal() -> refusals so far, and the newest one's host and reason. */
int l_core_net_refusal(lua_State *L) {
  lc_job *j = lc_job_get(L);
  lc_netguard *g = j ? j->sb.guard : NULL;
  if (lua_isnoneornil(L, 1)) {
    lc_netguard_stats st;
    lc_netguard_stats_get(g, &st);
    const char *host = NULL, *why = lc_netguard_last_refusal(g, &host);
    lua_pushinteger(L, (lua_Integer)st.refused);
    if (!why) return 1;
    lua_pushstring(L, host);
    lua_pushstring(L, why);
    return 3;
  }
  const char *why = lc_netguard_refusal(g, luaL_checkstring(L, 1));
  if (!why) return 0;
  lua_pushstring(L, why);
  return 1;
}

/* core.set_host_rules([allowed_hosts]): the host rules on, with an allow list of hosts
 * ("a.com", "*.b.org"; boot.lua has validated them) or none, before any context exists. */
int l_core_set_host_rules(lua_State *L) {
  lc_job *j = lc_job_get(L);
  if (!j) return luaL_error(L, "internal: no job");
  if (j->sb.guard) return luaL_error(L, "internal: host rules set after the guard started");
  char **v = NULL;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    if (!(v = calloc((size_t)n + 1, sizeof *v))) return luaL_error(L, "out of memory");
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, 1, i);
      const char *h = lua_tostring(L, -1);
      if (!h || !(v[i - 1] = strdup(h))) {
        for (lua_Integer k = 0; k < i; k++) free(v[k]);
        free(v);
        return luaL_error(L, h ? "out of memory" : "internal: an allowed host is not a string");
      }
      lua_pop(L, 1);
    }
  }
  if (j->sb.allow_hosts)
    for (char **h = j->sb.allow_hosts; *h; h++) free(*h);
  free(j->sb.allow_hosts);
  j->sb.allow_hosts = v;
  j->sb.rules = 1;
  return 0;
}

/* core.host_rules() -> whether the host rules are on (the sandbox, or the job's host_rules) */
int l_core_host_rules(lua_State *L) {
  lc_job *j = lc_job_get(L);
  lua_pushboolean(L, j && j->sb.rules);
  return 1;
}

/* core.sandbox() -> on, allow_private */
int l_core_sandbox(lua_State *L) {
  lc_job *j = lc_job_get(L);
  lua_pushboolean(L, j && j->sb.on);
  lua_pushboolean(L, j && j->sb.allow_private);
  return 2;
}

static int64_t budget_field(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  if (!lua_isinteger(L, -1)) luaL_error(L, "internal: budgets.%s unset", k);
  int64_t v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* core.sandbox_apply(budgets): the sandbox on (it may only be turned on) with these budgets,
 * validated by boot.lua. Also protects the engine's metatables and the string metatable. */
int l_core_sandbox_apply(lua_State *L) {
  lc_job *j = lc_job_get(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!j) return luaL_error(L, "internal: no job");
  lc_sandbox *sb = &j->sb;
  int64_t insns = budget_field(L, 1, "instructions");
  sb->memory_mb = budget_field(L, 1, "memory_mb");
  sb->job_ms = budget_field(L, 1, "job_ms");
  sb->on = 1;
  sb->rules = 1; /* the host rules are on in the sandbox, always */
  sb->mem_cap = (size_t)sb->memory_mb << 20;
  if (sb->mem_used + MEM_GRACE > sb->mem_cap && sb->mem_hit) sb->mem_cap = sb->mem_used + MEM_GRACE;
  lc_sched_set_instruction_budget(j->sched, insns);
  lc_sched_arm(j->sched, j->L);
  /* getmetatable on a page, a context or a string gives false: no method table of the
   * engine's can be read or changed through a value the script holds. */
  const char *types[] = {"luacrawl.Page", "luacrawl.Context"};
  for (size_t i = 0; i < 2; i++) {
    luaL_getmetatable(L, types[i]);
    if (lua_istable(L, -1)) {
      lua_pushboolean(L, 0);
      lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
  }
  lua_pushliteral(L, "");
  if (lua_getmetatable(L, -1)) {
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

/* core.fail(message): a job-level budget tripped in Lua: the job stops (exit 1). */
int l_core_fail(lua_State *L) {
  lc_job *j = lc_job_get(L);
  const char *msg = luaL_checkstring(L, 1);
  if (j && !j->failed) {
    lc_error("%s", msg);
    lc_job_fail(j, msg);
  }
  return 0;
}

/* core.host_refusal(url) -> nil | reason: the host rules on a URL, before anything is sent:
 * the job's allowed_hosts, then the class of an IP literal (addr.h; a name is resolved later,
 * by the network guard, for every connection). Link-local and special-purpose addresses are
 * refused even with --allow-private: that is where cloud metadata endpoints live. nil when the
 * host rules are off. */
int l_core_host_refusal(lua_State *L) {
  lc_job *j = lc_job_get(L);
  const char *url = luaL_checkstring(L, 1);
  if (!j || !j->sb.rules) return 0;
  char host[300];
  if (j->sb.allow_hosts && lc_url_host(url, host, sizeof host) == 0) {
    char *end = host[0] == '[' ? strchr(host, ']') : strchr(host, ':');
    if (end) end[host[0] == '['] = 0;
    lc_netguard_opts o = {.allow_private = 1, .allow_hosts = (const char *const *)j->sb.allow_hosts};
    char why[200];
    if (lc_netguard_decide(&o, host, NULL, why, sizeof why) != 0) {
      lua_pushstring(L, why);
      return 1;
    }
  }
  int cls = lc_addr_class_of_url(url);
  int refuse = 0;
  switch (cls) {
    case LC_ADDR_NAME:
    case LC_ADDR_PUBLIC:
      break;
    case LC_ADDR_LOOPBACK:
    case LC_ADDR_PRIVATE:
      refuse = !j->sb.allow_private;
      break;
    default:
      refuse = 1;
  }
  if (!refuse) return 0;
  lua_pushfstring(
      L, "%s (the host rules refuse it%s)", lc_addr_class_name(cls),
      cls == LC_ADDR_LOOPBACK || cls == LC_ADDR_PRIVATE ? " without --allow-private" : "");
  return 1;
}

/* core.memory() -> bytes of the job's Lua heap */
int l_core_memory(lua_State *L) {
  lc_job *j = lc_job_get(L);
  lua_pushinteger(L, j ? (lua_Integer)j->sb.mem_used : 0);
  return 1;
}
