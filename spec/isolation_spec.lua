-- isolation_spec.lua: a hostile page cannot tamper with the engine's own JavaScript or lift
-- its limits (issue 9, item 3). The page overrides JSON.stringify, Array.prototype.toJSON,
-- String and RegExp methods, Object.prototype getters, document.querySelectorAll and DOM
-- getters; links(), content(), markdown(), query(), extract(), html(), title() still read
-- the true DOM, and page:eval's max_bytes holds on the engine's side of the connection:
-- the oversized reply fails that command alone, and the connection goes on.
local H = require("support.helpers")

local HOSTILE = [[<!doctype html>
<html><head><title>Real title</title></head>
<body>
<h1>Hostile page</h1>
<p class="item" data-n="1">one</p>
<p class="item" data-n="2">two</p>
<a href="/a.html">A</a> <a href="/b.html#frag">B</a> <a href="/a.html">A again</a>
<script>
(function () {
  var P = location.origin;
  window.big = 'x'.repeat(2 * 1024 * 1024);
  window.bigObject = { payload: window.big };
  window.bigList = [window.big];
  JSON.stringify = function () { return '1'; };
  Array.prototype.toJSON = function () { return 'tiny'; };
  // seen[url] in a links walker finds these and skips the page's real links
  Object.defineProperty(Object.prototype, P + '/a.html', { get: function () { return 1; }, configurable: true });
  Object.defineProperty(Object.prototype, P + '/b.html', { get: function () { return 1; }, configurable: true });
  Object.defineProperty(Object.prototype, 'ok', { get: function () { return false; }, set: function () {}, configurable: true });
  var fakeList = function () { var l = [document.createElement('a')]; l[0].href = 'http://evil.invalid/'; return l; };
  Document.prototype.querySelectorAll = fakeList;
  Element.prototype.querySelectorAll = fakeList;
  document.querySelectorAll = fakeList;
  Document.prototype.querySelector = function () { return null; };
  Element.prototype.querySelector = function () { return null; };
  Object.defineProperty(Document.prototype, 'title', { get: function () { return 'Fake title'; }, configurable: true });
  Object.defineProperty(HTMLElement.prototype, 'innerText', { get: function () { return 'fake text'; }, configurable: true });
  Object.defineProperty(Element.prototype, 'outerHTML', { get: function () { return '<html>fake</html>'; }, configurable: true });
  Object.defineProperty(Element.prototype, 'innerHTML', { get: function () { return 'fake html'; }, configurable: true });
  String.prototype.trim = function () { return 'fake'; };
  String.prototype.split = function () { return ['http://evil.invalid/']; };
  RegExp.prototype.test = function () { return true; };
  Array.prototype.push = function () { return 0; };
  window.__luacrawl_markdown = function () { return { ok: true, markdown: 'fake markdown' }; };
})();
</script>
</body></html>
]]

describe("the engine's JavaScript on a hostile page", function()
  after_each(function() H.cleanup() end)

  it("reads the true DOM and holds eval's max_bytes whatever the page overrides", function()
    local root = H.tmpdir()
    H.write(root .. "/hostile.html", HOSTILE)
    H.write(root .. "/a.html", "<title>A</title><p>a</p>")
    H.write(root .. "/b.html", "<title>B</title><p>b</p>")
    local srv = H.server(root)
    local r = H.run_job(srv, [[
local P = args.base
local core = require("luacrawl.core")
return { start = { P .. "/hostile.html" }, retries = 0, timeout_ms = 60000,
  handle = function(page, req, job)
    local function check(name, fn)
      local t0 = core.now()
      local ok, a, b = pcall(fn)
      job:emit { check = name, ok = ok, a = a, b = b, ms = core.now() - t0 }
    end
    assert(page:navigate(req.url))
    check("tampered", function() return page:eval("JSON.stringify({a: 1}) + ':' + document.title") end)
    check("links", function() return page:links() end)
    check("content", function()
      local c, err = page:content()
      if not c then return nil, err end
      return { title = c.title, links = c.links, real_html = c.html:find("<h1>Hostile page</h1>", 1, true) ~= nil }
    end)
    check("title", function() return page:title() end)
    check("html", function() local h = page:html(); return h and h:find("<h1>Hostile page</h1>", 1, true) ~= nil end)
    check("text", function() return page:text() end)
    check("query", function() return page:query(".item") end)
    check("extract", function() return page:extract { base = ".item", fields = { text = "", n = { "", attr = "data-n", type = "number" } } } end)
    check("markdown", function() return page:markdown() end)
    check("eval_object", function() return page:eval("bigObject", { max_bytes = 1000 }) end)
    check("eval_list", function() return page:eval("bigList", { max_bytes = 1000 }) end)
    check("eval_after", function() return page:eval("6 * 7") end)
    check("eval_small", function() return page:eval("({ n: 1, s: 'ok' })", { max_bytes = 1000 }) end)
    -- Without max_bytes nothing within the default limit is refused (non-ASCII: 6 bytes each).
    check("eval_non_ascii", function() return page:eval("'\\u00e9'.repeat(100000)") end)
    check("links_after", function() return page:links() end)
    -- The engine's world is made again after a navigation.
    assert(page:navigate(P .. "/a.html"))
    check("title_next", function() return page:title() end)
    check("links_next", function() return page:links() end)
  end }]], { timeout = 120 })
    local c = H.checks(r)
    local P = "http://127.0.0.1:" .. srv.port
    -- The page really is hostile in its own world.
    assert.equals("1:Fake title", c.tampered.a)
    for _, k in ipairs { "eval_object", "eval_list" } do
      assert.is_true(c[k].ok, k .. " raised")
      assert.is_nil(c[k].a, k .. " got the 2 MB value through a 1000-byte limit")
      assert.equals("eval result too large: reply exceeds max_bytes (1000)", c[k].b)
    end
    assert.same({ P .. "/a.html", P .. "/b.html" }, c.links.a)
    assert.same({ title = "Real title", links = { P .. "/a.html", P .. "/b.html" }, real_html = true }, c.content.a)
    assert.equals("Real title", c.title.a)
    assert.is_true(c.html.a)
    assert.matches("Hostile page", c.text.a)
    assert.is_nil(c.text.a:find("fake", 1, true))
    assert.equals(2, #c.query.a, tostring(c.query.b))
    assert.equals("one", c.query.a[1].text)
    assert.equals("two", c.query.a[2].text)
    assert.equals("1", c.query.a[1].attrs["data-n"])
    assert.same({ { text = "one", n = 1 }, { text = "two", n = 2 } }, c.extract.a)
    assert.is_string(c.markdown.a, tostring(c.markdown.b))
    assert.matches("Hostile page", c.markdown.a)
    assert.is_nil(c.markdown.a:find("fake", 1, true))
    assert.equals(42, c.eval_after.a, "the connection went on")
    assert.same({ n = 1, s = "ok" }, c.eval_small.a)
    assert.equals(string.rep("\u{e9}", 100000), c.eval_non_ascii.a)
    assert.same({ P .. "/a.html", P .. "/b.html" }, c.links_after.a)
    assert.equals("A", c.title_next.a)
    assert.same({}, c.links_next.a)
    assert.equals(1, r.stats.browser_starts, "one browser connection for the whole run")
  end)
end)
