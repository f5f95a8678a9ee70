/* l_policy.h: the cleanup policy as a job's Lua gives it: the `policy = {...}` table read into
 * an lc_policy (crawl/policy.h checks every value), and the on_cleanup hook called for a pass.
 * Owns: the registry reference to the hook (lc_policy.hook_ref), taken by lc_policy_from_lua
 * and released by lc_policy_release.
 * Everything that touches a user's Lua value runs inside a protected call: reading the table
 * and its fields (whose metamethods may raise), calling the hook (with a time budget) and
 * reading its answer. Nothing here calls a value's __tostring: values in messages are
 * described by their type. The hook never decides to close a context in use: the cache
 * refuses that, whatever the hook says. */
#ifndef LC_L_POLICY_H
#define LC_L_POLICY_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "ctxcache.h"
#include "policy.h"

/* Read and check the table at `idx` into *p (nil keeps *p). Returns 0, or -1 with *p
 * unchanged and a one-line message in `err`: one naming the bad field and value, or
 * "policy: reading policy.NAME raised an error: ..." when the table's metamethods raise.
 * Takes a registry reference to the hook; released by lc_policy_release. */
int lc_policy_from_lua(lua_State *L, int idx, lc_policy *p, char *err, size_t errlen);
void lc_policy_release(lua_State *L, lc_policy *p);

/* Decide one cleanup pass: the table policy, then the hook's answer if it gives one
 * (max_contexts, force, idle_ms, close). The hook runs in a protected call with a 250 ms
 * budget, and so does the reading of its answer; an answer is used whole or not at all.
 * `ids` (capacity `cap`) receives the ids the hook asked to close; out->close_ids points at
 * it. Returns 1 if the hook ran and its answer was used, 0 if the table policy applies (no
 * hook, or it answered nil or a non-table), -1 if the hook failed: it raised, overran its
 * budget, or its answer raised when read (logged with the traceback; the table policy
 * applies). Bad answer fields are ignored with a warning each. */
int lc_policy_decide(lua_State *L, const lc_policy *p, const lc_cache *cache, int64_t now_ms,
                     const lc_policy_state *st, lc_cleanup_params *out, uint64_t *ids, size_t cap);

#endif
