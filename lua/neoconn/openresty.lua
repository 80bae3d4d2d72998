--- neoconn in OpenResty / nginx with lua-nginx-module: a content handler
-- serving the check of a config file as JSON (the document of `neoconn
-- check --json`) or as Prometheus text (`?format=prometheus`, or an Accept
-- header asking for text/plain or OpenMetrics).
--
--   location = /neoconn {
--     content_by_lua_block {
--       require("neoconn.openresty").serve({ config = "/etc/neoconn/neoconn.lua" })
--     }
--   }
--
-- The result is cached in a lua_shared_dict (every worker shares it) for
-- `ttl` seconds. One request at a time refreshes it; the others serve the
-- last result meanwhile (only the very first requests, with nothing cached
-- yet, wait for it), so an expired cache never starts a herd of checks.
-- Checks never block the worker (they sleep through ngx.sleep), run
-- `concurrency` connections at a time, each bounded by `timeout`.
local neoconn = require("neoconn")

local openresty = {}

local DEFAULTS = { dict = "neoconn", ttl = 30, concurrency = 5, timeout = 5 }

-- Checks the handler's options (a programmer's mistake raises, naming it).
local function options_of(opts)
  if type(opts) ~= "table" then
    error("neoconn.openresty.serve: opts: table expected, got " .. type(opts), 3)
  end
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  for k, v in pairs(opts) do
    if DEFAULTS[k] == nil and k ~= "config" and k ~= "only" then
      error("neoconn.openresty.serve: unknown option " .. tostring(k), 3)
    end
    o[k] = v
  end
  if type(o.config) ~= "string" or o.config == "" then
    error("neoconn.openresty.serve: config: the path of a config file expected", 3)
  end
  for _, k in ipairs({ "ttl", "concurrency", "timeout" }) do
    if type(o[k]) ~= "number" or o[k] <= 0 then
      error("neoconn.openresty.serve: " .. k .. ": a positive number expected", 3)
    end
  end
  if o.only ~= nil and type(o.only) ~= "table" then
    error("neoconn.openresty.serve: only: a list of connection names expected", 3)
  end
  return o
end

-- Whether the request asks for Prometheus text.
local function wants_prometheus()
  local format = ngx.var.arg_format
  if format then return format == "prometheus" end
  local accept = ngx.var.http_accept or ""
  return accept:find("text/plain", 1, true) ~= nil or accept:find("openmetrics", 1, true) ~= nil
end

local function respond(status, content_type, body)
  ngx.status = status
  ngx.header.content_type = content_type
  ngx.header.cache_control = "no-store"
  ngx.print(body)
end

local function json_error(status, code, message)
  respond(status, "application/json", neoconn.encode({ format = 1, ok = false,
    error = { code = code, message = neoconn.printable(message) } }) .. "\n")
end

-- Runs the check; returns the entry to cache ({ status, json, metrics }),
-- or nil and a config error's message.
local function run(o, dict, key)
  local started = ngx.now()
  local cfg, err = neoconn.config.load(o.config)
  if not cfg then return nil, err end
  local check = require("neoconn.check")
  local selected = cfg.connections
  if o.only then
    local wanted = {}
    for _, name in ipairs(o.only) do wanted[name] = true end
    selected = {}
    for _, c in ipairs(cfg.connections) do
      if wanted[c.name] then selected[#selected + 1] = c end
    end
  end
  local results = check.connections(selected, { rules = cfg.rules, disable_rules = cfg.disable_rules,
    timeout = o.timeout, concurrency = o.concurrency })
  if #cfg.jobs > 0 then
    results.jobs = check.jobs(cfg.jobs, selected, results, { disable_rules = cfg.disable_rules })
  end
  ngx.update_time()
  local checks = dict:incr(key .. "checks", 1, 0)
  local doc = require("neoconn.document").of(results)
  local metrics = require("neoconn.prometheus").render(results, { seconds = ngx.now() - started,
    finished = ngx.now(), checks = checks })
  return { status = doc.ok and 200 or 503, json = neoconn.encode(doc) .. "\n", metrics = metrics }
end

local function store(dict, key, entry)
  -- Kept without an expiry: the last result is served while the next is made.
  dict:set(key .. "at", ngx.now())
  dict:set(key .. "status", entry.status)
  dict:set(key .. "json", entry.json)
  dict:set(key .. "metrics", entry.metrics)
end

local function cached(dict, key)
  local json = dict:get(key .. "json")
  if not json then return nil end
  return { status = dict:get(key .. "status"), json = json, metrics = dict:get(key .. "metrics"),
    at = dict:get(key .. "at") }
end

--- In content_by_lua: serves the check of opts.config. opts: config (path,
-- required), ttl (seconds a result is fresh, 30), concurrency (5), timeout
-- (seconds per connection, 5), only (connection names), dict (the
-- lua_shared_dict's name, "neoconn"). 200 when every connection and job
-- passes, 503 otherwise, 500 with a JSON error when the config does not
-- load or the shared dict is missing.
function openresty.serve(opts)
  local o = options_of(opts)
  local dict = ngx.shared[o.dict]
  if not dict then
    return json_error(500, "configuration", ("lua_shared_dict %s is missing from nginx.conf"):format(o.dict))
  end
  local key = o.config .. "\0" .. table.concat(o.only or {}, "\0") .. "\0"
  local entry = cached(dict, key)
  -- The longest a refresh may take: every connection's timeout in turn.
  local longest = o.timeout * 20 + 5
  if not entry or ngx.now() - entry.at >= o.ttl then
    if dict:add(key .. "refreshing", true, longest) then
      local ok, fresh, err = pcall(run, o, dict, key)
      dict:delete(key .. "refreshing")
      if not ok then
        ngx.log(ngx.ERR, "neoconn: the check failed: ", neoconn.printable(tostring(fresh)))
        return json_error(500, "internal", "the check failed; see nginx's error log")
      end
      if not fresh then return json_error(500, "invalid_config", err) end
      store(dict, key, fresh)
      entry = fresh
    elseif not entry then
      -- Nothing to serve yet: wait for the request that is making it.
      local deadline = ngx.now() + longest
      repeat
        ngx.sleep(0.02)
        entry = cached(dict, key)
      until entry or not dict:get(key .. "refreshing") or ngx.now() > deadline
      if not entry then
        return json_error(503, "not_ready", "the first check did not finish; try again")
      end
    end
  end
  if wants_prometheus() then
    respond(entry.status == 500 and 500 or 200, require("neoconn.prometheus").CONTENT_TYPE,
      entry.metrics)
  else
    respond(entry.status, "application/json", entry.json)
  end
end

return openresty
