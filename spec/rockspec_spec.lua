-- The rockspec builds offline with `luarocks make` and installs a module
-- that loads from the tree, away from this checkout.
local pg = require("pg")

describe("neoconn-scm-1.rockspec #client", function()
  it("builds with luarocks make into a fresh tree, offline", function()
    local tree = os.tmpname()
    os.remove(tree)
    local incdir = io.popen("pg_config --includedir 2>/dev/null"):read("*l") or "/usr/include/postgresql"
    local version = _VERSION:match("%d+%.%d+")
    -- Offline: dkjson comes from Debian's lua-dkjson, not from a rock.
    local build = ("luarocks --lua-version %s make --deps-mode=none --tree=%s neoconn-scm-1.rockspec"
      .. " PQ_INCDIR=%s"
      .. " >%s.log 2>&1"):format(version, tree, incdir, tree)
    local code = pg.execute(build)
    assert(code == 0, pg.slurp(tree .. ".log"))
    local probe = ("cd / && LUA_PATH='%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua'"
      .. " LUA_CPATH='%s/lib/lua/%s/?.so' lua%s -e 'print(require(\"neoconn\").version)'")
      :format(tree, version, tree, version, tree, version, version)
    local out = io.popen(probe):read("*a")
    -- The installed command runs from anywhere, on the installed modules.
    -- The installed tree first, then the system's default paths (Debian's
    -- dkjson), never this checkout.
    local cli = io.popen(("cd / && LUA_PATH='%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua;;'"
      .. " LUA_CPATH='%s/lib/lua/%s/?.so;;' %s/bin/neoconn --version")
      :format(tree, version, tree, version, tree, version, tree)):read("*a")
    os.execute("rm -rf " .. tree .. " " .. tree .. ".log")
    assert.are.equal(require("neoconn").version .. "\n", out)
    assert.are.equal("neoconn " .. require("neoconn").version .. "\n", cli)
  end)

  it("lists every module the Lua layer requires from outside neoconn", function()
    local rockspec = pg.slurp("neoconn-scm-1.rockspec")
    local modules = io.popen("grep -ho 'require(\"[^\"]*\")' lua/neoconn/*.lua bin/neoconn"):read("*a")
    for name in modules:gmatch('require%("([^"]+)"%)') do
      if not name:match("^neoconn") then
        local listed = rockspec:find('"' .. name .. " ", 1, true)
          or rockspec:find('"' .. name .. '"', 1, true)
        assert.truthy(listed, name .. " is not in the rockspec's dependencies")
      end
    end
  end)
end)
