-- Soak: connect, test and close, NEOCONN_SOAK_CYCLES times (default
-- 10000), half of them failing (a wrong password, a refused port), and the
-- process's resident memory at the start, after 10% and at the end: flat
-- means nothing leaks per cycle. Run by `make bench`.
local neoconn = require("neoconn")
local env = os.getenv

local cycles = tonumber(env("NEOCONN_SOAK_CYCLES") or "10000")
local admin = assert(neoconn.connect({ host = env("NEOCONN_TEST_SOCKET"), port = env("NEOCONN_TEST_PORT"),
  user = env("NEOCONN_TEST_ADMIN"), dbname = "postgres" }))
assert(admin:query("DO $$ BEGIN CREATE ROLE soak LOGIN PASSWORD 'soak-pw';"
  .. " EXCEPTION WHEN duplicate_object THEN NULL; END $$"))
admin:close()

local function rss_mb()
  local f = assert(io.open("/proc/self/statm"))
  local pages = tonumber(f:read("*a"):match("^%d+%s+(%d+)"))
  f:close()
  return pages * 4096 / (1024 * 1024)
end

local good = { host = "127.0.0.1", port = env("NEOCONN_TEST_PORT"), user = "soak", password = "soak-pw",
  dbname = "postgres", sslmode = "disable" }
local wrong = { host = "127.0.0.1", port = env("NEOCONN_TEST_PORT"), user = "soak", password = "nope",
  dbname = "postgres", sslmode = "disable" }
local refused = { host = "127.0.0.1", port = env("NEOCONN_TEST_REFUSED_PORT"), user = "soak" }
local job = { job = { kind = "destination", on_conflict = "update" }, tables = { "public.none" } }

local start, marks = neoconn.clock(), {}
collectgarbage()
marks[0] = rss_mb()
for i = 1, cycles do
  local conn = neoconn.connect(i % 4 == 1 and wrong or i % 4 == 2 and refused or good)
  if conn then
    assert(neoconn.test(conn, job).ok)
    conn:close()
  end
  if i == math.floor(cycles / 10) then
    collectgarbage()
    marks[1] = rss_mb()
  end
end
collectgarbage()
marks[2] = rss_mb()
print(("soak: %d connect/test/close cycles (half failing) in %.1f s; RSS %.1f MB at start, %.1f MB"
  .. " after %d, %.1f MB at the end"):format(cycles, neoconn.clock() - start, marks[0], marks[1],
  math.floor(cycles / 10), marks[2]))
