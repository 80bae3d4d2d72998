--- The neoconn command-line tool: check a config, test one target, print
-- what a role needs. main(args, io_streams) returns the exit code.
local neoconn = require("neoconn")
local core = require("neoconn.core")
local config = require("neoconn.config")
local check = require("neoconn.check")
local report = require("neoconn.report")
local document = require("neoconn.document")

local cli = {}

-- The job's options as flags: --name-with-dashes; a boolean with choices
-- takes --name or --name=CHOICE, one with choices only --name CHOICE.
local JOB_FLAGS = {}
for _, option in ipairs(neoconn.job_options()) do
  local choices, boolean = {}, false
  for _, v in ipairs(option.values) do
    if type(v) == "boolean" then boolean = true else choices[#choices + 1] = v end
  end
  local flag = option.name:gsub("_", "-")
  local text = "--" .. flag
  if option.names then
    text = ("[--%s NAME]"):format(flag)
  elseif boolean and #choices > 0 then
    text = ("[--%s[=%s]]"):format(flag, table.concat(choices, "|"))
  elseif boolean then
    text = "[" .. text .. "]"
  else
    text = ("[--%s %s]"):format(flag, table.concat(choices, "|"))
  end
  JOB_FLAGS[#JOB_FLAGS + 1] = { option = option, flag = flag, usage = text,
    kind = boolean and (#choices > 0 and "optional" or "flag") or "value", choices = choices }
end

local function job_usage(kind)
  local parts = {}
  for _, f in ipairs(JOB_FLAGS) do
    local applies = kind == nil
    for _, k in ipairs(f.option.kinds) do applies = applies or k == kind end
    if applies then parts[#parts + 1] = f.usage end
  end
  return table.concat(parts, " ")
end

local USAGE = ([[
usage: neoconn check [CONFIG] [--only NAME]... [--exclude LIST] [--json] [--fix-sql FILE]
                    [--timeout S] [--concurrency N] [--proof auto|on|off|N]
                    [--shard K/N] [--quiet] [--output FILE]
       neoconn test TARGET --as source|destination [--tables LIST] [--schemas LIST]
                   [--exclude LIST] JOB_FLAGS [--standby URL]
                   [--proof auto|on|off|N] [--timeout S] [--json] [--fix-sql FILE]
       neoconn job SOURCE DESTINATION [--tables LIST] [--schemas LIST] [--exclude LIST]
                   PAIR_FLAGS
                   [--proof auto|on|off|N] [--timeout S] [--json] [--fix-sql FILE]
       neoconn requirements source|destination|job JOB_FLAGS
                   [--role NAME] [--json]
       neoconn --help | --version

check         checks every connection of CONFIG (default ./neoconn.lua) against
              what its sync job needs, N at a time (default 1); --fix-sql FILE
              writes the fix script (- for standard output); --shard K/N (or
              NEOCONN_SHARD) checks shard K (0 to N-1) of the names; --quiet prints
              nothing when all pass; --output FILE writes the JSON document there
              atomically
test          tests one TARGET (a postgres:// URL or key=value string; the
              password may come from PGPASSWORD or ~/.pgpass)
job           tests a SOURCE and a DESTINATION target, then judges the copy between
              them table by table (columns, types, constraints, copy order)
requirements  what a source or destination role needs; with --role, the GRANTs;
              job: what a source and destination pair must agree on

--proof: whether the server's executor proves the job's statements (EXPLAIN
as the role); auto proves jobs of up to PROOF_LIMIT tables.
LIST is comma-separated, names in PostgreSQL syntax ("Odd Schema"."a.b").
--exclude leaves schemas (a bare name) and tables (schema.table) out of the
job, on top of each connection's own exclude list.
Exit codes: 0 all pass, 1 a permission or policy error, 2 a connection could
not be tested, 64 usage or config error. NO_COLOR turns colours off.
]]):gsub("JOB_FLAGS", job_usage()):gsub("PAIR_FLAGS", job_usage("job"))
  :gsub("PROOF_LIMIT", tostring(neoconn.proof_auto_limit))

-- Options each command takes: name -> "flag" | "value" | "list" |
-- "optional" (a flag, or --name=VALUE).
local COMMANDS = {
  check = { only = "list", json = "flag", ["fix-sql"] = "value", timeout = "value",
    concurrency = "value", proof = "value", exclude = "value", shard = "value", quiet = "flag",
    output = "value" },
  test = { as = "value", standby = "value",
    tables = "value", schemas = "value", exclude = "value", timeout = "value",
    json = "flag", proof = "value", ["fix-sql"] = "value" },
  requirements = { role = "value", json = "flag" },
  job = { tables = "value", schemas = "value", exclude = "value", timeout = "value",
    json = "flag", proof = "value", ["fix-sql"] = "value" },
}
for _, f in ipairs(JOB_FLAGS) do
  COMMANDS.test[f.flag] = f.kind
  COMMANDS.requirements[f.flag] = f.kind
  for _, kind in ipairs(f.option.kinds) do
    if kind == "job" then COMMANDS.job[f.flag] = f.kind end
  end
end

local function usage_error(message)
  error({ usage = message }, 0)
end

local function parse(args)
  local command = args[1]
  if command == "--help" or command == "-h" then return { command = "help" } end
  if command == "--version" then return { command = "version" } end
  local spec = COMMANDS[command]
  if not spec then usage_error("unknown command " .. tostring(command)) end
  local parsed = { command = command, positional = {}, options = {} }
  local i = 2
  while i <= #args do
    local a = args[i]
    local name, inline = a:match("^%-%-([%w-]+)=(.*)$")
    name = name or a:match("^%-%-([%w-]+)$")
    if name then
      local kind = spec[name]
      if name == "help" then return { command = "help" } end
      if not kind then usage_error("unknown option --" .. name .. " for " .. command) end
      if kind == "flag" or (kind == "optional" and not inline) then
        if inline then usage_error("--" .. name .. " takes no value") end
        parsed.options[name] = true
      else
        local value = inline
        if not value then
          i = i + 1
          value = args[i]
          if value == nil then usage_error("--" .. name .. " needs a value") end
        end
        if kind == "list" then
          parsed.options[name] = parsed.options[name] or {}
          table.insert(parsed.options[name], value)
        else
          parsed.options[name] = value
        end
      end
    else
      parsed.positional[#parsed.positional + 1] = a
    end
    i = i + 1
  end
  return parsed
end

-- Splits a comma-separated list, keeping commas inside double quotes.
local function split_list(text)
  local items, current, quoted = {}, {}, false
  for ch in text:gmatch(".") do
    if ch == '"' then quoted = not quoted end
    if ch == "," and not quoted then
      items[#items + 1] = table.concat(current)
      current = {}
    else
      current[#current + 1] = ch
    end
  end
  items[#items + 1] = table.concat(current)
  local out = {}
  for _, item in ipairs(items) do
    item = item:match("^%s*(.-)%s*$")
    if item ~= "" then out[#out + 1] = item end
  end
  return out
end

-- A LIST option's names, read as PostgreSQL reads identifiers (one reading
-- for --tables, --schemas and --exclude: unquoted names fold to lower
-- case, quoted ones keep case, commas and dots). as: "table" gives
-- { schema, name } (unqualified: public), "schema" a name, "exclude"
-- { schema, name } for a qualified name and { schema } for a bare one.
local function names_option(flag, text, as)
  local out = {}
  for _, item in ipairs(split_list(text)) do
    local schema, name, err = neoconn.parse_name(item)
    if not name then usage_error(flag .. ": " .. err .. " in " .. item) end
    if as == "table" then
      out[#out + 1] = { schema = schema or "public", name = name }
    elseif as == "exclude" then
      out[#out + 1] = schema and { schema = schema, name = name } or { schema = name }
    elseif schema then
      usage_error(flag .. ": " .. item .. " is not one name (a name holding a dot is quoted: \"a.b\")")
    else
      out[#out + 1] = name
    end
  end
  return out
end

local function timeout_option(options)
  if not options.timeout then return nil end
  local t = tonumber(options.timeout)
  if not t or t <= 0 then usage_error("--timeout expects a positive number of seconds") end
  return t
end

-- The job's options for a kind of connection, from its flags.
local function job_options(options, kind)
  local job = {}
  for _, f in ipairs(JOB_FLAGS) do
    local raw = options[f.flag]
    if raw ~= nil then
      local applies = false
      for _, k in ipairs(f.option.kinds) do applies = applies or k == kind end
      if not applies then
        local plural = {}
        for _, k in ipairs(f.option.kinds) do
          if k ~= "job" then plural[#plural + 1] = k .. "s" end
        end
        usage_error("--" .. f.flag .. " applies to " .. table.concat(plural, " and ") .. " only")
      end
      if f.option.names then
        local ok, why = config.is_object_name(raw)
        if not ok then usage_error(("--%s %s"):format(f.flag, why)) end
      elseif raw ~= true then
        local known = false
        for _, choice in ipairs(f.choices) do known = known or choice == raw end
        if not known then
          usage_error("--" .. f.flag .. " expects " .. table.concat(f.choices, " or "))
        end
      end
      job[f.option.name] = raw
    end
  end
  for _, f in ipairs(JOB_FLAGS) do
    if f.option.needs and job[f.option.name] ~= nil and job[f.option.needs] ~= true then
      usage_error(("--%s needs --%s"):format(f.flag, (f.option.needs:gsub("_", "-"))))
    end
  end
  return job
end

local PROOF_VALUES = { auto = "auto", on = true, off = false }
local function proof_option(options)
  if options.proof == nil then return nil end
  local value = PROOF_VALUES[options.proof]
  if value == nil and options.proof:match("^%d+$") and tonumber(options.proof) >= 1 then
    value = tonumber(options.proof)
  end
  if value == nil then usage_error("--proof expects auto, on, off or the most tables to prove") end
  return value
end

local function kind_argument(value, what)
  if value ~= "source" and value ~= "destination" then
    usage_error(what .. " expects source or destination")
  end
  return value
end

local function use_color(stream, env)
  return env("NO_COLOR") == nil and core.isatty(stream == "stderr" and 2 or 1)
end

-- The --fix-sql file, opened before any test runs so that a bad path is
-- said at once; nil for none or "-".
local function open_fix_file(options)
  local path = options["fix-sql"]
  if path == "-" and options.json then
    usage_error("--json and --fix-sql - would both write to standard output: give --fix-sql a file")
  end
  if not path or path == "-" then return nil end
  local f, err = io.open(path, "w")
  if not f then usage_error("--fix-sql: " .. err) end
  return f
end

-- --output FILE: the JSON document written to a file beside it, then
-- renamed over FILE, so a reader never sees half a document. The file is
-- opened before any test runs, so a bad path is said at once.
local function open_output(options)
  local path = options.output
  if not path then return nil end
  if path == "-" then usage_error("--output writes a file: for standard output, use --json") end
  local temp = ("%s.%d.tmp"):format(path, math.floor(neoconn.clock() * 1e6) % 1000000000)
  local f, err = io.open(temp, "w")
  if not f then usage_error("--output: " .. err) end
  return { file = f, temp = temp, path = path }
end

local function write_output(output, text, out)
  local ok, err = output.file:write(text)
  local closed, close_err = output.file:close()
  local renamed, rename_err = true, nil
  if ok and closed then renamed, rename_err = os.rename(output.temp, output.path) end
  if not (ok and closed and renamed) then
    os.remove(output.temp)
    out.stderr:write("neoconn: ", neoconn.printable("--output " .. output.path .. ": "
      .. tostring(err or close_err or rename_err)), "\n")
    return false
  end
  return true
end

-- The report goes to standard output, unless an option writes its own
-- output there ("-"): then standard output carries only that, and the
-- report goes to standard error. --quiet: nothing when every result
-- passes.
local function emit_results(results, options, out, env, fix_file, output)
  local stream = options["fix-sql"] == "-" and "stderr" or "stdout"
  local code = report.exit_code(results)
  if output and not write_output(output, document.encode(document.of(results)) .. "\n", out) then
    return report.EXIT_USAGE
  end
  if options.json then
    out[stream]:write(document.encode(document.of(results)), "\n")
  elseif not (options.quiet and code == report.EXIT_OK) then
    out[stream]:write(report.human(results, { color = use_color(stream, env) }))
  end
  if options["fix-sql"] == "-" then
    out.stdout:write(report.fix_sql(results))
  elseif fix_file then
    local ok, err = fix_file:write(report.fix_sql(results))
    local closed, close_err = fix_file:close()
    if not ok or not closed then
      out.stderr:write("neoconn: ", neoconn.printable("--fix-sql " .. options["fix-sql"] .. ": "
        .. tostring(err or close_err)), "\n")
      return report.EXIT_USAGE
    end
  end
  return code
end

local function run_check(parsed, out, env)
  if #parsed.positional > 1 then usage_error("check takes one CONFIG") end
  local path = parsed.positional[1] or "neoconn.lua"
  local cfg, err = config.load_file(path, { getenv = env })
  if not cfg then
    out.stderr:write("neoconn: ", neoconn.printable(err), "\n")
    return report.EXIT_USAGE
  end
  local selected = cfg.connections
  if parsed.options.only then
    local by_name = {}
    for _, c in ipairs(cfg.connections) do by_name[c.name] = c end
    selected = {}
    for _, name in ipairs(parsed.options.only) do
      if not by_name[name] then usage_error("--only: no connection named " .. name .. " in " .. path) end
      selected[#selected + 1] = by_name[name]
    end
  end
  local concurrency = tonumber(parsed.options.concurrency or "1")
  if not concurrency or concurrency < 1 or concurrency % 1 ~= 0 then
    usage_error("--concurrency expects a positive integer")
  end
  if parsed.options.exclude then
    local more = names_option("--exclude", parsed.options.exclude, "exclude")
    for i, c in ipairs(selected) do
      local copy = {}
      for k, v in pairs(c) do copy[k] = v end
      copy.exclude = {}
      for _, e in ipairs(c.exclude or {}) do copy.exclude[#copy.exclude + 1] = e end
      for _, e in ipairs(more) do copy.exclude[#copy.exclude + 1] = e end
      selected[i] = copy
    end
  end
  local jobs = cfg.jobs
  local shard_text = parsed.options.shard or env("NEOCONN_SHARD")
  local shard
  if shard_text and shard_text ~= "" then
    local why
    shard, why = require("neoconn.shard").parse(shard_text)
    if not shard then usage_error((parsed.options.shard and "--shard " or "NEOCONN_SHARD ") .. why) end
    selected, jobs = require("neoconn.shard").select(selected, jobs, shard)
  end
  if parsed.options.quiet and parsed.options.json then
    usage_error("--quiet and --json: --json always prints the document (use --output FILE)")
  end
  local fix_file = open_fix_file(parsed.options)
  local output = open_output(parsed.options)
  local progress = #selected > 1 and core.isatty(2) and not parsed.options.quiet
  local done = 0
  local results = check.connections(selected, { rules = cfg.rules,
    disable_rules = cfg.disable_rules, timeout = timeout_option(parsed.options),
    concurrency = concurrency, proof = proof_option(parsed.options),
    on_result = function(_, result)
      done = done + 1
      if progress then
        out.stderr:write(("\rchecked %d/%d: %s\27[K"):format(done, #selected,
          neoconn.printable(result.name)))
      end
    end })
  if progress then out.stderr:write("\r\27[K") end
  if #cfg.jobs > 0 then -- a config without jobs keeps the document it had
    results.jobs = check.jobs(jobs, selected, results, { disable_rules = cfg.disable_rules })
  end
  results.shard = shard
  return emit_results(results, parsed.options, out, env, fix_file, output)
end

local function run_test(parsed, out, env)
  if #parsed.positional ~= 1 then usage_error("test takes one TARGET") end
  local o = parsed.options
  local kind = kind_argument(o.as, "--as")
  local settings = { name = "target", kind = kind, target = parsed.positional[1],
    options = job_options(o, kind), proof = proof_option(o), standby = o.standby }
  if o.standby and not settings.options.cdc then usage_error("--standby needs --cdc") end
  if o.tables then settings.tables = names_option("--tables", o.tables, "table") end
  if o.schemas then settings.schemas = names_option("--schemas", o.schemas, "schema") end
  if o.exclude then settings.exclude = names_option("--exclude", o.exclude, "exclude") end
  local fix_file = open_fix_file(o)
  local result = check.connection(settings, { timeout = timeout_option(o) })
  return emit_results({ result }, o, out, env, fix_file)
end

-- neoconn job SOURCE DESTINATION: both tested (at once), then the pair.
local function run_job(parsed, out, env)
  if #parsed.positional ~= 2 then usage_error("job takes a SOURCE and a DESTINATION target") end
  local o = parsed.options
  local spec = { name = "job", source = "source", destination = "destination",
    options = job_options(o, "job") }
  if o.tables then spec.tables = names_option("--tables", o.tables, "table") end
  if o.schemas then spec.schemas = names_option("--schemas", o.schemas, "schema") end
  if o.exclude then spec.exclude = names_option("--exclude", o.exclude, "exclude") end
  local sides = {}
  for i, kind in ipairs({ "source", "destination" }) do
    sides[i] = { name = kind, kind = kind, target = parsed.positional[i], layout = true,
      options = kind == "destination" and spec.options or {}, proof = proof_option(o),
      tables = spec.tables, schemas = spec.schemas, exclude = spec.exclude }
  end
  local fix_file = open_fix_file(o)
  local results = check.connections(sides, { timeout = timeout_option(o), concurrency = 2 })
  results.jobs = check.jobs({ spec }, sides, results)
  return emit_results(results, o, out, env, fix_file)
end

local function run_requirements(parsed, out)
  if #parsed.positional ~= 1 then usage_error("requirements takes source, destination or job") end
  local kind = parsed.positional[1] == "job" and "job"
    or kind_argument(parsed.positional[1], "requirements")
  local opts = job_options(parsed.options, kind)
  local reqs = neoconn.requirements(kind, opts)
  if parsed.options.json then
    out.stdout:write(document.encode(reqs), "\n")
    return report.EXIT_OK
  end
  local role = parsed.options.role
  if role and (role == "" or role:find("\0", 1, true)) then usage_error("--role expects a role name") end
  local placeholders = { database = "<database>", schema = "<schema>",
    table = "<schema>.<table>", sequence = "<schema>.<sequence>",
    ["function"] = "<schema>.<function>(<arguments>)" }
  if role then
    out.stdout:write(("-- what %s role %s needs (replace the <placeholders>)\n")
      :format(kind, neoconn.quote_ident(role)))
  end
  for _, r in ipairs(reqs) do
    local optional = r.optional and " (optional)" or ""
    if r.object_type == "policy" then
      out.stdout:write(("-- row-level security%s: permissive %s policies for the role, or "
        .. "BYPASSRLS: %s\n"):format(optional, table.concat(r.privileges, ", "), r.reason))
    elseif #r.privileges == 0 then -- a condition no GRANT satisfies
      if role then
        out.stdout:write(("-- %s%s: %s\n"):format(r.applies_to, optional, r.reason))
      else
        out.stdout:write(("%-10s %-18s %s%s: %s\n"):format(r.object_type, "-", r.applies_to,
          optional, r.reason))
      end
    elseif role then
      local line = ("GRANT %s ON %s %s TO %s;"):format(table.concat(r.privileges, ", "),
        r.object_type:upper(), placeholders[r.object_type], neoconn.quote_ident(role))
      out.stdout:write(("%s%s -- %s%s\n"):format(r.optional and "-- " or "", line, r.reason,
        r.columns_suffice and " (column grants on every column also do)" or ""))
    else
      out.stdout:write(("%-10s %-18s %s%s: %s\n"):format(r.object_type,
        table.concat(r.privileges, ","), r.applies_to, optional, r.reason))
    end
  end
  return report.EXIT_OK
end

--- Runs the tool. args: the arguments (arg); out: { stdout, stderr }
-- (defaults io.stdout/io.stderr); env: getenv. Returns the exit code.
function cli.main(args, out, env)
  out = out or { stdout = io.stdout, stderr = io.stderr }
  env = env or os.getenv
  local ok, result = pcall(function()
    local parsed = parse(args)
    if parsed.command == "help" then
      out.stdout:write(USAGE)
      return report.EXIT_OK
    elseif parsed.command == "version" then
      out.stdout:write("neoconn ", neoconn.version, "\n")
      return report.EXIT_OK
    elseif parsed.command == "check" then
      return run_check(parsed, out, env)
    elseif parsed.command == "test" then
      return run_test(parsed, out, env)
    elseif parsed.command == "job" then
      return run_job(parsed, out, env)
    end
    return run_requirements(parsed, out)
  end)
  if ok then return result end
  if type(result) == "table" and result.usage then
    out.stderr:write("neoconn: ", neoconn.printable(result.usage), "\n", "run neoconn --help for usage\n")
    return report.EXIT_USAGE
  end
  error(result, 0)
end

return cli
