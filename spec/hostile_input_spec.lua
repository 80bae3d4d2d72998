-- Hostile and careless input to the C core: nothing crashes, hangs, leaks
-- a secret or answers wrong; each case is an item of the fault-and-fuzz
-- audit, proven against the real server.
local neoconn = require("neoconn")
local core = require("neoconn.core")
local pg = require("pg")
local q = neoconn.quote_ident

local function elapsed(fn)
  local t0 = neoconn.clock()
  local a, b = fn()
  return neoconn.clock() - t0, a, b
end

describe("conn:query", function()
  local user, password, conn
  setup(function()
    user, password = pg.login_role("hq")
    conn = assert(neoconn.connect(pg.target(user, password)))
  end)
  teardown(function() conn:close() end)

  it("takes any number of parameters without overrunning the Lua stack", function()
    for _, n in ipairs({ 70, 100, 1000, 20000 }) do
      local params = {}
      for i = 1, n do params[i] = i end
      local placeholders = {}
      for i = 1, n do placeholders[i] = "$" .. i .. "::int" end
      local rows = assert(conn:query("SELECT cardinality(ARRAY[" .. table.concat(placeholders, ", ")
        .. "]) AS n, $" .. n .. "::int AS last", params))
      assert.are.same({ n = n, last = n }, rows[1])
    end
  end)

  it("reads column names that look like broken flags without crashing", function()
    local many = {}
    for i = 1, 40 do many[i] = ("a%02d"):format(i) end
    local rows = assert(conn:query(([[SELECT 1 AS "{", 1 AS "a{", 3 AS "b{}", 3 AS "c{,}",
      'x' AS "d{e,f}", -1 AS "g{h,i}", 9223372036854775807 AS "j{k}", 7 AS %s]])
      :format(q("m{" .. table.concat(many, ",") .. "}"))))
    local row = rows[1]
    assert.is_nil(row["{"])
    assert.are.same({ e = false, f = false }, row.d) -- not a number: no bit set
    assert.are.same({ h = true, i = true }, row.g)
    assert.are.same({ k = true }, row.j)
    -- The server cut the 40 names at 63 bytes: the fields left get the low bits.
    assert.are.same({ true, true, true, false, false }, { row.m.a01, row.m.a02, row.m.a03,
      row.m.a04, row.m.a }) -- "a", the 16th field, cut short
    assert.is_nil(row.m.a16)
  end)

  it("refuses COPY within its deadline and leaves the connection usable", function()
    for _, sql in ipairs({ "COPY (SELECT g FROM generate_series(1, 100000) g) TO STDOUT",
      "CREATE TEMP TABLE IF NOT EXISTS sink (v int); COPY sink FROM STDIN" }) do
      local took, rows, err = elapsed(function() return conn:query(sql, nil, { timeout = 5 }) end)
      assert.is_nil(rows)
      assert.are.equal("query_failed", err.code)
      assert.are.equal("COPY is not supported by conn:query", err.message)
      assert.is_true(took < 5)
      assert.are.same({ { one = 1 } }, assert(conn:query("SELECT 1 AS one")))
    end
  end)

  it("raises for zero bytes in the text and parameters, and while a test runs", function()
    pg.raises(function() conn:query("SELECT 1\0; DROP TABLE x") end, "sql: contains a zero byte")
    pg.raises(function() conn:query("SELECT $1", { "a\0b" }) end, "params[1]: contains a zero byte")
    pg.raises(function() conn:query("SELECT $1", { {} }) end,
      "params[1]: string, number or boolean expected, got table")
    local testing = neoconn.test_begin(conn)
    pg.raises(function() conn:query("SELECT 1") end,
      "a test is running on this connection: finish it first")
    local report
    repeat report = testing:test_step() until report
    assert.is_true(report.ok)
    assert(conn:query("SELECT 1"))
  end)

  it("reports server errors on one line", function()
    local _, err = conn:query("SELECT * FROM no_such_table_here")
    assert.are.equal("42P01", err.sqlstate)
    assert.is_nil(err.message:find("[\n\t]"))
  end)
end)

describe("timeouts", function()
  local target
  setup(function()
    local user, password = pg.login_role("ht")
    target = pg.target(user, password)
  end)

  it("refuse NaN and infinity, naming the timeout, everywhere one is taken", function()
    for _, bad in ipairs({ 0 / 0, math.huge, -math.huge, 0, -1 }) do
      local opts = { timeout = bad }
      assert.has_error(function() neoconn.test(target, opts) end,
        "bad argument #2 to 'test' (test: timeout must be a positive, finite number of seconds)")
      assert.has_error(function() neoconn.connect(target, opts) end,
        "bad argument #2 to 'connect' (connect: timeout must be a positive, finite number of seconds)")
      assert.has_error(function() neoconn.connect_start(target, opts) end)
      assert.has_error(function() neoconn.test_all({ target }, opts) end)
    end
    assert.has_error(function() core.poll({}, {}, 0 / 0) end,
      "bad argument #3 to 'poll' (timeout: a finite number of seconds, 0 or more, expected)")
  end)

  it("of any finite length work, far beyond what statement_timeout holds", function()
    for _, long in ipairs({ 86400 * 25, 1e7, 1e308 }) do
      local report = neoconn.test(target, { timeout = long })
      assert.is_true(report.ok, tostring(report.error))
    end
  end)
end)

describe("sizes and files", function()
  it("refuse a password larger than a connection setting may be, at once", function()
    local took, report = elapsed(function()
      return neoconn.test(pg.target("nobody", string.rep("x", 10 * 1024 * 1024)), { timeout = 2 })
    end)
    assert.is_true(took < 1)
    assert.are.equal("invalid_config", report.error.code)
    assert.are.equal("password has 10485760 bytes, more than 4096", report.error.message)
  end)

  it("never open a FIFO as a certificate", function()
    local dir = pg.temp_dir()
    local fifo = dir .. "/root.crt"
    assert.are.equal(0, pg.execute("mkfifo " .. fifo))
    local took, _, err = elapsed(function()
      return neoconn.connect(pg.target("nobody", "x", { sslmode = "verify-full", sslrootcert = fifo }),
        { timeout = 2 })
    end)
    assert.is_true(took < 1)
    assert.are.equal("invalid_config", err.code)
    assert.are.equal("sslrootcert " .. fifo .. " is not a regular file", err.message)
    os.remove(fifo)
    os.remove(dir)
  end)

  it("refuse names too long to be names, and lists too long to be lists", function()
    local target = pg.target("nobody", "x")
    assert.has_error(function() neoconn.test(target, { tables = { string.rep("n", 2000) } }) end,
      "bad argument #2 to 'test' (tables[1]: a name of 2000 bytes (at most 1024))")
    local many = {}
    for i = 1, 100001 do many[i] = "s" end
    assert.has_error(function() neoconn.test(target, { schemas = many }) end,
      "bad argument #2 to 'test' (schemas: 100001 names (at most 100000))")
  end)
end)

describe("secrets", function()
  it("never echo a password that breaks the connection string", function()
    for _, target in ipairs({ "postgresql://dst:100%S3cr3t@localhost/app",
      "host=localhost password=S3cr3t P@ss dbname=app", "password='S3cr3t P@ss" }) do
      local conn, err = neoconn.connect(target)
      assert.is_nil(conn)
      assert.are.equal("invalid_config", err.code)
      assert.is_nil(tostring(err):find("S3cr3t", 1, true), tostring(err))
      assert.is_nil(tostring(err):find("P@ss", 1, true), tostring(err))
      local report = neoconn.test(target)
      assert.is_nil(report.error.message:find("S3cr3t", 1, true))
    end
  end)

  it("never echo a piece of a URL password holding an unencoded @, / or :", function()
    for _, password in ipairs({ "Zq7@Secr3tXy", "Zq7/Secr3tXy", "Zq7@Secr3t:Xy", "Zq7/Secr3t?Xy@w",
      "123/Secr3tXy" }) do
      for _, template in ipairs({ "postgresql://sync_src:%s@%s:%s/app", "postgres://sync_src:%s@%s:%s" }) do
        local url = template:format(password, pg.host, pg.port)
        local conn, err = neoconn.connect(url, { timeout = 2 })
        assert.is_nil(conn)
        assert.are.same({ "invalid_config", "config" }, { err.code, err.stage }, tostring(err))
        assert.truthy(err.hint:find("%40", 1, true), err.hint)
        local report = neoconn.test(url, { timeout = 2 })
        for _, text in ipairs({ tostring(err), report.error.message, report.error.hint }) do
          -- "123" as the password's own start (the harness's port may hold 123)
          for _, piece in ipairs({ "Zq7", "Secr3t", "Xy", "src:123" }) do
            assert.is_nil(text:find(piece, 1, true), text)
          end
        end
      end
    end
    -- A URL whose user information holds none of them still connects, and
    -- an @ in its query is no password's.
    local user, password = pg.login_role("urlat")
    for _, url in ipairs({ ("postgresql://%s:%s@%s:%s/%s?application_name=a@b"):format(user, password,
      pg.host, pg.port, pg.dbname), ("postgresql://%s:%s/%s?user=%s&password=%s&application_name=x@y")
      :format(pg.host, pg.port, pg.dbname, user, password) }) do
      assert(neoconn.connect(url)):close()
    end
  end)

  it("scrub a password of any length", function()
    local secret = string.rep("Long-S3cret-", 40)
    local text = neoconn.redact("it was " .. secret .. " and postgresql://u:" .. secret .. "@h/db", secret)
    assert.is_nil(text:find("S3cret", 1, true), text)
  end)
end)

describe("zero bytes", function()
  it("are refused in every field of a target, naming it", function()
    local base = pg.target("u", "p")
    for _, key in ipairs({ "password", "host", "dbname", "user", "sslmode" }) do
      local t = {}
      for k, v in pairs(base) do t[k] = v end
      t[key] = "value\0garbage"
      assert.has_error(function() neoconn.connect(t) end,
        ("bad argument #1 to 'connect' (field '%s' contains a zero byte)"):format(key))
    end
    local t = { host = pg.host, ["sslmode\0x"] = "disable" }
    assert.has_error(function() neoconn.connect(t) end)
    assert.has_error(function() neoconn.connect("host=x\0 password=y") end,
      "bad argument #1 to 'connect' (target: the connection string contains a zero byte)")
    assert.has_error(function() neoconn.test(base, { tables = { "public.a\0b" } }) end,
      "bad argument #2 to 'test' (tables[1]: empty name or zero byte)")
  end)
end)

describe("names", function()
  it("are compared in UTF-8 whatever PGCLIENTENCODING says, and cut at 63 bytes like the server's", function()
    local user, password = pg.login_role("enc")
    local long = string.rep("ä", 40) -- 80 bytes: the server keeps 31 characters
    pg.exec(([[CREATE SCHEMA IF NOT EXISTS "Ümlaut"; CREATE TABLE IF NOT EXISTS "Ümlaut"."tä" (id int);
      CREATE TABLE IF NOT EXISTS "Ümlaut".%s (id int); GRANT USAGE ON SCHEMA "Ümlaut" TO %s]])
      :format(q(long), q(user)))
    local script = pg.write_temp(([[
      package.path, package.cpath = %q, %q
      local neoconn = require("neoconn")
      local r = neoconn.test({ host = %q, port = %q, user = %q, password = %q, dbname = %q },
        { tables = { '"Ümlaut"."tä"', { schema = "Ümlaut", name = %q } } })
      assert(r.ok, tostring(r.error))
      io.write(#r.tables, " ", #r.not_found)
    ]]):format(package.path, package.cpath, pg.host, pg.port, user, password, pg.dbname, long), ".lua")
    local out = os.tmpname()
    assert.are.equal(0, pg.execute(("PGCLIENTENCODING=LATIN1 %s %s >%s"):format(pg.lua, script, out)))
    assert.are.equal("2 0", pg.slurp(out))
    os.remove(out)
    os.remove(script)
  end)
end)

describe("misuse", function()
  it("is answered with errors that name what is wrong", function()
    assert.has_error(function() neoconn.quote_ident("") end,
      "bad argument #1 to 'quote_ident' (identifier is empty (PostgreSQL has no empty names))")
    assert.has_error(function() neoconn.requirements("destination", { on_conflict = "bogus" }) end,
      "bad argument #2 to 'requirements' (on_conflict must be \"nothing\" or \"update\")")
    local _, err = neoconn.connect(("host=%s port=%s keepalives_idle=abc"):format(pg.host, pg.port))
    assert.are.equal("invalid_config", err.code)
  end)

  it("in test_all names the bad item and leaves nothing running", function()
    assert.has_error(function() neoconn.test_all({ "host=x" }, true) end,
      "bad argument #2 to 'test_all' (opts: options table expected, got boolean)")
    assert.has_error(function() neoconn.test_all({ "host=x", 5 }) end,
      "bad argument #1 to 'test_all' (targets[2]: a target expected, got number)")
    local good = pg.target("nobody", "x", { port = pg.silent_port })
    assert.has_error(function()
      neoconn.test_all({ good, good, { target = good, tables = { "" } } }, { timeout = 30 })
    end, "bad argument #1 to 'test_all' (targets[3]: tables[1]: empty name or zero byte)")
  end)

  it("classifies a connection closed before the server says anything", function()
    local _, err = neoconn.connect({ host = pg.host, port = pg.closing_port, user = "u",
      sslmode = "disable" }, { timeout = 5 })
    assert.are.equal("connection_lost", err.code)
    assert.truthy(err.hint:find("PostgreSQL's", 1, true))
    _, err = neoconn.connect({ host = pg.host, port = pg.closing_port, user = "u",
      sslmode = "prefer" }, { timeout = 5 })
    assert.are.equal("connection_lost", err.code)
  end)
end)

describe("argument errors", function()
  it("name the argument they are about", function()
    local cases = {
      { function() neoconn.connect() end, "target: a connection URL" },
      { function() neoconn.connect({}, 5) end, "opts: options table expected, got number" },
      { function() neoconn.test() end, "target: a connection" },
      { function() neoconn.requirements(nil) end, "kind: \"source\" or \"destination\" expected, got nil" },
      { function() neoconn.requirements("source", 5) end, "opts: table of job options expected" },
      { function() neoconn.test({}, { job = { kind = "sink" } }) end,
        "job.kind: \"source\" or \"destination\" expected, got sink" },
      { function() neoconn.quote_ident({}) end, "name: string expected, got table" },
      { function() neoconn.parse_name(nil) end, "name: string expected, got nil" },
      { function() neoconn.redact(nil) end, "text: string expected, got nil" },
      { function() neoconn.redact("x", {}) end, "secret: string expected, got table" },
      { function() neoconn.test_all(nil) end, "list of targets expected" },
    }
    for _, case in ipairs(cases) do pg.raises(case[1], case[2]) end
  end)
end)

describe("errors that used to mislead", function()
  it("call a TLS session ended in the middle of the handshake connection_lost", function()
    local _, err = neoconn.connect({ host = pg.host, port = pg.tls_closing_port, user = "u",
      password = "p", sslmode = "require" }, { timeout = 5 })
    assert.are.equal("connection_lost", err.code, tostring(err))
    assert.truthy(err.message:find("SSL connection has been closed unexpectedly", 1, true), err.message)
    assert.truthy(err.hint:find("shutting down", 1, true), err.hint)
  end)

  it("classify a replication connection's failures as the main one's, at stage replication", function()
    local user, password = pg.login_role("replfail", "REPLICATION")
    local schema = pg.schema_with_table(user, "replfail", { grant = "SELECT" })
    local job = { kind = "source", cdc = true }
    -- The server ends the replication session as it does when shutting
    -- down (FATAL 57P01), in answer to IDENTIFY_SYSTEM: the second
    -- connection's first rows, through the doctoring proxy.
    local proxy = io.popen(("build/tools/doctor_proxy %s %s fatal 1 0 2 2"):format(pg.proxy_port, pg.port))
    assert.are.equal("ready", proxy:read("*l"))
    local report = neoconn.test(("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable "
      .. "gssencmode=disable"):format(pg.host, pg.proxy_port, user, password, pg.dbname),
      { job = job, schemas = { schema } })
    proxy:close()
    local err = report.replication.connection.error
    assert.are.same({ "connection_lost", "replication", "57P01" }, { err.code, err.stage, err.sqlstate },
      tostring(err))
    assert.is_nil(err.message:find("LOCATION", 1, true), err.message)
    assert.is_nil(err.message:find("57P01", 1, true), err.message)
    -- A refusal at login: the role lacks REPLICATION.
    pg.exec(("ALTER ROLE %s NOREPLICATION"):format(q(user)))
    report = neoconn.test(pg.target(user, password), { job = job, schemas = { schema } })
    err = report.replication.connection.error
    assert.are.same({ "replication_not_allowed", "replication", "42501" },
      { err.code, err.stage, err.sqlstate }, tostring(err))
    local last = report.stages[#report.stages]
    assert.are.same({ "replication", false }, { last.name, last.ok })
  end)

  it("refuse more parameters than the protocol carries before sending, keeping the connection", function()
    local user, password = pg.login_role("params")
    local conn = assert(neoconn.connect(pg.target(user, password)))
    local params = {}
    for i = 1, 65536 do params[i] = i end
    pg.raises(function() conn:query("SELECT 1", params) end,
      "params: at most 65535 parameters (the protocol's limit), got 65536")
    assert.are.same({ { one = 1 } }, assert(conn:query("SELECT 1 AS one")))
    conn:close()
  end)

  it("give the COPY refusal a hint, and no empty hint in any error's text", function()
    local user, password = pg.login_role("copyhint")
    local conn = assert(neoconn.connect(pg.target(user, password)))
    local _, err = conn:query("COPY (SELECT 1) TO STDOUT")
    assert.truthy(err.hint:find("\\copy", 1, true), err.hint)
    assert.is_nil(tostring(err):find("(hint: )", 1, true), tostring(err))
    conn:close()
  end)

  it("never raise for a result wider than the Lua stack, and leave the connection usable", function()
    local user, password = pg.login_role("wide")
    local conn = assert(neoconn.connect(pg.target(user, password)))
    -- 300 flags columns of 30 fields each: 9000 names, more than LuaJIT's
    -- stack holds; Lua 5.4's holds them.
    local flags = {}
    for k = 1, 30 do flags[k] = ("f%02d"):format(k) end
    local columns = {}
    for i = 1, 300 do
      columns[i] = ("1 AS %s"):format(q(("c%03d{%s}"):format(i, table.concat(flags, ","))))
    end
    local rows, err = conn:query("SELECT " .. table.concat(columns, ", "))
    if rows then
      assert.is_true(rows[1].c001.f01)
    else
      assert.are.equal("query_failed", err.code)
    end
    assert.are.same({ { one = 1 } }, assert(conn:query("SELECT 1 AS one")))
    conn:close()
  end)

  it("let test_all take connections, as neoconn.test does", function()
    local user, password = pg.login_role("allconn")
    local conn = assert(neoconn.connect(pg.target(user, password)))
    local reports = neoconn.test_all({ conn, pg.target(user, password) })
    assert.is_true(reports[1].ok, tostring(reports[1].error))
    assert.is_true(reports[2].ok)
    assert.are.same({ { one = 1 } }, assert(conn:query("SELECT 1 AS one")))
    conn:close()
  end)
end)
