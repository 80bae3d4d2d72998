--- Reports of checked connections: for people (stages, findings grouped by
-- object, the fix script) and for machines (one JSON document).
local neoconn = require("neoconn")
local document = require("neoconn.document")

local report = {}

-- Every text a person reads goes through this: names, messages and hints
-- may hold any byte a server or a config gave (line breaks, carriage
-- returns, terminal escapes).
local function shown(text)
  return neoconn.printable(tostring(text))
end

--- Exit codes of the command-line tool.
report.EXIT_OK = 0            -- every connection passes
report.EXIT_FINDINGS = 1      -- a permission or policy error
report.EXIT_UNTESTED = 2      -- a connection could not be tested
report.EXIT_USAGE = 64        -- usage or config error

--- The exit code for a list of check results: a connection that could not
-- be tested outranks a permission error.
function report.exit_code(results)
  local code = report.EXIT_OK
  for _, r in ipairs(results) do
    if r.error then return report.EXIT_UNTESTED end
    if not r.ok then code = report.EXIT_FINDINGS end
  end
  for _, j in ipairs(results.jobs or {}) do
    if j.verdict == "not_tested" then return report.EXIT_UNTESTED end
    if not j.ok then code = report.EXIT_FINDINGS end
  end
  return code
end

local COLORS = { red = "31", yellow = "33", green = "32", dim = "2", bold = "1" }

local function painter(enabled)
  return function(color, text)
    if not enabled then return text end
    return "\27[" .. COLORS[color] .. "m" .. text .. "\27[0m"
  end
end

local function object_label(f)
  if f.object_type == "table" or f.object_type == "sequence" or f.object_type == "function" then
    return f.object_type .. " " .. neoconn.quote_ident(f.schema, f.name)
  elseif f.name then
    return f.object_type .. " " .. neoconn.quote_ident(f.name)
  end
  return f.object_type
end

local function stage_line(stages, paint)
  local parts = {}
  for _, st in ipairs(stages or {}) do
    local state = st.skipped and "not used" or (st.ok and "ok" or "FAILED")
    local text = ("%s %s %.1f ms"):format(shown(st.name), state, st.ms)
    if not st.ok then text = paint("red", text) end
    parts[#parts + 1] = text
  end
  return table.concat(parts, paint("dim", " | "))
end

local VERDICTS = { pass = { "PASS", "green" }, fail = { "FAIL", "red" },
  not_tested = { "NOT TESTED", "red" } }

local verdict_of = document.verdict

-- "destination · role sync · db1:5432/app · PostgreSQL 15.10 · TLSv1.3"
local function where_line(r)
  local report_ = r.report or {}
  local e = r.endpoint or {}
  local session = report_.session or {}
  local parts = { shown(r.kind) }
  local role = session.user or e.user
  if role then parts[#parts + 1] = "role " .. shown(neoconn.quote_ident(role)) end
  if e.host then
    parts[#parts + 1] = shown(e.host .. (e.port and (":" .. e.port) or "")
      .. (e.dbname and ("/" .. e.dbname) or ""))
  end
  local server = report_.server
  if server and server.version_num then
    -- 150018 is 15.18 (the numbering of PostgreSQL 10 and later)
    parts[#parts + 1] = ("PostgreSQL %d.%d"):format(math.floor(server.version_num / 10000),
      server.version_num % 10000)
  end
  if session.ssl then
    parts[#parts + 1] = session.ssl.in_use and shown(session.ssl.protocol or "TLS") or "no TLS"
  end
  return table.concat(parts, " · ")
end

local function is_grant(f)
  return #f.missing > 0 and not f.rule:match("^policy%.")
end

-- The executor's refusals a grant finding already explains: the finding
-- each is folded into (shown "proven: <server message>"), and the
-- refusals' own findings, hidden.
local function folded_refusals(r)
  local refused = {}
  for _, t in ipairs(r.report and r.report.tables or {}) do
    if t.refused then refused[t.schema .. "\0" .. t.name] = t.refused end
  end
  local proofs, hidden = {}, {}
  for _, f in ipairs(r.findings or {}) do
    local why = f.rule == "table.statements" and refused[(f.schema or "") .. "\0" .. (f.name or "")]
    if why then
      local schema_denied = why.message:match("^permission denied for schema (.+)$")
      local explainer
      for _, g in ipairs(r.findings) do
        if g.level == "error" and is_grant(g) and not explainer
          and ((g.object_type == "table" and g.schema == f.schema and g.name == f.name)
            or (schema_denied and g.object_type == "schema" and g.name == f.schema)) then
          explainer = g
        end
      end
      if explainer then
        hidden[f] = true
        proofs[explainer] = proofs[explainer] or why.message
      end
    end
  end
  return proofs, hidden
end

local function finding_line(f, proof, paint)
  local level = f.level == "error" and paint("red", "error") or paint("yellow", "warning")
  local text = is_grant(f) and ("missing " .. table.concat(f.missing, ", ") .. ": " .. f.message)
    or f.message
  if proof then text = text .. " (proven: " .. proof .. ")" end
  return level .. " " .. shown(text) .. paint("dim", " [" .. shown(f.rule) .. "]")
end

-- Whether the fix script holds a statement to run (not only comments).
local function has_statement(script)
  for line in (script or ""):gmatch("[^\n]+") do
    if not line:match("^%s*%-%-") then return true end
  end
  return false
end

local function size(n)
  local units, i = { "B", "kB", "MB", "GB", "TB" }, 1
  while n >= 1024 and i < #units do
    n, i = n / 1024, i + 1
  end
  return i == 1 and ("%d B"):format(math.floor(n)) or ("%.1f %s"):format(n, units[i])
end

-- A CDC source's one line: the slot and its WAL, the publication, the
-- replication connection.
local function cdc_line(r)
  local rep = r.report and r.report.replication
  if not rep then return nil end
  local job = r.report.job or {}
  local parts = {}
  local slot = rep.slot
  if slot then
    parts[#parts + 1] = ("slot %s %s, keeps %s"):format(neoconn.quote_ident(slot.name),
      tostring(slot.wal_status or "?"), size(slot.retained_bytes or 0))
  else
    parts[#parts + 1] = job.slot and ("slot %s missing"):format(neoconn.quote_ident(job.slot))
      or "no slot named (the job creates one)"
  end
  parts[#parts + 1] = job.publication and ("publication %s%s"):format(
    neoconn.quote_ident(job.publication), rep.publication and "" or " missing")
    or "no publication named"
  if (rep.hidden_sessions or 0) > 0 then
    parts[#parts + 1] = ("%d session(s) hidden from the role (pg_read_all_stats shows their "
      .. "transactions)"):format(rep.hidden_sessions)
  end
  local conn = rep.connection or {}
  parts[#parts + 1] = conn.ok and "replication connection ok"
    or ("replication connection failed (%s)"):format(tostring(conn.error and conn.error.code))
  return shown("cdc: " .. table.concat(parts, " · "))
end

-- The fix script under its heading (whether it has a statement to run, or
-- only options), without its own header line.
local function fix_block(script, say, runnable, options_only)
  if script == nil or script == "" then return end
  say(has_statement(script) and runnable or options_only)
  for line in script:gmatch("[^\n]+") do
    if not line:match("^%-%- neoconn: fixes for ") then say("    ", shown(line)) end
  end
end

local function connection_text(r, say, paint)
  local verdict = verdict_of(r)
  local label = VERDICTS[verdict]
  local head = paint("bold", shown(r.name)) .. ": " .. paint(label[2], label[1])
  if verdict == "not_tested" then
    say(head, " — ", shown(r.error.code), " at ", shown(r.error.stage))
  else
    say(head, (" — %d of %d tables usable"):format(document.tables_usable(r), #(r.tables or {})))
  end
  say("  ", paint("dim", where_line(r)))
  say("  ", stage_line(r.stages, paint))
  local cdc = cdc_line(r)
  if cdc then say("  ", paint("dim", cdc)) end
  if verdict == "not_tested" then
    say("  ", shown(r.error.message))
    say("  hint: ", shown(r.error.hint))
    return
  end
  local proofs, hidden = folded_refusals(r)
  local last
  for _, f in ipairs(r.findings) do
    if not hidden[f] then
      local object = object_label(f)
      if object ~= last then
        say("  ", shown(object))
        last = object
      end
      say("    ", finding_line(f, proofs[f], paint))
    end
  end
  -- A PASS has nothing to fix: its warnings' suggestions stay in --fix-sql.
  if verdict == "fail" then
    fix_block(r.fix_sql, say, "  fix (run as an administrator):",
      "  no GRANT fixes this; the options, for an administrator:")
  end
end

local function qualified(t) return shown(neoconn.quote_ident(t.schema, t.name)) end

-- A job: its verdict, the pairs blocked, its findings by table, the copy
-- order and the fix.
local function job_text(j, say, paint)
  local label = VERDICTS[j.verdict]
  local copyable = 0
  for _, t in ipairs(j.tables) do
    if t.copyable then copyable = copyable + 1 end
  end
  say(paint("bold", "job " .. shown(j.name)) .. ": " .. paint(label[2], label[1])
    .. (" — %d of %d tables copyable"):format(copyable, #j.tables))
  say("  ", paint("dim", shown(j.source) .. " -> " .. shown(j.destination)))
  if #j.order > 1 then
    local names = {}
    for i, t in ipairs(j.order) do names[i] = qualified(t) end
    say("  copy order: ", table.concat(names, ", "))
  end
  local last
  for _, f in ipairs(j.findings) do
    local object = object_label(f)
    if object ~= last then
      say("  ", shown(object))
      last = object
    end
    say("    ", finding_line(f, nil, paint))
  end
  for _, t in ipairs(j.tables) do
    local sides = {}
    for _, rule in ipairs(t.blocked_by) do
      if rule:find(":", 1, true) then sides[#sides + 1] = shown(rule) end
    end
    if #sides > 0 then
      say("  table ", qualified(t.destination), ": ", paint("red", "blocked"), " by its connections' ",
        "findings (", table.concat(sides, ", "), ")")
    end
  end
  if j.verdict == "fail" then
    fix_block(j.fix_sql, say, "  fix (run as an administrator on the destination):",
      "  no statement fixes this alone; the options, for an administrator:")
  end
end

--- Human-readable text for a list of results, ending with a summary line
-- and the exit code. opts.color: ANSI colours.
function report.human(results, opts)
  local paint = painter(opts and opts.color)
  local out = {}
  local function say(...) out[#out + 1] = table.concat({ ... }) end
  local counts = { pass = 0, fail = 0, not_tested = 0 }
  for i, r in ipairs(results) do
    if i > 1 then say("") end
    connection_text(r, say, paint)
    counts[verdict_of(r)] = counts[verdict_of(r)] + 1
  end
  local jobs = { pass = 0, fail = 0, not_tested = 0 }
  for _, j in ipairs(results.jobs or {}) do
    say("")
    job_text(j, say, paint)
    jobs[j.verdict] = jobs[j.verdict] + 1
  end
  say("")
  local job_summary = ""
  if results.jobs and #results.jobs > 0 then
    job_summary = ("; %d job%s: %d pass, %d fail, %d not tested"):format(#results.jobs,
      #results.jobs == 1 and "" or "s", jobs.pass, jobs.fail, jobs.not_tested)
  end
  say(("%d connection%s: %d pass, %d fail, %d not tested%s (exit code %d)"):format(#results,
    #results == 1 and "" or "s", counts.pass, counts.fail, counts.not_tested, job_summary,
    report.exit_code(results)))
  return table.concat(out, "\n") .. "\n"
end

--- The fix scripts of all results, one after another.
function report.fix_sql(results)
  local parts = {}
  for _, list in ipairs({ results, results.jobs or {} }) do
    for _, r in ipairs(list) do
      if r.fix_sql and r.fix_sql ~= "" then parts[#parts + 1] = r.fix_sql end
    end
  end
  return table.concat(parts, "\n")
end

return report
