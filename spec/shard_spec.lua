-- Fleets split across machines: --shard K/N (or NEOCONN_SHARD) checks the
-- names that hash to shard K; shards are disjoint, cover every name and
-- keep a name where it is when others are added. --quiet and --output make
-- neoconn check fit cron and systemd.
local pg = require("pg")
local shard = require("neoconn.shard")
local json = require("dkjson")

describe("shards #client", function()
  it("are disjoint and covering over 1000 names, and stable when 100 are added", function()
    local names = {}
    for i = 1, 1000 do names[i] = ("db-%04d.%s"):format(i, i % 3 == 0 and "eu" or "us") end
    for _, count in ipairs({ 1, 2, 7, 16 }) do
      local seen, sizes = {}, {}
      for k = 0, count - 1 do
        local connections = {}
        for i, name in ipairs(names) do connections[i] = { name = name } end
        local chosen = shard.select(connections, {}, { index = k, count = count })
        sizes[#sizes + 1] = #chosen
        for _, c in ipairs(chosen) do
          assert.is_nil(seen[c.name], c.name .. " in two shards")
          seen[c.name] = k
        end
      end
      for _, name in ipairs(names) do assert.truthy(seen[name], name .. " in no shard") end
      -- roughly even: no shard holds twice its share
      for _, n in ipairs(sizes) do assert.truthy(n <= 2 * 1000 / count + 10, tostring(n)) end
      for i = 1001, 1100 do
        assert.are.equal(shard.of(names[i - 1000], count), seen[names[i - 1000]])
        names[i] = nil
      end
    end
  end)

  it("puts a job's connections in its shard", function()
    local connections = { { name = "a" }, { name = "b" }, { name = "c" } }
    local job = { name = "nightly", source = "a", destination = "b" }
    local k = shard.of("nightly", 5)
    local chosen, jobs = shard.select(connections, { job }, { index = k, count = 5 })
    assert.are.same({ job }, jobs)
    local names = {}
    for _, c in ipairs(chosen) do names[c.name] = true end
    assert.is_true(names.a and names.b)
  end)

  it("split a real check between two runs, the JSON saying which shard ran", function()
    local lines = {}
    for i = 1, 20 do
      lines[i] = ("c%02d = { kind = 'source', host = '127.0.0.1', port = %s, connect_timeout = 2 },")
        :format(i, pg.refused_port)
    end
    local path = pg.write_temp("connections = {\n" .. table.concat(lines, "\n") .. "\n}\n", ".lua")
    local all = {}
    for k = 0, 1 do
      local code, out, err = pg.cli(("check %s --json --shard %d/2"):format(path, k))
      assert.are.equal(2, code, err)
      local doc = json.decode(out)
      assert.are.same({ index = k, count = 2 }, doc.shard)
      for _, c in ipairs(doc.connections) do
        assert.is_nil(all[c.name])
        all[c.name] = true
      end
      local vcode, said = pg.validate_json({ out })
      assert.are.equal(0, vcode, said)
    end
    for i = 1, 20 do assert.is_true(all[("c%02d"):format(i)]) end
    local code, _, err = pg.cli(("check %s --json"):format(path), { NEOCONN_SHARD = "2/2" })
    assert.are.equal(64, code)
    assert.truthy(err:find("NEOCONN_SHARD expects K/N", 1, true), err)
    os.remove(path)
  end)

  it("--quiet prints nothing on success; --output writes the document atomically", function()
    local path = pg.write_temp("connections = { only = { kind = 'source', host = '127.0.0.1', "
      .. "port = " .. pg.refused_port .. " } }\n", ".lua")
    local dir = pg.temp_dir()
    local target = dir .. "/result.json"
    local code, out = pg.cli(("check %s --quiet --output %s"):format(path, target))
    assert.are.equal(2, code)
    assert.truthy(out:find("only: NOT TESTED", 1, true), out) -- a failure is printed
    local doc = json.decode(pg.slurp(target))
    assert.are.equal("not_tested", doc.connections[1].verdict)
    local _, listing = pg.run("ls -A " .. dir)
    assert.are.equal("result.json\n", listing) -- no temporary file left
    local _, t = pg.schema_with_table(pg.admin_user, "quiet")
    local passing = pg.write_temp(("connections = { ok = { kind = 'source', host = %q, port = %q, "
      .. "user = %q, dbname = %q, tables = { %q } } }\n"):format(pg.socket, pg.port, pg.admin_user,
        pg.dbname, t), ".lua")
    local err
    code, out, err = pg.cli(("check %s --quiet --output %s"):format(passing, target))
    os.remove(passing)
    assert.are.equal(0, code, err)
    assert.are.equal("", out) -- nothing when all pass
    assert.are.equal("pass", json.decode(pg.slurp(target)).connections[1].verdict)
    code, out = pg.cli("requirements source --quiet")
    assert.are.equal(64, code, out)
    code = pg.cli(("check %s --output %s/missing/x.json"):format(path, dir))
    assert.are.equal(64, code)
    os.remove(path)
    os.execute("rm -rf " .. dir)
  end)
end)
