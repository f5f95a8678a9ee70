-- output_spec.lua: a closed or stalled stdout (issue 9, item 14). A reader that goes away
-- (EPIPE) ends the run with exit 1 and one line, fetching nothing again; a reader that stops
-- reading pauses the crawl (bounded backlog) without blocking the loop; a slow reader gets
-- every record whole, once.
local H = require("support.helpers")
local cjson = require("cjson.safe")

local q = H.quote

-- A crawl of /_/links?n=N: one record of `size` bytes of text per page.
local function crawl_job(srv, n, size)
  return H.script(string.format([[
return { start = { %q }, concurrency = 2, retries = 2, max_depth = 1,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    job:emit { url = req.url, text = string.rep("x", %d) }
    for _, l in ipairs(assert(page:links())) do job:enqueue(l) end
  end }]], srv.url("/_/links?n=" .. n), size))
end

-- Runs `shell` (bash) with luacrawl's profile root set; returns the profile root.
local function profile_env()
  local root = H.tmpdir() .. "/profiles"
  assert(os.execute("mkdir -p " .. q(root)))
  return root, "LUACRAWL_PROFILE_ROOT=" .. q(root)
end

local function fetches(srv)
  local per, total = {}, 0
  for _, e in ipairs(srv.log()) do
    if e.path:find("^/_/page") or e.path:find("^/_/links") then
      per[e.path] = (per[e.path] or 0) + 1
      total = total + 1
    end
  end
  return per, total
end

describe("output", function()
  local srv
  before_each(function() srv = H.server() end)
  after_each(function() H.cleanup() end)

  it("piped to head -c 100: exit 1, one line, no page fetched twice", function()
    local dir = H.tmpdir()
    local root, env = profile_env()
    local script = crawl_job(srv, 30, 500)
    local cmd = string.format("cd %s && env %s timeout -s KILL 90 %s run %s 2>%s | head -c 100 >%s; "
      .. "echo ${PIPESTATUS[0]} >%s", q(H.src), env, q(H.bin), q(script), q(dir .. "/stderr"),
      q(dir .. "/out"), q(dir .. "/code"))
    os.execute("bash -c " .. q(cmd))
    local code = tonumber((H.read(dir .. "/code") or ""):match("%d+"))
    local stderr = H.read(dir .. "/stderr") or ""
    assert.equals(1, code, stderr)
    assert.equals(100, #(H.read(dir .. "/out") or ""))
    local lines = 0
    for line in stderr:gmatch("[^\n]+") do
      if line:find("output", 1, true) then lines = lines + 1 end
    end
    assert.equals(1, lines, "one line about the output: " .. stderr)
    assert.matches("cannot write the output %(Broken pipe%)", stderr)
    assert.is_nil(stderr:find("retrying", 1, true), stderr)
    assert.is_nil(stderr:find("failed: ", 1, true), stderr)
    local per = fetches(srv)
    for path, n in pairs(per) do assert.equals(1, n, path .. " fetched " .. n .. " times") end
    assert.same({}, H.chromium_left(root))
  end)

  it("a reader that stops reading: the crawl pauses, the loop does not block, SIGTERM ends it", function()
    local dir = H.tmpdir()
    local fifo, stats = dir .. "/fifo", dir .. "/stats.json"
    assert(os.execute("mkfifo " .. q(fifo)))
    -- Holds the read end open and never reads.
    local holder = tonumber(io.popen("sleep 120 <" .. q(fifo) .. " >/dev/null 2>&1 & echo $!"):read("l"))
    local script = crawl_job(srv, 200, 256 * 1024)
    local run = H.spawn({ "-c", string.format("exec %s run %s --stats %s >%s", q(H.bin), q(script),
      q(stats), q(fifo)) }, { bin = "/bin/bash", timeout = 90 })
    assert.is_truthy(H.wait_until(function() return select(2, fetches(srv)) >= 10 end, 60, 0.1),
      "the crawl did not start: " .. (H.read(run.stderr_path) or ""))
    -- 4 MiB of backlog hold 16 records; with 2 in flight, the crawl must stop well before 200.
    H.sleep(3)
    local _, c1 = fetches(srv)
    H.sleep(2)
    local _, c2 = fetches(srv)
    assert.equals(c1, c2, "the crawl kept fetching with nobody reading")
    assert.is_true(c1 < 40, "fetched " .. c1 .. " pages with nobody reading")
    local t0 = H.now()
    run.signal("TERM")
    local code = run.wait(10)
    local took = H.now() - t0
    local stderr = H.read(run.stderr_path) or ""
    H.kill(holder, "KILL")
    assert.equals(143, code, stderr)
    assert.is_true(took < 2.0, string.format("took %.2f s", took))
    -- The loop took the signal itself (the watchdog did not have to): the stats were written.
    assert.is_nil(stderr:find("did not take it", 1, true), stderr)
    local st = cjson.decode(H.read(stats) or "")
    assert.is_table(st, "no stats: " .. stderr)
    assert.is_true(st.interrupted)
    assert.equals(0, st.refs_outstanding)
    assert.is_true(st.engine_rss_peak_mb < 400, "engine RSS peak " .. tostring(st.engine_rss_peak_mb) .. " MB")
    assert.matches("bytes of output not written", stderr)
    assert.same({}, H.chromium_left(run.profile_root))
  end)

  it("a slow reader gets every record whole, once", function()
    local dir = H.tmpdir()
    local root, env = profile_env()
    local script = crawl_job(srv, 30, 256 * 1024)
    local cmd = string.format("cd %s && env %s timeout -s KILL 90 %s run %s 2>%s | (sleep 4; cat) >%s; "
      .. "echo ${PIPESTATUS[0]} >%s", q(H.src), env, q(H.bin), q(script), q(dir .. "/stderr"),
      q(dir .. "/out"), q(dir .. "/code"))
    os.execute("bash -c " .. q(cmd))
    local stderr = H.read(dir .. "/stderr") or ""
    assert.equals(0, tonumber((H.read(dir .. "/code") or ""):match("%d+")), stderr)
    local records, bad = H.decode_lines(H.read(dir .. "/out"))
    assert.same({}, bad)
    assert.equals(31, #records)
    local seen = {}
    for _, r in ipairs(records) do
      assert.is_nil(seen[r.url], "emitted twice: " .. r.url)
      seen[r.url] = true
      assert.equals(256 * 1024, #r.text)
    end
    local per = fetches(srv)
    for path, n in pairs(per) do assert.equals(1, n, path .. " fetched " .. n .. " times") end
    assert.same({}, H.chromium_left(root))
  end)
end)
