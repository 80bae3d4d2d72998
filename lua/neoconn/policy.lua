--- Policy: a neoconn.test report measured against what the connection's
-- job needs (neoconn.requirements), built-in advisories and custom rules.
-- The result is a list of findings, each with the SQL that fixes it, and
-- the verdict per table.
local neoconn = require("neoconn")
local sandbox = require("neoconn.sandbox")
local writable = require("neoconn.writable")
local endpoint = require("neoconn.endpoint")
local q = neoconn.quote_ident
local printable = neoconn.printable

local policy = {}

-- The object types a finding may name, in the order findings sort: the
-- connection first, tables and what serves them last.
local OBJECT_TYPES = { "connection", "server", "role", "database", "slot", "publication", "schema",
  "table", "sequence", "function" }
local ORDER = {}
for i, name in ipairs(OBJECT_TYPES) do ORDER[name] = i end
local OBJECT_TYPE_ERROR = "finding.object_type must be " .. table.concat(OBJECT_TYPES, ", ", 1,
  #OBJECT_TYPES - 1) .. " or " .. OBJECT_TYPES[#OBJECT_TYPES]
local PASSWORD_WARNING_DAYS = 14
policy.CERTIFICATE_WARNING_DAYS = 30 -- certificate_warning_days when not given

--- GRANT text for privileges on an object, to the role.
function policy.grant(privileges, object_type, schema, name, role, arguments)
  local on
  if object_type == "database" or object_type == "schema" then
    on = object_type:upper() .. " " .. q(name)
  elseif object_type == "function" then
    on = "FUNCTION " .. q(schema, name) .. "(" .. (arguments or "") .. ")"
  else
    on = object_type:upper() .. " " .. q(schema, name)
  end
  return ("GRANT %s ON %s TO %s;"):format(table.concat(privileges, ", "), on, q(role))
end

local fix_sql = require("neoconn.fix_sql")
local comment = fix_sql.comment

local function is_local(host)
  return host == nil or host == "" or host:sub(1, 1) == "/" or host == "localhost"
    or host:match("^127%.") ~= nil or host == "::1"
end

-- The connection's settings as rules see them: the target as libpq reads
-- it, and flat, the endpoint (endpoint.lua); never a password.
function policy.rule_settings(settings, report)
  local copy = {}
  for k, v in pairs(settings) do copy[k] = v end
  local flat, target = endpoint.of(settings.target, report)
  copy.target = target
  for _, key in ipairs({ "host", "port", "dbname", "user", "sslmode" }) do copy[key] = flat[key] end
  return copy
end

-- The privileges of need that table t lacks (a grant on every column
-- does as well where the requirement says so).
local function missing_privileges(t, need)
  local missing = {}
  for _, p in ipairs(need.privileges) do
    local has = t.privileges[p] or (need.columns_suffice and t.columns and t.columns[p] == "all")
    if not has then missing[#missing + 1] = p end
  end
  return missing
end

-- The context handed to rules: the report, the connection's settings
-- (without secrets), lookups, and emit functions.
local function new_context(report, settings, emit)
  local tables, schemas = {}, {}
  for _, t in ipairs(report.tables or {}) do tables[t.schema .. "\0" .. t.name] = t end
  for _, s in ipairs(report.schemas or {}) do schemas[s.name] = s end
  local role = report.session and report.session.user
  local ctx = {
    name = settings.name,
    kind = settings.kind,
    report = report,
    settings = policy.rule_settings(settings, report),
    role = role,
    quote = q,
    literal = fix_sql.literal,
    comment = comment,
  }
  function ctx.table(schema, name) return tables[schema .. "\0" .. name] end
  function ctx.schema(name) return schemas[name] end
  function ctx.tables()
    local i = 0
    return function()
      i = i + 1
      return report.tables[i]
    end
  end
  function ctx.grant(privileges, object_type, schema, name, arguments)
    return policy.grant(privileges, object_type, schema, name, role, arguments)
  end
  ctx.missing_privileges = missing_privileges
  function ctx.emit(finding) emit(finding) end
  -- fn(usable, emit) runs on the verdicts until they settle (summarize).
  ctx.deferred = {}
  function ctx.after_verdicts(fn) ctx.deferred[#ctx.deferred + 1] = fn end
  function ctx.error(finding)
    finding.level = "error"
    emit(finding)
  end
  function ctx.warn(finding)
    finding.level = "warning"
    emit(finding)
  end
  return ctx
end

-- Built-in rules. Each is named; its findings carry its name.
local builtin = {}

-- The tables the job syncs, and the schemas they live in.
local function synced_schemas(ctx)
  local seen, list = {}, {}
  for _, e in ipairs(ctx.settings.exclude or {}) do
    if e.name == nil then seen[e.schema] = true end -- a schema left out
  end
  local function add(name)
    if name and not seen[name] then
      seen[name] = true
      list[#list + 1] = name
    end
  end
  for t in ctx.tables() do add(t.schema) end
  for _, s in ipairs(ctx.settings.schemas or {}) do add(s) end
  for _, t in ipairs(ctx.settings.tables or {}) do add(t.schema) end
  return list
end


local function level_of(need)
  return need.optional and "warning" or "error"
end

-- What satisfies a requirement: one check per name a requirement gives
-- (neoconn.requirements(...)[i].check). `grant` has one per object type.
local checks = {}
local grant_checks = {}

function grant_checks.database(ctx, need)
  local db = ctx.report.database
  local key = need.privileges[1]:lower()
  if not db[key] then
    ctx.emit({ level = level_of(need), object_type = "database", name = db.name,
      missing = need.privileges, message = need.reason,
      fix = ctx.grant(need.privileges, "database", nil, db.name) })
  end
end

function grant_checks.schema(ctx, need)
  local key = need.privileges[1]:lower()
  for _, name in ipairs(synced_schemas(ctx)) do
    local s = ctx.schema(name)
    if s and not s[key] then
      ctx.emit({ level = level_of(need), object_type = "schema", name = name,
        missing = need.privileges, message = need.reason,
        fix = ctx.grant(need.privileges, "schema", nil, name) })
    end
  end
end

-- A relation the job can never write is blocked for that alone, with no
-- GRANT to suggest (job_checks.writable).
local function never_writable(ctx, t)
  return writable.never_writable(ctx, t) ~= nil
end

function grant_checks.table(ctx, need)
  for t in ctx.tables() do
    local missing = missing_privileges(t, need)
    if #missing > 0 and not never_writable(ctx, t) then
      ctx.emit({ level = level_of(need), object_type = "table", schema = t.schema, name = t.name,
        missing = missing, message = need.reason,
        fix = ctx.grant(missing, "table", t.schema, t.name) })
    end
  end
end

-- Row-level security: no GRANT fixes it, so the fix is a suggestion.
local POLICY_FIELDS = { SELECT = "select_policy", INSERT = "insert_policy", UPDATE = "update_policy" }
function checks.rls_policy(ctx, need)
  for t in ctx.tables() do
    if t.rls and t.rls.applies and not never_writable(ctx, t) then -- false for BYPASSRLS roles and owners
      local missing = {}
      for _, p in ipairs(need.privileges) do
        if not t.rls[POLICY_FIELDS[p]] then missing[#missing + 1] = p end
      end
      if #missing > 0 then
        -- The options' header and BYPASSRLS are the same lines for every
        -- policy finding of the table: the script keeps them once.
        local options = { ("row-level security on %s: no GRANT fixes it; its owner may choose "
          .. "one of:"):format(q(t.schema, t.name)), "ALTER ROLE " .. q(ctx.role) .. " BYPASSRLS;" }
        for _, p in ipairs(missing) do
          options[#options + 1] = ("CREATE POLICY %s ON %s FOR %s TO %s %s;")
            :format(q("neoconn_" .. p:lower()), q(t.schema, t.name), p, q(ctx.role),
              p == "INSERT" and "WITH CHECK (true)" or "USING (true)")
        end
        -- A policy is not a privilege: nothing is "missing" that a GRANT gives.
        ctx.emit({ level = level_of(need), object_type = "table", schema = t.schema, name = t.name,
          missing = {}, message = ("row-level security: no permissive %s policy applies to %s: %s")
            :format(table.concat(missing, " or "), q(ctx.role), need.reason),
          fix = comment(table.concat(options, "\n")) })
      end
    end
  end
end

local function owned_by_synced(ctx, owned_by)
  return owned_by and ctx.table(owned_by.schema, owned_by.table) ~= nil
end

function grant_checks.sequence(ctx, need)
  for _, s in ipairs(ctx.report.sequences or {}) do
    if owned_by_synced(ctx, s.owned_by) then
      local p = need.privileges[1]
      -- nextval works with USAGE or UPDATE.
      local has = s.privileges[p] or (p == "USAGE" and s.privileges.UPDATE)
      if not has then
        ctx.emit({ level = level_of(need), object_type = "sequence", schema = s.schema,
          name = s.name, missing = need.privileges, message = need.reason,
          fix = ctx.grant(need.privileges, "sequence", s.schema, s.name) })
      end
    end
  end
end

grant_checks["function"] = function(ctx, need)
  local seen = {}
  for _, f in ipairs(ctx.report.functions or {}) do
    local key = f.schema .. "\0" .. f.name .. "\0" .. f.arguments
    if owned_by_synced(ctx, f.used_by) and not f.privileges.EXECUTE and not seen[key] then
      seen[key] = true
      ctx.emit({ level = level_of(need), object_type = "function", schema = f.schema,
        name = f.name, missing = need.privileges, message = need.reason,
        fix = ctx.grant(need.privileges, "function", f.schema, f.name, f.arguments) })
    end
  end
end

function checks.grant(ctx, need)
  grant_checks[need.object_type](ctx, need)
end

-- Needed only to create a schema that does not exist yet.
function checks.grant_if_schema_missing(ctx, need)
  for _, nf in ipairs(ctx.report.not_found or {}) do
    if not ctx.schema(nf.schema) then return grant_checks.database(ctx, need) end
  end
end

for _, module in ipairs({ "neoconn.job_checks", "neoconn.cdc_checks", "neoconn.row_checks" }) do
  for name, check in pairs(require(module)) do checks[name] = check end
end

--- Checks of the report that need no requirement: what was not found.
function builtin.not_found(ctx)
  local init = ctx.settings.options and ctx.settings.options.init_schema
  for _, nf in ipairs(ctx.report.not_found or {}) do
    if nf.name == nil then
      ctx.emit({ level = init and "warning" or "error", object_type = "schema", name = nf.schema,
        message = init and "schema does not exist yet; the job will create it"
          or "schema does not exist",
        fix = comment("check the schema name " .. q(nf.schema)) })
    else
      ctx.emit({ level = init and "warning" or "error", object_type = "table", schema = nf.schema,
        name = nf.name, message = init and "table does not exist yet; the job will create it"
          or "table does not exist",
        fix = comment("check the table name " .. q(nf.schema, nf.name)) })
    end
  end
end

function builtin.insecure_sslmode(ctx)
  local session = ctx.report.session or {}
  if is_local(session.host) then return end
  if not (session.ssl and session.ssl.in_use) then
    ctx.warn({ object_type = "connection", name = ctx.name,
      message = ("connection to %s is not encrypted (sslmode=%s)"):format(session.host,
        tostring(session.sslmode)),
      fix = comment("use sslmode=verify-full with sslrootcert") })
  elseif session.sslmode ~= "verify-full" and session.sslmode ~= "verify-ca" then
    ctx.warn({ object_type = "connection", name = ctx.name,
      message = ("sslmode=%s encrypts but does not verify the server %s"):format(session.sslmode,
        session.host),
      fix = comment("use sslmode=verify-full with sslrootcert") })
  end
end

function builtin.superuser(ctx)
  if ctx.report.role.superuser then
    ctx.warn({ object_type = "role", name = ctx.role,
      message = "a superuser is used for sync: it can do anything, and hides missing grants",
      fix = comment("use a dedicated role with only the grants above") })
  end
end

function builtin.source_writable(ctx)
  if ctx.kind ~= "source" then return end
  for t in ctx.tables() do
    local writes = {}
    for _, p in ipairs({ "INSERT", "UPDATE", "DELETE", "TRUNCATE" }) do
      if t.privileges[p] then writes[#writes + 1] = p end
    end
    if #writes > 0 and not ctx.report.role.superuser then
      ctx.warn({ object_type = "table", schema = t.schema, name = t.name, missing = {},
        message = "a source role can write: " .. table.concat(writes, ", "),
        fix = comment(("REVOKE %s ON TABLE %s FROM %s; (or from the group granting it)")
          :format(table.concat(writes, ", "), q(t.schema, t.name), q(ctx.role))) })
    end
  end
end

-- The certificates of the session's TLS, and what each is called.
local CERTIFICATES = { { "server_certificate", "the server's certificate" },
  { "client_certificate", "the client certificate" } }

--- A certificate past its date is an error (sslmode=require does not check
-- the server's; a server may not check the client's); one expiring within
-- certificate_warning_days (default 30) a warning.
function builtin.certificate_expiry(ctx)
  local ssl = ctx.report.session and ctx.report.session.ssl or {}
  local days = ctx.settings.certificate_warning_days or policy.CERTIFICATE_WARNING_DAYS
  for _, which in ipairs(CERTIFICATES) do
    local cert = ssl[which[1]]
    if cert and cert.expires_in and cert.not_after then
      local what = ("%s (%s, issued by %s)"):format(which[2], tostring(cert.subject),
        tostring(cert.issuer))
      if cert.expires_in < 0 then
        ctx.error({ object_type = "connection", name = ctx.name,
          message = ("%s expired on %s%s"):format(what, cert.not_after, which[1] == "server_certificate"
            and ": sslmode=require does not check it, verify-ca and verify-full refuse it" or ""),
          fix = comment("renew " .. which[2]) })
      elseif cert.expires_in < days * 86400 then
        ctx.warn({ object_type = "connection", name = ctx.name,
          message = ("%s expires on %s, in %d days"):format(what, cert.not_after,
            math.floor(cert.expires_in / 86400)),
          fix = comment("renew " .. which[2] .. " before " .. cert.not_after) })
      end
    end
  end
end

function builtin.password_expiry(ctx, now)
  local until_text = ctx.report.role.valid_until
  if not until_text then return end
  local y, m, d = until_text:match("^(%d+)-(%d+)-(%d+)")
  if not y then return end
  local expires = os.time({ year = tonumber(y), month = tonumber(m), day = tonumber(d), hour = 12 })
  local days = (expires - (now or os.time())) / 86400
  if days < PASSWORD_WARNING_DAYS then
    ctx.warn({ object_type = "role", name = ctx.role,
      message = ("the role's password expires on %s"):format(until_text),
      fix = comment(("ALTER ROLE %s VALID UNTIL '...';"):format(q(ctx.role))) })
  end
end


-- Why f is not a finding (a message), or nil.
local function check_finding(f)
  if f.level ~= "error" and f.level ~= "warning" then
    return "finding.level must be \"error\" or \"warning\""
  end
  if not ORDER[f.object_type] then return OBJECT_TYPE_ERROR end
  if type(f.message) ~= "string" then return "finding.message must be a string" end
  if f.fix ~= nil and type(f.fix) ~= "string" then return "finding.fix must be a string" end
  for _, key in ipairs({ "schema", "name" }) do
    if f[key] ~= nil and type(f[key]) ~= "string" then return "finding." .. key .. " must be a string" end
  end
  if f.missing ~= nil and type(f.missing) ~= "table" then return "finding.missing must be a list" end
end

policy.check_finding = check_finding

local function sort_findings(findings)
  table.sort(findings, function(a, b)
    local oa, ob = ORDER[a.object_type], ORDER[b.object_type]
    if oa ~= ob then return oa < ob end
    local ka, kb = (a.schema or "") .. "\0" .. (a.name or ""), (b.schema or "") .. "\0" .. (b.name or "")
    if ka ~= kb then return ka < kb end
    if a.level ~= b.level then return a.level == "error" end
    if a.rule ~= b.rule then return a.rule < b.rule end
    return a.message < b.message
  end)
end

local function set_of(...)
  local set = {}
  for i = 1, select("#", ...) do
    for _, name in ipairs(select(i, ...) or {}) do set[name] = true end
  end
  return set
end

--- Evaluates a report for one connection.
-- settings: { name, kind, options, tables, schemas, rules, disable_rules }
-- opts: { rules = global rules, disable_rules = global names, now = os.time() }
-- Returns { ok, findings, fix_sql, usable = { ["schema\0name"] = bool },
-- tables = { { schema, name, usable, proof, blocked_by = { rule ids } } } }.
function policy.evaluate(report, settings, opts)
  opts = opts or {}
  local findings = {}
  local current_rule
  local function emit(f)
    local bad = check_finding(f)
    if bad then error(bad, 3) end
    f.rule = f.rule or current_rule
    f.missing = f.missing or {}
    findings[#findings + 1] = f
  end
  if not report.ok then
    local err = report.error
    findings[1] = { level = "error", rule = "connection", object_type = "connection",
      name = settings.name, missing = {}, message = err.message, code = err.code,
      stage = err.stage, fix = comment(err.hint) }
    return { ok = false, findings = findings, fix_sql = "", usable = {}, tables = {} }
  end
  local ctx = new_context(report, settings, emit)
  local disabled = set_of(opts.disable_rules, settings.disable_rules)
  ctx.disabled = disabled -- rules that stand in for another know whether it runs

  local function run(name, fn, ...)
    if disabled[name] then return end
    current_rule = name
    local ok, err = pcall(fn, ctx, ...)
    if not ok then
      findings[#findings + 1] = { level = "error", rule = name, object_type = "connection",
        name = settings.name, missing = {}, message = "rule " .. name .. " failed: " .. tostring(err) }
    end
  end

  ctx.requirements = neoconn.requirements(settings.kind, settings.options)
  local job_mismatch = policy.job_mismatch(report, settings)
  if job_mismatch then
    findings[#findings + 1] = { level = "error", rule = "job", object_type = "connection",
      name = settings.name, missing = {}, message = job_mismatch,
      fix = comment("test with neoconn.test(target, { job = ... }) for this job") }
  else
    for _, need in ipairs(ctx.requirements) do
      run(need.id, checks[need.check], need)
    end
  end
  run("not_found", builtin.not_found)
  run("insecure_sslmode", builtin.insecure_sslmode)
  run("superuser", builtin.superuser)
  run("source_writable", builtin.source_writable)
  run("password_expiry", builtin.password_expiry, opts.now)
  run("certificate_expiry", builtin.certificate_expiry)
  policy.run_custom_rules(ctx, { opts.rules or {}, settings.rules or {} }, disabled, findings,
    settings.name, function(name) current_rule = name end)
  return policy.summarize(report, settings, findings, ctx.deferred)
end

--- Runs custom rules (name -> function(ctx), or a config's { load = }) on
-- ctx, each in a sandboxed child of its own (bounded CPU, memory and
-- time), on its own copy of the context: what one rule does to it reaches
-- neither the report nor the next rule. Only findings come back, checked
-- again here, into findings; a rule that fails is an error finding on
-- owner (the connection or job). set_rule(name) names the rule whose
-- findings ctx.emit adds.
function policy.run_custom_rules(ctx, rule_sets, disabled, findings, owner, set_rule)
  local function run_custom(name, rule)
    if disabled[name] then return end
    local before = #findings
    local result, err, seen = sandbox.run(function()
      set_rule(name)
      local fn = type(rule) == "function" and rule or rule.load()
      if type(fn) ~= "function" then error("not a function", 0) end
      sandbox.watch(debug.getinfo(fn, "S").source)
      local ok, rule_err = pcall(fn, ctx)
      local added = {}
      for i = before + 1, #findings do added[#added + 1] = findings[i] end
      return { findings = added, error = not ok and tostring(rule_err) or nil }
    end, sandbox.RULE_LIMITS)
    local failure = result and result.error
    if not result then failure = err:find("^failed: ") and err:sub(9) or ("it " .. err) end
    if failure and seen and not failure:find("^[^ ]+:%d+: ") then
      failure = seen:gsub("^[@=]", "") .. ": " .. failure -- where the rule was
    end
    for _, f in ipairs(result and result.findings or {}) do
      local bad = check_finding(f)
      if bad then
        failure = failure or bad
      else
        f.rule = name
        f.missing = type(f.missing) == "table" and f.missing or {}
        findings[#findings + 1] = f
      end
    end
    if failure then
      findings[#findings + 1] = { level = "error", rule = name, object_type = "connection",
        name = owner, missing = {}, message = "rule " .. name .. " failed: " .. failure }
    end
  end
  for _, rules in ipairs(rule_sets) do
    local names = {}
    for name in pairs(rules) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do run_custom(name, rules[name]) end
  end
end

--- Why a report cannot be measured against the job of settings (it was
-- made for another job, or none), or nil.
function policy.job_mismatch(report, settings)
  local job = report.job
  if not job then return "the report was made without the job (neoconn.test opts.job)" end
  if job.kind ~= settings.kind then
    return ("the report was made for a %s, not a %s"):format(job.kind, settings.kind)
  end
  local options = settings.options or {}
  for _, option in ipairs(neoconn.job_options()) do
    local want = options[option.name]
    if want == nil then want = option.default end
    if job[option.name] ~= want then
      return ("the report was made with %s = %s, the job has %s"):format(option.name,
        tostring(job[option.name]), tostring(want))
    end
  end
end

-- Where the report lists sequences and functions, and the table each serves.
local SERVES = { sequence = { list = "sequences", link = "owned_by" },
  ["function"] = { list = "functions", link = "used_by" } }

-- Each table's verdict from the findings: usable[key], and the rules of
-- the errors blocking it.
local function verdicts(report, findings)
  local everything, schemas, tables, servants = {}, {}, {}, {}
  local function add(map, key, rule)
    map[key] = map[key] or {}
    table.insert(map[key], rule)
  end
  for _, f in ipairs(findings) do
    if f.level == "error" then
      if f.object_type == "table" then
        add(tables, (f.schema or "") .. "\0" .. f.name, f.rule)
      elseif f.object_type == "schema" then
        add(schemas, f.name, f.rule)
      elseif SERVES[f.object_type] then
        add(servants, f.object_type .. "\0" .. (f.schema or "") .. "\0" .. f.name, f.rule)
      else
        everything[#everything + 1] = f.rule
      end
    end
  end
  local blocked_by = {}
  for _, t in ipairs(report.tables or {}) do
    local key = t.schema .. "\0" .. t.name
    blocked_by[key] = {}
    for _, list in ipairs({ everything, schemas[t.schema] or {}, tables[key] or {} }) do
      for _, rule in ipairs(list) do table.insert(blocked_by[key], rule) end
    end
  end
  -- Sequences and functions block the tables they serve (one pass over
  -- each list, however many of them fail).
  if next(servants) then
    for object_type, served in pairs(SERVES) do
      for _, x in ipairs(report[served.list] or {}) do
        local t = x[served.link]
        local rules = servants[object_type .. "\0" .. x.schema .. "\0" .. x.name]
        local key = t and (t.schema .. "\0" .. t.table)
        if rules and blocked_by[key] then
          for _, rule in ipairs(rules) do table.insert(blocked_by[key], rule) end
        end
      end
    end
  end
  local usable = {}
  for key, rules in pairs(blocked_by) do usable[key] = #rules == 0 end
  return usable, blocked_by
end

--- The verdicts: a table is usable exactly when no error names it, its
-- schema, a sequence or function serving it, or the database, role or
-- connection. deferred checks (fn(usable, emit)) run on the verdicts until
-- they add nothing more.
function policy.summarize(report, settings, findings, deferred)
  local usable, blocked_by = verdicts(report, findings)
  local added = true
  while added and deferred and #deferred > 0 do
    added = false
    for _, fn in ipairs(deferred) do
      fn(usable, function(f)
        findings[#findings + 1] = f
        added = true
      end)
    end
    if added then usable, blocked_by = verdicts(report, findings) end
  end
  local ok, script = policy.fix_script(findings, ("neoconn: fixes for %s (%s, role %s)"):format(
    settings.name, settings.kind, q(report.session.user)))
  local tables = {}
  for i, t in ipairs(report.tables or {}) do
    local key = t.schema .. "\0" .. t.name
    tables[i] = { schema = t.schema, name = t.name, usable = usable[key], proof = t.proof or "catalog",
      blocked_by = blocked_by[key] }
  end
  return { ok = ok, findings = findings, fix_sql = script, usable = usable, tables = tables }
end

--- Sorts findings, makes their text printable, and writes the fix script
-- (header: its first comment): ok (no error), script ("" without fixes).
function policy.fix_script(findings, header)
  sort_findings(findings)
  local fixes, seen, comments_seen = {}, {}, {}
  local ok = true
  for _, f in ipairs(findings) do
    if f.level == "error" then ok = false end
    -- What reaches people and the script: one line of message, and a fix
    -- with no control character but its line breaks (names and server
    -- text may hold any byte).
    f.message = printable(f.message)
    if f.fix then f.fix = fix_sql.script(f.fix) end
    -- A warning's fix is a suggestion: it stays a comment, so running the
    -- script grants exactly what the job needs.
    local fix = f.fix
    if fix and f.level == "warning" and not fix:match("^%-%-") then
      fix = comment("optional: " .. fix)
    end
    if fix and not seen[fix] then
      seen[fix] = true
      -- A comment line already in the script is not repeated (the
      -- options shared by the findings of one object).
      local lines = {}
      for line in (fix .. "\n"):gmatch("([^\n]*)\n") do
        if not (line:match("^%-%-") and comments_seen[line]) then lines[#lines + 1] = line end
        if line:match("^%-%-") then comments_seen[line] = true end
      end
      if #lines > 0 then fixes[#fixes + 1] = table.concat(lines, "\n") end
    end
  end
  if #fixes == 0 then return ok, "" end
  return ok, comment(header) .. "\n" .. table.concat(fixes, "\n") .. "\n"
end

return policy
