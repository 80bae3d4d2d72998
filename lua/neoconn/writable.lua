--- Relations a destination job can never write, whatever the grants: a
-- view the server cannot write through, a materialized view, a foreign
-- table whose wrapper does not write. Read from the report's `writes`
-- (pg_relation_is_updatable); used by the checks and the grant rules alike.
local writable = {}

--- Why the job can never write relation t (a view, materialized view or
-- foreign table, as the server's pg_relation_is_updatable says), or nil.
-- Only a destination writes.
function writable.never_writable(ctx, t)
  if ctx.kind ~= "destination" or t.writes == nil then return nil end
  local upsert = ctx.settings.options and ctx.settings.options.on_conflict == "update"
  local lacks = {}
  if not t.writes.insert then lacks[#lacks + 1] = "INSERT" end
  if upsert and not t.writes.update then lacks[#lacks + 1] = "UPDATE" end
  if #lacks == 0 then return nil end
  local what = table.concat(lacks, " or ")
  if t.kind == "materialized view" then
    return "a materialized view: no statement but REFRESH MATERIALIZED VIEW changes it"
  elseif t.kind == "foreign table" then
    return ("a foreign table whose foreign data wrapper does not support %s"):format(what)
  end
  return ("a view the server cannot %s through: it is not automatically updatable (one base "
    .. "relation; no GROUP BY, DISTINCT, aggregate, window function, set operation, LIMIT; "
    .. "for UPDATE a column it maps straight to one) and has no INSTEAD OF %s trigger or DO "
    .. "INSTEAD rule"):format(what, what)
end

return writable
