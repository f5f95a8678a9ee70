-- markdown_spec.lua: page:markdown() through the engine, against the expected output of the
-- fixtures in spec/fixtures/markdown. Each NAME.html is served on 127.0.0.1 and read by one
-- job; its page:markdown() must equal NAME.md and, where NAME.main_only.md exists, its
-- page:markdown{ main_only = true } must equal that, exactly (and NAME.svg_text.md
-- page:markdown{ svg_text = true }). The expected files are what
-- spec/support/md_check.sh checks offline (the in-page script alone, in a bare Chromium);
-- this spec checks that the engine loads and calls that script the same way.
--
-- The fixtures carry a <base href> on example.com, so their images and links name hosts on
-- the internet. The job's context blocks images, media, fonts and stylesheets and sends
-- everything that is not loopback to a dead proxy: nothing leaves the machine.
local H = require("support.helpers")
local lfs = require("lfs")

local DIR = H.src .. "/spec/fixtures/markdown"

-- The fixture names (NAME of NAME.html), sorted, and which have a main_only or svg_text
-- expectation.
local names, main_only, svg_text = {}, {}, {}
for file in lfs.dir(DIR) do
  local name = file:match("^(.+)%.html$")
  if name then names[#names + 1] = name end
end
table.sort(names)
for _, name in ipairs(names) do
  main_only[name] = H.exists(DIR .. "/" .. name .. ".main_only.md")
  svg_text[name] = H.exists(DIR .. "/" .. name .. ".svg_text.md")
end

local JOB = [[
local start = {}
for name in args.names:gmatch("[^,]+") do start[#start + 1] = args.base .. name .. ".html" end
local main_only = {}
for name in (args.main_only or ""):gmatch("[^,]+") do main_only[name] = true end
local svg_text = {}
for name in (args.svg_text or ""):gmatch("[^,]+") do svg_text[name] = true end
return {
  start = start,
  max_depth = 0,
  concurrency = 4,
  retries = 0,
  context = { block = { "image", "media", "font", "stylesheet" }, proxy = "http://127.0.0.1:9" },
  handle = function(page, req, job)
    local res = assert(page:navigate(req.url))
    local name = req.url:match("([^/]+)%.html$")
    local md, err = page:markdown()
    local rec = { name = name, status = res.status, markdown = md, error = err }
    if main_only[name] then
      rec.main_only, rec.main_only_error = page:markdown { main_only = true }
    end
    if svg_text[name] then
      rec.svg_text, rec.svg_text_error = page:markdown { svg_text = true }
    end
    job:emit(rec)
  end,
}
]]

describe("page:markdown() on spec/fixtures/markdown", function()
  local run, recs

  setup(function()
    assert.is_true(#names > 0, "no fixtures in " .. DIR)
    local srv = H.server(DIR)
    local with_main, with_svg = {}, {}
    for _, name in ipairs(names) do
      if main_only[name] then with_main[#with_main + 1] = name end
      if svg_text[name] then with_svg[#with_svg + 1] = name end
    end
    run = H.run({ "run", H.script(JOB), "base=" .. srv.url("/"), "names=" .. table.concat(names, ","),
                  "main_only=" .. table.concat(with_main, ","), "svg_text=" .. table.concat(with_svg, ",") },
                { stats = true, timeout = 90 })
    recs = {}
    for _, rec in ipairs(run.records) do recs[rec.name] = rec end
  end)

  teardown(function() H.cleanup() end)

  it("reads every fixture in one clean run", function()
    assert.equals(0, run.code, run.stderr)
    assert.same({}, run.bad_lines)
    assert.equals(#names, #run.records)
    assert.equals(0, run.stats.refs_outstanding)
    assert.equals(0, run.stats.contexts_open_at_exit)
    assert.equals(0, run.stats.pages_failed)
    assert.same({}, H.chromium_left(run.profile_root))
  end)

  for _, name in ipairs(names) do
    it(name .. ".md", function()
      local rec = recs[name]
      assert.is_table(rec, "no record for " .. name .. "; stderr: " .. run.stderr)
      assert.equals(200, rec.status)
      assert.is_nil(rec.error)
      assert.equals(H.read(DIR .. "/" .. name .. ".md"), rec.markdown .. "\n")
    end)
    if main_only[name] then
      it(name .. ".main_only.md", function()
        local rec = recs[name]
        assert.is_table(rec, "no record for " .. name .. "; stderr: " .. run.stderr)
        assert.is_nil(rec.main_only_error)
        assert.equals(H.read(DIR .. "/" .. name .. ".main_only.md"), rec.main_only .. "\n")
      end)
    end
    if svg_text[name] then
      it(name .. ".svg_text.md", function()
        local rec = recs[name]
        assert.is_table(rec, "no record for " .. name .. "; stderr: " .. run.stderr)
        assert.is_nil(rec.svg_text_error)
        assert.equals(H.read(DIR .. "/" .. name .. ".svg_text.md"), rec.svg_text .. "\n")
      end)
    end
  end
end)
