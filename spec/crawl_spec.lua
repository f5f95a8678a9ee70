-- crawl_spec.lua: the main job end to end: scripts/crawl.lua over the bundled example site,
-- with real Chromium, against the site served on 127.0.0.1.
local H = require("support.helpers")
local cjson = require("cjson")

local manifest = cjson.decode(H.read(H.site_root .. "/manifest.json"))

describe("scripts/crawl.lua on the example site", function()
  local srv
  before_each(function() srv = H.site_server() end)
  after_each(function() H.cleanup() end)

  it("emits every page exactly once, with markdown and links, and releases everything", function()
    local r = H.run({ "run", "scripts/crawl.lua", "url=" .. srv.url("/"), "depth=10", "concurrency=4" },
      { stats = true, timeout = 180 })
    assert.equals(0, r.code, r.stderr)
    assert.same({}, r.bad_lines)
    local by_url = {}
    for _, rec in ipairs(r.records) do
      assert.is_nil(by_url[rec.url], "emitted twice: " .. rec.url)
      by_url[rec.url] = rec
    end
    for _, p in ipairs(manifest.pages) do
      local rec = by_url[srv.url(p.url)]
      assert.is_table(rec, "missing page " .. p.url)
      assert.equals(200, rec.status)
      assert.equals(p.title, rec.title)
      assert.equals(p.depth, rec.depth, "depth of " .. p.url)
      assert.is_string(rec.markdown)
      assert.matches(p.heading:gsub("%p", "%%%0"), rec.markdown)
      assert.is_table(rec.links)
    end
    -- The deliberate broken link is reported with its status, not lost.
    for _, m in ipairs(manifest.missing) do
      local rec = by_url[srv.url(m.url or m)]
      assert.is_table(rec, "missing page record for the 404")
      assert.equals(404, rec.status)
    end
    assert.equals(#manifest.pages + #manifest.missing, #r.records)
    -- Each page was fetched by the browser exactly once (the frontier dedupes).
    for _, p in ipairs(manifest.pages) do
      assert.equals(1, srv.count(p.url), "fetches of " .. p.url)
    end
    local s = r.stats
    assert.equals(0, s.refs_outstanding)
    assert.equals(0, s.contexts_open_at_exit)
    assert.equals(0, s.bad_releases)
    assert.equals(#r.records, s.pages_ok)
    assert.equals(0, s.pages_failed)
    assert.equals(1, s.browser_starts)
    assert.is_true(s.pages_reused > 0, "pages are reused")
    assert.matches("done: %d+ pages ok", r.stderr)
    assert.same({}, H.chromium_left(r.profile_root))
    assert.is_true(H.dir_empty(r.profile_root))
  end)

  it("honours depth= and max=", function()
    local r = H.run({ "run", "scripts/crawl.lua", "url=" .. srv.url("/"), "depth=1" }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    for _, rec in ipairs(r.records) do assert.is_true(rec.depth <= 1) end
    local expected = 0
    for _, p in ipairs(manifest.pages) do if p.depth <= 1 then expected = expected + 1 end end
    assert.equals(expected, #r.records)
    r = H.run({ "run", "scripts/crawl.lua", "url=" .. srv.url("/"), "max=5" }, { stats = true })
    assert.equals(0, r.code, r.stderr)
    assert.equals(5, #r.records)
    assert.equals(0, r.stats.refs_outstanding)
  end)

  it("writes records to -o FILE as whole JSON lines", function()
    local r = H.run({ "run", "scripts/crawl.lua", "url=" .. srv.url("/"), "depth=1" }, { output = true })
    assert.equals(0, r.code, r.stderr)
    assert.equals("", r.stdout)
    assert.same({}, r.bad_lines)
    assert.is_true(#r.records > 5)
  end)
end)
