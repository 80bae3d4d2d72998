-- `make demo`: a source, a CDC source and a destination role on a throwaway cluster,
-- checked with the neoconn command against examples/demo-config.lua; then
-- the fix script is applied as the administrator and the check run again.
local neoconn = require("neoconn")
local cli = require("neoconn.cli")
local env = os.getenv

local admin = assert(neoconn.connect({ host = env("NEOCONN_TEST_SOCKET"),
  port = env("NEOCONN_TEST_PORT"), user = env("NEOCONN_TEST_ADMIN"), dbname = "postgres" }))
dofile("examples/demo_setup.lua")(admin)

local config = "examples/demo-config.lua"
local fix = os.tmpname()
print("$ neoconn check " .. config .. " --fix-sql " .. fix)
cli.main({ "check", config, "--fix-sql", fix })
print()

local f = io.open(fix)
local sql = f:read("*a")
f:close()
os.remove(fix)
print("Applying the fix script as the administrator (row-level security suggestions stay")
print("comments: no GRANT fixes them), then checking again:\n")
assert(admin:query(sql))
print("$ neoconn check " .. config .. " --only app_source --only app_destination --only app_cdc")
cli.main({ "check", config, "--only", "app_source", "--only", "app_destination",
  "--only", "app_cdc" })
admin:close()
