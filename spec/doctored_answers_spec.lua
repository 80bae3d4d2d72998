-- What a server answers is untrusted: a proxy (spec/support/doctor_proxy.c)
-- renames a column, changes its type, drops it, sends a NULL or a zero
-- byte, a row too many or a flipped bit, in each of the first answers of a
-- test. The test, the policy and the reports never raise: a malformed
-- answer is a protocol_error at the stage it came in.
local json = require("dkjson")
local neoconn = require("neoconn")
local check = require("neoconn.check")
local report = require("neoconn.report")
local document = require("neoconn.document")
local pg = require("pg")
local q = neoconn.quote_ident

-- Runs fn while the proxy doctors one message of one connection.
local function doctored(mode, nth, column, fn)
  local proxy = io.popen(("build/tools/doctor_proxy %s %s %s %d %d"):format(pg.proxy_port, pg.port,
    mode, nth, column))
  assert.are.equal("ready", proxy:read("*l"))
  local results = { pcall(fn) }
  proxy:close() -- it ends with its one connection
  return (table.unpack or unpack)(results) -- luacheck: ignore 143
end

-- Codes a doctored answer may end in: the message broke the protocol
-- (libpq says so), the authentication, or the catalog's answers.
local EXPECTED = { protocol_error = true, connection_lost = true, auth_failed = true }

describe("a doctored answer from the server", function()
  local target, settings
  setup(function()
    local user, password = pg.login_role("doctored")
    local schema = pg.schema_with_table(user, "doc", { grant = "SELECT, INSERT",
      columns = "id serial PRIMARY KEY, v text, b boolean" })
    pg.exec(("CREATE INDEX ON %s (v)"):format(q(schema, "t")))
    target = ("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable gssencmode=disable")
      :format(pg.host, pg.proxy_port, user, password, pg.dbname)
    settings = { name = "doctored", kind = "destination", target = target,
      options = { on_conflict = "update", truncate = true }, schemas = { schema } }
  end)

  it("never makes the test, the policy or a report raise, and is said as protocol_error", function()
    local codes = {}
    local scenarios = 0
    for _, mode in ipairs({ "rename", "type", "drop", "null", "zero", "extra", "flip" }) do
      for nth = 1, 12 do
        local ok, err = doctored(mode, nth, nth * 3, function()
          local result = check.connection(settings, { timeout = 5 })
          report.human({ result })
          assert(json.decode(document.encode(document.of({ result }))))
          return result
        end)
        assert(ok, ("%s %d: %s"):format(mode, nth, tostring(err)))
        local result = err
        scenarios = scenarios + 1
        if result.error then
          local e = result.error
          assert.truthy(EXPECTED[e.code], ("%s %d: %s %s"):format(mode, nth, tostring(e.code), e.message))
          assert.are.equal(e.message, neoconn.printable(e.message))
          codes[e.code] = (codes[e.code] or 0) + 1
          if e.code == "protocol_error" then
            assert.are.equal("introspect", e.stage)
            assert.truthy(e.hint:find("TLS", 1, true), e.hint)
          end
        end
      end
    end
    assert.are.equal(84, scenarios)
    -- Most catalog answers have a row worth doctoring in the first twelve.
    assert.truthy((codes.protocol_error or 0) >= 20, json.encode(codes))
  end)

  it("makes the command-line tool exit 2 with the error, never a traceback", function()
    local proxy = io.popen(("build/tools/doctor_proxy %s %s null 6 0"):format(pg.proxy_port, pg.port))
    assert.are.equal("ready", proxy:read("*l"))
    local code, out, err = pg.cli(("test %s --as destination --schemas %s"):format(pg.shell_quote(target),
      settings.schemas[1]))
    proxy:close()
    assert.are.equal(2, code, out .. err)
    assert.truthy(out:find("protocol_error at introspect", 1, true), out)
    assert.is_nil(err:find("traceback", 1, true), err)
  end)
end)
