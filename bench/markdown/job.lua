-- bench/markdown/job.lua: the crawl of the Markdown benchmark (see bench/README.md). Visits each
-- page of pages= (a comma-separated list of paths under base=), and per page emits one record
-- { path, status, markdown, main_only, truth }: page:markdown(), page:markdown{ main_only = true }
-- and the page's ground truth, read from its DOM by truth= (bench/markdown/truth.js).
--   luacrawl run bench/markdown/job.lua base=http://127.0.0.1:PORT/ pages=a.html,b.html truth=FILE
if not args.base or not args.pages or not args.truth then
  error("job.lua needs base=, pages= and truth=", 0)
end
local file = assert(io.open(args.truth, "rb"))
local truth_js = file:read("a")
file:close()

local start = {}
for path in args.pages:gmatch("[^,]+") do start[#start + 1] = args.base .. path end

return {
  name = "bench-markdown",
  start = start,
  max_depth = 0,
  concurrency = 2,
  retries = 1,
  timeout_ms = 60000,
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    local whole = assert(page:markdown())
    local main = assert(page:markdown { main_only = true })
    local truth = assert(page:eval(truth_js))
    job:emit { path = req.url:sub(#args.base + 1), status = res.status, markdown = whole,
               main_only = main, truth = truth }
  end,
}
