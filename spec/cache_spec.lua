-- cache_spec.lua: the context cache with real Chromium. What Chromium reports
-- (Target.getBrowserContexts) matches the cache's view; every way a handler can end leaves
-- refs_outstanding = 0; the policy and its hook are obeyed but can never close a context in use.
local H = require("support.helpers")

describe("context cache with Chromium", function()
  local srv
  before_each(function() srv = H.server() end)
  after_each(function() H.cleanup() end)

  it("Chromium's contexts match the cache's view during and after a crawl", function()
    local s = H.script(string.format([[
local uas = { "ua-1", "ua-2", "ua-3", "ua-4", "ua-5", "ua-6" }
return {
  start = function() local t = {} for i = 1, 12 do t[i] = %q .. i end return t end,
  concurrency = 3,
  context = function(req) local ua = uas[req.url:match("(%%d+)$") %% #uas + 1] return { jar = ua, user_agent = ua } end,
  policy = { max_contexts = 2, force = true },
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    local ua = page:eval("navigator.userAgent")
    -- Contexts open (created) in the cache both before and after Chromium answered existed
    -- all along: Chromium must list each of them. (Others may be created or disposed by the
    -- concurrent requests meanwhile.)
    local before = {}
    for _, c in ipairs(job:contexts()) do
      if not c.creating then before[c.browser_context] = true end
    end
    local theirs, missing, created = {}, 0, 0
    for _, id in ipairs(assert(job:browser_contexts())) do theirs[id] = true end
    for _, c in ipairs(job:contexts()) do
      if not c.creating then
        created = created + 1
        if before[c.browser_context] and not theirs[c.browser_context] then missing = missing + 1 end
      end
    end
    job:emit { url = req.url, ua = ua, cache = created, missing = missing }
  end,
}]], srv.url("/_/page?id=")))
    local r = H.run({ "run", s }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    assert.equals(12, #r.records)
    for _, rec in ipairs(r.records) do
      assert.matches("^ua%-%d$", rec.ua)
      -- Every context the cache holds open is one Chromium reports (Chromium may still be
      -- disposing one the cache already gave up, so the converse is checked once settled).
      assert.equals(0, rec.missing)
      assert.is_true(rec.cache <= 3 + 2, "open contexts stay bounded: " .. rec.cache)
    end
    local st = r.stats
    assert.equals(0, st.refs_outstanding)
    assert.equals(0, st.contexts_open_at_exit)
    assert.equals(st.contexts_created, st.contexts_closed)
    assert.is_true(st.contexts_open_peak <= 5, "peak " .. st.contexts_open_peak)
  end)

  it("the cache's contexts equal Chromium's once cleanup settled", function()
    local s = H.script(string.format([[
return {
  start = { %q }, concurrency = 1,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    for i = 1, 5 do
      local ctx <close> = assert(job:context { jar = "x" .. i })
      local p = assert(ctx:page())
      assert(p:navigate(req.url))
      p:release()
    end
    job:cleanup { max_contexts = 0, force = true }
    job:sleep(300)
    local mine, theirs = {}, assert(job:browser_contexts())
    for _, c in ipairs(job:contexts()) do mine[#mine + 1] = c.browser_context end
    table.sort(mine)
    table.sort(theirs)
    job:emit { cache = #mine, chromium = #theirs, same = table.concat(mine, ",") == table.concat(theirs, ",") }
  end,
}]], srv.url("/")))
    local r = H.run({ "run", s }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    local rec = r.records[1]
    -- Only the request's own context (refcount 1) survives a forced cleanup to zero.
    assert.equals(1, rec.cache)
    assert.equals(rec.cache, rec.chromium)
    assert.is_true(rec.same, "the same browserContextIds")
    assert.equals(0, r.stats.refs_outstanding)
  end)

  -- { what, handler body, records expected, request deadline in ms }
  local endings = {
    { "raises", [[error("handler raised")]], 0, 30000 },
    { "times out in a Lua loop", [[while true do end]], 0, 2000 },
    { "times out waiting on the page", [[assert(page:wait_for("#never-there", { timeout_ms = 60000 }))]], 0, 2000 },
    { "forgets to close what it took", [[
        local ctx = assert(job:context { jar = "forgotten" })
        local p = assert(ctx:page())
        job:emit { leak = true }]], 1, 30000 },
    { "closes with <close>", [[
        local ctx <close> = assert(job:context { jar = "closed" })
        local p <close> = assert(ctx:page())
        job:emit { closed = true }]], 1, 30000 },
  }
  for _, e in ipairs(endings) do
    it("a handler that " .. e[1] .. " leaves refs_outstanding = 0", function()
      local s = H.script(string.format([[
return { start = { %q }, retries = 0, timeout_ms = %d,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    %s
  end }]], srv.url("/"), e[4], e[2]))
      local r = H.run({ "run", s }, { stats = true, timeout = 60 })
      assert.equals(0, r.code, r.stderr)
      assert.equals(e[3], #r.records)
      assert.equals(0, r.stats.refs_outstanding)
      assert.equals(0, r.stats.bad_releases)
      assert.equals(0, r.stats.contexts_open_at_exit)
      if e[3] == 0 then assert.equals(1, r.stats.pages_failed) end
    end)
  end

  it("a handle used after its release is a clear error; a second release is refused", function()
    local s = H.script(string.format([[
local kept
return { start = { %q, %q }, concurrency = 1,
  handle = function(page, req, job)
    if not kept then
      kept = page -- released by the engine when this request ends
      local ctx = assert(job:context { jar = "short-lived" })
      local p = assert(ctx:page())
      assert(p:release())
      local ok, err = pcall(p.navigate, p, req.url)
      local again, aerr = p:release()
      ctx:release()
      local cok, cerr = pcall(ctx.page, ctx)
      job:emit { ok = ok, err = err, again = again, aerr = aerr, cerr = cerr }
    else
      local ok, err = pcall(kept.title, kept)
      job:emit { ok = ok, err = err, other_request = true }
    end
  end }]], srv.url("/_/page?id=1"), srv.url("/_/page?id=2")))
    local r = H.run({ "run", s }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    assert.equals(2, #r.records)
    local a, b = r.records[1], r.records[2]
    assert.is_false(a.ok)
    assert.matches("page used after its release", a.err)
    assert.is_nil(a.again)
    assert.matches("already released", a.aerr)
    assert.matches("context used after its release", a.cerr)
    assert.is_true(b.other_request)
    assert.is_false(b.ok)
    assert.matches("page used after its release", b.err)
    assert.equals(0, r.stats.refs_outstanding)
    assert.equals(0, r.stats.bad_releases)
  end)

  it("a session is reused across requests and takes one reference", function()
    local s = H.script(string.format([[
local ids = {}
return { start = { %q, %q, %q }, concurrency = 1,
  handle = function(page, req, job)
    local sess = assert(job:session("login"))
    local before = job:stats().refs_outstanding
    local again = assert(job:session("login"))
    local after = job:stats().refs_outstanding
    assert(sess:navigate(req.url))
    job:emit { target = sess:info().target, same = again:info().target == sess:info().target,
               delta = after - before }
  end }]], srv.url("/_/page?id=1"), srv.url("/_/page?id=2"), srv.url("/_/page?id=3")))
    local r = H.run({ "run", s }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    assert.equals(3, #r.records)
    for _, rec in ipairs(r.records) do
      assert.is_true(rec.same)
      assert.equals(0, rec.delta)
      assert.equals(r.records[1].target, rec.target)
    end
    assert.equals(0, r.stats.refs_outstanding)
  end)

  it("two requests opening one session at once: it opens once, the second waits without polling", function()
    local s = H.script(string.format([[
local core = require "luacrawl.core"
-- Count every sleep: waiting for another task's session must not poll.
local sleeps, real_sleep = 0, core.sleep
core.sleep = function(ms) sleeps = sleeps + 1; return real_sleep(ms) end
local arrived = 0
return { start = { %q, %q }, concurrency = 2,
  handle = function(page, req, job)
    -- Both handlers call job:session in the same turn of the loop.
    arrived = arrived + 1
    while arrived < 2 do job:sleep(5) end
    local before, t0 = sleeps, core.now()
    local sess = assert(job:session("shared", { user_agent = "shared-session" }))
    local at = core.now()
    job:emit { target = sess:info().target, at = at, waited = at - t0, sleeps = sleeps - before,
               ua = sess:eval("navigator.userAgent") }
  end }]], srv.url("/_/page?id=1"), srv.url("/_/page?id=2")))
    local r = H.run({ "run", s }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    assert.equals(2, #r.records)
    local a, b = r.records[1], r.records[2]
    assert.equals(a.target, b.target) -- opened once
    for _, rec in ipairs(r.records) do
      assert.equals(0, rec.sleeps)
      assert.equals("shared-session", rec.ua) -- nobody got it before it was prepared
    end
    -- The waiter resumed as soon as the opener had prepared the page.
    assert.is_true(math.abs(a.at - b.at) < 250, "returned at " .. a.at .. " and " .. b.at)
    assert.is_true(math.max(a.waited, b.waited) > 0)
    assert.equals(0, r.stats.refs_outstanding)
  end)

  it("a hook that raises is logged with its traceback and the table policy applies", function()
    local s = H.script(string.format([[
return { start = { %q }, policy = { max_contexts = 1, on_cleanup = function(state) error("hook exploded") end },
  handle = function(page, req, job) assert(page:navigate(req.url)); job:emit { ok = true } end }]], srv.url("/")))
    local r = H.run({ "run", s }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    assert.equals(1, #r.records)
    assert.matches("policy hook failed, the table policy applies: .*hook exploded", r.stderr)
    assert.matches("stack traceback", r.stderr)
    assert.equals(0, r.stats.refs_outstanding)
  end)

  it("a hook asking to close a context in use is refused with a warning naming it", function()
    local s = H.script(string.format([[
return { start = { %q },
  policy = { on_cleanup = function(state)
    local ids = {}
    for _, c in ipairs(state.contexts) do ids[#ids + 1] = c.id end
    return { close = ids, max_contexts = 0, force = true }
  end },
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    local ctx <close> = assert(job:context { jar = "held" })
    job:cleanup { max_contexts = 0, force = true }
    -- The hook runs on the engine's passes (after a release, every 250 ms): hold the
    -- contexts long enough for two of them, however fast the pages load.
    job:sleep(600)
    -- The request's page still works: its context was not closed under it.
    assert(page:navigate(req.url))
    job:emit { title = page:title() }
  end }]], srv.url("/")))
    local r = H.run({ "run", s }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    assert.equals(1, #r.records)
    assert.matches("refus", r.stderr)
    assert.equals(0, r.stats.refs_outstanding)
  end)
end)
