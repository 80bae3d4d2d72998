-- What the server checks for each row it writes: a PASS means the row goes
-- in. Each case is proven by one real row as the role, in a transaction
-- that is rolled back: the table is blocked exactly when the row fails,
-- for the cause the finding gives, and usable once the emitted fix is
-- applied (the row then goes in).
local neoconn = require("neoconn")
local check = require("neoconn.check")
local pg = require("pg")
local q = neoconn.quote_ident

-- A schema of the case's own ({s} in sql), the role ({r}) and, where the
-- case needs one, a group ({g}).
local function case(prefix, sql)
  local user, password = pg.login_role(prefix)
  local schema, group = pg.unique(prefix .. "_s"), pg.unique(prefix .. "_g")
  pg.exec((("CREATE ROLE {g} NOLOGIN; CREATE SCHEMA {s}; GRANT USAGE ON SCHEMA {s} TO {r}; " .. sql)
    :gsub("{s}", q(schema)):gsub("{r}", q(user)):gsub("{g}", q(group))))
  return { user = user, password = password, schema = schema, group = group }
end

local function judge(c, kind, options, extra)
  local settings = pg.settings(c.user, c.password, kind, options or {}, { schemas = { c.schema } })
  for k, v in pairs(extra or {}) do settings[k] = v end
  return check.connection(settings)
end

-- The row, as the role, rolled back: true, or false and the error.
local function row_goes_in(c, sql)
  local conn = assert(neoconn.connect(pg.target(c.user, c.password)))
  local ok, err = pg.try(conn, (sql:gsub("{s}", q(c.schema))))
  conn:close()
  return ok, err
end

local function blocked_by(result, name, rule)
  local t = assert(pg.verdict(result, nil, name) or (function()
    for _, x in ipairs(result.tables) do if x.name == name then return x end end
  end)(), name)
  for _, r in ipairs(t.blocked_by) do
    if r == rule then return true end
  end
  return false, table.concat(t.blocked_by, ",")
end

local function usable(result, name)
  for _, t in ipairs(result.tables) do
    if t.name == name then return t.usable end
  end
end

local function findings(result, rule)
  local list = {}
  for _, f in ipairs(result.findings) do
    if f.rule == rule then list[#list + 1] = f end
  end
  return list
end

-- Proves one case: blocked for rule with the row failing (sqlstate,
-- message), then the fix applied (the script, or fix_sql given), usable
-- with the row going in.
local function prove(c, kind, options, name, rule, row, sqlstate, message, fix_sql)
  local before = judge(c, kind, options)
  assert.truthy(blocked_by(before, name, rule))
  local ok, err = row_goes_in(c, row)
  assert.is_false(ok, "the row went in though " .. rule .. " blocked it")
  assert.are.equal(sqlstate, err.sqlstate, err.message)
  assert.truthy(err.message:find(message, 1, true), err.message)
  pg.exec(fix_sql or before.fix_sql)
  local after = judge(c, kind, options)
  assert.is_true(usable(after, name), table.concat(findings(after, rule)[1] and
    { findings(after, rule)[1].message } or {}, ""))
  assert(row_goes_in(c, row))
  return before, after
end

describe("a destination whose rows the server checks further", function()
  it("is blocked when a CHECK constraint calls a function the role may not EXECUTE", function()
    local c = case("rck", [[
      CREATE FUNCTION {s}.ndims(g text) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN 2; END $$;
      REVOKE EXECUTE ON FUNCTION {s}.ndims(text) FROM PUBLIC;
      CREATE TABLE {s}.place (gid serial PRIMARY KEY, name text, the_geom text,
        CONSTRAINT enforce_dims_the_geom CHECK ({s}.ndims(the_geom) = 2));
      GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON {s}.place TO {r};
      GRANT USAGE, UPDATE ON SEQUENCE {s}.place_gid_seq TO {r}]])
    local before = prove(c, "destination", {}, "place", "row.execute",
      "INSERT INTO {s}.place VALUES (1, 'x', NULL) ON CONFLICT DO NOTHING", "42501",
      "permission denied for function ndims")
    local f = findings(before, "row.execute")[1]
    assert.truthy(f.message:find("CHECK constraint enforce_dims_the_geom calls " .. q(c.schema, "ndims"),
      1, true), f.message)
    assert.are.equal(("GRANT EXECUTE ON FUNCTION %s(g text) TO %s;"):format(q(c.schema, "ndims"),
      q(c.user)), f.fix)
  end)

  it("is blocked when a domain, a generated column, an index or a partial index calls one", function()
    local c = case("rcx", [[
      CREATE FUNCTION {s}.one(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN 1; END $$;
      REVOKE EXECUTE ON FUNCTION {s}.one(int) FROM PUBLIC;
      CREATE DOMAIN {s}.small AS int CHECK ({s}.one(VALUE) = 1);
      CREATE TABLE {s}.dom (id int PRIMARY KEY, v {s}.small);
      CREATE TABLE {s}.gen (id int PRIMARY KEY, g int GENERATED ALWAYS AS ({s}.one(id)) STORED);
      CREATE TABLE {s}.idx (id int PRIMARY KEY, v int); CREATE INDEX ON {s}.idx ({s}.one(v));
      CREATE TABLE {s}.pred (id int PRIMARY KEY, v int); CREATE INDEX ON {s}.pred (v) WHERE {s}.one(v) = 1;
      GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA {s} TO {r}]])
    local rows = { dom = "INSERT INTO {s}.dom VALUES (1, 1) ON CONFLICT DO NOTHING",
      gen = "INSERT INTO {s}.gen (id) VALUES (1) ON CONFLICT DO NOTHING",
      idx = "INSERT INTO {s}.idx VALUES (1, 1) ON CONFLICT DO NOTHING",
      pred = "INSERT INTO {s}.pred VALUES (1, 1) ON CONFLICT DO NOTHING" }
    local before = judge(c, "destination")
    for name, row in pairs(rows) do
      assert.truthy(blocked_by(before, name, "row.execute"))
      local ok, err = row_goes_in(c, row)
      assert.is_false(ok, name)
      assert.are.equal("42501", err.sqlstate, name .. ": " .. err.message)
    end
    pg.exec(before.fix_sql)
    local after = judge(c, "destination")
    for name, row in pairs(rows) do
      assert.is_true(usable(after, name), name)
      assert(row_goes_in(c, row))
    end
  end)

  it("is blocked for each partition a row can land in, its own constraints included", function()
    local c = case("rcp", [[
      CREATE FUNCTION {s}.pos(x int) RETURNS bool LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN x > 0; END $$;
      REVOKE EXECUTE ON FUNCTION {s}.pos(int) FROM PUBLIC;
      CREATE TABLE {s}.parted (id int, v int) PARTITION BY RANGE (id);
      CREATE TABLE {s}.low PARTITION OF {s}.parted FOR VALUES FROM (0) TO (100);
      ALTER TABLE {s}.low ADD CONSTRAINT positive CHECK ({s}.pos(v));
      GRANT SELECT, INSERT ON {s}.parted TO {r}]])
    prove(c, "destination", {}, "parted", "row.execute",
      "INSERT INTO {s}.parted VALUES (1, 1) ON CONFLICT DO NOTHING", "42501",
      "permission denied for function pos")
  end)

  it("is blocked when a foreign key's referenced table's owner lacks USAGE on its schema", function()
    local c = case("rcf", [[
      CREATE SCHEMA {s}_parent; REVOKE ALL ON SCHEMA {s}_parent FROM PUBLIC;
      CREATE TABLE {s}_parent.usrgrp (usrgrpid bigint PRIMARY KEY, name text);
      INSERT INTO {s}_parent.usrgrp VALUES (1, 'admins');
      CREATE TABLE {s}.rights (rightid bigint PRIMARY KEY,
        groupid bigint NOT NULL REFERENCES {s}_parent.usrgrp, permission int NOT NULL DEFAULT 0);
      ALTER TABLE {s}_parent.usrgrp OWNER TO {g};
      GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA {s} TO {r}]])
    local before = prove(c, "destination", {}, "rights", "row.foreign_keys",
      "INSERT INTO {s}.rights VALUES (1, 1, 0) ON CONFLICT DO NOTHING", "42501",
      "permission denied for schema")
    local f = findings(before, "row.foreign_keys")[1]
    assert.truthy(f.message:find("owner " .. q(c.group), 1, true), f.message)
    assert.are.equal(("GRANT USAGE ON SCHEMA %s TO %s;"):format(q(c.schema .. "_parent"), q(c.group)),
      f.fix)
  end)

  it("blocks, for a job that truncates, the tables such an unusable table references", function()
    local c = case("rct", [[
      CREATE SCHEMA {s}_team; REVOKE ALL ON SCHEMA {s}_team FROM PUBLIC;
      CREATE TABLE {s}.usrgrp (usrgrpid bigint PRIMARY KEY);
      CREATE TABLE {s}.rights (rightid bigint PRIMARY KEY, groupid bigint REFERENCES {s}.usrgrp);
      CREATE TABLE {s}_team.lookup (id int PRIMARY KEY);
      ALTER TABLE {s}.rights ADD COLUMN kind int REFERENCES {s}_team.lookup;
      ALTER TABLE {s}_team.lookup OWNER TO {g};
      GRANT SELECT, INSERT, TRUNCATE ON ALL TABLES IN SCHEMA {s} TO {r}]])
    local result = judge(c, "destination", { truncate = true })
    assert.truthy(blocked_by(result, "rights", "row.foreign_keys"))
    assert.truthy(blocked_by(result, "usrgrp", "table.truncate_references"))
  end)

  it("is blocked when ON CONFLICT would meet a DEFERRABLE key as its arbiter", function()
    local c = case("rcd", [[
      CREATE TABLE {s}.d (id int PRIMARY KEY, k int UNIQUE DEFERRABLE INITIALLY IMMEDIATE);
      CREATE TABLE {s}.dpk (id int PRIMARY KEY DEFERRABLE, v text);
      GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {s} TO {r}]])
    local fix = ("ALTER TABLE %s DROP CONSTRAINT d_k_key, ADD CONSTRAINT d_k_key UNIQUE (k)")
      :format(q(c.schema, "d"))
    local before = prove(c, "destination", {}, "d", "row.arbiters",
      "INSERT INTO {s}.d VALUES (1, 1) ON CONFLICT DO NOTHING", "55000",
      "ON CONFLICT does not support deferrable unique constraints", fix)
    assert.truthy(findings(before, "row.arbiters")[1].fix:find(fix .. ";", 1, true))
    -- An upsert's arbiter is the primary key: a DEFERRABLE one.
    local upsert = judge(c, "destination", { on_conflict = "update" })
    assert.truthy(blocked_by(upsert, "dpk", "row.arbiters"))
    assert.is_false(row_goes_in(c, "INSERT INTO {s}.dpk VALUES (1, 'a') ON CONFLICT (id) DO UPDATE"
      .. " SET v = EXCLUDED.v"))
  end)

  it("is blocked when an upsert changes a key referenced from a table whose owner cannot check it",
    function()
      local c = case("rcu", [[
        CREATE SCHEMA {s}_child; REVOKE ALL ON SCHEMA {s}_child FROM PUBLIC;
        CREATE TABLE {s}.p (id int PRIMARY KEY, code text UNIQUE);
        INSERT INTO {s}.p VALUES (1, 'a');
        CREATE TABLE {s}_child.c (id int PRIMARY KEY, code text REFERENCES {s}.p (code) ON UPDATE CASCADE);
        INSERT INTO {s}_child.c VALUES (1, 'a');
        ALTER TABLE {s}_child.c OWNER TO {g};
        GRANT SELECT, INSERT, UPDATE ON {s}.p TO {r}]])
      prove(c, "destination", { on_conflict = "update" }, "p", "row.foreign_keys",
        "INSERT INTO {s}.p VALUES (1, 'b') ON CONFLICT (id) DO UPDATE SET code = EXCLUDED.code",
        "42501", "permission denied for schema")
    end)
end)

describe("row-level security that filters", function()
  it("is named with each policy and its expression, and lifted by the owner's decision", function()
    local c = case("rcr", [[
      CREATE TABLE {s}.docs (id int PRIMARY KEY, tenant text);
      INSERT INTO {s}.docs VALUES (1, 'a'), (2, 'b');
      ALTER TABLE {s}.docs ENABLE ROW LEVEL SECURITY;
      CREATE POLICY tenant_a ON {s}.docs FOR ALL TO {r} USING (tenant = 'a') WITH CHECK (tenant = 'a');
      GRANT SELECT, INSERT ON {s}.docs TO {r};
      CREATE TABLE {s}.open (id int PRIMARY KEY);
      ALTER TABLE {s}.open ENABLE ROW LEVEL SECURITY;
      CREATE POLICY everyone ON {s}.open FOR ALL TO PUBLIC USING (true) WITH CHECK (true);
      GRANT SELECT, INSERT ON {s}.open TO {r}]])
    for _, kind in ipairs({ "source", "destination" }) do
      local result = judge(c, kind)
      local found = findings(result, "policy.filters_rows")
      assert.are.equal(1, #found, kind)
      assert.are.same({ "warning", "docs" }, { found[1].level, found[1].name })
      assert.truthy(found[1].message:find("permissive tenant_a (ALL)", 1, true), found[1].message)
      assert.truthy(found[1].message:find("(tenant = 'a'::text)", 1, true), found[1].message)
      assert.truthy(found[1].fix:find("BYPASSRLS", 1, true))
      assert.is_nil(found[1].fix:find("\nGRANT", 1, true))
    end
    -- The truth, as the role: it sees one of two rows, and a row of
    -- another tenant fails.
    local conn = assert(neoconn.connect(pg.target(c.user, c.password)))
    assert.are.equal(1, #assert(conn:query("SELECT * FROM " .. q(c.schema, "docs"))))
    conn:close()
    local ok, err = row_goes_in(c, "INSERT INTO {s}.docs VALUES (3, 'b')")
    assert.is_false(ok)
    assert.are.equal("42501", err.sqlstate)
    assert(row_goes_in(c, "INSERT INTO {s}.docs VALUES (3, 'a')"))
    -- The owner's decision: the role bypasses row-level security.
    pg.exec(("ALTER ROLE %s BYPASSRLS"):format(q(c.user)))
    assert.are.same({}, findings(judge(c, "source"), "policy.filters_rows"))
    assert(row_goes_in(c, "INSERT INTO {s}.docs VALUES (3, 'b')"))
  end)

  it("names restrictive policies too, and nothing where every row is admitted", function()
    local c = case("rcs", [[
      CREATE TABLE {s}.t (id int PRIMARY KEY);
      ALTER TABLE {s}.t ENABLE ROW LEVEL SECURITY;
      CREATE POLICY everyone ON {s}.t FOR SELECT TO PUBLIC USING (true);
      CREATE POLICY positive ON {s}.t AS RESTRICTIVE FOR SELECT TO {r} USING (id > 0);
      GRANT SELECT ON {s}.t TO {r}]])
    local found = findings(judge(c, "source"), "policy.filters_rows")
    assert.are.equal(1, #found)
    assert.truthy(found[1].message:find("restrictive positive (SELECT) USING (id > 0)", 1, true),
      found[1].message)
    pg.exec(("DROP POLICY positive ON %s"):format(q(c.schema, "t")))
    assert.are.same({}, findings(judge(c, "source"), "policy.filters_rows"))
  end)
end)
