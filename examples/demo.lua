-- `make demo`: a source, a CDC source and a destination role on a throwaway cluster,
-- checked with the neoconn command against examples/demo-config.lua; then
-- the fix script is applied as the administrator and the check run again.
local neoconn = require("neoconn")
local cli = require("neoconn.cli")
local env = os.getenv

local admin = assert(neoconn.connect({ host = env("NEOCONN_TEST_SOCKET"),
  port = env("NEOCONN_TEST_PORT"), user = env("NEOCONN_TEST_ADMIN"), dbname = "postgres" }))
assert(admin:query([[
  CREATE ROLE readers;
  CREATE ROLE sync_source LOGIN PASSWORD 'source-pw' IN ROLE readers;
  CREATE ROLE sync_dest LOGIN PASSWORD 'dest-pw';
  CREATE ROLE sync_cdc LOGIN PASSWORD 'cdc-pw' IN ROLE readers;
  CREATE SCHEMA app; CREATE SCHEMA "Audit Log";
  CREATE TABLE app.users (id serial PRIMARY KEY, email text NOT NULL);
  CREATE TABLE app.orders (id bigserial PRIMARY KEY, user_id int, total numeric);
  CREATE TABLE "Audit Log"."events.2026" (id int, what text);
  ALTER TABLE app.orders ENABLE ROW LEVEL SECURITY;
  GRANT USAGE ON SCHEMA app TO readers;
  GRANT SELECT ON ALL TABLES IN SCHEMA app TO readers;
  GRANT USAGE ON SCHEMA app TO sync_dest;
  GRANT INSERT, UPDATE ON app.users TO sync_dest;
  GRANT INSERT ON app.orders TO sync_dest;
]]))

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
