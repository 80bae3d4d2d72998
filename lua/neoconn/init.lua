--- neoconn: can this PostgreSQL connection be used as a sync source or
-- destination, and if not, what exactly is missing?
-- The C core (neoconn.core) does the work; this module is its public face.
-- Inside OpenResty (a phase that may yield) connect and test never block
-- the nginx worker: they drive the core's state machine and sleep through
-- ngx.sleep while the network is slow. test_all tests many targets at once.
local core = require("neoconn.core")
local nginx = require("neoconn.nginx")

local neoconn = {
  version = core.version,
  requirements = core.requirements,
  job_options = core.job_options,
  proof_auto_limit = core.proof_auto_limit, -- jobs of up to this many tables are proven
  -- bytes of a setting, a connection string, a name, an object name (a slot,
  -- a publication); names in a list
  limits = core.limits,
  quote_ident = core.quote_ident,
  quote_literal = core.quote_literal,
  redact = core.redact, -- the redaction every error message gets
  -- untrusted text as it may be shown to people: no control character,
  -- escape sequence or line break left raw
  printable = core.printable,
  parse_name = core.parse_name,
  -- a target's settings as libpq reads them, without any password
  target_settings = core.target_settings,
  clock = core.clock, -- monotonic seconds
  -- One step at a time, for your own event loop.
  connect_start = core.connect_start,
  test_begin = core.test_begin,
}

local DEFAULT_CONCURRENCY = 10

--- True inside an OpenResty phase where ngx.sleep yields to nginx.
neoconn.in_nginx = nginx.active

local function test_in_nginx(target, opts)
  local conn = core.test_begin(target, opts)
  return nginx.wait(function()
    local report, _, _, left = conn:test_step()
    if report then return true, report end
    return false, left
  end)
end

local function connect_in_nginx(target, opts)
  local conn, err = core.connect_start(target, opts)
  if not conn then return nil, err end
  return nginx.wait(function()
    local ready, failure, _, left = conn:connect_poll()
    if ready then return true, conn end
    if ready == nil then return true, nil, failure end
    return false, left
  end)
end

--- neoconn.connect(target [, opts]) -> conn | nil, err
function neoconn.connect(target, opts)
  if neoconn.in_nginx() then return connect_in_nginx(target, opts) end
  return core.connect(target, opts)
end

--- neoconn.test(target_or_conn [, opts]) -> report
function neoconn.test(target, opts)
  if neoconn.in_nginx() then return test_in_nginx(target, opts) end
  return core.test(target, opts)
end

-- A test_all item: what neoconn.test takes (a target or a connection), or
-- { target = ..., <neoconn.test options> }.
local function item_parts(item, opts)
  local scope = { timeout = opts.timeout }
  if type(item) == "table" and item.target ~= nil then
    for k, v in pairs(item) do
      if k ~= "target" then scope[k] = v end
    end
    scope.timeout = item.timeout or opts.timeout
    return item.target, scope
  end
  return item, scope
end

-- All the tests, `concurrency` at a time, waiting on their sockets with
-- one poll(2): the fleet driver outside nginx.
local function test_all_poll(items, opts, concurrency, on_report)
  local reports, running, next_item = {}, {}, 1
  local function finish(i, report)
    reports[i] = report
    if on_report then on_report(i, report) end
  end
  local function step(entry)
    local report, mode, fd, left = entry.conn:test_step()
    if report then return finish(entry.i, report) end
    entry.mode, entry.fd, entry.deadline = mode, fd, core.clock() + left
    return entry
  end
  while next_item <= #items or #running > 0 do
    while #running < concurrency and next_item <= #items do
      local target, scope = item_parts(items[next_item], opts)
      local ok, conn = pcall(core.test_begin, target, scope)
      if not ok then
        -- A programmer's mistake in one item: nothing keeps running, and
        -- the error says which item.
        for _, entry in ipairs(running) do entry.conn:close() end
        error(("bad argument #1 to 'test_all' (targets[%d]: %s)"):format(next_item,
          tostring(conn):gsub("^bad argument #%d+ to '[^']+' %((.*)%)$", "%1")), 0)
      end
      local entry = step({ i = next_item, conn = conn })
      if entry then running[#running + 1] = entry end
      next_item = next_item + 1
    end
    if #running > 0 then
      local fds, modes, wait = {}, {}, math.huge
      local now = core.clock()
      for k, entry in ipairs(running) do
        fds[k], modes[k] = entry.fd, entry.mode
        wait = math.min(wait, entry.deadline - now)
      end
      local ready = core.poll(fds, modes, math.max(wait, 0))
      now = core.clock()
      local still = {}
      for k, entry in ipairs(running) do
        local kept = entry
        if ready[k] or now >= entry.deadline then kept = step(entry) end
        if kept then still[#still + 1] = kept end
      end
      running = still
    end
  end
  return reports
end

-- The same inside nginx: light threads, each testing one target at a time.
local function test_all_nginx(items, opts, concurrency, on_report)
  local ngx = rawget(_G, "ngx")
  local reports, next_item = {}, 1
  local function worker()
    while next_item <= #items do
      local i = next_item
      next_item = next_item + 1
      local target, scope = item_parts(items[i], opts)
      reports[i] = test_in_nginx(target, scope)
      if on_report then on_report(i, reports[i]) end
    end
  end
  local threads = {}
  for k = 1, math.min(concurrency, #items) do threads[k] = ngx.thread.spawn(worker) end
  for _, thread in ipairs(threads) do ngx.thread.wait(thread) end
  return reports
end

--- neoconn.test_all(targets [, opts]) -> reports, in the order of targets.
-- A target is what neoconn.test takes, or { target =, <neoconn.test
-- options: tables, schemas, job, proof, timeout> }. opts: concurrency
-- (default 10), timeout (each test's, default 10 s), on_report(i, report)
-- called as each finishes.
function neoconn.test_all(targets, opts)
  if type(targets) ~= "table" then
    error("bad argument #1 to 'test_all' (list of targets expected, got " .. type(targets) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'test_all' (opts: options table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  if opts.on_report ~= nil and type(opts.on_report) ~= "function" then
    error("bad argument #2 to 'test_all' (on_report must be a function)", 2)
  end
  for i, item in ipairs(targets) do
    local kind = type(item)
    if kind ~= "string" and kind ~= "table" and kind ~= "userdata" then
      error(("bad argument #1 to 'test_all' (targets[%d]: a target expected, got %s)"):format(i, kind), 2)
    end
  end
  local concurrency = opts.concurrency or DEFAULT_CONCURRENCY
  if type(concurrency) ~= "number" or concurrency < 1 or concurrency % 1 ~= 0 then
    error("bad argument #2 to 'test_all' (concurrency must be a positive integer)", 2)
  end
  if neoconn.in_nginx() then
    return test_all_nginx(targets, opts, concurrency, opts.on_report)
  end
  return test_all_poll(targets, opts, concurrency, opts.on_report)
end

--- neoconn.check(connections [, opts]) -> document: what `neoconn check
-- --json` prints, as a Lua table (lua/neoconn/document.lua, format 1).
-- connections: a config from neoconn.config.load, or name -> connection in
-- the config file's syntax (checked the same way). opts: only (names),
-- timeout, concurrency (default 1), proof, rules (name -> function(ctx)),
-- disable_rules, on_result(i, result).
function neoconn.check(connections, opts)
  if type(connections) ~= "table" then
    error("bad argument #1 to 'check' (connections: a config or a table of name = connection "
      .. "expected, got " .. type(connections) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'check' (opts: options table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local config = require("neoconn.config")
  local cfg = connections
  if not config.is_loaded(connections) then
    local checked, err = config.check({ connections = connections }, { file = "neoconn.check" })
    if not checked then error("bad argument #1 to 'check' (" .. err .. ")", 2) end
    cfg = checked
  end
  local selected = cfg.connections
  if opts.only ~= nil then
    local by_name = {}
    for _, c in ipairs(cfg.connections) do by_name[c.name] = c end
    selected = {}
    for i, name in ipairs(opts.only) do
      if not by_name[name] then
        error(("bad argument #2 to 'check' (only[%d]: no connection named %s)"):format(i,
          tostring(name)), 2)
      end
      selected[i] = by_name[name]
    end
  end
  local rules, disabled = {}, {}
  for name, rule in pairs(cfg.rules or {}) do rules[name] = rule end
  for name, rule in pairs(opts.rules or {}) do rules[name] = rule end
  for _, list in ipairs({ cfg.disable_rules or {}, opts.disable_rules or {} }) do
    for _, name in ipairs(list) do disabled[#disabled + 1] = name end
  end
  local document = require("neoconn.document")
  local check = require("neoconn.check")
  local results = check.connections(selected, { rules = rules,
    disable_rules = disabled, timeout = opts.timeout, concurrency = opts.concurrency or 1,
    proof = opts.proof, on_result = opts.on_result })
  if cfg.jobs and #cfg.jobs > 0 then
    results.jobs = check.jobs(cfg.jobs, selected, results, { disable_rules = disabled })
  end
  return document.of(results)
end

--- neoconn.check_job(source_report, destination_report, job) -> job result:
-- the pair judged from two reports of neoconn.test made with opts.layout =
-- true (the source's with job.kind "source", the destination's with the
-- job's options). job: a job in the config's syntax without source and
-- destination (tables, schemas, exclude, map, columns, the job options,
-- rules = { name = function(ctx) }, disable_rules). Returns { name,
-- verdict, ok, options, order, tables, findings, fix_sql }, as in the JSON
-- document's jobs.
function neoconn.check_job(source_report, destination_report, job)
  for i, v in ipairs({ source_report, destination_report, job }) do
    if type(v) ~= "table" then
      error(("bad argument #%d to 'check_job' (%s: table expected, got %s)"):format(i,
        ({ "source_report", "destination_report", "job" })[i], type(v)), 2)
    end
  end
  local spec = { source = "source", destination = "destination" }
  for k, v in pairs(job) do
    if k ~= "name" then spec[k] = v end
  end
  local cfg, err = require("neoconn.config").check({ connections = {
      source = { kind = "source", host = "source" },
      destination = { kind = "destination", host = "destination" } },
    jobs = { [job.name or "job"] = spec } }, { file = "neoconn.check_job" })
  if not cfg then error("bad argument #3 to 'check_job' (" .. err .. ")", 2) end
  local sides = {}
  for i, report in ipairs({ source_report, destination_report }) do
    local c = cfg.connections[i == 1 and 2 or 1] -- in name order: destination, source
    sides[i] = { name = c.name, report = report, settings = c, rule_settings = c }
  end
  return require("neoconn.job").judge(sides[1], sides[2], cfg.jobs[1])
end

--- neoconn.encode(value) -> JSON text, every object's keys in a fixed order
-- (a document's own, else byte order).
function neoconn.encode(value)
  return require("neoconn.document").encode(value)
end

--- Config files (lua/neoconn/config.lua): load(path [, opts]) -> config |
-- nil, err.
neoconn.config = {
  load = function(path, opts) return require("neoconn.config").load_file(path, opts) end,
}

-- neoconn.null: JSON null in a document (neoconn.check), the error, server
-- and tls of a connection not reached; dkjson's, loaded when first asked.
setmetatable(neoconn, { __index = function(_, key)
  if key == "null" then return require("dkjson").null end
end })

return neoconn
