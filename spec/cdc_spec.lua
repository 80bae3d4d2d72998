-- CDC sources (job.cdc): every finding made by a real fault on the
-- harness's servers (the primary runs wal_level = logical, the plain
-- cluster keeps replica), the replication connection's own failures, the
-- test writing nothing, and a closed loop: once the fixes are applied the
-- role really streams the job's tables through pgoutput.
local neoconn = require("neoconn")
local check = require("neoconn.check")
local pg = require("pg")

-- A role (REPLICATION unless attributes say otherwise) and a schema of its
-- own with the tables of `sql` ({s}: the schema, {r}: the role), which the
-- role may read.
local function scenario(prefix, sql, attributes)
  local user, password = pg.login_role(prefix, attributes or "REPLICATION")
  local schema = pg.unique(prefix)
  local text = ("CREATE SCHEMA {s}; GRANT USAGE ON SCHEMA {s} TO {r}; " .. sql
    .. "; GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}"):gsub("{s}", schema):gsub("{r}", user)
  pg.exec(text)
  return user, password, schema
end

local it_with_standby = pg.it_with_standby(it, pending)

local function cdc_check(user, password, schema, options, extra)
  options = options or {}
  options.cdc = true
  return check.connection(pg.settings(user, password, "source", options, { schemas = { schema } },
    extra))
end

-- The error findings of a rule (of every rule when nil).
local function errors_of(result, rule)
  local list = {}
  for _, f in ipairs(result.findings) do
    if f.level == "error" and (rule == nil or f.rule == rule) then list[#list + 1] = f end
  end
  return list
end

-- What the role's own replication connection receives through publication
-- of the admin's transaction sql ({s}: schema), as pgoutput message kinds
-- (B begin, R relation, I insert, U update, D delete, C commit), decoded
-- from a temporary slot the role creates.
local function streamed(user, password, schema, publication, sql)
  local conn = assert(neoconn.connect(pg.target(user, password, { replication = "database" })))
  local slot = pg.unique("stream")
  assert(conn:query(("CREATE_REPLICATION_SLOT %s TEMPORARY LOGICAL pgoutput"):format(slot)))
  -- Flushed at commit (the cluster runs synchronous_commit = off): decoding
  -- reads only flushed WAL.
  pg.exec("SET LOCAL synchronous_commit = on; " .. sql:gsub("{s}", schema))
  local rows = assert(conn:query(("SELECT substr(data, 1, 1) AS kind"
    .. " FROM pg_logical_slot_peek_binary_changes('%s', NULL, NULL, 'proto_version', '1',"
    .. " 'publication_names', '%s')"):format(slot, publication)))
  conn:close()
  local kinds = {}
  for _, row in ipairs(rows) do kinds[#kinds + 1] = string.char(tonumber(row.kind:sub(3), 16)) end
  return table.concat(kinds)
end

describe("a CDC source", function()
  it("passes with REPLICATION, a publication of its tables and primary keys, and writes nothing",
    function()
      local user, password, schema = scenario("cdcok", "CREATE TABLE {s}.t (id int PRIMARY KEY, v text)")
      local publication = pg.unique("pub")
      pg.exec(("CREATE PUBLICATION %s FOR TABLE %s.t"):format(publication, schema))
      local slots = pg.exec("SELECT count(*)::int AS n FROM pg_replication_slots")[1].n
      local before = pg.next_xid()
      local result = cdc_check(user, password, schema, { publication = publication })
      assert.are.equal(before, pg.next_xid())
      assert.are.equal(slots, pg.exec("SELECT count(*)::int AS n FROM pg_replication_slots")[1].n)
      assert.are.same({}, errors_of(result))
      assert.is_true(result.ok)
      local rep = result.report.replication
      assert.are.equal("logical", rep.wal_level)
      assert.is_true(rep.connection.ok)
      assert.truthy(rep.connection.system_id:match("^%d+$"))
      assert.are.equal(pg.dbname, rep.connection.database)
      local stages = result.report.stages
      assert.are.same({ name = "replication", ok = true }, { name = stages[#stages].name,
        ok = stages[#stages].ok })
      assert.are.same({ { schema = schema, name = "t", replica_identity = "primary_key",
        published = true, unpublished_columns = pg.major >= 15 and {} or nil, partitioned = false,
        generated_columns = {} } }, rep.tables)
      assert.is_false(pg.find_table(result.report, schema, "t").owner.is_member)
    end)

  it("runs its replication stage within test_all, many at once, as neoconn.test does", function()
    local user, password, schema = scenario("cdcall", "CREATE TABLE {s}.t (id int PRIMARY KEY)")
    local job = { kind = "source", cdc = true }
    local targets = {}
    for i = 1, 6 do
      targets[i] = { target = pg.target(user, i % 2 == 0 and password or "wrong"),
        schemas = { schema }, job = job }
    end
    local reports = neoconn.test_all(targets, { concurrency = 6 })
    for i, report in ipairs(reports) do
      if i % 2 == 0 then
        assert.is_true(report.ok, tostring(report.error))
        assert.is_true(report.replication.connection.ok)
        assert.are.equal("replication", report.stages[#report.stages].name)
      else
        assert.are.equal("auth_failed", report.error.code)
        assert.is_nil(report.replication)
      end
    end
  end)

  it("closes its replication connection with the test's connection, not when Lua collects it",
    function()
      local user, password, schema = scenario("cdcclose", "CREATE TABLE {s}.t (id int PRIMARY KEY)")
      local function walsenders()
        return pg.exec("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1"
          .. " AND backend_type = 'walsender'", { user })[1].n
      end
      local conn = assert(neoconn.connect(pg.target(user, password)))
      neoconn.test_begin(conn, { schemas = { schema }, job = { kind = "source", cdc = true } })
      -- Stepped until the replication connection's server process exists.
      local steps = 0
      repeat
        local report = conn:test_step()
        assert(not report, "the test ended before its replication connection was seen")
        steps = steps + 1
        assert(steps < 100000, "no replication connection")
      until walsenders() == 1
      collectgarbage("stop") -- what is closed must not depend on the collector
      conn:close()
      local deadline = neoconn.clock() + 5
      while walsenders() > 0 and neoconn.clock() < deadline do
        require("neoconn.core").poll({}, {}, 0.01)
      end
      local left = walsenders()
      collectgarbage("restart")
      assert.are.equal(0, left)
    end)

  it_with_standby("on a hot standby names what logical decoding there needs", function()
    local user, password, schema = scenario("cdcstb", "CREATE TABLE {s}.t (id int PRIMARY KEY)")
    pg.wait_for_standby()
    local result = cdc_check(user, password, schema, nil, { port = pg.standby_port })
    assert.is_true(result.report.replication.in_recovery)
    assert.is_true(result.report.replication.connection.ok)
    if pg.major < 16 then
      local found = errors_of(result, "replication.wal_level")
      assert.are.equal(1, #found)
      assert.truthy(found[1].message:find("needs PostgreSQL 16", 1, true), found[1].message)
    else
      local found = pg.findings(result, "replication.wal_level")
      assert.are.equal(1, #found)
      assert.are.equal("warning", found[1].level)
      assert.truthy(found[1].fix:find("hot_standby_feedback = on", 1, true), found[1].fix)
    end
  end)

  it("names wal_level when it is not logical, with ALTER SYSTEM and a restart", function()
    -- The plain cluster runs wal_level = replica; it has roles of its own.
    local plain = assert(neoconn.connect({ host = pg.socket, port = pg.plain_port,
      user = pg.admin_user, dbname = "postgres" }))
    local user = pg.unique("cdcwal")
    assert(plain:query(("CREATE ROLE %s LOGIN REPLICATION PASSWORD 'pw-wal-1'"):format(user)))
    plain:close()
    local result = check.connection(pg.settings(user, "pw-wal-1", "source", { cdc = true }, {},
      { port = pg.plain_port, dbname = "postgres" }))
    local found = errors_of(result, "replication.wal_level")
    assert.are.equal(1, #found)
    assert.truthy(found[1].message:find("wal_level is replica", 1, true), found[1].message)
    assert.truthy(found[1].fix:find("ALTER SYSTEM SET wal_level = logical;", 1, true))
    assert.truthy(found[1].fix:find("restart", 1, true))
    assert.is_false(result.ok)
  end)

  it("names REPLICATION held only by a group role, and the replication connection it refuses",
    function()
      local user, password, schema = scenario("cdcrole", "CREATE TABLE {s}.t (id int PRIMARY KEY)", "")
      local group = pg.unique("cdcgroup")
      pg.exec(("CREATE ROLE %s REPLICATION; GRANT %s TO %s"):format(group, group, user))
      local result = cdc_check(user, password, schema)
      local found = errors_of(result, "replication.role")
      assert.are.equal(1, #found)
      assert.truthy(found[1].message:find("belongs to " .. group, 1, true), found[1].message)
      assert.are.equal(("ALTER ROLE %s REPLICATION;"):format(user), found[1].fix)
      local err = result.report.replication.connection.error
      assert.are.equal("replication_not_allowed", err.code)
      assert.are.equal("replication", err.stage)
      assert.truthy(err.hint:find("ALTER ROLE " .. user .. " REPLICATION", 1, true), err.hint)
      -- The fix, applied: the replication connection opens.
      pg.exec(found[1].fix)
      result = cdc_check(user, password, schema)
      assert.are.equal(0, #errors_of(result, "replication.role"))
      assert.is_true(result.report.replication.connection.ok)
    end)

  it("names a full set of replication slots when the job would create one", function()
    local user, password, schema = scenario("cdcslots", "CREATE TABLE {s}.t (id int PRIMARY KEY)")
    local free = pg.exec("SELECT current_setting('max_replication_slots')::int"
      .. " - (SELECT count(*) FROM pg_replication_slots)::int AS n")[1].n
    local names = {}
    for i = 1, free do
      names[i] = pg.unique("fill")
      pg.exec(("SELECT pg_create_physical_replication_slot('%s')"):format(names[i]))
    end
    local ok, err = pcall(function()
      local found = errors_of(cdc_check(user, password, schema), "replication.slot")
      assert.are.equal(1, #found)
      assert.truthy(found[1].message:find("no free replication slot", 1, true), found[1].message)
      assert.truthy(found[1].fix:find("max_replication_slots", 1, true))
    end)
    for _, name in ipairs(names) do pg.exec(("SELECT pg_drop_replication_slot('%s')"):format(name)) end
    assert(ok, err)
  end)

  it("classifies the replication connection refused for want of a WAL sender", function()
    local user, password, schema = scenario("cdcsend", "CREATE TABLE {s}.t (id int PRIMARY KEY)")
    local held = {}
    -- Take every WAL sender left (bounded: max_wal_senders is 10 here).
    for _ = 1, 20 do
      local conn = neoconn.connect({ host = pg.socket, port = pg.port, user = pg.admin_user,
        dbname = pg.dbname, replication = "database" })
      if not conn then break end
      held[#held + 1] = conn
    end
    local ok, err = pcall(function()
      local result = cdc_check(user, password, schema)
      local failure = result.report.replication.connection.error
      assert.are.equal("too_many_connections", failure.code)
      assert.truthy(failure.hint:find("max_wal_senders", 1, true), failure.hint)
      local found = errors_of(result, "replication.connection")
      assert.are.equal(1, #found)
      assert.are.equal("too_many_connections", found[1].code)
    end)
    for _, conn in ipairs(held) do conn:close() end
    assert(ok, err)
  end)

  it("names a slot of another database, another plugin, a physical slot and one that is missing",
    function()
      local user, password, schema = scenario("cdcslot", "CREATE TABLE {s}.t (id int PRIMARY KEY)")
      local elsewhere, decoding, physical = pg.unique("slotdb"), pg.unique("slottd"), pg.unique("slotph")
      local postgres = assert(neoconn.connect({ host = pg.socket, port = pg.port,
        user = pg.admin_user, dbname = "postgres" }))
      assert(postgres:query(("SELECT pg_create_logical_replication_slot('%s', 'pgoutput')")
        :format(elsewhere)))
      postgres:close()
      pg.exec(("SELECT pg_create_logical_replication_slot('%s', 'test_decoding')"):format(decoding))
      pg.exec(("SELECT pg_create_physical_replication_slot('%s')"):format(physical))
      local cases = { { elsewhere, "belongs to database postgres" },
        { decoding, "was created with plugin test_decoding" }, { physical, "is a physical slot" } }
      local ok, err = pcall(function()
        for _, case in ipairs(cases) do
          local found = errors_of(cdc_check(user, password, schema, { slot = case[1] }),
            "replication.slot")
          assert.are.equal(1, #found, case[1])
          assert.are.equal("slot", found[1].object_type)
          assert.truthy(found[1].message:find(case[2], 1, true), found[1].message)
        end
        local missing = pg.findings(cdc_check(user, password, schema, { slot = "neoconn_absent" }),
          "replication.slot")
        assert.are.equal("warning", missing[1].level)
        assert.are.equal("SELECT pg_create_logical_replication_slot('neoconn_absent', 'pgoutput');",
          missing[1].fix)
      end)
      for _, name in ipairs({ decoding, physical }) do
        pg.exec(("SELECT pg_drop_replication_slot('%s')"):format(name))
      end
      pg.exec(("SELECT pg_drop_replication_slot('%s')"):format(elsewhere))
      assert(ok, err)
    end)

  pg.it_if(it, pending, pg.major >= 15, "column lists and row filters came in 15")(
    "names a publication missing a table, a column list and a row filter, each with its fix",
    function()
      local user, password, schema = scenario("cdcpub", [[
        CREATE TABLE {s}.whole (id int PRIMARY KEY, v text);
        CREATE TABLE {s}.narrow (id int PRIMARY KEY, secret text);
        CREATE TABLE {s}.filtered (id int PRIMARY KEY);
        CREATE TABLE {s}.left_out (id int PRIMARY KEY)]])
      local publication = pg.unique("pub")
      pg.exec(("CREATE PUBLICATION %s FOR TABLE %s.whole, %s.narrow (id), %s.filtered WHERE (id > 3)")
        :format(publication, schema, schema, schema))
      local result = cdc_check(user, password, schema, { publication = publication })
      local by_table = {}
      for _, f in ipairs(errors_of(result, "publication.tables")) do by_table[f.name] = f end
      assert.is_nil(by_table.whole)
      assert.truthy(by_table.narrow.message:find("column list leaves out secret", 1, true))
      assert.truthy(by_table.filtered.message:find("row filter", 1, true))
      assert.truthy(by_table.left_out.message:find("not in publication", 1, true))
      assert.are.equal(("ALTER PUBLICATION %s ADD TABLE %s.left_out;"):format(publication, schema),
        by_table.left_out.fix:match("^[^\n]*"))
      assert.is_true(pg.verdict(result, schema, "whole").usable)
      assert.is_false(pg.verdict(result, schema, "left_out").usable)
      -- The fixes, applied: nothing is left.
      for _, f in pairs(by_table) do pg.exec(f.fix) end
      result = cdc_check(user, password, schema, { publication = publication })
      assert.are.equal(0, #errors_of(result, "publication.tables"))
    end)

  it("without a publication, names what CREATE PUBLICATION needs, as the role's own attempt shows",
    function()
      local user, password, schema = scenario("cdcnopub", [[
        CREATE TABLE {s}.mine (id int PRIMARY KEY);
        CREATE TABLE {s}.theirs (id int PRIMARY KEY);
        ALTER TABLE {s}.mine OWNER TO {r}]])
      local found = {}
      for _, f in ipairs(errors_of(cdc_check(user, password, schema), "publication.tables")) do
        found[f.object_type .. " " .. f.name] = f
      end
      assert.is_nil(found["table mine"])
      assert.truthy(found["table theirs"].message:find("does not own the table", 1, true))
      local database = found["database " .. pg.dbname]
      assert.truthy(database.message:find("lacks CREATE", 1, true))
      -- The role's own CREATE PUBLICATION, before and after the fix.
      local conn = assert(neoconn.connect(pg.target(user, password)))
      local function create(tbl)
        local _, err = pg.try(conn, ("CREATE PUBLICATION %s FOR TABLE %s.%s")
          :format(pg.unique("p"), schema, tbl))
        return tostring(err)
      end
      assert.truthy(create("mine"):find("permission denied for database", 1, true))
      pg.exec(database.fix)
      assert.are.equal("nil", create("mine"))
      assert.truthy(create("theirs"):find("must be owner", 1, true))
      conn:close()
      found = errors_of(cdc_check(user, password, schema), "publication.tables")
      assert.are.equal(1, #found)
      assert.are.equal("theirs", found[1].name)
    end)

  it("names a table without a replica identity, whose UPDATE the publication then refuses",
    function()
      local user, password, schema = scenario("cdcri", "CREATE TABLE {s}.keyless (id int, v text)")
      pg.exec(("INSERT INTO %s.keyless VALUES (1, 'a')"):format(schema))
      local publication = pg.unique("pub")
      pg.exec(("CREATE PUBLICATION %s FOR TABLE %s.keyless"):format(publication, schema))
      local update = ("UPDATE %s.keyless SET v = 'b'"):format(schema)
      local _, refused = pg.try(pg.admin(), update)
      assert.truthy(tostring(refused):find("does not have a replica identity", 1, true), tostring(refused))
      local result = cdc_check(user, password, schema, { publication = publication })
      local found = errors_of(result, "table.replica_identity")
      assert.are.equal(1, #found)
      assert.are.equal("keyless", found[1].name)
      assert.truthy(found[1].fix:find("REPLICA IDENTITY FULL", 1, true))
      pg.exec(found[1].fix:match("^[^\n]+"))
      pg.exec(update)
      assert.are.equal(0, #errors_of(cdc_check(user, password, schema, { publication = publication }),
        "table.replica_identity"))
    end)

  it("warns that the sequences its tables own are not replicated", function()
    local user, password, schema = scenario("cdcseq", "CREATE TABLE {s}.t (id serial PRIMARY KEY)")
    local found = pg.findings(cdc_check(user, password, schema), "sequence.not_replicated")
    assert.are.equal(1, #found)
    assert.are.equal("warning", found[1].level)
    assert.are.equal("t_id_seq", found[1].name)
  end)

  it("names a table the publication leaves out, whose changes the role's stream then misses",
    function()
      local user, password, schema = scenario("cdcmiss", [[
        CREATE TABLE {s}.kept (id int PRIMARY KEY);
        CREATE TABLE {s}.left_out (id int PRIMARY KEY)]])
      local publication = pg.unique("pub")
      pg.exec(("CREATE PUBLICATION %s FOR TABLE %s.kept"):format(publication, schema))
      local found = errors_of(cdc_check(user, password, schema, { publication = publication }),
        "publication.tables")
      assert.are.equal(1, #found)
      assert.are.equal("left_out", found[1].name)
      -- The job takes the schema whole: tables created there later are named too.
      assert.are.equal(pg.major >= 15, found[1].fix:find("ADD TABLES IN SCHEMA " .. schema, 1, true)
        ~= nil, found[1].fix)
      local both = "INSERT INTO {s}.kept VALUES (%d); INSERT INTO {s}.left_out VALUES (%d)"
      -- One transaction writing both tables: kept's insert only.
      assert.are.equal("BRIC", streamed(user, password, schema, publication, both:format(1, 1)))
      pg.exec(found[1].fix)
      assert.are.equal("BRIRIC", streamed(user, password, schema, publication, both:format(2, 2)))
      assert.are.equal(0, #errors_of(cdc_check(user, password, schema, { publication = publication }),
        "publication.tables"))
    end)

  it("once fixed, really streams the job's tables through pgoutput", function()
    local user, password, schema = scenario("cdcloop", "CREATE TABLE {s}.t (id int, v text)", "")
    local publication = pg.unique("pub")
    pg.exec(("CREATE PUBLICATION %s"):format(publication))
    local result = cdc_check(user, password, schema, { publication = publication })
    assert.is_false(result.ok)
    -- Every fix, as an administrator.
    for _, f in ipairs(result.findings) do
      if f.level == "error" then pg.exec(f.fix) end
    end
    result = cdc_check(user, password, schema, { publication = publication })
    assert.are.same({}, errors_of(result))
    -- As the role, over its replication connection: the admin's insert,
    -- update and delete, decoded by pgoutput.
    local kinds = streamed(user, password, schema, publication,
      "INSERT INTO {s}.t VALUES (1, 'a'); UPDATE {s}.t SET v = 'b'; DELETE FROM {s}.t")
    -- Begin, Relation, Insert, Update, Delete, Commit: one transaction.
    assert.are.equal("BRIUDC", kinds)
  end)
end)
