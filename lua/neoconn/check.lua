--- One connection checked end to end: its settings (from a config) are
-- tested, and the report measured against its job by the policy.
local neoconn = require("neoconn")
local policy = require("neoconn.policy")

local check = {}

local DEFAULT_TIMEOUT = 10

--- Checks one connection. settings is a config connection; opts has the
-- config-wide rules and disable_rules, and timeout (seconds) overriding
-- the connection's own. Returns a result:
-- { name, kind, ok, error, stages, findings, fix_sql, usable, report }.
function check.connection(settings, opts)
  opts = opts or {}
  local scope = { timeout = opts.timeout or settings.timeout or DEFAULT_TIMEOUT,
    tables = settings.tables, schemas = settings.schemas }
  local report = neoconn.test(settings.target, scope)
  local verdict = policy.evaluate(report, settings, opts)
  return {
    name = settings.name,
    kind = settings.kind,
    ok = report.ok and verdict.ok,
    error = report.error,
    stages = report.stages,
    findings = verdict.findings,
    fix_sql = verdict.fix_sql,
    usable = verdict.usable,
    report = report,
  }
end

return check
