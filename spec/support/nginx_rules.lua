--- /rules for the nginx spec: a check whose custom rules take long, one
-- computing for 1.3 s of CPU (within its bound) and one looping until its
-- bound stops it; answers with the findings as JSON.
local check = require("neoconn.check")
local document = require("neoconn.document")

return function()
  local args = ngx.req.get_uri_args()
  local settings = { name = "target", kind = "source", target = args.target, options = {},
    rules = {
      a_slow = function()
        local started, spins = os.clock(), 0
        while os.clock() - started < 1.3 do spins = spins + 1 end
      end,
      b_looping = function() while true do end end,
    } }
  local result = check.connection(settings, { timeout = 10 })
  ngx.header.content_type = "application/json"
  ngx.say(document.encode(document.of({ result })))
end
