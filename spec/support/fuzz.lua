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
-- What a call returns when an invariant broke (not an error it may give).
local BROKEN = {}

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

-- Characters a name may hold that must never be shown raw: every control
-- byte, DEL, C1 controls, direction marks; and plain ones, quotes and
-- backslashes among them.
local HIDDEN = { "\r", "\n", "\t", "\27", "\127", "\194\155", "\194\133", "\226\128\174",
  "\226\129\166", "\239\187\191" }
for c = 1, 31 do HIDDEN[#HIDDEN + 1] = string.char(c) end
local PLAIN = { "a", "Z", "_", "1", " ", ".", '"', "'", "\\", "ü", "日", "-", ";", "$", ":", "{", "," }

local function random_name(r)
  local parts = {}
  for i = 1, r(12) do parts[i] = r(3) == 1 and HIDDEN[r(#HIDDEN)] or PLAIN[r(#PLAIN)] end
  return table.concat(parts)
end

local function has_hidden(text)
  return text:find("[%c\127]") or text:find("\194[\128-\159]") or text:find("\226\128[\168-\174]")
    or text:find("\226\129[\160-\175]") or text:find("\239\187\191")
end

-- A name with control characters: quoted, printed and written as a literal
-- without any, read back the same by parse_name and by the server.
local function names_stay_printable(r, conn)
  local name = random_name(r)
  local quoted, literal = neoconn.quote_ident(name), neoconn.quote_literal(name)
  for _, out in ipairs({ quoted, literal, neoconn.printable(name) }) do
    if has_hidden(out) then return BROKEN, ("%q shows a hidden character: %q"):format(name, out) end
  end
  local _, parsed = neoconn.parse_name(quoted)
  if parsed ~= name and not name:find(".", 1, true) then
    return BROKEN, ("parse_name(quote_ident(%q)) gave %q"):format(name, tostring(parsed))
  end
  if conn then
    local rows = conn:query(("SELECT %s = $1 AS literal, (SELECT k FROM json_object_keys(row_to_json(s)) k)"
      .. " = $1 AS ident FROM (SELECT 1 AS %s) s"):format(literal, quoted), { name }, { timeout = 2 })
    if rows and not (rows[1].literal and rows[1].ident) then
      return BROKEN, ("the server reads %s / %s back otherwise than %q"):format(literal, quoted, name)
    end
  end
end

-- A URL password holding @, / : ? # or %: no piece of it in any message.
local PIECES = { "Zq7xW", "Kp3mV", "Rt8nB" }
local function url_password_never_echoed(r)
  local seps = { "@", "/", ":", "?", "#", "%", "@@", "/@", ":@" }
  local password = PIECES[1] .. seps[r(#seps)] .. PIECES[2] .. seps[r(#seps)] .. PIECES[3]
  local ports = { env("NEOCONN_TEST_PORT"), env("NEOCONN_TEST_REFUSED_PORT") }
  local url = ("postgresql://fuzz_role:%s@127.0.0.1:%s/neoconn_test%s"):format(password,
    ports[r(#ports)], r(2) == 1 and "?sslmode=disable" or "")
  local _, err = neoconn.connect(url, { timeout = 1 })
  local report = neoconn.test(url, { timeout = 1 })
  local text = tostring(err) .. " " .. tostring(report.error)
  for _, piece in ipairs(PIECES) do
    if text:find(piece, 1, true) then return BROKEN, ("%s echoed %s: %s"):format(url, piece, text) end
  end
end

-- A password spelled any way libpq reads one: never in the target's
-- settings as rules see them.
local function settings_hold_no_password(r)
  local spellings = { "password=%s", "password = %s", "password='%s'", "password =\t'%s'",
    "password=decoy password=%s" }
  local text = ("host=127.0.0.1 user=u " .. spellings[r(#spellings)]):format(SECRET)
  local ok, settings = pcall(neoconn.target_settings, r(2) == 1 and text or { url = text, port = 1 })
  if ok and settings then
    for k, v in pairs(settings) do
      if tostring(v):find(SECRET, 1, true) then return BROKEN, ("settings.%s holds it"):format(k) end
    end
  end
end

-- A doctored answer (a proxy changes one message): the test, the policy
-- and the reports never raise.
local function doctored_answer_judged(r)
  local proxy = env("NEOCONN_TEST_PROXY_PORT")
  if not proxy or not io.open("build/tools/doctor_proxy") then return end
  local modes = { "rename", "type", "drop", "null", "zero", "extra", "flip", "fatal" }
  local mode, nth, column = modes[r(#modes)], r(20), r(40) - 1
  local pipe = io.popen(("build/tools/doctor_proxy %s %s %s %d %d"):format(proxy, env("NEOCONN_TEST_PORT"),
    mode, nth, column))
  if pipe:read("*l") ~= "ready" then return end
  local ok, err = pcall(function()
    local result = require("neoconn.check").connection({ name = "doctored", kind = "destination",
      options = { on_conflict = "update" }, target = ("host=127.0.0.1 port=%s user=fuzz_role password=%s"
        .. " dbname=neoconn_test sslmode=disable gssencmode=disable"):format(proxy, SECRET) },
      { timeout = 3 })
    require("neoconn.report").human({ result })
    local document = require("neoconn.document")
    document.encode(document.of({ result }))
  end)
  pipe:close()
  if not ok then return BROKEN, ("%s %d %d raised: %s"):format(mode, nth, column, tostring(err)) end
end

-- The calls, each with random arguments. conn is a live connection to the
-- cluster (as the fuzz role) or nil. The first five take the password as a
-- target's secret: what they return must never hold it.
local TARGET_CALLS = 5
local NAMES = { "connect", "test", "test_begin/test_step", "test_all", "connect_start/connect_poll",
  "requirements", "quote_ident", "parse_name", "redact", "core.poll", "conn:query",
  "conn:query(params)", "config.load_string", "policy.evaluate", "names", "url passwords",
  "target_settings", "doctored answers" }
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
    function() return names_stay_printable(r, conn) end,
    function() return url_password_never_echoed(r) end,
    function() return settings_hold_no_password(r) end,
    function() return doctored_answer_judged(r) end,
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
    if ok and a == BROKEN then
      failures[#failures + 1] = ("call %d (%s): %s"):format(n, NAMES[which], tostring(b))
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
