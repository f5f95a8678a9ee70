-- serve_redis_spec.lua: `luacrawl serve` with redis = "redis://..." runs a POST /jobs that
-- names a "crawl" on that Redis crawl (issue 14). Two servers on one crawl: every page once in
-- `luacrawl export`. A Redis that is unreachable: the job fails within seconds with an error
-- naming Redis while the server answers /health. No redis configured, or a bad name: 400. A
-- restart that cannot read a job's DATA/jobs/ID/crawl lists it failed, not run locally. A queued
-- crawl job whose Redis is unreachable fails in the queue while the running job goes on. A
-- cancelled job gives its leases back, uncounted. Each test starts its own redis-server on a
-- random loopback port and kills it at the end.
local H = require("support.helpers")
local cjson = require("cjson")

local function q(s) return H.quote(s) end

local sh_read = H.sh_read

-- The records `luacrawl export` gives for the crawl, each URL at most once; their count.
local function exported_once(R, crawl)
  local r = H.run({ "export", R .. "?crawl=" .. crawl }, { timeout = 60 })
  assert.equals(0, r.code, r.stderr)
  local seen, n = {}, 0
  for _, rec in ipairs(r.records) do
    assert.is_nil(seen[rec.url], "twice: " .. tostring(rec.url))
    seen[rec.url] = true
    n = n + 1
  end
  return n
end

local redis_pids = {}

local function redis()
  local dir = H.tmpdir()
  math.randomseed(os.time() + H.pid)
  for _ = 1, 20 do
    local port = math.random(20000, 60000)
    local pid = tonumber(sh_read(string.format(
      "redis-server --port %d --bind 127.0.0.1 --save '' --dir %s --daemonize no >>%s 2>&1 </dev/null & echo $!",
      port, q(dir), q(dir .. "/redis.log"))):match("%d+"))
    redis_pids[#redis_pids + 1] = pid
    if H.wait_until(function()
      return sh_read("redis-cli -p " .. port .. " ping 2>/dev/null"):match("PONG")
    end, 10, 0.05) then
      return "redis://127.0.0.1:" .. port .. "/0"
    end
    os.execute("kill -KILL " .. pid)
  end
  error("cannot start redis-server")
end

local function serve(opts)
  local dir = opts.dir or H.tmpdir()
  local args = { "serve", "--listen", "127.0.0.1:0", "--data-dir", dir .. "/data", "--allow-private" }
  if opts.redis then
    args[#args + 1] = "--redis"
    args[#args + 1] = opts.redis
  end
  if opts.config then
    args[#args + 1] = "--config"
    args[#args + 1] = H.write(dir .. "/serve.lua", opts.config)
  end
  local run = H.spawn(args, { timeout = 120 })
  local port = H.wait_until(function()
    return tonumber((H.read(run.stderr_path) or ""):match("serving on http://127%.0%.0%.1:(%d+)/"))
  end, 30, 0.05)
  assert(port, "the server did not start: " .. (H.read(run.stderr_path) or ""))
  return { run = run, dir = dir, base = "http://127.0.0.1:" .. port }
end

local function req(svc, method, path, body)
  local r = H.http(svc.base .. path, { method = method, data = body,
    headers = { "Content-Type: application/json" }, timeout = 30 })
  local ok, v = pcall(cjson.decode, r.body or "")
  r.json = ok and v or nil
  return r
end

local function post(svc, t)
  local r = req(svc, "POST", "/jobs", cjson.encode(t))
  if r.json and r.json.id then r.json.id = math.tointeger(r.json.id) end
  return r
end

local function wait_end(svc, id, timeout)
  return H.wait_until(function()
    local j = req(svc, "GET", "/jobs/" .. id).json
    if j and (j.state == "done" or j.state == "failed" or j.state == "cancelled") then return j end
  end, timeout or 90, 0.1)
end

local JOB = [[
return {
  start = { args.base .. "/_/links?n=" .. args.n },
  max_depth = 1, concurrency = 2, retries = 3,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    job:emit { url = req.url, status = res.status, engine = args.name }
    for _, link in ipairs(page:links()) do job:enqueue(link) end
  end,
}
]]

describe("luacrawl serve with redis", function()
  local site
  before_each(function() site = H.server() end)
  after_each(function()
    for _, pid in ipairs(redis_pids) do os.execute("kill -KILL " .. pid .. " 2>/dev/null") end
    redis_pids = {}
    H.cleanup()
  end)

  it("two servers on one Redis crawl: every page exactly once in the export", function()
    local R = redis()
    local s1, s2 = serve({ redis = R }), serve({ redis = R })
    local a = post(s1, { script = JOB, crawl = "two", args = { base = "http://127.0.0.1:" .. site.port, n = "40", name = "s1" } })
    local b = post(s2, { script = JOB, crawl = "two", args = { base = "http://127.0.0.1:" .. site.port, n = "40", name = "s2" } })
    assert.equals(202, a.status, a.body)
    assert.equals(202, b.status, b.body)
    local ja, jb = wait_end(s1, a.json.id), wait_end(s2, b.json.id)
    assert.equals("done", ja and ja.state, cjson.encode(ja or {}))
    assert.equals("done", jb and jb.state, cjson.encode(jb or {}))
    assert.equals("two", ja.crawl)
    local list = req(s1, "GET", "/jobs").body or ""
    assert.truthy(list:find('"crawl":"two"', 1, true), list)
    assert.equals(41, exported_once(R, "two")) -- the start page and its 40 links
  end)

  -- A Redis that accepts the connection and never answers (the worst case: a blocking check
  -- would hold the loop for its whole timeout), and one whose port refuses.
  for _, case in ipairs({ "silent", "refused" }) do
    it("Redis unreachable (" .. case .. "): the job fails within seconds naming Redis; the server answers meanwhile", function()
      local R
      if case == "silent" then
        local dir = H.tmpdir()
        local pid = tonumber(sh_read(string.format(
          "python3 -c 'import socket,time\ns=socket.socket();s.bind((\"127.0.0.1\",0));s.listen(50)\n"
          .. "print(s.getsockname()[1],flush=True)\nc=[]\nwhile True: c.append(s.accept())' >%s 2>&1 </dev/null & echo $!",
          q(dir .. "/port"))):match("%d+"))
        redis_pids[#redis_pids + 1] = pid
        local port = H.wait_until(function() return tonumber((H.read(dir .. "/port") or ""):match("%d+")) end, 10, 0.05)
        R = "redis://127.0.0.1:" .. assert(port) .. "/0"
      else
        R = redis() -- started and killed: its port refuses
        os.execute("kill -KILL " .. redis_pids[#redis_pids])
        H.wait_until(function() return not H.alive(redis_pids[#redis_pids]) end, 10, 0.02)
      end
      local svc = serve({ redis = R })
      assert.truthy(H.wait_until(function() return req(svc, "GET", "/health").status == 200 end, 30, 0.1))
      local t0 = H.now()
      local a = post(svc, { script = JOB, crawl = "gone", args = { base = "http://127.0.0.1:" .. site.port, n = "3" } })
      assert.equals(202, a.status, a.body)
      assert.is_true(H.now() - t0 < 1.5, "POST /jobs waited on Redis")
      for _ = 1, 5 do -- the loop answers while the connection attempt is under way
        local h0 = H.now()
        assert.equals(200, req(svc, "GET", "/health").status)
        assert.is_true(H.now() - h0 < 0.5, "/health waited on Redis")
        H.sleep(0.3)
      end
      local j = wait_end(svc, a.json.id, 15)
      assert.equals("failed", j and j.state, cjson.encode(j or {}))
      assert.truthy(j.error:find("Redis at 127.0.0.1", 1, true), j.error)
      assert.is_true(H.now() - t0 < 10, "took " .. (H.now() - t0) .. " s")
      assert.equals(200, req(svc, "GET", "/health").status)
    end)
  end

  -- A crawl job that waits in the queue (the running limit is full) when its Redis is found
  -- unreachable: its connection is made when the job is, so it fails in the queue, naming
  -- Redis, without taking the running job's slot; the running job goes on to the end.
  it("Redis unreachable while the crawl job is queued: it fails naming Redis; the running job goes on", function()
    local R = redis() -- started and killed: its port refuses
    os.execute("kill -KILL " .. redis_pids[#redis_pids])
    H.wait_until(function() return not H.alive(redis_pids[#redis_pids]) end, 10, 0.02)
    local svc = serve({ redis = R, config = "return { max_running = 1 }" })
    assert.truthy(H.wait_until(function() return req(svc, "GET", "/health").status == 200 end, 30, 0.1))
    local slow = JOB:gsub("local res = assert", "job:sleep(300); local res = assert")
    local l = post(svc, { script = slow, args = { base = "http://127.0.0.1:" .. site.port, n = "40", name = "local" } })
    assert.equals(202, l.status, l.body)
    local c = post(svc, { script = JOB, crawl = "queued", args = { base = "http://127.0.0.1:" .. site.port, n = "3" } })
    assert.equals(202, c.status, c.body)
    assert.equals("queued", c.json.state, c.body)
    local t0 = H.now()
    local j = wait_end(svc, c.json.id, 15)
    assert.equals("failed", j and j.state, cjson.encode(j or {}))
    assert.truthy(j.error:find("Redis at 127.0.0.1", 1, true), j.error)
    assert.is_true(H.now() - t0 < 10, "took " .. (H.now() - t0) .. " s")
    local lj = req(svc, "GET", "/jobs/" .. l.json.id).json
    assert.equals("running", lj.state, cjson.encode(lj))
    assert.equals(200, req(svc, "GET", "/health").status)
    lj = wait_end(svc, l.json.id, 90)
    assert.equals("done", lj and lj.state, cjson.encode(lj or {}))
    assert.equals(41, lj.stats.records)
    svc.run.signal("TERM")
    assert.equals(0, svc.run.wait(30), H.read(svc.run.stderr_path))
  end)

  it("400 without redis configured, or with a bad crawl name; a bad --redis URL: exit 2", function()
    local svc = serve({})
    local r = post(svc, { script = JOB, crawl = "x", args = {} })
    assert.equals(400, r.status, r.body)
    assert.truthy(r.json.error:find("no redis configured", 1, true), r.body)
    local svr = serve({ redis = "redis://127.0.0.1:1/0" })
    -- The one rule of every crawl name (the CLI's ?crawl=NAME), stated in the answer.
    for name, why in pairs({ ["bad name!"] = "has ' '", ["a&b"] = "has '&'", ["a%26b"] = "has '%'",
                              ["x{y}"] = "has '{'", [""] = "is empty",
                              [("n"):rep(101)] = "is 101 characters long" }) do
      r = post(svr, { script = JOB, crawl = name, args = {} })
      assert.equals(400, r.status, r.body)
      assert.truthy(r.json.error:find("'crawl': bad name: the crawl name", 1, true), r.body)
      assert.truthy(r.json.error:find(why .. " (letters, digits, _ . -; 1 to 100 characters)", 1, true), r.body)
    end
    r = post(svr, { script = JOB, crawl = 5, args = {} })
    assert.equals(400, r.status, r.body)
    local bad = H.run({ "serve", "--listen", "127.0.0.1:0", "--data-dir", H.tmpdir(), "--redis", "http://x" }, { timeout = 10 })
    assert.equals(2, bad.code)
    assert.truthy(bad.stderr:find("redis", 1, true), bad.stderr)
  end)

  it("a restarted server rejoins the job's Redis crawl", function()
    local R = redis()
    local dir = H.tmpdir()
    local s1 = serve({ redis = R, dir = dir })
    local slow = JOB:gsub("local res = assert", "job:sleep(150); local res = assert")
    local a = post(s1, { script = slow, crawl = "again", args = { base = "http://127.0.0.1:" .. site.port, n = "30", name = "x" } })
    assert.equals(202, a.status, a.body)
    H.wait_until(function()
      local j = req(s1, "GET", "/jobs/" .. a.json.id).json
      return j and j.stats and (j.stats.records or 0) >= 3
    end, 60, 0.1)
    s1.run.signal("KILL")
    H.wait_until(function() return not H.alive(s1.run.pid) end, 10, 0.02)
    local s2 = serve({ redis = R, dir = dir })
    local j = wait_end(s2, a.json.id, 90)
    assert.equals("done", j and j.state, cjson.encode(j or {}))
    assert.equals("again", j.crawl)
    assert.equals(31, exported_once(R, "again"), cjson.encode(j) .. (H.read(s2.run.stderr_path) or ""))
  end)

  -- A cancel is a clean stop: the job gives back the leases of its running requests and of its
  -- prefetch buffer before it ends, uncounted, so no request waits for a lease (30 s here) to
  -- expire and none counts as lost (issue 14).
  it("a cancelled job gives its leases back: nothing left leased, nothing counted", function()
    local R = redis()
    local s = serve({ redis = R })
    local slow = JOB:gsub("local res = assert", "job:sleep(300); local res = assert")
    local a = post(s, { script = slow, crawl = "cancel", args = { base = "http://127.0.0.1:" .. site.port, n = "30", name = "x" } })
    assert.equals(202, a.status, a.body)
    local function status()
      local r = H.run({ "status", R .. "?crawl=cancel", "--json" }, { timeout = 30 })
      assert.equals(0, r.code, r.stderr)
      return cjson.decode(r.stdout)
    end
    assert.truthy(H.wait_until(function() return status().records >= 3 end, 60, 0.1), "no progress")
    assert.truthy(status().leased >= 1)
    local d = req(s, "DELETE", "/jobs/" .. a.json.id)
    assert.equals(202, d.status, d.body)
    local j = wait_end(s, a.json.id, 30)
    assert.equals("cancelled", j and j.state, cjson.encode(j or {}))
    local st = status()
    assert.equals(0, st.leased, cjson.encode(st))
    assert.truthy(st.queued >= 1, cjson.encode(st))
    assert.equals(0, st.reclaimed)
    assert.equals(0, st.failed)
  end)

  -- DATA/jobs/ID/crawl that cannot be read is not taken for a missing one (a local job): the
  -- job is listed failed with the file and the reason, and not run on a state.sqlite. A
  -- directory in the file's place (chmod 000 does not stop root), then a file holding no crawl
  -- name; once the file is mended, a restart rejoins the crawl (the failure was not saved).
  it("a restart with an unreadable or bad DATA/jobs/ID/crawl lists the job failed; mended, it rejoins", function()
    local lfs = require("lfs")
    local R = redis()
    local dir = H.tmpdir()
    local s1 = serve({ redis = R, dir = dir })
    local slow = JOB:gsub("local res = assert", "job:sleep(150); local res = assert")
    local a = post(s1, { script = slow, crawl = "mend", args = { base = "http://127.0.0.1:" .. site.port, n = "20", name = "x" } })
    assert.equals(202, a.status, a.body)
    H.wait_until(function()
      local j = req(s1, "GET", "/jobs/" .. a.json.id).json
      return j and j.stats and (j.stats.records or 0) >= 1
    end, 60, 0.1)
    s1.run.signal("KILL")
    H.wait_until(function() return not H.alive(s1.run.pid) end, 10, 0.02)
    local jdir = dir .. "/data/jobs/" .. a.json.id
    local cf = jdir .. "/crawl"
    assert.equals("mend", H.read(cf))
    assert(os.remove(cf))
    assert(lfs.mkdir(cf))
    for _, case in ipairs({ { "cannot read " .. cf .. ": Is a directory", "dir" },
                            { cf .. " holds no crawl name: the crawl name 'a b' has ' '", "a b" } }) do
      if case[2] ~= "dir" then
        assert(os.remove(cf))
        H.write(cf, case[2])
      end
      local s = serve({ redis = R, dir = dir })
      local j = req(s, "GET", "/jobs/" .. a.json.id).json
      assert.equals("failed", j and j.state, cjson.encode(j or {}))
      assert.truthy(j.error:find(case[1], 1, true), j.error)
      assert.truthy(j.error:find("the job's Redis crawl is unknown: not run", 1, true), j.error)
      assert.is_nil(j.crawl)
      assert.truthy((H.read(s.run.stderr_path) or ""):find(case[1], 1, true))
      assert.is_false(H.exists(jdir .. "/state.sqlite"), "the job ran on a state.sqlite")
      assert.truthy(H.wait_until(function() return req(s, "GET", "/health").status == 200 end, 30, 0.1))
      s.run.signal("KILL")
      H.wait_until(function() return not H.alive(s.run.pid) end, 10, 0.02)
    end
    assert(os.remove(cf))
    H.write(cf, "mend")
    local s3 = serve({ redis = R, dir = dir })
    local j = wait_end(s3, a.json.id, 90)
    assert.equals("done", j and j.state, cjson.encode(j or {}))
    assert.equals("mend", j.crawl)
    assert.equals(21, exported_once(R, "mend"), cjson.encode(j) .. (H.read(s3.run.stderr_path) or ""))
  end)
end)
