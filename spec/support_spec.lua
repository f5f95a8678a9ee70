-- support_spec.lua: the specs' own toolkit, tested for real: spec/support/helpers.lua,
-- the fixture server spec/support/server.py and the background runner runbg.py.
-- No luacrawl binary is needed: runs use stand-in programs (sh, sleep, python3).
--
--   cd /work/main && busted --lpath='spec/?.lua' spec/support_spec.lua

local H = require("support.helpers")
local cjson = require("cjson.safe")

-- Returns true when list has an element for which pred is true.
local function any(list, pred)
  for _, v in ipairs(list) do
    if pred(v) then return true end
  end
  return false
end

describe("helpers: files", function()
  after_each(function() H.cleanup() end)

  it("makes temp dirs that cleanup removes", function()
    local dir = H.tmpdir()
    assert.is_true(H.dir_empty(dir))
    H.write(dir .. "/a/b/c.txt", "hello\n")
    assert.equals("hello\n", H.read(dir .. "/a/b/c.txt"))
    assert.is_false(H.dir_empty(dir))
    local script = H.script("return 1")
    assert.equals("return 1", H.read(script))
    H.cleanup()
    assert.is_false(H.exists(dir))
    assert.is_false(H.exists(script))
    assert.is_true(H.dir_empty(dir)) -- a missing dir counts as empty
    assert.is_nil((H.read(dir .. "/a/b/c.txt")))
  end)

  it("has absolute paths for the binary and the sources", function()
    assert.equals("/", H.src:sub(1, 1))
    assert.equals("/", H.bin:sub(1, 1))
    assert.is_true(H.exists(H.src .. "/spec/support/server.py"))
  end)

  it("decodes JSON lines and reports the bad ones", function()
    local records, bad = H.decode_lines('{"a":1}\nnot json\n[2]\n\n{"b":"x"}')
    assert.equals(3, #records)
    assert.equals(1, records[1].a)
    assert.equals("x", records[3].b)
    assert.same({ "not json", "" }, bad)
  end)
end)

describe("fixture server", function()
  local srv
  setup(function() srv = H.server() end)
  teardown(function()
    H.cleanup()
    assert.is_false(H.alive(srv.pid))
  end)

  it("listens on 127.0.0.1 on an OS-chosen port", function()
    assert.is_number(srv.port)
    assert.is_true(srv.port > 0)
    assert.is_true(H.alive(srv.pid))
    assert.equals("http://127.0.0.1:" .. srv.port .. "/a.html", srv.url("/a.html"))
  end)

  it("serves static files, index.html for directories, and a 404 page", function()
    local res = H.http(srv.url("/"))
    assert.equals(200, res.status)
    assert.matches("text/html", res.headers["content-type"])
    assert.matches("fixture%-page%-index", res.body)
    assert.matches("fixture%-page%-sub", H.http(srv.url("/sub/")).body)
    local moved = H.http(srv.url("/sub"))
    assert.equals(301, moved.status)
    assert.equals("/sub/", moved.headers["location"])
    local missing = H.http(srv.url("/missing.html"))
    assert.equals(404, missing.status)
    assert.matches("Not Found", missing.body)
    assert.equals(404, H.http(srv.url("/robots.txt")).status)
    assert.equals(404, H.http(srv.url("/../../etc/passwd")).status)
    assert.equals(404, H.http(srv.url("/_/no-such-route")).status)
  end)

  it("answers HEAD without a body", function()
    local res = H.http(srv.url("/_/status?code=503"), { method = "HEAD" })
    assert.equals(503, res.status)
    assert.is_nil(res.body:find("<h1"))
  end)

  it("answers /_/status with the status asked for", function()
    for _, code in ipairs({ 404, 500, 503, 201 }) do
      local res = H.http(srv.url("/_/status?code=" .. code))
      assert.equals(code, res.status)
      assert.matches('id="status">' .. code, res.body)
    end
  end)

  it("redirects through a chain of n steps to the target", function()
    local first = H.http(srv.url("/_/redirect?n=3&to=/b.html"))
    assert.equals(302, first.status)
    assert.matches("^/_/redirect%?n=2", first.headers["location"])
    local res = H.http(srv.url("/_/redirect?n=3&to=/b.html"), { follow = true })
    assert.equals(200, res.status)
    assert.equals(3, res.redirects)
    assert.matches("fixture%-page%-b", res.body)
    assert.equals(400, H.http(srv.url("/_/redirect?to=//example.com/")).status)
    assert.equals(400, H.http(srv.url("/_/redirect?to=http://example.com/")).status)
  end)

  it("logs every request with method, path and status", function()
    srv.clear_log()
    assert.same({}, srv.log())
    H.http(srv.url("/a.html"))
    H.http(srv.url("/nope.html"))
    H.http(srv.url("/_/page?id=7"), { method = "HEAD" })
    local log = srv.log()
    assert.equals(3, #log)
    assert.equals("/a.html", log[1].path)
    assert.equals("GET", log[1].method)
    assert.equals(200, log[1].status)
    assert.equals(404, log[2].status)
    assert.equals("HEAD", log[3].method)
    assert.equals("/_/page?id=7", log[3].path)
    assert.is_number(log[1].time)
    assert.equals(1, srv.count("/a.html"))
    assert.equals(0, srv.count("/b.html"))
  end)

  it("throttles with 429 and Retry-After, then serves", function()
    local url = srv.url("/_/throttle?key=t1&times=2&after=3")
    for _ = 1, 2 do
      local res = H.http(url)
      assert.equals(429, res.status)
      assert.equals("3", res.headers["retry-after"])
    end
    local ok = H.http(url)
    assert.equals(200, ok.status)
    assert.matches('id="ok"', ok.body)
    assert.equals(429, H.http(srv.url("/_/throttle?key=other&times=1")).status)
    local busy = H.http(srv.url("/_/unavailable?key=u1&times=1"))
    assert.equals(503, busy.status)
    assert.is_nil(busy.headers["retry-after"])
    assert.equals(200, H.http(srv.url("/_/unavailable?key=u1&times=1")).status)
  end)

  it("serves latin-1 and Shift_JIS bytes with their charset", function()
    local latin = H.http(srv.url("/_/latin1"))
    assert.equals("text/html; charset=iso-8859-1", latin.headers["content-type"])
    assert.truthy(latin.body:find("caf\xe9 d\xe9j\xe0 vu", 1, true))
    local meta = H.http(srv.url("/_/latin1?meta=1"))
    assert.equals("text/html", meta.headers["content-type"])
    assert.truthy(meta.body:find('<meta charset="iso-8859-1">', 1, true))
    local sjis = H.http(srv.url("/_/sjis"))
    assert.equals("text/html; charset=shift_jis", sjis.headers["content-type"])
    assert.truthy(sjis.body:find("\x93\xfa\x96\x7b\x8c\xea", 1, true)) -- 日本語
  end)

  it("serves a big page of exactly N MiB with the end marker last", function()
    local res = H.http(srv.url("/_/big?mb=2"))
    assert.equals(200, res.status)
    assert.equals(2 * 1048576, #res.body)
    assert.equals('<p id="end">END-OF-BIG-PAGE</p></body></html>\n', res.body:sub(-46))
    local _, paragraphs = res.body:gsub("<p>", "")
    assert.is_true(paragraphs > 5000)
  end)

  it("serves infinite-scroll pages and their JSON batches", function()
    local page = H.http(srv.url("/_/scroll?total=25&batch=10")).body
    local _, n = page:gsub('<li class="item">', "")
    assert.equals(10, n)
    assert.matches("Item 10<", page)
    local batch = cjson.decode(H.http(srv.url("/_/scroll-items?from=21&n=10&total=25")).body)
    assert.same({ "Item 21", "Item 22", "Item 23", "Item 24", "Item 25" }, batch.items)
    assert.is_true(batch.done)
    assert.equals(26, batch.next)
  end)

  it("logs in with a session cookie and guards the account pages", function()
    assert.equals(302, H.http(srv.url("/_/account")).status)
    assert.equals("/_/login", H.http(srv.url("/_/account/orders?page=1")).headers["location"])
    local form = H.http(srv.url("/_/login")).body
    assert.matches('name="user"', form)
    assert.matches('name="password"', form)
    assert.matches('type="submit"', form)
    local wrong = H.http(srv.url("/_/login"), { method = "POST", data = "user=alice&password=no" })
    assert.equals(200, wrong.status)
    assert.matches('id="error"', wrong.body)
    local login = H.http(srv.url("/_/login"), { method = "POST", data = "user=alice&password=secret" })
    assert.equals(302, login.status)
    assert.equals("/_/account", login.headers["location"])
    local cookie = login.headers["set-cookie"]:match("^(session=[^;]+)")
    assert.truthy(cookie)
    local account = H.http(srv.url("/_/account"), { headers = { "Cookie: " .. cookie } })
    assert.equals(200, account.status)
    assert.matches("Welcome alice", account.body)
    assert.matches("/_/account/orders%?page=3", account.body)
    local orders = H.http(srv.url("/_/account/orders?page=2"), { headers = { "Cookie: " .. cookie } })
    assert.equals(200, orders.status)
    local _, n = orders.body:gsub('class="order"', "")
    assert.equals(5, n)
  end)

  it("serves products, bad links, cycles, headers and the user agent", function()
    local products = H.http(srv.url("/_/products")).body
    local _, n = products:gsub('<article class="item">', "")
    assert.equals(10, n)
    assert.truthy(products:find('<h2>Copper Kettle</h2><a href="/p/1">', 1, true))
    assert.truthy(products:find('<span class="price">$12.50</span>', 1, true))
    assert.matches("Copper Kettle", H.http(srv.url("/p/1")).body)
    assert.equals(404, H.http(srv.url("/p/11")).status)

    local bad = H.http(srv.url("/_/badlinks")).body
    for _, href in ipairs({ "file:///etc/passwd", "javascript:alert(1)", "data:text/html,hi",
                            "chrome://version", "mailto:x@y", "page?id=good-1", "./page?id=good-2" }) do
      assert.truthy(bad:find('href="' .. href .. '"', 1, true), href)
    end

    local cycle = H.http(srv.url("/_/cycle")).body
    assert.truthy(cycle:find('href="HTTP://127.0.0.1:' .. srv.port .. '/_/cycle"', 1, true))
    assert.truthy(cycle:find('href="./cycle?"', 1, true))
    assert.truthy(cycle:find('href="/_/cycle#a"', 1, true))
    assert.equals(200, H.http(srv.url("/_/cycle2")).status)

    local echoed = H.http(srv.url("/_/headers"), { headers = { "X-Test: yes", "Cookie: a=b" } }).body
    local json = echoed:match('<pre id="h">(.-)</pre>'):gsub("&quot;", '"')
    local headers = cjson.decode(json)
    assert.equals("yes", headers["x-test"])
    assert.equals("a=b", headers["cookie"])
    local ua = H.http(srv.url("/_/ua"), { headers = { "User-Agent: spec-agent/1.0" } }).body
    assert.matches("<title>spec%-agent/1%.0</title>", ua)
  end)

  it("serves the resource-blocking page and its resources", function()
    local body = H.http(srv.url("/_/image-page")).body
    local _, n = body:gsub('<img src="/_/img%?i=%d"', "")
    assert.equals(3, n)
    assert.matches("/_/style.css", body)
    local img = H.http(srv.url("/_/img?i=2"))
    assert.equals("image/png", img.headers["content-type"])
    assert.equals("\x89PNG", img.body:sub(1, 4))
    assert.matches("/_/font.woff2", H.http(srv.url("/_/style.css")).body)
    assert.equals("font/woff2", H.http(srv.url("/_/font.woff2")).headers["content-type"])
  end)

  it("holds /_/noanswer and /_/stall open while serving others", function()
    local started = H.now()
    local silent = H.http(srv.url("/_/noanswer"), { timeout = 1 })
    assert.equals(0, silent.status)
    assert.equals("", silent.body)
    local stalled = H.http(srv.url("/_/stall"), { timeout = 1 })
    assert.matches('id="partial"', stalled.body)
    assert.is_true(H.now() - started < 5)
    assert.equals(200, H.http(srv.url("/_/slow?ms=200")).status)
    assert.matches("while %(true%)", H.http(srv.url("/_/jsloop")).body)
    assert.matches("/_/stall%?type=png", H.http(srv.url("/_/neverload")).body)
  end)
end)

describe("fixture server lifecycle", function()
  after_each(function() H.cleanup() end)

  it("stops promptly with requests still hanging, and leaves no process", function()
    local srv = H.server()
    -- Two clients that never get a full answer, left running in the background.
    local dir = H.tmpdir()
    for _, route in ipairs({ "/_/noanswer", "/_/stall" }) do
      os.execute(string.format("curl -s --max-time 30 %s >/dev/null 2>&1 & echo $! >> %s",
        H.quote(srv.url(route)), H.quote(dir .. "/curls")))
    end
    assert.truthy(H.wait_until(function() return srv.count("/_/stall") == 1 and srv.count("/_/noanswer") == 1 end, 5))
    local started = H.now()
    assert.is_true(srv.stop())
    assert.is_true(H.now() - started < 2)
    assert.is_false(H.alive(srv.pid))
    for pid in H.read(dir .. "/curls"):gmatch("%d+") do
      -- The clients see their connections closed and exit by themselves.
      assert.truthy(H.wait_until(function() return not H.alive(tonumber(pid)) end, 5))
    end
  end)

  it("serves a root with its own robots.txt", function()
    local root = H.tmpdir()
    H.write(root .. "/robots.txt", "User-agent: *\nDisallow: /private/\n")
    H.write(root .. "/index.html", "<a href=\"/private/x.html\">x</a>")
    local srv = H.server(root)
    local res = H.http(srv.url("/robots.txt"))
    assert.equals(200, res.status)
    assert.matches("text/plain", res.headers["content-type"])
    assert.matches("Disallow: /private/", res.body)
  end)

  it("serves the bundled example site", function()
    if not H.exists(H.site_root .. "/index.html") then
      pending("examples/site is not generated")
      return
    end
    local srv = H.site_server()
    assert.equals(200, H.http(srv.url("/")).status)
  end)

  it("exits when the process it watches is gone", function()
    local dir = H.tmpdir()
    local port_file = dir .. "/port"
    -- Watch a short-lived sleep instead of this Lua process.
    local watched = tonumber(io.popen("sleep 0.5 & echo $!"):read("l"))
    local pid = tonumber(io.popen(string.format("%s %s --root %s --port-file %s --watch-pid %d "
      .. ">/dev/null 2>&1 & echo $!", H.quote(H.python), H.quote(H.src .. "/spec/support/server.py"),
      H.quote(H.fixture_root), H.quote(port_file), watched)):read("l"))
    assert.truthy(H.wait_until(function() return H.read(port_file) end, 10))
    assert.truthy(H.wait_until(function() return not H.alive(pid) end, 5))
  end)
end)

describe("H.run", function()
  after_each(function() H.cleanup() end)

  it("captures exit code, stdout, stderr, records and bad lines", function()
    local res = H.run({ "-c", 'printf \'{"url":"a"}\\nnot json\\n{"url":"b"}\\n\'; echo oops >&2; exit 3' },
      { bin = "sh" })
    assert.equals(3, res.code)
    assert.equals("oops\n", res.stderr)
    assert.equals(2, #res.records)
    assert.equals("b", res.records[2].url)
    assert.same({ "not json" }, res.bad_lines)
    assert.is_false(res.timed_out)
  end)

  it("quotes arguments safely and gives a fresh profile root", function()
    local odd = "it's a \"test\" $HOME `x` ;&|"
    local res = H.run({ "-c", 'printf "%s\\n" "$1"; echo "$LUACRAWL_PROFILE_ROOT" >&2', "sh", odd },
      { bin = "sh", env = { EXTRA = "1" } })
    assert.equals(0, res.code)
    assert.equals(odd .. "\n", res.stdout)
    assert.equals(res.profile_root .. "\n", res.stderr)
    assert.is_true(H.dir_empty(res.profile_root))
    assert.equals("/", res.profile_root:sub(1, 1))
  end)

  it("appends -o and --stats and reads those files", function()
    local fake = [[
      while [ $# -gt 0 ]; do
        case "$1" in
          -o) printf '{"n":1}\n{"n":2}\n' > "$2"; shift ;;
          --stats) printf '{"pages":2,"errors":0}' > "$2"; shift ;;
        esac
        shift
      done
      echo 'stdout is not the output'
    ]]
    local res = H.run({ "-c", fake, "sh", "run", "job.lua" }, { bin = "sh", output = true, stats = true })
    assert.equals(0, res.code)
    assert.equals(2, #res.records)
    assert.same({}, res.bad_lines)
    assert.equals(2, res.stats.pages)
  end)

  it("kills a run that outlives its timeout", function()
    local res = H.run({ "10" }, { bin = "sleep", timeout = 1 })
    assert.equals(137, res.code)
    assert.is_true(res.timed_out)
    assert.is_true(res.elapsed < 5)
  end)
end)

describe("H.spawn", function()
  after_each(function() H.cleanup() end)

  it("delivers SIGINT to the program itself, with the default disposition", function()
    local run = H.spawn({ "-c", "grep -E '^Sig(Ign|Blk)' /proc/self/status; exec sleep 30" }, { bin = "sh" })
    assert.truthy(H.wait_until(function() return (H.read(run.stdout_path) or ""):find("SigBlk") end, 5))
    local status = H.read(run.stdout_path)
    local ignored = tonumber(status:match("SigIgn:%s*(%x+)"), 16)
    for _, sig in ipairs({ 1, 2, 3, 15 }) do -- HUP, INT, QUIT, TERM
      assert.equals(0, (ignored >> (sig - 1)) & 1, "signal " .. sig .. " is ignored")
    end
    assert.equals(0, tonumber(status:match("SigBlk:%s*(%x+)"), 16))
    assert.is_true(run.alive())
    assert.is_nil(run.wait(0.2))
    run.signal("INT")
    assert.equals(130, run.wait(5))
    assert.is_false(run.alive())
  end)

  it("reports 143 for SIGTERM, 137 for SIGKILL and plain exit codes", function()
    local term = H.spawn({ "30" }, { bin = "sleep" })
    local killed = H.spawn({ "30" }, { bin = "sleep" })
    local plain = H.spawn({ "-c", "echo '{\"ok\":true}'; exit 4" }, { bin = "sh" })
    term.signal("TERM")
    killed.signal("KILL")
    assert.equals(143, term.wait(5))
    assert.equals(137, killed.wait(5))
    assert.equals(4, plain.wait(5))
    local res = plain.result()
    assert.equals(4, res.code)
    assert.is_true(res.records[1].ok)
  end)

  it("kills a run at its timeout", function()
    local run = H.spawn({ "30" }, { bin = "sleep", timeout = 0.5 })
    assert.equals(137, run.wait(5))
    assert.is_true(run.result().timed_out)
  end)

  it("finds processes naming a profile root, and cleanup kills them", function()
    local run = H.spawn({ "-c", "sleep 30; :" }, { bin = "sh" })
    local root = run.profile_root
    -- Stand-ins for Chromium, started outside the helpers (as luacrawl would start them):
    -- one names a dir under the root; one names a sibling dir sharing the root's prefix.
    local function sleeper(arg)
      local p = io.popen(string.format("%s -c 'import time; time.sleep(30)' %s </dev/null "
        .. ">/dev/null 2>&1 & echo $!", H.quote(H.python), H.quote(arg)))
      local pid = tonumber(p:read("l"))
      p:close()
      return pid
    end
    local child = sleeper("--user-data-dir=" .. root .. "/ctx1")
    local other = sleeper(root .. "x/ctx")
    assert.truthy(H.wait_until(function() return #H.chromium_left(root) == 1 end, 5))
    assert.same({ child }, H.chromium_left(root))
    local pids = { run.pid, child, run.wrapper_pid }
    local report = H.cleanup()
    assert.is_true(any(report.killed, function(p) return p == child end))
    assert.is_true(H.alive(other))
    H.kill(other, "KILL")
    for _, pid in ipairs(pids) do
      assert.is_false(H.alive(pid))
    end
    assert.same({}, H.chromium_left(root))
  end)

  it("wait_until returns the first truthy value or nil at the timeout", function()
    local n = 0
    assert.equals(3, H.wait_until(function() n = n + 1 return n >= 3 and n end, 5, 0.01))
    local started = H.now()
    assert.is_nil(H.wait_until(function() return false end, 0.3, 0.05))
    assert.is_true(H.now() - started >= 0.25)
  end)
end)
