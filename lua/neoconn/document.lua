--- The JSON document of checked connections: a versioned contract
-- (schema/neoconn-check.schema.json), what `neoconn check --json` prints
-- and `neoconn.check` returns. Every object's keys come in a fixed order:
-- the order below, then any other key in byte order, so two runs over the
-- same state give the same text.
local json = require("dkjson")

local document = {}

--- The version of the document's format: a key added keeps it, a key
-- removed, renamed or given another type or meaning raises it.
document.FORMAT = 1

local ORDER = {
  document = { "format", "ok", "shard", "summary", "connections", "jobs" },
  shard = { "index", "count" },
  summary = { "connections", "pass", "fail", "not_tested", "jobs" },
  job_summary = { "jobs", "pass", "fail", "not_tested" },
  job = { "name", "source", "destination", "verdict", "ok", "options", "tables_copyable",
    "tables_total", "order", "findings", "tables", "fix_sql" },
  pair = { "source", "destination", "copyable", "blocked_by", "warnings" },
  name = { "schema", "name" },
  connection = { "name", "kind", "verdict", "ok", "endpoint", "server", "tls", "tables_usable",
    "tables_total", "error", "stages", "findings", "tables", "fix_sql" },
  endpoint = { "host", "hostaddr", "port", "dbname", "user", "sslmode" },
  server = { "version", "version_num" },
  tls = { "in_use", "protocol", "cipher", "server_certificate", "client_certificate" },
  certificate = { "subject", "issuer", "not_after", "expires_in" },
  error = { "code", "stage", "sqlstate", "message", "hint", "tried" },
  stage = { "name", "ok", "skipped", "ms" },
  finding = { "level", "rule", "object_type", "schema", "name", "missing", "message", "fix" },
  table = { "schema", "name", "usable", "proof", "blocked_by" },
}

-- t as an object of a kind: its keys in the kind's order, then the others
-- sorted (the metatable tells dkjson; Lua reads t as before).
local function object(kind, t)
  local order, listed = {}, {}
  for _, k in ipairs(ORDER[kind]) do
    listed[k] = true
    if t[k] ~= nil then order[#order + 1] = k end
  end
  local rest = {}
  for k in pairs(t) do
    if not listed[k] then rest[#rest + 1] = k end
  end
  table.sort(rest)
  for _, k in ipairs(rest) do order[#order + 1] = k end
  return setmetatable(t, { __jsonorder = order })
end

-- Lists stay lists in JSON even when empty.
local function array(t)
  return setmetatable(t or {}, { __jsontype = "array" })
end

local function copy_array(list, fn)
  local out = array()
  for i, v in ipairs(list or {}) do out[i] = fn and fn(v) or v end
  return out
end

--- A check result's verdict: "pass", "fail" (an error finding) or
-- "not_tested" (its connection or introspection failed).
function document.verdict(r)
  if r.error then return "not_tested" end
  return r.ok and "pass" or "fail"
end

--- How many of a check result's tables are usable.
function document.tables_usable(r)
  local usable = 0
  for _, t in ipairs(r.tables or {}) do
    if t.usable then usable = usable + 1 end
  end
  return usable
end

local function finding(f)
  return object("finding", { level = f.level, rule = f.rule, object_type = f.object_type,
    schema = f.schema, name = f.name, missing = copy_array(f.missing), message = f.message,
    fix = f.fix })
end

local function certificate(c)
  return c and object("certificate", { subject = c.subject, issuer = c.issuer,
    not_after = c.not_after, expires_in = c.expires_in }) or nil
end

local function connection(r)
  local report = r.report or {}
  local session = report.session
  local e = r.endpoint or {}
  return object("connection", {
    name = r.name, kind = r.kind, verdict = document.verdict(r), ok = r.ok and true or false,
    endpoint = object("endpoint", { host = e.host, hostaddr = e.hostaddr, port = e.port,
      dbname = e.dbname, user = e.user, sslmode = e.sslmode }),
    server = report.server and object("server", { version = report.server.version,
      version_num = report.server.version_num }) or json.null,
    tls = session and session.ssl and object("tls", { in_use = session.ssl.in_use,
      protocol = session.ssl.protocol, cipher = session.ssl.cipher,
      server_certificate = certificate(session.ssl.server_certificate),
      client_certificate = certificate(session.ssl.client_certificate) }) or json.null,
    tables_usable = document.tables_usable(r),
    tables_total = #(r.tables or {}),
    error = r.error and object("error", { code = r.error.code, stage = r.error.stage,
      sqlstate = r.error.sqlstate, message = r.error.message, hint = r.error.hint,
      tried = r.error.tried and copy_array(r.error.tried) }) or json.null,
    stages = copy_array(r.stages, function(s)
      return object("stage", { name = s.name, ok = s.ok, skipped = s.skipped, ms = s.ms })
    end),
    findings = copy_array(r.findings, finding),
    tables = copy_array(r.tables, function(t)
      return object("table", { schema = t.schema, name = t.name, usable = t.usable,
        proof = t.proof, blocked_by = copy_array(t.blocked_by) })
    end),
    fix_sql = r.fix_sql or "",
  })
end

local function name_of(t) return object("name", { schema = t.schema, name = t.name }) end

local function job(j)
  local copyable = 0
  for _, t in ipairs(j.tables) do
    if t.copyable then copyable = copyable + 1 end
  end
  local options = {}
  for k, v in pairs(j.options or {}) do options[k] = v end
  return object("job", { name = j.name, source = j.source, destination = j.destination,
    verdict = j.verdict, ok = j.ok and true or false, options = options,
    tables_copyable = copyable, tables_total = #j.tables,
    order = copy_array(j.order, name_of), findings = copy_array(j.findings, finding),
    tables = copy_array(j.tables, function(t)
      return object("pair", { source = name_of(t.source), destination = name_of(t.destination),
        copyable = t.copyable, blocked_by = copy_array(t.blocked_by),
        warnings = copy_array(t.warnings) })
    end),
    fix_sql = j.fix_sql or "" })
end

--- The document (a Lua table) for the results of check.connections (and
-- results.jobs, check.jobs' results: a `jobs` list and its summary).
function document.of(results)
  local summary = object("summary", { connections = #results, pass = 0, fail = 0,
    not_tested = 0 })
  local doc = object("document", { format = document.FORMAT, ok = true, summary = summary,
    connections = array() })
  for i, r in ipairs(results) do
    local c = connection(r)
    doc.connections[i] = c
    summary[c.verdict] = summary[c.verdict] + 1
    doc.ok = doc.ok and c.verdict == "pass"
  end
  if results.shard then
    doc.shard = object("shard", { index = results.shard.index, count = results.shard.count })
  end
  if results.jobs then
    local jobs = object("job_summary", { jobs = #results.jobs, pass = 0, fail = 0, not_tested = 0 })
    summary.jobs = jobs
    doc.jobs = array()
    for i, j in ipairs(results.jobs) do
      doc.jobs[i] = job(j)
      jobs[j.verdict] = jobs[j.verdict] + 1
      doc.ok = doc.ok and j.verdict == "pass"
    end
  end
  return doc
end

-- A copy of value whose objects all have a fixed key order: their own
-- (objects made here), or their keys in byte order.
local function ordered(value)
  local mt = getmetatable(value)
  if type(value) ~= "table" or (mt and mt.__tojson) then return value end -- json.null
  local out = {}
  for k, v in pairs(value) do out[k] = ordered(v) end
  if mt and (mt.__jsonorder or mt.__jsontype) then return setmetatable(out, mt) end
  local keys = {}
  for k in pairs(out) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  if #keys == 0 then return out end -- a list: dkjson keeps its order
  table.sort(keys)
  return setmetatable(out, { __jsonorder = keys })
end

--- JSON text for a document, or any value: every object's keys in a fixed
-- order (a document's own, else byte order); tables marked as arrays
-- encode as [].
function document.encode(value)
  return json.encode(ordered(value))
end

return document
