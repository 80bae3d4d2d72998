-- Verdicts beyond tables: sequences, functions, schema CREATE, database
-- CREATE and TEMP. Each is proven by running the statement it stands for
-- as the role, in scenarios that grant and withhold each privilege.
local neoconn = require("neoconn")
local pg = require("pg")
local q = neoconn.quote_ident

local db = "neoconn_verdicts"
local db_exec, admin

-- One statement per verdict; `promised` reads the verdict from the report.
local function checks(schema)
  local seq, fn = q(schema, "counter"), q(schema, "answer")
  local function find(list, name)
    for _, x in ipairs(list) do if x.name == name then return x end end
  end
  local function seq_p(r) return find(r.sequences, "counter").privileges end
  local function usage(r) return find(r.schemas, schema).usage end
  return {
    { sql = ("SELECT nextval('%s')"):format(seq),
      promised = function(r) return usage(r) and (seq_p(r).USAGE or seq_p(r).UPDATE) end },
    { sql = "SELECT last_value FROM " .. seq,
      promised = function(r) return usage(r) and seq_p(r).SELECT end },
    { sql = ("SELECT setval('%s', 5)"):format(seq),
      promised = function(r) return usage(r) and seq_p(r).UPDATE end },
    { sql = ("SELECT %s()"):format(fn),
      promised = function(r) return usage(r) and find(r.functions, "answer").privileges.EXECUTE end },
    { sql = ("CREATE TABLE %s (i int)"):format(q(schema, "made_by_role")),
      promised = function(r) return find(r.schemas, schema).create end },
    { sql = "CREATE SCHEMA " .. q(schema .. "_new"),
      promised = function(r) return r.database.create end },
    { sql = "CREATE TEMP TABLE neoconn_tmp (i int)",
      promised = function(r) return r.database.temp end },
  }
end

local function prove(grants)
  local user, password = pg.login_role("obj")
  local schema = pg.unique("obj_s")
  db_exec(([[
    GRANT CONNECT ON DATABASE %s TO %s;
    CREATE SCHEMA %s;
    CREATE SEQUENCE %s;
    CREATE FUNCTION %s() RETURNS int LANGUAGE sql AS 'SELECT 42';
    REVOKE EXECUTE ON FUNCTION %s() FROM PUBLIC;
    CREATE TABLE %s (id int DEFAULT %s());
  ]]):format(q(db), q(user), q(schema), q(schema, "counter"), q(schema, "answer"),
    q(schema, "answer"), q(schema, "t"), q(schema, "answer")))
  db_exec((grants:gsub("{r}", q(user)):gsub("{s}", q(schema))))
  local conn = assert(neoconn.connect(pg.target(user, password, { dbname = db })))
  local report = neoconn.test(conn, { schemas = { schema } })
  assert.is_true(report.ok, tostring(report.error))
  for _, check in ipairs(checks(schema)) do
    local expected = not not check.promised(report)
    local ran, err = pg.try(conn, check.sql)
    assert(ran == expected, ("%s: report says %s, PostgreSQL says %s (%s)")
      :format(check.sql, tostring(expected), tostring(ran), tostring(err)))
  end
  conn:close()
end

describe("neoconn.test verdicts on sequences, functions, schemas and the database", function()
  setup(function() db_exec, admin = pg.private_database(db) end)
  teardown(function() admin:close() end)

  it("match the statements when nothing beyond CONNECT is granted", function()
    prove("")
  end)

  it("match them with schema USAGE only", function()
    prove("GRANT USAGE ON SCHEMA {s} TO {r}")
  end)

  it("match them with USAGE on the sequence, EXECUTE and schema CREATE", function()
    prove([[GRANT USAGE, CREATE ON SCHEMA {s} TO {r};
      GRANT USAGE ON SEQUENCE {s}.counter TO {r};
      GRANT EXECUTE ON FUNCTION {s}.answer() TO {r}]])
  end)

  it("match them with SELECT and UPDATE on the sequence, database CREATE and TEMP", function()
    prove(([[GRANT USAGE ON SCHEMA {s} TO {r};
      GRANT SELECT, UPDATE ON SEQUENCE {s}.counter TO {r};
      GRANT CREATE, TEMP ON DATABASE %s TO {r}]]):format(q(db)))
  end)

  it("match them for CREATE on a schema without USAGE", function()
    prove([[GRANT CREATE ON SCHEMA {s} TO {r}; GRANT ALL ON SEQUENCE {s}.counter TO {r}]])
  end)
end)
