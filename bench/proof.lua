-- Benchmark: what the executor proof (EXPLAIN of the job's statements as
-- the role) costs, side by side with the same test without it, in one run:
-- 100 named tables, one schema of 1000, a whole catalog of 20k (a
-- destination job, warm connection; and the 100 on a new connection each
-- time, what a CLI run pays). The default (proof up to 5000 tables) is
-- chosen from these figures: see the README.
-- NEOCONN_BENCH_PROOF_SIZE (default 20000), NEOCONN_BENCH_RUNS (default 5).
local neoconn = require("neoconn")
local env = os.getenv

local size = tonumber(env("NEOCONN_BENCH_PROOF_SIZE") or "20000")
local runs = tonumber(env("NEOCONN_BENCH_RUNS") or "5")
local median = dofile("bench/median.lua")
local build = dofile("bench/catalog_db.lua")

local admin = assert(neoconn.connect({ host = env("NEOCONN_TEST_SOCKET"),
  port = env("NEOCONN_TEST_PORT"), user = env("NEOCONN_TEST_ADMIN"), dbname = "postgres" }))
local db = build(admin, size)
admin:close()
local target = { host = "127.0.0.1", port = env("NEOCONN_TEST_PORT"), user = "bench_sync",
  password = "bench-pw", dbname = db, sslmode = "disable" }
local conn = assert(neoconn.connect(target))
local job = { kind = "destination" }

local hundred = {}
for i = 1, 100 do hundred[i] = { schema = "s" .. (i % (size // 1000) + 1), name = "t" .. i } end
local scopes = {
  { "100 named", { tables = hundred } },
  { "1 schema (1000)", { schemas = { "s2" } } },
  { ("all (%d)"):format(size), {} },
}

-- The median ms of a test with opts and proof on or off; checks that the
-- proof ran (or not) over the whole scope.
local function measure(subject, scope, proof)
  local opts = { job = job, proof = proof, timeout = 3600, tables = scope.tables,
    schemas = scope.schemas }
  return median(runs, function()
    local r = neoconn.test(subject, opts)
    assert(r.ok, tostring(r.error))
    assert(r.proof.status == (proof and "complete" or "off"), r.proof.status)
  end)
end

print(("%-18s %12s %12s %8s %14s"):format("scope", "proof off ms", "proof on ms", "on/off",
  "ms per table"))
for _, s in ipairs(scopes) do
  local name, scope = s[1], s[2]
  local tables = #neoconn.test(conn, { job = job, proof = false, tables = scope.tables,
    schemas = scope.schemas, timeout = 3600 }).tables
  local off, on = measure(conn, scope, false), measure(conn, scope, true)
  print(("%-18s %12.1f %12.1f %8.2f %14.3f"):format(name, off, on, on / off, (on - off) / tables))
end
local fresh_off = measure(target, { tables = hundred }, false)
local fresh_on = measure(target, { tables = hundred }, true)
print(("%-18s %12.1f %12.1f %8.2f %14.3f"):format("100, new conn", fresh_off, fresh_on,
  fresh_on / fresh_off, (fresh_on - fresh_off) / 100))
conn:close()
print(("(median of %d runs each; a destination job, TCP without TLS; warm connection unless"
  .. " \"new conn\")"):format(runs))
