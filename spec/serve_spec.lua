-- serve_spec.lua: `luacrawl serve` seen by real HTTP clients (curl) against the real server on
-- a random loopback port, with a local test site (server.py). Every endpoint; 20 clients at
-- once; a cancelled job; a job that breaks a budget; a client that goes away mid-stream; a
-- burst over the queue limit (429s, not time-outs); kill -9 and a restart that resumes
-- unfinished jobs, none twice; SIGTERM's graceful stop; the status page in real Chromium.
local H = require("support.helpers")
local cjson = require("cjson")

local function q(s) return H.quote(s) end

-- Starts `luacrawl serve` on 127.0.0.1:0; returns svc with base URL, run, dir.
local function serve(opts)
  opts = opts or {}
  local dir = opts.dir or H.tmpdir()
  local args = { "serve", "--listen", "127.0.0.1:0", "--data-dir", dir .. "/data" }
  if opts.allow_private ~= false then args[#args + 1] = "--allow-private" end
  if opts.config then
    args[#args + 1] = "--config"
    args[#args + 1] = H.write(dir .. "/serve.lua", opts.config)
  end
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  local run = H.spawn(args, { timeout = opts.timeout or 240 })
  local port = H.wait_until(function()
    local text = H.read(run.stderr_path) or ""
    return tonumber(text:match("serving on http://127%.0%.0%.1:(%d+)/"))
  end, 30, 0.05)
  assert(port, "the server did not start: " .. (H.read(run.stderr_path) or ""))
  return { run = run, port = port, dir = dir, base = "http://127.0.0.1:" .. port }
end

local function req(svc, method, path, body, headers)
  local r = H.http(svc.base .. path, { method = method, data = body, headers = headers, timeout = 60 })
  local ok, v = pcall(cjson.decode, r.body or "")
  r.json = ok and v or nil
  return r
end

local function post_job(svc, script, args)
  local r = req(svc, "POST", "/jobs", cjson.encode({ script = script, args = args or {} }),
                { "Content-Type: application/json" })
  if r.json and r.json.id then r.json.id = math.tointeger(r.json.id) end -- cjson: floats
  return r
end

local function job_state(svc, id)
  local r = req(svc, "GET", "/jobs/" .. id)
  return r.json and r.json.state, r.json
end

local function wait_state(svc, id, states, timeout)
  local last
  local j = H.wait_until(function()
    local st, j = job_state(svc, id)
    last = j
    for _, s in ipairs(states) do if st == s then return j end end
  end, timeout or 60, 0.1)
  if not j then
    print("job " .. id .. " is " .. cjson.encode(last or {}) .. "; the server said:\n" ..
          (H.read(svc.run.stderr_path) or ""):sub(-3000))
  end
  return j
end

local function metric(svc, name)
  local text = req(svc, "GET", "/metrics").body or ""
  local pat = "\n" .. name:gsub("[%[%]%(%)%.%%%+%-%*%?%^%$]", "%%%0") .. " ([%d%.e%+]+)"
  return tonumber(("\n" .. text):match(pat))
end

-- A job of N pages of the site, one record per page, at concurrency C, each page after `ms`.
local PAGES_JOB = [[
local start = {}
for i = 1, tonumber(args.n) do
  start[#start + 1] = args.base .. "/_/slow?ms=" .. args.ms .. "&i=" .. i
end
return {
  start = start, concurrency = tonumber(args.c or "2"), retries = 0,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    job:emit { url = req.url, status = res.status }
  end,
}
]]

-- Runs `n` curl clients at once (shell background jobs); returns a list of {code, body, secs}.
local function burst(n, cmd_of)
  local dir = H.tmpdir()
  local parts = {}
  for i = 1, n do
    parts[#parts + 1] = string.format("(%s -o %s -D %s -w '%%{http_code} %%{time_total}' > %s 2>/dev/null) &",
      cmd_of(i), q(dir .. "/body" .. i), q(dir .. "/head" .. i), q(dir .. "/code" .. i))
  end
  os.execute(table.concat(parts, " ") .. " wait")
  local out = {}
  for i = 1, n do
    local line = H.read(dir .. "/code" .. i) or ""
    local code, secs = line:match("^(%d+) ([%d%.]+)")
    out[i] = { code = tonumber(code), secs = tonumber(secs), body = H.read(dir .. "/body" .. i),
               head = H.read(dir .. "/head" .. i) or "" }
  end
  return out
end

describe("luacrawl serve", function()
  local site
  before_each(function() site = H.server() end)
  after_each(function() H.cleanup() end)

  it("answers every endpoint; /crawl renders, streams and refuses bad input", function()
    local svc = serve()
    -- /health: 200 once a browser answered
    assert.truthy(H.wait_until(function() return req(svc, "GET", "/health").status == 200 end, 30, 0.2))
    -- POST /crawl with every return kind
    local body = cjson.encode({ urls = { site.url("/"), site.url("/a.html") },
                                ["return"] = { "html", "markdown", "links", "text", "screenshot" },
                                wait_until = "load", timeout_ms = 10000,
                                context = { user_agent = "serve-spec-agent/1.0" } })
    local r = req(svc, "POST", "/crawl", body)
    assert.equals(200, r.status, r.body)
    local res = r.json.results
    assert.equals(2, #res)
    assert.equals(site.url("/"), res[1].url)
    assert.equals(site.url("/a.html"), res[2].url)
    assert.equals(200, res[1].status)
    assert.equals("Fixture home", res[1].title)
    assert.truthy(res[1].html:find("fixture-page-index", 1, true))
    assert.truthy(res[1].markdown:find("# Fixture home", 1, true))
    assert.truthy(res[1].text:find("fixture-page-index", 1, true))
    assert.equals(site.url("/a.html"), res[1].links[1])
    assert.equals("iVBORw0KGgo", res[1].screenshot:sub(1, 11)) -- base64 of a PNG's signature
    -- the context's user agent reached the site
    local ua
    for _, e in ipairs(site.log()) do if e.path == "/a.html" then ua = e.ua end end
    assert.equals("serve-spec-agent/1.0", ua)
    -- ?stream=1: NDJSON, one line per URL
    r = req(svc, "POST", "/crawl?stream=1", cjson.encode({ urls = { site.url("/b.html"), site.url("/sub/") } }))
    assert.equals(200, r.status)
    local lines = H.decode_lines(r.body)
    assert.equals(2, #lines)
    assert.truthy(r.headers["content-type"]:find("ndjson", 1, true))
    -- a failed navigation is a result with an error, not a failed request
    r = req(svc, "POST", "/crawl", cjson.encode({ urls = { "http://127.0.0.1:1/nothing" } }))
    assert.equals(200, r.status)
    assert.truthy(r.json.results[1].error)
    -- bad input: 400 with one message
    r = req(svc, "POST", "/crawl", cjson.encode({ urls = {} }))
    assert.equals(400, r.status)
    assert.truthy(r.json.error:find("urls", 1, true))
    r = req(svc, "POST", "/crawl", cjson.encode({ urls = { site.url("/") }, ["return"] = { "pdf" } }))
    assert.equals(400, r.status)
    r = req(svc, "POST", "/crawl", "not json")
    assert.equals(400, r.status)
    -- host rules: a link-local address is refused even with --allow-private
    r = req(svc, "POST", "/crawl", cjson.encode({ urls = { "http://169.254.169.254/latest/meta-data" } }))
    assert.equals(400, r.status)
    assert.truthy(r.json.error:find("link%-local"))
    -- POST /jobs, GET /jobs, GET /jobs/ID, records
    r = post_job(svc, PAGES_JOB, { n = "6", ms = "0", base = site.url(""):gsub("/$", "") })
    assert.equals(202, r.status, r.body)
    local id = r.json.id
    local j = wait_state(svc, id, { "done" })
    assert.truthy(j, "the job did not finish")
    assert.equals(6, j.stats.pages_ok)
    assert.equals(6, j.stats.records)
    r = req(svc, "GET", "/jobs")
    assert.equals(200, r.status)
    local found
    for _, x in ipairs(r.json.jobs) do if x.id == id then found = x end end
    assert.equals("done", found.state)
    r = req(svc, "GET", "/jobs/" .. id .. "/records")
    assert.equals(6, #H.decode_lines(r.body))
    r = req(svc, "GET", "/jobs/" .. id .. "/records?from=4")
    local tail = H.decode_lines(r.body)
    assert.equals(2, #tail)
    assert.equals(200, tail[1].status)
    assert.equals(404, req(svc, "GET", "/jobs/99999").status)
    assert.equals(400, req(svc, "GET", "/jobs/" .. id .. "/records?from=x").status)
    assert.equals(405, req(svc, "DELETE", "/metrics").status)
    assert.equals(404, req(svc, "GET", "/nothing").status)
    -- a bad script is 400, with boot's message
    r = post_job(svc, "return { handle = function() end }")
    assert.equals(400, r.status)
    assert.truthy(r.json.error:find("start", 1, true))
    -- a sandboxed job cannot reach io
    r = post_job(svc, "io.open('/etc/passwd')\nreturn {}")
    assert.equals(400, r.status)
    -- /metrics: Prometheus text with the named series
    local text = req(svc, "GET", "/metrics").body
    for _, name in ipairs({ "luacrawl_contexts_open", "luacrawl_refs_outstanding",
                            "luacrawl_http_requests_total{code=\"200\"}", "luacrawl_jobs{state=\"done\"}",
                            "luacrawl_queue_depth", "luacrawl_admission_rejections_total{reason=\"queue_full\"}",
                            "luacrawl_pages_created_total", "luacrawl_pages_reused_total",
                            "luacrawl_browser_pss_bytes", "luacrawl_browser_restarts_total",
                            "luacrawl_http_request_duration_seconds_bucket{le=\"+Inf\"}" }) do
      assert.truthy(text:find("\n" .. name .. " ", 1, true), name)
    end
    assert.equals(0, metric(svc, "luacrawl_refs_outstanding"))
    assert.truthy(metric(svc, "luacrawl_pages_created_total") >= 1)
    -- a body over the cap is 413 (the cap is 1 MiB by default)
    local big = H.write(H.tmpdir() .. "/big", string.rep("x", 1100000))
    local code = io.popen(string.format("curl -s -o /dev/null -w '%%{http_code}' -H 'Expect:' "
      .. "--data-binary @%s %s", q(big), q(svc.base .. "/jobs"))):read("a")
    assert.equals("413", code)
    assert.equals(1, metric(svc, 'luacrawl_admission_rejections_total{reason="body_too_large"}'))
    -- SIGTERM: a graceful stop, exit 0, every reference given back, no Chromium left
    svc.run.signal("TERM")
    assert.equals(0, svc.run.wait(30))
    assert.truthy((H.read(svc.run.stderr_path) or ""):find("stopped: refs_outstanding 0", 1, true))
    assert.same({}, H.chromium_left(svc.run.profile_root))
  end)

  it("shows a status page with a memory chart that renders in Chromium", function()
    local svc = serve()
    H.sleep(1)
    local r = req(svc, "GET", "/")
    assert.equals(200, r.status)
    assert.truthy(r.body:find("<svg id=memchart", 1, true))
    local out = H.tmpdir() .. "/shot.png"
    local job = H.script(string.format([[
return { start = %q, retries = 0, handle = function(page, req, job)
  assert(page:navigate(req.url))
  local pts = assert(page:eval("document.querySelector('#memchart polyline').getAttribute('points')"))
  local box = assert(page:eval("JSON.stringify(document.querySelector('#memchart').getBoundingClientRect())"))
  local png = assert(page:screenshot())
  local f = assert(io.open(%q, "wb")); f:write(png); f:close()
  job:emit { points = pts, box = box, summary = page:text():match("running %%d+") }
end }]], svc.base .. "/", out))
    local res = H.run({ "run", job }, { output = true, timeout = 60 })
    assert.equals(0, res.code, res.stderr)
    local rec = H.decode_lines(H.read(res.output_path))[1]
    assert.truthy(rec.points:match("%d+%.%d,%d+%.%d"), "the chart has points")
    local box = cjson.decode(rec.box)
    assert.truthy(box.width >= 620 and box.width <= 624, "chart width " .. box.width) -- + border
    assert.truthy(rec.summary)
    local png = H.read(out)
    assert.equals("\137PNG", png:sub(1, 4))
    assert.truthy(#png > 2000)
  end)

  it("serves 20 clients at once, each its own user agent, all answered", function()
    local svc = serve({ config = "return { max_running = 4, max_queue = 32 }" })
    assert.truthy(H.wait_until(function() return req(svc, "GET", "/health").status == 200 end, 30, 0.2))
    local out = burst(20, function(i)
      local body = cjson.encode({ urls = { site.url("/_/ua?i=" .. i) }, ["return"] = { "text" },
                                  context = { user_agent = "client-" .. i } })
      return string.format("curl -s --max-time 120 -X POST --data-binary %s %s", q(body), q(svc.base .. "/crawl"))
    end)
    for i, o in ipairs(out) do
      assert.equals(200, o.code, "client " .. i .. ": " .. tostring(o.body))
      local res = cjson.decode(o.body).results[1]
      assert.equals("client-" .. i, res.title)
    end
    assert.equals(0, H.wait_until(function()
      local n = metric(svc, "luacrawl_refs_outstanding")
      return n == 0 and 0
    end, 10, 0.1))
    assert.equals(20, metric(svc, "luacrawl_crawl_requests_total"))
  end)

  it("/crawl requests with the same context options share a context; isolated ones do not", function()
    local root = H.tmpdir()
    H.write(root .. "/setcookie.html", "<!doctype html><title>set</title><script>"
      .. "document.cookie = 'visit=' + location.search.slice(1) + '; path=/'</script>")
    local own = H.server(root)
    local svc = serve()
    local function crawl(url, extra)
      local body = { urls = { url }, ["return"] = { "text" }, context = { user_agent = "shared-ua" } }
      for k, v in pairs(extra or {}) do body[k] = v end
      local r = req(svc, "POST", "/crawl", cjson.encode(body), { "Content-Type: application/json" })
      assert.equals(200, r.status, r.body)
      return r.json.results[1]
    end
    assert.equals("set", crawl(own.url("/setcookie.html?one")).title)
    -- The next request, same options: the same context, so the cookie the first one got.
    local seen = crawl(own.url("/_/headers")).text
    assert.truthy(seen:find("visit=one", 1, true), seen)
    assert.equals(1, metric(svc, "luacrawl_contexts_created_total"))
    assert.truthy(metric(svc, "luacrawl_pages_reused_total") >= 1)
    -- Isolated: contexts of its own, without the cookie.
    local alone = crawl(own.url("/_/headers"), { isolated = true }).text
    assert.falsy(alone:find("visit=", 1, true), alone)
    assert.equals(2, metric(svc, "luacrawl_contexts_created_total"))
    local bad = req(svc, "POST", "/crawl", cjson.encode({ urls = { own.url("/") }, isolated = "yes" }))
    assert.equals(400, bad.status)
    assert.truthy(bad.json.error:find("'isolated' must be a boolean", 1, true), bad.body)
    assert.equals(0, metric(svc, "luacrawl_refs_outstanding"))
  end)

  it("a burst over the queue limit gets 429s with Retry-After, not time-outs", function()
    local svc = serve({ config = "return { max_running = 1, max_queue = 2 }" })
    assert.truthy(H.wait_until(function() return req(svc, "GET", "/health").status == 200 end, 30, 0.2))
    local out = burst(10, function(i)
      local body = cjson.encode({ urls = { site.url("/_/slow?ms=1500&b=" .. i) } })
      return string.format("curl -s --max-time 60 -X POST --data-binary %s %s", q(body), q(svc.base .. "/crawl"))
    end)
    local ok, limited = 0, 0
    for _, o in ipairs(out) do
      assert.truthy(o.code == 200 or o.code == 429, "got " .. tostring(o.code))
      if o.code == 429 then
        limited = limited + 1
        assert.truthy(o.head:lower():find("retry%-after: %d"), o.head)
        assert.truthy(o.secs < 5, "a 429 must come at once, took " .. o.secs)
      else
        ok = ok + 1
      end
    end
    assert.truthy(limited >= 1, "no 429")
    assert.truthy(ok >= 3, "fewer than 3 admitted")
    assert.equals(limited, metric(svc, 'luacrawl_admission_rejections_total{reason="queue_full"}'))
  end)

  it("cancels a job (DELETE) and gives back every reference; a budget breaks a job", function()
    local svc = serve()
    local base = site.url(""):gsub("/$", "")
    local r = post_job(svc, PAGES_JOB, { n = "200", ms = "200", c = "2", base = base })
    assert.equals(202, r.status, r.body)
    local id = r.json.id
    assert.truthy(H.wait_until(function()
      local _, j = job_state(svc, id)
      return j and j.stats.records >= 2
    end, 60, 0.1))
    r = req(svc, "DELETE", "/jobs/" .. id)
    assert.equals(202, r.status)
    local j = wait_state(svc, id, { "cancelled" }, 30)
    assert.truthy(j, "not cancelled")
    assert.truthy(j.stats.records < 200)
    assert.equals(0, metric(svc, "luacrawl_refs_outstanding"))
    -- its records stay readable, and the stream ends
    r = req(svc, "GET", "/jobs/" .. id .. "/records")
    assert.equals(j.stats.records, #H.decode_lines(r.body))
    -- a budget: two navigations allowed, five pages asked
    r = post_job(svc, PAGES_JOB:gsub("retries = 0,", "retries = 0, budgets = { navigations = 2 },"),
                 { n = "5", ms = "0", c = "1", base = base })
    assert.equals(202, r.status, r.body)
    j = wait_state(svc, r.json.id, { "failed" }, 60)
    assert.truthy(j, "the budget did not fail the job")
    assert.truthy(j.error:find("navigations", 1, true), j.error)
    assert.equals(0, metric(svc, "luacrawl_refs_outstanding"))
    -- the server goes on
    assert.equals(200, req(svc, "POST", "/crawl", cjson.encode({ urls = { site.url("/") } })).status)
  end)

  it("survives a client that goes away mid-stream; a slow stream still gets everything", function()
    local svc = serve()
    local base = site.url(""):gsub("/$", "")
    local r = post_job(svc, PAGES_JOB, { n = "30", ms = "100", c = "2", base = base })
    local id = r.json.id
    -- a reader that leaves after 1 s, in the middle of the stream
    local t0 = H.now()
    os.execute(string.format("curl -s -N --max-time 1 %s > /dev/null 2>&1", q(svc.base .. "/jobs/" .. id .. "/records")))
    assert.truthy(H.now() - t0 < 5)
    -- a /crawl?stream=1 client that goes away: its crawl is cancelled
    os.execute(string.format("curl -s -N --max-time 0.5 -X POST --data-binary %s %s > /dev/null 2>&1",
      q(cjson.encode({ urls = { site.url("/_/slow?ms=3000") } })), q(svc.base .. "/crawl?stream=1")))
    -- a slow reader (64 bytes/s limit at first) still gets every record, once
    local j = wait_state(svc, id, { "done" }, 90)
    assert.truthy(j)
    local out = H.tmpdir() .. "/slow"
    os.execute(string.format("curl -s --limit-rate 2k --max-time 60 %s > %s", q(svc.base .. "/jobs/" .. id .. "/records"), q(out)))
    local recs = H.decode_lines(H.read(out))
    assert.equals(30, #recs)
    local seen = {}
    for _, rec in ipairs(recs) do
      assert.is_nil(seen[rec.url])
      seen[rec.url] = true
    end
    assert.equals(200, req(svc, "GET", "/health").status)
    assert.truthy(H.wait_until(function() return metric(svc, "luacrawl_refs_outstanding") == 0 end, 15, 0.1))
  end)

  it("resumes unfinished jobs after kill -9; none runs twice", function()
    local dir = H.tmpdir()
    local svc = serve({ dir = dir })
    local base = site.url(""):gsub("/$", "")
    -- one job that finishes before the kill, one that is cut in the middle
    local r1 = post_job(svc, PAGES_JOB, { n = "3", ms = "0", c = "1", base = base })
    assert.truthy(wait_state(svc, r1.json.id, { "done" }, 60))
    local r2 = post_job(svc, PAGES_JOB, { n = "40", ms = "150", c = "1", base = base })
    local id = r2.json.id
    assert.truthy(H.wait_until(function()
      local _, j = job_state(svc, id)
      return j and j.stats.records >= 5
    end, 60, 0.1))
    svc.run.signal("KILL")
    svc.run.wait(10)
    assert.truthy(H.wait_until(function() return #H.chromium_left(svc.run.profile_root) == 0 end, 10, 0.1))
    local before = #site.log()
    local svc2 = serve({ dir = dir })
    local j = wait_state(svc2, id, { "done" }, 120)
    assert.truthy(j, "the job did not resume")
    local recs = H.decode_lines(req(svc2, "GET", "/jobs/" .. id .. "/records").body)
    assert.equals(40, #recs)
    local seen = {}
    for _, rec in ipairs(recs) do
      assert.is_nil(seen[rec.url], "twice: " .. rec.url)
      seen[rec.url] = true
    end
    -- the finished job was not run again, and pages done before the kill were not fetched again
    assert.equals("done", (job_state(svc2, r1.json.id)))
    local again = 0
    for i, e in ipairs(site.log()) do
      if i > before and e.path:find("i=", 1, true) then again = again + 1 end
      if i > before then assert.falsy(e.path:find("ms=0&i=", 1, true), "the done job ran again") end
    end
    assert.truthy(again < 40, "the resumed job started over")
    svc2.run.signal("TERM")
    assert.equals(0, svc2.run.wait(30))
  end)

  -- A restart that cannot read a file of an unfinished job (a directory in its place: chmod
  -- 000 does not stop root; one over its size; args missing; a state it does not know) lists
  -- the job failed with the file and the reason instead of queueing it on a guess (again, or
  -- without its args); the failure is not saved, so once the files are mended it resumes.
  it("a restart that cannot read a job's state, args or script lists it failed; mended, it resumes", function()
    local lfs = require("lfs")
    local dir = H.tmpdir()
    local svc = serve({ dir = dir })
    local base = site.url(""):gsub("/$", "")
    local id = post_job(svc, PAGES_JOB, { n = "30", ms = "150", c = "1", base = base }).json.id
    assert.truthy(H.wait_until(function()
      local _, j = job_state(svc, id)
      return j and j.stats.records >= 2
    end, 60, 0.1))
    svc.run.signal("KILL")
    svc.run.wait(10)
    assert.truthy(H.wait_until(function() return #H.chromium_left(svc.run.profile_root) == 0 end, 10, 0.1))
    local jdir = dir .. "/data/jobs/" .. id
    local keep = { state = H.read(jdir .. "/state"), args = H.read(jdir .. "/args"),
                   ["script.lua"] = H.read(jdir .. "/script.lua") }
    local function put(name, how) -- a directory, a text, or nil: absent
      local p = jdir .. "/" .. name
      if lfs.attributes(p, "mode") == "directory" then assert(lfs.rmdir(p)) else os.remove(p) end
      if how == "dir" then assert(lfs.mkdir(p)) elseif how then H.write(p, how) end
    end
    for _, case in ipairs({
      { "state", "dir", "cannot read " .. jdir .. "/state: Is a directory; the job's state is unknown: not run" },
      { "state", ("x"):rep(70000), "cannot read " .. jdir .. "/state: it holds over 65536 bytes; the job's state is unknown" },
      { "state", "state bogus\n", jdir .. "/state holds no job state ('bogus'); the job's state is unknown" },
      { "args", "dir", "cannot read " .. jdir .. "/args: Is a directory; the job's args are unknown: not run" },
      { "args", nil, "cannot read " .. jdir .. "/args: No such file or directory; the job's args are unknown" },
      { "script.lua", "dir", "cannot read " .. jdir .. "/script.lua: Is a directory; the job's script is unknown" },
    }) do
      put(case[1], case[2])
      local before = #site.log()
      local s = serve({ dir = dir })
      local st, j = job_state(s, id)
      assert.equals("failed", st, cjson.encode(j or {}))
      assert.truthy(j.error:find(case[3], 1, true), j.error)
      assert.truthy((H.read(s.run.stderr_path) or ""):find(case[3]:match("^(.-);"), 1, true))
      assert.truthy(H.wait_until(function() return req(s, "GET", "/health").status == 200 end, 30, 0.1))
      assert.equals(before, #site.log(), "the job ran")
      s.run.signal("TERM") -- a clean stop does not save the failure either
      assert.equals(0, s.run.wait(30), H.read(s.run.stderr_path))
      put(case[1], keep[case[1]])
    end
    local svc2 = serve({ dir = dir })
    local j = wait_state(svc2, id, { "done" }, 120)
    assert.truthy(j, "the mended job did not resume")
    local recs = H.decode_lines(req(svc2, "GET", "/jobs/" .. id .. "/records").body)
    assert.equals(30, #recs)
    svc2.run.signal("TERM")
    assert.equals(0, svc2.run.wait(30))
  end)

  it("refuses private addresses without --allow-private; token rules; bad config", function()
    local svc = serve({ allow_private = false })
    local r = req(svc, "POST", "/crawl", cjson.encode({ urls = { site.url("/") } }))
    assert.equals(400, r.status)
    assert.truthy(r.json.error:find("loopback", 1, true), r.json.error)
    r = post_job(svc, "return { start = 'http://127.0.0.1:9/', handle = function() end }")
    assert.equals(400, r.status)
    -- a token: 401 without it, 200 with it (/health needs none)
    local tok = H.write(H.tmpdir() .. "/token", "s3cret-token-0123456789\n")
    local svt = serve({ args = { "--token-file", tok } })
    r = req(svt, "GET", "/jobs")
    assert.equals(401, r.status)
    assert.equals("Bearer", r.headers["www-authenticate"])
    assert.equals(401, req(svt, "GET", "/jobs", nil, { "Authorization: Bearer wrong-token-0123456789" }).status)
    assert.equals(200, req(svt, "GET", "/jobs", nil, { "Authorization: Bearer s3cret-token-0123456789" }).status)
    assert.truthy(H.wait_until(function() return req(svt, "GET", "/health").status == 200 end, 30, 0.2))
    -- a non-loopback listen address without a token: refused before anything starts
    local res = H.run({ "serve", "--listen", "0.0.0.0:0", "--data-dir", H.tmpdir() })
    assert.equals(2, res.code)
    assert.truthy(res.stderr:find("token%-file"))
    -- bad configuration: one line, exit 2
    local cfg = H.write(H.tmpdir() .. "/bad.lua", "return { max_runing = 3 }")
    res = H.run({ "serve", "--config", cfg, "--data-dir", H.tmpdir() })
    assert.equals(2, res.code)
    assert.truthy(res.stderr:find("unknown field 'max_runing'", 1, true))
    cfg = H.write(H.tmpdir() .. "/bad2.lua", "return { max_running = 0 }")
    res = H.run({ "serve", "--config", cfg, "--data-dir", H.tmpdir() })
    assert.equals(2, res.code)
    assert.truthy(res.stderr:find("max_running", 1, true))
    cfg = H.write(H.tmpdir() .. "/bad3.lua", "return { policy = { max_contexts = -1 } }")
    res = H.run({ "serve", "--config", cfg, "--data-dir", H.tmpdir() })
    assert.equals(2, res.code)
  end)
end)
