--- A JSON health endpoint for the sync connections of a neoconn config,
-- for OpenResty / nginx with lua-nginx-module (see nginx.conf beside this).
-- Results are cached in a shared dict for `ttl` seconds and one request at
-- a time refreshes them, so a burst of requests opens one round of database
-- connections, not a burst. Checks yield to nginx while they wait.
local neoconn = require("neoconn")

local health = {}

local settings = { dict = "neoconn_health", ttl = 30, timeout = 5, concurrency = 5 }
local loaded

--- In init_by_lua: loads the config once (a bad config stops nginx from
-- starting, with the config's own message). opts: dict, ttl, timeout,
-- concurrency.
function health.init(path, opts)
  for k, v in pairs(opts or {}) do settings[k] = v end
  local cfg, err = neoconn.config.load(path)
  if not cfg then error("neoconn health: " .. err, 0) end
  loaded = cfg
end

-- Checks every connection; "STATUS\nJSON" as stored in the cache.
local function run_checks()
  local doc = neoconn.check(loaded, { timeout = settings.timeout,
    concurrency = settings.concurrency })
  return (doc.ok and 200 or 503) .. "\n" .. neoconn.encode(doc)
end

-- The cached result, refreshed by at most one request at a time.
local function current(dict)
  local cached = dict:get("result")
  if cached then return cached end
  local longest = settings.timeout * 2 + 5
  if dict:add("refreshing", true, longest) then
    local ok, value = pcall(run_checks)
    if ok then dict:set("result", value, settings.ttl) end
    dict:delete("refreshing")
    if not ok then error(value, 0) end
    return value
  end
  local deadline = ngx.now() + longest
  repeat
    ngx.sleep(0.05)
    cached = dict:get("result")
  until cached or ngx.now() > deadline
  return cached
end

--- In content_by_lua: 200 with the JSON report when every connection
-- passes, 503 otherwise (the same JSON as `neoconn check --json`).
function health.serve()
  local dict = ngx.shared[settings.dict]
  if not dict then error("neoconn health: lua_shared_dict " .. settings.dict .. " is missing", 0) end
  local value = current(dict)
  ngx.header.content_type = "application/json"
  if not value then
    ngx.status = 503
    ngx.say('{"ok":false,"connections":[],"error":"the health check did not finish in time"}')
    return
  end
  local status, body = value:match("^(%d+)\n(.*)$")
  ngx.status = tonumber(status)
  ngx.say(body)
end

return health
