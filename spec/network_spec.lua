-- network_spec.lua: network control with real Chromium, checked where it counts, in the fixture
-- server's request log: blocking by resource type and by URL pattern, page:on_response, extra
-- headers, user agent, locale, timezone and viewport reaching the server and the page, and a
-- per-request context function that rotates user agents over separate contexts.
local H = require("support.helpers")
local run, checks = H.run_job, H.checks
local cjson = require("cjson")



local PRELUDE = [[
local P = args.base
local function checker(job)
  return function(name, fn)
    local ok, a, b = pcall(fn)
    job:emit { check = name, ok = ok, a = a, b = b }
  end
end
-- Loads an image page on p and reports what the page and page:on_response saw.
local function image_page(p, url)
  local seen = {}
  p:on_response(function(r) seen[#seen + 1] = { url = r.url, status = r.status, type = r.type } end)
  local res, err = p:navigate(url, { wait_until = "networkidle" })
  if not res then return { err = err } end
  return { status = res.status, seen = seen,
           widths = p:eval("Array.prototype.map.call(document.images, function (i) { return i.naturalWidth })"),
           background = p:eval("getComputedStyle(document.body).backgroundColor") }
end
]]

-- The log entries after the first one whose path is `from` and before the one whose path is `to`.
local function log_between(srv, from, to)
  local out, inside = {}, false
  for _, e in ipairs(srv.log()) do
    if e.path == from then
      inside = true
    elseif inside and e.path == to then
      break
    elseif inside then
      out[#out + 1] = e.path
    end
  end
  return out
end

local function contains(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

describe("network control", function()
  local srv
  before_each(function() srv = H.server() end)
  after_each(function() H.cleanup() end)

  it("blocks resource types and URL patterns; on_response sees url, status and type", function()
    local r = run(srv, PRELUDE .. [[
return { start = { P .. "/_/image-page?step=blocked" }, retries = 0, timeout_ms = 60000,
  context = { block = { "image", "font", "stylesheet" } },
  handle = function(page, req, job)
    local check = checker(job)
    check("blocked", function() return image_page(page, req.url) end)
    local open <close> = assert(job:context {})
    local p2 = assert(open:page())
    check("open", function() return image_page(p2, P .. "/_/image-page?step=open") end)
    local some <close> = assert(job:context { block_urls = { "*/_/img?i=2", "*/_/page?id=blocked*" } })
    local p3 = assert(some:page())
    check("by_url", function() return image_page(p3, P .. "/_/image-page?step=by_url") end)
    check("nav_blocked", function() return p3:navigate(P .. "/_/page?id=blocked-1") end)
    -- '?' in a pattern is the character, not a wildcard.
    check("nav_literal", function()
      local res, err = p3:navigate(P .. "/_/pageXid=blocked-1")
      return res and res.status, err
    end)
    check("nav_end", function() return p3:navigate(P .. "/_/page?id=end") end)
  end }]])
    local c = checks(r)

    -- With block: the document only; the server never saw the image, font or stylesheet.
    local blocked = c.blocked.a
    assert.equals(200, blocked.status)
    assert.same({ 0, 0, 0 }, blocked.widths)
    assert.are_not.equal("rgb(244, 244, 244)", blocked.background)
    assert.same({ { url = srv.url("/_/image-page?step=blocked"), status = 200, type = "Document" } }, blocked.seen)
    assert.same({}, log_between(srv, "/_/image-page?step=blocked", "/_/image-page?step=open"))

    -- Without: all of them, fetched and seen.
    local open = c.open.a
    assert.same({ 4, 4, 4 }, open.widths)
    assert.equals("rgb(244, 244, 244)", open.background)
    local fetched = log_between(srv, "/_/image-page?step=open", "/_/image-page?step=by_url")
    for _, path in ipairs { "/_/img?i=1", "/_/img?i=2", "/_/img?i=3", "/_/style.css", "/_/font.woff2" } do
      assert.is_true(contains(fetched, path), path .. " fetched without block")
    end
    local types = {}
    for _, s in ipairs(open.seen) do
      types[s.url] = s.type
      assert.equals(200, s.status)
    end
    assert.equals("Document", types[srv.url("/_/image-page?step=open")])
    assert.equals("Image", types[srv.url("/_/img?i=1")])
    assert.equals("Stylesheet", types[srv.url("/_/style.css")])

    -- block_urls: image 2 only, and a navigation to a blocked URL fails without reaching the server.
    assert.same({ 4, 0, 4 }, c.by_url.a.widths)
    local by_url = log_between(srv, "/_/image-page?step=by_url", "/_/page?id=end")
    assert.is_true(contains(by_url, "/_/img?i=1"))
    assert.is_false(contains(by_url, "/_/img?i=2"))
    assert.is_true(contains(by_url, "/_/img?i=3"))
    assert.is_nil(c.nav_blocked.a)
    assert.matches("ERR_BLOCKED_BY_CLIENT", c.nav_blocked.b)
    assert.equals(0, srv.count("/_/page?id=blocked-1"))
    assert.equals(404, c.nav_literal.a, tostring(c.nav_literal.b))
    assert.equals(1, srv.count("/_/pageXid=blocked-1"))
    assert.equals(200, c.nav_end.a.status)
  end)

  it("a script's own Fetch.enable: its requests reach it as events, block lists and the guard keep working", function()
    local r = run(srv, PRELUDE .. [[
local CSS = "Ym9keSB7IGJhY2tncm91bmQ6IHJnYigxLCAyLCAzKSB9"
local HTML = "PGh0bWw+PGhlYWQ+PHRpdGxlPmZ1bGZpbGxlZDwvdGl0bGU+PC9oZWFkPjxib2R5PjxwPmZyb20gdGhlIHNjcmlwdDwvcD48L2JvZHk+PC9odG1sPg=="
local OTHER = P:gsub("127%.0%.0%.1", "localhost")
return { start = { P .. "/_/page?id=start" }, retries = 0, timeout_ms = 60000,
  handle = function(_, req, job)
    local check = checker(job)
    -- A page the script drives itself: a refused navigation fails only its navigate call.
    local ctx <close> = assert(job:context { block = { "font" }, block_urls = { "*/_/img?i=2" } })
    local page = assert(ctx:page())
    local seen = {}
    page:on_event("Fetch.requestPaused", function(p)
      local url = p.request.url
      seen[#seen + 1] = { url = url:gsub("^https?://[^/]+", ""), type = p.resourceType,
                          response = p.responseStatusCode ~= nil }
      if url:find("/_/style.css", 1, true) then
        -- At the Response stage: the server answered; the script replaces the body.
        assert(page:send("Fetch.fulfillRequest", { requestId = p.requestId, responseCode = 200,
          responseHeaders = { { name = "Content-Type", value = "text/css" } }, body = CSS }))
      elseif url:find("img?i=3", 1, true) then
        assert(page:send("Fetch.failRequest", { requestId = p.requestId, errorReason = "Failed" }))
      elseif url:find("id=doc", 1, true) then
        assert(page:send("Fetch.fulfillRequest", { requestId = p.requestId, responseCode = 200,
          responseHeaders = { { name = "Content-Type", value = "text/html" } }, body = HTML }))
      else
        assert(page:send("Fetch.continueRequest", { requestId = p.requestId }))
      end
    end)
    assert(page:send("Fetch.enable", { patterns = {
      { urlPattern = "*/_/img?i=*" },                                  -- '?' is a Fetch wildcard
      { urlPattern = "*", resourceType = "Font" },                     -- blocked by the engine first
      { urlPattern = "*/_/style.css", requestStage = "Response" },
      { urlPattern = "*/_/page?id=doc*", resourceType = "Document" },  -- the guard decides first
    } }))
    check("images", function() return image_page(page, P .. "/_/image-page?step=mine") end)
    -- A navigation the page starts itself: its redirect hop passes the guard, then the script
    -- fulfils it (the server never sees it). (While page:navigate waits for Page.navigate, the
    -- main frame's documents are the engine's: the task cannot answer them then.)
    check("doc", function()
      page:eval("void (location.href = '/_/redirect?to=/_/page%3Fid%3Ddoc-1')")
      local p = assert(page:wait_event("Fetch.requestPaused", { timeout_ms = 10000 }))
      seen[#seen + 1] = { url = p.request.url:gsub("^https?://[^/]+", ""), type = p.resourceType }
      assert(page:send("Fetch.fulfillRequest", { requestId = p.requestId, responseCode = 200,
        responseHeaders = { { name = "Content-Type", value = "text/html" } }, body = HTML }))
      assert(page:wait_for("document.title === 'fulfilled'", { js = true, timeout_ms = 10000 }))
      return page:title()
    end)
    -- A hop the guard refuses (another origin) never reaches the script (nor the server).
    check("denied", function()
      return page:navigate(P .. "/_/redirect?to=" .. OTHER .. "/_/page%3Fid%3Ddoc-denied")
    end)
    check("seen", function() return seen end)

    -- page:wait_event on a page of its own: a fetch() the script intercepts and fulfils.
    local p2 = assert(ctx:page())
    assert(p2:navigate(P .. "/_/page?id=xhr-host"))
    assert(p2:send("Fetch.enable", { patterns = { { urlPattern = "*/_/page?id=xhr*" } } }))
    p2:eval("void fetch('/_/page?id=xhr-1').then(function (r) { return r.text() }).then(function (t) { window.got = t })")
    check("wait_event", function()
      local p, method = p2:wait_event("Fetch.requestPaused", { timeout_ms = 10000 })
      if not p then return nil, method end
      assert(p2:send("Fetch.fulfillRequest", { requestId = p.requestId, responseCode = 200, body = "aGVsbG8=" }))
      assert(p2:wait_for("window.got === 'hello'", { js = true, timeout_ms = 10000 }))
      return method, p.request.url
    end)
    -- After the script's Fetch.disable, the engine's rules still hold and nothing else pauses.
    assert(p2:send("Fetch.disable"))
    check("after_disable", function()
      return p2:eval("fetch('/_/page?id=xhr-2').then(function (r) { return r.status })")
    end)
  end }]])
    local c = checks(r)
    for _, name in ipairs { "images", "doc", "denied", "seen", "wait_event", "after_disable" } do
      assert.is_true(c[name].ok, name .. ": " .. tostring(c[name].a))
    end
    -- Images: 1 continued by the script, 2 blocked by block_urls, 3 failed by the script;
    -- the stylesheet fetched, then fulfilled with the script's body; the font blocked.
    local images = c.images.a
    assert.equals(200, images.status)
    assert.same({ 4, 0, 0 }, images.widths)
    assert.equals("rgb(1, 2, 3)", images.background)
    local fetched = log_between(srv, "/_/image-page?step=mine", "/_/redirect?to=/_/page%3Fid%3Ddoc-1")
    assert.is_true(contains(fetched, "/_/img?i=1"))
    assert.is_false(contains(fetched, "/_/img?i=2"))
    assert.is_false(contains(fetched, "/_/img?i=3"))
    assert.is_true(contains(fetched, "/_/style.css"))
    assert.is_false(contains(fetched, "/_/font.woff2"))
    local paused = {}
    for _, e in ipairs(c.seen.a) do paused[e.url] = e end
    assert.is_truthy(paused["/_/img?i=1"])
    assert.is_nil(paused["/_/img?i=2"])
    assert.is_truthy(paused["/_/img?i=3"])
    assert.is_true(paused["/_/style.css"].response)
    assert.is_nil(paused["/_/font.woff2"])
    assert.equals("Document", paused["/_/page?id=doc-1"].type)
    assert.is_nil(paused["/_/page?id=doc-denied"])
    -- The guard let the hop through and the script answered it.
    assert.equals("fulfilled", c.doc.a, tostring(c.doc.b))
    assert.equals(0, srv.count("/_/page?id=doc-1"))
    assert.is_nil(c.denied.a)
    assert.matches("refused: not same origin", c.denied.b)
    assert.equals(0, srv.count("/_/page?id=doc-denied"))
    -- wait_event
    assert.equals("Fetch.requestPaused", c.wait_event.a, tostring(c.wait_event.b))
    assert.matches("/_/page%?id=xhr%-1$", c.wait_event.b)
    assert.equals(0, srv.count("/_/page?id=xhr-1"))
    assert.equals(200, c.after_disable.a)
    assert.equals(1, srv.count("/_/page?id=xhr-2"))
  end)

  it("headers, user_agent, locale, timezone and viewport reach the server and the page", function()
    local UA = "luacrawl-spec/1.0 (+http://127.0.0.1/)"
    local r = run(srv, PRELUDE .. string.format([[
local UA = %q
return { start = { P .. "/_/headers?ctx=custom", P .. "/_/headers?ctx=default" }, retries = 0,
  timeout_ms = 60000, concurrency = 1,
  context = function(req)
    if req.url:find("custom", 1, true) then
      return { headers = { ["X-Luacrawl-Test"] = "yes" }, user_agent = UA, locale = "fr-FR",
               timezone = "Asia/Tokyo", viewport = { width = 700, height = 500 } }
    end
  end,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    local headers = page:eval("document.getElementById('h').textContent")
    assert(page:navigate(P .. "/_/ua"))
    job:emit { ctx = req.url:match("ctx=(%%a+)"), headers = headers, ua_title = page:title(),
      page = page:eval("({ ua: navigator.userAgent, lang: navigator.language, w: window.innerWidth,"
        .. " h: window.innerHeight, tz: Intl.DateTimeFormat().resolvedOptions().timeZone })") }
  end }]], UA))
    local by = {}
    for _, rec in ipairs(r.records) do by[rec.ctx] = rec end
    local custom, default = by.custom, by.default
    local h = cjson.decode(custom.headers)
    assert.equals("yes", h["x-luacrawl-test"])
    assert.equals(UA, h["user-agent"])
    assert.matches("^fr%-FR", h["accept-language"])
    assert.equals(UA, custom.ua_title, "the server saw the user agent on a second page too")
    assert.same({ ua = UA, lang = "fr-FR", w = 700, h = 500, tz = "Asia/Tokyo" }, custom.page)

    -- The other context has none of it.
    local d = cjson.decode(default.headers)
    assert.is_nil(d["x-luacrawl-test"])
    assert.are_not.equal(UA, d["user-agent"])
    assert.matches("HeadlessChrome", default.ua_title)
    assert.are_not.equal(700, default.page.w)
    assert.are_not.equal("Asia/Tokyo", default.page.tz)
  end)

  it("rotating user agents share one context, each page sends its own; a jar per agent splits them", function()
    local function crawl(jar)
      return run(srv, PRELUDE .. string.format([[
local UAS = { "rotating-agent-A", "rotating-agent-B" }
local JAR = %s
return {
  start = function() local t = {} for i = 1, 8 do t[i] = P .. "/_/ua?n=" .. i end return t end,
  retries = 0, timeout_ms = 60000, concurrency = 1,
  context = function(req)
    local ua = UAS[tonumber(req.url:match("n=(%%d+)")) %% 2 + 1]
    return { user_agent = ua, jar = JAR and ua or nil }
  end,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    local info = page:info()
    job:emit { n = tonumber(req.url:match("n=(%%d+)")), server = page:title(),
               page = page:eval("navigator.userAgent"), bctx = info.browser_context,
               target = info.target, signature = info.signature }
  end }]], tostring(jar)))
    end
    for _, jar in ipairs { false, true } do
      local r = crawl(jar)
      assert.equals(8, #r.records)
      local ctxs, ua_of_ctx, uas_of_target, switched = {}, {}, {}, false
      for _, rec in ipairs(r.records) do
        local want = rec.n % 2 == 0 and "rotating-agent-A" or "rotating-agent-B"
        -- What the server got and what the page's navigator says: the request's own agent,
        -- even on a page that served the other agent before.
        assert.equals(want, rec.server, "request " .. rec.n)
        assert.equals(want, rec.page)
        assert.is_string(rec.bctx)
        if not ctxs[rec.bctx] then ctxs[#ctxs + 1] = rec.bctx end
        ctxs[rec.bctx] = true
        if jar then
          assert.is_true(ua_of_ctx[rec.bctx] == nil or ua_of_ctx[rec.bctx] == want, "a jar shared by two agents")
          ua_of_ctx[rec.bctx] = want
        end
        local seen = uas_of_target[rec.target] or {}
        seen[want] = true
        uas_of_target[rec.target] = seen
        if seen["rotating-agent-A"] and seen["rotating-agent-B"] then switched = true end
      end
      if jar then
        assert.equals(2, #ctxs)
        assert.equals(2, r.stats.contexts_created)
      else
        assert.equals(1, #ctxs, "agents are the page's emulation: one context")
        assert.equals(1, r.stats.contexts_created)
        assert.is_true(switched, "no reused page served both agents")
        -- One request at a time: one page, switching agents from one request to the next.
        assert.equals(1, r.stats.pages_created)
      end
    end
  end)
end)
