-- Client keys: an encrypted key is opened with sslpassword only, never by
-- a prompt on the terminal (libpq's own callback reads /dev/tty and ignores
-- the deadline); a missing or wrong passphrase and a key others can read
-- are classified errors whose hint names the fix.
local neoconn = require("neoconn")
local pg = require("pg")

describe("a client key", function()
  local dir, user, password
  setup(function()
    user, password = pg.login_role("ck")
    dir = pg.temp_dir()
    -- Issued by the CA the server trusts: the server asks every client for
    -- its certificate and checks one that is sent.
    pg.client_cert(dir, "enc", "neoconn-client", { passphrase = "Key-Pass-123" })
    pg.client_cert(dir, "open", "neoconn-client")
    assert.are.equal(0, pg.execute(("chmod 644 %s/open.key"):format(dir)))
  end)
  teardown(function() pg.execute("rm -rf " .. dir) end)

  local function target(name, extra)
    local t = pg.target(user, password, { sslmode = "require", sslcert = dir .. "/" .. name .. ".crt",
      sslkey = dir .. "/" .. name .. ".key" })
    for k, v in pairs(extra or {}) do t[k] = v end
    return t
  end

  it("is opened with sslpassword", function()
    local conn = assert(neoconn.connect(target("enc", { sslpassword = "Key-Pass-123" })))
    conn:close()
  end)

  it("with a wrong or missing passphrase is client_key, naming sslpassword", function()
    for _, extra in ipairs({ { sslpassword = "wrong" }, {} }) do
      local conn, err = neoconn.connect(target("enc", extra), { timeout = 5 })
      assert.is_nil(conn)
      assert.are.equal("client_key", err.code)
      assert.are.equal("tls", err.stage)
      assert.truthy(err.hint:find("sslpassword", 1, true), err.hint)
    end
  end)

  it("never prompts on a terminal, within the deadline", function()
    local script = pg.write_temp(([[
      package.path, package.cpath = %q, %q
      local neoconn = require("neoconn")
      local _, err = neoconn.connect({ host = %q, port = %q, user = %q, password = %q, dbname = %q,
        sslmode = "require", sslcert = %q, sslkey = %q }, { timeout = 5 })
      io.write("code=", err and err.code or "connected", "\n")
    ]]):format(package.path, package.cpath, pg.host, pg.port, user, password, pg.dbname,
      dir .. "/enc.crt", dir .. "/enc.key"), ".lua")
    local out = os.tmpname()
    local t0 = neoconn.clock()
    -- script(1) runs it on a pseudo-terminal, where a prompt would wait.
    pg.execute(("timeout 20 script -qec '%s %s' /dev/null </dev/null >%s 2>&1"):format(pg.lua, script, out))
    local text = pg.slurp(out)
    os.remove(out)
    os.remove(script)
    assert.is_true(neoconn.clock() - t0 < 10)
    assert.truthy(text:find("code=client_key", 1, true), text)
    assert.is_nil(text:find("pass phrase", 1, true), text)
  end)

  it("that is missing is client_key, naming sslcert and sslkey, not the server's certificate",
    function()
      local conn, err = neoconn.connect(target("enc", { sslkey = dir .. "/absent.key" }), { timeout = 5 })
      assert.is_nil(conn)
      assert.are.equal("client_key", err.code)
      assert.are.equal("tls", err.stage)
      assert.truthy(err.hint:find("check sslcert and sslkey", 1, true), err.hint)
      assert.is_nil(err.hint:find("server", 1, true), err.hint)
    end)

  it("that others may read is refused, with chmod in the hint", function()
    local conn, err = neoconn.connect(target("open"), { timeout = 5 })
    assert.is_nil(conn)
    assert.are.equal("client_key", err.code)
    assert.truthy(err.hint:find("chmod 0600", 1, true), err.hint)
  end)
end)
