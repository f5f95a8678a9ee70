-- rotate_user_agents.lua: a different user agent per request, chosen by a function.
--
-- The idea: job.context may be a function(req) that returns the context options of each
-- request, instead of one table for the whole job. The engine caches browser contexts by the
-- options that shape a context (its cookie jar, `jar` and `cookies`, and its `proxy`); a user
-- agent is the page's emulation, set on each page a request gets. So the three agents here
-- share one context and its idle pages: rotating a thousand agents costs what one does. Give
-- each agent a cookie jar of its own with `jar = agent` (then three agents are three
-- contexts: jar=1 on the command line). Here the agent is picked from the request's id
-- (1, 2, 3, ... in the order URLs were queued), so a retry of a request keeps its agent.
--
-- Run it against the fixture server, whose /_/ua page shows the User-Agent it received:
--   python3 spec/support/server.py --root spec/fixtures/site --port-file /tmp/port &
--   build/luacrawl run examples/rotate_user_agents.lua url=http://127.0.0.1:$(cat /tmp/port)/_/ua
-- Arguments: url= (default http://127.0.0.1:8000/_/ua), n= (requests, default 6),
--            jar=1 (a cookie jar per agent)
-- Emits { url, user_agent (as the page's navigator saw it), server_saw (as the server got it) }.
local url = args.url or "http://127.0.0.1:8000/_/ua"
local n = math.tointeger(tonumber(args.n or "6")) or error("n= must be an integer", 0)

local AGENTS = {
  "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
  "luacrawl-example/1.0 (+https://example.org/bot)",
}

-- The same URL n times would be fetched once (the frontier drops duplicates): vary the query.
local start = {}
for i = 1, n do start[i] = url .. (url:find("?", 1, true) and "&" or "?") .. "n=" .. i end

return {
  start = start,
  concurrency = 3,
  context = function(req)
    local agent = AGENTS[(req.id - 1) % #AGENTS + 1]
    return { user_agent = agent, jar = args.jar and agent or nil }
  end,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    job:emit {
      url = req.url,
      user_agent = page:eval("navigator.userAgent"),
      server_saw = page:eval("(document.getElementById('ua') || {}).textContent || ''"),
    }
  end,
}
