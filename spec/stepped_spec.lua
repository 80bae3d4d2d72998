-- neoconn.test_begin + conn:test_step: the same test, driven by an event
-- loop. Driven here by spinning without waiting, it must give exactly the
-- report neoconn.test gives, apart from timings.
local neoconn = require("neoconn")
local pg = require("pg")
local q = neoconn.quote_ident

local without_timings = pg.without_timings

-- Spins test_step until it returns a report; counts the steps.
local function drive(target, opts)
  local conn = neoconn.test_begin(target, opts)
  local steps = 0
  while true do
    steps = steps + 1
    local report, mode, fd, left = conn:test_step()
    if report then return report, steps end
    assert.truthy(mode == "read" or mode == "write")
    assert.is_number(fd)
    assert.truthy(left >= 0)
  end
end

describe("neoconn.test_begin and conn:test_step", function()
  local user, password, schema
  setup(function()
    user, password = pg.login_role("step")
    schema = pg.schema_with_table(user, "step",
      { columns = "id serial PRIMARY KEY, v text", grant = "SELECT" })
  end)

  it("give the report neoconn.test gives, for a target", function()
    local opts = { schemas = { schema } }
    local stepped, steps = drive(pg.target(user, password), opts)
    assert.truthy(steps > 3, "it never had to wait")
    assert.are.same(without_timings(neoconn.test(pg.target(user, password), opts)),
      without_timings(stepped))
    assert.is_true(stepped.ok)
  end)

  it("give the report neoconn.test gives, for an open connection, and leave it usable", function()
    local conn = assert(neoconn.connect(pg.target(user, password)))
    local stepped = drive(conn, { tables = { q(schema, "t") } })
    assert.are.same(without_timings(neoconn.test(conn, { tables = { q(schema, "t") } })),
      without_timings(stepped))
    assert.are.same({ { one = 1 } }, conn:query("SELECT 1 AS one"))
    conn:close()
  end)

  it("report connection failures and the deadline the same way", function()
    local refused = { host = pg.host, port = pg.refused_port }
    assert.are.same(without_timings(neoconn.test(refused)), without_timings(drive(refused)))
    local started = neoconn.clock()
    local report = drive({ host = pg.host, port = pg.silent_port }, { timeout = 0.3 })
    local took = neoconn.clock() - started
    assert.are.same({ "timeout", "tls" }, { report.error.code, report.error.stage })
    assert.truthy(took >= 0.3 and took < 1.3, ("took %.2f s"):format(took))
  end)

  it("refuse a second test on a connection while one runs", function()
    local conn = assert(neoconn.connect(pg.target(user, password)))
    local running = neoconn.test_begin(conn)
    assert.has_error(function() neoconn.test_begin(conn) end,
      "bad argument #1 to 'test_begin' (a test is already running on this connection)")
    repeat until running:test_step()
    conn:close()
  end)
end)

describe("neoconn.connect_start and conn:connect_poll", function()
  -- Polls without waiting until the handshake ends; returns what it ended with.
  local function poll(conn)
    local give_up = neoconn.clock() + 5
    while true do
      local ready, mode, fd, left = conn:connect_poll()
      if ready ~= false then return ready, mode end
      assert(neoconn.clock() < give_up, "connect_poll never gave up")
      assert.truthy(mode == "read" or mode == "write")
      assert.is_number(fd)
      assert.truthy(left > 0)
    end
  end

  it("connect as neoconn.connect does", function()
    local user, password = pg.login_role("cpoll")
    local conn = assert(neoconn.connect_start(pg.target(user, password)))
    assert.is_true((poll(conn)))
    assert.are.same({ { one = 1 } }, conn:query("SELECT 1 AS one"))
    conn:close()
  end)

  it("give up with timeout at opts.timeout, and check it like neoconn.connect", function()
    local started = neoconn.clock()
    local conn = assert(neoconn.connect_start({ host = pg.host, port = pg.silent_port },
      { timeout = 0.3 }))
    local ready, err = poll(conn)
    local took = neoconn.clock() - started
    assert.is_nil(ready)
    assert.are.equal("timeout", err.code)
    assert.truthy(took >= 0.3 and took < 1.3, ("took %.2f s"):format(took))
    assert.has_error(function() neoconn.connect_start("host=x", { timeout = -1 }) end,
      "bad argument #2 to 'connect_start' (connect_start: timeout must be a positive, finite number"
        .. " of seconds)")
  end)
end)

describe("neoconn.test_all", function()
  it("gives each target the report neoconn.test gives, in order", function()
    local user, password = pg.login_role("all")
    local targets = {
      pg.target(user, password),
      { host = pg.host, port = pg.refused_port },
      { target = pg.target(user, password), tables = { "public.nothing_here" } },
      "host=no-such-host.invalid",
    }
    local seen = {}
    local reports = neoconn.test_all(targets, { concurrency = 3,
      on_report = function(i, report) seen[#seen + 1] = i; assert.is_table(report) end })
    assert.are.equal(#targets, #reports)
    table.sort(seen)
    assert.are.same({ 1, 2, 3, 4 }, seen)
    assert.are.same(without_timings(neoconn.test(targets[1])), without_timings(reports[1]))
    assert.are.same(without_timings(neoconn.test(targets[2])), without_timings(reports[2]))
    assert.are.same({ { schema = "public", name = "nothing_here" } }, reports[3].not_found)
    assert.are.equal("dns", reports[4].error.code)
  end)

  it("waits on hung hosts side by side, not one after another", function()
    local targets = {}
    for i = 1, 12 do targets[i] = { host = pg.host, port = pg.silent_port } end
    local started = neoconn.clock()
    local reports = neoconn.test_all(targets, { concurrency = 12, timeout = 0.5 })
    local took = neoconn.clock() - started
    for i = 1, 12 do assert.are.equal("timeout", reports[i].error.code) end
    assert.truthy(took < 2, ("12 hung tests took %.2f s"):format(took)) -- one after another: 6 s
  end)

  it("rejects what is not a list or a concurrency", function()
    assert.has_error(function() neoconn.test_all("x") end)
    assert.has_error(function() neoconn.test_all({}, { concurrency = 0 }) end)
  end)
end)
