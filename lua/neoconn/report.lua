--- Reports of checked connections: for people (stages, findings grouped by
-- object, the fix script) and for machines (one JSON document).
local neoconn = require("neoconn")

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
  for _, s in ipairs(stages or {}) do
    local state = s.skipped and "not used" or (s.ok and "ok" or "FAILED")
    local text = ("%s %s %.1f ms"):format(shown(s.name), state, s.ms)
    if not s.ok then text = paint("red", text) end
    parts[#parts + 1] = text
  end
  return table.concat(parts, paint("dim", " | "))
end

-- Usable and blocked tables, and how many the executor proved.
local function count_usable(result)
  local usable, blocked, proven = 0, 0, 0
  for _, t in ipairs(result.tables or {}) do
    if t.usable then usable = usable + 1 else blocked = blocked + 1 end
    if t.proof == "executor" then proven = proven + 1 end
  end
  return usable, blocked, proven
end

--- Human-readable text for a list of results. opts.color: ANSI colours.
function report.human(results, opts)
  local paint = painter(opts and opts.color)
  local out = {}
  local function say(...) out[#out + 1] = table.concat({ ... }) end
  for i, r in ipairs(results) do
    if i > 1 then say("") end
    local verdict = r.error and paint("red", "NOT TESTED") or
      (r.ok and paint("green", "PASS") or paint("red", "FAIL"))
    say(paint("bold", shown(r.name)), " (", shown(r.kind), "): ", verdict)
    say("  ", stage_line(r.stages, paint))
    if r.error then
      say("  ", paint("red", shown(r.error.code)), " at ", shown(r.error.stage), ": ",
        shown(r.error.message))
      say("  hint: ", shown(r.error.hint))
    else
      local usable, blocked, proven = count_usable(r)
      local proof = proven == usable + blocked and "all proven by the executor"
        or proven == 0 and "verdicts from the catalog"
        or ("%d proven by the executor, the rest from the catalog"):format(proven)
      say(("  tables: %d usable, %d blocked (%s)"):format(usable, blocked, proof))
      local last
      for _, f in ipairs(r.findings) do
        local label = object_label(f)
        if label ~= last then
          say("  ", shown(label))
          last = label
        end
        local level = f.level == "error" and paint("red", "error") or paint("yellow", "warning")
        local missing = #f.missing > 0 and (" missing " .. table.concat(f.missing, ", ") .. ":") or ""
        say("    ", level, shown(missing), " ", shown(f.message), paint("dim", " [" .. shown(f.rule) .. "]"))
      end
      if r.fix_sql ~= "" then
        say("  fix (run as an administrator):")
        for line in r.fix_sql:gmatch("[^\n]+") do say("    ", shown(line)) end
      end
    end
  end
  return table.concat(out, "\n") .. "\n"
end

--- The fix scripts of all results, one after another.
function report.fix_sql(results)
  local parts = {}
  for _, r in ipairs(results) do
    if r.fix_sql and r.fix_sql ~= "" then parts[#parts + 1] = r.fix_sql end
  end
  return table.concat(parts, "\n")
end

return report
