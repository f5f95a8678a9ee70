-- recycle_spec.lua: browser recycling and the idle timer. New work moves to a fresh browser
-- while the old one drains; no request fails because of a recycle.
local H = require("support.helpers")
local cjson = require("cjson")

local manifest = cjson.decode(H.read(H.site_root .. "/manifest.json"))

describe("recycling and timers", function()
  after_each(function() H.cleanup() end)

  it("max_pages_per_browser recycles the browser without failing a request", function()
    local srv = H.site_server()
    local s = H.script([[
return { start = { args.url }, concurrency = 4, max_depth = 10, retries = 0,
  policy = { max_pages_per_browser = 5 },
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    local links = assert(page:links())
    job:emit { url = req.url, status = res.status, browser = job:stats().browser }
    for _, l in ipairs(links) do job:enqueue(l) end
  end }]])
    local r = H.run({ "run", s, "url=" .. srv.url("/") }, { stats = true, timeout = 120 })
    assert.equals(0, r.code, r.stderr)
    assert.equals(#manifest.pages + #manifest.missing, #r.records)
    assert.equals(0, r.stats.pages_failed)
    -- Pages keep going to the old browser while the new one starts, so not every 5 pages.
    assert.is_true(r.stats.browser_recycles >= 2, "recycles: " .. r.stats.browser_recycles)
    assert.equals(r.stats.browser_recycles + 1, r.stats.browser_starts)
    assert.equals(0, r.stats.browser_crashes)
    local browsers, distinct = {}, 0
    for _, rec in ipairs(r.records) do
      if not browsers[rec.browser] then browsers[rec.browser] = true; distinct = distinct + 1 end
    end
    assert.is_true(distinct >= 3, "pages were served by " .. distinct .. " browsers")
    assert.equals(0, r.stats.refs_outstanding)
    assert.equals(0, r.stats.contexts_open_at_exit)
    assert.same({}, H.chromium_left(r.profile_root))
  end)

  it("idle_ms closes idle contexts on the timer, not only after a release", function()
    local srv = H.server()
    local s = H.script(string.format([[
return { start = { %q }, timeout_ms = 20000,
  policy = { max_contexts = 10, idle_ms = 3000 },
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    for i = 1, 3 do
      local ctx <close> = assert(job:context { jar = "idle-" .. i })
      local p <close> = assert(ctx:page())
      assert(p:navigate(req.url))
    end
    local open_now = #job:contexts()
    job:sleep(4500)
    job:emit { before = open_now, after = #job:contexts() }
  end }]], srv.url("/")))
    local r = H.run({ "run", s }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    local rec = r.records[1]
    assert.equals(4, rec.before)
    assert.equals(1, rec.after, "only the request's own context is left")
    assert.equals(0, r.stats.refs_outstanding)
  end)
end)
