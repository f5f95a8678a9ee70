-- luacrawl.json: JSON for the Lua side, on lua-cjson, with its traps handled.
-- Owns: the one configured cjson instance (decode depth limit), canonical encoding (sorted
-- keys, used for context signatures), and conversion of decoded values to plain Lua
-- (JSON null -> nil, whole floats -> integers).
local cjson = require "cjson"

local M = {}

local codec = cjson.new()
codec.decode_max_depth(200)
codec.encode_max_depth(200)
codec.encode_invalid_numbers(false)
M.null = codec.null

-- Decode text; returns value | nil, err. Never raises.
function M.decode(text)
  local ok, v = pcall(codec.decode, text)
  if not ok then return nil, "invalid JSON: " .. tostring(v) end
  return v
end

-- lua-cjson 2.1.0 writes every empty table as {}. A table marked with M.array() is a list:
-- when empty it is written as []. (Marked lists come from page:links(), page:query(), ...)
-- Protected (getmetatable gives the tag), so no script can change what every marked list shares.
local ARRAY_TAG = "luacrawl.array"
local array_mt = { __name = "luacrawl.array", __metatable = ARRAY_TAG }
function M.array(t) return setmetatable(t or {}, array_mt) end
function M.is_array(t) return getmetatable(t) == ARRAY_TAG end

local EMPTY = "\1luacrawl-empty-array\1"
local EMPTY_JSON = codec.encode(EMPTY)

-- A copy of v with marked empty lists replaced by a placeholder, or v itself if it has none.
local function mark_empty(v, depth)
  if type(v) ~= "table" then return v, false end
  if depth > 200 then error("value nested too deeply", 0) end
  if next(v) == nil and getmetatable(v) == ARRAY_TAG then return EMPTY, true end
  local out, changed = {}, false
  for k, x in pairs(v) do
    local y, c = mark_empty(x, depth + 1)
    out[k] = y
    changed = changed or c
  end
  if changed then return out, true end
  return v, false
end

-- Encode a value; returns text | nil, err. Never raises.
function M.encode(v)
  local ok, s = pcall(function()
    local w, changed = mark_empty(v, 0)
    local text = codec.encode(w)
    if changed then
      local i, out = 1, {}
      while true do
        local a, b = text:find(EMPTY_JSON, i, true)
        if not a then break end
        out[#out + 1] = text:sub(i, a - 1)
        out[#out + 1] = "[]"
        i = b + 1
      end
      out[#out + 1] = text:sub(i)
      text = table.concat(out)
    end
    return text
  end)
  if not ok then return nil, tostring(s) end
  return s
end

-- Plain Lua data from decoded JSON: null becomes nil, whole numbers become integers.
local function plain(v, depth)
  if v == codec.null then return nil end
  local t = type(v)
  if t == "number" then return math.tointeger(v) or v end
  if t ~= "table" then return v end
  if depth > 200 then error("value nested too deeply", 0) end
  local out = {}
  for k, x in pairs(v) do out[k] = plain(x, depth + 1) end
  return out
end
function M.plain(v) return plain(v, 0) end

local function is_array(t)
  local n = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return false end
    n = n + 1
  end
  for i = 1, n do if t[i] == nil then return false end end
  return true, n
end

-- Canonical JSON: object keys sorted, integers without a fraction, so that equal options give
-- equal text. Raises on values JSON cannot hold (functions, userdata, cycles).
local function canon(v, out, depth)
  if depth > 50 then error("options nested too deeply", 0) end
  local t = type(v)
  if t == "nil" then out[#out + 1] = "null"
  elseif t == "boolean" then out[#out + 1] = v and "true" or "false"
  elseif t == "number" then
    if math.type(v) == "integer" then out[#out + 1] = string.format("%d", v)
    elseif v ~= v or v == math.huge or v == -math.huge then error("options hold an invalid number", 0)
    elseif v == math.floor(v) and math.abs(v) < 2^53 then out[#out + 1] = string.format("%d", math.tointeger(v))
    else out[#out + 1] = string.format("%.17g", v) end
  elseif t == "string" then out[#out + 1] = codec.encode(v)
  elseif t == "table" then
    local arr, n = is_array(v)
    if arr and n > 0 then
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then out[#out + 1] = "," end
        canon(v[i], out, depth + 1)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then error("option keys must be strings", 0) end
        keys[#keys + 1] = k
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = codec.encode(k)
        out[#out + 1] = ":"
        canon(v[k], out, depth + 1)
      end
      out[#out + 1] = "}"
    end
  else
    error("options cannot hold a " .. t, 0)
  end
end

function M.canonical(v)
  local out = {}
  canon(v, out, 0)
  return table.concat(out)
end

return M
