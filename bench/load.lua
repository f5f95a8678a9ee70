-- bench/load.lua: the continuous-load job of the memory benchmark (see bench/README.md).
-- Visits pages=N distinct URLs /_/page?id=1..N of the fixture server at concurrency=C,
-- rotating configs=K context configurations (user agents): request i uses configuration
-- floor((i-1) / block) % K, so a configuration serves `block` consecutive requests and then
-- comes back only after K-1 others have had their turn.
--   luacrawl run bench/load.lua base=http://127.0.0.1:PORT pages=5000 concurrency=8 \
--     configs=20 block=8 policy=on|off
-- policy=default: max_contexts = 4 and nothing else (what a new user writes: force = false,
--                 max_idle_pages = the concurrency, idle_ms = 30000).
-- policy=on : max_contexts = 4, force = true, idle_ms = 30000 (the engine's default idle_ms).
-- policy=off: max_contexts = 100000, force = false, idle_ms = 0 (cleanup disabled).
-- Per page it does what a crawler does: title, HTML, links; one small record is emitted.
local function int(name, default)
  local v = args[name]
  if v == nil then return default end
  local n = math.tointeger(tonumber(v))
  if not n or n < 1 then error(name .. "= must be a positive integer (got '" .. v .. "')", 0) end
  return n
end

if not args.base then error("load.lua needs base=http://127.0.0.1:PORT", 0) end
local pages = int("pages", 5000)
local configs = int("configs", 20)
local block = int("block", 8)
local policy
if args.policy == "off" then
  policy = { max_contexts = 100000, force = false, idle_ms = 0 }
elseif args.policy == "default" then
  policy = { max_contexts = 4 }
elseif args.policy == nil or args.policy == "on" then
  policy = { max_contexts = 4, force = true, idle_ms = 30000 }
else
  error("policy= must be default, on or off", 0)
end

local function config_of(i)
  local k = ((i - 1) // block) % configs
  return k
end

return {
  name = "bench-load",
  start = function()
    local urls = {}
    for i = 1, pages do urls[i] = args.base .. "/_/page?id=" .. i end
    return urls
  end,
  concurrency = int("concurrency", 8),
  max_depth = 0,
  retries = 1,
  timeout_ms = 30000,
  policy = policy,
  context = function(req)
    local i = math.tointeger(tonumber(req.url:match("id=(%d+)")))
    local k = config_of(i)
    return { user_agent = string.format("Mozilla/5.0 (X11; Linux x86_64) luacrawl-bench/%02d", k) }
  end,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    local title = page:title()
    local html = page:html() or ""
    local links = page:links() or {}
    job:emit { url = req.url, status = res.status, title = title, bytes = #html, links = #links }
  end,
}
