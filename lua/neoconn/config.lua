--- Config files: Lua loaded as data in a sandbox, checked key by key.
-- A config can define `connections` and `rules`; the only globals it sees
-- are the helpers below, and it runs in a child process with bounds on CPU,
-- memory and time (neoconn.sandbox). Every mistake is one message naming
-- the file, the line where it can be found, and the key path.
local neoconn = require("neoconn")
local core = require("neoconn.core")
local sandbox = require("neoconn.sandbox")
local jobs_config = require("neoconn.jobs_config")

local config = {}

config.MAX_BYTES = 1024 * 1024 -- a config file's size
local MAX_ENV_NAME = 256

-- Keys whose values are never written into a message.
local SECRET_KEYS = { password = true, sslpassword = true }

local SSLMODES = { "disable", "allow", "prefer", "require", "verify-ca", "verify-full" }
local SESSION_ATTRS = { "any", "read-write", "read-only", "primary", "standby", "prefer-standby" }

local function describe_value(v, key)
  if key and SECRET_KEYS[key] then return "a " .. type(v) end
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  return type(v)
end

-- A check accepting exactly these values; show writes each in the
-- message (words as they are by default; describe_value quotes strings).
local function one_of(values, show)
  local names = {}
  for i, v in ipairs(values) do names[i] = (show or tostring)(v) end
  return function(v)
    for _, allowed in ipairs(values) do
      if v == allowed then return true end
    end
    return false, "expected one of " .. table.concat(names, ", ")
  end
end

-- What the core takes, so that a config it accepts never makes it raise.
local LIMITS = neoconn.limits

-- A libpq setting: a string the core accepts (no zero byte, within the
-- core's size for a setting, or for a connection string).
local function setting_of(max)
  return function(v)
    if type(v) ~= "string" then return false, "expected a string" end
    if v:find("\0", 1, true) then return false, "expected no zero byte" end
    if #v > max then return false, ("expected at most %d bytes (%d)"):format(max, #v) end
    return true
  end
end
local is_setting = setting_of(LIMITS.field)

-- Why a string cannot be a schema or table name the core takes, or nil.
local function name_problem(x)
  if x:find("\0", 1, true) then return "a name has no zero byte" end
  if #x > LIMITS.name then
    return ("a name has at most %d bytes (this one %d)"):format(LIMITS.name, #x)
  end
end

local function is_port(v)
  local n = (type(v) == "number" or (type(v) == "string" and v:match("^%d+$"))) and tonumber(v)
  if n and n % 1 == 0 and n >= 1 and n <= 65535 then return true end
  return false, "expected an integer 1-65535"
end

local function is_positive(v)
  if type(v) == "number" and v > 0 then return true end
  return false, "expected a positive number of seconds"
end

local function is_positive_integer(v)
  if type(v) == "number" and v > 0 and v % 1 == 0 then return true end
  return false, "expected a positive integer"
end

-- The keys of one connection and what each accepts. `libpq` marks the keys
-- handed to neoconn.connect.
local CONNECTION_KEYS = {
  url = { check = setting_of(LIMITS.target), libpq = true },
  host = { check = is_setting, libpq = true },
  hostaddr = { check = is_setting, libpq = true },
  port = { check = is_port, libpq = true },
  dbname = { check = is_setting, libpq = true },
  user = { check = is_setting, libpq = true },
  password = { check = is_setting, libpq = true },
  sslmode = { check = one_of(SSLMODES), libpq = true },
  sslrootcert = { check = is_setting, libpq = true },
  sslcert = { check = is_setting, libpq = true },
  sslkey = { check = is_setting, libpq = true },
  sslpassword = { check = is_setting, libpq = true },
  connect_timeout = { check = is_positive_integer, libpq = true },
  application_name = { check = is_setting, libpq = true },
  target_session_attrs = { check = one_of(SESSION_ATTRS), libpq = true },
  options = { check = is_setting, libpq = true },
  service = { check = is_setting, libpq = true },
  passfile = { check = is_setting, libpq = true },
  kind = { check = one_of({ "source", "destination" }) },
  tables = { list = "table" },
  schemas = { list = "schema" },
  exclude = { list = "exclude" },
  rules = { rules = true },
  proof = { check = function(v)
    if is_positive_integer(v) then return true end
    return one_of({ true, false, "auto" }, describe_value)(v)
  end },
  disable_rules = { list = "name" },
  timeout = { check = is_positive },
  standby = { check = setting_of(LIMITS.target) },
  cdc_thresholds = { check = function(v)
    if type(v) ~= "table" then return false, "expected a table of thresholds" end
    for k, x in pairs(v) do
      if not (k == "runway_bytes" or k == "catalog_xmin_age" or k == "transaction_seconds"
        or k == "inactive_seconds") then
        return false, "expected runway_bytes, catalog_xmin_age, transaction_seconds or "
          .. "inactive_seconds, found " .. tostring(k)
      end
      if type(x) ~= "number" or x < 0 then return false, tostring(k) .. " must be a number >= 0" end
    end
    return true
  end },
  certificate_warning_days = { check = function(v)
    if type(v) == "number" and v >= 0 and v <= 36500 then return true end
    return false, "expected a number of days, 0 to 36500"
  end },
}

--- A name the core takes for a job option (a slot, a publication): true,
-- or false and what is wrong. The CLI checks its flags with it too.
function config.is_object_name(v)
  local most = neoconn.limits.object_name
  if type(v) == "string" and #v >= 1 and #v <= most and not v:find("\0", 1, true) then return true end
  return false, ("must be a name of 1 to %d bytes"):format(most)
end

-- The job's options, as the core defines them; `only` is the one kind an
-- option applies to, if just one.
for _, option in ipairs(neoconn.job_options()) do
  local kinds = {} -- the kinds of connection it applies to (a job's are the destination's)
  for _, k in ipairs(option.kinds) do
    if k ~= "job" then kinds[#kinds + 1] = k end
  end
  CONNECTION_KEYS[option.name] = { job = true, only = #kinds == 1 and kinds[1] or nil,
    needs = option.needs,
    check = option.names and config.is_object_name or one_of(option.values, describe_value) }
end

local TOP_KEYS = { connections = true, jobs = true, rules = true, disable_rules = true }

--- A config error: file, line (when found), key path and what is wrong.
local function config_error(where, path, message)
  local prefix = where.file
  if where.source then
    -- A problem of the whole file (a key never written) is at its top.
    prefix = prefix .. ":" .. (path and config.locate(where.source, path) or 1)
  end
  return string.format("%s: %s%s", prefix, path and (path .. ": ") or "", message)
end

--- The line where a key path (a.b.c) is first written, searching for each
-- part after the line of the previous one; nil when it cannot be told.
function config.locate(source, path)
  local lines = {}
  for line in (source .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local at, found = 1, nil
  for part in path:gmatch("[^.%[%]]+") do
    local plain = part:gsub("%p", "%%%0")
    local hit
    for i = at, #lines do
      local text = lines[i]:gsub("%-%-.*$", "")
      if text:find("%f[%w_]" .. plain .. "%f[^%w_]%s*=") or text:find("%[%s*[\"']" .. plain .. "[\"']%s*%]")
        or (part:match("^%d+$") and i >= at) then
        hit = i
        break
      end
    end
    if not hit then return found end
    found, at = hit, hit
  end
  return found
end

local function check_names(where, path, value, what)
  if type(value) ~= "table" then
    return nil, config_error(where, path, "expected a list of " .. what .. " names, got "
      .. describe_value(value))
  end
  if #value > LIMITS.list then
    return nil, config_error(where, path, ("at most %d names (%d)"):format(LIMITS.list, #value))
  end
  for k, v in pairs(value) do
    if type(k) ~= "number" then
      return nil, config_error(where, path, "expected a list, found key " .. describe_value(k))
    end
    if type(v) ~= "string" or v == "" then
      return nil, config_error(where, path .. "[" .. k .. "]", "expected a " .. what
        .. " name, got " .. describe_value(v))
    end
    local problem = name_problem(v)
    if problem then return nil, config_error(where, path .. "[" .. k .. "]", problem) end
  end
  return value
end

-- A qualified name in PostgreSQL syntax: schema (nil when bare) and name,
-- or what is wrong and nil.
local function parse_qualified(text)
  local schema, name, err = neoconn.parse_name(text)
  if not name then
    return err .. (text:find("\0", 1, true) and "" or (" in " .. describe_value(text)))
  end
  local problem = (schema and name_problem(schema)) or name_problem(name)
  if problem then return problem end
  return schema, name
end

-- The two lists of schema-qualified entries, a string in PostgreSQL syntax
-- or { schema=, name= }: `tables` (a bare name is a table in public) and
-- `exclude` (a bare name, or no name, is a whole schema).
local ENTRIES = {
  tables = { what = "tables", required = "name", default_schema = "public",
    keys = "schema and name", expected = "\"schema.table\" or { schema=, name= }" },
  exclude = { what = "schemas and tables", required = "schema",
    keys = "schema and, for a table, name",
    expected = "\"schema\", \"schema.table\" or { schema=, name= }" },
}

local function check_entries(where, path, value, kind)
  local rule = ENTRIES[kind]
  if type(value) ~= "table" then
    return nil, config_error(where, path, ("expected a list of %s, got %s"):format(rule.what,
      describe_value(value)))
  end
  if #value > LIMITS.list then
    return nil, config_error(where, path, ("at most %d %s (%d)"):format(LIMITS.list, rule.what,
      #value))
  end
  local out = {}
  for i, t in ipairs(value) do
    local item = path .. "[" .. i .. "]"
    if type(t) == "string" then
      local schema, name = parse_qualified(t)
      if not name then return nil, config_error(where, item, schema) end
      if schema then
        out[i] = { schema = schema, name = name }
      elseif rule.default_schema then
        out[i] = { schema = rule.default_schema, name = name }
      else
        out[i] = { schema = name }
      end
    elseif type(t) == "table" then
      for k in pairs(t) do
        if k ~= "schema" and k ~= "name" then
          return nil, config_error(where, item, "unknown key " .. describe_value(k)
            .. " (expected " .. rule.keys .. ")")
        end
      end
      for _, field in ipairs({ "schema", "name" }) do
        local v = t[field]
        if (v ~= nil or rule.required == field)
          and (type(v) ~= "string" or v == "" or name_problem(v)) then
          return nil, config_error(where, item .. "." .. field, ("expected a %s name, got %s")
            :format(field == "name" and "table" or "schema", describe_value(v)))
        end
      end
      out[i] = { schema = t.schema or rule.default_schema, name = t.name }
    else
      return nil, config_error(where, item, ("expected %s, got %s"):format(rule.expected,
        describe_value(t)))
    end
  end
  for k in pairs(value) do
    if type(k) ~= "number" or k > #out then
      return nil, config_error(where, path, "expected a list, found key " .. describe_value(k))
    end
  end
  return out
end

local function check_tables(where, path, value) return check_entries(where, path, value, "tables") end
local function check_exclude(where, path, value) return check_entries(where, path, value, "exclude") end

local function check_rules(where, path, value)
  if type(value) ~= "table" then
    return nil, config_error(where, path, "expected a table of name = function, got "
      .. describe_value(value))
  end
  for name, fn in pairs(value) do
    if type(name) ~= "string" or not name:match("^[%a_][%w_%.%-]*$") then
      return nil, config_error(where, path, "rule names must be strings like source_read_only, got "
        .. describe_value(name))
    end
    if type(fn) ~= "function" then
      return nil, config_error(where, path .. "." .. name, "expected a function(ctx), got "
        .. describe_value(fn))
    end
  end
  return value
end

local function names_of(what)
  return function(where, path, value) return check_names(where, path, value, what) end
end

-- The lists a connection, and the config as a whole, may hold.
local CONNECTION_LISTS = { { "tables", check_tables }, { "schemas", names_of("schema") },
  { "exclude", check_exclude },
  { "rules", check_rules }, { "disable_rules", names_of("rule") } }
local TOP_LISTS = { { "rules", check_rules }, { "disable_rules", names_of("rule") } }

-- Checks the lists present in spec into out[key]; returns out or nil, err.
local function check_lists(where, prefix, spec, lists, out)
  for _, list in ipairs(lists) do
    local key, checker = list[1], list[2]
    if spec[key] ~= nil then
      local value, err = checker(where, prefix .. key, spec[key])
      if not value then return nil, err end
      out[key] = value
    end
  end
  return out
end

local function check_connection(where, name, spec)
  local path = "connections." .. name
  if type(spec) ~= "table" then
    return nil, config_error(where, path, "expected a table, got " .. describe_value(spec))
  end
  local keys = {}
  for k in pairs(spec) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local rule = CONNECTION_KEYS[k]
    local value = spec[k]
    if not rule then
      return nil, config_error(where, path .. "." .. k, "unknown key")
    end
    local ok, why = true, nil
    if rule.check then
      ok, why = rule.check(value)
    end
    if not ok then
      return nil, config_error(where, path .. "." .. k, why .. ", got " .. describe_value(value, k))
    end
    if rule.only and spec.kind ~= rule.only then
      return nil, config_error(where, path .. "." .. k, "applies to " .. rule.only .. "s only")
    end
    if rule.needs and spec[rule.needs] ~= true then
      return nil, config_error(where, path .. "." .. k, "needs " .. rule.needs .. " = true")
    end
  end
  if spec.kind == nil then
    return nil, config_error(where, path, "kind is required: \"source\" or \"destination\"")
  end
  local conn = {
    name = name,
    kind = spec.kind,
    target = {},
    options = {},
    timeout = spec.timeout,
    proof = spec.proof,
    certificate_warning_days = spec.certificate_warning_days,
    cdc_thresholds = spec.cdc_thresholds,
    standby = spec.standby,
    rules = {},
    disable_rules = {},
  }
  for k, rule in pairs(CONNECTION_KEYS) do
    if rule.libpq and spec[k] ~= nil then conn.target[k] = spec[k] end
    if rule.job then conn.options[k] = spec[k] end
  end
  if conn.target.port ~= nil then conn.target.port = tostring(math.floor(tonumber(conn.target.port))) end
  if conn.target.connect_timeout ~= nil then
    conn.target.connect_timeout = tostring(math.floor(conn.target.connect_timeout))
  end
  return check_lists(where, path .. ".", spec, CONNECTION_LISTS, conn)
end

--- Checks the environment a config produced; returns the config or nil, err.
function config.check(env, where)
  for k in pairs(env) do
    if not TOP_KEYS[k] then
      return nil, config_error(where, tostring(k), "unknown top-level key (expected connections, "
        .. "jobs, rules, disable_rules)")
    end
  end
  if type(env.connections) ~= "table" then
    return nil, config_error(where, "connections", "expected a table of name = { ... }, got "
      .. describe_value(env.connections))
  end
  local result = { file = where.file, connections = {}, jobs = {}, rules = {}, disable_rules = {} }
  local names = {}
  for name in pairs(env.connections) do
    if type(name) ~= "string" or not name:match("^[%w_%.%-]+$") then
      return nil, config_error(where, "connections", "connection names must be strings of "
        .. "letters, digits, _ . -, got " .. describe_value(name))
    end
    names[#names + 1] = name
  end
  table.sort(names)
  if #names == 0 then
    return nil, config_error(where, "connections", "no connections defined")
  end
  for _, name in ipairs(names) do
    local conn, err = check_connection(where, name, env.connections[name])
    if not conn then return nil, err end
    result.connections[#result.connections + 1] = conn
  end
  if env.jobs ~= nil then
    local jobs, err = jobs_config.check(env.jobs, result.connections, {
      error = function(path, message) return config_error(where, path, message) end,
      entries = function(path, value, kind) return check_entries(where, path, value, kind) end,
      names = function(path, value) return check_names(where, path, value, "schema") end,
      lists = function(path, spec, out)
        return check_lists(where, path, spec, { { "rules", check_rules },
          { "disable_rules", names_of("rule") } }, out)
      end,
      parse = parse_qualified, describe = describe_value, option_keys = CONNECTION_KEYS })
    if not jobs then return nil, err end
    result.jobs = jobs
  end
  return check_lists(where, "", env, TOP_LISTS, result)
end

-- Loads a text chunk with env as its only globals (Lua 5.1 to 5.4).
local function load_text(source, chunkname, env)
  if source:sub(1, 1) == "\27" then
    return nil, chunkname:sub(2) .. ":1: binary chunks are not accepted"
  end
  if setfenv and loadstring then -- Lua 5.1 / LuaJIT
    local fn, err = loadstring(source, chunkname)
    if fn then setfenv(fn, env) end
    return fn, err
  end
  return load(source, chunkname, "t", env)
end

local SAFE_GLOBALS = { "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal",
  "rawget", "rawlen", "select", "tonumber", "tostring", "type" }
local SAFE_LIBRARIES = {
  string = { "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower", "match", "rep",
    "reverse", "sub", "upper" },
  table = { "concat", "insert", "remove", "sort", "unpack" },
  math = { "abs", "ceil", "exp", "floor", "fmod", "huge", "log", "max", "maxinteger", "min",
    "mininteger", "modf", "pi", "sqrt", "tointeger", "type", "ult" },
  utf8 = { "char", "charpattern", "codepoint", "codes", "len", "offset" },
}

--- The helpers a config can call. `env("NAME")` reads an environment
-- variable (a config error when unset); `env("NAME", default)` falls back.
local function helpers(getenv)
  local box = {}
  box.env = function(name, default)
    if type(name) ~= "string" then error("env: variable name expected", 2) end
    if #name > MAX_ENV_NAME or name:find("\0", 1, true) then
      error(("env: a variable name of %d bytes is not one"):format(#name), 2)
    end
    local v = getenv(name)
    if v == nil then
      if default ~= nil then return default end
      error("env: variable " .. name .. " is not set", 2)
    end
    return v
  end
  -- What rules and configs may call: pure functions of their arguments.
  -- Bounds hold whatever they call (a rule runs in a child with a CPU, a
  -- time and a memory limit), so string.rep stays; string.dump, load and
  -- everything that reaches files, processes or globals do not.
  for _, name in ipairs(SAFE_GLOBALS) do box[name] = _G[name] end
  box.unpack = rawget(_G, "unpack") or table.unpack
  for lib, names in pairs(SAFE_LIBRARIES) do
    local copy = {}
    for _, name in ipairs(names) do copy[name] = _G[lib] and _G[lib][name] end
    box[lib] = copy
  end
  box.table.unpack = box.unpack
  return box
end

-- A message about the password's line never quotes what is on it, and a
-- syntax error never quotes a string literal (an unterminated one runs to
-- the end of its line, whatever secret a local holds).
local function without_secret_text(message, source)
  message = message:gsub("near ('[\"'%[].*)$", "near <a string>")
  local line = tonumber(message:match(":(%d+):"))
  local text
  local n = 0
  for l in (source .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if n == line then text = l end
  end
  if text and (text:find("password", 1, true) or message:find("password", 1, true)) then
    message = message:gsub("near (%b'')", "near <hidden>"):gsub("near ('[^']*)$", "near <hidden>")
  end
  return message
end

-- Runs the config and checks it, in the process it is called in (the
-- sandbox's child): the checked config, rule functions included, or nil
-- and one message.
local function run_config(source, where, getenv)
  local env = helpers(getenv)
  local given = {}
  for k, v in pairs(env) do given[k] = v end
  local fn, err = load_text(source, "@" .. where.file, env)
  if not fn then return nil, without_secret_text(err, source) end
  local ok, run_err = pcall(fn)
  if not ok then
    local message = tostring(run_err)
    if message:sub(1, #where.file + 1) ~= where.file .. ":" then
      message = where.file .. ": " .. message -- raised where no position is known
    end
    return nil, without_secret_text(message, source)
  end
  -- What the config defined: every global that is not an untouched helper.
  local defined = {}
  for k, v in pairs(env) do
    if given[k] ~= v then defined[k] = v end
  end
  return config.check(defined, where)
end

-- The data of a checked config: each rule function replaced by its name.
local function as_data(cfg)
  local function names(rules)
    local list = {}
    for name in pairs(rules) do list[#list + 1] = name end
    table.sort(list)
    return list
  end
  local data = { file = cfg.file, rules = names(cfg.rules), disable_rules = cfg.disable_rules,
    connections = {} }
  for list, holders in pairs({ connections = cfg.connections, jobs = cfg.jobs }) do
    data[list] = {}
    for i, c in ipairs(holders) do
      local copy = {}
      for k, v in pairs(c) do copy[k] = v end
      copy.rules = names(c.rules)
      data[list][i] = copy
    end
  end
  return data
end

-- A rule of the config, for the policy: load() gives its function; it is
-- called in the rule's own sandbox child, which runs the config again.
local function rule_ref(source, where, getenv, holder, name)
  return { name = name, load = function()
    local cfg = assert(run_config(source, where, getenv))
    if holder == nil then return cfg.rules[name] end
    for _, c in ipairs(cfg[holder.list]) do
      if c.name == holder.name then return c.rules[name] end
    end
  end }
end

-- The mark of a loaded config.
local LOADED = {}

--- Loads a config from its text. Returns the config, or nil and one message.
-- The config runs in a sandbox (neoconn.sandbox.CONFIG_LIMITS); its rules
-- come back as references the policy runs in sandboxes of their own.
-- opts.getenv replaces os.getenv (for tests).
function config.load_string(source, file, opts)
  opts = opts or {}
  local where = { file = file or "config", source = source }
  local getenv = opts.getenv or os.getenv
  if #source > config.MAX_BYTES then
    return nil, ("%s: %d bytes, more than a config may have (%d)"):format(where.file, #source,
      config.MAX_BYTES)
  end
  local result, err, seen = sandbox.run(function()
    sandbox.watch("@" .. where.file)
    local cfg, check_err = run_config(source, where, getenv)
    if not cfg then return { error = check_err } end
    return as_data(cfg)
  end, sandbox.CONFIG_LIMITS)
  -- file:line where the config was when it failed without a position of
  -- its own (stopped by a bound, out of memory, C stack overflow).
  local line = seen and seen:sub(1, #where.file + 1) == "@" .. where.file
    and seen:match(":(%d+)$")
  local at = where.file .. ":" .. (line or 1)
  if not result then
    if err:find("^failed: ") then return nil, at .. ": " .. err:sub(9) end
    local looping = (err:find("^used more") or err:find("^ran longer"))
      and " (a config is data: is it looping?)" or ""
    return nil, ("%s: the config was stopped: it %s%s"):format(at, err, looping)
  end
  local message = result.error
  if message and message:find("not enough memory", 1, true) then
    return nil, ("%s: the config was stopped: it ran out of memory (%d MiB)"):format(at,
      math.floor(sandbox.CONFIG_LIMITS.memory / (1024 * 1024)))
  end
  if message and not message:find("^" .. where.file:gsub("%p", "%%%0") .. ":%d+:") then
    message = at .. ": " .. message:gsub("^" .. where.file:gsub("%p", "%%%0") .. ": ", "")
  end
  if message then return nil, message end
  local function refs(names, holder)
    local rules = {}
    for _, name in ipairs(names) do rules[name] = rule_ref(source, where, getenv, holder, name) end
    return rules
  end
  result.rules = refs(result.rules)
  for _, list in ipairs({ "connections", "jobs" }) do
    for _, c in ipairs(result[list]) do c.rules = refs(c.rules, { list = list, name = c.name }) end
  end
  return setmetatable(result, LOADED)
end

--- Whether cfg is a config this module loaded (not connections written
-- in code, which neoconn.check checks first).
function config.is_loaded(cfg)
  return getmetatable(cfg) == LOADED
end

--- Loads a config file (a regular file of at most config.MAX_BYTES).
-- Returns the config, or nil and one message.
function config.load_file(path, opts)
  local kind, size = core.file_kind(path)
  if not kind then return nil, size end
  if kind ~= "file" then return nil, path .. ": not a regular file (" .. kind .. ")" end
  if size > config.MAX_BYTES then
    return nil, ("%s: %d bytes, more than a config may have (%d)"):format(path, size,
      config.MAX_BYTES)
  end
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local source = f:read(config.MAX_BYTES + 1) or ""
  f:close()
  return config.load_string(source, path, opts)
end

return config
