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

--- The login role itself needs REPLICATION (replication.role).
function checks.replication_role(ctx, need)
  local role = replication(ctx).login_role or {}
  if role.replication or role.superuser then return end
  local groups = role.groups_with_replication or {}
  local message = ("role %s lacks REPLICATION"):format(q(role.name or ctx.role))
  if #groups > 0 then
    local quoted = {}
    for i, g in ipairs(groups) do quoted[i] = q(g) end
    message = message .. (" (it belongs to %s, which has it, but the attribute is not inherited)")
      :format(table.concat(quoted, ", "))
  end
  ctx.error({ object_type = "role", name = role.name or ctx.role, missing = { "REPLICATION" },
    message = message .. ": " .. need.reason,
    fix = ("ALTER ROLE %s REPLICATION;"):format(q(role.name or ctx.role)) })
end

--- The replication connection opened and IDENTIFY_SYSTEM answered (replication.connection).
function checks.replication_connection(ctx, need)
  local rep = replication(ctx)
  local connection = rep.connection or {}
  if connection.ok then return end
  local err = connection.error or {}
  local role = rep.login_role or {}
  -- Already said by replication_role, with its fix.
  if err.code == "replication_not_allowed" and not (role.replication or role.superuser) then return end
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
  for _, t in ipairs(tables) do
    local function refuse(message)
      ctx.error({ object_type = "table", schema = t.schema, name = t.name, message = message,
        fix = t.published
          and ("ALTER PUBLICATION %s DROP TABLE %s;\nALTER PUBLICATION %s ADD TABLE %s;")
            :format(q(name), q(t.schema, t.name), q(name), q(t.schema, t.name))
          or ("ALTER PUBLICATION %s ADD TABLE %s;"):format(q(name), q(t.schema, t.name)) })
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
