-- Certificate expiry: the report carries the TLS session's certificates
-- (the server's, and the client's when one was sent), and the policy warns
-- within certificate_warning_days (default 30) and fails an expired one,
-- which sslmode=require takes. The server's certificate is swapped for
-- real (ALTER SYSTEM and a reload), then put back.
local neoconn = require("neoconn")
local pg = require("pg")
local check = require("neoconn.check")

local root = pg.run("test \"$(id -u)\" = 0") == 0

-- Installs crt/key as the primary's certificate and waits until new
-- sessions present it (subject); returns a function putting the old back.
local function serve_certificate(crt, key, subject)
  local dir = os.getenv("NEOCONN_TEST_TMP")
  local name = pg.unique("cert")
  local c, k = ("%s/%s.crt"):format(dir, name), ("%s/%s.key"):format(dir, name)
  assert(pg.execute(("cp %s %s && cp %s %s && chmod 600 %s"):format(crt, c, key, k, k)) == 0)
  if root then assert(pg.execute(("chown postgres:postgres %s %s"):format(c, k)) == 0) end
  local function switch(cert_file, key_file, want)
    pg.exec(cert_file and ("ALTER SYSTEM SET ssl_cert_file = '%s'"):format(cert_file)
      or "ALTER SYSTEM RESET ssl_cert_file")
    pg.exec(key_file and ("ALTER SYSTEM SET ssl_key_file = '%s'"):format(key_file)
      or "ALTER SYSTEM RESET ssl_key_file")
    pg.exec("SELECT pg_reload_conf()")
    local deadline = neoconn.clock() + 10
    repeat
      local conn = neoconn.connect(pg.target(pg.admin_user, pg.admin_password, { sslmode = "require" }))
      local r = conn and neoconn.test(conn, { tables = {} })
      if conn then conn:close() end
      local seen = r and r.session and r.session.ssl.server_certificate
      if seen and seen.subject == want then return end
      pg.exec("SELECT pg_sleep(0.05)") -- between looks at what new sessions get
    until neoconn.clock() > deadline
    error("the server did not take the certificate " .. want)
  end
  switch(c, k, subject)
  return function() switch(nil, nil, "CN=localhost") end
end

local function issue(dir, name, opts)
  local cnf = dir .. "/ca.cnf"
  if opts.expired then
    local f = assert(io.open(cnf, "w"))
    f:write("[ca]\ndefault_ca = own\n[own]\ndir = ", dir, "\ndatabase = ", dir, "/index.txt\n",
      "serial = ", dir, "/serial\nnew_certs_dir = ", dir, "\ndefault_md = sha256\n",
      "policy = any\nemail_in_dn = no\n[any]\ncommonName = supplied\n")
    f:close()
    assert(pg.execute(("(cd %s && touch index.txt && echo 01 > serial"
      .. " && openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj '/CN=old CA' -keyout ca.key"
      .. " -out ca.crt && openssl req -new -newkey rsa:2048 -nodes -subj '/CN=%s' -keyout %s.key"
      .. " -out %s.csr && openssl ca -batch -config %s -cert ca.crt -keyfile ca.key"
      .. " -startdate 20200101000000Z -enddate 20200201000000Z -in %s.csr -out %s.crt"
      .. ") >/dev/null 2>&1"):format(dir, name, name, name, cnf, name, name)) == 0)
  else
    assert(pg.execute(("openssl req -x509 -newkey rsa:2048 -nodes -days %d -subj '/CN=%s'"
      .. " -keyout %s/%s.key -out %s/%s.crt >/dev/null 2>&1"):format(opts.days, name, dir, name,
        dir, name)) == 0)
  end
  return ("%s/%s.crt"):format(dir, name), ("%s/%s.key"):format(dir, name)
end

local function expiry_findings(result)
  return pg.findings(result, "certificate_expiry")
end

describe("certificate expiry #client", function()
  local user, password = pg.login_role("certs")
  local _, t = pg.schema_with_table(user, "certs", { grant = "SELECT" })
  local function checked(extra, settings)
    local s = pg.settings(user, password, "source", {}, { tables = { t } }, extra)
    for k, v in pairs(settings or {}) do s[k] = v end
    return check.connection(s)
  end

  it("reads the server's certificate of a valid session and says nothing of it", function()
    local r = checked({ sslmode = "require" })
    local cert = r.report.session.ssl.server_certificate
    assert.are.equal("CN=localhost", cert.subject)
    assert.are.equal("CN=localhost", cert.issuer)
    assert.truthy(cert.expires_in > 3000 * 86400, tostring(cert.expires_in))
    assert.truthy(cert.not_after:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"), cert.not_after)
    assert.are.same({}, expiry_findings(r))
    assert.is_nil(r.report.session.ssl.client_certificate)
  end)

  -- Runs fn with a certificate issued (issue's opts) and served as subject,
  -- then puts the harness's back.
  local function serving(name, opts, subject, fn)
    local dir = pg.temp_dir()
    local crt, key = issue(dir, name, opts)
    local restore = serve_certificate(crt, key, subject)
    local ok, err = pcall(fn)
    restore()
    os.execute("rm -rf " .. dir)
    assert(ok, err)
  end

  it("warns of a server certificate expiring in 10 days, unless told fewer days", function()
    serving("soon", { days = 10 }, "CN=soon", function()
      local r = checked({ sslmode = "require" })
      local found = expiry_findings(r)
      assert.are.equal(1, #found)
      assert.are.equal("warning", found[1].level)
      assert.truthy(found[1].message:find("the server's certificate (CN=soon, issued by CN=soon) "
        .. "expires on ", 1, true), found[1].message)
      -- issued for 10 days this very second: 10 days left, or 9 and some hours
      assert.truthy(found[1].message:find(", in 9 days", 1, true)
        or found[1].message:find(", in 10 days", 1, true), found[1].message)
      assert.is_true(r.ok)
      assert.are.same({}, expiry_findings(checked({ sslmode = "require" }, { certificate_warning_days = 5 })))
    end)
  end)

  it("fails an expired server certificate that sslmode=require took", function()
    serving("expired", { expired = true }, "CN=expired", function()
      local r = checked({ sslmode = "require" })
      local found = expiry_findings(r)
      assert.are.equal(1, #found)
      assert.are.equal("error", found[1].level)
      assert.truthy(found[1].message:find("expired on 2020-02-01T00:00:00Z: sslmode=require does "
        .. "not check it", 1, true), found[1].message)
      assert.is_false(r.ok)
      assert.truthy(r.report.session.ssl.server_certificate.expires_in < 0)
    end)
  end)

  it("reads the client certificate sent, and warns before it expires", function()
    local dir = pg.temp_dir()
    local crt, key = pg.client_cert(dir, "client", user, { days = 10 })
    local r = checked({ sslmode = "require", sslcert = crt, sslkey = key })
    os.execute("rm -rf " .. dir)
    assert.are.equal("CN=" .. user, r.report.session.ssl.client_certificate.subject)
    local found = expiry_findings(r)
    assert.are.equal(1, #found)
    assert.truthy(found[1].message:find("the client certificate (CN=" .. user, 1, true), found[1].message)
  end)
end)
