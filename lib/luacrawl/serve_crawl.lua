-- luacrawl.serve_crawl: the job behind `POST /crawl` of `luacrawl serve` (docs/SERVICE.md).
-- Owns: reading the request (the body, passed whole as `args.request`), its checks, and the
-- one record per URL it emits: { index, url, status, title, error?, and one field per
-- `return` entry }. The chunk is the engine's own code (it may require luacrawl.json); the
-- job table turns the sandbox on for the handler, so the host rules, budgets and release of
-- every page apply exactly as for a job a client sends. `index` is the URL's position among
-- the request's distinct URLs (the frontier's id, which counts start URLs in order).
local json = require "luacrawl.json"

local req, err = json.decode(args.request or "")
if type(req) ~= "table" then error("crawl request: " .. (err or "the body is not a JSON object"), 0) end
req = json.plain(req)

local function bad(msg) error("crawl request: " .. msg, 0) end

local KNOWN = { urls = true, context = true, ["return"] = true, wait_until = true,
                timeout_ms = true, concurrency = true, isolated = true }
for k in pairs(req) do
  if not KNOWN[k] then bad("unknown field '" .. tostring(k) .. "'") end
end
local urls = req.urls
if type(urls) ~= "table" or #urls == 0 then bad("'urls' must be a non-empty list of URLs") end
local max_urls = tonumber(args.max_urls) or 100
if #urls > max_urls then bad(string.format("at most %d urls per request (got %d)", max_urls, #urls)) end
for i, u in ipairs(urls) do
  if type(u) ~= "string" then bad("urls[" .. i .. "] is not a string") end
end

local RETURNS = { html = true, markdown = true, links = true, text = true, screenshot = true }
local want = req["return"] or { "html" }
if type(want) ~= "table" then bad("'return' must be a list") end
for _, w in ipairs(want) do
  if not RETURNS[w] then
    bad("'return' entries are html, markdown, links, text, screenshot (got '" .. tostring(w) .. "')")
  end
end

local wait_until = req.wait_until or "load"
if wait_until ~= "load" and wait_until ~= "domcontentloaded" and wait_until ~= "networkidle" then
  bad("'wait_until' is load, domcontentloaded or networkidle")
end
local timeout_ms = req.timeout_ms or tonumber(args.timeout_ms) or 30000
if math.type(timeout_ms) ~= "integer" or timeout_ms < 100 or timeout_ms > 300000 then
  bad("'timeout_ms' is an integer in 100..300000")
end
local concurrency = req.concurrency or math.min(#urls, 4)
if math.type(concurrency) ~= "integer" or concurrency < 1 or concurrency > 16 then
  bad("'concurrency' is an integer in 1..16")
end
if req.context ~= nil and type(req.context) ~= "table" then bad("'context' must be an object") end
if req.isolated ~= nil and type(req.isolated) ~= "boolean" then bad("'isolated' must be a boolean") end

-- Base64 for screenshots (the bytes page:screenshot returns).
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out, n = {}, #s
  for i = 1, n, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1, c2 = v // 262144 % 64 + 1, v // 4096 % 64 + 1
    local c3, c4 = v // 64 % 64 + 1, v % 64 + 1
    out[#out + 1] = B64:sub(c1, c1) .. B64:sub(c2, c2) ..
      (b and B64:sub(c3, c3) or "=") .. (c and B64:sub(c4, c4) or "=")
  end
  return table.concat(out)
end

local readers = {
  html = function(page) return page:html() end,
  markdown = function(page) return page:markdown() end,
  links = function(page) return page:links() end,
  text = function(page) return page:text() end,
  screenshot = function(page)
    local png, e = page:screenshot()
    if not png then return nil, e end
    return base64(png)
  end,
}

return {
  sandbox = true,
  start = urls,
  context = req.context or {},
  concurrency = concurrency,
  retries = 0,
  same_origin = false,
  max_depth = 0,
  timeout_ms = timeout_ms + 5000,
  wait_until = wait_until,
  -- A screenshot's base64 is larger than the default 1 MiB record cap.
  budgets = { record_bytes = 64 * 1024 * 1024 },
  handle = function(page, r, job)
    local rec = { index = r.id - 1, url = r.url }
    local res, e = page:navigate(r.url, { wait_until = wait_until, timeout_ms = timeout_ms,
                                          throttle = false })
    if not res then
      rec.error = e
      job:emit(rec)
      return
    end
    rec.status = res.status
    rec.final_url = res.url
    rec.title = page:title()
    for _, w in ipairs(want) do
      local v, werr = readers[w](page)
      if v == nil then rec[w .. "_error"] = werr else rec[w] = v end
    end
    job:emit(rec)
  end,
}
