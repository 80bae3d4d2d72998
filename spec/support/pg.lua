--- Test helpers around the throwaway cluster started by with-cluster.sh.
local neoconn = require("neoconn")

local pg = {}
local env = os.getenv

pg.host = env("NEOCONN_TEST_HOST")
pg.port = env("NEOCONN_TEST_PORT")
pg.plain_port = env("NEOCONN_TEST_PLAIN_PORT")
-- The hot standby: nil on servers without one (see with-cluster.sh).
pg.standby_port = env("NEOCONN_TEST_STANDBY_PORT") ~= "" and env("NEOCONN_TEST_STANDBY_PORT") or nil
--- The server's major version (13 ... 18).
pg.major = tonumber(env("NEOCONN_TEST_SERVER_MAJOR"))

--- A spec file's it() for tests that need something only some servers
-- have: busted's own it when `available`, else one that declares the test
-- pending and says why (busted's functions live in each spec file's
-- environment: the file passes them). Never skipped silently.
function pg.it_if(it, pending, available, why)
  if available then return it end
  return function(name)
    pending(("%s (PostgreSQL %s: %s)"):format(name, tostring(pg.major), why))
  end
end

--- it() for tests that need the hot standby.
function pg.it_with_standby(it, pending)
  return pg.it_if(it, pending, pg.standby_port ~= nil, "the harness started no hot standby")
end
pg.silent_port = env("NEOCONN_TEST_SILENT_PORT")
pg.closing_port = env("NEOCONN_TEST_CLOSING_PORT")
-- A TLS server that ends each session in the middle of its handshake, as a
-- server shutting down does.
pg.tls_closing_port = env("NEOCONN_TEST_TLS_CLOSING_PORT")
-- Services that are not PostgreSQL: a web server, an SSH server (speaks
-- first), a TLS-only service.
pg.http_port = env("NEOCONN_TEST_HTTP_PORT")
pg.ssh_port = env("NEOCONN_TEST_SSH_PORT")
pg.tls_only_port = env("NEOCONN_TEST_TLS_ONLY_PORT")
-- pgbouncer in front of the primary: databases neoconn_session,
-- neoconn_transaction, neoconn_statement (see with-cluster.sh).
pg.pooler_port = env("NEOCONN_TEST_POOLER_PORT")
pg.refused_port = env("NEOCONN_TEST_REFUSED_PORT")
-- A free port for the specs' own proxies (one at a time).
pg.proxy_port = env("NEOCONN_TEST_PROXY_PORT")
pg.socket = env("NEOCONN_TEST_SOCKET")
pg.ca = env("NEOCONN_TEST_CA")
pg.admin_user = env("NEOCONN_TEST_ADMIN")
pg.admin_password = env("NEOCONN_TEST_ADMIN_PASSWORD")
pg.dbname = "neoconn_test"

assert(pg.port, "run the specs through spec/support/with-cluster.sh (make test)")

local admin_conn

--- The superuser connection over the private socket.
function pg.admin()
  if not admin_conn then
    local c = assert(neoconn.connect({ host = pg.socket, port = pg.port, user = pg.admin_user,
      dbname = "postgres" }))
    local rows = assert(c:query("SELECT 1 FROM pg_database WHERE datname = $1", { pg.dbname }))
    if #rows == 0 then
      assert(c:query("CREATE DATABASE " .. pg.dbname))
    end
    c:close()
    admin_conn = assert(neoconn.connect({ host = pg.socket, port = pg.port, user = pg.admin_user,
      dbname = pg.dbname }))
  end
  return admin_conn
end

-- Runs SQL on conn; raises (blaming the caller's caller) on error.
local function run(conn, sql, params)
  local rows, err = conn:query(sql, params)
  if not rows then
    error(tostring(err) .. "\nSQL: " .. sql, 3)
  end
  return rows
end

--- Runs SQL as the superuser; fails the test on error.
function pg.exec(sql, params)
  return run(pg.admin(), sql, params)
end

--- A database of a spec's own, where PUBLIC may neither connect nor create
-- temporary tables. Returns a function running SQL in it as the superuser,
-- and its connection (to close in teardown).
function pg.private_database(name)
  if #pg.exec("SELECT 1 FROM pg_database WHERE datname = $1", { name }) == 0 then
    pg.exec("CREATE DATABASE " .. neoconn.quote_ident(name))
  end
  pg.exec("REVOKE CONNECT, TEMP ON DATABASE " .. neoconn.quote_ident(name) .. " FROM PUBLIC")
  local conn = assert(neoconn.connect({ host = pg.socket, port = pg.port, user = pg.admin_user,
    dbname = name }))
  return function(sql, params) return run(conn, sql, params) end, conn
end

local counter = 0
--- A fresh name for objects of one test.
function pg.unique(prefix)
  counter = counter + 1
  -- The interpreter too: lua5.4 and luajit runs share one cluster.
  return string.format("%s_%s%d_%d", prefix, jit and "j" or "l", os.time() % 100000, counter)
end

--- Connection settings for a login role over TCP with TLS available.
function pg.target(user, password, extra)
  local t = { host = pg.host, port = pg.port, user = user, password = password,
    dbname = pg.dbname, sslmode = "prefer" }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

--- The next transaction ID the cluster would assign: unchanged across code
-- that writes nothing.
function pg.next_xid()
  return pg.exec("SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS x")[1].x
end

--- A login role of a fixed name, created unless it exists (for runs that
-- share one cluster).
function pg.ensure_role(name, password)
  pg.exec(("DO $$ BEGIN CREATE ROLE %s LOGIN PASSWORD '%s'; EXCEPTION WHEN duplicate_object"
    .. " THEN NULL; END $$"):format(neoconn.quote_ident(name), password))
end

--- Creates a login role with a password; returns its name and password.
function pg.login_role(prefix, attributes)
  local name = pg.unique(prefix or "r")
  local password = "pw-" .. name .. "-S3cret"
  pg.exec(string.format("CREATE ROLE %s LOGIN PASSWORD '%s' %s", neoconn.quote_ident(name),
    password, attributes or ""))
  return name, password
end

--- A fresh schema the role may use, holding one table on which the role is
-- granted opts.grant (nothing when nil). opts: table (default "t"), columns
-- (default "id int PRIMARY KEY, v text"), exec (default pg.exec; another
-- database's). Returns the schema and the table's qualified name.
function pg.schema_with_table(user, prefix, opts)
  opts = opts or {}
  local q = neoconn.quote_ident
  local schema = pg.unique(prefix .. "_s")
  local t = q(schema, opts.table or "t")
  local sql = ("CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s TO %s; CREATE TABLE %s (%s)")
    :format(q(schema), q(schema), q(user), t, opts.columns or "id int PRIMARY KEY, v text")
  if opts.grant then sql = sql .. ("; GRANT %s ON %s TO %s"):format(opts.grant, t, q(user)) end
  local exec = opts.exec or pg.exec
  exec(sql)
  return schema, t
end

--- Runs one statement on conn inside a transaction that is rolled back.
-- Returns true, or false and the error.
function pg.try(conn, sql)
  assert(conn:query("BEGIN"))
  local ok, err = conn:query(sql)
  assert(conn:query("ROLLBACK"))
  return ok ~= nil, err
end

--- The interpreter running the specs, to run commands under the same one.
pg.lua = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))

--- Runs a shell command; returns its exit code under any Lua version
-- (os.execute returns a wait status in 5.1, (ok, "exit", code) later).
function pg.execute(cmd)
  local a, _, code = os.execute(cmd)
  if type(a) == "number" then return a >= 256 and math.floor(a / 256) or a end
  return code or (a and 0 or 1)
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
pg.shell_quote = shell_quote

--- Runs a shell command; returns its exit code, standard output and
-- standard error. vars: environment variables to set.
function pg.run(cmd, vars)
  local out, err = os.tmpname(), os.tmpname()
  local prefix = ""
  for k, v in pairs(vars or {}) do prefix = prefix .. k .. "=" .. shell_quote(v) .. " " end
  local code = pg.execute(("%s%s >%s 2>%s"):format(prefix, cmd, out, err))
  local stdout, stderr = pg.slurp(out), pg.slurp(err)
  os.remove(out)
  os.remove(err)
  return code, stdout, stderr
end

--- Runs bin/neoconn with the specs' interpreter, as pg.run.
function pg.cli(args, vars)
  return pg.run(pg.lua .. " bin/neoconn " .. args, vars)
end

--- Validates JSON texts against the schema with python3-jsonschema; returns
-- the exit code and what the validator said.
function pg.validate_json(texts)
  local files = {}
  for i, text in ipairs(texts) do files[i] = pg.shell_quote(pg.write_temp(text, ".json")) end
  local script = "import json,sys,jsonschema\n"
    .. "schema=json.load(open(sys.argv[1]))\n"
    .. "jsonschema.Draft202012Validator.check_schema(schema)\n"
    .. "v=jsonschema.Draft202012Validator(schema)\n"
    .. "bad=0\n"
    .. "for f in sys.argv[2:]:\n"
    .. "  for e in v.iter_errors(json.load(open(f))):\n"
    .. "    bad=1; print(f, list(e.absolute_path), e.message)\n"
    .. "sys.exit(bad)\n"
  local code, out, err = pg.run(("/usr/bin/python3 -c %s %s %s"):format(pg.shell_quote(script),
    "schema/neoconn-check.schema.json", table.concat(files, " ")))
  for _, f in ipairs(files) do os.remove((f:gsub("^'(.*)'$", "%1"))) end
  return code, out .. err
end

--- Debian's psql (the client the README tells users to apply scripts with).
pg.psql = "/usr/lib/postgresql/15/bin/psql"

--- Applies an SQL script file with psql as the superuser, stopping at the
-- first error; returns psql's exit code, every statement psql sent to the
-- server (its echo, one string each), and its standard error.
function pg.psql_apply(path, dbname)
  local echo, err = os.tmpname(), os.tmpname()
  local code = pg.execute(("%s -X -q -v ON_ERROR_STOP=1 -e -o /dev/null -h %s -p %s -U %s -d %s -f %s"
    .. " >%s 2>%s"):format(pg.psql, shell_quote(pg.socket), pg.port, shell_quote(pg.admin_user),
    shell_quote(dbname or pg.dbname), shell_quote(path), echo, err))
  local sent, text = {}, pg.slurp(echo) or ""
  for line in text:gmatch("[^\n]+") do sent[#sent + 1] = line end
  local stderr = pg.slurp(err)
  os.remove(echo)
  os.remove(err)
  return code, sent, stderr
end

--- The statements of a fix script: its lines that are not comments.
function pg.script_statements(sql)
  local list = {}
  for line in sql:gmatch("[^\n]+") do
    if not line:match("^%-%-") then list[#list + 1] = line end
  end
  return list
end

--- A copy of a report without what changes with the clock (every field
-- named ms or expires_in), to compare reports made at different times.
function pg.without_timings(v)
  if type(v) ~= "table" then return v end
  local copy = {}
  for k, x in pairs(v) do
    -- what changes with the clock: timings, a certificate's seconds left
    if k ~= "ms" and k ~= "expires_in" then copy[k] = pg.without_timings(x) end
  end
  return copy
end

--- A file's whole text, or nil when it cannot be read.
function pg.slurp(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

--- Writes text to a new temporary file; returns its path.
function pg.write_temp(text, suffix)
  local path = os.tmpname() .. (suffix or "")
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

--- Issues a client certificate for common name cn from the harness's client
-- CA (or self-signed, with opts.self_signed), as dir/name.crt and
-- dir/name.key (0600; encrypted with opts.passphrase when given), valid
-- opts.days (default 3650).
function pg.client_cert(dir, name, cn, opts)
  opts = opts or {}
  local base = ("%s/%s"):format(dir, name)
  local key = opts.passphrase and ("-passout pass:" .. opts.passphrase) or "-nodes"
  local cmd
  if opts.self_signed then
    cmd = ("openssl req -x509 -newkey rsa:2048 -days %d -subj /CN=%s %s -keyout %s.key -out %s.crt")
      :format(opts.days or 3650, cn, key, base, base)
  else
    cmd = ("openssl req -new -newkey rsa:2048 -subj /CN=%s %s -keyout %s.key -out %s.csr"
      .. " && openssl x509 -req -days %d -in %s.csr -CA %s -CAkey %s -CAcreateserial -out %s.crt")
      :format(cn, key, base, base, opts.days or 3650, base, env("NEOCONN_TEST_CLIENT_CA"),
        env("NEOCONN_TEST_CLIENT_CA_KEY"), base)
  end
  assert(pg.execute(("(%s) >/dev/null 2>&1 && chmod 600 %s.key"):format(cmd, base)) == 0, cmd)
  return base .. ".crt", base .. ".key"
end

--- A new empty temporary directory; returns its path.
function pg.temp_dir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(pg.execute("mkdir " .. dir) == 0)
  return dir
end

--- Waits until the hot standby has replayed everything the primary has
-- written so far (bounded: fails after 30 s).
function pg.wait_for_standby()
  -- A logged write committed synchronously (the cluster runs with
  -- synchronous_commit off) flushes everything before it; the standby has
  -- all once it has replayed up to the flush position. (A transaction that
  -- writes no WAL, txid_current() alone, flushes nothing; and in one
  -- query string the three would be one transaction, committed after the
  -- RESET, asynchronously.)
  pg.exec("SET synchronous_commit = on")
  pg.exec("COMMENT ON ROLE " .. neoconn.quote_ident(pg.admin_user) .. " IS 'neoconn: standby sync'")
  pg.exec("RESET synchronous_commit")
  local lsn = pg.exec("SELECT pg_current_wal_flush_lsn()::text AS l")[1].l
  local standby = assert(neoconn.connect({ host = pg.socket, port = pg.standby_port,
    user = pg.admin_user, dbname = "postgres" }))
  local deadline = neoconn.clock() + 30
  while true do
    local row = assert(standby:query("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done", { lsn }))[1]
    if row.done then break end
    assert(neoconn.clock() < deadline, "the standby did not catch up")
    standby:query("SELECT pg_sleep(0.01)")
  end
  standby:close()
end

--- Settings of a connection to check (check.connection) for role user.
function pg.settings(user, password, kind, options, scope, extra)
  local s = { name = "under_test", kind = kind, options = options or {},
    target = pg.target(user, password, extra) }
  for k, v in pairs(scope or {}) do s[k] = v end
  return s
end

--- The findings of a check result for a rule (and, if given, an object's
-- name and a level).
function pg.findings(result, rule, name, level)
  local list = {}
  for _, f in ipairs(result.findings) do
    if f.rule == rule and (name == nil or f.name == name) and (level == nil or f.level == level) then
      list[#list + 1] = f
    end
  end
  return list
end

--- Asserts that fn raises an error whose message holds text (a plain
-- substring: argument numbers of methods differ between Lua versions).
function pg.raises(fn, text)
  local ok, err = pcall(fn)
  assert(not ok, "no error raised; expected one with: " .. text)
  assert(tostring(err):find(text, 1, true), ("expected an error with %q, got %s"):format(text,
    tostring(err)))
end

--- A seeded generator of its own (the same sequence under every Lua):
-- r(n) is an integer from 1 to n.
function pg.random(seed)
  local state = seed % 2147483647
  if state <= 0 then state = state + 2147483646 end
  return function(n)
    state = (state * 48271) % 2147483647
    return state % n + 1
  end
end

--- The entry for a table in `tables` of a report or of a check result (its
-- per-table verdict).
function pg.find_table(holder, schema, name)
  for _, t in ipairs(holder.tables or {}) do
    if t.schema == schema and t.name == name then return t end
  end
end
pg.verdict = pg.find_table

return pg
