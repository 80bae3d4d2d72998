-- Relations a destination job can never write (a view the server cannot
-- write through, a materialized view, a foreign table whose wrapper does
-- not write) are blocked with a finding that says why and suggests no
-- GRANT; `exclude` leaves them, or whole schemas, out of a job. Every
-- verdict is proven by the job's statement run as the role.
local neoconn = require("neoconn")
local check = require("neoconn.check")
local config = require("neoconn.config")
local pg = require("pg")
local q = neoconn.quote_ident

-- A schema holding a table and one relation of each kind, everything
-- granted to the role.
local function relations(user)
  local schema = pg.unique("nw")
  local s = function(name) return q(schema, name) end
  pg.exec(([[
    CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s TO %s;
    CREATE TABLE %s (id int PRIMARY KEY, v text);
    CREATE VIEW %s AS SELECT v, count(*) AS n FROM %s GROUP BY v;
    CREATE VIEW %s AS SELECT id, v FROM %s;
    CREATE MATERIALIZED VIEW %s AS SELECT id, v FROM %s;
    CREATE VIEW %s AS SELECT v FROM %s GROUP BY v;
    CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
    CREATE TRIGGER insert_only INSTEAD OF INSERT ON %s FOR EACH ROW EXECUTE FUNCTION %s();
    GRANT ALL ON ALL TABLES IN SCHEMA %s TO %s;
  ]]):format(q(schema), q(schema), q(user), s("t"), s("grouped"), s("t"), s("plain"), s("t"),
    s("snapshot"), s("t"), s("instead"), s("t"), s("noop"), s("instead"), s("noop"), q(schema),
    q(user)))
  return schema
end

-- The job's one INSERT into relation name, as the role: true or the error.
local function insert_as(conn, schema, name, columns, values)
  return pg.try(conn, ("INSERT INTO %s (%s) VALUES (%s)"):format(q(schema, name), columns, values))
end

local INSERTS = {
  t = { "id, v", "1, 'a'" }, grouped = { "v, n", "'a', 1" }, plain = { "id, v", "1, 'a'" },
  snapshot = { "id, v", "1, 'a'" }, instead = { "v", "'a'" },
}

describe("relations a destination can never write", function()
  local user, password, schema
  setup(function()
    user, password = pg.login_role("nw")
    schema = relations(user)
  end)

  it("are blocked with why and no GRANT, as the server's own INSERT says", function()
    local settings = pg.settings(user, password, "destination", {}, { schemas = { schema } })
    local result = check.connection(settings)
    local conn = assert(neoconn.connect(settings.target))
    for name, insert in pairs(INSERTS) do
      local ok, err = insert_as(conn, schema, name, insert[1], insert[2])
      local verdict = pg.verdict(result, schema, name)
      assert.are.equal(ok, verdict.usable, name .. ": " .. tostring(err))
      local writable = pg.findings(result, "table.writable", name)
      if ok then
        assert.are.same({}, writable, name)
      else
        assert.are.equal(1, #writable, name)
        assert.truthy(writable[1].message:find("no GRANT makes it writable", 1, true))
        assert.is_nil(writable[1].fix:match("\nGRANT") or writable[1].fix:match("^GRANT"),
          writable[1].fix)
        assert.truthy(writable[1].fix:find("exclude", 1, true), writable[1].fix)
        -- One finding for the one cause: no grant, executor or truncate
        -- finding repeats it.
        for _, f in ipairs(result.findings) do
          if f.name == name and f.rule ~= "table.writable" then
            error(name .. ": also " .. f.rule .. ": " .. f.message)
          end
        end
      end
    end
    assert.truthy(pg.findings(result, "table.writable", "grouped")[1].message
      :find("proven: cannot insert into view", 1, true))
    assert.truthy(pg.findings(result, "table.writable", "snapshot")[1].message
      :find("materialized view", 1, true))
    conn:close()
  end)

  it("include a view that inserts but cannot update, for an upsert", function()
    local settings = pg.settings(user, password, "destination", { on_conflict = "update" },
      { tables = { { schema = schema, name = "instead" } } })
    local result = check.connection(settings)
    local writable = pg.findings(result, "table.writable", "instead")
    assert.are.equal(1, #writable)
    assert.truthy(writable[1].message:find("cannot UPDATE through", 1, true), writable[1].message)
    local conn = assert(neoconn.connect(settings.target))
    local ok, err = pg.try(conn, ("UPDATE %s SET v = 'b'"):format(q(schema, "instead")))
    assert.is_false(ok)
    assert.truthy(err.message:find("cannot update view", 1, true), err.message)
    conn:close()
  end)

  it("are not a source's concern: a source reads them all", function()
    local result = check.connection(pg.settings(user, password, "source", {}, { schemas = { schema } }))
    assert.are.same({}, pg.findings(result, "table.writable"))
    for name in pairs(INSERTS) do assert.is_true(pg.verdict(result, schema, name).usable, name) end
  end)
end)

describe("exclude", function()
  local user, password, schema
  setup(function()
    user, password = pg.login_role("nx")
    schema = relations(user)
  end)

  it("leaves tables out of a schema-scoped job: in a config, the job passes", function()
    local source = ([[connections = { d = { kind = "destination", host = %q, port = %s,
      dbname = %q, user = %q, password = %q, schemas = { %q },
      exclude = { %q, { schema = %q, name = "snapshot" }, %q } } }]]):format(pg.host, pg.port,
      pg.dbname, user, password, schema, q(schema, "grouped"), schema, q(schema, "instead"))
    local cfg = assert(config.load_string(source, "exclude.lua"))
    local result = check.connection(cfg.connections[1], { disable_rules = { "insecure_sslmode" } })
    assert.is_true(result.ok, tostring(result.findings[1] and result.findings[1].message))
    local names = {}
    for _, t in ipairs(result.tables) do names[#names + 1] = t.name end
    table.sort(names)
    assert.are.same({ "plain", "t" }, names)
  end)

  it("leaves a whole schema out, bare names being schemas, from the command line too", function()
    local other = pg.unique("nx_other")
    pg.exec(("CREATE SCHEMA %s; CREATE TABLE %s (id int)"):format(q(other), q(other, "hidden")))
    local report = neoconn.test(pg.target(user, password), { schemas = { schema, other },
      exclude = { other, schema .. ".grouped" } })
    assert.is_true(report.ok)
    for _, t in ipairs(report.tables) do
      assert.are_not.equal(other, t.schema)
      assert.are_not.equal("grouped", t.name)
    end
    assert.are.equal(4, #report.tables)
    local url = ("postgresql://%s@%s:%s/%s"):format(user, pg.host, pg.port, pg.dbname)
    local code, out = pg.cli(("test %s --as destination --schemas %s,%s --exclude %s --json")
      :format(pg.shell_quote(url), other, schema, pg.shell_quote(other .. "," .. schema
        .. ".grouped," .. schema .. ".snapshot," .. schema .. ".instead")), { PGPASSWORD = password })
    local doc = require("dkjson").decode(out)
    assert.are.equal(0, code, out)
    assert.are.equal(2, #doc.connections[1].tables)
  end)

  it("is checked like every list: names, their kinds, their number", function()
    pg.raises(function() neoconn.test(pg.target(user, password), { exclude = "x" }) end,
      "exclude: list of schemas and tables expected")
    pg.raises(function() neoconn.test(pg.target(user, password), { exclude = { 3 } }) end,
      "exclude[1]: schema, table or qualified name expected, got number")
    pg.raises(function() neoconn.test(pg.target(user, password), { exclude = { "a.b.c" } }) end,
      "exclude[1]:")
    local _, err = config.load_string(
      'connections = { d = { kind = "source", exclude = { { name = "t" } } } }', "bad.lua")
    assert.truthy(err:find("exclude[1].schema: expected a schema name", 1, true), err)
  end)
end)
