-- The README's library example runs as it is written, against a real
-- server: what a newcomer copies works.
local neoconn = require("neoconn")
local pg = require("pg")
local q = neoconn.quote_ident

-- The code block that follows the marker `<!-- example: NAME ...` in the
-- README.
local function example(name)
  local readme = pg.slurp("README.md")
  local at = assert(readme:find("<!-- example: " .. name, 1, true), "no example " .. name)
  return assert(readme:match("```lua\n(.-)```", at), "no code block after the marker")
end

-- Runs Lua code under the specs' interpreter with the checkout's modules.
local function run_lua(code, vars)
  local path = pg.write_temp(code, ".lua")
  local build = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
  vars.LUA_PATH = "lua/?.lua;lua/?/init.lua;;"
  vars.LUA_CPATH = "build/" .. build .. "/?.so;;"
  local code_, out, err = pg.run(pg.lua .. " " .. pg.shell_quote(path), vars)
  os.remove(path)
  return code_, out, err
end

describe("the README's library example", function()
  it("runs as written: a passing database, then one missing a grant, with its fix", function()
    local user, password = pg.login_role("readme")
    local dbname = pg.unique("readme_db")
    local exec, admin = pg.private_database(dbname)
    exec(("GRANT CONNECT ON DATABASE %s TO %s; CREATE SCHEMA app; GRANT USAGE ON SCHEMA app TO %s;"
      .. " CREATE TABLE app.items (id int PRIMARY KEY, v text);"
      .. " GRANT SELECT, INSERT, UPDATE ON app.items TO %s"):format(q(dbname), q(user), q(user), q(user)))
    local url = ("postgresql://%s@%s:%s/%s?sslmode=require"):format(user, pg.host, pg.port, dbname)
    local vars = { DATABASE_URL = url, PGPASSWORD = password }
    local code, out, err = run_lua(example("library"), vars)
    assert.are.equal(0, code, out .. err)
    assert.are.equal("warehouse: pass, 1 of 1 tables usable\n", out)
    exec("REVOKE UPDATE ON app.items FROM " .. q(user))
    code, out = run_lua(example("library"), vars)
    assert.are.equal(1, code, out)
    assert.truthy(out:find("^warehouse: fail, 0 of 1 tables usable\n"), out)
    assert.truthy(out:find("\nGRANT UPDATE ON TABLE app.items TO " .. q(user), 1, true), out)
    -- Not reached: the error's code and hint.
    vars.PGPASSWORD = "wrong"
    code, out = run_lua(example("library"), vars)
    assert.are.equal(1, code, out)
    assert.truthy(out:find("auth_failed: ", 1, true), out)
    admin:close()
  end)
end)

-- What differs between two runs of the demo: ports, timings, the temporary
-- file, the server's minor version.
local function steady(text)
  return (text:gsub("%d+%.%d+ ms", "N ms"):gsub("localhost:%d+", "localhost:PORT")
    :gsub("port %d+", "port PORT"):gsub("/tmp/[%w_.]+", "/tmp/FILE")
    :gsub("PostgreSQL (%d+)%.%d+", "PostgreSQL %1.N"))
end

describe("the README's sample of make demo #client", function()
  it("is what make demo prints", function()
    local readme = pg.slurp("README.md")
    local at = assert(readme:find("<!-- output: make demo", 1, true))
    local sample = assert(readme:match("```\n(.-)\n```", at))
    local code, out, err = pg.run("spec/support/with-cluster.sh " .. pg.lua .. " examples/demo.lua",
      { LUA_PATH = "lua/?.lua;lua/?/init.lua;;",
        LUA_CPATH = "build/" .. (jit and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")) .. "/?.so;;" })
    assert.are.equal(0, code, err)
    assert.are.equal(steady(sample), steady(out:gsub("\n$", "")))
  end)
end)

-- GitHub's anchor for a heading: lower case, punctuation but hyphens
-- dropped, spaces as hyphens.
local function slug(heading)
  return (heading:lower():gsub("[^%w%- ]", ""):gsub(" ", "-"))
end

local function anchors(path)
  local set = {}
  for heading in (pg.slurp(path) or ""):gmatch("\n#+ ([^\n]+)") do set[slug(heading)] = true end
  return set
end

describe("the README #client #once", function()
  it("is a manual of at most 600 lines whose links all lead somewhere", function()
    local readme = pg.slurp("README.md")
    local _, lines = readme:gsub("\n", "")
    assert.truthy(lines <= 600, lines .. " lines")
    for _, doc in ipairs({ "README.md", "doc/reference.md", "doc/verdicts.md", "bench/README.md" }) do
      for target in pg.slurp(doc):gmatch("%]%(([^)%s]+)%)") do
        if not target:match("^https?:") then
          local file, anchor = target:match("^([^#]*)#?(.*)$")
          local dir = doc:match("^(.*)/[^/]*$")
          local path = file == "" and doc
            or ((dir and file:sub(1, 1) ~= "/") and (dir .. "/" .. file) or file)
          assert.truthy(pg.slurp(path) or pg.run("test -d " .. path) == 0, doc .. ": " .. target)
          if anchor ~= "" then assert.truthy(anchors(path)[anchor], doc .. ": " .. target) end
        end
      end
    end
  end)
end)
