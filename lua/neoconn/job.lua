--- A job judged as a pair: the source's tables against the destination
-- tables they are copied into (pair.lua, pair_checks.lua), the job's own
-- rules seeing both sides, and each pair's verdict with what the two
-- connections' own verdicts say of its tables.
local neoconn = require("neoconn")
local policy = require("neoconn.policy")
local pair = require("neoconn.pair")
local fix_sql = require("neoconn.fix_sql")

local job = {}
local checks = require("neoconn.pair_checks")
local q = neoconn.quote_ident

-- The job's options, each given or its default (a job's are the
-- destination's: on_conflict, truncate, reset_sequences, init_schema).
local function options_of(spec)
  local options = {}
  for _, option in ipairs(neoconn.job_options()) do
    for _, kind in ipairs(option.kinds) do
      if kind == "job" then
        local v = (spec.options or {})[option.name]
        if v == nil then v = option.default end
        options[option.name] = v
      end
    end
  end
  return options
end

-- The rules blocking each of a side's tables (a check result's verdicts).
local function blocked_of(side)
  local blocked = {}
  for _, t in ipairs(side.tables or {}) do
    if t.usable == false then blocked[t.schema .. "\0" .. t.name] = t.blocked_by or {} end
  end
  return blocked
end

--- Judges a job. source and destination: { name, report (neoconn.test with
-- opts.layout), settings (its scope: tables, schemas, exclude; target),
-- tables (a check result's verdicts, optional) }. spec: { name, tables,
-- schemas, exclude, map, columns, options, rules, disable_rules }. opts:
-- { rules, disable_rules } for every job. Returns { name, source,
-- destination, verdict, ok, options, order, tables, findings, fix_sql }.
function job.judge(source, destination, spec, opts)
  opts = opts or {}
  local options = options_of(spec)
  local result = { name = spec.name, source = source.name, destination = destination.name,
    options = options, order = {}, tables = {}, findings = {}, fix_sql = "" }
  for _, side in ipairs({ source, destination }) do
    if not side.report.ok then
      result.verdict, result.ok = "not_tested", false
      result.findings[#result.findings + 1] = { level = "error", rule = "job",
        object_type = "connection", name = side.name, missing = {},
        message = ("the job's %s %s was not tested: %s"):format(side == source and "source"
          or "destination", side.name, side.report.error and side.report.error.message or "failed") }
    elseif not side.report.layout then
      error(("the %s report was made without opts.layout = true"):format(side == source
        and "source" or "destination"), 3)
    end
  end
  if result.verdict then return result end

  local source_blocked, destination_blocked = blocked_of(source), blocked_of(destination)
  local pairs_list, from, to = pair.of(spec, source.report, destination.report)
  local by_destination = {}
  for _, p in ipairs(pairs_list) do by_destination[p.key] = p end
  local findings, current_rule = {}, nil
  local function emit(f)
    local bad = policy.check_finding(f)
    if bad then error(bad, 3) end
    f.rule = f.rule or current_rule
    f.missing = f.missing or {}
    findings[#findings + 1] = f
  end
  local scope = destination.settings or {}
  local ctx = {
    name = spec.name, kind = "job", job = options, pairs = pairs_list, from = from, to = to,
    source = { name = source.name, report = source.report, settings = source.rule_settings },
    destination = { name = destination.name, report = destination.report,
      settings = destination.rule_settings },
    destination_version = destination.report.server.version:match("^(%S+ %S+)"),
    destination_database = destination.report.session.database,
    quote = q, literal = fix_sql.literal, comment = fix_sql.comment,
  }
  function ctx.destination_pair(schema, name)
    return by_destination[(schema or "") .. "\0" .. (name or "")]
  end
  function ctx.destination_read(schema, name) return pair.was_read(scope, schema, name) end
  function ctx.emit(f) emit(f) end
  function ctx.error(f) f.level = "error"; emit(f) end
  function ctx.warn(f) f.level = "warning"; emit(f) end
  local disabled = {}
  for _, list in ipairs({ opts.disable_rules or {}, spec.disable_rules or {} }) do
    for _, name in ipairs(list) do disabled[name] = true end
  end
  for _, need in ipairs(neoconn.requirements("job", options)) do
    if not disabled[need.id] then
      current_rule = need.id
      local ok, err = pcall(checks[need.check], ctx, need)
      if not ok then
        findings[#findings + 1] = { level = "error", rule = need.id, object_type = "connection",
          name = spec.name, missing = {}, message = "rule " .. need.id .. " failed: " .. tostring(err) }
      end
    end
  end
  policy.run_custom_rules(ctx, { opts.rules or {}, spec.rules or {} }, disabled, findings,
    spec.name, function(name) current_rule = name end)

  local ok, script = policy.fix_script(findings, ("neoconn: fixes for job %s (%s -> %s)"):format(
    spec.name, source.name, destination.name))
  result.findings, result.fix_sql = findings, script
  -- Each pair's verdict: the errors naming its destination table, or
  -- anything wider; the two connections' verdicts on its tables.
  local everything, errors, warnings = {}, {}, {}
  for _, f in ipairs(findings) do
    local key = f.object_type == "table" and ((f.schema or "") .. "\0" .. f.name)
    local into = f.level == "error" and errors or warnings
    if key then
      into[key] = into[key] or {}
      if into[key][#into[key]] ~= f.rule then table.insert(into[key], f.rule) end
    elseif f.level == "error" then
      everything[#everything + 1] = f.rule
    end
  end
  for i, p in ipairs(pairs_list) do
    local blocked_by = {}
    for _, rule in ipairs(everything) do blocked_by[#blocked_by + 1] = rule end
    for _, rule in ipairs(errors[p.key] or {}) do blocked_by[#blocked_by + 1] = rule end
    for _, rule in ipairs(source_blocked[p.source.schema .. "\0" .. p.source.name] or {}) do
      blocked_by[#blocked_by + 1] = "source:" .. rule
    end
    for _, rule in ipairs(destination_blocked[p.key] or {}) do
      blocked_by[#blocked_by + 1] = "destination:" .. rule
    end
    local warned = {}
    for n, rule in ipairs(warnings[p.key] or {}) do warned[n] = rule end
    result.tables[i] = { source = p.source, destination = p.destination,
      copyable = #blocked_by == 0, blocked_by = blocked_by, warnings = warned }
    ok = ok and #blocked_by == 0
  end
  for i, p in ipairs(ctx.order or {}) do result.order[i] = p.destination end
  result.ok = ok
  result.verdict = ok and "pass" or "fail"
  return result
end

return job
