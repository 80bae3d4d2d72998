-- The test harness runs where users run make test: from a clone the
-- postgres user cannot enter (as root, the servers run as postgres), on the
-- ports and in the temporary directory asked for.
local pg = require("pg")

local root = pg.run("test \"$(id -u)\" = 0") == 0
local build = "node_modules/pg16/native"

describe("the test harness #client #once", function()
  pg.it_if(it, pending, root and pg.slurp(build .. "/bin/postgres") ~= nil,
    "as root, with the PostgreSQL 16 build installed")(
    "runs a server build postgres cannot reach, on NEOCONN_TEST_PORT_BASE, in TMPDIR", function()
      local _, private = pg.run("mktemp -d") -- 0700, root's: what postgres cannot enter
      private = private:gsub("%s+$", "")
      local _, tmpdir = pg.run("mktemp -d")
      tmpdir = tmpdir:gsub("%s+$", "")
      assert.are.equal(0, pg.run(("cp -a %s %s/native && chmod 777 %s"):format(build, private, tmpdir)))
      local base = 24000 + math.random(0, 4000)
      local code, out, err = pg.run(("spec/support/with-cluster.sh sh -c %s"):format(pg.shell_quote(
        "echo $NEOCONN_TEST_PORT $NEOCONN_TEST_SOCKET; " .. pg.psql .. " -X -At -h $NEOCONN_TEST_SOCKET"
        .. " -p $NEOCONN_TEST_PORT -U $NEOCONN_TEST_ADMIN -d postgres -c 'SHOW server_version_num'")),
        { NEOCONN_PGBIN = private .. "/native/bin", NEOCONN_TEST_PORT_BASE = tostring(base),
          TMPDIR = tmpdir })
      local cached = pg.run(("test -x %s/neoconn-servers/16-*/bin/postgres"):format(tmpdir))
      os.execute(("rm -rf %s %s"):format(private, tmpdir))
      assert.are.equal(0, code, out .. err)
      local port, socket, version = out:match("^(%d+) (%S+)\n(%d+)\n$")
      assert.truthy(port, out)
      assert.truthy(tonumber(port) >= base and tonumber(port) < base + 100, port)
      assert.are.equal(tmpdir .. "/", socket:sub(1, #tmpdir + 1))
      assert.truthy(version:match("^16"), version)
      assert.are.equal(0, cached) -- the copy postgres could read
    end)

  it("refuses a port base the kernel could hand to a client", function()
    local code, _, err = pg.run("spec/support/with-cluster.sh true", { NEOCONN_TEST_PORT_BASE = "40000" })
    assert.are.equal(1, code)
    assert.truthy(err:find("NEOCONN_TEST_PORT_BASE must be 1024-32700", 1, true), err)
  end)
end)
