-- events_spec.lua: a page that floods the engine with big CDP events (issue 9, item 9). Each
-- fetch with a 200 KB URL costs about 400 KB of events (requestWillBeSent, responseReceived).
-- A page in use buffers at most LC_ENPAGE_MAX_EVENT_BYTES (8 MiB) of them, the oldest dropped
-- and counted; a page in the idle pool buffers none. The engine's RSS stays bounded.
local H = require("support.helpers")

-- Fires ?n= sequential fetches of 200 KB URLs once loaded; window.fired counts them.
local FLOOD = [[<!doctype html><title>flood</title><p>flood</p>
<script>
window.fired = 0;
window.addEventListener('load', function () {
  setTimeout(async function () {
    var n = Number(new URLSearchParams(location.search).get('n') || 100);
    var tail = 'a'.repeat(200 * 1000);
    for (var i = 0; i < n; i++) {
      try { await fetch('/_/page?id=' + i + '&pad=' + tail); } catch (e) {}
      window.fired = i + 1;
    }
  }, 0);
});
</script>]]

local PRELUDE = [[
local P = args.base
local core = require("luacrawl.core")
local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local t = f:read("a")
  f:close()
  return tonumber(t:match("VmRSS:%s*(%d+)"))
end
]]

-- ASan keeps freed memory in quarantine: RSS would say nothing about what the engine holds.
local ENV = { ASAN_OPTIONS = "detect_leaks=1:abort_on_error=0:quarantine_size_mb=0" }

local function flood_server()
  local root = H.tmpdir()
  H.write(root .. "/flood.html", FLOOD)
  return H.server(root)
end

local function run(srv, text)
  local r = H.run({ "run", H.script(text), "base=http://127.0.0.1:" .. srv.port },
    { stats = true, timeout = 150, env = ENV })
  assert.equals(0, r.code, r.stderr)
  assert.equals(0, r.stats.refs_outstanding)
  assert.same({}, H.chromium_left(r.profile_root))
  return r
end

describe("page events", function()
  after_each(function() H.cleanup() end)

  it("a page in use buffers a bounded number of bytes: the oldest events are dropped", function()
    local srv = flood_server()
    local r = run(srv, PRELUDE .. [[
return { start = { P .. "/flood.html?n=250" }, retries = 0, timeout_ms = 120000,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    local before = rss_kb()
    local t0 = core.now()
    while core.now() - t0 < 90000 and page:eval("window.fired") < 250 do job:sleep(200) end
    job:sleep(1000) -- the last events arrive
    local st = job:stats()
    job:emit { fired = page:eval("window.fired"), grew_kb = rss_kb() - before,
               dropped = st.events_dropped, queued = st.events_queued_bytes }
  end }]])
    local rec = r.records[1]
    assert.is_table(rec, r.stderr)
    assert.equals(250, rec.fired)
    assert.is_number(rec.queued, "no events_queued_bytes counter")
    assert.is_true(rec.queued <= 8 * 1024 * 1024, "queued " .. tostring(rec.queued))
    assert.is_true(rec.queued > 1024 * 1024, "the page did buffer its events: " .. tostring(rec.queued))
    assert.is_true(rec.dropped > 0, "dropped " .. tostring(rec.dropped))
    -- ~100 MB of events arrived; the engine kept at most 8 MiB of them.
    assert.is_true(rec.grew_kb < 48 * 1024, "engine RSS grew by " .. rec.grew_kb .. " kB")
    assert.equals(rec.dropped, r.stats.events_dropped)
  end)

  it("a page in the idle pool buffers nothing", function()
    local srv = flood_server()
    local r = run(srv, PRELUDE .. [[
return { start = { P .. "/flood.html?n=250", P .. "/_/page?id=second" }, concurrency = 1,
  retries = 0, timeout_ms = 120000,
  -- The second request uses another context, so the first page stays idle in its pool.
  context = function(req) if req.url:find("second") then return { jar = "second" } end return {} end,
  handle = function(page, req, job)
    if not req.url:find("second") then
      assert(page:navigate(req.url)) -- returns while the page floods: it goes idle
      return
    end
    assert(page:navigate(req.url))
    local before = rss_kb()
    job:sleep(8000)
    local st = job:stats()
    job:emit { idle_pages = st.idle_pages, grew_kb = rss_kb() - before,
               dropped = st.events_dropped, queued = st.events_queued_bytes }
  end }]])
    local rec = r.records[1]
    assert.is_table(rec, r.stderr)
    assert.equals(1, rec.idle_pages, "the flooding page stayed idle")
    assert.is_number(rec.queued, "no events_queued_bytes counter")
    assert.is_true(rec.queued < 512 * 1024, "an idle page buffered " .. tostring(rec.queued) .. " bytes")
    assert.is_true(rec.dropped > 0, "dropped " .. tostring(rec.dropped))
    assert.is_true(rec.grew_kb < 32 * 1024, "engine RSS grew by " .. rec.grew_kb .. " kB")
  end)
end)
