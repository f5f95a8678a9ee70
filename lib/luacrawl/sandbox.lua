-- luacrawl.sandbox: the Lua half of the sandbox (the C half is engine/job/sandbox.c).
-- Owns: the script's environment (an explicit allow list, never _G), the guarded string
-- library (string.rep capped, string.dump gone, pattern functions under a cost budget), the
-- budgets' names, defaults and ranges, the Lua-side budgets (navigations, enqueued URLs,
-- output bytes), the CDP methods page:send may use, and the proxies the script gets instead
-- of the engine's page and context userdata (their method tables hold the engine's internal
-- primitives: _send, _guard, ...; a proxy holds nothing and forwards only public methods).
--
-- The engine's own modules keep the full library: only the script's chunk (and what it
-- loads) sees the allow list. Nothing reachable from a value the script gets leads to
-- luacrawl.core: no `debug`, so no upvalue can be read; getmetatable gives false on the
-- engine's objects and on strings.
local core = require "luacrawl.core"

local M = {}

-- ------------------------------------------------------------------ budgets

-- name -> { default, minimum, what it bounds }. Job-level budgets fail the job (exit 1);
-- request-level ones fail the request (retried like any failure).
M.BUDGETS = {
  instructions = { 100000000, 1000000, "Lua instructions per request (and per load, per hook call)" },
  memory_mb = { 64, 16, "MB of the job's Lua heap" },
  job_ms = { 3600000, 1000, "ms of wall-clock time for the whole job" },
  output_bytes = { 256 * 1024 * 1024, 1024, "bytes of records the job writes" },
  record_bytes = { 1024 * 1024, 64, "bytes of one record" },
  navigations = { 10000, 1, "page:navigate calls in the job" },
  enqueued = { 100000, 1, "URLs job:enqueue accepted in the job" },
  pattern_cost = { 100000000, 1000, "worst-case steps of one Lua pattern match" },
}
M.STRING_REP_MAX = 16 * 1024 * 1024

-- The job's budgets: the defaults, overridden by job.budgets. `may_raise`: the sandbox came
-- from the job's own `sandbox = true`; with --sandbox a script may only lower its budgets.
function M.budgets(t, may_raise)
  if t ~= nil and type(t) ~= "table" then error("job.budgets must be a table", 0) end
  local b = {}
  for k, spec in pairs(M.BUDGETS) do b[k] = spec[1] end
  for k, v in pairs(t or {}) do
    local spec = M.BUDGETS[k]
    if not spec then error("job.budgets: unknown budget '" .. tostring(k) .. "'", 0) end
    if math.type(v) ~= "integer" or v < spec[2] then
      error(string.format("job.budgets.%s must be an integer >= %d (got %s)", k, spec[2], tostring(v)), 0)
    end
    if v > spec[1] and not may_raise then
      error(string.format("job.budgets.%s: %d is above the default %d, which --sandbox does not let a script raise", k, v, spec[1]), 0)
    end
    b[k] = v
  end
  return b
end

M.active = nil -- the budgets in force, once the sandbox is on
local used = { navigations = 0, enqueued = 0, output_bytes = 0 }

-- A job-level budget: count `n` more of `name`; past it the job fails and this raises.
function M.charge(name, n)
  local b = M.active
  if not b then return end
  used[name] = used[name] + n
  if used[name] > b[name] then
    local msg = string.format("budget '%s' exceeded: more than %d %s", name, b[name], M.BUDGETS[name][3])
    core.fail(msg)
    error(msg, 0)
  end
end

function M.check_record(line)
  local b = M.active
  if b and #line > b.record_bytes then
    error(string.format("budget 'record_bytes' exceeded: a record of %d bytes (at most %d)", #line, b.record_bytes), 0)
  end
end

-- ------------------------------------------------------------------ the string library

local real = {
  find = string.find, match = string.match, gmatch = string.gmatch, gsub = string.gsub,
  rep = string.rep, byte = string.byte, sub = string.sub,
}
local byte = string.byte

-- Index after the set starting at p[i] == '['.
local function skip_set(p, i, n)
  i = i + 1
  if byte(p, i) == 94 then i = i + 1 end -- '^'
  local first = true
  while i <= n do
    local c = byte(p, i)
    if c == 37 then i = i + 2 -- '%x'
    elseif c == 93 and not first then return i + 1 -- ']'
    else i = i + 1 end
    first = false
  end
  return i
end

-- Quantifiers that backtrack over the subject (*, +, -, %b) and whether the pattern is
-- anchored. Cached: engine and script patterns repeat.
local shape_cache, shape_count = {}, 0
local function shape(p)
  local s = shape_cache[p]
  if s then return s end
  local n, q, i = #p, 0, 1
  local anchored = byte(p, 1) == 94
  if anchored then i = 2 end
  while i <= n do
    local c = byte(p, i)
    local item = true
    if c == 37 then
      local d = byte(p, i + 1)
      if d == 98 then q, i, item = q + 1, i + 4, false -- %bxy
      elseif d == 102 then i, item = skip_set(p, i + 2, n), false -- %f[set]
      else i = i + 2 end
    elseif c == 91 then i = skip_set(p, i, n)
    elseif c == 40 or c == 41 then i, item = i + 1, false -- captures
    else i = i + 1 end
    local nc = byte(p, i)
    if item and (nc == 42 or nc == 43 or nc == 45) then q, i = q + 1, i + 1
    elseif item and nc == 63 then i = i + 1 end
  end
  s = { q, anchored }
  if shape_count > 1000 then shape_cache, shape_count = {}, 0 end
  shape_cache[p], shape_count = s, shape_count + 1
  return s
end

-- Lua's matcher backtracks: with q quantifiers a match attempt may take up to n^q steps, and
-- an unanchored search tries n starts. Refuse before the C call (which no hook can stop)
-- when that worst case passes the budget.
local function check_pattern(fname, s, p, global)
  if type(s) ~= "string" or type(p) ~= "string" then return end
  local sh = shape(p)
  local q = sh[1]
  if q == 0 then return end
  local e = q + ((global or not sh[2]) and 1 or 0)
  local limit = M.active and M.active.pattern_cost or M.BUDGETS.pattern_cost[1]
  local cost = (#s + 1.0) ^ e
  if cost > limit then
    error(string.format("budget 'pattern_cost' exceeded: string.%s with %d backtracking quantifier(s) on %d bytes "
      .. "may take %.3g steps (at most %d); use a plain find, a smaller subject or page:query", fname, q, #s, cost, limit), 3)
  end
end

local function guarded_string()
  local g = {}
  g.find = function(s, p, init, plain)
    if not plain then check_pattern("find", s, p, false) end
    return real.find(s, p, init, plain)
  end
  g.match = function(s, p, init) check_pattern("match", s, p, false) return real.match(s, p, init) end
  g.gmatch = function(s, p, init) check_pattern("gmatch", s, p, true) return real.gmatch(s, p, init) end
  g.gsub = function(s, p, r, n) check_pattern("gsub", s, p, true) return real.gsub(s, p, r, n) end
  g.rep = function(s, n, sep)
    local len = (type(s) == "string" or type(s) == "number") and #tostring(s) or 0
    local sl = (type(sep) == "string" or type(sep) == "number") and #tostring(sep) or 0
    local k = math.tointeger(n)
    if k and k > 0 and (len + sl) * k > M.STRING_REP_MAX + sl then
      error(string.format("budget: string.rep would make about %.0f bytes (at most %d in the sandbox)",
        (len + sl) * 1.0 * k, M.STRING_REP_MAX), 2)
    end
    return real.rep(s, n, sep)
  end
  return g
end

-- The real string table (the strings' metatable __index, shared with the engine's code) gets
-- the guarded functions and loses dump: a method call ("x"):rep(n) reaches it directly.
local hardened = false
function M.harden()
  if hardened then return end
  hardened = true
  for k, f in pairs(guarded_string()) do string[k] = f end
  string.dump = nil
end

-- ------------------------------------------------------------------ proxies

local real_of = setmetatable({}, { __mode = "k" }) -- proxy -> the engine's userdata
local proxy_of = setmetatable({}, { __mode = "k" }) -- userdata -> its proxy

-- page:send in the sandbox: commands that read the page or act inside it. Runtime.evaluate
-- and callFunctionOn run JavaScript in the page's renderer, as page:eval does: that reaches
-- the page, not the browser. Target.*, Browser.*, Storage.*, Fetch.*, Network.set*,
-- Emulation.*, Page.navigate (use page:navigate, which the host rules and budgets check) and
-- every other method are refused.
M.CDP_ALLOWED = {}
for _, m in ipairs {
  "DOM.getDocument", "DOM.querySelector", "DOM.querySelectorAll", "DOM.getOuterHTML",
  "DOM.describeNode", "DOM.getAttributes", "DOM.getBoxModel", "DOM.resolveNode",
  "DOM.requestChildNodes", "DOM.getNodeForLocation", "DOM.getContentQuads", "DOM.enable",
  "DOM.disable", "CSS.enable", "CSS.getComputedStyleForNode", "CSS.getMatchedStylesForNode",
  "Runtime.evaluate", "Runtime.callFunctionOn", "Runtime.getProperties", "Runtime.releaseObject",
  "Runtime.releaseObjectGroup", "Page.getFrameTree", "Page.getLayoutMetrics",
  "Page.getNavigationHistory", "Page.captureScreenshot", "Accessibility.getFullAXTree",
  "Accessibility.getPartialAXTree", "Network.getResponseBody", "Performance.getMetrics",
  "Input.dispatchMouseEvent", "Input.dispatchKeyEvent", "Input.insertText",
} do M.CDP_ALLOWED[m] = true end

-- Methods of the engine's page a proxy does not forward (internals and engine bookkeeping).
local PAGE_HIDDEN = { fresh = true, broken = true, mark_bad = true }

local function unwrap(self, what)
  local r = real_of[self]
  if not r then error("use page:" .. what .. "(...), not page." .. what .. "(...)", 3) end
  return r
end

local page_methods -- built on first use: page.lua has added its methods by then
local page_mt = { __name = "luacrawl.Page", __metatable = false }
local ctx_mt = { __name = "luacrawl.Context", __metatable = false }

local function navigate(self, url, opts)
  local r = unwrap(self, "navigate")
  if type(url) == "string" then
    local scheme = real.match(url, "^(%a[%w+.-]*):")
    scheme = scheme and scheme:lower()
    if scheme ~= "http" and scheme ~= "https" then
      return nil, "navigation to " .. url .. " refused: only http and https in the sandbox"
    end
    local n = core.normalize(url)
    local why = n and core.host_refusal(n)
    if why then return nil, "navigation to " .. url .. " refused: " .. why end
    M.charge("navigations", 1)
  end
  return core.Page.navigate(r, url, opts)
end

local function build_page_methods()
  page_methods = {}
  for k, f in pairs(core.Page) do
    if type(k) == "string" and type(f) == "function" and real.sub(k, 1, 1) ~= "_" and not PAGE_HIDDEN[k] then
      page_methods[k] = function(self, ...) return f(unwrap(self, k), ...) end
    end
  end
  page_methods.navigate = navigate
  page_methods["goto"] = navigate
  local send = core.Page.send
  page_methods.send = function(self, method, params, timeout_ms)
    local r = unwrap(self, "send")
    if type(method) ~= "string" then error("page:send: method must be a string", 2) end
    if not M.CDP_ALLOWED[method] then
      error("page:send: " .. method .. " is not allowed in the sandbox (read-only page commands only)", 2)
    end
    return send(r, method, params, timeout_ms)
  end
  page_mt.__index = page_methods
  page_mt.__close = function(self) local r = real_of[self] if r and r:live() then r:release() end end
  page_mt.__tostring = function(self) local r = real_of[self] return r and tostring(r) or "luacrawl.Page" end
end

function M.wrap_page(p)
  if p == nil or not M.active then return p end
  local w = proxy_of[p]
  if w then return w end
  if not page_methods then build_page_methods() end
  w = setmetatable({}, page_mt)
  real_of[w], proxy_of[p] = p, w
  return w
end

local ctx_methods = {
  info = function(self) return unwrap(self, "info"):info() end,
  live = function(self) return unwrap(self, "live"):live() end,
  release = function(self) return unwrap(self, "release"):release() end,
  page = function(self)
    local p, err = unwrap(self, "page"):page()
    if not p then return nil, err end
    return M.wrap_page(p)
  end,
}
ctx_mt.__index = ctx_methods
ctx_mt.__close = function(self) local r = real_of[self] if r and r:live() then r:release() end end

function M.wrap_context(c)
  if c == nil or not M.active then return c end
  local w = proxy_of[c]
  if w then return w end
  w = setmetatable({}, ctx_mt)
  real_of[w], proxy_of[c] = c, w
  return w
end

-- ------------------------------------------------------------------ the environment

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- The script's globals: an allow list. `args` is the command line's name=value table.
function M.globals(args)
  local env = {}
  env.string = copy(string) -- after harden(): the guarded functions, no dump
  env.string.dump = nil
  env.table = copy(table)
  env.math = copy(math)
  env.utf8 = copy(utf8)
  env.coroutine = copy(coroutine) -- the engine's create/wrap: the count hook on every coroutine
  env.os = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime }
  for _, k in ipairs { "pairs", "ipairs", "select", "type", "tostring", "tonumber", "error",
    "assert", "pcall", "xpcall", "next", "rawequal", "rawlen", "rawget", "rawset", "getmetatable" } do
    env[k] = _G[k]
  end
  env._VERSION = _VERSION
  -- A __gc metamethod runs inside the collector, where no hook runs: no budget could stop it.
  env.setmetatable = function(t, mt)
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
      error("setmetatable: __gc is not allowed in the sandbox", 2)
    end
    return setmetatable(t, mt)
  end
  env.collectgarbage = function(opt)
    if opt == nil or opt == "count" then return collectgarbage("count") end
    error("collectgarbage: only \"count\" in the sandbox", 2)
  end
  env.print = function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    core.log(core.INFO, table.concat(parts, " ", 1, parts.n))
  end
  -- Text chunks only, in this environment unless another table is given; named apart from
  -- the engine's files.
  env.load = function(chunk, name, mode, e)
    if mode ~= nil and mode ~= "t" then error("load: only text chunks (mode \"t\") in the sandbox", 2) end
    if e == nil then e = env end
    if type(e) ~= "table" then error("load: env must be a table", 2) end
    return load(chunk, "=load:" .. tostring(name or "chunk"), "t", e)
  end
  env.args = args
  env._G = env
  return env
end

-- Turn the sandbox on with these budgets (validated by M.budgets).
function M.apply(budgets)
  M.harden()
  M.active = budgets
  core.sandbox_apply(budgets)
end

return M
