-- luacrawl.boot: loads a job script and validates the job it returns, before any browser
-- starts. Owns: the job table's contract (field names, types, defaults) and the messages a
-- user sees for a bad script. Returns to the engine a config table of plain values plus the
-- functions the engine calls (run_request, on_error, fetch_robots, check_navigation).
local core = require "luacrawl.core"
local job_api = require "luacrawl.job"
local options = require "luacrawl.options"
local sandbox = require "luacrawl.sandbox"

local M = {}

local FIELDS = {
  start = true, concurrency = true, max_depth = true, max_pages = true, same_origin = true,
  allow = true, deny = true, retries = true, timeout_ms = true, context = true, policy = true,
  handle = true, on_error = true, robots = true, delay_ms = true, per_host = true,
  user_agent_token = true, throttle_retries = true, name = true, wait_until = true,
  sandbox = true, budgets = true, host_rules = true, allowed_hosts = true,
}

local function bad(fmt, ...) error(string.format(fmt, ...), 0) end

local function int_field(job, k, lo, default)
  local v = job[k]
  if v == nil then return default end
  if math.type(v) ~= "integer" or v < lo then
    bad("job.%s must be an integer >= %d (got %s)", k, lo, tostring(v))
  end
  return v
end

local function list_of_strings(v, what)
  if v == nil then return {} end
  if type(v) == "string" then return { v } end
  if type(v) ~= "table" then bad("job.%s must be a list of strings", what) end
  for i, s in ipairs(v) do
    if type(s) ~= "string" then bad("job.%s[%d] must be a string (got %s)", what, i, type(s)) end
  end
  return v
end

-- Edit distance, for "did you mean" hints.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

local function closest(name)
  local best, score = nil, math.huge
  for k in pairs(FIELDS) do
    local d = distance(k, name)
    if d < score then best, score = k, d end
  end
  return score <= 3 and best or nil
end

-- Validate the job table; returns the engine's config table. Raises with a clear message.
-- `env`: the script's environment; `cli_sandbox`: --sandbox put the script in the sandbox.
local function validate(job, script, env, cli_sandbox)
  if type(job) ~= "table" then
    bad("%s must return a job table (got %s)", script, type(job))
  end
  -- The sandbox first: what follows (the start function, the job's tables) runs under it.
  if job.sandbox ~= nil and type(job.sandbox) ~= "boolean" then
    bad("job.sandbox must be a boolean (got %s)", type(job.sandbox))
  end
  if cli_sandbox or job.sandbox then
    local ok, b = pcall(sandbox.budgets, job.budgets, not cli_sandbox)
    if not ok then bad("%s", b) end
    if not cli_sandbox then
      -- `sandbox = true` only turns it on: the script's globals fall back to the allow list
      -- from now on (what its chunk captured while it loaded stays: no defense against the
      -- script itself; --sandbox is).
      sandbox.harden()
      setmetatable(env, { __index = sandbox.globals(env.args) })
    end
    sandbox.apply(b)
  elseif job.budgets ~= nil then
    local ok, b = pcall(sandbox.budgets, job.budgets, true)
    if not ok then bad("%s", b) end
  end
  -- The host rules next: the start URLs below are checked by them.
  if job.host_rules ~= nil and type(job.host_rules) ~= "boolean" then
    bad("job.host_rules must be a boolean (got %s)", type(job.host_rules))
  end
  if job.host_rules == false and (cli_sandbox or job.sandbox) then
    bad("job.host_rules cannot be turned off in the sandbox")
  end
  local hosts = nil
  if job.allowed_hosts ~= nil then
    hosts = {}
    for i, h in ipairs(list_of_strings(job.allowed_hosts, "allowed_hosts")) do
      local name = h:lower()
      if not (name:match("^%*?%.?[%w%-%.]+$") or name:match("^%[[%x:%.]+%]$")) or name:match("^%*[^.]")
          or name:find("..", 1, true) then
        bad("job.allowed_hosts[%d] '%s' is not a host name, '*.domain' or an IP address", i, h)
      end
      hosts[#hosts + 1] = name
    end
    if #hosts == 0 then bad("job.allowed_hosts is empty: no host could be reached") end
    if job.host_rules == false then bad("job.allowed_hosts needs the host rules (host_rules = false)") end
  end
  if cli_sandbox or job.sandbox or job.host_rules or hosts then core.set_host_rules(hosts) end
  for k in pairs(job) do
    if type(k) ~= "string" or not FIELDS[k] then
      local hint = type(k) == "string" and closest(k)
      bad("unknown job field '%s'%s", tostring(k), hint and (" (did you mean '" .. hint .. "'?)") or "")
    end
  end
  if type(job.handle) ~= "function" then
    bad("job.handle must be a function(page, req, job) (got %s)", type(job.handle))
  end
  if job.on_error ~= nil and type(job.on_error) ~= "function" then
    bad("job.on_error must be a function(req, err, job) (got %s)", type(job.on_error))
  end
  local cfg = {
    concurrency = int_field(job, "concurrency", 1, 8),
    retries = int_field(job, "retries", 0, 2),
    timeout_ms = int_field(job, "timeout_ms", 1, 30000),
    max_pages = int_field(job, "max_pages", 1, 0),
    max_depth = int_field(job, "max_depth", 0, -1),
    delay_ms = int_field(job, "delay_ms", 0, 0),
    per_host = int_field(job, "per_host", 0, 0),
    throttle_retries = int_field(job, "throttle_retries", 0, 5),
  }
  if cfg.concurrency > 256 then bad("job.concurrency must be at most 256 (got %d)", cfg.concurrency) end
  for _, k in ipairs { "same_origin", "robots" } do
    if job[k] ~= nil and type(job[k]) ~= "boolean" then
      bad("job.%s must be a boolean (got %s)", k, type(job[k]))
    end
  end
  cfg.robots = job.robots == true
  if job.user_agent_token ~= nil and type(job.user_agent_token) ~= "string" then
    bad("job.user_agent_token must be a string")
  end
  cfg.user_agent_token = job.user_agent_token or "luacrawl"
  local wait_until = job.wait_until or "load"
  if wait_until ~= "load" and wait_until ~= "domcontentloaded" and wait_until ~= "networkidle" then
    bad("job.wait_until must be \"load\", \"domcontentloaded\" or \"networkidle\" (got %s)", tostring(wait_until))
  end
  local allow = list_of_strings(job.allow, "allow")
  local deny = list_of_strings(job.deny, "deny")
  for _, p in ipairs(allow) do
    local ok, err = pcall(string.find, "", p)
    if not ok then bad("job.allow pattern '%s' is not a valid Lua pattern: %s", p, err) end
  end
  for _, p in ipairs(deny) do
    local ok, err = pcall(string.find, "", p)
    if not ok then bad("job.deny pattern '%s' is not a valid Lua pattern: %s", p, err) end
  end
  if job.context ~= nil and type(job.context) ~= "table" and type(job.context) ~= "function" then
    bad("job.context must be a table or a function(req) (got %s)", type(job.context))
  end
  if type(job.context) == "table" then
    local ok, err = pcall(options.check, job.context)
    if not ok then bad("job.%s", err) end
  end
  if job.policy ~= nil and type(job.policy) ~= "table" then
    bad("job.policy must be a table (got %s)", type(job.policy))
  end
  cfg.policy = job.policy

  -- Start URLs: a string, a list, or a function returning either.
  local start = job.start
  if type(start) == "function" then
    local ok, r = pcall(start)
    if not ok then bad("job.start() failed: %s", tostring(r)) end
    start = r
  end
  if type(start) == "string" then start = { start } end
  if type(start) ~= "table" or #start == 0 then
    bad("job.start must be a URL, a list of URLs, or a function returning them")
  end
  local urls = {}
  for i, u in ipairs(start) do
    if type(u) ~= "string" then bad("job.start[%d] must be a string (got %s)", i, type(u)) end
    local n, err = core.normalize(u)
    if not n then bad("start URL '%s' is not a crawlable URL: %s", u, err) end
    local why = core.host_refusal(n)
    if why then bad("start URL '%s' refused: %s", u, why) end
    urls[#urls + 1] = n
  end
  cfg.start = urls

  local api, engine = job_api.new(job, {
    allow = allow, deny = deny, start = urls, max_depth = cfg.max_depth,
    same_origin = job.same_origin ~= false, wait_until = wait_until,
  })
  cfg.run_request = engine.run_request
  cfg.on_error = job.on_error and engine.run_on_error or nil
  cfg.fetch_robots = engine.fetch_robots
  cfg.check_navigation = engine.check_navigation
  return cfg
end

-- Load SCRIPT with `args`; returns the config table, or nil and a message.
function M.load(script, args)
  local cli_sandbox = core.sandbox()
  local env
  if cli_sandbox then
    sandbox.apply(sandbox.budgets(nil)) -- the defaults while the chunk runs; the job's own later
    env = sandbox.globals(args)
  else
    env = setmetatable({ args = args }, { __index = _G })
  end
  local chunk, err = loadfile(script, "t", env)
  if not chunk then return nil, err end
  local ok, job = xpcall(chunk, function(e)
    return debug.traceback(tostring(e), 2)
  end)
  if not ok then return nil, "error in " .. script .. ": " .. job end
  local ok2, cfg = pcall(validate, job, script, env, cli_sandbox)
  if not ok2 then return nil, script .. ": " .. tostring(cfg) end
  return cfg
end

return M
