-- cpu_ms(runs, fn) -> wall ms, busy CPU ms, this process's CPU ms (each a
-- mean per run), cores: runs fn `runs` times and reads the machine's busy
-- time (every core: user, nice, system, irq, softirq) from /proc/stat
-- around them, so the server's processes and parallel workers count too.
-- On a machine of `cores` cores no schedule of that work takes less wall
-- time than busy / cores. nil where /proc/stat is absent (not Linux).
-- Shared by the benchmarks (dofile); the machine should be otherwise idle.
local neoconn = require("neoconn")

local function ticks_per_second()
  local p = io.popen("getconf CLK_TCK 2>/dev/null")
  local hz = p and tonumber(p:read("a"))
  if p then p:close() end
  return hz or 100
end

local function busy_ticks()
  local f = io.open("/proc/stat")
  if not f then return nil end
  local total, cores = nil, 0
  for line in f:lines() do
    if line:match("^cpu ") then
      local t = {}
      for n in line:gmatch("%d+") do t[#t + 1] = tonumber(n) end
      total = t[1] + t[2] + t[3] + t[6] + t[7]
    elseif line:match("^cpu%d") then
      cores = cores + 1
    end
  end
  f:close()
  return total, cores
end

local hz = ticks_per_second()

return function(runs, fn)
  collectgarbage()
  local b0, cores = busy_ticks()
  if not b0 then return nil end
  local t0, c0 = neoconn.clock(), os.clock()
  for _ = 1, runs do fn() end
  local t1, c1 = neoconn.clock(), os.clock()
  local b1 = busy_ticks()
  return (t1 - t0) * 1000 / runs, (b1 - b0) * 1000 / hz / runs, (c1 - c0) * 1000 / runs, cores
end
