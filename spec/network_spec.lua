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

  it("a context function rotating user agents gives each its own context", function()
    local r = run(srv, PRELUDE .. [[
local UAS = { "rotating-agent-A", "rotating-agent-B" }
return {
  start = function() local t = {} for i = 1, 6 do t[i] = P .. "/_/ua?n=" .. i end return t end,
  retries = 0, timeout_ms = 60000, concurrency = 2,
  context = function(req) return { user_agent = UAS[tonumber(req.url:match("n=(%d+)")) % 2 + 1] } end,
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    local info = page:info()
    job:emit { n = tonumber(req.url:match("n=(%d+)")), server = page:title(),
               page = page:eval("navigator.userAgent"), bctx = info.browser_context,
               signature = info.signature }
  end }]])
    assert.equals(6, #r.records)
    local ua_of_ctx, ctxs_of_ua, sig_of_ua = {}, {}, {}
    for _, rec in ipairs(r.records) do
      local want = rec.n % 2 == 0 and "rotating-agent-A" or "rotating-agent-B"
      assert.equals(want, rec.server, "request " .. rec.n)
      assert.equals(want, rec.page)
      assert.is_string(rec.bctx)
      -- A browser context serves one user agent only.
      assert.is_true(ua_of_ctx[rec.bctx] == nil or ua_of_ctx[rec.bctx] == want, "context shared by two agents")
      ua_of_ctx[rec.bctx] = want
      ctxs_of_ua[want] = true
      -- The cache keys contexts by their options: one signature per agent.
      sig_of_ua[want] = sig_of_ua[want] or rec.signature
      assert.equals(sig_of_ua[want], rec.signature)
    end
    assert.is_true(ctxs_of_ua["rotating-agent-A"] and ctxs_of_ua["rotating-agent-B"])
    assert.are_not.equal(sig_of_ua["rotating-agent-A"], sig_of_ua["rotating-agent-B"])
    assert.is_true(r.stats.contexts_created >= 2)
  end)
end)
