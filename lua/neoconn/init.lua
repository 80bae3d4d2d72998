--- neoconn: can this PostgreSQL connection be used as a sync source or
-- destination, and if not, what exactly is missing?
-- The C core (neoconn.core) does the work; this module is its public face.
local core = require("neoconn.core")

local neoconn = {
  version = core.version,
  connect = core.connect,
  test = core.test,
  requirements = core.requirements,
  quote_ident = core.quote_ident,
  parse_name = core.parse_name,
  clock = core.clock, -- monotonic seconds
  -- One step at a time, for event loops (nginx, fleets).
  connect_start = core.connect_start,
  test_begin = core.test_begin,
}

return neoconn
