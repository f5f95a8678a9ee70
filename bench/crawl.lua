-- bench/crawl.lua: the throughput job (see bench/README.md). Crawls a site from url= on its
-- own origin, at concurrency=C, up to max=N pages, and per page does what bench/pptr.mjs
-- does per page: navigate (wait for "load"), title, HTML, links (one page:content() call);
-- one record per page
-- { url, status, title, html, links } to the output; every link is enqueued (the frontier
-- normalizes and dedupes). All requests share one context configuration (the default), so
-- the engine keeps one context and reuses its idle pages.
--   luacrawl run bench/crawl.lua url=http://127.0.0.1:PORT/ concurrency=4 max=1000
local function int(name, default)
  local v = args[name]
  if v == nil then return default end
  local n = math.tointeger(tonumber(v))
  if not n or n < 1 then error(name .. "= must be a positive integer (got '" .. v .. "')", 0) end
  return n
end

if not args.url then error("crawl.lua needs url=http://127.0.0.1:PORT/", 0) end

return {
  name = "bench-throughput",
  start = { args.url },
  concurrency = int("concurrency", 4),
  max_pages = int("max", 100000),
  retries = 1,
  timeout_ms = 30000,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    local c = assert(page:content()) -- title, HTML and links in one round trip
    job:emit { url = req.url, status = res.status, title = c.title, html = c.html, links = c.links }
    for _, link in ipairs(c.links) do job:enqueue(link) end
  end,
}
