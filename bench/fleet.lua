-- Benchmark: a fleet of 100 targets behind a loopback proxy that adds 20 ms
-- each way, tested one after another, all at once (neoconn.test_all), and a
-- single target alone, side by side in one run. Run by `make bench`.
-- NEOCONN_FLEET_SIZE (default 100), NEOCONN_BENCH_RUNS (default 5).
local neoconn = require("neoconn")
local env = os.getenv

local size = tonumber(env("NEOCONN_FLEET_SIZE") or "100")
local runs = tonumber(env("NEOCONN_BENCH_RUNS") or "5")
local delay_ms = 20
local port = tonumber(env("NEOCONN_TEST_REFUSED_PORT")) + 50

local admin = assert(neoconn.connect({ host = env("NEOCONN_TEST_SOCKET"),
  port = env("NEOCONN_TEST_PORT"), user = env("NEOCONN_TEST_ADMIN"), dbname = "postgres" }))
assert(admin:query([[
  DO $$ BEGIN CREATE ROLE fleet_sync LOGIN PASSWORD 'fleet-pw';
  EXCEPTION WHEN duplicate_object THEN NULL; END $$;
  CREATE TABLE IF NOT EXISTS fleet_table (id int PRIMARY KEY, v text);
  GRANT SELECT ON fleet_table TO fleet_sync;]]))
admin:close()

-- The proxy runs in the background for the length of the benchmark.
os.execute(("build/tools/delay_proxy %d %s %d 600 &"):format(port, env("NEOCONN_TEST_PORT"), delay_ms))
local target = { host = "127.0.0.1", port = tostring(port), dbname = "postgres",
  user = "fleet_sync", password = "fleet-pw", sslmode = "disable" }
local item = { target = target, tables = { "public.fleet_table" } }
for _ = 1, 50 do -- until the proxy listens
  if neoconn.test(target, { tables = {} }).ok then break end
  os.execute("sleep 0.1")
end

local median_ms = dofile("bench/median.lua")
local cpu_ms = dofile("bench/cpu.lua")
local function median(fn) return median_ms(runs, fn) end

local direct_item = { target = {}, tables = item.tables }
for k, v in pairs(target) do direct_item.target[k] = v end
direct_item.target.port = env("NEOCONN_TEST_PORT")

local function fleet(concurrency, one)
  local items = {}
  for i = 1, size do items[i] = one or item end
  local reports = neoconn.test_all(items, { concurrency = concurrency, timeout = 60 })
  for i = 1, size do assert(reports[i].ok, tostring(reports[i].error)) end
end

-- The server's own floor: the same number of connections opened at once
-- and closed, no test, no proxy. Every target here is one local server, so
-- its CPU (a backend and a SCRAM exchange per connection) bounds any client.
local function connect_only()
  local open, conns = {}, {}
  for i = 1, size do
    conns[i] = assert(neoconn.connect_start(direct_item.target))
    open[#open + 1] = conns[i]
  end
  while #open > 0 do
    local fds, modes, still = {}, {}, {}
    for _, conn in ipairs(open) do
      local ready, mode, fd = conn:connect_poll()
      assert(ready ~= nil, tostring(mode))
      if not ready then
        still[#still + 1] = conn
        fds[#fds + 1], modes[#modes + 1] = fd, mode
      end
    end
    open = still
    if #open > 0 then require("neoconn.core").poll(fds, modes, 1) end
  end
  for i = 1, size do conns[i]:close() end
end

local single = median(function() assert(neoconn.test(target, { tables = item.tables }).ok) end)
local cpu0 = os.clock()
local concurrent = median(function() fleet(size) end)
local client_cpu = (os.clock() - cpu0) * 1000 / runs
local connects = median(connect_only)
local direct = median(function() fleet(size, direct_item) end)
local sequential = median_ms(1, function() fleet(1) end) -- takes long: once is enough

print(("%-28s %12s"):format(("fleet of %d, +%d ms each way"):format(size, delay_ms), "ms"))
print(("%-28s %12.1f"):format("one target", single))
print(("%-28s %12.1f"):format(("%d one after another"):format(size), sequential))
print(("%-28s %12.1f"):format(("%d concurrently"):format(size), concurrent))
print(("%-28s %12.1f"):format(("%d concurrently, no proxy"):format(size), direct))
print(("%-28s %12.1f"):format(("%d connections only, no proxy"):format(size), connects))
print(("%-28s %12.1f"):format(("neoconn's CPU, %d concurrently"):format(size), client_cpu))
print(("concurrent / one: %.2fx (target <= 3x); sequential / concurrent: %.1fx;"
  .. " concurrent / no proxy: %.2fx (1.00 = the latency fully hidden)")
  :format(concurrent / single, sequential / concurrent, concurrent / direct))
print(("to connections only: %.2fx through the proxy, %.2fx without (target <= 1.5x): what %d"
  .. " tests cost this one server beyond opening their connections")
  :format(concurrent / connects, direct / connects, size))
print(("connections only / one: %.2fx: the floor of any client against this one server;"
  .. " neoconn's CPU / one: %.2fx: the bound when the targets are separate servers")
  :format(connects / single, client_cpu / single))
-- What the 1.5x target leaves a test, in CPU (the machine is the bound when
-- 100 tests run at once): half a connection's, against what a test takes
-- with every cache warm, on one reused connection.
local _, connect_cpu = cpu_ms(200, function() assert(neoconn.connect(direct_item.target)):close() end)
if connect_cpu then
  local warm = assert(neoconn.connect(direct_item.target))
  local _, test_cpu = cpu_ms(200, function() assert(neoconn.test(warm, { tables = item.tables }).ok) end)
  warm:close()
  print(("busy CPU (every core, /proc/stat, mean of 200): a connection %.2f ms, a test on a warm"
    .. " connection %.2f ms; 1.5x leaves a test %.2f ms"):format(connect_cpu, test_cpu, connect_cpu / 2))
end
print(("(median of %d runs; the sequential run once; sslmode=disable, SCRAM auth)"):format(runs))
os.execute(("pkill -f 'delay_proxy %d ' 2>/dev/null"):format(port))
