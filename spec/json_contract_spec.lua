-- The JSON document is a contract: real documents (a pass, a fail, a
-- connection not tested, a CDC source) validate against the schema in the
-- repository with a packaged validator, keys come in the documented order
-- in every process, and each connection says where it went, which server
-- answered and how the session was encrypted.
local neoconn = require("neoconn")
local json = require("dkjson")
local pg = require("pg")
local q = neoconn.quote_ident

local validate = pg.validate_json

-- The keys of the JSON object that starts at position at of text, in
-- order (one level: nested objects and arrays are skipped).
local function keys_in_order(text, at)
  local keys, depth, i = {}, 0, at
  while i <= #text do
    local c = text:sub(i, i)
    if c == '"' then
      local j = i + 1
      while text:sub(j, j) ~= '"' do j = j + (text:sub(j, j) == "\\" and 2 or 1) end
      if depth == 1 and text:sub(j + 1, j + 1) == ":" then keys[#keys + 1] = text:sub(i + 1, j - 1) end
      i = j
    elseif c == "{" or c == "[" then
      depth = depth + 1
    elseif c == "}" or c == "]" then
      depth = depth - 1
      if depth == 0 then break end
    end
    i = i + 1
  end
  return keys
end

describe("the JSON document", function()
  local user, password, schema, connections
  setup(function()
    user, password = pg.login_role("jc", "REPLICATION")
    schema = pg.unique("jc")
    pg.exec(("CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s TO %s; CREATE TABLE %s (id int PRIMARY KEY);"
      .. " CREATE TABLE %s (id int PRIMARY KEY); GRANT SELECT ON %s TO %s")
      :format(q(schema), q(schema), q(user), q(schema, "granted"), q(schema, "not_granted"),
        q(schema, "granted"), q(user)))
    local function target(extra)
      local t = { host = pg.host, port = tostring(pg.port), dbname = pg.dbname, user = user,
        password = password, sslmode = "require", kind = "source" }
      for k, v in pairs(extra) do t[k] = v end
      return t
    end
    connections = {
      passes = target({ tables = { schema .. ".granted" } }),
      fails = target({ schemas = { schema } }),
      not_tested = target({ password = "wrong", sslmode = "disable" }),
      cdc = target({ tables = { schema .. ".granted" }, cdc = true }),
    }
  end)

  it("validates against the schema in the repository: pass, fail, not tested, CDC", function()
    local doc = neoconn.check(connections)
    local verdicts = {}
    for _, c in ipairs(doc.connections) do verdicts[c.name] = c.verdict end
    assert.are.same({ passes = "pass", fails = "fail", not_tested = "not_tested",
      cdc = verdicts.cdc }, verdicts)
    assert.are.same({ connections = 4, pass = verdicts.cdc == "pass" and 2 or 1,
      fail = verdicts.cdc == "fail" and 2 or 1, not_tested = 1 }, {
        connections = doc.summary.connections, pass = doc.summary.pass, fail = doc.summary.fail,
        not_tested = doc.summary.not_tested })
    -- The command's own output too, for one connection and for a whole
    -- config.
    local url = ("postgresql://%s@%s:%s/%s?sslmode=require"):format(user, pg.host, pg.port, pg.dbname)
    local _, cli_test = pg.cli(("test %s --as destination --schemas %s --json"):format(
      pg.shell_quote(url), pg.shell_quote(schema)), { PGPASSWORD = password })
    local code, said = validate({ neoconn.encode(doc), cli_test })
    assert.are.equal(0, code, said)
    -- A document that breaks the contract is refused: the check can fail.
    local broken = json.decode(neoconn.encode(doc))
    broken.connections[1].verdict = "maybe"
    code, said = validate({ json.encode(broken) })
    assert.are.equal(1, code)
    assert.truthy(said:find("maybe", 1, true), said)
  end)

  it("says where each connection went, which server answered, and the TLS in use", function()
    local doc = neoconn.check(connections, { only = { "passes", "not_tested" } })
    local passes, untested = doc.connections[1], doc.connections[2]
    assert.are.same({ host = pg.host, port = tostring(pg.port), dbname = pg.dbname, user = user,
      sslmode = "require", hostaddr = passes.endpoint.hostaddr }, passes.endpoint)
    local version = pg.exec("SELECT current_setting('server_version_num')::int AS v")[1].v
    assert.are.equal(version, passes.server.version_num)
    assert.is_true(passes.tls.in_use)
    assert.truthy(passes.tls.protocol:find("^TLS"), passes.tls.protocol)
    assert.is_string(passes.tls.cipher)
    assert.are.same({ 1, 1 }, { passes.tables_usable, passes.tables_total })
    -- Not tested: the endpoint as the target gave it, no server, no TLS.
    assert.are.equal("auth_failed", untested.error.code)
    assert.are.same({ pg.host, user, "disable" }, { untested.endpoint.host, untested.endpoint.user,
      untested.endpoint.sslmode })
    assert.are.equal(json.null, untested.server)
    assert.are.equal(json.null, untested.tls)
    assert.is_nil(neoconn.encode(doc):find(password, 1, true))
  end)

  it("writes keys in the documented order, the same in every process", function()
    local config = pg.write_temp(("connections = { fails = { kind = 'source', url = %q,"
      .. " schemas = { %q } } }"):format(("postgresql://%s@%s:%s/%s?sslmode=require"):format(user,
        pg.host, pg.port, pg.dbname), schema), ".lua")
    local texts = {}
    for i = 1, 4 do -- Lua 5.4 seeds its string hashes per process: pairs() order changes
      local _, out = pg.cli("check " .. pg.shell_quote(config) .. " --json", { PGPASSWORD = password })
      -- what changes with the clock: timings, and the seconds a certificate has left
      texts[i] = out:gsub('"ms":[%d.e+-]+', '"ms":0'):gsub('"expires_in":%-?[%d.]+', '"expires_in":0')
    end
    os.remove(config)
    for i = 2, #texts do assert.are.equal(texts[1], texts[i]) end
    local text = texts[1]
    assert.are.same({ "format", "ok", "summary", "connections" }, keys_in_order(text, 1))
    assert.are.same({ "name", "kind", "verdict", "ok", "endpoint", "server", "tls", "tables_usable",
      "tables_total", "error", "stages", "findings", "tables", "fix_sql" },
      keys_in_order(text, text:find('{"name"', 1, true)))
    assert.are.same({ "level", "rule", "object_type", "schema", "name", "missing", "message", "fix" },
      keys_in_order(text, text:find('{"level"', 1, true)))
    -- requirements --json too: byte order where no order is documented.
    local _, a = pg.cli("requirements destination --truncate --json")
    local _, b = pg.cli("requirements destination --truncate --json")
    assert.are.equal(a, b)
    local first = keys_in_order(a, a:find("{", 1, true))
    local sorted = { (table.unpack or unpack)(first) }
    table.sort(sorted)
    assert.are.same(sorted, first)
  end)
end)
