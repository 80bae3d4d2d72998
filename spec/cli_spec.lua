-- The neoconn command-line tool, run as a process against the test cluster.
local json = require("dkjson")
local neoconn = require("neoconn")
local pg = require("pg")
local q = neoconn.quote_ident

local shell_quote = pg.shell_quote
local neoconn_cli = pg.cli

local function write_config(text)
  return pg.write_temp(text, ".lua")
end

describe("neoconn check", function()
  local path, secret, user, schema
  setup(function()
    secret = "Cli-Secret-Pw-77"
    user = pg.login_role("cli")
    pg.exec(("ALTER ROLE %s PASSWORD '%s'"):format(q(user), secret))
    schema = pg.schema_with_table(user, "cli", { table = "readable", grant = "SELECT" })
    pg.exec(("CREATE TABLE %s (id int PRIMARY KEY, v text)"):format(q(schema, "closed")))
    path = write_config(([[
connections = {
  good_src = { host = %q, port = %s, dbname = %q, user = %q, password = env("CLI_PW"),
               kind = "source", tables = { %q } },
  bad_src = { host = %q, port = %s, dbname = %q, user = %q, password = env("CLI_PW"),
              kind = "source", schemas = { %q } },
  dead = { host = %q, port = %s, user = "x", kind = "source" },
}
]]):format(pg.host, pg.port, pg.dbname, user, q(schema, "readable"),
      pg.host, pg.port, pg.dbname, user, schema, pg.host, pg.refused_port))
  end)
  teardown(function() os.remove(path) end)

  it("exits 0 when every selected connection passes", function()
    local code, out = neoconn_cli("check " .. path .. " --only good_src", { CLI_PW = secret })
    assert.are.equal(0, code, out)
    assert.truthy(out:find("good_src: PASS", 1, true), out)
  end)

  it("exits 1 for a permission error, with findings grouped by object and the fix", function()
    local fix = os.tmpname()
    local code, out = neoconn_cli(("check %s --only bad_src --fix-sql %s"):format(path, fix),
      { CLI_PW = secret })
    assert.are.equal(1, code, out)
    assert.truthy(out:find("table " .. q(schema, "closed"), 1, true), out)
    assert.truthy(out:find("error missing SELECT:", 1, true), out)
    local sql = pg.slurp(fix)
    os.remove(fix)
    assert.truthy(sql:find(("GRANT SELECT ON TABLE %s TO %s;"):format(q(schema, "closed"), q(user)),
      1, true), sql)
    assert.is_falsy(out:find("\27[", 1, true), "colour on a pipe")
  end)

  it("reads cold: a header per connection, one line per cause, a summary with the exit code", function()
    local code, out = neoconn_cli("check " .. path, { CLI_PW = secret })
    assert.are.equal(2, code)
    -- Who, where, which server, the verdict and the count, in two lines.
    local version = pg.exec("SELECT current_setting('server_version_num')::int AS v")[1].v
    assert.truthy(out:find(("good_src: PASS — 1 of 1 tables usable\n  source · role %s · %s:%s/%s · "
      .. "PostgreSQL %d.%d · TLSv1."):format(q(user), pg.host, pg.port, pg.dbname,
        math.floor(version / 10000), version % 10000), 1, true), out)
    assert.truthy(out:find("bad_src: FAIL — 1 of 2 tables usable\n", 1, true), out)
    assert.truthy(out:find("dead: NOT TESTED — refused at connect\n", 1, true), out)
    -- The executor's refusal is the proof of the missing grant, not a
    -- cause of its own.
    assert.truthy(out:find("error missing SELECT: SELECT <all columns> FROM t (proven: permission "
      .. "denied for table closed) [table.select]", 1, true), out)
    assert.is_nil(out:find("the server refuses", 1, true), out)
    -- A PASS has no fix block.
    local good = out:match("good_src: PASS.-\n\n")
    assert.is_nil(good:find("fix", 1, true), good)
    local summary = "\n\n3 connections: 1 pass, 1 fail, 1 not tested (exit code 2)\n"
    assert.are.equal(summary, out:sub(-#summary))
  end)

  it("calls a policy a policy, and writes each comment of the fix script once", function()
    local rls_user, rls_password = pg.login_role("clirls")
    local rls = pg.schema_with_table(rls_user, "clirls", { table = "orders",
      grant = "SELECT, INSERT, UPDATE" })
    pg.exec(("ALTER TABLE %s ENABLE ROW LEVEL SECURITY"):format(q(rls, "orders")))
    local url = ("postgresql://%s@%s:%s/%s"):format(rls_user, pg.host, pg.port, pg.dbname)
    local code, out = neoconn_cli(("test %s --as destination --schemas %s --on-conflict update")
      :format(url, rls), { PGPASSWORD = rls_password })
    assert.are.equal(1, code, out)
    assert.is_nil(out:find("missing INSERT", 1, true), out)
    assert.truthy(out:find("error row-level security: no permissive INSERT policy applies to "
      .. q(rls_user), 1, true), out)
    local _, header = out:gsub("row%-level security on [^\n]*: no GRANT fixes it", "")
    local _, bypass = out:gsub("ALTER ROLE [^\n]* BYPASSRLS;", "")
    assert.are.same({ 1, 1 }, { header, bypass }, out)
    assert.truthy(out:find("no GRANT fixes this; the options, for an administrator:", 1, true), out)
  end)

  it("exits 2 when a connection cannot be tested, and prints one JSON document", function()
    local code, out = neoconn_cli("check " .. path .. " --json", { CLI_PW = secret })
    assert.are.equal(2, code)
    local doc = assert(json.decode(out, 1, json.null)) -- JSON null kept as json.null
    assert.is_false(doc.ok)
    local by_name = {}
    for _, c in ipairs(doc.connections) do by_name[c.name] = c end
    assert.are.same({ "refused", "connect" }, { by_name.dead.error.code, by_name.dead.error.stage })
    assert.are.equal(json.null, by_name.good_src.error)
    assert.are.same({}, by_name.good_src.findings)
    assert.is_true(by_name.good_src.ok)
    local f = by_name.bad_src.findings[1]
    assert.are.same({ "error", "table.select", "table", schema, "closed", { "SELECT" } },
      { f.level, f.rule, f.object_type, f.schema, f.name, f.missing })
    assert.truthy(#by_name.bad_src.fix_sql > 0)
    assert.are.equal(5, #by_name.good_src.stages)
  end)

  it("never prints the password", function()
    for _, args in ipairs({ "check " .. path, "check " .. path .. " --json",
      "check " .. path .. " --fix-sql -" }) do
      local _, out, err = neoconn_cli(args, { CLI_PW = secret })
      assert.is_falsy(out:find(secret, 1, true))
      assert.is_falsy(err:find(secret, 1, true))
    end
  end)

  it("exits 64 for usage and config errors, naming the problem", function()
    local bad = write_config('connections = { a = { kind = "source", port = "x" } }')
    local cases = {
      { "check " .. bad, ": connections.a.port: expected an integer 1-65535" },
      { "check /nonexistent/neoconn.lua", "No such file" },
      { "check " .. path .. " --only nope", "no connection named nope" },
      { "check " .. path .. " --bogus", "unknown option --bogus" },
      { "test postgresql://x --as sink", "--as expects source or destination" },
      { "frobnicate", "unknown command frobnicate" },
      { "check " .. path .. " --timeout -1", "--timeout expects a positive number" },
      { "test postgresql://x --as source --truncate", "--truncate applies to destinations only" },
      { "requirements source --on-conflict update",
        "--on-conflict applies to destinations only" },
    }
    for _, case in ipairs(cases) do
      local code, _, err = neoconn_cli(case[1], { CLI_PW = secret })
      assert.are.equal(64, code, case[1])
      assert.truthy(err:find(case[2], 1, true), err)
    end
    os.remove(bad)
  end)
end)

describe("neoconn check on a terminal", function()
  -- script(1) runs the command on a pseudo-terminal.
  local function on_tty(args, env)
    local cmd = ("%s script -qec %s /dev/null"):format(env or "",
      shell_quote(pg.lua .. " bin/neoconn " .. args))
    local pipe = io.popen(cmd)
    local out = pipe:read("*a")
    pipe:close()
    return out
  end

  it("colours its output and shows progress, unless NO_COLOR is set", function()
    local path = write_config(([[connections = {
      a = { host = %q, port = %s, kind = "source" },
      b = { host = %q, port = %s, kind = "source" } }]]):format(pg.host, pg.refused_port, pg.host,
      pg.refused_port))
    local out = on_tty("check " .. path)
    assert.truthy(out:find("\27%[31m"), out)
    assert.truthy(out:find("checked 2/2: ", 1, true), out)
    out = on_tty("check " .. path, "NO_COLOR=1")
    assert.is_falsy(out:find("\27%[3"), out)
    os.remove(path)
  end)

  it("checks connections side by side with --concurrency", function()
    local lines = {}
    for i = 1, 6 do
      lines[i] = ("h%d = { host = %q, port = %s, kind = \"source\" }"):format(i, pg.host, pg.silent_port)
    end
    local path = write_config("connections = { " .. table.concat(lines, ", ") .. " }")
    local started = neoconn.clock()
    local code, out = neoconn_cli("check " .. path .. " --timeout 0.5 --concurrency 6 --json")
    local took = neoconn.clock() - started
    assert.are.equal(2, code)
    local doc = json.decode(out)
    assert.are.equal(6, #doc.connections)
    assert.are.equal("h1", doc.connections[1].name)
    assert.truthy(took < 2, ("6 hung hosts took %.2f s"):format(took)) -- one by one: 3 s
    local _, err
    code, _, err = neoconn_cli("check " .. path .. " --concurrency 0")
    assert.are.equal(64, code)
    assert.truthy(err:find("--concurrency expects a positive integer", 1, true), err)
    os.remove(path)
  end)

  it("bounds each connection by --timeout", function()
    local path = write_config(([[connections = {
      hung = { host = %q, port = %s, kind = "source" } }]]):format(pg.host, pg.silent_port))
    local started = neoconn.clock()
    local code, out = neoconn_cli("check " .. path .. " --timeout 0.5 --json")
    local took = neoconn.clock() - started
    os.remove(path)
    assert.are.equal(2, code)
    assert.are.equal("timeout", json.decode(out).connections[1].error.code)
    assert.truthy(took < 2, ("took %.2f s"):format(took))
  end)
end)

describe("examples/check-and-mail.sh", function()
  it("prints the report and the fix script when a role lacks privileges", function()
    local user, password = pg.login_role("mail")
    local schema = pg.unique("mail_s")
    pg.exec(("CREATE SCHEMA %s; CREATE TABLE %s (id int)"):format(q(schema), q(schema, "t")))
    local path = write_config(([[connections = { src = { host = %q, port = %s, dbname = %q,
      user = %q, password = %q, kind = "source", schemas = { %q } } }]])
      :format(pg.host, pg.port, pg.dbname, user, password, schema))
    -- neoconn on the PATH, run by this interpreter.
    local bindir = pg.temp_dir()
    local shim = io.open(bindir .. "/neoconn", "w")
    shim:write(("#!/bin/sh\nexec %s %s/bin/neoconn \"$@\"\n"):format(pg.lua, os.getenv("PWD")))
    shim:close()
    local outfile = os.tmpname()
    local code = pg.execute(("chmod +x %s/neoconn && PATH=%s:$PATH MAIL_TO= sh"
      .. " examples/check-and-mail.sh %s >%s 2>&1"):format(bindir, bindir, path, outfile))
    local out = pg.slurp(outfile)
    os.execute("rm -rf " .. bindir .. " " .. outfile .. " " .. path)
    assert.are.equal(1, code)
    assert.truthy(out:find("sync roles lack privileges", 1, true), out)
    assert.truthy(out:find(("GRANT USAGE ON SCHEMA %s TO %s;"):format(q(schema), q(user)), 1, true), out)
  end)
end)

describe("neoconn test", function()
  it("tests one target for a job with options and exits by the verdict", function()
    local user, password = pg.login_role("clitest")
    local schema = pg.schema_with_table(user, "clit",
      { table = "Odd, Name", grant = "INSERT, UPDATE, SELECT" })
    local url = ("postgresql://%s@%s:%s/%s"):format(user, pg.host, pg.port, pg.dbname)
    local tables = shell_quote(q(schema, "Odd, Name"))
    local code, out = neoconn_cli(("test %s --as destination --tables %s --on-conflict update")
      :format(url, tables), { PGPASSWORD = password })
    assert.are.equal(0, code, out)
    code, out = neoconn_cli(("test %s --as destination --tables %s --truncate --json")
      :format(url, tables), { PGPASSWORD = password })
    assert.are.equal(1, code)
    local doc = json.decode(out)
    assert.are.same({ "TRUNCATE" }, doc.connections[1].findings[1].missing)
  end)

  it("writes only the fix script to standard output with --fix-sql -, for psql to apply", function()
    local user, password = pg.login_role("clipipe")
    local schema = pg.schema_with_table(user, "clip", { table = "users", grant = "INSERT" })
    local url = ("postgresql://%s@%s:%s/%s"):format(user, pg.host, pg.port, pg.dbname)
    local args = ("test %s --as destination --schemas %s --on-conflict update --truncate --fix-sql -")
      :format(url, schema)
    local code, out, err = neoconn_cli(args, { PGPASSWORD = password })
    assert.are.equal(1, code)
    assert.truthy(err:find("target: FAIL", 1, true), err)
    for line in out:gmatch("[^\n]+") do
      assert.truthy(line:match("^%-%- ") or line:match("^GRANT ") or line:match("^ALTER "), line)
    end
    -- Piped into psql as it is, it applies exactly its statements, and
    -- the job passes.
    local path = pg.write_temp(out, ".sql")
    local psql, sent, stderr = pg.psql_apply(path)
    os.remove(path)
    assert.are.equal(0, psql, stderr)
    assert.are.same(pg.script_statements(out), sent)
    code = neoconn_cli(args:gsub(" %-%-fix%-sql %-", ""), { PGPASSWORD = password })
    assert.are.equal(0, code)
    local usage, _, complaint = neoconn_cli(args .. " --json", { PGPASSWORD = password })
    assert.are.equal(64, usage)
    assert.truthy(complaint:find("both write to standard output", 1, true), complaint)
  end)

  it("reads --tables and --schemas the same way, as PostgreSQL reads identifiers", function()
    local user, password = pg.login_role("clinames")
    local lower = pg.schema_with_table(user, "clin", { table = "users", grant = "SELECT" })
    local mixed = "Mixed " .. pg.unique("S")
    pg.exec(("CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s TO %s; CREATE TABLE %s (id int);"
      .. " GRANT SELECT ON %s TO %s"):format(q(mixed), q(mixed), q(user), q(mixed, "Users"),
      q(mixed, "Users"), q(user)))
    local url = ("postgresql://%s@%s:%s/%s"):format(user, pg.host, pg.port, pg.dbname)
    local function tables_seen(args)
      local code, out = neoconn_cli(("test %s --as source --json %s"):format(url, args),
        { PGPASSWORD = password })
      local doc = assert(json.decode(out), out)
      local seen = {}
      for _, t in ipairs(doc.connections[1].tables) do seen[#seen + 1] = t.schema .. "." .. t.name end
      local findings = {}
      for _, f in ipairs(doc.connections[1].findings) do findings[#findings + 1] = f.rule end
      return code, seen, findings
    end
    local upper = lower:upper()
    for _, args in ipairs({ "--schemas " .. upper, "--schemas " .. shell_quote('"' .. lower .. '"'),
      "--tables " .. upper .. ".USERS", "--tables " .. shell_quote(('"%s"."users"'):format(lower)),
      "--tables " .. shell_quote(q(lower, "users")) }) do
      local code, seen, findings = tables_seen(args)
      assert.are.same({ lower .. ".users" }, seen, args)
      assert.are.same({ 0, {} }, { code, findings }, args)
    end
    for _, args in ipairs({ "--schemas " .. shell_quote(q(mixed)),
      "--tables " .. shell_quote(q(mixed, "Users")) }) do
      local code, seen = tables_seen(args)
      assert.are.same({ 0, { mixed .. ".Users" } }, { code, seen }, args)
    end
    -- Unquoted, a name folds to lower case, in either option.
    for _, args in ipairs({ "--schemas " .. shell_quote(mixed:gsub(" ", "_")), "--tables "
      .. shell_quote(mixed:gsub(" ", "_") .. ".Users") }) do
      local code, _, findings = tables_seen(args)
      assert.are.same({ 1, { "not_found" } }, { code, findings }, args)
    end
    local code, _, err = neoconn_cli("test " .. url .. " --as source --schemas a.b")
    assert.are.equal(64, code)
    assert.truthy(err:find('--schemas: a.b is not one name', 1, true), err)
  end)

  it("takes every job option of the core as a flag, and --proof", function()
    local user, password = pg.login_role("cliflags")
    local schema = pg.schema_with_table(user, "clif", { grant = "INSERT, TRUNCATE" })
    local url = ("postgresql://%s@%s:%s/%s"):format(user, pg.host, pg.port, pg.dbname)
    local code, out = neoconn_cli(("test %s --as destination --schemas %s --truncate=cascade --json")
      :format(url, schema), { PGPASSWORD = password })
    assert.are.equal(0, code, out)
    assert.are.equal("executor", json.decode(out).connections[1].tables[1].proof)
    code, out = neoconn_cli(("test %s --as destination --schemas %s --proof off --json")
      :format(url, schema), { PGPASSWORD = password })
    assert.are.equal(0, code, out)
    assert.are.equal("catalog", json.decode(out).connections[1].tables[1].proof)
    local _, err
    code, _, err = neoconn_cli(("test %s --as destination --truncate=yes"):format(url))
    assert.are.equal(64, code)
    assert.truthy(err:find("--truncate expects cascade", 1, true), err)
    code, _, err = neoconn_cli(("test %s --as source --reset-sequences"):format(url))
    assert.are.equal(64, code)
    assert.truthy(err:find("--reset-sequences applies to destinations only", 1, true), err)
    local help
    _, help = neoconn_cli("--help")
    for _, option in ipairs(neoconn.job_options()) do
      assert.truthy(help:find("--" .. option.name:gsub("_", "-"), 1, true), option.name)
    end
  end)

  it("tests a CDC source with --cdc, --slot and --publication", function()
    local user, password = pg.login_role("clicdc", "REPLICATION")
    local schema = pg.schema_with_table(user, "clicdc", { grant = "SELECT" })
    local url = ("postgresql://%s@%s:%s/%s"):format(user, pg.host, pg.port, pg.dbname)
    local publication = pg.unique("clipub")
    local code, out = neoconn_cli(("test %s --as source --schemas %s --cdc --publication %s --json")
      :format(url, schema, publication), { PGPASSWORD = password })
    assert.are.equal(1, code, out)
    local doc = json.decode(out).connections[1]
    assert.are.equal("publication.tables", doc.findings[1].rule)
    assert.are.equal(("CREATE PUBLICATION %s FOR TABLE %s.t;"):format(publication, schema),
      doc.findings[1].fix)
    pg.exec(doc.findings[1].fix)
    code, out = neoconn_cli(("test %s --as source --schemas %s --cdc --publication %s")
      :format(url, schema, publication), { PGPASSWORD = password })
    assert.are.equal(0, code, out)
    assert.truthy(out:find("replication ok", 1, true), out)
    local _, err
    code, _, err = neoconn_cli(("test %s --as source --slot s1"):format(url))
    assert.are.equal(64, code)
    assert.truthy(err:find("--slot needs --cdc", 1, true), err)
    code, _, err = neoconn_cli(("test %s --as source --cdc --slot %s"):format(url, ("s"):rep(64)))
    assert.are.equal(64, code)
    assert.truthy(err:find("--slot must be a name of 1 to 63 bytes", 1, true), err)
    code, _, err = neoconn_cli(("test %s --as destination --cdc"):format(url))
    assert.are.equal(64, code)
    assert.truthy(err:find("--cdc applies to sources only", 1, true), err)
  end)
end)

describe("neoconn and hostile input", function()
  it("refuses what is not a config file, with exit 64 and no traceback", function()
    for _, case in ipairs({ { "/tmp", "not a regular file (directory)" },
      { "/dev/zero", "not a regular file (other)" }, { "/nonexistent/neoconn.lua", "No such file" } }) do
      local code, out, err = neoconn_cli("check " .. case[1])
      assert.are.equal(64, code, err)
      assert.are.equal("", out)
      assert.truthy(err:find(case[2], 1, true), err)
      assert.is_nil(err:find("traceback", 1, true))
    end
    local big = pg.write_temp(string.rep("-- padding\n", 110000), ".lua")
    local code, _, err = neoconn_cli("check " .. big)
    assert.are.equal(64, code)
    assert.truthy(err:find("more than a config may have (1048576)", 1, true), err)
    os.remove(big)
  end)

  it("says a bad --fix-sql path before testing anything, and a full disk after", function()
    local path = write_config(([[
connections = { hung = { host = %q, port = %s, user = "x", kind = "source", timeout = 30 } }
]]):format(pg.host, pg.silent_port))
    local t0 = neoconn.clock()
    local code, _, err = neoconn_cli("check " .. path .. " --fix-sql /nonexistent/dir/fix.sql")
    assert.are.equal(64, code)
    assert.truthy(err:find("--fix-sql: /nonexistent/dir/fix.sql", 1, true), err)
    assert.is_true(neoconn.clock() - t0 < 5) -- the hung host was never waited for
    local user, password = pg.login_role("clifull")
    local schema = pg.schema_with_table(user, "clifull")
    local url = ("postgresql://%s:%s@%s:%s/%s"):format(user, password, pg.host, pg.port, pg.dbname)
    code, _, err = neoconn_cli(("test %s --as source --schemas %s --fix-sql /dev/full"):format(url, schema))
    assert.are.equal(64, code)
    assert.truthy(err:find("--fix-sql /dev/full: ", 1, true), err)
    os.remove(path)
  end)

  it("refuses an empty --role rather than print invalid SQL", function()
    local code, out, err = neoconn_cli("requirements destination --role ''")
    assert.are.equal(64, code)
    assert.are.equal("", out)
    assert.truthy(err:find("--role expects a role name", 1, true), err)
  end)

  it("never prints a password that breaks the connection string, in text or JSON", function()
    for _, args in ipairs({ "", " --json" }) do
      local code, out, err = neoconn_cli(("test 'postgresql://dst:100%%S3cr3t@localhost/app' --as source%s")
        :format(args))
      assert.are.equal(2, code)
      assert.is_nil((out .. err):find("S3cr3t", 1, true), out .. err)
      assert.truthy(out:find("invalid_config", 1, true), out)
    end
  end)
end)

describe("neoconn --help and --version", function()
  it("print usage and the version", function()
    local code, out = neoconn_cli("--help")
    assert.are.equal(0, code)
    assert.truthy(out:find("usage: neoconn check", 1, true))
    code, out = neoconn_cli("--version")
    assert.are.equal(0, code)
    assert.are.equal("neoconn " .. neoconn.version .. "\n", out)
  end)
end)
