-- Every file in spec/hostile_configs is a config built to break neoconn:
-- syntax errors, loops in Lua and inside C functions, memory bombs,
-- escapes from the sandbox, values the core would choke on, secrets that
-- an error could echo. `neoconn check` must answer each with exit 64 and a
-- file:line message, within its bounds, printing no secret.
local pg = require("pg")

local dir = "spec/hostile_configs"

local function files()
  local list = {}
  for name in io.popen("ls " .. dir):lines() do
    if name:match("%.lua$") then list[#list + 1] = dir .. "/" .. name end
  end
  table.sort(list)
  return list
end

describe("neoconn check on hostile config files #client", function()
  for _, path in ipairs(files()) do
    it("refuses " .. path .. " with exit 64 and a file:line message", function()
      local out, err = os.tmpname(), os.tmpname()
      local t0 = require("neoconn").clock()
      local code = pg.execute(("%s bin/neoconn check %s >%s 2>%s"):format(pg.lua, path, out, err))
      local took = require("neoconn").clock() - t0
      local stdout, stderr = pg.slurp(out), pg.slurp(err)
      os.remove(out)
      os.remove(err)
      assert.are.equal(64, code, stderr)
      assert.are.equal("", stdout)
      local pattern = "^neoconn: " .. path:gsub("%p", "%%%0") .. ":%d+: "
      assert.truthy(stderr:find(pattern), stderr)
      assert.is_nil(stderr:find("S3cr3t", 1, true), stderr)
      assert.is_nil(stderr:find("83726152", 1, true), stderr)
      assert.is_nil(stderr:find("traceback", 1, true), stderr)
      -- Every bound is said in words: "it ran out of memory (256 MiB)".
      assert.is_nil(stderr:find("it not enough memory", 1, true), stderr)
      assert.is_nil(stderr:find("it failed", 1, true), stderr)
      assert.is_true(took < 10, path .. " took " .. took .. " s")
    end)
  end

  it("says a memory bound is a memory bound wherever the config reaches it", function()
    for _, name in ipairs({ "memory_bomb", "memory_bomb_in_data" }) do
      local err = os.tmpname()
      pg.execute(("%s bin/neoconn check %s/%s.lua >/dev/null 2>%s"):format(pg.lua, dir, name, err))
      local stderr = pg.slurp(err)
      os.remove(err)
      assert.truthy(stderr:find("the config was stopped: it ran out of memory (256 MiB)", 1, true)
        or stderr:find("used more than 2 s of CPU time", 1, true), stderr)
    end
  end)
end)
