-- Client-certificate authentication, against the harness's pg_hba.conf:
-- neoconn_cert_only logs in with a certificate alone (method cert),
-- neoconn_cert_full with a password and a certificate whose CN is its name
-- (clientcert=verify-full). Certificates come from the CA the server trusts,
-- or are self-signed (a CA it does not know). No failure gets the hint to
-- reset a password unless a password is what failed.
local neoconn = require("neoconn")
local pg = require("pg")

describe("client-certificate authentication", function()
  local dir
  setup(function()
    pg.ensure_role("neoconn_cert_only", "pw-cert-only")
    pg.ensure_role("neoconn_cert_full", "pw-cert-full")
    dir = pg.temp_dir()
    pg.client_cert(dir, "only", "neoconn_cert_only")
    pg.client_cert(dir, "full", "neoconn_cert_full")
    pg.client_cert(dir, "other", "neoconn_someone_else")
    pg.client_cert(dir, "unknown_ca", "neoconn_cert_only", { self_signed = true })
  end)
  teardown(function() pg.execute("rm -rf " .. dir) end)

  -- The target for user with certificate `cert` (none when nil).
  local function target(user, cert, password)
    local t = pg.target(user, password, { sslmode = "require" })
    if cert then t.sslcert, t.sslkey = dir .. "/" .. cert .. ".crt", dir .. "/" .. cert .. ".key" end
    return t
  end

  local function refused(t, code, stage)
    local conn, err = neoconn.connect(t, { timeout = 5 })
    assert.is_nil(conn)
    assert.are.equal(code, err.code, tostring(err))
    assert.are.equal(stage, err.stage, tostring(err))
    return err
  end

  it("connects with the role's certificate alone, and the test passes", function()
    local report = neoconn.test(target("neoconn_cert_only", "only"))
    assert.is_true(report.ok, tostring(report.error))
    assert.are.equal("neoconn_cert_only", report.role.name)
  end)

  it("without a certificate is client_cert_rejected, naming sslcert, not the password", function()
    for _, sslmode in ipairs({ "require", "prefer" }) do
      local t = target("neoconn_cert_only")
      t.sslmode = sslmode
      local err = refused(t, "client_cert_rejected", "authenticate")
      assert.truthy(err.message:find("requires a valid client certificate", 1, true), err.message)
      assert.truthy(err.hint:find("give sslcert and sslkey", 1, true), err.hint)
      assert.is_nil(err.hint:find("PASSWORD", 1, true), err.hint)
    end
  end)

  it("with another user's certificate is client_cert_rejected, naming the CN", function()
    local err = refused(target("neoconn_cert_only", "other"), "client_cert_rejected", "authenticate")
    assert.truthy(err.message:find("certificate authentication failed", 1, true), err.message)
    assert.truthy(err.hint:find("common name (CN) is not neoconn_cert_only", 1, true), err.hint)
    assert.is_nil(err.hint:find("PASSWORD", 1, true), err.hint)
  end)

  it("with a certificate from a CA the server does not trust is tls_failed, naming ssl_ca_file",
    function()
      local err = refused(target("neoconn_cert_only", "unknown_ca"), "tls_failed", "tls")
      assert.truthy(err.message:find("unknown ca", 1, true), err.message)
      assert.truthy(err.hint:find("ssl_ca_file", 1, true), err.hint)
      assert.is_nil(err.hint:find("server's certificate", 1, true), err.hint)
    end)

  it("with clientcert=verify-full needs both the password and the role's certificate", function()
    local conn = assert(neoconn.connect(target("neoconn_cert_full", "full", "pw-cert-full")))
    conn:close()
    refused(target("neoconn_cert_full", nil, "pw-cert-full"), "client_cert_rejected",
      "authenticate")
    -- The server answers a CN mismatch as a failed password; the hint says so.
    local err = refused(target("neoconn_cert_full", "other", "pw-cert-full"), "auth_failed",
      "authenticate")
    assert.truthy(err.hint:find("clientcert=verify-full", 1, true), err.hint)
    local plain = refused(pg.target("neoconn_cert_only", "wrong", { sslmode = "disable" }),
      "auth_failed", "authenticate")
    assert.is_nil(plain.hint:find("clientcert", 1, true), plain.hint)
  end)
end)
