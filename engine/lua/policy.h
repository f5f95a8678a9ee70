/* policy.h: the cleanup policy a job sets in Lua, validated, and its optional hook.
 * Owns: the policy values and the registry reference to the on_cleanup hook. The hook runs in
 * a protected call with a time budget; whatever it returns is checked, and a hook that raises
 * or misbehaves is logged (with its traceback) and the table policy applies. It never decides
 * to close a context in use: the cache refuses that, whatever the hook says. */
#ifndef LC_POLICY_H
#define LC_POLICY_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "ctxcache.h"

typedef struct lc_policy {
  int max_contexts;              /* idle contexts kept open, >= 0 */
  int force;                     /* may close refcount-0 contexts that still keep idle pages */
  int64_t idle_ms;               /* close contexts (and idle pages) unused this long; 0: never */
  int64_t max_pages_per_browser; /* recycle the browser after this many pages; 0: never */
  int64_t max_browser_rss_mb;    /* recycle when the browser tree's RSS passes this; 0: never */
  int64_t max_browser_pss_mb;    /* recycle when the browser tree's PSS passes this; 0: never */
  int max_idle_pages;            /* idle pages kept for reuse, all contexts together */
  int adaptive_idle_pages;       /* keep fewer while they are not reused (default on) */
  int64_t max_pages_per_context; /* retire a context after this many pages; 0: never */
  int close_timeout_ms;          /* a close the browser does not answer within this is lost */
  int hook_ref;                  /* LUA_NOREF when no on_cleanup */
} lc_policy;

/* Defaults: max_contexts 4, force false, idle_ms 30000, no recycling, no hook. */
void lc_policy_defaults(lc_policy *p);

/* Read and validate the table at `idx` (nil keeps the defaults). Returns 0, or -1 with a
 * message naming the bad field in `err`. Takes a registry reference to the hook; released by
 * lc_policy_release. */
int lc_policy_from_lua(lua_State *L, int idx, lc_policy *p, char *err, size_t errlen);
void lc_policy_release(lua_State *L, lc_policy *p);

/* Decide one cleanup pass: the table policy, then the hook's answer if it gives a valid one
 * (max_contexts, force, idle_ms, close).
 * `ids` (capacity `cap`) receives the ids the hook asked to close; out->close_ids points at
 * it. Returns 1 if the hook ran and was used, 0 if the table policy applies, -1 if the hook
 * failed (already logged). */
typedef struct lc_policy_state {
  double browser_rss_mb, browser_pss_mb; /* the last sample; 0 when not sampled */
  uint64_t pages_served;                 /* by the current browser */
} lc_policy_state;

int lc_policy_decide(lua_State *L, const lc_policy *p, const lc_cache *cache, int64_t now_ms,
                     const lc_policy_state *st, lc_cleanup_params *out, uint64_t *ids, size_t cap);

#endif
