-- Multi-host targets: a primary and its hot standby (the harness's), in
-- both orders, for every target_session_attrs value. The report names the
-- server libpq really used; a failure lists every server it tried.
local neoconn = require("neoconn")
local pg = require("pg")
local it_with_standby = pg.it_with_standby(it, pending)

describe("a target with two hosts", function()
  local user, password
  setup(function()
    user, password = pg.login_role("mh")
    if pg.standby_port then pg.wait_for_standby() end
  end)

  -- Which of the two each target_session_attrs picks, listed in this order.
  local cases = {
    { "any", "first" }, { "read-write", "primary" }, { "primary", "primary" },
    { "read-only", "standby" }, { "standby", "standby" }, { "prefer-standby", "standby" },
  }
  for _, order in ipairs({ { "primary", "standby" }, { "standby", "primary" } }) do
    for _, case in ipairs(cases) do
      local attrs, expected = case[1], case[2]
      it_with_standby(("reports the server it used: %s listed first, target_session_attrs=%s")
        :format(order[1], attrs),
        function()
          local ports = { primary = pg.port, standby = pg.standby_port }
          local target = pg.target(user, password, { host = pg.host .. "," .. pg.host,
            port = ports[order[1]] .. "," .. ports[order[2]], target_session_attrs = attrs })
          local report = neoconn.test(target)
          assert.is_true(report.ok, tostring(report.error))
          local used = expected == "first" and order[1] or expected
          assert.are.equal(ports[used], report.session.port)
          assert.are.equal(used == "standby", report.server.in_hot_standby)
          assert.are.equal("127.0.0.1", report.session.hostaddr)
          local conn = assert(neoconn.connect(target))
          assert.truthy(tostring(conn):find(":" .. ports[used] .. "/", 1, true), tostring(conn))
          conn:close()
        end)
    end
  end

  it_with_standby("fails naming every server it tried, in order", function()
    local target = pg.target(user, password, { host = pg.host .. "," .. pg.host,
      port = pg.refused_port .. "," .. pg.standby_port, target_session_attrs = "read-write" })
    local conn, err = neoconn.connect(target)
    assert.is_nil(conn)
    assert.are.same({ pg.host .. ":" .. pg.refused_port, pg.host .. ":" .. pg.standby_port }, err.tried)
    assert.are.equal("wrong_session_type", err.code)
  end)
end)
