-- scrape.lua: one record per URL of a file (urls=FILE, one URL per line; # comments allowed):
--   { url, final_url, status, title, text, markdown }   or   { url, error } when it failed
-- Arguments: urls= (required), concurrency= (default 4)
if not args.urls then error("scrape.lua needs urls=FILE", 0) end
local f, err = io.open(args.urls)
if not f then error("cannot read urls file: " .. err, 0) end
local urls = {}
for line in f:lines() do
  line = line:match("^%s*(.-)%s*$")
  if line ~= "" and not line:find("^#") then urls[#urls + 1] = line end
end
f:close()
if #urls == 0 then error("no URLs in " .. args.urls, 0) end

return {
  start = urls,
  same_origin = false,
  max_depth = 0,
  concurrency = math.tointeger(tonumber(args.concurrency or "4")) or 4,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    job:emit {
      url = req.url, final_url = res.url, status = res.status,
      title = page:title(), text = page:text(), markdown = page:markdown(),
    }
  end,
  on_error = function(req, err, job)
    job:emit { url = req.url, error = tostring(err) }
  end,
}
