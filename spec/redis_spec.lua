-- redis_spec.lua: --frontier redis://: engines share one crawl through Redis. Each test starts
-- its own redis-server on a random loopback port (appendfsync always, in a temp dir) and
-- kills it at the end. Three engines crawl a 300-page site, one is SIGKILLed mid-crawl and
-- another started, Redis is killed and restarted mid-crawl: every page is in the records
-- exactly once. The per-host delay and per_host hold across engines (the site logs arrival
-- and answer times). A stall longer than a lease gets its late acknowledgement refused. A page
-- that kills every engine running it fails for good after retries + 2 lost leases; an engine
-- stopped by SIGINT gives its leases back and counts nothing. Redis unreachable at start: one
-- line, exit 2.
local H = require("support.helpers")
local cjson = require("cjson")

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local ok, _, code = os.execute(cmd)
  return ok and 0 or code
end

local sh_read = H.sh_read

local servers = {}

-- A redis-server of this test: start(), kill() (SIGKILL, as a crash), url(crawl, lease_ms).
local function redis()
  local R = { dir = H.tmpdir() }
  math.randomseed(os.time() + H.pid)
  function R.start()
    for _ = 1, 20 do
      R.port = R.port or math.random(20000, 60000)
      local cmd = string.format("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly yes "
        .. "--appendfsync always --dir %s --daemonize no >>%s 2>&1 </dev/null & echo $!",
        R.port, q(R.dir), q(R.dir .. "/redis.log"))
      R.pid = tonumber(sh_read(cmd):match("%d+"))
      servers[#servers + 1] = R
      local up = H.wait_until(function()
        return sh_read("redis-cli -p " .. R.port .. " ping 2>/dev/null"):match("PONG")
      end, 10, 0.05)
      if up then return R end
      R.kill()
      if R.fixed then error("redis-server did not come back on port " .. R.port) end
      R.port = nil -- taken: another one
    end
    error("cannot start redis-server: " .. (H.read(R.dir .. "/redis.log") or ""))
  end
  function R.kill()
    if R.pid and H.alive(R.pid) then
      sh("kill -KILL " .. R.pid)
      H.wait_until(function() return not H.alive(R.pid) end, 10, 0.02)
    end
  end
  function R.url(crawl, lease_ms)
    return "redis://127.0.0.1:" .. R.port .. "/0?crawl=" .. crawl .. (lease_ms and ("&lease_ms=" .. lease_ms) or "")
  end
  R.start()
  R.fixed = true -- a restart comes back on the same port, with the same append-only file
  return R
end

local function status(url)
  local r = H.run({ "status", url, "--json" }, { timeout = 30 })
  assert.equals(0, r.code, r.stderr)
  return cjson.decode(r.stdout)
end

local function export(url)
  local r = H.run({ "export", url }, { timeout = 60 })
  assert.equals(0, r.code, r.stderr)
  return r.records, r.bad_lines
end

-- Each page's url once, and how many times any was there more than once.
local function once(records)
  local seen, dups, n = {}, {}, 0
  for _, rec in ipairs(records) do
    if seen[rec.url] then dups[#dups + 1] = rec.url else n = n + 1 end
    seen[rec.url] = true
  end
  return n, dups
end

-- Runs three engines named e1..e3 on crawl F with `args`, waits for each to exit 0, and
-- returns how many records each engine wrote (by name).
local function three_engines(script, F, args)
  local runs = {}
  for i = 1, 3 do
    local argv = { "run", script }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    for _, a in ipairs({ "name=e" .. i, "--frontier", F, "-q" }) do argv[#argv + 1] = a end
    runs[i] = H.spawn(argv, { output = true, timeout = 120 })
  end
  local by = {}
  for _, r in ipairs(runs) do
    assert.equals(0, r.wait(110), H.read(r.stderr_path))
    for _, rec in ipairs(r.result().records) do by[rec.engine] = (by[rec.engine] or 0) + 1 end
  end
  return by
end

local JOB = [[
local core = require("luacrawl.core")
return {
  start = { args.base .. "/_/links?n=" .. args.n },
  max_depth = 1, concurrency = tonumber(args.c or 2), retries = 3,
  delay_ms = tonumber(args.delay or 0),
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    if args.hold then core.sleep(tonumber(args.hold)) end
    job:emit { url = req.url, status = res.status, engine = args.name }
    for _, link in ipairs(page:links()) do job:enqueue(link) end
  end,
}
]]

local PER_HOST_JOB = [[
local start = {}
for i = 1, tonumber(args.n) do start[i] = args.base .. "/_/slow?ms=" .. args.ms .. "&i=" .. i end
return {
  start = start, concurrency = 2, per_host = 1, retries = 3,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    job:emit { url = req.url, status = res.status, engine = args.name }
  end,
}
]]

-- The poison job: a page, /_/slow?ms=4000&id=poison, that the spec treats as one that kills
-- the engine loading it (it SIGKILLs the engine as soon as the site sees the request, long
-- before the page answers: what the OOM killer or a segfault would do). Concurrency 1, so only the poison page runs when its
-- engine dies; retries = 1, so the third lost lease is the last (retries + 1 are allowed: the
-- first death is forgiven).
local POISON_JOB = [[
return {
  start = { args.base .. "/_/links?n=" .. args.n, args.base .. "/_/slow?ms=4000&id=poison" },
  max_depth = 1, concurrency = 1, retries = 1,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    job:emit { url = req.url, status = res.status, lost = req.lost, engine = args.name }
    for _, link in ipairs(page:links()) do job:enqueue(link) end
  end,
  on_error = function(req, err, job) job:emit { failed = req.url, error = err, lost = req.lost } end,
}
]]
local POISON = "/_/slow?ms=4000&id=poison"

-- Starts engines one after another with start(i) -> run; each is SIGKILLed when the site sees
-- the poison page requested again. Returns the last run (which ended by itself) and the kills.
local function kill_on_poison(srv, start)
  local kills, seen = 0, 0
  local run = start(1)
  while true do
    local why = H.wait_until(function()
      if srv.count(POISON) > seen then return "poison" end
      if not run.alive() then return "ended" end
    end, 120, 0.01)
    assert.is_not_nil(why, "neither the poison page nor the end came")
    if why == "ended" then return run, kills end
    seen = srv.count(POISON)
    run.signal("KILL")
    assert.is_not_nil(run.wait(30))
    kills = kills + 1
    assert.truthy(kills <= 5, "the poison page keeps killing engines")
    run = start(kills + 1)
  end
end

describe("--frontier redis://", function()
  after_each(function()
    for _, R in ipairs(servers) do R.kill() end
    servers = {}
    H.cleanup()
  end)

  it("Redis unreachable at start: one clear line, exit 2, no browser", function()
    local R = redis()
    local port = R.port
    R.kill()
    local r = H.run({ "run", H.script(JOB), "base=http://127.0.0.1:1", "n=1",
      "--frontier", "redis://127.0.0.1:" .. port .. "/0?crawl=x" }, { timeout = 30 })
    assert.equals(2, r.code, r.stderr)
    assert.truthy(r.stderr:find("cannot connect to Redis at 127.0.0.1:" .. port, 1, true), r.stderr)
    local _, lines = r.stderr:gsub("\n", "")
    assert.equals(1, lines, r.stderr)
    assert.equals(0, #H.chromium_left(r.profile_root))
    -- Bad URLs are bad input too.
    for _, url in ipairs({ "redis://127.0.0.1:" .. port .. "/0", "http://127.0.0.1/?crawl=x",
                           "redis://127.0.0.1:" .. port .. "/0?crawl=x&lease_ms=5" }) do
      local b = H.run({ "run", H.script(JOB), "base=x", "--frontier", url }, { timeout = 30 })
      assert.equals(2, b.code, url .. ": " .. b.stderr)
    end
    local both = H.run({ "run", H.script(JOB), "--frontier", R.url("x"), "--state", "/tmp/x.db" })
    assert.equals(2, both.code)
  end)

  it("three engines, one SIGKILLed and another started: every page once", function()
    local srv = H.server()
    local R = redis()
    local F = R.url("big", 2000)
    local dir = H.tmpdir()
    local script = H.script(JOB)
    local function engine(name)
      return H.spawn({ "run", script, "base=" .. srv.url(""), "n=300", "name=" .. name,
        "--frontier", F, "-o", dir .. "/" .. name .. ".jsonl", "-q" }, { timeout = 240 })
    end
    local a, b, c = engine("a"), engine("b"), engine("c")
    local function records() return (status(F).records) end
    assert.truthy(H.wait_until(function() return records() >= 40 end, 120, 0.2), "no progress")
    b.signal("KILL")
    assert.is_not_nil(b.wait(30))
    local at_kill = records()
    assert.truthy(at_kill < 301, "the crawl ended before the kill")
    local d = engine("d")
    assert.truthy(H.wait_until(function() return records() >= at_kill + 40 end, 120, 0.2))
    local before = records()
    for _, e in ipairs({ a, c, d }) do
      local code = e.wait(200)
      assert.equals(0, code, H.read(e.stderr_path))
    end
    assert.truthy(before <= 301)
    local st = status(F)
    assert.equals("done", st.state)
    assert.equals(301, st.done)
    assert.equals(0, st.queued)
    assert.equals(0, st.leased)
    assert.equals(301, st.records)
    local recs, bad = export(F)
    assert.equals(0, #bad)
    local n, dups = once(recs)
    assert.same({}, dups, "pages committed twice")
    assert.equals(301, n, "every page exactly once")
    -- Each engine's own file: whole lines, and no page in two of them.
    local all = {}
    for _, name in ipairs({ "a", "b", "c", "d" }) do
      local mine, badl = H.decode_lines(H.read(dir .. "/" .. name .. ".jsonl") or "")
      assert.equals(0, #badl, name .. ": a torn line")
      for _, rec in ipairs(mine) do all[#all + 1] = rec end
    end
    local _, dups2 = once(all)
    assert.same({}, dups2, "a page in two engines' files")
    assert.equals(0, #H.chromium_left(a.profile_root) + #H.chromium_left(c.profile_root)
      + #H.chromium_left(d.profile_root))
  end)

  it("Redis killed and restarted mid-crawl: the engines reconnect and finish, every page once", function()
    local srv = H.server()
    local R = redis()
    local F = R.url("restart")
    local script = H.script(JOB)
    local a = H.spawn({ "run", script, "base=" .. srv.url(""), "n=120", "c=2", "name=a",
      "--frontier", F, "-o", H.tmpdir() .. "/a.jsonl" }, { timeout = 200 })
    local b = H.spawn({ "run", script, "base=" .. srv.url(""), "n=120", "c=2", "name=b",
      "--frontier", F, "-o", H.tmpdir() .. "/b.jsonl", "-q" }, { timeout = 200 })
    assert.truthy(H.wait_until(function() return status(F).records >= 20 end, 90, 0.1))
    R.kill()
    H.sleep(1.5)
    R.start()
    assert.equals(0, a.wait(180), H.read(a.stderr_path))
    assert.equals(0, b.wait(180), H.read(b.stderr_path))
    local err = H.read(a.stderr_path) .. H.read(b.stderr_path)
    assert.truthy(err:find("reconnected to Redis", 1, true), err)
    local st = status(F)
    assert.equals("done", st.state)
    assert.equals(121, st.done)
    assert.equals(0, st.leased)
    local recs, bad = export(F)
    assert.equals(0, #bad)
    local n, dups = once(recs)
    assert.same({}, dups, "pages committed twice")
    assert.equals(121, n, "every page exactly once")
  end)

  it("delay_ms holds across three engines: the site sees the host no more often than that", function()
    local srv = H.server()
    local R = redis()
    local F = R.url("polite")
    local script = H.script(JOB)
    local by = three_engines(script, F, { "base=" .. srv.url(""), "n=14", "delay=300", "c=2" })
    local engines = 0
    for _ in pairs(by) do engines = engines + 1 end
    assert.truthy(engines >= 2, "the crawl was not shared: " .. cjson.encode(by))
    local t = {}
    for _, e in ipairs(srv.log()) do
      if e.path:find("^/_/") then t[#t + 1] = e.time end
    end
    table.sort(t)
    assert.equals(15, #t)
    local gap = math.huge
    for i = 2, #t do gap = math.min(gap, t[i] - t[i - 1]) end
    -- 300 ms between slots on the server; the browser's own send adds some jitter.
    assert.truthy(gap >= 0.2, "two requests " .. gap .. " s apart")
    assert.equals(15, status(F).records)
  end)

  it("per_host holds across three engines: never two requests in flight to the host at once", function()
    local srv = H.server()
    local R = redis()
    local F = R.url("perhost")
    -- Every engine would run two at once (concurrency 2): per_host = 1 is what serializes them.
    local script = H.script(PER_HOST_JOB)
    local by = three_engines(script, F, { "base=" .. srv.url(""), "n=12", "ms=300" })
    local slow = {}
    for _, e in ipairs(srv.log()) do
      if e.path:find("^/_/slow") then slow[#slow + 1] = e end
    end
    table.sort(slow, function(x, y) return x.time < y.time end)
    assert.equals(12, #slow, cjson.encode(slow))
    for i = 2, #slow do
      assert.truthy(slow[i].time >= slow[i - 1].done, string.format(
        "%s arrived %.3f s before %s was answered (engines: %s)", slow[i].path,
        slow[i - 1].done - slow[i].time, slow[i - 1].path, cjson.encode(by)))
    end
    local n, dups = once(export(F))
    assert.same({}, dups)
    assert.equals(12, n)
    -- no host slot is left behind: the hosts' in-flight sets are empty (so gone) at the end
    assert.equals("", sh_read("redis-cli -p " .. R.port .. " --scan --pattern 'lc:{perhost}:i:*'"))
  end)

  it("per_host: a SIGKILLed engine's hold on the host expires with its lease", function()
    local srv = H.server()
    local R = redis()
    local F = R.url("perhostkill", 1000)
    local script = H.script(PER_HOST_JOB)
    local args = { "run", script, "base=" .. srv.url(""), "n=6", "ms=1500", "--frontier", F, "-q" }
    local function with(t, extra)
      local c = { table.unpack(t) }
      c[#c + 1] = extra
      return c
    end
    local a = H.spawn(with(args, "name=a"), { output = true, timeout = 120 })
    local function in_flight()
      for _, e in ipairs(srv.log()) do
        if e.path:find("^/_/slow") and e.done == cjson.null then return true end
      end
    end
    assert.truthy(H.wait_until(in_flight, 60, 0.05), "a never sent a request")
    a.signal("KILL")
    assert.is_not_nil(a.wait(30))
    -- The host's only slot is a's lease: b gets the host once that lease expired (1 s).
    local b = H.spawn(with(args, "name=b"), { output = true, timeout = 120 })
    assert.equals(0, b.wait(110), H.read(b.stderr_path))
    local n, dups = once(export(F))
    assert.same({}, dups)
    assert.equals(6, n)
    assert.truthy(status(F).reclaimed >= 1)
    assert.equals("", sh_read("redis-cli -p " .. R.port .. " --scan --pattern 'lc:{perhostkill}:i:*'"))
  end)

  it("a page that kills its engine fails for good after retries + 2 lost leases; the rest once", function()
    local srv = H.server()
    local R = redis()
    local F = R.url("poison", 1000)
    local script = H.script(POISON_JOB)
    local last, kills = kill_on_poison(srv, function(i)
      return H.spawn({ "run", script, "base=" .. srv.url(""), "n=20", "name=e" .. i,
        "--frontier", F }, { output = true, timeout = 120 })
    end)
    assert.equals(0, last.wait(10), H.read(last.stderr_path))
    assert.equals(3, kills, H.read(last.stderr_path)) -- retries + 2: the first death is forgiven
    assert.equals(3, srv.count(POISON), "the poison page was loaded again after its last chance")
    local err = H.read(last.stderr_path)
    assert.truthy(err:find("its lease was lost 3 times", 1, true), err)
    local st = status(F)
    assert.equals("done", st.state)
    assert.equals(1, st.failed)
    assert.equals(21, st.done)
    assert.equals(0, st.queued)
    assert.equals(0, st.leased)
    local recs, bad = export(F)
    assert.equals(0, #bad)
    local pages, failed = {}, {}
    for _, rec in ipairs(recs) do
      if rec.failed then failed[#failed + 1] = rec else pages[#pages + 1] = rec end
    end
    local n, dups = once(pages)
    assert.same({}, dups, "pages committed twice")
    assert.equals(21, n, "every other page once")
    for _, rec in ipairs(pages) do
      assert.is_nil(rec.url:find("poison", 1, true))
      assert.equals(0, rec.lost, rec.url .. " counted a lost lease")
    end
    assert.equals(1, #failed)
    assert.truthy(failed[1].failed:find("id=poison", 1, true))
    assert.equals(3, failed[1].lost)
    assert.truthy(failed[1].error:find("its lease was lost 3 times: the engines holding it died "
      .. "or stalled each time (a page that kills the engine?)", 1, true), failed[1].error)
  end)

  it("an engine stopped by SIGINT gives its leases back: restarted, nothing counted or failed", function()
    local srv = H.server()
    local R = redis()
    -- A lease of a minute: a lease not given back would hold its request that long.
    local F = R.url("sigint", 60000)
    local script = H.script(JOB)
    local args = { "run", script, "base=" .. srv.url(""), "n=30", "c=3", "hold=400", "--frontier", F }
    local function with(extra)
      local c = { table.unpack(args) }
      c[#c + 1] = extra
      return c
    end
    local a = H.spawn(with("name=a"), { output = true, timeout = 120 })
    assert.truthy(H.wait_until(function() return status(F).records >= 4 end, 60, 0.05), "no progress")
    assert.truthy(status(F).leased >= 1)
    a.signal("INT")
    assert.equals(130, a.wait(30), H.read(a.stderr_path))
    local st = status(F)
    assert.equals(0, st.leased, "leases kept after a clean stop: " .. cjson.encode(st))
    assert.truthy(st.queued >= 1, cjson.encode(st))
    assert.equals(0, st.reclaimed)
    local t0 = H.now()
    local b = H.spawn(with("name=b"), { output = true, timeout = 120 })
    assert.equals(0, b.wait(100), H.read(b.stderr_path))
    assert.truthy(H.now() - t0 < 50, "b waited for leases to expire")
    st = status(F)
    assert.equals("done", st.state)
    assert.equals(31, st.done)
    assert.equals(0, st.failed)
    assert.equals(0, st.reclaimed)
    local n, dups = once(export(F))
    assert.same({}, dups)
    assert.equals(31, n)
    -- What a had in flight at the interrupt was done by b, normally.
    local by_b = 0
    for _, rec in ipairs(b.result().records) do by_b = by_b + 1 end
    assert.truthy(by_b >= 1)
  end)

  it("a stall longer than the lease: the late acknowledgement is refused, the page done once", function()
    local srv = H.server()
    local R = redis()
    local F = R.url("stall", 1000)
    local script = H.script(JOB)
    -- a holds each page 2 s after loading it; stopped for 4 s, its leases pass to b.
    local a = H.spawn({ "run", script, "base=" .. srv.url(""), "n=12", "hold=2000", "c=2",
      "name=a", "--frontier", F }, { output = true, timeout = 120 })
    assert.truthy(H.wait_until(function() return status(F).leased >= 1 end, 60, 0.05))
    H.sleep(0.5)
    a.signal("STOP")
    local b = H.spawn({ "run", script, "base=" .. srv.url(""), "n=12", "c=2", "name=b",
      "--frontier", F, "-q" }, { output = true, timeout = 120 })
    H.sleep(4)
    a.signal("CONT")
    assert.equals(0, b.wait(100), H.read(b.stderr_path))
    assert.equals(0, a.wait(100), H.read(a.stderr_path))
    local err = H.read(a.stderr_path)
    assert.truthy(err:find("late acknowledgement of", 1, true), err)
    local st = status(F)
    assert.truthy(st.refused >= 1 and st.reclaimed >= 1, cjson.encode(st))
    local recs = export(F)
    local n, dups = once(recs)
    assert.same({}, dups)
    assert.equals(13, n)
    -- What a wrote is what the server took from it: no refused page in its file.
    local mine = a.result().records
    local theirs = {}
    for _, rec in ipairs(recs) do theirs[rec.url] = rec.engine end
    for _, rec in ipairs(mine) do assert.equals("a", theirs[rec.url]) end
  end)
end)
