-- cdp_spec.lua: the CDP client with real Chromium: deadlines, huge messages, crashes,
-- CDP errors reaching the script.
local H = require("support.helpers")

local function job(srv, body, extra)
  return H.script(string.format([[return { start = { %q }, retries = 0, %s
    handle = function(page, req, job) %s end }]], srv.url("/"), extra or "", body))
end

describe("CDP client", function()
  local srv
  before_each(function() srv = H.server() end)
  after_each(function() H.cleanup() end)

  it("fails a command that never gets an answer with a timeout error", function()
    local r = H.run({ "run", job(srv, [[
      assert(page:navigate(req.url))
      local t0 = job:stats() and require("luacrawl.core").now()
      local v, err = page:send("Runtime.evaluate",
        { expression = "new Promise(function(){})", awaitPromise = true }, 700)
      local t1 = require("luacrawl.core").now()
      job:emit { value = v, err = err, ms = t1 - t0 }
    ]]) }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    local rec = r.records[1]
    assert.is_nil(rec.value)
    assert.matches("Runtime.evaluate: timed out", rec.err)
    assert.is_true(rec.ms >= 650 and rec.ms < 3000, "took " .. rec.ms .. " ms")
    assert.equals(0, r.stats.refs_outstanding)
  end)

  it("receives a 10 MB page's HTML whole", function()
    local r = H.run({ "run", job(srv, [[
      assert(page:navigate((req.url:gsub("/$", "/_/big?mb=10"))))
      local html = assert(page:html())
      job:emit { bytes = #html, tail = html:sub(-200) }
    ]], "timeout_ms = 100000,") }, { stats = true, timeout = 150 })
    assert.equals(0, r.code, r.stderr)
    local rec = r.records[1]
    assert.is_table(rec, r.stderr)
    assert.is_true(rec.bytes >= 10 * 1000 * 1000, "got " .. rec.bytes) -- 10 MiB served; outerHTML drops the doctype
    assert.matches("END%-OF%-BIG%-PAGE", rec.tail)
  end)

  it("hands CDP errors to the script with their message", function()
    local r = H.run({ "run", job(srv, [[
      local v, err = page:send("No.suchMethod", {})
      job:emit { err = err }
    ]]) })
    assert.equals(0, r.code, r.stderr)
    assert.matches("No.suchMethod: .*wasn't found", r.records[1].err)
  end)

  it("reports a Chromium crash to the waiting request instead of hanging, and recovers", function()
    local s = H.script(string.format([[
local core = require("luacrawl.core")
local killed = false
return { start = { %q, %q }, retries = 2, concurrency = 2,
  handle = function(page, req, job)
    if not killed and req.url:find("slow") then
      killed = true
      core.kill_browser()
    end
    local res, err = page:navigate(req.url)
    if not res then
      job:log("navigate failed: " .. err)
      error(err)
    end
    job:emit { url = req.url, status = res.status, attempt = req.attempt }
  end }]], srv.url("/_/slow?ms=3000"), srv.url("/")))
    local r = H.run({ "run", s }, { stats = true, timeout = 60 })
    assert.equals(0, r.code, r.stderr)
    assert.matches("navigate failed: [^\n]*crashed", r.stderr)
    assert.equals(2, #r.records, "each page emitted once, on a new browser")
    for _, rec in ipairs(r.records) do assert.equals(200, rec.status) end
    assert.is_true(r.stats.retries >= 1)
    assert.equals(2, r.stats.browser_starts)
    assert.equals(0, r.stats.refs_outstanding)
    assert.same({}, H.chromium_left(r.profile_root))
  end)
end)
