--- How neoconn waits inside OpenResty: in a phase that may yield, a step
-- that would wait on a socket or a child process sleeps through ngx.sleep
-- instead, so the worker serves other requests meanwhile. One loop for the
-- connection, the test and the sandboxed rules.
local nginx = {}

-- Pauses between steps: 1 ms at first (nginx rounds a shorter sleep down to
-- ngx.sleep(0), which it logs), doubling to at most 10 ms.
local FIRST_PAUSE, LONGEST_PAUSE = 0.001, 0.01

local YIELDING_PHASES = { rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, preread = true }

--- True inside an OpenResty phase where ngx.sleep yields to nginx.
function nginx.active()
  local ngx = rawget(_G, "ngx")
  return ngx ~= nil and type(ngx.get_phase) == "function" and YIELDING_PHASES[ngx.get_phase()] == true
end

--- Calls step() until it says it is done, sleeping through nginx between
-- calls. step returns true and its results, or false and the seconds left
-- before its own deadline (a pause never sleeps past it). Returns the
-- results.
local unpack = table.unpack or unpack -- luacheck: ignore 143

local function pack(...) return { n = select("#", ...), ... } end

function nginx.wait(step)
  local sleep = rawget(_G, "ngx").sleep
  local pause = FIRST_PAUSE
  while true do
    local results = pack(step())
    if results[1] then return unpack(results, 2, results.n) end
    sleep(math.min(pause, math.max(results[2] or pause, FIRST_PAUSE)))
    pause = math.min(pause * 2, LONGEST_PAUSE)
  end
end

return nginx
