-- screenshot.lua: full-page PNG screenshots of a list of URLs into a folder.
-- Arguments: urls=FILE (one URL per line) or url=URL; out=DIR (default "screenshots");
--            width= (default 1280), height= (default 800)
-- Emits { url, status, file, bytes } per page.
local urls = {}
if args.url then urls[1] = args.url end
if args.urls then
  local f, err = io.open(args.urls)
  if not f then error("cannot read urls file: " .. err, 0) end
  for line in f:lines() do
    line = line:match("^%s*(.-)%s*$")
    if line ~= "" and not line:find("^#") then urls[#urls + 1] = line end
  end
  f:close()
end
if #urls == 0 then error("screenshot.lua needs url=URL or urls=FILE", 0) end
local out = args.out or "screenshots"
os.execute("mkdir -p '" .. out:gsub("'", "'\\''") .. "'")

local function file_name(url)
  return (url:gsub("^%a+://", ""):gsub("[^%w%-_.]", "_"):sub(1, 150)) .. ".png"
end

return {
  start = urls,
  same_origin = false,
  max_depth = 0,
  concurrency = 2,
  context = { viewport = { width = tonumber(args.width or "1280"), height = tonumber(args.height or "800") } },
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    local png = assert(page:screenshot { full_page = true })
    local path = out .. "/" .. file_name(req.url)
    local f = assert(io.open(path, "wb"))
    f:write(png)
    f:close()
    job:emit { url = req.url, status = res.status, file = path, bytes = #png }
  end,
}
