-- interrupt_spec.lua: job code cannot escape the request deadline or the signals (issue 9,
-- item 13). Coroutines the script creates when it loads carry the deadline hook like the
-- request's own; SIGINT and SIGTERM end the process within 2 s with 130 / 143 and no Chromium
-- left, while Lua spins in Lua code and while it spins inside one long C call.
local H = require("support.helpers")

local function no_browser_left(profile_root)
  local gone = H.wait_until(function() return #H.chromium_left(profile_root) == 0 end, 3, 0.05)
  assert.is_truthy(gone, "Chromium processes left: " .. table.concat(H.chromium_left(profile_root), " "))
  local empty = H.wait_until(function() return H.dir_empty(profile_root) end, 5, 0.05)
  assert.is_truthy(empty, "profile dir left in " .. profile_root)
end

describe("deadlines and signals", function()
  local srv
  before_each(function() srv = H.server() end)
  after_each(function() H.cleanup() end)

  for _, case in ipairs {
    { "coroutine.wrap", "local co = coroutine.wrap(function() while true do end end)", "co()" },
    { "coroutine.create", "local co = coroutine.create(function() local n = 0 while true do n = n + 1 end end)",
      "coroutine.resume(co)" },
  } do
    it("a " .. case[1] .. " coroutine made at load time and spinning in the handler is stopped by the deadline", function()
      local s = H.script(string.format([[
%s
return { start = { %q, %q }, retries = 0, timeout_ms = 1500, concurrency = 1,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    if req.url:find("spin") then %s end
    job:emit { url = req.url }
  end,
  on_error = function(req, err, job) job:emit { url = req.url, failed = tostring(err) } end,
}]], case[2], srv.url("/_/page?id=spin"), srv.url("/_/page?id=ok"), case[3]))
      local r = H.run({ "run", s }, { stats = true, timeout = 40 })
      assert.equals(0, r.code, r.stderr)
      assert.is_false(r.timed_out)
      local by = {}
      for _, rec in ipairs(r.records) do by[rec.url] = rec end
      local spun = by[srv.url("/_/page?id=spin")]
      assert.is_table(spun, "no record for the spinning request: " .. r.stderr)
      assert.matches("deadline", spun.failed)
      assert.is_table(by[srv.url("/_/page?id=ok")], "the crawl went on")
      assert.is_nil(by[srv.url("/_/page?id=ok")].failed)
      assert.equals(1, r.stats.pages_failed)
      assert.equals(0, r.stats.refs_outstanding)
      no_browser_left(r.profile_root)
    end)
  end

  -- A job whose handler marks a file, then spins (`spin` is Lua code) with a deadline far away.
  local function spinning_job(mark, spin, top)
    return H.script(string.format([[
%s
return { start = { %q }, retries = 0, timeout_ms = 120000,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    local f = assert(io.open(%q, "w")); f:close()
    %s
  end }]], top or "", srv.url("/_/page?id=spin"), mark, spin))
  end

  local spins = {
    { "in Lua", "local n = 0 while true do n = n + 1 end" },
    { "in a top-level coroutine", "co()", "local co = coroutine.wrap(function() while true do end end)" },
    { "in a pcall that swallows errors", "while true do pcall(function() while true do end end) end" },
    { "inside one long C call (a pattern)", [[string.find(string.rep("a", 1e6), ".-.-.-.-x")]] },
  }
  for _, sig in ipairs { { "TERM", 143 }, { "INT", 130 } } do
    for _, spin in ipairs(spins) do
      it("SIG" .. sig[1] .. " to a job spinning " .. spin[1] .. ": exit " .. sig[2] .. " within 2 s, no Chromium left", function()
        local dir = H.tmpdir()
        local mark = dir .. "/spinning"
        local run = H.spawn({ "run", spinning_job(mark, spin[2], spin[3]) }, { timeout = 60 })
        assert.is_truthy(H.wait_until(function() return H.exists(mark) end, 40, 0.02),
          "the handler did not start: " .. (H.read(run.stderr_path) or ""))
        H.sleep(0.3) -- well inside the loop
        assert.is_true(#H.chromium_left(run.profile_root) > 0, "a browser was running")
        local t0 = H.now()
        run.signal(sig[1])
        local code = run.wait(10)
        local took = H.now() - t0
        assert.equals(sig[2], code, H.read(run.stderr_path))
        assert.is_true(took < 2.0, string.format("took %.2f s", took))
        assert.same({}, H.chromium_left(run.profile_root), "Chromium left at exit")
        no_browser_left(run.profile_root)
      end)
    end
  end
end)
