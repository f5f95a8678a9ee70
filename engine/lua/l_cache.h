/* l_cache.h: the context cache as Lua sees it. Owns the one Lua shape of a cache snapshot,
 * used by the policy hook's state.contexts and by job:contexts(). */
#ifndef LC_L_CACHE_H
#define LC_L_CACHE_H

#include <lua.h>
#include <stdint.h>

#include "ctxcache.h"

/* Pushes a list of the cache's open contexts, LRU first (at most LC_CACHE_SNAPSHOT_MAX):
 * { id, signature, refcount, pages, idle_pages, idle_ms, age_ms, uses, page_uses, retired,
 *   creating, browser, browser_context (once Chromium made it) } each.
 * Stack: +1 list. Raises only on out of memory (nothing is left allocated then). */
void lc_l_cache_push_contexts(lua_State *L, const lc_cache *cache, int64_t now_ms);

#endif
