-- misuse_spec.lua: scripts that use the API where it cannot work get a clear error, and the
-- engine stays sound: an async call where Lua cannot yield, a context whose cookies Chromium
-- refuses, a __close handler that never returns on a request stopped at its deadline.
local H = require("support.helpers")

describe("misuse", function()
  local srv
  before_each(function() srv = H.server() end)
  after_each(function() H.cleanup() end)

  it("a page call inside an xpcall handler or a sort comparator is a clear error", function()
    local s = H.script(string.format([[
return { start = { %q }, retries = 0,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    local ok, err = xpcall(function() error("first") end, function(e) return page:title() end)
    local sok, serr = pcall(table.sort, { 3, 1, 2 }, function(a, b) page:title() return a < b end)
    job:sleep(50) -- the next operation gets its own answer, not a stale one
    job:emit { handler = tostring(err), sort = tostring(serr), title = page:title() }
  end }]], srv.url("/_/page?id=1")))
    local r = H.run({ "run", s }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    local rec = r.records[1]
    assert.is_table(rec, r.stderr)
    -- Lua reports an error raised in a message handler as "error in error handling".
    assert.is_truthy(rec.handler:find("cannot be called inside", 1, true)
      or rec.handler:find("error in error handling", 1, true), rec.handler)
    assert.matches("cannot be called inside", rec.sort)
    assert.is_string(rec.title)
    assert.equals(0, r.stats.refs_outstanding)
  end)

  it("a context whose cookies Chromium refuses fails cleanly and leaves no context behind", function()
    local s = H.script(string.format([[
return { start = { %q }, retries = 0,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    local errs = {}
    for i = 1, 3 do
      local ctx, err = job:context { jar = "c" .. i,
        cookies = { { name = "a", value = "b", url = %q, expires = "soon" } } }
      errs[#errs + 1] = tostring(err)
      if ctx then ctx:release() end
    end
    job:cleanup { max_contexts = 0, force = true }
    job:sleep(500)
    local theirs = assert(job:browser_contexts())
    job:emit { errs = errs, chromium = #theirs, cache = #job:contexts() }
  end }]], srv.url("/"), srv.url("/")))
    local r = H.run({ "run", s }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    local rec = r.records[1]
    assert.is_table(rec, r.stderr)
    for _, e in ipairs(rec.errs) do assert.matches("Storage.setCookies", e) end
    assert.equals(rec.cache, rec.chromium, "no context leaked in Chromium")
    assert.equals(0, r.stats.refs_outstanding)
  end)

  it("a __close handler that loops on a timed-out request is stopped; the crawl goes on", function()
    local s = H.script(string.format([[
return { start = { %q, %q }, retries = 0, timeout_ms = 1500, concurrency = 1,
  handle = function(page, req, job)
    if req.url:find("id=1") then
      local guard <close> = setmetatable({}, { __close = function() while true do end end })
      assert(page:wait_for("#never", { timeout_ms = 60000 }))
    end
    job:emit { url = req.url }
  end }]], srv.url("/_/page?id=1"), srv.url("/_/page?id=2")))
    local t0 = H.now()
    local r = H.run({ "run", s }, { stats = true, timeout = 60 })
    assert.equals(0, r.code, r.stderr)
    assert.equals(1, #r.records)
    assert.matches("id=2", r.records[1].url)
    assert.equals(1, r.stats.pages_failed)
    assert.equals(0, r.stats.refs_outstanding)
    assert.is_true(H.now() - t0 < 40, "the loop in __close was stopped")
  end)
  -- The hook's answer is user Lua too: it is read inside the hook's protected call, so an
  -- answer that raises when read is a failing hook (the table policy applies), and a bad
  -- value is described without running its metamethods.
  local function hook_job(answer)
    return string.format([[
local answer = %s
return { start = { %q }, retries = 0,
  policy = { max_contexts = 1, on_cleanup = function(state) return answer() end },
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    job:cleanup()
    job:sleep(300) -- a tick's cleanup pass calls the hook too
    job:emit { title = page:title() }
  end }]], answer, srv.url("/"))
  end

  it("a hook whose answer raises on field access fails like a hook that raises", function()
    local r = H.run_job(srv, hook_job([[function()
  return setmetatable({}, { __index = function(t, k) error("answer has no " .. k) end })
end]]))
    assert.equals(1, #r.records)
    assert.is_string(r.records[1].title)
    assert.matches("policy hook failed, the table policy applies: reading its answer's max_contexts: "
      .. "[^\n]*answer has no max_contexts", r.stderr)
    assert.matches("stack traceback", r.stderr)
  end)

  it("a hook whose answer values raise when described is warned about, not obeyed", function()
    local r = H.run_job(srv, hook_job([[function()
  local boom = { __tostring = function() error("tostring ran") end,
                 __index = function() error("index ran") end }
  return { max_contexts = setmetatable({}, boom), force = setmetatable({}, boom),
           close = { setmetatable({}, boom), 0, "x" } }
end]]))
    assert.equals(1, #r.records)
    assert.matches("policy hook answered a bad value, ignored: policy%.max_contexts must be an integer "
      .. "from 0 to 1000000 %(got a table%)", r.stderr)
    assert.matches("policy hook answered a bad value, ignored: policy%.force must be a boolean %(got a table%)",
      r.stderr)
    assert.matches("policy hook asked to close a table, which is not a context id: ignored", r.stderr)
    assert.matches("policy hook asked to close 0, which is not a context id: ignored", r.stderr)
    assert.matches("policy hook asked to close 'x', which is not a context id: ignored", r.stderr)
    assert.is_nil(r.stderr:find("tostring ran", 1, true))
    assert.is_nil(r.stderr:find("index ran", 1, true))
  end)

  it("a hook that returns garbage is warned about and the table policy applies", function()
    local r = H.run_job(srv, hook_job([[function()
  return print
end]]))
    assert.equals(1, #r.records)
    assert.matches("policy hook returned a function, not a table or nil: ignored", r.stderr)
    assert.is_nil(r.stderr:find("policy hook failed", 1, true))
  end)
end)
