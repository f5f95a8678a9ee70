-- luacrawl.inpage: builds the JavaScript that luacrawl evaluates inside a
-- page for a feature (page:markdown), from the npm libraries the build
-- installs (js/package.json, js/package-lock.json -> <js dir>/node_modules)
-- and the glue in lib/luacrawl/js/.
--
-- The script for a feature is one expression statement:
--   (function () {
--     if (window.__luacrawl_<feature>) return;      -- cheap on a second run
--     var luacrawl_libs = {};
--     luacrawl_libs["turndown"] = (function () { <CommonJS shim> ... })();
--     ...
--     <glue: defines window.__luacrawl_<feature>>
--   })();
-- Every library runs inside its own function with a local `module`,
-- `exports`, `define` and `require`, so it defines no page globals and a
-- page's own AMD loader or `module` global cannot capture it. The only
-- global the script defines is window.__luacrawl_<feature>.
--
-- The JS dir is, first found: $LUACRAWL_JS, inpage.js_dir (the engine sets
-- it to the build's js dir), "build/js" relative to the working directory.

local inpage = {}

--- Where the engine's build installed the npm packages; the engine sets it.
inpage.js_dir = nil

-- What each feature evaluates: npm files (relative to the JS dir), in order,
-- then the glue (relative to lib/luacrawl/js/), and the global it defines.
local features = {
  markdown = {
    libs = {
      { name = "turndown",
        path = "node_modules/turndown/lib/turndown.browser.umd.js" },
      { name = "@joplin/turndown-plugin-gfm",
        path = "node_modules/@joplin/turndown-plugin-gfm/lib/turndown-plugin-gfm.cjs.js" },
      { name = "@mozilla/readability",
        path = "node_modules/@mozilla/readability/Readability.js" },
    },
    glue = "markdown.js",
    global = "__luacrawl_markdown",
  },
}

-- Built scripts, by feature name and JS dir; failures are not cached.
local cache = {}

-- The directory holding this file, with a trailing slash, or nil.
local function own_dir()
  local source = debug.getinfo(1, "S").source
  if source:sub(1, 1) == "@" then
    return source:sub(2):match("^(.*[/\\])") or "./"
  end
  local path = package.searchpath("luacrawl.inpage", package.path)
  return path and (path:match("^(.*[/\\])") or "./") or nil
end

-- The directory of the npm packages.
local function js_dir()
  local env = os.getenv("LUACRAWL_JS")
  if env and env ~= "" then return env end
  return inpage.js_dir or "build/js"
end

-- The contents of path, or nil and the "not installed" message.
local function read(path)
  local file = io.open(path, "rb")
  if not file then
    return nil, "in-page JavaScript not installed: " .. path .. " (run make)"
  end
  local text = file:read("a")
  file:close()
  if not text then
    return nil, "in-page JavaScript unreadable: " .. path
  end
  return text
end

-- The source of a CommonJS, UMD or plain script file made into an
-- expression whose value is its module.exports.
local function wrap_commonjs(text)
  return "(function () {\n"
    .. "var module = { exports: {} }, exports = module.exports, define, require;\n"
    .. text
    .. "\n;return module.exports;\n})()"
end

local json_escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

-- JSON (and so JavaScript) for a string, boolean or finite number, or nil.
local function json_scalar(value)
  local kind = type(value)
  if kind == "boolean" then return tostring(value) end
  if kind == "number" then
    if value ~= value or value == math.huge or value == -math.huge then return nil end
    return math.type(value) == "integer" and ("%d"):format(value) or ("%.17g"):format(value)
  end
  if kind == "string" then
    local escaped = value:gsub('[%c"\\]', function (c)
      return json_escapes[c] or ("\\u%04x"):format(c:byte())
    end)
    return '"' .. escaped .. '"'
  end
  return nil
end

--- The JavaScript source to evaluate in a page for feature `name`.
-- Returns the source, or nil and a message when a file is missing
-- ("in-page JavaScript not installed: <path> (run make)"). Raises only on
-- misuse: `name` not a known feature.
function inpage.script(name)
  local feature = type(name) == "string" and features[name] or nil
  if not feature then
    error("inpage.script: unknown feature " .. tostring(name), 2)
  end
  local dir = js_dir()
  local key = name .. "\0" .. dir
  if cache[key] then return cache[key] end

  local parts = {
    "/* luacrawl in-page script: " .. name .. " (built by luacrawl.inpage) */\n",
    "(function () {\n",
    "if (window." .. feature.global .. ") return;\n",
    "var luacrawl_libs = {};\n",
  }
  for _, lib in ipairs(feature.libs) do
    local text, err = read(dir .. "/" .. lib.path)
    if not text then return nil, err end
    parts[#parts + 1] = ("/* %s: %s */\nluacrawl_libs[%s] = "):format(lib.name, lib.path, json_scalar(lib.name))
    parts[#parts + 1] = wrap_commonjs(text)
    parts[#parts + 1] = ";\n"
  end
  local glue_dir = own_dir()
  if not glue_dir then
    return nil, "in-page JavaScript not installed: cannot locate lib/luacrawl/js"
  end
  local glue, err = read(glue_dir .. "js/" .. feature.glue)
  if not glue then return nil, err end
  parts[#parts + 1] = glue
  parts[#parts + 1] = "\n})();\n"

  local script = table.concat(parts)
  cache[key] = script
  return script
end

--- The JavaScript expression that calls feature `name` with `opts`, e.g.
-- `window.__luacrawl_markdown({"main_only":true})`; evaluate it (with
-- returnByValue) after inpage.script(name). `opts` is nil or a table whose
-- keys are strings and values strings, booleans or numbers. Raises on
-- misuse: unknown feature, or opts of another shape.
function inpage.call(name, opts)
  local feature = type(name) == "string" and features[name] or nil
  if not feature then
    error("inpage.call: unknown feature " .. tostring(name), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("inpage.call: opts must be a table or nil", 2)
  end
  local keys = {}
  for key in pairs(opts or {}) do
    if type(key) ~= "string" then
      error("inpage.call: opts keys must be strings", 2)
    end
    keys[#keys + 1] = key
  end
  table.sort(keys)  -- deterministic source text
  local fields = {}
  for _, key in ipairs(keys) do
    local value = json_scalar(opts[key])
    if not value then
      error("inpage.call: opts." .. key .. " must be a string, boolean or finite number", 2)
    end
    fields[#fields + 1] = json_scalar(key) .. ":" .. value
  end
  return "window." .. feature.global .. "({" .. table.concat(fields, ",") .. "})"
end

return inpage
