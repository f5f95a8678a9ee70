-- luacrawl.page: the page API scripts use, built on the engine's two primitives
-- page:_send(method, params_json, timeout_ms) and page:_event(timeout_ms).
-- Owns: page preparation (emulation, blocking) and its reset before reuse, navigation and its
-- waits, evaluation, content, interaction and extraction. Runtime failures return nil, err;
-- misuse (a wrong argument type) raises.
local core = require "luacrawl.core"
local json = require "luacrawl.json"
local options = require "luacrawl.options"
local inpage = require "luacrawl.inpage"

local Page = core.Page
local M = {}

inpage.js_dir = rawget(_G, "LUACRAWL_JS_DIR") or inpage.js_dir

local DEFAULT_TIMEOUT = 30000
-- The largest eval result (JSON characters) a page may send: well below the DevTools
-- connection's message cap even when every character takes 6 bytes of escaped JSON.
local MAX_EVAL_BYTES = 64 * 1024 * 1024

-- The events every page buffers, for the engine's own reading (navigate's waits, scroll's
-- requests in flight): method names, or prefixes ending in "." ("Page." is every Page event).
-- This is the one list: the pool buffers what a page's subscription names (page:_subscribe),
-- and a page's subscription is this list plus what its script asked for (page:on_event,
-- page:wait_event, its own Fetch.enable).
M.EVENTS = { "Page.", "Network.responseReceived", "Network.loadingFailed",
             "Network.requestWillBeSent", "Runtime.exceptionThrown" }

-- Events of the script's subscriptions that an engine wait read and no handler took, kept for
-- page:wait_event (the oldest go first past this many).
local MAX_BACKLOG = 1000

-- Per-request state of a page (response and event handlers, the script's subscriptions),
-- dropped with the handle.
local per_use = setmetatable({}, { __mode = "k" })
-- Per-target state that outlives a request: did a script change settings by hand? And the
-- emulation (emulation_of) a page has now; a page not in it is re-emulated when reused
-- (so forgetting is safe: the table is emptied when it grows past EMULATED_MAX, which bounds
-- it however many pages a long run opens and closes).
local dirty = {}
local emulated, n_emulated, EMULATED_MAX = {}, 0, 1024

-- The navigation guard's state per target (see job.check_navigation): the URL page:navigate
-- was asked for (its first request is the script's own choice), why the guard last refused
-- a navigation, pages it leaves alone (robots.txt fetches), and the request a page serves.
M.guard = {
  expect = {}, refused = {}, exempt = {},
  request = setmetatable({}, { __mode = "v" }),
}

local function use_state(page)
  local s = per_use[page]
  if not s then
    s = { on_response = {}, on_event = {}, subs = {}, backlog = {} }
    per_use[page] = s
  end
  return s
end

-- Whether an event method matches a subscription entry (a name, or a prefix ending in ".").
local function method_matches(entry, method)
  if entry:sub(-1) == "." then return method:sub(1, #entry) == entry end
  return method == entry
end

-- Adds `method` to the script's subscriptions of this use and tells the pool.
local function subscribe(page, s, method)
  for _, m in ipairs(s.subs) do if m == method then return end end
  s.subs[#s.subs + 1] = method
  local all = {}
  for i, m in ipairs(M.EVENTS) do all[i] = m end
  for _, m in ipairs(s.subs) do all[#all + 1] = m end
  page:_subscribe(all)
end

local function script_wants(s, method)
  for _, m in ipairs(s.subs) do if method_matches(m, method) then return true end end
  return false
end

-- An event an engine wait (navigate, scroll, wait_event) read: to the script's handlers for
-- it, else, if the script subscribed to it, kept for page:wait_event.
local function dispatch(page, s, method, params)
  local handled = false
  for _, h in ipairs(s.on_event) do
    if method_matches(h.method, method) then
      handled = true
      h.fn(json.plain(json.decode(params)), method)
    end
  end
  if handled or not script_wants(s, method) then return end
  if #s.backlog >= MAX_BACKLOG then table.remove(s.backlog, 1) end
  s.backlog[#s.backlog + 1] = { method = method, params = params }
end

local function timeout_of(opts)
  local t = opts and opts.timeout_ms or DEFAULT_TIMEOUT
  if math.type(t) ~= "integer" or t < 1 then error("timeout_ms must be a positive integer", 3) end
  local left = core.remaining_ms()
  if left and left < t then t = left end
  return t
end

-- Page methods wait for the browser: where the task cannot yield (an error handler, a
-- metamethod, a sort comparator) they raise at once, as the engine's primitives do, instead
-- of failing later in some helper with a misleading message.
local function check_yieldable()
  local _, main = coroutine.running()
  if not main and not coroutine.isyieldable() then
    error("page methods cannot be called inside a metamethod, a sort or gsub callback, or an error handler", 3)
  end
end

-- Send a command; returns the decoded result table | nil, err.
local function send(page, method, params, timeout)
  check_yieldable()
  local text = "{}"
  if params ~= nil then
    local err
    text, err = json.encode(params)
    if not text then return nil, "cannot encode the parameters of " .. method .. ": " .. err end
    if text == "[]" then text = "{}" end
  end
  local r, err = page:_send(method, text, timeout or DEFAULT_TIMEOUT)
  if not r then return nil, err end
  local v, derr = json.decode(r)
  if v == nil then return nil, derr end
  return v
end
M.send = send

-- ------------------------------------------------------------------ the engine's own world

-- The engine's own in-page scripts (links, content, markdown, query, extract, html, title,
-- ...) run in an isolated world of the main frame (Page.createIsolatedWorld): the same DOM,
-- none of the page's JavaScript, so a page that overrides JSON.stringify, a prototype or
-- document.querySelectorAll changes nothing they see. A world's context lives as long as
-- its document; after a navigation its id is unknown, or (in a new renderer process) may
-- name another context. So each world holds a random token under a random name, every script
-- checks it first, and a world that fails the check is made again.
local WORLD_NAME = "luacrawl"
-- The reply allowance around a value: {"id":..,"result":{"result":{"type":..,"value":V}},"sessionId":..}
local REPLY_ENVELOPE = 512
-- The reply cap when no max_bytes is given: the default limit counts JSON characters (checked
-- in the page), and the browser writes each non-ASCII character as a 6-byte escape.
local DEFAULT_REPLY_CAP = 6 * MAX_EVAL_BYTES + REPLY_ENVELOPE
local WORLD_LOST = "luacrawl-world-lost"
local worlds = setmetatable({}, { __mode = "k" }) -- page handle -> { id, key, token }

local function random_word()
  return string.format("%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

local function make_world(page, timeout)
  local info = page:info()
  -- A page target's main frame has the target's id.
  local r, err = send(page, "Page.createIsolatedWorld", { frameId = info.target, worldName = WORLD_NAME }, timeout)
  if not r then return nil, err end
  if math.type(math.tointeger(r.executionContextId)) ~= "integer" then
    return nil, "Page.createIsolatedWorld gave no context id"
  end
  local w = { id = math.tointeger(r.executionContextId), key = "__luacrawl_" .. random_word(), token = random_word() }
  local m, merr = send(page, "Runtime.evaluate", {
    expression = "Object.defineProperty(globalThis," .. json.encode(w.key) .. ",{value:" .. json.encode(w.token) .. "});true",
    contextId = w.id, returnByValue = true }, timeout)
  if not m then return nil, merr end
  if m.exceptionDetails then return nil, "cannot set up the engine's world: " .. tostring(m.exceptionDetails.text) end
  worlds[page] = w
  return w
end

local function exception_text(d)
  return tostring(d.exception and d.exception.description or d.text or "exception")
end

-- world_eval(page, expression [, timeout_ms]) -> value | nil, err
-- Evaluates an engine expression (synchronous, no statements) in the engine's world; the
-- value comes back as Lua data, like page:eval's. JavaScript exceptions are
-- "JavaScript error: ..."; a reply past the default cap is "eval result too large: ...".
local function world_eval(page, expression, timeout)
  check_yieldable()
  timeout = timeout or timeout_of()
  for attempt = 1, 2 do
    local w = worlds[page]
    if not w then
      local err
      w, err = make_world(page, timeout)
      if not w then return nil, err end
    end
    -- In this world JSON.stringify is the real one: the size check is exact here, and the
    -- engine's reply cap only guards the connection.
    local wrapped = "(function(){if(globalThis[" .. json.encode(w.key) .. "]!==" .. json.encode(w.token) ..
      ")return " .. json.encode(WORLD_LOST) .. ";var v=[(" .. expression .. ")],t=JSON.stringify(v);" ..
      "if(t&&t.length>" .. MAX_EVAL_BYTES .. ")throw new Error('luacrawl-eval:too large:'+t.length+" ..
      "' characters of JSON, the limit is " .. MAX_EVAL_BYTES .. "');return v;})()"
    local text, err = page:_send("Runtime.evaluate", json.encode {
      expression = wrapped, contextId = w.id, returnByValue = true,
    }, timeout, DEFAULT_REPLY_CAP)
    local lost = false
    if not text then
      -- A context gone with its document (a navigation) is made again, once.
      if not (err:find("Cannot find context", 1, true) or err:find("context was destroyed", 1, true))
          or attempt == 2 then
        if err:find("reply exceeds max_bytes", 1, true) then return nil, "eval result too large: " .. err end
        return nil, err
      end
      lost = true
    else
      local r, derr = json.decode(text)
      if not r then return nil, "eval result cannot be read: " .. derr end
      if r.exceptionDetails then
        local msg = exception_text(r.exceptionDetails)
        local why = msg:match("luacrawl%-eval:too large:([^\n]*)")
        if why then return nil, "eval result too large: " .. why end
        return nil, "JavaScript error: " .. msg
      end
      local v = r.result and r.result.value
      if type(v) == "table" then
        local ok, plain = pcall(json.plain, v[1])
        if not ok then return nil, "eval result too deep: " .. tostring(plain) end
        return plain
      end
      lost = true -- the check failed (or the context is someone else's): make the world again
    end
    if lost then worlds[page] = nil end
  end
  return nil, "cannot reach the engine's world in the page (it navigated while being read)"
end

-- page:send(method [, params [, timeout_ms]]) -> result | nil, err
-- A raw CDP command on the page's session. The page is reset before its next reuse.
-- Fetch.enable replaces a session's patterns, so a script's own Fetch.enable (or Fetch.disable)
-- is merged with the engine's patterns (block, block_urls, the navigation guard), which keep
-- being answered by the engine; what the script's patterns pause reaches it as
-- Fetch.requestPaused events (see bpool.h, lc_enpage_set_guard).
local function script_fetch(page, params, timeout)
  if params ~= nil and type(params) ~= "table" then error("page:send: Fetch.enable parameters must be a table", 3) end
  local s = use_state(page)
  local mine = {}
  if params then
    -- Without patterns, Fetch.enable pauses every request (at the Request stage).
    for i, p in ipairs(params.patterns or { { urlPattern = "*" } }) do
      if type(p) ~= "table" then error("page:send: Fetch.enable patterns must be tables", 3) end
      mine[i] = { urlPattern = p.urlPattern or "*", resourceType = p.resourceType, requestStage = p.requestStage }
    end
  end
  page:_script_fetch(mine)
  if #mine > 0 then subscribe(page, s, "Fetch.requestPaused") end
  local auth = params and params.handleAuthRequests or nil
  if auth then subscribe(page, s, "Fetch.authRequired") end
  local patterns = page:_engine_fetch()
  for _, p in ipairs(mine) do patterns[#patterns + 1] = p end
  return send(page, "Fetch.enable", { patterns = patterns, handleAuthRequests = auth }, timeout)
end

-- page:send(method [, params [, timeout_ms]]) -> result | nil, err
-- A raw CDP command on the page's session. The page is reset before its next reuse.
function Page.send(page, method, params, timeout_ms)
  if type(method) ~= "string" then error("page:send: method must be a string", 2) end
  local info = page:info()
  dirty[info.target] = true
  if method == "Fetch.enable" then return script_fetch(page, params or {}, timeout_ms or timeout_of()) end
  if method == "Fetch.disable" then return script_fetch(page, nil, timeout_ms or timeout_of()) end
  return send(page, method, params, timeout_ms or timeout_of())
end

-- page:on_event(method, fn): fn(params, method) for every event `method` (a CDP event name, or
-- a prefix ending in ".") that arrives while a page method waits (navigate, scroll,
-- wait_event) in this request. fn runs in the request's task: it may send commands.
function Page.on_event(page, method, fn)
  if type(method) ~= "string" or method == "" then error("page:on_event: method must be a non-empty string", 2) end
  if type(fn) ~= "function" then error("page:on_event: expects a function", 2) end
  local s = use_state(page)
  s.on_event[#s.on_event + 1] = { method = method, fn = fn }
  subscribe(page, s, method)
end

-- page:wait_event(method [, { timeout_ms }]) -> params, method | nil, err
-- The next event `method` (a name, or a prefix ending in ".") not taken yet: one that arrived
-- since the page was subscribed to it (by this call, page:on_event or a Fetch.enable of the
-- script), or the next to come. Events of other methods read meanwhile go to their handlers.
function Page.wait_event(page, method, opts)
  if type(method) ~= "string" or method == "" then error("page:wait_event: method must be a non-empty string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("page:wait_event: options must be a table", 2) end
  check_yieldable()
  local timeout = timeout_of(opts)
  local s = use_state(page)
  subscribe(page, s, method)
  for i, e in ipairs(s.backlog) do
    if method_matches(method, e.method) then
      table.remove(s.backlog, i)
      return json.plain(json.decode(e.params)), e.method
    end
  end
  local deadline = core.now() + timeout
  while true do
    local left = deadline - core.now()
    if left <= 0 then return nil, "timeout waiting for event " .. method end
    local m, params = page:_event(left)
    if not m then
      if params == "timeout" then return nil, "timeout waiting for event " .. method end
      return nil, params
    end
    if method_matches(method, m) then return json.plain(json.decode(params)), m end
    dispatch(page, s, m, params)
  end
end

-- A block_urls pattern ('*' is the only wildcard) as a Fetch pattern, where '?' is a wildcard
-- too and a backslash escapes: "*/page?id=1" must not also block "*/pageXid=1".
local function fetch_pattern(p)
  return (p:gsub("[\\?]", "\\%0"))
end

local function must(ok, err)
  if not ok then error(err, 0) end
  return ok
end

-- The browser's own User-Agent (what a page without an override sends), asked once.
local browser_user_agent
local function default_user_agent(page)
  if not browser_user_agent then
    local v = must(send(page, "Browser.getVersion"))
    browser_user_agent = must(v.userAgent, "Browser.getVersion gave no userAgent")
  end
  return browser_user_agent
end

-- Per field, the canonical text of what options `c` emulate (absent: the browser's default).
local function emulation_of(c)
  local e = {}
  for _, k in ipairs(options.EMULATION) do
    if c[k] ~= nil then e[k] = json.canonical(c[k]) end
  end
  return e
end

-- Bring a page from emulating `old` (emulation_of; {} for a fresh page) to emulating `c`,
-- sending only what differs: requests that share a context differ in their user agent, say,
-- and a reused page then costs one command. old = nil: unknown (a script sent raw commands),
-- so every setting is sent again, defaults included, and the domains enabled again.
local function emulate(page, c, old, new)
  local function changed(k) return old == nil or old[k] ~= new[k] end
  local fresh = old == nil or next(old) == nil and page:fresh()
  if fresh then
    must(send(page, "Page.enable"))
    must(send(page, "Page.setLifecycleEventsEnabled", { enabled = true }))
    must(send(page, "Network.enable", { maxTotalBufferSize = 1024 * 1024, maxResourceBufferSize = 512 * 1024 }))
  end
  if changed("user_agent") or changed("locale") then
    must(send(page, "Emulation.setUserAgentOverride",
      { userAgent = c.user_agent or default_user_agent(page), acceptLanguage = c.locale }))
  end
  if changed("locale") then must(send(page, "Emulation.setLocaleOverride", { locale = c.locale })) end
  if changed("timezone") then
    must(send(page, "Emulation.setTimezoneOverride", { timezoneId = c.timezone or "" }))
  end
  if changed("viewport") then
    if c.viewport then
      must(send(page, "Emulation.setDeviceMetricsOverride", {
        width = c.viewport.width, height = c.viewport.height,
        deviceScaleFactor = c.viewport.device_scale_factor or 1, mobile = c.viewport.mobile or false,
      }))
    else
      must(send(page, "Emulation.clearDeviceMetricsOverride"))
    end
  end
  if changed("geolocation") then
    if c.geolocation then
      -- The permission is the context's: it stays granted for its other pages.
      core.browser_send("Browser.grantPermissions", json.encode {
        permissions = { "geolocation" }, browserContextId = page:info().browser_context })
      must(send(page, "Emulation.setGeolocationOverride", c.geolocation))
    else
      must(send(page, "Emulation.clearGeolocationOverride"))
    end
  end
  if changed("headers") then
    must(send(page, "Network.setExtraHTTPHeaders", { headers = c.headers or {} }))
  end
  if changed("javascript") then
    must(send(page, "Emulation.setScriptExecutionDisabled", { value = c.javascript == false }))
  end
  if old == nil then must(send(page, "Network.setBlockedURLs", { urls = json.array() })) end
  if fresh or changed("block") or changed("block_urls") then
    -- Blocking goes through the Fetch domain: the engine fails every request these patterns
    -- match (BlockedByClient). Network.setBlockedURLs would not do for block_urls: Chromium
    -- applies it to subresources only, so a navigation to a blocked URL still loaded.
    local patterns = {}
    for _, t in ipairs(c.block or {}) do
      patterns[#patterns + 1] = { urlPattern = "*", resourceType = options.RESOURCE_TYPES[t], requestStage = "Request" }
    end
    for _, u in ipairs(c.block_urls or {}) do
      patterns[#patterns + 1] = { urlPattern = fetch_pattern(u), requestStage = "Request" }
    end
    -- The navigation guard: every document request pauses (the pool adds a Document pattern
    -- to these), and the engine applies the crawl's rules (same_origin, allow, deny,
    -- robots.txt) to each main-frame navigation and each of its redirect hops before it goes
    -- out. Requests matching the block patterns, documents included, are failed at once.
    page:_guard(true, patterns)
    page:_script_fetch({})
    must(send(page, "Fetch.enable", { patterns = page:_engine_fetch() }))
  end
end

local function remember_emulation(target, e)
  if emulated[target] == nil then
    if n_emulated >= EMULATED_MAX then emulated, n_emulated = {}, 0 end
    n_emulated = n_emulated + 1
  end
  emulated[target] = e
end

-- M.prepare(page, validated_options [, use]) -> true | nil, err
function M.prepare(page, c, use)
  local s = use_state(page)
  s.wait_until = use and use.wait_until or "load"
  s.request = use and use.request
  local target = page:info().target
  M.guard.expect[target], M.guard.refused[target] = nil, nil
  M.guard.exempt[target] = use and use.unguarded or nil
  M.guard.request[target] = s.request
  s.on_event, s.subs, s.backlog = {}, {}, {}
  page:_subscribe(M.EVENTS)
  page:_clear_events()
  local new = emulation_of(c)
  -- A fresh page emulates nothing yet; a reused one what it was last given, unless a script
  -- sent raw commands to it or it was forgotten (then: unknown, everything is sent).
  local old = page:fresh() and {} or (not dirty[target] and emulated[target] or nil)
  local ok, err = pcall(emulate, page, c, old, new)
  if not ok then
    emulated[target] = nil -- half done: unknown
    return nil, err
  end
  dirty[target] = nil
  remember_emulation(target, new)
  return true
end

-- ------------------------------------------------------------------ navigation

local function throttle_error(status, headers)
  local ra = headers and (headers["retry-after"] or headers["Retry-After"])
  local ms = 1000
  if ra then
    local secs = tonumber(ra)
    if secs then ms = math.floor(secs * 1000) end
  end
  return setmetatable({ luacrawl_throttle = true, status = status, retry_after_ms = ms },
    { __tostring = function(e) return "throttled (" .. e.status .. "), retry after " .. e.retry_after_ms .. " ms" end })
end

local function lower_headers(h)
  local out = {}
  for k, v in pairs(h or {}) do out[k:lower()] = v end
  return out
end

-- Schemes page:navigate accepts. Others (file:, chrome:, javascript:, view-source:, ...) could
-- read the machine's files or the browser's internals, so a URL taken from a page never gets there.
local NAV_SCHEMES = { http = true, https = true, data = true, about = true }

-- How long before the request's deadline a navigation stops waiting (ms).
local NAV_DEADLINE_MARGIN = 150

-- The lifecycle event each wait_until value waits for.
local LIFECYCLE = { load = "load", domcontentloaded = "DOMContentLoaded", networkidle = "networkIdle" }

-- page:navigate(url [, { wait_until, timeout_ms, throttle }]) -> { status, url, headers, mime } | nil, err
-- Runtime failures (bad scheme, network error, timeout) return nil, err; a 4xx/5xx answer is a
-- result. A 429 or 503 raises the throttle error the engine backs off on, unless throttle = false.
function Page.navigate(page, url, opts)
  if type(url) ~= "string" then error("page:navigate: url must be a string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("page:navigate: options must be a table", 2) end
  opts = opts or {}
  local s = use_state(page)
  local wait = opts.wait_until or s.wait_until or "load"
  if not LIFECYCLE[wait] then
    error("page:navigate: wait_until must be load, domcontentloaded or networkidle", 2)
  end
  local scheme = url:match("^(%a[%w+.-]*):")
  if not scheme then return nil, "cannot navigate to " .. url .. ": not an absolute URL" end
  if not NAV_SCHEMES[scheme:lower()] then
    return nil, "cannot navigate to " .. url .. ": the " .. scheme:lower() .. ": scheme is not allowed"
  end
  -- Politeness: wait for this host's slot (delay_ms, Crawl-delay, Retry-After), counted from
  -- when requests go out, not from when their tasks started.
  if scheme:lower() == "http" or scheme:lower() == "https" then
    while true do
      local wait = core.host_slot(url)
      if wait <= 0 then break end
      core.sleep(wait)
    end
  end
  local timeout = timeout_of(opts)
  -- End the wait a little before the request's deadline, so a page that never loads fails
  -- here with a clear message rather than by the deadline kill (which closes the page too).
  local left = core.remaining_ms()
  if left and timeout > left - NAV_DEADLINE_MARGIN then timeout = math.max(1, left - NAV_DEADLINE_MARGIN) end
  local deadline = core.now() + timeout
  page:_clear_events()
  local target = page:info().target
  local guard = M.guard
  guard.expect[target], guard.refused[target] = core.normalize(url) or url, nil
  -- A refused navigation leaves the page committing an error document whose late events
  -- would confuse its next use: it is closed, not reused.
  local function refused()
    page:mark_bad()
    return nil, guard.refused[target]
  end
  page:_expect(url)
  local refusals = core.host_rules() and core.net_refusal()
  local nav, err = send(page, "Page.navigate", { url = url }, timeout)
  if page:live() then page:_expect(nil) end
  guard.expect[target] = nil
  if guard.refused[target] then return refused() end
  if not nav then return nil, err end
  if nav.errorText and nav.errorText ~= "" then
    -- The network guard refused a connection while this navigation ran (the document's, or a
    -- redirect hop's): say which and why, rather than Chromium's proxy error.
    if refusals and nav.errorText:find("PROXY", 1, true) or refusals and nav.errorText:find("SOCKS", 1, true) then
      local n, host, why = core.net_refusal()
      if n > refusals then
        guard.refused[target] = "navigation to " .. url .. " refused: connection to " .. host .. " refused: " .. why
        return refused()
      end
    end
    return nil, "navigation to " .. url .. " failed: " .. nav.errorText
  end
  local frame = nav.frameId
  -- The document whose lifecycle counts: the one Page.navigate started, or the one that
  -- replaced it in the main frame (a script redirect before load). A same-document navigation
  -- (only the fragment changed) has no loader and no load event: it is done at once.
  local loader = nav.loaderId
  local res = { url = url }
  local done = loader == nil or loader == json.null
  local want = LIFECYCLE[wait]
  while not done do
    if guard.refused[target] then return refused() end
    local left = deadline - core.now()
    if left <= 0 then
      page:mark_bad()
      return nil, string.format("timeout: %s not reached after %d ms (%s)", wait, timeout, url)
    end
    local method, params = page:_event(left)
    if not method then
      if params == "timeout" then
        page:mark_bad()
        return nil, string.format("timeout: %s not reached after %d ms (%s)", wait, timeout, url)
      end
      return nil, params
    end
    if method == "Network.responseReceived" then
      local p = json.decode(params)
      if p then
        if p.type == "Document" and p.frameId == frame then
          res.status = math.tointeger(p.response.status) or p.response.status
          res.url = p.response.url
          res.headers = lower_headers(p.response.headers)
          res.mime = p.response.mimeType
        end
        for _, fn in ipairs(s.on_response) do
          fn { url = p.response.url, status = math.tointeger(p.response.status), type = p.type,
               mime = p.response.mimeType, headers = lower_headers(p.response.headers) }
        end
      end
    elseif method == "Page.lifecycleEvent" then
      -- Lifecycle events name their frame and document, so a late event of the page's previous
      -- document (or of an iframe) cannot end the wait early.
      local p = json.decode(params)
      if p and p.frameId == frame and p.loaderId == loader and p.name == want then done = true end
    elseif method == "Page.frameNavigated" then
      local p = json.decode(params)
      if p and p.frame and not p.frame.parentId and p.frame.id == frame then
        res.url = p.frame.url
        if type(p.frame.loaderId) == "string" then loader = p.frame.loaderId end
      end
    end
    -- The script's own events (a request its Fetch patterns paused, ...) go to its handlers.
    dispatch(page, s, method, params)
  end
  if guard.refused[target] then return refused() end
  if not res.status then
    -- No network response seen (served from cache, or a non-HTTP document): ask the page.
    local v = world_eval(page, "(performance.getEntriesByType('navigation')[0]||{}).responseStatus||0")
    res.status = math.tointeger(v) or 0
    if loader == nil or loader == json.null then res.url = page:url() or res.url end
  end
  if (res.status == 429 or res.status == 503) and opts.throttle ~= false then
    error(throttle_error(res.status, res.headers), 0)
  end
  if s.request then s.request.final_url = res.url end
  return res
end

-- `goto` is a reserved word in Lua 5.4, so page:goto(url) cannot be written; the name is
-- there for page["goto"](page, url) and for readers coming from Playwright.
Page["goto"] = Page.navigate

-- page:on_response(fn): fn({url, status, type, mime, headers}) for every response of later
-- navigations in this request.
function Page.on_response(page, fn)
  if type(fn) ~= "function" then error("page:on_response: expects a function", 2) end
  local s = use_state(page)
  s.on_response[#s.on_response + 1] = fn
end

-- ------------------------------------------------------------------ evaluation

-- The script runs through an indirect eval inside a wrapper that measures its result in the
-- page before it is sent: a cyclic value or one past the limit is refused there, so it never
-- reaches the DevTools connection (whose messages are capped; an oversized one would cost the
-- whole browser connection) nor keeps the browser busy serializing it. An indirect eval keeps
-- Runtime.evaluate's meaning: global scope, the value of the last statement (only a top-level
-- let/const stays local to the call). CSP does not block it: Runtime.evaluate allows eval.
local EVAL_WRAP = [[(function(src, limit, wait){
  function fail(kind, msg){ var e = new Error('luacrawl-eval:' + kind + ':' + msg); e.luacrawl = true; throw e; }
  function check(v){
    if (v === null || v === undefined) return v;
    if (typeof v === 'string') {
      if (v.length > limit) fail('too large', v.length + ' characters, the limit is ' + limit);
      return v;
    }
    if (typeof v !== 'object' && typeof v !== 'function') return v;
    var text;
    try { text = JSON.stringify(v); }
    catch (e) {
      if (e instanceof TypeError && /circular|cyclic/i.test(String(e.message))) fail('cyclic', 'the value refers to itself');
      return v;
    }
    if (text !== undefined && text.length > limit) fail('too large', text.length + ' characters of JSON, the limit is ' + limit);
    return v;
  }
  var v = (0, eval)(src);
  if (wait && v !== null && (typeof v === 'object' || typeof v === 'function') && typeof v.then === 'function')
    return Promise.resolve(v).then(check);
  return check(v);
})]]

-- page:eval(js [, { timeout_ms, await = true, max_bytes }]) -> value | nil, err
-- The value of the script's last expression as Lua data (JSON null -> nil); a promise is
-- awaited unless await = false. A JavaScript exception, a cyclic value, a value larger than
-- max_bytes (default 64 MiB of JSON) or one nested too deeply is a runtime error (nil, err).
-- max_bytes holds on the engine's side too, whatever the page redefines: a reply longer than
-- max_bytes + REPLY_ENVELOPE bytes (the value's JSON as the browser writes it, where a
-- non-ASCII character is a 6-byte escape) fails the call alone. Without max_bytes, the cap is
-- DEFAULT_REPLY_CAP, so an honest value within 64 MiB of JSON is never refused.
function Page.eval(page, js, opts)
  if type(js) ~= "string" then error("page:eval: expects a JavaScript string", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("page:eval: options must be a table", 2) end
  opts = opts or {}
  local limit = opts.max_bytes or MAX_EVAL_BYTES
  if math.type(limit) ~= "integer" or limit < 1 then error("page:eval: max_bytes must be a positive integer", 2) end
  local wait = opts.await ~= false
  local expression = EVAL_WRAP .. "(" .. json.encode(js) .. "," .. limit .. "," .. tostring(wait) .. ")"
  -- The script runs in the page's world (it wants the page's variables), where the page can
  -- disarm the check above (JSON.stringify, toJSON, ...): the engine caps the reply itself.
  local text, err = page:_send("Runtime.evaluate", json.encode {
    expression = expression, returnByValue = true, awaitPromise = wait,
    userGesture = true,
  }, timeout_of(opts), opts.max_bytes and limit + REPLY_ENVELOPE or DEFAULT_REPLY_CAP)
  if not text then
    if err:find("reply exceeds max_bytes", 1, true) then
      return nil, "eval result too large: reply exceeds max_bytes (" .. limit .. ")"
    end
    return nil, err
  end
  local r, derr = json.decode(text)
  if not r then return nil, "eval result cannot be read: " .. derr end
  if r.exceptionDetails then
    local msg = exception_text(r.exceptionDetails)
    local kind, why = msg:match("luacrawl%-eval:([^:]+):([^\n]*)")
    if kind then return nil, "eval result " .. (kind == "cyclic" and "is cyclic" or "too large") .. ": " .. why end
    return nil, "JavaScript error: " .. msg
  end
  local ok, v = pcall(json.plain, r.result and r.result.value)
  if not ok then return nil, "eval result too deep: " .. tostring(v) end
  return v
end

local function js_string(s) return json.encode(s) end

-- These read the page in the engine's world: what the DOM holds, whatever the page's own
-- scripts redefine.
function Page.html(page) return world_eval(page, "document.documentElement ? document.documentElement.outerHTML : ''") end
function Page.text(page) return world_eval(page, "document.body ? document.body.innerText : (document.documentElement ? document.documentElement.textContent : '')") end
function Page.title(page) return world_eval(page, "document.title") end
function Page.url(page) return world_eval(page, "location.href") end

-- page:links() -> absolute http(s) URLs of the page's links, in order, without duplicates
function Page.links(page)
  local v, err = world_eval(page, [[(function(){var out=[],seen={};
    var as=document.querySelectorAll('a[href],area[href]');
    for(var i=0;i<as.length;i++){var h=as[i].href; if(typeof h!=='string') continue;
      if(!/^https?:/i.test(h)) continue; h=h.split('#')[0]; if(seen[h]) continue; seen[h]=1; out.push(h);}
    return out;})()]])
  if not v then return nil, err end
  return json.array(v)
end

-- True for the errors an evaluation meets while the page is between two documents.
local function transient(err)
  return err:find("context was destroyed", 1, true) or err:find("Cannot find context", 1, true)
    or err:find("Cannot find default execution context", 1, true)
    or err:find("Inspected target navigated", 1, true)
end

-- The least time one poll of wait_for may take (ms).
local POLL_MIN_MS = 2000

-- page:content() -> { url, title, html, links } | nil, err
-- What a crawler reads from most pages, in one round trip instead of four.
function Page.content(page)
  local v, err = world_eval(page, [[(function(){var out=[],seen={};
    var as=document.querySelectorAll('a[href],area[href]');
    for(var i=0;i<as.length;i++){var h=as[i].href; if(typeof h!=='string') continue;
      if(!/^https?:/i.test(h)) continue; h=h.split('#')[0]; if(seen[h]) continue; seen[h]=1; out.push(h);}
    return {url: location.href, title: document.title, links: out,
            html: document.documentElement ? document.documentElement.outerHTML : ''};})()]])
  if not v then return nil, err end
  v.links = json.array(v.links or {})
  return v
end

-- page:wait_for(selector_or_js [, { timeout_ms, js = bool, interval_ms }]) -> true | nil, err
-- Polls until the selector matches (or, for a string that is no valid selector or with
-- js = true, the JavaScript condition is truthy). Failure: nil, "timeout waiting for ...".
function Page.wait_for(page, cond, opts)
  if type(cond) ~= "string" then error("page:wait_for: expects a CSS selector or JS condition", 2) end
  opts = opts or {}
  local timeout = timeout_of(opts)
  local deadline = core.now() + timeout
  local expr
  if opts.js then
    expr = "!!(" .. cond .. ")"
  else
    expr = "(function(s){try{return !!document.querySelector(s)}catch(e){return !!(0,eval)(s)}})(" .. js_string(cond) .. ")"
  end
  while true do
    -- Each poll gets at least POLL_MIN_MS: a busy page that answers a little late is not a
    -- page that stopped answering (and a command past its own deadline marks the page bad).
    local v, err = page:eval(expr, { timeout_ms = math.max(POLL_MIN_MS, deadline - core.now()) })
    if v == true then return true end
    -- A script error means "not yet"; so does a navigation under way (a click that submits a
    -- form): its old document's context is gone before the new one exists. Other failures end it.
    if v == nil and err and not (err:find("JavaScript error", 1, true) or transient(err)) then
      if err:find("timed out", 1, true) then
        return nil, "timeout waiting for " .. cond .. " (the page did not answer: " .. err .. ")"
      end
      return nil, err
    end
    if core.now() >= deadline then return nil, "timeout waiting for " .. cond end
    core.sleep(math.min(opts.interval_ms or 100, math.max(1, deadline - core.now())))
  end
end

-- ------------------------------------------------------------------ markdown

-- page:markdown([{ main_only = bool, svg_text = bool }]) -> text | nil, err
function Page.markdown(page, opts)
  opts = opts or {}
  -- The converter lives in the engine's world (none of it is visible to the page, nothing of
  -- the page's can reach it); it is loaded once per document.
  local call = "typeof window.__luacrawl_markdown === 'function' ? window.__luacrawl_markdown(" ..
    json.encode { main_only = opts.main_only == true, svg_text = opts.svg_text == true } .. ") : 'missing'"
  local v, err = world_eval(page, call)
  if v == "missing" then
    local src, serr = inpage.script("markdown")
    if not src then return nil, serr end
    local w = worlds[page]
    if not w then return nil, "cannot reach the engine's world in the page" end
    local r, eerr = send(page, "Runtime.evaluate", { expression = src, contextId = w.id, returnByValue = true }, timeout_of())
    if not r then return nil, eerr end
    if r.exceptionDetails then return nil, "cannot load the Markdown converter: " .. exception_text(r.exceptionDetails) end
    v, err = world_eval(page, call)
    if v == "missing" then return nil, "cannot load the Markdown converter: the page navigated meanwhile" end
  end
  if not v then return nil, err end
  if not v.ok then return nil, v.error end
  return v.markdown
end

-- ------------------------------------------------------------------ files

local function b64(page, method, params, what)
  local r, err = send(page, method, params, timeout_of())
  if not r then return nil, err end
  if type(r.data) ~= "string" then return nil, "no " .. what .. " data" end
  return core.b64decode(r.data)
end

-- page:screenshot([{ full_page = bool, format = "png"|"jpeg", quality }]) -> bytes | nil, err
function Page.screenshot(page, opts)
  opts = opts or {}
  local params = { format = opts.format or "png", quality = opts.quality, captureBeyondViewport = false }
  if opts.full_page then
    local m, err = send(page, "Page.getLayoutMetrics")
    if not m then return nil, err end
    local size = m.cssContentSize or m.contentSize
    params.captureBeyondViewport = true
    params.clip = { x = 0, y = 0, width = math.ceil(size.width), height = math.min(math.ceil(size.height), 16384), scale = 1 }
  end
  return b64(page, "Page.captureScreenshot", params, "screenshot")
end

-- page:pdf([params]) -> bytes | nil, err (params as Page.printToPDF takes them)
function Page.pdf(page, params)
  return b64(page, "Page.printToPDF", params or { printBackground = true }, "PDF")
end

-- page:cookies() -> list | nil, err ; page:set_cookies(list) -> true | nil, err
function Page.cookies(page)
  local r, err = send(page, "Network.getCookies", nil, timeout_of())
  if not r then return nil, err end
  return json.plain(r.cookies)
end

function Page.set_cookies(page, list)
  if type(list) ~= "table" then error("page:set_cookies: expects a list of cookies", 2) end
  local r, err = send(page, "Network.setCookies", { cookies = list }, timeout_of())
  if not r then return nil, err end
  return true
end

-- ------------------------------------------------------------------ interaction

-- The centre of the first element matching selector, scrolled into view.
local function locate(page, selector)
  local v, err = world_eval(page, "(function(s){var e=document.querySelector(s); if(!e) return null;" ..
    "e.scrollIntoView({block:'center',inline:'center'}); var r=e.getBoundingClientRect();" ..
    "return {x:r.left+r.width/2, y:r.top+r.height/2, w:r.width, h:r.height};})(" .. js_string(selector) .. ")")
  if err then return nil, err end
  if not v then return nil, "no element matches " .. selector end
  if v.w == 0 and v.h == 0 then return nil, "element " .. selector .. " is not visible" end
  return v
end

local function mouse(page, type_, x, y, extra)
  local p = { type = type_, x = x, y = y }
  for k, v in pairs(extra or {}) do p[k] = v end
  return send(page, "Input.dispatchMouseEvent", p, timeout_of())
end

-- page:click(selector) -> true | nil, err  (real mouse events at the element's centre)
function Page.click(page, selector)
  if type(selector) ~= "string" then error("page:click: expects a CSS selector", 2) end
  local at, err = locate(page, selector)
  if not at then return nil, err end
  local ok, merr = mouse(page, "mouseMoved", at.x, at.y)
  if not ok then return nil, merr end
  ok, merr = mouse(page, "mousePressed", at.x, at.y, { button = "left", clickCount = 1, buttons = 1 })
  if not ok then return nil, merr end
  ok, merr = mouse(page, "mouseReleased", at.x, at.y, { button = "left", clickCount = 1 })
  if not ok then return nil, merr end
  return true
end

local KEYS = {
  Enter = { code = "Enter", vk = 13, text = "\r" }, Tab = { code = "Tab", vk = 9, text = "\t" },
  Escape = { code = "Escape", vk = 27 }, Backspace = { code = "Backspace", vk = 8 },
  Delete = { code = "Delete", vk = 46 }, ArrowUp = { code = "ArrowUp", vk = 38 },
  ArrowDown = { code = "ArrowDown", vk = 40 }, ArrowLeft = { code = "ArrowLeft", vk = 37 },
  ArrowRight = { code = "ArrowRight", vk = 39 }, Home = { code = "Home", vk = 36 },
  End = { code = "End", vk = 35 }, PageDown = { code = "PageDown", vk = 34 },
  PageUp = { code = "PageUp", vk = 33 }, Space = { code = "Space", vk = 32, text = " ", key = " " },
}

-- page:press(key) -> true | nil, err  (Enter, Tab, Escape, Arrow*, ... or one character)
function Page.press(page, key)
  if type(key) ~= "string" or key == "" then error("page:press: expects a key name", 2) end
  local k = KEYS[key]
  local params
  if k then
    params = { key = k.key or key, code = k.code, windowsVirtualKeyCode = k.vk, nativeVirtualKeyCode = k.vk, text = k.text }
  elseif utf8.len(key) == 1 then
    params = { key = key, text = key }
  else
    return nil, "unknown key " .. key
  end
  params.type = params.text and "keyDown" or "rawKeyDown"
  local ok, err = send(page, "Input.dispatchKeyEvent", params, timeout_of())
  if not ok then return nil, err end
  ok, err = send(page, "Input.dispatchKeyEvent", { type = "keyUp", key = params.key, code = params.code,
    windowsVirtualKeyCode = params.windowsVirtualKeyCode }, timeout_of())
  if not ok then return nil, err end
  return true
end

-- page:type(selector, text) -> true | nil, err  (focus by a click, then key events per character)
function Page.type(page, selector, text)
  if type(text) ~= "string" then error("page:type: text must be a string", 2) end
  local ok, err = page:click(selector)
  if not ok then return nil, err end
  for _, cp in utf8.codes(text) do
    local ch = utf8.char(cp)
    local r, kerr = send(page, "Input.dispatchKeyEvent", { type = "keyDown", key = ch, text = ch }, timeout_of())
    if not r then return nil, kerr end
    r, kerr = send(page, "Input.dispatchKeyEvent", { type = "keyUp", key = ch }, timeout_of())
    if not r then return nil, kerr end
  end
  return true
end

-- How long scroll waits at the bottom for requests the page still has in flight (ms).
local SCROLL_INFLIGHT_WAIT = 5000

-- Takes the page's queued network events: keeps `inflight` (requestId -> true) current and
-- hands responses to the request's on_response handlers.
local function drain_network(page, inflight)
  local s = use_state(page)
  while true do
    local method, params = page:_event(1)
    if not method then return end
    dispatch(page, s, method, params)
    if method == "Network.requestWillBeSent" or method == "Network.responseReceived"
        or method == "Network.loadingFailed" then
      local p = json.decode(params)
      if p and p.requestId then
        if method == "Network.requestWillBeSent" then
          inflight[p.requestId] = true
        else
          inflight[p.requestId] = nil
        end
        if method == "Network.responseReceived" and p.response then
          for _, fn in ipairs(s.on_response) do
            fn { url = p.response.url, status = math.tointeger(p.response.status), type = p.type,
                 mime = p.response.mimeType, headers = lower_headers(p.response.headers) }
          end
        end
      end
    end
  end
end

-- page:scroll{ to_bottom = true, max_steps = n, delay_ms = 300 } -> { steps, height } | nil, err
-- Scrolls with real mouse-wheel events, waiting after each step for lazily loaded content,
-- until the page stops growing at its bottom or max_steps is reached. The bottom counts as
-- reached only when the page has no request in flight (up to 5 s), so a slow batch of an
-- infinite list is waited for rather than taken for the end.
function Page.scroll(page, opts)
  if opts ~= nil and type(opts) ~= "table" then error("page:scroll: options must be a table", 2) end
  opts = opts or {}
  local max_steps = opts.max_steps or 50
  local delay = opts.delay_ms or 300
  if math.type(max_steps) ~= "integer" or max_steps < 1 then error("page:scroll: max_steps must be a positive integer", 2) end
  if math.type(delay) ~= "integer" or delay < 0 then error("page:scroll: delay_ms must be an integer >= 0", 2) end
  local metrics = "({y:window.scrollY, vh:window.innerHeight, h:document.documentElement.scrollHeight})"
  local m, err = world_eval(page, metrics)
  if not m then return nil, err end
  local inflight = {}
  drain_network(page, inflight)
  local steps, still, waited = 0, 0, 0
  while steps < max_steps do
    local ok, merr = mouse(page, "mouseWheel", 100, 100, { deltaX = 0, deltaY = math.max(200, (m.vh or 600) * 0.9) })
    if not ok then return nil, merr end
    steps = steps + 1
    core.sleep(delay)
    drain_network(page, inflight)
    local n
    n, err = world_eval(page, metrics)
    if not n then return nil, err end
    local at_bottom = n.y + n.vh >= n.h - 2
    if at_bottom and n.h == m.h then
      if next(inflight) and waited < SCROLL_INFLIGHT_WAIT then
        waited = waited + math.max(delay, 1)
      else
        still = still + 1
        if still >= 2 or not opts.to_bottom then m = n; break end
      end
    else
      still, waited = 0, 0
    end
    m = n
  end
  return { steps = steps, height = m.h }
end

-- ------------------------------------------------------------------ extraction

-- page:query(selector) -> { {text, html, attrs}, ... } | nil, err
function Page.query(page, selector)
  if type(selector) ~= "string" then error("page:query: expects a CSS selector", 2) end
  local v, err = world_eval(page, "(function(s){var out=[];var es;try{es=document.querySelectorAll(s)}catch(e){throw new Error('bad selector: '+s)}" ..
    "for(var i=0;i<es.length;i++){var e=es[i],a={};for(var j=0;j<e.attributes.length;j++){a[e.attributes[j].name]=e.attributes[j].value}" ..
    "out.push({text:(e.innerText||e.textContent||'').trim(),html:e.innerHTML,attrs:a})}return out})(" .. js_string(selector) .. ")")
  if not v then return nil, err end
  return json.array(v)
end

local EXTRACT_JS = [[(function(schema){
  function val(el, f){
    var sel = f.selector;
    var e = sel ? el.querySelector(sel) : el;
    if(!e) return null;
    var v;
    if(f.attr){ v = e.getAttribute(f.attr); if(v!==null && (f.attr==='href'||f.attr==='src')){ try{ v = new URL(v, document.baseURI).href }catch(x){} } }
    else if(f.html){ v = e.innerHTML }
    else { v = (e.innerText||e.textContent||'').trim() }
    if(v===null) return null;
    if(f.type==='number'){ var m = String(v).replace(/,/g,'').match(/-?\d+(\.\d+)?/); v = m ? parseFloat(m[0]) : null }
    return v;
  }
  var bases = schema.base ? document.querySelectorAll(schema.base) : [document.documentElement];
  var out = [];
  for(var i=0;i<bases.length;i++){
    var rec = {};
    for(var k in schema.fields){ rec[k] = val(bases[i], schema.fields[k]); }
    out.push(rec);
  }
  return out;
})]]

-- page:extract{ base = "css", fields = { name = "css" | { "css", attr = "href", type = "number" } } }
-- -> list of records | nil, err
function Page.extract(page, schema)
  if type(schema) ~= "table" or type(schema.fields) ~= "table" then
    error("page:extract: expects { base = selector, fields = { name = selector, ... } }", 2)
  end
  local fields = {}
  for name, f in pairs(schema.fields) do
    if type(f) == "string" then
      fields[name] = { selector = f }
    elseif type(f) == "table" then
      fields[name] = { selector = f[1] or f.selector, attr = f.attr, type = f.type, html = f.html }
    else
      error("page:extract: field " .. tostring(name) .. " must be a selector or a table", 2)
    end
  end
  local s, err = json.encode { base = schema.base, fields = fields }
  if not s then error("page:extract: bad schema: " .. err, 2) end
  local v, eerr = world_eval(page, EXTRACT_JS .. "(" .. s .. ")")
  if not v then return nil, eerr end
  return json.array(v)
end

return M
