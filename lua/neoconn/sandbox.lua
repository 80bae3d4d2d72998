--- Code neoconn did not write (a config file, a custom rule) runs in a child
-- process with real bounds (core.sandbox): CPU time, memory and wall-clock
-- time, which hold inside C functions too. Only data comes back, written as
-- a Lua table constructor and read in an empty environment.
local core = require("neoconn.core")
local nginx = require("neoconn.nginx")

local sandbox = {}

local MiB = 1024 * 1024
--- The bounds, for a config file and for each custom rule (README).
sandbox.CONFIG_LIMITS = { cpu = 2, wall = 5, memory = 256 * MiB }
sandbox.RULE_LIMITS = { cpu = 2, wall = 5, memory = 256 * MiB }

local MAX_DEPTH = 64

local function serialize(v, out, depth, seen)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = string.format("%q", v)
  elseif t == "number" then
    if v ~= v then
      out[#out + 1] = "0/0"
    elseif v == math.huge or v == -math.huge then
      out[#out + 1] = v > 0 and "1/0" or "-1/0"
    elseif math.type and math.type(v) == "integer" then
      out[#out + 1] = string.format("%d", v)
    else
      out[#out + 1] = string.format("%.17g", v)
    end
  elseif t == "boolean" or t == "nil" then
    out[#out + 1] = tostring(v)
  elseif t == "table" then
    if seen[v] or depth > MAX_DEPTH then error("not data: a cycle or too deep", 0) end
    seen[v] = true
    out[#out + 1] = "{"
    for k, x in pairs(v) do
      out[#out + 1] = "["
      serialize(k, out, depth + 1, seen)
      out[#out + 1] = "]="
      serialize(x, out, depth + 1, seen)
      out[#out + 1] = ","
    end
    out[#out + 1] = "}"
    seen[v] = nil
  else
    error("not data: a " .. t, 0)
  end
end

local function encode(v)
  local out = { "return " }
  serialize(v, out, 0, {})
  return table.concat(out)
end

local function decode(text)
  local fn, err
  if setfenv and loadstring then -- Lua 5.1 / LuaJIT
    fn, err = loadstring(text, "=sandbox")
    if fn then setfenv(fn, {}) end
  else
    fn, err = load(text, "=sandbox", "t", {})
  end
  if not fn then return nil, err end
  return fn()
end

--- In the child: only lines of this chunk ("@file") are where it was seen.
sandbox.watch = core.sandbox_watch

--- Runs fn() in the child under limits; returns what it returned (data
-- only), or nil and why it failed, as words that follow "it": the bound
-- it broke ("used more than 2 s of CPU time", "ran out of memory (256
-- MiB)", ...) or "failed: <its error>"; and, either way, where its Lua
-- code was last seen ("source:line" or nil). Inside nginx it waits for
-- the child through ngx.sleep, never blocking the worker.
function sandbox.run(fn, limits)
  local child = function()
    -- The child's count hook (its whereabouts) never runs in JIT code.
    if jit then
      jit.off()
      jit.flush()
    end
    local good, value = pcall(fn)
    if not good then error(tostring(value), 0) end
    return encode(value)
  end
  local ok, text, where, stopped
  if nginx.active() then
    local running, why = core.sandbox_start(child, limits)
    if not running then return nil, why end
    ok, text, where, stopped = nginx.wait(function()
      local done, a, b, c = running:step()
      if done == nil then return false, b end
      return true, done, a, b, c
    end)
  else
    ok, text, where, stopped = core.sandbox(child, limits)
  end
  if not ok then
    if not stopped and text:find("not enough memory", 1, true) then
      text = ("ran out of memory (%d MiB)"):format(math.floor(limits.memory / MiB))
    elseif not stopped then
      text = "failed: " .. text
    end
    return nil, text, where
  end
  local value, err = decode(text)
  return value, err, where
end

return sandbox
