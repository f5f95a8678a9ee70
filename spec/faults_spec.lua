-- faults_spec.lua: luacrawl under faults. Chromium killed mid-crawl, pages and servers that
-- never answer, handlers and page scripts that never stop, a browser that stops answering a
-- close. Each request ends by its deadline, the crawl goes on, nothing is emitted twice, and
-- every run ends with refs_outstanding = 0.
local H = require("support.helpers")
local cjson = require("cjson")

local manifest = cjson.decode(H.read(H.site_root .. "/manifest.json"))

-- The main browser process of a run: the one naming the profile root without --type=.
local function browser_pid(profile_root)
  for _, pid in ipairs(H.chromium_left(profile_root)) do
    local f = io.open("/proc/" .. pid .. "/cmdline", "rb")
    local cmd = f and f:read("a") or ""
    if f then f:close() end
    if cmd:find("--remote-debugging-pipe", 1, true) and not cmd:find("--type=", 1, true) then
      return pid
    end
  end
end

describe("faults", function()
  after_each(function() H.cleanup() end)

  it("Chromium SIGKILLed mid-crawl: a new browser, in-flight requests retried, every page once", function()
    local srv = H.site_server()
    local s = H.script([[
return { start = { args.url }, concurrency = 4, retries = 3, max_depth = 10,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    job:sleep(150) -- keep requests in flight when the browser dies
    local links = assert(page:links())
    job:emit { url = req.url, status = res.status, title = page:title() }
    for _, l in ipairs(links) do job:enqueue(l) end
  end }]])
    local run = H.spawn({ "run", s, "url=" .. srv.url("/") }, { output = true, stats = true })
    local killed = H.wait_until(function()
      local out = H.read(run.output_path) or ""
      if select(2, out:gsub("\n", "")) < 6 then return false end
      local pid = browser_pid(run.profile_root)
      if pid then H.kill(pid, "KILL") end
      return pid
    end, 60, 0.02)
    assert.is_truthy(killed, "the crawl got going: " .. (H.read(run.stderr_path) or ""))
    assert.equals(0, run.wait(120))
    local r = run.result()
    assert.same({}, r.bad_lines)
    local seen = {}
    for _, rec in ipairs(r.records) do
      assert.is_nil(seen[rec.url], "emitted twice: " .. rec.url)
      seen[rec.url] = true
    end
    for _, p in ipairs(manifest.pages) do assert.is_true(seen[srv.url(p.url)], "missing " .. p.url) end
    assert.equals(#manifest.pages + #manifest.missing, #r.records)
    assert.equals(2, r.stats.browser_starts)
    assert.equals(1, r.stats.browser_crashes)
    assert.equals(0, r.stats.pages_failed)
    assert.equals(0, r.stats.refs_outstanding)
    assert.matches("browser crashed", r.stderr)
    assert.same({}, H.chromium_left(r.profile_root))
  end)

  it("never-loading pages, silent servers, Lua loops and JS loops end by their deadline", function()
    local srv = H.server()
    local s = H.script(string.format([[
return {
  start = { %q, %q, %q, %q, %q },
  concurrency = 2, retries = 0, timeout_ms = 4000,
  handle = function(page, req, job)
    if req.url:find("lualoop") then
      assert(page:navigate((req.url:gsub("lualoop", "page"))))
      local n = 0
      while true do n = n + 1 end
    end
    local res = assert(page:navigate(req.url))
    if req.url:find("jsloop") then
      assert(page:eval("1 + 1"))
    end
    job:emit { url = req.url, status = res.status }
  end,
  on_error = function(req, err, job) job:emit { url = req.url, failed = tostring(err) } end,
}]], srv.url("/_/neverload"), srv.url("/_/noanswer"), srv.url("/_/lualoop?id=1"),
     srv.url("/_/jsloop"), srv.url("/_/page?id=ok")))
    local t0 = H.now()
    local r = H.run({ "run", s }, { stats = true, timeout = 90 })
    local elapsed = H.now() - t0
    assert.equals(0, r.code, r.stderr)
    local by = {}
    for _, rec in ipairs(r.records) do by[rec.url] = rec end
    for _, path in ipairs { "/_/neverload", "/_/noanswer", "/_/lualoop?id=1", "/_/jsloop" } do
      local rec = by[srv.url(path)]
      assert.is_table(rec, "no record for " .. path)
      assert.is_string(rec.failed, path .. " should fail")
    end
    assert.matches("deadline", by[srv.url("/_/lualoop?id=1")].failed)
    assert.equals(200, by[srv.url("/_/page?id=ok")].status, "the crawl went on")
    assert.equals(4, r.stats.pages_failed)
    assert.equals(1, r.stats.pages_ok)
    -- Each stuck page was closed, not reused: the last request got a fresh page.
    assert.is_true(r.stats.pages_closed >= 3, "pages closed: " .. r.stats.pages_closed)
    assert.is_true(r.stats.pages_created >= 4, "pages created: " .. r.stats.pages_created)
    assert.equals(0, r.stats.refs_outstanding)
    assert.is_true(elapsed < 60, "took " .. elapsed .. " s: the stuck requests did not end by their deadlines")
  end)

  it("a browser that stops answering a close: the slot comes back", function()
    local srv = H.server()
    local s = H.script(string.format([[
local core = require("luacrawl.core")
return { start = { %q }, retries = 0, timeout_ms = 20000,
  policy = { max_contexts = 8, close_timeout_ms = 500 },
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    local ctx = assert(job:context { jar = "to-be-closed" })
    ctx:release()
    local before = #job:contexts()
    local pid = job:stats().browser_pid
    os.execute("kill -STOP " .. pid)
    local closed = job:cleanup { max_contexts = 1, force = true }
    job:sleep(1200)
    local after = #job:contexts()
    local lost = job:stats().contexts_lost
    os.execute("kill -CONT " .. pid)
    job:emit { before = before, after = after, closed = closed, lost = lost }
  end }]], srv.url("/")))
    local r = H.run({ "run", s }, { stats = true, timeout = 90 })
    assert.equals(0, r.code, r.stderr)
    local rec = r.records[1]
    assert.is_table(rec, r.stderr)
    assert.equals(2, rec.before)
    assert.equals(1, rec.closed)
    assert.equals(1, rec.after, "the slot came back while the close went unanswered")
    assert.equals(1, rec.lost)
    assert.matches("unanswered", r.stderr)
    assert.equals(0, r.stats.refs_outstanding)
    assert.same({}, H.chromium_left(r.profile_root))
  end)
end)
