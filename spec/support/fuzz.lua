--- A fuzz target for the public API: random arguments, of every type and of
-- hostile shapes, to every function and method, against the throwaway
-- cluster. A call may raise (a programmer's mistake) or return an error;
-- it must never crash, hang past its deadline or print a password.
-- `make fuzz` runs it under ASan and UBSan for NEOCONN_FUZZ_SECONDS;
-- spec/fuzz_spec.lua runs a short fixed-seed slice in `make test`.
-- fuzz.run(seed, iterations, seconds) -> calls made, failures (a list).
local neoconn = require("neoconn")
local core = require("neoconn.core")
local config = require("neoconn.config")
local policy = require("neoconn.policy")

local fuzz = {}
local env = os.getenv
local SECRET = "Fuzz-S3cret-pw"

local KEYWORDS = { "host", "hostaddr", "port", "dbname", "user", "password", "sslmode", "sslrootcert",
  "sslcert", "sslkey", "sslpassword", "connect_timeout", "application_name", "target_session_attrs",
  "options", "service", "passfile", "url", "keepalives_idle", "client_encoding", "bogus" }
local OPTION_KEYS = { "timeout", "tables", "schemas", "job", "proof", "concurrency", "on_report" }
local JOB_KEYS = { "kind", "truncate", "on_conflict", "reset_sequences", "init_schema", "cdc" }
local WORDS = { "source", "destination", "update", "nothing", "cascade", "auto", "public",
  "public.t", '"Odd"."a.b"', "a.b.c", "", "\0", "disable", "require", "verify-full", "read-write",
  "postgresql://u:" .. SECRET .. "@127.0.0.1:1/db", "host=127.0.0.1 password=" .. SECRET .. " x",
  "%zz", "'", '"', "\\", "password=", "://", "127.0.0.1" }

local function random_value(r, depth)
  local pick = r(depth > 2 and 9 or 11)
  if pick == 1 then return nil
  elseif pick == 2 then return r(2) == 1
  elseif pick == 3 then
    local numbers = { 0, -1, 1, 0.001, 1e308, -1e308, 0 / 0, math.huge, -math.huge, 2 ^ 53, 65536, 1.5 }
    return numbers[r(#numbers)]
  elseif pick == 4 then return WORDS[r(#WORDS)]
  elseif pick == 5 then
    local bytes = {}
    for i = 1, r(40) - 1 do bytes[i] = string.char(r(256) - 1) end
    return table.concat(bytes)
  elseif pick == 6 then return string.rep(WORDS[r(#WORDS)], r(3) == 1 and 5000 or 3)
  elseif pick == 7 then return function() return r(3) end
  elseif pick == 8 then return KEYWORDS[r(#KEYWORDS)]
  elseif pick == 9 then return r(1000) - 500
  else
    local t = {}
    for _ = 1, r(5) - 1 do
      local key = r(3) == 1 and r(4) or (r(2) == 1 and KEYWORDS[r(#KEYWORDS)]
        or (r(2) == 1 and OPTION_KEYS[r(#OPTION_KEYS)] or JOB_KEYS[r(#JOB_KEYS)]))
      t[key] = random_value(r, depth + 1)
    end
    return t
  end
end

-- A target: mostly well-formed, pointing at the cluster, a refused port or
-- a listener that never answers, with a random field broken.
local function random_target(r)
  local ports = { env("NEOCONN_TEST_PORT"), env("NEOCONN_TEST_REFUSED_PORT"),
    env("NEOCONN_TEST_SILENT_PORT"), env("NEOCONN_TEST_CLOSING_PORT") }
  local t = { host = "127.0.0.1", port = ports[r(#ports)], user = "fuzz_role", password = SECRET,
    dbname = "neoconn_test", sslmode = r(2) == 1 and "disable" or "prefer" }
  if r(3) == 1 then t[KEYWORDS[r(#KEYWORDS)]] = random_value(r, 1) end
  if r(6) == 1 then return random_value(r, 0) end
  if r(6) == 1 then
    return ("host=127.0.0.1 port=%s user=fuzz_role password=%s%s"):format(tostring(t.port), SECRET,
      r(2) == 1 and (" " .. tostring(WORDS[r(#WORDS)])) or "")
  end
  return t
end

-- A timeout: short, or one that must be refused (never a long valid one:
-- against the silent listener that would be a hang asked for).
local function random_timeout(r)
  local bad = { 0, -1, 0 / 0, math.huge, -math.huge, "1", true, {} }
  return r(3) == 1 and bad[r(#bad)] or r(20) / 100
end

local function random_opts(r)
  if r(6) == 1 then return ({ true, "x", 5, function() end })[r(4)] end
  local opts = { timeout = random_timeout(r) }
  for _ = 1, r(3) - 1 do
    local key = OPTION_KEYS[r(#OPTION_KEYS)]
    if key ~= "timeout" then opts[key] = random_value(r, 1) end
  end
  if r(3) == 1 then
    opts.job = { kind = r(2) == 1 and "source" or "destination" }
    for _ = 1, r(3) - 1 do opts.job[JOB_KEYS[r(#JOB_KEYS)]] = random_value(r, 2) end
  end
  return opts
end

-- The calls, each with random arguments. conn is a live connection to the
-- cluster (as the fuzz role) or nil. The first five take the password as a
-- target's secret: what they return must never hold it.
local TARGET_CALLS = 5
local NAMES = { "connect", "test", "test_begin/test_step", "test_all", "connect_start/connect_poll",
  "requirements", "quote_ident", "parse_name", "redact", "core.poll", "conn:query",
  "conn:query(params)", "config.load_string", "policy.evaluate" }
local function calls(r, conn)
  return {
    function() return neoconn.connect(random_target(r), random_opts(r)) end,
    function() return neoconn.test(random_target(r), random_opts(r)) end,
    function()
      local c = neoconn.test_begin(random_target(r), random_opts(r))
      for _ = 1, 1000 do
        local report, mode, fd, left = c:test_step()
        if report then return report end
        core.poll({ fd }, { mode }, math.min(left, 0.01))
      end
      c:close()
    end,
    function() return neoconn.test_all({ random_target(r), random_target(r) }, random_opts(r)) end,
    function()
      local c, err = neoconn.connect_start(random_target(r), random_opts(r))
      if not c then return nil, err end
      local ready, failure
      for _ = 1, 5 do ready, failure = c:connect_poll() end
      c:close()
      return ready, failure
    end,
    function() return neoconn.requirements(random_value(r, 0), random_value(r, 0)) end,
    function() return neoconn.quote_ident(random_value(r, 0), random_value(r, 0)) end,
    function() return neoconn.parse_name(random_value(r, 0)) end,
    function() return neoconn.redact(random_value(r, 0), random_value(r, 0)) end,
    function() return core.poll(random_value(r, 0), random_value(r, 0), random_timeout(r)) end,
    function()
      if conn then return conn:query(random_value(r, 0), random_value(r, 0), random_opts(r)) end
    end,
    function()
      if conn then
        local params = {}
        for i = 1, r(200) do params[i] = random_value(r, 2) end
        return conn:query("SELECT $1::text", params, { timeout = 1 })
      end
    end,
    function() return config.load_string(tostring(random_value(r, 0)), "fuzz.lua") end,
    function()
      return policy.evaluate({ ok = true, job = { kind = "source" }, session = {}, role = {},
        tables = random_value(r, 1) }, { name = "f", kind = "source", options = {} })
    end,
  }
end

--- Runs random calls until `iterations` are made or `seconds` pass.
function fuzz.run(seed, iterations, seconds)
  local r = require("pg").random(seed)
  local failures = {}
  local conn = neoconn.connect({ host = env("NEOCONN_TEST_HOST"), port = env("NEOCONN_TEST_PORT"),
    user = "fuzz_role", password = SECRET, dbname = "neoconn_test" })
  local list = calls(r, conn)
  local stop = neoconn.clock() + seconds
  local n = 0
  while n < iterations and neoconn.clock() < stop do
    n = n + 1
    local started = neoconn.clock()
    local which = r(#list)
    local ok, a, b = pcall(list[which])
    local text = tostring(a) .. " " .. tostring(b)
    if type(a) == "table" and a.error then text = text .. tostring(a.error) end
    if type(a) == "table" and a[1] and a[1].error then text = text .. tostring(a[1].error) end
    if which <= TARGET_CALLS and text:find(SECRET, 1, true) then
      failures[#failures + 1] = ("call %d printed the password: %s"):format(n, text:sub(1, 300))
    end
    if neoconn.clock() - started > 8 then
      failures[#failures + 1] = ("call %d (%s) took %.1f s: %s"):format(n, NAMES[which],
        neoconn.clock() - started, text:sub(1, 300))
    end
    if not ok and type(a) ~= "string" then
      failures[#failures + 1] = ("call %d raised a %s, not a message"):format(n, type(a))
    end
  end
  if conn then conn:close() end
  return n, failures
end

--- Creates the role the fuzz connects as (an administrator's step).
function fuzz.ensure_role()
  require("pg").ensure_role("fuzz_role", SECRET)
end

-- As a script (make fuzz): fuzz.lua SEED SECONDS
if arg and arg[0] and arg[0]:match("fuzz%.lua$") then
  package.path = arg[0]:gsub("fuzz%.lua$", "?.lua") .. ";" .. package.path -- pg.lua
  local seed, seconds = tonumber(arg[1]) or os.time(), tonumber(arg[2]) or 60
  fuzz.ensure_role() -- pg.lua also makes the test database
  local n, failures = fuzz.run(seed, math.huge, seconds)
  print(("fuzz: seed %d, %d calls in %d s, %d failures"):format(seed, n, seconds, #failures))
  for _, f in ipairs(failures) do print("  " .. f) end
  os.exit(#failures == 0 and 0 or 1)
end

return fuzz
