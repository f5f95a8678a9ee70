-- crawl.lua: crawl a site from url= to JSON Lines, one record per page:
--   { url, final_url, status, depth, title, markdown, links }
-- Arguments: url= (required), depth= (default 3), max= (pages, default 1000),
--            concurrency= (default 4), main_only= (true: markdown of the main content only)
--   luacrawl run scripts/crawl.lua url=http://127.0.0.1:8000/ depth=2 | jq -r .title
local function int(name, default)
  local v = args[name]
  if v == nil then return default end
  local n = math.tointeger(tonumber(v))
  if not n then error(name .. "= must be an integer (got '" .. v .. "')", 0) end
  return n
end

if not args.url then error("crawl.lua needs url=, e.g. url=http://127.0.0.1:8000/", 0) end
local main_only = args.main_only == "true"

return {
  start = { args.url },
  max_depth = int("depth", 3),
  max_pages = int("max", 1000),
  concurrency = int("concurrency", 4),
  retries = 2,
  timeout_ms = 30000,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    local c = assert(page:content()) -- title and links (and HTML) in one round trip
    job:emit {
      url = req.url,
      final_url = res.url,
      status = res.status,
      depth = req.depth,
      title = c.title,
      markdown = page:markdown { main_only = main_only },
      links = c.links,
    }
    if res.status < 400 then
      for _, link in ipairs(c.links) do job:enqueue(link) end
    end
  end,
}
