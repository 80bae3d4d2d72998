-- A job's pair verdicts are proven by a real copy: random source and
-- destination schemas that differ in each way pair_checks.lua judges, on two
-- servers of different major versions, rows that hit each difference, the
-- pair judged, then every table copied as the job's roles (rows read from
-- the source, INSERT ... ON CONFLICT DO NOTHING into the destination in the
-- job's order, rolled back). Each seed's disagreements are printed.
-- NEOCONN_JOB_SEEDS=N runs N seeds (default 3).
local neoconn = require("neoconn")
local pg = require("pg")

local q = neoconn.quote_ident
local lit = neoconn.quote_literal
local other_port = os.getenv("NEOCONN_TEST_OTHER_PORT")
other_port = other_port ~= "" and other_port or nil
local other_major = tonumber(os.getenv("NEOCONN_TEST_OTHER_MAJOR"))
local SEEDS = tonumber(os.getenv("NEOCONN_JOB_SEEDS") or "3")

-- What a failed statement's SQLSTATE proves, by the rule that named it.
local PROVES = {
  ["pair.table"] = { ["42P01"] = true },
  -- a generated column's value: 428C9, 42601 before PostgreSQL 14
  ["pair.columns"] = { ["42703"] = true, ["23502"] = true, ["428C9"] = true, ["42601"] = true },
  ["pair.types"] = { ["42804"] = true, ["22P02"] = true },
  ["pair.order"] = { ["23503"] = true },
  ["pair.narrowing"] = { ["22001"] = true, ["22003"] = true },
  ["pair.constraints"] = { ["23502"] = true, ["23514"] = true, ["23503"] = true },
  ["pair.conflict_target"] = { ["42P10"] = true },
}

-- Each kind of difference: the source and destination tables (%s: the
-- table's qualified name; enum: the schema's type), rows for the source,
-- and what the judge must say: blocked by a rule, or a warning of one.
local KINDS = {
  same = { src = "id int PRIMARY KEY, v text", dst = "id int PRIMARY KEY, v text",
    rows = { "1, 'a'", "2, NULL" } },
  missing_table = { src = "id int PRIMARY KEY", rows = { "1" }, blocked = "pair.table" },
  missing_column = { src = "id int PRIMARY KEY, v text", dst = "id int PRIMARY KEY",
    rows = { "1, 'a'" }, blocked = "pair.columns" },
  required_extra = { src = "id int PRIMARY KEY", dst = "id int PRIMARY KEY, x int NOT NULL",
    rows = { "1" }, blocked = "pair.columns" },
  nullable_extra = { src = "id int PRIMARY KEY", dst = "id int PRIMARY KEY, x int", rows = { "1" } },
  default_extra = { src = "id int PRIMARY KEY", dst = "id int PRIMARY KEY, x int NOT NULL DEFAULT 7",
    rows = { "1" } },
  no_cast = { src = "id int PRIMARY KEY, v text", dst = "id int PRIMARY KEY, v int",
    rows = { "1, 'not a number'" }, blocked = "pair.types" },
  widening = { src = "id int PRIMARY KEY, v int", dst = "id int PRIMARY KEY, v bigint",
    rows = { "1, 2147483647" } },
  narrow_varchar = { src = "id int PRIMARY KEY, v varchar(40)", dst = "id int PRIMARY KEY, v varchar(5)",
    rows = { "1, 'abc'", "2, 'much longer than five'" }, warned = "pair.narrowing", breaks = true },
  narrow_int = { src = "id int PRIMARY KEY, v bigint", dst = "id int PRIMARY KEY, v int",
    rows = { "1, 5", "2, 9000000000" }, warned = "pair.narrowing", breaks = true },
  enum_missing = { src = "id int PRIMARY KEY, m %e", dst = "id int PRIMARY KEY, m %e",
    src_enum = { "sad", "ok", "happy" }, dst_enum = { "sad", "ok" },
    rows = { "1, 'sad'", "2, 'happy'" }, blocked = "pair.types" },
  -- an array of an enum: judged element by element, the fix on the enum itself
  enum_array_missing = { src = "id int PRIMARY KEY, m %e[]", dst = "id int PRIMARY KEY, m %e[]",
    src_enum = { "sad", "ok", "happy" }, dst_enum = { "sad", "ok" },
    rows = { "1, '{sad}'", "2, '{ok,happy}'" }, blocked = "pair.types",
    fix = "ALTER TYPE %s ADD VALUE IF NOT EXISTS 'happy';" },
  generated_dest = { src = "id int PRIMARY KEY, g int",
    dst = "id int PRIMARY KEY, g int GENERATED ALWAYS AS (id * 2) STORED",
    rows = { "1, 5" }, blocked = "pair.columns" },
  not_null_dest = { src = "id int PRIMARY KEY, v text", dst = "id int PRIMARY KEY, v text NOT NULL",
    rows = { "1, 'a'", "2, NULL" }, warned = "pair.constraints", breaks = true },
  check_dest = { src = "id int PRIMARY KEY, v int", dst = "id int PRIMARY KEY, v int CHECK (v < 100)",
    rows = { "1, 5", "2, 150" }, warned = "pair.constraints", breaks = true },
  self_cycle = { src = "id int PRIMARY KEY, parent int",
    dst = "id int PRIMARY KEY, parent int REFERENCES %t",
    rows = { "1, 2", "2, NULL" }, blocked = "pair.order" },
  self_deferred = { src = "id int PRIMARY KEY, parent int REFERENCES %t DEFERRABLE INITIALLY DEFERRED",
    dst = "id int PRIMARY KEY, parent int REFERENCES %t DEFERRABLE INITIALLY DEFERRED",
    rows = { "1, 2", "2, NULL" } },
  -- a child whose parent table sorts after it: the job's order copies the parent first
  fk_child = { parent = true, src = "id int PRIMARY KEY, p int REFERENCES %p",
    dst = "id int PRIMARY KEY, p int REFERENCES %p", rows = { "1, 2", "2, 1" } },
  fk_parent = { internal = true },
  -- an upsert needs the destination's primary key
  no_pk_dest = { src = "id int PRIMARY KEY, v text", dst = "id int, v text", rows = { "1, 'a'" },
    update_blocked = "pair.conflict_target" },
  identity_always = { src = "id int PRIMARY KEY, v text",
    dst = "id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text",
    rows = { "1, 'a'" }, warned = "pair.identity" },
}
local KIND_NAMES = {}
for name, kind in pairs(KINDS) do
  if not kind.internal then KIND_NAMES[#KIND_NAMES + 1] = name end
end
table.sort(KIND_NAMES)

local other_conn
local function other(sql)
  if not other_conn then
    local c = assert(neoconn.connect({ host = pg.socket, port = other_port, user = pg.admin_user,
      dbname = "postgres" }))
    if #assert(c:query("SELECT 1 FROM pg_database WHERE datname = $1", { pg.dbname })) == 0 then
      assert(c:query("CREATE DATABASE " .. q(pg.dbname)))
    end
    c:close()
    other_conn = assert(neoconn.connect({ host = pg.socket, port = other_port, user = pg.admin_user,
      dbname = pg.dbname }))
  end
  local rows, err = other_conn:query(sql)
  if not rows then error(tostring(err) .. "\nSQL: " .. sql, 2) end
  return rows
end

local function expand(text, schema, name)
  return (text:gsub("%%t", q(schema, name)):gsub("%%e", q(schema, "e_" .. name))
    :gsub("%%p", q(schema, name .. "_parent")))
end

-- The two schemas of one seed: source tables on the primary, destination
-- tables on the other server, a reading role on one and a writing role on
-- the other. Returns the schema, the roles' targets and the kinds by table.
local function build(seed)
  local r = pg.random(seed)
  local schema = pg.unique("jp")
  local user, password = pg.login_role("jp_src")
  local dst_user = pg.unique("jp_dst")
  local dst_password = "pw-" .. dst_user
  other(("CREATE ROLE %s LOGIN PASSWORD %s"):format(q(dst_user), lit(dst_password)))
  pg.exec(("CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s TO %s"):format(q(schema), q(schema), q(user)))
  other(("CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s TO %s"):format(q(schema), q(schema), q(dst_user)))
  local kinds, count = {}, seed == 1 and #KIND_NAMES or 6 + r(4)
  for i = 1, count do
    -- Every kind once in the first seed, then random ones.
    local kind = seed == 1 and KIND_NAMES[(i - 1) % #KIND_NAMES + 1] or KIND_NAMES[r(#KIND_NAMES)]
    local name = ("t%02d_%s"):format(i, kind)
    local k = KINDS[kind]
    kinds[name] = kind
    if k.src_enum then
      local labels = {}
      for j, l in ipairs(k.src_enum) do labels[j] = lit(l) end
      pg.exec(("CREATE TYPE %s AS ENUM (%s)"):format(q(schema, "e_" .. name), table.concat(labels, ", ")))
      labels = {}
      for j, l in ipairs(k.dst_enum) do labels[j] = lit(l) end
      other(("CREATE TYPE %s AS ENUM (%s)"):format(q(schema, "e_" .. name), table.concat(labels, ", ")))
    end
    if k.parent then
      local parent = name .. "_parent"
      kinds[parent] = "fk_parent"
      pg.exec(("CREATE TABLE %s (id int PRIMARY KEY); INSERT INTO %s VALUES (1), (2);"
        .. " GRANT SELECT ON %s TO %s"):format(q(schema, parent), q(schema, parent),
          q(schema, parent), q(user)))
      other(("CREATE TABLE %s (id int PRIMARY KEY); GRANT SELECT, INSERT, UPDATE ON %s TO %s")
        :format(q(schema, parent), q(schema, parent), q(dst_user)))
    end
    pg.exec(("CREATE TABLE %s (%s)"):format(q(schema, name), expand(k.src, schema, name)))
    pg.exec(("BEGIN; SET CONSTRAINTS ALL DEFERRED; INSERT INTO %s VALUES (%s); COMMIT"):format(
      q(schema, name), table.concat(k.rows, "), (")))
    pg.exec(("GRANT SELECT ON %s TO %s"):format(q(schema, name), q(user)))
    if k.dst then
      other(("CREATE TABLE %s (%s)"):format(q(schema, name), expand(k.dst, schema, name)))
      other(("GRANT SELECT, INSERT, UPDATE ON %s TO %s"):format(q(schema, name), q(dst_user)))
    end
  end
  return schema, pg.target(user, password),
    { host = pg.host, port = other_port, user = dst_user, password = dst_password,
      dbname = pg.dbname, sslmode = "disable" }, kinds
end

-- The primary key's columns of a table on conn (none: an empty list).
local function key_of(conn, schema, name)
  local rows = assert(conn:query("SELECT a.attname::text AS name FROM pg_index i"
    .. " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])"
    .. " WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY a.attnum",
    { q(schema, name) }))
  local list = {}
  for i, r in ipairs(rows) do list[i] = q(r.name) end
  return list
end

-- Copies one pair as the roles: each source row in an INSERT into the
-- destination, values typed as the source's built-in types (an enum's
-- label as text the destination reads), ON CONFLICT DO NOTHING or, for an
-- upsert, DO UPDATE on the destination's primary key (the source's when it
-- has none, as a job would write it). nil, or the SQLSTATE it failed on.
local function copy(src, dst, pair, on_conflict)
  local s, d = pair.source, pair.destination
  local columns = assert(src:query(("SELECT a.attname::text AS name, format_type(a.atttypid, NULL) AS type,"
    .. " t.typnamespace = 'pg_catalog'::regnamespace AS builtin FROM pg_attribute a"
    .. " JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = '%s'::regclass AND a.attnum > 0"
    .. " AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum"):format(q(s.schema, s.name))))
  local names, reads = {}, {}
  for i, c in ipairs(columns) do
    names[i] = q(c.name)
    reads[i] = q(c.name) .. "::text AS " .. q("c" .. i)
  end
  local rows = assert(src:query(("SELECT %s FROM %s"):format(table.concat(reads, ", "),
    q(s.schema, s.name))))
  local conflict = " ON CONFLICT DO NOTHING"
  if on_conflict == "update" then
    local keys = key_of(dst, d.schema, d.name)
    if #keys == 0 then keys = key_of(src, s.schema, s.name) end
    local is_key, sets = {}, {}
    for _, k in ipairs(keys) do is_key[k] = true end
    for _, n in ipairs(names) do
      if not is_key[n] then sets[#sets + 1] = n .. " = EXCLUDED." .. n end
    end
    conflict = (" ON CONFLICT (%s) DO %s"):format(table.concat(keys, ", "),
      #sets > 0 and ("UPDATE SET " .. table.concat(sets, ", ")) or "NOTHING")
  end
  assert(dst:query("SAVEPOINT pair"))
  local failed
  for _, row in ipairs(rows) do
    local values = {}
    for i, c in ipairs(columns) do
      local v = row["c" .. i]
      values[i] = v == nil and "NULL" or (lit(v) .. (c.builtin and ("::" .. c.type) or ""))
    end
    local ok, err = dst:query(("INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE VALUES (%s)%s")
      :format(q(d.schema, d.name), table.concat(names, ", "), table.concat(values, ", "), conflict))
    if not ok then
      failed = err.sqlstate or err.code
      break
    end
  end
  if not failed then
    -- Deferred keys checked now, as COMMIT would; the savepoint puts the
    -- constraints' modes back for the next table.
    assert(dst:query("SAVEPOINT deferred"))
    local ok, err = dst:query("SET CONSTRAINTS ALL IMMEDIATE")
    if not ok then failed = err.sqlstate or err.code end
    assert(dst:query("ROLLBACK TO SAVEPOINT deferred"))
  end
  assert(dst:query(failed and "ROLLBACK TO SAVEPOINT pair" or "RELEASE SAVEPOINT pair"))
  return failed
end

-- The disagreements of one seed between the generator, the judge and the copy.
local function run_seed(seed, on_conflict)
  local schema, src_target, dst_target, kinds = build(seed)
  local scope = { schemas = { schema }, layout = true }
  local src_report = neoconn.test(src_target, { schemas = scope.schemas, layout = true,
    job = { kind = "source" } })
  local dst_report = neoconn.test(dst_target, { schemas = scope.schemas, layout = true,
    job = { kind = "destination", on_conflict = on_conflict } })
  assert(src_report.ok, src_report.error and src_report.error.message)
  assert(dst_report.ok, dst_report.error and dst_report.error.message)
  local result = neoconn.check_job(src_report, dst_report, { schemas = { schema },
    on_conflict = on_conflict })
  local src = assert(neoconn.connect(src_target))
  local dst = assert(neoconn.connect(dst_target))
  assert(src:query("BEGIN READ ONLY"))
  assert(dst:query("BEGIN"))
  local by_name, done, wrong = {}, {}, {}
  for _, t in ipairs(result.tables) do by_name[t.destination.name] = t end
  local order = {}
  for _, t in ipairs(result.order) do order[#order + 1] = by_name[t.name] end
  for _, t in ipairs(result.tables) do order[#order + 1] = t end
  for _, t in ipairs(order) do
    if not done[t] then
      done[t] = true
      local kind = KINDS[kinds[t.destination.name]]
      local failed = copy(src, dst, t, on_conflict)
      local function disagree(text)
        wrong[#wrong + 1] = ("seed %d (%s), %s (%s): %s"):format(seed, on_conflict or "nothing",
          t.destination.name, kinds[t.destination.name], text)
      end
      local blocked, warned = {}, {}
      for _, rule in ipairs(t.blocked_by) do blocked[rule] = true end
      for _, rule in ipairs(t.warnings) do warned[rule] = true end
      local expected = on_conflict == "update" and kind.update_blocked or kind.blocked
      if expected and not blocked[expected] then
        disagree("expected blocked by " .. expected .. ", got " .. table.concat(t.blocked_by, ","))
      elseif not expected and not t.copyable then
        disagree("expected copyable, blocked by " .. table.concat(t.blocked_by, ","))
      end
      if kind.fix then
        local want = kind.fix:format(q(schema, "e_" .. t.destination.name))
        local found = false
        for _, f in ipairs(result.findings) do
          found = found or (f.name == t.destination.name and (f.fix or ""):find(want, 1, true) ~= nil)
        end
        if not found then disagree("no finding's fix says " .. want) end
      end
      if kind.warned and not warned[kind.warned] then
        disagree("expected a warning of " .. kind.warned .. ", got " .. table.concat(t.warnings, ","))
      end
      if t.copyable and failed then
        local explained = false
        for rule in pairs(warned) do explained = explained or (PROVES[rule] or {})[failed] end
        if not explained then disagree("judged copyable, the copy failed with " .. failed) end
      elseif not t.copyable then
        local explained = false
        for rule in pairs(blocked) do explained = explained or (PROVES[rule] or {})[failed] end
        if not failed then
          disagree("judged blocked (" .. table.concat(t.blocked_by, ",") .. "), the copy succeeded")
        elseif not explained then
          disagree("blocked by " .. table.concat(t.blocked_by, ",") .. ", the copy failed with " .. failed)
        end
      end
      if kind.breaks and not failed and t.copyable then
        disagree("the rows were meant to break the warned constraint, the copy succeeded")
      end
    end
  end
  assert(dst:query("ROLLBACK"))
  assert(src:query("ROLLBACK"))
  src:close()
  dst:close()
  return wrong, result
end

describe("a job's pair verdicts", function()
  local it_other = pg.it_if(it, pending, other_port ~= nil,
    "the harness started no server of another major version (make test installs one)")

  it_other("agree with a real copy between two servers of different major versions", function()
    local all = {}
    for seed = 1, SEEDS do
      local wrong = run_seed(seed)
      for _, line in ipairs(wrong) do all[#all + 1] = line end
      print(("job pairs, seed %d (source PostgreSQL %d, destination %d): %d disagreements")
        :format(seed, pg.major, other_major, #wrong))
    end
    assert.are.same({}, all)
  end)

  it_other("agree with a real upsert (ON CONFLICT DO UPDATE on the destination's key)", function()
    local wrong = run_seed(1, "update")
    print(("job pairs, upsert (source PostgreSQL %d, destination %d): %d disagreements")
      :format(pg.major, other_major, #wrong))
    assert.are.same({}, wrong)
  end)

  pg.it_if(it, pending, other_port ~= nil and pg.major >= 14 and (other_major or 99) < 14,
    "needs a source of PostgreSQL 14 or later and a destination before 14")(
    "name a type an older destination lacks when init_schema must create the table", function()
      local schema = pg.unique("jp_init")
      pg.exec(("CREATE SCHEMA %s; CREATE TABLE %s (id int PRIMARY KEY, r int4multirange);"
        .. " CREATE TABLE %s (id int PRIMARY KEY, v text)"):format(q(schema), q(schema, "ranges"),
          q(schema, "plain")))
      other(("CREATE SCHEMA %s"):format(q(schema)))
      local admin_src = { host = pg.socket, port = pg.port, user = pg.admin_user, dbname = pg.dbname }
      local admin_dst = { host = pg.socket, port = other_port, user = pg.admin_user, dbname = pg.dbname }
      local result = neoconn.check_job(
        neoconn.test(admin_src, { schemas = { schema }, layout = true, job = { kind = "source" } }),
        neoconn.test(admin_dst, { schemas = { schema }, layout = true,
          job = { kind = "destination", init_schema = true } }),
        { schemas = { schema }, init_schema = true })
      local by = {}
      for _, t in ipairs(result.tables) do by[t.destination.name] = t end
      assert.are.same({ "pair.table" }, by.ranges.blocked_by)
      assert.is_true(by.plain.copyable) -- created by the job: nothing missing
      local message
      for _, f in ipairs(result.findings) do
        if f.name == "ranges" then message = f.message end
      end
      assert.truthy(message:find("column r is of type int4multirange, which the destination "
        .. "server (PostgreSQL " .. other_major, 1, true), message)
      -- The proof: the destination server refuses the type.
      local ok, err = other_conn:query(("CREATE TABLE %s (r int4multirange)"):format(q(schema, "x")))
      assert.is_nil(ok)
      assert.are.equal("42704", err.sqlstate)
    end)
end)

describe("jobs in a config and on the command line", function()
  local it_other = pg.it_if(it, pending, other_port ~= nil,
    "the harness started no server of another major version (make test installs one)")

  it_other("check tests each connection once, judges the job, and the JSON validates", function()
    local schema, src, dst = build(2)
    local path = pg.write_temp(([[
connections = {
  src = { kind = "source", host = %q, port = %q, user = %q, password = %q, dbname = %q },
  dst = { kind = "destination", host = %q, port = %q, user = %q, password = %q, dbname = %q,
    sslmode = "disable" },
}
jobs = {
  nightly = { source = "src", destination = "dst", schemas = { %q },
    rules = { no_wide = function(ctx)
      ctx.warn({ object_type = "database", name = ctx.destination.report.session.database,
        message = ("%%d pairs seen from %%s"):format(#ctx.pairs, ctx.source.name) })
    end } },
}
]]):format(src.host, src.port, src.user, src.password, src.dbname, dst.host, dst.port, dst.user,
      dst.password, dst.dbname, schema), ".lua")
    local code, out, err = pg.cli("check --json " .. path)
    assert.are.equal(1, code, err)
    local doc = require("dkjson").decode(out)
    assert.are.equal(1, #doc.jobs)
    local j = doc.jobs[1]
    assert.are.equal("fail", j.verdict)
    assert.are.equal(1, doc.summary.jobs.fail)
    assert.truthy(#j.order >= 1)
    local rules = {}
    for _, f in ipairs(j.findings) do rules[f.rule] = true end
    assert.truthy(rules.no_wide, out) -- the job's own rule saw both sides
    assert.truthy(rules["pair.table"] or rules["pair.columns"] or rules["pair.types"], out)
    local vcode, said = pg.validate_json({ out })
    assert.are.equal(0, vcode, said)
    local hcode, human = pg.cli("check " .. path)
    os.remove(path)
    assert.are.equal(1, hcode)
    assert.truthy(human:find("job nightly: FAIL", 1, true), human)
    assert.truthy(human:find("1 job: 0 pass, 1 fail, 0 not tested (exit code 1)", 1, true), human)
  end)

  it_other("neoconn job judges two targets given on the command line", function()
    local schema, src, dst = build(3)
    local function url(t)
      return ("postgresql://%s:%s@%s:%s/%s?sslmode=%s"):format(t.user, t.password, t.host, t.port,
        t.dbname, t.sslmode)
    end
    local code, out, err = pg.cli(("job %s %s --schemas %s --on-conflict update --json"):format(
      pg.shell_quote(url(src)), pg.shell_quote(url(dst)), pg.shell_quote(schema)))
    assert.are.equal(1, code, err)
    local doc = require("dkjson").decode(out)
    assert.are.equal("update", doc.jobs[1].options.on_conflict)
    assert.are.equal(2, #doc.connections)
    assert.falsy(out:find(src.password, 1, true))
    local vcode, said = pg.validate_json({ out })
    assert.are.equal(0, vcode, said)
  end)

  it("refuses jobs that would test a connection with two sets of options", function()
    local config = require("neoconn.config")
    local cfg, err = config.load_string([[
connections = { s = { kind = "source", host = "h" }, d = { kind = "destination", host = "h" } }
jobs = { a = { source = "s", destination = "d", on_conflict = "update" },
  b = { source = "s", destination = "d", on_conflict = "nothing" } }
]], "jobs.lua")
    assert.is_nil(cfg)
    assert.are.equal("jobs.lua:3: jobs.b.on_conflict: \"nothing\" differs from jobs.a.on_conflict "
      .. "(\"update\"): a connection is tested once, with one set of options; give this job a "
      .. "connection of its own", err)
    cfg, err = config.load_string([[
connections = { s = { kind = "source", host = "h" }, d = { kind = "destination", host = "h" } }
jobs = { a = { source = "d", destination = "s" } }
]], "jobs.lua")
    assert.is_nil(cfg)
    assert.are.equal("jobs.lua:2: jobs.a.source: connection d is a destination", err)
  end)

  it("gives a connection without a scope of its own its jobs' tables, mapped", function()
    local cfg = assert(require("neoconn.config").load_string([[
connections = { s = { kind = "source", host = "h" }, d = { kind = "destination", host = "h" } }
jobs = { a = { source = "s", destination = "d", tables = { "app.users" }, map = { app = "copy" },
  truncate = true } }
]], "jobs.lua"))
    local by = {}
    for _, c in ipairs(cfg.connections) do by[c.name] = c end
    assert.are.same({ { schema = "app", name = "users" } }, by.s.tables)
    assert.are.same({ { schema = "copy", name = "users" } }, by.d.tables)
    assert.is_true(by.d.options.truncate)
    assert.is_true(by.s.layout)
    assert.are.same({ truncate = true }, cfg.jobs[1].options)
  end)
end)
