-- A/B: one test, run by two builds of neoconn alternating in one cluster,
-- so that a change is measured against the build before it side by side
-- (the machine's noise moves both alike). Each round runs, per build, a
-- destination job's test of the whole catalog and of one table, each on a
-- new connection each time (what a CLI run pays), median of its runs.
--   with-cluster.sh lua5.4 bench/ab.lua BUILD_A BUILD_B [TABLES] [ROUNDS]
-- BUILD_A and BUILD_B are checkouts built with `make` (a git worktree of
-- the revision before: `git worktree add /tmp/before REV && make -C
-- /tmp/before`). TABLES: the catalog's size (default 20000); ROUNDS
-- (default 3).
local neoconn = require("neoconn")
local env = os.getenv

local a, b = assert(arg[1], "BUILD_A"), assert(arg[2], "BUILD_B")
local size = tonumber(arg[3] or "20000")
local rounds = tonumber(arg[4] or "3")

local admin = assert(neoconn.connect({ host = env("NEOCONN_TEST_SOCKET"), port = env("NEOCONN_TEST_PORT"),
  user = env("NEOCONN_TEST_ADMIN"), dbname = "postgres" }))
local db = dofile("bench/catalog_db.lua")(admin, size)
admin:close()
local target = ("host=127.0.0.1 port=%s user=bench_sync password=bench-pw dbname=%s sslmode=disable")
  :format(env("NEOCONN_TEST_PORT"), db)

-- What each build runs, in a process of its own (its own modules).
local RUN = [[
package.path = %q .. "/lua/?.lua;" .. %q .. "/lua/?/init.lua;" .. package.path
package.cpath = %q .. "/build/lua5.4/?.so;" .. package.cpath
local neoconn = require("neoconn")
local function median(n, fn)
  local t = {}
  for i = 1, n do
    collectgarbage()
    local t0 = neoconn.clock()
    fn()
    t[i] = (neoconn.clock() - t0) * 1000
  end
  table.sort(t)
  return t[(n + 1) // 2]
end
local target, job = %q, { kind = "destination" }
local all = median(7, function() assert(neoconn.test(target, { job = job, timeout = 600 }).ok) end)
local one = median(101, function()
  assert(neoconn.test(target, { job = job, tables = { "s2.t5" } }).ok)
end)
io.write(("%%.1f %%.1f"):format(all, one))
]]

local script = os.tmpname()
print(("%-40s %14s %14s"):format("build", "all (ms)", "one table (ms)"))
for _ = 1, rounds do
  for _, dir in ipairs({ a, b }) do
    local f = assert(io.open(script, "w"))
    f:write(RUN:format(dir, dir, dir, target))
    f:close()
    local all, one = io.popen("lua5.4 " .. script):read("*a"):match("([%d.]+) ([%d.]+)")
    print(("%-40s %14s %14s"):format(dir, all, one))
  end
end
os.remove(script)
print(("(%d tables; a destination job on a new connection each time: median of 7 for the whole"
  .. " catalog, of 101 for one table)"):format(size))
