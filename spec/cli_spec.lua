-- cli_spec.lua: the command line. Bad input gets one clear line on stderr, a non-zero exit,
-- and starts no browser (the run's profile root stays empty and no Chromium names it).
local H = require("support.helpers")

local function lines(s)
  local out = {}
  for l in (s or ""):gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- A bad-input run: exit 2, exactly one stderr line starting "luacrawl: " that matches `pat`,
-- nothing on stdout, no browser started.
local function rejects(args, pat)
  local r = H.run(args, { timeout = 30 })
  assert.equals(2, r.code, "exit code; stderr: " .. r.stderr)
  local ls = lines(r.stderr)
  assert.equals(1, #ls, "one line on stderr, got: " .. r.stderr)
  assert.matches("^luacrawl: ", ls[1])
  assert.matches(pat, ls[1])
  assert.equals("", r.stdout)
  assert.is_true(H.dir_empty(r.profile_root), "no browser profile was made")
  assert.same({}, H.chromium_left(r.profile_root))
  return ls[1]
end

describe("luacrawl CLI", function()
  after_each(function() H.cleanup() end)

  it("prints help and version", function()
    local r = H.run({ "--help" })
    assert.equals(0, r.code)
    assert.matches("usage: luacrawl run SCRIPT", r.stdout)
    r = H.run({ "--version" })
    assert.equals(0, r.code)
    assert.matches("^luacrawl %d+%.%d+%.%d+\n$", r.stdout)
  end)

  it("rejects a missing script", function()
    rejects({ "run", "/nonexistent/job.lua" }, "cannot read script '/nonexistent/job.lua'")
  end)

  it("rejects an unknown option and a bare word", function()
    rejects({ "--frobnicate" }, "unknown option '%-%-frobnicate'")
    local s = H.script("return {}")
    rejects({ "run", s, "--nope" }, "unknown option '%-%-nope'")
    rejects({ "run", s, "extra" }, "'extra' is not a name=value argument")
    rejects({ "run" }, "run needs a SCRIPT")
    rejects({ "run", s, "-o" }, "option '%-o' needs a value")
  end)

  it("reports a syntax error with file and line", function()
    local s = H.script("return {\n  start = 'http://127.0.0.1:1/',\n  handle = function( end,\n}\n")
    local line = rejects({ "run", s }, ":3: ")
    assert.matches(s:gsub("%p", "%%%0"), line)
  end)

  it("reports an error raised by the script with its location and a traceback", function()
    local s = H.script("local x = nil\nreturn x.field\n")
    local r = H.run({ "run", s }, { timeout = 30 })
    assert.equals(2, r.code)
    local ls = lines(r.stderr)
    assert.matches("^luacrawl: error in .*:2: attempt to index", ls[1])
    assert.matches("stack traceback:", r.stderr)
    assert.is_true(H.dir_empty(r.profile_root), "no browser profile was made")
  end)

  local bad_jobs = {
    { "a script that returns nothing", "return nil", "must return a job table" },
    { "a job without handle", "return { start = 'http://127.0.0.1:1/' }", "job.handle must be a function" },
    { "concurrency = 0", "return { start = 'http://127.0.0.1:1/', concurrency = 0, handle = function() end }",
      "job.concurrency must be an integer >= 1 %(got 0%)" },
    { "max_contexts = -1", "return { start = 'http://127.0.0.1:1/', policy = { max_contexts = -1 }, handle = function() end }",
      "policy.max_contexts must be an integer from 0" },
    { "force = 'yes'", "return { start = 'http://127.0.0.1:1/', policy = { force = 'yes' }, handle = function() end }",
      "policy.force must be a boolean" },
    { "a hook that is not a function", "return { start = 'http://127.0.0.1:1/', policy = { on_cleanup = 42 }, handle = function() end }",
      "policy.on_cleanup must be a function" },
    { "a start URL that is not a URL", "return { start = 'not a url', handle = function() end }",
      "start URL 'not a url' is not a crawlable URL" },
    { "a file: start URL", "return { start = 'file:///etc/passwd', handle = function() end }",
      "start URL 'file:///etc/passwd' is not a crawlable URL" },
    { "a misspelt field", "return { start = 'http://127.0.0.1:1/', concurency = 2, handle = function() end }",
      "unknown job field 'concurency' %(did you mean 'concurrency'%?%)" },
    { "a bad context option", "return { start = 'http://127.0.0.1:1/', context = { block = { 'pictures' } }, handle = function() end }",
      "unknown resource type 'pictures'" },
    { "an unknown policy field", "return { start = 'http://127.0.0.1:1/', policy = { max_context = 2 }, handle = function() end }",
      "policy has an unknown field 'max_context'" },
    -- The policy table is user Lua: its metamethods run inside a protected call, and a value
    -- in a message is described without running its __tostring.
    { "a policy table whose __index raises",
      "return { start = 'http://127.0.0.1:1/', handle = function() end,\n" ..
      "  policy = setmetatable({}, { __index = function(t, k) error('no ' .. k .. '\\nhere') end }) }",
      "^luacrawl: policy: reading policy%.max_contexts raised an error: .*:2: no max_contexts here$" },
    { "a policy table whose __index raises a non-string",
      "return { start = 'http://127.0.0.1:1/', handle = function() end,\n" ..
      "  policy = setmetatable({}, { __index = function() error(setmetatable({}, { __tostring = error })) end }) }",
      "^luacrawl: policy: reading policy%.max_contexts raised an error: %(an error object that is a table%)$" },
    { "a policy value whose __tostring raises",
      "return { start = 'http://127.0.0.1:1/', handle = function() end,\n" ..
      "  policy = { idle_ms = setmetatable({}, { __tostring = function() error('tostring ran') end }) } }",
      "^luacrawl: policy%.idle_ms must be an integer from 0 to %d+ %(got a table%)$" },
    { "a policy value that is a table whose __index raises",
      "return { start = 'http://127.0.0.1:1/', handle = function() end,\n" ..
      "  policy = { force = setmetatable({}, { __index = function() error('index ran') end }) } }",
      "^luacrawl: policy%.force must be a boolean %(got a table%)$" },
    { "a policy key that is not a name",
      "return { start = 'http://127.0.0.1:1/', handle = function() end,\n" ..
      "  policy = { [setmetatable({}, { __tostring = function() error('tostring ran') end })] = 1 } }",
      "^luacrawl: policy has a key that is not a field name %(a table%)$" },
  }
  for _, case in ipairs(bad_jobs) do
    it("rejects " .. case[1] .. " before starting a browser", function()
      rejects({ "run", H.script(case[2]) }, case[3])
    end)
  end

  it("passes name=value arguments to the script as args", function()
    local s = H.script("error('got ' .. args.a .. ' and ' .. args.b, 0)")
    local r = H.run({ "run", s, "a=1", "b=x=y" }, { timeout = 30 })
    assert.equals(2, r.code)
    assert.matches("^luacrawl: error in .*: got 1 and x=y\n", r.stderr)
  end)

  it("rejects a browser path that does not exist", function()
    local s = H.script("return { start = 'http://127.0.0.1:1/', handle = function() end }")
    rejects({ "run", s, "--browser", "/nonexistent/chrome" }, "/nonexistent/chrome")
  end)
end)
