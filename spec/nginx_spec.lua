-- neoconn inside a real nginx (Debian's nginx + libnginx-mod-http-lua, one
-- worker): waiting on a slow database never stalls the worker.
local json = require("dkjson")
local neoconn = require("neoconn")
local pg = require("pg")
local nginx = require("nginx")

local LOCATIONS = [[
    location = /ping { content_by_lua_block { ngx.say("pong") } }
    location = /check { content_by_lua_block { require("nginx_check")() } }
    location = /rules { content_by_lua_block { require("nginx_rules")() } }
]]

local without_timings = pg.without_timings
local slurp = pg.slurp

describe("neoconn in nginx", function()
  local base
  setup(function() base = nginx.start(LOCATIONS) end)
  teardown(function() nginx.stop() end)

  it("keeps answering /ping in milliseconds while 20 /check wait on a silent server", function()
    local dir = pg.temp_dir()
    local target = nginx.urlencode(("host=%s port=%s sslmode=disable"):format(pg.host, pg.silent_port))
    -- 20 concurrent checks with a 2 s timeout; meanwhile 10 pings, one after another.
    local script = ([[
      i=1
      while [ $i -le 20 ]; do
        curl -s -o %s/check_$i -w '%%{time_total}' '%s/check?timeout=2&target=%s' > %s/time_$i &
        i=$((i + 1))
      done
      sleep 0.3
      j=1
      while [ $j -le 10 ]; do
        curl -s -o %s/ping_$j -w '%%{time_total}\n' '%s/ping' >> %s/pings
        sleep 0.1
        j=$((j + 1))
      done
      wait
    ]]):format(dir, base, target, dir, dir, base, dir)
    local started = neoconn.clock()
    assert.are.equal(0, pg.execute(script))
    local took = neoconn.clock() - started
    local pings = {}
    for t in slurp(dir .. "/pings"):gmatch("[%d.]+") do pings[#pings + 1] = tonumber(t) end
    assert.are.equal(10, #pings, nginx.log())
    for _, t in ipairs(pings) do
      assert.truthy(t < 0.25, ("a /ping took %.3f s while checks waited"):format(t))
    end
    for i = 1, 20 do
      local t = tonumber(slurp(("%s/time_%d"):format(dir, i)))
      local doc = json.decode(slurp(("%s/check_%d"):format(dir, i)) or "", 1, json.null)
      assert(doc, "check " .. i .. " returned no JSON: " .. nginx.log())
      assert.are.equal("timeout", doc.connections[1].error.code)
      assert.truthy(t >= 1.9 and t < 3.5, ("a /check took %.2f s for a 2 s timeout"):format(t))
    end
    -- Side by side: one after another the checks alone would take 40 s.
    assert.truthy(took < 6, ("the whole run took %.2f s"):format(took))
    os.execute("rm -rf " .. dir)
  end)

  it("keeps answering /ping while a slow rule and a looping rule run, and stops the loop for CPU", function()
    local user, password = pg.login_role("nginxrules")
    local url = ("postgresql://%s:%s@%s:%s/%s"):format(user, password, pg.host, pg.port, pg.dbname)
    local dir = pg.temp_dir()
    local script = ([[
      curl -s -o %s/rules -w '%%{time_total}' '%s/rules?target=%s' > %s/rules_time &
      sleep 0.3
      j=1
      while [ $j -le 30 ]; do
        curl -s -o /dev/null -w '%%{time_total}\n' '%s/ping' >> %s/pings
        sleep 0.1
        j=$((j + 1))
      done
      wait
    ]]):format(dir, base, nginx.urlencode(url), dir, base, dir)
    assert.are.equal(0, pg.execute(script))
    local pings = {}
    for t in slurp(dir .. "/pings"):gmatch("[%d.]+") do pings[#pings + 1] = tonumber(t) end
    assert.are.equal(30, #pings, nginx.log())
    for _, t in ipairs(pings) do
      assert.truthy(t < 0.2, ("a /ping took %.3f s while rules ran"):format(t))
    end
    local doc = assert(json.decode(slurp(dir .. "/rules"), 1, json.null), nginx.log())
    local by_rule = {}
    for _, f in ipairs(doc.connections[1].findings) do by_rule[f.rule] = f.message end
    assert.is_nil(by_rule.a_slow)
    assert.truthy(by_rule.b_looping:find("it used more than 2 s of CPU time", 1, true), by_rule.b_looping)
    -- The rules ran while /ping answered: they took their time.
    assert.truthy(tonumber(slurp(dir .. "/rules_time")) > 1.3)
    local log = nginx.log()
    assert.is_nil(log:find("[alert]", 1, true), log)
    assert.is_nil(log:find("ngx.sleep(0)", 1, true), log)
    os.execute("rm -rf " .. dir)
  end)

  it("returns for a real database the same report as the command-line tool", function()
    local user, password = pg.login_role("nginx")
    local url = ("postgresql://%s:%s@%s:%s/%s?sslmode=require"):format(user, password, pg.host,
      pg.port, pg.dbname)
    local out = os.tmpname()
    assert.are.equal(0, pg.execute(("curl -s -o %s '%s/check?as=source&target=%s'")
      :format(out, base, nginx.urlencode(url))))
    local from_nginx = json.decode(slurp(out), 1, json.null)
    assert(from_nginx, nginx.log())
    pg.execute(("%s bin/neoconn test '%s' --as source --json > %s"):format(pg.lua, url, out))
    local from_cli = json.decode(slurp(out), 1, json.null)
    os.remove(out)
    -- Tested end to end (whatever the shared database's other tables make of the verdict).
    assert.are.equal(json.null, from_nginx.connections[1].error)
    assert.are.equal(5, #from_nginx.connections[1].stages)
    assert.are.same(without_timings(from_cli), without_timings(from_nginx))
  end)
end)
