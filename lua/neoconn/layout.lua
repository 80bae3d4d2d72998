--- A side of a job as its test read it (neoconn.test opts.layout): the
-- tables' columns and constraints, the types they use, and for a
-- destination the types its server knows. Pure data from report.layout.
local layout = {}

local function key_of(schema, name) return schema .. "\0" .. name end
layout.key_of = key_of

--- The layout of a report: { tables = { [key] = table }, types = { [name] =
-- type }, known = set of type names or nil, encoding, version_num }, each
-- table { schema, name, columns (in order), column = { [name] = column },
-- constraints = { constraint or unique index } }.
function layout.of(report)
  local tables, types, known = {}, {}, nil
  for _, row in ipairs(report.layout or {}) do
    if row.what == "type" then
      types[row.name] = row
    elseif row.what == "known_types" then
      known = {}
      for _, name in ipairs(row.labels or {}) do known[name] = true end
    elseif row.schema and row.table then
      local key = key_of(row.schema, row.table)
      local t = tables[key]
      if not t then
        t = { schema = row.schema, name = row.table, columns = {}, column = {}, constraints = {} }
        tables[key] = t
      end
      if row.what == "column" then
        t.columns[#t.columns + 1] = row
        t.column[row.name] = row
      else
        t.constraints[#t.constraints + 1] = row
      end
    end
  end
  for _, t in pairs(tables) do
    table.sort(t.columns, function(a, b) return a.position < b.position end)
  end
  local server = report.server or {}
  return { tables = tables, types = types, known = known, encoding = server.encoding,
    version_num = server.version_num }
end

return layout
