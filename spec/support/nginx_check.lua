--- /check for the nginx spec: the same check as `neoconn test TARGET --as
-- KIND --json`, as a JSON response.
local check = require("neoconn.check")
local document = require("neoconn.document")

return function()
  local args = ngx.req.get_uri_args()
  local settings = { name = "target", kind = args.as or "source", target = args.target,
    options = {} }
  local result = check.connection(settings, { timeout = tonumber(args.timeout) })
  ngx.header.content_type = "application/json"
  ngx.say(document.encode(document.of({ result })))
end
