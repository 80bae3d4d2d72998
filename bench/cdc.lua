-- Benchmark: what a CDC source's checks cost, side by side in one run: a
-- source test of 100 tables on a new connection each time, without CDC,
-- with CDC (the replication queries, the slots' health and the replication
-- connection) and with CDC and a named slot and publication.
-- NEOCONN_BENCH_RUNS (default 9).
local neoconn = require("neoconn")
local env = os.getenv

local runs = tonumber(env("NEOCONN_BENCH_RUNS") or "9")
local median = dofile("bench/median.lua")
local admin = assert(neoconn.connect({ host = env("NEOCONN_TEST_SOCKET"),
  port = env("NEOCONN_TEST_PORT"), user = env("NEOCONN_TEST_ADMIN"), dbname = "postgres" }))
assert(admin:query("DROP DATABASE IF EXISTS bench_cdc"))
assert(admin:query("CREATE DATABASE bench_cdc"))
admin:close()
local target = { host = env("NEOCONN_TEST_SOCKET"), port = env("NEOCONN_TEST_PORT"),
  user = env("NEOCONN_TEST_ADMIN"), dbname = "bench_cdc" }
local c = assert(neoconn.connect(target))
local sql = { "CREATE SCHEMA app" }
for i = 1, 100 do sql[#sql + 1] = ("CREATE TABLE app.t%d (id bigint PRIMARY KEY, v text)"):format(i) end
sql[#sql + 1] = "CREATE PUBLICATION bench_pub FOR TABLES IN SCHEMA app"
assert(c:query(table.concat(sql, ";\n")))
assert(c:query("SELECT pg_create_logical_replication_slot('bench_slot', 'pgoutput')"))

local cases = {
  { "source, no CDC", { kind = "source" } },
  { "CDC, nothing named", { kind = "source", cdc = true } },
  { "CDC, slot and publication", { kind = "source", cdc = true, slot = "bench_slot",
    publication = "bench_pub" } },
}
print(("%-28s %10s %8s"):format("100 tables, new connection", "ms", "ratio"))
local base
for _, case in ipairs(cases) do
  local ms = median(runs, function()
    local r = neoconn.test(target, { schemas = { "app" }, job = case[2], proof = false })
    assert(r.ok, r.error and r.error.message)
  end)
  base = base or ms
  print(("%-28s %10.1f %8.2f"):format(case[1], ms, ms / base))
end
assert(c:query("SELECT pg_drop_replication_slot('bench_slot')"))
c:close()
print(("(median of %d runs each; the server's socket, no proof)"):format(runs))
