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

  it("installs every module of lua/neoconn", function()
    local rockspec = pg.slurp("neoconn-scm-1.rockspec")
    local files = io.popen("ls lua/neoconn/*.lua"):read("*a")
    for file in files:gmatch("[^\n]+") do
      local name = file:match("lua/neoconn/(.-)%.lua$")
      local module = name == "init" and "neoconn" or ("neoconn." .. name)
      assert.truthy(rockspec:find(('["%s"] = "%s"'):format(module, file), 1, true),
        file .. " is not a module of the rockspec")
    end
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

-- `make install` as a user runs it: for Lua 5.4 by default, LUA= choosing
-- another, used from outside the checkout.
describe("make install #client #once", function()
  local user, password, schema
  setup(function()
    user, password = pg.login_role("inst")
    schema = pg.schema_with_table(user, "inst", { grant = "SELECT" })
  end)

  for _, case in ipairs({ { lua = "lua5.4", version = "5.4", make = "" }, -- the default
    { lua = "luajit", version = "5.1", make = " LUA=luajit" } }) do
    it("installs for " .. case.lua .. ", which then runs it from anywhere", function()
      local tree = os.tmpname()
      os.remove(tree)
      -- The specs run with LUA set to their interpreter: the default is
      -- what make does without it.
      local code, out, err = pg.run(("env -u LUA make -s install TREE=%s%s"):format(tree, case.make))
      assert.are.equal(0, code, out .. err)
      -- Where the tree's modules are, for every name Lua 5.4 or LuaJIT reads.
      local lpath = ("%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua;;"):format(tree, case.version,
        tree, case.version)
      local cpath = ("%s/lib/lua/%s/?.so;;"):format(tree, case.version)
      local env = ("env LUA_PATH=%s LUA_PATH_5_4=%s LUA_CPATH=%s LUA_CPATH_5_4=%s "):format(
        pg.shell_quote(lpath), pg.shell_quote(lpath), pg.shell_quote(cpath), pg.shell_quote(cpath))
      local function outside(cmd) return pg.run("cd / && " .. env .. cmd) end
      code, out, err = outside(case.lua .. [[ -e 'local n = require("neoconn")
        print(n.version, package.searchpath("neoconn.core", package.cpath))']])
      assert.are.equal(0, code, err)
      -- The installed modules, not this checkout's.
      assert.are.equal(("%s\t%s/lib/lua/%s/neoconn/core.so\n"):format(require("neoconn").version,
        tree, case.version), out)
      -- The installed command runs under the chosen interpreter.
      local wrapper = pg.slurp(tree .. "/bin/neoconn")
      assert.truthy(wrapper:find("/usr/bin/" .. case.lua, 1, true), wrapper)
      code, out = outside(tree .. "/bin/neoconn --version")
      assert.are.equal(0, code)
      assert.are.equal("neoconn " .. require("neoconn").version .. "\n", out)
      local url = ("postgresql://%s@%s:%s/%s"):format(user, pg.host, pg.port, pg.dbname)
      code, out, err = outside(("PGPASSWORD=%s %s/bin/neoconn test %s --as source --schemas %s")
        :format(pg.shell_quote(password), tree, pg.shell_quote(url), schema))
      -- (env runs the command with PGPASSWORD set too: it is an assignment
      -- env reads.)
      assert.are.equal(0, code, out .. err)
      assert.truthy(out:find("target: PASS", 1, true), out)
      -- The man page beside it.
      assert.truthy(pg.slurp(tree .. "/share/man/man1/neoconn.1"):find(".TH NEOCONN 1", 1, true))
      os.execute("rm -rf " .. tree)
    end)
  end
end)

describe("the man page #client", function()
  it("names every flag --help names, and no other", function()
    local _, help = pg.cli("--help")
    local man = pg.slurp("neoconn.1"):gsub("\\%-", "-")
    local function flags(text)
      local set = {}
      for flag in text:gmatch("%-%-[a-z][a-z-]*") do set[flag] = true end
      return set
    end
    assert.are.same(flags(help), flags(man))
  end)
end)
