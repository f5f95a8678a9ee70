-- state_spec.lua: --state FILE: a crawl killed with SIGKILL at any moment resumes with the same
-- command, and in the end every page is written exactly once, as whole JSON lines, with every
-- reference given back. A page that kills the engine every time is failed for good after
-- retries + 2 such deaths; a run stopped by SIGINT counts nothing. Also the tools around the
-- state file and its bad input.
local H = require("support.helpers")
local cjson = require("cjson")

local PAGES = 300
local JOB = [[
return {
  start = { args.base .. "/_/links?n=]] .. PAGES .. [[" },
  max_depth = 1, concurrency = 4, retries = 3,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    job:emit { url = req.url, status = res.status, title = page:title() }
    for _, link in ipairs(page:links()) do job:enqueue(link) end
  end,
}
]]

local function status(db)
  local r = H.run({ "status", db, "--json" }, { timeout = 30 })
  assert.equals(0, r.code, r.stderr)
  return cjson.decode(r.stdout)
end

-- The poison job (as in redis_spec.lua): the spec SIGKILLs the run as soon as the site sees
-- /_/slow?ms=4000&id=poison requested, long before it answers, as the OOM killer or a
-- segfault would. Concurrency 1, retries 1: the third death is its last chance (the first is
-- forgiven).
local POISON = "/_/slow?ms=4000&id=poison"
local POISON_JOB = [[
return {
  start = { args.base .. "/_/links?n=20", args.base .. "]] .. POISON .. [[" },
  max_depth = 1, concurrency = 1, retries = 1,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    job:emit { url = req.url, status = res.status, lost = req.lost }
    for _, link in ipairs(page:links()) do job:enqueue(link) end
  end,
  on_error = function(req, err, job) job:emit { failed = req.url, error = err, lost = req.lost } end,
}
]]

describe("--state", function()
  after_each(function() H.cleanup() end)

  it("survives SIGKILL at 10 moments (some with Chromium killed too): every page once", function()
    local srv = H.server()
    local dir = H.tmpdir()
    local db, out = dir .. "/crawl.db", dir .. "/out.jsonl"
    local script = H.script(JOB)
    local args = { "run", script, "base=" .. srv.url(""), "--state", db, "-o", out, "-q" }
    -- Kill moments spread over a run that takes a few seconds: early (before or during the
    -- first commits) to late.
    local moments = { 0.3, 0.8, 1.2, 1.6, 2.0, 0.5, 1.0, 1.4, 2.4, 3.0 }
    local mid = 0
    for i, t in ipairs(moments) do
      local run = H.spawn(args, { timeout = 120 })
      H.sleep(t)
      if i % 3 == 0 then
        -- The browser dies first, then the engine: both by SIGKILL.
        os.execute("pkill -KILL -f " .. string.format("%q", run.profile_root) .. " 2>/dev/null")
      end
      run.signal("KILL")
      assert.is_not_nil(run.wait(30), "the killed run did not end")
      -- Every line in the output so far is whole JSON.
      local _, bad = H.decode_lines(H.read(out) or "")
      assert.equals(0, #bad, "a torn or bad line after kill " .. i .. ": " .. table.concat(bad, "|"))
      local st = status(db)
      if st.records > 0 and st.state ~= "done" then mid = mid + 1 end
      if st.state == "done" then break end
    end
    -- Kills landed mid-crawl: after them some records were committed, not all.
    assert.is_true(mid >= 3, "only " .. mid .. " kills landed mid-crawl")
    -- The last run, undisturbed, finishes the crawl.
    local r = H.run(args, { stats = true, timeout = 180 })
    assert.equals(0, r.code, r.stderr)
    assert.equals(0, r.stats.refs_outstanding)
    assert.equals(0, #H.chromium_left(r.profile_root))
    local records, bad = H.decode_lines(H.read(out) or "")
    assert.equals(0, #bad, "lines that are not JSON")
    local seen, dups = {}, {}
    for _, rec in ipairs(records) do
      if seen[rec.url] then dups[#dups + 1] = rec.url end
      seen[rec.url] = true
    end
    assert.same({}, dups, "pages written twice")
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.equals(PAGES + 1, n, "every page exactly once")
    local st = status(db)
    assert.equals("done", st.state)
    assert.equals(PAGES + 1, st.done)
    assert.equals(0, st.queued)
    assert.equals(0, st.leased)
    assert.equals(PAGES + 1, st.records)
    -- --stats after a resume covers the whole crawl.
    assert.equals(PAGES + 1, r.stats.pages_ok)
    assert.equals(PAGES + 1, r.stats.records)
    -- The output file gone (moved away, or a power loss cut it): the same command writes
    -- every committed record again, once, and crawls nothing.
    os.remove(out)
    local again = H.run(args, { timeout = 120 })
    assert.equals(0, again.code, again.stderr)
    local rewritten = H.decode_lines(H.read(out) or "")
    assert.equals(PAGES + 1, #rewritten)
    -- export gives the committed records, the same set.
    local e = H.run({ "export", db }, { timeout = 30 })
    assert.equals(0, e.code, e.stderr)
    assert.equals(PAGES + 1, #e.records)
  end)

  it("a page that kills the run: resumed runs fail it for good after retries + 2 deaths", function()
    local srv = H.server()
    local dir = H.tmpdir()
    local db, out = dir .. "/crawl.db", dir .. "/out.jsonl"
    local args = { "run", H.script(POISON_JOB), "base=" .. srv.url(""), "--state", db, "-o", out }
    local kills, last = 0, nil
    while true do
      local run = H.spawn(args, { timeout = 120 })
      local why = H.wait_until(function()
        if srv.count(POISON) > kills then return "poison" end
        if not run.alive() then return "ended" end
      end, 120, 0.01)
      assert.is_not_nil(why)
      if why == "ended" then
        last = run
        break
      end
      run.signal("KILL")
      assert.is_not_nil(run.wait(30))
      kills = kills + 1
      assert.truthy(kills <= 5, "the poison page keeps killing the runs")
    end
    assert.equals(0, last.wait(10), H.read(last.stderr_path))
    assert.equals(3, kills) -- retries + 2: the first death is forgiven
    assert.equals(3, srv.count(POISON), "the poison page was loaded again after its last chance")
    local err = H.read(last.stderr_path)
    assert.truthy(err:find("its lease was lost 3 times: the engine holding it died or stalled each "
      .. "time (a page that kills the engine?)", 1, true), err)
    local st = status(db)
    assert.equals("done", st.state)
    assert.equals(21, st.done)
    assert.equals(1, st.failed)
    assert.equals(0, st.leased)
    local records, bad = H.decode_lines(H.read(out) or "")
    assert.equals(0, #bad)
    local seen, n, failed = {}, 0, {}
    for _, rec in ipairs(records) do
      if rec.failed then
        failed[#failed + 1] = rec
      else
        assert.is_nil(seen[rec.url], "written twice: " .. rec.url)
        seen[rec.url] = true
        n = n + 1
        assert.equals(0, rec.lost, rec.url .. " counted a lost lease")
      end
    end
    assert.equals(21, n, "every other page once")
    assert.equals(1, #failed)
    assert.equals(3, failed[1].lost)
  end)

  it("a run stopped by SIGINT gives its leases back: resumed, nothing counted or failed", function()
    local srv = H.server()
    local dir = H.tmpdir()
    local db, out = dir .. "/crawl.db", dir .. "/out.jsonl"
    local script = H.script([[
local core = require("luacrawl.core")
return {
  start = { args.base .. "/_/links?n=30" }, max_depth = 1, concurrency = 3, retries = 1,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    core.sleep(300)
    job:emit { url = req.url, lost = req.lost }
    for _, link in ipairs(page:links()) do job:enqueue(link) end
  end,
  on_error = function(req, err, job) job:emit { failed = req.url, error = err } end,
}
]])
    local args = { "run", script, "base=" .. srv.url(""), "--state", db, "-o", out }
    for round = 1, 2 do -- twice: a second interrupt of a resumed run counts nothing either
      local run = H.spawn(args, { timeout = 120 })
      local want = round * 5
      assert.truthy(H.wait_until(function()
        local ok, st = pcall(status, db)
        return ok and st.records >= want
      end, 60, 0.05), "no progress")
      run.signal("INT")
      assert.equals(130, run.wait(30), H.read(run.stderr_path))
      local st = status(db)
      assert.equals(0, st.leased, "leases kept after a clean stop")
      assert.truthy(st.queued >= 1, "the crawl ended before the interrupt")
    end
    local r = H.run(args, { timeout = 120 })
    assert.equals(0, r.code, r.stderr)
    local st = status(db)
    assert.equals("done", st.state)
    assert.equals(31, st.done)
    assert.equals(0, st.failed)
    local records, bad = H.decode_lines(H.read(out) or "")
    assert.equals(0, #bad)
    local seen, n = {}, 0
    for _, rec in ipairs(records) do
      assert.is_nil(rec.failed, "failed: " .. tostring(rec.failed))
      assert.is_nil(seen[rec.url], "written twice: " .. rec.url)
      seen[rec.url] = true
      n = n + 1
      assert.equals(0, rec.lost, rec.url .. " counted a lost lease")
    end
    assert.equals(31, n)
  end)

  it("refuses a state file of another job, a file that is not one, and a locked one", function()
    local srv = H.server()
    local dir = H.tmpdir()
    local db = dir .. "/crawl.db"
    local small = H.script([[
return { start = { args.base .. "/_/page?id=1" }, max_depth = 0,
  handle = function(page, req, job) assert(page:navigate(req.url)); job:emit { url = req.url } end }
]])
    local r = H.run({ "run", small, "base=" .. srv.url(""), "--state", db, "-q" }, { timeout = 60 })
    assert.equals(0, r.code, r.stderr)
    assert.equals(1, #r.records)
    -- The same command again: the crawl is done, nothing is written twice.
    r = H.run({ "run", small, "base=" .. srv.url(""), "--state", db, "-q" }, { timeout = 60 })
    assert.equals(0, r.code, r.stderr)
    assert.equals(0, #r.records)
    -- Other arguments: another job.
    r = H.run({ "run", small, "base=" .. srv.url("") .. "/x", "--state", db }, { timeout = 30 })
    assert.equals(2, r.code)
    assert.matches("state%-reuse", r.stderr)
    assert.is_true(H.dir_empty(r.profile_root), "a browser started")
    -- Not a state file.
    local junk = H.write(dir .. "/junk.db", "this is not SQLite\n")
    r = H.run({ "run", small, "base=" .. srv.url(""), "--state", junk }, { timeout = 30 })
    assert.equals(2, r.code)
    assert.matches("^luacrawl: %-%-state", r.stderr)
    r = H.run({ "status", junk }, { timeout = 30 })
    assert.is_not.equals(0, r.code)
    -- Held by a running luacrawl.
    local slow = H.script([[
return { start = { args.base .. "/_/slow?ms=20000" }, max_depth = 0, timeout_ms = 60000,
  handle = function(page, req, job) page:navigate(req.url) end }
]])
    local db2 = dir .. "/held.db"
    local run = H.spawn({ "run", slow, "base=" .. srv.url(""), "--state", db2, "-q" }, { timeout = 60 })
    assert.is_truthy(H.wait_until(function() return H.exists(db2) end, 20, 0.05))
    H.sleep(0.5)
    r = H.run({ "run", slow, "base=" .. srv.url(""), "--state", db2 }, { timeout = 30 })
    assert.equals(2, r.code)
    assert.matches("luacrawl: %-%-state", r.stderr)
    run.signal("INT")
    run.wait(30)
  end)

  -- A resume with another -o than the run before: the state file keeps the position in the
  -- first file; the new one gets every committed record (not the first file's size of its own
  -- bytes followed by the rest), then the crawl goes on; the first file is left as it was.
  it("a resume with another -o writes every record to the new file once; the old one is left as it is", function()
    local srv = H.server()
    local dir = H.tmpdir()
    local db, a, b = dir .. "/crawl.db", dir .. "/a.jsonl", dir .. "/b.jsonl"
    local script = H.script([[
return { start = { args.base .. "/_/links?n=15" }, max_depth = 1, concurrency = 1,
  handle = function(page, req, job)
    job:sleep(150)
    assert(page:navigate(req.url))
    job:emit { url = req.url }
    for _, l in ipairs(page:links()) do job:enqueue(l) end
  end }
]])
    local run = H.spawn({ "run", script, "base=" .. srv.url(""), "--state", db, "-o", a, "-q" }, { timeout = 60 })
    assert.truthy(H.wait_until(function() return H.exists(db) and status(db).records >= 3 end, 30, 0.1))
    run.signal("KILL")
    run.wait(10)
    local in_a = H.read(a)
    assert.truthy(#in_a > 0)
    H.write(b, ("not a record of this crawl\n"):rep(200)) -- longer than a.jsonl
    local r = H.run({ "run", script, "base=" .. srv.url(""), "--state", db, "-o", b }, { timeout = 90 })
    assert.equals(0, r.code, r.stderr)
    local recs, bad = H.decode_lines(H.read(b))
    assert.same({}, bad)
    local seen = {}
    for _, rec in ipairs(recs) do
      assert.is_nil(seen[rec.url], "twice: " .. rec.url)
      seen[rec.url] = true
    end
    assert.equals(16, #recs)
    assert.equals(in_a, H.read(a), "the first output was touched")
    local real = function(p) return (H.sh_read("realpath " .. H.quote(p)):gsub("%s+$", "")) end
    assert.truthy(r.stderr:find("wrote its records to " .. real(a) .. "; writing all ", 1, true), r.stderr)
    assert.truthy(r.stderr:find(" committed records to " .. real(b) .. " (the other is left as it is)", 1, true), r.stderr)
  end)

  -- A finished crawl run again has nothing to do: no browser, one line, exit 0; a missing
  -- output file still gets every committed record again.
  it("a finished crawl run again starts no browser: one line, exit 0; a missing output is written again", function()
    local srv = H.server()
    local dir = H.tmpdir()
    local db, out = dir .. "/crawl.db", dir .. "/out.jsonl"
    local script = H.script([[
return { start = { args.base .. "/_/links?n=2" }, max_depth = 1,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    job:emit { url = req.url }
    for _, l in ipairs(page:links()) do job:enqueue(l) end
  end }
]])
    local args = { "run", script, "base=" .. srv.url(""), "--state", db, "-o", out }
    local r = H.run(args, { timeout = 60, stats = true })
    assert.equals(0, r.code, r.stderr)
    assert.equals(3, #H.decode_lines(H.read(out)))
    local first = H.read(out)
    for _, gone in ipairs({ false, true }) do
      if gone then os.remove(out) end
      local hits = #srv.log()
      r = H.run(args, { timeout = 60, stats = true })
      assert.equals(0, r.code, r.stderr)
      assert.equals(0, r.stats.browser_starts, r.stderr)
      assert.is_true(H.dir_empty(r.profile_root), "a browser profile was made")
      assert.equals(hits, #srv.log(), "the site was fetched")
      local lines = {}
      for line in r.stderr:gmatch("[^\n]+") do lines[#lines + 1] = line end
      assert.equals(1 + (gone and 1 or 0), #lines, r.stderr)
      assert.truthy(r.stderr:find("the crawl in " .. db .. " is finished: 3 done, 0 failed, 3 records", 1, true), r.stderr)
      assert.equals(first, H.read(out))
      assert.equals(3, r.stats.records)
    end
  end)

  it("a full disk stops the crawl (exit 1); what was committed survives and the next run resumes", function()
    local dir = H.tmpdir()
    local full = dir .. "/full"
    os.execute("mkdir -p " .. full)
    -- A 600 KiB file system: the state file fills it part way through the crawl. Mounting
    -- needs root (make test runs as root on CI); elsewhere the case says so and stops.
    if not os.execute("mount -t tmpfs -o size=600k tmpfs " .. full .. " 2>/dev/null") then
      pending("cannot mount a small tmpfs here (needs root)")
      return
    end
    local ok, err = pcall(function()
      local srv = H.server()
      local script = H.script([[
return { start = { args.base .. "/_/links?n=300" }, max_depth = 1, concurrency = 4,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    job:emit { url = req.url, pad = string.rep("x", 3000) }
    for _, l in ipairs(page:links()) do job:enqueue(l) end
  end }
]])
      local out = dir .. "/out.jsonl"
      local r = H.run({ "run", script, "base=" .. srv.url(""), "--state", full .. "/c.db", "-o", out, "-q" },
        { timeout = 120 })
      assert.equals(1, r.code, r.stderr)
      assert.matches("luacrawl: cannot commit to the state file .* full", r.stderr)
      assert.equals(0, #H.chromium_left(r.profile_root))
      local st = status(full .. "/c.db")
      assert.is_true(st.done > 0 and st.done < 301, "done " .. st.done)
      local first = H.decode_lines(H.read(out) or "")
      assert.equals(st.records, #first, "the output holds exactly the committed records")
      -- The disk grows (the file moves to a bigger one): the same crawl resumes and ends.
      assert.is_true(os.execute("cp " .. full .. "/c.db* " .. dir .. "/"))
      r = H.run({ "run", script, "base=" .. srv.url(""), "--state", dir .. "/c.db", "-o", out, "-q" },
        { timeout = 120 })
      assert.equals(0, r.code, r.stderr)
      local recs, bad = H.decode_lines(H.read(out) or "")
      assert.equals(0, #bad)
      local seen, n = {}, 0
      for _, rec in ipairs(recs) do
        assert.is_nil(seen[rec.url], "written twice: " .. rec.url)
        seen[rec.url] = true
        n = n + 1
      end
      assert.equals(301, n)
    end)
    os.execute("umount " .. full .. " 2>/dev/null")
    assert(ok, err)
  end)
end)

