-- The fix script runs only what it means: a name read from the catalog (a
-- table, a column, the role itself) can never end a comment or start a
-- statement, whatever bytes it holds. Each script is applied for real with
-- psql as the administrator, and what psql sent to the server is compared
-- with the script's own statements.
local json = require("dkjson")
local neoconn = require("neoconn")
local check = require("neoconn.check")
local report = require("neoconn.report")
local document = require("neoconn.document")
local pg = require("pg")
local q = neoconn.quote_ident

-- A tenant who may create tables in a synced schema, and whether it has
-- become a superuser.
local function new_tenant()
  local tenant = pg.unique("tenant")
  pg.exec("CREATE ROLE " .. q(tenant) .. " LOGIN")
  return tenant
end

local function is_superuser(role)
  return pg.exec("SELECT rolsuper FROM pg_roles WHERE rolname = $1", { role })[1].rolsuper
end

-- Applies a fix script as the administrator: psql must succeed, and send
-- the server exactly the script's statements, nothing else.
local function apply_exactly(sql)
  local path = pg.write_temp(sql, ".sql")
  local code, sent, stderr = pg.psql_apply(path)
  os.remove(path)
  assert.are.equal(0, code, stderr)
  assert.are.same(pg.script_statements(sql), sent)
  return sent
end

local function run_cli_fix(target, args)
  local fix = os.tmpname()
  local code, out, err = pg.cli(("test %s %s --fix-sql %s"):format(pg.shell_quote(target), args, fix))
  local sql = pg.slurp(fix)
  os.remove(fix)
  assert.are.equal(1, code, out .. err)
  return sql, out
end

local function key_value(user, password)
  return ("host=%s port=%s dbname=%s user='%s' password='%s' sslmode=prefer"):format(pg.host,
    pg.port, pg.dbname, user:gsub("\\", "\\\\"):gsub("'", "\\'"), password)
end

describe("a fix script applied by an administrator", function()
  it("does not run a table name's carriage return as SQL (the tenant's attack)", function()
    local tenant = new_tenant()
    local sync, password = pg.login_role("fsync")
    local schema = pg.unique("app")
    local evil = "\rALTER ROLE " .. q(tenant) .. " SUPERUSER;--"
    pg.exec(("CREATE SCHEMA %s; GRANT USAGE, CREATE ON SCHEMA %s TO %s; GRANT USAGE ON SCHEMA %s TO %s")
      :format(q(schema), q(schema), q(tenant), q(schema), q(sync)))
    pg.exec(("SET ROLE %s; CREATE TABLE %s (id int); GRANT SELECT, INSERT ON %s TO %s; RESET ROLE")
      :format(q(tenant), q(schema, evil), q(schema, evil), q(sync)))
    local sql = run_cli_fix(key_value(sync, password),
      ("--as destination --schemas %s --on-conflict update"):format(schema))
    assert.truthy(sql:find("-- add one: ALTER TABLE " .. q(schema, evil), 1, true), sql)
    assert.is_nil(sql:find("\r", 1, true))
    apply_exactly(sql)
    assert.is_false(is_superuser(tenant))
  end)

  it("does not run a column name's carriage return as SQL (an executor refusal's comment)", function()
    local tenant = new_tenant()
    local sync, password = pg.login_role("fsync")
    local schema = pg.unique("closed")
    local column = "\rALTER ROLE " .. q(tenant) .. " SUPERUSER;--"
    -- No USAGE on the schema, and its rule turned off: the executor's
    -- refusal is explained by the statement, written as a comment.
    pg.exec(("CREATE SCHEMA %s; CREATE TABLE %s (id int, %s text); GRANT SELECT ON %s TO %s")
      :format(q(schema), q(schema, "t"), q(column), q(schema, "t"), q(sync)))
    local sql = check.connection({ name = "target", kind = "source", target = key_value(sync, password),
      tables = { { schema = schema, name = "t" } } }, { disable_rules = { "schema.usage" } }).fix_sql
    assert.truthy(sql:find('-- SELECT id, "\\rALTER ROLE', 1, true), sql)
    apply_exactly(sql)
    assert.is_false(is_superuser(tenant))
  end)

  it("does not run a line of the role's own name as SQL (the script's header)", function()
    local tenant = new_tenant()
    local sync = "fz" .. pg.unique("") .. "\nALTER ROLE " .. q(tenant) .. " SUPERUSER;--"
    local password = "Pw-Header-5150"
    pg.exec(("CREATE ROLE %s LOGIN PASSWORD '%s'"):format(q(sync), password))
    local schema = pg.schema_with_table(sync, "hdr")
    local sql, out = run_cli_fix(key_value(sync, password), ("--as source --schemas %s"):format(schema))
    assert.truthy(sql:find("^%-%- neoconn: fixes for target %(source, role U&\"fz"), sql)
    assert.is_nil(out:find("\nALTER ROLE", 1, true), out)
    local sent = apply_exactly(sql)
    assert.are.same({ ("GRANT SELECT ON TABLE %s TO %s;"):format(q(schema, "t"), q(sync)) }, sent)
    assert.is_false(is_superuser(tenant))
  end)
end)

-- Every byte 0x01-0x1F and 0x7F in the name of each kind of object a report
-- or a finding can name: no output carries it raw, the JSON gives the name
-- back exactly, and every fix script, applied, runs only its statements.
describe("names holding any control byte", function()
  -- Each byte, then an 8-bit CSI (U+009B) and a right-to-left override.
  local CHARACTERS = {}
  for b = 1, 31 do CHARACTERS[#CHARACTERS + 1] = string.char(b) end
  for _, c in ipairs({ "\127", "\194\155", "\226\128\174" }) do CHARACTERS[#CHARACTERS + 1] = c end
  local hits

  -- What an injected statement would change, and what no fix statement
  -- touches: compared before and after every script.
  local function snapshot()
    return pg.exec([[SELECT
      (SELECT string_agg(concat_ws(' ', rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls,
        rolcanlogin), ',' ORDER BY rolname) FROM pg_roles) AS roles,
      (SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace) AS schemas,
      (SELECT string_agg(relname || relkind::text, ',' ORDER BY oid) FROM pg_class) AS relations,
      (SELECT string_agg(polname, ',' ORDER BY oid) FROM pg_policy) AS policies,
      (SELECT string_agg(tgname, ',' ORDER BY oid) FROM pg_trigger) AS triggers,
      (SELECT string_agg(pubname, ',' ORDER BY oid) FROM pg_publication) AS publications,
      (SELECT count(*) FROM ]] .. hits .. [[) AS hits]])[1]
  end

  setup(function()
    -- In a schema of its own: the shared database's public schema is
    -- other specs' scope.
    local schema = pg.unique("fz")
    hits = q(schema, "hits")
    pg.exec(("CREATE SCHEMA %s; CREATE TABLE %s (b int)"):format(q(schema), hits))
  end)

  -- A name of kind `what` holding character c, and a statement after it.
  local function payload(what, c)
    return ("%s%s%sINSERT INTO %s VALUES (%d);--"):format(what, pg.unique(""), c, hits, c:byte(1))
  end

  local function assert_shown_safely(text, what)
    assert.is_nil(text:find("[%z\1-\9\11-\31\127]"), what .. ": " .. text)
    assert.is_nil(text:find("\194[\128-\159]"), what)
  end

  -- Objects of every kind whose names hold character c; the jobs that
  -- read them: a CDC source and an upsert destination that truncates (no
  -- TLS: the catalog is what is tested); and a target with a wrong
  -- password (the hint names the role).
  local function objects_holding(c)
    local role, schema = payload("r", c), payload("s", c)
    local tbl, column = payload("t", c), payload("c", c)
    local policy, trigger = payload("p", c), payload("g", c)
    local publication, slot = payload("u", c), payload("l", c)
    local password = "Pw-Fuzz-" .. c:byte(1) .. "-xyz"
    local t = q(schema, tbl)
    pg.exec(("CREATE ROLE %s LOGIN PASSWORD '%s'; CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s TO %s;"
      .. " CREATE TABLE %s (id serial, %s text); GRANT SELECT, INSERT ON %s TO %s;"
      .. " ALTER TABLE %s ENABLE ROW LEVEL SECURITY;"
      .. " CREATE POLICY %s ON %s FOR SELECT TO %s USING (true);"
      .. " CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;"
      .. " CREATE TRIGGER %s BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION %s();"
      .. " CREATE PUBLICATION %s FOR TABLE %s")
      :format(q(role), password, q(schema), q(schema), q(role), t, q(column), t, q(role), t,
        q(policy), t, q(role), q(schema, "f" .. trigger), q(trigger), t, q(schema, "f" .. trigger),
        q(publication), t))
    local function named(settings, name)
      settings.name = name
      return settings
    end
    local label = ("c%d"):format(c:byte(1))
    local plain = { sslmode = "disable" }
    return { schema = schema, table = tbl }, {
      named(pg.settings(role, password, "source", { cdc = true, slot = slot, publication = publication },
        { schemas = { schema } }, plain), label .. "_source"),
      named(pg.settings(role, password, "destination", { on_conflict = "update", truncate = true },
        { schemas = { schema } }, plain), label .. "_destination"),
    }, pg.target(role, "wrong-" .. password, plain)
  end

  it("never carry one raw, in any output, nor run any part of a name", function()
    local jobs, tables_of = {}, {}
    for _, c in ipairs(CHARACTERS) do
      local names, list, wrong = objects_holding(c)
      for _, settings in ipairs(list) do
        jobs[#jobs + 1] = settings
        tables_of[settings.name] = names
      end
      local _, err = neoconn.connect(wrong)
      assert.are.equal("auth_failed", err.code)
      assert_shown_safely(err.hint, "hint")
      assert_shown_safely(tostring(err), "error")
    end
    local before = snapshot()
    local results = check.connections(jobs, { concurrency = 8 })
    local scripts, named = {}, 0
    for i, result in ipairs(results) do
      local names = tables_of[jobs[i].name]
      assert_shown_safely(report.human({ result }), "human")
      local text = document.encode(document.of({ result }))
      assert_shown_safely(text, "json")
      local doc = assert(json.decode(text))
      for _, f in ipairs(doc.connections[1].findings) do
        assert_shown_safely(f.message, "message")
        if f.object_type == "table" then
          assert.are.same({ names.schema, names.table }, { f.schema, f.name })
          named = named + 1
        end
      end
      if result.error then assert_shown_safely(result.error.hint, "hint") end
      for line in result.fix_sql:gmatch("[^\n]+") do assert_shown_safely(line, "fix") end
      scripts[#scripts + 1] = result.fix_sql
    end
    assert.truthy(named >= #CHARACTERS)
    -- Every script, applied: psql sends the server exactly their statements.
    apply_exactly(table.concat(scripts))
    assert.are.same(before, snapshot())
  end)
end)
