-- sandbox_spec.lua: hostile scripts under --sandbox (docs/API.md, "Sandbox"). Each one runs
-- against a local server and must end with its own clear error, within its budget, with the
-- exit code the docs give, no reference left (--stats refs_outstanding 0) and no Chromium
-- left. Every context gets a dead proxy (127.0.0.1:9): even if a host rule failed, nothing
-- could leave the machine. And a legitimate job gives the same records with and without it.
local H = require("support.helpers")

local PROXY = [[proxy = "http://127.0.0.1:9"]]

-- kind: "load" (the chunk itself; exit 2), "request" (the handler's request fails; exit 0),
-- "job" (a job-level budget; exit 1). `code` is the handler's body (or, for "load", the
-- chunk before `return`). `expect`: a plain string the run's stderr must contain.
-- `budgets`: the job's budgets (lowered, so each case ends quickly). `max_s`: the run must
-- end within this many seconds.
local CASES = {
  { name = "reading a file", kind = "request", expect = "global 'io'",
    code = [[local f = io.open("/etc/passwd") job:emit { leak = f:read("a") }]] },
  { name = "writing a file", kind = "request", expect = "global 'io'",
    code = [[io.output("/tmp/luacrawl-sandbox-pwned"):write("x")]] },
  { name = "running a command", kind = "request", expect = "field 'execute'",
    code = [[os.execute("touch /tmp/luacrawl-sandbox-pwned")]] },
  { name = "popen through io", kind = "load", expect = "global 'io'",
    code = [[io.popen("id")]] },
  { name = "reading the environment", kind = "request", expect = "field 'getenv'",
    code = [[job:emit { home = os.getenv("HOME") }]] },
  { name = "removing a file", kind = "request", expect = "field 'remove'",
    code = [[os.remove("/tmp/x")]] },
  { name = "exiting the process", kind = "request", expect = "field 'exit'",
    code = [[os.exit(3)]] },
  { name = "loading bytecode", kind = "request", expect = "only text chunks",
    code = [[local f = load("\27Lua\84\0", "x", "b") f()]] },
  { name = "bytecode passed to load in text mode", kind = "request", expect = "attempt to load a binary chunk",
    code = [[local f, err = load("\27LuaT\0\25\147\13\10\26\10") error(err)]] },
  { name = "string.dump", kind = "request", expect = "field 'dump'",
    code = [[local s = string.dump(function() end) job:emit { s = s }]] },
  { name = "dump through the string metatable", kind = "request", expect = "method 'dump'",
    code = [[local s = ("x"):dump()]] },
  { name = "debug.sethook", kind = "request", expect = "global 'debug'",
    code = [[debug.sethook()]] },
  { name = "require luacrawl.core", kind = "request", expect = "global 'require'",
    code = [[local core = require "luacrawl.core" core.kill_browser()]] },
  { name = "package.loaded", kind = "request", expect = "global 'package'",
    code = [[local core = package.loaded["luacrawl.core"] core.kill_browser()]] },
  { name = "dofile and loadfile", kind = "request", expect = "global 'dofile'",
    code = [[assert(loadfile == nil) dofile("/etc/passwd")]] },
  { name = "the engine's internals through the page", kind = "request", expect = "method '_send'",
    code = [[assert(getmetatable(page) == false) assert(next(page) == nil) page:_send("Target.getTargets", "{}", 1000)]] },
  { name = "the engine's hooks through the job", kind = "request", expect = "field 'fetch_robots'",
    code = [[assert(getmetatable(job) == false) job.fetch_robots("http://127.0.0.1:9")]] },
  { name = "the string metatable", kind = "request", expect = "attempt to index a boolean value",
    code = [[local mt = getmetatable("") mt.__index.find = function() return 1 end]] },
  { name = "a finalizer, where no hook runs", kind = "request", expect = "__gc is not allowed",
    code = [[setmetatable({}, { __gc = function() while true do end end })]] },
  { name = "collectgarbage beyond count", kind = "request", expect = "only \"count\"",
    code = [[assert(collectgarbage("count") > 0) collectgarbage("stop")]] },
  { name = "raw CDP Target.disposeBrowserContext", kind = "request", expect = "Target.disposeBrowserContext is not allowed in the sandbox",
    code = [[page:send("Target.disposeBrowserContext", { browserContextId = page:info().browser_context })]] },
  { name = "raw CDP Fetch.enable", kind = "request", expect = "Fetch.enable is not allowed",
    code = [[page:send("Fetch.enable", { patterns = { { urlPattern = "*" } } })]] },
  { name = "raw CDP Page.navigate", kind = "request", expect = "Page.navigate is not allowed",
    code = [[page:send("Page.navigate", { url = "file:///etc/passwd" })]] },
  { name = "navigation to file:///etc/passwd", kind = "request", expect = "only http and https in the sandbox",
    code = [[assert(page:navigate("file:///etc/passwd"))]] },
  { name = "navigation to the metadata address", kind = "request", expect = "link-local address",
    code = [[assert(page:navigate("http://169.254.169.254/latest/meta-data/"))]] },
  { name = "the metadata address in decimal", kind = "request", expect = "link-local address",
    code = [[assert(page:navigate("http://2852039166/"))]] },
  { name = "a script redirect to the metadata address", kind = "request", expect = "refused: link-local address",
    code = [[assert(page:navigate(req.url))
      page:eval("setTimeout(() => { location.href = 'http://169.254.169.254/' }, 10); 1")
      job:sleep(1500)
      assert(page:navigate(req.url))]] },
  { name = "enqueueing the metadata address", kind = "request", expect = "enqueue refused: link-local",
    code = [[local ok, why = job:enqueue("http://169.254.169.254/") error("enqueue refused: " .. tostring(why))]] },
  { name = "a proxy on a link-local address", kind = "request", expect = "context.proxy http://169.254.169.254:80 refused",
    code = [[local ctx = assert(job:context { proxy = "http://169.254.169.254:80" })]] },
  { name = "a busy loop inside pcall", kind = "request", expect = "budget 'instructions' exceeded", max_s = 30,
    budgets = "instructions = 20000000",
    code = [[for i = 1, 100 do pcall(function() while true do end end) end job:emit { escaped = true }]] },
  { name = "a busy loop in a coroutine", kind = "request", expect = "budget 'instructions' exceeded", max_s = 30,
    budgets = "instructions = 20000000",
    code = [[local co = coroutine.wrap(function() while true do end end) pcall(co) job:emit { escaped = true }]] },
  { name = "a busy loop at load", kind = "load", expect = "budget 'instructions' exceeded", max_s = 30,
    code = [[while true do end]] },
  { name = "a 1 GB string by doubling", kind = "job", expect = "budget 'memory_mb' exceeded", max_s = 40,
    code = [[local s = "x" for i = 1, 30 do s = s .. s end job:emit { n = #s }]] },
  { name = "a huge table", kind = "job", expect = "budget 'memory_mb' exceeded", max_s = 40,
    code = [[local t = {} for i = 1, 1e9 do t[i] = { i } end]] },
  { name = "deep recursion", kind = "request", expect = "stack overflow", max_s = 40,
    code = [[local function f(n) return 1 + f(n + 1) end f(1)]] },
  { name = "string.rep huge", kind = "request", expect = "string.rep would make",
    code = [[local s = string.rep("x", 1 << 40)]] },
  { name = "string.rep huge through a method", kind = "request", expect = "string.rep would make",
    code = [[local s = ("abc"):rep(1e9, "-")]] },
  { name = "a catastrophic pattern", kind = "request", expect = "budget 'pattern_cost' exceeded", max_s = 20,
    code = [[local s = ("a"):rep(200000) local r = s:find(".-.-.-.-.-b")]] },
  { name = "a catastrophic pattern through gsub", kind = "request", expect = "budget 'pattern_cost' exceeded", max_s = 20,
    code = [[local s = string.rep("a", 60000) string.gsub(s, "(.*)(.*)x", "%1")]] },
  { name = "too many navigations", kind = "job", expect = "budget 'navigations' exceeded",
    budgets = "navigations = 3",
    code = [[for i = 1, 10 do assert(page:navigate(req.url .. "?n=" .. i)) end]] },
  { name = "too much output", kind = "job", expect = "budget 'output_bytes' exceeded",
    budgets = "output_bytes = 2000",
    code = [[for i = 1, 100 do job:emit { pad = string.rep("y", 100) } end]] },
  { name = "a record too large", kind = "request", expect = "budget 'record_bytes' exceeded",
    budgets = "record_bytes = 1000",
    code = [[job:emit { pad = string.rep("y", 5000) }]] },
  { name = "too many enqueued URLs", kind = "job", expect = "budget 'enqueued' exceeded",
    budgets = "enqueued = 5",
    code = [[for i = 1, 50 do job:enqueue(req.url .. "?e=" .. i) end]] },
  { name = "a job over its wall-clock time", kind = "job", expect = "budget 'job_ms' exceeded", max_s = 30,
    budgets = "job_ms = 2000",
    code = [[for i = 1, 40 do job:sleep(200) end]] },
  { name = "raising a budget under --sandbox", kind = "load", expect = "which --sandbox does not let a script raise",
    budgets = "memory_mb = 4096", code = "" },
}

local function script_for(c, base)
  local budgets = c.budgets and ("budgets = { " .. c.budgets .. " },") or ""
  if c.kind == "load" then
    return string.format([[
%s
return { start = { %q }, retries = 0, %s context = { %s },
  handle = function(page, req, job) end }]], c.code, base, budgets, PROXY)
  end
  return string.format([[
return { start = { %q }, retries = 0, timeout_ms = 20000, %s context = { %s },
  handle = function(page, req, job)
    %s
  end }]], base, budgets, PROXY, c.code)
end

describe("the sandbox", function()
  local srv
  setup(function() srv = H.server() end)
  teardown(function() H.cleanup() end)

  for _, c in ipairs(CASES) do
    it("stops " .. c.name, function()
      local r = H.run({ "run", H.script(script_for(c, srv.url("/_/page?id=1"))), "--sandbox", "--allow-private" },
        { stats = c.kind ~= "load", timeout = 90 })
      local want = ({ load = 2, request = 0, job = 1 })[c.kind]
      assert.equals(want, r.code, r.stderr)
      assert.is_truthy(r.stderr:find(c.expect, 1, true), "expected '" .. c.expect .. "' in: " .. r.stderr)
      assert.is_true(r.elapsed < (c.max_s or 25), "took " .. r.elapsed .. " s")
      if c.kind ~= "load" then
        assert.is_table(r.stats, r.stderr)
        assert.equals(0, r.stats.refs_outstanding)
        assert.equals(0, r.stats.bad_releases)
        if c.kind == "request" then assert.equals(1, r.stats.pages_failed, r.stderr) end
      end
      for _, rec in ipairs(r.records) do assert.is_nil(rec.escaped) assert.is_nil(rec.leak) end
      assert.same({}, H.chromium_left(r.profile_root))
    end)
  end

  it("refuses a private start URL without --allow-private, before any browser starts", function()
    for _, u in ipairs { srv.url("/"), "http://169.254.169.254/", "http://[::1]:9/", "http://10.0.0.1/" } do
      local s = H.script(string.format([[return { start = { %q }, context = { %s },
        handle = function(page, req, job) end }]], u, PROXY))
      local r = H.run({ "run", s, "--sandbox" })
      assert.equals(2, r.code, r.stderr)
      assert.matches("refused: [%a%-]+ address", r.stderr)
      assert.same({}, H.chromium_left(r.profile_root))
    end
    -- link-local stays refused with --allow-private: that is where metadata endpoints live
    local s = H.script([[return { start = { "http://169.254.169.254/" }, handle = function() end }]])
    local r = H.run({ "run", s, "--sandbox", "--allow-private" })
    assert.equals(2, r.code, r.stderr)
    assert.matches("link%-local address", r.stderr)
  end)

  it("a job's own sandbox = true turns it on; it cannot be turned off", function()
    local s = H.script(string.format([[
return { start = { %q }, retries = 0, sandbox = true, context = { %s },
  handle = function(page, req, job)
    job:emit { io = type(io), require = type(require), debug = type(debug), os_exit = type(os.exit) }
    page:send("Target.getTargets")
  end }]], srv.url("/_/page?id=1"), PROXY))
    local r = H.run({ "run", s, "--allow-private" }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    assert.matches("Target.getTargets is not allowed in the sandbox", r.stderr)
    assert.equals(0, r.stats.refs_outstanding)
    local off = H.script(string.format([[
return { start = { %q }, sandbox = false, context = { %s },
  handle = function(page, req, job) job:emit { io = type(io) } end }]], srv.url("/_/page?id=1"), PROXY))
    r = H.run({ "run", off, "--sandbox", "--allow-private" }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    assert.same({ { io = "nil" } }, r.records)
  end)

  it("gives a legitimate job the same records with and without --sandbox", function()
    -- No dead proxy here: the sandboxed run's pages connect through its network guard.
    local s = H.script(string.format([[
local seen = {}
return { start = { %q }, max_depth = 1, concurrency = 2,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    local title = page:title()
    local words = {}
    for w in (page:text() or ""):gmatch("%%a+") do words[#words + 1] = w:lower() end
    table.sort(words)
    local h1 = page:send("Runtime.evaluate", { expression = "document.querySelector('h1') && document.querySelector('h1').textContent", returnByValue = true })
    job:emit { url = req.url, status = res.status, title = title, words = table.concat(words, " "),
      h1 = h1 and h1.result and h1.result.value, n = select("#", 1, 2, 3), utf8 = utf8.len("héllo"),
      fmt = string.format("%%05.1f", math.pi), t = os.time{ year = 2020, month = 1, day = 1, hour = 0 } }
    for _, l in ipairs(page:links()) do job:enqueue(l) end
  end }]], srv.url("/_/links?n=4")))
    local plain = H.run({ "run", s }, { stats = true })
    local boxed = H.run({ "run", s, "--sandbox", "--allow-private" }, { stats = true })
    assert.equals(0, plain.code, plain.stderr)
    assert.equals(0, boxed.code, boxed.stderr)
    local function by_url(rs)
      local t = {}
      for _, rec in ipairs(rs) do t[rec.url] = rec end
      return t
    end
    assert.equals(5, #plain.records)
    assert.same(by_url(plain.records), by_url(boxed.records))
    assert.equals(0, boxed.stats.refs_outstanding)
    assert.equals(0, boxed.stats.pages_failed)
    assert.is_true(boxed.stats.net_connections >= 1, "the sandboxed run went through its guard")
    assert.equals(0, plain.stats.net_connections)
    assert.same({}, H.chromium_left(boxed.profile_root))
  end)
end)

-- A host name (not "localhost", which the rules know by name) that /etc/hosts maps to a
-- loopback address: the network guard must resolve it to refuse it. nil when there is none.
local function loopback_name()
  local f = io.open("/etc/hosts")
  if not f then return nil end
  for line in f:lines() do
    local addr, names = line:match("^%s*(127%.[%d.]+)%s+([^#]+)")
    for name in (names or ""):gmatch("%S+") do
      if name ~= "localhost" and not name:find("%.localhost$") and name:match("^[%w.-]+$") then
        f:close()
        return name, addr
      end
    end
  end
  f:close()
  return nil
end

describe("the network guard (host rules on every connection)", function()
  local srv
  local NAME, NAME_ADDR = loopback_name()
  setup(function() srv = H.server() end)
  teardown(function() H.cleanup() end)
  before_each(function() srv.clear_log() end)

  local function served(path)
    return srv.count(path) > 0
  end

  -- Everything the page at /_/embed?host=H reaches on H (see server.py).
  local EMBEDDED = { "/_/img?i=91", "/_/page?id=92", "/_/page?id=93", "/_/page?id=94", "/_/ws95", "/_/img?i=96" }

  local EMBED_JOB = [[
return { start = { %q }, retries = 0, max_depth = 0, %s
  handle = function(page, req, job)
    local res, err = page:navigate(req.url)
    if not res then job:emit { err = err } return end
    page:wait_for("document.title === 'embed done'", { js = true, timeout_ms = 8000 })
    job:sleep(500) -- the images, the iframe and the WebSocket have had their chance
    job:emit { title = page:title(), status = res.status }
  end }]]

  it("lets through what the rules allow: every kind of request reaches an allowed host", function()
    -- The control for the refusals below: with loopback allowed, each embedded request of
    -- /_/embed arrives, so their absence there means the guard stopped them.
    local host = (NAME or "localhost") .. ":" .. srv.port
    local s = H.script(string.format(EMBED_JOB, srv.url("/_/embed?host=" .. host), ""))
    local r = H.run({ "run", s, "--sandbox", "--allow-private" }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    assert.same({ { title = "embed done", status = 200 } }, r.records)
    for _, p in ipairs(EMBEDDED) do assert.is_true(served(p), p .. " never arrived: " .. r.stderr) end
    assert.is_true(served("/_/img?i=1"))
    assert.is_true(r.stats.net_connections >= 2, r.stderr)
    assert.equals(0, r.stats.net_refused, r.stderr)
    assert.equals(0, r.stats.refs_outstanding)
  end)

  it("refuses every request to a host off allowed_hosts: subresources, iframes, fetch, XHR, WebSockets, redirects", function()
    local host = (NAME or "localhost") .. ":" .. srv.port
    local s = H.script(string.format(EMBED_JOB, srv.url("/_/embed?host=" .. host), [[allowed_hosts = { "127.0.0.1" },]]))
    local r = H.run({ "run", s, "--sandbox", "--allow-private" }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    assert.same({ { title = "embed done", status = 200 } }, r.records)
    assert.is_true(served("/_/img?i=1"), "the page's own image")
    assert.is_true(served("/_/redirect?to=" .. "http%3A%2F%2F" .. host:gsub(":", "%%3A") .. "%2F_%2Fimg%3Fi%3D96"), r.stderr)
    for _, p in ipairs(EMBEDDED) do assert.is_false(served(p), p .. " got through") end
    assert.is_truthy(r.stderr:find((NAME or "localhost") .. " is not on the job's allowed_hosts", 1, true), r.stderr)
    assert.is_true(r.stats.net_refused >= 5, "refused " .. r.stats.net_refused .. ": " .. r.stderr)
    assert.equals(0, r.stats.refs_outstanding)
    assert.same({}, H.chromium_left(r.profile_root))
  end)

  it("refuses a main-frame redirect off allowed_hosts, and a start URL off it", function()
    local to = "http://localhost:" .. srv.port .. "/_/page?id=5"
    local s = H.script(string.format([[
return { start = { %q }, retries = 0, allowed_hosts = { "127.0.0.1" },
  handle = function(page, req, job)
    local res, err = page:navigate(req.url)
    job:emit { ok = res ~= nil, err = err }
  end }]], srv.url("/_/redirect?to=" .. to)))
    local r = H.run({ "run", s, "--sandbox", "--allow-private" }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    assert.same({}, r.records) -- a request whose navigation was refused fails
    assert.equals(1, r.stats.pages_failed)
    assert.matches("failed: [^\n]*: redirect to http://localhost:%d+/_/page%?id=5 refused: localhost is not on the job's allowed_hosts", r.stderr)
    assert.is_false(served("/_/page?id=5"))
    local off = H.script([[return { start = { "http://127.0.0.2:9/" }, allowed_hosts = { "127.0.0.1", "*.example.org" },
      handle = function() end }]])
    r = H.run({ "run", off, "--allow-private" })
    assert.equals(2, r.code, r.stderr)
    assert.matches("127.0.0.2 is not on the job's allowed_hosts", r.stderr)
    local bad = H.script([[return { start = { "http://127.0.0.1:9/" }, allowed_hosts = { "a b" }, handle = function() end }]])
    r = H.run({ "run", bad })
    assert.equals(2, r.code, r.stderr)
    assert.matches("allowed_hosts%[1%] 'a b' is not a host name", r.stderr)
  end)

  it("resolves a host name and refuses it by its address: navigation, fetch, XHR, WebSocket, img, iframe", function()
    if not NAME then
      pending("no name in /etc/hosts maps to 127.x besides localhost: the resolution case needs one")
      return
    end
    local origin = "http://" .. NAME .. ":" .. srv.port
    -- From about:blank (the page is loopback, refused without --allow-private), the page's own
    -- requests: nothing may arrive.
    local s = H.script(string.format([[
return { start = { %q }, retries = 0,
  handle = function(page, req, job)
    local res, err = page:navigate(req.url)
    job:emit { nav = err }
    local blank = job:context():page()
    local r = blank:eval(%q, { await = true })
    job:emit { eval = r }
  end }]], origin .. "/_/page?id=81", string.format([[
      new Promise(done => {
        const o = %q;
        document.body.innerHTML = '<img src="' + o + '/_/img?i=82"><iframe src="' + o + '/_/page?id=83"></iframe>';
        const x = new XMLHttpRequest(); x.open('GET', o + '/_/page?id=84'); x.send();
        try { new WebSocket(o.replace('http', 'ws') + '/_/ws85'); } catch (e) {}
        fetch(o + '/_/page?id=86', {mode: 'no-cors'}).then(() => done('fetched'), e => done('refused'));
      })]], origin)))
    local r = H.run({ "run", s, "--sandbox" }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    local want = NAME .. " resolves to " .. NAME_ADDR .. ": loopback address (refused without --allow-private)"
    assert.equals("navigation to " .. origin .. "/_/page?id=81 refused: connection to " .. NAME .. " refused: " .. want,
      r.records[1].nav)
    assert.equals("refused", r.records[2].eval)
    H.sleep(0.5)
    for _, p in ipairs { "/_/page?id=81", "/_/img?i=82", "/_/page?id=83", "/_/page?id=84", "/_/ws85", "/_/page?id=86" } do
      assert.is_false(served(p), p .. " got through")
    end
    assert.is_truthy(r.stderr:find(want, 1, true), r.stderr)
    assert.is_true(r.stats.net_refused >= 2, r.stderr)
    assert.equals(0, r.stats.refs_outstanding)
    assert.same({}, H.chromium_left(r.profile_root))
  end)

  it("holds outside the sandbox with host_rules = true", function()
    local s = H.script(string.format([[
return { start = { %q }, retries = 0, host_rules = true,
  handle = function(page, req, job)
    job:emit { io = type(io) }
    local blank = job:context():page()
    job:emit { eval = blank:eval(%q, { await = true }) }
  end }]], "http://" .. (NAME or "localhost") .. ":" .. srv.port .. "/_/page?id=71",
      string.format("fetch('http://127.0.0.1:%d/_/page?id=72', {mode: 'no-cors'}).then(() => 'fetched', () => 'refused')", srv.port)))
    local r = H.run({ "run", s }, { stats = true })
    if NAME then
      assert.equals(0, r.code, r.stderr)
      assert.same({ io = "table" }, r.records[1])
      assert.equals("refused", r.records[2].eval)
      assert.is_false(served("/_/page?id=72"))
      assert.is_true(r.stats.net_refused >= 1, r.stderr)
    else -- localhost is refused by name already, as a start URL
      assert.equals(2, r.code, r.stderr)
    end
    local off = H.script([[return { start = { "http://127.0.0.1:9/" }, sandbox = true, host_rules = false, handle = function() end }]])
    r = H.run({ "run", off })
    assert.equals(2, r.code, r.stderr)
    assert.matches("host_rules cannot be turned off in the sandbox", r.stderr)
  end)
end)
