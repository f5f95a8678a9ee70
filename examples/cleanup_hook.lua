-- cleanup_hook.lua: decide yourself which browser contexts to close, with policy.on_cleanup.
--
-- The idea: the engine runs a cleanup pass after every release of a context and every 250 ms.
-- By default the table policy decides (keep at most max_contexts, close what was idle for
-- idle_ms). An on_cleanup(state) hook sees every open context (id, signature, refcount,
-- pages, idle_pages, idle_ms, uses, age_ms) and may answer { close = { ids... } } and/or
-- { max_contexts = n, force = b }. This hook closes a context once it has served more than
-- max_uses requests (a fresh context drops whatever a site stored in it) or when it has been
-- idle longer than idle_ms, and logs each decision.
--
-- Rules of the hook: it runs outside any request, in a protected call with a 250 ms budget,
-- so it must not call anything that waits (page methods, job:session, job:context,
-- job:sleep...): only plain Lua and quick calls such as job:log. It receives no `job`, so
-- this script keeps the one its handler gets. A context in use (refcount > 0) is never
-- closed whatever the hook says: the engine refuses with a warning, so the hook skips them.
--
-- Run it against the fixture server, whose /_/links?n=N links to N small pages:
--   python3 spec/support/server.py --root spec/fixtures/site --port-file /tmp/port &
--   build/luacrawl run examples/cleanup_hook.lua url=http://127.0.0.1:$(cat /tmp/port)/_/links?n=20
-- Arguments: url= (default http://127.0.0.1:8000/_/links?n=20), max_uses= (default 3),
--   idle_ms= (default 2000)
-- Emits { url, title, locale } per page; the decisions go to stderr ("cleanup hook: ...").
local function int(name, default)
  local v = math.tointeger(tonumber(args[name] or default))
  if not v then error(name .. "= must be an integer", 0) end
  return v
end
local MAX_USES = int("max_uses", 3)
local IDLE_MS = int("idle_ms", 2000)

-- Four locales, each with a cookie jar of its own (`jar`), so four kinds of context (requests
-- pick one by their id). Without `jar` the four would share one context: a locale, like a user
-- agent, is the page's emulation, not the context's.
local LOCALES = { "en-US", "de-DE", "fr-FR", "ja-JP" }
local function locale_of(req) return LOCALES[(req.id - 1) % #LOCALES + 1] end

local the_job -- the job object, kept by the first handler for the hook's logging

local function on_cleanup(state)
  local close = {}
  for _, c in ipairs(state.contexts) do
    if c.refcount == 0 then
      local why
      if c.uses > MAX_USES then
        why = string.format("served %d requests (more than %d)", c.uses, MAX_USES)
      elseif c.idle_ms > IDLE_MS then
        why = string.format("idle for %d ms (more than %d)", c.idle_ms, IDLE_MS)
      end
      if why then
        close[#close + 1] = c.id
        if the_job then the_job:log(string.format("cleanup hook: closing context %d: %s", c.id, why)) end
      end
    end
  end
  if #close > 0 then return { close = close } end
  return nil -- nothing to add: the table policy below applies as it is
end

return {
  start = { args.url or "http://127.0.0.1:8000/_/links?n=20" },
  max_depth = 1,
  concurrency = 2,
  context = function(req) local l = locale_of(req) return { locale = l, jar = l } end,
  policy = { max_contexts = 8, idle_ms = 30000, on_cleanup = on_cleanup },
  handle = function(page, req, job)
    the_job = the_job or job
    assert(page:navigate(req.url))
    job:emit { url = req.url, title = page:title(), locale = page:eval("navigator.language") }
    for _, link in ipairs(assert(page:links())) do job:enqueue(link) end
  end,
}
