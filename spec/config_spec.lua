-- Config files: Lua as data in a sandbox, one precise message per mistake.
local config = require("neoconn.config")
local neoconn = require("neoconn")

local function getenv(vars)
  return function(name) return vars[name] end
end

local GOOD = [[
connections = {
  prod_src = { url = "postgresql://sync@db1/app?sslmode=verify-full", kind = "source",
               tables = { "public.users", { schema = "Odd Schema", name = "a.b" },
                          '"Mixed Case".Orders', "plain" } },
  stage_dst = { host = "db2", port = 5432, dbname = "app", user = "loader",
                password = env("STAGE_PW"), sslmode = "require",
                kind = "destination", schemas = { "public" },
                truncate = true, init_schema = false, on_conflict = "update",
                reset_sequences = true,
                rules = { no_audit = function(ctx) return ctx end } },
}
rules = { source_read_only = function(ctx) return ctx end }
disable_rules = { "insecure_sslmode" }
]]

describe("neoconn.config #client", function()
  it("loads connections, tables in identifier syntax, rules and env() secrets", function()
    local cfg = assert(config.load_string(GOOD, "neoconn.lua", { getenv = getenv({ STAGE_PW = "s3" }) }))
    assert.are.equal(2, #cfg.connections)
    local dst, src = cfg.connections[2], cfg.connections[1]
    assert.are.same({ "stage_dst", "prod_src" }, { dst.name, src.name })
    assert.are.same({ host = "db2", port = "5432", dbname = "app", user = "loader",
      password = "s3", sslmode = "require" }, dst.target)
    assert.are.same({ truncate = true, init_schema = false, on_conflict = "update",
      reset_sequences = true }, dst.options)
    assert.are.same({ { schema = "public", name = "users" }, { schema = "Odd Schema", name = "a.b" },
      { schema = "Mixed Case", name = "orders" }, { schema = "public", name = "plain" } }, src.tables)
    -- Rules come back as references, loaded again in each rule's sandbox.
    assert.is_function(dst.rules.no_audit.load)
    assert.is_function(cfg.rules.source_read_only.load)
    assert.are.same({ "insecure_sslmode" }, cfg.disable_rules)
  end)

  local function fails(source, expected, vars)
    local cfg, err = config.load_string(source, "neoconn.lua", { getenv = getenv(vars or {}) })
    assert.is_nil(cfg)
    assert.are.equal(expected, err)
  end

  it("names file, line and key path for a wrong value", function()
    fails([[
connections = {
  stage_dst = {
    kind = "destination",
    port = "x",
  },
}]], 'neoconn.lua:4: connections.stage_dst.port: expected an integer 1-65535, got "x"')
  end)

  it("rejects unknown keys instead of ignoring them", function()
    fails('connections = { a = { kind = "source", hots = "db" } }',
      "neoconn.lua:1: connections.a.hots: unknown key")
    fails('connections = { a = { kind = "source" } }\nconections = {}',
      "neoconn.lua:2: conections: unknown top-level key (expected connections, jobs, rules, disable_rules)")
    fails('connections = { a = { kind = "source", tables = { { schema = "s", table = "t" } } } }',
      'neoconn.lua:1: connections.a.tables[1]: unknown key "table" (expected schema and name)')
  end)

  it("explains kinds, destination-only options and malformed names", function()
    fails('connections = { a = { host = "x" } }',
      'neoconn.lua:1: connections.a: kind is required: "source" or "destination"')
    fails('connections = { a = { kind = "sink" } }',
      'neoconn.lua:1: connections.a.kind: expected one of source, destination, got "sink"')
    fails('connections = { a = { kind = "source", truncate = true } }',
      "neoconn.lua:1: connections.a.truncate: applies to destinations only")
    fails('connections = { a = { kind = "source", tables = { "a.b.c" } } }',
      'neoconn.lua:1: connections.a.tables[1]: too many dots: expected schema.table in "a.b.c"')
    fails('connections = { a = { kind = "source", sslmode = "required" } }',
      'neoconn.lua:1: connections.a.sslmode: expected one of disable, allow, prefer, require, '
        .. 'verify-ca, verify-full, got "required"')
    fails('connections = { a = { kind = "source", rules = { r = 5 } } }',
      "neoconn.lua:1: connections.a.rules.r: expected a function(ctx), got 5")
    fails('connections = { a = { kind = "source", schemas = { 5 } } }',
      "neoconn.lua:1: connections.a.schemas[1]: expected a schema name, got 5")
    fails('connections = { a = { kind = "source" } }\ndisable_rules = { "" }',
      'neoconn.lua:2: disable_rules[1]: expected a rule name, got ""')
    fails("connections = {}", "neoconn.lua:1: connections: no connections defined")
  end)

  it("takes the job's options as the core defines them, and proof", function()
    local cfg = assert(config.load_string('connections = { d = { kind = "destination",'
      .. ' truncate = "cascade", on_conflict = "update", proof = false } }', "neoconn.lua"))
    assert.are.same({ truncate = "cascade", on_conflict = "update" }, cfg.connections[1].options)
    assert.is_false(cfg.connections[1].proof)
    fails('connections = { a = { kind = "destination", truncate = "yes" } }',
      'neoconn.lua:1: connections.a.truncate: expected one of false, true, "cascade", got "yes"')
    fails('connections = { a = { kind = "destination", on_conflict = true } }',
      'neoconn.lua:1: connections.a.on_conflict: expected one of "nothing", "update", got true')
    fails('connections = { a = { kind = "source", proof = "always" } }',
      'neoconn.lua:1: connections.a.proof: expected one of true, false, "auto", got "always"')
    -- Names and lists within what the core takes, however they are written.
    fails('connections = { a = { kind = "source", tables = { "public." .. string.rep("n", 1500) } } }',
      "neoconn.lua:1: connections.a.tables[1]: a name has at most 1024 bytes (this one 1500)")
    fails('connections = { a = { kind = "source", tables = { { name = string.rep("n", 1500) } } } }',
      'neoconn.lua:1: connections.a.tables[1].name: expected a table name, got "'
        .. string.rep("n", 1500) .. '"')
    fails('local s = {} for i = 1, 100001 do s[i] = "s" end'
      .. ' connections = { a = { kind = "source", schemas = s } }',
      "neoconn.lua:1: connections.a.schemas: at most 100000 names (100001)")
    -- Every job option of the core is a config key.
    for _, option in ipairs(neoconn.job_options()) do
      local value = option.names and ('"a_name", %s = true'):format(option.needs)
        or type(option.values[2]) == "string" and ("%q"):format(option.values[2])
        or tostring(option.values[2])
      local text = ('connections = { a = { kind = %q, %s = %s } }'):format(option.kinds[1],
        option.name, value)
      assert(config.load_string(text, "neoconn.lua"))
    end
    fails('connections = { a = { kind = "destination", cdc = true } }',
      "neoconn.lua:1: connections.a.cdc: applies to sources only")
    fails('connections = { a = { kind = "source", cdc = true, slot = "" } }',
      'neoconn.lua:1: connections.a.slot: must be a name of 1 to 63 bytes, got ""')
    fails('connections = { a = { kind = "source", publication = "p" } }',
      "neoconn.lua:1: connections.a.publication: needs cdc = true")
  end)

  it("reports syntax errors and unset variables with their line", function()
    -- The parser's wording differs between Lua versions; file, line and cause do not.
    local _, syntax = config.load_string("connections = {\n  a = { kind = 'source' \n", "neoconn.lua")
    assert.truthy(syntax:find("^neoconn.lua:3: '}' expected %(to close '{' at line 2%)"), syntax)
    local _, err = config.load_string('connections = {\n a = { kind = "source", password = env("NOPE") } }',
      "neoconn.lua", { getenv = getenv({}) })
    assert.are.equal("neoconn.lua:2: env: variable NOPE is not set", err)
  end)

  it("runs configs in a sandbox that cannot reach the process", function()
    for _, source in ipairs({ "os.exit(3)", "io.open('/etc/passwd')", "require('os')",
      "loadstring('x')()", "load('x')()", "dofile('/etc/passwd')" }) do
      local cfg, err = config.load_string(source, "evil.lua")
      assert.is_nil(cfg)
      assert.truthy(err:find("evil.lua:1:", 1, true), err)
    end
  end)

  it("stops a config that runs forever, in Lua or inside C functions, or eats memory", function()
    for _, source in ipairs({ "while true do end",
      'local x = string.find(string.rep("a", 30000), string.rep("a-", 20) .. "b")',
      "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 2^26) .. i end" }) do
      local t0 = neoconn.clock()
      local cfg, err = config.load_string(source, "loop.lua")
      assert.is_nil(cfg)
      assert.truthy(err:find("^loop.lua:1: the config was stopped: it "), err)
      assert.is_true(neoconn.clock() - t0 < 6)
    end
  end)

  it("leaves no instruction limit behind for the code that runs after it", function()
    assert(config.load_string(GOOD, "neoconn.lua", { getenv = getenv({ STAGE_PW = "s3" }) }))
    local n = 0
    for i = 1, 3000000 do n = n + i % 3 end -- past the config's limit
    assert.truthy(n > 0)
    assert.is_nil(debug.gethook())
  end)

  it("refuses binary chunks", function()
    local cfg, err = config.load_string(string.dump(function() end), "bin.lua")
    assert.is_nil(cfg)
    assert.truthy(err:find("binary", 1, true))
  end)
end)

describe("examples/neoconn.lua #client", function()
  it("is a valid config with a source, a destination and two custom rules", function()
    local cfg = assert(config.load_file("examples/neoconn.lua",
      { getenv = getenv({ PROD_SYNC_PW = "a", STAGE_SYNC_PW = "b" }) }))
    local kinds = {}
    for _, c in ipairs(cfg.connections) do kinds[c.name] = c.kind end
    assert.are.same({ prod_src = "source", stage_dst = "destination" }, kinds)
    assert.is_function(cfg.rules.source_read_only.load)
    assert.is_function(cfg.rules.audit_untouchable.load)
  end)
end)
