-- The Lua surface: argument checking, objects, secrets.
local neoconn = require("neoconn")
local pg = require("pg")

describe("the neoconn module", function()
  it("leaves the global table untouched", function()
    local before = {}
    for k in pairs(_G) do before[k] = true end
    package.loaded["neoconn"], package.loaded["neoconn.core"] = nil, nil
    require("neoconn")
    for k in pairs(_G) do assert.is_true(before[k], "new global " .. tostring(k)) end
  end)

  it("exports only luaopen_neoconn_core from the shared object", function()
    local so = package.searchpath("neoconn.core", package.cpath)
    local nm = io.popen("nm -D --defined-only " .. so .. " | awk '{print $3}'")
    local symbols = {}
    for line in nm:lines() do
      if line ~= "" and not line:match("^_") then symbols[#symbols + 1] = line end
    end
    nm:close()
    assert.are.same({ "luaopen_neoconn_core" }, symbols)
  end)

  it("raises errors naming the argument for wrong types", function()
    local cases = {
      { function() neoconn.connect(42) end, "#1" },
      { function() neoconn.connect() end, "#1" },
      { function() neoconn.connect({ hots = "x" }) end, "unknown connection keyword 'hots'" },
      { function() neoconn.connect({ port = {} }) end, "field 'port'" },
      { function() neoconn.connect({ port = 1.5 }) end, "field 'port'" },
      { function() neoconn.connect("host=x", 5) end, "#2" },
      { function() neoconn.connect("host=x", { timeout = -1 }) end, "timeout" },
      { function() neoconn.test({}, { tables = "users" }) end, "tables" },
      { function() neoconn.test({}, { tables = { 5 } }) end, "tables[1]" },
      { function() neoconn.test({}, { tables = { "a.b.c" } }) end, "tables[1]" },
      { function() neoconn.test({}, { schemas = { true } }) end, "schemas[1]" },
    }
    for _, case in ipairs(cases) do pg.raises(case[1], case[2]) end
  end)
end)

describe("a connection object", function()
  it("closes idempotently through close, __close and __gc", function()
    local conn = assert(neoconn.connect({ host = pg.socket, port = pg.port,
      user = pg.admin_user, dbname = "postgres" }))
    conn:close()
    conn:close()
    assert.truthy(tostring(conn):find("closed", 1, true))
    assert.has_error(function() conn:query("SELECT 1") end)
    assert.has_error(function() neoconn.test(conn) end)
    local chunk = load([[
      local neoconn, target = ...
      local conn <close> = assert(neoconn.connect(target))
      return conn
    ]])
    if chunk then -- Lua 5.4: to-be-closed variables
      local closed = chunk(neoconn, { host = pg.socket, port = pg.port, user = pg.admin_user,
        dbname = "postgres" })
      assert.truthy(tostring(closed):find("closed", 1, true))
    end
    collectgarbage()
  end)

  it("runs queries with parameters and returns typed rows", function()
    local rows = pg.exec("SELECT $1::int + 1 AS n, true AS yes, NULL AS nothing,"
      .. " ARRAY['a', 'b c', 'd\"e'] AS list, 1.5::float8 AS f, $2 AS s", { 41, "x" })
    assert.are.same({ n = 42, yes = true, list = { "a", "b c", 'd"e' }, f = 1.5, s = "x" },
      rows[1])
    local none, err = pg.admin():query("SELECT * FROM no_such_table")
    assert.is_nil(none)
    assert.are.equal("42P01", err.sqlstate)
    assert.are.equal("query", err.stage)
  end)

  it("shapes rows of any width, with dotted names as subtables and empty ones left out", function()
    local columns = {}
    for i = 1, 100 do
      columns[#columns + 1] = ("%d AS \"g%d.c%d\""):format(i, i % 12, i)
    end
    columns[#columns + 1] = "NULL::int AS \"empty.x\""
    columns[#columns + 1] = "'top' AS plain"
    local row = pg.exec("SELECT " .. table.concat(columns, ", "))[1]
    assert.are.equal("top", row.plain)
    assert.is_nil(row.empty)
    for i = 1, 100 do
      assert.are.equal(i, row["g" .. (i % 12)]["c" .. i])
    end
  end)

  it("reports a statement timeout as timeout and keeps the connection", function()
    local conn = assert(neoconn.connect({ host = pg.socket, port = pg.port,
      user = pg.admin_user, dbname = "postgres" }))
    local rows, err = conn:query("SET statement_timeout = 50; SELECT pg_sleep(2)")
    assert.is_nil(rows)
    assert.are.same({ "timeout", "query", "57014" }, { err.code, err.stage, err.sqlstate })
    assert.are.same({ { ok = 1 } }, conn:query("SELECT 1 AS ok"))
    -- neoconn's own deadline: the connection's state is unknown, so it is closed.
    rows, err = conn:query("SET statement_timeout = 0; SELECT pg_sleep(2)", nil, { timeout = 0.2 })
    assert.is_nil(rows)
    assert.are.same({ "timeout", "query" }, { err.code, err.stage })
    assert.truthy(tostring(conn):find("closed", 1, true))
  end)
end)

describe("passwords", function()
  local secret = "Very-Secret-Pw-42"
  local function assert_clean(value, seen)
    seen = seen or {}
    if type(value) == "table" then
      if seen[value] then return end
      seen[value] = true
      assert.is_falsy(tostring(value):find(secret, 1, true))
      for k, v in pairs(value) do assert_clean(k, seen); assert_clean(v, seen) end
    elseif type(value) == "string" then
      assert.is_falsy(value:find(secret, 1, true), value)
    end
  end

  it("never appear in errors, hints or reports, from tables, URLs or key=value", function()
    local user = pg.login_role("redact")
    local targets = {
      pg.target(user, secret),
      string.format("postgresql://%s:%s@%s:%s/%s", user, secret, pg.host, pg.port, pg.dbname),
      string.format("postgresql://%s:%s@%s:%s/%s?sslmode=bogus", user, secret, pg.host,
        pg.port, pg.dbname),
      string.format("postgresql://%s:%s@[::1/%s", user, secret, pg.dbname),
      string.format("host=%s port=%s user=%s password=%s dbname=nodb", pg.host, pg.port, user,
        secret),
      string.format("host=%s password='%s' port=notaport", pg.host, secret),
      string.format("postgresql://%s:%s@%s:%s/x?bogus_option=1", user, secret, pg.host, pg.port),
    }
    for _, target in ipairs(targets) do
      local conn, err = neoconn.connect(target, { timeout = 2 })
      assert.is_nil(conn)
      assert_clean(err)
      assert_clean(tostring(err))
      assert_clean(neoconn.test(target, { timeout = 2 }))
    end
  end)

  it("never appear in a connection's tostring", function()
    local user = pg.login_role("redact2")
    pg.exec(("ALTER ROLE %s PASSWORD '%s'"):format(user, secret))
    local conn = assert(neoconn.connect(pg.target(user, secret)))
    assert_clean(tostring(conn))
    assert_clean(neoconn.test(conn))
    conn:close()
  end)
end)
