-- median_ms(runs, fn): runs fn `runs` times (a full GC before each) and
-- returns the median wall-clock time in ms. os.clock would count only this
-- process's CPU, not the server's. Shared by the benchmarks (dofile).
local neoconn = require("neoconn")

return function(runs, fn)
  local times = {}
  for i = 1, runs do
    collectgarbage()
    local t0 = neoconn.clock()
    fn()
    times[i] = (neoconn.clock() - t0) * 1000
  end
  table.sort(times)
  return times[(runs + 1) // 2]
end
