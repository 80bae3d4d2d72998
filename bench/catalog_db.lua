-- build(admin, size) -> database name: a catalog of `size` tables in
-- schemas of 1000, made once per cluster, where the sync role (bench_sync,
-- password bench-pw) reads half the schemas through a group role. Shared
-- by the benchmarks (dofile).
local neoconn = require("neoconn")
local env = os.getenv

local socket, port = env("NEOCONN_TEST_SOCKET"), env("NEOCONN_TEST_PORT")
local admin_user = env("NEOCONN_TEST_ADMIN")
local long = { timeout = 3600 }

return function(admin, size)
  local db = "neoconn_bench_" .. size
  local exists = assert(admin:query("SELECT 1 FROM pg_database WHERE datname = $1", { db }))
  if #exists == 0 then
    io.stderr:write(("creating %d tables in %s...\n"):format(size, db))
    assert(admin:query("CREATE DATABASE " .. db, nil, long))
    local c = assert(neoconn.connect({ host = socket, port = port, user = admin_user, dbname = db }))
    local per_schema = 1000
    for s = 1, size // per_schema do
      assert(c:query(("CREATE SCHEMA s%d"):format(s)))
      for first = 1, per_schema, 250 do
        assert(c:query(([[
          DO $$ BEGIN FOR i IN %d..%d LOOP
            EXECUTE format('CREATE TABLE s%d.t%%s (id int, v text)', i);
          END LOOP; END $$;]]):format(first, first + 249, s), nil, long))
      end
    end
    -- The sync role reads half the schemas, through a group role. Roles
    -- belong to the cluster: the second catalog finds them made by the
    -- first, and its grants must not be rolled back with a failed CREATE.
    assert(c:query([[
      DO $$ BEGIN
        CREATE ROLE bench_group; CREATE ROLE bench_sync LOGIN PASSWORD 'bench-pw';
        GRANT bench_group TO bench_sync;
      EXCEPTION WHEN duplicate_object THEN NULL; END $$;]]))
    assert(c:query([[
      DO $$ BEGIN
        FOR s IN 1..]] .. size // per_schema .. [[ LOOP
          EXECUTE format('GRANT USAGE ON SCHEMA s%s TO bench_sync', s);
          IF s % 2 = 0 THEN
            EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA s%s TO bench_group', s);
          END IF;
        END LOOP;
      END $$;
      ANALYZE;]], nil, long))
    c:close()
  end
  return db
end
