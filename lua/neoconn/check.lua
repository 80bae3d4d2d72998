--- One connection checked end to end: its settings (from a config) are
-- tested, and the report measured against its job by the policy.
local neoconn = require("neoconn")
local policy = require("neoconn.policy")
local endpoint = require("neoconn.endpoint")

local check = {}

-- The test's options: the connection's scope and job (so the executor
-- proves the job's own statements). No timeout given: neoconn.test's.
local function scope_of(settings, opts)
  local job = { kind = settings.kind }
  for k, v in pairs(settings.options or {}) do job[k] = v end
  local proof = settings.proof
  if opts.proof ~= nil then proof = opts.proof end
  return { timeout = opts.timeout or settings.timeout,
    tables = settings.tables, schemas = settings.schemas, exclude = settings.exclude, job = job,
    proof = proof, layout = settings.layout }
end

local function result_of(settings, report, opts)
  -- A CDC source's standby, for failover readiness: read beside the test.
  local options = settings.options or {}
  if settings.standby and options.cdc and options.slot and report.ok and report.replication then
    report.replication.standby = require("neoconn.standby").probe(settings, options.slot,
      opts.timeout or settings.timeout)
  end
  local verdict = policy.evaluate(report, settings, opts)
  return {
    name = settings.name,
    kind = settings.kind,
    endpoint = (endpoint.of(settings.target, report)),
    ok = report.ok and verdict.ok,
    error = report.error,
    stages = report.stages,
    findings = verdict.findings,
    fix_sql = verdict.fix_sql,
    usable = verdict.usable,
    tables = verdict.tables,
    report = report,
  }
end

--- Checks one connection. settings is a config connection; opts has the
-- config-wide rules and disable_rules, and timeout (seconds) overriding
-- the connection's own. Returns a result:
-- { name, kind, endpoint, ok, error, stages, findings, fix_sql, usable, tables, report }.
function check.connection(settings, opts)
  opts = opts or {}
  return result_of(settings, neoconn.test(settings.target, scope_of(settings, opts)), opts)
end

--- Checks many connections, opts.concurrency at a time (neoconn.test_all);
-- opts.on_result(i, result) is called as each finishes. Results in order.
function check.connections(list, opts)
  opts = opts or {}
  local items, results = {}, {}
  for i, settings in ipairs(list) do
    local scope = scope_of(settings, opts)
    scope.target = settings.target
    items[i] = scope
  end
  neoconn.test_all(items, { concurrency = opts.concurrency, on_report = function(i, report)
    results[i] = result_of(list[i], report, opts)
    if opts.on_result then opts.on_result(i, results[i]) end
  end })
  return results
end

--- Judges each job whose two connections are among the checked ones:
-- connections (config connections) and their results in the same order.
-- opts: { rules, disable_rules } for every job. Returns the job results
-- (job.judge), in the jobs' order.
function check.jobs(jobs, connections, results, opts)
  local side = {}
  for i, c in ipairs(connections) do
    side[c.name] = { name = c.name, report = results[i].report, settings = c,
      tables = results[i].tables, rule_settings = policy.rule_settings(c, results[i].report) }
  end
  local out = {}
  for _, j in ipairs(jobs or {}) do
    if side[j.source] and side[j.destination] then
      out[#out + 1] = require("neoconn.job").judge(side[j.source], side[j.destination], j, opts)
    end
  end
  return out
end

return check
