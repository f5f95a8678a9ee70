-- page_spec.lua: the page API with real Chromium against the fixture server: navigation
-- (status, final URL, headers, waits, refusals), evaluation and its limits, content (HTML,
-- text, title, links, Markdown, non-UTF-8 pages), files (PNG, PDF), cookies, and hard pages
-- that must fail alone while the crawl goes on.
--
-- Each run batches several checks: the handler runs them under pcall and emits one record per
-- check, so one Chromium start covers a whole area and a failing check names itself.
local H = require("support.helpers")

-- A healthy run (failed pages allowed: some checks fail pages on purpose).
local function run(srv, text, opts)
  opts = opts or {}
  opts.allow_failed = true
  return H.run_job(srv, text, opts)
end
local checks = H.checks
local cjson = require("cjson")



-- The prelude of a checks script: check(name, fn) emits { check, ok, a, b, ms }.
local PRELUDE = [[
local P = args.base
local core = require("luacrawl.core")
local function checker(job)
  return function(name, fn)
    local t0 = core.now()
    local ok, a, b = pcall(fn)
    job:emit { check = name, ok = ok, a = a, b = b, ms = core.now() - t0 }
  end
end
]]

describe("page API", function()
  local srv
  before_each(function() srv = H.server() end)
  after_each(function() H.cleanup() end)

  it("navigate returns status, final URL and headers, honours wait_until, and refuses what it must", function()
    local r = run(srv, PRELUDE .. [[
return { start = { P .. "/_/page?id=start" }, retries = 0, timeout_ms = 60000,
  handle = function(page, req, job)
    local check = checker(job)
    check("redirect", function()
      local res, err = page:navigate(P .. "/_/redirect?n=3&to=%2F_%2Fpage%3Fid%3Dend")
      return res, err
    end)
    check("404", function()
      local res, err = page:navigate(P .. "/_/status?code=404")
      return res, err or page:title()
    end)
    check("dcl", function()
      local res, err = page:navigate(P .. "/_/neverload", { wait_until = "domcontentloaded", timeout_ms = 8000 })
      return res, page:eval("document.getElementById('content').textContent")
    end)
    check("load_timeout", function() return page:navigate(P .. "/_/neverload", { timeout_ms = 700 }) end)
    check("load", function()
      assert(page:navigate(P .. "/_/slowjs?ms=2000", { wait_until = "load" }))
      return page:eval("!!document.getElementById('late')")
    end)
    check("networkidle", function()
      assert(page:navigate(P .. "/_/slowjs?ms=100", { wait_until = "networkidle" }))
      return page:eval("!!document.getElementById('late')")
    end)
    check("wait_css", function()
      assert(page:navigate(P .. "/_/slowjs?ms=300"))
      local t0 = core.now()
      local ok, err = page:wait_for("#late", { timeout_ms = 5000 })
      return { ok = ok, err = err, ms = core.now() - t0 }
    end)
    check("wait_js", function()
      assert(page:navigate(P .. "/_/slowjs?ms=300"))
      local ok, err = page:wait_for("document.title === 'slowjs done'", { timeout_ms = 5000 })
      return { ok = ok, err = err, title = page:title() }
    end)
    check("wait_js_opt", function()
      assert(page:navigate(P .. "/_/slowjs?ms=300"))
      local ok, err = page:wait_for("document.querySelectorAll('p').length == 2", { js = true, timeout_ms = 5000 })
      return { ok = ok, err = err }
    end)
    check("wait_timeout", function() return page:wait_for("#never-there", { timeout_ms = 300 }) end)
    check("same_document", function()
      assert(page:navigate(P .. "/_/page?id=frag"))
      local res, err = page:navigate(P .. "/_/page?id=frag#part", { timeout_ms = 5000 })
      return res, err
    end)
    check("file", function() return page:navigate("file:///etc/passwd") end)
    check("chrome", function() return page:navigate("chrome://version") end)
    check("javascript", function() return page:navigate("javascript:alert(1)") end)
    check("relative", function() return page:navigate("/_/page?id=x") end)
    check("misuse", function() return page:navigate(P .. "/", { wait_until = "forever" }) end)
  end }]])
    local c = checks(r)

    local redirect = c.redirect
    assert.is_true(redirect.ok)
    assert.equals(200, redirect.a.status)
    assert.equals(srv.url("/_/page?id=end"), redirect.a.url)
    assert.matches("^text/html", redirect.a.headers["content-type"])
    assert.equals("no-store", redirect.a.headers["cache-control"])
    local hops = 0
    for _, e in ipairs(srv.log()) do
      if e.path:find("^/_/redirect%?") then hops = hops + 1 end
    end
    assert.equals(3, hops, "the whole chain was followed")
    assert.equals(1, srv.count("/_/page?id=end"))

    -- A 404 is a result, not an error.
    assert.equals(404, c["404"].a.status)
    assert.equals("404 Not Found", c["404"].b)

    -- domcontentloaded does not wait for the image that never finishes; load does, and times out.
    assert.equals(200, c.dcl.a.status)
    assert.matches("The text is here", c.dcl.b)
    assert.is_true(c.dcl.ms < 5000, "domcontentloaded took " .. c.dcl.ms .. " ms")
    assert.is_nil(c.load_timeout.a)
    assert.matches("^timeout: load not reached after 700 ms", c.load_timeout.b)
    assert.is_true(c.load_timeout.ms >= 650 and c.load_timeout.ms < 3000, "took " .. c.load_timeout.ms)

    -- load returns before the page's script adds #late (2 s); networkidle (500 ms quiet) after
    -- it is added (100 ms).
    assert.is_false(c.load.a)
    assert.is_true(c.networkidle.a)

    assert.is_true(c.wait_css.a.ok, tostring(c.wait_css.a.err))
    assert.is_true(c.wait_css.a.ms >= 150, "waited " .. c.wait_css.a.ms .. " ms")
    assert.is_true(c.wait_js.a.ok, tostring(c.wait_js.a.err))
    assert.equals("slowjs done", c.wait_js.a.title)
    assert.is_true(c.wait_js_opt.a.ok, tostring(c.wait_js_opt.a.err))
    assert.is_nil(c.wait_timeout.a)
    assert.matches("timeout waiting for #never%-there", c.wait_timeout.b)

    -- Only the fragment changes: no load event comes, and none is waited for.
    assert.is_true(c.same_document.ok)
    assert.is_table(c.same_document.a, tostring(c.same_document.b))
    assert.equals(200, c.same_document.a.status)
    assert.equals(srv.url("/_/page?id=frag#part"), c.same_document.a.url)
    assert.is_true(c.same_document.ms < 3000, "took " .. c.same_document.ms .. " ms")

    for _, k in ipairs { "file", "chrome", "javascript" } do
      assert.is_true(c[k].ok, k .. " raised instead of returning nil, err")
      assert.is_nil(c[k].a, k)
      assert.matches("scheme is not allowed", c[k].b)
    end
    assert.matches("not an absolute URL", c.relative.b)
    -- Misuse raises.
    assert.is_false(c.misuse.ok)
    assert.matches("wait_until must be", c.misuse.a)
  end)

  it("eval returns Lua data, and a cyclic, huge or throwing result is an error, not a crash", function()
    local r = run(srv, PRELUDE .. [[
return { start = { P .. "/_/page?id=eval" }, retries = 0, timeout_ms = 60000,
  handle = function(page, req, job)
    local check = checker(job)
    assert(page:navigate(req.url))
    check("data", function()
      local v, err = page:eval("({ i: 7, f: 1.5, s: 'x\\u00e9', t: true, n: null, list: [1, 2, 3], o: { deep: 'yes' } })")
      return { v = v, err = err, itype = math.type(v.i), ftype = math.type(v.f), has_n = v.n ~= nil }
    end)
    check("dom", function() return page:eval("document.querySelector('h1').textContent") end)
    check("undefined", function() return page:eval("undefined") end)
    check("statements", function() return page:eval("let q = 5; var w = 2; q * w") end)
    check("promise", function() return page:eval("new Promise(function (r) { setTimeout(function () { r('later') }, 50) })") end)
    check("throws", function() return page:eval("throw new Error('boom')") end)
    check("rejects", function() return page:eval("Promise.reject(new Error('nope'))") end)
    check("syntax", function() return page:eval("this is not javascript (") end)
    check("cyclic", function() return page:eval("var a = { name: 'a' }; a.self = a; a") end)
    check("cyclic_array", function() return page:eval("var l = [1]; l.push(l); l") end)
    check("huge", function() return page:eval("'x'.repeat(70 * 1024 * 1024)") end)
    check("huge_object", function() return page:eval("Array(2000).fill('abcdefghij')", { max_bytes = 10000 }) end)
    check("deep", function()
      return page:eval("var o = {}, c = o; for (var i = 0; i < 2000; i++) { c.n = {}; c = c.n } o")
    end)
    check("after", function() return page:eval("6 * 7") end)
    check("misuse", function() return page:eval(42) end)
  end }]])
    local c = checks(r)
    local d = c.data.a
    assert.is_nil(d.err)
    assert.same({ i = 7, f = 1.5, s = "xé", t = true, list = { 1, 2, 3 }, o = { deep = "yes" } }, d.v)
    assert.equals("integer", d.itype)
    assert.equals("float", d.ftype)
    assert.is_false(d.has_n, "JSON null becomes nil")
    assert.equals("Page eval", c.dom.a)
    assert.is_true(c.undefined.ok)
    assert.is_nil(c.undefined.a)
    assert.is_nil(c.undefined.b)
    assert.equals(10, c.statements.a)
    assert.equals("later", c.promise.a)

    for _, k in ipairs { "throws", "rejects", "syntax" } do
      assert.is_true(c[k].ok, k .. " raised")
      assert.is_nil(c[k].a)
      assert.matches("^JavaScript error: ", c[k].b)
    end
    assert.matches("boom", c.throws.b)
    assert.matches("nope", c.rejects.b)
    assert.matches("SyntaxError", c.syntax.b)

    for _, k in ipairs { "cyclic", "cyclic_array" } do
      assert.is_true(c[k].ok, k .. " raised")
      assert.is_nil(c[k].a)
      assert.matches("^eval result is cyclic", c[k].b)
    end
    assert.is_nil(c.huge.a)
    assert.matches("^eval result too large: 73400320 characters", c.huge.b)
    -- Refused in the page: nothing huge crossed the DevTools connection.
    assert.is_true(c.huge.ms < 10000, "the huge result took " .. c.huge.ms .. " ms")
    assert.is_nil(c.huge_object.a)
    assert.matches("^eval result too large: %d+ characters of JSON, the limit is 10000", c.huge_object.b)
    assert.is_true(c.deep.ok)
    assert.is_nil(c.deep.a)
    assert.is_string(c.deep.b)

    -- The page and the browser survived all of it.
    assert.equals(42, c.after.a)
    assert.equals(0, r.stats.browser_crashes)
    assert.equals(1, r.stats.browser_starts)
    assert.is_false(c.misuse.ok)
    assert.matches("expects a JavaScript string", c.misuse.a)
  end)

  it("reads html, text, title, absolute http(s) links and Markdown; non-UTF-8 pages come out as UTF-8", function()
    local r = run(srv, PRELUDE .. [[
return { start = { P .. "/_/page?id=content" }, retries = 0, timeout_ms = 60000,
  handle = function(page, req, job)
    local check = checker(job)
    check("plain", function()
      assert(page:navigate(req.url))
      return { title = page:title(), html = page:html(), text = page:text() }
    end)
    check("links", function()
      assert(page:navigate(P .. "/_/badlinks"))
      return page:links()
    end)
    check("cycle_links", function()
      assert(page:navigate(P .. "/_/cycle"))
      return page:links()
    end)
    check("markdown", function()
      assert(page:navigate(P .. "/_/products"))
      return page:markdown()
    end)
    for _, path in ipairs { "/_/latin1", "/_/latin1?meta=1", "/_/sjis", "/_/sjis?meta=1" } do
      check(path, function()
        assert(page:navigate(P .. path))
        return { title = page:title(), text = page:text(),
                 p = page:eval("document.getElementById('text').textContent") }
      end)
    end
  end }]])
    local c = checks(r)
    assert.equals("Page content", c.plain.a.title)
    assert.truthy(c.plain.a.html:find('<h1 id="title">Page content</h1>', 1, true), c.plain.a.html)
    assert.matches("^<html>", c.plain.a.html)
    assert.matches("Page content", c.plain.a.text)
    assert.matches("A plain page%.", c.plain.a.text)
    assert.is_nil(c.plain.a.text:find("<", 1, true), "text has no markup")

    -- Only http(s), absolute, in page order: file:, javascript:, data:, chrome:, mailto: are dropped.
    assert.same({ srv.url("/_/page?id=good-1"), srv.url("/_/page?id=good-2") }, c.links.a)
    for _, link in ipairs(c.cycle_links.a) do
      assert.matches("^http://127%.0%.0%.1:" .. srv.port .. "/_/", link)
      assert.is_nil(link:find("#", 1, true), "fragments are dropped: " .. link)
    end

    local md = c.markdown.a
    assert.is_string(md, tostring(c.markdown.b))
    assert.matches("# Products", md)
    assert.matches("## Copper Kettle", md)
    assert.truthy(md:find("[View Copper Kettle](" .. srv.url("/p/1") .. ")", 1, true), md)
    assert.is_nil(md:find("<article", 1, true))

    for _, path in ipairs { "/_/latin1", "/_/latin1?meta=1" } do
      assert.is_true(c[path].ok, path)
      assert.equals("Café latin-1", c[path].a.title, path)
      assert.equals("café déjà vu, naïve façade", c[path].a.p, path)
      assert.truthy(c[path].a.text:find("café déjà vu, naïve façade", 1, true), path)
      assert.truthy(utf8.len(c[path].a.text), "valid UTF-8")
    end
    for _, path in ipairs { "/_/sjis", "/_/sjis?meta=1" } do
      assert.is_true(c[path].ok, path)
      assert.equals("日本語", c[path].a.title, path)
      assert.equals("日本語のページです。こんにちは、世界。", c[path].a.p, path)
      assert.truthy(c[path].a.text:find("こんにちは、世界。", 1, true), path)
    end
  end)

  it("screenshots are PNGs of the viewport or the full page, PDFs start with %PDF, cookies go both ways", function()
    local r = run(srv, PRELUDE .. [[
local function png_info(bytes)
  if type(bytes) ~= "string" then return nil end
  local w, h = string.unpack(">I4>I4", bytes, 17)
  return { png = bytes:sub(1, 8) == "\137PNG\r\n\26\n", ihdr = bytes:sub(13, 16), w = w, h = h, size = #bytes }
end
return { start = { P .. "/_/links?n=150" }, retries = 0, timeout_ms = 60000,
  context = { viewport = { width = 640, height = 480 } },
  handle = function(page, req, job)
    local check = checker(job)
    assert(page:navigate(req.url))
    check("viewport", function() return png_info(page:screenshot()) end)
    check("full", function()
      return png_info(page:screenshot { full_page = true }), page:eval("document.documentElement.scrollHeight")
    end)
    check("jpeg", function()
      local bytes, err = page:screenshot { format = "jpeg", quality = 50 }
      return bytes and bytes:sub(1, 3) == "\255\216\255", err
    end)
    check("pdf", function()
      local bytes, err = page:pdf()
      return bytes and { head = bytes:sub(1, 5), eof = bytes:sub(-1024):find("%%EOF", 1, true) ~= nil, size = #bytes }, err
    end)
    check("set_cookies", function()
      return page:set_cookies { { name = "flavour", value = "oat", url = P .. "/" },
                                { name = "colour", value = "blue", url = P .. "/", httpOnly = true } }
    end)
    check("cookies", function() return page:cookies() end)
    check("sent", function()
      assert(page:navigate(P .. "/_/headers"))
      return page:eval("document.getElementById('h').textContent")
    end)
    check("document_cookie", function() return page:eval("document.cookie") end)
    check("bad_cookie", function() return page:set_cookies { { name = "x", value = "y" } } end)
  end }]])
    local c = checks(r)
    local v = c.viewport.a
    assert.is_true(v.png, "PNG signature")
    assert.equals("IHDR", v.ihdr)
    assert.equals(640, v.w)
    assert.equals(480, v.h)
    local full, scroll_height = c.full.a, c.full.b
    assert.is_true(full.png)
    assert.equals(640, full.w)
    assert.is_true(scroll_height > 480, "the page is long: " .. scroll_height)
    assert.equals(scroll_height, full.h, "the full page is captured whole")
    assert.is_true(c.jpeg.a, tostring(c.jpeg.b))
    assert.equals("%PDF-", c.pdf.a.head)
    assert.is_true(c.pdf.a.eof, "the PDF is complete")
    assert.is_true(c.pdf.a.size > 1000)

    assert.is_true(c.set_cookies.a, tostring(c.set_cookies.b))
    local jar = {}
    for _, ck in ipairs(c.cookies.a) do jar[ck.name] = ck end
    assert.equals("oat", jar.flavour.value)
    assert.equals("blue", jar.colour.value)
    assert.is_true(jar.colour.httpOnly)
    local sent = cjson.decode(c.sent.a)
    assert.matches("flavour=oat", sent.cookie)
    assert.matches("colour=blue", sent.cookie)
    assert.equals("flavour=oat", c.document_cookie.a, "an httpOnly cookie is hidden from the page")
    assert.is_true(c.bad_cookie.ok, "a cookie Chromium refuses is nil, err")
    assert.is_nil(c.bad_cookie.a)
    assert.is_string(c.bad_cookie.b)
  end)

  it("hard pages fail alone (timeout, deadline) while slow pages, 404s, redirects and bad links go on", function()
    local r = run(srv, PRELUDE .. [[
return {
  start = { P .. "/_/neverload", P .. "/_/jsloop", P .. "/_/slow?ms=1200", P .. "/_/status?code=404",
            P .. "/_/redirect?n=3&to=/", P .. "/_/badlinks" },
  retries = 0, timeout_ms = 5000, concurrency = 2, max_depth = 1,
  handle = function(page, req, job)
    local t0 = core.now()
    -- neverload has its own, shorter navigation timeout; jsloop only the request's deadline.
    local opts = req.url:find("neverload", 1, true) and { timeout_ms = 1500 } or nil
    local res, err = page:navigate(req.url, opts)
    if not res then error(err, 0) end
    local rec = { url = req.url, status = res.status, final = res.url, title = page:title(), ms = core.now() - t0 }
    if req.url:find("badlinks", 1, true) then
      rec.enqueued = {}
      local hrefs = assert(page:eval("Array.prototype.map.call(document.querySelectorAll('a'), function (a) { return a.getAttribute('href') })"))
      for _, href in ipairs(hrefs) do
        local ok, why = job:enqueue(href)
        rec.enqueued[#rec.enqueued + 1] = { href = href, ok = ok, why = why or "" }
      end
    end
    job:emit(rec)
  end,
  on_error = function(req, err, job) job:emit { failed = req.url, err = tostring(err) } end,
}]])
    local ok, failed = {}, {}
    for _, rec in ipairs(r.records) do
      if rec.failed then failed[rec.failed] = rec.err else ok[rec.url] = rec end
    end
    -- Its own 1500 ms (less when the request's deadline comes first: a slow browser start).
    assert.matches("^timeout: load not reached after %d+ ms %(.*/_/neverload%)", failed[srv.url("/_/neverload")])
    -- The script never yields the page: it fails within the request's deadline.
    local jsloop = failed[srv.url("/_/jsloop")]
    assert.is_string(jsloop)
    assert.is_truthy(jsloop:find("timeout", 1, true) or jsloop:find("deadline", 1, true), jsloop)

    local slow = ok[srv.url("/_/slow?ms=1200")]
    assert.equals(200, slow.status)
    assert.is_true(slow.ms >= 1150, "slow page took " .. slow.ms .. " ms")
    assert.equals(404, ok[srv.url("/_/status?code=404")].status)
    local redirect = ok[srv.url("/_/redirect?n=3&to=/")]
    assert.equals(200, redirect.status)
    assert.equals(srv.url("/"), redirect.final)

    local bad = ok[srv.url("/_/badlinks")]
    local verdict = {}
    for _, e in ipairs(bad.enqueued) do verdict[e.href] = e end
    for _, href in ipairs { "file:///etc/passwd", "javascript:alert(1)", "data:text/html,hi",
                            "chrome://version", "mailto:x@y" } do
      assert.is_false(verdict[href].ok, href .. " was accepted")
      assert.matches("scheme", verdict[href].why)
    end
    assert.is_true(verdict["page?id=good-1"].ok)
    assert.is_true(verdict["./page?id=good-2"].ok)
    -- The good links were crawled (depth 1), nothing else was.
    assert.equals(200, ok[srv.url("/_/page?id=good-1")].status)
    assert.equals(200, ok[srv.url("/_/page?id=good-2")].status)
    for _, e in ipairs(srv.log()) do
      assert.is_nil(e.path:find("passwd", 1, true), "fetched " .. e.path)
    end

    assert.equals(6, r.stats.pages_ok)
    assert.equals(2, r.stats.pages_failed)
    assert.equals(0, r.stats.browser_crashes)
  end)

  it("a request killed at its deadline while waiting for a page event does not hand the stuck page on", function()
    -- A task killed at its deadline while it waits in page:_event: its page (its renderer still
    -- spinning in while(true)) must be closed, not handed to the next request. Drives the
    -- primitive directly, since page:navigate ends its own wait before the deadline.
    local r = run(srv, PRELUDE .. [[
local json = require("luacrawl.json")
return { start = { P .. "/_/jsloop", P .. "/_/page?id=next" }, retries = 0, timeout_ms = 2500, concurrency = 1,
  handle = function(page, req, job)
    if req.url:find("jsloop", 1, true) then
      page:_send("Page.navigate", json.encode { url = req.url }, 2000)
      while true do page:_event(60000) end
    end
    local res, err = page:navigate(req.url)
    if not res then error(err, 0) end
    job:emit { url = req.url, status = res.status }
  end }]])
    assert.equals(1, #r.records)
    assert.equals(200, r.records[1].status)
  end)

  it("content() reads url, title, HTML and links in one call, the same as the separate calls", function()
    local r = run(srv, [[
local P = args.base
return { start = { P .. "/_/badlinks" },
  handle = function(page, req, job)
    assert(page:navigate(req.url))
    local c = assert(page:content())
    local links = assert(page:links())
    job:emit { url = c.url, same_title = c.title == page:title(), same_html = c.html == page:html(),
               links = c.links, n_links = #links, same_links = table.concat(c.links, " ") == table.concat(links, " ") }
  end }]])
    local rec = r.records[1]
    assert.matches("/_/badlinks$", rec.url)
    assert.is_true(rec.same_title)
    assert.is_true(rec.same_html)
    assert.is_true(rec.same_links)
    assert.equals(2, rec.n_links) -- only the two http(s) links of /_/badlinks
    for _, l in ipairs(rec.links) do assert.matches("^http://127%.0%.0%.1:%d+/", l) end
  end)
end)
