-- lifecycle_spec.lua: Chromium never outlives luacrawl. After a normal end, a script error,
-- SIGINT, SIGTERM and SIGKILL of luacrawl, no process of its Chromium remains and its
-- profile dir is gone; interrupted runs leave only whole JSON lines and release everything.
local H = require("support.helpers")

local function no_browser_left(profile_root)
  local gone = H.wait_until(function() return #H.chromium_left(profile_root) == 0 end, 5, 0.05)
  assert.is_truthy(gone, "Chromium processes left: " .. table.concat(H.chromium_left(profile_root), " "))
  local empty = H.wait_until(function() return H.dir_empty(profile_root) end, 5, 0.05)
  assert.is_truthy(empty, "profile dir left in " .. profile_root)
end

-- A job that crawls slow pages forever (until interrupted), emitting a record per page.
local function endless_job(srv)
  return H.script(string.format([[
local n = 0
return {
  start = { %q },
  concurrency = 4,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    job:emit { url = req.url, title = page:title(), text = string.rep("x", 2000) }
    for i = 1, 3 do
      n = n + 1
      job:enqueue(%q .. n)
    end
  end,
}]], srv.url("/_/slow?ms=100&n=0"), srv.url("/_/slow?ms=100&n=")))
end

local function started(run)
  return H.wait_until(function()
    local out = H.read(run.output_path) or ""
    return select(2, out:gsub("\n", "")) >= 4
  end, 60, 0.05)
end

describe("browser lifecycle", function()
  local srv
  before_each(function() srv = H.server() end)
  after_each(function() H.cleanup() end)

  it("normal end: nothing left", function()
    local s = H.script(string.format([[return { start = { %q },
      handle = function(page, req, job) assert(page:navigate(req.url)); job:emit { t = page:title() } end }]],
      srv.url("/")))
    local r = H.run({ "run", s }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    assert.equals(1, #r.records)
    assert.equals(0, r.stats.refs_outstanding)
    no_browser_left(r.profile_root)
  end)

  it("a handler error: the run ends, the error is reported with a traceback, nothing left", function()
    local s = H.script(string.format([[return { start = { %q }, retries = 0,
      handle = function(page, req, job) assert(page:navigate(req.url)); error("boom in handler") end }]],
      srv.url("/")))
    local r = H.run({ "run", s }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    assert.matches("boom in handler", r.stderr)
    assert.matches("stack traceback", r.stderr)
    assert.equals(1, r.stats.pages_failed)
    assert.equals(0, r.stats.refs_outstanding)
    no_browser_left(r.profile_root)
  end)

  for _, case in ipairs { { "INT", 130 }, { "TERM", 143 } } do
    it("SIG" .. case[1] .. " mid-crawl: exit " .. case[2] .. ", whole lines, refs released, nothing left", function()
      local run = H.spawn({ "run", endless_job(srv) }, { output = true, stats = true })
      assert.is_truthy(started(run), "the crawl did not start: " .. (H.read(run.stderr_path) or ""))
      run.signal(case[1])
      local code = run.wait(30)
      assert.equals(case[2], code, H.read(run.stderr_path))
      local r = run.result()
      assert.same({}, r.bad_lines)
      assert.is_true(#r.records >= 4)
      assert.equals(0, r.stats.refs_outstanding)
      assert.equals(0, r.stats.contexts_open_at_exit)
      assert.is_true(r.stats.interrupted)
      no_browser_left(run.profile_root)
    end)
  end

  it("SIGKILL of luacrawl: Chromium dies with it and its profile dir is removed", function()
    local run = H.spawn({ "run", endless_job(srv) }, { output = true })
    assert.is_truthy(started(run))
    assert.is_true(#H.chromium_left(run.profile_root) > 0, "a browser was running")
    run.signal("KILL")
    run.wait(10)
    no_browser_left(run.profile_root)
    local r = run.result()
    assert.same({}, r.bad_lines)
  end)
end)
