--- The `jobs` section of a config: each job names a source and a
-- destination connection, its scope, a mapping of names, and the job's
-- options. A connection is tested once however many jobs use it: a job's
-- options become its destination's (jobs disagreeing on them are a config
-- error), and a connection without a scope of its own reads its jobs'
-- tables, with their layout (neoconn.test opts.layout).
local neoconn = require("neoconn")

local jobs_config = {}

local JOB_KEYS = { source = true, destination = true, tables = true, schemas = true,
  exclude = true, map = true, columns = true, rules = true, disable_rules = true }
for _, option in ipairs(neoconn.job_options()) do
  for _, kind in ipairs(option.kinds) do
    if kind == "job" then JOB_KEYS[option.name] = "option" end
  end
end

-- map: "schema" = "schema" and "schema.table" = "schema.table".
local function check_map(h, path, map)
  if type(map) ~= "table" then
    return nil, h.error(path, "expected a table of \"source name\" = \"destination name\", got "
      .. h.describe(map))
  end
  local out, keys = {}, {}
  for k in pairs(map) do
    if type(k) ~= "string" then
      return nil, h.error(path, "expected names as keys, found " .. h.describe(k))
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = map[k]
    local ks, kn = h.parse(k)
    if not kn then return nil, h.error(path, ks) end
    if type(v) ~= "string" then
      return nil, h.error(path .. "." .. k, "expected a name, got " .. h.describe(v))
    end
    local vs, vn = h.parse(v)
    if not vn then return nil, h.error(path .. "." .. k, vs) end
    if (ks == nil) ~= (vs == nil) then
      return nil, h.error(path .. "." .. k, "a schema maps to a schema, a schema.table to a "
        .. "schema.table")
    end
    out[#out + 1] = ks and { from = { schema = ks, name = kn }, to = { schema = vs, name = vn } }
      or { from = { schema = kn }, to = { schema = vn } }
  end
  return out
end

-- columns: { ["schema.table"] = { source_column = "destination_column" } }.
local function check_columns(h, path, columns)
  if type(columns) ~= "table" then
    return nil, h.error(path, "expected a table of \"schema.table\" = { source = \"destination\" }, "
      .. "got " .. h.describe(columns))
  end
  local out = {}
  for k, renames in pairs(columns) do
    local schema, name
    if type(k) == "string" then schema, name = h.parse(k) end
    if not name then
      return nil, h.error(path, schema or ("expected table names as keys, found " .. h.describe(k)))
    end
    local where = path .. "." .. k
    if type(renames) ~= "table" then
      return nil, h.error(where, "expected a table of source = \"destination\" column names, got "
        .. h.describe(renames))
    end
    local copy = {}
    for from, to in pairs(renames) do
      if type(from) ~= "string" or type(to) ~= "string" or from == "" or to == ""
        or from:find("\0", 1, true) or to:find("\0", 1, true) then
        return nil, h.error(where, ("expected column names, got %s = %s"):format(h.describe(from),
          h.describe(to)))
      end
      copy[from] = to
    end
    out[(schema or "public") .. "\0" .. name] = copy
  end
  return out
end

local function check_job(h, name, spec, by_name)
  local path = "jobs." .. name
  if type(spec) ~= "table" then return nil, h.error(path, "expected a table, got " .. h.describe(spec)) end
  local keys = {}
  for k in pairs(spec) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do
    if not JOB_KEYS[k] then return nil, h.error(path .. "." .. k, "unknown key") end
    if JOB_KEYS[k] == "option" then
      local ok, why = h.option_keys[k].check(spec[k])
      if not ok then return nil, h.error(path .. "." .. k, why .. ", got " .. h.describe(spec[k])) end
    end
  end
  local job = { name = name, options = {}, rules = {}, disable_rules = {} }
  for _, side in ipairs({ "source", "destination" }) do
    local conn = by_name[spec[side]]
    if type(spec[side]) ~= "string" or not conn then
      return nil, h.error(path .. "." .. side, "expected the name of a connection, got "
        .. h.describe(spec[side]))
    end
    if conn.kind ~= side then
      return nil, h.error(path .. "." .. side, ("connection %s is a %s"):format(conn.name, conn.kind))
    end
    job[side] = conn.name
  end
  for k, kind in pairs(JOB_KEYS) do
    if kind == "option" then job.options[k] = spec[k] end
  end
  local err
  if spec.tables ~= nil then
    job.tables, err = h.entries(path .. ".tables", spec.tables, "tables")
    if not job.tables then return nil, err end
  end
  if spec.schemas ~= nil then
    job.schemas, err = h.names(path .. ".schemas", spec.schemas)
    if not job.schemas then return nil, err end
  end
  if spec.exclude ~= nil then
    job.exclude, err = h.entries(path .. ".exclude", spec.exclude, "exclude")
    if not job.exclude then return nil, err end
  end
  if spec.map ~= nil then
    job.map, err = check_map(h, path .. ".map", spec.map)
    if not job.map then return nil, err end
  end
  if spec.columns ~= nil then
    job.columns, err = check_columns(h, path .. ".columns", spec.columns)
    if not job.columns then return nil, err end
  end
  return h.lists(path .. ".", spec, job)
end

-- A destination name of a job's source schema and table.
local function mapped(job, schema, name)
  return require("neoconn.pair").destination_of(job, schema, name)
end

-- A connection a job uses reads the job's tables when it has no scope of
-- its own (every job's, or the whole database if one job has none).
local function derive_scope(conn, jobs, side)
  if conn.tables or conn.schemas then return end
  local tables, schemas, whole = {}, {}, false
  for _, job in ipairs(jobs) do
    if not job.tables and not job.schemas then whole = true end
    for _, t in ipairs(job.tables or {}) do
      local s, n = t.schema, t.name
      if side == "destination" then s, n = mapped(job, s, n) end
      tables[#tables + 1] = { schema = s, name = n }
    end
    for _, s in ipairs(job.schemas or {}) do
      schemas[#schemas + 1] = side == "destination" and (mapped(job, s, "")) or s
    end
  end
  if whole then return end
  conn.tables = #tables > 0 and tables or nil
  conn.schemas = #schemas > 0 and schemas or nil
  if #jobs == 1 and jobs[1].exclude and not conn.exclude then
    conn.exclude = {}
    for i, e in ipairs(jobs[1].exclude) do
      local s, n = e.schema, e.name
      if side == "destination" then s, n = mapped(jobs[1], s, n or "") end
      conn.exclude[i] = { schema = s, name = e.name and n or nil }
    end
  end
end

--- Checks the jobs section against the checked connections (which it
-- completes: options, scope, layout). h: the config's helpers. Returns the
-- jobs in name order, or nil and the error.
function jobs_config.check(section, connections, h)
  if type(section) ~= "table" then
    return nil, h.error("jobs", "expected a table of name = { source = ..., destination = ... }, got "
      .. h.describe(section))
  end
  local by_name, names, jobs = {}, {}, {}
  for _, c in ipairs(connections) do by_name[c.name] = c end
  for name in pairs(section) do
    if type(name) ~= "string" or not name:match("^[%w_%.%-]+$") then
      return nil, h.error("jobs", "job names must be strings of letters, digits, _ . -, got "
        .. h.describe(name))
    end
    names[#names + 1] = name
  end
  table.sort(names)
  local set_by, users = {}, {}
  for _, name in ipairs(names) do
    local job, err = check_job(h, name, section[name], by_name)
    if not job then return nil, err end
    jobs[#jobs + 1] = job
    local dst = by_name[job.destination]
    set_by[dst.name] = set_by[dst.name] or {}
    for k, v in pairs(job.options) do
      local had, who = dst.options[k], set_by[dst.name][k]
      if had ~= nil and had ~= v then
        return nil, h.error("jobs." .. name .. "." .. k, ("%s differs from %s (%s): a connection "
          .. "is tested once, with one set of options; give this job a connection of its own")
          :format(h.describe(v), who and ("jobs." .. who .. "." .. k) or ("connections." .. dst.name
            .. "." .. k), h.describe(had)))
      end
      dst.options[k] = v
      set_by[dst.name][k] = set_by[dst.name][k] or name
    end
    for _, side in ipairs({ "source", "destination" }) do
      users[job[side]] = users[job[side]] or { side = side, jobs = {} }
      table.insert(users[job[side]].jobs, job)
    end
  end
  for conn_name, use in pairs(users) do
    local conn = by_name[conn_name]
    derive_scope(conn, use.jobs, use.side)
    conn.layout = true
  end
  for _, job in ipairs(jobs) do
    local dst = by_name[job.destination]
    for k in pairs(JOB_KEYS) do
      if JOB_KEYS[k] == "option" then job.options[k] = dst.options[k] end
    end
  end
  return jobs
end

return jobs_config
