-- The demo's roles and tables (make demo, make openresty-demo): a source, a
-- CDC source and a destination role, with a few grants missing on purpose.
-- Returns function(admin) running it on the superuser's connection.
return function(admin)
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
end
