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
end)
