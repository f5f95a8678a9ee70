-- login_session.lua: log in once through a form, then crawl the pages behind the login with
-- that same logged-in page.
--
-- The idea: job:session(name) is a page the job keeps across requests. The first call opens
-- it; later calls, from any request, return the same page, with its cookies and its history,
-- until job:close_session(name) or the end of the job (the engine closes it then). Here the
-- session logs in with real key and mouse events (page:type, page:click) the first time it
-- is needed, and every request then navigates the session page instead of its own fresh one.
-- One page cannot go to two places at once, so the job runs one request at a time.
--
-- Run it against the fixture server (its /_/login takes alice / secret and leads to
-- /_/account, which links to /_/account/orders?page=1..3):
--   python3 spec/support/server.py --root spec/fixtures/site --port-file /tmp/port &
--   build/luacrawl run examples/login_session.lua url=http://127.0.0.1:$(cat /tmp/port)
-- Arguments: url= (the site, default http://127.0.0.1:8000), user= (alice), password= (secret)
-- Emits { url, status, title, heading, orders } per account page; orders (order pages only)
-- lists the order ids.
local base = (args.url or "http://127.0.0.1:8000"):gsub("/+$", "")
local user = args.user or "alice"
local password = args.password or "secret"

-- Fills in the login form of the session page and submits it. Returns true | nil, err.
local function log_in(s, job)
  local ok, err = s:navigate(base .. "/_/login")
  if not ok then return nil, err end
  ok, err = s:type("input[name=user]", user)
  if not ok then return nil, err end
  ok, err = s:type("input[name=password]", password)
  if not ok then return nil, err end
  ok, err = s:click("button[type=submit]")
  if not ok then return nil, err end
  -- The form posts, the server sets a cookie and redirects: wait for either outcome.
  ok, err = s:wait_for("#welcome, #error", { timeout_ms = 10000 })
  if not ok then return nil, err end
  if s:eval("!!document.querySelector('#error')") then return nil, "login refused for " .. user end
  job:log("logged in as " .. user)
  return true
end

return {
  start = { base .. "/_/account" },
  concurrency = 1, -- one session page, driven by one request at a time
  allow = { "/_/account" },
  handle = function(page, req, job)
    -- This request's own `page` is left unused: the session page is the one that logs in.
    -- (Both come from the context of the default options, so here `page` would carry the
    -- session cookie too; give job:session options of its own to keep its cookies apart.)
    local s = assert(job:session("login"))
    local res = assert(s:navigate(req.url))
    if res.url:find("/_/login", 1, true) then
      -- Not logged in yet (or the session expired): the server sent us to the form.
      assert(log_in(s, job))
      res = assert(s:navigate(req.url))
    end
    local orders = {}
    for _, li in ipairs(assert(s:query("li.order"))) do orders[#orders + 1] = li.attrs["data-id"] end
    job:emit {
      url = req.url, status = res.status, title = s:title(),
      heading = s:eval("(document.querySelector('h1') || {}).textContent || ''"),
      orders = #orders > 0 and orders or nil, -- (an empty Lua table would be written as {})
    }
    for _, link in ipairs(assert(s:links())) do job:enqueue(link) end
  end,
}
