/* l_cache.c: the context cache's snapshot as a Lua list (see l_cache.h). */
#include "l_cache.h"

#include <lauxlib.h>

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, int v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}

void lc_l_cache_push_contexts(lua_State *L, const lc_cache *cache, int64_t now_ms) {
  /* The buffer is a userdata (about 100 KiB, too much for the C stack): a memory error
   * raised while the list is built leaves nothing to free. */
  lc_cache_ctx_info *info =
      lua_newuserdatauv(L, LC_CACHE_SNAPSHOT_MAX * sizeof *info, 0); /* stack: buf */
  size_t total = 0;
  size_t n = lc_cache_snapshot(cache, info, LC_CACHE_SNAPSHOT_MAX, &total, now_ms);
  lua_createtable(L, (int)n, 0); /* stack: buf list */
  for (size_t i = 0; i < n; i++) {
    const lc_cache_ctx_info *c = &info[i];
    lua_createtable(L, 0, 13);
    set_int(L, "id", (lua_Integer)c->id);
    lua_pushstring(L, c->signature);
    lua_setfield(L, -2, "signature");
    set_int(L, "refcount", c->refcount);
    set_int(L, "pages", c->pages);
    set_int(L, "idle_pages", c->idle_pages);
    set_int(L, "idle_ms", (lua_Integer)c->idle_ms);
    set_int(L, "age_ms", (lua_Integer)c->age_ms);
    set_int(L, "uses", (lua_Integer)c->uses);
    set_int(L, "page_uses", (lua_Integer)c->page_uses);
    set_bool(L, "retired", c->retired);
    set_bool(L, "creating", c->creating);
    set_int(L, "browser", c->browser_gen);
    if (c->browser_ctx[0]) {
      lua_pushstring(L, c->browser_ctx);
      lua_setfield(L, -2, "browser_context");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_remove(L, -2); /* stack: list */
}
