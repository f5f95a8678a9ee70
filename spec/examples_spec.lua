-- examples_spec.lua: every job in examples/ run end to end, with real Chromium, against the
-- fixture server on 127.0.0.1: each does what its header says, and each run gives back every
-- reference it took (refs_outstanding = 0) and leaves no browser behind.
local H = require("support.helpers")
local lfs = require("lfs")

-- Runs examples/NAME.lua with name=value args; checks the run ended cleanly; returns it.
local function run_example(name, args, opts)
  local argv = { "run", "examples/" .. name .. ".lua" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local r = H.run(argv, { stats = true, timeout = (opts and opts.timeout) or 60 })
  assert.equals(0, r.code, r.stderr)
  assert.same({}, r.bad_lines)
  assert.is_table(r.stats, "no --stats file; stderr: " .. r.stderr)
  assert.equals(0, r.stats.refs_outstanding)
  assert.equals(0, r.stats.contexts_open_at_exit)
  assert.equals(0, r.stats.bad_releases)
  assert.same({}, H.chromium_left(r.profile_root))
  return r
end

-- Records of r keyed by field k.
local function by(records, k)
  local out = {}
  for _, rec in ipairs(records) do
    assert.is_nil(out[rec[k]], "two records for " .. tostring(rec[k]))
    out[rec[k]] = rec
  end
  return out
end

-- The examples this file covers; the first test checks that none is left out.
local COVERED = {
  rotate_user_agents = true, login_session = true, cleanup_hook = true,
  extract_products = true, infinite_scroll = true,
}

describe("examples/", function()
  local srv
  before_each(function() srv = H.server() end)
  after_each(function() H.cleanup() end)

  it("has a spec for every example, and each starts with a header saying how to run it", function()
    local n = 0
    for file in lfs.dir(H.src .. "/examples") do
      local name = file:match("^(.+)%.lua$")
      if name then
        n = n + 1
        assert.is_true(COVERED[name] or false, "examples/" .. file .. " has no spec here")
        local text = assert(H.read(H.src .. "/examples/" .. file))
        assert.matches("^%-%- " .. name:gsub("%p", "%%%0") .. "%.lua: ", text)
        assert.matches("build/luacrawl run examples/" .. name:gsub("%p", "%%%0") .. "%.lua", text)
      end
    end
    local want = 0
    for _ in pairs(COVERED) do want = want + 1 end
    assert.equals(want, n)
  end)

  it("rotate_user_agents: a context function gives each request its agent; one context, or one per jar", function()
    for _, jar in ipairs { false, true } do
    local r = run_example("rotate_user_agents", { "url=" .. srv.url("/_/ua"), "n=6", jar and "jar=1" or nil })
    assert.equals(6, #r.records)
    local agents, distinct = {}, 0
    for _, rec in ipairs(r.records) do
      assert.equals(rec.user_agent, rec.server_saw, "what the page and the server saw differ")
      assert.is_nil(rec.user_agent:find("HeadlessChrome", 1, true), "the default agent leaked")
      if not agents[rec.user_agent] then distinct = distinct + 1 end
      agents[rec.user_agent] = (agents[rec.user_agent] or 0) + 1
    end
    assert.equals(3, distinct)
    for ua, count in pairs(agents) do assert.equals(2, count, "requests with " .. ua) end
    -- Agents are the page's emulation: one context for all, unless each has its own jar
    -- (then same options, same context: three contexts, not six).
    assert.equals(jar and 3 or 1, r.stats.contexts_created)
    assert.equals(6, r.stats.pages_ok)
    end
  end)

  it("login_session: logs in once through the form, then reads the account and its 3 order pages", function()
    local r = run_example("login_session", { "url=" .. srv.url("/") })
    local recs = by(r.records, "url")
    assert.equals(4, #r.records)
    local account = recs[srv.url("/_/account")]
    assert.is_table(account, "no record for /_/account")
    assert.equals("Welcome alice", account.heading)
    local seen_orders = {}
    for page = 1, 3 do
      local rec = recs[srv.url("/_/account/orders?page=" .. page)]
      assert.is_table(rec, "no record for orders page " .. page)
      assert.equals(200, rec.status)
      assert.equals("Orders, page " .. page, rec.heading)
      assert.equals(5, #rec.orders)
      for _, id in ipairs(rec.orders) do
        assert.is_nil(seen_orders[id], "order " .. id .. " twice")
        seen_orders[id] = true
      end
    end
    -- One login for the whole job: the session kept its cookie across requests.
    local posts = 0
    for _, e in ipairs(srv.log()) do
      if e.method == "POST" and e.path == "/_/login" then posts = posts + 1 end
    end
    assert.equals(1, posts)
    assert.matches("logged in as alice", r.stderr)
  end)

  it("login_session: a wrong password fails the request instead of crawling the login form", function()
    local r = run_example("login_session", { "url=" .. srv.url("/"), "password=wrong" })
    assert.same({}, r.records)
    assert.equals(1, r.stats.pages_failed)
    assert.matches("login refused for alice", r.stderr)
  end)

  it("cleanup_hook: closes contexts after max_uses, logs why, never touches one in use", function()
    local r = run_example("cleanup_hook", { "url=" .. srv.url("/_/links?n=16"), "max_uses=3" })
    assert.equals(17, #r.records)
    local locales = {}
    for _, rec in ipairs(r.records) do locales[rec.locale] = true end
    for _, l in ipairs { "en-US", "de-DE", "fr-FR", "ja-JP" } do
      assert.is_true(locales[l] or false, "no page seen with locale " .. l)
    end
    local decisions = 0
    for id, uses in r.stderr:gmatch("cleanup hook: closing context (%d+): served (%d+) requests") do
      decisions = decisions + 1
      assert.is_true(tonumber(uses) > 3, "context " .. id .. " closed after " .. uses .. " uses")
    end
    assert.is_true(decisions >= 4, "decisions logged: " .. decisions .. "\n" .. r.stderr)
    -- A locale used more than 3 times got a fresh context after its first one was closed.
    assert.is_true(r.stats.contexts_created >= 5, "contexts created: " .. r.stats.contexts_created)
    assert.is_nil(r.stderr:find("refused to close", 1, true), "the hook asked to close a context in use")
    assert.is_nil(r.stderr:find("policy hook", 1, true), "the hook failed or answered badly")
  end)

  it("extract_products: 10 records with names, absolute URLs and numeric prices", function()
    local r = run_example("extract_products", { "url=" .. srv.url("/_/products") })
    assert.equals(10, #r.records)
    local expected = { ["Copper Kettle"] = 12.5, ["Walnut Cutting Board"] = 34.95, ["Olive Wood Spoon"] = 9.99 }
    local names = {}
    for _, rec in ipairs(r.records) do
      assert.is_string(rec.name)
      assert.is_number(rec.price, "price of " .. tostring(rec.name))
      assert.equals(rec.price_text:gsub("[$,]", ""), string.format("%.2f", rec.price))
      local n = rec.url:match("^" .. srv.url("/p/"):gsub("%p", "%%%0") .. "(%d+)$")
      assert.is_truthy(n, "not an absolute product URL: " .. tostring(rec.url))
      assert.equals(srv.url("/_/products"), rec.source)
      names[rec.name] = rec.price
    end
    for name, price in pairs(expected) do assert.equals(price, names[name], name) end
  end)

  it("infinite_scroll: scrolls to the end and sees all 35 items", function()
    local r = run_example("infinite_scroll", { "url=" .. srv.url("/_/scroll?total=35&batch=10") })
    assert.equals(1, #r.records)
    local rec = r.records[1]
    assert.equals(10, rec.before)
    assert.equals(35, rec.items)
    assert.equals("Item 1", rec.first)
    assert.equals("Item 35", rec.last)
    -- The page fetched the three later batches itself, as a reader's scrolling made it.
    local batches = 0
    for _, e in ipairs(srv.log()) do
      if e.path:find("^/_/scroll%-items%?") then batches = batches + 1 end
    end
    assert.equals(3, batches)
  end)
end)
