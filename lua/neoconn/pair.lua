--- The table pairs of a job: each source table in the job's scope, the
-- destination table it is copied into (the same schema and name, or the
-- job's map), and the columns copied. Pure data: the checks
-- (pair_checks.lua) judge it.
local layout = require("neoconn.layout")

local pair = {}
local key_of = layout.key_of

--- Whether the job's scope (tables, schemas, exclude; none: everything
-- the source's test read) holds schema.name.
function pair.in_scope(job, schema, name)
  for _, e in ipairs(job.exclude or {}) do
    if e.schema == schema and (e.name == nil or e.name == name) then return false end
  end
  if not job.tables and not job.schemas then return true end
  for _, s in ipairs(job.schemas or {}) do
    if s == schema then return true end
  end
  for _, t in ipairs(job.tables or {}) do
    if t.schema == schema and t.name == name then return true end
  end
  return false
end

--- Where the job copies source table schema.name: destination schema and
-- name (a table's own mapping first, then its schema's).
function pair.destination_of(job, schema, name)
  for _, m in ipairs(job.map or {}) do
    if m.from.name and m.from.schema == schema and m.from.name == name then
      return m.to.schema, m.to.name
    end
  end
  for _, m in ipairs(job.map or {}) do
    if not m.from.name and m.from.schema == schema then return m.to.schema, name end
  end
  return schema, name
end

--- Whether a test's scope (the settings it was run with) read schema.name.
function pair.was_read(scope, schema, name)
  return pair.in_scope({ tables = scope.tables, schemas = scope.schemas,
    exclude = scope.exclude }, schema, name)
end

--- The pairs of a job over the two sides' reports, in source order:
-- { source = { schema, name }, destination = { schema, name }, from =
-- source layout table, to = destination layout table (nil: missing),
-- key = the destination's key, copied = { { source = column, name =
-- destination column name } } (a generated source column is not copied) }.
function pair.of(job, source_report, destination_report)
  local from, to = layout.of(source_report), layout.of(destination_report)
  local pairs_list = {}
  for _, t in ipairs(source_report.tables or {}) do
    if pair.in_scope(job, t.schema, t.name) then
      local ds, dn = pair.destination_of(job, t.schema, t.name)
      local src = from.tables[key_of(t.schema, t.name)]
        or { schema = t.schema, name = t.name, columns = {}, column = {}, constraints = {} }
      local renames = (job.columns or {})[key_of(t.schema, t.name)] or {}
      local copied = {}
      for _, c in ipairs(src.columns) do
        if not c.generated then copied[#copied + 1] = { source = c, name = renames[c.name] or c.name } end
      end
      pairs_list[#pairs_list + 1] = { source = { schema = t.schema, name = t.name },
        destination = { schema = ds, name = dn }, from = src, to = to.tables[key_of(ds, dn)],
        key = key_of(ds, dn), copied = copied }
    end
  end
  return pairs_list, from, to
end

return pair
