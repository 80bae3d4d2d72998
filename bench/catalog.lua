-- Benchmark: neoconn.test in a large catalog, side by side with Neosync's
-- permission query and a bare pg_class scan (the floor), in one run.
-- Run by `make bench` (which starts a throwaway cluster). Sizes:
-- NEOCONN_BENCH_SIZES="20000,100000" (default), repeats: NEOCONN_BENCH_RUNS=5.
local neoconn = require("neoconn")
local q = neoconn.quote_ident
local env = os.getenv

local sizes = {}
for n in (env("NEOCONN_BENCH_SIZES") or "20000,100000"):gmatch("%d+") do
  sizes[#sizes + 1] = tonumber(n)
end
local runs = tonumber(env("NEOCONN_BENCH_RUNS") or "5")
local socket, port = env("NEOCONN_TEST_SOCKET"), env("NEOCONN_TEST_PORT")
local admin_user = env("NEOCONN_TEST_ADMIN")
local long = { timeout = 3600 }

-- Neosync's "Test Connection" permission query: grants made directly to
-- the login role or to PUBLIC, read from information_schema.
local NEOSYNC = [[
SELECT tp.table_schema::text AS table_schema, tp.table_name::text AS table_name,
  string_agg(tp.privilege_type::text, ', ')::text AS privilege_type
FROM information_schema.table_privileges AS tp
WHERE tp.table_schema NOT IN ('pg_catalog', 'information_schema')
  AND (tp.grantee = current_user OR tp.grantee = 'PUBLIC')
GROUP BY tp.table_schema, tp.table_name
ORDER BY tp.table_schema, tp.table_name]]

-- The floor: one row per table, nothing computed.
local FLOOR = [[
SELECT n.nspname AS "schema", c.relname AS name FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname !~ '^pg_'
  AND n.nspname <> 'information_schema']]

-- What any exact answer must do at least: the floor's scan, then find the
-- tables whose columns carry ACLs (column grants, to PUBLIC too, are only
-- in pg_attribute), returning a single number. The cheapest way found for
-- the whole catalog: one scan of pg_attribute, hashed (an index probe per
-- table measured 2x slower at 100k).
local COLUMN_ACLS = [[
SELECT count(*) AS n FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname !~ '^pg_'
  AND n.nspname <> 'information_schema'
  AND c.oid IN (SELECT ca.attrelid FROM pg_attribute ca WHERE ca.attacl IS NOT NULL
    AND ca.attnum > 0)]]

local median = dofile("bench/median.lua")
local function median_ms(fn) return median(runs, fn) end

local build = dofile("bench/catalog_db.lua")
local cpu_ms = dofile("bench/cpu.lua")
-- CPU is summed over runs measured in ticks (10 ms): enough runs for 1%.
local cpu_runs = math.max(runs, 10)

local admin = assert(neoconn.connect({ host = socket, port = port, user = admin_user,
  dbname = "postgres" }))
print(("%-8s %12s %12s %11s %9s %10s %9s %8s %11s %9s %9s"):format("tables", "test(all) ms",
  "test(100) ms", "neosync ms", "floor ms", "col-ACL ms", "all/floor", "neo/all",
  "col-ACL/flr", "report MB", "fresh ms"))
-- What a user pays: a new connection each time (TCP + SCRAM, a new backend
-- with cold caches), for each of them, side by side.
local fresh_lines, cpu_lines, cpu_cores = {}, {}, nil
for _, size in ipairs(sizes) do
  local db = build(admin, size)
  local target = { host = "127.0.0.1", port = port, user = "bench_sync",
    password = "bench-pw", dbname = db, sslmode = "disable" }
  local conn = assert(neoconn.connect(target))
  local hundred = {}
  for i = 1, 100 do hundred[i] = { schema = "s" .. (i % (size // 1000) + 1), name = "t" .. i } end
  local rows_all
  local all = median_ms(function()
    local r = neoconn.test(conn, { timeout = 600 })
    assert(r.ok, tostring(r.error))
    rows_all = #r.tables
  end)
  -- The catalog is what it claims: the sync role reads half the tables.
  local readable = 0
  for _, t in ipairs(neoconn.test(conn, { timeout = 600 }).tables) do
    if t.privileges.SELECT then readable = readable + 1 end
  end
  assert(readable == size // 2, ("the role reads %d of %d tables"):format(readable, size))
  local scoped = median_ms(function()
    local r = neoconn.test(conn, { tables = hundred })
    assert(r.ok and #r.tables == 100, tostring(r.error))
  end)
  -- What a one-off check (the CLI) pays: a new connection, so a new backend
  -- whose caches are cold.
  local function test_all_fresh() assert(neoconn.test(target, { timeout = 600 }).ok) end
  local function query_fresh(sql)
    return function()
      local c = assert(neoconn.connect(target))
      assert(c:query(sql, nil, long))
      c:close()
    end
  end
  local neosync_fresh, floor_fresh = query_fresh(NEOSYNC), query_fresh(FLOOR)
  local fresh = median_ms(test_all_fresh)
  local fresh_neosync = median_ms(neosync_fresh)
  local fresh_floor = median_ms(floor_fresh)
  local fresh_one = median_ms(query_fresh("SELECT 1"))
  local fresh_hundred = median_ms(function()
    assert(neoconn.test(target, { tables = hundred }).ok)
  end)
  fresh_lines[#fresh_lines + 1] = ("%-8d %12.1f %11.1f %9.1f %12.1f %9.1f %9.2f %10.2f %10.2f")
    :format(size, fresh, fresh_neosync, fresh_floor, fresh_hundred, fresh_one, fresh / fresh_neosync,
      fresh / fresh_floor, fresh_hundred / fresh_one)
  -- The machine's busy CPU (every core, the server's workers too) per run
  -- of the same three: wall time can be no less than CPU / cores.
  local cpu = {}
  for _, case in ipairs({ test_all_fresh, neosync_fresh, floor_fresh }) do
    local wall, busy, client, cores = cpu_ms(cpu_runs, case)
    if not wall then break end
    cpu[#cpu + 1] = { wall = wall, busy = busy, client = client, cores = cores }
  end
  if #cpu == 3 then
    cpu_lines[#cpu_lines + 1] = ("%-8d %10.1f %8.1f %7.2f %10.1f %8.1f %7.2f %10.1f %13.1f")
      :format(size, cpu[1].busy, cpu[1].client, cpu[1].busy / cpu[1].wall, cpu[2].busy,
        cpu[2].client, cpu[2].busy / cpu[2].wall, cpu[3].busy, cpu[1].busy / cpu[1].cores)
    cpu_cores = cpu[1].cores
  end
  local neosync = median_ms(function() assert(conn:query(NEOSYNC, nil, long)) end)
  local floor = median_ms(function()
    local rows = assert(conn:query(FLOOR, nil, long))
    assert(#rows == rows_all)
  end)
  -- The Lua memory one full report holds.
  collectgarbage()
  collectgarbage()
  local before = collectgarbage("count")
  local kept = neoconn.test(conn, { timeout = 600 })
  collectgarbage()
  collectgarbage()
  local report_mb = (collectgarbage("count") - before) / 1024
  assert(kept.ok)
  local column_acls = median_ms(function() assert(conn:query(COLUMN_ACLS, nil, long)) end)
  print(("%-8d %12.1f %12.1f %11.1f %9.1f %10.1f %9.2f %8.2f %11.2f %9.1f %9.1f"):format(size,
    all, scoped, neosync, floor, column_acls, all / floor, neosync / all, column_acls / floor,
    report_mb, fresh))
  conn:close()
end
admin:close()
print(("(median of %d runs each; neoconn.test over TCP without TLS, one connection reused)")
  :format(runs))
print()
print(("%-8s %12s %11s %9s %12s %9s %9s %10s %10s"):format("tables", "test(all) ms", "neosync ms",
  "floor ms", "test(100) ms", "SELECT 1", "all/neo", "all/floor", "100/SEL1"))
for _, line in ipairs(fresh_lines) do print(line) end
print(("(each on a new connection: TCP + SCRAM, a new backend; median of %d runs;"
  .. " targets: all/neo <= 1, all/floor <= 2.5, 100/SEL1 <= 1.3)"):format(runs))
print(("(targets: all/floor <= 1.5, neo/all > 1, test(100) < 20 ms; names: %s)")
  :format(q("s1", "t1")))
print("(col-ACL: the floor's scan plus finding the tables with column ACLs, one row out:"
  .. " a lower bound for any exact report; fresh: test(all) on a new connection each time)")
if #cpu_lines > 0 then
  print()
  print(("%-8s %10s %8s %7s %10s %8s %7s %10s %13s"):format("tables", "test CPU", "client",
    "cores", "neo CPU", "client", "cores", "floor CPU", "test CPU/" .. cpu_cores))
  for _, line in ipairs(cpu_lines) do print(line) end
  print(("(busy CPU ms per run, every core of this %d-core machine, from /proc/stat, mean of %d"
    .. " runs on new connections; client: this process; cores: CPU / wall. No schedule of the"
    .. " test's work takes less wall time than test CPU/%d)"):format(cpu_cores, cpu_runs, cpu_cores))
end
