-- helpers.lua: the busted specs' toolkit.
--
-- Owns: every temp dir, fixture server and background run a spec starts through it, and
-- stops all of them in H.cleanup() (call it from after_each or teardown). Nothing it
-- starts outlives the test runner: servers and background runs watch the runner's pid.
--
--   local H = require("support.helpers")      -- busted --lpath='spec/?.lua'
--
-- Paths
--   H.src            repository root, absolute (env LUACRAWL_SRC, default: the cwd)
--   H.bin            the luacrawl binary, absolute (env LUACRAWL_BIN, default H.src/build/luacrawl)
--   H.python         python3 used for the server and wrappers (env LUACRAWL_PYTHON)
--   H.fixture_root   spec/fixtures/site, the default server root
--   H.site_root      examples/site
-- Files
--   H.tmpdir() -> path             a fresh directory, removed by H.cleanup()
--   H.write(path, text) -> path    creates parent dirs; raises on failure
--   H.read(path) -> text | nil, err
--   H.exists(path) -> bool;  H.dir_empty(path) -> bool (a missing dir counts as empty)
--   H.script(text[, name]) -> path of a job script in a fresh temp dir
-- Servers
--   H.server([root[, opts]]) -> srv  server.py on 127.0.0.1 serving root (default H.fixture_root);
--                                  opts.robots_delay_ms: /robots.txt answered after that long
--     srv.port, srv.pid, srv.root, srv.stderr_path
--     srv.url([path]) -> "http://127.0.0.1:PORT" .. path (path defaults to "/")
--     srv.log() -> list of {method=, path=, time=, done=, status=, ua=};  srv.clear_log();  srv.reset()
--     srv.count(path) -> times path (with query, as requested) was served
--     srv.stop() -> true once the process is gone (SIGTERM, then SIGKILL after 5 s)
--   H.site_server() -> srv         serves examples/site
--   H.http(url[, opts]) -> {status=, body=, headers={lowercase name = last value}, redirects=}
--     opts: method, data (request body), headers (list of "Name: value"), follow (bool),
--     timeout (s, default 10). status is 0 when no answer came in time.
-- Running luacrawl
--   H.run(args[, opts]) -> res     runs H.bin synchronously; see the function for opts and res
--   H.spawn(args[, opts]) -> run   runs H.bin in the background; see the function
--   H.decode_lines(text) -> records, bad_lines
-- Processes
--   H.alive(pid) -> bool (false for zombies);  H.chromium_left(profile_root) -> {pid...}
--   H.wait_until(fn[, timeout_s[, interval_s]]) -> fn's first truthy value, or nil at timeout
--   H.sleep(s);  H.now() -> seconds (monotonic, 10 ms resolution)
--   H.sh_read(cmd) -> the whole stdout of the sh command cmd (quote its words with H.quote)
-- Cleanup
--   H.cleanup() -> {killed = {pid...}}  stops everything above, kills leftover processes
--     naming a profile root it handed out, removes temp dirs.

local cjson = require("cjson.safe")
local lfs = require("lfs")

local H = {}

-- ---------------------------------------------------------------------------------------
-- Basics
-- ---------------------------------------------------------------------------------------

-- Returns s quoted for sh.
local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
H.quote = q

-- Returns path made absolute against the current directory.
local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local cwd = assert(lfs.currentdir())
  if path == "." then return cwd end
  return cwd .. "/" .. path:gsub("^%./", "")
end

-- Returns the pid of this Lua process (/proc/self is whoever opens it).
local function self_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = tonumber(f:read("l"):match("^(%d+)"))
  f:close()
  return pid
end

H.src = absolute(os.getenv("LUACRAWL_SRC") or ".")
H.bin = absolute(os.getenv("LUACRAWL_BIN") or (H.src .. "/build/luacrawl"))
H.python = os.getenv("LUACRAWL_PYTHON")
  or (lfs.attributes("/usr/bin/python3") and "/usr/bin/python3" or "python3")
H.fixture_root = H.src .. "/spec/fixtures/site"
H.site_root = H.src .. "/examples/site"
H.pid = self_pid()

local SERVER_PY = H.src .. "/spec/support/server.py"
local RUNBG_PY = H.src .. "/spec/support/runbg.py"

-- What H.cleanup() must stop or remove, in order of creation.
local owned = { tmpdirs = {}, servers = {}, runs = {}, profile_roots = {} }

-- Runs a shell command; returns its exit status (128 + N when signal N ended it).
local function sh(cmd)
  local ok, how, n = os.execute(cmd)
  if how == "signal" then return 128 + n end
  return n or (ok and 0 or 1)
end

-- Runs a shell command and returns its whole stdout.
local function sh_read(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  p:close()
  return out
end
H.sh_read = sh_read

function H.now()
  local f = assert(io.open("/proc/uptime"))
  local t = tonumber(f:read("l"):match("^(%S+)"))
  f:close()
  return t
end

function H.sleep(s)
  os.execute("sleep " .. string.format("%.3f", s))
end

function H.wait_until(fn, timeout_s, interval_s)
  local deadline = H.now() + (timeout_s or 10)
  while true do
    local v = fn()
    if v then return v end
    if H.now() >= deadline then return nil end
    H.sleep(interval_s or 0.05)
  end
end

-- ---------------------------------------------------------------------------------------
-- Files
-- ---------------------------------------------------------------------------------------

function H.tmpdir()
  local base = os.getenv("TMPDIR") or "/tmp"
  local dir = sh_read("mktemp -d " .. q(base .. "/luacrawl-spec.XXXXXX")):gsub("%s+$", "")
  assert(dir ~= "" and lfs.attributes(dir, "mode") == "directory", "mktemp -d failed")
  -- Searchable (not listable) by others: as root the browser runs as its own user, and a
  -- profile root below this dir must be reachable by it.
  assert(sh("chmod 711 " .. q(dir)) == 0, "chmod 711 " .. dir .. " failed")
  owned.tmpdirs[#owned.tmpdirs + 1] = dir
  return dir
end

function H.exists(path)
  return lfs.attributes(path, "mode") ~= nil
end

function H.write(path, text)
  local parent = path:match("^(.*)/[^/]*$")
  if parent and parent ~= "" and not H.exists(parent) then
    assert(sh("mkdir -p " .. q(parent)) == 0, "mkdir -p " .. parent .. " failed")
  end
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
  return path
end

function H.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  return text
end

function H.dir_empty(path)
  if lfs.attributes(path, "mode") ~= "directory" then return not H.exists(path) end
  for name in lfs.dir(path) do
    if name ~= "." and name ~= ".." then return false end
  end
  return true
end

function H.script(text, name)
  return H.write(H.tmpdir() .. "/" .. (name or "job.lua"), text)
end

-- ---------------------------------------------------------------------------------------
-- Processes
-- ---------------------------------------------------------------------------------------

function H.alive(pid)
  if not pid or pid <= 0 then return false end
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local stat = f:read("a") or ""
  f:close()
  local state = stat:match("^.*%)%s+(%S)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

-- Sends signal sig ("INT", "TERM", "KILL", or a number) to pid; a negative pid is a group.
local function kill(pid, sig)
  if not pid or pid == 0 then return false end
  local s = tonumber(sig) and tostring(sig) or tostring(sig):gsub("^SIG", "")
  local target = pid < 0 and ("-- " .. pid) or tostring(pid)
  return sh("kill -s " .. s .. " " .. target .. " 2>/dev/null") == 0
end
H.kill = kill

-- True when one argument of cmdline (NUL-separated) contains root followed by "/" or its end.
local function cmdline_names(cmdline, root)
  for arg in cmdline:gmatch("[^%z]+") do
    local init = 1
    while true do
      local s, e = arg:find(root, init, true)
      if not s then break end
      local after = arg:sub(e + 1, e + 1)
      if after == "" or after == "/" then return true end
      init = s + 1
    end
  end
  return false
end

function H.chromium_left(profile_root)
  assert(type(profile_root) == "string" and #profile_root > 1, "profile_root required")
  local root = profile_root:gsub("/+$", "")
  local pids = {}
  for name in lfs.dir("/proc") do
    local pid = tonumber(name)
    if pid and pid ~= H.pid then
      local f = io.open("/proc/" .. name .. "/cmdline", "rb")
      local cmdline = f and f:read("a") or ""
      if f then f:close() end
      -- runbg.py wrappers name their command's arguments, but are not what is looked for.
      if cmdline_names(cmdline, root) and not cmdline:find(RUNBG_PY, 1, true)
          and H.alive(pid) then
        pids[#pids + 1] = pid
      end
    end
  end
  table.sort(pids)
  return pids
end

-- ---------------------------------------------------------------------------------------
-- HTTP client (curl, or python3 when curl is missing)
-- ---------------------------------------------------------------------------------------

local have_curl = sh("command -v curl >/dev/null 2>&1") == 0

local PY_HTTP = [==[
import sys, urllib.request, urllib.error
url, method, data, follow, timeout, body_path, head_path = sys.argv[1:8]
hdrs = [h.split(":", 1) for h in sys.argv[8:]]
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k): return None
handlers = [] if follow == "1" else [NoRedirect()]
opener = urllib.request.build_opener(*handlers)
req = urllib.request.Request(url, data=data.encode() if data else None, method=method or None)
for k, v in hdrs: req.add_header(k.strip(), v.strip())
status, headers, body = 0, [], b""
try:
    r = opener.open(req, timeout=float(timeout))
    status, headers, body = r.status, r.getheaders(), r.read()
except urllib.error.HTTPError as e:
    status, headers, body = e.code, e.headers.items(), e.read()
except Exception:
    pass
open(body_path, "wb").write(body)
open(head_path, "w").write("".join("%s: %s\r\n" % kv for kv in headers))
print(status)
]==]

local http_dir -- one temp dir for H.http's files, until H.cleanup()

function H.http(url, opts)
  opts = opts or {}
  http_dir = http_dir or H.tmpdir()
  local dir = http_dir
  local body_path, head_path = dir .. "/body", dir .. "/headers"
  os.remove(body_path)
  os.remove(head_path)
  local timeout = opts.timeout or 10
  local out
  if have_curl then
    local cmd = { "curl", "-s", "-o", q(body_path), "-D", q(head_path),
                  "-w", q("%{http_code} %{num_redirects}"), "--max-time", tostring(timeout) }
    if opts.method == "HEAD" then cmd[#cmd + 1] = "-I"
    elseif opts.method then cmd[#cmd + 1] = "-X " .. q(opts.method) end
    if opts.data then cmd[#cmd + 1] = "--data-binary " .. q(opts.data) end
    if opts.follow then cmd[#cmd + 1] = "-L" end
    for _, h in ipairs(opts.headers or {}) do cmd[#cmd + 1] = "-H " .. q(h) end
    cmd[#cmd + 1] = q(url)
    out = sh_read(table.concat(cmd, " ") .. " 2>/dev/null")
  else
    local cmd = { q(H.python), "-c", q(PY_HTTP), q(url), q(opts.method or ""), q(opts.data or ""),
                  opts.follow and "1" or "0", tostring(timeout), q(body_path), q(head_path) }
    for _, h in ipairs(opts.headers or {}) do cmd[#cmd + 1] = q(h) end
    out = sh_read(table.concat(cmd, " ") .. " 2>/dev/null")
  end
  local status, redirects = out:match("^(%d+)%s*(%d*)")
  local headers = {}
  for line in (H.read(head_path) or ""):gmatch("[^\r\n]+") do
    local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
    if name then headers[name:lower()] = value end
  end
  return { status = tonumber(status) or 0, body = H.read(body_path) or "", headers = headers,
           redirects = tonumber(redirects) }
end

-- ---------------------------------------------------------------------------------------
-- Fixture server
-- ---------------------------------------------------------------------------------------

function H.server(root, opts)
  opts = opts or {}
  root = absolute(root or H.fixture_root)
  assert(lfs.attributes(root, "mode") == "directory", "no such server root: " .. root)
  local dir = H.tmpdir()
  local port_file, stderr_path = dir .. "/port", dir .. "/server.stderr"
  local extra = opts.robots_delay_ms and ("--robots-delay-ms " .. math.tointeger(opts.robots_delay_ms)) or ""
  local cmd = string.format("%s %s --root %s --port-file %s --watch-pid %d %s </dev/null >%s 2>&1 "
    .. "& echo $!", q(H.python), q(SERVER_PY), q(root), q(port_file), H.pid, extra, q(stderr_path))
  local srv = { root = root, stderr_path = stderr_path }
  srv.pid = tonumber(sh_read(cmd):match("%d+"))
  owned.servers[#owned.servers + 1] = srv
  srv.port = H.wait_until(function()
    local text = H.read(port_file)
    return text and tonumber(text:match("^(%d+)\n"))
  end, 10, 0.02)
  if not srv.port then
    local err = H.read(stderr_path) or ""
    srv.stop = function() kill(srv.pid, "KILL") return true end
    error("fixture server did not start within 10 s: " .. err)
  end

  function srv.url(path)
    path = path or "/"
    if path:sub(1, 1) ~= "/" then path = "/" .. path end
    return "http://127.0.0.1:" .. srv.port .. path
  end

  function srv.log()
    local res = H.http(srv.url("/_/log"))
    assert(res.status == 200, "GET /_/log answered " .. res.status)
    return assert(cjson.decode(res.body))
  end

  function srv.clear_log()
    assert(H.http(srv.url("/_/log?clear=1")).status == 200)
  end

  function srv.reset()
    assert(H.http(srv.url("/_/reset")).status == 200)
  end

  function srv.count(path)
    local n = 0
    for _, e in ipairs(srv.log()) do
      if e.path == path then n = n + 1 end
    end
    return n
  end

  function srv.stop()
    if srv.stopped then return true end
    kill(srv.pid, "TERM")
    if not H.wait_until(function() return not H.alive(srv.pid) end, 5, 0.02) then
      kill(srv.pid, "KILL")
      H.wait_until(function() return not H.alive(srv.pid) end, 5, 0.02)
    end
    srv.stopped = not H.alive(srv.pid)
    return srv.stopped
  end

  return srv
end

function H.site_server()
  return H.server(H.site_root)
end

-- ---------------------------------------------------------------------------------------
-- Running luacrawl
-- ---------------------------------------------------------------------------------------

-- Returns the decoded values of the JSON lines in text, and the lines that are not JSON.
function H.decode_lines(text)
  local records, bad = {}, {}
  text = text or ""
  if text ~= "" and text:sub(-1) ~= "\n" then text = text .. "\n" end
  for line in text:gmatch("(.-)\n") do
    local value = cjson.decode(line)
    if value == nil then bad[#bad + 1] = line else records[#records + 1] = value end
  end
  return records, bad
end

-- True when the list args has flag in it.
local function has_flag(args, flag)
  for _, a in ipairs(args) do
    if a == flag then return true end
  end
  return false
end

-- Builds what H.run and H.spawn share: paths, flags and the env prefix.
local function prepare(args, opts)
  local dir = H.tmpdir()
  -- As root the browser runs as its own user (luacrawl-chrome), who must get through this dir
  -- to its profile dir: searchable, not listable.
  assert(sh("chmod 711 " .. q(dir)) == 0, "chmod 711 " .. dir .. " failed")
  local job = {
    dir = dir,
    profile_root = dir .. "/profiles",
    stdout_path = dir .. "/stdout",
    stderr_path = dir .. "/stderr",
    args = {},
  }
  assert(lfs.mkdir(job.profile_root))
  owned.profile_roots[#owned.profile_roots + 1] = job.profile_root
  for i, a in ipairs(args) do job.args[i] = tostring(a) end
  for _, spec in ipairs({ { "output", "-o", "output.jsonl" }, { "stats", "--stats", "stats.json" } }) do
    local key, flag, file = spec[1], spec[2], spec[3]
    local want = opts[key]
    if want then
      job[key .. "_path"] = type(want) == "string" and absolute(want) or (dir .. "/" .. file)
      if not has_flag(job.args, flag) then
        job.args[#job.args + 1] = flag
        job.args[#job.args + 1] = job[key .. "_path"]
      end
    end
  end
  local env = { "env", "LUACRAWL_PROFILE_ROOT=" .. q(job.profile_root) }
  for name, value in pairs(opts.env or {}) do
    if value == false then table.insert(env, 2, "-u " .. q(name))
    else env[#env + 1] = q(name .. "=" .. tostring(value)) end
  end
  job.env_prefix = table.concat(env, " ")
  local words = { q(opts.bin or H.bin) }
  for _, a in ipairs(job.args) do words[#words + 1] = q(a) end
  job.command = table.concat(words, " ")
  return job
end

-- Fills res.records/bad_lines/stats from a finished run's files.
local function collect(res, opts)
  res.stdout = H.read(res.stdout_path) or ""
  res.stderr = H.read(res.stderr_path) or ""
  local source = res.stdout
  if res.output_path then source = H.read(res.output_path) or "" end
  res.records, res.bad_lines = H.decode_lines(source)
  if res.stats_path then
    local text = H.read(res.stats_path)
    res.stats = text and cjson.decode(text) or nil
  end
  return res
end

-- H.run(args, opts): runs luacrawl with the list args and waits for it.
--   opts.timeout  seconds before `timeout -s KILL` ends it (default 120)
--   opts.env      extra environment {NAME = value}; value false unsets NAME
--   opts.output   true (a temp file) or a path: appends `-o PATH` unless args has -o, and
--                 reads the records from that file instead of stdout
--   opts.stats    true or a path: appends `--stats PATH` unless args has it; decodes it
--   opts.cwd      working directory (default H.src);  opts.bin  the program (default H.bin)
-- Returns { code, stdout, stderr, records, bad_lines (lines that are not JSON), stats,
--   profile_root (LUACRAWL_PROFILE_ROOT, a fresh dir), timed_out, elapsed, stdout_path,
--   stderr_path, output_path, stats_path }.
function H.run(args, opts)
  opts = opts or {}
  local job = prepare(args, opts)
  local timeout = opts.timeout or 120
  local cmd = string.format("cd %s && %s timeout -s KILL %s %s </dev/null >%s 2>%s",
    q(opts.cwd or H.src), job.env_prefix, tostring(timeout), job.command,
    q(job.stdout_path), q(job.stderr_path))
  local started = H.now()
  local code = sh(cmd)
  local res = {
    code = code,
    elapsed = H.now() - started,
    profile_root = job.profile_root,
    stdout_path = job.stdout_path,
    stderr_path = job.stderr_path,
    output_path = job.output_path,
    stats_path = job.stats_path,
  }
  res.timed_out = code == 137 and res.elapsed >= timeout - 0.5
  return collect(res, opts)
end

-- H.run_job(srv, text, opts): runs a job script (text, using args.base) against the server
-- srv and checks the run's health: exit 0, only whole JSON lines, a --stats file with
-- refs_outstanding = 0 and bad_releases = 0, and no Chromium left behind. opts.timeout (90 s);
-- opts.allow_failed: pages may fail (otherwise pages_failed must be 0). Returns H.run's result.
function H.run_job(srv, text, opts)
  opts = opts or {}
  local r = H.run({ "run", H.script(text), "base=http://127.0.0.1:" .. srv.port },
    { stats = true, timeout = opts.timeout or 90 })
  assert(r.code == 0, "exit code " .. tostring(r.code) .. ": " .. r.stderr)
  assert(#r.bad_lines == 0, "lines that are not JSON: " .. table.concat(r.bad_lines, "\n"))
  assert(type(r.stats) == "table", "no --stats written")
  assert(r.stats.refs_outstanding == 0, "refs_outstanding " .. tostring(r.stats.refs_outstanding))
  assert(r.stats.bad_releases == 0, "bad_releases " .. tostring(r.stats.bad_releases))
  local left = H.chromium_left(r.profile_root)
  assert(#left == 0, "the run left Chromium processes: " .. table.concat(left, " "))
  if not opts.allow_failed then
    assert(r.stats.pages_failed == 0, "pages failed: " .. r.stderr)
  end
  return r
end

-- H.checks(r): the records of a run keyed by their `check` field (each check emits once).
function H.checks(r)
  local by = {}
  for _, rec in ipairs(r.records) do
    if rec.check then
      assert(by[rec.check] == nil, "check emitted twice: " .. tostring(rec.check))
      by[rec.check] = rec
    end
  end
  return by
end

-- H.spawn(args, opts): starts luacrawl in the background through runbg.py, so that pid is
-- luacrawl's own and SIGINT reaches it. opts as for H.run (timeout: the wrapper SIGKILLs
-- the run after that many seconds, default 120). Returns run with:
--   run.pid, run.profile_root, run.stdout_path, run.stderr_path, run.output_path, run.stats_path
--   run.signal(sig)          sends "INT", "TERM", "KILL"... (or a number) to luacrawl
--   run.alive() -> bool
--   run.wait([timeout_s]) -> exit code (128 + N for signal N), or nil if still running
--   run.result() -> like H.run's result (after wait)
function H.spawn(args, opts)
  opts = opts or {}
  local job = prepare(args, opts)
  local pid_file, code_file = job.dir .. "/pid", job.dir .. "/code"
  local cmd = string.format("%s %s %s --pid-file %s --code-file %s --stdout %s --stderr %s "
    .. "--cwd %s --timeout %s --watch-pid %d -- %s </dev/null >%s 2>&1 & echo $!",
    job.env_prefix, q(H.python), q(RUNBG_PY), q(pid_file), q(code_file), q(job.stdout_path),
    q(job.stderr_path), q(opts.cwd or H.src), tostring(opts.timeout or 120), H.pid,
    job.command, q(job.dir .. "/runbg.log"))
  local run = {
    profile_root = job.profile_root,
    stdout_path = job.stdout_path,
    stderr_path = job.stderr_path,
    output_path = job.output_path,
    stats_path = job.stats_path,
  }
  run.wrapper_pid = tonumber(sh_read(cmd):match("%d+"))
  owned.runs[#owned.runs + 1] = run
  run.pid = H.wait_until(function()
    local text = H.read(pid_file)
    return text and tonumber(text:match("^(%d+)\n"))
  end, 10, 0.01)
  if not run.pid then
    error("runbg.py did not start the run: " .. (H.read(job.dir .. "/runbg.log") or ""))
  end

  function run.signal(sig)
    return kill(run.pid, sig)
  end

  function run.alive()
    return H.alive(run.pid)
  end

  local function read_code()
    local text = H.read(code_file)
    local code = text and tonumber(text:match("^(%d+)\n"))
    if code then run.code, run.why = code, text:match("^%d+\n(%a+)") end
    return code
  end

  function run.wait(timeout_s)
    return run.code or H.wait_until(read_code, timeout_s or 120, 0.02)
  end

  function run.result()
    local res = { code = run.code or read_code(), profile_root = run.profile_root,
                  stdout_path = run.stdout_path, stderr_path = run.stderr_path,
                  output_path = run.output_path, stats_path = run.stats_path,
                  timed_out = run.why == "timeout" }
    return collect(res, opts)
  end

  return run
end

-- ---------------------------------------------------------------------------------------
-- Cleanup
-- ---------------------------------------------------------------------------------------

function H.cleanup()
  local killed = {}
  local function kill_now(pid)
    if H.alive(pid) then
      kill(pid, "KILL")
      killed[#killed + 1] = pid
    end
  end
  for i = #owned.runs, 1, -1 do
    local run = owned.runs[i]
    if run.pid and run.pid > 0 then
      kill(-run.pid, "KILL") -- its process group (runbg.py made it a session leader)
      kill_now(run.pid)
    end
    kill_now(run.wrapper_pid)
  end
  for i = #owned.servers, 1, -1 do
    local srv = owned.servers[i]
    if srv.stop and not srv.stop() then killed[#killed + 1] = srv.pid end
  end
  for _, root in ipairs(owned.profile_roots) do
    for _, pid in ipairs(H.chromium_left(root)) do kill_now(pid) end
  end
  for _, pid in ipairs(killed) do
    H.wait_until(function() return not H.alive(pid) end, 5, 0.02)
  end
  for _, dir in ipairs(owned.tmpdirs) do
    sh("rm -rf " .. q(dir))
  end
  owned = { tmpdirs = {}, servers = {}, runs = {}, profile_roots = {} }
  http_dir = nil
  return { killed = killed }
end

return H
