-- Benchmark: what judging a job as a pair costs, side by side in one run:
-- a job of 100 table pairs (source and destination databases of 100
-- tables of 8 columns, a primary key, a check, a foreign key and an enum
-- each; one difference in every tenth), each side's test without and with
-- the layout statement (opts.layout), on a new connection each time, and
-- the pair's judgement from the two reports. NEOCONN_BENCH_RUNS (default 9).
local neoconn = require("neoconn")
local env = os.getenv

local runs = tonumber(env("NEOCONN_BENCH_RUNS") or "9")
local median = dofile("bench/median.lua")
local admin = assert(neoconn.connect({ host = env("NEOCONN_TEST_SOCKET"),
  port = env("NEOCONN_TEST_PORT"), user = env("NEOCONN_TEST_ADMIN"), dbname = "postgres" }))

local function database(name, differ)
  assert(admin:query("DROP DATABASE IF EXISTS " .. name))
  assert(admin:query("CREATE DATABASE " .. name))
  local c = assert(neoconn.connect({ host = env("NEOCONN_TEST_SOCKET"),
    port = env("NEOCONN_TEST_PORT"), user = env("NEOCONN_TEST_ADMIN"), dbname = name }))
  local sql = { "CREATE SCHEMA app", "CREATE TYPE app.mood AS ENUM ('a', 'b', 'c')" }
  for i = 1, 100 do
    local narrow = differ and i % 10 == 0
    sql[#sql + 1] = ("CREATE TABLE app.t%d (id bigint PRIMARY KEY, parent bigint%s, name %s,"
      .. " mood app.mood, amount numeric(12,2) CHECK (amount >= 0), at timestamptz,"
      .. " tags text[], note text)"):format(i, i > 1 and (" REFERENCES app.t" .. (i - 1)) or "",
        narrow and "varchar(10)" or "varchar(80)")
  end
  assert(c:query(table.concat(sql, ";\n")))
  c:close()
end
database("bench_job_src", false)
database("bench_job_dst", true)
admin:close()

local function target(db)
  return { host = env("NEOCONN_TEST_SOCKET"), port = env("NEOCONN_TEST_PORT"),
    user = env("NEOCONN_TEST_ADMIN"), dbname = db }
end
local function test(db, kind, layout)
  local r = neoconn.test(target(db), { schemas = { "app" }, layout = layout, job = { kind = kind },
    proof = false })
  assert(r.ok, r.error and r.error.message)
  return r
end

print(("%-28s %10s %10s %8s"):format("side (100 tables)", "plain ms", "layout ms", "ratio"))
for _, side in ipairs({ { "bench_job_src", "source" }, { "bench_job_dst", "destination" } }) do
  local plain = median(runs, function() test(side[1], side[2], false) end)
  local with = median(runs, function() test(side[1], side[2], true) end)
  print(("%-28s %10.1f %10.1f %8.2f"):format(side[2] .. ", new connection", plain, with, with / plain))
end
local src, dst = test("bench_job_src", "source", true), test("bench_job_dst", "destination", true)
local judged
local judge = median(runs, function() judged = neoconn.check_job(src, dst, { schemas = { "app" } }) end)
assert(#judged.tables == 100)
print(("%-28s %10.1f ms (%d pairs, %d findings; statements per side: one more)"):format(
  "judging the pairs", judge, #judged.tables, #judged.findings))
print(("(median of %d runs each; the server's socket, no proof)"):format(runs))
