-- scripts_spec.lua: the ready-made scripts other than crawl.lua (spec/crawl_spec.lua has that
-- one), with real Chromium against the fixture server on 127.0.0.1: scrape.lua (one record per
-- URL of a file, on_error records for the URLs that fail) and screenshot.lua (real PNG files).
-- Every run must give back every reference it took and leave no browser behind.
local H = require("support.helpers")

-- Runs a script; checks the run ended cleanly; returns it.
local function run_script(args, opts)
  local r = H.run(args, { stats = true, timeout = (opts and opts.timeout) or 60 })
  assert.equals(0, r.code, r.stderr)
  assert.same({}, r.bad_lines)
  assert.is_table(r.stats, "no --stats file; stderr: " .. r.stderr)
  assert.equals(0, r.stats.refs_outstanding)
  assert.equals(0, r.stats.contexts_open_at_exit)
  assert.equals(0, r.stats.bad_releases)
  assert.same({}, H.chromium_left(r.profile_root))
  return r
end

local function by_url(records)
  local out = {}
  for _, rec in ipairs(records) do
    assert.is_nil(out[rec.url], "two records for " .. tostring(rec.url))
    out[rec.url] = rec
  end
  return out
end

-- Width and height of PNG bytes, or nil when they are not a PNG.
local function png_size(bytes)
  if #bytes < 24 or bytes:sub(1, 8) ~= "\137PNG\r\n\26\n" or bytes:sub(13, 16) ~= "IHDR" then
    return nil
  end
  return string.unpack(">I4I4", bytes, 17)
end

describe("scripts/scrape.lua", function()
  local srv
  before_each(function() srv = H.server() end)
  after_each(function() H.cleanup() end)

  it("emits a record per URL of the file, a 404 with its status and an unreachable URL via on_error", function()
    -- A port where nothing listens: a server's, once it has stopped.
    local gone = H.server()
    local refused = gone.url("/nothing-here")
    assert.is_true(gone.stop())
    local list = H.write(H.tmpdir() .. "/urls.txt", table.concat({
      "# pages to scrape",
      srv.url("/"),
      "",
      "  " .. srv.url("/a.html") .. "  ",
      srv.url("/missing.html"),
      refused,
    }, "\n") .. "\n")
    local r = run_script({ "run", "scripts/scrape.lua", "urls=" .. list })
    assert.equals(4, #r.records)
    local recs = by_url(r.records)
    for _, path in ipairs { "/", "/a.html" } do
      local rec = recs[srv.url(path)]
      assert.is_table(rec, "no record for " .. path)
      assert.equals(200, rec.status)
      assert.is_string(rec.title)
      assert.is_true(#rec.title > 0)
      assert.is_string(rec.text)
      assert.is_string(rec.markdown)
      assert.is_nil(rec.error)
    end
    local missing = recs[srv.url("/missing.html")]
    assert.is_table(missing, "no record for the 404")
    assert.equals(404, missing.status)
    assert.is_nil(missing.error)
    local failed = recs[refused]
    assert.is_table(failed, "no on_error record for the unreachable URL")
    assert.is_nil(failed.status)
    assert.matches("ERR_CONNECTION_REFUSED", failed.error)
    assert.equals(3, r.stats.pages_ok)
    assert.equals(1, r.stats.pages_failed)
  end)

  it("refuses to start without urls=", function()
    local r = H.run({ "run", "scripts/scrape.lua" }, { timeout = 30 })
    assert.equals(2, r.code)
    assert.matches("scrape.lua needs urls=FILE", r.stderr)
    assert.is_true(H.dir_empty(r.profile_root), "no browser was started")
  end)
end)

describe("scripts/screenshot.lua", function()
  local srv
  before_each(function() srv = H.server() end)
  after_each(function() H.cleanup() end)

  it("writes a full-page PNG per URL of a file into out=", function()
    local out = H.tmpdir() .. "/shots" -- does not exist yet: the script makes it
    local list = H.write(H.tmpdir() .. "/urls.txt", srv.url("/") .. "\n" .. srv.url("/_/big?mb=0.05") .. "\n")
    local r = run_script({ "run", "scripts/screenshot.lua", "urls=" .. list, "out=" .. out })
    assert.equals(2, #r.records)
    local heights = {}
    for _, rec in ipairs(r.records) do
      assert.equals(200, rec.status)
      assert.equals(out, rec.file:sub(1, #out))
      local bytes = assert(H.read(rec.file))
      assert.equals(rec.bytes, #bytes)
      local w, h = png_size(bytes)
      assert.is_truthy(w, rec.file .. " is not a PNG")
      assert.equals(1280, w) -- the default width=
      heights[rec.url] = h
    end
    assert.is_true(heights[srv.url("/_/big?mb=0.05")] > 800, "the long page was captured whole")
  end)

  it("takes url= and width=/height=", function()
    local out = H.tmpdir()
    local r = run_script({ "run", "scripts/screenshot.lua", "url=" .. srv.url("/a.html"), "out=" .. out,
                           "width=640", "height=480" })
    assert.equals(1, #r.records)
    local w, h = png_size(assert(H.read(r.records[1].file)))
    assert.equals(640, w)
    assert.is_true(h >= 480)
  end)
end)
