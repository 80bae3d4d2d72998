-- neoconn.openresty through a real nginx (Debian's nginx with
-- libnginx-mod-http-lua, one worker): the check of a config as JSON and as
-- Prometheus text (parsed line by line against exposition format 0.0.4),
-- cached for every worker, refreshed by one request at a time, a hung
-- target never stalling other locations, a broken config a JSON 500, no
-- password in any body or log line. And `make openresty-demo` as a user
-- runs it.
local json = require("dkjson")
local neoconn = require("neoconn")
local pg = require("pg")
local nginx = require("nginx")
local prometheus = require("neoconn.prometheus")

local slurp = pg.slurp

-- Parses Prometheus text exposition format 0.0.4, failing on anything the
-- format does not allow: { [family] = { type, help, samples = { { labels,
-- value } } } }. Every sample's family has its TYPE line before it, once;
-- every series appears once.
local function parse_exposition(text)
  assert(text:sub(-1) == "\n", "the text ends with a line feed")
  local families, series, current = {}, {}, nil
  local NAME = "^[%a_:][%w_:]*$"
  for line in text:gmatch("([^\n]*)\n") do
    local kind, name, rest = line:match("^# (%u+) (%S+) ?(.*)$")
    if kind == "HELP" or kind == "TYPE" then
      assert(name:match(NAME), "metric name " .. name)
      families[name] = families[name] or { samples = {} }
      local field = kind == "HELP" and "help" or "type"
      assert.is_nil(families[name][field], kind .. " twice for " .. name)
      assert.is_nil(families[name].sampled, kind .. " after samples of " .. name)
      if kind == "TYPE" then
        assert.truthy(({ counter = 1, gauge = 1, histogram = 1, summary = 1, untyped = 1 })[rest], rest)
      else
        assert.falsy(rest:find("[\\][^\\n]"), "HELP escapes only backslash and line feed: " .. rest)
      end
      families[name][field] = rest
      current = name
    else
      assert.falsy(line:match("^#"), "comment lines are HELP or TYPE: " .. line)
      local metric, after = line:match("^([%a_:][%w_:]*)(.*)$")
      assert(metric, "a sample line: " .. line)
      local labels, i = {}, 1
      if after:sub(1, 1) == "{" then
        i = 2
        while after:sub(i, i) ~= "}" do
          local label = after:match("^([%a_][%w_]*)=\"", i)
          assert(label, "a label at " .. i .. " of " .. line)
          i = i + #label + 2
          local value = {}
          while true do
            local c = after:sub(i, i)
            assert(c ~= "" and c ~= "\n", "an unterminated label value: " .. line)
            if c == "\\" then
              local e = after:sub(i + 1, i + 1)
              assert(e == "\\" or e == '"' or e == "n", "an escape the format lacks: \\" .. e)
              value[#value + 1] = e == "n" and "\n" or e
              i = i + 2
            elseif c == '"' then
              i = i + 1
              break
            else
              value[#value + 1] = c
              i = i + 1
            end
          end
          assert.is_nil(labels[label], "label " .. label .. " twice")
          labels[label] = table.concat(value)
          if after:sub(i, i) == "," then i = i + 1 end
        end
        i = i + 1
      end
      local value = after:sub(i):match("^ (%S+)$")
      assert(value and (tonumber(value) or value == "+Inf" or value == "-Inf" or value == "NaN"),
        "a sample's value: " .. line)
      local family = families[metric]
      assert(family and family.type and current == metric, "TYPE before the samples of " .. metric)
      family.sampled = true
      local keys = {}
      for k, v in pairs(labels) do keys[#keys + 1] = k .. "=" .. v end
      table.sort(keys)
      local id = metric .. "{" .. table.concat(keys, ",") .. "}"
      assert.is_nil(series[id], "one sample per series: " .. id)
      series[id] = true
      family.samples[#family.samples + 1] = { labels = labels, value = tonumber(value) }
    end
  end
  return families
end

local function sample(families, name, want)
  for _, s in ipairs((families[name] or { samples = {} }).samples) do
    local match = true
    for k, v in pairs(want or {}) do match = match and s.labels[k] == v end
    if match then return s.value end
  end
end

local function get(url, accept)
  local out = os.tmpname()
  local code = io.popen(("curl -s -o %s -w '%%{http_code}' %s '%s'"):format(out,
    accept and ("-H " .. pg.shell_quote("Accept: " .. accept)) or "", url)):read("*a")
  local body = slurp(out)
  os.remove(out)
  return tonumber(code), body
end

describe("Prometheus text #client", function()
  it("escapes label values as the format says, after making them printable", function()
    local text = prometheus.render({ { name = 'a"b\\c\nd\27[31m', kind = "source", ok = true,
      findings = {}, tables = {}, stages = {} } }, { seconds = 0.5, finished = 1, checks = 1 })
    local families = parse_exposition(text)
    local labels = families.neoconn_connection_ok.samples[1].labels
    assert.are.equal('a"b\\c\\nd\\x1B[31m', labels.connection) -- control bytes printable first
    assert.falsy(text:find("\27", 1, true))
  end)
end)

describe("neoconn.openresty in nginx #client", function()
  local base, dir, password, slot
  local passwords = {}
  setup(function()
    dir = pg.temp_dir()
    local user
    user, password = pg.login_role("orsty")
    passwords[#passwords + 1] = password
    local _, t = pg.schema_with_table(user, "orsty", { grant = "SELECT" })
    slot = pg.unique("orsty_slot")
    pg.exec(("SELECT pg_create_logical_replication_slot('%s', 'pgoutput')"):format(slot))
    local function write(name, text)
      local f = assert(io.open(dir .. "/" .. name, "w"))
      f:write(text)
      f:close()
      return dir .. "/" .. name
    end
    local good = write("good.lua", ([[
connections = {
  ok = { kind = "source", host = %q, port = %q, dbname = %q, user = %q, password = %q,
    sslmode = "require", tables = { %q } },
  cdc = { kind = "source", host = %q, port = %q, dbname = %q, user = %q, password = %q,
    sslmode = "require", tables = { %q }, cdc = true, slot = %q },
  badpw = { kind = "destination", host = %q, port = %q, dbname = %q, user = %q,
    password = "wrong-S3cret-password" },
}
]]):format(pg.host, pg.port, pg.dbname, user, password, t, pg.host, pg.port, pg.dbname, user,
      password, t, slot, pg.host, pg.port, pg.dbname, user))
    passwords[#passwords + 1] = "wrong-S3cret-password"
    local hung = write("hung.lua", ([[
connections = { hung = { kind = "source", host = %q, port = %q, sslmode = "disable",
  user = "x", password = "hung-S3cret" } }
]]):format(pg.host, pg.silent_port))
    passwords[#passwords + 1] = "hung-S3cret"
    local broken = write("broken.lua", 'connections = { x = { kind = "source", port = "nope",'
      .. ' password = "broken-S3cret" } }\n')
    passwords[#passwords + 1] = "broken-S3cret"
    local function location(path, opts)
      return ("    location = %s { content_by_lua_block { require('neoconn.openresty').serve(%s) } }\n")
        :format(path, opts)
    end
    base = nginx.start("    location = /ping { content_by_lua_block { ngx.say('pong') } }\n"
      .. location("/neoconn", ("{ config = %q, ttl = 60, timeout = 5 }"):format(good))
      .. location("/short", ("{ config = %q, ttl = 1, timeout = 5, only = { 'ok' } }"):format(good))
      .. location("/hung", ("{ config = %q, ttl = 60, timeout = 2 }"):format(hung))
      .. location("/broken", ("{ config = %q }"):format(broken))
      .. location("/nodict", ("{ config = %q, dict = 'absent' }"):format(good)),
      "  lua_shared_dict neoconn 1m;\n")
  end)
  teardown(function()
    nginx.stop()
    pg.exec(("SELECT pg_drop_replication_slot('%s')"):format(slot))
    os.execute("rm -rf " .. dir)
  end)

  it("serves the check as JSON and as Prometheus text, one check for both inside the TTL", function()
    local status, body = get(base .. "/neoconn")
    assert.are.equal(503, status, nginx.log()) -- badpw cannot log in
    local doc = json.decode(body, 1, json.null)
    local by = {}
    for _, c in ipairs(doc.connections) do by[c.name] = c end
    assert.are.equal("auth_failed", by.badpw.error.code)
    assert.are.equal(json.null, by.ok.error)
    local vcode, said = pg.validate_json({ body })
    assert.are.equal(0, vcode, said)
    local _, again = get(base .. "/neoconn")
    assert.are.equal(body, again) -- the same run, timings included
    local text
    status, text = get(base .. "/neoconn?format=prometheus")
    assert.are.equal(200, status)
    local families = parse_exposition(text)
    assert.are.equal(1, sample(families, "neoconn_checks_total")) -- three requests, one check
    assert.are.equal("counter", families.neoconn_checks_total.type)
    assert.are.equal(0, sample(families, "neoconn_connection_tested", { connection = "badpw",
      code = "auth_failed" }))
    assert.are.equal(1, sample(families, "neoconn_connection_tested", { connection = "ok", code = "" }))
    assert.are.equal(1, sample(families, "neoconn_tables", { connection = "ok", state = "usable" }))
    assert.truthy(sample(families, "neoconn_server_cert_expiry_seconds", { connection = "ok" }) > 86400)
    assert.truthy(sample(families, "neoconn_replication_slot_retained_wal_bytes",
      { connection = "cdc", slot = slot }) >= 0)
    assert.are.equal(1, sample(families, "neoconn_replication_slot_wal_status",
      { connection = "cdc", slot = slot, wal_status = "reserved" }))
    -- The Accept header Prometheus sends chooses the text too.
    local _, by_accept = get(base .. "/neoconn", "application/openmetrics-text;version=1.0.0,"
      .. "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    assert.are.equal(text, by_accept)
  end)

  it("refreshes an expired cache with one check for 50 requests at once", function()
    local _, text = get(base .. "/short?format=prometheus")
    local first = parse_exposition(text)
    local checks = sample(first, "neoconn_checks_total")
    local finished = sample(first, "neoconn_last_check_timestamp_seconds")
    -- Until the TTL (1 s) has passed since that check finished.
    while os.time() <= finished + 1 do pg.exec("SELECT pg_sleep(0.1)") end
    local out = pg.temp_dir()
    assert.are.equal(0, pg.execute(("curl -s --no-progress-meter --parallel --parallel-immediate"
      .. " --parallel-max 50 %s > %s/all"):format(string.rep(("'%s/short' "):format(base), 50), out)))
    os.execute("rm -rf " .. out)
    local after
    -- The refresh may still be running: the others got the last result at once.
    for _ = 1, 100 do
      _, text = get(base .. "/short?format=prometheus")
      after = parse_exposition(text)
      if sample(after, "neoconn_last_check_timestamp_seconds") ~= finished then break end
      pg.exec("SELECT pg_sleep(0.05)")
    end
    assert.are.equal(checks + 1, sample(after, "neoconn_checks_total"), nginx.log())
  end)

  it("keeps other locations answering while a check waits on a hung server, ends it in time", function()
    local out = pg.temp_dir()
    local started = neoconn.clock()
    assert.are.equal(0, pg.execute(([[
      curl -s -o %s/hung -w '%%{time_total}' '%s/hung' > %s/time &
      sleep 0.2
      j=1
      while [ $j -le 10 ]; do
        curl -s -o /dev/null -w '%%{time_total}\n' '%s/ping' >> %s/pings
        j=$((j + 1))
      done
      wait
    ]]):format(out, base, out, base, out)))
    for t in slurp(out .. "/pings"):gmatch("[%d.]+") do
      assert.truthy(tonumber(t) < 0.2, ("a /ping took %s s while the check waited"):format(t))
    end
    local took = tonumber(slurp(out .. "/time"))
    local doc = json.decode(slurp(out .. "/hung"), 1, json.null)
    os.execute("rm -rf " .. out)
    assert.are.equal("timeout", doc.connections[1].error.code)
    assert.truthy(took >= 1.9 and took < 4, ("the check took %.2f s for a 2 s timeout"):format(took))
    assert.truthy(neoconn.clock() - started < 6)
  end)

  it("answers a config that does not load, and a missing shared dict, with a JSON 500", function()
    local status, body = get(base .. "/broken")
    assert.are.equal(500, status)
    local doc = json.decode(body)
    assert.are.equal("invalid_config", doc.error.code)
    assert.truthy(doc.error.message:find("connections.x.port", 1, true), doc.error.message)
    assert.falsy(body:find("traceback", 1, true))
    status, body = get(base .. "/nodict")
    assert.are.equal(500, status)
    assert.truthy(json.decode(body).error.message:find("lua_shared_dict absent", 1, true), body)
  end)

  it("never shows a password in a body or in nginx's error log", function()
    local bodies = {}
    for _, path in ipairs({ "/neoconn", "/neoconn?format=prometheus", "/broken", "/hung" }) do
      local _, body = get(base .. path)
      bodies[#bodies + 1] = body
    end
    local everything = table.concat(bodies, "\n") .. nginx.log()
    for _, secret in ipairs(passwords) do
      assert.falsy(everything:find(secret, 1, true), "a password in the output: " .. secret)
    end
  end)
end)

describe("make openresty-demo #client", function()
  it("serves both endpoints on a free port and stops everything on an interrupt", function()
    local log = os.tmpname()
    local pid = io.popen(("sh -c 'spec/support/with-cluster.sh %s examples/openresty/demo.lua > %s"
      .. " 2>&1 & echo $!'"):format(pg.lua, log)):read("*l")
    local url
    for _ = 1, 300 do
      url = slurp(log):match("JSON:%s+curl (%S+)")
      if url then break end
      os.execute("sleep 0.1")
    end
    assert(url, slurp(log))
    local status, body
    for _ = 1, 100 do
      status, body = get(url)
      if status ~= 0 and status ~= nil then break end
      os.execute("sleep 0.1")
    end
    assert.are.equal(503, status, slurp(log)) -- the demo's config has a wrong password
    assert.truthy(json.decode(body, 1, json.null).connections)
    local text
    status, text = get(url .. "?format=prometheus")
    assert.are.equal(200, status)
    assert.truthy(parse_exposition(text).neoconn_connection_ok)
    -- What a service manager sends (an interrupt reaches nginx from the terminal itself).
    os.execute("kill -TERM " .. pid)
    local function alive()
      local r = os.execute("kill -0 " .. pid .. " 2>/dev/null")
      return r == true or r == 0
    end
    local stopped = false
    for _ = 1, 200 do
      if not alive() then
        stopped = true
        break
      end
      os.execute("sleep 0.1")
    end
    assert.is_true(stopped, slurp(log))
    status = get(url)
    assert.are.equal(0, status) -- nothing listens any more
    os.remove(log)
  end)
end)
