--- The checks behind a job's requirements beyond grants: what the server
-- and session allow, what the executor proved, and what the job's
-- statements do to other tables (foreign keys, triggers). Each is named by
-- the `check` of a requirement (src/requirements.c) and called as
-- check(ctx, need); the report they read was made with the job
-- (neoconn.test opts.job).
local neoconn = require("neoconn")
local q = neoconn.quote_ident

local checks = {}

local comment = require("neoconn.fix_sql").comment
local never_writable = require("neoconn.writable").never_writable

local function key_of(schema, name)
  return schema .. "\0" .. name
end

-- Where a read-only default was set, and the SQL that undoes it for the
-- role (%s: the role, then the database).
local READ_ONLY_FIXES = {
  role = "ALTER ROLE %s RESET default_transaction_read_only;",
  ["role in database"] = "ALTER ROLE %s IN DATABASE %s RESET default_transaction_read_only;",
  database = "ALTER ROLE %s IN DATABASE %s SET default_transaction_read_only = off;",
  server = "ALTER ROLE %s SET default_transaction_read_only = off;",
}

--- A destination needs a read-write session: not a hot standby, no read-only default (session.read_write).
function checks.read_write_session(ctx, need)
  local server, session = ctx.report.server, ctx.report.session
  if server.in_hot_standby then
    ctx.error({ object_type = "connection", name = ctx.name,
      message = "the server is a hot standby (a read-only replica): " .. need.reason,
      fix = comment("connect to the primary: name it in host, or add target_session_attrs="
        .. "read-write to the connection") })
  elseif session.default_transaction_read_only then
    local source = session.read_only_source
    local fix = READ_ONLY_FIXES[source]
    ctx.error({ object_type = "connection", name = ctx.name,
      message = ("sessions of role %s are read-only (default_transaction_read_only = on, set "
        .. "for the %s): %s"):format(q(session.session_user), source, need.reason),
      fix = fix and fix:format(q(session.session_user), q(session.database))
        or comment("remove default_transaction_read_only from the connection's options "
          .. "(or PGOPTIONS)") })
  end
end

--- An upsert needs a primary key on each table (table.primary_key).
function checks.primary_key(ctx, need)
  for t in ctx.tables() do
    if never_writable(ctx, t) then
      local _ = t -- blocked for that (checks.writable)
    elseif t.kind == "view" then
      ctx.warn({ object_type = "table", schema = t.schema, name = t.name,
        message = "an upsert through a view finds the existing row by its base table's key: "
          .. "not proven by the executor",
        fix = comment("check the upsert on " .. q(t.schema, t.name) .. " as the role") })
    elseif t.primary_key == nil then
      ctx.error({ object_type = "table", schema = t.schema, name = t.name,
        message = "no primary key: " .. need.reason,
        fix = comment(("add one: ALTER TABLE %s ADD PRIMARY KEY (<columns>);")
          :format(q(t.schema, t.name))) })
    end
  end
end

--- Relations no statement can write are blocked, with their options (table.writable).
function checks.writable(ctx, need)
  for t in ctx.tables() do
    local why = never_writable(ctx, t)
    if why then
      local message = ("%s is %s: no GRANT makes it writable"):format(q(t.schema, t.name), why)
      if t.refused then -- what the executor said proves it
        message = ("%s (proven: %s)"):format(message, t.refused.message)
      end
      local options = {
        ("no GRANT makes %s writable; choose one:"):format(q(t.schema, t.name)),
        ("- leave it out of the job: add %s to exclude (the config's exclude list, or "
          .. "--exclude)"):format(q(t.schema, t.name)),
        "- write to the table it reads from instead",
      }
      if t.kind == "view" then
        options[#options + 1] = "- give the view an INSTEAD OF trigger for the job's statements, "
          .. "or make it automatically updatable"
      elseif t.kind == "materialized view" then
        options[#options + 1] = "- sync its source tables and REFRESH MATERIALIZED VIEW after "
          .. "each sync"
      else
        options[#options + 1] = "- use a foreign data wrapper that writes (postgres_fdw does)"
      end
      ctx.error({ object_type = "table", schema = t.schema, name = t.name,
        message = message .. " (" .. need.reason .. ")",
        fix = comment(table.concat(options, "\n")) })
    end
  end
end

-- The privileges the job's grant requirements ask of table t, and whether
-- the grant checks find them all held (the policy's own test).
local function table_grants(ctx, t)
  local list, seen, held = {}, {}, true
  for _, need in ipairs(ctx.requirements) do
    if need.check == "grant" and need.object_type == "table" then
      held = held and #ctx.missing_privileges(t, need) == 0
      for _, p in ipairs(need.privileges) do
        if not seen[p] then
          seen[p] = true
          list[#list + 1] = p
        end
      end
    end
  end
  return list, held
end

-- The fix for a statement the executor refused on table t.
local function executor_fix(ctx, t)
  local refused = t.refused
  local privileges, held = table_grants(ctx, t)
  local own = refused.message == "permission denied for table " .. t.name
    or refused.message == "permission denied for view " .. t.name
  local schema = ctx.schema(t.schema)
  if refused.sqlstate == "42501" and refused.message == "permission denied for schema " .. t.schema
    and schema and not schema.usage and not ctx.disabled["schema.usage"] then
    return nil -- the schema.usage finding fixes it
  end
  if refused.sqlstate == "42501" and own then
    if not held then return nil end -- the grant findings fix it
    -- Held through a predefined role (pg_write_all_data), which the
    -- executor does not consult for a statement needing INSERT and UPDATE
    -- when one of them is granted directly: grant them all directly.
    return ctx.grant(privileges, "table", t.schema, t.name)
  end
  if refused.sqlstate == "42501" and (t.kind == "view" or t.kind == "materialized view") then
    return comment(("%s is a view: its base tables are checked as its owner %s (as the role "
      .. "for a security_invoker view); grant the privilege named above to the one that "
      .. "needs it"):format(q(t.schema, t.name), q(t.owner.name)))
  end
  return comment("run the statement as the role to see what it needs:\n" .. t.statement .. ";")
end

--- The executor proof: its status, and each statement it refused (table.statements).
function checks.executor(ctx)
  local proof = ctx.report.proof
  if proof.status == "unavailable" then
    ctx.warn({ object_type = "connection", name = ctx.name,
      message = "the executor could not prove the job's statements (" .. proof.error.message
        .. "): the verdicts rest on the catalog",
      fix = comment("the proof runs a DO block (plpgsql) as the role") })
  elseif proof.status == "over_limit" then
    ctx.warn({ object_type = "connection", name = ctx.name,
      message = ("the job has %d tables, more than the executor proves by default (%d): their "
        .. "verdicts rest on the catalog"):format(proof.tables, proof.limit),
      fix = comment("prove them all with proof = true (--proof on)") })
  elseif proof.status == "out_of_time" then
    ctx.warn({ object_type = "connection", name = ctx.name,
      message = "the executor proof ran out of time: some verdicts rest on the catalog",
      fix = comment("give the test a longer timeout") })
  end
  for t in ctx.tables() do
    if t.refused and not never_writable(ctx, t) then -- that finding says it
      ctx.error({ object_type = "table", schema = t.schema, name = t.name,
        message = ("the server refuses the job's statement: %s (SQLSTATE %s)")
          :format(t.refused.message, t.refused.sqlstate),
        fix = executor_fix(ctx, t) })
    end
  end
end

--- Triggers on the job's statements that run SECURITY INVOKER functions as the role (table.triggers).
function checks.invoker_triggers(ctx, need)
  for _, tg in ipairs(ctx.report.triggers or {}) do
    local fn = tg["function"]
    if ctx.table(tg.on.schema, tg.on.table) and not fn.security_definer
      and fn.language ~= "internal" then
      ctx.warn({ object_type = "table", schema = tg.on.schema, name = tg.on.table,
        message = ("trigger %s (%s %s, for each %s) runs %s() as the role (SECURITY INVOKER, "
          .. "%s): %s"):format(q(tg.name), tg.timing, table.concat(tg.events, " or "), tg.level,
          q(fn.schema, fn.name), fn.language, need.reason),
        fix = comment(("grant the role what %s() reads and writes, or run it as its owner: "
          .. "ALTER FUNCTION %s() SECURITY DEFINER;"):format(q(fn.schema, fn.name),
          q(fn.schema, fn.name))) })
    end
  end
end

--- Views and foreign tables a TRUNCATE refuses (table.truncatable).
function checks.truncatable(ctx)
  for t in ctx.tables() do
    if never_writable(ctx, t) then
      -- Blocked for that, with its options: one finding for one cause.
      local _ = t
    elseif t.kind == "view" or t.kind == "materialized view" then
      ctx.error({ object_type = "table", schema = t.schema, name = t.name,
        message = "a " .. t.kind .. " cannot be truncated",
        fix = comment("leave " .. q(t.schema, t.name) .. " out of a job that truncates") })
    elseif t.kind == "foreign table" then
      ctx.warn({ object_type = "table", schema = t.schema, name = t.name,
        message = "TRUNCATE works on a foreign table only where its foreign data wrapper "
          .. "supports it (postgres_fdw from PostgreSQL 14)",
        fix = comment("check the foreign data wrapper of " .. q(t.schema, t.name)) })
    end
  end
end

--- TRUNCATE ... CASCADE needs TRUNCATE on every table it reaches (table.truncate_cascade).
function checks.cascade_grants(ctx, need)
  local outside = {} -- job table -> names of the tables outside the job it empties
  for _, r in ipairs(ctx.report.truncate_cascade or {}) do
    local from = r.from
    if not r.privileges.TRUNCATE then
      ctx.error({ object_type = "table", schema = from.schema, name = from.table,
        missing = need.privileges,
        message = ("TRUNCATE ... CASCADE reaches %s, which the role may not truncate")
          :format(q(r.schema, r.name)),
        fix = ctx.grant(need.privileges, "table", r.schema, r.name) })
    end
    if not ctx.table(r.schema, r.name) then
      local k = key_of(from.schema, from.table)
      outside[k] = outside[k] or { from = from }
      table.insert(outside[k], q(r.schema, r.name))
    end
  end
  for t in ctx.tables() do
    local o = outside[key_of(t.schema, t.name)]
    if o then
      ctx.warn({ object_type = "table", schema = t.schema, name = t.name,
        message = "TRUNCATE ... CASCADE also empties tables outside the job: "
          .. table.concat(o, ", "),
        fix = comment("add them to the job, or truncate without cascade") })
    end
  end
end

--- The job truncates its usable tables in one TRUNCATE: a table referenced
-- from a table outside that set is blocked, and blocking it may block the
-- tables it references in turn, so this runs on the verdicts until they
-- settle (policy.summarize).
function checks.no_outside_references(ctx, need)
  ctx.after_verdicts(function(usable, emit)
    local blockers, order = {}, {}
    for _, fk in ipairs(ctx.report.foreign_keys or {}) do
      local target = key_of(fk.references.schema, fk.references.table)
      if usable[target] and not usable[key_of(fk.schema, fk.name)] then
        if not blockers[target] then
          blockers[target] = { schema = fk.references.schema, name = fk.references.table }
          order[#order + 1] = target
        end
        local where = usable[key_of(fk.schema, fk.name)] == nil and "outside the job"
          or "blocked in this job"
        table.insert(blockers[target], q(fk.schema, fk.name) .. " (" .. where .. ")")
      end
    end
    for _, target in ipairs(order) do
      local b = blockers[target]
      emit({ level = "error", rule = need.id, object_type = "table", schema = b.schema,
        name = b.name, missing = {},
        message = "TRUNCATE fails: referenced by a foreign key from " .. table.concat(b, ", "),
        fix = comment("add the referencing tables to the job, or truncate = \"cascade\"") })
    end
  end)
end

return checks
