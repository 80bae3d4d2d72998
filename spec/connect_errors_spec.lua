-- Every error code that can be produced against a local server, with the
-- stage it happened in and a hint a person can act on.
local neoconn = require("neoconn")
local pg = require("pg")

local function expect_failure(target, code, stage, opts)
  local conn, err = neoconn.connect(target, opts)
  assert.is_nil(conn)
  assert.is_table(err)
  assert.are.equal(code, err.code, tostring(err))
  assert.are.equal(stage, err.stage, tostring(err))
  assert.is_string(err.message)
  assert.truthy(#err.hint > 20, "hint: " .. tostring(err.hint))
  assert.truthy(tostring(err):find(code, 1, true))
  return err
end

describe("neoconn.connect", function()
  it("connects with a table, a URL and a key=value string", function()
    local user, password = pg.login_role("ok")
    local url = string.format("postgresql://%s:%s@%s:%s/%s?sslmode=require", user, password,
      pg.host, pg.port, pg.dbname)
    local kv = string.format("host=%s port=%s user=%s password=%s dbname=%s", pg.host, pg.port,
      user, password, pg.dbname)
    for _, target in ipairs({ pg.target(user, password), url, kv }) do
      local conn, err = neoconn.connect(target)
      assert.is_nil(err)
      assert.truthy(tostring(conn):find("neoconn.connection{" .. user, 1, true))
      conn:close()
    end
  end)

  it("verifies the server certificate with sslmode=verify-full", function()
    local user, password = pg.login_role("tls")
    local conn = assert(neoconn.connect(pg.target(user, password,
      { host = "localhost", sslmode = "verify-full", sslrootcert = pg.ca })))
    local report = neoconn.test(conn, { tables = {} })
    assert.is_true(report.session.ssl.in_use)
    assert.matches("^TLS", report.session.ssl.protocol)
    conn:close()
  end)

  it("reports auth_failed for a wrong password", function()
    local user = pg.login_role("pw")
    expect_failure(pg.target(user, "wrong-password"), "auth_failed", "authenticate")
  end)

  it("reports password_missing when the server asks for one", function()
    local user = pg.login_role("nopw")
    local target = pg.target(user, nil, { passfile = "/nonexistent" })
    expect_failure(target, "password_missing", "authenticate")
  end)

  it("reports database_missing for an unknown database", function()
    local user, password = pg.login_role("db")
    local err = expect_failure(pg.target(user, password, { dbname = "no_such_db" }),
      "database_missing", "session")
    assert.are.equal("3D000", err.sqlstate)
  end)

  it("reports login_not_allowed for a NOLOGIN role", function()
    local user, password = pg.login_role("nologin")
    pg.exec("ALTER ROLE " .. user .. " NOLOGIN")
    local err = expect_failure(pg.target(user, password), "login_not_allowed", "session")
    assert.truthy(err.hint:find("ALTER ROLE " .. user .. " LOGIN", 1, true))
  end)

  it("reports connect_denied when CONNECT on the database is revoked", function()
    local user, password = pg.login_role("noconnect")
    local db = pg.unique("closed_db")
    pg.exec("CREATE DATABASE " .. db)
    pg.exec("REVOKE CONNECT ON DATABASE " .. db .. " FROM PUBLIC")
    local err = expect_failure(pg.target(user, password, { dbname = db }), "connect_denied",
      "session")
    assert.truthy(err.hint:find("GRANT CONNECT ON DATABASE " .. db .. " TO " .. user, 1, true))
  end)

  it("reports hba_rejected when pg_hba.conf rejects the connection", function()
    pg.exec("DROP ROLE IF EXISTS neoconn_hba_rejected")
    pg.exec("CREATE ROLE neoconn_hba_rejected LOGIN PASSWORD 'whatever-pw'")
    expect_failure(pg.target("neoconn_hba_rejected", "whatever-pw"), "hba_rejected",
      "authenticate")
  end)

  it("reports too_many_connections when the role's limit is reached", function()
    local user, password = pg.login_role("limit", "CONNECTION LIMIT 1")
    local first = assert(neoconn.connect(pg.target(user, password)))
    expect_failure(pg.target(user, password), "too_many_connections", "session")
    first:close()
  end)

  it("reports refused when nothing listens on the port", function()
    expect_failure({ host = pg.host, port = pg.refused_port }, "refused", "connect")
  end)

  it("reports dns for a host name that does not resolve", function()
    expect_failure({ host = "no-such-host.invalid", port = pg.port }, "dns", "connect")
  end)

  it("reports timeout within the deadline when the server never answers", function()
    local started = neoconn.clock()
    local err = expect_failure({ host = pg.host, port = pg.silent_port, user = "x" }, "timeout",
      "tls", { timeout = 0.5 })
    local took = neoconn.clock() - started
    -- The deadline, not libpq or the OS, decides: no earlier, not much later.
    assert.truthy(took >= 0.5 and took < 1.5, ("gave up after %.2f s"):format(took))
    assert.truthy(err.message:find("deadline", 1, true))
    -- Without TLS negotiation the wait is for the server's first answer.
    expect_failure({ host = pg.host, port = pg.silent_port, sslmode = "disable" }, "timeout",
      "authenticate", { timeout = 0.3 })
  end)

  it("reports tls_unsupported when TLS is required and the server has none", function()
    expect_failure({ host = pg.host, port = pg.plain_port, sslmode = "require", user = "x" },
      "tls_unsupported", "tls")
  end)

  it("reports tls_failed when the server certificate cannot be verified", function()
    expect_failure({ host = pg.host, port = pg.port, user = "x", sslmode = "verify-ca",
      sslrootcert = "/nonexistent/root.crt" }, "tls_failed", "tls")
  end)

  it("reports invalid_config for a bad sslmode, port or URL", function()
    expect_failure({ host = pg.host, sslmode = "bogus" }, "invalid_config", "config")
    expect_failure({ host = pg.host, port = 70000 }, "invalid_config", "config")
    expect_failure("postgresql://u@[::1/db", "invalid_config", "config")
    expect_failure("host=x nonsense_keyword=1", "invalid_config", "config")
    expect_failure({ host = pg.host, target_session_attrs = "sometimes" }, "invalid_config",
      "config")
  end)

  it("reports wrong_session_type when the server is not what target_session_attrs asks", function()
    local user, password = pg.login_role("standby")
    expect_failure(pg.target(user, password, { target_session_attrs = "standby" }),
      "wrong_session_type", "session")
  end)
end)

describe("a connection table with a url", function()
  it("reads the URL first and lets the other fields override it", function()
    local user, password = pg.login_role("urltab")
    local url = ("postgresql://%s@%s:%s/%s?sslmode=require"):format(user, pg.host, pg.port,
      pg.dbname)
    local conn = assert(neoconn.connect({ url = url, password = password }))
    conn:close()
    local _, err = neoconn.connect({ url = url, password = password, dbname = "no_such_db" })
    assert.are.equal("database_missing", err.code)
    _, err = neoconn.connect({ url = "postgresql://[bad", password = password })
    assert.are.equal("invalid_config", err.code)
    assert.has_error(function() neoconn.connect({ url = 5 }) end)
  end)
end)
