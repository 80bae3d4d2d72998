-- CDC that keeps running: each fault made for real on the harness's
-- primary (wal_level = logical) on every version that has the feature — a
-- slot made lost by max_slot_wal_keep_size, a short WAL runway, an inactive
-- slot (17+), idle_replication_slot_timeout (18), an old open transaction,
-- failover (17+) and its absence before, a publication publishing inserts
-- only, a partitioned table without publish_via_partition_root, generated
-- columns, the replication connection through pgbouncer (refused, and a
-- session that is not a WAL sender), and managed services' roles. The test
-- still writes nothing.
local neoconn = require("neoconn")
local check = require("neoconn.check")
local pg = require("pg")
local q = neoconn.quote_ident

local function scenario(prefix, sql, attributes)
  local user, password = pg.login_role(prefix, attributes or "REPLICATION")
  local schema = pg.unique(prefix)
  pg.exec((("CREATE SCHEMA {s}; GRANT USAGE ON SCHEMA {s} TO {r}; " .. sql
    .. "; GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}"):gsub("{s}", schema):gsub("{r}", user)))
  return user, password, schema
end

local function cdc_check(user, password, schema, options, extra, settings)
  options.cdc = true
  local s = pg.settings(user, password, "source", options, { schemas = { schema } }, extra)
  for k, v in pairs(settings or {}) do s[k] = v end
  return check.connection(s)
end

local function findings(result, rule, level)
  return pg.findings(result, rule, nil, level)
end

local function one(result, rule, level)
  local list = findings(result, rule, level)
  assert.are.equal(1, #list, rule .. ": " .. #list .. " findings")
  return list[1]
end

-- Sets server settings for fn, then puts them back (reloaded both times).
local function with_settings(settings, fn)
  for name, value in pairs(settings) do pg.exec(("ALTER SYSTEM SET %s = '%s'"):format(name, value)) end
  pg.exec("SELECT pg_reload_conf()")
  -- A new session reads the reloaded file: wait until one sees it.
  for name, value in pairs(settings) do
    for _ = 1, 100 do
      local c = assert(neoconn.connect({ host = pg.socket, port = pg.port, user = pg.admin_user,
        dbname = pg.dbname }))
      local now = c:query("SELECT current_setting($1) AS v", { name })[1].v
      c:close()
      if now == value or (now:gsub("%s", "") == value:gsub("%s", "")) then break end
      pg.exec("SELECT pg_sleep(0.02)")
    end
  end
  local ok, err = pcall(fn)
  for name in pairs(settings) do pg.exec(("ALTER SYSTEM RESET %s"):format(name)) end
  pg.exec("SELECT pg_reload_conf()")
  assert(ok, err)
end

local function drop_slot(name)
  pg.exec("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
    { name })
end

local it_17 = pg.it_if(it, pending, pg.major >= 17, "failover slots and inactive_since came in 17")
local it_18 = pg.it_if(it, pending, pg.major >= 18, "idle_replication_slot_timeout came in 18")
local it_before_17 = pg.it_if(it, pending, pg.major < 17, "from 17 logical slots can fail over")

describe("a CDC source's health", function()
  local user, password, schema, publication
  setup(function()
    user, password, schema = scenario("health", "CREATE TABLE {s}.t (id int PRIMARY KEY, v text)")
    publication = pg.unique("health_pub")
    pg.exec(("CREATE PUBLICATION %s FOR TABLE %s"):format(q(publication), q(schema, "t")))
  end)

  it("names a slot max_slot_wal_keep_size made lost: rows are lost, copy again", function()
    local slot = pg.unique("lost")
    with_settings({ max_slot_wal_keep_size = "1MB" }, function()
      pg.exec(("SELECT pg_create_logical_replication_slot('%s', 'pgoutput')"):format(slot))
      for _ = 1, 3 do
        pg.exec("CREATE TEMP TABLE IF NOT EXISTS wal_filler (x text); INSERT INTO wal_filler"
          .. " SELECT repeat('x', 1000) FROM generate_series(1, 2000)")
        pg.exec("SELECT pg_switch_wal()")
      end
      -- The checkpoint removes the segments the slot needs; the harness's
      -- standby (which streams without a slot) must have them first.
      if pg.standby_port then pg.wait_for_standby() end
      pg.exec("CHECKPOINT")
      local r = cdc_check(user, password, schema, { slot = slot, publication = publication })
      local f = one(r, "replication.slot", "error")
      assert.truthy(f.message:find("is invalidated", 1, true), f.message)
      assert.truthy(f.fix:find("pg_create_logical_replication_slot", 1, true), f.fix)
      assert.truthy(f.fix:find("copy the tables again", 1, true), f.fix)
      assert.are.equal("lost", r.report.replication.slot.wal_status)
    end)
    drop_slot(slot)
  end)

  it("warns of a short WAL runway before the slot is invalidated, and writes nothing", function()
    local slot = pg.unique("runway")
    pg.exec(("SELECT pg_create_logical_replication_slot('%s', 'pgoutput')"):format(slot))
    with_settings({ max_slot_wal_keep_size = "64MB" }, function()
      local before = pg.next_xid()
      local r = cdc_check(user, password, schema, { slot = slot, publication = publication })
      assert.are.equal(before, pg.next_xid()) -- no transaction ID taken
      local f = one(r, "replication.slot_health", "warning")
      assert.truthy(f.message:find("of WAL left before max_slot_wal_keep_size invalidates it", 1,
        true), f.message)
      local s = r.report.replication.slot
      assert.truthy(s.retained_bytes >= 0 and s.safe_wal_bytes > 0, tostring(s.safe_wal_bytes))
      -- The database's other logical slots are context.
      local names = {}
      for _, x in ipairs(r.report.replication.slots) do names[x.name] = true end
      assert.is_true(names[slot])
    end)
    drop_slot(slot)
  end)

  it_17("warns of a slot nobody has read for longer than the threshold, saying since when", function()
    local slot = pg.unique("idle")
    pg.exec(("SELECT pg_create_logical_replication_slot('%s', 'pgoutput')"):format(slot))
    local r = cdc_check(user, password, schema, { slot = slot, publication = publication }, nil,
      { cdc_thresholds = { inactive_seconds = 0 } })
    drop_slot(slot)
    local f = one(r, "replication.slot_health", "warning")
    assert.truthy(f.message:find("has not been read for", 1, true), f.message)
    assert.truthy(r.report.replication.slot.inactive_since, "inactive_since")
  end)

  it_18("says when idle_replication_slot_timeout will invalidate an inactive slot", function()
    local slot = pg.unique("timeout")
    pg.exec(("SELECT pg_create_logical_replication_slot('%s', 'pgoutput')"):format(slot))
    with_settings({ idle_replication_slot_timeout = "1d" }, function()
      local r = cdc_check(user, password, schema, { slot = slot, publication = publication })
      local f = one(r, "replication.slot_health", "warning")
      assert.truthy(f.message:find("idle_replication_slot_timeout (1.0 days) invalidates it in", 1,
        true), f.message)
    end)
    drop_slot(slot)
  end)

  it("warns of an old open transaction a new slot waits for, and says what it cannot see", function()
    -- The role's own session: one it may see (the others' are hidden from it).
    local other = assert(neoconn.connect(pg.target(user, password)))
    assert(other:query("BEGIN"))
    assert(other:query("SELECT txid_current()"))
    assert(other:query("SELECT pg_sleep(1.1)")) -- older than the threshold of 1 s
    local r = cdc_check(user, password, schema, { publication = publication }, nil,
      { cdc_thresholds = { transaction_seconds = 1 } })
    assert(other:query("ROLLBACK"))
    other:close()
    local list = findings(r, "replication.oldest_transaction", "warning")
    local said
    for _, f in ipairs(list) do
      said = said or f.message:find("creating the job's slot waits until it ends", 1, true)
    end
    assert.truthy(said, require("dkjson").encode(r.findings))
    -- The superuser's sessions are hidden from the role: said, not judged.
    assert.truthy(r.report.replication.hidden_sessions >= 1)
    assert.truthy(require("neoconn.report").human({ r }):find("session(s) hidden from the role",
      1, true))
  end)

  it_before_17("warns that a logical slot does not survive a failover before 17", function()
    local slot = pg.unique("nofailover")
    pg.exec(("SELECT pg_create_logical_replication_slot('%s', 'pgoutput')"):format(slot))
    local r = cdc_check(user, password, schema, { slot = slot, publication = publication })
    drop_slot(slot)
    local f = one(r, "replication.failover", "warning")
    assert.truthy(f.message:find("only from PostgreSQL 17", 1, true), f.message)
  end)

  it_17("names a slot without failover, and a failover slot with no synchronized_standby_slots", function()
    local plain, failover = pg.unique("nofail"), pg.unique("fail")
    pg.exec(("SELECT pg_create_logical_replication_slot('%s', 'pgoutput')"):format(plain))
    pg.exec(("SELECT pg_create_logical_replication_slot('%s', 'pgoutput', false, false, true)")
      :format(failover))
    local r1 = cdc_check(user, password, schema, { slot = plain, publication = publication })
    local r2 = cdc_check(user, password, schema, { slot = failover, publication = publication })
    drop_slot(plain)
    drop_slot(failover)
    assert.truthy(one(r1, "replication.failover").message:find("failover = false", 1, true))
    assert.truthy(one(r2, "replication.failover").message:find("synchronized_standby_slots is empty",
      1, true))
  end)

  pg.it_if(it, pending, pg.major >= 17 and pg.standby_port ~= nil,
    "failover slots came in 17, and the harness's standby is needed")(
    "checks the standby keeping a failover slot: not yet synced, then synced", function()
      local sb = assert(neoconn.connect({ host = pg.socket, port = pg.standby_port,
        user = pg.admin_user, dbname = "postgres" }))
      local function on_standby(sql) return assert(sb:query(sql)) end
      local physical, slot = pg.unique("sb_phys"), pg.unique("fo")
      local conninfo = on_standby("SHOW primary_conninfo")[1].primary_conninfo
      local standby_url = ("postgresql://%s:%s@%s:%s/%s"):format(user, password, pg.host,
        pg.standby_port, pg.dbname)
      local function checked()
        local s = pg.settings(user, password, "source", { cdc = true, slot = slot,
          publication = publication }, { schemas = { schema } })
        s.standby = standby_url
        s.cdc_thresholds = { inactive_seconds = 1e9 }
        local r = check.connection(s)
        local text = {}
        for _, f in ipairs(findings(r, "replication.failover")) do text[#text + 1] = f.message end
        return table.concat(text, "\n"), r
      end
      local ok, err = pcall(function()
        pg.exec(("SELECT pg_create_physical_replication_slot('%s')"):format(physical))
        on_standby(("ALTER SYSTEM SET primary_slot_name = '%s'"):format(physical))
        on_standby("ALTER SYSTEM SET hot_standby_feedback = on")
        on_standby(("ALTER SYSTEM SET primary_conninfo = %s"):format(
          neoconn.quote_literal(conninfo .. " dbname=postgres")))
        on_standby("SELECT pg_reload_conf()")
        pg.exec(("SELECT pg_create_logical_replication_slot('%s', 'pgoutput', false, false, true)")
          :format(slot))
        local text = checked()
        assert.truthy(text:find("sync_replication_slots is off", 1, true), text)
        assert.truthy(text:find("the slot is not on the standby yet", 1, true), text)
        assert.truthy(text:find("cannot be seen by the role", 1, true), text)
        pg.exec(("GRANT pg_read_all_settings TO %s"):format(q(user)))
        -- Synchronized now, as the fix says: the slot sync worker copies the
        -- slot, which persists on the standby once the primary's copy has
        -- moved past what the standby holds (a new transaction, its
        -- running-xacts record, and the slot advanced past both).
        on_standby("ALTER SYSTEM SET sync_replication_slots = on")
        on_standby("SELECT pg_reload_conf()")
        local persisted = false
        for _ = 1, 300 do
          pg.exec("SELECT txid_current()")
          pg.exec("CHECKPOINT")
          pg.exec("SELECT pg_log_standby_snapshot()")
          pg.exec(("SELECT pg_replication_slot_advance('%s', pg_current_wal_lsn())"):format(slot))
          pg.wait_for_standby()
          if #on_standby(("SELECT 1 FROM pg_replication_slots WHERE slot_name = '%s'"
            .. " AND synced AND NOT temporary"):format(slot)) == 1 then
            persisted = true
            break
          end
          pg.exec("SELECT pg_sleep(0.1)")
        end
        assert.is_true(persisted, "the standby never persisted the slot")
        local r
        text, r = checked()
        assert.falsy(text:find("the standby is not ready", 1, true), text)
        assert.is_true(r.report.replication.standby.slot.synced)
      end)
      -- The standby as it was: no synchronization, no physical slot.
      on_standby("ALTER SYSTEM RESET sync_replication_slots")
      on_standby("ALTER SYSTEM RESET primary_slot_name")
      on_standby("ALTER SYSTEM RESET hot_standby_feedback")
      on_standby(("ALTER SYSTEM SET primary_conninfo = %s"):format(neoconn.quote_literal(conninfo)))
      on_standby("SELECT pg_reload_conf()")
      drop_slot(slot)
      for _ = 1, 200 do -- until the standby's walreceiver lets go of the physical slot
        if #pg.exec("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active",
          { physical }) == 0 then break end
        pg.exec("SELECT pg_sleep(0.05)")
      end
      drop_slot(physical)
      pg.exec(("REVOKE pg_read_all_settings FROM %s"):format(q(user)))
      sb:close()
      assert(ok, err)
    end)

  it("names what the publication does not publish: changes, partitions' roots, generated columns",
    function()
    local u, p, s = scenario("pubops", "CREATE TABLE {s}.parts (id int, v int) PARTITION BY RANGE (id);"
      .. " CREATE TABLE {s}.parts_1 PARTITION OF {s}.parts FOR VALUES FROM (0) TO (100);"
      .. " CREATE TABLE {s}.gen (id int PRIMARY KEY, v int, g int GENERATED ALWAYS AS (v * 2) STORED);"
      .. " ALTER TABLE {s}.parts REPLICA IDENTITY FULL; ALTER TABLE {s}.parts_1 REPLICA IDENTITY FULL")
    local pub = pg.unique("insert_only")
    pg.exec(("CREATE PUBLICATION %s FOR TABLE %s, %s WITH (publish = 'insert')"):format(q(pub),
      q(s, "parts"), q(s, "gen")))
    local r = check.connection(pg.settings(u, p, "source", { cdc = true, publication = pub },
      { tables = { { schema = s, name = "parts" }, { schema = s, name = "gen" } } }))
    local err = findings(r, "publication.tables", "error")
    local text = {}
    for _, f in ipairs(r.findings) do
      if f.rule == "publication.tables" then text[#text + 1] = f.level .. ": " .. f.message end
    end
    text = table.concat(text, "\n")
    assert.truthy(#err >= 1, text)
    assert.truthy(text:find("does not publish update, delete", 1, true), text)
    assert.truthy(text:find("warning: publication " .. pub .. " does not publish TRUNCATE", 1, true), text)
    assert.truthy(text:find("publish_via_partition_root off", 1, true), text)
    assert.truthy(text:find("generated columns g are not replicated", 1, true), text)
    pg.exec(("DROP PUBLICATION %s"):format(q(pub)))
    end)

  it("classifies a replication connection a pooler refuses, with its fix", function()
    local r = check.connection({ name = "pooled", kind = "source",
      target = { host = pg.host, port = pg.pooler_port, dbname = "neoconn_session", user = pg.admin_user,
        password = pg.admin_password, sslmode = "require" },
      tables = { { schema = schema, name = "t" } },
      options = { cdc = true, publication = publication } })
    local f = one(r, "replication.connection", "error")
    assert.are.equal("replication_through_pooler", f.code)
    assert.truthy(f.fix:find("not the pooler's", 1, true), f.fix)
    assert.are.equal("replication_through_pooler", r.report.replication.connection.error.code)
  end)

  it("classifies a replication connection that reached a normal session, not a WAL sender", function()
    -- pgbouncer told to drop the parameter: the session is an ordinary one.
    local dir = os.getenv("NEOCONN_TEST_TMP") .. "/pgbouncer-ignoring"
    local port = tonumber(pg.proxy_port)
    os.execute("mkdir -p " .. dir)
    local f = assert(io.open(dir .. "/pgbouncer.ini", "w"))
    f:write(("[databases]\nplain = host=%s port=%s dbname=%s\n[pgbouncer]\nlisten_addr = 127.0.0.1\n"
      .. "listen_port = %d\nunix_socket_dir =\nauth_type = trust\nauth_file = %s/users.txt\n"
      .. "ignore_startup_parameters = replication\nlogfile = %s/pgbouncer.log\npidfile = %s/pgbouncer.pid\n")
      :format(pg.socket, pg.port, pg.dbname, port, dir, dir, dir))
    f:close()
    f = assert(io.open(dir .. "/users.txt", "w"))
    f:write(('"%s" ""\n'):format(pg.admin_user))
    f:close()
    local root = pg.run("test \"$(id -u)\" = 0") == 0
    if root then os.execute("chown -R postgres " .. dir) end
    assert.are.equal(0, pg.execute((root and "runuser -u postgres -- " or "")
      .. ("pgbouncer -d -q %s/pgbouncer.ini"):format(dir)))
    local ok, err = pcall(function()
      local r
      for _ = 1, 50 do -- until it listens
        r = check.connection({ name = "ignoring", kind = "source",
          target = { host = pg.host, port = tostring(port), dbname = "plain", user = pg.admin_user,
            sslmode = "disable" },
          tables = { { schema = schema, name = "t" } }, options = { cdc = true, publication = publication } })
        if r.report.ok then break end
        pg.exec("SELECT pg_sleep(0.05)")
      end
      local found = one(r, "replication.connection", "error")
      assert.are.equal("replication_through_pooler", found.code)
      assert.truthy(found.fix:find("not a WAL sender", 1, true), found.fix)
    end)
    os.execute(("kill $(cat %s/pgbouncer.pid) 2>/dev/null"):format(dir))
    assert(ok, err)
  end)

  it("names a managed service by its roles, with its fix; the connection proves its role's grant",
    function()
    for _, role in ipairs({ "rds_replication", "rds_superuser" }) do
      pg.exec(("DO $$ BEGIN CREATE ROLE %s; EXCEPTION WHEN duplicate_object THEN NULL; END $$"):format(role))
    end
    local ok, err = pcall(function()
      local u, p, s = scenario("managed", "CREATE TABLE {s}.t (id int PRIMARY KEY)", "")
      local r = cdc_check(u, p, s, { publication = publication })
      local f = one(r, "replication.role", "error")
      assert.truthy(f.message:find("looks like Amazon RDS / Aurora", 1, true), f.message)
      assert.truthy(f.fix:find("GRANT rds_replication TO " .. u, 1, true), f.fix)
      -- Member of rds_replication: the plain server does not honour it, and
      -- the replication connection says so.
      pg.exec(("GRANT rds_replication TO %s"):format(q(u)))
      r = cdc_check(u, p, s, { publication = publication })
      assert.are.same({}, findings(r, "replication.role"))
      assert.are.equal("replication_not_allowed", one(r, "replication.connection", "error").code)
    end)
    pg.exec("DROP ROLE IF EXISTS rds_replication")
    pg.exec("DROP ROLE IF EXISTS rds_superuser")
    assert(ok, err)
    end)
end)
