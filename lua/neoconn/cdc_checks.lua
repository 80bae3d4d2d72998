--- The checks of a CDC source (job.cdc): what logical replication needs of
-- the server, the login role, the replication connection, the slot, the
-- publication and each table. They read report.replication, which
-- neoconn.test fills for such a job; each is named by the `check` of a
-- requirement (src/requirements.c).
local neoconn = require("neoconn")
local q = neoconn.quote_ident

local checks = {}

local fix_sql = require("neoconn.fix_sql")
local comment, literal = fix_sql.comment, fix_sql.literal

local function replication(ctx)
  return ctx.report.replication or {}
end

local function job(ctx)
  return ctx.report.job or {}
end

local function quoted_tables(rows)
  local names = {}
  for _, t in ipairs(rows) do names[#names + 1] = q(t.schema, t.name) end
  return table.concat(names, ", ")
end

--- wal_level must be logical for logical decoding (replication.wal_level).
function checks.wal_level_logical(ctx, need)
  local rep = replication(ctx)
  if rep.wal_level ~= "logical" then
    ctx.error({ object_type = "server", name = ctx.name,
      message = ("wal_level is %s: %s"):format(tostring(rep.wal_level), need.reason),
      fix = "ALTER SYSTEM SET wal_level = logical;\n" .. comment("then restart the server") })
  end
  if rep.in_recovery then
    local version = ctx.report.server.version_num or 0
    if version < 160000 then
      ctx.error({ object_type = "server", name = ctx.name,
        message = "the server is a standby: logical decoding on a standby needs PostgreSQL 16",
        fix = comment("read changes from the primary") })
    elseif not rep.hot_standby_feedback then
      ctx.warn({ object_type = "server", name = ctx.name,
        message = "the server is a standby without hot_standby_feedback: the primary may remove "
          .. "rows the slot still needs, and the slot is then invalidated",
        fix = "ALTER SYSTEM SET hot_standby_feedback = on;\nSELECT pg_reload_conf();" })
    end
  end
end

-- Managed services and what their roles and settings say: which one it
-- looks like (a role of that name, or its setting, exists), whether the
-- login role's membership gives the right (then the replication connection
-- is the proof), and that provider's fix (%s: the role).
local PROVIDERS = {
  { name = "Amazon RDS / Aurora", roles = { rds_replication = true, rds_superuser = true },
    setting = "rds_logical_replication", grants = { rds_replication = true, rds_superuser = true },
    fix = "GRANT rds_replication TO %s; and set rds.logical_replication = 1 in the DB parameter "
      .. "group (a reboot applies it)" },
  { name = "Google Cloud SQL", roles = { cloudsqlsuperuser = true },
    setting = "cloudsql_logical_decoding",
    fix = "set the flag cloudsql.logical_decoding = on, then as a cloudsqlsuperuser member: ALTER "
      .. "USER %s WITH REPLICATION;" },
  { name = "Azure Database for PostgreSQL", roles = { azure_pg_admin = true },
    fix = "as a member of azure_pg_admin: ALTER ROLE %s REPLICATION; and set wal_level = logical "
      .. "in the server parameters" },
  { name = "Supabase", roles = { supabase_admin = true, supabase_replication_admin = true },
    fix = "connect as postgres (which has REPLICATION), or as supabase_admin: ALTER ROLE %s "
      .. "REPLICATION;" },
}

-- The provider the server looks like, and whether the role's memberships
-- give it replication there.
local function provider_of(rep)
  local p = rep.provider or {}
  local present, member = {}, {}
  for _, r in ipairs(p.roles or {}) do present[r] = true end
  for _, r in ipairs(p.member_of or {}) do member[r] = true end
  for _, provider in ipairs(PROVIDERS) do
    local seen = provider.setting and p[provider.setting] ~= nil
    for r in pairs(provider.roles) do seen = seen or present[r] end
    if seen then
      local granted
      for r in pairs(provider.grants or {}) do
        if member[r] then granted = r end
      end
      return provider, granted
    end
  end
end

--- The login role itself needs REPLICATION (replication.role).
function checks.replication_role(ctx, need)
  local rep = replication(ctx)
  local role = rep.login_role or {}
  if role.replication or role.superuser then return end
  local provider, granted = provider_of(rep)
  if granted then
    -- The service grants the right through the role: the replication
    -- connection proves it (replication.connection says when it does not).
    return
  end
  local groups = role.groups_with_replication or {}
  local message = ("role %s lacks REPLICATION"):format(q(role.name or ctx.role))
  if #groups > 0 then
    local quoted = {}
    for i, g in ipairs(groups) do quoted[i] = q(g) end
    message = message .. (" (it belongs to %s, which has it, but the attribute is not inherited)")
      :format(table.concat(quoted, ", "))
  end
  local fix = ("ALTER ROLE %s REPLICATION;"):format(q(role.name or ctx.role))
  if provider then
    message = message .. (" (the server looks like %s)"):format(provider.name)
    fix = comment(provider.name .. ": " .. provider.fix:format(q(role.name or ctx.role)))
  end
  ctx.error({ object_type = "role", name = role.name or ctx.role, missing = { "REPLICATION" },
    message = message .. ": " .. need.reason, fix = fix })
end

--- The replication connection opened and IDENTIFY_SYSTEM answered (replication.connection).
function checks.replication_connection(ctx, need)
  local rep = replication(ctx)
  local connection = rep.connection or {}
  if connection.ok then return end
  local err = connection.error or {}
  local role = rep.login_role or {}
  -- Already said by replication_role, with its fix (unless a service's
  -- role was to give the right: then this is the proof that it does not).
  local _, granted = provider_of(rep)
  if err.code == "replication_not_allowed" and not (role.replication or role.superuser)
    and not granted then
    return
  end
  ctx.error({ object_type = "connection", name = ctx.name, code = err.code, stage = err.stage,
    message = ("the replication connection (replication=database) failed: %s: %s")
      :format(tostring(err.message), need.reason),
    fix = comment(tostring(err.hint)) })
end

-- An error when every replication slot is taken; true when one is free.
local function free_slot(ctx, need)
  local rep = replication(ctx)
  if (rep.slots_used or 0) >= (rep.max_replication_slots or 0) then
    ctx.error({ object_type = "server", name = ctx.name,
      message = ("no free replication slot (%d of max_replication_slots = %d in use): %s")
        :format(rep.slots_used or 0, rep.max_replication_slots or 0, need.reason),
      fix = ("ALTER SYSTEM SET max_replication_slots = %d;\n"):format((rep.max_replication_slots or 0) + 1)
        .. comment("then restart the server, or drop an unused slot: "
          .. "SELECT pg_drop_replication_slot('<name>');") })
    return false
  end
  return true
end

--- The named slot is logical, uses pgoutput, belongs to this database and is
-- free; or one can be made (replication.slot).
function checks.replication_slot(ctx, need)
  local name = job(ctx).slot
  if name == nil then
    free_slot(ctx, need)
    return
  end
  local slot = replication(ctx).slot
  local function refuse(why, fix)
    ctx.error({ object_type = "slot", name = name, message = ("slot %s %s"):format(q(name), why),
      fix = fix })
  end
  local recreate = ("SELECT pg_drop_replication_slot(%s);\n"
    .. "SELECT pg_create_logical_replication_slot(%s, 'pgoutput');"):format(literal(name), literal(name))
  if slot == nil then
    if free_slot(ctx, need) then
      ctx.warn({ object_type = "slot", name = name,
        message = ("slot %s does not exist: the job has to create it"):format(q(name)),
        fix = ("SELECT pg_create_logical_replication_slot(%s, 'pgoutput');"):format(literal(name)) })
    end
  elseif slot.type ~= "logical" then
    refuse("is a physical slot: " .. need.reason, recreate)
  elseif slot.plugin ~= "pgoutput" then
    refuse(("was created with plugin %s, the job decodes with pgoutput"):format(q(slot.plugin)),
      recreate)
  elseif not slot.same_database then
    refuse(("belongs to database %s: a logical slot decodes only its own database")
      :format(q(slot.database)), comment("connect to database " .. q(slot.database)
        .. ", or create a slot here: SELECT pg_create_logical_replication_slot(<name>, 'pgoutput');"))
  elseif slot.invalidation_reason or slot.conflicting or slot.wal_status == "lost" then
    refuse(("is invalidated (%s): it can no longer be read")
      :format(slot.invalidation_reason or (slot.conflicting and "conflict") or "wal_status lost"),
      recreate .. "\n" .. comment("then copy the tables again: changes were lost"))
  elseif slot.active then
    refuse("is in use by another process: a slot has one reader at a time",
      comment("stop the other reader, or give the job a slot of its own"))
  end
end

--- The publication covers every synced table, every column, row and change;
-- or the role can create it (publication.tables).
function checks.publication(ctx, need)
  local rep = replication(ctx)
  local name = job(ctx).publication
  local tables = rep.tables or {}
  if name == nil then
    -- The job creates its publication: it must own each table (have its
    -- owner's privileges: the report's owner.is_member), and have CREATE on
    -- the database.
    for _, t in ipairs(tables) do
      local entry = ctx.table(t.schema, t.name)
      if not (entry and entry.owner.is_member) then
        ctx.error({ object_type = "table", schema = t.schema, name = t.name,
          message = ("no publication given, and role %s does not own the table: CREATE "
            .. "PUBLICATION ... FOR TABLE needs the owner"):format(q(ctx.role)),
          fix = comment("as the owner or a superuser, create the job's publication: CREATE "
            .. "PUBLICATION <name> FOR TABLE " .. quoted_tables(tables) .. ";") })
      end
    end
    if not rep.database_create then
      ctx.error({ object_type = "database", name = rep.database,
        message = ("no publication given, and role %s lacks CREATE on database %s: CREATE "
          .. "PUBLICATION needs it"):format(q(ctx.role), q(rep.database)),
        fix = ("GRANT CREATE ON DATABASE %s TO %s;"):format(q(rep.database), q(ctx.role)) })
    end
    return
  end
  local pub = rep.publication
  if pub == nil then
    ctx.error({ object_type = "publication", name = name,
      message = ("publication %s does not exist: %s"):format(q(name), need.reason),
      fix = ("CREATE PUBLICATION %s FOR TABLE %s;"):format(q(name), quoted_tables(tables)) })
    return
  end
  local silent = {}
  for _, action in ipairs({ "insert", "update", "delete" }) do
    if not pub.publishes[action] then silent[#silent + 1] = action end
  end
  if #silent > 0 then
    ctx.error({ object_type = "publication", name = name,
      message = ("publication %s does not publish %s: those changes never reach the job")
        :format(q(name), table.concat(silent, ", ")),
      fix = ("ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate');"):format(q(name)) })
  end
  if not pub.publishes.truncate then
    ctx.warn({ object_type = "publication", name = name,
      message = ("publication %s does not publish TRUNCATE: a truncate of a synced table never "
        .. "reaches the job, whose copy keeps the rows"):format(q(name)),
      fix = ("ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate');"):format(q(name)) })
  end
  local version = ctx.report.server.version_num or 0
  for _, t in ipairs(tables) do
    if t.published and t.partitioned and not pub.via_root then
      ctx.warn({ object_type = "table", schema = t.schema, name = t.name,
        message = ("partitioned, and publication %s has publish_via_partition_root off: changes "
          .. "arrive under each partition's name, not %s"):format(q(name), q(t.schema, t.name)),
        fix = ("ALTER PUBLICATION %s SET (publish_via_partition_root = true);"):format(q(name)) })
    end
    if t.published and t.generated_columns and #t.generated_columns > 0
      and pub.generated_columns ~= "s" then
      local columns = {}
      for i, c in ipairs(t.generated_columns) do columns[i] = q(c) end
      ctx.warn({ object_type = "table", schema = t.schema, name = t.name,
        message = ("generated columns %s are not replicated (%s): the destination must compute "
          .. "them"):format(table.concat(columns, ", "), version >= 180000
            and "publish_generated_columns = none" or "before PostgreSQL 18 never"),
        fix = version >= 180000 and ("ALTER PUBLICATION %s SET (publish_generated_columns = stored);")
          :format(q(name)) or nil })
    end
  end
  -- Schemas the job takes whole: a FOR TABLE publication misses the tables
  -- created there later, FOR TABLES IN SCHEMA (15+) does not.
  local whole = {}
  for _, s in ipairs(ctx.settings.schemas or {}) do whole[s] = true end
  for _, t in ipairs(tables) do
    local function refuse(message)
      local fix = t.published
        and ("ALTER PUBLICATION %s DROP TABLE %s;\nALTER PUBLICATION %s ADD TABLE %s;")
          :format(q(name), q(t.schema, t.name), q(name), q(t.schema, t.name))
        or ("ALTER PUBLICATION %s ADD TABLE %s;"):format(q(name), q(t.schema, t.name))
      if not t.published and whole[t.schema] and not pub.all_tables and version >= 150000 then
        fix = fix .. "\n" .. comment(("or, for tables created in %s later too (as a superuser): "
          .. "ALTER PUBLICATION %s ADD TABLES IN SCHEMA %s;"):format(q(t.schema), q(name),
            q(t.schema)))
      end
      ctx.error({ object_type = "table", schema = t.schema, name = t.name, message = message,
        fix = fix })
    end
    if not t.published then
      refuse(("not in publication %s: its changes never reach the job"):format(q(name)))
    end
    if t.unpublished_columns and #t.unpublished_columns > 0 then
      local columns = {}
      for i, c in ipairs(t.unpublished_columns) do columns[i] = q(c) end
      refuse(("publication %s's column list leaves out %s: those columns never reach the job")
        :format(q(name), table.concat(columns, ", ")))
    end
    if t.row_filter then
      refuse(("publication %s has a row filter on the table (WHERE %s): changes to other rows "
        .. "never reach the job"):format(q(name), t.row_filter))
    end
  end
end

-- The thresholds a CDC source is judged by: the connection's
-- cdc_thresholds over these defaults.
local THRESHOLDS = {
  runway_bytes = 1024 * 1024 * 1024, -- WAL a slot may still keep before it is invalidated
  catalog_xmin_age = 100000000,       -- half of autovacuum_freeze_max_age's default
  transaction_seconds = 300,          -- an open transaction older than this
  inactive_seconds = 86400,           -- a slot nobody has read for this long (17+ tells)
}
checks.CDC_THRESHOLDS = THRESHOLDS

local function threshold(ctx, name)
  local given = ctx.settings.cdc_thresholds
  return given and given[name] or THRESHOLDS[name]
end

local function bytes(n)
  local units = { "bytes", "kB", "MB", "GB", "TB" }
  local i = 1
  while n >= 1024 and i < #units do
    n = n / 1024
    i = i + 1
  end
  return i == 1 and ("%d bytes"):format(math.floor(n)) or ("%.1f %s"):format(n, units[i])
end

local function duration(seconds)
  if seconds >= 86400 then return ("%.1f days"):format(seconds / 86400) end
  if seconds >= 3600 then return ("%.1f hours"):format(seconds / 3600) end
  if seconds >= 60 then return ("%.1f minutes"):format(seconds / 60) end
  return ("%d s"):format(math.floor(seconds))
end

--- The named slot's health: the WAL it keeps and the room left, how long
-- nobody has read it, its catalog_xmin's age (replication.slot_health).
function checks.slot_health(ctx)
  local rep = replication(ctx)
  local slot = rep.slot
  if not slot or slot.type ~= "logical" or slot.wal_status == "lost" or slot.invalidation_reason then
    return -- none yet, or refused by replication.slot
  end
  local name = slot.name
  local function warn(message, fix)
    ctx.warn({ object_type = "slot", name = name, message = ("slot %s %s"):format(q(name), message),
      fix = fix })
  end
  local kept = slot.retained_bytes and (" (it keeps %s of WAL; its consumer has not confirmed the last %s)")
    :format(bytes(slot.retained_bytes), bytes(slot.behind_bytes or 0)) or ""
  local catch_up = comment("let its consumer catch up (is it running?), or drop the slot if "
    .. "nothing reads it: SELECT pg_drop_replication_slot(" .. literal(name) .. ");")
  if slot.wal_status == "unreserved" then
    warn(("keeps more WAL than max_slot_wal_keep_size: the next checkpoint invalidates it unless "
      .. "its consumer catches up%s"):format(kept), catch_up)
  elseif slot.safe_wal_bytes and slot.safe_wal_bytes < threshold(ctx, "runway_bytes") then
    warn(("has %s of WAL left before max_slot_wal_keep_size invalidates it%s"):format(
      bytes(math.max(slot.safe_wal_bytes, 0)), kept), catch_up)
  elseif slot.wal_status == "extended" then
    warn(("keeps more WAL than max_wal_size%s: with max_slot_wal_keep_size = -1 nothing stops it "
      .. "filling the disk"):format(kept), catch_up)
  end
  if not slot.active then
    local timeout = rep.idle_slot_timeout_seconds
    if timeout and timeout > 0 and slot.inactive_seconds then
      warn(("has not been read for %s: idle_replication_slot_timeout (%s) invalidates it in %s%s")
        :format(duration(slot.inactive_seconds), duration(timeout),
          duration(math.max(timeout - slot.inactive_seconds, 0)), kept), catch_up)
    elseif slot.inactive_seconds and slot.inactive_seconds > threshold(ctx, "inactive_seconds") then
      warn(("has not been read for %s (since %s)%s"):format(duration(slot.inactive_seconds),
        tostring(slot.inactive_since), kept), catch_up)
    end
  end
  if slot.catalog_xmin_age and slot.catalog_xmin_age > threshold(ctx, "catalog_xmin_age") then
    warn(("holds back catalog_xmin by %d transactions: vacuum cannot clean the system catalogs "
      .. "behind it, and wraparound comes nearer"):format(slot.catalog_xmin_age), catch_up)
  end
end

--- The oldest open transaction: a slot's creation waits for it, and it
-- holds back catalog_xmin (replication.oldest_transaction). Of the
-- sessions the role may see: how many it may not is in the report
-- (replication.hidden_sessions) and the human report's CDC line.
function checks.oldest_transaction(ctx)
  local rep = replication(ctx)
  local creating = job(ctx).slot == nil or rep.slot == nil
  local age = rep.oldest_transaction_seconds
  if age and age > threshold(ctx, "transaction_seconds") then
    ctx.warn({ object_type = "server", name = ctx.name,
      message = ("a transaction has been open for %s%s"):format(duration(age), creating
        and ": creating the job's slot waits until it ends" or ": it holds back the slot's "
        .. "catalog_xmin and vacuum"),
      fix = comment("find it: SELECT pid, usename, xact_start, state, query FROM pg_stat_activity "
        .. "WHERE backend_xid IS NOT NULL ORDER BY xact_start; (and pg_prepared_xacts)") })
  end
end

--- The slot survives a failover: synchronized to the standby on 17 and
-- later; before 17 it cannot (replication.failover).
function checks.slot_failover(ctx)
  local rep = replication(ctx)
  local name = job(ctx).slot
  if name == nil or rep.in_recovery then return end
  local version = ctx.report.server.version_num or 0
  if version < 170000 then
    ctx.warn({ object_type = "slot", name = name,
      message = ("slot %s does not survive a failover: logical slots are synchronized to standbys "
        .. "only from PostgreSQL 17"):format(q(name)),
      fix = comment("after a failover, create the slot on the new primary and copy the tables "
        .. "again (changes between the two are otherwise lost)") })
    return
  end
  local slot = rep.slot
  if slot and slot.failover == false then
    ctx.warn({ object_type = "slot", name = name,
      message = ("slot %s has failover = false: it is not synchronized to standbys, so after a "
        .. "failover it is missing on the new primary"):format(q(name)),
      fix = comment(("recreate it with failover: SELECT pg_drop_replication_slot(%s); SELECT "
        .. "pg_create_logical_replication_slot(%s, 'pgoutput', false, false, true); or, on a "
        .. "replication connection: ALTER_REPLICATION_SLOT %s (FAILOVER true)"):format(
          literal(name), literal(name), q(name))) })
  elseif slot and slot.failover and rep.standby then
    checks.standby_ready(ctx, name, rep.standby)
  end
  if slot and slot.failover and (rep.synchronized_standby_slots or "") == "" then
    ctx.warn({ object_type = "slot", name = name,
      message = ("slot %s has failover = true but synchronized_standby_slots is empty: its "
        .. "consumer may receive changes a standby has not, and the slot is then unusable after a "
        .. "failover to it"):format(q(name)),
      fix = "ALTER SYSTEM SET synchronized_standby_slots = '<the standby''s physical slot>';\n"
        .. "SELECT pg_reload_conf();" })
  end
end

-- What the standby (the connection's `standby` target) lacks for the slot to
-- be there after a failover: the server's own failover-ready conditions.
function checks.standby_ready(ctx, name, sb)
  local function warn(message, fix)
    ctx.warn({ object_type = "slot", name = name,
      message = ("the standby is not ready to keep slot %s through a failover: %s"):format(q(name),
        message), fix = fix })
  end
  if not sb.ok then
    warn(("it could not be checked (%s)"):format(tostring(sb.error and (sb.error.code .. ": "
      .. sb.error.message))), comment(tostring(sb.error and sb.error.hint)))
    return
  end
  local reload = "\nSELECT pg_reload_conf(); -- on the standby"
  if not sb.in_recovery then
    warn("the server given as the standby is not in recovery", comment("name the standby"))
    return
  end
  if sb.sync_replication_slots ~= "on" then
    warn("sync_replication_slots is off", "ALTER SYSTEM SET sync_replication_slots = on;" .. reload)
  end
  if not sb.hot_standby_feedback then
    warn("hot_standby_feedback is off", "ALTER SYSTEM SET hot_standby_feedback = on;" .. reload)
  end
  if (sb.primary_slot_name or "") == "" then
    warn("primary_slot_name is not set (the standby must stream through a physical slot)",
      comment("create one on the primary (SELECT pg_create_physical_replication_slot('<name>');) "
        .. "and ALTER SYSTEM SET primary_slot_name = '<name>'; on the standby"))
  end
  if sb.conninfo_names_database == false then
    warn("primary_conninfo names no dbname (slot synchronization connects to a database)",
      comment("add dbname=<database> to primary_conninfo on the standby"))
  elseif sb.conninfo_names_database == nil then
    warn("whether primary_conninfo names a dbname cannot be seen by the role",
      comment(("GRANT pg_read_all_settings TO %s; -- on the primary, to see it"):format(q(ctx.role))))
  end
  local s = sb.slot
  if not s then
    warn("the slot is not on the standby yet", comment("with the above in place the slot sync "
      .. "worker copies it; SELECT pg_sync_replication_slots(); on the standby does it at once "
      .. "while sync_replication_slots is off"))
  elseif s.temporary or not s.synced or s.invalidation_reason or s.conflicting then
    warn(("the slot on the standby is %s"):format(s.invalidation_reason and ("invalidated ("
      .. s.invalidation_reason .. ")") or s.temporary and "temporary (not yet persisted: the "
      .. "standby has not caught up with it)" or "not a synchronized copy"), nil)
  end
end

--- Tables updated or deleted through the publication have a replica identity (table.replica_identity).
function checks.replica_identity(ctx, need)
  for _, t in ipairs(replication(ctx).tables or {}) do
    if t.replica_identity == "none" or t.replica_identity == "nothing" then
      ctx.error({ object_type = "table", schema = t.schema, name = t.name,
        message = ("no replica identity (%s): %s"):format(t.replica_identity == "none"
          and "default, and no primary key" or "REPLICA IDENTITY NOTHING", need.reason),
        fix = ("ALTER TABLE %s REPLICA IDENTITY FULL;\n"):format(q(t.schema, t.name))
          .. comment("or add a primary key (then REPLICA IDENTITY DEFAULT uses it)") })
    end
  end
end

--- Sequences owned by synced tables are not carried by logical replication (sequence.not_replicated).
function checks.sequences_not_replicated(ctx, need)
  for _, s in ipairs(ctx.report.sequences or {}) do
    local owner = s.owned_by
    if owner and ctx.table(owner.schema, owner.table) then
      ctx.warn({ object_type = "sequence", schema = s.schema, name = s.name,
        message = ("owned by %s: %s"):format(q(owner.schema, owner.table), need.reason),
        fix = ("SELECT setval(%s, <the source's value>);"):format(fix_sql.regclass(s.schema, s.name)) })
    end
  end
end

return checks
