-- The same sources build for Lua 5.4, 5.3, 5.1 and LuaJIT 2.1, warning-free,
-- each exporting only luaopen_neoconn_core; the LuaJIT build needs no
-- symbol LuaJIT does not have.
local pg = require("pg")

local function lines(cmd)
  local out = {}
  local p = io.popen(cmd)
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

describe("builds #client #once", function()
  for _, lua in ipairs({ "lua5.4", "lua5.3", "lua5.1", "luajit" }) do
    it("build for " .. lua .. " and export only luaopen_neoconn_core", function()
      assert.are.equal(0, pg.execute(("make -s LUA=%s >/dev/null 2>&1"):format(lua)))
      local so = ("build/%s/neoconn/core.so"):format(lua)
      assert.are.same({ "luaopen_neoconn_core" },
        lines("nm -D --defined-only " .. so .. " | awk '{print $3}' | grep -v '^_'"))
    end)
  end

  it("leave nothing in the LuaJIT build that LuaJIT does not export", function()
    local libluajit = lines("ls /usr/lib/*/libluajit-5.1.so.2 2>/dev/null")[1]
    assert.is_string(libluajit)
    local have = {}
    for _, sym in ipairs(lines("nm -D --defined-only " .. libluajit .. " | awk '{print $3}'")) do
      have[sym] = true
    end
    local needed = lines("nm -D --undefined-only build/luajit/neoconn/core.so | awk '{print $2}'"
      .. " | grep -E '^lua'")
    assert.truthy(#needed > 20)
    for _, sym in ipairs(needed) do assert.is_true(have[sym] == true, sym) end
  end)

  it("keep the C files' calls one way: no file calls a file that calls it", function()
    -- Who defines each nc_ symbol, then who uses it, from the objects.
    local defined_in, uses = {}, {}
    local objects = lines("ls build/lua5.4/obj/*.o")
    assert.truthy(#objects > 20)
    for _, o in ipairs(objects) do
      local file = o:match("([%w_]+)%.o$")
      for _, sym in ipairs(lines("nm --defined-only " .. o .. " | awk '$3 ~ /^nc_/ {print $3}'")) do
        defined_in[sym] = file
      end
      uses[file] = lines("nm -u " .. o .. " | awk '$2 ~ /^nc_/ {print $2}'")
    end
    local calls = {}
    for file, syms in pairs(uses) do
      calls[file] = {}
      for _, sym in ipairs(syms) do
        local callee = defined_in[sym]
        if callee and callee ~= file then calls[file][callee] = true end
      end
    end
    -- Depth-first: a file met again while still on the path closes a circle.
    local state, path = {}, {}
    local function visit(file)
      state[file] = "open"
      path[#path + 1] = file
      for callee in pairs(calls[file] or {}) do
        assert.is_not.equal("open", state[callee],
          "calls go round: " .. table.concat(path, " -> ") .. " -> " .. callee)
        if not state[callee] then visit(callee) end
      end
      path[#path] = nil
      state[file] = "done"
    end
    for file in pairs(calls) do
      if not state[file] then visit(file) end
    end
  end)
end)
