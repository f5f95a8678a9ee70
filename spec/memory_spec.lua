-- memory_spec.lua: memory bounded by the policy alone (issue 8). With many rotating
-- configurations the open contexts and idle pages stay within the policy's numbers; contexts
-- wear out after max_pages_per_context; browser PSS is measured, reported and enforced.
local H = require("support.helpers")

describe("memory bounded by the policy", function()
  local srv
  before_each(function() srv = H.server() end)
  after_each(function() H.cleanup() end)

  it("30 rotating cookie jars, default force: idle pages and open contexts stay bounded", function()
    -- concurrency 4, so max_idle_pages defaults to 4; max_contexts 2. In use: at most 4
    -- contexts; unused after a cleanup pass: at most max(2, 4). Before the global idle
    -- budget every context kept its idle page until idle_ms (30 s): ~30 open.
    local r = H.run_job(srv, [[
local n = 0
return {
  start = function() local t = {} for i = 1, 60 do t[i] = args.base .. "/_/page?id=" .. i end return t end,
  concurrency = 4,
  context = function(req) local k = "ua-" .. (tonumber(req.url:match("(%d+)$")) % 30) return { jar = k, user_agent = k } end,
  policy = { max_contexts = 2 },
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    local st = job:stats()
    job:emit { url = req.url, idle_pages = st.idle_pages, open = st.contexts_open,
               target = st.idle_target, ua = page:eval("navigator.userAgent") }
  end,
}]])
    assert.equals(60, #r.records)
    local lowest = math.huge
    for _, rec in ipairs(r.records) do
      assert.is_true(rec.idle_pages <= 4, "idle pages " .. rec.idle_pages)
      assert.is_true(rec.idle_pages <= rec.target, "idle pages over the pool's target")
      assert.matches("^ua%-%d+$", rec.ua)
      lowest = math.min(lowest, rec.target)
    end
    -- 30 configurations in turn: a pool of 4 never serves one, so it stops keeping pages.
    assert.is_true(lowest < 4, "the idle pool adapted: lowest target " .. lowest)
    local st = r.stats
    -- 4 in use + 4 unused after a pass; between a release and the pass that follows it (at
    -- the next resume point) each of the 4 slots may start its next request in a new context.
    assert.is_true(st.contexts_open_peak <= 4 + 4 + 4, "contexts open peak " .. st.contexts_open_peak)
    assert.is_true(st.pages_evicted > 0, "the budget evicted idle pages")
    assert.is_true(st.contexts_created >= 30)
    assert.equals(0, st.contexts_open_at_exit)
  end)

  it("one configuration keeps reusing its pages under the same budget", function()
    local r = H.run_job(srv, [[
return {
  start = function() local t = {} for i = 1, 24 do t[i] = args.base .. "/_/page?id=" .. i end return t end,
  concurrency = 3,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    job:emit { url = req.url }
  end,
}]])
    assert.equals(24, #r.records)
    -- Pages are created only for the requests that found none idle: at most a few per slot.
    assert.is_true(r.stats.pages_reused >= 24 - 3 * 2, "reused " .. r.stats.pages_reused)
    assert.equals(1, r.stats.contexts_created)
  end)

  it("max_pages_per_context retires a context; a fresh one takes its key", function()
    local r = H.run_job(srv, [[
return {
  start = function() local t = {} for i = 1, 12 do t[i] = args.base .. "/_/page?id=" .. i end return t end,
  concurrency = 2,
  policy = { max_pages_per_context = 3 },
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    local worst = 0
    for _, c in ipairs(job:contexts()) do
      if c.page_uses > worst then worst = c.page_uses end
    end
    job:emit { url = req.url, worst = worst }
  end,
}]])
    assert.equals(12, #r.records)
    for _, rec in ipairs(r.records) do
      assert.is_true(rec.worst <= 3, "a context served " .. rec.worst .. " pages")
    end
    assert.is_true(r.stats.contexts_retired >= 3, "retired " .. r.stats.contexts_retired)
    assert.is_true(r.stats.contexts_created >= 4, "created " .. r.stats.contexts_created)
    assert.equals(0, r.stats.contexts_open_at_exit)
  end)

  it("browser PSS is sampled, reported, and max_browser_pss_mb recycles the browser", function()
    local r = H.run_job(srv, [[
return {
  start = function() local t = {} for i = 1, 10 do t[i] = args.base .. "/_/page?id=" .. i end return t end,
  concurrency = 2,
  policy = { max_browser_pss_mb = 1 },
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    job:sleep(400) -- let a memory sample (once a second) see this browser
    local st = job:stats()
    job:emit { url = req.url, pss = st.browser_pss_mb, rss = st.browser_rss_mb }
  end,
}]], { timeout = 120 })
    assert.equals(10, #r.records)
    local seen = 0
    for _, rec in ipairs(r.records) do
      if rec.pss > 0 then seen = seen + 1 end
      assert.is_true(rec.pss <= rec.rss, "PSS " .. rec.pss .. " above RSS " .. rec.rss)
    end
    assert.is_true(seen > 0, "job:stats() reported browser_pss_mb")
    local st = r.stats
    assert.is_true(st.browser_pss_peak_mb > 0)
    assert.is_true(st.browser_pss_peak_mb < st.browser_rss_peak_mb,
      "PSS " .. st.browser_pss_peak_mb .. " vs RSS " .. st.browser_rss_peak_mb)
    assert.is_true(st.browser_recycles >= 1, "recycles " .. st.browser_recycles)
    assert.matches("recycling the browser %(max_browser_pss_mb%)", r.stderr)
    assert.matches("browser PSS peak %d+ MB", r.stderr)
  end)

  it("bad memory policy values are refused before a browser starts", function()
    for _, bad in ipairs { "max_browser_pss_mb = -1", "max_pages_per_context = 'x'",
                           "max_pages_per_context = 1.5", "adaptive_idle_pages = 1" } do
      local s = H.script("return { start = { 'http://127.0.0.1:1/' }, policy = { " .. bad ..
        " }, handle = function() end }")
      local r = H.run({ "run", s })
      assert.equals(2, r.code, bad .. ": " .. r.stderr)
      local field = bad:match("^(%S+)")
      assert.matches("policy%." .. field, r.stderr)
      assert.equals(0, #H.chromium_left(r.profile_root))
    end
  end)
end)

describe("browser memory sampling", function()
  local srv
  before_each(function() srv = H.server() end)
  after_each(function() H.cleanup() end)

  -- Each sample walks /proc and reads every browser process's smaps_rollup: it is taken once a
  -- second only when something reads it every second (a limit, the hook, the live progress
  -- line, --stats), otherwise only when something reports it (here: a progress line every 5 s
  -- on a stderr that is not a terminal, and the final summary).
  local job = [[
return {
  start = { args.base .. "/_/page?id=1" },
  policy = %s,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    job:sleep(3500)
    job:emit { url = req.url }
  end,
}]]
  local function samples(policy)
    local s = H.script(string.format(job, policy))
    local r = H.run({ "run", s, "base=http://127.0.0.1:" .. srv.port, "-v" })
    assert.equals(0, r.code, r.stderr)
    assert.equals(1, #r.records)
    return tonumber(r.stderr:match("browser memory sampled (%d+) time")), r
  end

  it("is not taken every second when nothing needs it", function()
    local n, r = samples("{}")
    assert.is_not_nil(n, r.stderr)
    assert.is_true(n <= 2, "sampled " .. n .. " times")
  end)

  it("is taken once a second when a memory limit needs it", function()
    local n, r = samples("{ max_browser_pss_mb = 100000 }")
    assert.is_not_nil(n, r.stderr)
    assert.is_true(n >= 3, "sampled " .. n .. " times")
    assert.is_true(n <= 8, "sampled " .. n .. " times in ~4 s")
  end)
end)
