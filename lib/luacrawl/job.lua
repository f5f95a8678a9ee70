-- luacrawl.job: the `job` object handlers receive, and the code each request task runs.
-- Owns: enqueue filters (same origin, allow/deny, depth), emit, sessions and context handles
-- as scripts see them, and the request runner. Resources are recorded and released by the
-- engine (C), not here: a handle a script forgets is still given back when its task ends.
local core = require "luacrawl.core"
local json = require "luacrawl.json"
local options = require "luacrawl.options"
local page_api = require "luacrawl.page"
local sandbox = require "luacrawl.sandbox"

local M = {}

-- The request each running task serves, so job:enqueue knows the depth and base URL.
local current = setmetatable({}, { __mode = "k" })
-- Records a request emitted, written when its handler succeeds (keyed by the request).
local pending_records = setmetatable({}, { __mode = "k" })
-- Validated options of context handles (for ctx:page()).
local ctx_options = setmetatable({}, { __mode = "k" })
-- Why the navigation guard refused a navigation of a request's page (keyed by the request):
-- that request fails and emits nothing, whatever its handler did with the error.
local refused_requests = setmetatable({}, { __mode = "k" })

local function traceback(e)
  if type(e) == "table" and e.luacrawl_throttle then return e end
  return debug.traceback(tostring(e), 2)
end

local function in_list(url, patterns)
  for _, p in ipairs(patterns) do
    if url:find(p) then return true end
  end
  return false
end

-- ctx:page() [async]: a page in this context, released with the request (or by page:release()).
core.Context.page = function(ctx)
  local c = ctx_options[ctx]
  if not c or not ctx:live() then error("context used after its release", 2) end
  local page, err = core.acquire(options.key(c), true)
  if not page then return nil, err end
  local ok, perr = page_api.prepare(page, c)
  if not ok then return nil, perr end
  return page
end

function M.new(spec, cfg)
  local origins = {}
  for _, u in ipairs(cfg.start) do origins[core.origin(u)] = true end

  local job = {}
  local J = {}
  J.__index = J
  J.__name = "luacrawl.Job"
  if sandbox.active then J.__metatable = false end
  setmetatable(job, J)
  -- What the engine calls (run_request, check_navigation, ...): never on the object the
  -- script gets, so a script cannot call them itself.
  local engine = {}
  local wrap_page, wrap_context = sandbox.wrap_page, sandbox.wrap_context

  local function context_for(req)
    local o = spec.context
    if type(o) == "function" then
      local ok, r = pcall(o, req)
      if not ok then error("job.context(req) failed: " .. tostring(r), 0) end
      o = r
    end
    local ok, c = pcall(options.check, o)
    if not ok then error(c, 0) end
    local why = c.proxy and core.host_refusal(c.proxy)
    if why then error("context.proxy " .. c.proxy .. " refused: " .. why, 0) end
    return c
  end

  -- job:enqueue(url [, data]) -> true | false, reason
  function J.enqueue(self, url, data)
    if self ~= job then error("use job:enqueue(url), not job.enqueue(url)", 2) end
    if type(url) ~= "string" then error("job:enqueue: url must be a string", 2) end
    local req = current[coroutine.running()]
    local base = req and (req.final_url or req.url) or nil
    local depth = req and req.depth + 1 or 0
    local n, err = core.normalize(url, base)
    if not n then return false, err end
    local refused = core.host_refusal(n)
    if refused then return false, refused end
    if cfg.same_origin and not origins[core.origin(n)] then return false, "other origin" end
    if #cfg.allow > 0 and not in_list(n, cfg.allow) then return false, "not allowed" end
    if in_list(n, cfg.deny) then return false, "denied" end
    if cfg.max_depth >= 0 and depth > cfg.max_depth then return false, "too deep" end
    local data_json
    if data ~= nil then
      local e
      data_json, e = json.encode(data)
      if not data_json then error("job:enqueue: data cannot be encoded as JSON: " .. e, 2) end
    end
    local ok, why = core.enqueue(n, depth, data_json)
    if ok then sandbox.charge("enqueued", 1) end
    return ok, why
  end

  -- job:emit(record) -> true; raises on a record JSON cannot hold.
  -- Inside a request, records are written when the handler succeeds: a request that fails and
  -- is retried does not emit twice, and an interrupted one leaves nothing half done. Outside a
  -- request (on_error), they are written at once.
  function J.emit(self, record)
    if type(record) ~= "table" then error("job:emit: record must be a table (got " .. type(record) .. ")", 2) end
    local line, err = json.encode(record)
    if not line then error("job:emit: cannot encode the record: " .. err, 2) end
    sandbox.check_record(line)
    local req = current[coroutine.running()]
    local held = req and pending_records[req]
    if held then
      held[#held + 1] = line
      return true
    end
    sandbox.charge("output_bytes", #line + 1)
    local ok, werr = core.emit(line)
    if not ok then error("job:emit: " .. werr, 2) end
    return true
  end

  -- job:session(name [, context]) [async] -> page | nil, err
  function J.session(self, name, ctx)
    if type(name) ~= "string" or name == "" then error("job:session: name must be a non-empty string", 2) end
    local ok, c = pcall(options.check, ctx or (type(spec.context) == "table" and spec.context or nil))
    if not ok then error("job:session: " .. c, 2) end
    local why = c.proxy and core.host_refusal(c.proxy)
    if why then error("job:session: context.proxy " .. c.proxy .. " refused: " .. why, 2) end
    -- A session has a context of its own (its name is part of the key): what it logs into
    -- stays in it instead of reaching every request that happens to share its options.
    local canon = options.key(c, { session = name })
    -- While another request opens or prepares it, core.session waits (woken when that ends,
    -- never by polling) and answers false: look again. A session is never shared half done.
    local page, created
    repeat page, created = core.session(name, canon) until page ~= false
    if not page then return nil, created end
    if created then
      -- If this task is stopped while it prepares the page (its deadline passes while the
      -- browser is slow), the session is closed as the task unwinds: a later open makes a
      -- new one instead of waiting for a preparation that will never finish.
      local prepared = false
      local opener <close> = setmetatable({}, { __close = function()
        if prepared then return end
        if page:live() then page:mark_bad() end
        core.close_session(name)
      end })
      local pok, perr = page_api.prepare(page, c)
      if not pok then return nil, perr end -- closed by `opener`: never hand out an unprepared session
      prepared = true
      local mok, merr = core.session_prepared(name)
      if not mok then return nil, merr end
    end
    return wrap_page(page)
  end

  function J.close_session(self, name)
    return core.close_session(name)
  end

  -- job:context(options) [async] -> context handle | nil, err
  function J.context(self, o)
    local ok, c = pcall(options.check, o)
    if not ok then error("job:context: " .. c, 2) end
    local why = c.proxy and core.host_refusal(c.proxy)
    if why then error("job:context: context.proxy " .. c.proxy .. " refused: " .. why, 2) end
    local ctx, err = core.acquire(options.key(c), false)
    if not ctx then return nil, err end
    ctx_options[ctx] = c
    return wrap_context(ctx)
  end

  -- job:cleanup{ max_contexts = n, force = b } -> contexts closed
  function J.cleanup(self, p)
    p = p or {}
    if type(p) ~= "table" then error("job:cleanup: expects a table", 2) end
    if p.max_contexts ~= nil and (math.type(p.max_contexts) ~= "integer" or p.max_contexts < 0) then
      error("job:cleanup: max_contexts must be an integer >= 0", 2)
    end
    if p.force ~= nil and type(p.force) ~= "boolean" then error("job:cleanup: force must be a boolean", 2) end
    return core.cleanup(p.max_contexts, p.force)
  end

  function J.log(self, ...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    core.log(core.INFO, table.concat(parts, " ", 1, parts.n))
  end

  function J.warn(self, ...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    core.log(core.WARN, table.concat(parts, " ", 1, parts.n))
  end

  function J.stats(self) return core.stats() end
  function J.sleep(self, ms) return core.sleep(ms) end
  function J.contexts(self) return core.contexts() end
  function J.request(self) return current[coroutine.running()] end

  -- job:browser_contexts() [async] -> ids of the contexts Chromium reports
  function J.browser_contexts(self)
    if sandbox.active then error("job:browser_contexts is not available in the sandbox", 2) end
    local r, err = core.browser_send("Target.getBrowserContexts")
    if not r then return nil, err end
    local v = json.decode(r)
    return v and v.browserContextIds or {}
  end

  -- The code each request task runs. Returns core.REQUEST_OK, core.REQUEST_THROTTLED and the
  -- milliseconds to back off, or core.REQUEST_FAILED and the message (the engine's job.c reads
  -- them).
  function engine.run_request(req)
    if req.data_json then req.data = json.plain(json.decode(req.data_json)) end
    req.data_json = nil
    current[coroutine.running()] = req
    local ok, c = pcall(context_for, req)
    if not ok then return core.REQUEST_FAILED, c end
    local page, err = core.acquire(options.key(c), true)
    if not page then return core.REQUEST_FAILED, "cannot open a page: " .. tostring(err) end
    local pok, perr = page_api.prepare(page, c, { wait_until = cfg.wait_until, request = req })
    if not pok then
      page:mark_bad()
      return core.REQUEST_FAILED, "cannot prepare the page: " .. tostring(perr)
    end
    pending_records[req] = {}
    local hok, herr = xpcall(spec.handle, traceback, wrap_page(page), req, job)
    local records = pending_records[req]
    pending_records[req] = nil
    if not hok then
      if type(herr) == "table" and herr.luacrawl_throttle then
        return core.REQUEST_THROTTLED, herr.retry_after_ms
      end
      if page:live() and page:broken() then page:mark_bad() end
      return core.REQUEST_FAILED, herr
    end
    if refused_requests[req] then
      if page:live() then page:mark_bad() end -- it was left on an error document
      return core.REQUEST_FAILED, refused_requests[req]
    end
    if sandbox.active then
      local bytes = 0
      for _, line in ipairs(records) do bytes = bytes + #line + 1 end
      local bok, berr = pcall(sandbox.charge, "output_bytes", bytes)
      if not bok then return core.REQUEST_FAILED, berr end
    end
    local ok, werr = core.emit_all(records)
    if not ok then return core.REQUEST_FAILED, "cannot write a record: " .. tostring(werr) end
    return core.REQUEST_OK
  end

  -- Why the crawl's rules refuse a normalized URL reached by navigation, or nil. `scoped`:
  -- the page is a request's own, so allow and deny apply too.
  local function refusal(n, scoped)
    if cfg.same_origin and not origins[core.origin(n)] then return "not same origin" end
    if scoped and #cfg.allow > 0 and not in_list(n, cfg.allow) then return "not in allow" end
    if scoped and in_list(n, cfg.deny) then return "denied" end
    local verdict = core.robots_verdict(n)
    if verdict == false then return "disallowed by robots.txt" end
    if verdict == nil then return "robots.txt of " .. core.origin(n) .. " not read yet" end
    return nil
  end

  -- The navigation guard (called by the engine at its resume point, not in a task): the
  -- rules enqueue applies to links, applied to where navigation really goes: each redirect
  -- hop and each navigation a page starts by itself. The first request of page:navigate(url)
  -- is the script's own choice and passes. On the request's own page every rule applies; on
  -- pages a script drives itself (job:session, ctx:page), which log in and follow flows the
  -- crawl's scope does not list, same_origin and robots.txt do. Returns nil to let the
  -- request go, or the reason.
  function engine.check_navigation(target, url, redirected)
    local g = page_api.guard
    local n = core.normalize(url)
    -- The host rules hold for every paused document, the first request of page:navigate and
    -- robots.txt redirects included (and the network guard for every connection after).
    local why = core.host_rules() and (n and core.host_refusal(n) or (not n and "not an http(s) URL (the host rules)"))
    if why then
      local msg = (redirected and "redirect to " or "navigation to ") .. url .. " refused: " .. why
      g.refused[target] = msg
      local req = g.request[target]
      if req then refused_requests[req] = msg end
      return msg
    end
    if g.exempt[target] then return nil end
    if not n then return nil end -- data:, about:, blob: ...: not a crawl URL, no rule applies
    if not redirected and g.expect[target] == n then return nil end
    local req = g.request[target]
    why = refusal(n, req ~= nil)
    if not why then return nil end
    local msg = (redirected and "redirect to " or "navigation to ") .. url .. " refused: " .. why
    g.refused[target] = msg
    if req then refused_requests[req] = msg end
    return msg
  end

  function engine.run_on_error(req, err)
    if req.data_json then req.data = json.plain(json.decode(req.data_json)) end
    req.data_json = nil
    current[coroutine.running()] = req
    spec.on_error(req, err, job)
  end

  -- robots.txt of an origin, read through the browser in the context the host's requests use
  -- (job.context, called with a request for the robots.txt URL when it is a function): same
  -- proxy, user agent, headers and network stack, so the fetch reveals nothing the crawl's
  -- own requests would not.
  function engine.fetch_robots(origin)
    local c = context_for({ url = origin .. "/robots.txt", depth = 0, attempt = 0, robots = true })
    local page, err = core.acquire(options.key(c), true)
    if not page then error(err, 0) end
    -- robots.txt may redirect anywhere (RFC 9309 2.3.1.2): the guard leaves this page alone.
    local pok, perr = page_api.prepare(page, c, { unguarded = true })
    if not pok then
      page:mark_bad()
      error("cannot prepare the page: " .. tostring(perr), 0)
    end
    local res, gerr = page:navigate(origin .. "/robots.txt", { throttle = false })
    if not res then error(gerr, 0) end
    local text = ""
    if res.status >= 200 and res.status < 300 then text = page:text() or "" end
    return res.status, text
  end

  return job, engine
end

return M
