-- Policy verdicts: a table is usable for its connection's job exactly when
-- the job's statements succeed as the role; fix_sql run by an administrator
-- makes every fixable error go away.
local neoconn = require("neoconn")
local check = require("neoconn.check")
local policy = require("neoconn.policy")
local pg = require("pg")
local q = neoconn.quote_ident

-- The job's statements for one table (as in the requirements spec).
local function job_statements(kind, opts, t, sequences)
  local name = q(t.schema, t.name)
  if kind == "source" then return { "SELECT id, v FROM " .. name } end
  local list = {}
  if opts.on_conflict == "update" then
    list[#list + 1] = "INSERT INTO " .. name .. " (id, v) VALUES (1, 'a')"
      .. " ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v"
  else
    list[#list + 1] = "INSERT INTO " .. name .. " (id, v) VALUES (1, 'a') ON CONFLICT DO NOTHING"
  end
  if opts.truncate then list[#list + 1] = "TRUNCATE " .. name end
  if opts.reset_sequences then
    for _, s in ipairs(sequences) do
      if s.owned_by and s.owned_by.schema == t.schema and s.owned_by.table == t.name then
        list[#list + 1] = ("SELECT setval('%s', 10)"):format(q(s.schema, s.name):gsub("'", "''"))
      end
    end
  end
  return list
end

local function settings_for(user, password, kind, schema, options)
  return pg.settings(user, password, kind, options, { schemas = { schema } })
end

-- Every table's verdict against the statements, run as the role.
local function prove_verdicts(settings)
  local result = check.connection(settings)
  assert.is_true(result.report.ok, tostring(result.error))
  local conn = assert(neoconn.connect(settings.target))
  for _, t in ipairs(result.report.tables) do
    local works = true
    for _, sql in ipairs(job_statements(settings.kind, settings.options, t, result.report.sequences)) do
      local ok = pg.try(conn, sql)
      works = works and ok
    end
    local usable = result.usable[t.schema .. "\0" .. t.name]
    assert(usable == works, ("%s: policy says usable=%s, the statements %s"):format(
      q(t.schema, t.name), tostring(usable), works and "succeed" or "fail"))
  end
  conn:close()
  return result
end

-- A schema of tables with assorted grants, one under row-level security.
local function assorted(prefix)
  local user, password = pg.login_role(prefix)
  local schema = pg.unique(prefix .. "_s")
  local group = pg.unique(prefix .. "_g")
  pg.exec((([[
    CREATE SCHEMA {s}; CREATE ROLE {g}; GRANT {g} TO {r};
    CREATE TABLE {s}.full_access (id bigserial PRIMARY KEY, v text);
    CREATE TABLE {s}.read_only (id int PRIMARY KEY, v text);
    CREATE TABLE {s}.via_group (id int PRIMARY KEY, v text);
    CREATE TABLE {s}.some_columns (id int PRIMARY KEY, v text);
    CREATE TABLE {s}.all_columns (id int PRIMARY KEY, v text);
    CREATE TABLE {s}.nothing (id int PRIMARY KEY, v text);
    CREATE TABLE {s}.guarded (id int PRIMARY KEY, v text);
    GRANT ALL ON {s}.full_access TO {r}; GRANT ALL ON SEQUENCE {s}.full_access_id_seq TO {r};
    GRANT SELECT ON {s}.read_only TO {r};
    GRANT SELECT, INSERT, UPDATE, TRUNCATE ON {s}.via_group TO {g};
    GRANT SELECT (id), INSERT (id) ON {s}.some_columns TO {r};
    GRANT SELECT (id, v), INSERT (id, v), UPDATE (id, v) ON {s}.all_columns TO {r};
    GRANT ALL ON {s}.guarded TO {r}; ALTER TABLE {s}.guarded ENABLE ROW LEVEL SECURITY;
  ]]):gsub("{s}", q(schema)):gsub("{r}", q(user)):gsub("{g}", q(group))))
  return user, password, schema
end

describe("policy verdicts", function()
  it("match the source job's SELECT, table by table", function()
    local user, password, schema = assorted("psrc")
    pg.exec(("GRANT USAGE ON SCHEMA %s TO %s"):format(q(schema), q(user)))
    prove_verdicts(settings_for(user, password, "source", schema))
  end)

  it("match a destination's insert, upsert, truncate and setval, table by table", function()
    local user, password, schema = assorted("pdst")
    pg.exec(("GRANT USAGE ON SCHEMA %s TO %s"):format(q(schema), q(user)))
    prove_verdicts(settings_for(user, password, "destination", schema, {}))
    prove_verdicts(settings_for(user, password, "destination", schema,
      { on_conflict = "update", truncate = true, reset_sequences = true }))
  end)

  it("block the tables a failing function serves, as an insert taking the default proves", function()
    local user, password = pg.login_role("pfn")
    local schema = pg.unique("pfn_s")
    pg.exec((([[
      CREATE SCHEMA {s}; GRANT USAGE ON SCHEMA {s} TO {r};
      CREATE FUNCTION {s}.stamp() RETURNS text LANGUAGE sql AS 'SELECT ''x''';
      REVOKE EXECUTE ON FUNCTION {s}.stamp() FROM PUBLIC;
      CREATE TABLE {s}.stamped (id int PRIMARY KEY, v text DEFAULT {s}.stamp());
      CREATE TABLE {s}.plain (id int PRIMARY KEY, v text);
      GRANT INSERT ON {s}.stamped, {s}.plain TO {r};
    ]]):gsub("{s}", q(schema)):gsub("{r}", q(user))))
    local settings = settings_for(user, password, "destination", schema, {})
    -- A job that leaves columns to their defaults: a function it cannot run is an error.
    settings.rules = { defaults_used = function(ctx)
      for _, f in ipairs(ctx.report.functions) do
        if not f.privileges.EXECUTE then
          ctx.error({ object_type = "function", schema = f.schema, name = f.name,
            message = "the job inserts rows that take column defaults" })
        end
      end
    end }
    local result = check.connection(settings)
    assert.is_false(result.usable[schema .. "\0stamped"])
    assert.is_true(result.usable[schema .. "\0plain"])
    local conn = assert(neoconn.connect(settings.target))
    for name, usable in pairs({ stamped = false, plain = true }) do
      local insert = ("INSERT INTO %s (id) VALUES (1)"):format(q(schema, name))
      assert.are.equal(usable, (pg.try(conn, insert)), insert)
    end
    conn:close()
  end)

  it("block a table whose sequence the role may not reset, as setval proves", function()
    local user, password = pg.login_role("pseq")
    local schema = pg.schema_with_table(user, "pseq",
      { columns = "id serial PRIMARY KEY, v text", grant = "INSERT" })
    pg.exec(("CREATE TABLE %s (id int PRIMARY KEY, v text); GRANT INSERT ON %s TO %s")
      :format(q(schema, "other"), q(schema, "other"), q(user)))
    local result = prove_verdicts(settings_for(user, password, "destination", schema,
      { reset_sequences = true }))
    assert.is_false(result.usable[schema .. "\0t"])
    assert.is_true(result.usable[schema .. "\0other"])
  end)

  it("block every table of a schema without USAGE", function()
    local user, password, schema = assorted("pnou")
    local result = prove_verdicts(settings_for(user, password, "source", schema))
    for _, usable in pairs(result.usable) do assert.is_false(usable) end
  end)
end)

describe("fix_sql", function()
  it("run by an administrator makes every fixable error go away", function()
    for _, case in ipairs({
      { "source", {} },
      { "destination", { on_conflict = "update", truncate = true, reset_sequences = true,
        init_schema = true } },
    }) do
      local user, password, schema = assorted("pfix")
      local settings = settings_for(user, password, case[1], schema, case[2])
      local before = check.connection(settings)
      assert.is_false(before.ok)
      assert(pg.admin():query(before.fix_sql))
      local after = check.connection(settings)
      for _, f in ipairs(after.findings) do
        -- Only row-level security is left, and its fix is a commented suggestion.
        if f.level == "error" then
          assert.are.equal("guarded", f.name, f.message)
          assert.truthy(f.fix:match("^%-%- "))
        end
      end
      local blocked = 0
      for _, usable in pairs(after.usable) do blocked = blocked + (usable and 0 or 1) end
      assert.are.equal(case[1] == "source" and 0 or 1, blocked)
      prove_verdicts(settings)
    end
  end)

  it("quotes every identifier, with the role taken from the session", function()
    local user, password = pg.login_role("Odd \"Role\"")
    local schema = pg.unique('Odd "Schema" ü')
    pg.exec(("CREATE SCHEMA %s; CREATE TABLE %s (id int PRIMARY KEY, v text)")
      :format(q(schema), q(schema, 'a.b "c"')))
    local settings = settings_for(user, password, "source", schema)
    local before = check.connection(settings)
    assert.truthy(before.fix_sql:find(q(user), 1, true))
    assert(pg.admin():query(before.fix_sql))
    assert.is_true(check.connection(settings).ok)
  end)
end)

describe("rules", function()
  local user, password, schema
  setup(function()
    user, password, schema = assorted("prule")
    pg.exec(("GRANT USAGE ON SCHEMA %s TO %s"):format(q(schema), q(user)))
  end)

  -- A rule runs in a child process of its own: what it saw comes back as
  -- the message of a warning it emits.
  local function seen_by_rule(settings, look)
    settings.rules = { look = function(ctx)
      ctx.warn({ object_type = "connection", message = look(ctx) })
    end }
    for _, f in ipairs(check.connection(settings).findings) do
      if f.rule == "look" then return f.message end
    end
  end

  it("see the target as libpq reads it, never a password, however it is spelled", function()
    -- Every spelling libpq accepts for a password: blanks around '=',
    -- quotes, escapes, a repeated key (the last wins), a URL's user
    -- information and its query, a field beside a url.
    local host = ("host=%s port=%s user=%s dbname=%s "):format(pg.host, pg.port, user, pg.dbname)
    local quoted = password:gsub("'", "\\'")
    local targets = {
      host .. "password = " .. password,
      host .. "password= '" .. quoted .. "'",
      host .. "password =\t'" .. password:sub(1, 4) .. "\\" .. password:sub(5) .. "'",
      host .. "password=decoy-Pw-1 password=" .. password,
      ("postgresql://%s:%s@%s:%s/%s"):format(user, password, pg.host, pg.port, pg.dbname),
      ("postgresql://%s@%s:%s/%s?password=%s"):format(user, pg.host, pg.port, pg.dbname, password),
      { url = ("postgresql://%s:%s@%s:%s/%s?sslpassword=%s"):format(user, password, pg.host, pg.port,
        pg.dbname, password), password = password },
    }
    for _, target in ipairs(targets) do
      local settings = settings_for(user, password, "source", schema)
      settings.target = target
      local text = seen_by_rule(settings, function(ctx)
        local keys = {}
        for k, v in pairs(ctx.settings.target) do keys[#keys + 1] = k .. "=" .. v end
        table.sort(keys)
        return table.concat(keys, " ")
      end)
      assert.is_falsy(text:find(password, 1, true), text)
      assert.is_falsy(text:find(password:sub(5), 1, true), text)
      assert.is_falsy(text:find("decoy", 1, true), text)
      assert.truthy(text:find("user=" .. user, 1, true), text)
      assert.truthy(text:find("port=" .. pg.port, 1, true), text)
    end
  end)

  it("in a config file, see the endpoint flat and call the common safe functions", function()
    -- The target is a URL: host, port, dbname, user and sslmode are still
    -- plain fields, as the session used them; the password never is.
    local source = ([[
connections = {
  flat = {
    kind = "source", schemas = { %q },
    url = %q,
    rules = {
      shows_what_it_sees = function(ctx)
        local s = ctx.settings
        local keys = {}
        for k in pairs(s) do
          if type(s[k]) == "string" and k ~= "name" and k ~= "kind" then keys[#keys + 1] = k end
        end
        table.sort(keys)
        local parts = {}
        for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. s[k] end
        ctx.warn({ object_type = "connection", message = table.concat(parts, " ")
          .. (" | %%d %%s %%s %%d %%s"):format(select("#", 1, 2, 3), tostring(next({}) == nil),
            string.char(string.byte("Z")), math.abs(-4), table.unpack({ "u" })) })
      end,
    },
  },
}]]):format(schema, ("postgresql://%s:%s@%s:%s/%s?sslmode=require"):format(user, password,
      pg.host, pg.port, pg.dbname))
    local cfg = assert(require("neoconn.config").load_string(source, "flat.lua"))
    local result = check.connection(cfg.connections[1], { disable_rules = { "source_writable" } })
    local message
    for _, f in ipairs(result.findings) do
      if f.rule == "shows_what_it_sees" then message = f.message end
    end
    assert.are.equal(("dbname=%s host=%s port=%s sslmode=require user=%s | 3 true Z 4 u"):format(
      pg.dbname, pg.host, pg.port, user), message)
  end)

  it("run each in a process of its own, bounded, on a context nothing else sees", function()
    local settings = settings_for(user, password, "source", schema)
    settings.rules = {
      a_breaks_the_context = function(ctx) ctx.report.session = nil; ctx.report.tables = nil end,
      b_spins = function() while true do end end,
      c_backtracks = function() return string.find(string.rep("a", 30000), string.rep("a-", 20) .. "b") end,
      -- One string larger than the bound: touching 256 MiB page by page
      -- costs this machine about 1 s of CPU, too close to the CPU bound.
      d_allocates = function() return #string.rep("x", 300 * 1024 * 1024) end,
      e_reads_after = function(ctx)
        ctx.warn({ object_type = "connection", message = "still " .. #ctx.report.tables .. " tables" })
      end,
    }
    local t0 = neoconn.clock()
    local result = check.connection(settings)
    assert.is_true(neoconn.clock() - t0 < 20)
    local by_rule = {}
    for _, f in ipairs(result.findings) do by_rule[f.rule] = f.message end
    assert.is_nil(by_rule.a_breaks_the_context)
    -- Each names where the rule was stopped, inside a C function too.
    assert.truthy(by_rule.b_spins:find("^rule b_spins failed: [^ ]*spec/policy_spec.lua:%d+: it used more "
      .. "than 2 s of CPU time"), by_rule.b_spins)
    assert.truthy(by_rule.c_backtracks:find("^rule c_backtracks failed: [^ ]*spec/policy_spec.lua:%d+: it "),
      by_rule.c_backtracks)
    -- Under valgrind (make memcheck), fifty times slower, CPU runs out first.
    local bound = os.getenv("NEOCONN_VALGRIND") and "rule d_allocates failed: " or "memory"
    assert.truthy(by_rule.d_allocates:find(bound, 1, true), by_rule.d_allocates)
    assert.are.equal("still 7 tables", by_rule.e_reads_after)
    assert.is_table(result.report.session) -- the parent's report is whole
  end)

  it("run custom checks with a small context and can be turned off by name", function()
    local settings = settings_for(user, password, "source", schema)
    settings.rules = {
      context = function(ctx)
        ctx.warn({ object_type = "connection", message = ("%s %s %s"):format(ctx.role,
          tostring(ctx.settings.target.password), ctx.settings.target.user) })
      end,
      no_nothing_table = function(ctx)
        local t = ctx.table(schema, "nothing")
        if t then
          ctx.error({ object_type = "table", schema = t.schema, name = t.name,
            message = "the nothing table must not be synced", fix = "-- drop it from the config" })
        end
      end,
      broken = function() error("boom") end,
    }
    local result = check.connection(settings, { disable_rules = { "source_writable" } })
    local by_rule = {}
    for _, f in ipairs(result.findings) do by_rule[f.rule] = f end
    assert.are.equal(("%s nil %s"):format(user, user), by_rule.context.message)
    assert.are.equal("the nothing table must not be synced", by_rule.no_nothing_table.message)
    assert.truthy(by_rule.broken.message:find("boom", 1, true))
    assert.are.equal("error", by_rule.broken.level)
    assert.is_nil(by_rule.source_writable)
    result = check.connection(settings)
    local writable = {}
    for _, f in ipairs(result.findings) do
      if f.rule == "source_writable" then writable[f.name] = f.level end
    end
    assert.are.same({ full_access = "warning", via_group = "warning", guarded = "warning" },
      writable)
  end)

  it("reject findings that are not findings", function()
    local settings = settings_for(user, password, "source", schema)
    settings.rules = { sloppy = function(ctx) ctx.emit({ level = "fatal", message = "x" }) end }
    local result = check.connection(settings)
    local f
    for _, x in ipairs(result.findings) do if x.rule == "sloppy" then f = x end end
    assert.truthy(f.message:find("finding.level", 1, true))
  end)
end)

describe("built-in advisories", function()
  -- A source job with every option at its default, as the core defines them.
  local function default_source_job()
    local job = { kind = "source" }
    for _, option in ipairs(neoconn.job_options()) do job[option.name] = option.default end
    return job
  end
  local function report_with(session, role)
    return { ok = true, session = session, role = role, database = { name = "d", connect = true },
      schemas = {}, tables = {}, sequences = {}, functions = {}, not_found = {},
      server = { in_hot_standby = false }, proof = { status = "complete" },
      job = default_source_job() }
  end
  local function rules_of(result)
    local names = {}
    for _, f in ipairs(result.findings) do names[#names + 1] = f.rule .. ":" .. f.level end
    table.sort(names)
    return names
  end

  it("warn about unverified or plain connections to remote hosts only", function()
    local role = { name = "r", superuser = false }
    local settings = { name = "c", kind = "source", options = {} }
    local plain = report_with({ user = "r", host = "db.example", sslmode = "prefer",
      ssl = { in_use = false } }, role)
    local unverified = report_with({ user = "r", host = "db.example", sslmode = "require",
      ssl = { in_use = true } }, role)
    local verified = report_with({ user = "r", host = "db.example", sslmode = "verify-full",
      ssl = { in_use = true } }, role)
    local loopback = report_with({ user = "r", host = "127.0.0.1", sslmode = "disable",
      ssl = { in_use = false } }, role)
    assert.are.same({ "insecure_sslmode:warning" }, rules_of(policy.evaluate(plain, settings)))
    assert.are.same({ "insecure_sslmode:warning" }, rules_of(policy.evaluate(unverified, settings)))
    assert.are.same({}, rules_of(policy.evaluate(verified, settings)))
    assert.are.same({}, rules_of(policy.evaluate(loopback, settings)))
  end)

  it("refuse to judge a report made for another job, or none", function()
    local settings = { name = "c", kind = "source", options = {} }
    local session = { user = "r", host = "/tmp", ssl = { in_use = false } }
    local report = report_with(session, { name = "r" })
    assert.are.same({}, rules_of(policy.evaluate(report, settings)))
    report.job = nil
    assert.are.same({ "job:error" }, rules_of(policy.evaluate(report, settings)))
    report.job = { kind = "destination" }
    assert.are.same({ "job:error" }, rules_of(policy.evaluate(report, settings)))
  end)

  it("warn about superusers and passwords about to expire", function()
    local settings = { name = "c", kind = "source", options = {} }
    local session = { user = "r", host = "/tmp", ssl = { in_use = false } }
    local now = os.time({ year = 2026, month = 11, day = 25, hour = 12 })
    local soon = report_with(session, { name = "r", valid_until = "2026-12-01T00:00:00Z" })
    local later = report_with(session, { name = "r", valid_until = "2027-06-01T00:00:00Z" })
    local super = report_with(session, { name = "r", superuser = true })
    assert.are.same({ "password_expiry:warning" }, rules_of(policy.evaluate(soon, settings, { now = now })))
    assert.are.same({}, rules_of(policy.evaluate(later, settings, { now = now })))
    assert.are.same({ "superuser:warning" }, rules_of(policy.evaluate(super, settings)))
  end)
end)

describe("fix_sql of warnings", function()
  it("keeps optional grants as comments, so the script grants only what the job needs", function()
    local user, password = pg.login_role("popt")
    local schema = pg.schema_with_table(user, "popt",
      { columns = "id serial PRIMARY KEY, v text", grant = "INSERT" })
    local result = check.connection({ name = "opt", kind = "destination", options = {},
      target = pg.target(user, password), schemas = { schema } })
    assert.is_true(result.ok)
    local usage = ("GRANT USAGE ON SEQUENCE %s TO %s;"):format(q(schema, "t_id_seq"), q(user))
    assert.truthy(result.fix_sql:find("-- optional: " .. usage, 1, true), result.fix_sql)
    for line in result.fix_sql:gmatch("[^\n]+") do assert.truthy(line:match("^%-%- "), line) end
  end)
end)
