-- TLS and settings failures get the hint for what actually went wrong, not
-- a general one: each case made real against the throwaway cluster.
local neoconn = require("neoconn")
local pg = require("pg")

describe("TLS and settings hints", function()
  local user, password, dir
  setup(function()
    user, password = pg.login_role("tlsh")
    dir = pg.temp_dir()
    assert.are.equal(0, pg.execute(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=other-ca"
      .. " -keyout %s/other.key -out %s/other.crt >/dev/null 2>&1"):format(dir, dir)))
  end)
  teardown(function() pg.execute("rm -rf " .. dir) end)

  local function fails(extra)
    local conn, err = neoconn.connect(pg.target(user, password, extra), { timeout = 5 })
    assert.is_nil(conn)
    return err
  end

  it("say libpq verified the server with sslmode=require when a root certificate is given", function()
    local err = fails({ sslmode = "require", sslrootcert = dir .. "/other.crt" })
    assert.are.equal("tls_failed", err.code)
    assert.truthy(err.hint:find("not signed by the CA in sslrootcert", 1, true), err.hint)
    assert.is_nil(err.hint:find("without verifying", 1, true))
  end)

  -- What libpq does with each sslmode, the server's own CA given as
  -- sslrootcert, another CA, or the right CA and another host name: TLS
  -- used or not (a root certificate makes require verify the chain; prefer
  -- falls back to plain text when verification fails), or the failure.
  local outcomes = {
    disable = { right = "plain", wrong_ca = "plain", wrong_host = "plain" },
    allow = { right = "plain", wrong_ca = "plain", wrong_host = "plain" },
    prefer = { right = "tls", wrong_ca = "plain", wrong_host = "tls" },
    require = { right = "tls", wrong_ca = "not signed by the CA", wrong_host = "tls" },
    ["verify-ca"] = { right = "tls", wrong_ca = "not signed by the CA", wrong_host = "tls" },
    ["verify-full"] = { right = "tls", wrong_ca = "not signed by the CA",
      wrong_host = "another name than" },
  }
  for _, mode in ipairs({ "disable", "allow", "prefer", "require", "verify-ca", "verify-full" }) do
    for _, case in ipairs({ "right", "wrong_ca", "wrong_host" }) do
      local expected = outcomes[mode][case]
      it(("with sslmode=%s and %s: %s"):format(mode, case:gsub("_", " "), expected), function()
        local extra = { sslmode = mode, sslrootcert = case == "wrong_ca" and dir .. "/other.crt" or pg.ca }
        if case == "wrong_host" then extra.host, extra.hostaddr = "db.example.invalid", pg.host end
        local report = neoconn.test(pg.target(user, password, extra))
        if expected == "tls" or expected == "plain" then
          assert.is_true(report.ok, tostring(report.error))
          assert.are.equal(expected == "tls", report.session.ssl.in_use)
        else
          assert.are.equal("tls_failed", report.error.code)
          assert.are.equal("tls", report.error.stage)
          assert.truthy(report.error.hint:find(expected, 1, true), report.error.hint)
        end
      end)
    end
  end

  it("name the host a certificate does not match", function()
    local err = fails({ sslmode = "verify-full", sslrootcert = pg.ca, host = "db.example.invalid",
      hostaddr = pg.host })
    assert.are.equal("tls_failed", err.code)
    assert.truthy(err.hint:find("another name than db.example.invalid", 1, true), err.hint)
  end)

  it("ask for the CA when the root certificate is missing", function()
    local err = fails({ sslmode = "verify-ca", sslrootcert = dir .. "/absent.crt" })
    assert.are.equal("tls_failed", err.code)
    assert.truthy(err.hint:find("give sslrootcert", 1, true), err.hint)
  end)

  it("name the setting that is wrong", function()
    local err = fails({ target_session_attrs = "primary-ish" })
    assert.are.equal("invalid_config", err.code)
    assert.truthy(err.hint:find("target_session_attrs is one of any", 1, true), err.hint)
    assert.is_nil(err.hint:find("sslmode", 1, true), err.hint)
  end)

  it("suggest TLS, not pg_hba.conf, when the server refuses plain text", function()
    pg.ensure_role("neoconn_nossl_rejected", "pw")
    local conn, err = neoconn.connect(pg.target("neoconn_nossl_rejected", "pw", { sslmode = "disable" }))
    assert.is_nil(conn)
    assert.are.equal("hba_rejected", err.code)
    assert.truthy(err.hint:find("sslmode=require", 1, true), err.hint)
    conn = assert(neoconn.connect(pg.target("neoconn_nossl_rejected", "pw", { sslmode = "require" })))
    conn:close()
  end)

  it("mark TLS not used when sslmode=prefer went on in plain text", function()
    -- The second cluster (no TLS) has roles of its own.
    local plain = assert(neoconn.connect({ host = pg.socket, port = pg.plain_port, user = pg.admin_user,
      dbname = "postgres" }))
    assert(plain:query(("CREATE ROLE %s LOGIN PASSWORD '%s'"):format(user, password)))
    assert(plain:query(("CREATE DATABASE %s OWNER %s"):format(user, user)))
    plain:close()
    local report = neoconn.test(pg.target(user, password, { port = pg.plain_port, sslmode = "prefer",
      dbname = user }))
    assert.is_true(report.ok, tostring(report.error))
    assert.are.equal("tls", report.stages[2].name)
    assert.is_true(report.stages[2].skipped)
    assert.is_false(report.session.ssl.in_use)
    report = neoconn.test(pg.target(user, password, { sslmode = "prefer" }))
    assert.is_nil(report.stages[2].skipped)
    assert.is_true(report.session.ssl.in_use)
  end)
end)
