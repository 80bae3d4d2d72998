--- Where a connection went: host, port, dbname, user and sslmode as the
-- session really used them (defaults, the environment and service files
-- included), or as the target gives them when no session was made; never a
-- password. One source for the rules' flat view and the JSON document.
local neoconn = require("neoconn")

local endpoint = {}

-- endpoint field -> the report's session field holding what was used
local FROM_SESSION = { host = "host", hostaddr = "hostaddr", port = "port", dbname = "database",
  user = "session_user", sslmode = "sslmode" }

--- The endpoint of target as report saw it, and the target as libpq reads
-- it (neoconn.target_settings: every keyword given, without secrets).
function endpoint.of(target, report)
  -- A target the core refuses (none, for a report judged on its own) has
  -- no settings to show.
  local ok, given = pcall(neoconn.target_settings, target)
  if not ok or type(given) ~= "table" then given = {} end -- refused, or unparsable
  local session = report and report.session or {}
  local e = {}
  for key, used in pairs(FROM_SESSION) do
    local v = session[used]
    if v == nil or v == "" then v = given[key] end
    e[key] = v
  end
  return e, given
end

return endpoint
