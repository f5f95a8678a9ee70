-- rules_spec.lua: the crawl's rules where a hostile site would slip past them: robots.txt
-- fetches inside the job's concurrency and context, and redirects that leave the crawl's
-- origins, allow/deny lists or robots.txt (issue 9, items 2, 4 and 5). Seen from the fixture
-- servers' request logs.
local H = require("support.helpers")

local function run(srv, text, opts)
  opts = opts or {}
  opts.allow_failed = true
  return H.run_job(srv, text, opts)
end

-- The most intervals [time, done] open at one moment, over the log entries of several servers
-- whose path `wanted` accepts; and how many entries there were.
local function peak_in_flight(servers, wanted)
  local events = {}
  for _, srv in ipairs(servers) do
    for _, e in ipairs(srv.log()) do
      if wanted(e.path) then
        assert(type(e.done) == "number", "request still open: " .. e.path)
        events[#events + 1] = { e.time, 1 }
        events[#events + 1] = { e.done, -1 }
      end
    end
  end
  table.sort(events, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
  local open, most = 0, 0
  for _, ev in ipairs(events) do
    open = open + ev[2]
    most = math.max(most, open)
  end
  return most, #events // 2
end

describe("rules", function()
  after_each(function() H.cleanup() end)

  it("robots.txt fetches count against concurrency: one at a time over many hosts", function()
    local root = H.tmpdir()
    H.write(root .. "/robots.txt", "User-agent: *\nDisallow: /private/\n")
    local servers = {}
    for i = 1, 5 do servers[i] = H.server(root, { robots_delay_ms = 300 }) end
    local starts = {}
    for i, srv in ipairs(servers) do starts[i] = srv.url("/_/slow?ms=200&n=" .. i) end
    local script = [[
local starts = {}
for u in args.starts:gmatch("[^,]+") do starts[#starts + 1] = u end
return { start = starts, robots = true, concurrency = 1, retries = 0,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    job:emit { url = req.url, status = res.status }
  end }]]
    local r = H.run({ "run", H.script(script), "starts=" .. table.concat(starts, ",") },
      { stats = true, timeout = 120 })
    assert.equals(0, r.code, r.stderr)
    assert.equals(5, #r.records)
    for _, srv in ipairs(servers) do assert.equals(1, srv.count("/robots.txt")) end
    local peak, n = peak_in_flight(servers, function(p) return p == "/robots.txt" end)
    assert.equals(5, n)
    assert.equals(1, peak, "robots.txt fetches at once")
    local all_peak, all_n = peak_in_flight(servers, function(p)
      return p == "/robots.txt" or p:find("^/_/slow") ~= nil
    end)
    assert.equals(10, all_n)
    assert.equals(1, all_peak, "requests and robots.txt fetches at once, with concurrency 1")
    assert.same({}, H.chromium_left(r.profile_root))
  end)

  it("robots.txt is fetched in the job's context (its user agent)", function()
    local root = H.tmpdir()
    H.write(root .. "/robots.txt", "User-agent: *\nDisallow: /private/\n")
    H.write(root .. "/index.html", "<!doctype html><title>Home</title><a href='/private/x.html'>x</a>")
    H.write(root .. "/private/x.html", "<!doctype html><title>Secret</title>")
    local srv = H.server(root)
    local r = run(srv, [[
local P = args.base
return { start = { P .. "/" }, robots = true, concurrency = 1, retries = 0,
  context = { user_agent = "RulesBot/1.0 (context UA)" },
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    for _, l in ipairs(page:links()) do job:enqueue(l) end
    job:emit { url = req.url, status = res.status }
  end }]])
    assert.equals(1, #r.records)
    local robots = {}
    for _, e in ipairs(srv.log()) do
      if e.path == "/robots.txt" then robots[#robots + 1] = e end
    end
    assert.equals(1, #robots)
    assert.equals("RulesBot/1.0 (context UA)", robots[1].ua)
    assert.equals(0, srv.count("/private/x.html"))
  end)
  -- A crawl that follows every link; records carry the final URL and page text.
  local FOLLOW = [[
local P = args.base
return { start = { P .. "/" }, robots = args.robots == "1", concurrency = 1, retries = 0,
  deny = { "/denied/" },
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    for _, l in ipairs(page:links()) do job:enqueue(l) end
    job:emit { url = req.url, final = res.url, text = page:text() }
  end,
  on_error = function(req, err, job) job:emit { failed = req.url, err = tostring(err) } end }]]

  it("redirects are held to same_origin, deny and robots.txt at every hop", function()
    local other_root = H.tmpdir()
    H.write(other_root .. "/secret.html", "<!doctype html><title>Secret</title><p>INTERNAL SECRET</p>")
    local other = H.server(other_root)
    local root = H.tmpdir()
    H.write(root .. "/robots.txt", "User-agent: *\nDisallow: /private/\n")
    H.write(root .. "/ok.html", "<!doctype html><title>OK</title><p>fine page</p>")
    H.write(root .. "/private/x.html", "<!doctype html><title>P</title><p>PRIVATE PAGE</p>")
    H.write(root .. "/denied/x.html", "<!doctype html><title>D</title><p>DENIED PAGE</p>")
    local cross = "/_/redirect?to=" .. other.url("/secret.html")
    local links = {
      cross,                                  -- same origin link, redirects to another origin
      "/_/redirect?n=2&to=/private/x.html",   -- two hops, the last one disallowed by robots.txt
      "/_/redirect?to=%2Fdenied%2Fx.html",    -- to a denied path (escaped: the link passes deny)
      "/_/redirect?to=/ok.html",              -- within the rules: followed
    }
    local html = { "<!doctype html><title>Home</title>" }
    for _, l in ipairs(links) do html[#html + 1] = '<a href="' .. l .. '">x</a>' end
    H.write(root .. "/index.html", table.concat(html))
    local srv = H.server(root)
    local r = run(srv, FOLLOW, { timeout = 120 })
    local r2 = H.run({ "run", H.script(FOLLOW), "base=http://127.0.0.1:" .. srv.port, "robots=1" },
      { stats = true, timeout = 120 })
    assert.equals(0, r2.code, r2.stderr)
    for _, run_ in ipairs { r, r2 } do
      local by, failed = {}, {}
      for _, rec in ipairs(run_.records) do
        if rec.failed then failed[rec.failed] = rec.err else by[rec.url] = rec end
        assert.is_nil((rec.text or ""):find("INTERNAL SECRET"), "the other origin's page was emitted")
        assert.is_nil((rec.text or ""):find("DENIED PAGE"), "a denied page was emitted")
      end
      local err = failed[srv.url(cross)]
      assert.is_string(err, "the cross-origin redirect did not fail")
      assert.matches("redirect to " .. other.url("/secret.html"):gsub("%p", "%%%0") .. " refused: not same origin", err)
      assert.matches("redirect to http://127%.0%.0%.1:%d+/denied/x%.html refused: denied",
        failed[srv.url("/_/redirect?to=%2Fdenied%2Fx.html")])
      assert.equals(srv.url("/ok.html"), by[srv.url("/_/redirect?to=/ok.html")].final)
      assert.equals(0, run_.stats.refs_outstanding)
      assert.same({}, H.chromium_left(run_.profile_root))
    end
    -- robots.txt applies to the second hop only when the crawl reads it
    local rerr = nil
    for _, rec in ipairs(r2.records) do
      if rec.failed == srv.url("/_/redirect?n=2&to=/private/x.html") then rerr = rec.err end
    end
    assert.matches("redirect to http://127%.0%.0%.1:%d+/private/x%.html refused: disallowed by robots%.txt", rerr)
    -- Refused hops never reach a server.
    assert.equals(0, other.count("/secret.html"), "the request went to the other origin")
    assert.equals(0, srv.count("/denied/x.html"))
    assert.equals(1, srv.count("/private/x.html"), "fetched once: by the run without robots")
  end)
end)
