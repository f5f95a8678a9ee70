-- transport_spec.lua: how the engine reaches its browser, and who else can (issue 9, items 1
-- and 8). The browser we launch speaks CDP on a pipe (no TCP port in its process tree); as
-- root it runs as an unprivileged user with Chromium's own sandbox; --connect attaches to a
-- browser someone else runs and leaves it running; Chromium's output is kept in a bounded ring.
local H = require("support.helpers")
local lfs = require("lfs")

local SHELL = "/usr/lib/chromium/chromium-headless-shell"

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local t = f:read("a")
  f:close()
  return t
end

-- The process group of pid (from /proc/PID/stat), or nil.
local function pgrp(pid)
  local stat = read_file("/proc/" .. pid .. "/stat") or ""
  return tonumber(stat:match("^.*%)%s+%S+%s+%d+%s+(%d+)"))
end

-- Every process of the browser's tree (naming profile_root, or in the main process's group:
-- renderers do not name the profile), with its cmdline, uid and user namespace.
local function tree(profile_root)
  local out, pids, seen = {}, {}, {}
  for _, pid in ipairs(H.chromium_left(profile_root)) do
    pids[#pids + 1] = pid
    seen[pid] = true
  end
  local groups = {}
  for _, pid in ipairs(pids) do groups[pid] = true end
  for name in lfs.dir("/proc") do
    local pid = tonumber(name)
    if pid and not seen[pid] and groups[pgrp(pid) or -1] and H.alive(pid) then
      pids[#pids + 1] = pid
      seen[pid] = true
    end
  end
  for _, pid in ipairs(pids) do
    local status = read_file("/proc/" .. pid .. "/status") or ""
    out[#out + 1] = {
      pid = pid,
      cmdline = read_file("/proc/" .. pid .. "/cmdline") or "",
      uid = tonumber(status:match("\nUid:%s+(%d+)")),
      userns = lfs.symlinkattributes("/proc/" .. pid .. "/ns/user", "target"),
    }
  end
  return out
end

-- Inodes of the TCP sockets in LISTEN state (st 0A), from /proc/net/tcp and tcp6.
local function listening_inodes()
  local set = {}
  for _, table_path in ipairs({ "/proc/net/tcp", "/proc/net/tcp6" }) do
    for line in (read_file(table_path) or ""):gmatch("[^\n]+") do
      local st, inode = line:match("^%s*%d+:%s+%S+%s+%S+%s+(%x%x)%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+(%d+)")
      if st == "0A" then set[inode] = true end
    end
  end
  return set
end

-- The socket inodes a process holds.
local function socket_inodes(pid)
  local list = {}
  local dir = "/proc/" .. pid .. "/fd"
  if not lfs.attributes(dir) then return list end
  for fd in lfs.dir(dir) do
    local target = lfs.symlinkattributes(dir .. "/" .. fd, "target")
    local inode = target and target:match("^socket:%[(%d+)%]$")
    if inode then list[#list + 1] = inode end
  end
  return list
end

local function is_root()
  return (io.popen("id -u"):read("l")) == "0"
end

-- A job that keeps one page open for hold_ms, so the browser tree can be inspected.
local function holding_job(url, hold_ms)
  return H.script(string.format([[
return { start = { %q }, handle = function(page, req, job)
  local res = assert(page:navigate(req.url))
  job:sleep(%d)
  job:emit { url = req.url, status = res.status, title = page:title() }
end }]], url, hold_ms))
end

describe("transport", function()
  after_each(function() H.cleanup() end)

  it("the launched browser's tree owns no listening TCP socket, runs unprivileged, sandboxed", function()
    local srv = H.server()
    local run = H.spawn({ "run", holding_job(srv.url("/"), 4000) }, { output = true, stats = true })
    -- Wait for a renderer: the page is open.
    local procs = H.wait_until(function()
      local t = tree(run.profile_root)
      for _, p in ipairs(t) do
        if p.cmdline:find("--type=renderer", 1, true) then return t end
      end
    end, 30, 0.05)
    assert.is_truthy(procs, "a renderer started: " .. (H.read(run.stderr_path) or ""))
    -- Every defect is listed, not only the first.
    local problems = {}
    local function check(ok, what) if not ok then problems[#problems + 1] = what end end
    local listening = listening_inodes()
    local main
    for _, p in ipairs(procs) do
      for _, inode in ipairs(socket_inodes(p.pid)) do
        check(not listening[inode], "pid " .. p.pid .. " listens on TCP (socket " .. inode .. ")")
      end
      if not p.cmdline:find("--type=", 1, true) and p.cmdline:find("--user-data-dir=", 1, true) then
        main = p
      end
    end
    assert.is_truthy(main, "found the main browser process")
    check(main.cmdline:find("--remote-debugging-pipe", 1, true), "no --remote-debugging-pipe")
    check(not main.cmdline:find("--remote-debugging-port", 1, true), "--remote-debugging-port")
    -- Chromium's own sandbox: no --no-sandbox, and the renderers live in another user namespace.
    check(not main.cmdline:find("--no-sandbox", 1, true), "the browser runs with --no-sandbox")
    local my_ns = lfs.symlinkattributes("/proc/self/ns/user", "target")
    local renderers = 0
    for _, p in ipairs(procs) do
      if p.cmdline:find("--type=renderer", 1, true) then
        check(p.userns ~= my_ns, "renderer " .. p.pid .. " is in the engine's user namespace")
        renderers = renderers + 1
      end
    end
    check(renderers >= 1, "no renderer")
    if is_root() then
      for _, p in ipairs(procs) do
        check(p.uid and p.uid ~= 0, "browser process " .. p.pid .. " runs as root")
      end
    end
    assert.same({}, problems)
    assert.equals(0, run.wait(60))
    local r = run.result()
    assert.equals(1, #r.records)
    assert.equals(200, r.records[1].status)
    assert.is_falsy(r.stderr:find("no%-sandbox"), "a sandbox warning on a kernel that allows it")
    assert.same({}, H.chromium_left(r.profile_root))
    assert.is_true(H.dir_empty(r.profile_root), "the profile dir was removed")
  end)

  it("a stopped browser is found on the pipe (keepalive), replaced, and the crawl goes on", function()
    local srv = H.server()
    local job = H.script(string.format([[
return { start = { %q }, retries = 1, handle = function(page, req, job)
  if req.attempt == 0 then
    local pid = job:stats().browser_pid
    os.execute("kill -STOP " .. pid)
    job:sleep(14000) -- found by the keepalive within 3 s + 8 s
    error("still here")
  end
  local res = assert(page:navigate(req.url))
  job:emit { url = req.url, status = res.status, attempt = req.attempt }
end }]], srv.url("/")))
    local r = H.run({ "run", job }, { stats = true, timeout = 90 })
    assert.equals(0, r.code, r.stderr)
    assert.matches("stopped answering", r.stderr)
    assert.equals(1, #r.records)
    assert.equals(1, r.records[1].attempt)
    assert.equals(2, r.stats.browser_starts)
    assert.equals(1, r.stats.browser_crashes)
    assert.same({}, H.chromium_left(r.profile_root))
  end)

  it("where the kernel refuses user namespaces: --no-sandbox, with exactly one warning line", function()
    -- A user namespace whose parent allows only itself: in it, creating another fails (ENOSPC),
    -- as on a kernel without unprivileged user namespaces. luacrawl runs there as uid 1000.
    if os.execute("unshare -r true 2>/dev/null") ~= true then return pending("no unshare -r") end
    local wrapper = H.write(H.tmpdir() .. "/no-userns", string.format([[#!/bin/sh
exec unshare -r sh -c 'echo 1 > /proc/sys/user/max_user_namespaces && exec unshare --map-user=1000 --map-group=1000 "$0" "$@"' %s "$@"
]], H.quote(H.bin)))
    assert(os.execute("chmod 755 " .. H.quote(wrapper)))
    local srv = H.server()
    local job = H.script(string.format([[
return { start = { %q, %q, %q }, concurrency = 1, policy = { max_pages_per_browser = 1 },
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    job:sleep(400) -- the page-count recycle is checked on the engine's tick (250 ms)
    job:emit { url = req.url, status = res.status, unsandboxed = job:stats().browsers_unsandboxed }
  end }]], srv.url("/"), srv.url("/a.html"), srv.url("/b.html")))
    local r = H.run({ "run", job }, { bin = wrapper, stats = true, timeout = 90 })
    assert.equals(0, r.code, r.stderr)
    assert.equals(3, #r.records)
    for _, rec in ipairs(r.records) do
      assert.equals(200, rec.status)
      assert.is_true(rec.unsandboxed >= 1)
    end
    assert.is_true(r.stats.browser_starts >= 2, "browsers started: " .. r.stats.browser_starts)
    local warnings = 0
    for line in r.stderr:gmatch("[^\n]+") do
      if line:find("sandbox", 1, true) then
        warnings = warnings + 1
        assert.matches("^luacrawl: warn: the kernel refuses Chromium's sandbox %(.+%); running the browser with %-%-no%-sandbox$", line)
      end
    end
    assert.equals(1, warnings, r.stderr)
    assert.same({}, H.chromium_left(r.profile_root))
  end)

  describe("--connect", function()
    local ext -- { pid, dir } of the browser this spec runs itself

    after_each(function()
      if ext and ext.pid then
        H.kill(-ext.pid, "KILL")
        H.kill(ext.pid, "KILL")
        H.wait_until(function() return not H.alive(ext.pid) end, 5)
        os.execute("rm -rf '" .. ext.dir .. "'")
      end
      ext = nil
    end)

    it("crawls through a browser someone else runs, and leaves it running", function()
      if not lfs.attributes(SHELL) then return pending("no " .. SHELL) end
      local srv = H.server()
      local dir = H.tmpdir() .. "/external"
      assert(lfs.mkdir(dir))
      local cmd = string.format("setsid %s --headless --no-sandbox --disable-gpu "
        .. "--remote-debugging-port=0 --user-data-dir=%s about:blank </dev/null >%s/log 2>&1 & echo $!",
        SHELL, dir, dir)
      ext = { dir = dir, pid = tonumber(io.popen(cmd):read("l")) }
      local url = H.wait_until(function()
        local text = read_file(dir .. "/DevToolsActivePort")
        local port, path = (text or ""):match("^(%d+)\n(/devtools/browser/%x+%-%x+%-%x+%-%x+%-%x+)$")
        return port and ("ws://127.0.0.1:" .. port .. path)
      end, 30, 0.05)
      assert.is_truthy(url, "the external browser started: " .. (read_file(dir .. "/log") or ""))
      local job = H.script(string.format([[
return { start = { %q, %q }, handle = function(page, req, job)
  local res = assert(page:navigate(req.url))
  job:emit { url = req.url, status = res.status, title = page:title(),
             pid = job:stats().browser_pid }
end }]], srv.url("/"), srv.url("/a.html")))
      local r = H.run({ "run", job, "--connect", url }, { stats = true, timeout = 60 })
      assert.equals(0, r.code, r.stderr)
      assert.equals(2, #r.records)
      for _, rec in ipairs(r.records) do
        assert.equals(200, rec.status)
        assert.equals(0, rec.pid) -- no browser process of its own
      end
      assert.equals(0, r.stats.refs_outstanding)
      assert.equals(1, r.stats.browser_starts)
      assert.equals(0, r.stats.browser_crashes)
      -- Nothing launched: no profile dir, no process naming the profile root.
      assert.is_true(H.dir_empty(r.profile_root))
      assert.same({}, H.chromium_left(r.profile_root))
      -- The external browser is still there, and still answers.
      assert.is_true(H.alive(ext.pid), "the engine killed a browser it does not own")
      local again = H.run({ "run", job, "--connect", url }, { timeout = 60 })
      assert.equals(0, again.code, again.stderr)
      assert.equals(2, #again.records)
      assert.is_true(H.alive(ext.pid))
    end)

    it("a bad --connect URL: one line, exit 2", function()
      local job = holding_job("http://127.0.0.1:1/", 0)
      for _, bad in ipairs({ "http://127.0.0.1:9222/devtools/browser/x", "ws://127.0.0.1/devtools",
                             "ws://127.0.0.1:99999/x", "ws://:9222/x", "ws://127.0.0.1:9222" }) do
        local r = H.run({ "run", job, "--connect", bad }, { timeout = 20 })
        assert.equals(2, r.code, bad .. ": " .. r.stderr)
        local lines = select(2, r.stderr:gsub("\n", ""))
        assert.equals(1, lines, bad .. ": " .. r.stderr)
        assert.matches("^luacrawl: %-%-connect '[^\n]*': ", r.stderr)
        assert.same({}, H.chromium_left(r.profile_root))
      end
      -- And a good URL with nothing behind it: a clear failure, not a hang.
      local r = H.run({ "run", job, "--connect", "ws://127.0.0.1:1/devtools/browser/none" },
        { timeout = 30 })
      assert.equals(1, r.code, r.stderr)
      assert.matches("browser", r.stderr)
    end)
  end)

  it("Chromium's output is a bounded ring: a page logging for seconds fills no disk", function()
    local dir = H.tmpdir()
    H.write(dir .. "/flood.html", [[<!doctype html><title>flood</title><script>
const end = Date.now() + 3000; let n = 0;
(function flood() {
  for (let i = 0; i < 500; i++) console.log("flood-marker " + (n++) + " " + "x".repeat(400));
  if (Date.now() < end) setTimeout(flood, 0);
})();
</script>]])
    local srv = H.server(dir)
    local job = H.script(string.format([[
local core = require("luacrawl.core")
return { start = { %q }, retries = 0, handle = function(page, req, job)
  assert(page:navigate(req.url))
  job:sleep(3500)
  local st = job:stats()
  job:emit { log_bytes = st.browser_log_bytes, kept = st.browser_log_kept }
  core.kill_browser() -- a crash report: it must show the tail
  job:sleep(300)
end }]], srv.url("/flood.html")))
    local run = H.spawn({ "run", job }, { output = true, stats = true, timeout = 90 })
    local biggest = 0
    while run.alive() do
      local p = io.popen("find " .. H.quote(run.profile_root) .. " -type f -printf '%s\\n' 2>/dev/null")
      for size in p:lines() do biggest = math.max(biggest, tonumber(size) or 0) end
      p:close()
      H.sleep(0.2)
    end
    local code = run.wait(60)
    local r = run.result()
    assert.equals(0, code, r.stderr)
    assert.equals(1, #r.records, r.stderr)
    local rec = r.records[1]
    -- No file in the profile grew with the flood ...
    assert.is_true(biggest < 2 * 1024 * 1024, "a file in the profile dir reached " .. biggest .. " bytes")
    -- ... which wrote megabytes (it reached Chromium's output), 256 KiB of them kept in memory.
    assert.is_true((rec.log_bytes or 0) > 4 * 1024 * 1024, "log bytes: " .. tostring(rec.log_bytes))
    assert.is_true((rec.kept or math.huge) <= 256 * 1024, "kept " .. tostring(rec.kept))
    -- The crash report carries the tail of what Chromium wrote.
    assert.matches("browser %d+ lost: [^\n]*\nchromium log %(%d+ bytes written, last 256 KiB kept%), last lines:\n  [^\n]*flood%-marker", r.stderr)
    assert.same({}, H.chromium_left(r.profile_root))
  end)
end)
