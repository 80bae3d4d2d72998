--- The checks of what the server evaluates for each row a job writes or
-- reads, beyond the plan the executor proof sees (report.row_checks, read
-- by src/row_checks.c): functions it calls per row, the owners foreign-key
-- checks run as, the arbiters ON CONFLICT refuses, the row-level security
-- policies that filter. Each is named by the `check` of a requirement
-- (src/requirements.c) and called as check(ctx, need).
local neoconn = require("neoconn")
local q = neoconn.quote_ident
local comment = require("neoconn.fix_sql").comment

local checks = {}

local function rows_of(ctx, kind)
  local list = {}
  for _, r in ipairs(ctx.report.row_checks or {}) do
    if r.check == kind and ctx.table(r.schema, r.name) then list[#list + 1] = r end
  end
  return list
end

-- What calls a function for each row, in words.
local CALLERS = { check = "CHECK constraint %s", domain = "the domain of column %s",
  generated = "generated column %s", index = "index %s", predicate = "the predicate of partial index %s" }

local function function_text(on)
  return ("%s(%s)"):format(q(on.schema, on.name), on.arguments or "")
end

local function grant_to(role, privilege, on)
  if on.type == "schema" then
    return ("GRANT %s ON SCHEMA %s TO %s;"):format(privilege, q(on.name), q(role))
  elseif on.type == "function" then
    return ("GRANT EXECUTE ON FUNCTION %s TO %s;"):format(function_text(on), q(role))
  end
  return ("GRANT %s ON TABLE %s TO %s;"):format(privilege, q(on.schema, on.name), q(role))
end

local function object_text(on)
  if on.type == "function" then return "function " .. function_text(on) end
  if on.type == "schema" then return "schema " .. q(on.name) end
  return "table " .. q(on.schema, on.name)
end

--- Functions the server calls for each written row, which the role may not execute (row.execute).
function checks.row_functions(ctx, need)
  for _, r in ipairs(rows_of(ctx, "execute")) do
    local caller = (CALLERS[r.via] or "%s"):format(q(r.object))
    ctx.error({ object_type = "table", schema = r.schema, name = r.name, missing = { "EXECUTE" },
      message = ("%s calls %s, which %s may not EXECUTE: %s"):format(caller, function_text(r.on),
        q(r.role), need.reason),
      fix = grant_to(r.role, "EXECUTE", r.on) })
  end
end

--- Foreign keys checked as another table's owner, who lacks a privilege (row.foreign_keys).
function checks.foreign_key_owners(ctx, need)
  for _, r in ipairs(rows_of(ctx, "foreign_key")) do
    local where = r.via == "references"
      and ("foreign key %s: the server looks up each written row's key as the referenced table's "
        .. "owner %s, who lacks %s on %s"):format(q(r.object), q(r.role), r.missing, object_text(r.on))
      or ("foreign key %s references this table: an upsert that changes a referenced value runs "
        .. "its check on the referencing table as that table's owner %s, who lacks %s on %s")
        :format(q(r.object), q(r.role), r.missing, object_text(r.on))
    ctx.error({ object_type = "table", schema = r.schema, name = r.name, missing = {},
      message = where .. ": " .. need.reason, fix = grant_to(r.role, r.missing, r.on) })
  end
end

--- DEFERRABLE unique keys an ON CONFLICT cannot use as arbiters (row.arbiters).
function checks.arbiters(ctx, need)
  local upsert = (ctx.report.job or {}).on_conflict == "update"
  for _, r in ipairs(rows_of(ctx, "arbiter")) do
    if not upsert or r.via == "primary key" then
      local t = q(r.schema, r.name)
      ctx.error({ object_type = "table", schema = r.schema, name = r.name, missing = {},
        message = ("%s %s is DEFERRABLE (%s): %s"):format(r.via, q(r.object), r.expression, need.reason),
        fix = comment(("make it NOT DEFERRABLE, as the table's owner (unique and primary keys cannot "
          .. "be altered in place):\nALTER TABLE %s DROP CONSTRAINT %s, ADD CONSTRAINT %s %s;")
          :format(t, q(r.object), q(r.object), (r.expression or ""):gsub("%s*DEFERRABLE.*$", ""))) })
    end
  end
end

-- The expression a policy holds a row to for a command: a read (USING) or
-- a write (WITH CHECK; a FOR ALL or UPDATE policy without one uses USING).
local function expression_for(policy, writes)
  if writes then return policy.with_check or policy.expression or "true" end
  return policy.expression or "true"
end

-- The commands of a job's statements, and whether each writes.
local function job_commands(ctx)
  local job = ctx.report.job or {}
  if job.kind == "source" then return { { "SELECT", false } } end
  local list = { { "INSERT", true } }
  if job.on_conflict == "update" then
    list[#list + 1] = { "UPDATE", false }
    list[#list + 1] = { "UPDATE", true }
    list[#list + 1] = { "SELECT", false }
  end
  return list
end

--- Row-level security policies that let the role see or write only some rows (policy.filters_rows).
function checks.filtering_policies(ctx, need)
  local by_table, order = {}, {}
  for _, p in ipairs(rows_of(ctx, "policy")) do
    local key = p.schema .. "\0" .. p.name
    if not by_table[key] then
      by_table[key] = { schema = p.schema, name = p.name }
      order[#order + 1] = key
    end
    table.insert(by_table[key], p)
  end
  for _, key in ipairs(order) do
    local t, named, seen = by_table[key], {}, {}
    local filters = false
    for _, command in ipairs(job_commands(ctx)) do
      local permissive_all, permissive_any = false, false
      for _, p in ipairs(t) do
        if p.command == command[1] or p.command == "ALL" then
          local expression = expression_for(p, command[2])
          if p.permissive then
            permissive_any = true
            permissive_all = permissive_all or expression == "true"
          end
          if expression ~= "true" then
            if not seen[p.object] then
              seen[p.object] = true
              named[#named + 1] = ("%s %s (%s) %s %s"):format(p.via, q(p.object), p.command,
                command[2] and "WITH CHECK" or "USING", expression)
            end
          end
          filters = filters or (not p.permissive and expression ~= "true")
        end
      end
      -- No permissive policy at all is an error of its own (policy.*).
      filters = filters or (permissive_any and not permissive_all)
    end
    if filters then
      local role = q(ctx.role)
      ctx.warn({ object_type = "table", schema = t.schema, name = t.name,
        message = ("row-level security admits only some rows for %s: %s: %s"):format(role,
          table.concat(named, "; "), need.reason),
        fix = comment(("no GRANT changes what a policy admits; the table's owner may decide:\n"
          .. "ALTER ROLE %s BYPASSRLS;\nor a permissive policy for the role: CREATE POLICY "
          .. "neoconn_all ON %s TO %s USING (true) WITH CHECK (true);\n(a restrictive policy "
          .. "limits every role it applies to: only altering or dropping it lifts it)")
          :format(role, q(t.schema, t.name), role)) })
    end
  end
end

return checks
