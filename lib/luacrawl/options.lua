-- luacrawl.options: validation of context options and the canonical form a context is keyed by.
-- Only options that shape a browser context are part of its key: its cookie jar and storage
-- (`cookies`, `jar`) and its network (`proxy`). The others (user agent, locale, timezone,
-- viewport, geolocation, headers, javascript, blocking) are the page's emulation, applied by
-- page.lua to every page a request is given, so requests that differ only in them share a
-- context and its idle pages: rotating a thousand user agents costs what one does.
-- Per-request settings (URL, waits, what to extract) are in neither.
local json = require "luacrawl.json"

local M = {}

local RESOURCE_TYPES = {
  image = "Image", font = "Font", media = "Media", stylesheet = "Stylesheet", script = "Script",
  xhr = "XHR", fetch = "Fetch", websocket = "WebSocket", manifest = "Manifest", other = "Other",
  texttrack = "TextTrack", eventsource = "EventSource", ping = "Ping",
}
M.RESOURCE_TYPES = RESOURCE_TYPES

local function fail(what, msg) error(string.format("context.%s %s", what, msg), 0) end

local function check_string(v, what)
  if v ~= nil and type(v) ~= "string" then fail(what, "must be a string (got " .. type(v) .. ")") end
end

local function check_number(v, what, lo, hi)
  if v == nil then return end
  if type(v) ~= "number" or v < lo or v > hi then
    fail(what, string.format("must be a number from %s to %s (got %s)", lo, hi, tostring(v)))
  end
end

local function check_list(v, what)
  if v == nil then return {} end
  if type(v) ~= "table" then fail(what, "must be a list") end
  for i, x in ipairs(v) do
    if type(x) ~= "string" then fail(what, "must be a list of strings (item " .. i .. ")") end
  end
  return v
end

local KNOWN = {
  user_agent = true, viewport = true, locale = true, timezone = true, geolocation = true,
  headers = true, proxy = true, javascript = true, block = true, block_urls = true, cookies = true,
  jar = true,
}
-- What goes into a context's key; the rest is the page's emulation (page.lua sets it on each
-- page, sending only what differs from what a reused page had).
local CONTEXT_LEVEL = { proxy = true, cookies = true, jar = true }
M.EMULATION = { "user_agent", "locale", "timezone", "viewport", "geolocation", "headers",
                "javascript", "block", "block_urls" }
do -- every option is one or the other
  local n = 0
  for _, k in ipairs(M.EMULATION) do assert(KNOWN[k] and not CONTEXT_LEVEL[k]); n = n + 1 end
  for k in pairs(CONTEXT_LEVEL) do assert(KNOWN[k]); n = n + 1 end
  for _ in pairs(KNOWN) do n = n - 1 end
  assert(n == 0, "luacrawl.options: an option is neither the context's nor the page's")
end

-- Validate a context options table; returns the canonical table (sorted, defaults dropped).
-- Raises a clear error on a bad option.
function M.check(o)
  if o == nil then return {} end
  if type(o) ~= "table" then error("context options must be a table (got " .. type(o) .. ")", 0) end
  for k in pairs(o) do
    if not KNOWN[k] then error("unknown context option '" .. tostring(k) .. "'", 0) end
  end
  local c = {}
  check_string(o.user_agent, "user_agent"); c.user_agent = o.user_agent
  check_string(o.locale, "locale"); c.locale = o.locale
  check_string(o.timezone, "timezone"); c.timezone = o.timezone
  check_string(o.proxy, "proxy"); c.proxy = o.proxy
  check_string(o.jar, "jar"); c.jar = o.jar
  if o.viewport ~= nil then
    local v = o.viewport
    if type(v) ~= "table" then fail("viewport", "must be a table {width=, height=}") end
    check_number(v.width, "viewport.width", 1, 10000)
    check_number(v.height, "viewport.height", 1, 10000)
    check_number(v.device_scale_factor, "viewport.device_scale_factor", 0.1, 10)
    if v.width == nil or v.height == nil then fail("viewport", "needs width and height") end
    c.viewport = { width = math.floor(v.width), height = math.floor(v.height),
                   device_scale_factor = v.device_scale_factor, mobile = v.mobile and true or nil }
  end
  if o.geolocation ~= nil then
    local g = o.geolocation
    if type(g) ~= "table" then fail("geolocation", "must be a table {latitude=, longitude=}") end
    check_number(g.latitude, "geolocation.latitude", -90, 90)
    check_number(g.longitude, "geolocation.longitude", -180, 180)
    check_number(g.accuracy, "geolocation.accuracy", 0, 1e7)
    if g.latitude == nil or g.longitude == nil then fail("geolocation", "needs latitude and longitude") end
    c.geolocation = { latitude = g.latitude, longitude = g.longitude, accuracy = g.accuracy or 10 }
  end
  if o.headers ~= nil then
    if type(o.headers) ~= "table" then fail("headers", "must be a table of name = value") end
    local h = {}
    for k, v in pairs(o.headers) do
      if type(k) ~= "string" or type(v) ~= "string" then fail("headers", "must map strings to strings") end
      h[k] = v
    end
    if next(h) then c.headers = h end
  end
  if o.javascript ~= nil then
    if type(o.javascript) ~= "boolean" then fail("javascript", "must be a boolean") end
    if o.javascript == false then c.javascript = false end
  end
  local block = check_list(o.block, "block")
  if #block > 0 then
    local seen, b = {}, {}
    for _, t in ipairs(block) do
      if not RESOURCE_TYPES[t] then
        fail("block", "has an unknown resource type '" .. t .. "' (image, font, media, stylesheet, script, ...)")
      end
      if not seen[t] then seen[t] = true; b[#b + 1] = t end
    end
    table.sort(b)
    c.block = b
  end
  local urls = check_list(o.block_urls, "block_urls")
  if #urls > 0 then c.block_urls = urls end
  if o.cookies ~= nil then
    if type(o.cookies) ~= "table" then fail("cookies", "must be a list of cookies") end
    for i, ck in ipairs(o.cookies) do
      if type(ck) ~= "table" or type(ck.name) ~= "string" or type(ck.value) ~= "string" then
        fail("cookies", "item " .. i .. " needs name and value strings")
      end
      if not ck.url and not ck.domain then fail("cookies", "item " .. i .. " needs url or domain") end
    end
    if #o.cookies > 0 then c.cookies = o.cookies end
  end
  return c
end

-- The canonical JSON text of validated options.
function M.canonical(c) return json.canonical(c) end

-- The cache's key material: the canonical JSON of the context-level options of validated
-- options `c`, plus `extra` (a session's name).
function M.key(c, extra)
  local t = {}
  for k, v in pairs(c) do
    if CONTEXT_LEVEL[k] then t[k] = v end
  end
  for k, v in pairs(extra or {}) do t[k] = v end
  return json.canonical(t)
end

return M
