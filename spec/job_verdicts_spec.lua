-- A PASS means the job runs: each case below used to pass the check and
-- fail in the real job. Every verdict here is set against the job's real
-- statement run as the role.
local neoconn = require("neoconn")
local check = require("neoconn.check")
local pg = require("pg")
local it_with_standby = pg.it_with_standby(it, pending)
local it_security_invoker = pg.it_if(it, pending, pg.major >= 15, "security_invoker views came in 15")
local it_write_all_data = pg.it_if(it, pending, pg.major >= 14, "pg_write_all_data came in 14")
local q = neoconn.quote_ident

-- Runs sql with {s} (the schema) and {r} (the role) filled in, as the superuser.
local function exec(sql, schema, role, run)
  return (run or pg.exec)((sql:gsub("{s}", q(schema)):gsub("{r}", q(role))))
end

-- A login role and a schema it may use, filled by sql.
local function scenario(prefix, sql)
  local user, password = pg.login_role(prefix)
  local schema = pg.unique(prefix .. "_s")
  exec("CREATE SCHEMA {s}; GRANT USAGE ON SCHEMA {s} TO {r}; " .. sql, schema, user)
  return user, password, schema
end

local function connect(user, password, extra)
  return assert(neoconn.connect(pg.target(user, password, extra)))
end

describe("a destination that cannot write", function()
  it_with_standby("is blocked on a hot standby, every table unusable, while a source there is fine",
    function()
    local user, password, schema = scenario("hs", [[
      CREATE TABLE {s}.t (id int PRIMARY KEY, v text); GRANT SELECT, INSERT ON {s}.t TO {r}]])
    pg.wait_for_standby()
    local on_standby = { port = pg.standby_port }
    local dst = check.connection(pg.settings(user, password, "destination", {}, { schemas = { schema } },
      on_standby))
    assert.is_true(dst.report.server.in_hot_standby)
    assert.is_false(dst.ok)
    local f = pg.findings(dst, "session.read_write")[1]
    assert.are.equal("connection", f.object_type)
    assert.truthy(f.fix:find("target_session_attrs=read-write", 1, true))
    assert.is_false(pg.verdict(dst, schema, "t").usable)
    assert.are.same({ "session.read_write" }, pg.verdict(dst, schema, "t").blocked_by)
    local conn = connect(user, password, on_standby)
    local ok, err = pg.try(conn, ("INSERT INTO %s.t VALUES (1, 'x')"):format(q(schema)))
    assert.is_false(ok)
    assert.truthy(err.message:find("read-only transaction", 1, true))
    assert.is_true(pg.try(conn, ("SELECT id, v FROM %s.t"):format(q(schema))))
    conn:close()
    local src = check.connection(pg.settings(user, password, "source", {}, { schemas = { schema } },
      on_standby))
    assert.is_true(src.ok)
    assert.is_true(pg.verdict(src, schema, "t").usable)
  end)

  -- Sets default_transaction_read_only for the role at a level; the check
  -- names it, INSERT fails, the fix SQL undoes it and INSERT works.
  local levels = {
    role = "ALTER ROLE {r} SET default_transaction_read_only = on",
    database = "ALTER DATABASE {d} SET default_transaction_read_only = on",
    ["role in database"] = "ALTER ROLE {r} IN DATABASE {d} SET default_transaction_read_only = on",
  }
  for level, sql in pairs(levels) do
    it("is blocked by default_transaction_read_only set for the " .. level .. ", until the fix", function()
      local db = pg.unique("ro_db")
      local run, admin = pg.private_database(db)
      local user, password = pg.login_role("ro")
      local schema = pg.unique("ro_s")
      exec(("GRANT CONNECT ON DATABASE %s TO {r}; CREATE SCHEMA {s}; GRANT USAGE ON SCHEMA {s} TO {r};"
        .. " CREATE TABLE {s}.t (id int PRIMARY KEY, v text); GRANT INSERT ON {s}.t TO {r}")
        :format(q(db)), schema, user, run)
      exec(sql:gsub("{d}", q(db)), schema, user)
      local settings = pg.settings(user, password, "destination", {}, { schemas = { schema } },
        { dbname = db })
      local result = check.connection(settings)
      assert.is_true(result.report.session.default_transaction_read_only)
      assert.are.equal(level, result.report.session.read_only_source)
      local f = pg.findings(result, "session.read_write")[1]
      assert.truthy(f, "no session.read_write finding")
      assert.is_false(pg.verdict(result, schema, "t").usable)
      local insert = ("INSERT INTO %s.t VALUES (1, 'x')"):format(q(schema))
      local conn = assert(neoconn.connect(settings.target))
      assert.is_false((pg.try(conn, insert)))
      conn:close()
      pg.exec(f.fix)
      result = check.connection(settings)
      assert.is_true(result.ok, result.fix_sql)
      conn = assert(neoconn.connect(settings.target))
      assert.is_true((pg.try(conn, insert)))
      conn:close()
      admin:close()
    end)
  end

  it("is blocked by default_transaction_read_only in the connection's own options", function()
    local user, password, schema = scenario("rocl", [[
      CREATE TABLE {s}.t (id int PRIMARY KEY); GRANT INSERT ON {s}.t TO {r}]])
    local settings = pg.settings(user, password, "destination", {}, { schemas = { schema } },
      { options = "-c default_transaction_read_only=on" })
    local result = check.connection(settings)
    assert.are.equal("client", result.report.session.read_only_source)
    local f = pg.findings(result, "session.read_write")[1]
    assert.truthy(f.fix:find("^%-%- remove default_transaction_read_only"), f.fix)
    assert.is_false(pg.verdict(result, schema, "t").usable)
    local conn = assert(neoconn.connect(settings.target))
    assert.is_false((pg.try(conn, ("INSERT INTO %s VALUES (1)"):format(q(schema, "t")))))
    conn:close()
  end)

  it("is blocked by default_transaction_read_only in the server's configuration, until the fix", function()
    local function plain_admin()
      local c = assert(neoconn.connect({ host = pg.socket, port = pg.plain_port, user = pg.admin_user,
        dbname = "postgres" }))
      assert(c:query("SET default_transaction_read_only = off"))
      return c
    end
    local admin = plain_admin()
    local user, password = pg.unique("ro_srv"), "pw-ro-srv-S3cret"
    assert(admin:query(("CREATE ROLE %s LOGIN PASSWORD '%s'; CREATE TABLE %s (id int PRIMARY KEY);"
      .. " GRANT INSERT ON %s TO %s"):format(q(user), password, q(user), q(user), q(user))))
    -- Waits until new sessions see the server's setting as it now is.
    local function reload_until(value)
      assert(admin:query("SELECT pg_reload_conf()"))
      local deadline = neoconn.clock() + 30
      repeat
        local c = plain_admin()
        local rows = assert(c:query("SELECT reset_val FROM pg_settings"
          .. " WHERE name = 'default_transaction_read_only'"))
        c:close()
        if rows[1].reset_val == value then return end
      until neoconn.clock() > deadline
      error("the server did not reload")
    end
    local settings = pg.settings(user, password, "destination", {},
      { tables = { { schema = "public", name = user } } },
      { port = pg.plain_port, dbname = "postgres", sslmode = "disable" })
    assert(admin:query("ALTER SYSTEM SET default_transaction_read_only = on"))
    finally(function()
      assert(admin:query("ALTER SYSTEM RESET default_transaction_read_only"))
      reload_until("off")
      admin:close()
    end)
    reload_until("on")
    local result = check.connection(settings)
    assert.are.equal("server", result.report.session.read_only_source)
    local f = pg.findings(result, "session.read_write")[1]
    assert.are.equal(("ALTER ROLE %s SET default_transaction_read_only = off;"):format(q(user)), f.fix)
    assert.is_false(result.ok)
    assert(admin:query(f.fix))
    assert.is_true(check.connection(settings).ok)
    local conn = assert(neoconn.connect(settings.target))
    assert.is_true((pg.try(conn, ("INSERT INTO %s VALUES (1)"):format(q(user)))))
    conn:close()
  end)
end)

describe("the executor proof", function()
  it("blocks a view whose owner cannot read its base table, as SELECT fails", function()
    local user, password, schema = scenario("vw", [[
      CREATE TABLE {s}.base (id int PRIMARY KEY, v text);
      CREATE ROLE {r}_owner; GRANT USAGE ON SCHEMA {s} TO {r}_owner;
      CREATE VIEW {s}.v AS SELECT id, v FROM {s}.base; ALTER VIEW {s}.v OWNER TO {r}_owner;
      GRANT SELECT ON {s}.v TO {r}]])
    local settings = pg.settings(user, password, "source", {},
      { tables = { { schema = schema, name = "v" } } })
    local result = check.connection(settings)
    local t = pg.find_table(result.report, schema, "v")
    assert.is_true(t.privileges.SELECT) -- the grants look right
    assert.are.equal("executor", t.proof)
    assert.are.same({ "table.statements" }, pg.verdict(result, schema, "v").blocked_by)
    local f = pg.findings(result, "table.statements", "v")[1]
    assert.truthy(f.message:find("permission denied for table base", 1, true))
    local conn = connect(user, password)
    local ok, err = pg.try(conn, ("SELECT id, v FROM %s.v"):format(q(schema)))
    assert.is_false(ok)
    assert.truthy(err.message:find("permission denied for table base", 1, true))
    exec("GRANT SELECT ON {s}.base TO {r}_owner", schema, user)
    assert.is_true((pg.try(conn, ("SELECT id, v FROM %s.v"):format(q(schema)))))
    assert.is_true(check.connection(settings).ok)
    conn:close()
  end)

  it_security_invoker("blocks a security_invoker view whose base table the role cannot read", function()
    local user, password, schema = scenario("vi", [[
      CREATE TABLE {s}.base (id int PRIMARY KEY, v text);
      CREATE VIEW {s}.v WITH (security_invoker = true) AS SELECT id, v FROM {s}.base;
      GRANT SELECT ON {s}.v TO {r}]])
    local settings = pg.settings(user, password, "source", {},
      { tables = { { schema = schema, name = "v" } } })
    assert.is_false(pg.verdict(check.connection(settings), schema, "v").usable)
    local conn = connect(user, password)
    assert.is_false((pg.try(conn, ("SELECT id, v FROM %s.v"):format(q(schema)))))
    exec("GRANT SELECT ON {s}.base TO {r}", schema, user)
    assert.is_true((pg.try(conn, ("SELECT id, v FROM %s.v"):format(q(schema)))))
    assert.is_true(pg.verdict(check.connection(settings), schema, "v").usable)
    conn:close()
  end)

  it_write_all_data("blocks an upsert whose UPDATE comes only from pg_write_all_data, and its fix works",
    function()
    local user, password, schema = scenario("pw", [[
      CREATE TABLE {s}.t (id int PRIMARY KEY, v text); INSERT INTO {s}.t VALUES (1, 'old');
      GRANT SELECT, INSERT ON {s}.t TO {r}; GRANT pg_write_all_data TO {r}]])
    local settings = pg.settings(user, password, "destination", { on_conflict = "update" },
      { schemas = { schema } })
    local result = check.connection(settings)
    local t = pg.find_table(result.report, schema, "t")
    assert.is_true(t.privileges.UPDATE) -- has_table_privilege says yes
    assert.is_false(result.ok)
    assert.are.same({ "table.statements" }, pg.verdict(result, schema, "t").blocked_by)
    local upsert = ("INSERT INTO %s.t (id, v) VALUES (1, 'new') ON CONFLICT (id)"
      .. " DO UPDATE SET v = EXCLUDED.v"):format(q(schema))
    local conn = connect(user, password)
    local ok, err = pg.try(conn, upsert)
    assert.is_false(ok)
    assert.are.equal("42501", err.sqlstate)
    pg.exec(result.fix_sql)
    assert.is_true((pg.try(conn, upsert)))
    assert.is_true(check.connection(settings).ok)
    conn:close()
  end)

  it("inserts identity ALWAYS columns with OVERRIDING SYSTEM VALUE and skips generated ones", function()
    local user, password, schema = scenario("gen", [[
      CREATE TABLE {s}.t (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text,
        doubled int GENERATED ALWAYS AS (id * 2) STORED);
      GRANT INSERT, SELECT, UPDATE ON {s}.t TO {r}]])
    local result = check.connection(pg.settings(user, password, "destination", { on_conflict = "update" },
      { schemas = { schema } }))
    assert.is_true(result.ok, result.fix_sql)
    local t = pg.find_table(result.report, schema, "t")
    assert.are.same({ "id" }, t.identity_always)
    assert.are.same({ "doubled" }, t.generated)
    assert.are.same({ "id" }, t.primary_key)
    assert.are.equal(("INSERT INTO %s.t (id, v) OVERRIDING SYSTEM VALUE VALUES (NULL, NULL)"
      .. " ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v"):format(q(schema)), t.statement)
    local conn = connect(user, password)
    local real = t.statement:gsub("VALUES %(NULL, NULL%)", "VALUES (7, 'x')")
    assert.is_true((pg.try(conn, real)))
    assert.is_false((pg.try(conn, real:gsub(" OVERRIDING SYSTEM VALUE", ""))))
    conn:close()
  end)

  it("falls back to the catalog, with a warning, when the role may not run plpgsql", function()
    local db = pg.unique("noplpgsql")
    local run, admin = pg.private_database(db)
    local user, password = pg.login_role("npl")
    run(("GRANT CONNECT ON DATABASE %s TO %s; REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC;"
      .. " CREATE TABLE public.t (id int PRIMARY KEY); GRANT SELECT ON public.t TO %s")
      :format(q(db), q(user), q(user)))
    local result = check.connection(pg.settings(user, password, "source", {},
      { tables = { "public.t" } }, { dbname = db }))
    assert.are.equal("unavailable", result.report.proof.status)
    assert.are.equal("catalog", pg.verdict(result, "public", "t").proof)
    assert.is_true(pg.verdict(result, "public", "t").usable)
    assert.are.equal(1, #pg.findings(result, "table.statements"))
    assert.are.equal("warning", pg.findings(result, "table.statements")[1].level)
    -- On the caller's own connection: the failed proof left the test's
    -- transaction aborted; it was rolled back, the connection is idle.
    local conn = assert(neoconn.connect(pg.target(user, password, { dbname = db })))
    local report = neoconn.test(conn, { tables = { "public.t" }, job = { kind = "source" } })
    assert.is_true(report.ok)
    assert.are.equal("unavailable", report.proof.status)
    assert.are.same({ { one = 1 } }, assert(conn:query("SELECT 1 AS one")))
    assert.is_true(neoconn.test(conn).ok)
    conn:close()
    admin:close()
  end)

  it("is skipped with proof = false, and never writes: no transaction ID is consumed", function()
    local user, password, schema = scenario("nw", [[
      CREATE TABLE {s}.t (id int PRIMARY KEY); GRANT INSERT, UPDATE, SELECT, TRUNCATE ON {s}.t TO {r}]])
    local conn = connect(user, password)
    local job = { kind = "destination", on_conflict = "update", truncate = true }
    local before = pg.next_xid()
    for _ = 1, 3 do
      local report = neoconn.test(conn, { schemas = { schema }, job = job })
      assert.are.equal("executor", report.proof.method)
    end
    assert.are.equal(before, pg.next_xid())
    local off = neoconn.test(conn, { schemas = { schema }, job = job, proof = false })
    assert.are.equal("off", off.proof.status)
    assert.are.equal("catalog", off.tables[1].proof)
    conn:close()
  end)

  it("proves jobs up to its limit, and names the tables whose verdicts rest on the catalog", function()
    local user, password, schema = scenario("lim", [[
      CREATE TABLE {s}.a (id int PRIMARY KEY); CREATE TABLE {s}.b (id int PRIMARY KEY);
      GRANT SELECT ON {s}.a, {s}.b TO {r}]])
    local settings = pg.settings(user, password, "source", {}, { schemas = { schema } })
    settings.proof = 1
    local result = check.connection(settings)
    assert.are.same({ status = "over_limit", tables = 2, limit = 1, method = "catalog" },
      result.report.proof)
    local warning = pg.findings(result, "table.statements")[1]
    assert.are.equal("warning", warning.level)
    assert.truthy(warning.message:find("the job has 2 tables", 1, true), warning.message)
    assert.is_true(result.ok)
    settings.proof = 2
    assert.are.equal("executor", check.connection(settings).report.proof.method)
    assert.has_error(function() neoconn.test(pg.target(user, password), { job = { kind = "source" },
      proof = 0 }) end, "bad argument #2 to 'test' (proof must be true, false, \"auto\" or the most "
      .. "tables to prove)")
  end)
end)

describe("a job that truncates", function()
  local function fk_scenario(prefix, grants)
    return scenario(prefix, [[
      CREATE TABLE {s}.parent (id int PRIMARY KEY);
      CREATE TABLE {s}.child (id int PRIMARY KEY, parent_id int REFERENCES {s}.parent (id));
      GRANT INSERT, TRUNCATE ON {s}.parent TO {r}; ]] .. grants)
  end

  it("blocks a table referenced from outside the job, naming the referencing table", function()
    local user, password, schema = fk_scenario("tr", "GRANT INSERT, TRUNCATE ON {s}.child TO {r}")
    local only_parent = pg.settings(user, password, "destination", { truncate = true },
      { tables = { { schema = schema, name = "parent" } } })
    local result = check.connection(only_parent)
    assert.are.same({ "table.truncate_references" }, pg.verdict(result, schema, "parent").blocked_by)
    local f = pg.findings(result, "table.truncate_references", "parent")[1]
    assert.truthy(f.message:find(q(schema, "child") .. " (outside the job)", 1, true), f.message)
    local conn = connect(user, password)
    assert.is_false((pg.try(conn, ("TRUNCATE %s"):format(q(schema, "parent")))))
    -- Both in the job: one TRUNCATE empties both.
    local both = pg.settings(user, password, "destination", { truncate = true }, { schemas = { schema } })
    assert.is_true(check.connection(both).ok)
    assert.is_true((pg.try(conn, ("TRUNCATE %s, %s"):format(q(schema, "parent"), q(schema, "child")))))
    conn:close()
  end)

  it("blocks a referenced table when the referencing one is blocked in the job", function()
    local user, password, schema = fk_scenario("trb", "GRANT INSERT ON {s}.child TO {r}")
    local result = check.connection(pg.settings(user, password, "destination", { truncate = true },
      { schemas = { schema } }))
    assert.are.same({ "table.truncate" }, pg.verdict(result, schema, "child").blocked_by)
    assert.are.same({ "table.truncate_references" }, pg.verdict(result, schema, "parent").blocked_by)
    local conn = connect(user, password)
    assert.is_false((pg.try(conn, ("TRUNCATE %s"):format(q(schema, "parent")))))
    conn:close()
  end)

  it("with cascade needs TRUNCATE on every table reached, and warns about tables outside the job", function()
    local user, password, schema = fk_scenario("trc", "")
    local settings = pg.settings(user, password, "destination", { truncate = "cascade" },
      { tables = { { schema = schema, name = "parent" } } })
    local result = check.connection(settings)
    assert.are.same({ "table.truncate_cascade" }, pg.verdict(result, schema, "parent").blocked_by)
    local warning = pg.findings(result, "table.truncate_cascade", "parent")
    table.sort(warning, function(a, b) return a.level < b.level end)
    assert.are.equal("error", warning[1].level)
    assert.are.equal(("GRANT TRUNCATE ON TABLE %s TO %s;"):format(q(schema, "child"), q(user)),
      warning[1].fix)
    assert.are.equal("warning", warning[2].level)
    local conn = connect(user, password)
    local truncate = ("TRUNCATE %s CASCADE"):format(q(schema, "parent"))
    assert.is_false((pg.try(conn, truncate)))
    pg.exec(result.fix_sql)
    assert.is_true((pg.try(conn, truncate)))
    assert.is_true(check.connection(settings).ok)
    conn:close()
  end)

  it("blocks a view, which cannot be truncated", function()
    local user, password, schema = scenario("trv", [[
      CREATE TABLE {s}.base (id int PRIMARY KEY); CREATE VIEW {s}.v AS SELECT id FROM {s}.base;
      GRANT INSERT, TRUNCATE ON {s}.v TO {r}]])
    local result = check.connection(pg.settings(user, password, "destination", { truncate = true },
      { tables = { { schema = schema, name = "v" } } }))
    assert.are.same({ "table.truncatable" }, pg.verdict(result, schema, "v").blocked_by)
    local conn = connect(user, password)
    assert.is_false((pg.try(conn, ("TRUNCATE %s"):format(q(schema, "v")))))
    conn:close()
  end)
end)

describe("an upsert", function()
  it("is blocked on a table without a primary key, where ON CONFLICT (key) cannot be written", function()
    local user, password, schema = scenario("pk", [[
      CREATE TABLE {s}.keyless (id int, v text); CREATE TABLE {s}.keyed (id int PRIMARY KEY, v text);
      GRANT SELECT, INSERT, UPDATE ON {s}.keyless, {s}.keyed TO {r}]])
    local result = check.connection(pg.settings(user, password, "destination", { on_conflict = "update" },
      { schemas = { schema } }))
    assert.are.same({ "table.primary_key" }, pg.verdict(result, schema, "keyless").blocked_by)
    assert.is_true(pg.verdict(result, schema, "keyed").usable)
    local conn = connect(user, password)
    local upsert = "INSERT INTO %s (id, v) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v"
    assert.is_false((pg.try(conn, upsert:format(q(schema, "keyless")))))
    assert.is_true((pg.try(conn, upsert:format(q(schema, "keyed")))))
    conn:close()
  end)

  it("through a view is named, not blocked: it finds the row by the base table's key", function()
    local user, password, schema = scenario("pkv", [[
      CREATE TABLE {s}.base (id int PRIMARY KEY, v text); CREATE VIEW {s}.v AS SELECT id, v FROM {s}.base;
      GRANT SELECT, INSERT, UPDATE ON {s}.v TO {r}]])
    local result = check.connection(pg.settings(user, password, "destination", { on_conflict = "update" },
      { tables = { { schema = schema, name = "v" } } }))
    assert.are.equal("warning", pg.findings(result, "table.primary_key", "v")[1].level)
    assert.is_true(pg.verdict(result, schema, "v").usable)
    local conn = connect(user, password)
    assert.is_true((pg.try(conn, ("INSERT INTO %s (id, v) VALUES (1, 'x') ON CONFLICT (id)"
      .. " DO UPDATE SET v = EXCLUDED.v"):format(q(schema, "v")))))
    conn:close()
  end)
end)

describe("triggers", function()
  -- A BEFORE INSERT trigger whose SECURITY INVOKER function writes to a log.
  local function trigger_scenario(prefix, log_grant)
    return scenario(prefix, [[
      CREATE TABLE {s}.log (at timestamptz);
      CREATE TABLE {s}.t (id int PRIMARY KEY);
      CREATE FUNCTION {s}.audit() RETURNS trigger LANGUAGE plpgsql AS
        $$BEGIN INSERT INTO ]] .. "{s}" .. [[.log VALUES (now()); RETURN NEW; END$$;
      CREATE TRIGGER audit BEFORE INSERT ON {s}.t FOR EACH ROW EXECUTE FUNCTION {s}.audit();
      GRANT INSERT ON {s}.t TO {r}; ]] .. log_grant)
  end

  it("are listed only when they fire on the job's statements; built-in functions are not named", function()
    local user, password, schema = scenario("tgf", [[
      CREATE TABLE {s}.t (id int PRIMARY KEY, v text); GRANT SELECT, INSERT, UPDATE ON {s}.t TO {r};
      CREATE FUNCTION {s}.noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN OLD; END$$;
      CREATE TRIGGER on_delete BEFORE DELETE ON {s}.t FOR EACH ROW EXECUTE FUNCTION {s}.noop();
      CREATE TRIGGER same_row BEFORE UPDATE ON {s}.t FOR EACH ROW
        EXECUTE FUNCTION suppress_redundant_updates_trigger()]])
    local settings = pg.settings(user, password, "destination", {}, { schemas = { schema } })
    assert.are.same({}, check.connection(settings).report.triggers) -- an insert fires neither
    settings.options = { on_conflict = "update" }
    local result = check.connection(settings)
    assert.are.equal(1, #result.report.triggers) -- the upsert's UPDATE fires same_row
    assert.are.equal("internal", result.report.triggers[1]["function"].language)
    assert.are.same({}, pg.findings(result, "table.triggers"))
  end)

  for _, case in ipairs({ { "cannot", "", false }, { "can", "GRANT INSERT ON {s}.log TO {r}", true } }) do
    it("are named with a warning when the trigger writes where the role " .. case[1] .. " write", function()
      local user, password, schema = trigger_scenario("tg", case[2])
      local result = check.connection(pg.settings(user, password, "destination", {},
        { tables = { { schema = schema, name = "t" } } }))
      local trigger = result.report.triggers[1]
      assert.are.same({ name = "audit", on = { schema = schema, table = "t" }, timing = "before",
        level = "row", events = { "INSERT" }, ["function"] = { schema = schema, name = "audit",
        language = "plpgsql", security_definer = false } }, trigger)
      local warning = pg.findings(result, "table.triggers", "t")[1]
      assert.are.equal("warning", warning.level)
      assert.truthy(warning.message:find("not verified", 1, true))
      local conn = connect(user, password)
      assert.are.equal(case[3], (pg.try(conn, ("INSERT INTO %s VALUES (1)"):format(q(schema, "t")))))
      conn:close()
    end)
  end
end)

describe("the command line", function()
  it("lists every table of the job with its verdict, proof and blocking rules in --json", function()
    local cli = require("neoconn.cli")
    local json = require("dkjson")
    local user, password, schema = scenario("js", [[
      CREATE TABLE {s}.ok (id int PRIMARY KEY); CREATE TABLE {s}.no (id int PRIMARY KEY);
      GRANT INSERT ON {s}.ok TO {r}]])
    local target = ("host=%s port=%s user=%s password=%s dbname=%s"):format(pg.host, pg.port, user,
      password, pg.dbname)
    local out = { stdout = { text = "" }, stderr = { text = "" } }
    for _, stream in pairs(out) do
      function stream.write(self, ...) self.text = self.text .. table.concat({ ... }) end
    end
    local code = cli.main({ "test", target, "--as", "destination", "--schemas", schema, "--json" }, out,
      function() return nil end)
    assert.are.equal(1, code)
    local doc = json.decode(out.stdout.text)
    assert.are.same({
      { schema = schema, name = "no", usable = false, proof = "executor",
        blocked_by = { "table.insert", "table.statements" } },
      { schema = schema, name = "ok", usable = true, proof = "executor", blocked_by = {} },
    }, doc.connections[1].tables)
  end)
end)
