-- Through a real pgbouncer (the harness's, TLS only, SCRAM checked against
-- the server's own verifiers): a test gives the report it gives directly, in
-- every pool mode, the executor proof included (one Sync, so statement
-- pooling takes it); what the pooler itself refuses is classified as the
-- same fault sent by the server, marked as the pooler's, with a hint about
-- the pooler.
local neoconn = require("neoconn")
local pg = require("pg")

local modes = { "session", "transaction", "statement" }
local POOLER_HINT = "the connection pooler in front of the server (pgbouncer) answered"

local function through_pooler(target, dbname)
  local t = {}
  for k, v in pairs(target) do t[k] = v end
  t.port, t.dbname = pg.pooler_port, dbname
  return t
end

-- A report without what differs by design: timings and the port used.
local function comparable(report)
  local copy = pg.without_timings(report)
  copy.session.port = nil
  return copy
end

describe("through pgbouncer", function()
  local user, password, schema, opts
  setup(function()
    user, password = pg.login_role("pool")
    schema = pg.unique("pool")
    local sql = ([[
      CREATE SCHEMA {s}; GRANT USAGE ON SCHEMA {s} TO {r};
      CREATE TABLE {s}.granted (id int PRIMARY KEY, v text);
      CREATE TABLE {s}.refused (id int PRIMARY KEY);
      CREATE VIEW {s}.joined AS SELECT id FROM {s}.granted;
      GRANT SELECT, INSERT, UPDATE, TRUNCATE ON {s}.granted TO {r};
      GRANT SELECT ON {s}.refused, {s}.joined TO {r}]]):gsub("{s}", schema):gsub("{r}", user)
    pg.exec(sql)
    opts = { schemas = { schema }, job = { kind = "destination", on_conflict = "update",
      truncate = true } }
  end)

  for _, mode in ipairs(modes) do
    it(("gives the direct report in %s pooling, the executor proof included"):format(mode),
      function()
        local direct = neoconn.test(pg.target(user, password), opts)
        local pooled = neoconn.test(through_pooler(pg.target(user, password), "neoconn_" .. mode),
          opts)
        assert.is_true(pooled.ok, tostring(pooled.error))
        assert.are.same({ method = "executor", status = "complete", tables = 3,
          limit = direct.proof.limit }, pg.without_timings(pooled.proof))
        assert.are.equal(pg.pooler_port, pooled.session.port)
        assert.are.same(comparable(direct), comparable(pooled))
        assert.truthy(pg.find_table(pooled, schema, "refused").refused)
        assert.is_nil(pg.find_table(pooled, schema, "granted").refused)
      end)
  end

  it("tests many targets at once through every pool mode, each as directly", function()
    local targets = {}
    for i = 1, 9 do
      targets[i] = { target = through_pooler(pg.target(user, password),
        "neoconn_" .. modes[(i - 1) % 3 + 1]), schemas = { schema } }
    end
    local direct = comparable(neoconn.test(pg.target(user, password), { schemas = { schema } }))
    local reports = neoconn.test_all(targets, { concurrency = 9 })
    assert.are.equal(9, #reports)
    for i, report in ipairs(reports) do
      assert.is_true(report.ok, ("%d: %s"):format(i, tostring(report.error)))
      assert.are.same(direct.tables, comparable(report).tables)
    end
  end)
end)

describe("a login the pooler refuses", function()
  local user, password
  setup(function()
    user, password = pg.login_role("poolerr")
    pg.ensure_role("neoconn_pooler_rejected", "pw-rejected")
  end)

  -- Connects through the pooler; returns the error, checked to be the
  -- pooler's own with its hint.
  local function refused(extra, code, stage)
    local target = through_pooler(pg.target(user, password), "neoconn_session")
    for k, v in pairs(extra) do target[k] = v end
    local conn, err = neoconn.connect(target)
    assert.is_nil(conn)
    assert.are.equal(code, err.code, tostring(err))
    assert.are.equal(stage, err.stage, tostring(err))
    assert.are.equal("08P01", err.sqlstate)
    assert.is_true(err.pooler)
    assert.are.equal(POOLER_HINT, err.hint:sub(1, #POOLER_HINT))
    return err
  end

  it("classifies a wrong password as auth_failed, not unknown", function()
    local err = refused({ password = "wrong" }, "auth_failed", "authenticate")
    assert.truthy(err.hint:find("check the password", 1, true), err.hint)
    assert.is_nil(err.message:find("wrong", 1, true))
    -- The same fault sent by the server: no pooler mark, the server's hint.
    local _, direct = neoconn.connect(pg.target(user, "wrong"))
    assert.are.equal("auth_failed", direct.code)
    assert.is_nil(direct.pooler)
    assert.is_nil(direct.hint:find(POOLER_HINT, 1, true))
  end)

  it("classifies a user it does not know as auth_failed, naming its auth_file", function()
    local err = refused({ user = pg.unique("nobody") }, "auth_failed", "authenticate")
    assert.truthy(err.message:find("no such user", 1, true), err.message)
    assert.truthy(err.hint:find("auth_file", 1, true), err.hint)
  end)

  it("classifies a database it has no entry for as auth_failed, naming dbname", function()
    -- pgbouncer answers it as a failed login, so as not to tell which exist.
    local err = refused({ dbname = "neoconn_no_entry" }, "auth_failed", "authenticate")
    assert.truthy(err.hint:find("dbname neoconn_no_entry", 1, true), err.hint)
  end)

  it("classifies a connection without TLS as hba_rejected, suggesting sslmode=require", function()
    local err = refused({ sslmode = "disable" }, "hba_rejected", "authenticate")
    assert.truthy(err.message:find("SSL required", 1, true), err.message)
    assert.truthy(err.hint:find("sslmode=require", 1, true), err.hint)
  end)

  it("classifies its auth_hba_file's reject line as hba_rejected", function()
    local err = refused({ user = "neoconn_pooler_rejected", password = "pw-rejected" },
      "hba_rejected", "authenticate")
    assert.truthy(err.message:find("login rejected", 1, true), err.message)
    assert.truthy(err.hint:find("auth_hba_file", 1, true), err.hint)
  end)

  it("classifies its own failed login to the server as upstream_failed", function()
    -- The server's refusal first, then (within server_login_retry) the
    -- pooler's wait for a server connection: both upstream_failed.
    local first = refused({ dbname = "neoconn_badlogin" }, "upstream_failed", "session")
    assert.truthy(first.message:find('password authentication failed for user "neoconn_pooler_login"',
      1, true), first.message)
    assert.truthy(first.hint:find("[databases] entry", 1, true), first.hint)
    local again = refused({ dbname = "neoconn_badlogin" }, "upstream_failed", "session")
    assert.truthy(again.message:find("query_wait_timeout", 1, true)
      or again.message:find("server login has been failing", 1, true), again.message)
  end)

  it("classifies a database missing behind it as upstream_failed", function()
    local err = refused({ dbname = "neoconn_gone" }, "upstream_failed", "session")
    assert.truthy(err.hint:find("database neoconn_gone", 1, true), err.hint)
  end)
end)
