-- The rockspec builds offline with `luarocks make` and installs a module
-- that loads from the tree, away from this checkout.
local pg = require("pg")

describe("neoconn-scm-1.rockspec", function()
  it("builds with luarocks make into a fresh tree, offline", function()
    local tree = os.tmpname()
    os.remove(tree)
    local incdir = io.popen("pg_config --includedir 2>/dev/null"):read("*l") or "/usr/include/postgresql"
    local version = _VERSION:match("%d+%.%d+")
    local build = ("luarocks --lua-version %s make --tree=%s neoconn-scm-1.rockspec PQ_INCDIR=%s"
      .. " >%s.log 2>&1"):format(version, tree, incdir, tree)
    local code = pg.execute(build)
    assert(code == 0, pg.slurp(tree .. ".log"))
    local probe = ("cd / && LUA_PATH='%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua'"
      .. " LUA_CPATH='%s/lib/lua/%s/?.so' lua%s -e 'print(require(\"neoconn\").version)'")
      :format(tree, version, tree, version, tree, version, version)
    local out = io.popen(probe):read("*a")
    -- The installed command runs from anywhere, on the installed modules.
    local cli = io.popen(("cd / && %s/bin/neoconn --version"):format(tree)):read("*a")
    os.execute("rm -rf " .. tree .. " " .. tree .. ".log")
    assert.are.equal(require("neoconn").version .. "\n", out)
    assert.are.equal("neoconn " .. require("neoconn").version .. "\n", cli)
  end)
end)
