-- Privilege verdicts of neoconn.test, proven by running the real statements
-- as the role: for every table and privilege, the statement succeeds
-- exactly when the report says it may.
local neoconn = require("neoconn")
local pg = require("pg")
local it_read_all_data = pg.it_if(it, pending, pg.major >= 14, "pg_read_all_data came in 14")
local q = neoconn.quote_ident

-- The statement each verdict stands for; %s is the qualified table.
local statements = {
  SELECT = "SELECT id, v FROM %s",
  INSERT = "INSERT INTO %s (id, v) VALUES (1, 'x')",
  UPDATE = "UPDATE %s SET id = 2, v = 'y'",
  DELETE = "DELETE FROM %s",
  TRUNCATE = "TRUNCATE %s",
  REFERENCES = "CREATE TABLE neoconn_scratch.ref (id int REFERENCES %s (id))",
  TRIGGER = "CREATE TRIGGER neoconn_trg BEFORE UPDATE ON %s FOR EACH ROW"
    .. " EXECUTE FUNCTION suppress_redundant_updates_trigger()",
}

local function schema_entry(report, name)
  for _, s in ipairs(report.schemas) do
    if s.name == name then return s end
  end
end

-- What the report promises for one statement.
local function promised(report, t, privilege)
  local usage = schema_entry(report, t.schema).usage
  local ok = t.privileges[privilege]
  if t.columns[privilege] == "all" then ok = true end
  if privilege == "INSERT" and t.rls.applies and not t.rls.insert_policy then ok = false end
  return usage and ok
end

--- Connects as the role, tests the schema, and checks every verdict
-- against the statement. Returns the report for scenario-specific checks.
local function prove(user, password, schema)
  local conn = assert(neoconn.connect(pg.target(user, password)))
  local report = neoconn.test(conn, { schemas = { schema } })
  assert.is_true(report.ok, tostring(report.error))
  assert.truthy(#report.tables > 0, "no tables in " .. schema)
  for _, t in ipairs(report.tables) do
    local name = q(t.schema, t.name)
    for privilege, sql in pairs(statements) do
      local expected = promised(report, t, privilege)
      local ran, err = pg.try(conn, sql:format(name))
      assert(ran == expected, string.format("%s on %s: report says %s, PostgreSQL says %s (%s)",
        privilege, name, tostring(expected), tostring(ran), tostring(err)))
    end
  end
  conn:close()
  return report
end

-- A login role and a schema it may use, with one table (id int primary
-- key, v text) on which it has nothing yet.
local function scenario(prefix, table_name)
  local user, password = pg.login_role(prefix)
  local schema, t = pg.schema_with_table(user, prefix, { table = table_name })
  return user, password, schema, t
end

describe("neoconn.test privilege verdicts", function()
  setup(function()
    -- Somewhere every role may create the referencing table.
    pg.exec("CREATE SCHEMA IF NOT EXISTS neoconn_scratch;"
      .. " GRANT USAGE, CREATE ON SCHEMA neoconn_scratch TO PUBLIC")
  end)

  it("follow grants made directly to the role", function()
    local user, password, schema, t = scenario("direct")
    pg.exec(("GRANT SELECT, INSERT ON %s TO %s"):format(t, q(user)))
    local report = prove(user, password, schema)
    local entry = report.tables[1]
    assert.is_true(entry.privileges.SELECT)
    assert.is_false(entry.privileges.DELETE)
  end)

  it("follow grants to a group role the login role inherits", function()
    local user, password, schema, t = scenario("group")
    local group = pg.unique("grp")
    pg.exec(("CREATE ROLE %s; GRANT SELECT, UPDATE, TRUNCATE ON %s TO %s; GRANT %s TO %s")
      :format(q(group), t, q(group), q(group), q(user)))
    local report = prove(user, password, schema)
    assert.is_true(report.tables[1].privileges.UPDATE)
    assert.are.same({ group }, report.role.inherits)
  end)

  it("do not pass through NOINHERIT memberships, only SET ROLE", function()
    local user, password, schema, t = scenario("noinherit")
    local direct, inner, deeper = pg.unique("g1"), pg.unique("g2"), pg.unique("g3")
    -- user NOINHERIT -> direct (SELECT); user -> inner (INHERIT) -> deeper,
    -- with inner NOINHERIT, so deeper's DELETE does not reach the user.
    pg.exec(("CREATE ROLE %s; CREATE ROLE %s NOINHERIT; CREATE ROLE %s;"
      .. " GRANT SELECT ON %s TO %s; GRANT INSERT ON %s TO %s; GRANT DELETE ON %s TO %s;"
      .. " GRANT %s TO %s; GRANT %s TO %s")
      :format(q(direct), q(inner), q(deeper), t, q(direct), t, q(inner), t, q(deeper),
        q(deeper), q(inner), q(inner), q(user)))
    local noinherit_user, noinherit_pw = pg.login_role("ni", "NOINHERIT")
    pg.exec(("GRANT %s TO %s; GRANT USAGE ON SCHEMA %s TO %s")
      :format(q(direct), q(noinherit_user), q(schema), q(noinherit_user)))
    local report = prove(user, password, schema)
    assert.is_true(report.tables[1].privileges.INSERT)
    assert.is_false(report.tables[1].privileges.DELETE)
    local other = prove(noinherit_user, noinherit_pw, schema)
    assert.is_false(other.tables[1].privileges.SELECT)
    assert.are.same({ direct }, other.role.set_role_only)
  end)

  it("tell roles it may SET ROLE to from those it may not (PostgreSQL 16 membership options)",
    function()
      local user, password = pg.login_role("setopt")
      local settable, neither = pg.unique("setopt_s"), pg.unique("setopt_n")
      pg.exec(("CREATE ROLE %s; CREATE ROLE %s"):format(q(settable), q(neither)))
      local conn = assert(neoconn.connect(pg.target(user, password)))
      if pg.major >= 16 then
        pg.exec(("GRANT %s TO %s WITH INHERIT FALSE; GRANT %s TO %s WITH INHERIT FALSE, SET FALSE")
          :format(q(settable), q(user), q(neither), q(user)))
        local role = neoconn.test(conn).role
        assert.are.same({ settable }, role.set_role_only)
        assert.are.same({ neither }, role.member_only)
        assert.is_true((pg.try(conn, "SET ROLE " .. q(settable))))
        assert.is_false((pg.try(conn, "SET ROLE " .. q(neither))))
      else
        -- Before 16 every membership allows SET ROLE: there is no member_only.
        pg.exec(("GRANT %s TO %s"):format(q(settable), q(user)))
        local role = neoconn.test(conn).role
        assert.is_nil(role.member_only)
        assert.is_true((pg.try(conn, "SET ROLE " .. q(settable))))
      end
      conn:close()
    end)

  it("include grants to PUBLIC", function()
    local user, password, schema, t = scenario("public")
    pg.exec(("GRANT SELECT, DELETE ON %s TO PUBLIC"):format(t))
    local report = prove(user, password, schema)
    assert.is_true(report.tables[1].privileges.DELETE)
  end)

  it("give owners, and roles inheriting from the owner, every privilege", function()
    local user, password, schema, t = scenario("owner")
    local owner = pg.unique("own")
    pg.exec(("CREATE ROLE %s; GRANT USAGE ON SCHEMA %s TO %s; ALTER TABLE %s OWNER TO %s;"
      .. " GRANT %s TO %s"):format(q(owner), q(schema), q(owner), t, q(owner), q(owner), q(user)))
    local report = prove(user, password, schema)
    local entry = report.tables[1]
    assert.are.same({ name = owner, is_self = false, is_member = true }, entry.owner)
    assert.is_true(entry.privileges.TRUNCATE)
  end)

  it("count column grants, all or some", function()
    local user, password, schema, t = scenario("columns")
    pg.exec(("CREATE TABLE %s (id int PRIMARY KEY, v text);"
      .. " GRANT SELECT (id, v), INSERT (id, v), UPDATE (v) ON %s TO %s;"
      .. " GRANT SELECT (id), UPDATE (id, v) ON %s TO %s")
      :format(q(schema, "t2"), t, q(user), q(schema, "t2"), q(user)))
    local report = prove(user, password, schema)
    local full, partial = pg.find_table(report, schema, "t"), pg.find_table(report, schema, "t2")
    assert.are.same({ SELECT = "all", INSERT = "all", UPDATE = "some" }, full.columns)
    assert.are.same({ SELECT = "some", INSERT = "none", UPDATE = "all" }, partial.columns)
    assert.is_false(full.privileges.SELECT)
  end)

  it_read_all_data("see predefined roles pg_read_all_data and pg_write_all_data", function()
    local user, password, schema = scenario("predef")
    pg.exec(("GRANT pg_read_all_data, pg_write_all_data TO %s"):format(q(user)))
    local report = prove(user, password, schema)
    local p = report.tables[1].privileges
    assert.is_true(p.SELECT and p.INSERT and p.UPDATE and p.DELETE)
    assert.is_false(p.TRUNCATE)
  end)

  it("give a superuser everything", function()
    local user, password, schema = scenario("super")
    pg.exec(("ALTER ROLE %s SUPERUSER"):format(q(user)))
    local report = prove(user, password, schema)
    assert.is_true(report.role.superuser)
    assert.is_true(report.tables[1].privileges.TRIGGER)
  end)

  it("fail every statement in a schema without USAGE", function()
    local user, password, schema, t = scenario("nousage")
    pg.exec(("GRANT ALL ON %s TO %s; REVOKE USAGE ON SCHEMA %s FROM %s")
      :format(t, q(user), q(schema), q(user)))
    local report = prove(user, password, schema)
    assert.is_false(report.schemas[1].usage)
    assert.is_true(report.tables[1].privileges.SELECT)
  end)

  it("know when row-level security blocks inserts", function()
    local user, password, schema, t = scenario("rls")
    pg.exec(("CREATE TABLE %s (id int PRIMARY KEY, v text);"
      .. " GRANT SELECT, INSERT ON %s, %s TO %s;"
      .. " ALTER TABLE %s ENABLE ROW LEVEL SECURITY; ALTER TABLE %s ENABLE ROW LEVEL SECURITY;"
      .. " CREATE POLICY p ON %s FOR INSERT TO %s WITH CHECK (true)")
      :format(q(schema, "open"), t, q(schema, "open"), q(user), t, q(schema, "open"),
        q(schema, "open"), q(user)))
    local report = prove(user, password, schema)
    local closed, open = pg.find_table(report, schema, "t"), pg.find_table(report, schema, "open")
    assert.are.same({ enabled = true, forced = false, applies = true, insert_policy = false,
      update_policy = false, select_policy = false }, closed.rls)
    assert.is_true(open.rls.insert_policy)
  end)

  it("count a policy FOR ALL for inserts, updates and selects", function()
    local user, password, schema, t = scenario("rlsall")
    pg.exec(("GRANT SELECT, INSERT, UPDATE ON %s TO %s; ALTER TABLE %s ENABLE ROW LEVEL SECURITY;"
      .. " CREATE POLICY every ON %s FOR ALL TO %s USING (true) WITH CHECK (true)")
      :format(t, q(user), t, t, q(user)))
    local report = prove(user, password, schema)
    assert.are.same({ enabled = true, forced = false, applies = true, insert_policy = true,
      update_policy = true, select_policy = true }, pg.find_table(report, schema, "t").rls)
  end)

  it("keep each table's own verdict when tables share or differ in ACL and owner", function()
    local user, password, schema, t = scenario("mixed")
    local owner = pg.unique("own")
    local function tbl(name) return q(schema, name) end
    pg.exec(([[
      CREATE ROLE %s; GRANT %s TO %s; GRANT USAGE, CREATE ON SCHEMA %s TO %s;
      CREATE TABLE %s (id int PRIMARY KEY, v text); CREATE TABLE %s (id int PRIMARY KEY, v text);
      GRANT SELECT ON %s, %s, %s TO %s;
      CREATE TABLE %s (id int PRIMARY KEY, v text); ALTER TABLE %s OWNER TO %s;
      CREATE TABLE %s (id int PRIMARY KEY, v text); ALTER TABLE %s OWNER TO %s;
      REVOKE ALL ON %s FROM %s;
      CREATE TABLE %s (id int PRIMARY KEY, v text);
      CREATE TABLE %s (id int PRIMARY KEY, v text); GRANT INSERT ON %s TO %s;
    ]]):format(q(owner), q(owner), q(user), q(schema), q(owner),
      tbl("same1"), tbl("same2"), t, tbl("same1"), tbl("same2"), q(user),
      tbl("owned_default"), tbl("owned_default"), q(owner),
      tbl("owned_empty"), tbl("owned_empty"), q(owner), tbl("owned_empty"), q(owner),
      tbl("untouched"), tbl("insert_only"), tbl("insert_only"), q(user)))
    local report = prove(user, password, schema)
    local function p(name) return pg.find_table(report, schema, name).privileges end
    assert.is_true(p("same1").SELECT and p("same2").SELECT and p("t").SELECT)
    assert.is_true(p("owned_default").TRUNCATE)
    assert.is_false(p("owned_empty").SELECT)
    assert.is_false(p("untouched").SELECT)
    assert.are.same({ false, true }, { p("insert_only").SELECT, p("insert_only").INSERT })
    assert.are.equal(7, #report.tables) -- each table once
  end)

  it("handle quoted identifiers: spaces, quotes, dots, non-ASCII", function()
    local user, password, schema, t = scenario("quoted", 'a.b "c" ü 表')
    pg.exec(("GRANT SELECT, INSERT, UPDATE ON %s TO %s"):format(t, q(user)))
    local report = prove(user, password, schema)
    assert.are.equal('a.b "c" ü 表', report.tables[1].name)
  end)
end)

describe("version-specific privileges and columns", function()
  local it_maintain = pg.it_if(it, pending, pg.major >= 17, "MAINTAIN came in 17")
  local it_virtual = pg.it_if(it, pending, pg.major >= 18, "virtual generated columns came in 18")

  it("report MAINTAIN exactly where the server has it", function()
    local user, password = pg.login_role("mnt")
    local schema = pg.schema_with_table(user, "mnt", { grant = "SELECT" })
    local t = neoconn.test(pg.target(user, password), { schemas = { schema } }).tables[1]
    if pg.major >= 17 then
      assert.is_false(t.privileges.MAINTAIN)
    else
      assert.is_nil(t.privileges.MAINTAIN)
    end
  end)

  it_maintain("prove MAINTAIN by taking the lock only it allows a reader", function()
    local user, password = pg.login_role("mnt2")
    local schema, t = pg.schema_with_table(user, "mnt2", { grant = "SELECT" })
    local conn = assert(neoconn.connect(pg.target(user, password)))
    local function report() return neoconn.test(conn, { schemas = { schema } }).tables[1] end
    local lock = "LOCK TABLE " .. t .. " IN ACCESS EXCLUSIVE MODE"
    assert.is_false(report().privileges.MAINTAIN)
    assert.is_false((pg.try(conn, lock)))
    pg.exec(("GRANT MAINTAIN ON %s TO %s"):format(t, q(user)))
    assert.is_true(report().privileges.MAINTAIN)
    assert.is_true((pg.try(conn, lock)))
    conn:close()
  end)

  it_virtual("leave virtual generated columns out of the statements, as stored ones", function()
    local user, password = pg.login_role("virt")
    local schema = pg.schema_with_table(user, "virt", { grant = "INSERT, SELECT",
      columns = "id int PRIMARY KEY, v text, doubled int GENERATED ALWAYS AS (id * 2) VIRTUAL" })
    local report = neoconn.test(pg.target(user, password), { schemas = { schema },
      job = { kind = "destination" } })
    local t = report.tables[1]
    assert.are.same({ "doubled" }, t.generated)
    assert.is_nil(t.refused)
    assert.are.equal(("INSERT INTO %s.t (id, v) VALUES (NULL, NULL) ON CONFLICT DO NOTHING")
      :format(q(schema)), t.statement)
    local conn = assert(neoconn.connect(pg.target(user, password)))
    assert.is_true((pg.try(conn, ("INSERT INTO %s.t (id, v) VALUES (1, 'x')"):format(q(schema)))))
    conn:close()
  end)
end)
