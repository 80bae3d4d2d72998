-- What neoconn.test reports beyond table privileges, and how it behaves.
local neoconn = require("neoconn")
local pg = require("pg")
local q = neoconn.quote_ident

describe("neoconn.test", function()
  local user, password, schema
  setup(function()
    user, password = pg.login_role("intro")
    schema = pg.unique("intro_s")
    pg.exec(([[
      CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s TO %s;
      CREATE FUNCTION %s.next_code() RETURNS text LANGUAGE sql AS 'SELECT ''c''';
      REVOKE EXECUTE ON FUNCTION %s.next_code() FROM PUBLIC;
      CREATE TABLE %s (id serial PRIMARY KEY, code text DEFAULT %s.next_code(),
        n int GENERATED ALWAYS AS IDENTITY);
      CREATE TABLE %s (x int);
      CREATE VIEW %s AS SELECT 1 AS one;
      GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA %s TO %s;
      GRANT USAGE ON ALL SEQUENCES IN SCHEMA %s TO %s;
    ]]):format(q(schema), q(schema), q(user), q(schema), q(schema), q(schema, "orders"),
      q(schema), q(schema, "Other Table"), q(schema, "v"), q(schema), q(user), q(schema),
      q(user)))
  end)

  it("reports stages, server, session, role and database", function()
    local report = neoconn.test(pg.target(user, password))
    assert.is_true(report.ok)
    local names = {}
    for _, s in ipairs(report.stages) do
      names[#names + 1] = s.name
      assert.is_true(s.ok)
      assert.is_number(s.ms)
    end
    assert.are.same({ "connect", "tls", "authenticate", "session", "introspect" }, names)
    assert.are.equal(pg.major, math.floor(report.server.version_num / 10000))
    assert.is_false(report.server.in_hot_standby)
    assert.are.equal(user, report.session.user)
    assert.are.equal(pg.dbname, report.session.database)
    assert.is_true(report.session.ssl.in_use)
    assert.are.same({ pg.host, pg.port, "prefer" },
      { report.session.host, report.session.port, report.session.sslmode })
    -- member_only exists from PostgreSQL 16 (memberships without SET).
    assert.are.same({ name = user, superuser = false, createdb = false, createrole = false,
      replication = false, bypassrls = false, can_login = true, inherits = {},
      set_role_only = {}, member_only = pg.major >= 16 and {} or nil }, report.role)
    assert.are.same({ name = pg.dbname, owner = pg.admin_user, connect = true, create = false,
      temp = true }, report.database)
    assert.is_false(report.session.default_transaction_read_only)
    assert.is_false(report.session.transaction_read_only)
    -- Where the read-only default was set is named only when it is on.
    assert.is_nil(report.session.read_only_source)
  end)

  it("lists kinds, sequences with their owners and default functions", function()
    local report = neoconn.test(pg.target(user, password), { schemas = { schema } })
    local kinds = {}
    for _, t in ipairs(report.tables) do kinds[t.name] = t.kind end
    assert.are.same({ orders = "table", ["Other Table"] = "table", v = "view" }, kinds)
    assert.are.equal(2, #report.sequences)
    for _, s in ipairs(report.sequences) do
      assert.are.equal("orders", s.owned_by.table)
      assert.is_true(s.privileges.USAGE)
      assert.is_false(s.privileges.UPDATE)
    end
    assert.are.equal(1, #report.functions)
    local f = report.functions[1]
    assert.are.same({ schema = schema, name = "next_code", arguments = "",
      owner = pg.admin_user, privileges = { EXECUTE = false },
      used_by = { schema = schema, table = "orders", column = "code" } }, f)
  end)

  it("lists tables in byte order of schema, then name, as the server orders names", function()
    local other = pg.unique("intro_Order")
    pg.exec(([[CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s TO %s;]]):format(q(other), q(other),
      q(user)))
    -- Created out of order; names alike in their first 8 bytes and more.
    for _, name in ipairs({ "b", "a b", "B", "a", "long_prefix_name_b", "long_prefix_name",
        "long_prefix_Name_z", "long_prefix_name_a" }) do
      pg.exec(("CREATE TABLE %s (x int)"):format(q(other, name)))
    end
    local report = neoconn.test(pg.target(user, password), { schemas = { schema, other } })
    local listed = {}
    for _, t in ipairs(report.tables) do listed[#listed + 1] = t.schema .. "." .. t.name end
    local expected = {}
    for _, r in ipairs(pg.exec([[SELECT n.nspname || '.' || c.relname AS k FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ($1, $2) AND c.relkind IN ('r', 'v') ORDER BY n.nspname, c.relname]],
        { schema, other })) do
      expected[#expected + 1] = r.k
    end
    assert.are.same(expected, listed)
    local mine = {}
    for _, t in ipairs(report.tables) do if t.schema == other then mine[#mine + 1] = t.name end end
    assert.are.same({ "B", "a", "a b", "b", "long_prefix_Name_z", "long_prefix_name",
      "long_prefix_name_a", "long_prefix_name_b" }, mine)
  end)

  it("gives a table without row-level security no policy fields", function()
    local report = neoconn.test(pg.target(user, password), { tables = {
      { schema = schema, name = "orders" } } })
    assert.are.same({ enabled = false, forced = false, applies = false }, report.tables[1].rls)
    assert.are.same({ name = pg.admin_user, is_self = false, is_member = false },
      report.tables[1].owner)
  end)

  it("restricts introspection to named tables and reports those not found", function()
    local report = neoconn.test(pg.target(user, password), { tables = {
      q(schema, "Other Table"), { schema = schema, name = "orders" },
      { schema = schema, name = "missing" }, "nowhere.at_all" } })
    assert.is_true(report.ok)
    assert.are.equal(2, #report.tables)
    assert.are.equal(2, #report.sequences)
    assert.are.same({ { schema = schema, name = "missing" },
      { schema = "nowhere", name = "at_all" } }, report.not_found)
    assert.are.equal(1, #report.schemas)
    assert.are.equal(schema, report.schemas[1].name)
  end)

  it("reports schemas asked for that do not exist", function()
    local report = neoconn.test(pg.target(user, password), { schemas = { "no_such_schema" } })
    assert.are.same({ { schema = "no_such_schema" } }, report.not_found)
    assert.are.same({}, report.tables)
  end)

  it("never writes: no transaction ID is consumed", function()
    local conn = assert(neoconn.connect(pg.target(user, password)))
    local before = pg.next_xid()
    for _ = 1, 3 do assert.is_true(neoconn.test(conn).ok) end
    assert.are.equal(before, pg.next_xid())
    conn:close()
  end)

  it("refuses a connection inside a transaction rather than touch it", function()
    local conn = assert(neoconn.connect(pg.target(user, password)))
    assert(conn:query("BEGIN"))
    assert.has_error(function() neoconn.test(conn) end,
      "bad argument #1 to 'test' (connection is inside a transaction: the test runs its own)")
    assert(conn:query("ROLLBACK"))
    assert.is_true(neoconn.test(conn).ok)
    conn:close()
  end)

  it("leaves the caller's connection idle and usable when a catalog query fails", function()
    -- A session whose current role was dropped under it: every catalog
    -- query that names current_user fails.
    local ghost = pg.unique("ghost")
    pg.exec("CREATE ROLE " .. ghost)
    local conn = assert(neoconn.connect({ host = pg.socket, port = pg.port,
      user = pg.admin_user, dbname = pg.dbname }))
    assert(conn:query("SET ROLE " .. ghost))
    pg.exec("DROP ROLE " .. ghost)
    local report = neoconn.test(conn)
    assert.is_false(report.ok)
    assert.are.same({ "query_failed", "introspect" }, { report.error.code, report.error.stage })
    -- Not in an aborted transaction (this would fail), nor in an open one
    -- (now() would be the older transaction start).
    assert(conn:query("RESET ROLE"))
    assert.are.same({ { fresh = true } }, conn:query("SELECT now() = statement_timestamp() AS fresh"))
    assert.is_true(neoconn.test(conn, { schemas = { schema } }).ok)
    conn:close()
  end)

  it("leaves owned_by out for a sequence no column owns", function()
    pg.exec(("CREATE SEQUENCE %s"):format(q(schema, "free_seq")))
    local report = neoconn.test(pg.target(user, password), { schemas = { schema } })
    local found
    for _, s in ipairs(report.sequences) do
      if s.name == "free_seq" then found = s end
    end
    assert.is_table(found)
    assert.is_nil(found.owned_by)
    pg.exec(("DROP SEQUENCE %s"):format(q(schema, "free_seq")))
  end)

  it("reports a schema's objects alike whether the test is scoped to it or not", function()
    pg.exec(("CREATE SEQUENCE %s"):format(q(schema, "loose_seq")))
    local scoped = neoconn.test(pg.target(user, password), { schemas = { schema } })
    local whole = neoconn.test(pg.target(user, password))
    for _, part in ipairs({ "tables", "sequences", "functions" }) do
      local mine = {}
      for _, object in ipairs(whole[part]) do
        if object.schema == schema then mine[#mine + 1] = object end
      end
      assert.are.same(scoped[part], mine, part)
    end
    assert.are.equal(3, #scoped.sequences)
    pg.exec(("DROP SEQUENCE %s"):format(q(schema, "loose_seq")))
  end)

  it("shares one subtable between objects with the same values, and only then", function()
    pg.exec(([[CREATE TABLE %s (x int); CREATE TABLE %s (x int);
      GRANT SELECT, INSERT ON %s, %s TO %s; GRANT UPDATE ON %s TO %s]])
      :format(q(schema, "twin_a"), q(schema, "twin_b"), q(schema, "twin_a"), q(schema, "twin_b"),
        q(user), q(schema, "twin_b"), q(user)))
    local report = neoconn.test(pg.target(user, password), { tables = {
      { schema = schema, name = "twin_a" }, { schema = schema, name = "twin_b" },
      { schema = schema, name = "orders" } } })
    local by_name = {}
    for _, t in ipairs(report.tables) do by_name[t.name] = t end
    local a, b, orders = by_name.twin_a, by_name.twin_b, by_name.orders
    assert.are.equal(a.owner, b.owner) -- the very same table
    assert.are.equal(a.rls, b.rls)
    assert.are_not.equal(a.privileges, b.privileges)
    assert.are.same({ true, false }, { a.privileges.INSERT, a.privileges.UPDATE })
    assert.are.same({ true, true }, { b.privileges.INSERT, b.privileges.UPDATE })
    assert.are.equal(a.privileges, orders.privileges)
    -- conn:query never shares: its rows are the caller's to change.
    local conn = assert(neoconn.connect(pg.target(user, password)))
    local rows = assert(conn:query([[SELECT 1 AS "p.x" UNION ALL SELECT 1]]))
    assert.are.same(rows[1].p, rows[2].p)
    assert.are_not.equal(rows[1].p, rows[2].p)
    conn:close()
    pg.exec(("DROP TABLE %s, %s"):format(q(schema, "twin_a"), q(schema, "twin_b")))
  end)

  it("knows the session role by a name that needs quoting", function()
    local odd = pg.unique('Odd "Role" X')
    local odd_password = "pw-odd-S3cret"
    pg.exec(("CREATE ROLE %s LOGIN PASSWORD '%s'; GRANT USAGE ON SCHEMA %s TO %s;"
      .. " CREATE TABLE %s (x int); ALTER TABLE %s OWNER TO %s"):format(q(odd), odd_password,
      q(schema), q(odd), q(schema, "odd_owned"), q(schema, "odd_owned"), q(odd)))
    local report = neoconn.test(pg.target(odd, odd_password), { tables = {
      { schema = schema, name = "odd_owned" }, { schema = schema, name = "orders" } } })
    assert.is_true(report.ok, tostring(report.error))
    local owned, other = report.tables[1], report.tables[2]
    assert.are.same({ name = odd, is_self = true, is_member = true }, owned.owner)
    assert.is_true(owned.privileges.TRUNCATE)
    assert.are.same({ name = pg.admin_user, is_self = false, is_member = false }, other.owner)
    -- The verdicts are the statements' own, run as that role.
    local conn = assert(neoconn.connect(pg.target(odd, odd_password)))
    for _, t in ipairs({ owned, other }) do
      for privilege, sql in pairs({ TRUNCATE = "TRUNCATE %s", SELECT = "SELECT * FROM %s" }) do
        local ran, err = pg.try(conn, sql:format(q(t.schema, t.name)))
        assert.are.equal(t.privileges[privilege], ran, ("%s on %s: %s"):format(privilege, t.name,
          tostring(err)))
      end
    end
    conn:close()
  end)

  it("reads flags columns as booleans, each bit one field", function()
    local conn = assert(neoconn.connect(pg.target(user, password)))
    local rows = assert(conn:query([[SELECT 5 AS "p{a,b,c}", 1 AS "{top,other}", 'x' AS "p.name",
      2 AS "q{one,two}", NULL::int AS "r{gone}", 1 AS "s{x}", 1 AS "s{y,x}"]]))
    assert.are.same({ p = { a = true, b = false, c = true, name = "x" }, top = true,
      other = false, q = { one = false, two = true }, s = { x = false, y = true } }, rows[1])
    conn:close()
  end)

  it("returns a failed report with the error instead of raising", function()
    local report = neoconn.test({ host = pg.host, port = pg.refused_port })
    assert.is_false(report.ok)
    assert.are.equal("refused", report.error.code)
    assert.are.same({ { name = "connect", ok = false, ms = report.stages[1].ms } }, report.stages)
  end)

  it("bounds the whole test by its timeout", function()
    local started = neoconn.clock()
    local report = neoconn.test({ host = pg.host, port = pg.silent_port }, { timeout = 0.4 })
    local took = neoconn.clock() - started
    assert.are.equal("timeout", report.error.code)
    assert.truthy(took >= 0.4 and took < 1.4, ("gave up after %.2f s"):format(took))
  end)
end)
