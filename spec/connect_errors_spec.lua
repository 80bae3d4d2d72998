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

describe("errors that send people the right way", function()
  it("name another service on the port not_postgres, quoting what it answers", function()
    local cases = {
      { pg.http_port, "disable", "HTTP/1.1 400 Bad Request" },
      { pg.http_port, "prefer", "HTTP/1.1 400 Bad Request" },
      { pg.ssh_port, "disable", "SSH-2.0-OpenSSH" },
      { pg.ssh_port, "require", "SSH-2.0-OpenSSH" },
      { pg.tls_only_port, "prefer", "a TLS-only service" }, -- answers a ClientHello, not PostgreSQL
      { pg.tls_only_port, "disable", "a TLS-only service" },
    }
    for _, case in ipairs(cases) do
      local target = { host = pg.host, port = case[1], user = "u", password = "p", sslmode = case[2] }
      local _, err = neoconn.connect(target, { timeout = 5 })
      assert.are.equal("not_postgres", err.code, case[1] .. " " .. case[2] .. ": " .. tostring(err))
      assert.truthy(err.message:find(case[3], 1, true), err.message)
      assert.truthy(err.hint:find(("%s port %s"):format(pg.host, case[1]), 1, true), err.hint)
      assert.truthy(err.hint:find("check host and port", 1, true), err.hint)
      -- The same through a test, and a test's report says where it stopped.
      local report = neoconn.test(target, { timeout = 5 })
      assert.are.equal("not_postgres", report.error.code)
    end
  end)

  it("say a listener that never answers accepted the connection, whatever sslmode", function()
    for _, mode in ipairs({ "disable", "prefer", "require" }) do
      local _, err = neoconn.connect({ host = pg.host, port = pg.silent_port, user = "u", sslmode = mode },
        { timeout = 0.3 })
      assert.are.equal("timeout", err.code)
      assert.truthy(err.hint:find("accepted the connection but never answered", 1, true), err.hint)
    end
    -- Nothing answering the TCP connection at all is another matter (an
    -- address that drops packets: a connect that never completes).
    local _, err = neoconn.connect({ host = "10.255.255.1", port = pg.port, user = "u" }, { timeout = 0.3 })
    if err.code == "timeout" then
      assert.truthy(err.hint:find("no answer to the connection attempt", 1, true), err.hint)
    end
  end)

  it("honour connect_timeout: the connection phase ends at the earlier deadline", function()
    local target = { host = pg.host, port = pg.silent_port, user = "u", connect_timeout = "2" }
    for _, run in ipairs({
      { function() return neoconn.connect(target, { timeout = 10 }) end, "connect" },
      { function() return nil, neoconn.test(target, { timeout = 10 }).error end, "test" },
      { function()
        local c = neoconn.connect_start(target, { timeout = 10 })
        while true do
          local ready, err, fd, left = c:connect_poll()
          if ready == nil then return nil, err end
          require("neoconn.core").poll({ fd }, { err }, left)
        end
      end, "connect_poll" },
    }) do
      local started = neoconn.clock()
      local _, err = run[1]()
      local took = neoconn.clock() - started
      assert.truthy(took >= 1.9 and took < 3, ("%s took %.2f s"):format(run[2], took))
      assert.are.equal("timeout", err.code)
      assert.truthy(err.message:find("connect_timeout (2 s)", 1, true), err.message)
      assert.truthy(err.hint:find("connect_timeout", 1, true), err.hint)
    end
    -- The test's own deadline, when it comes first, is the one that counts.
    local started = neoconn.clock()
    local _, err = neoconn.connect({ host = pg.host, port = pg.silent_port, user = "u",
      connect_timeout = "20" }, { timeout = 0.5 })
    assert.truthy(neoconn.clock() - started < 1.5)
    assert.is_nil(err.message:find("connect_timeout", 1, true), err.message)
  end)

  it("say libpq ignored a password file others may read", function()
    local user, password = pg.login_role("passfile")
    local path = pg.write_temp(("%s:%s:*:%s:%s\n"):format(pg.host, pg.port, user, password))
    os.execute("chmod 0644 " .. path)
    local target = { host = pg.host, port = pg.port, user = user, dbname = pg.dbname, passfile = path }
    local _, err = neoconn.connect(target)
    assert.are.equal("password_missing", err.code)
    assert.truthy(err.hint:find("chmod 0600 " .. path, 1, true), err.hint)
    os.execute("chmod 0600 " .. path)
    assert(neoconn.connect(target)):close()
    os.remove(path)
  end)

  it("never call a stage that did not happen ok: TLS not used is skipped, on success and failure", function()
    local user, password = pg.login_role("notls")
    for _, target in ipairs({ pg.target(user, password, { sslmode = "disable" }),
      pg.target(user, "wrong", { sslmode = "disable" }) }) do
      local report = neoconn.test(target)
      local tls = report.stages[2]
      assert.are.same({ "tls", true }, { tls.name, tls.skipped }, require("dkjson").encode(report.stages))
    end
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
