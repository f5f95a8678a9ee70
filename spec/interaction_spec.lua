-- interaction_spec.lua: clicks, typing, keys and scrolling as real Input.* events (the page
-- sees isTrusted events), and extraction (page:query, page:extract), with real Chromium
-- against the fixture server's login form, infinite scroll and product list.
local H = require("support.helpers")
local run, checks = H.run_job, H.checks



local PRELUDE = [[
local P = args.base
local core = require("luacrawl.core")
local function checker(job)
  return function(name, fn)
    local ok, a, b = pcall(fn)
    job:emit { check = name, ok = ok, a = a, b = b }
  end
end
-- Counts the trusted (real input) events of some types on the document, from now on.
local function count_trusted(page, types)
  return page:eval("(function (types) { window.__trusted = {}; types.forEach(function (t) {"
    .. " document.addEventListener(t, function (e) { if (e.isTrusted) window.__trusted[t] = (window.__trusted[t] || 0) + 1 }, true) }); return true })("
    .. require("luacrawl.json").encode(types) .. ")")
end
]]

-- The products /_/products lists (spec/support/server.py PRODUCTS).
local PRODUCTS = {
  { "Copper Kettle", 12.50 }, { "Linen Apron", 19.00 }, { "Walnut Cutting Board", 34.95 },
  { "Enamel Mug", 8.25 }, { "Cast Iron Skillet", 42.00 }, { "Bamboo Whisk", 5.75 },
  { "Stoneware Bowl", 15.40 }, { "Glass Teapot", 27.80 }, { "Olive Wood Spoon", 9.99 },
  { "Steel Colander", 21.10 },
}

describe("page interaction", function()
  local srv
  before_each(function() srv = H.server() end)
  after_each(function() H.cleanup() end)

  it("logs in through /_/login with type + click, and with type + Enter", function()
    local r = run(srv, PRELUDE .. [[
return { start = { P .. "/_/login" }, retries = 0, timeout_ms = 60000,
  handle = function(page, req, job)
    local check = checker(job)
    assert(page:navigate(req.url))
    check("wrong", function()
      assert(page:type("input[name=user]", "alice"))
      assert(page:type("input[name=password]", "guess"))
      assert(page:click("button[type=submit]"))
      local ok, err = page:wait_for("#error", { timeout_ms = 5000 })
      return { ok = ok, err = err, url = page:url() }
    end)
    check("typed", function()
      count_trusted(page, { "keydown", "keyup", "mousedown", "click" })
      assert(page:type("input[name=user]", "alice"))
      assert(page:type("input[name=password]", "secret"))
      return page:eval("({ user: document.querySelector('input[name=user]').value,"
        .. " password: document.querySelector('input[name=password]').value, trusted: window.__trusted })")
    end)
    check("click", function()
      local ok, err = page:click("button[type=submit]")
      local seen, werr = page:wait_for("#welcome", { timeout_ms = 5000 })
      return { click = ok, err = err, seen = seen, werr = werr, url = page:url(), title = page:title(),
               welcome = page:eval("document.getElementById('welcome').textContent") }
    end)
    check("session", function()
      for _, c in ipairs(assert(page:cookies())) do
        if c.name == "session" then return { httpOnly = c.httpOnly, len = #c.value } end
      end
    end)
    check("logout", function()
      local res = assert(page:navigate(P .. "/_/logout"))
      return res.url
    end)
    check("enter", function()
      assert(page:type("input[name=user]", "alice"))
      assert(page:type("input[name=password]", "secret"))
      local ok, err = page:press("Enter")
      local seen, werr = page:wait_for("#welcome", { timeout_ms = 5000 })
      return { press = ok, err = err, seen = seen, werr = werr, url = page:url() }
    end)
    check("orders", function()
      local res = assert(page:navigate(P .. "/_/account/orders?page=2"))
      return { status = res.status, n = #assert(page:query("li.order")) }
    end)
    check("no_element", function() return page:click("#no-such-button") end)
    check("no_type_target", function() return page:type("#no-such-input", "x") end)
    check("unknown_key", function() return page:press("NoSuchKey") end)
    check("misuse", function() return page:click(42) end)
  end }]])
    local c = checks(r)
    assert.is_true(c.wrong.a.ok, tostring(c.wrong.a.err))
    assert.equals(srv.url("/_/login"), c.wrong.a.url)

    assert.equals("alice", c.typed.a.user)
    assert.equals("secret", c.typed.a.password)
    -- Real key and mouse events: one keydown and keyup per character, a trusted click per field.
    local trusted = c.typed.a.trusted
    assert.equals(11, trusted.keydown)
    assert.equals(11, trusted.keyup)
    assert.equals(2, trusted.mousedown)
    assert.equals(2, trusted.click)

    assert.is_true(c.click.a.click, tostring(c.click.a.err))
    assert.is_true(c.click.a.seen, tostring(c.click.a.werr))
    assert.equals(srv.url("/_/account"), c.click.a.url)
    assert.equals("Account", c.click.a.title)
    assert.equals("Welcome alice", c.click.a.welcome)
    assert.is_true(c.session.a.httpOnly)
    assert.equals(32, c.session.a.len)

    assert.equals(srv.url("/_/login"), c.logout.a)
    assert.is_true(c.enter.a.press, tostring(c.enter.a.err))
    assert.is_true(c.enter.a.seen, tostring(c.enter.a.werr))
    assert.equals(srv.url("/_/account"), c.enter.a.url)
    assert.same({ status = 200, n = 5 }, c.orders.a)

    -- Three form posts reached the server: the wrong one, the click, the Enter key.
    local posts = 0
    for _, e in ipairs(srv.log()) do
      if e.method == "POST" and e.path == "/_/login" then posts = posts + 1 end
    end
    assert.equals(3, posts)

    assert.is_nil(c.no_element.a)
    assert.matches("no element matches #no%-such%-button", c.no_element.b)
    assert.is_nil(c.no_type_target.a)
    assert.matches("no element matches", c.no_type_target.b)
    assert.is_nil(c.unknown_key.a)
    assert.matches("unknown key NoSuchKey", c.unknown_key.b)
    assert.is_false(c.misuse.ok)
  end)

  it("scrolls an infinite list to its end with real wheel events", function()
    local r = run(srv, PRELUDE .. [[
local COUNT = "document.querySelectorAll('li.item').length"
return { start = { P .. "/_/scroll?total=35&batch=10" }, retries = 0, timeout_ms = 60000,
  handle = function(page, req, job)
    local check = checker(job)
    check("one_step", function()
      assert(page:navigate(req.url))
      local before = page:eval(COUNT)
      local res, err = page:scroll { max_steps = 1 }
      return { before = before, res = res, err = err, after = page:eval(COUNT) }
    end)
    check("to_bottom", function()
      assert(page:navigate(req.url))
      count_trusted(page, { "wheel" })
      local res, err = page:scroll { to_bottom = true, max_steps = 40 }
      return { res = res, err = err, count = page:eval(COUNT),
               last = page:eval("document.querySelector('li.item:last-child').textContent"),
               status = page:eval("document.getElementById('status').textContent"),
               done = page:eval("document.body.getAttribute('data-done')"),
               wheel = page:eval("window.__trusted.wheel || 0") }
    end)
    -- The second batch takes 1.5 s to come: the bottom is not the end while one is on its way.
    check("slow_batches", function()
      assert(page:navigate(P .. "/_/scroll?total=20&batch=10&delay=1500"))
      local res, err = page:scroll { to_bottom = true, max_steps = 40 }
      return { res = res, err = err, count = page:eval(COUNT) }
    end)
  end }]])
    local c = checks(r)
    assert.equals(10, c.one_step.a.before)
    assert.equals(1, c.one_step.a.res.steps)
    assert.is_true(c.one_step.a.after < 35, "one step does not read the whole list")

    local all = c.to_bottom.a
    assert.is_table(all.res, tostring(all.err))
    assert.equals(35, all.count)
    assert.equals("Item 35", all.last)
    assert.equals("loaded 35 of 35", all.status)
    assert.equals("1", all.done)
    assert.is_true(all.res.steps < 40, "stopped at the bottom, not at max_steps")
    assert.is_true(all.wheel >= all.res.steps, "trusted wheel events: " .. all.wheel)
    assert.is_table(c.slow_batches.a.res, tostring(c.slow_batches.a.err))
    assert.equals(20, c.slow_batches.a.count)
    -- The page fetched the rest in batches: items 11-20, 21-30, 31-35.
    for _, from in ipairs { 11, 21, 31 } do
      local n = 0
      for _, e in ipairs(srv.log()) do
        if e.path:find("^/_/scroll%-items%?from=" .. from .. "&") then n = n + 1 end
      end
      assert.is_true(n >= 1, "batch from " .. from .. " fetched")
    end
  end)

  it("query and extract read the product list as records", function()
    local r = run(srv, PRELUDE .. [[
return { start = { P .. "/_/products" }, retries = 0, timeout_ms = 60000,
  handle = function(page, req, job)
    local check = checker(job)
    assert(page:navigate(req.url))
    check("query", function() return page:query("article.item a") end)
    check("extract", function()
      return page:extract { base = "article.item", fields = {
        title = "h2", url = { "a", attr = "href" }, price = { ".price", type = "number" },
        label = "a", missing = ".no-such-thing" } }
    end)
    check("no_base", function() return page:extract { fields = { heading = "h1", count = { "h1", type = "number" } } } end)
    check("none", function() return page:extract { base = "section.nothing", fields = { t = "h2" } } end)
    check("empty_query", function() return page:query("table") end)
    check("bad_selector", function() return page:query("[[[") end)
    check("misuse", function() return page:extract { base = "article" } end)
  end }]])
    local c = checks(r)
    local links = c.query.a
    assert.equals(10, #links)
    assert.equals("View Copper Kettle", links[1].text)
    assert.equals("View Copper Kettle", links[1].html)
    assert.same({ href = "/p/1" }, links[1].attrs)
    assert.same({ href = "/p/10" }, links[10].attrs)

    local recs = c.extract.a
    assert.equals(10, #recs)
    for i, p in ipairs(PRODUCTS) do
      local rec = recs[i]
      assert.equals(p[1], rec.title)
      assert.equals(srv.url("/p/" .. i), rec.url, "an absolute URL")
      assert.equals("number", type(rec.price))
      assert.is_true(math.abs(rec.price - p[2]) < 1e-9, p[1] .. ": " .. tostring(rec.price))
      assert.equals("View " .. p[1], rec.label)
      assert.is_nil(rec.missing)
    end
    assert.same({ { heading = "Products" } }, c.no_base.a)
    assert.same({}, c.none.a)
    assert.same({}, c.empty_query.a)
    assert.is_nil(c.bad_selector.a)
    assert.matches("bad selector", c.bad_selector.b)
    assert.is_false(c.misuse.ok)
    assert.matches("page:extract: expects", c.misuse.a)
  end)
end)
